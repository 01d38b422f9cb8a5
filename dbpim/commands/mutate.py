"""``dbpim mutate``: automatic mutation of the PIM core's RTL, each mutant run through a fast regression subset
(``make mutate``)."""

from __future__ import annotations

from pathlib import Path

import click

from dbpim.commands._common import CommandError, Number, hw_option, load_hw, verbosity_options
from dbpim.model import limits

COMMAND = "dbpim mutate"


@click.command("mutate")
@hw_option(default="small", help_extra="; the kill suite runs on it")
@click.option("--mutants", type=Number(limits.COUNT), default=60, show_default=True,
              help="how many of the generated mutants to run, spread over the mutation kinds")
@click.option("--all", "run_all", is_flag=True, help="run every generated mutant (overrides --mutants)")
@click.option("--seed", type=Number(limits.SEED), default=0, show_default=True,
              help="seed of the choice of mutants")
@click.option("--out", default="build/mutate", show_default=True, metavar="DIR",
              help="folder for mutate.json and mutate.txt (the build goes to DIR-work); a folder holding other "
                   "files is refused")
@verbosity_options
def command(hw, mutants, run_all, seed, out):
    """Mutants of the PIM core's generated Verilog (comparisons, constants, operators, operands, stuck
    signals, dropped resets), all in one Verilator build, each run through the kill suite (random layers at
    full rate and stalled, a reset mid-layer, every error code, the constant registers).

    Prints killed K / N and each survivor (file, line, mutation); writes mutate.json and mutate.txt.
    """
    from dbpim.model import jsonio
    from dbpim.model.outdir import output_dir
    from dbpim.verif.mutate import run_mutation
    from dbpim.verif.native import NativeError
    cfg = load_hw(hw)
    out = Path(out)

    def progress(k, n, mu, why):
        click.echo(f"[{k}/{n}] #{mu.index} {mu.file}:{mu.line} {mu.kind}: {mu.what}: "
                   + ("SURVIVED" if why is None else f"killed ({why})"), err=True)

    with output_dir(out, COMMAND) as stage:  # a refused --out fails here, before the build and the runs
        try:
            rep = run_mutation(cfg, out.with_name(out.name + "-work"), count=None if run_all else int(mutants),
                               seed=int(seed), progress=progress)
        except (NativeError, RuntimeError) as e:
            raise CommandError(str(e)) from None
        (stage / "mutate.json").write_text(jsonio.dumps(rep.to_dict(), what="mutate.json", newline=True))
        (stage / "mutate.txt").write_text(rep.text())
    click.echo(rep.text() + f"{out / 'mutate.json'}\n{out / 'mutate.txt'}")

"""``dbpim mutate``: automatic mutation of a unit's RTL (the PIM core, the SIMD core, the window generator, the chip
controllers), each mutant run through a fast regression subset (``make mutate``)."""

from __future__ import annotations

from pathlib import Path

import click

from dbpim.commands._common import CommandError, Number, NumberList, hw_option, load_hw, verbosity_options
from dbpim.model import limits
from dbpim.verif.mutate import DEFAULT_MUTANTS, UNITS, UnknownMutantError

COMMAND = "dbpim mutate"


@click.command("mutate")
@hw_option(default="small", help_extra="; the kill suite runs on it")
@click.option("--unit", type=click.Choice(list(UNITS)), default="core", show_default=True,
              help="what to mutate: the PIM core (dbpim_core and its blocks; native harness), the SIMD core "
                   "(dbpim_simd) or the window generator (dbpim_window; each mutant runs its cocotb regression), "
                   "the chip (dbpim_chip_ctrl, dbpim_pim_ctrl and the dbpim_chip top; native chip harness)")
@click.option("--mutants", type=Number(limits.COUNT), default=None,
              help="how many of the generated mutants to run, spread over the mutation kinds  [default: 60 for "
                   "the core and the chip, 20 for the others]")
@click.option("--all", "run_all", is_flag=True, help="run every generated mutant (overrides --mutants)")
@click.option("--seed", type=Number(limits.SEED), default=0, show_default=True,
              help="seed of the choice of mutants")
@click.option("--only", type=NumberList(limits.COUNT), default=None, metavar="I,J,...",
              help="run only the mutants of these indices (the # of the report; overrides --mutants, --all and "
                   "--seed): to recheck a few survivors without the whole set")
@click.option("--out", default="build/mutate", show_default=True, metavar="DIR",
              help="folder for mutate.json and mutate.txt (the build goes to DIR-work); a folder holding other "
                   "files is refused")
@verbosity_options
def command(hw, unit, mutants, run_all, seed, only, out):
    """Mutants of a unit's generated Verilog (comparisons, constants, operators, operands, stuck signals,
    dropped resets), all in one Verilator build, each run through the unit's kill suite (the core: random
    layers at full rate and stalled, a dense layer unsigned and signed, resets mid-layer, every error code,
    the constant registers, the bus responses; the SIMD core and the window generator: their cocotb regression
    with stalls; the chip: random programs of every instruction, a PIM layer of several segments, resets
    mid-program, every error code).

    Prints killed K / N (E equivalent, S unexplained), each unexplained survivor (file, line, mutation) and
    each survivor on the reviewed list verif/mutants_equivalent.yaml (with its reason); writes mutate.json and
    mutate.txt.
    """
    from dbpim.model import jsonio
    from dbpim.model.outdir import output_dir
    from dbpim.verif.mutate import load_equivalents, run_mutation
    from dbpim.verif.native import NativeError
    cfg = load_hw(hw)
    out = Path(out)
    try:
        equivalents = load_equivalents()
    except ValueError as e:
        raise CommandError(f"the list of equivalent mutants: {e}") from None

    def progress(k, n, mu, why):
        click.echo(f"[{k}/{n}] #{mu.index} {mu.file}:{mu.line} {mu.kind}: {mu.what}: "
                   + ("SURVIVED" if why is None else f"killed ({why})"), err=True)

    with output_dir(out, COMMAND) as stage:  # a refused --out fails here, before the build and the runs
        try:
            count = None if run_all else int(DEFAULT_MUTANTS[unit] if mutants is None else mutants)
            rep = run_mutation(cfg, out.with_name(out.name + "-work"), count=count, seed=int(seed),
                               progress=progress, equivalents=equivalents, unit=unit,
                               only=None if only is None else [int(i) for i in only])
        except (NativeError, RuntimeError) as e:
            raise CommandError(str(e)) from None
        except UnknownMutantError as e:  # an --only index that no mutant has
            raise CommandError(f"--{e}") from None
        (stage / "mutate.json").write_text(jsonio.dumps(rep.to_dict(), what="mutate.json", newline=True))
        (stage / "mutate.txt").write_text(rep.text())
    click.echo(rep.text() + f"{out / 'mutate.json'}\n{out / 'mutate.txt'}")

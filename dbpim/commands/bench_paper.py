"""``dbpim bench-paper``: the paper's tables and figures over several artifacts."""

from __future__ import annotations

from pathlib import Path

import click

from dbpim.commands._common import (OUT_HELP, CommandError, Number, NumberList, artifact_hw, batch_option,
                                    core_overrides, hw_option, load_artifact, verbosity_options)
from dbpim.model import limits


@click.command("bench-paper")
@click.argument("artifact_dirs", nargs=-1, metavar="[ARTIFACT]...")
@click.option("--artifacts", "more", multiple=True, metavar="DIR",
              help="an artifact directory (repeatable; the same as a positional ARTIFACT)")
@click.option("--root", default=None, metavar="DIR",
              help="a directory whose sub-directories with manifest.yaml are artifacts")
@click.option("--fig11", multiple=True, metavar="DIR",
              help="an artifact (with float weights) re-pruned for Fig. 11 (repeat the option for each)")
@click.option("--fig11-sparsity", type=NumberList(limits.SPARSITY_CLOSED), default="0,0.25,0.5,0.75",
              show_default=True, help="comma-separated block sparsities of Fig. 11, each in [0, 1]")
@hw_option(default=None, help_extra="; overrides the artifacts' recorded one if its macro is the same")
@click.option("--core", "core_keys", multiple=True, metavar="KEY=N",
              help="change one key of the configuration's core section (repeatable), e.g. --core tile_banks=2 "
                   "--core out_banks=2 --core in_windows=4; the configuration's name gets +KEY=N")
@click.option("--engine", default="ray", show_default=True, type=click.Choice(["ray", "serial"]),
              help="run the Fig. 11 points as Ray tasks or serially")
@click.option("--address", default=None, help="join this Ray cluster instead of starting a local one")
@click.option("--workers", type=Number(limits.WORKERS), default=2, show_default=True,
              help="CPUs of the local Ray cluster")
@click.option("--out", default="build/paper", show_default=True, help=OUT_HELP)
@click.option("--no-plots", is_flag=True, help="skip the PNG plots")
@batch_option("; Fig. 11 stays at batch 1")
@verbosity_options
def command(artifact_dirs, more, root, fig11, fig11_sparsity, hw, core_keys, engine, address, workers, out,
            no_plots, batch):
    """The paper's tables and figures over several artifacts.

    Tab. II, Tab. III, Fig. 11 and Fig. 12 side by side with the paper's
    figures, plus the report of each network, into --out.
    """
    from dbpim.sim_bench.paper import run_paper
    over = core_overrides(core_keys)
    dirs = list(more) + list(artifact_dirs)
    if root:
        r = Path(root)
        if not r.is_dir():
            raise CommandError(f"--root: {r}: not a directory")
        dirs += sorted(str(d) for d in r.iterdir() if (d / "manifest.yaml").is_file())
    if not dirs:
        raise CommandError("no artifacts given (pass ARTIFACT ... or --root DIR)")
    arts = [load_artifact(d, "ARTIFACT") for d in dirs]
    f11 = [load_artifact(d, "--fig11", check_tiles=False) for d in fig11]
    cfgs = {id(a): artifact_hw(a, hw) for a in arts + f11}
    if over:
        import dataclasses
        tag = "".join(f"+{k}={v}" for k, v in over.items())
        cfgs = {k: dataclasses.replace(c.replace(core=over), name=c.name + tag) for k, c in cfgs.items()}
    cfg = cfgs[id(arts[0])]
    names = {c.name for c in cfgs.values()}
    if len(names) > 1:
        raise CommandError(f"the artifacts record different hardware configurations ({', '.join(sorted(names))}); "
                           "evaluate them in separate runs")
    run_paper(arts, cfg, out, plots=not no_plots, fig11=f11, fig11_sparsity=fig11_sparsity, engine=engine,
              workers=workers, address=address, verbose=True, batch=batch)
    click.echo(f"report written to {out}")

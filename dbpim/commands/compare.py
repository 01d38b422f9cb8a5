"""``dbpim compare``: the ReRAM bit-sparsity schemes next to DB-PIM on compiled artifacts."""

from __future__ import annotations

import click

from dbpim.commands._common import (OUT_HELP, CommandError, Number, artifact_hw, batch_option, hw_option,
                                    load_artifact, verbosity_options)
from dbpim.model import limits


@click.command("compare")
@click.argument("artifact_dirs", nargs=-1, metavar="[ARTIFACT]...")
@click.option("--artifact", "more", multiple=True, metavar="DIR",
              help="a compiled artifact directory (repeatable; the same as a positional ARTIFACT)")
@hw_option(default=None, help_extra="; overrides the artifacts' recorded one if its macro is the same")
@click.option("--out", default="build/compare", show_default=True, help=OUT_HELP)
@click.option("--no-accuracy", is_flag=True,
              help="skip the accuracy column (it re-runs the compile flow of each artifact)")
@click.option("--finetune-epochs", type=Number(limits.EPOCHS), default=None, metavar="E",
              help="epochs of each scheme's projected fine-tune before its accuracy is measured "
                   "(default: the compiled flow's QAT epochs; 0: no fine-tune)")
@click.option("--no-plots", is_flag=True, help="skip the PNG plot")
@batch_option(" of the DB-PIM rows (the ReRAM model runs batch 1)")
@verbosity_options
def command(artifact_dirs, more, hw, out, no_accuracy, finetune_epochs, no_plots, batch):
    """The ReRAM bit-sparsity schemes next to DB-PIM on compiled artifacts.

    SME/SoBS-X, ERA-BS and ReRAM-Sharing on an ISAAC-like crossbar model,
    next to DB-PIM: accuracy after each weight transform, weight storage,
    crossbars or macro tiles, ADC conversions or macro cycles, speedup and
    energy over each technology's own dense baseline. Writes compare.csv,
    compare.json and speedup.png into --out.
    """
    from dbpim.compare import run_compare
    from dbpim.sim_bench import compare as cmp
    dirs = list(more) + list(artifact_dirs)
    if not dirs:
        raise CommandError("no artifacts given (pass --artifact DIR ... or ARTIFACT ...)")
    arts = [load_artifact(d) for d in dirs]
    cfgs = [artifact_hw(a, hw) for a in arts]
    if len({c.name for c in cfgs}) > 1:
        raise CommandError(f"the artifacts record different hardware configurations "
                           f"({', '.join(sorted({c.name for c in cfgs}))}); compare them in separate runs")
    rows = run_compare(arts, cfgs[0], out, accuracy=not no_accuracy, plots=not no_plots,
                       finetune_epochs=finetune_epochs, batch=batch)
    click.echo(cmp.format_table(rows))
    click.echo(f"comparison written to {out}")

"""``dbpim bench``: performance, energy and utilization report of a compiled artifact."""

from __future__ import annotations

import click

from dbpim.commands._common import OUT_HELP, artifact_hw, batch_option, hw_option, load_artifact, verbosity_options


@click.command("bench")
@click.option("--artifact", required=True, metavar="DIR", help="compiled artifact directory")
@hw_option(default=None, help_extra="; overrides the artifact's recorded configuration if its macro is the same")
@click.option("--out", default="build/bench", show_default=True, help=OUT_HELP)
@click.option("--no-plots", is_flag=True, help="skip the PNG plots")
@batch_option()
@verbosity_options
def command(artifact, hw, out, no_plots, batch):
    """Performance, energy and utilization report of a compiled artifact.

    Writes layers.csv, summary.json, summary.md and plots into --out. The
    hardware is the configuration the artifact records; an artifact that
    records none (written before artifacts did) needs --hw (default paper).
    The summary gives the speedup at --batch, at batch 1 and at the batch
    where the off-chip weight bandwidth stops binding.
    """
    from dbpim.sim_bench.report import format_summary, run_report
    art = load_artifact(artifact)
    summ = run_report(art, artifact_hw(art, hw), out, plots=not no_plots, batch=batch)
    click.echo(format_summary(summ))
    click.echo(f"report written to {out}")

"""``dbpim speed``: speed figures of the golden model, the performance model and the RTL tools (``make bench``)."""

from __future__ import annotations

import click

from dbpim.commands._common import OUT_HELP, verbosity_options


@click.command("speed")
@click.option("--out", default="build/speed", show_default=True, help=OUT_HELP)
@click.option("--quick", is_flag=True, help="one repeat, CIFAR shapes only")
@verbosity_options
def command(out, quick):
    """Speed of the golden model, the performance model and the RTL tools, with their targets.

    Writes bench.json into --out.
    """
    from dbpim.bench import run
    run(out, quick)

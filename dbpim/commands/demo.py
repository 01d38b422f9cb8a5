"""``dbpim demo``: the built-in example end to end (``make demo``)."""

from __future__ import annotations

import time

import click

from dbpim.commands._common import OUT_HELP, Number, hw_option, load_hw, verbosity_options
from dbpim.demo import STAGES, DemoError, parse_stages
from model import limits


def _stages(ctx, param, value):
    try:
        return parse_stages(value)
    except DemoError as e:
        raise click.BadParameter(str(e).split(": ", 1)[1]) from None


@click.command("demo", help="The built-in example end to end: "
               + "; ".join(f"{k}. {v}" for k, v in STAGES.items()) + ".")
@hw_option()
@click.option("--sparsity", type=Number(limits.SPARSITY), default=0.5, show_default=True,
              help="block sparsity of stages 1, 2 and 3, in [0, 1)")
@click.option("--out", default="build/demo", show_default=True, help=OUT_HELP)
@click.option("--stages", default=",".join(map(str, STAGES)), show_default=True, callback=_stages,
              metavar="A,B,...", help="comma-separated subset of 1,2,3,4,5: the stages to run")
@verbosity_options
def command(hw, sparsity, out, stages):
    from dbpim.demo import run_demo
    t0 = time.perf_counter()
    run_demo(load_hw(hw), stages, sparsity, out)
    click.echo(f"\ndemo finished in {time.perf_counter() - t0:.1f} s; outputs in {out}/")

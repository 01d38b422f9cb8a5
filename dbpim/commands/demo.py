"""``dbpim demo``: the built-in example end to end (``make demo``)."""

from __future__ import annotations

import time

import click

from dbpim.commands._common import OUT_HELP, CommandError, Number, hw_option, load_hw, verbosity_options
from dbpim.demo import STAGES, DemoError, parse_stages
from dbpim.model import limits


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
@click.option("--update-readme", "readme", default=None, metavar="README.md",
              help="after the demo, rewrite the generated table of demo figures in this file from the fresh "
                   "summary.json (needs stages 1,2,3,5; the README quotes the default --hw and --sparsity)")
@verbosity_options
def command(hw, sparsity, out, stages, readme):
    from dbpim import demo_figures
    from dbpim.demo import run_demo
    if readme is not None:  # refuse before the long run, not after it
        missing = [s for s in demo_figures.REQUIRED_STAGES if s not in stages]
        if missing:
            raise CommandError(f"--update-readme: the README's figures need stages "
                               f"{','.join(map(str, demo_figures.REQUIRED_STAGES))}; --stages leaves out "
                               f"{','.join(map(str, missing))}")
        _readme(demo_figures.check_readme, readme)
    t0 = time.perf_counter()
    summary = run_demo(load_hw(hw), stages, sparsity, out)
    click.echo(f"\ndemo finished in {time.perf_counter() - t0:.1f} s; outputs in {out}/")
    if readme is not None:
        changed = _readme(demo_figures.update_readme, readme, summary)
        click.echo(f"{readme}: demo figures refreshed from {out}/summary.json; "
                   + (f"changed: {', '.join(changed)}" if changed else "none changed"))


def _readme(fn, *args):
    """``fn(*args)`` with a :class:`DemoError` as the one-line error of ``--update-readme``."""
    try:
        return fn(*args)
    except DemoError as e:
        raise CommandError(f"--update-readme: {e}") from None

"""``dbpim lint``: Verilator lint of a folder of generated Verilog (``make lint``)."""

from __future__ import annotations

import click

from dbpim.commands._common import verbosity_options


@click.command("lint")
@click.argument("verilog", type=click.Path(exists=True, file_okay=False))
@click.option("--counts", default=None, metavar="FILE",
              help="recorded waiver-pattern counts (default: hw/lint_waivers.yaml)")
@click.option("--update", is_flag=True, help="record the current counts of this configuration (review the diff)")
@verbosity_options
def command(verilog, counts, update):
    """verilator --lint-only -Wall on every block of a folder of generated Verilog (VERILOG).

    Every warning must match a reviewed waiver pattern (hw/lint.py), and each
    pattern's count per file must not exceed its record in
    hw/lint_waivers.yaml; exit status 1 otherwise.
    """
    from dbpim.hw.lint import lint_dir
    click.get_current_context().exit(1 if lint_dir(verilog, counts, update) else 0)

"""``dbpim lint``: Verilator lint of a folder of generated Verilog (``make lint``)."""

from __future__ import annotations

import click

from dbpim.commands._common import verbosity_options


@click.command("lint")
@click.argument("verilog", type=click.Path(exists=True, file_okay=False))
@click.option("--waivers", default=None, metavar="FILE",
              help="control file to write (default: <folder>-lint.vlt next to the folder)")
@verbosity_options
def command(verilog, waivers):
    """verilator --lint-only -Wall on every block of a folder of generated Verilog (VERILOG).

    Every warning must match an explained idiom and is waived by file and line
    in a Verilator control file; exit status 1 when one is not explained.
    """
    from hw.lint import lint_dir
    click.get_current_context().exit(1 if lint_dir(verilog, waivers) else 0)

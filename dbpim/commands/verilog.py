"""``dbpim verilog``: the Verilog of every DB-PIM block and a manifest for one hardware configuration."""

from __future__ import annotations

import click

from dbpim.commands._common import OUT_HELP, CommandError, hw_option, load_hw, verbosity_options

from dbpim.hw.common import config_prefix
from dbpim.hw.generate import BLOCKS, SRAM_MODES, generate


def _blocks(ctx, param, value):
    parts = [b.strip() for b in str(value).split(",")]
    if not any(parts) or not all(parts):
        raise click.BadParameter(f"must be a comma-separated, non-empty subset of {','.join(BLOCKS)}, got {value!r}")
    bad = [b for b in parts if b not in BLOCKS]
    if bad:
        raise click.BadParameter(f"{bad[0]!r} is not a block; must be a comma-separated subset of {','.join(BLOCKS)}")
    return list(dict.fromkeys(parts))


@click.command("verilog")
@hw_option()
@click.option("--out", default="build/verilog", show_default=True, help=OUT_HELP)
@click.option("--blocks", default=",".join(BLOCKS), callback=_blocks, metavar="A,B,...",
              help=f"comma-separated, non-empty subset of {','.join(BLOCKS)} (default: all)")
@click.option("--sram", default="behavioural", type=click.Choice(SRAM_MODES), show_default=True,
              help="macro cell array and metadata: memories inside the macro (behavioural) or instances of SRAM "
                   "wrapper modules with a behavioural model (blackbox)")
@click.option("--prefix", default=None, metavar="NAME",
              help="module and file name prefix, NAME_dbpim_<block> (a letter, then letters, digits, _), so that "
                   "several design points elaborate together in one SoC; default (or 'config'): the "
                   "configuration's name (hw.common.config_prefix); '' for none (dbpim_<block>)")
@verbosity_options
def command(hw, out, blocks, sram, prefix):
    """Generate the DB-PIM Verilog, the register descriptions of the core and the chip (SystemRDL, C header,
    IP-XACT, Markdown), a FuseSoC core file and a manifest (manifest.json) into --out."""
    cfg = load_hw(hw)
    if prefix is None or prefix == "config":
        prefix = config_prefix(cfg.name)
    try:
        man = generate(cfg, out, blocks, sram=sram, prefix=prefix)
    except ValueError as e:  # an unknown block or SRAM mode (the options above admit none)
        raise CommandError(str(e)) from None
    for e in man["blocks"].values():
        click.echo(f"{out}/{e['file']}: {len(e['ports'])} ports, latency {e['latency']}")
    for e in man["blocks"].values():
        for f in e.get("register_files", {}).values():
            click.echo(f"{out}/{f}")
    for f in man.get("files", {}).values():
        click.echo(f"{out}/{f}")
    click.echo(f"{out}/manifest.json")

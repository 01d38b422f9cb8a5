"""``dbpim synth-table``: several ``dbpim synth`` reports of one block side by side, with deltas (``make synth``)."""

from __future__ import annotations

from pathlib import Path

import click

from dbpim.commands._common import CommandError, verbosity_options

COMMAND = "dbpim synth-table"


@click.command("synth-table")
@click.argument("reports", nargs=-1, required=True, metavar="SYNTH...")
@click.option("--block", default="core", show_default=True, metavar="NAME",
              help="the block of every report to tabulate")
@click.option("--out", required=True, metavar="DIR",
              help="folder for synth-table.md (written only on success; a folder holding other files is refused)")
@verbosity_options
def command(reports, block, out):
    """The synthesis figures of one block from several folders written by dbpim synth (SYNTH..., each holding
    synth.json; the first is the plain design) as one Markdown table: cells, flip-flops, logic depth and the
    bits of every memory kept as an SRAM, each variant with its difference to the first. Printed and written
    as synth-table.md into --out."""
    from dbpim.hw.synth import read_blocks_json, variants_markdown
    from dbpim.model.outdir import check_output, output_dir
    out = Path(out)
    dirs = [Path(r) for r in reports]
    check_output(out, COMMAND, dirs)
    reps = {}
    for d in dirs:
        try:
            rep = read_blocks_json(d / "synth.json", "synth report", "dbpim synth")
        except ValueError as e:
            raise CommandError(str(e)) from None
        label = str(rep.get("config") or d.name)
        if label in reps:
            raise CommandError(f"{d}: configuration {label!r} given twice")
        reps[label] = rep
    try:
        md = variants_markdown(reps, block)
    except (ValueError, KeyError, TypeError) as e:
        raise CommandError(f"--block: {e}") from None
    with output_dir(out, COMMAND, dirs) as stage:
        (stage / "synth-table.md").write_text(md)
    click.echo(md, nl=False)

"""``dbpim synth``: Yosys generic synthesis figures of generated Verilog (``make synth``)."""

from __future__ import annotations


import click

from dbpim.commands._common import CommandError, verbosity_options, verilog_folder

COMMAND = "dbpim synth"


@click.command("synth")
@click.argument("verilog", type=click.Path(file_okay=False))
@click.option("--out", default=None, metavar="DIR",
              help="folder for synth.json and synth.md (default: <folder>-synth next to it); written only on "
                   "success, a folder holding other files is refused")
@click.option("--blocks", default=None, metavar="A,B,...", help="comma-separated blocks of the manifest "
              "(default: all)")
@click.option("--exclude", default="", metavar="A,B,...", help="comma-separated blocks of the manifest to leave out")
@click.option("--keep-memories", is_flag=True,
              help="keep every memory as one $mem_v2 cell (an SRAM) instead of mapping it to flip-flops")
@verbosity_options
def command(verilog, out, blocks, exclude, keep_memories):
    """Yosys generic synthesis of every block of a folder of generated Verilog (VERILOG).

    Writes synth.json and synth.md (cells, flip-flops, logic depth, time per
    block); exit status 1 when Yosys fails.
    """
    from dbpim.hw.synth import SynthError, markdown, synth_dir
    from dbpim.model import jsonio
    from dbpim.model.outdir import output_dir
    d, out, names = verilog_folder(verilog, out, blocks, "synth", COMMAND)
    skip = [b for b in exclude.split(",") if b]
    try:
        rep = synth_dir(d, [b for b in names if b not in skip], keep_memories=keep_memories)
    except SynthError as e:
        click.echo(f"{COMMAND}: {e}", err=True)
        click.get_current_context().exit(1)
    except ValueError as e:  # an argument the library refuses
        raise CommandError(str(e)) from None
    with output_dir(out, COMMAND, [d]) as stage:
        (stage / "synth.json").write_text(jsonio.dumps(rep, what="synth.json", newline=True))
        (stage / "synth.md").write_text(markdown(rep))
    click.echo(f"{out / 'synth.json'}\n{out / 'synth.md'}")

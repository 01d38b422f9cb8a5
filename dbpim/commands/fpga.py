"""``dbpim fpga``: Lattice ECP5 resources and maximum clock of generated Verilog (``make fpga``)."""

from __future__ import annotations


import click

from dbpim.commands._common import CommandError, Number, verbosity_options, verilog_folder
from dbpim.model.limits import FPGA_FREQ_MHZ

COMMAND = "dbpim fpga"


@click.command("fpga")
@click.argument("verilog", type=click.Path(file_okay=False))
@click.option("--out", default=None, metavar="DIR",
              help="folder for fpga.json and fpga.md (default: <folder>-fpga next to it); written only on "
                   "success, a folder holding other files is refused")
@click.option("--blocks", default=None, metavar="A,B,...", help="comma-separated blocks of the manifest "
              "(default: all)")
@click.option("--device", type=click.Choice(["25k", "45k", "85k"]), default="85k", show_default=True,
              help="ECP5 device (LFE5U-25F / -45F / -85F, package CABGA381)")
@click.option("--freq", "freq_mhz", type=Number(FPGA_FREQ_MHZ), default=100.0, show_default=True,
              help="target clock [MHz] for timing-driven placement (the achieved Fmax is reported)")
@verbosity_options
def command(verilog, out, blocks, device, freq_mhz):
    """ECP5 synthesis (yosys synth_ecp5) and place and route (nextpnr-ecp5, out of context) of every block of a
    folder of generated Verilog (VERILOG).

    Writes fpga.json and fpga.md (LUTs, flip-flops, block RAMs, DSPs, LUT
    RAM, Fmax and critical path per block; a block larger than the device is
    reported as such with its utilization); exit status 1 when a tool fails.
    """
    from dbpim.hw.fpga import FpgaError, fpga_dir, markdown
    from dbpim.model import jsonio
    from dbpim.model.outdir import output_dir
    d, out, names = verilog_folder(verilog, out, blocks, "fpga", COMMAND)
    try:
        rep = fpga_dir(d, names, device=device, freq_mhz=freq_mhz, log=click.echo)
    except FpgaError as e:
        click.echo(f"{COMMAND}: {e}", err=True)
        click.get_current_context().exit(1)
    except ValueError as e:  # an argument the library refuses
        raise CommandError(str(e)) from None
    with output_dir(out, COMMAND, [d]) as stage:
        (stage / "fpga.json").write_text(jsonio.dumps(rep, what="fpga.json", newline=True))
        (stage / "fpga.md").write_text(markdown(rep))
    click.echo(f"{out / 'fpga.json'}\n{out / 'fpga.md'}")

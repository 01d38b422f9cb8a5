"""``dbpim paper-nets``: the paper's five networks at full width (untrained) as artifacts."""

from __future__ import annotations

import click

from dbpim.commands._common import OUT_HELP, Number, hw_option, load_hw, verbosity_options
from dbpim.paper_nets import NAMES
from model import limits


def _names(ctx, param, value):
    names = [n.strip().lower() for n in str(value).split(",")]
    if not all(names):
        raise click.BadParameter(f"must be a comma-separated, non-empty subset of {','.join(NAMES)}, got {value!r}")
    bad = [n for n in names if n not in NAMES]
    if bad:
        raise click.BadParameter(f"{bad[0]!r}: must be among {', '.join(NAMES)}")
    return names


@click.command("paper-nets")
@click.option("--out", default="build/paper-nets", show_default=True, help=OUT_HELP)
@click.option("--names", default=",".join(NAMES), show_default=True, callback=_names, metavar="A,B,...",
              help="comma-separated networks")
@hw_option()
@click.option("--sparsity", type=Number(limits.SPARSITY), default=0.5, show_default=True,
              help="block sparsity in [0, 1)")
@click.option("--record", type=Number(limits.RECORD), default=2, show_default=True,
              help="real images whose activations are recorded (>= 1)")
@click.option("--seed", type=Number(limits.SEED), default=0, show_default=True,
              help="seed of the weights and the images")
@verbosity_options
def command(out, names, hw, sparsity, record, seed):
    """The paper's five networks at full width on CIFAR-100 shapes, untrained, as artifacts in --out.

    Kaiming weights, BatchNorm recalibrated on digits upscaled to 32x32,
    block-pruned and FTA-quantized.
    """
    from dbpim.paper_nets import build_all
    for p in build_all(out, load_hw(hw), names, sparsity, seed, n_record=record):
        click.echo(f"{p} (untrained)")

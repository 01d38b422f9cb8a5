"""``dbpim paper-nets``: the paper's five networks at full width (untrained) as artifacts."""

from __future__ import annotations

import importlib.util

import click

from dbpim.commands._common import OUT_HELP, Number, hw_option, load_hw, verbosity_options
from dbpim.paper_nets import NAMES, TRAINED
from dbpim.model import limits
from dbpim.model.torch.keras_h5 import CIFAR10_INSTALL, CIFAR10_PACKAGE


def _names(ctx, param, value):
    if value is None:
        return None
    names = [n.strip().lower() for n in str(value).split(",")]
    allowed = NAMES + TRAINED
    if not all(names):
        raise click.BadParameter(f"must be a comma-separated, non-empty subset of {','.join(allowed)}, got {value!r}")
    bad = [n for n in names if n not in allowed]
    if bad:
        raise click.BadParameter(f"{bad[0]!r}: must be among {', '.join(allowed)}")
    return names


@click.command("paper-nets")
@click.option("--out", default="build/paper-nets", show_default=True, help=OUT_HELP)
@click.option("--names", default=None, callback=_names, metavar="A,B,...",
              help=f"comma-separated networks among {', '.join(NAMES + TRAINED)} (default: all; "
                   f"{', '.join(TRAINED)} only when the package {CIFAR10_PACKAGE} is installed)")
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
    block-pruned and FTA-quantized; the CIFAR-10-trained network and its
    Kaiming control too when its package is installed.
    """
    from dbpim.paper_nets import build_all
    if names is None:
        names = list(NAMES)
        if importlib.util.find_spec("cifar_10_model") is None:
            click.echo(f"dbpim paper-nets: {', '.join(TRAINED)} skipped: needs the package {CIFAR10_PACKAGE} "
                       f"({CIFAR10_INSTALL})", err=True)
        else:
            names += list(TRAINED)
    for p in build_all(out, load_hw(hw), names, sparsity, seed, n_record=record):
        click.echo(str(p))

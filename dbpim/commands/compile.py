"""``dbpim compile``: train, block-prune, FTA-quantize and compile a network into an artifact.

Ends with the performance summary of the compiled network (the line ``dbpim
bench`` prints), so a user sees speedup, energy saving and utilizations
without a second command.
"""

from __future__ import annotations

from pathlib import Path

import click

from dbpim.commands._common import OUT_HELP, Number, batch_option, hw_option, load_hw, progress, verbosity_options
from dbpim.model import limits

MODEL_HELP = ("zoo name, .onnx file, or a .pt / .pth / .safetensors state dict (with --model-class) "
              "(default: smallcnn)")
DATA_HELP = ("dataset: digits, digits32, cifar10:DIR, cifar100:DIR, or an .npz holding x_train, y_train, x_test, "
             "y_test (default: digits)")


@click.command("compile")
@click.option("--model", default="smallcnn", help=MODEL_HELP)
@click.option("--model-class", default=None,
              help="zoo name or 'package.module:Class' for a .pt, .pth or .safetensors state dict")
@click.option("--data", default="digits", help=DATA_HELP)
@click.option("--sparsity", type=Number(limits.SPARSITY), default=0.5, show_default=True,
              help="block sparsity in [0, 1)")
@hw_option()
@click.option("--out", default="build/compile", show_default=True, help=OUT_HELP + "; gets artifact/ and the report")
@click.option("--seed", type=Number(limits.SEED), default=0, show_default=True,
              help="random seed of data split, init and training")
@click.option("--epochs", type=Number(limits.EPOCHS), default=15.0, show_default=True,
              help="float training epochs (default with --all-zoo: 3)")
@click.option("--finetune-epochs", type=Number(limits.EPOCHS), default=None,
              help="fine-tuning epochs after block pruning (default: --epochs)")
@click.option("--qat-epochs", type=Number(limits.EPOCHS), default=None, help="FTA-aware QAT epochs (default: --epochs)")
@click.option("--lr", type=Number(limits.LR), default=2e-3, show_default=True, help="learning rate of float training")
@click.option("--batch-size", type=Number(limits.BATCH_SIZE), default=64, show_default=True,
              help="training batch size")
@click.option("--phi-max", type=Number(limits.PHI_MAX), default=None,
              help="FTA ceiling (default: the hw macro's phi_max, which also bounds it)")
@click.option("--width", type=Number(limits.WIDTH), default=None,
              help="channel width multiplier of zoo networks (default: 1; 0.25 with --all-zoo)")
@click.option("--no-compare", is_flag=True, help="skip the block-pruning-alone comparison")
@click.option("--all-zoo", is_flag=True,
              help="run the five CIFAR-size zoo networks on digits upscaled to 32x32 (ignores --model/--data)")
@batch_option(" in the final summary (not the training --batch-size)")
@verbosity_options
def command(model, model_class, data, sparsity, hw, out, seed, epochs, finetune_epochs, qat_epochs, lr, batch_size,
            phi_max, width, no_compare, all_zoo, batch):
    """Train, block-prune, FTA-quantize and compile a network into a DB-PIM artifact.

    Writes artifact/, report.json, report.md and plots into --out, then prints
    the accuracies and the performance summary of the compiled network.
    """
    from dbpim.model.artifact import load
    from dbpim.model.torch.flow import FlowOptions, run_all_zoo, run_flow
    from dbpim.sim_bench.report import evaluate_artifact, format_summary

    cfg = load_hw(hw)
    src = click.get_current_context().get_parameter_source("epochs")
    if all_zoo:
        opts = FlowOptions(sparsity=sparsity, seed=seed, epochs=3 if src.name == "DEFAULT" else epochs,
                           finetune_epochs=finetune_epochs, qat_epochs=qat_epochs, lr=lr, batch_size=batch_size,
                           phi_max=phi_max, width=0.25 if width is None else width, compare=not no_compare,
                           progress=progress())
        summary = run_all_zoo(cfg, opts, out=out)
        for name, s in summary.items():
            acc = s["accuracy"]
            click.echo(f"{name}: " + ", ".join(f"{k} {100 * v:.2f}%" for k, v in acc.items() if v is not None))
            click.echo(format_summary(evaluate_artifact(load(Path(out) / s["artifact"]), cfg, batch)))
        click.echo(f"summary: {Path(out) / 'summary.json'}")
        return
    opts = FlowOptions(sparsity=sparsity, seed=seed, epochs=epochs, finetune_epochs=finetune_epochs,
                       qat_epochs=qat_epochs, lr=lr, batch_size=batch_size, phi_max=phi_max,
                       width=1.0 if width is None else width, model_class=model_class, compare=not no_compare,
                       progress=progress())
    rep = run_flow(model, data, cfg, opts, out=out)
    acc = rep["accuracy"]
    click.echo("accuracy: " + ", ".join(f"{k} {100 * v:.2f}%" for k, v in acc.items() if v is not None))
    m = rep["macs"]
    click.echo(f"MACs on the macros: {100 * m['mapped_share']:.1f} % of {m['total']:,} per sample")
    for w in rep["warnings"]:
        click.echo(f"warning: {w}")
    click.echo(f"artifact: {rep['artifact']}\nreport: {Path(out) / 'report.md'}")
    click.echo(format_summary(evaluate_artifact(load(rep.artifact), cfg, batch)))

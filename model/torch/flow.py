"""The whole front-end flow: train -> block-prune + fine-tune -> FTA-aware QAT ->
final FTA quantization -> export the compiled artifact, with a report.

``run_flow(...)`` is the library entry point; ``main(argv)`` is the
``dbpim compile`` subcommand; ``python -m model.torch.flow --all-zoo`` runs the
five CIFAR-size zoo networks on digits upscaled to 32x32 with short schedules.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from model import csd
from model.config import ConfigError, load_config
from model.outdir import OUT_HELP, OutputError, check_output, output_dir
from model.plots import legend_outside, pyplot, save_figure
from model.quant import group_size_for
from model.torch import bn as tbn
from model.torch import prune as tprune
from model.torch import qat as tqat
from model.torch.data import DATA_NAMES, DataError, load_data
from model.torch.export import ExportError
from model.torch.train import evaluate, set_determinism, train
from model.torch.zoo import MODELS, ZOO32, get_model, input_size

__all__ = ["run_flow", "run_all_zoo", "demo", "main", "FlowError", "layer_stats", "total_sparsity", "check_finite"]

DEFAULT_HW = Path(__file__).resolve().parents[2] / "hw" / "configs" / "paper.yaml"
COMMAND = "dbpim compile"
ZOO_COMMAND = "dbpim compile --all-zoo"


class FlowError(ValueError):
    """A bad argument of the flow; the message is one line naming it."""


def total_sparsity(block_sparsity: float, phi_max: int) -> float:
    """Compound sparsity of block pruning + FTA (paper Sec. V, Fig. 10 convention).

    FTA's bit-level sparsity is counted at its guaranteed minimum 1 - phi_max/4
    (4 = the most non-zero CSD digits of an int8 weight), so 50 % blocks +
    phi_max = 2 gives 1 - 0.5 * 0.5 = 75 %.
    """
    return 1.0 - (1.0 - block_sparsity) * (phi_max / 4.0)


# ----------------------------------------------------------------------------- model construction

def _build_model(model: str | nn.Module, model_class: str | None, num_classes: int, in_channels: int,
                 width: float) -> tuple[nn.Module, str]:
    if isinstance(model, nn.Module):
        return model, type(model).__name__.lower()
    p = Path(str(model))
    if p.suffix in (".pt", ".pth"):
        if not p.is_file():
            raise FlowError(f"--model: {p}: file not found")
        if not model_class:
            raise FlowError(f"--model-class: required with a state-dict file; a zoo name ({', '.join(MODELS)}) "
                            "or 'package.module:Class'")
        if ":" in model_class:
            mod, _, cls = model_class.partition(":")
            try:
                net = getattr(importlib.import_module(mod), cls)()
            except Exception as e:  # noqa: BLE001
                raise FlowError(f"--model-class: cannot build {model_class!r} ({type(e).__name__}: {e})") from None
        else:
            try:
                net = get_model(model_class, num_classes, in_channels, width)
            except ValueError as e:
                raise FlowError(f"--model-class: {e}") from None
        try:
            sd = torch.load(p, map_location="cpu", weights_only=True)
            if isinstance(sd, dict) and "state_dict" in sd:
                sd = sd["state_dict"]
            net.load_state_dict(sd)
        except Exception as e:  # noqa: BLE001
            raise FlowError(f"--model: {p}: not a state dict for {model_class} ({type(e).__name__})") from None
        return net, p.stem
    try:
        return get_model(str(model), num_classes, in_channels, width), str(model).lower()
    except ValueError as e:
        raise FlowError(f"--{e}") from None


def _calibrate(model: nn.Module, x: torch.Tensor) -> None:
    """First observation of every activation quantizer (fixes signedness and ranges)."""
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()


# ----------------------------------------------------------------------------- statistics

def layer_stats(model: nn.Module, group_size: int) -> list[dict]:
    """Per-layer report entries of a frozen network (mapped + passed-through layers)."""
    rows = []
    for name, q in tqat.qlayers(model):
        w = q.w_int.numpy().astype(np.int64)
        K, N = w.shape
        m = q.mask_kn().numpy()
        nz = csd.nnz(w).astype(np.int64)
        phi = q.phi.numpy()
        kept = int(m.sum())
        stored_bits = int((m * phi[None, :]).sum()) * 4 if q.fta else kept * 8
        mask_bits = int(getattr(q.inner, "dbpim_block_mask", torch.ones(K, 1)).numel())
        rows.append({
            "name": name, "kind": "conv2d" if q.is_conv else "linear", "shape": list(q.inner.weight.shape),
            "K": K, "N": N, "sparsity": tprune.layer_sparsity(q.inner),
            "value_sparsity": float((w == 0).mean()),
            "bit_sparsity": float(1.0 - nz.sum() / (8.0 * w.size)),
            "bit_sparsity_kept": float(1.0 - nz[m].sum() / (4.0 * max(1, kept))),
            "phi_hist": np.bincount(phi, minlength=q.phi_max + 1).astype(int).tolist() if q.fta else None,
            "storage_bits_per_weight": (stored_bits + mask_bits) / w.size,
            "signed_input": bool(q.act.signed), "fta_quantized": bool(q.fta), "passed_through": False,
        })
    for pt in tprune.passed_through(model):
        rows.append({"name": pt["name"], "kind": pt["kind"], "shape": pt["shape"], "sparsity": 0.0,
                     "phi_hist": None, "fta_quantized": False, "passed_through": True, "note": pt["note"]})
    return rows


def _plots(out: Path, layers: list[dict]) -> list[str]:
    plt = pyplot()
    mapped = [r for r in layers if not r["passed_through"]]
    if not mapped:
        return []
    names = [r["name"] for r in mapped]
    x = np.arange(len(mapped))
    files = []
    w = max(6.0, 0.35 * len(mapped))

    fig, ax = plt.subplots(figsize=(w, 3.5))
    hist = np.array([r["phi_hist"] or [0] for r in mapped], dtype=float)
    bottom = np.zeros(len(mapped))
    for p in range(hist.shape[1]):
        ax.bar(x, hist[:, p], bottom=bottom, label=f"phi={p}")
        bottom += hist[:, p]
    ax.set_ylabel("filters"), ax.set_title("FTA threshold phi per layer")
    ax.set_xticks(x, names, rotation=90, fontsize=6), legend_outside(ax)
    files.append(save_figure(fig, out / "phi_hist.png").name)

    fig, ax = plt.subplots(figsize=(w, 3.5))
    ax.bar(x - 0.2, [r["value_sparsity"] for r in mapped], 0.4, label="value-level (zero weights)")
    ax.bar(x + 0.2, [r["bit_sparsity"] for r in mapped], 0.4, label="bit-level (zero CSD digits)")
    ax.set_ylim(0, 1), ax.set_ylabel("sparsity [fraction]"), ax.set_title("Sparsity per layer")
    ax.set_xticks(x, names, rotation=90, fontsize=6), legend_outside(ax)
    files.append(save_figure(fig, out / "sparsity.png").name)

    fig, ax = plt.subplots(figsize=(w, 3.5))
    ax.bar(x, [r["storage_bits_per_weight"] for r in mapped])
    ax.axhline(8, color="k", ls="--", lw=1, label="dense int8")
    ax.set_ylabel("storage [bits/weight]"), ax.set_title("Storage per weight (digits x 4 bits + mask)")
    ax.set_xticks(x, names, rotation=90, fontsize=6), legend_outside(ax)
    files.append(save_figure(fig, out / "storage.png").name)
    return files


def _dims(shape) -> str:
    """A shape as ``16x1x3x3``."""
    return "x".join(str(int(v)) for v in shape)


def _seconds(times: dict) -> str:
    """Stage times as ``float 1.2 s, block_pruned 0.8 s, ...``."""
    return ", ".join(f"{k} {float(v):.1f} s" for k, v in times.items())


def _markdown(rep: dict) -> str:
    """The human-readable report (plain Markdown: no Python lists, dicts or reprs)."""
    a = rep["accuracy"]
    ep = rep["epochs"]
    lines = [f"# DB-PIM compile report: {rep['network']} on {rep['data']}", "",
             f"hw: `{rep['hw']}` (group size G = {rep['group_size']}, phi_max = {rep['phi_max']}), "
             f"block sparsity {rep['sparsity']:.2f}, seed {rep['seed']}, epochs: float {ep['float']:g}, "
             f"fine-tune {ep['finetune']:g}, FTA-aware QAT {ep['qat']:g}", "",
             "| stage | test accuracy |", "|---|---|"]
    labels = {"float": "float", "block_pruned": "block-pruned + fine-tuned",
              "fta_qat": "FTA-aware QAT (fake-quant)", "final": "final FTA int8 (integer path)",
              "block_pruned_same_total": f"block pruning alone at total sparsity {rep['total_sparsity']:.2f} (int8)"}
    for k, v in a.items():
        if v is not None:
            lines.append(f"| {labels.get(k, k)} | {100 * v:.2f} % |")
    lines += ["", f"artifact: `{rep['artifact']}/` (next to this report)", "",
              f"| layer | kind | shape | block sparsity | filters with phi = {' / '.join(map(str, range(rep['phi_max'] + 1)))} "
              "| value sp. | bit sp. | bits/weight |",
              "|---|---|---|---|---|---|---|---|"]
    for r in rep["layers"]:
        if r["passed_through"]:
            lines.append(f"| {r['name']} | {r['kind']} | {_dims(r['shape'])} | passed through | - | - | - | - |")
        else:
            hist = " / ".join(map(str, r["phi_hist"])) if r["phi_hist"] else "-"
            lines.append(f"| {r['name']} | {r['kind']} | {_dims(r['shape'])} | {r['sparsity']:.2f} | {hist} | "
                         f"{r['value_sparsity']:.2f} | {r['bit_sparsity']:.2f} | {r['storage_bits_per_weight']:.2f} |")
    notes = [r for r in rep["layers"] if r["passed_through"]]
    if notes:
        lines += ["", "Passed through (dense, SIMD core): " + "; ".join(f"{r['name']}: {r['note']}" for r in notes)]
    lines += ["", "Plots: " + (", ".join(f"![{p}]({p})" for p in rep["plots"]) or "none"), "",
              f"Times: {_seconds(rep['times'])}", ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the flow

def run_flow(model: str | nn.Module = "smallcnn", data: str = "digits", sparsity: float = 0.5,
             hw: str | Path = DEFAULT_HW, out: str | Path = "build/compile", seed: int = 0,
             epochs: float = 15, finetune_epochs: float | None = None, qat_epochs: float | None = None,
             lr: float = 2e-3, batch_size: int = 64, phi_max: int | None = None, phi_min: int = 0,
             width: float = 1.0, model_class: str | None = None, compare: bool = True, n_record: int = 4,
             n_train: int | None = None, n_test: int | None = None, plots: bool = True,
             progress: bool = True, threads: int = 2, finetune_lr: float | None = None,
             qat_lr: float | None = None) -> dict:
    """Run the hybrid-grained pruning flow and export the compiled artifact.

    Returns the report dict (also written to ``out/report.json``); the artifact
    is ``out/artifact``. ``finetune_epochs`` / ``qat_epochs`` default to
    ``epochs``; ``finetune_lr`` / ``qat_lr`` default to ``lr / 2`` / ``lr / 10``.
    ``phi_max`` defaults to (and must not exceed) the hw macro's.
    """
    t0 = time.time()
    times = {}
    try:
        cfg = load_config(hw)
    except ConfigError as e:
        raise FlowError(f"--hw: {e}") from None
    macro = cfg.macro
    pm = macro.phi_max if phi_max is None else phi_max
    if not (isinstance(pm, int) and 1 <= pm <= macro.phi_max):
        raise FlowError(f"--phi-max: must be an integer in [1, {macro.phi_max}] (the hw macro's phi_max), got {pm!r}")
    G = group_size_for(macro, pm)
    if not (isinstance(phi_min, int) and 0 <= phi_min <= pm):
        raise FlowError(f"--phi-min: must be an integer in [0, {pm}], got {phi_min!r}")
    if not (isinstance(sparsity, (int, float)) and 0.0 <= sparsity < 1.0):
        raise FlowError(f"--sparsity: must be a number in [0, 1), got {sparsity!r}")
    for nm, v in (("epochs", epochs), ("finetune-epochs", finetune_epochs), ("qat-epochs", qat_epochs)):
        if v is not None and not (isinstance(v, (int, float)) and v >= 0):
            raise FlowError(f"--{nm}: must be a number >= 0, got {v!r}")
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise FlowError(f"--batch-size: must be an integer >= 1, got {batch_size!r}")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise FlowError(f"--lr: must be a number > 0, got {lr!r}")
    if not (isinstance(width, (int, float)) and width > 0):
        raise FlowError(f"--width: must be a number > 0, got {width!r}")
    inputs = _inputs(cfg.path, model, data)
    try:
        check_output(out, COMMAND, inputs)  # refuse a bad --out before any training
    except OutputError as e:
        raise FlowError(str(e)) from None
    ft_lr = lr / 2 if finetune_lr is None else finetune_lr
    q_lr = lr / 10 if qat_lr is None else qat_lr
    ft_ep = epochs if finetune_epochs is None else finetune_epochs
    qat_ep = epochs if qat_epochs is None else qat_epochs
    set_determinism(seed, threads)

    # data: a zoo net expecting 32x32 gets digits upscaled
    zoo_name = str(model).lower() if isinstance(model, str) and str(model).lower() in MODELS else (
        model_class.lower() if model_class and model_class.lower() in MODELS else None)
    size = input_size(zoo_name) if zoo_name else None
    try:
        ds = load_data(data, seed, size=size)
    except DataError as e:
        raise FlowError(str(e) if str(e).startswith("--data") else f"--data: {e}") from None
    if n_train or n_test:
        ds = ds.subset(n_train, n_test)
    net, net_name = _build_model(model, model_class, ds.num_classes, ds.in_shape[0], width)
    check_finite(net)
    xtr, ytr, xte, yte = ds.x_train, ds.y_train, ds.x_test, ds.y_test
    kw = dict(batch_size=batch_size, progress=progress)
    acc = {}

    def stage(name):
        times[name] = round(time.time() - t0 - sum(times.values()), 2)

    # 1. float
    train(net, xtr, ytr, epochs, lr, seed=seed, desc=f"{net_name}: float", **kw)
    acc["float"] = evaluate(net, xte, yte)
    stage("float")
    base = copy.deepcopy(net)

    # 2. block pruning + fine-tune
    tprune.prune_model(net, sparsity, G)
    train(net, xtr, ytr, ft_ep, ft_lr, seed=seed + 1, desc=f"{net_name}: block-prune fine-tune", **kw)
    acc["block_pruned"] = evaluate(net, xte, yte)
    stage("block_pruned")

    # 3. FTA-aware QAT
    tbn.fold_bn(net)
    tqat.quantize_model(net, fta=True, phi_min=phi_min, phi_max=pm)
    _calibrate(net, xtr[:256])
    train(net, xtr, ytr, qat_ep, q_lr, seed=seed + 2, desc=f"{net_name}: FTA-aware QAT", **kw)
    acc["fta_qat"] = evaluate(net, xte, yte)
    stage("fta_qat")

    # 4. final FTA quantization (integer path)
    tqat.freeze(net)
    acc["final"] = evaluate(net, xte, yte)
    stage("final")

    # 5. comparison: block pruning alone at the same total sparsity (plain int8 QAT, same budget)
    s_tot = total_sparsity(sparsity, pm)
    acc["block_pruned_same_total"] = None
    if compare:
        cmp_net = copy.deepcopy(base)
        tprune.prune_model(cmp_net, s_tot, G)
        train(cmp_net, xtr, ytr, ft_ep, ft_lr, seed=seed + 1, desc=f"{net_name}: block-only {s_tot:.2f}", **kw)
        tbn.fold_bn(cmp_net)
        tqat.quantize_model(cmp_net, fta=False)
        _calibrate(cmp_net, xtr[:256])
        train(cmp_net, xtr, ytr, qat_ep, q_lr, seed=seed + 2, desc=f"{net_name}: block-only int8 QAT", **kw)
        tqat.freeze(cmp_net)
        acc["block_pruned_same_total"] = evaluate(cmp_net, xte, yte)
        stage("block_pruned_same_total")

    # 6. export + validate + report, all staged next to --out and moved in together
    from model import artifact as gart
    from model.torch.export import export
    try:
        with output_dir(out, COMMAND, inputs) as tmp:
            gart.load(export(net, net_name, macro, tmp / "artifact", xte[:n_record], G,
                             meta={"data": str(data), "seed": int(seed), "sparsity": float(sparsity),
                                   "phi_max": int(pm), "accuracy": {k: v for k, v in acc.items() if v is not None}}))
            stage("export")
            layers = layer_stats(net, G)
            rep = {"network": net_name, "data": str(data), "hw": str(cfg.path), "group_size": G, "phi_max": pm,
                   "phi_min": phi_min, "sparsity": float(sparsity), "total_sparsity": s_tot, "seed": int(seed),
                   "epochs": {"float": epochs, "finetune": ft_ep, "qat": qat_ep}, "width": width,
                   "n_train": len(xtr), "n_test": len(xte), "accuracy": acc, "artifact": "artifact",
                   "layers": layers, "plots": _plots(tmp, layers) if plots else [], "times": times}
            rep["times"]["total"] = round(time.time() - t0, 2)
            (tmp / "report.json").write_text(json.dumps(rep, indent=2))
            (tmp / "report.md").write_text(_markdown(rep))
    except OutputError as e:
        raise FlowError(str(e)) from None
    return {**rep, "artifact": str(Path(out) / "artifact")}


def _inputs(hw_path, model, data) -> list:
    """The input files and folders of a flow run (``--out`` must be apart from each)."""
    found = [hw_path]
    if isinstance(model, (str, Path)) and Path(str(model)).suffix in (".pt", ".pth"):
        found.append(model)
    if isinstance(data, str) and ":" in data:
        found.append(data.split(":", 1)[1])
    return found


def check_finite(net: nn.Module) -> None:
    """Refuse a network with a NaN or inf parameter or buffer before any training.

    Raises
    ------
    FlowError
        One line naming the first such layer and tensor.
    """
    for name, t in list(net.named_parameters()) + list(net.named_buffers()):
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            layer, _, tensor = name.rpartition(".")
            raise FlowError(f"--model: layer {layer or '(top level)'}: {tensor} holds NaN or inf values; "
                            "a network must have finite weights")


def demo(out: str | Path = "build/demo", hw: str | Path = DEFAULT_HW, seed: int = 0, epochs: float = 15,
         progress: bool = True, sparsity: float = 0.5) -> tuple[Path, dict]:
    """``make demo``: SmallCNN on digits, short schedule, at ``sparsity``. Returns (artifact path, accuracies)."""
    rep = run_flow("smallcnn", "digits", sparsity, hw, out, seed, epochs, progress=progress)
    return Path(rep["artifact"]), rep["accuracy"]


def run_all_zoo(out: str | Path = "build/zoo", hw: str | Path = DEFAULT_HW, names=ZOO32, epochs: float = 3,
                width: float = 0.25, sparsity: float = 0.5, seed: int = 0, progress: bool = True,
                **kw) -> dict:
    """The flow on each CIFAR-size zoo network with digits upscaled to 32x32.

    Writes ``out/<network>/`` (each a :func:`run_flow` folder) and
    ``out/summary.json`` (artifact paths relative to ``out``), all moved into
    ``out`` together when the last network is done.
    """
    try:
        inputs = [load_config(hw).path]
        check_output(out, ZOO_COMMAND, inputs)
        summary = {}
        with output_dir(out, ZOO_COMMAND, inputs) as tmp:
            for n in names:
                rep = run_flow(n, "digits32", sparsity, hw, tmp / n, seed, epochs, width=width, progress=progress,
                               **kw)
                summary[n] = {"accuracy": rep["accuracy"], "times": rep["times"], "artifact": f"{n}/artifact"}
                print(f"{n}: " + ", ".join(f"{k}={v:.4f}" for k, v in rep["accuracy"].items() if v is not None)
                      + f" ({rep['times']['total']} s)", flush=True)
            (tmp / "summary.json").write_text(json.dumps(summary, indent=2))
    except (ConfigError, OutputError) as e:
        raise FlowError(str(e)) from None
    return summary


# ----------------------------------------------------------------------------- CLI

def _parser(prog: str = "dbpim compile") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Train, block-prune, FTA-quantize and compile a network "
                                "into a DB-PIM artifact (with report.json, report.md and plots in --out).")
    p.add_argument("--model", default="smallcnn",
                   help=f"zoo name ({', '.join(MODELS)}) or a .pt state dict (then --model-class) (default: smallcnn)")
    p.add_argument("--model-class", default=None, help="zoo name or 'package.module:Class' for a .pt state dict")
    p.add_argument("--data", default="digits", help=f"dataset: {', '.join(DATA_NAMES)} (default: digits)")
    p.add_argument("--sparsity", type=float, default=0.5, help="block sparsity in [0, 1) (default: 0.5)")
    p.add_argument("--hw", default=str(DEFAULT_HW), help="hardware YAML or shipped name (default: paper)")
    p.add_argument("--out", default="build/compile", help=OUT_HELP + "; gets artifact/ and the report "
                   "(default: build/compile)")
    p.add_argument("--seed", type=int, default=0, help="random seed of data split, init and training (default: 0)")
    p.add_argument("--epochs", type=float, default=15, help="float training epochs (default: 15)")
    p.add_argument("--finetune-epochs", type=float, default=None,
                   help="fine-tuning epochs after block pruning (default: --epochs)")
    p.add_argument("--qat-epochs", type=float, default=None, help="FTA-aware QAT epochs (default: --epochs)")
    p.add_argument("--lr", type=float, default=2e-3, help="learning rate of float training (default: 0.002)")
    p.add_argument("--batch-size", type=int, default=64, help="training batch size (default: 64)")
    p.add_argument("--phi-max", type=int, default=None, help="FTA ceiling (default: the hw macro's phi_max)")
    p.add_argument("--width", type=float, default=1.0, help="channel width multiplier of zoo networks (default: 1; "
                   "0.25 with --all-zoo)")
    p.add_argument("--no-compare", action="store_true", help="skip the block-pruning-alone comparison")
    p.add_argument("--all-zoo", action="store_true",
                   help="run the five CIFAR-size zoo networks on digits upscaled to 32x32 (ignores --model/--data)")
    p.add_argument("--quiet", action="store_true", help="no progress bars (they are drawn only on a terminal)")
    return p


def main(argv=None, prog: str = "dbpim compile") -> int:
    """``dbpim compile ...``; returns the exit status (2 on bad arguments)."""
    p = _parser(prog)
    a = p.parse_args(argv)
    try:
        if a.all_zoo:
            run_all_zoo(a.out, a.hw, epochs=a.epochs, width=a.width if a.width != 1.0 else 0.25,
                        sparsity=a.sparsity, seed=a.seed, progress=not a.quiet)
            return 0
        rep = run_flow(a.model, a.data, a.sparsity, a.hw, a.out, a.seed, a.epochs, a.finetune_epochs, a.qat_epochs,
                       a.lr, a.batch_size, a.phi_max, width=a.width, model_class=a.model_class,
                       compare=not a.no_compare, progress=not a.quiet)
    except (FlowError, ConfigError, ExportError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    acc = rep["accuracy"]
    print("accuracy: " + ", ".join(f"{k} {100 * v:.2f}%" for k, v in acc.items() if v is not None))
    print(f"artifact: {rep['artifact']}\nreport: {Path(a.out) / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(prog="python -m model.torch.flow"))

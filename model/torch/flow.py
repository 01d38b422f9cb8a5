"""The whole front-end flow: capture -> dry run -> train -> block-prune + fine-tune ->
FTA-aware QAT -> final FTA quantization -> export the compiled artifact, with a report.

``run_flow(...)`` is the library entry point; ``main(argv)`` is the
``dbpim compile`` subcommand; ``python -m model.torch.flow --all-zoo`` runs the
five CIFAR-size zoo networks on digits upscaled to 32x32 with short schedules.

The flow never changes the module it is given (it works on a deep copy), and
before any training it dry-runs the whole quantized and integer path on a copy
with one batch (:func:`dry_run`), so a network it cannot compile fails in
seconds with one line naming the layer, and never leaves an artifact that
``model.artifact.load`` rejects.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.fx as fx
from torch import nn

from model import artifact as gart
from model import csd
from model.config import ConfigError, load_config
from model.outdir import OUT_HELP, OutputError, check_output, output_dir
from model.plots import legend_outside, pyplot, save_figure
from model.quant import group_size_for
from model.torch import graph as tgraph
from model.torch import prune as tprune
from model.torch import qat as tqat
from model.torch.data import DATA_NAMES, DataError, as_data
from model.torch.export import ExportError, layer_records, mac_count, verify_integer
from model.torch.program import network_program
from model.torch.sources import MODEL_FORMS, ModelError, load_model
from model.torch.train import evaluate, set_determinism, train
from model.torch.zoo import MODELS, ZOO32, input_size

__all__ = ["run_flow", "run_all_zoo", "demo", "main", "FlowError", "layer_stats", "total_sparsity", "dry_run",
           "Stages", "MAC_SHARE_WARNING", "check_finite"]

DEFAULT_HW = Path(__file__).resolve().parents[2] / "hw" / "configs" / "paper.yaml"
COMMAND = "dbpim compile"
ZOO_COMMAND = "dbpim compile --all-zoo"
MAC_SHARE_WARNING = 0.5  # warn when less than this share of the network's MACs runs on the macros


class FlowError(ValueError):
    """A bad argument or an unsupported network; the message is one line naming it."""


def total_sparsity(block_sparsity: float, phi_max: int) -> float:
    """Compound sparsity of block pruning + FTA (paper Sec. V, Fig. 10 convention).

    FTA's bit-level sparsity is counted at its guaranteed minimum 1 - phi_max/4
    (4 = the most non-zero CSD digits of an int8 weight), so 50 % blocks +
    phi_max = 2 gives 1 - 0.5 * 0.5 = 75 %.
    """
    return 1.0 - (1.0 - block_sparsity) * (phi_max / 4.0)


# ----------------------------------------------------------------------------- the stages on a capture

class Stages:
    """The flow's steps on a captured network (:class:`model.torch.graph.Capture`)."""

    def __init__(self, cap: tgraph.Capture, group_size: int):
        self.cap, self.G = cap, group_size

    @property
    def net(self) -> fx.GraphModule:
        return self.cap.gm

    def layers(self) -> dict[str, nn.Module]:
        mods = self.cap.modules()
        return {n: mods[n] for n in self.cap.mapped}

    def prune(self, sparsity: float) -> dict:
        mods = self.cap.modules()
        bn = {layer: mods[b] for layer, b in self.cap.bn_pairs.items() if b in mods}
        return tprune.prune_layers(self.layers(), sparsity, self.G, bn=bn)

    def quantize(self, x: torch.Tensor, fta: bool = True, phi_min: int = 0, phi_max: int = 2) -> None:
        """Fold the planned BatchNorms, wrap the mapped layers, first observation of the quantizers."""
        tgraph.fold_bn(self.cap)
        tqat.quantize_model(self.net, self.cap.mapped, fta=fta, phi_min=phi_min, phi_max=phi_max)
        _calibrate(self.net, x)

    def freeze(self) -> None:
        tqat.freeze(self.net)


def _calibrate(model: nn.Module, x: torch.Tensor) -> None:
    """First observation of every activation quantizer (fixes signedness and ranges)."""
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()


class _Locate(fx.Interpreter):
    """Runs a captured network node by node; a failure names the node."""

    def run_node(self, n):
        try:
            return super().run_node(n)
        except FlowError:
            raise
        except Exception as e:  # noqa: BLE001 - any failure inside the network is reported the same way
            what = type(self.module.get_submodule(str(n.target))).__name__ if n.op == "call_module" else n.op
            msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
            raise FlowError(f"layer {tgraph.node_label(n)!r} ({what}): {type(e).__name__}: {msg}") from None


def _run_located(model: fx.GraphModule, x: torch.Tensor, train_mode: bool = False, grad: bool = False):
    model.train(train_mode)
    try:
        with torch.set_grad_enabled(grad):
            return _Locate(model).run(x)
    except FlowError as e:  # fx appends the failing node's code on further lines
        raise FlowError(str(e).splitlines()[0]) from None
    finally:
        model.eval()


def dry_run(cap: tgraph.Capture, x: torch.Tensor, macro, group_size: int, sparsity: float, phi_min: int,
            phi_max: int) -> dict:
    """The whole quantized and integer path on a deep copy of ``cap`` with one batch ``x``.

    Prunes, folds, quantizes, calibrates, freezes, runs the integer path, compiles
    every mapped layer, checks it against ``model.layer.run_layer`` bit for bit
    and round-trips an artifact through ``model.artifact.save``/``load`` in a
    temporary directory. Returns the MAC counts of the network.

    Raises
    ------
    FlowError
        One line naming the layer (or the step) that failed.
    """
    st = Stages(copy.deepcopy(cap), group_size)
    try:
        out = _run_located(st.net, x, train_mode=True)
        if not isinstance(out, torch.Tensor):
            raise FlowError(f"model: must return one tensor of class scores, returns {type(out).__name__}")
        st.prune(sparsity)
        tgraph.fold_bn(st.cap)
        tqat.quantize_model(st.net, st.cap.mapped, fta=True, phi_min=phi_min, phi_max=phi_max)
        # calibration, fake quantization and QAT gradients (STE) in one pass
        _run_located(st.net, x, train_mode=True, grad=True).float().sum().backward()
        st.net.zero_grad(set_to_none=True)
        st.freeze()
        _run_located(st.net, x)
        try:
            recs, ops, accs = layer_records(st.net, macro, x[:2], group_size)
            verify_integer(recs, accs)
            prog = network_program(st.net, x[:2], recs)
        except (ExportError, ValueError) as e:
            raise FlowError(str(e)) from None
        with tempfile.TemporaryDirectory(prefix="dbpim-dry-") as d:
            try:
                # the tiles already reproduced the torch accumulators (verify_integer): skip re-decompiling
                gart.load(gart.save(Path(d) / "artifact", "dry-run", macro, recs, compress=False, program=prog),
                          check_tiles=False)
            except gart.ArtifactError as e:
                raise FlowError(f"artifact: the exported network does not load back ({e})") from None
        return mac_count(ops)
    except FlowError:
        raise
    except Exception as e:  # noqa: BLE001 - a failure outside a located node: name the step
        msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        raise FlowError(f"model: the dry run failed ({type(e).__name__}: {msg})") from None


# ----------------------------------------------------------------------------- statistics

def layer_stats(model: nn.Module, group_size: int, passed=(), macs: dict | None = None) -> list[dict]:
    """Per-layer report entries of a frozen network: mapped layers, then those passed through.

    ``passed`` are :attr:`model.torch.graph.Capture.passed` entries; ``macs``
    maps layer names to their MACs per sample.
    """
    macs = macs or {}
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
            "name": name, "kind": q.kind, "shape": list(q.inner.weight.shape), "groups": q.groups,
            "K": K, "N": N, "macs": int(macs.get(name, 0)), "sparsity": tprune.layer_sparsity(q.inner),
            "value_sparsity": float((w == 0).mean()),
            "bit_sparsity": float(1.0 - nz.sum() / (8.0 * w.size)),
            "bit_sparsity_kept": float(1.0 - nz[m].sum() / (4.0 * max(1, kept))),
            "phi_hist": np.bincount(phi, minlength=q.phi_max + 1).astype(int).tolist() if q.fta else None,
            "storage_bits_per_weight": (stored_bits + mask_bits) / w.size,
            "signed_input": bool(q.act.signed), "fta_quantized": bool(q.fta), "passed_through": False,
        })
    mods = dict(model.named_modules())
    for pt in passed:
        w = getattr(mods.get(pt["name"]), "weight", None)
        rows.append({"name": pt["name"], "kind": pt["kind"], "shape": list(w.shape) if isinstance(w, torch.Tensor)
                     else None, "macs": int(macs.get(pt["name"], 0)), "sparsity": 0.0, "phi_hist": None,
                     "fta_quantized": False, "passed_through": True, "note": pt["note"]})
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
    """A shape as ``16x1x3x3`` (``-`` when unknown)."""
    return "x".join(str(int(v)) for v in shape) if shape else "-"


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
             f"fine-tune {ep['finetune']:g}, FTA-aware QAT {ep['qat']:g}", ""]
    lines += [f"**warning:** {w}" for w in rep["warnings"]] + ([""] if rep["warnings"] else [])
    lines += ["| stage | test accuracy |", "|---|---|"]
    labels = {"float": "float", "block_pruned": "block-pruned + fine-tuned",
              "fta_qat": "FTA-aware QAT (fake-quant)", "final": "final FTA int8 (integer path)",
              "block_pruned_same_total": f"block pruning alone at total sparsity {rep['total_sparsity']:.2f} (int8)"}
    for k, v in a.items():
        if v is not None:
            lines.append(f"| {labels.get(k, k)} | {100 * v:.2f} % |")
    m = rep["macs"]
    lines += ["", f"artifact: `{rep['artifact']}/` (next to this report)", "",
              f"MACs per sample: {m['total']:,} in total, {m['mapped']:,} on the macros "
              f"({100 * m['mapped_share']:.1f} %), {m['simd']:,} on the SIMD core.", "",
              f"| layer | kind | shape | MACs | block sparsity | filters with phi = "
              f"{' / '.join(map(str, range(rep['phi_max'] + 1)))} | value sp. | bit sp. | bits/weight |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in rep["layers"]:
        if r["passed_through"]:
            lines.append(f"| {r['name']} | {r['kind']} | {_dims(r['shape'])} | {r['macs']:,} | passed through | - | "
                         "- | - | - |")
        else:
            hist = " / ".join(map(str, r["phi_hist"])) if r["phi_hist"] else "-"
            lines.append(f"| {r['name']} | {r['kind']} | {_dims(r['shape'])} | {r['macs']:,} | {r['sparsity']:.2f} | "
                         f"{hist} | {r['value_sparsity']:.2f} | {r['bit_sparsity']:.2f} | "
                         f"{r['storage_bits_per_weight']:.2f} |")
    notes = [r for r in rep["layers"] if r["passed_through"]]
    if notes:
        lines += ["", "Not mapped (float, SIMD core):", ""] + [f"* `{r['name']}` ({r['macs']:,} MACs): {r['note']}"
                                                               for r in notes]
    if rep["batchnorm"]:
        lines += ["", "BatchNorm:", ""] + [
            f"* `{b['name']}`: " + (f"folded into `{b['into']}`" if b["folded"] else f"not folded ({b['reason']})")
            for b in rep["batchnorm"]]
    if rep["notes"]:
        lines += ["", "Capture:", ""] + [f"* {n}" for n in rep["notes"]]
    ok = sum(1 for c in rep["integer_check"] if c["equal"])
    lines += ["", f"Integer path = `model.layer.run_layer` bit for bit on the recorded inputs: {ok} of "
              f"{len(rep['integer_check'])} mapped layers.", "",
              "Plots: " + (", ".join(f"![{p}]({p})" for p in rep["plots"]) or "none"), "",
              f"Times: {_seconds(rep['times'])}", ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the flow

def _check_args(macro, phi_max, phi_min, sparsity, epochs, finetune_epochs, qat_epochs, batch_size, lr, width,
                n_record) -> int:
    pm = macro.phi_max if phi_max is None else phi_max
    if not (isinstance(pm, int) and 1 <= pm <= macro.phi_max):
        raise FlowError(f"--phi-max: must be an integer in [1, {macro.phi_max}] (the hw macro's phi_max), got {pm!r}")
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
    if not (isinstance(n_record, int) and n_record >= 1):
        raise FlowError(f"n_record: must be an integer >= 1, got {n_record!r}")
    return pm


def learning_rates(lr: float = 2e-3, finetune_lr: float | None = None, qat_lr: float | None = None
                   ) -> tuple[float, float, float]:
    """The flow's (float, block-prune fine-tune, QAT) learning rates: the last two default to ``lr / 2``, ``lr / 10``."""
    return lr, lr / 2 if finetune_lr is None else finetune_lr, lr / 10 if qat_lr is None else qat_lr


def run_flow(model: str | nn.Module = "smallcnn", data="digits", sparsity: float = 0.5,
             hw: str | Path = DEFAULT_HW, out: str | Path = "build/compile", seed: int = 0,
             epochs: float = 15, finetune_epochs: float | None = None, qat_epochs: float | None = None,
             lr: float = 2e-3, batch_size: int = 64, phi_max: int | None = None, phi_min: int = 0,
             width: float = 1.0, model_class: str | None = None, compare: bool = True, n_record: int = 4,
             n_train: int | None = None, n_test: int | None = None, plots: bool = True,
             progress: bool = True, threads: int = 2, finetune_lr: float | None = None,
             qat_lr: float | None = None, on_frozen=None) -> dict:
    """Run the hybrid-grained pruning flow and export the compiled artifact.

    Parameters
    ----------
    model : str, Path or nn.Module
        A zoo name, an ``.onnx`` file, a state dict (``.pt``/``.pth``/``.safetensors``,
        with ``model_class``) or a module (deep-copied; never changed).
    data : str, Data, dict or tuple
        A dataset name, an ``.npz`` with ``x_train, y_train, x_test, y_test``, or
        the user's tensors / Datasets / DataLoaders (:func:`model.torch.data.as_data`).

    Returns the report dict (also written to ``out/report.json``); the artifact
    is ``out/artifact``. ``finetune_epochs`` / ``qat_epochs`` default to
    ``epochs``; ``finetune_lr`` / ``qat_lr`` default to ``lr / 2`` / ``lr / 10``.
    ``phi_max`` defaults to (and must not exceed) the hw macro's.
    ``on_frozen(net, data)``, if given, is called with the frozen
    (integer-path) network and the flow's data (``x_train``, ``y_train``,
    ``x_test``, ``y_test``) right after ``accuracy.final`` is measured
    (``dbpim compare`` fine-tunes copies of it under the ReRAM schemes there;
    it must leave the network as it found it).

    Raises
    ------
    FlowError
        A bad argument, or a network the flow cannot compile (found by the dry
        run before any training, naming the layer).
    """
    t0 = time.time()
    times = {}
    try:
        cfg = load_config(hw)
    except ConfigError as e:
        raise FlowError(f"--hw: {e}") from None
    macro = cfg.macro
    pm = _check_args(macro, phi_max, phi_min, sparsity, epochs, finetune_epochs, qat_epochs, batch_size, lr, width,
                     n_record)
    G = group_size_for(macro, pm)
    inputs = _inputs(cfg.path, model, data)
    try:
        check_output(out, COMMAND, inputs)  # refuse a bad --out before any training
    except OutputError as e:
        raise FlowError(str(e)) from None
    _, ft_lr, q_lr = learning_rates(lr, finetune_lr, qat_lr)
    ft_ep = epochs if finetune_epochs is None else finetune_epochs
    qat_ep = epochs if qat_epochs is None else qat_epochs
    set_determinism(seed, threads)

    # data: a zoo net expecting 32x32 gets digits upscaled
    zoo_name = str(model).lower() if isinstance(model, str) and str(model).lower() in MODELS else (
        model_class.lower() if model_class and model_class.lower() in MODELS else None)
    size = input_size(zoo_name) if zoo_name else None
    try:
        ds = as_data(data, seed, size=size)
    except DataError as e:
        raise FlowError(str(e) if str(e).startswith(("--data", "data")) else f"--data: {e}") from None
    if n_train or n_test:
        ds = ds.subset(n_train, n_test)
    try:
        net, net_name = load_model(model, model_class, ds.num_classes, ds.in_shape[0], width)
    except ModelError as e:
        raise FlowError(str(e)) from None
    check_finite(net)
    xtr, ytr, xte, yte = ds.x_train, ds.y_train, ds.x_test, ds.y_test
    kw = dict(batch_size=batch_size, progress=progress)
    acc = {}

    def stage(name):
        times[name] = round(time.time() - t0 - sum(times.values()), 2)

    # 0. capture by dataflow, then the dry run on a copy: fail fast, before any training
    try:
        cap = tgraph.capture(net, xtr[:max(2, min(batch_size, 32))])
    except tgraph.CaptureError as e:
        raise FlowError(str(e)) from None
    if not cap.mapped:
        raise FlowError("model: no layer can be mapped onto the macros (no nn.Linear / nn.Conv1d / nn.Conv2d "
                        "called through its forward)")
    macs = dry_run(cap, xtr[:max(2, min(batch_size, 16))], macro, G, sparsity, phi_min, pm)
    stage("dry_run")
    st = Stages(cap, G)

    # 1. float
    train(st.net, xtr, ytr, epochs, lr, seed=seed, desc=f"{net_name}: float", **kw)
    acc["float"] = evaluate(st.net, xte, yte)
    stage("float")
    base = copy.deepcopy(cap)

    # 2. block pruning + fine-tune
    st.prune(sparsity)
    train(st.net, xtr, ytr, ft_ep, ft_lr, seed=seed + 1, desc=f"{net_name}: block-prune fine-tune", **kw)
    acc["block_pruned"] = evaluate(st.net, xte, yte)
    stage("block_pruned")

    # 3. FTA-aware QAT
    st.quantize(xtr[:256], fta=True, phi_min=phi_min, phi_max=pm)
    train(st.net, xtr, ytr, qat_ep, q_lr, seed=seed + 2, desc=f"{net_name}: FTA-aware QAT", **kw)
    acc["fta_qat"] = evaluate(st.net, xte, yte)
    stage("fta_qat")

    # 4. final FTA quantization (integer path)
    st.freeze()
    acc["final"] = evaluate(st.net, xte, yte)
    if on_frozen is not None:
        on_frozen(st.net, ds)
    stage("final")

    # 5. comparison: block pruning alone at the same total sparsity (plain int8 QAT, same budget)
    s_tot = total_sparsity(sparsity, pm)
    acc["block_pruned_same_total"] = None
    if compare:
        cmp = Stages(base, G)
        cmp.prune(s_tot)
        train(cmp.net, xtr, ytr, ft_ep, ft_lr, seed=seed + 1, desc=f"{net_name}: block-only {s_tot:.2f}", **kw)
        cmp.quantize(xtr[:256], fta=False)
        train(cmp.net, xtr, ytr, qat_ep, q_lr, seed=seed + 2, desc=f"{net_name}: block-only int8 QAT", **kw)
        cmp.freeze()
        acc["block_pruned_same_total"] = evaluate(cmp.net, xte, yte)
        stage("block_pruned_same_total")

    # 6. export: compile, check the integer path bit for bit, write, load back
    try:
        recs, ops, accs = layer_records(st.net, macro, xte[:n_record], G)
        checks = verify_integer(recs, accs)
        prog = network_program(st.net, xte[:max(2, n_record)], recs)
    except (ExportError, ValueError) as e:
        raise FlowError(str(e)) from None
    meta = {"data": str(ds.name), "seed": int(seed), "sparsity": float(sparsity), "phi_max": int(pm),
            "accuracy": {k: v for k, v in acc.items() if v is not None}}
    macs = mac_count(ops)
    by_name = {}
    for o in ops:
        key = str(o["node"].target) if o["node"].op == "call_module" else o["name"]
        by_name[key] = by_name.get(key, 0) + o["macs"]
    layers = layer_stats(st.net, G, cap.passed, by_name)
    warnings = []
    if macs["mapped_share"] < MAC_SHARE_WARNING:
        warnings.append(f"only {100 * macs['mapped_share']:.1f} % of the network's MACs run on the PIM macros; "
                        "the rest runs in float on the SIMD core (see 'Not mapped')")
    # 7. artifact + report, all staged next to --out and moved in together
    try:
        with output_dir(out, COMMAND, inputs) as tmp:
            gart.load(gart.save(tmp / "artifact", net_name, macro, recs, meta=meta, overwrite=True, program=prog))
            stage("export")
            rep = {"network": net_name, "data": str(ds.name), "hw": str(cfg.path), "group_size": G, "phi_max": pm,
                   "phi_min": phi_min, "sparsity": float(sparsity), "total_sparsity": s_tot, "seed": int(seed),
                   "threads": int(threads), "batch_size": int(batch_size),
                   "lr": {"float": lr, "finetune": ft_lr, "qat": q_lr},
                   "epochs": {"float": epochs, "finetune": ft_ep, "qat": qat_ep}, "width": width,
                   "n_train": len(xtr), "n_test": len(xte), "accuracy": acc, "artifact": "artifact",
                   "layers": layers, "macs": macs, "batchnorm": cap.bn, "notes": cap.notes, "warnings": warnings,
                   "integer_check": checks, "plots": _plots(tmp, layers) if plots else [], "times": times}
            rep["times"]["total"] = round(time.time() - t0, 2)
            (tmp / "report.json").write_text(json.dumps(rep, indent=2))
            (tmp / "report.md").write_text(_markdown(rep))
    except OutputError as e:
        raise FlowError(str(e)) from None
    return {**rep, "artifact": str(Path(out) / "artifact")}


def _inputs(hw_path, model, data) -> list:
    """The input files and folders of a flow run (``--out`` must be apart from each)."""
    found = [hw_path]
    if isinstance(model, (str, Path)) and Path(str(model)).suffix in (".pt", ".pth", ".safetensors", ".onnx"):
        found.append(model)
    if isinstance(data, (str, Path)) and str(data).endswith(".npz"):
        found.append(data)
    elif isinstance(data, str) and ":" in data:
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
    p.add_argument("--model", default="smallcnn", help=f"{MODEL_FORMS} (default: smallcnn)")
    p.add_argument("--model-class", default=None,
                   help="zoo name or 'package.module:Class' for a .pt, .pth or .safetensors state dict")
    p.add_argument("--data", default="digits", help=f"dataset: {', '.join(DATA_NAMES)}; an .npz holds x_train, "
                   "y_train, x_test, y_test (default: digits)")
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
    except (FlowError, ConfigError, ExportError, gart.ArtifactError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    acc = rep["accuracy"]
    print("accuracy: " + ", ".join(f"{k} {100 * v:.2f}%" for k, v in acc.items() if v is not None))
    m = rep["macs"]
    print(f"MACs on the macros: {100 * m['mapped_share']:.1f} % of {m['total']:,} per sample")
    for w in rep["warnings"]:
        print(f"warning: {w}")
    print(f"artifact: {rep['artifact']}\nreport: {Path(a.out) / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(prog="python -m model.torch.flow"))

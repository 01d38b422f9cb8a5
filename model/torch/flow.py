"""The whole front-end flow: capture -> dry run -> train -> block-prune + fine-tune ->
FTA-aware QAT -> final FTA quantization -> export the compiled artifact, with a report.

``run_flow(model, data, hw, options)`` is the library entry point (``dbpim
compile`` in :mod:`dbpim.commands.compile`); :func:`run_all_zoo` runs the five
CIFAR-size zoo networks on digits upscaled to 32x32 with short schedules.

The flow never changes the module it is given (it works on a deep copy), and
before any training it dry-runs the whole quantized and integer path on a copy
with one batch (:func:`dry_run`), so a network it cannot compile fails in
seconds with one line naming the layer, and never leaves an artifact that
``model.artifact.load`` rejects.
"""

from __future__ import annotations

import copy
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.fx as fx
from torch import nn

from dbpim.model import artifact as gart
from dbpim.model import csd, jsonio, limits
from dbpim.model.config import HwConfig
from dbpim.model.fta import check_phi
from dbpim.model.outdir import OutputError, check_output, output_dir
from dbpim.model.plots import legend_outside, pyplot, save_figure
from dbpim.model.quant import group_size_for
from dbpim.model.torch import graph as tgraph
from dbpim.model.torch import prune as tprune
from dbpim.model.torch import qat as tqat
from dbpim.model.torch.data import DataError, as_data
from dbpim.model.torch.export import ExportError, layer_records, mac_count, verify_integer
from dbpim.model.torch.program import network_program
from dbpim.model.torch.sources import ModelError, load_model
from dbpim.model.torch.train import evaluate, set_determinism, train
from dbpim.model.torch.zoo import MODELS, ZOO32, input_size

__all__ = ["run_flow", "FlowOptions", "FlowReport", "run_all_zoo", "demo", "FlowError", "layer_stats", "total_sparsity", "dry_run",
           "Stages", "MAC_SHARE_WARNING", "check_finite"]

log = logging.getLogger(__name__)
COMMAND = "dbpim compile"
ZOO_COMMAND = "dbpim compile --all-zoo"
#: Most samples whose activations the artifact records per layer (each is kept in every layer's npz).
N_RECORD_MAX = limits.RECORD.hi  # home: model.limits
#: Training inputs whose value ranges the program records (the integer-only chip's calibrated scales, §13)
CALIBRATION_SAMPLES = 64
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
             f"hw: `{rep['hw']}` ({rep['hw_file'] or 'built in code'}; group size G = {rep['group_size']}, phi_max = {rep['phi_max']}), "
             f"block sparsity {rep['sparsity']:.2f}, seed {rep['seed']}, epochs: float {ep['float']:g}, "
             f"fine-tune {ep['finetune']:g}, FTA-aware QAT {ep['qat']:g}", ""]
    lines += [f"**warning:** {w}" for w in rep["warnings"]] + ([""] if rep["warnings"] else [])
    lines += ["| stage | test accuracy |", "|---|---|"]
    labels = {"float": "float", "block_pruned": "block-pruned + fine-tuned",
              "fta_qat": "FTA-aware QAT (fake-quant)", "final": "final FTA int8 (integer path)",
              "integer_only": "final FTA int8, integer-only (the chip's arithmetic)",
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

@dataclass(frozen=True)
class FlowOptions:
    """The options of one :func:`run_flow` run, checked when made.

    Every number is checked against its range in :mod:`model.limits` (the
    command line uses the same ranges); a bad one raises :class:`FlowError`
    naming the field: ``epochs: must be a finite number in [0, 10000], got inf``.

    Attributes
    ----------
    sparsity : float
        Block sparsity in [0, 1).
    seed : int
        Seed of the data split, the initialization and the training.
    epochs, finetune_epochs, qat_epochs : float
        Float training, block-prune fine-tune and FTA-aware QAT epochs (the
        last two default to ``epochs``).
    lr, finetune_lr, qat_lr : float
        Learning rates (the last two default to ``lr / 2`` and ``lr / 10``).
    batch_size : int
    phi_max : int or None
        FTA ceiling (default: the hardware macro's ``phi_max``, which also bounds it).
    phi_min : int
        FTA floor, in [0, phi_max].
    width : float
        Channel width multiplier of a zoo network.
    model_class : str or None
        Zoo name or ``package.module:Class`` of a state-dict file.
    compare : bool
        Also train block pruning alone at the same total sparsity.
    n_record : int
        Test samples whose activations the artifact records.
    n_train, n_test : int or None
        Use only this many training / test examples (default: all).
    plots : bool
        Write the PNG plots.
    progress : bool
        Progress bars (drawn only on a terminal).
    threads : int
        Torch intra-op threads.
    """

    sparsity: float = 0.5
    seed: int = 0
    epochs: float = 15
    finetune_epochs: float | None = None
    qat_epochs: float | None = None
    lr: float = 2e-3
    finetune_lr: float | None = None
    qat_lr: float | None = None
    batch_size: int = 64
    phi_max: int | None = None
    phi_min: int = 0
    width: float = 1.0
    model_class: str | None = None
    compare: bool = True
    n_record: int = 4
    n_train: int | None = None
    n_test: int | None = None
    plots: bool = True
    progress: bool = True
    threads: int = 2

    def __post_init__(self):
        checks = {"sparsity": limits.SPARSITY, "seed": limits.SEED, "epochs": limits.EPOCHS,
                  "finetune_epochs": limits.EPOCHS, "qat_epochs": limits.EPOCHS, "lr": limits.LR,
                  "finetune_lr": limits.LR, "qat_lr": limits.LR, "batch_size": limits.BATCH_SIZE,
                  "phi_max": limits.PHI_MAX, "phi_min": limits.PHI_MIN, "width": limits.WIDTH,
                  "n_record": limits.RECORD, "n_train": limits.N_SAMPLES, "n_test": limits.N_SAMPLES,
                  "threads": limits.THREADS}
        optional = {"finetune_epochs", "qat_epochs", "finetune_lr", "qat_lr", "phi_max", "n_train", "n_test"}
        for name, rng in checks.items():
            v = getattr(self, name)
            if v is None and name in optional:
                continue
            object.__setattr__(self, name, rng.check(name, v, exc=FlowError))
        if self.phi_max is not None and self.phi_min > self.phi_max:
            raise FlowError(f"phi_min: must be an integer in [0, {self.phi_max}] (phi_max), got {self.phi_min!r}")
        if self.model_class is not None and not isinstance(self.model_class, str):
            raise FlowError(f"model_class: must be a string or None, got {type(self.model_class).__name__}")

    def ceiling(self, macro) -> int:
        """The FTA ceiling on ``macro``: ``phi_max``, or the macro's (which bounds it; :func:`model.fta.check_phi`)."""
        try:
            _, pm = check_phi(macro.phi_max if self.phi_max is None else self.phi_max, self.phi_min,
                              ceiling=macro.phi_max)
        except ValueError as e:
            raise FlowError(str(e)) from None
        return pm


@dataclass(frozen=True)
class FlowReport:
    """What :func:`run_flow` wrote: ``report`` is ``out/report.json`` with ``artifact`` as a path.

    ``rep["accuracy"]`` reads the report dict (``FlowReport`` is a read-only mapping of it).
    """

    report: dict
    out: Path

    @property
    def artifact(self) -> Path:
        return self.out / "artifact"

    @property
    def accuracy(self) -> dict:
        return self.report["accuracy"]

    def __getitem__(self, key):
        return self.report[key]

    def __contains__(self, key):
        return key in self.report

    def get(self, key, default=None):
        return self.report.get(key, default)


def learning_rates(lr: float = 2e-3, finetune_lr: float | None = None, qat_lr: float | None = None
                   ) -> tuple[float, float, float]:
    """The flow's (float, block-prune fine-tune, QAT) learning rates: the last two default to ``lr / 2``, ``lr / 10``."""
    return lr, lr / 2 if finetune_lr is None else finetune_lr, lr / 10 if qat_lr is None else qat_lr


def run_flow(model: str | nn.Module, data, hw: HwConfig, options: FlowOptions | None = None, *,
             out: str | Path = "build/compile", on_frozen=None) -> FlowReport:
    """Run the hybrid-grained pruning flow and export the compiled artifact.

    Parameters
    ----------
    model : str, Path or nn.Module
        A zoo name, an ``.onnx`` file, a state dict (``.pt``/``.pth``/``.safetensors``,
        with ``model_class``) or a module (deep-copied; never changed).
    data : str, Data, dict or tuple
        A dataset name, an ``.npz`` with ``x_train, y_train, x_test, y_test``, or
        the user's tensors / Datasets / DataLoaders (:func:`model.torch.data.as_data`).

    hw : HwConfig
        The hardware configuration the network is compiled for.
    options : FlowOptions, optional
        Sparsity, schedule and the rest (default: ``FlowOptions()``).
    out : str or Path
        Output folder (:func:`model.outdir.output_dir`).

    Returns a :class:`FlowReport` (its ``report`` is also written to
    ``out/report.json``); the artifact is ``out/artifact``.
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
    if not isinstance(hw, HwConfig):
        raise FlowError(f"hw: must be an HwConfig (model.config.load_config reads a YAML), got {type(hw).__name__}")
    opts = FlowOptions() if options is None else options
    if not isinstance(opts, FlowOptions):
        raise FlowError(f"options: must be a FlowOptions, got {type(opts).__name__}")
    cfg = hw
    macro = cfg.macro
    pm = opts.ceiling(macro)
    sparsity, seed, epochs, lr, batch_size = opts.sparsity, opts.seed, opts.epochs, opts.lr, opts.batch_size
    phi_min, width, model_class, threads = opts.phi_min, opts.width, opts.model_class, opts.threads
    n_record, progress, finetune_lr, qat_lr = opts.n_record, opts.progress, opts.finetune_lr, opts.qat_lr
    finetune_epochs, qat_epochs = opts.finetune_epochs, opts.qat_epochs
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
        raise FlowError(str(e) if str(e).startswith("data") else f"data: {e}") from None
    if opts.n_train or opts.n_test:
        ds = ds.subset(opts.n_train, opts.n_test)
    try:
        net, net_name = load_model(model, model_class, ds.num_classes, ds.in_shape[0], width,
                                   input_shape=ds.in_shape)
    except ModelError as e:
        raise FlowError(str(e)) from None
    check_finite(net)
    xtr, ytr, xte, yte = ds.x_train, ds.y_train, ds.x_test, ds.y_test
    kw = dict(batch_size=batch_size, progress=progress)
    acc = {}

    def stage(name):
        times[name] = round(time.time() - t0 - sum(times.values()), 2)
        a = acc.get(name)
        log.info("%s: stage %s done in %.1f s%s", net_name, name, times[name],
                 "" if a is None else f", test accuracy {100 * a:.2f} %")

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
    if opts.compare:
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
        prog = network_program(st.net, xte[:max(2, n_record)], recs, calibration=xtr[:CALIBRATION_SAMPLES])
    except (ExportError, ValueError) as e:
        raise FlowError(str(e)) from None
    acc["integer_only"] = integer_only_accuracy(prog, recs, xte, yte)
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
    warnings += accuracy_warnings(acc, {"float": epochs, "finetune": ft_ep, "qat": qat_ep})
    # 7. artifact + report, all staged next to --out and moved in together
    try:
        with output_dir(out, COMMAND, inputs) as tmp:
            gart.load(gart.save(tmp / "artifact", net_name, macro, recs, meta=meta, overwrite=True, hw=cfg,
                                program=prog))
            stage("export")
            rep = {"network": net_name, "data": str(ds.name), "hw": cfg.name, "hw_file": Path(cfg.path).name if cfg.path else None, "group_size": G, "phi_max": pm,
                   "phi_min": phi_min, "sparsity": float(sparsity), "total_sparsity": s_tot, "seed": int(seed),
                   "threads": int(threads), "batch_size": int(batch_size),
                   "lr": {"float": lr, "finetune": ft_lr, "qat": q_lr},
                   "epochs": {"float": epochs, "finetune": ft_ep, "qat": qat_ep}, "width": width,
                   "n_train": len(xtr), "n_test": len(xte), "accuracy": acc, "artifact": "artifact",
                   "layers": layers, "macs": macs, "batchnorm": cap.bn, "notes": cap.notes, "warnings": warnings,
                   "integer_check": checks, "plots": _plots(tmp, layers) if opts.plots else [], "times": times}
            rep["times"]["total"] = round(time.time() - t0, 2)
            (tmp / "report.json").write_text(jsonio.dumps(rep, what="report.json"))
            (tmp / "report.md").write_text(_markdown(rep))
    except OutputError as e:
        raise FlowError(str(e)) from None
    return FlowReport({**rep, "artifact": str(Path(out) / "artifact")}, Path(out))


def integer_only_accuracy(prog: dict, recs: list, x: torch.Tensor, y: torch.Tensor, batch: int = 256):
    """Top-1 accuracy of the integer-only path (:class:`model.torch.intpath.IntegerNetwork`, the chip's
    arithmetic, docs/design.md §13) on ``x``; None when the chip cannot run the program (an op it lacks)."""
    from dbpim.model.chip import ChipError, integer_plan
    from dbpim.model.requant import RequantError
    from dbpim.model.torch.intpath import IntegerNetwork
    try:
        net = IntegerNetwork(integer_plan(prog, recs), recs)
    except (ChipError, RequantError):
        return None
    correct = 0
    for i in range(0, len(x), batch):
        correct += int((net(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
    return correct / max(1, len(x))


def accuracy_warnings(acc: dict, epochs: dict) -> list[str]:
    """A warning when the final (integer) accuracy exceeds the float one: the float stage was trained less
    (the pruned network's fine-tune and the QAT train on), not that pruning or quantization helps."""
    f, q = acc.get("float"), acc.get("final")
    if f is None or q is None or not q > f:
        return []
    more = float(epochs.get("finetune", 0)) + float(epochs.get("qat", 0))
    return [f"the final integer accuracy {100 * q:.2f} % exceeds the float one {100 * f:.2f} %: the float stage was "
            f"trained less ({float(epochs.get('float', 0)):g} epochs; the fine-tune and QAT add {more:g} more), so "
            "the float figure is not an upper bound here; train the float stage longer to compare them"]


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
            raise FlowError(f"model: layer {layer or '(top level)'}: {tensor} holds NaN or inf values; "
                            "a network must have finite weights")


def demo(hw: HwConfig, out: str | Path = "build/demo", seed: int = 0, epochs: float = 15,
         progress: bool = True, sparsity: float = 0.5) -> tuple[Path, dict]:
    """``make demo``: SmallCNN on digits, short schedule, at ``sparsity``. Returns (artifact path, accuracies)."""
    rep = run_flow("smallcnn", "digits", hw, FlowOptions(sparsity=sparsity, seed=seed, epochs=epochs,
                                                         progress=progress), out=out)
    return rep.artifact, rep.accuracy


def run_all_zoo(hw: HwConfig, options: FlowOptions | None = None, *, out: str | Path = "build/zoo",
                names=ZOO32) -> dict:
    """The flow on each CIFAR-size zoo network with digits upscaled to 32x32.

    ``options`` default to the zoo's short schedule (3 epochs, width 0.25).
    Writes ``out/<network>/`` (each a :func:`run_flow` folder) and
    ``out/summary.json`` (artifact paths relative to ``out``), all moved into
    ``out`` together when the last network is done.
    """
    o = FlowOptions(epochs=3, width=0.25) if options is None else options
    inputs = [hw.path] if hw.path else []
    try:
        check_output(out, ZOO_COMMAND, inputs)
        summary = {}
        with output_dir(out, ZOO_COMMAND, inputs) as tmp:
            for n in names:
                rep = run_flow(n, "digits32", hw, o, out=tmp / n)
                summary[n] = {"accuracy": rep["accuracy"], "times": rep["times"], "artifact": f"{n}/artifact"}
                log.info("%s: %s (%s s)", n, ", ".join(f"{k}={v:.4f}" for k, v in rep["accuracy"].items()
                                                        if v is not None), rep["times"]["total"])
            (tmp / "summary.json").write_text(jsonio.dumps(summary, what="summary.json"))
    except OutputError as e:
        raise FlowError(str(e)) from None
    return summary

"""Export a quantized (frozen) network as the compiled artifact (docs/design.md §8).

The network is the ``fx.GraphModule`` of :func:`model.torch.graph.capture`
with its mapped layers wrapped in ``QLayer``. :func:`graph_ops` walks the graph
in execution order: each ``QLayer`` node becomes one mapped record (one per
conv group of a grouped convolution; a Conv1d is a conv2d of height 1), every
other node a ``simd`` record costed with :mod:`model.simd` (``op``, ``macs``,
``elements``), or nothing for views (reshape, flatten, transpose, ...).

Shapes are per sample: each node's batch axis is found by running one and two
samples (:func:`model.torch.graph.propagate_shapes`); a Linear's leading
non-batch axes are tokens, so its recorded input is ``(S, *tokens, K)``.

:func:`export` compiles every mapped layer with ``model.compile.compile_layer``,
checks that ``model.layer.run_layer`` on the recorded inputs reproduces the
torch integer accumulators bit for bit (:func:`verify_integer`), and writes
the artifact with ``model.artifact.save`` (temporary directory, then rename).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.fx as fx
from torch import nn

from dbpim.model import artifact as gart
from dbpim.model.compile import compile_layer
from dbpim.model.config import HwConfig, MacroConfig
from dbpim.model.layer import run_layer
from dbpim.model.torch.attention import mask_scores
from dbpim.model.torch.graph import conv_padding, node_label, propagate_shapes
from dbpim.model.torch.prune import weight_kn
from dbpim.model.torch.qat import QLayer, qlayers

__all__ = ["graph_ops", "record_int", "layer_records", "verify_integer", "export", "ExportError", "mac_count"]


class ExportError(ValueError):
    """The network cannot be exported (not frozen, not traceable...)."""


# ----------------------------------------------------------------------------- node classification

_SKIP_MODULES = (nn.Identity, nn.Flatten, nn.Unflatten, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout)
_MODULE_OPS = (
    ((nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.LeakyReLU, nn.PReLU), "relu"),
    ((nn.Sigmoid, nn.SiLU, nn.Tanh, nn.Hardswish, nn.Hardsigmoid, nn.Mish, nn.ELU, nn.Softplus), "act"),
    ((nn.GELU,), "gelu"),
    ((nn.Softmax, nn.LogSoftmax), "softmax"),
    ((nn.LayerNorm, nn.GroupNorm, nn.RMSNorm), "layernorm"),
    ((nn.modules.batchnorm._BatchNorm,), "norm"),
    ((nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d), "pool"),
    ((nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d), "pool"),
    ((nn.Upsample, nn.Embedding, nn.ZeroPad2d, nn.ConstantPad1d, nn.ConstantPad2d, nn.PixelShuffle), "move"),
)
_VIEW = {"flatten", "reshape", "view", "permute", "transpose", "squeeze", "unsqueeze", "unflatten", "size", "dim",
         "chunk", "split", "unbind", "contiguous", "expand", "expand_as", "t", "detach", "to", "float", "double",
         "type", "type_as", "view_as", "reshape_as", "movedim", "dropout"}
_FUNC_OPS = {
    "add": "add", "sub": "add", "iadd": "add", "isub": "add", "rsub": "add",
    "mul": "mul", "div": "mul", "truediv": "mul", "floordiv": "mul", "imul": "mul", "itruediv": "mul",
    "neg": "mul", "pow": "mul", "sqrt": "mul", "rsqrt": "mul", "reciprocal": "mul",
    "relu": "relu", "relu6": "relu", "hardtanh": "relu", "leaky_relu": "relu", "clamp": "relu", "clamp_min": "relu",
    "clip": "relu",
    "sigmoid": "act", "tanh": "act", "silu": "act", "hardswish": "act", "hardsigmoid": "act", "mish": "act",
    "elu": "act", "softplus": "act", "exp": "act", "log": "act", "erf": "act",
    "gelu": "gelu", "softmax": "softmax", "log_softmax": "softmax",
    "layer_norm": "layernorm", "group_norm": "layernorm", "rms_norm": "layernorm", "batch_norm": "norm",
    "matmul": "matmul", "bmm": "matmul", "mm": "matmul", "baddbmm": "matmul", "einsum": "matmul",
    "linear": "conv", "conv1d": "conv", "conv2d": "conv",
    "max_pool1d": "pool", "max_pool2d": "pool", "avg_pool1d": "pool", "avg_pool2d": "pool",
    "adaptive_avg_pool1d": "pool", "adaptive_avg_pool2d": "pool", "adaptive_max_pool2d": "pool",
    "mean": "pool", "sum": "pool", "amax": "pool", "max": "pool", "min": "pool", "amin": "pool",
    "masked_fill": "mask", "where": "mask", "mask_scores": "mask",
    "cat": "move", "concat": "move", "stack": "move", "interpolate": "move", "upsample": "move", "pad": "move",
    "embedding": "move", "repeat": "move", "repeat_interleave": "move", "gather": "move", "index_select": "move",
}


def _fname(node: fx.Node) -> str:
    t = node.target
    if node.op == "call_method":
        return str(t)
    if t is mask_scores:
        return "mask_scores"
    return getattr(t, "__name__", str(t)).lstrip("_")


def _numel(shape) -> int:
    return int(np.prod(shape, dtype=np.int64)) if shape is not None else 0


def _shape(arg) -> tuple | None:
    return arg.meta.get("shape1") if isinstance(arg, fx.Node) else None


def _is_param(arg) -> bool:
    return isinstance(arg, fx.Node) and arg.op == "get_attr"


def _kernel_taps(node: fx.Node, dims: int) -> int:
    k = node.args[1] if len(node.args) > 1 else node.kwargs.get("kernel_size", 1)
    return int(np.prod(k if isinstance(k, (tuple, list)) else [k] * dims))


def _function_op(node: fx.Node, out_shape) -> tuple[str | None, int, int, str | None]:
    """(op, macs, elements, parameter read directly) of a call_function / call_method node; op None = a view."""
    name = _fname(node)
    if name in _VIEW or name in ("getattr", "getitem", "finfo"):
        return None, 0, 0, None
    op = _FUNC_OPS.get(name, "other")
    out = _numel(out_shape)
    a0 = node.args[0] if node.args else None
    param = next((str(a.target) for a in node.args if _is_param(a)), None)
    if op == "matmul":
        if name == "einsum":
            return "matmul", 0, out, param  # not costed as MACs: unknown contraction
        a = node.args[1] if name == "baddbmm" else a0
        sa = _shape(a)
        k = int(sa[-1]) if sa else 1
        return "matmul", out * k, 0, param
    if op == "conv":
        w = _shape(node.args[1]) if len(node.args) > 1 else _shape(node.kwargs.get("weight"))
        k = int(np.prod(w[1:])) if w else 1
        return "conv", out * k, 0, param
    if op == "pool":
        if name in ("max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d"):
            return "pool", 0, out * _kernel_taps(node, 1 if name.endswith("1d") else 2), None
        return "pool", 0, _numel(_shape(a0)), None
    return op, 0, out, None


def _module_op(m: nn.Module, in_shape, out_shape) -> tuple[str | None, int, int]:
    """(op, macs, elements) of a call_module node that is not mapped; op None = nothing to run."""
    out = _numel(out_shape)
    if isinstance(m, _SKIP_MODULES):
        return None, 0, 0
    if isinstance(m, (nn.Conv1d, nn.Conv2d)):
        taps = (m.in_channels // m.groups) * int(np.prod(m.kernel_size))
        return ("depthwise" if m.groups == m.in_channels and m.groups > 1 else "conv"), out * taps, 0
    if isinstance(m, nn.Linear):
        return "conv", out * m.in_features, 0
    for types, op in _MODULE_OPS:
        if isinstance(m, types):
            if op == "pool" and isinstance(m, (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d)):
                ks = m.kernel_size if isinstance(m.kernel_size, tuple) else (m.kernel_size,) * (
                    1 if isinstance(m, (nn.MaxPool1d, nn.AvgPool1d)) else 2)
                return "pool", 0, out * int(np.prod(ks))
            if op == "pool":
                return "pool", 0, _numel(in_shape)
            return op, 0, out
    return "module", 0, out  # an opaque module: its MACs are counted by running it (_opaque_macs)


def _per_sample(shape, axis) -> tuple:
    return tuple(int(v) for i, v in enumerate(shape) if i != axis)


@torch.no_grad()
def _opaque_macs(gm: fx.GraphModule, x: torch.Tensor, targets: set[str]) -> dict[str, int]:
    """MACs per sample of the opaque modules ``targets``, counted by running them on one sample."""
    if not targets:
        return {}
    from torch.utils.flop_counter import FlopCounterMode
    counts: dict[str, int] = {}

    class _Run(fx.Interpreter):
        def call_module(self, target, args, kwargs):
            if target not in targets:
                return super().call_module(target, args, kwargs)
            fc = FlopCounterMode(display=False)
            with fc:
                out = super().call_module(target, args, kwargs)
            counts[target] = counts.get(target, 0) + int(fc.get_total_flops()) // 2
            return out

    was = gm.training
    gm.eval()
    try:
        _Run(gm).run(x[:1])
    finally:
        gm.train(was)
    return counts


def graph_ops(gm: fx.GraphModule, sample: torch.Tensor) -> list[dict]:
    """Operations of a captured network in execution order.

    Each entry: ``name``, ``node``, ``kind`` (``mapped`` or ``simd``), ``op``,
    ``module`` (call_module nodes), ``in_shape`` / ``out_shape`` (per sample),
    ``in_axis`` (batch axis of the input), ``macs``, ``elements`` (per sample)
    and ``param`` (a parameter read directly by a functional weight op).
    """
    try:
        propagate_shapes(gm, sample)
    except Exception as e:  # noqa: BLE001
        raise ExportError(f"model: does not run on the recorded samples ({type(e).__name__}: "
                          f"{str(e).splitlines()[0][:200]})") from None
    mods = dict(gm.named_modules())
    ops = []
    for node in gm.graph.nodes:
        if node.op in ("placeholder", "output", "get_attr") or "shape1" not in node.meta:
            continue
        a0 = node.args[0] if node.args else None
        in_axis = a0.meta.get("batch_axis") if isinstance(a0, fx.Node) else None
        out_axis = node.meta.get("batch_axis")
        in_shape = _per_sample(_shape(a0), in_axis) if _shape(a0) is not None else None
        out_shape = _per_sample(node.meta["shape1"], out_axis)
        rec = {"name": node_label(node), "node": node, "module": None, "in_shape": in_shape or out_shape,
               "out_shape": out_shape, "in_axis": in_axis, "out_axis": out_axis, "macs": 0, "elements": 0,
               "param": None}
        if node.op == "call_module":
            m = mods[str(node.target)]
            rec["module"] = m
            if isinstance(m, QLayer):
                rec.update(kind="mapped", op=m.kind)
                ops.append(rec)
                continue
            op, macs, el = _module_op(m, _shape(a0), node.meta["shape1"])
        else:
            op, macs, el, rec["param"] = _function_op(node, node.meta["shape1"])
        if op is None:
            continue
        rec.update(kind="simd", op=op, macs=int(macs), elements=int(el))
        ops.append(rec)
    opaque = {str(r["node"].target) for r in ops if r["op"] == "module"}
    macs = _opaque_macs(gm, sample, opaque)
    for r in ops:
        if r["op"] == "module":
            r["macs"] = macs.get(str(r["node"].target), 0)
    return ops


def mac_count(ops: list[dict]) -> dict:
    """MACs per sample: mapped, SIMD, total and the mapped share."""
    mapped = sum(r["macs"] for r in ops if r["kind"] == "mapped")
    simd = sum(r["macs"] for r in ops if r["kind"] == "simd")
    total = mapped + simd
    return {"mapped": int(mapped), "simd": int(simd), "total": int(total),
            "mapped_share": mapped / total if total else 0.0}


# ----------------------------------------------------------------------------- integer recording

@torch.no_grad()
def record_int(model: nn.Module, x: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Run the integer path on ``x``; per QLayer name: (x_int, y_int) tensors of integers
    as the layer saw them (the layer's own input and accumulator layouts)."""
    qs = qlayers(model)
    if not qs or any(q.mode != "int" for _, q in qs):
        raise ExportError("model: not frozen; run model.torch.qat.freeze first")
    for _, q in qs:
        q.record = []
    was = model.training
    try:
        model.eval()
        model(x)
        return {n: q.record[0] for n, q in qs if q.record}
    finally:
        model.train(was)
        for _, q in qs:
            q.record = None


def _w_float(q: QLayer) -> np.ndarray:
    """Float weights (K x N, float32) for sweeps: the module's ``dbpim_w_float`` if a flow kept the
    unpruned ones (BatchNorm folded), else its current weights (pruned blocks are then 0)."""
    w = getattr(q.inner, "dbpim_w_float", None)
    w = weight_kn(q.inner).detach() if w is None else w
    return w.detach().cpu().numpy().astype(np.float32)


def _samples_first(t: np.ndarray, axis: int | None) -> np.ndarray:
    return t if axis in (None, 0) else np.moveaxis(t, axis, 0)


def _mapped_records(op: dict, q: QLayer, macro: MacroConfig, G: int, rec: tuple | None) -> list[gart.LayerRecord]:
    """One mapped record per conv group of the QLayer ``q`` (a Conv1d as a conv2d of height 1)."""
    if not q.fta:
        raise ExportError(f"layer {op['name']}: not FTA-quantized; only FTA networks can be compiled")
    w_all = q.w_int.numpy().astype(np.int8)
    K, N = w_all.shape
    g = q.groups
    ng = N // g
    nb = -(-ng // G)
    bm = getattr(q.inner, "dbpim_block_mask", None)
    mask_all = np.ones((K, g * nb), bool) if bm is None else bm.numpy().astype(bool)
    if mask_all.shape != (K, g * nb):
        raise ExportError(f"layer {op['name']}: mask shape {mask_all.shape} does not match group size {G} "
                          f"(pruned with another hw configuration?)")
    phi_all = q.phi.numpy().astype(np.uint8)
    scale_all = q.w_scale.numpy().astype(np.float32)
    w_float_all = _w_float(q)
    signed = bool(q.act.signed)
    x_int = None if rec is None else _samples_first(rec[0].numpy(), op["in_axis"])
    in_shape, out_shape, geo = tuple(op["in_shape"]), tuple(op["out_shape"]), {}
    if q.is_conv:
        c = q.inner
        pad = conv_padding(c)
        if q.kind == "conv1d":  # (C, L) -> (C, 1, L), kernel (1, k)
            in_shape, out_shape = (in_shape[0], 1, in_shape[1]), (out_shape[0], 1, out_shape[1])
            geo = dict(kernel=(1, c.kernel_size[0]), stride=(1, c.stride[0]), padding=(0, pad[0]),
                       dilation=(1, c.dilation[0]))
            x_int = None if x_int is None else x_int[:, :, None, :]
        else:
            geo = dict(kernel=tuple(c.kernel_size), stride=tuple(c.stride), padding=pad, dilation=tuple(c.dilation))
    out = []
    for j in range(g):
        cols = slice(j * ng, (j + 1) * ng)
        w, phi, mask = w_all[:, cols], phi_all[cols], mask_all[:, j * nb:(j + 1) * nb]
        try:
            compiled = compile_layer(w, phi, mask, macro, G)
        except ValueError as e:
            raise ExportError(f"layer {op['name']}: cannot be compiled ({e})") from None
        xs, ins, outs = x_int, in_shape, out_shape
        if g > 1:
            cg = in_shape[0] // g
            ins, outs = (cg,) + in_shape[1:], (ng,) + out_shape[1:]
            xs = None if x_int is None else x_int[:, j * cg:(j + 1) * cg]
        out.append(gart.LayerRecord(
            name=op["name"] if g == 1 else f"{op['name']}.g{j}", kind="linear" if q.kind == "linear" else "conv2d",
            in_shape=ins, out_shape=outs, signed_input=signed, w=w, scale=scale_all[cols], compiled=compiled,
            x=None if xs is None else np.ascontiguousarray(xs).astype(np.int8 if signed else np.uint8),
            x_scale=float(q.x_scale), w_float=w_float_all[:, cols], group=(j, g) if g > 1 else None,
            extra={"module": type(q.inner).__name__} if q.kind == "conv1d" else {}, **geo))
    return out


def layer_records(model: fx.GraphModule, macro: MacroConfig, samples: torch.Tensor,
                  group_size: int | None = None) -> tuple[list[gart.LayerRecord], list[dict], dict]:
    """Artifact records of a frozen captured network (mapped layers compiled for ``macro``).

    Returns
    -------
    records : list of LayerRecord
    ops : list of dict
        :func:`graph_ops` (execution order, with MACs).
    recorded : dict
        Per mapped record name: the torch integer accumulators (S * vectors, N)
        on the samples, for :func:`verify_integer`.
    """
    G = group_size or macro.group_size
    if not isinstance(model, fx.GraphModule):
        raise ExportError("model: must be the fx.GraphModule of model.torch.graph.capture")
    if len(samples) < 1:
        raise ExportError(f"samples: must hold at least one input to record, got {len(samples)}")
    rec_int = record_int(model, samples)
    ops = graph_ops(model, samples)
    out, accs = [], {}
    for op in ops:
        if op["kind"] == "simd":
            out.append(gart.LayerRecord(name=op["name"], kind="simd", op=op["op"], in_shape=op["in_shape"],
                                        out_shape=op["out_shape"], macs=op["macs"], elements=op["elements"]))
            continue
        q: QLayer = op["module"]
        tname = str(op["node"].target)
        recs = _mapped_records(op, q, macro, G, rec_int.get(tname))
        op["macs"] = sum(r.mac_count() for r in recs)
        if tname in rec_int:
            y = _samples_first(rec_int[tname][1].numpy(), op["out_axis"])
            y = np.moveaxis(y, 1, -1) if q.is_conv else y  # channels last: im2col row order
            y = y.reshape(-1, y.shape[-1])
            ng = y.shape[1] // q.groups
            for j, r in enumerate(recs):
                accs[r.name] = y[:, j * ng:(j + 1) * ng]
        out.extend(recs)
    return out, ops, accs


def verify_integer(records: list[gart.LayerRecord], accs: dict) -> list[dict]:
    """``model.layer.run_layer`` on every mapped record's recorded inputs against the torch
    accumulators; one entry per mapped record (``name``, ``vectors``, ``equal``).

    Raises
    ------
    ExportError
        On the first layer whose integer outputs differ (naming it).
    """
    out = []
    for r in records:
        if not r.mapped or r.name not in accs or r.x is None:
            continue
        cols = r.im2col_inputs().astype(np.int64)
        got = run_layer(cols, r.compiled, signed=r.signed_input).out.astype(np.int64)
        ref = np.asarray(accs[r.name]).astype(np.int64)
        equal = got.shape == ref.shape and bool(np.array_equal(got, ref))
        if not equal:
            bad = int(np.abs(got - ref).max()) if got.shape == ref.shape else -1
            raise ExportError(f"layer {r.name}: the integer path differs from model.layer.run_layer "
                              f"(shapes {ref.shape} vs {got.shape}, max |diff| {bad})")
        out.append({"name": r.name, "vectors": int(cols.shape[0]), "equal": equal})
    return out


def export(model: fx.GraphModule, network: str, macro: MacroConfig, path, samples: torch.Tensor,
           group_size: int | None = None, meta: dict | None = None, overwrite: bool = True,
           hw: HwConfig | None = None) -> Path:
    """Compile, verify bit-exactness on ``samples`` and write the artifact directory ``path``; returns it.

    ``samples`` are a few real inputs whose integer activations are recorded per mapped layer;
    ``hw``, the whole configuration ``macro`` belongs to, is recorded in the artifact (``hw.yaml``).
    """
    from dbpim.model.torch.program import network_program
    layers, _, accs = layer_records(model, macro, samples, group_size)
    verify_integer(layers, accs)
    try:
        program = network_program(model, samples, layers)
    except ValueError as e:
        raise ExportError(str(e)) from None
    return gart.save(Path(path), network, macro, layers, meta=meta, overwrite=overwrite, hw=hw, program=program)


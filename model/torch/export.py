"""Export a quantized (frozen) network as the compiled artifact (docs/contracts.md).

:func:`trace_ops` walks the network with ``torch.fx`` (``QLayer`` is a leaf)
and shape propagation, giving every operation in execution order: mapped
layers (``conv2d`` / ``linear`` on the macros) and ``simd`` records for
everything else with their elementwise operation counts per sample (depthwise
conv: MACs; pooling: window reads; relu/add/mul/other: output elements).
Pure data movement (flatten, view, dropout, identity) is not recorded.

:func:`export` compiles every mapped layer with ``model.compile.compile_layer``
and writes the artifact with ``model.artifact.save`` (temporary directory,
then rename: never a half-written artifact).
"""

from __future__ import annotations

import operator
from pathlib import Path

import numpy as np
import torch
import torch.fx as fx
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from model import artifact as gart
from model.compile import compile_layer
from model.config import MacroConfig
from model.torch.qat import QLayer, qlayers

__all__ = ["trace_ops", "record_int", "layer_records", "export", "ExportError"]


class ExportError(ValueError):
    """The network cannot be exported (not frozen, not traceable...)."""


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m, qualname):
        return isinstance(m, QLayer) or super().is_leaf_module(m, qualname)


_SKIP_MODULES = (nn.Identity, nn.Flatten, nn.Dropout, nn.Dropout2d)
_SKIP_FUNCS = {torch.flatten, torch.reshape, getattr, operator.getitem}
_SKIP_METHODS = {"flatten", "view", "reshape", "size", "contiguous", "squeeze", "unsqueeze", "permute",
                 "transpose", "dim"}
_POOL = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_RELU = (nn.ReLU, nn.ReLU6)


def _shape(node) -> tuple | None:
    tm = node.meta.get("tensor_meta") if isinstance(node, fx.Node) else None
    return tuple(int(v) for v in tm.shape[1:]) if tm is not None and hasattr(tm, "shape") else None


def _numel(shape) -> int:
    return int(np.prod(shape)) if shape else 0


def trace_ops(model: nn.Module, sample: torch.Tensor) -> list[dict]:
    """Operations of ``model`` in execution order.

    Each entry: ``name``, ``kind`` (``mapped`` or ``simd``), ``op`` (simd op or
    ``conv2d``/``linear``), ``module`` (for call_module nodes), ``in_shape``,
    ``out_shape`` (per sample), ``simd_ops``.
    """
    try:
        graph = _Tracer().trace(model)
    except Exception as e:  # noqa: BLE001
        raise ExportError(f"model: cannot be traced with torch.fx ({type(e).__name__}: {e})") from None
    gm = fx.GraphModule(model, graph)
    was_training = model.training
    gm.eval()
    with torch.no_grad():
        ShapeProp(gm).propagate(sample[:1])
    model.train(was_training)
    mods = dict(model.named_modules())
    ops = []
    for node in gm.graph.nodes:
        if node.op in ("placeholder", "output", "get_attr"):
            continue
        ins = _shape(node.args[0]) if node.args else None
        out = _shape(node)
        if out is None:
            continue
        rec = {"name": str(node.target) if node.op == "call_module" else node.name, "module": None,
               "in_shape": ins or out, "out_shape": out}
        if node.op == "call_module":
            m = mods[node.target]
            rec["module"] = m
            if isinstance(m, QLayer):
                rec.update(kind="mapped", op="conv2d" if m.is_conv else "linear", simd_ops=0)
            elif isinstance(m, _SKIP_MODULES):
                continue
            elif isinstance(m, nn.Conv2d):
                rec.update(kind="simd", op="depthwise" if m.groups > 1 else "other",
                           simd_ops=_numel(out) * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1])
            elif isinstance(m, _POOL):
                if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
                    k = m.kernel_size if isinstance(m.kernel_size, tuple) else (m.kernel_size, m.kernel_size)
                    n = _numel(out) * k[0] * k[1]
                else:
                    n = _numel(ins)
                rec.update(kind="simd", op="pool", simd_ops=n)
            elif isinstance(m, _RELU):
                rec.update(kind="simd", op="relu", simd_ops=_numel(out))
            elif isinstance(m, nn.BatchNorm2d):
                rec.update(kind="simd", op="other", simd_ops=2 * _numel(out))
            else:
                rec.update(kind="simd", op="other", simd_ops=_numel(out))
        elif node.op == "call_function":
            f = node.target
            if f in _SKIP_FUNCS:
                continue
            if f in (operator.add, torch.add, operator.iadd):
                op = "add"
            elif f in (operator.mul, torch.mul, operator.imul):
                op = "mul"
            elif f in (torch.relu, torch.nn.functional.relu, torch.nn.functional.relu6):
                op = "relu"
            elif f in (torch.nn.functional.max_pool2d, torch.nn.functional.avg_pool2d,
                       torch.nn.functional.adaptive_avg_pool2d, torch.mean):
                op = "pool"
            else:
                op = "other"
            rec.update(kind="simd", op=op, simd_ops=_numel(ins) if op == "pool" else _numel(out))
        else:  # call_method
            if node.target in _SKIP_METHODS:
                continue
            op = {"add": "add", "mul": "mul", "relu": "relu", "mean": "pool"}.get(node.target, "other")
            rec.update(kind="simd", op=op, simd_ops=_numel(ins) if op == "pool" else _numel(out))
        ops.append(rec)
    return ops


@torch.no_grad()
def record_int(model: nn.Module, x: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Run the integer path on ``x``; per QLayer name: (x_int, y_int) tensors of integers.

    ``x_int`` is the layer's input quantizer output (NCHW or (S, K)), ``y_int``
    the exact int32 accumulators (NCHW or (S, N)).
    """
    qs = qlayers(model)
    if not qs or any(q.mode != "int" for _, q in qs):
        raise ExportError("model: not frozen; run model.torch.qat.freeze first")
    for _, q in qs:
        q.record = []
    try:
        model.eval()
        model(x)
        return {n: q.record[0] for n, q in qs if q.record}
    finally:
        for _, q in qs:
            q.record = None


def layer_records(model: nn.Module, macro: MacroConfig, samples: torch.Tensor,
                  group_size: int | None = None) -> list[gart.LayerRecord]:
    """Artifact layer records of a frozen network (mapped layers compiled for ``macro``)."""
    G = group_size or macro.group_size
    rec_int = record_int(model, samples)
    out = []
    for op in trace_ops(model, samples):
        if op["kind"] == "simd":
            out.append(gart.LayerRecord(name=op["name"], kind="simd", op=op["op"], in_shape=op["in_shape"],
                                        out_shape=op["out_shape"], simd_ops=int(op["simd_ops"])))
            continue
        q: QLayer = op["module"]
        w = q.w_int.numpy().astype(np.int8)
        K, N = w.shape
        bm = getattr(q.inner, "dbpim_block_mask", None)
        mask = (np.ones((K, -(-N // G)), bool) if bm is None else bm.numpy().astype(bool))
        if mask.shape != (K, -(-N // G)):
            raise ExportError(f"layer {op['name']}: mask shape {mask.shape} does not match group size {G} "
                              f"(pruned with another hw configuration?)")
        phi = q.phi.numpy().astype(np.uint8)
        if not q.fta:
            raise ExportError(f"layer {op['name']}: not FTA-quantized; only FTA networks can be compiled")
        compiled = compile_layer(w, phi, mask, macro, G)
        x_int = rec_int[op["name"]][0].numpy() if op["name"] in rec_int else None
        signed = bool(q.act.signed)
        kw = {}
        if q.is_conv:
            c = q.inner
            kw = dict(kernel=tuple(int(v) for v in c.kernel_size), stride=int(c.stride[0]), padding=int(c.padding[0]))
        out.append(gart.LayerRecord(
            name=op["name"], kind=op["op"], in_shape=op["in_shape"], out_shape=op["out_shape"],
            signed_input=signed, w=w, scale=q.w_scale.numpy().astype(np.float32), compiled=compiled,
            x=None if x_int is None else x_int.astype(np.int8 if signed else np.uint8),
            x_scale=float(q.x_scale), **kw))
    return out


def export(model: nn.Module, network: str, macro: MacroConfig, path, samples: torch.Tensor,
           group_size: int | None = None, meta: dict | None = None, overwrite: bool = True) -> Path:
    """Compile and write the artifact directory ``path``; returns it.

    ``samples`` are a few real inputs (S, C, H, W) whose integer activations are
    recorded per mapped layer.
    """
    layers = layer_records(model, macro, samples, group_size)
    return gart.save(Path(path), network, macro, layers, meta=meta, overwrite=overwrite)

"""The network program of a frozen captured network (docs/design.md §8 "Network program").

:func:`network_program` walks the ``torch.fx`` graph the flow exports and
writes each node as a :mod:`model.program` op: the QLayers as ``mapped`` ops
(their activation scale, signedness, folded bias and the names of their
artifact records), and the float ops between them as the ops
:mod:`model.predict` runs, with the parameters it needs to compute them as
torch does (a depthwise convolution's unfolded weights and BatchNorm, an
unfolded BatchNorm's statistics, a whole ``nn.TransformerEncoderLayer``'s
weights). A node it cannot express (an ``nn.MultiheadAttention`` left whole,
attention masks, Tanh, a batch axis other than 0, ...) becomes
an ``unsupported`` op naming it: the artifact stays valid and
``Artifact.predict`` refuses it with one line.
"""

from __future__ import annotations

import operator

import numpy as np
import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from dbpim.model.torch.graph import conv_padding, node_label, propagate_shapes
from dbpim.model.torch.qat import QLayer

__all__ = ["network_program", "value_ranges"]

_CLAMPS = {nn.ReLU: (0.0, None), nn.ReLU6: (0.0, 6.0)}
_IDENTITY = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout)
_RESHAPES = {"flatten", "reshape", "view", "squeeze", "unsqueeze", "contiguous", "unflatten"}
_FN_CLAMPS = {F.relu: (0.0, None), torch.relu: (0.0, None), F.relu6: (0.0, 6.0), "relu": (0.0, None)}
_ADDS = (operator.add, operator.iadd, torch.add, "add", "add_")
_MULS = (operator.mul, operator.imul, torch.mul, "mul", "mul_")
_SIGMOIDS = (torch.sigmoid, F.sigmoid, "sigmoid")
_SILUS = (F.silu,)


class _Unsupported(Exception):
    """A node the program cannot express; the message names what it is."""


def _per_sample(node: fx.Node) -> list[int]:
    shape, axis = node.meta["shape1"], node.meta.get("batch_axis")
    if axis != 0:
        raise _Unsupported(f"batch axis {axis} (predict runs batch-first values only)")
    return [int(v) for v in shape[1:]]


def _pair(v) -> list[int]:
    return [int(a) for a in (v if isinstance(v, (tuple, list)) else (v, v))]


def _module_op(m: nn.Module, node: fx.Node) -> dict:
    if isinstance(m, QLayer):
        raise AssertionError("QLayers are handled by the caller")
    for t, (lo, hi) in _CLAMPS.items():
        if type(m) is t:
            return {"op": "clamp", "lo": lo, "hi": hi}
    if type(m) is nn.Hardtanh:
        return {"op": "clamp", "lo": float(m.min_val), "hi": float(m.max_val)}
    if isinstance(m, _IDENTITY):
        return {"op": "identity"}
    if isinstance(m, nn.Flatten):
        return {"op": "reshape"}
    if type(m) is nn.MaxPool2d:
        if m.ceil_mode:
            raise _Unsupported("MaxPool2d with ceil_mode=True")
        return {"op": "maxpool2d", "kernel": _pair(m.kernel_size),
                "stride": _pair(m.stride if m.stride is not None else m.kernel_size), "padding": _pair(m.padding),
                "dilation": _pair(m.dilation)}
    if type(m) is nn.AdaptiveAvgPool2d and _pair(m.output_size) == [1, 1]:
        return {"op": "mean", "axes": [1, 2], "keepdim": True}
    if type(m) is nn.AvgPool2d:
        if m.ceil_mode or m.divisor_override is not None:
            raise _Unsupported("AvgPool2d with ceil_mode or divisor_override")
        return {"op": "avgpool2d", "kernel": _pair(m.kernel_size),
                "stride": _pair(m.stride if m.stride is not None else m.kernel_size), "padding": _pair(m.padding),
                "count_include_pad": bool(m.count_include_pad)}
    if type(m) is nn.Sigmoid:
        return {"op": "sigmoid"}
    if type(m) is nn.SiLU:
        return {"op": "silu"}
    if type(m) in (nn.BatchNorm1d, nn.BatchNorm2d):
        return _batchnorm_op(m, node)
    if type(m) is nn.TransformerEncoderLayer:
        return _encoder_layer_op(m, node)
    if type(m) is nn.Softmax:
        return _softmax_op(node, m.dim)
    if type(m) is nn.GELU:
        return {"op": "gelu", "approximate": m.approximate}
    if type(m) is nn.LayerNorm:
        if m.weight is None or m.bias is None:
            raise _Unsupported("LayerNorm without elementwise affine parameters")
        return {"op": "layernorm", "weight": m.weight.detach().float().numpy().copy(),
                "bias": m.bias.detach().float().numpy().copy(), "eps": float(m.eps)}
    if _is_depthwise(m):
        return _depthwise_op(m, node)
    if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
        raise _Unsupported(f"{type(m).__name__} not mapped (groups={getattr(m, 'groups', 1)}: float on the SIMD core)")
    raise _Unsupported(f"{type(m).__name__}")


def _is_depthwise(m: nn.Module) -> bool:
    return (type(m) is nn.Conv2d and m.groups > 1 and m.groups == m.in_channels == m.out_channels
            and m.padding_mode == "zeros")


def _folded_bn(node: fx.Node, mods: dict):
    """The eval-mode BatchNorm2d that alone reads ``node`` (folded into its depthwise op), else None."""
    users = list(node.users)
    if len(users) != 1 or users[0].op != "call_module":
        return None
    bn = mods.get(str(users[0].target))
    if type(bn) is not nn.BatchNorm2d or bn.training or bn.running_mean is None:
        return None
    return users[0]


def _bn_arrays(bn) -> dict:
    """The eval-mode BatchNorm's running statistics and affine parameters (float32 (C,) arrays), its eps."""
    c = bn.num_features
    w = bn.weight.detach() if bn.weight is not None else torch.ones(c)
    b = bn.bias.detach() if bn.bias is not None else torch.zeros(c)
    return {"mean": bn.running_mean.detach().float().numpy().copy(),
            "var": bn.running_var.detach().float().numpy().copy(),
            "weight": w.float().numpy().copy(), "bias": b.float().numpy().copy(), "eps": float(bn.eps)}


def _batchnorm_op(bn, node: fx.Node) -> dict:
    """An eval-mode BatchNorm that is not folded into a mapped layer (torch runs it in float32)."""
    if bn.training or bn.running_mean is None:
        raise _Unsupported(f"{type(bn).__name__} in training mode or without running statistics")
    shape = node.meta["shape1"]
    if type(bn) is nn.BatchNorm2d and len(shape) != 4 or type(bn) is nn.BatchNorm1d and len(shape) != 3:
        raise _Unsupported(f"{type(bn).__name__} on a {len(shape)}-D value (predict runs BatchNorm2d on (N, C, H, W) "
                           "and BatchNorm1d on (N, C, L))")
    return {"op": "batchnorm", **_bn_arrays(bn)}


def _depthwise_op(m: nn.Conv2d, node: fx.Node) -> dict:
    """A depthwise Conv2d as a ``depthwise`` op, with the BatchNorm that alone reads it folded in.

    The op also keeps the torch network's unfolded form for :mod:`model.predict`: the convolution's own
    float32 weights and bias (``dw_weight``, ``dw_bias``) and the BatchNorm's (``bn_*``).
    """
    w = m.weight.detach().double()[:, 0]
    b = m.bias.detach().double() if m.bias is not None else torch.zeros(m.out_channels, dtype=torch.float64)
    bn = node.meta.get("dbpim_folded_bn")
    if bn is not None:
        k = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
        w, b = w * k[:, None, None], (b - bn.running_mean.double()) * k + bn.bias.detach().double()
    op = {"op": "depthwise", "kernel": _pair(m.kernel_size), "stride": _pair(m.stride),
          "padding": _pair(conv_padding(m)), "dilation": _pair(m.dilation),
          "weight": w.numpy().astype(np.float32), "bias": b.numpy().astype(np.float32),
          "dw_weight": m.weight.detach()[:, 0].float().numpy().copy(),
          "dw_bias": None if m.bias is None else m.bias.detach().float().numpy().copy()}
    if bn is not None:
        op.update({f"bn_{k}": v for k, v in _bn_arrays(bn).items()})
    return op


def _encoder_layer_op(m: nn.TransformerEncoderLayer, node: fx.Node) -> dict:
    """A whole ``nn.TransformerEncoderLayer`` (float on the SIMD core; its attention is not decomposed):
    its weights as float32 arrays, run by :mod:`model.predict` in float64."""
    a = m.self_attn
    if any(v is not None and v is not False for v in node.kwargs.values()) or len(node.args) != 1:
        raise _Unsupported("TransformerEncoderLayer with a mask or is_causal")
    if not a.batch_first or not a._qkv_same_embed_dim or a.bias_k is not None or a.add_zero_attn:
        raise _Unsupported("TransformerEncoderLayer without batch_first or with add_bias_kv / add_zero_attn / kdim")
    act = {1: "relu", 2: "gelu"}.get(getattr(m, "activation_relu_or_gelu", 0))
    if act is None or isinstance(m.activation, nn.GELU) and m.activation.approximate != "none":
        raise _Unsupported("TransformerEncoderLayer with an activation other than relu or gelu")
    E = a.embed_dim

    def arr(p, shape):
        return (p.detach().float().numpy().copy() if p is not None else np.zeros(shape, np.float32))

    return {"op": "encoder_layer", "heads": int(a.num_heads), "norm_first": bool(m.norm_first), "activation": act,
            "eps1": float(m.norm1.eps), "eps2": float(m.norm2.eps),
            "in_w": arr(a.in_proj_weight, (3 * E, E)), "in_b": arr(a.in_proj_bias, (3 * E,)),
            "out_w": arr(a.out_proj.weight, (E, E)), "out_b": arr(a.out_proj.bias, (E,)),
            "w1": arr(m.linear1.weight, None), "b1": arr(m.linear1.bias, (m.linear1.out_features,)),
            "w2": arr(m.linear2.weight, None), "b2": arr(m.linear2.bias, (E,)),
            "n1_w": arr(m.norm1.weight, None) if m.norm1.weight is not None else np.ones(E, np.float32),
            "n1_b": arr(m.norm1.bias, (E,)),
            "n2_w": arr(m.norm2.weight, None) if m.norm2.weight is not None else np.ones(E, np.float32),
            "n2_b": arr(m.norm2.bias, (E,))}


def _axis(node: fx.Node, dim) -> int:
    """The per-sample axis of the full-tensor ``dim`` of ``node``'s (first) input (batch axis 0 excluded)."""
    nd = len(node.all_input_nodes[0].meta["shape1"])
    if type(dim) is not int or not -nd <= dim < nd or dim % nd == 0:
        raise _Unsupported(f"dim {dim!r} (predict runs per-sample axes of batch-first values)")
    return dim % nd - 1


def _softmax_op(node: fx.Node, dim) -> dict:
    return {"op": "softmax", "axis": _axis(node, dim)}


def _function_op(node: fx.Node) -> dict:
    t = node.target
    tensors = [a for a in node.args if isinstance(a, fx.Node)]
    name = t if isinstance(t, str) else getattr(t, "__name__", "")
    if t in _MULS and len(node.args) == 2 and len(tensors) == 1 and not node.kwargs:
        c = next(a for a in node.args if not isinstance(a, fx.Node))
        if isinstance(c, (int, float)) and not isinstance(c, bool) and np.isfinite(c):
            return {"op": "scale", "value": float(np.float32(c))}  # torch multiplies by float32(c)
    if t in (operator.matmul, torch.matmul, torch.bmm, "matmul", "bmm") and len(tensors) == 2 and not node.kwargs:
        return {"op": "matmul"}
    if name in ("transpose", "permute") and (node.op == "call_method" or t in (torch.transpose, torch.permute)):
        dims = list(node.args[1:]) if not (len(node.args) == 2 and isinstance(node.args[1], (tuple, list))) \
            else list(node.args[1])
        nd = len(node.args[0].meta["shape1"])
        if name == "transpose":
            if len(dims) != 2:
                raise _Unsupported("transpose without two dims")
            a, b = (_axis(node, d) for d in dims)
            perm = list(range(nd - 1))
            perm[a], perm[b] = perm[b], perm[a]
        else:
            full = [d % nd if type(d) is int else -1 for d in dims]
            if sorted(full) != list(range(nd)) or full[0] != 0:
                raise _Unsupported(f"permute {dims} moves the batch axis")
            perm = [d - 1 for d in full[1:]]
        return {"op": "transpose", "perm": perm}
    if t in (torch.softmax, F.softmax, "softmax") and not node.kwargs.get("dtype"):
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        return _softmax_op(node, dim)
    if t in (F.gelu, "gelu"):
        return {"op": "gelu", "approximate": node.kwargs.get("approximate", "none")}
    if t in _ADDS:
        if len(node.args) != 2 or len(tensors) != 2 or node.kwargs:
            raise _Unsupported("add with a constant or alpha")
        return {"op": "add"}
    if t in _MULS:
        if len(node.args) != 2 or len(tensors) != 2 or node.kwargs:
            raise _Unsupported("mul with a constant")
        return {"op": "mul"}
    if t in _SIGMOIDS and len(node.args) == 1 and not node.kwargs:
        return {"op": "sigmoid"}
    if t in _SILUS and len(node.args) == 1 and not node.kwargs.get("inplace", False):
        return {"op": "silu"}
    if t in _FN_CLAMPS and not node.kwargs.get("inplace", False) and len(node.args) == 1:
        lo, hi = _FN_CLAMPS[t]
        return {"op": "clamp", "lo": lo, "hi": hi}
    if name in _RESHAPES and (node.op == "call_method" or t in (torch.flatten, torch.reshape)):
        return {"op": "reshape"}
    if t is F.adaptive_avg_pool2d and len(node.args) == 2 and _pair(node.args[1]) == [1, 1]:
        return {"op": "mean", "axes": [1, 2], "keepdim": True}
    if name == "mean" and node.op == "call_method" and len(node.args) == 2:
        dims = node.args[1]
        dims = list(dims) if isinstance(dims, (tuple, list)) else [dims]
        nd = len(node.args[0].meta["shape1"])
        axes = sorted({(d % nd) - 1 for d in dims if isinstance(d, int)})
        if len(axes) == len(dims) and min(axes) >= 0:
            return {"op": "mean", "axes": axes, "keepdim": bool(node.kwargs.get("keepdim", False))}
    raise _Unsupported(f"{name or t}")


def _mapped_op(q: QLayer, name: str, records: list) -> dict:
    own = [r.name for r in records if r.name == name or (r.group is not None and r.name.rsplit(".g", 1)[0] == name)]
    if not own:
        raise _Unsupported(f"QLayer without artifact records named {name!r}")
    xs = float(q.x_scale)
    if float(q.act.scale()) != xs:
        raise _Unsupported("QLayer whose activation scale changed after freeze")
    bias = q.inner.bias
    return {"op": "mapped", "kind": q.kind, "layers": own, "signed_input": bool(q.act.signed), "x_scale": xs,
            "bias": None if bias is None else bias.detach().cpu().numpy().astype(np.float32)}


class _Ranges(fx.Interpreter):
    """Runs the graph and keeps every tensor node's value range ``[min, max]`` (float64)."""

    def __init__(self, gm):
        super().__init__(gm)
        self.ranges: dict[str, list[float]] = {}

    def run_node(self, n):
        v = super().run_node(n)
        if isinstance(v, torch.Tensor) and v.is_floating_point() and v.numel():
            lo, hi = float(v.min()), float(v.max())
            if np.isfinite(lo) and np.isfinite(hi):
                prev = self.ranges.get(n.name)
                self.ranges[n.name] = [lo, hi] if prev is None else [min(prev[0], lo), max(prev[1], hi)]
        return v


@torch.no_grad()
def value_ranges(gm: fx.GraphModule, calibration: torch.Tensor, batch: int = 64) -> dict[str, list[float]]:
    """Each tensor node's ``[min, max]`` over the network's values on ``calibration`` inputs (the
    frozen network's own values; the integer-only chip takes the scales of tensors no consumer fixes
    from them, docs/design.md §13)."""
    it = _Ranges(gm)
    for i in range(0, len(calibration), batch):
        it.run(calibration[i:i + batch])
    return it.ranges


@torch.no_grad()
def network_program(gm: fx.GraphModule, samples: torch.Tensor, records: list,
                    calibration: torch.Tensor | None = None) -> dict:
    """The :mod:`model.program` program of the frozen network ``gm`` whose artifact records are ``records``.

    Parameters
    ----------
    gm : fx.GraphModule
        The flow's frozen network (QLayers in ``int`` mode).
    samples : torch.Tensor
        A few inputs (shapes and batch axes are measured on them).
    records : list of model.artifact.LayerRecord
        The artifact's records (:func:`model.torch.export.layer_records`).
    calibration : torch.Tensor, optional
        Inputs whose value ranges every op records as ``range`` (``[min, max]``); default ``samples``.
    """
    propagate_shapes(gm, samples)
    ranges = value_ranges(gm, samples if calibration is None else calibration)
    mods = dict(gm.named_modules())
    ops, out, done, bad = [], None, set(), set()
    folded = {}  # BatchNorm node name -> the depthwise conv node it is folded into
    for node in gm.graph.nodes:
        if node.op == "call_module" and _is_depthwise(mods.get(str(node.target))):
            bn = _folded_bn(node, mods)
            node.meta["dbpim_folded_bn"] = None if bn is None else mods[str(bn.target)]
            if bn is not None:
                folded[bn.name] = node.name
    for node in gm.graph.nodes:
        if node.op == "output":
            out = node.args[0]
            continue
        if node.op == "get_attr" or "shape1" not in node.meta:
            continue  # parameters and non-tensor values (sizes) are read by the op that uses them
        label = node_label(node)
        tensors = [a for a in node.all_input_nodes if "shape1" in a.meta]
        inputs = [a.name for a in tensors if a.name in done]
        rec = {"name": node.name, "op": None, "inputs": inputs}
        try:
            if any(a.name not in done for a in tensors):
                raise _Unsupported("reads a parameter or constant tensor directly")
            after = next((a for a in inputs if a in bad), None)
            if after is not None:
                raise _Unsupported(f"follows the unsupported op {after!r}")
            rec["shape"] = _per_sample(node)
            if node.op == "placeholder":
                rec.update(op="input", inputs=[])
            elif node.name in folded:
                rec.update(op="identity")  # the BatchNorm folded into its depthwise op
            elif node.op == "call_module":
                m = mods[str(node.target)]
                rec.update(_mapped_op(m, label, records) if isinstance(m, QLayer) else _module_op(m, node))
                if rec["op"] == "depthwise" and node.meta.get("dbpim_folded_bn") is not None:
                    bn_name = next(k for k, v in folded.items() if v == node.name)
                    if bn_name in ranges:  # the op computes the BatchNorm's output
                        ranges[node.name] = ranges[bn_name]
            else:
                rec.update(_function_op(node))
            if rec["op"] not in ("input", "add", "mul", "matmul") and len(inputs) != 1:
                raise _Unsupported(f"{rec['op']} with {len(inputs)} tensor inputs")
        except _Unsupported as e:
            if node.op == "placeholder":
                raise ValueError(f"model input: {e}") from None
            axis = node.meta.get("batch_axis")
            shape = [int(v) for i, v in enumerate(node.meta["shape1"]) if i != axis]
            rec = {"name": node.name, "op": "unsupported", "inputs": inputs, "shape": shape, "what": f"{label}: {e}"}
            bad.add(node.name)
        if rec["op"] != "unsupported" and node.name in ranges:
            rec["range"] = ranges[node.name]
        ops.append(rec)
        done.add(node.name)
    if not isinstance(out, fx.Node) or out.name not in done:
        raise ValueError("model: must return one tensor")
    return {"input": {"shape": ops[0]["shape"], "dtype": "float32"}, "output": out.name, "ops": ops}

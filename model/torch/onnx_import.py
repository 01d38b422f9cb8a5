"""A direct reader of ONNX graphs into a ``torch.fx.GraphModule`` (docs/frontend.md "ONNX").

The ``onnx`` package parses and checks the file; this module turns each node
into ``torch`` modules and functions the flow understands: ``Conv`` ->
``nn.Conv1d``/``nn.Conv2d``, ``Gemm`` and ``MatMul`` (+ ``Add``) with a
constant weight -> ``nn.Linear`` (mapped onto the macros), ``BatchNormalization``
-> ``nn.BatchNorm*d`` (folded by dataflow like any BatchNorm), activations,
pooling, ``Reshape``/``Flatten``/``Transpose``/``Concat``/``Resize`` and the
elementwise arithmetic. A node of any other type is an error naming it.

Why a reader of our own rather than a converter package: the maintained
converters either pull in torchvision (not usable here) or wrap ops in their
own module types the flow would have to learn, and did not read the opset-18+
graphs that ``torch.onnx.export`` writes today; reading the graph directly keeps
every weight layer a plain ``nn.Linear``/``nn.Conv*d``. ``Reshape`` keeps axis 0
(the batch) of its input, whatever the target shape says there.
"""

from __future__ import annotations

import operator
from pathlib import Path

import numpy as np
import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

__all__ = ["OnnxImportError", "load_onnx", "SUPPORTED_OPS"]


class OnnxImportError(ValueError):
    """The ONNX file cannot be read; the message is one line naming the file and the node."""


class _Ctx:
    def __init__(self, path: Path, model):
        from onnx import numpy_helper
        self.path, self.np = path, numpy_helper
        self.graph = fx.Graph()
        self.root = nn.Module()
        self.env: dict[str, fx.Node] = {}
        self.consts: dict[str, np.ndarray] = {i.name: np.array(numpy_helper.to_array(i))
                                              for i in model.graph.initializer}
        self.rank: dict[str, int] = {}
        self.users: dict[str, list] = {}
        for n in model.graph.node:
            for i in n.input:
                self.users.setdefault(i, []).append(n)
        self.names: set[str] = set()
        self.skip: dict[str, tuple[str, str]] = {}  # fused Add node -> (its output, the Linear's output)

    def err(self, node, what: str) -> OnnxImportError:
        return OnnxImportError(f"{self.path}: node {node.name or node.output[0]!r} ({node.op_type}): {what}")

    def const(self, name: str):
        return self.consts.get(name) if name else None

    def need_const(self, node, i: int, what: str) -> np.ndarray:
        v = self.const(node.input[i]) if len(node.input) > i else None
        if v is None:
            raise self.err(node, f"{what} must be a constant (an initializer)")
        return v

    def value(self, name: str):
        """The fx node of tensor ``name`` (constants become buffers, scalars Python numbers)."""
        if name in self.env:
            return self.env[name]
        if name in self.consts:
            c = self.consts[name]
            if c.ndim == 0 or c.size == 1 and c.ndim <= 1:
                return c.reshape(()).item()
            attr = self._unique("const_" + name)
            self.root.register_buffer(attr, torch.from_numpy(np.ascontiguousarray(c)))
            self.env[name] = self.graph.get_attr(attr)
            return self.env[name]
        raise OnnxImportError(f"{self.path}: tensor {name!r} is used before it is produced")

    def _unique(self, base: str) -> str:
        safe = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in base).strip("_") or "m"
        if safe[0].isdigit():
            safe = "n" + safe
        name, i = safe, 1
        while name in self.names:
            name, i = f"{safe}_{i}", i + 1
        self.names.add(name)
        return name

    def module(self, node, m: nn.Module, args) -> fx.Node:
        name = self._unique(node.name or node.output[0])
        self.root.add_module(name, m)
        return self.graph.call_module(name, tuple(args))

    def call(self, fn, *args, **kwargs) -> fx.Node:
        return self.graph.call_function(fn, tuple(args), kwargs)

    def method(self, name, *args) -> fx.Node:
        return self.graph.call_method(name, tuple(args))


def _attrs(node) -> dict:
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _sym_pads(ctx, node, pads, k) -> tuple[int, ...] | None:
    if not pads:
        return (0,) * k
    begin, end = pads[:k], pads[k:]
    return tuple(int(b) for b in begin) if list(begin) == list(end) else None


def _conv(ctx, node, a):
    w = ctx.need_const(node, 1, "the weight")
    b = ctx.const(node.input[2]) if len(node.input) > 2 else None
    k = w.ndim - 2
    if k not in (1, 2):
        raise ctx.err(node, f"only 1-D and 2-D convolutions are read, got a {k}-D kernel")
    pads = _sym_pads(ctx, node, a.get("pads"), k)
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID", "NOTSET", "VALID") or pads is None:
        raise ctx.err(node, "asymmetric or automatic (SAME_*) padding is not read")
    g = int(a.get("group", 1))
    cls = nn.Conv2d if k == 2 else nn.Conv1d
    m = cls(w.shape[1] * g, w.shape[0], tuple(w.shape[2:]), stride=tuple(a.get("strides", [1] * k)),
            padding=pads, dilation=tuple(a.get("dilations", [1] * k)), groups=g, bias=b is not None)
    with torch.no_grad():
        m.weight.copy_(torch.from_numpy(w))
        if b is not None:
            m.bias.copy_(torch.from_numpy(b))
    return ctx.module(node, m, [ctx.value(node.input[0])])


def _linear(ctx, node, w_kn: np.ndarray, bias, x_name: str):
    m = nn.Linear(w_kn.shape[0], w_kn.shape[1], bias=bias is not None)
    with torch.no_grad():
        m.weight.copy_(torch.from_numpy(np.ascontiguousarray(w_kn.T)))
        if bias is not None:
            m.bias.copy_(torch.from_numpy(np.broadcast_to(bias, (w_kn.shape[1],)).astype(np.float32)))
    return ctx.module(node, m, [ctx.value(x_name)])


def _gemm(ctx, node, a):
    if a.get("transA", 0):
        raise ctx.err(node, "transA = 1 is not read")
    B = ctx.need_const(node, 1, "B (the weight)").astype(np.float32)
    W = (B.T if a.get("transB", 0) else B) * float(a.get("alpha", 1.0))
    C = ctx.const(node.input[2]) if len(node.input) > 2 else None
    bias = None if C is None else (C.reshape(-1) * float(a.get("beta", 1.0))).astype(np.float32)
    return _linear(ctx, node, W, bias, node.input[0])


def _matmul(ctx, node, a):
    B = ctx.const(node.input[1])
    if B is None or B.ndim != 2:
        return ctx.call(torch.matmul, ctx.value(node.input[0]), ctx.value(node.input[1]))
    users = ctx.users.get(node.output[0], [])
    bias = None
    if len(users) == 1 and users[0].op_type == "Add":
        other = [i for i in users[0].input if i != node.output[0]]
        c = ctx.const(other[0]) if len(other) == 1 else None
        if c is not None and c.size == B.shape[1] and c.ndim <= 1:
            bias = c.reshape(-1)
            ctx.skip[users[0].name or users[0].output[0]] = (users[0].output[0], node.output[0])
    out = _linear(ctx, node, B.astype(np.float32), bias, node.input[0])
    return out


def _batchnorm(ctx, node, a):
    scale, bias, mean, var = (ctx.need_const(node, i, n) for i, n in ((1, "scale"), (2, "B"), (3, "mean"),
                                                                       (4, "var")))
    r = ctx.rank.get(node.input[0], 4)
    m = (nn.BatchNorm2d if r == 4 else nn.BatchNorm1d)(scale.size, eps=float(a.get("epsilon", 1e-5)))
    with torch.no_grad():
        for t, v in ((m.weight, scale), (m.bias, bias), (m.running_mean, mean), (m.running_var, var)):
            t.copy_(torch.from_numpy(v.astype(np.float32)))
    m.eval()
    return ctx.module(node, m, [ctx.value(node.input[0])])


def _pool(ctx, node, a):
    k = list(a["kernel_shape"])
    pads = _sym_pads(ctx, node, a.get("pads"), len(k))
    if pads is None:
        raise ctx.err(node, "asymmetric padding is not read")
    st = list(a.get("strides", k))
    cm = bool(a.get("ceil_mode", 0))
    if node.op_type == "MaxPool":
        cls = nn.MaxPool2d if len(k) == 2 else nn.MaxPool1d
        m = cls(tuple(k), tuple(st), pads, ceil_mode=cm)
    else:
        cls = nn.AvgPool2d if len(k) == 2 else nn.AvgPool1d
        m = cls(tuple(k), tuple(st), pads, ceil_mode=cm, count_include_pad=bool(a.get("count_include_pad", 0)))
    return ctx.module(node, m, [ctx.value(node.input[0])])


def _global_pool(ctx, node, a):
    r = ctx.rank.get(node.input[0], 4)
    m = (nn.AdaptiveAvgPool2d if r == 4 else nn.AdaptiveAvgPool1d)(1)
    return ctx.module(node, m, [ctx.value(node.input[0])])


def _reshape(ctx, node, a):
    shape = [int(v) for v in ctx.need_const(node, 1, "the target shape")]
    x = ctx.value(node.input[0])
    dims = [ctx.method("size", x, 0)]
    for i, v in enumerate(shape[1:], start=1):
        dims.append(ctx.method("size", x, i) if v == 0 and not a.get("allowzero", 0) else v)
    return ctx.method("reshape", x, *dims)


def _flatten(ctx, node, a):
    axis = int(a.get("axis", 1))
    if axis != 1:
        raise ctx.err(node, f"only axis = 1 (keep the batch) is read, got {axis}")
    return ctx.call(torch.flatten, ctx.value(node.input[0]), 1)


def _resize(ctx, node, a):
    scales = ctx.const(node.input[2]) if len(node.input) > 2 else None
    sizes = ctx.const(node.input[3]) if len(node.input) > 3 else None
    mode = a.get("mode", b"nearest")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    x = ctx.value(node.input[0])
    kw = {}
    if mode == "linear":
        ct = a.get("coordinate_transformation_mode", b"half_pixel")
        ct = ct.decode() if isinstance(ct, bytes) else ct
        kw = {"mode": "bilinear" if ctx.rank.get(node.input[0], 4) == 4 else "linear",
              "align_corners": ct == "align_corners"}
    elif mode == "nearest":
        kw = {"mode": "nearest"}
    else:
        raise ctx.err(node, f"mode {mode!r} is not read (nearest, linear)")
    if scales is not None and scales.size:
        return ctx.call(F.interpolate, x, scale_factor=tuple(float(s) for s in scales[2:]), **kw)
    if sizes is not None and sizes.size:
        return ctx.call(F.interpolate, x, size=tuple(int(s) for s in sizes[2:]), **kw)
    raise ctx.err(node, "needs constant scales or sizes")


def _axes(ctx, node, a):
    if "axes" in a:
        return [int(v) for v in a["axes"]]
    c = ctx.const(node.input[1]) if len(node.input) > 1 else None
    return None if c is None else [int(v) for v in c]


def _unsqueeze(ctx, node, a):
    x = ctx.value(node.input[0])
    for ax in sorted(_axes(ctx, node, a) or []):
        x = ctx.call(torch.unsqueeze, x, ax)
    return x


def _squeeze(ctx, node, a):
    axes = _axes(ctx, node, a)
    x = ctx.value(node.input[0])
    if axes is None:
        return ctx.call(torch.squeeze, x)
    for ax in sorted(axes, reverse=True):
        x = ctx.call(torch.squeeze, x, ax)
    return x


def _reduce_mean(ctx, node, a):
    axes = _axes(ctx, node, a)
    return ctx.call(torch.mean, ctx.value(node.input[0]), dim=tuple(axes), keepdim=bool(a.get("keepdims", 1)))


def _layernorm(ctx, node, a):
    w = ctx.need_const(node, 1, "scale")
    b = ctx.const(node.input[2]) if len(node.input) > 2 else None
    if int(a.get("axis", -1)) != -1:
        raise ctx.err(node, "only axis = -1 is read")
    m = nn.LayerNorm(w.shape, eps=float(a.get("epsilon", 1e-5)), bias=b is not None)
    with torch.no_grad():
        m.weight.copy_(torch.from_numpy(w.astype(np.float32)))
        if b is not None:
            m.bias.copy_(torch.from_numpy(b.astype(np.float32)))
    return ctx.module(node, m, [ctx.value(node.input[0])])


def _clip(ctx, node, a):
    lo = ctx.const(node.input[1]) if len(node.input) > 1 else a.get("min")
    hi = ctx.const(node.input[2]) if len(node.input) > 2 else a.get("max")
    return ctx.call(torch.clamp, ctx.value(node.input[0]), None if lo is None else float(np.asarray(lo)),
                    None if hi is None else float(np.asarray(hi)))


def _binary(fn):
    return lambda ctx, node, a: ctx.call(fn, ctx.value(node.input[0]), ctx.value(node.input[1]))


def _unary(fn, **kw):
    return lambda ctx, node, a: ctx.call(fn, ctx.value(node.input[0]), **kw)


_OPS = {
    "Conv": _conv, "Gemm": _gemm, "MatMul": _matmul, "BatchNormalization": _batchnorm,
    "Relu": _unary(F.relu), "Sigmoid": _unary(torch.sigmoid), "Tanh": _unary(torch.tanh), "Erf": _unary(torch.erf),
    "Sqrt": _unary(torch.sqrt), "Exp": _unary(torch.exp), "Clip": _clip,
    "LeakyRelu": lambda ctx, node, a: ctx.call(F.leaky_relu, ctx.value(node.input[0]), float(a.get("alpha", 0.01))),
    "Gelu": lambda ctx, node, a: ctx.call(F.gelu, ctx.value(node.input[0]),
                                          approximate="tanh" if a.get("approximate", b"none") in (b"tanh", "tanh")
                                          else "none"),
    "Softmax": lambda ctx, node, a: ctx.call(torch.softmax, ctx.value(node.input[0]), int(a.get("axis", -1))),
    "MaxPool": _pool, "AveragePool": _pool, "GlobalAveragePool": _global_pool,
    "Flatten": _flatten, "Reshape": _reshape, "Resize": _resize, "Unsqueeze": _unsqueeze, "Squeeze": _squeeze,
    "Transpose": lambda ctx, node, a: ctx.method("permute", ctx.value(node.input[0]), *[int(p) for p in a["perm"]]),
    "Concat": lambda ctx, node, a: ctx.call(torch.cat, [ctx.value(i) for i in node.input], int(a["axis"])),
    "Add": _binary(operator.add), "Sub": _binary(operator.sub), "Mul": _binary(operator.mul),
    "Div": _binary(operator.truediv), "Pow": _binary(operator.pow),
    "ReduceMean": _reduce_mean, "LayerNormalization": _layernorm,
}
SUPPORTED_OPS = tuple(sorted(set(_OPS) | {"Identity", "Dropout", "Constant"}))


def _ranks(model) -> dict[str, int]:
    import onnx
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - ranks are only a hint
        inferred = model
    out = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        t = vi.type.tensor_type
        if t.HasField("shape"):
            out[vi.name] = len(t.shape.dim)
    return out


def load_onnx(path) -> fx.GraphModule:
    """Read an ONNX file into an ``fx.GraphModule`` with one tensor input.

    Raises
    ------
    OnnxImportError
        The file is missing, not ONNX, has several inputs, or holds a node
        this reader does not support (named, with the supported list).
    """
    path = Path(path)
    try:
        import onnx
    except ImportError:
        raise OnnxImportError(f"{path}: reading ONNX needs the onnx package (pip install onnx)") from None
    if not path.is_file():
        raise OnnxImportError(f"{path}: file not found")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as e:  # noqa: BLE001
        raise OnnxImportError(f"{path}: not a valid ONNX model ({type(e).__name__}: "
                              f"{str(e).strip().splitlines()[0][:160] if str(e).strip() else ''})") from None
    ctx = _Ctx(path, model)
    ctx.rank = _ranks(model)
    inputs = [i.name for i in model.graph.input if i.name not in ctx.consts]
    if len(inputs) != 1:
        raise OnnxImportError(f"{path}: the model must have exactly one input tensor, has {len(inputs)}")
    ctx.env[inputs[0]] = ctx.graph.placeholder("x")
    for node in model.graph.node:
        key = node.name or node.output[0]
        if key in ctx.skip:
            src, dst = ctx.skip[key]
            ctx.env[src] = ctx.env[dst]
            continue
        if node.op_type == "Constant":
            ctx.consts[node.output[0]] = np.array(ctx.np.to_array(_attrs(node)["value"]))
            continue
        if node.op_type in ("Identity", "Dropout"):
            if node.input[0] in ctx.consts and node.input[0] not in ctx.env:
                ctx.consts[node.output[0]] = ctx.consts[node.input[0]]
            else:
                ctx.env[node.output[0]] = ctx.value(node.input[0])
            continue
        if node.domain not in ("", "ai.onnx") or node.op_type not in _OPS:
            raise ctx.err(node, f"not supported; supported ops: {', '.join(SUPPORTED_OPS)}")
        out = _OPS[node.op_type](ctx, node, _attrs(node))
        ctx.env[node.output[0]] = out
    outs = [ctx.env[o.name] for o in model.graph.output]
    ctx.graph.output(outs[0] if len(outs) == 1 else tuple(outs))
    gm = fx.GraphModule(ctx.root, ctx.graph, class_name=path.stem.replace("-", "_") or "OnnxModel")
    gm.eval()
    return gm

"""A direct reader of ONNX graphs into a ``torch.fx.GraphModule`` (docs/frontend.md "ONNX").

The ``onnx`` package parses and checks the file; this module turns each node
into ``torch`` modules and functions the flow understands: ``Conv`` ->
``nn.Conv1d``/``nn.Conv2d``, ``Gemm`` and ``MatMul`` (+ ``Add``) with a
constant weight -> ``nn.Linear`` (mapped onto the macros), ``MatMul`` of two
activations -> ``torch.matmul`` (the SIMD core's attention matmul),
``BatchNormalization`` -> ``nn.BatchNorm*d`` (folded by dataflow like any
BatchNorm), ``LayerNormalization`` -> ``nn.LayerNorm``, activations, softmax,
pooling, the data movement (``Reshape``/``Flatten``/``Transpose``/``Concat``/
``Gather``/``Slice``/``Split``/``Expand``/``Resize``, ...) and the elementwise
arithmetic. A node of any other type is an error naming it.

Shapes are folded before anything is built: the reader runs the graph on an
example of a fixed shape (axis 0, the batch, of the file's size or 2 when it
is dynamic; the other axes from the file or from ``input_shape``), every
``Shape``/``Size`` node becomes the constant it gives there, and every node
whose inputs are all constant is evaluated once by onnx's reference
evaluator (``onnx.reference``) and becomes a constant too. What is left are
the activations. The reader follows the batch through them (one example of
another batch size runs beside the first): the target shape of every
``Reshape``/``Expand`` is rewritten with ``-1`` where the batch goes, so the
graph runs on any batch size, as the flow needs; a node that mixes the batch
in a way the reader cannot follow is an error naming it.

Two rewrites make the weight layers those the Python path maps: a packed
projection (``nn.MultiheadAttention``'s ``in_proj``: one ``MatMul`` whose
output is cut into q, k and v by views) becomes one ``nn.Linear`` per block
(checked numerically on the examples before it is applied), and a linear
layer applied to tokens flattened into a 2-D matrix and reshaped back (the
attention's ``out_proj``) is applied to the tokens directly.

Why a reader of our own rather than a converter package: the maintained
converters either pull in torchvision (not usable here) or wrap ops in their
own module types the flow would have to learn, and did not read the opset-18+
graphs that ``torch.onnx.export`` writes today; reading the graph directly keeps
every weight layer a plain ``nn.Linear``/``nn.Conv*d``.
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


_INT_MAX = 2 ** 62
_GUIDE = "or give the nn.Module to run_flow from Python (model.torch.flow.run_flow(module, data))"


class _Ctx:
    """What the reader knows while it walks the graph.

    Every fx node it builds is run at once on two examples (``shadow``: batch
    ``b0`` and ``b1``), so each activation's shape and batch axis are known
    while the next node is read.
    """

    def __init__(self, path: Path, model, b0: int, b1: int):
        from onnx import numpy_helper
        self.path, self.np, self.model = path, numpy_helper, model
        self.b0, self.b1 = b0, b1
        self.graph = fx.Graph()
        self.root = nn.Module()
        self.env: dict[str, fx.Node] = {}
        self.consts: dict[str, np.ndarray] = {i.name: np.array(numpy_helper.to_array(i))
                                              for i in model.graph.initializer}
        self.users: dict[str, list] = {}
        for n in model.graph.node:
            for i in n.input:
                self.users.setdefault(i, []).append(n)
        self.names: set[str] = set()
        self.skip: dict[str, tuple[str, str]] = {}  # fused Add node -> (its output, the Linear's output)
        self.shadow: dict[fx.Node, tuple] = {}
        self.cin: dict[fx.Node, int] = {}  # Reshape outputs: the part of the batch axis inside the batch
        self.batches: dict[fx.Node, tuple | None] = {}
        self.node = None  # the ONNX node being read (for errors)

    def err(self, node, what: str) -> OnnxImportError:
        return OnnxImportError(f"{self.path}: node {node.name or node.output[0]!r} ({node.op_type}): {what}")

    def const(self, name: str):
        return self.consts.get(name) if name else None

    def need_const(self, node, i: int, what: str) -> np.ndarray:
        v = self.const(node.input[i]) if len(node.input) > i else None
        if v is None:
            raise self.err(node, f"{what} must be a constant (an initializer, or computed from shapes)")
        return v

    def value(self, name: str):
        """The fx node of tensor ``name`` (constants become buffers, scalars Python numbers)."""
        if name in self.env:
            return self.env[name]
        if name in self.consts:
            c = self.consts[name]
            if c.ndim == 0 or c.size == 1 and c.ndim <= 1:
                return c.reshape(()).item()
            return self.tensor(name)
        raise OnnxImportError(f"{self.path}: tensor {name!r} is used before it is produced")

    def tensor(self, name: str):
        """The fx node of tensor ``name``, a constant always as a buffer (keeps its shape)."""
        if name in self.env:
            return self.env[name]
        if name not in self.consts:
            raise OnnxImportError(f"{self.path}: tensor {name!r} is used before it is produced")
        c = self.consts[name]
        attr = self._unique("const_" + name)
        t = torch.from_numpy(np.ascontiguousarray(c))
        self.root.register_buffer(attr, t)
        n = self.graph.get_attr(attr)
        self.shadow[n] = (t, t)
        self.env[name] = n
        return n

    def _unique(self, base: str) -> str:
        safe = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in base).strip("_") or "m"
        if safe[0].isdigit():
            safe = "n" + safe
        name, i = safe, 1
        while name in self.names:
            name, i = f"{safe}_{i}", i + 1
        self.names.add(name)
        return name

    # ---- building nodes (each is run on both examples at once)

    def _run(self, n: fx.Node, fn) -> fx.Node:
        outs = []
        for k in (0, 1):
            args = fx.node.map_arg(n.args, lambda a: self.shadow[a][k])
            kwargs = fx.node.map_arg(n.kwargs, lambda a: self.shadow[a][k])
            try:
                with torch.no_grad():
                    outs.append(fn(*args, **kwargs))
            except Exception as e:  # noqa: BLE001 - name the node, one line
                msg = str(e).strip().splitlines()[0][:160] if str(e).strip() else ""
                b = (self.b0, self.b1)[k]
                hint = ""
                if k:
                    hint = "; the reader cannot follow the batch axis through it" + (
                        " (the file fixes the batch at 1, which hides where it goes: export with a dynamic batch, "
                        "dynamic_axes / dynamic_shapes, or a batch of 2)" if self.b0 == 1 else "")
                raise self.err(self.node, f"does not run on a batch of {b} ({type(e).__name__}: {msg}){hint}") from None
        self.shadow[n] = tuple(outs)
        return n

    def module(self, node, m: nn.Module, args, name: str | None = None) -> fx.Node:
        name = self._unique(name or _label(node))
        self.root.add_module(name, m)
        m.eval()
        return self._run(self.graph.call_module(name, tuple(args)), m)

    def call(self, fn, *args, **kwargs) -> fx.Node:
        return self._run(self.graph.call_function(fn, tuple(args), kwargs), fn)

    def method(self, name, *args) -> fx.Node:
        return self._run(self.graph.call_method(name, tuple(args)), lambda t, *a: getattr(t, name)(*a))

    # ---- shapes and the batch

    def shape(self, n, k: int = 0) -> tuple:
        """Shape of fx node ``n`` on example ``k`` (() for a Python number)."""
        v = self.shadow[n][k] if isinstance(n, fx.Node) else n
        return tuple(v.shape) if isinstance(v, torch.Tensor) else ()

    def rank(self, name: str) -> int:
        return len(self.shape(self.value(name))) if name in self.env else int(self.consts[name].ndim)

    def batch(self, n) -> tuple[int, int] | None:
        """(axis, inner) of the batch in fx node ``n``: the axis holds ``outer * batch * inner``
        elements; None when ``n`` does not depend on the batch."""
        if not isinstance(n, fx.Node):
            return None
        if n in self.batches:
            return self.batches[n]
        s0, s1 = self.shape(n, 0), self.shape(n, 1)
        diff = [i for i, (a, b) in enumerate(zip(s0, s1)) if a != b]
        if not diff:
            self.batches[n] = None
            return None
        if len(diff) > 1 or len(s0) != len(s1):
            raise self.err(self.node, f"the batch spreads over several axes (shapes {list(s0)} at batch {self.b0}, "
                                      f"{list(s1)} at batch {self.b1})")
        inner = self.cin.get(n)
        if inner is None:
            src = [self.batch(a) for a in n.all_input_nodes]
            inner = next((b[1] for b in src if b is not None), 1)
        self.batches[n] = (diff[0], inner)
        return self.batches[n]


def _batch_dim(ctx, node, s0: tuple, b: tuple[int, int], out: list[int]) -> tuple[int, int]:
    """(output axis, inner) that holds the batch after reshaping shape ``s0`` (batch ``b``) to ``out``."""
    axis, inner = b
    stride = inner * int(np.prod(s0[axis + 1:], dtype=np.int64))  # elements inside one batch step
    cands = []
    for j in range(len(out)):
        so = int(np.prod(out[j + 1:], dtype=np.int64))
        span = int(np.prod(out[j:], dtype=np.int64))
        if stride % so == 0 and span % (stride * ctx.b0) == 0 and out[j] % (ctx.b0 * (stride // so)) == 0:
            outer = out[j] // (ctx.b0 * (stride // so))
            cands.append((outer != 1, j, stride // so))
    if not cands:
        raise ctx.err(node, f"reshapes {list(s0)} to {out} across the batch axis {axis}; the reader cannot follow "
                            f"the batch; {_GUIDE}")
    _, j, ci = min(cands)
    return j, ci


def _label(node) -> str:
    """A node's name for its module: the torch module path the dynamo exporter records
    (``enc.linear1``; ``enc.self_attn.linear_1`` for a functional call inside a module), else the node name."""
    meta = {p.key: p.value for p in node.metadata_props}
    try:
        import ast
        scopes = ast.literal_eval(meta.get("pkg.torch.onnx.name_scopes", "[]"))
        classes = ast.literal_eval(meta.get("pkg.torch.onnx.class_hierarchy", "[]"))
    except (ValueError, SyntaxError):
        scopes, classes = [], []
    if len(scopes) >= 2 and scopes[-2] and len(classes) == len(scopes):
        own = classes[-2].rsplit(".", 1)[-1]
        return scopes[-2] if own in ("Linear", "Conv1d", "Conv2d", "BatchNorm1d", "BatchNorm2d", "LayerNorm") \
            else f"{scopes[-2]}.{scopes[-1]}"
    return node.name or node.output[0]


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
    """An ``nn.Linear`` holding ``w_kn`` (K x N) applied to tensor ``x_name``."""
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
    r = ctx.rank(node.input[0])
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
    r = ctx.rank(node.input[0])
    m = (nn.AdaptiveAvgPool2d if r == 4 else nn.AdaptiveAvgPool1d)(1)
    return ctx.module(node, m, [ctx.value(node.input[0])])


def _reshape_to(ctx, node, x, out: list[int]) -> fx.Node:
    """``x`` reshaped to ``out`` (its shape on the first example), ``-1`` where the batch goes."""
    b = ctx.batch(x)
    if b is None:
        return ctx.method("reshape", x, *out)
    j, inner = _batch_dim(ctx, node, ctx.shape(x), b, out)
    y = ctx.method("reshape", x, *[-1 if i == j else v for i, v in enumerate(out)])
    ctx.cin[y] = inner
    return y


def _reshape(ctx, node, a):
    t = [int(v) for v in ctx.need_const(node, 1, "the target shape")]
    x = ctx.value(node.input[0])
    s0 = ctx.shape(x)
    out = [s0[i] if v == 0 and not a.get("allowzero", 0) else v for i, v in enumerate(t)]
    if -1 in out:
        k = out.index(-1)
        rest = int(np.prod([v for i, v in enumerate(out) if i != k], dtype=np.int64))
        out[k] = int(np.prod(s0, dtype=np.int64)) // rest if rest else 0
    return _reshape_to(ctx, node, x, out)


def _flatten(ctx, node, a):
    x = ctx.value(node.input[0])
    s0 = ctx.shape(x)
    axis = int(a.get("axis", 1)) % max(len(s0), 1)
    if axis == 1 and ctx.batch(x) in (None, (0, 1)):
        return ctx.call(torch.flatten, x, 1)
    return _reshape_to(ctx, node, x, [int(np.prod(s0[:axis], dtype=np.int64)), int(np.prod(s0[axis:],
                                                                                          dtype=np.int64))])


def _no_batch_axis(ctx, node, x, axis: int, what: str):
    b = ctx.batch(x)
    if b is not None and b[0] == axis % len(ctx.shape(x)):
        raise ctx.err(node, f"{what} along the batch axis {b[0]} is not read; {_GUIDE}")


def _gather(ctx, node, a):
    idx = ctx.need_const(node, 1, "the indices")
    x = ctx.value(node.input[0])
    axis = int(a.get("axis", 0)) % len(ctx.shape(x))
    _no_batch_axis(ctx, node, x, axis, "Gather")
    n = ctx.shape(x)[axis]
    idx = np.where(idx < 0, idx + n, idx).astype(np.int64)
    if idx.ndim == 0:
        return ctx.method("select", x, axis, int(idx))
    pre = (slice(None),) * axis
    return ctx.call(operator.getitem, x, pre + (idx.tolist(),))


def _slice(ctx, node, a):
    x = ctx.value(node.input[0])
    r = len(ctx.shape(x))
    if "starts" in a:  # opset < 10
        starts, ends = list(a["starts"]), list(a["ends"])
        axes, steps = list(a.get("axes", range(len(starts)))), [1] * len(starts)
    else:
        starts = [int(v) for v in ctx.need_const(node, 1, "starts")]
        ends = [int(v) for v in ctx.need_const(node, 2, "ends")]
        ax = ctx.const(node.input[3]) if len(node.input) > 3 else None
        st = ctx.const(node.input[4]) if len(node.input) > 4 else None
        axes = list(range(len(starts))) if ax is None else [int(v) for v in ax]
        steps = [1] * len(starts) if st is None else [int(v) for v in st]
    idx = [slice(None)] * r
    b = ctx.batch(x)
    s0 = ctx.shape(x)

    def bound(v):
        return None if abs(v) >= _INT_MAX else int(v)

    for st_, en, ax, sp in zip(starts, ends, axes, steps):
        ax %= r
        sl = slice(bound(st_), bound(en), sp)
        if b is not None and ax == b[0]:
            if sl.indices(s0[ax]) != (0, s0[ax], 1):
                raise ctx.err(node, f"a slice of the batch axis {ax} is not read; {_GUIDE}")
            continue
        idx[ax] = sl
    return ctx.call(operator.getitem, x, tuple(idx))


def _split(ctx, node, a):
    x = ctx.value(node.input[0])
    axis = int(a.get("axis", 0)) % len(ctx.shape(x))
    _no_batch_axis(ctx, node, x, axis, "Split")
    n = ctx.shape(x)[axis]
    sizes = a.get("split")
    if sizes is None and len(node.input) > 1 and node.input[1]:
        sizes = ctx.need_const(node, 1, "the split sizes")
    if sizes is None:
        k = len(node.output)
        sizes = [-(-n // k)] * (k - 1) + [n - (k - 1) * -(-n // k)]
    parts = ctx.call(torch.split, x, [int(v) for v in sizes], axis)
    for i, o in enumerate(node.output[1:], start=1):
        ctx.env[o] = ctx.call(operator.getitem, parts, i)
    return ctx.call(operator.getitem, parts, 0)


def _expand(ctx, node, a):
    x = ctx.value(node.input[0])
    t = [int(v) for v in ctx.need_const(node, 1, "the shape")]
    s0 = ctx.shape(x)
    out = list(np.broadcast_shapes(tuple(s0), tuple(t)))
    pad = len(out) - len(s0)
    dims = [-1 if i >= pad and s0[i - pad] == v else v for i, v in enumerate(out)]
    if pad:
        x = ctx.method("reshape", x, *([1] * pad + list(s0)))
    return ctx.method("expand", x, *dims)


def _concat(ctx, node, a):
    xs = [ctx.tensor(i) for i in node.input]
    return ctx.call(torch.cat, xs, int(a["axis"]))


def _cast(ctx, node, a):
    from onnx import helper
    dt = torch.from_numpy(np.zeros(0, helper.tensor_dtype_to_np_dtype(int(a["to"])))).dtype
    return ctx.method("to", ctx.value(node.input[0]), dt)


def _where(ctx, node, a):
    c, x, y = (ctx.value(i) for i in node.input)
    return ctx.call(torch.where, ctx.tensor(node.input[0]) if not isinstance(c, fx.Node) else c, x, y)


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
        kw = {"mode": "bilinear" if ctx.rank(node.input[0]) == 4 else "linear",
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


def _reduce(fn):
    def read(ctx, node, a):
        x = ctx.value(node.input[0])
        axes = _axes(ctx, node, a)
        if axes is None:
            axes = list(range(len(ctx.shape(x))))
        for ax in axes:
            _no_batch_axis(ctx, node, x, ax, node.op_type)
        return ctx.call(fn, x, dim=tuple(axes), keepdim=bool(a.get("keepdims", 1)))
    return read


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
    "Sqrt": _unary(torch.sqrt), "Exp": _unary(torch.exp), "Neg": _unary(operator.neg), "Clip": _clip,
    "LeakyRelu": lambda ctx, node, a: ctx.call(F.leaky_relu, ctx.value(node.input[0]), float(a.get("alpha", 0.01))),
    "Gelu": lambda ctx, node, a: ctx.call(F.gelu, ctx.value(node.input[0]),
                                          approximate="tanh" if a.get("approximate", b"none") in (b"tanh", "tanh")
                                          else "none"),
    "Softmax": lambda ctx, node, a: ctx.call(torch.softmax, ctx.value(node.input[0]), int(a.get("axis", -1))),
    "MaxPool": _pool, "AveragePool": _pool, "GlobalAveragePool": _global_pool,
    "Flatten": _flatten, "Reshape": _reshape, "Resize": _resize, "Unsqueeze": _unsqueeze, "Squeeze": _squeeze,
    "Transpose": lambda ctx, node, a: ctx.method("permute", ctx.value(node.input[0]), *[int(p) for p in a["perm"]]),
    "Concat": _concat, "Gather": _gather, "Slice": _slice, "Split": _split, "Expand": _expand, "Cast": _cast,
    "Where": _where, "Equal": _binary(torch.eq),
    "Add": _binary(operator.add), "Sub": _binary(operator.sub), "Mul": _binary(operator.mul),
    "Div": _binary(operator.truediv), "Pow": _binary(operator.pow),
    "ReduceMean": _reduce(torch.mean), "ReduceSum": _reduce(torch.sum),
    "ReduceMax": _reduce(torch.amax), "LayerNormalization": _layernorm,
}
SUPPORTED_OPS = tuple(sorted(set(_OPS) | {"Identity", "Dropout", "Constant", "Shape", "Size"}))


def _fold(ctx, node) -> None:
    """Evaluate ``node`` (all inputs constant) with onnx's reference evaluator; its outputs become constants."""
    from onnx import helper
    from onnx.reference import ReferenceEvaluator
    ins = [i for i in node.input if i]
    g = helper.make_graph(
        [node], "fold",
        [helper.make_tensor_value_info(i, helper.np_dtype_to_tensor_dtype(ctx.consts[i].dtype), ctx.consts[i].shape)
         for i in dict.fromkeys(ins)],
        [helper.make_empty_tensor_value_info(o) for o in node.output if o])
    m = helper.make_model(g, opset_imports=ctx.model.opset_import, ir_version=ctx.model.ir_version)
    try:
        outs = ReferenceEvaluator(m).run(None, {i: ctx.consts[i] for i in ins})
    except Exception as e:  # noqa: BLE001
        msg = str(e).strip().splitlines()[0][:160] if str(e).strip() else ""
        raise ctx.err(node, f"cannot be folded to a constant ({type(e).__name__}: {msg})") from None
    for o, v in zip([o for o in node.output if o], outs):
        ctx.consts[o] = np.array(v)


def _input_shape(path: Path, vi, input_shape) -> tuple[int, list[int]]:
    """(batch of the first example, the other axes) of the graph input ``vi``."""
    dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in vi.type.tensor_type.shape.dim]
    if not dims:
        raise OnnxImportError(f"{path}: input {vi.name!r} has no shape; axis 0 must be the batch")
    rest = dims[1:]
    if input_shape is not None:
        want = [int(v) for v in input_shape]
        if len(want) != len(rest) or any(d is not None and d != w for d, w in zip(rest, want)):
            shown = ["?" if d is None else d for d in dims]
            raise OnnxImportError(f"{path}: input {vi.name!r} has shape {shown} (axis 0 the batch); the data's "
                                  f"samples have shape {want}")
        rest = want
    if any(d is None for d in rest):
        raise OnnxImportError(f"{path}: input {vi.name!r} has a dynamic axis other than the batch (axis 0); "
                              "give the sample shape (input_shape, or the data the flow is given)")
    return (dims[0] or 2), rest


_VIEW_METHODS = {"reshape", "permute", "select", "unsqueeze", "squeeze", "flatten", "contiguous", "transpose"}
_VIEW_FUNCTIONS = {torch.unsqueeze, torch.squeeze, torch.flatten, torch.split, operator.getitem}


def _is_view(n: fx.Node) -> bool:
    return (n.op == "call_method" and n.target in _VIEW_METHODS) or (
        n.op == "call_function" and n.target in _VIEW_FUNCTIONS)


def _linears(ctx) -> list[tuple[fx.Node, nn.Linear]]:
    return [(n, ctx.root.get_submodule(n.target)) for n in ctx.graph.nodes
            if n.op == "call_module" and isinstance(ctx.root.get_submodule(n.target), nn.Linear)]


def _linear_on_tokens(ctx) -> None:
    """``reshape(x, (-1, K)) -> Linear -> reshape`` becomes ``Linear(x)`` on x's tokens (the attention's
    out_proj as the Python path maps it), when every user of the Linear is a reshape."""
    for n, m in _linears(ctx):
        r = n.args[0]
        if not (isinstance(r, fx.Node) and r.op == "call_method" and r.target == "reshape" and len(r.users) == 1
                and n.users and all(u.op == "call_method" and u.target == "reshape" for u in n.users)):
            continue
        x = r.args[0]
        s0 = ctx.shape(x)
        if len(ctx.shape(r)) != 2 or not s0:
            continue
        tail = [int(np.prod(s0[j:], dtype=np.int64)) for j in range(len(s0))]
        b = ctx.batch(x)
        with ctx.graph.inserting_before(n):
            if m.in_features in tail[1:] and (b is None or b[0] < tail.index(m.in_features, 1)):
                j = tail.index(m.in_features, 1)  # x's trailing axes are the features
                x2 = x if j == len(s0) - 1 else ctx._run(ctx.graph.call_method("flatten", (x, j)),
                                                         lambda t, a: t.flatten(a))
            elif b is not None and b[1] * tail[b[0]] // s0[b[0]] == m.in_features:
                # the batch is merged with the heads (L, B * H, D): split it out, (L, B, H * D)
                dims = list(s0[:b[0]]) + [-1, m.in_features]
                x2 = ctx._run(ctx.graph.call_method("reshape", (x, *dims)), lambda t, *a: t.reshape(*a))
                ctx.cin[x2] = 1
            else:
                continue
        n.args = (x2,)
        ctx._run(n, m)
        ctx.batches.pop(n, None)
        ctx.graph.erase_node(r)


def _block_of(ctx, x: fx.Node, m: nn.Linear, e: fx.Node) -> tuple[int, int] | None:
    """(block, width) when node ``e`` equals ``m`` restricted to one contiguous block of its outputs."""
    shp = [ctx.shape(e, k) for k in (0, 1)]
    if not shp[0] or any(s[:-1] != ctx.shape(x, k)[:-1] for k, s in enumerate(shp)):
        return None
    width = shp[0][-1]
    if width >= m.out_features or m.out_features % width:
        return None
    for i in range(m.out_features // width):
        rows = slice(i * width, (i + 1) * width)
        w, bias = m.weight[rows], None if m.bias is None else m.bias[rows]
        with torch.no_grad():
            if all(torch.allclose(F.linear(ctx.shadow[x][k], w, bias), ctx.shadow[e][k], rtol=1e-4, atol=1e-5)
                   for k in (0, 1)):
                return i, width
    return None


def _split_packed(ctx) -> None:
    """A Linear whose output only reaches the rest of the graph through views that each cut out one
    contiguous block of its output features (the packed q/k/v ``in_proj``) becomes one Linear per block."""
    for n, m in _linears(ctx):
        x = n.args[0]
        if not n.users or not isinstance(x, fx.Node):
            continue
        region, todo, cuts, ok = set(), list(n.users), [], True
        while todo and ok:
            u = todo.pop()
            if u in region:
                continue
            region.add(u)
            hit = _block_of(ctx, x, m, u) if _is_view(u) else None
            if hit is not None:
                cuts.append((u, hit))
            elif not _is_view(u) or not u.users:
                ok = False
            else:
                todo.extend(u.users)
        hits = [h for _, h in cuts]
        if not ok or len(cuts) < 2 or len(set(hits)) != len(hits):
            continue
        names = "qkv" if len(cuts) == 3 and len({w for _, w in hits}) == 1 else None
        for e, (i, width) in sorted(cuts, key=lambda t: -t[1][0]):
            lin = nn.Linear(m.in_features, width, bias=m.bias is not None)
            rows = slice(i * width, (i + 1) * width)
            with torch.no_grad():
                lin.weight.copy_(m.weight[rows])
                if m.bias is not None:
                    lin.bias.copy_(m.bias[rows])
            name = ctx._unique(f"{n.target}_{names[i] if names else i}")
            ctx.root.add_module(name, lin)
            lin.eval()
            with ctx.graph.inserting_after(n):
                y = ctx._run(ctx.graph.call_module(name, (x,)), lin)
            e.replace_all_uses_with(y)
        for u in sorted(region, key=lambda v: -_order(ctx, v)):
            if not u.users:
                ctx.graph.erase_node(u)
        if not n.users:
            ctx.graph.erase_node(n)


def _order(ctx, n: fx.Node) -> int:
    return next(i for i, v in enumerate(ctx.graph.nodes) if v is n)


def load_onnx(path, input_shape=None) -> fx.GraphModule:
    """Read an ONNX file into an ``fx.GraphModule`` with one tensor input.

    Parameters
    ----------
    path : str or Path
    input_shape : sequence of int, optional
        The shape of one sample (the input without its batch axis 0): needed
        when the file leaves an axis other than the batch dynamic; checked
        against the file otherwise.

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
    init = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in init]
    if len(inputs) != 1:
        raise OnnxImportError(f"{path}: the model must have exactly one input tensor, has {len(inputs)}")
    b0, rest = _input_shape(path, inputs[0], input_shape)
    ctx = _Ctx(path, model, b0, b0 + 1)
    np_dtype = onnx.helper.tensor_dtype_to_np_dtype(inputs[0].type.tensor_type.elem_type)
    gen = torch.Generator().manual_seed(0)
    x = ctx.graph.placeholder("x")
    dt = torch.from_numpy(np.zeros(0, np_dtype)).dtype
    ctx.shadow[x] = tuple(torch.randn(b, *rest, generator=gen).to(dt) if np_dtype.kind == "f" else
                          torch.zeros(b, *rest, dtype=dt) for b in (ctx.b0, ctx.b1))
    ctx.env[inputs[0].name] = x
    for node in model.graph.node:
        ctx.node = node
        key = node.name or node.output[0]
        if key in ctx.skip:
            src, dst = ctx.skip[key]
            ctx.env[src] = ctx.env[dst]
            continue
        if node.op_type in ("Shape", "Size") and node.input[0] in ctx.env:
            shp = np.array(ctx.shape(ctx.env[node.input[0]]), dtype=np.int64)
            if node.op_type == "Size":
                ctx.consts[node.output[0]] = np.array(int(np.prod(shp)), dtype=np.int64)
            else:
                a = _attrs(node)
                ctx.consts[node.output[0]] = shp[int(a.get("start", 0)):a.get("end", len(shp))]
            continue
        if node.op_type in ("Identity", "Dropout") and node.input[0] in ctx.env:
            ctx.env[node.output[0]] = ctx.env[node.input[0]]
            continue
        if all(i in ctx.consts for i in node.input if i):
            _fold(ctx, node)
            continue
        if node.domain not in ("", "ai.onnx") or node.op_type not in _OPS:
            raise ctx.err(node, f"not supported; supported ops: {', '.join(SUPPORTED_OPS)} (and any op on "
                                f"constants and shapes, folded); {_GUIDE}")
        out = _OPS[node.op_type](ctx, node, _attrs(node))
        ctx.env[node.output[0]] = out
    outs = [ctx.env[o.name] for o in model.graph.output]
    ctx.graph.output(outs[0] if len(outs) == 1 else tuple(outs))
    _linear_on_tokens(ctx)
    _split_packed(ctx)
    gm = fx.GraphModule(ctx.root, ctx.graph, class_name=path.stem.replace("-", "_") or "OnnxModel")
    gm.graph.eliminate_dead_code()
    gm.delete_all_unused_submodules()
    gm.recompile()
    gm.eval()
    return gm

"""Run new inputs through a compiled artifact's network (docs/design.md §8 "Network program").

:func:`predict` executes the artifact's network program (:mod:`model.program`)
in NumPy, with no PyTorch: every mapped layer through the golden model's
integer path (the tile-rebuilt weights of :func:`model.layer.weights_of`, as
:func:`model.layer.run_layer` multiplies them: bit-exact with the hardware)
and every other op exactly as the front-end's frozen integer-path network
computes it (``model.torch.qat.QLayer`` in ``int`` mode and the float32 torch
ops between the layers), in the same dtypes and order of operations, so the
logits equal the frozen torch network's bit for bit. The float32 ops whose
torch kernels fuse or reorder arithmetic are replayed as those kernels compute
them on an x86-64 CPU with AVX2 (PyTorch's CPU build): fused multiply-adds
(:func:`_fma`) in the depthwise convolution and the BatchNorm, SLEEF's
``expf_u10`` (:func:`_expf`) in sigmoid and SiLU, and the cascade sum of
``torch.sum`` (:func:`_torch_sum`) in the global average pooling; docs/design.md
§8 "Exactness of predict" says where this can still differ.

``Artifact.predict(x, batch_size=...)`` is the entry point; :func:`run_artifact`
adds the accuracy and a JSON-ready summary for a command.
"""

from __future__ import annotations

import math

import numpy as np

from dbpim.model.layer import PRODUCT_MAX, weights_of
from dbpim.model.program import DEPTHWISE_TORCH, RUNNABLE, require_program
from dbpim.model.spec import input_range

__all__ = ["PredictError", "Predictor", "check_input", "predict", "run_artifact", "DEFAULT_BATCH"]

DEFAULT_BATCH = 32  # the im2col columns of a batch stay in cache
#: Integer sums below this are exact in float32 (24-bit significand): the matmul then runs in float32.
F32_EXACT = 2 ** 24
#: and below this in float64
F64_EXACT = 2 ** 53
_F32 = np.float32


class PredictError(ValueError):
    """Bad inputs or an artifact whose network cannot be run; one line naming it."""


class _Mapped:
    """One mapped op: the integer weights of its records (one per conv group) and its requantization."""

    def __init__(self, op: dict, records: dict):
        self.op = op
        self.recs = [records[n] for n in op["layers"]]
        self.lo, self.hi = input_range(bool(op["signed_input"]))
        self.x_scale = np.float32(op["x_scale"])
        scale = np.concatenate([np.asarray(r.scale, np.float32) for r in self.recs])
        # QLayer: y = y_int * (x_scale.double() * w_scale.double()) + bias.double(), then float32
        self.mult = np.float64(self.x_scale) * scale.astype(np.float64)
        self.bias = None if op["bias"] is None else np.asarray(op["bias"], np.float32).astype(np.float64)
        self.w = []
        xmax = 128 if op["signed_input"] else 255
        for r in self.recs:
            K = int(r.compiled.K)
            if K * PRODUCT_MAX >= F64_EXACT:
                raise PredictError(f"layer {r.name}: K={K} is too large for exact float64 accumulation")
            w = weights_of(r.compiled)
            # every partial sum of x @ w is an integer of magnitude <= xmax * max_n sum_k |w[k, n]|
            bound = xmax * int(np.abs(w).sum(axis=0).max(initial=0))
            dt = np.float32 if bound < F32_EXACT else np.float64  # exact in any summation order either way
            if r.kind == "conv2d":  # rows (c, i, j) -> (i, j, c): the channels-last im2col of _columns
                kh, kw = r.kernel
                w = w.reshape(-1, kh, kw, w.shape[1]).transpose(1, 2, 0, 3).reshape(K, -1)
            self.w.append(np.ascontiguousarray(w, dtype=dt))

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """``ActQuant.to_int``: clamp(round_half_even(x / s)) in float32."""
        return np.clip(np.rint(x / self.x_scale), self.lo, self.hi)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        q = self.quantize(x)
        kind, S = self.op["kind"], x.shape[0]
        if kind == "linear":
            y = self._matmul(0, q.reshape(-1, q.shape[-1])).reshape(q.shape[:-1] + (-1,))
            return self._requant(y)
        if kind == "conv1d":
            q = q[:, :, None, :]
        q = q.transpose(0, 2, 3, 1)  # channels last (free when q is a channels-last view)
        g = len(self.recs)
        cg = q.shape[-1] // g
        outs = []
        for j, r in enumerate(self.recs):
            cols = self._columns(q[..., j * cg:(j + 1) * cg], r, self.w[j].dtype)
            outs.append(self._matmul(j, cols.reshape(-1, cols.shape[-1])).reshape(cols.shape[:3] + (-1,)))
        y = self._requant(outs[0] if g == 1 else np.concatenate(outs, axis=-1))
        y = y.transpose(0, 3, 1, 2)  # NCHW view of channels-last memory: the next ops keep that layout
        return y[:, :, 0, :] if kind == "conv1d" else y

    @staticmethod
    def _columns(q: np.ndarray, r, dtype) -> np.ndarray:
        """Channels-last im2col (S, Ho, Wo, kh * kw * C), taps (i, j) outer, channels inner; zero padding."""
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = r.kernel, r.stride, r.padding, r.dilation
        S, H, W, C = q.shape
        _, ho, wo = r.out_shape
        xp = np.zeros((S, H + 2 * ph, W + 2 * pw, C), dtype)
        xp[:, ph:ph + H, pw:pw + W] = q
        cols = np.empty((S, ho, wo, kh * kw * C), dtype)
        for i in range(kh):
            for jj in range(kw):
                t = i * kw + jj
                cols[..., t * C:(t + 1) * C] = xp[:, i * dh:i * dh + sh * (ho - 1) + 1:sh,
                                                  jj * dw:jj * dw + sw * (wo - 1) + 1:sw]
        return cols

    def _matmul(self, j: int, cols: np.ndarray) -> np.ndarray:
        """Exact integer sums ``cols @ W`` (as floats holding integers), like ``run_layer``.

        ``cols`` are im2col rows in the record's row order for a linear record and
        in the channels-last order of :meth:`_columns` for a conv2d record.
        """
        w = self.w[j]
        return cols.astype(w.dtype, copy=False) @ w

    def _requant(self, y: np.ndarray) -> np.ndarray:
        """``float32(y_int * (x_scale * w_scale) + bias)`` in float64; channels on the last axis."""
        out = y.astype(np.float64)
        out *= self.mult
        if self.bias is not None:
            out += self.bias
        return out.astype(np.float32)


def _maxpool2d(x: np.ndarray, op: dict) -> np.ndarray:
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = op["kernel"], op["stride"], op["padding"], op["dilation"]
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf)
    _, ho, wo = op["shape"]
    v = np.lib.stride_tricks.sliding_window_view(x, (dh * (kh - 1) + 1, dw * (kw - 1) + 1), axis=(2, 3))
    v = v[:, :, ::sh, ::sw, ::dh, ::dw][:, :, :ho, :wo]
    return v.max(axis=(-2, -1))


def _fma(a, b, c) -> np.ndarray:
    """Float32 ``a * b + c`` rounded once, as a fused multiply-add (the torch CPU kernels' ``fmadd``).

    The product of two float32 values is exact in float64; the float64 sum is
    then rounded to float32. That double rounding differs from one rounding
    only when the float64 sum lands exactly halfway between two float32 values
    without being so exactly (a carry beyond float64's 53 bits): not met in
    the tests (docs/design.md §8).
    """
    return (np.asarray(a, np.float64) * b + c).astype(_F32)


#: SLEEF ``expf_u10`` (the AVX2 ``Sleef_expf8_u10`` that torch's vectorised sigmoid and SiLU call): ln 2 split
#: in two, 1 / ln 2 and the polynomial's coefficients, all float32
_R_LN2F = _F32(1.442695040888963407359924681001892137426645954152985934135449406931)
_L2UF, _L2LF = _F32(0.693145751953125), _F32(1.428606765330187045e-06)
_EXP_POLY = tuple(_F32(c) for c in (0.000198527617612853646278381, 0.00139304355252534151077271,
                                    0.00833336077630519866943359, 0.0416664853692054748535156,
                                    0.166666671633720397949219, 0.5))


def _expf(d: np.ndarray) -> np.ndarray:
    """``exp`` of float32 ``d`` as SLEEF's ``expf_u10`` computes it (round, two-step reduction, FMAs)."""
    d = np.asarray(d, _F32)
    with np.errstate(over="ignore", invalid="ignore"):  # |d| > 100: overridden below
        return _expf_in(d)


def _expf_in(d: np.ndarray) -> np.ndarray:
    q = np.rint(np.clip(d * _R_LN2F, _F32(-200), _F32(200)))  # |d| > 104 is overridden below
    s = _fma(q, -_L2UF, d)
    s = _fma(q, -_L2LF, s)
    u = np.full(d.shape, _EXP_POLY[0], _F32)
    for c in _EXP_POLY[1:]:
        u = _fma(u, s, c)
    u = _F32(1) + _fma(s * s, u, s)
    u = np.ldexp(u, q.astype(np.int32)).astype(_F32)
    u[d < _F32(-104)] = 0
    u[d > _F32(100)] = np.inf
    return u


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """torch.sigmoid (float32, vectorised): ``1 / (1 + exp(-x))``.

    torch computes the last ``numel % 16`` elements of a call (and of each
    thread's share of a large tensor) with the scalar ``std::exp`` instead;
    there the two can differ in the last bit (docs/design.md §8).
    """
    return _F32(1) / (_F32(1) + _expf(-x))


def _silu(x: np.ndarray) -> np.ndarray:
    """F.silu (float32, vectorised): ``x / (1 + exp(-x))``; the scalar tail as in :func:`_sigmoid`."""
    return x / (_F32(1) + _expf(-x))


def _bn_terms(mean, var, weight, bias, eps) -> tuple[np.ndarray, np.ndarray]:
    """torch's eval BatchNorm as ``alpha, beta`` per channel (float32): ``alpha = 1 / sqrt(var + eps) * weight``,
    ``beta = fma(-mean, alpha, bias)``."""
    alpha = (_F32(1) / np.sqrt(var + _F32(eps))) * weight
    return alpha.astype(_F32), _fma(-mean, alpha, bias)


def _batchnorm(x: np.ndarray, terms: tuple) -> np.ndarray:
    """``fma(x, alpha, beta)`` per channel (axis 1 of the batch value)."""
    alpha, beta = (t.reshape((1, -1) + (1,) * (x.ndim - 2)) for t in terms)
    return _fma(x, alpha, beta)


#: Depthwise work per chunk of samples (elements of one output buffer): the float64 buffers stay in cache
_DW_CHUNK = 1 << 15


def _depthwise(x: np.ndarray, op: dict, bn) -> np.ndarray:
    """torch's float32 depthwise conv2d (one FMA per tap, taps row-major, from 0 or the bias), then its BatchNorm.

    Each FMA as in :func:`_fma` (the exact float64 product plus the float32
    accumulator, rounded to float32), written into preallocated buffers; the
    work runs channels last (the mapped ops' layout), a few samples at a time,
    and returns an NCHW view.
    """
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = op["kernel"], op["stride"], op["padding"], op["dilation"]
    S, C, H, W = x.shape
    _, ho, wo = op["shape"]
    xl = x.transpose(0, 2, 3, 1)
    w = op["dw_weight"].astype(np.float64)
    out = np.empty((S, ho, wo, C), _F32)
    n = max(1, _DW_CHUNK // (ho * wo * C))
    xp = np.zeros((min(n, S), H + 2 * ph, W + 2 * pw, C), np.float64)
    buf = np.empty((min(n, S), ho, wo, C), np.float64)
    for s0 in range(0, S, n):
        m = min(n, S - s0)
        xs, b, acc = xp[:m], buf[:m], out[s0:s0 + m]
        xs[:, ph:ph + H, pw:pw + W] = xl[s0:s0 + m]
        acc[...] = 0 if op["dw_bias"] is None else op["dw_bias"]
        for i in range(kh):
            for j in range(kw):
                tap = xs[:, i * dh:i * dh + sh * (ho - 1) + 1:sh, j * dw:j * dw + sw * (wo - 1) + 1:sw]
                np.multiply(tap, w[:, i, j], out=b)
                b += acc
                np.copyto(acc, b, casting="same_kind")
        if bn is not None:
            np.multiply(acc, bn[0].astype(np.float64), out=b)
            b += bn[1]
            np.copyto(acc, b, casting="same_kind")
    return out.transpose(0, 3, 1, 2)


def _avgpool2d(x: np.ndarray, op: dict) -> np.ndarray:
    """torch's avg_pool2d: per window the float32 sum of its input elements row-major, divided by the count."""
    (kh, kw), (sh, sw), (ph, pw) = op["kernel"], op["stride"], op["padding"]
    S, C, H, W = x.shape
    _, ho, wo = op["shape"]
    xp = np.zeros((S, C, H + 2 * ph, W + 2 * pw), _F32)
    xp[:, :, ph:ph + H, pw:pw + W] = x
    acc = np.zeros((S, C, ho, wo), _F32)
    for i in range(kh):
        for j in range(kw):
            acc += xp[:, :, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw]
    if op["count_include_pad"] or (ph == 0 and pw == 0):
        return acc / _F32(kh * kw)
    ones = np.zeros((H + 2 * ph, W + 2 * pw), _F32)
    ones[ph:ph + H, pw:pw + W] = 1
    count = sum(ones[i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw] for i in range(kh) for j in range(kw))
    return acc / count.astype(_F32)


#: torch's ``Vectorized<float>`` lanes (AVX2) and the multi_row_sum parameters of its cascade sum
_LANES, _ILP, _LEVELS = 8, 4, 4


def _multi_row_sum(v: np.ndarray) -> np.ndarray:
    """torch's ``multi_row_sum`` of ``v`` (R, size, ILP, LANES): (R, ILP, LANES) float32 partial sums."""
    R, size = v.shape[:2]
    power = max(4, (int(size - 1).bit_length() if size > 1 else 0) // _LEVELS)
    step, mask = 1 << power, (1 << power) - 1
    acc = np.zeros((_LEVELS,) + v.shape[:1] + v.shape[2:], _F32)
    i = 0
    while i + step <= size:
        for j in range(step):
            acc[0] += v[:, i + j]
        i += step
        for j in range(1, _LEVELS):
            acc[j] += acc[j - 1]
            acc[j - 1] = 0
            if i & (mask << (j * power)):
                break
    for k in range(i, size):
        acc[0] += v[:, k]
    for j in range(1, _LEVELS):
        acc[0] += acc[j]
    return acc[0]


def _torch_sum(x: np.ndarray) -> np.ndarray:
    """``torch.sum`` of float32 ``x`` (R, n) over its contiguous last axis, as torch's CPU ``cascade_sum``
    adds it in float32 (AVX2): vectors of 8 lanes in 4 interleaved rows (cascaded for long rows), the
    rows added, then the scalar tail and last the 8 lanes, one after another."""
    R, n = x.shape
    s = np.zeros(R, _F32)
    if n < _LANES:
        for k in range(n):
            s += x[:, k]
        return s
    nv = n // _LANES
    vecs = x[:, :nv * _LANES].reshape(R, nv, _LANES)
    ilp = nv // _ILP
    part = _multi_row_sum(vecs[:, :ilp * _ILP].reshape(R, ilp, _ILP, _LANES)) if ilp else \
        np.zeros((R, _ILP, _LANES), _F32)
    p0 = part[:, 0].copy()
    for k in range(ilp * _ILP, nv):
        p0 += vecs[:, k]
    for k in range(1, _ILP):
        p0 += part[:, k]
    for k in range(nv * _LANES, n):
        s += x[:, k]
    for k in range(_LANES):
        s += p0[:, k]
    return s


def _mean(x: np.ndarray, op: dict) -> np.ndarray:
    """``x.mean(axes)`` of float32 ``x`` as torch computes it on CPU: the float32 sum, divided by the count.

    Over the trailing axes of a sample (global average pooling: ``axes`` [1, 2]
    of (C, H, W)) the sum is torch's cascade sum (:func:`_torch_sum`), bit for
    bit. Over other axes torch's reduction kernel adds in another order; there
    the sum is exact (float64) and rounded once, which can differ from torch's
    in the last bit (docs/design.md §8 "Network program").
    """
    axes = tuple(a + 1 for a in op["axes"])
    n = math.prod(x.shape[a] for a in axes)
    if axes == tuple(range(x.ndim - len(axes), x.ndim)):
        lead = x.shape[:x.ndim - len(axes)]
        s = _torch_sum(np.ascontiguousarray(x).reshape(-1, n)).reshape(lead)
        if op["keepdim"]:
            s = s.reshape(lead + (1,) * len(axes))
    else:
        s = x.astype(np.float64).sum(axis=axes, keepdims=op["keepdim"]).astype(_F32)
    return (s / _F32(n)).astype(_F32)


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    """Softmax over ``axis`` in float64 (exact to double precision), rounded once to float32.

    torch's vectorised softmax uses its own ``exp`` and summation order, not
    replayed here: the two can differ in the last bit (docs/design.md §8).
    """
    x = x.astype(np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True)).astype(_F32)


def _ln64(v: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    """float64 LayerNorm of float64 ``v`` over its last ``weight.ndim`` axes (biased variance)."""
    axes = tuple(range(v.ndim - weight.ndim, v.ndim))
    mean = v.mean(axis=axes, keepdims=True)
    var = ((v - mean) ** 2).mean(axis=axes, keepdims=True)
    return (v - mean) / np.sqrt(var + eps) * weight.astype(np.float64) + bias.astype(np.float64)


def _layernorm(x: np.ndarray, op: dict) -> np.ndarray:
    """LayerNorm over the last ``weight.ndim`` axes in float64 (biased variance), rounded once to float32;
    torch's rowwise moments add in float32 in another order (last-bit differences, docs/design.md §8)."""
    return _ln64(x.astype(np.float64), op["weight"], op["bias"], op["eps"]).astype(_F32)


def _encoder_layer(x: np.ndarray, op: dict) -> np.ndarray:
    """A whole ``nn.TransformerEncoderLayer`` (eval, no mask, batch first) in float64, rounded once to float32:
    self-attention of ``heads`` heads, the feed-forward block with ReLU or GELU, LayerNorms after (or, with
    ``norm_first``, before) each; torch runs it in float32 (last-bit differences, docs/design.md §8)."""
    f = {k: op[k].astype(np.float64) for k in ("in_w", "in_b", "out_w", "out_b", "w1", "b1", "w2", "b2")}
    S, L, E = x.shape
    H = op["heads"]
    D = E // H

    def attention(t):
        q, k, v = np.split(t @ f["in_w"].T + f["in_b"], 3, axis=-1)
        q, k, v = (u.reshape(S, L, H, D).transpose(0, 2, 1, 3) for u in (q, k, v))
        s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(D)
        e = np.exp(s - s.max(axis=-1, keepdims=True))
        o = (e / e.sum(axis=-1, keepdims=True)) @ v
        return o.transpose(0, 2, 1, 3).reshape(S, L, E) @ f["out_w"].T + f["out_b"]

    def feed_forward(t):
        h = t @ f["w1"].T + f["b1"]
        if op["activation"] == "relu":
            return np.maximum(h, 0) @ f["w2"].T + f["b2"]
        h = 0.5 * h * (1 + _ERF(h / math.sqrt(2)).astype(np.float64))
        return h @ f["w2"].T + f["b2"]

    def ln1(t):
        return _ln64(t, op["n1_w"], op["n1_b"], op["eps1"])

    def ln2(t):
        return _ln64(t, op["n2_w"], op["n2_b"], op["eps2"])

    t = x.astype(np.float64)
    if op["norm_first"]:
        t = t + attention(ln1(t))
        t = t + feed_forward(ln2(t))
    else:
        t = ln1(t + attention(t))
        t = ln2(t + feed_forward(t))
    return t.astype(_F32)


_ERF = np.frompyfunc(math.erf, 1, 1)


def _gelu(x: np.ndarray, approximate: str) -> np.ndarray:
    """GELU in float64 (``math.erf``; or the tanh form), rounded once to float32 (torch's vectorised erf is an
    approximation of its own: last-bit differences, docs/design.md §8)."""
    v = x.astype(np.float64)
    if approximate == "tanh":
        y = 0.5 * v * (1 + np.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3)))
    else:
        y = 0.5 * v * (1 + _ERF(v / math.sqrt(2)).astype(np.float64))
    return y.astype(_F32)


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Activation x activation matmul: the float64 product (exact to double precision) rounded once to float32;
    torch's float32 GEMM adds in blocks in float32 (last-bit differences, docs/design.md §8)."""
    return np.matmul(a.astype(np.float64), b.astype(np.float64)).astype(_F32)


def check_input(x, input_shape: tuple) -> np.ndarray:
    """``x`` as a float32 (S, *input_shape) array; one-line :class:`PredictError` otherwise."""
    if not isinstance(x, np.ndarray):
        raise PredictError(f"x: must be a NumPy array, got {type(x).__name__}")
    if x.dtype.kind not in "fiu" or x.dtype.kind == "f" and x.dtype.itemsize > 8:
        raise PredictError(f"x: dtype must be a real float or integer type, got {x.dtype}")
    if x.ndim != len(input_shape) + 1 or tuple(x.shape[1:]) != input_shape:
        raise PredictError(f"x: shape must be (S, {', '.join(map(str, input_shape))}), got "
                           f"{tuple(x.shape)}")
    with np.errstate(over="ignore", invalid="ignore"):
        xf = x.astype(np.float32)
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise PredictError("x: holds NaN or inf values; inputs must be finite")
    if not np.all(np.isfinite(xf)):
        raise PredictError("x: values overflow float32; inputs must be finite float32 values")
    return xf


class Predictor:
    """The executable network of an artifact (weights rebuilt from its tiles once)."""

    def __init__(self, artifact):
        prog = require_program(artifact, error=PredictError, purpose=" to use predict")
        bad = next((op for op in prog["ops"] if op["op"] not in RUNNABLE), None)
        if bad is not None:
            raise PredictError(f"artifact {artifact.path or artifact.network}: op {bad['name']!r} "
                               f"({bad.get('what', bad['op'])}) cannot be run by model.predict; it runs "
                               f"{', '.join(k for k in RUNNABLE if k != 'input')}")
        old = next((op for op in prog["ops"] if op["op"] == "depthwise" and "dw_weight" not in op), None)
        if old is not None:
            raise PredictError(f"artifact {artifact.path or artifact.network}: op {old['name']!r} (depthwise) cannot "
                               "be run by model.predict: it was written without the unfolded weights predict needs "
                               f"({', '.join(DEPTHWISE_TORCH)}); recompile it (dbpim compile) to use predict")
        records = {r.name: r for r in artifact.layers if r.mapped}
        self.program = prog
        self.input_shape = tuple(prog["input"]["shape"])
        self.mapped = {op["name"]: _Mapped(op, records) for op in prog["ops"] if op["op"] == "mapped"}
        self.bn = {op["name"]: _bn_terms(op["mean"], op["var"], op["weight"], op["bias"], op["eps"])
                   for op in prog["ops"] if op["op"] == "batchnorm"}
        self.bn.update({op["name"]: _bn_terms(op["bn_mean"], op["bn_var"], op["bn_weight"], op["bn_bias"],
                                              op["bn_eps"])
                        for op in prog["ops"] if op["op"] == "depthwise" and "bn_mean" in op})
        self.last_use = {}
        for i, op in enumerate(prog["ops"]):
            for a in op["inputs"]:
                self.last_use[a] = i

    def check(self, x) -> np.ndarray:
        """``x`` as a float32 (S, *input shape) array; one-line :class:`PredictError` otherwise."""
        return check_input(x, self.input_shape)

    def run(self, x: np.ndarray) -> np.ndarray:
        """The output of the program on one float32 batch (checked by :meth:`check`)."""
        vals = {}
        for i, op in enumerate(self.program["ops"]):
            kind = op["op"]
            a = [vals[n] for n in op["inputs"]]
            if kind == "input":
                y = x
            elif kind == "mapped":
                y = self.mapped[op["name"]](a[0])
            elif kind == "clamp":
                y = a[0]
                if op["lo"] is not None:
                    y = np.maximum(y, np.float32(op["lo"]))
                if op["hi"] is not None:
                    y = np.minimum(y, np.float32(op["hi"]))
            elif kind == "add":
                y = a[0] + a[1]
            elif kind == "reshape":
                y = a[0].reshape((a[0].shape[0],) + tuple(op["shape"]))
            elif kind == "identity":
                y = a[0]
            elif kind == "maxpool2d":
                y = _maxpool2d(a[0], op)
            elif kind == "mean":
                y = _mean(a[0], op)
            elif kind == "mul":
                y = a[0] * a[1]
            elif kind == "sigmoid":
                y = _sigmoid(a[0])
            elif kind == "silu":
                y = _silu(a[0])
            elif kind == "batchnorm":
                y = _batchnorm(a[0], self.bn[op["name"]])
            elif kind == "depthwise":
                y = _depthwise(a[0], op, self.bn.get(op["name"]))
            elif kind == "avgpool2d":
                y = _avgpool2d(a[0], op)
            elif kind == "transpose":
                y = a[0].transpose((0,) + tuple(p + 1 for p in op["perm"]))
            elif kind == "scale":
                y = a[0] * _F32(op["value"])
            elif kind == "matmul":
                y = _matmul(a[0], a[1])
            elif kind == "softmax":
                y = _softmax(a[0], op["axis"] + 1)
            elif kind == "layernorm":
                y = _layernorm(a[0], op)
            elif kind == "gelu":
                y = _gelu(a[0], op["approximate"])
            elif kind == "encoder_layer":
                y = _encoder_layer(a[0], op)
            else:  # refused in __init__
                raise PredictError(f"op {op['name']!r}: {kind} cannot be run")
            vals[op["name"]] = y
            for n in op["inputs"]:
                if self.last_use.get(n) == i and n != self.program["output"]:
                    vals.pop(n, None)
        return vals[self.program["output"]]

    def __call__(self, x, batch_size: int = DEFAULT_BATCH) -> np.ndarray:
        if type(batch_size) is not int or batch_size < 1:
            raise PredictError(f"batch_size: must be an integer >= 1, got {batch_size!r}")
        xf = self.check(x)
        if len(xf) == 0:
            raise PredictError("x: holds no samples (shape (0, ...)); give at least one")
        return np.concatenate([self.run(xf[i:i + batch_size]) for i in range(0, len(xf), batch_size)])


def predictor(artifact) -> Predictor:
    """The artifact's :class:`Predictor`, built once and kept on the artifact."""
    p = artifact.__dict__.get("_predictor")
    if p is None:
        p = Predictor(artifact)
        artifact.__dict__["_predictor"] = p
    return p


def predict(artifact, x, *, batch_size: int = DEFAULT_BATCH) -> np.ndarray:
    """Output (logits) of the artifact's network on ``x`` (S, *input shape), float32, in batches.

    Raises
    ------
    PredictError
        ``x`` has the wrong type, dtype or shape or is not finite, ``batch_size``
        is not a positive integer, or the artifact has no runnable program.
    """
    return predictor(artifact)(x, batch_size=batch_size)


def run_artifact(artifact, x, y=None, *, reference=None, batch_size: int = DEFAULT_BATCH) -> dict:
    """Predict ``x`` and summarise it for a command's ``run.json`` (finite numbers, JSON-ready).

    Parameters
    ----------
    artifact : model.artifact.Artifact
    x : ndarray (S, *input shape)
    y : ndarray of int (S,), optional
        Labels: adds ``accuracy`` (top-1, first maximum on ties, like ``torch.argmax``).
    reference : ndarray (S, n_out), optional
        Logits to compare with (the frozen network's): adds ``logits_equal`` (bit for bit),
        ``max_abs_diff`` and ``argmax_agree`` (fraction).

    Returns
    -------
    dict
        ``network``, ``samples``, ``outputs`` (per-sample output shape),
        ``predictions`` (argmax per sample), and the fields above; plus
        ``accuracy_compiled`` when the artifact's meta records the flow's
        integer-path accuracy (``meta.accuracy.final``).
    """
    logits = predict(artifact, x, batch_size=batch_size)
    pred = logits.reshape(len(logits), -1).argmax(axis=1)
    out = {"network": artifact.network, "samples": int(len(logits)), "outputs": list(logits.shape[1:]),
           "predictions": pred.astype(int).tolist()}
    if y is not None:
        y = np.asarray(y)
        if y.shape != (len(logits),) or y.dtype.kind not in "iu":
            raise PredictError(f"y: must be integer labels of shape ({len(logits)},), got {y.dtype} {y.shape}")
        out["accuracy"] = float((pred == y).mean())
    final = ((artifact.meta or {}).get("accuracy") or {}).get("final")
    if isinstance(final, (int, float)) and math.isfinite(final):
        out["accuracy_compiled"] = float(final)
    if reference is not None:
        ref = np.asarray(reference)
        if ref.shape != logits.shape:
            raise PredictError(f"reference: must have shape {logits.shape}, got {ref.shape}")
        if not np.all(np.isfinite(ref)):
            raise PredictError("reference: holds NaN or inf values")
        out["logits_equal"] = bool(np.array_equal(logits, ref))
        out["max_abs_diff"] = float(np.abs(logits.astype(np.float64) - ref.astype(np.float64)).max())
        out["argmax_agree"] = float((ref.reshape(len(ref), -1).argmax(axis=1) == pred).mean())
    return out

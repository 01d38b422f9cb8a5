"""The SIMD core's integer ops (model.simd_ops) against straightforward loops and exact Fractions."""

from __future__ import annotations

import math
import os
from fractions import Fraction

import numpy as np
import pytest

from dbpim.model import simd_ops as so
from dbpim.model.requant import MULT_BITS, RequantError

SEED = int(os.environ.get("DBPIM_SEED", "20261206"))


def _rescale_exact(v: int, m: int, s: int) -> int:
    """``v * m / 2**s`` rounded half up, exactly."""
    return math.floor(Fraction(v * m, 1 << s) + Fraction(1, 2))


def _sat(v: int, lo: int, hi: int) -> int:
    return min(max(v, lo), hi)


def _constants(rng, c):
    m = rng.integers(1 << (MULT_BITS - 1), 1 << MULT_BITS, c)
    s = rng.integers(30, 45, c)
    return m, s


def _windows_loop(x, n, c, oh, ow, k, st, p, d):
    """The input positions (or None for padding) of one window, kh major."""
    h, w = x.shape[2:]
    out = []
    for i in range(k[0]):
        for j in range(k[1]):
            r, q = oh * st[0] - p[0] + i * d[0], ow * st[1] - p[1] + j * d[1]
            out.append(int(x[n, c, r, q]) if 0 <= r < h and 0 <= q < w else None)
    return out


def _out_size(size, k, st, p, d):
    return (size + 2 * p - d * (k - 1) - 1) // st + 1


@pytest.mark.parametrize("case", range(6))
def test_requant_per_channel_matches_fractions(case):
    rng = np.random.default_rng(SEED + case)
    shape = [(2, 3, 4, 5), (3, 7)][case % 2]
    acc = rng.integers(-(1 << 24), 1 << 24, shape)
    c = shape[1]
    m, s = _constants(rng, c)
    bias = rng.integers(-1000, 1000, c)
    lo, hi = [(-128, 127), (0, 255), (0, 6 * 16)][case % 3]
    y = so.requant(acc, m, s, lo, hi, bias=bias)
    assert y.shape == acc.shape and y.dtype == np.int64
    for idx in np.ndindex(*shape):
        ch = idx[1]
        want = _sat(_rescale_exact(int(acc[idx]) + int(bias[ch]), int(m[ch]), int(s[ch])), lo, hi)
        assert int(y[idx]) == want, f"seed {SEED + case}: {idx}"


def test_requant_scalar_constants_and_no_bias():
    acc = np.array([[5, -5, 3, -3]])
    assert so.requant(acc, 1, 1, -128, 127).tolist() == [[3, -2, 2, -1]]


def test_clamp_is_relu_relu6_clamp():
    x = np.arange(-10, 10).reshape(2, 10)
    assert so.clamp(x, 0, 127).tolist() == np.maximum(x, 0).tolist()
    assert so.clamp(x, 0, 6).tolist() == [[min(max(v, 0), 6) for v in r] for r in x.tolist()]


GEOMS = [  # (H, W, kernel, stride, padding, dilation)
    (6, 7, 2, 2, 0, 1), (7, 7, 3, 2, 1, 1), (5, 8, (2, 3), (1, 2), (1, 1), 1), (9, 9, 3, 1, 1, 2),
    (4, 4, 1, 1, 0, 1), (8, 6, 3, 3, 1, 1), (5, 5, 5, 1, 2, 1),
]


@pytest.mark.parametrize("geom", GEOMS)
def test_maxpool_matches_loops(geom):
    h, w, k, st, p, d = geom
    rng = np.random.default_rng(SEED)
    x = rng.integers(-128, 128, (2, 3, h, w))
    y = so.maxpool2d(x, k, st, p, d)
    kk, ss, pp, dd = (so._pair(v, "t", 0) for v in (k, st, p, d))
    oh, ow = _out_size(h, kk[0], ss[0], pp[0], dd[0]), _out_size(w, kk[1], ss[1], pp[1], dd[1])
    assert y.shape == (2, 3, oh, ow)
    for n, c, i, j in np.ndindex(*y.shape):
        vals = [v for v in _windows_loop(x, n, c, i, j, kk, ss, pp, dd) if v is not None]
        assert int(y[n, c, i, j]) == max(vals), f"seed {SEED}: {geom} {(n, c, i, j)}"


def test_maxpool_padding_never_wins_and_stride_defaults_to_kernel():
    x = np.full((1, 1, 3, 3), -100)
    assert so.maxpool2d(x, 3, 1, 1).tolist() == [[[[-100] * 3] * 3]]
    assert so.maxpool2d(np.arange(16).reshape(1, 1, 4, 4), 2).tolist() == [[[[5, 7], [13, 15]]]]


@pytest.mark.parametrize("geom", [g for g in GEOMS if g[5] == 1])
def test_avgpool_sum_then_rescale_matches_fractions(geom):
    h, w, k, st, p, _ = geom
    rng = np.random.default_rng(SEED + 1)
    x = rng.integers(-128, 128, (2, 3, h, w))
    m, s = _constants(rng, 3)
    y = so.avgpool2d(x, k, st, p, m, s, -128, 127)
    kk, ss, pp = (so._pair(v, "t", 0) for v in (k, st, p))
    for n, c, i, j in np.ndindex(*y.shape):
        total = sum(v for v in _windows_loop(x, n, c, i, j, kk, ss, pp, (1, 1)) if v is not None)
        assert int(y[n, c, i, j]) == _sat(_rescale_exact(total, int(m[c]), int(s[c])), -128, 127), \
            f"seed {SEED + 1}: {geom} {(n, c, i, j)}"


def test_avgpool_with_folded_one_over_window_is_the_rounded_mean():
    x = np.array([[[[1, 2], [3, 5]]]])  # mean 2.75 -> 3
    assert so.avgpool2d(x, 2, m=1 << 30, s=32, lo=-128, hi=127).tolist() == [[[[3]]]]


def test_global_avgpool_drops_hw():
    rng = np.random.default_rng(SEED + 2)
    x = rng.integers(-128, 128, (2, 4, 5, 3))
    m, s = _constants(rng, 4)
    y = so.global_avgpool(x, m, s, -128, 127)
    assert y.shape == (2, 4)
    for n, c in np.ndindex(2, 4):
        assert int(y[n, c]) == _sat(_rescale_exact(int(x[n, c].sum()), int(m[c]), int(s[c])), -128, 127)


@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (5, 6)])
def test_add_rescales_both_operands(shape):
    rng = np.random.default_rng(SEED + 3)
    a = rng.integers(-128, 128, shape)
    b = rng.integers(-128, 128, shape)
    ma, sa = _constants(rng, shape[1])
    mb, sb = int(rng.integers(1 << 30, 1 << 31)), 31
    y = so.add(a, ma, sa, b, mb, sb, -128, 127)
    for idx in np.ndindex(*shape):
        want = _rescale_exact(int(a[idx]), int(ma[idx[1]]), int(sa[idx[1]])) + _rescale_exact(int(b[idx]), mb, sb)
        assert int(y[idx]) == _sat(want, -128, 127), f"seed {SEED + 3}: {idx}"


@pytest.mark.parametrize("geom", GEOMS)
def test_depthwise_conv_matches_loops(geom):
    h, w, k, st, p, d = geom
    rng = np.random.default_rng(SEED + 4)
    x = rng.integers(-128, 128, (2, 3, h, w))
    kk, ss, pp, dd = (so._pair(v, "t", 0) for v in (k, st, p, d))
    wt = rng.integers(-128, 128, (3, 1) + kk)
    y = so.depthwise_conv2d(x, wt, st, p, d)
    assert y.shape[:2] == (2, 3)
    for n, c, i, j in np.ndindex(*y.shape):
        vals = _windows_loop(x, n, c, i, j, kk, ss, pp, dd)
        want = sum((v or 0) * int(wt[c, 0].reshape(-1)[e]) for e, v in enumerate(vals))
        assert int(y[n, c, i, j]) == want, f"seed {SEED + 4}: {geom} {(n, c, i, j)}"
    assert np.array_equal(so.depthwise_conv2d(x, wt[:, 0], st, p, d), y)


def test_pool_windows_order_is_kh_major():
    x = np.arange(9).reshape(1, 1, 3, 3)
    win = so.pool_windows(x, 2, 1)
    assert win.shape == (1, 1, 2, 2, 4)
    assert win[0, 0, 1, 0].tolist() == [3, 4, 6, 7]


def test_bad_inputs_are_one_line_errors():
    x = np.zeros((1, 2, 4, 4), np.int64)
    cases = [
        (lambda: so.requant(x.astype(float), 1, 0, 0, 1), r"^requant\.acc: must be an integer array"),
        (lambda: so.requant(x, [1, 2, 3], 0, 0, 1), r"^requant\.m: must be a scalar or one value per channel"),
        (lambda: so.requant(x, 1 << 31, 0, 0, 1), r"^requant\.m: must be in"),
        (lambda: so.requant(x, 1, 0, 5, 1), r"^requant\.hi: "),
        (lambda: so.requant(x + (1 << 31), 1, 0, 0, 1), r"^requant\.acc: values must satisfy"),
        (lambda: so.requant(x[0, 0, 0], 1, 0, 0, 1), r"^requant\.acc: must have 2 or 4 dimensions"),
        (lambda: so.maxpool2d(x, 0), r"^maxpool2d\.kernel: must be an integer >= 1"),
        (lambda: so.maxpool2d(x, 6), r"^maxpool2d\.kernel: the window spans 6"),
        (lambda: so.maxpool2d(x, 2, 1, (1, 2, 3)), r"^maxpool2d\.padding: must be an integer or a pair"),
        (lambda: so.maxpool2d(x, 2, 1, 2), r"^maxpool2d\.padding: a window holds padding only"),
        (lambda: so.avgpool2d(x, 2, m=1, s=99, lo=0, hi=1), r"^avgpool2d\.s: must be in"),
        (lambda: so.avgpool2d(x, 2, m=1, s=0), r"^avgpool2d\.lo: required"),
        (lambda: so.global_avgpool(x, 1, 0, 0, 1.5), r"^global_avgpool\.hi: "),
        (lambda: so.add(x, 1, 0, x[:, :1], 1, 0, 0, 1), r"^add\.b: must have the shape of a"),
        (lambda: so.add(x, 1, 0, x, 1, -1, 0, 1), r"^add\.b\.s: must be in"),
        (lambda: so.depthwise_conv2d(x, np.zeros((3, 1, 2, 2), int)), r"^depthwise_conv2d\.w: must have one filter"),
        (lambda: so.depthwise_conv2d(x + (1 << 30), np.full((2, 3, 3), 1 << 30)),
         r"^depthwise_conv2d\.w: max\|x\| \* max\|w\|"),
    ]
    for f, pattern in cases:
        with pytest.raises(ValueError, match=pattern) as e:
            f()
        assert "\n" not in str(e.value)
    assert issubclass(RequantError, ValueError)

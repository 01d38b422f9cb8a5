"""Layer-level golden model: a conv or linear layer through its mapped macros.

``run_layer`` gives the exact int64 outputs (equal to ``x @ W`` on integers,
always) and the cycle counts of DB-PIM and of the dense digital PIM baseline
(docs/design.md §7). Cycle counts are *macro-cycles*: summed over every tile and every
input vector as if one macro ran them all; the performance model divides them
over cores and macros.

Outputs are computed with a float64 matrix product of the tile-reconstructed
weights: every partial sum is an integer below 2**53 for any layer this model
accepts (checked), so float64 is exact and BLAS-fast.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dbpim.model.compile import CompiledLayer, tile_digit_values
from dbpim.model.cycles import cell_row_popcounts_t, dense_cycles, row_tile_sums
from dbpim.model.spec import WEIGHT_MIN, input_bits, input_range, pipeline_latency

#: Largest |input * weight| of one product: 255 * 128 (unsigned inputs; signed ones stay below).
PRODUCT_MAX = input_range(False)[1] * -WEIGHT_MIN

__all__ = ["PRODUCT_MAX", "LayerResult", "run_layer", "run_conv2d", "im2col", "conv_out_size", "weights_of"]


@dataclass
class LayerResult:
    """Output of :func:`run_layer`.

    Attributes
    ----------
    out : ndarray of int64, shape (P, N)
        Exact (docs/design.md §9).
    cycles_dbpim : int
        DB-PIM macro-cycles (IPU skipping, kept rows only, phi columns).
    compute_cycles_dbpim : int
        The same without the per-vector pipeline latency.
    cycles_dense : int
        Dense baseline macro-cycles on the same array.
    tile_cycles : ndarray of int64, shape (T,)
        Cycles of each tile, summed over the P vectors.
    """

    out: np.ndarray
    cycles_dbpim: int
    compute_cycles_dbpim: int
    cycles_dense: int
    tile_cycles: np.ndarray


def _pair(v, name: str, lo: int) -> tuple[int, int]:
    """``v`` (an int, or a pair of ints for (height, width)) as a pair; each >= ``lo``."""
    t = (v, v) if isinstance(v, (int, np.integer)) and not isinstance(v, bool) else tuple(v)
    if len(t) != 2 or any(isinstance(a, bool) or not isinstance(a, (int, np.integer)) or a < lo for a in t):
        raise ValueError(f"{name}: must be an integer >= {lo} or a pair of them, got {v!r}")
    return int(t[0]), int(t[1])


def conv_out_size(h: int, k: int, stride: int, padding: int, dilation: int = 1) -> int:
    """Output length of a convolution along one axis (PyTorch's formula)."""
    return (h + 2 * padding - dilation * (k - 1) - 1) // stride + 1


def im2col(x, kh: int, kw: int, stride=1, padding=0, dilation=1) -> np.ndarray:
    """Unfold NCHW feature maps into im2col rows.

    Parameters
    ----------
    x : ndarray, shape (S, C, H, W)
        A 1-D convolution's (S, C, L) maps are given as (S, C, 1, L) with ``kh = 1``.
    kh, kw : int
    stride, padding, dilation : int or (int, int)
        One value for both axes or a (height, width) pair, as in PyTorch.

    Returns
    -------
    ndarray, shape (S * Ho * Wo, C * kh * kw)
        Rows ordered (s, ho, wo); columns ordered (c, i, j) like
        ``weight.reshape(N, -1)``. Padding is zero (zero-point 0). Tap (i, j)
        of output (ho, wo) reads input (ho * sh + i * dh - ph, wo * sw + j * dw - pw).
    """
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"x: must be NCHW (4-D), got shape {x.shape}")
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride, "stride", 1), _pair(padding, "padding", 0), \
        _pair(dilation, "dilation", 1)
    S, C, H, W = x.shape
    Ho, Wo = conv_out_size(H, kh, sh, ph, dh), conv_out_size(W, kw, sw, pw, dw)
    if Ho < 1 or Wo < 1:
        raise ValueError(f"x: {H}x{W} maps are smaller than the {kh}x{kw} kernel (dilation {dh}x{dw}, "
                         f"padding {ph}x{pw})")
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    # window of the dilated kernel, then every dilation-th tap inside it
    v = np.lib.stride_tricks.sliding_window_view(x, (dh * (kh - 1) + 1, dw * (kw - 1) + 1), axis=(2, 3))
    v = v[:, :, ::sh, ::sw, ::dh, ::dw][:, :, :Ho, :Wo]  # S,C,Ho,Wo,kh,kw
    return np.ascontiguousarray(v.transpose(0, 2, 3, 1, 4, 5)).reshape(S * Ho * Wo, C * kh * kw)


_POW2 = np.array([1 << p for p in range(8)], np.float64)  # digit magnitude by 2 * idx + pos


def weights_of(compiled: CompiledLayer, chunk: int = 256) -> np.ndarray:
    """K x N int64 weights the tiles hold: every used cell's digit summed per (row, filter), vectorised.

    A (row, filter) pair held by two tiles would count twice, as the hardware would add it.
    """
    K, N = compiled.K, compiled.N
    idx_parts, val_parts = [], []  # flat (row, filter) index and value of every (place, slot)
    st = compiled.stacked() if compiled.tiles else None
    T = 0 if st is None else st["tiles_meta"].shape[0]
    n_col = compiled.macro.n_col
    for t0 in range(0, T, chunk):
        sl = slice(t0, t0 + chunk)
        mag = _POW2[2 * st["tiles_idx"][sl] + st["tiles_cells"][sl]]  # (t, n_row, n_comp, n_col)
        v = np.where(st["tiles_sign"][sl] != 0, -mag, mag)
        t = v.shape[0]
        cf = st["tiles_col_filter"][sl].astype(np.int64)
        onehot = (cf[:, :, None] == np.arange(n_col)[None, None, :]).astype(np.float64)  # column -> slot
        per_slot = np.matmul(v.reshape(t, -1, n_col), onehot)  # (t, places, slots): whole weights
        rows = st["tiles_rows"][sl].reshape(t, -1).astype(np.int64)
        filt = st["tiles_filters"][sl].astype(np.int64)
        rows[rows < 0] = K  # unused places and slots add into a spare row / column
        filt[filt < 0] = N
        idx_parts.append((rows[:, :, None] * (N + 1) + filt[:, None, :]).ravel())
        val_parts.append(per_slot.ravel())
    if not idx_parts:
        return np.zeros((K, N), np.int64)
    w = np.bincount(np.concatenate(idx_parts), weights=np.concatenate(val_parts),
                    minlength=(K + 1) * (N + 1))  # integer sums far below 2**53: exact
    return np.rint(w).astype(np.int64).reshape(K + 1, N + 1)[:K, :N]


def run_layer(x, compiled: CompiledLayer, signed: bool = False) -> LayerResult:
    """Run im2col inputs through a compiled layer.

    Parameters
    ----------
    x : array_like of int, shape (P, K)
        Unsigned 8-bit inputs in [0, 255], or signed in [-128, 127] when
        ``signed``.
    compiled : CompiledLayer
    signed : bool

    Returns
    -------
    LayerResult
    """
    macro = compiled.macro
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != compiled.K:
        raise ValueError(f"x: must have shape (P, {compiled.K}) (im2col rows), got {x.shape}")
    bits = input_bits(x, signed)
    xv = bits.astype(np.int8).astype(np.float64) if signed else bits.astype(np.float64)
    if compiled.K * PRODUCT_MAX >= 2**53:
        raise ValueError(f"compiled: K={compiled.K} is too large for exact float64 accumulation "
                         f"(K * {PRODUCT_MAX} must stay below 2**53)")
    w = weights_of(compiled)
    out = (xv @ w.astype(np.float64)).astype(np.int64)  # exact: every partial sum is an integer < 2**53
    P = x.shape[0]
    lat = pipeline_latency(macro.pipeline)
    groups = sorted({t.group for t in compiled.tiles})
    pc = cell_row_popcounts_t(bits, [np.nonzero(compiled.mask[:, g])[0] for g in groups], macro.n_comp)
    by_group = dict(zip(groups, row_tile_sums(pc.sum(-1, dtype=np.int64), macro.n_row)))  # group -> per row tile
    tile_cycles = np.array([by_group[t.group][t.row_tile] + lat * P for t in compiled.tiles], np.int64)
    total = int(tile_cycles.sum())
    return LayerResult(out=out, cycles_dbpim=total, compute_cycles_dbpim=total - lat * P * len(compiled.tiles),
                       cycles_dense=dense_cycles(compiled.K, compiled.N, P, macro), tile_cycles=tile_cycles)


def run_conv2d(x, compiled: CompiledLayer, kernel, stride=1, padding=0, signed: bool = False, dilation=1):
    """A conv layer on NCHW integer feature maps through its compiled tiles.

    Parameters
    ----------
    x : array_like of int, shape (S, C, H, W)
    compiled : CompiledLayer
        K must equal C * kh * kw.
    kernel : (kh, kw)
    stride, padding, dilation : int or (int, int)
    signed : bool

    Returns
    -------
    out : ndarray of int64, shape (S, N, Ho, Wo)
    result : LayerResult
        With ``out`` in im2col form (S * Ho * Wo, N) and the cycle counts.
    """
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"x: must be NCHW (4-D), got shape {x.shape}")
    kh, kw = kernel
    if x.shape[1] * kh * kw != compiled.K:
        raise ValueError(f"x: {x.shape[1]} channels x {kh}x{kw} kernel = {x.shape[1] * kh * kw} rows, "
                         f"but the layer has K={compiled.K}")
    S, _, H, W = x.shape
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride, "stride", 1), _pair(padding, "padding", 0), \
        _pair(dilation, "dilation", 1)
    Ho, Wo = conv_out_size(H, kh, sh, ph, dh), conv_out_size(W, kw, sw, pw, dw)
    res = run_layer(im2col(x, kh, kw, (sh, sw), (ph, pw), (dh, dw)), compiled, signed)
    return res.out.reshape(S, Ho, Wo, compiled.N).transpose(0, 3, 1, 2), res

"""Fixed-Threshold Approximation (FTA, DESIGN.md 3).

Per filter f a threshold ``phi_f`` in [phi_min, phi_max] = the mode of the CSD
non-zero count over the filter's kept weights (ties to the larger count); every
kept weight is replaced by its nearest value with exactly ``phi_f`` non-zero
CSD digits. Rounding is named: distances are measured on the real
quantized-domain value ``u`` (one rounding), ties go to the smaller magnitude,
then to the positive value.

Layout: weights are K x N im2col matrices (rows = inputs, columns = filters).
"""

from __future__ import annotations

import numpy as np

from model import csd
from model._check import as_int_array, check_finite, check_range

__all__ = ["levels", "thresholds", "approximate", "quantize", "approximate_reference"]

_PHI_LIMIT = csd.N_BLOCKS  # int8 values have at most 4 non-zero CSD digits


def _check_phi_bounds(phi_min, phi_max):
    for name, v in (("phi_min", phi_min), ("phi_max", phi_max)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
            raise TypeError(f"{name}: must be an integer, got {v!r}")
    if not 1 <= phi_max <= _PHI_LIMIT:
        raise ValueError(f"phi_max: must be in [1, {_PHI_LIMIT}], got {phi_max}")
    if not 0 <= phi_min <= phi_max:
        raise ValueError(f"phi_min: must be in [0, phi_max={phi_max}], got {phi_min}")


def levels(phi: int) -> np.ndarray:
    """S_phi: sorted int8 values with exactly ``phi`` non-zero CSD digits (S_0 = {0})."""
    v = np.arange(-128, 128)
    return v[csd.NNZ_LUT == phi]


def approximate_reference(u: float, phi: int) -> int:
    """Scalar, obviously-correct nearest member of S_phi (the tests' oracle)."""
    u = min(max(float(u), -128.0), 127.0)
    return int(min(levels(phi), key=lambda v: (abs(u - v), abs(v), -v)))


def _build_lut():
    """Nearest value for every half-unit interval of 2u and every phi.

    Members of S_phi are integers, so the nearest member is constant on each open
    interval (i/2, (i+1)/2) and ties can only occur at u = i/2. Row ``phi``,
    column ``2*(i + 256) + open`` holds the answer at u = i/2 (open = 0) or in the
    open interval above it (open = 1), i = floor(2u) in [-256, 254].
    """
    lut = np.zeros((_PHI_LIMIT + 1, 2 * 512), np.int8)
    for phi in range(_PHI_LIMIT + 1):
        s = levels(phi).astype(np.float64)
        for i in range(-256, 255):
            for open_ in (0, 1):
                u = i / 2 + 0.25 * open_
                d = np.abs(u - s)
                cand = s[d == d.min()]
                best = min(cand, key=lambda v: (abs(v), -v))
                lut[phi, 2 * (i + 256) + open_] = int(best)
    return lut


_LUT = _build_lut()
_LUT_FLAT = _LUT.ravel()


_CHUNK = 32768  # elements per chunk: keeps the temporaries in cache


def _row_chunks(n_rows: int, row_len: int):
    step = max(1, _CHUNK // max(1, row_len))
    for r0 in range(0, n_rows, step):
        yield slice(r0, min(n_rows, r0 + step))


def approximate(u, phi, phi_max: int = 2) -> np.ndarray:
    """Nearest int8 value with exactly ``phi`` non-zero CSD digits.

    Parameters
    ----------
    u : array_like of float
        Real values in the quantized domain (``w_float / scale``); clipped to
        [-128, 127] first.
    phi : array_like of int
        Threshold per element, broadcastable against ``u``, in [0, phi_max].
    phi_max : int
        Upper bound for ``phi`` (1..4).

    Returns
    -------
    ndarray of int8, the broadcast shape of ``u`` and ``phi``.
        Ties go to the smaller magnitude, then to the positive value.
    """
    _check_phi_bounds(0, phi_max)
    u = np.asarray(u)
    if not np.issubdtype(u.dtype, np.number) or u.dtype == bool or np.iscomplexobj(u):
        raise TypeError(f"u: must be a real-valued array, got dtype {u.dtype}")
    if u.dtype not in (np.float32, np.float64):
        u = u.astype(np.float64)
    check_finite(u, "u")
    ph = as_int_array(phi, "phi")
    check_range(ph, 0, phi_max, "phi")
    shape = np.broadcast_shapes(u.shape, ph.shape)
    n = shape[-1] if shape else 1
    if ph.size in (1, n) and ph.ndim <= max(1, len(shape)) and u.shape == shape:
        # fast path: phi varies along the last axis only (per filter)
        u2 = u.reshape(-1, n)
        base = (np.broadcast_to(ph.reshape(-1), (n,)).astype(np.int32) * 1024 + 512)[None, :]
        out = np.empty(u2.shape, np.int8)
        for sl in _row_chunks(u2.shape[0], n):
            y = np.clip(u2[sl], -128.0, 127.0)
            y *= 2
            i = np.floor(y)
            key = i.astype(np.int32)
            key *= 2
            key += base
            key += y != i
            np.take(_LUT_FLAT, key, out=out[sl])
        return out.reshape(shape)
    y = 2.0 * np.clip(np.broadcast_to(u, shape), -128.0, 127.0)
    i = np.floor(y)
    key = 2 * (i.astype(np.int64) + 256) + (y != i)
    return _LUT_FLAT[np.broadcast_to(ph, shape).astype(np.intp) * 1024 + key]


def thresholds(w_int, mask, phi_min: int = 0, phi_max: int = 2) -> np.ndarray:
    """Per-filter FTA threshold phi (DESIGN.md 3).

    Parameters
    ----------
    w_int : array_like of int, shape (K, N)
        int8 weights in im2col layout (columns are filters).
    mask : array_like of bool, shape (K, N)
        True where block pruning kept the weight (use
        :func:`model.prune.expand_mask` for a block mask).
    phi_min, phi_max : int
        Clamp range, 0 <= phi_min <= phi_max <= 4.

    Returns
    -------
    ndarray of uint8, shape (N,)
        Mode of nnz over kept weights (ties to the larger count), clamped. A
        filter with no kept weight gets ``phi_min``.
    """
    _check_phi_bounds(phi_min, phi_max)
    w = as_int_array(w_int, "w_int")
    if w.ndim != 2:
        raise ValueError(f"w_int: must be a K x N matrix, got shape {w.shape}")
    check_range(w, -128, 127, "w_int")
    m = np.asarray(mask)
    if m.shape != w.shape:
        raise ValueError(f"mask: must have the shape of w_int {w.shape}, got {m.shape}")
    if m.dtype != bool:
        if not np.isin(m, (0, 1)).all():
            raise ValueError("mask: must hold only 0/1 or booleans")
        m = m.astype(bool)
    K, N = w.shape
    # counts[v * N + f] = kept weights of filter f with nnz == v; v = 5 collects pruned ones
    counts = np.zeros((_PHI_LIMIT + 2) * N, np.int64)
    col = np.arange(N, dtype=np.intp)[None, :]
    for sl in _row_chunks(K, N):
        n = csd.NNZ_LUT[w[sl].astype(np.intp) + 128]
        code = np.where(m[sl], n, _PHI_LIMIT + 1).astype(np.intp) * N + col
        counts += np.bincount(code.ravel(), minlength=counts.size)
    counts = counts.reshape(_PHI_LIMIT + 2, N)[: _PHI_LIMIT + 1]
    # mode with ties to the larger count: argmax over the reversed axis
    mode = _PHI_LIMIT - np.argmax(counts[::-1], axis=0)
    mode = np.where(counts.sum(0) == 0, phi_min, mode)
    return np.clip(mode, phi_min, phi_max).astype(np.uint8)


def quantize(u, mask, phi_min: int = 0, phi_max: int = 2):
    """FTA-quantize a layer from its real quantized-domain weights.

    ``w0 = round_half_even(clip(u, -128, 127))`` gives the int8 weights that set
    phi (:func:`thresholds`); every kept weight is then :func:`approximate`-d from
    ``u`` itself (one rounding), pruned weights are 0.

    Parameters
    ----------
    u : array_like of float, shape (K, N)
    mask : array_like of bool, shape (K, N)

    Returns
    -------
    w_fta : ndarray of int8, shape (K, N)
    phi : ndarray of uint8, shape (N,)
    """
    u = np.asarray(u)
    if u.dtype not in (np.float32, np.float64):
        u = u.astype(np.float64)
    check_finite(u, "u")
    if u.ndim != 2:
        raise ValueError(f"u: must be a K x N matrix, got shape {u.shape}")
    m = np.asarray(mask, bool)
    if m.shape != u.shape:
        raise ValueError(f"mask: must have the shape of u {u.shape}, got {m.shape}")
    w0 = np.empty(u.shape, np.int8)
    for sl in _row_chunks(u.shape[0], u.shape[1]):
        w0[sl] = np.rint(np.clip(u[sl], -128, 127))
    phi = thresholds(w0, m, phi_min, phi_max)
    w = approximate(u, phi[None, :], phi_max)
    w[~m] = 0
    return w, phi

"""Fixed-Threshold Approximation (FTA, docs/design.md §3).

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

from dbpim.model import csd
from dbpim.model._check import as_int_array, check_finite, check_int, check_range
from dbpim.model.spec import PHI_LIMIT, WEIGHT_MAX, WEIGHT_MIN

__all__ = ["check_phi", "levels", "thresholds", "approximate", "quantize", "approximate_reference"]

def check_phi(phi_max, phi_min=0, ceiling: int = PHI_LIMIT) -> tuple[int, int]:
    """The one check of an FTA threshold range: ``(phi_min, phi_max)`` as ints.

    ``phi_max`` must be an integer in ``[1, ceiling]`` (``ceiling``: the
    macro's ``phi_max``, at most :data:`model.spec.PHI_LIMIT`) and
    ``phi_min`` an integer in ``[0, phi_max]``; a non-integer (``1.5``) is
    refused, never rounded.

    Raises
    ------
    ValueError
        One line naming the field: ``phi_max: must be an integer in [1, 4], got 1.5``.
    """
    pm = check_int("phi_max", phi_max, 1, check_int("ceiling", ceiling, 1, PHI_LIMIT))
    return check_int("phi_min", phi_min, 0, pm), pm


def levels(phi: int) -> np.ndarray:
    """S_phi: sorted int8 values with exactly ``phi`` non-zero CSD digits (S_0 = {0})."""
    v = np.arange(WEIGHT_MIN, WEIGHT_MAX + 1)
    return v[csd.NNZ_LUT == phi]


def approximate_reference(u: float, phi: int) -> int:
    """Scalar, obviously-correct nearest member of S_phi (the tests' oracle)."""
    u = min(max(float(u), WEIGHT_MIN), WEIGHT_MAX)
    return int(min(levels(phi), key=lambda v: (abs(u - v), abs(v), -v)))


def _build_lut():
    """Nearest value for every half-unit interval of 2u and every phi.

    Members of S_phi are integers, so the nearest member is constant on each open
    interval (i/2, (i+1)/2) and ties can only occur at u = i/2. Row ``phi``,
    column ``2*(i + 256) + open`` holds the answer at u = i/2 (open = 0) or in the
    open interval above it (open = 1), i = floor(2u) in [-256, 254].
    """
    lut = np.zeros((PHI_LIMIT + 1, 2 * 512), np.int8)
    for phi in range(PHI_LIMIT + 1):
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
_FIELD = 12  # bits per nnz counter in the packed column sums of _nnz_counts
_MAX_CHUNK_ROWS = (1 << _FIELD) - 1  # so a chunk's count never overflows its field


def _row_chunks(n_rows: int, row_len: int):
    step = min(_MAX_CHUNK_ROWS, max(1, _CHUNK // max(1, row_len)))
    for r0 in range(0, n_rows, step):
        yield slice(r0, min(n_rows, r0 + step))


def _keys(uc: np.ndarray) -> np.ndarray:
    """LUT column of each value: 2 * (floor(2u) + 256) + (2u not an integer), int32."""
    y = np.clip(uc, float(WEIGHT_MIN), float(WEIGHT_MAX))
    y *= 2
    i = np.floor(y)
    key = i.astype(np.int32)
    key *= 2
    key += 512
    key += y != i
    return key


# nnz of round_half_even(u) per LUT column: rint(u) is constant on every key
_KEY_U = np.array([(k // 2 - 256) / 2 + 0.25 * (k % 2) for k in range(1024)])
_NNZ_RINT_BY_KEY = csd.NNZ_LUT[np.clip(np.rint(_KEY_U), WEIGHT_MIN, WEIGHT_MAX).astype(np.intp) - WEIGHT_MIN]
_SHIFTS = (np.arange(PHI_LIMIT + 1, dtype=np.uint64) * np.uint64(_FIELD))[:, None]
_PACK_BY_VALUE = np.uint64(1) << (np.uint64(_FIELD) * csd.NNZ_LUT.astype(np.uint64))
_PACK_BY_KEY = np.uint64(1) << (np.uint64(_FIELD) * _NNZ_RINT_BY_KEY.astype(np.uint64))


def _approx_rows(u2: np.ndarray, phi_row: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Unchecked core of :func:`approximate` for a (R, n) array and per-column phi."""
    n = u2.shape[1]
    base = (phi_row.astype(np.int32) * 1024)[None, :]
    out = np.empty(u2.shape, np.int8)
    for sl in _row_chunks(u2.shape[0], n):
        key = _keys(u2[sl])
        key += base
        np.take(_LUT_FLAT, key, out=out[sl])
        if mask is not None:
            out[sl][~mask[sl]] = 0
    return out


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
    check_phi(phi_max, 0)
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
        return _approx_rows(u2, np.broadcast_to(ph.reshape(-1), (n,))).reshape(shape)
    y = 2.0 * np.clip(np.broadcast_to(u, shape), float(WEIGHT_MIN), float(WEIGHT_MAX))
    i = np.floor(y)
    key = 2 * (i.astype(np.int64) + 256) + (y != i)
    return _LUT_FLAT[np.broadcast_to(ph, shape).astype(np.intp) * 1024 + key]


def thresholds(w_int, mask, phi_min: int = 0, phi_max: int = 2) -> np.ndarray:
    """Per-filter FTA threshold phi (docs/design.md §3).

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
    check_phi(phi_max, phi_min)
    w = as_int_array(w_int, "w_int")
    if w.ndim != 2:
        raise ValueError(f"w_int: must be a K x N matrix, got shape {w.shape}")
    check_range(w, WEIGHT_MIN, WEIGHT_MAX, "w_int")
    m = np.asarray(mask)
    if m.shape != w.shape:
        raise ValueError(f"mask: must have the shape of w_int {w.shape}, got {m.shape}")
    if m.dtype != bool:
        if not np.isin(m, (0, 1)).all():
            raise ValueError("mask: must hold only 0/1 or booleans")
        m = m.astype(bool)
    counts = _nnz_counts(((_PACK_BY_VALUE[w[sl].astype(np.intp) - WEIGHT_MIN], m[sl]) for sl in _row_chunks(*w.shape)),
                         w.shape[1])
    return _mode(counts, phi_min, phi_max)


def _nnz_counts(chunks, N: int) -> np.ndarray:
    """counts[v, f] = kept weights of filter f with nnz == v.

    ``chunks`` yields (packed, mask) row chunks where ``packed`` holds
    ``1 << (12 * nnz)`` per weight (see ``_PACK_*``): one column sum then
    counts all five nnz values at once, 12 bits each (a chunk has < 4096 rows).
    """
    counts = np.zeros((PHI_LIMIT + 1, N), np.uint64)
    for packed, mc in chunks:
        packed *= mc
        s = packed.sum(0, dtype=np.uint64)
        counts += (s[None, :] >> _SHIFTS) & np.uint64((1 << _FIELD) - 1)
    return counts.astype(np.int64)


def _mode(counts: np.ndarray, phi_min: int, phi_max: int) -> np.ndarray:
    """Mode over axis 0 with ties to the larger count, clamped; phi_min where empty."""
    mode = PHI_LIMIT - np.argmax(counts[::-1], axis=0)
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
    if u.ndim != 2:
        raise ValueError(f"u: must be a K x N matrix, got shape {u.shape}")
    m = np.asarray(mask, bool)
    if m.shape != u.shape:
        raise ValueError(f"mask: must have the shape of u {u.shape}, got {m.shape}")
    check_phi(phi_max, phi_min)

    def nnz_chunks():  # nnz of round_half_even(u), one pass over u
        for sl in _row_chunks(*u.shape):
            uc = u[sl]
            if not np.isfinite(uc).all():
                raise ValueError("u: must be finite, found NaN or inf")
            yield _PACK_BY_KEY[_keys(uc)], m[sl]

    phi = _mode(_nnz_counts(nnz_chunks(), u.shape[1]), phi_min, phi_max)
    return _approx_rows(u, phi, mask=m), phi

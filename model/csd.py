"""Canonical signed digit (CSD) encoding and dyadic-block entries (docs/design.md §2).

CSD is the non-adjacent form: digits d_p in {-1, 0, +1} at positions p = 0..7,
no two adjacent digits non-zero, unique. Every int8 value fits in 8 positions.
Dyadic block k (k = 0..3) is the digit pair at positions (2k+1, 2k); it holds at
most one non-zero digit, stored as the entry ``(idx=k, pos, sign)`` with value
``(-1)**sign * 2**(2k + pos)``.

All functions are vectorised through lookup tables over the 256 int8 values.
"""

from __future__ import annotations

import numpy as np

from dbpim.model._check import as_int_array, check_range
from dbpim.model.spec import N_BLOCKS, N_POS, WEIGHT_MAX, WEIGHT_MIN

__all__ = ["encode", "decode", "nnz", "entries", "from_entries", "digits_sorted", "NNZ_LUT"]


def _naf(v: int) -> list[int]:
    """Non-adjacent form of ``v``, position 0 first, 8 digits."""
    d = []
    while v != 0:
        if v & 1:
            di = 2 - (v % 4)  # +1 or -1
            v -= di
        else:
            di = 0
        d.append(di)
        v //= 2
    d += [0] * (N_POS - len(d))
    assert len(d) == N_POS
    return d


_VALUES = np.arange(WEIGHT_MIN, WEIGHT_MAX + 1)
DIGIT_LUT = np.array([_naf(int(v)) for v in _VALUES], dtype=np.int8)  # (256, 8)
NNZ_LUT = np.count_nonzero(DIGIT_LUT, axis=1).astype(np.uint8)  # (256,)
_POW = (1 << np.arange(N_POS)).astype(np.int64)


def _blocks_lut():
    blk = DIGIT_LUT.reshape(_VALUES.size, N_BLOCKS, 2)  # [..., k, (low, high)]
    hi, lo = blk[..., 1], blk[..., 0]
    valid = (hi != 0) | (lo != 0)
    pos = (hi != 0).astype(np.uint8)
    sign = ((hi + lo) < 0).astype(np.uint8)
    idx = np.broadcast_to(np.arange(N_BLOCKS, dtype=np.uint8), valid.shape).copy()
    return idx, pos, sign, valid


IDX_LUT, POS_LUT, SIGN_LUT, VALID_LUT = _blocks_lut()


def _sorted_lut():
    """(256, 4) idx/pos/sign of the non-zero digits, lowest position first, padded."""
    idx = np.zeros((_VALUES.size, N_BLOCKS), np.uint8)
    pos = np.zeros((_VALUES.size, N_BLOCKS), np.uint8)
    sign = np.zeros((_VALUES.size, N_BLOCKS), np.uint8)
    for i in range(_VALUES.size):
        ks = np.nonzero(VALID_LUT[i])[0]
        idx[i, :len(ks)] = ks
        pos[i, :len(ks)] = POS_LUT[i, ks]
        sign[i, :len(ks)] = SIGN_LUT[i, ks]
    return idx, pos, sign


SORTED_IDX_LUT, SORTED_POS_LUT, SORTED_SIGN_LUT = _sorted_lut()


def _index(x, name="x") -> np.ndarray:
    a = as_int_array(x, name)
    check_range(a, WEIGHT_MIN, WEIGHT_MAX, name)
    return a.astype(np.int64) - WEIGHT_MIN


def encode(x) -> np.ndarray:
    """CSD digits of int8 values.

    Parameters
    ----------
    x : array_like of int
        Values in [-128, 127], any shape.

    Returns
    -------
    ndarray of int8, shape ``x.shape + (8,)``
        Digits in {-1, 0, 1}, position 0 first.
    """
    return DIGIT_LUT[_index(x)]


def decode(digits) -> np.ndarray:
    """Value of CSD (or any signed-digit) arrays ``[..., 8]`` -> int64 ``[...]``."""
    d = as_int_array(digits, "digits")
    if d.shape[-1:] != (N_POS,):
        raise ValueError(f"digits: last axis must have length {N_POS}, got shape {d.shape}")
    check_range(d, -1, 1, "digits")
    return (d.astype(np.int64) * _POW).sum(-1)


def nnz(x) -> np.ndarray:
    """Number of non-zero CSD digits (0..4) of int8 values, uint8 of ``x``'s shape."""
    return NNZ_LUT[_index(x)]


def entries(x):
    """Dyadic-block entries of int8 values.

    Returns
    -------
    idx, pos, sign : ndarray of uint8, shape ``x.shape + (4,)``
        Per block k: ``idx`` = k, ``pos`` = 1 if the digit is at 2k+1, ``sign`` = 1
        for -1 (0 where the block is a Zero Pattern).
    valid : ndarray of bool, shape ``x.shape + (4,)``
        True where block k is a Comp. Pattern (holds a non-zero digit).
    """
    i = _index(x)
    return IDX_LUT[i], POS_LUT[i], SIGN_LUT[i], VALID_LUT[i]


def from_entries(idx, pos, sign, valid) -> np.ndarray:
    """Inverse of :func:`entries` (and of :func:`digits_sorted`): int64 values.

    Sums ``(-1)**sign * 2**(2*idx + pos)`` over the last axis where ``valid``.
    """
    idx, pos, sign = (as_int_array(a, n) for a, n in ((idx, "idx"), (pos, "pos"), (sign, "sign")))
    check_range(idx, 0, N_BLOCKS - 1, "idx")
    check_range(pos, 0, 1, "pos")
    check_range(sign, 0, 1, "sign")
    v = np.where(np.asarray(valid, bool), (1 - 2 * sign.astype(np.int64)) << (2 * idx + pos).astype(np.int64), 0)
    return v.sum(-1)


def digits_sorted(x, phi: int):
    """The ``phi`` non-zero digits of each value, lowest position first.

    Parameters
    ----------
    x : array_like of int
        int8 values, each with exactly ``phi`` non-zero CSD digits.
    phi : int
        0..4.

    Returns
    -------
    idx, pos, sign : ndarray of uint8, shape ``x.shape + (phi,)``

    Raises
    ------
    ValueError
        If a value does not have exactly ``phi`` non-zero digits.
    """
    if not (isinstance(phi, (int, np.integer)) and 0 <= phi <= N_BLOCKS):
        raise ValueError(f"phi: must be an integer in [0, {N_BLOCKS}], got {phi!r}")
    i = _index(x)
    n = NNZ_LUT[i]
    if np.any(n != phi):
        bad = np.asarray(x).flat[int(np.argmax((n != phi).ravel()))]
        raise ValueError(f"x: every value must have exactly phi={phi} non-zero CSD digits; {int(bad)} has "
                         f"{int(NNZ_LUT[int(bad) - WEIGHT_MIN])}")
    return SORTED_IDX_LUT[i][..., :phi], SORTED_POS_LUT[i][..., :phi], SORTED_SIGN_LUT[i][..., :phi]

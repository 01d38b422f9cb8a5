"""Integer twins of the RTL blocks (docs/design.md §5), bit for bit.

Each function here has the same inputs and outputs as the Amaranth component
of the same name in ``hw/`` and is what the block testbenches compare against:

=================  =======================  ===================================
twin               RTL                      behaviour
=================  =======================  ===================================
:func:`lpu`        ``hw.lpu.LPU``           ``hi = x & q``, ``lo = x & ~q``
:func:`dbmu`       ``hw.dbmu.DBMU``         LPU on the selected cell row
:func:`adder_tree` ``hw.adder_tree.``       ``sum_c (-1)^s_c (hi_c 2^(2i_c+1)
                   ``CSDAdderTree``         + lo_c 2^(2i_c))``
:func:`accumulator` ``hw.accumulator.``     per slot ``acc += slot_sum << b``
                   ``ShiftAddAccumulator``
:func:`ipu`        ``hw.ipu.IPU``           non-zero bit columns, LSB first
:func:`switch`     ``hw.switch.``           kept inputs, ``lanes`` per beat
                   ``SparseSwitch``
:func:`pack_rows`  ``hw.core.RowPacker``    switch beats -> cell rows
=================  =======================  ===================================

Widths, latencies and stream payload layouts of these blocks live in
:mod:`model.spec`.

Pure NumPy / Python integers, no torch.
"""

from __future__ import annotations

import numpy as np

from dbpim.model._check import as_int_array, check_range
from dbpim.model.spec import ACT_BITS, positive_int as _pos_int

__all__ = ["lpu", "dbmu", "adder_tree", "accumulator", "ipu", "switch", "pack_rows"]

# --------------------------------------------------------------------------- blocks

def _bits(a, name: str) -> np.ndarray:
    a = as_int_array(a, name)
    check_range(a, 0, 1, name)
    return a.astype(np.int64)


def lpu(x, q):
    """Local processing unit: one input bit against the cell's complementary pair.

    Parameters
    ----------
    x, q : array_like of int (0 or 1), broadcastable
        Input bit and the cell bit Q (QB = not Q).

    Returns
    -------
    hi, lo : ndarray of int64, broadcast shape
        ``x AND Q`` and ``x AND QB`` (never both 1).
    """
    x, q = _bits(x, "x"), _bits(q, "q")
    return x & q, x & (1 - q)


def dbmu(cells, row, x):
    """Dyadic block multiply unit: the LPU products of the selected cell row.

    Parameters
    ----------
    cells : array_like of int (0 or 1), shape (n_row,)
        The 6T cell bits Q.
    row : int
        Selected row, ``0 <= row < n_row``.
    x : int (0 or 1)
        Input bit.

    Returns
    -------
    hi, lo : int
    """
    c = _bits(cells, "cells")
    if c.ndim != 1:
        raise ValueError(f"cells: must be 1-D (n_row,), got shape {c.shape}")
    if isinstance(row, bool) or not isinstance(row, (int, np.integer)):
        raise TypeError(f"row: must be an integer, got {type(row).__name__}")
    if not 0 <= row < c.size:
        raise ValueError(f"row: must lie in [0, {c.size - 1}], got {row}")
    hi, lo = lpu(x, c[row])
    return int(hi), int(lo)


def adder_tree(hi, lo, idx, sign) -> np.ndarray:
    """CSD-based adder tree of one column over ``n_comp`` compartments.

    Parameters
    ----------
    hi, lo : array_like of int (0 or 1), shape (..., n_comp)
        LPU product pairs; at most one of each pair is 1.
    idx : array_like of int in 0..3, shape (..., n_comp)
        Dyadic block index of each compartment's entry.
    sign : array_like of int (0 or 1), shape (..., n_comp)
        1 where the entry's digit is -1.

    Returns
    -------
    ndarray of int64, shape (...)
        ``sum_c (-1)**sign_c * (hi_c * 2**(2 idx_c + 1) + lo_c * 2**(2 idx_c))``;
        fits :func:`col_sum_width`.
    """
    hi, lo, sg = _bits(hi, "hi"), _bits(lo, "lo"), _bits(sign, "sign")
    ix = as_int_array(idx, "idx")
    check_range(ix, 0, 3, "idx")
    try:
        hi, lo, ix, sg = np.broadcast_arrays(hi, lo, ix.astype(np.int64), sg)
    except ValueError:
        raise ValueError(f"hi, lo, idx, sign: shapes {np.shape(hi)}, {np.shape(lo)}, {np.shape(ix)}, "
                         f"{np.shape(sg)} do not broadcast") from None
    if hi.ndim == 0:
        raise ValueError("hi, lo, idx, sign: need a last axis of n_comp compartments")
    mag = (hi << (2 * ix + 1)) + (lo << (2 * ix))
    return np.where(sg == 1, -mag, mag).sum(-1)


def accumulator(col_sums, bits, col_filter, signed: bool = False, in_bits: int = ACT_BITS) -> np.ndarray:
    """Shift-and-add accumulator over one input vector.

    Every step ``t`` adds ``slot_sum << bits[t]`` to each slot (subtracts it
    when ``signed`` and ``bits[t] == in_bits - 1``), where ``slot_sum[s]`` is
    the sum of the column sums of the columns ``j`` with ``col_filter[j] == s``.
    Columns with ``col_filter[j] == -1`` are ignored. Accumulators start at 0
    (the RTL's clear).

    Parameters
    ----------
    col_sums : array_like of int, shape (T, n_col)
        Adder-tree outputs of each step.
    bits : array_like of int, shape (T,)
        Input bit column of each step, ``0 <= b < in_bits``.
    col_filter : array_like of int, shape (n_col,)
        Slot owning each column, ``-1 <= s < n_col``.
    signed : bool
        Two's-complement inputs: the MSB column weighs ``-2**(in_bits-1)``.
    in_bits : int

    Returns
    -------
    ndarray of int64, shape (n_col,)
        Per-slot accumulators.
    """
    cs = as_int_array(col_sums, "col_sums").astype(np.int64)
    if cs.ndim != 2:
        raise ValueError(f"col_sums: must be 2-D (T, n_col), got shape {cs.shape}")
    T, n_col = cs.shape
    b = as_int_array(bits, "bits").reshape(-1).astype(np.int64)
    if b.shape != (T,):
        raise ValueError(f"bits: must have shape ({T},), got {b.shape}")
    in_bits = _pos_int(in_bits, "in_bits")
    check_range(b, 0, in_bits - 1, "bits")
    cf = as_int_array(col_filter, "col_filter").reshape(-1).astype(np.int64)
    if cf.shape != (n_col,):
        raise ValueError(f"col_filter: must have shape ({n_col},), got {cf.shape}")
    check_range(cf, -1, n_col - 1, "col_filter")
    weight = np.where(bool(signed) & (b == in_bits - 1), -1, 1) << b  # (T,)
    per_col = (cs * weight[:, None]).sum(0)
    acc = np.zeros(n_col, np.int64)
    used = cf >= 0
    np.add.at(acc, cf[used], per_col[used])
    return acc


def ipu(group, in_bits: int = ACT_BITS) -> list[tuple[int, int, bool]]:
    """Input pre-processing unit: the non-zero bit columns of a group, LSB first.

    Parameters
    ----------
    group : array_like of int, shape (n_comp,)
        Input bit patterns in ``[0, 2**in_bits)`` (use
        :func:`model.macro.input_bits` for signed values).
    in_bits : int

    Returns
    -------
    list of (b, bits, last)
        One beat per bit column ``b`` where some input has bit ``b`` set;
        ``bits`` has bit ``c`` = bit ``b`` of input ``c``; ``last`` on the final
        beat. Empty for an all-zero group (the RTL pulses ``empty`` instead).
    """
    in_bits = _pos_int(in_bits, "in_bits")
    g = as_int_array(group, "group")
    if g.ndim != 1:
        raise ValueError(f"group: must be 1-D (n_comp,), got shape {g.shape}")
    check_range(g, 0, (1 << in_bits) - 1, "group")
    vals = [int(v) for v in g]
    cols = [b for b in range(in_bits) if any((v >> b) & 1 for v in vals)]
    out = []
    for k, b in enumerate(cols):
        bits = sum(((v >> b) & 1) << c for c, v in enumerate(vals))
        out.append((b, bits, k == len(cols) - 1))
    return out


def switch(data, mask, lanes: int) -> list[tuple[list[int], int, bool]]:
    """Sparse allocation switch: the inputs whose mask bit is 1, in order, ``lanes`` per beat.

    Parameters
    ----------
    data : array_like of int, shape (window,)
        Input window (any non-negative integers; the RTL carries ``width`` bits).
    mask : array_like of int (0 or 1), shape (window,)
        Pruning mask bits; 1 = keep.
    lanes : int
        Outputs per beat.

    Returns
    -------
    list of (values, lane_en, last)
        ``values`` has ``lanes`` entries (0 in disabled lanes); ``lane_en`` has
        bit ``k`` set when lane ``k`` carries a value (always the low lanes);
        ``last`` on the final beat. Empty for an all-zero mask.
    """
    lanes = _pos_int(lanes, "lanes")
    d = as_int_array(data, "data")
    m = _bits(mask, "mask")
    if d.ndim != 1 or m.shape != d.shape:
        raise ValueError(f"data, mask: must be 1-D of the same length, got shapes {d.shape}, {m.shape}")
    check_range(d, 0, np.iinfo(np.int64).max, "data")
    kept = [int(v) for v, k in zip(d, m) if k]
    out = []
    for i in range(0, len(kept), lanes):
        chunk = kept[i:i + lanes]
        out.append((chunk + [0] * (lanes - len(chunk)), (1 << len(chunk)) - 1, i + lanes >= len(kept)))
    return out


def pack_rows(beats, n_comp: int) -> list[tuple[list[int], bool]]:
    """Row packer of the PIM core: switch beats -> cell rows of ``n_comp`` inputs.

    Parameters
    ----------
    beats : sequence of (values, lane_en, vend)
        Switch output beats (:func:`switch`: values in the low ``popcount(lane_en)``
        lanes) and whether the beat is its vector's last.
    n_comp : int

    Returns
    -------
    list of (row, vend)
        Rows of ``n_comp`` inputs in order; a vector's last row is zero-padded
        and flagged.
    """
    n_comp = _pos_int(n_comp, "n_comp")
    out, cur = [], []
    for values, lane_en, vend in beats:
        cur += list(values)[:bin(int(lane_en)).count("1")]
        while len(cur) >= n_comp:
            out.append((cur[:n_comp], bool(vend) and len(cur) == n_comp))
            cur = cur[n_comp:]
        if vend and cur:
            out.append((cur + [0] * (n_comp - len(cur)), True))
            cur = []
    return out

"""Integer twins of the RTL blocks (DESIGN.md 5), bit for bit.

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
=================  =======================  ===================================

The widths the RTL uses are derived here once (:func:`col_sum_width`,
:func:`slot_sum_width`, :func:`acc_width`, :func:`cycle_width`) and the stream
payload layouts are described here once as field lists (``*_fields``); ``hw``
builds its ``data.StructLayout`` payloads from these lists, and the
``pack_*`` / ``unpack_*`` helpers turn payload values into the integer seen on a
Verilog port and back. Fields are packed LSB first in list order, exactly as
``amaranth.lib.data.StructLayout`` does; array fields put element 0 lowest.

Pure NumPy / Python integers, no torch.
"""

from __future__ import annotations

import numpy as np

from model._check import as_int_array, check_range

__all__ = [
    "TERM_MAX", "bits_for", "col_sum_width", "slot_sum_width", "acc_width", "cycle_width",
    "lpu", "dbmu", "adder_tree", "accumulator", "ipu", "switch",
    "pack", "unpack",
    "ipu_in_fields", "ipu_out_fields", "switch_in_fields", "switch_out_fields",
    "macro_in_fields", "macro_out_fields",
    "pack_ipu_in", "unpack_ipu_in", "pack_ipu_out", "unpack_ipu_out",
    "pack_switch_in", "unpack_switch_in", "pack_switch_out", "unpack_switch_out",
    "pack_macro_in", "unpack_macro_in", "pack_macro_out", "unpack_macro_out",
]

#: Largest magnitude one compartment adds to a column sum: a digit at position 7.
TERM_MAX = 1 << 7


# --------------------------------------------------------------------------- widths

def _pos_int(v, name: str, lo: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name}: must be an integer, got {type(v).__name__}")
    if v < lo:
        raise ValueError(f"{name}: must be >= {lo}, got {v}")
    return int(v)


def bits_for(n: int) -> int:
    """Unsigned bits to hold every value 0..n (at least 1), like ``Shape.cast(range(n + 1))``."""
    return max(1, int(n).bit_length())


def _signed_bits(max_abs: int) -> int:
    """Two's-complement bits to hold every value in [-max_abs, max_abs]."""
    return int(max_abs).bit_length() + 1


def col_sum_width(n_comp: int) -> int:
    """Signed width of one CSD adder-tree output: ``|sum| <= n_comp * 2**7``."""
    return _signed_bits(_pos_int(n_comp, "n_comp") * TERM_MAX)


def slot_sum_width(n_comp: int, n_col: int) -> int:
    """Signed width of a filter slot's column-sum total.

    Bounded by every column mapping to one slot (the RTL does not trust the
    column map to respect ``phi_max``), so any loaded map is overflow-free.
    """
    return _signed_bits(_pos_int(n_comp, "n_comp") * _pos_int(n_col, "n_col") * TERM_MAX)


def acc_width(n_comp: int, n_col: int, n_row: int, in_bits: int) -> int:
    """Signed accumulator width that never overflows.

    ``|acc| <= n_row * (2**in_bits - 1) * n_col * n_comp * 2**7``: every row,
    every input bit (the bit weights of a signed input also sum to at most
    ``2**in_bits - 1`` in magnitude), every column into one slot.
    """
    bound = (_pos_int(n_row, "n_row") * ((1 << _pos_int(in_bits, "in_bits")) - 1)
             * _pos_int(n_col, "n_col") * _pos_int(n_comp, "n_comp") * TERM_MAX)
    return _signed_bits(bound)


def cycle_width(n_row: int, in_bits: int) -> int:
    """Unsigned width of the macro cycle counter (``n_row * in_bits`` columns plus a margin of 8)."""
    return bits_for(_pos_int(n_row, "n_row") * _pos_int(in_bits, "in_bits") + 8)


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


def accumulator(col_sums, bits, col_filter, signed: bool = False, in_bits: int = 8) -> np.ndarray:
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


def ipu(group, in_bits: int = 8) -> list[tuple[int, int, bool]]:
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


# --------------------------------------------------------------------------- payload packing
# A field is (name, elem_width, count, signed): count None = scalar, else an
# array of `count` elements (element 0 lowest).

def _fwidth(f) -> int:
    _, w, n, _ = f
    return w * (1 if n is None else n)


def pack(fields, values: dict) -> int:
    """Pack ``values`` (name -> int or sequence) into one integer, LSB first.

    Raises
    ------
    ValueError
        On a missing field, a wrong array length, or a value that does not fit.
    """
    word, off = 0, 0
    for f in fields:
        name, w, n, sgn = f
        if name not in values:
            raise ValueError(f"{name}: missing payload field")
        v = values[name]
        elems = [v] if n is None else list(np.asarray(v).reshape(-1))
        if n is not None and len(elems) != n:
            raise ValueError(f"{name}: must have {n} elements, got {len(elems)}")
        lo, hi = (-(1 << (w - 1)), (1 << (w - 1)) - 1) if sgn else (0, (1 << w) - 1)
        for k, e in enumerate(elems):
            e = int(e)
            if not lo <= e <= hi:
                raise ValueError(f"{name}: {e} does not fit {'signed' if sgn else 'unsigned'}({w})")
            word |= (e & ((1 << w) - 1)) << (off + k * w)
        off += _fwidth(f)
    return word


def unpack(fields, word: int) -> dict:
    """Inverse of :func:`pack`: name -> int (scalar) or list of ints (array)."""
    word = int(word)
    if word < 0:
        raise ValueError(f"word: must be non-negative, got {word}")
    out, off = {}, 0
    for f in fields:
        name, w, n, sgn = f
        elems = []
        for k in range(1 if n is None else n):
            e = (word >> (off + k * w)) & ((1 << w) - 1)
            if sgn and e >> (w - 1):
                e -= 1 << w
            elems.append(e)
        out[name] = elems[0] if n is None else elems
        off += _fwidth(f)
    return out


def ipu_in_fields(n_comp: int, in_bits: int) -> list:
    """IPU input beat: ``data`` = the group's ``n_comp`` input patterns."""
    return [("data", _pos_int(in_bits, "in_bits"), _pos_int(n_comp, "n_comp"), False)]


def ipu_out_fields(n_comp: int, in_bits: int) -> list:
    """IPU output beat: bit column ``b``, its ``n_comp`` ``bits``, ``last``."""
    return [("b", bits_for(_pos_int(in_bits, "in_bits") - 1), None, False),
            ("bits", _pos_int(n_comp, "n_comp"), None, False), ("last", 1, None, False)]


def switch_in_fields(window: int, width: int) -> list:
    """Switch input beat: ``data`` (window elements of ``width`` bits), ``mask``."""
    return [("data", _pos_int(width, "width"), _pos_int(window, "window"), False),
            ("mask", window, None, False)]


def switch_out_fields(lanes: int, width: int) -> list:
    """Switch output beat: ``data`` (lanes elements), ``lane_en`` bits, ``last``."""
    return [("data", _pos_int(width, "width"), _pos_int(lanes, "lanes"), False),
            ("lane_en", lanes, None, False), ("last", 1, None, False)]


def macro_in_fields(n_comp: int, in_bits: int) -> list:
    """Macro input beat: one cell row's ``n_comp`` input bit patterns."""
    return [("data", _pos_int(in_bits, "in_bits"), _pos_int(n_comp, "n_comp"), False)]


def macro_out_fields(n_comp: int, n_col: int, n_row: int, in_bits: int) -> list:
    """Macro output beat: filter ``slot``, its signed ``acc``, ``last`` (slot n_col-1)."""
    return [("slot", bits_for(_pos_int(n_col, "n_col") - 1), None, False),
            ("acc", acc_width(n_comp, n_col, n_row, in_bits), None, True), ("last", 1, None, False)]


def pack_ipu_in(group, in_bits: int = 8) -> int:
    """Integer of an IPU input beat carrying ``group`` (patterns in ``[0, 2**in_bits)``)."""
    g = np.asarray(group).reshape(-1)
    return pack(ipu_in_fields(g.size, in_bits), {"data": g})


def unpack_ipu_in(word: int, n_comp: int, in_bits: int = 8) -> list[int]:
    return unpack(ipu_in_fields(n_comp, in_bits), word)["data"]


def pack_ipu_out(b: int, bits: int, last: bool, n_comp: int, in_bits: int = 8) -> int:
    return pack(ipu_out_fields(n_comp, in_bits), {"b": b, "bits": bits, "last": int(last)})


def unpack_ipu_out(word: int, n_comp: int, in_bits: int = 8) -> tuple[int, int, bool]:
    """``(b, bits, last)`` of an IPU output beat, as :func:`ipu` lists them."""
    d = unpack(ipu_out_fields(n_comp, in_bits), word)
    return d["b"], d["bits"], bool(d["last"])


def pack_switch_in(data, mask, width: int = 8) -> int:
    d = np.asarray(data).reshape(-1)
    m = sum(int(v) << k for k, v in enumerate(np.asarray(mask).reshape(-1)))
    return pack(switch_in_fields(d.size, width), {"data": d, "mask": m})


def unpack_switch_in(word: int, window: int, width: int = 8) -> tuple[list[int], list[int]]:
    d = unpack(switch_in_fields(window, width), word)
    return d["data"], [(d["mask"] >> k) & 1 for k in range(window)]


def pack_switch_out(values, lane_en: int, last: bool, lanes: int, width: int = 8) -> int:
    return pack(switch_out_fields(lanes, width), {"data": values, "lane_en": lane_en, "last": int(last)})


def unpack_switch_out(word: int, lanes: int, width: int = 8) -> tuple[list[int], int, bool]:
    """``(values, lane_en, last)`` of a switch output beat, as :func:`switch` lists them."""
    d = unpack(switch_out_fields(lanes, width), word)
    return d["data"], d["lane_en"], bool(d["last"])


def pack_macro_in(row, in_bits: int = 8) -> int:
    """Integer of a macro input beat: one row's inputs (signed values become two's complement)."""
    r = as_int_array(row, "row").reshape(-1)
    check_range(r, -(1 << (in_bits - 1)), (1 << in_bits) - 1, "row")
    return pack(macro_in_fields(r.size, in_bits), {"data": r & ((1 << in_bits) - 1)})


def unpack_macro_in(word: int, n_comp: int, in_bits: int = 8) -> list[int]:
    return unpack(macro_in_fields(n_comp, in_bits), word)["data"]


def pack_macro_out(slot: int, acc: int, last: bool, n_comp: int, n_col: int, n_row: int,
                   in_bits: int = 8) -> int:
    return pack(macro_out_fields(n_comp, n_col, n_row, in_bits), {"slot": slot, "acc": acc, "last": int(last)})


def unpack_macro_out(word: int, n_comp: int, n_col: int, n_row: int, in_bits: int = 8) -> tuple[int, int, bool]:
    """``(slot, acc, last)`` of a macro output beat (``acc`` sign-extended)."""
    d = unpack(macro_out_fields(n_comp, n_col, n_row, in_bits), word)
    return d["slot"], d["acc"], bool(d["last"])

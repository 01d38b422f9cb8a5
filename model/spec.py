"""The hardware's facts, written once: number formats, geometry ranges, derived
widths, pipeline latencies and stream payload layouts (docs/design.md §1, §2, §5).

Everything that the golden model (``model/``), the RTL (``hw/``), the
testbenches (``verif/``), the front-end and the performance model
(``sim_bench/``) must agree on is defined here and read from here:

* named constants of the number formats (int8 weights, 4 dyadic blocks, the
  3-bit idx/sign metadata, 4 bits per stored digit, 8-bit activations);
* :data:`GEOMETRY`: the allowed values of every macro parameter, checked by
  :class:`model.config.MacroConfig` and by every ``hw`` component through
  :func:`check_param`;
* derived widths (:func:`col_sum_width`, :func:`slot_sum_width`,
  :func:`acc_width`, :func:`cycle_width`) that make the RTL overflow-free;
* pipeline latencies of every block (:data:`LATENCY`, :func:`pipeline_latency`);
* stream payload field lists (``*_fields``) and :func:`pack` / :func:`unpack`:
  ``hw`` builds its ``data.StructLayout`` payloads from the same lists, so the
  RTL and the testbenches cannot disagree on a bit position. Fields are packed
  LSB first in list order, exactly as ``amaranth.lib.data.StructLayout`` does;
  array fields put element 0 lowest.

Pure Python / NumPy, no torch, no Amaranth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from dbpim.model._check import as_int_array, check_range

__all__ = [
    # number formats
    "WEIGHT_BITS", "WEIGHT_MIN", "WEIGHT_MAX", "N_POS", "N_BLOCKS", "IDX_BITS", "SIGN_BITS", "META_BITS",
    "DIGIT_BITS", "TERM_MAX", "ACT_BITS", "PHI_LIMIT", "DENSE_COLS_PER_WEIGHT", "input_range", "input_bits",
    # geometry
    "Rule", "GEOMETRY", "check_param", "geometry_error",
    # widths and latencies
    "positive_int", "bits_for", "col_sum_width", "slot_sum_width", "acc_width", "cycle_width", "LATENCY", "adder_tree_latency",
    "pipeline_latency",
    # payloads
    "pack", "unpack", "field_width",
    "ipu_in_fields", "ipu_out_fields", "switch_in_fields", "switch_out_fields", "macro_in_fields",
    "macro_out_fields",
    "pack_ipu_in", "unpack_ipu_in", "pack_ipu_out", "unpack_ipu_out",
    "pack_switch_in", "unpack_switch_in", "pack_switch_out", "unpack_switch_out",
    "pack_macro_in", "unpack_macro_in", "pack_macro_out", "unpack_macro_out",
    # the PIM core
    "CORE_GEOMETRY", "CORE_LATENCY", "BUS_BITS", "CORE_ID", "RegField", "Register", "CORE_REGISTERS", "CORE_REG",
    "CORE_REGS", "core_constants", "digest_word", "ERROR_CODES", "psum_width",
    "result_width", "packer_in_fields", "packer_out_fields", "window_fields", "tile_entry_fields", "map_entry_fields", "mask_entry_fields",
    "descriptor_fields", "result_fields", "words_for", "Region", "RegisterMap", "CoreMap", "register_map", "core_map", "entry_words",
    # the input buffer and window generator
    "WINDOW_GEOMETRY", "WINDOW_ELEMENTS_MAX", "WINDOW_LATENCY", "WINDOW_LAYER", "WINDOW_PASS", "WINDOW_ENTRY",
    "register_fields",
]

# --------------------------------------------------------------------------- number formats

#: Weights are signed 8-bit integers, one scale per output channel.
WEIGHT_BITS = 8
WEIGHT_MIN, WEIGHT_MAX = -(1 << (WEIGHT_BITS - 1)), (1 << (WEIGHT_BITS - 1)) - 1
#: CSD digit positions of an int8 weight.
N_POS = WEIGHT_BITS
#: Dyadic blocks per weight: block k holds positions (2k+1, 2k); also the most non-zero CSD digits.
N_BLOCKS = N_POS // 2
#: Metadata of one stored digit: the block index and the sign.
IDX_BITS = 2
SIGN_BITS = 1
META_BITS = IDX_BITS + SIGN_BITS
#: Bits one stored digit costs: the 6T cell (its position bit) plus its metadata.
DIGIT_BITS = 1 + META_BITS
#: Largest magnitude one compartment adds to a column sum: a digit at position 7.
TERM_MAX = 1 << (N_POS - 1)
#: Activation width (the network is int8 / uint8).
ACT_BITS = 8
#: Largest FTA threshold an int8 weight can use (its most non-zero CSD digits).
PHI_LIMIT = N_BLOCKS
#: Columns one weight occupies in the dense digital PIM baseline (two's-complement bit planes).
DENSE_COLS_PER_WEIGHT = WEIGHT_BITS


def input_range(signed: bool, bits: int = ACT_BITS) -> tuple[int, int]:
    """Inclusive range of an activation: ``[0, 2**bits - 1]`` or two's complement."""
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def input_bits(x, signed: bool, name: str = "x") -> np.ndarray:
    """Validate 8-bit inputs and return their bit patterns as uint8.

    Unsigned inputs lie in [0, 255]; signed inputs in [-128, 127] (two's
    complement, the MSB weighs -2**7).
    """
    a = as_int_array(x, name)
    check_range(a, *input_range(signed), name)
    return (a.astype(np.int64) & 0xFF).astype(np.uint8)


# --------------------------------------------------------------------------- geometry

def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _pow2(v) -> bool:
    return v > 0 and (v & (v - 1)) == 0


@dataclass(frozen=True)
class Rule:
    """The allowed values of one parameter: ``check(v)`` and the words for them."""

    check: Callable
    allowed: str

    def ok(self, v) -> bool:
        if self.allowed == "true or false":
            return isinstance(v, bool)
        return _is_int(v) and bool(self.check(int(v)))


#: Every macro parameter and its allowed values (the macro section of a hardware YAML).
GEOMETRY: dict[str, Rule] = {
    "n_comp": Rule(lambda v: _pow2(v) and 2 <= v <= 256, "a power of two from 2 to 256"),
    "n_col": Rule(lambda v: v % 2 == 0 and 2 <= v <= 256, "an even integer from 2 to 256"),
    "n_row": Rule(lambda v: _pow2(v) and 1 <= v <= 1024, "a power of two from 1 to 1024"),
    "in_bits": Rule(lambda v: v == ACT_BITS, f"{ACT_BITS} (the network is int8)"),
    "phi_max": Rule(lambda v: 1 <= v <= PHI_LIMIT, f"an integer from 1 to {PHI_LIMIT}"),
    "lanes": Rule(lambda v: _pow2(v) and 1 <= v <= 256, "a power of two from 1 to 256 (at most n_comp)"),
    "pipeline": Rule(lambda v: isinstance(v, bool), "true or false"),
}


def geometry_error(params: dict) -> tuple[str, str] | None:
    """First violated rule of a (partial) set of macro parameters: ``(key, message)`` or None.

    Checks each present key against :data:`GEOMETRY`, then the rules between
    keys: ``n_col >= phi_max`` (one filter fits a column tile) and
    ``lanes <= n_comp`` (the switch fills at most one cell row per beat).
    """
    for key, v in params.items():
        rule = GEOMETRY.get(key)
        if rule is not None and not rule.ok(v):
            return key, f"must be {rule.allowed}, got {v!r}"
    if "n_col" in params and "phi_max" in params and params["n_col"] < params["phi_max"]:
        return "n_col", f"must be >= phi_max ({params['phi_max']}) so one filter fits, got {params['n_col']}"
    if "lanes" in params and "n_comp" in params and params["lanes"] > params["n_comp"]:
        return "lanes", f"must be <= n_comp ({params['n_comp']}), got {params['lanes']}"
    return None


def check_param(name: str, value, rule: str | None = None):
    """Validate one component parameter against :data:`GEOMETRY`; returns ``value``.

    ``rule`` names the :data:`GEOMETRY` entry when the parameter has another
    name in the component (the switch's ``window`` follows ``n_comp``); the
    PIM core's own parameters are found in :data:`CORE_GEOMETRY`, the SIMD core's in :data:`SIMD_GEOMETRY`,
    the window generator's in :data:`WINDOW_GEOMETRY`.
    Messages follow amaranth-soc: ``"n_comp must be a power of two from 2 to
    256, not 6"``.

    Raises
    ------
    TypeError
        A parameter of the wrong type (``"pipeline must be a bool, not 1"``).
    ValueError
        A value out of range.
    """
    key = rule or name
    r = GEOMETRY.get(key) or CORE_GEOMETRY.get(key) or SIMD_GEOMETRY.get(key) or WINDOW_GEOMETRY[key]
    if r.allowed == "true or false":
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be a bool, not {value!r}")
        return value
    if not _is_int(value):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if not r.ok(value):
        raise ValueError(f"{name} must be {r.allowed}, not {value!r}")
    return int(value)


# --------------------------------------------------------------------------- widths

def positive_int(v, name: str, lo: int = 1) -> int:
    """``v`` as an int if it is an integer >= ``lo``, else TypeError / ValueError naming ``name``."""
    if not _is_int(v):
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
    return _signed_bits(positive_int(n_comp, "n_comp") * TERM_MAX)


def slot_sum_width(n_comp: int, n_col: int) -> int:
    """Signed width of a filter slot's column-sum total.

    Bounded by every column mapping to one slot (the RTL does not trust the
    column map to respect ``phi_max``), so any loaded map is overflow-free.
    """
    return _signed_bits(positive_int(n_comp, "n_comp") * positive_int(n_col, "n_col") * TERM_MAX)


def acc_width(n_comp: int, n_col: int, n_row: int, in_bits: int) -> int:
    """Signed accumulator width that never overflows.

    ``|acc| <= n_row * (2**in_bits - 1) * n_col * n_comp * 2**7``: every row,
    every input bit (the bit weights of a signed input also sum to at most
    ``2**in_bits - 1`` in magnitude), every column into one slot.
    """
    bound = (positive_int(n_row, "n_row") * ((1 << positive_int(in_bits, "in_bits")) - 1)
             * positive_int(n_col, "n_col") * positive_int(n_comp, "n_comp") * TERM_MAX)
    return _signed_bits(bound)


def cycle_width(n_row: int, in_bits: int) -> int:
    """Unsigned width of the macro cycle counter (``n_row * in_bits`` columns plus a margin of 8)."""
    return bits_for(positive_int(n_row, "n_row") * positive_int(in_bits, "in_bits") + 8)


# --------------------------------------------------------------------------- latencies

#: Cycles from an accepted input to the block's output (DBMU: row select -> products).
LATENCY = {
    "lpu": 0,          # combinational
    "dbmu": 1,         # row select to products (synchronous read, hw.sram); a write takes effect the next cycle
    "dbmu_write": 1,
    "accumulator": 1,  # step to updated accumulator
    "ipu": 1,          # group accepted to its first column beat; no bubble between groups
    "switch": 1,       # window accepted to its first beat
}


def adder_tree_latency(pipeline: bool) -> int:
    """CSD adder tree: 1 cycle with its register stage, else combinational."""
    return int(bool(pipeline))


def pipeline_latency(pipeline: bool) -> int:
    """Fixed cycles the macro adds once per input vector to its issued bit columns.

    One for the IPU's column register, one for the accumulator update, and the
    adder tree's (:func:`adder_tree_latency`).
    """
    return LATENCY["ipu"] + LATENCY["accumulator"] + adder_tree_latency(pipeline)


# --------------------------------------------------------------------------- payload packing
# A field is (name, elem_width, count, signed): count None = scalar, else an
# array of `count` elements (element 0 lowest).

def field_width(f) -> int:
    """Bits of one field (all elements of an array field)."""
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
        off += field_width(f)
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
        off += field_width(f)
    return out


def ipu_in_fields(n_comp: int, in_bits: int) -> list:
    """IPU input beat: ``data`` = the group's ``n_comp`` input patterns."""
    return [("data", positive_int(in_bits, "in_bits"), positive_int(n_comp, "n_comp"), False)]


def ipu_out_fields(n_comp: int, in_bits: int) -> list:
    """IPU output beat: bit column ``b``, its ``n_comp`` ``bits``, ``last``."""
    return [("b", bits_for(positive_int(in_bits, "in_bits") - 1), None, False),
            ("bits", positive_int(n_comp, "n_comp"), None, False), ("last", 1, None, False)]


def switch_in_fields(window: int, width: int) -> list:
    """Switch input beat: ``data`` (window elements of ``width`` bits), ``mask``."""
    return [("data", positive_int(width, "width"), positive_int(window, "window"), False),
            ("mask", window, None, False)]


def switch_out_fields(lanes: int, width: int) -> list:
    """Switch output beat: ``data`` (lanes elements), ``lane_en`` bits, ``last``."""
    return [("data", positive_int(width, "width"), positive_int(lanes, "lanes"), False),
            ("lane_en", lanes, None, False), ("last", 1, None, False)]


def macro_in_fields(n_comp: int, in_bits: int) -> list:
    """Macro input beat: one cell row's ``n_comp`` input bit patterns."""
    return [("data", positive_int(in_bits, "in_bits"), positive_int(n_comp, "n_comp"), False)]


def macro_out_fields(n_comp: int, n_col: int, n_row: int, in_bits: int) -> list:
    """Macro output beat: filter ``slot``, its signed ``acc``, ``last`` (slot n_col-1)."""
    return [("slot", bits_for(positive_int(n_col, "n_col") - 1), None, False),
            ("acc", acc_width(n_comp, n_col, n_row, in_bits), None, True), ("last", 1, None, False)]


def pack_ipu_in(group, in_bits: int = ACT_BITS) -> int:
    """Integer of an IPU input beat carrying ``group`` (patterns in ``[0, 2**in_bits)``)."""
    g = np.asarray(group).reshape(-1)
    return pack(ipu_in_fields(g.size, in_bits), {"data": g})


def unpack_ipu_in(word: int, n_comp: int, in_bits: int = ACT_BITS) -> list[int]:
    return unpack(ipu_in_fields(n_comp, in_bits), word)["data"]


def pack_ipu_out(b: int, bits: int, last: bool, n_comp: int, in_bits: int = ACT_BITS) -> int:
    return pack(ipu_out_fields(n_comp, in_bits), {"b": b, "bits": bits, "last": int(last)})


def unpack_ipu_out(word: int, n_comp: int, in_bits: int = ACT_BITS) -> tuple[int, int, bool]:
    """``(b, bits, last)`` of an IPU output beat, as :func:`model.blocks.ipu` lists them."""
    d = unpack(ipu_out_fields(n_comp, in_bits), word)
    return d["b"], d["bits"], bool(d["last"])


def pack_switch_in(data, mask, width: int = ACT_BITS) -> int:
    d = np.asarray(data).reshape(-1)
    m = sum(int(v) << k for k, v in enumerate(np.asarray(mask).reshape(-1)))
    return pack(switch_in_fields(d.size, width), {"data": d, "mask": m})


def unpack_switch_in(word: int, window: int, width: int = ACT_BITS) -> tuple[list[int], list[int]]:
    d = unpack(switch_in_fields(window, width), word)
    return d["data"], [(d["mask"] >> k) & 1 for k in range(window)]


def pack_switch_out(values, lane_en: int, last: bool, lanes: int, width: int = ACT_BITS) -> int:
    return pack(switch_out_fields(lanes, width), {"data": values, "lane_en": lane_en, "last": int(last)})


def unpack_switch_out(word: int, lanes: int, width: int = ACT_BITS) -> tuple[list[int], int, bool]:
    """``(values, lane_en, last)`` of a switch output beat, as :func:`model.blocks.switch` lists them."""
    d = unpack(switch_out_fields(lanes, width), word)
    return d["data"], d["lane_en"], bool(d["last"])


def pack_macro_in(row, in_bits: int = ACT_BITS) -> int:
    """Integer of a macro input beat: one row's inputs (signed values become two's complement)."""
    r = as_int_array(row, "row").reshape(-1)
    check_range(r, -(1 << (in_bits - 1)), (1 << in_bits) - 1, "row")
    return pack(macro_in_fields(r.size, in_bits), {"data": r & ((1 << in_bits) - 1)})


def unpack_macro_in(word: int, n_comp: int, in_bits: int = ACT_BITS) -> list[int]:
    return unpack(macro_in_fields(n_comp, in_bits), word)["data"]


def pack_macro_out(slot: int, acc: int, last: bool, n_comp: int, n_col: int, n_row: int,
                   in_bits: int = ACT_BITS) -> int:
    return pack(macro_out_fields(n_comp, n_col, n_row, in_bits), {"slot": slot, "acc": acc, "last": int(last)})


def unpack_macro_out(word: int, n_comp: int, n_col: int, n_row: int,
                     in_bits: int = ACT_BITS) -> tuple[int, int, bool]:
    """``(slot, acc, last)`` of a macro output beat (``acc`` sign-extended)."""
    d = unpack(macro_out_fields(n_comp, n_col, n_row, in_bits), word)
    return d["slot"], d["acc"], bool(d["last"])


# --------------------------------------------------------------------------- the PIM core (docs/design.md §11)

#: Parameters of one PIM core beyond its macros' geometry, and their allowed values
#: (the ``core`` section of a hardware YAML; ``macros`` is ``system.macros_per_core``).
CORE_GEOMETRY: dict[str, Rule] = {
    "macros": Rule(lambda v: 1 <= v <= 16, "an integer from 1 to 16 (macros per core)"),
    "tile_slots": Rule(lambda v: 1 <= v <= 4096, "an integer from 1 to 4096 (tiles the core's tile store holds)"),
    "descriptors": Rule(lambda v: 1 <= v <= 65535, "an integer from 1 to 65535 (row-tile passes per start)"),
    "mask_windows": Rule(lambda v: 1 <= v <= 65536, "an integer from 1 to 65536 (mask register file words)"),
    "out_pixels": Rule(lambda v: 1 <= v <= 65536, "an integer from 1 to 65536 (output pixels per pass)"),
    "max_row_tiles": Rule(lambda v: 1 <= v <= 4096,
                          "an integer from 1 to 4096 (row tiles one output accumulates)"),
    "tile_banks": Rule(lambda v: v in (1, 2), "1 or 2 (tile banks per macro: 2 loads the next pass's tile "
                                              "while the current one computes)"),
    "out_banks": Rule(lambda v: v in (1, 2), "1 or 2 (output register file banks: 2 streams a pass's results "
                                             "while the next passes compute)"),
    "in_windows": Rule(lambda v: 1 <= v <= 16, "an integer from 1 to 16 dividing system.macros_per_core (input "
                                               "windows per input stream beat: that many switches and row packers "
                                               "deliver that many macros' vectors at once)"),
    "result_lanes": Rule(lambda v: 1 <= v <= 16, "an integer from 1 to 16 dividing system.macros_per_core (results "
                                                 "per result stream beat: one pixel of each of that many macros)"),
    "addr_width": Rule(lambda v: 3 <= v <= 32, "an integer from 3 to 32 (AXI4-Lite byte address bits)"),
}

#: Fixed cycles of the core's controller (docs/design.md §11; the whole run: model.core_timing.pass_cycles).
CORE_LATENCY = {
    "start": 1,       # START written -> first descriptor read
    "pass": 3,        # per pass: descriptor read, decode, the last round's start cycle
    "deliver": 1,     # last row written -> the macros see their full buffers
    "barrier": 1,     # a round's start -> the next round's first window
    "run": 1,         # per START: the final descriptor check
    "prefetch": 2,    # tile_banks 2: a round start -> the next pass's first tile row written (descriptor, row read)
}

#: Word width of the core's AXI4-Lite register bus.
BUS_BITS = 32
#: Identification word of the core (register ``ID``): "DB", format 1.
CORE_ID = 0xDB1C_0001


def psum_width(n_comp: int, n_col: int, n_row: int, in_bits: int, max_row_tiles: int) -> int:
    """Signed width of an output register file partial sum: never overflows.

    One pass adds one macro accumulator (bounded as in :func:`acc_width`,
    any column map); an output accumulates at most ``max_row_tiles`` passes
    (the core refuses more, STATUS.ERROR).
    """
    bound = (positive_int(max_row_tiles, "max_row_tiles") * positive_int(n_row, "n_row")
             * ((1 << positive_int(in_bits, "in_bits")) - 1) * positive_int(n_col, "n_col")
             * positive_int(n_comp, "n_comp") * TERM_MAX)
    return _signed_bits(bound)


def result_width(psum_bits: int) -> int:
    """Bits of a result beat (``m_axis_tdata``): the partial sum sign-extended to 32 or 64 bits."""
    if not 1 <= psum_bits <= 64:
        raise ValueError(f"psum_bits: must be 1..64, got {psum_bits}")
    return 32 if psum_bits <= 32 else 64


def packer_in_fields(lanes: int, width: int) -> list:
    """Row packer input beat: a switch output beat (:func:`switch_out_fields`) and ``vend``, its vector's last."""
    return switch_out_fields(lanes, width) + [("vend", 1, None, False)]


def packer_out_fields(n_comp: int, width: int) -> list:
    """Row packer output beat: one cell row's ``n_comp`` inputs and ``vend``, its vector's last row."""
    return [("data", positive_int(width, "width"), positive_int(n_comp, "n_comp"), False), ("vend", 1, None, False)]


def window_fields(n_comp: int, in_bits: int, windows: int = 1) -> list:
    """Input beat (``s_axis_tdata``): ``windows`` (``core.in_windows``) windows of ``n_comp`` consecutive
    im2col inputs, element 0 lowest; element ``s * n_comp + c`` is input c of window s (docs/design.md §11)."""
    return [("data", positive_int(in_bits, "in_bits"),
             positive_int(n_comp, "n_comp") * positive_int(windows, "windows"), False)]


def tile_entry_fields(n_comp: int, n_col: int) -> list:
    """One tile store entry: a whole cell row, as the macro's write port takes it (docs/design.md §5).

    Element ``c * n_col + j`` of ``cells`` / ``idx`` / ``sign`` is compartment
    c, column j (Q, block index, sign).
    """
    n = positive_int(n_comp, "n_comp") * positive_int(n_col, "n_col")
    return [("cells", 1, n, False), ("idx", IDX_BITS, n, False), ("sign", SIGN_BITS, n, False)]


def map_entry_fields(n_col: int) -> list:
    """One column map entry (a tile's ``col_filter``): slot of each column, then its used bit."""
    n = positive_int(n_col, "n_col")
    return [("slot", bits_for(n - 1), n, False), ("used", 1, n, False)]


def mask_entry_fields(n_comp: int) -> list:
    """One mask register: bit c = input c of the window is a kept row of the pass's row tile."""
    return [("mask", positive_int(n_comp, "n_comp"), None, False)]


def descriptor_fields(n_comp: int, n_col: int, n_row: int, tile_slots: int, mask_windows: int,
                      out_pixels: int) -> list:
    """One descriptor = one pass: a row tile of a filter tile over a run of output pixels.

    ``tile`` (tile store slot), ``mask_base`` / ``n_win`` (its windows' masks),
    ``n_kept`` (kept rows of the row tile = set mask bits), ``pixels``,
    ``n_out`` (result slots streamed when ``last``), ``first`` (overwrite the
    partial sums instead of adding) and ``last`` (stream the results out).
    """
    cap = positive_int(n_comp, "n_comp") * positive_int(n_row, "n_row")
    return [("tile", bits_for(tile_slots - 1), None, False), ("mask_base", bits_for(mask_windows - 1), None, False),
            ("n_win", bits_for(mask_windows), None, False), ("n_kept", bits_for(cap), None, False),
            ("pixels", bits_for(out_pixels), None, False), ("n_out", bits_for(positive_int(n_col, "n_col")), None,
                                                            False),
            ("first", 1, None, False), ("last", 1, None, False)]


def result_fields(psum_bits: int, lanes: int = 1) -> list:
    """Result beat (``m_axis_tdata``): ``lanes`` (``core.result_lanes``) signed partial sums, each sign-extended
    to :func:`result_width`, lane 0 lowest (one lane: a plain field, as before lanes existed)."""
    return [("psum", result_width(psum_bits), None if positive_int(lanes, "lanes") == 1 else lanes, True)]


def words_for(bits: int) -> int:
    """32-bit bus words holding ``bits`` bits."""
    return -(-int(bits) // BUS_BITS)


def _pow2_at_least(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


@dataclass(frozen=True)
class RegField:
    """One field of a core register (like an amaranth-soc ``csr`` field): bits ``lsb .. lsb + width - 1``.

    ``access`` is the software view: ``"R"`` (read-only, set by the hardware or a
    constant of the design point), ``"W"`` (write-only, reads 0) or ``"RW"``.
    ``reset`` is the value after reset; ``None`` for a design-point constant
    (:func:`core_constants` gives it).
    """

    name: str
    lsb: int
    width: int
    access: str
    desc: str
    reset: int | None = 0

    @property
    def msb(self) -> int:
        return self.lsb + self.width - 1

    @property
    def mask(self) -> int:
        """The field's bits in the register word."""
        return ((1 << self.width) - 1) << self.lsb

    def get(self, word: int) -> int:
        """The field's value in a register word."""
        return (int(word) >> self.lsb) & ((1 << self.width) - 1)

    def put(self, value: int) -> int:
        """The field's value placed in a register word (ValueError when it does not fit)."""
        v = int(value)
        if not 0 <= v < 1 << self.width:
            raise ValueError(f"{self.name}: {v} does not fit unsigned({self.width})")
        return v << self.lsb


@dataclass(frozen=True)
class Register:
    """One 32-bit core register: bus word ``word`` (byte address ``4 * word``), its fields LSB first."""

    name: str
    word: int
    desc: str
    fields: tuple

    @property
    def access(self) -> str:
        """``R``, ``W`` or ``RW``: the union of its fields' access."""
        acc = {a for f in self.fields for a in f.access}
        return "".join(a for a in "RW" if a in acc)

    @property
    def address(self) -> int:
        return (BUS_BITS // 8) * self.word

    def field(self, name: str) -> RegField:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name}: no field {name!r}; fields: {', '.join(f.name for f in self.fields)}")

    def value(self, **fields) -> int:
        """A register word from field values (missing fields 0)."""
        word = 0
        for name, v in fields.items():
            word |= self.field(name).put(v)
        return word

    def decode(self, word: int) -> dict:
        """Field name -> value of a register word."""
        return {f.name: f.get(word) for f in self.fields}

    @property
    def meaning(self) -> str:
        """One line: the description, then each field's bits and name (a whole-word ``VALUE`` is not listed)."""
        if len(self.fields) == 1 and self.fields[0].name == "VALUE":
            return self.desc
        return self.desc + ": " + ", ".join((f"bits {f.msb}:{f.lsb}" if f.width > 1 else f"bit {f.lsb}")
                                            + f" {f.name}" for f in self.fields)


def _const(name: str, word: int, desc: str) -> Register:
    return Register(name, word, desc, (RegField("VALUE", 0, BUS_BITS, "R", desc, None),))


#: The core's control and status registers, in address order: the ONE description the RTL's register bank
#: (:class:`hw.core.PIMCore`), the golden twin (:func:`model.core.bus_writes`), the drivers and the generated
#: SystemRDL / C header / IP-XACT / Markdown (:mod:`hw.regs`) read.
CORE_REGISTERS: tuple = (
    Register("CTRL", 0, "control", (
        RegField("START", 0, 1, "W", "run descriptors 0..N_DESC-1 (ignored while BUSY)"),)),
    Register("STATUS", 1, "status of the last run", (
        RegField("BUSY", 0, 1, "R", "a run is in progress"),
        RegField("DONE", 1, 1, "R", "the last run finished (cleared by START; drives irq)"),
        RegField("ERROR", 2, 1, "R", "the last run aborted"),
        RegField("ERROR_CODE", 4, 4, "R", "1 descriptor out of range (or a descriptor, tile or column map word with "
                                          "a padding bit set, or N_DESC past the core's descriptors), 2 more than MAX_ROW_TILES accumulated (or no first "
                                          "pass), 3 masks disagree with n_kept (or a mask word with a padding bit "
                                          "set)"))),
    Register("LAYER", 2, "the layer a START runs (survives reset)", (
        RegField("N_DESC", 0, 16, "RW", "descriptors per start"),
        RegField("SIGNED", 16, 1, "RW", "two's-complement inputs"))),
    Register("CYCLES", 3, "clock cycles of the last run, START to DONE", (
        RegField("VALUE", 0, BUS_BITS, "R", "clock cycles of the last run"),)),
    _const("ID", 4, "identification: 0x{:08X} (\"DB\", format 1)".format(CORE_ID)),
    _const("N_COMP", 5, "compartments per macro"),
    _const("N_COL", 6, "columns per compartment"),
    _const("N_ROW", 7, "cells per DBMU"),
    _const("LANES", 8, "sparse allocation switch lanes"),
    _const("MACROS", 9, "macros in the core"),
    _const("TILE_SLOTS", 10, "tile store slots"),
    _const("DESCRIPTORS", 11, "descriptor memory entries"),
    _const("MASK_WINDOWS", 12, "mask register file entries"),
    _const("OUT_PIXELS", 13, "output pixels per pass"),
    _const("MAX_ROW_TILES", 14, "row tiles one output may accumulate"),
    _const("PSUM_BITS", 15, "partial sum width (result beats are sign-extended)"),
    _const("DIGEST", 16, "first 32 bits of the configuration's digest (HwConfig.digest(), SHA-256 of its canonical "
                         "JSON): firmware checks it talks to the block it was built for; 0 when built without one"),
)
#: Register name -> :class:`Register`.
CORE_REG = {r.name: r for r in CORE_REGISTERS}
#: The core's registers: name -> (word index, access, meaning), derived from :data:`CORE_REGISTERS`.
CORE_REGS = {r.name: (r.word, r.access, r.meaning) for r in CORE_REGISTERS}


def digest_word(digest: str) -> int:
    """The ``DIGEST`` register of a configuration: the first 32 bits (8 hex digits) of its SHA-256 hex digest."""
    if not isinstance(digest, str) or len(digest) < 8:
        raise ValueError(f"digest: must be a hex string of at least 8 digits, got {digest!r}")
    try:
        return int(digest[:8], 16)
    except ValueError:
        raise ValueError(f"digest: must be a hex string, got {digest!r}") from None


def core_constants(*, n_comp: int, n_col: int, n_row: int, lanes: int, macros: int, tile_slots: int,
                   descriptors: int, mask_windows: int, out_pixels: int, max_row_tiles: int, psum_bits: int,
                   digest: int = 0) -> dict:
    """The values of the core's constant registers (``ID``, the geometry, ``DIGEST``): register name -> word."""
    return {"ID": CORE_ID, "N_COMP": n_comp, "N_COL": n_col, "N_ROW": n_row, "LANES": lanes, "MACROS": macros,
            "TILE_SLOTS": tile_slots, "DESCRIPTORS": descriptors, "MASK_WINDOWS": mask_windows,
            "OUT_PIXELS": out_pixels, "MAX_ROW_TILES": max_row_tiles, "PSUM_BITS": psum_bits, "DIGEST": digest}


#: STATUS.ERROR_CODE values.
ERROR_CODES = {
    0: "none",
    1: "descriptor field out of range (tile, mask_base + n_win, n_kept, pixels, n_out), a descriptor, tile or "
       "column map word with a padding bit set, or LAYER.N_DESC past core.descriptors (the START stops at once)",
    2: "more than max_row_tiles passes accumulated into one output (first missing)",
    3: "the masks of a vector do not hold n_kept kept rows, its last window's mask is empty, or a mask word has a "
       "padding bit set",
}


@dataclass(frozen=True)
class Region:
    """One memory behind the register bus: ``entries`` entries of ``words`` bus words each.

    Entry e, word w is at byte address ``base + 4 * (e * stride + w)``
    (``stride`` = ``words`` rounded up to a power of two; padding words are
    ignored). ``access`` is the software view: ``"W"`` (write-only, the core's
    memories) or ``"RW"`` (the chip's buffers); ``desc`` what software must know beyond the fields.
    """

    name: str
    base: int
    entries: int
    words: int
    stride: int
    fields: tuple
    access: str = "W"
    desc: str = ""

    @property
    def size(self) -> int:
        """Bytes of address space."""
        return _pow2_at_least(self.entries * self.stride) * (BUS_BITS // 8)

    def address(self, entry: int, word: int = 0) -> int:
        return self.base + (BUS_BITS // 8) * (int(entry) * self.stride + int(word))


@dataclass(frozen=True)
class RegisterMap:
    """An AXI4-Lite address map (byte addresses, 32-bit words): registers at 0, then memory regions.

    The core's (:func:`core_map`) and the chip's (:func:`model.isa.chip_map`); :mod:`hw.regs` renders either as
    SystemRDL, the RTL decodes it, the drivers (:mod:`model.driver`) address it.

    Attributes
    ----------
    regs : dict
        Register name -> byte address.
    regions : dict
        Region name -> :class:`Region`, in address order.
    addr_width : int
        Bits of ``s_axil_awaddr`` / ``s_axil_araddr``.
    registers : tuple
        The :class:`Register` s (:data:`CORE_REGISTERS` or :data:`model.isa.CHIP_REGISTERS`).
    origin : str
        Where the map is written (the generated files' first line names it).
    """

    regs: dict
    regions: dict
    addr_width: int
    registers: tuple = CORE_REGISTERS
    origin: str = "model.spec.CORE_REGISTERS and model.spec.core_map"

    @property
    def reg_bytes(self) -> int:
        """Bytes of the register block at address 0 (a power of two)."""
        return _reg_bytes(self.registers)

    def markdown(self) -> str:
        """The register map as Markdown tables (docs/rtl.md holds the paper configuration's)."""
        lines = ["| address | register | access | meaning |", "|---|---|---|---|"]
        lines += [f"| 0x{self.regs[r.name]:04X} | {r.name} | {r.access} | {r.meaning} |" for r in self.registers]
        lines += ["", "| register | bits | field | access | reset | meaning |", "|---|---|---|---|---|---|"]
        lines += [f"| {r.name} | {f.msb}:{f.lsb} | {f.name} | {f.access} | "
                  f"{'constant' if f.reset is None else f'0x{f.reset:X}'} | {f.desc} |"
                  for r in self.registers for f in r.fields if not (f.name == "VALUE" and f.reset is None)]
        lines += ["", "| address | memory | entries | words / entry (stride) | entry fields, LSB first |",
                  "|---|---|---|---|---|"]
        for r in self.regions.values():
            fl = ", ".join(f"{n}: {w}" + (f" x {c}" if c is not None else "") + (" signed" if sg else "")
                           for n, w, c, sg in r.fields)
            lines.append(f"| 0x{r.base:04X} | {r.name.upper()} | {r.entries} | {r.words} ({r.stride}) | {fl} |")
        return "\n".join(lines) + "\n"

    def describe(self) -> list[dict]:
        """Rows for the manifest and the documentation."""
        rows = [{"name": r.name, "address": self.regs[r.name], "access": r.access, "meaning": r.meaning,
                 "fields": [{"name": f.name, "lsb": f.lsb, "width": f.width, "access": f.access, "reset": f.reset,
                             "meaning": f.desc} for f in r.fields]} for r in self.registers]
        for r in self.regions.values():
            rows.append({"name": r.name.upper(), "address": r.base, "access": r.access, "entries": r.entries,
                         "words_per_entry": r.words, "entry_stride_words": r.stride, "bytes": r.size,
                         "fields": [list(f) for f in r.fields]} | ({"meaning": r.desc} if r.desc else {}))
        return rows


#: the core's map (the name the core's code and docs use)
CoreMap = RegisterMap


def _reg_bytes(registers) -> int:
    return _pow2_at_least(max(r.word for r in registers) + 1) * (BUS_BITS // 8)


def register_map(registers: tuple, specs, *, access: str = "W", origin: str) -> RegisterMap:
    """Lay out an address map: ``registers`` at 0, then one region per ``(name, entries, fields)`` or
    ``(name, entries, fields, desc)`` of ``specs``, in that order.

    Each region starts at a multiple of its own (power-of-two) size, so a
    region is decoded from the high address bits alone.
    """
    regions, top = {}, _reg_bytes(registers)
    for name, entries, fields, *desc in specs:
        words = words_for(sum(field_width(f) for f in fields))
        probe = Region(name, 0, entries, words, _pow2_at_least(words), tuple(fields), access, *desc)
        base = -(-top // probe.size) * probe.size
        regions[name] = Region(name, base, entries, words, probe.stride, tuple(fields), access, *desc)
        top = base + probe.size
    return RegisterMap(regs={r.name: r.address for r in registers}, regions=regions,
                       addr_width=max(1, (top - 1).bit_length()), registers=tuple(registers), origin=origin)


def core_map(n_comp: int, n_col: int, n_row: int, tile_slots: int, descriptors: int, mask_windows: int,
             out_pixels: int) -> RegisterMap:
    """The register map of a core: :data:`CORE_REGISTERS` at 0, then the descriptor, mask, map and tile memories
    (:func:`register_map`)."""
    return register_map(CORE_REGISTERS, [
        ("desc", descriptors, descriptor_fields(n_comp, n_col, n_row, tile_slots, mask_windows, out_pixels)),
        ("mask", mask_windows, mask_entry_fields(n_comp)),
        ("map", tile_slots, map_entry_fields(n_col)),
        ("tile", tile_slots * n_row, tile_entry_fields(n_comp, n_col)),
    ], origin="model.spec.CORE_REGISTERS and model.spec.core_map")


def entry_words(fields, values: dict) -> list[int]:
    """An entry packed (:func:`pack`) and split into 32-bit bus words, lowest first."""
    word = pack(fields, values)
    n = words_for(sum(field_width(f) for f in fields))
    return [(word >> (BUS_BITS * k)) & ((1 << BUS_BITS) - 1) for k in range(n)]


# --------------------------------------------------------------------------- the input buffer and window generator

#: Parameters of the input buffer and window generator (``hw.window.WindowGenerator``) and their allowed values.
#: ``buffer_words`` follows ``system.input_buffer_kib`` (words of ``n_comp`` inputs); ``windows`` (window table
#: entries) follows ``core.mask_windows``: entry k describes the window of mask word k.
WINDOW_GEOMETRY: dict[str, Rule] = {
    "buffer_words": Rule(lambda v: 1 <= v <= 1 << 20, "an integer from 1 to 2**20 (input buffer words of n_comp "
                                                       "inputs)"),
    "windows": Rule(lambda v: 1 <= v <= 65536, "an integer from 1 to 65536 (window table entries)"),
}
#: Largest input buffer the window generator addresses: 2**24 inputs (the ``BASE`` field).
WINDOW_ELEMENTS_MAX = 1 << 24

#: Fixed cycles of the window generator (docs/design.md §16; :func:`model.window.generator_cycles`).
WINDOW_LATENCY = {
    "start": 2,  # the first pass descriptor taken (generator idle) -> its first beat valid: the window table
                 # entry read (1), the beat's inputs read from the input buffer (1)
}


def _reg(name: str, word: int, desc: str, *fields) -> Register:
    return Register(name, word, desc, tuple(RegField(n, lsb, w, "RW", d) for n, lsb, w, d in fields))


#: The layer descriptor of the window generator: four 32-bit words, held static while it runs. The ONE description
#: the RTL's ``layer`` port (:class:`hw.window.WindowGenerator`) and its twin (:func:`model.window.layer_words`)
#: read. A chip top maps them to registers.
WINDOW_LAYER: tuple = (
    _reg("WIN_BASE", 0, "where the activation map starts in the input buffer",
         ("BASE", 0, 24, "input (element) address of value (c, h, w) = (0, 0, 0); value (c, h, w) is at "
                         "BASE + (c * HEIGHT + h) * WIDTH + w")),
    _reg("WIN_SHAPE", 1, "the activation map's size",
         ("HEIGHT", 0, 16, "rows H of each channel"), ("WIDTH", 16, 16, "columns W of each channel")),
    _reg("WIN_KERNEL", 2, "the convolution's kernel, stride, zero padding and dilation (height, width)",
         ("KH", 0, 4, "kernel rows"), ("KW", 4, 4, "kernel columns"),
         ("SH", 8, 4, "vertical stride"), ("SW", 12, 4, "horizontal stride"),
         ("PH", 16, 4, "zero rows above and below"), ("PW", 20, 4, "zero columns left and right"),
         ("DH", 24, 4, "vertical dilation"), ("DW", 28, 4, "horizontal dilation")),
    _reg("WIN_OUT", 3, "the output map's width",
         ("OUT_W", 0, 16, "output columns Wo = (W + 2 PW - DW (KW - 1) - 1) // SW + 1")),
)

#: One pass descriptor of the window generator (one beat of its ``d`` stream): four 32-bit words.
WINDOW_PASS: tuple = (
    _reg("PASS_FIRST", 0, "the pass's first output pixel",
         ("HO", 0, 16, "its output row"), ("WO", 16, 16, "its output column")),
    _reg("PASS_PIXELS", 1, "output pixels of the pass",
         ("PIXELS", 0, 17, "output pixels, row-major from (HO, WO); 0: no beat")),
    _reg("PASS_WIN_BASE", 2, "the pass's window table entries",
         ("WIN_BASE", 0, 16, "first window table entry (the core descriptor's mask_base)")),
    _reg("PASS_N_WIN", 3, "the pass's window count",
         ("N_WIN", 0, 17, "window table entries WIN_BASE .. WIN_BASE + N_WIN - 1 (the core descriptor's n_win); "
                          "0: no beat")),
)

#: One window table entry: the im2col row k = w * n_comp of window w as (channel, kernel row, kernel column), and
#: how many of its n_comp inputs lie past K (zero).
WINDOW_ENTRY: tuple = (
    _reg("WIN_ENTRY", 0, "one window of the im2col vector",
         ("CHANNEL", 0, 16, "channel c of the window's input 0"), ("KI", 16, 4, "its kernel row i"),
         ("KJ", 20, 4, "its kernel column j"), ("N_PAD", 24, 8, "inputs at the window's end past K (zero)")),
)


def register_fields(registers) -> list:
    """A payload field list (:func:`pack`, ``hw.common.layout_from_fields``) of consecutive 32-bit registers.

    Each register's fields at ``32 * word + lsb``; the gaps are fields named ``_pad<bit>``. Field names are
    the register field names in lower case (unique over ``registers``).
    """
    out, at = [], 0
    for r in sorted(registers, key=lambda r: r.word):
        for f in sorted(r.fields, key=lambda f: f.lsb):
            pos = BUS_BITS * r.word + f.lsb
            if pos > at:
                out.append((f"_pad{at}", pos - at, None, False))
            out.append((f.name.lower(), f.width, None, False))
            at = pos + f.width
    end = BUS_BITS * (max(r.word for r in registers) + 1)
    if end > at:
        out.append((f"_pad{at}", end - at, None, False))
    return out


# --------------------------------------------------------------------------- the SIMD core (docs/design.md §14)

__all__ += ["SIMD_GEOMETRY", "SIMD_OPCODES", "SIMD_OPERAND_BITS", "SIMD_MULT_BITS", "SIMD_SHIFT_BITS",
            "SIMD_WINDOW_BITS", "SIMD_PIXEL_BITS", "SIMD_LATENCY", "SIMD_DWC_X_BITS", "SIMD_DWC_W_BITS",
            "simd_descriptor_fields", "simd_in_fields",
            "simd_out_fields", "simd_const_fields"]

#: Parameters of the SIMD core (``lanes`` is ``system.simd_lanes``; ``channels`` the constant memory's reach).
SIMD_GEOMETRY: dict[str, Rule] = {
    "simd_lanes": Rule(lambda v: 1 <= v <= 64, "an integer from 1 to 64 (SIMD lanes the RTL builds)"),
    "simd_channels": Rule(lambda v: 1 <= v <= 65535, "an integer from 1 to 65535 (channels the constant memory "
                                                      "holds)"),
}
#: Descriptor ``op`` codes: the integer op each runs (model.simd_ops) on the stream.
SIMD_OPCODES = {"requant": 0, "clamp": 1, "add": 2, "maxpool": 3, "avgpool": 4, "dwconv": 5}
#: Width of one stream operand lane (signed): accumulators and activations, ``|v| < 2**31`` (model.requant).
SIMD_OPERAND_BITS = 32
#: Width of a fixed-point multiplier ``m`` (unsigned) and of a right shift ``s`` (unsigned, ``s <= 62``).
SIMD_MULT_BITS = 31
SIMD_SHIFT_BITS = 6
#: Width of the descriptor's ``window`` (elements per pooling window) and ``pixels`` (output pixels) fields.
SIMD_WINDOW_BITS = 16
SIMD_PIXEL_BITS = 24
#: Operand widths of ``dwconv``'s products ``a * b`` (signed): an activation (ACT's elements) times an int8
#: weight; the core multiplies the low bits of ``a`` and ``b`` (exact for operands inside these widths).
SIMD_DWC_X_BITS = 16
SIMD_DWC_W_BITS = 8
#: Register stages from an accepted input beat to its output beat (capture, reduce, multiply, shift, saturate).
SIMD_LATENCY = 5


def simd_descriptor_fields(channels: int) -> list:
    """One SIMD descriptor (``d`` stream): an op over ``pixels`` output pixels of ``channels`` channels.

    ``op`` (:data:`SIMD_OPCODES`), ``channels`` (1..the core's ``channels``),
    ``window`` (input beats per output beat of a channel group: 1 for the
    elementwise ops, ``KH * KW`` for pooling and ``dwconv``, ``H * W`` for global pooling),
    ``pixels`` (output pixels), ``lo`` / ``hi`` (the saturation range).
    """
    return [("op", 3, None, False), ("channels", bits_for(positive_int(channels, "channels")), None, False),
            ("window", SIMD_WINDOW_BITS, None, False), ("pixels", SIMD_PIXEL_BITS, None, False),
            ("lo", SIMD_OPERAND_BITS, None, True), ("hi", SIMD_OPERAND_BITS, None, True)]


def simd_in_fields(lanes: int) -> list:
    """SIMD input beat (``i`` stream): ``a`` and ``b`` (``b``: the add's second operand, ``dwconv``'s weight),
    ``pad`` (a padding position of a window: it never wins a max and adds 0 to a sum)."""
    n = positive_int(lanes, "lanes")
    return [("a", SIMD_OPERAND_BITS, n, True), ("b", SIMD_OPERAND_BITS, n, True), ("pad", 1, None, False)]


def simd_out_fields(lanes: int) -> list:
    """SIMD output beat (``o`` stream): ``data`` (0 in lanes past the channel count), ``last`` (the op's last)."""
    return [("data", SIMD_OPERAND_BITS, positive_int(lanes, "lanes"), True), ("last", 1, None, False)]


def simd_const_fields() -> list:
    """One channel's constants in the SIMD core's constant memory: ``m``, ``s`` (of ``a``), ``bias`` (requant, dwconv),
    ``mb``, ``sb`` (of the add's ``b``)."""
    return [("m", SIMD_MULT_BITS, None, False), ("s", SIMD_SHIFT_BITS, None, False),
            ("bias", SIMD_OPERAND_BITS, None, True), ("mb", SIMD_MULT_BITS, None, False),
            ("sb", SIMD_SHIFT_BITS, None, False)]

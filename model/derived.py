"""The parameters derived from a design point, computed once (docs/design.md §5, §11).

The formulas live in :mod:`model.spec` (one home for each); this module
evaluates them once per design point and hands the results to every reader,
like coreblocks' ``GenParams``: the RTL (:class:`hw.core.PimCore`), the golden
model (:class:`model.core.CoreParams`) and the performance model
(:mod:`sim_bench.perf`) read the same :class:`Derived` instead of each calling
``core_map(...)`` / ``psum_width(...)`` / ``acc_width(...)`` with its own
argument list.

    d = Derived.of(load_config("paper"))
    d.psum_bits, d.acc_bytes, d.map.addr_width

Pure Python, no NumPy arrays, no Amaranth.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from dbpim.model.spec import (BUS_BITS, CoreMap, acc_width, bits_for, col_sum_width, core_map, cycle_width,
                        psum_width, result_width, slot_sum_width)

__all__ = ["Derived"]

#: Byte-address bits within one bus word (2 for 32-bit words).
_BYTE_BITS = (BUS_BITS // 8).bit_length() - 1


@dataclass(frozen=True)
class Derived:
    """Widths, counts and the register map of one macro + core geometry.

    Attributes
    ----------
    n_comp, n_col, n_row, in_bits, tile_slots, descriptors, mask_windows, out_pixels, max_row_tiles : int
        The parameters it was derived from.
    col_sum_bits : int
        Signed width of one CSD adder-tree output (:func:`model.spec.col_sum_width`).
    slot_sum_bits : int
        Signed width of a filter slot's column-sum total (:func:`model.spec.slot_sum_width`).
    acc_bits : int
        Signed width of a macro accumulator (:func:`model.spec.acc_width`).
    acc_bytes : int
        Bytes one accumulator word takes in the output buffer (``ceil(acc_bits / 8)``).
    cycle_bits : int
        Width of the macro's cycle counter (:func:`model.spec.cycle_width`).
    slot_bits : int
        Bits of a filter slot index (``0 .. n_col - 1``).
    psum_bits : int
        Signed width of an output register file partial sum (:func:`model.spec.psum_width`).
    result_bits : int
        Width of a result beat (:func:`model.spec.result_width`).
    map : CoreMap
        The core's AXI4-Lite register map (:func:`model.spec.core_map`).
    addr_bits : int
        Byte address bits of the register bus (``map.addr_width``).
    word_addr_bits : int
        Bus word address bits (``addr_bits - 2`` for 32-bit words).
    """

    n_comp: int
    n_col: int
    n_row: int
    in_bits: int
    tile_slots: int
    descriptors: int
    mask_windows: int
    out_pixels: int
    max_row_tiles: int
    col_sum_bits: int
    slot_sum_bits: int
    acc_bits: int
    acc_bytes: int
    cycle_bits: int
    slot_bits: int
    psum_bits: int
    result_bits: int
    map: CoreMap
    addr_bits: int
    word_addr_bits: int

    @classmethod
    def of(cls, hw) -> "Derived":
        """The derived parameters of an :class:`model.config.HwConfig` (its macro and core sections)."""
        m, c = hw.macro, hw.core
        return cls.compute(n_comp=m.n_comp, n_col=m.n_col, n_row=m.n_row, in_bits=m.in_bits,
                           tile_slots=c.tile_slots, descriptors=c.descriptors, mask_windows=c.mask_windows,
                           out_pixels=c.out_pixels, max_row_tiles=c.max_row_tiles)

    @classmethod
    def compute(cls, *, n_comp: int, n_col: int, n_row: int, in_bits: int, tile_slots: int, descriptors: int,
                mask_windows: int, out_pixels: int, max_row_tiles: int) -> "Derived":
        """The derived parameters of explicit geometry values (the RTL's keyword parameters); cached."""
        return _compute(int(n_comp), int(n_col), int(n_row), int(in_bits), int(tile_slots), int(descriptors),
                        int(mask_windows), int(out_pixels), int(max_row_tiles))


@functools.lru_cache(maxsize=64)
def _compute(n_comp, n_col, n_row, in_bits, tile_slots, descriptors, mask_windows, out_pixels,
             max_row_tiles) -> Derived:
    acc = acc_width(n_comp, n_col, n_row, in_bits)
    psum = psum_width(n_comp, n_col, n_row, in_bits, max_row_tiles)
    cmap = core_map(n_comp, n_col, n_row, tile_slots, descriptors, mask_windows, out_pixels)
    return Derived(n_comp=n_comp, n_col=n_col, n_row=n_row, in_bits=in_bits, tile_slots=tile_slots,
                   descriptors=descriptors, mask_windows=mask_windows, out_pixels=out_pixels,
                   max_row_tiles=max_row_tiles, col_sum_bits=col_sum_width(n_comp),
                   slot_sum_bits=slot_sum_width(n_comp, n_col), acc_bits=acc, acc_bytes=-(-acc // 8),
                   cycle_bits=cycle_width(n_row, in_bits), slot_bits=bits_for(n_col - 1),
                   psum_bits=psum, result_bits=result_width(psum), map=cmap,
                   addr_bits=cmap.addr_width, word_addr_bits=cmap.addr_width - _BYTE_BITS)

"""Backend-neutral stimulus for the PIM macro: port writes that load a Tile, and input beats.

Both the Amaranth-simulator tests (``tests/test_hw_macro.py``) and the cocotb
regression (``verif/test_macro.py``) drive the macro from these lists, so the
loading protocol is written once.
"""

from __future__ import annotations

import numpy as np

from model import spec
from model.spec import input_bits

__all__ = ["tile_writes", "map_writes", "config_write", "input_beats", "acc_from_beats"]


def tile_writes(tile) -> list[dict]:
    """``w_*`` port values, one dict per (cell row, compartment)."""
    n_row, n_comp, n_col = tile.cells.shape
    out = []
    for r in range(n_row):
        for c in range(n_comp):
            out.append({
                "w_row": r, "w_comp": c,
                "w_cells": sum(int(tile.cells[r, c, j]) << j for j in range(n_col)),
                "w_idx": sum(int(tile.idx[r, c, j]) << (2 * j) for j in range(n_col)),
                "w_sign": sum(int(tile.sign[r, c, j]) << j for j in range(n_col)),
            })
    return out


def map_writes(tile) -> list[dict]:
    """``m_*`` port values, one dict per column (``col_filter``; -1 = unused)."""
    return [{"m_col": j, "m_slot": max(int(s), 0), "m_used": int(s >= 0)}
            for j, s in enumerate(tile.col_filter)]


def config_write(tile, signed: bool) -> dict:
    """``c_*`` port values."""
    return {"c_rows_used": int(tile.n_rows_used), "c_signed": int(bool(signed))}


def input_beats(xg, signed: bool, in_bits: int = 8) -> list[int]:
    """Packed ``x`` payloads (one per cell row) of gathered inputs ``xg`` (n_row, n_comp)."""
    bits = input_bits(np.asarray(xg), signed)
    return [spec.pack_macro_in(row, in_bits) for row in bits]


def acc_from_beats(beats, n_comp, n_col, n_row, in_bits=8) -> np.ndarray:
    """Per-slot accumulators from the ``o`` payloads of one vector (checks order and ``last``)."""
    acc = np.zeros(n_col, np.int64)
    if len(beats) != n_col:
        raise AssertionError(f"expected {n_col} output beats, got {len(beats)}")
    for k, w in enumerate(beats):
        slot, a, last = spec.unpack_macro_out(w, n_comp, n_col, n_row, in_bits)
        if slot != k or last != (k == n_col - 1):
            raise AssertionError(f"output beat {k}: slot {slot}, last {last}")
        acc[slot] = a
    return acc

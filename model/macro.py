"""Golden model of one PIM macro running one compiled tile (docs/design.md §5, §6).

For each used cell row r (in order) the IPU takes the row's ``n_comp`` inputs,
finds the bit columns b with at least one input bit set (the OR of the row)
and issues them LSB first, one per cycle. Each issued column drives the LPUs:
the product pair of every cell is (x_b AND Q, x_b AND QB); the CSD adder tree of
each column adds ``(-1)**sign * (hi * 2**(2 idx + 1) + lo * 2**(2 idx))`` over
the compartments; the shift-and-add accumulator adds the column sums of a filter
slot's columns shifted by b (subtracted for b = in_bits - 1 in signed mode).

Cycles come from the one cycle model, :func:`model.cycles.vector_cycles`:
``compute_cycles = sum over used rows of popcount(OR of the row)`` (rows whose
inputs are all zero cost nothing), and ``cycles`` add the pipeline latency once
per vector. The bit-serial loop below issues exactly those columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dbpim.model.compile import Tile
from dbpim.model.config import MacroConfig
from dbpim.model.cycles import vector_cycles
from dbpim.model.spec import input_bits

__all__ = ["MacroResult", "gather", "run_macro"]


@dataclass
class MacroResult:
    """Output of :func:`run_macro`.

    Attributes
    ----------
    acc : ndarray of int64, shape (n_col,)
        Accumulator of each filter slot (0 for unused slots).
    cycles : int
        ``compute_cycles + pipeline_latency``.
    compute_cycles : int
        Bit columns issued to the array.
    """

    acc: np.ndarray
    cycles: int
    compute_cycles: int


def gather(tile: Tile, x) -> np.ndarray:
    """Inputs of one im2col vector ``x`` (length K) as the macro sees them.

    Returns
    -------
    ndarray of int64, shape (n_row, n_comp)
        ``x[tile.rows]``, 0 where the cell row / compartment is unused.
    """
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"x: must be one im2col vector (1-D), got shape {x.shape}")
    if tile.rows.max(initial=-1) >= x.size:
        raise ValueError(f"x: tile needs row {int(tile.rows.max())} but the vector has length {x.size}")
    return np.where(tile.rows >= 0, x[np.maximum(tile.rows, 0)], 0).astype(np.int64)


def run_macro(tile: Tile, x, macro: MacroConfig, signed: bool = False, gathered: bool = False) -> MacroResult:
    """Run one input vector through a macro loaded with ``tile``, bit-serially.

    Parameters
    ----------
    tile : Tile
    x : array_like of int
        The im2col vector (length K), or the gathered (n_row, n_comp) inputs
        when ``gathered`` is true.
    macro : MacroConfig
    signed : bool
        Signed (two's complement) inputs; otherwise unsigned.

    Returns
    -------
    MacroResult
    """
    shape = (macro.n_row, macro.n_comp, macro.n_col)
    if tile.cells.shape != shape:
        raise ValueError(f"tile: cells have shape {tile.cells.shape}, the configured array is {shape}")
    xg = np.asarray(x) if gathered else gather(tile, x)
    if xg.shape != shape[:2]:
        raise ValueError(f"x: gathered inputs must have shape {shape[:2]}, got {xg.shape}")
    bits = input_bits(xg, signed)
    acc_col = np.zeros(macro.n_col, np.int64)
    hi_w = (1 - 2 * tile.sign.astype(np.int64)) << (2 * tile.idx.astype(np.int64) + 1)
    lo_w = (1 - 2 * tile.sign.astype(np.int64)) << (2 * tile.idx.astype(np.int64))
    q = tile.cells.astype(np.int64)
    for r in range(tile.n_rows_used):
        orr = int(np.bitwise_or.reduce(bits[r]))
        for b in range(macro.in_bits):
            if not (orr >> b) & 1:
                continue  # IPU skips the all-zero bit column
            xb = ((bits[r] >> b) & 1).astype(np.int64)[:, None]  # (n_comp, 1)
            hi, lo = xb & q[r], xb & (1 - q[r])  # LPU
            col_sum = (hi * hi_w[r] + lo * lo_w[r]).sum(0)  # CSD adder tree, per column
            if signed and b == macro.in_bits - 1:
                acc_col -= col_sum << b
            else:
                acc_col += col_sum << b
    acc = np.zeros(macro.n_col, np.int64)
    used = tile.col_filter >= 0
    np.add.at(acc, tile.col_filter[used].astype(np.intp), acc_col[used])
    compute, cycles = vector_cycles(bits, tile.n_rows_used, macro.pipeline)
    return MacroResult(acc=acc, cycles=cycles, compute_cycles=compute)

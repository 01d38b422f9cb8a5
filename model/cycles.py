"""The cycle model, written once (docs/design.md §7).

One input vector on one macro tile costs, for every used cell row, one cycle
per bit column in which at least one of the row's ``n_comp`` inputs has a 1
(the IPU skips all-zero bit columns; all-zero rows cost nothing), plus the
fixed :func:`model.spec.pipeline_latency`. The dense digital PIM baseline
stores 8 two's-complement bit planes per weight, feeds every row and issues
every bit column.

The golden macro model (:mod:`model.macro`), the layer model
(:mod:`model.layer`) and the performance model (``sim_bench``) all count
cycles with these functions.
"""

from __future__ import annotations

import numpy as np

from model.spec import DENSE_COLS_PER_WEIGHT, pipeline_latency

__all__ = ["POPCOUNT8", "cell_row_popcounts", "row_popcounts", "row_tile_sums", "vector_cycles",
           "dense_cycles", "pipeline_latency"]

#: popcount of every byte value
POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], np.uint8)

_CHUNK = 1 << 24  # bytes of gathered inputs per chunk


def _or_reduce(g: np.ndarray) -> np.ndarray:
    """OR over the last axis of a uint8 array (8 bytes at a time through a uint64 view when possible)."""
    n = g.shape[-1]
    if n % 8 == 0:
        v = np.ascontiguousarray(g).view(np.uint64)
        o = np.bitwise_or.reduce(v, axis=-1) if v.shape[-1] > 1 else v[..., 0]
        o = o | (o >> np.uint64(32))
        o = o | (o >> np.uint64(16))
        o = o | (o >> np.uint64(8))
        return (o & np.uint64(0xFF)).astype(np.uint8)
    return np.bitwise_or.reduce(g, axis=-1)


def cell_row_popcounts(bits: np.ndarray, row_sets, n_comp: int) -> np.ndarray:
    """popcount(OR) of consecutive ``n_comp``-input cell rows, for several row sets at once.

    Parameters
    ----------
    bits : ndarray of uint8, shape (P, K)
        Input bit patterns (two's complement in signed mode).
    row_sets : sequence of ndarray of int
        im2col rows in mapping order, one array per set (e.g. the kept rows of
        each filter group); row ``e`` of a set feeds cell row ``e // n_comp``.
    n_comp : int

    Returns
    -------
    ndarray of uint8, shape (P, len(row_sets), max cell rows)
        Zero beyond a set's own cell rows.
    """
    bits = np.asarray(bits, np.uint8)
    P, K = bits.shape
    ns = len(row_sets)
    crmax = max([-(-len(r) // n_comp) for r in row_sets] + [0])
    idx = np.full((ns, crmax * n_comp), K, np.intp)  # K = an all-zero padding column
    for i, r in enumerate(row_sets):
        idx[i, :len(r)] = r
    ext = np.zeros((P, K + 1), np.uint8)
    ext[:, :K] = bits
    out = np.zeros((P, ns, crmax), np.uint8)
    if out.size == 0:
        return out
    flat = idx.ravel()
    step = max(1, _CHUNK // max(1, idx.size))
    for p0 in range(0, P, step):
        g = ext[p0:p0 + step][:, flat].reshape(min(step, P - p0), ns, crmax, n_comp)
        out[p0:p0 + step] = POPCOUNT8[_or_reduce(g)]
    return out


def row_popcounts(bits: np.ndarray, rows: np.ndarray, n_comp: int) -> np.ndarray:
    """popcount(OR) of each cell row of one row set: uint8 (P, ceil(len(rows) / n_comp))."""
    ncr = -(-len(rows) // n_comp)
    return cell_row_popcounts(bits, [np.asarray(rows)], n_comp)[:, 0, :ncr]


def row_tile_sums(per_cell_row: np.ndarray, n_row: int) -> np.ndarray:
    """Sum consecutive groups of ``n_row`` cell rows (one group = one row tile) along the last axis.

    ``(..., n_cell_rows) -> (..., ceil(n_cell_rows / n_row))`` as int64.
    """
    a = np.asarray(per_cell_row)
    ncr = a.shape[-1]
    nrt = -(-ncr // n_row)
    pad = np.zeros(a.shape[:-1] + (nrt * n_row,), np.int64)
    pad[..., :ncr] = a
    return pad.reshape(a.shape[:-1] + (nrt, n_row)).sum(-1)


def vector_cycles(gathered_bits: np.ndarray, n_rows_used: int, pipeline: bool) -> tuple[int, int]:
    """Cycles of one vector on one tile: ``(compute cycles, compute + pipeline latency)``.

    ``gathered_bits`` is the (n_row, n_comp) uint8 bit patterns the macro sees
    (:func:`model.macro.gather`); only the first ``n_rows_used`` cell rows count.
    """
    g = np.asarray(gathered_bits, np.uint8)[:n_rows_used]
    compute = int(POPCOUNT8[_or_reduce(g)].sum(dtype=np.int64)) if g.size else 0
    return compute, compute + pipeline_latency(pipeline)


def dense_cycles(K: int, N: int, P: int, macro) -> int:
    """Dense digital PIM baseline macro-cycles for a K x N layer and P vectors.

    Same array, no sparsity support: 8 two's-complement bit-plane columns per
    weight (ceil(8 N / n_col) column tiles), all K rows dealt n_comp per cell
    row and n_comp * n_row per tile, ``in_bits`` cycles per cell row, no
    skipping, plus the same pipeline latency per vector and row tile.
    """
    col_tiles = -(-DENSE_COLS_PER_WEIGHT * N // macro.n_col)
    cell_rows = -(-K // macro.n_comp)
    row_tiles = -(-K // macro.capacity_rows)
    per_vector = macro.in_bits * cell_rows + pipeline_latency(macro.pipeline) * row_tiles
    return int(col_tiles * per_vector * P)

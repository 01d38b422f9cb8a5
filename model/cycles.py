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

from dataclasses import dataclass

import numpy as np

from dbpim.model.spec import DENSE_COLS_PER_WEIGHT, pipeline_latency

__all__ = ["POPCOUNT8", "cell_row_popcounts", "cell_row_popcounts_t", "cell_row_popcounts_flat", "inputs_by_row",
           "row_popcounts", "row_tile_sums", "vector_cycles", "dense_cycles", "pipeline_latency", "input_beats",
           "tile_load_cycles", "macro_interval", "MacroTimeline", "macro_schedule"]

#: popcount of every byte value
POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], np.uint8)

_CHUNK = 1 << 22  # bytes of OR-ed cell rows per chunk
_BLOCK = 256  # vectors per block of inputs_by_row's transpose


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


def inputs_by_row(bits: np.ndarray) -> np.ndarray:
    """The input bit patterns (P, K) transposed for :func:`cell_row_popcounts_flat`: uint8 (K + 1, P8).

    Row ``k`` holds im2col row ``k`` of every vector, padded with zero
    vectors to ``P8``, a multiple of 8; row ``K`` is all zeros (the padding
    row of a cell row).
    """
    bits = np.asarray(bits, np.uint8)
    P, K = bits.shape
    bt = np.empty((K + 1, -(-P // 8) * 8), np.uint8)  # every byte written once (no zeroing pass first)
    bt[K] = 0
    bt[:K, P:] = 0
    for p0 in range(0, P, _BLOCK):  # a block of vectors at a time: a cache-sized transpose
        bt[:K, p0:min(P, p0 + _BLOCK)] = bits[p0:p0 + _BLOCK].T
    return bt


def cell_row_popcounts_flat(bits: np.ndarray, rows, sets, counts, n_comp: int, *, by_row=None,
                            cell_rows: int = 0, with_sums: bool = False):
    """popcount(OR) of consecutive ``n_comp``-input cell rows, for several row sets at once, vectors last.

    Parameters
    ----------
    bits : ndarray of uint8, shape (P, K)
        Input bit patterns (two's complement in signed mode).
    rows : ndarray of int, shape (R,)
        im2col rows of every set in mapping order, set after set; row ``e``
        of a set feeds cell row ``e // n_comp``.
    sets : ndarray of int, shape (R,)
        The set of each row (non-decreasing).
    counts : ndarray of int, shape (S,)
        Rows per set.
    n_comp : int
    by_row : ndarray of uint8, optional
        :func:`inputs_by_row` of ``bits``, when the caller has it already.
    cell_rows : int, optional
        At least this many cell rows in the result (zero rows beyond the
        sets' own), e.g. whole row tiles for a caller that sums them.
    with_sums : bool, optional
        Also return every cell row's popcounts summed over the vectors.

    Returns
    -------
    ndarray of uint8, shape (S, max(max cell rows, cell_rows), P)
        Zero beyond a set's own cell rows.
    ndarray of int64, shape (S, max cell rows)
        Only with ``with_sums``: the result's own cell rows summed over the
        vectors (counted a 64-bit word of 8 vectors at a time).

    Notes
    -----
    The inputs are transposed once to (K, P) (:func:`inputs_by_row`) so that
    gathering a row set copies whole contiguous rows of P bytes; the OR over
    a cell row's ``n_comp`` inputs runs 8 vectors at a time through a uint64
    view, one input place of every cell row at a time (never the
    ``n_comp`` gathered inputs at once).
    """
    bits = np.asarray(bits, np.uint8)
    P, K = bits.shape
    counts = np.asarray(counts, np.int64)
    ns = counts.size
    crmax = int(-(-counts.max(initial=0) // n_comp))
    out = np.empty((ns, max(crmax, int(cell_rows)), P), np.uint8)  # the sets' own cell rows written once below
    out[:, crmax:] = 0
    sums = np.zeros((ns, crmax), np.int64)
    if ns * crmax * P == 0:
        out[...] = 0
        return (out, sums) if with_sums else out
    rows = np.asarray(rows, np.intp)
    if rows.size and (rows.min() < 0 or rows.max() >= K):
        raise ValueError(f"rows: im2col rows 0..{K - 1} of the {K}-input vectors, got {rows.min()}..{rows.max()}")
    # one set of every row in order, whole cell rows: input place c of the cell rows is every n_comp-th row from c
    every = ns == 1 and rows.size == K and K % n_comp == 0 and crmax == K // n_comp and \
        np.array_equal(rows, np.arange(K))
    if not every:
        idx = np.full(ns * crmax * n_comp, K, np.intp)  # K = an all-zero padding column
        # row e of set s at flat place s * crmax * n_comp + e
        idx[np.asarray(sets, np.intp) * (crmax * n_comp) + np.arange(rows.size)
            - np.repeat(np.cumsum(counts) - counts, counts)] = rows
        place = np.ascontiguousarray(idx.reshape(ns * crmax, n_comp).T)  # (n_comp, cell rows): the row at place c
    bt = inputs_by_row(bits) if by_row is None else by_row
    n_words = bt.shape[1] // 8
    btv = bt.view(np.uint64)  # (K + 1, P8 / 8)
    step = max(1, _CHUNK // (ns * crmax * 8))  # uint64 columns per chunk
    for c0 in range(0, n_words, step):
        sub = btv[:, c0:c0 + step]
        if every:
            o = sub[0:K:n_comp].copy()
            for c in range(1, n_comp):
                o |= sub[c:K:n_comp]
        else:
            # every index is a row of ``bt`` (K its zero row): "clip" gathers them as "raise" would, unchecked
            o = np.take(sub, place[0], axis=0, mode="clip")
            t = np.empty_like(o)
            for c in range(1, n_comp):
                o |= np.take(sub, place[c], axis=0, out=t, mode="clip")
        pc = np.bitwise_count(o.view(np.uint8)).reshape(ns, crmax, -1)  # the popcount of every byte (vector)
        lo, hi = 8 * c0, min(P, 8 * (c0 + step))
        out[:, :crmax, lo:hi] = pc[:, :, :hi - lo]
        if with_sums:  # the padding vectors past P are zero (inputs_by_row)
            sums += np.bitwise_count(o).sum(-1, dtype=np.int64).reshape(ns, crmax)
    return (out, sums) if with_sums else out


def cell_row_popcounts_t(bits: np.ndarray, row_sets, n_comp: int) -> np.ndarray:
    """:func:`cell_row_popcounts_flat` of a sequence of row sets: uint8 (len(row_sets), max cell rows, P)."""
    counts = np.array([len(r) for r in row_sets], np.int64)
    rows = np.concatenate([np.asarray(r, np.int64) for r in row_sets]) if len(row_sets) else np.zeros(0, np.int64)
    return cell_row_popcounts_flat(bits, rows, np.repeat(np.arange(counts.size), counts), counts, n_comp)


def cell_row_popcounts(bits: np.ndarray, row_sets, n_comp: int) -> np.ndarray:
    """:func:`cell_row_popcounts_t` with the vectors first: uint8 (P, len(row_sets), max cell rows)."""
    return np.ascontiguousarray(cell_row_popcounts_t(bits, row_sets, n_comp).transpose(2, 0, 1))


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


# --------------------------------------------------------------------------- macro timing (docs/design.md §7)

def _int_or_array(a: np.ndarray):
    """A 0-d result as a Python int, anything else as an int64 array."""
    return int(a) if a.ndim == 0 else a


def input_beats(n_rows_used):
    """Beats (clock cycles at full rate) of one input vector: its used cell rows, at least one.

    Elementwise on arrays (int64 array out); an int for a scalar.
    """
    return _int_or_array(np.maximum(1, np.asarray(n_rows_used, np.int64)))


def tile_load_cycles(n_rows_used):
    """Clock cycles to load a tile: one whole cell row (every compartment's cells and metadata) per
    cycle for the used rows; the configuration and column map are written alongside one of them.

    Elementwise on arrays (int64 array out); an int for a scalar.
    """
    return _int_or_array(np.maximum(1, np.asarray(n_rows_used, np.int64)))


def macro_interval(cycles, n_rows_used, n_col):
    """Steady-state clock cycles between vectors of equal ``cycles`` on one macro at full rate.

    The input of the next vector (double-buffered), the compute of this one and
    the output drain of the previous one (double-buffered output bank, ``n_col``
    beats) overlap, so the slowest of the three sets the pace:
    ``max(cycles, n_col, input_beats(n_rows_used))``. Equal to the start-to-start
    distance of :func:`macro_schedule` once the pipeline is full (tested).
    Elementwise on arrays (broadcast; int64 array out); an int for scalars.
    """
    c = np.maximum(np.asarray(cycles, np.int64), np.asarray(n_col, np.int64))
    return _int_or_array(np.maximum(c, input_beats(n_rows_used)))


@dataclass
class MacroTimeline:
    """Clock cycles of every handshake of a sequence of vectors on one macro (:func:`macro_schedule`).

    All times are clock-cycle indices (a handshake in cycle k happens at the clock
    edge that ends cycle k).

    Attributes
    ----------
    in_accept : ndarray of int64, shape (P, input_beats)
        Cycle in which each input beat is accepted.
    start, done : ndarray of int64, shape (P,)
        First and last compute cycle of each vector (``done - start + 1`` is its
        ``cycles``, the value of :func:`model.macro.run_macro`).
    out_accept : ndarray of int64, shape (P, n_col)
        Cycle in which each output beat is accepted.
    """

    in_accept: np.ndarray
    start: np.ndarray
    done: np.ndarray
    out_accept: np.ndarray

    @property
    def end(self) -> int:
        """The cycle after the last output beat (the sequence's length when it began in cycle 0)."""
        return int(self.out_accept[-1, -1]) + 1 if self.out_accept.size else 0


def macro_schedule(cycles, n_rows_used: int, n_col: int, in_gaps=None, out_ready=None) -> MacroTimeline:
    """Cycle-exact timing of a sequence of vectors through one macro (the RTL's control, written as events).

    The rules (``hw.macro.PIMMacro``, docs/design.md §7), vector v using input
    buffer and output bank ``v % 2``:

    * input beat i is offered ``in_gaps[i]`` idle cycles after the previous
      beat was accepted (beat 0: in cycle ``in_gaps[0]``); the first beat of v
      is accepted no earlier than the cycle after vector v-2's compute finished
      (its buffer is then free), later beats as soon as they are offered;
    * compute of v starts in the cycle after the later of: its last input beat,
      the end of v-1's compute, and the last output beat of v-2 (its output
      bank is then free); it lasts ``cycles[v]`` cycles;
    * the ``n_col`` output beats of v are offered from the cycle after its
      compute ends and after v-1's last output beat, one after another, each
      accepted in the first cycle ``k`` from then on with ``out_ready(k)``.

    Parameters
    ----------
    cycles : sequence of int
        ``run_macro(...).cycles`` of each vector (compute + pipeline latency).
    n_rows_used : int
        Used cell rows of the loaded tile (:func:`input_beats` per vector).
    n_col : int
        Output beats per vector.
    in_gaps : sequence of int, optional
        Idle cycles the source inserts before each input beat; None = full rate
        (all 0).
    out_ready : sequence of bool or callable, optional
        Sink readiness per cycle (``out_ready[k]``; cycles past the end are
        ready) or a function of the cycle; None = always ready.

    Returns
    -------
    MacroTimeline
    """
    c = np.asarray(cycles, np.int64).reshape(-1)
    P, R = c.size, input_beats(n_rows_used)
    gaps = np.zeros(P * R, np.int64) if in_gaps is None else np.asarray(in_gaps, np.int64).reshape(-1)
    if gaps.size != P * R:
        raise ValueError(f"in_gaps: must have one entry per input beat ({P} x {R}), got {gaps.size}")
    if out_ready is None:
        def ready(k):
            return True
    elif callable(out_ready):
        ready = out_ready
    else:
        r = np.asarray(out_ready, bool)

        def ready(k):
            return k >= r.size or bool(r[k])
    tl = MacroTimeline(np.zeros((P, R), np.int64), np.zeros(P, np.int64), np.zeros(P, np.int64),
                       np.zeros((P, n_col), np.int64))
    never = -(1 << 40)
    prev_accept = -1
    for v in range(P):
        buf_free = tl.done[v - 2] + 1 if v >= 2 else never
        for i in range(R):
            offer = prev_accept + 1 + gaps[v * R + i]
            prev_accept = max(offer, buf_free) if i == 0 else offer
            tl.in_accept[v, i] = prev_accept
        tl.start[v] = max(tl.in_accept[v, -1] + 1,
                          tl.done[v - 1] + 1 if v >= 1 else never,
                          tl.out_accept[v - 2, -1] + 1 if v >= 2 else never)
        tl.done[v] = tl.start[v] + c[v] - 1
        k = max(tl.done[v] + 1, tl.out_accept[v - 1, -1] + 1 if v >= 1 else never)
        for j in range(n_col):
            while not ready(k):
                k += 1
            tl.out_accept[v, j] = k
            k += 1
    return tl

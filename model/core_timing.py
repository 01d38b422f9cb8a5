"""Layer timing of one PIM core, written once (docs/design.md §7 "Core timing").

A PIM core is ``M`` macros holding the same tile, one sparse allocation switch
(``lanes`` outputs per cycle) shared by the ``M`` macros, and an output
register file. Its loop nest for one layer is

    filter tiles (group g, column tile ct), in order
      pixel chunks (only when the partial sums do not fit the output buffer)
        row tiles
          rounds r of M output pixels: macro m takes pixel r * M + m

and every term below is one small function, vectorised over any leading axes
(samples, filter tiles, row tiles), so the performance model (``sim_bench``)
calls them for every filter tile of a network at once.

The macro's own clock (tile load, input beats, compute, output drain and how
they overlap) is :mod:`model.cycles`'s (``tile_load_cycles``, ``input_beats``,
``macro_interval``, ``macro_schedule``; the RTL macro equals it cycle for
cycle); this module composes it into a core and adds the switch, the output
register file and the loop nest:

(a) **tile load** (:func:`model.cycles.tile_load_cycles`): the tile is written
    into all ``M`` macros at once (broadcast) through the macro write port,
    one whole cell row per cycle, the configuration and column map alongside.
    Not overlapped with compute (a macro holds one tile). The system model may
    stretch it when the shared off-chip bandwidth is the slower
    (:func:`tile_bytes`).
(b) **rounds** (:func:`rounds_cycles`): the switch delivers the vectors of a
    round to its macros one after another; delivering one vector takes
    :func:`delivery_cycles` = max(switch beats of the row tile's kept inputs,
    the macro's :func:`model.cycles.input_beats`), a per-row-tile constant
    known at compile time (:func:`switch_beats`). Delivery of round r+1
    overlaps the compute of round r (double-buffered macro inputs); the
    compute of a round is the slowest of its macros (:func:`round_compute`:
    popcount cycles plus the pipeline latency, :mod:`model.cycles`); the drain
    of round r (``n_col`` output beats per macro, the macros in parallel)
    overlaps round r+1 (double-buffered output banks). A round between two
    others costs the macro's steady-state spacing
    :func:`model.cycles.macro_interval` or the switch's delivery of the next
    round, whichever is longer; the first delivery and the last drain are
    exposed. The rounds run in lock step: with one macro the count is never
    below the cycle-exact :func:`model.cycles.macro_schedule` of the same
    vectors and equals it when compute dominates (property test); it
    overshoots when the drain or the input dominates short sequences.
(c) **accumulation and results**: partial sums accumulate in the output
    register file across row tiles; after the last row tile of a filter tile
    (of a chunk) its ``P x filters`` results stream out,
    ``result_words_per_cycle`` words per cycle (:func:`result_stream_cycles`).

:func:`layer_core_cycles` is one core running a whole compiled layer; the
golden core twin and the RTL core (still to be built) are to be checked against
it, and ``sim_bench`` with one core gives the same count (tested).
"""

from __future__ import annotations

import numpy as np

from model.cycles import cell_row_popcounts_t, input_beats, macro_interval, row_tile_sums, tile_load_cycles
from model.spec import DIGIT_BITS, input_bits, pipeline_latency

__all__ = ["switch_beats", "delivery_cycles", "tile_bytes", "round_compute", "round_served", "chunk_rounds",
           "rounds_cycles", "result_stream_cycles", "row_tiles_cycles", "row_tiles_cycles_from_rounds",
           "layer_core_cycles", "filter_tiles_of"]


# ----------------------------------------------------------------------------- per-row-tile constants

def switch_beats(rows, segments, n_segments: int, n_comp: int, lanes: int) -> np.ndarray:
    """Switch beats to extract one vector's kept inputs, per segment (row tile).

    The switch reads input windows of ``n_comp`` consecutive im2col rows
    (window ``k // n_comp``) and emits a window's kept inputs ``lanes`` per
    beat (``model.blocks.switch``); windows without a kept input of the row
    tile are not fetched (the mask is known at compile time).

    Parameters
    ----------
    rows : ndarray of int, shape (R,)
        Kept im2col rows, increasing within each segment.
    segments : ndarray of int, shape (R,)
        Segment (row tile) of each row, non-decreasing.
    n_segments : int
    n_comp, lanes : int

    Returns
    -------
    ndarray of int64, shape (n_segments,)
        ``sum over windows of ceil(kept rows in the window / lanes)``.
    """
    rows = np.asarray(rows, np.int64)
    seg = np.asarray(segments, np.int64)
    if rows.size == 0:
        return np.zeros(n_segments, np.int64)
    win = rows // n_comp
    start = np.ones(rows.size, bool)
    start[1:] = (seg[1:] != seg[:-1]) | (win[1:] != win[:-1])
    first = np.nonzero(start)[0]
    counts = np.diff(np.append(first, rows.size))
    beats = -(-counts // lanes)
    return np.bincount(seg[first], weights=beats, minlength=n_segments).astype(np.int64)


def delivery_cycles(beats, n_rows_used) -> np.ndarray:
    """Cycles to deliver one vector to one macro: max(switch beats, the macro's input beats).

    Parameters
    ----------
    beats : array_like of int
        Switch beats of the vector (:func:`switch_beats`); 0 for inputs that
        bypass the switch (the dense baseline).
    n_rows_used : array_like of int
        Used cell rows of the tile (:func:`model.cycles.input_beats`), broadcast with ``beats``.
    """
    return np.maximum(np.asarray(beats, np.int64), input_beats(np.asarray(n_rows_used, np.int64)))


def tile_bytes(n_rows_used, macro, cell_bits: int = DIGIT_BITS) -> np.ndarray:
    """Bytes of a tile fetched from memory: ``n_rows_used * n_comp * n_col * cell_bits / 8``.

    ``cell_bits`` = 4 with FTA (cell + 2 idx + sign bits), 1 for the dense baseline.
    """
    return np.asarray(n_rows_used, np.float64) * (macro.n_comp * macro.n_col * cell_bits / 8.0)


# ----------------------------------------------------------------------------- rounds

def round_compute(vec_cycles, M: int) -> np.ndarray:
    """Compute cycles of each round: the slowest of its ``M`` macros.

    ``vec_cycles`` (..., P) are per-vector macro cycles (compute + pipeline
    latency); returns (..., ceil(P / M)).
    """
    v = np.asarray(vec_cycles)
    P = v.shape[-1]
    R = -(-P // M)
    if R * M != P:
        pad = np.zeros(v.shape[:-1] + (R * M - P,), v.dtype)
        v = np.concatenate([v, pad], axis=-1)
    return v.reshape(v.shape[:-1] + (R, M)).max(-1)


def round_served(P: int, M: int, switches: int = 1) -> np.ndarray:
    """Vectors the (busiest) switch delivers in each round: ``ceil(macros busy / switches)``, shape (R,)."""
    R = -(-P // M)
    busy = np.minimum(M, P - np.arange(R) * M)
    return -(-busy // switches)


def chunk_rounds(a: np.ndarray, rounds_per_chunk: int) -> np.ndarray:
    """Split the rounds axis (last) into (chunks, rounds_per_chunk), padding with zero rounds."""
    a = np.asarray(a)
    R = a.shape[-1]
    nch = max(1, -(-R // rounds_per_chunk))
    pad = nch * rounds_per_chunk - R
    if pad:
        a = np.concatenate([a, np.zeros(a.shape[:-1] + (pad,), a.dtype)], axis=-1)
    return a.reshape(a.shape[:-1] + (nch, rounds_per_chunk))


def rounds_cycles(compute, served, delivery, n_rows_used, n_col: int) -> np.ndarray:
    """Cycles of one pass over a row tile's rounds (docs/design.md §7).

    Parameters
    ----------
    compute : ndarray, shape (..., R)
        Compute cycles of each round (:func:`round_compute`); 0 for padding rounds.
    served : ndarray, shape (..., R) (broadcast)
        Vectors the switch delivers in each round; 0 for padding rounds.
    delivery : ndarray, shape (...)
        Cycles to deliver one vector (:func:`delivery_cycles`, at least the
        macro's input beats).
    n_rows_used : ndarray, shape (...) (broadcast)
        Used cell rows of the tile (the macro's input beats).
    n_col : int
        Output beats of a vector (the macro's drain, ``n_col`` slots).

    Returns
    -------
    ndarray of int64, shape (...)
        ``D_0 + sum_r T_r + n_col if the last round ran`` with
        ``D_r = served_r * delivery`` and, for a round between two others,
        ``T_r = max(macro_interval(C_r, n_rows_used, n_col), D_{r+1})``
        (:func:`model.cycles.macro_interval`: the next input, this compute and
        the previous drain overlap); at the edges only the terms that exist:
        ``T_r = max(C_r, D_{r+1}, n_col if round r-1 ran)``.
    """
    C = np.asarray(compute, np.int64)
    served = np.broadcast_to(np.asarray(served, np.int64), C.shape)
    D = served * np.asarray(delivery, np.int64)[..., None]
    Dn = np.zeros_like(D)
    Dn[..., :-1] = D[..., 1:]
    ran_prev = np.zeros(C.shape, bool)
    ran_prev[..., 1:] = served[..., :-1] > 0
    steady = np.maximum(macro_interval(C, np.asarray(n_rows_used, np.int64)[..., None], n_col), Dn)
    edge = np.maximum(np.maximum(C, Dn), np.where(ran_prev, n_col, 0))
    per = np.where(ran_prev & (Dn > 0), steady, edge)
    return D[..., 0] + per.sum(-1) + np.where(served[..., -1] > 0, n_col, 0)


def result_stream_cycles(pixels, n_filters, words_per_cycle: float) -> np.ndarray:
    """Cycles to stream a filter tile's results (pixels x filters words) out of the output register file."""
    return np.ceil(np.asarray(pixels, np.float64) * np.asarray(n_filters, np.float64)
                   / float(words_per_cycle)).astype(np.int64)


def row_tiles_cycles(vec_cycles, delivery, load, n_rows_used, M: int, n_col: int,
                     rounds_per_chunk: int | None = None, switches: int = 1, valid=None) -> np.ndarray:
    """Cycles of one filter tile's row tiles on one core, result streaming excluded.

    Parameters
    ----------
    vec_cycles : ndarray, shape (..., nrt, P)
        Per-vector macro cycles (compute + latency) of each row tile.
    delivery : ndarray, shape (..., nrt) (broadcast)
        Cycles to deliver one vector of each row tile.
    load : ndarray, shape (..., nrt) (broadcast)
        Tile-load cycles of each row tile (:func:`model.cycles.tile_load_cycles`,
        or longer when the off-chip bandwidth binds).
    n_rows_used : ndarray, shape (..., nrt) (broadcast)
        Used cell rows of each row tile (the macro's input beats).
    M : int
        Macros taking a round's pixels (``macros_per_core`` times replicas).
    n_col : int
        Output beats per vector (the macro's drain).
    rounds_per_chunk : int, optional
        Pixel chunking for the output buffer: rounds per chunk. Every chunk
        runs every row tile; the row tiles are loaded again for each chunk
        unless there is only one.
    switches : int
        Switches serving the ``M`` macros (1 per core; more when idle cores
        hold a copy of the tile).
    valid : ndarray of bool, shape (..., nrt), optional
        False for padding row tiles (they cost nothing).

    Returns
    -------
    ndarray of int64, shape (...)
    """
    v = np.asarray(vec_cycles)
    P = v.shape[-1]
    rc = round_compute(v, M)  # (..., nrt, R)
    return row_tiles_cycles_from_rounds(rc, P, delivery, load, n_rows_used, M, n_col, rounds_per_chunk, switches,
                                        valid)


def row_tiles_cycles_from_rounds(rc, P: int, delivery, load, n_rows_used, M: int, n_col: int,
                                 rounds_per_chunk: int | None = None, switches: int = 1, valid=None) -> np.ndarray:
    """:func:`row_tiles_cycles` from the rounds' compute cycles ``rc`` (..., nrt, R) (:func:`round_compute`)."""
    rc = np.asarray(rc, np.int64)
    R = rc.shape[-1]
    rpc = R if rounds_per_chunk is None else max(1, min(int(rounds_per_chunk), R))
    served = chunk_rounds(round_served(P, M, switches), rpc)  # (nch, rpc)
    nch = served.shape[0]
    comp = chunk_rounds(rc, rpc)  # (..., nrt, nch, rpc)
    dl = np.broadcast_to(np.asarray(delivery, np.int64), rc.shape[:-1])
    used = np.broadcast_to(np.asarray(n_rows_used, np.int64), rc.shape[:-1])
    passes = rounds_cycles(comp, served, dl[..., None], used[..., None], n_col).sum(-1)  # (..., nrt)
    lead = rc.shape[:-1]
    if valid is None:
        valid = np.ones(lead, bool)
    valid = np.broadcast_to(valid, lead)
    n_rt = valid.sum(-1, keepdims=True)
    loads = np.broadcast_to(np.asarray(load, np.int64), lead) * np.where(n_rt > 1, nch, 1)
    return np.where(valid, passes + loads, 0).sum(-1)


# ----------------------------------------------------------------------------- one layer on one core

def filter_tiles_of(tiles) -> list[tuple[int, int, list]]:
    """Consecutive tiles with the same (group, col_tile): ``[(group, col_tile, [tile indices])]`` in order."""
    out = []
    for i, t in enumerate(tiles):
        key = (int(t.group), int(t.col_tile))
        if out and out[-1][:2] == key:
            out[-1][2].append(i)
        else:
            out.append((key[0], key[1], [i]))
    return out


def layer_core_cycles(compiled, x, signed: bool = False, macros_per_core: int = 4,
                      result_words_per_cycle: float = 4.0, pixels_per_chunk: int | None = None) -> int:
    """Cycles of one PIM core running every tile of a compiled layer (docs/design.md §7).

    Parameters
    ----------
    compiled : model.compile.CompiledLayer
    x : array_like of int, shape (P, K)
        im2col input vectors of one inference.
    signed : bool
    macros_per_core : int
    result_words_per_cycle : float
        Output register file to output buffer words per cycle.
    pixels_per_chunk : int, optional
        Pixels per output-buffer chunk (a multiple of ``macros_per_core``); default all.

    Returns
    -------
    int
    """
    m = compiled.macro
    bits = input_bits(np.asarray(x), signed)
    P = bits.shape[0]
    M = int(macros_per_core)
    lat = pipeline_latency(m.pipeline)
    rpc = None if pixels_per_chunk is None else max(1, int(pixels_per_chunk) // M)
    groups = sorted({int(t.group) for t in compiled.tiles})
    kept = [np.nonzero(compiled.mask[:, g])[0] for g in groups]
    pc = cell_row_popcounts_t(bits, kept, m.n_comp)  # (ng, crmax, P)
    per_rt = row_tile_sums(np.moveaxis(pc, -1, -2).astype(np.int64), m.n_row)  # (ng, P, nrt)
    gi = {g: i for i, g in enumerate(groups)}
    total = 0
    for g, _ct, idx in filter_tiles_of(compiled.tiles):
        ts = [compiled.tiles[i] for i in idx]
        rts = np.array([t.row_tile for t in ts])
        vec = per_rt[gi[g]][:, rts].T + lat  # (nrt, P)
        rows = np.concatenate([t.rows.reshape(-1)[t.rows.reshape(-1) >= 0] for t in ts])
        seg = np.concatenate([np.full(int((t.rows >= 0).sum()), j) for j, t in enumerate(ts)])
        used = np.array([t.n_rows_used for t in ts])
        dl = delivery_cycles(switch_beats(rows, seg, len(ts), m.n_comp, m.lanes), used)
        total += int(row_tiles_cycles(vec, dl, tile_load_cycles(used), used, M, m.n_col, rpc))
        nf = int((ts[0].filters >= 0).sum())
        ppc = P if rpc is None else rpc * M
        chunks = [min(ppc, P - c) for c in range(0, P, ppc)]
        total += int(sum(result_stream_cycles(c, nf, result_words_per_cycle) for c in chunks))
    return total

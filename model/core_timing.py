"""Timing of one PIM core running a layer, written once (docs/design.md §7 "Core timing", §11).

The RTL (``hw.core.PIMCore``), the core's golden twin (:func:`model.core.run_core`)
and the performance model (``sim_bench``) all count a layer's cycles on one core
with these functions; the tests hold the RTL's ``CYCLES`` register equal to them,
and ``sim_bench`` with one core equal to the twin.

A PIM core is ``M`` macros holding the same tile, ``W = core.in_windows``
sparse allocation switches (``lanes`` outputs per cycle each) with their row
packers, in lock step, shared by the ``M`` macros (W divides M), an
output register file (``core.out_banks`` banks) streaming results
``L = core.result_lanes`` per cycle, and a layer controller running descriptors.

**Plan.** :func:`plan_passes` derives the core's loop nest from a compiled
layer's tiles: filter tiles (consecutive tiles with the same group and column
tile, :func:`filter_tiles_of`) in order, runs of at most ``run_pixels``
(default ``core.out_pixels``, the output register file) output pixels, row
tiles; one *pass* per (filter tile, pixel run, row tile). A pass reads only the
windows of ``n_comp`` inputs that hold a kept row of its row tile. A *job*
is one (filter tile, pixel run): its passes from the ``first`` row tile to
the ``last``, which accumulate into the output register file; the last
pass's results then leave in ``stream = ceil(pixels / L) * n_out`` beats,
one a cycle (:func:`stream_beats`).
Jobs are packed whole into *segments* (one START each) while the core's
tile store, descriptor memory and mask register file last
(:func:`pack_segments`).

**A pass** (``M`` = macros per core, ``R = ceil(pixels / M)`` rounds, round r
= pixels ``rM .. rM + M_r - 1``, ``M_r = min(M, pixels - rM)``):

* ``load = max(1, n_rows_used)``: the tile goes into all macros at once, one
  cell row per cycle (:func:`model.cycles.tile_load_cycles`), the
  configuration and the column map with the first;
* ``deliver`` = cycles the switch needs for one input vector: the sum over
  the row tile's windows (those holding a kept row) of ``ceil(kept / lanes)``
  (:func:`switch_beats`), plus one when the vector's last switch beat
  completes a cell row and leaves a remainder (the packer flushes it alone;
  :func:`delivery_cycles`);
* ``G_r = ceil(M_r / W)``: the groups of round r. The input stream carries
  W windows a beat, one per switch, so the switches deliver W macros'
  vectors (macros ``gW .. gW + W - 1``) at once, in ``deliver`` cycles (all
  vectors of a pass have the same masks); the groups follow one another
  (:func:`round_delivery`). With ``W = 1``, ``G_r = M_r``;
* ``C_r`` = the slowest macro of round r (:func:`round_compute`): max over its
  pixels of ``popcount(OR)`` cycles + pipeline latency (docs/design.md §7);
* the macros of a round start together (barrier ``B_r``) once all of them
  finished computing; round r+1 is delivered while round r computes; each
  macro's results drain (``n_col`` beats) into the output register file from
  one of its two output banks while it computes the next round, and rounds
  start at least ``n_col`` cycles apart, so a bank is always free::

      B_0     = max(load, G_0 * deliver + 1)
      B_r+1   = B_r + max(C_r, G_r+1 * deliver + 2, n_col)
      pass    = 3 + B_(R-1) + max(C_(R-1), n_col) + n_col + x

  (the constants are ``model.spec.CORE_LATENCY``): after the last round the
  core waits ``n_col`` cycles for the last drain; the final one of these
  cycles is the pass's *hand-off* cycle, where a last pass hands its
  results to the stream. ``x`` is the pass's exposed streaming (below; 0
  for a pass that is not last). ``pass = 3 + B_0 + after``, where
  ``after`` (:func:`pass_after`, ``x`` its ``stream`` argument) does not
  depend on the load.
* **Tile banks.** With ``core.tile_banks = 1`` every pass waits for its
  whole ``load``. With ``tile_banks = 2`` each macro holds two tiles: pass
  k+1's tile is written into the bank pass k does not compute on, starting
  from pass k's first round start (its descriptor read then, its first row
  read the cycle after, ``CORE_LATENCY["prefetch"]`` = 2), one row per cycle
  through pass k+1's DECODE cycle: ``overlap_k = after_k + 1`` cycles
  (:func:`prefetch_overlap`). Pass k+1 then waits only for the rest,
  ``load = max(0, load_k+1 - overlap_k)`` (:func:`exposed_load`) in ``B_0``.
  Still exposed: a START's first load (no pass before it in the START),
  and the part of a load longer than the ``after`` of the pass before it.
* **Result lanes** (``L = core.result_lanes``, dividing ``M``). A beat
  carries one filter's results of ``L`` pixels, one from each of ``L``
  consecutive macros' output register file banks (the pixels ``rM + gL ..
  rM + gL + L - 1`` of round r, lane group g): the stream goes round by
  round, lane group by lane group (those holding a pixel), filter by filter.
  A pass's ``pixels`` fill ``ceil(pixels / L)`` lane groups (every round
  but the last is whole and L divides M), so ``stream = ceil(pixels / L) *
  n_out`` beats (:func:`stream_beats`); with ``L = 1`` pixel by pixel,
  ``pixels * n_out``.
* **Output banks** (the exposed streaming ``x``). With ``core.out_banks =
  1`` a last pass streams its results right after its hand-off, one beat a
  cycle, and the next pass starts after the final beat: ``x = stream``.
  With ``out_banks = 2`` the stream reads one bank while the next job's
  passes fill the other, and the next pass starts the cycle after the
  hand-off. The stream of the job handed off in cycle ``h`` takes cycles
  ``h+1 .. h+stream``; the next hand-off may be in cycle ``h+stream`` at
  the earliest (the previous stream's final beat: streams follow each
  other without a gap). So the last pass of job j waits in its hand-off
  cycle for ``x_j = wait_j = max(0, stream_j-1 - work_j)`` cycles, where
  ``work_j`` is the sum of job j's pass cycles without this wait (the
  hand-off of job j-1 is the final cycle of its last pass) and
  ``stream_j-1`` is 0 for a START's first job. A START ends (DONE) the
  cycle after its last stream's final beat, so its last job also adds its
  whole ``stream`` (after its wait). Passes that are not last never wait.
* **A START** costs the sum of its passes, plus (``out_banks = 2``) its
  last job's ``stream``, plus ``RUN_OVERHEAD``; per job: :func:`job_cycles`.
  With two tile banks too, a wait lengthens the ``after`` of the job's
  last pass and so the ``overlap`` (``after + 1``, ``x`` included) that
  hides the next job's first load: the jobs are counted one after another.

All counts assume the input stream always valid and the result stream
always ready (stalls only add cycles; a stalled stream also delays the
next hand-off). The system around the cores (several
cores, off-chip bandwidth stretching a tile load, the output buffer's
capacity shortening the pixel runs) is ``sim_bench``'s (docs/perf_model.md);
it calls :func:`pass_cycles_rounds` for every (row set, row tile, pixel run)
of a layer at once, the jobs of a layer dealt to the cores by
:func:`deal_jobs` on their compile-time :func:`job_work` (a compiler choice:
each core runs its own jobs as above).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from dbpim.model.cycles import cell_row_popcounts_t, tile_load_cycles
from dbpim.model.spec import CORE_LATENCY, DIGIT_BITS, pipeline_latency

__all__ = ["PassPlan", "PlanError", "stream_beats", "plan_passes", "pack_segments", "filter_tiles_of", "kept_rows",
           "switch_beats", "window_counts", "delivery_cycles", "delivery_and_windows", "check_filter_tile",
           "load_cycles", "tile_bytes", "pixel_cycles", "round_compute",
           "round_sizes", "round_delivery", "first_round_delivery", "pass_after", "prefetch_overlap", "exposed_load",
           "prefetched_passes", "pass_cycles", "pass_cycles_rounds", "job_cycles", "layer_cycles",
           "core_layer_cycles", "job_work", "deal_filter_tiles", "deal_jobs", "PASS_TERMS", "round_work",
           "pass_after_terms", "pass_after_and_terms", "pass_terms", "job_terms", "layer_cycle_terms"]


class PlanError(ValueError):
    """A layer does not fit the core; the message is one line naming the limit."""


@dataclass
class PassPlan:
    """The passes of a layer on one core, in execution order (arrays have one entry per pass).

    Attributes
    ----------
    tile : int array
        Index of the pass's tile in ``CompiledLayer.tiles``.
    rows : list of int arrays
        The row tile's kept im2col rows in packing order.
    windows : list of int arrays
        The windows (``row // n_comp``) holding a kept row, increasing.
    n_kept, n_rows_used : int arrays
    load, deliver : int arrays
        :func:`load_cycles` and :func:`delivery_cycles` of the pass.
    p0, pixels, n_out : int arrays
        Pixel run and the filters of the tile.
    first, last : bool arrays
        First / last row tile of its filter tile.
    segment : int array
        START the pass belongs to.
    """

    tile: np.ndarray
    rows: list
    windows: list
    n_kept: np.ndarray
    n_rows_used: np.ndarray
    load: np.ndarray
    deliver: np.ndarray
    p0: np.ndarray
    pixels: np.ndarray
    n_out: np.ndarray
    first: np.ndarray
    last: np.ndarray
    segment: np.ndarray

    @property
    def n_segments(self) -> int:
        return int(self.segment.max()) + 1 if self.segment.size else 0


# ----------------------------------------------------------------------------- per-row-tile constants

def stream_beats(pixels, n_out, result_lanes: int = 1) -> np.ndarray:
    """Result stream beats of a job: ``ceil(pixels / result_lanes) * n_out`` (int64, broadcast).

    A beat carries one filter's results of ``result_lanes`` (``core.result_lanes``, dividing the macros per
    core) pixels, one per lane; the lanes past a pass's last pixel are empty (``TKEEP`` low).
    """
    lanes = int(result_lanes)
    return -(-np.asarray(pixels, np.int64) // lanes) * np.asarray(n_out, np.int64)


def load_cycles(n_rows_used) -> np.ndarray:
    """Cycles to load tiles into a core's macros at once: the macro's own :func:`model.cycles.tile_load_cycles`."""
    return np.asarray(tile_load_cycles(n_rows_used), np.int64)


def tile_bytes(n_rows_used, macro, cell_bits: int = DIGIT_BITS) -> np.ndarray:
    """Bytes of a tile fetched from memory: ``n_rows_used * n_comp * n_col * cell_bits / 8``.

    ``cell_bits`` = 4 with FTA (cell + 2 idx + sign bits), 1 for the dense baseline.
    """
    return np.asarray(n_rows_used, np.float64) * (macro.n_comp * macro.n_col * cell_bits / 8.0)


def _window_runs(rows, segments, n_comp: int):
    """Start index, kept count and segment of every (segment, window) run of consecutive kept rows."""
    rows = np.asarray(rows, np.int64)
    seg = np.asarray(segments, np.int64)
    win = rows // n_comp
    start = np.ones(rows.size, bool)
    start[1:] = (seg[1:] != seg[:-1]) | (win[1:] != win[:-1])
    first = np.nonzero(start)[0]
    counts = np.diff(np.append(first, rows.size))
    return first, counts, seg[first]


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
    if np.asarray(rows).size == 0:
        return np.zeros(n_segments, np.int64)
    return _beats(_window_runs(rows, segments, n_comp), n_segments, lanes)


def _beats(runs, n_segments: int, lanes: int) -> np.ndarray:
    """:func:`switch_beats` of the window runs of :func:`_window_runs`."""
    _, counts, seg = runs
    return np.bincount(seg, weights=-(-counts // lanes), minlength=n_segments).astype(np.int64)


def window_counts(rows, segments, n_segments: int, n_comp: int) -> np.ndarray:
    """Input windows holding a kept row (the mask register file words), per segment (row tile): (n_segments,)."""
    if np.asarray(rows).size == 0:
        return np.zeros(n_segments, np.int64)
    _, _, seg = _window_runs(rows, segments, n_comp)
    return np.bincount(seg, minlength=n_segments).astype(np.int64)


def delivery_cycles(rows, segments, n_segments: int, n_comp: int, lanes: int) -> np.ndarray:
    """Cycles of the switch and the row packer for one vector of each segment (row tile): (n_segments,).

    :func:`switch_beats`, plus one when the vector's last beat completes a cell
    row and leaves a remainder (the packer flushes the remainder alone:
    ``hw.core.RowPacker``).
    """
    return delivery_and_windows(rows, segments, n_segments, n_comp, lanes)[0]


def delivery_and_windows(rows, segments, n_segments: int, n_comp: int, lanes: int):
    """:func:`delivery_cycles` and :func:`window_counts` of the same row tiles, their windows found once."""
    if np.asarray(rows).size == 0:
        return np.zeros(n_segments, np.int64), np.zeros(n_segments, np.int64)
    runs = _window_runs(rows, segments, n_comp)
    beats = _beats(runs, n_segments, lanes)
    _, counts, seg = runs
    kept = np.bincount(seg, weights=counts, minlength=n_segments).astype(np.int64)
    k_last = np.zeros(n_segments, np.int64)
    ends = np.append(seg[1:] != seg[:-1], True)  # the last window of each segment
    k_last[seg[ends]] = counts[ends]
    last_beat = k_last - lanes * (-(-k_last // lanes) - 1)
    rem = kept % n_comp
    return (beats + ((rem > 0) & (last_beat > rem)).astype(np.int64),
            np.bincount(seg, minlength=n_segments).astype(np.int64))


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


def kept_rows(tile, n_comp: int, where: str = "tile") -> np.ndarray:
    """A tile's im2col rows in packing order (docs/design.md §6): they fill its first places, increasing."""
    flat = tile.rows.reshape(-1)
    n = int((flat >= 0).sum())
    rows = flat[:n]
    if n == 0 or np.any(rows < 0) or np.any(np.diff(rows) <= 0) or tile.n_rows_used != -(-n // n_comp):
        raise PlanError(f"{where}: kept rows must fill the tile's first places, increasing, in n_rows_used "
                        "cell rows (docs/design.md §6)")
    return rows


def _n_out(tile, where: str) -> int:
    n = tile.n_filters
    if np.any(tile.filters[:n] < 0):
        raise PlanError(f"{where}: used filter slots must come first (docs/design.md §6)")
    return n


# ----------------------------------------------------------------------------- the loop nest

def check_filter_tile(n_row_tiles: int, n_windows: int, core, where: str) -> None:
    """Raise :class:`PlanError` when one filter tile does not fit the core's memories."""
    if n_row_tiles > core.max_row_tiles:
        raise PlanError(f"{where}: {n_row_tiles} row tiles, the core accumulates at most "
                        f"core.max_row_tiles={core.max_row_tiles}")
    if n_row_tiles > core.descriptors or n_row_tiles > core.tile_slots or n_windows > core.mask_windows:
        raise PlanError(f"{where}: needs {n_row_tiles} descriptors, {n_row_tiles} tile slots and {n_windows} mask "
                        f"windows; the core has core.descriptors={core.descriptors}, "
                        f"core.tile_slots={core.tile_slots}, core.mask_windows={core.mask_windows}")


def pack_segments(job_ft, ft_row_tiles, ft_windows, core, *, starts=None) -> np.ndarray:
    """START (segment) of each job, packing jobs in order while the core's memories last.

    A job is one filter tile over one pixel run (all its row tiles, one
    descriptor each). Jobs of a filter tile already held by the segment reuse
    its tile slots and masks; a new segment starts when the descriptors, tile
    slots or mask windows would overflow.

    Parameters
    ----------
    job_ft : int array (J,)
        Filter tile of each job, in execution order.
    ft_row_tiles, ft_windows : int arrays (F,)
        Row tiles (= tiles) and mask windows of each filter tile.
    core : CoreConfig
    starts : int array, optional
        The jobs of several cores one after another: the index of each
        core's first job, increasing from 0 (default: one core). Each core
        packs its own jobs, its segments counted from 0.

    Returns
    -------
    int64 array (J,)

    Notes
    -----
    When every core's filter tiles increase (each new to its START, as the
    performance model deals them) every job is packed at once
    (:func:`_pack_new_runs`); otherwise one step per run of a filter tile.
    """
    rts = np.asarray(ft_row_tiles, np.int64).tolist()
    wins = np.asarray(ft_windows, np.int64).tolist()
    D, T, W = int(core.descriptors), int(core.tile_slots), int(core.mask_windows)
    fts = np.asarray(job_ft, np.int64).reshape(-1)
    if fts.size == 0:
        return np.zeros(0, np.int64)
    heads = np.zeros(fts.size, bool)  # a core's first job
    heads[0 if starts is None else np.asarray(starts, np.int64)] = True
    # the jobs in runs of one filter tile (a filter tile's pixel runs), a core's first job starting a run
    cut = heads.copy()
    cut[0] = True
    cut[1:] |= fts[1:] != fts[:-1]
    first = np.flatnonzero(cut)
    if np.all((fts[first[1:]] > fts[first[:-1]]) | heads[first[1:]]):  # a core's filter tiles in order, each once
        return _pack_new_runs(fts, heads, first, np.asarray(ft_row_tiles, np.int64),
                              np.asarray(ft_windows, np.int64), D, T, W)
    lengths = np.diff(np.append(first, fts.size)).tolist()
    segs, counts = [], []  # the START of each stretch of jobs and its length
    seg, n_desc, held, n_slots, n_masks = 0, 0, set(), 0, 0
    # plain ints, one step per run of a filter tile: this loop runs for every filter tile of a network
    for f, n, head in zip(fts[first].tolist(), lengths, heads[first].tolist()):
        if head:  # a core's first job
            seg, n_desc, held, n_slots, n_masks = 0, 0, set(), 0, 0
        nrt, nwin = rts[f], wins[f]
        new = f not in held  # the run's first job: the filter tile may be new to the START
        if n_desc + nrt > D or (new and (n_slots + nrt > T or n_masks + nwin > W)):
            seg, n_desc, held, n_slots, n_masks = seg + 1, 0, set(), 0, 0
            new = True
        if new:
            held.add(f)
            n_slots += nrt
            n_masks += nwin
        n_desc += nrt
        segs.append(seg)
        counts.append(1)
        n -= 1
        while n:  # the run's other jobs: the filter tile is held, a job starts a START when its descriptors do not fit
            fit = min(n, (n if n_desc <= D else 0) if nrt == 0 else max(0, (D - n_desc) // nrt))
            counts[-1] += fit
            n_desc += fit * nrt
            n -= fit
            if n:  # a new START holding only this filter tile
                seg, n_desc, held, n_slots, n_masks = seg + 1, nrt, {f}, nrt, nwin
                segs.append(seg)
                counts.append(1)
                n -= 1
    return np.repeat(np.array(segs, np.int64), counts)



def _pack_new_runs(fts, heads, first, ft_row_tiles, ft_windows, D: int, T: int, W: int) -> np.ndarray:
    """:func:`pack_segments` when every run of a filter tile's jobs is new to its core (a core's filter tiles
    increasing), every job at once: the job that ends the START begun at each job (cumulative sums), then the
    STARTs of every core followed from its first job, one START of every core a step.

    ``fts``, ``heads``: filter tile of each job and whether it is its core's first; ``first``: the first job of
    each run (a run of a filter tile's jobs)."""
    J = fts.size
    nrt, nwin = ft_row_tiles[fts], ft_windows[fts]  # a job's descriptors; its run's tile slots and mask windows
    is_first = np.zeros(J, bool)
    is_first[first] = True
    run = np.cumsum(is_first) - 1
    at = np.arange(J)
    # a START begun at job i holds its run's tiles and masks (new to it) and the descriptors of its jobs from i;
    # job k > i ends it when the descriptors overflow, or, as a run's first job, the tile slots or mask windows
    desc = np.cumsum(nrt)
    end = np.maximum(desc.searchsorted(desc - nrt + D, "right"), at + 1)
    first_at = np.append(first, J)
    for per_job, cap in ((nrt, T), (nwin, W)):
        held = np.cumsum(np.where(is_first, per_job, 0))
        end = np.minimum(end, first_at[np.maximum(held[first].searchsorted(held - per_job + cap, "right"), run + 1)])
    head_at = np.flatnonzero(heads)
    core = np.cumsum(heads) - 1
    end = np.minimum(end, np.append(head_at[1:], J)[core])  # a core's jobs only
    begins = np.zeros(J, bool)
    cur = head_at
    while cur.size:  # every core's next START
        begins[cur] = True
        cur = end[cur]
        cur = cur[cur < J]
        cur = cur[~heads[cur]]
    seg = np.cumsum(begins) - 1
    # a core's first job that alone overflows the core's memories opens START 1 (pack_segments' step)
    alone = (nrt[head_at] > min(D, T)) | (nwin[head_at] > W)
    return seg - (seg[head_at] - alone)[core]

def job_work(cell_rows, n_out, pixels, macro, macros: int, *, result_lanes: int = 1) -> np.ndarray:
    """Cycles of every job (filter tile over a pixel run) as the compiler sees them (no input known): (F, L).

    ``cell_rows`` (F, row tiles) are the cell rows each row tile of each
    filter tile uses (0: no such row tile), ``n_out`` (F,) its results per
    pixel, ``pixels`` (L,) the pixel runs. Every bit column of every used cell
    row counts as issued (``in_bits`` each, :mod:`model.cycles`), plus the
    pipeline latency, a round at least ``n_col`` cycles; the results leave in
    :func:`stream_beats` (``result_lanes`` a beat): ``max(ceil(pixels / macros) * sum over row tiles of
    max(in_bits * cell rows + latency, n_col), ceil(pixels / result_lanes) * n_out)``.
    """
    used = np.asarray(cell_rows, np.int64)
    per_round = np.where(used > 0, np.maximum(macro.in_bits * used + pipeline_latency(macro.pipeline),
                                              macro.n_col), 0).sum(-1)
    px = np.asarray(pixels, np.int64)[None, :]
    return np.maximum(-(-px // int(macros)) * per_round[:, None],
                      stream_beats(px, np.asarray(n_out, np.int64)[:, None], result_lanes))


def deal_filter_tiles(work, cores: int) -> np.ndarray:
    """Core of each filter tile of a layer: the longest first, each to the core with the least work so far.

    Longest-processing-time-first list scheduling on the filter tiles' work
    (ties: the lower filter tile first, the lower core): equal work deals the
    filter tiles round-robin in mapping order; unequal work (row tiles of
    groups keeping different row counts) keeps the busiest core within
    ``max(work)`` of the mean instead of leaving whole tiles on one core.
    Returns int64 (F,).
    """
    w = np.asarray(work, np.float64).reshape(-1)
    if w.size and w.min() == w.max() >= 0:  # equal work: round-robin (every filter tile on core 0 when it is 0)
        return np.arange(w.size, dtype=np.int64) % int(cores) if w[0] > 0 else np.zeros(w.size, np.int64)
    out = [0] * w.size
    # (work so far, core) of every core, a heap: its top is the first core with the least work (np.argmin); plain
    # floats (float64 sums as NumPy's): this loop runs for every filter tile
    busy = [(0.0, c) for c in range(int(cores))]
    wl = w.tolist()
    for f in np.argsort(-w, kind="stable").tolist():
        load, c = busy[0]
        out[f] = c
        heapq.heapreplace(busy, (load + wl[f], c))
    return np.array(out, np.int64)


def deal_jobs(work, cores: int) -> np.ndarray:
    """Core of every job (filter tile over a pixel run) of a layer, a compiler choice: int64 (F, L).

    ``work`` (F, L) is :func:`job_work`. Two dealings, the one whose busiest
    core has the least work (ties: the first): whole filter tiles
    (:func:`deal_filter_tiles` on their summed work), and, with at least
    ``cores`` filter tiles and several pixel runs, the jobs in mapping order
    cut into ``cores`` consecutive shares of about equal work (job j to core
    ``floor(cores * (work before j + work_j / 2) / total)``), which splits a
    filter tile's pixel runs over at most the cores its share crosses (each
    fetching its tiles). A core runs its jobs in mapping order: filter tiles
    in order, a filter tile's pixel runs one after another.
    """
    w = np.asarray(work, np.int64)
    F, L = w.shape
    whole = np.repeat(deal_filter_tiles(w.sum(1), cores)[:, None], L, axis=1)
    total = int(w.sum())
    if F < int(cores) or L == 1 or total == 0:
        return whole
    flat = w.reshape(-1)
    split = np.minimum((2 * np.cumsum(flat) - flat) * int(cores) // (2 * total), int(cores) - 1).reshape(F, L)

    def peak(core):
        return np.bincount(core.reshape(-1), weights=flat, minlength=int(cores)).max()

    return split if peak(split) < peak(whole) else whole


def plan_passes(tiles, pixels: int, macro, macros: int, core, name: str = "layer",
                run_pixels: int | None = None) -> PassPlan:
    """The core's passes for a compiled layer's tiles and ``pixels`` output pixels per sample.

    ``run_pixels`` (default ``core.out_pixels``, at most that) is the length
    of a pixel run; the system may choose shorter runs (``sim_bench``: the
    output buffer). A batch of B samples is the plan of ``B * pixels``, the
    samples' pixels one after another (``sim_bench.perf.batch_samples``): a
    pixel run may hold several samples; the core does not know samples.

    Raises
    ------
    PlanError
        When a tile breaks the mapping rules, or a filter tile has more row
        tiles than ``core.max_row_tiles`` or needs more descriptors, tile
        slots or mask windows than the core has.
    """
    run = core.out_pixels if run_pixels is None else int(run_pixels)
    if not 1 <= run <= core.out_pixels:
        raise PlanError(f"{name}: run_pixels must be 1 .. core.out_pixels={core.out_pixels}, got {run_pixels!r}")
    fts = []
    for g, ct, idx in filter_tiles_of(tiles):
        where = f"{name}: filter tile (group {g}, column tile {ct})"
        info = []
        for i in idx:
            rows = kept_rows(tiles[i], macro.n_comp, f"{where}, tile {i}")
            info.append((i, rows, np.unique(rows // macro.n_comp), _n_out(tiles[i], f"{where}, tile {i}")))
        check_filter_tile(len(idx), sum(w.size for _, _, w, _ in info), core, where)
        fts.append(info)
    jobs = [(f, p0, min(run, int(pixels) - p0)) for f in range(len(fts)) for p0 in range(0, int(pixels), run)]
    segs = pack_segments([f for f, _, _ in jobs], [len(i) for i in fts],
                         [sum(w.size for _, _, w, _ in i) for i in fts], core)
    cols = {k: [] for k in ("tile", "rows", "windows", "n_out", "p0", "pixels", "first", "last", "segment")}
    for (f, p0, npx), seg in zip(jobs, segs):
        info = fts[f]
        for rt, (i, rows, wins, n_out) in enumerate(info):
            for k, v in (("tile", i), ("rows", rows), ("windows", wins), ("n_out", n_out), ("p0", p0),
                         ("pixels", npx), ("first", rt == 0), ("last", rt == len(info) - 1), ("segment", seg)):
                cols[k].append(v)
    arr = {k: np.array(v, bool if k in ("first", "last") else np.int64)
           for k, v in cols.items() if k not in ("rows", "windows")}
    n_kept = np.array([r.size for r in cols["rows"]], np.int64)
    n_rows_used = -(-n_kept // macro.n_comp)
    n = n_kept.size
    flat = np.concatenate(cols["rows"]) if n else np.zeros(0, np.int64)
    deliver = delivery_cycles(flat, np.repeat(np.arange(n), n_kept), n, macro.n_comp, macro.lanes)
    return PassPlan(rows=cols["rows"], windows=cols["windows"], n_kept=n_kept, n_rows_used=n_rows_used,
                    load=load_cycles(n_rows_used), deliver=deliver, **arr)


# ----------------------------------------------------------------------------- rounds and passes

def pixel_cycles(bits: np.ndarray, tiles, macro) -> np.ndarray:
    """Macro cycles (popcount(OR) + pipeline latency) of every pixel on every tile: int64 (P, tiles).

    ``bits`` are the 8-bit input patterns (P, K) (two's complement in signed
    mode); the cycle model is :mod:`model.cycles` (docs/design.md §7).
    """
    keys, sets, which = {}, [], []
    for t in tiles:
        rows = t.rows.reshape(-1)
        rows = rows[rows >= 0]
        k = rows.tobytes()
        if k not in keys:
            keys[k] = len(sets)
            sets.append(rows)
        which.append(keys[k])
    pc = cell_row_popcounts_t(np.asarray(bits, np.uint8), sets, macro.n_comp).sum(1, dtype=np.int64)  # (sets, P)
    return pc.T[:, which] + pipeline_latency(macro.pipeline)


def round_compute(vec_cycles, M: int) -> np.ndarray:
    """Compute cycles of each round: the slowest of its ``M`` macros.

    ``vec_cycles`` (..., P) are per-vector macro cycles (compute + pipeline
    latency, 0 past the pixels); returns (..., ceil(P / M)).
    """
    v = np.asarray(vec_cycles)
    P = v.shape[-1]
    R = -(-P // M)
    if R * M != P:
        pad = np.zeros(v.shape[:-1] + (R * M - P,), v.dtype)
        v = np.concatenate([v, pad], axis=-1)
    return v.reshape(v.shape[:-1] + (R, M)).max(-1)


def round_work(vec_cycles, M: int) -> np.ndarray:
    """Macro cycles of each round summed over its macros: (..., ceil(P / M)), as :func:`round_compute` the max."""
    v = np.asarray(vec_cycles)
    if not (v.dtype.kind in "ib" or (v.dtype.kind == "u" and v.dtype.itemsize < 8)):  # others: as int64 first
        v = v.astype(np.int64)
    P = v.shape[-1]
    R = -(-P // M)
    if R * M != P:
        v = np.concatenate([v, np.zeros(v.shape[:-1] + (R * M - P,), v.dtype)], axis=-1)
    return v.reshape(v.shape[:-1] + (R, M)).sum(-1, dtype=np.int64)


def round_sizes(pixels, M: int, n_rounds: int) -> np.ndarray:
    """Vectors of each round (``M_r``), 0 past the last: int64 (..., n_rounds) for ``pixels`` (...)."""
    p = np.asarray(pixels, np.int64)[..., None]
    return np.minimum(np.maximum(p - np.arange(n_rounds) * int(M), 0), int(M))


def round_delivery(deliver, m_r, in_windows: int = 1) -> np.ndarray:
    """Switch cycles to deliver each round's vectors: ``ceil(M_r / in_windows) * deliver``, (..., R).

    ``in_windows`` (``core.in_windows``) switches and row packers deliver
    that many macros' vectors at once, in lock step (all vectors of a pass
    have the same masks); a round's ``M_r`` vectors go in ``ceil(M_r /
    in_windows)`` groups, one after another. ``deliver`` (...) broadcasts
    against ``m_r``'s leading axes.
    """
    W = int(in_windows)
    groups = -(-np.asarray(m_r, np.int64) // W)
    return groups * np.asarray(deliver, np.int64)[..., None]


def first_round_delivery(deliver, m_r, in_windows: int = 1) -> np.ndarray:
    """Cycles before the first round may start for its inputs: ``ceil(M_0 / in_windows) * deliver + 1``."""
    m_r = np.asarray(m_r, np.int64)
    return round_delivery(deliver, m_r[..., :1], in_windows)[..., 0] + CORE_LATENCY["deliver"]


def _round_steps(deliver, C, m_r, n_col: int, in_windows: int):
    """What :func:`pass_after` and :func:`pass_after_terms` read of a pass's rounds: ``C`` and ``m_r`` as int64,
    the rounds run (``m_r > 0``, as 0 / 1 int64), ``max(C_r-1, n_col)`` (the previous round's compute and floor)
    and ``B_r - B_r-1`` of rounds r >= 1: ``max(C_r-1, n_col, ceil(M_r / in_windows) * deliver + 2)``."""
    C = np.asarray(C, np.int64)
    m_r = np.asarray(m_r, np.int64)
    dl = round_delivery(deliver, m_r[..., 1:], in_windows)  # + 2: the rounds' delivery until round r >= 1 starts
    dl += CORE_LATENCY["deliver"] + CORE_LATENCY["barrier"]
    prev = np.maximum(C[..., :-1], n_col)
    return C, m_r, (m_r > 0).astype(np.int64), prev, np.maximum(prev, dl)


def _ran_sum(a, ran) -> np.ndarray:
    """``np.where(ran, a, 0).sum(-1)`` of int64 ``a`` and the 0 / 1 int64 ``ran`` broadcast against it, in one
    pass (no masked copy): the rounds' sum over the rounds run."""
    return np.einsum("...r,...r->...", a, ran)


def pass_after(deliver, C, m_r, stream, n_col: int, *, in_windows: int = 1) -> np.ndarray:
    """Cycles of a pass after its first round's start cycle (the formula in the module docstring).

    ``sum over r >= 1 of (B_r - B_r-1) + max(C_(R-1), n_col) + n_col + stream``;
    it does not depend on the tile load. Arguments as :func:`pass_cycles_rounds`.
    """
    return _pass_after(_round_steps(deliver, C, m_r, n_col, in_windows), stream, n_col)


def _pass_after(steps, stream, n_col: int) -> np.ndarray:
    C, _, ran, _, step = steps
    # C of the last round (round 0 if none)
    full = np.broadcast_shapes(C.shape, ran.shape)
    if full[-1]:
        last = np.broadcast_to(np.maximum(ran.sum(-1) - 1, 0), full[:-1])[..., None]
        c_last = np.take_along_axis(np.broadcast_to(C, full), last, -1)[..., 0]
    else:
        c_last = np.zeros(full[:-1], np.int64)
    return _ran_sum(step, ran[..., 1:]) + np.maximum(c_last, n_col) + n_col + np.asarray(stream, np.int64)


#: The terms a pass's cycles split into (:func:`pass_terms`), in report order; they add up to the pass.
PASS_TERMS = ("compute", "lockstep", "round_floor", "delivery", "load", "drain", "stream", "control")


def pass_after_terms(deliver, C, m_r, stream, n_col: int, work, *, in_windows: int = 1) -> dict:
    """:func:`pass_after` split into terms that add up to it exactly (int64 arrays, shape of ``deliver``).

    Per round r (``C_r`` its slowest macro, ``W_r`` its macros' cycles summed,
    :func:`round_work`):

    * ``compute`` = ``ceil(W_r / M_r)``, the round's mean macro (compute +
      pipeline latency, rounded up); ``lockstep`` = ``C_r - compute``: the
      lock-step padding, rounds wait for their slowest macro;
    * ``round_floor`` = ``max(0, n_col - C_r)``: rounds start at least
      ``n_col`` cycles apart (the drain into the free output bank);
    * ``delivery`` (rounds r >= 1) = ``max(0, ceil(M_r / in_windows) * deliver + 2 - max(C_r-1, n_col))``:
      the switch still delivering the next round after the compute and the floor;
    * ``drain`` = ``n_col`` (the last round's drain); ``stream`` = ``stream``.

    ``work`` (..., R) is :func:`round_work`; the other arguments as :func:`pass_after`.
    """
    return _pass_after_terms(_round_steps(deliver, C, m_r, n_col, in_windows), deliver, stream, n_col, work)


def pass_after_and_terms(deliver, C, m_r, stream, n_col: int, work, *, in_windows: int = 1):
    """``(pass_after(...), pass_after_terms(...))`` of the same passes, what they both read of the rounds once."""
    steps = _round_steps(deliver, C, m_r, n_col, in_windows)
    return _pass_after(steps, stream, n_col), _pass_after_terms(steps, deliver, stream, n_col, work)


def _round_means(work, m_r) -> np.ndarray:
    """``ceil(W_r / M_r)`` of every round run (int64, the shape of ``work``; any value where ``M_r`` is 0).

    Most rounds are whole (``M_r`` its largest value): they are divided by that one number, several times faster
    than an element-wise divisor, and the rounds run with fewer vectors are divided again, each by its own."""
    w = np.asarray(work, np.int64)
    w = np.broadcast_to(w, np.broadcast_shapes(w.shape, m_r.shape))
    whole = max(int(m_r.max(initial=1)), 1)
    mean = w + (whole - 1)  # ceil(w / whole) = floor((w + whole - 1) / whole)
    if whole & (whole - 1) == 0:  # a power of two: a shift
        np.right_shift(mean, whole.bit_length() - 1, out=mean)
    else:
        np.floor_divide(mean, whole, out=mean)
    fewer = (m_r > 0) & (m_r != whole)
    if fewer.any():
        at = np.nonzero(np.broadcast_to(fewer, mean.shape))
        mean[at] = -(-w[at] // np.broadcast_to(m_r, mean.shape)[at])
    return mean


def _pass_after_terms(steps, deliver, stream, n_col: int, work) -> dict:
    C, m_r, ran, prev, step = steps
    compute = _ran_sum(_round_means(work, m_r), ran)
    c_ran = _ran_sum(C, ran)
    # round_floor: max(0, n_col - C_r) = max(C_r, n_col) - C_r, that of every round but the last read from prev
    ran_last = ran[..., -1] if ran.shape[-1] else np.zeros(ran.shape[:-1], np.int64)
    c_last = C[..., -1] if C.shape[-1] else np.zeros(C.shape[:-1], np.int64)
    floor = _ran_sum(prev, ran[..., :-1]) + ran_last * np.maximum(c_last, n_col) - c_ran
    shape = np.broadcast_shapes(np.shape(deliver), C.shape[:-1], np.shape(stream))
    # delivery: max(0, ceil(M_r / in_windows) * deliver + 2 - max(C_r-1, n_col)) = step_r - prev_r-1
    out = {"compute": compute, "lockstep": c_ran - compute, "round_floor": floor,
           "delivery": _ran_sum(step, ran[..., 1:]) - _ran_sum(prev, ran[..., 1:]),
           "drain": np.full(shape, n_col, np.int64), "stream": np.asarray(stream, np.int64)}
    # fresh int64 arrays of the full shape: the sums as they are, the caller's stream copied
    return {k: v if k != "stream" and v.shape == shape and v.dtype == np.int64 else
            np.broadcast_to(v, shape).astype(np.int64) for k, v in out.items()}


def prefetch_overlap(after) -> np.ndarray:
    """Load cycles of the next pass that a pass hides (``tile_banks = 2``): ``after + 3 - 2``.

    The next pass's tile loads into the other bank from the pass's first
    round start: its descriptor is read in that cycle, its first tile row the
    cycle after (``CORE_LATENCY["prefetch"]`` = 2), and one row is written
    per cycle from then on, through the next pass's DECODE cycle. These are
    ``pass - B_0 - 2 = after + 1`` cycles.
    """
    return np.asarray(after, np.int64) + CORE_LATENCY["pass"] - CORE_LATENCY["prefetch"]


def exposed_load(load, overlap_prev, prefetched) -> np.ndarray:
    """Load cycles a pass still waits for: ``max(0, load - overlap_prev)`` where ``prefetched``, else ``load``."""
    load = np.asarray(load, np.int64)
    return np.where(prefetched, np.maximum(load - np.asarray(overlap_prev, np.int64), 0), load)


def pass_cycles_rounds(load, deliver, C, m_r, stream, n_col: int, *, in_windows: int = 1) -> np.ndarray:
    """Cycles of passes from their rounds (the formula in the module docstring), broadcast over leading axes.

    Parameters
    ----------
    load, deliver, stream : int arrays (...)
        Tile load cycles the pass waits for (:func:`exposed_load`; the whole
        load with one tile bank), switch cycles per vector, result beats
        streamed after the pass (:func:`stream_beats` for a last pass, else 0).
    C : int array (..., R)
        Compute cycles of each round (:func:`round_compute`); past the last round ignored.
    m_r : int array (..., R)
        Vectors the switch delivers in each round (:func:`round_sizes`), 0 past the last; at least one round.
    n_col : int
    in_windows : int
        ``core.in_windows``: vectors the switches deliver at once (:func:`round_delivery`).

    Returns
    -------
    int64 array (...)
    """
    b0 = np.maximum(np.asarray(load, np.int64), first_round_delivery(deliver, m_r, in_windows))
    return CORE_LATENCY["pass"] + b0 + pass_after(deliver, C, m_r, stream, n_col, in_windows=in_windows)


def pass_terms(load, deliver, C, m_r, stream, n_col: int, work, *, in_windows: int = 1) -> dict:
    """:func:`pass_cycles_rounds` split into :data:`PASS_TERMS` that add up to it exactly (int64 arrays).

    :func:`pass_after_terms`, plus ``B_0 = max(load, fill)``, ``fill = ceil(M_0 / in_windows) * deliver + 1``:
    ``delivery`` gains the first round's ``fill``, ``load``
    is the exposed load beyond it, ``max(0, load - fill)``; ``control`` is the
    pass's fixed ``CORE_LATENCY["pass"]`` cycles. ``work`` is :func:`round_work`.
    """
    t = pass_after_terms(deliver, C, m_r, stream, n_col, work, in_windows=in_windows)
    fill = first_round_delivery(deliver, m_r, in_windows)
    b0 = np.maximum(np.asarray(load, np.int64), fill)
    t["delivery"] = t["delivery"] + fill
    t["load"] = np.broadcast_to(b0 - fill, t["drain"].shape).astype(np.int64)
    t["control"] = np.full(t["drain"].shape, CORE_LATENCY["pass"], np.int64)
    return {k: t[k] for k in PASS_TERMS}


def pass_cycles(load, deliver, compute, pixels, stream, macros: int, n_col: int, *,
                in_windows: int = 1) -> np.ndarray:
    """Cycles of each pass from its pixels' macro cycles, vectorised over passes (one tile bank: whole loads).

    Parameters
    ----------
    load, deliver, pixels, stream : int arrays (n,)
    compute : int array (..., n, max pixels)
        Macro cycles of each pixel of each pass, 0 past its pixels; leading
        axes (e.g. samples) broadcast.
    macros : int
    n_col : int
    in_windows : int
        ``core.in_windows`` (:func:`round_delivery`).

    Returns
    -------
    int64 array (..., n)
    """
    C = round_compute(np.asarray(compute, np.int64), int(macros))
    m_r = round_sizes(pixels, macros, C.shape[-1])
    return pass_cycles_rounds(load, deliver, C, m_r, stream, n_col, in_windows=in_windows)


def prefetched_passes(segment, tile_banks: int) -> np.ndarray:
    """Passes whose tile the previous pass loads (``tile_banks = 2``): all but the first of each START."""
    seg = np.asarray(segment, np.int64)
    out = np.zeros(seg.size, bool)
    if int(tile_banks) == 2:
        out[1:] = seg[1:] == seg[:-1]
    return out


def job_cycles(cycles, load, d0, overlap, stream, same_start, *, tile_banks: int = 1,
               out_banks: int = 1) -> np.ndarray:
    """Cycles of a core's jobs, in execution order, with their result streams (the module docstring).

    A *job* is one filter tile over one pixel run: its passes (row tiles)
    from its ``first`` to its ``last``, whose results stream out after the
    last pass. Within a job no pass streams or waits for a stream, so a job
    is summed once (``cycles``) and only its first pass's load and its
    stream depend on the jobs around it.

    Parameters
    ----------
    cycles : int array (..., J)
        Sum of the job's :func:`pass_cycles_rounds` with nothing streamed
        (``stream`` = 0), the first pass waiting for its whole ``load``, the
        others for their :func:`exposed_load` (tile banks within the job).
    load, d0 : int arrays (..., J)
        Whole tile load and :func:`first_round_delivery` of the job's first pass.
    overlap : int array (..., J)
        :func:`prefetch_overlap` of the job's last pass with nothing streamed.
    stream : int array (J,)
        The job's result beats, :func:`stream_beats`.
    same_start : bool array (J,)
        The job runs in the same START as the job before it.
    tile_banks, out_banks : int
        ``core.tile_banks`` (2: a job's first tile loads during the job
        before it in the START) and ``core.out_banks``.

    Returns
    -------
    int64 array (..., J)
        ``cycles`` - hidden load + exposed streaming. With ``out_banks = 1``
        the exposed streaming is the job's own ``stream``. With 2 it is
        ``wait_j = max(0, stream_j-1 - work_j)`` (``work_j`` the job's
        cycles, hidden load subtracted; 0 for a START's first job), plus
        the whole ``stream_j`` for a START's last job. The hidden load of job
        j (``tile_banks = 2``, same START) is ``max(load_j, d0_j) -
        max(max(0, load_j - overlap_j-1 - x_j-1), d0_j)`` with ``x`` the
        exposed streaming of job j-1's last pass (its stream or its wait).
    """
    cycles, load, d0, overlap = (np.asarray(a, np.int64) for a in (cycles, load, d0, overlap))
    stream = np.asarray(stream, np.int64)
    same = np.asarray(same_start, bool)
    pre = same & (int(tile_banks) == 2)
    whole = np.maximum(load, d0)

    def work(j, hide):  # job j's cycles when the pass before its first hides ``hide`` load cycles
        return cycles[..., j] - np.where(pre[j], whole[..., j] - np.maximum(exposed_load(
            load[..., j], hide, True), d0[..., j]), 0)

    J = stream.size
    if int(out_banks) == 1:
        hide = np.concatenate([np.zeros_like(overlap[..., :1]), (overlap + stream)[..., :-1]], axis=-1)
        return work(slice(None), hide) + stream
    out = np.zeros(cycles.shape, np.int64)
    hide = np.zeros(cycles.shape[:-1], np.int64)
    for j in range(J):
        w = work(j, hide)
        wait = np.maximum(stream[j - 1] - w, 0) if j and same[j] else np.zeros_like(w)
        out[..., j] = w + wait
        hide = overlap[..., j] + wait
    ends = np.append(~same[1:], True)  # a START's last job: its results stream out before DONE
    return out + np.where(ends, stream, 0)


def job_terms(cycles, load, d0, overlap, stream, same_start, *, tile_banks: int = 1, out_banks: int = 1):
    """:func:`job_cycles` split: ``(hidden, exposed)``, int64 (..., J) each, ``job_cycles = cycles - hidden + exposed``.

    ``hidden`` is the load of the job's first pass that the job before it
    hides (``tile_banks = 2``), ``exposed`` its exposed streaming (its
    ``stream``, or with ``out_banks = 2`` its wait plus a START's last
    stream). Arguments as :func:`job_cycles`, whose steps this repeats (the
    sum test holds the two together).
    """
    cycles, load, d0, overlap = (np.asarray(a, np.int64) for a in (cycles, load, d0, overlap))
    stream = np.asarray(stream, np.int64)
    same = np.asarray(same_start, bool)
    pre = same & (int(tile_banks) == 2)
    whole = np.maximum(load, d0)

    def hidden(j, hide):
        return np.where(pre[j], whole[..., j] - np.maximum(exposed_load(load[..., j], hide, True), d0[..., j]), 0)

    if int(out_banks) == 1:
        hide = np.concatenate([np.zeros_like(overlap[..., :1]), (overlap + stream)[..., :-1]], axis=-1)
        return hidden(slice(None), hide).astype(np.int64), np.broadcast_to(stream, cycles.shape).astype(np.int64)
    hid = np.zeros(cycles.shape, np.int64)
    exp = np.zeros(cycles.shape, np.int64)
    hide = np.zeros(cycles.shape[:-1], np.int64)
    for j in range(stream.size):
        hid[..., j] = hidden(j, hide)
        wait = np.maximum(stream[j - 1] - (cycles[..., j] - hid[..., j]), 0) if j and same[j] else 0
        exp[..., j] = wait
        hide = overlap[..., j] + wait
    ends = np.append(~same[1:], True)
    return hid, exp + np.where(ends, stream, 0)


@dataclass(frozen=True)
class _Passes:
    """The per-pass and per-job quantities of a non-empty plan, computed once for :func:`layer_cycles` and
    :func:`layer_cycle_terms`: ``comp`` (S, n, width) pixel cycles, ``C``/``m_r`` rounds, ``d0`` first-round
    deliveries, ``load`` exposed loads, ``per_job`` cycles before the job's streaming, ``heads``/``tails``
    first/last pass of each job, ``seg`` each job's START and ``job_args`` the rest of :func:`job_cycles`'s
    (and :func:`job_terms`') positional arguments."""

    comp: np.ndarray
    C: np.ndarray
    m_r: np.ndarray
    d0: np.ndarray
    load: np.ndarray
    heads: np.ndarray
    per_job: np.ndarray
    seg: np.ndarray
    job_args: tuple


def _passes(plan: PassPlan, pix: np.ndarray, macro, macros: int, tile_banks: int, in_windows: int,
            result_lanes: int = 1) -> _Passes:
    S, n = pix.shape[0], plan.tile.size
    width = int(plan.pixels.max())
    comp = np.zeros((S, n, width), np.int64)
    for i in range(n):
        p0, npx = int(plan.p0[i]), int(plan.pixels[i])
        comp[:, i, :npx] = pix[:, p0:p0 + npx, plan.tile[i]]
    C = round_compute(comp, int(macros))
    m_r = round_sizes(plan.pixels, macros, C.shape[-1])
    after = pass_after(plan.deliver, C, m_r, 0, macro.n_col, in_windows=in_windows)  # (S, n): nothing streamed
    overlap = prefetch_overlap(after)
    prev = np.concatenate([np.zeros((S, 1), np.int64), overlap[:, :-1]], axis=1)
    d0 = np.broadcast_to(first_round_delivery(plan.deliver, m_r, in_windows), (S, n))
    load = exposed_load(plan.load, prev, prefetched_passes(plan.segment, tile_banks) & ~plan.first)
    per_pass = CORE_LATENCY["pass"] + np.maximum(load, d0) + after
    heads, tails = np.nonzero(plan.first)[0], np.nonzero(plan.last)[0]
    if heads.size != tails.size or heads[0] != 0 or np.any(tails != np.append(heads[1:], n) - 1):
        raise PlanError("plan: every job (filter tile over a pixel run) must run from its first to its last pass")
    seg = plan.segment[heads]
    job_args = (np.broadcast_to(plan.load[heads], (S, heads.size)), d0[:, heads], overlap[:, tails],
                stream_beats(plan.pixels[tails], plan.n_out[tails], result_lanes),
                np.append(False, seg[1:] == seg[:-1]))
    return _Passes(comp, C, m_r, d0, load, heads, np.add.reduceat(per_pass, heads, axis=-1), seg, job_args)


def layer_cycles(plan: PassPlan, pix: np.ndarray, macro, macros: int, tile_banks: int = 1,
                 out_banks: int = 1, *, in_windows: int = 1, result_lanes: int = 1) -> np.ndarray:
    """Cycles of every START of a layer's plan for each sample: int64 (S, segments).

    ``pix`` is :func:`pixel_cycles` of each sample, (S, P, tiles);
    ``tile_banks`` is ``core.tile_banks`` (2: each pass but a START's first
    waits only for :func:`exposed_load`), ``out_banks`` is
    ``core.out_banks`` (2: a job's results stream while the next job
    computes, :func:`job_cycles`), ``in_windows`` is ``core.in_windows``
    (vectors delivered at once, :func:`round_delivery`), ``result_lanes`` is
    ``core.result_lanes`` (results a stream beat, :func:`stream_beats`).
    """
    pix = np.asarray(pix, np.int64)
    S = pix.shape[0]
    segs = np.zeros((S, plan.n_segments), np.int64)
    if plan.tile.size == 0:
        return segs + CORE_LATENCY["run"]
    p = _passes(plan, pix, macro, macros, tile_banks, in_windows, result_lanes)
    jobs = job_cycles(p.per_job, *p.job_args, tile_banks=tile_banks, out_banks=out_banks)
    for s in range(plan.n_segments):
        segs[:, s] = jobs[:, p.seg == s].sum(-1) + CORE_LATENCY["run"]
    return segs


def layer_cycle_terms(plan: PassPlan, pix: np.ndarray, macro, macros: int, tile_banks: int = 1,
                      out_banks: int = 1, *, in_windows: int = 1, result_lanes: int = 1) -> dict:
    """:func:`layer_cycles` split into :data:`PASS_TERMS`: term -> int64 (S, segments), adding up to it exactly.

    It shares :func:`layer_cycles`'s pass and job quantities (``_passes``; the sum test holds the two
    together): each pass splits by :func:`pass_terms` (nothing streamed; a
    job's first pass waits for its whole load); per job (:func:`job_terms`)
    the load the job before it hides leaves ``load``, and the exposed
    streaming is ``stream``; a START's ``CORE_LATENCY["run"]`` goes to ``control``.
    """
    pix = np.asarray(pix, np.int64)
    S = pix.shape[0]
    if plan.tile.size == 0:
        zero = np.zeros((S, plan.n_segments), np.int64)
        return {k: zero + (CORE_LATENCY["run"] if k == "control" else 0) for k in PASS_TERMS}
    p = _passes(plan, pix, macro, macros, tile_banks, in_windows, result_lanes)
    t = pass_terms(p.load, plan.deliver, p.C, p.m_r, 0, macro.n_col, round_work(p.comp, int(macros)),
                   in_windows=in_windows)
    hidden, exposed = job_terms(p.per_job, *p.job_args, tile_banks=tile_banks, out_banks=out_banks)
    jobs = {k: np.add.reduceat(v, p.heads, axis=-1) for k, v in t.items()}
    jobs["load"] = jobs["load"] - hidden
    jobs["stream"] = jobs["stream"] + exposed
    out = {}
    for k, v in jobs.items():  # per START, as layer_cycles sums its jobs
        out[k] = np.zeros((S, plan.n_segments), np.int64)
        for s in range(plan.n_segments):
            out[k][:, s] = v[:, p.seg == s].sum(-1) + (CORE_LATENCY["run"] if k == "control" else 0)
    return out


def core_layer_cycles(compiled, bits, macros: int, core, name: str = "layer",
                      run_pixels: int | None = None) -> np.ndarray:
    """Cycles of a compiled layer on one PIM core, per sample and per START.

    Parameters
    ----------
    compiled : model.compile.CompiledLayer
    bits : uint8 (S, P, K)
        Input bit patterns (two's complement in signed mode) of each sample's
        P output pixels (im2col rows).
    macros : int
        Macros per core (``system.macros_per_core``).
    core : CoreConfig
    run_pixels : int, optional
        Pixel run length (default ``core.out_pixels``).

    Returns
    -------
    int64 array (S, segments)
        Sum over the last axis for a sample's total.
    """
    bits = np.asarray(bits, np.uint8)
    S, P, K = bits.shape
    plan = plan_passes(compiled.tiles, P, compiled.macro, macros, core, name, run_pixels)
    pix = pixel_cycles(bits.reshape(S * P, K), compiled.tiles, compiled.macro).reshape(S, P, -1)
    return layer_cycles(plan, pix, compiled.macro, macros, core.tile_banks, core.out_banks,
                        in_windows=core.in_windows, result_lanes=core.result_lanes)

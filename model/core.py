"""The PIM core's program and its golden twin (docs/design.md §11).

:func:`compile_program` turns a compiled layer into the core's program: the
loop nest of the paper's Sec. V-D (filter tiles, then runs of output pixels
that fit the output register file, then row tiles) as descriptors, one per
*pass* (a row tile over a run of pixels), with the tiles, column maps and
masks they read. A program is one or more *segments*; each fits the core's
memories and runs with one START (a layer that fits runs with one START).

* :func:`bus_writes` - the AXI4-Lite writes that load a segment (tile store,
  column maps, masks, descriptors, ``LAYER``), before its START;
* :func:`input_windows` - the input stream of one START: for each pass, for
  each of its pixels, the pass's windows of the im2col vector;
* :func:`run_core` - the integer twin of the RTL: every result beat of every
  START, the assembled ``(P, N)`` outputs, and the cycles
  (:mod:`model.core_timing`).

Pure NumPy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dbpim.model.compile import CompiledLayer, Tile, tile_digit_values
from dbpim.model.config import CoreConfig, HwConfig, MacroConfig
from dbpim.model.core_timing import PassPlan, PlanError, layer_cycles, pixel_cycles, plan_passes
from dbpim.model.derived import Derived
from dbpim.model.spec import CORE_REG, entry_words, input_bits, map_entry_fields, mask_entry_fields, tile_entry_fields

__all__ = ["CoreParams", "Pass", "Segment", "CoreProgram", "CoreResult", "PlanError", "compile_program",
           "bus_writes", "input_windows", "result_order", "run_core", "assemble"]


@dataclass(frozen=True)
class CoreParams:
    """What the program compiler needs of a core: its macro, its macro count and its memories."""

    macro: MacroConfig
    macros: int
    core: CoreConfig

    def __post_init__(self):
        if self.macros % self.core.in_windows:
            raise ValueError(f"core.in_windows: must divide the macros per core ({self.macros}), "
                             f"got {self.core.in_windows}")
        if self.macros % self.core.result_lanes:
            raise ValueError(f"core.result_lanes: must divide the macros per core ({self.macros}), "
                             f"got {self.core.result_lanes}")

    @classmethod
    def from_config(cls, hw: HwConfig) -> "CoreParams":
        return cls(macro=hw.macro, macros=hw.system.macros_per_core, core=hw.core)

    @property
    def derived(self) -> Derived:
        """Widths and the register map, computed once (:class:`model.derived.Derived`, the RTL's)."""
        return Derived.of(self)

    @property
    def map(self):
        """The register map (:func:`model.spec.core_map`)."""
        return self.derived.map

    @property
    def psum_width(self) -> int:
        return self.derived.psum_bits


@dataclass
class Pass:
    """One descriptor: a row tile of a filter tile over pixels ``p0 .. p0 + pixels - 1``.

    ``tile`` indexes ``CompiledLayer.tiles``; ``slot`` is its tile store slot
    in the segment; its masks are the segment's mask words ``mask_base ..
    mask_base + n_win - 1``, one for each of ``windows`` (the windows of the
    im2col vector holding a kept row of the tile).
    """

    tile: int
    slot: int
    mask_base: int
    windows: np.ndarray
    n_kept: int
    p0: int
    pixels: int
    n_out: int
    first: bool
    last: bool

    @property
    def n_win(self) -> int:
        return int(self.windows.size)


@dataclass
class Segment:
    """Passes that run with one START, and the memory contents they read."""

    passes: list = field(default_factory=list)
    slots: list = field(default_factory=list)      # tile index held by each tile store slot
    masks: list = field(default_factory=list)      # mask words, n_comp bools each
    mask_bases: dict = field(default_factory=dict)  # tile index -> mask_base


@dataclass
class CoreProgram:
    """A layer's program on one core: segments over the ``P`` pixels of one sample, and its plan."""

    params: CoreParams
    compiled: CompiledLayer
    pixels: int
    signed: bool
    segments: list
    plan: PassPlan


@dataclass
class CoreResult:
    """Output of :func:`run_core` for one sample.

    Attributes
    ----------
    beats : list of ndarray of int64
        The result stream of each segment's START, in order.
    out : ndarray of int64, shape (P, N)
        The results placed at (pixel, output channel); 0 for filters no tile holds.
    cycles : ndarray of int64
        Cycles of each segment's START (``CYCLES`` register).
    """

    beats: list
    out: np.ndarray
    cycles: np.ndarray

    @property
    def total_cycles(self) -> int:
        return int(self.cycles.sum())


def _masks(rows: np.ndarray, windows: np.ndarray, n_comp: int) -> list:
    """Masks of ``windows``: bit c of window w = row ``w * n_comp + c`` is one of ``rows``."""
    masks = np.zeros((windows.size, n_comp), bool)
    masks[np.searchsorted(windows, rows // n_comp), rows % n_comp] = True
    return list(masks)


def compile_program(compiled: CompiledLayer, pixels: int, params: CoreParams, signed: bool = False,
                    name: str = "layer", run_pixels: int | None = None) -> CoreProgram:
    """The core's program for a compiled layer with ``pixels`` output pixels per sample.

    ``run_pixels`` is the length of a pixel run (default: the output register
    file, ``core.out_pixels``; the system may ask for shorter ones).

    The passes and segments are :func:`model.core_timing.plan_passes` of the
    layer's tiles; each segment gets the tiles (one tile store slot each),
    masks and descriptors its passes read.

    Raises
    ------
    PlanError
        One line naming the layer and the limit when a filter tile cannot fit
        the core, or when the tiles do not follow docs/design.md §6.
    """
    m = params.macro
    if compiled.macro != m:
        raise PlanError(f"{name}: compiled for {compiled.macro.to_dict()}, the core's macro is {m.to_dict()}")
    if not isinstance(pixels, (int, np.integer)) or pixels < 1:
        raise PlanError(f"{name}: pixels must be a positive integer, got {pixels!r}")
    plan = plan_passes(compiled.tiles, int(pixels), m, params.macros, params.core, name, run_pixels)
    segments = [Segment() for _ in range(plan.n_segments)]
    for k in range(plan.tile.size):
        i = int(plan.tile[k])
        seg = segments[int(plan.segment[k])]
        if i not in seg.mask_bases:
            seg.mask_bases[i] = len(seg.masks)
            seg.masks.extend(_masks(plan.rows[k], plan.windows[k], m.n_comp))
            seg.slots.append(i)
        seg.passes.append(Pass(tile=i, slot=seg.slots.index(i), mask_base=seg.mask_bases[i],
                               windows=plan.windows[k], n_kept=int(plan.n_kept[k]), p0=int(plan.p0[k]),
                               pixels=int(plan.pixels[k]), n_out=int(plan.n_out[k]), first=bool(plan.first[k]),
                               last=bool(plan.last[k])))
    return CoreProgram(params=params, compiled=compiled, pixels=int(pixels), signed=bool(signed), segments=segments,
                       plan=plan)


# --------------------------------------------------------------------------- what the host sends

def bus_writes(program: CoreProgram, segment: Segment) -> list[tuple[int, int]]:
    """(byte address, 32-bit word) AXI4-Lite writes loading ``segment``, before its START.

    Tile store entries of the used cell rows only (rows past ``n_rows_used``
    are never read), the column maps, the masks, the descriptors and
    ``LAYER`` (descriptor count, signed inputs).
    """
    m = program.params.macro
    cmap = program.params.map
    desc, mask, colmap, tile = (cmap.regions[k] for k in ("desc", "mask", "map", "tile"))
    out = []

    def put(region, entry, words):
        out.extend((region.address(entry, k), w) for k, w in enumerate(words))

    tf, mf = tile_entry_fields(m.n_comp, m.n_col), map_entry_fields(m.n_col)
    for slot, i in enumerate(segment.slots):
        t = program.compiled.tiles[i]
        for r in range(t.n_rows_used):
            put(tile, slot * m.n_row + r, entry_words(tf, {"cells": t.cells[r], "idx": t.idx[r], "sign": t.sign[r]}))
        used = t.col_filter >= 0
        put(colmap, slot, entry_words(mf, {"slot": np.where(used, t.col_filter, 0), "used": used.astype(int)}))
    kf = mask_entry_fields(m.n_comp)
    for k, bits in enumerate(segment.masks):
        put(mask, k, entry_words(kf, {"mask": sum(int(b) << j for j, b in enumerate(bits))}))
    for k, p in enumerate(segment.passes):
        put(desc, k, entry_words(desc.fields, {"tile": p.slot, "mask_base": p.mask_base, "n_win": p.n_win,
                                              "n_kept": p.n_kept, "pixels": p.pixels, "n_out": p.n_out,
                                              "first": int(p.first), "last": int(p.last)}))
    out.append((cmap.regs["LAYER"], CORE_REG["LAYER"].value(N_DESC=len(segment.passes), SIGNED=int(program.signed))))
    return out


def _padded_bits(program: CoreProgram, x) -> np.ndarray:
    """One sample's im2col inputs as 8-bit patterns, zero-padded to whole windows: (P, windows, n_comp)."""
    n_comp = program.params.macro.n_comp
    x = np.asarray(x)
    K = program.compiled.K
    if x.shape != (program.pixels, K):
        raise ValueError(f"x: must be one sample's im2col inputs, shape ({program.pixels}, {K}), got {x.shape}")
    bits = input_bits(x, program.signed)
    nw = -(-K // n_comp)
    pad = np.zeros((program.pixels, nw * n_comp), np.uint8)
    pad[:, :K] = bits
    return pad.reshape(program.pixels, nw, n_comp)


def input_windows(program: CoreProgram, segment: Segment, x) -> np.ndarray:
    """The input stream of one START: uint8 (beats, in_windows * n_comp).

    With ``core.in_windows`` W = 1: for each pass, pixel and window in
    order, one window a beat. With W > 1 a beat carries W windows, one per
    switch: for each pass, round (``M`` pixels) and group of W of its macros
    (macros ``gW .. gW + W - 1``), for each of the pass's windows, window s
    of the beat is that window of pixel ``rM + gW + s``; zero where the round
    has no such pixel. ``x`` is one sample's im2col inputs (P, K); a beat is
    packed with :func:`model.spec.window_fields` (element ``s * n_comp + c``).
    """
    win = _padded_bits(program, x)
    n_comp = win.shape[2]
    W, M = program.params.core.in_windows, program.params.macros
    parts = []
    for p in segment.passes:
        v = win[p.p0:p.p0 + p.pixels][:, p.windows]  # (pixels, n_win, n_comp)
        if W > 1:  # pixels into rounds of M, rounds into groups of W (zero lanes past a round's pixels)
            R = -(-p.pixels // M)
            pad = np.zeros((R * M,) + v.shape[1:], np.uint8)
            pad[:p.pixels] = v
            v = pad.reshape(R, M // W, W, -1, n_comp)
            rnd = np.arange(R * M).reshape(R, M // W, W) < p.pixels
            v = np.where(rnd[..., None, None], v, 0)[:, :, :, :, :]
            keep = rnd[:, :, 0].reshape(-1)  # groups holding a pixel
            v = v.transpose(0, 1, 3, 2, 4).reshape(R * (M // W), -1, W * n_comp)[keep]
        parts.append(v.reshape(-1, W * n_comp))
    return np.concatenate(parts) if parts else np.zeros((0, W * n_comp), np.uint8)


# --------------------------------------------------------------------------- the twin

def result_order(pixels: int, n_out: int, result_lanes: int = 1) -> np.ndarray:
    """The result beats of a job: int64 (beats, lanes), each lane's index ``pixel * n_out + filter`` into the
    job's (pixels, n_out) results, -1 for an empty lane (``TKEEP`` low).

    Beat ``k * n_out + s`` carries filter s of pixels ``k L .. k L + L - 1`` (``L = core.result_lanes``,
    lane i pixel ``k L + i``: one pixel of each of L consecutive macros, as L divides the macros per core);
    ``model.core_timing.stream_beats`` of them. With ``L = 1``: pixel by pixel, filter by filter.
    """
    L = int(result_lanes)
    groups = -(-int(pixels) // L)
    q = np.arange(groups)[:, None, None] * L + np.arange(L)[None, None, :]
    f = np.arange(int(n_out))[None, :, None]
    return np.where(q < pixels, q * int(n_out) + f, -1).reshape(-1, L).astype(np.int64)


def _tile_acc(tile: Tile, xg: np.ndarray) -> np.ndarray:
    """Accumulators of the used slots for gathered inputs xg (P, n_row * n_comp): int64 (P, n_filters)."""
    v = tile_digit_values(tile).reshape(-1, tile.col_filter.size).astype(np.float64)
    n = tile.n_filters
    onehot = (tile.col_filter[:, None] == np.arange(n)[None, :]).astype(np.float64)
    return np.rint(xg @ (v @ onehot)).astype(np.int64)  # exact: |terms| < 2**53


def run_core(program: CoreProgram, x) -> CoreResult:
    """The core's results and cycles for one sample's im2col inputs ``x`` (P, K), START by START."""
    comp = program.compiled
    x = np.asarray(x)
    if x.shape != (program.pixels, comp.K):
        raise ValueError(f"x: must be one sample's im2col inputs, shape ({program.pixels}, {comp.K}), "
                         f"got {x.shape}")
    bits = input_bits(x, program.signed)
    xv = (bits.astype(np.int8) if program.signed else bits).astype(np.float64)
    pix = pixel_cycles(bits, comp.tiles, program.params.macro)[None]
    cycles = layer_cycles(program.plan, pix, program.params.macro, program.params.macros,
                          program.params.core.tile_banks, program.params.core.out_banks,
                          in_windows=program.params.core.in_windows,
                          result_lanes=program.params.core.result_lanes)[0]
    beats = []
    psum_limit = 1 << (program.params.psum_width - 1)
    for seg in program.segments:
        acc = {}
        stream = []
        for p in seg.passes:
            t = comp.tiles[p.tile]
            xg = np.where(t.rows.reshape(-1) >= 0, xv[p.p0:p.p0 + p.pixels][:, np.maximum(t.rows.reshape(-1), 0)], 0)
            a = _tile_acc(t, xg)
            key = (t.group, t.col_tile, p.p0)
            acc[key] = a if p.first else acc[key] + a
            if np.any(np.abs(acc[key]) >= psum_limit):  # cannot happen within max_row_tiles (spec.psum_width)
                raise AssertionError("partial sum exceeds the output register file width")
            if p.last:  # the valid lanes of its beats in order (result_order)
                order = result_order(p.pixels, p.n_out, program.params.core.result_lanes).reshape(-1)
                stream.append(acc[key][:, :p.n_out].reshape(-1)[order[order >= 0]])
        beats.append(np.concatenate(stream) if stream else np.zeros(0, np.int64))
    return CoreResult(beats=beats, out=assemble(program, beats), cycles=cycles)


def assemble(program: CoreProgram, beats) -> np.ndarray:
    """Place the result streams of a sample's STARTs at (pixel, output channel): int64 (P, N).

    Output channels that no tile holds (phi = 0, or a group with no kept row)
    are 0, as their weights are.
    """
    out = np.zeros((program.pixels, program.compiled.N), np.int64)
    for seg, b in zip(program.segments, beats):
        b = np.asarray(b, np.int64)
        k = 0
        for p in seg.passes:
            if not p.last:
                continue
            n = p.pixels * p.n_out
            if k + n > b.size:
                raise ValueError(f"beats: a START of {len(seg.passes)} passes streams more than {b.size} results")
            f = program.compiled.tiles[p.tile].filters[:p.n_out]
            order = result_order(p.pixels, p.n_out, program.params.core.result_lanes).reshape(-1)
            job = np.zeros(n, np.int64)
            job[order[order >= 0]] = b[k:k + n]
            out[p.p0:p.p0 + p.pixels, f] = job.reshape(p.pixels, p.n_out)
            k += n
        if k != b.size:
            raise ValueError(f"beats: {b.size} results, the START streams {k}")
    return out

"""The PIM image: what WMEM holds for a PIM instruction and how the chip runs it (docs/design.md §15).

A PIM instruction (:data:`model.isa.OPCODES` ``PIM``) names ``groups``
consecutive layers of WMEM's layer table from ``layer``. WMEM word 0 is the
table's length, word ``1 + i`` the address of layer ``i``'s *block*; a block
is everything the chip's controller needs to run one layer (one group of a
grouped convolution) on its PIM core (:mod:`model.core`) fed by the input
buffer's window generator (:mod:`model.window`), all 32-bit words:

* the header :data:`PIM_HEADER`: the block's word count, its band count,
  its round size ``cores`` (segments that run at the same time, one on each
  PIM core: a band's segments ``r * cores .. r * cores + cores - 1`` form its
  round ``r``, the last round may be shorter), the ACC stride of one output
  pixel, the output pixels ``P`` and the number of zero entries;
* the zero entries: one ACC offset per output channel that no tile holds
  (its ``P`` sums are 0; at ``dst + offset + q * pixel_stride``);
* per row band (:func:`band_plan`: output rows whose input rows, halo
  included, fit the input buffer): the header :data:`BAND_HEADER` (the copy
  of its input rows from ACT into the input buffer, the window generator's
  layer descriptor :data:`model.spec.WINDOW_LAYER` of the band, its segment
  count), then its segments;
* per core segment (one START): the header :data:`SEGMENT_HEADER` (counts),
  then the core's register-bus writes (:func:`model.core.bus_writes`: byte
  address, word), the window table (:func:`model.window.table_entries`), the
  generator's pass descriptors (:func:`model.window.segment_passes`, four
  words each) and the result entries (:data:`RESULT_ENTRY`, one per streamed
  output channel of each ``last`` pass, in stream order).

Result ``(pixel q, channel s)`` of a last pass goes to ACC ``dst + OFF_s +
q * pixel_stride``; ``OFF`` already holds the pass's first pixel (the band's
first pixel plus the pass's in the band) and the layer's group offset. ACC
holds ``(N, Ho, Wo)`` row-major for a convolution (``pixel_stride`` 1, offset
of channel ``f``: ``f * P``) and ``(T, N)`` for a linear layer of ``T``
tokens (``pixel_stride`` ``N``, offset ``f``).

Each band fills the input buffer from address 0 with its copy: buffer element
``o * inner + i`` is ACT ``src + act_off + o * outer_stride + i *
inner_stride`` (a convolution's channels' rows ``a .. b - 1``; a linear
layer's ``(T, K)`` tokens ``a .. b - 1`` transposed to a ``(K, b - a, 1)``
map), checked against the layer's 8-bit input range.

:func:`layer_block` writes a block, :func:`read_block` reads it back,
:func:`run_pim` executes a PIM instruction from the image (the golden chip's
PIM: the window generator's twin :func:`model.window.generator_addresses`, the
core's twin from its bus writes :func:`run_segment`, the result placement) and
counts its core cycles with :func:`model.core_timing.layer_cycles` on the
passes decoded from the image (:func:`segment_plan`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import SimpleNamespace

import numpy as np

from dbpim.model.core import CoreParams, bus_writes, compile_program
from dbpim.model.core_timing import (PassPlan, delivery_cycles, filter_tiles_of, layer_cycles, load_cycles,
                                    pixel_cycles, stream_beats)
from dbpim.model.spec import (BUS_BITS, CORE_REG, WINDOW_ENTRY, WINDOW_LAYER, WINDOW_PASS, input_range, pack,
                              register_fields, unpack)
from dbpim.model.window import WindowLayer, generator_addresses, segment_passes, segment_table, table_entries

__all__ = ["PIM_HEADER", "BAND_HEADER", "SEGMENT_HEADER", "RESULT_ENTRY", "PimImageError", "BlockImage", "BandImage",
           "SegmentImage", "drained_cores", "band_plan", "band_layer", "layer_block", "read_block", "run_segment",
           "segment_plan", "PimRun", "run_pim"]

#: A block's header words, in order.
PIM_HEADER = ("words", "bands", "cores", "pixel_stride", "pixels", "zeros")
#: A band's header words, in order: the copy from ACT into the input buffer (input buffer element ``o * inner +
#: i`` is ACT ``src + act_off + o * outer_stride + i * inner_stride``), the window generator's layer descriptor
#: (:data:`model.spec.WINDOW_LAYER`, four words) and the band's segment count.
BAND_HEADER = ("act_off", "outer", "outer_stride", "inner", "inner_stride", "win_base", "win_shape", "win_kernel",
               "win_out", "segments")
#: A segment's header words, in order: counts of bus writes (two words each), table entries, pass descriptors
#: (four words each) and result entries.
SEGMENT_HEADER = ("writes", "table", "passes", "results")
#: One result entry (a 32-bit word, LSB first; :func:`model.spec.pack` fields): the ACC offset of the channel's
#: first result, ``end`` on the pass's last channel, and the pass's pixels.
RESULT_ENTRY = (("off", 16, None, False), ("end", 1, None, False), ("pixels", 15, None, False))
#: ACC offsets (dst + offset) are 16-bit, like the ISA's addresses.
ACC_OFFSET_LIMIT = 1 << 16
_MASK32 = (1 << BUS_BITS) - 1
_COPY = BAND_HEADER[:5]
_WIN = BAND_HEADER[5:9]


class PimImageError(ValueError):
    """A WMEM image the chip cannot run (one line naming the block and the word)."""


def _s32(v: int) -> int:
    """A 32-bit word as WMEM holds it (signed 32-bit)."""
    v = int(v) & _MASK32
    return v - (1 << 32) if v >> 31 else v


@dataclass
class SegmentImage:
    """One segment of a band: bus writes (W, 2), table words, pass descriptors (4 words each), result words."""

    writes: np.ndarray
    table: list
    passes: list
    results: list

    @property
    def beats(self) -> int:
        """Results the core streams in this segment: each result entry's ``pixels``."""
        return sum(unpack(RESULT_ENTRY, r)["pixels"] for r in self.results)

    def words(self, result_lanes: int = 1) -> int:
        """Result buffer words (stream beats of ``result_lanes`` results) of this segment: each result entry's
        ``ceil(pixels / result_lanes)`` (:func:`model.core_timing.stream_beats`)."""
        return int(sum(stream_beats(unpack(RESULT_ENTRY, r)["pixels"], 1, result_lanes) for r in self.results))


@dataclass
class BandImage:
    """A decoded band: its copy (``act_off``, ``outer``, ``outer_stride``, ``inner``, ``inner_stride``), the window
    layer descriptor's words and its segments."""

    copy: dict
    layer_words: list
    segments: list = field(default_factory=list)
    cores: int = 1

    @property
    def rounds(self) -> list:
        """Segment indices of each round (segments that run at the same time, one on each of ``cores`` cores)."""
        n = len(self.segments)
        return [list(range(r, min(n, r + self.cores))) for r in range(0, n, self.cores)]

    @property
    def layer(self) -> dict:
        """The window layer descriptor's fields (``base``, ``height``, ``kh``, ...)."""
        word = sum(int(w) << (BUS_BITS * k) for k, w in enumerate(self.layer_words))
        return unpack(register_fields(WINDOW_LAYER), word)

    @property
    def count(self) -> int:
        """Inputs the band copies into the input buffer: ``outer * inner``."""
        return self.copy["outer"] * self.copy["inner"]

    def offsets(self) -> np.ndarray:
        """ACT offset (from the instruction's ``src``) of each input buffer element the band copies, in order."""
        c = self.copy
        o = np.arange(c["outer"], dtype=np.int64)[:, None] * c["outer_stride"]
        i = np.arange(c["inner"], dtype=np.int64)[None, :] * c["inner_stride"]
        return (c["act_off"] + o + i).reshape(-1)


@dataclass
class BlockImage:
    """A decoded block (:func:`read_block`)."""

    base: int
    words: int
    pixel_stride: int
    pixels: int
    zeros: list
    bands: list = field(default_factory=list)
    cores: int = 1

    @property
    def segments(self) -> list:
        """Every segment of the block, band after band (one START of the core each)."""
        return [s for b in self.bands for s in b.segments]


def _beats_word(result_lanes: int) -> str:
    """What a result buffer word holds, for an error line: ``results`` (one lane) or ``beats of L results``."""
    return "results" if result_lanes == 1 else f"beats of {result_lanes} results"


def drained_cores(rnd: list, result_lanes: int = 1) -> list:
    """The segments of a round (:attr:`BandImage.rounds`) whose results go into a result buffer and are drained
    into ACC after the round: those on cores 1 .. (``core.result_lanes`` 1: core 0 streams into ACC), every
    one with L > 1 (ACC takes one result a cycle)."""
    return list(rnd) if result_lanes > 1 else list(rnd[1:])


def band_plan(layer: WindowLayer, buffer_inputs: int | None, *, name: str = "layer",
              max_rows: int | None = None) -> list[tuple]:
    """The row bands of ``layer``: ``(r0, r1, a, b)`` each, output rows ``r0 .. r1 - 1`` read from input rows
    ``a .. b - 1`` (their halo for the kernel, stride, dilation and padding, clipped to the map).

    Greedy from row 0: each band takes as many output rows as keep its input rows' ``channels * (b - a) *
    width`` inputs within ``buffer_inputs`` (None: one band of every row) and at most ``max_rows`` output rows
    (None: no bound). :class:`PimImageError` when one output row's inputs do not fit.
    """
    H, W, C = layer.height, layer.width, layer.channels
    sh, ph, span = layer.stride[0], layer.padding[0], (layer.kh - 1) * layer.dilation[0] + 1

    def rows(r0, r1):
        return max(0, r0 * sh - ph), min(H, (r1 - 1) * sh - ph + span)

    Ho = layer.out_h
    if buffer_inputs is None and max_rows is None:
        return [(0, Ho) + rows(0, Ho)]
    fits = (lambda inputs: True) if buffer_inputs is None else (lambda inputs: inputs <= buffer_inputs)
    bands, r0 = [], 0
    while r0 < Ho:
        r1 = r0 + 1
        a, b = rows(r0, r1)
        if not fits(C * max(0, b - a) * W):
            raise PimImageError(f"{name}: output row {r0} reads {C} x {b - a} x {W} inputs, more than the input "
                                f"buffer's {buffer_inputs}")
        while r1 < Ho and (max_rows is None or r1 - r0 < max_rows) and fits(C * (rows(r0, r1 + 1)[1] - a) * W):
            r1 += 1
        bands.append((r0, r1) + rows(r0, r1))
        r0 = r1
    return bands


def band_layer(layer: WindowLayer, r0: int, r1: int, a: int, b: int) -> WindowLayer:
    """The window layer of band ``(r0, r1, a, b)`` of ``layer`` (:func:`band_plan`): input rows ``a .. b - 1`` at
    buffer address 0, output rows ``r0 .. r1 - 1`` counted from 0 (so top padding ``padding[0] + a - r0 *
    stride[0]``, rows past ``b - a`` padding)."""
    ph = layer.padding[0] + a - r0 * layer.stride[0]
    return WindowLayer(layer.channels, max(1, b - a), layer.width, layer.kh, layer.kw, layer.stride,
                       (ph, layer.padding[1]), layer.dilation, 0, r1 - r0)


def layer_block(compiled, layer: WindowLayer, params: CoreParams, signed: bool, *, acc_base: int, linear: bool,
                buffer_inputs: int | None = None, name: str = "layer", cores: int = 1,
                result_words: int | None = None) -> list[int]:
    """The WMEM block of one compiled layer (one group) on the ``layer`` map of the instruction's input.

    ``layer.base`` is where the map starts in the instruction's ACT input (from ``src``): a convolution's
    ``(C, H, W)`` map (a group's channels at ``j (C / groups) H W``), a linear layer's ``(T, K)`` tokens read as
    a ``(K, T, 1)`` map (``base`` 0). The layer runs in the row bands of :func:`band_plan` for an input buffer of ``buffer_inputs`` inputs
    (None: one band); each band copies its input rows into the buffer from address 0 and runs the core's
    program for its output pixels. ``acc_base`` is the ACC offset of the layer's first output channel (a group's
    offset in the instruction's output); ``linear`` lays the output out as (tokens, N), else (N, Ho, Wo).
    ``cores`` (``system.cores``) PIM cores share the layer: its filter tiles (output-channel groups) are dealt
    round-robin to ``k = min(cores, filter tiles)`` cores (header word ``cores``), each core's tiles compiled to
    its own segments (:func:`model.core.compile_program`) in every band, and a band's segments interleaved (every
    core's first, then every core's second, ...) so that each round of ``k`` runs on the ``k`` cores at the same
    time. The cores of a round after the first (cores 1 ..; every core when ``core.result_lanes`` L > 1) put
    their results into their result buffers of ``result_words`` words each (``system.result_buffer_words``, a
    word one stream beat of L results; None: no bound): the bands are cut into fewer output rows until no such
    segment streams more beats (:meth:`SegmentImage.words`). Raises
    :class:`model.core_timing.PlanError` when the layer does not fit the core, :class:`PimImageError` when its
    output does not fit ACC's 16-bit offsets, a row's inputs the buffer or one output row's results a result
    buffer.
    """
    if not isinstance(cores, (int, np.integer)) or cores < 1:
        raise ValueError(f"cores: must be a positive integer, got {cores!r}")
    if result_words is not None and (not isinstance(result_words, (int, np.integer)) or result_words < 1):
        raise ValueError(f"result_words: must be a positive integer, got {result_words!r}")
    n = params.macro.n_comp
    P = layer.pixels
    N = compiled.N
    ps, fs = (N, 1) if linear else (1, P)
    if acc_base + N * P > ACC_OFFSET_LIMIT:
        raise PimImageError(f"{name}: its {N} x {P} sums from ACC offset {acc_base} pass ACC's "
                            f"{ACC_OFFSET_LIMIT} addresses")
    H, W, C = layer.height, layer.width, layer.channels
    L = params.core.result_lanes
    buffered = 0 if L > 1 else 1  # the cores whose results go into a result buffer: from core 1 (every core, L > 1)
    fts = filter_tiles_of(compiled.tiles)
    k = max(1, min(int(cores), len(fts)))
    subs = [replace(compiled, tiles=[compiled.tiles[i] for f in fts[c::k] for i in f[2]]) for c in range(k)]

    def plan(max_rows):
        """The bands and their cores' programs, or the rows to retry with when a result buffer overflows."""
        out = []
        for r0, r1, a, b in band_plan(layer, buffer_inputs, name=name, max_rows=max_rows):
            bl = band_layer(layer, r0, r1, a, b)
            progs = [compile_program(sub, bl.pixels, params, signed, name) for sub in subs]
            most = max([sum(int(stream_beats(p.pixels, p.n_out, L)) for p in seg.passes if p.last)
                        for prog in progs[buffered:] for seg in prog.segments] or [0])
            if result_words is not None and most > result_words:
                if r1 - r0 == 1:
                    raise PimImageError(f"{name}: output row {r0} streams {most} {_beats_word(L)} on one PIM core, "
                                        f"more than its result buffer's {result_words} words "
                                        f"(system.result_buffer_words)")
                return min(r1 - r0 - 1, max(1, (r1 - r0) * result_words // most))
            out.append((r0, r1, a, b, bl, progs))
        return out

    planned, max_rows = None, None
    while not isinstance(planned, list):
        planned = plan(max_rows)
        max_rows = planned
    held = set()
    bands = []
    for r0, r1, a, b, bl, progs in planned:
        order = [(prog, prog.segments[r]) for r in range(max(len(p.segments) for p in progs)) for prog in progs
                 if r < len(prog.segments)]
        if linear:  # map value (k, t, 0) is token t's input k: ACT t K + k
            copy = {"act_off": layer.base + a * C, "outer": C, "outer_stride": 1, "inner": b - a, "inner_stride": C}
        else:
            copy = {"act_off": layer.base + a * W, "outer": C, "outer_stride": H * W, "inner": max(0, b - a) * W,
                    "inner_stride": 1}
        q0 = r0 * layer.out_w
        segs = []
        for prog, seg in order:
            writes = [w for aw in bus_writes(prog, seg) for w in aw]
            table = table_entries(bl, segment_table(seg, n), n)
            passes = [w for p in segment_passes(bl, seg) for w in p]
            res = []
            for p in seg.passes:
                if not p.last:
                    continue
                filters = prog.compiled.tiles[p.tile].filters[:p.n_out]
                held.update(int(f) for f in filters)
                for s, f in enumerate(filters):
                    res.append(pack(RESULT_ENTRY, {"off": acc_base + int(f) * fs + (q0 + p.p0) * ps,
                                                   "end": int(s == p.n_out - 1), "pixels": p.pixels}))
            segs.append([len(writes) // 2, len(table), len(passes) // 4, len(res)] + writes + table + passes + res)
        head = dict(copy, segments=len(segs))
        head.update(zip(_WIN, bl.words()))
        bands.append([head[k] for k in BAND_HEADER] + [w for sg in segs for w in sg])
    zeros = [acc_base + f * fs for f in range(N) if f not in held]
    body = zeros + [w for bd in bands for w in bd]
    head = {"words": len(PIM_HEADER) + len(body), "bands": len(bands), "cores": k, "pixel_stride": ps, "pixels": P,
            "zeros": len(zeros)}
    return [_s32(head[k]) for k in PIM_HEADER] + [_s32(w) for w in body]


def read_block(wmem, index: int) -> BlockImage:
    """Block ``index`` of WMEM's layer table, decoded and checked (:class:`PimImageError` naming the word)."""
    w = np.asarray(wmem, np.int64) & _MASK32
    where = f"WMEM layer {index}"
    if not w.size or not 0 <= index < int(w[0]):
        raise PimImageError(f"{where}: not in the layer table of {int(w[0]) if w.size else 0} layers")
    base = int(w[1 + index])
    h = dict(zip(PIM_HEADER, (int(v) for v in w[base:base + len(PIM_HEADER)])))
    if len(h) != len(PIM_HEADER) or base + h["words"] > w.size:
        raise PimImageError(f"{where}: its block at {base} runs past WMEM's {w.size} words")
    if h["cores"] < 1:
        raise PimImageError(f"{where}: its round size (cores) is {h['cores']}, must be at least 1")
    p = base + len(PIM_HEADER)
    blk = BlockImage(base=base, words=h["words"], pixel_stride=h["pixel_stride"], pixels=h["pixels"],
                     zeros=[int(v) for v in w[p:p + h["zeros"]]], cores=h["cores"])
    p += h["zeros"]
    end = base + h["words"]
    for bi in range(h["bands"]):
        if p + len(BAND_HEADER) > end:
            raise PimImageError(f"{where}: band {bi} runs past the block's {h['words']} words")
        bh = dict(zip(BAND_HEADER, (int(v) for v in w[p:p + len(BAND_HEADER)])))
        p += len(BAND_HEADER)
        band = BandImage(copy={k: bh[k] for k in _COPY}, layer_words=[bh[k] for k in _WIN], cores=h["cores"])
        for s in range(bh["segments"]):
            if p + len(SEGMENT_HEADER) > end:
                raise PimImageError(f"{where}: band {bi} segment {s} runs past the block's {h['words']} words")
            nw, nt, npass, nres = (int(v) for v in w[p:p + 4])
            p += 4
            size = 2 * nw + nt + 4 * npass + nres
            if p + size > end:
                raise PimImageError(f"{where}: band {bi} segment {s} runs past the block's {h['words']} words")
            writes = w[p:p + 2 * nw].reshape(-1, 2)
            p += 2 * nw
            table = [int(v) for v in w[p:p + nt]]
            p += nt
            passes = [[int(v) for v in w[p + 4 * k:p + 4 * k + 4]] for k in range(npass)]
            p += 4 * npass
            band.segments.append(SegmentImage(writes=writes, table=table, passes=passes,
                                              results=[int(v) for v in w[p:p + nres]]))
            p += nres
        blk.bands.append(band)
    if p != end:
        raise PimImageError(f"{where}: the block says {h['words']} words, its parts take {p - base}")
    return blk


# ----------------------------------------------------------------------------- the core from its bus writes

def _memories(params: CoreParams, writes) -> tuple[dict, int]:
    """The core's memories written by ``writes``: region name -> {entry: {word: value}}, and LAYER."""
    cmap = params.map
    mems = {r: {} for r in cmap.regions}
    layer = None
    for addr, word in np.asarray(writes, np.int64).reshape(-1, 2):
        addr, word = int(addr), int(word) & _MASK32
        if addr == cmap.regs["LAYER"]:
            layer = word
            continue
        for r in cmap.regions.values():
            if r.base <= addr < r.base + r.size:
                e, k = divmod((addr - r.base) // (BUS_BITS // 8), r.stride)
                if e >= r.entries or k >= r.words or addr % 4:
                    raise PimImageError(f"bus write to 0x{addr:X}: not a word of {r.name.upper()}")
                mems[r.name].setdefault(e, {})[k] = word
                break
        else:
            raise PimImageError(f"bus write to 0x{addr:X}: not a LAYER or memory address of the core")
    if layer is None:
        raise PimImageError("segment: its bus writes do not set LAYER")
    return mems, layer


def _entry(params: CoreParams, mems: dict, region: str, e: int) -> dict:
    r = params.map.regions[region]
    words = mems[region].get(int(e))
    if words is None or len(words) != r.words:
        raise PimImageError(f"segment: reads {region.upper()} entry {e}, which its bus writes did not set")
    return unpack(r.fields, sum(v << (BUS_BITS * k) for k, v in words.items()))


@dataclass
class _Pass:
    """A core pass as its descriptor and masks give it (``mask``: (n_win, n_comp) bools)."""

    mask: np.ndarray
    mask_base: int
    n_kept: int
    pixels: int
    n_out: int
    first: bool
    last: bool


def run_segment(params: CoreParams, writes, beats: np.ndarray) -> tuple[np.ndarray, list]:
    """The core's results for one START from its bus writes and input beats: the core's twin from its memories.

    ``beats`` (S, B, n_comp) uint8 are the input windows of each sample in order. Pass by pass (the
    descriptors, ``LAYER.N_DESC`` of them): its ``pixels * n_win`` windows, their kept inputs (mask bits) packed
    into cell rows of ``n_comp``, times each used cell's digit ``(-1)**sign * 2**(2 idx + Q)``, summed per
    column, per filter slot of the column map; written (``first``) or added into the output register file;
    a ``last`` pass streams its ``pixels x n_out`` sums pixel by pixel. Returns the streams (S, R) int64 and the
    passes (for :func:`segment_plan`). :class:`PimImageError` for a program the RTL stops on.
    """
    m = params.macro
    n_comp, n_col, n_row = m.n_comp, m.n_col, m.n_row
    mems, layer = _memories(params, writes)
    lay = CORE_REG["LAYER"].decode(layer)
    beats = np.asarray(beats, np.uint8)
    S = beats.shape[0]
    vals = (beats.view(np.int8) if lay["SIGNED"] else beats).astype(np.int64)
    orf = np.zeros((S, params.core.out_pixels, n_col), np.int64)
    limit = 1 << (params.psum_width - 1)
    out, passes, at = [], [], 0
    for k in range(lay["N_DESC"]):
        d = _entry(params, mems, "desc", k)
        where = f"segment: descriptor {k}"
        if (d["n_win"] == 0 or d["n_kept"] == 0 or d["n_kept"] > n_comp * n_row or d["pixels"] == 0
                or d["pixels"] > params.core.out_pixels or d["n_out"] > n_col):
            raise PimImageError(f"{where}: {d} is outside the core's limits")
        mask = np.array([[(_entry(params, mems, "mask", d["mask_base"] + i)["mask"] >> c) & 1 for c in range(n_comp)]
                         for i in range(d["n_win"])], bool)
        if int(mask.sum()) != d["n_kept"] or not mask[-1].any():
            raise PimImageError(f"{where}: its masks hold {int(mask.sum())} kept inputs, n_kept is {d['n_kept']}")
        nb = d["pixels"] * d["n_win"]
        if at + nb > beats.shape[1]:
            raise PimImageError(f"{where}: needs {nb} input windows, the stream has {beats.shape[1] - at} left")
        x = vals[:, at:at + nb].reshape(S, d["pixels"], d["n_win"] * n_comp)[:, :, mask.reshape(-1)]
        at += nb
        ru = -(-d["n_kept"] // n_comp)
        xr = np.zeros((S, d["pixels"], ru * n_comp), np.int64)
        xr[:, :, :d["n_kept"]] = x
        rows = [_entry(params, mems, "tile", d["tile"] * n_row + r) for r in range(ru)]
        dig = np.array([[[(1 - 2 * e["sign"][c * n_col + j]) << (2 * e["idx"][c * n_col + j] + e["cells"][c * n_col + j])
                          for j in range(n_col)] for c in range(n_comp)] for e in rows], np.int64)
        cmap = _entry(params, mems, "map", d["tile"])
        slot_of = np.array([[cmap["used"][j] and cmap["slot"][j] == s for s in range(n_col)] for j in range(n_col)],
                           np.int64)  # (column, slot)
        col = np.einsum("spk,kj->spj", xr, dig.reshape(ru * n_comp, n_col))
        a = col @ slot_of
        npx = d["pixels"]
        orf[:, :npx] = a if d["first"] else orf[:, :npx] + a
        if np.any(np.abs(orf[:, :npx]) >= limit):
            raise PimImageError(f"{where}: a partial sum passes the output register file's {params.psum_width} bits")
        if d["last"]:
            out.append(orf[:, :npx, :d["n_out"]].reshape(S, -1).copy())
        passes.append(_Pass(mask=mask, mask_base=d["mask_base"], n_kept=d["n_kept"], pixels=npx, n_out=d["n_out"],
                            first=bool(d["first"]), last=bool(d["last"])))
    if at != beats.shape[1]:
        raise PimImageError(f"segment: the window stream holds {beats.shape[1]} windows, the passes take {at}")
    return (np.concatenate(out, axis=1) if out else np.zeros((S, 0), np.int64)), passes


def segment_plan(band: BandImage, seg_passes: list, macro) -> PassPlan:
    """The :class:`model.core_timing.PassPlan` of a band's passes decoded from its image (one tile per pass)."""
    lay = band.layer
    n = macro.n_comp
    cols = {k: [] for k in ("tile", "p0", "pixels", "n_out", "first", "last", "segment")}
    rows_all = []
    windows_all = []
    i = 0
    for s, (seg, passes) in enumerate(zip(band.segments, seg_passes)):
        for k, p in enumerate(passes):
            pw = seg.passes[k]
            f = _pass_fields(pw)
            win = _windows(seg, p, lay, n)
            wi, c = np.nonzero(p.mask)
            rows_all.append(win[wi] * n + c)
            windows_all.append(win)
            for key, v in (("tile", i), ("p0", f["ho"] * lay["out_w"] + f["wo"]), ("pixels", p.pixels),
                           ("n_out", p.n_out), ("first", p.first), ("last", p.last), ("segment", s)):
                cols[key].append(v)
            i += 1
    arr = {k: np.array(v, bool if k in ("first", "last") else np.int64) for k, v in cols.items()}
    n_kept = np.array([r.size for r in rows_all], np.int64)
    n_rows_used = -(-n_kept // n)
    flat = np.concatenate(rows_all) if rows_all else np.zeros(0, np.int64)
    deliver = delivery_cycles(flat, np.repeat(np.arange(i), n_kept), i, n, macro.lanes)
    return PassPlan(rows=rows_all, windows=windows_all, n_kept=n_kept, n_rows_used=n_rows_used,
                    load=load_cycles(n_rows_used), deliver=deliver, **arr)


def _pass_fields(words) -> dict:
    return unpack(register_fields(WINDOW_PASS), sum(int(v) << (BUS_BITS * t) for t, v in enumerate(words)))


# ----------------------------------------------------------------------------- one PIM instruction

@dataclass
class PimRun:
    """What one PIM instruction did, per sample: the core's cycles of each START (per block, (S, segments)),
    the blocks' counts for :func:`model.chip_timing.pim_cycles`, and the DB-PIM macro-cycles of its passes
    (docs/design.md §7, one macro running every tile)."""

    blocks: list
    core_cycles: list
    macro_cycles: np.ndarray


def run_pim(wmem, d: dict, act: np.ndarray, src: int, acc: np.ndarray, dst: int, params: CoreParams, *,
            buffer_inputs: int | None = None, cores: int = 1, result_words: int | None = None,
            name: str = "PIM") -> PimRun:
    """Execute one PIM instruction (descriptor ``d``) from the WMEM image on the buffers of S samples.

    ``act`` (S, ACT) holds the input at ``src``; the sums go to ``acc`` (S, ACC) at ``dst``. Each block (a group)
    runs band by band: the band's copy into the input buffer (``buffer_inputs`` inputs; None: as large as the
    band needs), then its segments. Raises :class:`PimImageError` (one line naming the instruction) for an
    input outside the layer's 8-bit range, an image the chip cannot run, a sum outside ACC's signed elements
    (``model.isa.BUFFERS["ACC"].elem_bits``; a core whose partial sums are wider, e.g. ``paper``'s 33 bits, stops
    there: ERROR_CODE 4 on the RTL chip), an address past a buffer, or a round whose core 1 .. (every core when
    ``core.result_lanes`` L > 1) streams more beats (:meth:`SegmentImage.words`) than its result buffer's
    ``result_words`` words (None: no bound).
    """
    from dbpim.model import isa
    S = act.shape[0]
    n = params.macro.n_comp
    C, H, W, g = d["C"], d["H"], d["W"], d["groups"]
    count = C * H * W
    if src + count > act.shape[1]:
        raise PimImageError(f"{name}: input {src} .. {src + count - 1} passes ACT's {act.shape[1]} elements")
    if g < 1:
        raise PimImageError(f"{name}: groups must be at least 1, got {g}")
    lo, hi = input_range(bool(d["signed"]))
    blocks, cycles = [], []
    macro = np.zeros(S, np.int64)
    for j in range(g):
        blk = read_block(wmem, d["layer"] + j)
        where = f"{name}, layer {d['layer'] + j}"
        if blk.cores > cores:
            raise PimImageError(f"{where}: its rounds run {blk.cores} segments at once, the chip has {cores} "
                                f"PIM cores")
        if result_words is not None:
            L = params.core.result_lanes
            for bi, band in enumerate(blk.bands):
                for rnd in band.rounds:
                    for i in drained_cores(rnd, L):
                        if band.segments[i].words(L) > result_words:
                            raise PimImageError(f"{where}, band {bi}: segment {i} streams "
                                                f"{band.segments[i].words(L)} {_beats_word(L)} into a result "
                                                f"buffer of {result_words} words")
        ps, P = blk.pixel_stride, blk.pixels
        q = np.arange(P) * ps

        def place(offs, vals):
            a = dst + np.asarray(offs, np.int64)
            if a.size and (a.max() >= acc.shape[1]):
                raise PimImageError(f"{where}: writes ACC {int(a.max())}, past its {acc.shape[1]} words")
            acc[:, a] = vals

        for off in blk.zeros:
            place(off + q, 0)
        cyc = []
        for bi, band in enumerate(blk.bands):
            at = f"{where}, band {bi}"
            offs_in = src + band.offsets()
            if buffer_inputs is not None and offs_in.size > buffer_inputs:
                raise PimImageError(f"{at}: {offs_in.size} inputs do not fit the input buffer's {buffer_inputs}")
            if offs_in.size and (offs_in.min() < 0 or offs_in.max() >= act.shape[1]):
                raise PimImageError(f"{at}: copies ACT {int(offs_in.max())}, past its {act.shape[1]} elements")
            x = act[:, offs_in]
            if x.size and (int(x.min()) < lo or int(x.max()) > hi):
                raise PimImageError(f"{name}: an input is outside the layer's "
                                    f"{'signed' if d['signed'] else 'unsigned'} 8-bit range [{lo}, {hi}]")
            buf = (x & 0xFF).astype(np.uint8)
            c, m = _run_band(band, buf, acc, dst, ps, params, at, place)
            cyc.append(c)
            macro += m
        blocks.append(blk)
        cycles.append(np.concatenate(cyc, axis=1) if cyc else np.zeros((S, 0), np.int64))
    return PimRun(blocks=blocks, core_cycles=cycles, macro_cycles=macro)


def _run_band(band: BandImage, buf: np.ndarray, acc, dst: int, ps: int, params: CoreParams, where: str, place):
    """One band's segments on its input buffer ``buf`` (S, inputs): the sums placed into ACC, and the core's
    cycles of each START (S, segments) and the band's DB-PIM macro-cycles (S,)."""
    from dbpim.model import isa
    S = buf.shape[0]
    n = params.macro.n_comp
    lay = band.layer
    count = buf.shape[1]
    seg_passes, bits_all, beats_all = [], None, []
    for s, seg in enumerate(band.segments):
        addr = generator_addresses(band.layer_words, seg.table, seg.passes, n)
        if addr.size and addr.max() >= count:
            raise PimImageError(f"{where}, segment {s}: reads input {int(addr.max())}, past the {count} copied")
        beats = np.where(addr >= 0, buf[:, np.maximum(addr, 0)], 0).astype(np.uint8)  # (S, B, n)
        try:
            stream, passes = run_segment(params, seg.writes, beats)
        except PimImageError as e:
            raise PimImageError(f"{where}, {e}") from None
        seg_passes.append(passes)
        beats_all.append(beats)
        offs = []
        k = 0
        for p in passes:  # the result entries in stream order
            if not p.last:
                continue
            ents = [unpack(RESULT_ENTRY, seg.results[k + t]) for t in range(p.n_out)] if p.n_out else []
            if k + p.n_out > len(seg.results) or (ents and not ents[-1]["end"]) or any(
                    e["end"] for e in ents[:-1]) or any(e["pixels"] != p.pixels for e in ents):
                raise PimImageError(f"{where}, segment {s}: result entries {k} .. do not describe its passes")
            k += p.n_out
            o = np.array([e["off"] for e in ents], np.int64)
            offs.append((o[None, :] + np.arange(p.pixels)[:, None] * ps).reshape(-1))
        if k != len(seg.results):
            raise PimImageError(f"{where}, segment {s}: {len(seg.results)} result entries, the passes stream "
                                f"{k} channels")
        top = 1 << (isa.BUFFERS["ACC"].elem_bits - 1)  # hw.pim_ctrl checks the same (ERROR_CODE 4)
        if stream.size and (int(stream.min()) < -top or int(stream.max()) >= top):
            raise PimImageError(f"{where}, segment {s}: a sum does not fit ACC's signed "
                                f"{isa.BUFFERS['ACC'].elem_bits}-bit elements (range)")
        if offs:
            place(np.concatenate(offs), stream)
    # im2col bit patterns of the windows the passes read (band pixels), for the core's timing
    Pb = max([_pass_fields(pw)["ho"] * lay["out_w"] + _pass_fields(pw)["wo"] + _pass_fields(pw)["pixels"]
              for seg in band.segments for pw in seg.passes] + [0])
    need = max([int(np.max(_windows(seg, p, lay, n))) + 1 for seg, passes in zip(band.segments, seg_passes)
                for p in passes] + [0])
    bits_all = np.zeros((S, Pb, need * n), np.uint8)
    for seg, passes, beats in zip(band.segments, seg_passes, beats_all):
        bi = 0
        for p, pw in zip(passes, seg.passes):
            f = _pass_fields(pw)
            p0 = f["ho"] * lay["out_w"] + f["wo"]
            nb = p.pixels * p.mask.shape[0]
            win = _windows(seg, p, lay, n)
            b = beats[:, bi:bi + nb].reshape(S, p.pixels, win.size, n)
            bi += nb
            cols = (win[:, None] * n + np.arange(n)[None, :]).reshape(-1)
            bits_all[:, p0:p0 + p.pixels][:, :, cols] = b.reshape(S, p.pixels, -1)
    plan = segment_plan(band, seg_passes, params.macro)
    tiles = [SimpleNamespace(rows=r) for r in plan.rows]
    macro = np.zeros(S, np.int64)
    if tiles:
        pix = pixel_cycles(bits_all.reshape(S * Pb, -1), tiles, params.macro).reshape(S, Pb, len(tiles))
        for i in range(len(tiles)):
            p0, npx = int(plan.p0[i]), int(plan.pixels[i])
            macro += pix[:, p0:p0 + npx, i].sum(1)
    else:
        pix = np.zeros((S, Pb, 0), np.int64)
    cyc = layer_cycles(plan, pix, params.macro, params.macros, params.core.tile_banks, params.core.out_banks,
                       in_windows=params.core.in_windows, result_lanes=params.core.result_lanes)
    return cyc, macro


def _windows(seg: SegmentImage, p, lay: dict, n: int) -> np.ndarray:
    """Window indices (im2col row // n_comp) of a decoded pass's mask words, from the window table."""
    ents = [unpack(register_fields(WINDOW_ENTRY), seg.table[p.mask_base + t]) for t in range(p.mask.shape[0])]
    return np.array([((e["channel"] * lay["kh"] + e["ki"]) * lay["kw"] + e["kj"]) // n for e in ents], np.int64)

"""Cycles of the RTL chip's controller (``hw.chip_ctrl``, docs/rtl.md "The chip top"), written once.

The controller runs one instruction at a time; it streams a SIMD
instruction's operands one buffer read a cycle (a read returns one element:
the SIMD core's full rate of a beat a cycle, :func:`model.simd_core.simd_cycles`,
is reached where a beat holds one element) while it writes the results back;
:func:`instruction_cycles` counts, for one SIMD instruction (and
HALT), the cycles of its named actions (:func:`pim_cycles` those of a PIM
instruction); :func:`model.chip.program_cycles` sums them into the chip's
``CYCLES`` register after a run to HALT. The RTL test
(tests/test_hw_chip.py) compares them with ``CYCLES`` on random programs;
the golden chip (:class:`model.chip.GoldenChip`, ``simd_cycles``) counts
with :func:`instruction_cycles` too (DWC included), so RTL and golden model
share this one timing; the performance model times a depthwise layer with
:func:`dwc_cycles` (the same count).
"""

from __future__ import annotations

import numpy as np

from dbpim.model import isa
from dbpim.model.spec import SIMD_LATENCY

__all__ = ["DESC_LOADED", "DWC_DESC_LOADED", "FIXED_CYCLES", "HALT_CYCLES", "PIM_FIXED_CYCLES", "desc_loaded",
           "dwc_cycles", "simd_extent", "pim_cycles", "instruction_cycles", "DMA_LATENCY", "DMA_FIXED_CYCLES", "dma_cycles"]

#: Descriptor words the controller loads for every instruction but DWC (the longest other SIMD descriptor: REQ /
#: MAXP, 9 words; PIM's first words).
DESC_LOADED = max(len(isa.OPCODES[n].desc) for n in ("REQ", "ADD", "MAXP", "GAP", "CLMP"))
#: Descriptor words the controller loads for DWC: all of them (15).
DWC_DESC_LOADED = len(isa.OPCODES["DWC"].desc)
#: Cycles of a SIMD instruction outside its constant loading and streaming: fetch, decode, load the descriptor
#: (one cycle more than its words), set up, two size cycles, check, send the SIMD descriptor, see it taken.
#: DWC loads :data:`DWC_DESC_LOADED` words: ``DWC_DESC_LOADED - DESC_LOADED`` cycles more.
FIXED_CYCLES = 1 + 1 + (DESC_LOADED + 1) + 1 + 2 + 1 + 1 + 1
#: Cycles of HALT: fetch, decode.
HALT_CYCLES = 2
#: Cycles of a PIM instruction outside its layers: fetch, decode, load the descriptor, set up (the top
#: controller, hw.chip_ctrl), then the PIM controller's (hw.pim_ctrl) check and finish.
PIM_FIXED_CYCLES = 1 + 1 + (DESC_LOADED + 1) + 1 + 1 + 1


#: The ideal DRAM's latency (cycles) under which ``CYCLES`` equals :func:`dma_cycles` (docs/rtl.md "Off-chip
#: memory"): the AXI4 slave takes AR, AW and W at once (``ARREADY``, ``AWREADY``, ``WREADY`` high), raises
#: ``RVALID`` of a burst's first beat this many cycles after its AR handshake and holds each next beat valid from
#: the cycle after the last one's handshake, and raises ``BVALID`` this many cycles after the WLAST handshake.
DMA_LATENCY = 8
#: Cycles of a LOAD / STORE outside its bursts: fetch, decode, load the descriptor (one cycle more than its words),
#: set up, then the DMA engine's (hw.dma) check and done.
DMA_FIXED_CYCLES = 1 + 1 + (DESC_LOADED + 1) + 1 + 1 + 1


def dma_cycles(op: str, desc: dict, latency: int = DMA_LATENCY) -> int:
    """Cycles of one LOAD / STORE (``desc`` its unpacked descriptor; a descriptor the DMA runs) with the ideal
    DRAM of :data:`DMA_LATENCY` (``latency`` cycles, at least 1).

    The transfer's words go in the bursts of :func:`model.isa.dma_bursts`. Per LOAD burst: one cycle of AR,
    ``latency - 1`` to its first beat, then one cycle an element (a beat of two ACT elements takes two: ``RREADY``
    is low while the second is written). Per STORE burst: one cycle of AW, then one cycle an element (the buffer's
    read port read ahead: a beat a cycle, a beat of two ACT elements two: its first is held while the second is
    read), then ``latency`` cycles to the response. Both move one buffer element a cycle, the rate of the buffer's
    one read (write) port.
    """
    buf = {c: n for n, c in isa.DMA_BUFFERS.items()}[desc["buffer"]]
    count, per = int(desc["count"]), isa.dma_elems_per_beat(buf)
    total, left = DMA_FIXED_CYCLES, count
    for beats in isa.dma_bursts(desc["addr"], isa.dma_beats(buf, count)):
        elems = min(left, beats * per)
        left -= elems
        total += latency + elems if op == "LOAD" else 1 + elems + latency
    return total


def desc_loaded(op: str) -> int:
    """Descriptor words the controller loads for an instruction ``op`` (:data:`DESC_LOADED`, DWC's
    :data:`DWC_DESC_LOADED`)."""
    return DWC_DESC_LOADED if op == "DWC" else DESC_LOADED


def _geometry(op: str, d: dict):
    """``(outer, C, H, W, Ho, Wo, (KH, KW), (SH, SW), (PH, PW), (DH, DW))`` of the controller's window walk."""
    one = (1, 1)
    if op == "REQ":
        return d["outer"], d["C"], 1, d["inner"], 1, d["inner"], one, one, (0, 0), one
    if op in ("ADD", "CLMP"):
        return 1, 1, 1, d["count"], 1, d["count"], one, one, (0, 0), one
    if op in ("MAXP", "DWC"):
        return (1, d["C"], d["H"], d["W"], d["Ho"], d["Wo"]) + tuple(
            isa.unpack_pair(d[k]) for k in ("kernel", "stride", "padding", "dilation"))
    if op == "GAP":
        return 1, d["C"], 1, d["HW"], 1, 1, (1, d["HW"]), one, (0, 0), one
    raise ValueError(f"op: must be one of REQ, ADD, MAXP, GAP, CLMP, DWC, got {op!r}")


def simd_extent(op: str, d: dict) -> tuple[int, int, int]:
    """``(pixels, window, channels)`` of a SIMD instruction (``d`` its unpacked descriptor): what the chip
    controller's CHECK hands the SIMD core and tests (``outer x Ho x Wo`` pixels, ``KH x KW`` taps, ``C``)."""
    outer, C, _, _, Ho, Wo, (KH, KW), *_ = _geometry(op, d)
    return int(outer) * int(Ho) * int(Wo), int(KH) * int(KW), int(C)


def dwc_cycles(C: int, H: int, W: int, kernel, stride, padding, dilation, lanes: int) -> int:
    """Cycles of one DWC instruction on one sample: :func:`instruction_cycles` of its descriptor (an input ``(C,
    H, W)``, the pairs ``kernel``, ``stride``, ``padding``, ``dilation``; output sizes PyTorch's floor mode).

    The performance model's time of a depthwise layer (``sim_bench``), the one the RTL chip takes.
    """
    from dbpim.model.simd_ops import pool_geometry
    k, st, p, d, (ho, wo) = pool_geometry((1, C, H, W), kernel, stride, padding, dilation, "depthwise")
    desc = {"C": C, "H": H, "W": W, "Ho": ho, "Wo": wo, **{n: isa.pack_pair(*v) for n, v in
                                                          (("kernel", k), ("stride", st), ("padding", p),
                                                           ("dilation", d))}}
    return instruction_cycles("DWC", desc, lanes)


def pim_cycles(desc: dict, blocks, core_cycles, *, result_lanes: int = 1) -> int:
    """Cycles of one PIM instruction (``desc`` its unpacked descriptor) on one sample.

    ``blocks`` are its layers' WMEM blocks (:class:`model.pim_image.BlockImage`) and ``core_cycles`` the
    PIM core's cycles of each of their STARTs (:func:`model.core_timing.layer_cycles`, per block a sequence
    over its segments, band after band). Per block the PIM controller looks the block up (three cycles), reads
    its header (a cycle a word), zeroes the channels no tile holds (one cycle an entry, one a zero, one to go
    on), and per band reads its header (one cycle, then a word a cycle), copies its inputs from ACT into the
    input buffers (one cycle to set up, one an input) and runs its segments in rounds
    (:attr:`model.pim_image.BandImage.rounds`: up to ``cores`` segments, one on each PIM core), then one
    cycle ends the band's segments. Per round it programs each segment's core in turn: reads its header (one
    cycle, then a word a cycle), makes its bus writes (two cycles each, one to go on), fills its window table
    (one cycle an entry, one to go on), reads its first pass descriptor (four cycles; one when there is none;
    the round's cores 1 .. read all their pass descriptors, four cycles each, the others into the core's pass
    queue) and hands it its passes and result entries (one; the round's last segment STARTs every core of the
    round in that cycle); then it runs the round's cores at the same time (the longest core's cycles, one more
    to see every core DONE: each core's result stream is always ready, core 0's into ACC, the others' into
    their result buffers) and drains the result buffers into ACC, core 1 first: per core one cycle to set up,
    one a result (:attr:`model.pim_image.SegmentImage.beats`), one to go on; one cycle ends the block's bands.
    With ``result_lanes`` (``core.result_lanes``) L > 1 every core of the round, core 0 included, streams into
    its result buffer (a beat of L results a word) and the drain starts with core 0
    (:func:`model.pim_image.drained_cores`): still one result a cycle (empty lanes take none).
    """
    from dbpim.model.pim_image import BAND_HEADER, PIM_HEADER, SEGMENT_HEADER, drained_cores
    total = PIM_FIXED_CYCLES
    if len(blocks) != len(core_cycles):
        raise ValueError(f"core_cycles: one sequence per block ({len(blocks)}), got {len(core_cycles)}")
    for blk, cyc in zip(blocks, core_cycles):
        cyc = [int(c) for c in cyc]
        if len(cyc) != len(blk.segments):
            raise ValueError(f"core_cycles: one count per segment ({len(blk.segments)}), got {len(cyc)}")
        total += 3 + len(PIM_HEADER) + 1 + len(blk.zeros) * (1 + blk.pixels) + 1
        at = 0
        for band in blk.bands:
            total += 1 + len(BAND_HEADER) + 1 + band.count + 1
            for rnd in band.rounds:
                for core, i in enumerate(rnd):
                    seg = band.segments[i]
                    total += (1 + len(SEGMENT_HEADER) + 1 + 2 * len(seg.writes) + 1 + len(seg.table)
                              + (4 * (len(seg.passes) if core else 1) if seg.passes else 1) + 1)
                total += max(cyc[at + i] for i in rnd) + 1
                total += sum(1 + band.segments[i].beats + 1 for i in drained_cores(rnd, result_lanes))
            at += len(band.segments)
    return total


def instruction_cycles(op: str, desc: dict, lanes: int, pim=None) -> int:
    """Cycles the controller spends on one instruction (``desc`` its unpacked descriptor).

    PIM: :func:`pim_cycles` of ``pim`` = ``(blocks, core_cycles)`` or ``(blocks, core_cycles, result_lanes)``
    (what :func:`model.pim_image.run_pim` read and counted for the sample; ``core.result_lanes``, 1 if left
    out). LOAD / STORE: :func:`dma_cycles` (the ideal DRAM).

    Constants: REQ reads ``m``, ``s`` (and ``bias`` with ``has_bias``) per channel, a word a cycle (each read
    issued while the word before is taken), one more cycle per channel group to take its last word, then writes
    each channel group (one cycle, one more between groups); DWC the same with a bias; ADD and GAP write their
    scalars into each group (two cycles a group, one for the last).

    Streaming: the window walk's output beats ``k`` (per pixel of ``outer x Ho x Wo``, per channel group of
    ``n_k`` lanes, :func:`_stream_cycles`) each take ``s_k`` slots of one cycle, one per buffer read: ``n_k``
    per window element inside the input (ADD ``2 n_k``: a and b on ACT's one read port; DWC reads the weight
    from CMEM in the same cycle), one per padding window element. The beats of a window go to the SIMD core
    as they complete; its last beat goes no earlier than ``n_{k-1}`` cycles after the window before's (so
    that its result leaves the SIMD core when the write-back, a lane a cycle, is free): the stream takes
    ``s_0 + sum_{k >= 1} max(s_k, n_{k-1})`` cycles to its last beat, then one to take it,
    :data:`model.spec.SIMD_LATENCY` to its result and ``n_last`` writes. DWC loads
    :data:`DWC_DESC_LOADED` descriptor words, the others :data:`DESC_LOADED`.
    """
    if op == "HALT":
        return HALT_CYCLES
    if op in ("LOAD", "STORE"):
        return dma_cycles(op, desc)
    if op == "PIM":
        if pim is None:
            raise ValueError("PIM: its cycles depend on the WMEM image and the input; give pim=(blocks, core_cycles)")
        return pim_cycles(desc, *pim[:2], result_lanes=pim[2] if len(pim) > 2 else 1)
    geo = _geometry(op, desc)
    C = geo[1]
    groups = -(-C // lanes)
    lanes_of = [min(lanes, C - g * lanes) for g in range(groups)]
    if op in ("REQ", "DWC"):
        per_channel = 3 if op == "DWC" or desc["has_bias"] else 2
        consts = sum(n * per_channel + 1 for n in lanes_of) + 2 * groups - 1
    elif op in ("ADD", "GAP"):
        consts = 2 * groups - 1
    else:
        consts = 0
    return FIXED_CYCLES + desc_loaded(op) - DESC_LOADED + consts + _stream_cycles(geo, lanes_of, 2 if op == "ADD" else 1)


def _inside(out: int, size: int, k: int, stride: int, pad: int, dil: int) -> np.ndarray:
    """Per output index ``0 .. out - 1``: how many of its ``k`` window taps fall inside ``0 .. size - 1``."""
    pos = np.arange(out)[:, None] * stride - pad + np.arange(k)[None, :] * dil
    return ((pos >= 0) & (pos < size)).sum(axis=1)


def _stream_cycles(geo, lanes_of: list, reads: int) -> int:
    """Cycles of the stream of a window walk ``geo`` (:func:`_geometry`) over channel groups of ``lanes_of``
    lanes, ``reads`` buffer reads per lane inside the input (:func:`instruction_cycles`)."""
    outer, C, H, W, Ho, Wo, (kh, kw), (sh, sw), (ph, pw), (dh, dw) = geo
    inside = np.outer(_inside(Ho, H, kh, sh, ph, dh), _inside(Wo, W, kw, sw, pw, dw)).reshape(-1)
    win = kh * kw
    total = 0
    for g, n in enumerate(lanes_of):
        slots = reads * n * inside + (win - inside)          # s_k of this group at every pixel
        prev = lanes_of[g - 1]                               # n_{k-1}: the group before (the last one at g = 0)
        total += outer * int(np.maximum(slots, prev).sum())
    s0 = reads * lanes_of[0] * int(inside[0]) + win - int(inside[0])
    total -= max(s0, lanes_of[-1]) - s0                      # the first beat has no window before it
    return total + 1 + SIMD_LATENCY + lanes_of[-1]

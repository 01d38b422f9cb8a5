"""The PIM core of the paper's Fig. 6 (docs/design.md §11): switch, macros, output RF, layer controller.

* :class:`RowPacker` turns the sparse allocation switch's beats (up to
  ``lanes`` kept inputs) into cell rows of ``n_comp`` inputs for a macro.
* :class:`PIMCore` runs a compiled layer's loop nest from descriptors: one
  START runs every pass (a row tile of a filter tile over a run of output
  pixels), accumulating partial sums across row tiles in the output register
  file and streaming the results of each filter tile out. Its configuration
  port is a one-word register bus.
* :class:`PIMCoreAXI` is the top a designer connects: the core behind an
  AXI4-Lite target (:mod:`hw.axi`), AXI4-Stream input windows and results,
  ports named by the AXI conventions.

The cycle count of a run is :func:`model.core_timing.layer_cycles` exactly
(tested); the register map is :func:`model.spec.core_map`.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream
from amaranth.lib.wiring import In, Out

from dbpim.hw.axi import RESET_SYNC_STAGES, AXI4LiteTarget, aclk_domain, axil_ports, connect_axil
from dbpim.hw.common import Block, add_block, layout_from_fields, same_width
from dbpim.hw.macro import PIMMacro
from dbpim.hw.sram import addr_width, sram_1r1w
from dbpim.hw.switch import SparseSwitch
from dbpim.model.derived import Derived
from dbpim.model.spec import (BUS_BITS, CORE_REG, core_constants, digest_word, field_width, map_entry_fields, mask_entry_fields, packer_in_fields,
                        packer_out_fields, result_fields, tile_entry_fields, window_fields)

__all__ = ["RowPacker", "PIMCore", "PIMCoreAXI", "CORE_KEYS", "RESET_SYNC_STAGES"]

#: core parameter -> (HwConfig section, field)
CORE_KEYS = {
    "n_comp": ("macro", "n_comp"), "n_col": ("macro", "n_col"), "n_row": ("macro", "n_row"),
    "in_bits": ("macro", "in_bits"), "lanes": ("macro", "lanes"), "pipeline": ("macro", "pipeline"),
    "macros": ("system", "macros_per_core"), "tile_slots": ("core", "tile_slots"),
    "descriptors": ("core", "descriptors"), "mask_windows": ("core", "mask_windows"),
    "out_pixels": ("core", "out_pixels"), "max_row_tiles": ("core", "max_row_tiles"),
    "tile_banks": ("core", "tile_banks"), "out_banks": ("core", "out_banks"),
    "in_windows": ("core", "in_windows"), "result_lanes": ("core", "result_lanes"),
}


def _config_params(hw) -> dict:
    """The core's keyword parameters of an :class:`model.config.HwConfig`, ``digest`` included
    (``result_lanes`` only when it is not 1: the chip's core parameters stay as they were)."""
    params = {p: getattr(getattr(hw, sec), k) for p, (sec, k) in CORE_KEYS.items()}
    if params["result_lanes"] == 1:
        del params["result_lanes"]
    return params | {"digest": digest_word(hw.digest())}


class RowPacker(Block):
    """Packs switch beats into cell rows of ``n_comp`` inputs (docs/design.md §11).

    Kept inputs are placed one after another; a row leaves as soon as it
    holds ``n_comp`` inputs, and the beat flagged ``vend`` (the vector's last)
    flushes the partial row, zero-padded. When that last beat both completes a
    row and leaves a remainder, the remainder leaves in the next cycle, during
    which no beat is taken (one stall). Rows leave combinationally in the
    cycle of the beat that completes them. Twin: :func:`model.blocks.pack_rows`.

    Attributes
    ----------
    i : In(stream.Signature(StructLayout(packer_in_fields)))
        Beats of :class:`hw.switch.SparseSwitch` with ``vend`` (the vector's last beat).
    o : Out(stream.Signature(StructLayout(packer_out_fields)))
        Rows (``data``) with ``vend`` (the vector's last row).
    """

    CONFIG_KEYS = {"n_comp": "n_comp", "lanes": "lanes", "in_bits": "in_bits"}
    NAME = "row_packer"

    def __init__(self, *, n_comp: int, lanes: int, in_bits: int = 8):
        self._n_comp = self._param("n_comp", n_comp)
        self._lanes = self._param("lanes", lanes)
        self._in_bits = self._param("in_bits", in_bits)
        if lanes > n_comp:
            raise ValueError(f"lanes must be at most n_comp ({n_comp}), not {lanes!r}")
        super().__init__({
            "i": In(stream.Signature(layout_from_fields(packer_in_fields(lanes, in_bits)))),
            "o": Out(stream.Signature(layout_from_fields(packer_out_fields(n_comp, in_bits)))),
        })

    @property
    def latency(self) -> int:
        return 0

    latency_note = "a row leaves in the cycle of the beat that completes it; one stall cycle for a split last beat"

    def elaborate(self, platform):
        m = Module()
        n, lanes, w = self._n_comp, self._lanes, self._in_bits
        buf = Signal(n * w)              # the partial row, zero beyond fill
        fill = Signal(range(n + lanes))  # < n; as wide as the sum it is part of
        pend = Signal()                  # a vector's remainder waits in buf
        cnt = Signal(range(n + lanes))
        m.d.comb += cnt.eq(sum(self.i.payload.lane_en[k] for k in range(lanes)))
        merged = Signal((n + lanes) * w)  # the partial row with the beat's inputs placed from the fill point
        with m.Switch(fill):
            for f in range(n):  # fill < n
                with m.Case(f):
                    m.d.comb += merged.eq(buf | (self.i.payload.data.as_value() << (f * w)))
        total = Signal(range(n + lanes))
        m.d.comb += total.eq(fill + cnt)
        full = total >= n
        vend = self.i.payload.vend
        with m.If(pend):
            m.d.comb += [self.o.valid.eq(1), self.o.payload.data.eq(buf), self.o.payload.vend.eq(1),
                         self.i.ready.eq(0)]
            with m.If(self.o.ready):
                m.d.sync += [pend.eq(0), fill.eq(0), buf.eq(0)]
        with m.Else():
            emit = self.i.valid & (full | vend)
            m.d.comb += [
                self.o.valid.eq(emit), self.o.payload.data.eq(merged[:n * w]),
                self.o.payload.vend.eq(vend & ~(full & (total > n))),
                self.i.ready.eq(~emit | self.o.ready),
            ]
            with m.If(self.i.valid & self.i.ready):
                rest = merged[n * w:]
                with m.If(full):
                    m.d.sync += [buf.eq(rest), fill.eq(total - n)]
                    with m.If(vend):
                        with m.If(total > n):
                            m.d.sync += pend.eq(1)
                        with m.Else():
                            m.d.sync += [buf.eq(0), fill.eq(0)]
                with m.Elif(vend):
                    m.d.sync += [buf.eq(0), fill.eq(0)]
                with m.Else():
                    m.d.sync += [buf.eq(merged[:n * w]), fill.eq(total)]
        return m


def _popcount(v, width: int):
    return sum(v[k] for k in range(width))


def _reg_word(reg, values: dict):
    """A register's read word: each field's value at its bit position (:data:`model.spec.CORE_REGISTERS`)."""
    parts, at = [], 0
    for f in sorted((reg.field(n) for n in values), key=lambda f: f.lsb):
        if f.lsb > at:
            parts.append(Const(0, f.lsb - at))
        v = values[f.name]
        parts.append(Const(v, f.width) if isinstance(v, int) else v)
        at = f.lsb + f.width
    return Cat(*parts)


def _reserved(data, size: int):
    """The padding bits of a memory word past its ``size`` used bits are not zero (0 when there are none)."""
    return data[size:] != 0 if len(data) > size else Const(0, 1)


@dataclass
class _OutputRF:
    """The controller's handles on :meth:`PIMCore._output_rf`."""

    drain_row: list      # per macro: vectors drained in this pass (cleared by DECODE)
    hand_off: Signal     # in: a last pass's results are complete; stream them (only when ``free``)
    free: Signal         # out: a hand-off may happen in this cycle
    ends: Signal         # out: the stream's final beat is taken in this cycle
    streaming: Signal    # out: a stream is under way


class PIMCore(Block):
    """One PIM core: the sparse allocation switch feeding ``macros`` macros that hold one tile.

    Parameters are those of :class:`hw.macro.PIMMacro` plus ``lanes`` (switch
    outputs per cycle), ``macros`` (macros per core) and the capacities of the
    core's memories (``tile_slots``, ``descriptors``, ``mask_windows``,
    ``out_pixels``, ``max_row_tiles``), ``tile_banks`` (tiles per macro,
    1 or 2), ``out_banks`` (output register file banks, 1 or 2),
    ``in_windows`` (input windows per ``x`` beat = switches and row packers,
    dividing ``macros``) and ``result_lanes`` (results per ``o`` beat,
    dividing ``macros``; docs/design.md §11). Build it from a configuration
    with :meth:`from_config`.

    **Programming** (register bus, :func:`model.spec.core_map`): tiles into
    the tile store and column maps, masks into the mask register file,
    descriptors, then ``LAYER`` (descriptor count, signed inputs) and
    ``CTRL.START``. Memories and ``LAYER`` survive reset.

    **Run**: descriptor by descriptor (= pass): read it, load its tile into all
    macros at once (one cell row per cycle, configuration and column map with
    the first), then rounds of ``macros`` output pixels: while the macros
    compute round r (released together from ``hold`` once none is
    ``computing`` and at least ``n_col`` cycles after the previous round), the
    switch delivers round r+1's input vectors, one macro after another, from
    the input stream ``x`` (the pass's windows of each pixel in order). Each
    macro's results drain from its output banks into its bank of the output
    register file while it computes on (overwrite on ``first``, add
    otherwise). A ``last`` pass then streams its ``pixels x n_out`` partial
    sums on ``o``, pixel by pixel (``result_lanes`` L > 1: ``L`` pixels a
    beat, below). Cycles: :func:`model.core_timing.layer_cycles`.

    **Several result lanes** (``result_lanes`` L > 1): a beat of ``o``
    carries one filter's partial sums of L pixels, lane i from macro
    ``gL + i``'s bank (all banks read at one address); the stream goes lane
    group by lane group (those holding a pixel), filter by filter, so a pass
    streams ``ceil(pixels / L) * n_out`` beats; ``o_keep`` bit i is low for
    a lane past the pass's last pixel (:func:`model.core.result_order`).

    **Several input windows** (``in_windows`` W > 1): a beat of ``x``
    carries W windows and W switches with their row packers, in lock step
    (one mask, one controller), deliver a group of W macros' vectors at once
    (macros ``gW .. gW + W - 1``, window s to macro ``gW + s``); a round's
    groups follow one another (:func:`model.core.input_windows`).

    **Two tile banks** (``tile_banks=2``): at a pass's first round start the
    controller reads the next descriptor (same START) and loads its tile into
    the macros' other bank (``w_bank``) while the pass computes, drains and
    streams; the next pass's DECODE switches the bank the macros compute on
    (``sel``) and its first round waits only for the rows still to load.

    **Two output banks** (``out_banks=2``): a ``last`` pass hands its
    results to the stream at the end of its drain and the next pass starts
    at once, its drains filling the other bank; the next hand-off waits for
    the stream's final beat (:meth:`_output_rf`). DONE rises after the
    START's final beat; a failed run (``ABORT``) lets a stream under way end
    first.

    **Reset** aborts the run; the output register file is only ever read by a
    ``last`` pass after its own ``first`` pass overwrote it, so nothing
    half-written leaves the core.

    Attributes
    ----------
    bus : the register bus (``w_en``, ``w_addr``, ``w_data``, ``w_strb``, ``r_addr``, ``r_data``: read
        combinationally)
    x : In(stream.Signature(window layout))
    o : Out(stream.Signature(StructLayout({"psum"})))  with ``o_last`` (``psum`` an array of ``result_lanes``
        and ``o_keep`` Out(result_lanes) when ``result_lanes`` > 1)
    busy, done, error : Out(1)
    """

    CONFIG_KEYS = {k: v[1] for k, v in CORE_KEYS.items() if v[0] == "macro"}
    NAME = "pim_core"

    def __init__(self, *, n_comp: int, n_col: int, n_row: int, in_bits: int = 8, lanes: int, pipeline: bool = False,
                 macros: int, tile_slots: int, descriptors: int, mask_windows: int, out_pixels: int,
                 max_row_tiles: int, tile_banks: int = 1, out_banks: int = 1, in_windows: int = 1,
                 result_lanes: int = 1, digest: int = 0):
        if not isinstance(digest, int) or isinstance(digest, bool) or not 0 <= digest < 1 << BUS_BITS:
            raise ValueError(f"digest must be an integer from 0 to 2**{BUS_BITS} - 1, not {digest!r}")
        self._digest = digest
        p = {k: self._param(k, v) for k, v in dict(
            n_comp=n_comp, n_col=n_col, n_row=n_row, in_bits=in_bits, lanes=lanes, pipeline=pipeline,
            macros=macros, tile_slots=tile_slots, descriptors=descriptors, mask_windows=mask_windows,
            out_pixels=out_pixels, max_row_tiles=max_row_tiles, tile_banks=tile_banks,
            out_banks=out_banks, in_windows=in_windows).items()}
        if result_lanes != 1:  # a parameter only when not 1 (the Verilog and parameters of one lane unchanged)
            p["result_lanes"] = self._param("result_lanes", result_lanes)
        if lanes > n_comp:
            raise ValueError(f"lanes must be at most n_comp ({n_comp}), not {lanes!r}")
        if not isinstance(in_windows, int) or in_windows < 1 or macros % in_windows:
            raise ValueError(f"in_windows must be a positive integer dividing macros ({macros}), not {in_windows!r}")
        if not isinstance(result_lanes, int) or result_lanes < 1 or macros % result_lanes:
            raise ValueError(f"result_lanes must be a positive integer dividing macros ({macros}), "
                             f"not {result_lanes!r}")
        self._lanes_out = result_lanes
        self._p = p
        self._params["digest"] = digest  # the DIGEST register (model.spec.digest_word of the configuration)
        #: widths and the register map, computed once (the golden model's CoreParams reads the same object)
        self.derived = Derived.compute(n_comp=n_comp, n_col=n_col, n_row=n_row, in_bits=in_bits,
                                       tile_slots=tile_slots, descriptors=descriptors, mask_windows=mask_windows,
                                       out_pixels=out_pixels, max_row_tiles=max_row_tiles)
        self.map = self.derived.map
        self.psum_width = self.derived.psum_bits
        word = self.derived.word_addr_bits
        super().__init__({
            "w_en": In(1), "w_addr": In(word), "w_data": In(BUS_BITS), "w_strb": In(BUS_BITS // 8),
            "r_addr": In(word), "r_data": Out(BUS_BITS),
            "x": In(stream.Signature(layout_from_fields(window_fields(n_comp, in_bits, in_windows)))),
            "o": Out(stream.Signature(layout_from_fields(result_fields(self.psum_width, result_lanes)))),
            "o_last": Out(1), **({"o_keep": Out(result_lanes)} if result_lanes > 1 else {}),
            "busy": Out(1), "done": Out(1), "error": Out(1),
        })

    @classmethod
    def from_config(cls, hw) -> "PIMCore":
        """Build from a :class:`model.config.HwConfig` (macro, ``system.macros_per_core``, core; its digest)."""
        return cls(**_config_params(hw))

    @property
    def latency(self) -> int:
        """Cycles from START to the first descriptor's tile load (``model.spec.CORE_LATENCY``)."""
        from dbpim.model.spec import CORE_LATENCY
        return CORE_LATENCY["start"]

    latency_note = "a run's cycles are model.core_timing.layer_cycles (tile loads, rounds, drains, result streaming)"

    # ------------------------------------------------------------------ register bus
    def _region_write(self, m, region, wp):
        """Drive write port ``wp`` (byte enables) of a region's memory with the bus words of ``region``.

        A region starts at a multiple of its (power-of-two) size: its high word-address bits select it, the
        low ones are (entry, word) with the word index in the ``stride``'s bits.
        """
        size_bits = (region.size // 4 - 1).bit_length()
        wb = (region.stride - 1).bit_length()
        entry = self.w_addr[wb:size_bits]
        word = self.w_addr[:wb]
        hit = self.w_en & (self.w_addr[size_bits:] == (region.base // 4) >> size_bits)
        if region.entries < 1 << len(entry):
            hit &= entry < region.entries
        if region.words < region.stride:
            hit &= word < region.words
        sel = Signal(name=f"{region.name}_sel")
        m.d.comb += [sel.eq(hit), wp.addr.eq(entry), wp.data.eq(Cat(*([self.w_data] * region.words)))]
        for k in range(region.words):
            with m.If(sel & ((word == k) if wb else 1)):
                m.d.comb += wp.en[4 * k:4 * k + 4].eq(self.w_strb)

    def _output_rf(self, m, macros, cur, platform=None) -> "_OutputRF":
        """The output register file and the result stream ``o`` (docs/design.md §11, "Output banks").

        One bank per macro (``out_banks`` = 2: two per macro) of rows of
        ``n_col`` partial sums at a power-of-two stride; a macro's results
        drain into the bank in the order of its rounds (``drain_row`` counts
        its drained vectors, cleared by DECODE) and are written (``first``)
        or added. A last pass's ``hand_off`` starts the stream of its
        ``pixels x n_out`` results, pixel by pixel, across the macros' banks
        in round order; with two banks the drains then fill the other bank
        (``acc_bank``) while the stream reads this one, and the next hand-off
        waits for ``free``: no stream, or its final beat in this cycle, so
        back-to-back streams leave no gap. A stream, once started, ends
        (``ends``: its final beat taken) even if the run aborts: a beat
        offered stays offered (AXI4-Stream).

        With ``result_lanes`` L > 1 a beat reads the same word of every
        macro's bank and carries those of the L macros ``gL .. gL + L - 1``
        (lane group ``g = out_q_m``; ``out_q`` is then lane 0's pixel,
        stepping by L); ``o_keep`` marks the lanes holding a pixel of the pass.

        The banks read synchronously (:mod:`hw.sram`): a drained result's
        partial sum is read in the cycle of its beat and written (``first``) or
        added one cycle later (the beats of a drain are distinct addresses);
        the stream reads the word of its next beat one cycle ahead (the
        hand-off cycle reads the first), so the beats leave in the same cycles
        as from a combinational read.
        """
        p = self._p
        M, n_col, out_pixels, ob, psw = p["macros"], p["n_col"], p["out_pixels"], p["out_banks"], self.psum_width
        L = self._lanes_out
        G = M // L                      # lane groups of a round (a row of the banks)
        bank_rows = -(-out_pixels // M)
        sb = (n_col - 1).bit_length()   # a row of a bank holds n_col partial sums at a power-of-two stride
        rf = _OutputRF(drain_row=[Signal(range(bank_rows + 1), name=f"drain_row{k}") for k in range(M)],
                       hand_off=Signal(name="hand_off"), free=Signal(name="stream_free"),
                       ends=Signal(name="stream_ends"), streaming=Signal(name="streaming"))
        acc_bank = Signal()             # the bank drains fill (out_banks 2)
        out_bank = Signal()             # the bank the stream reads (out_banks 2)
        out_q_m = Signal(range(G))      # the lane group streamed (L = 1: the macro)
        out_row = Signal(range(bank_rows))
        out_s = Signal.like(cur.n_out)
        out_q = Signal.like(cur.pixels)
        out_s_last = Signal.like(cur.n_out)   # n_out - 1 of the pass streamed, set at its hand-off
        out_q_last = Signal.like(cur.pixels)  # pixels - 1 of the pass streamed, set at its hand-off
        streaming = rf.streaming
        # the stream's position in the next cycle: the banks are read one cycle ahead of the beat
        nx_s, nx_q_m, nx_row = Signal.like(out_s), Signal.like(out_q_m), Signal.like(out_row)
        nx_bank = Signal()              # out_banks 2: the bank the stream reads in the next cycle
        nx_reads = Signal()             # the stream reads in the next cycle (or may: a final beat not yet taken)
        m.d.comb += [nx_s.eq(out_s), nx_q_m.eq(out_q_m), nx_row.eq(out_row), nx_reads.eq(streaming)]
        if ob == 2:
            m.d.comb += nx_bank.eq(out_bank)
        with m.If(self.o.valid & self.o.ready):
            with m.If(out_s == out_s_last):
                m.d.comb += nx_s.eq(0)
                with m.If(out_q_m == G - 1):
                    m.d.comb += [nx_q_m.eq(0), nx_row.eq(out_row + 1)]
                with m.Else():
                    m.d.comb += nx_q_m.eq(out_q_m + 1)
            with m.Else():
                m.d.comb += nx_s.eq(out_s + 1)
        with m.If(rf.hand_off):
            m.d.comb += [nx_s.eq(0), nx_q_m.eq(0), nx_row.eq(0), nx_reads.eq(1)]
            if ob == 2:
                m.d.comb += nx_bank.eq(acc_bank)
        m.d.sync += [out_s.eq(nx_s), out_q_m.eq(nx_q_m), out_row.eq(nx_row)]
        first = Signal()                # cur.first of the drained beats written this cycle
        m.d.sync += first.eq(cur.first)
        rd_macro = []
        for k, mac in enumerate(macros):
            # a drained beat is read now and written (or added) in the next cycle
            wr_en, wr_bank = Signal(name=f"orf_wr_en{k}"), Signal(name=f"orf_wr_bank{k}")
            wr_addr = Signal(addr_width(bank_rows << sb), name=f"orf_wr_addr{k}")
            wr_acc = Signal.like(mac.o.payload.acc, name=f"orf_wr_acc{k}")
            drain_addr = Cat(mac.o.payload.slot, rf.drain_row[k])
            m.d.sync += [wr_en.eq(mac.o.valid), wr_addr.eq(drain_addr), wr_acc.eq(mac.o.payload.acc)]
            if ob == 2:
                m.d.sync += wr_bank.eq(acc_bank)
            rd_bank = []
            for b in range(ob):
                bank = sram_1r1w(m, "orf", width=psw, depth=bank_rows << sb, platform=platform,
                                 name=f"orf{k}" if ob == 1 else f"orf{k}_{b}")
                wp, rp = bank.w, bank.r
                rd_bank.append(rp.data)
                streams_here = nx_reads if ob == 1 else nx_reads & (nx_bank == b)
                m.d.comb += [
                    rp.addr.eq(Mux(streams_here, Cat(nx_s[:sb], nx_row), drain_addr)),
                    wp.addr.eq(wr_addr),
                    wp.en.eq(wr_en if ob == 1 else wr_en & (wr_bank == b)),
                    wp.data.eq(Mux(first, wr_acc, rp.data.as_signed() + wr_acc)),
                ]
            rd_macro.append(rd_bank[0] if ob == 1 else Mux(out_bank, rd_bank[1], rd_bank[0]))
            m.d.comb += mac.o.ready.eq(1)
            with m.If(mac.o.valid & mac.o.payload.last):
                m.d.sync += rf.drain_row[k].eq(rf.drain_row[k] + 1)
        if L == 1:
            rd_sel = Signal(psw)
            m.d.comb += rd_sel.eq(Cat(*rd_macro).word_select(out_q_m, psw) if M > 1 else rd_macro[0])
            out_last = (out_q == out_q_last) & (out_s == out_s_last)
            m.d.comb += self.o.payload.psum.eq(rd_sel.as_signed())
        else:  # lane i: macro out_q_m * L + i, pixel out_q + i (kept while <= out_q_last)
            rd_sel = Signal(L * psw)
            m.d.comb += rd_sel.eq(Cat(*rd_macro).word_select(out_q_m, L * psw) if G > 1 else Cat(*rd_macro))
            group_end, q_last = same_width(m, out_q + L, out_q_last, "out_group_end")
            out_last = (group_end > q_last) & (out_s == out_s_last)
            for i in range(L):
                q_i, q_l = same_width(m, out_q + i, out_q_last, f"out_lane{i}")
                m.d.comb += [self.o.payload.psum[i].eq(rd_sel[i * psw:(i + 1) * psw].as_signed()),
                             self.o_keep[i].eq(q_i <= q_l)]
        m.d.comb += [
            self.o.valid.eq(streaming), self.o_last.eq(out_last),
            rf.ends.eq(streaming & self.o.ready & out_last),
            rf.free.eq(~streaming | rf.ends),
        ]
        with m.If(self.o.valid & self.o.ready):
            with m.If(out_s == out_s_last):
                m.d.sync += out_q.eq(out_q + L)
                with m.If(out_last):
                    m.d.sync += streaming.eq(0)
        with m.If(rf.hand_off):  # only when free: the stream before it is over (or ends in this cycle)
            m.d.sync += [streaming.eq(cur.n_out != 0), out_q.eq(0),
                         out_q_last.eq(cur.pixels - 1), out_s_last.eq(cur.n_out - 1)]
            if ob == 2:
                with m.If(cur.n_out != 0):
                    m.d.sync += [out_bank.eq(acc_bank), acc_bank.eq(~acc_bank)]
        return rf

    def elaborate(self, platform):  # noqa: C901 - one controller, read top to bottom
        m = Module()
        p = self._p
        n_comp, n_col, n_row, in_bits, lanes = p["n_comp"], p["n_col"], p["n_row"], p["in_bits"], p["lanes"]
        M, out_pixels, max_rt = p["macros"], p["out_pixels"], p["max_row_tiles"]
        banks = p["tile_banks"]
        cap = n_comp * n_row
        lc = (n_comp - 1).bit_length()
        regions = self.map.regions
        psw = self.psum_width

        # ---- memories (contents survive reset: SRAM) and their bus write ports
        #      (hw.sram: each one memory of its kind, with the kind's read latency)
        def region_mem(name):
            r = regions[name]
            mem = sram_1r1w(m, name, width=r.words * BUS_BITS, depth=r.entries, platform=platform,
                            name=f"{name}_mem", granularity=8)
            self._region_write(m, r, mem.w)
            return mem

        desc_mem, mask_mem, map_mem, tile_mem = (region_mem(k) for k in ("desc", "mask", "map", "tile"))
        desc_rd, mask_rd, map_rd, tile_rd = desc_mem.r, mask_mem.r, map_mem.r, tile_mem.r
        desc_layout = layout_from_fields(regions["desc"].fields)
        map_layout = layout_from_fields(map_entry_fields(n_col))
        tile_layout = layout_from_fields(tile_entry_fields(n_comp, n_col))
        mask_layout = layout_from_fields(mask_entry_fields(n_comp))

        # ---- registers
        n_desc = Signal(16, reset_less=True)
        signed_in = Signal(reset_less=True)
        start_req = Signal()
        done = Signal()
        error = Signal()
        err_code = Signal(4)
        cycles = Signal(32)
        layer, ctrl = CORE_REG["LAYER"], CORE_REG["CTRL"]

        def wfield(reg, name):
            f = reg.field(name)
            return self.w_data[f.lsb:f.lsb + f.width]

        with m.If(self.w_en & (self.w_addr == layer.word)):
            m.d.sync += [n_desc.eq(wfield(layer, "N_DESC")), signed_in.eq(wfield(layer, "SIGNED"))]
        m.d.comb += start_req.eq(self.w_en & (self.w_addr == ctrl.word) & wfield(ctrl, "START"))
        read_values = {
            "STATUS": {"BUSY": self.busy, "DONE": done, "ERROR": error, "ERROR_CODE": err_code},
            "LAYER": {"N_DESC": n_desc, "SIGNED": signed_in}, "CYCLES": {"VALUE": cycles},
        } | {name: {"VALUE": v} for name, v in core_constants(
            n_comp=n_comp, n_col=n_col, n_row=n_row, lanes=lanes, macros=M, tile_slots=p["tile_slots"],
            descriptors=p["descriptors"], mask_windows=p["mask_windows"], out_pixels=out_pixels,
            max_row_tiles=max_rt, psum_bits=psw, digest=self._digest).items()}
        with m.Switch(self.r_addr):
            for name, values in read_values.items():
                with m.Case(CORE_REG[name].word):
                    m.d.comb += self.r_data.eq(_reg_word(CORE_REG[name], values))
        m.d.comb += [self.done.eq(done), self.error.eq(error)]

        # ---- datapath: W = in_windows switches and packers (one lane of the input beat each; they run in
        #      lock step: one mask, the same handshakes, so lane 0's drive the control), macros (reset on
        #      abort as well)
        W = p["in_windows"]
        abort = Signal()
        switches, packers = [], []
        for s in range(W):
            switch = SparseSwitch(window=n_comp, lanes=lanes, width=in_bits)
            packer = RowPacker(n_comp=n_comp, lanes=lanes, in_bits=in_bits)
            add_block(m, "switch" if W == 1 else f"switch{s}", switch, platform, extra_reset=abort)
            add_block(m, "packer" if W == 1 else f"packer{s}", packer, platform, extra_reset=abort)
            switches.append(switch)
            packers.append(packer)
        switch, packer = switches[0], packers[0]
        macros = []
        for k in range(M):
            mac = PIMMacro(n_comp=n_comp, n_col=n_col, n_row=n_row, in_bits=in_bits, pipeline=p["pipeline"],
                           tile_banks=banks)
            add_block(m, f"macro{k}", mac, platform, extra_reset=abort)
            macros.append(mac)

        # ---- the current descriptor
        cur = Signal(desc_layout)
        desc_idx = Signal(16)
        rt_count = Signal(range(max_rt + 1))

        # ---- delivery: windows -> switch (with masks) -> packer -> macro of the round
        dv_act = Signal()                # windows of the round still to take
        dv_pix = Signal(range(out_pixels + 1))   # first pixel of the round being delivered
        dv_m = Signal(range(M))          # vectors of the round whose windows were all taken (W at a time)
        win = Signal.like(cur.mask_base)        # window of the vector (< n_win <= mask_windows)
        win_last = Signal.like(cur.mask_base)   # n_win - 1, set with the descriptor
        pk_m = Signal(range(M))          # macro the packer feeds (the first of its group of W)
        dv_done = Signal()               # every row of the round delivered
        fin_held = Signal()              # the switch holds a vector's last window
        kept_acc = Signal(range(cap + 1 + n_comp))
        dv_rem = Signal(range(out_pixels + 1))
        n_dv = Signal(range(M + 1))
        n_dv_last = Signal(range(M))        # vectors of the round being delivered, minus one
        m.d.comb += [dv_rem.eq(cur.pixels - dv_pix), n_dv.eq(Mux(dv_rem < M, dv_rem, M)), n_dv_last.eq(n_dv - 1)]
        mask = Signal(mask_layout)
        # the mask memory is read synchronously: mask_next is the address of the next cycle's window
        # (cur.mask_base + win as they will be), so mask holds the mask of window win in every cycle
        mask_next = Signal.like(mask_rd.addr)
        m.d.comb += [mask_next.eq(cur.mask_base + win), mask_rd.addr.eq(mask_next),
                     mask.eq(mask_rd.data[:mask_layout.size])]
        m.d.comb += self.x.ready.eq(switch.i.ready & dv_act)
        x_data = self.x.payload.data.as_value()
        for s, sw in enumerate(switches):  # window s of the beat
            m.d.comb += [
                sw.i.valid.eq(self.x.valid & dv_act),
                sw.i.payload.data.eq(x_data[s * n_comp * in_bits:(s + 1) * n_comp * in_bits]),
                sw.i.payload.mask.eq(mask.mask),
            ]

        def last_group(k, name):
            """``k`` (dv_m or pk_m) is the first macro of the round's last group."""
            if W == 1:
                return k == n_dv_last
            a, b = same_width(m, k + W, n_dv, name)
            return a >= b

        last_win = win == win_last
        kept_now = Signal.like(kept_acc)
        kept_win = Signal.like(kept_acc)      # kept inputs of the window (its mask's popcount)
        m.d.comb += [kept_win.eq(_popcount(mask.mask, n_comp)), kept_now.eq(kept_acc + kept_win)]
        bad_masks = Signal()  # checked at every window, before its inputs reach the packer (no hang)
        with m.If(switch.i.valid & switch.i.ready):
            m.d.sync += fin_held.eq(last_win)
            m.d.comb += bad_masks.eq((kept_now > cur.n_kept) | _reserved(mask_rd.data, mask_layout.size)
                                     | (last_win & ((kept_now != cur.n_kept) | (mask.mask == 0))))
            with m.If(last_win):
                m.d.sync += [win.eq(0), kept_acc.eq(0), dv_m.eq(dv_m + W)]
                m.d.comb += mask_next.eq(cur.mask_base)
                with m.If(last_group(dv_m, "dv_group")):
                    m.d.sync += dv_act.eq(0)
            with m.Else():
                m.d.sync += [win.eq(win + 1), kept_acc.eq(kept_now)]
                m.d.comb += mask_next.eq(cur.mask_base + win + 1)
        for sw, pk in zip(switches, packers):
            m.d.comb += [
                pk.i.valid.eq(sw.o.valid), sw.o.ready.eq(pk.i.ready),
                pk.i.payload.data.eq(sw.o.payload.data), pk.i.payload.lane_en.eq(sw.o.payload.lane_en),
                pk.i.payload.last.eq(sw.o.payload.last),
                pk.i.payload.vend.eq(sw.o.payload.last & fin_held),
            ]
        if W == 1:
            for k, mac in enumerate(macros):
                m.d.comb += [mac.x.valid.eq(packer.o.valid & (pk_m == k)),
                             mac.x.payload.data.eq(packer.o.payload.data)]
            m.d.comb += packer.o.ready.eq(Cat(mac.x.ready for mac in macros).bit_select(pk_m, 1) if M > 1
                                          else macros[0].x.ready)
        else:  # macro gW + s takes packer s's rows while pk_m = gW, if the round has its pixel
            grp_ready = Signal()  # every macro of the group with a pixel takes the row
            for g in range(M // W):
                fed = [k < n_dv for k in range(g * W, g * W + W)]
                for s in range(W):
                    mac = macros[g * W + s]
                    m.d.comb += [mac.x.valid.eq(packers[s].o.valid & (pk_m == g * W) & fed[s]),
                                 mac.x.payload.data.eq(packers[s].o.payload.data)]
                with m.If(pk_m == g * W):
                    m.d.comb += grp_ready.eq(Cat(macros[g * W + s].x.ready | ~fed[s] for s in range(W)).all())
            for pk in packers:
                m.d.comb += pk.o.ready.eq(grp_ready)
        with m.If(packer.o.valid & packer.o.ready & packer.o.payload.vend):
            m.d.sync += pk_m.eq(pk_m + W)
            with m.If(last_group(pk_m, "pk_group")):
                m.d.sync += dv_done.eq(1)

        # ---- tile load: one cell row per cycle into every macro, configuration and column map with row 0
        rb = (n_row - 1).bit_length()

        def tile_addr(row, slot):  # tile store entry slot * n_row + row
            return slot if rb == 0 else Cat(row[:rb], slot)

        #      (the loader: tile store slot ld_slot, ld_rows cell rows, into macro bank ld_bank)
        ld_k = Signal(range(n_row + 1))
        loading = Signal()
        load_done = Signal()
        ld_slot = Signal.like(cur.tile)
        ld_rows = Signal(range(n_row + 1))
        pass_bank = Signal()  # the macros' bank the current pass computes on (tile_banks 2)
        ld_bank = Signal()   # the bank being loaded
        pf = Signal()        # tile_banks 2: the loader holds the next pass's tile (loading or loaded)
        pf_rd = Signal()     # tile_banks 2: the next descriptor is on desc_rd: start its load
        pf_bad = Signal()    # a padding bit was set in the next pass's tile or column map
        tile_entry = data.View(tile_layout, tile_rd.data[:tile_layout.size])
        map_entry = data.View(map_layout, map_rd.data[:map_layout.size])
        # the column map is read (synchronously) with row 0, used with it in the first load cycle
        m.d.comb += [map_rd.addr.eq(ld_slot), tile_rd.addr.eq(tile_addr(ld_k + 1, ld_slot))]
        for mac in macros:
            m.d.comb += [
                mac.w_en.eq(loading), mac.w_row.eq(ld_k),
                mac.w_cells.eq(tile_entry.cells), mac.w_idx.eq(tile_entry.idx), mac.w_sign.eq(tile_entry.sign),
                mac.c_en.eq(loading & (ld_k == 0)), mac.c_rows_used.eq(ld_rows), mac.c_signed.eq(signed_in),
                mac.c_slot.eq(map_entry.slot), mac.c_used.eq(map_entry.used),
            ]
            if banks == 2:
                m.d.comb += [mac.w_bank.eq(ld_bank), mac.sel.eq(pass_bank)]
        rows_last = Signal.like(ld_k)   # ld_rows - 1 (ld_rows >= 1: n_kept >= 1)
        m.d.comb += rows_last.eq(ld_rows - 1)
        with m.If(loading):
            with m.If(ld_k == rows_last):
                m.d.sync += [loading.eq(0), load_done.eq(1)]
            m.d.sync += ld_k.eq(ld_k + 1)
        # a tile or column map word with its padding bits set is a bad program too
        bad_word = loading & (_reserved(tile_rd.data, tile_layout.size)
                              | ((ld_k == 0) & _reserved(map_rd.data, map_layout.size)))
        with m.If(bad_word & pf):
            m.d.sync += pf_bad.eq(1)

        def start_load(d, to_bank):
            """Start loading descriptor ``d``'s tile (row 0 read now, written from the next cycle)."""
            m.d.comb += [tile_rd.addr.eq(tile_addr(Const(0, max(1, rb)), d.tile)), map_rd.addr.eq(d.tile)]
            m.d.sync += [ld_k.eq(0), loading.eq(1), load_done.eq(0), ld_slot.eq(d.tile), ld_bank.eq(to_bank),
                         ld_rows.eq((d.n_kept + (n_comp - 1)) >> lc)]

        if banks == 2:  # the next pass's tile into the other bank: its descriptor was read at the first round start
            pf_d = data.View(desc_layout, desc_rd.data[:desc_layout.size])
            pf_ok = (pf_d.n_kept != 0) & (pf_d.n_kept <= cap)
            if p["tile_slots"] < 1 << len(pf_d.tile):
                pf_ok &= pf_d.tile < p["tile_slots"]
            with m.If(pf_rd):
                m.d.sync += pf_rd.eq(0)
                with m.If(pf_ok):  # a bad descriptor is not prefetched: its DECODE reports it
                    start_load(pf_d, ~pass_bank)
                    m.d.sync += [pf.eq(1), pf_bad.eq(0)]

        # ---- rounds: all macros of a round start together (hold released for one cycle), when every
        #      macro has finished computing, the round is delivered and n_col cycles have passed since
        #      the last start (so the output bank each macro fills next has drained: double-buffered)
        st_pix = Signal(range(out_pixels + M + 1))   # first pixel of the next round to start
        n_st = Signal(range(M + 1))
        st_rem = Signal(range(out_pixels + 1))
        m.d.comb += [st_rem.eq(cur.pixels - st_pix), n_st.eq(Mux(st_rem < M, st_rem, M))]
        st_next = Signal.like(st_pix)
        m.d.comb += st_next.eq(st_pix + M)
        more_rounds = Signal()          # a round follows the one starting now
        a, b = same_width(m, st_next, cur.pixels, "st_next")
        m.d.comb += more_rounds.eq(a < b)
        idle = Signal()
        m.d.comb += idle.eq(Cat(~mac.computing for mac in macros).all())
        #: internal values a simulator testbench may watch (not ports): ``prefetching`` (a row of the
        #: next pass's tile is written, tile_banks 2), ``computing`` (a macro computes), ``streaming`` (results
        #: leave), ``delivering`` (a round's input windows are taken)
        self.probes = {"prefetching": loading & pf, "computing": ~idle}
        since = Signal(range(n_col + 1))             # cycles since the last round started (saturating)
        with m.If(since != n_col):
            m.d.sync += since.eq(since + 1)
        spaced = since == n_col
        barrier = Signal()
        for k, mac in enumerate(macros):
            m.d.comb += mac.hold.eq(~(barrier & (k < n_st)))
        with m.If(barrier):
            m.d.sync += since.eq(1)

        orf = self._output_rf(m, macros, cur, platform)
        self.probes |= {"streaming": orf.streaming, "delivering": dv_act}

        # ---- controller
        with m.If(self.busy):
            m.d.sync += cycles.eq(cycles + 1)
        next_desc = Signal()
        stop_loader = [loading.eq(0), pf.eq(0), pf_rd.eq(0)]

        def fail(code):
            """Abort the run with ``ERROR_CODE`` = ``code``: DONE and ERROR together, once no stream is under
            way (out_banks 2: a filter tile's results already streaming leave first, the core still busy)."""
            m.d.comb += abort.eq(1)
            m.d.sync += [err_code.eq(code), dv_act.eq(0)] + stop_loader
            if p["out_banks"] == 1:
                m.d.sync += [error.eq(1), done.eq(1)]
                m.next = "IDLE"
            else:
                m.next = "ABORT"

        with m.FSM():
            with m.State("IDLE"):
                with m.If(start_req):
                    m.d.sync += [done.eq(0), error.eq(0), err_code.eq(0), cycles.eq(0), desc_idx.eq(0),
                                 rt_count.eq(0)] + stop_loader
                    m.next = "NEXT"
                    if p["descriptors"] < 1 << len(n_desc):  # N_DESC can pass the descriptor memory: refuse it
                        with m.If(n_desc > p["descriptors"]):  # its address would wrap
                            fail(1)
            with m.State("NEXT"):
                m.d.comb += self.busy.eq(1)
                with m.If(desc_idx == n_desc):
                    with m.If(~orf.streaming):  # the START's last results are out
                        m.d.sync += done.eq(1)
                        m.next = "IDLE"
                with m.Else():
                    m.d.comb += desc_rd.addr.eq(desc_idx)
                    m.next = "DECODE"
            with m.State("DECODE"):
                m.d.comb += self.busy.eq(1)
                d = data.View(desc_layout, desc_rd.data[:desc_layout.size])
                mb, nw = same_width(m, d.mask_base, d.n_win, "desc_windows")
                bad_desc = ((d.n_win == 0) | (mb + nw > p["mask_windows"]) | (d.n_kept == 0) | (d.n_kept > cap)
                            | (d.pixels == 0) | (d.pixels > out_pixels) | (d.n_out > n_col)
                            | _reserved(desc_rd.data, desc_layout.size))
                if p["tile_slots"] < 1 << len(d.tile):
                    bad_desc |= d.tile >= p["tile_slots"]
                bad_acc = Mux(d.first, 0, (rt_count == 0) | (rt_count >= max_rt))
                bad_pf = pf & (pf_bad | bad_word)   # the prefetched tile of this pass
                with m.If(~pf):
                    start_load(d, pass_bank)
                with m.Else():  # tile_banks 2: its tile is in the other bank (loaded, or loading on)
                    m.d.sync += [pass_bank.eq(ld_bank), pf.eq(0)]
                with m.If(bad_desc | bad_acc | bad_pf):
                    fail(Mux(bad_desc | bad_pf, 1, 2))
                with m.Else():
                    m.d.comb += mask_next.eq(d.mask_base)  # the pass's first window
                    m.d.sync += [
                        cur.eq(d), rt_count.eq(Mux(d.first, 1, rt_count + 1)),
                        dv_act.eq(1), dv_pix.eq(0), dv_m.eq(0), win.eq(0), pk_m.eq(0), dv_done.eq(0),
                        kept_acc.eq(0), st_pix.eq(0), since.eq(n_col),
                        win_last.eq(d.n_win - 1),
                    ] + [r.eq(0) for r in orf.drain_row]
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += self.busy.eq(1)
                bad_tile = bad_word & ~pf   # this pass's own tile (a prefetched one is checked at its DECODE)
                m.d.comb += barrier.eq((load_done | pf) & dv_done & idle & spaced & ~bad_masks)
                with m.If(bad_masks | bad_tile):
                    fail(Mux(bad_masks, 3, 1))
                with m.Elif(barrier):
                    m.d.sync += st_pix.eq(st_next)
                    if banks == 2:  # the first round starts: read the next descriptor, load its tile meanwhile
                        nd, nn = same_width(m, desc_idx + 1, n_desc, "pf_desc")
                        with m.If((st_pix == 0) & (nd != nn)):
                            m.d.comb += desc_rd.addr.eq(desc_idx + 1)
                            m.d.sync += pf_rd.eq(1)
                    with m.If(more_rounds):
                        m.d.sync += [dv_act.eq(1), dv_pix.eq(st_next), dv_m.eq(0), pk_m.eq(0), dv_done.eq(0)]
                        m.next = "RUN"
                    with m.Else():
                        m.next = "FINISH"
            with m.State("FINISH"):  # the last round computes; the drains before it are over after n_col cycles
                m.d.comb += self.busy.eq(1)
                with m.If(idle & spaced):
                    m.d.sync += since.eq(1)
                    m.next = "DRAIN"
            with m.State("DRAIN"):  # the last round's results drain (at most n_col cycles, always waited)
                m.d.comb += self.busy.eq(1)
                with m.If(spaced & (~cur.last | orf.free)):  # a last pass hands its results to the stream
                    m.d.comb += orf.hand_off.eq(cur.last)
                    if p["out_banks"] == 1:
                        with m.If(cur.last & (cur.n_out != 0)):
                            m.next = "OUT"
                        with m.Else():
                            m.d.comb += next_desc.eq(1)
                            m.next = "NEXT"
                    else:  # out_banks 2: they stream from their bank while the next passes fill the other
                        m.d.comb += next_desc.eq(1)
                        m.next = "NEXT"
            if p["out_banks"] == 1:
                with m.State("OUT"):  # out_banks 1: the results stream out before the next pass
                    m.d.comb += self.busy.eq(1)
                    with m.If(orf.ends):
                        m.d.comb += next_desc.eq(1)
                        m.next = "NEXT"
            else:
                with m.State("ABORT"):  # a failed run waits for the stream under way (fail)
                    m.d.comb += self.busy.eq(1)
                    with m.If(~orf.streaming):
                        m.d.sync += [error.eq(1), done.eq(1)]
                        m.next = "IDLE"
        with m.If(next_desc):
            m.d.sync += desc_idx.eq(desc_idx + 1)
        return m


class PIMCoreAXI(Block):
    """The PIM core with AXI interfaces: the Verilog top a designer connects (``dbpim_core``).

    Ports (AXI names; ``aclk`` rising edge; ``aresetn`` active low, asynchronous assertion, released through a
    :data:`RESET_SYNC_STAGES`-flop synchronizer: the core is reset from the first ``aclk`` edge at which
    ``aresetn`` is low through the second edge after it rises):

    * ``s_axil_*``: AXI4-Lite target, 32-bit data, the register map of
      :func:`model.spec.core_map` (:class:`hw.axi.AXI4LiteTarget`);
    * ``s_axis_tdata/tvalid/tready``: input windows, ``in_windows`` x ``n_comp`` x ``in_bits``
      bits, element 0 lowest (:func:`model.spec.window_fields`);
    * ``m_axis_tdata/tvalid/tready/tlast``: results, one signed partial sum per
      beat (:func:`model.spec.result_fields`), ``tlast`` on a pass's final beat;
      with ``result_lanes`` L > 1, L partial sums a beat (lane i in bits ``i * rw .. i * rw + rw - 1``, ``rw``
      = :func:`model.spec.result_width`) and ``m_axis_tkeep`` (``L * rw / 8`` bits, a lane's bytes all high
      or all low: low for a lane past the pass's last pixel, only in its lane group's beats);
      driven from an output register (one beat, filled while empty or emptied in the same cycle), so each beat
      leaves one cycle after the core offers it and the core's cycles are those of a direct connection;
    * ``irq``: high while ``STATUS.DONE`` (cleared by the next START) and the output register is empty.
    """

    CONFIG_KEYS = PIMCore.CONFIG_KEYS
    NAME = "core"

    def __init__(self, **params):
        self.core = PIMCore(**params)
        self._params = self.core.parameters
        #: the synchronized reset of the core's domain (not a port; a formal harness or testbench watches it)
        self.in_reset = Signal(name="in_reset")
        aw = self.core.map.addr_width
        rw = self.core.derived.result_bits
        super().__init__({
            "aclk": In(1), "aresetn": In(1), **axil_ports(aw),
            "s_axis_tdata": In(field_width(window_fields(params["n_comp"], params.get("in_bits", 8),
                                                         params.get("in_windows", 1))[0])),
            "s_axis_tvalid": In(1), "s_axis_tready": Out(1),
            "m_axis_tdata": Out(rw * self.core._lanes_out), "m_axis_tvalid": Out(1), "m_axis_tready": In(1),
            "m_axis_tlast": Out(1),
            **({"m_axis_tkeep": Out(rw // 8 * self.core._lanes_out)} if self.core._lanes_out > 1 else {}),
            "irq": Out(1),
        })

    @classmethod
    def from_config(cls, hw) -> "PIMCoreAXI":
        return cls(**_config_params(hw))

    @property
    def map(self):
        return self.core.map

    @property
    def psum_width(self) -> int:
        return self.core.psum_width

    @property
    def latency(self) -> int:
        return self.core.latency

    latency_note = PIMCore.latency_note

    def elaborate(self, platform):
        m = Module()
        aclk_domain(m, self.aclk, self.aresetn, self.in_reset)  # aclk, aresetn through the reset synchronizer
        axil = AXI4LiteTarget(addr_width=self.core.map.addr_width)
        core = self.core
        add_block(m, "axil", axil, platform)
        add_block(m, "core", core, platform)
        connect_axil(m, self, axil)
        for sig in ("w_en", "w_addr", "w_data", "w_strb", "r_addr"):
            m.d.comb += getattr(core, sig).eq(getattr(axil, sig))
        m.d.comb += [
            axil.r_data.eq(core.r_data),
            core.x.valid.eq(self.s_axis_tvalid), core.x.payload.eq(self.s_axis_tdata), self.s_axis_tready.eq(core.x.ready),
        ]
        # the result stream leaves through a register (no path from the output register file's read to
        # m_axis_*): a beat enters it whenever it is empty or its beat leaves this cycle, so at full rate the
        # core streams exactly as without it (CYCLES unchanged) and each beat is one cycle later on m_axis;
        # irq waits for the last beat to leave
        out_valid = Signal()
        m.d.comb += [
            core.o.ready.eq(self.m_axis_tready | ~out_valid),
            self.m_axis_tvalid.eq(out_valid & ~self.in_reset),  # low while reset is asserted (AXI4-Stream)
            self.irq.eq(core.done & ~out_valid),
        ]
        with m.If(core.o.ready):
            m.d.sync += out_valid.eq(core.o.valid)
            with m.If(core.o.valid):
                m.d.sync += [self.m_axis_tdata.eq(core.o.payload.psum), self.m_axis_tlast.eq(core.o_last)]
                if core._lanes_out > 1:  # TKEEP: every byte of a lane as its o_keep bit
                    m.d.sync += self.m_axis_tkeep.eq(Cat(*(k.replicate(self.core.derived.result_bits // 8)
                                                          for k in core.o_keep)))
        return m

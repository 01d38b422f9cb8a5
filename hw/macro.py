"""The DB-PIM macro (docs/design.md §5, §7): IPU, DBMU array, CSD adder trees, shift-and-add accumulator."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream
from amaranth.lib.wiring import In, Out

from dbpim.hw.accumulator import ShiftAddAccumulator
from dbpim.hw.adder_tree import CSDAdderTree
from dbpim.hw.common import Block, add_block, layout_from_fields
from dbpim.hw.ipu import IPU
from dbpim.hw.lpu import LPU
from dbpim.hw.sram import SramPorts, sram_1r1w, sram_1rw
from dbpim.model.spec import META_BITS, acc_width, cycle_width, macro_in_fields, macro_out_fields, pipeline_latency

__all__ = ["PIMMacro"]


class PIMMacro(Block):
    """One PIM macro loaded with a compiled tile, computing one input vector at a time.

    Timing in clock cycles is :mod:`model.cycles` (``tile_load_cycles``,
    ``input_beats``, ``macro_schedule``), docs/design.md §7 and docs/rtl.md.

    **Loading a tile** (only while ``busy`` is low): ``w_*`` writes one whole
    cell row per cycle, the ``n_comp * n_col`` cells (bit ``c * n_col + j`` of
    ``w_cells`` = Q of compartment c, column j) and their (idx, sign) metadata
    (element / bit ``c * n_col + j`` of ``w_idx`` / ``w_sign``); ``c_*`` writes,
    in one cycle (also one of the row writes), the number of used cell rows
    (``Tile.n_rows_used``), the signed-input mode and the column map (``c_slot[j]``
    = ``Tile.col_filter[j]``, ``c_used`` bit j = ``col_filter[j] >= 0``). Only the
    used rows need writing: a tile loads in ``max(1, n_rows_used)`` cycles.
    The cells and the metadata are single-port SRAMs with synchronous read
    (:mod:`hw.sram`), one word per cell row.

    **Two tile banks** (``tile_banks=2``): the cells, the metadata, the
    configuration and the column map are held twice. ``w_*`` / ``c_*`` write
    bank ``w_bank``; the macro receives, computes and maps with bank ``sel``
    (the accumulator takes bank ``sel``'s column map one cycle after ``sel``
    or the map changes). The bank being written must not be ``sel`` while a
    vector computes; writing the other bank is allowed at any time (the PIM
    core loads the next pass's tile so). With ``tile_banks=1`` there are no
    ``w_bank`` / ``sel`` ports and the macro is as described above.

    **Input** ``x``: a vector is ``max(1, n_rows_used)`` beats, beat r = the
    ``n_comp`` inputs of cell row r (``model.macro.gather``; bit patterns,
    two's complement in signed mode), one beat per cycle. Two input buffers: the
    next vector loads while one computes. Each row's "non-empty" flag (OR of its
    inputs != 0) is stored with it.

    **Compute** starts in a cycle in which a full input buffer waits, the
    previous vector has finished, the output bank this vector will fill is free
    and ``hold`` is low. In the start cycle the accumulators clear and the
    lowest non-empty used row goes into the IPU (and its cell row is read from
    both SRAMs); every following cycle the IPU issues one non-zero bit column
    ``b`` of the held row (LSB first) and takes the next non-empty row in the
    cycle of its last column, so all-zero rows and all-zero bit columns cost no
    cycle. Each issued column drives the LPU of every cell of the row, the
    ``n_col`` CSD adder trees add the products with the (idx, sign) metadata,
    and the accumulator adds each slot's columns ``<< b`` (subtracts for the
    MSB column in signed mode).

    **Cycle count** (port ``cycles``): the clock cycles from the start cycle
    through the first cycle in which the final accumulator values are held,
    inclusive, i.e. ``N + pipeline_latency`` with ``N = sum over used rows of
    popcount(OR of the row)`` and ``pipeline_latency = 2 + pipeline``
    (:func:`model.spec.pipeline_latency`): one cycle for the IPU register (start
    cycle), one for the accumulator update, one for the adder-tree register when
    pipelined. The next vector can start in the following cycle.

    **Output** ``o``: two output banks. In that final cycle the accumulators
    are copied into the free bank, which then streams ``n_col`` beats
    ``(slot, acc, last)``, slot 0 first, while the next vector computes; while
    a bank is on ``o``, ``cycles`` shows the count of its vector.

    **Reset** (``rst``) aborts the vector in flight and empties the input
    buffers and the output banks; the loaded tile (cells, metadata, column map,
    configuration) is SRAM / configuration state and survives it.

    Parameters
    ----------
    n_comp : int
        Compartments (inputs in parallel), a power of two from 2 to 256.
    n_col : int
        DBMU columns per compartment, an even integer from 2 to 256.
    n_row : int
        Cells per DBMU, a power of two from 1 to 1024.
    in_bits : int
        Input width (8).
    pipeline : bool
        Register stage after the CSD adder trees.
    tile_banks : int
        Tiles held, 1 or 2 (``core.tile_banks``).

    Attributes
    ----------
    w_en : In(1)
    w_row : In(range(n_row))
    w_cells : In(n_comp * n_col)
    w_idx : In(ArrayLayout(2, n_comp * n_col))
    w_sign : In(n_comp * n_col)
    c_en : In(1)
    c_rows_used : In(range(n_row + 1))
    c_signed : In(1)
    c_slot : In(ArrayLayout(range(n_col), n_col))
    c_used : In(n_col)
    hold : In(1)
        While high no compute starts (a PIM core starts its macros together).
    x : In(stream.Signature(StructLayout({"data": ArrayLayout(in_bits, n_comp)})))
    o : Out(stream.Signature(StructLayout({"slot", "acc", "last"})))
    busy : Out(1)
        A vector is being received, waits or computes: do not load a tile.
    computing : Out(1)
        A vector computes (start cycle excluded, through its last cycle): low again in the first cycle in
        which the next vector may start (the PIM core starts a round when all its macros are low).
    cycles : Out(cycle_width(n_row, in_bits))
        Cycle count of the vector whose results are on ``o``.
    """

    CONFIG_KEYS = {"n_comp": "n_comp", "n_col": "n_col", "n_row": "n_row", "in_bits": "in_bits",
                   "pipeline": "pipeline"}  # tile_banks: core.tile_banks, given by the PIM core
    NAME = "macro"

    def __init__(self, *, n_comp: int, n_col: int, n_row: int, in_bits: int = 8, pipeline: bool = False,
                 tile_banks: int = 1):
        self._n_comp = self._param("n_comp", n_comp)
        self._n_col = self._param("n_col", n_col)
        self._n_row = self._param("n_row", n_row)
        self._in_bits = self._param("in_bits", in_bits)
        self._pipeline = self._param("pipeline", pipeline)
        self._banks = self._param("tile_banks", tile_banks)
        cells = n_comp * n_col
        bank_ports = {"w_bank": In(1), "sel": In(1)} if tile_banks == 2 else {}
        if tile_banks == 2:
            self.NAME = "macro_banks2"  # its own Verilog module (other ports) beside a one-bank dbpim_macro
        super().__init__({
            **bank_ports,
            "w_en": In(1), "w_row": In(range(n_row)),
            "w_cells": In(cells), "w_idx": In(data.ArrayLayout(2, cells)), "w_sign": In(cells),
            "c_en": In(1), "c_rows_used": In(range(n_row + 1)), "c_signed": In(1),
            "c_slot": In(data.ArrayLayout(range(n_col), n_col)), "c_used": In(n_col),
            "hold": In(1),
            "x": In(stream.Signature(layout_from_fields(macro_in_fields(n_comp, in_bits)))),
            "o": Out(stream.Signature(layout_from_fields(macro_out_fields(n_comp, n_col, n_row, in_bits)))),
            "busy": Out(1), "computing": Out(1),
            "cycles": Out(cycle_width(n_row, in_bits)),
        })

    @property
    def latency(self) -> int:
        """Fixed cycles added to the issued bit columns: :func:`model.spec.pipeline_latency`."""
        return pipeline_latency(self._pipeline)

    latency_note = ("cycles = sum over used rows of popcount(OR of the row) + latency; a tile loads in "
                    "max(1, n_rows_used) cycles, a vector is max(1, n_rows_used) input beats and n_col output "
                    "beats, input and output double-buffered (model.cycles.macro_schedule)")

    @property
    def acc_width(self) -> int:
        return acc_width(self._n_comp, self._n_col, self._n_row, self._in_bits)

    def elaborate(self, platform):
        m = Module()
        n_comp, n_col, n_row, in_bits = self._n_comp, self._n_col, self._n_row, self._in_bits
        row_w = n_comp * in_bits
        n_cells = n_comp * n_col

        banks = self._banks
        # ---- configuration registers (tile state: survives reset); two tile banks: one set per bank,
        #      written through w_bank, the one of bank ``sel`` in use
        rows_used = Signal(range(n_row + 1), reset_less=True)
        signed_in = Signal(reset_less=True)
        if banks == 1:
            with m.If(self.c_en):
                m.d.sync += [rows_used.eq(self.c_rows_used), signed_in.eq(self.c_signed)]
        else:
            rows_b = [Signal(range(n_row + 1), name=f"rows_used{k}", reset_less=True) for k in range(2)]
            signed_b = [Signal(name=f"signed_in{k}", reset_less=True) for k in range(2)]
            for k in range(2):
                with m.If(self.c_en & (self.w_bank == k)):
                    m.d.sync += [rows_b[k].eq(self.c_rows_used), signed_b[k].eq(self.c_signed)]
            m.d.comb += [rows_used.eq(Mux(self.sel, rows_b[1], rows_b[0])),
                         signed_in.eq(Mux(self.sel, signed_b[1], signed_b[0]))]
        rows_mask = Signal(n_row)
        last_row = Signal(range(n_row))  # a vector is max(1, n_rows_used) beats
        m.d.comb += [
            rows_mask.eq(Cat(rows_used > r for r in range(n_row))),
            last_row.eq(Mux(rows_used == 0, 0, rows_used - 1)),
        ]

        # ---- double-buffered input rows with per-row non-empty flags
        # two buffers of n_row rows in one memory: address = (buffer, row)
        xbuf = sram_1r1w(m, "xbuf", width=row_w, depth=2 * n_row, platform=platform)
        xbuf_w, xbuf_r = xbuf.w, xbuf.r
        nz = [Signal(n_row, name=f"nz{k}", reset_less=True) for k in range(2)]
        full = Signal(2)
        lp = Signal()            # buffer being loaded
        ld_row = Signal(range(n_row))
        ap = Signal()            # buffer computed next / now
        m.d.comb += self.x.ready.eq(~full.bit_select(lp, 1))
        x_data = self.x.payload.data.as_value()
        x_fire = self.x.valid & self.x.ready
        m.d.comb += [xbuf_w.en.eq(x_fire), xbuf_w.addr.eq(Cat(ld_row, lp)), xbuf_w.data.eq(x_data)]
        with m.If(x_fire):
            for k in range(2):
                with m.If(lp == k):
                    m.d.sync += nz[k].bit_select(ld_row, 1).eq(x_data != 0)
            with m.If(ld_row == last_row):
                m.d.sync += [ld_row.eq(0), full.bit_select(lp, 1).eq(1), lp.eq(~lp)]
            with m.Else():
                m.d.sync += ld_row.eq(ld_row + 1)

        # ---- row scheduler feeding the IPU (zero rows skipped)
        ipu = IPU(n_comp=n_comp, in_bits=in_bits, held_input=True)  # its group: the xbuf word read at row_take
        add_block(m, "ipu", ipu, platform)
        pending = Signal(n_row)
        pend_view = Signal(n_row)
        start = Signal()
        sel_row = Signal(range(n_row))
        for r in reversed(range(n_row)):
            with m.If(pend_view[r]):
                m.d.comb += sel_row.eq(r)
        row_take = Signal()  # the IPU takes row sel_row: read its inputs and its cell row from the three SRAMs
        m.d.comb += [
            pend_view.eq(Mux(start, Mux(ap, nz[1], nz[0]) & rows_mask, pending)),
            ipu.i.valid.eq(pend_view != 0),
            ipu.o.ready.eq(1),
            row_take.eq(ipu.i.valid & ipu.i.ready),
            xbuf_r.en.eq(row_take), xbuf_r.addr.eq(Cat(sel_row, ap)), ipu.i.payload.data.eq(xbuf_r.data),
        ]
        with m.If(row_take):
            m.d.sync += pending.eq(pend_view & (pend_view - 1))
        with m.Elif(start):
            m.d.sync += pending.eq(pend_view)

        # ---- cell array and metadata register file: one word per cell row, synchronous read
        meta_w = Cat(Cat(self.w_idx[k], self.w_sign[k]) for k in range(n_cells))
        if banks == 1:
            cells = sram_1rw(m, "cells", n_cells, n_row, platform)
            meta = sram_1rw(m, "meta", META_BITS * n_cells, n_row, platform)
            for mem, wdata in ((cells, self.w_cells), (meta, meta_w)):
                m.d.comb += [mem.cs.eq(self.w_en | row_take), mem.we.eq(self.w_en),
                             mem.addr.eq(Mux(self.w_en, self.w_row, sel_row)), mem.wdata.eq(wdata)]
        else:  # bank w_bank is written while bank sel computes (the core never writes the bank it computes on)
            q = {}
            for kind, wdata in (("cells", self.w_cells), ("meta", meta_w)):
                mems = [sram_1rw(m, kind, len(wdata), n_row, platform, name=f"{kind}{k}") for k in range(2)]
                for k, mem in enumerate(mems):
                    we = self.w_en & (self.w_bank == k)
                    m.d.comb += [mem.cs.eq(we | (row_take & (self.sel == k))), mem.we.eq(we),
                                 mem.addr.eq(Mux(we, self.w_row, sel_row)), mem.wdata.eq(wdata)]
                q[kind] = Signal(len(wdata), name=f"{kind}_rdata")
                m.d.comb += q[kind].eq(Mux(self.sel, mems[1].rdata, mems[0].rdata))
            cells, meta = (SramPorts(cs=None, we=None, addr=None, wdata=None, rdata=q[k]) for k in ("cells", "meta"))

        # ---- LPUs and CSD adder trees
        trees = []
        for j in range(n_col):
            tree = CSDAdderTree(n_comp=n_comp, pipeline=self._pipeline)
            add_block(m, f"tree{j}", tree, platform)
            trees.append(tree)
            m.d.comb += tree.i_valid.eq(ipu.o.valid)
        for c in range(n_comp):
            for j in range(n_col):
                k = c * n_col + j
                lpu = LPU()
                add_block(m, f"lpu_c{c}_j{j}", lpu, platform)
                m.d.comb += [
                    lpu.x.eq(ipu.o.payload.bits[c]), lpu.q.eq(cells.rdata[k]),
                    trees[j].hi[c].eq(lpu.hi), trees[j].lo[c].eq(lpu.lo),
                    trees[j].idx[c].eq(meta.rdata[META_BITS * k:META_BITS * k + 2]),
                    trees[j].sign[c].eq(meta.rdata[META_BITS * k + 2]),
                ]

        # ---- shift-and-add accumulator (its column map is written with the configuration)
        acc = ShiftAddAccumulator(n_comp=n_comp, n_col=n_col, n_row=n_row, in_bits=in_bits)
        add_block(m, "acc", acc, platform)
        b_acc = Signal(range(in_bits))
        if self._pipeline:  # delayed like the adder-tree sums
            m.d.sync += b_acc.eq(ipu.o.payload.b)
        else:
            m.d.comb += b_acc.eq(ipu.o.payload.b)
        m.d.comb += [
            acc.valid.eq(trees[0].o_valid), acc.b.eq(b_acc), acc.signed_in.eq(signed_in),
            acc.clear.eq(start),
        ]
        if banks == 1:
            m.d.comb += [acc.m_en.eq(self.c_en), acc.m_slot.eq(self.c_slot), acc.m_used.eq(self.c_used)]
        else:  # a column map per bank; the accumulator copies bank sel's every cycle (one cycle later)
            map_slot = [Signal.like(self.c_slot, name=f"map_slot{k}", reset_less=True) for k in range(2)]
            map_used = [Signal.like(self.c_used, name=f"map_used{k}", reset_less=True) for k in range(2)]
            for k in range(2):
                with m.If(self.c_en & (self.w_bank == k)):
                    m.d.sync += [map_slot[k].eq(self.c_slot), map_used[k].eq(self.c_used)]
            m.d.comb += [acc.m_en.eq(1), acc.m_slot.eq(Mux(self.sel, map_slot[1], map_slot[0])),
                         acc.m_used.eq(Mux(self.sel, map_used[1], map_used[0]))]
        for j in range(n_col):
            m.d.comb += acc.col_sum[j].eq(trees[j].sum)

        # ---- double-buffered output bank: bank wp is filled next, bank rp streams out
        elem = acc.acc.shape().elem_shape
        banks = [Signal(data.ArrayLayout(elem, n_col), name=f"bank{k}", reset_less=True) for k in range(2)]
        bank_cycles = [Signal.like(self.cycles, name=f"bank{k}_cycles", reset_less=True) for k in range(2)]
        bank_full = Signal(2)
        wp = Signal()
        rp = Signal()
        out_slot = Signal(range(n_col))
        out_last = Signal()
        m.d.comb += [
            self.o.valid.eq(bank_full.bit_select(rp, 1)),
            self.o.payload.slot.eq(out_slot),
            self.o.payload.acc.eq(Mux(rp, banks[1][out_slot], banks[0][out_slot])),
            self.o.payload.last.eq(out_last),
            out_last.eq(out_slot == n_col - 1),
            self.cycles.eq(Mux(rp, bank_cycles[1], bank_cycles[0])),
        ]
        out_fire = self.o.valid & self.o.ready
        with m.If(out_fire):
            with m.If(out_last):
                m.d.sync += [out_slot.eq(0), rp.eq(~rp)]
            with m.Else():
                m.d.sync += out_slot.eq(out_slot + 1)

        # ---- controller and cycle counter
        cnt = Signal.like(self.cycles)
        done = Signal()
        computing = Signal()
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += start.eq(full.bit_select(ap, 1) & ~bank_full.bit_select(wp, 1) & ~self.hold)
                with m.If(start):
                    m.d.sync += cnt.eq(1)
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += computing.eq(1)
                m.d.sync += cnt.eq(cnt + 1)
                with m.If((pending == 0) & ~ipu.o.valid):
                    if self._pipeline:
                        m.next = "FLUSH"
                    else:
                        m.d.comb += done.eq(1)
                        m.next = "IDLE"
            if self._pipeline:
                with m.State("FLUSH"):  # the adder-tree register's last sum reaches the accumulator
                    m.d.comb += [computing.eq(1), done.eq(1)]
                    m.next = "IDLE"
        m.d.comb += [self.busy.eq(computing | (full != 0) | (ld_row != 0)), self.computing.eq(computing)]
        with m.If(done):
            m.d.sync += [full.bit_select(ap, 1).eq(0), ap.eq(~ap), wp.eq(~wp)]
        for k in range(2):
            with m.If(done & (wp == k)):
                m.d.sync += [banks[k].eq(acc.acc), bank_cycles[k].eq(cnt + 1), bank_full[k].eq(1)]
            with m.Elif(out_fire & out_last & (rp == k)):
                m.d.sync += bank_full[k].eq(0)
        return m

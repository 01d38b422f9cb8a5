"""The DB-PIM macro (docs/design.md §5, §6): IPU, DBMU array, CSD adder trees, shift-and-add accumulator."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.accumulator import ShiftAddAccumulator
from hw.adder_tree import CSDAdderTree
from hw.common import Block, layout_from_fields
from hw.dbmu import DBMU
from hw.ipu import IPU
from model.spec import acc_width, cycle_width, macro_in_fields, macro_out_fields, pipeline_latency

__all__ = ["PIMMacro"]


class PIMMacro(Block):
    """One PIM macro loaded with a compiled tile, computing one input vector at a time.

    **Loading a tile** (not timed): ``w_*`` writes the ``n_col`` cells and their
    (idx, sign) metadata of one (cell row, compartment); ``m_*`` writes one
    column's filter slot (``Tile.col_filter``); ``c_*`` writes the number of
    used cell rows (``Tile.n_rows_used``) and the signed-input mode.

    **Input** ``x``: a vector is ``n_row`` beats, beat r = the ``n_comp``
    inputs of cell row r (``model.macro.gather``; bit patterns, two's
    complement in signed mode). Two input buffers: a vector loads while the
    previous one computes (double-buffered, not timed). When a row is written
    its "non-empty" flag (OR of its inputs != 0) is stored with it.

    **Compute** starts when a full buffer is waiting, the core is idle and the
    output bank is free. In the start cycle the accumulators clear and the
    lowest non-empty used row goes into the IPU; every following cycle the IPU
    issues one non-zero bit column ``b`` of the held row (LSB first) and takes the
    next non-empty row in the cycle of its last column, so all-zero rows and
    all-zero bit columns cost no cycle. Each issued column selects the row in
    every DBMU, the LPUs form the product pairs, the ``n_col`` CSD adder trees
    add them with the (idx, sign) metadata, and the accumulator adds each
    slot's columns ``<< b`` (subtracts for the MSB column in signed mode).

    **Cycle count** (port ``cycles``, latched per vector): the clock cycles from
    the start cycle through the first cycle in which the final accumulator
    values are held, inclusive, i.e. ``N + pipeline_latency`` with
    ``N = sum over used rows of popcount(OR of the row)`` and
    ``pipeline_latency = 2 + pipeline`` (:func:`model.spec.pipeline_latency`):
    one cycle for the IPU register (start cycle), one for the accumulator
    update, one for the adder-tree register when pipelined. The controller
    waits a fixed drain after the last column rather than probing the pipeline,
    so an all-zero vector also costs exactly the latency.

    **Reset** (``rst``) aborts the vector in flight and empties the input
    buffers and the output bank; the loaded tile (cells, metadata, column map,
    configuration) is SRAM / configuration state and survives it.

    **Output** ``o``: in that final cycle the accumulators are copied into an
    output bank, which then streams ``n_col`` beats ``(slot, acc, last)``, slot
    0 first (not timed; the next vector starts once the bank is drained).

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

    Attributes
    ----------
    x : In(stream.Signature(StructLayout({"data": ArrayLayout(in_bits, n_comp)})))
    o : Out(stream.Signature(StructLayout({"slot", "acc", "last"})))
    busy : Out(1)
        A vector is being computed.
    cycles : Out(cycle_width(n_row, in_bits))
        Cycle count of the last finished vector.
    """

    CONFIG_KEYS = {"n_comp": "n_comp", "n_col": "n_col", "n_row": "n_row", "in_bits": "in_bits",
                   "pipeline": "pipeline"}

    def __init__(self, *, n_comp: int, n_col: int, n_row: int, in_bits: int = 8, pipeline: bool = False):
        self._n_comp = self._param("n_comp", n_comp)
        self._n_col = self._param("n_col", n_col)
        self._n_row = self._param("n_row", n_row)
        self._in_bits = self._param("in_bits", in_bits)
        self._pipeline = self._param("pipeline", pipeline)
        super().__init__({
            "w_en": In(1), "w_row": In(range(n_row)), "w_comp": In(range(n_comp)),
            "w_cells": In(n_col), "w_idx": In(data.ArrayLayout(2, n_col)), "w_sign": In(n_col),
            "m_en": In(1), "m_col": In(range(n_col)), "m_slot": In(range(n_col)), "m_used": In(1),
            "c_en": In(1), "c_rows_used": In(range(n_row + 1)), "c_signed": In(1),
            "x": In(stream.Signature(layout_from_fields(macro_in_fields(n_comp, in_bits)))),
            "o": Out(stream.Signature(layout_from_fields(macro_out_fields(n_comp, n_col, n_row, in_bits)))),
            "busy": Out(1),
            "cycles": Out(cycle_width(n_row, in_bits)),
        })

    @property
    def latency(self) -> int:
        """Fixed cycles added to the issued bit columns: :func:`model.spec.pipeline_latency`."""
        return pipeline_latency(self._pipeline)

    latency_note = ("cycles = sum over used rows of popcount(OR of the row) + latency; "
                    "tile loading, input loading (double-buffered) and the output drain are not counted")

    @property
    def acc_width(self) -> int:
        return acc_width(self._n_comp, self._n_col, self._n_row, self._in_bits)

    def elaborate(self, platform):
        m = Module()
        n_comp, n_col, n_row, in_bits = self._n_comp, self._n_col, self._n_row, self._in_bits
        row_w = n_comp * in_bits

        # ---- configuration registers
        rows_used = Signal(range(n_row + 1), reset_less=True)  # tile state survives reset
        signed_in = Signal(reset_less=True)
        with m.If(self.c_en):
            m.d.sync += [rows_used.eq(self.c_rows_used), signed_in.eq(self.c_signed)]
        rows_mask = Signal(n_row)
        m.d.comb += rows_mask.eq(Cat(rows_used > r for r in range(n_row)))

        # ---- double-buffered input rows with per-row non-empty flags
        # two buffers of n_row rows in one memory: address = (buffer, row)
        m.submodules.xbuf = xbuf = Memory(shape=row_w, depth=2 * n_row, init=[])
        xbuf_w = xbuf.write_port()
        xbuf_r = xbuf.read_port(domain="comb")
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
            with m.If(ld_row == n_row - 1):
                m.d.sync += [ld_row.eq(0), full.bit_select(lp, 1).eq(1), lp.eq(~lp)]
            with m.Else():
                m.d.sync += ld_row.eq(ld_row + 1)

        # ---- row scheduler feeding the IPU (zero rows skipped)
        m.submodules.ipu = ipu = IPU(n_comp=n_comp, in_bits=in_bits)
        pending = Signal(n_row)
        pend_view = Signal(n_row)
        start = Signal()
        cur_row = Signal(range(n_row))
        sel_row = Signal(range(n_row))
        for r in reversed(range(n_row)):
            with m.If(pend_view[r]):
                m.d.comb += sel_row.eq(r)
        m.d.comb += [
            pend_view.eq(Mux(start, Mux(ap, nz[1], nz[0]) & rows_mask, pending)),
            ipu.i.valid.eq(pend_view != 0),
            ipu.o.ready.eq(1),
        ]
        m.d.comb += [xbuf_r.addr.eq(Cat(sel_row, ap)), ipu.i.payload.data.eq(xbuf_r.data)]
        with m.If(ipu.i.valid & ipu.i.ready):
            m.d.sync += [pending.eq(pend_view & (pend_view - 1)), cur_row.eq(sel_row)]
        with m.Elif(start):
            m.d.sync += pending.eq(pend_view)

        # ---- DBMU array, metadata register file, CSD adder trees
        trees = []
        for j in range(n_col):
            tree = CSDAdderTree(n_comp=n_comp, pipeline=self._pipeline)
            m.submodules[f"tree{j}"] = tree
            trees.append(tree)
            m.d.comb += tree.i_valid.eq(ipu.o.valid)
        for c in range(n_comp):
            wsel = self.w_en & (self.w_comp == c)
            # metadata register file of compartment c: one (idx, sign) triple per column per row
            meta = Memory(shape=3 * n_col, depth=n_row, init=[])
            m.submodules[f"meta{c}"] = meta
            meta_w = meta.write_port()
            meta_r = meta.read_port(domain="comb")
            m.d.comb += [
                meta_w.en.eq(wsel), meta_w.addr.eq(self.w_row),
                meta_w.data.eq(Cat(Cat(self.w_idx[j], self.w_sign[j]) for j in range(n_col))),
                meta_r.addr.eq(cur_row),
            ]
            for j in range(n_col):
                cell = DBMU(n_row=n_row)
                m.submodules[f"dbmu_c{c}_j{j}"] = cell
                entry = meta_r.data[3 * j:3 * j + 3]
                m.d.comb += [
                    cell.w_en.eq(wsel), cell.w_addr.eq(self.w_row), cell.w_data.eq(self.w_cells[j]),
                    cell.row.eq(cur_row), cell.x.eq(ipu.o.payload.bits[c]),
                    trees[j].hi[c].eq(cell.hi), trees[j].lo[c].eq(cell.lo),
                    trees[j].idx[c].eq(entry[:2]), trees[j].sign[c].eq(entry[2]),
                ]

        # ---- shift-and-add accumulator
        m.submodules.acc = acc = ShiftAddAccumulator(n_comp=n_comp, n_col=n_col, n_row=n_row, in_bits=in_bits)
        b_acc = Signal(range(in_bits))
        if self._pipeline:  # delayed like the adder-tree sums
            m.d.sync += b_acc.eq(ipu.o.payload.b)
        else:
            m.d.comb += b_acc.eq(ipu.o.payload.b)
        m.d.comb += [
            acc.valid.eq(trees[0].o_valid), acc.b.eq(b_acc), acc.signed_in.eq(signed_in),
            acc.clear.eq(start),
            acc.m_en.eq(self.m_en), acc.m_col.eq(self.m_col), acc.m_slot.eq(self.m_slot),
            acc.m_used.eq(self.m_used),
        ]
        for j in range(n_col):
            m.d.comb += acc.col_sum[j].eq(trees[j].sum)

        # ---- output bank
        out_busy = Signal()
        out_slot = Signal(range(n_col))
        bank = Signal(data.ArrayLayout(acc.acc.shape().elem_shape, n_col), reset_less=True)
        m.d.comb += [
            self.o.valid.eq(out_busy),
            self.o.payload.slot.eq(out_slot),
            self.o.payload.acc.eq(bank[out_slot]),
            self.o.payload.last.eq(out_slot == n_col - 1),
        ]
        with m.If(self.o.valid & self.o.ready):
            with m.If(out_slot == n_col - 1):
                m.d.sync += [out_slot.eq(0), out_busy.eq(0)]
            with m.Else():
                m.d.sync += out_slot.eq(out_slot + 1)

        # ---- controller and cycle counter
        cnt = Signal.like(self.cycles)
        done = Signal()
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += start.eq(full.bit_select(ap, 1) & ~out_busy)
                with m.If(start):
                    m.d.sync += cnt.eq(1)
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += cnt.eq(cnt + 1)
                with m.If((pending == 0) & ~ipu.o.valid):
                    if self._pipeline:
                        m.next = "DRAIN"
                    else:
                        m.d.comb += done.eq(1)
                        m.next = "IDLE"
            if self._pipeline:
                with m.State("DRAIN"):
                    m.d.comb += [self.busy.eq(1), done.eq(1)]
                    m.next = "IDLE"
        with m.If(done):
            m.d.sync += [
                bank.eq(acc.acc), out_busy.eq(1), out_slot.eq(0),
                self.cycles.eq(cnt + 1),
                full.bit_select(ap, 1).eq(0), ap.eq(~ap),
            ]
        return m

"""Shift-and-add accumulator (docs/design.md §5): per filter slot ``acc += slot_sum << b``."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data
from amaranth.lib.wiring import In, Out

from dbpim.hw.common import Block
from dbpim.model.spec import LATENCY, acc_width, col_sum_width, slot_sum_width

__all__ = ["ShiftAddAccumulator"]


class ShiftAddAccumulator(Block):
    """Per-slot accumulators fed by the ``n_col`` column sums of each step.

    A column-to-slot map (configuration, written through ``m_*`` with the
    tile, every column in one cycle) says which filter slot owns each column; a filter with phi = 2 owns
    two adjacent columns. On each clock edge with ``valid``::

        slot_sum[s] = sum of col_sum[j] over columns j mapped to s
        acc[s] += slot_sum[s] << b      (-= when signed_in and b == in_bits-1)

    ``clear`` zeroes every accumulator (it wins over ``valid``). Twin:
    :func:`model.blocks.accumulator`. Latency: the update is visible one cycle
    after the step. Widths: :func:`model.spec.acc_width` (never overflows,
    even if every column maps to one slot).

    Parameters
    ----------
    n_comp, n_col, n_row, in_bits : int
        Macro geometry (sets the column-sum and accumulator widths).

    Attributes
    ----------
    col_sum : In(ArrayLayout(signed(col_sum_width(n_comp)), n_col))
    valid : In(1)
    b : In(range(in_bits))
        Input bit column of the step.
    signed_in : In(1)
        Two's-complement inputs (MSB column subtracts).
    clear : In(1)
    m_en : In(1)
        Map write: on a clock edge with ``m_en`` the whole map takes ``m_slot`` / ``m_used``.
    m_slot : In(ArrayLayout(range(n_col), n_col))
        Slot of each column (element j = column j).
    m_used : In(n_col)
        Bit j = 1: column j belongs to slot ``m_slot[j]``; 0: to none.
    acc : Out(ArrayLayout(signed(acc_width(...)), n_col))
        One accumulator per slot.
    """

    CONFIG_KEYS = {"n_comp": "n_comp", "n_col": "n_col", "n_row": "n_row", "in_bits": "in_bits"}
    NAME = "accumulator"

    def __init__(self, *, n_comp: int, n_col: int, n_row: int, in_bits: int = 8):
        self._n_comp = self._param("n_comp", n_comp)
        self._n_col = self._param("n_col", n_col)
        self._n_row = self._param("n_row", n_row)
        self._in_bits = self._param("in_bits", in_bits)
        self._acc_w = acc_width(n_comp, n_col, n_row, in_bits)
        super().__init__({
            "col_sum": In(data.ArrayLayout(signed(col_sum_width(n_comp)), n_col)),
            "valid": In(1), "b": In(range(in_bits)), "signed_in": In(1), "clear": In(1),
            "m_en": In(1), "m_slot": In(data.ArrayLayout(range(n_col), n_col)), "m_used": In(n_col),
            "acc": Out(data.ArrayLayout(signed(self._acc_w), n_col)),
        })

    @property
    def acc_width(self) -> int:
        """Accumulator width in bits (signed)."""
        return self._acc_w

    @property
    def latency(self) -> int:
        return LATENCY["accumulator"]

    latency_note = "step to updated acc"

    def elaborate(self, platform):
        m = Module()
        n_col, in_bits = self._n_col, self._in_bits
        # the column map is configuration: it survives reset like the tile
        slot_of = [Signal(range(n_col), name=f"slot_of{j}", reset_less=True) for j in range(n_col)]
        used = Signal(n_col, reset_less=True)
        with m.If(self.m_en):
            m.d.sync += used.eq(self.m_used)
            m.d.sync += [slot_of[j].eq(self.m_slot[j]) for j in range(n_col)]
        neg = Signal()
        m.d.comb += neg.eq(self.signed_in & (self.b == in_bits - 1))
        ssw = slot_sum_width(self._n_comp, n_col)
        for s in range(n_col):
            slot_sum = Signal(signed(ssw), name=f"slot_sum{s}")
            m.d.comb += slot_sum.eq(sum(
                Mux(used[j] & (slot_of[j] == s), self.col_sum[j], 0) for j in range(n_col)))
            shifted = Signal(signed(ssw + in_bits - 1), name=f"shifted{s}")
            m.d.comb += shifted.eq(slot_sum << self.b)
            with m.If(self.clear):
                m.d.sync += self.acc[s].eq(0)
            with m.Elif(self.valid):
                m.d.sync += self.acc[s].eq(Mux(neg, self.acc[s] - shifted, self.acc[s] + shifted))
        return m

"""Sparse allocation switch (docs/design.md §5): forwards the inputs whose mask bit is 1."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream
from amaranth.lib.wiring import In, Out

from dbpim.hw.common import Block, layout_from_fields
from dbpim.model.spec import LATENCY, switch_in_fields, switch_out_fields

__all__ = ["SparseSwitch"]


class SparseSwitch(Block):
    """Extracts the kept inputs of a window, in order, ``lanes`` per beat.

    An accepted window (inputs + pruning mask bits) is held in a register with
    its remaining mask. Each output beat fills lane k with the k-th lowest
    remaining kept input (a chain of ``lanes`` leading-one detectors driving
    the lane multiplexers); ``lane_en`` marks the filled lanes (always the low
    ones; the others carry 0) and ``last`` the window's final beat. Bits leave the remaining mask
    only on an accepted beat, so nothing is dropped or duplicated under
    back-pressure; the next window is accepted in the cycle of the last beat.
    A window with an all-zero mask yields no beat and ``empty`` is high in the
    cycle it is accepted. Latency: first beat one cycle after acceptance.
    Twin: :func:`model.blocks.switch`.

    Parameters
    ----------
    window : int
        Inputs per window (the macro's ``n_comp``), a power of two from 2 to 256.
    lanes : int
        Outputs per beat, a power of two, ``1 <= lanes <= window``.
    width : int
        Bits per input (the activation width, 8).

    Attributes
    ----------
    i : In(stream.Signature(StructLayout({"data", "mask"})))
    o : Out(stream.Signature(StructLayout({"data", "lane_en", "last"})))
    empty : Out(1)
    """

    CONFIG_KEYS = {"window": "n_comp", "lanes": "lanes", "width": "in_bits"}
    NAME = "switch"

    def __init__(self, *, window: int, lanes: int, width: int = 8):
        self._window = self._param("window", window)
        self._lanes = self._param("lanes", lanes)
        self._width = self._param("width", width)
        if lanes > window:
            raise ValueError(f"lanes must be at most window ({window}), not {lanes!r}")
        super().__init__({
            "i": In(stream.Signature(layout_from_fields(switch_in_fields(window, width)))),
            "o": Out(stream.Signature(layout_from_fields(switch_out_fields(lanes, width)))),
            "empty": Out(1),
        })

    @property
    def latency(self) -> int:
        return LATENCY["switch"]

    latency_note = "window accepted to first beat"

    def elaborate(self, platform):
        m = Module()
        window, lanes, width = self._window, self._lanes, self._width
        dat = Signal(window * width)
        rem = Signal(window)
        cur = rem
        for k in range(lanes):
            sel = Signal(range(window), name=f"sel{k}")
            for p in reversed(range(window)):  # last assignment wins: lowest set bit
                with m.If(cur[p]):
                    m.d.comb += sel.eq(p)
            nxt = Signal(window, name=f"rem{k + 1}")
            m.d.comb += [
                self.o.payload.data[k].eq(Mux(cur != 0, dat.word_select(sel, width), 0)),
                self.o.payload.lane_en[k].eq(cur != 0),
                nxt.eq(cur & (cur - 1)),
            ]
            cur = nxt
        last = Signal()
        m.d.comb += [
            last.eq(cur == 0),
            self.o.payload.last.eq(last),
            self.o.valid.eq(rem != 0),
        ]
        fire = self.o.valid & self.o.ready
        m.d.comb += self.i.ready.eq((rem == 0) | (fire & last))
        accept = self.i.valid & self.i.ready
        m.d.comb += self.empty.eq(accept & (self.i.payload.mask == 0))
        with m.If(accept):
            m.d.sync += [dat.eq(self.i.payload.data.as_value()), rem.eq(self.i.payload.mask)]
        with m.Elif(fire):
            m.d.sync += rem.eq(cur)
        return m

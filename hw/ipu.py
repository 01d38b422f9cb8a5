"""Input pre-processing unit (docs/design.md §5): skips all-zero bit columns of an input group."""

from __future__ import annotations

import operator
from functools import reduce

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream
from amaranth.lib.wiring import In, Out

from dbpim.hw.common import Block, layout_from_fields
from dbpim.model.spec import LATENCY, ipu_in_fields, ipu_out_fields

__all__ = ["IPU"]


class IPU(Block):
    """Zero-column skipper: emits the non-zero bit columns of a group, LSB first.

    An accepted group is held in a register together with its column mask
    (the OR of its inputs). Each output beat carries the lowest remaining
    column ``b`` (leading-one detection, LSB first), the ``n_comp`` bits of that
    column and ``last`` on the group's final column; a beat leaves the mask
    only when it is accepted (``o.valid & o.ready``), so nothing is dropped or
    duplicated under back-pressure. The next group is accepted in the same
    cycle as the last beat, so groups stream with no bubble. An all-zero group
    is accepted with no output beat, and ``empty`` is high in the cycle it is
    accepted. Latency: first beat one cycle after the group is accepted. Twin:
    :func:`model.blocks.ipu`; payloads: :func:`model.spec.ipu_in_fields`,
    :func:`model.spec.ipu_out_fields`.

    **Held input** (``held_input=True``, the macro's): the group's data is on
    ``i.payload`` from the cycle *after* its accept until the next accept (the
    read data of a synchronous-read memory read at the accept, :mod:`hw.sram`);
    the IPU keeps no copy of the group, only which of its columns are still to
    go, and its beats are those of the default IPU cycle for cycle. ``empty``
    is then 0 (the group is not yet known in its accept cycle).

    Parameters
    ----------
    n_comp : int
        Inputs per group, a power of two from 2 to 256.
    in_bits : int
        Input width (8).
    held_input : bool
        The group's data arrives one cycle after its accept and is held there (see above).

    Attributes
    ----------
    i : In(stream.Signature(StructLayout({"data": ArrayLayout(in_bits, n_comp)})))
    o : Out(stream.Signature(StructLayout({"b", "bits", "last"})))
    empty : Out(1)
    """

    CONFIG_KEYS = {"n_comp": "n_comp", "in_bits": "in_bits"}
    NAME = "ipu"

    def __init__(self, *, n_comp: int, in_bits: int = 8, held_input: bool = False):
        self._n_comp = self._param("n_comp", n_comp)
        self._in_bits = self._param("in_bits", in_bits)
        if not isinstance(held_input, bool):
            raise TypeError(f"held_input must be a bool, not {held_input!r}")
        self._held = held_input
        if held_input:  # its own Verilog module beside the block dbpim_ipu
            self._param("held_input", held_input, "pipeline")
            self.NAME = "ipu_held"
        super().__init__({
            "i": In(stream.Signature(layout_from_fields(ipu_in_fields(n_comp, in_bits)))),
            "o": Out(stream.Signature(layout_from_fields(ipu_out_fields(n_comp, in_bits)))),
            "empty": Out(1),
        })

    @property
    def latency(self) -> int:
        return LATENCY["ipu"]

    latency_note = "group accepted to first column beat; back-to-back groups without bubbles"

    def elaborate(self, platform):
        m = Module()
        n_comp, in_bits = self._n_comp, self._in_bits
        group = Signal(n_comp * in_bits)
        mask = Signal(in_bits)
        orr = Signal(in_bits)  # zero detection: OR of the group's inputs
        m.d.comb += orr.eq(reduce(operator.or_, [self.i.payload.data[c] for c in range(n_comp)]))
        elems = [group[c * in_bits:(c + 1) * in_bits] for c in range(n_comp)]

        b = Signal(range(in_bits))
        for k in reversed(range(in_bits)):  # the last assignment wins: lowest set bit
            with m.If(mask[k]):
                m.d.comb += b.eq(k)
        last = Signal()
        m.d.comb += [
            last.eq((mask & (mask - 1)) == 0),
            self.o.valid.eq(mask != 0),
            self.o.payload.b.eq(b),
            self.o.payload.bits.eq(Cat(e.bit_select(b, 1) for e in elems)),
            self.o.payload.last.eq(last),
        ]
        fire = self.o.valid & self.o.ready
        m.d.comb += self.i.ready.eq((mask == 0) | (fire & last))

        accept = self.i.valid & self.i.ready
        if self._held:  # the group is on i.payload (held by its memory); mask = its columns still to go
            keep = Signal(in_bits)  # all ones from the accept on, the issued columns cleared
            m.d.comb += [group.eq(self.i.payload.data.as_value()), mask.eq(orr & keep)]
            with m.If(accept):
                m.d.sync += keep.eq(-1)
            with m.Elif(fire):
                m.d.sync += keep.eq(mask & (mask - 1))
            return m
        m.d.comb += self.empty.eq(accept & (orr == 0))
        with m.If(accept):
            m.d.sync += [group.eq(self.i.payload.data.as_value()), mask.eq(orr)]
        with m.Elif(fire):
            m.d.sync += mask.eq(mask & (mask - 1))
        return m

"""Deliberately broken variants of blocks, to prove that the regression fails on them (and fails fast)."""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring

from dbpim.hw.ipu import IPU

__all__ = ["IPUIgnoringReady"]


class IPUIgnoringReady(wiring.Component):
    """An IPU that ignores ``o.ready``: every output beat counts as taken, so back-pressure drops beats.

    Same ports as :class:`hw.ipu.IPU`; a consumer waiting for the dropped
    beats waits forever unless its test has a timeout.
    """

    def __init__(self, *, n_comp: int, in_bits: int = 8):
        self._inner = IPU(n_comp=n_comp, in_bits=in_bits)
        self.parameters = self._inner.parameters
        super().__init__(self._inner.signature)

    def elaborate(self, platform):
        m = Module()
        m.submodules.ipu = ipu = self._inner
        m.d.comb += [
            ipu.i.valid.eq(self.i.valid), ipu.i.payload.eq(self.i.payload), self.i.ready.eq(ipu.i.ready),
            self.o.valid.eq(ipu.o.valid), self.o.payload.eq(ipu.o.payload), self.empty.eq(ipu.empty),
            ipu.o.ready.eq(1),  # the bug: the consumer's ready is never looked at
        ]
        return m

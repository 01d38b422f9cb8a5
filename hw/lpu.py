"""Local processing unit (docs/design.md §5): one input bit against a 6T cell's (Q, QB)."""


from amaranth.hdl import Module
from amaranth.lib.wiring import In, Out

from dbpim.hw.common import Block
from dbpim.model.spec import LATENCY

__all__ = ["LPU"]


class LPU(Block):
    """Local processing unit: ``hi = x AND Q``, ``lo = x AND QB`` (QB = not Q).

    Purely combinational (latency 0). At most one of ``hi`` / ``lo`` is 1: the
    cell holds the position of its dyadic block's one non-zero digit.

    Attributes
    ----------
    x : In(1)
        Input bit of the current bit column.
    q : In(1)
        Cell bit Q.
    hi, lo : Out(1)
        Product bits for the high (2k+1) and low (2k) position.
    """

    NAME = "lpu"

    x: In(1)
    q: In(1)
    hi: Out(1)
    lo: Out(1)

    @property
    def latency(self) -> int:
        return LATENCY["lpu"]

    latency_note = "combinational"

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [self.hi.eq(self.x & self.q), self.lo.eq(self.x & ~self.q)]
        return m

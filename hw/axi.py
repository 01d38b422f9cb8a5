"""AXI4-Lite register target: the PIM core's configuration port (docs/design.md §11).

amaranth-soc is not installable here, so this is a small target of our own.
It turns AXI4-Lite transactions into a one-word register bus that the core
decodes:

* **write**: ``awready`` and ``wready`` rise together once both ``awvalid``
  and ``wvalid`` are high, no response is pending and the target is out of
  reset (AXI allows a target to wait for both); in that cycle ``w_en`` pulses with the word address, data
  and byte strobes, then ``bvalid`` is held until ``bready``; ``bresp`` is
  OKAY, or SLVERR (and no write) for an address that is not word-aligned.
* **read**: ``arready`` is high while no read data is pending (and out of
  reset); in the
  accepting cycle ``r_en`` pulses with the word address, the core answers
  combinationally on ``r_data``, which is registered into ``rdata``;
  ``rvalid`` is held until ``rready``; ``rresp`` is OKAY, or SLVERR (data 0)
  for an address that is not word-aligned.

One transaction of each kind is outstanding at a time; reads and writes
proceed independently. Addresses are byte addresses of 32-bit words.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, ResetSignal, Signal
from amaranth.lib.wiring import In, Out

from dbpim.hw.common import Block
from dbpim.model.spec import BUS_BITS

__all__ = ["AXI4LiteTarget", "OKAY", "SLVERR"]

#: AXI responses
OKAY, SLVERR = 0, 2


class AXI4LiteTarget(Block):
    """AXI4-Lite target (32-bit data) driving a one-word register bus.

    Parameters
    ----------
    addr_width : int
        Byte address bits (3 to 32).

    Attributes
    ----------
    awaddr, awvalid, awready, wdata, wstrb, wvalid, wready, bresp, bvalid, bready,
    araddr, arvalid, arready, rdata, rresp, rvalid, rready
        The AXI4-Lite channels (no PROT signals: every access is treated alike).
    w_en, w_addr, w_data, w_strb : Out
        Register bus write strobe, word address, data, byte enables.
    r_en, r_addr : Out
        Register bus read strobe and word address.
    r_data : In(32)
        The addressed register, combinationally, in the ``r_en`` cycle.
    """

    NAME = "axil"

    def __init__(self, *, addr_width: int):
        self._addr_width = self._param("addr_width", addr_width)
        word = addr_width - 2
        super().__init__({
            "awaddr": In(addr_width), "awvalid": In(1), "awready": Out(1),
            "wdata": In(BUS_BITS), "wstrb": In(BUS_BITS // 8), "wvalid": In(1), "wready": Out(1),
            "bresp": Out(2), "bvalid": Out(1), "bready": In(1),
            "araddr": In(addr_width), "arvalid": In(1), "arready": Out(1),
            "rdata": Out(BUS_BITS), "rresp": Out(2), "rvalid": Out(1), "rready": In(1),
            "w_en": Out(1), "w_addr": Out(word), "w_data": Out(BUS_BITS), "w_strb": Out(BUS_BITS // 8),
            "r_en": Out(1), "r_addr": Out(word), "r_data": In(BUS_BITS),
        })

    @property
    def latency(self) -> int:
        """Cycles from an accepted read address to ``rvalid``."""
        return 1

    latency_note = "write: response the cycle after AW and W are accepted together; read: data the cycle after AR"

    def elaborate(self, platform):
        m = Module()
        # ---- write: address and data accepted together, then the response (SLVERR, no write, when the
        #      address is not word-aligned)
        take_w = Signal()
        w_ok = Signal()
        in_reset = ResetSignal()  # no transaction is taken while the target is in reset
        m.d.comb += [
            take_w.eq(self.awvalid & self.wvalid & ~self.bvalid & ~in_reset),
            w_ok.eq(self.awaddr[:2] == 0),
            self.awready.eq(take_w), self.wready.eq(take_w),
            self.w_en.eq(take_w & w_ok), self.w_addr.eq(self.awaddr[2:]), self.w_data.eq(self.wdata),
            self.w_strb.eq(self.wstrb),
        ]
        with m.If(take_w):
            m.d.sync += [self.bvalid.eq(1), self.bresp.eq(Mux(w_ok, OKAY, SLVERR))]
        with m.Elif(self.bready):
            m.d.sync += self.bvalid.eq(0)
        # ---- read: address accepted while no data is pending (SLVERR and 0 when not word-aligned)
        take_r = Signal()
        r_ok = Signal()
        m.d.comb += [
            self.arready.eq(~self.rvalid & ~in_reset), take_r.eq(self.arvalid & self.arready),
            r_ok.eq(self.araddr[:2] == 0),
            self.r_en.eq(take_r & r_ok), self.r_addr.eq(self.araddr[2:]),
        ]
        with m.If(take_r):
            m.d.sync += [self.rvalid.eq(1), self.rdata.eq(Mux(r_ok, self.r_data, 0)),
                         self.rresp.eq(Mux(r_ok, OKAY, SLVERR))]
        with m.Elif(self.rready):
            m.d.sync += self.rvalid.eq(0)
        return m

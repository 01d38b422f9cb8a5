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

Options for a target behind one synchronous port (the chip, :mod:`hw.chip_axi`):

* ``sync_read``: the target answers on ``r_data`` in the cycle *after*
  ``r_en`` (a synchronous memory read); ``rvalid`` rises a cycle later;
* ``full_words``: a write whose ``wstrb`` is not all ones gets SLVERR and
  is not made (the target has no byte enables);
* ``one_port``: a read is not accepted in a cycle a write is taken (the
  target has one address for both: writes go first).
"""

from __future__ import annotations

from amaranth.hdl import ClockDomain, Module, Mux, ResetSignal, Signal
from amaranth.lib.wiring import In, Out

from dbpim.hw.common import Block
from dbpim.model.spec import BUS_BITS

__all__ = ["AXI4LiteTarget", "OKAY", "SLVERR", "RESET_SYNC_STAGES", "axil_ports", "aclk_domain", "connect_axil"]

#: AXI responses
OKAY, SLVERR = 0, 2
#: flops of the ``aresetn`` synchronizer of an AXI top (:func:`aclk_domain`)
RESET_SYNC_STAGES = 2
_AXIL_IN = ("awaddr", "awvalid", "wdata", "wstrb", "wvalid", "bready", "araddr", "arvalid", "rready")
_AXIL_OUT = ("awready", "wready", "bresp", "bvalid", "arready", "rdata", "rresp", "rvalid")


def axil_ports(addr_width: int, prefix: str = "s_axil_") -> dict:
    """The signature members of an AXI4-Lite target port (32-bit data), named ``<prefix><channel signal>``."""
    return {f"{prefix}{k}": v for k, v in {
        "awaddr": In(addr_width), "awvalid": In(1), "awready": Out(1),
        "wdata": In(BUS_BITS), "wstrb": In(BUS_BITS // 8), "wvalid": In(1), "wready": Out(1),
        "bresp": Out(2), "bvalid": Out(1), "bready": In(1),
        "araddr": In(addr_width), "arvalid": In(1), "arready": Out(1),
        "rdata": Out(BUS_BITS), "rresp": Out(2), "rvalid": Out(1), "rready": In(1)}.items()}


def connect_axil(m: Module, top, axil: "AXI4LiteTarget", prefix: str = "s_axil_") -> None:
    """Wire a top's ``<prefix>*`` ports (:func:`axil_ports`) to an :class:`AXI4LiteTarget`'s channels."""
    for ch in _AXIL_IN:
        m.d.comb += getattr(axil, ch).eq(getattr(top, f"{prefix}{ch}"))
    for ch in _AXIL_OUT:
        m.d.comb += getattr(top, f"{prefix}{ch}").eq(getattr(axil, ch))


def aclk_domain(m: Module, aclk, aresetn, in_reset) -> None:
    """The ``sync`` domain of an AXI top: clocked by the ``aclk`` port itself, reset through a synchronizer.

    The domain's clock is the port (not a copy), so a simulator sees one clock input; ``aresetn`` goes through a
    :data:`RESET_SYNC_STAGES`-flop reset synchronizer: the domain's reset (``in_reset``) rises as soon as
    ``aresetn`` falls (asynchronously; the logic, reset synchronously, is reset at the next ``aclk`` edge) and
    falls at the second ``aclk`` edge after it rises, so its release meets the flops' recovery time whatever the
    phase of ``aresetn``.
    """
    m.domains.sync = cd = ClockDomain()
    cd.clk = aclk
    m.domains.reset_sync = rsd = ClockDomain("reset_sync", async_reset=True, local=True)
    m.d.comb += [rsd.clk.eq(aclk), rsd.rst.eq(~aresetn)]
    stages = [Signal(init=1, name=f"reset_sync{k}") for k in range(RESET_SYNC_STAGES)]
    m.d.reset_sync += [stages[0].eq(0)] + [b.eq(a) for a, b in zip(stages, stages[1:])]
    m.d.comb += [cd.rst.eq(stages[-1]), in_reset.eq(stages[-1])]


class AXI4LiteTarget(Block):
    """AXI4-Lite target (32-bit data) driving a one-word register bus.

    Parameters
    ----------
    addr_width : int
        Byte address bits (3 to 32).
    sync_read, full_words, one_port : bool
        The options above (all False: the PIM core's target).

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
        The addressed register, combinationally, in the ``r_en`` cycle (with ``sync_read``: in the next cycle).
    """

    NAME = "axil"

    def __init__(self, *, addr_width: int, sync_read: bool = False, full_words: bool = False,
                 one_port: bool = False):
        self._addr_width = self._param("addr_width", addr_width)
        for name, v in (("sync_read", sync_read), ("full_words", full_words), ("one_port", one_port)):
            if not isinstance(v, bool):
                raise TypeError(f"{name} must be a bool, not {v!r}")
            if v:  # recorded when set (the core's target keeps its parameters)
                self.__dict__["_params"][name] = v
        self.sync_read, self.full_words, self.one_port = sync_read, full_words, one_port
        word = addr_width - 2
        super().__init__({
            **axil_ports(addr_width, prefix=""),
            "w_en": Out(1), "w_addr": Out(word), "w_data": Out(BUS_BITS), "w_strb": Out(BUS_BITS // 8),
            "r_en": Out(1), "r_addr": Out(word), "r_data": In(BUS_BITS),
        })

    @property
    def latency(self) -> int:
        """Cycles from an accepted read address to ``rvalid``."""
        return 1 + self.sync_read

    @property
    def latency_note(self) -> str:
        return ("write: response the cycle after AW and W are accepted together; read: data "
                + ("two cycles" if self.sync_read else "the cycle") + " after AR")

    def elaborate(self, platform):
        m = Module()
        # ---- write: address and data accepted together, then the response (SLVERR, no write, when the
        #      address is not word-aligned)
        take_w = Signal()
        w_ok = Signal()
        in_reset = ResetSignal()  # no transaction is taken while the target is in reset
        m.d.comb += [
            take_w.eq(self.awvalid & self.wvalid & ~self.bvalid & ~in_reset),
            w_ok.eq((self.awaddr[:2] == 0) & (self.wstrb == (1 << BUS_BITS // 8) - 1) if self.full_words
                    else self.awaddr[:2] == 0),
            self.awready.eq(take_w), self.wready.eq(take_w),
            self.w_en.eq(take_w & w_ok), self.w_addr.eq(self.awaddr[2:]), self.w_data.eq(self.wdata),
            self.w_strb.eq(self.wstrb),
        ]
        with m.If(take_w):
            m.d.sync += [self.bvalid.eq(1), self.bresp.eq(Mux(w_ok, OKAY, SLVERR))]
        with m.Elif(self.bready):
            m.d.sync += self.bvalid.eq(0)
        # ---- read: address accepted while no data is pending (SLVERR and 0 when not word-aligned); with
        #      sync_read the target's word arrives a cycle after r_en (r_wait), then rvalid
        take_r = Signal()
        r_ok = Signal()
        arready = ~self.rvalid & ~in_reset
        r_wait = Signal() if self.sync_read else None
        if self.sync_read:
            arready &= ~r_wait
        if self.one_port:
            arready &= ~take_w
        m.d.comb += [
            self.arready.eq(arready), take_r.eq(self.arvalid & self.arready),
            r_ok.eq(self.araddr[:2] == 0),
            self.r_en.eq(take_r & r_ok), self.r_addr.eq(self.araddr[2:]),
        ]
        if self.sync_read:
            r_ok_q = Signal()
            with m.If(take_r):
                m.d.sync += [r_wait.eq(1), r_ok_q.eq(r_ok)]
            with m.Elif(r_wait):
                m.d.sync += [r_wait.eq(0), self.rvalid.eq(1), self.rdata.eq(Mux(r_ok_q, self.r_data, 0)),
                             self.rresp.eq(Mux(r_ok_q, OKAY, SLVERR))]
            with m.Elif(self.rready):
                m.d.sync += self.rvalid.eq(0)
            return m
        with m.If(take_r):
            m.d.sync += [self.rvalid.eq(1), self.rdata.eq(Mux(r_ok, self.r_data, 0)),
                         self.rresp.eq(Mux(r_ok, OKAY, SLVERR))]
        with m.Elif(self.rready):
            m.d.sync += self.rvalid.eq(0)
        return m

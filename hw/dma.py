"""The chip's DMA engine: LOAD / STORE between a buffer and DRAM through an AXI4 master (docs/design.md §15,
docs/rtl.md "Off-chip memory").

The top controller (:mod:`hw.chip_ctrl`) starts it with a LOAD / STORE's
descriptor (:data:`model.isa.OPCODES`: ``buffer``, ``addr``, ``count``) and
the buffer address (``dst`` of a LOAD, ``src0`` of a STORE); it runs as named
actions and pulses ``done`` (with ``error`` and ``code``):

* *check* the descriptor (one cycle): a buffer code outside
  :data:`model.isa.DMA_BUFFERS`, a negative count or a DRAM address that is not
  a multiple of :data:`model.isa.DMA_BEAT_BYTES` stop with STATUS.ERROR_CODE 7,
  a range past the buffer's words with 5, a transfer past the 32-bit DRAM
  address space with 7 (in that order); a count of 0 is done;
* per INCR burst of :func:`model.isa.dma_bursts` (at most
  :data:`model.isa.DMA_MAX_BURST` beats, never across a 4 KiB boundary; one
  transaction outstanding), LOAD: *address* (AR), then *take* each R beat,
  writing its element(s) into the buffer, one a cycle (``RREADY`` low while an
  ACT beat's second element is written); STORE: *address* (AW), then *send*
  its W beats, one element a cycle from the buffer's synchronous read port
  read ahead (a beat a cycle while ``WREADY`` is high; an ACT beat's first
  element is held a cycle while its second is read; ``WSTRB`` 0b0011 for an
  ACT beat holding one element), then *wait* for B;
* an error response (``RRESP`` / ``BRESP`` not OKAY; also an ``RID`` / ``BID``
  other than 0 or ``RLAST`` not on the burst's last beat) stops the transfer
  with code 8 at the end of the burst (every beat of a read burst is taken; its
  elements are written as the slave returned them).

The AXI4 master: 32-bit data (:data:`model.isa.DMA_BEAT_BITS`: a beat is a
32-bit buffer element, or two ACT elements, and the buffers take one element a
cycle, so a wider bus would not move data faster), :data:`model.isa.DMA_ADDR_BITS`
address bits, ``AxSIZE`` 2 (4 bytes), ``AxBURST`` INCR, ``AWID`` / ``ARID``
0 (:data:`AXI_ID_BITS` wide; one transaction at a time). A reset drops every ``VALID`` / ``READY`` of the master
in the next cycle: a burst in flight is abandoned, so the DRAM's interconnect must
be reset with the chip (AXI4 resets both sides together).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib.wiring import In, Out

from dbpim.hw.common import Block
from dbpim.hw.sram import addr_width
from dbpim.model import isa
from dbpim.model._check import check_int

__all__ = ["DMAEngine", "axi_master_ports", "AXI_INCR", "AXI_SIZE", "AXI_ID_BITS"]

#: AxBURST of an INCR burst
AXI_INCR = 1
#: AxSIZE of a beat (log2 of its bytes)
AXI_SIZE = (isa.DMA_BEAT_BYTES - 1).bit_length()
#: AXI responses
_OKAY = 0
#: Bits of the deepest buffer address the engine takes (``buf_addr`` is as wide as its deepest buffer's
#: address: a transfer from a 16-bit ``dst`` / ``src0`` may run past word 65535 of a deeper buffer)
BUF_ADDR_BITS = 24
#: Bits of the AXI IDs (AWID / ARID always 0: one transaction at a time)
AXI_ID_BITS = 1


def axi_master_ports(prefix: str = "m_axi_") -> dict:
    """The signature members of the chip's AXI4 master (:data:`model.isa.DMA_BEAT_BITS` data,
    :data:`model.isa.DMA_ADDR_BITS` address), named ``<prefix><channel signal>``."""
    a, d = isa.DMA_ADDR_BITS, isa.DMA_BEAT_BITS
    return {f"{prefix}{k}": v for k, v in {
        "awid": Out(AXI_ID_BITS), "awaddr": Out(a), "awlen": Out(8), "awsize": Out(3), "awburst": Out(2), "awvalid": Out(1), "awready": In(1),
        "wdata": Out(d), "wstrb": Out(d // 8), "wlast": Out(1), "wvalid": Out(1), "wready": In(1),
        "bid": In(AXI_ID_BITS), "bresp": In(2), "bvalid": In(1), "bready": Out(1),
        "arid": Out(AXI_ID_BITS), "araddr": Out(a), "arlen": Out(8), "arsize": Out(3), "arburst": Out(2), "arvalid": Out(1), "arready": In(1),
        "rid": In(AXI_ID_BITS), "rdata": In(d), "rresp": In(2), "rlast": In(1), "rvalid": In(1), "rready": Out(1)}.items()}


class DMAEngine(Block):
    """LOAD / STORE between one of :data:`model.isa.DMA_BUFFERS` and DRAM (module docstring).

    Parameters
    ----------
    depths : dict
        Words of ``ACT``, ``ACC``, ``WMEM``, ``CMEM`` (1 .. 2**:data:`BUF_ADDR_BITS` each).

    Attributes
    ----------
    start : In(1)
        Run a transfer with ``store``, ``buffer``, ``baddr``, ``daddr``, ``count`` (taken in this cycle).
    busy : Out(1)
        A transfer runs: the engine owns ``buf_*`` (the chip gives it the buffer's ports).
    done, error : Out(1)
        One cycle at the end of a transfer; ``code`` the STATUS.ERROR_CODE when ``error``.
    buf_sel : Out(2)
        The buffer (code of :data:`model.isa.DMA_BUFFERS`).
    buf_addr, buf_we, buf_wdata, buf_rdata
        Its word address (as wide as the deepest buffer's), write enable and data (the low ``elem_bits`` bits), and its synchronous read data.
    <axi_master_ports()>
        The AXI4 master.
    """

    NAME = "dma"

    def __init__(self, *, depths: dict):
        self._depths = {b: check_int(f"depths.{b}", depths[b], 1, 1 << BUF_ADDR_BITS) for b in isa.DMA_BUFFERS}
        self.__dict__["_params"] = {f"{b.lower()}_words": n for b, n in self._depths.items()}
        super().__init__({
            "start": In(1), "store": In(1), "buffer": In(signed(isa.WORD_BITS)), "baddr": In(16),
            "daddr": In(isa.DMA_ADDR_BITS), "count": In(signed(isa.WORD_BITS)),
            "busy": Out(1), "done": Out(1), "error": Out(1), "code": Out(4),
            "buf_sel": Out(2), "buf_addr": Out(max(addr_width(n) for n in self._depths.values())), "buf_we": Out(1), "buf_wdata": Out(isa.DMA_BEAT_BITS),
            "buf_rdata": In(isa.DMA_BEAT_BITS),
            **axi_master_ports(""),
        })

    @property
    def latency(self) -> int:
        return 1

    latency_note = "start to the descriptor check; bursts as model.chip_timing.dma_cycles counts them"

    def elaborate(self, platform):
        m = Module()
        A = isa.DMA_ADDR_BITS
        half = isa.BUFFERS["ACT"].elem_bits
        act_code = isa.DMA_BUFFERS["ACT"]

        store = Signal()
        buffer = Signal(signed(isa.WORD_BITS))
        count = Signal(signed(isa.WORD_BITS))
        addr = Signal(A + 2)          # DRAM byte address of the next burst (at the width of addr + span)
        ba = Signal(33)               # buffer address of the next element (at the width of ba + count)
        ba_next = Signal(33)          # ... and of the one after it
        left_next = Signal(32)        # elements left after this one
        left = Signal(32)             # elements left
        bleft = Signal(range(isa.DMA_MAX_BURST + 1))  # beats left in the burst
        phase = Signal()              # an ACT beat's second element
        hold = Signal(half)           # ... held from the R beat (STORE: an ACT beat's first element)
        bad = Signal()                # an error response in this burst
        code = Signal(4)
        sel = Signal(2)
        is16 = Signal()
        m.d.comb += [is16.eq(sel == act_code), self.buf_sel.eq(sel), ba_next.eq(ba + 1), left_next.eq(left - 1)]

        # the next burst: beats left (two ACT elements a beat), at most DMA_MAX_BURST, up to the 4 KiB boundary
        beats_left = Signal(32)
        m.d.comb += beats_left.eq(Mux(is16, (left + 1) >> 1, left))
        # the words to the boundary are fewer than DMA_MAX_BURST when the word address's bits above the burst's
        # are all ones; then they are the complement of its low bits, plus one (comparisons with constants, or of
        # one width)
        burst_bits = (isa.DMA_MAX_BURST - 1).bit_length()
        near = addr[AXI_SIZE + burst_bits:(isa.DMA_BOUNDARY - 1).bit_length()].all()
        low = Signal(burst_bits)
        m.d.comb += low.eq(~addr[AXI_SIZE:AXI_SIZE + burst_bits])
        to_edge = Signal(burst_bits + 1)
        m.d.comb += to_edge.eq(low + 1)
        few = Signal(burst_bits + 1)
        m.d.comb += few.eq(beats_left[:burst_bits + 1])
        blen = Signal(range(isa.DMA_MAX_BURST + 1))
        m.d.comb += blen.eq(isa.DMA_MAX_BURST)
        with m.If(beats_left < isa.DMA_MAX_BURST):
            m.d.comb += blen.eq(few)
        with m.If(near & ((beats_left >= isa.DMA_MAX_BURST) | (to_edge < few))):
            m.d.comb += blen.eq(to_edge)

        for ch in ("ar", "aw"):
            m.d.comb += [getattr(self, f"{ch}addr").eq(addr[:A]), getattr(self, f"{ch}len").eq(blen - 1),
                         getattr(self, f"{ch}size").eq(AXI_SIZE), getattr(self, f"{ch}burst").eq(AXI_INCR)]
        # a W beat: the element on the read port (ACT: the held first element, then the second; a last beat of one
        # ACT element alone, WSTRB 0b0011)
        act_pair = is16 & phase
        m.d.comb += [self.wdata.eq(Mux(act_pair, Cat(hold, self.buf_rdata[:half]), self.buf_rdata)),
                     self.wstrb.eq(Mux(is16 & ~phase, 0b0011, 0b1111)), self.wlast.eq(bleft == 1),
                     self.buf_addr.eq(ba)]
        m.d.comb += self.code.eq(code)
        # an R beat in error: its response, an ID not ours, or RLAST not on the burst's last beat
        r_bad = (self.rresp != _OKAY) | (self.rid != 0) | (self.rlast != (bleft == 1))

        def finish(c: int | None = None):
            m.d.sync += code.eq(0 if c is None else c)
            m.next = "DONE"

        def end_of_beat(failed):
            """A LOAD beat written (its last element this cycle): the next beat, or the burst's end (its error
            response, the next burst, or done)."""
            m.d.sync += [bleft.eq(bleft - 1), addr.eq(addr + isa.DMA_BEAT_BYTES)]
            with m.If(bleft == 1):
                with m.If(failed):
                    finish(8)
                with m.Elif(left == 1):
                    finish()
                with m.Else():
                    m.next = "AR"

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [store.eq(self.store), buffer.eq(self.buffer), count.eq(self.count),
                                 addr.eq(self.daddr), ba.eq(self.baddr), sel.eq(self.buffer[:2])]
                    m.next = "CHECK"

            with m.State("CHECK"):
                m.d.comb += self.busy.eq(1)
                n = Signal(33)
                m.d.comb += n.eq(count.as_unsigned())
                depth = Signal(34)
                bend = Signal(34)
                m.d.comb += bend.eq(ba + n)
                with m.Switch(sel):
                    for name, c in isa.DMA_BUFFERS.items():
                        with m.Case(c):
                            m.d.comb += depth.eq(self._depths[name])
                span = Signal(A + 2)  # bytes the transfer covers in DRAM
                m.d.comb += span.eq(Mux(is16, (n + 1) >> 1, n) << AXI_SIZE)
                dend = Signal(A + 3)
                m.d.comb += dend.eq(addr + span)
                m.d.sync += [left.eq(n), phase.eq(0), bad.eq(0)]
                with m.If((buffer.as_unsigned() >= len(isa.DMA_BUFFERS)) | count[-1]
                          | (addr[:AXI_SIZE] != 0)):
                    finish(7)
                with m.Elif(bend > depth):
                    finish(5)
                with m.Elif(dend > (1 << A)):
                    finish(7)
                with m.Elif(n == 0):
                    finish()
                with m.Elif(store):
                    m.next = "AW"
                with m.Else():
                    m.next = "AR"

            # LOAD: a burst's address, then its R beats, one element a cycle into the buffer
            with m.State("AR"):
                m.d.comb += [self.busy.eq(1), self.arvalid.eq(1)]
                with m.If(self.arready):
                    m.d.sync += [bleft.eq(blen), bad.eq(0)]
                    m.next = "TAKE_R"

            with m.State("TAKE_R"):
                m.d.comb += [self.busy.eq(1), self.rready.eq(~phase)]
                with m.If(phase):  # an ACT beat's second element
                    m.d.comb += [self.buf_we.eq(1), self.buf_wdata.eq(hold)]
                    m.d.sync += [ba.eq(ba_next), left.eq(left_next), phase.eq(0)]
                    end_of_beat(bad)
                with m.Elif(self.rvalid):
                    m.d.comb += [self.buf_we.eq(1), self.buf_wdata.eq(self.rdata)]
                    m.d.sync += [ba.eq(ba_next), left.eq(left_next), bad.eq(bad | r_bad), hold.eq(self.rdata[half:])]
                    with m.If(is16 & (left > 1)):
                        m.d.sync += phase.eq(1)
                    with m.Else():
                        end_of_beat(bad | r_bad)

            # STORE: a burst's address, then its W beats, one a cycle while WREADY is high: the buffer's read port
            # reads ahead (``buf_addr`` is the element on ``buf_rdata`` in the next cycle: the one after a W
            # handshake, else the same), so a beat's data is on the port when it is sent
            with m.State("AW"):
                m.d.comb += [self.busy.eq(1), self.awvalid.eq(1)]
                with m.If(self.awready):
                    m.d.sync += bleft.eq(blen)
                    m.next = "SEND_W"

            with m.State("SEND_W"):
                m.d.comb += self.busy.eq(1)
                with m.If(is16 & ~phase & (left > 1)):  # an ACT beat's first element: held, its second read
                    m.d.comb += self.buf_addr.eq(ba_next)
                    m.d.sync += [hold.eq(self.buf_rdata[:half]), ba.eq(ba_next), left.eq(left_next), phase.eq(1)]
                with m.Else():
                    m.d.comb += self.wvalid.eq(1)
                    with m.If(self.wready):
                        m.d.comb += self.buf_addr.eq(ba_next)
                        m.d.sync += [ba.eq(ba_next), left.eq(left_next), phase.eq(0), bleft.eq(bleft - 1),
                                     addr.eq(addr + isa.DMA_BEAT_BYTES)]
                        with m.If(bleft == 1):
                            m.next = "B"

            with m.State("B"):
                m.d.comb += [self.busy.eq(1), self.bready.eq(1)]
                with m.If(self.bvalid):
                    with m.If((self.bresp != _OKAY) | (self.bid != 0)):
                        finish(8)
                    with m.Elif(left == 0):
                        finish()
                    with m.Else():
                        m.next = "AW"

            with m.State("DONE"):
                m.d.comb += [self.busy.eq(1), self.done.eq(1), self.error.eq(code != 0)]
                m.next = "IDLE"
        return m

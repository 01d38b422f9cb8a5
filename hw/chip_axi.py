"""The DB-PIM chip as an IP block: ``dbpim_chip`` behind an AXI4-Lite target (``dbpim_chip_axi``; docs/rtl.md
"The chip top").

One flat address map, :func:`model.isa.chip_map` (written once there; the
generated SystemRDL / C header / IP-XACT / Markdown and the drivers read the
same): :data:`model.isa.CHIP_REGISTERS` at 0, then each buffer of
:data:`model.isa.HOST_TARGETS` at its base, one element per entry of
``stride`` 32-bit words. The decoder here turns an AXI word address into the
chip's host port (``host_sel``, ``host_addr``):

* a write of the last word of an entry (``IMEM``: ``WORD[1]``, bits 63:32)
  commits the entry, its lower words taken from the last writes of those words
  (to any entry); a write of a lower word only holds it;
* a read returns the word of the entry (``IMEM``: either half, each read on
  its own), a signed element narrower than 32 bits (``ACT``) sign-extended;
* an address past a buffer's entries or in a gap of the map: a write is
  dropped, a read returns 0 (response OKAY); a write without all four byte
  strobes, or an address that is not word-aligned, is answered SLVERR and not
  made (:class:`hw.axi.AXI4LiteTarget` with ``full_words``);
* reads and writes share the chip's one port: a read is not accepted in a
  cycle a write is taken; a read's data is the chip's ``host_rdata`` of the
  next cycle, so ``rvalid`` rises two cycles after the AR handshake.

``aclk`` / ``aresetn`` as :class:`hw.core.PIMCoreAXI` (:func:`hw.axi.aclk_domain`: the reset synchronizer);
``irq`` is ``STATUS.DONE``. The buffers keep their contents through a reset.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib.wiring import In, Out

from dbpim.hw.axi import AXI4LiteTarget, aclk_domain, axil_ports, connect_axil
from dbpim.hw.chip import DBPIMChip
from dbpim.hw.common import Block, add_block
from dbpim.hw.dma import axi_master_ports
from dbpim.hw.simd import SIMDCore
from dbpim.model import isa
from dbpim.model.spec import BUS_BITS

__all__ = ["DBPIMChipAXI"]


class DBPIMChipAXI(Block):
    """The chip with an AXI4-Lite target: the Verilog top a system connects (``dbpim_chip_axi``).

    Parameters
    ----------
    lanes, simd_channels, depths, core, buffer_words, cores, result_words
        As :class:`hw.chip.DBPIMChip`.

    Attributes
    ----------
    aclk, aresetn : In(1)
        Clock (rising edge) and reset (active low, through the synchronizer).
    s_axil_* :
        The AXI4-Lite target (32-bit data, ``map.addr_width`` address bits).
    irq : Out(1)
        ``STATUS.DONE``.
    m_axi_* :
        The chip's AXI4 master to DRAM (LOAD / STORE; :func:`hw.dma.axi_master_ports`), on ``aclk``.
    map : model.spec.RegisterMap
        The address map (:func:`model.isa.chip_map` of the chip's depths).
    """

    NAME = "chip_axi"

    def __init__(self, *, lanes: int, simd_channels: int = SIMDCore.DEFAULT_CHANNELS, depths: dict, core: dict,
                 buffer_words: int, cores: int = 1, result_words: int = 4096):
        self.chip = DBPIMChip(lanes=lanes, simd_channels=simd_channels, depths=depths, core=core,
                              buffer_words=buffer_words, cores=cores, result_words=result_words)
        self.chip._MustUse__silence = True  # elaborated with this top; unused when only the map is wanted
        self._params = self.chip.parameters
        self.map = isa.chip_map(self.chip.depths)
        #: the synchronized reset of the chip's domain (not a port)
        self.in_reset = Signal(name="in_reset")
        super().__init__({"aclk": In(1), "aresetn": In(1), **axil_ports(self.map.addr_width), "irq": Out(1),
                          **axi_master_ports("m_axi_")})

    @classmethod
    def from_config(cls, hw) -> "DBPIMChipAXI":
        """From a :class:`model.config.HwConfig`, sized as :meth:`hw.chip.DBPIMChip.from_config`."""
        chip = DBPIMChip.from_config(hw)  # its sizes; the top builds its own
        chip._MustUse__silence = True
        return cls(lanes=chip.lanes, simd_channels=chip.simd_channels, depths=chip.depths, core=chip.core,
                   buffer_words=chip.buffer_words, cores=chip.cores, result_words=chip.result_words)

    @property
    def latency(self) -> int:
        """Cycles from an accepted read address to ``rvalid``."""
        return 2

    latency_note = ("AXI4-Lite read: data two cycles after AR (the chip's host port reads synchronously); write: "
                    "response the cycle after AW and W; a program runs from CTRL.START to STATUS.DONE")

    def _decode(self, m: Module, word, prefix: str):
        """``(target index, entry, word in entry, hit)`` of a bus word address: which host target, which of its
        entries, which 32-bit word of the entry, and whether the address is inside one (not a gap, not past the
        entries)."""
        cm = self.map
        n = len(isa.HOST_TARGETS)
        sel = Signal(range(n), name=f"{prefix}_sel")
        entry = Signal(len(self.chip.host_addr), name=f"{prefix}_entry")  # the host port's reach
        part = Signal(range(max([r.stride for r in cm.regions.values()] + [1])), name=f"{prefix}_part")
        hit = Signal(name=f"{prefix}_hit")
        reg_shift = (cm.reg_bytes // 4).bit_length() - 1
        regions = []
        for name, r in cm.regions.items():
            shift = (r.size // 4).bit_length() - 1      # word-address bits inside the region
            sbits = r.stride.bit_length() - 1           # word-in-entry bits
            index = Signal(max(1, shift - sbits), name=f"{prefix}_{name.lower()}_entry")
            m.d.comb += index.eq(word[sbits:shift] if shift > sbits else 0)
            regions.append((name, r, shift, sbits, index))
        with m.If((word >> reg_shift) == 0):
            m.d.comb += [sel.eq(isa.HOST_TARGETS.index("REGS")), entry.eq(word[:reg_shift]), hit.eq(1)]
        for name, r, shift, sbits, index in regions:
            with m.Elif((word >> shift) == (r.base >> (shift + 2))):
                # past the entries: in the region's power-of-two span, beyond the depth
                inside = Const(1) if r.entries >= 1 << len(index) else index < Const(r.entries, len(index))
                if r.stride > r.words:  # not a padding word of an entry
                    inside &= word[:sbits] < r.words
                m.d.comb += [sel.eq(isa.HOST_TARGETS.index(name)), entry.eq(index), hit.eq(inside)]
                if sbits:
                    m.d.comb += part.eq(word[:sbits])
        return sel, entry, part, hit

    def elaborate(self, platform):
        m = Module()
        aclk_domain(m, self.aclk, self.aresetn, self.in_reset)
        axil = AXI4LiteTarget(addr_width=self.map.addr_width, sync_read=True, full_words=True, one_port=True)
        axil.NAME = "chip_axil"  # its own module (dbpim_chip_axil): the core's target has other parameters
        chip = self.chip
        add_block(m, "axil", axil, platform)
        add_block(m, "chip", chip, platform)
        connect_axil(m, self, axil)
        m.d.comb += self.irq.eq(chip.irq)
        for name, port in axi_master_ports("m_axi_").items():  # the chip's AXI4 master to DRAM (hw.dma)
            ours, theirs = getattr(self, name), getattr(chip, name)
            m.d.comb += ours.eq(theirs) if port.flow == Out(1).flow else theirs.eq(ours)

        # ---- writes: the last word of an entry commits it with the held lower words
        wsel, wentry, wpart, whit = self._decode(m, axil.w_addr, "w")
        wide = max(r.words for r in self.map.regions.values())
        held = Signal(BUS_BITS * max(1, wide - 1))
        commit = Signal()
        wdata = Signal.like(chip.host_wdata)
        m.d.comb += [commit.eq(1), wdata.eq(axil.w_data)]
        for name, r in self.map.regions.items():
            if r.words > 1:
                with m.If(wsel == isa.HOST_TARGETS.index(name)):
                    m.d.comb += [commit.eq(wpart == r.words - 1),
                                 wdata.eq(Cat(held[:BUS_BITS * (r.words - 1)], axil.w_data))]
                    for k in range(r.words - 1):
                        with m.If(axil.w_en & whit & (wpart == k)):
                            m.d.sync += held[BUS_BITS * k:BUS_BITS * (k + 1)].eq(axil.w_data)

        # ---- reads: which target and word, kept for the cycle the chip answers in
        rsel, rentry, rpart, rhit = self._decode(m, axil.r_addr, "r")
        r_sel, r_part, r_hit = Signal.like(rsel), Signal.like(rpart), Signal()
        with m.If(axil.r_en):
            m.d.sync += [r_sel.eq(rsel), r_part.eq(rpart), r_hit.eq(rhit)]
        r_word = Signal(BUS_BITS)
        with m.Switch(r_sel):
            for i, name in enumerate(isa.HOST_TARGETS):
                with m.Case(i):
                    if name == "REGS":
                        m.d.comb += r_word.eq(chip.host_rdata[:BUS_BITS])
                        continue
                    buf, r = isa.BUFFERS[name], self.map.regions[name]
                    if r.words > 1:
                        m.d.comb += r_word.eq(chip.host_rdata.word_select(r_part[:(r.words - 1).bit_length()],
                                                                          BUS_BITS))
                    elif buf.elem_bits < BUS_BITS and buf.signed:
                        m.d.comb += r_word.eq(chip.host_rdata[:buf.elem_bits].as_signed())
                    else:
                        m.d.comb += r_word.eq(chip.host_rdata[:BUS_BITS])
        m.d.comb += axil.r_data.eq(Mux(r_hit, r_word, 0))

        # ---- the chip's one host port: the write when one is taken, else the read (one_port: never both)
        with m.If(axil.w_en):
            m.d.comb += [chip.host_sel.eq(wsel), chip.host_addr.eq(wentry), chip.host_wdata.eq(wdata),
                         chip.host_we.eq(whit & commit)]
        with m.Else():
            m.d.comb += [chip.host_sel.eq(rsel), chip.host_addr.eq(rentry), chip.host_re.eq(axil.r_en & rhit)]
        return m

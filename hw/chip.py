"""The DB-PIM chip's top (docs/design.md §15, docs/rtl.md): buffers, registers, controller, SIMD core.

``dbpim_chip`` holds the buffers of :data:`model.isa.BUFFERS` that the RTL
chip runs so far (IMEM, DMEM, CMEM, ACT, ACC; WMEM and the PIM cores are not
in it yet) as Amaranth memories, the register block of
:data:`model.isa.CHIP_REGISTERS`, the top controller (:mod:`hw.chip_ctrl`)
and the SIMD core (:mod:`hw.simd`).

**Host port** (a simple synchronous port, not yet AXI): ``host_sel`` picks a
target of :data:`model.isa.HOST_TARGETS` (``REGS`` or a buffer),
``host_addr`` its word; ``host_we`` writes ``host_wdata`` (the low
``elem_bits`` bits for a buffer; CTRL.START for ``REGS`` word 0), ``host_re``
reads: ``host_rdata`` is the word (zero-extended) in the next cycle.
The host loads the buffers while STATUS.BUSY is low, writes CTRL.START, polls
STATUS (or waits for ``irq``, high while STATUS.DONE) and reads ACT.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from dbpim.hw.chip_ctrl import ChipController
from dbpim.hw.common import Block, add_block
from dbpim.hw.simd import SIMDCore
from dbpim.model import isa
from dbpim.model._check import check_int

__all__ = ["DBPIMChip", "DEFAULT_DEPTHS"]

#: Words of the buffers a configuration does not size (ACT and ACC come from ``system.input_buffer_kib`` /
#: ``output_buffer_kib``).
DEFAULT_DEPTHS = {"IMEM": 256, "DMEM": 4096, "CMEM": 4096}


class DBPIMChip(Block):
    """The chip: the host port, the buffers, the register block, the controller and the SIMD core.

    Parameters
    ----------
    lanes : int
        SIMD lanes (``system.simd_lanes``), 1..64.
    simd_channels : int
        The SIMD core's constant memory reach.
    depths : dict
        Buffer name -> words (``IMEM``, ``DMEM``, ``CMEM``, ``ACT``, ``ACC``), 1..65536 each.

    Attributes
    ----------
    host_sel : In(3)
    host_addr : In(16)
    host_wdata : In(64)
    host_we, host_re : In(1)
    host_rdata : Out(64)
    irq : Out(1)
        STATUS.DONE.
    """

    NAME = "chip"

    def __init__(self, *, lanes: int, simd_channels: int = SIMDCore.DEFAULT_CHANNELS, depths: dict):
        self.lanes = check_int("lanes", lanes, 1, 64)
        self.simd_channels = check_int("simd_channels", simd_channels, 1, (1 << 16) - 1)
        self.depths = {b: check_int(f"depths.{b}", depths.get(b, DEFAULT_DEPTHS.get(b)), 1, 1 << 16)
                       for b in ("IMEM", "DMEM", "CMEM", "ACT", "ACC")}
        self.__dict__["_params"] = {"lanes": self.lanes, "simd_channels": self.simd_channels,
                                    **{f"{b.lower()}_words": n for b, n in self.depths.items()}}
        super().__init__({
            "host_sel": In(range(len(isa.HOST_TARGETS))), "host_addr": In(16), "host_wdata": In(64),
            "host_we": In(1), "host_re": In(1), "host_rdata": Out(64), "irq": Out(1),
        })

    @property
    def latency(self) -> int:
        return 1

    latency_note = "host_re to host_rdata; a program runs from CTRL.START to STATUS.DONE (CYCLES counts it)"

    @classmethod
    def from_config(cls, hw, **depths) -> "DBPIMChip":
        """From a :class:`model.config.HwConfig`: ACT / ACC words from the system's buffer sizes."""
        s = hw.system
        d = dict(DEFAULT_DEPTHS)
        d["ACT"] = min(1 << 16, int(s.input_buffer_kib * 1024) // (isa.BUFFERS["ACT"].elem_bits // 8))
        d["ACC"] = min(1 << 16, int(s.output_buffer_kib * 1024) // (isa.BUFFERS["ACC"].elem_bits // 8))
        d.update(depths)
        return cls(lanes=s.simd_lanes, depths=d)

    def elaborate(self, platform):
        m = Module()
        D = self.depths
        ctrl = ChipController(lanes=self.lanes, simd_channels=self.simd_channels, depths=D)
        simd = SIMDCore(lanes=self.lanes, channels=self.simd_channels)
        add_block(m, "ctrl", ctrl, platform)
        add_block(m, "simd", simd, platform, extra_reset=ctrl.simd_rst)
        wiring.connect(m, ctrl.simd_d, simd.d)
        wiring.connect(m, ctrl.simd_i, simd.i)
        wiring.connect(m, simd.o, ctrl.simd_o)
        m.d.comb += [simd.w_en.eq(ctrl.simd_w_en), simd.w_addr.eq(ctrl.simd_w_addr), simd.w_data.eq(ctrl.simd_w_data),
                     ctrl.simd_err.eq(simd.err), ctrl.simd_busy.eq(simd.busy)]

        sel = {name: self.host_sel == i for i, name in enumerate(isa.HOST_TARGETS)}
        rsel = Signal.like(self.host_sel)
        rdata = {}
        for name in ("IMEM", "DMEM", "CMEM", "ACT", "ACC"):
            buf = isa.BUFFERS[name]
            mem = Memory(shape=buf.elem_bits, depth=D[name], init=[])
            m.submodules[name.lower()] = mem
            wp = mem.write_port()
            host = mem.read_port(domain="sync")
            abits = len(wp.addr)
            in_range = self.host_addr < D[name]
            m.d.comb += [wp.addr.eq(self.host_addr[:abits]), wp.data.eq(self.host_wdata[:buf.elem_bits]),
                         wp.en.eq(self.host_we & sel[name] & in_range), host.addr.eq(self.host_addr[:abits])]
            rdata[name] = host.data
            cp = mem.read_port(domain="sync")
            m.d.comb += cp.addr.eq(getattr(ctrl, f"{name.lower()}_addr" if name in ("IMEM", "DMEM", "CMEM")
                                           else f"{name.lower()}_raddr"))
            if name in ("IMEM",):
                m.d.comb += ctrl.imem_data.eq(cp.data)
            elif name == "DMEM":
                m.d.comb += ctrl.dmem_data.eq(cp.data)
            elif name == "CMEM":
                m.d.comb += ctrl.cmem_data.eq(cp.data)
            elif name == "ACT":
                m.d.comb += ctrl.act_rdata.eq(cp.data)
                with m.If(ctrl.act_we):  # the controller owns ACT's write port while it runs
                    m.d.comb += [wp.addr.eq(ctrl.act_waddr), wp.data.eq(ctrl.act_wdata), wp.en.eq(1)]
            else:
                m.d.comb += ctrl.acc_rdata.eq(cp.data)

        # --- registers
        regs = isa.CHIP_REG
        st = regs["STATUS"]
        status = Signal(32)
        m.d.comb += status.eq((ctrl.busy << st.field("BUSY").lsb) | (ctrl.done << st.field("DONE").lsb)
                              | (ctrl.error << st.field("ERROR").lsb) | (ctrl.err_code << st.field("ERROR_CODE").lsb)
                              | (ctrl.pc << st.field("PC").lsb))
        start = regs["CTRL"].field("START")
        m.d.comb += ctrl.start.eq(self.host_we & sel["REGS"] & (self.host_addr == regs["CTRL"].word)
                                  & self.host_wdata[start.lsb])
        m.d.comb += self.irq.eq(ctrl.done)
        reg_val = Signal(32)
        with m.If(self.host_re):
            m.d.sync += [rsel.eq(self.host_sel), reg_val.eq(Mux(self.host_addr == st.word, status,
                                                                Mux(self.host_addr == regs["CYCLES"].word,
                                                                    ctrl.cycles, 0)))]
        with m.Switch(rsel):
            for i, name in enumerate(isa.HOST_TARGETS):
                with m.Case(i):
                    if name == "REGS":
                        m.d.comb += self.host_rdata.eq(reg_val)
                    else:
                        m.d.comb += self.host_rdata.eq(rdata[name])
        return m

"""The DB-PIM chip's top (docs/design.md §15, docs/rtl.md): buffers, registers, controller, SIMD core.

``dbpim_chip`` holds the buffers of :data:`model.isa.BUFFERS` (IMEM, DMEM,
CMEM, ACT, ACC, WMEM) as synchronous-read memories of :mod:`hw.sram`, the register block of
:data:`model.isa.CHIP_REGISTERS`, the top controller (:mod:`hw.chip_ctrl`),
the SIMD core (:mod:`hw.simd`), and for the PIM instructions the PIM
controller (:mod:`hw.pim_ctrl`) and ``cores`` PIM cores (:class:`hw.core.PIMCore`,
``system.cores``), each fed its input windows by a window generator
(:class:`hw.window.WindowGenerator`) holding an input buffer: the controller
writes a band's input into every core's buffer at once, and each core's
generator streams the windows of that core's own segment. LOAD / STORE run on
the DMA engine (:mod:`hw.dma`), the chip's AXI4 master to DRAM (``m_axi_*``),
which owns a buffer's read port and write port while it runs.

**Host port** (a simple synchronous port, not yet AXI): ``host_sel`` picks a
target of :data:`model.isa.HOST_TARGETS` (``REGS`` or a buffer),
``host_addr`` its word; ``host_we`` writes ``host_wdata`` (the low
``elem_bits`` bits for a buffer; CTRL.START for ``REGS`` word 0), ``host_re``
reads: ``host_rdata`` is the word (zero-extended) in the next cycle.
The host loads the buffers while STATUS.BUSY is low, writes CTRL.START, polls
STATUS (or waits for ``irq``, high while STATUS.DONE) and reads ACT. A buffer has
one read port, the controllers' while STATUS.BUSY is high: a buffer read by the
host then returns the word the controllers read (no buffer read while busy).
"""

from __future__ import annotations

from amaranth.hdl import Cat, ClockSignal, Instance, Module, Mux, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from dbpim.hw.chip_ctrl import ChipController
from dbpim.hw.clock_gate import CELL_NAME, cell_verilog, gate_enable, hold_cycles
from dbpim.hw.common import Block, Emitter, add_block
from dbpim.hw.core import PIMCore, _config_params
from dbpim.hw.dma import DMAEngine, axi_master_ports
from dbpim.hw.pim_ctrl import MAX_CORES, PIMController, core_suffix
from dbpim.hw.simd import SIMDCore
from dbpim.hw.sram import addr_width, sram_1r1w, sram_2rw
from dbpim.hw.window import WindowGenerator
from dbpim.model import isa
from dbpim.model._check import check_int
from dbpim.model.config import HwConfig

__all__ = ["DBPIMChip", "DEFAULT_DEPTHS"]

#: Words of the buffers a chip built without them takes: ``model.config.ChipConfig``'s defaults (ACT and ACC have
#: none: a configuration's come from ``system.input_buffer_kib`` / ``output_buffer_kib`` unless ``chip`` sets them).
DEFAULT_DEPTHS = {n: v for n, v in HwConfig(name="defaults").chip_words().items() if n not in ("ACT", "ACC")}
#: The buffers, in the host's target order.
_BUFS = tuple(n for n in isa.HOST_TARGETS if n != "REGS")


class DBPIMChip(Block):
    """The chip: the host port, the buffers, the register block, the controller and the SIMD core.

    Parameters
    ----------
    lanes : int
        SIMD lanes (``system.simd_lanes``), 1..64.
    simd_channels : int
        The SIMD core's constant memory reach.
    depths : dict
        Buffer name -> words (``IMEM``, ``DMEM``, ``CMEM``, ``ACT``, ``ACC``, ``WMEM``), 1 ..
        :data:`model.isa.DEPTH_MAX` each (``IMEM``, ``DMEM``, ``CMEM``, ``WMEM`` left out: :data:`DEFAULT_DEPTHS`).
    core : dict
        The PIM core's parameters (:data:`hw.core.CORE_KEYS`, ``digest``: ``hw.core._config_params`` of a
        configuration).
    buffer_words : int
        The input buffer's words (:func:`model.window.buffer_words` of ``system.input_buffer_kib``).
    cores : int
        PIM cores (``system.cores``), 1 .. :data:`hw.pim_ctrl.MAX_CORES`.
    result_words : int
        Words of each result buffer of cores 1 .. (``system.result_buffer_words``).
    clock_gate : bool
        Gate each PIM core's clock while it is quiet and idle (:mod:`hw.clock_gate`; ``verif.formal_gate`` proves
        it changes nothing on ``small``; ``paper``'s proof is not done: docs/rtl.md), in the emitted Verilog only (an :class:`hw.common.Emitter`: elaborated for
        Amaranth's simulator, a ValueError). Default False: ``dbpim verilog`` ships one clock; the native chip
        harness (``verif.native``) builds the gated chip.

    Attributes
    ----------
    host_sel : In(3)
    host_addr : In(:func:`model.isa.host_addr_bits` of ``depths``)
        16 bits, more where a buffer is deeper than 65536 words.
    host_wdata : In(64)
    host_we, host_re : In(1)
    host_rdata : Out(64)
    irq : Out(1)
        STATUS.DONE.
    m_axi_* :
        The AXI4 master to DRAM of LOAD / STORE (:func:`hw.dma.axi_master_ports`, :class:`hw.dma.DMAEngine`).
    """

    NAME = "chip"

    def __init__(self, *, lanes: int, simd_channels: int = SIMDCore.DEFAULT_CHANNELS, depths: dict, core: dict,
                 buffer_words: int, cores: int = 1, result_words: int = 4096, clock_gate: bool = False):
        self.lanes = check_int("lanes", lanes, 1, 64)
        self.simd_channels = check_int("simd_channels", simd_channels, 1, (1 << 16) - 1)
        self.depths = isa.check_depths({b: depths.get(b, DEFAULT_DEPTHS.get(b)) for b in _BUFS})
        self.core = dict(core)
        self.buffer_words = check_int("buffer_words", buffer_words, 1, 1 << 20)
        self.cores = check_int("cores", cores, 1, MAX_CORES)
        self.result_words = check_int("result_words", result_words, 1, 1 << 16)
        if not isinstance(clock_gate, bool):
            raise TypeError(f"clock_gate: must be True or False, got {clock_gate!r}")
        self.clock_gate = clock_gate
        PIMCore(**self.core)._MustUse__silence = True  # validates the core's parameters here, not at elaboration
        self.__dict__["_params"] = {"lanes": self.lanes, "simd_channels": self.simd_channels,
                                    **{f"{b.lower()}_words": n for b, n in self.depths.items()},
                                    "buffer_words": self.buffer_words, "cores": self.cores,
                                    "result_words": self.result_words,
                                    **({"clock_gate": True} if clock_gate else {}),
                                    **{f"core_{k}": v for k, v in self.core.items()}}
        super().__init__({
            "host_sel": In(range(len(isa.HOST_TARGETS))), "host_addr": In(isa.host_addr_bits(self.depths)),
            "host_wdata": In(64),
            "host_we": In(1), "host_re": In(1), "host_rdata": Out(64), "irq": Out(1),
            **axi_master_ports("m_axi_"),
        })

    @property
    def latency(self) -> int:
        return 1

    latency_note = "host_re to host_rdata; a program runs from CTRL.START to STATUS.DONE (CYCLES counts it)"

    @classmethod
    def from_config(cls, hw, clock_gate: bool = False, **depths) -> "DBPIMChip":
        """From a :class:`model.config.HwConfig`: every buffer's words from :meth:`model.config.HwConfig.chip_words`
        (``chip``; ACT / ACC left out there from the system's buffer sizes; ``depths`` override them), the PIM core,
        ``system.cores``, ``system.result_buffer_words`` and the input buffer
        (:meth:`hw.window.WindowGenerator.from_config`) from the configuration (more cores than
        :data:`hw.pim_ctrl.MAX_CORES`: a ValueError naming ``system.cores``); ``clock_gate`` as the constructor's."""
        s = hw.system
        d = {**hw.chip_words(), **depths}
        gen = WindowGenerator.from_config(hw)  # its buffer's words, checked against the configuration
        gen._MustUse__silence = True
        if s.cores > MAX_CORES:
            raise ValueError(f"system.cores: the RTL chip has 1 .. {MAX_CORES} PIM cores, got {s.cores}")
        return cls(lanes=s.simd_lanes, depths=d, core=_config_params(hw), buffer_words=gen._words, cores=s.cores,
                   result_words=s.result_buffer_words, clock_gate=clock_gate)

    def _pim(self, m, ctrl, platform) -> PIMController:
        """The PIM controller, the PIM cores and their window generators, wired to each other and the controller."""
        c = self.core
        cores = [PIMCore(**c) for _ in range(self.cores)]
        gens = [WindowGenerator(n_comp=c["n_comp"], in_bits=c["in_bits"], buffer_words=self.buffer_words,
                                windows=c["mask_windows"], in_windows=c.get("in_windows", 1))
                for _ in range(self.cores)]
        pim = PIMController(n_comp=c["n_comp"], in_bits=c["in_bits"], buffer_words=self.buffer_words,
                            windows=c["mask_windows"], word_addr_bits=cores[0].derived.word_addr_bits,
                            psum_bits=cores[0].psum_width, depths=self.depths, cores=self.cores,
                            result_words=self.result_words, descriptors=c["descriptors"],
                            result_lanes=c.get("result_lanes", 1))
        for blk in cores + gens:  # an emitter may reuse the module it already emitted for the same parameters
            blk._MustUse__silence = True
        add_block(m, "pim_ctrl", pim, platform)
        rst = Signal()
        m.d.comb += rst.eq(pim.core_rst | ctrl.simd_rst)  # each PIM instruction and each run start clean
        L = c.get("result_lanes", 1)

        def psum(core):
            """The core's result beat as the PIM controller takes it (L > 1: lane i in bits ``i * psum_width``)."""
            if L == 1:
                return core.o.payload.psum
            return Cat(*[core.o.payload.psum[i][:core.psum_width] for i in range(L)])

        for k, (core, gen) in enumerate(zip(cores, gens)):
            x = core_suffix(k)

            def port(name):
                return getattr(pim, f"{name}{x}")

            add_block(m, f"pim_core{x}", core, platform, extra_reset=rst,
                      clock=self._gated_clock(m, k, core, gen, rst, platform) if self.clock_gate else None)
            add_block(m, f"window{x}", gen, platform, extra_reset=rst)
            wiring.connect(m, port("win_d"), gen.d)
            wiring.connect(m, gen.o, core.x)
            m.d.comb += [gen.layer.eq(pim.win_layer), gen.w_en.eq(pim.buf_en), gen.w_addr.eq(pim.buf_addr),
                         gen.w_data.eq(pim.buf_data), gen.t_en.eq(port("tab_en")), gen.t_addr.eq(pim.tab_addr),
                         gen.t_data.eq(pim.tab_data)]
            m.d.comb += [core.w_en.eq(port("core_w_en")), core.w_addr.eq(pim.core_w_addr),
                         core.w_data.eq(pim.core_w_data), core.w_strb.eq(pim.core_w_strb), core.r_addr.eq(0),
                         port("core_o_valid").eq(core.o.valid), port("core_o_psum").eq(psum(core)),
                         core.o.ready.eq(port("core_o_ready")), port("core_done").eq(core.done),
                         port("core_error").eq(core.error)]
            if pim.keeps:  # the lanes holding a sum, for the PIM controller's range check
                m.d.comb += port("core_o_keep").eq(core.o_keep)
        for k in ("groups", "layer", "signed", "C", "H", "W", "src", "dst"):
            m.d.comb += getattr(pim, k).eq(getattr(ctrl, f"pim_{k}"))
        m.d.comb += [pim.start.eq(ctrl.pim_start), ctrl.pim_done.eq(pim.done), ctrl.pim_error.eq(pim.error),
                     ctrl.pim_code.eq(pim.err_code)]
        return pim

    def _gated_clock(self, m, k: int, core, gen, rst, platform) -> Signal:
        """Core ``k``'s gated clock: :func:`hw.clock_gate.gate_enable` of its inputs (its reset: the domain's and
        ``rst``) through the clock gate cell (:func:`hw.clock_gate.cell_verilog`)."""
        if not isinstance(platform, Emitter):
            raise ValueError("clock_gate: the gated clock is emitted in Verilog only (hw.generate); Amaranth's "
                             "simulator would clock a gated domain one delta cycle late")
        x = core_suffix(k)
        en = gate_enable(m, rst=ResetSignal() | rst, w_en=core.w_en, w_addr=core.w_addr, w_data=core.w_data,
                         x_valid=gen.o.valid, hold=hold_cycles(self.core["n_col"]), name=f"pim_core{x}_gate")
        gclk = Signal(name=f"pim_core{x}_clk")
        m.submodules[f"pim_core{x}_clock_gate"] = Instance(platform.cell(CELL_NAME, cell_verilog),
                                                           i_clk=ClockSignal(), i_en=en, o_gclk=gclk)
        return gclk

    def _dma(self, m, ctrl, platform) -> DMAEngine:
        """The DMA engine, started by the controller, its AXI4 master on the ``m_axi_*`` ports (the buffers'
        ports: :meth:`elaborate`)."""
        dma = DMAEngine(depths=self.depths)
        add_block(m, "dma", dma, platform)
        m.d.comb += [dma.start.eq(ctrl.dma_start), dma.store.eq(ctrl.dma_store), dma.buffer.eq(ctrl.dma_buffer),
                     dma.baddr.eq(ctrl.dma_baddr), dma.daddr.eq(ctrl.dma_daddr), dma.count.eq(ctrl.dma_count),
                     ctrl.dma_done.eq(dma.done), ctrl.dma_error.eq(dma.error), ctrl.dma_code.eq(dma.code)]
        for name, port in axi_master_ports("").items():
            ours, theirs = getattr(self, f"m_axi_{name}"), getattr(dma, name)
            m.d.comb += ours.eq(theirs) if port.flow == Out(1).flow else theirs.eq(ours)
        return dma

    def elaborate(self, platform):
        m = Module()
        D = self.depths
        ctrl = ChipController(lanes=self.lanes, simd_channels=self.simd_channels, depths=D)
        simd = SIMDCore(lanes=self.lanes, channels=self.simd_channels)
        add_block(m, "ctrl", ctrl, platform)
        self.ctrl = ctrl  # the controller of the last elaboration (verif.formal reads its FSM's IDLE)
        add_block(m, "simd", simd, platform, extra_reset=ctrl.simd_rst)
        wiring.connect(m, ctrl.simd_d, simd.d)
        wiring.connect(m, ctrl.simd_i, simd.i)
        wiring.connect(m, simd.o, ctrl.simd_o)
        m.d.comb += [simd.w_en.eq(ctrl.simd_w_en), simd.w_addr.eq(ctrl.simd_w_addr), simd.w_data.eq(ctrl.simd_w_data),
                     ctrl.simd_err.eq(simd.err)]

        pim = self._pim(m, ctrl, platform)
        dma = self._dma(m, ctrl, platform)

        sel = {name: self.host_sel == i for i, name in enumerate(isa.HOST_TARGETS)}
        rsel = Signal.like(self.host_sel)
        rdata = {}
        # (buffer, port name on the controller that reads it, the controller's data input)
        readers = {"IMEM": [(ctrl.imem_addr, ctrl.imem_data)], "DMEM": [(ctrl.dmem_addr, ctrl.dmem_data)],
                   "CMEM": [(ctrl.cmem_addr, ctrl.cmem_data)],
                   "ACT": [(Mux(pim.busy, pim.act_raddr, ctrl.act_raddr), (ctrl.act_rdata, pim.act_rdata))],
                   "ACC": [(ctrl.acc_raddr, ctrl.acc_rdata)],
                   "WMEM": [(pim.wa_addr, pim.wa_data), (pim.wb_addr, pim.wb_data)]}
        # the controllers own a buffer's write port while they write it
        writers = {"ACT": (ctrl.act_we, ctrl.act_waddr, ctrl.act_wdata),
                   "ACC": (pim.acc_we, pim.acc_waddr, pim.acc_wdata)}
        # each buffer through hw.sram (synchronous read): one read port the controllers read while the chip is
        # busy and the host otherwise (a host read while busy returns the controllers' word); WMEM, read by
        # the PIM controller twice a cycle, a dual-port one (port a: the host and wa, port b: wb)
        dma_we = {name: dma.buf_we & (dma.buf_sel == code) for name, code in isa.DMA_BUFFERS.items()}
        for name in _BUFS:
            buf = isa.BUFFERS[name]
            abits = addr_width(D[name])
            host_addr = self.host_addr[:abits]
            # (a buffer of 65536 words takes every host address: no compare at the address's width + 1)
            in_range = self.host_addr < D[name] if D[name] < 1 << len(self.host_addr) else 1
            host_we = self.host_we & sel[name] & in_range
            host_rd = self.host_re & sel[name] & ~ctrl.busy
            if name == "WMEM":
                pa, pb = sram_2rw(m, "wmem", buf.elem_bits, D[name], platform, name="wmem")
                (a_addr, a_to), (b_addr, b_to) = readers[name]
                m.d.comb += [pa.cs.eq(1), pa.we.eq(host_we), pa.addr.eq(Mux(host_we | host_rd, host_addr, a_addr)),
                             pa.wdata.eq(self.host_wdata[:buf.elem_bits]), a_to.eq(pa.rdata),
                             pb.cs.eq(1), pb.we.eq(0), pb.addr.eq(b_addr), pb.wdata.eq(0), b_to.eq(pb.rdata)]
                with m.If(dma.busy):  # the DMA engine owns port a while it runs
                    m.d.comb += [pa.addr.eq(dma.buf_addr[:abits]), pa.we.eq(dma_we[name]),
                                 pa.wdata.eq(dma.buf_wdata[:buf.elem_bits])]
                rdata[name] = pa.rdata
                continue
            mem = sram_1r1w(m, name.lower(), width=buf.elem_bits, depth=D[name], platform=platform,
                            name=name.lower())
            wp, rp = mem.w, mem.r
            (addr, to), = readers[name]
            m.d.comb += [wp.addr.eq(host_addr), wp.data.eq(self.host_wdata[:buf.elem_bits]), wp.en.eq(host_we),
                         rp.addr.eq(Mux(host_rd, host_addr, addr))]
            m.d.comb += [t.eq(rp.data) for t in (to if isinstance(to, tuple) else (to,))]
            rdata[name] = rp.data
            if name in writers:
                we, wa, wd = writers[name]
                with m.If(we):
                    m.d.comb += [wp.addr.eq(wa), wp.data.eq(wd), wp.en.eq(1)]
            if name in isa.DMA_BUFFERS:  # the DMA engine owns the read port and writes while it runs
                with m.If(dma.busy):
                    m.d.comb += rp.addr.eq(dma.buf_addr[:abits])
                with m.If(dma_we[name]):
                    m.d.comb += [wp.addr.eq(dma.buf_addr[:abits]), wp.data.eq(dma.buf_wdata[:buf.elem_bits]),
                                 wp.en.eq(1)]

        with m.Switch(dma.buf_sel):  # the DMA engine's read data: its buffer's read port
            for name, code in isa.DMA_BUFFERS.items():
                with m.Case(code):
                    m.d.comb += dma.buf_rdata.eq(rdata[name])

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

"""The chip's top controller (docs/design.md §15): fetches, decodes and runs the ISA on the SIMD core.

One instruction at a time, as named actions: *fetch* the 64-bit word at ``pc``
from IMEM, *decode* it (:data:`model.isa.INSTR_FIELDS`), *load* its
descriptor's words from DMEM, *set up* the operation's geometry, *load the
constants* into the SIMD core's constant memory (per channel from CMEM for
REQ and DWC, the descriptor's scalars for ADD and GAP), *send* the SIMD descriptor,
then *stream* the operands (read element by element from ACT, or ACC for REQ; DWC
reads each element's int8 weight from CMEM in the same cycle)
in the SIMD core's beat order (:mod:`model.simd_core`: pixel, channel group of
``lanes`` channels, window element) while it *writes back* each output beat's lanes
to ACT, and go to the next instruction; HALT ends the run. A PIM
instruction loads its descriptor the same way and then runs on the PIM
controller (:mod:`hw.pim_ctrl`) until it is done; a LOAD / STORE likewise on the
DMA engine (:mod:`hw.dma`, the chip's AXI4 master to DRAM).

Every SIMD instruction is one generic window walk over an input
``(outer, C, H, W)`` at ``src0`` (and ``src1`` for ADD) giving an output
``(outer, C, Ho, Wo)`` at ``dst`` (row-major, :mod:`model.isa`):

====== ====================================================================================
REQ    outer = ``outer``, W = Wo = ``inner``, H = Ho = 1, 1 x 1 window, reads ACC
ADD    C = 1, W = Wo = ``count``, 1 x 1 window, b at ``src1``
MAXP   the descriptor's C, H, W, Ho, Wo, kernel, stride, padding, dilation; no saturation
GAP    H = 1, W = ``HW``, Ho = Wo = 1, a 1 x ``HW`` window
CLMP   C = 1, W = Wo = ``count``, 1 x 1 window
DWC    MAXP's geometry on the SIMD core's dwconv; b = the weight at CMEM ``w_addr`` + (c * KH + kh) * KW + kw
====== ====================================================================================

The stream is pipelined (:meth:`ChipController._stream`): one buffer read a
cycle (one element: ADD's a and b take two cycles on ACT's one read port), a
beat to the SIMD core as soon as its last element is read, the results written
back a lane a cycle while the next operands are read; a window's last beat
waits only so that its result finds the write-back free (the SIMD core never
waits). Its cycles are
:func:`model.chip_timing.instruction_cycles`, which the golden chip counts
too (PIM: :func:`model.chip_timing.pim_cycles`). DWC loads its 15 descriptor words, the others
:data:`model.chip_timing.DESC_LOADED`. The opcodes of :data:`model.isa.RTL_PENDING` (none at present)
stop the run with STATUS.ERROR_CODE 2; the codes are :data:`model.isa.CHIP_ERRORS`.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from dbpim.hw.common import Block, layout_from_fields
from dbpim.model import isa
from dbpim.model._check import check_int
from dbpim.model.chip_timing import DESC_LOADED, DWC_DESC_LOADED
from dbpim.model.requant import MULT_BITS, SHIFT_MAX
from dbpim.model.spec import (SIMD_DWC_W_BITS, SIMD_MULT_BITS, SIMD_OPCODES, SIMD_PIXEL_BITS, SIMD_SHIFT_BITS,
                              SIMD_WINDOW_BITS, simd_const_fields, simd_descriptor_fields, simd_in_fields,
                              simd_out_fields)

__all__ = ["ChipController", "DESC_LOADED"]

# descriptor words the controller loads (model.chip_timing): DESC_LOADED, DWC's DWC_DESC_LOADED
_SIMD_OPS = ("REQ", "ADD", "MAXP", "GAP", "CLMP", "DWC")

_ERR = {name: code for code, name in ((1, "opcode"), (2, "unsupported"), (3, "simd"), (4, "range"), (5, "address"),
                                      (6, "pim"), (7, "dma"), (8, "axi"))}
# the instructions the DMA engine (hw.dma) runs
_DMA_OPS = ("LOAD", "STORE")
assert set(_ERR.values()) == set(isa.CHIP_ERRORS)
# the SIMD core's constant fields hold every multiplier and shift the one rescaling (model.requant) allows
assert MULT_BITS <= SIMD_MULT_BITS and SHIFT_MAX < 1 << SIMD_SHIFT_BITS


def _neg(v):
    """``v < 0`` of a signed value: its sign bit (no comparison against a narrower signed constant)."""
    return v[-1]


def _at_least(v, n: int):
    """``v >= n`` of a signed value and a constant ``n >= 0``, as the sign bit or an unsigned comparison."""
    return v[-1] | (v.as_unsigned() >= n)


def _above(v, n: int):
    """``v > n`` of a signed value and a constant ``n >= 0``: false when negative, else unsigned."""
    return ~v[-1] & (v.as_unsigned() > n)


def _field(word, name):
    lsb = 0
    for f in isa.INSTR_FIELDS:
        if f[0] == name:
            return word[lsb:lsb + f[1]]
        lsb += f[1]
    raise KeyError(name)


class ChipController(Block):
    """The top controller: runs IMEM's program on the SIMD core until HALT (module docstring).

    Parameters
    ----------
    lanes : int
        SIMD lanes (``system.simd_lanes``).
    simd_channels : int
        The SIMD core's constant memory reach (its ``channels``).
    depths : dict
        Buffer name (``IMEM``, ``DMEM``, ``CMEM``, ``ACT``, ``ACC``) -> words, 1 .. :data:`model.isa.DEPTH_MAX`.

    Attributes
    ----------
    start : In(1)
        Run from instruction 0 (ignored while ``busy``).
    busy, done, error : Out(1)
        STATUS (:data:`model.isa.CHIP_REGISTERS`).
    err_code : Out(4)
    pc : Out(16)
    cycles : Out(32)
        Clock cycles of the last run (START to DONE, saturating).
    simd_rst : Out(1)
        Resets the SIMD core (at START, so that an aborted run leaves nothing behind).
    """

    def __init__(self, *, lanes: int, simd_channels: int, depths: dict):
        self._lanes = check_int("lanes", lanes, 1, 64)
        self._simd_channels = check_int("simd_channels", simd_channels, 1, (1 << 16) - 1)
        self._depths = {b: check_int(f"depths.{b}", depths[b], 1, isa.DEPTH_MAX[b]) for b in ("IMEM", "DMEM", "CMEM", "ACT",
                                                                                    "ACC")}
        self.__dict__["_params"] = {"lanes": self._lanes, "simd_channels": self._simd_channels,
                                    **{f"{b.lower()}_words": n for b, n in self._depths.items()}}
        L = self._lanes
        groups = -(-self._simd_channels // L)
        d = self._depths
        super().__init__({
            "start": In(1), "busy": Out(1), "done": Out(1), "error": Out(1), "err_code": Out(4), "pc": Out(16), "cycles": Out(32),
            "imem_addr": Out(range(d["IMEM"])), "imem_data": In(isa.INSTR_BITS),
            "dmem_addr": Out(range(d["DMEM"])), "dmem_data": In(signed(isa.WORD_BITS)),
            "cmem_addr": Out(range(d["CMEM"])), "cmem_data": In(signed(isa.WORD_BITS)),
            "act_raddr": Out(range(d["ACT"])), "act_rdata": In(signed(isa.BUFFERS["ACT"].elem_bits)),
            "act_we": Out(1), "act_waddr": Out(range(d["ACT"])), "act_wdata": Out(signed(isa.BUFFERS["ACT"].elem_bits)),
            "acc_raddr": Out(range(d["ACC"])), "acc_rdata": In(signed(isa.BUFFERS["ACC"].elem_bits)),
            "simd_d": Out(stream.Signature(layout_from_fields(simd_descriptor_fields(self._simd_channels)))),
            "simd_i": Out(stream.Signature(layout_from_fields(simd_in_fields(L)))),
            "simd_o": In(stream.Signature(layout_from_fields(simd_out_fields(L)))),
            "simd_w_en": Out(L), "simd_w_addr": Out(range(groups)),
            "simd_w_data": Out(data.ArrayLayout(layout_from_fields(simd_const_fields()), L)),
            "simd_err": In(1), "simd_rst": Out(1),
            # the PIM controller (hw.pim_ctrl): started with the PIM descriptor's first words
            "pim_start": Out(1), "pim_groups": Out(16), "pim_layer": Out(16),
            "pim_signed": Out(1), "pim_C": Out(32), "pim_H": Out(32), "pim_W": Out(32), "pim_src": Out(16),
            "pim_dst": Out(16), "pim_done": In(1), "pim_error": In(1), "pim_code": In(4),
            # the DMA engine (hw.dma): started with a LOAD / STORE's descriptor and buffer address
            "dma_start": Out(1), "dma_store": Out(1), "dma_buffer": Out(signed(isa.WORD_BITS)), "dma_baddr": Out(16),
            "dma_daddr": Out(32), "dma_count": Out(signed(isa.WORD_BITS)), "dma_done": In(1), "dma_error": In(1),
            "dma_code": In(4),
        })

    NAME = "chip_ctrl"

    @property
    def latency(self) -> int:
        return 1

    latency_note = "START to the first instruction fetch"

    def _stream_regs(self) -> SimpleNamespace:
        """The stream's registers (:meth:`_stream`) and ``init``, the statements that start a stream: every slot
        to go, nothing captured, held or written back."""
        L = self._lanes
        r = SimpleNamespace(
            more=Signal(name="more"),            # slots left to issue
            b_half=Signal(name="b_half"),        # ADD: the slot reads the element's b
            cap_v=Signal(name="cap_v"), cap_b=Signal(name="cap_b"), cap_pad=Signal(name="cap_pad"),
            cap_last=Signal(name="cap_last"),    # the captured slot ends its beat
            cap_final=Signal(name="cap_final"),  # ... and its window
            cap_lane=Signal(range(L), name="cap_lane"),
            cap_n=Signal(range(L + 1), name="cap_n"),  # the captured beat's lanes (its channel group's)
            held=Signal(name="held"),            # a complete beat not yet taken
            wait=Signal(range(L + 1), name="wait"),  # cycles before a window's last beat may go
            wv=Signal(name="wv"), wlast=Signal(name="wlast"))  # a result beat written back; the op's last
        r.init = [r.more.eq(1), r.b_half.eq(0), r.cap_v.eq(0), r.held.eq(0), r.wait.eq(0), r.wv.eq(0)]
        return r

    def _stream(self, m, fail, v):
        """The SIMD stream's actions, all in the same cycles: *issue* a slot a cycle (one buffer read: a lane's
        operand, ADD's ``a`` then ``b``; one slot with no read for a padding window element), *capture* its data
        the cycle after into the beat (the beat's last element goes to the SIMD core straight from the read
        data), *offer* the complete beat (a window's last beat waits until the write-back can take its result
        when it leaves the SIMD core, :data:`model.spec.SIMD_LATENCY` cycles later: so the SIMD core never
        waits), *take* each result beat and *write back* its lanes to ACT, a lane a cycle. The walk's counters
        ``v`` are the controller's (elaborate); ``fail(code)`` stops the run."""
        L, D = self._lanes, self._depths
        act_bits = isa.BUFFERS["ACT"].elem_bits
        more, cap_v, cap_b, cap_pad, cap_last, cap_final = v.more, v.cap_v, v.cap_b, v.cap_pad, v.cap_last, v.cap_final
        cap_lane, cap_n, held, wait, wv, wlast = v.cap_lane, v.cap_n, v.held, v.wait, v.wv, v.wlast

        # --- offer: a complete beat, the last slot's element from the read data
        offer = held | (cap_v & cap_last)
        valid = offer & (~cap_final | (wait == 0))
        taken = valid & self.simd_i.ready
        adv = ~offer | taken
        issue = more & adv
        rd_a = Mux(v.from_acc, self.acc_rdata, self.act_rdata)
        rd_b = Mux(v.dwc, self.cmem_data, self.act_rdata)
        now = cap_v & ~cap_pad
        ip = self.simd_i.payload
        m.d.comb += [self.simd_i.valid.eq(valid), ip.pad.eq(cap_pad)]
        for l in range(L):
            here = now & (cap_lane == l)
            m.d.comb += [ip.a[l].eq(Mux(here & ~cap_b, rd_a, v.a[l])),
                         ip.b[l].eq(Mux(here & (cap_b | v.dwc), rd_b, v.b[l]))]
        m.d.sync += held.eq(offer & ~taken)
        with m.If(taken & cap_final):
            m.d.sync += wait.eq(cap_n - 1)
        with m.Elif(wait != 0):
            m.d.sync += wait.eq(wait - 1)

        # --- issue: the slot's read, then the walk's next slot (lane, ADD's b, window element, group, pixel)
        m.d.comb += [v.use_w.eq(1), v.use_b.eq(v.two_src & v.b_half)]
        m.d.sync += cap_v.eq(issue)
        beat_end = v.pad | (v.last_lane & (~v.two_src | v.b_half))
        n_grp = Signal(range(L + 1))  # the group's lanes: up to its first lane l with c0 + l the last channel
        m.d.comb += n_grp.eq(L)
        for l in reversed(range(L - 1)):
            with m.If(v.c0 + l >= v.C_m1):
                m.d.comb += n_grp.eq(l + 1)
        win_end = (v.kj == v.KW_m1) & (v.ki == v.KH_m1)
        with m.If(issue):
            m.d.sync += [cap_lane.eq(v.lane), cap_b.eq(v.two_src & v.b_half), cap_pad.eq(v.pad), cap_last.eq(beat_end),
                         cap_final.eq(beat_end & win_end), cap_n.eq(n_grp)]
            past_a = Mux(v.from_acc, _at_least(v.addr_a, D["ACC"]), _at_least(v.addr_a, D["ACT"]))
            with m.If(~v.pad & (past_a | (v.two_src & _at_least(v.addr_b, D["ACT"]))
                                | (v.dwc & _at_least(v.addr_w, D["CMEM"])))):
                fail("address")
            with m.If(~beat_end):
                with m.If(v.two_src & ~v.b_half):
                    m.d.sync += v.b_half.eq(1)
                with m.Else():
                    m.d.sync += [v.b_half.eq(0), v.lane.eq(v.lane + 1)]
            with m.Else():
                m.d.sync += [v.b_half.eq(0), v.lane.eq(0)]
                self._next_window_element(m, v, more)

        # --- capture: the slot's data into the beat (DWC: its weight must be int8)
        wt_high = self.cmem_data[SIMD_DWC_W_BITS - 1:]
        with m.If(now & v.dwc & ~(wt_high.all() | ~wt_high.any())):
            fail("simd")
        for l in range(L):
            with m.If(now & (cap_lane == l)):
                with m.If(~cap_b):
                    m.d.sync += v.a[l].eq(rd_a)
                with m.If(cap_b | v.dwc):
                    m.d.sync += v.b[l].eq(rd_b)

        # --- take a result beat, write it back a lane a cycle (the last lane's cycle takes the next)
        w_last_lane = (v.wlane == L - 1) | (v.wc >= v.C_m1)
        m.d.comb += self.simd_o.ready.eq(~wv | w_last_lane)
        with m.If(wv):
            val = Signal(signed(32))
            for l in range(L):
                with m.If(v.wlane == l):
                    m.d.comb += val.eq(v.ob[l])
            high = val[act_bits - 1:]  # all equal: the value fits ACT's signed elements
            with m.If(~(high.all() | ~high.any())):
                fail("range")
            with m.Elif(v.addr_o >= D["ACT"]):
                fail("address")
            with m.Else():
                m.d.comb += [self.act_we.eq(1), self.act_wdata.eq(val[:act_bits])]
                with m.If(~w_last_lane):
                    m.d.sync += v.wlane.eq(v.wlane + 1)
                with m.Else():
                    m.d.sync += [wv.eq(0), v.wlane.eq(0)]
                    with m.If(wlast):
                        m.d.sync += v.pc.eq(v.pc + 1)
                        m.next = "FETCH"
                    with m.Elif(v.wc0 + L < v.C):
                        m.d.sync += v.wc0.eq(v.wc0 + L)
                    with m.Else():
                        m.d.sync += v.wc0.eq(0)
                        with m.If(v.pix[:len(v.HoWo_m1)] != v.HoWo_m1):  # (pix < HoWo: 64 bits)
                            m.d.sync += v.pix.eq(v.pix + 1)
                        with m.Else():
                            m.d.sync += [v.pix.eq(0), v.wo.eq(v.wo + 1)]
        with m.If(self.simd_o.valid & self.simd_o.ready):
            m.d.sync += [wv.eq(1), wlast.eq(self.simd_o.payload.last)]
            m.d.sync += [v.ob[l].eq(self.simd_o.payload.data[l]) for l in range(L)]

    def _next_window_element(self, m, v, more):
        """The walk's next window element (kj, ki), then channel group (c0), then pixel (ow, oh, o); past the
        last, no slot is left (``more`` falls)."""
        L = self._lanes
        with m.If(v.kj != v.KW_m1):
            m.d.sync += v.kj.eq(v.kj + 1)
        with m.Elif(v.ki != v.KH_m1):
            m.d.sync += [v.kj.eq(0), v.ki.eq(v.ki + 1)]
        with m.Else():
            m.d.sync += [v.kj.eq(0), v.ki.eq(0)]
            with m.If(v.c0 + L < v.C):
                m.d.sync += v.c0.eq(v.c0 + L)
            with m.Else():
                m.d.sync += v.c0.eq(0)
                with m.If(v.ow != v.Wo_m1):
                    m.d.sync += v.ow.eq(v.ow + 1)
                with m.Else():
                    m.d.sync += v.ow.eq(0)
                    with m.If(v.oh != v.Ho_m1):
                        m.d.sync += v.oh.eq(v.oh + 1)
                    with m.Else():
                        m.d.sync += v.oh.eq(0)
                        with m.If(v.o != v.outer_m1):
                            m.d.sync += v.o.eq(v.o + 1)
                        with m.Else():
                            m.d.sync += more.eq(0)

    def _dma_set_up(self, m, op, dv, dst, src0) -> None:
        """*Set up* of a LOAD / STORE: start the DMA engine with its descriptor (buffer, addr, count) and buffer
        address (``dst`` of a LOAD, ``src0`` of a STORE), then wait in DMA."""
        is_store = op == isa.OPCODES["STORE"].code
        m.d.comb += [self.dma_store.eq(is_store), self.dma_buffer.eq(dv[0]), self.dma_daddr.eq(dv[1]),
                     self.dma_count.eq(dv[2]), self.dma_baddr.eq(Mux(is_store, src0, dst[:16]))]
        with m.If((op == isa.OPCODES["LOAD"].code) | is_store):
            m.d.comb += self.dma_start.eq(1)
            m.next = "DMA"

    def _dma_state(self, m, pc, busy, done, error, err_code) -> None:
        """DMA: the transfer runs on the DMA engine (hw.dma) until it is done; its error stops the run with its
        code."""
        with m.State("DMA"):
            with m.If(self.dma_done):
                with m.If(self.dma_error):
                    m.d.sync += [err_code.eq(self.dma_code), error.eq(1), done.eq(1), busy.eq(0)]
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += pc.eq(pc + 1)
                    m.next = "FETCH"

    def elaborate(self, platform):
        m = Module()
        L, D = self._lanes, self._depths
        W32 = 32
        act_bits = isa.BUFFERS["ACT"].elem_bits

        # --- the instruction
        pc = Signal(16)
        op = Signal(4)
        desc = Signal(12)
        dst = Signal(80)  # a 16-bit field, at the width of the output offset it is added to
        src0, src1 = Signal(16), Signal(16)
        # descriptor words, shifted in: after n words, word i is dw[DWC_DESC_LOADED - n + i] (DWC loads all of them,
        # the other instructions DESC_LOADED: their word i is dv[i])
        dw = [Signal(signed(W32), name=f"dw{k}") for k in range(DWC_DESC_LOADED)]
        dv = dw[DWC_DESC_LOADED - DESC_LOADED:]
        k = Signal(len(desc * isa.DESC_WORDS))  # at the width of the descriptor's base address (one-width sum)
        is_dwc_op = op == isa.OPCODES["DWC"].code
        m.d.comb += self.pc.eq(pc)

        # --- the operation's geometry (the generic window walk)
        # widths chosen so that every comparison and sum of the walk is at one operand width (lint-clean Verilog):
        # C at the width of c = c0 + lane, H / Wd / PH / PW at the width of oh * SH + ki * DH
        W_RC = W32 + 16 + 1
        outer = Signal(W32 + 1, name="outer")  # at the width of o (o * CHW at the width of c * HW)
        Ho, Wo = Signal(W32, name="Ho"), Signal(W32, name="Wo")
        C = Signal(W32 + 1, name="C")
        H, Wd = Signal(W_RC, name="H"), Signal(W_RC, name="Wd")
        KH, KW, SH, SW, DH, DW = (Signal(16, name=n) for n in ("KH", "KW", "SH", "SW", "DH", "DW"))
        PH, PW = Signal(W_RC, name="PH"), Signal(W_RC, name="PW")
        # the last index of each loop (the walk runs only on a non-empty geometry: CHECK)
        C_m1 = Signal(W32 + 1, name="C_m1")
        outer_m1 = Signal(W32 + 1, name="outer_m1")
        Ho_m1, Wo_m1 = Signal(W32, name="Ho_m1"), Signal(W32, name="Wo_m1")
        HoWo_m1 = Signal(64, name="HoWo_m1")
        KH_m1, KW_m1 = Signal(W32, name="KH_m1"), Signal(W32, name="KW_m1")
        HW, HoWo, win, CHW, CHoWo, pixels = (Signal(64, name=n) for n in ("HW", "HoWo", "win", "CHW", "CHoWo",
                                                                           "pixels"))
        simd_op = Signal(range(len(SIMD_OPCODES)))
        lo, hi = Signal(signed(W32)), Signal(signed(W32))
        from_acc = Signal()   # REQ reads ACC
        two_src = Signal()    # ADD reads b at src1
        cmode = Signal(2)     # constants: 0 none, 1 the descriptor's scalars, 2 per channel from CMEM
        cm, cs, cmb, csb = Signal(signed(W32)), Signal(signed(W32)), Signal(signed(W32)), Signal(signed(W32))
        m_addr, s_addr, b_addr, has_bias = Signal(signed(W32)), Signal(signed(W32)), Signal(signed(W32)), Signal()
        dwc = Signal()        # DWC: b is the channel's weight, read from CMEM at w_addr
        w_addr = Signal(signed(W32 + SIMD_WINDOW_BITS + 3))  # at the width of w_addr + offset (one-width sum)

        # --- loop counters
        o = Signal(W32 + 1, name="o")
        oh, ow, c0 = (Signal(W32, name=n) for n in ("oh", "ow", "c0"))
        # the write walk (the output beats, behind the reads): outer index, pixel oh * Wo + ow (counted, at the width
        # of wo * CHoWo + wc * HoWo: a one-width sum), channel group, lane
        wo = Signal(W32 + 1, name="wo")
        pix = Signal(len(wo * CHoWo) + 1, name="pix")
        wc0, wlane = Signal(W32, name="wc0"), Signal(W32, name="wlane")
        ki, kj = Signal(W32), Signal(W32)
        lane = Signal(W32)  # at c0's width (c = c0 + lane)
        grp = Signal(range(max(2, -(-self._simd_channels // L))))
        j = Signal(2)   # constant whose read is issued: 0 m, 1 s, 2 bias; 3 the group's last read issued
        # the constant whose read data is there this cycle (the read issued the cycle before): lane, which, valid
        tl, tj, tv = Signal(range(max(2, L)), name="tl"), Signal(2, name="tj"), Signal(name="tv")

        c = Signal(W32 + 1)
        m.d.comb += c.eq(c0 + lane)
        last_lane = (lane == L - 1) | (c >= C_m1)
        row = Signal(signed(W32 + 20))
        col = Signal(signed(W32 + 20))
        m.d.comb += [row.eq(oh * SH + ki * DH - PH), col.eq(ow * SW + kj * DW - PW)]
        pad = _neg(row) | (row >= H) | _neg(col) | (col >= Wd)
        off_in = Signal(signed(80))
        off_out = Signal(80)
        wc = Signal(W32 + 1)
        m.d.comb += [wc.eq(wc0 + wlane), off_in.eq(o * CHW + c * HW + row * Wd + col),
                     off_out.eq(wo * CHoWo + wc * HoWo + pix)]
        addr_a, addr_b, addr_o = Signal(signed(82)), Signal(signed(82)), Signal(82)
        m.d.comb += [addr_a.eq(src0 + off_in), addr_b.eq(src1 + off_in), addr_o.eq(dst + off_out)]
        # DWC: the weight of channel c at window element (ki, kj), C x KH x KW row-major from w_addr
        # (c < C fits 32 bits, so both products are 48 bits wide; kj < KW, added as a signed value: a signed add,
        # whose operands Verilog sign-extends; w_addr at the width of the offset: a one-width sum)
        off_w = Signal(signed(W32 + SIMD_WINDOW_BITS + 3))
        addr_w = Signal(signed(len(off_w) + 1))
        m.d.comb += [off_w.eq(c[:W32] * win[:SIMD_WINDOW_BITS] + ki * KW + kj.as_signed()),
                     addr_w.eq(w_addr + off_w)]

        # --- operand and result beats
        a = [Signal(signed(W32), name=f"a{l}") for l in range(L)]
        b = [Signal(signed(W32), name=f"b{l}") for l in range(L)]
        ob = [Signal(signed(W32), name=f"ob{l}") for l in range(L)]
        cst = [Signal(layout_from_fields(simd_const_fields()), name=f"cst{l}") for l in range(L)]

        sr = self.stream_regs = self._stream_regs()  # (the last elaboration's: verif.chip_tb's monitor reads them)
        busy, done, error, err_code = Signal(), Signal(), Signal(), Signal(4)
        m.d.comb += [self.busy.eq(busy), self.done.eq(done), self.error.eq(error), self.err_code.eq(err_code)]

        # memory addresses follow the registers (synchronous reads: the data is there the next cycle)
        def clip(v, depth):
            return v[:max(1, (depth - 1).bit_length())]

        m.d.comb += [self.imem_addr.eq(clip(pc, D["IMEM"])),
                     self.dmem_addr.eq(clip(desc * isa.DESC_WORDS + k, D["DMEM"]))]
        cbase = Mux(j == 0, m_addr, Mux(j == 1, s_addr, b_addr))
        caddr = Signal(signed(W32 + 2))
        use_w = Signal()  # the streaming read: the weight's address (DWC)
        m.d.comb += [caddr.eq(cbase + c), self.cmem_addr.eq(clip(Mux(use_w, addr_w, caddr), D["CMEM"]))]
        use_b = Signal()  # the streaming read: ADD's b
        rsel = Mux(use_b, addr_b, addr_a)
        m.d.comb += [self.act_raddr.eq(clip(rsel, D["ACT"])), self.acc_raddr.eq(clip(addr_a, D["ACC"])),
                     self.act_waddr.eq(clip(addr_o, D["ACT"]))]
        m.d.comb += [self.simd_w_addr.eq(grp), self.simd_w_data.eq(Cat(*cst))]
        sp = self.simd_d.payload
        m.d.comb += [sp.op.eq(simd_op), sp.channels.eq(C), sp.window.eq(win), sp.pixels.eq(pixels), sp.lo.eq(lo),
                     sp.hi.eq(hi)]
        m.d.comb += [self.pim_groups.eq(dv[1]),
                     self.pim_layer.eq(dv[2]), self.pim_signed.eq(dv[3] != 0), self.pim_C.eq(dv[4]),
                     self.pim_H.eq(dv[5]), self.pim_W.eq(dv[6]), self.pim_src.eq(src0), self.pim_dst.eq(dst[:16])]

        cycles = Signal(W32)
        m.d.comb += self.cycles.eq(cycles)
        with m.If(busy & (cycles != (1 << W32) - 1)):
            m.d.sync += cycles.eq(cycles + 1)

        def fail(code: str):
            m.d.sync += [err_code.eq(_ERR[code]), error.eq(1), done.eq(1), busy.eq(0)]
            m.next = "IDLE"

        with m.FSM() as fsm:
            #: high while the controller is in IDLE (no run; read by the chip's k-induction proof, verif.formal)
            self.idle = fsm.ongoing("IDLE")
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.comb += self.simd_rst.eq(1)
                    m.d.sync += [pc.eq(0), busy.eq(1), done.eq(0), error.eq(0), err_code.eq(0), cycles.eq(0)]
                    m.next = "FETCH"

            with m.State("FETCH"):
                with m.If(pc >= D["IMEM"]):
                    fail("address")
                with m.Else():
                    m.next = "DECODE"

            with m.State("DECODE"):
                w = self.imem_data
                code = _field(w, "opcode")
                m.d.sync += [op.eq(code), desc.eq(_field(w, "desc")), dst.eq(_field(w, "dst")),
                             src0.eq(_field(w, "src0")), src1.eq(_field(w, "src1")), k.eq(0)]
                with m.Switch(code):
                    with m.Case(isa.OPCODES["HALT"].code):
                        m.d.sync += [busy.eq(0), done.eq(1)]
                        m.next = "IDLE"
                    with m.Case(*(isa.OPCODES[n].code for n in ("PIM",) + _SIMD_OPS + _DMA_OPS
                                  if n not in isa.RTL_PENDING)):
                        base = _field(w, "desc") * isa.DESC_WORDS
                        with m.If(Mux(code == isa.OPCODES["DWC"].code, base + DWC_DESC_LOADED > D["DMEM"],
                                      base + DESC_LOADED > D["DMEM"])):
                            fail("address")
                        with m.Else():
                            m.next = "LOAD_DESC"
                    if isa.RTL_PENDING:
                        with m.Case(*(isa.OPCODES[n].code for n in isa.RTL_PENDING)):
                            fail("unsupported")
                    with m.Default():
                        fail("opcode")

            with m.State("LOAD_DESC"):
                with m.If(k != 0):
                    m.d.sync += [dw[i].eq(dw[i + 1]) for i in range(DWC_DESC_LOADED - 1)]
                    m.d.sync += dw[-1].eq(self.dmem_data)
                m.d.sync += k.eq(k + 1)
                with m.If(Mux(is_dwc_op, k == DWC_DESC_LOADED, k == DESC_LOADED)):
                    m.next = "SET_UP"

            with m.State("SET_UP"):
                one = [KH.eq(1), KW.eq(1), SH.eq(1), SW.eq(1), PH.eq(0), PW.eq(0), DH.eq(1), DW.eq(1)]
                flat = [outer.eq(1), C.eq(1), H.eq(1), Ho.eq(1)]
                m.d.sync += [from_acc.eq(0), two_src.eq(0), cmode.eq(0), has_bias.eq(0), dwc.eq(0)]
                with m.Switch(op):
                    with m.Case(isa.OPCODES["REQ"].code):  # C, inner, outer, m_addr, s_addr, bias_addr, has_bias, lo, hi
                        m.d.sync += one + [outer.eq(dv[2].as_unsigned()), C.eq(dv[0].as_unsigned()), H.eq(1), Wd.eq(dv[1].as_unsigned()), Ho.eq(1), Wo.eq(dv[1]),
                                           simd_op.eq(SIMD_OPCODES["requant"]), lo.eq(dv[7]), hi.eq(dv[8]),
                                           from_acc.eq(1), cmode.eq(2), m_addr.eq(dv[3]), s_addr.eq(dv[4]),
                                           b_addr.eq(dv[5]), has_bias.eq(dv[6] != 0)]
                    with m.Case(isa.OPCODES["ADD"].code):  # count, ma, sa, mb, sb, lo, hi
                        m.d.sync += one + flat + [Wd.eq(dv[0].as_unsigned()), Wo.eq(dv[0]), simd_op.eq(SIMD_OPCODES["add"]),
                                                  lo.eq(dv[5]), hi.eq(dv[6]), two_src.eq(1), cmode.eq(1),
                                                  cm.eq(dv[1]), cs.eq(dv[2]), cmb.eq(dv[3]), csb.eq(dv[4])]
                    with m.Case(isa.OPCODES["MAXP"].code):  # C, H, W, Ho, Wo, kernel, stride, padding, dilation
                        m.d.sync += [outer.eq(1), C.eq(dv[0].as_unsigned()), H.eq(dv[1].as_unsigned()),
                                     Wd.eq(dv[2].as_unsigned()), Ho.eq(dv[3]), Wo.eq(dv[4]),
                                     KH.eq(dv[5][:16]), KW.eq(dv[5][16:]), SH.eq(dv[6][:16]), SW.eq(dv[6][16:]),
                                     PH.eq(dv[7][:16]), PW.eq(dv[7][16:]), DH.eq(dv[8][:16]), DW.eq(dv[8][16:]),
                                     simd_op.eq(SIMD_OPCODES["maxpool"]), lo.eq(-(1 << 31)), hi.eq((1 << 31) - 1)]
                    with m.Case(isa.OPCODES["DWC"].code):  # MAXP's nine, w_addr, m_addr, s_addr, bias_addr, lo, hi
                        m.d.sync += [outer.eq(1), C.eq(dw[0].as_unsigned()), H.eq(dw[1].as_unsigned()),
                                     Wd.eq(dw[2].as_unsigned()), Ho.eq(dw[3]), Wo.eq(dw[4]),
                                     KH.eq(dw[5][:16]), KW.eq(dw[5][16:]), SH.eq(dw[6][:16]), SW.eq(dw[6][16:]),
                                     PH.eq(dw[7][:16]), PW.eq(dw[7][16:]), DH.eq(dw[8][:16]), DW.eq(dw[8][16:]),
                                     simd_op.eq(SIMD_OPCODES["dwconv"]), lo.eq(dw[13]), hi.eq(dw[14]), cmode.eq(2),
                                     m_addr.eq(dw[10]), s_addr.eq(dw[11]), b_addr.eq(dw[12]), has_bias.eq(1),
                                     dwc.eq(1), w_addr.eq(dw[9])]
                    with m.Case(isa.OPCODES["GAP"].code):  # C, HW, m, s, lo, hi
                        m.d.sync += one + [outer.eq(1), C.eq(dv[0].as_unsigned()), H.eq(1), Wd.eq(dv[1].as_unsigned()),
                                           Ho.eq(1), Wo.eq(1),
                                           KW.eq(dv[1][:16]), simd_op.eq(SIMD_OPCODES["avgpool"]), lo.eq(dv[4]),
                                           hi.eq(dv[5]), cmode.eq(1), cm.eq(dv[2]), cs.eq(dv[3]), cmb.eq(0),
                                           csb.eq(0)]
                    with m.Case(isa.OPCODES["CLMP"].code):  # count, lo, hi
                        m.d.sync += one + flat + [Wd.eq(dv[0].as_unsigned()), Wo.eq(dv[0]), simd_op.eq(SIMD_OPCODES["clamp"]),
                                                  lo.eq(dv[1]), hi.eq(dv[2])]
                m.next = "SIZES"
                with m.If(op == isa.OPCODES["PIM"].code):  # kind, groups, layer, signed, C, H, W, ...
                    m.d.comb += self.pim_start.eq(1)
                    m.next = "PIM"
                self._dma_set_up(m, op, dv, dst, src0)

            self._dma_state(m, pc, busy, done, error, err_code)

            # a PIM instruction runs on the PIM controller; its error stops the run with its code
            with m.State("PIM"):
                with m.If(self.pim_done):
                    with m.If(self.pim_error):
                        m.d.sync += [err_code.eq(self.pim_code), error.eq(1), done.eq(1), busy.eq(0)]
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += pc.eq(pc + 1)
                        m.next = "FETCH"

            with m.State("SIZES"):
                m.d.sync += [HW.eq(H * Wd), HoWo.eq(Ho * Wo), win.eq(KH * KW)]
                m.next = "SIZES2"

            with m.State("SIZES2"):
                m.d.sync += [CHW.eq(C * HW), CHoWo.eq(C * HoWo), pixels.eq(outer * HoWo), c0.eq(0), grp.eq(0),
                             lane.eq(0), j.eq(0), C_m1.eq(C - 1), outer_m1.eq(outer - 1), Ho_m1.eq(Ho - 1),
                             Wo_m1.eq(Wo - 1), KH_m1.eq(KH - 1), KW_m1.eq(KW - 1), HoWo_m1.eq(HoWo - 1), tv.eq(0)]
                for l in range(L):
                    m.d.sync += cst[l].eq(Cat(cm[:SIMD_MULT_BITS], cs[:SIMD_SHIFT_BITS], Const(0, 32),
                                              cmb[:SIMD_MULT_BITS], csb[:SIMD_SHIFT_BITS]))
                m.next = "CHECK"

            with m.State("CHECK"):
                bad_scalar = ((cmode == 1) & (_at_least(cm, 1 << MULT_BITS) | _neg(cs) | _above(cs, SHIFT_MAX)
                                              | _at_least(cmb, 1 << MULT_BITS) | _neg(csb) | _above(csb, SHIFT_MAX)))
                with m.If((pixels == 0) | (pixels >= 1 << SIMD_PIXEL_BITS) | (win == 0) | (win >= 1 << SIMD_WINDOW_BITS)
                          | (C == 0) | (C > self._simd_channels) | (lo > hi) | bad_scalar):
                    fail("simd")
                with m.Elif(cmode == 0):
                    m.next = "SEND_DESC"
                with m.Elif(cmode == 1):
                    m.next = "WRITE_CONSTS"
                with m.Else():
                    m.next = "READ_CONST"

            # per-channel constants from CMEM (REQ, DWC): m, s (and bias with has_bias) of each lane of the channel
            # group, a word a cycle: the read of one is issued (j) while the one before is taken (tj); then one
            # write per channel group (without a bias, every lane's stays SIZES2's zero)
            with m.State("READ_CONST"):
                v = self.cmem_data
                with m.If(tv):
                    for l in range(L):
                        with m.If(tl == l):
                            with m.Switch(tj):
                                with m.Case(0):
                                    m.d.sync += cst[l].m.eq(v)
                                with m.Case(1):
                                    m.d.sync += cst[l].s.eq(v)
                                with m.Case(2):
                                    m.d.sync += cst[l].bias.eq(v)
                with m.If(tv & (((tj == 0) & _at_least(v, 1 << MULT_BITS))
                                | ((tj == 1) & (_neg(v) | _above(v, SHIFT_MAX))))):
                    fail("simd")
                with m.Elif(j == 3):
                    m.d.sync += [tv.eq(0), j.eq(0)]
                    m.next = "WRITE_CONSTS"
                with m.Elif(_at_least(caddr, D["CMEM"])):
                    fail("address")
                with m.Else():
                    m.d.sync += [tv.eq(1), tl.eq(lane), tj.eq(j)]
                    with m.If((j == 2) | ((j == 1) & ~has_bias)):
                        m.d.sync += [j.eq(Mux(last_lane, 3, 0)), lane.eq(Mux(last_lane, 0, lane + 1))]
                    with m.Else():
                        m.d.sync += j.eq(j + 1)

            with m.State("WRITE_CONSTS"):
                m.d.comb += self.simd_w_en.eq((1 << L) - 1)
                with m.If(c0 + L >= C):
                    m.d.sync += [c0.eq(0), grp.eq(0)]
                    m.next = "SEND_DESC"
                with m.Else():
                    m.d.sync += [c0.eq(c0 + L), grp.eq(grp + 1)]
                    m.next = "NEXT_GROUP_CONST"

            with m.State("NEXT_GROUP_CONST"):
                with m.If(cmode == 2):
                    m.next = "READ_CONST"
                with m.Else():
                    m.next = "WRITE_CONSTS"

            with m.State("SEND_DESC"):
                m.d.comb += self.simd_d.valid.eq(1)
                with m.If(self.simd_d.ready):
                    m.d.sync += [o.eq(0), oh.eq(0), ow.eq(0), c0.eq(0), ki.eq(0), kj.eq(0), lane.eq(0),
                                 wo.eq(0), pix.eq(0), wc0.eq(0), wlane.eq(0)]
                    m.next = "DESC_TAKEN"

            with m.State("DESC_TAKEN"):
                with m.If(self.simd_err):
                    fail("simd")
                with m.Else():
                    m.d.sync += sr.init
                    m.next = "STREAM"

            # the operands stream in and the results back out at once (the actions of _stream)
            with m.State("STREAM"):
                self._stream(m, fail, SimpleNamespace(
                    a=a, b=b, ob=ob, o=o, oh=oh, ow=ow, c0=c0, ki=ki, kj=kj, lane=lane, c=c, last_lane=last_lane,
                    pad=pad, C=C, C_m1=C_m1, KH_m1=KH_m1, KW_m1=KW_m1, Ho_m1=Ho_m1, Wo_m1=Wo_m1, outer_m1=outer_m1,
                    HoWo_m1=HoWo_m1, from_acc=from_acc, two_src=two_src, dwc=dwc, addr_a=addr_a, addr_b=addr_b,
                    addr_w=addr_w, use_b=use_b, use_w=use_w, wo=wo, pix=pix, wc0=wc0, wlane=wlane, wc=wc,
                    addr_o=addr_o, pc=pc, **vars(sr)))
        return m

"""The chip's PIM controller (docs/design.md §15, docs/rtl.md "The chip top"): runs one PIM instruction.

Started by the top controller (:mod:`hw.chip_ctrl`) with the PIM descriptor's
``groups``, ``layer``, ``signed`` and input geometry, it runs the instruction
from the WMEM image (:mod:`model.pim_image`) on ``cores`` PIM cores as named
actions:

* *check* that the instruction's input lies in ACT;
* per layer of the instruction (a group of a grouped convolution): *look up*
  its block in WMEM's layer table, *read the header* (the output layout, the
  round size), *zero* the output channels no tile holds, then per row band:
  *read the band header* (its copy, the window layer descriptor), *copy* the
  band's inputs from ACT (signed 16-bit elements) into every core's window
  generator's input buffer at once, ``n_comp`` inputs a word, one element a
  cycle, checking each against the layer's 8-bit range (ERROR_CODE 4), then
  per round (up to ``cores`` segments, segment ``i`` on core ``i``), per
  segment: *program its core* (its register-bus writes), *fill its window
  table*, read its first pass descriptor (cores 1 ..: *queue* the others in
  the core's pass queue) and *assign* it its passes and result entries; the
  round's last segment *STARTs* the round's cores and they *run* together:
  each core's generator is fed its next pass descriptor (core 0's from WMEM,
  the others' from their queues) while it streams windows into its core;
  core 0 *writes each result beat* into ACC at the place its result entry
  gives, cores 1 .. into their result buffers; after the last DONE the
  controller *drains* the result buffers into ACC (core 1 first, one word a
  cycle, at their result entries);
* *finish* (``done`` for one cycle, with ``error`` and ``err_code`` when it
  stopped: 4 range, 5 address, 6 a bad image or a core error).

Its cycles are :func:`model.chip_timing.pim_cycles` (one element a cycle to
copy; one cycle a header word, a table entry, a zero written, a queued pass
word, a drained result; two a bus write; a round the longest of its cores'
own :func:`model.core_timing.layer_cycles`).
"""

from __future__ import annotations

from contextlib import contextmanager
from types import SimpleNamespace

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream
from amaranth.lib.wiring import In, Out

from dbpim.hw.common import Block, layout_from_fields
from dbpim.hw.sram import sram_1r1w
from dbpim.model import isa
from dbpim.model._check import check_int
from dbpim.model.pim_image import BAND_HEADER, PIM_HEADER, RESULT_ENTRY, SEGMENT_HEADER
from dbpim.model.spec import BUS_BITS, CORE_REG, WINDOW_LAYER, WINDOW_PASS, input_range, register_fields

__all__ = ["PIMController", "PIM_ERRORS", "MAX_CORES", "core_suffix"]

#: err_code values of the PIM controller (:data:`model.isa.CHIP_ERRORS`).
PIM_ERRORS = {"range": 4, "address": 5, "pim": 6}
#: The most PIM cores (``system.cores``) one controller drives.
MAX_CORES = 64


def core_suffix(k: int) -> str:
    """The suffix of PIM core ``k``'s ports and instances: none for core 0, ``_k`` for the others."""
    return "" if k == 0 else f"_{k}"
_HDR = {k: i for i, k in enumerate(PIM_HEADER)}


class PIMController(Block):
    """Runs one PIM instruction from WMEM on the PIM core and the window generator (module docstring).

    Parameters
    ----------
    n_comp, in_bits : int
        The macro's compartments (inputs of a window and of a buffer word) and input bits.
    buffer_words : int
        The input buffer's words.
    windows : int
        The window table's entries.
    word_addr_bits : int
        Bits of the core's register-bus word address.
    psum_bits : int
        The core's result width (a result that does not fit ACC's 32-bit elements stops the run: ERROR_CODE 4).
    depths : dict
        ``ACT``, ``ACC``, ``WMEM`` words.
    cores : int
        PIM cores (``system.cores``), 1 .. :data:`MAX_CORES`: core ``k``'s ports end in :func:`core_suffix`.
    result_words : int
        Words of each result buffer of cores 1 .. (``system.result_buffer_words``).
    descriptors : int
        The core's descriptors (``core.descriptors``): the most passes of a segment (cores 1 ..'s pass queues).
    result_lanes : int
        Results a core's result beat carries (``core.result_lanes``), 1 .. 16: with L > 1 every core's beats
        (``core_o_psum`` L sums, lane i in bits ``i * psum_bits ..``; ``core_o_keep`` the lanes holding one, a port
        only where ``psum_bits`` passes ACC's 32 bits: the kept lanes' range is checked) go
        into its result buffer, a beat a word, drained into ACC one result a cycle after the round, core 0 first.
    """

    NAME = "pim_ctrl"

    def __init__(self, *, n_comp: int, in_bits: int, buffer_words: int, windows: int, word_addr_bits: int,
                 psum_bits: int, depths: dict, cores: int = 1, result_words: int = 1, descriptors: int = 1,
                 result_lanes: int = 1):
        self._n = check_int("n_comp", n_comp, 1, 64)
        self._in_bits = check_int("in_bits", in_bits, 1, 8)
        self._words = check_int("buffer_words", buffer_words, 1, 1 << 20)
        self._windows = check_int("windows", windows, 1, 1 << 16)
        self._wab = check_int("word_addr_bits", word_addr_bits, 1, 30)
        self._psum = check_int("psum_bits", psum_bits, 1, 64)
        self._depths = {b: check_int(f"depths.{b}", depths[b], 1, isa.DEPTH_MAX[b]) for b in ("ACT", "ACC", "WMEM")}
        self._cores = check_int("cores", cores, 1, MAX_CORES)
        self._result_words = check_int("result_words", result_words, 1, 1 << 16)
        self._descriptors = check_int("descriptors", descriptors, 1, 1 << 16)
        self._lanes = L = check_int("result_lanes", result_lanes, 1, 16)
        #: L > 1 and the core's sums may pass ACC's elements: ``core_o_keep`` ports (a kept lane's range is checked)
        self.keeps = L > 1 and psum_bits > isa.BUFFERS["ACC"].elem_bits
        self.__dict__["_params"] = {"n_comp": self._n, "in_bits": self._in_bits, "buffer_words": self._words,
                                    "windows": self._windows, "word_addr_bits": self._wab, "psum_bits": self._psum,
                                    **{f"{b.lower()}_words": v for b, v in self._depths.items()},
                                    "cores": self._cores, "result_words": self._result_words,
                                    "descriptors": self._descriptors,
                                    **({"result_lanes": L} if L > 1 else {})}  # (one lane: the parameters as before)
        D = self._depths
        per_core = {}
        for k in range(self._cores):
            x = core_suffix(k)
            per_core.update({
                f"win_d{x}": Out(stream.Signature(layout_from_fields(register_fields(WINDOW_PASS)))),
                f"tab_en{x}": Out(1), f"core_w_en{x}": Out(1),
                f"core_o_valid{x}": In(1),
                **({f"core_o_psum{x}": In(signed(psum_bits))} if L == 1 else
                   {f"core_o_psum{x}": In(L * psum_bits),
                    **({f"core_o_keep{x}": In(L)} if self.keeps else {})}),
                f"core_o_ready{x}": Out(1),
                f"core_done{x}": In(1), f"core_error{x}": In(1)})
        super().__init__({
            "start": In(1), "groups": In(16), "layer": In(16), "signed": In(1),
            "C": In(32), "H": In(32), "W": In(32), "src": In(16), "dst": In(16),
            "busy": Out(1), "done": Out(1), "error": Out(1), "err_code": Out(4), "core_rst": Out(1),
            "act_raddr": Out(range(D["ACT"])), "act_rdata": In(signed(isa.BUFFERS["ACT"].elem_bits)),
            "acc_we": Out(1), "acc_waddr": Out(range(D["ACC"])),
            "acc_wdata": Out(signed(isa.BUFFERS["ACC"].elem_bits)),
            "wa_addr": Out(range(D["WMEM"])), "wa_data": In(isa.WORD_BITS),
            "wb_addr": Out(range(D["WMEM"])), "wb_data": In(isa.WORD_BITS),
            # the window generator
            "win_layer": Out(layout_from_fields(register_fields(WINDOW_LAYER))),
            "buf_en": Out(1), "buf_addr": Out(range(max(2, buffer_words))), "buf_data": Out(n_comp * in_bits),
            "tab_addr": Out(range(max(2, windows))), "tab_data": Out(BUS_BITS),
            # the PIM cores: the register bus shared, each core's write enable, pass stream and results
            "core_w_addr": Out(word_addr_bits), "core_w_data": Out(BUS_BITS), "core_w_strb": Out(BUS_BITS // 8),
            **per_core,
        })

    @property
    def latency(self) -> int:
        return 1

    latency_note = "start to the first copy; the instruction's cycles are model.chip_timing.pim_cycles"

    def elaborate(self, platform):
        m = Module()
        n, ib, D = self._n, self._in_bits, self._depths
        NC, L = self._cores, self._lanes
        A = 32  # WMEM / ACC address and count arithmetic: every sum and comparison at this one width
        X = 48  # the copy's element counts and ACT addresses (C * H * W of 32-bit fields, at one width)

        def clip(v, depth):
            return v[:max(1, (depth - 1).bit_length())]

        def port(name, k):
            return getattr(self, f"{name}{core_suffix(k)}")

        # --- the instruction
        signed_in = Signal()
        groups, layer, j_next = Signal(16), Signal(16), Signal(16)
        src, dst = Signal(X), Signal(A)
        count = Signal(X)

        # --- a band's copy: buffer element o * inner + t is ACT src + act_off + o * outer_stride + t * inner_stride
        t, e = Signal(A), Signal(range(n))
        outer_left, T_m1 = Signal(A), Signal(A)
        kaddr, ea = Signal(X), Signal(X)
        word = Signal(n * ib)
        waddr = Signal(A)

        # --- the block and segment
        j = Signal(16)
        ptr = Signal(A)            # WMEM port A: the word on wa_data (presented the cycle before)
        adv = Signal()             # consume wa_data and present ptr + 1
        hdr = Signal(range(len(PIM_HEADER)))
        hw = {k: Signal(32, name=f"h_{k}") for k in PIM_HEADER}
        bw = {k: Signal(X if k in ("act_off", "outer_stride", "inner_stride") else 32, name=f"b_{k}")
              for k in BAND_HEADER}  # the copy's ACT offsets at the copy's address width
        bh = Signal(range(len(BAND_HEADER)))
        bands_left = Signal(32)
        blk_end = Signal(A)
        cnt = {k: Signal(32, name=f"n_{k}") for k in SEGMENT_HEADER}
        sh = Signal(range(len(SEGMENT_HEADER)))
        segs_left, zeros_left = Signal(32), Signal(32)
        phase = Signal()
        baddr = Signal(32)         # a bus write's byte address
        ti = Signal(32)            # window table entry
        zoff, q, q_next, qoff = Signal(A), Signal(A), Signal(A), Signal(A)
        res_end, pstart, rptr = Signal(A), Signal(A), Signal(A)
        pk = Signal(range(len(WINDOW_PASS)))  # the first pass descriptor's word while a core is programmed
        passes_left = Signal(32)
        qw, qlast = Signal(A), Signal(A)      # a pass queue's next word, its last
        qdepth = len(WINDOW_PASS) * self._descriptors
        # --- the round: the core being programmed, the round's size, the result buffer being drained
        cur, cur_next = Signal(A), Signal(A)   # at the header's width: compared with its cores
        dcore, dcore_next = Signal(A), Signal(A, name="dcore_next")  # named: drain_over reads it from its closure
        rsize = Signal(A)
        round_end, drain, drain_end = Signal(), Signal(), Signal(name="drain_end")
        dleft, dra, dadv = Signal(A), Signal(A), Signal()
        running, draining = Signal(), Signal()
        m.d.comb += [j_next.eq(j + 1), q_next.eq(q + 1), cur_next.eq(cur + 1), dcore_next.eq(dcore + 1)]
        # the round's last segment; a round of several cores (drained after it); the last result buffer drained
        m.d.comb += [round_end.eq((cur_next == hw["cores"]) | (segs_left == 0)),
                     drain.eq(rsize != 1 if L == 1 else 1),
                     drain_end.eq(dcore_next == rsize)]

        acc_bits = isa.BUFFERS["ACC"].elem_bits

        def wide(psum):
            """A core sum that does not fit ACC's elements (None: the core's sums always fit)."""
            high = psum[acc_bits - 1:]
            return ~(high.all() | ~high.any()) if self._psum > acc_bits else None

        # --- each core's pass feeder: core 0 reads its passes on WMEM port A, cores 1 .. from their pass queues;
        # cores 1 .. (every core with L > 1 result lanes) put their results into their result buffers, a beat a word
        cs = []
        if L > 1:  # the lane of the result buffer word being drained, its ACC offset from its group's first pixel,
            # the lane's offset from the pass's first pixel, its pixel + 1 and the group's end (each at A bits)
            lane, loff = Signal(range(L), name="dlane"), Signal(A, name="dlane_off")
            lane_at, lane_px, group_end = Signal(A, name="dlane_at"), Signal(A, name="dlane_px"), Signal(A)

        def to_acc(v):
            """A signed sum at ACC's width: its low bits (it fits, or is checked) or sign-extended."""
            if self._psum >= acc_bits:
                return v[:acc_bits]
            ext = Signal(signed(acc_bits))
            m.d.comb += ext.eq(v)
            return ext

        def beat_in(k):
            """L > 1: core ``k``'s result beat as a result buffer word (lane i in bits ``i * 32 ..``) and whether a
            kept lane's sum does not fit ACC (None: the core's sums always fit)."""
            sums = [port("core_o_psum", k)[i * self._psum:(i + 1) * self._psum].as_signed() for i in range(L)]
            if not self.keeps:  # the core's sums always fit
                return Cat(*[to_acc(v) for v in sums]), None
            keep = port("core_o_keep", k)
            return Cat(*[to_acc(v) for v in sums]), Cat(*[wide(v) & keep[i] for i, v in enumerate(sums)]).any()

        for k in range(NC):
            c = SimpleNamespace(dreg=[Signal(32, name=f"pass{k}_w{i}") for i in range(len(WINDOW_PASS))],
                                dvalid=Signal(name=f"dvalid{k}"), feeding=Signal(name=f"feeding{k}"),
                                fk=Signal(range(len(WINDOW_PASS)), name=f"fk{k}"),
                                left=Signal(32, name=f"passes_left{k}"), live=Signal(name=f"live{k}"),
                                ptr=Signal(A, name=f"pptr{k}"), adv=Signal(name=f"padv{k}"))
            if k == 0:
                c.data = self.wa_data
            else:
                c.queue = sram_1r1w(m, "pim_queue", width=32, depth=qdepth, platform=platform, name=f"queue{k}")
            if k > 0 or L > 1:  # its result buffer: a result a word (L > 1: a beat of L results a word)
                c.res = sram_1r1w(m, "pim_result", width=L * acc_bits, depth=self._result_words, platform=platform,
                                  name=f"result{k}")
                c.count = Signal(A, name=f"rcount{k}")
                c.res_base, c.res_end = Signal(A, name=f"res_base{k}"), Signal(A, name=f"res_end{k}")
                if L == 1:
                    c.res_wide = wide(port("core_o_psum", k))
                    c.res_word = (port("core_o_psum", k)[:acc_bits].as_signed() if self._psum > acc_bits
                                  else port("core_o_psum", k))  # sign-extended
                else:
                    c.res_word, c.res_wide = beat_in(k)
                queue = [] if k == 0 else [c.queue.w.data.eq(self.wa_data), c.queue.w.addr.eq(clip(qw, qdepth)),
                                           c.queue.r.addr.eq(clip(Mux(c.adv, c.ptr + 1, c.ptr), qdepth))]
                m.d.comb += queue + [c.res.w.addr.eq(clip(c.count, self._result_words)),
                                     c.res.w.data.eq(c.res_word),
                                     c.res.r.addr.eq(clip(Mux(dadv, dra + 1, dra), self._result_words))]
            if k > 0:
                c.data = c.queue.r.data
                with m.If(c.adv):
                    m.d.sync += c.ptr.eq(c.ptr + 1)
            m.d.comb += [port("win_d", k).valid.eq(c.dvalid & running),
                         port("win_d", k).payload.as_value().eq(Cat(*c.dreg)), port("core_o_ready", k).eq(1)]
            cs.append(c)
        with m.If(cs[0].adv):
            m.d.sync += cs[0].ptr.eq(cs[0].ptr + 1)

        @contextmanager
        def load_word(count, regs):
            """Take WMEM's word into ``regs[count]`` and step on; the body runs when it was the last of ``regs``
            (the layer header, a band header: one word a cycle)."""
            m.d.comb += adv.eq(1)
            with m.Switch(count):
                for i, r in enumerate(regs):
                    with m.Case(i):
                        m.d.sync += r.eq(self.wa_data)
            m.d.sync += count.eq(count + 1)
            with m.If(count == len(regs) - 1):
                yield

        m.d.comb += [self.wa_addr.eq(clip(Mux(running, Mux(cs[0].adv, cs[0].ptr + 1, cs[0].ptr),
                                              Mux(adv, ptr + 1, ptr)), D["WMEM"])),
                     self.act_raddr.eq(clip(ea, D["ACT"]))]
        with m.If(adv):
            m.d.sync += ptr.eq(ptr + 1)
        m.d.comb += self.win_layer.as_value().eq(Cat(bw["win_base"], bw["win_shape"], bw["win_kernel"],
                                                     bw["win_out"]))
        m.d.comb += [self.core_w_strb.eq((1 << (BUS_BITS // 8)) - 1),
                     self.buf_addr.eq(clip(waddr, self._words)), self.tab_addr.eq(ti),
                     self.tab_data.eq(self.wa_data)]

        busy, done, error, err_code = Signal(), Signal(), Signal(), Signal(4)
        m.d.comb += [self.busy.eq(busy), self.done.eq(done), self.error.eq(error), self.err_code.eq(err_code)]

        def fail(code: str):
            m.d.comb += [done.eq(1), error.eq(1), err_code.eq(PIM_ERRORS[code])]
            m.d.sync += [busy.eq(0)] + [x for c in cs for x in (c.dvalid.eq(0), c.feeding.eq(0), c.live.eq(0))]
            m.next = "IDLE"

        # --- the result entry on port B and the ACC address of the beat (core 0's stream, then each drain)
        ent = data.View(layout_from_fields(RESULT_ENTRY), self.wb_data)
        r_adv, r_next = Signal(), Signal(A)
        m.d.comb += self.wb_addr.eq(clip(Mux(r_adv, r_next, rptr), D["WMEM"]))
        r_base, z_base = Signal(A), Signal(A)
        acc_at, zero_at = Signal(A + 1), Signal(A + 1)
        assert RESULT_ENTRY[0][0] == "off"  # OFF is the entry's low bits
        # the entry's last pixel: q + 1 == PIXELS (15 bits)
        r_end_px = (q_next[:len(ent.pixels)] == ent.pixels) & ~q_next[len(ent.pixels):].any()
        drained = Signal(signed(acc_bits))  # the word of the result buffer being drained
        m.d.comb += [r_base.eq(dst + (self.wb_data & ((1 << len(ent.off)) - 1))),  # dst + OFF, at A bits
                     z_base.eq(dst + zoff),
                     acc_at.eq(r_base + (qoff if L == 1 else lane_at)), zero_at.eq(z_base + qoff),
                     self.acc_waddr.eq(clip(acc_at, D["ACC"])),
                     self.acc_wdata.eq(Mux(draining, drained, self.core_o_psum) if L == 1 else drained)]
        if L > 1:
            m.d.comb += [lane_at.eq(qoff + loff), lane_px.eq(q + lane + 1), group_end.eq(q + L)]
        with m.Switch(dcore):
            for k in range(0 if L > 1 else 1, NC):
                with m.Case(k):
                    m.d.comb += drained.eq(cs[k].res.r.data if L == 1 else cs[k].res.r.data.word_select(lane, acc_bits))

        def beat():
            """One result into ACC at its result entry's place, and on to the next entry (one a cycle)."""
            m.d.comb += self.acc_we.eq(1)
            with m.If(~ent.end):
                m.d.comb += [r_adv.eq(1), r_next.eq(rptr + 1)]
                m.d.sync += rptr.eq(rptr + 1)
            with m.Elif(r_end_px):
                m.d.comb += [r_adv.eq(1), r_next.eq(rptr + 1)]
                m.d.sync += [rptr.eq(rptr + 1), pstart.eq(rptr + 1), q.eq(0), qoff.eq(0)]
            with m.Else():
                m.d.comb += [r_adv.eq(1), r_next.eq(pstart)]
                m.d.sync += [rptr.eq(pstart), q.eq(q + 1), qoff.eq(qoff + hw["pixel_stride"])]

        def beat_lanes():
            """L > 1: one result of the word drained into ACC, lane by lane (those holding a pixel); after its
            last (returned: the caller steps to the next word), on to the next result entry (the next lane group
            after the pass's last channel)."""
            last_lane, n_px = Signal(), len(ent.pixels)
            m.d.comb += [self.acc_we.eq(1),
                         last_lane.eq((lane == L - 1) | ((lane_px[:n_px] == ent.pixels) & ~lane_px[n_px:].any()))]
            with m.If(~last_lane):
                m.d.sync += [lane.eq(lane + 1), loff.eq(loff + hw["pixel_stride"])]
            with m.Else():
                m.d.sync += [lane.eq(0), loff.eq(0)]
                with m.If(~ent.end):
                    m.d.comb += [r_adv.eq(1), r_next.eq(rptr + 1)]
                    m.d.sync += rptr.eq(rptr + 1)
                with m.Elif(group_end[n_px:].any() | (group_end[:n_px] >= ent.pixels)):  # q + L >= PIXELS
                    m.d.comb += [r_adv.eq(1), r_next.eq(rptr + 1)]
                    m.d.sync += [rptr.eq(rptr + 1), pstart.eq(rptr + 1), q.eq(0), qoff.eq(0)]
                with m.Else():
                    m.d.comb += [r_adv.eq(1), r_next.eq(pstart)]
                    m.d.sync += [rptr.eq(pstart), q.eq(q + L), qoff.eq(lane_at + hw["pixel_stride"])]
            return last_lane

        def feed(k):
            """Core ``k``'s generator takes its pass descriptor; its next one is read (four words, a word a cycle)
            while the generator streams the one it holds."""
            c = cs[k]
            with m.If(c.dvalid & port("win_d", k).ready):
                m.d.sync += [c.dvalid.eq(0), c.left.eq(c.left - 1)]
                with m.If(c.left != 1):
                    m.d.sync += [c.feeding.eq(1), c.fk.eq(0)]
            with m.If(c.feeding):
                m.d.comb += c.adv.eq(1)
                with m.Switch(c.fk):
                    for i, r in enumerate(c.dreg):
                        with m.Case(i):
                            m.d.sync += r.eq(c.data)
                m.d.sync += c.fk.eq(c.fk + 1)
                with m.If(c.fk == len(c.dreg) - 1):
                    m.d.sync += [c.dvalid.eq(1), c.feeding.eq(0)]

        # the 8-bit range: signed, the bits from bit 7 up all equal; unsigned, none set from bit 8 up
        v = self.act_rdata
        high = v[ib - 1:]
        bad_range = Mux(signed_in, ~(high.all() | ~high.any()), v[ib:].any())
        assert input_range(True, ib) == (-(1 << (ib - 1)), (1 << (ib - 1)) - 1)
        assert input_range(False, ib) == (0, (1 << ib) - 1)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    C, H, W = self.C, self.H, self.W
                    m.d.sync += [busy.eq(1), signed_in.eq(self.signed), groups.eq(self.groups),
                                 layer.eq(self.layer), src.eq(self.src), dst.eq(self.dst), count.eq(C * H * W),
                                 j.eq(0)]
                    m.next = "CHECK"

            with m.State("CHECK"):  # reset the cores and generators; the input must lie in ACT
                m.d.comb += self.core_rst.eq(1)
                with m.If(src + count > D["ACT"]):
                    fail("address")
                with m.Elif(groups == 0):
                    fail("pim")
                with m.Else():
                    m.next = "TABLE"

            # --- one layer (block) of the instruction
            with m.State("TABLE"):  # the layer table's length
                m.d.sync += ptr.eq(0)
                m.d.comb += self.wa_addr.eq(0)
                m.next = "LOOKUP"

            with m.State("LOOKUP"):
                idx = Signal(A)
                m.d.comb += idx.eq(layer + j)
                with m.If(idx >= self.wa_data):
                    fail("pim")
                with m.Elif(idx + 1 >= D["WMEM"]):
                    fail("address")
                with m.Else():
                    m.d.sync += ptr.eq(idx + 1)
                    m.d.comb += self.wa_addr.eq(clip(idx + 1, D["WMEM"]))
                    m.next = "BASE"

            with m.State("BASE"):
                m.d.sync += [ptr.eq(self.wa_data), blk_end.eq(self.wa_data), hdr.eq(0)]
                m.d.comb += self.wa_addr.eq(clip(self.wa_data, D["WMEM"]))
                m.next = "HEADER"

            with m.State("HEADER"):  # one header word a cycle
                with load_word(hdr, [hw[k] for k in PIM_HEADER]):
                    m.d.sync += [blk_end.eq(blk_end + hw["words"]), zeros_left.eq(self.wa_data)]
                    m.next = "ZERO"

            with m.State("ZERO"):  # the next zero entry's offset, or on to the segments
                with m.If(blk_end > D["WMEM"]):
                    fail("address")
                with m.Elif((hw["pixels"] == 0) | (hw["cores"] == 0) | (hw["cores"] > NC)):
                    fail("pim")
                with m.Elif(zeros_left == 0):
                    m.d.sync += [bands_left.eq(hw["bands"]), cur.eq(0)]
                    m.next = "BAND"
                with m.Else():
                    m.d.comb += adv.eq(1)
                    m.d.sync += [zoff.eq(self.wa_data), q.eq(0), qoff.eq(0), zeros_left.eq(zeros_left - 1)]
                    m.next = "ZERO_FILL"

            with m.State("ZERO_FILL"):  # P zeros, one a cycle
                with m.If(zero_at >= D["ACC"]):
                    fail("address")
                with m.Else():
                    m.d.comb += [self.acc_we.eq(1), self.acc_waddr.eq(clip(zero_at, D["ACC"])),
                                 self.acc_wdata.eq(0)]
                    m.d.sync += [q.eq(q + 1), qoff.eq(qoff + hw["pixel_stride"])]
                    with m.If(q_next == hw["pixels"]):
                        m.next = "ZERO"

            # --- one row band: its header, then its copy into the input buffers, then its segments in rounds
            with m.State("BAND"):
                with m.If(bands_left == 0):
                    with m.If(ptr != blk_end):
                        fail("pim")
                    with m.Else():
                        with m.If(j_next < groups):
                            m.d.sync += j.eq(j + 1)
                            m.next = "TABLE"
                        with m.Else():
                            m.next = "FINISH"
                with m.Else():
                    m.d.sync += [bh.eq(0), bands_left.eq(bands_left - 1)]
                    m.next = "BAND_HEADER"

            with m.State("BAND_HEADER"):  # one word a cycle; the copy starts at ACT src + act_off
                with load_word(bh, [bw[k] for k in BAND_HEADER]):
                    assert BAND_HEADER[-1] == "segments"
                    m.d.sync += [segs_left.eq(self.wa_data), t.eq(0), e.eq(0), word.eq(0), waddr.eq(0),
                                 outer_left.eq(bw["outer"]), T_m1.eq(bw["inner"] - 1),
                                 kaddr.eq(src + bw["act_off"]), ea.eq(src + bw["act_off"])]
                    m.next = "COPY_SETUP"

            with m.State("COPY_SETUP"):  # ACT presents the first input (read at ea)
                with m.If((bw["outer"] == 0) | (bw["inner"] == 0)):
                    m.next = "SEGMENT"
                with m.Else():
                    m.next = "COPY"

            with m.State("COPY"):  # one element a cycle (ACT read at ea, its data here), into every core's buffer
                inner_end = t == T_m1
                last = inner_end & (outer_left == 1)
                with m.If((ea >= D["ACT"]) | (waddr >= self._words)):
                    fail("address")
                with m.Elif(bad_range):
                    fail("range")
                with m.Else():
                    merged = Signal(n * ib)
                    with m.Switch(e):
                        for i in range(n):
                            with m.Case(i):
                                m.d.comb += merged.eq(word | (v[:ib].as_unsigned() << (i * ib)))
                    with m.If((e == n - 1) | last):
                        m.d.comb += [self.buf_en.eq(1), self.buf_data.eq(merged)]
                        m.d.sync += [word.eq(0), e.eq(0), waddr.eq(waddr + 1)]
                    with m.Else():
                        m.d.sync += [word.eq(merged), e.eq(e + 1)]
                    with m.If(inner_end):
                        nxt = Signal(X)
                        m.d.comb += [nxt.eq(kaddr + bw["outer_stride"]), self.act_raddr.eq(clip(nxt, D["ACT"]))]
                        m.d.sync += [t.eq(0), outer_left.eq(outer_left - 1), kaddr.eq(nxt), ea.eq(nxt)]
                    with m.Else():
                        nxt = Signal(X)
                        m.d.comb += [nxt.eq(ea + bw["inner_stride"]), self.act_raddr.eq(clip(nxt, D["ACT"]))]
                        m.d.sync += [t.eq(t + 1), ea.eq(nxt)]
                    with m.If(last):
                        m.next = "SEGMENT"

            # --- one segment: program core cur and its window table; the round's last STARTs the round's cores
            with m.State("SEGMENT"):
                with m.If(segs_left == 0):
                    m.next = "BAND"
                with m.Else():
                    m.d.sync += [sh.eq(0), segs_left.eq(segs_left - 1)]
                    m.next = "SEG_HEADER"

            with m.State("SEG_HEADER"):
                m.d.comb += adv.eq(1)
                with m.Switch(sh):
                    for i, k in enumerate(SEGMENT_HEADER):
                        with m.Case(i):
                            m.d.sync += cnt[k].eq(self.wa_data)
                m.d.sync += [sh.eq(sh + 1), phase.eq(0), ti.eq(0)]
                with m.If(sh == len(SEGMENT_HEADER) - 1):
                    m.next = "BUS_WRITES"

            with m.State("BUS_WRITES"):  # (byte address, word) pairs onto core cur's register bus
                with m.If(cnt["writes"] == 0):
                    m.next = "WINDOW_TABLE"
                with m.Else():
                    m.d.comb += adv.eq(1)
                    m.d.sync += phase.eq(~phase)
                    with m.If(~phase):
                        m.d.sync += baddr.eq(self.wa_data)
                    with m.Else():
                        m.d.comb += [self.core_w_addr.eq(baddr[2:2 + self._wab]), self.core_w_data.eq(self.wa_data)]
                        m.d.comb += [port("core_w_en", k).eq(cur == k) for k in range(NC)]
                        m.d.sync += cnt["writes"].eq(cnt["writes"] - 1)

            with m.State("WINDOW_TABLE"):  # into core cur's window generator
                with m.If(cnt["table"] == 0):
                    m.d.sync += [passes_left.eq(cnt["passes"]), pk.eq(0), qw.eq(0),
                                 qlast.eq((cnt["passes"] << 2) - 5)]
                    m.next = "FIRST_PASS"
                with m.Elif(ti >= self._windows):
                    fail("pim")
                with m.Else():
                    m.d.comb += adv.eq(1)
                    m.d.comb += [port("tab_en", k).eq(cur == k) for k in range(NC)]
                    m.d.sync += [ti.eq(ti + 1), cnt["table"].eq(cnt["table"] - 1)]

            with m.State("FIRST_PASS"):  # the first pass descriptor (four words), held on core cur's win_d
                with m.If(passes_left == 0):
                    m.next = "ASSIGN"
                with m.Else():
                    m.d.comb += adv.eq(1)
                    for k, c in enumerate(cs):
                        with m.If(cur == k):
                            with m.Switch(pk):
                                for i, r in enumerate(c.dreg):
                                    with m.Case(i):
                                        m.d.sync += r.eq(self.wa_data)
                            with m.If(pk == len(WINDOW_PASS) - 1):
                                m.d.sync += c.dvalid.eq(1)
                    m.d.sync += pk.eq(pk + 1)
                    with m.If(pk == len(WINDOW_PASS) - 1):
                        with m.If((cur != 0) & (passes_left != 1)):
                            m.next = "QUEUE"
                        with m.Else():
                            m.next = "ASSIGN"

            with m.State("QUEUE"):  # cores 1 ..: the other pass descriptors into the core's pass queue
                with m.If(qw >= qdepth):
                    fail("pim")
                with m.Else():
                    m.d.comb += adv.eq(1)
                    for k in range(1, NC):
                        m.d.comb += cs[k].queue.w.en.eq(cur == k)
                    m.d.sync += qw.eq(qw + 1)
                    with m.If(qw == qlast):
                        m.next = "ASSIGN"

            with m.State("ASSIGN"):  # core cur's passes and result entries; the round's last STARTs the round
                rb, rest, rend = Signal(A), Signal(A), Signal(A)  # the result entries follow the passes not yet read
                m.d.comb += [rest.eq((passes_left - 1) << 2),
                             rb.eq(ptr + Mux((cur == 0) & (passes_left != 0), rest, 0)),
                             rend.eq(rb + cnt["results"])]
                for k, c in enumerate(cs):
                    with m.If(cur == k):
                        m.d.sync += [c.ptr.eq(0 if k else ptr), c.left.eq(passes_left), c.fk.eq(0),
                                     c.feeding.eq(0)]
                        if k == 0 and L == 1:  # core 0 streams its results into ACC at its result entries
                            m.d.sync += [rptr.eq(rb), pstart.eq(rb), res_end.eq(rend), q.eq(0), qoff.eq(0)]
                            m.d.comb += self.wb_addr.eq(clip(rb, D["WMEM"]))
                        else:  # into its result buffer, drained after the round
                            m.d.sync += [c.count.eq(0), c.res_base.eq(rb), c.res_end.eq(rend)]
                m.d.sync += ptr.eq(rend)
                with m.If(round_end):
                    m.d.comb += [self.core_w_addr.eq(CORE_REG["CTRL"].word),
                                 self.core_w_data.eq(CORE_REG["CTRL"].value(START=1))]
                    for k, c in enumerate(cs):  # cores 0 .. cur
                        m.d.comb += port("core_w_en", k).eq((cur >= k) if k else 1)
                        m.d.sync += c.live.eq((cur >= k) if k else 1)
                    m.d.sync += [cur.eq(0), rsize.eq(cur_next)]
                    m.next = "RUN"
                with m.Else():
                    m.d.sync += cur.eq(cur_next)
                    m.next = "SEGMENT"

            with m.State("RUN"):  # the round's cores at once, each fed its passes, to the last DONE
                m.d.comb += running.eq(1)
                all_done = Signal()
                m.d.comb += all_done.eq(Cat(*[~c.live | (port("core_done", k) & ~port("core_o_valid", k))
                                              for k, c in enumerate(cs)]).all())
                for k in range(NC):
                    with m.If(cs[k].live):
                        feed(k)
                # cores 1 .. (every core, L > 1): their results into their result buffers
                for k in reversed(range(0 if L > 1 else 1, NC)):
                    c = cs[k]
                    with m.If(c.live & port("core_o_valid", k)):
                        w = c.res_wide
                        with m.If(c.count >= self._result_words):
                            fail("pim")
                        if w is not None:
                            with m.Elif(w):
                                fail("range")
                        with m.Else():
                            m.d.comb += c.res.w.en.eq(1)
                            m.d.sync += c.count.eq(c.count + 1)
                # core 0 (L = 1): its results into ACC, each at its result entry
                if L == 1:
                    with m.If(self.core_o_valid):
                        w = wide(self.core_o_psum)
                        with m.If(rptr >= res_end):
                            fail("pim")
                        if w is not None:  # the core's sums may pass ACC's 32 bits
                            with m.Elif(w):
                                fail("range")
                        with m.Elif(acc_at >= D["ACC"]):
                            fail("address")
                        with m.Else():
                            beat()
                with m.If(all_done):
                    bad = Cat(*[c.live & (port("core_error", k) | c.dvalid | c.feeding | (c.left != 0))
                                for k, c in enumerate(cs)]).any()
                    with m.If(bad | (rptr != res_end) if L == 1 else bad):
                        fail("pim")
                    with m.Elif(drain):
                        m.d.sync += dcore.eq(1 if L == 1 else 0)
                        m.next = "DRAIN_SETUP"
                    with m.Else():
                        m.next = "SEGMENT"

            # --- the result buffers of cores 1 .. into ACC, core 1 first, one word a cycle at their result entries
            # (L > 1: of cores 0 .., core 0 first, one result a cycle: a word's lanes holding a pixel)
            with m.State("DRAIN_SETUP"):
                for k in range(0 if L > 1 else 1, NC):
                    c = cs[k]
                    with m.If(dcore == k):
                        m.d.sync += [rptr.eq(c.res_base), pstart.eq(c.res_base), res_end.eq(c.res_end),
                                     dleft.eq(c.count)]
                        m.d.comb += self.wb_addr.eq(clip(c.res_base, D["WMEM"]))
                m.d.sync += [q.eq(0), qoff.eq(0), dra.eq(0)]
                if L > 1:
                    m.d.sync += [lane.eq(0), loff.eq(0)]
                m.d.comb += [cs[k].res.r.addr.eq(0) for k in range(0 if L > 1 else 1, NC)]
                m.next = "DRAIN"

            def drain_over(bad):
                """A core's drain is over: ``bad`` (its words and its result entries disagree) fails, else the next
                core's drain or the next segment."""
                with m.If(bad):
                    fail("pim")
                with m.Elif(drain_end):
                    m.next = "SEGMENT"
                with m.Else():
                    m.d.sync += dcore.eq(dcore_next)
                    m.next = "DRAIN_SETUP"

            if L > 1:  # dleft: the words the core wrote; the drain ends with its result entries
                with m.State("DRAIN"):
                    with m.If(rptr == res_end):
                        drain_over(dra != dleft)
                    with m.Elif(dra >= dleft):
                        fail("pim")
                    with m.Elif(acc_at >= D["ACC"]):
                        fail("address")
                    with m.Else():
                        with m.If(beat_lanes()):  # the word's last lane: the next word
                            m.d.comb += dadv.eq(1)
                            m.d.sync += dra.eq(dra + 1)
            else:
                with m.State("DRAIN"):
                    m.d.comb += draining.eq(1)
                    with m.If(dleft == 0):
                        drain_over(rptr != res_end)
                    with m.Elif(rptr >= res_end):
                        fail("pim")
                    with m.Elif(acc_at >= D["ACC"]):
                        fail("address")
                    with m.Else():
                        beat()
                        m.d.comb += dadv.eq(1)
                        m.d.sync += [dra.eq(dra + 1), dleft.eq(dleft - 1)]

            with m.State("FINISH"):
                m.d.comb += done.eq(1)
                m.d.sync += busy.eq(0)
                m.next = "IDLE"
        return m

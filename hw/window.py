"""The chip's input buffer and window generator (docs/design.md §16, the paper's Fig. 4 (2)).

:class:`WindowGenerator` holds a layer's input activation map in the input
buffer and turns it into a PIM core's input stream (``hw.core.PIMCore.x``):
for each pass descriptor, for each of the pass's output pixels, the pass's
windows of ``n_comp`` consecutive im2col inputs, one beat per cycle, zero for
the padding and for the inputs past ``K``. Its interface is a clean
signature a chip top connects: the layer descriptor (held static), a stream
of pass descriptors in, the window stream out, the buffer's and the window
table's write ports.

Twin: :func:`model.window.generator_beats`; cycles:
:func:`model.window.generator_cycles`; descriptor and table fields:
:data:`model.spec.WINDOW_LAYER`, :data:`model.spec.WINDOW_PASS`,
:data:`model.spec.WINDOW_ENTRY`.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream
from amaranth.lib.wiring import In, Out

from dbpim.hw.common import Block, layout_from_fields
from dbpim.hw.sram import sram_1r1w
from dbpim.model.spec import (BUS_BITS, WINDOW_ELEMENTS_MAX, WINDOW_ENTRY, WINDOW_LATENCY, WINDOW_LAYER, WINDOW_PASS,
                              register_fields, window_fields)

__all__ = ["WindowGenerator"]

#: signed width of an output pixel's top-left input coordinate (``HO * SH``: 16 + 4 bits, a sign and a margin)
_COORD_BITS = 22


class WindowGenerator(Block):
    """The input buffer and its window generator: a stored activation map -> a PIM core's input windows.

    Parameters
    ----------
    n_comp : int
        Inputs per window (the macro's compartments); a buffer word holds ``n_comp`` inputs.
    in_bits : int
        Bits of an input (8).
    buffer_words : int
        Input buffer depth in words (:func:`model.window.buffer_words` of ``system.input_buffer_kib``).
    windows : int
        Window table entries (``core.mask_windows``: entry k describes the window of the core's mask word k).
    in_windows : int
        Windows a beat of ``o`` carries (``core.in_windows``, 1 .. 16; below "Several windows").

    **Buffer.** ``buffer_words * n_comp`` inputs; input ``a`` is element ``a % n_comp`` of word
    ``a // n_comp``. Written one word per cycle (``w_en``, ``w_addr``, ``w_data``, element 0 lowest);
    value (c, h, w) of the map is input ``BASE + (c * HEIGHT + h) * WIDTH + w``. Stored as ``n_comp``
    banks, each a full copy (:mod:`hw.sram` kind ``wbuf``: ``buffer_words`` words of ``n_comp`` inputs,
    read latency 1): a written word goes to every bank, lane e of a beat reads bank e only, so the
    ``n_comp`` reads of a beat never meet in a bank whatever the geometry (docs/rtl.md, "Memories").
    A word written in the cycle a beat's inputs are read reads old there (the PIM controller writes the
    map before the passes).

    **Window table.** Entry k (``t_en``, ``t_addr``, ``t_data``: :data:`model.spec.WINDOW_ENTRY`) is the
    (channel, kernel row, kernel column) of the window's input 0 and how many of its inputs lie past ``K``
    (:func:`model.window.table_entries`). Entries must have ``KI < KH`` and ``KJ < KW``. The table reads
    synchronously (:mod:`hw.sram`): each beat's entry is read in the cycle before it, so an entry is written
    at least two cycles before a pass taken reads it (the PIM controller writes the table before the passes).

    **Run.** ``layer`` (:data:`model.spec.WINDOW_LAYER`) is held static. Each pass descriptor on ``d``
    (:data:`model.spec.WINDOW_PASS`) is taken when the generator is idle or in the cycle the pass's last
    beat reads the buffer; two stages: a beat's inputs are read in one cycle (the walk) and the beat is
    on ``o`` from the next (the output stage; the walk moves on while ``o`` is empty or ready). So from
    the second cycle after the descriptor (``model.spec.WINDOW_LATENCY["start"]``) ``o`` is valid with the
    beats of pixel (HO, WO) and the next ``PIXELS - 1``
    pixels (row-major, wrapping at ``OUT_W``), entries ``WIN_BASE .. WIN_BASE + N_WIN - 1`` each, one beat
    per cycle while ``o.ready``. Input ``e`` of a beat is im2col input ``(CHANNEL * KH + KI) * KW + KJ + e``
    of the pixel: tap (c, i, j) reads map value (c, HO' * SH - PH + i * DH, WO' * SW - PW + j * DW), zero
    outside the map and for ``e >= n_comp - N_PAD``. A pass with no beat (``PIXELS`` or ``N_WIN`` 0) is
    taken and dropped. Reset aborts a pass.

    **Several windows** (``in_windows`` W > 1, the core's ``in_windows``): a beat carries entry k's window of
    W consecutive pixels (window s of pixel ``gW + s`` of the pass in bits ``s * n_comp * in_bits ..``, zero
    past the pass's last pixel; :func:`model.core.input_windows`): for each group of W pixels, entries
    ``WIN_BASE ..`` one beat a cycle, so a pass streams ``ceil(PIXELS / W) * N_WIN`` beats. The buffer is
    ``W * n_comp`` banks (window s, lane e reads bank ``s * n_comp + e``), each a full copy.

    Attributes
    ----------
    layer : In(StructLayout(register_fields(WINDOW_LAYER)))
    d : In(stream.Signature(StructLayout(register_fields(WINDOW_PASS))))
    o : Out(stream.Signature(StructLayout(window_fields)))  the core's ``x`` layout
    w_en, w_addr, w_data : the buffer's write port (one word of ``n_comp`` inputs)
    t_en, t_addr, t_data : the window table's write port (one 32-bit entry)
    busy : Out(1)  a pass is being streamed (a beat read or on ``o``)
    """

    CONFIG_KEYS = {"n_comp": "n_comp", "in_bits": "in_bits"}
    NAME = "window"

    def __init__(self, *, n_comp: int, in_bits: int = 8, buffer_words: int, windows: int, in_windows: int = 1):
        self._n_comp = self._param("n_comp", n_comp)
        self._in_bits = self._param("in_bits", in_bits)
        self._words = self._param("buffer_words", buffer_words)
        self._windows = self._param("windows", windows)
        if not isinstance(in_windows, int) or isinstance(in_windows, bool) or not 1 <= in_windows <= 16:
            raise ValueError(f"in_windows must be an integer from 1 to 16, not {in_windows!r}")
        self._in_windows = in_windows
        if in_windows != 1:  # a parameter only when not 1 (the Verilog and parameters of one window unchanged)
            self._param("in_windows", in_windows)
        if buffer_words * n_comp > WINDOW_ELEMENTS_MAX:
            raise ValueError(f"buffer_words must hold at most {WINDOW_ELEMENTS_MAX} inputs "
                             f"({WINDOW_ELEMENTS_MAX // n_comp} words of {n_comp}), not {buffer_words!r}")
        super().__init__({
            "layer": In(layout_from_fields(register_fields(WINDOW_LAYER))),
            "d": In(stream.Signature(layout_from_fields(register_fields(WINDOW_PASS)))),
            "o": Out(stream.Signature(layout_from_fields(window_fields(n_comp, in_bits, in_windows)))),
            "w_en": In(1), "w_addr": In(range(max(2, buffer_words))), "w_data": In(n_comp * in_bits),
            "t_en": In(1), "t_addr": In(range(max(2, windows))), "t_data": In(BUS_BITS),
            "busy": Out(1),
        })

    @classmethod
    def from_config(cls, hw) -> "WindowGenerator":
        """Build from a :class:`model.config.HwConfig` (macro, ``system.input_buffer_kib``, ``core.mask_windows``).

        Raises
        ------
        model.config.ConfigError
            One line naming ``system.input_buffer_kib`` when the buffer holds no word or too many inputs.
        """
        from dbpim.model.config import ConfigError
        from dbpim.model.spec import WINDOW_GEOMETRY
        from dbpim.model.window import buffer_words

        mc = hw.macro
        words = buffer_words(hw.system.input_buffer_kib, mc.n_comp, mc.in_bits)
        if not WINDOW_GEOMETRY["buffer_words"].ok(words) or words * mc.n_comp > WINDOW_ELEMENTS_MAX:
            raise ConfigError(f"{getattr(hw, 'path', None) or hw.name}: system.input_buffer_kib: must give the "
                              f"window generator 1 to {min(1 << 20, WINDOW_ELEMENTS_MAX // mc.n_comp)} words of "
                              f"{mc.n_comp} x {mc.in_bits} bits, got {hw.system.input_buffer_kib!r} KiB "
                              f"({words} words)")
        return cls(n_comp=mc.n_comp, in_bits=mc.in_bits, buffer_words=words, windows=hw.core.mask_windows,
                   in_windows=hw.core.in_windows)

    @property
    def latency(self) -> int:
        """Cycles from a pass descriptor taken while idle to its first beat (``model.spec.WINDOW_LATENCY``)."""
        return WINDOW_LATENCY["start"]

    latency_note = ("one beat per cycle while o.ready; the next pass descriptor is taken in the cycle a pass's "
                    "last beat reads the buffer: model.window.generator_cycles")

    def elaborate(self, platform):
        m = Module()
        n, ib = self._n_comp, self._in_bits
        L = self.layer

        # ---- the input buffer: one synchronous-read copy per lane (bank e = lane e's copy, hw.sram kind wbuf):
        # a word of n_comp inputs written to every copy at once, lane e reads its copy's word of its input
        # (conflict-free for every geometry: docs/rtl.md "Memories"); the read data is the next cycle's beat
        lg = (n - 1).bit_length()   # n_comp is a power of two: input a is element a % n of word a // n
        NW = self._in_windows
        rps = []
        for e in range(n * NW):     # window s, lane e: bank s * n + e (wbuf{e} for window 0)
            bank = sram_1r1w(m, "wbuf", width=n * ib, depth=self._words, platform=platform,
                             name=f"wbuf{e}" if e < n else f"wbuf{e // n}_{e % n}")
            m.d.comb += [bank.w.en.eq(self.w_en), bank.w.addr.eq(self.w_addr), bank.w.data.eq(self.w_data)]
            rps.append(bank.r)

        # ---- the window table
        entry_layout = layout_from_fields(register_fields(WINDOW_ENTRY))
        table = sram_1r1w(m, "wtable", width=entry_layout.size, depth=self._windows, platform=platform,
                          name="window_table")  # not "table": a Verilog keyword
        twp, trp = table.w, table.r
        m.d.comb += [twp.addr.eq(self.t_addr), twp.en.eq(self.t_en), twp.data.eq(self.t_data)]

        # ---- pass state
        run = Signal()
        y0 = Signal(signed(_COORD_BITS))   # the pixel's top-left input row before the padding, HO' * SH
        x0 = Signal(signed(_COORD_BITS))   # and column WO' * SW
        wo = Signal.like(L.out_w)
        wo_last = Signal.like(L.out_w)     # OUT_W - 1
        pix_left = Signal(len(self.d.payload.pixels))
        win_base = Signal(len(self.d.payload.n_win))   # as wide as k
        win_last = Signal(len(self.d.payload.n_win))   # N_WIN - 1
        k = Signal(len(self.d.payload.n_win))
        # two stages: the walk (run: the beat whose input addresses the buffer reads now) and the output
        # (valid: the beat on o, its inputs the buffer's read data); the walk advances when the output does
        valid = Signal()
        adv = Signal()
        m.d.comb += [adv.eq(~valid | self.o.ready), self.busy.eq(run | valid)]

        # ---- the layer, sampled with each pass descriptor, at the widths of the operands it meets
        aw = lg + len(rps[0].addr)   # an input's address in the buffer (word address, element)
        cb = _COORD_BITS + 1
        height, width = Signal(signed(cb)), Signal(signed(cb))   # the map's size as signed coordinates
        kh, kw = Signal(len(L.kh) + 1), Signal(len(L.kw) + 1)    # as wide as a kernel index + 1
        base, h_a, w_a = Signal(aw), Signal(aw), Signal(aw)       # address-wide operands
        dh, dw, sh, sw = (Signal.like(getattr(L, f), name=f"lay_{f}") for f in ("dh", "dw", "sh", "sw"))
        ph, pw = Signal(signed(cb)), Signal(signed(cb))
        sample = [height.eq(L.height), width.eq(L.width), kh.eq(L.kh), kw.eq(L.kw), base.eq(L.base),
                  h_a.eq(L.height), w_a.eq(L.width), dh.eq(L.dh), dw.eq(L.dw), sh.eq(L.sh), sw.eq(L.sw),
                  ph.eq(L.ph), pw.eq(L.pw), wo_last.eq(L.out_w - 1)]

        # ---- the beat: lane e is im2col input (CHANNEL * KH + KI) * KW + KJ + e of the pixel
        ent = data.View(entry_layout, trp.data)
        c, i, j = ent.channel, ent.ki, ent.kj
        live_n = Signal(range(n + 1))
        m.d.comb += live_n.eq(Mux(ent.n_pad < n, n - ent.n_pad, 0))
        # window s > 0 (in_windows > 1): the pixel s after window 0's, row-major, wrapping at OUT_W (lanes[NW]:
        # the next group's first pixel)
        lanes = [(y0, x0, wo)]
        for w in range(1, NW + 1 if NW > 1 else 1):
            py, px, pwo = lanes[-1]
            ny, nx, nwo = (Signal(signed(_COORD_BITS), name=f"win{w}_y0"), Signal(signed(_COORD_BITS),
                                                                                name=f"win{w}_x0"),
                           Signal.like(wo, name=f"win{w}_wo"))
            with m.If(pwo == wo_last):
                m.d.comb += [nwo.eq(0), nx.eq(0), ny.eq(py + sh)]
            with m.Else():
                m.d.comb += [nwo.eq(pwo + 1), nx.eq(px + sw), ny.eq(py)]
            lanes.append((ny, nx, nwo))
        for e in range(n):
            rp = rps[e]
            if e:  # the next tap: (c, i, j) + 1 in the radix (KH, KW)
                jn, in_ = Signal(len(kw), name=f"tap{e}_jn"), Signal(len(kh), name=f"tap{e}_in")
                m.d.comb += [jn.eq(j + 1), in_.eq(i + 1)]
                wrap_j, wrap_i = Signal(name=f"tap{e}_wrap_j"), Signal(name=f"tap{e}_wrap_i")
                m.d.comb += [wrap_j.eq(jn == kw), wrap_i.eq(wrap_j & (in_ == kh))]
                cj, ci, cc = (Signal(len(L.kw), name=f"tap{e}_j"), Signal(len(L.kh), name=f"tap{e}_i"),
                              Signal(aw, name=f"tap{e}_c"))
                m.d.comb += [cj.eq(Mux(wrap_j, 0, jn)), ci.eq(Mux(wrap_i, 0, Mux(wrap_j, in_, i))),
                             cc.eq(Mux(wrap_i, c + 1, c))]
                c, i, j = cc, ci, cj
            dy, dx = Signal(2 * len(L.dh), name=f"tap{e}_dy"), Signal(2 * len(L.dw), name=f"tap{e}_dx")
            m.d.comb += [dy.eq(i * dh), dx.eq(j * dw)]
            for w, (wy0, wx0, _) in enumerate(lanes[:NW]):  # window w's input e: bank w * n + e
                pre = "" if w == 0 else f"win{w}_"
                rp = rps[w * n + e]
                ty, tx = Signal(signed(cb), name=f"{pre}tap{e}_ty"), Signal(signed(cb), name=f"{pre}tap{e}_tx")
                y, x = Signal(signed(cb), name=f"{pre}tap{e}_y"), Signal(signed(cb), name=f"{pre}tap{e}_x")
                m.d.comb += [ty.eq(wy0 + dy), tx.eq(wx0 + dx), y.eq(ty - ph), x.eq(tx - pw)]
                ok = Signal(name=f"{pre}tap{e}_ok")
                live = (live_n > e) if w == 0 else (live_n > e) & (pix_left > w)  # window w holds a pixel
                m.d.comb += ok.eq(live & ~y[-1] & (y < height) & ~x[-1] & (x < width))
                # address BASE + (c * HEIGHT + y) * WIDTH + x, each step truncated to the buffer's address bits
                ch, row, lin, at, ad = (Signal(aw, name=f"{pre}tap{e}_{t}") for t in ("ch", "row", "lin", "at", "ad"))
                ya, xa = Signal(aw, name=f"{pre}tap{e}_ya"), Signal(aw, name=f"{pre}tap{e}_xa")
                m.d.comb += [ya.eq(y[:aw]), xa.eq(x[:aw]), ch.eq(c * h_a), row.eq(ch + ya), lin.eq(row * w_a),
                             at.eq(base + lin), ad.eq(at + xa), rp.addr.eq(ad[lg:]),
                             rp.en.eq(adv & run & ok)]  # a lane whose input is zero reads nothing
                # the output stage: the read word's element, zero where the input is padding or past K
                ok_o = Signal(name=f"{pre}lane{e}_ok", reset_less=True)   # data: counts only with valid
                el_o = Signal(lg, name=f"{pre}lane{e}_el", reset_less=True)
                with m.If(adv):
                    m.d.sync += [ok_o.eq(ok), el_o.eq(ad[:lg])]
                m.d.comb += self.o.payload.data[w * n + e].eq(Mux(ok_o, rp.data.word_select(el_o, ib), 0))
        with m.If(adv):
            m.d.sync += valid.eq(run)
        m.d.comb += self.o.valid.eq(valid)

        # ---- walk: entries of a pixel, then the next pixel (row-major), then the next pass
        last_win = k == win_last
        last_px = (pix_left == 1) if NW == 1 else (pix_left <= NW)  # the pass's last pixel (group)
        last_beat = last_win & last_px
        m.d.comb += self.d.ready.eq(~run | (adv & last_beat))
        with m.If(run & adv):
            with m.If(last_win):
                m.d.sync += k.eq(0)
                with m.If(last_px):
                    m.d.sync += run.eq(0)
                with m.Else():
                    m.d.sync += pix_left.eq(pix_left - NW)
                    if NW == 1:
                        with m.If(wo == wo_last):
                            m.d.sync += [wo.eq(0), x0.eq(0), y0.eq(y0 + sh)]
                        with m.Else():
                            m.d.sync += [wo.eq(wo + 1), x0.eq(x0 + sw)]
                    else:  # the next group of NW pixels
                        ny, nx, nwo = lanes[NW]
                        m.d.sync += [wo.eq(nwo), x0.eq(nx), y0.eq(ny)]
            with m.Else():
                m.d.sync += k.eq(k + 1)
        # the window table reads synchronously: the entry of the next cycle's beat is read one cycle ahead
        nx_base, nx_k = Signal.like(win_base), Signal.like(k)
        m.d.comb += [nx_base.eq(win_base), nx_k.eq(k)]
        with m.If(run & adv):
            m.d.comb += nx_k.eq(Mux(last_win, 0, k + 1))
        p = self.d.payload
        with m.If(self.d.valid & self.d.ready):
            m.d.comb += [nx_base.eq(p.win_base), nx_k.eq(0)]
        m.d.comb += trp.addr.eq(nx_base + nx_k)
        with m.If(self.d.valid & self.d.ready):  # a new pass (overrides the walk's last beat)
            m.d.sync += [run.eq((p.pixels != 0) & (p.n_win != 0)), k.eq(0), pix_left.eq(p.pixels),
                         win_base.eq(p.win_base), win_last.eq(p.n_win - 1), wo.eq(p.wo),
                         y0.eq(p.ho * L.sh), x0.eq(p.wo * L.sw)] + sample
        return m

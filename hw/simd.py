"""The SIMD core (docs/design.md §14): the chip's integer ops between layers, on a valid/ready stream."""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream
from amaranth.lib.wiring import In, Out

from dbpim.hw.common import Block, layout_from_fields
from dbpim.hw.sram import sram_1r1w
from dbpim.model.spec import (SIMD_DWC_W_BITS, SIMD_DWC_X_BITS, SIMD_GEOMETRY, SIMD_LATENCY, SIMD_MULT_BITS,
                              SIMD_OPCODES, SIMD_OPERAND_BITS, SIMD_WINDOW_BITS, bits_for, simd_const_fields,
                              simd_descriptor_fields, simd_in_fields, simd_out_fields)

__all__ = ["SIMDCore"]

# the reduced value is clipped to this signed width before the multiply (|v| < 2**31 in the twin's domain)
_MUL_IN_BITS = SIMD_OPERAND_BITS + 1
# running sum of a window: SIMD_OPERAND_BITS + SIMD_WINDOW_BITS bits never overflow
_RED_BITS = SIMD_OPERAND_BITS + SIMD_WINDOW_BITS + 1
# a dwconv product fits an operand lane (it is captured in one)
assert SIMD_DWC_X_BITS + SIMD_DWC_W_BITS <= SIMD_OPERAND_BITS


class SIMDCore(Block):
    """``lanes`` integer lanes running one descriptor at a time: requant, clamp, add, max / average pooling,
    depthwise convolution.

    A descriptor (``d``, :func:`model.spec.simd_descriptor_fields`) is taken
    while ``busy`` is low; then ``pixels * ceil(channels / lanes) * window``
    input beats (``i``) are taken in the order of :mod:`model.simd_core`
    (pixel, then channel group of ``lanes`` channels, then window element)
    and ``pixels * ceil(channels / lanes)`` output beats (``o``) leave, the
    last with ``last``; ``busy`` falls after it. Lane ``l`` of channel group
    ``g`` is channel ``g * lanes + l``; lanes past ``channels`` read nothing
    and output 0. Per beat and lane (``v`` the window's reduction)::

        requant   v = a + bias              out = saturate(rescale(v, m, s), lo, hi)
        clamp     v = a                     out = saturate(v, lo, hi)
        add       v = a                     out = saturate(rescale(v, m, s) + rescale(b, mb, sb), lo, hi)
        maxpool   v = max of a, pad skipped out = saturate(v, lo, hi)
        avgpool   v = sum of a, pad adds 0  out = saturate(rescale(v, m, s), lo, hi)
        dwconv    v = bias + sum of a * b,  out = saturate(rescale(v, m, s), lo, hi)
                      pad adds 0

    with ``rescale(v, m, s) = (v * m + ((1 << s) >> 1)) >> s`` (model.requant),
    computed as ``((v * m) >> (s - 1)) + 1 >> 1`` for ``s >= 1`` (the same
    value). ``dwconv``'s product takes the low :data:`model.spec.SIMD_DWC_X_BITS` bits of ``a`` (an activation)
    and :data:`model.spec.SIMD_DWC_W_BITS` bits of ``b`` (its int8 weight), signed: exact for operands of those
    widths (the chip controller sends nothing else). A descriptor with ``op`` outside :data:`model.spec.SIMD_OPCODES`,
    ``channels`` 0 or above the constant memory's, ``window`` or ``pixels`` 0
    or ``lo > hi`` is taken, raises ``err`` for one cycle and runs nothing.

    **Pipeline.** Five register stages share one enable (``~o.valid | o.ready``):
    capture (``dwconv``'s product; the constant memory read), reduce, multiply (33 x 31 bits),
    rounding shift, saturate. An input beat taken in cycle ``t`` leaves in
    cycle ``t + 5`` at the earliest (:data:`model.spec.SIMD_LATENCY`); at full
    rate one beat per cycle. Timing: :func:`model.simd_core.simd_cycles`.

    **Constants.** ``w_*`` writes channel group ``w_addr``: lane ``l``'s
    ``(m, s, bias, mb, sb)`` (:func:`model.spec.simd_const_fields`) when
    ``w_en`` bit ``l`` is set; write only while ``busy`` is low.

    Parameters
    ----------
    lanes : int
        Lanes (``system.simd_lanes``), 1..64.
    channels : int
        Channels the constant memory holds (``ceil(channels / lanes)`` entries per lane), 1..65535.

    Attributes
    ----------
    d : In(stream.Signature(StructLayout(simd_descriptor_fields(channels))))
    i : In(stream.Signature(StructLayout(simd_in_fields(lanes))))
    o : Out(stream.Signature(StructLayout(simd_out_fields(lanes))))
    w_en : In(lanes)
    w_addr : In(bits_for(ceil(channels / lanes) - 1))
    w_data : In(ArrayLayout(StructLayout(simd_const_fields()), lanes))
    busy : Out(1)
    err : Out(1)
    """

    CONFIG_KEYS = {"lanes": "simd_lanes", "channels": "simd_channels"}
    NAME = "simd"
    #: constant memory reach when a configuration does not say (the widest layer of the shipped networks: 2048)
    DEFAULT_CHANNELS = 2048

    def __init__(self, *, lanes: int, channels: int = DEFAULT_CHANNELS):
        self._lanes = self._param("lanes", lanes)
        self._channels = self._param("channels", channels)
        self._groups = -(-self._channels // self._lanes)
        self._const_layout = layout_from_fields(simd_const_fields())
        super().__init__({
            "d": In(stream.Signature(layout_from_fields(simd_descriptor_fields(channels)))),
            "i": In(stream.Signature(layout_from_fields(simd_in_fields(lanes)))),
            "o": Out(stream.Signature(layout_from_fields(simd_out_fields(lanes)))),
            "w_en": In(lanes),
            "w_addr": In(bits_for(self._groups - 1)),
            "w_data": In(data.ArrayLayout(self._const_layout, lanes)),
            "busy": Out(1),
            "err": Out(1),
        })

    @classmethod
    def from_config(cls, hw) -> "SIMDCore":
        """From a :class:`model.config.HwConfig`: ``system.simd_lanes`` lanes (ValueError naming the key when the
        RTL cannot build them)."""
        lanes = hw.system.simd_lanes
        rule = SIMD_GEOMETRY["simd_lanes"]
        if not rule.ok(lanes):
            raise ValueError(f"system.simd_lanes: must be {rule.allowed} to build the SIMD core, got {lanes!r}")
        return cls(lanes=lanes)

    @property
    def latency(self) -> int:
        return SIMD_LATENCY

    latency_note = "input beat accepted to its output beat (last beat of a window for pooling)"

    def elaborate(self, platform):
        m = Module()
        L, C = self._lanes, self._channels
        op_bits = len(self.d.payload.op)

        # --- descriptor and input counters
        busy = Signal()
        op = Signal(op_bits)
        c0 = Signal(range(C + L + 1))         # first channel of the next input beat's group
        chans = Signal.like(c0)
        window_m1 = Signal(SIMD_WINDOW_BITS)  # window - 1
        pixels_m1 = Signal(len(self.d.payload.pixels))  # pixels - 1
        # the saturation range, sign-extended to the width of ra + rb (stage O compares at one width)
        tot_bits = _MUL_IN_BITS + SIMD_MULT_BITS + 2
        lo = Signal(signed(tot_bits))
        hi = Signal(signed(tot_bits))
        e = Signal(SIMD_WINDOW_BITS)          # window element of the next input beat
        g = Signal(bits_for(self._groups - 1))  # its group
        p = Signal(len(self.d.payload.pixels))  # its pixel
        in_done = Signal()
        m.d.comb += [self.busy.eq(busy), self.d.ready.eq(~busy)]

        dp = self.d.payload
        bad = ((dp.op >= len(SIMD_OPCODES)) | (dp.channels == 0) | (dp.channels > C) | (dp.window == 0)
               | (dp.pixels == 0) | (dp.lo > dp.hi))
        m.d.sync += self.err.eq(0)
        with m.If(self.d.valid & self.d.ready):
            with m.If(bad):
                m.d.sync += self.err.eq(1)
            with m.Else():
                m.d.sync += [busy.eq(1), op.eq(dp.op), chans.eq(dp.channels), window_m1.eq(dp.window - 1),
                             pixels_m1.eq(dp.pixels - 1), lo.eq(dp.lo), hi.eq(dp.hi), e.eq(0), c0.eq(0), g.eq(0),
                             p.eq(0), in_done.eq(0)]

        en = Signal()  # the pipeline moves
        o_valid = Signal()
        m.d.comb += [en.eq(~o_valid | self.o.ready), self.o.valid.eq(o_valid)]
        take = Signal()
        m.d.comb += [self.i.ready.eq(busy & ~in_done & en), take.eq(self.i.valid & self.i.ready)]
        c_next = Signal.like(c0)
        m.d.comb += c_next.eq(c0 + L)
        last_e = e == window_m1
        last_g = c_next >= chans
        last_p = p == pixels_m1
        with m.If(take):
            m.d.sync += e.eq(Mux(last_e, 0, e + 1))
            with m.If(last_e):
                with m.If(last_g):
                    m.d.sync += [c0.eq(0), g.eq(0), p.eq(p + 1)]
                    with m.If(last_p):
                        m.d.sync += in_done.eq(1)
                with m.Else():
                    m.d.sync += [c0.eq(c_next), g.eq(g + 1)]

        # --- constants: one memory per lane, read with the beat's group (aligned with stage A)
        consts = []
        for lane in range(L):
            mem = sram_1r1w(m, "simd_const", width=self._const_layout.size, depth=self._groups, platform=platform,
                            name=f"const{lane}")
            wp, rp = mem.w, mem.r
            m.d.comb += [wp.addr.eq(self.w_addr), wp.data.eq(self.w_data[lane]), wp.en.eq(self.w_en[lane]),
                         rp.addr.eq(g), rp.en.eq(en)]
            consts.append(data.View(self._const_layout, rp.data))

        # --- stage A: capture (dwconv: the product of the activation and its weight)
        is_op = {name: op == code for name, code in SIMD_OPCODES.items()}
        a_v, a_first, a_lastw, a_final, a_pad = Signal(), Signal(), Signal(), Signal(), Signal()
        a_c0 = Signal.like(c0)
        a_a = [Signal(signed(SIMD_OPERAND_BITS), name=f"a_a{k}") for k in range(L)]
        a_b = [Signal(signed(SIMD_OPERAND_BITS), name=f"a_b{k}") for k in range(L)]
        with m.If(en):
            m.d.sync += [a_v.eq(take), a_first.eq(e == 0), a_lastw.eq(last_e), a_final.eq(last_e & last_g & last_p),
                         a_pad.eq(self.i.payload.pad), a_c0.eq(c0)]
            for k in range(L):
                x, wt = self.i.payload.a[k], self.i.payload.b[k]
                prod = x[:SIMD_DWC_X_BITS].as_signed() * wt[:SIMD_DWC_W_BITS].as_signed()
                m.d.sync += a_a[k].eq(Mux(is_op["dwconv"], prod, x))
            m.d.sync += [a_b[k].eq(self.i.payload.b[k]) for k in range(L)]

        # --- stage R: reduce (and the per-op constants). The width copies (a_x, clip, tot) are assigned inside the
        # enable's If: Yosys keeps them there, so every comparison in the Verilog is at one width (lint-clean)
        scaled = is_op["requant"] | is_op["add"] | is_op["avgpool"] | is_op["dwconv"]
        r_v, r_final = Signal(), Signal()
        red = [Signal(signed(_RED_BITS), name=f"red{k}") for k in range(L)]
        r_b = [Signal(signed(SIMD_OPERAND_BITS), name=f"r_b{k}") for k in range(L)]
        r_m = [Signal(len(consts[0].m), name=f"r_m{k}") for k in range(L)]
        r_s = [Signal(len(consts[0].s), name=f"r_s{k}") for k in range(L)]
        r_mb = [Signal(len(consts[0].mb), name=f"r_mb{k}") for k in range(L)]
        r_sb = [Signal(len(consts[0].sb), name=f"r_sb{k}") for k in range(L)]
        r_on = Signal(L)
        neg = Const(-(1 << (_RED_BITS - 2)), signed(_RED_BITS))  # below every operand: a max never picks it
        with m.If(en):
            m.d.sync += [r_v.eq(a_v & a_lastw), r_final.eq(a_final)]
            with m.If(a_v):
                for k in range(L):
                    cst = consts[k]
                    a = Signal(signed(_RED_BITS), name=f"a_x{k}")
                    ch = Signal.like(c0, name=f"ch{k}")
                    m.d.comb += [a.eq(a_a[k]), ch.eq(a_c0 + k)]
                    maxv = Mux(a_pad, Mux(a_first, neg, red[k]), Mux(a_first | (a > red[k]), a, red[k]))
                    sumv = Mux(a_first, Mux(is_op["dwconv"], cst.bias, 0), red[k]) + Mux(a_pad, 0, a)
                    val = Mux(is_op["requant"], a + cst.bias, Mux(is_op["maxpool"], maxv,
                                                                  Mux(is_op["avgpool"] | is_op["dwconv"], sumv, a)))
                    m.d.sync += [red[k].eq(val), r_b[k].eq(a_b[k]),
                                 r_m[k].eq(Mux(scaled, cst.m, 1)), r_s[k].eq(Mux(scaled, cst.s, 0)),
                                 r_mb[k].eq(Mux(is_op["add"], cst.mb, 0)), r_sb[k].eq(Mux(is_op["add"], cst.sb, 0)),
                                 r_on[k].eq(ch < chans)]

        # --- stage M: multiply (the reduced value clipped to 33 bits: exact for |v| < 2**31)
        m_v, m_final = Signal(), Signal()
        top = Const((1 << (_MUL_IN_BITS - 1)) - 1, signed(_MUL_IN_BITS))
        bot = Const(-(1 << (_MUL_IN_BITS - 1)), signed(_MUL_IN_BITS))
        pa = [Signal(signed(_MUL_IN_BITS + len(r_m[0])), name=f"pa{k}") for k in range(L)]
        pb = [Signal(signed(SIMD_OPERAND_BITS + len(r_mb[0])), name=f"pb{k}") for k in range(L)]
        m_s = [Signal.like(r_s[k], name=f"m_s{k}") for k in range(L)]
        m_sb = [Signal.like(r_sb[k], name=f"m_sb{k}") for k in range(L)]
        m_on = Signal(L)
        with m.If(en):
            m.d.sync += [m_v.eq(r_v), m_final.eq(r_final), m_on.eq(r_on)]
            for k in range(L):
                v = Signal(signed(_MUL_IN_BITS), name=f"clip{k}")
                high = red[k][_MUL_IN_BITS - 1:]  # all equal: the value fits _MUL_IN_BITS bits
                fits = high.all() | ~high.any()
                m.d.comb += v.eq(Mux(fits, red[k][:_MUL_IN_BITS].as_signed(), Mux(red[k][-1], bot, top)))
                m.d.sync += [pa[k].eq(v * r_m[k]), pb[k].eq(r_b[k] * r_mb[k]), m_s[k].eq(r_s[k]),
                             m_sb[k].eq(r_sb[k])]

        # --- stage S: rounding shift
        def rshift(prod, s):
            t = prod >> (s - 1)[:len(s)]
            return Mux(s == 0, prod, (t + 1) >> 1)

        s_v, s_final = Signal(), Signal()
        ra = [Signal(signed(len(pa[0])), name=f"ra{k}") for k in range(L)]
        rb = [Signal(signed(len(pb[0])), name=f"rb{k}") for k in range(L)]
        s_on = Signal(L)
        with m.If(en):
            m.d.sync += [s_v.eq(m_v), s_final.eq(m_final), s_on.eq(m_on)]
            for k in range(L):
                m.d.sync += [ra[k].eq(rshift(pa[k], m_s[k])), rb[k].eq(rshift(pb[k], m_sb[k]))]

        # --- stage O: add, saturate
        o_final = Signal()
        o_data = [Signal(signed(SIMD_OPERAND_BITS), name=f"o_data{k}") for k in range(L)]
        with m.If(en):
            m.d.sync += [o_valid.eq(s_v), o_final.eq(s_final)]
            for k in range(L):
                tot = Signal(signed(tot_bits), name=f"tot{k}")
                m.d.comb += tot.eq(ra[k] + rb[k])
                sat = Mux(tot < lo, lo, Mux(tot > hi, hi, tot))
                m.d.sync += o_data[k].eq(Mux(s_on[k], sat, 0))
        m.d.comb += [self.o.payload.data[k].eq(o_data[k]) for k in range(L)]
        m.d.comb += self.o.payload.last.eq(o_final)
        with m.If(o_valid & self.o.ready & o_final):
            m.d.sync += busy.eq(0)
        return m

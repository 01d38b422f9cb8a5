"""Random chip programs of the SIMD instructions, for the RTL chip's tests and ``make bench`` (docs/rtl.md).

:class:`Asm` draws random ``REQ``, ``ADD``, ``MAXP``, ``GAP``, ``CLMP``, ``DWC``
instructions (random geometry, constants and clamps; every instruction's
destination disjoint from its sources) into a :class:`model.chip.ChipProgram`
for buffers of the given depths; :func:`random_program` draws a whole one
(one of each instruction, then ``extra`` more) and :func:`random_buffers`
the ``ACT`` / ``ACC`` contents it runs on; :func:`random_dma_program` a program of
LOAD / STORE of every DMA buffer with its DRAM image. The same seed gives the same
program. Used by the conformance set's chip cases (:mod:`model.conformance`), tests/test_hw_chip.py (Amaranth simulator), the native chip
harness tests (tests/test_chip_native.py).
"""

from __future__ import annotations

import numpy as np

from dbpim.model import isa
from dbpim.model.spec import WEIGHT_MAX, WEIGHT_MIN
from dbpim.model.chip import ChipProgram

__all__ = ["Asm", "SIMD_OPS", "random_program", "random_buffers", "random_dma_program"]

#: The SIMD instructions :class:`Asm` draws.
SIMD_OPS = ("REQ", "ADD", "MAXP", "GAP", "CLMP", "DWC")


class Asm:
    """A random program: instructions, descriptors, constants, placed in buffers of ``depths`` (``ACT``,
    ``ACC`` words)."""

    def __init__(self, rng, depths: dict):
        self.rng, self.imem, self.dmem, self.cmem = rng, [], [], []
        self.depths = {"ACT": int(depths["ACT"]), "ACC": int(depths["ACC"])}

    def desc(self, op, **v):
        self.dmem.extend(isa.pack_descriptor(op, v))
        return len(self.dmem) // isa.DESC_WORDS - 1

    def const(self, a):
        self.cmem.extend(int(x) for x in a)
        return len(self.cmem) - len(a)

    def place(self, n, avoid):
        """An ACT base for ``n`` elements not overlapping the ``avoid`` ranges."""
        for _ in range(1000):
            a = int(self.rng.integers(0, self.depths["ACT"] - n + 1))
            if all(a + n <= lo or a >= hi for lo, hi in avoid):
                return a
        raise AssertionError("no room")

    def mults(self, n, s):
        """``n`` multipliers and shifts scaling by about ``2**-s`` (outputs spread over the clamp range)."""
        return self.rng.integers(1 << 29, 1 << 31, n), self.rng.integers(s, s + 3, n)

    def lohi(self):
        lo = int(self.rng.integers(-200, 0))
        return lo, int(self.rng.integers(lo, 200))

    def random(self, op):
        r = self.rng
        if op == "REQ":
            C, inner, outer = int(r.integers(1, 10)), int(r.integers(1, 5)), int(r.integers(1, 3))
            n = C * inner * outer
            s0 = int(r.integers(0, self.depths["ACC"] - n + 1))
            m, s = self.mults(C, 43)
            has_bias = int(r.integers(0, 2))
            lo, hi = self.lohi()
            d = self.desc("REQ", C=C, inner=inner, outer=outer, m_addr=self.const(m), s_addr=self.const(s),
                          bias_addr=self.const(r.integers(-5000, 5000, C)), has_bias=has_bias, lo=lo, hi=hi)
            self.imem.append(isa.encode("REQ", desc=d, dst=self.place(n, []), src0=s0))
        elif op in ("ADD", "CLMP"):
            n = int(r.integers(1, 40))
            a = self.place(n, [])
            lo, hi = self.lohi()
            if op == "CLMP":
                d = self.desc("CLMP", count=n, lo=lo, hi=hi)
                self.imem.append(isa.encode("CLMP", desc=d, dst=self.place(n, [(a, a + n)]), src0=a))
                return
            b = self.place(n, [])
            (ma, mb), (sa, sb) = self.mults(2, 31)
            d = self.desc("ADD", count=n, ma=ma, sa=sa, mb=mb, sb=sb, lo=lo, hi=hi)
            self.imem.append(isa.encode("ADD", desc=d, dst=self.place(n, [(a, a + n), (b, b + n)]), src0=a,
                                        src1=b))
        elif op in ("MAXP", "DWC"):  # each axis its own kernel, stride, padding, dilation
            C, H, W = int(r.integers(1, 6)), int(r.integers(3, 7)), int(r.integers(3, 7))
            k, st, dil = r.integers(1, 4, 2), r.integers(1, 3, 2), r.integers(1, 3, 2)
            p = [int(r.integers(0, int(kk) // 2 + 1 + (op == "DWC"))) for kk in k]  # DWC: up to a window of padding
            Ho = (H + 2 * p[0] - dil[0] * (k[0] - 1) - 1) // st[0] + 1
            Wo = (W + 2 * p[1] - dil[1] * (k[1] - 1) - 1) // st[1] + 1
            if Ho < 1 or Wo < 1:
                return self.random("CLMP")
            a = self.place(C * H * W, [])
            geo = dict(C=C, H=H, W=W, Ho=int(Ho), Wo=int(Wo), kernel=isa.pack_pair(*k), stride=isa.pack_pair(*st),
                       padding=isa.pack_pair(*p), dilation=isa.pack_pair(*dil))
            if op == "DWC":  # int8 weights, per-channel requant with a bias; an unsigned output range half the time
                m, s = self.mults(C, 39)
                lo, hi = (0, int(r.integers(1, 200))) if r.integers(0, 2) else self.lohi()
                geo.update(w_addr=self.const(r.integers(WEIGHT_MIN, WEIGHT_MAX + 1, C * int(k[0] * k[1]))), m_addr=self.const(m),
                           s_addr=self.const(s), bias_addr=self.const(r.integers(-5000, 5000, C)), lo=lo, hi=hi)
            d = self.desc(op, **geo)
            self.imem.append(isa.encode(op, desc=d, dst=self.place(int(C * Ho * Wo), [(a, a + C * H * W)]),
                                        src0=a))
        elif op == "GAP":
            C, HW = int(r.integers(1, 7)), int(r.integers(1, 10))
            a = self.place(C * HW, [])
            (m,), (s,) = self.mults(1, 33)
            lo, hi = self.lohi()
            d = self.desc("GAP", C=C, HW=HW, m=m, s=s, lo=lo, hi=hi)
            self.imem.append(isa.encode("GAP", desc=d, dst=self.place(C, [(a, a + C * HW)]), src0=a))
        else:
            raise ValueError(f"op: must be one of {', '.join(SIMD_OPS)}, got {op!r}")

    def program(self, act_words=None, acc_words=None):
        """The program so far, ending with HALT (``act_words`` / ``acc_words``: the whole buffers by default)."""
        return ChipProgram(imem=np.array(self.imem + [isa.encode("HALT")], np.uint64),
                           dmem=np.array(self.dmem, np.int64), cmem=np.array(self.cmem, np.int64),
                           wmem=np.zeros(1, np.int64), act_words=act_words or self.depths["ACT"],
                           acc_words=acc_words or self.depths["ACC"], input={}, output={}, macro=None, values={})


def random_program(rng, depths: dict, extra: int = 2) -> ChipProgram:
    """One of each instruction of :data:`SIMD_OPS` in order, then ``extra`` random ones, then HALT."""
    asm = Asm(rng, depths)
    for op in list(SIMD_OPS) + list(rng.choice(list(SIMD_OPS), extra)):
        asm.random(str(op))
    return asm.program()


def random_buffers(rng, depths: dict) -> tuple[np.ndarray, np.ndarray]:
    """Random ``ACT`` (-300..299) and ``ACC`` (+-2**20) contents of the whole buffers."""
    return rng.integers(-300, 300, int(depths["ACT"])), rng.integers(-(1 << 20), 1 << 20, int(depths["ACC"]))


def random_dma_program(rng, depths: dict, dram_bytes: int = 3 * 4096) -> tuple:
    """A random program of LOAD and STORE (:mod:`model.isa`) of every buffer of :data:`model.isa.DMA_BUFFERS`
    and the buffers and DRAM it starts from: ``(program, ACT, ACC, DRAM)``.

    Per buffer (in a random order): a LOAD from a random word-aligned DRAM address (one in three right before
    a 4 KiB boundary, so that a burst splits there), of 1 .. 70 elements (several bursts; an odd count of ACT
    elements), a CLMP of the loaded ACT elements, then a STORE of a random range of the buffer to another DRAM
    address; and a LOAD of 0 elements. The program's WMEM and CMEM images are random words of the whole
    buffers (``depths``), ACT / ACC :func:`random_buffers`, DRAM ``dram_bytes`` random bytes.
    """
    asm = Asm(rng, depths)
    dram = rng.integers(0, 256, int(dram_bytes), dtype=np.uint8)
    n_words = int(dram_bytes) // isa.DMA_BEAT_BYTES

    def dram_addr(n: int) -> int:
        words = isa.dma_beats(buf, n)
        if rng.integers(0, 3) == 0:  # ending past a 4 KiB boundary
            edge = isa.DMA_BOUNDARY // isa.DMA_BEAT_BYTES * int(rng.integers(1, max(2, n_words * 4 // isa.DMA_BOUNDARY)))
            w = max(0, min(n_words - words, edge - int(rng.integers(1, words + 1))))
        else:
            w = int(rng.integers(0, n_words - words + 1))
        return w * isa.DMA_BEAT_BYTES

    order = list(isa.DMA_BUFFERS)
    rng.shuffle(order)
    for buf in order:
        code, depth = isa.DMA_BUFFERS[buf], int(depths[buf])
        n = int(rng.integers(1, min(70, depth) + 1))
        base = int(rng.integers(0, depth - n + 1))
        d = asm.desc("LOAD", buffer=code, addr=dram_addr(n), count=n)
        asm.imem.append(isa.encode("LOAD", desc=d, dst=base))
        if buf == "ACT":
            lo, hi = asm.lohi()
            d = asm.desc("CLMP", count=n, lo=lo, hi=hi)
            asm.imem.append(isa.encode("CLMP", desc=d, dst=base, src0=base))
        n = int(rng.integers(1, min(70, depth) + 1))
        base = int(rng.integers(0, depth - n + 1))
        d = asm.desc("STORE", buffer=code, addr=dram_addr(n), count=n)
        asm.imem.append(isa.encode("STORE", desc=d, src0=base))
    buf = str(rng.choice(order))
    d = asm.desc("LOAD", buffer=isa.DMA_BUFFERS[buf], addr=0, count=0)
    asm.imem.append(isa.encode("LOAD", desc=d, dst=0))
    prog = asm.program()
    prog.wmem = rng.integers(-(1 << 31), 1 << 31, int(depths["WMEM"]))
    prog.cmem = rng.integers(-(1 << 31), 1 << 31, int(depths["CMEM"]))
    act, acc = random_buffers(rng, depths)
    return prog, act, acc, dram

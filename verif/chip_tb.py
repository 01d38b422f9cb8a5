"""The chip controller's coverage regression on the Amaranth simulator (docs/rtl.md): :func:`run_chip_coverage`.

One simulation of ``dbpim_chip`` (4 SIMD lanes, the shrunken small PIM core of
:func:`model.pim_programs.core_config`) through its host port, with a monitor
that samples :class:`verif.coverage.ChipCoverage` from the controller
(hw.chip_ctrl) every cycle: its state (read from the FSM's state signal), the
opcode it decodes, the cycles it is held (a SIMD input beat offered and not
taken, a result awaited with every operand sent, a PIM instruction
running) and the PIM core runs of each PIM instruction (its segments). The
stimulus:

1. a random program of every SIMD instruction (:mod:`model.chip_programs`; a REQ
   of more channels than lanes, so that constants load in several groups),
   a random PIM layer of several segments (:mod:`model.pim_programs`) and a
   random LOAD / STORE program on the ideal DRAM (:class:`verif.dram.AxiDram`,
   reset with the chip), each run to HALT: ``ACT`` / ``ACC`` equal
   :meth:`model.chip.GoldenChip.execute`;
2. a reset in each state of the controller (the first cycle the controller is
   in it, in the program that reaches it), STATUS after it idle (not busy, not
   done, no error), then both programs again, equal to the golden chip;
3. one program per STATUS.ERROR_CODE of :data:`model.isa.CHIP_ERRORS` but the
   reserved ones (:data:`model.isa.RESERVED_ERRORS`: code 2 while no opcode is
   pending) (an undefined opcode, lo > hi and a DWC weight outside int8, a sum
   past ACT's 16 bits, an address past ACT, a PIM descriptor of zero groups, a
   LOAD of an unknown buffer code, a LOAD past the DRAM: an error response),
   each with its code and PC.

Every check raises AssertionError naming what differs; the coverage is closed by
:func:`verif.coverage.check_closed`.
"""

from __future__ import annotations

import contextlib

import numpy as np

from dbpim.model import isa

__all__ = ["CHIP_DEPTHS", "LANES", "run_chip_coverage", "coverage_programs"]

#: SIMD lanes of the chip under test
LANES = 4
#: its buffers (words)
CHIP_DEPTHS = {"IMEM": 32, "DMEM": 16 * isa.DESC_WORDS, "CMEM": 256, "ACT": 512, "ACC": 512, "WMEM": 2048}
#: bytes of its DRAM (verif.dram.AxiDram, the ideal one)
DRAM_BYTES = 3 * 4096
_SEL = {n: i for i, n in enumerate(isa.HOST_TARGETS)}
_STATUS = isa.CHIP_REG["STATUS"]


def _pim_hw():
    from dbpim.model.config import load_config
    from dbpim.model.pim_programs import core_config
    return core_config(load_config("small"))


def coverage_programs(seed: int = 0):
    """The two programs of step 1 (``(program, ACT, ACC)`` each, the SIMD one first) and the error programs of
    step 3 (``(name, program, code)``), deterministic for ``seed``."""
    from dbpim.model.core import CoreParams
    from dbpim.model import chip_programs
    from dbpim.model.pim_programs import pim_program, random_pim
    rng = np.random.default_rng(seed)
    asm = chip_programs.Asm(rng, CHIP_DEPTHS)
    for op in chip_programs.SIMD_OPS:
        asm.random(op)
    m, s = asm.mults(9, 43)  # a REQ of 9 channels: three constant groups of 4 lanes
    d = asm.desc("REQ", C=9, inner=2, outer=1, m_addr=asm.const(m), s_addr=asm.const(s),
                 bias_addr=asm.const(rng.integers(-5000, 5000, 9)), has_bias=1, lo=-100, hi=100)
    asm.imem.append(isa.encode("REQ", desc=d, dst=asm.place(18, []), src0=0))
    simd = asm.program()
    act, acc = chip_programs.random_buffers(rng, CHIP_DEPTHS)
    hw = _pim_hw()
    params = CoreParams.from_config(hw)
    for _ in range(200):
        case = random_pim(rng, hw.macro, kind="conv2d")
        src, dst = int(rng.integers(0, 40)), int(rng.integers(0, 20))
        pim = pim_program(case, params, src=src, dst=dst, table_pad=0)
        if len(pim.wmem) <= CHIP_DEPTHS["WMEM"] and _segments(pim) > 1:
            break
    else:
        raise RuntimeError("no random PIM layer of several segments fits the chip's WMEM")
    pact, pacc = chip_programs.random_buffers(rng, CHIP_DEPTHS)
    pact[src:src + case.x.shape[1]] = case.x[0]
    dma, dact, dacc, dram = chip_programs.random_dma_program(rng, CHIP_DEPTHS, DRAM_BYTES)

    def one(word, op=None, **desc):
        a = chip_programs.Asm(np.random.default_rng(0), CHIP_DEPTHS)
        if op:
            a.desc(op, **desc)
        a.dmem.extend([0] * (isa.DESC_WORDS - len(a.dmem)))  # a whole descriptor (DMEM keeps older words)
        a.imem.append(word)
        return a.program()

    big = (1 << 31) - 1
    errors = [("undefined opcode", one(isa.encode("CLMP") & ~0xF | 0xF), 1),
              *([("pending", one(isa.encode(isa.RTL_PENDING[0])), 2)] if isa.RTL_PENDING else []),
              ("DWC weight outside int8", _dwc_bad_weight(), 3),
              ("lo > hi", one(isa.encode("CLMP", desc=0, dst=10, src0=0), "CLMP", count=3, lo=5, hi=1), 3),
              ("past 16 bits", one(isa.encode("GAP", desc=0, dst=10, src0=0), "GAP", C=1, HW=4, m=big, s=0,
                                   lo=-big - 1, hi=big), 4),
              ("past ACT", one(isa.encode("CLMP", desc=0, dst=CHIP_DEPTHS["ACT"] - 2, src0=0), "CLMP", count=3,
                               lo=-9, hi=9), 5),
              ("PIM of zero groups", one(isa.encode("PIM", desc=0)), 6),
              ("LOAD of buffer code 4", one(isa.encode("LOAD", desc=0), "LOAD", buffer=4, addr=0, count=1), 7),
              ("LOAD past the DRAM", one(isa.encode("LOAD", desc=0), "LOAD", buffer=0, addr=DRAM_BYTES - 4,
                                         count=4), 8)]
    return [(simd, act, acc), (pim, pact, pacc), (dma, dact, dacc, dram)], errors


def _dwc_bad_weight():
    """A 1-channel 2 x 2 DWC whose weight 128 is outside int8 (STATUS.ERROR_CODE 3)."""
    from dbpim.model import chip_programs
    a = chip_programs.Asm(np.random.default_rng(0), CHIP_DEPTHS)
    m, s, b, w = a.const([1 << 30]), a.const([31]), a.const([0]), a.const([1, 2, 128, 4])
    d = a.desc("DWC", C=1, H=3, W=3, Ho=2, Wo=2, kernel=isa.pack_pair(2, 2), stride=isa.pack_pair(1, 1), padding=0,
               dilation=isa.pack_pair(1, 1), w_addr=w, m_addr=m, s_addr=s, bias_addr=b, lo=-100, hi=100)
    a.imem.append(isa.encode("DWC", desc=d, dst=20, src0=0))
    return a.program()


def _segments(prog) -> int:
    """PIM core runs (segments) of a one-PIM-instruction program, as the golden chip counts them."""
    from dbpim.model.pim_image import read_block
    w = np.asarray(prog.wmem, np.int64)
    return sum(len(read_block(w, i).segments) for i in range(int(w[0])))


@contextlib.contextmanager
def _capture():
    """The chip controller and PIM controller instances and their elaborated modules, as the chip elaborates."""
    from dbpim.hw.chip_ctrl import ChipController
    from dbpim.hw.pim_ctrl import PIMController
    seen = {}
    saved = {cls: cls.elaborate for cls in (ChipController, PIMController)}

    def wrap(cls):
        def elaborate(self, platform):
            m = saved[cls](self, platform)
            seen[cls.__name__] = (self, m)
            return m
        return elaborate

    for cls in saved:
        cls.elaborate = wrap(cls)
    try:
        yield seen
    finally:
        for cls, f in saved.items():
            cls.elaborate = f


def _golden(prog, act, acc, dram=None):
    from dbpim.model.chip import GoldenChip
    a, c = act[None].copy(), acc[None].copy()
    GoldenChip.from_program(prog, LANES).execute(a, c, None if dram is None else dram.copy())
    return a[0], c[0]


def _signed(words, bits):
    a = np.array(words, np.int64)
    return np.where(a >= 1 << (bits - 1), a - (1 << bits), a)


def run_chip_coverage(*, seed: int = 0, cov=None, max_cycles: int = 20_000_000):
    """Run the regression of the module docstring, sampling ``cov`` (a :class:`verif.coverage.ChipCoverage`,
    a fresh one by default); returns it (the caller checks it closed)."""
    from amaranth.hdl import ClockDomain, Module
    from amaranth.sim import Simulator

    from dbpim.hw.chip import DBPIMChip
    from dbpim.hw.common import flat_ports
    from dbpim.hw.core import _config_params
    from dbpim.model.window import buffer_words
    from dbpim.verif.coverage import ChipCoverage, fsm_signal, fsm_states
    from dbpim.verif.dram import AxiDram

    cov = cov or ChipCoverage(prefix=f"chip{seed}")
    programs, errors = coverage_programs(seed)
    hw = _pim_hw()
    chip = DBPIMChip(lanes=LANES, simd_channels=16, depths=CHIP_DEPTHS, core=_config_params(hw),
                     buffer_words=buffer_words(hw.system.input_buffer_kib, hw.macro.n_comp, hw.macro.in_bits))
    top = Module()
    top.submodules.dut = chip
    top.domains.sync = cd = ClockDomain("sync")
    port = {n: v for n, (v, _) in flat_ports(chip).items()}
    port.update(clk=cd.clk, rst=cd.rst)
    with _capture() as seen:
        sim = Simulator(top)  # elaborates the design: the controllers are captured
    ctrl, cmod = seen["ChipController"]
    pimc, _ = seen["PIMController"]
    state_sig = fsm_signal(cmod)
    sr = ctrl.stream_regs
    names = fsm_states(cmod)
    now = {"state": "IDLE", "segments": 0, "done_prev": 0}
    lsb = {f[0]: sum(g[1] for g in isa.INSTR_FIELDS[:k]) for k, f in enumerate(isa.INSTR_FIELDS)}

    async def monitor(ctx):
        async for _ in ctx.tick():
            st = names.get(ctx.get(state_sig), "?")
            if ctx.get(cd.rst):
                now["state"] = "IDLE"
                continue
            if st == "DECODE":
                cov.decode((ctx.get(ctrl.imem_data) >> lsb["opcode"]) & 0xF)
            elif st == "STREAM" and ctx.get(ctrl.simd_i.valid) and not ctx.get(ctrl.simd_i.ready):
                cov.wait("simd_i")
            elif st == "SEND_DESC" and not ctx.get(ctrl.simd_d.ready):
                cov.wait("simd_d")
            elif st == "STREAM" and not (ctx.get(sr.more) or ctx.get(sr.wv) or ctx.get(ctrl.simd_o.valid)):
                cov.wait("simd_o")  # every operand sent, no result to write back yet
            elif st == "PIM":
                cov.wait("pim")
                done = ctx.get(pimc.core_done)
                if done and not now["done_prev"]:
                    now["segments"] += 1
                now["done_prev"] = done
            if now["state"] == "PIM" and st != "PIM":
                cov.pim_layer(now["segments"])
                now["segments"], now["done_prev"] = 0, 0
            now["state"] = st

    async def write(ctx, target, words):
        ctx.set(port["host_sel"], _SEL[target])
        ctx.set(port["host_we"], 1)
        for i, w in enumerate(words):
            ctx.set(port["host_addr"], i)
            ctx.set(port["host_wdata"], int(w) & ((1 << 64) - 1))
            await ctx.tick()
        ctx.set(port["host_we"], 0)

    async def read(ctx, target, n):
        ctx.set(port["host_sel"], _SEL[target])
        ctx.set(port["host_re"], 1)
        out = []
        for i in range(n):
            ctx.set(port["host_addr"], i)
            await ctx.tick()
            out.append(ctx.get(port["host_rdata"]))
        ctx.set(port["host_re"], 0)
        return out

    async def status(ctx):
        return _STATUS.decode((await _reg(ctx, "STATUS")))

    async def _reg(ctx, name):
        ctx.set(port["host_sel"], _SEL["REGS"])
        ctx.set(port["host_addr"], isa.CHIP_REG[name].word)
        ctx.set(port["host_re"], 1)
        await ctx.tick()
        ctx.set(port["host_re"], 0)
        return ctx.get(port["host_rdata"])

    async def load(ctx, prog, act, acc):
        for b in ("IMEM", "DMEM", "CMEM", "WMEM"):
            img = np.asarray(getattr(prog, b.lower())).reshape(-1)
            if img.size:
                await write(ctx, b, img)
        await write(ctx, "ACT", act)
        await write(ctx, "ACC", acc)

    async def start(ctx):
        ctx.set(port["host_sel"], _SEL["REGS"])
        ctx.set(port["host_addr"], isa.CHIP_REG["CTRL"].word)
        ctx.set(port["host_wdata"], isa.CHIP_REG["CTRL"].value(START=1))
        ctx.set(port["host_we"], 1)
        await ctx.tick()
        ctx.set(port["host_we"], 0)

    async def run(ctx, limit=2_000_000):
        await start(ctx)
        for _ in range(limit):
            await ctx.tick()
            if ctx.get(port["irq"]):
                st = await status(ctx)
                cov.status(st)
                return st
        raise AssertionError(f"seed {seed}: no DONE within {limit} cycles")

    async def check_run(ctx, k, label):
        prog, act, acc = programs[k][:3]
        ram.data[:] = programs[k][3] if len(programs[k]) > 3 else 0
        await load(ctx, prog, act, acc)
        st = await run(ctx)
        assert st["ERROR"] == 0 and st["DONE"] == 1, f"seed {seed}: {label}: STATUS {st}"
        want_act, want_acc = _golden(prog, act, acc, *programs[k][3:])
        got_act = _signed(await read(ctx, "ACT", CHIP_DEPTHS["ACT"]), 16)
        got_acc = _signed(await read(ctx, "ACC", CHIP_DEPTHS["ACC"]), 32)
        for name, got, want in (("ACT", got_act, want_act), ("ACC", got_acc, want_acc)):
            bad = np.flatnonzero(got != want)
            assert not bad.size, f"seed {seed}: {label}: {name} differs at {bad[:10]}: {got[bad[:10]]} vs " \
                                 f"{want[bad[:10]]}"

    async def main(ctx):
        for n in ("host_sel", "host_we", "host_re", "host_addr", "host_wdata"):
            ctx.set(port[n], 0)
        await ctx.tick()
        for k, label in enumerate(("the SIMD program", "the PIM layer", "the DMA program")):
            await check_run(ctx, k, label)
        # a reset in each controller state, in the program that reaches it (the SIMD one first; ACT and ACC keep
        # what the runs before left, the images are loaded only when the program changes)
        loaded = len(programs) - 1
        for state in names.values():
            for k in range(len(programs)):
                if k != loaded:
                    for b in ("IMEM", "DMEM", "CMEM", "WMEM"):
                        img = np.asarray(getattr(programs[k][0], b.lower())).reshape(-1)
                        if img.size and (b != "WMEM" or k != 0):
                            await write(ctx, b, img)
                    loaded = k
                await start(ctx)
                for _ in range(200_000):
                    if names.get(ctx.get(state_sig)) == state or ctx.get(port["irq"]):
                        break
                    await ctx.tick()
                if names.get(ctx.get(state_sig)) == state:
                    cov.reset_in(state)
                    ctx.set(cd.rst, 1)
                    await ctx.tick()
                    ctx.set(cd.rst, 0)
                    st = await status(ctx)
                    assert (st["BUSY"], st["DONE"], st["ERROR"]) == (0, 0, 0), \
                        f"seed {seed}: STATUS after a reset in {state}: {st}"
                    break
        for k, label in enumerate(("the SIMD program after the resets", "the PIM layer after the resets",
                                   "the DMA program after the resets")):
            await check_run(ctx, k, label)
        for label, prog, code in errors:
            await load(ctx, prog, np.zeros(CHIP_DEPTHS["ACT"], np.int64) + 1000,
                       np.zeros(CHIP_DEPTHS["ACC"], np.int64))
            st = await run(ctx)
            assert (st["ERROR"], st["ERROR_CODE"], st["PC"]) == (1, code, 0), f"seed {seed}: {label}: {st}"

    sim.add_clock(1e-8)
    sim.add_testbench(monitor, background=True)
    ram = AxiDram(np.zeros(DRAM_BYTES, np.uint8))

    async def dram(ctx):
        await ram.run(ctx, port)

    sim.add_testbench(dram, background=True)

    async def watchdog(ctx):
        for _ in range(max_cycles):
            await ctx.tick()
        raise AssertionError(f"seed {seed}: the regression did not finish within {max_cycles} cycles")

    sim.add_testbench(watchdog, background=True)
    sim.add_testbench(main)
    sim.run()
    return cov

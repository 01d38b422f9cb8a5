"""The chip's DMA (hw.dma, the LOAD / STORE of model.isa) against the golden chip on the Amaranth simulator
(docs/design.md §15, docs/rtl.md "Off-chip memory").

Random programs of LOAD / STORE of every DMA buffer (:func:`model.chip_programs.random_dma_program`) run on
``dbpim_chip`` with :class:`verif.dram.AxiDram` on its AXI4 master: with the ideal DRAM, ACT, ACC, WMEM,
CMEM and the DRAM after HALT equal :meth:`model.chip.GoldenChip.execute`'s and ``CYCLES`` the golden chip's
count (:func:`model.chip_timing.dma_cycles`); with random stalls on every channel the data are equal. Each
descriptor error and an error response stop the run with its STATUS.ERROR_CODE, where the golden chip raises.
The seed is in the test id. (The cocotbext-axi ``AxiRam`` run on Verilator is
tests/test_hw_chip_axi.py::test_cocotb_axi_dram_loads_and_stores.)
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("amaranth")
from dbpim.model import chip_programs, isa  # noqa: E402
from dbpim.model.chip import ChipError, GoldenChip, program_cycles  # noqa: E402
from dbpim.verif.dram import AxiDram  # noqa: E402
from dbpim.verif.tb import run_amaranth  # noqa: E402
from test_hw_chip import DEPTHS, LANES, _chip, _load, _read, _reg, _run, _signed, _write  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable"), pytest.mark.timeout(600)]

#: the SIMD tests' buffers, with room in WMEM for several bursts
DMA_DEPTHS = {**DEPTHS, "WMEM": 128}


def _golden(prog, act, acc, dram):
    chip = GoldenChip.from_program(prog, LANES)
    a, c, d = act[None].copy(), acc[None].copy(), dram.copy()
    chip.execute(a, c, d)
    return {"ACT": a[0], "ACC": c[0], "WMEM": np.asarray(chip._wmem), "CMEM": np.asarray(chip._cmem)}, d, chip


def _rtl(prog, act, acc, dram, *, stall=0.0, seed=0, error_ranges=(), read=True):
    """STATUS, CYCLES, the DMA buffers and the DRAM after running ``prog`` on the RTL chip."""
    mem = dram.copy()
    ram = AxiDram(mem, stall=stall, seed=seed, error_ranges=error_ranges)

    async def body(tb):
        await _load(tb, prog, act, acc)
        st = await _run(tb)
        cycles = await _reg(tb, "CYCLES")
        bufs = {}
        if read:
            for name in isa.DMA_BUFFERS:
                bufs[name] = _signed(await _read(tb, name, DMA_DEPTHS[name]), isa.BUFFERS[name].elem_bits)
        return st, cycles, bufs

    st, cycles, bufs = run_amaranth(_chip(LANES, DMA_DEPTHS), body, max_cycles=2_000_000, agents=[ram.run])
    return st, cycles, bufs, mem, ram


@pytest.mark.parametrize("seed, stall", [(0, 0.0)] + [pytest.param(s, p, marks=pytest.mark.slow)
                                                       for s, p in ((1, 0.4), (2, 0.0), (3, 0.0), (4, 0.6))])
def test_random_dma_programs_match_golden(seed, stall):
    rng = np.random.default_rng(seed)
    prog, act, acc, dram = chip_programs.random_dma_program(rng, DMA_DEPTHS)
    want, want_dram, chip = _golden(prog, act, acc, dram)
    st, cycles, got, got_dram, ram = _rtl(prog, act, acc, dram, stall=stall, seed=seed)
    print(f"seed {seed}, stall {stall}: {len(prog.imem)} instructions, {ram.bursts} bursts, status {st}, "
          f"{cycles} cycles (golden {chip.cycles})")
    assert st["ERROR"] == 0 and st["DONE"] == 1 and st["PC"] == len(prog.imem) - 1, f"seed {seed}: {st}"
    for name in isa.DMA_BUFFERS:
        bad = np.flatnonzero(got[name] != want[name])
        assert not bad.size, (f"seed {seed}: {name} differs at {bad[:10]}: rtl {got[name][bad[:10]]}, golden "
                              f"{want[name][bad[:10]]}")
    bad = np.flatnonzero(got_dram != want_dram)
    assert not bad.size, f"seed {seed}: DRAM differs at bytes {bad[:10]}"
    if stall == 0:  # the ideal DRAM: the one timing of model.chip_timing
        assert cycles == chip.cycles == program_cycles(prog, LANES), (seed, cycles, chip.cycles)


def _one(op, *, buffer=0, addr=0, count=4, base=0):
    """A program of one LOAD / STORE then HALT on the DMA test buffers."""
    asm = chip_programs.Asm(np.random.default_rng(0), DMA_DEPTHS)
    d = asm.desc(op, buffer=buffer, addr=addr, count=count)
    asm.imem.append(isa.encode(op, desc=d, **({"dst": base} if op == "LOAD" else {"src0": base})))
    prog = asm.program()
    prog.wmem, prog.cmem = np.zeros(DMA_DEPTHS["WMEM"], np.int64), np.zeros(DMA_DEPTHS["CMEM"], np.int64)
    return prog


#: (name, program, STATUS.ERROR_CODE, SLVERR byte ranges of the DRAM)
_ERRORS = [
    ("buffer code 4", lambda: _one("LOAD", buffer=4), 7, ()),
    ("negative count", lambda: _one("STORE", count=-1), 7, ()),
    ("DRAM address not aligned", lambda: _one("LOAD", addr=2), 7, ()),
    ("past ACT", lambda: _one("LOAD", base=DMA_DEPTHS["ACT"] - 3, count=4), 5, ()),
    ("past CMEM", lambda: _one("STORE", buffer=3, base=DMA_DEPTHS["CMEM"] - 1, count=2), 5, ()),
    ("past the 32-bit DRAM space", lambda: _one("LOAD", buffer=1, addr=(1 << 32) - 8, count=3), 7, ()),
    ("a read past the DRAM (DECERR)", lambda: _one("LOAD", buffer=2, addr=4096 - 8, count=5), 8, ()),
    ("a write answered SLVERR", lambda: _one("STORE", buffer=0, addr=64, count=40), 8, ((80, 84),)),
]


def test_dma_errors_stop_with_their_code():
    """Every case of :data:`_ERRORS` in one simulation (the chip elaborated once): its code and PC, and the golden
    chip raising on the same descriptor (an error response is the slave's alone)."""
    dram = np.arange(4096, dtype=np.int64).astype(np.uint8)
    act, acc = chip_programs.random_buffers(np.random.default_rng(5), DMA_DEPTHS)
    ram = AxiDram(dram.copy())
    cases = [(name, make(), code, errors) for name, make, code, errors in _ERRORS]

    async def body(tb):
        out = []
        await _load(tb, cases[0][1], act, acc)
        for name, prog, code, errors in cases:  # the same buffers; each program's instructions and descriptors
            ram.errors = list(errors)
            await _write(tb, "IMEM", prog.imem)
            await _write(tb, "DMEM", prog.dmem[:isa.DESC_WORDS])
            out.append(await _run(tb))
        return out

    got = run_amaranth(_chip(LANES, DMA_DEPTHS), body, max_cycles=2_000_000, agents=[ram.run])
    for (name, prog, code, errors), st in zip(cases, got):
        assert st["ERROR"] == 1 and st["ERROR_CODE"] == code and st["PC"] == 0, f"{name}: {st}"
        if not errors:
            with pytest.raises(ChipError, match=f"STATUS.ERROR_CODE {code}"):
                _golden(prog, act, acc, dram)

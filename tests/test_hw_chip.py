"""The RTL chip (hw.chip, hw.chip_ctrl) against the golden chip on the Amaranth simulator (docs/design.md §15).

Random programs of the SIMD instructions (REQ, ADD, MAXP, GAP, CLMP, DWC, HALT;
:mod:`model.chip_programs`) on random buffer contents run on ``dbpim_chip`` through its host port; ACT
after HALT must equal :meth:`model.chip.GoldenChip.execute` on the same
program (the seed is in the test id), and CYCLES the golden chip's cycle
count (``GoldenChip.simd_cycles``, from :mod:`model.chip_timing`). An undefined opcode, a DWC weight outside
int8 or past CMEM stop with their STATUS error code; a
reset in the middle of a program, then a reload and a rerun, gives the
golden result.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("amaranth")
from dbpim.hw.chip import DBPIMChip  # noqa: E402
from dbpim.model import isa  # noqa: E402
from dbpim.model.chip import GoldenChip  # noqa: E402
from dbpim.model.chip import program_cycles  # noqa: E402
from dbpim.model import chip_programs  # noqa: E402
from dbpim.verif.tb import run_amaranth  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable"), pytest.mark.timeout(600)]

LANES = 4
DEPTHS = {"IMEM": 32, "DMEM": 16 * isa.DESC_WORDS, "CMEM": 256, "ACT": 512, "ACC": 256, "WMEM": 16}
SEL = {n: i for i, n in enumerate(isa.HOST_TARGETS)}
STATUS = isa.CHIP_REG["STATUS"]


async def _write(tb, target, words):
    tb.set("host_sel", SEL[target])
    tb.set("host_we", 1)
    for i, w in enumerate(words):
        tb.set("host_addr", i)
        tb.set("host_wdata", int(w) & ((1 << 64) - 1))
        await tb.tick()
    tb.set("host_we", 0)


async def _read(tb, target, n):
    tb.set("host_sel", SEL[target])
    tb.set("host_re", 1)
    out = []
    for i in range(n):
        tb.set("host_addr", i)
        await tb.tick()
        out.append(tb.get("host_rdata"))
    tb.set("host_re", 0)
    return out


async def _load(tb, prog, act, acc):
    await _write(tb, "IMEM", prog.imem)
    await _write(tb, "DMEM", prog.dmem)
    await _write(tb, "CMEM", prog.cmem)
    await _write(tb, "WMEM", prog.wmem)
    await _write(tb, "ACT", act)
    await _write(tb, "ACC", acc)


async def _start(tb):
    tb.set("host_sel", SEL["REGS"])
    tb.set("host_addr", isa.CHIP_REG["CTRL"].word)
    tb.set("host_wdata", isa.CHIP_REG["CTRL"].value(START=1))
    tb.set("host_we", 1)
    await tb.tick()
    tb.set("host_we", 0)


async def _reg(tb, name):
    tb.set("host_sel", SEL["REGS"])
    tb.set("host_addr", isa.CHIP_REG[name].word)
    tb.set("host_re", 1)
    await tb.tick()
    tb.set("host_re", 0)
    return tb.get("host_rdata")


async def _status(tb):
    return STATUS.decode(await _reg(tb, "STATUS"))


async def _run(tb, limit=200_000):
    await _start(tb)
    for _ in range(limit):
        await tb.tick(16)
        if tb.get("irq"):
            return await _status(tb)
    raise AssertionError("no DONE")


def _signed(words, bits):
    a = np.array(words, np.int64)
    return np.where(a >= 1 << (bits - 1), a - (1 << bits), a)


def _buffers(rng):
    return chip_programs.random_buffers(rng, DEPTHS)


def _asm(rng):
    return chip_programs.Asm(rng, DEPTHS)


def _golden(prog, act, acc, lanes=LANES, cycles=False):
    """ACT after the golden chip runs ``prog`` (and, with ``cycles``, the golden chip's cycle count)."""
    a, c = act[None].copy(), acc[None].copy()
    chip = GoldenChip.from_program(prog, lanes)
    chip.execute(a, c)
    return (a[0], chip.simd_cycles) if cycles else a[0]


def _tiny_core():
    """The small configuration with the least PIM core (one macro, one entry per memory): the SIMD programs'
    chip, quicker to build."""
    import dataclasses

    from dbpim.model.config import load_config
    from dbpim.model.pim_programs import core_config
    h = load_config("small")
    return core_config(dataclasses.replace(h, system=dataclasses.replace(h.system, macros_per_core=1)),
                       tile_slots=1, descriptors=1, mask_windows=1, out_pixels=1)


def _chip(lanes=LANES, depths=DEPTHS, hw=None, simd_channels=16):
    """The chip with ``lanes`` SIMD lanes and the PIM core and input buffer of configuration ``hw`` (a name or a
    HwConfig; None: :func:`_tiny_core`)."""
    from dbpim.hw.core import _config_params
    from dbpim.model.config import load_config
    from dbpim.model.window import buffer_words
    h = _tiny_core() if hw is None else load_config(hw) if isinstance(hw, str) else hw
    return DBPIMChip(lanes=lanes, simd_channels=simd_channels, depths=depths, core=_config_params(h),
                     buffer_words=buffer_words(h.system.input_buffer_kib, h.macro.n_comp, h.macro.in_bits))


@pytest.mark.parametrize("seed, lanes", [(0, LANES), (1, LANES), (2, LANES),
                                         (3, 1),
                                         (4, 3),
                                         (5, 16)])
def test_random_simd_programs_match_golden(seed, lanes):
    rng = np.random.default_rng(seed)
    prog = chip_programs.random_program(rng, DEPTHS)
    act, acc = _buffers(rng)
    want, want_cycles = _golden(prog, act, acc, lanes, cycles=True)

    async def body(tb):
        await _load(tb, prog, act, acc)
        st = await _run(tb)
        cycles = await _reg(tb, "CYCLES")
        got = _signed(await _read(tb, "ACT", DEPTHS["ACT"]), 16)
        return st, cycles, got

    st, cycles, got = run_amaranth(_chip(lanes), body, max_cycles=2_000_000)
    print(f"seed {seed}, lanes {lanes}: {len(prog.imem)} instructions, status {st}, {cycles} cycles")
    assert st["ERROR"] == 0 and st["DONE"] == 1 and st["BUSY"] == 0, st
    assert st["PC"] == len(prog.imem) - 1
    bad = np.flatnonzero(got != want)
    assert not bad.size, f"seed {seed}: ACT differs at {bad[:10]}: rtl {got[bad[:10]]}, golden {want[bad[:10]]}"
    assert cycles == program_cycles(prog, lanes), (cycles, program_cycles(prog, lanes))
    # one timing for the unit: the golden chip counts the RTL's cycles
    assert cycles == want_cycles, f"seed {seed}: RTL CYCLES {cycles}, golden chip {want_cycles}"


def _one_instruction_programs(rng):
    """Programs of one SIMD instruction each, every opcode of :data:`model.chip_programs.SIMD_OPS`: random ones,
    and the walks whose last window beat waits for the write-back (a channel group after a fuller one on a 1 x 1
    window; windows all at padding) or whose group is partial."""
    progs = []
    for op in chip_programs.SIMD_OPS:
        for _ in range(2):
            asm = _asm(rng)
            asm.random(op)
            progs.append(asm.program())
    asm = _asm(rng)
    m, s, b = asm.const([1 << 30] * 9), asm.const([31] * 9), asm.const([7] * 9)
    d = asm.desc("REQ", C=9, inner=3, outer=2, m_addr=m, s_addr=s, bias_addr=b, has_bias=1, lo=-100, hi=100)
    asm.imem.append(isa.encode("REQ", desc=d, dst=300, src0=0))
    progs.append(asm.program())
    asm = _asm(rng)
    m, s, b, w = asm.const([1 << 30] * 5), asm.const([31] * 5), asm.const([0] * 5), asm.const([1] * 5)
    d = asm.desc("DWC", C=5, H=2, W=2, Ho=4, Wo=4, kernel=isa.pack_pair(1, 1), stride=isa.pack_pair(1, 1),
                 padding=isa.pack_pair(1, 1), dilation=isa.pack_pair(1, 1), w_addr=w, m_addr=m, s_addr=s,
                 bias_addr=b, lo=-100, hi=100)
    asm.imem.append(isa.encode("DWC", desc=d, dst=300, src0=0))
    progs.append(asm.program())
    return progs


def test_each_simd_opcode_takes_its_timing_formula():
    """One instruction a run, every opcode: CYCLES equals model.chip_timing.instruction_cycles + HALT (a formula
    that drifted from the RTL on one opcode, or on the write-back's wait, fails here by name)."""
    from dbpim.model.chip_timing import HALT_CYCLES, instruction_cycles
    rng = np.random.default_rng(21)
    progs = _one_instruction_programs(rng)
    act, acc = _buffers(rng)

    async def body(tb):
        out = []
        for prog in progs:
            await _load(tb, prog, act, acc)
            st = await _run(tb)
            out.append((st, await _reg(tb, "CYCLES"), _signed(await _read(tb, "ACT", DEPTHS["ACT"]), 16)))
        return out

    got = run_amaranth(_chip(), body, max_cycles=2_000_000)
    for prog, (st, cycles, act_after) in zip(progs, got):
        ins = isa.decode(int(prog.imem[0]))
        desc = isa.unpack_descriptor(ins["op"], prog.dmem[ins["desc"] * isa.DESC_WORDS:][:isa.DESC_WORDS])
        want = instruction_cycles(ins["op"], desc, LANES) + HALT_CYCLES
        assert st["ERROR"] == 0 and st["DONE"] == 1, (ins["op"], desc, st)
        assert cycles == want, f"{ins['op']} {desc}: RTL CYCLES {cycles}, model.chip_timing {want}"
        np.testing.assert_array_equal(act_after, _golden(prog, act, acc), err_msg=f"{ins['op']} {desc}")


def test_reset_mid_program_then_rerun():
    from dbpim.model.chip_timing import instruction_cycles
    rng = np.random.default_rng(11)
    asm = _asm(rng)
    for op in ("MAXP", "REQ", "ADD"):
        asm.random(op)
    prog = asm.program()
    act, acc = _buffers(rng)
    want = _golden(prog, act, acc)
    # in the middle of the first instruction's stream (its constants, descriptor and set-up are 18 cycles)
    first = isa.decode(int(prog.imem[0]))
    mid_cycles = instruction_cycles(first["op"], isa.unpack_descriptor(first["op"], prog.dmem[
        first["desc"] * isa.DESC_WORDS:][:isa.DESC_WORDS]), LANES) // 2 + 9

    async def body(tb):
        await _load(tb, prog, act, acc)
        await _start(tb)
        await tb.tick(mid_cycles)
        mid = await _status(tb)
        tb.set("rst", 1)
        await tb.tick()
        tb.set("rst", 0)
        after = await _status(tb)
        await _write(tb, "ACT", act)
        st = await _run(tb)
        return mid, after, st, _signed(await _read(tb, "ACT", DEPTHS["ACT"]), 16)

    mid, after, st, got = run_amaranth(_chip(), body, max_cycles=2_000_000)
    assert mid["BUSY"] == 1 and after["BUSY"] == 0 and after["DONE"] == 0
    assert st["ERROR"] == 0 and st["DONE"] == 1
    np.testing.assert_array_equal(got, want)


def _dwc(w, w_addr=None):
    """A 1-channel 2 x 2 DWC over a 3 x 3 input with weights ``w`` (at ``w_addr``: default after its constants)."""
    asm = _asm(np.random.default_rng(0))
    m, s, b = asm.const([1 << 30]), asm.const([31]), asm.const([0])
    a = asm.const(w)
    d = asm.desc("DWC", C=1, H=3, W=3, Ho=2, Wo=2, kernel=isa.pack_pair(2, 2), stride=isa.pack_pair(1, 1),
                 padding=0, dilation=isa.pack_pair(1, 1), w_addr=a if w_addr is None else w_addr, m_addr=m,
                 s_addr=s, bias_addr=b, lo=-100, hi=100)
    asm.imem.append(isa.encode("DWC", desc=d, dst=20, src0=0))
    return asm.program()


@pytest.mark.parametrize("make, code", [
    (lambda: isa.encode("CLMP") & ~0xF | 0xF, 1),   # opcode 15: undefined
    (lambda: isa.encode("DWC"), 3),                 # DWC on a zero descriptor: no channels
    (lambda: _dwc([1, 2, 128, 4]), 3),              # a weight outside int8
    (lambda: _dwc([1, 2, -129, 4]), 3),
    (lambda: _dwc([1, 2, 3, 4], w_addr=DEPTHS["CMEM"] - 2), 5),  # weights past CMEM
])
def test_error_codes(make, code):
    word = make()
    if isinstance(word, int):
        asm = _asm(np.random.default_rng(0))
        asm.imem.append(word)
        prog = asm.program()
    else:
        prog = word
        acts = np.zeros(DEPTHS["ACT"], np.int64)
        acts[:9] = 1
        with pytest.raises(Exception, match="outside int8" if code == 3 else None):
            _golden(prog, acts, np.zeros(DEPTHS["ACC"], np.int64))
    if code == 1:
        with pytest.raises(isa.IsaError):
            isa.decode(word)

    async def body(tb):
        await _load(tb, prog, np.zeros(4, np.int64), np.zeros(4, np.int64))
        return await _run(tb)

    st = run_amaranth(_chip(), body, max_cycles=100_000)
    assert st == {"BUSY": 0, "DONE": 1, "ERROR": 1, "ERROR_CODE": code, "PC": 0}, st


def _req_consts(rng, case):
    """A REQ of ``C = LANES + 2`` channels (two channel groups, the second of two lanes) reading its ``m``, ``s``,
    ``bias`` from CMEM with one fault of ``case`` (``None``: none), then HALT."""
    C = LANES + 2
    asm = _asm(rng)
    m, s = asm.mults(C, 8)
    bias = rng.integers(-1000, 1000, C)
    has_bias = 0 if case == "bias past CMEM, no bias" else 1
    if case == "m of lane 1 of group 2":
        m[LANES + 1] = -1                                       # below 0: outside [0, 2**31)
    if case == "s of lane 1":
        s[1] = 63                                               # past the shift's 62
    s_addr, b_addr = asm.const(s), asm.const(bias)
    if case == "m past CMEM":                                   # its last channel's m at CMEM's depth
        asm.const([0] * (DEPTHS["CMEM"] - C + 1 - len(asm.cmem)))
        m = m[:-1]
    m_addr = asm.const(m)
    if case and case.startswith("bias past CMEM"):
        b_addr = DEPTHS["CMEM"] - 2                             # its third channel's bias at CMEM's depth
    d = asm.desc("REQ", C=C, inner=3, outer=1, m_addr=m_addr, s_addr=s_addr, bias_addr=b_addr, has_bias=has_bias,
                 lo=-2000, hi=2000)
    asm.imem.append(isa.encode("REQ", desc=d, dst=100, src0=0))
    return asm.program()


@pytest.mark.parametrize("case, code", [("m of lane 1 of group 2", 3), ("s of lane 1", 3), ("m past CMEM", 5),
                                        ("bias past CMEM", 5), ("bias past CMEM, no bias", 0)])
def test_constants_read_a_word_a_cycle_stop_at_a_bad_one_then_a_rerun_is_right(case, code):
    """REQ's per-channel constants, read from CMEM a word a cycle (each read issued while the word before is
    taken): a multiplier or shift outside its range stops the run with code 3, a read past CMEM with code 5 (a
    bias past it without has_bias reads nothing: no error); the next program, loaded into the same chip, gives the
    golden chip's ACT and CYCLES (nothing of the stopped read is left over)."""
    rng = np.random.default_rng(5)
    bad = _req_consts(rng, case)
    good = [_req_consts(np.random.default_rng(k), None) for k in (6, 7)]
    act, acc = _buffers(rng)
    if code == 3:
        with pytest.raises(ValueError, match=r"\(REQ\)\.[ms]: must be in"):
            _golden(bad, act, acc)
    want = [_golden(p, act, acc, cycles=True) for p in [bad] * (code == 0) + good]

    async def body(tb):
        out = []
        for prog in [bad] + good:
            await _load(tb, prog, act, acc)
            st = await _run(tb)
            out.append((st, await _reg(tb, "CYCLES"), _signed(await _read(tb, "ACT", DEPTHS["ACT"]), 16)))
        return out

    runs = run_amaranth(_chip(), body, max_cycles=2_000_000)
    st = runs[0][0]
    assert (st["ERROR"], st["ERROR_CODE"] if st["ERROR"] else 0) == (code != 0, code), (case, st)
    for (st, cycles, got), (act_want, cycles_want) in zip(runs[code != 0:], want):
        assert st["ERROR"] == 0 and st["DONE"] == 1, (case, st)
        assert cycles == cycles_want, (case, cycles, cycles_want)
        np.testing.assert_array_equal(got, act_want)


def test_bad_descriptor_is_an_error_not_a_number():
    """CLMP with lo > hi: the SIMD core rejects it (code 3); a result past 16 bits: code 4."""
    asm = _asm(np.random.default_rng(0))
    d = asm.desc("CLMP", count=3, lo=5, hi=1)
    asm.imem.append(isa.encode("CLMP", desc=d, dst=10, src0=0))
    prog = asm.program()
    asm2 = _asm(np.random.default_rng(0))
    d = asm2.desc("GAP", C=1, HW=4, m=(1 << 31) - 1, s=0, lo=-(1 << 31), hi=(1 << 31) - 1)
    asm2.imem.append(isa.encode("GAP", desc=d, dst=10, src0=0))
    prog2 = asm2.program()
    act = np.full(8, 1000, np.int64)
    with pytest.raises(Exception):
        _golden(prog2, np.concatenate([act, np.zeros(DEPTHS["ACT"] - 8, np.int64)]), np.zeros(DEPTHS["ACC"], np.int64))

    async def body(tb):
        await _load(tb, prog, act, np.zeros(4, np.int64))
        a = await _run(tb)
        await _load(tb, prog2, act, np.zeros(4, np.int64))
        return a, await _run(tb)

    a, b = run_amaranth(_chip(), body, max_cycles=100_000)
    assert (a["ERROR"], a["ERROR_CODE"]) == (1, 3), a
    assert (b["ERROR"], b["ERROR_CODE"]) == (1, 4), b


def test_docs_register_table_is_the_data():
    from pathlib import Path
    text = (Path(__file__).parents[1] / "docs" / "rtl.md").read_text()
    start = "<!-- chip registers: model.isa.chip_register_markdown(), checked by tests/test_hw_chip.py -->\n"
    body = text[text.index(start) + len(start):text.index("<!-- end chip registers -->")]
    assert body == isa.chip_register_markdown()


def test_sizes_from_the_configuration():
    from dbpim.model.config import load_config
    hw = load_config("small")
    chip = DBPIMChip.from_config(hw)
    assert chip.lanes == hw.system.simd_lanes
    assert chip.depths["ACT"] == int(hw.system.input_buffer_kib * 1024) // 2
    assert chip.depths["ACC"] == int(hw.system.output_buffer_kib * 1024) // 4
    with pytest.raises(ValueError, match="depths.ACT"):
        DBPIMChip(lanes=4, depths={"ACT": 0, "ACC": 4}, core={}, buffer_words=4)


# --------------------------------------------------------------------------- PIM instructions

def _pim_case(seed, kind, banded=False, **core):
    """A random PIM instruction (model.pim_programs) on the shrunken small core (``core``: its keys changed, e.g.
    ``result_lanes=2``), its program and buffers; with ``banded`` its layers split into 2+ row bands (compiled for
    a smaller input buffer than the chip's)."""
    import dataclasses

    from dbpim.model.core import CoreParams
    from dbpim.model.config import load_config
    from dbpim.model.pim_programs import core_config, pim_program, random_banded, random_pim
    hw = core_config(load_config("small"))
    hw = dataclasses.replace(hw, core=dataclasses.replace(hw.core, **core))
    rng = np.random.default_rng(seed)
    case, buf, _ = random_banded(rng, hw.macro, kind=kind) if banded else (random_pim(rng, hw.macro, kind=kind),
                                                                          None, None)
    src, dst = int(rng.integers(0, 40)), int(rng.integers(0, 20))
    prog = pim_program(case, CoreParams.from_config(hw), src=src, dst=dst, table_pad=int(rng.integers(0, 2)),
                       buffer_inputs=buf)
    act = rng.integers(-300, 300, PIM_DEPTHS["ACT"])
    act[src:src + case.x.shape[1]] = case.x[0]
    acc = rng.integers(-(1 << 20), 1 << 20, PIM_DEPTHS["ACC"])
    return hw, case, prog, act, acc, dst


PIM_DEPTHS = {"IMEM": 4, "DMEM": isa.DESC_WORDS, "CMEM": 4, "ACT": 512, "ACC": 512, "WMEM": 2048}


def _pim_run(hw, prog, act, acc, reset_after=None):
    """Load and run ``prog`` on the chip (the PIM core of ``hw``); with ``reset_after`` cycles, reset it that far
    into a first run, then load ACC again and rerun. Returns (status, CYCLES, ACT, ACC[, status mid-run])."""
    assert len(prog.wmem) <= PIM_DEPTHS["WMEM"]

    async def body(tb):
        await _load(tb, prog, act, acc)
        mid = None
        if reset_after is not None:
            await _start(tb)
            await tb.tick(reset_after)
            mid = await _status(tb)
            tb.set("rst", 1)
            await tb.tick()
            tb.set("rst", 0)
            await _write(tb, "ACC", acc)
        st = await _run(tb)
        cycles = await _reg(tb, "CYCLES")
        return (st, cycles, _signed(await _read(tb, "ACT", PIM_DEPTHS["ACT"]), 16),
                _signed(await _read(tb, "ACC", PIM_DEPTHS["ACC"]), 32), mid)

    return run_amaranth(_chip(LANES, PIM_DEPTHS, hw), body, max_cycles=5_000_000)


@pytest.mark.parametrize("seed, kind, banded", [(1, "conv2d", False),
                                                pytest.param(2, "linear", False, marks=pytest.mark.slow),
                                                pytest.param(3, "conv2d", False, marks=pytest.mark.slow),
                                                pytest.param(4, None, False, marks=pytest.mark.slow),
                                                pytest.param(5, None, False, marks=pytest.mark.slow),
                                                pytest.param(11, "conv2d", True, marks=pytest.mark.slow),
                                                pytest.param(8, "linear", True, marks=pytest.mark.slow),
                                                pytest.param(9, None, True, marks=pytest.mark.slow),
                                                pytest.param(10, None, True, marks=pytest.mark.slow)])
def test_random_pim_matches_golden(seed, kind, banded):
    """A random PIM layer (stride, padding, dilation, groups, signed inputs, several segments; ``banded``: in 2+
    row bands): ACC equals the golden chip's (and so model.layer's), CYCLES equals program_cycles. Seed:
    DBPIM_SEED overrides."""
    _random_pim_equals_golden(seed, kind, banded, {})


def _random_pim_equals_golden(seed, kind, banded, core: dict):
    """A random PIM layer (:func:`_pim_case` with the core options ``core``) on the Amaranth chip: STATUS done,
    ACC and ACT equal to the golden chip's, the golden ACC to the layer's, CYCLES to program_cycles. Seed:
    DBPIM_SEED overrides ``seed``."""
    import os
    seed = int(os.environ.get("DBPIM_SEED", seed))
    hw, case, prog, act, acc, dst = _pim_case(seed, kind, banded, **core)
    want_act, want_acc = act[None].copy(), acc[None].copy()
    chip = GoldenChip.from_program(prog, LANES)
    chip.execute(want_act, want_acc)
    np.testing.assert_array_equal(want_acc[0, dst:dst + case.want.shape[1]], case.want[0])
    st, cycles, got_act, got_acc, _ = _pim_run(hw, prog, act, acc)
    print(f"DBPIM_SEED={seed}{f' {core}' if core else ''}: {case.desc}, status {st}, {cycles} cycles")
    assert st["ERROR"] == 0 and st["DONE"] == 1, (seed, st)
    bad = np.flatnonzero(got_acc != want_acc[0])
    assert not bad.size, f"DBPIM_SEED={seed}: ACC differs at {bad[:10]}: {got_acc[bad[:10]]} vs {want_acc[0][bad[:10]]}"
    np.testing.assert_array_equal(got_act, want_act[0])
    assert cycles == chip.cycles == program_cycles(prog, LANES, act, acc), (f"DBPIM_SEED={seed}", cycles, chip.cycles)


THROUGHPUT = {"tile_banks": 2, "out_banks": 2, "in_windows": 2, "result_lanes": 2}  # paper-throughput's options


@pytest.mark.parametrize("seed, kind, banded, core", [
    (21, "conv2d", False, THROUGHPUT),
    pytest.param(22, "linear", False, THROUGHPUT, marks=pytest.mark.slow),
    pytest.param(23, None, True, THROUGHPUT, marks=pytest.mark.slow),
    pytest.param(24, "conv2d", False, {"result_lanes": 2}, marks=pytest.mark.slow),
    pytest.param(25, "conv2d", True, {"in_windows": 2}, marks=pytest.mark.slow),
    pytest.param(26, "linear", False, {"in_windows": 2}, marks=pytest.mark.slow)])
def test_random_pim_on_the_throughput_core_matches_golden(seed, kind, banded, core):
    """The small core with the throughput core's options (``core``; hw/configs/paper-throughput.yaml): a random
    PIM layer's ACC (and ACT) equal the golden chip's, CYCLES equals program_cycles (model.chip_timing.pim_cycles).
    Seed: DBPIM_SEED overrides."""
    _random_pim_equals_golden(seed, kind, banded, core)


@pytest.mark.slow
def test_reset_mid_pim_then_rerun():
    hw, case, prog, act, acc, dst = _pim_case(6, "conv2d")
    want_act, want_acc = act[None].copy(), acc[None].copy()
    GoldenChip.from_program(prog, LANES).execute(want_act, want_acc)
    st, cycles, got_act, got_acc, mid = _pim_run(hw, prog, act, acc, reset_after=150)
    assert mid["BUSY"] == 1 and mid["PC"] == 0, mid
    assert st["ERROR"] == 0 and st["DONE"] == 1, st
    np.testing.assert_array_equal(got_acc, want_acc[0])
    assert cycles == program_cycles(prog, LANES, act, acc)


@pytest.mark.slow
def test_pim_input_out_of_range_is_error_4():
    hw, case, prog, act, acc, dst = _pim_case(7, "linear")
    src = isa.decode(int(prog.imem[0]))["src0"]
    act = act.copy()
    act[src + case.x.shape[1] - 1] = 256  # past both 8-bit ranges
    with pytest.raises(Exception, match="range"):
        GoldenChip.from_program(prog, LANES).execute(act[None].copy(), acc[None].copy())
    st, *_ = _pim_run(hw, prog, act, acc)
    assert (st["ERROR"], st["ERROR_CODE"], st["PC"]) == (1, 4, 0), st


@pytest.mark.slow
def test_pim_sum_past_acc_is_error_4(monkeypatch):
    """A core whose sums are wider than ACC's elements (``paper``: 33-bit partial sums, 32-bit ACC): a sum that
    does not fit stops the chip with ERROR_CODE 4 at the PIM, where the golden chip raises. ACC is narrowed below
    the small core's sums so that a small layer passes it."""
    from dataclasses import replace

    from dbpim.model.core import CoreParams
    hw, case, prog, act, acc, dst = _pim_case(7, "linear")
    top = int(np.abs(case.want).max())
    bits = (top - 1).bit_length()  # 2**(bits - 1) < top: the sum +-top does not fit the signed element
    assert 2 <= bits < CoreParams.from_config(hw).psum_width, (bits, top)
    monkeypatch.setitem(isa.BUFFERS, "ACC", replace(isa.BUFFERS["ACC"], elem_bits=bits))
    with pytest.raises(Exception, match=rf"signed {bits}-bit elements \(range\)"):
        GoldenChip.from_program(prog, LANES).execute(act[None].copy(), acc[None].copy())
    st, *_ = _pim_run(hw, prog, act, acc & ((1 << bits) - 1))
    assert (st["ERROR"], st["ERROR_CODE"], st["PC"]) == (1, 4, 0), st


@pytest.mark.slow
def test_demo_cnn_on_the_rtl_chip(real_artifacts):
    """The demo SmallCNN, one digit, end to end on the RTL chip: logits equal GoldenChip.run's, CYCLES the
    golden chip's count (model.chip_timing)."""
    import time

    from dbpim.model.artifact import load
    from dbpim.model.chip import quantize_input
    art = load(real_artifacts[0])
    golden = GoldenChip(art)
    p = golden.program
    hw = art.hw
    depths = {"IMEM": 32, "DMEM": len(p.dmem), "CMEM": len(p.cmem), "WMEM": len(p.wmem),
              "ACT": max(p.act_words, 1), "ACC": max(p.acc_words, 1)}
    pytest.importorskip("torch")
    from dbpim.model.torch.data import load_data
    x = load_data("digits", 0).x_test.numpy()[:1]  # the first test digit
    want = golden.run(x)
    act = np.zeros(depths["ACT"], np.int64)
    q = quantize_input(x, golden.plan.quants[golden.plan.input]).reshape(-1)
    act[p.input["addr"]:p.input["addr"] + q.size] = q
    out_n = int(np.prod(p.output["shape"]))

    async def body(tb):
        await _load(tb, p, act, np.zeros(1, np.int64))
        st = await _run(tb)
        cycles = await _reg(tb, "CYCLES")
        tb.set("host_sel", SEL["ACT"])
        tb.set("host_re", 1)
        out = []
        for i in range(out_n):
            tb.set("host_addr", p.output["addr"] + i)
            await tb.tick()
            out.append(tb.get("host_rdata"))
        tb.set("host_re", 0)
        return st, cycles, _signed(out, 16)

    t0 = time.time()
    chip = DBPIMChip.from_config(hw, **depths)  # system.cores PIM cores, as the image is compiled for
    st, cycles, got = run_amaranth(chip, body, max_cycles=20_000_000)
    print(f"demo CNN on the RTL chip, one digit: logits {got.tolist()}, {cycles} cycles (golden {golden.cycles}), "
          f"{time.time() - t0:.0f} s")
    assert st["ERROR"] == 0 and st["DONE"] == 1, st
    np.testing.assert_array_equal(got, want.reshape(-1))
    assert cycles == golden.cycles

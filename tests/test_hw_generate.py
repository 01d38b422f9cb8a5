"""Verilog generator: deterministic output, one module per block, manifest, SRAM black boxes, clear errors."""

import json
import re

import pytest

pytest.importorskip("amaranth")
from dbpim.cli import main  # noqa: E402
from dbpim.hw.generate import BLOCKS, generate  # noqa: E402
from dbpim.model.config import load_config  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def _modules(text):
    return re.findall(r"^module\s+(\S+?)\s*[(#]", text, re.M)


@pytest.mark.slow  # two full generations; every other test here generates the small design once
def test_generate_small_deterministic(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    man = generate(load_config("small"), a)
    generate(load_config("small"), b)
    for blk in BLOCKS:
        fa, fb = a / f"dbpim_{blk}.v", b / f"dbpim_{blk}.v"
        assert fa.read_bytes() == fb.read_bytes()
        assert _modules(fa.read_text()) == [f"dbpim_{blk}"]  # one module per file, named like it
    assert (a / "manifest.json").read_bytes() == (b / "manifest.json").read_bytes()
    m = json.loads((a / "manifest.json").read_text())
    assert m == json.loads(json.dumps(man))
    assert m["blocks"]["macro"]["latency"] == 2  # small: no adder-tree pipeline
    ports = {p["name"]: p for p in m["blocks"]["macro"]["ports"]}
    assert ports["x__payload"] == {"name": "x__payload", "dir": "input", "width": 32}
    assert ports["o__valid"]["dir"] == "output"
    assert ports["w_cells"]["width"] == 16 and ports["w_idx"]["width"] == 32  # one whole cell row per write
    assert m["sram"] == "behavioural"


def test_macro_hierarchy_is_readable(tmp_path):
    """The macro instantiates one module per distinct block (n_col adder trees, n_comp*n_col LPUs)."""
    man = generate(load_config("small"), tmp_path, blocks=["macro"])
    src = man["blocks"]["macro"]["sources"]
    assert src[-1] == "dbpim_macro.v"
    assert set(src) == {"dbpim_ipu_held.v", "dbpim_adder_tree.v", "dbpim_lpu.v", "dbpim_accumulator.v", "dbpim_macro.v"}
    for f in src:
        assert (tmp_path / f).is_file()
    text = (tmp_path / "dbpim_macro.v").read_text()
    assert _modules(text) == ["dbpim_macro"] and "\\dbpim_macro." not in text  # no uniquified copies
    assert len(re.findall(r"^\s*dbpim_adder_tree\s", text, re.M)) == 4  # small: n_col = 4
    assert len(re.findall(r"^\s*dbpim_lpu\s", text, re.M)) == 16  # n_comp * n_col


def test_sram_blackbox(tmp_path):
    man = generate(load_config("small"), tmp_path, blocks=["macro"], sram="blackbox")
    assert man["sram"] == "blackbox"
    src = man["blocks"]["macro"]["sources"]
    assert {"dbpim_sram_cells.v", "dbpim_sram_meta.v", "dbpim_sram_1rw_model.v"} <= set(src)
    text = (tmp_path / "dbpim_macro.v").read_text()
    assert re.search(r"dbpim_sram_cells\s+#\(", text) and re.search(r"dbpim_sram_meta\s+#\(", text)
    wrapper = (tmp_path / "dbpim_sram_meta.v").read_text()
    for port in ("clk", "cs", "we", "addr", "wdata", "rdata"):
        assert re.search(rf"\b{port}\b", wrapper)
    assert "parameter WIDTH = 48" in wrapper and "parameter DEPTH = 4" in wrapper  # 4 x 4 cells x 3 bits, 4 rows
    assert "reg [WIDTH-1:0] words" in (tmp_path / "dbpim_sram_1rw_model.v").read_text()


def test_bad_sram_mode(tmp_path, capsys):
    assert main(["verilog", "--hw", "small", "--out", str(tmp_path / "o"), "--sram", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--sram" in err and not (tmp_path / "o").exists()
    with pytest.raises(ValueError, match="sram"):
        generate(load_config("small"), tmp_path / "p", sram="nope")
    assert not (tmp_path / "p").exists()


def test_bad_yaml_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nmacro:\n  n_comp: 6\n")
    out = tmp_path / "out"
    assert main(["verilog", "--hw", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "n_comp" in err and str(bad) in err
    assert not out.exists()


def test_unknown_block(tmp_path):
    assert main(["verilog", "--hw", "small", "--out", str(tmp_path / "o"), "--blocks", "nope"]) == 2
    assert main(["verilog", "--hw", "small", "--out", str(tmp_path / "o"), "--blocks", ""]) == 2
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("name", ["paper", "small"])
def test_switch_lanes_come_from_the_macro_yaml_key(name):
    """The RTL switch and the performance model read the same `macro.lanes` (paper: 16 = n_comp)."""
    from dbpim.hw.generate import build_block
    from dbpim.model.config import load_config
    m = load_config(name).macro
    sw = build_block("switch", m)
    assert sw.parameters["lanes"] == m.lanes and sw.parameters["window"] == m.n_comp
    if name == "paper":
        assert m.lanes == m.n_comp == 16


def test_core_top_axi_ports_and_register_map(tmp_path):
    """dbpim_core: AXI port names (no "__"), the register map in the manifest and in docs/rtl.md."""
    from pathlib import Path

    from dbpim.model.config import load_config
    from dbpim.model.core import CoreParams

    m = generate(load_config("small"), tmp_path, blocks=["core"])["blocks"]["core"]
    names = {p["name"] for p in m["ports"]}
    assert not any("__" in n for n in names)
    for n in ("aclk", "aresetn", "s_axil_awaddr", "s_axil_wdata", "s_axil_bvalid", "s_axil_araddr", "s_axil_rdata",
              "s_axis_tdata", "s_axis_tvalid", "s_axis_tready", "m_axis_tdata", "m_axis_tvalid", "m_axis_tready",
              "m_axis_tlast", "irq"):
        assert n in names, n
    widths = {p["name"]: p["width"] for p in m["ports"]}
    assert widths["s_axis_tdata"] == 4 * 8 and widths["m_axis_tdata"] == 32 and widths["s_axil_wdata"] == 32
    assert widths["s_axil_awaddr"] == m["addr_width"]
    assert m["parameters"]["macros"] == 2 and m["parameters"]["lanes"] == 2  # system.macros_per_core, macro.lanes
    regs = {r["name"]: r for r in m["register_map"]}
    assert regs["CTRL"]["address"] == 0 and regs["TILE"]["entries"] == 64 * 4  # one cell row per entry
    md = (tmp_path / "dbpim_core_regs.md").read_text()  # PeakRDL's, from the generated SystemRDL
    for r in m["register_map"]:  # a register as "### CTRL register", a memory as "## DESC register file"
        assert f"### {r['name']} register" in md or f"## {r['name']} register file" in md, r["name"]
    assert m["register_files"] == {"systemrdl": "dbpim_core.rdl", "c_header": "dbpim_core.h",
                                   "ip_xact": "dbpim_core.xml", "markdown": "dbpim_core_regs.md"}
    assert all((tmp_path / f).is_file() for f in m["register_files"].values())
    assert m["digest"] == load_config("small").digest() and m["digest_word"] == int(m["digest"][:8], 16)
    doc = (Path(__file__).resolve().parent.parent / "docs" / "rtl.md").read_text()
    table = doc.split("checked by tests/test_hw_generate.py -->\n")[1].split("<!-- end register map -->")[0]
    assert table == CoreParams.from_config(load_config("paper")).map.markdown()


_ARRAY_RE = re.compile(r"^\s*reg\s+(?:signed\s+)?(?:\[\d+:\d+\]\s+)?(\S+)\s*\[", re.M)  # an inferred memory
_INST_RE = re.compile(r"^\s*(\S*dbpim_sram_(\w+))\s+#\((.*?)\)\s*(\S+)\s*\(", re.M | re.S)


def _memories_of(folder, man):
    """(instances found in the Verilog, the memory list) of a generated folder."""
    found = {}
    for f in sorted(folder.glob("*.v")):
        text = f.read_text()
        if "dbpim_sram_" in f.name:  # a wrapper (instantiates its model) or a model
            continue
        for mod in _modules(text):
            for inst in _INST_RE.finditer(text):
                params = dict(re.findall(r"\.(\w+)\((?:32'd)?(\d+)\)", inst.group(3)))
                found.setdefault(inst.group(1), []).append((f"{mod}.{inst.group(4)}", params))
    lst = json.loads((folder / man["files"]["memory_list"]).read_text())
    return found, lst


@pytest.mark.parametrize("tile_banks", [1, 2])
def test_blackbox_every_memory_is_a_listed_wrapper(tmp_path, tile_banks):
    """--sram blackbox: the emitted Verilog (parsed) has no inferred array and no initial block outside the
    behavioural models; every wrapper instance is in the memory list with the list's sizes, and the list names
    exactly the memories read combinationally as not SRAM-ready (read latency 0)."""
    import dataclasses

    from dbpim.hw.sram import MEMORIES
    from dbpim.model.spec import BUS_BITS

    cfg = load_config("small")
    cfg = dataclasses.replace(cfg, core=dataclasses.replace(cfg.core, tile_banks=tile_banks))
    man = generate(cfg, tmp_path, sram="blackbox")
    models = {f"{m}.v" for m in ("dbpim_sram_1rw_model", "dbpim_sram_1r1w_model", "dbpim_sram_2rw_model")}
    for f in sorted(tmp_path.glob("*.v")):
        text = f.read_text()
        assert not re.search(r"^\s*initial\b", text, re.M), f"{f.name}: an initial block"
        if f.name not in models:
            assert _ARRAY_RE.findall(text) == [], f"{f.name}: inferred memories {_ARRAY_RE.findall(text)}"
            assert not re.search(r"^\s*reg\s[^;]*=", text.replace("reg \\$auto$verilog_backend", ""), re.M), \
                f"{f.name}: a register with an initial value"
    found, lst = _memories_of(tmp_path, man)
    assert lst["format"] == "dbpim-memories" and lst["config"] == "small"
    listed = {e["module"]: e for e in lst["memories"]}
    assert set(found) == set(listed)  # every wrapper instantiated is listed, every listed one instantiated
    for module, insts in found.items():
        e = listed[module]
        assert sorted(i for i, _ in insts) == e["instances"]
        for _, params in insts:
            assert int(params["DEPTH"]) == e["depth"] and int(params["WIDTH"]) == e["width"]
            assert int(params["ADDR_W"]) == e["addr_width"] == max(1, (e["depth"] - 1).bit_length())
        wrapper = (tmp_path / f"{module}.v").read_text()
        assert f"parameter DEPTH = {e['depth']}" in wrapper and f"parameter WIDTH = {e['width']}" in wrapper
        assert f"{module}.v" in man["files"].values() or any(
            f"{module}.v" in b["sources"] for b in man["blocks"].values())
        assert e["sram_ready"] == (e["read_latency"] == 1) and e["ports"] == MEMORIES[e["kind"]].ports
    kinds = {e["kind"]: e for e in lst["memories"]}
    assert set(kinds) == set(MEMORIES)
    assert all(e["sram_ready"] and e["read_latency"] == 1 for e in kinds.values())  # every memory reads synchronously
    c, mc = cfg.core, cfg.macro
    assert (kinds["desc"]["depth"], kinds["tile"]["depth"], kinds["map"]["depth"], kinds["mask"]["depth"]) == (
        c.descriptors, c.tile_slots * mc.n_row, c.tile_slots, c.mask_windows)
    assert kinds["desc"]["write_enables"] == kinds["desc"]["width"] // 8 and kinds["desc"]["width"] % BUS_BITS == 0
    assert kinds["cells"]["instances"] == ["dbpim_macro.cells"] + (  # the macro block; the core's with 2 banks
        [] if tile_banks == 1 else ["dbpim_macro_banks2.cells0", "dbpim_macro_banks2.cells1"])
    assert kinds["orf"]["instances"] == [f"dbpim_pim_core.orf{k}" for k in range(cfg.system.macros_per_core)]
    from dbpim.model.window import buffer_words
    words = buffer_words(cfg.system.input_buffer_kib, mc.n_comp, mc.in_bits)
    assert (kinds["wbuf"]["depth"], kinds["wbuf"]["width"], kinds["wbuf"]["instances"]) == (  # a full copy per lane
        words, mc.n_comp * mc.in_bits, sorted(f"dbpim_window.wbuf{e}" for e in range(mc.n_comp)))
    from dbpim.hw.chip import DBPIMChip
    from dbpim.model import isa
    depths = DBPIMChip.from_config(cfg).depths
    for name, words in depths.items():  # the chip's buffers: one memory each, an element a word
        e = kinds[name.lower()]
        assert (e["depth"], e["width"], e["instances"]) == (words, isa.BUFFERS[name].elem_bits,
                                                             [f"dbpim_chip.{name.lower()}"]), name
    assert kinds["wmem"]["ports"] == "2rw" and kinds["imem"]["ports"] == "1r1w"
    # PIM cores 1 ..: a pass queue and a result buffer each (small: 2 cores)
    extra = range(1, cfg.system.cores)
    assert (kinds["pim_queue"]["depth"], kinds["pim_queue"]["instances"]) == (
        4 * c.descriptors, [f"dbpim_pim_ctrl.queue{k}" for k in extra])
    assert (kinds["pim_result"]["depth"], kinds["pim_result"]["width"], kinds["pim_result"]["instances"]) == (
        cfg.system.result_buffer_words, isa.BUFFERS["ACC"].elem_bits, [f"dbpim_pim_ctrl.result{k}" for k in extra])


def test_no_initial_values_in_either_sram_mode(tmp_path):
    """Behavioural memories stay inferred arrays, but no generated module zero-fills a memory or gives a register
    a power-up value (the reset does; a simulator starts them random)."""
    man = generate(load_config("small"), tmp_path, blocks=["core", "dbmu"])
    assert "memory_list" not in man["files"]
    arrays = set()
    for f in tmp_path.glob("*.v"):
        text = f.read_text()
        assert not re.search(r"^\s*initial\b", text, re.M), f.name
        arrays |= set(_ARRAY_RE.findall(text))
    assert {"desc_mem", "tile_mem", "map_mem", "mask_mem", "orf0", "orf1", "xbuf", "cells", "meta"} <= arrays


def test_default_prefix_is_the_configuration_name(tmp_path, capsys):
    """dbpim verilog without --prefix names every module and file after the configuration, so two design points
    never collide; --prefix '' keeps the plain names. The two cores identify themselves apart: ID is the
    register format (the same), DIGEST the configuration's (different)."""
    from dbpim.model.spec import CORE_ID, digest_word

    tops = {}
    for name in ("small", "paper"):
        out = tmp_path / name
        assert main(["verilog", "--hw", name, "--out", str(out), "--blocks", "lpu,core"]) == 0
        man = json.loads((out / "manifest.json").read_text())
        assert man["prefix"] == name
        for b in man["blocks"].values():
            assert b["top"].startswith(f"{name}_dbpim_") and all(s.startswith(f"{name}_dbpim_") for s in b["sources"])
        tops[name] = man["blocks"]["core"]
        header = (out / f"{name}_dbpim_core.h").read_text()
        T = f"{name}_dbpim_core".upper()
        assert f"#define {T}__ID__VALUE_reset 0x{CORE_ID:x}" in header
        assert f"#define {T}__DIGEST__VALUE_reset 0x{digest_word(load_config(name).digest()):x}" in header
    assert tops["small"]["digest_word"] != tops["paper"]["digest_word"]
    files = [set(p.name for p in (tmp_path / n).iterdir()) - {"manifest.json", ".dbpim-outputs"} for n in tops]
    assert not files[0] & files[1]
    out = tmp_path / "plain"
    assert main(["verilog", "--hw", "small", "--out", str(out), "--blocks", "lpu", "--prefix", ""]) == 0
    assert json.loads((out / "manifest.json").read_text())["blocks"]["lpu"]["top"] == "dbpim_lpu"


def test_a_zero_memory_is_emitted_without_its_init_and_the_same_verilog(monkeypatch):
    """hw.common.Emitter leaves the ``$meminit`` cell of an all-zero memory out of Amaranth's RTLIL (generation
    time) and keeps one with contents; the Verilog equals Amaranth's own, after strip_initial_values."""
    from amaranth.back import rtlil, verilog
    from amaranth.hdl import Module
    from amaranth.lib import memory, wiring
    from amaranth.lib.wiring import In, Out

    from dbpim.hw import common
    from dbpim.hw.common import Emitter, strip_initial_values

    class Mems(wiring.Component):
        parameters = {}
        addr: In(6)
        zero: Out(12)
        rom: Out(12)

        def elaborate(self, platform):
            m = Module()
            m.submodules.z = z = memory.Memory(shape=12, depth=64, init=[])
            m.submodules.r = r = memory.Memory(shape=12, depth=64, init=[(5 * i) % 4096 for i in range(64)])
            w = z.write_port()
            m.d.comb += [w.addr.eq(self.addr), w.data.eq(self.addr), w.en.eq(1)]
            for mem, out in ((z, self.zero), (r, self.rom)):
                rd = mem.read_port()
                m.d.comb += [rd.addr.eq(self.addr), out.eq(rd.data)]
            return m

    seen = []
    original = rtlil.ModuleEmitter.emit_memory

    def spy(self, idx, cell):
        seen.append(any(cell.init))
        return original(self, idx, cell)
    monkeypatch.setattr(common, "_EMIT_MEMORY", spy)
    ours = Emitter().convert(Mems(), name="mems").text
    assert seen == [True] and rtlil.ModuleEmitter.emit_memory is original  # only the memory with contents
    rtlil.ModuleEmitter.emit_memory = spy
    try:
        theirs = verilog.convert(Mems(), name="mems", emit_src=False)
    finally:
        rtlil.ModuleEmitter.emit_memory = original
    assert seen == [True, False, True] and theirs.count("initial") == 2
    assert ours == strip_initial_values(theirs, "mems") and "initial" not in ours

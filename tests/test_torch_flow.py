"""End-to-end flow (tiny schedule), report, determinism and CLI errors."""

import json

import numpy as np
import pytest
import torch

from dbpim.model import artifact as gart
from flow_helpers import run_flow_kw
from dbpim.model.torch.flow import total_sparsity

torch.set_num_threads(2)
TINY = dict(epochs=4, finetune_epochs=0.5, qat_epochs=0.5, n_train=256, n_test=128, progress=False,
            hw="hw/configs/small.yaml", width=0.5)


@pytest.fixture(scope="module")
def flow_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("flow")
    return out, run_flow_kw("smallcnn", "digits", 0.5, out=out, seed=0, **TINY)


def test_flow_report_and_artifact(flow_run):
    out, rep = flow_run
    acc = rep["accuracy"]
    for k in ("float", "block_pruned", "fta_qat", "final", "block_pruned_same_total"):
        assert 0.0 <= acc[k] <= 1.0, k
    assert acc["float"] > 0.3  # learns something even on the tiny schedule
    assert rep["total_sparsity"] == pytest.approx(0.75)
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["accuracy"] == acc
    for f in ("report.md", "phi_hist.png", "sparsity.png", "storage.png"):
        assert (out / f).stat().st_size > 0, f
    assert (out / "report.md").read_text().startswith("# DB-PIM compile report")
    layers = rep["layers"]
    assert [r["name"] for r in layers][:2] == ["features.0.conv", "features.1.conv"]
    for r in layers:
        assert r["fta_quantized"] and not r["passed_through"]
        assert sum(r["phi_hist"]) == r["N"] and 0 <= r["sparsity"] <= 1
        assert 0 <= r["bit_sparsity"] <= 1 and r["storage_bits_per_weight"] <= 8.5
    art = gart.load(rep["artifact"])
    assert len(art.mapped_layers()) == len(layers)
    assert all(layer.x is not None and layer.x.shape[0] == 4 for layer in art.mapped_layers())
    assert art.macro.n_col == 4
    from dbpim.model.config import load_config
    assert art.hw is not None and art.hw.digest() == load_config(TINY["hw"]).digest()  # what it was compiled for


def test_flow_deterministic(flow_run):
    """A second run of the same flow (seed, schedule, data, configuration) gives the same accuracies, weights and
    recorded inputs: the second run is the session's cached demo artifact (conftest.real_artifact("smallcnn"):
    these options without the comparison and the plots, run once for every test that uses it)."""
    from conftest import REAL_NETWORKS, real_artifact
    assert {k: v for k, v in REAL_NETWORKS["smallcnn"].items() if k not in ("model", "data")} == \
        {k: v for k, v in TINY.items() if k not in ("hw", "progress")}, "the cached run is not this flow's schedule"
    out, rep = flow_run
    art2 = real_artifact("smallcnn", "small")
    rep2 = json.loads((art2.parent / "report.json").read_text())
    for k in ("float", "block_pruned", "fta_qat", "final"):
        assert rep2["accuracy"][k] == rep["accuracy"][k]
    a, b = gart.load(rep["artifact"]), gart.load(art2)
    for la, lb in zip(a.mapped_layers(), b.mapped_layers()):
        np.testing.assert_array_equal(la.w, lb.w)
        np.testing.assert_array_equal(la.x, lb.x)


def test_flow_passes_depthwise_through(tmp_path):
    rep = run_flow_kw("mobilenetv2", "digits", 0.5, out=tmp_path, seed=0, compare=False, plots=False,
                   **{**TINY, "width": 0.125, "n_train": 64, "n_test": 32, "epochs": 0.25,
                      "finetune_epochs": 0.25, "qat_epochs": 0.25})
    pt = [r for r in rep["layers"] if r["passed_through"]]
    assert pt and all(not r["fta_quantized"] and "depthwise" in r["note"] and r["macs"] > 0 for r in pt)
    art = gart.load(rep["artifact"])
    assert any(layer.kind == "simd" and layer.op == "depthwise" for layer in art.layers)


def test_total_sparsity():
    assert total_sparsity(0.0, 2) == 0.5 and total_sparsity(0.5, 1) == pytest.approx(0.875)


@pytest.mark.parametrize("argv, needle", [
    (["--model", "lenet"], "dbpim compile: model: unknown name 'lenet'; allowed: smallcnn"),
    (["--sparsity", "1.5"], "dbpim compile: --sparsity: must be a finite number in [0, 1), got 1.5"),
    (["--hw", "nope.yaml"], "dbpim compile: --hw: nope.yaml: file not found"),
    (["--data", "mnist"], "dbpim compile: data: unknown dataset 'mnist'"),
    (["--phi-max", "3"], "dbpim compile: phi_max: must be an integer in [1, 2], got 3"),
    (["--model", "x.pt"], "dbpim compile: model: x.pt: file not found"),
    (["--epochs", "-1"], "dbpim compile: --epochs: must be a finite number in [0, 10000], got -1.0"),
    (["--data", "cifar10:/nonexistent"], "data: /nonexistent: no such directory"),
    (["--batch-size", "0"], "dbpim compile: --batch-size: must be an integer in [1, 65536], got 0"),
    (["--width", "0"], "dbpim compile: --width: must be a finite number in (0, 16.0], got 0.0"),
])
def test_cli_errors(argv, needle, tmp_path, capsys):
    from dbpim.cli import main
    assert main(["compile"] + argv + ["--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1, err


def test_cli_state_dict(tmp_path, capsys):
    from dbpim.cli import main
    from dbpim.model.torch.zoo import get_model
    torch.save(get_model("smallcnn", 10, width=0.5).state_dict(), tmp_path / "m.pt")
    assert main(["compile", "--model", str(tmp_path / "m.pt"), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "model_class: required" in capsys.readouterr().err
    rc = main(["compile", "--model", str(tmp_path / "m.pt"), "--model-class", "smallcnn", "--width", "0.5",
               "--epochs", "0", "--finetune-epochs", "0.2", "--qat-epochs", "0.2", "--no-compare", "--hw", "small",
               "--out", str(tmp_path / "o"), "--quiet"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "artifact:" in out
    assert "speedup" in out and "energy saving" in out and "utilization" in out  # ends with the bench summary
    assert (tmp_path / "o" / "artifact" / "manifest.yaml").exists()


def test_flow_options_name_the_field():
    from dbpim.model.torch.flow import FlowError, FlowOptions
    for kw, needle in (({"epochs": float("inf")}, "epochs: must be a finite number"),
                       ({"lr": float("nan")}, "lr: must be a finite number in (0, 10.0]"),
                       ({"seed": -1}, "seed: must be an integer"), ({"width": 1e6}, "width: must be"),
                       ({"n_record": 0}, "n_record: must be an integer"), ({"phi_max": 1.5}, "phi_max: must be"),
                       ({"phi_min": 3, "phi_max": 2}, "phi_min: must be")):
        with pytest.raises(FlowError) as e:
            FlowOptions(**kw)
        assert str(e.value).startswith(needle) and "--" not in str(e.value), str(e.value)


def test_run_flow_takes_objects(tmp_path):
    from dbpim.model.torch.flow import FlowError, FlowOptions, run_flow
    with pytest.raises(FlowError, match="hw: must be an HwConfig"):
        run_flow("smallcnn", "digits", "paper", FlowOptions(), out=tmp_path / "o")
    assert not (tmp_path / "o").exists()


REPR = r"\[\d[\d, ]*\]|\{'|\{\"|\bNone\b|\bTrue\b|\bFalse\b|np\.\w+\("


def test_report_md_has_no_python_reprs(flow_run):
    import re
    out, rep = flow_run
    md = (out / "report.md").read_text()
    assert not re.search(REPR, md), re.search(REPR, md).group(0)
    assert json.loads((out / "report.json").read_text())["artifact"] == "artifact"  # relative to the report
    assert (out / "artifact" / "manifest.yaml").is_file()


@pytest.mark.parametrize("tensor, value", [("features.0.conv.weight", float("nan")),
                                           ("features.1.bn.running_var", float("inf"))])
def test_non_finite_network_fails_before_training(tmp_path, monkeypatch, tensor, value):
    from dbpim.model.torch import flow
    from dbpim.model.torch.zoo import get_model

    def no_training(*a, **k):
        raise AssertionError("training started")
    monkeypatch.setattr(flow, "train", no_training)
    net = get_model("smallcnn", 10, width=0.5)
    with torch.no_grad():
        dict(list(net.named_parameters()) + list(net.named_buffers()))[tensor].view(-1)[0] = value
    layer = tensor.rpartition(".")[0]
    with pytest.raises(flow.FlowError, match=f"layer {layer}: {tensor.rpartition('.')[2]} holds NaN or inf") as e:
        run_flow_kw(net, "digits", 0.5, out=tmp_path / "o", **TINY)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "o").exists()


def test_progress_bars_only_on_a_terminal(capsys):
    from dbpim.model.torch.train import train
    from dbpim.model.torch.zoo import get_model
    x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 10, (32,))
    train(get_model("smallcnn", 10, width=0.25), x, y, epochs=1, batch_size=8, progress=True)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""  # captured streams are not terminals

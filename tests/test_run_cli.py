"""``dbpim run``: a compiled network on inputs from its artifact alone (model.predict through the CLI)."""

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from dbpim import cli  # noqa: E402


def test_run_equals_the_flow_integer_accuracy_on_its_test_samples(real_artifacts, tmp_path, capsys):
    art = real_artifacts[0]  # the demo CNN compiled with 128 test samples
    assert cli.main(["run", "--artifact", str(art), "--data", "digits", "--samples", "128",
                     "--out", str(tmp_path / "o")]) == 0
    r = json.loads((tmp_path / "o" / "run.json").read_text())
    assert r["samples"] == 128 and r["outputs"] == [10] and len(r["predictions"]) == 128
    assert r["accuracy"] == r["accuracy_compiled"]  # the same samples, the same integer network
    assert "accuracy" in capsys.readouterr().out


def test_run_reads_an_npz_with_numpy_and_refuses_bad_inputs_in_one_line(real_artifacts, tmp_path, capsys):
    art = real_artifacts[0]
    from dbpim.model.torch.data import load_data
    ds = load_data("digits", 0)
    np.savez(tmp_path / "d.npz", x=ds.x_test.numpy()[:16], y=ds.y_test.numpy()[:16])
    assert cli.main(["run", "--artifact", str(art), "--data", str(tmp_path / "d.npz"),
                     "--out", str(tmp_path / "o")]) == 0
    assert json.loads((tmp_path / "o" / "run.json").read_text())["samples"] == 16
    np.savez(tmp_path / "bad.npz", x=np.full((2, 1, 8, 8), np.nan, np.float32), y=np.zeros(2, np.int64))
    for data, msg in ((str(tmp_path / "none.npz"), "file not found"), (str(tmp_path / "bad.npz"), "NaN"),
                      ("nosuchdata", "unknown dataset")):
        capsys.readouterr()
        assert cli.main(["run", "--artifact", str(art), "--data", data, "--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("dbpim run: ") and "\n" not in err and msg in err, err
    assert not (tmp_path / "x").exists()

"""``dbpim run``: a compiled network on inputs from its artifact alone (model.predict through the CLI)."""

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from dbpim import cli  # noqa: E402


def test_run_goes_through_the_golden_chip_and_equals_the_flow_on_its_test_samples(real_artifacts, tmp_path, capsys):
    art = real_artifacts[0]  # the demo CNN compiled with 128 test samples
    assert cli.main(["run", "--artifact", str(art), "--data", "digits", "--samples", "128",
                     "--out", str(tmp_path / "o")]) == 0
    r = json.loads((tmp_path / "o" / "run.json").read_text())
    assert r["samples"] == 128 and r["outputs"] == [10] and len(r["predictions"]) == 128
    assert r["logits_equal"] is True  # golden chip == torch integer path, bit for bit
    acc = r["accuracy"]
    assert acc["chip"] == acc["torch_int"] == r["accuracy_compiled_integer_only"]  # the flow's integer-only path
    assert acc["float_requant"] == r["accuracy_compiled"]  # the same samples, the same frozen network
    assert r["cycles_model"]["pim_macro_cycles"] > 0 and r["cycles_model"]["simd_cycles"] > 0
    assert r["program"]["by_opcode"]["PIM"] == r["program"]["by_opcode"]["REQ"] == 5 and r["program"]["by_opcode"]["HALT"] == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("smallcnn: golden chip (") and "PIM macro-cycles" in out[0]
    assert "torch integer path" in out[1] and out[1].endswith("golden chip's: yes")
    assert "float-requant reference" in out[2]


def test_run_refuses_an_op_the_chip_lacks_in_one_line(real_artifacts, tmp_path, capsys):
    import shutil

    import yaml
    art = tmp_path / "art"
    shutil.copytree(real_artifacts[0], art)
    man = yaml.safe_load((art / "manifest.yaml").read_text())
    op = next(o for o in man["program"]["ops"] if o["op"] == "maxpool2d")
    for k in ("kernel", "stride", "padding", "dilation"):
        op.pop(k)
    op.update(op="unsupported", what="features.2: Softmax")
    (art / "manifest.yaml").write_text(yaml.safe_dump(man, sort_keys=False))
    assert cli.main(["run", "--artifact", str(art), "--data", "digits", "--samples", "4",
                     "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dbpim run: op 'features_2' (features.2: Softmax) cannot run on the chip") and "\n" not in err
    assert not (tmp_path / "o").exists()


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

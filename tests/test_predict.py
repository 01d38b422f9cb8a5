"""Artifact.predict: the network program of an artifact run in NumPy equals the frozen integer network (§8)."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from dbpim.model import artifact as gart
from dbpim.model import program as gprog
from dbpim.model.layer import run_layer
from dbpim.model.predict import PredictError, Predictor, run_artifact

torch = pytest.importorskip("torch")

#: The two networks compiled here (small hw, short schedules): the demo CNN and a residual zoo network.
NETWORKS = {
    "smallcnn": dict(model="smallcnn", data="digits", epochs=4, finetune_epochs=0.5, qat_epochs=0.5, n_train=256,
                     n_test=128, width=0.5),
    "resnet18": dict(model="resnet18", data="digits32", epochs=0, finetune_epochs=0, qat_epochs=0, n_train=64,
                     n_test=64, width=0.125, n_record=1),
}


def _compile(name: str, out) -> dict:
    """Run the flow on :data:`NETWORKS` ``name``; the report plus the frozen network's test logits."""
    from flow_helpers import flow_with_test_logits
    kw = dict(NETWORKS[name])
    return flow_with_test_logits(kw.pop("model"), kw.pop("data"), out, **kw)


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    return _compile("smallcnn", tmp_path_factory.mktemp("cnn") / "out")


@pytest.fixture(scope="module")
def resnet(tmp_path_factory):
    return _compile("resnet18", tmp_path_factory.mktemp("resnet") / "out")


def _one_line(e) -> str:
    msg = str(e.value)
    assert msg and "\n" not in msg
    return msg


# ----------------------------------------------------------------------------- equality with the torch network

def test_smallcnn_predict_equals_the_frozen_integer_network(cnn):
    art = gart.load(cnn["artifact"])
    assert art.version == gart.VERSION == 4 and art.program is not None
    ops = {op["op"] for op in art.program["ops"]}
    assert {"input", "mapped", "clamp", "maxpool2d", "reshape"} <= ops
    logits = art.predict(cnn["x"])
    assert logits.dtype == np.float32 and logits.shape == cnn["logits"].shape
    np.testing.assert_array_equal(logits, cnn["logits"])  # bit for bit
    acc = float((logits.argmax(1) == cnn["y"]).mean())
    assert acc == cnn["accuracy"]["final"]


@pytest.mark.parametrize("batch_size", [1, 7, 1000])
def test_batches_do_not_change_the_logits(cnn, batch_size):
    art = gart.load(cnn["artifact"])
    np.testing.assert_array_equal(art.predict(cnn["x"][:40], batch_size=batch_size), cnn["logits"][:40])


def test_resnet_with_residual_adds(resnet):
    """Residual adds, Identity shortcuts, global average pooling, torch.flatten.

    ``mean`` replays torch's cascade sum (AVX2, docs/design.md §8): bit for bit
    there; on another CPU torch may add in another order, and an activation on
    a rounding boundary of the next layer's quantizer can then move by one
    step, so the test then allows a few samples whose logits differ.
    """
    art = gart.load(resnet["artifact"])
    ops = [op["op"] for op in art.program["ops"]]
    assert ops.count("add") == 8 and "mean" in ops and "identity" in ops
    logits = art.predict(resnet["x"])
    same = (logits == resnet["logits"]).all(axis=1)
    if torch.backends.cpu.get_cpu_capability() == "AVX2":
        assert same.all(), f"{int((~same).sum())} of {len(same)} samples differ"
    assert same.mean() >= 0.9, f"{int((~same).sum())} of {len(same)} samples differ"
    assert (logits.argmax(1) == resnet["logits"].argmax(1)).all()
    assert abs(float((logits.argmax(1) == resnet["y"]).mean()) - resnet["accuracy"]["final"]) <= 0.1


def test_mapped_ops_are_run_layer_bit_for_bit(cnn):
    """The predictor's integer matmul (float32 when exact) equals model.layer.run_layer on the recorded inputs."""
    art = gart.load(cnn["artifact"])
    p = Predictor(art)
    checked = 0
    for name, m in p.mapped.items():
        for j, r in enumerate(m.recs):
            cols = r.im2col_inputs()
            if r.kind == "conv2d":  # the predictor's channels-last columns of the same inputs
                ours = m._columns(r.x.astype(np.float32).transpose(0, 2, 3, 1), r, m.w[j].dtype)
                ours = ours.reshape(-1, ours.shape[-1])
            else:
                ours = cols.astype(np.float32)
            got = m._matmul(j, ours)
            np.testing.assert_array_equal(got.astype(np.int64), run_layer(cols, r.compiled, r.signed_input).out)
            checked += 1
    assert checked == len(art.mapped_layers())


def test_run_artifact_summary(cnn):
    art = gart.load(cnn["artifact"])
    out = run_artifact(art, cnn["x"], cnn["y"], reference=cnn["logits"])
    json.dumps(out, allow_nan=False)
    assert out["samples"] == len(cnn["x"]) and out["outputs"] == [10]
    assert out["logits_equal"] is True and out["max_abs_diff"] == 0.0 and out["argmax_agree"] == 1.0
    assert out["accuracy"] == out["accuracy_compiled"] == cnn["accuracy"]["final"]
    with pytest.raises(PredictError) as e:
        run_artifact(art, cnn["x"], cnn["y"][:3])
    assert _one_line(e).startswith("y: must be integer labels")


# ----------------------------------------------------------------------------- refusals, one line each

@pytest.mark.parametrize("make, needle", [
    (lambda x: x.tolist(), "x: must be a NumPy array, got list"),
    (lambda x: x[:, 0], "x: shape must be (S, 1, 8, 8)"),
    (lambda x: x[0], "x: shape must be (S, 1, 8, 8)"),
    (lambda x: np.where(np.arange(x.size).reshape(x.shape) == 5, np.nan, x), "x: holds NaN or inf"),
    (lambda x: x * np.inf, "x: holds NaN or inf"),
    (lambda x: x.astype(np.float64) * 1e300, "x: values overflow float32"),
    (lambda x: x.astype(np.complex64), "x: dtype must be a real float or integer type, got complex64"),
    (lambda x: x.astype(object), "x: dtype must be a real float or integer type, got object"),
    (lambda x: x[:0], "x: holds no samples"),
])
def test_bad_inputs_are_one_line_errors(cnn, make, needle):
    art = gart.load(cnn["artifact"])
    with pytest.raises(PredictError) as e:
        art.predict(make(cnn["x"][:4].copy()))
    assert needle in _one_line(e)


@pytest.mark.parametrize("bs", [0, -1, 1.5, True, "8"])
def test_bad_batch_size(cnn, bs):
    with pytest.raises(PredictError) as e:
        gart.load(cnn["artifact"]).predict(cnn["x"][:2], batch_size=bs)
    assert _one_line(e).startswith("batch_size: must be an integer >= 1")


def test_integer_inputs_are_converted(cnn):
    art = gart.load(cnn["artifact"])
    xi = np.rint(cnn["x"][:8]).astype(np.int16)
    np.testing.assert_array_equal(art.predict(xi), art.predict(xi.astype(np.float32)))


@pytest.mark.parametrize("version", [2, 3])
def test_older_artifacts_are_refused_with_recompile(cnn, tmp_path, version):
    d = tmp_path / "old"
    shutil.copytree(cnn["artifact"], d)
    doc = yaml.safe_load((d / "manifest.yaml").read_text())
    doc["version"] = version  # versions before 4 have no program: a 'program' key is ignored
    (d / "manifest.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    art = gart.load(d)
    assert art.version == version and art.program is None
    from dbpim.model.chip import ChipError, GoldenChip
    with pytest.raises(PredictError) as e:
        art.predict(cnn["x"][:2])
    assert f"format version {version} has no network program; recompile it" in _one_line(e)
    with pytest.raises(ChipError) as c:  # the golden chip says the same (model.program.require_program)
        GoldenChip(art)
    assert _one_line(e) == _one_line(c) + " to use predict"
    plain = gart.load(gart.save(tmp_path / "plain", "cnn", art.macro, art.layers, compress=False),
                      check_tiles=False)  # saved without a program
    with pytest.raises(PredictError) as e:
        plain.predict(cnn["x"][:2])
    assert "has no network program (saved without one); recompile" in _one_line(e)
    with pytest.raises(ChipError) as c:
        GoldenChip(plain)
    assert _one_line(e) == _one_line(c) + " to use predict"


def test_unsupported_op_is_refused_naming_it(cnn, tmp_path):
    d = tmp_path / "a"
    shutil.copytree(cnn["artifact"], d)
    doc = yaml.safe_load((d / "manifest.yaml").read_text())
    op = next(o for o in doc["program"]["ops"] if o["op"] == "clamp")
    op.pop("lo"), op.pop("hi")
    op.update(op="unsupported", what="features.0.act: Sigmoid")
    (d / "manifest.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(PredictError) as e:
        gart.load(d).predict(cnn["x"][:2])
    msg = _one_line(e)
    assert f"op {op['name']!r} (features.0.act: Sigmoid) cannot be run by model.predict" in msg


def test_builder_marks_what_it_cannot_express():
    """A Tanh (and everything after it) becomes 'unsupported'; the program still loads."""
    import torch.fx as fx
    from torch import nn

    from dbpim.model.torch.program import network_program
    gm = fx.symbolic_trace(nn.Sequential(nn.ReLU(), nn.Tanh(), nn.ReLU()))
    prog = network_program(gm, torch.randn(2, 3, 4), [])
    assert [o["op"] for o in prog["ops"]] == ["input", "clamp", "unsupported", "unsupported"]
    assert prog["ops"][2]["what"] == "1: Tanh" and "follows the unsupported op" in prog["ops"][3]["what"]


# ----------------------------------------------------------------------------- the program on disk is validated

BAD_VALUES = [None, True, -1, 0, 1.5, float("nan"), "x", "", [], [1], [-1, 3], {}, {"a": 1}]


def _paths(node, prefix=()):
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        yield prefix + (k,)
        yield from _paths(v, prefix + (k,))


def test_fuzz_every_program_field(cnn):
    """Every field of the program set to wrong values or deleted: its reader raises only one-line ArtifactErrors."""
    d = Path(cnn["artifact"])
    doc = yaml.safe_load((d / "manifest.yaml").read_text())
    layers = gart.load(d, check_tiles=False).layers
    prog = doc["program"]
    kinds = {o["op"]: i for i, o in enumerate(prog["ops"])}  # one op of each kind (the last one)
    keep = {("ops", i) for i in kinds.values()}
    paths = [("program",) + p for p in _paths(prog) if p[0] != "ops" or len(p) == 1 or p[:2] in keep]
    assert len(paths) > 30 and set(kinds) == {"input", "mapped", "clamp", "maxpool2d", "reshape"}
    refused = 0
    for path in paths:
        for value in BAD_VALUES + ["<delete>"]:
            bad = copy.deepcopy(doc)
            node = bad
            for k in path[:-1]:
                node = node[k]
            if value == "<delete>":
                del node[path[-1]]
            else:
                node[path[-1]] = value
            try:
                gprog.read(d, bad["program"], layers, "manifest.yaml", gart.ArtifactError)
            except gart.ArtifactError as e:
                assert "\n" not in str(e)
                refused += 1
    assert refused > len(paths) * 5


@pytest.mark.parametrize("edit, needle", [
    (lambda p: p["ops"][1].update(inputs=["classifier_3"]), "'classifier_3' is not an earlier op"),
    (lambda p: p["ops"][1].update(op="conv3d"), "field 'program.ops[1].op' must be one of input, mapped"),
    (lambda p: p["ops"][1].update(shape=[8, 8, 9]), "field 'program.ops[1].shape' (features_0_conv) must be"),
    (lambda p: p["ops"][1].update(layers=["nope"]), "'nope' is not a mapped layer record"),
    (lambda p: p["ops"][1].update(x_scale=0.1), "must be a finite float32 value > 0"),
    (lambda p: p["ops"][2].update(name="x"), "'x' is used twice"),
    (lambda p: p.update(output="nope"), "field 'program.output' must name an op"),
    (lambda p: p["input"].update(dtype="float64"), "dtype float32"),
    (lambda p: p.update(file="../x.npz"), "field 'program.file' must be 'program.npz'"),
])
def test_program_errors_name_the_field(cnn, tmp_path, edit, needle):
    d = tmp_path / "a"
    shutil.copytree(cnn["artifact"], d)
    doc = yaml.safe_load((d / "manifest.yaml").read_text())
    edit(doc["program"])
    (d / "manifest.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(gart.ArtifactError) as e:
        gart.load(d, check_tiles=False)
    assert needle in _one_line(e)


@pytest.mark.parametrize("arrays, needle", [
    (lambda z: {k: v.astype(np.float64) for k, v in z.items()}, "must be finite float32 of shape"),
    (lambda z: {k: v[:-1] for k, v in z.items()}, "must be finite float32 of shape"),
    (lambda z: {k: v * np.nan for k, v in z.items()}, "must be finite float32 of shape"),
    (lambda z: {}, "must be null or an array name of program.npz"),
    (None, "program.npz not found"),
])
def test_program_arrays_are_checked(cnn, tmp_path, arrays, needle):
    d = tmp_path / "a"
    shutil.copytree(cnn["artifact"], d)
    f = d / gprog.FILE
    if arrays is None:
        f.unlink()
    else:
        with np.load(f, allow_pickle=False) as z:
            new = arrays(dict(z))
        np.savez(f, **new)
        gart.reseal(d)  # a changed file with its new digest: the program reader checks it
    with pytest.raises(gart.ArtifactError) as e:
        gart.load(d, check_tiles=False)
    assert needle in _one_line(e)


def test_program_file_must_be_listed_with_its_digest(cnn, tmp_path):
    d = tmp_path / "a"
    shutil.copytree(cnn["artifact"], d)
    doc = yaml.safe_load((d / "manifest.yaml").read_text())
    assert gprog.FILE in doc["files"]
    del doc["files"][gprog.FILE]
    (d / "manifest.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(gart.ArtifactError) as e:
        gart.load(d, check_tiles=False)
    assert "program.npz is not listed in manifest.yaml field 'files'" in _one_line(e)

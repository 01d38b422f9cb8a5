"""model.artifact.load raises only ArtifactError, checks geometry and keeps layer files inside (§8)."""

from __future__ import annotations

import copy
import shutil

import numpy as np
import pytest
import yaml

from dbpim.model import artifact, examples
from dbpim.model.compile import compile_layer
from dbpim.model.config import load_config
from dbpim.model.layer import conv_out_size
from dbpim.model.quant import prune_quantize

BAD_VALUES = [None, True, False, -1, 0, 1, 2**70, 1.5, float("nan"), "x", "", "../../../../etc/passwd", [], [1],
              [3], [-1, 3], [1.5, 2], [0, 0, 0], ["a"], {}, {"a": 1}]


def conv_record(macro, rng, C=3, H=6, W=6, N=5, k=3, stride=2, padding=1):
    """A real conv2d layer record: random float weights pruned, FTA-quantized and compiled."""
    K = C * k * k
    q = prune_quantize(rng.normal(0, 1, (K, N)), macro, 0.5)
    comp = compile_layer(q.w, q.phi, q.mask, macro, q.group_size)
    ho, wo = conv_out_size(H, k, stride, padding), conv_out_size(W, k, stride, padding)
    x = rng.integers(0, 256, (2, C, H, W)).astype(np.uint8)
    return artifact.LayerRecord(name="conv", kind="conv2d", in_shape=(C, H, W), out_shape=(N, ho, wo),
                                kernel=(k, k), stride=stride, padding=padding, w=q.w, scale=q.scale,
                                compiled=comp, x=x, x_scale=0.05)


@pytest.fixture(scope="module")
def art(tmp_path_factory):
    macro = load_config("small").macro
    recs = [conv_record(macro, np.random.default_rng(0))] + examples.to_records(examples.real_layers(macro))
    path = tmp_path_factory.mktemp("v") / "art"
    artifact.save(path, "fuzz", macro, recs)
    return path


@pytest.fixture
def work(art, tmp_path):
    """A private copy of the artifact and its parsed manifest."""
    d = tmp_path / "a"
    shutil.copytree(art, d)
    return d, yaml.safe_load((d / "manifest.yaml").read_text())


def _write(d, doc):
    (d / "manifest.yaml").write_text(yaml.dump(doc, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False))


def _paths(node, prefix=()):
    """Every key path of a YAML tree (dict keys and list indices), leaves and inner nodes."""
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        return
    for k, v in items:
        yield prefix + (k,)
        yield from _paths(v, prefix + (k,))


def _set(doc, path, value):
    node = doc
    for k in path[:-1]:
        node = node[k]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value


_DELETE = object()


def _load_only_artifact_errors(d, check_tiles=True):
    try:
        artifact.load(d, check_tiles=check_tiles)
    except artifact.ArtifactError as e:
        assert "\n" not in str(e)


def test_round_trip_with_conv(art):
    a = artifact.load(art)
    conv = a.layers[0]
    assert conv.kind == "conv2d" and conv.kernel == (3, 3) and conv.stride == (2, 2) and conv.out_shape == (5, 3, 3)
    assert conv.x.shape == (2, 3, 6, 6) and conv.x_scale == pytest.approx(0.05)


def test_fuzz_every_manifest_field(work):
    """Every field of a real manifest set to wrong types and values, or deleted: only ArtifactError."""
    d, doc = work
    paths = list(_paths(doc))
    assert len(paths) > 60
    for path in paths:
        if path[0] == "meta":
            continue  # free-form
        for value in BAD_VALUES + [_DELETE]:
            bad = copy.deepcopy(doc)
            _set(bad, path, value)
            _write(d, bad)
            _load_only_artifact_errors(d, check_tiles=path[:1] == ("layers",) and len(path) == 3)


@pytest.mark.parametrize("mutate", ["dtype", "shape", "scalar", "empty", "delete", "object"])
def test_fuzz_every_array(work, mutate):
    d, _ = work
    files = sorted((d / "layers").glob("*.npz"))
    for f in files:
        orig = dict(np.load(f))
        for key in orig:
            z = dict(orig)
            if mutate == "dtype":
                z[key] = z[key].astype(np.float64)
            elif mutate == "shape":
                z[key] = np.concatenate([z[key].reshape(-1), z[key].reshape(-1)[:1]]) if z[key].size else np.zeros(1)
            elif mutate == "scalar":
                z[key] = np.asarray(z[key].reshape(-1)[:1].sum() if z[key].size else 0, z[key].dtype)
            elif mutate == "empty":
                z[key] = np.zeros((0,) + z[key].shape[1:], z[key].dtype)
            elif mutate == "delete":
                del z[key]
            else:
                z[key] = np.array([{"a": 1}], dtype=object)
            np.savez(f, **z, allow_pickle=True) if mutate == "object" else np.savez(f, **z)
            artifact.reseal(d)  # past the digest check: the array checks are what is fuzzed
            _load_only_artifact_errors(d)
        np.savez(f, **orig)
        artifact.reseal(d)


@pytest.mark.parametrize("edit, needle", [
    ({"stride": 1}, r"out_shape \[5, 3, 3\] does not match .* which give \[5, 6, 6\]"),
    ({"out_shape": [5, 2, 2]}, r"which give \[5, 3, 3\]"),
    ({"kernel": [3]}, "field 'kernel' must be a list of 2 integers >= 1"),
    ({"kernel": [3, 0]}, "field 'kernel' must be"),
    ({"stride": 0}, "field 'stride' must be a list of 2 integers >= 1"),
    ({"stride": [2, 0]}, "field 'stride' must be a list of 2 integers >= 1"),
    ({"padding": -1}, "field 'padding' must be a list of 2 integers >= 0"),
    ({"dilation": [0, 1]}, "field 'dilation' must be a list of 2 integers >= 1"),
    ({"dilation": [2, 2]}, r"which give \[5, 2, 2\]"),
    ({"group": [1, 1]}, r"field 'group' must be \[j, groups\] with 0 <= j < groups"),
    ({"in_shape": [3, -6, 6]}, "field 'in_shape' must be a list of non-negative integers"),
    ({"out_shape": [5, 3, -3]}, "field 'out_shape' must be a list of non-negative integers"),
    ({"in_shape": [3, 1, 1], "padding": 0}, r"which give \[5, -?\d+, -?\d+\]"),
    ({"file": "../../../../etc/passwd"}, "must be a path inside the artifact"),
    ({"file": "/etc/passwd"}, "must be a path inside the artifact"),
    ({"signed_input": "yes"}, "field 'signed_input' must be true or false"),
    ({"K": True}, "field 'K' must be a positive integer"),
])
def test_geometry_and_fields_of_a_conv_record(work, edit, needle):
    d, doc = work
    doc["layers"][0].update(edit)
    _write(d, doc)
    with pytest.raises(artifact.ArtifactError, match=needle) as e:
        artifact.load(d)
    assert "\n" not in str(e.value) and "layers[0] (conv)" in str(e.value)


@pytest.mark.parametrize("edit, needle", [
    ({"out_shape": [33]}, r"out_shape \[33\] must be in_shape with the last axis N=32"),
    ({"in_shape": [8, 9]}, r"in_shape \[8, 9\] must end with K=64"),
    ({"in_shape": [8, 64]}, r"out_shape \[32\] must be in_shape with the last axis N=32, i.e. \[8, 32\]"),
])
def test_geometry_of_a_linear_record(work, edit, needle):
    d, doc = work
    doc["layers"][1].update(edit)
    _write(d, doc)
    with pytest.raises(artifact.ArtifactError, match=needle):
        artifact.load(d)


def test_symlinked_layer_file_outside_is_refused(work, tmp_path):
    d, doc = work
    outside = tmp_path / "elsewhere.npz"
    f = d / doc["layers"][0]["file"]
    shutil.move(f, outside)
    f.symlink_to(outside)
    with pytest.raises(artifact.ArtifactError, match="must be a path inside the artifact"):
        artifact.load(d)


@pytest.mark.parametrize("edit, needle", [
    (lambda doc: doc["hw"].pop("lanes"), r"field 'hw.lanes': required key missing"),
    (lambda doc: doc["hw"].update(depth=3), r"field 'hw.depth': unknown key"),
    (lambda doc: doc.update(version=True), "field 'version' must be one of 1, 2, 3, 4"),
    (lambda doc: doc.update(network=7), "field 'network' must be a string"),
    (lambda doc: doc.update(meta=[1]), "field 'meta' must be a mapping"),
])
def test_top_level_fields(work, edit, needle):
    d, doc = work
    edit(doc)
    _write(d, doc)
    with pytest.raises(artifact.ArtifactError, match=needle):
        artifact.load(d)


def test_binary_or_unreadable_manifest(work):
    d, _ = work
    (d / "manifest.yaml").write_bytes(b"\x00\x01\xff\xfe" * 64)
    with pytest.raises(artifact.ArtifactError, match="not a text file"):
        artifact.load(d)
    (d / "manifest.yaml").write_text("layers: [\n")
    with pytest.raises(artifact.ArtifactError, match="not valid YAML"):
        artifact.load(d)


def test_x_scale_is_checked(work):
    d, doc = work
    f = d / doc["layers"][0]["file"]
    z = dict(np.load(f))
    z["x_scale"] = np.float32(-1)
    np.savez(f, **z)
    artifact.reseal(d)
    with pytest.raises(artifact.ArtifactError, match="array 'x_scale' must be finite and > 0"):
        artifact.load(d)

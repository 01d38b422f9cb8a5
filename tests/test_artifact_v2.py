"""Artifact format 2 (tokens, dilation, per-axis stride/padding, conv groups, SIMD MACs),
version 1 reading, the SIMD op costs and im2col with dilation."""

import shutil

import numpy as np
import pytest
import yaml

from dbpim.model import artifact, examples, simd
from dbpim.model import layer as L
from dbpim.model.compile import compile_layer
from dbpim.model.config import load_config
from dbpim.model.fta import quantize

SMALL = load_config("small").macro


def _direct_conv(x, w, stride, padding, dilation):
    S, C, H, W = x.shape
    N, _, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    Ho, Wo = L.conv_out_size(H, kh, sh, ph, dh), L.conv_out_size(W, kw, sw, pw, dw)
    out = np.zeros((S, N, Ho, Wo), np.int64)
    for i in range(Ho):
        for j in range(Wo):
            patch = xp[:, :, i * sh:i * sh + dh * (kh - 1) + 1:dh, j * sw:j * sw + dw * (kw - 1) + 1:dw]
            out[:, :, i, j] = np.einsum("scij,ncij->sn", patch, w)
    return out


@pytest.mark.parametrize("geo", [((1, 1), (0, 0), (1, 1)), ((2, 1), (1, 0), (1, 1)), ((1, 2), (2, 2), (2, 2)),
                                 ((2, 2), (1, 3), (3, 1))])
def test_im2col_with_dilation_and_pairs_matches_direct(rng, geo):
    stride, padding, dilation = geo
    x = rng.integers(0, 6, (2, 3, 9, 8))
    w = rng.integers(-3, 4, (4, 3, 3, 2))
    cols = L.im2col(x, 3, 2, stride, padding, dilation)
    ref = _direct_conv(x, w, stride, padding, dilation)
    out = (cols @ w.reshape(4, -1).T).reshape(2, ref.shape[2], ref.shape[3], 4).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(out, ref)


def test_run_conv2d_with_dilation(rng):
    w = rng.normal(0, 30, (2 * 3 * 3, 4))
    wq, phi = quantize(w, np.ones(w.shape, bool), 0, 2)
    comp = compile_layer(wq, phi, np.ones((18, 2), bool), SMALL)
    x = rng.integers(0, 256, (1, 2, 7, 7))
    out, _ = L.run_conv2d(x, comp, (3, 3), stride=(1, 2), padding=2, dilation=2)
    ref = _direct_conv(x, wq.astype(np.int64).T.reshape(4, 2, 3, 3), (1, 2), (2, 2), (2, 2))
    np.testing.assert_array_equal(out, ref)


def test_im2col_rejects_bad_geometry():
    with pytest.raises(ValueError, match="dilation: must be an integer >= 1"):
        L.im2col(np.zeros((1, 1, 4, 4)), 3, 3, dilation=0)
    with pytest.raises(ValueError, match="smaller than the 3x3 kernel"):
        L.im2col(np.zeros((1, 1, 4, 4)), 3, 3, dilation=2)


def test_simd_costs():
    assert simd.simd_ops("matmul", macs=100, elements=7) == 100
    assert simd.simd_ops("softmax", elements=10) == 50 and simd.simd_ops("move", elements=99) == 0
    with pytest.raises(ValueError, match="op: must be one of"):
        simd.simd_ops("sqrt", elements=1)


def _conv_record(rng, name="c", group=None, dilation=(1, 1)):
    C, N, H = 2, 4, 6
    w = rng.normal(0, 30, (C * 9, N))
    wq, phi = quantize(w, np.ones(w.shape, bool), 0, 2)
    comp = compile_layer(wq, phi, np.ones((C * 9, 2), bool), SMALL)
    Ho = L.conv_out_size(H, 3, 1, 2, dilation[0])
    return artifact.LayerRecord(name=name, kind="conv2d", in_shape=(C, H, H), out_shape=(N, Ho, Ho), kernel=(3, 3),
                                padding=2, dilation=dilation, group=group, w=wq, scale=np.ones(N, np.float32),
                                compiled=comp, x=rng.integers(0, 255, (2, C, H, H)).astype(np.uint8), x_scale=0.1)


def test_v2_round_trip_with_new_fields(rng, tmp_path):
    recs = [_conv_record(rng, "c.g0", (0, 2), (2, 2)), _conv_record(rng, "c.g1", (1, 2), (2, 2)),
            artifact.LayerRecord(name="attn", kind="simd", op="matmul", in_shape=(8, 16), out_shape=(2, 8, 8),
                                 macs=1024),
            artifact.LayerRecord(name="cat", kind="simd", op="move", in_shape=(4, 6, 6), out_shape=(8, 6, 6),
                                 elements=288)]
    a = artifact.load(artifact.save(tmp_path / "a", "n", SMALL, recs))
    g0, g1, mm, mv = a.layers
    assert g0.group == (0, 2) and g1.dilation == (2, 2) and g0.padding == (2, 2) and g0.stride == (1, 1)
    assert g0.im2col_inputs().shape == (2 * 36, 18) and g0.vectors == 36 and g0.mac_count() == 18 * 4 * 36
    assert mm.macs == 1024 and mm.simd_ops == 1024 and mm.mac_count() == 1024
    assert mv.simd_ops == 0 and mv.elements == 288


@pytest.mark.parametrize("edit,msg", [
    (("dilation", [1, 1]), r"out_shape \[4, 6, 6\] does not match .* which give \[4, 8, 8\]"),
    (("group", [2, 2]), r"field 'group' must be \[j, groups\] with 0 <= j < groups"),
    (("stride", [1]), r"field 'stride' must be a list of 2 integers >= 1"),
    (("kernel", [3, 0]), r"field 'kernel' must be a list of 2 integers >= 1"),
])
def test_v2_geometry_is_validated(rng, tmp_path, edit, msg):
    p = artifact.save(tmp_path / "a", "n", SMALL, [_conv_record(rng, "c", (0, 1), (2, 2))])
    m = yaml.safe_load((p / "manifest.yaml").read_text())
    m["layers"][0][edit[0]] = edit[1]
    (p / "manifest.yaml").write_text(yaml.safe_dump(m))
    with pytest.raises(artifact.ArtifactError, match=msg):
        artifact.load(p)


def test_version_1_artifacts_are_read(tmp_path):
    """A version 1 manifest: integer stride/padding, no dilation, simd_ops only, flattened linear in_shape."""
    p = artifact.save(tmp_path / "a", "mlp", SMALL, examples.to_records(examples.real_layers(SMALL)))
    m = yaml.safe_load((p / "manifest.yaml").read_text())
    m["version"] = 1
    for rec in m["layers"]:
        if rec["kind"] == "simd":
            rec.pop("macs"), rec.pop("elements")
    m["layers"][0]["in_shape"] = [4, 16]  # v1: prod(in_shape) = K, one vector per sample
    z = dict(np.load(p / m["layers"][0]["file"]))
    z["x"] = z["x"].reshape(len(z["x"]), 4, 16)
    np.savez(p / m["layers"][0]["file"], **z)
    (p / "manifest.yaml").write_text(yaml.safe_dump(m))
    a = artifact.load(p)
    fc1, relu = a.layers[0], a.layers[1]
    assert fc1.in_shape == (64,) and fc1.vectors == 1 and fc1.x.shape[1:] == (64,)
    assert relu.elements == relu.simd_ops == 32 and relu.macs == 0
    shutil.rmtree(p)

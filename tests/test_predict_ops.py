"""Artifact.predict on the ops between the mapped layers of MobileNetV2, EfficientNet-B0 and SiLU networks:
each op equals torch's float32 kernel bit for bit, and whole networks equal the frozen integer network (§8)."""

from __future__ import annotations

import numpy as np
import pytest

from dbpim.model import artifact as gart
from dbpim.model import predict as gpred

torch = pytest.importorskip("torch")
F = torch.nn.functional
nn = torch.nn

#: The CPU kernels predict replays (docs/design.md §8 "Exactness of predict"); elsewhere torch may add in another
#: order and the network tests ask for argmax agreement on all samples and equal logits on 90 % of them.
REPLAYED = torch.backends.cpu.get_cpu_capability() == "AVX2"


def _values(*shape, seed=0, scale=4.0):
    """Random float32 values with the edge cases of the exp-based ops (large, tiny, zero, ties)."""
    g = np.random.default_rng(seed)
    x = (g.standard_normal(shape) * scale).astype(np.float32)
    flat = x.reshape(-1)
    special = np.array([0, -0.0, 1e-8, -1e-8, 20, -20, 88, -88, 90, -90, 103, -103, 104.5, -104.5, 110, -110,
                        1e30, -1e30], np.float32)
    flat[:len(special)] = special[:flat.size]
    return x


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape", [(64, 40, 8, 8), (2, 8, 4, 4), (3, 7, 5, 5), (1, 13), (1, 31)])
def test_sigmoid_and_silu_equal_torch(shape, threads):
    """SLEEF's expf_u10 replayed: sigmoid and SiLU bit for bit on torch's vectorised elements; the scalar tail
    (the last numel % 16 elements of a call, std::exp) within one unit in the last place."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        x = _values(*shape)
        t = torch.from_numpy(x)
        n = x.size // 16 * 16
        for ours, ref in ((gpred._sigmoid(x), torch.sigmoid(t).numpy()), (gpred._silu(x), F.silu(t).numpy())):
            ours, ref = ours.reshape(-1), ref.reshape(-1)
            np.testing.assert_array_equal(ours[:n], ref[:n])
            np.testing.assert_array_max_ulp(ours[n:], ref[n:], maxulp=1)
    finally:
        torch.set_num_threads(old)


@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm_equals_torch(affine):
    torch.manual_seed(0)
    for bn, shape in ((nn.BatchNorm2d(12, affine=affine), (16, 12, 9, 9)), (nn.BatchNorm1d(12, affine=affine),
                                                                          (16, 12, 7))):
        with torch.no_grad():
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.01, 4)
            if affine:
                bn.weight.normal_()
                bn.bias.normal_()
        bn.eval()
        x = _values(*shape, scale=3)
        c = bn.num_features
        terms = gpred._bn_terms(bn.running_mean.numpy(), bn.running_var.numpy(),
                                bn.weight.detach().numpy() if affine else np.ones(c, np.float32),
                                bn.bias.detach().numpy() if affine else np.zeros(c, np.float32), bn.eps)
        with torch.no_grad():
            np.testing.assert_array_equal(gpred._batchnorm(x, terms), bn(torch.from_numpy(x)).numpy())


@pytest.mark.parametrize("k, stride, dilation, bias", [(3, 1, 1, False), (3, 2, 1, True), (5, 1, 1, False),
                                                       (5, 2, 1, True), (3, 1, 2, False)])
def test_depthwise_equals_torch(k, stride, dilation, bias):
    torch.manual_seed(k + stride)
    C = 24
    conv = nn.Conv2d(C, C, k, stride, dilation * (k - 1) // 2, dilation, groups=C, bias=bias)
    x = np.maximum(_values(6, C, 12, 12, scale=2), 0)
    with torch.no_grad():
        ref = conv(torch.from_numpy(x)).numpy()
    op = {"kernel": [k, k], "stride": [stride] * 2, "padding": [dilation * (k - 1) // 2] * 2,
          "dilation": [dilation] * 2, "shape": list(ref.shape[1:]), "dw_weight": conv.weight.detach()[:, 0].numpy(),
          "dw_bias": conv.bias.detach().numpy() if bias else None}
    np.testing.assert_array_equal(gpred._depthwise(x, op, None), ref)


@pytest.mark.parametrize("k, stride, pad, include", [(2, 2, 0, True), (3, 1, 1, True), (3, 2, 1, False),
                                                     (3, 3, 0, True)])
def test_avgpool2d_equals_torch(k, stride, pad, include):
    pool = nn.AvgPool2d(k, stride, pad, count_include_pad=include)
    x = _values(4, 10, 11, 11, scale=2)
    ref = pool(torch.from_numpy(x)).numpy()
    op = {"kernel": [k, k], "stride": [stride] * 2, "padding": [pad] * 2, "count_include_pad": include,
          "shape": list(ref.shape[1:])}
    np.testing.assert_array_equal(gpred._avgpool2d(x, op), ref)


@pytest.mark.parametrize("hw", [(1, 1), (2, 2), (4, 4), (7, 7), (8, 8), (3, 5), (16, 16), (32, 32), (64, 64)])
def test_global_mean_equals_torch_cascade_sum(hw):
    """torch's cascade sum replayed: adaptive_avg_pool2d(1) and mean over (H, W) bit for bit, every size."""
    x = np.abs(_values(8, 40, *hw, scale=3))
    t = torch.from_numpy(x)
    got = gpred._mean(x, {"axes": [1, 2], "keepdim": True})
    np.testing.assert_array_equal(got, F.adaptive_avg_pool2d(t, 1).numpy())
    np.testing.assert_array_equal(gpred._mean(x, {"axes": [1, 2], "keepdim": False}), t.mean((2, 3)).numpy())


# ----------------------------------------------------------------------------- whole networks


class SiluCNN(nn.Module):
    """Digits CNN with what MobileNetV2 / EfficientNet add to a plain CNN, small: SiLU, a BatchNorm after its
    activation (not folded), a depthwise convolution with bias and without BatchNorm, average pooling (one with
    padding), a squeeze-excitation gate (mean, SiLU, sigmoid, mul)."""

    def __init__(self, classes=10):
        super().__init__()
        self.c1, self.a1, self.bn1 = nn.Conv2d(1, 8, 3, padding=1), nn.SiLU(), nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pool1 = nn.AvgPool2d(2)                                                    # 8 -> 4
        self.c2, self.bn2, self.a2 = nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.SiLU()
        self.se1, self.se2 = nn.Conv2d(16, 4, 1), nn.Conv2d(4, 16, 1)
        self.pool2 = nn.AvgPool2d(3, 2, 1, count_include_pad=False)                    # 4 -> 2
        self.fc = nn.Linear(16 * 4, classes)

    def forward(self, x):
        x = self.pool1(self.dw(self.bn1(self.a1(self.c1(x)))))
        x = self.a2(self.bn2(self.c2(x)))
        g = torch.sigmoid(self.se2(F.silu(self.se1(x.mean((2, 3), keepdim=True)))))
        return self.fc(torch.flatten(self.pool2(x * g), 1))


def _flow(model, data, out, **kw) -> dict:
    """The flow on ``model`` (small hw, short schedule): the report plus the frozen network's test logits."""
    from flow_helpers import flow_with_test_logits
    return flow_with_test_logits(model, data, out, **kw)


def _agree(art, res, ops: set) -> tuple[float, float]:
    """(share of samples with equal logits, share with equal argmax) of predict against the frozen network."""
    assert ops <= {op["op"] for op in art.program["ops"]}
    logits = art.predict(res["x"])
    same = float((logits == res["logits"]).all(axis=1).mean())
    arg = float((logits.argmax(1) == res["logits"].argmax(1)).mean())
    print(f"{art.network}: {len(logits)} samples, logits equal on {same:.4f}, argmax on {arg:.4f}")
    assert arg == 1.0
    assert same == 1.0 if REPLAYED else same >= 0.9
    return same, arg


@pytest.fixture(scope="module")
def silu(tmp_path_factory):
    torch.manual_seed(0)
    return _flow(SiluCNN(), "digits", tmp_path_factory.mktemp("silu") / "out", epochs=2, finetune_epochs=0.5,
                 qat_epochs=0.5, n_train=256, n_test=256)


def test_silu_cnn_via_the_flow(silu):
    res = silu
    art = gart.load(res["artifact"])
    _agree(art, res, {"silu", "sigmoid", "mul", "batchnorm", "depthwise", "avgpool2d", "mean"})
    acc = float((art.predict(res["x"]).argmax(1) == res["y"]).mean())
    assert acc == res["accuracy"]["final"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mobilenetv2", "efficientnetb0"])
def test_zoo_network_via_the_flow(tmp_path, name):
    res = _flow(name, "digits32", tmp_path / "out", epochs=0, finetune_epochs=0, qat_epochs=0, n_train=64,
                n_test=128, width=0.125, n_record=1)
    art = gart.load(res["artifact"])
    _agree(art, res, {"depthwise", "mean", "add"} | ({"silu", "sigmoid", "mul"} if name == "efficientnetb0" else set()))


class TinyTransformer(nn.Module):
    """Digits as 8 tokens of 8 pixels: an embedding, self-attention (``nn.MultiheadAttention``, decomposed by the
    flow into mapped q/k/v/out projections and activation x activation matmuls with a softmax), post-norm
    LayerNorms, a GELU feed-forward block, mean over the tokens, a classifier."""

    def __init__(self, E=16, heads=2, classes=10):
        super().__init__()
        self.embed = nn.Linear(8, E)
        self.attn = nn.MultiheadAttention(E, heads, batch_first=True)
        self.ln1, self.ln2 = nn.LayerNorm(E), nn.LayerNorm(E)
        self.ff1, self.ff2 = nn.Linear(E, 2 * E), nn.Linear(2 * E, E)
        self.fc = nn.Linear(E, classes)

    def forward(self, x):
        t = self.embed(x.reshape(x.shape[0], 8, 8))
        a, _ = self.attn(t, t, t, need_weights=False)
        t = self.ln1(t + a)
        t = self.ln2(t + self.ff2(F.gelu(self.ff1(t))))
        return self.fc(t.mean(1))


def test_attention_network_via_the_flow(tmp_path):
    """matmul, softmax, LayerNorm, GELU and a mean over tokens run in float64, rounded once (not torch's order):
    argmax on every sample, equal logits on at least 90 % (measured: all 256)."""
    torch.manual_seed(0)
    res = _flow(TinyTransformer(), "digits", tmp_path / "out", epochs=2, finetune_epochs=0.5, qat_epochs=0.5,
                n_train=256, n_test=256)
    art = gart.load(res["artifact"])
    ops = {op["op"] for op in art.program["ops"]}
    assert {"matmul", "softmax", "layernorm", "gelu", "transpose", "scale", "mean"} <= ops
    logits = art.predict(res["x"])
    same = float((logits == res["logits"]).all(axis=1).mean())
    print(f"tiny transformer: {len(logits)} samples, logits equal on {same:.4f}")
    assert (logits.argmax(1) == res["logits"].argmax(1)).all()
    assert same >= 0.9


class EncoderNet(nn.Module):
    """Digits as 8 tokens: an embedding, one ``nn.TransformerEncoderLayer`` (its attention inside a torch.nn
    module stays whole: float on the SIMD core), a mean over the tokens, a classifier."""

    def __init__(self, E=16, classes=10, norm_first=False, activation="relu"):
        super().__init__()
        self.embed = nn.Linear(8, E)
        self.enc = nn.TransformerEncoderLayer(E, 2, 2 * E, dropout=0.0, activation=activation, batch_first=True,
                                              norm_first=norm_first)
        self.fc = nn.Linear(E, classes)

    def forward(self, x):
        return self.fc(self.enc(self.embed(x.reshape(x.shape[0], 8, 8))).mean(1))


@pytest.mark.parametrize("norm_first, activation", [(False, "relu"), (True, "gelu")])
def test_transformer_encoder_layer_via_the_flow(tmp_path, norm_first, activation):
    """A whole TransformerEncoderLayer in float64 (torch: float32, its own orders): argmax on every sample,
    equal logits on at least 90 %."""
    torch.manual_seed(0)
    res = _flow(EncoderNet(norm_first=norm_first, activation=activation), "digits", tmp_path / "out", epochs=2,
                finetune_epochs=0.5, qat_epochs=0.5, n_train=256, n_test=256)
    art = gart.load(res["artifact"])
    assert "encoder_layer" in {op["op"] for op in art.program["ops"]}
    logits = art.predict(res["x"])
    same = float((logits == res["logits"]).all(axis=1).mean())
    print(f"encoder layer (norm_first={norm_first}, {activation}): {len(logits)} samples, logits equal on {same:.4f}")
    assert (logits.argmax(1) == res["logits"].argmax(1)).all()
    assert same >= 0.9


def test_fuzz_the_new_op_fields(silu):
    """Every field of the new ops (and of a depthwise op's torch form) set to wrong values or deleted: the
    program reader raises only one-line ArtifactErrors, and refuses most."""
    import copy
    from pathlib import Path

    import yaml

    from dbpim.model import program as gprog
    d = Path(silu["artifact"])
    doc = yaml.safe_load((d / "manifest.yaml").read_text())
    layers = gart.load(d, check_tiles=False).layers
    new = ("depthwise", "batchnorm", "sigmoid", "silu", "mul", "avgpool2d", "mean")
    idx = {o["op"]: i for i, o in enumerate(doc["program"]["ops"]) if o["op"] in new}
    assert set(idx) == set(new)
    paths = [(i, k) for i in idx.values() for k in doc["program"]["ops"][i] if k not in ("name", "range")]
    refused = tried = 0
    for i, k in paths:
        for value in [None, True, -1, 0, 1.5, float("nan"), "x", [], [1], [-1, 3], {}, "<delete>"]:
            bad = copy.deepcopy(doc["program"])
            if value == "<delete>":
                del bad["ops"][i][k]
            else:
                bad["ops"][i][k] = value
            tried += 1
            try:
                gprog.read(d, bad, layers, "manifest.yaml", gart.ArtifactError)
            except gart.ArtifactError as e:
                assert "\n" not in str(e)
                refused += 1
    assert refused > 0.8 * tried, f"{refused} of {tried} refused"


def test_negative_batchnorm_variance_is_refused(silu, tmp_path):
    import shutil

    import yaml

    from dbpim.model import program as gprog
    d = tmp_path / "a"
    shutil.copytree(silu["artifact"], d)
    doc = yaml.safe_load((d / "manifest.yaml").read_text())
    key = next(o["var"] for o in doc["program"]["ops"] if o["op"] == "batchnorm")
    with np.load(d / gprog.FILE, allow_pickle=False) as z:
        arrays = dict(z)
    arrays[key] = -np.abs(arrays[key]) - 1
    np.savez(d / gprog.FILE, **arrays)
    gart.reseal(d)
    with pytest.raises(gart.ArtifactError) as e:
        gart.load(d, check_tiles=False)
    assert f"array {key!r} (var) must be >= 0" in str(e.value) and "\n" not in str(e.value)

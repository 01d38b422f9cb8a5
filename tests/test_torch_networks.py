"""Networks written outside the project, each through the whole flow with a tiny schedule.

Each: no exception, every mapped layer's integer output equals ``model.layer.run_layer``
(checked by the flow and re-checked here from the artifact), the final integer accuracy
equals the fake-quant QAT accuracy within 0.5 points, and the performance model's total
MACs equal a count made by hand from the layer shapes.
"""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dbpim.model import artifact as gart
from dbpim.model.config import load_config
from dbpim.model.torch.data import load_digits
from flow_helpers import run_flow_kw
from dbpim.model.torch.flow import FlowError
from dbpim.sim_bench.perf import evaluate_network, specs_from_artifact

torch.set_num_threads(2)
HW = "small"
TINY = dict(epochs=4, finetune_epochs=0.5, qat_epochs=0.5, n_train=384, lr=1e-2, progress=False, hw=HW, compare=False,
            plots=False, batch_size=32)


@pytest.fixture(scope="module")
def digits():
    return load_digits(0)


def _tokens(d):
    """digits as 8 tokens (rows) of 8 features: (B, 8, 8)."""
    return ((d.x_train[:, 0], d.y_train), (d.x_test[:, 0], d.y_test))


def _check(rep, macs):
    """The acceptance checks shared by every network."""
    acc = rep["accuracy"]
    assert abs(acc["final"] - acc["fta_qat"]) <= 0.005, acc
    art = gart.load(rep["artifact"])
    mapped = art.mapped_layers()
    assert mapped and len(rep["integer_check"]) == len(mapped)
    assert all(c["equal"] for c in rep["integer_check"])
    from dbpim.model.layer import run_layer
    for layer in mapped:  # recorded inputs go through the golden model (the flow compared the outputs)
        assert run_layer(layer.im2col_inputs().astype(np.int64), layer.compiled, layer.signed_input).out.shape[0] \
            == layer.x.shape[0] * layer.vectors
    net = evaluate_network(specs_from_artifact(art), load_config(HW))
    assert net.macs()["total"] == macs == rep["macs"]["total"]
    return art


class TokenMLP(nn.Module):
    """Linear layers on [batch, seq, feat]; fc1 has out_features == seq == 8."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.head = nn.Linear(8, 8), nn.Linear(8, 16), nn.Linear(8 * 16, 10)

    def forward(self, x):
        h = torch.relu(self.fc2(torch.relu(self.fc1(x))))
        return self.head(h.flatten(1))


def test_mlp_on_tokens_seq_equals_out_features(digits, tmp_path):
    net = TokenMLP()
    rep = run_flow_kw(net, _tokens(digits), 0.5, out=tmp_path, **TINY)
    art = _check(rep, 8 * 8 * 8 + 8 * 8 * 16 + 128 * 10)
    fc1 = next(r for r in art.layers if r.name == "fc1")
    assert fc1.in_shape == (8, 8) and fc1.out_shape == (8, 8) and fc1.vectors == 8
    assert fc1.x.shape == (4, 8, 8) and fc1.im2col_inputs().shape == (32, 8)
    assert rep["accuracy"]["float"] > 0.5


class OddCNN(nn.Module):
    """conv1/bn1 naming, bias-free, grouped, dilated, strided and non-square convolutions."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=2, bias=False), nn.BatchNorm2d(8)
        self.conv3 = nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False)            # 8x8 -> 4x4
        self.conv4 = nn.Conv2d(16, 16, (1, 3), stride=(1, 2), padding=(0, 1))       # 4x4 -> 4x2
        self.fc = nn.Linear(16 * 4 * 2, 10)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.relu(self.conv4(F.relu(self.conv3(x))))
        return self.fc(torch.flatten(x, 1))


def test_cnn_grouped_dilated_strided(digits, tmp_path):
    rep = run_flow_kw(OddCNN(), digits, 0.5, out=tmp_path, **TINY)
    macs = 8 * 64 * 9 + 8 * 64 * (4 * 9) + 16 * 16 * (8 * 9) + 16 * 8 * (16 * 3) + 128 * 10
    art = _check(rep, macs)
    assert {(b["name"], b["into"]) for b in rep["batchnorm"]} == {("bn1", "conv1"), ("bn2", "conv2")}
    groups = [r for r in art.layers if r.name.startswith("conv2.")]
    assert [r.group for r in groups] == [(0, 2), (1, 2)]
    assert all(r.dilation == (2, 2) and r.in_shape == (4, 8, 8) and r.compiled.K == 36 for r in groups)
    c4 = next(r for r in art.layers if r.name == "conv4")
    assert c4.stride == (1, 2) and c4.padding == (0, 1) and c4.out_shape == (16, 4, 2)


class PreAct(nn.Module):
    """A pre-activation residual block: conv(relu(bn(x))) with attributes bn / conv."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.bn, self.conv = nn.BatchNorm2d(8), nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.conv(F.relu(self.bn(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def test_preactivation_bn_is_not_folded(digits, tmp_path):
    rep = run_flow_kw(PreAct(), digits, 0.5, out=tmp_path, **TINY)
    _check(rep, 8 * 64 * 9 + 8 * 64 * 72 + 8 * 10)
    (bn,) = rep["batchnorm"]
    assert not bn["folded"] and "also feeds" in bn["reason"]
    art = gart.load(rep["artifact"])
    assert any(r.kind == "simd" and r.op == "norm" and r.name == "bn" for r in art.layers)


class TinyTransformer(nn.Module):
    """Embedding Linear, nn.MultiheadAttention (sequence-first), LayerNorm, GELU feed-forward."""

    def __init__(self, E=16, H=2):
        super().__init__()
        self.embed = nn.Linear(8, E)
        self.attn = nn.MultiheadAttention(E, H)
        self.ln1, self.ln2 = nn.LayerNorm(E), nn.LayerNorm(E)
        self.ff1, self.ff2 = nn.Linear(E, 2 * E), nn.Linear(2 * E, E)
        self.head = nn.Linear(E, 10)

    def forward(self, x):
        h = self.embed(x).transpose(0, 1)  # (L, B, E)
        a, _ = self.attn(h, h, h)
        h = self.ln1(h + a)
        h = self.ln2(h + self.ff2(F.gelu(self.ff1(h))))
        return self.head(h.mean(0))


def test_transformer_block_with_multihead_attention(digits, tmp_path):
    net = TinyTransformer()
    before = copy.deepcopy(net.state_dict())
    rep = run_flow_kw(net, _tokens(digits), 0.5, out=tmp_path, **TINY)
    L, E, H = 8, 16, 2
    mapped = L * 8 * E + 4 * L * E * E + 2 * L * E * 2 * E + E * 10
    attn = 2 * H * L * L * (E // H)
    art = _check(rep, mapped + attn)
    assert rep["macs"]["mapped"] == mapped and rep["macs"]["simd"] == attn
    names = {r.name for r in art.mapped_layers()}
    assert {"attn.q_proj", "attn.k_proj", "attn.v_proj", "attn.out_proj", "ff1", "ff2"} <= names
    ff1 = next(r for r in art.layers if r.name == "ff1")
    assert ff1.in_shape == (8, 16) and ff1.x.shape == (4, 8, 16)  # sequence-first input, samples first
    ops = {r.op for r in art.layers if r.kind == "simd"}
    assert {"matmul", "softmax", "layernorm", "gelu", "add"} <= ops
    assert any("decomposed" in n for n in rep["notes"])
    # the caller's module is untouched
    assert isinstance(net.attn, nn.MultiheadAttention)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


class Conv1dNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.bn1 = nn.Conv1d(8, 16, 3, padding=1), nn.BatchNorm1d(16)
        self.c2 = nn.Conv1d(16, 16, 3, padding=2, dilation=2)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = F.relu(self.bn1(self.c1(x)))
        return self.fc(F.relu(self.c2(x)).mean(-1))


def test_conv1d_network(digits, tmp_path):
    rep = run_flow_kw(Conv1dNet(), _tokens(digits), 0.5, out=tmp_path, **TINY)
    art = _check(rep, 16 * 8 * 24 + 16 * 8 * 48 + 160)
    c2 = next(r for r in art.layers if r.name == "c2")
    assert c2.kind == "conv2d" and c2.kernel == (1, 3) and c2.dilation == (1, 2) and c2.in_shape == (16, 1, 8)
    assert rep["batchnorm"][0]["folded"]


class CatUp(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(1, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
        self.c, self.fc = nn.Conv2d(16, 16, 1), nn.Linear(16, 10)

    def forward(self, x):
        a = F.relu(self.a(x))
        b = F.relu(self.b(F.max_pool2d(a, 2)))
        u = F.interpolate(b, scale_factor=2, mode="nearest")
        h = F.relu(self.c(torch.cat([a, u], 1)))
        return self.fc(h.mean((2, 3)))


def test_cat_and_interpolate_are_data_movement(digits, tmp_path):
    rep = run_flow_kw(CatUp(), digits, 0.5, out=tmp_path, **TINY)
    art = _check(rep, 8 * 64 * 9 + 8 * 16 * 72 + 16 * 64 * 16 + 160)
    moves = [r for r in art.layers if r.kind == "simd" and r.op == "move"]
    assert len(moves) == 2 and all(r.simd_ops == 0 and r.elements > 0 for r in moves)


class OnnxCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.bn = nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.fc = nn.Linear(16 * 16, 10)

    def forward(self, x):
        x = F.relu(self.c2(F.relu(self.bn(self.c1(x)))))
        return self.fc(torch.flatten(x, 1))


def test_onnx_file_from_torch_onnx_export(digits, tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    net = OnnxCNN().eval()
    f = tmp_path / "cnn.onnx"
    torch.onnx.export(net, (digits.x_test[:2],), str(f), dynamo=True, dynamic_shapes={"x": {0: "batch"}},
                      verbose=False)
    from dbpim.model.torch.onnx_import import load_onnx
    gm = load_onnx(f)
    sess = ort.InferenceSession(str(f))
    ref = sess.run(None, {sess.get_inputs()[0].name: digits.x_test[:5].numpy()})[0]
    np.testing.assert_allclose(gm(digits.x_test[:5]).detach().numpy(), ref, atol=1e-5)
    rep = run_flow_kw(str(f), digits, 0.5, out=tmp_path / "o", **TINY)
    _check(rep, 8 * 64 * 9 + 16 * 16 * 72 + 256 * 10)
    assert rep["network"] == "cnn"


class Untraceable(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow: cannot be traced
            return torch.relu(self.fc(x))
        return self.fc(x)


class WithUntraceable(nn.Module):
    def __init__(self):
        super().__init__()
        self.block, self.head = Untraceable(), nn.Linear(64, 10)

    def forward(self, x):
        return self.head(self.block(x).flatten(1))


def test_untraceable_module_is_kept_whole_and_named(digits, tmp_path):
    rep = run_flow_kw(WithUntraceable(), _tokens(digits), 0.5, out=tmp_path, **TINY)
    _check(rep, 8 * 8 * 8 + 640)
    (pt,) = [r for r in rep["layers"] if r["passed_through"]]
    assert pt["name"] == "block" and pt["macs"] == 512 and "cannot be traced" in pt["note"]
    assert rep["macs"]["mapped_share"] == pytest.approx(640 / 1152)


def test_fails_fast_naming_the_layer(digits, tmp_path):
    class Wrong(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(1, 4, 3, padding=1), nn.Linear(100, 10)

        def forward(self, x):
            return self.fc(self.conv(x).flatten(1))

    with pytest.raises(FlowError) as e:
        run_flow_kw(Wrong(), digits, 0.5, out=tmp_path / "o", **TINY)
    msg = str(e.value)
    assert "'fc'" in msg and "Linear" in msg and "\n" not in msg
    assert not (tmp_path / "o").exists()

    class Pair(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            y = self.fc(x.flatten(1))
            return y, y

    with pytest.raises(FlowError, match="must return one tensor"):
        run_flow_kw(Pair(), digits, 0.5, out=tmp_path / "p", **TINY)

"""Attention networks through ONNX: ``nn.MultiheadAttention`` and ``nn.TransformerEncoderLayer``
exported by both of torch's exporters (legacy ``dynamo=False`` and the default), read by
``model.torch.onnx_import.load_onnx`` (equal to the module and to onnxruntime) and compiled
by the flow with every mapped layer bit-exact."""

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from dbpim.model.torch.data import load_digits

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

torch.set_num_threads(2)
E, HEADS, SEQ, FEAT = 16, 2, 8, 8


class MHANet(nn.Module):
    """Digits as 8 tokens of 8 features -> Linear -> self-attention -> mean -> Linear."""

    def __init__(self, batch_first: bool):
        super().__init__()
        self.batch_first = batch_first
        self.inp = nn.Linear(FEAT, E)
        self.mha = nn.MultiheadAttention(E, HEADS, batch_first=batch_first)
        self.fc = nn.Linear(E, 10)
        with torch.no_grad():  # nn.MultiheadAttention starts its biases at zero: make them count
            self.mha.in_proj_bias.normal_(0, 0.1)
            self.mha.out_proj.bias.normal_(0, 0.1)

    def forward(self, x):
        h = self.inp(x)
        h = h if self.batch_first else h.transpose(0, 1)
        a, _ = self.mha(h, h, h, need_weights=False)
        a = a if self.batch_first else a.transpose(0, 1)
        return self.fc(a.mean(1))


class EncoderNet(nn.Module):
    """Digits as tokens -> Linear -> one nn.TransformerEncoderLayer (GELU) -> mean -> Linear."""

    def __init__(self, batch_first: bool, norm_first: bool = False):
        super().__init__()
        self.batch_first = batch_first
        self.inp = nn.Linear(FEAT, E)
        self.enc = nn.TransformerEncoderLayer(E, HEADS, 32, dropout=0.0, activation="gelu",
                                              batch_first=batch_first, norm_first=norm_first)
        self.fc = nn.Linear(E, 10)
        with torch.no_grad():
            self.enc.self_attn.in_proj_bias.normal_(0, 0.1)
            self.enc.self_attn.out_proj.bias.normal_(0, 0.1)

    def forward(self, x):
        h = self.inp(x)
        h = h if self.batch_first else h.transpose(0, 1)
        a = self.enc(h)
        a = a if self.batch_first else a.transpose(0, 1)
        return self.fc(a.mean(1))


def _net(kind: str, batch_first: bool, norm_first: bool = False) -> nn.Module:
    torch.manual_seed(0)
    return (MHANet(batch_first) if kind == "mha" else EncoderNet(batch_first, norm_first)).eval()


def _export(net: nn.Module, f, dynamo: bool, dynamic_batch: bool = True):
    if dynamo:
        pytest.importorskip("onnxscript")
    x = torch.randn(2, SEQ, FEAT)
    kw = {}
    if dynamic_batch:
        kw = {"dynamic_shapes": {"x": {0: "batch"}}} if dynamo else {"dynamic_axes": {"x": {0: "b"}}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), str(f), dynamo=dynamo, input_names=["x"], verbose=False, **kw)
    return f


def _linears(gm) -> list[str]:
    return [n for n, m in gm.named_modules() if isinstance(m, nn.Linear)]


CASES = [(k, bf, dyn) for k in ("mha", "encoder") for bf in (True, False) for dyn in (False, True)]


@pytest.mark.parametrize("kind, batch_first, dynamo", CASES)
def test_imported_graph_equals_the_module_and_onnxruntime(tmp_path, kind, batch_first, dynamo):
    from dbpim.model.torch.onnx_import import load_onnx
    net = _net(kind, batch_first)
    f = _export(net, tmp_path / "net.onnx", dynamo)
    gm = load_onnx(f)
    sess = ort.InferenceSession(str(f))
    for b in (1, 5):  # not the export's batch of 2
        x = torch.randn(b, SEQ, FEAT)
        got = gm(x).detach()
        torch.testing.assert_close(got, net(x).detach(), atol=1e-5, rtol=1e-4)
        np.testing.assert_allclose(got.numpy(), sess.run(None, {"x": x.numpy()})[0], atol=1e-5, rtol=1e-4)
    lin = _linears(gm)  # the packed in_proj is three Linear layers, as in the Python path
    assert len(lin) == (6 if kind == "mha" else 8), lin
    assert sum(n.endswith(("_q", "_k", "_v")) for n in lin) == 3, lin


@pytest.mark.parametrize("kind", ["mha", "encoder"])
def test_static_export_follows_the_batch(tmp_path, kind):
    """A legacy export with a fixed batch of 2 (the batch baked into every Reshape) runs on any batch."""
    from dbpim.model.torch.onnx_import import load_onnx
    net = _net(kind, False)
    gm = load_onnx(_export(net, tmp_path / "s.onnx", dynamo=False, dynamic_batch=False))
    for b in (1, 3):
        x = torch.randn(b, SEQ, FEAT)
        torch.testing.assert_close(gm(x).detach(), net(x).detach(), atol=1e-5, rtol=1e-4)


class MaskedMHANet(MHANet):
    """Self-attention with a causal mask, returning its attention weights too (the bmm path)."""

    def __init__(self):
        super().__init__(batch_first=False)
        self.register_buffer("causal", torch.ones(SEQ, SEQ, dtype=torch.bool).triu(1))

    def forward(self, x):
        h = self.inp(x).transpose(0, 1)
        a, w = self.mha(h, h, h, need_weights=True, attn_mask=self.causal)
        return self.fc(a.transpose(0, 1).mean(1)) + w.sum(-1).mean(-1, keepdim=True)


def test_legacy_variants(tmp_path):
    """Opset 16 (LayerNorm and GELU written out as ReduceMean/Sub/Pow/Sqrt/Div and Erf) and the
    attention-weights path with a mask (batch merged with the heads, B * H)."""
    from dbpim.model.torch.onnx_import import load_onnx
    torch.manual_seed(0)
    for net, kw in ((_net("encoder", False), {"opset_version": 16}), (MaskedMHANet().eval(), {})):
        f = tmp_path / "v.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(net, (torch.randn(2, SEQ, FEAT),), str(f), dynamo=False, input_names=["x"],
                              dynamic_axes={"x": {0: "b"}}, **kw)
        ops = {n.op_type for n in onnx.load(str(f)).graph.node}
        assert {"ReduceMean", "Pow", "Erf"} <= ops if kw else "Where" in ops or "Add" in ops
        gm = load_onnx(f)
        x = torch.randn(3, SEQ, FEAT)
        torch.testing.assert_close(gm(x).detach(), net(x).detach(), atol=1e-5, rtol=1e-4)
        assert len(_linears(gm)) == (8 if kw else 6)


def test_fixed_batch_of_one_is_refused_with_a_hint(tmp_path):
    from dbpim.model.torch.onnx_import import OnnxImportError, load_onnx
    f = tmp_path / "b1.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_net("mha", True), (torch.randn(1, SEQ, FEAT),), str(f), dynamo=False, input_names=["x"])
    with pytest.raises(OnnxImportError, match=r"node '/mha/Gemm' \(Gemm\): does not run on a batch of 2 .*fixes the "
                                              r"batch at 1.*dynamic_axes / dynamic_shapes, or a batch of 2\)$"):
        load_onnx(f)


def test_norm_first_encoder(tmp_path):
    from dbpim.model.torch.onnx_import import load_onnx
    net = _net("encoder", True, norm_first=True)
    gm = load_onnx(_export(net, tmp_path / "nf.onnx", dynamo=False))
    x = torch.randn(3, SEQ, FEAT)
    torch.testing.assert_close(gm(x).detach(), net(x).detach(), atol=1e-5, rtol=1e-4)
    assert len(_linears(gm)) == 8


def test_unsupported_op_is_one_line_naming_it(tmp_path):
    from onnx import TensorProto, helper

    from dbpim.model.torch.onnx_import import OnnxImportError, load_onnx
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["r"], name="act"),
                           helper.make_node("TopK", ["r", "k"], ["v", "i"], name="pick", axis=-1)], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 6])],
                          [helper.make_tensor_value_info("v", TensorProto.FLOAT, ["b", 2])],
                          [helper.make_tensor("k", TensorProto.INT64, [1], [2])])
    f = tmp_path / "topk.onnx"
    onnx.save(helper.make_model(g), str(f))
    with pytest.raises(OnnxImportError) as e:
        load_onnx(f)
    msg = str(e.value)
    assert "\n" not in msg and "node 'pick' (TopK): not supported" in msg and "run_flow" in msg


def test_dynamic_sequence_needs_the_sample_shape(tmp_path):
    from dbpim.model.torch.onnx_import import OnnxImportError, load_onnx
    net = _net("mha", True)
    pytest.importorskip("onnxscript")
    f = tmp_path / "seq.onnx"  # the legacy exporter bakes the sequence length into MHA's reshapes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.randn(2, SEQ, FEAT),), str(f), dynamo=True, input_names=["x"],
                          dynamic_shapes={"x": {0: "b", 1: "seq"}}, verbose=False)
    with pytest.raises(OnnxImportError, match="dynamic axis other than the batch"):
        load_onnx(f)
    with pytest.raises(OnnxImportError, match=r"has shape \['\?', '\?', 8\] .*samples have shape \[8, 4\]$"):
        load_onnx(f, input_shape=(8, 4))
    gm = load_onnx(f, input_shape=(5, FEAT))  # folded for 5 tokens
    x = torch.randn(3, 5, FEAT)
    torch.testing.assert_close(gm(x).detach(), net(x).detach(), atol=1e-5, rtol=1e-4)


# ----------------------------------------------------------------------------- through the flow

TINY = dict(epochs=2, finetune_epochs=0.5, qat_epochs=0.5, n_train=256, n_test=64, lr=1e-2, progress=False,
            hw="small", compare=False, plots=False, batch_size=32)


@pytest.fixture(scope="module")
def tokens():
    d = load_digits(0)
    return (d.x_train[:, 0], d.y_train), (d.x_test[:, 0], d.y_test)


def compile_onnx(f, data, out) -> dict:
    """The one place these tests call the flow (tiny schedule)."""
    from flow_helpers import run_flow_kw
    return run_flow_kw(str(f), data, 0.5, out=out, **TINY)


@pytest.mark.parametrize("kind, batch_first, dynamo", [("mha", True, False), ("mha", False, True),
                                                        ("encoder", False, False), ("encoder", True, True)])
def test_flow_compiles_attention_bit_exact(tmp_path, tokens, kind, batch_first, dynamo):
    from dbpim.model import artifact as gart
    f = _export(_net(kind, batch_first), tmp_path / f"{kind}.onnx", dynamo)
    rep = compile_onnx(f, tokens, tmp_path / "out")
    mapped = [r["name"] for r in rep["layers"] if not r["passed_through"]]
    assert len(mapped) == (6 if kind == "mha" else 8), mapped
    checks = rep["integer_check"]
    assert len(checks) == len(mapped) and all(c["equal"] for c in checks)
    art = gart.load(rep["artifact"])
    assert len(art.mapped_layers()) == len(mapped)
    ops = {r.op for r in art.layers if r.kind == "simd"}
    assert {"matmul", "softmax"} <= ops, ops
    # every projection runs on its tokens: (tokens, features) per sample
    for layer in art.mapped_layers():
        assert layer.in_shape[0] == SEQ or layer.in_shape == (E,), (layer.name, layer.in_shape)

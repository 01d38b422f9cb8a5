"""Capture by dataflow (attention decomposition, BatchNorm plan), the ONNX reader, model and
data sources, and the CLI with the user's own files."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from dbpim.model.torch.attention import DecomposedMHA, decompose_attention
from dbpim.model.torch.data import DataError, as_data, load_npz
from dbpim.cli import main as dbpim
from dbpim.model.torch.graph import capture, fold_bn
from dbpim.model.torch.sources import ModelError, load_model

torch.set_num_threads(2)


@pytest.mark.parametrize("batch_first", [True, False])
def test_decomposed_attention_equals_multihead_attention(batch_first):
    torch.manual_seed(0)
    m = nn.MultiheadAttention(8, 2, batch_first=batch_first, kdim=6, vdim=6).eval()
    d = DecomposedMHA(m).eval()
    q, k, v = torch.randn(3, 5, 8), torch.randn(3, 7, 6), torch.randn(3, 7, 6)
    if not batch_first:
        q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)
    am = torch.rand(5, 7) > 0.7
    am[:, 0] = False
    kpm = torch.rand(3, 7) > 0.8
    kpm[:, 0] = False
    for kw in ({}, {"attn_mask": am}, {"key_padding_mask": kpm}, {"attn_mask": torch.randn(6, 5, 7)},
               {"need_weights": False}, {"average_attn_weights": False}):
        a, b = m(q, k, v, **kw), d(q, k, v, **kw)
        torch.testing.assert_close(b[0], a[0], atol=1e-6, rtol=1e-5)
        assert (a[1] is None) == (b[1] is None)
        if a[1] is not None:
            torch.testing.assert_close(b[1], a[1], atol=1e-6, rtol=1e-5)


def test_attention_inside_torch_layers_is_kept_whole():
    enc = nn.Sequential(nn.TransformerEncoderLayer(8, 2, 16, batch_first=True))
    done, kept = decompose_attention(enc)
    assert not done and kept and "reads its attention's fused weights" in kept[0]["note"]
    cap = capture(enc, torch.randn(2, 5, 8))
    assert not cap.mapped and any(p["kind"] == "module" for p in cap.passed)


def test_bn_folding_follows_dataflow_and_keeps_function():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(2, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)  # folds
            self.bn, self.conv = nn.BatchNorm2d(4), nn.Conv2d(4, 4, 3, padding=1)               # pre-activation
            self.side, self.bn3 = nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)                         # producer used twice

        def forward(self, x):
            x = F.relu(self.bn1(self.conv1(x)))
            x = x + self.conv(F.relu(self.bn(x)))
            s = self.side(x)
            return self.bn3(s) + s

    torch.manual_seed(0)
    net = Net()
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(8, 2, 6, 6))
    net.eval()
    x = torch.randn(3, 2, 6, 6)
    ref = net(x)
    cap = capture(net, x)
    plan = {b["name"]: b for b in cap.bn}
    assert plan["bn1"]["folded"] and plan["bn1"]["into"] == "conv1"
    assert not plan["bn"]["folded"] and "not a mapped conv/linear" in plan["bn"]["reason"]
    assert not plan["bn3"]["folded"] and "also feeds" in plan["bn3"]["reason"]
    assert fold_bn(cap) == ["bn1"]
    torch.testing.assert_close(cap.gm(x), ref, atol=1e-5, rtol=1e-5)


def test_shared_and_direct_weights_are_not_mapped():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.out, self.fc = nn.Embedding(10, 4), nn.Linear(4, 10, bias=False), nn.Linear(4, 4)
            self.out.weight = self.emb.weight

        def forward(self, ids):
            h = self.fc(self.emb(ids)).mean(1)
            return self.out(h) + h @ self.fc.weight.sum(0, keepdim=True).t()

    cap = capture(Tied(), torch.randint(0, 10, (2, 3)))
    notes = {p["name"]: p["note"] for p in cap.passed}
    assert cap.mapped == [] and "shared with 'emb'" in notes["out"] and "read directly" in notes["fc"]


def _onnx_file(tmp_path, dynamo):
    pytest.importorskip("onnx")
    if dynamo:
        pytest.importorskip("onnxscript")
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(4, 8, 3, padding=2, dilation=2, groups=2), nn.ReLU(), nn.Flatten(),
                        nn.Linear(8 * 16, 10)).eval()
    f = tmp_path / f"net{int(dynamo)}.onnx"
    kw = {"dynamic_shapes": {"input": {0: "batch"}}} if dynamo else {"dynamic_axes": {"input": {0: "b"}},
                                                                       "input_names": ["input"]}
    torch.onnx.export(net, (torch.randn(2, 1, 8, 8),), str(f), dynamo=dynamo, verbose=False, **kw)
    return net, f


@pytest.mark.parametrize("dynamo", [False, True])
def test_onnx_reader_equals_the_network(tmp_path, dynamo):
    net, f = _onnx_file(tmp_path, dynamo)
    from dbpim.model.torch.onnx_import import load_onnx
    gm = load_onnx(f)
    x = torch.randn(5, 1, 8, 8)
    torch.testing.assert_close(gm(x), net(x), atol=1e-5, rtol=1e-4)
    kinds = {type(m).__name__ for m in gm.children()}
    assert {"Conv2d", "Linear"} <= kinds


def test_onnx_errors_name_the_file_and_node(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper
    g = helper.make_graph([helper.make_node("Hardmax", ["x"], ["y"], name="hm")], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    f = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(g), str(f))
    with pytest.raises(ModelError, match=r"bad.onnx: node 'hm' \(Hardmax\): not supported; supported ops: "):
        load_model(str(f))
    (tmp_path / "junk.onnx").write_text("nope")
    with pytest.raises(ModelError, match="junk.onnx: not a valid ONNX model"):
        load_model(str(tmp_path / "junk.onnx"))
    with pytest.raises(ModelError, match="missing.onnx: file not found"):
        load_model(str(tmp_path / "missing.onnx"))
    with pytest.raises(ModelError, match="unknown kind of file"):
        load_model(str(tmp_path / "w.h5"))


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(64, 32), nn.Linear(32, 10)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


def _npz(tmp_path):
    rng = np.random.default_rng(0)
    f = tmp_path / "d.npz"
    x = rng.normal(size=(96, 1, 8, 8)).astype(np.float32)
    y = (x.reshape(96, -1)[:, :32].sum(1) > 0).astype(np.int64)
    np.savez(f, x_train=x[:64], y_train=y[:64], x_test=x[64:], y_test=y[64:])
    return f


def test_data_sources(tmp_path):
    d = load_npz(_npz(tmp_path))
    assert d.x_train.shape == (64, 1, 8, 8) and d.num_classes == 2 and d.y_test.dtype == torch.int64
    tr = TensorDataset(d.x_train, d.y_train)
    for data in ((tr, DataLoader(TensorDataset(d.x_test, d.y_test), batch_size=7)),
                 {"train": (d.x_train.numpy(), d.y_train.numpy()), "test": (d.x_test, d.y_test)},
                 (d.x_train, d.y_train, d.x_test, d.y_test)):
        u = as_data(data)
        assert torch.equal(u.x_train, d.x_train) and torch.equal(u.y_test, d.y_test)
    bad = tmp_path / "bad.npz"
    np.savez(bad, x_train=np.zeros((2, 3)), y_train=np.zeros(2), x_test=np.zeros((2, 3)))
    with pytest.raises(DataError, match=r"bad.npz: missing array 'y_test' \(an .npz needs x_train, y_train"):
        load_npz(bad)
    np.savez(bad, x_train=np.zeros((2, 3)), y_train=np.array([0.5, 1]), x_test=np.zeros((2, 3)), y_test=np.zeros(2))
    with pytest.raises(DataError, match="y_train: labels must be integers"):
        load_npz(bad)
    with pytest.raises(DataError, match="data: train: must be an .x, y. pair"):
        as_data((object(), tr))


def test_cli_with_own_files(tmp_path, capsys):
    pytest.importorskip("safetensors")
    from safetensors.torch import save_file
    f = _npz(tmp_path)
    torch.manual_seed(0)
    save_file(Mlp().state_dict(), str(tmp_path / "w.safetensors"))
    common = ["--data", str(f), "--epochs", "1", "--finetune-epochs", "0.5", "--qat-epochs", "0.5", "--no-compare",
              "--hw", "small", "-q"]
    rc = dbpim(["compile", "--model", str(tmp_path / "w.safetensors"), "--model-class", "test_torch_capture_io:Mlp",
               "--out", str(tmp_path / "o1")] + common)
    assert rc == 0 and "MACs on the macros: 100.0 %" in capsys.readouterr().out
    assert dbpim(["compile", "--model", str(tmp_path / "w.safetensors"), "--model-class", "smallcnn",
                 "--out", str(tmp_path / "o2")] + common) == 2
    err = capsys.readouterr().err.strip()
    assert "w.safetensors: not a state dict for smallcnn" in err and len(err.splitlines()) == 1
    assert dbpim(["compile", "--model", "smallcnn", "--data", str(tmp_path / "none.npz"),
                  "--out", str(tmp_path / "o3")]) == 2
    assert "none.npz: file not found" in capsys.readouterr().err

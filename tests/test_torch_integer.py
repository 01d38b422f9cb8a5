"""The torch integer inference path equals model.layer.run_layer layer by layer, and
the exported artifact is complete and loads."""

import numpy as np
import pytest
import torch

from dbpim.model import artifact as gart
from dbpim.model import csd
from dbpim.model.compile import compile_layer
from dbpim.model.config import load_config
from dbpim.model.layer import im2col, run_layer
from dbpim.model.torch import prune as tprune
from dbpim.model.torch import qat as tqat
from dbpim.model.torch.export import export, graph_ops, record_int
from dbpim.model.torch.flow import Stages
from dbpim.model.torch.graph import capture
from dbpim.model.torch.zoo import get_model

torch.set_num_threads(2)
SMALL = load_config("small").macro


def _frozen(name, width, shape, seed=0, sparsity=0.5, G=2, phi_max=2):
    torch.manual_seed(seed)
    net = get_model(name, 10, width=width).eval()
    x = torch.randn(6, *shape)
    net.train()
    with torch.no_grad():
        net(x)  # BN statistics
    net.eval()
    st = Stages(capture(net, x), G)
    st.prune(sparsity)
    st.quantize(x, fta=True, phi_max=phi_max)
    st.freeze()
    return st.net, x


def _check_layers(net, x, macro, G):
    recs = record_int(net, x)
    assert recs
    for name, q in tqat.qlayers(net):
        x_int, y_int = (t.numpy() for t in recs[name])
        w = q.w_int.numpy().astype(np.int8)
        mask = q.inner.dbpim_block_mask.numpy()
        phi = q.phi.numpy().astype(np.uint8)
        # the frozen weights are FTA-compliant: every kept weight has exactly phi_f digits
        kept = tprune.expand_group_mask(mask, w.shape[1], q.groups, G)
        nz = csd.nnz(w)
        assert np.all(nz[kept] == np.broadcast_to(phi[None, :], w.shape)[kept]), name
        assert np.all(w[~kept] == 0)
        comp = compile_layer(w, phi, mask, macro, G)
        signed = bool(q.act.signed)
        lo, hi = (-128, 127) if signed else (0, 255)
        assert x_int.min() >= lo and x_int.max() <= hi
        if q.is_conv:
            c = q.inner
            cols = im2col(x_int.astype(np.int64), c.kernel_size[0], c.kernel_size[1], c.stride[0], c.padding[0])
            ref = y_int.transpose(0, 2, 3, 1).reshape(-1, y_int.shape[1])
        else:
            cols, ref = x_int.astype(np.int64), y_int
        res = run_layer(cols, comp, signed=signed)
        assert res.out.dtype == np.int64
        np.testing.assert_array_equal(res.out.astype(np.int64), ref.astype(np.int64), err_msg=name)


def test_smallcnn_integer_path_matches_run_layer():
    net, x = _frozen("smallcnn", 0.5, (1, 8, 8), G=SMALL.group_size)
    assert any(bool(q.act.signed) for _, q in tqat.qlayers(net))       # first layer: signed input
    assert any(not bool(q.act.signed) for _, q in tqat.qlayers(net))   # post-ReLU: unsigned
    _check_layers(net, x[:2], SMALL, SMALL.group_size)


@pytest.mark.parametrize("name", ["resnet18", "mobilenetv2"])
def test_residual_nets_integer_path_matches_run_layer(name):
    net, x = _frozen(name, 0.125, (3, 32, 32), G=SMALL.group_size)
    _check_layers(net, x[:1], SMALL, SMALL.group_size)


@torch.no_grad()
def test_integer_path_close_to_fake_quant():
    net, x = _frozen("smallcnn", 1.0, (1, 8, 8), G=8)
    y_int = net(x)
    tqat.set_mode(net, "qat")
    for _, q in tqat.qlayers(net):
        q.act.frozen = True
    net.eval()
    y_fq = net(x)
    assert torch.allclose(y_int, y_fq, atol=1e-2 * float(y_fq.abs().max()))


def test_export_artifact_roundtrip(tmp_path):
    paper = load_config("paper").macro
    net, x = _frozen("mobilenetv2", 0.125, (3, 32, 32), G=paper.group_size)
    p = export(net, "mobilenetv2", paper, tmp_path / "art", x[:2], meta={"k": 1})
    art = gart.load(p)
    mapped = art.mapped_layers()
    assert len(mapped) == len(tqat.qlayers(net))
    simd = [layer for layer in art.layers if layer.kind == "simd"]
    ops = {layer.op for layer in simd}
    assert {"depthwise", "add", "relu", "pool"} <= ops
    assert all(layer.simd_ops > 0 for layer in simd)
    # recorded inputs reproduce the torch accumulators through the golden model
    recs = record_int(net, x[:2])
    for layer in mapped[:3] + mapped[-1:]:
        res = run_layer(layer.im2col_inputs().astype(np.int64), layer.compiled, signed=layer.signed_input)
        y = recs[layer.name][1].numpy()
        ref = y.transpose(0, 2, 3, 1).reshape(-1, y.shape[1]) if y.ndim == 4 else y
        np.testing.assert_array_equal(res.out, ref.astype(np.int64))
    # the order of layers is execution order and shapes chain
    names = [o["name"] for o in graph_ops(net, x[:1])]
    assert names[0] == "features.0.conv"


def test_export_never_half_written(tmp_path, monkeypatch):
    net, x = _frozen("smallcnn", 0.5, (1, 8, 8), G=SMALL.group_size)
    import dbpim.model.torch.export as ex

    def boom(*a, **k):
        raise RuntimeError("disk full")
    monkeypatch.setattr(ex.gart.np, "savez_compressed", boom)
    with pytest.raises(RuntimeError):
        export(net, "smallcnn", SMALL, tmp_path / "art", x[:1])
    assert not (tmp_path / "art").exists()
    assert list(tmp_path.iterdir()) == []

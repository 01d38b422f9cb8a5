"""Block pruning and FTA-aware QAT of the PyTorch front-end."""

import numpy as np
import pytest
import torch
from torch import nn

from dbpim.model import csd, fta
from dbpim.model import prune as gprune
from dbpim.model.torch import prune as tprune
from dbpim.model.torch import qat as tqat
from dbpim.model.torch.flow import Stages
from dbpim.model.torch.graph import capture, fold_bn
from dbpim.model.torch.train import train
from dbpim.model.torch.zoo import get_model


def _captured(net, x, G=4):
    return Stages(capture(net, x), G)

torch.set_num_threads(2)


def test_masks_use_im2col_layout():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 10, 3)
    net = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), nn.Linear(10 * 4 * 4, 5))
    st = _captured(net, torch.randn(2, 3, 6, 6))
    assert st.cap.mapped == ["0", "3"]
    masks = st.prune(0.5)
    W = net[0].weight.detach().reshape(10, -1).t().double().numpy()       # K = 27 in (c, i, j) order
    assert masks["0"].shape == (27, 3) and masks["3"].shape == (160, 2)
    kn = tprune.expand_group_mask(masks["0"], 10, 1, 4)
    assert torch.all(tprune.weight_kn(st.layers()["0"])[torch.from_numpy(~kn)] == 0)
    assert abs(tprune.layer_sparsity(st.layers()["0"]) - 0.5) < 0.02
    # the scores are those of the unpruned weights (BN-free network)
    torch.manual_seed(0)
    W = nn.Conv2d(3, 10, 3).weight.detach().reshape(10, -1).t().double().numpy()
    np.testing.assert_array_equal(masks["0"], gprune.block_mask(W, 4, 0.5))


def test_grouped_masks_are_per_conv_group():
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 12, 3, groups=2, bias=False)
    W = tprune.weight_kn(conv).detach().double().numpy()  # K = 2 * 9 rows per group, N = 12
    bm = tprune.group_block_mask(W, 2, 4, 0.5)
    assert bm.shape == (18, 4)  # 2 groups x ceil(6 / 4) blocks
    np.testing.assert_array_equal(bm[:, :2], gprune.block_mask(W[:, :6], 4, 0.5))
    np.testing.assert_array_equal(bm[:, 2:], gprune.block_mask(W[:, 6:], 4, 0.5))
    full = tprune.expand_group_mask(bm, 12, 2, 4)
    np.testing.assert_array_equal(full[:, :6], gprune.expand_mask(bm[:, :2], 6, 4))


def test_pruned_weights_stay_zero_during_training():
    torch.manual_seed(0)
    net = get_model("smallcnn", 10, width=0.5)
    st = _captured(net, torch.randn(2, 1, 8, 8))
    st.prune(0.6)
    zero = {n: (m.weight == 0).clone() for n, m in st.layers().items()}
    x, y = torch.randn(64, 1, 8, 8), torch.randint(0, 10, (64,))
    train(st.net, x, y, epochs=2, lr=1e-2, batch_size=16, weight_decay=1e-3)
    for n, m in st.layers().items():
        assert torch.all(m.weight[zero[n]] == 0), n
        assert (m.weight != 0).any()


def test_depthwise_passes_through():
    net = get_model("mobilenetv2", 10, width=0.125)
    st = _captured(net, torch.randn(2, 3, 32, 32), G=8)
    masks = st.prune(0.5)
    pt = st.cap.passed
    assert pt and all(p["kind"] == "conv2d" and "depthwise" in p["note"] and "SIMD" in p["note"] for p in pt)
    assert not set(st.cap.mapped) & {p["name"] for p in pt} and set(masks) == set(st.cap.mapped)
    dw = st.cap.modules()[pt[0]["name"]]
    assert not hasattr(dw, "dbpim_mask") and (dw.weight != 0).all()


def test_fold_bn_keeps_function_and_zeros():
    torch.manual_seed(0)
    net = get_model("resnet18", 10, width=0.125)
    x = torch.randn(4, 3, 32, 32)
    net.train()
    with torch.no_grad():
        net(x)
    net.eval()
    st = _captured(net, x)
    st.prune(0.5)
    ref = st.net(x)
    folded = fold_bn(st.cap)
    assert len(folded) == 20 and not any(isinstance(m, nn.BatchNorm2d) for m in st.net.modules())
    assert all(b["folded"] for b in st.cap.bn)
    assert torch.allclose(st.net(x), ref, atol=1e-4)
    for m in st.layers().values():
        if hasattr(m, "dbpim_mask"):
            assert torch.all(m.weight[m.dbpim_mask == 0] == 0)


@pytest.mark.parametrize("seed", range(4))
def test_torch_fta_bit_exact_with_golden(seed):
    rng = np.random.default_rng(seed)
    K, N = int(rng.integers(1, 70)), int(rng.integers(1, 40))
    u = rng.normal(0, rng.choice([2, 20, 60, 300]), (K, N)).astype(np.float32)
    half = rng.random((K, N)) < 0.3
    u[half] = np.round(u[half] * 2) / 2            # exact ties
    m = rng.random((K, N)) < 0.6
    for pm in (1, 2, 3, 4):
        for pmin in range(pm + 1):
            w, phi = fta.quantize(u, m, pmin, pm)
            wt, pt = tqat.fta_quantize(torch.from_numpy(u), torch.from_numpy(m), pmin, pm)
            np.testing.assert_array_equal(wt.numpy(), w)
            np.testing.assert_array_equal(pt.numpy(), phi)


def test_torch_approximate_on_fine_grid():
    u = np.arange(-140.0, 140.0, 0.125, dtype=np.float64)
    for phi in range(5):
        got = tqat.fta_approximate(torch.from_numpy(u), torch.tensor(phi)).numpy()
        np.testing.assert_array_equal(got, fta.approximate(u, phi, phi_max=4))


def test_activation_quantizer_ema_and_sign():
    aq = tqat.ActQuant(momentum=0.5)
    aq.train()
    aq(torch.tensor([0.0, 2.0]))
    assert not bool(aq.signed) and float(aq.rmax) == 2.0
    aq(torch.tensor([0.0, 4.0]))
    assert float(aq.rmax) == 3.0 and abs(float(aq.scale()) - 3 / 255) < 1e-9
    assert aq.to_int(torch.tensor([-1.0, 100.0])).tolist() == [0, 255]
    sq = tqat.ActQuant()
    sq.train()
    sq(torch.tensor([-1.0, 0.5]))
    assert bool(sq.signed) and sq.bounds == (-128, 127)


def test_qat_ste_gradients_and_freeze():
    torch.manual_seed(0)
    x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 10, (32,))
    st = _captured(get_model("smallcnn", 10, width=0.5), x)
    st.prune(0.5)
    st.quantize(x, fta=True, phi_max=2)
    net = st.net
    net.train()
    loss = nn.functional.cross_entropy(net(x), y)
    loss.backward()
    for n, q in tqat.qlayers(net):
        g = q.inner.weight.grad
        assert g is not None and g.abs().sum() > 0, n
        assert torch.all(g[q.inner.dbpim_mask == 0] == 0)
        assert q.phi.max() <= 2
    tqat.freeze(net)
    for _, q in tqat.qlayers(net):
        w = q.w_int.numpy().astype(np.int64)
        m = q.mask_kn().numpy()
        ref, phi = fta.quantize((tprune.weight_kn(q.inner).detach() / q.w_scale).double().numpy(), m, 0, 2)
        np.testing.assert_array_equal(w, ref)
        assert np.all(csd.nnz(w)[m] == np.broadcast_to(phi, w.shape)[m])
    with pytest.raises(ValueError, match="mode"):
        tqat.set_mode(net, "fp16")

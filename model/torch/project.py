"""Projected fine-tune: train a frozen network under another weight constraint.

``dbpim compare`` fine-tunes the compiled network once per ReRAM scheme
(SME's bit-slice pattern, ERA-BS's exponent quantization and bit flip,
ReRAM-Sharing's shared blocks): every forward pass computes with the
projection of the current float weights onto the scheme's constraint and the
gradient passes straight through to the float weights (STE), exactly as the
FTA-aware QAT does for DB-PIM (:class:`model.torch.qat.QLayer` in ``qat``
mode with its ``projection`` set). The network's block masks, activation
scales and per-filter weight scales stay fixed; biases and every unmapped
parameter train too. At the end the projected weights are frozen onto the
integer path, so the result is evaluated exactly as the compiled network is.

The network passed in is never changed: the fine-tune works on a deep copy.
"""

from __future__ import annotations

import copy
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from model.torch.qat import qlayers
from model.torch.train import train

__all__ = ["Start", "projected_finetune"]

#: One mapped layer's start: (int8 weights K x N, per-filter scale (N,), projection).
#: The projection maps ``u = W / scale`` (K x N float64) to K x N integer weights.
Start = tuple[np.ndarray, np.ndarray, Callable[[np.ndarray], np.ndarray]]


def projected_finetune(net: nn.Module, starts: Sequence[Start], x: torch.Tensor, y: torch.Tensor, *,
                       epochs: float, lr: float, batch_size: int = 64, seed: int = 0
                       ) -> tuple[nn.Module, list[np.ndarray]]:
    """Fine-tune a copy of the frozen ``net`` with every mapped layer's weights projected.

    Parameters
    ----------
    net : nn.Module
        A frozen network (every :class:`~model.torch.qat.QLayer` on the integer path).
    starts : sequence of Start
        One per QLayer, in :func:`~model.torch.qat.qlayers` order: the int8
        weights the layer starts from (its float weights become
        ``w * scale``), the fixed scale, and the projection.
    x, y : torch.Tensor
        Training samples and labels.
    epochs, lr, batch_size, seed
        As :func:`model.torch.train.train` takes them; ``epochs = 0`` gives
        the projection of the start weights without training.

    Returns
    -------
    net : nn.Module
        The fine-tuned copy, frozen on the integer path with the projected weights.
    weights : list of ndarray of int8
        Each QLayer's final projected weights (K x N).
    """
    work = copy.deepcopy(net)
    qs = [q for _, q in qlayers(work)]
    if len(starts) != len(qs):
        raise ValueError(f"starts: one per mapped layer ({len(qs)}), got {len(starts)}")
    if any(q.mode != "int" for q in qs):
        raise ValueError("net: must be frozen (every mapped layer on the integer path)")
    for q, (w, scale, proj) in zip(qs, starts):
        W = q.inner.weight
        w = np.asarray(w, np.float64)
        if w.shape != tuple(q.w_int.shape):
            raise ValueError(f"starts: weights of shape {tuple(q.w_int.shape)} expected, got {w.shape}")
        with torch.no_grad():
            W.copy_(torch.from_numpy(w * np.asarray(scale, np.float64)[None, :]).to(W.dtype).t().reshape(W.shape))
            q.w_scale.copy_(torch.from_numpy(np.asarray(scale, np.float64)).to(q.w_scale.dtype))
        q.projection = proj
        q.mode = "qat"
    train(work, x, y, epochs, lr, batch_size=batch_size, seed=seed)
    out = []
    for q in qs:
        w, _, _ = q.quant_weight()
        wi = w.detach().numpy()
        if wi.size and (np.any(wi != np.rint(wi)) or wi.min() < -128 or wi.max() > 127):
            raise ValueError("projection: must return int8 values")
        out.append(wi.astype(np.int8))
        q.w_int = w.detach().clone().float()
        q.projection = None
        q.mode = "int"
    work.eval()
    return work, out

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

ERA-BS also prunes activations: :func:`crossbar_pruned_op` computes a mapped
layer on im2col inputs whose small OU row segments are zeroed, the torch twin
of :func:`model.reram.prune_segments` (exact on the integer path; in training
the pruned inputs pass no gradient).

The network passed in is never changed: the fine-tune works on a deep copy.
"""

from __future__ import annotations

import copy
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dbpim.model.spec import WEIGHT_MAX, WEIGHT_MIN
from dbpim.model.torch.graph import conv_padding
from dbpim.model.torch.qat import qlayers
from dbpim.model.torch.train import train

__all__ = ["Start", "projected_finetune", "crossbar_pruned_op"]

#: One mapped layer's start: (int8 weights K x N, per-filter scale (N,), projection).
#: The projection maps ``u = W / scale`` (K x N float64) to K x N integer weights.
Start = tuple[np.ndarray, np.ndarray, Callable[[np.ndarray], np.ndarray]]


def _keep_mask(codes: torch.Tensor, kdim: int, groups: int, ou_rows: int, threshold: int) -> torch.Tensor:
    """Which inputs survive the pruning: ``codes`` hold integer inputs with the im2col K axis at ``kdim``
    (K = groups x the group's K); segments of ``ou_rows`` restart in every group."""
    c = codes.abs().movedim(kdim, -1)
    kg = c.shape[-1] // groups
    nseg = -(-kg // ou_rows)
    parts = []
    for j in range(groups):
        cg = F.pad(c[..., j * kg:(j + 1) * kg], (0, nseg * ou_rows - kg))
        keep = cg.reshape(*cg.shape[:-1], nseg, ou_rows).amax(-1) > threshold
        parts.append(keep.repeat_interleave(ou_rows, dim=-1)[..., :kg])
    return torch.cat(parts, -1).movedim(-1, kdim).to(codes.dtype)


def crossbar_pruned_op(ou_rows: int, threshold: int):
    """A :attr:`QLayer.op_override <model.torch.qat.QLayer.op_override>` with ERA-BS's activation pruning.

    Every im2col input vector of the layer (a token of a Linear, an output
    pixel's patch of a conv, per conv group) loses the OU row segments of
    ``ou_rows`` inputs whose integer codes are all at most ``threshold`` in
    magnitude (:func:`model.reram.prune_segments`); the layer is then computed
    on the pruned vectors (a matmul of the unfolded input).
    """
    if not isinstance(ou_rows, int) or ou_rows < 1:
        raise ValueError(f"ou_rows: must be an integer >= 1, got {ou_rows!r}")
    if not isinstance(threshold, int) or threshold < 0:
        raise ValueError(f"threshold: must be an integer >= 0, got {threshold!r}")

    def op(q, x, w, bias):
        codes = x if q.mode == "int" else q.act.to_int(x)
        if q.kind == "linear":
            return F.linear(x * _keep_mask(codes, -1, 1, ou_rows, threshold), w, bias)
        c, one_d = q.inner, q.kind == "conv1d"
        kernel, stride, pad, dil = (tuple(c.kernel_size), tuple(c.stride), conv_padding(c), tuple(c.dilation))
        if one_d:  # a Conv1d as a conv2d of height 1
            x, codes, w = x.unsqueeze(2), codes.unsqueeze(2), w.unsqueeze(2)
            kernel, stride, pad, dil = (1,) + kernel, (1,) + stride, (0,) + pad, (1,) + dil
        cols = F.unfold(x, kernel, dil, pad, stride)  # (B, C * kh * kw, L), K in the weights' order
        cols = cols * _keep_mask(F.unfold(codes, kernel, dil, pad, stride), 1, c.groups, ou_rows, threshold)
        B, N, g = x.shape[0], w.shape[0], c.groups
        y = torch.einsum("gnk,bgkl->bgnl", w.reshape(g, N // g, -1), cols.reshape(B, g, -1, cols.shape[-1]))
        size = [(n + 2 * p - d * (k - 1) - 1) // s + 1
                for n, k, s, p, d in zip(x.shape[2:], kernel, stride, pad, dil)]
        y = y.reshape(B, N, *size)
        if bias is not None:
            y = y + bias.reshape(1, -1, 1, 1)
        return y.squeeze(2) if one_d else y
    return op


def projected_finetune(net: nn.Module, starts: Sequence[Start], x: torch.Tensor, y: torch.Tensor, *,
                       epochs: float, lr: float, batch_size: int = 64, seed: int = 0, op=None
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
    op : callable, optional
        Every mapped layer's :attr:`~model.torch.qat.QLayer.op_override` in
        the copy, in training and in the returned network (e.g.
        :func:`crossbar_pruned_op`).

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
        q.op_override = op
        q.mode = "qat"
    train(work, x, y, epochs, lr, batch_size=batch_size, seed=seed)
    out = []
    for q in qs:
        w, _, _ = q.quant_weight()
        wi = w.detach().numpy()
        if wi.size and (np.any(wi != np.rint(wi)) or wi.min() < WEIGHT_MIN or wi.max() > WEIGHT_MAX):
            raise ValueError("projection: must return int8 values")
        out.append(wi.astype(np.int8))
        q.w_int = w.detach().clone().float()
        q.projection = None
        q.mode = "int"
    work.eval()
    return work, out

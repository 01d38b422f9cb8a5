"""Block-wise pruning of a PyTorch network's mapped layers (docs/design.md §4) on top of ``model.prune``.

Which layers are mapped is decided by :func:`model.torch.graph.capture` (by
dataflow); the functions here take those layers as a ``{name: module}`` dict.
A layer is seen as its K x N im2col matrix ``weight.reshape(N, -1).T`` (K =
C_in/groups * kernel taps in (c, i, j) order, N = C_out). A grouped
convolution (groups g > 1, not depthwise) is g independent layers of N/g
filters over their own C_in/g input channels: each conv group gets its own
block mask, and the masks sit side by side (:func:`group_block_mask`). The
block mask K x g*ceil(N/g/G) is stored on the module as ``dbpim_block_mask``,
the expanded per-weight mask as the weight-shaped buffer ``dbpim_mask``; a
gradient hook plus :func:`enforce_masks` after every optimizer step keep
pruned weights exactly 0.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dbpim.model import prune as gprune

__all__ = ["conv_groups", "weight_kn", "group_block_mask", "expand_group_mask", "block_masks", "apply_masks",
           "enforce_masks", "prune_layers", "layer_sparsity", "effective_weight", "bn_scale"]


def conv_groups(m: nn.Module) -> int:
    """Groups of a mapped layer (1 for Linear)."""
    return int(getattr(m, "groups", 1))


def weight_kn(m: nn.Module, w: torch.Tensor | None = None) -> torch.Tensor:
    """The K x N im2col view of a mapped layer's weight (a transpose view, no copy)."""
    w = m.weight if w is None else w
    return w.reshape(w.shape[0], -1).t()


def group_block_mask(W, groups: int, group_size: int, sparsity: float, norm: str = "l2") -> np.ndarray:
    """Block masks of the ``groups`` conv groups of a K x N layer, side by side: K x groups*ceil(N/groups/G)."""
    W = np.asarray(W)
    ng = W.shape[1] // groups
    return np.concatenate([gprune.block_mask(W[:, j * ng:(j + 1) * ng], group_size, sparsity, norm)
                           for j in range(groups)], axis=1)


def expand_group_mask(block_mask: np.ndarray, n: int, groups: int, group_size: int) -> np.ndarray:
    """K x N per-weight mask of a :func:`group_block_mask`."""
    ng = n // groups
    nb = gprune.n_groups(ng, group_size)
    return np.concatenate([gprune.expand_mask(block_mask[:, j * nb:(j + 1) * nb], ng, group_size)
                           for j in range(groups)], axis=1)


def bn_scale(bn: nn.Module) -> torch.Tensor:
    """Per-channel factor a BatchNorm multiplies its input by (gamma / sqrt(var + eps))."""
    g = bn.weight.detach() if bn.weight is not None else torch.ones_like(bn.running_var)
    return g / torch.sqrt(bn.running_var + bn.eps)


def effective_weight(layers: dict[str, nn.Module], bn: dict[str, nn.Module] | None = None) -> dict[str, torch.Tensor]:
    """Weights as the macros will store them: with the BatchNorm to be folded into each layer applied.

    Used only to score blocks; the network is not changed.
    """
    out = {}
    for n, m in layers.items():
        w = m.weight.detach()
        b = (bn or {}).get(n)
        if b is not None:
            w = w * bn_scale(b).reshape(-1, *([1] * (w.dim() - 1)))
        out[n] = w
    return out


def block_masks(layers: dict[str, nn.Module], sparsity: float, group_size: int, norm: str = "l2",
                bn: dict[str, nn.Module] | None = None) -> dict[str, np.ndarray]:
    """Block masks (K x groups*ceil(N/groups/G) bool, True = kept) of every layer.

    ``sparsity`` is the fraction of blocks pruned per layer (per conv group).
    Scores use the BatchNorm-folded weights (``bn``: layer -> BatchNorm to fold).
    """
    ws = effective_weight(layers, bn)
    return {n: group_block_mask(weight_kn(m, ws[n]).double().numpy(), conv_groups(m), group_size, float(sparsity),
                                norm) for n, m in layers.items()}


def _grad_hook(mask):
    return lambda g: g * mask


def apply_masks(layers: dict[str, nn.Module], masks: dict[str, np.ndarray], group_size: int) -> None:
    """Zero pruned weights, store masks on the modules and keep them zero during training.

    Each module gets buffers ``dbpim_mask`` (float, weight-shaped, 1 = kept)
    and ``dbpim_block_mask`` (bool), and attribute ``dbpim_group_size``.
    """
    unknown = set(masks) - set(layers)
    if unknown:
        raise ValueError(f"masks: no mapped layer named {sorted(unknown)[0]!r}")
    for n, bm in masks.items():
        m = layers[n]
        N = m.weight.shape[0]
        kn = torch.from_numpy(expand_group_mask(bm, N, conv_groups(m), group_size))
        full = kn.t().reshape(m.weight.shape).to(m.weight.dtype)
        if hasattr(m, "dbpim_mask"):
            m.dbpim_mask.copy_(full)
            m.dbpim_block_mask = torch.from_numpy(np.asarray(bm, bool))
        else:
            m.register_buffer("dbpim_mask", full)
            m.register_buffer("dbpim_block_mask", torch.from_numpy(np.asarray(bm, bool)))
            m.weight.register_hook(_grad_hook(m.dbpim_mask))
        m.dbpim_group_size = int(group_size)
        with torch.no_grad():
            m.weight.mul_(m.dbpim_mask)


@torch.no_grad()
def enforce_masks(model: nn.Module) -> None:
    """Re-zero pruned weights of every masked module (call after every optimizer step)."""
    for m in model.modules():
        mk = getattr(m, "dbpim_mask", None)
        if mk is not None and isinstance(getattr(m, "weight", None), torch.Tensor):
            m.weight.mul_(mk)


def prune_layers(layers: dict[str, nn.Module], sparsity: float, group_size: int, norm: str = "l2",
                 bn: dict[str, nn.Module] | None = None) -> dict[str, np.ndarray]:
    """Compute and apply block masks; returns them."""
    masks = block_masks(layers, sparsity, group_size, norm, bn)
    apply_masks(layers, masks, group_size)
    return masks


def layer_sparsity(m: nn.Module) -> float:
    """Fraction of pruned blocks of a mapped layer (0 when unpruned)."""
    bm = getattr(m, "dbpim_block_mask", None)
    return 0.0 if bm is None else float(1.0 - bm.float().mean())

"""Block-wise pruning of a PyTorch network (docs/design.md §4) on top of ``model.prune``.

Mapped layers: every ``nn.Conv2d`` with ``groups == 1`` and every ``nn.Linear``.
A layer is seen as its K x N im2col matrix ``weight.reshape(N, -1).T`` (K =
C_in*kh*kw in (c, i, j) order, N = C_out). ``model.prune.block_mask`` gives the
K x ceil(N/G) block mask; the expanded per-weight mask is stored on the module
as the buffer ``dbpim_mask`` (weight-shaped) and kept exact during fine-tuning
by a gradient hook plus :func:`enforce_masks` after every optimizer step.
Depthwise / grouped convolutions and all other modules pass through untouched
(:func:`passed_through` lists them for the report).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from model import prune as gprune
from model.torch.bn import bn_partners

__all__ = ["is_mapped", "mapped_layers", "passed_through", "weight_kn", "block_masks", "apply_masks",
           "enforce_masks", "prune_model", "mask_kn", "layer_sparsity", "effective_weight"]


def is_mapped(m: nn.Module) -> bool:
    """True for modules the PIM macros run: Conv2d with groups == 1, and Linear."""
    if isinstance(m, nn.Linear):
        return True
    return (isinstance(m, nn.Conv2d) and m.groups == 1 and tuple(m.dilation) == (1, 1)
            and m.padding_mode == "zeros" and not isinstance(m.padding, str)
            and m.stride[0] == m.stride[1] and m.padding[0] == m.padding[1])


def mapped_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(qualified name, module) of every mapped layer, in registration order."""
    return [(n, m) for n, m in model.named_modules() if is_mapped(m)]


def passed_through(model: nn.Module) -> list[dict]:
    """Weight layers that are not mapped (left dense, run on the SIMD core), for the report."""
    out = []
    for n, m in model.named_modules():
        if isinstance(m, nn.Conv2d) and m.groups != 1:
            kind = "depthwise" if m.groups == m.in_channels == m.out_channels else "grouped"
            out.append({"name": n, "kind": f"conv2d_{kind}", "shape": list(m.weight.shape),
                        "note": f"{kind} convolution (groups={m.groups}): not pruned, not FTA-quantized, "
                                "runs on the SIMD core"})
        elif isinstance(m, nn.Conv2d) and not is_mapped(m):
            out.append({"name": n, "kind": "conv2d_other", "shape": list(m.weight.shape),
                        "note": "dilated / non-zero-padded / non-square-stride convolution: passed through untouched"})
        elif isinstance(m, (nn.Conv1d, nn.Conv3d, nn.ConvTranspose2d)):
            out.append({"name": n, "kind": type(m).__name__.lower(), "shape": list(m.weight.shape),
                        "note": "unsupported layer type: passed through untouched"})
    return out


def weight_kn(m: nn.Module, w: torch.Tensor | None = None) -> torch.Tensor:
    """The K x N im2col view of a mapped layer's weight (a transpose view, no copy)."""
    w = m.weight if w is None else w
    return w.reshape(w.shape[0], -1).t()


def effective_weight(model: nn.Module) -> dict[str, torch.Tensor]:
    """Weights as the hardware will store them: with a directly following BatchNorm folded in.

    Used only to score blocks; the network itself is not changed. Modules without
    a recognised BatchNorm partner use their own weight.
    """
    partners = bn_partners(model)
    out = {}
    for n, m in mapped_layers(model):
        w = m.weight.detach()
        bn = partners.get(n)
        if bn is not None and bn.running_var is not None:
            g = bn.weight.detach() if bn.weight is not None else torch.ones_like(bn.running_var)
            w = w * (g / torch.sqrt(bn.running_var + bn.eps)).reshape(-1, *([1] * (w.dim() - 1)))
        out[n] = w
    return out


def block_masks(model: nn.Module, sparsity: float, group_size: int, norm: str = "l2",
                fold_bn: bool = True) -> dict[str, np.ndarray]:
    """Block masks (K x ceil(N/G) bool, True = kept) of every mapped layer.

    ``sparsity`` is the fraction of blocks pruned per layer. Scores use the
    BatchNorm-folded weights when ``fold_bn`` (the values the macros will hold).
    """
    ws = effective_weight(model) if fold_bn else {n: m.weight.detach() for n, m in mapped_layers(model)}
    return {n: gprune.block_mask(weight_kn(m, ws[n]).double().numpy(), group_size, float(sparsity), norm)
            for n, m in mapped_layers(model)}


def mask_kn(block_mask: np.ndarray, n: int, group_size: int) -> np.ndarray:
    """Expanded K x N per-weight mask of a block mask."""
    return gprune.expand_mask(block_mask, n, group_size)


def _grad_hook(mask):
    return lambda g: g * mask


def apply_masks(model: nn.Module, masks: dict[str, np.ndarray], group_size: int) -> None:
    """Zero pruned weights, store masks on the modules and keep them zero during training.

    Each mapped module gets buffers ``dbpim_mask`` (float, weight-shaped, 1 = kept)
    and ``dbpim_block_mask`` (bool K x ceil(N/G)), and attribute ``dbpim_group_size``.
    """
    mods = dict(mapped_layers(model))
    unknown = set(masks) - set(mods)
    if unknown:
        raise ValueError(f"masks: no mapped layer named {sorted(unknown)[0]!r}")
    for n, bm in masks.items():
        m = mods[n]
        N = m.weight.shape[0]
        kn = torch.from_numpy(mask_kn(bm, N, group_size))
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
    """Re-zero pruned weights (call after every optimizer step)."""
    for _, m in mapped_layers(model):
        mk = getattr(m, "dbpim_mask", None)
        if mk is not None:
            m.weight.mul_(mk)


def prune_model(model: nn.Module, sparsity: float, group_size: int, norm: str = "l2") -> dict[str, np.ndarray]:
    """Compute and apply block masks; returns them."""
    masks = block_masks(model, sparsity, group_size, norm)
    apply_masks(model, masks, group_size)
    return masks


def layer_sparsity(m: nn.Module) -> float:
    """Fraction of pruned blocks of a mapped layer (0 when unpruned)."""
    bm = getattr(m, "dbpim_block_mask", None)
    return 0.0 if bm is None else float(1.0 - bm.float().mean())

"""The prune-and-quantize recipe, written once (docs/design.md §1, §3, §4).

From a float layer in im2col layout (K x N, columns are filters):

1. the pruning group size G follows the FTA ceiling in use
   (:func:`group_size_for`: the filters one macro's columns hold at that
   ceiling, ``n_col // phi_max``);
2. :func:`model.prune.block_mask` prunes the lowest-scoring blocks;
3. :func:`channel_scale` gives each filter its symmetric int8 scale
   ``max |w_kept| / 127`` over the weights the mask kept;
4. :func:`model.fta.quantize` approximates ``u = w / scale`` (one rounding).

Every user of the recipe (the examples, the sweeps, the testbenches, the
benchmarks and the PyTorch front-end's scale) calls these functions, so
``compile``, ``sweep`` and ``bench`` agree on what a ``phi_max`` override does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dbpim.model import fta, prune
from dbpim.model._check import check_finite
from dbpim.model.spec import WEIGHT_MAX

__all__ = ["QuantLayer", "channel_scale", "group_size_for", "prune_quantize"]


def channel_scale(W, mask=None) -> np.ndarray:
    """Per-filter symmetric int8 scale ``max |w_kept| / 127`` (float32, N).

    Parameters
    ----------
    W : array_like of float, shape (K, N)
    mask : array_like of bool, shape (K, N), optional
        Kept weights; all weights when omitted.

    Returns
    -------
    ndarray of float32, shape (N,)
        1.0 for a filter whose kept weights are all zero (it stores nothing).
    """
    W = np.asarray(W, np.float64)
    if W.ndim != 2:
        raise ValueError(f"W: must be a K x N matrix, got shape {W.shape}")
    check_finite(W, "W")
    a = np.abs(W) if mask is None else np.abs(W) * np.asarray(mask, bool)
    s = a.max(0, initial=0.0) / WEIGHT_MAX
    return np.where(s > 0, s, 1.0).astype(np.float32)


def group_size_for(macro, phi_max: int | None = None) -> int:
    """Pruning group size G: the filters one macro holds at FTA ceiling ``phi_max``.

    ``n_col // phi_max``, with ``phi_max`` defaulting to the macro's.
    """
    _, pm = fta.check_phi(macro.phi_max if phi_max is None else phi_max)
    return max(1, macro.n_col // pm)


@dataclass
class QuantLayer:
    """A float layer block-pruned and FTA-quantized (the inputs of :func:`model.compile.compile_layer`)."""

    w: np.ndarray  # int8 (K, N) FTA weights, pruned = 0
    phi: np.ndarray  # uint8 (N,)
    mask: np.ndarray  # bool (K, ceil(N / G)) block mask
    scale: np.ndarray  # float32 (N,)
    group_size: int
    phi_max: int


def prune_quantize(W, macro, sparsity: float, phi_max: int | None = None, phi_min: int = 0,
                   norm: str = "l2", scale=None) -> QuantLayer:
    """Block-prune and FTA-quantize a float (K, N) layer for ``macro``.

    Parameters
    ----------
    W : array_like of float, shape (K, N)
    macro : MacroConfig
    sparsity : float
        Fraction of blocks pruned, in [0, 1].
    phi_max : int, optional
        FTA ceiling (default the macro's); also sets the group size
        (:func:`group_size_for`).
    phi_min : int
    norm : {"l2", "l1"}
    scale : array_like of float, shape (N,), optional
        Use these scales instead of :func:`channel_scale` (e.g. ones for
        weights that are already in the quantized domain).

    Returns
    -------
    QuantLayer
    """
    pm = macro.phi_max if phi_max is None else phi_max
    G = group_size_for(macro, pm)
    W = np.asarray(W, np.float64)
    mask = prune.block_mask(W, G, sparsity, norm)
    kept = prune.expand_mask(mask, W.shape[1], G)
    scale = channel_scale(W, kept) if scale is None else np.broadcast_to(
        np.asarray(scale, np.float32), (W.shape[1],)).copy()
    w, phi = fta.quantize(W / scale, kept, phi_min=phi_min, phi_max=pm)
    return QuantLayer(w=w, phi=phi, mask=mask, scale=scale, group_size=G, phi_max=int(pm))

"""Block-wise (coarse-grained) pruning masks (docs/design.md §4).

A layer is its K x N im2col matrix (rows = ``weight.reshape(N, -1)`` order
(c, i, j), columns = filters). Filters are grouped G at a time (the last group
may be short); a block is (row k, group g). The lowest-scoring ``sparsity``
fraction of blocks is pruned, ties by block index (row-major over (k, g)).
"""

from __future__ import annotations

import numpy as np

from dbpim.model._check import check_finite

__all__ = ["block_mask", "expand_mask", "n_groups"]


def n_groups(n: int, group_size: int) -> int:
    """ceil(n / group_size)."""
    return -(-n // group_size)


def block_mask(W, group_size: int, sparsity: float, norm: str = "l2") -> np.ndarray:
    """Block pruning mask of one layer.

    Parameters
    ----------
    W : array_like of float, shape (K, N)
        Weights in im2col layout.
    group_size : int
        Filters per group G (>= 1).
    sparsity : float
        Fraction of blocks to prune, in [0, 1]; ``round(sparsity * n_blocks)``
        blocks (half up) are pruned.
    norm : {"l2", "l1"}
        Block score.

    Returns
    -------
    ndarray of bool, shape (K, ceil(N / G))
        True where the block is kept.
    """
    W = np.asarray(W, dtype=np.float64)
    if W.ndim != 2:
        raise ValueError(f"W: must be a K x N matrix, got shape {W.shape}")
    check_finite(W, "W")
    if not isinstance(group_size, (int, np.integer)) or group_size < 1:
        raise ValueError(f"group_size: must be a positive integer, got {group_size!r}")
    if not (isinstance(sparsity, (int, float, np.floating)) and 0.0 <= sparsity <= 1.0):
        raise ValueError(f"sparsity: must be a number in [0, 1], got {sparsity!r}")
    if norm not in ("l2", "l1"):
        raise ValueError(f"norm: must be 'l2' or 'l1', got {norm!r}")
    K, N = W.shape
    ng = n_groups(N, group_size)
    pad = ng * group_size - N
    Wp = np.pad(W, ((0, 0), (0, pad))).reshape(K, ng, group_size)
    score = np.sqrt((Wp * Wp).sum(-1)) if norm == "l2" else np.abs(Wp).sum(-1)
    n_prune = int(np.floor(sparsity * K * ng + 0.5))
    order = np.argsort(score.ravel(), kind="stable")
    keep = np.ones(K * ng, bool)
    keep[order[:n_prune]] = False
    return keep.reshape(K, ng)


def expand_mask(mask, n: int, group_size: int) -> np.ndarray:
    """Block mask (K, ceil(N/G)) -> per-weight mask (K, N)."""
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2 or m.shape[1] != n_groups(n, group_size):
        raise ValueError(f"mask: must have shape (K, {n_groups(n, group_size)}) for N={n}, G={group_size}, "
                         f"got {m.shape}")
    return np.repeat(m, group_size, axis=1)[:, :n]

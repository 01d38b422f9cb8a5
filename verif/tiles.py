"""Tiles and input vectors for the macro testbenches: compiled by ``model.compile``.

``real_tiles`` uses the built-in real layer (``model.examples.real_layer``:
an MLP trained on scikit-learn's digits, block-pruned, FTA-quantized) with its
real input activations; ``random_tiles`` compiles random weights (every phi
from 0 to phi_max) when a wider spread of corner cases is wanted.
"""

from __future__ import annotations

import functools

import numpy as np

from model.compile import compile_layer
from model.macro import gather
from model.quant import prune_quantize

__all__ = ["random_tiles", "real_tiles", "vectors_for"]


def random_tiles(macro, rng, K: int | None = None, N: int | None = None, sparsity: float = 0.3):
    """Tiles of a random layer, with phi spread over 0..phi_max and some -128 weights.

    Returns
    -------
    list of Tile
    """
    K = K or macro.n_comp * macro.n_row + macro.n_comp // 2  # more than one row tile
    N = N or 2 * macro.group_size
    scale = rng.choice([0.5, 4.0, 30.0, 90.0], N)  # small scales -> phi 0/1, large -> phi_max
    u = rng.normal(0, 1, (K, N)) * scale
    u[rng.random((K, N)) < 0.05] = -128.0
    q = prune_quantize(u, macro, sparsity, scale=1.0)  # u is already in the quantized domain
    return compile_layer(q.w, q.phi, q.mask, macro, q.group_size).tiles


def real_tiles(macro, n: int = 2):
    """Up to ``n`` tiles of the real example layer and its real input vectors (P, K)."""
    rl = _real_layer(macro)
    return rl.compiled.tiles[:n], np.asarray(rl.x, np.int64)


@functools.lru_cache(maxsize=4)
def _real_layer(macro):
    from model.examples import real_layer
    return real_layer(macro)


def vectors_for(tile, rng, n: int, signed: bool, x_real=None) -> list[np.ndarray]:
    """``n`` gathered input vectors (n_row, n_comp) for ``tile``: corners first, then random.

    Corners: all zero, all ones (255 / -1), the extreme value (255 / -128),
    sparse random; then real vectors (if ``x_real`` given) and random ones.
    """
    K = int(tile.rows.max()) + 1
    lo, hi = (-128, 127) if signed else (0, 255)
    xs = [np.zeros(K, np.int64), np.full(K, -1 if signed else 255), np.full(K, lo if signed else hi)]
    if x_real is not None:
        xs += [np.asarray(v[:K], np.int64) for v in x_real]
    while len(xs) < n:
        v = rng.integers(lo, hi + 1, K)
        v[rng.random(K) < rng.random()] = 0
        xs.append(v)
    return [gather(tile, v) for v in xs[:n]]

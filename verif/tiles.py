"""Tiles and input vectors for the macro testbenches: compiled by ``model.compile``.

``real_tiles`` uses the built-in real layer (``model.examples.real_layer``:
an MLP trained on scikit-learn's digits, block-pruned, FTA-quantized) with its
real input activations; ``random_tiles`` compiles random weights (every phi
from 0 to phi_max) when a wider spread of corner cases is wanted.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import numpy as np

from dbpim.model import jsonio
from dbpim.model.compile import compile_layer
from dbpim.model.macro import gather
from dbpim.model.quant import prune_quantize
from dbpim.model.spec import WEIGHT_MIN, input_range

__all__ = ["random_tiles", "packed_tiles", "real_tiles", "vectors_for"]


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
    u[rng.random((K, N)) < 0.05] = float(WEIGHT_MIN)
    q = prune_quantize(u, macro, sparsity, scale=1.0)  # u is already in the quantized domain
    return compile_layer(q.w, q.phi, q.mask, macro, q.group_size).tiles


def packed_tiles(macro, rng, K: int | None = None):
    """Tiles of an unpruned layer whose filters all have phi = 1: each holds ``n_col`` filters from
    ``n_col // group_size`` groups (filters packed across groups that keep the same rows)."""
    K = K or macro.n_comp * macro.n_row
    N = 2 * macro.n_col
    u = rng.choice([-64.0, -8.0, -1.0, 1.0, 2.0, 16.0, 64.0], (K, N))  # one CSD digit each: phi = 1
    q = prune_quantize(u, macro, 0.0, scale=1.0)
    return compile_layer(q.w, q.phi, q.mask, macro, q.group_size).tiles


def real_tiles(macro, n: int = 2):
    """Up to ``n`` tiles of the real example layer and its real input vectors (P, K)."""
    tiles, x = _real_tiles(macro)
    return tiles[:n], x


@functools.lru_cache(maxsize=4)
def _real_tiles(macro):
    """The example layer's tiles and inputs, cached in ``build/cache`` (training the MLP takes seconds).

    The cache key covers the macro and the sources that make the layer.
    """
    from dbpim.model.compile import Tile
    from dbpim.model.examples import real_layer

    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256(jsonio.dumps(macro.to_dict(), what="tile cache key", indent=None, sort_keys=True).encode())
    for f in ("examples.py", "compile.py", "quant.py", "fta.py", "prune.py", "csd.py"):
        h.update((root / "model" / f).read_bytes())
    path = root / "build" / "cache" / f"real-tiles-{h.hexdigest()[:16]}.npz"
    if path.is_file():
        with np.load(path) as z:
            return [Tile.from_arrays(z, index=i, prefix="t_") for i in range(len(z["t_meta"]))], z["x"]
    rl = real_layer(macro)
    tiles = rl.compiled.tiles
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"t_{k}": np.stack([t.to_arrays()[k] for t in tiles]) for k in tiles[0].to_arrays()}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.npz")
    np.savez(tmp, x=np.asarray(rl.x, np.int64), **arrays)
    os.replace(tmp, path)
    return tiles, np.asarray(rl.x, np.int64)


def vectors_for(tile, rng, n: int, signed: bool, x_real=None) -> list[np.ndarray]:
    """``n`` gathered input vectors (n_row, n_comp) for ``tile``: corners first, then random.

    Corners: all zero, all ones (255 / -1), the extreme value (255 / -128),
    sparse random; then real vectors (if ``x_real`` given) and random ones.
    """
    K = int(tile.rows.max()) + 1
    lo, hi = input_range(signed)
    xs = [np.zeros(K, np.int64), np.full(K, -1 if signed else hi), np.full(K, lo if signed else hi)]
    if x_real is not None:
        xs += [np.asarray(v[:K], np.int64) for v in x_real]
    while len(xs) < n:
        v = rng.integers(lo, hi + 1, K)
        v[rng.random(K) < rng.random()] = 0
        xs.append(v)
    return [gather(tile, v) for v in xs[:n]]


def every_phi_tiles(macro, rng, K: int | None = None):
    """Tiles of an unpruned layer with one filter at each phi from 1 to ``phi_max`` (then the same again),
    weights of exactly that many CSD digits: every phi's column count appears in a tile."""
    from dbpim.model import csd
    from dbpim.model.spec import WEIGHT_MAX, WEIGHT_MIN
    K = K or macro.n_comp
    phi = np.tile(np.arange(1, macro.phi_max + 1), 2)
    vals = np.arange(WEIGHT_MIN, WEIGHT_MAX + 1)
    w = np.stack([rng.choice(vals[csd.nnz(vals) == p], K) for p in phi], axis=1)
    G = macro.group_size
    mask = np.ones((K, -(-phi.size // G)), bool)
    return compile_layer(w, phi, mask, macro, G).tiles

"""Mapping a pruned, FTA-quantized layer onto DB-PIM macro tiles (docs/design.md §6, §8).

A PIM core owns filter group g. Its kept rows (``mask[:, g]``), in order, are
dealt to compartments: kept row e goes to compartment ``e % n_comp``, cell row
``(e // n_comp) % n_row``, row tile ``e // (n_comp * n_row)``. Filters of the
group take ``phi_f`` adjacent columns each (none when phi_f = 0), in filter
order; a column tile holds filters while its ``n_col`` columns last. Column j of
filter f holds the j-th non-zero CSD digit of each weight, lowest position first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from model import csd
from model._check import as_int_array, check_range
from model.config import MacroConfig
from model.prune import expand_mask, n_groups

__all__ = ["TILE_ARRAYS", "Tile", "CompiledLayer", "compile_layer", "decompile", "tile_digit_values"]


#: The arrays of one tile (docs/design.md §8, artifact field ``tiles_<name>``): name -> (dtype, shape of
#: one tile for a :class:`MacroConfig`). ``meta`` is (group, row_tile, col_tile, n_rows_used).
TILE_ARRAYS = {
    "cells": (np.uint8, lambda m: (m.n_row, m.n_comp, m.n_col)),
    "idx": (np.uint8, lambda m: (m.n_row, m.n_comp, m.n_col)),
    "sign": (np.uint8, lambda m: (m.n_row, m.n_comp, m.n_col)),
    "rows": (np.int32, lambda m: (m.n_row, m.n_comp)),
    "col_filter": (np.int16, lambda m: (m.n_col,)),
    "filters": (np.int32, lambda m: (m.n_col,)),
    "meta": (np.int32, lambda m: (4,)),
}


@dataclass
class Tile:
    """The contents of one macro (see ``docs/contracts.md``).

    Attributes
    ----------
    cells, idx, sign : ndarray of uint8, shape (n_row, n_comp, n_col)
        6T cell bit Q (= digit position within its dyadic block), block index
        0..3, and sign (1 = -1) of the digit in each cell; 0 where unused.
    rows : ndarray of int32, shape (n_row, n_comp)
        im2col row feeding (cell row, compartment); -1 = unused (input 0).
    col_filter : ndarray of int16, shape (n_col,)
        Filter slot owning each column; -1 = unused.
    filters : ndarray of int32, shape (n_col,)
        Output channel of each filter slot; -1 = unused.
    n_rows_used : int
        Cell rows holding at least one kept im2col row.
    group, row_tile, col_tile : int
        Position of the tile in the layer's mapping.
    """

    cells: np.ndarray
    idx: np.ndarray
    sign: np.ndarray
    rows: np.ndarray
    col_filter: np.ndarray
    filters: np.ndarray
    n_rows_used: int
    group: int = 0
    row_tile: int = 0
    col_tile: int = 0

    @property
    def n_filters(self) -> int:
        return int((self.filters >= 0).sum())

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The tile as the arrays of :data:`TILE_ARRAYS` (with their dtypes), e.g. for ``np.savez``."""
        out = {k: np.asarray(getattr(self, k), TILE_ARRAYS[k][0]) for k in TILE_ARRAYS if k != "meta"}
        out["meta"] = np.array([self.group, self.row_tile, self.col_tile, self.n_rows_used], np.int32)
        return out

    @classmethod
    def from_arrays(cls, arrays, index: int | None = None, prefix: str = "") -> "Tile":
        """Inverse of :meth:`to_arrays`.

        Parameters
        ----------
        arrays : mapping of str to ndarray
            ``arrays[prefix + name]`` for each name of :data:`TILE_ARRAYS`
            (an ``np.load`` result works).
        index : int, optional
            Take tile ``index`` of stacked arrays (leading tile axis), as in an
            artifact's ``tiles_*`` fields.
        prefix : str
            Key prefix, ``"tiles_"`` for an artifact.
        """
        a = {k: np.asarray(arrays[prefix + k]) for k in TILE_ARRAYS}
        if index is not None:
            a = {k: v[index] for k, v in a.items()}
        meta = [int(v) for v in a.pop("meta")]
        return cls(**a, group=meta[0], row_tile=meta[1], col_tile=meta[2], n_rows_used=meta[3])


@dataclass
class CompiledLayer:
    """A layer mapped onto macro tiles."""

    K: int
    N: int
    macro: MacroConfig
    group_size: int
    phi: np.ndarray
    mask: np.ndarray
    tiles: list[Tile] = field(default_factory=list)

    def stacked(self) -> dict[str, np.ndarray]:
        """Tiles as stacked arrays (the artifact's ``tiles_*`` fields, one leading tile axis)."""
        per_tile = [t.to_arrays() for t in self.tiles]
        return {f"tiles_{k}": (np.stack([a[k] for a in per_tile]) if per_tile
                               else np.zeros((0,) + shape(self.macro), dtype))
                for k, (dtype, shape) in TILE_ARRAYS.items()}

    @classmethod
    def from_stacked(cls, K, N, macro, group_size, phi, mask, arrays) -> "CompiledLayer":
        """Inverse of :meth:`stacked`."""
        tiles = [Tile.from_arrays(arrays, index=i, prefix="tiles_") for i in range(len(arrays["tiles_meta"]))]
        return cls(K=K, N=N, macro=macro, group_size=group_size, phi=phi, mask=mask, tiles=tiles)


def _column_tiles(phi_group: np.ndarray, n_col: int):
    """Split a group's filters into column tiles: lists of (local filter, first column)."""
    tiles, cur, col = [], [], 0
    for f, p in enumerate(phi_group):
        p = int(p)
        if p == 0:
            continue
        if col + p > n_col:
            tiles.append(cur)
            cur, col = [], 0
        cur.append((f, col))
        col += p
    if cur:
        tiles.append(cur)
    return tiles


def compile_layer(w_fta, phi, mask, macro: MacroConfig, group_size: int | None = None) -> CompiledLayer:
    """Pack a layer into macro tiles.

    Parameters
    ----------
    w_fta : array_like of int, shape (K, N)
        int8 FTA weights; every kept weight of filter f has exactly phi[f]
        non-zero CSD digits, pruned weights are 0.
    phi : array_like of int, shape (N,)
        Per-filter threshold in [0, macro.phi_max].
    mask : array_like of bool, shape (K, ceil(N / group_size))
        Block pruning mask.
    macro : MacroConfig
    group_size : int, optional
        Filters per group G; default ``macro.group_size``.

    Returns
    -------
    CompiledLayer

    Raises
    ------
    ValueError
        On shapes, ranges, pruned weights that are not zero, or kept weights
        whose digit count differs from their filter's phi.
    """
    if not isinstance(macro, MacroConfig):
        raise TypeError(f"macro: must be a MacroConfig, got {type(macro).__name__}")
    G = macro.group_size if group_size is None else group_size
    if not isinstance(G, (int, np.integer)) or G < 1:
        raise ValueError(f"group_size: must be a positive integer, got {G!r}")
    w = as_int_array(w_fta, "w_fta")
    if w.ndim != 2:
        raise ValueError(f"w_fta: must be a K x N matrix, got shape {w.shape}")
    check_range(w, -128, 127, "w_fta")
    K, N = w.shape
    phi = as_int_array(phi, "phi").reshape(-1)
    if phi.shape != (N,):
        raise ValueError(f"phi: must have shape ({N},), got {phi.shape}")
    check_range(phi, 0, macro.phi_max, "phi")
    mask = np.asarray(mask)
    if mask.shape != (K, n_groups(N, G)):
        raise ValueError(f"mask: must have shape ({K}, {n_groups(N, G)}) for K={K}, N={N}, G={G}, got {mask.shape}")
    mask = mask.astype(bool)
    full = expand_mask(mask, N, G)
    if np.any(w[~full] != 0):
        raise ValueError("w_fta: pruned weights (mask = 0) must be exactly 0")
    nz = csd.nnz(w)
    bad = full & (nz != phi[None, :].astype(np.uint8))
    if bad.any():
        k, n = np.argwhere(bad)[0]
        raise ValueError(f"w_fta: kept weight [{k}, {n}] = {int(w[k, n])} has {int(nz[k, n])} non-zero CSD "
                         f"digits but its filter has phi={int(phi[n])}")

    n_row, n_comp, n_col = macro.n_row, macro.n_comp, macro.n_col
    cap = n_row * n_comp
    out = CompiledLayer(K=K, N=N, macro=macro, group_size=G, phi=phi.astype(np.uint8), mask=mask)
    wi = w.astype(np.intp) + 128
    for g in range(n_groups(N, G)):
        f0 = g * G
        phi_g = phi[f0:f0 + G]
        rows_g = np.nonzero(mask[:, g])[0]
        if rows_g.size == 0:
            continue
        for ct, flist in enumerate(_column_tiles(phi_g, n_col)):
            fl = np.array([f for f, _ in flist])
            c0 = np.array([c for _, c in flist])
            col_filter = np.full(n_col, -1, np.int16)
            filters = np.full(n_col, -1, np.int32)
            filters[:len(fl)] = f0 + fl
            for s, (f, c) in enumerate(flist):
                col_filter[c:c + phi_g[f]] = s
            for rt in range(-(-rows_g.size // cap)):
                rk = rows_g[rt * cap:(rt + 1) * cap]
                e = np.arange(rk.size)
                r_of, c_of = e // n_comp, e % n_comp
                rows = np.full((n_row, n_comp), -1, np.int32)
                rows[r_of, c_of] = rk
                cells = np.zeros((n_row, n_comp, n_col), np.uint8)
                idx = np.zeros_like(cells)
                sign = np.zeros_like(cells)
                wv = wi[np.ix_(rk, f0 + fl)]  # (rows, filters) LUT indices
                for d in range(macro.phi_max):
                    has = phi_g[fl] > d
                    if not has.any():
                        continue
                    cols = c0[has] + d
                    vals = wv[:, has]
                    rr, cc = r_of[:, None], c_of[:, None]
                    cells[rr, cc, cols[None, :]] = csd.SORTED_POS_LUT[vals, d]
                    idx[rr, cc, cols[None, :]] = csd.SORTED_IDX_LUT[vals, d]
                    sign[rr, cc, cols[None, :]] = csd.SORTED_SIGN_LUT[vals, d]
                out.tiles.append(Tile(cells=cells, idx=idx, sign=sign, rows=rows, col_filter=col_filter,
                                      filters=filters, n_rows_used=int(-(-rk.size // n_comp)),
                                      group=g, row_tile=rt, col_tile=ct))
    return out


def tile_digit_values(tile: Tile) -> np.ndarray:
    """Signed value of each used cell's digit, int64 (n_row, n_comp, n_col); 0 where unused."""
    v = (1 - 2 * tile.sign.astype(np.int64)) << (2 * tile.idx.astype(np.int64) + tile.cells)
    used = (tile.rows >= 0)[:, :, None] & (tile.col_filter >= 0)[None, None, :]
    return np.where(used, v, 0)


def decompile(compiled: CompiledLayer) -> np.ndarray:
    """Rebuild the K x N int8 weights from the tiles (inverse of :func:`compile_layer`)."""
    w = np.zeros((compiled.K, compiled.N), np.int64)
    for t in compiled.tiles:
        v = tile_digit_values(t)
        r, c = np.nonzero(t.rows >= 0)
        k = t.rows[r, c]
        for j in np.nonzero(t.col_filter >= 0)[0]:
            n = t.filters[t.col_filter[j]]
            np.add.at(w[:, n], k, v[r, c, j])
    return w.astype(np.int8)

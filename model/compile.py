"""Mapping a pruned, FTA-quantized layer onto DB-PIM macro tiles (docs/design.md §6, §8).

A group's kept rows (``mask[:, g]``), in order, are dealt to compartments: kept
row e goes to compartment ``e % n_comp``, cell row ``(e // n_comp) % n_row``,
row tile ``e // (n_comp * n_row)``. Adjacent groups that keep identical rows
form a run; the run's filters take ``phi_f`` adjacent columns each (none when
phi_f = 0), in filter order, and a column tile holds filters while its ``n_col``
columns last (:func:`pack_filters`), so a macro holds more than G filters when
filters have phi < phi_max and neighbouring groups keep the same rows. Column j
of filter f holds the j-th non-zero CSD digit of each weight, lowest position
first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dbpim.model import csd
from dbpim.model._check import as_int_array, check_range
from dbpim.model.config import MacroConfig
from dbpim.model.prune import expand_mask, n_groups
from dbpim.model.spec import WEIGHT_MAX, WEIGHT_MIN

__all__ = ["TILE_ARRAYS", "Tile", "CompiledLayer", "FilterTile", "Packing", "group_runs", "group_run_bounds",
           "pack_columns", "pack_filters", "compile_layer", "decompile", "tile_digit_values", "mapping_error"]


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


@dataclass(frozen=True)
class FilterTile:
    """The filters one column tile holds (docs/design.md §6).

    Attributes
    ----------
    group : int
        Group of its first filter; every filter of the tile belongs to a group
        whose kept rows equal ``mask[:, group]``.
    col_tile : int
        Index of the column tile within its run of identical groups.
    filters : ndarray of int
        Output channels in slot order.
    first_col : ndarray of int
        First column of each filter; filter s takes ``phi[filters[s]]`` adjacent columns.
    cols : int
        Columns in use.
    """

    group: int
    col_tile: int
    filters: np.ndarray
    first_col: np.ndarray
    cols: int


def group_runs(mask) -> list[tuple[int, int]]:
    """Maximal runs ``[g0, g1)`` of adjacent groups with identical, non-empty kept rows.

    Groups with no kept row belong to no run (their filters output 0).
    """
    starts, ends = group_run_bounds(mask)
    return list(zip(starts.tolist(), ends.tolist()))


def group_run_bounds(mask) -> tuple[np.ndarray, np.ndarray]:
    """:func:`group_runs` as two int64 arrays: the first group of every run and the group after its last.

    The groups' masks are compared as rows of the transposed mask (free when
    ``mask`` is the transpose of a C-contiguous array).
    """
    m = np.asarray(mask, bool)
    ng = m.shape[1]
    if ng == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    mt = np.ascontiguousarray(m.T)  # (groups, K): each group's kept rows contiguous
    nonempty = mt.any(1)
    same = np.zeros(ng, bool)
    same[1:] = (mt[1:] == mt[:-1]).all(1) & nonempty[1:] & nonempty[:-1]
    starts = np.flatnonzero(nonempty & ~same)
    breaks = np.append(np.flatnonzero(~same), ng)  # a run ends at the next group that does not continue it
    ends = breaks[np.searchsorted(breaks, starts, side="right")]
    return starts.astype(np.int64), ends.astype(np.int64)


def _next_fit(phi: list, run: list, n_col: int) -> tuple[list, list]:
    """Greedy packing of column widths ``phi`` (all > 0), restarting at each new ``run``:
    (column tile within the run, first column) of each."""
    tile, first, ct, col, cur = [], [], 0, 0, None
    for p, r in zip(phi, run):
        if r != cur:
            ct, col, cur = 0, 0, r
        elif col + p > n_col:
            ct, col = ct + 1, 0
        tile.append(ct)
        first.append(col)
        col += p
    return tile, first


@dataclass(frozen=True)
class Packing:
    """:func:`pack_columns`: every packed filter and every column tile of a layer, as arrays.

    Attributes
    ----------
    filters, tile, first_col : ndarray of int, shape (F,)
        Packed filters (phi > 0, group with kept rows) in mapping order, the
        column tile (global index) of each, and its first column.
    group, col_tile, cols, n_filters, run_group : ndarray of int, shape (T,)
        Per column tile: group of its first filter, index within its run,
        columns in use, filters, first group of its run.
    """

    filters: np.ndarray
    tile: np.ndarray
    first_col: np.ndarray
    group: np.ndarray
    col_tile: np.ndarray
    cols: np.ndarray
    n_filters: np.ndarray
    run_group: np.ndarray


def pack_columns(phi, mask, group_size: int, n_col: int, *, runs=None) -> Packing:
    """Pack a layer's filters into column tiles (docs/design.md §6), vectorised.

    Within each run of adjacent groups that keep identical rows
    (:func:`group_runs`) the filters, in order, take ``phi_f`` adjacent
    columns each (none when phi_f = 0); a column tile holds filters while its
    ``n_col`` columns last, and the first filter that does not fit opens the
    next one (greedy, no reordering). So a macro holds up to ``n_col`` filters
    at phi = 1 when neighbouring groups keep the same rows, and a group of
    filters with phi < phi_max shares its tile with the next group's filters.
    Packing a run never takes more tiles than packing its groups one by one.
    ``runs``: :func:`group_run_bounds` of ``mask`` when the caller has them.
    """
    phi = np.asarray(phi).astype(np.int64)
    N = phi.size
    g0, g1 = group_run_bounds(mask) if runs is None else runs
    lo = g0 * group_size
    hi = np.minimum(N, g1 * group_size)
    n = hi - lo
    run = np.repeat(np.arange(g0.size), n)
    f = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n) + np.repeat(lo, n)
    keep = phi[f] > 0
    f, run = f[keep], run[keep]
    p = phi[f]
    if p.size and np.all(p == p[0]):  # one width: fixed-size tiles
        per = n_col // int(p[0])
        rank = np.arange(f.size) - np.searchsorted(run, run)  # position within the run
        tile_in_run, first = rank // per, (rank % per) * int(p[0])
    else:
        tile_in_run, first = (np.asarray(v, np.int64) for v in _next_fit(p.tolist(), run.tolist(), n_col))
    new = np.ones(f.size, bool)
    new[1:] = (run[1:] != run[:-1]) | (tile_in_run[1:] != tile_in_run[:-1])
    tile = np.cumsum(new) - 1
    heads = np.flatnonzero(new)
    return Packing(filters=f, tile=tile, first_col=first, group=f[heads] // group_size,
                   col_tile=tile_in_run[heads], cols=np.bincount(tile, weights=p).astype(np.int64),
                   n_filters=np.bincount(tile).astype(np.int64), run_group=g0[run[heads]])


def pack_filters(phi, mask, group_size: int, n_col: int) -> list[FilterTile]:
    """:func:`pack_columns` as one :class:`FilterTile` per column tile, in mapping order."""
    pk = pack_columns(phi, mask, group_size, n_col)
    bounds = np.append(np.searchsorted(pk.tile, np.arange(pk.group.size)), pk.filters.size).tolist()
    return [FilterTile(int(pk.group[t]), int(pk.col_tile[t]), pk.filters[a:b], pk.first_col[a:b], int(pk.cols[t]))
            for t, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))]


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
    check_range(w, WEIGHT_MIN, WEIGHT_MAX, "w_fta")
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
    for ft in pack_filters(phi, mask, G, n_col):
        rows_g = np.nonzero(mask[:, ft.group])[0]
        fl, c0 = ft.filters, ft.first_col
        phi_f = phi[fl]
        col_filter = np.full(n_col, -1, np.int16)
        filters = np.full(n_col, -1, np.int32)
        filters[:len(fl)] = fl
        for s, (c, p) in enumerate(zip(c0.tolist(), phi_f.tolist())):
            col_filter[c:c + p] = s
        for rt in range(-(-rows_g.size // cap)):
            rk = rows_g[rt * cap:(rt + 1) * cap]
            e = np.arange(rk.size)
            r_of, c_of = e // n_comp, e % n_comp
            rows = np.full((n_row, n_comp), -1, np.int32)
            rows[r_of, c_of] = rk
            cells = np.zeros((n_row, n_comp, n_col), np.uint8)
            idx = np.zeros_like(cells)
            sign = np.zeros_like(cells)
            wv = wi[np.ix_(rk, fl)]  # (rows, filters) LUT indices
            for d in range(macro.phi_max):
                has = phi_f > d
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
                                  group=ft.group, row_tile=rt, col_tile=ft.col_tile))
    return out


def mapping_error(compiled: CompiledLayer) -> str | None:
    """First way the tiles break the mapping rules of docs/design.md §6, or None.

    Checks what the cycle models rely on: each tile's ``group`` exists and its
    used places hold exactly that group's kept rows of row tile ``row_tile``
    in mapping order, ``n_rows_used`` matches, every filter of the tile
    belongs to a group keeping the same rows, and each filter slot owns
    ``phi`` adjacent columns. (The weights themselves are checked by
    rebuilding them.) Tiles packed before filters were packed across groups
    (one group per column tile) pass. Vectorised over the tiles.
    """
    if not compiled.tiles:
        return None
    m, G, phi = compiled.macro, compiled.group_size, np.asarray(compiled.phi, np.int64)
    mask = np.asarray(compiled.mask, bool)
    ng, cap = mask.shape[1], m.capacity_rows
    st = compiled.stacked()
    meta = st["tiles_meta"].astype(np.int64)
    T = meta.shape[0]
    g, rt, ctile, nru = meta.T
    bad = (g < 0) | (g >= ng) | (rt < 0) | (ctile < 0)
    if bad.any():
        i = int(np.argmax(bad))
        return f"tile {i}: group must lie in [0, {ng - 1}], row_tile and col_tile >= 0"
    # rows: the group's kept rows of the row tile, in mapping order, -1 after
    n_kept = mask.sum(0)
    kr = np.full((ng, int(n_kept.max(initial=0)) + cap), -1, np.int64)
    for j in np.unique(g):
        r = np.flatnonzero(mask[:, j])
        kr[j, :r.size] = r
    e = rt[:, None] * cap + np.arange(cap)[None, :]
    expect = np.where(e < kr.shape[1], kr[g[:, None], np.minimum(e, kr.shape[1] - 1)], -1)
    count = np.clip(n_kept[g] - rt * cap, 0, cap)
    for cond, what in ((count <= 0, "the group has no kept rows in this row tile"),
                       (np.any(st["tiles_rows"].reshape(T, -1) != expect, axis=1),
                        "rows must be the group's kept rows of the row tile in mapping order, -1 after"),
                       (nru != -(-count // m.n_comp), "n_rows_used does not match the row tile's kept rows")):
        if cond.any():
            i = int(np.argmax(cond))
            return f"tile {i} (group {int(g[i])}, row tile {int(rt[i])}): {what}"
    # filters: every filter's group keeps the tile's rows
    _, col_class = np.unique(mask.T, axis=0, return_inverse=True)
    col_class = np.asarray(col_class).reshape(-1)
    filt = st["tiles_filters"].astype(np.int64)
    used = filt >= 0
    fg = np.where(used, filt // G, 0)
    wrong = used & (col_class[fg] != col_class[g][:, None])
    if wrong.any():
        i, s = (int(v) for v in np.argwhere(wrong)[0])
        return f"tile {i} (group {int(g[i])}): filter {int(filt[i, s])} keeps other rows than group {int(g[i])}"
    # columns: slot s owns phi[filters[s]] adjacent columns
    cf = st["tiles_col_filter"].astype(np.int64)
    n_col = cf.shape[1]
    key = np.where(cf >= 0, np.arange(T)[:, None] * n_col + cf, T * n_col)
    cnt = np.bincount(key.ravel(), minlength=T * n_col + 1)[:-1].reshape(T, n_col)
    cols = np.broadcast_to(np.arange(n_col), cf.shape)
    lo = np.full(T * n_col + 1, n_col)
    hi = np.full(T * n_col + 1, -1)
    np.minimum.at(lo, key.ravel(), cols.ravel())
    np.maximum.at(hi, key.ravel(), cols.ravel())
    span = (hi[:-1] - lo[:-1] + 1).reshape(T, n_col)
    want = np.where(used, phi[np.where(used, filt, 0)], 0)
    wrong = (cnt != want) | ((cnt > 0) & (span != cnt))
    if wrong.any():
        i, s = (int(v) for v in np.argwhere(wrong)[0])
        return (f"tile {i} (group {int(g[i])}): filter slot {s} must own phi = {int(want[i, s])} adjacent columns, "
                f"owns {int(cnt[i, s])}")
    return None


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

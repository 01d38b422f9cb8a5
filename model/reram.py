"""Weight transforms of three ReRAM bit-sparsity schemes, as we read them from their abstracts.

Pure NumPy (no torch). Every transform takes a layer's int8 weights in im2col
layout (K x N, columns are filters) and returns int8 weights of the same shape
(what the network computes with after the transform) plus what the crossbar
mapping of the scheme needs. ``docs/perf_model.md`` ("ReRAM bit-sparsity
schemes") names every assumption; in short:

* weights are stored sign-magnitude: the magnitude ``|w|`` (8 bits, so that
  -128 fits) is cut into *slices* of ``cell_bits`` bits, least significant
  first, one slice per ReRAM cell; positive and negative weights go to separate
  columns (``W = W+ - W-``);
* **SME / SoBS-X** (:func:`sme_pattern`): the bit-sparse pattern constraint
  keeps at most ``max_slices`` non-zero slices per weight (the nearest such
  value); the paper enforces it with ADMM during fine-tuning, ``dbpim compare``
  with a projected (straight-through) fine-tune instead;
* **ERA-BS** (:func:`era_bs`): exponent-based quantization with one exponent
  per OU segment (``ou_rows`` weights of one filter) and a ``mantissa_bits``
  mantissa per weight, then a bit flip of each mantissa toward the code with
  the fewest one bits within ``flip_tol`` mantissa steps; its crossbar-aware
  activation pruning (:func:`prune_segments`) zeroes an input vector's OU row
  segment whose activations are all small, so the OU is not activated;
* **ReRAM-Sharing** (:func:`ou_share`): OU-sized weight blocks (``ou_rows``
  weights of one filter) are clustered with k-means (fixed seed) into
  ``ceil(nonzero blocks / share_ratio)`` shared blocks; all-zero blocks are
  pruned, not clustered. The sharing fine-tune keeps the assignments and
  moves each shared block to the mean of its members (:func:`share_project`);
  :func:`share_of` reads the sharing structure back from shared weights.

Each transform is a projection: applied to its own output it changes nothing
(ERA-BS for ``flip_tol`` <= 1; the tests check it), so the fine-tuned weights
of a scheme can be mapped by the same code as the transformed ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dbpim.model._check import as_int_array
from dbpim.model.quant import channel_scale
from dbpim.model.spec import WEIGHT_MAX, WEIGHT_MIN

__all__ = ["MAG_BITS", "EraBs", "OuShare", "int8_weights", "n_slices", "magnitude_slices", "nonzero_slices", "sme_pattern",
           "exponent_quantize", "bit_flip", "era_bs", "prune_segments", "segment_view", "ou_blocks", "ou_share", "share_project",
           "share_of", "check_int8"]

#: Magnitude bits of a sign-magnitude int8 weight (|-128| = 128 needs 8).
MAG_BITS = 8
_POS_MAX, _NEG_MAX = WEIGHT_MAX, -WEIGHT_MIN  # largest magnitude of a positive / negative int8


def check_int8(w, name: str = "w") -> np.ndarray:
    """``w`` as an int64 K x N matrix of int8 values; ValueError (one line) otherwise."""
    a = np.asarray(w)
    if a.ndim != 2:
        raise ValueError(f"{name}: must be a K x N matrix, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name}: must hold integers (int8 weights), got dtype {a.dtype}")
    a = a.astype(np.int64)
    if a.size and (a.min() < WEIGHT_MIN or a.max() > WEIGHT_MAX):
        raise ValueError(f"{name}: values must lie in [{WEIGHT_MIN}, {WEIGHT_MAX}], got [{a.min()}, {a.max()}]")
    return a


def int8_weights(w_float) -> tuple[np.ndarray, np.ndarray]:
    """Plain int8 weights of a float K x N layer: per-filter symmetric scale (:func:`model.quant.channel_scale`).

    The starting point of the ReRAM schemes when an artifact holds ``w_float``
    (no FTA): ``w = rint(clip(w_float / scale, -128, 127))``.

    Returns
    -------
    w : ndarray of int8, shape (K, N)
    scale : ndarray of float32, shape (N,)
    """
    wf = np.asarray(w_float, np.float64)
    scale = channel_scale(wf)
    return np.rint(np.clip(wf / scale, WEIGHT_MIN, WEIGHT_MAX)).astype(np.int8), scale


def n_slices(cell_bits: int, bits: int = MAG_BITS) -> int:
    """Cells (slices of ``cell_bits`` bits) per ``bits``-bit magnitude."""
    if not isinstance(cell_bits, (int, np.integer)) or not 1 <= cell_bits <= bits:
        raise ValueError(f"cell_bits: must be an integer from 1 to {bits}, got {cell_bits!r}")
    return -(-bits // int(cell_bits))


def magnitude_slices(mag, cell_bits: int, bits: int = MAG_BITS) -> np.ndarray:
    """Slices of non-negative magnitudes, least significant first: shape ``(S, *mag.shape)``."""
    mag = np.asarray(mag, np.int64)
    S = n_slices(cell_bits, bits)
    shifts = (np.arange(S) * cell_bits).reshape((S,) + (1,) * mag.ndim)
    return (mag[None] >> shifts) & ((1 << cell_bits) - 1)


def nonzero_slices(mag, cell_bits: int, bits: int = MAG_BITS) -> np.ndarray:
    """Number of non-zero slices of each magnitude (same shape as ``mag``)."""
    return (magnitude_slices(mag, cell_bits, bits) != 0).sum(0)


def _nearest_lut(allowed: np.ndarray, limit: int) -> np.ndarray:
    """For every magnitude 0..limit the nearest allowed value <= limit (ties: the smaller)."""
    cand = np.sort(allowed[allowed <= limit])
    a = np.arange(limit + 1)
    d = np.abs(a[:, None] - cand[None, :])
    return cand[d.argmin(1)]  # argmin takes the first (smaller) of equal distances


def _apply_signed(w: np.ndarray, lut_pos: np.ndarray, lut_neg: np.ndarray) -> np.ndarray:
    mag = np.abs(w)
    out = np.where(w >= 0, lut_pos[np.minimum(mag, _POS_MAX)], -lut_neg[mag])
    return out.astype(np.int8)


def sme_pattern(w, max_slices: int = 2, cell_bits: int = 2) -> np.ndarray:
    """SME's bit-sparse pattern: each weight's magnitude keeps at most ``max_slices`` non-zero slices.

    Every weight becomes the nearest int8 value (ties toward zero) whose
    magnitude has at most ``max_slices`` non-zero ``cell_bits``-bit slices, so
    a weight already meeting the pattern is unchanged.

    Parameters
    ----------
    w : array_like of int, shape (K, N)
        int8 weights.
    max_slices : int
        Non-zero slices allowed per weight (1 .. slices per weight).
    cell_bits : int
        Bits per ReRAM cell (one slice per cell).

    Returns
    -------
    ndarray of int8, shape (K, N)
    """
    w = check_int8(w)
    S = n_slices(cell_bits)
    if not isinstance(max_slices, (int, np.integer)) or not 1 <= max_slices <= S:
        raise ValueError(f"max_slices: must be an integer from 1 to {S}, got {max_slices!r}")
    vals = np.arange(_NEG_MAX + 1)
    allowed = vals[nonzero_slices(vals, cell_bits) <= max_slices]
    return _apply_signed(w, _nearest_lut(allowed, _POS_MAX), _nearest_lut(allowed, _NEG_MAX))


def _bit_length(a: np.ndarray) -> np.ndarray:
    """Bits needed for each non-negative integer (0 for 0)."""
    a = np.asarray(a, np.int64)
    out = np.zeros(a.shape, np.int64)
    for b in range(MAG_BITS + 1):
        out[a >= (1 << b)] = b + 1
    return out


def _segments(K: int, ou_rows: int) -> np.ndarray:
    """OU segment index of each of the K rows."""
    if not isinstance(ou_rows, (int, np.integer)) or ou_rows < 1:
        raise ValueError(f"ou_rows: must be an integer >= 1, got {ou_rows!r}")
    return np.arange(K) // int(ou_rows)


def exponent_quantize(w, ou_rows: int = 8, mantissa_bits: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """ERA-BS's exponent-based quantization with one exponent per OU segment.

    A segment is ``ou_rows`` consecutive rows of one filter (the weights one
    OU column holds). Its exponent ``E = max(0, bitlen(max |w|) - mantissa_bits)``;
    each weight's mantissa ``M = round(|w| / 2**E)`` (half up) clipped to
    ``2**mantissa_bits - 1`` and to the int8 range of its sign.

    Returns
    -------
    mantissa : ndarray of int64, shape (K, N)
        Signed mantissas (``w' = mantissa * 2**E``).
    exponent : ndarray of int64, shape (ceil(K / ou_rows), N)
    """
    w = check_int8(w)
    if not isinstance(mantissa_bits, (int, np.integer)) or not 1 <= mantissa_bits <= MAG_BITS:
        raise ValueError(f"mantissa_bits: must be an integer from 1 to {MAG_BITS}, got {mantissa_bits!r}")
    K, N = w.shape
    seg = _segments(K, ou_rows)
    nseg = int(seg[-1]) + 1 if K else 0
    mag = np.abs(w)
    seg_max = np.zeros((nseg, N), np.int64)
    np.maximum.at(seg_max, seg, mag)
    E = np.maximum(0, _bit_length(seg_max) - mantissa_bits)
    Er = E[seg]
    m = (mag + ((1 << Er) >> 1)) >> Er  # round half up
    limit = np.where(w >= 0, _POS_MAX, _NEG_MAX) >> Er
    m = np.minimum(np.minimum(m, (1 << mantissa_bits) - 1), limit)
    return np.where(w < 0, -m, m), E


def bit_flip(mantissa, mantissa_bits: int = 4, flip_tol: int = 1, limit=None) -> np.ndarray:
    """ERA-BS's bit flip: each mantissa magnitude moves to the code with the fewest one bits within ``flip_tol``.

    Among the magnitudes ``v`` with ``|v - m| <= flip_tol`` and
    ``0 <= v < 2**mantissa_bits`` (so the exponent is unchanged) and
    ``v <= limit`` (per element, e.g. what keeps ``v * 2**E`` an int8 of its
    sign), the one with the fewest one bits is taken, then the nearest, then
    the smaller. ``m`` itself is a candidate: the number of one bits never
    increases and the error is at most ``flip_tol`` mantissa steps.
    """
    m = np.asarray(mantissa, np.int64)
    if not isinstance(flip_tol, (int, np.integer)) or flip_tol < 0:
        raise ValueError(f"flip_tol: must be an integer >= 0, got {flip_tol!r}")
    top = (1 << mantissa_bits) - 1
    mag = np.abs(m)
    lim = np.full(m.shape, top, np.int64) if limit is None else np.minimum(top, np.broadcast_to(limit, m.shape))
    if mag.size and np.any(mag > lim):
        raise ValueError(f"mantissa: magnitudes must be at most 2**{mantissa_bits} - 1 and the limit, "
                         f"got {int(mag.max())}")
    pop = np.array([bin(v).count("1") for v in range(top + 1)], np.int64)
    best, key = mag.copy(), None
    for d in sorted(range(-flip_tol, flip_tol + 1), key=lambda d: (abs(d), d)):  # nearest, then smaller first
        v = mag + d
        ok = (v >= 0) & (v <= lim)
        k = np.where(ok, pop[np.clip(v, 0, top)], np.iinfo(np.int64).max)
        if key is None:
            best, key = np.where(ok, v, best), k
        else:
            take = k < key  # strictly fewer one bits: ties keep the nearer (earlier) candidate
            best, key = np.where(take, v, best), np.where(take, k, key)
    return np.where(m < 0, -best, best)


@dataclass
class EraBs:
    """An ERA-BS layer: ``w = mantissa * 2**exponent[row // ou_rows]`` (int8)."""

    w: np.ndarray  # int8 (K, N)
    mantissa: np.ndarray  # int64 (K, N), signed
    exponent: np.ndarray  # int64 (ceil(K / ou_rows), N)
    ou_rows: int
    mantissa_bits: int


def era_bs(w, ou_rows: int = 8, mantissa_bits: int = 4, flip_tol: int = 1) -> EraBs:
    """ERA-BS: exponent-based quantization per OU segment, then the bit flip of the mantissas."""
    m, E = exponent_quantize(w, ou_rows, mantissa_bits)
    seg = _segments(m.shape[0], ou_rows)
    limit = np.where(m < 0, _NEG_MAX, _POS_MAX) >> E[seg]  # the flipped value stays an int8 of its sign
    m = bit_flip(m, mantissa_bits, flip_tol, limit)
    wq = m * (1 << E[seg]) if m.size else m
    return EraBs(w=wq.astype(np.int8), mantissa=m, exponent=E, ou_rows=int(ou_rows),
                 mantissa_bits=int(mantissa_bits))


def prune_segments(x, ou_rows: int, threshold: int) -> np.ndarray:
    """ERA-BS's crossbar-aware activation pruning on integer input vectors (im2col rows).

    Each vector's K inputs are cut into OU row segments of ``ou_rows``
    (the rows one OU spans; the last may be shorter); a segment whose
    magnitudes are all at most ``threshold`` is set to zero, so no input bit
    of it activates its OUs. ``threshold`` 0 changes nothing.

    Parameters
    ----------
    x : array_like of int, shape (P, K)
        Integer activations (8-bit codes, signed or unsigned).
    ou_rows : int
        Rows per OU.
    threshold : int
        Largest magnitude pruned (>= 0).

    Returns
    -------
    ndarray of int64, shape (P, K)
    """
    x = as_int_array(x, "x").astype(np.int64)
    if not isinstance(threshold, (int, np.integer)) or threshold < 0:
        raise ValueError(f"threshold: must be an integer >= 0, got {threshold!r}")
    keep = segment_view(np.abs(x), ou_rows).max(2) > threshold
    return x * np.repeat(keep, ou_rows, axis=1)[:, :x.shape[1]]


def segment_view(x, ou_rows: int) -> np.ndarray:
    """Input vectors (P, K) cut into OU row segments, the last zero-padded: (P, ceil(K / ou_rows), ou_rows)."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"x: must be (vectors, K) input vectors, got shape {x.shape}")
    P, K = x.shape
    nseg = int(_segments(K, ou_rows)[-1]) + 1 if K else 0
    pad = np.zeros((P, nseg * ou_rows), x.dtype)
    pad[:, :K] = x
    return pad.reshape(P, nseg, ou_rows)


def ou_blocks(w, ou_rows: int, dtype=np.int64) -> np.ndarray:
    """OU-sized blocks: ``ou_rows`` consecutive weights of one filter, zero-padded: (ceil(K/ou_rows) * N, ou_rows)."""
    w = np.asarray(w, dtype)
    K, N = w.shape
    nb = -(-K // ou_rows)
    pad = np.zeros((nb * ou_rows, N), dtype)
    pad[:K] = w
    return pad.reshape(nb, ou_rows, N).transpose(0, 2, 1).reshape(nb * N, ou_rows)


def _from_blocks(blocks: np.ndarray, K: int, N: int, ou_rows: int) -> np.ndarray:
    nb = -(-K // ou_rows)
    return blocks.reshape(nb, N, ou_rows).transpose(0, 2, 1).reshape(nb * ou_rows, N)[:K]


@dataclass
class OuShare:
    """A ReRAM-Sharing layer: every non-zero OU block replaced by its shared block."""

    w: np.ndarray  # int8 (K, N)
    labels: np.ndarray  # int64 per block (blocks in :func:`ou_blocks` order), -1 for a pruned zero block
    centroids: np.ndarray  # int64 (k, ou_rows) shared blocks
    ou_rows: int


def _nearest(u: np.ndarray, c: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Index of the nearest row of ``c`` for every row of ``u`` (squared Euclidean, chunked)."""
    cn = (c ** 2).sum(1)
    out = np.empty(len(u), np.int64)
    for i in range(0, len(u), chunk):
        out[i:i + chunk] = (cn[None, :] - 2.0 * u[i:i + chunk] @ c.T).argmin(1)
    return out


def _kmeans(x: np.ndarray, k: int, seed: int, iters: int) -> tuple[np.ndarray, np.ndarray]:
    """k-means (k-means++ start, Lloyd steps) on the distinct rows of ``x``, weighted by their counts."""
    uniq, inv, cnt = np.unique(x, axis=0, return_inverse=True, return_counts=True)
    inv = inv.reshape(-1)
    if len(uniq) <= k:
        return uniq.astype(np.float64), inv
    rng = np.random.default_rng(seed)
    u = uniq.astype(np.float64)
    wgt = cnt.astype(np.float64)
    idx = [int(rng.choice(len(u), p=wgt / wgt.sum()))]
    d2 = ((u - u[idx[0]]) ** 2).sum(1)
    for _ in range(1, k):
        p = d2 * wgt
        idx.append(int(rng.choice(len(u), p=p / p.sum())) if p.sum() > 0 else int(rng.integers(len(u))))
        d2 = np.minimum(d2, ((u - u[idx[-1]]) ** 2).sum(1))
    c = u[idx].copy()
    lab = _nearest(u, c)
    for _ in range(iters):
        c = _cluster_means(u, wgt, lab, c)
        nxt = _nearest(u, c)
        if np.array_equal(nxt, lab):
            break
        lab = nxt
    return _cluster_means(u, wgt, lab, c), lab[inv]  # the means of the final assignment


def _cluster_means(u: np.ndarray, wgt: np.ndarray, lab: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Weighted mean of the rows of ``u`` in each cluster (a cluster with no member keeps its row of ``c``)."""
    k = len(c)
    tot = np.bincount(lab, weights=wgt, minlength=k)
    new = np.array(c, np.float64, copy=True)
    used = tot > 0
    for d in range(u.shape[1]):
        new[used, d] = np.bincount(lab, weights=wgt * u[:, d], minlength=k)[used] / tot[used]
    return new


def ou_share(w, ou_rows: int = 8, share_ratio: float = 4.0, seed: int = 0, iters: int = 10) -> OuShare:
    """ReRAM-Sharing: cluster the non-zero OU blocks of a layer into shared blocks.

    Parameters
    ----------
    w : array_like of int, shape (K, N)
        int8 weights.
    ou_rows : int
        Weights of one filter per OU block.
    share_ratio : float
        Non-zero blocks per shared block (k = ceil(blocks / share_ratio)).
    seed : int
        k-means++ start.

    Returns
    -------
    OuShare
        Exact (``w`` unchanged) when the layer has at most k distinct non-zero blocks.
    """
    w = check_int8(w)
    if not (isinstance(share_ratio, (int, float)) and share_ratio >= 1):
        raise ValueError(f"share_ratio: must be a number >= 1, got {share_ratio!r}")
    K, N = w.shape
    _segments(K, ou_rows)
    blocks = ou_blocks(w, ou_rows)
    nz = np.any(blocks != 0, axis=1)
    labels = np.full(len(blocks), -1, np.int64)
    out = np.zeros_like(blocks)
    cent = np.zeros((0, ou_rows), np.int64)
    if nz.any():
        k = int(np.ceil(nz.sum() / share_ratio))
        c, lab = _kmeans(blocks[nz], k, seed, iters)
        cent = np.clip(np.rint(c), WEIGHT_MIN, WEIGHT_MAX).astype(np.int64)
        labels[nz] = lab
        out[nz] = cent[lab]
    return OuShare(w=_from_blocks(out, K, N, ou_rows).astype(np.int8), labels=labels, centroids=cent,
                   ou_rows=int(ou_rows))


def share_project(u, labels, ou_rows: int) -> np.ndarray:
    """ReRAM-Sharing with fixed assignments: each block position takes its cluster's mean block.

    The projection of the sharing fine-tune: ``u`` are a layer's current
    weights in int8 units (float K x N), ``labels`` an :class:`OuShare`'s
    (blocks in :func:`ou_blocks` order, -1 for a pruned block). Every cluster's
    block becomes the mean of its members' blocks in ``u``, rounded (``rint``)
    and clipped to int8; pruned blocks stay 0. On the weights the clustering
    ran on, this gives :func:`ou_share`'s weights exactly.

    Returns
    -------
    ndarray of int8, shape (K, N)
    """
    u = np.asarray(u, np.float64)
    if u.ndim != 2:
        raise ValueError(f"u: must be a K x N matrix, got shape {u.shape}")
    K, N = u.shape
    _segments(K, ou_rows)
    blocks = ou_blocks(u, ou_rows, np.float64)
    lab = np.asarray(labels, np.int64).reshape(-1)
    if lab.shape != (len(blocks),) or (lab.size and lab.min() < -1):
        raise ValueError(f"labels: must be one cluster index (or -1) per block, {len(blocks)} blocks, "
                         f"got shape {lab.shape}")
    out = np.zeros_like(blocks)
    sel = lab >= 0
    if sel.any():
        k = int(lab.max()) + 1
        cent = _cluster_means(blocks[sel], np.ones(int(sel.sum())), lab[sel], np.zeros((k, blocks.shape[1])))
        out[sel] = np.clip(np.rint(cent), WEIGHT_MIN, WEIGHT_MAX)[lab[sel]]
    return _from_blocks(out, K, N, ou_rows).astype(np.int8)


def share_of(w, ou_rows: int) -> OuShare:
    """The sharing structure of already shared int8 weights: its distinct non-zero blocks are the shared ones.

    What the crossbar mapping of fine-tuned sharing weights stores (a shared
    block whose mean rounded to zero is a pruned block there).
    """
    w = check_int8(w)
    K, N = w.shape
    _segments(K, ou_rows)
    blocks = ou_blocks(w, ou_rows)
    nz = np.any(blocks != 0, axis=1)
    labels = np.full(len(blocks), -1, np.int64)
    cent = np.zeros((0, ou_rows), np.int64)
    if nz.any():
        cent, inv = np.unique(blocks[nz], axis=0, return_inverse=True)
        labels[nz] = inv.reshape(-1)
    return OuShare(w=w.astype(np.int8), labels=labels, centroids=cent, ou_rows=int(ou_rows))

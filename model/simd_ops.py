"""The integer semantics of the SIMD core's operations, written once (docs/design.md §14).

Between layers the chip's SIMD core runs everything the PIM macros do not,
on integers only, with the one rescaling arithmetic of :mod:`model.requant`
(``rescale``: a fixed-point multiplier ``m`` and a rounding right shift
``s``; ``saturate``: a clamp to ``[lo, hi]``). This module is the golden
twin of the core (``hw.simd``) and what the whole-network golden chip and
the integer path call. Every function takes and returns NumPy integer arrays
(int64 out), batch first: ``(N, C, H, W)`` for feature maps, ``(N, C)`` for
flat tensors; per-channel constants (``m``, ``s``, ``bias``) are a scalar or
one value per channel (axis 1). Nothing here is floating point.

==================== ==========================================================================
op                   result
==================== ==========================================================================
requant              ``saturate(rescale(acc + bias, m, s), lo, hi)`` per channel
clamp                ``saturate(x, lo, hi)`` (ReLU, ReLU6, clamp on the integer grid)
maxpool2d            window maximum; padding never wins (implicit minus infinity); floor mode
avgpool2d            ``saturate(rescale(window sum, m, s), lo, hi)``; padding counts as zeros
global_avgpool       ``saturate(rescale(sum over H, W, m, s), lo, hi)``, shape ``(N, C)``
add                  ``saturate(rescale(a, ma, sa) + rescale(b, mb, sb), lo, hi)``
depthwise_conv2d     integer accumulators ``sum(x * w)`` per channel (zeros for padding)
==================== ==========================================================================

The window of output ``(oh, ow)`` reads input rows ``oh * stride - padding +
kh * dilation`` and columns ``ow * stride - padding + kw * dilation`` for
``kh``, ``kw`` in ``range(kernel)``; :func:`pool_windows` returns them in
that order (``kh`` major, ``kw`` minor), the order in which the core takes a
window's elements. Output sizes are PyTorch's floor mode:
``(H + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1``.
"""

from __future__ import annotations

import numpy as np

from dbpim.model._check import check_int, is_int
from dbpim.model.requant import ACC_LIMIT_BITS, RequantError, requantize, rescale, saturate

__all__ = ["RequantError", "pool_geometry", "pool_windows", "requant", "clamp", "maxpool2d", "avgpool2d",
           "global_avgpool", "add", "depthwise_conv2d"]

# every operand is a value the rescaling takes: |v| < 2**ACC_LIMIT_BITS (sums of them stay exact in int64)
_VALUE_LIMIT = 1 << ACC_LIMIT_BITS


def _ints(x, name: str, ndims: tuple[int, ...]) -> np.ndarray:
    """``x`` as an int64 array with one of ``ndims`` dimensions, else one-line ValueError."""
    a = np.asarray(x)
    if a.dtype.kind not in "iu" or a.dtype == np.uint64:
        raise ValueError(f"{name}: must be an integer array, got dtype {a.dtype}")
    if a.ndim not in ndims:
        raise ValueError(f"{name}: must have {' or '.join(map(str, ndims))} dimensions, got shape {a.shape}")
    a = a.astype(np.int64)
    if a.size and int(np.abs(a).max()) >= _VALUE_LIMIT:
        raise ValueError(f"{name}: values must satisfy |v| < 2**{ACC_LIMIT_BITS}, got {int(np.abs(a).max())}")
    return a


def _per_channel(v, x: np.ndarray, name: str) -> np.ndarray | int:
    """A scalar or one value per channel (axis 1 of ``x``), shaped to broadcast against ``x``."""
    if v is None:
        return None
    if is_int(v):
        return int(v)
    a = np.asarray(v)
    if a.dtype.kind not in "iu":
        raise RequantError(f"{name}: must be integers, got dtype {a.dtype}")
    c = x.shape[1]
    if a.shape not in ((), (c,)):
        raise RequantError(f"{name}: must be a scalar or one value per channel, shape ({c},), got shape {a.shape}")
    return a.astype(np.int64).reshape((-1,) + (1,) * (x.ndim - 2)) if a.ndim else int(a)


def _pair(v, name: str, lo: int) -> tuple[int, int]:
    """An int or a pair of ints, each ``>= lo``, as a pair."""
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{name}: must be an integer or a pair of integers, got {v!r}")
        return check_int(f"{name}[0]", v[0], lo), check_int(f"{name}[1]", v[1], lo)
    k = check_int(name, v, lo)
    return k, k


def pool_geometry(shape, kernel, stride=None, padding=0, dilation=1, name: str = "pool"):
    """Checked window geometry of a 2-D window op on an input of ``shape`` ``(N, C, H, W)``.

    Returns
    -------
    tuple
        ``(kernel, stride, padding, dilation, (OH, OW))``, each a pair of ints.
    """
    k = _pair(kernel, f"{name}.kernel", 1)
    st = k if stride is None else _pair(stride, f"{name}.stride", 1)
    p = _pair(padding, f"{name}.padding", 0)
    d = _pair(dilation, f"{name}.dilation", 1)
    out = []
    for ax, size in enumerate(shape[2:4]):
        span = d[ax] * (k[ax] - 1) + 1
        if size + 2 * p[ax] < span:
            raise ValueError(f"{name}.kernel: the window spans {span} > input size {size} + 2 * padding "
                             f"{p[ax]} on axis {'HW'[ax]}")
        out.append((size + 2 * p[ax] - span) // st[ax] + 1)
    return k, st, p, d, tuple(out)


def pool_windows(x, kernel, stride=None, padding=0, dilation=1, pad_value: int = 0,
                 name: str = "pool") -> np.ndarray:
    """Every window of ``x`` ``(N, C, H, W)``: shape ``(N, C, OH, OW, KH * KW)``, ``kh`` major.

    Padding positions hold ``pad_value``. ``stride`` defaults to ``kernel``.
    """
    x = _ints(x, f"{name}.x", (4,))
    k, st, p, d, (oh, ow) = pool_geometry(x.shape, kernel, stride, padding, dilation, name)
    n, c, h, w = x.shape
    xp = np.full((n, c, h + 2 * p[0], w + 2 * p[1]), pad_value, np.int64)
    xp[:, :, p[0]:p[0] + h, p[1]:p[1] + w] = x
    cols = [xp[:, :, i * d[0]: i * d[0] + st[0] * (oh - 1) + 1: st[0],
               j * d[1]: j * d[1] + st[1] * (ow - 1) + 1: st[1]]
            for i in range(k[0]) for j in range(k[1])]
    return np.stack(cols, axis=-1)


def requant(acc, m, s, lo: int, hi: int, bias=None, name: str = "requant") -> np.ndarray:
    """A layer's integer output: ``saturate(rescale(acc + bias, m, s), lo, hi)`` per output channel.

    Parameters
    ----------
    acc : ndarray of int, shape (N, C, H, W) or (N, C)
        Accumulators (``|acc + bias| < 2**31``).
    m, s : int or ndarray of int, shape (C,)
        Fixed-point multiplier and right shift (:mod:`model.requant` ranges).
    lo, hi : int
        Output range (the activation's, with a folded ReLU / clamp).
    bias : None, int or ndarray of int, shape (C,)
        At the accumulator's scale.

    Returns
    -------
    ndarray of int64, the shape of ``acc``
    """
    a = _ints(acc, f"{name}.acc", (2, 4))
    return requantize(a, _per_channel(m, a, f"{name}.m"), _per_channel(s, a, f"{name}.s"), lo, hi,
                      bias=_per_channel(bias, a, f"{name}.bias"), name=name)


def clamp(x, lo: int, hi: int, name: str = "clamp") -> np.ndarray:
    """``min(max(x, lo), hi)`` elementwise: ReLU (``lo`` = the zero point), ReLU6, clamp; int64."""
    return saturate(_ints(x, f"{name}.x", (2, 4)), lo, hi, name)


def maxpool2d(x, kernel, stride=None, padding=0, dilation=1, name: str = "maxpool2d") -> np.ndarray:
    """Max pooling of ``x`` ``(N, C, H, W)``: ``(N, C, OH, OW)`` int64.

    Padding never wins (it reads as minus infinity); a window made of padding
    only is a ValueError. ``stride`` defaults to ``kernel``; floor mode.
    """
    sentinel = np.iinfo(np.int64).min
    y = pool_windows(x, kernel, stride, padding, dilation, sentinel, name).max(axis=-1)
    if y.size and int(y.min()) == sentinel:
        raise ValueError(f"{name}.padding: a window holds padding only (padding {padding!r}, "
                         f"kernel {kernel!r}, dilation {dilation!r})")
    return y


def avgpool2d(x, kernel, stride=None, padding=0, m=None, s=None, lo: int | None = None, hi: int | None = None,
              name: str = "avgpool2d") -> np.ndarray:
    """Average pooling of ``x`` ``(N, C, H, W)``: ``saturate(rescale(window sum, m, s), lo, hi)``.

    The window sum counts padding as zeros (``count_include_pad``); the
    compiler folds ``1 / (KH * KW)`` and the scale change into ``m``, ``s``
    (a scalar or one per channel). ``stride`` defaults to ``kernel``; floor mode.
    ``m``, ``s``, ``lo`` and ``hi`` are required (no default scale or range).
    """
    for field, v in (("m", m), ("s", s), ("lo", lo), ("hi", hi)):
        if v is None:
            raise ValueError(f"{name}.{field}: required, got None")
    win = pool_windows(x, kernel, stride, padding, 1, 0, name)
    total = win.sum(axis=-1)
    return saturate(rescale(total, _per_channel(m, total, f"{name}.m"), _per_channel(s, total, f"{name}.s"),
                            name), lo, hi, name)


def global_avgpool(x, m, s, lo: int, hi: int, name: str = "global_avgpool") -> np.ndarray:
    """Global average pooling of ``x`` ``(N, C, H, W)``: ``(N, C)`` (no kept H, W dimensions).

    ``saturate(rescale(sum over H and W, m, s), lo, hi)``, ``m``, ``s`` a
    scalar or one per channel (``1 / (H * W)`` folded in).
    """
    x = _ints(x, f"{name}.x", (4,))
    total = x.sum(axis=(2, 3))
    return saturate(rescale(total, _per_channel(m, total, f"{name}.m"), _per_channel(s, total, f"{name}.s"),
                            name), lo, hi, name)


def add(a, ma, sa, b, mb, sb, lo: int, hi: int, name: str = "add") -> np.ndarray:
    """Residual add: ``saturate(rescale(a, ma, sa) + rescale(b, mb, sb), lo, hi)``, int64.

    ``a`` and ``b`` have the same shape ``(N, C, H, W)`` or ``(N, C)``; each
    operand is rescaled to the output scale by its own ``(m, s)`` (a scalar
    or one per channel).
    """
    a = _ints(a, f"{name}.a", (2, 4))
    b = _ints(b, f"{name}.b", (2, 4))
    if a.shape != b.shape:
        raise ValueError(f"{name}.b: must have the shape of a {a.shape}, got {b.shape}")
    ra = rescale(a, _per_channel(ma, a, f"{name}.ma"), _per_channel(sa, a, f"{name}.sa"), f"{name}.a")
    rb = rescale(b, _per_channel(mb, b, f"{name}.mb"), _per_channel(sb, b, f"{name}.sb"), f"{name}.b")
    return saturate(ra + rb, lo, hi, name)


def depthwise_conv2d(x, w, stride=1, padding=0, dilation=1, name: str = "depthwise_conv2d") -> np.ndarray:
    """Depthwise convolution (groups = channels) of ``x`` ``(N, C, H, W)``: int64 accumulators ``(N, C, OH, OW)``.

    ``w`` has shape ``(C, 1, KH, KW)`` or ``(C, KH, KW)``; padding reads as
    zeros. ``stride`` defaults to 1. Follow with :func:`requant`.
    """
    x = _ints(x, f"{name}.x", (4,))
    wt = _ints(w, f"{name}.w", (3, 4))
    if wt.ndim == 4:
        if wt.shape[1] != 1:
            raise ValueError(f"{name}.w: must have shape (C, 1, KH, KW), got {wt.shape}")
        wt = wt[:, 0]
    if wt.shape[0] != x.shape[1]:
        raise ValueError(f"{name}.w: must have one filter per channel ({x.shape[1]}), got {wt.shape[0]}")
    kh, kw = wt.shape[1:]
    bound = int(np.abs(x).max(initial=0)) * int(np.abs(wt).max(initial=0)) * kh * kw
    if bound >= 1 << 63:
        raise ValueError(f"{name}.w: max|x| * max|w| * KH * KW must be < 2**63 (int64 accumulators), got {bound}")
    win = pool_windows(x, (kh, kw), stride, padding, dilation, 0, name)
    return np.einsum("nchwk,ck->nchw", win, wt.reshape(wt.shape[0], kh * kw))

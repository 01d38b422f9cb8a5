"""Integer-only rescaling between layers, written once (docs/design.md §13 "Integer-only inference").

The chip's SIMD core, its golden twin and the front-end's integer path
rescale every tensor with the same integer arithmetic, in the style of
integer-only inference (gemmlowp / TFLite): a real factor ``r`` (an input
scale over an output scale, times a weight scale or ``1 / window`` where it
applies) is represented once, per output channel, as a *fixed-point
multiplier* ``m`` and a *right shift* ``s``::

    r  ~=  m * 2**-s        0 <= m < 2**MULT_BITS,  0 <= s <= SHIFT_MAX

and a value ``v`` (an integer accumulator, a pooled sum, a residual operand)
is rescaled by one multiply and one rounding arithmetic shift::

    rescale(v, m, s) = (v * m + half(s)) >> s       half(s) = (1 << s) >> 1

(``>>`` rounds toward minus infinity, so the whole rounds half up: ``2.5 ->
3``, ``-2.5 -> -2``). ``saturate`` then clamps to the output range of the
activation (``[-128, 127]`` signed, ``[0, 255]`` unsigned, or the tighter
range of a ReLU / ReLU6 / clamp folded into it).

The product ``v * m`` must fit a signed 64-bit integer: ``|v| < 2**ACC_LIMIT_BITS``
(checked; every accumulator of a mapped layer is far below it). Nothing
here is floating point except :func:`quantize_multiplier`, which runs once,
in the compiler, when the constants are made.
"""

from __future__ import annotations

import math

import numpy as np

from dbpim.model._check import check_float, check_int

__all__ = ["RequantError", "MULT_BITS", "SHIFT_MAX", "ACC_LIMIT_BITS", "quantize_multiplier",
           "quantize_multipliers", "rescale", "saturate", "requantize"]

#: Width of the fixed-point multiplier ``m`` (unsigned): ``0 <= m < 2**MULT_BITS``.
MULT_BITS = 31
#: Largest right shift ``s``.
SHIFT_MAX = 62
#: A rescaled value must satisfy ``|v| < 2**ACC_LIMIT_BITS`` so that ``v * m`` fits int64.
ACC_LIMIT_BITS = 63 - MULT_BITS - 1


class RequantError(ValueError):
    """A factor or a value outside what the integer arithmetic represents; one line naming it."""


def quantize_multiplier(real: float, name: str = "scale") -> tuple[int, int]:
    """The ``(m, s)`` of a real factor ``real >= 0``: ``m * 2**-s`` nearest to it with ``m`` normalised.

    ``m`` has its top bit at ``MULT_BITS - 1`` (``2**30 <= m < 2**31``),
    so the relative error is below ``2**-31``, unless ``real`` is so small
    that ``s`` would pass :data:`SHIFT_MAX` (then ``m`` loses the low bits,
    down to ``(0, 0)`` for a factor below ``2**-(SHIFT_MAX + 1)``: every value
    rescales to 0) or ``real == 0`` (``(0, 0)``). A factor of ``2**(MULT_BITS - 1)``
    or more is a :class:`RequantError` naming ``name``.
    """
    r = check_float(name, real, 0.0, exc=RequantError)
    if r == 0.0:
        return 0, 0
    frac, exp = math.frexp(r)  # r = frac * 2**exp, 0.5 <= frac < 1
    m = round(frac * (1 << MULT_BITS))
    s = MULT_BITS - exp
    if m == 1 << MULT_BITS:  # frac rounded up to 1.0
        m >>= 1
        s -= 1
    if s < 0:
        raise RequantError(f"{name}: must be < 2**{MULT_BITS - 1} to rescale as m * 2**-s, got {r!r}")
    if s > SHIFT_MAX:
        m = (m + ((1 << (s - SHIFT_MAX)) >> 1)) >> (s - SHIFT_MAX)
        s = SHIFT_MAX
        if m == 0:
            return 0, 0
    return int(m), int(s)


def quantize_multipliers(reals, name: str = "scale") -> tuple[np.ndarray, np.ndarray]:
    """:func:`quantize_multiplier` of each factor of ``reals``: int64 arrays ``(m, s)`` of its shape."""
    a = np.asarray(reals, dtype=np.float64)
    ms = [quantize_multiplier(float(v), f"{name}[{i}]") for i, v in enumerate(a.reshape(-1))]
    m = np.array([p[0] for p in ms], dtype=np.int64).reshape(a.shape)
    s = np.array([p[1] for p in ms], dtype=np.int64).reshape(a.shape)
    return m, s


def _check_constants(m, s, name: str) -> tuple[np.ndarray, np.ndarray]:
    m = np.asarray(m)
    s = np.asarray(s)
    for a, what, hi in ((m, "m", (1 << MULT_BITS) - 1), (s, "s", SHIFT_MAX)):
        if a.dtype.kind not in "iu":
            raise RequantError(f"{name}.{what}: must be integers, got dtype {a.dtype}")
        if a.size and (int(a.min()) < 0 or int(a.max()) > hi):
            raise RequantError(f"{name}.{what}: must be in [0, {hi}], got values in "
                               f"[{int(a.min())}, {int(a.max())}]")
    return m.astype(np.int64), s.astype(np.int64)


def rescale(v, m, s, name: str = "rescale") -> np.ndarray:
    """``(v * m + ((1 << s) >> 1)) >> s`` elementwise, int64 (``m``, ``s`` broadcast against ``v``).

    ``v`` must be integers with ``|v| < 2**ACC_LIMIT_BITS``; ``m`` in
    ``[0, 2**MULT_BITS)``, ``s`` in ``[0, SHIFT_MAX]``. Anything else is a
    :class:`RequantError` naming ``name`` and the field.
    """
    v = np.asarray(v)
    if v.dtype.kind not in "iu":
        raise RequantError(f"{name}.v: must be integers, got dtype {v.dtype}")
    m, s = _check_constants(m, s, name)
    v = v.astype(np.int64)
    if v.size and int(np.abs(v).max()) >= 1 << ACC_LIMIT_BITS:
        raise RequantError(f"{name}.v: must satisfy |v| < 2**{ACC_LIMIT_BITS}, got {int(np.abs(v).max())}")
    half = np.right_shift(np.left_shift(np.int64(1), s), 1)
    return np.right_shift(v * m + half, s)


def saturate(v, lo: int, hi: int, name: str = "saturate") -> np.ndarray:
    """``min(max(v, lo), hi)`` elementwise, int64; ``lo <= hi`` integers."""
    lo = check_int(f"{name}.lo", lo, exc=RequantError)
    hi = check_int(f"{name}.hi", hi, lo, exc=RequantError)
    return np.clip(np.asarray(v, dtype=np.int64), lo, hi)


def requantize(acc, m, s, lo: int, hi: int, bias=None, name: str = "requantize") -> np.ndarray:
    """A mapped layer's output: ``saturate(rescale(acc + bias, m, s), lo, hi)``, int64.

    ``bias`` (integers at the accumulator's scale, or ``None``), ``m`` and
    ``s`` broadcast against ``acc`` (per output channel: shape ``(C, 1, 1)``
    for ``acc`` of shape ``(..., C, H, W)``, ``(C,)`` for ``(..., C)``).
    """
    acc = np.asarray(acc)
    if bias is not None:
        b = np.asarray(bias)
        if b.dtype.kind not in "iu":
            raise RequantError(f"{name}.bias: must be integers, got dtype {b.dtype}")
        acc = acc.astype(np.int64) + b.astype(np.int64)
    return saturate(rescale(acc, m, s, name), lo, hi, name)

"""Argument checks shared by the library functions (clear errors, never deep tracebacks).

Array checks (:func:`as_int_array`, :func:`check_range`, :func:`check_finite`)
and scalar checks (:func:`check_int`, :func:`check_float`, :func:`check_choice`) for
options that a caller (the CLI, a script) passes to a library function. Each
raises one line ``<name>: must be <allowed>, got <value>`` naming the field,
never a command-line flag.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["as_int_array", "check_range", "check_finite", "check_int", "check_float", "check_choice",
           "is_int", "is_real", "show"]


def is_int(v) -> bool:
    """True for a Python or NumPy integer (not a bool)."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def is_real(v) -> bool:
    """True for a Python or NumPy real number (int or float, not a bool)."""
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def show(v, limit: int = 40) -> str:
    """``repr(v)`` shortened to ``limit`` characters (a huge number stays one readable line)."""
    r = repr(v)
    return r if len(r) <= limit else f"{r[:limit - 12]}... ({len(r)} chars)"


def _interval(lo, hi, closed_lo: bool = True) -> str:
    left = "[" if closed_lo else "("
    if hi is None:
        return f">= {lo}" if closed_lo else f"> {lo}"
    return f"in {left}{lo}, {hi}]"


def check_int(name: str, v, lo: int | None = None, hi: int | None = None, exc: type = ValueError) -> int:
    """``v`` as an ``int`` if it is an integer in ``[lo, hi]`` (``None``: unbounded), else ``exc``.

    A float with an integral value (``3.0``) is refused too: an integer field
    is never rounded. The message is one line naming ``name``:
    ``phi_max: must be an integer in [1, 4], got 1.5``.
    """
    where = "" if lo is None and hi is None else " " + (_interval(lo, hi) if lo is not None else f"<= {hi}")
    if not is_int(v) or (lo is not None and v < lo) or (hi is not None and v > hi):
        raise exc(f"{name}: must be an integer{where}, got {show(v)}")
    return int(v)


def check_float(name: str, v, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
                hi_open: bool = False, exc: type = ValueError) -> float:
    """``v`` as a ``float`` if it is a finite real number in ``[lo, hi]`` (``lo_open`` / ``hi_open``: open ends).

    NaN and infinities are always refused. The message is one line naming
    ``name``: ``lr: must be a finite number in (0, 10], got inf``.
    """
    if lo is None and hi is None:
        where = ""
    elif lo is None:
        where = f" {'<' if hi_open else '<='} {hi}"
    elif hi is None:
        where = f" {'>' if lo_open else '>='} {lo}"
    else:
        where = f" in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
    ok = False
    if is_real(v):
        try:
            f = float(v)
        except OverflowError:  # an int beyond the float range
            f = math.inf
        ok = (math.isfinite(f) and (lo is None or (f > lo if lo_open else f >= lo))
              and (hi is None or (f < hi if hi_open else f <= hi)))
    if not ok:
        raise exc(f"{name}: must be a finite number{where}, got {show(v)}")
    return float(v)


def check_choice(name: str, v, choices, exc: type = ValueError):
    """``v`` if it is one of ``choices``, else ``exc`` listing them."""
    if v not in tuple(choices):
        raise exc(f"{name}: must be one of {', '.join(map(str, choices))}, got {show(v)}")
    return v


def as_int_array(x, name: str) -> np.ndarray:
    """Return ``x`` as an integer ndarray or raise TypeError naming ``name``."""
    a = np.asarray(x)
    if a.dtype == bool or not np.issubdtype(a.dtype, np.integer):
        if np.issubdtype(a.dtype, np.floating):
            if not np.all(np.isfinite(a)):
                raise ValueError(f"{name}: must be finite integers, found NaN or inf")
            if not np.all(a == np.round(a)):
                raise TypeError(f"{name}: must hold integers, got non-integral {a.dtype} values")
            return a.astype(np.int64)
        raise TypeError(f"{name}: must be an integer array, got dtype {a.dtype}")
    return a


def check_range(a: np.ndarray, lo: int, hi: int, name: str) -> None:
    """Raise ValueError if any element of ``a`` lies outside [lo, hi]."""
    if a.size and (a.min() < lo or a.max() > hi):
        bad = a[(a < lo) | (a > hi)].flat[0]
        raise ValueError(f"{name}: values must lie in [{lo}, {hi}], found {int(bad)}")


def check_finite(a: np.ndarray, name: str) -> None:
    """Raise ValueError if ``a`` holds NaN or inf."""
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: must be finite, found NaN or inf")

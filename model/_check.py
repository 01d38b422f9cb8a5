"""Argument checks shared by the golden-model functions (clear errors, never deep tracebacks)."""

from __future__ import annotations

import numpy as np

__all__ = ["as_int_array", "check_range", "check_finite"]


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

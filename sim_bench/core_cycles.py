"""The performance model's cycle count of one mapped layer on one PIM core (docs/design.md §11).

``sim_bench.perf`` with ``system.cores = 1`` on an artifact's layer record with its
recorded inputs: its per-filter-tile model is :mod:`model.core_timing`, the
functions the RTL is held to; ``dbpim verify`` prints this count next to the
RTL's, and compiles the layer's core program with the same pixel runs
(:func:`one_core_run_pixels`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["one_core", "one_core_run_pixels", "layer_cycles_one_core"]


def one_core(cfg):
    """``cfg`` with one PIM core (the rest of the system as it is)."""
    return dataclasses.replace(cfg, system=dataclasses.replace(cfg.system, cores=1, replicate_idle_cores=False))


def one_core_run_pixels(rec, cfg) -> int:
    """Output pixels per pixel run that the performance model gives the layer on one core."""
    from dbpim.sim_bench.perf import pixels_per_run, spec_from_record
    spec = spec_from_record(rec)
    f_max = max([len(f.filters) for f in spec.filter_tiles] + [1])
    return pixels_per_run(one_core(cfg), spec.vectors, 1, float(f_max))


def layer_cycles_one_core(rec, cfg) -> np.ndarray:
    """Cycles of a mapped layer record on one core of ``cfg``, per recorded sample: int64 (S,).

    The core's own count (START to DONE, tiles preloaded), as its ``CYCLES``
    register counts; the system model adds the off-chip weight fetch on top.

    Raises
    ------
    ValueError
        The record has no recorded inputs.
    """
    from dbpim.sim_bench.perf import evaluate_layer, spec_from_record
    if rec.im2col_inputs() is None:
        raise ValueError(f"{rec.name}: no recorded inputs (x) in the artifact")
    lp = evaluate_layer(spec_from_record(rec), one_core(cfg), ("dbpim",))
    return np.asarray(lp.mech["dbpim"].core_cycles, np.int64)

"""The performance model's cycle count of one mapped layer on one PIM core (docs/design.md §11).

The same functions the RTL is held to (:mod:`model.core_timing`), applied to
an artifact's layer record with its recorded inputs; ``dbpim verify`` prints
this count next to the RTL's.
"""

from __future__ import annotations

import numpy as np

from model.core_timing import core_layer_cycles
from model.spec import input_bits

__all__ = ["layer_cycles_one_core"]


def layer_cycles_one_core(rec, cfg) -> np.ndarray:
    """Cycles of a mapped layer record on one core of ``cfg``, per recorded sample: int64 (S,).

    Raises
    ------
    ValueError
        The record has no recorded inputs.
    """
    x = rec.im2col_inputs()
    if x is None:
        raise ValueError(f"{rec.name}: no recorded inputs (x) in the artifact")
    S = int(rec.x.shape[0])
    bits = input_bits(x, rec.signed_input).reshape(S, x.shape[0] // S, -1)
    return core_layer_cycles(rec.compiled, bits, cfg.system.macros_per_core, cfg.core, rec.name).sum(-1)

"""The work of the SIMD core, counted once (docs/design.md §7, §8).

Everything the PIM macros do not run goes to the SIMD core in float: the
activation-by-activation matmuls of attention, depthwise convolutions, weight
layers the flow could not map, and elementwise operations. An artifact's
``simd`` record carries the operation ``op`` (a key of :data:`OP_COST`), its
``macs`` and ``elements`` per sample, and ``simd_ops`` = :func:`simd_ops` of
those, the lane operations the performance model divides over the SIMD lanes.

Costs are our choices (one lane operation = one multiply-accumulate, compare,
add, multiply or table look-up on one element), documented here and nowhere
else:

============ ===================== =============================================================
op           cost per element      what
============ ===================== =============================================================
matmul       0 (+ 1 per MAC)       ``@``/``matmul``/``bmm`` between activations: M x N x K MACs
depthwise    0 (+ 1 per MAC)       depthwise convolution (groups == in_channels), float
conv         0 (+ 1 per MAC)       a conv / linear the flow did not map (float, dense)
module       1 (+ 1 per MAC)       a module the flow could not trace: MACs counted by running it
pool         1 per window read     max / average pooling
relu         1                     ReLU, ReLU6, clamp
add          1                     residual add, bias add, subtraction
mul          1                     elementwise multiply / divide / scale
act          3                     sigmoid, SiLU, tanh, hard-swish (look-up + 2 arithmetic)
gelu         5                     GELU: x / sqrt(2), erf by look-up, + 1, * 0.5, * x
softmax      5                     max, subtract, exp by look-up, sum, divide
layernorm    8                     mean (1), variance (3), normalise (2), affine (2)
norm         2                     BatchNorm left unfolded (scale and shift)
mask         1                     attention / padding masks (select)
other        1                     any other elementwise operation
move         0                     data movement: reshape, permute, cat, slicing, nearest
                                   interpolation, embedding look-up (buffer traffic, no compute)
============ ===================== =============================================================

For ``move`` records ``elements`` counts the elements moved per sample; the
performance model charges them no SIMD cycles.
"""

from __future__ import annotations

__all__ = ["OP_COST", "MAC_OPS", "SIMD_OPS", "simd_ops"]

OP_COST = {
    "matmul": 0, "depthwise": 0, "conv": 0, "module": 1, "pool": 1, "relu": 1, "add": 1, "mul": 1,
    "act": 3, "gelu": 5, "softmax": 5, "layernorm": 8, "norm": 2, "mask": 1, "other": 1, "move": 0,
}
# ops whose ``macs`` are multiply-accumulates of a weight or matmul layer
MAC_OPS = ("matmul", "depthwise", "conv", "module")
SIMD_OPS = tuple(OP_COST)


def simd_ops(op: str, macs: int = 0, elements: int = 0) -> int:
    """Lane operations of one SIMD record per sample: ``macs + OP_COST[op] * elements``.

    Parameters
    ----------
    op : str
        A key of :data:`OP_COST`.
    macs, elements : int
        Multiply-accumulates and elements (window reads for ``pool``) per sample.

    Returns
    -------
    int
    """
    if op not in OP_COST:
        raise ValueError(f"op: must be one of {', '.join(SIMD_OPS)}, got {op!r}")
    if macs < 0 or elements < 0:
        raise ValueError(f"macs, elements: must be >= 0, got {macs}, {elements}")
    return int(macs) + OP_COST[op] * int(elements)

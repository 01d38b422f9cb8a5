"""Reports that explain themselves: the notes ``dbpim bench`` / ``dbpim bench-paper`` add to their figures.

* :func:`simd_op_rows`: the work of the SIMD core by operation (element-wise
  activations such as SiLU = sigmoid look-up x multiply, LayerNorm, GELU,
  softmax, pooling, unfolded BatchNorm, ...) with its modelled cost: lane
  operations per element from the one cost table :data:`model.simd.OP_COST`,
  lane operations per inference, cycles (per layer as
  :func:`sim_bench.perf.evaluate_layer` counts them: for an artifact the chip
  runs, its SIMD instructions, :func:`model.chip_timing.instruction_cycles`, 0
  for a clamp folded into a requantization; else
  :func:`model.simd_core.record_cycles`, the SIMD core RTL's timing for ReLU /
  clamp, add and pooling, ``ceil(simd_ops / simd_lanes)`` for the rest) and
  share of the DB-PIM time (mapped layers' requantizations are theirs);
* :func:`signed_input_notes`: a mapped layer whose recorded inputs are signed
  (two's complement: every negative input sets the high bit columns, so the
  IPU finds almost no all-zero bit column to skip) gets a note with its
  measured input-skipping speedup;
* :func:`slower_than_dense_notes`: a mapped layer whose DB-PIM wall cycles
  exceed the dense baseline's gets a note with the figures that explain it
  (K, phi, filter tiles against the cores, result streaming and tile loads).
"""

from __future__ import annotations

import math

import numpy as np

from dbpim.model.simd import MAC_OPS, OP_COST
from dbpim.model.spec import SIMD_LATENCY

__all__ = ["OP_WHAT", "simd_op_rows", "signed_input_notes", "slower_than_dense_notes", "layer_notes",
           "explain_markdown", "SIGNED_SKIP_WHY"]

#: what each SIMD op of :data:`model.simd.OP_COST` stands for (its cost per element is there)
OP_WHAT = {
    "matmul": "activation x activation matmul (attention): 1 per MAC",
    "depthwise": "depthwise convolution (float): 1 per MAC",
    "conv": "conv / linear the flow did not map (float, dense): 1 per MAC",
    "module": "module the flow could not trace: 1 per MAC + 1 per element",
    "pool": "max / average pooling: 1 per window read",
    "relu": "ReLU, ReLU6, clamp",
    "add": "residual add, bias add, subtraction",
    "mul": "element-wise multiply / divide / scale (e.g. squeeze-excite gating)",
    "act": "sigmoid, SiLU (sigmoid look-up x multiply), tanh, hard-swish: look-up + 2 arithmetic",
    "gelu": "GELU: x / sqrt(2), erf by look-up, + 1, * 0.5, * x",
    "softmax": "softmax: max, subtract, exp by look-up, sum, divide",
    "layernorm": "LayerNorm / GroupNorm / RMSNorm: mean 1, variance 3, normalise 2, affine 2",
    "norm": "BatchNorm left unfolded (scale and shift)",
    "mask": "attention / padding mask (select)",
    "other": "any other element-wise operation",
    "move": "data movement (reshape, permute, cat, slicing): no SIMD cycles",
}

#: why signed inputs defeat the IPU's zero-column skipping
SIGNED_SKIP_WHY = ("inputs are signed (two's complement: every negative input sets the high bit columns, so the "
                   "IPU finds few all-zero bit columns to skip); signed inputs come from producers that output "
                   "negatives: SiLU, GELU, LayerNorm, a BatchNorm after the ReLU, a linear bottleneck, a residual "
                   "add without ReLU")


def simd_op_rows(net) -> list[dict]:
    """One row per SIMD op of ``net`` (a :class:`sim_bench.perf.NetworkPerf`), most costly first."""
    f = net.cfg.system.freq_mhz
    total = sum(lp.cycles("dbpim") for lp in net.layers) or 1.0
    by: dict = {}
    for lp in net.layers:
        if lp.mapped:
            continue
        s = lp.spec
        op = s.op or "other"
        r = by.setdefault(op, {"op": op, "what": OP_WHAT.get(op, "unknown operation"),
                               "cost [lane ops/element]": OP_COST.get(op, 1), "layers": 0, "macs [per inference]": 0,
                               "elements [per inference]": 0, "simd_ops [lane ops/inference]": 0,
                               "cycles [cycles]": 0.0, "examples": []})
        r["layers"] += 1
        r["macs [per inference]"] += int(s.macs) if op in MAC_OPS else 0
        cost = OP_COST.get(op, 1)
        extra = int(s.simd_ops) - (int(s.macs) if op in MAC_OPS else 0)
        r["elements [per inference]"] += extra // cost if cost else 0
        r["simd_ops [lane ops/inference]"] += int(s.simd_ops)
        r["cycles [cycles]"] += lp.simd_cycles
        if len(r["examples"]) < 3:
            r["examples"].append(s.name)
    rows = sorted(by.values(), key=lambda r: -r["cycles [cycles]"])
    for r in rows:
        r["time [us]"] = r["cycles [cycles]"] / f
        r["share_of_time_dbpim [%]"] = 100.0 * r["cycles [cycles]"] / total
    return rows


def signed_input_notes(net) -> list[dict]:
    """A note per mapped layer with signed inputs: its measured input-skipping speedup and why it is small."""
    out = []
    for lp in net.mapped():
        if not lp.spec.signed:
            continue
        d, i = lp.cycles("dense"), lp.cycles("input")
        sp = d / i if i else 1.0
        rec = "" if lp.spec.bits is not None else " (no inputs recorded: no skipping credited anyway)"
        out.append({"layer": lp.spec.name, "kind": "signed_inputs", "speedup_input [x]": sp,
                    "note": f"input skipping gives {sp:.2f}x: signed inputs{rec}"})
    return out


def slower_than_dense_notes(net) -> list[dict]:
    """A note per mapped layer slower under DB-PIM than on the dense baseline, with the figures behind it."""
    cfg = net.cfg
    m, cores = cfg.macro, cfg.system.cores
    rows_per_tile = m.n_comp * m.n_row
    out = []
    for lp in net.mapped():
        d, b = lp.mech["dense"], lp.mech["dbpim"]
        if b.wall_cycles <= d.wall_cycles:
            continue
        s = lp.spec
        phi = float(np.mean(s.phi)) if s.phi is not None and np.size(s.phi) else 0.0
        row_tiles = max(1, math.ceil(s.K / rows_per_tile))
        why = [f"K = {s.K} rows ({row_tiles} row tile(s) of {rows_per_tile}), phi mean {phi:.2f}"]
        if b.macro_cycles:
            why.append(f"its macro-cycles fall {d.macro_cycles / b.macro_cycles:.2f}x")
        if b.filter_tiles < d.filter_tiles:
            why.append(f"FTA packs the {s.N} filters into {b.filter_tiles} filter tile(s) where dense spreads them "
                       f"over {d.filter_tiles}, so {min(b.filter_tiles, cores)} of {cores} cores work "
                       f"(dense: {min(d.filter_tiles, cores)})")
        why.append(f"per-tile costs (result streaming {b.stream_cycles:.0f} + tile loads {b.load_cycles:.0f} "
                   f"cycles) on fewer cores outweigh the saved bit columns"
                   if b.filter_tiles < d.filter_tiles else
                   f"result streaming {b.stream_cycles:.0f} and tile loads {b.load_cycles:.0f} cycles "
                   f"(dense: {d.stream_cycles + d.load_cycles:.0f}) dominate")
        sp = d.wall_cycles / b.wall_cycles if b.wall_cycles else 1.0
        out.append({"layer": s.name, "kind": "slower_than_dense", "speedup_dbpim [x]": sp,
                    "note": f"{sp:.2f}x, slower than dense: " + "; ".join(why)})
    return out


def layer_notes(net) -> list[dict]:
    """Every per-layer note of :func:`slower_than_dense_notes` and :func:`signed_input_notes`."""
    return slower_than_dense_notes(net) + signed_input_notes(net)


def explain_markdown(nets) -> list[str]:
    """The SIMD-operation table and the per-layer notes of every network, as Markdown lines."""
    L = []
    for n in nets:
        rows = simd_op_rows(n)
        if rows:
            L += ["", f"## SIMD core of {n.network}: operations and their modelled cost", "",
                  f"Cost per element from `model/simd.py` (one lane operation = one MAC, compare, add, multiply or "
                  f"table look-up), {n.cfg.system.simd_lanes} lanes, cycles per layer = the SIMD core RTL's "
                  f"(1 + ceil(elements / lanes) + {SIMD_LATENCY} pipeline stages) for relu, add and pool, "
                  f"ceil(lane ops / lanes) for the others.", "",
                  "| op | what | cost / element | layers | elements | lane ops | cycles | share of DB-PIM time |",
                  "|---|---|---|---|---|---|---|---|"]
            L += [f"| {r['op']} | {r['what']} | {r['cost [lane ops/element]']} | {r['layers']} | "
                  f"{r['elements [per inference]']:,} | {r['simd_ops [lane ops/inference]']:,} | "
                  f"{r['cycles [cycles]']:,.0f} | {r['share_of_time_dbpim [%]']:.1f}% |" for r in rows]
        notes = layer_notes(n)
        if notes:
            L += ["", f"## Layer notes of {n.network}", ""]
            L += [f"* `{x['layer']}`: {x['note']}" for x in notes]
            if any(x["kind"] == "signed_inputs" for x in notes):
                L += ["", f"Signed inputs: {SIGNED_SKIP_WHY}."]
    return L + [""] if L else []

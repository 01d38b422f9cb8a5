"""Performance, energy and utilization model of DB-PIM (docs/design.md §7, docs/perf_model.md).

Inputs are :class:`LayerSpec` objects (built from an artifact's layer records
with :func:`specs_from_artifact`, or directly for synthetic workloads). For every
layer mapped on the macros the model evaluates seven *mechanisms* (which sparsity
the hardware exploits) on the layer's own recorded activations:

=========== ============================ =============== ==============
mechanism   rows stored / fed             weight columns  input skipping
=========== ============================ =============== ==============
dense       all K rows                    8 bit planes    no  (baseline)
bit         all K rows                    phi_f (FTA)     no
value       kept rows of each group       8 bit planes    no
input       all K rows                    8 bit planes    yes (IPU)
bit_input   all K rows                    phi_f (FTA)     yes (Tab. III "bit-level")
weight      kept rows of each group       phi_f (FTA)     no  (Fig. 11)
dbpim       kept rows of each group       phi_f (FTA)     yes (hybrid)
=========== ============================ =============== ==============

``dbpim`` macro-cycles are exactly ``model.layer.run_layer``'s ``cycles_dbpim``
and ``dense`` its ``cycles_dense`` (checked by the tests). Filters are packed
into column tiles by ``model.compile.pack_columns`` (the artifact's own tiles
when it has them), so a macro holds up to ``n_col`` filters at phi = 1.

Wall cycles come from the core timing of :mod:`model.core_timing` (switch
delivery, lock-step rounds of M macros, drain, result streaming) on the macro
clock of :mod:`model.cycles` (tile load, input beats, ``macro_interval``),
evaluated for every filter tile of a layer at once (every mechanism of a
layer in one call, each on cores of its own: :func:`evaluate_layer`,
:func:`_core_timings`); this module adds the
system around the cores: jobs (filter tile x pixel run) dealt to the cores
by their compile-time work (:func:`model.core_timing.deal_jobs`), the shared
off-chip bandwidth that stretches a START's first load of each tile (its
other pixel runs load it from the core's tile store), and the output buffer
whose capacity splits the output pixels into chunks (each chunk reloads the
row tiles). The dense baseline has no sparse allocation switch (the macro's
input beats alone); every DB-PIM mechanism feeds its inputs through it.
At ``batch`` B (:func:`evaluate_layer`) the pixels of B samples form the
pixel runs, so a loaded tile serves every sample of its run
(:func:`batch_samples`); :func:`batch_reuse` finds the smallest batch where
the off-chip floor (:attr:`MechPerf.dram_floor_cycles`) binds no layer.

Utilization (:data:`UTILIZATIONS`): ``utilization`` (paper Eq. 2 at cell
level: effective cells over the cells of the activated cell rows of issued
cycles), ``utilization_compute`` (effective cell-cycles over every cell of the
chip during the rounds' compute: idle columns, macros and cores count, load,
delivery, drain and streaming cycles do not) and ``utilization_system``
(effective cell-cycles over every cell row of every macro in every wall cycle:
idle cores, macros, compartments and columns, load, delivery and drain cycles
count). Cycle breakdown: a layer's wall cycles split into :data:`CYCLE_TERMS`
(the busiest core's passes split by ``model.core_timing.pass_terms``, plus
the off-chip floor; SIMD layers are all ``simd``), adding up exactly.
Energy: events per inference times the constants of ``hw/configs/*.yaml``
(:data:`COMPONENTS`); ``energy_saving_macro`` counts the macro components
only.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

from dbpim.model import core_timing as ct
from dbpim.model import limits
from dbpim.model.compile import FilterTile, group_run_bounds, pack_columns
from dbpim.model.config import EnergyConfig, HwConfig
from dbpim.model.core_timing import filter_tiles_of
from dbpim.model.cycles import cell_row_popcounts_flat, input_beats, inputs_by_row
from dbpim.model.prune import n_groups
from dbpim.model.chip_timing import dwc_cycles, instruction_cycles
from dbpim.model.simd_core import record_cycles
from dbpim.model.derived import Derived
from dbpim.model.window import lane_read_bytes
from dbpim.model.spec import CORE_LATENCY, DENSE_COLS_PER_WEIGHT, DIGIT_BITS, input_bits, pipeline_latency

__all__ = ["MECHANISMS", "MECH_LABELS", "COMPONENTS", "MACRO_COMPONENTS", "LayerSpec", "LayerPerf", "MechPerf",
           "NetworkPerf", "spec_from_record", "specs_from_artifact", "evaluate_layer", "evaluate_network",
           "layer_type", "energy_of", "peak_tops", "peak_geometry", "BenchError", "PerfError", "count_cycles",
           "check_finite_figure", "CYCLES_MAX", "batch_samples", "batched_vectors", "bandwidth_bound_layers",
           "batch_reuse", "SPEEDUP_MECHANISMS", "CYCLE_TERMS", "CYCLE_TERM_LABELS", "UTILIZATIONS"]

MECHANISMS = ("dense", "bit", "value", "input", "bit_input", "weight", "dbpim")
MECH_LABELS = {
    "dense": "dense digital PIM baseline",
    "bit": "bit-level weight sparsity only (FTA)",
    "value": "value-level weight sparsity only (block pruning)",
    "input": "input zero-column skipping only (IPU)",
    "bit_input": "bit-level weights + inputs",
    "weight": "value + bit-level weights (no input skipping)",
    "dbpim": "hybrid (DB-PIM)",
}
# mechanism -> (kept rows only, FTA columns, IPU skipping)
_MODE = {
    "dense": (False, False, False), "bit": (False, True, False), "value": (True, False, False),
    "input": (False, False, True), "bit_input": (False, True, True), "weight": (True, True, False),
    "dbpim": (True, True, True),
}
#: energy component -> the EnergyConfig constants whose events it sums
COMPONENTS = {
    "macro array": ("cell_and_pj",), "adder tree": ("adder_input_pj", "csd_adder_input_pj"),
    "accumulator": ("accumulate_pj",), "ipu": ("ipu_pj",), "switch": ("switch_pj",),
    "input buffer": ("input_buffer_byte_pj",), "output buffer": ("output_buffer_byte_pj",),
    "weight load": ("weight_load_byte_pj", "weight_write_byte_pj", "dram_byte_pj"), "static": ("static_mw",),
    "simd core": ("simd_op_pj",),
}
#: the components inside the macros (``energy_saving_macro``)
MACRO_COMPONENTS = ("macro array", "adder tree", "accumulator", "ipu")


#: The terms a layer's wall cycles split into (:attr:`MechPerf.breakdown`, :meth:`NetworkPerf.breakdown`), in
#: report order: those of ``model.core_timing.pass_terms``, the off-chip floor and the SIMD core. They add up to
#: the wall cycles exactly, per batch instance (a recorded sample at batch 1) and layer.
CYCLE_TERMS = ("compute", "lockstep", "round_floor", "delivery", "load", "dram", "drain", "stream", "control", "simd")
_CORE_TERMS = CYCLE_TERMS[:-1]
_TERM_INDEX = {k: i for i, k in enumerate(_CORE_TERMS)}
assert set(_CORE_TERMS) - {"dram"} == set(ct.PASS_TERMS)
#: one line per term of :data:`CYCLE_TERMS` (reports print them beside the table)
CYCLE_TERM_LABELS = {
    "compute": "macro compute: each round's mean macro (issued bit columns + pipeline latency, rounded up)",
    "lockstep": "lock-step padding: a round's slowest macro over its mean (the macros start rounds together)",
    "round_floor": "round floor: rounds shorter than n_col wait for the previous round's drain (n_col apart)",
    "delivery": "switch delivery: the first round's fill (ceil(M_0 / in_windows) x deliver + 1) and later rounds still being "
                "delivered after the compute and the floor",
    "load": "exposed tile load through the write port (one cell row per cycle) beyond the first round's fill "
            "and what the other tile bank hides",
    "dram": "off-chip floor: what the shared DRAM bandwidth adds to the exposed tile loads",
    "drain": "drain: the last round's n_col beats into the output register file, per pass",
    "stream": "result streaming: a filter tile's results leave the core one beat (core.result_lanes of them) per cycle",
    "control": "control: the fixed cycles of every pass (decode, barrier) and every START",
    "simd": "SIMD core: the cycles of the chip's SIMD instructions of each layer (model.chip_timing."
            "instruction_cycles: a mapped layer's requantization REQ, a SIMD layer's MAXP / ADD / GAP / CLMP / DWC) "
            "for an artifact the chip runs, else the SIMD layers' estimate (model.simd_core.record_cycles; "
            "depthwise: model.chip_timing.dwc_cycles)",
}
#: the three utilizations every report prints, with their one-line definitions (docs/perf_model.md)
UTILIZATIONS = {
    "utilization": "cell level: effective cells over the activated cell rows of issued bit-column cycles",
    "utilization_compute": "over compute cycles: effective cell-cycles over every cell of the chip during the "
                           "rounds' compute (compute + lock-step terms of the core that computes longest); idle "
                           "columns, macros and cores count, load, delivery, drain and streaming do not",
    "utilization_system": "system: effective cell-cycles over every cell of the chip in every wall cycle of the "
                          "mapped layers",
}


#: Largest cycle count the model holds in an int64 (with headroom for the sums over tiles and runs).
CYCLES_MAX = 1 << 52


class BenchError(ValueError):
    """Bad input to a report (artifact, hardware YAML, options); the message is one line."""


class PerfError(BenchError):
    """A performance figure is not a finite number the model can represent; the message is one line."""


def count_cycles(a, where: str, term: str) -> np.ndarray:
    """``a`` (float cycle counts) as int64, refusing NaN, infinities and counts above :data:`CYCLES_MAX`.

    A cast of a too-large float to int64 wraps (a load time turned negative
    and vanished behind ``np.maximum``): this is the one place float cycle
    counts become integers. ``where`` names the layer, ``term`` the cycles.
    """
    a = np.asarray(a, np.float64)
    bad = ~np.isfinite(a) | (np.abs(a) > CYCLES_MAX)
    if bad.any():
        raise PerfError(f"{where}: {term}: {a[bad].flat[0]:g} cycles is not a finite count below 2**52 "
                        "(check the hardware configuration's rates)")
    return a.astype(np.int64)


def check_finite_figure(v, where: str) -> float:
    """``v`` as a float if finite, else :class:`PerfError` naming ``where`` (a report figure)."""
    f = float(v)
    if not math.isfinite(f):
        raise PerfError(f"{where}: {f} is not a finite number")
    return f


def energy_of(events: dict, en: EnergyConfig) -> dict:
    """pJ by component of event counts (``constant name -> count``; static: mW x ns)."""
    return {comp: float(sum(events.get(k, 0.0) * getattr(en, k) for k in keys)) for comp, keys in COMPONENTS.items()}


@dataclass
class LayerSpec:
    """What the performance model needs of one layer.

    Mapped layers (``kind`` conv2d / linear) need ``K, N, G, phi, mask``;
    ``w`` (int8, K x N) is used for the dense utilization; ``bits`` are the
    recorded im2col inputs as 8-bit patterns (P_total, K) of ``samples``
    inferences (None: no recording, every bit column is assumed non-zero);
    ``filter_tiles`` the artifact's column tiles (None: packed by
    ``model.compile.pack_columns``). ``chip_simd`` (an artifact the chip runs,
    :func:`sim_bench.chip_cycles.simd_layer_instructions`) lists the chip's SIMD
    instructions ``(op, descriptor)`` of the layer: they cost
    :func:`model.chip_timing.instruction_cycles` (a mapped layer's ``REQ`` adds
    to its wall cycles; a SIMD layer's replace the estimate, none: 0). Without
    it a ``depthwise`` SIMD layer with ``dwc`` (its input ``(C, H, W)`` and
    window pairs) costs the RTL chip's DWC cycles
    (:func:`model.chip_timing.dwc_cycles`), any other the estimate
    (:func:`model.simd_core.record_cycles`).
    """

    name: str
    kind: str
    K: int = 0
    N: int = 0
    G: int = 1
    phi: np.ndarray | None = None
    mask: np.ndarray | None = None
    w: np.ndarray | None = None
    bits: np.ndarray | None = None
    samples: int = 1
    vectors: int = 1  # im2col vectors per inference
    op: str | None = None
    simd_ops: int = 0
    kernel: tuple | None = None
    signed: bool = False
    macs: int = 0  # multiply-accumulates per inference (mapped: K x N x vectors; simd: matmul-like ops)
    filter_tiles: list | None = None
    dwc: tuple | None = None  # a depthwise layer's (C, H, W, kernel, stride, padding, dilation): its DWC cycles
    chip_simd: list | None = None  # the chip's SIMD instructions (op, descriptor) of the layer: their cycles

    @property
    def mapped(self) -> bool:
        return self.kind in ("conv2d", "linear")


def layer_type(spec: LayerSpec) -> str:
    """Execution-time category of Fig. 13."""
    if spec.kind == "conv2d":
        return "std/pw-conv"
    if spec.kind == "linear":
        return "fc"
    return {"depthwise": "dw-conv", "mul": "mul", "matmul": "matmul", "softmax": "softmax",
            "layernorm": "layernorm", "gelu": "gelu", "conv": "unmapped conv/fc", "module": "unmapped module",
            "move": "data movement"}.get(spec.op or "other", "other (pool/relu/add)")


def filter_tiles_of_compiled(compiled) -> list[FilterTile]:
    """The column tiles of a compiled layer, in mapping order (one per (group, col_tile))."""
    out = []
    for g, c, idx in filter_tiles_of(compiled.tiles):
        t = compiled.tiles[idx[0]]
        slots = np.nonzero(t.filters >= 0)[0]
        first = np.array([int(np.argmax(t.col_filter == s)) for s in slots], np.int64)
        out.append(FilterTile(g, c, t.filters[slots].astype(np.int64), first, int((t.col_filter >= 0).sum())))
    return out


def spec_from_record(rec) -> LayerSpec:
    """A :class:`LayerSpec` of a ``model.artifact.LayerRecord``."""
    if not rec.mapped:
        return LayerSpec(name=rec.name, kind="simd", op=rec.op or "other", simd_ops=int(rec.simd_ops),
                         macs=rec.mac_count())
    c = rec.compiled
    x = rec.im2col_inputs()
    if x is not None:  # tokens of a linear layer are vectors of one sample
        S = int(rec.x.shape[0])
        bits = input_bits(x, rec.signed_input)
        vectors = x.shape[0] // max(S, 1)
    else:
        S, bits, vectors = 1, None, rec.vectors
    return LayerSpec(name=rec.name, kind=rec.kind, K=int(c.K), N=int(c.N), G=int(c.group_size),
                     phi=np.asarray(c.phi, np.uint8), mask=np.asarray(c.mask, bool),
                     w=None if rec.w is None else np.asarray(rec.w, np.int8), bits=bits, samples=S,
                     vectors=int(vectors), kernel=rec.kernel, signed=bool(rec.signed_input), macs=rec.mac_count(),
                     filter_tiles=filter_tiles_of_compiled(c))


def specs_from_artifact(art) -> list[LayerSpec]:
    """The :class:`LayerSpec` of every record, with the chip's SIMD instructions of each (``chip_simd``) when the
    chip runs the artifact's network; a depthwise record takes its window geometry (``dwc``) from the
    artifact's network program, whose depthwise ops come in the records' order (each checked: its output shape is
    the record's and the one its geometry gives; none is taken when the two lists disagree)."""
    specs = [spec_from_record(r) for r in art.layers]
    ops = [op for op in ((art.program or {}).get("ops") or []) if op.get("op") == "depthwise"]
    dws = [s for s in specs if s.op == "depthwise"]
    geo = [_dwc_geometry(r, op) for r, op in zip([r for r in art.layers if r.kind == "simd" and r.op == "depthwise"],
                                                   ops)]
    if len(ops) == len(dws) and all(g is not None for g in geo):
        for s, g in zip(dws, geo):
            s.dwc = g
    from dbpim.sim_bench.chip_cycles import simd_layer_instructions
    chip = simd_layer_instructions(art)  # None: the chip does not run the network
    if chip is not None:
        for s in specs:
            s.chip_simd = chip[s.name]
    return specs


def _dwc_geometry(rec, op: dict):
    """``(C, H, W, kernel, stride, padding, dilation)`` of a depthwise record from its program op, or None when the
    op's shapes are not the record's."""
    from dbpim.model.simd_ops import pool_geometry
    if len(rec.in_shape) != 3 or tuple(op.get("shape") or ()) != tuple(rec.out_shape):
        return None
    pairs = tuple(tuple(int(v) for v in op[k]) for k in ("kernel", "stride", "padding", "dilation"))
    try:
        out = pool_geometry((1,) + tuple(rec.in_shape), *pairs, name="depthwise")[4]
    except ValueError:
        return None
    return (tuple(int(v) for v in rec.in_shape) + pairs) if (rec.in_shape[0],) + out == tuple(rec.out_shape) \
        else None


# ----------------------------------------------------------------------------- mapping of a mechanism

@dataclass
class _Mapping:
    """The filter tiles of one mechanism, grouped by the row set (run) they use; rows kept flat."""

    rows: np.ndarray  # im2col rows of every run in mapping order, run after run
    run: np.ndarray  # run of each of those rows
    n_rows: np.ndarray  # kept rows per run
    ft_run: np.ndarray  # run of each filter tile
    ft_cols: np.ndarray  # used columns of each filter tile
    ft_filters: np.ndarray  # filters of each filter tile (fractional for dense bit planes)
    run_groups: np.ndarray | None = None  # (runs, 2): the groups [g0, g1) a run computes (dense utilization)
    row_key: tuple = ()  # the same for mappings of the same row sets (they share row tiles, delivery, cycles)


def _rows_of_groups(spec: LayerSpec, groups, cache: dict | None = None):
    """Kept rows of each group (flat, group after group), the index of their group, rows per group: int arrays.

    ``cache`` (a layer's) keeps them for the other mappings of the same groups."""
    groups = np.asarray(groups, np.int64)
    key = ("groups", groups.tobytes())
    if cache is not None and key in cache:
        return cache[key]
    kept = _mask_t(spec, cache)[groups]  # (groups, K): np.nonzero of it, through the flat indices (a 2-D nonzero is slower)
    n_rows = np.count_nonzero(kept, axis=1).astype(np.int64)
    run = np.repeat(np.arange(len(groups)), n_rows)
    out = np.flatnonzero(kept) - run * kept.shape[1], run, n_rows
    if cache is not None:
        cache[key] = out
    return out


def _mask_t(spec: LayerSpec, cache: dict | None = None) -> np.ndarray:
    """The layer's mask transposed, C-contiguous (groups, K): each group's mask contiguous; kept in ``cache``."""
    mask_t = None if cache is None else cache.get("mask_t")
    if mask_t is None:
        mask_t = np.ascontiguousarray(np.asarray(spec.mask, bool).T)
        if cache is not None:
            cache["mask_t"] = mask_t
    return mask_t


def _group_runs(spec: LayerSpec, cache: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``model.compile.group_run_bounds`` of the layer's mask (runs of groups keeping the same rows); kept in
    ``cache`` for the layer's other mapping of kept rows."""
    runs = None if cache is None else cache.get("group_runs")
    if runs is None:
        runs = group_run_bounds(_mask_t(spec, cache).T)
        if cache is not None:
            cache["group_runs"] = runs
    return runs


def _all_rows(spec: LayerSpec):
    return np.arange(spec.K), np.zeros(spec.K, np.int64), np.array([spec.K])


def _row_key(kept: bool, groups) -> tuple:
    """:attr:`_Mapping.row_key` of the kept rows of ``groups``, or (``kept`` False) of every row."""
    return ("groups", np.asarray(groups, np.int64).tobytes()) if kept else ("all",)


def _fta_mapping(spec: LayerSpec, kept: bool, n_col: int, cache: dict | None = None) -> _Mapping:
    if kept and spec.filter_tiles is not None:  # the artifact's own tiles; a tile's group keeps its rows
        ft_group = np.array([f.group for f in spec.filter_tiles], np.int64)
        cols = np.array([f.cols for f in spec.filter_tiles], np.int64)
        nf = np.array([len(f.filters) for f in spec.filter_tiles], np.float64)
    else:  # all rows: every group keeps every row, so the whole layer is one run
        mask = _mask_t(spec, cache).T if kept else np.ones((1, n_groups(spec.N, spec.G)), bool)
        pk = pack_columns(spec.phi, mask, spec.G, n_col, runs=_group_runs(spec, cache) if kept else None)
        ft_group, cols, nf = pk.run_group, pk.cols, pk.n_filters.astype(np.float64)
    groups, ft_run = _unique_groups(ft_group)  # one row set per distinct group
    rows, run, n_rows = _rows_of_groups(spec, groups, cache) if kept else _all_rows(spec)
    key = _row_key(kept, groups)
    if not kept and ft_group.size == 0:
        rows, run, n_rows, key = rows[:0], run[:0], n_rows[:0], ("none",)
    return _Mapping(rows=rows, run=run, n_rows=n_rows, ft_run=np.asarray(ft_run, np.int64).reshape(-1),
                    ft_cols=cols, ft_filters=nf, row_key=key)


def _unique_groups(ft_group) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(ft_group, return_inverse=True)``; without a sort when the groups are in order (packed tiles)."""
    ft_group = np.asarray(ft_group)
    if ft_group.size and np.all(ft_group[1:] >= ft_group[:-1]):
        new = np.append(True, ft_group[1:] != ft_group[:-1])
        return ft_group[new], np.cumsum(new) - 1
    return np.unique(ft_group, return_inverse=True)


def _dense_mapping(spec: LayerSpec, kept: bool, n_col: int, cache: dict | None = None) -> _Mapping:
    """8 two's-complement bit-plane columns per filter, packed densely over the run's filters."""
    if kept:
        runs = np.stack(_group_runs(spec, cache), axis=1)
        rows, run, n_rows = _rows_of_groups(spec, runs[:, 0], cache)
    else:
        runs = np.array([[0, n_groups(spec.N, spec.G)]], np.int64)
        rows, run, n_rows = _all_rows(spec)
    total = DENSE_COLS_PER_WEIGHT * (np.minimum(spec.N, runs[:, 1] * spec.G) - runs[:, 0] * spec.G)
    nct = -(-total // n_col)
    ft_run = np.repeat(np.arange(runs.shape[0]), nct)
    j = np.arange(ft_run.size) - np.repeat(np.cumsum(nct) - nct, nct)  # column tile within its run
    cols = np.minimum(n_col, total[ft_run] - j * n_col)
    return _Mapping(rows=rows, run=run, n_rows=n_rows, ft_run=ft_run, ft_cols=cols,
                    ft_filters=cols / DENSE_COLS_PER_WEIGHT, run_groups=runs, row_key=_row_key(kept, runs[:, 0]))


# ----------------------------------------------------------------------------- one mechanism

@dataclass
class MechPerf:
    """One layer under one mechanism, per inference unless noted."""

    macro_cycles: float  # summed over tiles and vectors (one macro)
    wall_cycles: float  # the busiest core, averaged over the recorded samples
    issued: float  # compute (bit-column) cycles, summed over macros
    effective: float  # effective cell-cycles (U numerator)
    activated: float  # activated cell-cycles (cell-level U denominator)
    capacity: float  # every cell row of every macro over the wall cycles (system U denominator)
    events: dict  # EnergyConfig constant -> count
    energy: dict  # pJ by component
    macro_cycles_total: int = 0  # over all recorded vectors (golden-model comparable)
    tiles: int = 0
    filter_tiles: int = 0
    cells: int = 0  # cells of the chip (every macro of every core)
    load_cycles: float = 0.0  # tile loads, summed over filter tiles (every chunk; port cycles from the tile store)
    stream_cycles: float = 0.0  # result streaming, summed over filter tiles
    psum_chunks: int = 1  # pixel runs of a filter tile per batch instance (output register file / output buffer)
    weight_bytes: float = 0.0  # fetched from off chip per inference (once per START holding the tile)
    core_cycles: np.ndarray | None = None  # (S,) the busiest core's STARTs per batch instance, tiles preloaded
    batch: int = 1  # samples per batch instance (:func:`batch_samples`)
    dram_floor_cycles: float = 0.0  # weight_bytes / dram_bytes_per_cycle: no schedule is faster (per inference)
    cycle_terms: dict = field(default_factory=dict)  # term -> (S,) int64: the busiest core's wall cycles split,
    #                                                  per batch instance
    compute_cycles: float = 0.0  # rounds' compute of the core computing longest, per inference (utilization_compute)

    @property
    def onchip_cycles(self) -> float:
        """Wall cycles per inference with the tiles on chip: the busiest core's :attr:`core_cycles` over the batch."""
        return float(np.mean(self.core_cycles)) / self.batch if self.core_cycles is not None else 0.0

    @property
    def bandwidth_bound(self) -> bool:
        """The off-chip floor binds: it exceeds :attr:`onchip_cycles` (docs/perf_model.md "Batch")."""
        return self.dram_floor_cycles > self.onchip_cycles

    @property
    def breakdown(self) -> dict:
        """Wall cycles per inference by term (:data:`CYCLE_TERMS` but ``simd``); they add up to ``wall_cycles``."""
        return {k: float(np.mean(self.cycle_terms[k])) / self.batch if k in self.cycle_terms else 0.0
                for k in _CORE_TERMS}

    @property
    def energy_pj(self) -> float:
        return float(sum(self.energy.values()))

    @property
    def utilization(self) -> float:
        return self.effective / self.activated if self.activated else 0.0

    @property
    def utilization_system(self) -> float:
        return self.effective / self.capacity if self.capacity else 0.0

    @property
    def capacity_compute(self) -> float:
        """Every cell of the chip over the compute cycles (the ``utilization_compute`` denominator)."""
        return self.cells * self.compute_cycles

    @property
    def utilization_compute(self) -> float:
        return self.effective / self.capacity_compute if self.capacity_compute else 0.0


def _mean(a) -> float:
    """``float(np.mean(a))`` of a 1-D array (the same float64 sum over the same order, over its size) without
    np.mean's overhead (every mechanism of every layer takes two)."""
    return float(np.add.reduce(a, dtype=np.float64) / a.size)


def _empty(en: EnergyConfig) -> MechPerf:
    return MechPerf(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, {}, energy_of({}, en))


def _row_tiles(mp: _Mapping, m):
    """Per run: kept rows R, cell rows, row tiles; per (run, row tile): cell rows used, validity."""
    R = mp.n_rows.astype(np.int64)
    ncr = -(-R // m.n_comp)
    nrt = -(-R // m.capacity_rows)
    nrt_max = int(nrt.max())
    rt = np.arange(nrt_max)
    used = np.clip(ncr[:, None] - rt[None, :] * m.n_row, 0, m.n_row)  # (runs, nrt_max)
    return R, ncr, nrt, used, used > 0


def _position(mp: _Mapping) -> np.ndarray:
    """Position of each row within its run (its kept-row number e)."""
    return np.arange(mp.rows.size) - np.repeat(np.cumsum(mp.n_rows) - mp.n_rows, mp.n_rows)


def _cell_row_sums(values, n_rows, n_comp: int, cell_rows: int) -> np.ndarray:
    """Integer ``values`` of every row of every run (runs after one another, ``n_rows`` each) summed over each
    cell row's ``n_comp`` rows: float64 (runs, ``cell_rows``), 0 past a run's cell rows."""
    n_rows = np.asarray(n_rows, np.int64)
    n_cells = -(-n_rows // n_comp)
    cell_run = np.repeat(np.arange(n_rows.size), n_cells)
    cell = np.arange(cell_run.size) - np.repeat(np.cumsum(n_cells) - n_cells, n_cells)  # within its run
    out = np.zeros((n_rows.size, cell_rows))
    if cell.size:
        out.ravel()[cell_run * cell_rows + cell] = np.add.reduceat(values, (np.cumsum(n_rows) - n_rows)[cell_run]
                                                                   + cell * n_comp)
    return out


def _switch_delivery(mp: _Mapping, m, used) -> tuple[np.ndarray, np.ndarray]:
    """Switch delivery cycles of one vector and input windows fetched, per (run, row tile) (``model.core_timing``;
    the dense baseline fetches the same windows, its inputs through no switch)."""
    n_runs, nrt_max = used.shape
    seg = mp.run * nrt_max + _position(mp) // m.capacity_rows
    dl, windows = ct.delivery_and_windows(mp.rows, seg, n_runs * nrt_max, m.n_comp, m.lanes)
    return dl.reshape(n_runs, nrt_max), windows.reshape(n_runs, nrt_max)


def _vector_cycles(spec, mp, m, skip: bool, used, ncr, S: int, Pp: int, cache: dict):
    """Per (run, sample, row tile): round compute (runs, S, nrt, R); per run and cell row: summed issued cycles.

    ``cache`` keeps the layer's :func:`model.cycles.inputs_by_row` for its other mechanisms."""
    lat = pipeline_latency(m.pipeline)
    n_runs, nrt_max = used.shape
    P = S * Pp
    if skip and spec.bits is not None:
        if "by_row" not in cache:
            cache["by_row"] = inputs_by_row(spec.bits)
        # whole row tiles of cell rows (nrt_max = ceil(crmax / n_row)), the padding rows zero
        pc, pcsum = cell_row_popcounts_flat(spec.bits, mp.rows, mp.run, mp.n_rows, m.n_comp,
                                            by_row=cache["by_row"], cell_rows=nrt_max * m.n_row,
                                            with_sums=True)  # (runs, nrt_max * n_row, P), (runs, crmax)
        # the cell rows of each row tile summed, in bytes while they cannot overflow (n_row x 8 bits <= 255)
        acc = np.uint8 if m.n_row * 8 <= np.iinfo(np.uint8).max else np.int16
        vec = pc.reshape(n_runs, nrt_max, m.n_row, P).sum(2, dtype=acc).astype(np.int16)  # (runs, nrt, P)
        vec = vec.reshape(n_runs, nrt_max, S, Pp).transpose(0, 2, 1, 3)  # (runs, S, nrt, Pp)
        vec = np.where((used > 0)[:, None, :, None], vec + lat, 0)
        return vec, pcsum
    per = m.in_bits * used + lat  # every bit column issued: the same for every vector
    crmax = int(ncr.max())
    pcsum = np.where(np.arange(crmax)[None, :] < ncr[:, None], m.in_bits * P, 0).astype(np.int64)
    vec = np.broadcast_to(np.where(used > 0, per, 0)[:, None, :, None], (n_runs, S, nrt_max, 1))
    return vec, pcsum


def pixels_per_run(cfg: HwConfig, Pp: int, cores_busy: int, f_max: float) -> int:
    """Output pixels per pixel run: the core's output register file (``core.out_pixels``), shortened to
    whole rounds when the busy cores' partial sums would not fit the output buffer."""
    m, M = cfg.macro, cfg.system.macros_per_core
    word = Derived.of(cfg).acc_bytes
    per_pixel = cores_busy * math.ceil(f_max) * word
    fit = int(cfg.system.output_buffer_kib * 1024 // per_pixel) if per_pixel else Pp
    run = cfg.core.out_pixels
    if fit < min(Pp, run):
        run = max(1, min(run, max(M, fit // M * M)))
    return int(run)


def batch_samples(samples: int, batch: int) -> np.ndarray:
    """The recorded samples of each batch instance: int64 (samples, batch).

    Instance ``i`` runs recorded samples ``i, i + 1, ..., i + batch - 1``
    (mod ``samples``), their pixels one after another: the core runs the same
    passes over ``batch x`` the pixels (:func:`model.core_timing.plan_passes`
    of ``batch * pixels``), so a pixel run may hold several samples and each
    loaded tile serves them all. Every recorded sample appears ``batch`` times
    over the instances, so the mean per sample weighs them equally; at batch 1
    the instances are the samples.
    """
    return (np.arange(samples)[:, None] + np.arange(batch)[None, :]) % samples


def batched_vectors(vec, order) -> np.ndarray:
    """Per-vector macro cycles ``vec`` (runs, S, nrt, Pp) of the batch instances ``order`` (S, B): (runs, S, nrt, B*Pp).

    A trailing axis of 1 (every vector the same) stays 1; at batch 1 with the samples in order, ``vec`` itself.
    """
    S, B = order.shape
    if vec.shape[-1] == 1 or (B == 1 and np.array_equal(order[:, 0], np.arange(S))):  # as they are (batch 1)
        return vec
    runs, _, nrt, Pp = vec.shape
    return vec[:, order].transpose(0, 1, 3, 2, 4).reshape(runs, S, nrt, B * Pp)


@dataclass
class _Timing:
    """Wall cycles of one mechanism's filter tiles on the cores (:func:`_core_timing`)."""

    wall: np.ndarray  # (S,) the busiest core, system limits included
    terms: dict  # CYCLE_TERMS but simd -> (S,) int64: the busiest core's wall cycles split, adding up to ``wall``
    compute: np.ndarray  # (S,) int64: the rounds' compute (compute + lockstep) of the core that computes longest
    core: np.ndarray  # (S,) the same with the tiles preloaded (the core's own CYCLES; one core: the RTL's)
    runs_per_tile: int  # pixel runs of a filter tile (per copy)
    load_cycles: float
    stream_cycles: float
    loads_per_row_tile: int  # tile loads of each (filter tile, row tile) into the macros: pixel runs x copies
    fetches: np.ndarray  # (n_ft,) off-chip fetches of each filter tile's row tiles: the STARTs holding it


@functools.lru_cache(maxsize=256)
def _pixel_ranges(Pp: int, copies: int, run: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first pixel, pixels, copy) of every pixel run: each copy takes a contiguous share of the pixels.

    Cached (every mechanism of every layer asks): the arrays are read-only."""
    share = -(-Pp // copies)
    out = [(p0, min(run, min(Pp, s0 + share) - p0), c) for c, s0 in enumerate(range(0, Pp, share))
           for p0 in range(s0, min(Pp, s0 + share), run)]
    a = np.array(out, np.int64).reshape(-1, 3)
    a.setflags(write=False)
    return a[:, 0], a[:, 1], a[:, 2]


@functools.lru_cache(maxsize=256)
def _runs_per_copy(Pp: int, copies: int, run: int) -> int:
    """Pixel runs of each copy's share of the pixels (:func:`_pixel_ranges`, the first copy's); cached."""
    return int((_pixel_ranges(Pp, copies, run)[2] == 0).sum())


@functools.lru_cache(maxsize=256)
def _pass_lengths(Pp: int, copies: int, run: int, M: int) -> tuple:
    """Of the pixel runs of :func:`_pixel_ranges`: the distinct lengths ``npx_c`` (L'), each run's length
    among them ``at`` (L,), and the vectors of each round of each distinct length (L', R); cached, read-only."""
    _, npx, _ = _pixel_ranges(Pp, copies, run)
    npx_c, at = (npx[:1], np.zeros(npx.size, np.int64)) if (npx == npx[0]).all() else \
        np.unique(npx, return_inverse=True)
    m_r = ct.round_sizes(npx_c, M, -(-int(npx.max()) // M))
    for a in (at, m_r):
        a.setflags(write=False)
    return npx_c, at, m_r


def _core_timing(cfg: HwConfig, vec, delivery, port, load, valid, ft_run, ft_out, ft_windows, job_core,
                 copies: int, run: int, Pp: int) -> _Timing:
    """Cycles of every filter tile's passes on the cores (``model.core_timing``), per sample.

    ``vec`` (runs, S, nrt, Pp or 1) macro cycles per vector (0 for padding row
    tiles), ``delivery``, ``port`` (load through the write port), ``load``
    (port or off-chip, the larger) and ``valid`` per (run, row tile); per
    filter tile its run, results per pixel and mask windows; ``job_core``
    (filter tiles, pixel runs of :func:`_pixel_ranges`) the core of each job
    (:func:`model.core_timing.deal_jobs`); a core runs its jobs in order
    (filter tiles in order, their pixel runs in order), START by START as the
    core's memories allow (:func:`model.core_timing.pack_segments`). A tile
    comes from off chip (``load``) once per START that holds it: the START's
    later pixel runs of the same filter tile load it from the core's tile
    store through the write port (``port``). One request of :func:`_core_timings`.
    """
    return _core_timings(cfg, [(vec, delivery, port, load, valid, ft_run, ft_out, ft_windows, job_core, copies, run,
                                Pp)])[0]


def _rounds(vec, copies: int, run: int, Pp: int, M: int, *, vectors: bool = False):
    """Round compute and round work (int64, (runs, S, nrt, L', R)) of one request's pixel runs, the rounds'
    vectors (L', R) and the index among the ``L'`` computed pixel runs of every pixel run (L,): every pixel run,
    or, when every vector takes the same cycles (trailing axis 1), one per length.

    ``vectors`` (every pixel run computed): instead of the round compute and work, the pixel runs' vectors
    ``(runs, S, nrt, L, R * M)`` (0 past a run's pixels) and None, for the caller to take the max
    (:func:`model.core_timing.round_compute`) and the sum (``round_work``) of each round's ``M``."""
    if vec.shape[-1] == 1:
        _, at, m_r = _pass_lengths(Pp, copies, run, M)  # m_r (L', R)
        # every vector takes vec (>= 0) cycles: ct.round_compute of a round with a pixel is vec, ct.round_work
        # M_r times vec
        return np.where(m_r > 0, vec[..., None], 0), vec[..., None] * m_r, m_r, at
    p0, npx, _ = _pixel_ranges(Pp, copies, run)
    width = int(npx.max())
    if vectors:  # whole rounds: the last one's missing vectors 0, as round_compute and round_work pad them
        width = -(-width // M) * M
        if copies == 1 and (npx.size == 1 or width == run):  # the pixel runs one after another from pixel 0
            g = np.empty(vec.shape[:-1] + (npx.size * width,), vec.dtype)
            g[..., :Pp], g[..., Pp:] = vec, 0
            return (g.reshape(vec.shape[:-1] + (npx.size, width)), None, ct.round_sizes(npx, M, width // M),
                    np.arange(npx.size))
    pix = np.minimum(p0[:, None] + np.arange(width)[None, :], Pp - 1)  # (L, width)
    inside = np.arange(width)[None, :] < npx[:, None]
    g = np.where(inside, vec[..., pix], 0)  # (runs, S, nrt, L, width)
    if vectors:
        return g, None, ct.round_sizes(npx, M, width // M), np.arange(npx.size)
    rc, work = ct.round_compute(g, M), ct.round_work(g, M)
    return rc, work, ct.round_sizes(npx, M, rc.shape[-1]), np.arange(npx.size)


def _pass_rounds(a, Lc: int, n_rt: int, n_r: int) -> np.ndarray:
    """A request's passes ``a`` (runs x ``Lc`` pixel runs, S, nrt, R; C-contiguous) as a view (runs, S, ``n_rt``,
    ``Lc``, ``n_r``): the axes of :func:`_rounds`' vectors reduced over each round."""
    Q, S, nrt, R = a.shape
    return a.reshape(Q // Lc, Lc, S, nrt, R)[:, :, :, :n_rt, :n_r].transpose(0, 2, 3, 1, 4)


def _same_arrays(sources_a, sources_b, a, b) -> bool:
    """``a`` equals ``b``: at once when they are made of the same arrays (``sources_a`` and ``sources_b``, the
    same objects), else compared."""
    return all(x is y for x, y in zip(sources_a, sources_b)) or np.array_equal(a, b)


def _same_passes(requests: list) -> list:
    """For each :func:`_core_timings` request the first one with the same passes (itself when none before): the
    same vectors and delivery (the same arrays), row tiles and pixel runs, so the same rounds and cycles after
    the first round; only their tiles' loads may differ."""
    first: dict = {}  # the arrays' ids (alive while ``requests`` is) and the pixel runs -> the first request
    return [first.setdefault((id(r[0]), id(r[1]), id(r[4]), tuple(r[9:])), k) for k, r in enumerate(requests)]


def _core_timings(cfg: HwConfig, requests: list) -> list:
    """:func:`_core_timing` of several requests (its arguments but ``cfg``, the same samples) in one set of array
    operations: a :class:`_Timing` each.

    The passes of every request's (run, computed pixel run) stand side by side on one axis (row tiles and rounds
    padded: a padding row tile is not valid, a padding round has no vector, as the shorter pixel runs' rounds),
    and every request's jobs run on cores of their own (request ``k``'s core ``c`` is core ``k * cores + c``),
    so every figure is that of the request alone."""
    m, M, C = cfg.macro, cfg.system.macros_per_core, cfg.system.cores
    W, banks, lanes = cfg.core.in_windows, cfg.core.tile_banks, cfg.core.result_lanes
    # requests of the same vectors, delivery, row tiles and pixel runs (mechanisms that differ only in their
    # tiles' loads) share their passes' rounds: each is computed once, for the first of them (``shared[k]``)
    shared = _same_passes(requests)
    parts = [_rounds(r[0], *r[9:], M, vectors=True) if shared[k] == k else None for k, r in enumerate(requests)]
    parts = [parts[j] for j in shared]
    S = requests[0][0].shape[1]
    nrt = max(r[0].shape[2] for r in requests)
    R = max(p[2].shape[-1] for p in parts)
    n_q = [r[0].shape[0] * p[2].shape[0] for r, p in zip(requests, parts)]  # (run, computed pixel run) pairs
    Q = sum(n_q)
    q0 = np.cumsum([0] + n_q).tolist()
    computed = [k for k, j in enumerate(shared) if j == k]
    qu0 = np.cumsum([0] + [n_q[k] for k in computed]).tolist()  # the passes computed: those of ``computed``
    rc = np.zeros((qu0[-1], S, nrt, R), np.int64)
    work = np.zeros((qu0[-1], S, nrt, R), np.int64)
    m_r = np.zeros((qu0[-1], R), np.int64)
    dl_u = np.zeros((qu0[-1], nrt), np.int64)
    for i, k in enumerate(computed):
        (c, w, mr, _), nq = parts[k], n_q[k]
        (Lc, n_r), n_runs, n_rt = mr.shape, c.shape[0], c.shape[2]
        q = slice(qu0[i], qu0[i] + nq)
        if w is None:  # the pixel runs' vectors: each round's max and sum straight into the passes' rounds
            v = c.reshape(n_runs, S, n_rt, Lc, n_r, M)
            c_q, w_q = _pass_rounds(rc[q], Lc, n_rt, n_r), _pass_rounds(work[q], Lc, n_rt, n_r)
            c_q[...], w_q[...] = v[..., 0], v[..., 0]
            for j in range(1, M):  # a round's M macros one at a time (faster than a reduce over M)
                np.maximum(c_q, v[..., j], out=c_q)
                np.add(w_q, v[..., j], out=w_q)
        else:
            rc[q, :, :n_rt, :n_r] = c.transpose(0, 3, 1, 2, 4).reshape(nq, S, n_rt, n_r)
            work[q, :, :n_rt, :n_r] = np.broadcast_to(w, c.shape).transpose(0, 3, 1, 2, 4).reshape(nq, S, n_rt, n_r)
        m_r[q].reshape(n_runs, Lc, R)[:, :, :n_r] = mr  # each run's Lc pixel runs
        dl_u[q].reshape(n_runs, Lc, nrt)[:, :, :n_rt] = requests[k][1][:, None, :]
    per_rt = np.zeros((3, Q, nrt), np.int64)  # port, load, valid of each pass
    for k, ((vec, _, port, load, valid, *_), nq) in enumerate(zip(requests, n_q)):
        n_rt, Lc = vec.shape[2], nq // vec.shape[0]
        for a, v in zip(per_rt, (port, load, valid)):  # (runs x Lc, nrt) rows: each run's Lc pixel runs alike
            a[q0[k]:q0[k + 1]].reshape(-1, Lc, nrt)[:, :, :n_rt] = v[:, None, :]
    port, load, valid = per_rt[:, :, None, :]  # (Q, 1, nrt) each
    valid = valid.astype(bool)
    m_r = m_r[:, None, None, :]  # (Q', 1, 1, R)
    after, split = ct.pass_after_and_terms(dl_u[:, None, :], rc, m_r, 0, m.n_col, work, in_windows=W)  # (Q', S, nrt)
    del work, rc
    d0 = ct.first_round_delivery(dl_u[:, None, :], m_r, W)  # (Q', 1, nrt)
    if len(computed) < len(requests):  # every request's passes from those computed
        at = np.concatenate([np.arange(nq) + qu0[computed.index(j)] for j, nq in zip(shared, n_q)])
        after, d0 = after[at], d0[at]
        split = {k: split[k][at] for k in ("compute", "lockstep", "round_floor", "delivery")}
    overlap = ct.prefetch_overlap(after)
    # tile_banks 2: row tile rt > 0 of a pixel run is loaded during row tile rt - 1 (same START)
    prev = np.concatenate([np.zeros_like(overlap[:, :, :1]), overlap[:, :, :-1]], axis=2) if banks == 2 else 0
    inner = (np.arange(nrt) > 0) & (banks == 2)

    def first_round(ld):  # (Q, S, nrt): B_0 of every pass, the first row tile's whole load waited
        return np.maximum(ct.exposed_load(ld, prev, inner), d0)

    b0_sys = first_round(load)
    b0_core = b0_sys if np.array_equal(load, port) else first_round(port)  # tiles preloaded
    sys_pass = np.where(valid, CORE_LATENCY["pass"] + b0_sys + after, 0).sum(2)  # (Q, S)
    core_pass = sys_pass if b0_core is b0_sys else np.where(valid, CORE_LATENCY["pass"] + b0_core + after, 0).sum(2)
    # the same passes split (model.core_timing.pass_terms; "dram": what the off-chip fetch adds to B_0)
    by_pass = {**{k: split[k] for k in ("compute", "lockstep", "round_floor")},
               "delivery": split["delivery"] + d0, "load": b0_core - d0, "dram": b0_sys - b0_core}
    n_rt = valid[:, 0].sum(1)  # (Q,) row tiles
    t_of = _TERM_INDEX
    buf = np.empty((len(by_pass), Q, S, nrt), np.int64)
    for i, v in enumerate(by_pass.values()):
        buf[i] = v
    per_run = np.zeros((len(_CORE_TERMS), Q, S), np.int64)  # (terms, Q, S)
    per_run[[t_of[k] for k in by_pass]] = np.where(valid, buf, 0).sum(3)
    per_run[t_of["drain"]] = m.n_col * n_rt[:, None]
    per_run[t_of["control"]] = CORE_LATENCY["pass"] * n_rt[:, None]  # "stream" 0: streamed per filter tile
    del split, by_pass, buf
    # overlap of each pixel run's last row tile: it hides the load of the next run's first row tile
    last_overlap = overlap[np.arange(Q), :, np.maximum(n_rt - 1, 0)]  # (Q, S)
    # every request's jobs (filter tile x pixel run), row-major, on its own cores: request kk[j] of job j, its
    # filter tile f[j] (numbered over the requests: request k's from f0[k]) and pixel run l[j]
    n_req = len(requests)
    npx_k = [_pixel_ranges(r[11], r[9], r[10])[1] for r in requests]
    n_ft, L = np.array([r[5].size for r in requests]), np.array([npx.size for npx in npx_k])
    sizes = (n_ft * L).tolist()  # jobs of each request
    kk = np.repeat(np.arange(n_req), sizes)
    f, l = np.divmod(np.arange(kk.size) - np.repeat(np.cumsum(sizes) - sizes, sizes), L[kk])
    f0 = np.cumsum([0] + n_ft.tolist()).tolist()
    f += np.asarray(f0[:-1], np.int64)[kk]
    l += (np.cumsum(L) - L)[kk]  # pixel run numbered over the requests
    ft_run = np.concatenate([r[5] for r in requests])
    q_of = np.asarray(q0[:-1], np.int64)[kk] + ft_run[f] * np.array([p[2].shape[0] for p in parts])[kk] + \
        np.concatenate([p[3] for p in parts])[l]  # the pass set of the job's run and computed pixel run
    stream = ct.stream_beats(np.concatenate(npx_k)[l], np.concatenate([r[6] for r in requests])[f], lanes)
    core_of = np.concatenate([np.asarray(r[8], np.int64).reshape(-1) for r in requests]) + kk * C
    rt_of = {}  # the row tiles of every filter tile, once per (validity, filter tiles) of the requests
    for r in requests:
        if (id(r[4]), id(r[5])) not in rt_of:
            rt_of[id(r[4]), id(r[5])] = r[4].sum(1)[r[5]]
    ft_rt = [rt_of[id(r[4]), id(r[5])] for r in requests]
    ft_win = [r[7] for r in requests]
    # every core's jobs in order, row-major: filter tiles in order, their pixel runs in order; the cores one after
    # another (a core's first job runs in no START of the job before it)
    order = np.argsort(core_of, kind="stable")
    q, f, stream = q_of[order], f[order], stream[order]
    n_jobs = np.bincount(core_of, minlength=C * len(requests))
    busy = np.nonzero(n_jobs)[0]
    starts = (np.cumsum(n_jobs) - n_jobs)[busy]
    head = np.zeros(f.size, bool)
    head[starts] = True
    # the STARTs: a request with the jobs of one before it (the mechanisms of one mapping) shares its packing
    rep, packers = [], {}  # packers: id of a job_core -> the requests packed of it so far
    for k, req in enumerate(requests):
        mine = packers.setdefault(id(req[8]), [])
        rep.append(next((j for j in mine if _same_arrays(requests[j][4:6], req[4:6], ft_rt[j], ft_rt[k]) and
                         _same_arrays(requests[j][7:8], req[7:8], ft_win[j], ft_win[k])), k))
        if rep[k] == k:
            mine.append(k)
    own = np.repeat([r == k for k, r in enumerate(rep)], sizes)
    packed = ct.pack_segments(f[own], np.concatenate(ft_rt), np.concatenate(ft_win), cfg.core,
                              starts=np.flatnonzero(head[own]))
    at_own = np.cumsum([0] + [n if r == k else 0 for k, (r, n) in enumerate(zip(rep, sizes))])
    seg = np.concatenate([packed[at_own[r]:at_own[r] + n] for r, n in zip(rep, sizes)])
    same = np.append(False, seg[1:] == seg[:-1]) & ~head
    # a core runs a filter tile's pixel runs one after another: the first of them in a START fetches its tiles
    # from off chip into the tile store, the others load them from there (pack_segments keeps them held)
    fetch = ~(same & np.append(False, f[1:] == f[:-1]))
    runs_of = (np.maximum.reduceat(seg, starts) + 1) * CORE_LATENCY["run"]  # (busy,): a START's fixed cycles
    load0, port0 = load[q, 0, 0], port[q, 0, 0]
    # a core's jobs in order: its first tile loads during the job before it (tile_banks 2, same START), its
    # results stream after it or during the next job (out_banks 2); the jobs with the system's loads and (when
    # they differ) with the tiles preloaded (a tile from the tile store as preloaded), stacked on a first axis
    ps_core = core_pass[q].T  # (S, J)
    if b0_core is b0_sys:
        ps, lds = ps_core[None], load0[None, None]
    else:
        ps = np.stack([np.where(fetch, sys_pass[q].T, ps_core), ps_core])
        lds = np.stack([np.where(fetch, load0, port0), port0])[:, None, :]
    args = (ps, lds, d0[q, 0, 0], last_overlap[q].T, stream, same)  # (K, S, J) job sums, (K, 1, J) loads
    tot = np.zeros((ps.shape[0], C * len(requests), S))  # (K, cores, S) cycles of every core
    tot[:, busy] = np.add.reduceat(ct.job_cycles(*args, tile_banks=banks, out_banks=cfg.core.out_banks), starts,
                                   axis=-1).transpose(0, 2, 1) + runs_of[:, None]
    hid, exposed = ct.job_terms(*args, tile_banks=banks, out_banks=cfg.core.out_banks)  # (K, S, J) each
    wall, core, hid_sys, hid_core, exposed = tot[0], tot[-1], hid[0], hid[-1], exposed[0]
    hid_port = np.minimum(hid_sys, hid_core)  # hidden port load; the off-chip part hidden beyond it
    terms = np.zeros((len(_CORE_TERMS), C * len(requests), S), np.int64)
    per_job = per_run[:, q]  # (terms, J, S)
    per_job[t_of["dram"], ~fetch] = 0  # a tile from the tile store: no off-chip fetch
    terms[:, busy] = np.add.reduceat(per_job, starts, axis=1)
    terms[t_of["control"], busy] += runs_of[:, None]
    terms[t_of["stream"], busy] += np.add.reduceat(exposed, starts, axis=-1).T
    terms[t_of["load"], busy] -= np.add.reduceat(hid_port, starts, axis=-1).T
    terms[t_of["dram"], busy] -= np.add.reduceat(hid_sys - hid_port, starts, axis=-1).T
    # the split must follow the formula it splits: exact below 2**50 cycles (wall is float64, the terms int64)
    if not np.all(np.abs(terms.sum(0) - wall) <= 2.0 ** -50 * np.abs(wall)):  # np.allclose(rtol=2**-50, atol=0)
        raise PerfError(f"internal: the cycle breakdown ({terms.sum(0).max()}) does not add up to the wall cycles "
                        f"({wall.max()}); model.core_timing.pass_terms no longer splits pass_cycles_rounds")
    # tile loads: a START's first pixel run of a filter tile from off chip, the others through the port
    whole, ported = (np.where(valid[:, 0], ld[:, 0], 0).sum(1) for ld in (load, port))  # (Q,) a pass set's loads
    loads = np.where(fetch, whole[q], ported[q])
    rounds = terms[t_of["compute"]] + terms[t_of["lockstep"]]  # (cores, S)
    # every request's figures at once: its cores (n_req, C, S), its jobs (consecutive in core order)
    n_req = len(requests)
    wall, core, rounds = (a.reshape(n_req, C, S) for a in (wall, core, rounds))
    busiest = wall.argmax(1)  # (n_req, S): per request and sample
    busiest_terms = np.take_along_axis(terms.reshape(len(_CORE_TERMS), n_req, C, S), busiest[None, :, None, :],
                                       axis=2)[:, :, 0]  # (terms, n_req, S)
    wall_max, compute, core_max = wall.max(1), rounds.max(1), core.max(1)
    j0 = np.cumsum([0] + sizes)  # each request's jobs: j0[k]:j0[k + 1]
    load_sums, stream_sums = (np.diff(np.concatenate([[0], np.cumsum(a)])[j0]) for a in (loads, stream))
    fetches = np.bincount(f[fetch], minlength=f0[-1])  # off-chip fetches of every request's filter tiles
    out = []
    for k, req in enumerate(requests):
        out.append(_Timing(wall=wall_max[k], terms=dict(zip(t_of, busiest_terms[:, k])), compute=compute[k],
                           core=core_max[k], runs_per_tile=_runs_per_copy(req[11], req[9], req[10]),
                           load_cycles=float(load_sums[k]), stream_cycles=float(stream_sums[k]),
                           loads_per_row_tile=npx_k[k].size, fetches=fetches[f0[k]:f0[k + 1]]))
    return out


@dataclass
class _MappingSums:
    """What the counts of a mapping's mechanisms take alike (:func:`_mapping_sums`)."""

    tiles: int  # row tiles of every column tile
    loaded_bytes: float  # bytes of every tile, each loaded once
    ft_bytes: np.ndarray  # (n_ft,) bytes of each filter tile's row tiles
    switched: float  # kept rows through the switch for every column tile, per vector
    windows: np.integer  # input windows fetched for every filter tile, per vector
    psum_words: float  # output buffer words per pixel: every run's filters x 2 x its row tiles
    cols_run: np.ndarray  # (runs,) columns used by every run's column tiles


def _mapping_sums(mp: _Mapping, nbytes, nct, nrt, R, ft_windows) -> _MappingSums:
    """The sums of a mapping that the counts of each of its mechanisms take (:func:`_mechanism`)."""
    n_runs = mp.n_rows.size
    nbytes_run = nbytes.sum(1)
    return _MappingSums(tiles=int((nct * nrt).sum()), loaded_bytes=float((nbytes_run * nct).sum()),
                        ft_bytes=nbytes_run[mp.ft_run], switched=float((R * nct).sum()), windows=ft_windows.sum(),
                        psum_words=float((np.bincount(mp.ft_run, weights=mp.ft_filters, minlength=n_runs)
                                          * 2 * nrt).sum()),
                        cols_run=np.bincount(mp.ft_run, weights=mp.ft_cols, minlength=n_runs))


def _mechanism(spec: LayerSpec, cfg: HwConfig, mech: str, cache: dict, wpop, batch: int):
    """One mechanism of a layer, a generator: it yields its core-timing request, the arguments of
    :func:`_core_timing` but ``cfg``, receives the :class:`_Timing` and returns its :class:`MechPerf`
    (:func:`evaluate_layer` times every mechanism's request in one :func:`_core_timings` call)."""
    m, sysc, en = cfg.macro, cfg.system, cfg.energy
    kept, fta, skip = _MODE[mech]
    if ("map", kept, fta) not in cache:
        cache[("map", kept, fta)] = (_fta_mapping if fta else _dense_mapping)(spec, kept, m.n_col, cache)
    mp = cache[("map", kept, fta)]
    if mp.n_rows.size == 0 or mp.ft_run.size == 0:
        return _empty(en)
    lat = pipeline_latency(m.pipeline)
    S, Pp = spec.samples, spec.vectors
    P = S * Pp
    n_ft = int(mp.ft_run.size)
    C = sysc.cores
    copies = C // n_ft if sysc.replicate_idle_cores and n_ft < C else 1  # idle cores copy a tile, split pixels
    cores_busy = min(C, n_ft * copies)
    rows_key = mp.row_key  # mappings of the same rows (every row, or the same groups) share what follows
    if ("rt", rows_key) not in cache:
        cache[("rt", rows_key)] = _row_tiles(mp, m)
    R, ncr, nrt, used, valid = cache[("rt", rows_key)]
    n_runs, nrt_max = used.shape

    key = (rows_key, skip and spec.bits is not None)
    if key not in cache:
        cache[key] = _vector_cycles(spec, mp, m, skip, used, ncr, S, Pp, cache)
    vec, pcsum = cache[key]

    if ("dl", rows_key) not in cache:
        cache[("dl", rows_key)] = _switch_delivery(mp, m, used)
    delivery, windows = cache[("dl", rows_key)]
    if mech == "dense":  # the dense baseline: no switch, one macro input beat per used cell row
        delivery = np.where(used > 0, input_beats(used), 0)
    B = batch
    if ("tiles", kept, fta) not in cache:  # the same for the mechanisms of this mapping (the first one checks)
        nbytes = ct.tile_bytes(used, m, DIGIT_BITS if fta else 1)  # (runs, nrt)
        port = np.where(valid, ct.load_cycles(used), 0)
        dram = count_cycles(np.ceil(nbytes * cores_busy / sysc.dram_bytes_per_cycle), f"{spec.name} ({mech})",
                            "off-chip weight load cycles")
        load = np.where(valid, np.maximum(port, dram), 0)
        ft_out = np.ceil(mp.ft_filters).astype(np.int64)  # results per pixel (dense: bit-plane columns / 8)
        ft_windows = windows.sum(1)[mp.ft_run]
        ft_rt = valid.sum(1)[mp.ft_run]
        too_big = ((ft_rt > min(cfg.core.max_row_tiles, cfg.core.descriptors, cfg.core.tile_slots))
                   | (ft_windows > cfg.core.mask_windows))
        for f in np.nonzero(too_big)[0][:1]:  # the first filter tile that does not fit a core: one line
            ct.check_filter_tile(int(ft_rt[f]), int(ft_windows[f]), cfg.core,
                                 f"{spec.name} ({mech}): filter tile {f}")
        nct = np.bincount(mp.ft_run, minlength=n_runs).astype(np.float64)  # column tiles per run
        run = pixels_per_run(cfg, -(-B * Pp // copies), cores_busy, float(mp.ft_filters.max()))
        cache[("tiles", kept, fta)] = (nbytes, port, load, ft_out, ft_windows, nct, run,
                                       _mapping_sums(mp, nbytes, nct, nrt, R, ft_windows))
    nbytes, port, load, ft_out, ft_windows, nct, run, sums = cache[("tiles", kept, fta)]
    if (key, "batch", B) not in cache:
        cache[(key, "batch", B)] = batched_vectors(vec, batch_samples(S, B))
    # the compiler deals the jobs (filter tile x pixel run) to the cores by their work; idle cores copying a
    # filter tile take copy c of it on the core after it, c further
    _, npx, copy = _pixel_ranges(B * Pp, copies, run)
    if ("jobs", kept, fta, B) not in cache:  # the same for the mechanisms of this mapping
        cache[("jobs", kept, fta, B)] = (np.arange(n_ft)[:, None] * copies + copy[None, :]) % C if copies > 1 else \
            ct.deal_jobs(ct.job_work(used[mp.ft_run], ft_out, npx, m, sysc.macros_per_core,
                                     result_lanes=cfg.core.result_lanes), C)
    job_core = cache[("jobs", kept, fta, B)]
    # every mechanism of the layer is timed in one call (evaluate_layer)
    tm = yield (cache[(key, "batch", B)], delivery, port, load, valid, mp.ft_run, ft_out, ft_windows, job_core, copies,
                run, B * Pp)
    wall = _mean(tm.wall) / B  # per inference: a batch instance's cycles over its B samples
    n_ch = tm.runs_per_tile

    # counts for macro-cycles, utilization and energy
    if ("issued", key) not in cache:  # the same for the mechanisms of these vectors
        cache[("issued", key)] = pcsum.sum(1).astype(np.float64)
    cyc_run = cache[("issued", key)]  # issued cycles of one column tile, all vectors
    macro_total = int((nct * (cyc_run + lat * P * nrt)).sum())
    issued = float((nct * cyc_run).sum())
    act = issued * m.n_comp * m.n_col
    crmax = pcsum.shape[1]
    if fta:
        if ("comp_used", rows_key, crmax) not in cache:  # (runs, crmax): the compartments each cell row uses
            cache[("comp_used", rows_key, crmax)] = np.minimum(
                np.maximum(R[:, None] - np.arange(crmax)[None, :] * m.n_comp, 0), m.n_comp)
        eff = float((sums.cols_run * (pcsum * cache[("comp_used", rows_key, crmax)]).sum(1)).sum())
    else:
        if ("wb", kept, fta) not in cache:  # the same for the mechanisms of this mapping
            # each row's place in the flat wpop at its run's first group (a flat gather is faster than a 2-D one);
            # the run's groups further on
            g0, width = mp.run_groups[:, 0], mp.run_groups[:, 1] - mp.run_groups[:, 0]
            at = mp.rows * wpop.shape[1] + np.repeat(g0, mp.n_rows)
            flat = wpop.ravel()
            wrow = flat[at + np.repeat(width, mp.n_rows)] - flat[at]  # one bits of the run's weights in each row
            cache[("wb", kept, fta)] = _cell_row_sums(wrow, mp.n_rows, m.n_comp, crmax)
        eff = float((pcsum * cache[("wb", kept, fta)]).sum())
    load_total = tm.load_cycles / B
    loaded_bytes = sums.loaded_bytes * tm.loads_per_row_tile / B  # into the macros, every pass
    weight_bytes = float((sums.ft_bytes * tm.fetches).sum()) / B  # from off chip, once per START
    word = Derived.of(cfg).acc_bytes
    events = {
        "cell_and_pj": act / S,
        "csd_adder_input_pj" if fta else "adder_input_pj": act / S,
        "accumulate_pj": issued / S * m.n_col,
        "ipu_pj": issued / S if skip else 0.0,
        "switch_pj": Pp * sums.switched if mech != "dense" else 0.0,
        # every core's window generator reads its own copy (hw.window): per pixel and filter tile, n_comp lane reads
        # of a fetched window, each its bank's whole word (padding lanes, which do not read, counted)
        "input_buffer_byte_pj": float(Pp * sums.windows * m.n_comp) * lane_read_bytes(m.n_comp, m.in_bits),
        # partial sums: written by the first row tile, read + written by the others, read once to stream out
        "output_buffer_byte_pj": Pp * word * sums.psum_words,
        "weight_load_byte_pj": loaded_bytes,
        "dram_byte_pj": weight_bytes,
        "weight_write_byte_pj": loaded_bytes * sysc.macros_per_core,
        "static_mw": wall / sysc.freq_mhz * 1e3,  # mW x ns = pJ
    }
    cells = cfg.n_macros * m.n_comp * m.n_col
    return MechPerf(macro_cycles=macro_total / S, wall_cycles=wall, issued=issued / S, effective=eff / S,
                    activated=act / S, capacity=cells * wall, events=events, energy=energy_of(events, en),
                    macro_cycles_total=macro_total, tiles=sums.tiles, filter_tiles=n_ft,
                    load_cycles=load_total, stream_cycles=tm.stream_cycles / B, psum_chunks=int(n_ch),
                    weight_bytes=weight_bytes, core_cycles=tm.core, batch=B,
                    dram_floor_cycles=weight_bytes / sysc.dram_bytes_per_cycle, cycle_terms=tm.terms,
                    compute_cycles=_mean(tm.compute) / B, cells=cells)


# ----------------------------------------------------------------------------- layers and networks

@dataclass
class LayerPerf:
    spec: LayerSpec
    type: str
    batch: int = 1
    mech: dict = field(default_factory=dict)  # mechanism -> MechPerf (mapped layers)
    simd_cycles: float = 0.0
    simd_events: dict = field(default_factory=dict)
    simd_energy: float = 0.0

    @property
    def mapped(self) -> bool:
        return self.spec.mapped

    def cycles(self, mech: str, simd: bool = True) -> float:
        """Wall cycles per inference: a mapped layer's under ``mech`` plus (``simd``) its requantization on the
        SIMD core (``simd_cycles``: the chip's ``REQ``, 0 without :attr:`LayerSpec.chip_simd`); a SIMD layer's."""
        if not self.mapped:
            return self.simd_cycles
        return self.mech[mech].wall_cycles + (self.simd_cycles if simd else 0.0)

    def events(self, mech: str, simd: bool = True) -> dict:
        if not self.mapped:
            return self.simd_events
        ev = dict(self.mech[mech].events)
        for k, v in (self.simd_events if simd else {}).items():
            ev[k] = ev.get(k, 0.0) + v
        return ev

    def energy(self, mech: str, simd: bool = True) -> float:
        if not self.mapped:
            return self.simd_energy
        return self.mech[mech].energy_pj + (self.simd_energy if simd else 0.0)

    def breakdown(self, mech: str, simd: bool = True) -> dict:
        """Cycles per inference by term of :data:`CYCLE_TERMS` (a SIMD layer: all ``simd``; a mapped layer's
        requantization ``simd``, 0 without ``simd``); they add up to :meth:`cycles`."""
        if self.mapped:
            return {**self.mech[mech].breakdown, "simd": self.simd_cycles if simd else 0.0}
        return {k: self.simd_cycles if k == "simd" else 0.0 for k in CYCLE_TERMS}


def evaluate_layer(spec: LayerSpec, cfg: HwConfig, mechanisms=MECHANISMS, *, batch: int = 1) -> LayerPerf:
    """Evaluate one layer under every mechanism (per inference) at ``batch`` samples per loaded tile.

    ``batch`` (``model.limits.BATCH``) samples run as one: their pixels form
    the pixel runs of every filter tile (:func:`batch_samples`), the dense
    baseline alike; every figure is per inference. A bad ``batch`` is a
    one-line :class:`BenchError` naming ``batch``.
    """
    batch = limits.BATCH.check("batch", batch, BenchError)
    lp, steps, requests = _layer_requests(spec, cfg, mechanisms, batch)
    if requests is None:
        return lp
    return _layer_timed(lp, steps, requests, _core_timings(cfg, list(requests.values())) if requests else [],
                        mechanisms)


def _layer_requests(spec: LayerSpec, cfg: HwConfig, mechanisms, batch: int):
    """:func:`evaluate_layer` up to the core timing: the :class:`LayerPerf` (SIMD figures and the mechanisms with
    nothing mapped), every mechanism's step (:func:`_mechanism`) and the core-timing requests of those that wait
    for their timing (mechanism -> request); ``None, None`` for the steps and requests of an unmapped layer."""
    lp = LayerPerf(spec=spec, type=layer_type(spec), batch=batch)
    lanes = cfg.system.simd_lanes
    if spec.chip_simd is not None:  # the chip's SIMD instructions of the layer, as the RTL chip times them
        lp.simd_cycles = float(sum(instruction_cycles(op, d, lanes) for op, d in spec.chip_simd))
    elif spec.mapped:
        lp.simd_cycles = 0.0
    elif spec.op == "depthwise" and spec.dwc is not None:  # the RTL chip's DWC, the golden chip's count
        lp.simd_cycles = float(dwc_cycles(*spec.dwc, lanes=lanes))
    else:
        lp.simd_cycles = float(record_cycles(spec.op or "other", spec.simd_ops, lanes))
    if lp.simd_cycles or not spec.mapped:
        lp.simd_events = {"simd_op_pj": float(spec.simd_ops), "static_mw": lp.simd_cycles / cfg.system.freq_mhz * 1e3}
        lp.simd_energy = float(sum(energy_of(lp.simd_events, cfg.energy).values()))
    if not spec.mapped:
        return lp, None, None
    wpop = None  # one bits of the two's-complement weights of each row, summed over groups 0..g-1 in column g
    if any(not _MODE[k][1] for k in mechanisms):
        ng = n_groups(spec.N, spec.G)
        if spec.w is not None and spec.N == ng * spec.G:  # whole groups: the weights as they are
            w = np.ascontiguousarray(spec.w, np.int8)
        else:
            w = np.zeros((spec.K, ng * spec.G), np.int8)
            if spec.w is not None:
                w[:, :spec.N] = spec.w
        wpop = np.zeros((spec.K, ng + 1), np.int32)
        word = 8 if spec.G % 8 == 0 else 1  # bytes popcounted at once (a group's weights in whole uint64 words)
        ones = np.bitwise_count(w.view(np.uint64 if word == 8 else np.uint8)).reshape(spec.K, ng, spec.G // word)
        np.cumsum(ones[..., 0] if spec.G == word else ones.sum(2, dtype=np.int32), axis=1, dtype=np.int32,
                  out=wpop[:, 1:])
    cache: dict = {}
    steps = {k: _mechanism(spec, cfg, k, cache, wpop, batch) for k in mechanisms}
    requests = {}  # mechanism -> its core-timing request
    for k, step in steps.items():
        try:
            requests[k] = next(step)
        except StopIteration as done:  # nothing mapped: no timing
            lp.mech[k] = done.value
    return lp, steps, requests


def _layer_timed(lp: LayerPerf, steps: dict, requests: dict, timings: list, mechanisms) -> LayerPerf:
    """:func:`evaluate_layer` after the core timing: each waiting mechanism's step receives its :class:`_Timing`
    (``timings``, in the order of ``requests``) and returns its :class:`MechPerf`."""
    for k, tm in zip(requests, timings):
        try:
            steps[k].send(tm)
        except StopIteration as done:
            lp.mech[k] = done.value
    lp.mech = {k: lp.mech[k] for k in mechanisms}
    return lp


def peak_tops(cfg: HwConfig, phi: int = 1, dense: bool = False) -> float:
    """Peak throughput in TOPS at 8b/8b (2 ops per MAC), every bit column issued.

    A macro holds ``n_col // phi`` filters (dense: ``n_col // 8``) over
    ``n_comp`` inputs and needs ``in_bits`` cycles per cell row:
    ``n_comp * filters / in_bits`` MACs per cycle per macro.
    """
    m = cfg.macro
    filters = m.n_col / (DENSE_COLS_PER_WEIGHT if dense else phi)
    return 2.0 * cfg.n_macros * m.n_comp * filters / m.in_bits * cfg.system.freq_mhz * 1e6 / 1e12


def peak_geometry(cfg: HwConfig, tops: float, phi: int = 1) -> dict:
    """MACs per cycle per macro that ``tops`` needs at this clock and macro count, and ``n_comp x n_col`` for it."""
    m = cfg.macro
    mac = tops * 1e12 / (2.0 * cfg.n_macros * cfg.system.freq_mhz * 1e6)
    cells = mac * m.in_bits * phi  # n_comp * n_col
    options = []
    for n_comp in (16, 32, 64):
        n_col = int(math.ceil(cells / n_comp / 2.0)) * 2
        options.append(f"{n_comp}x{n_col}")
    return {"mac_per_cycle_per_macro": mac, "n_comp_x_n_col": cells, "examples": options,
            "ours_mac_per_cycle_per_macro": m.n_comp * m.n_col / (m.in_bits * phi)}


@dataclass
class NetworkPerf:
    network: str
    cfg: HwConfig
    layers: list
    meta: dict = field(default_factory=dict)  # the artifact's provenance (``untrained``, ``weights``, ...)
    batch: int = 1  # samples per loaded tile (evaluate_network)
    batch_reuse: dict | None = None  # :func:`batch_reuse` of the same network, when a report asked for it
    chip: dict | None = None  # sim_bench.chip_cycles.chip_summary: the chip end to end, when a report asked for it

    def mapped(self):
        return [lp for lp in self.layers if lp.mapped]

    def _layers(self, mapped_only: bool):
        return [lp for lp in self.layers if lp.mapped or not mapped_only]

    def total_cycles(self, mech: str, mapped_only: bool = False) -> float:
        return float(sum(lp.cycles(mech, not mapped_only) for lp in self._layers(mapped_only)))

    def events(self, mech: str, mapped_only: bool = False) -> dict:
        out: dict = {}
        for lp in self._layers(mapped_only):
            for k, v in lp.events(mech, not mapped_only).items():
                out[k] = out.get(k, 0.0) + v
        return out

    def components(self, mech: str, mapped_only: bool = False, energy: EnergyConfig | None = None) -> dict:
        """pJ per inference by component (:data:`COMPONENTS`)."""
        return energy_of(self.events(mech, mapped_only), energy or self.cfg.energy)

    def total_energy(self, mech: str, mapped_only: bool = False) -> float:
        return float(sum(self.components(mech, mapped_only).values()))

    def time_us(self, mech: str, mapped_only: bool = False) -> float:
        return self.total_cycles(mech, mapped_only) / self.cfg.system.freq_mhz

    def utilization(self, mech: str = "dbpim") -> float:
        e = sum(lp.mech[mech].effective for lp in self.mapped())
        a = sum(lp.mech[mech].activated for lp in self.mapped())
        return e / a if a else 0.0

    def utilization_system(self, mech: str = "dbpim") -> float:
        e = sum(lp.mech[mech].effective for lp in self.mapped())
        c = sum(lp.mech[mech].capacity for lp in self.mapped())
        return e / c if c else 0.0

    def utilization_compute(self, mech: str = "dbpim") -> float:
        """Effective cell-cycles over every cell of the chip in the compute cycles of the mapped layers."""
        e = sum(lp.mech[mech].effective for lp in self.mapped())
        c = sum(lp.mech[mech].capacity_compute for lp in self.mapped())
        return e / c if c else 0.0

    def breakdown(self, mech: str = "dbpim", mapped_only: bool = False) -> dict:
        """Cycles per inference by term of :data:`CYCLE_TERMS`, summed over the layers; they add up to
        :meth:`total_cycles` (``simd`` is 0 with ``mapped_only``)."""
        out = dict.fromkeys(CYCLE_TERMS, 0.0)
        for lp in self._layers(mapped_only):
            for k, v in lp.breakdown(mech, not mapped_only).items():
                out[k] += v
        return out

    def breakdown_summary(self, mechanisms=("dbpim", "dense")) -> dict:
        """The JSON of the cycle breakdown: per mechanism, the network's terms and every layer's."""
        out = {"terms": dict(CYCLE_TERM_LABELS)}
        for k in mechanisms:
            net = self.breakdown(k)
            out[k] = {"network [cycles]": net, "total [cycles]": self.total_cycles(k),
                      "layers": [{"layer": lp.spec.name, "type": lp.type, "total [cycles]": lp.cycles(k),
                                  **{f"{t} [cycles]": v for t, v in lp.breakdown(k).items()}}
                                 for lp in self.layers]}
        return out

    def _ratio(self, num: float, den: float, figure: str) -> float:
        """``num / den``, a finite number, or :class:`PerfError` naming the network and the figure."""
        if not den or not math.isfinite(num) or not math.isfinite(den):
            raise PerfError(f"{self.network}: {figure}: undefined ({num:g} / {den:g}); the network has no "
                            "cycles or energy to compare (no mapped layer, or every weight pruned)")
        return check_finite_figure(num / den, f"{self.network}: {figure}")

    def speedup(self, mech: str = "dbpim", mapped_only: bool = False) -> float:
        """Dense cycles over ``mech`` cycles (:class:`PerfError` when ``mech`` takes no cycle)."""
        return self._ratio(self.total_cycles("dense", mapped_only), self.total_cycles(mech, mapped_only),
                           f"speedup ({mech}{', mapped layers' if mapped_only else ''})")

    def energy_saving(self, mech: str = "dbpim", mapped_only: bool = False, energy: EnergyConfig | None = None) -> float:
        """``1 - E_mech / E_dense`` (:class:`PerfError` when the dense baseline takes no energy)."""
        b = sum(self.components("dense", mapped_only, energy).values())
        e = sum(self.components(mech, mapped_only, energy).values())
        return 1.0 - self._ratio(e, b, f"energy saving ({mech}{', mapped layers' if mapped_only else ''})")

    def energy_saving_macro(self, mech: str = "dbpim") -> float:
        b = sum(self.components("dense", True)[c] for c in MACRO_COMPONENTS)
        e = sum(self.components(mech, True)[c] for c in MACRO_COMPONENTS)
        return 1.0 - self._ratio(e, b, f"macro energy saving ({mech})")

    def tornado(self, mech: str = "dbpim", factors=(0.5, 2.0)) -> list[dict]:
        """System energy saving when each assumed energy constant is scaled by each factor.

        Returns one dict per assumed constant with a non-zero value:
        ``constant``, ``value``, ``source``, and ``saving@<factor>`` (fractions),
        sorted by the width of the swing (largest first).
        """
        import dataclasses
        base = self.energy_saving(mech)
        rows = []
        for k, (src, assumed) in EnergyConfig.sources().items():
            v = getattr(self.cfg.energy, k)
            if not assumed or v == 0:
                continue
            r = {"constant": k, "value": v, "source": src, "base": base}
            for f in factors:
                r[f"saving@{f:g}"] = self.energy_saving(mech, energy=dataclasses.replace(self.cfg.energy, **{k: v * f}))
            rows.append(r)
        rows.sort(key=lambda r: -abs(r[f"saving@{factors[-1]:g}"] - r[f"saving@{factors[0]:g}"]))
        return rows

    def macs(self) -> dict:
        """MACs per inference: on the macros, on the SIMD core, in total, and the mapped share."""
        mapped = sum(lp.spec.macs for lp in self.layers if lp.mapped)
        simd = sum(lp.spec.macs for lp in self.layers if not lp.mapped)
        tot = mapped + simd
        return {"mapped": int(mapped), "simd": int(simd), "total": int(tot),
                "mapped_share": mapped / tot if tot else 0.0}

    def time_by_type(self, mech: str = "dbpim") -> dict:
        out: dict = {}
        for lp in self.layers:
            out[lp.type] = out.get(lp.type, 0.0) + lp.cycles(mech) / self.cfg.system.freq_mhz
        return out

    def summary(self) -> dict:
        """The JSON summary of one network."""
        mapped = self.mapped()
        cfg = self.cfg
        d = {
            "network": self.network,
            "hw": cfg.name,
            "batch": self.batch,
            "layers_mapped": len(mapped),
            "layers_simd": len(self.layers) - len(mapped),
            "speedup": self.speedup("dbpim"),
            "energy_saving": self.energy_saving("dbpim"),
            "energy_saving_macro": self.energy_saving_macro("dbpim"),
            "utilization": self.utilization("dbpim"),
            "utilization_system": self.utilization_system("dbpim"),
            "utilization_dense": self.utilization("dense"),
            "utilization_system_dense": self.utilization_system("dense"),
            "utilization_compute": self.utilization_compute("dbpim"),
            "utilization_compute_dense": self.utilization_compute("dense"),
            "utilization_definitions": dict(UTILIZATIONS),
            "peak_tops": peak_tops(cfg, 1),
            "peak_tops_phi_max": peak_tops(cfg, cfg.macro.phi_max),
            "peak_tops_dense": peak_tops(cfg, dense=True),
            "speedup_mapped": self.speedup("dbpim", True),
            "energy_saving_mapped": self.energy_saving("dbpim", True),
            "speedup_macro_cycles": self._ratio(sum(lp.mech["dense"].macro_cycles for lp in mapped),
                                                sum(lp.mech["dbpim"].macro_cycles for lp in mapped),
                                                "speedup (dbpim, macro cycles)"),
            "time_dbpim [us]": self.time_us("dbpim"),
            "time_dense [us]": self.time_us("dense"),
            "time_mapped_dbpim [us]": self.time_us("dbpim", True),
            "time_mapped_bit_input [us]": self.time_us("bit_input", True),
            "energy_dbpim [pJ]": self.total_energy("dbpim"),
            "energy_dense [pJ]": self.total_energy("dense"),
            "mechanisms": {k: {"label": MECH_LABELS[k], "speedup": self.speedup(k),
                               "speedup_mapped": self.speedup(k, True), "energy_saving": self.energy_saving(k),
                               "energy_saving_mapped": self.energy_saving(k, True),
                               "energy_saving_macro": self.energy_saving_macro(k),
                               "utilization": self.utilization(k),
                               "utilization_system": self.utilization_system(k),
                               "utilization_compute": self.utilization_compute(k)} for k in MECHANISMS},
            "time_by_type [us]": self.time_by_type("dbpim"),
            "macs": self.macs(),
            "inputs_recorded": all(lp.spec.bits is not None for lp in mapped),
            "cycle_breakdown": self.breakdown_summary(),
        }
        if self.batch_reuse is not None:
            d["batch_reuse"] = self.batch_reuse
        if self.chip is not None:
            d["chip"] = self.chip
        return d


def evaluate_network(specs: list[LayerSpec], cfg: HwConfig, network: str = "network",
                     mechanisms=MECHANISMS, meta: dict | None = None, *, batch: int = 1) -> NetworkPerf:
    """Evaluate every layer of a network at ``batch`` samples per loaded tile (:func:`evaluate_layer`).

    The layers are the same as :func:`evaluate_layer`'s, each alone; the core timing of the layers of one shape
    (their requests' samples, row tiles and pixel runs alike) within :data:`_NETWORK_WINDOW` layers runs in one
    :func:`_core_timings` call (every request on cores of its own: the figures of each alone).
    """
    batch = limits.BATCH.check("batch", batch, BenchError)
    layers = []
    for w0 in range(0, len(specs), _NETWORK_WINDOW):
        pending = [_layer_requests(s, cfg, mechanisms, batch) for s in specs[w0:w0 + _NETWORK_WINDOW]]
        shapes: dict = {}  # the layers of one shape of requests, in order
        for i, (_, _, requests) in enumerate(pending):
            if requests:
                shapes.setdefault(_requests_shape(requests), []).append(i)
        timings = {}
        for idx in shapes.values():
            got = _core_timings(cfg, [r for i in idx for r in pending[i][2].values()])
            for i in idx:
                timings[i], got = got[:len(pending[i][2])], got[len(pending[i][2]):]
        layers += [lp if requests is None else _layer_timed(lp, steps, requests, timings.get(i, []), mechanisms)
                   for i, (lp, steps, requests) in enumerate(pending)]
    return NetworkPerf(network=network, cfg=cfg, meta=dict(meta or {}), batch=batch, layers=layers)


#: Layers of a network whose core-timing requests are gathered at once (:func:`evaluate_network`).
_NETWORK_WINDOW = 64


def _requests_shape(requests: dict) -> tuple:
    """What :func:`_core_timings` pads its passes to, per request: samples, row tiles, pixel runs (copies, run,
    pixels) and whether every vector takes the same cycles; layers of one shape are timed in one call."""
    return tuple((r[0].shape[1], r[0].shape[2], r[0].shape[3] == 1, *r[9:]) for r in requests.values())


#: The two mechanisms of the headline speedup (dense cycles over DB-PIM cycles).
SPEEDUP_MECHANISMS = ("dense", "dbpim")


def bandwidth_bound_layers(net: NetworkPerf, mechanisms=SPEEDUP_MECHANISMS) -> list[str]:
    """``layer (mechanism)`` of every mapped layer whose off-chip floor binds (:attr:`MechPerf.bandwidth_bound`)."""
    return [f"{lp.spec.name} ({k})" for lp in net.mapped() for k in mechanisms
            if k in lp.mech and lp.mech[k].bandwidth_bound]


def batch_reuse(specs: list[LayerSpec], cfg: HwConfig, network: str = "network") -> dict:
    """The speedup at batch 1 and at the smallest batch where the off-chip floor binds no layer.

    Evaluates the dense baseline and DB-PIM (:data:`SPEEDUP_MECHANISMS`) at
    batch 1, 2, 4, ... up to ``model.limits.BATCH.hi`` and stops at the first
    batch where no mapped layer is :attr:`MechPerf.bandwidth_bound` under
    either (docs/perf_model.md "Batch"). ``saturation_batch`` is that batch,
    or None (with ``speedup_saturation`` None) when every searched batch
    leaves a layer bound; ``search`` has one row per batch evaluated.
    """
    rows, b = [], 1
    while True:
        net = evaluate_network(specs, cfg, network, SPEEDUP_MECHANISMS, batch=b)
        bound = bandwidth_bound_layers(net)
        rows.append({"batch": b, "speedup": net.speedup(), "speedup_mapped": net.speedup("dbpim", True),
                     "bandwidth_bound_layers": bound})
        if not bound or b >= limits.BATCH.hi:
            break
        b = min(2 * b, limits.BATCH.hi)
    last = rows[-1]
    done = not last["bandwidth_bound_layers"]
    return {"speedup_batch_1": rows[0]["speedup"], "speedup_mapped_batch_1": rows[0]["speedup_mapped"],
            "bandwidth_bound_batch_1": rows[0]["bandwidth_bound_layers"],
            "saturation_batch": last["batch"] if done else None,
            "speedup_saturation": last["speedup"] if done else None,
            "speedup_mapped_saturation": last["speedup_mapped"] if done else None,
            "search": rows}

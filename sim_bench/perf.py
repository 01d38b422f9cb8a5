"""Performance, energy and utilization model of DB-PIM (docs/design.md §7, paper Sec. V-D).

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
bit_input   all K rows                    phi_f (FTA)     yes
weight      kept rows of each group       phi_f (FTA)     no  (Fig. 11)
dbpim       kept rows of each group       phi_f (FTA)     yes (hybrid)
=========== ============================ =============== ==============

``dbpim`` is exactly ``model.layer.run_layer``'s ``cycles_dbpim`` and ``dense``
its ``cycles_dense`` (macro-cycles summed over tiles and vectors; checked by
the tests). "All rows" mechanisms map the whole layer as one group (no pruning
groups are needed without value-level sparsity); the FTA column packing is
``model.compile``'s. The phi of the artifact (computed over kept weights) is
used for the "all rows" FTA mechanisms too.

Loop nest (Sec. V-D, Fig. 9), per inference (batch 1): a *filter tile*
(group g, column tile ct) runs all its row tiles on one PIM core; filter tiles
are dealt to the cores round-robin in (g, ct) order; the macros of a core hold
the same tile and take the output pixels (im2col vectors) p = m, m + M, ... ;
a row tile costs its weight load (tile bytes / ``weight_load_bytes_per_cycle``)
plus the slowest macro's cycles (IPU cycles + pipeline latency per vector). A
layer's wall cycles are the busiest core's. Layers the macros do not run
(``simd`` records) cost ``ceil(simd_ops / simd_lanes)`` cycles on the SIMD core.

Utilization U (paper Eq. 2, docs/design.md §7) counts, per issued bit-column cycle,
the cells that hold a non-zero weight digit (FTA) or a one bit (dense two's
complement) in a used compartment, over all ``n_comp * n_col`` cells of the
activated cell row; pipeline fill/drain cycles activate no cells.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from model.compile import _column_tiles
from model.cycles import POPCOUNT8, cell_row_popcounts, row_tile_sums
from model.spec import DIGIT_BITS, input_bits, pipeline_latency
from model.prune import n_groups
from model.config import HwConfig

__all__ = ["MECHANISMS", "MECH_LABELS", "LayerSpec", "LayerPerf", "NetworkPerf", "spec_from_record",
           "specs_from_artifact", "evaluate_layer", "evaluate_network", "layer_type"]

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


@dataclass
class LayerSpec:
    """What the performance model needs of one layer.

    Mapped layers (``kind`` conv2d / linear) need ``K, N, G, phi, mask``;
    ``w`` (int8, K x N) is used for the dense utilization; ``bits`` are the
    recorded im2col inputs as 8-bit patterns (P_total, K) of ``samples``
    inferences (None: no recording, every bit column is assumed non-zero).
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
                     vectors=int(vectors), kernel=rec.kernel, signed=bool(rec.signed_input), macs=rec.mac_count())


def specs_from_artifact(art) -> list[LayerSpec]:
    return [spec_from_record(r) for r in art.layers]


@dataclass
class _Group:
    """One row set fed to a set of column tiles."""

    rows: np.ndarray  # im2col rows in mapping order
    filters: np.ndarray  # output channels of the group
    ct_cols: list  # used columns of each column tile
    ct_filters: list  # filters of each column tile


def _groups(spec: LayerSpec, kept: bool, fta: bool, n_col: int) -> list[_Group]:
    N = spec.N
    if kept:
        parts = [(np.nonzero(spec.mask[:, g])[0], np.arange(g * spec.G, min(N, (g + 1) * spec.G)))
                 for g in range(n_groups(N, spec.G))]
    else:
        parts = [(np.arange(spec.K), np.arange(N))]
    out = []
    for rows, filt in parts:
        if rows.size == 0:
            continue
        if fta:
            cts = _column_tiles(spec.phi[filt], n_col)
            cols = [sum(int(spec.phi[filt[f]]) for f, _ in ct) for ct in cts]
            nf = [len(ct) for ct in cts]
        else:
            nct = -(-8 * filt.size // n_col)  # 8 bit-plane columns per filter, packed densely
            cols = [min(n_col, 8 * filt.size - i * n_col) for i in range(nct)]
            nf = [c / 8.0 for c in cols]
        if cols:
            out.append(_Group(rows=rows, filters=filt, ct_cols=cols, ct_filters=nf))
    return out


@dataclass
class MechPerf:
    macro_cycles: float  # per inference, summed over tiles and vectors (one macro)
    wall_cycles: float  # per inference, loop nest over cores and macros
    issued: float  # compute (bit-column) cycles per inference, summed over macros
    effective: float  # effective cell-cycles per inference (U numerator)
    activated: float  # activated cell-cycles per inference (U denominator)
    energy: dict  # pJ per inference by component
    macro_cycles_total: int = 0  # over all recorded vectors (golden-model comparable)
    tiles: int = 0
    load_cycles: float = 0.0

    @property
    def energy_pj(self) -> float:
        return float(sum(self.energy.values()))

    @property
    def utilization(self) -> float:
        return self.effective / self.activated if self.activated else 0.0


def _mechanism(spec: LayerSpec, cfg: HwConfig, mech: str, pc_cache: dict, wpop) -> MechPerf:
    m, sysc, en = cfg.macro, cfg.system, cfg.energy
    kept, fta, skip = _MODE[mech]
    groups = _groups(spec, kept, fta, m.n_col)
    lat = pipeline_latency(m.pipeline)
    S, Pp = spec.samples, spec.vectors
    P = S * Pp
    M, C = sysc.macros_per_core, sysc.cores
    if sysc.replicate_idle_cores and groups:
        # fewer filter tiles than cores: r cores hold the same tile and split its output pixels
        r = max(1, C // sum(len(g.ct_cols) for g in groups))
        M, C = M * r, C // r
    cap = m.capacity_rows
    n_vec_macro = np.array([len(range(i, Pp, M)) for i in range(M)])
    nmax = int(n_vec_macro.max())
    cell_bits = DIGIT_BITS if fta else 1  # cell + idx + sign per FTA digit; 1 bit per dense cell
    energy = dict.fromkeys(("macro array", "adder tree", "accumulator", "ipu", "switch", "input buffer",
                            "output buffer", "weight load", "static"), 0.0)
    if not groups:
        return MechPerf(0.0, 0.0, 0.0, 0.0, 0.0, energy)

    use_pc = skip and spec.bits is not None
    if use_pc:
        key = kept
        if key not in pc_cache:
            pc_cache[key] = cell_row_popcounts(spec.bits, [g.rows for g in groups], m.n_comp)
        pc = pc_cache[key]  # (P, ng, CRmax)
    macro_total = 0
    issued = eff = act = 0.0
    core_time = np.zeros((S, C))
    ft_index = 0
    tiles = 0
    load_total = 0.0
    weight_bytes = 0.0
    switch_inputs = 0.0
    out_bytes = 0.0
    for gi, g in enumerate(groups):
        R = g.rows.size
        ncr = -(-R // m.n_comp)
        nrt = -(-R // cap)
        comp_used = np.minimum(m.n_comp, R - np.arange(ncr) * m.n_comp)  # per cell row
        rows_used_rt = np.array([min(m.n_row, ncr - rt * m.n_row) for rt in range(nrt)])
        if use_pc:
            pcg = pc[:, gi, :ncr].astype(np.int32)  # (P, ncr)
            cyc = row_tile_sums(pcg, m.n_row).reshape(S, Pp, nrt)  # compute cycles per vector and row tile
            pcsum = pcg.sum(0, dtype=np.int64)  # per cell row over all vectors
            # macros take vectors p = mi, mi + M, ...
            padp = np.zeros((S, nmax * M, nrt), np.int64)
            padp[:, :Pp] = cyc
            per_macro = padp.reshape(S, nmax, M, nrt).sum(1) + lat * n_vec_macro[None, :, None]
            tile_wall = per_macro.max(1)  # (S, nrt)
            cyc_sum = int(cyc.sum())
        else:
            c_rt = m.in_bits * rows_used_rt  # per vector
            pcsum = np.full(ncr, m.in_bits * P, np.int64)
            tile_wall = np.broadcast_to(nmax * (c_rt + lat), (S, nrt)).astype(np.int64)
            cyc_sum = int(c_rt.sum()) * P
        nct = len(g.ct_cols)
        tiles += nct * nrt
        macro_total += nct * (cyc_sum + lat * P * nrt)
        issued_g = nct * cyc_sum
        issued += issued_g
        act += issued_g * m.n_comp * m.n_col
        if fta:
            eff += sum(g.ct_cols) * float((pcsum * comp_used).sum())
        else:
            # set bits of the group's weights per cell row (all column tiles together)
            wb = np.zeros(ncr * m.n_comp, np.int64)
            wb[:R] = wpop[g.rows][:, g.filters].sum(1)
            eff += float((pcsum * wb.reshape(ncr, m.n_comp).sum(1)).sum())
        if kept and sysc.switch_bound:
            sw = Pp * np.ceil(np.minimum(cap, R - np.arange(nrt) * cap) / m.lanes)
            tile_wall = np.maximum(tile_wall, sw[None, :])
        bytes_rt = rows_used_rt * m.n_comp * m.n_col * cell_bits / 8.0
        load = float(bytes_rt.sum()) / sysc.weight_load_bytes_per_cycle
        ft_time = tile_wall.sum(1) + load  # (S,) one filter tile of this group
        cores = np.bincount((ft_index + np.arange(nct)) % C, minlength=C)  # filter tiles per core
        core_time += ft_time[:, None] * cores[None, :]
        load_total += load * nct
        weight_bytes += float(bytes_rt.sum()) * nct
        out_bytes += Pp * 4.0 * float(sum(g.ct_filters)) * (2 * nrt - 1)
        if kept:
            switch_inputs += Pp * R * nct
        ft_index += nct
    rounds = -(-ft_index // C)
    wall = float(core_time.max(1).mean())
    issued_i, eff_i, act_i = issued / S, eff / S, act / S
    energy["macro array"] = act_i * en.cell_and_pj
    energy["adder tree"] = act_i * (en.csd_adder_input_pj if fta else en.adder_input_pj)
    energy["accumulator"] = issued_i * m.n_col * en.accumulate_pj
    energy["ipu"] = issued_i * en.ipu_pj if skip else 0.0
    energy["switch"] = switch_inputs * en.switch_pj
    energy["input buffer"] = Pp * spec.K * rounds * en.input_buffer_byte_pj
    energy["output buffer"] = out_bytes * en.output_buffer_byte_pj
    energy["weight load"] = weight_bytes * (en.weight_load_byte_pj + en.dram_byte_pj
                                            + M * en.weight_write_byte_pj)  # M: every macro holding it
    energy["static"] = en.static_mw * wall / sysc.freq_mhz * 1e3  # mW * us = nJ
    return MechPerf(macro_cycles=macro_total / S, wall_cycles=wall, issued=issued_i, effective=eff_i,
                    activated=act_i, energy=energy, macro_cycles_total=int(macro_total), tiles=tiles,
                    load_cycles=load_total)


@dataclass
class LayerPerf:
    spec: LayerSpec
    type: str
    mech: dict = field(default_factory=dict)  # mechanism -> MechPerf (mapped layers)
    simd_cycles: float = 0.0
    simd_energy: float = 0.0

    @property
    def mapped(self) -> bool:
        return self.spec.mapped

    def cycles(self, mech: str) -> float:
        return self.mech[mech].wall_cycles if self.mapped else self.simd_cycles

    def energy(self, mech: str) -> float:
        return self.mech[mech].energy_pj if self.mapped else self.simd_energy


def evaluate_layer(spec: LayerSpec, cfg: HwConfig, mechanisms=MECHANISMS) -> LayerPerf:
    """Evaluate one layer under every mechanism (per inference)."""
    lp = LayerPerf(spec=spec, type=layer_type(spec))
    if not spec.mapped:
        lp.simd_cycles = float(math.ceil(spec.simd_ops / cfg.system.simd_lanes))
        lp.simd_energy = spec.simd_ops * cfg.energy.simd_op_pj + \
            cfg.energy.static_mw * lp.simd_cycles / cfg.system.freq_mhz * 1e3
        return lp
    wpop = None
    if any(not _MODE[k][1] for k in mechanisms):
        w = spec.w if spec.w is not None else np.zeros((spec.K, spec.N), np.int8)
        wpop = POPCOUNT8[np.asarray(w).astype(np.int64) & 0xFF].astype(np.int64)
    cache: dict = {}
    for k in mechanisms:
        lp.mech[k] = _mechanism(spec, cfg, k, cache, wpop)
    return lp


@dataclass
class NetworkPerf:
    network: str
    cfg: HwConfig
    layers: list

    def mapped(self):
        return [lp for lp in self.layers if lp.mapped]

    def total_cycles(self, mech: str, mapped_only: bool = False) -> float:
        return float(sum(lp.cycles(mech) for lp in self.layers if lp.mapped or not mapped_only))

    def total_energy(self, mech: str, mapped_only: bool = False) -> float:
        return float(sum(lp.energy(mech) for lp in self.layers if lp.mapped or not mapped_only))

    def time_us(self, mech: str, mapped_only: bool = False) -> float:
        return self.total_cycles(mech, mapped_only) / self.cfg.system.freq_mhz

    def utilization(self, mech: str = "dbpim") -> float:
        e = sum(lp.mech[mech].effective for lp in self.mapped())
        a = sum(lp.mech[mech].activated for lp in self.mapped())
        return e / a if a else 0.0

    def speedup(self, mech: str = "dbpim", mapped_only: bool = False) -> float:
        c = self.total_cycles(mech, mapped_only)
        return self.total_cycles("dense", mapped_only) / c if c else float("nan")

    def energy_saving(self, mech: str = "dbpim", mapped_only: bool = False) -> float:
        b = self.total_energy("dense", mapped_only)
        return 1.0 - self.total_energy(mech, mapped_only) / b if b else float("nan")

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
        d = {
            "network": self.network,
            "hw": self.cfg.name,
            "layers_mapped": len(mapped),
            "layers_simd": len(self.layers) - len(mapped),
            "speedup": self.speedup("dbpim"),
            "energy_saving": self.energy_saving("dbpim"),
            "utilization": self.utilization("dbpim"),
            "utilization_dense": self.utilization("dense"),
            "speedup_mapped": self.speedup("dbpim", True),
            "energy_saving_mapped": self.energy_saving("dbpim", True),
            "speedup_macro_cycles": (sum(lp.mech["dense"].macro_cycles for lp in mapped)
                                     / max(1e-9, sum(lp.mech["dbpim"].macro_cycles for lp in mapped))),
            "time_dbpim [us]": self.time_us("dbpim"),
            "time_dense [us]": self.time_us("dense"),
            "time_mapped_dbpim [us]": self.time_us("dbpim", True),
            "time_mapped_bit_input [us]": self.time_us("bit_input", True),
            "energy_dbpim [pJ]": self.total_energy("dbpim"),
            "energy_dense [pJ]": self.total_energy("dense"),
            "mechanisms": {k: {"label": MECH_LABELS[k], "speedup": self.speedup(k),
                               "speedup_mapped": self.speedup(k, True), "energy_saving": self.energy_saving(k),
                               "energy_saving_mapped": self.energy_saving(k, True),
                               "utilization": self.utilization(k)} for k in MECHANISMS},
            "time_by_type [us]": self.time_by_type("dbpim"),
            "macs": self.macs(),
            "inputs_recorded": all(lp.spec.bits is not None for lp in mapped),
        }
        return d


def evaluate_network(specs: list[LayerSpec], cfg: HwConfig, network: str = "network",
                     mechanisms=MECHANISMS) -> NetworkPerf:
    """Evaluate every layer of a network."""
    return NetworkPerf(network=network, cfg=cfg, layers=[evaluate_layer(s, cfg, mechanisms) for s in specs])

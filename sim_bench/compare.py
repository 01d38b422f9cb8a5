"""The ReRAM bit-sparsity schemes next to DB-PIM on one compiled network (``dbpim compare``).

For an artifact, every mapped layer's weights go through
:mod:`sim_bench.reram` under each scheme: plain int8 of ``w_float`` when
every mapped layer holds it (:func:`uses_float`), else the artifact's own
(block-pruned, FTA) int8 weights; and the same artifact through
:mod:`sim_bench.perf` for DB-PIM. Each technology is compared with its own
dense baseline (ReRAM: the dense ISAAC-like mapping; DB-PIM: the dense digital
PIM mechanism), over the layers mapped on the crossbars / macros. The
accuracies come from the caller (:mod:`dbpim.compare` evaluates the network
with the transformed weights); this module needs no torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dbpim.model.prune import expand_mask
from dbpim.model.reram import int8_weights
from dbpim.model.spec import DIGIT_BITS, WEIGHT_BITS
from dbpim.sim_bench import reram
from dbpim.sim_bench.perf import (CYCLE_TERM_LABELS, CYCLE_TERMS, PerfError, evaluate_network, spec_from_record,
                                  specs_from_artifact)
from dbpim.sim_bench.report import _write_csv, write_json

__all__ = ["Row", "uses_float", "reram_weights", "reram_rows", "dbpim_rows", "compare_network", "format_table", "write_outputs", "COLUMNS"]

#: Table columns (CSV header order).
COLUMNS = ("network", "technology", "scheme", "accuracy [%]", "accuracy_note", "storage [bits]",
           "crossbars / macro tiles", "OUs", "ADC conversions / macro cycles", "cycles", "speedup [x]",
           "energy [pJ]", "energy gain [x]")


@dataclass
class Row:
    """One line of the comparison table (per inference, over the mapped layers)."""

    network: str
    technology: str  # "ReRAM" or "DB-PIM"
    scheme: str
    label: str
    storage_bits: float
    occupied: float  # crossbars (ReRAM) or macro-sized weight tiles (DB-PIM)
    ous: float | None  # OUs holding weights (ReRAM only)
    work: float  # ADC conversions (ReRAM) or macro cycles summed over tiles (DB-PIM)
    cycles: float  # OU-cycles, iso-area (ReRAM) or wall cycles of the loop nest (DB-PIM)
    energy_pj: float
    speedup: float | None = 1.0  # over the technology's own dense baseline (None: the scheme takes no cycles)
    energy_gain: float | None = 1.0  # dense energy / this energy (None: the scheme takes no energy)
    accuracy: float | None = None
    accuracy_note: str = "not evaluated"
    energy: dict = field(default_factory=dict)
    batch: int = 1  # samples per loaded tile (DB-PIM rows: sim_bench.perf; the ReRAM model runs batch 1)
    breakdown: dict = field(default_factory=dict)  # DB-PIM: cycles by term (sim_bench.perf.CYCLE_TERMS), adding up

    def as_dict(self) -> dict:
        acc = None if self.accuracy is None else 100.0 * self.accuracy
        return {"network": self.network, "technology": self.technology, "scheme": self.scheme, "batch": self.batch,
                "accuracy [%]": acc, "accuracy_note": self.accuracy_note, "storage [bits]": self.storage_bits,
                "crossbars / macro tiles": self.occupied, "OUs": self.ous,
                "ADC conversions / macro cycles": self.work, "cycles": self.cycles, "speedup [x]": self.speedup,
                "energy [pJ]": self.energy_pj, "energy gain [x]": self.energy_gain}


def _relative(rows: list[Row]) -> list[Row]:
    """Speedup and energy gain of every row over the first (the dense baseline).

    A scheme that takes no cycles (or no energy), e.g. ERA-BS with every input
    pruned, has no finite ratio: it is reported as ``None`` (``n/a``, empty in
    the CSV, ``null`` in the JSON), never as infinity. A dense baseline without
    cycles or energy is an error.
    """
    base = rows[0]
    for what, v in (("cycles", base.cycles), ("energy", base.energy_pj)):
        if not (math.isfinite(v) and v > 0):
            raise PerfError(f"{base.network}: {base.technology} {base.scheme}: {what} must be a finite number > 0 "
                            f"to compare against, got {v:g}")
    for r in rows:
        r.speedup = base.cycles / r.cycles if r.cycles > 0 else None
        r.energy_gain = base.energy_pj / r.energy_pj if r.energy_pj > 0 else None
    return rows


def uses_float(art) -> bool:
    """Whether every mapped layer of ``art`` holds ``w_float`` (then the ReRAM schemes start from it)."""
    return all(rec.w_float is not None for rec in art.mapped_layers())


def reram_weights(rec, from_float: bool) -> np.ndarray:
    """The int8 weights a ReRAM scheme starts from: plain int8 of ``w_float``, or the artifact's ``w``."""
    return int8_weights(rec.w_float)[0] if from_float else np.asarray(rec.w, np.int8)


def reram_rows(art, cfg: reram.ReramConfig, schemes=reram.SCHEMES, weights: dict | None = None) -> list[Row]:
    """The ReRAM rows of an artifact: ``dense`` first, then each scheme.

    ``weights`` may give a scheme's own (fine-tuned) int8 weights, one per
    mapped record: that row maps them as they are
    (:func:`sim_bench.reram.map_layer` with ``transformed``); the other rows
    transform the start weights (:func:`reram_weights`).
    """
    fl = uses_float(art)
    records = art.mapped_layers()
    layers = [(reram_weights(rec, fl), spec_from_record(rec)) for rec in records]
    era_bits = [reram.era_bs_input_bits(rec.im2col_inputs(), rec.signed_input, cfg)
                if "era_bs" in schemes and cfg.act_prune else spec.bits for rec, (_, spec) in zip(records, layers)]
    dense_xb = [reram.map_dense(w, cfg).crossbars for w, _ in layers]
    weights = weights or {}
    for s, ws in weights.items():
        if len(ws) != len(records) or any(np.shape(w) != np.shape(rec.w) for w, rec in zip(ws, records)):
            raise ValueError(f"weights[{s!r}]: must hold one K x N matrix per mapped record ({len(records)})")
    rows = []
    for s in ("dense",) + tuple(k for k in schemes if k != "dense"):
        tot = dict(storage=0.0, xb=0.0, ous=0.0, work=0.0, cycles=0.0)
        energy: dict = {}
        own = weights.get(s)
        for i, ((w, spec), dxb) in enumerate(zip(layers, dense_xb)):
            bits = era_bits[i] if s == "era_bs" else spec.bits
            m = (reram.map_layer(own[i], s, cfg, bits=bits, transformed=True) if own is not None
                 else reram.map_layer(w, s, cfg, bits=bits))
            c = reram.layer_cost(m, spec.vectors, dxb, cfg)
            tot["storage"] += m.storage_bits
            tot["xb"] += m.crossbars
            tot["ous"] += m.ous
            tot["work"] += c["adc_conversions"]
            tot["cycles"] += c["ou_cycles"]
            for k, v in c["energy_pj"].items():
                energy[k] = energy.get(k, 0.0) + v
        rows.append(Row(art.network, "ReRAM", s, reram.SCHEME_LABELS[s], tot["storage"], tot["xb"], tot["ous"],
                        tot["work"], tot["cycles"], float(sum(energy.values())), energy=energy))
    return _relative(rows)


def _dbpim_storage(rec, dense: bool) -> int:
    """Weight bits of a record: 8 per weight (dense) or the FTA digits x DIGIT_BITS plus the block mask."""
    K, N = rec.w.shape
    if dense:
        return K * N * WEIGHT_BITS
    c = rec.compiled
    kept = expand_mask(np.asarray(c.mask, bool), N, int(c.group_size))
    return int((kept * np.asarray(c.phi, np.int64)[None, :]).sum()) * DIGIT_BITS + int(np.asarray(c.mask).size)


def dbpim_rows(art, hwcfg, batch: int = 1) -> list[Row]:
    """The DB-PIM rows of an artifact: the dense digital PIM baseline and the hybrid (``sim_bench.perf``), both
    at ``batch`` samples per loaded tile."""
    net = evaluate_network(specs_from_artifact(art), hwcfg, network=art.network, mechanisms=("dense", "dbpim"),
                           batch=batch)
    rows = []
    for mech, label in (("dense", "DB-PIM macro, dense (own baseline)"), ("dbpim", "DB-PIM hybrid")):
        mapped = net.mapped()
        energy: dict = {}
        for lp in mapped:
            for k, v in lp.mech[mech].energy.items():
                energy[k] = energy.get(k, 0.0) + v
        rows.append(Row(art.network, "DB-PIM", mech, label,
                        float(sum(_dbpim_storage(r, mech == "dense") for r in art.mapped_layers())),
                        float(sum(lp.mech[mech].tiles for lp in mapped)), None,
                        float(sum(lp.mech[mech].macro_cycles for lp in mapped)),
                        net.total_cycles(mech, mapped_only=True), net.total_energy(mech, mapped_only=True),
                        energy=energy, batch=net.batch, breakdown=net.breakdown(mech, mapped_only=True)))
    return _relative(rows)


def compare_network(art, hwcfg, cfg: reram.ReramConfig | None = None, accuracy: dict | None = None,
                    weights: dict | None = None, batch: int = 1) -> list[Row]:
    """Every row for one artifact.

    ``accuracy`` maps a ReRAM scheme, and ``"dbpim"`` for both DB-PIM rows
    (the dense macro runs the same weights), to ``(fraction or None, note)``;
    ``weights`` a ReRAM scheme to the (fine-tuned) weights that accuracy was
    measured on (:func:`reram_rows`); ``batch`` is the DB-PIM rows' (:func:`dbpim_rows`).
    """
    rows = reram_rows(art, cfg or reram.ReramConfig(), weights=weights) + dbpim_rows(art, hwcfg, batch)
    for r in rows:
        key = "dbpim" if r.technology == "DB-PIM" else r.scheme
        if accuracy and key in accuracy:
            r.accuracy, r.accuracy_note = accuracy[key]
    return rows


def _fmt(v, nd=2) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if abs(v) >= 1e5:
        return f"{v:.3e}"
    return f"{v:.{nd}f}" if v != int(v) else f"{int(v)}"


def _times(v) -> str:
    return "n/a" if v is None else f"{v:.2f}x"


def format_table(rows: list[Row]) -> str:
    """A plain-text table, one line per row."""
    head = ["network", "tech", "scheme", "acc [%]", "storage [bit]", "xbars/tiles", "OUs", "ADC conv/macro cyc",
            "cycles", "speedup", "energy [pJ]", "E gain"]
    body = [[r.network, r.technology, r.scheme, _fmt(None if r.accuracy is None else 100 * r.accuracy),
             _fmt(r.storage_bits), _fmt(r.occupied), _fmt(r.ous), _fmt(r.work), _fmt(r.cycles),
             _times(r.speedup), _fmt(r.energy_pj), _times(r.energy_gain)] for r in rows]
    width = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(str(x).rjust(w) for x, w in zip(line, width)) for line in [head] + body]
    notes = list(dict.fromkeys(f"{r.technology} {r.scheme}: {r.accuracy_note}" for r in rows if r.accuracy_note))
    lines += ["accuracy: " + "; ".join(notes)] if notes else []
    return "\n".join(lines + breakdown_lines(rows))


def breakdown_lines(rows: list[Row]) -> list[str]:
    """Where the DB-PIM rows' cycles go: a plain-text table of the terms (sim_bench.perf.CYCLE_TERMS, no SIMD)."""
    db = [r for r in rows if r.breakdown]
    if not db:
        return []
    terms = [t for t in CYCLE_TERMS if t != "simd"]
    head = ["DB-PIM cycles by term", "total"] + terms
    body = [[f"{r.network} {r.scheme}", f"{r.cycles:,.0f}"] + [f"{r.breakdown[t]:,.0f}" for t in terms] for r in db]
    width = [max(len(x[i]) for x in [head] + body) for i in range(len(head))]
    return ["  ".join(x.ljust(w) if i == 0 else x.rjust(w) for i, (x, w) in enumerate(zip(line, width)))
            for line in [head] + body]


def _plot(rows: list[Row], path: Path) -> None:
    """Speedup and energy gain of each scheme over its technology's dense baseline, per network."""
    from dbpim.model.plots import legend_outside, pyplot, save_figure
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    nets = list(dict.fromkeys(r.network for r in rows))
    keys = list(dict.fromkeys((r.technology, r.scheme) for r in rows if r.scheme != "dense"))
    width = 0.8 / max(1, len(keys))
    for ax, attr, title in ((axes[0], "speedup", "speedup"), (axes[1], "energy_gain", "energy gain")):
        for i, key in enumerate(keys):
            vals = [next((getattr(r, attr) for r in rows if r.network == n and (r.technology, r.scheme) == key),
                         None) for n in nets]
            vals = [np.nan if v is None else v for v in vals]  # n/a: no bar
            ax.bar(np.arange(len(nets)) + i * width, vals, width, label=f"{key[0]} {key[1]}")
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xticks(np.arange(len(nets)) + 0.4 - width / 2, nets, rotation=20)
        ax.set_ylabel(f"{title} over own dense [x]")
        ax.set_title(f"{title.capitalize()} over the technology's dense baseline", fontsize=9)
    legend_outside(axes[1])
    save_figure(fig, path)


def write_outputs(rows: list[Row], folder: Path, cfg: reram.ReramConfig, plots: bool = True) -> list[str]:
    """``compare.csv``, ``compare.json`` (rows, energy components, the ReRAM constants) and ``speedup.png``
    (speedup and energy gain per scheme and network)."""
    folder = Path(folder)
    _write_csv(folder / "compare.csv", [r.as_dict() for r in rows])
    doc = {"reram_config": cfg.to_dict(),
           "rows": [{**r.as_dict(), "label": r.label, "energy_components [pJ]": r.energy,
                     **({"cycle_breakdown [cycles]": r.breakdown} if r.breakdown else {})} for r in rows],
           "cycle_terms": {t: v for t, v in CYCLE_TERM_LABELS.items() if t != "simd"}}
    write_json(folder / "compare.json", doc)
    files = ["compare.csv", "compare.json"]
    if plots:
        _plot(rows, folder / "speedup.png")
        files.append("speedup.png")
    return files

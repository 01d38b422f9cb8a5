"""``dbpim bench``: performance, energy and utilization report of a compiled artifact.

    dbpim bench --artifact <dir> [--hw paper] --out <dir>

Writes, into ``--out`` (staged next to it and moved in on success by
:func:`model.outdir.output_dir`: a failure leaves ``--out`` untouched, and a
folder holding files this command did not write is refused):

* ``layers.csv``   one row per layer, the unit in every column name;
* ``summary.json`` per network: ``speedup``, ``energy_saving`` (system),
  ``energy_saving_macro``, ``utilization`` (cell level), ``utilization_compute``
  (over compute cycles), ``utilization_system`` (with ``utilization_definitions``),
  ``cycle_breakdown`` (DB-PIM and dense: the network's and every layer's cycles
  by term of :data:`sim_bench.perf.CYCLE_TERMS`, adding up to their totals),
  ``peak_tops``, per-mechanism speedups/energy savings, time by layer type,
  energy by component, the energy constants with their sources and the
  sensitivity of the system saving to each assumed one, configuration;
* ``summary.md``   our figures next to the paper's published ones (Tab. II,
  Tab. III, peak throughput, Fig. 12, Fig. 13) and where the cycles go;
* ``cycle_breakdown.png`` (the network's and every layer's cycles by term, stacked,
  DB-PIM and dense), ``mechanisms.png`` (Fig. 12 style), ``layer_speedup.png``, ``utilization.png``,
  ``time_breakdown.png`` (Fig. 13 style), ``energy_breakdown.png``,
  ``energy_tornado.png`` (system saving with each assumed constant halved / doubled).

``speedup`` / ``energy_saving`` are end to end (mapped layers + SIMD-core
layers, like the paper's Fig. 12); the ``*_mapped`` variants count only the
layers on the macros (std/pw-conv and FC, like the paper's Tab. III).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from dbpim.model import jsonio
from dbpim.model.config import EnergyConfig
from dbpim.model.outdir import check_output, output_dir
from dbpim.model.plots import legend_outside, pyplot as _plt, save_figure
from dbpim.sim_bench.explain import SIGNED_SKIP_WHY, explain_markdown, layer_notes, simd_op_rows
from dbpim.sim_bench.perf import (CYCLE_TERM_LABELS, CYCLE_TERMS, MACRO_COMPONENTS, MECH_LABELS, MECHANISMS,
                                  UTILIZATIONS, BenchError, NetworkPerf, batch_reuse, evaluate_network, peak_geometry,
                                  peak_tops, specs_from_artifact)

__all__ = ["run_report", "evaluate_artifact", "evaluate_with_batch_reuse", "batch_reuse_line", "check_macro",
           "format_summary", "format_notes", "write_report", "demo",
           "layer_rows", "markdown", "PAPER", "BenchError", "plot_mechanisms", "plot_time_breakdown", "plot_tornado",
           "network_note", "UNTRAINED_NOTE", "U_CHOICE", "weights_label", "data_source", "write_json",
           "plot_cycle_breakdown", "plot_layer_breakdown", "breakdown_markdown", "format_breakdown", "breakdown_rows"]

DIGITS_NOTE = ("Our networks are trained on scikit-learn digits (8x8, upscaled to 32x32 for the zoo networks), "
               "not on CIFAR-100 as in the paper; layer shapes match the paper's 32x32 inputs, but weight and "
               "activation statistics (hence sparsity, phi and skipped input columns) differ.")
UNTRAINED_NOTE = ("UNTRAINED full-width network: Kaiming-normal weights, BatchNorm recalibrated on real images "
                  "(scikit-learn digits upscaled to 32x32, our only real image data offline), block-pruned and "
                  "FTA-quantized without training; activations recorded on those images. Layer shapes are the "
                  "paper's CIFAR-100 ones; phi and skipped input columns are not those of a trained network.")
TRAINED_ON_NOTE = ("Network with real weights trained on {data} (not by us): its trained BatchNorm statistics are "
                   "kept (no {data} images offline to recalibrate them on); activation ranges and the recorded "
                   "inputs come from scikit-learn digits upscaled to 32x32, so skipped input columns are not "
                   "those of {data} images, and no accuracy is reported (no {data} test data offline).")
CONTROL_NOTE = ("UNTRAINED control of {of}: the same architecture with Kaiming-normal weights, BatchNorm "
                "recalibrated on the same calibration images, pruned and FTA-quantized the same way; it shows "
                "what the trained weights change.")
#: which utilization the paper comparison uses, and why
U_CHOICE = ("Tab. II is compared with `utilization_compute`: the paper (Sec. VI) defines U over the SRAM cells of "
            "the array per computation and attributes its 85 % (below 100 %) to layers with fewer output channels "
            "than the hardware's parallelism and to deployment (mapping, macro allocation), i.e. to idle columns, "
            "macros and cores while the chip computes, which `utilization_compute` counts and `utilization` (cell "
            "level: the activated cell rows of issued cycles, near 100 % by construction of the FTA storage) does "
            "not; `utilization_system` also counts the load, delivery, drain and streaming cycles. All three are "
            "printed side by side.")

# The paper's published figures (seeds/db-pim-paper.txt; numbers lost in text extraction are None).
PAPER = {
    "utilization_pct": {  # Tab. II, actual utilization of this work
        "alexnet": 85.04, "vgg19": 86.77, "resnet18": 86.29, "mobilenetv2": 81.38, "efficientnetb0": 78.44},
    "time_ms": {  # Tab. III, std/pw-conv and FC layers only: (DAC'24 [16], bit-level, hybrid)
        "alexnet": (8.63, 2.88, 1.69), "vgg19": (17.22, 4.37, 2.96), "resnet18": (21.77, 4.03, 2.60),
        "mobilenetv2": (18.20, 2.34, 1.64), "efficientnetb0": (2.51, 0.40, 0.30)},
    "bit_over_hybrid": {"alexnet": 1.70, "vgg19": 1.48, "resnet18": 1.55, "mobilenetv2": 1.43,
                        "efficientnetb0": 1.33},  # Tab. III bit-level / hybrid time
    "peak_tops": 2.48,  # Tab. II, 8b/8b, 32 macros
    "peak_gops_per_macro": 77.5,  # Tab. II
    "max_speedup": {"arXiv v1": 8.01, "DAC'24": 7.69},  # abstract, "up to"
    "max_energy_saving_pct": {"arXiv v1": 85.28, "DAC'24": 83.43},
    "freq_mhz": (333, 500),  # Tab. II
    "fig12_per_network": None,  # per-network speedups/energy of Fig. 12: not legible in the extracted text
    "fig13_time_shares": None,  # Fig. 13 execution-time percentages: lost in extraction
}


#: data names of the flow's built-in scikit-learn digits sets (model.torch.data)
DIGITS_DATA = ("digits", "digits32")


def _meta(net_or_meta) -> dict:
    return net_or_meta if isinstance(net_or_meta, dict) else net_or_meta.meta


def data_source(net_or_meta) -> str | None:
    """The data the network was trained on, as the artifact's meta records it (None: not recorded).

    ``meta.trained_on`` names the data of weights trained elsewhere (e.g. the CIFAR-10 CNN); ``meta.data``
    is the data the flow trained on.
    """
    meta = _meta(net_or_meta)
    d = meta.get("trained_on") or meta.get("data")
    return str(d) if d not in (None, "") else None


def network_note(net_or_meta) -> str:
    """What the network's weights are: untrained (or the Kaiming control of a trained network), trained
    elsewhere (``meta.trained_on``), trained on digits, on the user's data, or not recorded."""
    meta = _meta(net_or_meta)
    if meta.get("untrained") and meta.get("control_of"):
        return CONTROL_NOTE.format(of=meta["control_of"])
    if meta.get("untrained"):
        return UNTRAINED_NOTE
    if meta.get("trained_on"):
        return TRAINED_ON_NOTE.format(data=meta["trained_on"])
    data = data_source(meta)
    if data in DIGITS_DATA:
        return DIGITS_NOTE
    if data is None:
        return ("The artifact does not record the data its network was trained on (no `data` in its meta); "
                "weight and activation statistics (hence sparsity, phi and skipped input columns) are those of "
                "that unknown data, not of the paper's CIFAR-100.")
    return (f"Our network is trained on the user's data `{data}`, not on CIFAR-100 as in the paper; weight and "
            "activation statistics (hence sparsity, phi and skipped input columns) are those of that data.")


def weights_label(net_or_meta) -> str:
    """Short label of a network's weights for tables: ``untrained``, ``trained (<data>)`` or
    ``trained (data not recorded)``, from the artifact's meta."""
    meta = _meta(net_or_meta)
    if meta.get("untrained"):
        return "untrained"
    return f"trained ({data_source(meta) or 'data not recorded'})"


def paper_key(network: str) -> str:
    k = "".join(ch for ch in network.lower() if ch.isalnum())
    for name in PAPER["utilization_pct"]:
        if name in k:
            return name
    return k


def _f(v, nd=4):
    if isinstance(v, float):
        return float(f"{v:.{nd}g}") if math.isfinite(v) else v
    return v


def layer_rows(net: NetworkPerf) -> list[dict]:
    """One dict per layer, the CSV columns (units in the names)."""
    f = net.cfg.system.freq_mhz
    rows = []
    for lp in net.layers:
        s = lp.spec
        r = {"layer": s.name, "kind": s.kind, "type": lp.type, "op": s.op or "",
             "K [rows]": s.K if s.mapped else "", "N [filters]": s.N if s.mapped else "",
             "G [filters/group]": s.G if s.mapped else "",
             "vectors [per inference]": s.vectors if s.mapped else "",
             "samples [inferences]": s.samples if s.mapped else "",
             "inputs": ("recorded" if s.bits is not None else "none (no skipping credited)") if s.mapped else "",
             "phi_mean [digits/weight]": _f(float(np.mean(s.phi))) if s.mapped else "",
             "kept_rows [%]": _f(100.0 * float(np.mean(s.mask))) if s.mapped else "",
             "simd_ops [ops/inference]": s.simd_ops if not s.mapped else ""}
        for k in MECHANISMS:
            r[f"cycles_{k} [cycles]"] = _f(lp.cycles(k), 8)
        for k in MECHANISMS:
            r[f"macro_cycles_{k} [cycles]"] = _f(lp.mech[k].macro_cycles, 8) if s.mapped else ""
        for k in MECHANISMS:
            r[f"energy_{k} [pJ]"] = _f(lp.energy(k), 6)
        r["time_dbpim [us]"] = _f(lp.cycles("dbpim") / f, 6)
        r["time_dense [us]"] = _f(lp.cycles("dense") / f, 6)
        d = lp.cycles("dense")
        for k in MECHANISMS[1:]:
            c = lp.cycles(k)
            r[f"speedup_{k} [x]"] = _f(d / c) if c else ""
        e = lp.energy("dense")
        r["energy_saving_dbpim [%]"] = _f(100 * (1 - lp.energy("dbpim") / e)) if e else ""
        if s.mapped:
            md, mb = lp.mech["dense"], lp.mech["dbpim"]
            emd = sum(md.energy[c] for c in MACRO_COMPONENTS)
            r["energy_saving_macro_dbpim [%]"] = _f(100 * (1 - sum(mb.energy[c] for c in MACRO_COMPONENTS) / emd)) \
                if emd else ""
        else:
            r["energy_saving_macro_dbpim [%]"] = ""
        for k in ("dbpim", "dense"):
            r[f"utilization_{k} [%]"] = _f(100 * lp.mech[k].utilization) if s.mapped else ""
            r[f"utilization_compute_{k} [%]"] = _f(100 * lp.mech[k].utilization_compute) if s.mapped else ""
            r[f"utilization_system_{k} [%]"] = _f(100 * lp.mech[k].utilization_system) if s.mapped else ""
        for k in ("dbpim", "dense"):  # exact: the terms add up to cycles_<k>
            r.update({f"cycles_{t}_{k} [cycles]": v for t, v in lp.breakdown(k).items()})
        for k in ("dbpim", "dense"):
            mk = lp.mech.get(k)
            r[f"filter_tiles_{k} [tiles]"] = mk.filter_tiles if s.mapped else ""
            r[f"tiles_{k} [tiles]"] = mk.tiles if s.mapped else ""
            r[f"weight_load_{k} [cycles]"] = _f(mk.load_cycles, 6) if s.mapped else ""
            r[f"weight_bytes_{k} [B]"] = _f(mk.weight_bytes, 6) if s.mapped else ""
            r[f"result_stream_{k} [cycles]"] = _f(mk.stream_cycles, 6) if s.mapped else ""
            r[f"psum_chunks_{k} [chunks]"] = mk.psum_chunks if s.mapped else ""
        rows.append(r)
    return rows


def write_json(path: Path, doc, network: str | None = None) -> None:
    """Write ``doc`` as strict JSON (:func:`model.jsonio.dumps`); a non-finite number is a one-line
    :class:`BenchError` naming the network, the file and the key path."""
    try:
        text = jsonio.dumps(doc, what=Path(path).name)
    except jsonio.JsonError as e:
        raise BenchError(f"{network}: {e}" if network else str(e)) from None
    Path(path).write_text(text)


def _write_csv(path: Path, rows: list[dict]):
    """Write ``rows`` as CSV; a non-finite number is a one-line :class:`BenchError` naming the file, row and column."""
    for i, r in enumerate(rows):
        for k, v in r.items():
            if isinstance(v, (float, np.floating)) and not math.isfinite(v):
                raise BenchError(f"{Path(path).name}: row {i + 1} ({next(iter(r.values()), '')}): {k}: {v} is not a "
                                 "finite number")
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0].keys()) if rows else ["layer"])
        w.writeheader()
        w.writerows(rows)


def summary_of(net: NetworkPerf) -> dict:
    d = net.summary()
    d["weights"] = weights_label(net)
    d["untrained"] = bool(net.meta.get("untrained", False))
    d["speedup_by_mechanism"] = {k: net.speedup(k) for k in MECHANISMS}
    d["energy_by_component_dbpim [pJ]"] = _components(net, "dbpim")
    d["energy_by_component_dense [pJ]"] = _components(net, "dense")
    d["energy_constants"] = energy_constants(net.cfg)
    d["energy_sensitivity"] = net.tornado("dbpim")
    d["peak_geometry_for_paper"] = peak_geometry(net.cfg, PAPER["peak_tops"])
    d["config"] = net.cfg.to_dict()
    d["layers_without_inputs"] = layers_without_inputs(net)
    d["note"] = network_note(net)
    d["simd_ops"] = simd_op_rows(net)
    d["layer_notes"] = layer_notes(net)
    return d


def layers_without_inputs(net: NetworkPerf) -> list[str]:
    """Names of the mapped layers whose artifact recorded no input activations."""
    return [lp.spec.name for lp in net.mapped() if lp.spec.bits is None]


def inputs_note(nets: list[NetworkPerf]) -> list[str]:
    """Markdown lines stating, per network, the mapped layers evaluated without recorded inputs."""
    lines = []
    for n in nets:
        missing = layers_without_inputs(n)
        if missing:
            lines.append(f"**No recorded inputs** for {len(missing)} mapped layer(s) of {n.network} "
                         f"({', '.join(missing)}): every input bit column is counted as non-zero there, so no "
                         "input skipping is credited to them.")
    return [""] + lines if lines else []


def energy_constants(cfg) -> list[dict]:
    """Every energy constant with its value, the source of its default and whether it is assumed."""
    return [{"constant": k, "value": getattr(cfg.energy, k), "source": src, "assumed": a}
            for k, (src, a) in EnergyConfig.sources().items()]


def _components(net: NetworkPerf, mech: str) -> dict:
    return net.components(mech)


def _pct(v):
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{100 * v:.2f}%"


def _num(v, fmt: str, none: str = "n/a") -> str:
    return none if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, fmt)


def _ratio(a, b) -> str:
    return "n/a" if a is None or b is None or not b else f"{a / b:.3g}"


def _notes(nets: list[NetworkPerf]) -> list[str]:
    notes = []
    for n in nets:
        note = network_note(n)
        if note not in notes:
            notes.append(note)
    return [f"> {v}" for v in notes]


def _batch_reuse(nets) -> list[str]:
    """The batch-reuse table (:func:`sim_bench.perf.batch_reuse`) of the networks that have one."""
    rows = [n for n in nets if n.batch_reuse]
    if not rows:
        return []
    L = ["## Batch reuse: a loaded tile serves the samples of a batch", "",
         "Speedup (dense over DB-PIM, end to end) at this report's batch, at batch 1 and at the smallest batch of "
         "1, 2, 4, ... where no mapped layer's off-chip floor (its weight bytes / `dram_bytes_per_cycle`) exceeds "
         "its cycles with the tiles on chip, under the dense baseline or DB-PIM (docs/perf_model.md \"Batch\").",
         "",
         "| network | batch | speedup | at batch 1 | layers bound at batch 1 | floor stops binding at batch | "
         "speedup there |", "|---|---|---|---|---|---|---|"]
    for n in rows:
        r = n.batch_reuse
        sat = r["saturation_batch"]
        L.append(f"| {n.network} | {n.batch} | {n.speedup():.2f}x | {r['speedup_batch_1']:.2f}x | "
                 f"{len(r['bandwidth_bound_batch_1'])} | "
                 f"{sat if sat is not None else 'not within ' + str(r['search'][-1]['batch'])} | "
                 f"{_num(r['speedup_saturation'], '.2f')}{'x' if sat is not None else ''} |")
    return L + [""]


def _table3(nets) -> list[str]:
    f = nets[0].cfg.system.freq_mhz
    L = [f"## Tab. III: std/pw-conv and FC layers, bit-level vs. hybrid, ms at {f:g} MHz", "",
         "Bit-level = `bit_input` (FTA weights + IPU, all rows), hybrid = `dbpim`; time per inference of the layers "
         "on the macros (the paper's Tab. III scope).", "",
         "| network | weights | bit-level [ms] | paper [ms] | ratio | hybrid [ms] | paper [ms] | ratio | "
         "bit/hybrid | paper bit/hybrid |", "|---|---|---|---|---|---|---|---|---|---|"]
    for n in nets:
        k = paper_key(n.network)
        tb, th = n.time_us("bit_input", True) / 1e3, n.time_us("dbpim", True) / 1e3
        pt = PAPER["time_ms"].get(k)
        pb, ph = (pt[1], pt[2]) if pt else (None, None)
        L.append(f"| {n.network} | {weights_label(n)} | {tb:.4g} | {_num(pb, '.2f')} | {_ratio(tb, pb)} | "
                 f"{th:.4g} | {_num(ph, '.2f')} | {_ratio(th, ph)} | {_ratio(tb, th)} | "
                 f"{_num(PAPER['bit_over_hybrid'].get(k), '.2f')} |")
    return L


def _table2(nets) -> list[str]:
    L = ["## Tab. II: actual utilization U", "", U_CHOICE, ""]
    L += [f"* `{k}`: {v}." for k, v in UTILIZATIONS.items()]
    L += ["", "| network | weights | U_compute DB-PIM (compared) | paper | ratio | U cell level DB-PIM | "
          "U_system DB-PIM | U_compute dense | U cell level dense | U_system dense |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    for n in nets:
        uc, pu = 100 * n.utilization_compute(), PAPER["utilization_pct"].get(paper_key(n.network))
        L.append(f"| {n.network} | {weights_label(n)} | {uc:.2f}% | {_num(pu, '.2f')}{'%' if pu else ''} | "
                 f"{_ratio(uc, pu)} | {100 * n.utilization():.2f}% | {100 * n.utilization_system():.2f}% | "
                 f"{100 * n.utilization_compute('dense'):.2f}% | {100 * n.utilization('dense'):.2f}% | "
                 f"{100 * n.utilization_system('dense'):.2f}% |")
    return L


#: the mechanisms every cycle breakdown shows, with their labels
BREAKDOWN_MECHS = {"dbpim": "DB-PIM", "dense": "dense"}


def breakdown_rows(nets: list[NetworkPerf]) -> list[dict]:
    """One CSV row per (network, mechanism, term): cycles per inference and their share of the total."""
    rows = []
    for n in nets:
        for k in BREAKDOWN_MECHS:
            b, tot = n.breakdown(k), n.total_cycles(k)
            rows += [{"network": n.network, "weights": weights_label(n), "mechanism": k, "term": t,
                      "cycles [cycles/inference]": v, "share [%]": 100 * v / tot if tot else 0.0} for t, v in b.items()]
    return rows


def breakdown_markdown(nets: list[NetworkPerf], layers: bool = True) -> list[str]:
    """Where the cycles go: per network (and, with ``layers``, per layer) cycles by term, DB-PIM and dense."""
    L = ["## Where the cycles go", "",
         "Wall cycles per inference split into terms that add up exactly to the model's cycles (per layer: the "
         "busiest core's passes, `model.core_timing.pass_terms`, plus the off-chip floor; SIMD layers: the SIMD "
         "core):", ""]
    L += [f"* `{t}`: {CYCLE_TERM_LABELS[t]}" for t in CYCLE_TERMS]
    L += ["", "| network | weights | mechanism | total [cycles] | " + " | ".join(CYCLE_TERMS) + " |",
          "|---|---|---|---|" + "---|" * len(CYCLE_TERMS)]
    for n in nets:
        for k, lab in BREAKDOWN_MECHS.items():
            b, tot = n.breakdown(k), n.total_cycles(k)
            L.append(f"| {n.network} | {weights_label(n)} | {lab} | {tot:,.0f} | " + " | ".join(
                f"{b[t]:,.0f} ({100 * b[t] / tot if tot else 0:.1f}%)" for t in CYCLE_TERMS) + " |")
    if layers:
        for n in nets:
            for k, lab in BREAKDOWN_MECHS.items():
                L += ["", f"### {n.network}, {lab}: cycles per layer by term", "",
                      "| layer | type | total | " + " | ".join(CYCLE_TERMS) + " |",
                      "|---|---|---|" + "---|" * len(CYCLE_TERMS)]
                for lp in n.layers:
                    b = lp.breakdown(k)
                    L.append(f"| {lp.spec.name} | {lp.type} | {lp.cycles(k):,.0f} | "
                             + " | ".join(f"{b[t]:,.0f}" for t in CYCLE_TERMS) + " |")
    return L


def _peak(cfg) -> list[str]:
    m = cfg.macro
    g = peak_geometry(cfg, PAPER["peak_tops"])
    return ["## Peak throughput, 8b/8b (every bit column issued)", "",
            "| design | TOPS | MACs per cycle per macro |", "|---|---|---|",
            f"| ours, phi = 1 ({m.n_col} filters per macro) | {peak_tops(cfg, 1):.3f} | "
            f"{g['ours_mac_per_cycle_per_macro']:g} |",
            f"| ours, phi = {m.phi_max} | {peak_tops(cfg, m.phi_max):.3f} | "
            f"{g['ours_mac_per_cycle_per_macro'] / m.phi_max:g} |",
            f"| dense baseline (8 bit planes) | {peak_tops(cfg, dense=True):.3f} | "
            f"{m.n_comp * m.n_col / (8 * m.in_bits):g} |",
            f"| paper Tab. II | {PAPER['peak_tops']:.2f} | {g['mac_per_cycle_per_macro']:.1f} |", "",
            f"The paper's {PAPER['peak_tops']} TOPS over {cfg.n_macros} macros at {cfg.system.freq_mhz:g} MHz needs "
            f"{g['mac_per_cycle_per_macro']:.1f} MACs per cycle per macro; a bit-serial macro gives "
            f"n_comp x n_col / (in_bits x phi), so it needs n_comp x n_col >= {g['n_comp_x_n_col']:.0f} at phi = 1 "
            f"(e.g. {', '.join(g['examples'])}); ours is {m.n_comp} x {m.n_col} x {m.n_row}."]


def _energy(nets) -> list[str]:
    L = ["## Energy saving over the dense baseline: system and macro", "",
         "`energy_saving` counts every component (macro, switch, buffers, weight load, static, SIMD core); "
         "`energy_saving_macro` only the macros (array, adder trees, accumulators, IPU).", "",
         "| network | weights | energy_saving (system) | energy_saving_macro | speedup end to end | "
         "speedup mapped |", "|---|---|---|---|---|---|"]
    for n in nets:
        L.append(f"| {n.network} | {weights_label(n)} | {_pct(n.energy_saving())} | {_pct(n.energy_saving_macro())} "
                 f"| {n.speedup():.2f}x | {n.speedup('dbpim', True):.2f}x |")
    cons = energy_constants(nets[0].cfg)
    L += ["", "Energy constants (pJ per event; static in mW); **assumed** = no published figure behind the default:",
          "", "| constant | value | source | |", "|---|---|---|---|"]
    L += [f"| {c['constant']} | {c['value']:g} | {c['source']} | {'**assumed**' if c['assumed'] else ''} |"
          for c in cons]
    L += ["", "Sensitivity of the system saving (DB-PIM) to each assumed constant halved / doubled "
          "(`energy_tornado.png`):", "", "| network | constant | x0.5 | base | x2 |", "|---|---|---|---|---|"]
    for n in nets:
        for r in n.tornado("dbpim"):
            L.append(f"| {n.network} | {r['constant']} | {_pct(r['saving@0.5'])} | {_pct(r['base'])} | "
                     f"{_pct(r['saving@2'])} |")
    return L


def markdown(nets: list[NetworkPerf]) -> str:
    """Our figures next to the paper's published ones."""
    cfg = nets[0].cfg
    L = ["# DB-PIM performance model vs. the paper", ""] + _notes(nets) + [
        "", f"Hardware: `{cfg.name}` ({cfg.system.cores} PIM cores x {cfg.system.macros_per_core} macros, "
        f"{cfg.pim_bytes // 1024} KiB PIM, {cfg.macro.n_comp} x {cfg.macro.n_col} x {cfg.macro.n_row} macros, "
        f"switch {cfg.macro.lanes} lanes"
        + (f" x {cfg.core.in_windows} input windows a beat" if cfg.core.in_windows > 1 else "")
        + (f", {cfg.core.result_lanes} results a beat" if cfg.core.result_lanes > 1 else "")
        + f", {cfg.system.freq_mhz:g} MHz; paper Tab. II: 333-500 MHz, 16 KB PIM, "
        "32 macros). Every limit of docs/perf_model.md is modelled.", "",
        f"Batch: {', '.join(sorted({str(n.batch) for n in nets}))} sample(s) per loaded tile (every figure below is "
        "per inference at this batch, the dense baseline's too).", ""]
    L += _batch_reuse(nets) + _table3(nets) + inputs_note(nets) + [""] + _table2(nets) + [""]
    L += breakdown_markdown(nets, len(nets) == 1) + [""] + _peak(cfg) + [""] + _energy(nets)
    best_s = max(n.speedup() for n in nets)
    best_e = max(n.energy_saving() for n in nets)
    L += ["", "## Headline figures (paper abstract: \"up to\")", "",
          "| figure | ours (max over networks) | arXiv v1 | ratio | DAC'24 | ratio |", "|---|---|---|---|---|---|",
          f"| speedup | {best_s:.2f}x | 8.01x | {best_s / 8.01:.3f} | 7.69x | {best_s / 7.69:.3f} |",
          f"| energy saving | {100 * best_e:.2f}% | 85.28% | {100 * best_e / 85.28:.3f} | 83.43% | "
          f"{100 * best_e / 83.43:.3f} |", "",
          "## Fig. 12: speedup by mechanism (end to end; the paper's per-network bars are not legible "
          "in the extracted text)", "",
          "| network | weights | " + " | ".join(MECH_LABELS[k] for k in MECHANISMS[1:]) + " |",
          "|---|---|" + "---|" * (len(MECHANISMS) - 1)]
    for n in nets:
        L.append(f"| {n.network} | {weights_label(n)} | " + " | ".join(
            f"{n.speedup(k):.2f}x / {_pct(n.energy_saving(k))}" for k in MECHANISMS[1:]) + " |")
    L += ["", "Cells: speedup / system energy saving over the dense digital PIM baseline.", "",
          "## Fig. 13: execution time by layer type, DB-PIM (the paper's percentages were lost in extraction)", ""]
    types = sorted({t for n in nets for t in n.time_by_type()})
    L += ["| network | " + " | ".join(types) + " |", "|---|" + "---|" * len(types)]
    for n in nets:
        tt = n.time_by_type()
        tot = sum(tt.values()) or 1.0
        L.append(f"| {n.network} | " + " | ".join(f"{100 * tt.get(t, 0) / tot:.1f}%" for t in types) + " |")
    L += explain_markdown(nets)
    L += ["", "Missing from the paper text (lost in extraction): Fig. 11/12 bar values, Fig. 13 percentages, "
          "the buffer sizes of Sec. VI-A. Model: docs/perf_model.md (core timing, system limits, utilization, "
          "energy sources).", ""]
    return "\n".join(L)


# ---------------------------------------------------------------- plots

def plot_mechanisms(nets: list[NetworkPerf], path: Path):
    """Speedup and energy saving per network broken down by mechanism (Fig. 12 style)."""
    plt = _plt()
    mechs = MECHANISMS[1:]
    fig, axes = plt.subplots(1, 2, figsize=(max(10, 2.2 * len(nets) + 6), 4))
    x = np.arange(len(nets))
    wdt = 0.8 / len(mechs)
    for i, k in enumerate(mechs):
        axes[0].bar(x + i * wdt, [n.speedup(k) for n in nets], wdt, label=MECH_LABELS[k])
        axes[1].bar(x + i * wdt, [100 * n.energy_saving(k) for n in nets], wdt, label=MECH_LABELS[k])
    for ax, t in zip(axes, ("speedup over dense PIM [x]", "energy saving [%]")):
        ax.set_xticks(x + 0.4 - wdt / 2)
        ax.set_xticklabels([n.network for n in nets], rotation=20)
        ax.set_ylabel(t)
        ax.grid(axis="y", alpha=0.3)
    axes[0].axhline(1, color="k", lw=0.5)
    legend_outside(axes[1])
    fig.suptitle("End to end, by sparsity mechanism")
    save_figure(fig, path)


def plot_time_breakdown(nets: list[NetworkPerf], path: Path):
    """Execution time by layer type, DB-PIM and dense baseline (Fig. 13 style)."""
    plt = _plt()
    types = sorted({lp.type for n in nets for lp in n.layers})
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(nets) + 3), 4))
    labels, bottoms = [], None
    cols = []
    for n in nets:
        for mech in ("dbpim", "dense"):
            labels.append(f"{n.network}\n{'DB-PIM' if mech == 'dbpim' else 'dense'}")
            tt = n.time_by_type(mech)
            tot = sum(tt.values()) or 1.0
            cols.append([100 * tt.get(t, 0) / tot for t in types])
    cols = np.array(cols)
    bottoms = np.zeros(len(labels))
    for j, t in enumerate(types):
        ax.bar(np.arange(len(labels)), cols[:, j], bottom=bottoms, label=t)
        bottoms += cols[:, j]
    ax.set_xticks(np.arange(len(labels)))
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel("share of execution time [%]")
    legend_outside(ax)
    ax.set_title("Execution time by layer type")
    save_figure(fig, path)


def _term_colors() -> dict:
    """One fixed colour per cycle term (the same in every breakdown plot)."""
    import matplotlib
    cmap = matplotlib.colormaps["tab10"]
    return {t: cmap(i % 10) for i, t in enumerate(CYCLE_TERMS)}


def _stacked(ax, labels, values, colors, legend: bool = True):
    """Stacked bars of ``values`` (bars x terms, cycles) labelled ``labels``."""
    bottom = np.zeros(len(labels))
    for j, t in enumerate(CYCLE_TERMS):
        ax.bar(np.arange(len(labels)), values[:, j], bottom=bottom, color=colors[t], label=t if legend else None)
        bottom += values[:, j]
    ax.set_xticks(np.arange(len(labels)))


def plot_cycle_breakdown(nets: list[NetworkPerf], path: Path):
    """Cycles per inference of each network by term, stacked, DB-PIM and dense side by side (exact split)."""
    plt = _plt()
    colors = _term_colors()
    labels = [f"{n.network}\n{lab}" for n in nets for lab in BREAKDOWN_MECHS.values()]
    vals = np.array([[n.breakdown(k)[t] for t in CYCLE_TERMS] for n in nets for k in BREAKDOWN_MECHS]) / 1e3
    fig, ax = plt.subplots(figsize=(max(5, 1.4 * len(labels) + 3), 4))
    _stacked(ax, labels, vals, colors)
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel("cycles per inference [kcycles]")
    ax.grid(axis="y", alpha=0.3)
    legend_outside(ax)
    ax.set_title("Where the cycles go, by term")
    save_figure(fig, path)


def plot_layer_breakdown(net: NetworkPerf, path: Path):
    """One network: its cycles by term per layer (stacked), DB-PIM above the dense baseline, and the totals."""
    plt = _plt()
    colors = _term_colors()
    names = [lp.spec.name for lp in net.layers]
    fig, axes = plt.subplots(2, 2, figsize=(max(7, 0.3 * len(names) + 5), 7), squeeze=False,
                             gridspec_kw={"width_ratios": [1, max(2, 0.25 * len(names))]})
    gs = axes[0, 0].get_gridspec()
    for ax in axes[:, 0]:
        ax.remove()
    tot_ax = fig.add_subplot(gs[:, 0])
    labs = list(BREAKDOWN_MECHS.values())
    _stacked(tot_ax, labs, np.array([[net.breakdown(k)[t] for t in CYCLE_TERMS] for k in BREAKDOWN_MECHS]) / 1e3,
             colors, legend=False)
    tot_ax.set_xticklabels(labs, fontsize=8)
    tot_ax.set_ylabel("cycles per inference [kcycles]")
    tot_ax.set_title("network", fontsize=9)
    for ax, (k, lab) in zip(axes[:, 1], BREAKDOWN_MECHS.items()):
        _stacked(ax, names, np.array([[lp.breakdown(k)[t] for t in CYCLE_TERMS] for lp in net.layers]) / 1e3,
                 colors, legend=ax is axes[0, 1])
        ax.set_xticklabels(names, rotation=90, fontsize=6)
        ax.set_ylabel(f"{lab} [kcycles]")
        ax.grid(axis="y", alpha=0.3)
    axes[0, 1].set_title("per layer", fontsize=9)
    legend_outside(axes[0, 1])
    fig.suptitle(f"{net.network}: where the cycles go (terms add up to each bar's cycles)")
    save_figure(fig, path)


def plot_tornado(net: NetworkPerf, path: Path, mech: str = "dbpim"):
    """System energy saving with each assumed energy constant halved and doubled (a tornado plot)."""
    plt = _plt()
    rows = net.tornado(mech)
    fig, ax = plt.subplots(figsize=(7, 0.45 * max(3, len(rows)) + 1.5))
    base = 100 * net.energy_saving(mech)
    y = np.arange(len(rows))[::-1]
    for yi, r in zip(y, rows):
        lo, hi = 100 * r["saving@0.5"], 100 * r["saving@2"]
        ax.barh(yi, lo - base, left=base, color="tab:blue", label="constant x 0.5" if yi == y[0] else None)
        ax.barh(yi, hi - base, left=base, color="tab:orange", label="constant x 2" if yi == y[0] else None)
    ax.axvline(base, color="k", lw=1)
    ax.set_yticks(y)
    ax.set_yticklabels([f"{r['constant']} = {r['value']:g}" for r in rows], fontsize=7)
    ax.set_xlabel("system energy saving over the dense baseline [%]")
    legend_outside(ax)
    ax.set_title(f"{net.network}: sensitivity to the assumed energy constants (base {base:.1f}%)")
    save_figure(fig, path)


def _plot_layers(net: NetworkPerf, out: Path) -> list[Path]:
    plt = _plt()
    mapped = net.mapped()
    names = [lp.spec.name for lp in mapped]
    x = np.arange(len(names))
    paths = []
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(names) + 3), 4))
    mechs = ("bit", "value", "input", "dbpim")
    wdt = 0.8 / len(mechs)
    for i, k in enumerate(mechs):
        # a layer that takes no cycles under k (every weight pruned) has no speedup: no bar, not a 1e9x one
        ax.bar(x + i * wdt, [lp.mech["dense"].wall_cycles / lp.mech[k].wall_cycles if lp.mech[k].wall_cycles > 0
                             else np.nan for lp in mapped], wdt, label=MECH_LABELS[k])
    ax.set_xticks(x + 0.4 - wdt / 2)
    ax.set_xticklabels(names, rotation=90, fontsize=7)
    ax.set_ylabel("speedup over dense PIM [x]")
    ax.axhline(1, color="k", lw=0.5)
    legend_outside(ax)
    ax.set_title(f"{net.network}: per-layer speedup (wall cycles)")
    paths.append(save_figure(fig, out / "layer_speedup.png"))

    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(names) + 3), 4))
    for i, (k, u, lab) in enumerate((("dbpim", "utilization", "DB-PIM, cell level"),
                                     ("dbpim", "utilization_compute", "DB-PIM, compute cycles"),
                                     ("dbpim", "utilization_system", "DB-PIM, system"),
                                     ("dense", "utilization", "dense PIM, cell level"),
                                     ("dense", "utilization_compute", "dense PIM, compute cycles"),
                                     ("dense", "utilization_system", "dense PIM, system"))):
        ax.bar(x - 0.375 + 0.15 * i, [100 * getattr(lp.mech[k], u) for lp in mapped], 0.15, label=lab)
    pu = PAPER["utilization_pct"].get(paper_key(net.network))
    if pu:
        ax.axhline(pu, color="r", ls="--", lw=1, label=f"paper Tab. II ({pu}%)")
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=90, fontsize=7)
    ax.set_ylabel("utilization U [%]")
    ax.set_ylim(0, 105)
    legend_outside(ax)
    ax.set_title(f"{net.network}: utilization (Eq. 2), network {100 * net.utilization_compute():.1f}% compute "
                 f"cycles, {100 * net.utilization_system():.1f}% system, {100 * net.utilization():.1f}% cell level")
    paths.append(save_figure(fig, out / "utilization.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    comps = {m: _components(net, m) for m in ("dense", "dbpim")}
    keys = sorted({k for c in comps.values() for k in c})
    bottom = np.zeros(2)
    for k in keys:
        v = np.array([comps["dense"].get(k, 0), comps["dbpim"].get(k, 0)]) / 1e6
        ax.bar([0, 1], v, bottom=bottom, label=k)
        bottom += v
    ax.set_xticks([0, 1])
    ax.set_xticklabels(["dense PIM", "DB-PIM"])
    ax.set_ylabel("energy per inference [µJ]")
    legend_outside(ax)
    ax.set_title(f"{net.network}: energy by component")
    paths.append(save_figure(fig, out / "energy_breakdown.png"))
    return paths


def write_report(net: NetworkPerf, out: Path, plots: bool = True) -> dict:
    """Write CSV, JSON, Markdown and plots of one evaluated network into ``out`` (an existing directory)."""
    out = Path(out)
    _write_csv(out / "layers.csv", layer_rows(net))
    summ = summary_of(net)
    write_json(out / "summary.json", summ, net.network)
    (out / "summary.md").write_text(markdown([net]))
    paths = []
    if plots:
        plot_mechanisms([net], out / "mechanisms.png")
        plot_time_breakdown([net], out / "time_breakdown.png")
        plot_tornado(net, out / "energy_tornado.png")
        plot_layer_breakdown(net, out / "cycle_breakdown.png")
        paths = [out / "mechanisms.png", out / "time_breakdown.png", out / "energy_tornado.png",
                 out / "cycle_breakdown.png"] + _plot_layers(net, out)
    summ["plots"] = [p.name for p in paths]
    return summ


def check_macro(art, cfg) -> None:
    """Refuse a configuration whose macro is not the artifact's compiled one (one-line :class:`BenchError`).

    The switch (``lanes``) is outside the macro and does not shape the tiles:
    any lane count evaluates an artifact.
    """
    diff = ", ".join(f"{k}={getattr(art.macro, k)} vs {getattr(cfg.macro, k)}"
                     for k in art.macro.to_dict() if k != "lanes" and getattr(art.macro, k) != getattr(cfg.macro, k))
    if diff:
        raise BenchError(f"hw: {cfg.name}: macro: must match the artifact's compiled macro ({diff})")
    if not art.mapped_layers():
        raise BenchError(f"{art.path}: layers: no mapped layer (conv2d or linear), nothing to report")


def evaluate_with_batch_reuse(art, cfg, batch: int = 1) -> NetworkPerf:
    """A loaded artifact evaluated on ``cfg`` at ``batch``, with its :func:`sim_bench.perf.batch_reuse` figures."""
    specs = specs_from_artifact(art)
    net = evaluate_network(specs, cfg, network=art.network, meta=art.meta, batch=batch)
    net.batch_reuse = batch_reuse(specs, cfg, art.network)
    return net


def evaluate_artifact(art, cfg, batch: int = 1) -> dict:
    """The performance summary (:func:`summary_of`) of a loaded artifact on ``cfg`` at ``batch``; writes nothing."""
    check_macro(art, cfg)
    return summary_of(evaluate_with_batch_reuse(art, cfg, batch))


def run_report(art, hw, out="build/bench", plots: bool = True, batch: int = 1) -> dict:
    """Evaluate a loaded artifact on ``hw`` and write its report into ``out``; returns the JSON summary.

    Parameters
    ----------
    art : model.artifact.Artifact
    hw : model.config.HwConfig
    batch : int
        Samples per loaded tile (``model.limits.BATCH``; :func:`sim_bench.perf.evaluate_network`).

    Raises
    ------
    BenchError
        A configuration whose macro is not the artifact's (one line).
    model.outdir.OutputError
        An ``out`` that cannot be written without losing data (one line).
    """
    check_macro(art, hw)
    inputs = [p for p in (art.path, hw.path) if p]
    check_output(out, "dbpim bench", inputs)  # refuse before the long part
    net = evaluate_with_batch_reuse(art, hw, batch)
    from dbpim.sim_bench.chip_cycles import chip_summary
    net.chip = chip_summary(art, hw)  # the chip end to end, on its own configuration
    with output_dir(out, "dbpim bench", inputs) as tmp:
        summ = write_report(net, tmp, plots=plots)
    return summ


def format_summary(s: dict) -> str:
    m = s["mechanisms"]
    lines = [f"{s['network']} ({s['weights']}) on {s['hw']}: speedup {s['speedup']:.2f}x end to end "
             f"({s['speedup_mapped']:.2f}x on the macros' layers), energy saving {100 * s['energy_saving']:.1f}% "
             f"(macros {100 * s['energy_saving_macro']:.1f}%), utilization {100 * s['utilization_compute']:.1f}% "
             f"over compute cycles / {100 * s['utilization_system']:.1f}% system / {100 * s['utilization']:.1f}% "
             f"cell level (dense {100 * s['utilization_compute_dense']:.1f}% / "
             f"{100 * s['utilization_system_dense']:.1f}% / {100 * s['utilization_dense']:.1f}%), "
             f"peak {s['peak_tops']:.2f} TOPS",
             "  by mechanism: " + ", ".join(f"{k} {m[k]['speedup']:.2f}x" for k in MECHANISMS[1:]),
             f"  time per inference: DB-PIM {s['time_dbpim [us]']:.3f} us, dense {s['time_dense [us]']:.3f} us "
             f"(batch {s['batch']})"]
    if s.get("batch_reuse"):
        lines.append("  " + batch_reuse_line(s["batch_reuse"]))
    ch = s.get("chip")
    if ch and "skipped" not in ch:
        lines.append(f"  the chip end to end (its own configuration, model.chip_timing): "
                     f"{ch['cycles_per_inference']:,.0f} cycles per inference (mean of {ch['samples']} recorded "
                     "samples)")
    elif ch:
        lines.append(f"  the chip end to end: skipped ({ch['skipped']})")
    lines += format_breakdown(s)
    lines += format_notes(s)
    return "\n".join(lines)


def format_breakdown(s: dict) -> list[str]:
    """The printed table of a summary's network cycle breakdown (``summary["cycle_breakdown"]``)."""
    cb = s.get("cycle_breakdown")
    if not cb:
        return []
    mechs = [k for k in BREAKDOWN_MECHS if k in cb]
    head = ["cycles per inference"] + [x for k in mechs for x in (BREAKDOWN_MECHS[k], "%")]
    body = []
    for t in list(CYCLE_TERMS) + ["total"]:
        row = [t]
        for k in mechs:
            tot = cb[k]["total [cycles]"]
            v = tot if t == "total" else cb[k]["network [cycles]"][t]
            row += [f"{v:,.0f}", f"{100 * v / tot if tot else 0:.1f}"]
        body.append(row)
    width = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]
    return ["  " + "  ".join(x.ljust(w) if i == 0 else x.rjust(w) for i, (x, w) in enumerate(zip(r, width)))
            for r in [head] + body]


def batch_reuse_line(r: dict) -> str:
    """One line of :func:`sim_bench.perf.batch_reuse` figures."""
    head = f"batch reuse: speedup {r['speedup_batch_1']:.2f}x at batch 1"
    if r["saturation_batch"] is None:
        return (f"{head}; the off-chip floor still binds at batch {r['search'][-1]['batch']} "
                f"({', '.join(r['search'][-1]['bandwidth_bound_layers'])})")
    return (f"{head}, {r['speedup_saturation']:.2f}x at batch {r['saturation_batch']}, the smallest batch of "
            "1, 2, 4, ... where the off-chip floor binds no layer")


def format_notes(s: dict) -> list[str]:
    """The printed lines of a summary's SIMD operations and per-layer notes (``dbpim bench`` output)."""
    out = []
    ops = s.get("simd_ops") or []
    if ops:
        out.append("  SIMD core: " + ", ".join(f"{r['op']} {r['simd_ops [lane ops/inference]']:,} lane ops "
                                                f"({r['cost [lane ops/element]']}/element, "
                                                f"{r['share_of_time_dbpim [%]']:.1f}% of the time)" for r in ops))
    notes = s.get("layer_notes") or []
    for n in notes:
        if n["kind"] != "signed_inputs":
            out.append(f"  note: {n['layer']}: {n['note']}")
    signed = [n for n in notes if n["kind"] == "signed_inputs"]
    if signed:
        out.append("  note: input skipping on signed inputs: " + ", ".join(
            f"{n['layer']} {n['speedup_input [x]']:.2f}x" for n in signed) + f" ({SIGNED_SKIP_WHY})")
    return out


def demo(art, hw, out="build/demo/bench") -> list[Path]:
    """For ``make demo``: print the performance summary of a loaded artifact, return the plot paths."""
    summ = run_report(art, hw, out)
    print(format_summary(summ))
    return [Path(out) / p for p in summ["plots"]]

"""``dbpim bench-paper``: the paper's tables and figures over several artifacts, side by side.

    dbpim bench-paper --artifacts <dir> [<dir> ...] [--fig11 <dir> ...] [--hw paper] --out <dir>
    dbpim bench-paper --root <dir-of-artifacts> [--hw paper] --out <dir>

Writes ``<out>/<network>/`` (the per-network report of ``dbpim bench``) and, at
the top:

* ``table3.csv``: bit-level and hybrid time of the std/pw-conv and FC layers
  at the configured clock, their ratio, next to the paper's Tab. III;
* ``table2.csv``: utilization (over compute cycles, the one compared; system and cell level) next to Tab. II;
* ``breakdown.csv`` / ``cycle_breakdown.png``: each network's cycles per inference by term
  (:data:`sim_bench.perf.CYCLE_TERMS`, adding up to its total), DB-PIM and dense;
* ``fig11.csv`` / ``fig11.png``: speedup and energy saving of the weight
  sparsity alone (value + bit level, input skipping off, std/pw-conv and FC
  layers only) at block sparsities 0/25/50/75 %, re-pruned from the float
  weights of the ``--fig11`` artifacts (Ray tasks, like ``dbpim sweep``);
* ``fig12.csv`` / ``fig12.png``: speedup and energy saving by mechanism, end to end;
* ``weights.csv``: per mapped layer, filters by phi, int8 weights by non-zero
  CSD digits and the share of zero CSD digits before and after pruning + FTA
  (:mod:`sim_bench.weight_stats`: trained next to untrained weights);
* ``networks.csv``, ``summary.json`` (per-network summaries, the Fig. 11
  rows and the weight statistics), ``summary.md`` (our figures next to the paper's, with ratios),
  ``time_breakdown.png`` (Fig. 13 style).

Untrained networks (artifact ``meta.untrained``) are labelled so in every output.
All of it is staged next to ``--out`` and moved in only on success
(:func:`model.outdir.output_dir`; a folder holding other files is refused).
"""

from __future__ import annotations

from pathlib import Path

from dbpim.model.outdir import check_output, output_dir
from dbpim.model.plots import legend_outside, pyplot, save_figure
from dbpim.sim_bench.perf import MECHANISMS
from dbpim.sim_bench.report import (PAPER, BenchError, _write_csv, breakdown_rows, check_macro,
                                    evaluate_with_batch_reuse, format_summary, markdown, paper_key,
                                    plot_cycle_breakdown, plot_mechanisms, plot_time_breakdown,
                                    weights_label, write_json, write_report)
from dbpim.sim_bench.weight_stats import network_weight_stats, weight_stats_markdown

__all__ = ["run_paper", "network_row", "table3_rows", "table2_rows", "fig11_rows", "fig12_rows",
           "FIG11_SPARSITY"]

#: Fig. 11's weight sparsities (fraction of pruned blocks)
FIG11_SPARSITY = (0.0, 0.25, 0.5, 0.75)


def network_row(net) -> dict:
    r = {"network": net.network, "weights": weights_label(net), "batch": net.batch, "speedup [x]": net.speedup(),
         "energy_saving [%]": 100 * net.energy_saving(), "energy_saving_macro [%]": 100 * net.energy_saving_macro(),
         "utilization [%]": 100 * net.utilization(), "utilization_compute [%]": 100 * net.utilization_compute(),
         "utilization_system [%]": 100 * net.utilization_system(),
         "utilization_dense [%]": 100 * net.utilization("dense"),
         "utilization_compute_dense [%]": 100 * net.utilization_compute("dense"),
         "utilization_system_dense [%]": 100 * net.utilization_system("dense"),
         "speedup_mapped [x]": net.speedup("dbpim", True),
         "time_dbpim [us]": net.time_us("dbpim"), "time_dense [us]": net.time_us("dense"),
         "time_mapped_dbpim [us]": net.time_us("dbpim", True),
         "time_mapped_bit_input [us]": net.time_us("bit_input", True),
         "energy_dbpim [pJ]": net.total_energy("dbpim"), "energy_dense [pJ]": net.total_energy("dense")}
    for k in MECHANISMS[1:]:
        r[f"speedup_{k} [x]"] = net.speedup(k)
        r[f"energy_saving_{k} [%]"] = 100 * net.energy_saving(k)
    if net.batch_reuse:
        b = net.batch_reuse
        r["speedup_batch_1 [x]"] = b["speedup_batch_1"]
        r["saturation_batch"] = "" if b["saturation_batch"] is None else b["saturation_batch"]
        r["speedup_saturation [x]"] = "" if b["speedup_saturation"] is None else b["speedup_saturation"]
    return r


def table3_rows(nets) -> list[dict]:
    """Tab. III side by side: bit-level (``bit_input``) and hybrid (``dbpim``) time of the mapped layers."""
    f = nets[0].cfg.system.freq_mhz if nets else 0
    rows = []
    for n in nets:
        k = paper_key(n.network)
        pt = PAPER["time_ms"].get(k)
        tb, th = n.time_us("bit_input", True) / 1e3, n.time_us("dbpim", True) / 1e3
        rows.append({"network": n.network, "weights": weights_label(n), "clock [MHz]": f,
                     "bit_level [ms]": tb, "paper_bit_level [ms]": pt[1] if pt else "",
                     "hybrid [ms]": th, "paper_hybrid [ms]": pt[2] if pt else "",
                     "bit_over_hybrid [x]": tb / th if th else "",
                     "paper_bit_over_hybrid [x]": PAPER["bit_over_hybrid"].get(k, "")})
    return rows


def table2_rows(nets) -> list[dict]:
    """Tab. II side by side: utilization over compute cycles (the one compared), system and cell level."""
    return [{"network": n.network, "weights": weights_label(n),
             "utilization_compute [%]": 100 * n.utilization_compute(),
             "paper_utilization [%]": PAPER["utilization_pct"].get(paper_key(n.network), ""),
             "utilization_system [%]": 100 * n.utilization_system(), "utilization [%]": 100 * n.utilization(),
             "utilization_compute_dense [%]": 100 * n.utilization_compute("dense"),
             "utilization_system_dense [%]": 100 * n.utilization_system("dense")} for n in nets]


def fig12_rows(nets) -> list[dict]:
    """Fig. 12: speedup and system energy saving of every mechanism, end to end."""
    return [{"network": n.network, "weights": weights_label(n), "mechanism": k,
             "speedup [x]": n.speedup(k), "energy_saving [%]": 100 * n.energy_saving(k),
             "energy_saving_macro [%]": 100 * n.energy_saving_macro(k)} for n in nets for k in MECHANISMS[1:]]


def fig11_rows(artifacts, cfg, sparsities=FIG11_SPARSITY, engine: str = "ray", workers: int = 2,
               address: str | None = None, progress: bool = True, labels: dict | None = None) -> list[dict]:
    """Fig. 11: value + bit-level weight sparsity, input skipping off, std/pw-conv and FC layers only."""
    from dbpim.sim_bench.sweep import run_points
    m = cfg.macro
    pts = [(str(a), cfg, float(s), m.phi_max, (m.n_comp, m.n_col, m.n_row))
           for a in artifacts for s in sparsities]
    out = []
    for p, r in zip(pts, run_points(pts, engine, workers, address, progress)):
        out.append({"network": r["network"], "weights": (labels or {}).get(p[0], ""),
                    "sparsity [fraction of blocks]": r["sparsity [fraction of blocks]"],
                    "speedup [x]": r["speedup_weight_mapped [x]"],
                    "energy_saving [%]": r["energy_saving_weight_mapped [%]"],
                    "float_weights": r["float_weights"]})
    return out


def _plot_fig11(rows, path):
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name in dict.fromkeys(r["network"] for r in rows):
        rr = sorted((r for r in rows if r["network"] == name), key=lambda r: r["sparsity [fraction of blocks]"])
        x = [100 * r["sparsity [fraction of blocks]"] for r in rr]
        lab = f"{name} ({rr[0]['weights']})" if rr[0]["weights"] else name
        axes[0].plot(x, [r["speedup [x]"] for r in rr], marker="o", label=lab)
        axes[1].plot(x, [r["energy_saving [%]"] for r in rr], marker="o", label=lab)
    for ax, t in zip(axes, ("speedup over dense PIM [x]", "energy saving [%]")):
        ax.set_xlabel("block (weight) sparsity [%]")
        ax.set_ylabel(t)
        ax.grid(alpha=0.3)
    legend_outside(axes[-1])
    fig.suptitle("Fig. 11: value + bit-level weight sparsity, input skipping off, std/pw-conv and FC layers")
    save_figure(fig, path)


def _fig11_markdown(rows) -> list[str]:
    if not rows:
        return []
    L = ["## Fig. 11: weight sparsity alone (input skipping off, std/pw-conv and FC layers, batch 1)", "",
         "| network | weights | block sparsity | speedup | energy saving | float weights |", "|---|---|---|---|---|---|"]
    L += [f"| {r['network']} | {r['weights']} | {100 * r['sparsity [fraction of blocks]']:.0f}% | "
          f"{r['speedup [x]']:.2f}x | {r['energy_saving [%]']:.1f}% | {r['float_weights']} |" for r in rows]
    return L + ["", "The paper's Fig. 11 bar values are not legible in the extracted text; its prose: VGG19 "
                "reaches the highest speedup, at 0 % sparsity the speedup is about 4x or more (phi = 1 filters), "
                "ResNet18 and MobileNetV2 gain less.", ""]


def run_paper(arts, hw, out="build/paper", plots: bool = True, verbose: bool = True,
              fig11=(), fig11_sparsity=FIG11_SPARSITY, engine: str = "ray", workers: int = 2,
              address: str | None = None, batch: int = 1) -> list[dict]:
    """Evaluate several loaded artifacts on ``hw`` and write the combined report; returns the per-network summaries.

    Parameters
    ----------
    arts : list of model.artifact.Artifact
        The networks of the tables (distinct network names).
    hw : model.config.HwConfig
    fig11 : list of model.artifact.Artifact
        Networks (with float weights) re-pruned at ``fig11_sparsity`` for Fig. 11 (at batch 1).
    batch : int
        Samples per loaded tile of the tables (``model.limits.BATCH``), the dense baseline's too; every
        network's report adds its speedup at batch 1 and at the batch where the off-chip floor stops
        binding (:func:`sim_bench.perf.batch_reuse`).
    """
    from dbpim.model import limits
    if not arts:
        raise BenchError("artifacts: give at least one artifact")
    for a in list(arts) + list(fig11):
        check_macro(a, hw)
    names = [a.network for a in arts]
    if len(set(names)) != len(names):
        raise BenchError(f"network names must be distinct, got {', '.join(names)}")
    fig11_sparsity = [limits.SPARSITY_CLOSED.check("fig11_sparsity", s, exc=BenchError) for s in fig11_sparsity]
    batch = limits.BATCH.check("batch", batch, BenchError)
    labels = {str(a.path): weights_label(a.meta) for a in fig11}
    inputs = list(dict.fromkeys([str(a.path) for a in list(arts) + list(fig11) if a.path]))
    inputs += [hw.path] if hw.path else []
    check_output(out, "dbpim bench-paper", inputs)  # refuse before the long part
    nets = [evaluate_with_batch_reuse(art, hw, batch) for art in arts]
    f11 = fig11_rows([a.path for a in fig11], hw, fig11_sparsity, engine, workers, address, verbose, labels) \
        if fig11 else []
    wstats = [network_weight_stats(art, hw.macro.phi_max) for art in arts]
    summaries = []
    with output_dir(out, "dbpim bench-paper", inputs) as tmp:
        for n in nets:
            d = tmp / "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in n.network)
            d.mkdir()
            summaries.append(write_report(n, d, plots=plots))
        _write_csv(tmp / "networks.csv", [network_row(n) for n in nets])
        _write_csv(tmp / "table3.csv", table3_rows(nets))
        _write_csv(tmp / "table2.csv", table2_rows(nets))
        _write_csv(tmp / "fig12.csv", fig12_rows(nets))
        _write_csv(tmp / "breakdown.csv", breakdown_rows(nets))
        if f11:
            _write_csv(tmp / "fig11.csv", f11)
        _write_csv(tmp / "weights.csv", [{"network": w["network"], **r} for w in wstats for r in w["layers"]])
        write_json(tmp / "summary.json", {"networks": summaries, "fig11": f11, "weights": wstats})
        wlabels = {n.network: weights_label(n) for n in nets}
        (tmp / "summary.md").write_text(markdown(nets) + "\n".join(_fig11_markdown(f11))
                                        + "\n".join(weight_stats_markdown(wstats, wlabels, f11)))
        if plots:
            plot_mechanisms(nets, tmp / "fig12.png")
            plot_time_breakdown(nets, tmp / "time_breakdown.png")
            plot_cycle_breakdown(nets, tmp / "cycle_breakdown.png")
            if f11:
                _plot_fig11(f11, tmp / "fig11.png")
    if verbose:
        for s in summaries:
            print(format_summary(s))
    return summaries

"""``dbpim bench-paper``: the report over several artifacts (the five zoo networks), combined.

    dbpim bench-paper --artifacts <dir> [<dir> ...] [--hw paper] --out <dir>
    dbpim bench-paper --root <dir-of-artifacts> [--hw paper] --out <dir>

Writes ``<out>/<network>/`` (the per-network report of ``dbpim bench``) and,
at the top, ``networks.csv`` (one row per network), ``summary.json`` (list of
the per-network summaries), ``summary.md`` (our figures next to the paper's
Tab. II / Tab. III / abstract, with ratios) and the combined plots
``mechanisms.png`` (Fig. 12 style) and ``time_breakdown.png`` (Fig. 13 style).
All of it is staged next to ``--out`` and moved in only on success
(:func:`model.outdir.output_dir`; a folder holding other files is refused).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from model.outdir import OUT_HELP, OutputError, check_output, output_dir
from sim_bench.perf import MECHANISMS, evaluate_network, specs_from_artifact
from sim_bench.report import (BenchError, _write_csv, format_summary, load_inputs, markdown,
                              plot_mechanisms, plot_time_breakdown, write_report)

__all__ = ["main", "run_paper", "network_row"]


def network_row(net) -> dict:
    r = {"network": net.network, "speedup [x]": net.speedup(), "energy_saving [%]": 100 * net.energy_saving(),
         "utilization [%]": 100 * net.utilization(), "utilization_dense [%]": 100 * net.utilization("dense"),
         "speedup_mapped [x]": net.speedup("dbpim", True),
         "time_dbpim [us]": net.time_us("dbpim"), "time_dense [us]": net.time_us("dense"),
         "time_mapped_dbpim [us]": net.time_us("dbpim", True),
         "time_mapped_bit_input [us]": net.time_us("bit_input", True),
         "energy_dbpim [pJ]": net.total_energy("dbpim"), "energy_dense [pJ]": net.total_energy("dense")}
    for k in MECHANISMS[1:]:
        r[f"speedup_{k} [x]"] = net.speedup(k)
        r[f"energy_saving_{k} [%]"] = 100 * net.energy_saving(k)
    return r


def run_paper(artifacts, hw="paper", out="build/paper", plots: bool = True, verbose: bool = True) -> list[dict]:
    """Evaluate several artifacts and write the combined report; returns the per-network summaries."""
    if not artifacts:
        raise BenchError("no artifacts given (pass --artifacts DIR ... or --root DIR)")
    loaded = [load_inputs(a, hw) for a in artifacts]
    names = [art.network for art, _ in loaded]
    if len(set(names)) != len(names):
        raise BenchError(f"network names must be distinct, got {', '.join(names)}")
    inputs = list(artifacts) + [loaded[0][1].path]
    check_output(out, "dbpim bench-paper", inputs)  # refuse before the long part
    nets = [evaluate_network(specs_from_artifact(art), cfg, network=art.network) for art, cfg in loaded]
    summaries = []
    with output_dir(out, "dbpim bench-paper", inputs) as tmp:
        for n in nets:
            d = tmp / "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in n.network)
            d.mkdir()
            summaries.append(write_report(n, d, plots=plots))
        _write_csv(tmp / "networks.csv", [network_row(n) for n in nets])
        (tmp / "summary.json").write_text(json.dumps(summaries, indent=2, default=float))
        (tmp / "summary.md").write_text(markdown(nets))
        if plots:
            plot_mechanisms(nets, tmp / "mechanisms.png")
            plot_time_breakdown(nets, tmp / "time_breakdown.png")
    if verbose:
        for s in summaries:
            print(format_summary(s))
    return summaries


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="dbpim bench-paper", description=(
        "The performance report over several artifacts (the five zoo networks), combined and compared with "
        "the paper's figures."))
    p.add_argument("--artifacts", nargs="*", default=[], help="artifact directories")
    p.add_argument("--root", help="a directory whose sub-directories with manifest.yaml are artifacts")
    p.add_argument("--hw", default="paper", help="hardware YAML or shipped name (default: paper)")
    p.add_argument("--out", default="build/paper", help=OUT_HELP + " (default: build/paper)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    a = p.parse_args(argv)
    arts = list(a.artifacts)
    if a.root:
        root = Path(a.root)
        if not root.is_dir():
            print(f"dbpim bench-paper: {root}: not a directory", file=sys.stderr)
            return 2
        arts += sorted(str(d) for d in root.iterdir() if (d / "manifest.yaml").is_file())
    try:
        run_paper(arts, a.hw, a.out, plots=not a.no_plots)
    except (BenchError, OutputError) as e:
        print(f"dbpim bench-paper: {e}", file=sys.stderr)
        return 2
    print(f"report written to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

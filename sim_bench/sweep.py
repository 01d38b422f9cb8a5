"""``dbpim sweep``: block sparsity x phi_max x macro geometry, in parallel processes.

    dbpim sweep [--workload digits|resnet18-cifar|resnet18-imagenet|<artifact dir>]
                [--sparsity 0,0.25,0.5,0.75] [--phi-max 1,2] [--geometry 16x16x16,...]
                [--hw paper] [--workers 2] --out <dir>

A geometry is ``n_comp x n_col x n_row``. Every point re-prunes
(``model.prune.block_mask``, group size n_col // phi_max) and re-quantizes
(``model.fta.quantize``) the workload's float weights, then runs the
performance model on the workload's activations. Float weights come from the
workload: the digits MLP (real, numpy-trained), synthetic ResNet-18, or an
artifact (its layer files' optional ``w_float`` (K, N) float32 array if the
front-end stored it, else the de-quantized FTA weights ``w * scale`` -- a
re-approximation of approximated weights, flagged in the CSV).

Writes ``sweep.csv`` (units in the column names), ``sweep.json`` and
``sweep.png`` into ``--out`` through :func:`model.outdir.output_dir` (moved in
only on success; a folder holding other files is refused).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from model.outdir import OUT_HELP, OutputError, check_output, output_dir
from model.plots import legend_outside, pyplot, save_figure
from sim_bench.report import BenchError, _write_csv

__all__ = ["main", "run_sweep", "parse_geometry", "workload", "workload_from_artifact"]

_CACHE: dict = {}


def parse_geometry(s: str) -> tuple[int, int, int]:
    try:
        a, b, c = (int(v) for v in s.lower().split("x"))
    except ValueError:
        raise BenchError(f"--geometry: {s!r}: must be n_comp x n_col x n_row, e.g. 16x16x16") from None
    return a, b, c


def workload_from_artifact(path):
    """Float workload of an artifact's layers (see the module docstring)."""
    from model.artifact import ArtifactError, load
    from sim_bench.synth import FloatLayer
    try:
        art = load(path, check_tiles=False)
    except ArtifactError as e:
        raise BenchError(str(e).splitlines()[0]) from None
    out, exact = [], True
    for r in art.layers:
        if not r.mapped:
            out.append(FloatLayer(name=r.name, kind="simd", op=r.op, simd_ops=r.simd_ops))
            continue
        wf = None
        rec = next((d for d in (Path(path) / "layers").glob("*.npz") if d.name.endswith(f"_{r.name}.npz")), None)
        if rec is not None:
            with np.load(rec) as z:
                if "w_float" in z.files and z["w_float"].shape == r.w.shape:
                    wf = z["w_float"].astype(np.float32)
        if wf is None:
            exact = False
            wf = r.w.astype(np.float32) * r.scale[None, :]
        out.append(FloatLayer(name=r.name, kind=r.kind, W=wf, x=r.x, kernel=r.kernel, stride=r.stride,
                              padding=r.padding, signed=r.signed_input))
    return art.network, out, exact


def workload(name: str):
    """(network name, float layers, float weights exact?) of a workload name or artifact path; cached per process."""
    if name in _CACHE:
        return _CACHE[name]
    from sim_bench import synth
    if name == "digits":
        w = ("digits-mlp", synth.mlp_digits(), True)
    elif name in ("resnet18-cifar", "resnet18-imagenet"):
        w = (name + " (synthetic)", synth.resnet18(name.split("-")[1]), True)
    elif Path(name).is_dir():
        w = workload_from_artifact(name)
    else:
        raise BenchError(f"--workload: {name}: must be digits, resnet18-cifar, resnet18-imagenet or an artifact "
                         f"directory")
    _CACHE[name] = w
    return w


def _point(args) -> dict:
    wl, hw, sparsity, phi_max, geom = args
    from model.config import ConfigError
    from sim_bench import synth
    from model.config import load_config
    from sim_bench.perf import MECHANISMS, evaluate_network
    cfg = load_config(hw)
    n_comp, n_col, n_row = geom
    try:
        macro = dataclasses.replace(cfg.macro, n_comp=n_comp, n_col=n_col, n_row=n_row, phi_max=phi_max,
                                    lanes=min(cfg.macro.lanes, n_comp))
    except ConfigError as e:
        return {"error": str(e)}
    cfg = dataclasses.replace(cfg, macro=macro)
    name, layers, exact = workload(wl)
    net = evaluate_network(synth.specs_of(layers, macro, sparsity=sparsity), cfg, network=name)
    r = {"network": name, "sparsity [fraction of blocks]": sparsity, "phi_max [digits]": phi_max,
         "geometry [n_comp x n_col x n_row]": f"{n_comp}x{n_col}x{n_row}", "group_size [filters]": macro.group_size,
         "float_weights": "exact" if exact else "dequantized FTA (approximate)",
         "speedup [x]": net.speedup(), "speedup_mapped [x]": net.speedup("dbpim", True),
         "energy_saving [%]": 100 * net.energy_saving(), "utilization [%]": 100 * net.utilization(),
         "time_dbpim [us]": net.time_us("dbpim"), "time_dense [us]": net.time_us("dense"),
         "energy_dbpim [pJ]": net.total_energy("dbpim")}
    for k in MECHANISMS[1:-1]:
        r[f"speedup_{k} [x]"] = net.speedup(k)
    return r


def run_sweep(workload_name="digits", hw="paper", sparsities=(0.0, 0.25, 0.5, 0.75), phi_maxes=(1, 2),
              geometries=((16, 16, 16),), out="build/sweep", workers: int = 2, plots: bool = True) -> list[dict]:
    """Run every point (in ``workers`` processes) and write ``sweep.csv`` / ``sweep.png`` / ``sweep.json``."""
    from model.config import ConfigError
    from model.config import load_config
    try:
        cfg_path = load_config(hw).path
    except ConfigError as e:
        raise BenchError(str(e)) from None
    workload(workload_name)  # validate (and fail) early, in this process
    inputs = [cfg_path] + ([workload_name] if Path(workload_name).is_dir() else [])
    for s in sparsities:
        if not 0.0 <= s <= 1.0:
            raise BenchError(f"--sparsity: {s}: must lie in [0, 1]")
    pts = [(workload_name, hw, float(s), int(p), tuple(g)) for g in geometries for p in phi_maxes for s in sparsities]
    check_output(out, "dbpim sweep", inputs)  # refuse before the long part
    rows = _run_points(pts, workers)
    with output_dir(out, "dbpim sweep", inputs) as tmp:
        _write_csv(tmp / "sweep.csv", rows)
        (tmp / "sweep.json").write_text(json.dumps(rows, indent=2, default=float))
        if plots:
            _plot(rows, tmp / "sweep.png")
    return rows


def _run_points(pts: list, workers: int) -> list[dict]:
    """Every sweep point, in ``workers`` processes; the first point's error is a :class:`BenchError`."""
    if workers > 1 and len(pts) > 1:
        with ProcessPoolExecutor(max_workers=workers) as ex:
            rows = list(ex.map(_point, pts))
    else:
        rows = [_point(p) for p in pts]
    bad = [r["error"] for r in rows if "error" in r]
    if bad:
        raise BenchError(bad[0])
    return rows


def _plot(rows, path):
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    keys = sorted({(r["geometry [n_comp x n_col x n_row]"], r["phi_max [digits]"]) for r in rows})
    for g, p in keys:
        rr = sorted((r for r in rows if r["geometry [n_comp x n_col x n_row]"] == g and r["phi_max [digits]"] == p),
                    key=lambda r: r["sparsity [fraction of blocks]"])
        x = [r["sparsity [fraction of blocks]"] for r in rr]
        for ax, k in zip(axes, ("speedup [x]", "energy_saving [%]", "utilization [%]")):
            ax.plot(x, [r[k] for r in rr], marker="o", label=f"{g}, phi_max={p}")
    for ax, k in zip(axes, ("speedup [x]", "energy_saving [%]", "utilization [%]")):
        ax.set_xlabel("block sparsity [fraction]")
        ax.set_ylabel(k)
        ax.grid(alpha=0.3)
    legend_outside(axes[-1], title="n_comp x n_col x n_row")
    fig.suptitle(f"{rows[0]['network']}: sweep (end to end, vs dense digital PIM)")
    save_figure(fig, path)


def _floats(s, name):
    try:
        return [float(v) for v in s.split(",") if v.strip()]
    except ValueError:
        raise BenchError(f"--{name}: {s!r}: must be a comma-separated list of numbers") from None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="dbpim sweep", description=(
        "Block sparsity x phi_max x macro geometry sweep of the performance model, in parallel processes; "
        "writes sweep.csv, sweep.json and sweep.png into --out."))
    p.add_argument("--workload", default="digits", help="digits, resnet18-cifar, resnet18-imagenet or an artifact "
                   "directory (default: digits)")
    p.add_argument("--sparsity", default="0,0.25,0.5,0.75",
                   help="comma-separated block sparsities in [0, 1] (default: 0,0.25,0.5,0.75)")
    p.add_argument("--phi-max", default="1,2", help="comma-separated FTA thresholds phi_max (default: 1,2)")
    p.add_argument("--geometry", default="16x16x16",
                   help="comma-separated macro geometries n_comp x n_col x n_row (default: 16x16x16)")
    p.add_argument("--hw", default="paper", help="hardware YAML or shipped name (default: paper)")
    p.add_argument("--workers", type=int, default=2, help="parallel processes (default: 2)")
    p.add_argument("--out", default="build/sweep", help=OUT_HELP + " (default: build/sweep)")
    p.add_argument("--no-plots", action="store_true", help="skip sweep.png")
    a = p.parse_args(argv)
    try:
        sp = _floats(a.sparsity, "sparsity")
        ph = [int(v) for v in _floats(a.phi_max, "phi-max")]
        geo = [parse_geometry(g) for g in a.geometry.split(",") if g.strip()]
        rows = run_sweep(a.workload, a.hw, sp, ph, geo, a.out, max(1, a.workers), plots=not a.no_plots)
    except (BenchError, OutputError) as e:
        print(f"dbpim sweep: {e}", file=sys.stderr)
        return 2
    for r in rows:
        print(f"{r['geometry [n_comp x n_col x n_row]']:>10} phi_max={r['phi_max [digits]']} "
              f"sparsity={r['sparsity [fraction of blocks]']:.2f}: speedup {r['speedup [x]']:.2f}x, "
              f"energy saving {r['energy_saving [%]']:.1f}%, U {r['utilization [%]']:.1f}%")
    print(f"sweep written to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

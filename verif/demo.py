"""Run real compiled tiles on the Verilator model of the macro and compare with the golden model.

* :func:`run_macro_rtl` - one tile, a batch of input vectors -> (acc, cycles),
  simulated by cocotb + Verilator (the build is cached in ``build/sim``).
* :func:`demo` - the ``dbpim demo`` stage 4 hook: one real tile of the example
  layer, its real inputs, RTL vs ``model.macro.run_macro``.
* :func:`main` - ``dbpim verify``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

__all__ = ["run_macro_rtl", "demo", "main"]

_TILE_FIELDS = ("cells", "idx", "sign", "rows", "col_filter", "filters")


def _cfg_path(cfg) -> str:
    from model.config import HwConfig, config_path
    if isinstance(cfg, HwConfig):
        if cfg.path is None:
            raise ValueError("cfg: an HwConfig loaded from a YAML file is needed (cfg.path is None)")
        return str(cfg.path)
    return str(config_path(cfg))


def run_macro_rtl(tile, x_vectors, cfg, signed: bool = False, gathered: bool = False):
    """Simulate the macro RTL on ``tile`` for a batch of input vectors.

    Parameters
    ----------
    tile : model.compile.Tile
    x_vectors : array_like of int, shape (P, K) or (P, n_row, n_comp)
        im2col vectors, or gathered inputs when ``gathered``.
    cfg : HwConfig or str
        Hardware configuration (object from ``load_config``, YAML path or shipped name).
    signed : bool

    Returns
    -------
    acc : ndarray of int64, shape (P, n_col)
        Per-slot accumulators read from the RTL.
    cycles : ndarray of int64, shape (P,)
        The RTL's cycle counter per vector.
    """
    from model.config import load_config
    from model.macro import gather
    from verif.rtl import ROOT, build_block

    path = _cfg_path(cfg)
    mc = load_config(path).macro
    xs = np.asarray(x_vectors)
    if not gathered:
        xs = np.stack([gather(tile, v) for v in xs]) if xs.size else np.zeros((0, mc.n_row, mc.n_comp), np.int64)
    if xs.ndim != 3 or xs.shape[1:] != (mc.n_row, mc.n_comp):
        raise ValueError(f"x_vectors: gathered inputs must have shape (P, {mc.n_row}, {mc.n_comp}), got {xs.shape}")
    runner, bdir, _ = build_block("macro", path)
    with tempfile.TemporaryDirectory(dir=ROOT / "build") as tmp:
        fin, fout = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(fin, xs=xs, signed=bool(signed), n_rows_used=tile.n_rows_used,
                 **{f: getattr(tile, f) for f in _TILE_FIELDS})
        runner.test(test_module="verif.demo_tb", hdl_toplevel="dbpim_macro", hdl_toplevel_lang="verilog",
                    build_dir=bdir, test_dir=bdir, testcase="demo_run", results_xml=str(bdir / "results.xml"),
                    extra_env={"DBPIM_CFG": path, "DBPIM_DEMO_IN": str(fin), "DBPIM_DEMO_OUT": str(fout)})
        if not fout.is_file():
            raise RuntimeError(f"RTL simulation produced no results (see {bdir})")
        with np.load(fout) as r:
            return r["acc"].astype(np.int64), r["cycles"].astype(np.int64)


def demo(cfg, layers, out) -> bool:
    """``dbpim demo`` stage 4: the first tile of the first real layer on the RTL vs the golden model."""
    from model.config import load_config
    from model.examples import real_layer
    from model.macro import run_macro

    path = _cfg_path(cfg)
    mc = load_config(path).macro
    rl = layers[0] if layers else real_layer(mc)
    tile = rl.compiled.tiles[0]
    xs = np.asarray(rl.x, np.int64)
    t0 = time.perf_counter()
    acc, cyc = run_macro_rtl(tile, xs, path)
    dt = time.perf_counter() - t0
    ok = True
    for p, x in enumerate(xs):
        want = run_macro(tile, x, mc)
        same = list(acc[p]) == list(want.acc) and cyc[p] == want.cycles
        ok &= same
        print(f"vector {p}: RTL cycles {cyc[p]:4d} golden {want.cycles:4d}  acc {'==' if same else '!='} golden")
    print(f"{rl.name} tile 0 ({tile.n_filters} filters, {tile.n_rows_used} rows) on Verilator: "
          f"{len(xs)} vectors in {dt:.1f} s (incl. build if needed): {'bit-exact' if ok else 'MISMATCH'}")
    Path(out).mkdir(parents=True, exist_ok=True)
    np.savez(Path(out) / "rtl_tile0.npz", acc=acc, cycles=cyc)
    return ok


def main(argv=None) -> int:
    """``dbpim verify``: run the real example layer's tiles on the RTL and compare with the golden model."""
    from model.config import ConfigError, load_config
    from model.examples import real_layer
    from model.macro import run_macro

    ap = argparse.ArgumentParser(prog="dbpim verify", description=(
        "Run the real example layer's tiles on the RTL (Verilator) and compare with the golden model."))
    ap.add_argument("--hw", default="small", help="hardware YAML or shipped name (default: small)")
    ap.add_argument("--tiles", type=int, default=2, help="tiles of the example layer to run (default 2)")
    a = ap.parse_args(argv)
    try:
        cfg = load_config(a.hw)
    except ConfigError as e:
        print(f"dbpim verify: {e}", file=sys.stderr)
        return 2
    rl = real_layer(cfg.macro)
    xs = np.asarray(rl.x, np.int64)
    bad = 0
    for k, tile in enumerate(rl.compiled.tiles[:a.tiles]):
        acc, cyc = run_macro_rtl(tile, xs, cfg)
        for p, x in enumerate(xs):
            want = run_macro(tile, x, cfg.macro)
            if list(acc[p]) != list(want.acc) or cyc[p] != want.cycles:
                bad += 1
                print(f"tile {k} vector {p}: RTL {list(acc[p])} / {cyc[p]} cycles, "
                      f"golden {list(want.acc)} / {want.cycles} cycles")
        print(f"tile {k}: {len(xs)} vectors checked")
    print("RTL == golden model" if not bad else f"{bad} mismatches")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

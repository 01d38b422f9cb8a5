"""Run real compiled tiles on the Verilator model of the macro and compare with the golden model.

* :func:`run_macro_rtl` - tiles and their input vectors -> accumulators and
  cycle counts, simulated by cocotb + Verilator in one simulation (the build
  is cached in ``build/sim``; the macro is driven by
  :class:`verif.macro_driver.MacroDriver` at full rate);
* :func:`demo` - the ``dbpim demo`` stage 4 hook: one real tile of the example
  layer, its real inputs, RTL vs ``model.macro.run_macro``;
* :func:`verify_layer` - one layer's tiles and inputs on the RTL vs the golden
  model (``dbpim verify --macro``, :func:`dbpim.verify.verify_macro`).

The Verilator build log and cocotb's output go to log files in the build
folder (``dbpim verify --rtl-log`` shows them); a failure prints the log's path.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from dbpim.model import jsonio

__all__ = ["run_macro_rtl", "run_tiles_rtl", "verify_layer", "demo"]


def _macro_of(cfg):
    from dbpim.model.config import HwConfig, MacroConfig
    if isinstance(cfg, MacroConfig):
        return cfg
    if isinstance(cfg, HwConfig):
        return cfg.macro
    raise TypeError(f"cfg: must be an HwConfig or MacroConfig, got {type(cfg).__name__}")


def run_tiles_rtl(cases, cfg, verbose: bool | None = None):
    """Simulate the macro RTL on several tiles, each with its batch of gathered input vectors.

    Parameters
    ----------
    cases : list of (Tile, bool, array_like)
        ``(tile, signed, xs)`` with ``xs`` the gathered inputs (P, n_row, n_comp).
    cfg : HwConfig or MacroConfig
        Hardware configuration.
    verbose : bool, optional
        Show the Verilator and cocotb output instead of writing it to log files.

    Returns
    -------
    list of (acc int64 (P, n_col), cycles int64 (P,))

    Raises
    ------
    verif.rtl.RTLFailure
        The build or the simulation failed (the message names the log file).
    """
    
    from dbpim.verif.macro_driver import save_cases
    from dbpim.verif.rtl import ROOT, build_block, run_test

    mc = _macro_of(cfg)
    for _, _, xs in cases:
        if np.asarray(xs).ndim != 3 or np.asarray(xs).shape[1:] != (mc.n_row, mc.n_comp):
            raise ValueError(f"xs: gathered inputs must have shape (P, {mc.n_row}, {mc.n_comp}), "
                             f"got {np.asarray(xs).shape}")
    build = build_block("macro", mc, verbose=verbose)
    (ROOT / "build").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ROOT / "build") as tmp:
        fin, fout = Path(tmp) / "cases.npz", Path(tmp) / "results.npz"
        save_cases(fin, [(t, s, np.asarray(xs, np.int64)) for t, s, xs in cases])
        run_test(build, "dbpim.verif.runner_tb", "macro_run", label="macro_run", verbose=verbose,
                 env={"DBPIM_MACRO": jsonio.dumps(mc.to_dict(), what="DBPIM_MACRO", indent=None), "DBPIM_CASES": str(fin),
                      "DBPIM_RESULTS": str(fout)})
        with np.load(fout) as r:
            return [(r[f"acc{k}"].astype(np.int64), r[f"cycles{k}"].astype(np.int64)) for k in range(len(cases))]


def run_macro_rtl(tile, x_vectors, cfg, signed: bool = False, gathered: bool = False, verbose: bool | None = None):
    """Simulate the macro RTL on ``tile`` for a batch of input vectors.

    Parameters
    ----------
    tile : model.compile.Tile
    x_vectors : array_like of int, shape (P, K) or (P, n_row, n_comp)
        im2col vectors, or gathered inputs when ``gathered``.
    cfg : HwConfig or MacroConfig
    signed : bool

    Returns
    -------
    acc : ndarray of int64, shape (P, n_col)
        Per-slot accumulators read from the RTL.
    cycles : ndarray of int64, shape (P,)
        The RTL's cycle counter per vector.
    """
    from dbpim.model.macro import gather

    mc = _macro_of(cfg)
    xs = np.asarray(x_vectors)
    if not gathered:
        xs = np.stack([gather(tile, v) for v in xs]) if xs.size else np.zeros((0, mc.n_row, mc.n_comp), np.int64)
    return run_tiles_rtl([(tile, signed, xs)], mc, verbose)[0]


def demo(cfg, layers, out) -> bool:
    """``dbpim demo`` stage 4: the first tile of the first real layer on the RTL vs the golden model."""
    from dbpim.model.examples import real_layer
    from dbpim.model.macro import run_macro

    mc = _macro_of(cfg)
    rl = layers[0] if layers else real_layer(mc)
    tile = rl.compiled.tiles[0]
    xs = np.asarray(rl.x, np.int64)
    t0 = time.perf_counter()
    acc, cyc = run_macro_rtl(tile, xs, cfg)
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


def verify_layer(name: str, compiled, x, signed: bool, macro, verbose: bool | None = None) -> tuple[bool, str]:
    """Every tile of ``compiled`` on the RTL with im2col inputs ``x`` (P, K) vs ``model.macro.run_macro``.

    Returns
    -------
    (ok, line)
        ``line`` is the one-line verdict: tiles, vectors and cycles when equal,
        else the first mismatch (tile, vector, slot or cycle count, both values).
    """
    from dbpim.model.macro import gather, run_macro

    x = np.asarray(x, np.int64)
    cases = [(t, signed, np.stack([gather(t, v) for v in x])) for t in compiled.tiles]
    results = run_tiles_rtl(cases, macro, verbose)
    total = 0
    for k, ((tile, _, xs), (acc, cyc)) in enumerate(zip(cases, results)):
        for p in range(len(x)):
            want = run_macro(tile, xs[p], macro, signed=signed, gathered=True)
            total += want.cycles
            if cyc[p] != want.cycles:
                return False, (f"{name}: MISMATCH tile {k} vector {p}: cycles RTL {cyc[p]} != golden {want.cycles}")
            bad = np.nonzero(acc[p] != want.acc)[0]
            if bad.size:
                s = int(bad[0])
                return False, (f"{name}: MISMATCH tile {k} vector {p} slot {s}: acc RTL {acc[p, s]} != "
                               f"golden {want.acc[s]}")
    return True, (f"{name}: RTL == golden model: {len(cases)} tiles x {len(x)} vectors, accumulators and cycles "
                  f"({total} macro-cycles)")

"""Run real compiled tiles on the Verilator model of the macro and compare with the golden model.

* :func:`run_macro_rtl` - tiles and their input vectors -> accumulators and
  cycle counts, simulated by cocotb + Verilator in one simulation (the build
  is cached in ``build/sim``; the macro is driven by
  :class:`verif.macro_driver.MacroDriver` at full rate);
* :func:`demo` - the ``dbpim demo`` stage 4 hook: one real tile of the example
  layer, its real inputs, RTL vs ``model.macro.run_macro``;
* :func:`main` - ``dbpim verify``: the example layer's first tiles
  (``--hw``, ``--tiles``), or every tile of a user's compiled layer with its
  recorded inputs (``--artifact DIR [--layer NAME]``).

The Verilator build log and cocotb's output go to log files in the build
folder (``--verbose`` shows them); a failure prints the log's path.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from model import jsonio

__all__ = ["run_macro_rtl", "run_tiles_rtl", "verify_layer", "demo", "main"]


def _macro_of(cfg):
    from model.config import HwConfig, MacroConfig, load_config
    if isinstance(cfg, MacroConfig):
        return cfg
    return (cfg if isinstance(cfg, HwConfig) else load_config(cfg)).macro


def run_tiles_rtl(cases, cfg, verbose: bool | None = None):
    """Simulate the macro RTL on several tiles, each with its batch of gathered input vectors.

    Parameters
    ----------
    cases : list of (Tile, bool, array_like)
        ``(tile, signed, xs)`` with ``xs`` the gathered inputs (P, n_row, n_comp).
    cfg : HwConfig, MacroConfig or str
        Hardware configuration (object, YAML path or shipped name).
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
    
    from verif.macro_driver import save_cases
    from verif.rtl import ROOT, build_block, run_test

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
        run_test(build, "verif.runner_tb", "macro_run", label="macro_run", verbose=verbose,
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
    cfg : HwConfig, MacroConfig or str
    signed : bool

    Returns
    -------
    acc : ndarray of int64, shape (P, n_col)
        Per-slot accumulators read from the RTL.
    cycles : ndarray of int64, shape (P,)
        The RTL's cycle counter per vector.
    """
    from model.macro import gather

    mc = _macro_of(cfg)
    xs = np.asarray(x_vectors)
    if not gathered:
        xs = np.stack([gather(tile, v) for v in xs]) if xs.size else np.zeros((0, mc.n_row, mc.n_comp), np.int64)
    return run_tiles_rtl([(tile, signed, xs)], mc, verbose)[0]


def demo(cfg, layers, out) -> bool:
    """``dbpim demo`` stage 4: the first tile of the first real layer on the RTL vs the golden model."""
    from model.examples import real_layer
    from model.macro import run_macro

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
    from model.macro import gather, run_macro

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


class _BadInput(Exception):
    """A bad command-line input: one line, exit status 2."""


def _artifact_layers(path, layer: str | None, n_vectors: int | None):
    """(name, compiled, x (P, K), signed) of the artifact's mapped layers to verify, and its macro."""
    from model.artifact import ArtifactError, load

    try:
        art = load(path)
    except ArtifactError as e:
        raise _BadInput(str(e).splitlines()[0]) from None
    mapped = art.mapped_layers()
    if layer is not None:
        mapped = [r for r in mapped if r.name == layer]
        if not mapped:
            names = ", ".join(r.name for r in art.mapped_layers()) or "none"
            raise _BadInput(f"--layer: {layer!r} is not a mapped layer of {path} (mapped layers: {names})")
    if not mapped:
        raise _BadInput(f"--artifact: {path} has no layer mapped on the macros")
    out = []
    for r in mapped:
        x = r.im2col_inputs()
        if x is None:
            raise _BadInput(f"--artifact: layer {r.name} of {path} has no recorded inputs (array 'x'); "
                            "compile it with recorded activations")
        out.append((r.name, r.compiled, x if n_vectors is None else x[:n_vectors], r.signed_input))
    return out, art.macro


def main(argv=None) -> int:
    """``dbpim verify``: run compiled layers on the RTL macro (Verilator) and compare with the golden model."""
    from model.config import ConfigError, load_config
    from verif.rtl import RTLFailure

    ap = argparse.ArgumentParser(prog="dbpim verify", description=(
        "Run compiled layers' tiles on the RTL macro (Verilator) and compare accumulators and cycle counts with "
        "the golden model: the built-in example layer, or a user's artifact with its recorded inputs."))
    ap.add_argument("--artifact", metavar="DIR", help="a compiled artifact: verify its mapped layers' tiles "
                    "with their recorded inputs (default: the built-in example layer)")
    ap.add_argument("--layer", metavar="NAME", help="only this mapped layer of --artifact")
    ap.add_argument("--vectors", type=int, default=32,
                    help="recorded input vectors per layer, >= 1 (default 32; --all-vectors for every one)")
    ap.add_argument("--all-vectors", action="store_true", help="every recorded input vector")
    ap.add_argument("--hw", default="small", help="example layer only: hardware YAML or shipped name (default small)")
    ap.add_argument("--tiles", type=int, default=2, help="example layer only: tiles to run, >= 1 (default 2)")
    ap.add_argument("--verbose", action="store_true", help="show the Verilator build log and cocotb output")
    a = ap.parse_args(argv)
    try:
        if a.tiles < 1:
            raise _BadInput(f"--tiles: must be >= 1, got {a.tiles}")
        if a.vectors < 1:
            raise _BadInput(f"--vectors: must be >= 1, got {a.vectors}")
        if a.layer is not None and a.artifact is None:
            raise _BadInput("--layer: needs --artifact DIR")
        if a.artifact is not None:
            layers, macro = _artifact_layers(a.artifact, a.layer, None if a.all_vectors else a.vectors)
        else:
            from model.examples import real_layer
            try:
                macro = load_config(a.hw).macro
            except ConfigError as e:
                raise _BadInput(str(e)) from None
            rl = real_layer(macro)
            rl.compiled.tiles = rl.compiled.tiles[:a.tiles]
            x = np.asarray(rl.x, np.int64)
            layers = [(f"{rl.name} (example, first {len(rl.compiled.tiles)} tiles)", rl.compiled,
                       x if a.all_vectors else x[:a.vectors], False)]
    except _BadInput as e:
        print(f"dbpim verify: {e}", file=sys.stderr)
        return 2
    bad = 0
    for name, compiled, x, signed in layers:
        try:
            ok, line = verify_layer(name, compiled, x, signed, macro, verbose=a.verbose or None)
        except RTLFailure as e:
            ok, line = False, f"{name}: RTL run failed: {e}"
        print(line, flush=True)
        bad += not ok
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

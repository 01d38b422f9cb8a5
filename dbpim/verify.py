"""``dbpim verify``: whole real layers on the PIM core's RTL, against the golden model and the performance model.

``dbpim verify --artifact DIR [--layer NAME] [--hw CONFIG]`` compiles each
mapped layer's core program (only NAME with ``--layer``;
:func:`model.core.compile_program`), runs every START for every recorded
sample on the native Verilator harness (:func:`verif.native.run_core_native`:
all tiles, all output pixels), and prints

* whether the RTL's outputs equal :func:`model.layer.run_layer` bit for bit
  (with the first mismatch when they do not);
* the RTL's cycle count (its ``CYCLES`` register, summed over the STARTs)
  next to the performance model's count for the same layer on one core
  (:func:`sim_bench.core_cycles.layer_cycles_one_core`), per sample; they must
  be equal.

Exit status 0 when both agree for every layer, 1 when either differs, 2 on a
bad input (one line on stderr). With ``--macro``, or without ``--artifact``,
it runs tiles on the RTL macro instead (:func:`verify_macro`: the example
layer, or every tile of the artifact's layers against the golden macro model,
through :func:`verif.demo.verify_layer`).

The command itself is :mod:`dbpim.commands.verify`; this module holds the
checks, which take loaded objects (an ``Artifact``, an ``HwConfig``).
"""

from __future__ import annotations

import time

import numpy as np

__all__ = ["verify_layer", "verify_core", "verify_macro", "VerifyError"]


class VerifyError(ValueError):
    """A bad input of a check (a layer not in the artifact, no recorded inputs); the message is one line."""


def _layer(art, name):
    names = [r.name for r in art.layers]
    rec = next((r for r in art.layers if r.name == name), None)
    if rec is None:
        raise VerifyError(f"layer {name}: not in the artifact; layers: {', '.join(names)}")
    if not rec.mapped:
        raise VerifyError(f"layer {name}: a {rec.kind} ({rec.op}) layer runs on the SIMD core, not the PIM core")
    if rec.x is None:
        raise VerifyError(f"layer {name}: the artifact recorded no inputs (x) for it")
    return rec


def verify_core(art, hw, layer: str | None = None, samples: int | None = None, out=print) -> bool:
    """Every mapped layer of ``art`` (only ``layer`` when given) on the PIM core RTL of ``hw``; True when all agree.

    Raises
    ------
    VerifyError
        ``hw``'s macro is not the artifact's, or a bad ``layer`` (one line).
    """
    if hw.macro != art.macro:
        raise VerifyError(f"hw: {hw.name}: its macro {hw.macro.to_dict()} is not the artifact's "
                          f"{art.macro.to_dict()}")
    recs = [_layer(art, layer)] if layer else [_layer(art, r.name) for r in art.mapped_layers()]
    ok = True
    for rec in recs:
        ok &= verify_layer(art, rec, hw, samples, out=out)
    return ok


def _artifact_tiles(art, layer: str | None, n_vectors: int | None):
    """(name, compiled, x (P, K), signed) of the artifact's mapped layers to run on the macro."""
    mapped = art.mapped_layers()
    if layer is not None:
        mapped = [r for r in mapped if r.name == layer]
        if not mapped:
            names = ", ".join(r.name for r in art.mapped_layers()) or "none"
            raise VerifyError(f"layer: {layer!r} is not a mapped layer of {art.path} (mapped layers: {names})")
    if not mapped:
        raise VerifyError(f"artifact: {art.path} has no layer mapped on the macros")
    out = []
    for r in mapped:
        x = r.im2col_inputs()
        if x is None:
            raise VerifyError(f"artifact: layer {r.name} of {art.path} has no recorded inputs (array 'x'); "
                              "compile it with recorded activations")
        out.append((r.name, r.compiled, x if n_vectors is None else x[:n_vectors], r.signed_input))
    return out


def verify_macro(macro, art=None, layer: str | None = None, n_vectors: int | None = 32, tiles: int = 2,
                 verbose: bool | None = None, out=print) -> bool:
    """Tiles on the RTL macro vs the golden macro model; True when every tile agrees.

    With an artifact ``art``: every tile of its mapped layers (only ``layer``)
    with their recorded inputs, on ``art.macro``; without: the first ``tiles``
    tiles of the built-in example layer on ``macro`` (a MacroConfig). At most
    ``n_vectors`` input vectors per layer (None: all).
    """
    from dbpim.model import limits
    from dbpim.verif.demo import verify_layer as verify_tiles
    from dbpim.verif.rtl import RTLFailure
    if n_vectors is not None:
        limits.COUNT.check("n_vectors", n_vectors, exc=VerifyError)
    if art is not None:
        layers, macro = _artifact_tiles(art, layer, n_vectors), art.macro
    else:
        from dbpim.model.examples import real_layer
        limits.COUNT.check("tiles", tiles, exc=VerifyError)
        rl = real_layer(macro)
        rl.compiled.tiles = rl.compiled.tiles[:tiles]
        x = np.asarray(rl.x, np.int64)
        layers = [(f"{rl.name} (example, first {len(rl.compiled.tiles)} tiles)", rl.compiled,
                   x if n_vectors is None else x[:n_vectors], False)]
    bad = 0
    for name, compiled, x, signed in layers:
        try:
            ok, line = verify_tiles(name, compiled, x, signed, macro, verbose=verbose)
        except RTLFailure as e:
            ok, line = False, f"{name}: RTL run failed: {e}"
        out(line)
        bad += not ok
    return not bad


def verify_layer(art, rec, hw, samples: int | None = None, out=print) -> bool:
    """Run one mapped layer record on the RTL and compare; prints the report, returns True when all agree."""
    from dbpim.model.core import CoreParams, assemble, compile_program
    from dbpim.model.layer import run_layer
    from dbpim.sim_bench.core_cycles import layer_cycles_one_core, one_core_run_pixels
    from dbpim.verif.native import build_native, run_core_native

    x = rec.im2col_inputs()
    S_all = int(rec.x.shape[0])
    P = x.shape[0] // S_all
    S = S_all if samples is None else max(1, min(int(samples), S_all))
    xs = x.reshape(S_all, P, -1)[:S]
    params = CoreParams.from_config(hw)
    prog = compile_program(rec.compiled, P, params, rec.signed_input, rec.name,
                           run_pixels=one_core_run_pixels(rec, hw))
    n_pass = sum(len(s.passes) for s in prog.segments)
    out(f"{art.network} / {rec.name}: {rec.kind}, K={rec.compiled.K}, N={rec.compiled.N}, "
        f"{len(rec.compiled.tiles)} tiles, {P} output pixels x {S} samples")
    wins = f" x {hw.core.in_windows} input windows a beat" if hw.core.in_windows > 1 else ""
    wins += f", {hw.core.result_lanes} results a beat" if hw.core.result_lanes > 1 else ""
    out(f"core ({hw.name}): {params.macros} macros of {hw.macro.n_comp}x{hw.macro.n_col}x{hw.macro.n_row}, "
        f"{hw.macro.lanes} switch lanes{wins}; program: {len(prog.segments)} START(s), {n_pass} passes, "
        f"pixel runs of {prog.plan.pixels.max() if n_pass else 0}")
    _, t_build = build_native("core", hw)
    if t_build:
        out(f"native harness built in {t_build:.1f} s")
    t0 = time.perf_counter()
    runs, (clocks, secs) = run_core_native(prog, xs, hw) if prog.segments else ([], (0, 0.0))
    wall = time.perf_counter() - t0
    rtl_out = np.stack([assemble(prog, [runs[k][s].beats for k in range(len(prog.segments))]) for s in range(S)])
    status_ok = all(r.status == 0b010 for seg in runs for r in seg)
    rtl_cyc = np.array([sum(runs[k][s].cycles for k in range(len(prog.segments))) for s in range(S)], np.int64)
    want = run_layer(xs.reshape(S * P, -1), rec.compiled, rec.signed_input).out.astype(np.int64).reshape(S, P, -1)
    same = np.array_equal(rtl_out, want)
    if same:
        out("outputs == run_layer (bit for bit): yes")
    else:
        s, p, n = (int(v) for v in np.argwhere(rtl_out != want)[0])
        out(f"outputs == run_layer (bit for bit): no; first mismatch: sample {s}, pixel {p}, channel {n}: "
            f"RTL {rtl_out[s, p, n]}, run_layer {want[s, p, n]}")
    model_cyc = layer_cycles_one_core(rec, hw)[:S]
    for s in range(S):
        out(f"  sample {s}: RTL {rtl_cyc[s]} cycles, performance model (sim_bench, one core) {model_cyc[s]} cycles")
    cyc_same = np.array_equal(rtl_cyc, model_cyc)
    out(f"cycles: {'equal' if cyc_same else 'DIFFERENT'} (RTL {int(rtl_cyc.sum())}, performance model "
        f"{int(model_cyc.sum())}, {S} samples)")
    if not status_ok:
        out("STATUS: a START ended with an error (see docs/rtl.md, STATUS.ERROR_CODE)")
    if secs > 0:
        out(f"native simulation: {clocks} clock cycles in {secs:.3f} s ({clocks / secs:,.0f} cycles/s; "
            f"{wall:.1f} s with stimulus and results files)")
    return bool(same and cyc_same and status_ok)

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
it runs tiles on the RTL macro instead (:func:`verif.demo.main`: the example
layer, or every tile of the artifact's layers against the golden macro model).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

__all__ = ["main", "verify_layer"]


class _Usage(ValueError):
    """A bad command-line input; the message is one line."""


def _hw_for(art, hw_arg):
    """The configuration: ``--hw``, else the shipped one whose macro is the artifact's."""
    from model.config import CONFIG_DIR, load_config
    if hw_arg:
        hw = load_config(hw_arg)
        if hw.macro != art.macro:
            raise _Usage(f"--hw {hw_arg}: its macro {hw.macro.to_dict()} is not the artifact's {art.macro.to_dict()}")
        return hw
    for p in sorted(CONFIG_DIR.glob("*.yaml")):
        hw = load_config(p)
        if hw.macro == art.macro:
            return hw
    raise _Usage(f"--hw: no shipped configuration has the artifact's macro {art.macro.to_dict()}; name one")


def _layer(art, name):
    names = [r.name for r in art.layers]
    rec = next((r for r in art.layers if r.name == name), None)
    if rec is None:
        raise _Usage(f"--layer {name}: not in the artifact; layers: {', '.join(names)}")
    if not rec.mapped:
        raise _Usage(f"--layer {name}: a {rec.kind} ({rec.op}) layer runs on the SIMD core, not the PIM core")
    if rec.x is None:
        raise _Usage(f"--layer {name}: the artifact recorded no inputs (x) for it")
    return rec


def verify_layer(art, rec, hw, samples: int | None = None, out=print) -> bool:
    """Run one mapped layer record on the RTL and compare; prints the report, returns True when all agree."""
    from model.core import CoreParams, assemble, compile_program
    from model.layer import run_layer
    from sim_bench.core_cycles import layer_cycles_one_core, one_core_run_pixels
    from verif.native import build_native, run_core_native

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
    out(f"core ({hw.name}): {params.macros} macros of {hw.macro.n_comp}x{hw.macro.n_col}x{hw.macro.n_row}, "
        f"{hw.macro.lanes} switch lanes; program: {len(prog.segments)} START(s), {n_pass} passes, "
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


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    has_artifact = any(a == "--artifact" or a.startswith("--artifact=") for a in argv)
    if "--macro" in argv or not has_artifact:
        from verif.demo import main as macro_main
        return macro_main([a for a in argv if a != "--macro"])
    from model.artifact import ArtifactError, load
    from model.config import ConfigError
    from model.core_timing import PlanError

    ap = argparse.ArgumentParser(prog="dbpim verify", description=__doc__.splitlines()[0],
                                 epilog="--macro: every tile of the layers on the RTL macro instead "
                                        "(see `dbpim verify --macro --help`)")
    ap.add_argument("--artifact", required=True, help="compiled artifact directory")
    ap.add_argument("--layer", default=None, help="one mapped layer of the artifact (default: every mapped layer)")
    ap.add_argument("--hw", default=None, help="hardware YAML or shipped name (default: the shipped one whose "
                                               "macro is the artifact's)")
    ap.add_argument("--samples", type=int, default=None, help="recorded samples to run (default: all)")
    a = ap.parse_args(argv)
    try:
        art = load(a.artifact)
        recs = [_layer(art, a.layer)] if a.layer else [_layer(art, r.name) for r in art.mapped_layers()]
        hw = _hw_for(art, a.hw)
        ok = True
        for rec in recs:
            ok &= verify_layer(art, rec, hw, a.samples)
    except (ArtifactError, ConfigError, PlanError, _Usage) as e:
        print(f"dbpim verify: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

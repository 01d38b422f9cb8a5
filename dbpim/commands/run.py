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


@click.command("run")
@click.option("--artifact", required=True, metavar="DIR", help="compiled artifact directory")
@click.option("--data", required=True, metavar="FILE|NAME",
              help="inputs: a .npz with x_test, y_test (or x, y), or digits / digits32 (the flow's test split for "
                   "the artifact's seed)")
@click.option("--samples", type=Number(limits.COUNT), default=None, help="first N samples only (default: all)")
@click.option("--batch-size", type=Number(limits.BATCH_SIZE), default=32, show_default=True,
              help="samples per batch")
@click.option("--out", default="build/run", show_default=True, help=OUT_HELP)
@verbosity_options
def command(artifact, data, samples, batch_size, out):
    """Run a compiled network on inputs through the golden chip (integer-only, docs/design.md §13, §15).

    The artifact is compiled to the chip's program (model.chip: instructions,
    memory images, buffers) and run on the golden chip; the same inputs go
    through the torch integer path (the same arithmetic in torch) and the
    float-requant reference (model.predict, the front-end's frozen network).
    Writes run.json (accuracy per path, logits_equal between the chip and the
    torch integer path, the chip's cycle model per inference) into --out and
    prints one line per path. A network with an op the chip lacks is refused
    in one line naming the op.
    """
    import numpy as np

    from dbpim.model import jsonio
    from dbpim.model.chip import GoldenChip
    from dbpim.model.outdir import check_output, output_dir
    from dbpim.model.predict import predictor, run_artifact
    art = load_artifact(artifact)
    check_output(out, COMMAND, [art.path])
    chip = GoldenChip(art)  # refuses an op the chip lacks before reading any data
    seed = (art.meta or {}).get("seed", 0)
    x, y = _inputs(data, int(seed) if isinstance(seed, int) and not isinstance(seed, bool) else 0)
    if samples is not None:
        x, y = x[:samples], y[:samples]
    from dbpim.model.predict import PredictError, check_input
    try:
        ref = run_artifact(art, x, y, batch_size=batch_size)  # checks x and y (one line each)
        xf = predictor(art).check(x)
        why_no_ref = None
    except PredictError as e:
        if "cannot be run by model.predict" not in str(e):
            raise
        why_no_ref = str(e)  # a depthwise op: the chip runs it, the float-requant reference does not
        xf = check_input(x, chip.plan.input_shape)
        ref = {}
        if y is not None:
            y = np.asarray(y)
            if y.shape != (len(xf),) or y.dtype.kind not in "iu":
                raise CommandError(f"--data: labels must be integers of shape ({len(xf)},), got {y.dtype} {y.shape}")
            ref["accuracy"] = None
    if len(xf) == 0:
        raise CommandError("--data: holds no samples; give at least one")
    logits = np.concatenate([chip.run(xf[i:i + batch_size]) for i in range(0, len(xf), batch_size)])
    pred = logits.reshape(len(logits), -1).argmax(axis=1)
    tlogits = _torch_logits(chip, art, xf, batch_size)
    S = len(logits)
    q = chip.output_quant
    res = {"artifact": art.network, "network": art.network, "data": Path(data).name if data.endswith(".npz") else data, "samples": S,
           "outputs": list(logits.shape[1:]), "program": chip.program.summary(),
           "output_scale": q.scale, "predictions": pred.astype(int).tolist(),
           "logits_equal": None if tlogits is None else bool(np.array_equal(logits, tlogits)),
           "accuracy": {}, "cycles_model": {
               "pim_macro_cycles": chip.macro_cycles / S, "simd_cycles": chip.simd_cycles / S,
               "what": "per inference: DB-PIM macro-cycles of the PIM instructions (docs/design.md §7, summed "
                       "as if one macro ran every tile) and cycles of the other instructions, run one after "
                       "another (the RTL chip controller's, model.chip_timing.instruction_cycles; DWC the SIMD "
                       "core's full rate, model.simd_core.simd_cycles)"}}
    if "accuracy" in ref:
        res["accuracy"]["chip"] = float((pred == y).mean())
        if tlogits is not None:
            res["accuracy"]["torch_int"] = float((tlogits.reshape(S, -1).argmax(axis=1) == y).mean())
        if ref["accuracy"] is not None:
            res["accuracy"]["float_requant"] = ref["accuracy"]
    if why_no_ref is not None:
        res["float_requant_skipped"] = why_no_ref
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
    cm = res["cycles_model"]
    click.echo(f"{art.network}: golden chip ({res['program']['instructions']} instructions), {S} samples"
               f"{pct('chip')}, {cm['pim_macro_cycles']:.0f} PIM macro-cycles + {cm['simd_cycles']:.0f} SIMD "
               "core cycles per inference")
    if tlogits is None:
        click.echo(f"{art.network}: torch integer path: skipped (torch is not installed)")
    else:
        click.echo(f"{art.network}: torch integer path{pct('torch_int')}, output equal to the golden chip's: "
                   f"{'yes' if res['logits_equal'] else 'NO'}")
    if why_no_ref is None:
        click.echo(f"{art.network}: float-requant reference (model.predict){pct('float_requant')}")
    else:
        res_note = why_no_ref.split(": ", 1)[-1]
        click.echo(f"{art.network}: float-requant reference (model.predict): skipped ({res_note})")
    click.echo(f"written to {Path(out) / 'run.json'}")

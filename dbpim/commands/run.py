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


@click.command("run")
@click.option("--artifact", required=True, metavar="DIR", help="compiled artifact directory")
@click.option("--data", required=True, metavar="FILE|NAME",
              help="inputs: a .npz with x_test, y_test (or x, y), or digits / digits32 (the flow's test split for "
                   "the artifact's seed)")
@click.option("--samples", type=Number(limits.COUNT), default=None, help="first N samples only (default: all)")
@click.option("--batch-size", type=Number(limits.BATCH_SIZE), default=32, show_default=True,
              help="samples per predict batch")
@click.option("--out", default="build/run", show_default=True, help=OUT_HELP)
@verbosity_options
def command(artifact, data, samples, batch_size, out):
    """Run a compiled network's integer path on inputs, from the artifact alone (the golden model in NumPy).

    Every mapped layer runs the golden model's integer arithmetic (bit-exact
    with the macros), every other op the network program's integer model
    (docs/design.md §8). Writes run.json (accuracy, the flow's own integer
    accuracy when recorded, predictions) into --out and prints one line.
    """
    from dbpim.model import jsonio
    from dbpim.model.outdir import check_output, output_dir
    from dbpim.model.predict import run_artifact
    art = load_artifact(artifact)
    check_output(out, COMMAND, [art.path])
    seed = (art.meta or {}).get("seed", 0)
    x, y = _inputs(data, int(seed) if isinstance(seed, int) and not isinstance(seed, bool) else 0)
    if samples is not None:
        x, y = x[:samples], y[:samples]
    res = run_artifact(art, x, y, batch_size=batch_size)
    res = {"artifact": art.network, "data": Path(data).name if data.endswith(".npz") else data, **res}
    with output_dir(out, COMMAND, [art.path]) as stage:
        (stage / "run.json").write_text(jsonio.dumps(res, what="run.json", newline=True))
    line = f"{art.network}: {res['samples']} samples through the compiled integer network (golden model)"
    if "accuracy" in res:
        line += f", accuracy {100 * res['accuracy']:.2f} %"
    if "accuracy_compiled" in res:
        line += f" (the flow's integer path: {100 * res['accuracy_compiled']:.2f} %)"
    click.echo(line)
    click.echo(f"written to {Path(out) / 'run.json'}")

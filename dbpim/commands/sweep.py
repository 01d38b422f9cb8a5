"""``dbpim sweep``: block sparsity x phi_max x macro geometry sweep of the performance model."""

from __future__ import annotations

import click

from dbpim.commands._common import OUT_HELP, Number, NumberList, hw_option, load_hw, progress, verbosity_options
from dbpim.model import limits


def _geometries(ctx, param, value):
    out = []
    for g in str(value).split(","):
        try:
            a, b, c = (int(v) for v in g.strip().lower().split("x"))
        except ValueError:
            raise click.BadParameter(f"{g.strip()!r}: must be n_comp x n_col x n_row, e.g. 16x16x16") from None
        if min(a, b, c) < 1:
            raise click.BadParameter(f"{g.strip()!r}: every dimension must be an integer >= 1")
        out.append((a, b, c))
    return out


@click.command("sweep")
@click.option("--workload", default="digits", show_default=True,
              help="digits, resnet18-cifar, resnet18-imagenet or an artifact directory")
@click.option("--sparsity", type=NumberList(limits.SPARSITY_CLOSED), default="0,0.25,0.5,0.75", show_default=True,
              help="comma-separated block sparsities, each in [0, 1]")
@click.option("--phi-max", type=NumberList(limits.PHI_MAX), default="1,2", show_default=True,
              help="comma-separated FTA thresholds phi_max, each an integer in [1, 8] (and at most the macro's)")
@click.option("--geometry", default="16x16x16", show_default=True, callback=_geometries, metavar="CxNxR,...",
              help="comma-separated macro geometries n_comp x n_col x n_row")
@hw_option()
@click.option("--engine", default="ray", show_default=True, type=click.Choice(["ray", "serial"]),
              help="ray: points as Ray tasks; serial: in this process, the same CSV")
@click.option("--address", default=None, help="join this Ray cluster (e.g. auto or host:port) instead of starting "
              "a local one")
@click.option("--workers", type=Number(limits.WORKERS), default=2, show_default=True,
              help="CPUs of the local Ray cluster")
@click.option("--out", default="build/sweep", show_default=True, help=OUT_HELP)
@click.option("--no-plots", is_flag=True, help="skip sweep.png")
@verbosity_options
def command(workload, sparsity, phi_max, geometry, hw, engine, address, workers, out, no_plots):
    """Block sparsity x phi_max x macro geometry sweep of the performance model.

    Its points run as Ray tasks (or serially); writes sweep.csv, sweep.json
    and sweep.png into --out.
    """
    from dbpim.sim_bench.sweep import run_sweep
    rows = run_sweep(workload, load_hw(hw), sparsity, phi_max, geometry, out, workers, plots=not no_plots,
                     engine=engine, address=address, progress=progress())
    for r in rows:
        click.echo(f"{r['geometry [n_comp x n_col x n_row]']:>10} phi_max={r['phi_max [digits]']} "
                   f"sparsity={r['sparsity [fraction of blocks]']:.2f}: speedup {r['speedup [x]']:.2f}x, "
                   f"energy saving {r['energy_saving [%]']:.1f}%, U_system {r['utilization_system [%]']:.1f}%")
    click.echo(f"sweep written to {out}")

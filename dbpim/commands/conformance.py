"""``dbpim conformance``: a versioned set of golden-model test vectors (macro, core and chip), or a check of one."""

from __future__ import annotations

import click

from dbpim.commands._common import OUT_HELP, CommandError, hw_option, load_artifact, load_hw, verbosity_options

COMMAND = "dbpim conformance"


@click.command("conformance")
@hw_option()
@click.option("--out", default=None, metavar="DIR", help=OUT_HELP)
@click.option("--check", "check_dir", default=None, metavar="DIR", type=click.Path(file_okay=False),
              help="re-run the golden model against the set in DIR (its own config.yaml) instead of writing one; "
                   "exit status 1 on any mismatch")
@click.option("--no-real", is_flag=True, help="leave out the cases of the trained digits MLP (faster)")
@click.option("--demo-artifact", default=None, metavar="DIR",
              help="add the chip case demo_cnn: the demo network's whole program (this artifact, compiled for --hw: "
                   "build/demo/smallcnn/artifact of `make demo`) on the first test digits")
@verbosity_options
def command(hw, out, check_dir, no_real, demo_artifact):
    """Write the conformance set for a hardware configuration into --out (manifest.json, README.md,
    config.yaml, macro_*.npz, core_*.npz, chip_*.npz), or check a set with --check."""
    from dbpim.model.conformance import ConformanceError, check, write
    if (out is None) == (check_dir is None):
        raise CommandError("give exactly one of --out DIR (write a set) and --check DIR (check one)")
    if check_dir is not None:
        try:
            bad = check(check_dir)
        except ConformanceError as e:
            raise CommandError(f"--check: {e}") from None
        for line in bad:
            click.echo(line)
        click.echo(f"{check_dir}: {'agrees with the golden model' if not bad else f'{len(bad)} mismatches'}")
        if bad:
            click.get_current_context().exit(1)
        return
    from dbpim.model.outdir import check_output
    cfg = load_hw(hw)
    demo = load_artifact(demo_artifact, "--demo-artifact") if demo_artifact is not None else None
    check_output(out, COMMAND)  # before the slow part
    demo_x = None
    if demo is not None:  # the demo case's test digits: the data set is read here, at the edge
        from dbpim.model.conformance import DEMO_SAMPLES
        from dbpim.model.torch.data import load_digits
        demo_x = load_digits(0).x_test.numpy()[:DEMO_SAMPLES]
    try:
        files = write(out, cfg, real=not no_real, command=COMMAND, demo=demo, demo_x=demo_x)
    except ConformanceError as e:
        raise CommandError(f"--demo-artifact: {e}") from None
    click.echo(f"{out}: {len(files)} files (manifest.json, README.md)")

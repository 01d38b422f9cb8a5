"""``dbpim regress``: the whole RTL regression, on one design point or the shipped ones (``make test-rtl``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

from dbpim.commands._common import CommandError, Number, load_hw, verbosity_options
from dbpim.model import limits

#: The pytest marker expression of the RTL regression: every RTL test but the long ones, and the regressions
#: that close a unit's functional coverage or are marked ``regress`` (the paper-size core) even when long
#: (``make test-rtl``).
MARKERS = "rtl and (not slow or coverage or regress)"


@click.command("regress")
@click.option("--hw", default=None, metavar="YAML|NAME",
              help="run the whole regression on this hardware YAML or shipped name (default: each test's own "
                   "configurations: the blocks and the macro on small, paper and tests/odd.yaml, the core on "
                   "small and paper)")
@click.option("--jobs", type=Number(limits.WORKERS), default=2, show_default=True, metavar="N",
              help="pytest-xdist workers (tests sharing a Verilator build run on one)")
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), default=Path("build/junit-rtl.xml"),
              show_default=True, help="JUnit XML of the run (each test's seed in its properties)")
@verbosity_options
def command(hw, jobs, junit):
    """The cocotb / Verilator regression (blocks, macro, PIM core, chip units) and its coverage summary.

    With --hw every test runs on that one configuration (validated first:
    a bad YAML is one line naming the field); the exit status is pytest's.
    """
    from dbpim.verif.rtl import ROOT
    env = dict(os.environ)
    if hw is not None:
        load_hw(hw)  # a bad configuration is one line before anything builds
        env["DBPIM_HW"] = str(Path(hw).resolve()) if Path(hw).is_file() else hw
    else:
        env.pop("DBPIM_HW", None)
    if not (ROOT / "tests").is_dir() or not (ROOT / "verif").is_dir():
        raise CommandError(f"the regression's tests are not here ({ROOT}): run it from a clone of the repository")
    cmd = [sys.executable, "-m", "pytest", "-n", str(jobs), "--dist", "loadgroup", "-q", "-m", MARKERS,
           "verif", "tests", f"--junitxml={Path(junit).resolve()}"]
    click.get_current_context().exit(subprocess.call(cmd, cwd=ROOT, env=env))

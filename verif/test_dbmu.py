"""The DBMU against ``model.blocks.dbmu``, on the Amaranth simulator and on Verilator.

Exhaustive on one row (cell value x input bit), then random contents of all rows; functional coverage
(``verif.coverage.DBMUCoverage``) sampled from each column written and each read checked, closed by every run.
"""

import itertools
import os

import numpy as np
import pytest

from dbpim.model import blocks
from dbpim.verif.rtl import configs
from dbpim.verif.tb import COCOTB_TIMEOUT, env_macro, env_rng


async def dbmu_body(tb, n_row, seed, cov=None):
    """All-zero, all-one and lone-MSB columns, then random ones; each row read with x = 0 and 1."""
    rng = np.random.default_rng(seed)
    patterns = [[v] * n_row for v in (0, 1)] + [[0] * (n_row - 1) + [1]] + \
        [list(rng.integers(0, 2, n_row)) for _ in range(8)]
    for pat in patterns:
        if cov is not None:
            cov.cells(pat)
        for r, v in enumerate(pat):
            tb.set("w_en", 1)
            tb.set("w_addr", r)
            tb.set("w_data", int(v))
            await tb.tick()
        tb.set("w_en", 0)
        for r in range(n_row):
            for x in (0, 1):
                tb.set("row", r)  # read at the edge (latency 1): its products show in the next cycle
                await tb.tick()
                tb.set("row", (r + 1) % n_row)  # the next read does not change them before the next edge
                tb.set("x", x)
                await tb.settle()
                got = (tb.get("hi"), tb.get("lo"))
                assert got == blocks.dbmu(pat, r, x), f"seed {seed}: row {r} x {x} cells {pat}"
                if cov is not None:
                    cov.read(r, x, int(pat[r]), *got)
                await tb.tick()  # out of the settled phase before the next inputs


cocotb = pytest.importorskip("cocotb")


@cocotb.test(**COCOTB_TIMEOUT)
async def dbmu_rows(dut):
    from dbpim.verif.tb import cocotb_tb
    from dbpim.verif.coverage import DBMUCoverage, check_closed
    seed, _ = env_rng()
    n_row = env_macro().n_row
    cov = DBMUCoverage(n_row=n_row, prefix=f"dbmu{next(_RUNS)}")
    await dbmu_body(await cocotb_tb(dut), n_row, seed, cov)
    check_closed(cov, stall=0.0, seed=seed, out=os.environ.get("DBPIM_COVERAGE_DIR"))


_RUNS = itertools.count()


@pytest.mark.rtl
@pytest.mark.timeout(300)
@pytest.mark.parametrize("cfg", configs("dbmu"))
def test_dbmu_rtl(cfg):
    from dbpim.verif.rtl import ROOT, config_tag, run_cocotb
    run_cocotb("dbmu", cfg, "dbpim.verif.test_dbmu", testcase="dbmu_rows",
               env={"DBPIM_COVERAGE_DIR": str(ROOT / "build" / "coverage" / f"dbmu-{config_tag(cfg)}")})


@pytest.mark.timeout(60)
def test_dbmu_amaranth(rng):
    from dbpim.hw.dbmu import DBMU
    from dbpim.verif.coverage import DBMUCoverage, check_closed
    from dbpim.verif.tb import run_amaranth
    seed = int(rng.integers(1 << 31))
    cov = DBMUCoverage(n_row=4, prefix=f"dbmuam{next(_RUNS)}")
    run_amaranth(DBMU(n_row=4), lambda tb: dbmu_body(tb, 4, seed, cov))
    check_closed(cov, stall=0.0, seed=seed)


@pytest.mark.parametrize("bad", [0, 3, 2048, "4", True])
def test_dbmu_rejects_bad_n_row(bad):
    from dbpim.hw.dbmu import DBMU
    with pytest.raises((TypeError, ValueError), match="n_row"):
        DBMU(n_row=bad)

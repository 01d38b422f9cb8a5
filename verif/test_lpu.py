"""The LPU against ``model.blocks.lpu`` (exhaustive), on the Amaranth simulator and on Verilator; functional
coverage (``verif.coverage.LPUCoverage``) sampled from each input pair checked and closed by every run."""

import itertools
import os

import pytest

from dbpim.model import blocks
from dbpim.verif.tb import COCOTB_TIMEOUT


async def lpu_body(tb, cov=None):
    for x, q in itertools.product((0, 1), repeat=2):
        tb.set("x", x)
        tb.set("q", q)
        await tb.settle()
        want = tuple(int(v) for v in blocks.lpu(x, q))
        assert (tb.get("hi"), tb.get("lo")) == want, f"x={x} q={q}"
        if cov is not None:
            cov.products(x, q, *want)


cocotb = pytest.importorskip("cocotb")


@cocotb.test(**COCOTB_TIMEOUT)
async def lpu_exhaustive(dut):
    from dbpim.verif.coverage import LPUCoverage, check_closed
    from dbpim.verif.tb import cocotb_tb
    cov = LPUCoverage(prefix=f"lpu{next(_RUNS)}")
    await lpu_body(await cocotb_tb(dut), cov)
    check_closed(cov, stall=0.0, seed=0, out=os.environ.get("DBPIM_COVERAGE_DIR"))


_RUNS = itertools.count()


@pytest.mark.rtl
@pytest.mark.timeout(300)
@pytest.mark.xdist_group("rtl-lpu")
def test_lpu_rtl():
    from dbpim.verif.rtl import ROOT, rtl_config, run_cocotb
    run_cocotb("lpu", rtl_config("small"), "dbpim.verif.test_lpu", testcase="lpu_exhaustive",
               env={"DBPIM_COVERAGE_DIR": str(ROOT / "build" / "coverage" / "lpu")})


@pytest.mark.timeout(60)
def test_lpu_amaranth():
    from dbpim.hw.lpu import LPU
    from dbpim.verif.coverage import LPUCoverage, check_closed
    from dbpim.verif.tb import run_amaranth
    cov = LPUCoverage(prefix=f"lpuam{next(_RUNS)}")
    run_amaranth(LPU(), lambda tb: lpu_body(tb, cov))
    check_closed(cov, stall=0.0, seed=0)

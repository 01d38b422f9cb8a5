"""The LPU against ``model.blocks.lpu`` (exhaustive), on the Amaranth simulator and on Verilator."""

import itertools

import pytest

from dbpim.model import blocks
from dbpim.verif.tb import COCOTB_TIMEOUT


async def lpu_body(tb):
    for x, q in itertools.product((0, 1), repeat=2):
        tb.set("x", x)
        tb.set("q", q)
        await tb.settle()
        want = tuple(int(v) for v in blocks.lpu(x, q))
        assert (tb.get("hi"), tb.get("lo")) == want, f"x={x} q={q}"


cocotb = pytest.importorskip("cocotb")


@cocotb.test(**COCOTB_TIMEOUT)
async def lpu_exhaustive(dut):
    from dbpim.verif.tb import cocotb_tb
    await lpu_body(await cocotb_tb(dut))


@pytest.mark.rtl
@pytest.mark.timeout(300)
@pytest.mark.xdist_group("rtl-lpu")
def test_lpu_rtl():
    from dbpim.verif.rtl import rtl_config, run_cocotb
    run_cocotb("lpu", rtl_config("small"), "dbpim.verif.test_lpu", testcase="lpu_exhaustive")


@pytest.mark.timeout(60)
def test_lpu_amaranth():
    from dbpim.hw.lpu import LPU
    from dbpim.verif.tb import run_amaranth
    run_amaranth(LPU(), lpu_body)

"""cocotb regression of the LPU and the DBMU against model.blocks (exhaustive where small)."""

import itertools

import pytest

cocotb = pytest.importorskip("cocotb")
from cocotb.triggers import ReadOnly, RisingEdge, Timer  # noqa: E402

from model import blocks  # noqa: E402
from verif.cocotb_util import env_rng, macro_cfg, setup  # noqa: E402


@cocotb.test()
async def lpu_exhaustive(dut):
    for x, q in itertools.product((0, 1), repeat=2):
        dut.x.value = x
        dut.q.value = q
        await Timer(1, unit="ns")
        want = tuple(int(v) for v in blocks.lpu(x, q))
        assert (int(dut.hi.value), int(dut.lo.value)) == want, f"x={x} q={q}"


@cocotb.test()
async def dbmu_rows(dut):
    seed, rng = env_rng()
    n_row = macro_cfg().n_row
    await setup(dut, ("w_en", "w_addr", "w_data", "row", "x"))
    # exhaustive on one row (cell value x input bit), then random contents of all rows
    patterns = [[v] * n_row for v in (0, 1)] + [list(rng.integers(0, 2, n_row)) for _ in range(8)]
    for pat in patterns:
        for r, v in enumerate(pat):
            dut.w_en.value, dut.w_addr.value, dut.w_data.value = 1, r, int(v)
            await RisingEdge(dut.clk)
        dut.w_en.value = 0
        for r in range(n_row):
            for x in (0, 1):
                dut.row.value, dut.x.value = r, x
                await ReadOnly()
                got = (int(dut.hi.value), int(dut.lo.value))
                assert got == blocks.dbmu(pat, r, x), f"seed {seed}: row {r} x {x} cells {pat}"
                await RisingEdge(dut.clk)


@pytest.mark.rtl
@pytest.mark.xdist_group("rtl-lpu")
def test_lpu_rtl():
    from verif.rtl import run_cocotb
    run_cocotb("lpu", "small", "verif.test_lpu", testcase="lpu_exhaustive")


@pytest.mark.rtl
@pytest.mark.xdist_group("rtl-dbmu")
@pytest.mark.parametrize("cfg", ["small", "paper"])
def test_dbmu_rtl(cfg):
    from verif.rtl import run_cocotb
    run_cocotb("dbmu", cfg, "verif.test_lpu", testcase="dbmu_rows")

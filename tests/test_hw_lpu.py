"""LPU and DBMU on the Amaranth simulator against model.blocks (exhaustive)."""

import itertools

import pytest

pytest.importorskip("amaranth")
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
from amaranth.sim import Simulator  # noqa: E402

from hw.dbmu import DBMU  # noqa: E402
from hw.lpu import LPU  # noqa: E402
from model import blocks  # noqa: E402


def test_lpu_exhaustive():
    dut = LPU()

    async def bench(ctx):
        for x, q in itertools.product((0, 1), repeat=2):
            ctx.set(dut.x, x)
            ctx.set(dut.q, q)
            assert (ctx.get(dut.hi), ctx.get(dut.lo)) == tuple(int(v) for v in blocks.lpu(x, q))

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()


def test_dbmu_write_then_select():
    n_row = 4
    dut = DBMU(n_row=n_row)
    cells = [1, 0, 1, 1]

    async def bench(ctx):
        for r, v in enumerate(cells):
            ctx.set(dut.w_en, 1)
            ctx.set(dut.w_addr, r)
            ctx.set(dut.w_data, v)
            await ctx.tick()
        ctx.set(dut.w_en, 0)
        for r in range(n_row):
            for x in (0, 1):
                ctx.set(dut.row, r)
                ctx.set(dut.x, x)
                assert (ctx.get(dut.hi), ctx.get(dut.lo)) == blocks.dbmu(cells, r, x)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("bad", [0, 3, 2048, "4", True])
def test_dbmu_rejects_bad_n_row(bad):
    with pytest.raises((TypeError, ValueError), match="n_row"):
        DBMU(n_row=bad)

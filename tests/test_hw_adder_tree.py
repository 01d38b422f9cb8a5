"""CSD adder tree and shift-and-add accumulator on the Amaranth simulator."""

import numpy as np
import pytest

pytest.importorskip("amaranth")
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
from amaranth.sim import Simulator  # noqa: E402

from hw.accumulator import ShiftAddAccumulator  # noqa: E402
from hw.adder_tree import CSDAdderTree  # noqa: E402
from model import blocks  # noqa: E402


def _pairs(rng, n):
    q = rng.integers(0, 2, n)
    x = rng.integers(0, 2, n)
    return x & q, x & (1 - q)


@pytest.mark.parametrize("pipeline", [False, True])
def test_adder_tree_random(pipeline):
    n = 4
    rng = np.random.default_rng(1)
    dut = CSDAdderTree(n_comp=n, pipeline=pipeline)
    cases = []
    for _ in range(40):
        hi, lo = _pairs(rng, n)
        cases.append((hi, lo, rng.integers(0, 4, n), rng.integers(0, 2, n)))
    cases.append((np.ones(n, int), np.zeros(n, int), np.full(n, 3), np.ones(n, int)))  # -n*128

    async def bench(ctx):
        for hi, lo, idx, sign in cases:
            ctx.set(dut.hi, sum(int(v) << c for c, v in enumerate(hi)))
            ctx.set(dut.lo, sum(int(v) << c for c, v in enumerate(lo)))
            ctx.set(dut.idx.as_value(), sum(int(v) << (2 * c) for c, v in enumerate(idx)))
            ctx.set(dut.sign, sum(int(v) << c for c, v in enumerate(sign)))
            ctx.set(dut.i_valid, 1)
            if pipeline:
                await ctx.tick()
            assert ctx.get(dut.sum) == int(blocks.adder_tree(hi, lo, idx, sign))
            assert ctx.get(dut.o_valid) == 1

    sim = Simulator(dut)
    if pipeline:
        sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def test_adder_tree_params():
    with pytest.raises(ValueError, match="n_comp"):
        CSDAdderTree(n_comp=3)
    with pytest.raises(TypeError, match="pipeline"):
        CSDAdderTree(n_comp=4, pipeline=1)


@pytest.mark.parametrize("signed", [False, True])
def test_accumulator_random(signed):
    n_comp, n_col, n_row = 4, 4, 4
    rng = np.random.default_rng(2)
    dut = ShiftAddAccumulator(n_comp=n_comp, n_col=n_col, n_row=n_row)
    col_filter = np.array([0, 0, 1, -1])
    T = 12
    lim = n_comp * 128
    cs = rng.integers(-lim, lim + 1, (T, n_col))
    cs[0] = -lim
    bits = rng.integers(0, 8, T)
    bits[:2] = 7

    async def bench(ctx):
        for j, s in enumerate(col_filter):
            ctx.set(dut.m_en, 1)
            ctx.set(dut.m_col, j)
            ctx.set(dut.m_slot, max(int(s), 0))
            ctx.set(dut.m_used, int(s >= 0))
            await ctx.tick()
        ctx.set(dut.m_en, 0)
        ctx.set(dut.signed_in, int(signed))
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        for t in range(T):
            for j in range(n_col):
                ctx.set(dut.col_sum[j], int(cs[t, j]))
            ctx.set(dut.b, int(bits[t]))
            ctx.set(dut.valid, 1)
            await ctx.tick()
        ctx.set(dut.valid, 0)
        want = blocks.accumulator(cs, bits, col_filter, signed=signed)
        assert [ctx.get(dut.acc[s]) for s in range(n_col)] == list(want)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()

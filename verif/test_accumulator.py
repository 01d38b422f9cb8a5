"""The shift-and-add accumulator against ``model.blocks.accumulator``, on the Amaranth simulator and on Verilator.

Column maps with phi 0/1/2 mixes, unused columns, all columns into one slot;
per map, unsigned and signed step sequences as the IPU issues them (a subset of
the bit columns per cell row, with random valid gaps), the first with every
column of every row at extreme sums (the widths' worst case). Functional
coverage (``verif.coverage.AccumulatorCoverage``) is sampled from each vector
checked and closed by every run.
"""

import itertools
import os

import numpy as np
import pytest

from dbpim.model import blocks, spec
from dbpim.model.spec import bits_for
from dbpim.verif.rtl import configs
from dbpim.verif.tb import COCOTB_TIMEOUT, env_macro, env_rng


def column_maps(rng, n_col, phi_max, k):
    """Column-to-slot maps: all to slot 0, none used, two columns + one + unused, then random ones."""
    out = [np.zeros(n_col, int), np.full(n_col, -1), np.r_[0, 0, 1, np.full(n_col - 3, -1)]]
    for _ in range(k):
        cf, col, slot = np.full(n_col, -1), 0, 0
        while col < n_col:
            phi = int(rng.integers(0, phi_max + 1))
            if phi and col + phi <= n_col:
                cf[col:col + phi] = slot
                col += phi
            elif phi == 0 and rng.random() < 0.3:
                col += 1  # leave a column unused
            slot += 1
        out.append(np.minimum(cf, n_col - 1))
    return out


async def accumulator_body(tb, mc, seed, n_maps=8, cov=None):
    rng = np.random.default_rng(seed)
    n_col, in_bits = mc.n_col, mc.in_bits
    accw = spec.acc_width(mc.n_comp, n_col, mc.n_row, in_bits)
    csw = spec.col_sum_width(mc.n_comp)
    lim = mc.n_comp * spec.TERM_MAX
    for vec, cf in enumerate(column_maps(rng, n_col, mc.phi_max, n_maps)):
        tb.set("m_en", 1)  # the whole map in one cycle
        tb.set("m_slot", sum(max(int(s), 0) << (bits_for(n_col - 1) * j) for j, s in enumerate(cf)))
        tb.set("m_used", sum(int(s >= 0) << j for j, s in enumerate(cf)))
        await tb.tick()
        tb.set("m_en", 0)
        for signed in (False, True):
            if vec == 0:  # worst case: every column of every row, extreme sums
                bits = np.tile(np.arange(in_bits), mc.n_row)
                cs = np.full((bits.size, n_col), -lim if signed else lim)
            else:
                bits = np.concatenate([np.nonzero(rng.random(in_bits) < 0.5)[0] for _ in range(mc.n_row)])
                cs = rng.integers(-lim, lim + 1, (bits.size, n_col))
            tb.set("signed_in", int(signed))
            tb.set("clear", 1)
            await tb.tick()
            tb.set("clear", 0)
            t, gap = 0, False
            while t < bits.size:
                if rng.random() < 0.2:  # valid gap
                    tb.set("valid", 0)
                    gap = gap or t > 0
                else:
                    tb.set("col_sum", spec.pack([("c", csw, n_col, True)], {"c": cs[t]}))
                    tb.set("b", int(bits[t]))
                    tb.set("valid", 1)
                    t += 1
                await tb.tick()
            tb.set("valid", 0)
            await tb.settle()
            got = spec.unpack([("a", accw, n_col, True)], tb.get("acc"))["a"]
            want = blocks.accumulator(cs, bits, cf, signed=signed, in_bits=in_bits)
            assert got == list(want), f"seed {seed}: map {list(cf)} signed {signed}: got {got}, want {list(want)}"
            if cov is not None:
                cov.vector(cs, bits, cf, signed, gap=gap)
            await tb.tick()


cocotb = pytest.importorskip("cocotb")


@cocotb.test(**COCOTB_TIMEOUT)
async def accumulator_vectors(dut):
    from dbpim.verif.tb import cocotb_tb
    from dbpim.verif.coverage import AccumulatorCoverage, check_closed
    seed, _ = env_rng()
    mc = env_macro()
    cov = AccumulatorCoverage(macro=mc, prefix=f"accumulator{next(_RUNS)}")
    await accumulator_body(await cocotb_tb(dut), mc, seed, cov=cov)
    check_closed(cov, stall=0.0, seed=seed, out=os.environ.get("DBPIM_COVERAGE_DIR"))


_RUNS = itertools.count()


@pytest.mark.rtl
@pytest.mark.timeout(300)
@pytest.mark.parametrize("cfg", configs("accumulator"))
def test_accumulator_rtl(cfg):
    from dbpim.verif.rtl import ROOT, config_tag, run_cocotb
    run_cocotb("accumulator", cfg, "dbpim.verif.test_accumulator", testcase="accumulator_vectors",
               env={"DBPIM_COVERAGE_DIR": str(ROOT / "build" / "coverage" / f"accumulator-{config_tag(cfg)}")})


@pytest.mark.timeout(120)
def test_accumulator_amaranth(rng):
    from dbpim.hw.accumulator import ShiftAddAccumulator
    from dbpim.model.config import load_config
    from dbpim.verif.coverage import AccumulatorCoverage, check_closed
    from dbpim.verif.tb import run_amaranth
    mc = load_config("small").macro
    seed = int(rng.integers(1 << 31))
    cov = AccumulatorCoverage(macro=mc, prefix=f"accumulatoram{next(_RUNS)}")
    run_amaranth(ShiftAddAccumulator.from_config(mc), lambda tb: accumulator_body(tb, mc, seed, n_maps=3, cov=cov))
    check_closed(cov, stall=0.0, seed=seed)

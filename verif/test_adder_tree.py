"""The CSD adder tree against ``model.blocks.adder_tree``, on the Amaranth simulator and on Verilator.

Corners (all zero, all -128, all +1, all +128 per compartment, each
(idx, sign, hi or lo) of a product) and random (hi, lo, idx, sign) steps; the pipelined tree is checked one cycle later.
Functional coverage (``verif.coverage.AdderTreeCoverage``) is sampled from each
step checked and closed by every run.
"""

import dataclasses
import itertools
import os

import numpy as np
import pytest

from dbpim.model import blocks
from dbpim.verif.rtl import configs
from dbpim.verif.tb import COCOTB_TIMEOUT, env_macro, env_rng


def _vec(bits, width=1):
    return sum(int(v) << (width * k) for k, v in enumerate(bits))


def tree_cases(rng, n, count):
    cases = [  # corners: all zero, all -128 (hi at idx 3, negative), all +1 (lo at idx 0), all +128
        (np.zeros(n, int), np.zeros(n, int), np.zeros(n, int), np.zeros(n, int)),
        (np.ones(n, int), np.zeros(n, int), np.full(n, 3), np.ones(n, int)),
        (np.zeros(n, int), np.ones(n, int), np.zeros(n, int), np.zeros(n, int)),
        (np.ones(n, int), np.zeros(n, int), np.full(n, 3), np.zeros(n, int)),
    ]
    combos = list(itertools.product(range(4), (0, 1), (1, 0)))  # every (idx, sign, hi or lo) of one product
    for k in range(0, len(combos), n):  # ... n at a time, one per compartment
        hi, lo, idx, sign = (np.zeros(n, int) for _ in range(4))
        for c, (i, sg, h) in enumerate(combos[k:k + n]):
            hi[c], lo[c], idx[c], sign[c] = h, 1 - h, i, sg
        cases.append((hi, lo, idx, sign))
    while len(cases) < count:
        q, x = rng.integers(0, 2, n), rng.integers(0, 2, n)
        cases.append((x & q, x & (1 - q), rng.integers(0, 4, n), rng.integers(0, 2, n)))
    return cases


async def adder_tree_body(tb, n_comp, pipeline, seed, count=400, cov=None):
    cases = tree_cases(np.random.default_rng(seed), n_comp, count)
    want = [int(blocks.adder_tree(*c)) for c in cases]
    lat = int(pipeline)
    for t in range(len(cases) + lat):
        if t < len(cases):
            hi, lo, idx, sign = cases[t]
            tb.set("hi", _vec(hi))
            tb.set("lo", _vec(lo))
            tb.set("sign", _vec(sign))
            tb.set("idx", _vec(idx, 2))
            tb.set("i_valid", 1)
        else:
            tb.set("i_valid", 0)
        await tb.settle()
        if t >= lat:
            got = tb.get_signed("sum")
            assert got == want[t - lat], f"seed {seed}: case {t - lat} {cases[t - lat]}: got {got}"
            assert tb.get("o_valid") == 1
            if cov is not None:
                cov.step(*cases[t - lat], got)
        if tb.clocked:
            await tb.tick()


cocotb = pytest.importorskip("cocotb")


@cocotb.test(**COCOTB_TIMEOUT)
async def adder_tree_stream(dut):
    from dbpim.verif.tb import cocotb_tb
    from dbpim.verif.coverage import AdderTreeCoverage, check_closed
    seed, _ = env_rng()
    mc = env_macro()
    cov = AdderTreeCoverage(n_comp=mc.n_comp, prefix=f"adder_tree{next(_RUNS)}")
    await adder_tree_body(await cocotb_tb(dut), mc.n_comp, mc.pipeline, seed, cov=cov)
    check_closed(cov, stall=0.0, seed=seed, out=os.environ.get("DBPIM_COVERAGE_DIR"))


_RUNS = itertools.count()


@pytest.mark.rtl
@pytest.mark.timeout(300)
@pytest.mark.parametrize("cfg", configs("adder_tree"))
def test_adder_tree_rtl(cfg):
    from dbpim.verif.rtl import ROOT, config_tag, run_cocotb
    run_cocotb("adder_tree", cfg, "dbpim.verif.test_adder_tree", testcase="adder_tree_stream",
               env={"DBPIM_COVERAGE_DIR": str(ROOT / "build" / "coverage" / f"adder_tree-{config_tag(cfg)}")})


@pytest.mark.timeout(60)
@pytest.mark.parametrize("pipeline", [False, True])
def test_adder_tree_amaranth(pipeline, rng):
    from dbpim.hw.adder_tree import CSDAdderTree
    from dbpim.model.config import load_config
    from dbpim.verif.coverage import AdderTreeCoverage, check_closed
    from dbpim.verif.tb import run_amaranth
    mc = dataclasses.replace(load_config("small").macro, pipeline=pipeline)
    seed = int(rng.integers(1 << 31))
    cov = AdderTreeCoverage(n_comp=mc.n_comp, prefix=f"adder_treeam{next(_RUNS)}")
    run_amaranth(CSDAdderTree.from_config(mc),
                 lambda tb: adder_tree_body(tb, mc.n_comp, pipeline, seed, count=60, cov=cov))
    check_closed(cov, stall=0.0, seed=seed)


def test_adder_tree_params():
    from dbpim.hw.adder_tree import CSDAdderTree
    with pytest.raises(ValueError, match="n_comp"):
        CSDAdderTree(n_comp=3)
    with pytest.raises(TypeError, match="pipeline"):
        CSDAdderTree(n_comp=4, pipeline=1)

"""The SIMD core against ``model.simd_ops``, on the Amaranth simulator and on Verilator (docs/design.md §14).

Every op runs on random tensors (channels not a multiple of the lanes) with
random valid gaps and back-pressure (the ``stall`` axis; 0 = full rate);
each output beat is compared in order with the twin's, at full rate the cycles
from the descriptor's acceptance to the last output beat equal
:func:`model.simd_core.simd_cycles`, and under stalls the cycle of every input
take and output beat equals :func:`model.simd_core.simd_schedule`'s replay of
the recorded environment (:mod:`verif.simd_tb`). Each run also sends a
descriptor with each cause of ``err`` and resets the core while a pooling job
runs (:func:`verif.simd_tb.simd_body`), and its functional coverage
(:data:`verif.coverage.SIMD_REQUIRED`) must close: the Verilator runs write
``build/coverage/simd-<cfg>-stall<s>/coverage.{json,txt}``.
"""

import itertools

import numpy as np
import pytest

from dbpim.verif.rtl import configs
from dbpim.verif.simd_tb import expected_cycles, run_jobs, simd_body, simd_jobs
from dbpim.verif.tb import COCOTB_TIMEOUT, env_rng

STALLS = [0.0, 0.3]


def check_cycles(cycles, jobs, lanes, stall, seed):
    """Full rate: each job's cycles are simd_cycles; with stalls never fewer (the exact ones: run_jobs)."""
    want = expected_cycles(jobs, lanes)
    if stall == 0:
        assert cycles == want, f"seed {seed}: cycles {cycles}, simd_cycles {want}"
    else:
        assert all(c >= w for c, w in zip(cycles, want)), f"seed {seed}: cycles {cycles} < simd_cycles {want}"


cocotb = pytest.importorskip("cocotb")


@cocotb.test(**COCOTB_TIMEOUT)
async def simd_stream(dut):
    import os

    from dbpim.hw.simd import SIMDCore
    from dbpim.model.config import load_config
    from dbpim.verif.coverage import SIMDCoverage, check_closed
    from dbpim.verif.tb import cocotb_tb, env_stall
    seed, _ = env_rng()
    lanes = load_config(os.environ.get("DBPIM_CFG", "small")).system.simd_lanes
    jobs = simd_jobs(np.random.default_rng(seed), lanes, lanes + 3)
    tb = await cocotb_tb(dut)
    cov = SIMDCoverage(prefix=f"simd{next(_RUNS)}")
    cycles = await simd_body(tb, jobs, lanes, SIMDCore.DEFAULT_CHANNELS, seed, cov)
    check_cycles(cycles, jobs, lanes, env_stall(), seed)
    check_closed(cov, stall=env_stall(), seed=seed, out=os.environ.get("DBPIM_COVERAGE_DIR"))


_RUNS = itertools.count()


@pytest.mark.rtl
@pytest.mark.timeout(600)
@pytest.mark.parametrize("stall", STALLS)
@pytest.mark.parametrize("cfg", configs("simd"))
def test_simd_rtl(cfg, stall):
    from dbpim.verif.rtl import ROOT, config_tag, run_cocotb
    cov = ROOT / "build" / "coverage" / f"simd-{config_tag(cfg)}-stall{stall}"
    run_cocotb("simd", cfg, "dbpim.verif.test_simd", testcase="simd_stream", stall=stall,
               env={"DBPIM_COVERAGE_DIR": str(cov)})


@pytest.mark.timeout(300)
@pytest.mark.parametrize("lanes,channels,stall", [(4, 6, 0.0), (4, 6, 0.3), (1, 3, 0.0), (3, 7, 0.4), (8, 5, 0.2)])
def test_simd_amaranth(lanes, channels, stall, rng):
    """Core of 8 channels; lanes 8 is one channel group (a 1-bit constant address)."""
    from dbpim.hw.simd import SIMDCore
    from dbpim.verif.tb import run_amaranth
    seed = int(rng.integers(1 << 31))
    jobs = simd_jobs(np.random.default_rng(seed), lanes, channels)
    cycles = run_amaranth(SIMDCore(lanes=lanes, channels=8), lambda tb: run_jobs(tb, jobs, lanes, 8, seed),
                          stall=stall, seed=seed)
    check_cycles(cycles, jobs, lanes, stall, seed)


@pytest.mark.timeout(300)
def test_simd_body_closes_coverage(rng):
    """The whole body on the Amaranth simulator with stalls: every job exact, each bad descriptor raises ``err``
    once, a reset while a pooling job runs leaves no beat and no busy and the jobs run exactly after it; every
    required coverage bin is hit."""
    from dbpim.hw.simd import SIMDCore
    from dbpim.verif.coverage import SIMDCoverage, check_closed
    from dbpim.verif.tb import run_amaranth
    seed = int(rng.integers(1 << 31))
    jobs = simd_jobs(np.random.default_rng(seed), 4, 6)
    cov = SIMDCoverage(prefix=f"simdam{next(_RUNS)}")
    cycles = run_amaranth(SIMDCore(lanes=4, channels=8), lambda tb: simd_body(tb, jobs, 4, 8, seed, cov),
                          stall=0.3, seed=seed)
    check_cycles(cycles, jobs, 4, 0.3, seed)
    check_closed(cov, stall=0.3, seed=seed)

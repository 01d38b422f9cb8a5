"""The sparse allocation switch against ``model.blocks.switch``, on the Amaranth simulator and on Verilator.

Windows stream in with random valid gaps and leave under random back-pressure
(the ``stall`` axis; 0 = full rate); every output beat is compared in order
with the twin's, the ``empty`` strobe per window, and a reset in the middle of
a window must leave no stale beat behind. Functional coverage
(``verif.coverage.SwitchCoverage``) is sampled from each window taken, each beat
checked and the agents' records, and closed by every run.
"""

import itertools
import os

import numpy as np
import pytest

from dbpim.model import blocks, spec
from dbpim.verif.stream_checks import expect_stream, reset_mid_stream
from dbpim.verif.rtl import configs
from dbpim.verif.tb import COCOTB_TIMEOUT, env_macro, env_rng

STALLS = [0.0, 0.3]


def windows(rng, window, n, lanes=1):
    """Corner windows (empty mask, full mask, only the last input, the first k inputs for k = 1 .. lanes - 1:
    a last beat of each lane count), then random ones."""
    wins = [(np.arange(window), np.zeros(window, int)), (np.arange(window) + 1, np.ones(window, int)),
            (np.full(window, 255), np.eye(1, window, window - 1, int)[0])]
    wins += [(np.arange(window) + 3, (np.arange(window) < k).astype(int)) for k in range(1, lanes)]
    while len(wins) < n:
        wins.append((rng.integers(0, 256, window), (rng.random(window) < rng.random()).astype(int)))
    return wins


async def switch_body(tb, window, lanes, width, seed, n_windows=150, cov=None):
    rng = np.random.default_rng(seed)
    for phase in range(2):
        wins = windows(rng, window, n_windows, lanes)
        want = [b for d, m in wins for b in blocks.switch(d, m, lanes)]
        seen = await expect_stream(tb, seed, [spec.pack_switch_in(d, m, width) for d, m in wins], want,
                                   lambda w: spec.unpack_switch_out(w, lanes, width))
        assert [e[0] for e in seen] == [int(not m.any()) for _, m in wins], f"seed {seed}: empty strobes"
        if cov is not None:  # the beats the DUT gave: each one was checked equal to the twin's as it arrived
            for _, m in wins:
                cov.mask(m)
            for _, lane_en, last in want:
                cov.beat(lane_en, last)
            cov.stream(tb.source("i"), tb.sink("o"))
        if phase == 0:
            await reset_mid_stream(tb, spec.pack_switch_in(np.arange(window), np.ones(window, int), width))


cocotb = pytest.importorskip("cocotb")


@cocotb.test(**COCOTB_TIMEOUT)
async def switch_stream(dut):
    from dbpim.verif.tb import cocotb_tb
    from dbpim.verif.coverage import SwitchCoverage, check_closed
    from dbpim.verif.tb import env_stall
    seed, _ = env_rng()
    mc = env_macro()
    cov = SwitchCoverage(window=mc.n_comp, lanes=mc.lanes, prefix=f"switch{next(_RUNS)}")
    await switch_body(await cocotb_tb(dut), mc.n_comp, mc.lanes, mc.in_bits, seed, cov=cov)
    check_closed(cov, stall=env_stall(), seed=seed, out=os.environ.get("DBPIM_COVERAGE_DIR"))


_RUNS = itertools.count()


@pytest.mark.rtl
@pytest.mark.timeout(300)
@pytest.mark.parametrize("stall", STALLS)
@pytest.mark.parametrize("cfg", configs("switch"))
def test_switch_rtl(cfg, stall):
    from dbpim.verif.rtl import ROOT, config_tag, run_cocotb
    run_cocotb("switch", cfg, "dbpim.verif.test_switch", testcase="switch_stream", stall=stall,
               env={"DBPIM_COVERAGE_DIR": str(ROOT / "build" / "coverage" / f"switch-{config_tag(cfg)}-stall{stall}")})


@pytest.mark.timeout(120)
@pytest.mark.parametrize("stall", STALLS)
def test_switch_amaranth(stall, rng):
    """window 8, lanes 2: several beats per window."""
    from dbpim.hw.switch import SparseSwitch
    from dbpim.verif.coverage import SwitchCoverage, check_closed
    from dbpim.verif.tb import run_amaranth
    seed = int(rng.integers(1 << 31))
    cov = SwitchCoverage(window=8, lanes=2, prefix=f"switcham{next(_RUNS)}")
    run_amaranth(SparseSwitch(window=8, lanes=2, width=8),
                 lambda tb: switch_body(tb, 8, 2, 8, seed, n_windows=40, cov=cov), stall=stall, seed=seed)
    check_closed(cov, stall=stall, seed=seed)


def test_switch_params():
    from dbpim.hw.switch import SparseSwitch
    with pytest.raises(ValueError, match="lanes"):
        SparseSwitch(window=4, lanes=8)

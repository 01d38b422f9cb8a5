"""The IPU against ``model.blocks.ipu``, on the Amaranth simulator and on Verilator (cocotb).

Groups stream in with random valid gaps and leave under random back-pressure
(the ``stall`` axis; 0 = full rate); an in-order checker compares every output
beat with the twin's, the ``empty`` strobe is checked per group, and a reset in
the middle of a group must leave no stale beat behind. Functional coverage
(``verif.coverage.IPUCoverage``) is sampled from each group taken, each beat
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


def groups(rng, n_comp, n):
    """Corner groups (all zero, all 255, a lone MSB, alternating, MSB + LSB, each bit column alone), then random
    sparse ones."""
    gs = [np.zeros(n_comp, int), np.full(n_comp, 255), np.eye(1, n_comp, 0, int)[0] * 0x80,
          np.arange(n_comp) % 2 * 0x81, np.r_[0x80, np.zeros(n_comp - 2, int), 1]]
    gs += [np.full(n_comp, 1 << b) for b in range(8)]
    while len(gs) < n:
        g = rng.integers(0, 256, n_comp)
        g[rng.random(n_comp) < rng.random()] = 0
        gs.append(g)
    return gs


async def ipu_body(tb, mc, seed, n_groups=150, cov=None):
    rng = np.random.default_rng(seed)
    for phase in range(2):
        gs = groups(rng, mc.n_comp, n_groups)
        want = [b for g in gs for b in blocks.ipu(g, mc.in_bits)]
        seen = await expect_stream(tb, seed, [spec.pack_ipu_in(g, mc.in_bits) for g in gs], want,
                                   lambda w: spec.unpack_ipu_out(w, mc.n_comp, mc.in_bits))
        assert [e[0] for e in seen] == [int(not g.any()) for g in gs], f"seed {seed}: empty strobes"
        if cov is not None:  # the beats the DUT gave: each one was checked equal to the twin's as it arrived
            for g in gs:
                cov.group(g)
            for b, _, last in want:
                cov.beat(b, last)
            cov.stream(tb.source("i"), tb.sink("o"))
        if phase == 0:
            await reset_mid_stream(tb, spec.pack_ipu_in(np.full(mc.n_comp, 255), mc.in_bits))


cocotb = pytest.importorskip("cocotb")


@cocotb.test(**COCOTB_TIMEOUT)
async def ipu_stream(dut):
    from dbpim.verif.tb import cocotb_tb
    from dbpim.verif.coverage import IPUCoverage, check_closed
    from dbpim.verif.tb import env_stall
    seed, _ = env_rng()
    mc = env_macro()
    cov = IPUCoverage(in_bits=mc.in_bits, prefix=f"ipu{next(_RUNS)}")
    await ipu_body(await cocotb_tb(dut), mc, seed, cov=cov)
    check_closed(cov, stall=env_stall(), seed=seed, out=os.environ.get("DBPIM_COVERAGE_DIR"))


_RUNS = itertools.count()


@pytest.mark.rtl
@pytest.mark.timeout(300)
@pytest.mark.parametrize("stall", STALLS)
@pytest.mark.parametrize("cfg", configs("ipu"))
def test_ipu_rtl(cfg, stall):
    from dbpim.verif.rtl import ROOT, config_tag, run_cocotb
    run_cocotb("ipu", cfg, "dbpim.verif.test_ipu", testcase="ipu_stream", stall=stall,
               env={"DBPIM_COVERAGE_DIR": str(ROOT / "build" / "coverage" / f"ipu-{config_tag(cfg)}-stall{stall}")})


@pytest.mark.timeout(120)
@pytest.mark.parametrize("stall", STALLS)
def test_ipu_amaranth(stall, rng):
    from dbpim.hw.ipu import IPU
    from dbpim.model.config import load_config
    from dbpim.verif.coverage import IPUCoverage, check_closed
    from dbpim.verif.tb import run_amaranth
    mc = load_config("small").macro
    seed = int(rng.integers(1 << 31))
    cov = IPUCoverage(in_bits=mc.in_bits, prefix=f"ipuam{next(_RUNS)}")
    run_amaranth(IPU.from_config(mc), lambda tb: ipu_body(tb, mc, seed, n_groups=40, cov=cov), stall=stall,
                 seed=seed)
    check_closed(cov, stall=stall, seed=seed)


def test_ipu_params():
    from dbpim.hw.ipu import IPU
    with pytest.raises(ValueError, match="n_comp"):
        IPU(n_comp=6)


# --------------------------------------------------------------------------- the timeouts catch a handshake bug

@pytest.mark.rtl
@pytest.mark.timeout(300)
@pytest.mark.xdist_group("rtl-ipu-mutant")
def test_ipu_ignoring_ready_fails_fast_rtl():
    """A mutant IPU that ignores ready drops beats under back-pressure: the cocotb test must fail within
    seconds instead of hanging, at the first wrong beat, named as it arrives (not on the timeout)."""
    import time

    from dbpim.verif.mutants import IPUIgnoringReady
    from dbpim.verif.rtl import RTLFailure, build_component, run_test
    build = build_component(IPUIgnoringReady(n_comp=4), "ipu", "small-ignores-ready")
    t0 = time.perf_counter()
    with pytest.raises(RTLFailure, match=r"ipu_stream: AssertionError: seed 1 stall 0.3: o: beat \d+ of \d+ "
                                         r"\(cycle \d+\) is wrong") as e:
        run_test(build, "dbpim.verif.test_ipu", "ipu_stream", label="mutant",
                 env={"DBPIM_CFG": "small", "DBPIM_SEED": "1", "DBPIM_STALL": "0.3"})
    assert time.perf_counter() - t0 < 60
    log = str(e.value).rsplit("log: ", 1)[1]  # the failure names the simulator's log, which exists
    assert log.endswith("sim-mutant.log") and "is wrong" in open(log).read()


@pytest.mark.timeout(120)
def test_ipu_ignoring_ready_fails_fast_amaranth():
    from dbpim.verif.mutants import IPUIgnoringReady
    from dbpim.verif.tb import SimTimeout, run_amaranth
    from dbpim.model.config import load_config
    mc = load_config("small").macro
    with pytest.raises(AssertionError, match=r"o: beat \d+ of \d+ \(cycle \d+\) is wrong") as e:
        run_amaranth(IPUIgnoringReady(n_comp=4), lambda tb: ipu_body(tb, mc, 1, n_groups=40), stall=0.3, seed=1,
                     max_cycles=5000)
    assert not isinstance(e.value, SimTimeout), "the first wrong beat is named, no waiting into the timeout"

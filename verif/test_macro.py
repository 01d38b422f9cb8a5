"""The PIM macro: results, cycle counts and every handshake's cycle equal the golden model and the timing model.

One test body, :func:`macro_body`, runs on the Amaranth simulator (small
configurations, in-process) and on Verilator through cocotb (``small`` and
``paper``, both SRAM modes), at full rate and with random stalls. Tiles are
compiled by ``model.compile``: the real example layer (an MLP trained on
scikit-learn's digits, block-pruned and FTA-quantized, with its real input
activations), random layers with every phi from 0 to phi_max and -128
weights, a tile packing ``n_col`` phi = 1 filters of several groups, a tile
with filters at every phi and a one-row tile (with all-zero and lone-MSB
vectors, for the coverage of :data:`verif.coverage.MACRO_REQUIRED`).
Checked for every vector: accumulators and the ``cycles`` port
against ``model.macro.run_macro``; for every sequence: the cycle of each input
and output handshake against ``model.cycles.macro_schedule`` replaying the
same stalls (input and output double-buffered), and the tile load against
``model.cycles.tile_load_cycles``; a reset in the middle of a vector must abort
it cleanly while the loaded tile survives.
"""

import dataclasses
import itertools
import os
from pathlib import Path

import numpy as np
import pytest

from dbpim.model.cycles import tile_load_cycles
from dbpim.model.macro import run_macro
from dbpim.verif.macro_driver import MacroDriver, check_timeline, config_write, input_beats, load_cases, save_cases
from dbpim.verif.rtl import configs
from dbpim.verif.tb import COCOTB_TIMEOUT, env_macro, env_rng
from dbpim.verif.tiles import every_phi_tiles, packed_tiles, random_tiles, real_tiles, vectors_for

STALLS = [0.0, 0.3]


def make_cases(mc, rng, n_vec: int, real: bool = True):
    """``[(tile, signed, gathered vectors)]``: real tiles with real inputs, a random unsigned, a packed and a signed
    tile, then a tile with filters at every phi and a one-row tile, each with an all-zero and a lone-MSB vector."""
    cases = []
    if real:
        tiles, x_real = real_tiles(mc, n=2)
        cases += [(t, False, vectors_for(t, rng, n_vec, False, x_real[:4])) for t in tiles]
    rnd = random_tiles(mc, rng)
    packed = packed_tiles(mc, rng)[0]
    cases += [(rnd[0], False, vectors_for(rnd[0], rng, n_vec, False)),
              (packed, False, vectors_for(packed, rng, n_vec, False)),
              (rnd[-1], True, vectors_for(rnd[-1], rng, n_vec, True))]
    # the coverage bins (verif.coverage.MACRO_REQUIRED): filters at every phi, a one-row tile (K = 1),
    # a vector of all-zero inputs and one at the MSB alone (128, or -128 signed)
    one_row = random_tiles(mc, rng, K=1, sparsity=0.0)[0]
    cases += [(every_phi_tiles(mc, rng)[0], False, vectors_for(packed, rng, 2, False)),
              (one_row, True, vectors_for(one_row, rng, 2, True))]
    shape = (mc.n_row, mc.n_comp)
    for k, (t, signed, xs) in enumerate(cases):
        if k >= len(cases) - 2:
            cases[k] = (t, signed, list(xs) + [np.zeros(shape, np.int64), np.full(shape, -128 if signed else 128)])
    return cases


_RUNS = itertools.count()


async def macro_body(tb, mc, cases, seed):
    """Load each case's tile, stream its vectors, check results and timing; then a reset mid-vector; then
    the coverage of :data:`verif.coverage.MACRO_REQUIRED` (``o`` back-pressure only with stalls): a report
    in ``DBPIM_COVERAGE_DIR`` when set, and an unhit bin fails."""
    from dbpim.verif.coverage import MacroCoverage, missing, write_report
    cov = MacroCoverage(macro=mc, prefix=f"macro{next(_RUNS)}")
    drv = MacroDriver(tb, mc)
    for k, (tile, signed, xs) in enumerate(cases):
        label = f"seed {seed} stall {tb.stall}: tile {k} (signed={signed}, rows={tile.n_rows_used})"
        cov.tile(config_write(tile, signed))
        n = await drv.load(tile, signed)
        assert n == tile_load_cycles(tile.n_rows_used), f"{label}: tile load took {n} cycles"
        run = await drv.run(xs, signed)
        for v, x in enumerate(xs):
            want = run_macro(tile, x, mc, signed=signed, gathered=True)
            assert list(run.acc[v]) == list(want.acc), f"{label} vector {v}: acc {list(run.acc[v])} != {list(want.acc)}"
            assert run.cycles[v] == want.cycles, f"{label} vector {v}: cycles {run.cycles[v]} != {want.cycles}"
        check_timeline(run, tile.n_rows_used, mc.n_col, label)

    # reset in the middle of a vector: the tile stays loaded, the next vectors are exact
    tile, signed, _ = cases[-1]
    full = np.full((mc.n_row, mc.n_comp), -1 if signed else 255)
    src = tb.source("x")
    src.send(input_beats(full, signed, tile.n_rows_used))
    await src.wait(tb)
    await tb.tick(2)
    await tb.settle()
    assert tb.get("busy") == 1, f"seed {seed}: macro should be computing"
    await tb.tick()
    tb.sink("o").pause()
    await tb.reset()
    await tb.settle()
    assert tb.get("o__valid") == 0 and tb.get("busy") == 0, f"seed {seed}: reset left work behind"
    await tb.tick()
    tb.sink("o").resume()
    xs = vectors_for(tile, np.random.default_rng(seed), 4, signed)
    run = await drv.run(xs, signed)
    for v, x in enumerate(xs):
        want = run_macro(tile, x, mc, signed=signed, gathered=True)
        assert list(run.acc[v]) == list(want.acc) and run.cycles[v] == want.cycles, f"seed {seed}: after reset vector {v}"
    check_timeline(run, tile.n_rows_used, mc.n_col, f"seed {seed}: after reset")
    cov.inputs(tb.source("x"))
    cov.outputs(tb.sink("o"))
    required = {p: [b for b in bins if tb.stall or (p, b) != ("macro.backpressure", "o")]
                for p, bins in cov.required.items()}
    out = os.environ.get("DBPIM_COVERAGE_DIR")
    bad = (write_report(cov.report(), required, Path(out), meta={"seed": seed, "stall": tb.stall})
           if out else missing(cov.report(), required))
    assert not bad, f"seed {seed} stall {tb.stall}: required coverage bins unhit: {', '.join(bad)}"


# --------------------------------------------------------------------------- cocotb (Verilator)

cocotb = pytest.importorskip("cocotb")


@cocotb.test(timeout_time=COCOTB_TIMEOUT["timeout_time"] * 5, timeout_unit=COCOTB_TIMEOUT["timeout_unit"])
async def macro_cases(dut):
    from dbpim.verif.tb import cocotb_tb
    seed, _ = env_rng()
    tb = await cocotb_tb(dut)
    await macro_body(tb, env_macro(), load_cases(os.environ["DBPIM_CASES"]), seed)


def _run_rtl(cfg, stall, rng, tmp_path, sram="behavioural", n_vec=None):
    from dbpim.model.config import load_config
    from dbpim.verif.rtl import run_cocotb
    mc = load_config(cfg).macro
    seed = int(rng.integers(1 << 31))
    n_vec = n_vec or int(os.environ.get("DBPIM_MACRO_VECTORS", "12"))
    save_cases(tmp_path / "cases.npz", make_cases(mc, rng, n_vec))
    from dbpim.verif.rtl import ROOT, config_tag
    sfx = "" if sram == "behavioural" else f"-{sram}"
    cov = ROOT / "build" / "coverage" / f"macro-{config_tag(cfg)}-stall{stall}{sfx}"
    run_cocotb("macro", cfg, "dbpim.verif.test_macro", seed=seed, testcase="macro_cases", stall=stall, sram=sram,
               env={"DBPIM_CASES": str(tmp_path / "cases.npz"), "DBPIM_COVERAGE_DIR": str(cov)})


@pytest.mark.rtl
@pytest.mark.timeout(900)
@pytest.mark.parametrize("stall", STALLS)
@pytest.mark.parametrize("cfg", configs("macro"))
def test_macro_rtl(cfg, stall, rng, tmp_path):
    _run_rtl(cfg, stall, rng, tmp_path)


@pytest.mark.rtl
@pytest.mark.slow  # make test runs the blackbox memories inside the core (test_core_cocotb_sram_blackbox)
@pytest.mark.regress
@pytest.mark.timeout(600)
@pytest.mark.xdist_group("rtl-macro-blackbox")
def test_macro_rtl_sram_blackbox(rng, tmp_path):
    """The macro with its memories as SRAM wrapper instances (behavioural model) passes the same test."""
    from dbpim.verif.rtl import rtl_config
    _run_rtl(rtl_config("small"), 0.3, rng, tmp_path, sram="blackbox")


# --------------------------------------------------------------------------- Amaranth simulator

@pytest.mark.timeout(300)
@pytest.mark.parametrize("stall", STALLS)
@pytest.mark.parametrize("pipeline", [False, True])
def test_macro_amaranth(pipeline, stall, rng):
    pytest.importorskip("amaranth")
    from dbpim.hw.macro import PIMMacro
    from dbpim.model.config import load_config
    from dbpim.verif.tb import run_amaranth
    mc = dataclasses.replace(load_config("small").macro, pipeline=pipeline)
    seed = int(rng.integers(1 << 31))
    cases = make_cases(mc, rng, 6, real=False)
    run_amaranth(PIMMacro.from_config(mc), lambda tb: macro_body(tb, mc, cases, seed), stall=stall, seed=seed)


def test_macro_params():
    pytest.importorskip("amaranth")
    from dbpim.hw.macro import PIMMacro
    with pytest.raises(ValueError, match="n_col"):
        PIMMacro(n_comp=4, n_col=3, n_row=4)

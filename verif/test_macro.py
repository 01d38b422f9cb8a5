"""cocotb regression of the PIM macro: results AND cycle counts equal model.macro.run_macro.

Tiles are compiled by ``model.compile``: the real example layer (an MLP
trained on scikit-learn's digits, block-pruned and FTA-quantized, with its real
input activations) and random layers with every phi from 0 to phi_max and
-128 weights. Inputs stream in with random valid gaps, results stream out
under random back-pressure; a reset in the middle of a vector must abort it
cleanly while the loaded tile survives.
"""

import os

import pytest

cocotb = pytest.importorskip("cocotb")
import numpy as np  # noqa: E402
from cocotb.triggers import ReadOnly, RisingEdge  # noqa: E402

from model.macro import run_macro  # noqa: E402
from verif import tile_ops  # noqa: E402
from verif.cocotb_util import env_rng, macro_cfg, reset, setup  # noqa: E402
from verif.macro_tb import INPUTS, load_tile, run_vectors  # noqa: E402
from verif.tiles import random_tiles, real_tiles, vectors_for  # noqa: E402


async def _check(dut, tile, xs, signed, mc, rng, seed, label):
    acc, cyc = await run_vectors(dut, xs, signed, mc, rng)
    for v, x in enumerate(xs):
        want = run_macro(tile, x, mc, signed=signed, gathered=True)
        assert list(acc[v]) == list(want.acc), f"seed {seed}: {label} vector {v}: acc {list(acc[v])} != {list(want.acc)}"
        assert cyc[v] == want.cycles, f"seed {seed}: {label} vector {v}: cycles {cyc[v]} != {want.cycles}"


@cocotb.test()
async def macro_tiles(dut):
    seed, rng = env_rng()
    mc = macro_cfg()
    n_vec = int(os.environ.get("DBPIM_MACRO_VECTORS", "12"))
    await setup(dut, INPUTS)
    real, x_real = real_tiles(mc, n=2)
    cases = [(t, False, x_real[:4]) for t in real]
    rnd = random_tiles(mc, rng)
    cases += [(rnd[0], False, None), (rnd[-1], True, None)]
    for k, (tile, signed, xr) in enumerate(cases):
        await load_tile(dut, tile, signed)
        xs = vectors_for(tile, rng, n_vec, signed, xr)
        await _check(dut, tile, xs, signed, mc, rng, seed, f"tile {k} (signed={signed})")

    # reset in the middle of a vector: the tile stays loaded, the next vectors are exact
    tile, signed, _ = cases[-1]
    beats = tile_ops.input_beats(np.full((mc.n_row, mc.n_comp), -1 if signed else 255), signed)
    dut.x__valid.value = 1
    for b in beats:
        dut.x__payload.value = b
        await RisingEdge(dut.clk)
    dut.x__valid.value = 0
    await RisingEdge(dut.clk)
    await RisingEdge(dut.clk)
    await ReadOnly()
    assert dut.busy.value == 1, "macro should be computing"
    await RisingEdge(dut.clk)
    await reset(dut)
    xs = vectors_for(tile, rng, 4, signed)
    await _check(dut, tile, xs, signed, mc, rng, seed, "after reset")


@pytest.mark.rtl
@pytest.mark.xdist_group("rtl-macro")
@pytest.mark.parametrize("cfg", ["small", "paper"])
def test_macro_rtl(cfg):
    from verif.rtl import run_cocotb
    run_cocotb("macro", cfg, "verif.test_macro", testcase="macro_tiles")

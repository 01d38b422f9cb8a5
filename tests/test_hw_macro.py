"""The PIM macro on the Amaranth simulator: results and cycle counts equal model.macro.run_macro."""

import numpy as np
import pytest

pytest.importorskip("amaranth")
from amaranth.sim import Simulator  # noqa: E402

from hw.macro import PIMMacro  # noqa: E402
from model.config import MacroConfig  # noqa: E402
from model.macro import run_macro  # noqa: E402
from verif import tile_ops  # noqa: E402
from verif.amaranth_streams import stream_get, stream_put  # noqa: E402
from verif.tiles import random_tiles, vectors_for  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


async def _load(ctx, dut, tile, signed):
    for w in tile_ops.tile_writes(tile):
        ctx.set(dut.w_en, 1)
        for k, v in w.items():
            ctx.set(getattr(dut, k) if k != "w_idx" else dut.w_idx.as_value(), v)
        await ctx.tick()
    ctx.set(dut.w_en, 0)
    for w in tile_ops.map_writes(tile):
        ctx.set(dut.m_en, 1)
        for k, v in w.items():
            ctx.set(getattr(dut, k), v)
        await ctx.tick()
    ctx.set(dut.m_en, 0)
    ctx.set(dut.c_en, 1)
    for k, v in tile_ops.config_write(tile, signed).items():
        ctx.set(getattr(dut, k), v)
    await ctx.tick()
    ctx.set(dut.c_en, 0)


@pytest.mark.parametrize("pipeline,signed", [(False, False), (True, True)])
def test_macro_matches_golden(pipeline, signed):
    mc = MacroConfig(n_comp=4, n_col=4, n_row=4, in_bits=8, phi_max=2, lanes=2, pipeline=pipeline)
    rng = np.random.default_rng(3)
    tile = random_tiles(mc, rng)[0]
    xs = vectors_for(tile, rng, 6, signed)
    want = [run_macro(tile, x, mc, signed=signed, gathered=True) for x in xs]
    dut = PIMMacro.from_config(mc)
    loaded = []

    async def producer(ctx):
        await _load(ctx, dut, tile, signed)
        loaded.append(True)
        for x in xs:
            for beat in tile_ops.input_beats(x, signed):
                await stream_put(ctx, dut.x, beat, rng)

    async def consumer(ctx):
        for k, w in enumerate(want):
            beats = [await stream_get(ctx, dut.o, rng) for _ in range(mc.n_col)]
            acc = tile_ops.acc_from_beats(beats, mc.n_comp, mc.n_col, mc.n_row)
            assert list(acc) == list(w.acc), f"vector {k}"
            assert ctx.get(dut.cycles) == w.cycles, f"vector {k}"

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()

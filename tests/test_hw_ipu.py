"""IPU and sparse allocation switch on the Amaranth simulator, with random valid gaps and back-pressure."""

import numpy as np
import pytest

pytest.importorskip("amaranth")
from amaranth.sim import Simulator  # noqa: E402

from hw.ipu import IPU  # noqa: E402
from hw.switch import SparseSwitch  # noqa: E402
from model import blocks, spec  # noqa: E402
from verif.amaranth_streams import stream_get, stream_put  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def _run(dut, producer, consumer):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()


@pytest.mark.parametrize("seed", [0, 1])
def test_ipu_stream(seed):
    n_comp, in_bits = 4, 8
    rng = np.random.default_rng(seed)
    groups = [rng.integers(0, 256, n_comp) * (rng.random(n_comp) < 0.5) for _ in range(20)]
    groups += [np.zeros(n_comp, int), np.full(n_comp, 255), np.array([0x80, 0, 0, 1])]
    want = [beat for g in groups for beat in blocks.ipu(g, in_bits)]
    n_empty = sum(1 for g in groups if not g.any())
    dut = IPU(n_comp=n_comp, in_bits=in_bits)
    seen_empty = []

    async def producer(ctx):
        for g in groups:
            (e,) = await stream_put(ctx, dut.i, spec.pack_ipu_in(g, in_bits), rng, sample=(dut.empty,))
            seen_empty.append(int(e))

    async def consumer(ctx):
        got = []
        for _ in want:
            got.append(spec.unpack_ipu_out(await stream_get(ctx, dut.o, rng), n_comp, in_bits))
        assert got == want, f"seed {seed}"

    _run(dut, producer, consumer)
    assert sum(seen_empty) == n_empty


@pytest.mark.parametrize("seed", [0, 1])
def test_switch_stream(seed):
    window, lanes, width = 8, 2, 8
    rng = np.random.default_rng(seed)
    wins = [(rng.integers(0, 256, window), rng.integers(0, 2, window)) for _ in range(20)]
    wins += [(np.arange(window), np.zeros(window, int)), (np.arange(window) + 1, np.ones(window, int))]
    want = [beat for d, mk in wins for beat in blocks.switch(d, mk, lanes)]
    dut = SparseSwitch(window=window, lanes=lanes, width=width)

    async def producer(ctx):
        for d, mk in wins:
            await stream_put(ctx, dut.i, spec.pack_switch_in(d, mk, width), rng)

    async def consumer(ctx):
        got = []
        for _ in want:
            got.append(spec.unpack_switch_out(await stream_get(ctx, dut.o, rng), lanes, width))
        assert got == want, f"seed {seed}"

    _run(dut, producer, consumer)


def test_params():
    with pytest.raises(ValueError, match="lanes"):
        SparseSwitch(window=4, lanes=8)
    with pytest.raises(ValueError, match="n_comp"):
        IPU(n_comp=6)

"""cocotb regression of the IPU and the sparse allocation switch against model.blocks.

Streams are driven with random valid gaps and ready back-pressure; an
in-order checker compares every output beat with the twin's; a reset in the
middle of a stream must leave no stale beat behind.
"""

import pytest

cocotb = pytest.importorskip("cocotb")
import numpy as np  # noqa: E402
from cocotb.triggers import ReadOnly, RisingEdge  # noqa: E402

from model import blocks, spec  # noqa: E402
from verif.cocotb_util import StreamSink, StreamSource, env_rng, macro_cfg, reset, setup  # noqa: E402


def _groups(rng, n_comp, n):
    gs = [np.zeros(n_comp, int), np.full(n_comp, 255), np.eye(1, n_comp, 0, int)[0] * 0x80,
          np.arange(n_comp) % 2 * 0x81]
    while len(gs) < n:
        g = rng.integers(0, 256, n_comp)
        g[rng.random(n_comp) < rng.random()] = 0
        gs.append(g)
    return gs


async def _check_stream(dut, rng, seed, items, pack, expected, unpack, in_extra=("empty",)):
    """Send ``items``, receive and compare ``expected`` in order; returns the empty strobes seen."""
    src = StreamSource(dut, "i", rng, extra=in_extra)
    sink = StreamSink(dut, "o", rng)
    send = cocotb.start_soon(src.send([pack(it) for it in items]))
    got = await sink.recv(len(expected))
    seen = await send
    for k, (g, w) in enumerate(zip(got, expected)):
        assert unpack(g) == w, f"seed {seed}: beat {k}: got {unpack(g)}, want {w}"
    await ReadOnly()
    assert dut.o__valid.value == 0, f"seed {seed}: extra output beat"
    await RisingEdge(dut.clk)
    return seen


async def _reset_mid_stream(dut, payload):
    """Offer one payload, let one output beat out, then reset with the stream busy."""
    dut.i__valid.value, dut.i__payload.value, dut.o__ready.value = 1, payload, 1
    await RisingEdge(dut.clk)
    dut.i__valid.value = 0
    await RisingEdge(dut.clk)
    dut.o__ready.value = 0
    await reset(dut)
    await ReadOnly()
    assert dut.o__valid.value == 0, "reset left a beat pending"
    await RisingEdge(dut.clk)


@cocotb.test()
async def ipu_stream(dut):
    seed, rng = env_rng()
    mc = macro_cfg()
    await setup(dut, ("i__valid", "i__payload", "o__ready"))
    for phase in range(2):
        groups = _groups(rng, mc.n_comp, 150)
        want = [b for g in groups for b in blocks.ipu(g, mc.in_bits)]
        seen = await _check_stream(dut, rng, seed, groups, lambda g: spec.pack_ipu_in(g, mc.in_bits), want,
                                   lambda w: spec.unpack_ipu_out(w, mc.n_comp, mc.in_bits))
        want_empty = [int(not g.any()) for g in groups]
        assert [e[0] for e in seen] == want_empty, f"seed {seed}: empty strobes"
        if phase == 0:
            await _reset_mid_stream(dut, spec.pack_ipu_in(np.full(mc.n_comp, 255), mc.in_bits))


@cocotb.test()
async def switch_stream(dut):
    seed, rng = env_rng()
    mc = macro_cfg()
    window, lanes, width = mc.n_comp, mc.lanes, mc.in_bits
    await setup(dut, ("i__valid", "i__payload", "o__ready"))
    for phase in range(2):
        wins = [(np.arange(window), np.zeros(window, int)), (np.arange(window) + 1, np.ones(window, int))]
        wins.append((np.full(window, 255), np.eye(1, window, window - 1, int)[0]))
        while len(wins) < 150:
            wins.append((rng.integers(0, 256, window), (rng.random(window) < rng.random()).astype(int)))
        want = [b for d, m in wins for b in blocks.switch(d, m, lanes)]
        seen = await _check_stream(dut, rng, seed, wins, lambda w: spec.pack_switch_in(w[0], w[1], width), want,
                                   lambda w: spec.unpack_switch_out(w, lanes, width))
        assert [e[0] for e in seen] == [int(not m.any()) for _, m in wins], f"seed {seed}: empty strobes"
        if phase == 0:
            await _reset_mid_stream(dut, spec.pack_switch_in(np.arange(window), np.ones(window, int), width))


@pytest.mark.rtl
@pytest.mark.xdist_group("rtl-ipu")
@pytest.mark.parametrize("cfg", ["small", "paper"])
def test_ipu_rtl(cfg):
    from verif.rtl import run_cocotb
    run_cocotb("ipu", cfg, "verif.test_ipu", testcase="ipu_stream")


@pytest.mark.rtl
@pytest.mark.xdist_group("rtl-switch")
@pytest.mark.parametrize("cfg", ["small", "paper"])
def test_switch_rtl(cfg):
    from verif.rtl import run_cocotb
    run_cocotb("switch", cfg, "verif.test_ipu", testcase="switch_stream")

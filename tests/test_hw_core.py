"""The PIM core's blocks and the core on the Amaranth simulator (docs/design.md §11).

The row packer against its twin :func:`model.blocks.pack_rows` under random
stalls; the AXI4-Lite target's handshakes; the whole core on a real layer
against :func:`model.core.run_core`, results and the ``CYCLES`` register.
Whole layers and many configurations run on the native Verilator harness
and the AXI top on cocotb (``tests/test_core_rtl.py``).
"""

import numpy as np
import pytest

pytest.importorskip("amaranth")
from amaranth.hdl import Array, Elaboratable, Module, Signal  # noqa: E402
from amaranth.sim import Simulator  # noqa: E402

from dbpim.hw.axi import AXI4LiteTarget  # noqa: E402
from dbpim.hw.core import PIMCore, RowPacker  # noqa: E402
from dbpim.model import blocks, spec  # noqa: E402
from dbpim.model.config import load_config  # noqa: E402
from dbpim.model.core import (CoreParams, bus_writes, compile_program, input_windows, result_order,  # noqa: E402
                              run_core)
from dbpim.model.examples import real_layer  # noqa: E402
from dbpim.verif.tb import run_amaranth  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable"), pytest.mark.timeout(300)]


@pytest.mark.parametrize("n_comp,lanes,stall", [(4, 2, 0.3), (4, 4, 0.0), (8, 1, 0.3), (8, 8, 0.3)])
def test_row_packer_matches_twin(n_comp, lanes, stall, rng):
    beats = []
    for _ in range(12):  # vectors of random kept counts, split into windows and switch beats
        kept = list(rng.integers(1, 256, int(rng.integers(1, 3 * n_comp))))
        for w in range(0, len(kept), int(rng.integers(1, n_comp + 1))):
            window = kept[w:w + n_comp]
            pad = n_comp - len(window)
            beats += [(v, e, False) for v, e, _ in blocks.switch(window + [0] * pad, [1] * len(window) + [0] * pad,
                                                               lanes)]
        beats[-1] = (*beats[-1][:2], True)
    want = blocks.pack_rows(beats, n_comp)
    fin, fout = spec.packer_in_fields(lanes, 8), spec.packer_out_fields(n_comp, 8)

    async def body(tb):
        tb.source("i").send([spec.pack(fin, {"data": v, "lane_en": e, "last": 0, "vend": int(vend)})
                             for v, e, vend in beats])
        got = await tb.sink("o").recv(tb, len(want))
        return [(d["data"], bool(d["vend"])) for d in (spec.unpack(fout, g) for g in got)]

    seed = int(rng.integers(1 << 31))
    assert run_amaranth(RowPacker(n_comp=n_comp, lanes=lanes), body, stall=stall, seed=seed) == want


class _AxiWithRegs(Elaboratable):
    """The AXI4-Lite target over 8 plain registers (r_data = the register at r_addr)."""

    def __init__(self):
        self.t = AXI4LiteTarget(addr_width=5)

    def elaborate(self, platform):
        m = Module()
        m.submodules.t = t = self.t
        regs = Array(Signal(32, name=f"r{k}") for k in range(8))
        with m.If(t.w_en):
            m.d.sync += regs[t.w_addr].eq(t.w_data)
        m.d.comb += t.r_data.eq(regs[t.r_addr])
        return m


def test_axi4lite_target_writes_and_reads(rng):
    dut = _AxiWithRegs()
    t = dut.t
    words = {int(a): int(rng.integers(0, 1 << 32)) for a in rng.permutation(8)}
    got = {}

    async def host(ctx):
        for a, w in words.items():  # AW and W with independent random delays, B with back-pressure
            ctx.set(t.awaddr, 4 * a)
            ctx.set(t.wdata, w)
            ctx.set(t.wstrb, 0xF)
            ctx.set(t.awvalid, 1)
            for _ in range(int(rng.integers(0, 3))):
                await ctx.tick()
                assert not ctx.get(t.awready)  # waits for W
            ctx.set(t.wvalid, 1)
            await ctx.tick().until(t.awready & t.wready)
            ctx.set(t.awvalid, 0)
            ctx.set(t.wvalid, 0)
            for _ in range(int(rng.integers(0, 3))):
                await ctx.tick()
                assert ctx.get(t.bvalid) and not ctx.get(t.awready)  # response held, no new write
            ctx.set(t.bready, 1)
            await ctx.tick().until(t.bvalid)
            ctx.set(t.bready, 0)
        for a in words:
            ctx.set(t.araddr, 4 * a)
            ctx.set(t.arvalid, 1)
            await ctx.tick().until(t.arready)
            ctx.set(t.arvalid, 0)
            for _ in range(int(rng.integers(0, 3))):
                await ctx.tick()
            ctx.set(t.rready, 1)
            (data, resp) = await ctx.tick().sample(t.rdata, t.rresp).until(t.rvalid)
            ctx.set(t.rready, 0)
            assert resp == 0
            got[a] = int(data)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(host)
    sim.run_until(1e-3)
    assert got == words


@pytest.mark.parametrize("banks,out_banks,in_windows,lanes", [
    (1, 1, 1, 1), (2, 1, 1, 1), (1, 2, 1, 1), (2, 2, 1, 1), (1, 1, 2, 1),
    pytest.param(2, 2, 2, 1, marks=pytest.mark.slow),  # (2, 2, 2, 2) runs all four options in make test
    pytest.param(1, 1, 1, 2, marks=pytest.mark.slow), (2, 2, 2, 2)])
def test_core_on_a_real_layer_amaranth(banks, out_banks, in_windows, lanes):
    """The digits MLP's first layer (5 vectors as 5 pixels: rounds of 2 and a short one) on the small core:
    results and CYCLES exact (one START at full rate on the internal register bus), with one tile bank and
    with two (each pass's tile loaded while the pass before it computes), with one output bank and with two
    (a filter tile's results stream while the next filter tile computes), with one input window a beat and
    with two (both macros' vectors delivered at once: fewer cycles than one window, same results), with one
    result a beat and with two (both macros' results of a filter at once, TKEEP low on the round of one pixel:
    fewer cycles, same results)."""
    hw = load_config("small").replace(core={"tile_banks": banks, "out_banks": out_banks, "in_windows": in_windows,
                                            "result_lanes": lanes})
    rl = real_layer(hw.macro)
    x = np.asarray(rl.x, np.int64)[:5]
    program = compile_program(rl.compiled, x.shape[0], CoreParams.from_config(hw))
    assert len(program.segments) == 1
    seg = program.segments[0]
    assert len(seg.passes) >= 3
    want = run_core(program, x)
    if in_windows > 1:  # the model counts fewer cycles than with one window a beat
        one = compile_program(rl.compiled, x.shape[0], CoreParams.from_config(hw.replace(core={"in_windows": 1})))
        assert want.cycles[0].sum() < run_core(one, x).cycles[0].sum()
    if lanes > 1:  # fewer cycles than one result a beat
        one = compile_program(rl.compiled, x.shape[0], CoreParams.from_config(hw.replace(core={"result_lanes": 1})))
        assert want.cycles[0].sum() < run_core(one, x).cycles[0].sum()
    order = np.concatenate([result_order(p.pixels, p.n_out, lanes) for p in seg.passes if p.last])
    regs = {n: w for n, (w, _, _) in spec.CORE_REGS.items()}
    wf = spec.window_fields(hw.macro.n_comp, hw.macro.in_bits, in_windows)
    rf = spec.result_fields(CoreParams.from_config(hw).psum_width, lanes)

    dut = PIMCore.from_config(hw)
    seen = []  # (prefetching, computing) every cycle after START

    async def body(tb):
        tb._values.update(dut.probes)  # elaborated by now
        tick = tb.tick

        async def watched_tick(n=1):
            for _ in range(n):
                await tick()
                seen.append((tb.get("prefetching"), tb.get("computing") or tb.get("delivering"),
                             tb.get("streaming")))

        tb.set("w_strb", 0xF)
        for a, w in bus_writes(program, seg):
            tb.set("w_en", 1)
            tb.set("w_addr", a >> 2)
            tb.set("w_data", w)
            await tb.tick()
        tb.source("x").send([spec.pack(wf, {"data": w}) for w in input_windows(program, seg, x)])
        tb.set("w_addr", regs["CTRL"])
        tb.set("w_data", 1)
        await tb.tick()
        tb.set("w_en", 0)
        tb.tick = watched_tick
        if lanes > 1:
            tb.sink("o").extra = ("o_keep",)
        beats = await tb.sink("o").recv(tb, len(order))
        while not tb.get("done"):
            await tb.tick()
        info = {}
        for name in ("CYCLES", "STATUS"):
            tb.set("r_addr", regs[name])
            await tb.settle()
            info[name] = tb.get("r_data")
        if lanes == 1:
            return [spec.unpack(rf, b)["psum"] for b in beats], info
        keep = [[(k >> i) & 1 for i in range(lanes)] for _, k in beats]
        assert keep == (order >= 0).astype(int).tolist(), "o_keep: the lanes holding a pixel"
        return [v for (b, k), kk in zip(beats, keep) for v, kp in zip(spec.unpack(rf, b)["psum"], kk) if kp], info

    beats, info = run_amaranth(dut, body, max_cycles=2 * want.total_cycles + 5000)
    assert beats == list(want.beats[0])
    assert info["STATUS"] == 0b010  # done, no error
    assert info["CYCLES"] == want.cycles[0]
    # two banks: the next pass's tile rows are written while the macros compute (none with one bank)
    overlap = sum(1 for p, c, _ in seen if p and c)
    assert (overlap > 0) if banks == 2 else not any(p for p, _, _ in seen)
    # two output banks: results leave while the next pass takes inputs or computes (never with one)
    hidden = sum(1 for _, c, o in seen if c and o)
    assert (hidden > 0) if out_banks == 2 else hidden == 0


def test_in_windows_widen_the_input_stream_and_must_divide_the_macros():
    """core.in_windows W: the core's ``x`` and the AXI top's ``s_axis_tdata`` carry W windows; a W that does not
    divide the macros is refused with one line naming in_windows."""
    from dbpim.hw.core import PIMCoreAXI
    hw = load_config("small")
    n = hw.macro.n_comp * hw.macro.in_bits
    for W in (1, 2):
        cfg = hw.replace(core={"in_windows": W})
        assert len(PIMCoreAXI.from_config(cfg).s_axis_tdata) == W * n
        assert len(PIMCore.from_config(cfg).x.payload.as_value()) == W * n
    with pytest.raises(ValueError, match="in_windows must be a positive integer dividing macros"):
        PIMCore(n_comp=4, n_col=4, n_row=4, lanes=2, macros=3, tile_slots=4, descriptors=4, mask_windows=8,
                out_pixels=8, max_row_tiles=4, in_windows=2)


def test_result_lanes_widen_the_result_stream_and_must_divide_the_macros():
    """core.result_lanes L: the core's ``o`` and the AXI top's ``m_axis_tdata`` carry L results, ``m_axis_tkeep``
    a byte enable each of their bytes (none with L = 1: the ports as before); an L that does not divide the
    macros is refused with one line naming result_lanes, and the chip (one result a beat) refuses L > 1."""
    from dbpim.hw.chip import DBPIMChip
    from dbpim.hw.core import PIMCoreAXI
    hw = load_config("small")
    rw = CoreParams.from_config(hw).derived.result_bits
    for L in (1, 2):
        cfg = hw.replace(core={"result_lanes": L})
        top = PIMCoreAXI.from_config(cfg)
        assert len(top.m_axis_tdata) == L * rw
        assert hasattr(top, "m_axis_tkeep") == (L > 1) and (L == 1 or len(top.m_axis_tkeep) == L * rw // 8)
        assert len(PIMCore.from_config(cfg).o.payload.as_value()) == L * rw
    with pytest.raises(ValueError, match="result_lanes must be a positive integer dividing macros"):
        PIMCore(n_comp=4, n_col=4, n_row=4, lanes=2, macros=3, tile_slots=4, descriptors=4, mask_windows=8,
                out_pixels=8, max_row_tiles=4, result_lanes=2)
    # the chip takes L results a beat into its result buffers (docs/design.md §15 "Result lanes on the chip")
    chip = DBPIMChip.from_config(hw.replace(core={"result_lanes": 2}))
    assert chip.core["result_lanes"] == 2 and "result_lanes" not in DBPIMChip.from_config(hw).core
    from dbpim.model.chip import _core_params  # and the chip's compiler
    assert _core_params(hw.macro, hw.replace(core={"result_lanes": 2})).core.result_lanes == 2

"""cocotb: the PIM core top through cocotbext-axi, random delays on every channel, registers in random order,
and the functional coverage of :mod:`verif.coverage` (run by ``tests/test_core_coverage.py``).

* AXI4-Lite (``AxiLiteMaster``) with a random pause generator on each of AW, W, B, AR and R; AXI4-Stream input
  (``AxiStreamSource``) and results (``AxiStreamSink``) with random pauses too;
* each segment's program (tile store, column maps, masks, descriptors, ``LAYER``) is written in a random
  order, the writes issued back to back (several outstanding), ``CTRL.START`` only after every write's
  response (the one order the protocol fixes);
* the layers are :func:`verif.core_tb.coverage_layers` (designed to reach the descriptor extremes) and a
  random one; every result beat, ``tlast`` and ``STATUS`` equal the golden twin :func:`model.core.run_core`;
* a ``START`` with no descriptor; each ``STATUS.ERROR_CODE`` (a bad descriptor, an accumulation without a
  first pass, masks that disagree with ``n_kept``) followed by a good START; resets a growing number of
  cycles after START's handshake until a reset has reached every controller state (each followed by an
  exact rerun).

A :class:`verif.core_tb.CoreMonitor` samples the coverage from the DUT; at the end the report goes to
``DBPIM_COVERAGE_DIR`` (``coverage.json``, ``coverage.txt``) and the test fails naming every unhit required
bin. Every failure names the seed (``DBPIM_SEED``).
"""

import logging
import os
from pathlib import Path

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge, SimTimeoutError, with_timeout

from dbpim.model import spec
from dbpim.model.config import load_config
from dbpim.model.core import bus_writes, input_windows, run_core
from dbpim.verif.tb import CLOCK_NS, env_rng, pause_generator

#: probability that a channel pauses in a cycle (each of AW, W, B, AR, R, s_axis, m_axis)
P_PAUSE = 0.3


class _Core:
    """The DUT behind cocotbext-axi: register writes and reads, a START with its windows and results."""

    def __init__(self, dut, hw, rng, seed):
        from cocotbext.axi import AxiLiteBus, AxiLiteMaster, AxiStreamBus, AxiStreamSink, AxiStreamSource

        from dbpim.model.core import CoreParams
        self.dut, self.hw, self.rng, self.seed = dut, hw, rng, seed
        self.params = CoreParams.from_config(hw)
        self.regs = self.params.map.regs
        # the bus master is not reset with the core (a processor resetting its accelerator): a write in flight
        # across a reset completes afterwards
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.aclk)
        for ch in (self.axil.write_if.aw_channel, self.axil.write_if.w_channel, self.axil.write_if.b_channel,
                   self.axil.read_if.ar_channel, self.axil.read_if.r_channel):
            ch.set_pause_generator(pause_generator(rng, P_PAUSE))
        self.src = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis"), dut.aclk, dut.aresetn,
                                   reset_active_level=False)
        self.snk = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.aclk, dut.aresetn,
                                 reset_active_level=False)
        self.src.set_pause_generator(pause_generator(rng, P_PAUSE))
        self.snk.set_pause_generator(pause_generator(rng, P_PAUSE))
        for agent in (self.axil.write_if, self.axil.read_if, self.src, self.snk):
            agent.log.setLevel(logging.WARNING)  # not a log line per transfer
        self.win_bytes = len(dut.s_axis_tdata) // 8
        self.res_bytes = len(dut.m_axis_tdata) // 8

    async def write(self, addr: int, data: int) -> None:
        await self.axil.write(addr, int(data).to_bytes(4, "little"))

    async def read(self, addr: int) -> int:
        return int.from_bytes((await self.axil.read(addr, 4)).data, "little")

    async def load(self, writes) -> None:
        """The writes in a random order, issued back to back (outstanding together); returns after every B."""
        order = self.rng.permutation(len(writes))
        tasks = [cocotb.start_soon(self.write(*writes[k])) for k in order]
        for t in tasks:
            await t

    def send_windows(self, windows) -> None:
        wf = spec.window_fields(self.hw.macro.n_comp, self.hw.macro.in_bits, self.hw.core.in_windows)
        data = b"".join(spec.pack(wf, {"data": w}).to_bytes(self.win_bytes, "little") for w in windows)
        if data:
            self.src.send_nowait(data)

    async def start(self) -> None:
        await self.write(self.regs["CTRL"], spec.CORE_REG["CTRL"].value(START=1))

    async def wait_done(self, limit: int = 200_000) -> None:
        for _ in range(limit):
            if self.dut.irq.value:
                return
            await RisingEdge(self.dut.aclk)
        raise AssertionError(f"seed {self.seed}: no DONE within {limit} cycles")

    async def results(self, n: int) -> tuple[list, list]:
        """``n`` result beats (signed) and the beat index of each ``tlast``."""
        rw = 8 * self.res_bytes
        beats, ends = [], []
        while len(beats) < n:
            frame = await self.snk.recv()
            raw = bytes(frame.tdata)
            for k in range(0, len(raw), self.res_bytes):
                v = int.from_bytes(raw[k:k + self.res_bytes], "little")
                beats.append(v - (1 << rw) if v >> (rw - 1) else v)
            ends.append(len(beats) - 1)
        return beats, ends

    async def status(self) -> int:
        return await self.read(self.regs["STATUS"])

    async def run_segment(self, prog, seg, x, want_beats, where: str, load: bool = True) -> None:
        """Load (random order), START, results and ``tlast`` == the twin's, ``STATUS`` DONE without error."""
        if load:
            await self.load(bus_writes(prog, seg))
        self.send_windows(input_windows(prog, seg, x))
        await self.start()
        n = sum(p.pixels * p.n_out for p in seg.passes if p.last)
        beats, ends = await self.results(n)
        await self.wait_done()
        assert beats == [int(b) for b in want_beats], f"{where}: results differ from the twin"
        want_ends = (np.cumsum([p.pixels * p.n_out for p in seg.passes if p.last]) - 1).tolist()
        assert ends == want_ends, f"{where}: tlast at {ends}, want {want_ends}"
        st = await self.status()
        assert st == 0b010, f"{where}: STATUS {st:#x}"

    async def reset(self, cycles: int = 2) -> None:
        self.dut.aresetn.value = 0
        await ClockCycles(self.dut.aclk, cycles)
        self.dut.aresetn.value = 1
        await ClockCycles(self.dut.aclk, 2)


def _random_layer(hw, rng):
    from dbpim.model.compile import compile_layer
    from dbpim.model.core import CoreParams, compile_program
    from dbpim.model.quant import prune_quantize
    mc = hw.macro
    K, N, P = int(rng.integers(5, 2 * mc.capacity_rows)), int(rng.integers(1, 3 * mc.group_size)), 5
    u = rng.normal(0, 1, (K, N)) * rng.choice([0.5, 4.0, 30.0, 90.0], N)
    q = prune_quantize(u, mc, 0.3, scale=1.0)
    xs = rng.integers(0, 256, (1, P, K))
    return "random", compile_program(compile_layer(q.w, q.phi, q.mask, mc, q.group_size), P,
                                     CoreParams.from_config(hw), False), xs


@cocotb.test(timeout_time=2, timeout_unit="ms")  # about 60 000 cycles pass: 200 000 fail fast
async def core_axi_random_order_coverage(dut):
    from cocotb.clock import Clock

    from dbpim.verif.core_tb import CoreMonitor, coverage_layers
    from dbpim.verif.coverage import CONTROLLER_STATES, CoreCoverage, write_report
    seed, rng = env_rng()
    hw = load_config(os.environ.get("DBPIM_CFG", "small"))
    cov = CoreCoverage(hw=hw, prefix="core")
    mon = CoreMonitor(dut, cov, hw.system.macros_per_core)
    cocotb.start_soon(Clock(dut.aclk, CLOCK_NS, unit="ns").start())
    cocotb.start_soon(mon.run())
    for name in ("s_axil_awvalid", "s_axil_wvalid", "s_axil_bready", "s_axil_arvalid", "s_axil_rready",
                 "s_axis_tvalid", "m_axis_tready"):
        getattr(dut, name).value = 0
    # the agents start once the core is in reset: before the first aclk edge its flops hold Verilator's random
    # initial state, and an R beat "seen" then (rvalid high) was taken as the answer of the first read
    dut.aresetn.value = 0
    await ClockCycles(dut.aclk, 2)
    core = _Core(dut, hw, rng, seed)
    await core.reset(4)

    layers = coverage_layers(hw, rng) + [_random_layer(hw, rng)]
    for label, prog, xs in layers:
        cov.layer_phi(prog.compiled.phi)
        want = run_core(prog, xs[0])
        for si, seg in enumerate(prog.segments):
            await core.run_segment(prog, seg, xs[0], want.beats[si], f"seed {seed}: {label}, START {si}")

    # the packer's back-pressure needs the next vector's first beat offered in the very cycle a split row's
    # remainder leaves; random source pauses can miss every such cycle (DBPIM_SEED=718448556 did), so the
    # split-row layer runs once more with the input stream unpaused (the other streams keep their pauses)
    core.src.set_pause_generator(None)
    core.src.pause = False  # the generator's last draw would stay
    label, prog, xs = next(layer for layer in layers if layer[0] == "split row")
    want = run_core(prog, xs[0])
    for si, seg in enumerate(prog.segments):
        await core.run_segment(prog, seg, xs[0], want.beats[si], f"seed {seed}: {label} unpaused, START {si}")
    core.src.set_pause_generator(pause_generator(rng, P_PAUSE))

    # a START with no descriptor: DONE at once, no result
    await core.write(core.regs["LAYER"], spec.CORE_REG["LAYER"].value(N_DESC=0))
    await core.start()
    await core.wait_done()
    assert await core.status() == 0b010, f"seed {seed}: START with N_DESC = 0"

    # each STATUS.ERROR_CODE, then the good program again (the K = 1 layer: one kept row, one window)
    label, prog, xs = layers[0]
    seg = prog.segments[0]
    p = seg.passes[0]
    want = run_core(prog, xs[0])
    desc = core.params.map.regions["desc"]
    good = {"tile": p.slot, "mask_base": p.mask_base, "n_win": p.n_win, "n_kept": p.n_kept, "pixels": p.pixels,
            "n_out": p.n_out, "first": int(p.first), "last": int(p.last)}
    assert p.first and p.n_kept < hw.macro.capacity_rows, "the K = 1 layer's first pass cannot show code 3"
    await core.load(bus_writes(prog, seg))
    for code, bad in ((1, {"pixels": 0}), (2, {"first": 0}), (3, {"n_kept": p.n_kept + 1})):
        await core.load([(desc.address(0, k), w) for k, w in enumerate(spec.entry_words(desc.fields,
                                                                                         {**good, **bad}))])
        if code == 3:  # the masks are checked as the first vector's windows arrive: exactly n_win are taken
            core.send_windows(input_windows(prog, seg, xs[0])[:p.n_win])
        await core.start()
        await core.wait_done()
        st = spec.CORE_REG["STATUS"].decode(await core.status())
        assert st["ERROR"] and st["ERROR_CODE"] == code, f"seed {seed}: STATUS {st} after a code {code} program"
        assert core.snk.empty(), f"seed {seed}: a result came out of a START that aborted with code {code}"
        await core.load([(desc.address(0, k), w) for k, w in enumerate(spec.entry_words(desc.fields, good))])
        await core.run_segment(prog, seg, xs[0], want.beats[0], f"seed {seed}: good START after error {code}",
                               load=False)

    # resets later and later from START's AW/W handshake until one has reached every controller state;
    # after each, a rerun, exact. AW, W and B run without pauses here, so the handshake comes a fixed number
    # of cycles (measured first) after START is issued, and the reset is asserted from that very cycle on:
    # never before the handshake, which a reset of the target would swallow (its response never comes)
    label, prog, xs = layers[0]  # K = 1: every state in a few dozen cycles
    seg = prog.segments[0]
    want = run_core(prog, xs[0])
    await core.load(bus_writes(prog, seg))
    for ch in (core.axil.write_if.aw_channel, core.axil.write_if.w_channel, core.axil.write_if.b_channel):
        ch.set_pause_generator(None)
        ch.pause = False  # the generator's last draw would stay
    ctrl = core.regs["CTRL"]

    async def start_handshake() -> int:
        """Cycles from the START write's issue (just after a clock edge) to its AW handshake."""
        n = 0
        while True:
            await ReadOnly()
            if dut.s_axil_awvalid.value and dut.s_axil_awready.value and int(dut.s_axil_awaddr.value) == ctrl:
                return n
            await RisingEdge(dut.aclk)
            n += 1

    async def reset_after(cycles):
        await ClockCycles(dut.aclk, cycles)
        await core.reset()

    async def started(task, where):
        try:
            await with_timeout(task, 1000 * CLOCK_NS, "ns")
        except SimTimeoutError:
            raise AssertionError(f"seed {seed}: {where}: the START write got no response") from None

    core.send_windows(input_windows(prog, seg, xs[0]))
    await RisingEdge(dut.aclk)
    hs = cocotb.start_soon(start_handshake())
    await started(cocotb.start_soon(core.start()), "measuring the handshake")
    lat = await hs
    await core.wait_done()
    core.snk.clear()
    for after in range(300):
        if all(cov.report()["reset.state"][s] for s in CONTROLLER_STATES):
            break
        core.send_windows(input_windows(prog, seg, xs[0]))
        await RisingEdge(dut.aclk)
        rst = cocotb.start_soon(reset_after(lat + after))
        await started(cocotb.start_soon(core.start()), f"reset {after} cycles after the handshake")
        await rst
        assert not dut.m_axis_tvalid.value, f"seed {seed}: a result is valid after reset"
        core.src.clear()
        core.snk.clear()
        await core.run_segment(prog, seg, xs[0], want.beats[0],
                               f"seed {seed}: rerun after a reset {after} cycles after START's handshake",
                               load=False)

    out = Path(os.environ.get("DBPIM_COVERAGE_DIR", "build/coverage/core"))
    unhit = write_report(cov.report(), cov.required, out,
                         meta={"config": hw.name, "seed": seed, "cycles": mon.cycles,
                               "test": "core_axi_random_order_coverage"})
    assert not unhit, f"seed {seed}: required coverage bins unhit: {', '.join(unhit)} (report: {out / 'coverage.txt'})"

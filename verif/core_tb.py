"""Driver of the PIM core top (``dbpim_core``, AXI ports) on the verification kit's TB (:mod:`verif.tb`).

:class:`AxiLiteMaster` writes and reads the register map through the TB, with
random delays before each channel's valid / ready (probability ``p_idle`` per
cycle); :func:`load_segment` writes a segment's program; :func:`run_start`
runs one START: the input windows of :func:`model.core.input_windows` go on
the TB's ``s_axis`` source and the results come from its ``m_axis`` sink (both
with the TB's stall probability), then ``CYCLES`` and ``STATUS`` are read.
"""

from __future__ import annotations

import numpy as np

from dbpim.model import spec
from dbpim.model.core import input_windows
from dbpim.model.driver import AsyncCoreDriver

__all__ = ["AxiLiteMaster", "load_segment", "run_start", "reset_mid_run", "REGS"]

#: register name -> byte address
REGS = {r.name: r.address for r in spec.CORE_REGISTERS}


class AxiLiteMaster:
    """AXI4-Lite master on a :class:`verif.tb.TB` (ports ``s_axil_*``)."""

    def __init__(self, tb, rng, p_idle: float = 0.3):
        self.tb, self.rng, self.p_idle = tb, rng, p_idle

    async def _gaps(self):
        while self.p_idle and self.rng.random() < self.p_idle:
            await self.tb.tick()

    async def _until(self, port: str) -> int:
        """Wait through the clock edge at which ``port`` is high (a handshake); returns the cycles waited."""
        n = 0
        while True:
            await self.tb.settle()
            ok = self.tb.get(port)
            await self.tb.tick()
            n += 1
            if ok:
                return n

    async def write(self, addr: int, data: int, strb: int = 0xF) -> None:
        tb = self.tb
        await self._gaps()
        for name, v in (("awaddr", addr), ("wdata", data), ("wstrb", strb), ("awvalid", 1), ("wvalid", 1)):
            tb.set(f"s_axil_{name}", v)
        await self._until("s_axil_awready")  # AW and W are taken together
        tb.set("s_axil_awvalid", 0)
        tb.set("s_axil_wvalid", 0)
        await self._gaps()
        tb.set("s_axil_bready", 1)
        await self._until("s_axil_bvalid")
        tb.set("s_axil_bready", 0)

    async def read(self, addr: int) -> int:
        tb = self.tb
        await self._gaps()
        tb.set("s_axil_araddr", addr)
        tb.set("s_axil_arvalid", 1)
        await self._until("s_axil_arready")
        tb.set("s_axil_arvalid", 0)
        await self._gaps()
        tb.set("s_axil_rready", 1)
        while True:
            await tb.settle()
            ok, value = tb.get("s_axil_rvalid"), tb.get("s_axil_rdata")
            await tb.tick()
            if ok:
                break
        tb.set("s_axil_rready", 0)
        return value


async def load_segment(axil: AxiLiteMaster, program, segment) -> None:
    """Write a segment's tiles, column maps, masks, descriptors and ``LAYER`` (:class:`model.driver.AsyncCoreDriver`)."""
    await AsyncCoreDriver(axil).load(program, segment)


def _windows(program, segment, x) -> list[int]:
    wf = spec.window_fields(program.params.macro.n_comp, program.params.macro.in_bits,
                            program.params.core.in_windows)
    return [spec.pack(wf, {"data": w}) for w in input_windows(program, segment, x)]


async def run_start(tb, axil: AxiLiteMaster, program, segment, x, want=None, where: str = ""):
    """START the loaded segment on one sample's im2col inputs ``x`` (P, K).

    The windows are queued on ``s_axis`` before START (the core takes them when
    it is ready, so a full-rate run is not slowed by the bus write). With
    ``want`` (the twin's signed results) each result beat is checked as it
    arrives: the first wrong one fails at once, named (``where`` first).

    Returns
    -------
    (beats, tlast, cycles, status)
        The result partial sums (signed), their ``tlast`` flags, the ``CYCLES``
        and ``STATUS`` registers after DONE.
    """
    if program.params.core.result_lanes != 1:
        raise ValueError(f"core.result_lanes: the cocotb core bench takes one result a beat; must be 1, got "
                         f"{program.params.core.result_lanes} (the native harness runs more: verif.native)")
    rw = spec.result_width(program.params.psum_width)
    src, snk = tb.source("s_axis"), tb.sink("m_axis")
    snk.extra = ("m_axis_tlast",)
    n = sum(p.pixels * p.n_out for p in segment.passes if p.last)
    src.send(_windows(program, segment, x))
    drv = AsyncCoreDriver(axil)
    await drv.start()
    got = await snk.recv(tb, n, expect=None if want is None else [int(w) for w in want],
                         unpack=lambda p: p - (1 << rw) if p >> (rw - 1) else p, where=where)
    await src.wait(tb)
    await axil._until("irq")  # DONE
    res = await drv.result()
    cycles, status = res.cycles, res.status
    beats = [p - (1 << rw) if p >> (rw - 1) else p for p, _ in got]
    return beats, np.array([t for _, t in got], bool), cycles, status


async def reset_mid_run(tb, axil: AxiLiteMaster, program, segment, x, after: int) -> None:
    """START, reset ``after`` cycles later (the run aborts); afterwards no result is valid and the core is idle."""
    src, snk = tb.source("s_axis"), tb.sink("m_axis")
    src.send(_windows(program, segment, x))
    drv = AsyncCoreDriver(axil)
    await drv.start()
    await tb.tick(after)
    snk.pause()
    src.flush()
    await tb.reset()
    for _ in range(3):
        await tb.settle()
        assert tb.get("m_axis_tvalid") == 0, "a result is valid after reset"
        await tb.tick()
    snk.beats.clear()
    snk.resume()
    status = (await drv.result()).status
    assert status == 0, f"STATUS {status:#x} after reset: not idle"


# --------------------------------------------------------------------------- stimulus for the coverage bins

def _weights(rng, rows: int, phi: int) -> np.ndarray:
    """``rows`` int8 weights of exactly ``phi`` non-zero CSD digits each (zeros for phi 0)."""
    from dbpim.model import csd
    from dbpim.model.spec import WEIGHT_MAX, WEIGHT_MIN
    if phi == 0:
        return np.zeros(rows, np.int64)
    vals = np.arange(WEIGHT_MIN, WEIGHT_MAX + 1)
    return rng.choice(vals[csd.nnz(vals) == phi], rows)


def designed_layer(hw, rng, *, kept_rows, phi, P: int, signed: bool, name: str):
    """A core program of a layer built to a shape: im2col rows ``kept_rows`` kept (every other row of K =
    max + 1 pruned, in every filter group), filter ``f`` at ``phi[f]`` digits per weight; ``P`` pixels.

    Its inputs ``xs`` (1, P, K) are random, with pixel 0 all zero and pixel 1 at the MSB alone (128, or -128
    when signed) when ``P`` > 1.
    """
    from dbpim.model.compile import compile_layer
    from dbpim.model.core import CoreParams, compile_program
    mc = hw.macro
    kept_rows = np.asarray(kept_rows)
    K, N, G = int(kept_rows.max()) + 1, len(phi), mc.group_size
    mask = np.zeros((K, -(-N // G)), bool)
    mask[kept_rows] = True
    w = np.zeros((K, N), np.int64)
    for f, p in enumerate(phi):
        w[kept_rows, f] = _weights(rng, kept_rows.size, int(p))
    comp = compile_layer(w, np.asarray(phi), mask, mc, G)
    lo, hi = spec.input_range(signed)
    xs = rng.integers(lo, hi + 1, (1, P, K))
    if P > 1:
        xs[0, 0] = 0
        xs[0, 1] = -128 if signed else 128
    return name, compile_program(comp, P, CoreParams.from_config(hw), signed, name), xs


def coverage_layers(hw, rng) -> list:
    """(label, program, xs) of the layers that reach the coverage bins of :mod:`verif.coverage` on the
    coverage configuration (``tests/coverage_core.yaml``: tiny core memories, so their extremes are
    reachable by small layers): K = 1 with a single filter and a one-pixel run; one kept row in every mask
    window; a full tile, then a row tile of one row at the last mask word; four filter tiles of one window
    over two pixel runs (the last tile slot, every descriptor); filters at phi 0, 1 and 2; a vector whose
    last row splits in the row packer."""
    mc, core = hw.macro, hw.core
    nw, cap, n = core.mask_windows, mc.capacity_rows, mc.n_comp
    # a full row tile over all but the last window (the last row of each window, then the rest of the
    # first windows), then one row in the last window: mask_base = mask_windows - 1
    ends = [w * n + n - 1 for w in range(nw - 1)]
    full = sorted(ends + [r for r in range(nw * n) if r % n != n - 1][:cap - len(ends)])
    return [
        designed_layer(hw, rng, kept_rows=[0], phi=[1], P=core.out_pixels + 1, signed=False, name="K=1"),
        designed_layer(hw, rng, kept_rows=np.arange(nw) * n, phi=[2] * mc.group_size, P=2, signed=True,
                       name="a row in every window"),
        designed_layer(hw, rng, kept_rows=full + [nw * n - 1], phi=[1] * mc.n_col, P=core.out_pixels, signed=False,
                       name="full tile"),
        designed_layer(hw, rng, kept_rows=np.arange(n), phi=[1] * (mc.n_col * core.tile_slots),
                       P=2 * core.out_pixels, signed=True, name="every tile slot"),
        designed_layer(hw, rng, kept_rows=np.arange(2 * n), phi=[0, 1, 2, 2][:mc.n_col] * 2, P=3, signed=False,
                       name="phi 0, 1, 2"),
        # n_comp - 1 kept inputs, then lanes: the vector's last switch beat completes a row and leaves a
        # remainder, so the packer holds its input for a cycle (back-pressure on the switch's output)
        designed_layer(hw, rng, kept_rows=list(range(n - 1)) + list(range(n, n + mc.lanes)), phi=[1, 1],
                       P=2 * hw.system.macros_per_core, signed=False, name="split row"),
    ]


# --------------------------------------------------------------------------- the coverage monitor

class CoreMonitor:
    """Samples a :class:`verif.coverage.CoreCoverage` from what ``dbpim_core`` did, every clock cycle (cocotb).

    It watches the DUT's ports and, through the simulator's hierarchy (``--public-flat-rw``), the PIM core's
    controller state, its reset and the handshakes between its stream stages: AXI4-Lite writes and reads as
    the target took them (AW and W paired in order), input windows accepted, a stage holding valid without
    ready (``s_axis``, the switch's input, the packer's input, each macro's input, ``m_axis``), and the
    controller state a reset reached.
    """

    def __init__(self, dut, cov, macros: int):
        self.dut, self.cov = dut, cov
        core = dut.core
        self._stages = [("switch", core.switch.i__valid, core.switch.i__ready),
                        ("packer", core.packer.i__valid, core.packer.i__ready)] + [
            ("macro", getattr(core, f"macro{k}").x__valid, getattr(core, f"macro{k}").x__ready) for k in range(macros)]
        self._aw, self._w, self._ar = [], [], []
        self.cycles = 0

    async def run(self) -> None:
        from cocotb.triggers import ReadOnly, RisingEdge

        from dbpim.verif.coverage import CONTROLLER_STATES
        d, cov = self.dut, self.cov
        # the first reset is the power-up reset: the state it meets is Verilator's random initial value (one of
        # the state register's unused encodings too), not a controller state, so it is not sampled
        rst_prev, powered_up = 0, False
        while True:
            await RisingEdge(d.aclk)
            await ReadOnly()
            self.cycles += 1
            rst = int(d.core.rst.value)
            if rst and not rst_prev:
                if powered_up:
                    cov.reset_in(CONTROLLER_STATES[int(d.core.fsm_state.value)])
                powered_up = True
            rst_prev = rst
            if rst:
                self._aw.clear(), self._w.clear(), self._ar.clear()
                continue
            if d.s_axil_awvalid.value and d.s_axil_awready.value:
                self._aw.append(int(d.s_axil_awaddr.value))
            if d.s_axil_wvalid.value and d.s_axil_wready.value:
                self._w.append(int(d.s_axil_wdata.value))
            while self._aw and self._w:
                cov.bus_write(self._aw.pop(0), self._w.pop(0))
            if d.s_axil_arvalid.value and d.s_axil_arready.value:
                self._ar.append(int(d.s_axil_araddr.value))
            if d.s_axil_rvalid.value and d.s_axil_rready.value and self._ar:
                cov.bus_read(self._ar.pop(0), int(d.s_axil_rdata.value))
            if d.s_axis_tvalid.value:
                if d.s_axis_tready.value:
                    cov.input_beat(int(d.s_axis_tdata.value))
                else:
                    cov.backpressure("s_axis")
            if d.m_axis_tvalid.value and not d.m_axis_tready.value:
                cov.backpressure("m_axis")
            for name, v, r in self._stages:
                if v.value and not r.value:
                    cov.backpressure(name)

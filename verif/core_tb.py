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
    wf = spec.window_fields(program.params.macro.n_comp, program.params.macro.in_bits)
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

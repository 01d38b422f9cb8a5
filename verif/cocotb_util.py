"""cocotb helpers shared by the block testbenches: clock/reset, stream driver, monitor.

Ports follow Amaranth's flattening: a stream ``i`` becomes ``i__valid``,
``i__ready`` and one packed ``i__payload`` (see the ``pack_*`` helpers of
:mod:`model.blocks`).
"""

from __future__ import annotations

import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from model.config import load_config

__all__ = ["setup", "reset", "StreamSource", "StreamSink", "env_rng"]


def env_rng():
    """(seed, numpy Generator) from ``DBPIM_SEED``."""
    seed = int(os.environ.get("DBPIM_SEED", "1"))
    return seed, np.random.default_rng(seed)


def macro_cfg():
    return load_config(os.environ.get("DBPIM_CFG", "small")).macro


async def setup(dut, inputs=()):
    """Start a 10 ns clock, zero ``inputs``, reset for 2 cycles."""
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    for name in inputs:
        getattr(dut, name).value = 0
    await reset(dut)


async def reset(dut, cycles: int = 2):
    dut.rst.value = 1
    for _ in range(cycles):
        await RisingEdge(dut.clk)
    dut.rst.value = 0


class _StreamEnd:
    """The ports of one ``<name>__valid/ready/payload`` stream of ``dut`` plus sampled ``extra`` ports."""

    def __init__(self, dut, name, rng, p_idle, extra):
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload")
        self.extra = [getattr(dut, e) for e in extra]
        self.clk, self.rng, self.p_idle = dut.clk, rng, p_idle


class StreamSource(_StreamEnd):
    """Drives ``<name>__valid/payload`` with random valid gaps (probability ``p_idle`` per cycle).

    Handshakes are sampled in the ReadOnly phase of each cycle (settled
    values before the edge), so a beat counts exactly when ``valid & ready``
    hold at a clock edge.
    """

    def __init__(self, dut, name, rng, p_idle=0.3, extra=()):
        super().__init__(dut, name, rng, p_idle, extra)
        self.valid.value = 0

    async def send(self, payloads):
        """Send every payload; returns the ``extra`` ports' values at each acceptance."""
        seen = []
        for p in payloads:
            while self.rng.random() < self.p_idle:
                self.valid.value = 0
                await RisingEdge(self.clk)
            self.valid.value = 1
            self.payload.value = int(p)
            while True:
                await ReadOnly()
                fire = self.ready.value == 1
                ex = [int(e.value) for e in self.extra]
                await RisingEdge(self.clk)
                if fire:
                    seen.append(ex)
                    break
        self.valid.value = 0
        return seen


class StreamSink(_StreamEnd):
    """Accepts ``<name>__payload`` with random ready back-pressure; ``extra`` ports sampled per beat."""

    def __init__(self, dut, name, rng, p_idle=0.3, extra=()):
        super().__init__(dut, name, rng, p_idle, extra)
        self.ready.value = 0

    async def recv(self, n):
        """Collect ``n`` beats: list of payload ints (or (payload, *extra) tuples)."""
        out = []
        while len(out) < n:
            self.ready.value = int(self.rng.random() >= self.p_idle)
            await ReadOnly()
            fire = self.ready.value == 1 and self.valid.value == 1
            if fire:
                p = self.payload.value.to_unsigned()
                beat = (p, *[int(e.value) for e in self.extra]) if self.extra else p
            await RisingEdge(self.clk)
            if fire:
                out.append(beat)
        self.ready.value = 0
        return out

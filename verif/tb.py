"""The verification kit: one testbench interface, two simulators.

A test is an ``async def body(tb)`` written once against :class:`TB`; it runs
on the Amaranth simulator (:func:`run_amaranth`, fast, in-process) and on
Verilator through cocotb (a ``@cocotb.test`` calling :func:`cocotb_tb`, launched
by :func:`verif.rtl.run_cocotb`). The TB owns the clock, the reset and one
agent per valid/ready stream of the DUT:

* ports are addressed by their Verilog names (a stream ``x`` is ``x__valid``,
  ``x__ready``, ``x__payload``; an AXI4-Stream ``s_axis`` is ``s_axis_tvalid``,
  ``s_axis_tready``, ``s_axis_tdata``; the clock and reset are ``clk`` / ``rst``
  or, on an AXI top, ``aclk`` / ``aresetn``, active low); the cocotb side reads the port list from the
  generated ``manifest.json``, the Amaranth side from the component's
  signature (the same names: the generator derives them from it);
* ``tb.set(name, v)`` drives an input for the current cycle, ``await
  tb.settle()`` lets combinational logic settle (no ``set`` after it in that
  cycle), ``tb.get(name)`` / ``tb.get_signed(name)`` read a port, ``await
  tb.tick(n)`` goes to the next cycle(s), ``await tb.reset()`` pulses the reset;
* ``tb.source(name)`` / ``tb.sink(name)``: the :class:`Source` / :class:`Sink`
  of a DUT input / output stream, run by background agents every cycle.

**Stalls** are a test parameter ``stall`` in [0, 1): before each beat a
source stays idle for k cycles with probability ``stall**k * (1 - stall)``
(valid low), and a sink is ready in each cycle with probability ``1 - stall``;
``stall = 0`` is full rate (valid held, ready always high). Sources record the
idle cycles they inserted and the cycle of each acceptance, sinks their ready
pattern, so a test can replay the exact environment in a timing model
(:func:`model.cycles.macro_schedule`). Cycle numbers count clock edges from
the start of the TB, the same for the test body and every agent.

**Timeouts**: :func:`run_amaranth` raises :class:`SimTimeout` after
``max_cycles``; cocotb tests set ``timeout_time`` (:data:`COCOTB_TIMEOUT`), so a
handshake bug fails in seconds instead of hanging.
"""

from __future__ import annotations

import collections
import json
import os
from pathlib import Path

import numpy as np

__all__ = ["TB", "Source", "Sink", "SimTimeout", "run_amaranth", "cocotb_tb", "env_rng", "env_stall", "env_macro",
           "streams_of", "stream_ports", "clock_of", "COCOTB_TIMEOUT", "CLOCK_NS", "pause_generator"]

CLOCK_NS = 10
#: default cocotb ``timeout_time`` / ``timeout_unit`` of a block test: 20 000 clock cycles of simulated time,
#: several times the longest regression run (about 3 000 cycles), a second or two of wall time
COCOTB_TIMEOUT = {"timeout_time": 200, "timeout_unit": "us"}


class SimTimeout(AssertionError):
    """A simulation did not finish within its cycle budget (a handshake that never completes)."""


def env_rng():
    """(seed, numpy Generator) from ``DBPIM_SEED`` (set by :func:`verif.rtl.run_cocotb`)."""
    seed = int(os.environ.get("DBPIM_SEED", "1"))
    return seed, np.random.default_rng(seed)


def pause_generator(rng, p: float):
    """A cocotbext-axi pause generator: pause in each cycle with probability ``p`` (seeded from ``rng``)."""
    seed = int(rng.integers(1 << 31))

    def gen():
        r = np.random.default_rng(seed)
        while True:
            yield bool(r.random() < p)
    return gen()


def env_macro():
    """The :class:`model.config.MacroConfig` of a cocotb run: ``DBPIM_MACRO`` (JSON of its fields) or
    ``DBPIM_CFG`` (configuration name or YAML path, default ``small``)."""
    from dbpim.model.config import MacroConfig, load_config
    if os.environ.get("DBPIM_MACRO"):
        return MacroConfig(**json.loads(os.environ["DBPIM_MACRO"]))
    return load_config(os.environ.get("DBPIM_CFG", "small")).macro


def env_stall() -> float:
    """The stall probability of a cocotb run (``DBPIM_STALL``, default 0 = full rate)."""
    return float(os.environ.get("DBPIM_STALL", "0"))


#: Port-name suffixes of a valid/ready stream: Amaranth's flattening, then AXI4-Stream.
STREAM_STYLES = (("__valid", "__ready", "__payload"), ("_tvalid", "_tready", "_tdata"))
#: (clock, reset, reset active level) of a port list: Amaranth's, then AXI's.
CLOCKS = (("clk", "rst", 1), ("aclk", "aresetn", 0))


def stream_ports(ports: dict, name: str) -> tuple[str, str, str]:
    """(valid, ready, payload) port names of stream ``name``."""
    for v, r, p in STREAM_STYLES:
        if all(f"{name}{x}" in ports for x in (v, r, p)):
            return f"{name}{v}", f"{name}{r}", f"{name}{p}"
    raise KeyError(f"{name}: no valid/ready/payload ports")


def streams_of(ports: dict) -> dict[str, bool]:
    """Valid/ready streams of a port list: ``{stream name: True if it is a DUT input}``."""
    out = {}
    for name, p in ports.items():
        for v, r, d in STREAM_STYLES:
            if name.endswith(v):
                s = name[:-len(v)]
                if f"{s}{r}" in ports and f"{s}{d}" in ports:
                    out[s] = p["dir"] == "input"
    return out


def clock_of(ports: dict) -> tuple[str, str, int]:
    """(clock, reset, reset active level) port names of a port list (``clk``/``rst`` when absent)."""
    return next((c for c in CLOCKS if c[0] in ports), CLOCKS[0])


class _StreamEnd:
    def __init__(self, name: str, stall: float, rng, ports=("", "", "")):
        self.name, self.stall, self.rng = name, float(stall), rng
        #: the valid, ready and payload port names
        self.valid, self.ready, self.payload = ports
        #: names of extra ports sampled with each accepted beat (e.g. the macro's ``cycles``)
        self.extra: tuple = ()


class Source(_StreamEnd):
    """A DUT input stream, driven by an agent: payloads queued with :meth:`send` leave one per handshake.

    Attributes
    ----------
    gaps : list of int
        Idle cycles inserted before each beat.
    offered, accepted : list of int
        Cycle in which each beat was first offered / accepted.
    seen : list of list of int
        The ``extra`` ports' values at each acceptance.
    taken : list of int
        The payload of each beat the DUT accepted.
    """

    def __init__(self, name, stall, rng, ports=("", "", "")):
        super().__init__(name, stall, rng, ports)
        self.queue = collections.deque()
        self.flushed = False
        self.gaps, self.offered, self.accepted, self.seen, self.taken = [], [], [], [], []

    def send(self, payloads, extra=None) -> None:
        """Queue payloads (ints); returns at once (see :meth:`wait`)."""
        if extra is not None:
            self.extra = tuple(extra)
        self.queue.extend(int(p) for p in payloads)

    @property
    def idle(self) -> bool:
        return not self.queue

    def flush(self) -> None:
        """Drop every queued payload, the one on offer too (valid falls at the next clock edge)."""
        self.queue.clear()
        self.flushed = True

    async def wait(self, tb) -> None:
        """Until every queued payload has been accepted."""
        while self.queue:
            await tb.tick()

    def draw_gap(self) -> int:
        g = 0
        while self.stall and self.rng.random() < self.stall:
            g += 1
        return g


class Sink(_StreamEnd):
    """A DUT output stream, taken by an agent; :meth:`recv` returns the beats in order.

    Attributes
    ----------
    ready_log : list of bool
        The ready value the agent drove in each cycle since the TB started.
    held : int
        Cycles in which the DUT held valid while the agent was not ready (back-pressure).
    """

    def __init__(self, name, stall, rng, ports=("", "", "")):
        super().__init__(name, stall, rng, ports)
        self.beats = collections.deque()  # (cycle, payload, extras)
        self.ready_log: list[bool] = []
        self.held = 0
        self.allow = None  # beats it may still take (None = no limit)

    def draw_ready(self) -> bool:
        if self.allow is not None:
            return self.allow > 0
        return not self.stall or self.rng.random() >= self.stall

    def took(self, beat) -> None:
        self.beats.append(beat)
        if self.allow is not None:
            self.allow -= 1

    @property
    def pending(self) -> int:
        """Beats received and not yet taken by :meth:`recv`."""
        return len(self.beats)

    async def recv(self, tb, n: int, with_cycles: bool = False, expect=None, unpack=None, where: str = ""):
        """The next ``n`` beats: payload ints, or ``(payload, *extras)`` when ``extra`` is set.

        With ``with_cycles`` also returns the acceptance cycle of each beat.
        With ``expect`` (the ``n`` wanted values of ``unpack(payload)``, default
        the payload) each beat is checked as it arrives: the first wrong one
        fails at once, naming its index, cycle, value and the wanted one
        (``where`` first), instead of the test waiting for beats that a
        dropped or extra beat has shifted.
        """
        checked = 0
        while True:
            if expect is not None:
                while checked < min(len(self.beats), n):
                    k, p, _ = self.beats[checked]
                    got, want = (unpack or (lambda v: v))(p), expect[checked]
                    if got != want:
                        raise AssertionError(f"{where}{self.name}: beat {checked} of {n} (cycle {k}) is wrong: "
                                             f"got {got}, want {want}")
                    checked += 1
            if len(self.beats) >= n:
                break
            await tb.tick()
        got = [self.beats.popleft() for _ in range(n)]
        out = [(p, *ex) if self.extra else p for _, p, ex in got]
        return (out, [k for k, _, _ in got]) if with_cycles else out

    def limit(self, n: int | None) -> None:
        """Take at most ``n`` more beats (ready high until then, then low); None = back to random stalls."""
        self.allow = n

    def pause(self) -> None:
        """Hold ready low (e.g. across a reset) until :meth:`resume`."""
        self.limit(0)

    def resume(self) -> None:
        self.limit(None)


async def source_agent(io, st: Source) -> None:
    """Drive a DUT input stream forever: each queued payload after ``st.draw_gap()`` idle cycles, valid held
    until accepted. ``io`` is a back end's port access (``drive(name, v)``, ``await edge(*names)``)."""
    valid, payload = st.valid, st.payload
    while True:
        if not st.queue:
            io.drive(valid, 0)
            await io.edge()
            continue
        g = st.draw_gap()
        st.gaps.append(g)
        io.drive(valid, 0)
        for _ in range(g):
            await io.edge()
        if not st.queue:  # flushed during the gap
            continue
        st.flushed = False
        io.drive(valid, 1)
        io.drive(payload, st.queue[0])
        first = True
        while True:
            k, (rdy, *ex) = await io.edge(st.ready, *st.extra)
            if first:
                st.offered.append(k)
                first = False
            if st.flushed:  # the offered beat was dropped (e.g. by a reset): start over with the new queue
                io.drive(valid, 0)
                break
            if rdy:
                st.accepted.append(k)
                st.seen.append(ex)
                st.taken.append(st.queue.popleft())
                break


async def sink_agent(io, st: Sink) -> None:
    """Take a DUT output stream forever: ready drawn each cycle (``st.draw_ready()``), beats recorded."""
    while True:
        r = st.draw_ready()
        io.drive(st.ready, int(r))
        k, (vl, p, *ex) = await io.edge(st.valid, st.payload, *st.extra)
        while len(st.ready_log) < k:  # cycles before the agent's first
            st.ready_log.append(False)
        st.ready_log.append(r)
        if r and vl:
            st.took((k, p, ex))
        elif vl:
            st.held += 1


class TB:
    """The backend-neutral testbench handle (see the module docstring).

    Parameters
    ----------
    ports : dict
        Verilog port name -> ``{"dir": "input" | "output", "width": int}``.
    stall : float
        Stall probability of every stream agent (0 = full rate).
    seed : int
        Seeds the agents' random stalls (one generator per stream).
    """

    backend = ""

    def __init__(self, ports: dict, stall: float = 0.0, seed: int = 0):
        if not 0 <= stall < 1:
            raise ValueError(f"stall: must be in [0, 1), got {stall}")
        self.ports, self.stall, self.seed = ports, float(stall), int(seed)
        self._cycle = 0
        self.streams = streams_of(ports)
        seeds = np.random.SeedSequence(self.seed).spawn(len(self.streams) + 1)
        self._sources, self._sinks = {}, {}
        for (s, is_in), ss in zip(sorted(self.streams.items()), seeds):
            rng = np.random.default_rng(ss)
            if is_in:
                self._sources[s] = Source(s, stall, rng, stream_ports(ports, s))
            else:
                self._sinks[s] = Sink(s, stall, rng, stream_ports(ports, s))
        self.clk, self.rst, self.rst_active = clock_of(ports)
        self.clocked = self.clk in ports

    @property
    def cycle(self) -> int:
        """The current clock cycle: clock edges since the simulation started."""
        return self._cycle

    def source(self, name: str) -> Source:
        return self._sources[name]

    def sink(self, name: str) -> Sink:
        return self._sinks[name]

    def inputs(self) -> list[str]:
        """Input ports the test body drives (clock, reset and stream handshakes excluded)."""
        agent = {n for st in self._sources.values() for n in (st.valid, st.payload)}
        agent |= {st.ready for st in self._sinks.values()}
        return [n for n, p in self.ports.items()
                if p["dir"] == "input" and n not in (self.clk, self.rst) and n not in agent]

    def width(self, name: str) -> int:
        return int(self.ports[name]["width"])

    def get_signed(self, name: str) -> int:
        v, w = self.get(name), self.width(name)
        return v - (1 << w) if v >> (w - 1) else v

    async def reset(self, cycles: int = 2) -> None:
        """Assert the reset (``rst``, or ``aresetn`` low) for ``cycles`` clock cycles."""
        self.set(self.rst, self.rst_active)
        await self.tick(cycles)
        self.set(self.rst, 1 - self.rst_active)

    async def reset_while_busy(self, sink: Sink, what: str, seed: int, cov=None) -> None:
        """Reset a unit in the middle of a job, check that it left nothing behind and reopen ``sink``.

        The unit must be ``busy`` now (``what`` names the job, ``seed`` the draw, in the failure messages); after the reset
        ``o__valid`` and ``busy`` must be low. ``cov.reset_while_busy()`` is sampled when ``cov`` is given.
        """
        await self.settle()
        assert self.get("busy") == 1, f"seed {seed}: {what} should still run"
        await self.tick()  # out of the settled phase (cocotb: no write in ReadOnly)
        await self.reset()
        if cov is not None:
            cov.reset_while_busy()
        await self.settle()
        assert self.get("o__valid") == 0 and self.get("busy") == 0, f"seed {seed}: state left after reset"
        await self.tick()
        sink.beats.clear()
        sink.resume()

    # backend interface
    def set(self, name: str, value: int) -> None:
        raise NotImplementedError

    def get(self, name: str) -> int:
        """A port's value as an unsigned int (after :meth:`settle` for this cycle's inputs)."""
        raise NotImplementedError

    async def settle(self) -> None:
        raise NotImplementedError

    async def tick(self, n: int = 1) -> None:
        raise NotImplementedError


# --------------------------------------------------------------------------- Amaranth simulator back end

class _AmaranthTB(TB):
    backend = "amaranth"

    def __init__(self, values: dict, ports: dict, stall, seed):
        super().__init__(ports, stall, seed)
        self._values = values
        self._ctx = None

    def set(self, name, value):
        self._ctx.set(self._values[name], int(value))

    def get(self, name):
        v = self._values[name]
        return int(self._ctx.get(v)) & ((1 << len(v)) - 1)

    async def settle(self):
        pass  # ctx.get always sees settled values

    async def tick(self, n=1):
        for _ in range(n):
            await self._ctx.tick()
            self._cycle += 1


class _AmaranthIO:
    """What a stream agent needs of the Amaranth simulator: drive a port, wait for a clock edge."""

    def __init__(self, ctx, values):
        self.ctx, self.values, self.k = ctx, values, 0

    def drive(self, name, value):
        self.ctx.set(self.values[name], int(value))

    async def edge(self, *names):
        """Wait for the next clock edge; returns (cycle it ended, values of ``names`` at the edge)."""
        _, _, *vals = await self.ctx.tick().sample(*[self.values[n] for n in names])
        self.k += 1
        return self.k - 1, [int(v) for v in vals]


def run_amaranth(dut, body, stall: float = 0.0, seed: int = 0, max_cycles: int = 200_000, agents=()):
    """Run ``await body(tb)`` on the Amaranth simulator with ``dut`` (a component) at its top.

    ``agents``: more background processes, each ``await agent(ctx, values)`` (``values``: port name -> signal),
    e.g. :meth:`verif.dram.AxiDram.run`.

    Returns the body's return value. A DUT with ``aclk`` and ``aresetn`` ports (an AXI top: it defines its
    own ``sync`` domain, :func:`hw.axi.aclk_domain`) is clocked through ``aclk`` and has no ``clk`` / ``rst``:
    the body releases ``aresetn`` (every input starts at 0).

    Raises
    ------
    SimTimeout
        The body did not finish within ``max_cycles`` clock cycles.
    """
    from amaranth.hdl import ClockDomain, Module
    from amaranth.sim import Simulator

    from dbpim.hw.common import flat_ports

    top = Module()
    top.submodules.dut = dut
    values = {n: v for n, (v, _) in flat_ports(dut).items()}
    ports = {n: {"dir": "input" if is_in else "output", "width": len(v)} for n, (v, is_in) in flat_ports(dut).items()}
    if not {"aclk", "aresetn"} <= set(values):
        top.domains.sync = cd = ClockDomain("sync")
        values.update(clk=cd.clk, rst=cd.rst)
        ports.update(clk={"dir": "input", "width": 1}, rst={"dir": "input", "width": 1})
    tb = _AmaranthTB(values, ports, stall, seed)
    result = []

    async def main(ctx):
        tb._ctx = ctx
        for n in tb.inputs():
            ctx.set(values[n], 0)
        result.append(await body(tb))

    async def watchdog(ctx):
        for _ in range(max_cycles):
            await ctx.tick()
        raise SimTimeout(f"simulation did not finish within {max_cycles} cycles (stall={stall}, seed={seed})")

    def agent(run, st):
        async def testbench(ctx):
            await run(_AmaranthIO(ctx, values), st)
        return testbench

    sim = Simulator(top)
    sim.add_clock(CLOCK_NS * 1e-9)
    for st in tb._sources.values():
        sim.add_testbench(agent(source_agent, st), background=True)
    for st in tb._sinks.values():
        sim.add_testbench(agent(sink_agent, st), background=True)
    sim.add_testbench(watchdog, background=True)
    def background(run):
        async def testbench(ctx):
            await run(ctx, values)
        return testbench

    for run in agents:
        sim.add_testbench(background(run), background=True)
    sim.add_testbench(main)
    sim.run()
    return result[0]


# --------------------------------------------------------------------------- cocotb back end

class _CocotbTB(TB):
    backend = "cocotb"

    def __init__(self, dut, ports, stall, seed):
        super().__init__(ports, stall, seed)
        self.dut = dut

    def set(self, name, value):
        getattr(self.dut, name).value = int(value)

    def get(self, name):
        v = getattr(self.dut, name).value
        return int(v.to_unsigned()) if hasattr(v, "to_unsigned") else int(v)

    async def settle(self):
        from cocotb.triggers import ReadOnly, Timer
        if self.clocked:
            await ReadOnly()
        else:
            await Timer(1, unit="ns")

    @property
    def cycle(self) -> int:
        from cocotb.utils import get_sim_time
        return int(get_sim_time("ns") // CLOCK_NS)

    async def tick(self, n=1):
        from cocotb.triggers import RisingEdge
        for _ in range(n):
            await RisingEdge(getattr(self.dut, self.clk))


class _CocotbIO:
    """What a stream agent needs of cocotb: drive a port, wait for a clock edge (cycle from simulated time)."""

    def __init__(self, tb):
        self.tb = tb

    def drive(self, name, value):
        self.tb.set(name, value)

    async def edge(self, *names):
        from cocotb.triggers import ReadOnly, RisingEdge
        await ReadOnly()
        k, vals = self.tb.cycle, [self.tb.get(n) for n in names]
        await RisingEdge(getattr(self.tb.dut, self.tb.clk))
        return k, vals


def manifest_ports(block: str, manifest: str | Path | None = None) -> dict:
    """Port list of ``dbpim_<block>`` from the generated ``manifest.json`` (``DBPIM_MANIFEST``)."""
    path = Path(manifest or os.environ["DBPIM_MANIFEST"])
    man = json.loads(path.read_text())
    return {p["name"]: p for p in man["blocks"][block]["ports"]}


async def cocotb_tb(dut, block: str | None = None, stall: float | None = None, seed: int | None = None) -> TB:
    """Start the TB of a cocotb test: ports from the manifest, clock, inputs zeroed, reset, stream agents.

    ``block``, ``stall`` and ``seed`` default to ``DBPIM_BLOCK``, ``DBPIM_STALL`` and ``DBPIM_SEED``.
    """
    import cocotb
    from cocotb.clock import Clock

    block = block or os.environ["DBPIM_BLOCK"]
    stall = env_stall() if stall is None else stall
    seed = env_rng()[0] if seed is None else seed
    tb = _CocotbTB(dut, manifest_ports(block), stall, seed)
    for n in tb.inputs():
        tb.set(n, 0)
    if tb.clocked:
        cocotb.start_soon(Clock(getattr(dut, tb.clk), CLOCK_NS, unit="ns").start())
        # the agents start after the first reset: before it, every register (an output's valid included)
        # holds the simulator's random initial value, which a stream's consumer must ignore (AXI)
        if tb.rst in tb.ports:
            await tb.reset()
        for st in tb._sources.values():
            cocotb.start_soon(source_agent(_CocotbIO(tb), st))
        for st in tb._sinks.values():
            cocotb.start_soon(sink_agent(_CocotbIO(tb), st))
    return tb

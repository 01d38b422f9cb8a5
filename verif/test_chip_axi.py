"""cocotb: the chip as an IP block (``dbpim_chip_axi``) through cocotbext-axi's ``AxiLiteMaster``, random pauses
on AW, W, B, AR and R (run by ``tests/test_hw_chip_axi.py``); the chip's AXI4 master on ``AxiRam``
(:func:`chip_axi_dram_loads_and_stores`).

The program and its expected results come in ``DBPIM_CHIP_PROGRAM`` (an ``.npz`` the pytest side writes: the
images, the ``ACT`` / ``ACC`` contents, the buffer depths, the golden chip's ``ACT`` after HALT and its cycle
count). :class:`model.driver.AsyncChipDriver` loads the images (their entries in a random order, interleaved; each
``IMEM`` instruction low word first), then
writes ``ACC`` while it reads ``DMEM`` back (reads and writes outstanding together on the chip's one port), writes
``ACT``, START, polls ``STATUS.DONE``; ``irq``, ``STATUS``, ``CYCLES`` and ``ACT`` must equal the golden chip's.
Every failure names the seed (``DBPIM_SEED``).
"""

import logging
import os

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, RisingEdge

from dbpim.model import isa
from dbpim.model.chip import ChipProgram
from dbpim.model.driver import AsyncChipDriver, DriverError
from dbpim.verif.tb import CLOCK_NS, env_rng, pause_generator

#: probability that a channel pauses in a cycle (each of AW, W, B, AR, R)
P_PAUSE = 0.3


class _Bus:
    """``read`` / ``write`` of 32-bit words on cocotbext-axi's master (what the drivers take)."""

    def __init__(self, axil):
        self.axil = axil

    async def write(self, addr: int, data: int) -> None:
        await self.axil.write(addr, int(data).to_bytes(4, "little"))

    async def read(self, addr: int) -> int:
        return int.from_bytes((await self.axil.read(addr, 4)).data, "little")


def _power_up(dut) -> None:
    """The clock running, the AXI4-Lite master's valids and readys low, the chip in reset."""
    from cocotb.clock import Clock
    cocotb.start_soon(Clock(dut.aclk, CLOCK_NS, unit="ns").start())
    for name in ("s_axil_awvalid", "s_axil_wvalid", "s_axil_bready", "s_axil_arvalid", "s_axil_rready"):
        getattr(dut, name).value = 0
    dut.aresetn.value = 0


def _axil_master(dut, rng):
    """cocotbext-axi's AXI4-Lite master on the chip's port, random pauses on AW, W, B, AR and R, no log line
    per transfer."""
    from cocotbext.axi import AxiLiteBus, AxiLiteMaster
    axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.aclk)
    for ch in (axil.write_if.aw_channel, axil.write_if.w_channel, axil.write_if.b_channel,
               axil.read_if.ar_channel, axil.read_if.r_channel):
        ch.set_pause_generator(pause_generator(rng, P_PAUSE))
    for agent in (axil.write_if, axil.read_if):
        agent.log.setLevel(logging.WARNING)
    return axil


async def _run_to_done(drv, where: str):
    """START, wait for DONE (a run that never ends: an AssertionError naming ``where`` and its STATUS), then
    STATUS and CYCLES."""
    await drv.start()
    try:
        await drv.wait_done()
    except DriverError as e:
        raise AssertionError(f"{where}: {e}") from None
    return await drv.result()


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def chip_axi_runs_a_program(dut):
    seed, rng = env_rng()
    with np.load(os.environ["DBPIM_CHIP_PROGRAM"], allow_pickle=False) as f:
        d = {k: f[k] for k in f.files}
    depths = {n: int(v) for n, v in zip(d["depth_names"].tolist(), d["depths"].tolist())}
    prog = ChipProgram(imem=d["imem"], dmem=d["dmem"], cmem=d["cmem"], wmem=np.zeros(1, np.int64),
                       act_words=depths["ACT"], acc_words=depths["ACC"], input={}, output={}, macro=None, values={})
    _power_up(dut)
    await ClockCycles(dut.aclk, 4)
    dut.aresetn.value = 1
    await ClockCycles(dut.aclk, 2)
    axil = _axil_master(dut, rng)
    # a run that never ends fails naming its STATUS after this many polls (each at least one cycle), well before the
    # test's timeout
    drv = AsyncChipDriver(_Bus(axil), cmap=isa.chip_map(depths), max_polls=int(d["want_cycles"]) + 1000)

    await drv.load(prog, rng=rng)  # the images' entries in a random order, interleaved
    # ACC written while DMEM is read back: writes and reads outstanding together on the chip's one port
    acc = cocotb.start_soon(drv.write_buffer("ACC", d["acc"]))
    dmem = await drv.read_buffer("DMEM", len(prog.dmem))
    await acc
    assert dmem.tolist() == prog.dmem.tolist(), f"seed {seed}: DMEM reads back differently"
    imem = await drv.read_buffer("IMEM", len(prog.imem))
    assert imem.tolist() == prog.imem.tolist(), f"seed {seed}: IMEM reads back differently"
    await drv.write_buffer("ACT", d["act"])
    res = await _run_to_done(drv, f"seed {seed}")
    assert dut.irq.value == 1, f"seed {seed}: irq low after DONE"
    assert res.ok and res.fields["PC"] == len(prog.imem) - 1, f"seed {seed}: STATUS {res.fields}"
    assert res.cycles == int(d["want_cycles"]), f"seed {seed}: CYCLES {res.cycles}, golden {int(d['want_cycles'])}"
    got = await drv.read_buffer("ACT", depths["ACT"])
    bad = np.flatnonzero(got != d["want_act"])
    assert not bad.size, (f"seed {seed}: ACT differs at {bad[:10].tolist()}: rtl {got[bad[:10]].tolist()}, "
                          f"golden {d['want_act'][bad[:10]].tolist()}")
    dut._log.info(f"seed {seed}: {len(prog.imem)} instructions, {res.cycles} cycles, ACT equal to the golden chip")


#: probability that a channel of the DRAM's AXI4 slave pauses in a cycle (each of AW, W, B, AR, R)
P_DRAM_PAUSE = 0.3


async def _w_burst_spans(dut, spans: list) -> None:
    """Append, per W burst on the chip's AXI4 master, ``(beats, cycles from its first W handshake to its last,
    both counted)``."""
    first, beats, now = None, 0, 0
    while True:
        await RisingEdge(dut.aclk)
        now += 1
        if dut.m_axi_wvalid.value == 1 and dut.m_axi_wready.value == 1:
            first = now if first is None else first
            beats += 1
            if dut.m_axi_wlast.value == 1:
                spans.append((beats, now - first + 1))
                first, beats = None, 0


def _store_burst_spans(prog) -> list:
    """The ``(beats, cycles)`` of every W burst of ``prog``'s STOREs at one element a cycle with WREADY high
    (:func:`model.chip_timing.dma_cycles`): a burst of ``e`` elements of a 32-bit buffer ``e`` cycles, of ACT
    ``e - 1`` (its first element is read before the first beat; one element: 1)."""
    out = []
    for w in prog.imem:
        ins = isa.decode(int(w))
        if ins["op"] == "HALT":
            break
        if ins["op"] != "STORE":
            continue
        d = isa.unpack_descriptor("STORE", prog.dmem[ins["desc"] * isa.DESC_WORDS:(ins["desc"] + 1) * isa.DESC_WORDS])
        buf = {c: n for n, c in isa.DMA_BUFFERS.items()}[d["buffer"]]
        per, left = isa.dma_elems_per_beat(buf), int(d["count"])
        for beats in isa.dma_bursts(d["addr"], isa.dma_beats(buf, left)):
            e = min(left, beats * per)
            left -= e
            out.append((beats, e - 1 if per > 1 and e > 1 else e))
    return out


@cocotb.test(timeout_time=40, timeout_unit="ms")
async def chip_axi_dram_loads_and_stores(dut):
    """The chip's AXI4 master on cocotbext-axi's ``AxiRam`` (random pauses on its five channels, reset with the
    chip): a random LOAD / STORE program of every DMA buffer (``DBPIM_CHIP_PROGRAM``, written by
    tests/test_hw_chip_axi.py) leaves ACT, ACC, WMEM, CMEM and the DRAM equal to the golden chip's; so does
    a rerun with the RAM's pauses off, its W bursts one beat a cycle (ACT: one element a cycle,
    :func:`_store_burst_spans`); a LOAD past the RAM's end is answered SLVERR: STATUS.ERROR_CODE 8; a reset in
    the middle of a burst, then a rerun, gives the golden result again."""
    from cocotbext.axi import AxiBus, AxiRam

    seed, rng = env_rng()
    with np.load(os.environ["DBPIM_CHIP_PROGRAM"], allow_pickle=False) as f:
        d = {k: f[k] for k in f.files}
    depths = {n: int(v) for n, v in zip(d["depth_names"].tolist(), d["depths"].tolist())}
    prog = ChipProgram(imem=d["imem"], dmem=d["dmem"], cmem=d["cmem"], wmem=d["wmem"], act_words=depths["ACT"],
                       acc_words=depths["ACC"], input={}, output={}, macro=None, values={})
    _power_up(dut)
    # the RAM starts once the chip is in reset: before the first aclk edge the chip's flops hold Verilator's random
    # initial state, and cocotbext-axi's agents react to reset edges only, so a RAM made then took the W beat
    # (WVALID high) of that state as its first STORE burst's first beat (DBPIM_SEED=1205252459 did)
    await ClockCycles(dut.aclk, 2)
    ram = AxiRam(AxiBus.from_prefix(dut, "m_axi"), dut.aclk, dut.aresetn, reset_active_level=False,
                 size=len(d["dram"]))
    ram_read = ram.read_if._read  # AxiRam wraps addresses around its size: a read past it answered SLVERR

    async def read_or_fail(address, length):
        if address + length > len(d["dram"]):
            raise ValueError(f"read of {length} bytes at {address:#x}: past the RAM")
        return await ram_read(address, length)

    ram.read_if._read = read_or_fail
    await ClockCycles(dut.aclk, 2)
    dut.aresetn.value = 1
    await ClockCycles(dut.aclk, 2)
    axil = _axil_master(dut, rng)
    for ch in (ram.write_if.aw_channel, ram.write_if.w_channel, ram.write_if.b_channel, ram.read_if.ar_channel,
               ram.read_if.r_channel):
        ch.set_pause_generator(pause_generator(rng, P_DRAM_PAUSE))
    for agent in (ram.write_if, ram.read_if):
        agent.log.setLevel(logging.WARNING)
    drv = AsyncChipDriver(_Bus(axil), cmap=isa.chip_map(depths), max_polls=100 * int(d["want_cycles"]) + 10_000)

    async def run_and_check(label):
        ram.write(0, d["dram"].tobytes())
        await drv.write_buffer("ACT", d["act"])
        await drv.write_buffer("ACC", d["acc"])
        res = await _run_to_done(drv, f"seed {seed}: {label}")
        assert res.ok and res.fields["PC"] == len(prog.imem) - 1, f"seed {seed}: {label}: STATUS {res.fields}"
        for name in isa.DMA_BUFFERS:
            got = await drv.read_buffer(name, depths[name])
            want = d[f"want_{name.lower()}"]
            bad = np.flatnonzero(got != want)
            assert not bad.size, (f"seed {seed}: {label}: {name} differs at {bad[:10].tolist()}: rtl "
                                  f"{got[bad[:10]].tolist()}, golden {want[bad[:10]].tolist()}")
        got = np.frombuffer(ram.read(0, len(d["dram"])), np.uint8)
        bad = np.flatnonzero(got != d["want_dram"])
        assert not bad.size, f"seed {seed}: {label}: DRAM differs at bytes {bad[:10].tolist()}"
        return res.cycles

    await drv.load(prog, rng=rng)
    cycles = await run_and_check("the program")

    # the RAM's pauses off: W beats back to back (one a cycle while WREADY is high; ACT: one element a cycle)
    channels = (ram.write_if.aw_channel, ram.write_if.w_channel, ram.write_if.b_channel, ram.read_if.ar_channel,
                ram.read_if.r_channel)
    for ch in channels:
        ch.set_pause_generator(None)
        ch.pause = False
    spans = []
    monitor = cocotb.start_soon(_w_burst_spans(dut, spans))
    await run_and_check("the program, the RAM never pausing")
    monitor.cancel()
    want = _store_burst_spans(prog)
    assert any(b > 1 for b, _ in want), f"seed {seed}: the program has no W burst of several beats"
    assert spans == want, f"seed {seed}: W bursts' cycles from first to last beat {spans}, want {want}"
    for ch in channels:
        ch.set_pause_generator(pause_generator(rng, P_DRAM_PAUSE))

    # a reset while a burst is in flight: the master's VALID / READY drop, the RAM is reset with the chip
    await drv.load(prog)
    await drv.start()
    for _ in range(100_000):
        await RisingEdge(dut.aclk)
        if dut.m_axi_rvalid.value == 1 and dut.m_axi_rready.value == 0 or dut.m_axi_wvalid.value == 1:
            break
    else:
        raise AssertionError(f"seed {seed}: no burst in flight to reset in")
    dut.aresetn.value = 0
    await ClockCycles(dut.aclk, 4)
    for name in ("arvalid", "awvalid", "wvalid", "rready", "bready"):
        assert getattr(dut, f"m_axi_{name}").value == 0, f"seed {seed}: m_axi_{name} high in reset"
    dut.aresetn.value = 1
    await ClockCycles(dut.aclk, 4)
    res = await drv.result()
    assert (res.fields["BUSY"], res.fields["DONE"], res.fields["ERROR"]) == (0, 0, 0), \
        f"seed {seed}: STATUS after a reset mid-burst: {res.fields}"
    await run_and_check("the program after a reset mid-burst")

    # a LOAD past the RAM: SLVERR, error code 8
    await drv.write_buffer("IMEM", d["err_imem"])
    await drv.write_buffer("DMEM", d["err_dmem"])
    await drv.start()
    await drv.wait_done()
    res = await drv.result()
    assert res.fields["ERROR"] == 1 and res.fields["ERROR_CODE"] == 8 and res.fields["PC"] == 0, \
        f"seed {seed}: a LOAD past the RAM: STATUS {res.fields}"
    dut._log.info(f"seed {seed}: {len(prog.imem)} instructions, {cycles} cycles (ideal DRAM {int(d['want_cycles'])}), "
                  "buffers and DRAM equal to the golden chip, reset mid-burst, SLVERR -> 8")

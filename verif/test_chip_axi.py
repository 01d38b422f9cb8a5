"""cocotb: the chip as an IP block (``dbpim_chip_axi``) through cocotbext-axi's ``AxiLiteMaster``, random pauses
on AW, W, B, AR and R (run by ``tests/test_hw_chip_axi.py``).

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
from cocotb.triggers import ClockCycles

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


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def chip_axi_runs_a_program(dut):
    from cocotb.clock import Clock
    from cocotbext.axi import AxiLiteBus, AxiLiteMaster

    seed, rng = env_rng()
    with np.load(os.environ["DBPIM_CHIP_PROGRAM"], allow_pickle=False) as f:
        d = {k: f[k] for k in f.files}
    depths = {n: int(v) for n, v in zip(d["depth_names"].tolist(), d["depths"].tolist())}
    prog = ChipProgram(imem=d["imem"], dmem=d["dmem"], cmem=d["cmem"], wmem=np.zeros(1, np.int64),
                       act_words=depths["ACT"], acc_words=depths["ACC"], input={}, output={}, macro=None, values={})
    cocotb.start_soon(Clock(dut.aclk, CLOCK_NS, unit="ns").start())
    for name in ("s_axil_awvalid", "s_axil_wvalid", "s_axil_bready", "s_axil_arvalid", "s_axil_rready"):
        getattr(dut, name).value = 0
    dut.aresetn.value = 0
    await ClockCycles(dut.aclk, 4)
    dut.aresetn.value = 1
    await ClockCycles(dut.aclk, 2)
    axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.aclk)
    for ch in (axil.write_if.aw_channel, axil.write_if.w_channel, axil.write_if.b_channel,
               axil.read_if.ar_channel, axil.read_if.r_channel):
        ch.set_pause_generator(pause_generator(rng, P_PAUSE))
    for agent in (axil.write_if, axil.read_if):
        agent.log.setLevel(logging.WARNING)  # not a log line per transfer
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
    await drv.start()
    try:
        await drv.wait_done()
    except DriverError as e:
        raise AssertionError(f"seed {seed}: {e}") from None
    assert dut.irq.value == 1, f"seed {seed}: irq low after DONE"
    res = await drv.result()
    assert res.ok and res.fields["PC"] == len(prog.imem) - 1, f"seed {seed}: STATUS {res.fields}"
    assert res.cycles == int(d["want_cycles"]), f"seed {seed}: CYCLES {res.cycles}, golden {int(d['want_cycles'])}"
    got = await drv.read_buffer("ACT", depths["ACT"])
    bad = np.flatnonzero(got != d["want_act"])
    assert not bad.size, (f"seed {seed}: ACT differs at {bad[:10].tolist()}: rtl {got[bad[:10]].tolist()}, "
                          f"golden {d['want_act'][bad[:10]].tolist()}")
    dut._log.info(f"seed {seed}: {len(prog.imem)} instructions, {res.cycles} cycles, ACT equal to the golden chip")

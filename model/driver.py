"""Driver of the PIM core (``dbpim_core``) through any register bus: the host's programming sequence, once.

A bus is any object with ``read(addr) -> int`` and ``write(addr, data)``
(byte addresses, 32-bit words): an MMIO window, a simulator's AXI4-Lite
master, a model. :class:`CoreDriver` drives a synchronous bus,
:class:`AsyncCoreDriver` one whose ``read`` / ``write`` are coroutines (the
cocotb / Amaranth testbenches, :mod:`verif.core_tb`). Both run the same
sequences, written once as generators of bus operations:

* :meth:`~CoreDriver.check_identity` - ``ID`` is the core's, ``DIGEST`` the configuration's
  (:func:`model.spec.digest_word` of ``HwConfig.digest()``);
* :meth:`~CoreDriver.load` - a segment's tiles, column maps, masks,
  descriptors and ``LAYER`` (:func:`model.core.bus_writes`);
* :meth:`~CoreDriver.start` - ``CTRL.START``;
* :meth:`~CoreDriver.wait_done` - poll ``STATUS`` until ``DONE``;
* :meth:`~CoreDriver.result` - ``CYCLES`` and ``STATUS`` after a run;
* :meth:`~CoreDriver.run` - load, start, wait, result.

Register addresses and field positions come from :data:`model.spec.CORE_REGISTERS`
(the C header ``dbpim verilog`` writes holds the same).

Pure Python.
"""

from __future__ import annotations

from dataclasses import dataclass

from dbpim.model.spec import CORE_ID, CORE_REG, digest_word

__all__ = ["RunStatus", "CoreDriver", "AsyncCoreDriver", "DriverError"]


class DriverError(RuntimeError):
    """The core is not the one expected, did not finish, or reported an error."""


@dataclass(frozen=True)
class RunStatus:
    """``CYCLES`` and the decoded ``STATUS`` after a run."""

    cycles: int
    status: int

    @property
    def fields(self) -> dict:
        return CORE_REG["STATUS"].decode(self.status)

    @property
    def ok(self) -> bool:
        f = self.fields
        return bool(f["DONE"]) and not f["ERROR"] and not f["BUSY"]


# ---- the sequences: generators yielding ("w", addr, data) or ("r", addr) and receiving the read word

def _identity(hw):
    core_id = yield ("r", CORE_REG["ID"].address)
    if core_id != CORE_ID:
        raise DriverError(f"ID: 0x{core_id:08X}, not a DB-PIM core (0x{CORE_ID:08X})")
    if hw is not None:
        want = digest_word(hw.digest())
        got = yield ("r", CORE_REG["DIGEST"].address)
        if got != want:
            raise DriverError(f"DIGEST: 0x{got:08X}, the core was built for another configuration than "
                              f"{hw.name!r} (0x{want:08X})")


def _load(program, segment):
    from dbpim.model.core import bus_writes

    for addr, word in bus_writes(program, segment):
        yield ("w", addr, word)


def _start():
    ctrl = CORE_REG["CTRL"]
    yield ("w", ctrl.address, ctrl.value(START=1))


def _wait_done(max_polls: int):
    status = CORE_REG["STATUS"]
    for _ in range(max_polls):
        word = yield ("r", status.address)
        if status.field("DONE").get(word):
            return word
    raise DriverError(f"STATUS: DONE not set after {max_polls} reads")


def _result():
    cycles = yield ("r", CORE_REG["CYCLES"].address)
    status = yield ("r", CORE_REG["STATUS"].address)
    return RunStatus(cycles=cycles, status=status)


def _run(program, segment, max_polls: int):
    yield from _load(program, segment)
    yield from _start()
    yield from _wait_done(max_polls)
    return (yield from _result())


def _check_bus(bus):
    if not (callable(getattr(bus, "read", None)) and callable(getattr(bus, "write", None))):
        raise TypeError(f"bus: must have read(addr) and write(addr, data), got {type(bus).__name__}")
    return bus


class CoreDriver:
    """The core's programming sequences on a synchronous bus (``read(addr)``, ``write(addr, data)``)."""

    def __init__(self, bus, *, max_polls: int = 1_000_000):
        self.bus = _check_bus(bus)
        if not isinstance(max_polls, int) or max_polls < 1:
            raise ValueError(f"max_polls: must be a positive integer, got {max_polls!r}")
        self.max_polls = max_polls

    def _do(self, seq):
        try:
            op = next(seq)
            while True:
                if op[0] == "w":
                    self.bus.write(op[1], op[2])
                    op = seq.send(None)
                else:
                    op = seq.send(int(self.bus.read(op[1])))
        except StopIteration as stop:
            return stop.value

    def check_identity(self, hw=None) -> None:
        """Raise :class:`DriverError` unless ``ID`` is the core's and (with ``hw``) ``DIGEST`` is ``hw``'s."""
        return self._do(_identity(hw))

    def load(self, program, segment) -> None:
        return self._do(_load(program, segment))

    def start(self) -> None:
        return self._do(_start())

    def wait_done(self) -> int:
        """Poll ``STATUS`` until ``DONE``; returns the word."""
        return self._do(_wait_done(self.max_polls))

    def result(self) -> RunStatus:
        return self._do(_result())

    def run(self, program, segment) -> RunStatus:
        """Load ``segment``, START, wait for DONE, read ``CYCLES`` and ``STATUS``."""
        return self._do(_run(program, segment, self.max_polls))


class AsyncCoreDriver(CoreDriver):
    """The same sequences on a bus whose ``read`` / ``write`` are coroutines; every method is awaited."""

    async def _do(self, seq):
        try:
            op = next(seq)
            while True:
                if op[0] == "w":
                    await self.bus.write(op[1], op[2])
                    op = seq.send(None)
                else:
                    op = seq.send(int(await self.bus.read(op[1])))
        except StopIteration as stop:
            return stop.value

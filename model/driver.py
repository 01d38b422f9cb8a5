"""Drivers of the PIM core (``dbpim_core``) and the chip (``dbpim_chip_axi``) through any register bus: the host's
programming sequences, once.

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

:class:`ChipDriver` / :class:`AsyncChipDriver` drive the chip's map
(:func:`model.isa.chip_map`: :data:`model.isa.CHIP_REGISTERS` and the
buffers) on the same kind of bus:

* :meth:`~ChipDriver.write_buffer` / :meth:`~ChipDriver.read_buffer` - elements of a buffer (an ``IMEM``
  instruction as two words, low then high: the high word's write commits it);
* :meth:`~ChipDriver.load` - a :class:`model.chip.ChipProgram`'s ``imem``, ``dmem``, ``cmem`` (and ``wmem`` when
  the chip has a ``WMEM``);
* :meth:`~ChipDriver.write_input` / :meth:`~ChipDriver.read_output` - the program's input / output tensor in
  ``ACT`` (integers, one sample);
* :meth:`~ChipDriver.start`, :meth:`~ChipDriver.wait_done`, :meth:`~ChipDriver.result`,
  :meth:`~ChipDriver.run` - as the core's.

Pure Python and NumPy.
"""

from __future__ import annotations

from dataclasses import dataclass

from dataclasses import field

import numpy as np

from dbpim.model.spec import BUS_BITS, CORE_ID, CORE_REG, Register, digest_word

__all__ = ["RunStatus", "CoreDriver", "AsyncCoreDriver", "ChipDriver", "AsyncChipDriver", "DriverError"]


class DriverError(RuntimeError):
    """The core is not the one expected, did not finish, or reported an error."""


@dataclass(frozen=True)
class RunStatus:
    """``CYCLES`` and the decoded ``STATUS`` after a run (of the core, or with ``register`` the chip's)."""

    cycles: int
    status: int
    register: Register = field(default=CORE_REG["STATUS"], repr=False, compare=False)

    @property
    def fields(self) -> dict:
        return self.register.decode(self.status)

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


def _start(regs=CORE_REG):
    ctrl = regs["CTRL"]
    yield ("w", ctrl.address, ctrl.value(START=1))


def _wait_done(max_polls: int, regs=CORE_REG):
    status = regs["STATUS"]
    for _ in range(max_polls):
        word = yield ("r", status.address)
        if status.field("DONE").get(word):
            return word
    raise DriverError(f"STATUS: DONE not set after {max_polls} reads (last {status.decode(word)})")


def _result(regs=CORE_REG):
    cycles = yield ("r", regs["CYCLES"].address)
    status = yield ("r", regs["STATUS"].address)
    return RunStatus(cycles=cycles, status=status, register=regs["STATUS"])


def _run(program, segment, max_polls: int):
    yield from _load(program, segment)
    yield from _start()
    yield from _wait_done(max_polls)
    return (yield from _result())


def _check_bus(bus):
    if not (callable(getattr(bus, "read", None)) and callable(getattr(bus, "write", None))):
        raise TypeError(f"bus: must have read(addr) and write(addr, data), got {type(bus).__name__}")
    return bus


class _BusDriver:
    """A bus and the sequences' runner (synchronous: ``read(addr)``, ``write(addr, data)``)."""

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


class _AsyncBus:
    """The runner for a bus whose ``read`` / ``write`` are coroutines; every method is awaited."""

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


class CoreDriver(_BusDriver):
    """The core's programming sequences on a synchronous bus (``read(addr)``, ``write(addr, data)``)."""

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


class AsyncCoreDriver(_AsyncBus, CoreDriver):
    """The same sequences on a bus whose ``read`` / ``write`` are coroutines; every method is awaited."""


# ---- the chip (dbpim_chip_axi): its map is model.isa.chip_map

def _elements(buf, values, what: str) -> list[int]:
    """Integer elements of ``values`` checked against the buffer's element range (one line naming the first
    that does not fit)."""
    a = np.asarray(values)
    if a.dtype.kind not in "iub":
        raise ValueError(f"{what}: must be integers, got {a.dtype}")
    vals = [int(v) for v in a.reshape(-1).tolist()]
    bits = buf.elem_bits
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if buf.signed else (0, (1 << bits) - 1)
    for i, v in enumerate(vals):
        if not lo <= v <= hi:
            raise ValueError(f"{what}: element {i} = {v} is outside the {buf.name} range [{lo}, {hi}]")
    return vals


def _write_buffer(cmap, name: str, values, base: int):
    from dbpim.model.isa import BUFFERS

    if name not in cmap.regions:
        raise ValueError(f"buffer: must be one of {', '.join(cmap.regions)}, got {name!r}")
    region, buf = cmap.regions[name], BUFFERS[name]
    vals = _elements(buf, values, name)
    if not (isinstance(base, int) and 0 <= base and base + len(vals) <= region.entries):
        raise ValueError(f"{name}: entries {base}..{base + len(vals) - 1} are outside its {region.entries} "
                         f"entries")
    mask = (1 << BUS_BITS) - 1
    for i, v in enumerate(vals):
        v &= (1 << (BUS_BITS * region.words)) - 1
        for k in range(region.words):  # lowest word first: the last word's write commits the entry
            yield ("w", region.address(base + i, k), (v >> (BUS_BITS * k)) & mask)


def _read_buffer(cmap, name: str, count: int, base: int):
    from dbpim.model.isa import BUFFERS

    if name not in cmap.regions:
        raise ValueError(f"buffer: must be one of {', '.join(cmap.regions)}, got {name!r}")
    region, buf = cmap.regions[name], BUFFERS[name]
    if not (isinstance(count, int) and isinstance(base, int) and 0 <= base and count >= 0
            and base + count <= region.entries):
        raise ValueError(f"{name}: entries {base}..{base + count - 1} are outside its {region.entries} entries")
    out = []
    for i in range(count):
        v = 0
        for k in range(region.words):
            v |= (yield ("r", region.address(base + i, k))) << (BUS_BITS * k)
        v &= (1 << buf.elem_bits) - 1
        if buf.signed and v >> (buf.elem_bits - 1):
            v -= 1 << buf.elem_bits
        out.append(v)
    return np.array(out, np.int64 if buf.elem_bits < 64 else np.uint64)


def _load_program(cmap, program, rng=None):
    """The images' writes, buffer by buffer from entry 0; with ``rng`` (a ``numpy.random.Generator``) every entry of
    every image in a random order (an entry's words still lowest first: its last word commits it)."""
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: must be a numpy.random.Generator or None, got {type(rng).__name__}")
    entries = []
    for name, image in (("IMEM", program.imem), ("DMEM", program.dmem), ("CMEM", program.cmem),
                        ("WMEM", program.wmem)):
        if name not in cmap.regions:
            if np.any(np.asarray(image) != 0):
                raise ValueError(f"program: has a {name} image but the chip has no {name}")
            continue
        if rng is None:
            yield from _write_buffer(cmap, name, image, 0)
            continue
        words = list(_write_buffer(cmap, name, image, 0))
        n = cmap.regions[name].words
        entries += [words[k:k + n] for k in range(0, len(words), n)]
    for k in (rng.permutation(len(entries)) if entries else ()):
        for op in entries[k]:
            yield op


def _write_input(cmap, program, x):
    shape = tuple(program.input["shape"])
    a = np.asarray(x)
    if a.shape != shape:
        raise ValueError(f"x: must have the program's input shape {shape}, got {a.shape}")
    yield from _write_buffer(cmap, "ACT", a, int(program.input["addr"]))


def _read_output(cmap, program):
    shape = tuple(program.output["shape"])
    out = yield from _read_buffer(cmap, "ACT", int(np.prod(shape)), int(program.output["addr"]))
    return out.reshape(shape)


class ChipDriver(_BusDriver):
    """The chip's programming sequences (``dbpim_chip_axi``) on a synchronous bus.

    Parameters
    ----------
    bus
        ``read(addr)`` / ``write(addr, data)``, byte addresses of 32-bit words.
    cmap : model.spec.RegisterMap
        The chip's map (:func:`model.isa.chip_map` of its depths; ``hw.chip_axi.DBPIMChipAXI.map``).
    max_polls : int
        ``STATUS`` reads before :meth:`wait_done` gives up.
    """

    def __init__(self, bus, *, cmap, max_polls: int = 1_000_000):
        from dbpim.model.isa import CHIP_REG
        from dbpim.model.spec import RegisterMap

        super().__init__(bus, max_polls=max_polls)
        if not isinstance(cmap, RegisterMap) or cmap.regs.keys() != CHIP_REG.keys():
            raise TypeError(f"cmap: must be the chip's map (model.isa.chip_map), got {type(cmap).__name__}")
        self.cmap = cmap
        self.regs = CHIP_REG

    def write_buffer(self, name: str, values, base: int = 0) -> None:
        """Write integer elements into buffer ``name`` from entry ``base``."""
        return self._do(_write_buffer(self.cmap, name, values, base))

    def read_buffer(self, name: str, count: int, base: int = 0) -> np.ndarray:
        """``count`` elements of buffer ``name`` from entry ``base`` (signed buffers sign-extended)."""
        return self._do(_read_buffer(self.cmap, name, count, base))

    def load(self, program, *, rng=None) -> None:
        """Write a :class:`model.chip.ChipProgram`'s images (``IMEM``, ``DMEM``, ``CMEM``, ``WMEM``) from entry 0;
        with ``rng`` (a ``numpy.random.Generator``) their entries in a random order, interleaved across the images
        (each entry's words lowest first)."""
        return self._do(_load_program(self.cmap, program, rng))

    def write_input(self, program, x) -> None:
        """Write one sample's integer input tensor (``program.input``: its shape, at its ACT address)."""
        return self._do(_write_input(self.cmap, program, x))

    def read_output(self, program) -> np.ndarray:
        """One sample's integer output tensor (``program.output``: its shape, at its ACT address)."""
        return self._do(_read_output(self.cmap, program))

    def start(self) -> None:
        return self._do(_start(self.regs))

    def wait_done(self) -> int:
        """Poll ``STATUS`` until ``DONE``; returns the word."""
        return self._do(_wait_done(self.max_polls, self.regs))

    def result(self) -> RunStatus:
        """``CYCLES`` and ``STATUS`` (fields of :data:`model.isa.CHIP_REGISTERS`)."""
        return self._do(_result(self.regs))

    def run(self, program, x):
        """Load ``program``, write the input ``x``, START, wait for DONE; returns ``(RunStatus, output)`` (the
        output tensor is read only when the run ended without error, else None)."""
        return self._do(self._run(program, x))

    def _run(self, program, x):
        yield from _load_program(self.cmap, program)
        yield from _write_input(self.cmap, program, x)
        yield from _start(self.regs)
        yield from _wait_done(self.max_polls, self.regs)
        res = yield from _result(self.regs)
        return res, ((yield from _read_output(self.cmap, program)) if res.ok else None)


class AsyncChipDriver(_AsyncBus, ChipDriver):
    """:class:`ChipDriver` on a bus whose ``read`` / ``write`` are coroutines; every method is awaited."""

"""The chip top on the native Verilator harness: a :class:`model.chip.ChipProgram` on ``dbpim_chip`` (docs/rtl.md).

The harness (``verif/native/chip_main.cpp``, built by
:func:`verif.native.build_native` into ``build/native/chip-<config>``) knows
the host port only; this module writes its stimulus from
:mod:`model.isa` (targets :data:`model.isa.HOST_TARGETS`, registers
:data:`model.isa.CHIP_REGISTERS`) and reads its results back:

1. reset, then the program's images, once: every buffer of
   :data:`model.isa.BUFFERS` that is a host target and that the program has an
   image of (``imem``, ``dmem``, ``cmem``, ``wmem``, ...), from word 0
   (:func:`unloadable_images` lists those it cannot load: a caller refuses
   such a program, as ``dbpim run --rtl`` does, or expects the run to stop);
2. per sample: its words (the quantized input into ``ACT``; for ISA-level
   tests any buffer contents), ``CTRL.START``, clocks until ``irq``
   (``STATUS.DONE``), then ``STATUS``, ``CYCLES`` and the output region(s).

:func:`run_chip_native` is the generic exchange, :func:`run_program_native`
a network's program on a batch of quantized inputs. A run that stops on an
error comes back with its ``STATUS``; :meth:`ChipRun.error` is the one-line
error (the instruction, its opcode and the meaning in
:data:`model.isa.CHIP_ERRORS`) and :meth:`ChipRun.check` raises it as
:class:`ChipRunError`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from dbpim.model import isa
from dbpim.verif.native import NativeError, _config, _run, build_native

__all__ = ["ChipRun", "ChipRunError", "chip_depths", "program_images", "unloadable_images", "check_fits",
           "pending_instructions", "chip_stimulus", "run_chip_native", "run_program_native", "model_cycles",
           "RESET_CYCLES"]

#: Cycles of ``rst`` before the images are loaded.
RESET_CYCLES = 4
SEL = {name: i for i, name in enumerate(isa.HOST_TARGETS)}


class ChipRunError(NativeError):
    """The RTL chip stopped a run with STATUS.ERROR, or a program does not fit it; one line naming it."""


def chip_depths(cfg) -> dict:
    """Words of each buffer of the chip built for ``cfg`` (:meth:`hw.chip.DBPIMChip.from_config`: the
    configuration's ``chip`` section, :meth:`model.config.HwConfig.chip_words`)."""
    from dbpim.hw.chip import DBPIMChip
    chip = DBPIMChip.from_config(_config(cfg))
    chip._MustUse__silence = True  # built for its depths only: no UnusedElaboratable warning on the user's screen
    return dict(chip.depths)


def _images(program):
    for name in isa.BUFFERS:
        img = getattr(program, name.lower(), None)
        if isinstance(img, np.ndarray):
            yield name, img.reshape(-1)


def program_images(program) -> dict:
    """Buffer name -> the words the host loads from address 0: the program's image of every buffer of
    :data:`model.isa.BUFFERS` that is a host target (``ChipProgram.imem``, ``dmem``, ``cmem``, ``wmem``, ...)."""
    return {name: img for name, img in _images(program) if name in SEL}


def unloadable_images(program) -> list:
    """``(buffer, words)`` of each non-zero image of ``program`` that the chip has no host target for (the host
    cannot load it: until the buffer is in :data:`model.isa.HOST_TARGETS`, a program that reads it cannot run)."""
    return [(name, int(img.size)) for name, img in _images(program) if name not in SEL and np.any(img != 0)]


def check_fits(program, depths: dict) -> None:
    """Raise :class:`ChipRunError` (one line naming every buffer that does not fit) when an image of ``program``,
    or the ``ACT`` / ``ACC`` words it allocates, exceed the chip's buffer ``depths`` (:func:`chip_depths`)."""
    need = {name: int(img.size) for name, img in program_images(program).items()}
    need["ACT"] = max(need.get("ACT", 0), int(program.act_words))
    need["ACC"] = max(need.get("ACC", 0), int(program.acc_words))
    over = [f"{n} {name} words, the chip has {depths[name]}" for name, n in need.items()
            if depths.get(name) is not None and n > depths[name]]
    if over:
        raise ChipRunError("program: needs " + "; needs ".join(over))


def pending_instructions(program) -> list:
    """``(pc, opcode)`` of every instruction up to HALT that the RTL chip does not run yet
    (:data:`model.isa.RTL_PENDING`)."""
    out = []
    for pc, word in enumerate(program.imem):
        op = isa.decode(int(word))["op"]
        if op == "HALT":
            break
        if op in isa.RTL_PENDING:
            out.append((pc, op))
    return out


def _words(name: str, values, what: str) -> list[int]:
    """``values`` as host words of buffer ``name`` (two's complement in its ``elem_bits``), range-checked."""
    buf = isa.BUFFERS[name]
    v = np.asarray(values).reshape(-1)
    if v.size and v.dtype.kind not in "iu":
        raise ChipRunError(f"{what}: must be integers, got {v.dtype}")
    half = 1 << (buf.elem_bits - 1)
    lo, hi = (-half, half - 1) if buf.signed else (0, 2 * half - 1)
    vi = [int(x) for x in v]
    if vi and (min(vi) < lo or max(vi) > hi):
        raise ChipRunError(f"{what}: {name} holds {'signed' if buf.signed else 'unsigned'} {buf.elem_bits}-bit "
                           f"elements [{lo}, {hi}], got [{min(vi)}, {max(vi)}]")
    mask = (1 << buf.elem_bits) - 1
    return [x & mask for x in vi]


def _check_region(name: str, base: int, n: int, depths: dict, what: str) -> None:
    if name not in SEL or name == "REGS":
        raise ChipRunError(f"{what}: target must be a buffer of model.isa.HOST_TARGETS "
                           f"({', '.join(t for t in isa.HOST_TARGETS if t != 'REGS')}), got {name!r}")
    depth = depths.get(name)
    if base < 0 or (depth is not None and base + n > depth):
        raise ChipRunError(f"{what}: {name} words [{base}, {base + n}) do not fit the chip's {depth} words")


def _write_lines(name: str, base: int, words: list[int], chunk: int = 256) -> list[str]:
    return [f"write {SEL[name]:x} {base + i:x} " + " ".join(f"{w:x}" for w in words[i:i + chunk])
            for i in range(0, len(words), chunk)]


def _dram_lines(base: int, data) -> list[str]:
    """``dramw`` lines of the bytes ``data`` from DRAM byte address ``base`` (a multiple of 4; zero-padded to
    whole words)."""
    b = np.asarray(data, np.uint8).reshape(-1)
    if base % 4:
        raise ChipRunError(f"DRAM base {base}: must be a multiple of 4")
    b = np.concatenate([b, np.zeros(-len(b) % 4, np.uint8)])
    w = [int(x) for x in b.view("<u4")]
    return [f"dramw {base + 4 * i:x} " + " ".join(f"{x:x}" for x in w[i:i + 256]) for i in range(0, len(w), 256)]


def chip_stimulus(images: dict, samples: list, reads: list, depths: dict, limit: int, dram=None) -> list[str]:
    """Harness lines: reset, ``images`` (buffer -> words from 0), then per sample of ``samples`` (a list of
    {buffer: (base, words)}) a mark, its writes, START (at most ``limit`` cycles to DONE), ``STATUS``,
    ``CYCLES``, each region of ``reads`` ((buffer, base, n) triples) and a mark.

    ``dram`` ``(bytes, latency)``: the harness's ideal DRAM on the AXI4 master (:data:`model.chip_timing.DMA_LATENCY`
    latency); then a sample's ``"DRAM": (byte address, uint8 array)`` is written into it before its START and a
    read ``("DRAM", byte address, bytes)`` reads it back."""
    regs = SEL["REGS"]
    ctrl, status, cycles = isa.CHIP_REG["CTRL"], isa.CHIP_REG["STATUS"], isa.CHIP_REG["CYCLES"]
    lines = [f"reset {RESET_CYCLES}"]
    if dram is not None:
        lines.append(f"dram {int(dram[0])} {int(dram[1])}")
    for name, img in images.items():
        _check_region(name, 0, len(img), depths, f"program {name} image")
        lines += _write_lines(name, 0, _words(name, img, f"program {name} image"))
    for name, base, n in reads:
        if name == "DRAM":
            if dram is None or base % 4 or base + n > dram[0]:
                raise ChipRunError(f"output DRAM region [{base}, {base + n}): must be word-aligned, in the DRAM")
            continue
        _check_region(name, base, n, depths, f"output {name} region")
    for s, sample in enumerate(samples):
        lines.append("mark")
        for name, (base, values) in sample.items():
            if name == "DRAM":
                if dram is None:
                    raise ChipRunError(f"sample {s}: DRAM bytes given but the run has no DRAM")
                lines += _dram_lines(base, values)
                continue
            w = _words(name, values, f"sample {s} {name} words")
            _check_region(name, base, len(w), depths, f"sample {s} {name} words")
            lines += _write_lines(name, base, w)
        lines.append(f"run {regs:x} {ctrl.word:x} {ctrl.value(START=1):x} {int(limit)}")
        lines.append(f"read {regs:x} {status.word:x} 1")
        lines.append(f"read {regs:x} {cycles.word:x} 1")
        lines += [f"dramr {base:x} {-(-n // 4):x}" if name == "DRAM" else f"read {SEL[name]:x} {base:x} {n:x}"
                  for name, base, n in reads]
        lines.append("mark")
    return lines


@dataclass
class ChipRun:
    """The samples of one harness run.

    Attributes
    ----------
    outputs : list of list of ndarray
        ``outputs[sample][k]``: region ``k`` of the reads (int64, signed as its buffer's elements).
    status : list of dict
        Each sample's ``STATUS`` fields (:data:`model.isa.CHIP_REGISTERS`).
    cycles : ndarray
        Each sample's ``CYCLES`` register.
    run_clocks, run_seconds, run_cpu_seconds : ndarray
        Clocks, harness wall seconds and harness CPU seconds (unskewed by other processes on a loaded machine)
        from START to DONE of each sample.
    sample_seconds : ndarray
        Harness wall seconds of each sample: its writes, the run and the reads.
    clocks, seconds : int, float
        Simulated clock cycles and harness wall seconds of the whole run (images included).
    build_seconds : float
        The harness build (0 when the cached build was reused).
    wall_seconds : float
        The whole call, in Python: build check, files, harness process.
    """

    outputs: list
    status: list
    cycles: np.ndarray
    run_clocks: np.ndarray
    run_seconds: np.ndarray
    run_cpu_seconds: np.ndarray
    sample_seconds: np.ndarray
    clocks: int
    seconds: float
    build_seconds: float
    wall_seconds: float
    imem: tuple = ()

    @property
    def cycles_per_second(self) -> float:
        """Simulated clock cycles per harness wall second, START to DONE of every sample (0 if none)."""
        t = float(self.run_seconds.sum())
        return float(self.run_clocks.sum()) / t if t > 0 else 0.0

    @property
    def cycles_per_cpu_second(self) -> float:
        """Simulated clock cycles per harness CPU second, START to DONE of every sample (0 if none)."""
        t = float(self.run_cpu_seconds.sum())
        return float(self.run_clocks.sum()) / t if t > 0 else 0.0

    def error(self, sample: int = 0) -> str | None:
        """The one-line error of ``sample``'s run (None when it reached HALT)."""
        st = self.status[sample]
        if not st["ERROR"]:
            return None
        code, pc = int(st["ERROR_CODE"]), int(st["PC"])
        if pc < len(self.imem):
            word = int(self.imem[pc])
            try:
                op = isa.decode(word)["op"]
            except isa.IsaError:
                op = f"opcode {word & 0xF}"
            where = f"instruction {pc} ({op})"
        else:
            where = f"instruction {pc} (past the program's {len(self.imem)} instructions)"
        meaning = isa.CHIP_ERRORS.get(code, "not a code of model.isa.CHIP_ERRORS")
        return f"RTL chip: sample {sample}: {where} stopped the run with STATUS.ERROR_CODE {code}: {meaning}"

    def check(self) -> None:
        """Raise :class:`ChipRunError` with the first sample's error, if any sample stopped on one."""
        for s in range(len(self.status)):
            e = self.error(s)
            if e is not None:
                raise ChipRunError(e)


def _signed(words: list[int], name: str) -> np.ndarray:
    """Host words of buffer ``name`` as its elements (signed ones two's complement in ``elem_bits``)."""
    buf = isa.BUFFERS[name]
    if not buf.signed:
        return np.array(words, np.uint64)
    half = 1 << (buf.elem_bits - 1)
    return np.array([w - 2 * half if w >= half else w for w in words], np.int64)


def run_chip_native(program, cfg, samples: list, reads: list, limit: int | None = None,
                    timeout: float | None = None, dram=None, clock_gate: bool = True) -> ChipRun:
    """Run ``program`` (a :class:`model.chip.ChipProgram`) on the native chip harness of ``cfg``.

    Parameters
    ----------
    program : ChipProgram
        Its images (:func:`program_images`) are loaded once.
    cfg : HwConfig
        The configuration the chip is built for (buffers, SIMD lanes).
    samples : list of dict
        Per sample, buffer name -> ``(base, integers)`` written before its START.
    reads : list of (buffer, base, n)
        Regions read after each sample's run.
    limit : int, optional
        Cycles from START to DONE before the run counts as hung (default: 100 times the program's
        :func:`model.chip.program_cycles`, or 10**8 when it has no cycle formula).
    timeout : float, optional
        Seconds before the harness process is killed.
    dram : (int, int), optional
        ``(bytes, latency)`` of the harness's ideal DRAM on the AXI4 master (:func:`chip_stimulus`; a read
        ``("DRAM", byte address, bytes)`` comes back as uint8).
    clock_gate : bool
        The harness of the chip with its PIM cores' clocks gated (default) or with one clock
        (:func:`verif.native.build_native`).
    """
    from dbpim.model.chip import program_cycles
    t0 = time.perf_counter()
    hw = _config(cfg)
    depths = chip_depths(hw)
    images = program_images(program)
    if limit is None:
        try:
            limit = 100 * program_cycles(program, hw.system.simd_lanes) + 100_000
        except (ValueError, KeyError):
            limit = 10 ** 8
    lines = chip_stimulus(images, samples, reads, depths, limit, dram=dram)
    try:
        exe, build_s = build_native("chip", hw, clock_gate=clock_gate)
    except ValueError as e:  # a generator parameter the configuration gives out of its range: one line
        raise ChipRunError(f"configuration {hw.name}: the chip cannot be generated: {e}") from None
    out = _run(exe, lines, "chip", timeout=timeout)
    runs, marks, stats, status_words, pending = [], [], (0, 0.0), [], []
    for line in out:
        tok = line.split()
        if tok[0] == "r":
            pending.append([int(t, 16) for t in tok[1:]])
        elif tok[0] == "run":
            runs.append((int(tok[1]), float(tok[2]), float(tok[3])))
        elif tok[0] == "mark":
            marks.append(float(tok[2]))
        elif tok[0] == "stats":
            stats = (int(tok[1]), float(tok[2]))
    per = 2 + len(reads)
    if len(runs) != len(samples) or len(pending) != per * len(samples) or len(marks) != 2 * len(samples):
        raise NativeError(f"chip harness: expected {len(samples)} runs, got {len(runs)} (results incomplete)")
    cycles, outputs = [], []
    for s in range(len(samples)):
        got = pending[s * per:(s + 1) * per]
        status_words.append(got[0][0])
        cycles.append(got[1][0])
        outputs.append([np.array(got[2 + k], "<u4").view(np.uint8)[:n].copy() if name == "DRAM"
                        else _signed(got[2 + k], name) for k, (name, _, n) in enumerate(reads)])
    st = isa.CHIP_REG["STATUS"]
    return ChipRun(outputs=outputs, status=[st.decode(w) for w in status_words],
                   cycles=np.array(cycles, np.int64), run_clocks=np.array([r[0] for r in runs], np.int64),
                   run_seconds=np.array([r[1] for r in runs]), run_cpu_seconds=np.array([r[2] for r in runs]),
                   sample_seconds=np.array(marks[1::2]) - np.array(marks[0::2]), clocks=stats[0],
                   seconds=stats[1], build_seconds=build_s, wall_seconds=time.perf_counter() - t0,
                   imem=tuple(int(w) for w in program.imem))


def run_program_native(program, xs, cfg, timeout: float | None = None,
                       clock_gate: bool = True) -> tuple[np.ndarray, ChipRun]:
    """A network's program on a batch of quantized inputs ``xs`` (S, *input shape; integers in the input's
    range): each written at the program's input address, run to HALT, the output read back (a program with a
    DRAM image, streamed weights: on the harness's ideal DRAM holding it); ``clock_gate`` as
    :func:`run_chip_native`'s.

    Returns
    -------
    (outputs (S, *output shape) int64, the :class:`ChipRun`) ; raises :class:`ChipRunError` naming the first
    run that stopped on an error.
    """
    xs = np.asarray(xs)
    shape_in, shape_out = tuple(program.input["shape"]), tuple(program.output["shape"])
    if xs.ndim != len(shape_in) + 1 or tuple(xs.shape[1:]) != shape_in:
        raise ChipRunError(f"xs: shape must be (S, {', '.join(map(str, shape_in))}), got {tuple(xs.shape)}")
    n = int(np.prod(shape_out))
    check_fits(program, chip_depths(cfg))
    samples = [{"ACT": (int(program.input["addr"]), x.reshape(-1))} for x in xs]
    dram = None
    if program.dram is not None and len(xs):  # streamed weights, spill region: the DRAM image once (a spilled
        # value is STOREd before every LOAD of it in each run)
        from dbpim.model.chip_timing import DMA_LATENCY
        dram = (max(4, len(program.dram)), DMA_LATENCY)
        samples[0]["DRAM"] = (0, program.dram)
    run = run_chip_native(program, cfg, samples, [("ACT", int(program.output["addr"]), n)], timeout=timeout,
                          dram=dram, clock_gate=clock_gate)
    run.check()
    out = np.stack([o[0] for o in run.outputs]) if len(xs) else np.zeros((0, n), np.int64)
    return out.reshape((len(xs),) + shape_out), run


def model_cycles(program, xs, lanes: int) -> np.ndarray:
    """The RTL chip's ``CYCLES`` of each sample of ``xs`` (quantized inputs, as :func:`run_program_native` takes
    them) as :func:`model.chip.program_cycles` counts them: once for a program without PIM (its cycles
    do not depend on the data), else per sample from the ACT it starts from (zero but the input; the PIM
    instructions' cycles depend on the inputs). Raises ValueError for an instruction it has no cycles for."""
    from dbpim.model.chip import program_cycles
    xs = np.asarray(xs)
    if all(isa.decode(int(w))["op"] != "PIM" for w in program.imem):
        return np.full(len(xs), program_cycles(program, lanes), np.int64)
    base = int(program.input["addr"])
    out = []
    for x in xs:
        act = np.zeros(max(1, int(program.act_words)), np.int64)
        act[base:base + x.size] = x.reshape(-1)
        out.append(program_cycles(program, lanes, act=act))
    return np.array(out, np.int64)

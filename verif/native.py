"""Fast simulation: native C++ Verilator harnesses of the macro, the PIM core and the chip (docs/rtl.md).

cocotb drives the RTL one Python call per signal change (a few thousand clock
cycles per second); whole layers run here instead, on a C++ main built with
optimisation that reads a stimulus file written from the golden model and
writes the results (``verif/native/*_main.cpp``). cocotb stays the
protocol-level regression.

* :func:`build_native` - generate the Verilog of ``dbpim_core``,
  ``dbpim_macro`` or ``dbpim_chip`` for a configuration and build its harness into
  ``build/native/<block>-<config>`` (``-O3`` Verilator, ``-O3`` C++; reused
  while the Verilog and the harness sources are unchanged; a chip of :data:`HIER_MIN_CORES` cores or more is verilated
  hierarchically, each ``dbpim_pim_core`` a separate block: :func:`hier_blocks`; the chip's PIM cores' clocks
  gated while they are quiet and idle, ``clock_gate``, :mod:`hw.clock_gate`);
* :func:`run_core_native` - a compiled layer's program on the core, every
  START of every sample: result beats, the ``CYCLES`` and ``STATUS`` registers;
* :func:`run_macro_native` - one tile and a batch of vectors on the macro;
* the chip top's harness (a program's images, then per sample its input, START, its output) is
  :mod:`verif.native_chip`.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dbpim.hw.tools import verilator_env
from dbpim.verif.rtl import X_ARGS, build_lock, generator_key, seed_from_env, use_objcache, verilator_plusargs

__all__ = ["NATIVE_DIR", "build_native", "hier_blocks", "verilate_harness", "NativeRun", "write_core_stimulus", "run_core_native",
           "run_macro_native", "NativeError", "example_program"]

ROOT = Path(__file__).resolve().parent.parent
NATIVE_DIR = Path(__file__).resolve().parent / "native"
MAINS = {"core": "core_main.cpp", "macro": "macro_main.cpp", "chip": "chip_main.cpp"}
VERILATOR_ARGS = ["--cc", "--exe", "--build", "-O3", *X_ARGS, "--noassert",
                  "-Wno-fatal", "-Wno-lint", "-Wno-style", "--prefix", "Vtop", "-CFLAGS", "-O3"]

#: Added for a hierarchical build (:func:`hier_blocks`): each listed module verilated once as its own library.
HIER_ARGS = ["--hierarchical"]
#: The fewest PIM cores (``system.cores``) whose chip harness is built hierarchically: ``small``'s 2 cores
#: build as fast flat (docs/rtl.md, "Fast simulation"), so they stay flat.
HIER_MIN_CORES = 3


class NativeError(RuntimeError):
    """The native build or simulation failed (the message names the log)."""


def _config(cfg):
    from dbpim.model.config import HwConfig
    if not isinstance(cfg, HwConfig):
        raise TypeError(f"cfg: must be an HwConfig (model.config.load_config reads a YAML), got {type(cfg).__name__}")
    return cfg


def build_native(block: str, cfg, build_root: Path | None = None, clock_gate: bool = True) -> tuple[Path, float]:
    """Build the native harness of ``block`` (``core``, ``macro`` or ``chip``: :data:`MAINS`) for ``cfg``.

    ``clock_gate`` (the chip only): its PIM cores' clocks gated while they are quiet and idle
    (:mod:`hw.clock_gate`; ``verif.formal_gate`` proves it changes nothing on ``small``, and ``paper``'s proof
    is not done: docs/rtl.md), the default; False builds the
    chip with one clock, as ``dbpim verilog`` ships it, into ``chip-<config>-ungated``.

    Returns
    -------
    (executable, build seconds) ; 0 seconds when the existing build is reused.
    """
    if block not in MAINS:
        raise ValueError(f"block: must be one of {', '.join(MAINS)}, got {block!r}")
    if not isinstance(clock_gate, bool):
        raise TypeError(f"clock_gate: must be True or False, got {clock_gate!r}")
    hw = _config(cfg)
    stem = _build_tag(hw)
    gate = clock_gate and block == "chip"
    bdir = (build_root or ROOT / "build" / "native") / (f"{block}-{stem}" + ("-ungated" if block == "chip" and not gate
                                                                         else ""))
    bdir.mkdir(parents=True, exist_ok=True)
    with build_lock(bdir):  # parallel test workers build one at a time
        return _build_locked(block, hw, bdir, stem, gate)


def hier_blocks(block: str, hw) -> tuple[str, ...]:
    """The modules verilated as separate hierarchical blocks in the native build of ``block`` for ``hw``.

    The chip instantiates ``system.cores`` identical PIM cores: flat, Verilator elaborates and the C++ compiler
    compiles each copy (about 1,280 s for the 8-core ``paper`` chip); hierarchical, ``dbpim_pim_core`` once
    (about 330 s). Below :data:`HIER_MIN_CORES` cores it gains nothing: those builds stay flat (docs/rtl.md,
    "Fast simulation").
    """
    from dbpim.hw.core import PIMCore
    return (f"dbpim_{PIMCore.NAME}",) if block == "chip" and _config(hw).system.cores >= HIER_MIN_CORES else ()


def _build_tag(hw) -> str:
    """The build folder's configuration tag: the shipped configuration equal to ``hw`` (so an artifact's copy of
    ``small`` shares ``<block>-small``), else its file stem, else its name and a hash of it."""
    from dbpim.model.config import CONFIG_DIR, load_config
    for f in sorted(CONFIG_DIR.glob("*.yaml")):
        if load_config(f).to_dict() == hw.to_dict():
            return f.stem
    return Path(hw.path).stem if hw.path else \
        f"{hw.name}-{hashlib.sha256(repr(hw.to_dict()).encode()).hexdigest()[:10]}"


def _build_locked(block: str, hw, bdir: Path, stem: str, clock_gate: bool) -> tuple[Path, float]:
    import time

    from dbpim.hw.generate import generate

    main = NATIVE_DIR / MAINS[block]
    # the Verilog is a function of the RTL sources and the configuration: hash those, not the
    # (slow to generate) Verilog, so a warm build costs nothing
    hier = hier_blocks(block, hw)
    key = hashlib.sha256(generator_key(block, hw, "behavioural").encode() + repr(hw.to_dict()).encode()
                         + b"".join(p.read_bytes() for p in (main, NATIVE_DIR / "native.h"))
                         + " ".join(VERILATOR_ARGS).encode()
                         + (" ".join([*HIER_ARGS, *hier]).encode() if hier else b"")
                         + (b" clock_gate" if clock_gate else b"")).hexdigest()
    exe = bdir / "obj" / "harness"
    stamp = bdir / ".key"
    if exe.is_file() and stamp.is_file() and stamp.read_text() == key:
        return exe, 0.0
    t0 = time.perf_counter()
    man = generate(hw, bdir / "rtl", blocks=[block], clock_gate=clock_gate)
    keep = ("-DDBPIM_RESULT_KEEP",) if block == "core" and hw.core.result_lanes > 1 else ()
    verilate_harness(block, [bdir / "rtl" / f for f in man["blocks"][block]["sources"]], bdir, bdir / "rtl", stem,
                     defines=keep, hier=hier)
    stamp.write_text(key)
    return exe, time.perf_counter() - t0


def verilate_harness(block: str, sources: list, bdir: Path, include: Path, label: str, defines=(),
                     hier=()) -> Path:
    """Verilate ``sources`` (top ``dbpim_<block>``) with the native harness of ``block`` into ``bdir/obj/harness``.

    ``include`` holds the generated C header of the register map (``dbpim_core.h``, which the core's harness
    includes); ``defines`` are extra compiler flags (``-DDBPIM_RESULT_KEEP``: the core's harness records
    ``m_axis_tkeep``); ``hier`` names modules verilated as hierarchical blocks (:func:`hier_blocks`; a
    Verilator configuration file ``bdir/hier.vlt`` marks them). Returns the executable; raises
    :class:`NativeError` naming the build log.
    """
    exe = bdir / "obj" / "harness"
    verilator = verilator_env()
    env = dict(os.environ)
    env["MAKEFLAGS"] = (env.get("MAKEFLAGS", "") + " CFG_CXXFLAGS_PCH_I=-include OPT_FAST=-O2").strip()
    use_objcache(env)  # Verilator's runtime library compiled once per flag set (verif/objcache.py)
    vlt = bdir / "hier.vlt"
    if hier:
        vlt.write_text("`verilator_config\n" + "".join(f'hier_block -module "{m}"\n' for m in hier))
    else:
        vlt.unlink(missing_ok=True)  # a flat build: no marking left from a hierarchical one
    hier_args = [*HIER_ARGS, str(vlt)] if hier else []
    cmd = [verilator, *VERILATOR_ARGS, *hier_args, "-CFLAGS", " ".join([f"-I{NATIVE_DIR} -I{include}", *defines]), "--top-module", f"dbpim_{block}",
           "-Mdir", str(bdir / "obj"), "-o", "harness", "-j", "2", *(str(Path(s).resolve()) for s in sources),
           str(NATIVE_DIR / MAINS[block])]
    r = subprocess.run(cmd, cwd=bdir, capture_output=True, text=True, env=env)
    (bdir / "build.log").write_text(r.stdout + r.stderr)
    if r.returncode != 0 or not exe.is_file():
        raise NativeError(f"native build of {block} for {label} failed (see {bdir / 'build.log'})")
    return exe


def _run(exe: Path, lines: list[str], tag: str, args=(), timeout: float | None = None) -> list[str]:
    """Run a harness on stimulus ``lines`` (extra command-line ``args``: plusargs); its result lines.

    Raises :class:`NativeError` when it exits with an error; ``subprocess.TimeoutExpired`` after ``timeout`` s.
    """
    (ROOT / "build").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ROOT / "build", prefix=f".native-{tag}-") as tmp:
        fin, fout = Path(tmp) / "stimulus.txt", Path(tmp) / "results.txt"
        fin.write_text("\n".join(lines) + "\n")
        seed = seed_from_env()
        plusargs = verilator_plusargs(seed)  # random initial registers and memories, printed to reproduce
        print(f"[native {tag}] Verilator random initial state: {' '.join(plusargs)} (DBPIM_SEED={seed})",
              file=sys.stderr)  # stderr: a command's stdout stays its results
        r = subprocess.run([str(exe), str(fin), str(fout), *args, *plusargs], capture_output=True, text=True,
                           timeout=timeout)
        if r.returncode != 0:
            raise NativeError(f"{exe} exited with {r.returncode} (DBPIM_SEED={seed}): {r.stderr.strip()[:500]}")
        return fout.read_text().splitlines()


def _hex_rows(a: np.ndarray) -> list[str]:
    """Each row of a uint8 array as one hexadecimal number, element 0 in the lowest byte."""
    return [row.tobytes().hex() for row in np.ascontiguousarray(a[:, ::-1])]


@dataclass
class NativeRun:
    """One START on the native core harness."""

    beats: np.ndarray  # int64 partial sums, in stream order (the kept lanes of each beat, lane 0 first)
    last: np.ndarray   # tlast of each beat
    cycles: int        # the CYCLES register
    status: int        # the STATUS register
    aborted: bool = False
    keep: np.ndarray | None = None  # (beats, lanes) bool: TKEEP of each lane (core.result_lanes > 1; else None)


def write_core_stimulus(program, xs, stall=(0.0, 0.0, 0), abort_after=None) -> list[str]:
    """Stimulus lines running ``program`` on every sample of ``xs`` (S, P, K): per segment, load, then one START per sample.

    ``abort_after`` = (segment, sample, cycles): that START is reset after
    ``cycles`` cycles and run again (a reset in the middle of a layer, then a
    correct rerun).
    """
    from dbpim.model.core import bus_writes, input_windows

    lines = ["reset 4", f"stall {stall[0]} {stall[1]} {int(stall[2])}"]
    for si, seg in enumerate(program.segments):
        lines += [f"write {a:x} {d:x}" for a, d in bus_writes(program, seg)]
        for s, x in enumerate(xs):
            wins = _hex_rows(input_windows(program, seg, x))
            limit = 10_000 + 20 * (len(wins) + sum(p.pixels * (p.n_out + 16) + 64 for p in seg.passes)) * \
                program.params.macro.n_row
            if abort_after is not None and abort_after[:2] == (si, s):
                lines += [f"window {w}" for w in wins] + [f"abort {int(abort_after[2])}"]
            lines += [f"window {w}" for w in wins] + [f"run {limit}"]
    return lines


def _parse_core(lines: list[str], psum_bits: int, lanes: int = 1) -> tuple[list[NativeRun], tuple[int, float]]:
    from dbpim.model.spec import result_width
    rw = result_width(psum_bits)
    nb = rw // 8
    runs, stats = [], (0, 0.0)
    for line in lines:
        tok = line.split()
        if tok[0] in ("run", "aborted"):
            runs.append(NativeRun(beats=[], last=[], cycles=int(tok[1]), status=int(tok[2]),
                                  aborted=tok[0] == "aborted", keep=[] if lanes > 1 else None))
        elif tok[0] == "b":
            data, _, tkeep = tok[1].partition(":")
            v = int(data, 16)
            k = int(tkeep, 16) if tkeep else (1 << (lanes * nb)) - 1  # no TKEEP (one lane): every byte kept
            kept = []
            for i in range(lanes):  # TKEEP: a lane's bytes all high or all low
                kb = (k >> (i * nb)) & ((1 << nb) - 1)
                if kb not in (0, (1 << nb) - 1):
                    raise NativeError(f"beat {tok[1]}: TKEEP of lane {i} is neither all high nor all low")
                kept.append(kb != 0)
                e = (v >> (i * rw)) & ((1 << rw) - 1)
                if kb:
                    runs[-1].beats.append(e - (1 << rw) if e >> (rw - 1) else e)
            if lanes > 1:
                runs[-1].keep.append(kept)
            runs[-1].last.append(int(tok[2]))
        elif tok[0] == "stats":
            stats = (int(tok[1]), float(tok[2]))
    for r in runs:
        r.beats, r.last = np.array(r.beats, np.int64), np.array(r.last, bool)
        if lanes > 1:
            r.keep = np.array(r.keep, bool).reshape(-1, lanes)
    return runs, stats


def run_core_native(program, xs, cfg, stall=(0.0, 0.0, 0), abort_after=None):
    """Run a layer's program on the native core harness.

    Parameters
    ----------
    program : model.core.CoreProgram
    xs : int array (S, P, K)
        im2col inputs of each sample.
    cfg : HwConfig
        The configuration the program was compiled for.
    stall : (p_in, p_out, seed)
        Random gaps in ``s_axis_tvalid`` / ``m_axis_tready`` (0 = full rate).
    abort_after : (segment, sample, cycles) or None

    Returns
    -------
    runs : list of list of NativeRun
        ``runs[segment][sample]`` (an aborted START is left out).
    stats : (clock cycles, seconds)
        Simulated clock cycles and the harness's wall time.
    """
    exe, _ = build_native("core", cfg)
    xs = np.asarray(xs)
    lines = _run(exe, write_core_stimulus(program, xs, stall, abort_after), "core")
    flat, stats = _parse_core(lines, program.params.psum_width, program.params.core.result_lanes)
    kept = [r for r in flat if not r.aborted]
    S = xs.shape[0]
    if len(kept) != S * len(program.segments):
        raise NativeError(f"expected {S * len(program.segments)} runs, got {len(kept)}")
    return [kept[k * S:(k + 1) * S] for k in range(len(program.segments))], stats


def run_macro_native(tile, xs, cfg, signed: bool = False):
    """One tile and gathered vectors (P, n_row, n_comp) on the native macro harness.

    Returns
    -------
    acc : int64 (P, n_col), cycles : int64 (P,), stats : (clock cycles, seconds)
    """
    from dbpim.verif.macro_driver import acc_from_beats, config_write, input_beats, row_write

    hw = _config(cfg)
    mc = hw.macro
    exe, _ = build_native("macro", hw)
    lines = []
    for r in range(max(1, tile.n_rows_used)):
        w = row_write(tile, r)
        lines.append(f"w {w['w_row']:x} {w['w_cells']:x} {w['w_idx']:x} {w['w_sign']:x}")
    cw = config_write(tile, signed)
    lines.append(f"c {cw['c_rows_used']:x} {cw['c_signed']:x} {cw['c_slot']:x} {cw['c_used']:x}")
    xs = np.asarray(xs)
    for x in xs:
        lines += [f"x {b:x}" for b in input_beats(x, signed, tile.n_rows_used, mc.in_bits)]
    lines.append(f"run {len(xs) * mc.n_col}")
    out = _run(exe, lines, "macro")
    beats = [(int(t[1], 16), int(t[2], 16)) for t in (ln.split() for ln in out) if t[0] == "o"]
    stats = next((int(t[1]), float(t[2])) for t in (ln.split() for ln in out) if t[0] == "stats")
    acc = np.zeros((len(xs), mc.n_col), np.int64)
    cycles = np.zeros(len(xs), np.int64)
    for v in range(len(xs)):
        chunk = beats[v * mc.n_col:(v + 1) * mc.n_col]
        acc[v] = acc_from_beats([p for p, _ in chunk], mc.n_comp, mc.n_col, mc.n_row, mc.in_bits)
        cycles[v] = chunk[-1][1]
    return acc, cycles, stats


def example_program(cfg, samples: int = 1):
    """The built-in real layer (the digits MLP's first layer, its 8 real input vectors as 8 output pixels)
    as a core program: ``(program, xs (samples, 8, K))`` (``make bench``'s core workload)."""
    from dbpim.model.core import CoreParams, compile_program
    from dbpim.model.examples import real_layer

    hw = _config(cfg)
    rl = real_layer(hw.macro)
    x = np.asarray(rl.x, np.int64)
    prog = compile_program(rl.compiled, x.shape[0], CoreParams.from_config(hw), name="fc1")
    return prog, np.broadcast_to(x, (samples,) + x.shape)

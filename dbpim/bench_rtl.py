"""RTL tool-speed measurements for ``make bench`` (called by :mod:`dbpim.bench`).

Measures, on this machine:

* Verilog generation time of every block for the paper configuration;
* Verilator build time of the paper macro, cold (fresh build folder);
* simulated clock cycles per second of the cocotb path and of the native
  Verilator harness (:mod:`verif.native`), side by side in the same run, for
  the macro (a real tile, the same vectors) and the PIM core (the built-in real
  layer as a core program, the same STARTs), and the native/cocotb ratio
  (goal: >= 100x). cocotb's figure comes from its own record (simulated time /
  test time); the native one from the harness (clock cycles / its wall time);
  both also with their start-up (process, build check, files) included;
* simulated clock cycles per second of the chip top (``dbpim_chip``) on its
  native harness (:mod:`verif.native_chip`), on the configuration of the core
  figure: a random SIMD-only program (:mod:`model.chip_programs`; the network
  programs need PIM, which the RTL chip does not run yet), its harness build
  time and wall time per START;
* wall time of the cocotb regression (``pytest -n 2 -m rtl verif tests``)
  with the per-block builds already in ``build/`` (for the cold figure run
  ``make clean test-rtl``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

__all__ = ["run"]

ROOT = Path(__file__).resolve().parent.parent
CLOCK_NS = 10.0


def _sim_record(results_xml: Path) -> tuple[float, float]:
    """(simulated ns, real seconds of the test) from cocotb's results file."""
    text = results_xml.read_text()
    start = float(re.search(r'name="sim_time_start" value="([0-9.]+)"', text).group(1))
    stop = float(re.search(r'name="sim_time_stop" value="([0-9.]+)"', text).group(1))
    real = float(re.search(r'<testcase [^>]*time="([0-9.]+)"', text).group(1))
    return stop - start, real


def _macro_speed(hw, n_vectors: int, native_repeat: int) -> dict:
    """cocotb vs native on one real tile of the macro: the same vectors (repeated for the native run)."""
    from dbpim.model.examples import real_layer
    from dbpim.model.macro import gather
    from dbpim.verif.demo import run_macro_rtl
    from dbpim.verif.native import build_native, run_macro_native
    from dbpim.verif.rtl import build_block

    layer = real_layer(hw.macro)
    tile = layer.compiled.tiles[0]
    x = np.resize(layer.x, (n_vectors, layer.x.shape[1]))
    bdir = build_block("macro", hw.macro).dir  # warm builds, not timed below
    build_native("macro", hw)
    t = time.perf_counter()
    _, cycles = run_macro_rtl(tile, x, hw)
    wall = time.perf_counter() - t
    sim_ns, sim_real = _sim_record(bdir / "results-macro_run.xml")
    xg = np.stack([gather(tile, v) for v in x] * native_repeat)
    t = time.perf_counter()
    acc, ncyc, (clocks, secs) = run_macro_native(tile, xg, hw)
    nwall = time.perf_counter() - t
    if not np.array_equal(ncyc[:n_vectors], cycles):
        raise RuntimeError("bench: the native and cocotb macro runs disagree")
    return _speeds("macro", sim_ns / CLOCK_NS, sim_real, wall, clocks, secs, nwall,
                   {"macro vectors (cocotb / native)": f"{n_vectors} / {len(xg)}"})


def _core_speed(hw, starts: int, native_starts: int) -> dict:
    """cocotb vs native on the example core program: the same START repeated."""
    from dbpim.verif.native import build_native, example_program, run_core_native
    from dbpim.verif.rtl import build_block, run_cocotb

    prog, xs = example_program(hw, native_starts)
    build_block("core", hw.path)
    build_native("core", hw)
    t = time.perf_counter()
    results = run_cocotb("core", hw.path, "dbpim.verif.test_core", seed=0, testcase="core_speed",
                         env={"DBPIM_BENCH_STARTS": str(starts)})
    wall = time.perf_counter() - t
    sim_ns, sim_real = _sim_record(results)
    t = time.perf_counter()
    runs, (clocks, secs) = run_core_native(prog, xs, hw)
    nwall = time.perf_counter() - t
    return _speeds("core", sim_ns / CLOCK_NS, sim_real, wall, clocks, secs, nwall,
                   {"core STARTs (cocotb / native)": f"{starts} / {native_starts}",
                    "core cycles per START (CYCLES register)": int(runs[0][0].cycles)})


def _chip_speed(hw, samples: int, seed: int = 0, extra: int = 20) -> dict:
    """The chip top on the native harness (no cocotb chip path to compare with): a random SIMD-only program
    (:func:`model.chip_programs.random_program`; the network programs need PIM, which the RTL chip does not
    run while ``model.isa.RTL_PENDING`` holds it) on ``samples`` STARTs of random buffer contents."""
    from dbpim.model import isa
    from dbpim.model.chip import program_cycles
    from dbpim.model import chip_programs
    from dbpim.verif.native import build_native
    from dbpim.verif.native_chip import chip_depths, run_chip_native

    depths = chip_depths(hw)
    rng = np.random.default_rng(seed)
    prog = chip_programs.random_program(rng, depths, extra=extra)
    act, acc = chip_programs.random_buffers(rng, depths)
    _, build_s = build_native("chip", hw)  # timed here, reused by the run below
    run = run_chip_native(prog, hw, [{"ACT": (0, act), "ACC": (0, acc)}] * samples, [("ACT", 0, 16)])
    run.check()
    want = program_cycles(prog, hw.system.simd_lanes)
    if not (run.cycles == want).all():
        raise RuntimeError(f"bench: the RTL chip's CYCLES {sorted(set(run.cycles.tolist()))} differ from "
                           f"model.chip_timing's {want}")
    counts = {op: sum(isa.decode(int(w))["op"] == op for w in prog.imem) for op in chip_programs.SIMD_OPS}
    pim = "PIM is not in the RTL chip yet" if "PIM" in isa.RTL_PENDING else "a SIMD-only program"
    return {"chip program": f"random SIMD-only program (model.chip_programs.random_program, seed {seed}): "
                            f"{len(prog.imem)} instructions ("
                            + ", ".join(f"{n} {op}" for op, n in counts.items()) + f", HALT); {pim}",
            "chip STARTs (native)": samples,
            "chip cycles per START (CYCLES register = model.chip_timing)": int(want),
            "chip: native harness build, 0 when cached [s]": round(build_s, 1),
            "chip: native, simulation only [cycles/s]": round(run.cycles_per_second, 1),
            "chip: native, simulation only, per CPU second [cycles/s]": round(run.cycles_per_cpu_second, 1),
            "chip: native, incl. start-up [cycles/s]": round(float(run.run_clocks.sum()) / run.wall_seconds, 1),
            "chip: native wall per START, incl. buffer writes and reads [ms]":
                round(1e3 * float(run.sample_seconds.mean()), 3)}


def _speeds(block, c_clocks, c_test, c_wall, n_clocks, n_secs, n_wall, extra) -> dict:
    c, n = c_clocks / c_test, n_clocks / n_secs
    ci, ni = c_clocks / c_wall, n_clocks / n_wall
    return {**extra,
            f"{block}: cocotb, simulation only [cycles/s]": round(c, 1),
            f"{block}: native, simulation only [cycles/s]": round(n, 1),
            f"{block}: native / cocotb, simulation only [x]": round(n / c, 1),
            f"{block}: cocotb, incl. start-up [cycles/s]": round(ci, 1),
            f"{block}: native, incl. start-up [cycles/s]": round(ni, 1),
            f"{block}: native / cocotb, incl. start-up [x]": round(ni / ci, 1)}


def run(cfg: str = "paper", core_cfg: str | None = None, n_vectors: int = 64, core_starts: int = 3) -> dict:
    """Run the measurements; returns figures with units in their keys.

    ``cfg`` is the configuration of the tool timings and the macro speed;
    ``core_cfg`` that of the core speed (the paper core's cocotb build takes
    minutes, ``make bench RTL_CORE_CONFIG=paper`` measures it).
    """
    from dbpim.hw.generate import generate
    from dbpim.model.config import load_config
    from dbpim.verif.rtl import build_block

    core_cfg = core_cfg or os.environ.get("RTL_CORE_CONFIG", "small")
    res = {}
    (ROOT / "build").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ROOT / "build") as tmp:
        t = time.perf_counter()
        generate(load_config(cfg), Path(tmp) / "verilog")
        res["verilog generation, all blocks [s]"] = round(time.perf_counter() - t, 2)
        res["verilator build, macro cold [s]"] = round(build_block("macro", load_config(cfg), build_root=Path(tmp) / "sim").seconds, 1)

    res["macro configuration"] = cfg
    res.update(_macro_speed(load_config(cfg), n_vectors, native_repeat=200))
    res["core configuration"] = core_cfg
    res.update(_core_speed(load_config(core_cfg), core_starts, native_starts=300 * core_starts))
    res["chip configuration"] = core_cfg
    res.update(_chip_speed(load_config(core_cfg), samples=200))

    cmd = [sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist", "loadgroup", "-m", "rtl", "verif", "tests",
           "-p", "no:cacheprovider"]
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    res["cocotb/Verilator regression wall time, 2 workers, builds cached [s]"] = round(time.perf_counter() - t, 1)
    res["regression result"] = (r.stdout.strip().splitlines() or ["?"])[-1]
    return res


if __name__ == "__main__":
    for k, v in run().items():
        print(f"{k:56s} {v}")

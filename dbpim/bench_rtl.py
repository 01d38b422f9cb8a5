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
  native harness (:mod:`verif.native_chip`; its PIM cores' clocks gated, the
  harness's default: docs/rtl.md "Clock gating of the PIM cores"), on the configuration of the core
  figure: the demo CNN's inference (the demo's network compiled untrained for
  that configuration, digits test samples, outputs and CYCLES checked against
  the golden chip), its harness build time and wall time per inference;
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


def _chip_speed(hw, samples: int) -> dict:
    """The demo CNN's inference on the chip top's native harness: the demo's network (SmallCNN on digits, the
    flow of ``make demo`` with no training epochs: the demo's instructions and geometry, its weights untrained)
    compiled for ``hw`` (at the demo's width 1, or at the tests' width 0.5 when that does not fit ``hw``'s chip
    buffers: ``small``), ``samples`` test digits through ``dbpim_chip``
    (:func:`verif.native_chip.run_program_native`, as ``dbpim run --rtl``); the outputs must equal the golden
    chip's and CYCLES ``model.chip_timing``'s."""
    from dbpim.model import artifact, isa
    from dbpim.model.chip import GoldenChip, quantize_input
    from dbpim.model.torch.data import load_data
    from dbpim.model.torch.flow import FlowOptions, run_flow
    from dbpim.verif.native import build_native
    from dbpim.verif.native_chip import ChipRunError, check_fits, chip_depths, model_cycles, run_program_native

    for width in (1.0, 0.5):
        with tempfile.TemporaryDirectory(dir=ROOT / "build") as tmp:
            rep = run_flow("smallcnn", "digits", hw, FlowOptions(epochs=0, finetune_epochs=0, qat_epochs=0,
                                                                 n_train=64, n_test=samples, width=width,
                                                                 compare=False, plots=False, progress=False),
                           out=Path(tmp) / "flow")
            art = artifact.load(rep.artifact)
        try:
            check_fits(GoldenChip(art).program, chip_depths(art.hw))
            break
        except ChipRunError:
            continue
    gold = GoldenChip(art)
    x = load_data("digits", 0).x_test.numpy()[:samples]
    want = gold.run(x)
    q = quantize_input(x, gold.plan.quants[gold.plan.input])
    _, build_s = build_native("chip", art.hw)  # timed here, reused by the run below
    load = os.getloadavg()[0]  # wall time on a shared machine grows with it; the CPU figures much less
    got, run = run_program_native(gold.program, q, art.hw)
    cycles = model_cycles(gold.program, q, art.hw.system.simd_lanes)
    if not np.array_equal(got, want) or not np.array_equal(run.cycles, cycles):
        raise RuntimeError("bench: the RTL chip's outputs or CYCLES differ from the golden chip's "
                           f"(CYCLES {run.cycles.tolist()[:4]}, model.chip_timing {cycles.tolist()[:4]})")
    simd = sum(int(c) for pc, c in enumerate(gold.by_instruction)
               if isa.decode(int(gold.program.imem[pc]))["op"] != "PIM") / len(x)
    return {"chip network": f"the demo CNN (SmallCNN on digits, width {width:g}, untrained weights) compiled for "
                            f"{hw.name}: {len(gold.program.imem)} instructions",
            "chip inferences (native)": len(x),
            "chip cycles per inference (CYCLES register = model.chip_timing)": round(float(cycles.mean()), 1),
            "chip SIMD instructions' cycles per inference": round(simd, 1),
            "chip: native harness build, 0 when cached [s]": round(build_s, 1),
            "chip: native, simulation only [cycles/s]": round(run.cycles_per_second, 1),
            "chip: native, simulation only, per CPU second [cycles/s]": round(run.cycles_per_cpu_second, 1),
            "chip: machine load before the run (1-minute average)": round(load, 2),
            "chip: native harness CPU per inference, START to DONE [ms]":
                round(1e3 * float(run.run_cpu_seconds.mean()), 3),
            "chip: native wall per inference, START to DONE [ms]": round(1e3 * float(run.run_seconds.mean()), 3),
            "chip: native wall per inference, incl. input write and output read [ms]":
                round(1e3 * float(run.sample_seconds.mean()), 3),
            "chip: native wall per inference, incl. harness start-up and images [ms]":
                round(1e3 * run.wall_seconds / len(x), 3)}


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
    res.update(_chip_speed(load_config(core_cfg), samples=50))

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

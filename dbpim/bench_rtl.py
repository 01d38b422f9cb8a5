"""RTL tool-speed measurements for ``make bench`` (called by :mod:`dbpim.bench`).

Measures, on this machine:

* Verilog generation time of every block for the paper configuration;
* Verilator build time of the paper macro, cold (fresh build folder);
* simulated clock cycles per second of the macro running a real tile
  (from cocotb's own simulated-time record, 10 ns clock);
* wall time of the cocotb regression (``pytest -n 2 -m rtl verif``) with the
  per-block builds already in ``build/sim`` (for the cold figure run
  ``make clean test-rtl``; about 3.5 minutes here).
"""

from __future__ import annotations

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


def run(cfg: str = "paper", n_vectors: int = 64) -> dict:
    """Run the measurements; returns figures with units in their keys."""
    from hw.generate import generate
    from model.config import load_config
    from model.examples import real_layer
    from verif.demo import run_macro_rtl
    from verif.rtl import build_block

    res = {}
    (ROOT / "build").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ROOT / "build") as tmp:
        t = time.perf_counter()
        generate(cfg, Path(tmp) / "verilog")
        res["verilog generation, all blocks [s]"] = round(time.perf_counter() - t, 2)
        res["verilator build, macro cold [s]"] = round(build_block("macro", cfg, build_root=Path(tmp) / "sim").seconds, 1)

    hw = load_config(cfg)
    layer = real_layer(hw.macro)
    tile = layer.compiled.tiles[0]
    x = np.resize(layer.x, (n_vectors, layer.x.shape[1]))
    bdir = build_block("macro", hw.macro).dir  # warm build, not timed below
    t = time.perf_counter()
    _, cycles = run_macro_rtl(tile, x, hw)
    wall = time.perf_counter() - t
    sim_ns, sim_real = _sim_record(bdir / "results-macro_run.xml")
    clocks = sim_ns / CLOCK_NS
    res["macro vectors simulated"] = int(n_vectors)
    res["macro compute cycles (counter) [cycles]"] = int(cycles.sum())
    res["simulated clock cycles [cycles]"] = int(clocks)
    res["simulation wall time incl. start-up [s]"] = round(wall, 2)
    res["simulation speed, cocotb test only [cycles/s]"] = round(clocks / sim_real, 1)
    res["simulation speed incl. simulator start-up [cycles/s]"] = round(clocks / wall, 1)

    cmd = [sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist", "loadgroup", "-m", "rtl", "verif",
           "-p", "no:cacheprovider"]
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    res["cocotb regression wall time, 2 workers, builds cached [s]"] = round(time.perf_counter() - t, 1)
    res["cocotb regression result"] = (r.stdout.strip().splitlines() or ["?"])[-1]
    return res


if __name__ == "__main__":
    for k, v in run().items():
        print(f"{k:48s} {v}")

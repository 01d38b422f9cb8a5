"""cocotb regression of the PIM core top (AXI ports) against its golden twin, on real layers.

The layers come from compiled artifacts (``DBPIM_ARTIFACTS``: ``dir:layer,...``
entries separated by ``;``): the demo network and a zoo network, compiled for
the configuration under test. For each layer the program is loaded over
AXI4-Lite (random gaps on every channel), then:

* at full rate (``DBPIM_STALL`` = 0): one START whose results AND ``CYCLES``
  register equal :func:`model.core.run_core`, ``tlast`` on each pass's last
  result; a reset in the middle of the layer (no result valid after it, the
  core idle), then a rerun, exact again;
* with random stalls on both streams: one START whose results are exact.

Every failure names the seed (``DBPIM_SEED``).
"""

import os

import pytest

cocotb = pytest.importorskip("cocotb")
import numpy as np  # noqa: E402

from dbpim.model import artifact  # noqa: E402
from dbpim.model.config import load_config  # noqa: E402
from dbpim.model.core import CoreParams, compile_program, run_core  # noqa: E402
from dbpim.verif.core_tb import AxiLiteMaster, load_segment, reset_mid_run, run_start  # noqa: E402
from dbpim.verif.tb import env_rng  # noqa: E402

#: cocotb's limit on simulated time per test: far above the regression's runs (about 20 000 cycles)
TIMEOUT = {"timeout_time": 5, "timeout_unit": "ms"}


def _cases(hw):
    """(label, program, first sample's im2col inputs) of every requested layer."""
    params = CoreParams.from_config(hw)
    for entry in filter(None, os.environ.get("DBPIM_ARTIFACTS", "").split(";")):
        path, names = entry.rsplit(":", 1)
        art = artifact.load(path)
        for name in names.split(","):
            rec = next(r for r in art.layers if r.name == name)
            x = rec.im2col_inputs()
            P = x.shape[0] // rec.x.shape[0]
            yield f"{art.network}/{name}", compile_program(rec.compiled, P, params, rec.signed_input, name), x[:P]


@cocotb.test(**TIMEOUT)
async def core_real_layers(dut):
    from dbpim.verif.tb import cocotb_tb
    seed, rng = env_rng()
    hw = load_config(os.environ.get("DBPIM_CFG", "small"))
    tb = await cocotb_tb(dut, "core")
    axil = AxiLiteMaster(tb, rng, p_idle=0.3)
    n = 0
    for label, prog, x in _cases(hw):
        want = run_core(prog, x)
        seg = prog.segments[0]
        where = f"seed {seed} stall {tb.stall}: {label}"
        await load_segment(axil, prog, seg)
        beats, last, cycles, status = await run_start(tb, axil, prog, seg, x, want=want.beats[0],
                                                      where=f"{where}: ")
        assert beats == list(want.beats[0]), f"{where}: results differ from the twin"
        assert status == 0b010, f"{where}: STATUS {status:#x}"
        ends = np.cumsum([p.pixels * p.n_out for p in seg.passes if p.last]) - 1
        assert np.flatnonzero(last).tolist() == ends.tolist(), f"{where}: tlast not on each pass's last result"
        if tb.stall == 0:
            assert cycles == want.cycles[0], f"{where}: CYCLES {cycles} != twin {want.cycles[0]}"
            await reset_mid_run(tb, axil, prog, seg, x, after=int(want.cycles[0]) // 2)
            beats, _, cycles, status = await run_start(tb, axil, prog, seg, x, want=want.beats[0],
                                                       where=f"{where}: rerun after reset: ")
            assert beats == list(want.beats[0]) and cycles == want.cycles[0] and status == 0b010, \
                f"{where}: the rerun after a reset in the middle of the layer differs from the twin"
        n += 1
    assert n > 0, "no layers given (DBPIM_ARTIFACTS)"


@cocotb.test(timeout_time=50, timeout_unit="ms")
async def core_speed(dut):
    """``make bench``: the example program, ``DBPIM_BENCH_STARTS`` STARTs at full rate (speed of the cocotb path)."""
    from dbpim.verif.native import example_program
    from dbpim.verif.tb import cocotb_tb
    hw = load_config(os.environ.get("DBPIM_CFG", "small"))
    prog, xs = example_program(hw)
    want = run_core(prog, xs[0])
    _, rng = env_rng()
    tb = await cocotb_tb(dut, "core", stall=0.0)
    axil = AxiLiteMaster(tb, rng, p_idle=0.0)
    seg = prog.segments[0]
    await load_segment(axil, prog, seg)
    for _ in range(int(os.environ.get("DBPIM_BENCH_STARTS", "1"))):
        beats, _, cycles, _ = await run_start(tb, axil, prog, seg, xs[0])
        assert beats == list(want.beats[0]) and cycles == want.cycles[0]

"""Simulator side of :func:`verif.demo.run_macro_rtl`: runs the cases of an npz through the macro, saves the results."""

import os

import cocotb
import numpy as np
from cocotb.triggers import with_timeout

from dbpim.model.spec import pipeline_latency
from dbpim.verif.macro_driver import MacroDriver, load_cases
from dbpim.verif.tb import CLOCK_NS, cocotb_tb, env_macro


def cycle_budget(mc, cases) -> int:
    """Twice the most clock cycles the cases can take (every bit column issued, drain not overlapped)."""
    per_vector = mc.n_row * mc.in_bits + pipeline_latency(mc.pipeline) + mc.n_col + mc.n_row
    return 2 * sum(mc.n_row + len(xs) * per_vector for _, _, xs in cases) + 1000


@cocotb.test()
async def macro_run(dut):
    """Full rate: load each tile, stream its vectors, record accumulators and cycle counts.

    Times out (fails) after :func:`cycle_budget` clock cycles.
    """
    mc = env_macro()
    cases = load_cases(os.environ["DBPIM_CASES"])
    tb = await cocotb_tb(dut, stall=0.0)
    drv = MacroDriver(tb, mc)
    out = {}

    async def run_all():
        for k, (tile, signed, xs) in enumerate(cases):
            await drv.load(tile, signed)
            run = await drv.run(list(xs), signed)
            out[f"acc{k}"], out[f"cycles{k}"] = run.acc, run.cycles

    await with_timeout(run_all(), cycle_budget(mc, cases) * CLOCK_NS, "ns")
    np.savez(os.environ["DBPIM_RESULTS"], **out)

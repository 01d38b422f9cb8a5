"""Simulator side of :func:`verif.demo.run_macro_rtl`: runs the cases of an npz through the macro, saves the results."""

import os

import cocotb
import numpy as np

from verif.macro_driver import MacroDriver, load_cases
from verif.tb import COCOTB_TIMEOUT, cocotb_tb, env_macro


@cocotb.test(timeout_time=COCOTB_TIMEOUT["timeout_time"] * 50, timeout_unit=COCOTB_TIMEOUT["timeout_unit"])
async def macro_run(dut):
    """Full rate: load each tile, stream its vectors, record accumulators and cycle counts."""
    tb = await cocotb_tb(dut, stall=0.0)
    drv = MacroDriver(tb, env_macro())
    out = {}
    for k, (tile, signed, xs) in enumerate(load_cases(os.environ["DBPIM_CASES"])):
        await drv.load(tile, signed)
        run = await drv.run(list(xs), signed)
        out[f"acc{k}"], out[f"cycles{k}"] = run.acc, run.cycles
    np.savez(os.environ["DBPIM_RESULTS"], **out)

"""cocotb side of :func:`verif.demo.run_macro_rtl`: reads a tile and vectors from an npz, writes the results."""

import os

import cocotb
import numpy as np

from model.compile import Tile
from verif.cocotb_util import macro_cfg, setup
from verif.macro_tb import INPUTS, load_tile, run_vectors


@cocotb.test()
async def demo_run(dut):
    mc = macro_cfg()
    with np.load(os.environ["DBPIM_DEMO_IN"]) as d:
        tile = Tile(cells=d["cells"], idx=d["idx"], sign=d["sign"], rows=d["rows"], col_filter=d["col_filter"],
                    filters=d["filters"], n_rows_used=int(d["n_rows_used"]))
        xs, signed = d["xs"], bool(d["signed"])
    await setup(dut, INPUTS)
    await load_tile(dut, tile, signed)
    acc, cycles = await run_vectors(dut, list(xs), signed, mc, np.random.default_rng(0), p_idle=0.0)
    np.savez(os.environ["DBPIM_DEMO_OUT"], acc=acc, cycles=cycles)

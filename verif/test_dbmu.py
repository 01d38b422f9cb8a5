"""The DBMU against ``model.blocks.dbmu``, on the Amaranth simulator and on Verilator.

Exhaustive on one row (cell value x input bit), then random contents of all rows.
"""

import numpy as np
import pytest

from dbpim.model import blocks
from dbpim.verif.rtl import configs
from dbpim.verif.tb import COCOTB_TIMEOUT, env_macro, env_rng


async def dbmu_body(tb, n_row, seed):
    rng = np.random.default_rng(seed)
    patterns = [[v] * n_row for v in (0, 1)] + [list(rng.integers(0, 2, n_row)) for _ in range(8)]
    for pat in patterns:
        for r, v in enumerate(pat):
            tb.set("w_en", 1)
            tb.set("w_addr", r)
            tb.set("w_data", int(v))
            await tb.tick()
        tb.set("w_en", 0)
        for r in range(n_row):
            for x in (0, 1):
                tb.set("row", r)  # read at the edge (latency 1): its products show in the next cycle
                await tb.tick()
                tb.set("row", (r + 1) % n_row)  # the next read does not change them before the next edge
                tb.set("x", x)
                await tb.settle()
                got = (tb.get("hi"), tb.get("lo"))
                assert got == blocks.dbmu(pat, r, x), f"seed {seed}: row {r} x {x} cells {pat}"
                await tb.tick()  # out of the settled phase before the next inputs


cocotb = pytest.importorskip("cocotb")


@cocotb.test(**COCOTB_TIMEOUT)
async def dbmu_rows(dut):
    from dbpim.verif.tb import cocotb_tb
    seed, _ = env_rng()
    await dbmu_body(await cocotb_tb(dut), env_macro().n_row, seed)


@pytest.mark.rtl
@pytest.mark.timeout(300)
@pytest.mark.parametrize("cfg", configs("dbmu"))
def test_dbmu_rtl(cfg):
    from dbpim.verif.rtl import run_cocotb
    run_cocotb("dbmu", cfg, "dbpim.verif.test_dbmu", testcase="dbmu_rows")


@pytest.mark.timeout(60)
def test_dbmu_amaranth(rng):
    from dbpim.hw.dbmu import DBMU
    from dbpim.verif.tb import run_amaranth
    seed = int(rng.integers(1 << 31))
    run_amaranth(DBMU(n_row=4), lambda tb: dbmu_body(tb, 4, seed))


@pytest.mark.parametrize("bad", [0, 3, 2048, "4", True])
def test_dbmu_rejects_bad_n_row(bad):
    from dbpim.hw.dbmu import DBMU
    with pytest.raises((TypeError, ValueError), match="n_row"):
        DBMU(n_row=bad)

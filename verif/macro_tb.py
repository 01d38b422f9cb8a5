"""cocotb driver of the PIM macro: tile loading and vector streaming (used by the regression and the demo)."""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge

from verif import tile_ops
from verif.cocotb_util import StreamSink, StreamSource

__all__ = ["INPUTS", "load_tile", "run_vectors"]

INPUTS = ("w_en", "w_row", "w_comp", "w_cells", "w_idx", "w_sign", "m_en", "m_col", "m_slot", "m_used",
          "c_en", "c_rows_used", "c_signed", "x__valid", "x__payload", "o__ready")


async def load_tile(dut, tile, signed: bool):
    """Write a Tile through the ``w_*``, ``m_*`` and ``c_*`` ports (one write per cycle)."""
    for en, writes in (("w_en", tile_ops.tile_writes(tile)), ("m_en", tile_ops.map_writes(tile)),
                       ("c_en", [tile_ops.config_write(tile, signed)])):
        getattr(dut, en).value = 1
        for w in writes:
            for k, v in w.items():
                getattr(dut, k).value = int(v)
            await RisingEdge(dut.clk)
        getattr(dut, en).value = 0


async def run_vectors(dut, xs, signed: bool, mc, rng, p_idle=0.3):
    """Stream gathered vectors ``xs`` in, collect the results; returns (acc (V, n_col), cycles (V,))."""
    beats = [b for x in xs for b in tile_ops.input_beats(x, signed, mc.in_bits)]
    src = StreamSource(dut, "x", rng, p_idle=p_idle)
    sink = StreamSink(dut, "o", rng, p_idle=p_idle, extra=("cycles",))
    send = cocotb.start_soon(src.send(beats))
    got = await sink.recv(mc.n_col * len(xs))
    await send
    accs, cycles = [], []
    for v in range(len(xs)):
        chunk = got[v * mc.n_col:(v + 1) * mc.n_col]
        accs.append(tile_ops.acc_from_beats([p for p, _ in chunk], mc.n_comp, mc.n_col, mc.n_row, mc.in_bits))
        cycles.append(chunk[-1][1])
    return np.array(accs, np.int64).reshape(len(xs), mc.n_col), np.array(cycles, np.int64)

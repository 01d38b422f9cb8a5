"""The macro driver: load a tile into ``dbpim_macro`` and stream vectors through it, on either back end.

:class:`MacroDriver` runs on a :class:`verif.tb.TB` (Amaranth simulator or
cocotb/Verilator), so the loading protocol and the vector streaming are
written once for the regression (``verif/test_macro.py``), the RTL runner
(:func:`verif.rtl_runner.run_macro_rtl`: ``dbpim verify``, the demo) and the
benchmarks. The port values are computed by pure functions
(:func:`row_write`, :func:`config_write`, :func:`input_beats`,
:func:`acc_from_beats`); tiles and vectors travel to a simulator process as
one npz (:func:`save_cases` / :func:`load_cases`, built on
``Tile.to_arrays`` / ``Tile.from_arrays``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dbpim.model import spec
from dbpim.model.compile import Tile
from dbpim.model.cycles import input_beats as n_input_beats
from dbpim.model.cycles import macro_schedule, tile_load_cycles
from dbpim.model.spec import bits_for, input_bits

__all__ = ["MacroDriver", "MacroRun", "row_write", "config_write", "input_beats", "acc_from_beats",
           "save_cases", "load_cases", "check_timeline"]


def _bits(values, width: int = 1) -> int:
    """Pack a flat sequence of unsigned ints, element k at bits ``k * width``."""
    return sum(int(v) << (width * k) for k, v in enumerate(np.asarray(values).reshape(-1)))


def row_write(tile: Tile, r: int) -> dict:
    """``w_*`` port values writing cell row ``r`` (element ``c * n_col + j`` = compartment c, column j)."""
    return {"w_row": r, "w_cells": _bits(tile.cells[r]), "w_idx": _bits(tile.idx[r], 2),
            "w_sign": _bits(tile.sign[r])}


def config_write(tile: Tile, signed: bool) -> dict:
    """``c_*`` port values: used rows, signed mode and the column map (``col_filter``; -1 = unused)."""
    n_col = len(tile.col_filter)
    cf = np.asarray(tile.col_filter)
    return {"c_rows_used": int(tile.n_rows_used), "c_signed": int(bool(signed)),
            "c_slot": _bits(np.maximum(cf, 0), bits_for(n_col - 1)), "c_used": _bits(cf >= 0)}


def input_beats(xg, signed: bool, n_rows_used: int, in_bits: int = 8) -> list[int]:
    """Packed ``x`` payloads of gathered inputs ``xg`` (n_row, n_comp): the used rows, at least one."""
    bits = input_bits(np.asarray(xg), signed)
    return [spec.pack_macro_in(row, in_bits) for row in bits[:n_input_beats(n_rows_used)]]


def acc_from_beats(beats, n_comp, n_col, n_row, in_bits=8) -> np.ndarray:
    """Per-slot accumulators from the ``o`` payloads of one vector (checks order and ``last``)."""
    acc = np.zeros(n_col, np.int64)
    if len(beats) != n_col:
        raise AssertionError(f"expected {n_col} output beats, got {len(beats)}")
    for k, w in enumerate(beats):
        slot, a, last = spec.unpack_macro_out(w, n_comp, n_col, n_row, in_bits)
        if slot != k or last != (k == n_col - 1):
            raise AssertionError(f"output beat {k}: slot {slot}, last {last}")
        acc[slot] = a
    return acc


@dataclass
class MacroRun:
    """What :meth:`MacroDriver.run` observed for a sequence of vectors.

    ``acc`` (V, n_col) and ``cycles`` (V,) are the results; the rest is the
    environment and the handshakes, in cycles relative to the first input
    beat's offer: ``gaps`` (idle cycles before each input beat, the first 0),
    ``in_accept`` (each input beat), ``out_accept`` (V, n_col) and ``ready``
    (the sink's ready per cycle).
    """

    acc: np.ndarray
    cycles: np.ndarray
    gaps: np.ndarray
    in_accept: np.ndarray
    out_accept: np.ndarray
    ready: np.ndarray


class MacroDriver:
    """Drives ``dbpim_macro`` through a :class:`verif.tb.TB`.

    Parameters
    ----------
    tb : verif.tb.TB
    macro : model.config.MacroConfig
    """

    def __init__(self, tb, macro):
        self.tb, self.mc = tb, macro
        self.n_rows_used = 0
        self.sink = tb.sink("o")
        self.sink.extra = ("cycles",)
        self.source = tb.source("x")

    async def load(self, tile: Tile, signed: bool) -> int:
        """Write ``tile``: one used cell row per cycle, the configuration with the first; returns the cycles."""
        tb = self.tb
        if tile.cells.shape != (self.mc.n_row, self.mc.n_comp, self.mc.n_col):
            raise ValueError(f"tile: cells {tile.cells.shape} do not fit the macro")
        t0 = tb.cycle
        for r in range(tile_load_cycles(tile.n_rows_used)):
            tb.set("w_en", 1)
            for k, v in row_write(tile, r).items():
                tb.set(k, v)
            tb.set("c_en", int(r == 0))
            if r == 0:
                for k, v in config_write(tile, signed).items():
                    tb.set(k, v)
            await tb.tick()
        tb.set("w_en", 0)
        tb.set("c_en", 0)
        self.n_rows_used = int(tile.n_rows_used)
        return tb.cycle - t0

    async def run(self, xs, signed: bool) -> MacroRun:
        """Stream gathered vectors ``xs`` (each (n_row, n_comp)) and collect their results."""
        mc, src, snk = self.mc, self.source, self.sink
        if snk.pending:
            raise AssertionError(f"{snk.pending} unexpected output beats before the vectors were sent")
        beats = [b for x in xs for b in input_beats(x, signed, self.n_rows_used, mc.in_bits)]
        i0 = len(src.accepted)
        src.send(beats)
        got, out_k = await snk.recv(self.tb, mc.n_col * len(xs), with_cycles=True)
        await src.wait(self.tb)
        V = len(xs)
        acc = np.zeros((V, mc.n_col), np.int64)
        cycles = np.zeros(V, np.int64)
        for v in range(V):
            chunk = got[v * mc.n_col:(v + 1) * mc.n_col]
            acc[v] = acc_from_beats([p for p, _ in chunk], mc.n_comp, mc.n_col, mc.n_row, mc.in_bits)
            counts = {c for _, c in chunk}
            if len(counts) != 1:
                raise AssertionError(f"vector {v}: the cycles port changed during its output beats: {sorted(counts)}")
            cycles[v] = counts.pop()
        t0 = src.offered[i0] if V else 0
        gaps = np.array(src.gaps[i0:i0 + len(beats)], np.int64)
        if gaps.size:
            gaps[0] = 0
        return MacroRun(acc=acc, cycles=cycles, gaps=gaps,
                        in_accept=np.array(src.accepted[i0:i0 + len(beats)], np.int64) - t0,
                        out_accept=np.array(out_k, np.int64).reshape(V, mc.n_col) - t0,
                        ready=np.array(snk.ready_log[t0:], bool))


def check_timeline(run: MacroRun, n_rows_used: int, n_col: int, label: str = "") -> None:
    """Assert that every handshake of ``run`` happened in the cycle :func:`model.cycles.macro_schedule` gives."""
    tl = macro_schedule(run.cycles, n_rows_used, n_col, in_gaps=run.gaps, out_ready=run.ready)
    got_in, want_in = run.in_accept, tl.in_accept.reshape(-1)
    if not np.array_equal(got_in, want_in):
        k = int(np.argmax(got_in != want_in))
        raise AssertionError(f"{label}: input beat {k} accepted in cycle {got_in[k]}, model says {want_in[k]}")
    if not np.array_equal(run.out_accept, tl.out_accept):
        v, j = np.argwhere(run.out_accept != tl.out_accept)[0]
        raise AssertionError(f"{label}: vector {v} output beat {j} accepted in cycle {run.out_accept[v, j]}, "
                             f"model says {tl.out_accept[v, j]}")


def save_cases(path, cases) -> None:
    """Write ``[(tile, signed, xs), ...]`` (xs: gathered vectors (V, n_row, n_comp)) into one npz."""
    arrays = {}
    for k, (tile, signed, xs) in enumerate(cases):
        arrays.update({f"case{k}_{n}": a for n, a in tile.to_arrays().items()})
        arrays[f"case{k}_signed"] = np.array(bool(signed))
        arrays[f"case{k}_xs"] = np.asarray(xs, np.int64)
    arrays["n_cases"] = np.array(len(cases))
    np.savez(path, **arrays)


def load_cases(path) -> list:
    """Inverse of :func:`save_cases`."""
    with np.load(path) as z:
        return [(Tile.from_arrays(z, prefix=f"case{k}_"), bool(z[f"case{k}_signed"]), z[f"case{k}_xs"])
                for k in range(int(z["n_cases"]))]

"""Dyadic block multiply unit (docs/design.md §5): ``n_row`` 6T cells and one LPU."""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib.wiring import In, Out

from dbpim.hw.common import Block, add_block
from dbpim.hw.lpu import LPU
from dbpim.hw.sram import sram_1r1w
from dbpim.model.spec import LATENCY

__all__ = ["DBMU"]


class DBMU(Block):
    """``n_row`` one-bit cells, a write port, a row select and one LPU.

    The cells are a synchronous-read memory (:mod:`hw.sram`, as a compiled
    SRAM): the row selected at a clock edge drives the LPU from the next cycle
    on (latency 1; the old value when that row is written at the same edge); a
    write takes effect on the next clock edge.

    Parameters
    ----------
    n_row : int
        Cells per DBMU, a power of two from 1 to 1024.

    Attributes
    ----------
    w_en, w_addr, w_data : In
        Write port: on a clock edge with ``w_en`` the cell ``w_addr`` takes ``w_data``.
    row : In(range(n_row))
        Row select, read at each clock edge.
    x : In(1)
        Input bit.
    hi, lo : Out(1)
        LPU products of the cell selected at the last clock edge and the input bit ``x`` now.

    Raises
    ------
    TypeError, ValueError
        If ``n_row`` is not a power of two in range.
    """

    CONFIG_KEYS = {"n_row": "n_row"}
    NAME = "dbmu"

    def __init__(self, *, n_row: int):
        self._n_row = self._param("n_row", n_row)
        super().__init__({
            "w_en": In(1), "w_addr": In(range(n_row)), "w_data": In(1),
            "row": In(range(n_row)), "x": In(1),
            "hi": Out(1), "lo": Out(1),
        })

    @property
    def n_row(self) -> int:
        """Cells per DBMU."""
        return self._n_row

    @property
    def latency(self) -> int:
        return LATENCY["dbmu"]

    latency_note = "row select to products one cycle (synchronous read); a write takes effect the next cycle"

    def elaborate(self, platform):
        m = Module()
        # the 6T cells: an n_row x 1 memory (contents survive reset), synchronous row read
        cells = sram_1r1w(m, "dbmu", width=1, depth=self.n_row, platform=platform, name="cells")
        wp, rp = cells.w, cells.r
        m.d.comb += [wp.en.eq(self.w_en), wp.addr.eq(self.w_addr), wp.data.eq(self.w_data),
                     rp.addr.eq(self.row)]
        lpu = LPU()
        add_block(m, "lpu", lpu, platform)
        m.d.comb += [
            lpu.x.eq(self.x),
            lpu.q.eq(rp.data),
            self.hi.eq(lpu.hi),
            self.lo.eq(lpu.lo),
        ]
        return m

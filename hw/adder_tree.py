"""CSD-based adder tree (docs/design.md §5): one DBMU column over the compartments."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data
from amaranth.lib.wiring import In, Out

from dbpim.hw.common import Block
from dbpim.model.spec import adder_tree_latency, col_sum_width

__all__ = ["CSDAdderTree"]


class CSDAdderTree(Block):
    """Sum of one column's CSD digits times the current input bits.

    ``sum = sum_c (-1)**sign_c * (hi_c * 2**(2 idx_c + 1) + lo_c * 2**(2 idx_c))``
    (twin: :func:`model.blocks.adder_tree`). Each compartment's pair
    ``(hi, lo)`` is shifted by ``2 idx`` and negated when ``sign`` is set, then a
    balanced binary tree adds the ``n_comp`` terms.

    Latency: 0 cycles (combinational) when ``pipeline`` is false; 1 cycle (the
    sum and ``o_valid`` are registered after the tree) when true.

    Parameters
    ----------
    n_comp : int
        Compartments, a power of two from 2 to 256.
    pipeline : bool
        Register the tree output.

    Attributes
    ----------
    hi, lo : In(n_comp)
        LPU product bits of compartment c at bit c.
    idx : In(ArrayLayout(2, n_comp))
        Dyadic block index of each compartment's entry.
    sign : In(n_comp)
        1 where the compartment's digit is -1.
    i_valid : In(1)
        The inputs are a real step (delayed to ``o_valid`` with the sum).
    sum : Out(signed(col_sum_width(n_comp)))
    o_valid : Out(1)

    Raises
    ------
    TypeError, ValueError
        On a bad ``n_comp`` or a non-bool ``pipeline``.
    """

    CONFIG_KEYS = {"n_comp": "n_comp", "pipeline": "pipeline"}
    NAME = "adder_tree"

    def __init__(self, *, n_comp: int, pipeline: bool = False):
        self._n_comp = self._param("n_comp", n_comp)
        self._pipeline = self._param("pipeline", pipeline)
        super().__init__({
            "hi": In(n_comp), "lo": In(n_comp),
            "idx": In(data.ArrayLayout(2, n_comp)), "sign": In(n_comp),
            "i_valid": In(1),
            "sum": Out(signed(col_sum_width(n_comp))), "o_valid": Out(1),
        })

    @property
    def n_comp(self) -> int:
        return self._n_comp

    @property
    def pipeline(self) -> bool:
        return self._pipeline

    @property
    def latency(self) -> int:
        """Cycles from inputs to ``sum``: ``int(pipeline)``."""
        return adder_tree_latency(self._pipeline)

    latency_note = "inputs to sum"

    def elaborate(self, platform):
        m = Module()
        terms = []
        for c in range(self.n_comp):
            mag = Signal(8, name=f"mag{c}")
            term = Signal(signed(9), name=f"term{c}")
            m.d.comb += [
                mag.eq(Cat(self.lo[c], self.hi[c]) << (self.idx[c] * 2)),
                term.eq(Mux(self.sign[c], -mag, mag)),
            ]
            terms.append(term)
        level = 0
        while len(terms) > 1:
            nxt = []
            for k in range(0, len(terms), 2):
                a, b = terms[k], terms[k + 1]
                s = Signal(signed(max(len(a), len(b)) + 1), name=f"s{level}_{k // 2}")
                m.d.comb += s.eq(a + b)
                nxt.append(s)
            terms, level = nxt, level + 1
        domain = m.d.sync if self._pipeline else m.d.comb
        domain += [self.sum.eq(terms[0]), self.o_valid.eq(self.i_valid)]
        return m

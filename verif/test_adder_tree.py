"""cocotb regression of the CSD adder tree and the shift-and-add accumulator against model.blocks."""

import pytest

cocotb = pytest.importorskip("cocotb")
import numpy as np  # noqa: E402
from cocotb.triggers import ReadOnly, RisingEdge, Timer  # noqa: E402

from model import blocks, spec  # noqa: E402
from verif.cocotb_util import env_rng, macro_cfg, setup  # noqa: E402


def _vec(bits):
    return sum(int(v) << k for k, v in enumerate(bits))


@cocotb.test()
async def adder_tree_stream(dut):
    seed, rng = env_rng()
    mc = macro_cfg()
    n, lat = mc.n_comp, int(mc.pipeline)
    if lat:
        await setup(dut, ("hi", "lo", "idx", "sign", "i_valid"))
    cases = [  # corners: all zero, all -128 (hi at idx 3, negative), all +1 (lo at idx 0), all +128
        (np.zeros(n, int), np.zeros(n, int), np.zeros(n, int), np.zeros(n, int)),
        (np.ones(n, int), np.zeros(n, int), np.full(n, 3), np.ones(n, int)),
        (np.zeros(n, int), np.ones(n, int), np.zeros(n, int), np.zeros(n, int)),
        (np.ones(n, int), np.zeros(n, int), np.full(n, 3), np.zeros(n, int)),
    ]
    while len(cases) < 400:
        q, x = rng.integers(0, 2, n), rng.integers(0, 2, n)
        cases.append((x & q, x & (1 - q), rng.integers(0, 4, n), rng.integers(0, 2, n)))
    want = [int(blocks.adder_tree(*c)) for c in cases]
    for t in range(len(cases) + lat):
        if t < len(cases):
            hi, lo, idx, sign = cases[t]
            dut.hi.value, dut.lo.value, dut.sign.value = _vec(hi), _vec(lo), _vec(sign)
            dut.idx.value = sum(int(v) << (2 * k) for k, v in enumerate(idx))
            dut.i_valid.value = 1
        else:
            dut.i_valid.value = 0
        if lat:
            await ReadOnly()
        else:  # combinational build: no clock
            await Timer(1, unit="ns")
        if t >= lat:
            got = dut.sum.value.to_signed()
            assert got == want[t - lat], f"seed {seed}: case {t - lat} {cases[t - lat]}: got {got}"
            assert dut.o_valid.value == 1
        if lat:
            await RisingEdge(dut.clk)


def _maps(rng, n_col, phi_max, k):
    """Column-to-slot maps with phi 0/1/2 mixes, one all-to-one-slot map, and random ones."""
    out = [np.zeros(n_col, int), np.full(n_col, -1)]
    for _ in range(k):
        cf, col, slot = np.full(n_col, -1), 0, 0
        while col < n_col:
            phi = int(rng.integers(0, phi_max + 1))
            if phi and col + phi <= n_col:
                cf[col:col + phi] = slot
                col += phi
            elif phi == 0 and rng.random() < 0.3:
                col += 1  # leave a column unused
            slot += 1
        out.append(np.minimum(cf, n_col - 1))
    return out


@cocotb.test()
async def accumulator_vectors(dut):
    seed, rng = env_rng()
    mc = macro_cfg()
    n_col, in_bits = mc.n_col, mc.in_bits
    accw = spec.acc_width(mc.n_comp, n_col, mc.n_row, in_bits)
    csw = spec.col_sum_width(mc.n_comp)
    lim = mc.n_comp * spec.TERM_MAX
    await setup(dut, ("col_sum", "valid", "b", "signed_in", "clear", "m_en", "m_col", "m_slot", "m_used"))
    for vec, cf in enumerate(_maps(rng, n_col, mc.phi_max, 8)):
        for j, s in enumerate(cf):
            dut.m_en.value, dut.m_col.value, dut.m_slot.value, dut.m_used.value = 1, j, max(int(s), 0), int(s >= 0)
            await RisingEdge(dut.clk)
        dut.m_en.value = 0
        for signed in (False, True):
            # a legal step sequence: per cell row, a subset of the bit columns (as the IPU issues them)
            if vec == 0:  # worst case: every column of every row, extreme sums
                bits = np.tile(np.arange(in_bits), mc.n_row)
                cs = np.full((bits.size, n_col), -lim if signed else lim)
            else:
                bits = np.concatenate([np.nonzero(rng.random(in_bits) < 0.5)[0] for _ in range(mc.n_row)])
                cs = rng.integers(-lim, lim + 1, (bits.size, n_col))
            T = bits.size
            dut.signed_in.value = int(signed)
            dut.clear.value = 1
            await RisingEdge(dut.clk)
            dut.clear.value = 0
            t = 0
            while t < T:
                if rng.random() < 0.2:  # valid gap
                    dut.valid.value = 0
                else:
                    dut.col_sum.value = spec.pack([("c", csw, n_col, True)], {"c": cs[t]})
                    dut.b.value, dut.valid.value = int(bits[t]), 1
                    t += 1
                await RisingEdge(dut.clk)
            dut.valid.value = 0
            await ReadOnly()
            got = spec.unpack([("a", accw, n_col, True)], dut.acc.value.to_unsigned())["a"]
            want = blocks.accumulator(cs, bits, cf, signed=signed, in_bits=in_bits)
            assert got == list(want), f"seed {seed}: map {list(cf)} signed {signed}: got {got}, want {list(want)}"
            await RisingEdge(dut.clk)


@pytest.mark.rtl
@pytest.mark.xdist_group("rtl-adder_tree")
@pytest.mark.parametrize("cfg", ["small", "paper"])
def test_adder_tree_rtl(cfg):
    from verif.rtl import run_cocotb
    run_cocotb("adder_tree", cfg, "verif.test_adder_tree", testcase="adder_tree_stream")


@pytest.mark.rtl
@pytest.mark.xdist_group("rtl-accumulator")
@pytest.mark.parametrize("cfg", ["small", "paper"])
def test_accumulator_rtl(cfg):
    from verif.rtl import run_cocotb
    run_cocotb("accumulator", cfg, "verif.test_adder_tree", testcase="accumulator_vectors")

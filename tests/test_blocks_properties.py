"""Hypothesis property tests: every block twin equals plain integer arithmetic."""

import numpy as np
from hypothesis import given, settings, strategies as st

from dbpim.model import blocks, csd, spec

seeds = st.integers(0, 2**32 - 1)


@settings(max_examples=80, deadline=None)
@given(n_comp=st.integers(1, 32), shape_extra=st.integers(1, 5), seed=seeds)
def test_lpu_and_adder_tree_equal_digit_times_bit(n_comp, shape_extra, seed):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, 4, (shape_extra, n_comp))
    pos = rng.integers(0, 2, (shape_extra, n_comp))
    sign = rng.integers(0, 2, (shape_extra, n_comp))
    x = rng.integers(0, 2, (shape_extra, n_comp))
    hi, lo = blocks.lpu(x, pos)
    assert np.all(hi + lo == x)  # exactly one product bit of a driven cell
    digit = (1 - 2 * sign) * (1 << (2 * idx + pos))
    got = blocks.adder_tree(hi, lo, idx, sign)
    assert np.array_equal(got, (digit * x).sum(-1))
    w = spec.col_sum_width(n_comp)
    assert np.all((-(1 << (w - 1)) <= got) & (got < (1 << (w - 1))))


@settings(max_examples=60, deadline=None)
@given(n_row=st.integers(1, 64), seed=seeds)
def test_dbmu_selects_row(n_row, seed):
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 2, n_row)
    row = int(rng.integers(0, n_row))
    for x in (0, 1):
        assert blocks.dbmu(cells, row, x) == (x & cells[row], x & (1 - cells[row]))


@settings(max_examples=80, deadline=None)
@given(n_col=st.integers(1, 16), T=st.integers(0, 12), signed=st.booleans(), seed=seeds)
def test_accumulator_equals_shifted_sums(n_col, T, signed, seed):
    rng = np.random.default_rng(seed)
    cs = rng.integers(-4096, 4096, (T, n_col))
    bits = rng.integers(0, 8, T)
    cf = rng.integers(-1, n_col, n_col)
    got = blocks.accumulator(cs, bits, cf, signed=signed)
    want = np.zeros(n_col, np.int64)
    for t in range(T):
        wgt = -(1 << 7) if signed and bits[t] == 7 else 1 << int(bits[t])
        for j in range(n_col):
            if cf[j] >= 0:
                want[cf[j]] += int(cs[t, j]) * wgt
    assert np.array_equal(got, want)


@settings(max_examples=100, deadline=None)
@given(group=st.lists(st.integers(0, 255), min_size=1, max_size=32))
def test_ipu_cycles_are_popcount_of_or_and_columns_rebuild_inputs(group):
    beats = blocks.ipu(group)
    orr = 0
    for v in group:
        orr |= v
    assert len(beats) == bin(orr).count("1")
    assert [b for b, _, _ in beats] == [b for b in range(8) if (orr >> b) & 1]  # LSB first
    assert [last for _, _, last in beats] == [False] * (len(beats) - 1) + [True] * bool(beats)
    rebuilt = [sum(((bits >> c) & 1) << b for b, bits, _ in beats) for c in range(len(group))]
    assert rebuilt == list(group)


@settings(max_examples=100, deadline=None)
@given(data=st.lists(st.integers(0, 255), min_size=1, max_size=40), lanes=st.sampled_from([1, 2, 4, 8]),
       seed=seeds)
def test_switch_emits_masked_inputs_in_order(data, lanes, seed):
    mask = np.random.default_rng(seed).integers(0, 2, len(data))
    beats = blocks.switch(data, mask, lanes)
    kept = [d for d, m in zip(data, mask) if m]
    assert len(beats) == -(-len(kept) // lanes)
    out = []
    for k, (vals, lane_en, last) in enumerate(beats):
        n = bin(lane_en).count("1")
        assert lane_en == (1 << n) - 1 and (n == lanes or last)
        assert last == (k == len(beats) - 1)
        out += vals[:n]
    assert out == kept


@settings(max_examples=40, deadline=None)
@given(n_comp=st.sampled_from([2, 4, 16]), seed=seeds)
def test_one_row_of_weights_through_lpu_tree_accumulator_equals_dot_product(n_comp, seed):
    # a column of phi=1 weights (one digit each) times unsigned inputs, bit-serially
    rng = np.random.default_rng(seed)
    vals = np.array([v for v in range(-128, 128) if csd.nnz(v) == 1])
    w = rng.choice(vals, n_comp)
    x = rng.integers(0, 256, n_comp)
    idx, pos, sign = (a[:, 0] for a in csd.digits_sorted(w, 1))
    sums, bits = [], []
    for b, col, _ in blocks.ipu(x):
        xb = np.array([(col >> c) & 1 for c in range(n_comp)])
        hi, lo = blocks.lpu(xb, pos)
        sums.append([int(blocks.adder_tree(hi, lo, idx, sign))])
        bits.append(b)
    acc = blocks.accumulator(np.array(sums, np.int64).reshape(-1, 1), bits, [0])
    assert acc[0] == int(np.dot(w, x))

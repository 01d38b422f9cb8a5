"""The integer-only rescaling (model.requant) against exact rational arithmetic."""

from __future__ import annotations

import math
import os
from fractions import Fraction

import numpy as np
import pytest

from dbpim.model.requant import (ACC_LIMIT_BITS, MULT_BITS, SHIFT_MAX, RequantError, quantize_multiplier,
                                 quantize_multipliers, requantize, rescale, saturate)

SEED = int(os.environ.get("DBPIM_SEED", "20261206"))


def _round_half_up(q: Fraction) -> int:
    return math.floor(q + Fraction(1, 2))


def test_rescale_is_round_half_up_of_the_exact_product():
    rng = np.random.default_rng(SEED)
    v = rng.integers(-(1 << ACC_LIMIT_BITS) + 1, 1 << ACC_LIMIT_BITS, 4000)
    m = rng.integers(0, 1 << MULT_BITS, 4000)
    s = rng.integers(0, SHIFT_MAX + 1, 4000)
    got = rescale(v, m, s)
    for i in range(len(v)):
        want = _round_half_up(Fraction(int(v[i]) * int(m[i]), 1 << int(s[i])))
        assert int(got[i]) == want, f"seed {SEED}: v={v[i]} m={m[i]} s={s[i]}"


def test_rescale_ties_round_up():
    assert rescale(np.array([5, -5, 3, -3]), 1, 1).tolist() == [3, -2, 2, -1]
    assert rescale(np.array([7]), 5, 0).tolist() == [35]  # s = 0: no rounding term


def test_quantize_multiplier_is_normalised_and_close():
    rng = np.random.default_rng(SEED)
    for r in np.concatenate([rng.uniform(1e-9, 1.0, 500), rng.uniform(1.0, 1e6, 200), [0.5, 1.0, 2.0 ** -31]]):
        m, s = quantize_multiplier(float(r))
        assert 1 << (MULT_BITS - 1) <= m < 1 << MULT_BITS and 0 <= s <= SHIFT_MAX, (r, m, s)
        assert abs(Fraction(m, 1 << s) - Fraction(float(r))) <= Fraction(float(r)) * Fraction(1, 1 << MULT_BITS)


def test_quantize_multiplier_edges():
    assert quantize_multiplier(0.0) == (0, 0)
    assert quantize_multiplier(2.0 ** -80) == (0, 0)
    m, s = quantize_multiplier(2.0 ** -40)
    assert s == SHIFT_MAX and m == 1 << (SHIFT_MAX - 40)
    ms, ss = quantize_multipliers([0.25, 0.5])
    assert ms.tolist() == [1 << 30, 1 << 30] and ss.tolist() == [32, 31]
    for bad in (float("nan"), float("inf"), -0.5, 2.0 ** 31, "0.5"):
        with pytest.raises(RequantError, match=r"^scale: "):
            quantize_multiplier(bad)


def test_requantize_per_channel_with_bias_and_saturation():
    acc = np.array([[10, -10], [1000, -1000]])  # (pixels, C)
    m = np.array([1 << 30, 1 << 30])  # 0.5 at s = 31
    s = np.array([31, 31])
    y = requantize(acc, m, s, -128, 127, bias=np.array([1, 0]))
    assert y.tolist() == [[6, -5], [127, -128]]


def test_bad_values_are_one_line_errors():
    with pytest.raises(RequantError, match=r"^rescale\.v: must satisfy"):
        rescale(np.array([1 << ACC_LIMIT_BITS]), 1, 0)
    with pytest.raises(RequantError, match=r"^rescale\.v: must be integers"):
        rescale(np.array([1.5]), 1, 0)
    with pytest.raises(RequantError, match=r"^rescale\.m: must be in"):
        rescale(np.array([1]), 1 << MULT_BITS, 0)
    with pytest.raises(RequantError, match=r"^rescale\.s: must be in"):
        rescale(np.array([1]), 1, SHIFT_MAX + 1)
    with pytest.raises(RequantError, match=r"^saturate\.hi: "):
        saturate(np.array([1]), 5, 4)
    with pytest.raises(RequantError, match=r"^requantize\.bias: must be integers"):
        requantize(np.array([1]), 1, 0, 0, 255, bias=np.array([0.5]))

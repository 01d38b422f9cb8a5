"""No silently wrong number: finite, ranged options and configurations, strict JSON, one home per derived width."""

from __future__ import annotations

import math

import pytest

from model._check import check_choice, check_float, check_int


@pytest.mark.parametrize("v", [1.5, 0, 5, True, "2", float("nan")])
def test_check_int_refuses_with_field_name(v):
    with pytest.raises(ValueError, match=r"^phi_max: must be an integer in \[1, 4\], got "):
        check_int("phi_max", v, 1, 4)


def test_check_int_accepts_numpy_and_returns_int():
    import numpy as np
    assert check_int("n", np.int64(3), 1, 4) == 3 and type(check_int("n", np.int64(3), 1, 4)) is int


@pytest.mark.parametrize("v", [math.inf, -math.inf, math.nan, 0.0, 11, "1"])
def test_check_float_refuses_non_finite_and_out_of_range(v):
    with pytest.raises(ValueError, match=r"^lr: must be a finite number in \(0, 10\], got "):
        check_float("lr", v, 0, 10, lo_open=True)


def test_check_choice():
    with pytest.raises(ValueError, match="^blocks: must be one of a, b, got 'c'$"):
        check_choice("blocks", "c", ["a", "b"])

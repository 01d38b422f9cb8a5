"""CSD encoding and dyadic-block entries, exhaustively over all 256 int8 values."""

import numpy as np
import pytest

from dbpim.model import csd

ALL = np.arange(-128, 128)


def test_round_trip_all_int8():
    assert np.array_equal(csd.decode(csd.encode(ALL)), ALL)


def test_no_adjacent_nonzeros_and_digit_set():
    d = csd.encode(ALL)
    assert set(np.unique(d)) <= {-1, 0, 1}
    assert not np.any((d[:, 1:] != 0) & (d[:, :-1] != 0))


def test_uniqueness_against_brute_force():
    # every NAF digit string of length 8 maps to a distinct value; the encoder
    # must return exactly the one NAF string of each value
    import itertools
    naf = {}
    for digits in itertools.product((-1, 0, 1), repeat=8):
        if any(digits[i] and digits[i + 1] for i in range(7)):
            continue
        v = sum(dd << p for p, dd in enumerate(digits))
        assert v not in naf, "NAF is not unique?"
        naf[v] = digits
    for v in ALL:
        assert tuple(csd.encode(v)) == naf[int(v)]


def test_nnz_never_above_binary_popcount():
    n = csd.nnz(ALL)
    popcount = np.array([bin(int(v) & 0xFF).count("1") for v in ALL])
    assert np.all(n <= popcount)
    assert n.max() == 4 and n[ALL == 0] == 0


def test_known_values():
    assert csd.nnz(-128) == 1 and csd.nnz(127) == 2
    assert list(csd.encode(127)) == [-1, 0, 0, 0, 0, 0, 0, 1]
    assert list(csd.encode(-128)) == [0, 0, 0, 0, 0, 0, 0, -1]


def test_entries_round_trip_and_patterns():
    idx, pos, sign, valid = csd.entries(ALL)
    assert np.array_equal(csd.from_entries(idx, pos, sign, valid), ALL)
    d = csd.encode(ALL).reshape(256, 4, 2)
    # each block is a Zero Pattern or holds exactly one non-zero digit
    assert np.all(np.count_nonzero(d, axis=2) <= 1)
    assert np.array_equal(valid, np.count_nonzero(d, axis=2) == 1)
    assert np.all(idx == np.arange(4))


@pytest.mark.parametrize("phi", range(5))
def test_digits_sorted_round_trip(phi):
    vals = ALL[csd.nnz(ALL) == phi]
    idx, pos, sign = csd.digits_sorted(vals, phi)
    assert idx.shape == (vals.size, phi)
    assert np.array_equal(csd.from_entries(idx, pos, sign, np.ones_like(idx, bool)), vals)
    assert np.all(np.diff(idx.astype(int), axis=-1) > 0)  # lowest position first


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r"x: values must lie in \[-128, 127\], found 128"):
        csd.encode([1, 128])
    with pytest.raises(TypeError, match="x: must be an integer array"):
        csd.encode(np.array(["a"]))
    with pytest.raises(ValueError, match="NaN"):
        csd.nnz(np.array([np.nan]))
    with pytest.raises(ValueError, match="exactly phi=1"):
        csd.digits_sorted([3], 1)
    with pytest.raises(ValueError, match="digits: last axis"):
        csd.decode(np.zeros((3, 7), int))

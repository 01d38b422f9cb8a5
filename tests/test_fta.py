"""Fixed-threshold approximation: nearest member of S_phi, tie rules, thresholds."""

import numpy as np
import pytest

from dbpim.model import csd, fta

GRID = np.round(np.arange(-130, 130.01, 0.125), 3)  # includes every tie point x.5 and x.0


@pytest.mark.parametrize("phi_max", [1, 2, 3, 4])
def test_exact_phi_and_nearest_on_dense_grid(phi_max):
    for phi in range(phi_max + 1):
        v = fta.approximate(GRID, phi, phi_max)
        assert v.dtype == np.int8
        assert np.all(csd.nnz(v) == phi)
        s = fta.levels(phi)
        u = np.clip(GRID, -128, 127)
        best = np.abs(u[:, None] - s[None, :]).min(1)
        assert np.all(np.abs(u - v) <= best), "a member of S_phi is strictly closer"
        ref = [fta.approximate_reference(x, phi) for x in GRID]
        assert np.array_equal(v, ref)


def test_tie_rules():
    # phi = 1: S_1 = {±1, ±2, ±4, ...}; 3 is equidistant from 2 and 4 -> smaller magnitude
    assert fta.approximate(3.0, 1) == 2
    assert fta.approximate(-3.0, 1) == -2
    # phi = 1, u = 0: equidistant from -1 and 1 -> positive
    assert fta.approximate(0.0, 1) == 1
    # phi = 2, u = 0: S_2 nearest are ±3 -> positive
    assert fta.approximate(0.0, 2) == 3
    # one rounding: u = 2.6 with phi = 1 -> 2 (not int8 3 then a tie)
    assert fta.approximate(2.6, 1) == 2
    assert fta.approximate(3.4, 1) == 4
    # clipping
    assert fta.approximate(1000.0, 1) == 64 and fta.approximate(-1000.0, 1) == -128


def test_broadcast_per_filter(rng):
    u = rng.normal(0, 40, (50, 7))
    phi = rng.integers(0, 3, 7)
    v = fta.approximate(u, phi[None, :])
    ref = np.array([[fta.approximate_reference(u[k, n], phi[n]) for n in range(7)] for k in range(50)])
    assert np.array_equal(v, ref)
    assert np.array_equal(fta.approximate(u.astype(np.float32), phi), fta.approximate(u.astype(np.float32), phi[None]))


def test_thresholds_hand_made():
    # nnz: 1 -> 1, 3 -> 2, 0 -> 0, 85 -> 4, 64 -> 1
    w = np.array([[1, 3, 0, 85, 64],
                  [3, 3, 0, 85, 0],
                  [64, 1, 0, 3, 0],
                  [3, 1, 0, 3, 5]])
    m = np.ones_like(w, bool)
    m[:, 4] = False  # filter 4 fully pruned
    phi = fta.thresholds(w, m, phi_min=0, phi_max=2)
    # f0: nnz {1,2,1,2} tie 1/2 -> larger 2; f1: {2,2,1,1} -> 2; f2: all zero -> 0;
    # f3: {4,4,2,2} tie -> 4 clamped to 2; f4: all pruned -> phi_min
    assert phi.tolist() == [2, 2, 0, 2, 0]
    assert fta.thresholds(w, m, phi_min=1, phi_max=4).tolist() == [2, 2, 1, 4, 1]
    # pruned weights are excluded from the mode
    m2 = np.ones_like(w, bool)
    m2[1:, 0] = False
    assert fta.thresholds(w, m2)[0] == 1


def test_quantize_contract(rng):
    u = rng.normal(0, 30, (40, 12))
    m = rng.random((40, 12)) < 0.6
    w, phi = fta.quantize(u, m, phi_max=2)
    assert np.all(w[~m] == 0)
    assert np.all(csd.nnz(w)[m] == np.broadcast_to(phi, w.shape)[m])
    w0 = np.rint(u).astype(int)
    assert np.array_equal(phi, fta.thresholds(w0, m))


@pytest.mark.parametrize("bad,msg", [
    (dict(phi=3), r"phi: values must lie in \[0, 2\]"),
    (dict(phi=-1), r"phi: values must lie"),
    (dict(u=np.nan), "u: must be finite"),
    (dict(phi_max=5), r"phi_max: must be an integer in \[1, 4\], got 5"),
])
def test_bad_arguments(bad, msg):
    kw = dict(u=1.0, phi=1, phi_max=2)
    kw.update(bad)
    with pytest.raises(ValueError, match=msg):
        fta.approximate(**kw)


def test_thresholds_bad_shapes():
    with pytest.raises(ValueError, match="mask: must have the shape"):
        fta.thresholds(np.zeros((3, 4), int), np.ones((3, 3), bool))
    with pytest.raises(ValueError, match=r"w_int: values must lie in \[-128, 127\]"):
        fta.thresholds(np.full((2, 2), 200), np.ones((2, 2), bool))


def test_thresholds_match_naive_mode_on_tall_and_wide_layers(rng):
    # exercises the packed 12-bit counters across many row chunks (K > 4095)
    for K, N in ((9000, 1), (300, 700), (5000, 3)):
        w = rng.integers(-128, 128, (K, N))
        m = rng.random((K, N)) < 0.8
        n = csd.nnz(w)
        naive = []
        for f in range(N):
            c = np.bincount(n[m[:, f], f], minlength=5)
            naive.append(min(max(4 - int(np.argmax(c[::-1])), 0), 2))
        assert fta.thresholds(w, m).tolist() == naive
        u = w + rng.uniform(-0.49, 0.49, w.shape)
        assert np.array_equal(fta.quantize(u, m)[1], np.array(naive))

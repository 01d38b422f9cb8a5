"""Tile compiler, macro model and layer model against plain integer arithmetic."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from dbpim.model import compile as C, csd, cycles, fta, layer as L, macro as M, prune, spec
from dbpim.model.config import MacroConfig, load_config


def make_layer(rng, K, N, macro, sparsity=0.5, scale=40.0, G=None):
    G = G or macro.group_size
    W = rng.normal(0, scale, (K, N))
    mask = prune.block_mask(W, G, sparsity)
    w, phi = fta.quantize(W, prune.expand_mask(mask, N, G), phi_max=macro.phi_max)
    return w, phi, mask


def through_macros(x, compiled, signed):
    """Sum of run_macro over every tile and vector (the slow, bit-serial path)."""
    P = x.shape[0]
    out = np.zeros((P, compiled.N), np.int64)
    cycles = 0
    for p in range(P):
        for t in compiled.tiles:
            r = M.run_macro(t, x[p], compiled.macro, signed)
            cycles += r.cycles
            used = t.filters >= 0
            out[p, t.filters[used]] += r.acc[used]
    return out, cycles


macros = st.builds(MacroConfig, n_comp=st.sampled_from([2, 4, 8]), n_col=st.sampled_from([2, 4, 6, 8]),
                   n_row=st.sampled_from([1, 2, 4]), phi_max=st.integers(1, 2), lanes=st.just(1),
                   pipeline=st.booleans())


@settings(max_examples=40, deadline=None)
@given(macro=macros, K=st.integers(1, 70), N=st.integers(1, 20), P=st.integers(1, 3),
       s=st.sampled_from([0.0, 0.3, 0.5, 0.9, 1.0]), signed=st.booleans(), seed=st.integers(0, 2**31))
def test_layer_equals_integer_matmul_and_macros(macro, K, N, P, s, signed, seed):
    rng = np.random.default_rng(seed)
    w, phi, mask = make_layer(rng, K, N, macro, s)
    comp = C.compile_layer(w, phi, mask, macro)
    assert np.array_equal(C.decompile(comp), w)
    assert np.array_equal(L.weights_of(comp), w)
    x = rng.integers(-128, 128, (P, K)) if signed else rng.integers(0, 256, (P, K))
    x[:, rng.random(K) < 0.3] = 0
    res = L.run_layer(x, comp, signed)
    ref = x.astype(np.int64) @ w.astype(np.int64)
    assert np.array_equal(res.out, ref)
    out, cycles = through_macros(x, comp, signed)
    assert np.array_equal(out, ref)
    assert cycles == res.cycles_dbpim == res.tile_cycles.sum()


def test_tile_mapping_follows_design(rng):
    macro = MacroConfig(n_comp=4, n_col=4, n_row=2, phi_max=2, lanes=1)
    w, phi, mask = make_layer(rng, 30, 6, macro, 0.3)
    comp = C.compile_layer(w, phi, mask, macro)
    for t in comp.tiles:
        kept = np.nonzero(mask[:, t.group])[0]
        e = np.arange(kept.size)
        sel = e // macro.capacity_rows == t.row_tile
        ee = e[sel] % macro.capacity_rows
        assert np.array_equal(t.rows[ee // macro.n_comp, ee % macro.n_comp], kept[sel])
        assert t.n_rows_used == -(-sel.sum() // macro.n_comp)
        # filters take phi adjacent columns, in order
        for s in np.nonzero(t.filters >= 0)[0]:
            cols = np.nonzero(t.col_filter == s)[0]
            assert cols.size == phi[t.filters[s]] and np.all(np.diff(cols) == 1)


def test_cycles_equal_popcount_of_row_or(rng):
    macro = load_config("small").macro
    w, phi, mask = make_layer(rng, 16, 4, macro, 0.0)
    comp = C.compile_layer(w, phi, mask, macro)
    t = comp.tiles[0]
    x = rng.integers(0, 256, 16)
    xg = M.gather(t, x)
    expect = sum(bin(int(np.bitwise_or.reduce(xg[r]))).count("1") for r in range(t.n_rows_used))
    r = M.run_macro(t, x, macro)
    assert r.compute_cycles == expect
    assert r.cycles == expect + spec.pipeline_latency(macro.pipeline)
    assert M.run_macro(t, np.zeros(16, int), macro).compute_cycles == 0


def test_dense_baseline_cycles():
    macro = load_config("paper").macro
    # 2 filters per macro (16 columns / 8 bit planes), 16 inputs per cell row, 8 cycles per row
    assert cycles.dense_cycles(256, 2, 1, macro) == 8 * 16 + spec.pipeline_latency(macro.pipeline)
    assert cycles.dense_cycles(257, 4, 3, macro) == 2 * 3 * (8 * 17 + 2 * spec.pipeline_latency(macro.pipeline))


def test_im2col_matches_direct_convolution(rng):
    x = rng.integers(0, 5, (2, 3, 6, 5))
    w = rng.integers(-3, 4, (4, 3, 3, 3))
    cols = L.im2col(x, 3, 3, stride=2, padding=1)
    Ho, Wo = L.conv_out_size(6, 3, 2, 1), L.conv_out_size(5, 3, 2, 1)
    out = (cols @ w.reshape(4, -1).T).reshape(2, Ho, Wo, 4)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    for s in range(2):
        for i in range(Ho):
            for j in range(Wo):
                patch = xp[s, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3]
                assert np.array_equal(out[s, i, j], (w * patch).sum((1, 2, 3)))


def test_compile_rejects_bad_input(rng):
    macro = load_config("small").macro
    w, phi, mask = make_layer(rng, 8, 4, macro, 0.0)
    with pytest.raises(ValueError, match="phi: must have shape"):
        C.compile_layer(w, phi[:3], mask, macro)
    with pytest.raises(ValueError, match=r"phi: values must lie in \[0, 2\]"):
        C.compile_layer(w, np.full(4, 3), mask, macro)
    with pytest.raises(ValueError, match="mask: must have shape"):
        C.compile_layer(w, phi, mask[:, :1].repeat(3, 1), macro)
    bad = w.copy()
    bad[0, 0] = 85  # 4 digits
    with pytest.raises(ValueError, match="has 4 non-zero CSD digits"):
        C.compile_layer(bad, phi, mask, macro)
    m2 = mask.copy()
    m2[0, 0] = False
    if w[0, 0] != 0:
        with pytest.raises(ValueError, match="pruned weights"):
            C.compile_layer(w, phi, m2, macro)
    with pytest.raises(TypeError, match="macro: must be a MacroConfig"):
        C.compile_layer(w, phi, mask, {"n_comp": 4})


def test_run_layer_rejects_bad_input(rng):
    macro = load_config("small").macro
    w, phi, mask = make_layer(rng, 8, 4, macro, 0.0)
    comp = C.compile_layer(w, phi, mask, macro)
    with pytest.raises(ValueError, match=r"x: values must lie in \[0, 255\]"):
        L.run_layer(np.full((1, 8), -1), comp)
    with pytest.raises(ValueError, match=r"x: values must lie in \[-128, 127\]"):
        L.run_layer(np.full((1, 8), 200), comp, signed=True)
    with pytest.raises(ValueError, match=r"x: must have shape \(P, 8\)"):
        L.run_layer(np.zeros((1, 7), int), comp)
    with pytest.raises(ValueError, match="NaN"):
        L.run_layer(np.full((1, 8), np.nan), comp)
    t = comp.tiles[0]
    with pytest.raises(ValueError, match="configured array"):
        M.run_macro(t, np.zeros(8, int), load_config("paper").macro)


def test_run_conv2d_matches_direct(rng):
    macro = load_config("small").macro
    w, phi, mask = make_layer(rng, 3 * 3 * 3, 5, macro, 0.4)
    comp = C.compile_layer(w, phi, mask, macro)
    x = rng.integers(0, 256, (2, 3, 5, 5))
    out, res = L.run_conv2d(x, comp, (3, 3), 1, 1)
    wt = w.T.reshape(5, 3, 3, 3).astype(np.int64)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    ref = np.zeros((2, 5, 5, 5), np.int64)
    for i in range(5):
        for j in range(5):
            ref[:, :, i, j] = np.einsum("scij,ncij->sn", xp[:, :, i:i + 3, j:j + 3], wt)
    assert np.array_equal(out, ref)


@pytest.mark.parametrize("w_value, x_value, signed", [(127, 255, False), (-128, 255, False), (-128, -128, True)])
def test_run_layer_beyond_int32_is_exact_int64(w_value, x_value, signed):
    """K = 70000 worst cases exceed int32 (2**31 - 1); the result is exact and int64 (docs/design.md §9)."""
    macro = load_config("paper").macro
    K = 70000
    w = np.full((K, 1), w_value, np.int8)
    phi = np.array([int(csd.nnz(np.array(w_value)))], np.uint8)
    comp = C.compile_layer(w, phi, np.ones((K, 1), bool), macro)
    res = L.run_layer(np.full((2, K), x_value), comp, signed=signed)
    assert res.out.dtype == np.int64
    assert res.out.tolist() == [[K * w_value * x_value]] * 2  # 127 * 255 * 70000 = 2,266,950,000
    x = np.full((1, K, 1, 1), x_value)
    out, _ = L.run_conv2d(x, comp, (1, 1), signed=signed)
    assert out.dtype == np.int64 and int(out[0, 0, 0, 0]) == K * w_value * x_value


def test_tile_arrays_round_trip():
    """Tile.to_arrays / from_arrays (one tile, and stacked as in the artifact) give the same tile back."""
    from dbpim.model.compile import TILE_ARRAYS, CompiledLayer, Tile
    macro = MacroConfig(n_comp=4, n_col=4, n_row=4, phi_max=2, lanes=2)
    rng = np.random.default_rng(0)
    K, N = 40, 6
    from dbpim.model.quant import prune_quantize
    q = prune_quantize(rng.normal(0, 30, (K, N)), macro, 0.3, scale=1.0)
    w, phi, mask = q.w, q.phi, q.mask
    comp = C.compile_layer(w, phi, mask, macro)
    for t in comp.tiles:
        a = t.to_arrays()
        assert set(a) == set(TILE_ARRAYS) and all(a[k].dtype == TILE_ARRAYS[k][0] for k in a)
        back = Tile.from_arrays(a)
        for k in ("cells", "idx", "sign", "rows", "col_filter", "filters"):
            assert np.array_equal(getattr(back, k), getattr(t, k))
        assert (back.n_rows_used, back.group, back.row_tile, back.col_tile) == \
            (t.n_rows_used, t.group, t.row_tile, t.col_tile)
    st = comp.stacked()
    again = CompiledLayer.from_stacked(K, N, macro, comp.group_size, phi, mask, st)
    assert [b.to_arrays()["meta"].tolist() for b in again.tiles] == [t.to_arrays()["meta"].tolist() for t in comp.tiles]
    empty = CompiledLayer(K=K, N=N, macro=macro, group_size=comp.group_size, phi=phi, mask=mask).stacked()
    assert empty["tiles_cells"].shape == (0, 4, 4, 4) and empty["tiles_meta"].shape == (0, 4)

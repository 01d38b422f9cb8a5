"""Core-level timing (model.core_timing) against the block twins and its monotonicity in sim_bench;
filters packed across groups (model.compile.pack_filters)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from dbpim.model import blocks, core_timing as ct, fta, prune
from dbpim.model import compile as C
from dbpim.model.config import MacroConfig, load_config
from dbpim.model.layer import run_layer
from dbpim.model.macro import run_macro
from dbpim.model.spec import pipeline_latency
from dbpim.sim_bench import perf, synth


@settings(max_examples=60, deadline=None)
@given(K=st.integers(1, 90), n_comp=st.sampled_from([2, 4, 8, 16]), lanes_log=st.integers(0, 4),
       seed=st.integers(0, 2**31))
def test_switch_beats_equal_the_switch_twin(K, n_comp, lanes_log, seed):
    """One vector's beats = the beats model.blocks.switch emits over the windows of its kept rows."""
    lanes = min(n_comp, 1 << lanes_log)
    rng = np.random.default_rng(seed)
    keep = rng.random(K) < rng.random()
    rows = np.nonzero(keep)[0]
    seg = rows // 37  # arbitrary segments (row tiles) of consecutive rows
    nseg = int(seg.max(initial=-1)) + 1
    got = ct.switch_beats(rows, seg, nseg, n_comp, lanes)
    for s in range(nseg):
        want = 0
        for w0 in range(0, K, n_comp):
            win = np.arange(w0, min(K, w0 + n_comp))
            m = np.isin(win, rows[seg == s])
            if m.any():  # windows without a kept row are not fetched
                want += len(blocks.switch(np.zeros(m.size, int), m.astype(int), lanes))
        assert got[s] == want, (s, seed)


def test_round_compute_is_per_vector_macro_cycles(rng):
    """With M = 1 every round is one vector and costs exactly run_macro's (= the RTL's) cycles."""
    macro = load_config("paper").macro
    W = rng.normal(0, 1, (300, 8))
    q = _quant(W, macro, 0.3)
    comp = C.compile_layer(q[0], q[1], q[2], macro)
    x = (rng.integers(0, 256, (5, 300)) * (rng.random((5, 300)) < 0.4)).astype(np.uint8)
    t = comp.tiles[0]
    kept = np.nonzero(comp.mask[:, t.group])[0]
    from dbpim.model.cycles import cell_row_popcounts_t, row_tile_sums
    pc = cell_row_popcounts_t(x, [kept], macro.n_comp)[0]  # (cell rows, P)
    vec = row_tile_sums(pc.T.astype(np.int64), macro.n_row)[:, t.row_tile] + pipeline_latency(macro.pipeline)
    assert list(ct.round_compute(vec, 1)) == [run_macro(t, xp, macro).cycles for xp in x]
    assert list(ct.round_compute(vec, 2)) == [max(vec[0:2]), max(vec[2:4]), vec[4]]


def _quant(W, macro, sparsity):
    G = macro.group_size
    mask = prune.block_mask(W, G, sparsity)
    scale = np.abs(W).max(0) / 127
    w, phi = fta.quantize(W / scale, prune.expand_mask(mask, W.shape[1], G), phi_max=macro.phi_max)
    return w, phi, mask


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**31), sparsity=st.sampled_from([0.0, 0.5, 0.75]))
def test_fewer_lanes_or_less_bandwidth_only_add_cycles(seed, sparsity):
    cfg = load_config("paper")
    layers = synth.resnet18("cifar", seed=seed)[2:4]  # one 3x3 conv (+ its relu)
    spec = synth.specs_of(layers, cfg.macro, sparsity=sparsity)[0]
    base = perf.evaluate_layer(spec, cfg)
    slower = [dataclasses.replace(cfg, macro=dataclasses.replace(cfg.macro, lanes=4)),
              dataclasses.replace(cfg, system=dataclasses.replace(cfg.system, dram_bytes_per_cycle=2.0))]
    # A smaller output buffer is not on this list: it cuts a layer into more STARTs, and the jobs of a
    # smaller START can be dealt to the cores more evenly (seed 550 at sparsity 0.75: 4 KiB gives 64 STARTs
    # and 56,621 DB-PIM cycles against 4 and 58,025). test_output_buffer_capacity_splits_pixels_and_reloads
    # checks that axis.
    faster = dataclasses.replace(cfg, system=dataclasses.replace(cfg.system, dram_bytes_per_cycle=1e12))
    for c in slower:
        lp = perf.evaluate_layer(spec, c)
        for k in perf.MECHANISMS:
            assert lp.mech[k].wall_cycles >= base.mech[k].wall_cycles, (k, c.system, c.macro.lanes)
            assert lp.mech[k].macro_cycles == base.mech[k].macro_cycles
    lp = perf.evaluate_layer(spec, faster)
    for k in perf.MECHANISMS:
        assert lp.mech[k].wall_cycles <= base.mech[k].wall_cycles, k


def test_switch_binds_at_fewer_lanes_and_not_the_dense_baseline():
    cfg = load_config("paper")
    spec = synth.specs_of(synth.resnet18("cifar")[2:4], cfg.macro, sparsity=0.5)[0]
    narrow = dataclasses.replace(cfg, macro=dataclasses.replace(cfg.macro, lanes=2))
    a, b = perf.evaluate_layer(spec, cfg), perf.evaluate_layer(spec, narrow)
    assert b.mech["dbpim"].wall_cycles > 1.5 * a.mech["dbpim"].wall_cycles
    assert b.mech["dense"].wall_cycles == a.mech["dense"].wall_cycles  # the baseline has no switch


def test_output_buffer_capacity_splits_pixels_and_reloads():
    cfg = load_config("paper")
    spec = synth.specs_of(synth.resnet18("cifar")[2:4], cfg.macro, sparsity=0.5)[0]  # K = 576: 2 row tiles
    small = dataclasses.replace(cfg, system=dataclasses.replace(cfg.system, output_buffer_kib=8))
    a, b = perf.evaluate_layer(spec, cfg), perf.evaluate_layer(spec, small)
    assert b.mech["dbpim"].psum_chunks > a.mech["dbpim"].psum_chunks >= 1
    assert b.mech["dbpim"].load_cycles > a.mech["dbpim"].load_cycles
    # every pixel run reloads the macros, from the core's tile store: off chip, each tile once per START
    assert b.mech["dbpim"].events["weight_write_byte_pj"] > a.mech["dbpim"].events["weight_write_byte_pj"]
    assert b.mech["dbpim"].weight_bytes == a.mech["dbpim"].weight_bytes


def test_deal_filter_tiles_round_robin_on_equal_work_and_longest_first_otherwise(rng):
    assert ct.deal_filter_tiles(np.full(11, 5.0), 4).tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2]
    assert ct.deal_filter_tiles([1, 1, 1, 9], 2).tolist() == [1, 1, 1, 0]  # round-robin would load core 1 with 10
    macro = load_config("paper").macro
    lat = pipeline_latency(macro.pipeline)
    got = ct.job_work([[16, 1], [16, 0]], [8, 2], [256, 5], macro, 4)
    row = [16 * macro.in_bits + lat + max(macro.in_bits + lat, macro.n_col), 16 * macro.in_bits + lat]
    assert got.tolist() == [[64 * row[0], max(2 * row[0], 40)], [64 * row[1], 2 * row[1]]]
    assert ct.job_work([[1]], [16], [256], macro, 4).tolist() == [[256 * 16]]  # the result stream binds
    for _ in range(200):
        w, cores = rng.integers(1, 100, int(rng.integers(1, 40))), int(rng.integers(1, 9))
        core = ct.deal_filter_tiles(w, cores)
        busy = np.bincount(core, weights=w, minlength=cores)
        assert core.min() >= 0 and core.max() < cores
        assert busy.max() <= w.sum() / cores + (1 - 1 / cores) * w.max() + 1e-9  # list scheduling's bound
        if w.size <= cores:
            assert busy.max() == w.max()  # one filter tile a core at most


def test_deal_jobs_splits_pixel_runs_only_where_it_evens_the_cores():
    w = np.array([[10, 10, 10, 10], [10, 10, 10, 10], [1, 1, 1, 1], [1, 1, 1, 1]])
    core = ct.deal_jobs(w, 4)  # whole filter tiles: 40, 40, 4, 4; cut into shares: 22 each
    busy = np.bincount(core.ravel(), weights=w.ravel(), minlength=4)
    assert busy.max() < 40 and np.all(np.diff(core.ravel()) >= 0)  # consecutive shares in mapping order
    even = np.full((8, 4), 7)
    assert np.array_equal(ct.deal_jobs(even, 4), np.repeat(np.arange(8) % 4, 4).reshape(8, 4))  # whole tiles
    assert np.array_equal(ct.deal_jobs(w[:3], 4), np.repeat(ct.deal_filter_tiles(w[:3].sum(1), 4)[:, None], 4, 1))
    for seed in range(50):
        r = np.random.default_rng(seed)
        w = r.integers(0, 50, (int(r.integers(1, 20)), int(r.integers(1, 6))))
        cores = int(r.integers(1, 9))
        core = ct.deal_jobs(w, cores)
        busy = np.bincount(core.ravel(), weights=w.ravel(), minlength=cores)
        whole = np.bincount(ct.deal_filter_tiles(w.sum(1), cores), weights=w.sum(1), minlength=cores)
        assert core.shape == w.shape and busy.max() <= whole.max()


def test_a_start_fetches_each_tile_once_for_its_pixel_runs():
    """A filter tile's pixel runs run in one START: the first fetches its tiles from off chip into the core's
    tile store, the others load them from there (write port only): off-chip bytes per filter tile are one
    fetch; shorter pixel runs (a smaller output buffer) add port loads, no off-chip bytes."""
    cfg = load_config("paper")
    spec = synth.specs_of(synth.resnet18("cifar")[2:4], cfg.macro, sparsity=0.5)[0]  # 1024 pixels: 4 runs
    lp = perf.evaluate_layer(spec, cfg, ("dense", "dbpim"))
    for k in ("dense", "dbpim"):
        mk = lp.mech[k]
        assert mk.psum_chunks == 4
        per_fetch = mk.events["weight_load_byte_pj"] / mk.psum_chunks  # every pixel run loads every tile
        assert mk.weight_bytes == pytest.approx(per_fetch, rel=1e-12), k
        assert mk.events["dram_byte_pj"] == mk.weight_bytes
        assert mk.dram_floor_cycles == mk.weight_bytes / cfg.system.dram_bytes_per_cycle


# ----------------------------------------------------------------------------- filters per macro follow phi

def test_phi_one_filters_fill_a_macro_across_identical_groups(rng):
    macro = load_config("paper").macro
    K, N = 40, 32
    w = rng.choice([-2, -1, 1, 2, 4], size=(K, N)).astype(np.int8)  # every weight has one digit
    phi = np.ones(N, np.uint8)
    mask = np.ones((K, N // macro.group_size), bool)  # 0 % sparsity: every group keeps every row
    comp = C.compile_layer(w, phi, mask, macro)
    assert len(comp.tiles) == 2 and all(t.n_filters == macro.n_col for t in comp.tiles)
    assert C.mapping_error(comp) is None
    x = rng.integers(0, 256, (3, K))
    r = run_layer(x, comp)
    assert np.array_equal(r.out, x @ w.astype(np.int64))
    assert r.cycles_dbpim == sum(run_macro(t, xp, macro).cycles for t in comp.tiles for xp in x)
    # groups that keep different rows are not packed together
    mask[0, 1] = False
    w2 = w.copy()
    w2[0, 8:16] = 0
    assert len(C.compile_layer(w2, phi, mask, macro).tiles) == 3


@settings(max_examples=60, deadline=None)
@given(N=st.integers(1, 40), G=st.integers(1, 8), n_col=st.sampled_from([2, 4, 8, 16]), seed=st.integers(0, 2**31))
def test_packing_never_takes_more_tiles_than_group_by_group(N, G, n_col, seed):
    rng = np.random.default_rng(seed)
    phi = rng.integers(0, 3, N)
    phi = np.minimum(phi, n_col)
    ng = -(-N // G)
    mask = np.ones((5, ng), bool)
    mask[:, rng.random(ng) < 0.3] = False  # some empty groups
    packed = C.pack_filters(phi, mask, G, n_col)
    per_group = sum(len(C.pack_filters(phi, mask * (np.arange(ng) == g), G, n_col)) for g in range(ng))
    assert len(packed) <= per_group
    seen = np.concatenate([ft.filters for ft in packed]) if packed else np.zeros(0, int)
    want = [f for f in range(N) if phi[f] > 0 and mask[:, f // G].any()]
    assert list(seen) == want
    for ft in packed:
        assert ft.cols == sum(phi[ft.filters]) <= n_col


def test_perf_model_counts_the_packed_tiles(rng):
    """The model's macro-cycles and tile count equal run_layer's on a layer whose groups were packed together."""
    cfg = load_config("paper")
    m = cfg.macro
    W = rng.normal(0, 1, (72, 48))
    w, phi, mask = _quant(W, m, 0.0)
    phi[:] = 1
    w = fta.approximate(W / (np.abs(W).max(0) / 127), phi[None, :]).astype(np.int8)
    comp = C.compile_layer(w, phi, mask, m)
    spec = perf.LayerSpec(name="l", kind="linear", K=72, N=48, G=m.group_size, phi=phi, mask=mask, w=w,
                          bits=rng.integers(0, 256, (4, 72)).astype(np.uint8), samples=1, vectors=4)
    lp = perf.evaluate_layer(spec, cfg)
    r = run_layer(spec.bits, comp)
    assert lp.mech["dbpim"].tiles == len(comp.tiles) == 3
    assert lp.mech["dbpim"].macro_cycles_total == r.cycles_dbpim


def test_artifact_validates_the_mapping(tmp_path, rng):
    from dbpim.model import artifact
    from dbpim.model.artifact import ArtifactError, LayerRecord
    macro = load_config("small").macro
    W = rng.normal(0, 1, (20, 6))
    w, phi, mask = _quant(W, macro, 0.0)
    comp = C.compile_layer(w, phi, mask, macro)
    rec = LayerRecord(name="fc", kind="linear", in_shape=(20,), out_shape=(6,), w=w,
                      scale=np.ones(6, np.float32), compiled=comp)
    d = artifact.save(tmp_path / "a", "net", macro, [rec])
    assert artifact.load(d).layers[0].compiled.tiles[0].rows.shape == (macro.n_row, macro.n_comp)
    f = next((d / "layers").glob("*.npz"))
    z = dict(np.load(f))
    z["tiles_meta"] = z["tiles_meta"].copy()
    z["tiles_meta"][0, 3] += 1  # n_rows_used
    np.savez(f, **z)
    artifact.reseal(d)  # past the digest check: the mapping check is what is tested
    with pytest.raises(ArtifactError, match="n_rows_used"):
        artifact.load(d)


def test_peak_throughput_from_the_configuration():
    cfg = load_config("paper")
    # 32 macros x 16 x 16 / 8 cycles = 32 MACs per cycle per macro at phi = 1
    assert perf.peak_tops(cfg, 1) == pytest.approx(2 * 32 * 32 * 500e6 / 1e12)
    assert perf.peak_tops(cfg, 2) == pytest.approx(perf.peak_tops(cfg, 1) / 2)
    g = perf.peak_geometry(cfg, 2.48)
    assert g["mac_per_cycle_per_macro"] == pytest.approx(77.5)
    assert g["ours_mac_per_cycle_per_macro"] == 32
    assert MacroConfig(n_comp=16, n_col=40, n_row=16).n_col * 16 / 8 >= 77.5


def test_two_out_banks_hide_result_streams_for_every_mechanism():
    """out_banks 2 (the dense baseline runs on the same core): a filter tile's results stream while the next
    job computes; the wall cycles and the core's own count of every mechanism never grow, shrink for the
    hybrid and the dense baseline alike, the macro cycles stay; with tile_banks 2 as well, never slower."""
    cfg = load_config("paper")
    spec = synth.specs_of(synth.resnet18("cifar")[2:4], cfg.macro, sparsity=0.5)[0]
    a, b = perf.evaluate_layer(spec, cfg), perf.evaluate_layer(spec, cfg.replace(core={"out_banks": 2}))
    for k in perf.MECHANISMS:
        assert b.mech[k].wall_cycles <= a.mech[k].wall_cycles, k
        assert np.all(b.mech[k].core_cycles <= a.mech[k].core_cycles), k
        assert b.mech[k].macro_cycles == a.mech[k].macro_cycles, k
    for k in ("dense", "dbpim"):
        assert b.mech[k].wall_cycles < a.mech[k].wall_cycles, k
        assert np.all(b.mech[k].core_cycles < a.mech[k].core_cycles), k
    t2 = cfg.replace(core={"tile_banks": 2})
    c, d = perf.evaluate_layer(spec, t2), perf.evaluate_layer(spec, t2.replace(core={"out_banks": 2}))
    for k in perf.MECHANISMS:
        assert d.mech[k].wall_cycles <= c.mech[k].wall_cycles, k


def test_two_tile_banks_hide_off_chip_loads_for_every_mechanism():
    """tile_banks 2 (the dense baseline runs on the same core): the wall cycles of every mechanism never grow
    and shrink where off-chip fetches stretch the tile loads; the core's own count (tiles preloaded) and the
    macro cycles stay."""
    cfg = load_config("paper")
    spec = synth.specs_of(synth.resnet18("cifar")[2:4], cfg.macro, sparsity=0.5)[0]
    slow = cfg.replace(system={"dram_bytes_per_cycle": 4.0})
    for c in (cfg, slow):
        a, b = perf.evaluate_layer(spec, c), perf.evaluate_layer(spec, c.replace(core={"tile_banks": 2}))
        for k in perf.MECHANISMS:
            assert b.mech[k].wall_cycles <= a.mech[k].wall_cycles, k
            assert b.mech[k].macro_cycles == a.mech[k].macro_cycles, k
            assert np.array_equal(b.mech[k].core_cycles, a.mech[k].core_cycles), k
    a, b = perf.evaluate_layer(spec, slow), perf.evaluate_layer(spec, slow.replace(core={"tile_banks": 2}))
    for k in ("dense", "dbpim"):
        assert b.mech[k].wall_cycles < a.mech[k].wall_cycles, k


def test_in_windows_deliver_a_round_at_once_for_every_mechanism():
    """core.in_windows 4 on the paper core (4 macros: a round's vectors in one group; the dense baseline runs on
    the same core): the wall cycles and the core's own count of every mechanism never grow, the hybrid's and
    the dense baseline's shrink, the delivery term shrinks, the macro cycles stay."""
    cfg = load_config("paper").replace(core={"tile_banks": 2, "out_banks": 2})
    spec = synth.specs_of(synth.resnet18("cifar")[2:4], cfg.macro, sparsity=0.5)[0]
    a, b = perf.evaluate_layer(spec, cfg), perf.evaluate_layer(spec, cfg.replace(core={"in_windows": 4}))
    for k in perf.MECHANISMS:
        assert b.mech[k].wall_cycles <= a.mech[k].wall_cycles, k
        assert np.all(b.mech[k].core_cycles <= a.mech[k].core_cycles), k
        assert b.mech[k].macro_cycles == a.mech[k].macro_cycles, k
    for k in ("dense", "dbpim"):
        assert b.mech[k].wall_cycles < a.mech[k].wall_cycles, k
        assert np.all(b.mech[k].cycle_terms["delivery"] < a.mech[k].cycle_terms["delivery"]), k


def test_input_buffer_energy_counts_a_bank_word_per_lane_read():
    """Every core's window generator reads its own copy of the input buffer (hw.window): per pixel and filter
    tile, ``n_comp`` lanes read each fetched window, each lane its bank's whole word of ``n_comp`` inputs. The
    dense baseline fetches every window once; DB-PIM fetches the windows holding kept rows, in each row tile."""
    cfg = load_config("paper")
    m = cfg.macro
    spec = synth.specs_of(synth.resnet18("cifar")[2:4], m, sparsity=0.5)[0]
    lp = perf.evaluate_layer(spec, cfg, ("dense", "dbpim"))
    word = m.n_comp * m.in_bits / 8
    per_tile = -(-spec.K // m.n_comp) * m.n_comp * word  # every window of K, per pixel
    dense, hybrid = lp.mech["dense"], lp.mech["dbpim"]
    assert m.capacity_rows % m.n_comp == 0  # row tiles cut at window bounds: every window fetched once
    assert dense.events["input_buffer_byte_pj"] == spec.vectors * dense.filter_tiles * per_tile
    # a window whose kept rows straddle two row tiles is fetched by both: at most one more window a row tile
    bound = spec.vectors * (hybrid.filter_tiles * per_tile + hybrid.tiles * m.n_comp * word)
    assert 0 < hybrid.events["input_buffer_byte_pj"] <= bound
    for mk in (dense, hybrid):
        assert mk.energy["input buffer"] == mk.events["input_buffer_byte_pj"] * cfg.energy.input_buffer_byte_pj

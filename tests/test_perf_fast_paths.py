"""The performance model's fast paths against straightforward references (the same numbers, faster).

``sim_bench.perf`` computes the core timing of every mechanism of a layer and every core's jobs at once,
once per pixel-run length when every vector takes the same cycles, and packs every
core's STARTs in one call (one step per run of a filter tile's pixel runs, or every job at once when
every core's filter tiles increase), the mechanisms of one mapping sharing theirs;
``model.core_timing.deal_filter_tiles`` keeps the cores'
work in a heap; ``model.core_timing.pass_after`` takes the last round along
the round axis; ``model.cycles`` counts ones with ``np.bitwise_count`` on
inputs transposed once; ``model.core_timing.delivery_and_windows`` finds a row
tile's windows once. Each is held here to a plain version on random layers.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dbpim.model import core_timing as ct
from dbpim.model.config import load_config
from dbpim.model.cycles import cell_row_popcounts_flat, inputs_by_row
from dbpim.model.spec import CORE_LATENCY
from dbpim.sim_bench import perf, synth


def _pack_job_by_job(job_ft, ft_row_tiles, ft_windows, core):
    """``model.core_timing.pack_segments`` of one core as first written: one job at a time."""
    rts, wins = list(np.asarray(ft_row_tiles).tolist()), list(np.asarray(ft_windows).tolist())
    D, T, W = core.descriptors, core.tile_slots, core.mask_windows
    out, seg, n_desc, held, n_slots, n_masks = [], 0, 0, set(), 0, 0
    for f in np.asarray(job_ft).tolist():
        nrt, nwin = rts[f], wins[f]
        new = f not in held
        if n_desc + nrt > D or (new and (n_slots + nrt > T or n_masks + nwin > W)):
            seg, n_desc, held, n_slots, n_masks = seg + 1, 0, set(), 0, 0
            new = True
        if new:
            held.add(f)
            n_slots += nrt
            n_masks += nwin
        n_desc += nrt
        out.append(seg)
    return np.array(out, np.int64)


def _reference_core_timing(cfg, vec, delivery, port, load, valid, ft_run, ft_out, ft_windows, job_core, copies, run,
                           Pp):
    """``sim_bench.perf._core_timing`` as first written: every pixel run's pixels gathered, core by core, job by job."""
    m, M, C = cfg.macro, cfg.system.macros_per_core, cfg.system.cores
    n_runs, S, nrt = vec.shape[:3]
    p0, npx, copy = perf._pixel_ranges(Pp, copies, run)
    width = int(npx.max())
    pix = np.minimum(p0[:, None] + np.arange(width)[None, :], Pp - 1)  # (L, width)
    inside = np.arange(width)[None, :] < npx[:, None]
    v = np.broadcast_to(vec, vec.shape[:3] + (Pp,)) if vec.shape[-1] == 1 else vec
    g = np.where(inside, v[..., pix], 0)  # (runs, S, nrt, L, width)
    rc = ct.round_compute(g, M)
    m_r = ct.round_sizes(npx, M, rc.shape[-1])  # (L, R)
    ok = valid[:, None, :, None]
    W = cfg.core.in_windows
    after = ct.pass_after(delivery[:, None, :, None], rc, m_r, 0, m.n_col, in_windows=W)  # (runs, S, nrt, L)
    split = ct.pass_after_terms(delivery[:, None, :, None], rc, m_r, 0, m.n_col, ct.round_work(g, M), in_windows=W)
    del g
    d0 = ct.first_round_delivery(delivery[:, None, :, None], m_r, W)  # (runs, 1, nrt, L)
    banks = cfg.core.tile_banks
    overlap = ct.prefetch_overlap(after)
    # tile_banks 2: row tile rt > 0 of a pixel run is loaded during row tile rt - 1 (same START)
    prev = np.concatenate([np.zeros_like(overlap[:, :, :1]), overlap[:, :, :-1]], axis=2)
    inner = (np.arange(nrt) > 0)[None, None, :, None] & (banks == 2)

    def first_round(ld):  # (runs, S, nrt, L): B_0 of every pass, the first row tile's whole load waited
        return np.maximum(ct.exposed_load(ld[:, None, :, None], prev, inner), d0)

    b0_sys = first_round(load)
    b0_core = b0_sys if np.array_equal(load, port) else first_round(port)  # tiles preloaded
    sys_pass = np.where(ok, CORE_LATENCY["pass"] + b0_sys + after, 0).sum(2)  # (runs, S, L)
    core_pass = sys_pass if b0_core is b0_sys else np.where(ok, CORE_LATENCY["pass"] + b0_core + after, 0).sum(2)
    # the same passes split (model.core_timing.pass_terms; "dram": what the off-chip fetch adds to B_0)
    by_pass = {**{k: split[k] for k in ("compute", "lockstep", "round_floor")},
               "delivery": split["delivery"] + d0, "load": b0_core - d0, "dram": b0_sys - b0_core}
    n_pass = valid.sum(1)[:, None, None]  # passes of a pixel run: the constant terms per pass
    const = {"drain": m.n_col * n_pass, "control": CORE_LATENCY["pass"] * n_pass, "stream": 0}  # streamed per tile
    per_run = np.stack([np.broadcast_to(const[k] if k in const else np.where(ok, by_pass[k], 0).sum(2),
                                        sys_pass.shape) for k in perf._CORE_TERMS])
    del split, by_pass
    # overlap of each pixel run's last row tile: it hides the load of the next run's first row tile
    last_rt = np.maximum(valid.sum(1) - 1, 0)
    last_overlap = np.take_along_axis(overlap, last_rt[:, None, None, None], axis=2)[:, :, 0, :]  # (runs, S, L)
    stream = ft_out[:, None] * npx[None, :]  # (n_ft, L): results of a pixel run, one beat each
    n_ft = ft_run.size
    ft_rt = valid.sum(1)[ft_run]
    core_of = np.asarray(job_core)  # (n_ft, L)
    wall = np.zeros((C, S))
    core = np.zeros((C, S))
    terms = np.zeros((len(perf._CORE_TERMS), C, S), np.int64)
    t_of = {k: i for i, k in enumerate(perf._CORE_TERMS)}
    fetches = np.zeros(n_ft, np.int64)
    load_cycles = 0.0
    for c in range(C):
        f, l = np.nonzero(core_of == c)  # row-major: filter tiles in order, their pixel runs in order
        if f.size == 0:
            continue
        seg = _pack_job_by_job(f, ft_rt, ft_windows, cfg.core)
        same = np.append(False, seg[1:] == seg[:-1])
        r = ft_run[f]
        held, fetch = set(), np.zeros(f.size, bool)  # a START's first job of a filter tile fetches its tiles
        for j, key in enumerate(zip(seg.tolist(), f.tolist())):
            fetch[j] = key not in held
            held.add(key)
        np.add.at(fetches, f[fetch], 1)
        whole, ported = np.where(valid, load, 0).sum(1)[r], np.where(valid, port, 0).sum(1)[r]
        load_cycles += float(np.where(fetch, whole, ported).sum())
        # a core's jobs (filter tile x pixel run) in order: its first tile loads during the job before it
        # (tile_banks 2, same START), its results stream after it or during the next job (out_banks 2)
        parts = []
        for tot, ps, ld in ((wall, sys_pass, load), (core, core_pass, port)):
            ps = np.where(fetch, ps[r, :, l].T, core_pass[r, :, l].T)  # a held tile loads through the port
            args = (ps, np.where(fetch, ld[r, 0], port[r, 0]), d0[r, 0, 0, l], last_overlap[r, :, l].T,
                    stream[f, l], same)
            jobs = ct.job_cycles(*args, tile_banks=banks, out_banks=cfg.core.out_banks)
            tot[c] = jobs.sum(-1) + (int(seg.max()) + 1) * CORE_LATENCY["run"]
            parts.append(ct.job_terms(*args, tile_banks=banks, out_banks=cfg.core.out_banks))
        (hid_sys, exposed), (hid_core, _) = parts
        hid_port = np.minimum(hid_sys, hid_core)  # hidden port load; the off-chip part hidden beyond it
        per_job = per_run[:, r, :, l]  # advanced indices first: (J, terms, S)
        per_job[~fetch, t_of["dram"]] = 0
        terms[:, c] = per_job.sum(0)
        terms[t_of["control"], c] += (int(seg.max()) + 1) * CORE_LATENCY["run"]
        terms[t_of["stream"], c] += exposed.sum(-1)
        terms[t_of["load"], c] -= hid_port.sum(-1)
        terms[t_of["dram"], c] -= (hid_sys - hid_port).sum(-1)
    # the split must follow the formula it splits: exact below 2**50 cycles (wall is float64, the terms int64)
    if not np.allclose(terms.sum(0), wall, rtol=2.0 ** -50, atol=0):
        raise perf.PerfError(f"internal: the cycle breakdown ({terms.sum(0).max()}) does not add up to the wall "
                             f"cycles ({wall.max()}); model.core_timing.pass_terms no longer splits pass_cycles_rounds")
    busiest = wall.argmax(0)  # per sample
    cols = np.arange(S)
    loads = int(npx.size)
    rounds = terms[t_of["compute"]] + terms[t_of["lockstep"]]  # (C, S)
    return perf._Timing(wall=wall.max(0), terms={k: terms[i, busiest, cols] for k, i in t_of.items()},
                        compute=rounds.max(0), core=core.max(0), runs_per_tile=int((copy == 0).sum()),
                        load_cycles=load_cycles, stream_cycles=float(stream.sum()), loads_per_row_tile=loads,
                        fetches=fetches)


def test_pack_segments_equals_the_job_by_job_packing(rng):
    for _ in range(1000):
        F = int(rng.integers(1, 9))
        core = dataclasses.replace(load_config("small").core, descriptors=int(rng.integers(1, 40)),
                                   tile_slots=int(rng.integers(1, 20)), mask_windows=int(rng.integers(1, 30)))
        rts, wins = rng.integers(0, 12, F), rng.integers(0, 15, F)
        cores = []
        for _ in range(int(rng.integers(1, 4))):  # a core's filter tiles in runs, or in any order
            fs = rng.permutation(F)[:rng.integers(1, F + 1)] if rng.random() < 0.7 else rng.integers(0, F, 5)
            cores.append(np.repeat(fs, rng.integers(1, 9 if rng.random() < 0.5 else 60, fs.size)))
        want = [_pack_job_by_job(c, rts, wins, core) for c in cores]
        starts = np.cumsum([0] + [c.size for c in cores[:-1]])
        got = ct.pack_segments(np.concatenate(cores), rts, wins, core, starts=starts)
        assert np.array_equal(got, np.concatenate(want))
        assert np.array_equal(ct.pack_segments(cores[0], rts, wins, core), want[0])



def test_pack_segments_of_filter_tiles_in_order_equals_the_job_by_job_packing(rng):
    """Every core's filter tiles increasing (the performance model's jobs): whole runs packed at once."""
    for _ in range(400):
        F = int(rng.integers(1, 30))
        core = dataclasses.replace(load_config("small").core, descriptors=int(rng.integers(1, 40)),
                                   tile_slots=int(rng.integers(1, 20)), mask_windows=int(rng.integers(1, 30)))
        rts, wins = rng.integers(0, 12 if rng.random() < 0.3 else 4, F), rng.integers(0, 15, F)
        cores = []
        for _ in range(int(rng.integers(1, 4))):
            fs = np.sort(rng.permutation(F)[:rng.integers(1, F + 1)])
            cores.append(np.repeat(fs, rng.integers(1, 2 if rng.random() < 0.5 else 9, fs.size)))
        want = [_pack_job_by_job(c, rts, wins, core) for c in cores]
        starts = np.cumsum([0] + [c.size for c in cores[:-1]])
        assert np.array_equal(ct.pack_segments(np.concatenate(cores), rts, wins, core, starts=starts),
                              np.concatenate(want))


def _deal_plain(work, cores):
    """``model.core_timing.deal_filter_tiles`` as first written: the first core with the least work, a list scan."""
    w = np.asarray(work, np.float64).reshape(-1)
    out, busy = np.zeros(w.size, np.int64), np.zeros(cores)
    for f in np.argsort(-w, kind="stable"):
        c = int(np.argmin(busy))
        out[f] = c
        busy[c] += w[f]
    return out


def test_deal_filter_tiles_equals_the_plain_list_scheduling(rng):
    for _ in range(500):
        F, cores = int(rng.integers(1, 60)), int(rng.integers(1, 10))
        kind = rng.integers(0, 3)  # ties everywhere, a few values, any float
        w = (np.full(F, float(rng.integers(0, 3))) if kind == 0 else rng.integers(0, 4, F).astype(float) * 7
             if kind == 1 else rng.random(F) * 1e3)
        assert np.array_equal(ct.deal_filter_tiles(w, cores), _deal_plain(w, cores)), (w.tolist(), cores)


def test_popcounts_equal_a_per_vector_count(rng, monkeypatch):
    from dbpim.model import cycles
    for i in range(10):
        monkeypatch.setattr(cycles, "_CHUNK", 8 if i % 2 else 1 << 22)  # a uint64 column a chunk: several chunks
        P, K, n_comp = int(rng.integers(1, 40)), int(rng.integers(1, 50)), int(rng.choice([1, 2, 4, 16]))
        bits = (rng.integers(0, 256, (P, K)) * (rng.random((P, K)) < 0.6)).astype(np.uint8)
        sets = [np.sort(rng.choice(K, int(rng.integers(1, K + 1)), replace=False)) for _ in range(3)]
        if rng.random() < 0.5:  # one set of every row (the transposed inputs as they are when K % n_comp == 0)
            K = n_comp * int(rng.integers(1, 4)) if rng.random() < 0.7 else K
            bits, sets = bits[:, :K] if bits.shape[1] >= K else np.resize(bits, (P, K)), [np.arange(K)]
        rows = np.concatenate(sets)
        which = np.repeat(np.arange(len(sets)), [s.size for s in sets])
        counts = np.array([s.size for s in sets])
        bits = np.ascontiguousarray(bits)
        bt = inputs_by_row(bits)
        assert bt.shape == (K + 1, -(-P // 8) * 8) and not bt[K].any() and not bt[:, P:].any()
        assert np.array_equal(bt[:K, :P], bits.T)
        got = cell_row_popcounts_flat(bits, rows, which, counts, n_comp)
        assert np.array_equal(got, cell_row_popcounts_flat(bits, rows, which, counts, n_comp, by_row=bt))
        want = np.zeros(got.shape, np.uint8)
        for s, r in enumerate(sets):
            for c in range(-(-r.size // n_comp)):
                for p in range(P):
                    o = 0
                    for k in r[c * n_comp:(c + 1) * n_comp]:
                        o |= int(bits[p, k])
                    want[s, c, p] = bin(o).count("1")
        assert np.array_equal(got, want)
        extra = int(rng.integers(0, 20))  # whole row tiles asked for: zero cell rows beyond the sets' own
        padded = cell_row_popcounts_flat(bits, rows, which, counts, n_comp, by_row=bt, cell_rows=got.shape[1] + extra)
        assert padded.shape == (len(sets), got.shape[1] + extra, P)
        assert np.array_equal(padded[:, :got.shape[1]], want) and not padded[:, got.shape[1]:].any()
        both, sums = cell_row_popcounts_flat(bits, rows, which, counts, n_comp, by_row=bt, cell_rows=got.shape[1] + extra,
                                             with_sums=True)  # the vectors' sums, a word of 8 at a time
        assert np.array_equal(both, padded) and sums.dtype == np.int64
        assert np.array_equal(sums, want.sum(-1, dtype=np.int64))
        with pytest.raises(ValueError, match="rows: im2col rows"):  # gathered unchecked: refused first
            cell_row_popcounts_flat(bits, np.append(rows[:-1], K), which, counts, n_comp)


def test_delivery_and_windows_equal_a_per_window_count(rng):
    for _ in range(300):
        n_comp, lanes, n_seg = int(rng.choice([2, 4, 16])), int(rng.integers(1, 17)), int(rng.integers(1, 5))
        segs = [np.sort(rng.choice(60, int(rng.integers(0, 20)), replace=False)) for _ in range(n_seg)]
        rows = np.concatenate(segs).astype(np.int64)
        seg = np.repeat(np.arange(n_seg), [s.size for s in segs])
        dl, win = ct.delivery_and_windows(rows, seg, n_seg, n_comp, lanes)
        assert np.array_equal(dl, ct.delivery_cycles(rows, seg, n_seg, n_comp, lanes))
        assert np.array_equal(win, ct.window_counts(rows, seg, n_seg, n_comp))
        for s, r in enumerate(segs):
            kept = np.bincount(r // n_comp) if r.size else np.zeros(0, np.int64)
            kept = kept[kept > 0]
            beats = int(sum(-(-k // lanes) for k in kept))
            last = int(kept[-1] - lanes * (-(-kept[-1] // lanes) - 1)) if kept.size else 0
            rem = r.size % n_comp
            assert win[s] == kept.size
            assert dl[s] == beats + int(rem > 0 and last > rem)


def test_pass_after_equals_the_round_by_round_recurrence(rng):
    """``model.core_timing.pass_after`` (the last round taken along the round axis) and ``pass_after_and_terms``
    (the rounds read once for both) against the module docstring's recurrence, pass by pass, round by round."""
    n, R, M = 300, 6, 4
    vec = rng.integers(0, 60, (2, n, R * M)) * (rng.random((2, n, R * M)) < 0.8)  # two samples
    pixels = rng.integers(0, R * M + 1, n)  # 0: no round runs
    vec = np.where(np.arange(R * M) < pixels[:, None], vec, 0)
    C, work, m_r = ct.round_compute(vec, M), ct.round_work(vec, M), ct.round_sizes(pixels, M, R)
    deliver, stream = rng.integers(0, 20, n), rng.integers(0, 50, n) * (rng.random(n) < 0.5)
    for n_col, W in ((1, 1), (16, 1), (40, 2), (16, 4)):  # W: core.in_windows
        got = ct.pass_after(deliver, C, m_r, stream, n_col, in_windows=W)
        want = np.zeros((2, n), np.int64)
        for s in range(2):
            for i in range(n):
                ran = int((m_r[i] > 0).sum())
                after = sum(max(int(C[s, i, r]), -(-int(m_r[i, r + 1]) // W) * int(deliver[i]) + 2, n_col)
                            for r in range(ran - 1))
                want[s, i] = after + max(int(C[s, i, max(ran - 1, 0)]), n_col) + n_col + int(stream[i])
        assert np.array_equal(got, want), (n_col, W)
        both = ct.pass_after_and_terms(deliver, C, m_r, stream, n_col, work, in_windows=W)
        terms = ct.pass_after_terms(deliver, C, m_r, stream, n_col, work, in_windows=W)
        assert np.array_equal(both[0], got) and both[1].keys() == terms.keys()
        assert all(np.array_equal(both[1][k], terms[k]) for k in terms)


def _random_specs(rng, macro):
    layers = []
    for i in range(3):
        cin, cout, k = int(rng.integers(1, 7)), int(rng.integers(2, 30)), int(rng.choice([1, 3]))
        H, S = int(rng.integers(k, 12)), int(rng.integers(1, 3))
        W = rng.normal(0, 1, (cin * k * k, cout)).astype(np.float32)
        x = (rng.integers(0, 256, (S, cin, H, H)) * (rng.random((S, cin, H, H)) < 0.5)).astype(np.uint8)
        layers.append(synth.FloatLayer(name=f"l{i}", kind="conv2d", W=W, x=x, kernel=(k, k), stride=1,
                                       padding=int(k // 2)))
    return synth.specs_of(layers, macro, sparsity=float(rng.uniform(0.2, 0.8)))


@pytest.mark.parametrize("tile_banks,out_banks", [(1, 1), (2, 1), (1, 2), (2, 2)])
def test_core_timing_equals_the_straightforward_reference(rng, monkeypatch, tile_banks, out_banks):
    base = load_config("small")
    for _ in range(3):
        cfg = dataclasses.replace(
            base, core=dataclasses.replace(base.core, tile_banks=tile_banks, out_banks=out_banks,
                                           out_pixels=int(rng.choice([4, 8, 16, 64])),
                                           in_windows=int(rng.choice([1, base.system.macros_per_core]))),
            system=dataclasses.replace(base.system, cores=int(rng.integers(1, 5)),
                                       replicate_idle_cores=bool(rng.random() < 0.5),
                                       dram_bytes_per_cycle=float(rng.choice([0.5, 8.0]))))
        batch = int(rng.integers(1, 3))
        for spec in _random_specs(rng, cfg.macro):
            got = perf.evaluate_layer(spec, cfg, batch=batch)
            with monkeypatch.context() as mp:
                mp.setattr(perf, "_core_timings", lambda cfg, reqs: [_reference_core_timing(cfg, *r) for r in reqs])
                want = perf.evaluate_layer(spec, cfg, batch=batch)
            for k in perf.MECHANISMS:
                _same_mech(got.mech[k], want.mech[k], k)


def _group_runs_plain(mask):
    """``model.compile.group_runs`` group by group: a run goes on while the next group keeps the same rows."""
    m = np.asarray(mask, bool)
    runs = []
    for g in range(m.shape[1]):
        if not m[:, g].any():
            continue
        if runs and runs[-1][1] == g and np.array_equal(m[:, g], m[:, g - 1]):
            runs[-1][1] = g + 1
        else:
            runs.append([g, g + 1])
    return [tuple(r) for r in runs]


def test_group_run_bounds_equal_a_group_by_group_scan(rng):
    from dbpim.model.compile import group_run_bounds, group_runs
    for _ in range(300):
        K, ng = int(rng.integers(1, 12)), int(rng.integers(0, 12))
        base = rng.random((K, max(ng, 1))) < rng.uniform(0, 1)
        mask = base[:, rng.integers(0, max(ng, 1), ng)] if rng.random() < 0.5 else rng.random((K, ng)) < 0.5
        mask = np.sort(mask, axis=1) if rng.random() < 0.3 else mask  # long runs of equal groups
        want = _group_runs_plain(mask)
        for m in (mask, np.ascontiguousarray(mask.T).T):  # C-contiguous and the transpose of one (sim_bench.perf)
            g0, g1 = group_run_bounds(m)
            assert g0.dtype == g1.dtype == np.int64 and list(zip(g0.tolist(), g1.tolist())) == want, mask.tolist()
            assert group_runs(m) == want


def _same_mech(a, b, where):
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, dict):
            assert x.keys() == y.keys() and all(np.array_equal(x[t], y[t]) for t in x), (where, f.name)
        else:
            assert np.array_equal(x, y), (where, f.name, x, y)


def test_network_timing_layers_of_one_shape_together_equals_each_layer_alone(rng, monkeypatch):
    """``evaluate_network`` times the layers of one request shape in one core-timing call: each as alone."""
    cfg = load_config("small")
    cfg = dataclasses.replace(cfg, system=dataclasses.replace(cfg.system, cores=int(rng.integers(1, 5)),
                                                              replicate_idle_cores=bool(rng.random() < 0.5)))
    layers = []
    for i in range(6):  # pairs of one shape (the same weights, different inputs), and a SIMD layer between
        if i % 2 == 0:
            cin, cout, k, H = int(rng.integers(1, 7)), int(rng.integers(2, 30)), int(rng.choice([1, 3])), \
                int(rng.integers(3, 10))
            W = rng.normal(0, 1, (cin * k * k, cout)).astype(np.float32)
        x = (rng.integers(0, 256, (2, cin, H, H)) * (rng.random((2, cin, H, H)) < 0.5)).astype(np.uint8)
        layers.append(synth.FloatLayer(name=f"l{i}", kind="conv2d", W=W, x=x, kernel=(k, k), stride=1,
                                       padding=int(k // 2)))
        layers.append(synth.FloatLayer(name=f"r{i}", kind="simd", W=None, x=None, simd_ops=7, op="relu"))
    specs = synth.specs_of(layers, cfg.macro, sparsity=float(rng.uniform(0.2, 0.8)))
    calls = []
    timings = perf._core_timings
    monkeypatch.setattr(perf, "_core_timings", lambda c, reqs: calls.append(len(reqs)) or timings(c, reqs))
    monkeypatch.setattr(perf, "_NETWORK_WINDOW", int(rng.choice([3, 64])))
    for batch in (1, 2):
        calls.clear()
        net = perf.evaluate_network(specs, cfg, batch=batch)
        if perf._NETWORK_WINDOW > len(specs):  # each pair of one shape (the same mappings) in one call
            assert len(calls) <= sum(s.mapped for s in specs) // 2, calls
        for spec, got in zip(specs, net.layers):
            want = perf.evaluate_layer(spec, cfg, batch=batch)
            assert got.mech.keys() == want.mech.keys() and got.simd_cycles == want.simd_cycles
            for k in got.mech:
                _same_mech(got.mech[k], want.mech[k], (spec.name, k, batch))


def test_round_work_equals_int64_round_sums(rng):
    """``round_work`` sums integer cycles in their own dtype into int64: the int64 sums of the rounds."""
    for dtype in (np.int16, np.uint8, np.int64, np.uint64, np.float64, bool):
        P, M = int(rng.integers(1, 30)), int(rng.integers(1, 5))
        v = rng.integers(0, 200, (3, P)).astype(dtype)
        want = np.zeros((3, -(-P // M)), np.int64)
        for r in range(want.shape[1]):
            want[:, r] = np.asarray(v, np.int64)[:, r * M:(r + 1) * M].sum(-1)
        got = ct.round_work(v, M)
        assert got.dtype == np.int64 and np.array_equal(got, want), dtype


def test_cell_row_sums_equal_a_bincount_over_row_positions(rng):
    for _ in range(200):
        n_comp, n_rows = int(rng.choice([1, 3, 16])), rng.integers(1, 40, int(rng.integers(1, 6)))
        values = rng.integers(0, 100, int(n_rows.sum())).astype(np.int32)
        cell_rows = int(-(-n_rows.max(initial=0) // n_comp)) + int(rng.integers(0, 3))
        run = np.repeat(np.arange(n_rows.size), n_rows)
        pos = np.arange(run.size) - np.repeat(np.cumsum(n_rows) - n_rows, n_rows)
        want = np.bincount(run * cell_rows + pos // n_comp, weights=values,
                           minlength=n_rows.size * cell_rows).reshape(n_rows.size, cell_rows)
        got = perf._cell_row_sums(values, n_rows, n_comp, cell_rows)
        assert got.dtype == want.dtype and np.array_equal(got, want), (n_rows.tolist(), n_comp)


def test_round_means_equal_an_elementwise_ceiling_division(rng):
    """``model.core_timing._round_means`` divides the whole rounds by one number (a shift for a power of two) and
    the shorter ones again: ``ceil(W_r / M_r)`` of every round run, as an element-wise division."""
    for _ in range(200):
        M, n, R = int(rng.integers(1, 9)), int(rng.integers(1, 20)), int(rng.integers(1, 7))
        m_r = ct.round_sizes(rng.integers(0, R * M + 1, n), M, R)  # whole rounds, a shorter last one, none
        if rng.random() < 0.3:
            m_r = rng.integers(0, M + 1, (n, R))  # any sizes
        work = rng.integers(0, 1000, (int(rng.integers(1, 3)), n, R)) * (rng.random((1, n, R)) < 0.9)
        got = ct._round_means(work, m_r)
        ran = np.broadcast_to(m_r > 0, got.shape)
        want = -(-work // np.maximum(m_r, 1))
        assert got.dtype == np.int64 and got.shape == want.shape and np.array_equal(got[ran], want[ran]), (M, m_r)


def test_unique_groups_equal_np_unique(rng):
    """``sim_bench.perf._unique_groups`` finds the distinct groups of tiles in order without a sort: np.unique's."""
    for _ in range(200):
        g = rng.integers(0, 6, int(rng.integers(0, 12)))
        for ft_group in (np.sort(g), g):
            got, want = perf._unique_groups(ft_group), np.unique(ft_group, return_inverse=True)
            assert all(a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(got, want)), ft_group


def test_mean_equals_np_mean(rng):
    """``sim_bench.perf._mean`` (two per mechanism) is np.mean's float of an int64 or float64 vector, bit for bit."""
    for _ in range(300):
        n = int(rng.integers(1, 40))
        for a in (rng.integers(0, 1 << 40, n), rng.random(n) * 10.0 ** rng.integers(0, 12), rng.integers(0, 9, n)):
            assert perf._mean(a) == float(np.mean(a)) and isinstance(perf._mean(a), float), a

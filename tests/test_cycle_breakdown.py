"""The cycle breakdown: terms that add up exactly to the model's cycles (model.core_timing.pass_terms /
layer_cycle_terms, sim_bench.perf's busiest-core split), and the compute-cycle utilization."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dbpim.model import core_timing as ct
from dbpim.model.compile import compile_layer
from dbpim.model.config import CoreConfig, MacroConfig, load_config
from dbpim.model.quant import prune_quantize
from dbpim.model.spec import CORE_LATENCY, input_bits
from dbpim.sim_bench import perf, synth

SMALL = MacroConfig(n_comp=4, n_col=4, n_row=4, in_bits=8, phi_max=2, lanes=2, pipeline=False)


def _sum(terms: dict) -> np.ndarray:
    assert tuple(terms) == ct.PASS_TERMS or set(terms) <= set(perf.CYCLE_TERMS)
    for k, v in terms.items():
        assert np.all(np.asarray(v) >= 0), k  # every term is a count of cycles, never negative
    return sum(np.asarray(v, np.int64) for v in terms.values())


def test_pass_terms_add_up_to_the_pass_on_random_rounds(rng):
    """pass_terms sums to pass_cycles_rounds (and pass_after_terms to pass_after) exactly, on random rounds
    where each of compute, delivery, the n_col floor and the load binds somewhere."""
    n, R, M = 400, 5, 4
    vec = rng.integers(0, 60, (n, R * M)) * (rng.random((n, R * M)) < 0.8)
    pixels = rng.integers(1, R * M + 1, n)
    vec = np.where(np.arange(R * M)[None, :] < pixels[:, None], vec, 0)
    C = ct.round_compute(vec, M)
    work = ct.round_work(vec, M)
    m_r = ct.round_sizes(pixels, M, R)
    deliver = rng.integers(1, 20, n)
    load = rng.integers(0, 200, n)
    stream = rng.integers(0, 50, n) * (rng.random(n) < 0.5)
    for n_col, W in ((1, 1), (16, 1), (40, 1), (1, 2), (16, 4)):  # W: core.in_windows
        t = ct.pass_terms(load, deliver, C, m_r, stream, n_col, work, in_windows=W)
        assert np.array_equal(_sum(t), ct.pass_cycles_rounds(load, deliver, C, m_r, stream, n_col, in_windows=W))
        a = ct.pass_after_terms(deliver, C, m_r, stream, n_col, work, in_windows=W)
        assert np.array_equal(_sum(a), ct.pass_after(deliver, C, m_r, stream, n_col, in_windows=W))
        assert np.all(t["compute"] + t["lockstep"] == np.where(m_r > 0, C, 0).sum(-1))
        for k in ("lockstep", "round_floor", "load", "delivery"):
            assert t[k].any(), (k, n_col)  # the random rounds exercise every term
    assert np.array_equal(t["control"], np.full(n, CORE_LATENCY["pass"]))


def _layer(rng, mc=SMALL, K=None, N=None, sparsity=0.5):
    K = K or int(rng.integers(5, 3 * mc.capacity_rows))
    N = N or int(rng.integers(1, 3 * mc.group_size))
    u = rng.normal(0, 1, (K, N)) * rng.choice([0.5, 4.0, 30.0, 90.0], N)
    q = prune_quantize(u, mc, sparsity, scale=1.0)
    return compile_layer(q.w, q.phi, q.mask, mc, q.group_size)


@pytest.mark.parametrize("banks", [1, 2])
def test_layer_terms_add_up_to_layer_cycles_on_random_layers(rng, banks):
    """layer_cycle_terms sums to layer_cycles per sample and START, with loads stretched (as an off-chip
    fetch stretches them) so that exposed loads and the prefetch of the second bank both occur."""
    core = CoreConfig(descriptors=8, out_pixels=5, tile_banks=banks)
    for _ in range(6):
        comp = _layer(rng, K=int(rng.integers(5, 5 * SMALL.capacity_rows)))
        P, M = int(rng.integers(1, 13)), int(rng.integers(1, 4))
        xs = rng.integers(0, 256, (2, P, comp.K)) * (rng.random((2, P, comp.K)) < rng.random())
        plan = ct.plan_passes(comp.tiles, P, SMALL, M, core)
        pix = ct.pixel_cycles(input_bits(xs.reshape(2 * P, -1), False), comp.tiles, SMALL).reshape(2, P, -1)
        for stretch in (1, 30):
            slow = dataclasses.replace(plan, load=plan.load * stretch)
            for ob in (1, 2):  # core.out_banks: results streamed after a job or during the next one
                for W in sorted({1, M}):  # core.in_windows: one window a beat, or every macro's at once
                    L = M if W == 1 else 1  # core.result_lanes: every macro's results a beat, or one
                    t = ct.layer_cycle_terms(slow, pix, SMALL, M, banks, ob, in_windows=W, result_lanes=L)
                    assert np.array_equal(_sum(t), ct.layer_cycles(slow, pix, SMALL, M, banks, ob, in_windows=W,
                                                                   result_lanes=L))


@pytest.mark.parametrize("banks,out_banks", [(1, 1), (2, 2)])
def test_layer_terms_add_up_on_every_real_layer(real_artifacts, banks, out_banks):
    """The same on every mapped layer of the demo and the zoo network (their compiled programs and recorded
    inputs), and sim_bench's busiest-core split on one core equals the core's own terms."""
    from dbpim.model.artifact import load
    from dbpim.model.core import CoreParams, compile_program
    from dbpim.sim_bench.core_cycles import one_core, one_core_run_pixels
    cfg = load_config("small").replace(core={"tile_banks": banks, "out_banks": out_banks})
    n = 0
    for path in real_artifacts:
        for rec in load(path).mapped_layers():
            x = rec.im2col_inputs()
            S = int(rec.x.shape[0])
            P = x.shape[0] // S
            prog = compile_program(rec.compiled, P, CoreParams.from_config(cfg), rec.signed_input, rec.name,
                                   run_pixels=one_core_run_pixels(rec, cfg))
            pix = ct.pixel_cycles(input_bits(x, rec.signed_input), rec.compiled.tiles, cfg.macro).reshape(S, P, -1)
            M = cfg.system.macros_per_core
            t = ct.layer_cycle_terms(prog.plan, pix, cfg.macro, M, banks, out_banks)
            total = ct.layer_cycles(prog.plan, pix, cfg.macro, M, banks, out_banks)
            assert np.array_equal(_sum(t), total), rec.name
            # sim_bench on one core, tiles preloaded (no off-chip floor): the same terms, START by START summed
            roomy = dataclasses.replace(one_core(cfg), system=dataclasses.replace(
                one_core(cfg).system, dram_bytes_per_cycle=1e12))
            mp = perf.evaluate_layer(perf.spec_from_record(rec), roomy, ("dbpim",)).mech["dbpim"]
            for k in ct.PASS_TERMS:
                assert np.array_equal(mp.cycle_terms[k], t[k].sum(1)), (rec.name, k)
            assert np.array_equal(mp.cycle_terms["dram"], np.zeros(S, np.int64))
            n += 1
    assert n >= 10


@pytest.mark.parametrize("banks,batch,out_banks", [(1, 1, 1), (2, 1, 2), (2, 3, 2)])
def test_network_breakdown_adds_up_and_orders_the_utilizations(real_artifacts, banks, batch, out_banks):
    """On the whole system (8 cores, shared off-chip bandwidth tight enough to stretch loads, SIMD layers, a
    batch): every layer's terms add up to its wall cycles per batch instance, the network's to its total, for
    every mechanism; and cell level >= compute-cycle >= system utilization, all in [0, 1]."""
    from dbpim.model.artifact import load
    cfg = load_config("small").replace(core={"tile_banks": banks, "out_banks": out_banks})
    cfg = dataclasses.replace(cfg, system=dataclasses.replace(cfg.system, dram_bytes_per_cycle=2.0))
    for path in real_artifacts:
        art = load(path)
        net = perf.evaluate_network(perf.specs_from_artifact(art), cfg, network=art.network, batch=batch)
        assert any(not lp.mapped for lp in net.layers)
        for k in perf.MECHANISMS:
            for lp in net.mapped():
                mp = lp.mech[k]
                per_sample = _sum(mp.cycle_terms)
                assert per_sample.shape == (lp.spec.samples,)
                assert per_sample.mean() / batch == pytest.approx(mp.wall_cycles, rel=1e-12, abs=0), (lp.spec.name, k)
                assert sum(lp.breakdown(k).values()) == pytest.approx(lp.cycles(k), rel=1e-12)
                assert mp.compute_cycles <= mp.wall_cycles
            b = net.breakdown(k)
            assert tuple(b) == perf.CYCLE_TERMS
            assert sum(b.values()) == pytest.approx(net.total_cycles(k), rel=1e-12)
            assert b["simd"] == pytest.approx(net.total_cycles(k) - net.total_cycles(k, mapped_only=True))
            assert sum(net.breakdown(k, mapped_only=True).values()) == pytest.approx(
                net.total_cycles(k, mapped_only=True), rel=1e-12)
            assert 0 < net.utilization_system(k) <= net.utilization_compute(k) <= net.utilization(k) <= 1, k
        d = net.breakdown("dbpim")
        assert d["dram"] > 0 and d["compute"] > 0 and d["delivery"] > 0 and d["stream"] > 0
        assert net.breakdown("dense")["lockstep"] == 0  # the dense baseline issues every bit column: no imbalance


def test_a_split_that_forgets_a_formula_change_fails_loudly(monkeypatch):
    """sim_bench checks its split against the wall cycles it computes: a pass formula changed without its split
    is a one-line PerfError, never a silently wrong breakdown."""
    cfg = load_config("paper")
    specs = synth.specs_of(synth.resnet18("cifar")[:3], cfg.macro, sparsity=0.5)
    real = ct._pass_after  # the formula of ct.pass_after and ct.pass_after_and_terms
    monkeypatch.setattr(ct, "_pass_after", lambda *a, **k: real(*a, **k) + 1)
    with pytest.raises(perf.PerfError, match="does not add up"):
        perf.evaluate_network(specs, cfg)


@pytest.fixture(scope="module")
def digits_art(tmp_path_factory, save_digits_artifact):
    return save_digits_artifact(tmp_path_factory.mktemp("art") / "digits", n_samples=8)


def test_reports_show_the_breakdown_and_three_utilizations(digits_art, tmp_path, capsys):
    """dbpim bench (what compile, demo and bench-paper print and write): a text table of the terms, the terms per
    layer in layers.csv and summary.json adding up to the cycles, the stacked-bar plot, and the three
    utilizations with their definitions."""
    import csv
    import json

    from dbpim.cli import main
    out = tmp_path / "rep"
    assert main(["bench", "--artifact", str(digits_art), "--hw", "paper", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "over compute cycles" in text and "cycles per inference" in text
    table = {ln.split()[0]: ln.split()[1:] for ln in text.splitlines()[3:] if ln.startswith("  ") and ln.split()
             and ln.split()[0] in perf.CYCLE_TERMS + ("total",)}
    assert set(table) == set(perf.CYCLE_TERMS) | {"total"}
    for mech, col in (("dbpim", 0), ("dense", 2)):
        assert sum(float(table[t][col].replace(",", "")) for t in perf.CYCLE_TERMS) == pytest.approx(
            float(table["total"][col].replace(",", "")), abs=len(perf.CYCLE_TERMS))  # printed rounded
    for r in csv.DictReader(open(out / "layers.csv")):
        for k in ("dbpim", "dense"):
            terms = [float(r[f"cycles_{t}_{k} [cycles]"]) for t in perf.CYCLE_TERMS]
            assert sum(terms) == pytest.approx(float(r[f"cycles_{k} [cycles]"]), rel=1e-6), (r["layer"], k)
    s = json.loads((out / "summary.json").read_text())
    assert set(s["utilization_definitions"]) == {"utilization", "utilization_compute", "utilization_system"}
    assert 0 < s["utilization_system"] <= s["utilization_compute"] <= s["utilization"] <= 1
    for k in ("dbpim", "dense"):
        cb = s["cycle_breakdown"][k]
        assert sum(cb["network [cycles]"].values()) == pytest.approx(cb["total [cycles]"], rel=1e-12)
        assert cb["total [cycles]"] == pytest.approx(s[f"time_{k} [us]"] * 500, rel=1e-12)
        for lay in cb["layers"]:
            assert sum(lay[f"{t} [cycles]"] for t in perf.CYCLE_TERMS) == pytest.approx(lay["total [cycles]"])
    md = (out / "summary.md").read_text()
    assert "## Where the cycles go" in md and "U_compute DB-PIM (compared)" in md
    for k, v in perf.UTILIZATIONS.items():
        assert f"* `{k}`: {v}." in md
    assert (out / "cycle_breakdown.png").stat().st_size > 0


def test_bench_paper_and_compare_carry_the_breakdown(digits_art, tmp_path):
    import csv
    import json

    from dbpim.model.artifact import load
    from dbpim.sim_bench import compare, paper, reram
    cfg = load_config("paper")
    out = tmp_path / "paper"
    paper.run_paper([load(digits_art)], cfg, out, fig11=[])
    rows = list(csv.DictReader(open(out / "breakdown.csv")))
    assert [(r["mechanism"], r["term"]) for r in rows] == [(k, t) for k in ("dbpim", "dense") for t in perf.CYCLE_TERMS]
    assert sum(float(r["share [%]"]) for r in rows if r["mechanism"] == "dbpim") == pytest.approx(100)
    t2 = list(csv.DictReader(open(out / "table2.csv")))[0]
    assert float(t2["utilization_system [%]"]) <= float(t2["utilization_compute [%]"]) <= float(t2["utilization [%]"])
    assert (out / "cycle_breakdown.png").stat().st_size > 0 and (out / "digits-mlp" / "cycle_breakdown.png").is_file()
    crows = compare.dbpim_rows(load(digits_art), cfg)
    for r in crows:
        assert set(r.breakdown) == set(perf.CYCLE_TERMS) and r.breakdown["simd"] == 0  # the mapped layers only
        assert sum(r.breakdown.values()) == pytest.approx(r.cycles, rel=1e-12)
    assert "DB-PIM cycles by term" in compare.format_table(crows)
    compare.write_outputs(crows, tmp_path, reram.ReramConfig(), plots=False)
    doc = json.loads((tmp_path / "compare.json").read_text())
    assert all(sum(r["cycle_breakdown [cycles]"].values()) == pytest.approx(r["cycles"]) for r in doc["rows"])


def test_result_lanes_stream_ceil_pixels_over_lanes_beats(rng):
    """core.result_lanes L: a job streams ceil(pixels / L) * n_out beats (model.core_timing.stream_beats), the
    beats of model.core.result_order: every (pixel, filter) once, lane i of beat k n_out + s pixel kL + i and
    filter s, the empty lanes only past the last pixel; a layer's cycles shrink by exactly the beats saved when
    the results leave after the last pass (one output bank, one tile bank)."""
    from dbpim.model.core import result_order
    for _ in range(30):
        pixels, n_out, L = int(rng.integers(1, 40)), int(rng.integers(1, 17)), int(rng.choice([1, 2, 3, 4, 8]))
        order = result_order(pixels, n_out, L)
        assert order.shape == (ct.stream_beats(pixels, n_out, L), L) == (-(-pixels // L) * n_out, L)
        kept = order[order >= 0]
        assert np.array_equal(np.sort(kept), np.arange(pixels * n_out))
        k, i = np.divmod(np.arange(order.size), L)
        pix, filt = (k // n_out) * L + i, k % n_out
        want = np.where(pix < pixels, pix * n_out + filt, -1)
        assert np.array_equal(order.reshape(-1), want)
    assert np.array_equal(ct.stream_beats(np.array([1, 4, 5, 64]), 3, 4), [3, 3, 6, 48])
    comp = _layer(rng, K=40)
    P, M = 13, 4
    xs = rng.integers(0, 256, (2, P, comp.K))
    core = CoreConfig(out_pixels=5)
    plan = ct.plan_passes(comp.tiles, P, SMALL, M, core)
    pix = ct.pixel_cycles(input_bits(xs.reshape(2 * P, -1), False), comp.tiles, SMALL).reshape(2, P, -1)
    last = plan.last
    for L in (2, 4):
        saved = (plan.pixels * plan.n_out - ct.stream_beats(plan.pixels, plan.n_out, L))[last].sum()
        assert saved > 0
        one = ct.layer_cycles(plan, pix, SMALL, M).sum(-1)
        assert np.array_equal(one - ct.layer_cycles(plan, pix, SMALL, M, result_lanes=L).sum(-1), [saved, saved])

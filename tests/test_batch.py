"""Batch reuse in the performance model (sim_bench.perf ``batch``, docs/perf_model.md "Batch").

A batch of B samples is the core's passes over B x the pixels, so each loaded tile serves every sample of
its pixel run: the off-chip floor of a layer with few pixels falls as 1/B, a layer whose pixels already
fill the pixel runs is unchanged, and the core-level count stays the RTL's (the golden twin's).
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from dbpim.model import limits
from dbpim.model.config import load_config
from dbpim.model.layer import im2col
from dbpim.model.spec import CORE_LATENCY
from dbpim.sim_bench import perf
from tests.test_sim_bench_perf import _conv_record, _roomy


def _fc_record(macro, K=512, N=64, S=4, seed=2):
    """A linear layer of K inputs and N outputs, 50 % block-pruned, FTA-quantized, S samples recorded."""
    from dbpim.model import fta, prune
    from dbpim.model.artifact import LayerRecord
    from dbpim.model.compile import compile_layer
    rng = np.random.default_rng(seed)
    W = rng.normal(0, 1, (K, N))
    mask = prune.block_mask(W, macro.group_size, 0.5)
    scale = np.abs(W).max(0) / 127
    w, phi = fta.quantize(W / scale, prune.expand_mask(mask, N, macro.group_size), phi_max=macro.phi_max)
    x = (rng.integers(0, 256, (S, K)) * (rng.random((S, K)) < 0.5)).astype(np.uint8)
    return LayerRecord(name="fc", kind="linear", in_shape=(K,), out_shape=(N,), signed_input=False, w=w,
                       scale=scale.astype(np.float32), compiled=compile_layer(w, phi, mask, macro), x=x)


@pytest.fixture(scope="module")
def fc_specs():
    """A linear layer of 512 x 64 (one vector per sample, 4 samples recorded) and a smaller one of
    256 x 32, on the paper macro."""
    m = load_config("paper").macro
    return [perf.spec_from_record(_fc_record(m)), perf.spec_from_record(_fc_record(m, K=256, N=32, seed=3))]


def test_batch_samples_rotate_the_recorded_samples():
    assert perf.batch_samples(3, 1).tolist() == [[0], [1], [2]]
    assert perf.batch_samples(3, 4).tolist() == [[0, 1, 2, 0], [1, 2, 0, 1], [2, 0, 1, 2]]
    vec = np.arange(2 * 3 * 1 * 2).reshape(2, 3, 1, 2)  # (runs, S, nrt, Pp)
    b = perf.batched_vectors(vec, perf.batch_samples(3, 2))
    assert b.shape == (2, 3, 1, 4)
    assert b[1, 2, 0].tolist() == vec[1, 2, 0].tolist() + vec[1, 0, 0].tolist()  # sample 2's pixels, then 0's


def test_dram_bound_layer_gets_faster_per_sample_with_batch(fc_specs):
    """A linear layer (one pixel per sample) at batch 1 waits for its weights; batch B fetches each tile once
    for B samples: the off-chip bytes per sample fall as 1/B and so do the cycles, for DB-PIM and the dense
    baseline alike."""
    cfg = load_config("paper")
    spec = fc_specs[0]
    assert spec.kind == "linear" and spec.vectors == 1
    lp = {b: perf.evaluate_layer(spec, cfg, ("dense", "dbpim"), batch=b) for b in (1, 2, 4, 8)}
    d1 = lp[1].mech["dbpim"]
    assert d1.bandwidth_bound and d1.dram_floor_cycles > d1.onchip_cycles
    for k in ("dense", "dbpim"):
        walls = [lp[b].mech[k].wall_cycles for b in (1, 2, 4, 8)]
        assert all(a > b for a, b in zip(walls, walls[1:])), (k, walls)
        for b in (2, 4, 8):
            assert lp[b].mech[k].weight_bytes == pytest.approx(lp[1].mech[k].weight_bytes / b, rel=1e-12)
            assert lp[b].mech[k].macro_cycles == lp[1].mech[k].macro_cycles  # the same work per sample
    assert lp[4].mech["dbpim"].wall_cycles < 0.5 * d1.wall_cycles


def test_compute_bound_layer_is_unchanged_by_batch():
    """A convolution whose 256 output pixels fill a pixel run: batch 2 runs the same passes for each sample,
    in one START, the second sample's pixel run loading its tiles from the core's tile store: the compute,
    delivery and drain are the same per inference, the off-chip bytes halve, and the cycles fall by at most
    what the fetches added at batch 1 and the START overhead the batch shares."""
    cfg = load_config("paper")
    spec = perf.spec_from_record(_conv_record(cfg.macro, H=16))
    assert spec.vectors == cfg.core.out_pixels
    one = perf.evaluate_layer(spec, cfg, batch=1)
    two = perf.evaluate_layer(spec, cfg, batch=2)
    for k in perf.MECHANISMS:
        a, b = one.mech[k], two.mech[k]
        assert not a.bandwidth_bound and not b.bandwidth_bound, k
        ta, tb = a.breakdown, b.breakdown
        assert all(ta[t] == tb[t] for t in ("compute", "lockstep", "round_floor", "delivery", "drain")), k
        assert 0 <= a.wall_cycles - b.wall_cycles <= ta["dram"] + ta["load"] + CORE_LATENCY["run"], k
        assert b.weight_bytes == a.weight_bytes / 2, k


@pytest.mark.parametrize("banks", [1, 2])
@pytest.mark.parametrize("name,H", [("small", 5), ("paper", 2)])  # small: runs of 64 pixels cross samples
def test_batch_on_one_core_is_the_twin_over_batch_times_the_pixels(name, H, banks):
    """At the core level a batch is the layer's passes over B x the pixels, samples one after another: the
    golden core twin (the RTL's CYCLES) runs that program; its results are each sample's own, bit for bit."""
    from dbpim.model.core import CoreParams, compile_program, run_core
    cfg = _roomy(load_config(name).replace(core={"tile_banks": banks}), cores=1)
    rec = _conv_record(cfg.macro, cout=19, H=H)
    xc = im2col(rec.x, 3, 3, 1, 1)
    P = xc.shape[0] // 2
    lp = perf.evaluate_layer(perf.spec_from_record(rec), cfg, ("dbpim",), batch=3)
    prog = compile_program(rec.compiled, 3 * P, CoreParams.from_config(cfg))
    one = compile_program(rec.compiled, P, CoreParams.from_config(cfg))
    want = []
    for order in perf.batch_samples(2, 3):
        x = np.concatenate([xc[s * P:(s + 1) * P] for s in order])
        r = run_core(prog, x)
        want.append(r.total_cycles)
        assert np.array_equal(r.out, np.concatenate([run_core(one, xc[s * P:(s + 1) * P]).out for s in order]))
    assert list(lp.mech["dbpim"].core_cycles) == want
    assert lp.mech["dbpim"].wall_cycles == pytest.approx(np.mean(want) / 3, rel=1e-12)  # no off-chip limit


def test_batch_reuse_finds_the_smallest_batch_where_the_floor_stops_binding(fc_specs):
    cfg = load_config("paper")
    r = perf.batch_reuse(fc_specs, cfg, "mlp")
    rows = r["search"]
    assert [x["batch"] for x in rows] == [2 ** i for i in range(len(rows))]
    assert r["bandwidth_bound_batch_1"] and all(x["bandwidth_bound_layers"] for x in rows[:-1])
    assert r["saturation_batch"] == rows[-1]["batch"] > 1 and not rows[-1]["bandwidth_bound_layers"]
    net = perf.evaluate_network(fc_specs, cfg, "mlp", batch=r["saturation_batch"])
    assert r["speedup_saturation"] == pytest.approx(net.speedup(), rel=1e-12)
    assert r["speedup_batch_1"] == pytest.approx(perf.evaluate_network(fc_specs, cfg, "mlp").speedup(), rel=1e-12)
    assert not perf.bandwidth_bound_layers(net)
    # a bandwidth so low that no batch of the range helps: no saturation batch, reported as such
    slow = dataclasses.replace(cfg, system=dataclasses.replace(cfg.system, dram_bytes_per_cycle=0.01))
    r = perf.batch_reuse(fc_specs[:1], slow, "mlp")
    assert r["saturation_batch"] is None and r["speedup_saturation"] is None
    assert r["search"][-1]["batch"] == limits.BATCH.hi
    json.dumps(r, allow_nan=False)


@pytest.mark.parametrize("bad", [0, -1, 257, 1.5, 2.0, True, "2", float("nan"), None])
def test_bad_batch_is_one_line_naming_batch(fc_specs, bad):
    cfg = load_config("paper")
    for call in (lambda: perf.evaluate_layer(fc_specs[0], cfg, batch=bad),
                 lambda: perf.evaluate_network(fc_specs, cfg, batch=bad)):
        with pytest.raises(perf.BenchError) as e:
            call()
        msg = str(e.value)
        assert msg.startswith("batch: must be an integer in [1, 256], got") and "\n" not in msg


def test_bench_and_bench_paper_report_the_batch(tmp_path, capsys, save_digits_artifact):
    """--batch reaches the reports: the JSON and the text state it, with the speedup at batch 1 and at the
    batch where the off-chip floor stops binding; a bad --batch is one line naming --batch."""
    from dbpim import cli
    art = save_digits_artifact(tmp_path / "art")
    assert cli.main(["bench", "--artifact", str(art), "--hw", "paper", "--batch", "4", "--no-plots",
                     "--out", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    s = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert s["batch"] == 4 and s["batch_reuse"]["saturation_batch"] == s["batch_reuse"]["search"][-1]["batch"]
    assert "(batch 4)" in out and f"{s['batch_reuse']['speedup_batch_1']:.2f}x at batch 1" in out
    assert "## Batch reuse" in (tmp_path / "b" / "summary.md").read_text()
    assert cli.main(["bench-paper", str(art), "--hw", "paper", "--batch", "2", "--no-plots",
                     "--out", str(tmp_path / "p")]) == 0
    capsys.readouterr()
    s = json.loads((tmp_path / "p" / "summary.json").read_text())
    assert s["networks"][0]["batch"] == 2 and "speedup_batch_1" in s["networks"][0]["batch_reuse"]
    assert "saturation_batch" in (tmp_path / "p" / "networks.csv").read_text().splitlines()[0]
    for cmd in (["bench", "--artifact", str(art)], ["bench-paper", str(art)], ["compare", str(art)]):
        assert cli.main(cmd + ["--batch", "0", "--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "--batch: must be an integer in [1, 256], got 0" in err


@pytest.mark.rtl
@pytest.mark.timeout(900)
@pytest.mark.xdist_group("rtl-core-native")
def test_rtl_core_runs_a_batch_as_the_model_counts():
    """The RTL core (native Verilator harness, small configuration) running a layer at batch 3, the samples'
    pixels one after another in one program: its results are each sample's own, its CYCLES the performance
    model's count at batch 3 on one core (``MechPerf.core_cycles``, model.core_timing)."""
    pytest.importorskip("cocotb")
    from dbpim.model.config import load_config
    from dbpim.model.core import CoreParams, compile_program, run_core
    from dbpim.verif.native import run_core_native
    from dbpim.verif.rtl import rtl_config
    hw = load_config(rtl_config("small"))
    cfg = _roomy(hw, cores=1)
    rec = _conv_record(hw.macro, cout=19, H=5)  # 3 x 25 pixels: a pixel run of 64 holds parts of 3 samples
    xc = im2col(rec.x, 3, 3, 1, 1)
    P = xc.shape[0] // 2
    prog = compile_program(rec.compiled, 3 * P, CoreParams.from_config(hw))
    xs = np.stack([np.concatenate([xc[s * P:(s + 1) * P] for s in order]) for order in perf.batch_samples(2, 3)])
    runs, _ = run_core_native(prog, xs, hw)
    model = perf.evaluate_layer(perf.spec_from_record(rec), cfg, ("dbpim",), batch=3).mech["dbpim"].core_cycles
    assert len(prog.segments) >= 1
    for s, x in enumerate(xs):
        want = run_core(prog, x)
        assert sum(runs[si][s].cycles for si in range(len(prog.segments))) == model[s] == want.total_cycles
        for si in range(len(prog.segments)):
            assert np.array_equal(runs[si][s].beats, want.beats[si]) and runs[si][s].status == 0b010


def test_docs_state_the_batch_range_exactly():
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    design = " ".join((root / "docs" / "design.md").read_text().split())
    perf_doc = " ".join((root / "docs" / "perf_model.md").read_text().split())
    assert f"`compile`) an integer in `[1, {limits.BATCH.hi}]`" in design
    assert f"integer in `[1, {limits.BATCH.hi}]`, `model.limits.BATCH`" in perf_doc
    assert f"batch 1, 2, 4, ..., {limits.BATCH.hi}" in perf_doc

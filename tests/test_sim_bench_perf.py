"""Performance model (sim_bench.perf) against the golden model, and the hardware YAML checks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dbpim.model import examples, fta, prune
from dbpim.model.artifact import LayerRecord
from dbpim.model.compile import compile_layer
from dbpim.model.config import ConfigError, HwConfig, MacroConfig, SystemConfig, load_config
from dbpim.model.layer import im2col, run_layer
from dbpim.model.macro import run_macro
from dbpim.sim_bench import perf, synth


@pytest.fixture(scope="module")
def digits():
    hw = load_config("paper")
    return hw, synth.digits_real_layers(hw.macro, n_samples=8)


def test_macro_cycles_equal_golden_on_real_digits_layer(digits):
    hw, layers = digits
    cfg = hw
    recs = examples.to_records(layers)
    for rl, rec in zip(layers, recs[::2]):
        lp = perf.evaluate_layer(perf.spec_from_record(rec), cfg)
        # macro-level: run_macro summed over tiles and vectors
        golden = sum(run_macro(t, x, hw.macro).cycles for t in rl.compiled.tiles for x in rl.x)
        assert lp.mech["dbpim"].macro_cycles_total == golden
        r = run_layer(rl.x, rl.compiled)
        assert lp.mech["dbpim"].macro_cycles_total == r.cycles_dbpim
        assert lp.mech["dense"].macro_cycles_total == r.cycles_dense
        assert lp.mech["dbpim"].tiles == len(rl.compiled.tiles)


def _conv_record(macro, signed=False, sparsity=0.4, seed=1, cin=5, cout=11, H=6):
    rng = np.random.default_rng(seed)
    K = cin * 9
    W = rng.normal(0, 1, (K, cout))
    G = macro.group_size
    mask = prune.block_mask(W, G, sparsity)
    scale = np.abs(W).max(0) / 127
    w, phi = fta.quantize(W / scale, prune.expand_mask(mask, cout, G), phi_max=macro.phi_max)
    comp = compile_layer(w, phi, mask, macro)
    if signed:
        x = rng.integers(-128, 128, (2, cin, H, H)).astype(np.int8)
    else:
        x = rng.integers(0, 256, (2, cin, H, H)) * (rng.random((2, cin, H, H)) < 0.5)
        x = (x >> rng.integers(0, 4, x.shape)).astype(np.uint8)
    rec = LayerRecord(name="c", kind="conv2d", in_shape=(cin, H, H), out_shape=(cout, H, H), kernel=(3, 3),
                      stride=1, padding=1, signed_input=signed, w=w, scale=scale.astype(np.float32),
                      compiled=comp, x=x)
    return rec


@pytest.mark.parametrize("name,signed", [("paper", False), ("small", False), ("small", True)])
def test_conv_layer_cycles_equal_run_layer(name, signed):
    cfg = load_config(name)
    rec = _conv_record(cfg.macro, signed=signed)
    xc = im2col(rec.x, 3, 3, 1, 1)
    r = run_layer(xc, rec.compiled, signed=signed)
    spec = perf.spec_from_record(rec)
    assert spec.samples == 2 and spec.vectors == 36
    lp = perf.evaluate_layer(spec, cfg)
    assert lp.mech["dbpim"].macro_cycles_total == r.cycles_dbpim
    assert lp.mech["dense"].macro_cycles_total == r.cycles_dense
    assert lp.mech["dbpim"].macro_cycles == pytest.approx(r.cycles_dbpim / 2)


def _roomy(cfg, **system):
    """``cfg`` with no off-chip or output-buffer limit (the core alone sets the time)."""
    return dataclasses.replace(cfg, system=dataclasses.replace(cfg.system, dram_bytes_per_cycle=1e12,
                                                               output_buffer_kib=1e9, **system))


#: (core.tile_banks, core.out_banks)
BANKS = [(1, 1), (2, 1), (1, 2), (2, 2)]


@pytest.mark.parametrize("banks", BANKS)
@pytest.mark.parametrize("name,signed,M", [("paper", False, 4), ("paper", True, 3), ("small", False, 2)])
def test_one_core_equals_the_core_twin(name, signed, M, banks):
    """sim_bench on one core = the golden core twin (model.core.run_core, the RTL's CYCLES) per sample."""
    from dbpim.model.core import CoreParams, compile_program, run_core
    cfg = _roomy(load_config(name).replace(core={"tile_banks": banks[0], "out_banks": banks[1]}), cores=1,
                 macros_per_core=M)
    rec = _conv_record(cfg.macro, signed=signed, cout=19)
    xc = im2col(rec.x, 3, 3, 1, 1)
    P = xc.shape[0] // 2
    lp = perf.evaluate_layer(perf.spec_from_record(rec), cfg, ("dbpim",))
    prog = compile_program(rec.compiled, P, CoreParams.from_config(cfg), signed)
    want = [run_core(prog, xc[s * P:(s + 1) * P]).total_cycles for s in range(2)]
    assert list(lp.mech["dbpim"].core_cycles) == want
    assert lp.mech["dbpim"].wall_cycles == pytest.approx(np.mean(want), rel=1e-12)  # no off-chip limit
    # every vector is computed, delivered and drained at least once
    assert lp.mech["dbpim"].wall_cycles >= lp.mech["dbpim"].macro_cycles / M
    # more cores and macros never make it slower
    lp8 = perf.evaluate_layer(perf.spec_from_record(rec), _roomy(load_config(name)))
    for k in perf.MECHANISMS:
        assert lp8.mech[k].wall_cycles <= perf.evaluate_layer(perf.spec_from_record(rec), cfg, (k,)).mech[
            k].wall_cycles, k


@pytest.mark.parametrize("name,signed,M", [("paper", False, 4), ("paper", True, 3), ("small", False, 2)])
def test_one_core_equals_the_core_twin_with_input_windows(name, signed, M):
    """core.in_windows = M (every macro's vector of a round delivered at once) and 2 where it divides M, with
    both banks doubled: sim_bench on one core = the golden core twin per sample, and fewer cycles than with
    one window a beat."""
    from dbpim.model.core import CoreParams, compile_program, run_core
    rec = None
    for W in sorted({M, 2} if M % 2 == 0 else {M}):
        cfg = _roomy(load_config(name), cores=1, macros_per_core=M).replace(
            core={"tile_banks": 2, "out_banks": 2, "in_windows": W})
        rec = rec or _conv_record(cfg.macro, signed=signed, cout=19)
        xc = im2col(rec.x, 3, 3, 1, 1)
        P = xc.shape[0] // 2
        lp = perf.evaluate_layer(perf.spec_from_record(rec), cfg, ("dbpim",))
        prog = compile_program(rec.compiled, P, CoreParams.from_config(cfg), signed)
        want = [run_core(prog, xc[s * P:(s + 1) * P]).total_cycles for s in range(2)]
        assert list(lp.mech["dbpim"].core_cycles) == want, W
        one = perf.evaluate_layer(perf.spec_from_record(rec), cfg.replace(core={"in_windows": 1}), ("dbpim",))
        assert np.all(lp.mech["dbpim"].core_cycles < one.mech["dbpim"].core_cycles), W


@pytest.mark.parametrize("banks", BANKS)
def test_one_core_with_short_pixel_runs_equals_the_core_twin(banks):
    """A small output buffer shortens the pixel runs: the twin running the same runs counts the same cycles
    (with two tile banks a pixel run's first tile loads during the run before it; with two output banks its
    results stream during the run after it)."""
    from dbpim.model.core import CoreParams, compile_program, run_core
    from dbpim.sim_bench.core_cycles import one_core_run_pixels
    cfg = load_config("small").replace(core={"tile_banks": banks[0], "out_banks": banks[1]})
    cfg = dataclasses.replace(cfg, system=dataclasses.replace(cfg.system, cores=1, output_buffer_kib=0.05,
                                                              dram_bytes_per_cycle=1e12))
    rec = _conv_record(cfg.macro, cout=7)
    run = one_core_run_pixels(rec, cfg)
    assert run < min(36, cfg.core.out_pixels)
    xc = im2col(rec.x, 3, 3, 1, 1)
    lp = perf.evaluate_layer(perf.spec_from_record(rec), cfg, ("dbpim",))
    prog = compile_program(rec.compiled, 36, CoreParams.from_config(cfg), run_pixels=run)
    assert list(lp.mech["dbpim"].core_cycles) == [run_core(prog, xc[s * 36:(s + 1) * 36]).total_cycles
                                                  for s in range(2)]


def test_mechanism_ordering_and_utilization():
    cfg = load_config("paper")
    specs = synth.specs_of(synth.resnet18("cifar")[:6], cfg.macro, sparsity=0.5)
    for lp in perf.evaluate_network(specs, cfg).mapped():
        mc = {k: m.macro_cycles for k, m in lp.mech.items()}
        assert mc["dbpim"] <= mc["weight"] <= mc["bit"] <= mc["dense"]
        assert mc["dbpim"] <= mc["bit_input"] <= mc["input"] <= mc["dense"]
        assert mc["value"] <= mc["dense"]
        for m in lp.mech.values():
            assert 0.0 <= m.utilization <= 1.0
        assert lp.mech["dbpim"].utilization > lp.mech["dense"].utilization


def test_no_recorded_inputs_means_no_input_skipping():
    cfg = load_config("paper")
    rec = _conv_record(cfg.macro)
    rec.x = None
    spec = perf.spec_from_record(rec)
    assert spec.bits is None and spec.vectors == 36
    lp = perf.evaluate_layer(spec, cfg)
    assert lp.mech["input"].macro_cycles == lp.mech["dense"].macro_cycles
    assert lp.mech["dbpim"].macro_cycles == lp.mech["weight"].macro_cycles


def test_simd_layers_cost_simd_cycles():
    cfg = load_config("paper")
    lp = perf.evaluate_layer(perf.LayerSpec(name="dw", kind="simd", op="depthwise", simd_ops=1000), cfg)
    assert lp.type == "dw-conv" and lp.simd_cycles == np.ceil(1000 / cfg.system.simd_lanes)
    assert lp.cycles("dbpim") == lp.cycles("dense") and lp.energy("dbpim") > 0


def test_simd_core_ops_cost_the_rtl_timing():
    """relu / add / pool records run on the SIMD core RTL: model.simd_core.simd_cycles, not the estimate."""
    from dbpim.model.simd_core import record_cycles, simd_cycles
    from dbpim.model.spec import SIMD_LATENCY
    cfg = load_config("paper")
    lanes = cfg.system.simd_lanes
    for op in ("relu", "add", "pool"):
        lp = perf.evaluate_layer(perf.LayerSpec(name=op, kind="simd", op=op, simd_ops=1000), cfg)
        assert lp.simd_cycles == simd_cycles(1000, lanes) == 1 + np.ceil(1000 / lanes) + SIMD_LATENCY
        assert record_cycles(op, 1000, lanes) == lp.simd_cycles
    for op in ("softmax", "layernorm", "gelu", "depthwise"):
        assert record_cycles(op, 1000, lanes) == np.ceil(1000 / lanes)
    assert record_cycles("relu", 0, lanes) == 0


def test_yaml_validation(tmp_path):
    base = (load_config("paper").path)
    text = open(base).read()
    for bad, needle in [("cores: 8", "cores: 0"), ("cell_and_pj: 0.0002", "cell_and_pj: -1"),
                        ("dram_bytes_per_cycle: 25.6", "dram_bytes_per_cycle: -1"), ("tech_nm: 28", "tech_nm: 28\n  bogus: 1")]:
        p = tmp_path / "bad.yaml"
        p.write_text(text.replace(bad, needle))
        with pytest.raises(ConfigError) as e:
            load_config(p)
        msg = str(e.value)
        assert "\n" not in msg and str(p) in msg and (needle.split(":")[0].split()[-1] in msg)
    p = tmp_path / "nosys.yaml"
    p.write_text("name: x\nmacro: {n_comp: 4, n_col: 4, n_row: 4, in_bits: 8, phi_max: 2, lanes: 2, "
                 "pipeline: false}\n")
    cfg = load_config(p)
    assert cfg.system.cores == 8 and cfg.energy.simd_op_pj > 0  # defaults
    assert isinstance(cfg, HwConfig) and cfg.macro == MacroConfig(4, 4, 4, 8, 2, 2, False)


def test_replicate_idle_cores_only_helps():
    cfg = load_config("paper")
    rec = _conv_record(cfg.macro, cout=8)  # one group: one filter tile for FTA mechanisms
    spec = perf.spec_from_record(rec)
    base = perf.evaluate_layer(spec, cfg)
    rep = perf.evaluate_layer(spec, dataclasses.replace(cfg, system=dataclasses.replace(
        cfg.system, replicate_idle_cores=True)))
    for k in perf.MECHANISMS:
        assert rep.mech[k].wall_cycles <= base.mech[k].wall_cycles, k
        assert rep.mech[k].macro_cycles == base.mech[k].macro_cycles
    assert rep.mech["dbpim"].wall_cycles < base.mech["dbpim"].wall_cycles


def test_one_core_equals_the_core_twin_on_every_real_layer(real_artifacts):
    """Every mapped layer of the demo and the zoo network: sim_bench with one core counts, per recorded
    sample, exactly the cycles of the golden core twin running the layer's program (the RTL's CYCLES)."""
    from dbpim.model.artifact import load
    from dbpim.model.core import CoreParams, compile_program, run_core
    from dbpim.sim_bench.core_cycles import layer_cycles_one_core, one_core_run_pixels
    n = 0
    for cfg in (load_config("small").replace(core={"tile_banks": t, "out_banks": o, "in_windows": w})
                for t, o, w in [b + (1,) for b in BANKS] + [(2, 2, 2)]):
        for path in real_artifacts:
            for rec in load(path).mapped_layers():
                x = rec.im2col_inputs()
                S = int(rec.x.shape[0])
                P = x.shape[0] // S
                prog = compile_program(rec.compiled, P, CoreParams.from_config(cfg), rec.signed_input, rec.name,
                                       run_pixels=one_core_run_pixels(rec, cfg))
                want = [run_core(prog, xs).total_cycles for xs in x.reshape(S, P, -1)]
                assert list(layer_cycles_one_core(rec, cfg)) == want, (rec.name, cfg.core)
                n += 1
    assert n >= 40

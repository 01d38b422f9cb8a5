"""The PIM core's RTL on real layers: the cocotb regression and ``dbpim verify`` on the native harness.

* cocotb (``verif/test_core.py``): protocol-level, AXI4-Lite loading with random
  gaps, full rate, random stalls, a reset in the middle of a layer and a rerun;
* native Verilator (``verif/native.py``): whole layers, all samples, through
  ``dbpim verify --artifact DIR --layer NAME``: outputs bit for bit equal to
  ``model.layer.run_layer`` and the RTL's cycles equal to the performance
  model's for the same layer, on two layers of the demo network and one of a
  zoo network (small core), and two layers of the demo network on the
  paper-size core;
* the native harness under random stalls (results still exact) and on
  configurations that exercise every corner of the core (lanes 1 and
  ``n_comp``, 1 and 3 macros, pixel runs, several STARTs per layer).
"""

import numpy as np
import pytest

pytest.importorskip("cocotb")

from dbpim.model.compile import compile_layer  # noqa: E402
from dbpim.model.config import CoreConfig, HwConfig, MacroConfig, SystemConfig  # noqa: E402
from dbpim.model.core import CoreParams, compile_program, result_order, run_core  # noqa: E402
from dbpim.model.quant import prune_quantize  # noqa: E402

pytestmark = [pytest.mark.rtl, pytest.mark.timeout(900)]


@pytest.mark.xdist_group("rtl-core")
@pytest.mark.parametrize("stall", [0.0, 0.3])
def test_core_cocotb_real_layers(real_artifacts, stall):
    from dbpim.verif.rtl import rtl_config, run_cocotb
    demo, zoo = real_artifacts
    run_cocotb("core", rtl_config("small"), "dbpim.verif.test_core", testcase="core_real_layers", stall=stall,
               env={"DBPIM_ARTIFACTS": f"{demo}:features.0.conv,classifier.3;{zoo}:fc"})


@pytest.mark.xdist_group("rtl-core-blackbox")
def test_core_cocotb_sram_blackbox(real_artifacts):
    """The core with every memory a wrapper instance (hw.sram behavioural models, random initial contents):
    results, CYCLES and the reset in the middle of a layer as with the inferred memories."""
    from dbpim.verif.rtl import rtl_config, run_cocotb
    demo, _ = real_artifacts
    run_cocotb("core", rtl_config("small"), "dbpim.verif.test_core", testcase="core_real_layers", stall=0.0,
               sram="blackbox", env={"DBPIM_ARTIFACTS": f"{demo}:features.0.conv,classifier.3"})


@pytest.mark.slow  # the native harness runs two input windows a beat in make test (random layers, stalled)
@pytest.mark.xdist_group("rtl-core-win2")
def test_core_cocotb_two_in_windows(real_artifacts, tmp_path):
    """The cocotb regression on the small core with two input windows a beat (and two tile and output banks):
    AXI4-Lite loading with random gaps, full rate with CYCLES = the twin, a reset in the middle of a layer and
    an exact rerun."""
    from dbpim.model.config import config_path
    from dbpim.verif.rtl import run_cocotb
    yaml = tmp_path / "small-win2.yaml"
    yaml.write_text(config_path("small").read_text().rstrip() + "\n  tile_banks: 2\n  out_banks: 2\n  in_windows: 2\n")
    demo, _ = real_artifacts
    run_cocotb("core", str(yaml), "dbpim.verif.test_core", testcase="core_real_layers", stall=0.0,
               env={"DBPIM_ARTIFACTS": f"{demo}:features.0.conv,classifier.3"})


@pytest.mark.xdist_group("rtl-core-native")
@pytest.mark.parametrize("net,layer", [("demo", "features.1.conv"), ("demo", "classifier.1"),
                                       ("zoo", "layers.2.short.conv")])
def test_dbpim_verify_real_layers(real_artifacts, net, layer, capsys):
    from dbpim.cli import main
    from dbpim.verif.rtl import rtl_config
    art = real_artifacts[0 if net == "demo" else 1]
    assert main(["verify", "--artifact", str(art), "--layer", layer, "--hw", rtl_config("small")]) == 0
    out = capsys.readouterr().out
    assert "outputs == run_layer (bit for bit): yes" in out
    assert "cycles: equal" in out


@pytest.mark.slow  # test_dbpim_verify_two_in_windows runs dbpim verify with both banks doubled
@pytest.mark.xdist_group("rtl-core-native")
def test_dbpim_verify_two_tile_banks(real_artifacts, tmp_path, capsys):
    """``dbpim verify`` with a configuration of two tile banks (the small one's YAML plus core.tile_banks: 2):
    outputs bit for bit, the RTL's cycles equal the performance model's (--hw overrides the artifact's
    recorded configuration; its macro is the same)."""
    from dbpim.cli import main
    from dbpim.model.config import config_path
    yaml = tmp_path / "small-banks2.yaml"
    yaml.write_text(config_path("small").read_text().rstrip() + "\n  tile_banks: 2\n")
    assert main(["verify", "--artifact", str(real_artifacts[0]), "--layer", "features.1.conv", "--hw",
                 str(yaml)]) == 0
    out = capsys.readouterr().out
    assert "outputs == run_layer (bit for bit): yes" in out
    assert "cycles: equal" in out


@pytest.mark.slow  # test_dbpim_verify_two_in_windows runs dbpim verify with both banks doubled
@pytest.mark.xdist_group("rtl-core-native")
def test_dbpim_verify_two_output_banks(real_artifacts, tmp_path, capsys):
    """``dbpim verify`` with two output banks and two tile banks (the small YAML plus core.out_banks: 2,
    core.tile_banks: 2): a filter tile's results stream while the next one computes; outputs bit for bit, the
    RTL's cycles equal the performance model's (model.core_timing.job_cycles)."""
    from dbpim.cli import main
    from dbpim.model.config import config_path
    yaml = tmp_path / "small-out2.yaml"
    yaml.write_text(config_path("small").read_text().rstrip() + "\n  tile_banks: 2\n  out_banks: 2\n")
    assert main(["verify", "--artifact", str(real_artifacts[0]), "--layer", "features.1.conv", "--hw",
                 str(yaml)]) == 0
    out = capsys.readouterr().out
    assert "outputs == run_layer (bit for bit): yes" in out
    assert "cycles: equal" in out


@pytest.mark.xdist_group("rtl-core-native")
def test_dbpim_verify_two_in_windows(tmp_path, capsys):
    """``dbpim verify`` with two input windows a beat and two tile and output banks (the small YAML plus
    core.in_windows: 2, ...): both macros' vectors delivered at once; outputs bit for bit, the RTL's cycles
    equal the performance model's (model.core_timing.round_delivery). Tied to small (the demo network
    compiled for it) whatever ``DBPIM_HW`` says: the options are small's plus three."""
    from conftest import real_artifact

    from dbpim.cli import main
    from dbpim.model.config import config_path
    yaml = tmp_path / "small-win2.yaml"
    yaml.write_text(config_path("small").read_text().rstrip() + "\n  tile_banks: 2\n  out_banks: 2\n  in_windows: 2\n")
    assert main(["verify", "--artifact", str(real_artifact("smallcnn", "small")), "--layer", "features.1.conv", "--hw",
                 str(yaml)]) == 0
    out = capsys.readouterr().out
    assert "outputs == run_layer (bit for bit): yes" in out
    assert "cycles: equal" in out


@pytest.mark.xdist_group("rtl-core-native-paper")
@pytest.mark.slow  # its own -O3 native build (about a minute): make test-rtl runs it (regress), make test does not
@pytest.mark.regress
@pytest.mark.parametrize("layer", ["features.1.conv", "classifier.1"])
def test_dbpim_verify_paper_core(paper_artifact, layer, capsys):
    """The paper-size core (``paper.yaml``: 16 switch lanes, its macros and memories) on the demo network."""
    from dbpim.cli import main
    from dbpim.verif.rtl import hw_from_env
    if hw_from_env():
        pytest.skip("DBPIM_HW is set: test_dbpim_verify_real_layers runs the real layers on that configuration")
    assert main(["verify", "--artifact", str(paper_artifact), "--layer", layer, "--hw", "paper"]) == 0
    out = capsys.readouterr().out
    assert "outputs == run_layer (bit for bit): yes" in out
    assert "cycles: equal" in out


def _random_program(params, rng, signed, short_jobs=False):
    """A random layer's program and two samples; ``short_jobs``: at most ``lanes`` inputs (one switch beat),
    small weights (phi 1: a filter per column), mostly zero inputs over many pixels, so a filter tile computes
    in fewer cycles than its results take to stream."""
    mc = params.macro
    K = int(rng.integers(1, mc.lanes + 1) if short_jobs else rng.integers(5, 3 * mc.capacity_rows))
    N = int(rng.integers(mc.n_col if short_jobs else 1, 3 * mc.group_size))
    u = rng.normal(0, 1, (K, N)) * (1.0 if short_jobs else rng.choice([0.5, 4.0, 30.0, 90.0], N))
    u[rng.random((K, N)) < 0.05] = -128.0
    q = prune_quantize(u, mc, float(rng.choice([0.0, 0.3, 0.7])), scale=1.0)
    comp = compile_layer(q.w, q.phi, q.mask, mc, q.group_size)
    P = int(rng.integers(20, 40) if short_jobs else rng.integers(1, 30))
    lo, hi = (-128, 127) if signed else (0, 255)
    xs = rng.integers(lo, hi + 1, (2, P, K))
    xs[rng.random(xs.shape) < (0.9 if short_jobs else 0.4)] = 0
    return compile_program(comp, P, params, signed), xs


#: (macro, macros per core, core memories): lanes 1 and n_comp, odd n_col, 1 and 3 macros,
#: pipelined or not, tiny memories so layers need several pixel runs and STARTs.
CORNERS = [
    (dict(n_comp=4, n_col=6, n_row=2, lanes=4, pipeline=True), 3,
     dict(tile_slots=8, descriptors=16, mask_windows=40, out_pixels=10, max_row_tiles=64)),
    (dict(n_comp=8, n_col=4, n_row=4, lanes=1, pipeline=True), 1,
     dict(tile_slots=5, descriptors=7, mask_windows=30, out_pixels=7, max_row_tiles=64)),
]


@pytest.mark.slow
@pytest.mark.parametrize("corner,banks,out_banks,in_windows,result_lanes",
                         [(c, 1, 1, 1, 1) for c in range(len(CORNERS))]
                         + [(0, 2, 1, 1, 1), (1, 1, 2, 1, 1), (0, 1, 2, 3, 1), (0, 1, 2, 1, 3)])
def test_core_native_corners(corner, banks, out_banks, in_windows, result_lanes, rng):
    """Corner configurations; the first also with two tile banks (several STARTs: each START's first tile
    is loaded in full, the others while the pass before computes), the second with two output banks (one
    macro, one lane: results stream while the next pixel run computes), the first with three input windows
    a beat (its three macros' vectors delivered at once; pixel runs of 10 end in a round of one pixel), and
    the first with three results a beat (a lane count that is no power of two, one lane group a round; the
    round of one pixel streams two empty lanes)."""
    macro, M, core = CORNERS[corner]
    hw = HwConfig(name=f"corner{corner}" + ("-banks2" if banks == 2 else "") + ("-out2" if out_banks == 2 else "")
                  + (f"-win{in_windows}" if in_windows > 1 else "")
                  + (f"-res{result_lanes}" if result_lanes > 1 else ""),
                  macro=MacroConfig(in_bits=8, phi_max=2, **macro),
                  system=SystemConfig(macros_per_core=M), core=CoreConfig(**core, tile_banks=banks,
                                                                            out_banks=out_banks,
                                                                            in_windows=in_windows,
                                                                            result_lanes=result_lanes))
    _check_random_programs(hw, rng, trials=4)


def _check_random_programs(hw, rng, trials):
    from dbpim.verif.native import run_core_native
    params = CoreParams.from_config(hw)
    for trial in range(trials):
        signed = bool(trial % 2)
        prog, xs = _random_program(params, rng, signed)
        want = [run_core(prog, x) for x in xs]
        for stall in ((0.0, 0.0, 0), (0.4, 0.4, int(rng.integers(1 << 30)))):
            runs, _ = run_core_native(prog, xs, hw, stall=stall)
            for si in range(len(prog.segments)):
                for s, w in enumerate(want):
                    r = runs[si][s]
                    where = f"trial {trial} START {si} sample {s} stall {stall[0]}"
                    assert np.array_equal(r.beats, w.beats[si]), f"{where}: results"
                    if hw.core.result_lanes > 1:  # TKEEP: the lanes holding a pixel (model.core.result_order)
                        keep = np.concatenate([result_order(p.pixels, p.n_out, hw.core.result_lanes) >= 0
                                               for p in prog.segments[si].passes if p.last])
                        assert np.array_equal(r.keep, keep), f"{where}: TKEEP"
                    assert r.status == 0b010, f"{where}: STATUS {r.status:#x}"
                    if stall[0] == 0:
                        assert r.cycles == w.cycles[si], f"{where}: CYCLES {r.cycles} != {w.cycles[si]}"


def test_core_native_random_layers_small(rng):
    """Random layers (every phi, -128 weights, signed and unsigned) on the small core (``DBPIM_HW`` when set),
    full rate and stalled."""
    from dbpim.model.config import load_config
    from dbpim.verif.rtl import rtl_config
    _check_random_programs(load_config(rtl_config("small")), rng, trials=3)


def small_two_banks(tile_banks=2, out_banks=1, in_windows=1, result_lanes=1):
    """The small configuration with ``core.tile_banks``, ``core.out_banks``, ``core.in_windows`` and
    ``core.result_lanes`` (its own build folder)."""
    import dataclasses

    from dbpim.model.config import load_config
    name = ("small" + ("-banks2" if tile_banks == 2 else "") + ("-out2" if out_banks == 2 else "")
            + (f"-win{in_windows}" if in_windows > 1 else "") + (f"-res{result_lanes}" if result_lanes > 1 else ""))
    core = {"tile_banks": tile_banks, "out_banks": out_banks, "in_windows": in_windows, "result_lanes": result_lanes}
    return dataclasses.replace(load_config("small").replace(core=core), name=name, path=None)


@pytest.mark.slow  # test_hw_core.py's Amaranth run of a real layer with two tile banks alone is in make test
def test_core_native_random_layers_small_two_banks(rng):
    """The same with two tile banks: each pass's tile loads into the other bank while the pass before computes;
    results exact, CYCLES = the twin's (model.core_timing with tile_banks 2), full rate and stalled."""
    _check_random_programs(small_two_banks(), rng, trials=4)


@pytest.mark.slow  # test_hw_core.py's Amaranth run of a real layer with two output banks alone is in make test
@pytest.mark.parametrize("tile_banks", [1, 2])
def test_core_native_random_layers_small_two_out_banks(rng, tile_banks):
    """Two output banks (with one and two tile banks): a filter tile's results stream out of one bank while
    the next filter tile's passes fill the other; results exact and in order, CYCLES = the twin's
    (model.core_timing.job_cycles), full rate and stalled (a stalled stream delays the next hand-off)."""
    _check_random_programs(small_two_banks(tile_banks, 2), rng, trials=4)


@pytest.mark.parametrize("tile_banks,out_banks", [pytest.param(1, 1, marks=pytest.mark.slow), (2, 2)])
def test_core_native_random_layers_small_two_in_windows(rng, tile_banks, out_banks):
    """Two input windows a beat (both macros' vectors delivered at once by two switches and packers in lock
    step), with one tile and output bank and with two of each: results exact, CYCLES = the twin's
    (model.core_timing.round_delivery), full rate and stalled (a stalled input stream stalls both lanes)."""
    _check_random_programs(small_two_banks(tile_banks, out_banks, 2), rng, trials=4)


@pytest.mark.slow  # test_hw_core.py's Amaranth run streams two results a beat in make test
@pytest.mark.parametrize("tile_banks,out_banks,in_windows", [(1, 1, 1), (2, 2, 2)])
def test_core_native_random_layers_small_two_result_lanes(rng, tile_banks, out_banks, in_windows):
    """Two results a beat (both macros' results of a filter; TKEEP low on a lane past the pass's last pixel),
    with one tile and output bank and one window a beat, and with two of each: results exact and in order,
    TKEEP as model.core.result_order, CYCLES = the twin's (model.core_timing.stream_beats), full rate and
    stalled (a stalled result stream stalls both lanes)."""
    _check_random_programs(small_two_banks(tile_banks, out_banks, in_windows, 2), rng, trials=4)


def _stream_waits(prog, x):
    """Cycles the passes of ``prog`` wait, on sample ``x``, for the result stream before theirs (two output
    banks, one tile bank): the streams hidden with two banks are every START's but its last."""
    import dataclasses
    one = dataclasses.replace(prog.params, core=dataclasses.replace(prog.params.core, out_banks=1))
    plan = prog.plan
    beats = plan.pixels * plan.n_out * plan.last
    ends = np.append(plan.segment[1:] != plan.segment[:-1], True)
    hidden = beats[~ends].sum()
    c1 = run_core(dataclasses.replace(prog, params=one), x).cycles.sum()
    return int(hidden - (c1 - run_core(prog, x).cycles.sum()))


def test_core_native_two_out_banks_wait_for_the_stream(rng):
    """Two output banks on programs whose filter tiles compute in fewer cycles than the results before them
    take to stream: the hand-off waits for the stream's final beat and the next stream follows it with no
    gap (the wait max(0, stream before - job) of model.core_timing.job_cycles); exact, full rate and stalled."""
    from dbpim.verif.native import run_core_native
    hw = small_two_banks(1, 2)
    params = CoreParams.from_config(hw)
    found = 0
    for _ in range(400):
        prog, xs = _random_program(params, rng, False, short_jobs=True)
        if not prog.segments or _stream_waits(prog, xs[0]) <= 0:
            continue
        found += 1
        want = [run_core(prog, x) for x in xs]
        for stall in ((0.0, 0.0, 0), (0.4, 0.4, int(rng.integers(1 << 30)))):
            runs, _ = run_core_native(prog, xs, hw, stall=stall)
            for si in range(len(prog.segments)):
                for s, w in enumerate(want):
                    assert np.array_equal(runs[si][s].beats, w.beats[si]), (found, si, s, stall[0])
                    if stall[0] == 0:
                        assert runs[si][s].cycles == w.cycles[si], (found, si, s)
        if found == 2:
            break
    assert found == 2, "no random program waits for a stream"


@pytest.mark.parametrize("field,value,code", [("pixels", 0, 1), ("pixels", 65, 1), ("n_out", 5, 1), ("first", 0, 2),
                                              ("n_kept", 1, 3), ("n_kept", "+1", 3)])
def test_core_native_errors_abort_without_hanging(field, value, code, rng):
    """A bad descriptor, an accumulation without a first pass, masks that disagree with n_kept:
    STATUS.ERROR with its code, no hang, no result; the next good START is exact."""
    from dbpim.model import spec
    from dbpim.model.config import load_config
    hw = load_config("small")
    params = CoreParams.from_config(hw)
    prog, xs = _random_program(params, rng, False)
    while (len(prog.segments) != 1 or len(prog.segments[0].passes) < 2
           or not 2 <= prog.segments[0].passes[0].n_kept < hw.macro.capacity_rows):
        prog, xs = _random_program(params, rng, False)
    seg = prog.segments[0]
    p = seg.passes[0]
    good = {"tile": p.slot, "mask_base": p.mask_base, "n_win": p.n_win, "n_kept": p.n_kept, "pixels": p.pixels,
            "n_out": p.n_out, "first": int(p.first), "last": int(p.last)}
    desc = params.map.regions["desc"]
    value = good[field] + 1 if value == "+1" else value
    bad = [f"write {desc.address(0, k):x} {w:x}" for k, w in enumerate(spec.entry_words(desc.fields,
                                                                                        {**good, field: value}))]
    fix = [f"write {desc.address(0, k):x} {w:x}" for k, w in enumerate(spec.entry_words(desc.fields, good))]
    _bad_then_good(hw, prog, xs, bad, fix, code)


def _bad_then_good(hw, prog, xs, bad, fix, code, beats_before=0):
    """Load ``prog``, write ``bad`` and START: STATUS.ERROR with ``code``, no result (but the first
    ``beats_before`` of the twin's, streamed before the error); write ``fix`` and START again: the results and
    CYCLES of the twin."""
    from dbpim.verif.native import _parse_core, _run, build_native, write_core_stimulus
    lines = write_core_stimulus(prog, xs[:1])
    run = next(i for i, ln in enumerate(lines) if ln.startswith("window"))
    wins = [ln for ln in lines if ln.startswith("window")]
    lines = lines[:run] + bad + wins + ["run 100000", "flush"] + fix + lines[run:]
    exe, _ = build_native("core", hw)
    (first, second), _ = _parse_core(_run(exe, lines, "errors"), prog.params.psum_width)
    assert first.status & 0b110 == 0b110 and first.status >> 4 == code, f"STATUS {first.status:#x}"
    want = run_core(prog, xs[0])
    assert np.array_equal(first.beats, want.beats[0][:beats_before])
    assert np.array_equal(second.beats, want.beats[0]) and second.cycles == want.cycles[0] and second.status == 2


@pytest.mark.parametrize("out_banks", [1, 2])
def test_core_native_error_after_a_stream(rng, out_banks):
    """A bad descriptor after a filter tile's last pass: that filter tile's results leave in full and in order
    (with two output banks the failed run waits for their stream, then DONE and ERROR rise together), no
    later result; after the fix the START is exact."""
    from dbpim.model import spec
    hw = small_two_banks(1, out_banks)
    params = CoreParams.from_config(hw)
    prog, xs = _random_program(params, rng, False, short_jobs=True)
    while len(prog.segments) != 1 or prog.plan.last.sum() < 2:
        prog, xs = _random_program(params, rng, False, short_jobs=True)
    passes = prog.segments[0].passes
    k = next(i for i, p in enumerate(passes) if p.last) + 1   # the first pass after the first stream
    p = passes[k]
    good = {"tile": p.slot, "mask_base": p.mask_base, "n_win": p.n_win, "n_kept": p.n_kept, "pixels": p.pixels,
            "n_out": p.n_out, "first": int(p.first), "last": int(p.last)}
    desc = params.map.regions["desc"]
    words = [spec.entry_words(desc.fields, v) for v in ({**good, "pixels": 0}, good)]
    bad, fix = ([f"write {desc.address(k, i):x} {w:x}" for i, w in enumerate(ws)] for ws in words)
    _bad_then_good(hw, prog, xs, bad, fix, 1, beats_before=passes[k - 1].pixels * passes[k - 1].n_out)


@pytest.mark.parametrize("region,code,banks", [("mask", 3, 1), ("map", 1, 1), ("map", 1, 2)])
def test_core_native_reserved_bits_abort(region, code, banks, rng):
    """A mask or column-map word with a padding bit set (past its used bits) is a bad program:
    STATUS.ERROR with its code, no result; after rewriting the word the START is exact.
    (The small configuration's tile entries fill whole words: no padding bits to check.)
    With two tile banks the bad column map is the second pass's, loaded while the first computes."""
    from dbpim.model.config import load_config
    from dbpim.verif.native import write_core_stimulus
    hw = load_config("small") if banks == 1 else small_two_banks()
    params = CoreParams.from_config(hw)

    def later(prog):  # the second pass, on another tile, before any result streams (the first is not last)
        ps = prog.segments[0].passes
        return ps[1] if len(ps) > 1 and not ps[0].last and ps[1].slot != ps[0].slot else None

    prog, xs = _random_program(params, rng, False)
    while len(prog.segments) != 1 or (banks == 2 and later(prog) is None):
        prog, xs = _random_program(params, rng, False)
    seg = prog.segments[0]
    reg = params.map.regions[region]
    entry = seg.passes[0].mask_base if region == "mask" else (seg.passes[0] if banks == 1 else later(prog)).slot
    addr = reg.address(entry, reg.words - 1)
    lines = write_core_stimulus(prog, xs[:1])
    good = dict((int(a, 16), int(d, 16)) for _, a, d in (ln.split() for ln in lines if ln.startswith("write")))
    used_bits = sum(w * (n or 1) for _, w, n, _ in reg.fields) - 32 * (reg.words - 1)
    assert used_bits < 32, "the word has no padding bit"
    bad_word = good[addr] | (1 << int(rng.integers(used_bits, 32)))
    _bad_then_good(hw, prog, xs, [f"write {addr:x} {bad_word:x}"], [f"write {addr:x} {good[addr]:x}"], code)


@pytest.mark.parametrize("out_banks,in_windows", [pytest.param(1, 1, marks=pytest.mark.slow), (2, 2)])
def test_core_native_two_banks_reset_mid_layer_then_exact(rng, out_banks, in_windows):
    """Two tile banks: a reset in the middle of a START (while a tile may be loading into the other bank, or,
    with two output banks, results stream; in make test also with two input windows a beat, the build of
    test_core_native_random_layers_small_two_in_windows), then the same START again: results and CYCLES exact."""
    hw = small_two_banks(2, out_banks, in_windows)
    params = CoreParams.from_config(hw)
    prog, xs = _random_program(params, rng, False)
    while not prog.segments or len(prog.segments[0].passes) < 3:  # a fully pruned draw has no START
        prog, xs = _random_program(params, rng, False)
    want = [run_core(prog, x) for x in xs]
    from dbpim.verif.native import run_core_native
    for frac in (0.3, 0.6):
        runs, _ = run_core_native(prog, xs, hw, abort_after=(0, 0, int(frac * want[0].cycles[0])))
        for si in range(len(prog.segments)):
            for s, w in enumerate(want):
                assert np.array_equal(runs[si][s].beats, w.beats[si]), (frac, si, s)
                assert runs[si][s].cycles == w.cycles[si], (frac, si, s)

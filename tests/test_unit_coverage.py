"""Functional coverage of the SIMD core and the window generator (verif/coverage.py): the monitors' classification
on hand-made jobs (a tie, a saturation, a padding tap of each side), a complete stimulus closes the coverage, a
removed stimulus leaves its bins unhit, and the stream bins are required only of stalled runs."""

import itertools

import numpy as np
import pytest

pytest.importorskip("cocotb_coverage")

_n = itertools.count()


def _simd():
    from dbpim.verif.coverage import SIMDCoverage
    return SIMDCoverage(prefix=f"simdsyn{next(_n)}")


def _window():
    from dbpim.verif.coverage import WindowCoverage
    return WindowCoverage(prefix=f"windowsyn{next(_n)}")


def _hits(cov, point):
    return {b: h for b, h in cov.report()[point].items() if h}


def test_simd_tie_and_saturation_are_classified():
    """rescale(v, 1, 1): v odd is a tie (+ or - by the sign of v * m), v even is not; a lane past the channels
    counts nowhere; clamp to [0, 6] saturates 9 at hi and -1 at lo."""
    from dbpim.model.simd_core import descriptor
    cov = _simd()
    cov.job(descriptor("requant", 3, 1, lo=-100, hi=100), [[2, 4, 6, 5]], 4, consts={"m": 1, "s": 1})
    assert _hits(cov, "simd.round") == {} and _hits(cov, "simd.saturate") == {}
    assert _hits(cov, "simd.lane_group") == {"partial": 1}
    cov.job(descriptor("requant", 2, 1, lo=-100, hi=100), [[3, 2]], 2, consts={"m": 1, "s": 1})
    assert _hits(cov, "simd.round") == {"tie+": 1}
    cov.job(descriptor("requant", 2, 1, lo=-100, hi=100), [[-3, 8]], 2, consts={"m": 1, "s": 1})
    assert _hits(cov, "simd.round") == {"tie+": 1, "tie-": 1}
    cov.job(descriptor("clamp", 2, 1, lo=0, hi=6), [[9, -1]], 2)
    assert _hits(cov, "simd.saturate") == {"hi": 1, "lo": 1}


def test_simd_jobs_errors_and_reset_close_the_coverage():
    """The jobs of verif.simd_tb with gaps and back-pressure, each bad descriptor and a reset close the
    coverage; without the stalls only the stream bins stay unhit (required of stalled runs only); without the
    clamp job, the bad descriptors and the reset their bins stay unhit."""
    from dbpim.verif.coverage import missing, unstalled
    from dbpim.verif.simd_tb import bad_descriptors, simd_jobs
    jobs = simd_jobs(np.random.default_rng(3), 4, 7)

    def run(drop=(), stalled=True):
        cov = _simd()
        for j in jobs:
            if cov._names[j.desc["op"]] not in drop:
                cov.job(j.desc, j.a, 4, b=j.b, pad=j.pad, consts=j.consts, gaps=[0, 1] if stalled else [0],
                        held=int(stalled))
        if "err" not in drop:
            for d in bad_descriptors(8):
                cov.error(d, 8)
        if "reset" not in drop:
            cov.reset_while_busy()
        return cov

    full = run()
    assert missing(full.report(), full.required) == []
    calm = run(stalled=False)
    assert set(missing(calm.report(), calm.required)) == {"simd.stream: o_backpressure", "simd.stream: i_stall"}
    assert missing(calm.report(), unstalled(calm.required, 0.0)) == []
    assert unstalled(calm.required, 0.3) == calm.required
    bare = run(drop=("clamp", "err", "reset"))
    assert set(missing(bare.report(), bare.required)) == {"simd.op: clamp", "simd.reset: busy"} | {
        f"simd.err: {e}" for e in ("op", "channels=0", "channels>max", "window=0", "pixels=0", "lo>hi")}


def test_simd_bad_descriptors_have_one_cause_each():
    from dbpim.verif.coverage import SIMD_ERRORS
    from dbpim.verif.simd_tb import bad_descriptors
    for name, d in zip(SIMD_ERRORS, bad_descriptors(8)):
        cov = _simd()
        cov.error(d, 8)
        assert _hits(cov, "simd.err") == {name: 1}


def test_window_padding_sides_and_corner_are_classified():
    """A 3 x 3 kernel with padding 1 on a 3 x 3 map: pixel 0 reads the padding above, left and in the corner,
    the last pixel below, right and in the corner, the centre pixel none; stride and dilation 1 hit nothing."""
    from dbpim.model.window import WindowLayer, pass_words, table_entries
    layer = WindowLayer.of(1, 3, 3, 3, 3, padding=1)
    table = table_entries(layer, [0, 1, 2], 4)   # K = 9 in three windows of 4: the last reaches past K
    for q, want in ((0, {"top", "left", "corner"}), (8, {"bottom", "right", "corner"}), (4, set())):
        cov = _window()
        cov.job(layer.words(), table, [pass_words(layer, q, 1, 0, 3)], 4)
        assert set(_hits(cov, "window.pad")) == want, q
        assert _hits(cov, "window.past_k") == {"n_pad>0": 1} and _hits(cov, "window.stride") == {}
    cov = _window()
    cov.job(layer.words(), table, [pass_words(layer, 4, 1, 0, 2)], 4)  # windows 0 and 1: taps 0 .. 7 of 9
    assert _hits(cov, "window.past_k") == {} and _hits(cov, "window.pad") == {}


def test_window_designed_job_and_reset_close_the_coverage():
    """verif.test_window.designed_job (taken back to back: each pass in the cycle before the last beat before it
    leaves, the cycle that beat reads the buffer) with a gap and back-pressure, and a reset, closes the coverage;
    taken a cycle later, back_to_back stays unhit; a random job without padding leaves the padding bins unhit."""
    from dbpim.model.window import WindowLayer, generator_beats, pass_words, table_entries
    from dbpim.verif.coverage import missing
    from dbpim.verif.test_window import designed_job
    layer, buf, table, passes = designed_job(np.random.default_rng(0), 4, 96, 32)
    beats = len(generator_beats(buf, layer.words(), table, passes, 4))
    cycles = list(range(10, 10 + beats))
    per = [w[1] * w[3] for w in passes]  # PIXELS * N_WIN of each pass (one 32-bit word each)
    ends = np.cumsum(per) - 1
    taken = [8] + [cycles[ends[k - 1]] - 1 for k in range(1, len(passes))]
    for late, want in ((0, []), (1, ["window.pass: back_to_back"])):
        cov = _window()
        cov.job(layer.words(), table, passes, 4, taken=[t + late * (k > 0) for k, t in enumerate(taken)],
                beat_cycles=cycles, gaps=[0, 2], held=1)
        cov.reset_while_busy()
        assert missing(cov.report(), cov.required) == want
    flat = WindowLayer.of(2, 4, 4, 1, 1)
    cov = _window()
    cov.job(flat.words(), table_entries(flat, [0], 4), [pass_words(flat, 0, 4, 0, 1)], 4)
    assert {b for b in missing(cov.report(), cov.required) if b.startswith("window.pad")} == {
        f"window.pad: {s}" for s in ("top", "left", "bottom", "right", "corner")}

"""Functional coverage of the SIMD core, the window generator and the building blocks (verif/coverage.py): the
monitors' classification on hand-made jobs (a tie, a saturation, a padding tap of each side, a lone-MSB column, a
skipped bit column), a complete stimulus closes the coverage, a removed stimulus leaves its bins unhit, and the
stream bins are required only of stalled runs."""

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


# --------------------------------------------------------------------------- the building blocks

class _Stream:
    """The agents' records the block monitors read (``gaps`` of a source, ``held`` of a sink)."""

    def __init__(self, gaps=(), held=0):
        self.gaps, self.held = list(gaps), held


def _block(cls, **kw):
    return cls(prefix=f"{cls.__name__.lower()}{next(_n)}", **kw)


def test_cross_bins_and_errors():
    """A cross's bins are the product less the ignored tuples, named ``a x b``; a cross needs two dimensions."""
    from dbpim.verif.coverage import Cross, bin_name
    c = Cross([0, 1], ["a", "b"], ignore=[(1, "a")])
    assert [bin_name(t) for t in c.bins()] == ["0 x a", "0 x b", "1 x b"]
    with pytest.raises(ValueError, match="axes"):
        Cross([0, 1])
    with pytest.raises(ValueError, match="axes"):
        Cross([0, 1], [])


def test_dbmu_coverage_classifies_and_misses():
    """A lone-MSB column, reads of row 0 and the last row: their bins, the cross of Q and x; the rest unhit."""
    from dbpim.verif.coverage import DBMUCoverage, missing
    cov = _block(DBMUCoverage, n_row=4)
    cov.cells([0, 0, 0, 1])
    cov.read(3, 1, 1, 1, 0)
    cov.read(0, 0, 0, 0, 0)
    assert _hits(cov, "dbmu.cells") == {"lone_msb": 1} and _hits(cov, "dbmu.row") == {"first": 1, "last": 1}
    assert _hits(cov, "dbmu.q*x") == {"1 x 1": 1, "0 x 0": 1}
    assert set(missing(cov.report(), cov.required)) == {
        "dbmu.cells: all_zero", "dbmu.cells: all_one", "dbmu.product: lo", "dbmu.q*x: 0 x 1", "dbmu.q*x: 1 x 0"}
    with pytest.raises(ValueError, match="n_row"):
        DBMUCoverage(n_row=0)


def _ipu_run(gs, stalled=True):
    from dbpim.model import blocks
    from dbpim.verif.coverage import IPUCoverage
    cov = _block(IPUCoverage, in_bits=8)
    for g in gs:
        cov.group(g)
        for b, _, last in blocks.ipu(g, 8):
            cov.beat(b, last)
    cov.stream(_Stream([0, 2] if stalled else [0]), _Stream(held=int(stalled)))
    return cov


def test_ipu_coverage_closed_by_the_test_groups():
    """verif.test_ipu.groups closes the IPU's coverage (the stream bins only when stalled); without the groups of
    one bit column alone, the beats of columns 0 .. 6 as a group's last stay unhit; the MSB column as a beat
    before the last is no bin (it cannot happen)."""
    from dbpim.verif.coverage import missing, unstalled
    from dbpim.verif.test_ipu import groups
    gs = groups(np.random.default_rng(0), 4, 13)  # the corners and the lone columns only
    full = _ipu_run(gs)
    assert missing(full.report(), full.required) == []
    calm = _ipu_run(gs, stalled=False)
    assert set(missing(calm.report(), calm.required)) == {"ipu.stream: o_backpressure", "ipu.stream: i_stall"}
    assert missing(calm.report(), unstalled(calm.required, 0.0)) == []
    bare = _ipu_run(gs[:5])
    assert {f"ipu.column*last: {b} x 1" for b in range(1, 7)} <= set(missing(bare.report(), bare.required))
    assert "7 x 0" not in full.report()["ipu.column*last"]
    one = _ipu_run([np.array([0x80, 0, 0, 0])])
    assert _hits(one, "ipu.group") == {"lone_msb": 1} and set(_hits(one, "ipu.skip")) == {str(b) for b in range(7)}


def test_switch_coverage_closed_by_the_test_windows():
    """verif.test_switch.windows' corner windows (window 8, 2 lanes) close the switch's coverage; without the
    window of a lone last input and the one of the first input alone, its bin and the one-lane last beat stay
    unhit."""
    from dbpim.model import blocks
    from dbpim.verif.coverage import SwitchCoverage, missing
    from dbpim.verif.test_switch import windows
    wins = windows(np.random.default_rng(0), 8, 4, lanes=2)  # the corners and the window of one kept input
    for wins, want in ((wins, []), (wins[:2], ["switch.mask: lone_last", "switch.lanes*last: 1 x 1"])):
        cov = _block(SwitchCoverage, window=8, lanes=2)
        for d, m in wins:
            cov.mask(m)
            for _, lane_en, last in blocks.switch(d, m, 2):
                cov.beat(lane_en, last)
        cov.stream(_Stream([1]), _Stream(held=1))
        assert missing(cov.report(), cov.required) == want
    one_beat = _block(SwitchCoverage, window=16, lanes=16)  # one beat a window: never a full beat before the last
    assert one_beat.required["switch.lanes*last"] == [f"{k} x 1" for k in range(1, 17)]


def test_accumulator_and_adder_tree_coverage():
    """The accumulator: extremes, each shift x signed, phi x signed of a map (a slot wider than phi_max counts
    nowhere), an unused column, a gap; the adder tree's designed steps close its coverage."""
    from dbpim.model import blocks
    from dbpim.model.config import load_config
    from dbpim.verif.coverage import AccumulatorCoverage, AdderTreeCoverage, missing
    from dbpim.verif.test_adder_tree import tree_cases
    mc = load_config("small").macro  # n_comp 4, n_col 4, phi_max 2
    cov = _block(AccumulatorCoverage, macro=mc)
    cov.vector([[512, 0, 0, -512]], [7], [0, 0, 1, -1], signed=True)
    assert _hits(cov, "accumulator.col_sum") == {"max": 1}  # -512 is in the unused column
    assert _hits(cov, "accumulator.shift*signed") == {"7 x 1": 1}
    assert _hits(cov, "accumulator.phi*signed") == {"2 x 1": 1, "1 x 1": 1}
    assert _hits(cov, "accumulator.column") == {"unused": 1} and _hits(cov, "accumulator.valid") == {}
    cov.vector(np.zeros((1, 4), int), [0], [0, 0, 0, 0], signed=False, gap=True)
    assert _hits(cov, "accumulator.phi*signed") == {"2 x 1": 1, "1 x 1": 1}
    tree = _block(AdderTreeCoverage, n_comp=4)
    for hi, lo, idx, sign in tree_cases(np.random.default_rng(0), 4, 8):  # the corners and designed steps only
        tree.step(hi, lo, idx, sign, int(blocks.adder_tree(hi, lo, idx, sign)))
    assert missing(tree.report(), tree.required) == []

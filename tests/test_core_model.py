"""The PIM core's program and golden twin (model/core.py, model/core_timing.py), without the RTL.

The twin's outputs equal ``model.layer.run_layer`` bit for bit; the program
respects every capacity of the core; the timing function's terms on small
hand-checked cases; one-line errors for layers that do not fit.
"""

import numpy as np
import pytest

from dbpim.model.compile import compile_layer
from dbpim.model.config import CoreConfig, HwConfig, MacroConfig, SystemConfig, load_config
from dbpim.model.core import CoreParams, assemble, bus_writes, compile_program, input_windows, run_core
from dbpim.model.core_timing import PlanError, core_layer_cycles, delivery_cycles, load_cycles, pass_cycles
from dbpim.model.layer import run_layer
from dbpim.model.quant import prune_quantize
from dbpim.model.spec import CORE_LATENCY, input_bits

SMALL = MacroConfig(n_comp=4, n_col=4, n_row=4, in_bits=8, phi_max=2, lanes=2, pipeline=False)


def _layer(rng, mc=SMALL, K=None, N=None, sparsity=0.5, gain=None):
    """A random compiled layer; ``gain`` fixes every filter's weight scale (default: one of four per filter)."""
    K = K or int(rng.integers(5, 3 * mc.capacity_rows))
    N = N or int(rng.integers(1, 3 * mc.group_size))
    u = rng.normal(0, 1, (K, N)) * (rng.choice([0.5, 4.0, 30.0, 90.0], N) if gain is None else gain)
    q = prune_quantize(u, mc, sparsity, scale=1.0)
    return compile_layer(q.w, q.phi, q.mask, mc, q.group_size)


def _hw(core=None, M=2, mc=SMALL):
    return HwConfig(name="t", macro=mc, system=SystemConfig(macros_per_core=M), core=core or CoreConfig())


@pytest.mark.parametrize("signed", [False, True])
def test_twin_outputs_equal_run_layer(signed, rng):
    tiny = CoreConfig(tile_slots=3, descriptors=5, mask_windows=12, out_pixels=5, max_row_tiles=8)
    for core in (CoreConfig(), tiny):
        comp = _layer(rng)
        P = int(rng.integers(1, 20))
        lo, hi = (-128, 127) if signed else (0, 255)
        x = rng.integers(lo, hi + 1, (P, comp.K))
        try:
            prog = compile_program(comp, P, CoreParams.from_config(_hw(core)), signed)
        except PlanError:
            continue
        res = run_core(prog, x)
        assert np.array_equal(res.out, run_layer(x, comp, signed).out.astype(np.int64))
        assert np.array_equal(assemble(prog, res.beats), res.out)
        assert res.cycles.shape == (len(prog.segments),)


def test_program_respects_the_core_capacities(rng):
    core = CoreConfig(tile_slots=4, descriptors=6, mask_windows=20, out_pixels=6, max_row_tiles=8)
    params = CoreParams.from_config(_hw(core))
    comp = _layer(rng, K=3 * SMALL.capacity_rows, N=3 * SMALL.group_size, sparsity=0.2)
    prog = compile_program(comp, 13, params)
    assert len(prog.segments) > 1
    covered = np.zeros((13, comp.N), int)
    for seg in prog.segments:
        assert len(seg.passes) <= core.descriptors and len(seg.slots) <= core.tile_slots
        assert len(seg.masks) <= core.mask_windows
        for p in seg.passes:
            assert 1 <= p.pixels <= core.out_pixels and p.n_kept == int(np.sum(seg.masks[p.mask_base:p.mask_base
                                                                                               + p.n_win]))
            if p.last:
                covered[p.p0:p.p0 + p.pixels, comp.tiles[p.tile].filters[:p.n_out]] += 1
        addrs = [a for a, _ in bus_writes(prog, seg)]
        assert len(addrs) == len(set(addrs))  # every word written once
    held = sorted({int(f) for t in comp.tiles for f in t.filters if f >= 0})
    assert np.all(covered[:, held] == 1) and covered.sum() == 13 * len(held)


def test_input_windows_are_the_kept_rows_windows(rng):
    comp = _layer(rng)
    prog = compile_program(comp, 3, CoreParams.from_config(_hw()))
    x = rng.integers(0, 256, (3, comp.K))
    seg = prog.segments[0]
    wins = input_windows(prog, seg, x)
    assert wins.shape == (sum(p.pixels * p.n_win for p in seg.passes), SMALL.n_comp)
    p = seg.passes[0]
    rows = comp.tiles[p.tile].rows.reshape(-1)
    rows = rows[rows >= 0]
    kept = wins[:p.n_win][np.array(seg.masks[p.mask_base:p.mask_base + p.n_win])]
    assert np.array_equal(kept, x[0, rows])  # the mask picks exactly the tile's rows, in order


@pytest.mark.parametrize("M,W", [(2, 2), (3, 3), (4, 2)])
def test_input_windows_carry_a_group_of_macros_a_beat(rng, M, W):
    """core.in_windows W: a beat carries W windows, window s of a beat is that window of the group's pixel
    ``rM + gW + s``, zero where the round has no such pixel; the W = 1 stream's windows in the same order."""
    comp = _layer(rng)
    P = 2 * M + 1  # the last round has one pixel: its group's other lanes are zero
    hw = _hw(CoreConfig(in_windows=W), M=M)
    prog = compile_program(comp, P, CoreParams.from_config(hw))
    one = compile_program(comp, P, CoreParams.from_config(_hw(M=M)))
    x = rng.integers(1, 256, (P, comp.K))
    for seg, seg1 in zip(prog.segments, one.segments):
        wins, ref = input_windows(prog, seg, x), input_windows(one, seg1, x)
        n = SMALL.n_comp
        assert wins.shape[1] == W * n
        at, at1 = 0, 0
        for p in seg.passes:
            nw = p.n_win
            for r in range(-(-p.pixels // M)):
                for g in range(M // W):
                    px = [r * M + g * W + s for s in range(W)]
                    if px[0] >= p.pixels:
                        continue
                    for s, q in enumerate(px):
                        got = wins[at:at + nw, s * n:(s + 1) * n]
                        if q < p.pixels:
                            assert np.array_equal(got, ref[at1 + q * nw:at1 + (q + 1) * nw])
                        else:
                            assert not got.any()
                    at += nw
            at1 += p.pixels * nw
        assert at == wins.shape[0] and at1 == ref.shape[0]


def test_in_windows_must_divide_the_macros():
    from dbpim.model.config import ConfigError
    with pytest.raises(ConfigError, match="core.in_windows: must divide system.macros_per_core=4, got 3"):
        _hw(CoreConfig(in_windows=3), M=4)
    with pytest.raises(ConfigError, match="core.in_windows"):
        CoreConfig(in_windows=0)


def test_in_windows_one_keeps_the_recorded_digest():
    """A design point recorded before core.in_windows existed keeps its digest (to_dict leaves the key out at 1),
    another value changes it."""
    hw = load_config("paper")
    assert "in_windows" not in hw.to_dict()["core"]
    assert hw.replace(core={"in_windows": 2}).to_dict()["core"]["in_windows"] == 2
    assert hw.replace(core={"in_windows": 2}).digest() != hw.digest()


def deliver_cycles(rows, mc):
    """:func:`delivery_cycles` of one row tile."""
    return int(delivery_cycles(rows, np.zeros(len(rows), np.int64), 1, mc.n_comp, mc.lanes)[0])


def test_deliver_and_load_cycles():
    mc = SMALL  # n_comp 4, lanes 2, n_col 4
    # windows 0 and 2 hold 3 and 1 kept rows: ceil(3/2) + ceil(1/2) = 3; 4 rows fill one cell row exactly
    assert deliver_cycles(np.array([0, 1, 2, 9]), mc) == 3
    # windows 0 (4 rows) and 1 (1 row): 2 + 1 beats; the last beat's one input is the remainder itself: no stall
    assert deliver_cycles(np.array([0, 1, 2, 3, 4]), mc) == 3
    # windows 0 and 1 hold 3 each: 2 + 2 beats; the last beat (1 input) completes no row: no stall
    assert deliver_cycles(np.array([0, 1, 2, 4, 5, 6]), mc) == 4
    # 3 + 2 rows: the last beat's 2 inputs on top of 3 complete a row and leave 1: one stall
    assert deliver_cycles(np.array([0, 1, 2, 4, 5]), mc) == 2 + 1 + 1
    assert list(load_cycles([0, 1, 3])) == [1, 1, 3]  # one cell row per cycle
    # vectorised over row tiles: the same counts, each row tile on its own
    rows = np.array([0, 1, 2, 9, 0, 1, 2, 4, 5])
    seg = np.array([0, 0, 0, 0, 2, 2, 2, 2, 2])
    assert list(delivery_cycles(rows, seg, 3, mc.n_comp, mc.lanes)) == [3, 0, 4]


@pytest.mark.parametrize("c,deliver,bound", [([10, 12, 9], 5, "compute"), ([3, 2, 3], 1, "drain"),
                                             ([3, 2, 3], 5, "deliver"), ([3, 2, 3], 5, "deliver2")])
def test_pass_cycles_formula(c, deliver, bound):
    """One pass, 2 macros, 3 pixels: rounds (c0, c1) and (c2); load 7, n_col 4, stream 3 x 2; ``deliver2``:
    core.in_windows 2, both vectors of the first round delivered at once (one group: load binds B_0)."""
    W = 2 if bound == "deliver2" else 1
    got = pass_cycles([7], [deliver], np.array([c]), [3], [6], macros=2, n_col=4, in_windows=W)
    b0 = max(7, (2 // W) * deliver + CORE_LATENCY["deliver"])
    bound = "deliver" if W == 2 else bound
    step = {"compute": max(c[:2]), "drain": 4,
            "deliver": deliver + CORE_LATENCY["deliver"] + CORE_LATENCY["barrier"]}
    assert step[bound] == max(step.values())
    assert int(got[0]) == CORE_LATENCY["pass"] + b0 + step[bound] + max(c[2], 4) + 4 + 6


def test_core_layer_cycles_equal_the_twin(rng):
    hw = load_config("small")
    comp = _layer(rng, mc=hw.macro)
    prog = compile_program(comp, 6, CoreParams.from_config(hw))
    xs = rng.integers(0, 256, (3, 6, comp.K))
    cyc = core_layer_cycles(comp, input_bits(xs, False), hw.system.macros_per_core, hw.core)
    assert np.array_equal(cyc, np.stack([run_core(prog, x).cycles for x in xs]))


def test_plan_errors_are_one_line(rng):
    comp = _layer(rng, K=3 * SMALL.capacity_rows, sparsity=0.0, gain=30.0)  # small weights could all be 0
    for core, needle in ((CoreConfig(max_row_tiles=1), "core.max_row_tiles=1"),
                         (CoreConfig(tile_slots=1), "core.tile_slots=1")):
        with pytest.raises(PlanError) as e:
            compile_program(comp, 4, CoreParams.from_config(_hw(core)), name="conv9")
        msg = str(e.value)
        assert "\n" not in msg and msg.startswith("conv9: filter tile") and needle in msg
    with pytest.raises(PlanError, match="compiled for"):
        compile_program(comp, 4, CoreParams.from_config(load_config("paper")))


def test_two_tile_banks_hide_the_next_load(rng):
    """tile_banks 2: each pass but a START's first waits only for max(0, load - overlap of the pass before),
    overlap = the pass's cycles after its first round start + 1 (docs/design.md §11); checked against the
    one-bank passes of model.core_timing.pass_cycles, pass by pass, with loads stretched as an off-chip fetch
    stretches them (sim_bench). With the core's own loads (one cell row per cycle from its tile store) the
    first round's delivery already covers every load: two banks change no CYCLES."""
    import dataclasses

    from dbpim.model.core_timing import layer_cycles, pixel_cycles
    mc = MacroConfig(n_comp=4, n_col=4, n_row=8, in_bits=8, phi_max=2, lanes=4, pipeline=False)
    comp = _layer(rng, mc=mc, K=5 * mc.capacity_rows, N=6, sparsity=0.0, gain=30.0)  # >= 4 row tiles of 8 rows
    P = 3
    xs = rng.integers(0, 256, (2, P, comp.K)) * (rng.random((2, P, comp.K)) < 0.05)  # sparse: short passes
    one = compile_program(comp, P, CoreParams.from_config(_hw(CoreConfig(descriptors=8, out_pixels=2), M=1, mc=mc)))
    two = compile_program(comp, P, CoreParams.from_config(
        _hw(CoreConfig(descriptors=8, out_pixels=2, tile_banks=2), M=1, mc=mc)))
    plan = one.plan
    assert plan.n_segments >= 2 and np.array_equal(plan.segment, two.plan.segment)
    for stretch in (1, 40):
        slow = dataclasses.replace(plan, load=plan.load * stretch)
        for x in xs:
            pix = pixel_cycles(input_bits(x, False), comp.tiles, mc)
            comp_ = np.zeros((plan.tile.size, int(plan.pixels.max())), np.int64)
            for i in range(plan.tile.size):
                comp_[i, :plan.pixels[i]] = pix[plan.p0[i]:plan.p0[i] + plan.pixels[i], plan.tile[i]]
            stream = plan.pixels * plan.n_out * plan.last
            whole = pass_cycles(slow.load, plan.deliver, comp_, plan.pixels, stream, macros=1, n_col=mc.n_col)
            d0 = plan.deliver + CORE_LATENCY["deliver"]  # M_0 = 1 vector with one macro
            after = pass_cycles(np.zeros_like(plan.load), plan.deliver, comp_, plan.pixels, stream, 1, mc.n_col) \
                - CORE_LATENCY["pass"] - d0
            want = whole.copy()
            for k in range(1, plan.tile.size):
                if plan.segment[k] == plan.segment[k - 1]:
                    waited = max(0, int(slow.load[k]) - (int(after[k - 1]) + 1))
                    want[k] = CORE_LATENCY["pass"] + max(waited, int(d0[k])) + after[k]
            starts = [want[plan.segment == s].sum() + CORE_LATENCY["run"] for s in range(plan.n_segments)]
            c1 = layer_cycles(slow, pix[None], mc, 1, tile_banks=1)[0]
            c2 = layer_cycles(slow, pix[None], mc, 1, tile_banks=2)[0]
            assert list(c2) == starts
            assert list(c1) == [whole[plan.segment == s].sum() + CORE_LATENCY["run"]
                                for s in range(plan.n_segments)]
            if stretch == 1:  # the core itself: loads within the first round's delivery
                assert np.all(plan.load < d0)
                r1, r2 = run_core(one, x), run_core(two, x)
                assert np.array_equal(r1.cycles, c1) and np.array_equal(r2.cycles, c2)
                assert np.array_equal(c1, c2) and np.array_equal(r1.out, r2.out)
            else:  # stretched loads: all but each START's first partly hidden
                assert np.all(c2 < c1)
                assert np.all(c1 - c2 <= [((plan.segment == s).sum() - 1) * (after.max() + 1)
                                          for s in range(plan.n_segments)])


def _stream_timeline(plan, pix, mc, M, tile_banks, out_banks):
    """START cycles from the docstring's words, cycle by cycle in absolute time (not model.core_timing's sums):
    a pass's cycles up to its hand-off, the result stream's busy interval, the wait for it; (S, segments)."""
    from dbpim.model.core_timing import pass_after, round_compute, round_sizes
    S = pix.shape[0]
    out = np.zeros((S, plan.n_segments), np.int64)
    for s in range(S):
        for g in range(plan.n_segments):
            t = 0                     # cycles of the START so far (the pass's last cycle is t - 1)
            free = 0                  # first cycle the result stream is free again
            overlap = None            # load cycles the pass before hides (tile_banks 2), None: START's first
            for i in np.nonzero(plan.segment == g)[0]:
                npx = int(plan.pixels[i])
                C = round_compute(pix[s, plan.p0[i]:plan.p0[i] + npx, plan.tile[i]][None], M)
                m_r = round_sizes(np.array([npx]), M, C.shape[-1])
                after = int(pass_after(plan.deliver[i:i + 1], C, m_r, 0, mc.n_col)[0])
                load = int(plan.load[i])
                if tile_banks == 2 and overlap is not None:
                    load = max(0, load - overlap)
                b0 = max(load, int(m_r[0, 0] * plan.deliver[i] + CORE_LATENCY["deliver"]))
                beats = npx * int(plan.n_out[i]) if plan.last[i] else 0
                t += CORE_LATENCY["pass"] + b0 + after   # the hand-off cycle is t - 1 at the earliest
                if out_banks == 1:
                    t += beats                             # streamed in the pass
                    extra = beats
                else:
                    wait = max(0, free - t) if plan.last[i] else 0  # the stream ends in cycle free - 1
                    t += wait
                    extra = wait
                    if plan.last[i]:
                        free = t + beats                   # beats in cycles t .. t + beats - 1
                overlap = after + extra + 1
            out[s, g] = max(t, free) + CORE_LATENCY["run"]
    return out


@pytest.mark.parametrize("tile_banks,out_banks", [(1, 2), (2, 2), (2, 1), (1, 1)])
def test_two_out_banks_stream_while_the_next_job_computes(rng, tile_banks, out_banks):
    """out_banks 2: a job's results stream while the next job of the START computes; a job's last pass hands
    its results over only once the stream before it is over (its wait: max(0, stream before - its cycles)),
    the START's last stream is waited for in full; with tile_banks 2 the wait lengthens the overlap that hides
    the next job's first load. layer_cycles = an absolute-time replay of docs/design.md §11, with the core's
    loads and with loads stretched as an off-chip fetch stretches them (sim_bench); never slower than one bank,
    results unchanged."""
    import dataclasses

    from dbpim.model.core_timing import layer_cycles, pixel_cycles
    mc = MacroConfig(n_comp=4, n_col=4, n_row=8, in_bits=8, phi_max=2, lanes=4, pipeline=False)
    comp = _layer(rng, mc=mc, K=3 * mc.capacity_rows, N=9, sparsity=0.3, gain=30.0)
    P = 7
    xs = rng.integers(0, 256, (2, P, comp.K)) * (rng.random((2, P, comp.K)) < 0.2)
    core = CoreConfig(descriptors=8, out_pixels=3, tile_banks=tile_banks, out_banks=out_banks)
    prog = compile_program(comp, P, CoreParams.from_config(_hw(core, M=2, mc=mc)))
    plan = prog.plan
    assert plan.n_segments >= 2 and plan.last.sum() > plan.n_segments  # STARTs of several jobs
    pix = np.stack([pixel_cycles(input_bits(x, False), comp.tiles, mc) for x in xs])
    for stretch in (1, 60):
        slow = dataclasses.replace(plan, load=plan.load * stretch)
        got = layer_cycles(slow, pix, mc, 2, tile_banks=tile_banks, out_banks=out_banks)
        assert np.array_equal(got, _stream_timeline(slow, pix, mc, 2, tile_banks, out_banks)), stretch
        one = layer_cycles(slow, pix, mc, 2, tile_banks=tile_banks, out_banks=1)
        assert np.all(got <= one)
        if out_banks == 2 and stretch == 1:
            # jobs short next to their streams: some streaming hidden in every sample (a START of one job has
            # nothing to hide its stream behind, so a segment may equal one bank: DBPIM_SEED=2326984685 drew one)
            assert np.all(got.sum(axis=-1) < one.sum(axis=-1))
    for x in xs:
        r = run_core(prog, x)
        assert np.array_equal(r.out, run_layer(x, comp, False).out.astype(np.int64))


@pytest.mark.parametrize("banks", [1, 2])
def test_core_layer_cycles_equal_the_twin_both_banks(rng, banks):
    hw = load_config("small").replace(core={"tile_banks": banks, "out_banks": banks})
    comp = _layer(rng, mc=hw.macro)
    prog = compile_program(comp, 9, CoreParams.from_config(hw))
    xs = rng.integers(0, 256, (3, 9, comp.K))
    cyc = core_layer_cycles(comp, input_bits(xs, False), hw.system.macros_per_core, hw.core)
    assert np.array_equal(cyc, np.stack([run_core(prog, x).cycles for x in xs]))

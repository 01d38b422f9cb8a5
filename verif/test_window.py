"""The input buffer and window generator against its twin ``model.window.generator_beats``, on Verilator.

A random layer (kernel 1 or 3, stride 1 / 2, padding 0 / 1, dilation 1 / 2,
several channel counts, signed or unsigned) is written into the buffer, a
random window table and random passes are queued on ``d`` with random gaps,
and ``o`` is taken under random back-pressure (the ``stall`` axis; 0 = full
rate): every beat is compared in order with the twin's. Before them a designed
job (padding on every side and in the corners, stride and dilation 2, a
window past K, passes without beats between back-to-back passes) and after
them a reset while a pass streams (no beat and no busy left, the same passes
exact after it); the functional coverage
(:data:`verif.coverage.WINDOW_REQUIRED`) must close, and the Verilator runs
write ``build/coverage/window-<cfg>-stall<s>/coverage.{json,txt}``. The same
body runs on the Amaranth simulator in ``tests/test_window.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from dbpim.model.spec import WINDOW_ENTRY, input_range
from dbpim.model.window import WindowLayer, buffer_image, generator_beats, pass_words, table_entries
from dbpim.verif.rtl import configs
from dbpim.verif.tb import COCOTB_TIMEOUT, env_rng

STALLS = [0.0, 0.3]


def random_layer(rng, n_comp: int, channels=None, base_max: int = 6) -> WindowLayer:
    """A random convolution: kernel 1 or 3 (or 3 x 1), stride 1 / 2, padding 0 / 1, dilation 1 / 2, each
    the same on both axes or (one time in three) drawn per axis."""
    k = int(rng.choice([1, 3]))
    kh, kw = k, int(rng.choice([1, k]))

    def pair(lo, hi):
        a = int(rng.integers(lo, hi))
        return (a, int(rng.integers(lo, hi))) if rng.random() < 1 / 3 else (a, a)

    (sh, sw), (ph, pw), (dh, dw) = pair(1, 3), pair(0, 2), pair(1, 3)
    C = int(channels or rng.choice([1, 2, 3, 5, 8]))
    H = int(rng.integers(dh * (kh - 1) + 1, dh * (kh - 1) + 6))
    W = int(rng.integers(dw * (kw - 1) + 1, dw * (kw - 1) + 6))
    return WindowLayer.of(C, H, W, kh, kw, (sh, sw), (ph, pw), (dh, dw), base=int(rng.integers(0, base_max)))


def random_map(rng, layer: WindowLayer, signed: bool) -> np.ndarray:
    lo, hi = input_range(signed)
    return rng.integers(lo, hi + 1, (layer.channels, layer.height, layer.width))


def random_job(rng, n_comp: int, words: int, windows: int):
    """A random layer that fits a buffer of ``words``, a random window table and 1 to 4 random passes."""
    layer = random_layer(rng, n_comp, base_max=40)
    while layer.base + layer.elements > words * n_comp:
        layer = random_layer(rng, n_comp, base_max=40)
    signed = bool(rng.integers(0, 2))
    buf = buffer_image(layer, random_map(rng, layer, signed), signed, words, n_comp)
    nw = -(-layer.K // n_comp)
    table_win = rng.integers(0, nw, int(rng.integers(1, min(windows, 3 * nw) + 1)))
    table = table_entries(layer, table_win, n_comp)
    passes = []
    for _ in range(int(rng.integers(1, 5))):
        p0 = int(rng.integers(0, layer.pixels))
        base = int(rng.integers(0, len(table)))
        passes.append(pass_words(layer, p0, int(rng.integers(1, min(6, layer.pixels - p0) + 1)), base,
                                 int(rng.integers(1, len(table) - base + 1))))
    return layer, buf, table, passes


def words_int(words) -> int:
    """Consecutive 32-bit words as one port value, word 0 lowest."""
    return sum(int(w) << (32 * k) for k, w in enumerate(words))


def beats_of(payloads, n_comp: int) -> np.ndarray:
    """Window payloads (ints) as uint8 (beats, n_comp), input 0 = the lowest byte."""
    return np.array([[(int(p) >> (8 * e)) & 0xFF for e in range(n_comp)] for p in payloads],
                    np.uint8).reshape(-1, n_comp)


async def program(tb, buf, n_comp: int, layer_words, table) -> None:
    """Hold the layer descriptor; write the buffer's words that are not zero, then the window table."""
    tb.set("layer", words_int(layer_words))
    rows = np.asarray(buf, np.int64).reshape(-1, n_comp)
    for a in np.nonzero(rows.any(1))[0]:
        tb.set("w_en", 1)
        tb.set("w_addr", int(a))
        tb.set("w_data", sum(int(v) << (8 * e) for e, v in enumerate(rows[a])))
        await tb.tick()
    tb.set("w_en", 0)
    for a, t in enumerate(table):
        tb.set("t_en", 1)
        tb.set("t_addr", a)
        tb.set("t_data", int(t))
        await tb.tick()
    tb.set("t_en", 0)


def designed_job(rng, n_comp: int, words: int, windows: int):
    """A job that hits the geometry bins of :data:`verif.coverage.WINDOW_REQUIRED`: a 3 x 3 kernel at stride 2
    and dilation 2 with padding 1 on a 5 x 5 map (taps above, left of, below, right of the map and in its
    corners), K = 9 (the last window reaches past K), a window wholly past K, every window of every pixel, one
    pass per pixel (taken back to back) with passes of no pixel and of no window between them."""
    layer = WindowLayer.of(1, 5, 5, 3, 3, (2, 2), (1, 1), (2, 2), base=int(rng.integers(0, 4)))
    assert layer.base + layer.elements <= words * n_comp, "the designed job's map does not fit the buffer"
    signed = bool(rng.integers(0, 2))
    buf = buffer_image(layer, random_map(rng, layer, signed), signed, words, n_comp)
    nw = -(-layer.K // n_comp)
    table = table_entries(layer, list(range(min(nw, windows - 1))), n_comp)
    # and a window wholly past K (N_PAD = n_comp; the compiler never writes one): all its inputs are 0, although
    # its first tap, the kernel's centre, lies inside the map
    table.append(WINDOW_ENTRY[0].value(CHANNEL=0, KI=1, KJ=1, N_PAD=n_comp))
    passes = [pass_words(layer, 0, 0, 0, len(table))]
    for q in range(layer.pixels):
        passes.append(pass_words(layer, q, 1, 0, len(table)))
        if q == 1:
            passes.append(pass_words(layer, q, 1, 0, 0))
    return layer, buf, table, passes


async def clear(tb, buf, n_comp: int) -> None:
    """Zero the map's words again (the twin reads a zeroed buffer around the next job's map)."""
    tb.set("w_data", 0)
    for a in np.nonzero(np.asarray(buf).reshape(-1, n_comp).any(1))[0]:
        tb.set("w_en", 1)
        tb.set("w_addr", int(a))
        await tb.tick()
    tb.set("w_en", 0)


async def run_job(tb, job, n_comp: int, label: str, cov=None) -> None:
    """Program a job, queue its passes, take its beats: they equal the twin's; ``cov`` samples the job."""
    layer, buf, table, passes = job
    want = generator_beats(buf, layer.words(), table, passes, n_comp)
    await program(tb, buf, n_comp, layer.words(), table)
    src, snk = tb.source("d"), tb.sink("o")
    a0, g0, h0 = len(src.accepted), len(src.gaps), snk.held
    src.send([words_int(p) for p in passes])
    got, cycles = await snk.recv(tb, len(want), with_cycles=True)
    await src.wait(tb)  # the trailing passes without beats
    got = beats_of(got, n_comp)
    assert got.shape == want.shape and np.array_equal(got, want), f"{label}: {layer}"
    if cov is not None:
        cov.job(layer.words(), table, passes, n_comp, taken=src.accepted[a0:], beat_cycles=cycles,
                gaps=src.gaps[g0:], held=snk.held - h0)


def holds_mid_pass(job, n_comp: int, taken: int = 2) -> bool:
    """Whether the job's beat ``taken`` (0-based) belongs to the pass of beat ``taken - 1``, with a beat after it.

    Only then is a pass sure to run once a sink has taken ``taken`` beats and holds the next: at a pass boundary
    the next pass starts only if its descriptor is on offer in the cycle of the last beat (a source gap leaves
    the generator idle, ``busy`` low).
    """
    layer, buf, table, passes = job
    beats = [len(generator_beats(buf, layer.words(), table, [p], n_comp)) for p in passes]
    ends = np.cumsum(beats)
    return int(ends[-1]) >= taken + 2 and taken not in ends


def reset_job(rng, n_comp: int, words: int, windows: int):
    """A random job (:func:`random_job`) whose sink, taking two beats and holding the third, stops it mid-pass
    (:func:`holds_mid_pass`)."""
    job = random_job(rng, n_comp, words, windows)
    while not holds_mid_pass(job, n_comp):
        job = random_job(rng, n_comp, words, windows)
    return job


async def window_body(tb, n_comp: int, words: int, windows: int, seed: int, trials: int = 3, cov=None) -> None:
    """The designed job, ``trials`` random jobs, then a reset while a random job streams and that job again,
    one after another on one DUT; each job's beats equal the twin's. ``cov``
    (:class:`verif.coverage.WindowCoverage`, optional) samples every job and the reset."""
    rng = np.random.default_rng(seed)
    jobs = [designed_job(rng, n_comp, words, windows)]
    jobs += [random_job(rng, n_comp, words, windows) for _ in range(trials)]
    for k, job in enumerate(jobs):
        await run_job(tb, job, n_comp, f"seed {seed}, job {k}", cov)
        await clear(tb, job[1], n_comp)
    # a reset while a pass streams: the sink takes two beats and holds the third
    job = reset_job(rng, n_comp, words, windows)
    layer, buf, table, passes = job
    await program(tb, buf, n_comp, layer.words(), table)
    src, snk = tb.source("d"), tb.sink("o")
    snk.limit(2)
    src.send([words_int(p) for p in passes])
    while snk.pending < 2:
        await tb.tick()
    src.flush()
    await tb.reset_while_busy(snk, "a pass", seed, cov)
    await run_job(tb, job, n_comp, f"seed {seed}, after a reset", cov)
    await clear(tb, buf, n_comp)


def dut_params(cfg: str) -> dict:
    """The window generator's parameters for a configuration name or YAML path."""
    from dbpim.model.config import load_config
    from dbpim.model.window import buffer_words
    hw = load_config(cfg)
    return {"n_comp": hw.macro.n_comp, "words": buffer_words(hw.system.input_buffer_kib, hw.macro.n_comp,
                                                              hw.macro.in_bits), "windows": hw.core.mask_windows}


cocotb = pytest.importorskip("cocotb")


@cocotb.test(**COCOTB_TIMEOUT)
async def window_stream(dut):
    import os

    from dbpim.verif.tb import cocotb_tb
    from dbpim.verif.coverage import WindowCoverage, check_closed
    from dbpim.verif.tb import env_stall
    seed, _ = env_rng()
    p = dut_params(os.environ.get("DBPIM_CFG", "small"))
    cov = WindowCoverage(prefix="window")
    await window_body(await cocotb_tb(dut), p["n_comp"], p["words"], p["windows"], seed, cov=cov)
    check_closed(cov, stall=env_stall(), seed=seed, out=os.environ.get("DBPIM_COVERAGE_DIR"))


@pytest.mark.rtl
@pytest.mark.timeout(600)
@pytest.mark.parametrize("stall", STALLS)
@pytest.mark.parametrize("cfg", configs("window", ("small",)))
def test_window_rtl(cfg, stall):
    """The emitted Verilog (``dbpim_window.v``; the small configuration, or ``DBPIM_HW``) on Verilator under
    cocotb."""
    from dbpim.verif.rtl import ROOT, config_tag, run_cocotb
    cov = ROOT / "build" / "coverage" / f"window-{config_tag(cfg)}-stall{stall}"
    run_cocotb("window", cfg, "dbpim.verif.test_window", testcase="window_stream", stall=stall,
               env={"DBPIM_COVERAGE_DIR": str(cov)})

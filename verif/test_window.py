"""The input buffer and window generator against its twin ``model.window.generator_beats``, on Verilator.

A random layer (kernel 1 or 3, stride 1 / 2, padding 0 / 1, dilation 1 / 2,
several channel counts, signed or unsigned) is written into the buffer, a
random window table and random passes are queued on ``d`` with random gaps,
and ``o`` is taken under random back-pressure (the ``stall`` axis; 0 = full
rate): every beat is compared in order with the twin's. The same body runs on
the Amaranth simulator in ``tests/test_window.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from dbpim.model.spec import input_range
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


async def window_body(tb, n_comp: int, words: int, windows: int, seed: int, trials: int = 3) -> None:
    """``trials`` random jobs, one after another on one DUT; each job's beats equal the twin's."""
    rng = np.random.default_rng(seed)
    for trial in range(trials):
        layer, buf, table, passes = random_job(rng, n_comp, words, windows)
        want = generator_beats(buf, layer.words(), table, passes, n_comp)
        await program(tb, buf, n_comp, layer.words(), table)
        tb.source("d").send([words_int(p) for p in passes])
        got = beats_of(await tb.sink("o").recv(tb, len(want)), n_comp)
        assert got.shape == want.shape and np.array_equal(got, want), f"seed {seed}, trial {trial}: {layer}"
        # clear the map's words for the next job (the twin reads a zeroed buffer around the map)
        tb.set("w_data", 0)
        for a in np.nonzero(np.asarray(buf).reshape(-1, n_comp).any(1))[0]:
            tb.set("w_en", 1)
            tb.set("w_addr", int(a))
            await tb.tick()
        tb.set("w_en", 0)


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
    seed, _ = env_rng()
    p = dut_params(os.environ.get("DBPIM_CFG", "small"))
    await window_body(await cocotb_tb(dut), p["n_comp"], p["words"], p["windows"], seed)


@pytest.mark.rtl
@pytest.mark.timeout(600)
@pytest.mark.parametrize("stall", STALLS)
@pytest.mark.parametrize("cfg", configs("window", ("small",)))
def test_window_rtl(cfg, stall):
    """The emitted Verilog (``dbpim_window.v``; the small configuration, or ``DBPIM_HW``) on Verilator under
    cocotb."""
    from dbpim.verif.rtl import run_cocotb
    run_cocotb("window", cfg, "dbpim.verif.test_window", testcase="window_stream", stall=stall)

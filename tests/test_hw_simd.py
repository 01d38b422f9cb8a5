"""The SIMD core (hw.simd) on the Amaranth simulator: a real artifact's constants, bad descriptors, parameters,
and the timing function (docs/design.md §14). Every op on random tensors: verif/test_simd.py.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytest.importorskip("amaranth")
from dbpim.hw.simd import SIMDCore  # noqa: E402
from dbpim.model import simd_ops as so  # noqa: E402
from dbpim.model.requant import quantize_multipliers  # noqa: E402
from dbpim.model.simd_core import (beats_tensor, descriptor, simd_cycles, simd_schedule,  # noqa: E402
                                   tensor_beats)
from dbpim.verif.simd_tb import Job, expected_cycles, run_jobs  # noqa: E402
from dbpim.verif.tb import run_amaranth  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable"), pytest.mark.timeout(300)]

def _real_constants(art):
    """Per-channel (m, s, bias) of a real artifact's first mapped layer rescaled to the next one's input scale."""
    ops = [op for op in art.program["ops"] if op["op"] == "mapped"]
    recs = {r.name: r for r in art.layers}
    first, nxt = ops[0], ops[1]
    w_scale = np.concatenate([np.asarray(recs[n].scale, np.float64) for n in first["layers"]])
    acc_scale = float(first["x_scale"]) * w_scale
    m, s = quantize_multipliers(acc_scale / float(nxt["x_scale"]))
    return m, s, acc_scale


def test_simd_core_real_requant_constants(rng):
    """requant with a real artifact's per-channel constants (smallcnn on the small configuration)."""
    from conftest import real_artifact
    from dbpim.model.artifact import load
    art = load(real_artifact("smallcnn", "small"))
    m, s, _ = _real_constants(art)
    c = len(m)
    seed = int(rng.integers(1 << 31))
    r = np.random.default_rng(seed)
    factor = m / 2.0 ** s  # the real rescaling of each channel: accumulators aimed at outputs in [-64, 320)
    acc = np.round(r.integers(-64, 320, (2, c, 2, 2)) / factor[None, :, None, None]).astype(np.int64)
    bias = np.round(r.integers(-8, 8, c) / factor).astype(np.int64)
    want = so.requant(acc, m, s, 0, 255, bias=bias)
    assert np.mean((want > 0) & (want < 255)) > 0.5  # the arithmetic, not only the clamp
    job = Job(descriptor("requant", c, 8, lo=0, hi=255), tensor_beats(acc, 4), tensor_beats(want, 4),
              consts=dict(m=m, s=s, bias=bias))
    core = SIMDCore(lanes=4, channels=max(c, 8))
    cycles = run_amaranth(core, lambda tb: run_jobs(tb, [job], 4, max(c, 8), seed), stall=0.3, seed=seed)
    assert cycles[0] >= expected_cycles([job], 4)[0]
    assert np.array_equal(beats_tensor(job.want, acc.shape, 4), want)


def test_simd_core_bad_descriptor_raises_err():
    from dbpim.model.spec import pack, simd_descriptor_fields

    async def body(tb):
        src = tb.source("d")
        bad = {"op": 7, "channels": 2, "window": 1, "pixels": 1, "lo": 0, "hi": 1}
        errs = []
        for over in ({}, {"op": 0, "channels": 0}, {"op": 0, "channels": 9}, {"op": 0, "hi": -1},
                     {"op": 3, "window": 0}, {"op": 0, "pixels": 0}):
            src.send([pack(simd_descriptor_fields(8), bad | over)])
            seen = []
            for _ in range(4):  # err pulses once, busy never rises
                await tb.tick()
                seen.append((tb.get("err"), tb.get("busy")))
            errs.append(seen)
        return errs

    assert run_amaranth(SIMDCore(lanes=2, channels=8), body) == [[(0, 0), (1, 0), (0, 0), (0, 0)]] * 6


def test_simd_params_and_descriptor_errors():
    with pytest.raises(ValueError, match="lanes must be an integer from 1 to 64"):
        SIMDCore(lanes=0)
    with pytest.raises(TypeError, match="channels must be an integer"):
        SIMDCore(lanes=4, channels=2.0)
    from dbpim.model.config import load_config
    hw = load_config("small")
    assert SIMDCore.from_config(hw).parameters == {"lanes": hw.system.simd_lanes, "channels": 2048}
    with pytest.raises(ValueError, match=r"^system\.simd_lanes: must be an integer from 1 to 64"):
        SIMDCore.from_config(dataclasses.replace(hw, system=dataclasses.replace(hw.system, simd_lanes=100)))
    for kw, pattern in (({"op": "softmax"}, r"^descriptor\.op: must be one of"),
                        ({"window": 9}, r"^descriptor\.window: must be 1 for op requant"),
                        ({"lo": 5, "hi": 4}, r"^descriptor\.hi: must be an integer in \[5"),
                        ({"pixels": 0}, r"^descriptor\.pixels: ")):
        args = {"op": "requant", "channels": 4, "pixels": 1} | kw
        with pytest.raises(ValueError, match=pattern):
            descriptor(**args)


def test_simd_cycles_formula():
    for beats, window in ((12, 3), (1, 1), (40, 1)):  # full rate: the replay ends at simd_cycles - 1
        takes, outs = simd_schedule(beats, window, 0, [0] * beats, [True] * 100)
        assert takes == list(range(1, beats + 1)) and len(outs) == beats // window
        assert outs[-1] + 1 == simd_cycles(beats * 4, 4)
    takes, outs = simd_schedule(2, 1, 3, [0, 2], [False] * 9 + [True] * 10)  # late offers, stalled sink
    assert takes == [3, 6] and outs == [9, 12]
    assert simd_cycles(64, 16) == 1 + 4 + 5
    assert simd_cycles(65, 16) == 1 + 5 + 5
    assert simd_cycles(0, 4, depth=0) == 1
    with pytest.raises(ValueError, match="^lanes: "):
        simd_cycles(8, 0)


def test_docs_state_the_simd_core_exactly():
    """docs/design.md §14 and docs/rtl.md give the op codes, field widths and timing constants of model.spec."""
    from pathlib import Path

    from dbpim.model.simd_core import SIMD_START
    from dbpim.model.spec import (SIMD_LATENCY, SIMD_OPCODES, SIMD_PIXEL_BITS, SIMD_WINDOW_BITS, field_width,
                                  simd_const_fields)
    root = Path(__file__).resolve().parent.parent
    design = " ".join((root / "docs" / "design.md").read_text().split())
    rtl = " ".join((root / "docs" / "rtl.md").read_text().split())
    codes = ", ".join(f"{c} {n}" for n, c in SIMD_OPCODES.items())
    assert f"`model.spec.SIMD_OPCODES`: {codes}" in design
    assert f"| `window` | {SIMD_WINDOW_BITS} |" in design and f"| `pixels` | {SIMD_PIXEL_BITS} |" in design
    assert f"`SIMD_START = {SIMD_START}`" in design and f"`SIMD_LATENCY = {SIMD_LATENCY}`" in design
    assert f"(1 + beats + {SIMD_LATENCY})" in design
    from dbpim.model.spec import SIMD_DWC_W_BITS, SIMD_DWC_X_BITS
    assert f"`model.spec.SIMD_DWC_X_BITS` = {SIMD_DWC_X_BITS} bits" in design
    assert f"`SIMD_DWC_W_BITS` = {SIMD_DWC_W_BITS}:" in design
    consts = ", ".join(f"{w}" + (" signed" if sg else "") for _, w, _, sg in simd_const_fields())
    assert f"(`model.spec.simd_const_fields`: {consts} bits)" in design
    width = sum(field_width(f) for f in simd_const_fields())
    assert f"| `w_data` | in | `{width} * lanes` |" in rtl and f"at bit `{width} l`" in rtl
    assert f"| {SIMD_LATENCY} (`SIMD_LATENCY`)" in rtl

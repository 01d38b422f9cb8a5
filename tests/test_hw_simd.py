"""The SIMD core (hw.simd) against model.simd_ops on the Amaranth simulator (docs/design.md §14).

Every op runs on random tensors (and requant on a real artifact's constants)
under random valid gaps and back-pressure; each output beat is compared with
the twin's (``model.simd_ops`` on the tensor, laid out by ``model.simd_core``),
and at full rate the cycles from the descriptor's acceptance to the last
output beat equal :func:`model.simd_core.simd_cycles`.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("amaranth")
from dbpim.hw.simd import SIMDCore  # noqa: E402
from dbpim.model import simd_ops as so  # noqa: E402
from dbpim.model.requant import quantize_multipliers  # noqa: E402
from dbpim.model.simd_core import (beats_tensor, const_writes, descriptor, pack_descriptor, pack_in,  # noqa: E402
                                   simd_beats, simd_cycles, tensor_beats, unpack_out, window_beats)
from dbpim.verif.tb import run_amaranth  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable"), pytest.mark.timeout(300)]

I32 = (-(1 << 31), (1 << 31) - 1)


def _consts(rng, c):
    m = rng.integers(1 << 30, 1 << 31, c)
    s = rng.integers(28, 40, c)
    return m, s


class Job:
    """One descriptor, its input beats and the twin's output beats."""

    def __init__(self, desc, a, want, b=None, pad=None, consts=None):
        self.desc, self.a, self.b, self.pad, self.want, self.consts = desc, a, b, pad, want, consts or {}


def _jobs(rng, lanes, channels):
    """A job of every op on random tensors (channels not a multiple of lanes where possible)."""
    c = channels
    n = 2
    jobs = []
    acc = rng.integers(-(1 << 24), 1 << 24, (n, c, 3, 2))
    m, s = _consts(rng, c)
    bias = rng.integers(-5000, 5000, c)
    want = so.requant(acc, m, s, -128, 127, bias=bias)
    jobs.append(Job(descriptor("requant", c, n * 6, lo=-128, hi=127), tensor_beats(acc, lanes),
                    tensor_beats(want, lanes), consts=dict(m=m, s=s, bias=bias)))
    x = rng.integers(-300, 300, (5, c))
    jobs.append(Job(descriptor("clamp", c, 5, lo=0, hi=6), tensor_beats(x, lanes),
                    tensor_beats(so.clamp(x, 0, 6), lanes)))
    a = rng.integers(-128, 128, (n, c, 2, 3))
    b = rng.integers(-128, 128, (n, c, 2, 3))
    ma, sa = _consts(rng, c)
    mb, sb = _consts(rng, c)
    jobs.append(Job(descriptor("add", c, n * 6, lo=-128, hi=127), tensor_beats(a, lanes),
                    tensor_beats(so.add(a, ma, sa, b, mb, sb, -128, 127), lanes), b=tensor_beats(b, lanes),
                    consts=dict(m=ma, s=sa, mb=mb, sb=sb)))
    x = rng.integers(-128, 128, (n, c, 5, 5))
    for k, st, p in ((3, 2, 1), (2, 2, 0)):
        y = so.maxpool2d(x, k, st, p)
        beats, pad = window_beats(x, lanes, k, st, p)
        jobs.append(Job(descriptor("maxpool", c, n * y.shape[2] * y.shape[3], k * k, *I32), beats,
                        tensor_beats(y, lanes), pad=pad))
    y = so.maxpool2d(x, 3, 1, 1)
    beats, pad = window_beats(x, lanes, 3, 1, 1)  # a folded clamp (ReLU6 on the integer grid)
    jobs.append(Job(descriptor("maxpool", c, n * 25, 9, 0, 6), beats, tensor_beats(so.clamp(y, 0, 6), lanes),
                    pad=pad))
    m, s = _consts(rng, c)
    y = so.avgpool2d(x, 3, 2, 1, m, s, -128, 127)
    beats, pad = window_beats(x, lanes, 3, 2, 1)
    jobs.append(Job(descriptor("avgpool", c, n * y.shape[2] * y.shape[3], 9), beats, tensor_beats(y, lanes),
                    pad=pad, consts=dict(m=m, s=s)))
    y = so.global_avgpool(x, m, s, -128, 127)
    beats, pad = window_beats(x, lanes, (5, 5), 1, 0)
    jobs.append(Job(descriptor("avgpool", c, n, 25), beats, tensor_beats(y, lanes), pad=pad,
                    consts=dict(m=m, s=s)))
    return jobs


async def _run_jobs(tb, jobs, lanes, channels, seed):
    """Run each job (constants written first); returns the measured cycles of each."""
    cycles = []
    for j, job in enumerate(jobs):
        for addr, en, word in const_writes(lanes, job.desc["channels"], **job.consts):
            tb.set("w_addr", addr)
            tb.set("w_en", en)
            tb.set("w_data", word)
            await tb.tick()
        tb.set("w_en", 0)
        src_d, src_i, snk = tb.source("d"), tb.source("i"), tb.sink("o")
        k0 = len(src_d.accepted)
        src_d.send([pack_descriptor(job.desc, channels)])
        src_i.send(pack_in(job.a, lanes, job.b, job.pad))
        want = [(list(map(int, row)), i == len(job.want) - 1) for i, row in enumerate(job.want)]
        _, when = await snk.recv(tb, len(want), with_cycles=True, expect=want,
                                 unpack=lambda w: unpack_out(w, lanes), where=f"seed {seed} job {j}: ")
        await src_i.wait(tb)
        cycles.append(when[-1] - src_d.accepted[k0] + 1)
        while tb.get("busy"):
            await tb.tick()
        assert snk.pending == 0, f"seed {seed} job {j}: extra output beat"
    return cycles


def _expected_cycles(jobs, lanes):
    return [simd_cycles(simd_beats(j.desc["channels"], j.desc["pixels"], j.desc["window"], lanes) * lanes, lanes)
            for j in jobs]


@pytest.mark.parametrize("lanes,channels,stall", [(4, 6, 0.0), (4, 6, 0.3), (1, 3, 0.0), (3, 7, 0.4)])
def test_simd_core_matches_twin(lanes, channels, stall, rng):
    seed = int(rng.integers(1 << 31))
    jobs = _jobs(np.random.default_rng(seed), lanes, channels)
    cycles = run_amaranth(SIMDCore(lanes=lanes, channels=8), lambda tb: _run_jobs(tb, jobs, lanes, 8, seed),
                          stall=stall, seed=seed)
    want = _expected_cycles(jobs, lanes)
    if stall == 0:
        assert cycles == want, f"seed {seed}: cycles {cycles}, simd_cycles {want}"
    else:
        assert all(c >= w for c, w in zip(cycles, want)), f"seed {seed}: cycles {cycles} < simd_cycles {want}"


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
    acc = r.integers(-(1 << 16), 1 << 16, (2, c, 2, 2))
    bias = r.integers(-2000, 2000, c)
    want = so.requant(acc, m, s, 0, 255, bias=bias)
    assert 0 < np.count_nonzero(want) and np.count_nonzero(want < 255)  # not all saturated
    job = Job(descriptor("requant", c, 8, lo=0, hi=255), tensor_beats(acc, 4), tensor_beats(want, 4),
              consts=dict(m=m, s=s, bias=bias))
    core = SIMDCore(lanes=4, channels=max(c, 8))
    cycles = run_amaranth(core, lambda tb: _run_jobs(tb, [job], 4, max(c, 8), seed), stall=0.3, seed=seed)
    assert cycles[0] >= _expected_cycles([job], 4)[0]
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
    for kw, pattern in (({"op": "softmax"}, r"^descriptor\.op: must be one of"),
                        ({"window": 9}, r"^descriptor\.window: must be 1 for op requant"),
                        ({"lo": 5, "hi": 4}, r"^descriptor\.hi: must be an integer in \[5"),
                        ({"pixels": 0}, r"^descriptor\.pixels: ")):
        args = {"op": "requant", "channels": 4, "pixels": 1} | kw
        with pytest.raises(ValueError, match=pattern):
            descriptor(**args)


def test_simd_cycles_formula():
    assert simd_cycles(64, 16) == 1 + 4 + 5
    assert simd_cycles(65, 16) == 1 + 5 + 5
    assert simd_cycles(0, 4, depth=0) == 1
    with pytest.raises(ValueError, match="^lanes: "):
        simd_cycles(8, 0)

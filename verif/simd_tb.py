"""Driver of the SIMD core (``dbpim_simd``) on the verification kit's TB (:mod:`verif.tb`), either back end.

:func:`simd_jobs` draws one job of every op (a descriptor, its input beats
and the twin's output beats: ``model.simd_ops`` on random tensors, laid out
by ``model.simd_core``); :func:`run_jobs` writes each job's constants through
``w_*``, sends its descriptor on ``d`` and its beats on ``i`` (with the TB's
stalls), checks every output beat on ``o`` as it arrives, and checks the
cycle of every input take and output beat against
:func:`model.simd_core.simd_schedule` (the recorded environment replayed).
:func:`simd_body` runs the jobs, a descriptor with each cause of ``err``,
a reset while a descriptor runs and the jobs again, feeding the coverage
model :class:`verif.coverage.SIMDCoverage` (its monitor: each job's
descriptor, beats and constants, the agents' records, each ``err`` pulse).
"""

from __future__ import annotations

import numpy as np

from dbpim.model import simd_ops as so
from dbpim.model.simd_core import (const_writes, descriptor, pack_descriptor, pack_in, simd_beats, simd_cycles,
                                   simd_schedule, tensor_beats, unpack_out, weight_beats, window_beats)
from dbpim.model.spec import WEIGHT_MAX, WEIGHT_MIN, input_range

#: The signed activation range the jobs draw from and saturate to.
LO, HI = input_range(True)

__all__ = ["Job", "simd_jobs", "run_jobs", "expected_cycles", "bad_descriptors", "simd_body"]

I32 = (-(1 << 31), (1 << 31) - 1)


def _consts(rng, c, s_lo, s_hi):
    """Normalised multipliers (``2**30 <= m < 2**31``) and shifts in ``[s_lo, s_hi]``: factors
    ``2**(30 - s_hi) .. 2**(31 - s_lo)``, chosen per job so that most outputs are not saturated."""
    m = rng.integers(1 << 30, 1 << 31, c)
    s = rng.integers(s_lo, s_hi + 1, c)
    return m, s


def _interior(want, lo, hi, share=0.3):
    """The job tests the arithmetic, not only the clamp: at least ``share`` of its outputs inside (lo, hi)."""
    w = np.asarray(want)
    assert np.mean((w > lo) & (w < hi)) >= share, "test job mostly saturated"
    return want


class Job:
    """One descriptor, its input beats and the twin's output beats."""

    def __init__(self, desc, a, want, b=None, pad=None, consts=None):
        self.desc, self.a, self.b, self.pad, self.want, self.consts = desc, a, b, pad, want, consts or {}


def simd_jobs(rng, lanes, channels):
    """A job of every op on random tensors (channels not a multiple of lanes where possible)."""
    c = channels
    n = 2
    jobs = []
    acc = rng.integers(-(1 << 16), 1 << 16, (n, c, 3, 2))
    m, s = _consts(rng, c, 38, 42)
    bias = rng.integers(-5000, 5000, c)
    want = _interior(so.requant(acc, m, s, LO, HI, bias=bias), LO, HI)
    jobs.append(Job(descriptor("requant", c, n * 6, lo=-128, hi=127), tensor_beats(acc, lanes),
                    tensor_beats(want, lanes), consts=dict(m=m, s=s, bias=bias)))
    # corners: s = 0 (no rounding), s = 1, s = 62, m = 0 and m = 2**31 - 1, operands up to |v| = 2**31 - 1,
    # ties
    m = rng.choice([0, 1, 3, (1 << 31) - 1], c)
    s = np.where(m == (1 << 31) - 1, rng.choice([31, 40, 62], c), rng.choice([0, 1, 2], c))
    acc = rng.integers(-200, 201, (n, c, 2, 2))
    acc[0, :, 0, 0] = (1 << 31) - 1
    acc[0, :, 0, 1] = -(1 << 31) + 1
    # rounding ties of both signs (v * m exactly halfway between two steps: 3 / 2 and -3 / 2 round up)
    m[0], s[0] = 1, 1
    acc[1, 0, 0, :2] = 3, -3
    want = so.requant(acc, m, s, *I32)
    jobs.append(Job(descriptor("requant", c, n * 4, lo=I32[0], hi=I32[1]), tensor_beats(acc, lanes),
                    tensor_beats(want, lanes), consts=dict(m=m, s=s)))
    x = rng.integers(-300, 300, (5, c))
    jobs.append(Job(descriptor("clamp", c, 5, lo=0, hi=6), tensor_beats(x, lanes),
                    tensor_beats(so.clamp(x, 0, 6), lanes)))
    # every lane count of a partial group (1 .. lanes - 1 channels): a lane past the channels outputs 0, not the
    # clamp of its 0 input (lo = 1)
    for cc in range(1, min(lanes, c + 1)):
        x = rng.integers(-20, 20, (2, cc))
        jobs.append(Job(descriptor("clamp", cc, 2, lo=1, hi=6), tensor_beats(x, lanes),
                        tensor_beats(so.clamp(x, 1, 6), lanes)))
    a = rng.integers(LO, HI + 1, (n, c, 2, 3))
    b = rng.integers(LO, HI + 1, (n, c, 2, 3))
    ma, sa = _consts(rng, c, 31, 33)
    mb, sb = _consts(rng, c, 31, 33)
    # every lane shifts by 31 and by 32 on each side (a shift s computed as s - 1 wrongly, e.g. 1 - s mod 64,
    # agrees with it at s = 33)
    sa = sb = 31 + (np.arange(c) // lanes) % 2
    want = _interior(so.add(a, ma, sa, b, mb, sb, LO, HI), LO, HI)
    jobs.append(Job(descriptor("add", c, n * 6, lo=-128, hi=127), tensor_beats(a, lanes),
                    tensor_beats(want, lanes), b=tensor_beats(b, lanes),
                    consts=dict(m=ma, s=sa, mb=mb, sb=sb)))
    x = rng.integers(LO, HI + 1, (n, c, 5, 5))
    for k, st, p in ((3, 2, 1), (2, 2, 0)):
        y = so.maxpool2d(x, k, st, p)
        beats, pad = window_beats(x, lanes, k, st, p)
        jobs.append(Job(descriptor("maxpool", c, n * y.shape[2] * y.shape[3], k * k, *I32), beats,
                        tensor_beats(y, lanes), pad=pad))
    y = so.maxpool2d(x, 3, 1, 1)
    beats, pad = window_beats(x, lanes, 3, 1, 1)  # a folded clamp (ReLU6 on the integer grid)
    jobs.append(Job(descriptor("maxpool", c, n * 25, 9, 0, 6), beats, tensor_beats(so.clamp(y, 0, 6), lanes),
                    pad=pad))
    m, s = _consts(rng, c, 33, 35)
    y = _interior(so.avgpool2d(x, 3, 2, 1, m, s, LO, HI), LO, HI)
    beats, pad = window_beats(x, lanes, 3, 2, 1)
    jobs.append(Job(descriptor("avgpool", c, n * y.shape[2] * y.shape[3], 9), beats, tensor_beats(y, lanes),
                    pad=pad, consts=dict(m=m, s=s)))
    # depthwise convolution: int8 weights, a bias, stride 2 and padding 1; then the extreme operands (16-bit
    # activations, int8 weights of both signs) with dilation 2, unsaturated
    w = rng.integers(WEIGHT_MIN, WEIGHT_MAX + 1, (c, 3, 3))
    bias = rng.integers(-5000, 5000, c)
    m, s = _consts(rng, c, 40, 42)
    y = _interior(so.requant(so.depthwise_conv2d(x, w, 2, 1), m, s, LO, HI, bias=bias), LO, HI)
    beats, pad = window_beats(x, lanes, 3, 2, 1)
    jobs.append(Job(descriptor("dwconv", c, n * y.shape[2] * y.shape[3], 9), beats, tensor_beats(y, lanes),
                    b=weight_beats(w, lanes, n * y.shape[2] * y.shape[3]), pad=pad, consts=dict(m=m, s=s, bias=bias)))
    xe = rng.choice([-(1 << 15), (1 << 15) - 1, -1, 0, 1], (1, c, 5, 5))
    w = rng.choice([WEIGHT_MIN, WEIGHT_MAX, -1, 1], (c, 2, 2))
    y = so.requant(so.depthwise_conv2d(xe, w, 1, 1, 2), np.ones(c, np.int64), np.zeros(c, np.int64), *I32)
    beats, pad = window_beats(xe, lanes, 2, 1, 1, 2)
    jobs.append(Job(descriptor("dwconv", c, y.shape[2] * y.shape[3], 4, *I32), beats, tensor_beats(y, lanes),
                    b=weight_beats(w, lanes, y.shape[2] * y.shape[3]), pad=pad, consts=dict(m=1, s=0)))
    m, s = _consts(rng, c, 34, 36)
    y = _interior(so.global_avgpool(x, m, s, LO, HI), LO, HI, share=0.2)
    beats, pad = window_beats(x, lanes, (5, 5), 1, 0)
    jobs.append(Job(descriptor("avgpool", c, n, 25), beats, tensor_beats(y, lanes), pad=pad,
                    consts=dict(m=m, s=s)))
    return jobs


async def write_consts(tb, job, lanes):
    """Write ``job``'s constants into the SIMD core's constant memory, one group a cycle."""
    for addr, en, word in const_writes(lanes, job.desc["channels"], **job.consts):
        tb.set("w_addr", addr)
        tb.set("w_en", en)
        tb.set("w_data", word)
        await tb.tick()
    tb.set("w_en", 0)


async def run_jobs(tb, jobs, lanes, channels, seed, cov=None):
    """Run each job (constants written first); returns the measured cycles of each. ``cov``
    (:class:`verif.coverage.SIMDCoverage`, optional) samples each job."""
    cycles = []
    for j, job in enumerate(jobs):
        await write_consts(tb, job, lanes)
        src_d, src_i, snk = tb.source("d"), tb.source("i"), tb.sink("o")
        k0, i0 = len(src_d.accepted), len(src_i.accepted)
        o0, g0 = len(src_i.offered), len(src_i.gaps)  # the source is idle: its next records are this job's
        h0 = snk.held
        src_d.send([pack_descriptor(job.desc, channels)])
        src_i.send(pack_in(job.a, lanes, job.b, job.pad))
        want = [(list(map(int, row)), i == len(job.want) - 1) for i, row in enumerate(job.want)]
        _, when = await snk.recv(tb, len(want), with_cycles=True, expect=want,
                                 unpack=lambda w: unpack_out(w, lanes), where=f"seed {seed} job {j}: ")
        await src_i.wait(tb)
        t0 = src_d.accepted[k0]
        cycles.append(when[-1] - t0 + 1)
        # the exact cycles of every take and output beat, replayed from the recorded environment
        n = len(job.a)
        takes, outs = simd_schedule(n, job.desc["window"], src_i.offered[o0] - t0, src_i.gaps[g0:g0 + n],
                                    snk.ready_log[t0:])
        assert [k - t0 for k in src_i.accepted[i0:]] == takes, f"seed {seed} job {j}: input takes"
        assert [k - t0 for k in when] == outs, f"seed {seed} job {j}: output beat cycles"
        while tb.get("busy"):
            await tb.tick()
        assert snk.pending == 0, f"seed {seed} job {j}: extra output beat"
        if cov is not None:
            cov.job(job.desc, job.a, lanes, b=job.b, pad=job.pad, consts=job.consts, gaps=src_i.gaps[g0:g0 + n],
                    held=snk.held - h0)
    return cycles


def bad_descriptors(channels: int) -> list[dict]:
    """One descriptor per cause of ``err`` (:data:`verif.coverage.SIMD_ERRORS`, in order), good otherwise, for a
    core of ``channels`` channels."""
    from dbpim.model.spec import SIMD_OPCODES
    good = {"op": SIMD_OPCODES["clamp"], "channels": 2, "window": 1, "pixels": 1, "lo": 0, "hi": 1}
    return [good | bad for bad in ({"op": len(SIMD_OPCODES)}, {"channels": 0}, {"channels": channels + 1},
                                   {"op": SIMD_OPCODES["maxpool"], "window": 0}, {"pixels": 0},
                                   {"lo": 1, "hi": 0})]


async def simd_body(tb, jobs, lanes, channels, seed, cov=None):
    """The jobs (:func:`run_jobs`), then two clamps queued at once (the second descriptor taken only in the cycle
    after the first's last output beat), then each bad descriptor (``err`` pulses once, ``busy`` never rises),
    then a reset while the pooling job runs (no beat and no ``busy`` left), then the jobs again; returns the
    cycles of the first pass over the jobs. ``cov`` (:class:`verif.coverage.SIMDCoverage`) samples all of it."""
    from dbpim.model.spec import pack, simd_descriptor_fields
    cycles = await run_jobs(tb, jobs, lanes, channels, seed, cov)
    src_d, src_i, snk = tb.source("d"), tb.source("i"), tb.sink("o")
    # two clamps queued at once: the second descriptor is taken only after the first's last output beat
    from dbpim.model.spec import SIMD_OPCODES
    pair = [j for j in jobs if j.desc["op"] == SIMD_OPCODES["clamp"]][:2]
    k0 = len(src_d.accepted)
    src_d.send([pack_descriptor(j.desc, channels) for j in pair])
    src_i.send([w for j in pair for w in pack_in(j.a, lanes, j.b, j.pad)])
    want = [(list(map(int, row)), i == len(j.want) - 1) for j in pair for i, row in enumerate(j.want)]
    _, when = await snk.recv(tb, len(want), with_cycles=True, expect=want, unpack=lambda w: unpack_out(w, lanes),
                             where=f"seed {seed} queued clamps: ")
    await src_d.wait(tb)
    assert src_d.accepted[k0 + 1] > when[len(pair[0].want) - 1], f"seed {seed}: a descriptor taken while busy"
    while tb.get("busy"):
        await tb.tick()
    for bad in bad_descriptors(channels):
        src_d.send([pack(simd_descriptor_fields(channels), bad)])
        seen = []
        while len(seen) < 200 and not (len(seen) > 1 and seen[-2][0]):  # until the cycle after the pulse
            await tb.tick()
            seen.append((tb.get("err"), tb.get("busy")))
        errs = [e for e, _ in seen]
        assert errs.count(1) == 1 and not any(b for _, b in seen), f"seed {seed}: descriptor {bad}: err/busy {seen}"
        if cov is not None:
            cov.error(bad, channels)
    job = next(j for j in jobs if j.desc["window"] > 1)  # pooling: several beats per output
    await write_consts(tb, job, lanes)
    snk.limit(1)
    src_d.send([pack_descriptor(job.desc, channels)])
    src_i.send(pack_in(job.a, lanes, job.b, job.pad))
    while snk.pending == 0:
        await tb.tick()
    src_d.flush()
    src_i.flush()
    await tb.reset_while_busy(snk, "the pooling job", seed, cov)
    await run_jobs(tb, jobs, lanes, channels, seed, cov)
    return cycles


def expected_cycles(jobs, lanes):
    return [simd_cycles(simd_beats(j.desc["channels"], j.desc["pixels"], j.desc["window"], lanes) * lanes, lanes)
            for j in jobs]

"""The front-end's integer-only path: the chip's arithmetic (:mod:`model.chip`) in PyTorch (docs/design.md §13).

:class:`IntegerNetwork` runs an :class:`model.chip.IntegerPlan` (the integer
constants derived once, in NumPy, by :func:`model.chip.integer_plan`) with
torch operations on int64 tensors: the mapped layers as ``F.conv2d`` /
``F.linear`` of the records' integer weights ``w`` (the frozen ``QLayer.w_int``)
in float64 (exact: every partial sum is an integer below 2**53), everything
else as integer torch ops with the rounding of :mod:`model.requant`
(``(v * m + ((1 << s) >> 1)) >> s``, arithmetic shift). Nothing is shared with
the golden chip but the plan, so ``IntegerNetwork(plan, records)(x)`` equal to
``GoldenChip(artifact).run(x)`` bit for bit checks the macros' accumulators
(tiles) against the plain convolution and every SIMD op against its twin.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from dbpim.model.chip import IntegerPlan

__all__ = ["IntegerNetwork", "rescale", "requant"]


def _channels(v, ndim: int, axis: int = 1) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(v, np.int64))
    if t.ndim == 0:
        return t
    shape = [1] * ndim
    shape[axis] = -1
    return t.reshape(shape)


def rescale(v: torch.Tensor, m, s) -> torch.Tensor:
    """``(v * m + ((1 << s) >> 1)) >> s`` on int64 tensors (``m``, ``s`` broadcast), as :func:`model.requant.rescale`."""
    m = torch.as_tensor(m, dtype=torch.int64)
    s = torch.as_tensor(s, dtype=torch.int64)
    half = torch.bitwise_right_shift(torch.bitwise_left_shift(torch.ones_like(s), s), 1)
    return torch.bitwise_right_shift(v * m + half, s)


def requant(acc: torch.Tensor, m, s, lo: int, hi: int, bias=None, axis: int = 1) -> torch.Tensor:
    """``clamp(rescale(acc + bias, m, s), lo, hi)`` with per-channel constants on ``axis``."""
    if bias is not None:
        acc = acc + _channels(bias, acc.ndim, axis)
    return torch.clamp(rescale(acc, _channels(m, acc.ndim, axis), _channels(s, acc.ndim, axis)), lo, hi)


class IntegerNetwork:
    """The integer-only network of ``plan`` with the integer weights of ``records`` (their ``w``)."""

    def __init__(self, plan: IntegerPlan, records):
        self.plan = plan
        recs = {r.name: r for r in records if r.mapped}
        self.weights = {}
        for st in plan.steps:
            if st["op"] != "mapped":
                continue
            rs = [recs[n] for n in st["layers"]]
            if st["kind"] == "linear":
                self.weights[st["name"]] = torch.from_numpy(np.asarray(rs[0].w, np.float64).T.copy())
            else:
                kh, kw = rs[0].kernel
                ws = [np.asarray(r.w, np.float64).T.reshape(r.compiled.N, -1, kh, kw) for r in rs]
                self.weights[st["name"]] = torch.from_numpy(np.ascontiguousarray(np.concatenate(ws)))
        self.geometry = {st["name"]: recs[st["layers"][0]] for st in plan.steps if st["op"] == "mapped"}

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The output integers (int64) of the float input batch ``x``."""
        vals = {}
        for st in self.plan.steps:
            vals[st["dst"]] = self._step(st, [vals[a] for a in st["src"]], x)
        return vals[self.plan.output]

    def _step(self, st: dict, a: list, x: torch.Tensor) -> torch.Tensor:
        kind = st["op"]
        if kind == "input":
            q = self.plan.quants[st["dst"]]
            scale = torch.tensor(q.scale, dtype=torch.float32)
            return torch.clamp(torch.round(x.float() / scale), q.lo, q.hi).to(torch.int64)
        if kind == "mapped":
            w = self.weights[st["name"]]
            if st["kind"] == "linear":
                acc = torch.round(F.linear(a[0].double(), w)).to(torch.int64)
                return requant(acc, st["m"], st["s"], st["lo"], st["hi"], st["bias"], axis=-1)
            r = self.geometry[st["name"]]
            v = a[0][:, :, None, :] if st["kind"] == "conv1d" else a[0]
            acc = F.conv2d(v.double(), w, None, r.stride, r.padding, r.dilation, len(st["layers"]))
            y = requant(torch.round(acc).to(torch.int64), st["m"], st["s"], st["lo"], st["hi"], st["bias"])
            return y[:, :, 0, :] if st["kind"] == "conv1d" else y
        if kind == "depthwise":
            w = torch.from_numpy(np.asarray(st["w"], np.float64)[:, None])
            acc = F.conv2d(a[0].double(), w, None, st["stride"], st["padding"], st["dilation"], w.shape[0])
            return requant(torch.round(acc).to(torch.int64), st["m"], st["s"], st["lo"], st["hi"], st["bias"])
        if kind == "clamp":
            return torch.clamp(a[0], st["lo"], st["hi"])
        if kind == "add":
            return torch.clamp(rescale(a[0], st["ma"], st["sa"]) + rescale(a[1], st["mb"], st["sb"]),
                               st["lo"], st["hi"])
        if kind == "reshape":
            return a[0].reshape((a[0].shape[0],) + tuple(st["shape"]))
        if kind == "identity":
            return a[0]
        if kind == "maxpool2d":  # float64 holds every int8 value exactly; padding is -inf in torch
            return F.max_pool2d(a[0].double(), st["kernel"], st["stride"], st["padding"],
                                st["dilation"]).to(torch.int64)
        if kind == "mean":
            v = a[0]
            total = v.reshape(v.shape[0], v.shape[1], -1).sum(-1)
            y = torch.clamp(rescale(total, st["m"], st["s"]), st["lo"], st["hi"])
            return y.reshape((v.shape[0],) + self.plan.shapes[st["dst"]])
        raise ValueError(f"op {st['name']!r}: {kind} has no integer torch twin")

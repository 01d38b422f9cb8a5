"""Random PIM instructions for the chip's tests (the golden chip's and the RTL chip's) and the conformance set: one PIM instruction, its
WMEM image (:mod:`model.pim_image`), its input and the reference sums (:mod:`model.layer`).

A random layer is a convolution (kernel, stride, padding and dilation per axis, groups, signed or unsigned
inputs) or a linear layer over several tokens, pruned and quantized for the configuration's macro
(:func:`model.quant.prune_quantize`); :func:`core_config` shrinks the small configuration's core memories so
that a layer needs several segments (STARTs).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from dbpim.model import isa
from dbpim.model.chip import ChipProgram
from dbpim.model.compile import compile_layer
from dbpim.model.core import CoreParams
from dbpim.model.layer import conv_out_size, run_conv2d, run_layer
from dbpim.model.pim_image import PIM_HEADER, PimImageError, band_plan, layer_block
from dbpim.model.quant import prune_quantize
from dbpim.model.spec import input_range
from dbpim.model.window import WindowLayer

__all__ = ["PimCase", "core_config", "random_pim", "group_layer", "random_banded", "pim_program"]


def core_config(hw, tile_slots: int = 4, descriptors: int = 6, mask_windows: int = 16, out_pixels: int = 8):
    """``hw`` with a smaller PIM core (its memories), so that random layers need several segments."""
    return dataclasses.replace(hw, core=dataclasses.replace(hw.core, tile_slots=tile_slots, descriptors=descriptors,
                                                            mask_windows=mask_windows, out_pixels=out_pixels))


@dataclass
class PimCase:
    """One PIM instruction: ``desc`` (its descriptor values), the compiled layers (one per group), the input
    ``x`` (S, C * H * W) and the reference sums ``want`` (S, N * P) as ACC holds them."""

    desc: dict
    layers: list
    x: np.ndarray
    want: np.ndarray
    linear: bool


def _compiled(rng, K: int, N: int, macro):
    """A random layer; one time in two one of its filters is all zero (no tile holds it: a zero entry)."""
    w = rng.normal(0, 1, (K, N)) * 30
    if rng.integers(0, 2):
        w[:, rng.integers(0, N)] = 0
    q = prune_quantize(w, macro, float(rng.uniform(0.2, 0.7)), scale=1.0)
    return compile_layer(q.w, q.phi, q.mask, macro, q.group_size)


def random_pim(rng, macro, samples: int = 1, kind: str | None = None) -> PimCase:
    """A random PIM instruction for ``macro`` (``kind``: ``conv2d``, ``linear`` or None for either)."""
    kind = kind or str(rng.choice(["conv2d", "linear"]))
    signed = bool(rng.integers(0, 2))
    lo, hi = input_range(signed)
    if kind == "linear":
        K, T, N = int(rng.integers(3, 40)), int(rng.integers(1, 4)), int(rng.integers(1, 12))
        c = _compiled(rng, K, N, macro)
        x = rng.integers(lo, hi + 1, (samples, T * K))
        want = run_layer(x.reshape(samples * T, K), c, signed).out.reshape(samples, -1)
        one = isa.pack_pair(1, 1)
        d = dict(kind=isa.PIM_KINDS["linear"], groups=1, layer=0, signed=int(signed), C=K, H=T, W=1, N=N, Ho=T, Wo=1,
                 kernel=one, stride=one, padding=0, dilation=one)
        return PimCase(desc=d, layers=[c], x=x, want=want, linear=True)
    g = int(rng.choice([1, 1, 2, 3]))
    cg, ng = int(rng.integers(1, 4)), int(rng.integers(1, 6))
    while True:
        H, W = int(rng.integers(2, 9)), int(rng.integers(2, 9))
        k = [int(v) for v in rng.integers(1, 4, 2)]
        st = [int(v) for v in rng.integers(1, 3, 2)]
        dil = [int(v) for v in rng.integers(1, 3, 2)]
        pad = [int(rng.integers(0, kk)) for kk in k]
        Ho, Wo = (conv_out_size(n, kk, s, p, dd) for n, kk, s, p, dd in zip((H, W), k, st, pad, dil))
        if Ho >= 1 and Wo >= 1:
            break
    cs = [_compiled(rng, cg * k[0] * k[1], ng, macro) for _ in range(g)]
    x = rng.integers(lo, hi + 1, (samples, g * cg * H * W))
    xm = x.reshape(samples, g * cg, H, W)
    outs = [run_conv2d(xm[:, j * cg:(j + 1) * cg], c, tuple(k), tuple(st), tuple(pad), signed, tuple(dil))[0]
            for j, c in enumerate(cs)]
    want = np.concatenate(outs, axis=1).reshape(samples, -1)
    d = dict(kind=isa.PIM_KINDS["conv2d"], groups=g, layer=0, signed=int(signed), C=g * cg, H=H, W=W, N=g * ng,
             Ho=Ho, Wo=Wo, kernel=isa.pack_pair(*k), stride=isa.pack_pair(*st), padding=isa.pack_pair(*pad),
             dilation=isa.pack_pair(*dil))
    return PimCase(desc=d, layers=cs, x=x, want=want, linear=False)


def group_layer(case: PimCase) -> WindowLayer:
    """The window layer of one group of ``case`` (every group has the same geometry; ``base`` 0)."""
    d = case.desc
    if case.linear:
        return WindowLayer.of(d["C"], d["H"], 1, 1, 1)
    return WindowLayer.of(d["C"] // d["groups"], d["H"], d["W"], *isa.unpack_pair(d["kernel"]),
                          stride=isa.unpack_pair(d["stride"]), padding=isa.unpack_pair(d["padding"]),
                          dilation=isa.unpack_pair(d["dilation"]))


def random_banded(rng, macro, samples: int = 1, kind: str | None = None) -> tuple:
    """A random PIM instruction (:func:`random_pim`) and an input buffer size that splits its layers into two or
    more row bands: ``(case, buffer_inputs, bands)`` (the bands of :func:`model.pim_image.band_plan`)."""
    while True:
        case = random_pim(rng, macro, samples=samples, kind=kind)
        wl = group_layer(case)
        if wl.out_h < 2:
            continue
        one = wl.channels * wl.width * min(wl.height, (wl.kh - 1) * wl.dilation[0] + 1)  # a row's most inputs
        buf = int(rng.integers(one, max(one + 1, wl.elements)))
        try:
            bands = band_plan(wl, buf)
        except PimImageError:
            continue
        if len(bands) >= 2:
            return case, buf, bands


def pim_program(case: PimCase, params: CoreParams, *, src: int, dst: int, table_pad: int = 0,
                buffer_inputs: int | None = None, cores: int = 1, result_words: int | None = None) -> ChipProgram:
    """A program of ``case``'s PIM instruction (input at ACT ``src``, sums at ACC ``dst``) then HALT, its WMEM
    image compiled for ``params`` (``table_pad`` unused layer-table entries before the instruction's) and an
    input buffer of ``buffer_inputs`` inputs (the layers' row bands, :func:`model.pim_image.band_plan`; None:
    one band), for ``cores`` PIM cores whose extra cores' result buffers hold ``result_words`` words (None: no
    bound)."""
    d = dict(case.desc, layer=table_pad)
    g = d["groups"]
    blocks = [[len(PIM_HEADER)] + [0] * (len(PIM_HEADER) - 1)] * table_pad
    for j, c in enumerate(case.layers):
        if case.linear:
            wl = WindowLayer.of(d["C"], d["H"], 1, 1, 1)
            base = 0
        else:
            cg = d["C"] // g
            wl = WindowLayer.of(cg, d["H"], d["W"], *isa.unpack_pair(d["kernel"]), stride=isa.unpack_pair(d["stride"]),
                                padding=isa.unpack_pair(d["padding"]), dilation=isa.unpack_pair(d["dilation"]),
                                base=j * cg * d["H"] * d["W"])
            base = j * c.N * d["Ho"] * d["Wo"]
        blocks.append(layer_block(c, wl, params, bool(d["signed"]), acc_base=base, linear=case.linear,
                                  buffer_inputs=buffer_inputs, cores=cores, result_words=result_words))
    wmem, at = [len(blocks)], 1 + len(blocks)
    for b in blocks:
        wmem.append(at)
        at += len(b)
    for b in blocks:
        wmem.extend(b)
    imem = [isa.encode("PIM", desc=0, dst=dst, src0=src), isa.encode("HALT")]
    n = case.want.shape[1]
    return ChipProgram(imem=np.array(imem, np.uint64), dmem=np.array(isa.pack_descriptor("PIM", d), np.int64),
                       cmem=np.zeros(1, np.int64), wmem=np.array(wmem, np.int64), act_words=src + case.x.shape[1],
                       acc_words=dst + n, input={}, output={}, macro=params.macro, values={}, core=params, cores=cores,
                       result_words=result_words)

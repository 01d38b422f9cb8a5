"""The SIMD core's stream, written once: descriptors, beat order, constants and cycles (docs/design.md §14).

The core (``hw.simd.SIMDCore``) runs one descriptor at a time (``op``,
``channels``, ``window``, ``pixels``, ``lo``, ``hi``:
:func:`model.spec.simd_descriptor_fields`) over a stream of input beats of
``lanes`` lanes. Channels sit in lanes: channel group ``g`` holds channels
``g * lanes .. g * lanes + lanes - 1`` (lanes past the channel count are 0 in,
0 out). The input beats of a descriptor come pixel by pixel, channel group by
channel group, window element by window element (``kh`` major, the order of
:func:`model.simd_ops.pool_windows`)::

    for pixel in range(pixels):            # (n, oh, ow), row major; (n,) for flat tensors
        for g in range(ceil(channels / lanes)):
            for e in range(window):        # 1 for requant / clamp / add
                one input beat             # a, b (add only), pad (a padding position)

and one output beat leaves per (pixel, channel group). What each op computes
is :mod:`model.simd_ops`; the functions below turn its tensors into beats
(:func:`tensor_beats`, :func:`window_beats`) and back, build descriptors and
constant writes, and count cycles (:func:`simd_cycles`, the one timing
function of the core: its RTL twin test, the golden chip and the performance
model read it).
"""

from __future__ import annotations

import numpy as np

from dbpim.model._check import check_choice, check_int
from dbpim.model.simd_ops import pool_windows
from dbpim.model.spec import (SIMD_LATENCY, SIMD_OPCODES, SIMD_PIXEL_BITS, SIMD_WINDOW_BITS, simd_descriptor_fields,
                              simd_const_fields, simd_in_fields, simd_out_fields, field_width, pack,
                              unpack)

__all__ = ["SIMD_START", "CORE_RECORD_OPS", "descriptor", "pack_descriptor", "tensor_beats", "window_beats",
           "weight_beats", "beats_tensor", "pack_in", "unpack_out", "const_writes", "simd_beats", "simd_cycles",
           "simd_schedule",
           "record_cycles"]

#: Cycles between a descriptor's acceptance and its first input beat's.
SIMD_START = 1


def descriptor(op: str, channels: int, pixels: int, window: int = 1, lo: int = -128, hi: int = 127,
               max_channels: int | None = None) -> dict:
    """A checked descriptor (field name -> int), ready for :func:`pack_descriptor`.

    Raises
    ------
    ValueError
        One line naming the field and what is allowed.
    """
    check_choice("descriptor.op", op, SIMD_OPCODES)
    top = (1 << 16) - 1 if max_channels is None else max_channels
    d = {"op": SIMD_OPCODES[op], "channels": check_int("descriptor.channels", channels, 1, top),
         "window": check_int("descriptor.window", window, 1, (1 << SIMD_WINDOW_BITS) - 1),
         "pixels": check_int("descriptor.pixels", pixels, 1, (1 << SIMD_PIXEL_BITS) - 1),
         "lo": check_int("descriptor.lo", lo, -(1 << 31), (1 << 31) - 1)}
    d["hi"] = check_int("descriptor.hi", hi, d["lo"], (1 << 31) - 1)
    if op not in ("maxpool", "avgpool", "dwconv") and window != 1:
        raise ValueError(f"descriptor.window: must be 1 for op {op}, got {window}")
    return d


def pack_descriptor(d: dict, max_channels: int) -> int:
    """The ``d`` stream payload of a descriptor, for a core holding ``max_channels`` channels."""
    return pack(simd_descriptor_fields(max_channels), d)


def _lane_groups(x: np.ndarray, lanes: int) -> np.ndarray:
    """``(P, C, ...)`` -> ``(P, G, ..., lanes)`` with channels zero-padded to ``G * lanes``."""
    p, c = x.shape[:2]
    gs = -(-c // lanes)
    pad = np.zeros((p, gs * lanes) + x.shape[2:], np.int64)
    pad[:, :c] = x
    pad = pad.reshape((p, gs, lanes) + x.shape[2:])
    return np.moveaxis(pad, 2, -1)


def _pixels_first(x: np.ndarray) -> np.ndarray:
    """``(N, C, H, W)`` or ``(N, C)`` -> ``(pixels, C)``, pixels in (n, h, w) row-major order."""
    x = np.asarray(x, np.int64)
    if x.ndim == 2:
        return x
    if x.ndim != 4:
        raise ValueError(f"x: must have 2 or 4 dimensions, got shape {x.shape}")
    n, c, h, w = x.shape
    return x.transpose(0, 2, 3, 1).reshape(n * h * w, c)


def tensor_beats(x, lanes: int) -> np.ndarray:
    """Elementwise input or output beats of a tensor: shape ``(pixels * groups, lanes)``, int64."""
    return _lane_groups(_pixels_first(x), lanes).reshape(-1, lanes)


def beats_tensor(beats, shape, lanes: int) -> np.ndarray:
    """Inverse of :func:`tensor_beats`: the ``(N, C, H, W)`` or ``(N, C)`` tensor of output beats."""
    b = np.asarray(beats, np.int64)
    c = shape[1]
    gs = -(-c // lanes)
    flat = b.reshape(-1, gs * lanes)[:, :c]
    if len(shape) == 2:
        return flat.reshape(shape)
    n, _, h, w = shape
    return flat.reshape(n, h, w, c).transpose(0, 3, 1, 2)


def window_beats(x, lanes: int, kernel, stride=None, padding=0, dilation=1) -> tuple[np.ndarray, np.ndarray]:
    """Pooling input beats of ``x`` ``(N, C, H, W)``: ``(beats (B, lanes), pad (B,))``, padding positions 0.

    ``B = N * OH * OW * groups * KH * KW`` in the order of the module docstring;
    a global pooling is ``kernel = (H, W)``.
    """
    x = np.asarray(x, np.int64)
    win = pool_windows(x, kernel, stride, padding, dilation, 0, "window_beats")  # (N, C, OH, OW, K)
    real = pool_windows(np.ones((1, 1) + x.shape[2:], np.int64), kernel, stride, padding, dilation, 0,
                        "window_beats")[0, 0]  # (OH, OW, K): 1 where the position is inside the input
    n, c, oh, ow, k = win.shape
    per_pixel = win.transpose(0, 2, 3, 1, 4).reshape(n * oh * ow, c, k)
    beats = _lane_groups(per_pixel, lanes)  # (P, G, K, lanes)
    gs = beats.shape[1]
    pad = np.broadcast_to((1 - real).reshape(1, oh * ow, 1, k), (n, oh * ow, gs, k)).reshape(-1)
    return beats.reshape(-1, lanes), pad.astype(np.int64)


def weight_beats(w, lanes: int, pixels: int) -> np.ndarray:
    """``dwconv``'s ``b`` beats: the weights ``w`` ``(C, KH * KW)`` (or ``(C, 1, KH, KW)``) of every channel,
    window element by window element, repeated for each of ``pixels`` pixels: shape ``(pixels * groups * KH * KW,
    lanes)``, the order of :func:`window_beats`."""
    w = np.asarray(w, np.int64)
    w = w.reshape(w.shape[0], -1)
    one = _lane_groups(w[None], lanes)  # (1, G, K, lanes)
    return np.broadcast_to(one, (int(pixels),) + one.shape[1:]).reshape(-1, lanes)


def pack_in(a, lanes: int, b=None, pad=None) -> list[int]:
    """``i`` stream payloads of input beats ``a`` (and ``b``, ``pad``), one per row."""
    a = np.asarray(a, np.int64).reshape(-1, lanes)
    b = np.zeros_like(a) if b is None else np.asarray(b, np.int64).reshape(-1, lanes)
    pad = np.zeros(len(a), np.int64) if pad is None else np.asarray(pad, np.int64)
    f = simd_in_fields(lanes)
    return [pack(f, {"a": a[i], "b": b[i], "pad": int(pad[i])}) for i in range(len(a))]


def unpack_out(word: int, lanes: int) -> tuple[list[int], bool]:
    """``(data, last)`` of an ``o`` stream payload."""
    d = unpack(simd_out_fields(lanes), word)
    return d["data"], bool(d["last"])


def const_writes(lanes: int, channels: int, m=0, s=0, bias=0, mb=0, sb=0) -> list[tuple[int, int, int]]:
    """The constant-port writes of per-channel ``(m, s, bias, mb, sb)`` (scalars or ``channels`` values each).

    Returns
    -------
    list of (addr, en, data)
        One write per channel group: ``w_addr``, the ``w_en`` lane bits and
        the ``w_data`` word (lane ``l``'s :func:`model.spec.simd_const_fields` entry at bit ``l * 106``).
    """
    fields = simd_const_fields()
    width = sum(field_width(f) for f in fields)
    vals = {name: np.broadcast_to(np.asarray(v, np.int64), (channels,))
            for name, v in (("m", m), ("s", s), ("bias", bias), ("mb", mb), ("sb", sb))}
    out = []
    for g in range(-(-channels // lanes)):
        lo, hi = g * lanes, min(channels, (g + 1) * lanes)
        word = 0
        for c in range(lo, hi):
            word |= pack(fields, {k: int(a[c]) for k, a in vals.items()}) << ((c - lo) * width)
        out.append((g, (1 << (hi - lo)) - 1, word))
    return out


def simd_beats(channels: int, pixels: int, window: int, lanes: int) -> int:
    """Input beats of a descriptor: ``pixels * ceil(channels / lanes) * window``."""
    return int(pixels) * -(-int(channels) // int(lanes)) * int(window)


def simd_cycles(elements: int, lanes: int, depth: int = SIMD_LATENCY) -> int:
    """Cycles one SIMD op holds the core at full rate: ``SIMD_START + ceil(elements / lanes) + depth``.

    From the cycle its descriptor is taken to the cycle its last output
    beat leaves, both counted (the next descriptor is taken in the cycle
    after). ``elements`` counts lane slots of the input beats
    (``pixels * window * ceil(channels / lanes) * lanes``: exact for the
    RTL; a count of real elements is exact when ``lanes`` divides
    ``channels`` and a lower bound otherwise); ``depth`` is the pipeline's
    register stages (:data:`model.spec.SIMD_LATENCY`).
    """
    e = check_int("elements", elements, 0)
    n = check_int("lanes", lanes, 1)
    return SIMD_START + -(-e // n) + check_int("depth", depth, 0)


#: ``simd`` record ops (:mod:`model.simd`) the SIMD core runs as one stream op each, one lane slot per element:
#: ``relu`` as clamp, ``add`` as add, ``pool`` as max / average pooling (its elements are window reads)
CORE_RECORD_OPS = ("relu", "add", "pool")


def record_cycles(op: str, simd_ops: int, lanes: int) -> int:
    """Cycles of one ``simd`` record per inference (the performance model's SIMD term).

    For :data:`CORE_RECORD_OPS` (cost 1 per element, so ``simd_ops`` is the
    element count) :func:`simd_cycles` of the RTL; for every other op
    (softmax, LayerNorm, GELU, depthwise, matmuls, ...) the estimate ``ceil(simd_ops / lanes)`` of
    :mod:`model.simd`'s cost table (a depthwise layer whose geometry the performance model knows costs
    :func:`model.chip_timing.dwc_cycles` instead: ``sim_bench.perf.evaluate_layer``).
    """
    n = check_int("simd_ops", simd_ops, 0)
    ln = check_int("lanes", lanes, 1)
    if op in CORE_RECORD_OPS:
        return simd_cycles(n, ln) if n else 0
    return -(-n // ln)


def simd_schedule(beats: int, window: int, first_offer: int, gaps, ready, depth: int = SIMD_LATENCY):
    """The cycle of every input beat taken and output beat sent by one descriptor under a recorded environment.

    The core's handshakes replayed (its pipeline moves when ``~o.valid |
    o.ready``; an input beat is taken when offered, the core busy and the
    pipeline moving). Cycles count from the descriptor's acceptance (cycle 0).
    With every beat offered at once and ``ready`` always high the last output
    beat leaves in cycle ``simd_cycles(...) - 1``.

    Parameters
    ----------
    beats, window : int
        Input beats of the descriptor and beats per window (:func:`simd_beats`).
    first_offer : int
        Cycle from which the first input beat is offered (valid held until taken).
    gaps : sequence of int
        Idle cycles the source inserts before each later beat (``gaps[j]`` before beat ``j``; ``gaps[0]`` unused).
    ready : sequence of bool
        The sink's ready in each cycle from 0 (enough cycles to cover the run).
    depth : int
        Register stages (:data:`model.spec.SIMD_LATENCY`).

    Returns
    -------
    (list of int, list of int)
        Cycles of the input takes and of the output beats.
    """
    n_out = beats // window
    stages = [False] * depth  # stage k holds a window's last beat (k = 0: capture)
    takes, outs = [], []
    offer, t = first_offer, SIMD_START
    while len(outs) < n_out:
        if t >= len(ready):
            raise ValueError(f"ready: covers {len(ready)} cycles, the run needs more")
        en = not stages[-1] or bool(ready[t])
        if stages[-1] and ready[t]:
            outs.append(t)
        take = en and len(takes) < beats and t >= offer
        if en:
            stages = [take and len(takes) % window == window - 1] + stages[:-1]
        if take:
            takes.append(t)
            if len(takes) < beats:
                offer = t + 1 + int(gaps[len(takes)])
        t += 1
    return takes, outs

"""The input buffer and window generator's golden twin (docs/design.md §16).

The chip's input buffer holds a layer's input activation map; the window
generator (``hw.window.WindowGenerator``) turns it into a PIM core's input
stream: for each pass, for each of its output pixels, the pass's windows
(``n_comp`` consecutive im2col inputs) in order, zero for the padding and for
the inputs past ``K``. This module writes down, once:

* :class:`WindowLayer` - the layer descriptor (map size, kernel, stride,
  padding, dilation, where the map starts) and its words
  (:data:`model.spec.WINDOW_LAYER`);
* :func:`buffer_words` - the buffer's depth from ``system.input_buffer_kib``;
* :func:`lane_read_bytes` - the bytes a lane's read takes (its bank's whole word);
* :func:`table_entries` / :func:`pass_words` - what the host writes: the
  window table (one entry per window, :data:`model.spec.WINDOW_ENTRY`) and
  the pass descriptors (:data:`model.spec.WINDOW_PASS`);
* :func:`generator_addresses` / :func:`generator_beats` - the buffer addresses
  the RTL reads and the beats it emits, computed from the table entries
  exactly as the RTL does (its bit-exact twin);
* :func:`segment_table` / :func:`segment_passes` / :func:`segment_stream` -
  the generator's program for one START of the core (:mod:`model.core`): its
  stream equals :func:`model.core.input_windows` of the layer's im2col
  inputs (tested);
* :func:`generator_cycles` - the generator's cycles (its one timing function).

Pure NumPy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dbpim.model.layer import conv_out_size
from dbpim.model.spec import (BUS_BITS, WINDOW_ELEMENTS_MAX, WINDOW_ENTRY, WINDOW_LATENCY, WINDOW_LAYER, WINDOW_PASS,
                              input_bits, pack, register_fields)

__all__ = ["WindowLayer", "buffer_words", "lane_read_bytes", "buffer_image", "table_entries", "pass_words", "generator_addresses",
           "generator_beats", "pass_taps",
           "segment_table", "segment_passes", "segment_stream", "generator_cycles", "descriptor_markdown"]


def _field(registers, name: str):
    for r in registers:
        for f in r.fields:
            if f.name == name:
                return f
    raise KeyError(name)


def _fits(value, registers, name: str, lo: int, what: str) -> int:
    """``value`` as an int in ``lo .. 2**width - 1`` of register field ``name``, else a one-line ValueError."""
    width = _field(registers, name).width
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value < 1 << width:
        raise ValueError(f"{what}: {name.lower()} must be an integer from {lo} to {(1 << width) - 1}, "
                         f"got {value!r}")
    return int(value)


def _pair(v) -> tuple:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


@dataclass(frozen=True)
class WindowLayer:
    """One convolution's input map and window geometry: the window generator's layer descriptor.

    A linear layer is a 1 x 1 convolution of a ``(K, 1, 1)`` map. Strides,
    paddings and dilations are (height, width) pairs (one int for both in
    :meth:`of`). ``base`` is the input buffer address of value (0, 0, 0).
    ``out_rows`` (default: :func:`model.layer.conv_out_size` of the height)
    sets the output rows the descriptor serves: a row band of a larger map
    (:func:`model.pim_image.band_plan`), whose rows past ``height`` are padding
    and whose top padding ``padding[0]`` may differ from its bottom one.
    Every value is checked against its descriptor field (:data:`model.spec.WINDOW_LAYER`).
    """

    channels: int
    height: int
    width: int
    kh: int
    kw: int
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    dilation: tuple = (1, 1)
    base: int = 0
    out_rows: int | None = None

    def __post_init__(self):
        what = "window layer"
        for name, v, lo in (("HEIGHT", self.height, 1), ("WIDTH", self.width, 1), ("KH", self.kh, 1),
                            ("KW", self.kw, 1), ("SH", _pair(self.stride)[0], 1), ("SW", _pair(self.stride)[1], 1),
                            ("PH", _pair(self.padding)[0], 0), ("PW", _pair(self.padding)[1], 0),
                            ("DH", _pair(self.dilation)[0], 1), ("DW", _pair(self.dilation)[1], 1),
                            ("BASE", self.base, 0)):
            _fits(v, WINDOW_LAYER, name, lo, what)
        _fits(self.channels - 1 if isinstance(self.channels, (int, np.integer)) and not isinstance(
            self.channels, bool) else self.channels, WINDOW_ENTRY, "CHANNEL", 0, what + " (channels - 1)")
        for k in ("stride", "padding", "dilation"):
            object.__setattr__(self, k, tuple(int(v) for v in _pair(getattr(self, k))))
        for k in ("channels", "height", "width", "kh", "kw", "base"):
            object.__setattr__(self, k, int(getattr(self, k)))
        if self.out_rows is not None:
            r = self.out_rows
            if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 1:
                raise ValueError(f"{what}: out_rows must be a positive integer, got {r!r}")
            object.__setattr__(self, "out_rows", int(r))
        if self.out_h < 1 or self.out_w < 1:
            raise ValueError(f"{what}: a {self.height}x{self.width} map is smaller than the {self.kh}x{self.kw} "
                             f"kernel (dilation {self.dilation}, padding {self.padding})")
        _fits(self.out_w, WINDOW_LAYER, "OUT_W", 1, what)
        _fits(self.out_h - 1, WINDOW_PASS, "HO", 0, what + " (out_h - 1)")
        if self.base + self.elements > WINDOW_ELEMENTS_MAX:
            raise ValueError(f"{what}: base + channels * height * width must be at most {WINDOW_ELEMENTS_MAX}, "
                             f"got {self.base + self.elements}")

    @classmethod
    def of(cls, channels: int, height: int, width: int, kh: int, kw: int, stride=1, padding=0, dilation=1,
           base: int = 0) -> "WindowLayer":
        """From PyTorch-style arguments (an int or a (height, width) pair each)."""
        return cls(channels, height, width, kh, kw, _pair(stride), _pair(padding), _pair(dilation), base)

    @property
    def out_h(self) -> int:
        if self.out_rows is not None:
            return self.out_rows
        return conv_out_size(self.height, self.kh, self.stride[0], self.padding[0], self.dilation[0])

    @property
    def out_w(self) -> int:
        return conv_out_size(self.width, self.kw, self.stride[1], self.padding[1], self.dilation[1])

    @property
    def pixels(self) -> int:
        """Output pixels of one sample (the core's ``P``)."""
        return self.out_h * self.out_w

    @property
    def K(self) -> int:
        """im2col inputs of one pixel: ``channels * kh * kw``, ordered (c, i, j) like :func:`model.layer.im2col`."""
        return self.channels * self.kh * self.kw

    @property
    def elements(self) -> int:
        """Inputs of the map in the buffer: ``channels * height * width``."""
        return self.channels * self.height * self.width

    def words(self) -> list[int]:
        """The layer descriptor's four 32-bit words (:data:`model.spec.WINDOW_LAYER`), word 0 first."""
        v = {"base": self.base, "height": self.height, "width": self.width, "kh": self.kh, "kw": self.kw,
             "sh": self.stride[0], "sw": self.stride[1], "ph": self.padding[0], "pw": self.padding[1],
             "dh": self.dilation[0], "dw": self.dilation[1], "out_w": self.out_w}
        return _split(register_fields(WINDOW_LAYER), v, len(WINDOW_LAYER))


def _split(fields, values: dict, n_words: int) -> list[int]:
    word = pack(fields, values | {f[0]: 0 for f in fields if f[0].startswith("_pad")})
    return [(word >> (BUS_BITS * k)) & ((1 << BUS_BITS) - 1) for k in range(n_words)]


def buffer_words(input_buffer_kib: float, n_comp: int, in_bits: int) -> int:
    """Words of the input buffer: ``floor(input_buffer_kib * 8192 / (n_comp * in_bits))``, a word = ``n_comp`` inputs."""
    return int(float(input_buffer_kib) * 8192 // (int(n_comp) * int(in_bits)))


def lane_read_bytes(n_comp: int, in_bits: int) -> float:
    """Bytes one lane's read takes from the input buffer: ``n_comp * in_bits / 8``.

    The buffer is ``n_comp`` banks that each hold the whole map (``hw.window``, docs/rtl.md): lane ``e`` reads
    bank ``e``'s whole word of ``n_comp`` inputs for its one input, so a read costs the word, not one input.
    """
    return int(n_comp) * int(in_bits) / 8


def buffer_image(layer: WindowLayer, x, signed: bool, words: int, n_comp: int) -> np.ndarray:
    """The input buffer holding one sample's map ``x`` (C, H, W) at ``layer.base``: uint8 bit patterns (words * n_comp,).

    Values outside the map are 0. ValueError when the map is not the layer's or does not fit ``words``.
    """
    x = np.asarray(x)
    if x.shape != (layer.channels, layer.height, layer.width):
        raise ValueError(f"x: must be one sample's map ({layer.channels}, {layer.height}, {layer.width}), "
                         f"got {x.shape}")
    if layer.base + layer.elements > words * n_comp:
        raise ValueError(f"x: base {layer.base} + {layer.elements} inputs do not fit the input buffer "
                         f"({words} words of {n_comp})")
    buf = np.zeros(words * n_comp, np.uint8)
    buf[layer.base:layer.base + layer.elements] = input_bits(x, signed).reshape(-1)
    return buf


def table_entries(layer: WindowLayer, windows, n_comp: int) -> list[int]:
    """Window table words of ``windows`` (window indices, ``w * n_comp < K``): :data:`model.spec.WINDOW_ENTRY`.

    Entry of window w: the (channel, kernel row, kernel column) of im2col input ``k = w * n_comp`` and the
    count of its inputs past ``K``.
    """
    w = np.asarray(windows, np.int64).reshape(-1)
    k0 = w * n_comp
    if w.size and (w.min() < 0 or k0.max() >= layer.K):
        raise ValueError(f"windows: must be window indices 0 .. {-(-layer.K // n_comp) - 1} "
                         f"(K = {layer.K}, n_comp = {n_comp})")
    taps = layer.kh * layer.kw
    fields = register_fields(WINDOW_ENTRY)
    return [pack(fields, {"channel": int(k // taps), "ki": int(k % taps // layer.kw), "kj": int(k % layer.kw),
                          "n_pad": int(max(0, k + n_comp - layer.K))}) for k in k0]


def pass_words(layer: WindowLayer, p0: int, pixels: int, win_base: int, n_win: int) -> list[int]:
    """A pass descriptor's four words (:data:`model.spec.WINDOW_PASS`): pixels ``p0 ..`` (row-major), its entries."""
    if not 0 <= p0 < layer.pixels or not 0 <= pixels <= layer.pixels - p0:
        raise ValueError(f"pass: pixels {p0} .. {p0 + pixels - 1} are not output pixels of the layer "
                         f"(0 .. {layer.pixels - 1})")
    ho, wo = divmod(int(p0), layer.out_w)
    what = "pass"
    v = {"ho": ho, "wo": wo, "pixels": _fits(pixels, WINDOW_PASS, "PIXELS", 0, what),
         "win_base": _fits(win_base, WINDOW_PASS, "WIN_BASE", 0, what), "n_win": _fits(n_win, WINDOW_PASS, "N_WIN", 0,
                                                                                          what)}
    return _split(register_fields(WINDOW_PASS), v, len(WINDOW_PASS))


def _decode(registers, words) -> dict:
    word = sum(int(w) << (BUS_BITS * k) for k, w in enumerate(words))
    out, at = {}, 0
    for name, width, _, _ in register_fields(registers):
        out[name] = (word >> at) & ((1 << width) - 1)
        at += width
    return out


def generator_addresses(layer_words, table, passes, n_comp: int, in_windows: int = 1) -> np.ndarray:
    """Input buffer address of every input of every beat the window generator emits: int64 (beats, in_windows *
    n_comp), -1 where the input is 0 (padding, or past ``K``).

    Computed from what the RTL holds: the layer descriptor words, the window
    table words and the pass descriptors (each four words), in order. For
    each pass, each of its pixels (row-major from ``(HO, WO)``, wrapping at
    ``OUT_W``) and each of its entries ``WIN_BASE ..``: input ``e`` of the
    beat is im2col input ``(CHANNEL * KH + KI) * KW + KJ + e`` of the pixel,
    the buffer's value at ``BASE + (c * HEIGHT + y) * WIDTH + x``, or 0 when
    ``e >= n_comp - N_PAD`` or ``(y, x)`` is padding. ValueError when a pass
    names entries past the table.

    With ``in_windows`` W > 1 (``core.in_windows``) a beat carries W windows: per pass, per group of W
    consecutive pixels, per entry, window s of the beat is the entry's window of the group's pixel s (inputs
    ``s * n_comp ..``), -1 past the pass's last pixel (:func:`model.core.input_windows`).
    """
    L = _decode(WINDOW_LAYER, layer_words)
    H, W = L["height"], L["width"]
    NW = int(in_windows)
    out = []
    for words in passes:
        taps = pass_taps(layer_words, table, words, n_comp)
        if taps is None:
            continue
        c, y, x, live = taps
        ok = live & (y >= 0) & (y < H) & (x >= 0) & (x < W)
        a = np.where(ok, L["base"] + (c * H + y) * W + x, -1)  # (pixels, n_win, n_comp)
        if NW > 1:  # pixels in groups of W (the last padded with -1), a group's W windows of an entry a beat
            P, n_win = a.shape[:2]
            G = -(-P // NW)
            pad = np.full((G * NW, n_win, n_comp), -1, np.int64)
            pad[:P] = a
            a = pad.reshape(G, NW, n_win, n_comp).transpose(0, 2, 1, 3)
        out.append(a.reshape(-1, NW * n_comp))
    return np.concatenate(out).astype(np.int64) if out else np.zeros((0, NW * n_comp), np.int64)


def generator_beats(buffer, layer_words, table, passes, n_comp: int, in_windows: int = 1) -> np.ndarray:
    """The beats the window generator emits: uint8 (beats, in_windows * n_comp), element 0 = the beat's lowest
    input.

    The RTL's twin: the buffer's input bit patterns (``words * n_comp``) at
    :func:`generator_addresses`, 0 where that is -1. ValueError when a pass
    reads past the buffer.
    """
    buf = np.asarray(buffer, np.uint8).reshape(-1)
    addr = generator_addresses(layer_words, table, passes, n_comp, in_windows)
    if addr.size and addr.max() >= buf.size:
        raise ValueError(f"pass: reads input {int(addr.max())} past the buffer's {buf.size}")
    return np.where(addr >= 0, buf[np.clip(addr, 0, max(0, buf.size - 1))] if buf.size else 0, 0).astype(np.uint8)


def pass_taps(layer_words, table, words, n_comp: int):
    """The taps of one pass descriptor's beats, or None for a pass with no beat (``PIXELS`` or ``N_WIN`` 0).

    Returns ``(c, y, x, live)``, each of shape ``(pixels, n_win, n_comp)``: input ``e`` of the beat of pixel
    ``p`` and entry ``k`` reads map value ``(c, y, x)`` (``y`` and ``x`` in the padded frame shifted back:
    negative or past ``HEIGHT`` / ``WIDTH`` is padding) unless ``live`` is false (past ``K``).
    """
    L = _decode(WINDOW_LAYER, layer_words)
    kh, kw = L["kh"], L["kw"]
    P = _decode(WINDOW_PASS, words)
    if P["pixels"] == 0 or P["n_win"] == 0:
        return None
    e = np.arange(n_comp)
    q = np.arange(P["pixels"]) + P["wo"]
    ho, wo = P["ho"] + q // L["out_w"], q % L["out_w"]  # (pixels,)
    if P["win_base"] + P["n_win"] > len(table):
        raise ValueError(f"pass: entries {P['win_base']} .. {P['win_base'] + P['n_win'] - 1} are past the "
                         f"window table's {len(table)}")
    es = [_decode(WINDOW_ENTRY, [table[P["win_base"] + k]]) for k in range(P["n_win"])]
    t = np.array([(d["channel"] * kh + d["ki"]) * kw + d["kj"] for d in es])[:, None] + e  # (n_win, n_comp)
    live = e[None, :] < np.array([n_comp - d["n_pad"] for d in es])[:, None]
    c, i, j = t // (kh * kw), t // kw % kh, t % kw
    y = ho[:, None, None] * L["sh"] - L["ph"] + i * L["dh"]
    x = wo[:, None, None] * L["sw"] - L["pw"] + j * L["dw"]
    shape = (P["pixels"], P["n_win"], n_comp)
    return (np.broadcast_to(c, shape), np.broadcast_to(y, shape), np.broadcast_to(x, shape),
            np.broadcast_to(live, shape))


def segment_table(segment, n_comp: int) -> np.ndarray:
    """Window index of each mask word of a core segment (:class:`model.core.Segment`): the table's windows."""
    win = np.full(len(segment.masks), -1, np.int64)
    for p in segment.passes:
        win[p.mask_base:p.mask_base + p.n_win] = p.windows
    return win


def segment_passes(layer: WindowLayer, segment) -> list[list[int]]:
    """The generator's pass descriptors for a core segment: one per core pass, same pixels and mask words."""
    return [pass_words(layer, p.p0, p.pixels, p.mask_base, p.n_win) for p in segment.passes]


def segment_stream(program, segment, layer: WindowLayer, x) -> np.ndarray:
    """The generator's beats for one START of a core program from one sample's map ``x`` (C, H, W).

    Equal to :func:`model.core.input_windows` of the map's im2col inputs (tested).
    """
    n = program.params.macro.n_comp
    if layer.K != program.compiled.K or layer.pixels != program.pixels:
        raise ValueError(f"layer: K {layer.K} and {layer.pixels} pixels, the program has K {program.compiled.K} "
                         f"and {program.pixels} pixels")
    words = -(-(layer.base + layer.elements) // n)
    buf = buffer_image(layer, x, program.signed, words, n)
    return generator_beats(buf, layer.words(), table_entries(layer, segment_table(segment, n), n),
                           segment_passes(layer, segment), n, program.params.core.in_windows)


def generator_cycles(pixels, n_win, in_windows: int = 1) -> int:
    """Cycles from the first pass descriptor to the last beat's handshake, for a queue of passes.

    One beat per cycle: ``WINDOW_LATENCY["start"] + sum(ceil(pixels / in_windows) * n_win)``,
    with the output always ready and each next descriptor waiting (it is
    taken in the cycle the pass's last beat reads the input buffer, the cycle
    before that beat leaves). ``WINDOW_LATENCY["start"]`` = 2: the first
    beat's window table entry is read in the cycle its descriptor is taken,
    its inputs in the next. A pass with no beat costs one cycle of its own. The core takes at most one window per cycle
    (:func:`model.core_timing.delivery_cycles` >= the windows of a vector),
    so the generator never makes it wait once a pass has started.
    """
    b = -(-np.asarray(pixels, np.int64) // int(in_windows)) * np.asarray(n_win, np.int64)
    return int(WINDOW_LATENCY["start"] + b.sum() + (b == 0).sum())


def descriptor_markdown() -> str:
    """The window generator's descriptor and table entry fields as one Markdown table (docs/rtl.md holds it)."""
    lines = ["| descriptor | word | bits | field | meaning |", "|---|---|---|---|---|"]
    for what, regs in (("layer (`layer`)", WINDOW_LAYER), ("pass (`d`)", WINDOW_PASS),
                       ("table entry (`t_data`)", WINDOW_ENTRY)):
        for r in regs:
            lines += [f"| {what} | {r.word} ({r.name}) | {f.msb}:{f.lsb} | {f.name} | {f.desc} |" for f in r.fields]
    return "\n".join(lines) + "\n"

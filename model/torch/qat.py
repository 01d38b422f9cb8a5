"""FTA-aware quantization-aware training (paper Sec. IV-C2/3, docs/design.md §1, §3).

Every mapped layer (``nn.Linear``, ``nn.Conv1d``, ``nn.Conv2d`` chosen by
:func:`model.torch.graph.capture`) is wrapped in a :class:`QLayer` that holds
the original module as ``inner``:

* activations (the layer's input): 8-bit, zero-point 0, range from an EMA of
  the batch min/max (momentum 0.1, no learned parameters). The signedness is
  fixed at the first observation: unsigned [0, 255] (scale max/255) if the
  observed minimum is >= 0 (post-ReLU), signed [-128, 127] (scale
  max|.|/127) otherwise (first layer, residual / linear-bottleneck inputs).
  Rounding: round-half-even (``torch.round``).
* weights: 8-bit per-output-channel symmetric, scale = max|w_kept| / 127; in
  FTA mode every step computes phi per filter from the current weights and
  replaces every kept weight by its nearest FTA-compliant value
  (:func:`fta_quantize`, bit-identical to ``model.fta.quantize``); pruned
  weights stay 0. Gradients pass straight through (STE).
* :func:`freeze` is the final FTA quantization: ``model.fta.quantize`` on
  ``u = w / scale`` (one rounding) gives the int8 weights and phi that are
  exported; afterwards the layer runs the integer path: ``y_int = x_int @ W_int``
  computed exactly (float64 on integers, |y| < 2^53), then
  ``y = y_int * (s_x * s_w[n]) + bias`` in float for the next layer. The
  per-filter scale and the bias broadcast over the output channels: the last
  axis of a Linear (any number of leading token axes), axis 1 of a conv.

BatchNorm is folded into its producer by :func:`model.torch.graph.fold_bn` before QAT.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dbpim.model import fta as gfta
from dbpim.model.quant import channel_scale
from dbpim.model.spec import WEIGHT_MAX, WEIGHT_MIN, input_range
from dbpim.model.torch.graph import MAPPABLE, conv_padding, mapped_kind
from dbpim.model.torch.prune import conv_groups, weight_kn

__all__ = ["fta_lut", "fta_thresholds", "fta_approximate", "fta_quantize", "ActQuant", "QLayer",
           "quantize_model", "qlayers", "set_mode", "freeze", "QAT_MODES"]

QAT_MODES = ("float", "qat", "int")

# ----------------------------------------------------------------------------- FTA in torch

_LUT: torch.Tensor | None = None


def fta_lut() -> torch.Tensor:
    """(5, 1024) nearest-value table, built from ``model.fta.approximate`` itself.

    Members of S_phi are integers, so the nearest member is constant on each
    open interval (i/2, (i+1)/2); column ``2*(i+256) + open`` holds the answer
    at u = i/2 (open = 0) or inside the interval above it (open = 1).
    """
    global _LUT
    if _LUT is None:
        i = np.arange(-256, 255)
        grid = np.stack([i / 2.0, i / 2.0 + 0.25], 1).reshape(-1)  # index 2*(i+256)+open
        lut = np.zeros((5, 1024), np.float32)
        for phi in range(5):
            lut[phi, :grid.size] = gfta.approximate(grid, phi, phi_max=4)
        _LUT = torch.from_numpy(lut)
    return _LUT


def fta_approximate(u: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """Nearest value with exactly ``phi`` non-zero CSD digits (float tensor of integers).

    Same semantics as ``model.fta.approximate``: u clipped to [-128, 127], ties
    to the smaller magnitude, then the positive value. ``phi`` broadcasts
    against ``u`` (per filter: shape (N,) for a K x N ``u``).
    """
    y = 2 * torch.clamp(u, float(WEIGHT_MIN), float(WEIGHT_MAX))
    i = torch.floor(y)
    key = (i.to(torch.int64) + 256) * 2 + (y != i)
    key = key + torch.as_tensor(phi, dtype=torch.int64) * 1024  # phi broadcasts (per filter: a row)
    return fta_lut().to(u.dtype).take(key)


def _nnz_table() -> torch.Tensor:
    from dbpim.model import csd
    return torch.from_numpy(csd.NNZ_LUT.astype(np.int64))


_NNZ = _nnz_table()


def fta_thresholds(w_int: torch.Tensor, mask: torch.Tensor, phi_min: int = 0, phi_max: int = 2) -> torch.Tensor:
    """Per-filter phi (long (N,)) of K x N integer weights: mode of nnz over kept weights,
    ties to the larger count, clamped; a filter with no kept weight gets ``phi_min``."""
    N = w_int.shape[-1]
    n = _NNZ.take(w_int.to(torch.int64) + 128)                      # K x N digits per weight
    key = torch.where(mask.bool(), n * N + torch.arange(N), 5 * N)  # (nnz, filter) pairs; pruned: a spare bin
    counts = torch.bincount(key.reshape(-1), minlength=5 * N + 1)[:5 * N].reshape(5, N).t()  # N x 5
    mode = 4 - torch.argmax(counts.flip(-1), dim=-1)
    mode = torch.where(counts.sum(-1) == 0, torch.full_like(mode, phi_min), mode)
    return mode.clamp(phi_min, phi_max)


def fta_quantize(u: torch.Tensor, mask: torch.Tensor, phi_min: int = 0, phi_max: int = 2):
    """Torch twin of ``model.fta.quantize`` for K x N ``u``: (w_fta float of ints, phi long (N,))."""
    w0 = torch.round(torch.clamp(u, float(WEIGHT_MIN), float(WEIGHT_MAX)))
    phi = fta_thresholds(w0, mask, phi_min, phi_max)
    w = fta_approximate(u, phi.unsqueeze(0)) * mask.to(u.dtype)
    return w, phi

# ----------------------------------------------------------------------------- quantizers


class ActQuant(nn.Module):
    """8-bit activation fake-quantizer with EMA min-max range, zero-point 0."""

    def __init__(self, momentum: float = 0.1):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("rmin", torch.zeros(()))
        self.register_buffer("rmax", torch.zeros(()))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))
        self.register_buffer("signed", torch.zeros((), dtype=torch.bool))
        self.frozen = False

    @torch.no_grad()
    def observe(self, x: torch.Tensor) -> None:
        mn, mx = x.min().float(), x.max().float()
        if not bool(self.initialized):
            self.rmin.copy_(mn)
            self.rmax.copy_(mx)
            self.signed.fill_(bool(mn < 0))
            self.initialized.fill_(True)
        else:
            self.rmin.mul_(1 - self.momentum).add_(self.momentum * mn)
            self.rmax.mul_(1 - self.momentum).add_(self.momentum * mx)

    @property
    def bounds(self) -> tuple[int, int]:
        return input_range(bool(self.signed))

    def scale(self) -> torch.Tensor:
        if bool(self.signed):
            s = torch.maximum(self.rmin.abs(), self.rmax.abs()) / float(input_range(True)[1])
        else:
            s = self.rmax.clamp_min(0) / float(input_range(False)[1])
        return s.clamp_min(1e-8)

    def to_int(self, x: torch.Tensor) -> torch.Tensor:
        """Integer codes (as a float tensor) of ``x``: clamp(round(x / s))."""
        lo, hi = self.bounds
        return torch.clamp(torch.round(x / self.scale()), lo, hi)

    def forward(self, x):
        if self.training and not self.frozen:
            self.observe(x)
        if not bool(self.initialized):
            self.observe(x)
        q = self.to_int(x) * self.scale()
        return x + (q - x).detach()


class QLayer(nn.Module):
    """A mapped Linear/Conv1d/Conv2d with activation and (FTA) weight quantization.

    Modes: ``float`` (the inner module unchanged), ``qat`` (fake quantization,
    FTA when ``self.fta``), ``int`` (frozen integer weights, exact integer
    matmul; set by :func:`freeze`).
    """

    dbpim_leaf = True  # one node of the captured graph

    def __init__(self, inner: nn.Module, fta: bool = True, phi_min: int = 0, phi_max: int = 2):
        super().__init__()
        if not isinstance(inner, MAPPABLE):
            raise TypeError(f"QLayer: {type(inner).__name__} is not a mapped layer")
        self.inner = inner
        self.act = ActQuant()
        self.fta = bool(fta)
        self.phi_min, self.phi_max = gfta.check_phi(phi_max, phi_min)  # 1.5 is refused, never run as 1
        self.mode = "qat"
        self.record: list | None = None  # set to a list to capture (x_int, y_int) in int mode
        #: qat mode with another weight constraint (:func:`model.torch.project.projected_finetune`): a
        #: callable taking ``u = W / w_scale`` (K x N float64 NumPy) and returning K x N integer weights;
        #: the per-filter scale is then the fixed ``w_scale``, and phi is not computed
        self.projection = None
        #: another way to compute the layer (``op(layer, x, w, bias)`` with ``_op``'s arguments: the quantized
        #: input, the weight in the inner module's layout, the bias or None), e.g. with its inputs pruned
        #: (:func:`model.torch.project.crossbar_pruned_op`); None: the plain convolution / matmul
        self.op_override = None
        N = inner.weight.shape[0]
        self.register_buffer("w_int", torch.zeros(0))          # K x N (float of ints) once frozen
        self.register_buffer("w_scale", torch.zeros(N))
        self.register_buffer("phi", torch.zeros(N, dtype=torch.long))
        self.register_buffer("x_scale", torch.zeros(()))

    @property
    def kind(self) -> str:
        """``linear``, ``conv1d`` or ``conv2d``."""
        return mapped_kind(self.inner)

    @property
    def is_conv(self) -> bool:
        return self.kind != "linear"

    @property
    def groups(self) -> int:
        return conv_groups(self.inner)

    def mask_kn(self) -> torch.Tensor:
        mk = getattr(self.inner, "dbpim_mask", None)
        if mk is None:
            return torch.ones_like(weight_kn(self.inner), dtype=torch.bool)
        return weight_kn(self.inner, mk) > 0

    def weight_scale(self) -> torch.Tensor:
        """Per-filter int8 scale over the kept weights (:func:`model.quant.channel_scale`)."""
        w = weight_kn(self.inner).detach()
        return torch.from_numpy(channel_scale(w.double().numpy(), self.mask_kn().numpy())).to(w.dtype)

    def quant_weight(self):
        """(w_int K x N float of ints, scale (N,), phi (N,) or None) from the current weights.

        Cached until the weight tensor changes (its version counter moves on every
        in-place update: optimizer steps, re-masking), so evaluation passes do not
        recompute the FTA approximation.
        """
        W = self.inner.weight
        key = (id(W), W._version, self.fta, self.phi_min, self.phi_max, id(self.projection))
        cache = getattr(self, "_wq_cache", None)
        if cache is not None and cache[0] == key:
            return cache[1]
        out = self._quant_weight()
        self._wq_cache = (key, out)
        return out

    def _quant_weight(self):
        if self.projection is not None:
            s = self.w_scale
            u = (weight_kn(self.inner).detach().double() / s.double()).numpy()
            w = torch.from_numpy(np.asarray(self.projection(u), np.float64)).to(s.dtype)
            if w.shape != u.shape:
                raise ValueError(f"projection: must return a {tuple(u.shape)} matrix, got {tuple(w.shape)}")
            return w, s, None
        s = self.weight_scale()
        u = weight_kn(self.inner).detach() / s
        m = self.mask_kn()
        if self.fta:
            w, phi = fta_quantize(u, m, self.phi_min, self.phi_max)
        else:
            w, phi = torch.clamp(torch.round(u), WEIGHT_MIN, WEIGHT_MAX) * m, None
        return w, s, phi

    def _op(self, x, w, bias):
        if self.op_override is not None:
            return self.op_override(self, x, w, bias)
        return self.plain_op(x, w, bias)

    def plain_op(self, x, w, bias):
        """The layer's convolution or matmul of ``x`` with ``w`` (inner module layout) plus ``bias``."""
        c = self.inner
        if self.kind == "conv2d":
            return F.conv2d(x, w, bias, c.stride, conv_padding(c), c.dilation, c.groups)
        if self.kind == "conv1d":
            return F.conv1d(x, w, bias, c.stride, conv_padding(c), c.dilation, c.groups)
        return F.linear(x, w, bias)

    def _channels(self, v: torch.Tensor, ndim: int) -> torch.Tensor:
        """Per-output-channel ``v`` shaped to broadcast against an output of ``ndim`` axes."""
        return v if not self.is_conv else v.reshape((1, -1) + (1,) * (ndim - 2))

    def forward(self, x):
        if self.mode == "float":
            return self.inner(x)
        if self.mode == "qat":
            xq = self.act(x)
            W = self.inner.weight
            w, s, phi = self.quant_weight()
            if phi is not None:
                self.phi.copy_(phi)
            wq = (w * s).t().reshape(W.shape)
            return self._op(xq, W + (wq - W).detach(), self.inner.bias)
        # integer path
        x_int = self.act.to_int(x)
        W = self.inner.weight
        w = self.w_int.t().reshape(W.shape).double()
        y_int = self._op(x_int.double(), w, None)
        if self.record is not None:
            self.record.append((x_int.detach(), y_int.detach()))
        y = y_int * self._channels(self.x_scale.double() * self.w_scale.double(), y_int.dim())
        if self.inner.bias is not None:
            y = y + self._channels(self.inner.bias.double(), y_int.dim())
        return y.to(x.dtype)

    @torch.no_grad()
    def freeze(self) -> None:
        """Final (FTA) quantization with the golden ``model.fta.quantize``; switch to ``int``."""
        s = self.weight_scale()
        u = (weight_kn(self.inner).detach() / s).double().numpy()
        m = self.mask_kn().numpy()
        if self.fta:
            w, phi = gfta.quantize(u, m, self.phi_min, self.phi_max)
            self.phi.copy_(torch.from_numpy(phi.astype(np.int64)))
        else:
            w = (np.rint(np.clip(u, WEIGHT_MIN, WEIGHT_MAX)) * m).astype(np.int8)
            self.phi.zero_()
        self.w_int = torch.from_numpy(w.astype(np.float32))
        self.w_scale.copy_(s)
        self.x_scale.copy_(self.act.scale())
        self.act.frozen = True
        self.mode = "int"

# ----------------------------------------------------------------------------- model surgery


def quantize_model(model: nn.Module, names: list[str], fta: bool = True, phi_min: int = 0,
                   phi_max: int = 2) -> list[str]:
    """Wrap the mapped layers ``names`` (from :func:`model.torch.graph.capture`) in
    :class:`QLayer` (in place); returns the names."""
    mods = dict(model.named_modules())
    for name in names:
        model.set_submodule(name, QLayer(mods[name], fta=fta, phi_min=phi_min, phi_max=phi_max))
    return list(names)


def qlayers(model: nn.Module) -> list[tuple[str, QLayer]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, QLayer)]


def set_mode(model: nn.Module, mode: str) -> None:
    if mode not in QAT_MODES:
        raise ValueError(f"mode: must be one of {', '.join(QAT_MODES)}, got {mode!r}")
    for _, q in qlayers(model):
        if mode == "int" and q.w_int.numel() == 0:
            raise RuntimeError("set_mode: call freeze() before switching to the integer path")
        q.mode = mode


def freeze(model: nn.Module) -> None:
    """Final FTA quantization of every QLayer (integer path from now on)."""
    for _, q in qlayers(model):
        q.freeze()

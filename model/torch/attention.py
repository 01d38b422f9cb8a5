"""``nn.MultiheadAttention`` decomposed into what the hardware runs (docs/frontend.md).

:class:`DecomposedMHA` computes exactly what ``nn.MultiheadAttention`` computes
(same signature and return values), but with four ``nn.Linear`` projections
(q, k, v and output: mapped onto the macros like any Linear) and the attention
itself written out as activation-by-activation matmuls, a softmax and the masks
(the SIMD core). :func:`decompose_attention` swaps it in for every
``nn.MultiheadAttention`` it can express; the others stay whole and are
passed through (run in float on the SIMD core), with the reason.
"""

from __future__ import annotations

import math

import torch
import torch.fx as fx
from torch import nn

__all__ = ["DecomposedMHA", "decompose_attention", "mask_scores"]


def mask_scores(s: torch.Tensor, attn_mask, key_padding_mask, is_causal: bool = False) -> torch.Tensor:
    """Apply ``nn.MultiheadAttention``'s masks to attention scores ``s`` (B, H, L, S).

    Boolean masks mark positions that may *not* attend (filled with -inf);
    float masks are added. ``attn_mask`` is (L, S) or (B * H, L, S),
    ``key_padding_mask`` (B, S). ``is_causal`` without ``attn_mask`` applies
    the causal mask.
    """
    B, H, L, S = s.shape
    if attn_mask is None and is_causal:
        attn_mask = torch.ones(L, S, dtype=torch.bool, device=s.device).triu(1)
    for m in (attn_mask, key_padding_mask):
        if m is None:
            continue
        if m is key_padding_mask:
            m = m.reshape(B, 1, 1, S)
        elif m.dim() == 3:
            m = m.reshape(B, H, L, S)
        s = s.masked_fill(m, float("-inf")) if m.dtype == torch.bool else s + m.to(s.dtype)
    return s


fx.wrap("mask_scores")  # one graph node (a SIMD 'mask' op), not traced into


class DecomposedMHA(nn.Module):
    """``nn.MultiheadAttention`` with separate q/k/v/out ``nn.Linear`` projections.

    Built from an ``nn.MultiheadAttention`` (weights copied). Supports
    ``batch_first`` either way, ``kdim``/``vdim``, with or without bias,
    ``attn_mask`` (bool or float, 2-D or 3-D), ``key_padding_mask``,
    ``need_weights`` / ``average_attn_weights`` and dropout on the attention
    weights (an ``nn.Dropout``, so it follows train/eval).
    """

    def __init__(self, mha: nn.MultiheadAttention):
        super().__init__()
        E, H = mha.embed_dim, mha.num_heads
        self.embed_dim, self.num_heads, self.head_dim = E, H, E // H
        self.batch_first = bool(mha.batch_first)
        bias = mha.in_proj_bias is not None
        self.q_proj = nn.Linear(E, E, bias=bias)
        self.k_proj = nn.Linear(mha.kdim, E, bias=bias)
        self.v_proj = nn.Linear(mha.vdim, E, bias=bias)
        self.out_proj = nn.Linear(E, E, bias=mha.out_proj.bias is not None)
        self.attn_drop = nn.Dropout(mha.dropout)
        with torch.no_grad():
            if mha._qkv_same_embed_dim:
                wq, wk, wv = mha.in_proj_weight.chunk(3)
            else:
                wq, wk, wv = mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight
            for lin, w, i in ((self.q_proj, wq, 0), (self.k_proj, wk, 1), (self.v_proj, wv, 2)):
                lin.weight.copy_(w)
                if bias:
                    lin.bias.copy_(mha.in_proj_bias[i * E:(i + 1) * E])
            self.out_proj.weight.copy_(mha.out_proj.weight)
            if mha.out_proj.bias is not None:
                self.out_proj.bias.copy_(mha.out_proj.bias)
        self.train(mha.training)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        return t.unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)  # B, H, L, D

    def forward(self, query, key, value, key_padding_mask=None, need_weights: bool = True, attn_mask=None,
                average_attn_weights: bool = True, is_causal: bool = False):
        if not self.batch_first:
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        q = self._heads(self.q_proj(query))
        k = self._heads(self.k_proj(key))
        v = self._heads(self.v_proj(value))
        s = (q * (1.0 / math.sqrt(self.head_dim))) @ k.transpose(-2, -1)
        if attn_mask is not None or key_padding_mask is not None or is_causal:
            s = mask_scores(s, attn_mask, key_padding_mask, is_causal)
        a = self.attn_drop(torch.softmax(s, dim=-1))
        o = self.out_proj((a @ v).transpose(1, 2).flatten(-2))
        if not self.batch_first:
            o = o.transpose(0, 1)
        if not need_weights:
            return o, None
        return o, (a.mean(dim=1) if average_attn_weights else a)


def _why_not(parent: nn.Module, m: nn.MultiheadAttention) -> str | None:
    if m.bias_k is not None or m.add_zero_attn:
        return "add_bias_kv / add_zero_attn are not decomposed"
    if m.embed_dim % m.num_heads:
        return "embed_dim is not a multiple of num_heads"
    if type(parent).__module__.startswith("torch.nn"):
        return f"inside {type(parent).__name__}, which reads its attention's fused weights directly"
    return None


def decompose_attention(model: nn.Module) -> tuple[list[str], list[dict]]:
    """Swap every expressible ``nn.MultiheadAttention`` of ``model`` (in place) for a
    :class:`DecomposedMHA`.

    Returns
    -------
    decomposed : list of str
        Qualified names swapped.
    kept : list of dict
        ``{"name", "note"}`` of those left whole (they run in float on the SIMD core).
    """
    mods = dict(model.named_modules())
    done, kept = [], []
    for name, m in list(mods.items()):
        if not isinstance(m, nn.MultiheadAttention):
            continue
        if not name:
            kept.append({"name": name, "note": "nn.MultiheadAttention kept whole: it is the whole model"})
            continue
        why = _why_not(mods[name.rpartition(".")[0]], m)
        if why:
            kept.append({"name": name, "note": f"nn.MultiheadAttention kept whole: {why}"})
            continue
        model.set_submodule(name, DecomposedMHA(m))
        done.append(name)
    return done, kept

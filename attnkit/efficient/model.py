"""One small encoder with a pluggable attention, to compare the methods on a task.

:func:`make_self_attention` builds any of the package's self-attention layers by name;
:class:`LongRangeClassifier` is a pre-LN Transformer encoder (Xiong et al., 2020) whose
attention layers all come from it, and which reads its prediction at position 0 (like
BERT's ``[CLS]``). Everything else (embeddings, feed-forward, sizes, training) stays the
same across methods, so differences in accuracy, time and memory come from the attention.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch
from torch import nn

from .._validate import check_choice, check_positive_int, check_probability, check_tensor, fmt_shape
from ..positional import sinusoidal_encoding
from ..transformer import FeedForward
from ._base import EfficientSelfAttention

#: name -> (module, class) of every self-attention layer; options go to the constructor.
ATTENTION_LAYERS: dict[str, tuple[str, str]] = {
    "full": ("full", "FullSelfAttention"),
    "tiled": ("tiled", "TiledSelfAttention"),
    "local": ("local", "LocalSelfAttention"),
    "sparse": ("sparse_transformer", "SparseTransformerSelfAttention"),
    "bigbird": ("bigbird", "BigBirdSelfAttention"),
    "longformer": ("longformer", "LongformerSelfAttention"),
    "linformer": ("linformer", "LinformerSelfAttention"),
    "performer": ("performer", "PerformerSelfAttention"),
    "linear": ("kernel", "LinearSelfAttention"),
}


def attention_class(kind: str) -> type[EfficientSelfAttention]:
    """The ``nn.Module`` class registered under ``kind`` (see :data:`ATTENTION_LAYERS`)."""
    if not isinstance(kind, str) or kind not in ATTENTION_LAYERS:
        raise ValueError(
            f"unknown attention {kind!r} (argument kind); choose from "
            f"{', '.join(ATTENTION_LAYERS)}."
        )
    module, name = ATTENTION_LAYERS[kind]
    return getattr(importlib.import_module(f"{__package__}.{module}"), name)


def make_self_attention(
    kind: str, d_model: int, num_heads: int, **options: Any
) -> EfficientSelfAttention:
    """Build the self-attention layer ``kind`` with ``options`` for its constructor.

    Example: ``make_self_attention("local", 64, 4, window=32)``.
    """
    cls = attention_class(kind)
    try:
        return cls(d_model, num_heads, **options)
    except TypeError as err:
        raise TypeError(f"bad options {options} for attention {kind!r}: {err}") from None


class EncoderBlock(nn.Module):
    """Pre-LN block: ``x + attn(LN(x))``, then ``x + FFN(LN(x))``."""

    def __init__(self, attention: EfficientSelfAttention, d_ff: int, dropout: float = 0.0):
        super().__init__()
        d_model = attention.d_model
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = attention
        self.ln2 = nn.LayerNorm(d_model)
        self.ff = FeedForward(d_model, d_ff, dropout=dropout, activation="gelu")
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None):
        """``(B, n, d_model) -> (B, n, d_model)``; ``key_padding_mask`` is bool ``(B, n)``."""
        x = x + self.drop(self.attn(self.ln1(x), key_padding_mask=key_padding_mask))
        return x + self.drop(self.ff(self.ln2(x)))  # (B, n, d_model)


class LongRangeClassifier(nn.Module):
    """Token embedding + sinusoidal positions + pre-LN encoder + a classifier at position 0.

    Args:
        vocab_size: number of token ids.
        num_classes: number of labels.
        attention: a name from :data:`ATTENTION_LAYERS`.
        attention_options: keyword arguments for that layer (e.g. ``{"window": 128}``).
        d_model, num_heads, num_layers, d_ff: sizes of the encoder.
        max_len: longest input; sinusoidal positions are precomputed up to it.
        dropout: dropout on the residual branches.

    ``forward(tokens)`` takes int64 ``(B, n)`` and returns logits ``(B, num_classes)``.
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        attention: str = "full",
        attention_options: dict[str, Any] | None = None,
        *,
        d_model: int = 32,
        num_heads: int = 2,
        num_layers: int = 2,
        d_ff: int = 64,
        max_len: int = 1024,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        vocab_size = check_positive_int(vocab_size, "vocab_size")
        num_classes = check_positive_int(num_classes, "num_classes")
        num_layers = check_positive_int(num_layers, "num_layers")
        d_model = check_positive_int(d_model, "d_model")
        num_heads = check_positive_int(num_heads, "num_heads")
        d_ff = check_positive_int(d_ff, "d_ff")
        check_probability(dropout, "dropout")
        check_choice(attention, "attention", tuple(ATTENTION_LAYERS))
        if attention_options is not None and not isinstance(attention_options, dict):
            raise TypeError(
                f"attention_options must be None or a dict, got {type(attention_options).__name__}."
            )
        self.max_len = check_positive_int(max_len, "max_len")
        self.attention = attention
        options = dict(attention_options or {})
        self.embed = nn.Embedding(vocab_size, d_model)
        self.register_buffer("positions", sinusoidal_encoding(max_len, d_model), persistent=False)
        self.blocks = nn.ModuleList(
            EncoderBlock(
                make_self_attention(attention, d_model, num_heads, **options), d_ff, dropout
            )
            for _ in range(num_layers)
        )
        self.ln = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, num_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Int64 ``tokens`` ``(B, n)``, ``n <= max_len`` -> logits ``(B, num_classes)``."""
        check_tensor(tokens, "tokens")
        if tokens.dim() != 2 or tokens.dtype != torch.int64:
            raise ValueError(
                f"tokens must be int64 (B, n), got {tokens.dtype} {fmt_shape(tokens.shape)}."
            )
        n = tokens.shape[1]
        if n > self.max_len:
            raise ValueError(f"sequence length {n} exceeds max_len={self.max_len}.")
        x = self.embed(tokens) + self.positions[:n]  # (B, n, d_model)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x[:, 0]))  # (B, num_classes)

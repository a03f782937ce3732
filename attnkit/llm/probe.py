"""Looking inside a :class:`~attnkit.llm.lm.DecoderLM`: the attention logits and weights of
its softmax (or sigmoid) attention layers, and the share of attention that lands on the
first token (the "attention sink" of Xiao et al. 2023).

Used to measure what QK-norm, logit soft-capping and the output gate of
:class:`~attnkit.llm.variants.LLMSelfAttention` change in a trained model: the largest attention
logit (which grows without bound in an unstable run, Dehghani et al. 2023) and the first
token's share of the attention (which the output gate removes, Qiu et al. 2025).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .._validate import check_floating, check_ids, check_positive_int, check_tensor, fmt_shape
from .lm import DecoderLM
from .variants import LLMSelfAttention

__all__ = ["DecoderTrace", "attention_logits", "first_token_share", "trace_decoder"]


def attention_logits(attn: LLMSelfAttention, x: torch.Tensor) -> torch.Tensor:
    """The logits ``(B, H, T, T)`` that ``attn`` feeds to its softmax (or sigmoid).

    ``q k^T / sqrt(head_dim)`` after the layer's QK-norm and (scaled) RoPE, with its
    ALiBi bias and YaRN multiplier, and after its soft-cap if it has one (the layer's
    own :meth:`~attnkit.llm.variants.LLMSelfAttention.logits`); *not* masked (``attn.mask(T)``
    gives the allowed positions).
    ``masked_softmax(attention_logits(attn, x), attn.mask(T))`` equals the weights that
    ``attn(x, return_weights=True)`` returns.

    Args:
        attn: an :class:`~attnkit.llm.variants.LLMSelfAttention`.
        x: ``(B, T, d_model)`` the layer's input.
    """
    if not isinstance(attn, LLMSelfAttention):
        raise TypeError(f"attn must be an LLMSelfAttention, got {type(attn).__name__}.")
    check_floating(check_tensor(x, "x", min_dim=3), "x")
    if x.dim() != 3 or x.shape[-1] != attn.d_model:
        raise ValueError(f"x must have shape (B, T, {attn.d_model}), got {fmt_shape(x.shape)}.")
    positions = torch.arange(x.shape[1], device=x.device)  # as in attn(x)
    q, k, _ = attn.project(x)  # (B, H, T, D), (B, H_kv, T, D)
    q, k = attn.rotate(q, positions), attn.rotate(k, positions)
    return attn.logits(q, k, positions, positions)  # (B, H, T, T)


@dataclass
class DecoderTrace:
    """What :func:`trace_decoder` records.

    Attributes:
        output: ``(B, T, vocab_size)`` the model's logits (equal to ``model(idx)``).
        scores: per layer, the attention logits ``(B, H, T, T)`` of an
            :class:`~attnkit.llm.variants.LLMSelfAttention` layer (unmasked, see
            :func:`attention_logits`), ``None`` for a layer with another mixer.
        weights: per layer, the attention weights ``(B, H, T, T)``, or ``None``.
        masks: per layer, the bool mask ``(T, T)`` of allowed positions, or ``None``.
    """

    output: torch.Tensor
    scores: list[torch.Tensor | None]
    weights: list[torch.Tensor | None]
    masks: list[torch.Tensor | None]

    def max_logit(self) -> float:
        """The largest ``|logit|`` over the allowed positions of every attention layer
        (``nan`` when no layer is an attention layer)."""
        values = [
            s.masked_fill(~m, 0.0).abs().amax().item()
            for s, m in zip(self.scores, self.masks, strict=True)
            if s is not None and m is not None
        ]
        return max(values) if values else math.nan


def trace_decoder(model: DecoderLM, idx: torch.Tensor) -> DecoderTrace:
    """Run ``model`` on ``idx`` ``(B, T)`` layer by layer, keeping the attention logits
    and weights of its :class:`~attnkit.llm.variants.LLMSelfAttention` layers.

    Computes exactly what ``model(idx)`` computes (same operations in the same order);
    call it under ``torch.no_grad()`` unless gradients are wanted.
    """
    if not isinstance(model, DecoderLM):
        raise TypeError(f"model must be a DecoderLM, got {type(model).__name__}.")
    idx = check_ids(idx, "idx", vocab_size=model.vocab_size, dim=2)  # (B, T)
    T = idx.shape[1]
    x = model.embed(idx)  # (B, T, d_model)
    scores: list[torch.Tensor | None] = []
    weights: list[torch.Tensor | None] = []
    masks: list[torch.Tensor | None] = []
    for block in model.blocks:
        h = block.mixer_norm(x)
        if isinstance(block.mixer, LLMSelfAttention):
            out, w = block.mixer(h, return_weights=True)
            scores.append(attention_logits(block.mixer, h))
            weights.append(w)
            masks.append(block.mixer.mask(T, x.device))
        else:
            out = block.mixer(h)
            scores.append(None)
            weights.append(None)
            masks.append(None)
        x = x + out
        x = x + block.ffn(block.ffn_norm(x))
    return DecoderTrace(model.head(model.norm(x)), scores, weights, masks)


def first_token_share(weights: torch.Tensor, *, start: int = 1) -> torch.Tensor:
    """The attention weight on key 0, averaged over the queries ``t >= start`` and the
    batch: one number per head, ``(H,)``.

    Query 0 can only attend to itself, so ``start=1`` (the default) leaves it out. A
    uniform causal softmax gives query ``t`` a share ``1 / (t + 1)`` on key 0; a sink
    head puts most of every row there.

    Args:
        weights: ``(B, H, T, T)`` attention weights (rows of causal softmax weights).
        start: first query position counted, ``0 <= start < T``.
    """
    check_floating(check_tensor(weights, "weights", min_dim=4), "weights")
    if weights.dim() != 4 or weights.shape[-1] != weights.shape[-2]:
        raise ValueError(f"weights must have shape (B, H, T, T), got {fmt_shape(weights.shape)}.")
    start = check_positive_int(start, "start", allow_zero=True)
    if start >= weights.shape[-2]:
        raise ValueError(f"start must be < T = {weights.shape[-2]}, got {start}.")
    return weights[:, :, start:, 0].mean(dim=(0, 2))  # (H,)

"""A small decoder-only language model in the shape of 2024-2025 open models, with the
token mixer of each layer left open.

``idx (B, T) -> embedding -> num_layers x [x + mixer(RMSNorm(x)); x + SwiGLU(RMSNorm(x))]
-> RMSNorm -> logits (B, T, vocab_size)`` (pre-norm, RMSNorm, SwiGLU feed-forward, no
biases, tied input and output embeddings, as in Llama-style models).

The mixer of layer ``i`` is ``mixer(i)``: any module mapping ``(B, T, d_model)`` to
``(B, T, d_model)`` that is causal (position ``t`` reads only positions ``<= t``). It
carries its own positions (RoPE, ALiBi) if it needs any; the model adds none. So one
class gives a softmax-attention model (:class:`~attnkit.llm.variants.LLMSelfAttention` in every
layer), a linear-attention model (:class:`~attnkit.llm.deltanet.DeltaNetAttention`), or a hybrid
stack (:func:`hybrid_mixer`: e.g. three DeltaNet layers, then one softmax layer).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .._validate import check_ids, check_positive_int

__all__ = ["DecoderLM", "SwiGLU", "hybrid_mixer", "lm_loss"]


class SwiGLU(nn.Module):
    """The gated feed-forward ``W_2 (silu(x W_1) * x W_3)`` (Shazeer 2020), no biases."""

    def __init__(self, d_model: int, d_ff: int) -> None:
        super().__init__()
        d_model, d_ff = check_positive_int(d_model, "d_model"), check_positive_int(d_ff, "d_ff")
        self.w1 = nn.Linear(d_model, d_ff, bias=False)
        self.w3 = nn.Linear(d_model, d_ff, bias=False)
        self.w2 = nn.Linear(d_ff, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))  # (B, T, d_model)


class _Block(nn.Module):
    """One pre-norm layer: ``x + mixer(norm(x))``, then ``x + ffn(norm(x))``."""

    def __init__(self, d_model: int, d_ff: int, mixer: nn.Module) -> None:
        super().__init__()
        self.mixer_norm = nn.RMSNorm(d_model, eps=1e-6)
        self.mixer = mixer
        self.ffn_norm = nn.RMSNorm(d_model, eps=1e-6)
        self.ffn = SwiGLU(d_model, d_ff)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.mixer(self.mixer_norm(x))  # (B, T, d_model)
        return x + self.ffn(self.ffn_norm(x))


class DecoderLM(nn.Module):
    """A pre-norm decoder-only language model whose token mixers are given.

    Args:
        vocab_size: number of token ids.
        d_model: width.
        num_layers: number of layers.
        mixer: ``mixer(layer_index) -> nn.Module``, called once per layer; each module maps
            ``(B, T, d_model)`` to ``(B, T, d_model)`` causally (see the module docstring).
        d_ff: hidden width of the SwiGLU feed-forward (default ``4 * d_model``; SwiGLU
            models often use about ``8/3 * d_model`` to match a plain FFN's parameters).
        tie_embeddings: share the input embedding and the output projection.

    ``forward(idx)``: ``idx`` int64 ``(B, T)`` -> logits ``(B, T, vocab_size)``.
    The weights start as ``N(0, 0.02^2)`` (linear layers and embedding), the norms as 1.
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        num_layers: int,
        mixer: Callable[[int], nn.Module],
        *,
        d_ff: int | None = None,
        tie_embeddings: bool = True,
    ) -> None:
        super().__init__()
        self.vocab_size = check_positive_int(vocab_size, "vocab_size")
        self.d_model = check_positive_int(d_model, "d_model")
        self.num_layers = check_positive_int(num_layers, "num_layers")
        d_ff = 4 * d_model if d_ff is None else check_positive_int(d_ff, "d_ff")
        if not callable(mixer):
            raise TypeError(
                f"mixer must be a callable layer_index -> nn.Module, got {type(mixer).__name__}."
            )
        if not isinstance(tie_embeddings, bool):
            raise TypeError(f"tie_embeddings must be True or False, got {tie_embeddings!r}.")
        mixers = []
        for i in range(num_layers):
            m = mixer(i)
            if not isinstance(m, nn.Module):
                raise TypeError(f"mixer({i}) must return an nn.Module, got {type(m).__name__}.")
            mixers.append(m)
        self.embed = nn.Embedding(vocab_size, d_model)
        self.blocks = nn.ModuleList(_Block(d_model, d_ff, m) for m in mixers)
        self.norm = nn.RMSNorm(d_model, eps=1e-6)
        self.head = nn.Linear(d_model, vocab_size, bias=False)
        self.apply(_init_weights)
        if tie_embeddings:
            self.head.weight = self.embed.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        idx = check_ids(idx, "idx", vocab_size=self.vocab_size, dim=2)  # (B, T)
        x = self.embed(idx)  # (B, T, d_model)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))  # (B, T, vocab_size)


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if getattr(module, "bias", None) is not None:
            nn.init.zeros_(module.bias)


def hybrid_mixer(
    pattern: Sequence[str], factories: dict[str, Callable[[], nn.Module]]
) -> Callable[[int], nn.Module]:
    """A ``mixer`` for :class:`DecoderLM` that repeats ``pattern`` over the layers.

    ``hybrid_mixer(["delta", "delta", "delta", "attn"], {"delta": ..., "attn": ...})``
    gives layers ``delta, delta, delta, attn, delta, ...`` (a 3:1 linear/softmax stack of
    the kind used by Qwen3-Next and Kimi Linear); each factory returns a fresh module.
    """
    if isinstance(pattern, str) or not isinstance(pattern, Sequence) or not pattern:
        raise TypeError(f"pattern must be a non-empty list of names, got {pattern!r}.")
    if not isinstance(factories, dict):
        raise TypeError(f"factories must be a dict, got {type(factories).__name__}.")
    unknown = sorted(set(pattern) - set(factories))
    if unknown:
        raise ValueError(f"pattern names {unknown} have no factory in {sorted(factories)}.")
    for name, f in factories.items():
        if not callable(f):
            raise TypeError(f"factories[{name!r}] must be callable, got {type(f).__name__}.")
    names = list(pattern)
    return lambda i: factories[names[i % len(names)]]()


def lm_loss(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy of ``model`` on ``batch`` ``(B, T + 1)`` token ids:
    inputs ``batch[:, :-1]``, targets ``batch[:, 1:]`` (a ``loss_fn`` for
    :func:`attnkit.training.train`)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}.")
    batch = check_ids(batch, "batch", dim=2)
    if batch.shape[1] < 2:
        raise ValueError(f"batch must have shape (B, T + 1) with T >= 1, got {tuple(batch.shape)}.")
    logits = model(batch[:, :-1])  # (B, T, V)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))

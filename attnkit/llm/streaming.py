"""Streaming a decoder far past its trained length with a bounded cache: the rolling
window cache, attention sinks (StreamingLLM), and the re-computation baseline.

A decoder that reads an endless stream cannot keep every key and value. Three ways to
bound the work of a step, all for a :class:`~attnkit.llm.lm.DecoderLM` whose mixers are
:class:`~attnkit.llm.variants.LLMSelfAttention` layers:

- **Window cache** (``num_sinks=0``): each layer keeps the keys and values of the last
  ``window`` tokens (a rolling buffer, as Mistral 7B's cache of size ``W``); the oldest is
  evicted when a new one arrives.
- **Sinks + window** (Xiao et al. 2023, "Efficient Streaming Language Models with
  Attention Sinks", StreamingLLM): keep the first ``num_sinks`` tokens of the stream
  (4 in the paper) for ever, plus the last ``window``.
- **Sliding window with re-computation** (:func:`recompute_window_logits`): for every new
  token, run the model afresh on the last ``window`` tokens. Exact for a model trained on
  ``window`` tokens, but each step costs a whole forward pass of ``window`` tokens.

Positions follow StreamingLLM: keys are cached *before* RoPE and, at every step, the kept
tokens get the positions ``0 .. n - 1`` of their slots in the cache, not their positions in
the stream (section 3.2 of the paper). So the model never sees a position beyond the
cache size. ALiBi layers measure their distances on the same cache positions.

Each layer's cached keys and values were computed when their token arrived, from the
context it had then; this is what makes the window cache different from re-computation.
"""

from __future__ import annotations

import torch
from torch import nn

from .._validate import check_floating, check_ids, check_positive_int, check_tensor, fmt_shape
from ..heads import merge_heads, split_heads
from .lm import DecoderLM
from .variants import LLMSelfAttention

__all__ = [
    "SinkCache",
    "recompute_window_logits",
    "streaming_logits",
]


class SinkCache:
    """The rolling key/value cache of one layer with ``num_sinks`` attention sinks.

    Holds at most ``num_sinks + window`` tokens: the first ``num_sinks`` tokens ever
    appended, and the last ``window``. Keys are stored *unrotated* (before RoPE), so they
    can be given their cache positions at every step.

    Attributes:
        keys, values: ``(B, H_kv, n, D)``, ``n <= num_sinks + window`` (``None`` before
            the first :meth:`append`).
        token_index: ``(n,)`` int64, the stream index of each kept token.
    """

    def __init__(self, window: int, num_sinks: int = 0) -> None:
        self.window = check_positive_int(window, "window")
        self.num_sinks = check_positive_int(num_sinks, "num_sinks", allow_zero=True)
        self.keys: torch.Tensor | None = None
        self.values: torch.Tensor | None = None
        self.token_index = torch.zeros(0, dtype=torch.long)
        self.seen = 0  # tokens appended so far

    def __len__(self) -> int:
        return int(self.token_index.numel())

    @property
    def capacity(self) -> int:
        """The most tokens the cache ever holds, ``num_sinks + window``."""
        return self.num_sinks + self.window

    def positions(self) -> torch.Tensor:
        """The position of each kept token: its slot ``0 .. n - 1`` in the cache."""
        return torch.arange(len(self))

    def append(self, k: torch.Tensor, v: torch.Tensor) -> None:
        """Add the unrotated keys and values ``(B, H_kv, T, D)`` of ``T`` new tokens, then
        evict: keep the first ``num_sinks`` tokens of the stream and the last ``window``."""
        check_floating(check_tensor(k, "k", min_dim=4), "k")
        check_floating(check_tensor(v, "v", min_dim=4), "v")
        if k.dim() != 4 or k.shape != v.shape:
            raise ValueError(
                f"k and v must have the same shape (B, H_kv, T, D), got {fmt_shape(k.shape)} "
                f"and {fmt_shape(v.shape)}."
            )
        if self.keys is not None and (
            k.shape[:2] != self.keys.shape[:2] or k.shape[3] != self.keys.shape[3]
        ):
            raise ValueError(
                f"k must have shape (B, H_kv, T, D) = {fmt_shape(self.keys.shape[:2])} + "
                f"(T, {self.keys.shape[3]}) like the cached keys, got {fmt_shape(k.shape)}."
            )
        new = torch.arange(self.seen, self.seen + k.shape[2])
        self.seen += k.shape[2]
        keys = k if self.keys is None else torch.cat((self.keys, k), dim=2)  # (B, H_kv, n, D)
        values = v if self.values is None else torch.cat((self.values, v), dim=2)
        index = torch.cat((self.token_index, new))  # (n,)
        n = index.numel()
        if n > self.capacity:
            keep = torch.cat(
                (torch.arange(self.num_sinks), torch.arange(n - self.window, n))
            )  # slots of the sinks, then of the last `window` tokens
            keys, values, index = keys[:, :, keep], values[:, :, keep], index[keep]
        self.keys, self.values, self.token_index = keys, values, index


def _attention_layers(model: object) -> list[LLMSelfAttention]:
    if not isinstance(model, DecoderLM):
        raise TypeError(f"model must be an attnkit.llm.DecoderLM, got {type(model).__name__}.")
    layers = [block.mixer for block in model.blocks]
    for i, layer in enumerate(layers):
        if not isinstance(layer, LLMSelfAttention):
            raise TypeError(
                f"model's mixer {i} must be an LLMSelfAttention, got {type(layer).__name__}."
            )
        if layer.score != "softmax":
            raise ValueError(f"model's mixer {i} must use score='softmax', got {layer.score!r}.")
    return layers


def _mixer_step(layer: LLMSelfAttention, x: torch.Tensor, cache: SinkCache) -> torch.Tensor:
    """One new token ``x`` ``(B, 1, d_model)`` through ``layer`` with its rolling cache."""
    q, k, v = layer.project(x)  # (B, H, 1, D), (B, H_kv, 1, D) x 2
    cache.append(k, v)
    pos = cache.positions().to(x.device)  # (n,): slots in the cache
    keys = layer.rotate(cache.keys, pos)  # (B, H_kv, n, D)
    q = layer.rotate(q, pos[-1:])  # the new token sits in the last slot
    mask = torch.ones(1, len(cache), dtype=torch.bool, device=x.device)  # (1, n)
    heads, _ = layer.attend(q, keys, cache.values, mask, pos[-1:], pos)  # (B, H, 1, D)
    if layer.gate is not None:
        heads = heads * torch.sigmoid(split_heads(layer.gate(x), layer.num_heads))
    return layer.out_proj(merge_heads(heads))  # (B, 1, d_model)


@torch.no_grad()
def streaming_logits(
    model: nn.Module, idx: torch.Tensor, *, window: int, num_sinks: int = 0
) -> torch.Tensor:
    """Next-token logits ``(B, N, vocab)`` of ``model`` reading ``idx`` ``(B, N)`` one
    token at a time, each layer with a :class:`SinkCache` of ``window`` recent tokens and
    ``num_sinks`` sinks, positions within the cache (StreamingLLM).

    Until the cache is full this equals ``model(idx)``; afterwards each step attends to at
    most ``num_sinks + window`` tokens. The layers' own ``window``/``num_sinks`` masks are
    not used: the cache decides what a token sees.
    """
    layers = _attention_layers(model)
    idx = check_ids(idx, "idx", vocab_size=model.vocab_size, dim=2)  # (B, N)
    window = check_positive_int(window, "window")
    num_sinks = check_positive_int(num_sinks, "num_sinks", allow_zero=True)
    caches = [SinkCache(window, num_sinks) for _ in layers]
    out = []
    for t in range(idx.shape[1]):
        x = model.embed(idx[:, t : t + 1])  # (B, 1, d_model)
        for block, layer, cache in zip(model.blocks, layers, caches, strict=True):
            x = x + _mixer_step(layer, block.mixer_norm(x), cache)
            x = x + block.ffn(block.ffn_norm(x))
        out.append(model.head(model.norm(x)))  # (B, 1, vocab)
    return torch.cat(out, dim=1)  # (B, N, vocab)


@torch.no_grad()
def recompute_window_logits(
    model: nn.Module, idx: torch.Tensor, *, window: int, batch_size: int = 256
) -> torch.Tensor:
    """Logits ``(B, N, vocab)`` where the prediction after token ``t`` comes from running
    ``model`` afresh on tokens ``max(0, t - window + 1) .. t`` (positions from 0): the
    "sliding window with re-computation" baseline of StreamingLLM. Windows are batched
    ``batch_size`` at a time; the cost is one forward pass of ``window`` tokens per token.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}.")
    idx = check_ids(idx, "idx", dim=2)  # (B, N)
    window = check_positive_int(window, "window")
    batch_size = check_positive_int(batch_size, "batch_size")
    B, N = idx.shape
    first = min(window, N)
    head = model(idx[:, :first])  # (B, first, V): the first tokens see their whole prefix
    if window >= N:
        return head
    windows = idx.unfold(1, window, 1)[:, 1:]  # (B, N - window, window): ends at t >= window
    flat = windows.reshape(-1, window)
    last = torch.cat(
        [model(flat[i : i + batch_size])[:, -1] for i in range(0, flat.shape[0], batch_size)]
    )  # (B * (N - window), V)
    return torch.cat((head, last.view(B, N - window, -1)), dim=1)  # (B, N, V)

"""Sliding-window (local) attention, optionally dilated.

Each query attends only to the keys within ``window`` positions of itself, the local
attention of the Image Transformer (Parmar et al., 2018, "Image Transformer")
and the sliding window of Longformer (Beltagy et al., 2020, "Longformer: The
Long-Document Transformer", section 3.1, which also introduces the *dilated* window:
every ``dilation``-th position, to widen the receptive field at the same cost)::

    A(i) = { j : j = i + dilation * t,  |t| <= window }      (causal: -window <= t <= 0)

Computed blockwise: cut the sequence into blocks of ``block >= window`` positions; the
keys of block ``b`` all lie in blocks ``b-1, b, b+1`` (``b-1, b`` when causal), so one
batched matmul of every query block against its 3 (or 2) neighbouring key blocks gives
all the scores, and the band's edges are masked inside the tiles. A dilated window is a
plain window on each of the ``dilation`` interleaved sub-sequences ``r, r + dilation,
r + 2 dilation, ...``, so it reuses the same path. Time and memory are
``O(n * window * d)``, against ``O(n^2 * d)`` for dense attention.
"""

from __future__ import annotations

import torch

from .._validate import check_positive_int, compute_dtype
from ._base import EfficientSelfAttention, padding_to_mask
from .blocksparse import (
    MIN_BLOCK,
    band_logits,
    band_output,
    check_bool,
    check_self_attention_inputs,
    default_scale,
    pad_to,
    padded_positions,
    softmax_parts,
)

__all__ = ["LocalSelfAttention", "local_attention", "sliding_window_mask"]


def sliding_window_mask(
    n: int,
    window: int,
    *,
    dilation: int = 1,
    causal: bool = False,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Dense bool ``(n, n)`` mask of a (dilated) sliding window, ``True`` = may attend.

    Query ``i`` may attend key ``j`` iff ``j = i + dilation * t`` for an integer ``t`` with
    ``|t| <= window`` (``-window <= t <= 0`` when ``causal``): ``window`` keys on each side
    (radius), every ``dilation``-th position. ``O(n^2)``: for drawing and tests only.
    """
    n = check_positive_int(n, "n")
    window = check_positive_int(window, "window", allow_zero=True)
    dilation = check_positive_int(dilation, "dilation")
    check_bool(causal, "causal")
    pos = torch.arange(n, device=device)
    t = pos[None, :] - pos[:, None]  # (n, n): j - i
    upper = 0 if causal else window * dilation
    return (t % dilation == 0) & (t >= -window * dilation) & (t <= upper)


def _interleave(x: torch.Tensor, dilation: int, length: int) -> torch.Tensor:
    """``(..., n, f) -> (..., dilation, length, f)``: sub-sequence ``r`` holds ``r + dilation*p``.

    ``x`` is first padded with zeros to ``dilation * length`` rows.
    """
    x = pad_to(x, dilation * length)  # (..., length * dilation, f)
    return x.unflatten(-2, (length, dilation)).transpose(-3, -2)  # (..., dilation, length, f)


def _deinterleave(x: torch.Tensor, n: int) -> torch.Tensor:
    """Inverse of :func:`_interleave`: ``(..., dilation, length, f) -> (..., n, f)``."""
    return x.transpose(-3, -2).flatten(-3, -2)[..., :n, :]


CHUNK_BLOCKS = 8
"""Query blocks processed together: bounds the working set (scores of ``8 * block`` queries)
so that it stays in cache and the time grows linearly with ``n``."""


def _band(q, k, v, pos, band, *, lo, hi, scale, mask):
    """One banded attention over ``(..., M, d)`` rows: scores, softmax, weighted values."""
    logits, _ = band_logits(q, k, pos, **band, lo=lo, hi=hi, scale=scale, mask=mask)
    (weights,) = softmax_parts(logits)  # (..., nb, block, L)
    return band_output(weights, v, **band)  # (..., M, d_v)


def _chunked_band(q, k, v, pos, band, **kw):
    """:func:`_band` over chunks of ``CHUNK_BLOCKS`` query blocks plus their neighbours.

    Each chunk also takes one block on each side (the keys its edge blocks need); the
    outputs of those extra blocks are computed with missing neighbours and dropped.
    """
    block = band["block"]
    nb = q.shape[-2] // block
    if nb <= CHUNK_BLOCKS + 2:
        return _band(q, k, v, pos, band, **kw)
    outs = []
    for b0 in range(0, nb, CHUNK_BLOCKS):
        b1 = min(nb, b0 + CHUNK_BLOCKS)
        s0, s1 = max(0, b0 - 1), min(nb, b1 + 1)  # with one neighbour block each side
        rows = slice(s0 * block, s1 * block)
        out = _band(q[..., rows, :], k[..., rows, :], v[..., rows, :], pos[..., rows], band, **kw)
        outs.append(out[..., (b0 - s0) * block : (b1 - s0) * block, :])  # (..., chunk, d_v)
    return torch.cat(outs, dim=-2)  # (..., M, d_v)


def local_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    window: int,
    *,
    dilation: int = 1,
    causal: bool = False,
    mask: torch.Tensor | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    """Sliding-window attention: query ``i`` sees keys ``i + dilation * t``, ``|t| <= window``.

    Exactly ``scaled_dot_product_attention(q, k, v, sliding_window_mask(n, window, ...) &
    mask)``, without forming any ``n x n`` matrix.

    Args:
        q, k: ``(..., n, d_k)``; v: ``(..., n, d_v)``: one sequence (self-attention), any
            leading batch dims that broadcast, one floating dtype (16-bit inputs are
            computed in float32 and cast back).
        window: keys on each side (the radius), ``>= 0``; ``window = 0`` attends to self.
        dilation: gap between attended positions, ``>= 1``.
        causal: only keys at or before the query (``-window <= t <= 0``).
        mask: optional bool (``True`` = may attend) or floating (added to the scores) mask
            broadcastable to ``(..., n, n)``, e.g. a ``(B, 1, 1, n)`` key padding mask.
            Only its entries inside the window are read.
        scale: score multiplier, default ``1 / sqrt(d_k)``.

    Returns:
        ``(..., n, d_v)`` in the dtype of ``q``. A query whose window holds no allowed key
        gets zeros (the convention of :func:`attnkit.softmax.masked_softmax`).

    Complexity: ``O(n * window * d)`` time and memory: each block of ``max(window, 32)``
    queries is scored against 3 key blocks of that size (2 when causal). Blocks are
    processed ``CHUNK_BLOCKS`` at a time, so without autograd the extra memory is that of
    one chunk, whatever ``n``.
    """
    batch, n, scale = check_self_attention_inputs(q, k, v, mask, scale)
    window = check_positive_int(window, "window", allow_zero=True)
    dilation = check_positive_int(dilation, "dilation")
    check_bool(causal, "causal")
    if n == 0:
        return q.new_zeros((*batch, 0, v.shape[-1]))
    scale = default_scale(scale, q.shape[-1])

    length = -(-n // dilation)  # longest interleaved sub-sequence
    window = min(window, length - 1)  # a larger radius reaches no further key
    block = max(window, min(MIN_BLOCK, length))  # block >= window: neighbours suffice
    length = -(-length // block) * block  # (padded) sub-sequence length M
    band = {"block": block, "before": 1, "after": 0 if causal else 1}  # neighbour blocks

    dtype, work = q.dtype, compute_dtype(q.dtype)
    q, k, v = q.to(work), k.to(work), v.to(work)
    if dilation == 1:
        pos = padded_positions(n, length, q.device)  # (M,)
        q, k, v = pad_to(q, length), pad_to(k, length), pad_to(v, length)  # (..., M, d)
    else:
        pos = padded_positions(n, length * dilation, q.device)
        pos = pos.view(length, dilation).T  # (dilation, M): original position of each row
        q, k, v = (_interleave(x, dilation, length) for x in (q, k, v))  # (..., dil, M, d)

    hi = 0 if causal else window
    out = _chunked_band(q, k, v, pos, band, lo=-window, hi=hi, scale=scale, mask=mask)
    out = out[..., :n, :] if dilation == 1 else _deinterleave(out, n)  # (..., n, d_v)
    return out.to(dtype)


class LocalSelfAttention(EfficientSelfAttention):
    """Multi-head sliding-window self-attention (see :func:`local_attention`).

    Args:
        d_model, num_heads, bias: as :class:`~attnkit.efficient.EfficientSelfAttention`.
        window: keys on each side of a query (radius), ``>= 0``.
        dilation: gap between attended positions.
        causal: attend only to the ``window`` previous positions and self.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        window: int,
        *,
        dilation: int = 1,
        causal: bool = False,
        bias: bool = True,
    ) -> None:
        super().__init__(d_model, num_heads, bias=bias, causal=causal)
        self.window = check_positive_int(window, "window", allow_zero=True)
        self.dilation = check_positive_int(dilation, "dilation")

    def attend(self, q, k, v, key_padding_mask):
        mask = padding_to_mask(key_padding_mask)  # (B, 1, 1, n) or None
        return local_attention(
            q, k, v, self.window, dilation=self.dilation, causal=self.causal, mask=mask
        )  # (B, H, n, D)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, window={self.window}, dilation={self.dilation}"

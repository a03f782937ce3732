"""Adaptive attention span: each head learns how far back it looks.

Sukhbaatar, Grave, Bojanowski & Joulin (2019, "Adaptive Attention Span in Transformers")
give every head a span ``z`` in ``[0, S]`` and multiply its attention by a soft
mask of the distance ``x = t - r`` between query ``t`` and key ``r``::

    m_z(x) = min(max((R + z - x) / R, 0), 1)                  (R: the ramp width)

    a_tr = m_z(t - r) exp(s_tr) / sum_q m_z(t - q) exp(s_tq)   (causal: r, q <= t)

The mask is 1 up to distance ``z``, falls linearly to 0 over the next ``R`` positions and
is 0 beyond ``z + R``; it is piecewise linear in ``z``, so the span is learned by gradient
descent together with the other weights, and an L1 penalty on the spans (the paper's
``lambda / M * sum_i z_i``) pushes each head to look no further than it needs.

Only the keys at distance ``x < z + R`` get a nonzero weight, so only those are computed:
the scores are formed in blocks of a band of width ``max_span + R`` behind each query
(the causal band of :mod:`.local`), and time and memory grow with ``n * (max_span + R)``
instead of ``n^2``. ``a_tr`` is computed as ``m * softmax(s)`` renormalised, which is the
same number (the ``exp`` terms' common factor cancels) and keeps the softmax safe.

The paper's model also adds *relative* position embeddings to the keys,
``s_tr = q_t . (k_r + p_{t-r}) / sqrt(d)``, which is how a head can find "the token
``L`` positions back"; :func:`adaptive_span_attention` takes them as ``pos_emb``.
Its *dynamic* variant (the paper's "dynamic attention span") computes the span from the
current token, ``z_t = S sigmoid(v^T x_t + b)``; it is not built here.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import nn

from .._validate import (
    check_dtype,
    check_floating,
    check_positive_int,
    check_positive_number,
    check_tensor,
    compute_dtype,
    fmt_shape,
)
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
    safe_softmax,
)

__all__ = [
    "AdaptiveSpanSelfAttention",
    "adaptive_span_attention",
    "adaptive_span_flops",
    "adaptive_span_mask",
    "soft_span_mask",
]


# ------------------------------------------------------------------------- checks


def _check_span(span: object, max_span: int | None, name: str = "span") -> torch.Tensor | float:
    """A span: a number or a floating tensor, every value in ``[0, max_span]``."""
    if isinstance(span, torch.Tensor):
        check_floating(span, name)
        values = span.detach()
        if values.numel() and not bool(torch.isfinite(values).all()):
            raise ValueError(f"{name} must hold finite numbers.")
        low = float(values.min()) if values.numel() else 0.0
        high = float(values.max()) if values.numel() else 0.0
    elif isinstance(span, numbers.Real) and not isinstance(span, bool):
        if not math.isfinite(float(span)):
            raise ValueError(f"{name} must be a finite number, got {span!r}.")
        low = high = float(span)
        span = float(span)
    else:
        raise TypeError(f"{name} must be a number or a floating tensor, got {type(span).__name__}.")
    if low < 0:
        raise ValueError(f"{name} must be >= 0 (a distance in tokens), got a minimum of {low}.")
    if max_span is not None and high > max_span:
        raise ValueError(
            f"{name} must be <= max_span={max_span} (clamp it first), got a maximum of {high}."
        )
    return span


# --------------------------------------------------------------------- the mask


def soft_span_mask(distance: torch.Tensor, span: torch.Tensor | float, ramp: float) -> torch.Tensor:
    """The soft mask ``m_z(x) = clamp((R + z - x) / R, 0, 1)`` (Sukhbaatar et al., 2019).

    Args:
        distance: floating tensor of distances ``x = t - r`` (query minus key position).
        span: the span ``z >= 0``, a number or a floating tensor that broadcasts with
            ``distance`` (e.g. ``(H, 1, 1)`` for one span per head); differentiable.
        ramp: the ramp width ``R > 0``: the mask falls from 1 at ``x = z`` to 0 at
            ``x = z + R``.

    Returns:
        The broadcast shape, in the floating dtype of ``distance``: 1 for ``x <= z``, 0 for
        ``x >= z + R``, linear in between. Its gradient in ``z`` is ``1 / R`` on the ramp
        and 0 elsewhere.
    """
    check_floating(check_tensor(distance, "distance"), "distance")
    ramp = check_positive_number(ramp, "ramp")
    span = _check_span(span, None)
    return ((ramp + span - distance) / ramp).clamp(0.0, 1.0)


def adaptive_span_mask(
    n: int,
    span: torch.Tensor | float,
    ramp: float,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Dense causal soft mask ``(..., n, n)``: ``m_z(i - j)`` for ``j <= i``, 0 for ``j > i``.

    ``span`` is a number or a tensor of spans (e.g. ``(H,)``); the result has shape
    ``(*span.shape, n, n)``. ``O(n^2)``: for drawing and tests only.
    """
    n = check_positive_int(n, "n")
    span = _check_span(span, None)
    check_dtype(dtype)
    pos = torch.arange(n, device=device, dtype=dtype)
    distance = pos[:, None] - pos[None, :]  # (n, n): i - j
    z = span[..., None, None] if isinstance(span, torch.Tensor) else span
    m = soft_span_mask(distance, z, ramp)  # (..., n, n)
    return torch.where(distance >= 0, m, torch.zeros_like(m))


def adaptive_span_flops(
    n: int, spans: torch.Tensor | list[float], ramp: float, head_dim: int
) -> int:
    """FLOPs of the scores and weighted values of causal adaptive-span attention.

    Query ``t`` of a head with span ``z`` needs the keys at distance ``x < z + R``, i.e.
    ``min(t + 1, ceil(z + R))`` of them, and each key costs ``2 d`` FLOPs for the score and
    ``2 d`` for the weighted value (a multiply and an add each). Summed over the heads
    (``spans``) and the queries ``t = 0 .. n-1``. Full causal attention is the limit
    ``z >= n``: ``2 d n (n + 1)`` per head. Projections are not counted.
    """
    n = check_positive_int(n, "n")
    head_dim = check_positive_int(head_dim, "head_dim")
    ramp = check_positive_number(ramp, "ramp")
    spans = torch.as_tensor(spans, dtype=torch.float64).flatten()
    _check_span(spans, None)
    total = 0
    for z in spans.tolist():
        reach = min(n, math.ceil(z + ramp))  # keys per query once t + 1 >= reach
        # queries t < reach see t + 1 keys, the others see `reach` keys
        total += reach * (reach + 1) // 2 + (n - reach) * reach
    return 4 * head_dim * total


# ------------------------------------------------------------------- attention


def _band_to_dense(tiles: torch.Tensor, block: int, before: int) -> torch.Tensor:
    """``(..., nb, block, (before + 1) block)`` causal band tiles -> dense ``(..., M, M)``.

    Slot ``s`` of query block ``b`` holds key block ``b - before + s``; ``M = nb block``.
    """
    nb = tiles.shape[-3]
    dense = tiles.new_zeros((*tiles.shape[:-3], nb, block, nb, block))
    for slot in range(before + 1):
        shift = slot - before  # key block - query block
        part = tiles[..., -shift:, :, slot * block : (slot + 1) * block]  # (..., m, bq, bk)
        diag = torch.diagonal(dense, offset=shift, dim1=-4, dim2=-2)  # (..., bq, bk, m)
        diag.copy_(part.movedim(-3, -1))
    return dense.flatten(-4, -3).flatten(-2, -1)  # (..., M, M)


def adaptive_span_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    span: torch.Tensor | float,
    *,
    ramp: float,
    max_span: int | None = None,
    pos_emb: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    scale: float | None = None,
    return_weights: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Causal attention with a soft, learnable span (Sukhbaatar et al., 2019).

    ``a_tr = m_z(t - r) exp(s_tr) / sum_{q <= t} m_z(t - q) exp(s_tq)`` with
    ``m_z = soft_span_mask`` and ``s_tr = q_t . k_r * scale`` (plus ``q_t . p_{t-r} *
    scale`` with ``pos_emb``), computed on the keys at distance ``< max_span + ramp`` only.

    Args:
        q, k: ``(..., n, d_k)``; v: ``(..., n, d_v)``: one sequence, one floating dtype
            (16-bit inputs are computed in float32 and cast back).
        span: the spans ``z`` in ``[0, max_span]``: a number, or a floating tensor that
            broadcasts to the batch shape ``q.shape[:-2]``, e.g. ``(H,)`` for ``(B, H, n,
            d)`` inputs (one span per head). Differentiable.
        ramp: the ramp width ``R > 0``.
        max_span: an integer bound on the spans that fixes the band of keys computed,
            ``max_span + ramp`` wide; default ``ceil(max(span))``, the narrowest band
            (as the paper's code does, the cost then follows the learned spans).
        pos_emb: optional relative position embeddings ``(..., W, d_k)`` (broadcasting to
            the batch), row ``x`` for distance ``x``; ``W`` must cover the band,
            ``W >= min(n, ceil(max_span + ramp))``.
        mask: optional bool (``True`` = may attend) or floating (added to the scores) mask
            broadcastable to ``(..., n, n)``, e.g. a ``(B, 1, 1, n)`` key padding mask;
            only its entries inside the band are read.
        scale: score multiplier, default ``1 / sqrt(d_k)``.
        return_weights: also return the dense weights ``(..., n, n)`` (``O(n^2)`` memory:
            for plots and tests).

    Returns:
        ``out`` ``(..., n, d_v)`` in the dtype of ``q``, or ``(out, weights)``. Each row of
        the weights sums to 1 (0 for a query that may attend to no key, whose output is
        0); weights at distances ``>= z + R`` and above the diagonal are exactly 0.

    Complexity: ``O(n * w * d)`` time and memory with ``w = max(ceil(max_span + ramp),
    32)``: each block of ``w`` queries is scored against its own and the previous block
    (when ``2 w >= n``, against all the keys at once, ``O(n^2 d)``, which is then cheaper).
    """
    batch, n, scale = check_self_attention_inputs(q, k, v, mask, scale)
    ramp = check_positive_number(ramp, "ramp")
    if max_span is not None:
        max_span = check_positive_int(max_span, "max_span", allow_zero=True)
    span = _check_span(span, max_span)
    if isinstance(span, torch.Tensor):
        try:
            torch.broadcast_shapes(span.shape, batch)
        except RuntimeError:
            raise ValueError(
                f"span of shape {fmt_shape(span.shape)} must broadcast to the batch shape "
                f"{fmt_shape(batch)} of q (e.g. (H,) for (B, H, n, d) inputs)."
            ) from None
    check_bool(return_weights, "return_weights")
    if max_span is None:
        high = float(span.detach().max()) if isinstance(span, torch.Tensor) else span
        max_span = math.ceil(high) if (not isinstance(span, torch.Tensor) or span.numel()) else 0
    reach = min(n, math.ceil(max_span + ramp))  # distances 0 .. reach - 1 can be nonzero
    if pos_emb is not None:
        check_floating(check_tensor(pos_emb, "pos_emb", min_dim=2), "pos_emb")
        if pos_emb.shape[-1] != q.shape[-1] or pos_emb.shape[-2] < reach:
            raise ValueError(
                f"pos_emb must have shape (..., W, d_k) with d_k = {q.shape[-1]} and W >= "
                f"{reach} (one row per distance in the band); got {fmt_shape(pos_emb.shape)}."
            )
        try:
            torch.broadcast_shapes(pos_emb.shape[:-2], batch)
        except RuntimeError:
            raise ValueError(
                f"the leading dimensions of pos_emb {fmt_shape(pos_emb.shape)} must broadcast "
                f"to the batch shape {fmt_shape(batch)} of q (e.g. (H, W, d_k))."
            ) from None
    if n == 0:
        out = q.new_zeros((*batch, 0, v.shape[-1]))
        return (out, q.new_zeros((*batch, 0, 0))) if return_weights else out
    scale = default_scale(scale, q.shape[-1])

    window = reach - 1  # largest distance computed
    block = max(window, min(MIN_BLOCK, n))  # block >= window: the previous block suffices
    before = 1  # each query block is scored against itself and the block before it
    if 2 * block >= n:  # a band that wide holds every key: one dense block is cheaper
        block, before = n, 0
    length = -(-n // block) * block  # padded length M
    nb = length // block
    dtype, work = q.dtype, compute_dtype(q.dtype)
    q, k, v = (pad_to(x.to(work), length) for x in (q, k, v))  # (..., M, d)
    pos = padded_positions(n, length, q.device)  # (M,)
    band = {"block": block, "before": before, "after": 0}
    logits, _ = band_logits(q, k, pos, **band, lo=-window, hi=0, scale=scale, mask=mask)
    # logits: (..., nb, block, L) with L = (before + 1) block, -inf outside the band

    width = (before + 1) * block
    rows = torch.arange(block, device=q.device)
    cols = torch.arange(width, device=q.device)
    distance = rows[:, None] + before * block - cols[None, :]  # (block, L): t - r
    if pos_emb is not None:
        pos_scores = (q * scale) @ pos_emb[..., :reach, :].to(work).transpose(-2, -1)
        pos_scores = pos_scores.unflatten(-2, (nb, block))  # (..., nb, block, reach)
        index = distance.clamp(0, reach - 1).expand(*pos_scores.shape[:-1], width)
        logits = logits + pos_scores.gather(-1, index)  # (..., nb, block, L)

    z = span.to(work)[..., None, None, None] if isinstance(span, torch.Tensor) else span
    m = soft_span_mask(distance.to(work), z, ramp)  # (..., 1, block, L)
    # Keys beyond this head's own reach (the band fits the largest span) leave the softmax
    # before it is taken: a large score there must not take the row's mass and leave 0.
    logits = torch.where(m > 0, logits, float("-inf"))  # (..., nb, block, L)
    weights = safe_softmax(logits) * m  # m exp(s) / sum exp(s) over the keys in reach
    total = weights.sum(dim=-1, keepdim=True)  # 0 only for a query with no allowed key
    weights = weights / torch.where(total > 0, total, torch.ones_like(total))
    out = band_output(weights, v, **band)[..., :n, :].to(dtype)  # (..., n, d_v)
    if not return_weights:
        return out
    dense = _band_to_dense(weights, block, before)[..., :n, :n]  # (..., n, n)
    return out, dense.to(dtype)


# ------------------------------------------------------------------------ module


class AdaptiveSpanSelfAttention(EfficientSelfAttention):
    """Causal multi-head self-attention with one learnable span per head.

    Each head ``h`` has a span ``z_h = max_span * f_h`` with a parameter ``f_h`` kept in
    ``[0, 1]`` (clamped in place before each use, as the paper's code clamps it after each
    update); the attention is :func:`adaptive_span_attention`, with the band trimmed to
    the current largest span. With ``relative_positions`` each head also learns relative
    position embeddings ``p_x`` for the distances ``x < max_span + ramp``, added to the keys
    as in the paper (``s_tr = q_t . (k_r + p_{t-r}) / sqrt(d)``).

    Args:
        d_model, num_heads, bias: as :class:`.EfficientSelfAttention`. Always causal.
        max_span: the largest span ``S``, an integer ``>= 0``.
        ramp: the ramp width ``R``, a positive integer (the paper uses 32).
        init_span: initial span of every head in tokens, in ``[0, max_span]``; default
            ``max_span / 2``.
        relative_positions: learn the relative position embeddings ``p``.

    Add ``lambda * layer.span_penalty()`` to the loss (the paper's L1 term for this layer);
    ``layer.spans`` are the current spans in tokens.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        max_span: int,
        *,
        ramp: int = 32,
        init_span: float | None = None,
        relative_positions: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__(d_model, num_heads, bias=bias, causal=True)
        self.max_span = check_positive_int(max_span, "max_span", allow_zero=True)
        self.ramp = check_positive_int(ramp, "ramp")
        if init_span is None:
            init_span = self.max_span / 2
        init_span = float(_check_span(init_span, self.max_span, "init_span"))
        check_bool(relative_positions, "relative_positions")
        fraction = init_span / self.max_span if self.max_span else 0.0
        self.span_fraction = nn.Parameter(torch.full((num_heads,), fraction))  # (H,)
        self.key_pe = None
        if relative_positions:
            width = self.max_span + self.ramp  # distances 0 .. max_span + ramp - 1
            pe = torch.randn(num_heads, width, self.head_dim) / math.sqrt(self.head_dim)
            self.key_pe = nn.Parameter(pe)  # (H, W, D): broadcasts against (B, H)

    def _spans(self) -> torch.Tensor:
        """The spans ``(H,)`` in tokens, with the gradient to the span parameters."""
        with torch.no_grad():
            self.span_fraction.clamp_(0.0, 1.0)
        return self.max_span * self.span_fraction  # (H,)

    @property
    def spans(self) -> torch.Tensor:
        """The current span of each head in tokens, ``(H,)``, detached."""
        return (self.max_span * self.span_fraction.detach().clamp(0.0, 1.0)).clone()

    def span_penalty(self) -> torch.Tensor:
        """The mean span of the heads in tokens (``sum_h z_h / H``), differentiable."""
        return self._spans().mean()

    def attend(self, q, k, v, key_padding_mask):
        spans = self._spans().to(q.dtype)  # (H,)
        return adaptive_span_attention(
            q,
            k,
            v,
            spans,
            ramp=self.ramp,
            pos_emb=self.key_pe,  # (H, W, D)
            mask=padding_to_mask(key_padding_mask),  # (B, 1, 1, n) or None
        )  # (B, H, n, D)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, max_span={self.max_span}, ramp={self.ramp}"

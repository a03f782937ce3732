"""Exact attention in tiles with an online softmax: O(n) memory, no n x n matrix.

``softmax(q k^T * scale) v`` only needs, for each query, a running maximum ``m`` of its
scores, a running sum ``l = sum_j exp(s_j - m)`` and a running weighted sum of the values
``acc = sum_j exp(s_j - m) v_j``. When a block of new scores raises the maximum to
``m'``, the old sums are rescaled by ``exp(m - m')`` and the new block is added: the
"online softmax" (Milakov & Gimelshein, 2018, "Online normalizer calculation for
softmax", algorithm 3). Rabe & Staats (2021, "Self-attention Does Not Need O(n^2)
Memory") compute attention key block by key block this way; Dao et al. (2022,
"FlashAttention: Fast and Memory-Efficient Exact Attention with IO-Awareness",
algorithm 1) tile the queries too and, in the backward pass, *recompute* each tile's
probabilities ``P = exp(S - lse)`` from the saved log-sum-exp ``lse = m + log l`` instead
of storing them. This module follows FlashAttention-2 (Dao, 2023, "FlashAttention-2:
Faster Attention with Better Parallelism and Work Partitioning", section 3.1,
algorithms 1 and 2): ``acc`` stays unnormalised until the last key block, and the
backward pass uses ``D = rowsum(dO * O)`` and ``dS = P * (dP - D)``.

:func:`attention_with_lse` and :func:`merge_attention_blocks` are the same idea in
normalised form, one block at a time: small enough to read, and to write as an exercise.

The result equals :func:`~attnkit.attention.scaled_dot_product_attention` up to rounding. Time is
still O(n_q n_k d); the extra memory is one ``block_q x block_k`` tile per batch element
plus O(n) statistics, in the forward *and* in the backward pass.

What makes the plain-PyTorch loop fast on a CPU (each measured there): one score buffer
reused by every tile (``bmm(..., out=)``), in-place element-wise operations,
``baddbmm_`` for ``acc = alpha * acc + P V``, ``log2(e) * scale`` folded into ``q`` once so
that the loop uses ``exp2`` (like the FlashAttention kernels; ``exp`` of ``-inf`` is slow
there), masks *added* as ``0 / -inf`` rather than ``masked_fill_``-ed, and causal tiles
above the diagonal skipped.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from .._validate import (
    broadcast_batch,
    check_floating,
    check_mask,
    check_positive_int,
    check_qkv,
    check_same_dtype,
    check_scale,
    check_tensor,
    compute_dtype,
    fmt_shape,
)
from ._base import EfficientSelfAttention, padding_to_mask

NEG_INF = float("-inf")
LOG2E = 1.0 / math.log(2.0)  # exp(x) = 2^(x * LOG2E)
LN2 = math.log(2.0)


# ------------------------------------------------------------------ building blocks


def attention_with_lse(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense attention on one block that also returns each query's log-sum-exp.

    ``lse_i = log sum_j exp(s_ij)`` with ``s = q k^T * scale + mask`` is everything one
    needs to remember about a block of keys to merge it later with another block
    (see :func:`merge_attention_blocks`).

    Args:
        q: queries ``(..., n_q, d_k)``.
        k: keys ``(..., n_k, d_k)``.
        v: values ``(..., n_k, d_v)``; one floating dtype for all three. 16-bit inputs
            are computed in float32 and the results cast back.
        mask: optional mask broadcasting to ``(..., n_q, n_k)``: bool, ``True`` = may
            attend, or floating, added to the scaled scores.
        scale: score multiplier; default ``1 / sqrt(d_k)``.

    Returns:
        ``(out, lse)`` of shapes ``(..., n_q, d_v)`` and ``(..., n_q)``. A query that may
        attend to no key gets ``out = 0`` and ``lse = -inf`` (and zero gradients).
        O(n_q n_k) memory: this is the dense building block, not the tiled algorithm.
    """
    batch = check_qkv(q, k, v)
    scale = check_scale(scale)
    n_q, n_k = q.shape[-2], k.shape[-2]
    if mask is not None:
        check_mask(mask, (*batch, n_q, n_k))
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    work = compute_dtype(q.dtype)
    s = (q.to(work) @ k.to(work).transpose(-2, -1)) * scale  # (..., n_q, n_k)
    if mask is not None:
        s = s.masked_fill(~mask, NEG_INF) if mask.dtype == torch.bool else s + mask.to(work)
    m = s.amax(dim=-1, keepdim=True) if n_k else s.new_full((*s.shape[:-1], 1), NEG_INF)
    m = torch.where(m == NEG_INF, 0.0, m).detach()  # fully masked row: shift by 0, not -inf
    p = torch.exp(s - m)  # (..., n_q, n_k), unnormalised
    total = p.sum(dim=-1, keepdim=True)  # (..., n_q, 1)
    seen = total > 0  # False on fully masked rows
    total_safe = torch.where(seen, total, 1.0)  # so that neither value nor gradient is NaN
    out = (p / total_safe) @ v.to(work)  # (..., n_q, d_v)
    lse = torch.where(seen, m + torch.log(total_safe), NEG_INF)  # (..., n_q, 1)
    return out.to(q.dtype), lse.squeeze(-1).to(q.dtype)


def merge_attention_blocks(
    out_a: torch.Tensor, lse_a: torch.Tensor, out_b: torch.Tensor, lse_b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge attention over key set A and over a disjoint key set B into attention over A ∪ B.

    With ``lse = logaddexp(lse_a, lse_b) = log(exp(lse_a) + exp(lse_b))`` the softmax
    weight of a key of A over A ∪ B is its weight over A times ``exp(lse_a - lse)``, so
    ``out = exp(lse_a - lse) * out_a + exp(lse_b - lse) * out_b``: the online softmax
    update (Milakov & Gimelshein, 2018) in normalised form. ``lse`` is computed as
    ``m + log(exp(lse_a - m) + exp(lse_b - m))`` with ``m = max(lse_a, lse_b)``, which
    stays finite, and differentiable, when a side has seen no key.

    Args:
        out_a, out_b: ``(..., n_q, d_v)`` outputs of :func:`attention_with_lse`.
        lse_a, lse_b: ``(..., n_q)`` their log-sum-exps; ``-inf`` = no key on that side.

    Returns:
        ``(out, lse)`` with the broadcast shapes. A row with ``-inf`` on both sides gets
        ``out = 0`` and ``lse = -inf``, and no NaN in values or gradients.
        O(n_q d_v) time and memory.

    Raises:
        TypeError: if an argument is not a floating tensor, or the dtypes differ.
        ValueError: if ``out_a``/``out_b`` are not ``(..., n_q, d_v)`` with one ``d_v``,
            ``lse_a``/``lse_b`` not their shapes without the last dimension, or the batch
            dimensions do not broadcast.
    """
    for name, t, least in (
        ("out_a", out_a, 2),
        ("lse_a", lse_a, 1),
        ("out_b", out_b, 2),
        ("lse_b", lse_b, 1),
    ):
        check_floating(check_tensor(t, name, min_dim=least), name)
    check_same_dtype(out_a=out_a, lse_a=lse_a, out_b=out_b, lse_b=lse_b)
    for out_name, out, lse_name, lse in (
        ("out_a", out_a, "lse_a", lse_a),
        ("out_b", out_b, "lse_b", lse_b),
    ):
        if lse.shape != out.shape[:-1]:
            raise ValueError(
                f"{lse_name} must have the shape of {out_name} without its last dimension, "
                f"{fmt_shape(out.shape[:-1])}; got {fmt_shape(lse.shape)}."
            )
    if out_a.shape[-1] != out_b.shape[-1]:
        raise ValueError(
            f"out_a and out_b must have the same last dimension d_v; got "
            f"{fmt_shape(out_a.shape)} and {fmt_shape(out_b.shape)}."
        )
    broadcast_batch("out_a and out_b", out_a=out_a.shape[:-1], out_b=out_b.shape[:-1])
    m = torch.maximum(lse_a, lse_b)  # (..., n_q)
    m = torch.where(m == NEG_INF, 0.0, m).detach()  # both sides empty: shift by 0
    w_a, w_b = torch.exp(lse_a - m), torch.exp(lse_b - m)  # (..., n_q), the larger is 1
    total = w_a + w_b  # 0 only where both sides are empty
    seen = total > 0
    total_safe = torch.where(seen, total, 1.0)
    out = (w_a / total_safe).unsqueeze(-1) * out_a + (w_b / total_safe).unsqueeze(-1) * out_b
    lse = torch.where(seen, m + torch.log(total_safe), NEG_INF)  # logaddexp(lse_a, lse_b)
    return out, lse


# ------------------------------------------------------------------ the tiled kernel


class _Tiles:
    """Where the tiles are and how to mask one: shared by the forward and backward pass.

    ``batch`` is the broadcast batch shape of the flattened ``(N, n, d)`` tensors. The
    mask keeps its own broadcast shape (with leading 1s added) and is only ever sliced,
    so a ``(B, 1, 1, n_k)`` padding mask costs nothing extra.
    """

    def __init__(
        self,
        batch: tuple[int, ...],
        n_q: int,
        n_k: int,
        mask: torch.Tensor | None,
        causal: bool,
        block_q: int,
        block_k: int,
    ) -> None:
        self.batch, self.n_q, self.n_k = tuple(batch), n_q, n_k
        self.causal, self.block_q, self.block_k = causal, block_q, block_k
        self.offset = n_k - n_q  # query i sits at key position i + offset
        if mask is not None:
            mask = mask.view((1,) * (len(batch) + 2 - mask.dim()) + tuple(mask.shape))
        self.mask = mask

    def rows(self) -> list[tuple[int, int]]:
        """Query blocks ``(i0, i1)``."""
        return [(i, min(i + self.block_q, self.n_q)) for i in range(0, self.n_q, self.block_q)]

    def cols(self, i0: int, i1: int) -> list[tuple[int, int]]:
        """Key blocks ``(j0, j1)`` that query block ``i0:i1`` needs (causal: skip the rest)."""
        end = min(self.n_k, i1 + self.offset) if self.causal else self.n_k  # last key + 1
        return [(j, min(j + self.block_k, end)) for j in range(0, max(end, 0), self.block_k)]

    def scratch(self, like: torch.Tensor) -> torch.Tensor:
        """Flat memory for one ``(N, block_q, block_k)`` tile, reused by every tile.

        Allocating a fresh multi-megabyte tile for each matmul costs page faults (about a
        third of the forward's time on CPU); writing into one buffer with ``out=`` does not.
        """
        N = math.prod(self.batch)
        return like.new_empty(N * min(self.block_q, self.n_q) * min(self.block_k, self.n_k))

    def tile(self, scratch: torch.Tensor, i0: int, i1: int, j0: int, j1: int) -> torch.Tensor:
        """The first elements of ``scratch`` as a contiguous ``(N, i1 - i0, j1 - j0)`` tile."""
        N = math.prod(self.batch)
        return scratch[: N * (i1 - i0) * (j1 - j0)].view(N, i1 - i0, j1 - j0)

    def apply_mask(self, s: torch.Tensor, i0: int, i1: int, j0: int, j1: int) -> None:
        """Mask the score tile ``s`` ``(N, i1 - i0, j1 - j0)`` (base-2 units) in place."""
        if self.mask is not None:
            m = self.mask
            rows = slice(i0, i1) if m.shape[-2] > 1 else slice(None)
            cols = slice(j0, j1) if m.shape[-1] > 1 else slice(None)
            tile = m[..., rows, cols]  # (..., bq or 1, bk or 1), a view
            s_view = s.view(*self.batch, i1 - i0, j1 - j0)
            if tile.dtype == torch.bool:  # additive form: adding is several times faster
                tile = torch.where(tile, 0.0, NEG_INF)  # than a broadcasting masked_fill_
            s_view.add_(tile, alpha=LOG2E)  # the scores are in base 2
        if not self.causal:
            return
        # Query i may see keys j <= i + offset. Columns before c are visible to every query
        # of the tile; only a tile that reaches past c (on the diagonal) needs masking, and
        # only its last j1 - c < block_q columns, where key c + b is hidden from query
        # i0 + a iff b - a >= i0 + offset + 1 - c: an upper triangle of -inf to add
        # (adding is several times faster than masked_fill_ on this strided slice).
        c = max(j0, i0 + self.offset + 1)
        if c < j1:
            hidden = torch.full((i1 - i0, j1 - c), NEG_INF, dtype=s.dtype, device=s.device)
            hidden.triu_(i0 + self.offset + 1 - c)  # (bq, j1 - c): -inf hidden, 0 visible
            s[:, :, c - j0 :].add_(hidden)  # broadcast over N


def _tiled_forward(
    qs: torch.Tensor, k_t: torch.Tensor, v: torch.Tensor, tiles: _Tiles
) -> tuple[torch.Tensor, torch.Tensor]:
    """Online-softmax forward pass in base 2 (FlashAttention-2, algorithm 1).

    ``qs = q * scale * log2(e)`` ``(N, n_q, d)``, so that ``qs k^T`` are the scores in
    base-2 units and ``exp2`` replaces ``exp`` (``exp(x) = 2^(x log2 e)``): on the CPU
    ``exp2`` of the ``-inf`` of masked scores is about four times faster than ``exp``.
    ``k_t`` is ``k^T`` ``(N, d, n_k)``, ``v`` ``(N, n_k, d_v)``.

    Returns ``out`` ``(N, n_q, d_v)`` and the base-2 log-sum-exp ``lse2`` ``(N, n_q, 1)``.
    """
    N, n_q, d_v = qs.shape[0], qs.shape[1], v.shape[-1]
    out = qs.new_empty(N, n_q, d_v)
    lse2 = qs.new_empty(N, n_q, 1)
    scratch = tiles.scratch(qs)  # the score tile, allocated once
    # The running max starts at the lowest finite number, not -inf: then the shifts below
    # are finite even for a row that has seen no key yet (-inf - (-inf) would be NaN).
    lowest = torch.finfo(qs.dtype).min
    for i0, i1 in tiles.rows():
        q_i = qs[:, i0:i1]  # (N, bq, d)
        m_i = qs.new_full((N, i1 - i0, 1), lowest)  # running max
        l_i = qs.new_zeros(N, i1 - i0, 1)  # running sum of 2^(s - m_i)
        acc = qs.new_zeros(N, i1 - i0, d_v)  # running sum of 2^(s - m_i) v
        for j0, j1 in tiles.cols(i0, i1):
            s = torch.bmm(q_i, k_t[:, :, j0:j1], out=tiles.tile(scratch, i0, i1, j0, j1))
            tiles.apply_mask(s, i0, i1, j0, j1)  # (N, bq, bk) scores, base 2
            m_new = torch.maximum(m_i, s.amax(dim=-1, keepdim=True))  # (N, bq, 1)
            alpha = torch.exp2(m_i - m_new)  # rescales the old sums
            p = s.sub_(m_new).exp2_()  # (N, bq, bk), in place; masked scores give 0
            l_i.mul_(alpha).add_(p.sum(dim=-1, keepdim=True))
            acc.mul_(alpha).baddbmm_(p, v[:, j0:j1])  # acc = alpha * acc + p v
            m_i = m_new
        seen = l_i > 0  # False on fully masked rows: out = 0, lse = -inf
        out[:, i0:i1] = acc.div_(torch.where(seen, l_i, 1.0))
        lse2[:, i0:i1] = torch.where(seen, m_i + torch.log2(l_i), NEG_INF)
    return out, lse2


def _tiled_backward(
    qs: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse2: torch.Tensor,
    d_out: torch.Tensor,
    tiles: _Tiles,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Recompute backward (FlashAttention-2, algorithm 2): ``P = 2^(S - lse2)``,
    ``D = rowsum(dO * O)``, ``dS = P * (dP - D)``.

    ``qs = q * scale * log2(e)`` as in :func:`_tiled_forward`. ``dS`` is the gradient
    w.r.t. the natural scores ``q k^T * scale``; returns ``dS k``, ``dS^T qs`` and
    ``dv = P^T dO``, which the caller turns into ``dq`` and ``dk``.
    """
    k_t = k.transpose(1, 2).contiguous()  # (N, d, n_k)
    v_t = v.transpose(1, 2).contiguous()  # (N, d_v, n_k)
    D = (d_out * out).sum(dim=-1, keepdim=True)  # (N, n_q, 1)
    lse2 = torch.where(lse2 == NEG_INF, float("inf"), lse2)  # fully masked rows: P = 0
    ds_k, ds_q, dv = torch.zeros_like(qs), torch.zeros_like(k), torch.zeros_like(v)
    scratch_s, scratch_dp = tiles.scratch(qs), tiles.scratch(qs)
    for i0, i1 in tiles.rows():
        q_i, do_i, dsk_i = qs[:, i0:i1], d_out[:, i0:i1], ds_k[:, i0:i1]  # (N, bq, .)
        for j0, j1 in tiles.cols(i0, i1):
            s = torch.bmm(q_i, k_t[:, :, j0:j1], out=tiles.tile(scratch_s, i0, i1, j0, j1))
            tiles.apply_mask(s, i0, i1, j0, j1)
            p = s.sub_(lse2[:, i0:i1]).exp2_()  # (N, bq, bk) probabilities, recomputed
            dp = torch.bmm(do_i, v_t[:, :, j0:j1], out=tiles.tile(scratch_dp, i0, i1, j0, j1))
            ds = dp.sub_(D[:, i0:i1]).mul_(p)  # (N, bq, bk) gradient of the scores
            dv[:, j0:j1].baddbmm_(p.transpose(1, 2), do_i)
            dsk_i.baddbmm_(ds, k[:, j0:j1])
            ds_q[:, j0:j1].baddbmm_(ds.transpose(1, 2), q_i)
    return ds_k, ds_q, dv


class _TiledAttention(torch.autograd.Function):
    """Autograd wrapper: saves only q, k, v, out and lse (O(n) memory for training)."""

    @staticmethod
    def forward(ctx: Any, q, k, v, tiles, scale):
        # Function.forward runs without autograd: nothing here is recorded.
        qs = q * (scale * LOG2E)  # (N, n_q, d): the scale (in base 2) folded in once
        k_t = k.transpose(1, 2).contiguous()  # (N, d, n_k): keys transposed once
        out, lse2 = _tiled_forward(qs, k_t, v, tiles)
        ctx.save_for_backward(q, k, v, out, lse2)
        ctx.tiles, ctx.scale = tiles, scale
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, d_out):
        q, k, v, out, lse2 = ctx.saved_tensors
        qs = q * (ctx.scale * LOG2E)
        ds_k, ds_q, dv = _tiled_backward(qs, k, v, out, lse2, d_out.contiguous(), ctx.tiles)
        # S = q k^T * scale: dq = dS k * scale and dk = dS^T q * scale = dS^T qs * ln(2)
        return ds_k.mul_(ctx.scale), ds_q.mul_(LN2), dv, None, None


def tiled_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    causal: bool = False,
    scale: float | None = None,
    block_q: int = 256,
    block_k: int = 1024,
) -> torch.Tensor:
    """Exact attention ``softmax(q k^T * scale + mask) v`` computed tile by tile.

    Tiles of ``block_q`` queries x ``block_k`` keys are processed with a running max and
    a running sum (online softmax), so the ``n_q x n_k`` score matrix is never formed.
    The backward pass recomputes each tile's probabilities from the saved log-sum-exp
    (FlashAttention-2), so training needs O(n) memory beyond the inputs too.

    Args:
        q: queries ``(..., n_q, d_k)``.
        k: keys ``(..., n_k, d_k)``.
        v: values ``(..., n_k, d_v)``. Leading batch dimensions broadcast; ``q``, ``k``,
            ``v`` share one floating dtype; 16-bit inputs are computed in float32 and
            the output is cast back.
        mask: optional mask broadcasting to ``(..., n_q, n_k)``: bool, ``True`` = may
            attend, or floating, added to the scaled scores. It is sliced per tile, never
            expanded; it gets no gradient.
        causal: query ``i`` may attend to keys ``j <= i + n_k - n_q`` only (bottom-right
            aligned, like :func:`~attnkit.masks.causal_mask`'s default). Tiles entirely above
            the diagonal are skipped. Combined with ``mask`` when both are given.
        scale: score multiplier; default ``1 / sqrt(d_k)``.
        block_q: queries per tile (positive int; need not divide ``n_q``).
        block_k: keys per tile (positive int; need not divide ``n_k``).

    Returns:
        ``(..., n_q, d_v)`` in the dtype of ``q``. A query that may attend to no key gets
        a zero output and zero gradients.

    Complexity: O(n_q n_k d) time (about half with ``causal``). Extra memory: one
    ``(N, block_q, block_k)`` score tile (two in the backward pass), copies of ``q * scale``
    and ``k^T``, and O(N n_q) statistics, with ``N`` the product of the batch dimensions;
    never ``(N, n_q, n_k)``.
    """
    batch = check_qkv(q, k, v)
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be True or False, got {causal!r}.")
    scale = check_scale(scale)
    block_q = check_positive_int(block_q, "block_q")
    block_k = check_positive_int(block_k, "block_k")
    n_q, d_k, n_k, d_v = q.shape[-2], q.shape[-1], k.shape[-2], v.shape[-1]
    if mask is not None:
        check_mask(mask, (*batch, n_q, n_k))
    if scale is None:
        scale = 1.0 / math.sqrt(d_k)

    work = compute_dtype(q.dtype)
    N = math.prod(batch)
    # (N, n, d): a view when the batch dims already agree, a copy when they broadcast
    q3 = q.to(work).expand(*batch, n_q, d_k).reshape(N, n_q, d_k)
    k3 = k.to(work).expand(*batch, n_k, d_k).reshape(N, n_k, d_k)
    v3 = v.to(work).expand(*batch, n_k, d_v).reshape(N, n_k, d_v).contiguous()
    tiles = _Tiles(batch, n_q, n_k, mask, causal, block_q, block_k)
    out = _TiledAttention.apply(q3, k3, v3, tiles, scale)  # (N, n_q, d_v)
    return out.reshape(*batch, n_q, d_v).to(q.dtype)


# ------------------------------------------------------------------------- module


class TiledSelfAttention(EfficientSelfAttention):
    """Multi-head self-attention computed by :func:`tiled_attention` (exact, O(n) memory).

    Args:
        d_model, num_heads, bias, causal: see :class:`~attnkit.efficient.EfficientSelfAttention`.
        block_q: queries per tile.
        block_k: keys per tile.
    """

    supports_causal = True

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        *,
        bias: bool = True,
        causal: bool = False,
        block_q: int = 256,
        block_k: int = 1024,
    ) -> None:
        super().__init__(d_model, num_heads, bias=bias, causal=causal)
        self.block_q = check_positive_int(block_q, "block_q")
        self.block_k = check_positive_int(block_k, "block_k")

    def attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        key_padding_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """``(B, H, n, D)`` per-head queries, keys, values -> ``(B, H, n, D)``."""
        mask = padding_to_mask(key_padding_mask)  # (B, 1, 1, n) or None
        return tiled_attention(
            q, k, v, mask, causal=self.causal, block_q=self.block_q, block_k=self.block_k
        )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, block_q={self.block_q}, block_k={self.block_k}"


__all__ = [
    "TiledSelfAttention",
    "attention_with_lse",
    "merge_attention_blocks",
    "tiled_attention",
]

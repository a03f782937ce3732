"""Factorized attention of the Sparse Transformer: strided and fixed patterns.

Child, Gray, Radford and Sutskever, 2019, "Generating Long Sequences with Sparse
Transformers", section 4.2. Each query ``i`` attends to the union ``A(i) = A1(i) | A2(i)``
of two small sets, chosen so that every position can reach every earlier one in two
steps (the "merged head" of section 4.3: one head attends to the whole union).

* **strided** (for data with a periodic structure, e.g. images, stride ``l ~ sqrt(n)``):
  ``A1 = {j : 0 <= i - j < l}`` (the previous ``l`` positions) and
  ``A2 = {j : (i - j) mod l = 0, j <= i}`` (every ``l``-th position before ``i``).
* **fixed** (for text): ``A1 = {j : floor(j / l) = floor(i / l), j <= i}`` (the own
  block) and ``A2 = {j : j mod l in {l - c, ..., l - 1}, j <= i}`` (the last ``c``
  positions of every block, the "summary" cells).

Without ``causal`` the ``j <= i`` conditions are dropped (``|i - j| < l`` for the strided
band). Both are computed in ``O(n * (l + n / l) * d)`` with reshapes, never with an
``n x n`` matrix: ``A1`` as a band over blocks of ``l`` positions, ``A2`` per residue
class ``i mod l`` (strided) or against the gathered summary keys (fixed); the two score
parts are joined by one softmax, and a key lying in both sets (``j = i`` for strided, the
own block's summary cells for fixed) is counted in ``A1`` only.
"""

from __future__ import annotations

import torch

from .._validate import check_positive_int, compute_dtype
from ._base import EfficientSelfAttention, padding_to_mask
from .blocksparse import (
    band_logits,
    band_output,
    check_bool,
    check_self_attention_inputs,
    default_scale,
    masked_logits,
    pad_to,
    padded_positions,
    softmax_parts,
)

__all__ = [
    "SparseTransformerSelfAttention",
    "fixed_mask",
    "sparse_transformer_attention",
    "strided_mask",
]

PATTERNS = ("strided", "fixed")


def _check_c(c: object, stride: int) -> int:
    """Check the number of summary positions per block of the fixed pattern."""
    c = check_positive_int(c, "c")
    if c > stride:
        raise ValueError(f"c must be between 1 and stride={stride}, got c={c}.")
    return c


def _check_pattern(pattern: object) -> str:
    if pattern not in PATTERNS:
        raise ValueError(f"pattern must be 'strided' or 'fixed', got {pattern!r}.")
    return str(pattern)


def strided_mask(
    n: int, stride: int, *, causal: bool = True, device: torch.device | str | None = None
) -> torch.Tensor:
    """Dense bool ``(n, n)`` mask of the strided pattern, ``True`` = may attend.

    ``A1 = {j : 0 <= i - j < stride}`` (non-causal: ``|i - j| < stride``) and
    ``A2 = {j : (i - j) mod stride = 0}`` (causal: ``j <= i``); the mask is their union.
    ``O(n^2)``: for drawing and tests only.
    """
    n = check_positive_int(n, "n")
    stride = check_positive_int(stride, "stride")
    check_bool(causal, "causal")
    pos = torch.arange(n, device=device)
    diff = pos[:, None] - pos[None, :]  # (n, n): i - j
    a1 = diff.abs() < stride
    a2 = diff % stride == 0
    if causal:
        a1, a2 = a1 & (diff >= 0), a2 & (diff >= 0)
    return a1 | a2


def fixed_mask(
    n: int,
    stride: int,
    *,
    c: int = 1,
    causal: bool = True,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Dense bool ``(n, n)`` mask of the fixed pattern, ``True`` = may attend.

    ``A1 = {j : floor(j / stride) = floor(i / stride)}`` and
    ``A2 = {j : j mod stride in {stride - c, ..., stride - 1}}``, both restricted to
    ``j <= i`` when ``causal``; the mask is their union. ``O(n^2)``: for drawing and tests.
    """
    n = check_positive_int(n, "n")
    stride = check_positive_int(stride, "stride")
    c = _check_c(c, stride)
    check_bool(causal, "causal")
    pos = torch.arange(n, device=device)
    a1 = (pos[:, None] // stride) == (pos[None, :] // stride)  # (n, n)
    a2 = (pos[None, :] % stride >= stride - c).expand(n, n)  # (n, n)
    allowed = a1 | a2
    if causal:
        allowed = allowed & (pos[None, :] <= pos[:, None])
    return allowed


def _strided_columns(q, k, pos, *, stride, causal, scale, mask):
    """Scores of A2 for the strided pattern, per residue class ``r = i mod stride``.

    ``q, k`` ``(..., N, d)`` with ``N = nb * stride``. Query ``m * stride + r`` against key
    ``m' * stride + r``, allowed iff ``m' < m`` (causal) or ``m' != m``: ``j = i`` is left
    to the band. Returns logits ``(..., nb, stride, nb)``, in the band's query layout.
    """
    nb = q.shape[-2] // stride
    q_res = (q * scale).unflatten(-2, (nb, stride)).transpose(-3, -2)  # (..., l, nb, d)
    k_res = k.unflatten(-2, (nb, stride)).transpose(-3, -2)  # (..., l, nb, d)
    scores = q_res @ k_res.transpose(-2, -1)  # (..., l, nb, nb): same residue only
    m = torch.arange(nb, device=q.device)
    other = m[None, :] < m[:, None] if causal else m[None, :] != m[:, None]  # (nb, nb)
    pos_res = pos.view(nb, stride).T  # (l, nb): original position of (r, m)
    qpos, kpos = pos_res[:, :, None], pos_res[:, None, :]  # (l, nb, 1), (l, 1, nb)
    allowed = other & (kpos >= 0)  # (l, nb, nb)
    logits = masked_logits(scores, allowed, mask, qpos, kpos)
    return logits.transpose(-3, -2)  # (..., nb, l, nb)


def _strided(q, k, v, pos, *, stride, causal, scale, mask):
    """Strided pattern on padded ``(..., N, d)`` inputs; returns ``(..., N, d_v)``."""
    nb = q.shape[-2] // stride
    band = {"block": stride, "before": 1, "after": 0 if causal else 1}
    hi = 0 if causal else stride - 1
    a1, _ = band_logits(q, k, pos, **band, lo=-(stride - 1), hi=hi, scale=scale, mask=mask)
    a2 = _strided_columns(q, k, pos, stride=stride, causal=causal, scale=scale, mask=mask)
    w1, w2 = softmax_parts(a1, a2)  # (..., nb, l, L), (..., nb, l, nb)
    out = band_output(w1, v, **band)  # (..., N, d_v)
    v_res = v.unflatten(-2, (nb, stride)).transpose(-3, -2)  # (..., l, nb, d_v)
    out2 = w2.transpose(-3, -2) @ v_res  # (..., l, nb, d_v)
    return out + out2.transpose(-3, -2).flatten(-3, -2)  # (..., N, d_v)


def _fixed(q, k, v, pos, *, stride, c, causal, scale, mask):
    """Fixed pattern on padded ``(..., N, d)`` inputs; returns ``(..., N, d_v)``.

    A1 is the own block (a band with no neighbours); A2 gathers the ``nb * c`` summary
    keys once and lets each query see those of the *other* blocks (earlier blocks when
    causal), the own block's being in A1 already.
    """
    nb = q.shape[-2] // stride
    band = {"block": stride, "before": 0, "after": 0}
    hi = 0 if causal else stride - 1
    a1, qpos = band_logits(q, k, pos, **band, lo=-(stride - 1), hi=hi, scale=scale, mask=mask)

    offsets = torch.arange(stride - c, stride, device=q.device)  # summary cells of a block
    blocks = torch.arange(nb, device=q.device)
    summary = (blocks[:, None] * stride + offsets).flatten()  # (nb * c,) row indices
    k_sum = k.index_select(-2, summary)  # (..., nb * c, d)
    v_sum = v.index_select(-2, summary)  # (..., nb * c, d_v)
    scores = (q * scale) @ k_sum.transpose(-2, -1)  # (..., N, nb * c)
    scores = scores.unflatten(-2, (nb, stride))  # (..., nb, l, nb * c)
    key_block = blocks.repeat_interleave(c)  # (nb * c,)
    q_block = blocks[:, None, None]  # (nb, 1, 1)
    other = key_block < q_block if causal else key_block != q_block  # (nb, 1, nb * c)
    kpos = pos[summary]  # (nb * c,)
    a2 = masked_logits(scores, other & (kpos >= 0), mask, qpos, kpos)

    w1, w2 = softmax_parts(a1, a2)  # (..., nb, l, l), (..., nb, l, nb * c)
    out = band_output(w1, v, **band)  # (..., N, d_v)
    return out + w2.flatten(-3, -2) @ v_sum  # (..., N, d_v)


def sparse_transformer_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    pattern: str,
    stride: int,
    *,
    c: int = 1,
    causal: bool = True,
    mask: torch.Tensor | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    """Sparse Transformer attention over the union of the two sets of a factorized pattern.

    Exactly ``scaled_dot_product_attention(q, k, v, strided_mask(...) & mask)`` (or
    ``fixed_mask``), without an ``n x n`` matrix.

    Args:
        q, k: ``(..., n, d_k)``; v: ``(..., n, d_v)``: one sequence, any broadcasting
            leading dims, one floating dtype (16-bit inputs are computed in float32).
        pattern: ``"strided"`` or ``"fixed"`` (see the module docstring).
        stride: the period ``l``; ``n`` need not be a multiple of it.
        c: summary positions per block (fixed pattern only), ``1 <= c <= stride``.
        causal: restrict both sets to ``j <= i`` (the paper's autoregressive setting).
        mask: optional bool (``True`` = may attend) or floating (added) mask broadcastable
            to ``(..., n, n)``, e.g. a ``(B, 1, 1, n)`` key padding mask; only its entries
            inside the pattern are read.
        scale: score multiplier, default ``1 / sqrt(d_k)``.

    Returns:
        ``(..., n, d_v)`` in the dtype of ``q``; a query with no allowed key gets zeros.

    Complexity: ``O(n * (stride + n / stride) * d)`` time and memory for strided,
    ``O(n * (stride + c * n / stride) * d)`` for fixed; ``stride ~ sqrt(n)`` gives
    ``O(n^1.5 * d)``.
    """
    batch, n, scale = check_self_attention_inputs(q, k, v, mask, scale)
    pattern = _check_pattern(pattern)
    stride = check_positive_int(stride, "stride")
    c = _check_c(c, stride) if pattern == "fixed" else check_positive_int(c, "c")
    check_bool(causal, "causal")
    if n == 0:
        return q.new_zeros((*batch, 0, v.shape[-1]))
    scale = default_scale(scale, q.shape[-1])

    length = -(-n // stride) * stride  # N: whole blocks
    pos = padded_positions(n, length, q.device)  # (N,), -1 = padding
    work = compute_dtype(q.dtype)
    qp, kp, vp = (pad_to(x.to(work), length) for x in (q, k, v))  # (..., N, d)
    common = {"stride": stride, "causal": causal, "scale": scale, "mask": mask}
    if pattern == "strided":
        out = _strided(qp, kp, vp, pos, **common)
    else:
        out = _fixed(qp, kp, vp, pos, c=c, **common)
    return out[..., :n, :].to(q.dtype)  # (..., n, d_v)


class SparseTransformerSelfAttention(EfficientSelfAttention):
    """Multi-head self-attention with a Sparse Transformer pattern on every head.

    Args:
        d_model, num_heads, bias: as :class:`~attnkit.efficient.EfficientSelfAttention`.
        stride: the period ``l`` of the pattern.
        pattern: ``"strided"`` or ``"fixed"``.
        c: summary positions per block (fixed pattern).
        causal: restrict to ``j <= i`` (default ``True``, as in the paper).
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        stride: int,
        *,
        pattern: str = "strided",
        c: int = 1,
        causal: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__(d_model, num_heads, bias=bias, causal=causal)
        self.pattern = _check_pattern(pattern)
        self.stride = check_positive_int(stride, "stride")
        self.c = _check_c(c, self.stride) if pattern == "fixed" else check_positive_int(c, "c")

    def attend(self, q, k, v, key_padding_mask):
        return sparse_transformer_attention(
            q,
            k,
            v,
            self.pattern,
            self.stride,
            c=self.c,
            causal=self.causal,
            mask=padding_to_mask(key_padding_mask),
        )  # (B, H, n, D)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, pattern={self.pattern!r}, stride={self.stride}, c={self.c}"

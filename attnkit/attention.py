"""Scaled dot-product attention (Vaswani et al., 2017, "Attention Is All You Need", eq. 1).

::

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V

Shapes follow ``torch.nn.functional.scaled_dot_product_attention``: queries
``(..., n_q, d_k)``, keys ``(..., n_k, d_k)``, values ``(..., n_k, d_v)``, any number of
leading batch dimensions that broadcast, output ``(..., n_q, d_v)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ._validate import (
    broadcast_batch,
    check_bool,
    check_floating,
    check_generator,
    check_mask,
    check_probability,
    check_qkv,
    check_scale,
    check_tensor,
    compute_dtype,
    fmt_shape,
)
from .softmax import _masked_softmax


def _weighted_sum(weights: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``weights @ v`` in which a zero weight contributes exactly 0, even times NaN or inf.

    Plain ``weights @ v`` computes ``0 * NaN = NaN``: garbage in one masked (padding)
    value row would reach every output row. The fast product is checked instead of the
    values (``n_q * d_v`` numbers, the size of the output); only when it holds a non-finite
    number is the sum redone with the non-finite values taken out and put back where a
    non-zero weight meets them (NaN, or +-inf with the weight's sign, which is +).
    """
    out = weights @ v  # (..., n_q, d_v)
    if bool(torch.isfinite(out).all()):
        return out
    bad = ~torch.isfinite(v)  # (..., n_k, d_v)
    out = weights @ torch.where(bad, torch.zeros_like(v), v)  # finite values only
    used = (weights != 0).to(v.dtype)  # (..., n_q, n_k): which values each query uses
    hits = {
        kind: (used @ (bad & test).to(v.dtype)) > 0  # (..., n_q, d_v)
        for kind, test in (
            ("nan", torch.isnan(v)),
            ("pos", v == float("inf")),
            ("neg", v == float("-inf")),
        )
    }
    nan = hits["nan"] | (hits["pos"] & hits["neg"])
    out = torch.where(hits["pos"], torch.full_like(out, float("inf")), out)
    out = torch.where(hits["neg"], torch.full_like(out, float("-inf")), out)
    return torch.where(nan, torch.full_like(out, float("nan")), out)


def _attend(
    scores: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    dropout_p: float,
    generator: torch.Generator | None,
    *,
    strict: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`attend` on checked arguments (``strict`` as in :func:`._masked_softmax`)."""
    weights = _masked_softmax(scores, mask, -1, strict=strict)  # (..., n_q, n_k)
    dropped = weights
    if dropout_p > 0.0:
        keep = torch.rand(weights.shape, generator=generator, device=weights.device) >= dropout_p
        dropped = weights * keep / (1.0 - dropout_p)
    output = _weighted_sum(dropped.to(v.dtype), v)  # (..., n_q, d_v)
    return output, weights


def attend(
    scores: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    dropout_p: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn scores into weights and take the weighted sum of the values.

    This is the part that every scoring rule shares (dot-product, additive,
    multiplicative): ``weights = masked_softmax(scores, mask)``, optional dropout on
    the weights, ``output = weights @ v``. A position with weight 0 (masked, or dropped)
    contributes exactly 0 to the output, even if its value row holds NaN or inf
    (``0 * NaN`` would be NaN); a fully masked row gives zeros.

    Args:
        scores: ``(..., n_q, n_k)`` attention logits (floating).
        v: ``(..., n_k, d_v)`` values (floating; the batch dimensions broadcast with
            those of ``scores``).
        mask: bool (``True`` = may attend) or additive float mask broadcasting to scores.
        dropout_p: probability of zeroing a weight (survivors are scaled by 1/(1-p)).
        generator: optional random generator for the dropout.

    Returns:
        ``(output, weights)`` of shapes ``(..., n_q, d_v)`` and ``(..., n_q, n_k)``;
        ``weights`` are taken before dropout.

    Raises:
        TypeError: if ``scores`` or ``v`` is not a floating tensor, or ``dropout_p`` not
            a number.
        ValueError: if ``scores`` and ``v`` disagree on ``n_k`` or their batch dimensions
            do not broadcast, ``mask`` does not broadcast to ``scores``, ``dropout_p`` is
            outside [0, 1), or an allowed score is NaN or ``+inf``.
    """
    check_floating(check_tensor(scores, "scores", min_dim=2), "scores")
    check_floating(check_tensor(v, "v", min_dim=2), "v")
    if scores.shape[-1] != v.shape[-2]:
        raise ValueError(
            f"scores (..., n_q, n_k) and v (..., n_k, d_v) must agree on n_k; got scores "
            f"{fmt_shape(scores.shape)} and v {fmt_shape(v.shape)}."
        )
    broadcast_batch("scores and v", scores=scores.shape[:-2], v=v.shape[:-2])
    if mask is not None:
        check_mask(mask, scores.shape)
    dropout_p = check_probability(dropout_p, "dropout_p")
    generator = check_generator(generator)
    return _attend(scores, v, mask, dropout_p, generator, strict=True)


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    scale: float | None = None,
    dropout_p: float = 0.0,
    return_weights: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Scaled dot-product attention, ``softmax(q k^T * scale + mask) v``.

    Args:
        q: queries ``(..., n_q, d_k)``.
        k: keys ``(..., n_k, d_k)``.
        v: values ``(..., n_k, d_v)``. ``q``, ``k``, ``v`` share one floating dtype;
            float16/bfloat16 inputs are computed in float32 and the output is cast back.
        mask: optional mask broadcasting to ``(..., n_q, n_k)``: bool with ``True`` = may
            attend (PyTorch's convention), or floating, added to the scaled scores.
        scale: multiplier of the scores; default ``1 / sqrt(d_k)``.
        dropout_p: dropout probability on the attention weights. Like PyTorch's function,
            dropout is applied whenever ``dropout_p > 0``; modules pass 0 in eval mode.
        return_weights: also return the attention weights (before dropout).
        generator: optional random generator for the dropout.

    Returns:
        ``output`` of shape ``(..., n_q, d_v)`` (in the dtype of ``q``) or, with
        ``return_weights=True``, ``(output, weights)`` with weights ``(..., n_q, n_k)``.
        A query that may attend to no key at all gets zero weights and a zero output
        (a plain ``softmax`` of a row of ``-inf`` would give NaN); its gradients are zero,
        not NaN. PyTorch 2.13's function also returns zeros there.

    Example:
        >>> q = k = v = torch.randn(2, 5, 8)
        >>> scaled_dot_product_attention(q, k, v).shape
        torch.Size([2, 5, 8])
    """
    batch = check_qkv(q, k, v)
    scale = check_scale(scale)
    dropout_p = check_probability(dropout_p, "dropout_p")
    return_weights = check_bool(return_weights, "return_weights")
    generator = check_generator(generator)
    n_q, d_k, n_k = q.shape[-2], q.shape[-1], k.shape[-2]
    if mask is not None:
        check_mask(mask, (*batch, n_q, n_k))
    if scale is None:
        if d_k == 0:
            raise ValueError(
                "q and k have last dimension d_k = 0: the default scale 1/sqrt(d_k) is "
                "undefined; pass scale= explicitly or give q and k at least one feature."
            )
        scale = 1.0 / math.sqrt(d_k)

    work = compute_dtype(q.dtype)
    qw, kw, vw = q.to(work), k.to(work), v.to(work)
    scores = (qw @ kw.transpose(-2, -1)) * scale  # (..., n_q, n_k)
    output, weights = _attend(scores, vw, mask, dropout_p, generator, strict=False)
    output = output.to(q.dtype)  # (..., n_q, d_v)
    if return_weights:
        return output, weights.to(q.dtype)
    return output


class ScaledDotProductAttention(nn.Module):
    """Module form of :func:`scaled_dot_product_attention` (no parameters).

    Args:
        dropout: dropout probability on the attention weights, used in training mode only.
        scale: score multiplier; default ``1 / sqrt(d_k)``.
    """

    def __init__(self, dropout: float = 0.0, scale: float | None = None) -> None:
        super().__init__()
        self.dropout = check_probability(dropout, "dropout")
        self.scale = check_scale(scale)

    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        mask: torch.Tensor | None = None,
        *,
        return_weights: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Attend ``q`` over ``k``/``v``; see :func:`scaled_dot_product_attention`."""
        return scaled_dot_product_attention(
            q,
            k,
            v,
            mask,
            scale=self.scale,
            dropout_p=self.dropout if self.training else 0.0,
            return_weights=return_weights,
        )

    def extra_repr(self) -> str:
        return f"dropout={self.dropout}, scale={self.scale}"

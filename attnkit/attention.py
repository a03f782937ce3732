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
    check_mask,
    check_probability,
    check_qkv,
    check_scale,
    compute_dtype,
)
from .softmax import masked_softmax


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
    the weights, ``output = weights @ v``.

    Args:
        scores: ``(..., n_q, n_k)`` attention logits.
        v: ``(..., n_k, d_v)`` values.
        mask: bool (``True`` = may attend) or additive float mask broadcasting to scores.
        dropout_p: probability of zeroing a weight (survivors are scaled by 1/(1-p)).
        generator: optional random generator for the dropout.

    Returns:
        ``(output, weights)`` of shapes ``(..., n_q, d_v)`` and ``(..., n_q, n_k)``;
        ``weights`` are taken before dropout.
    """
    weights = masked_softmax(scores, mask)  # (..., n_q, n_k)
    dropped = weights
    if dropout_p > 0.0:
        keep = torch.rand(weights.shape, generator=generator, device=weights.device) >= dropout_p
        dropped = weights * keep / (1.0 - dropout_p)
    output = dropped.to(v.dtype) @ v  # (..., n_q, d_v)
    return output, weights


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
    n_q, d_k, n_k = q.shape[-2], q.shape[-1], k.shape[-2]
    if mask is not None:
        check_mask(mask, (*batch, n_q, n_k))
    if scale is None:
        scale = 1.0 / math.sqrt(d_k)

    work = compute_dtype(q.dtype)
    qw, kw, vw = q.to(work), k.to(work), v.to(work)
    scores = (qw @ kw.transpose(-2, -1)) * scale  # (..., n_q, n_k)
    output, weights = attend(scores, vw, mask, dropout_p=dropout_p, generator=generator)
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

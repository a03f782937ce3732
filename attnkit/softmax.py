"""Softmax over attention scores with a mask, safe for rows where nothing is allowed."""

from __future__ import annotations

import torch

from ._validate import check_floating, check_mask, check_tensor, compute_dtype


def masked_softmax(
    scores: torch.Tensor, mask: torch.Tensor | None = None, *, dim: int = -1
) -> torch.Tensor:
    """Softmax of ``scores`` along ``dim`` that ignores masked positions.

    ``softmax(s)_j = exp(s_j - m) / sum_l exp(s_l - m)`` with ``m = max_l s_l``;
    subtracting the row maximum leaves the result unchanged and keeps ``exp`` from
    overflowing, so logits of size ``1e4`` are fine.

    Masked positions get weight exactly 0. A row in which *every* position is masked
    (for example a padding query) gets all-zero weights rather than the NaN that
    ``torch.softmax`` gives for a row of ``-inf``; its gradient is zero, not NaN.

    Args:
        scores: floating tensor ``(..., n)``; 16-bit inputs are evaluated in float32.
        mask: optional bool mask (``True`` = keep) or floating mask added to ``scores``;
            must broadcast to ``scores.shape``.
        dim: the axis to normalise over.

    Returns:
        Weights with the shape and dtype of ``scores``; each row sums to 1, or to 0 if
        it is fully masked.
    """
    check_floating(check_tensor(scores, "scores", min_dim=1), "scores")
    if dim not in range(-scores.dim(), scores.dim()):
        raise ValueError(f"dim={dim} is out of range for scores with {scores.dim()} dimensions.")
    x = scores.to(compute_dtype(scores.dtype))
    if mask is not None:
        check_mask(mask, scores.shape)
        if mask.dtype == torch.bool:
            x = x.masked_fill(~mask, float("-inf"))
        else:
            x = x + mask.to(x.dtype)
    if x.shape[dim] == 0:
        # Nothing to normalise over (no keys at all): the weights are empty, like
        # torch.softmax's. amax of an empty axis would raise. `* 0` keeps the autograd graph.
        return scores * 0
    row_max = x.amax(dim=dim, keepdim=True)
    # A fully masked row has max -inf; shifting by 0 instead keeps exp(-inf) = 0, not NaN.
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max)).detach()
    e = torch.exp(x - row_max)
    total = e.sum(dim=dim, keepdim=True)
    # Fully masked rows have total 0: divide by 1 there so the weights stay 0.
    weights = e / torch.where(total > 0, total, torch.ones_like(total))
    return weights.to(scores.dtype)

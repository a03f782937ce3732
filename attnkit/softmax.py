"""Softmax over attention scores with a mask, safe for rows where nothing is allowed."""

from __future__ import annotations

import torch

from ._validate import check_floating, check_int, check_mask, check_tensor, compute_dtype


def _exp_and_total(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``exp(x - max)`` and its sum along ``dim``; a row of ``-inf`` is shifted by 0."""
    row_max = x.amax(dim=dim, keepdim=True)
    # A fully masked row has max -inf; shifting by 0 instead keeps exp(-inf) = 0, not NaN.
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max)).detach()
    e = torch.exp(x - row_max)
    return e, e.sum(dim=dim, keepdim=True)


def _masked_softmax(
    scores: torch.Tensor, mask: torch.Tensor | None, dim: int, *, strict: bool
) -> torch.Tensor:
    """The computation of :func:`masked_softmax` on checked arguments.

    With ``strict``, a NaN or ``+inf`` score at an allowed position raises; without it
    (inside attention, where it comes from a NaN query or key that the caller fed in),
    the row's weights are NaN, as a softmax of a row holding NaN is.
    """
    x = scores.to(compute_dtype(scores.dtype))
    if mask is not None:
        bool_mask = mask.dtype == torch.bool
        x = x.masked_fill(~mask, float("-inf")) if bool_mask else x + mask.to(x.dtype)
    if x.shape[dim] == 0:
        # Nothing to normalise over (no keys at all): the weights are empty, like
        # torch.softmax's. amax of an empty axis would raise. `* 0` keeps the autograd graph.
        return scores * 0
    e, total = _exp_and_total(x, dim)
    # A NaN or +inf score at an allowed position makes its row's total NaN or inf: one
    # check on the totals (n_q numbers, not n_q * n_k) finds it.
    if not bool(torch.isfinite(total).all()):
        if mask is not None and mask.dtype != torch.bool:
            # An additive -inf masks a position whatever its score: `NaN + -inf` and
            # `inf + -inf` are NaN, so mask those again (the rare case, redone).
            m = mask.to(x.dtype)
            x = torch.where(m == float("-inf"), m, scores.to(x.dtype) + m)
            e, total = _exp_and_total(x, dim)
        if not bool(torch.isfinite(total).all()):
            if strict:
                raise ValueError(
                    "scores must be finite (or -inf) at every position the mask allows; "
                    "got NaN or +inf there. Mask the position or fix the scores."
                )
            nan = torch.full_like(total, float("nan"))
            total = torch.where(torch.isfinite(total), total, nan)
    # Fully masked rows have total 0: divide by 1 there so the weights stay 0.
    weights = e / torch.where(total != 0, total, torch.ones_like(total))
    return weights.to(scores.dtype)


def masked_softmax(
    scores: torch.Tensor, mask: torch.Tensor | None = None, *, dim: int = -1
) -> torch.Tensor:
    """Softmax of ``scores`` along ``dim`` that ignores masked positions.

    ``softmax(s)_j = exp(s_j - m) / sum_l exp(s_l - m)`` with ``m = max_l s_l``;
    subtracting the row maximum leaves the result unchanged and keeps ``exp`` from
    overflowing, so logits of size ``1e4`` are fine.

    Masked positions get weight exactly 0, whatever their score (NaN included). A row in
    which *every* position is masked (for example a padding query) gets all-zero weights
    rather than the NaN that ``torch.softmax`` gives for a row of ``-inf``; its gradient
    is zero, not NaN.

    Args:
        scores: floating tensor ``(..., n)``; 16-bit inputs are evaluated in float32.
        mask: optional bool mask (``True`` = keep) or floating mask added to ``scores``
            (``-inf`` = masked); must broadcast to ``scores.shape``.
        dim: the axis to normalise over (an ``int``).

    Returns:
        Weights with the shape and dtype of ``scores``; each row sums to 1, or to 0 if
        it is fully masked.

    Raises:
        TypeError: if ``scores`` is not a floating tensor, ``dim`` not an int, or ``mask``
            neither bool nor floating.
        ValueError: if ``dim`` is out of range, ``mask`` does not broadcast to ``scores``,
            or a score at an allowed position is NaN or ``+inf`` (found from the row
            sums, without a pass over the scores).
    """
    check_floating(check_tensor(scores, "scores", min_dim=1), "scores")
    dim = check_int(dim, "dim")
    if not -scores.dim() <= dim < scores.dim():
        raise ValueError(f"dim={dim} is out of range for scores with {scores.dim()} dimensions.")
    if mask is not None:
        check_mask(mask, scores.shape)
    return _masked_softmax(scores, mask, dim, strict=True)

"""Attention masks.

Convention (the same as PyTorch's ``scaled_dot_product_attention``): a **bool** mask
holds ``True`` where a query *may attend* to a key and ``False`` where it may not; a
**floating** mask is *added* to the scores, so ``0`` keeps a score and ``-inf`` removes
it. Masks broadcast against scores of shape ``(..., n_q, n_k)``.
"""

from __future__ import annotations

import functools

import torch

from ._validate import FLOAT_DTYPES, check_positive_int, check_tensor, fmt_shape


def causal_mask(
    n_q: int,
    n_k: int | None = None,
    *,
    offset: int | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Bool mask ``(n_q, n_k)`` that lets query ``i`` see keys ``j <= i + offset`` only.

    With ``n_k = n_q`` (the default) this is the lower-triangular mask of a decoder
    (Vaswani et al., 2017, section 3.2.3). When there are more keys than queries the
    queries are taken to be the *last* ``n_q`` positions of the sequence, so the default
    offset is ``n_k - n_q``: the right choice when decoding with a key/value cache (and
    PyTorch's ``causal_lower_right``). ``offset=0`` aligns the first query with the first
    key instead, which is what ``torch.nn.functional.scaled_dot_product_attention(...,
    is_causal=True)`` does.

    Args:
        n_q: number of queries.
        n_k: number of keys; defaults to ``n_q``.
        offset: absolute position of query 0 among the keys; defaults to ``n_k - n_q``.
        device: where to create the mask.

    Returns:
        Bool tensor of shape ``(n_q, n_k)``, ``True`` = may attend.
    """
    n_q = check_positive_int(n_q, "n_q")
    n_k = n_q if n_k is None else check_positive_int(n_k, "n_k")
    if offset is None:
        offset = n_k - n_q
    elif isinstance(offset, bool) or not isinstance(offset, int):
        raise TypeError(f"offset must be an int or None, got {type(offset).__name__}.")
    q_pos = torch.arange(n_q, device=device).unsqueeze(-1) + offset  # (n_q, 1)
    k_pos = torch.arange(n_k, device=device).unsqueeze(0)  # (1, n_k)
    return k_pos <= q_pos  # (n_q, n_k)


def padding_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """Bool mask ``(B, max_len)`` that is ``True`` on the first ``lengths[b]`` positions.

    Sequences in a batch are padded to a common length; the padded positions must not be
    attended to. To use the result as a *key* mask for scores ``(B, n_q, n_k)`` insert
    the query axis: ``padding_mask(lengths)[:, None, :]`` (and ``[:, None, None, :]``
    for scores with a head axis ``(B, H, n_q, n_k)``).

    Args:
        lengths: integer tensor ``(B,)`` of true sequence lengths.
        max_len: padded length; defaults to ``lengths.max()``. Must be at least that.

    Returns:
        Bool tensor ``(B, max_len)``, ``True`` = real token.
    """
    check_tensor(lengths, "lengths")
    if lengths.dim() != 1:
        raise ValueError(f"lengths must be 1-D (B,), got shape {fmt_shape(lengths.shape)}.")
    if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
        raise TypeError(f"lengths must hold integers, got {lengths.dtype}.")
    if lengths.numel() and int(lengths.min()) < 0:
        raise ValueError(f"lengths must be >= 0, got {lengths.tolist()}.")
    longest = int(lengths.max()) if lengths.numel() else 0
    if max_len is None:
        max_len = longest
    max_len = check_positive_int(max_len, "max_len", allow_zero=True)
    if max_len < longest:
        raise ValueError(f"max_len={max_len} is shorter than the longest sequence ({longest}).")
    positions = torch.arange(max_len, device=lengths.device)  # (max_len,)
    return positions.unsqueeze(0) < lengths.unsqueeze(-1)  # (B, max_len)


def to_additive_mask(mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Turn a bool mask into the equivalent additive one: ``True -> 0``, ``False -> -inf``.

    A floating mask is returned converted to ``dtype``.
    """
    check_tensor(mask, "mask")
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be a floating-point dtype, got {dtype}.")
    if mask.dtype == torch.bool:
        zeros = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
        return zeros.masked_fill(~mask, float("-inf"))
    if mask.dtype not in FLOAT_DTYPES:
        raise TypeError(f"mask must be bool or floating-point, got {mask.dtype}.")
    return mask.to(dtype)


def combine_masks(*masks: torch.Tensor | None) -> torch.Tensor | None:
    """Combine masks so that a position survives only if every mask allows it.

    ``None`` entries are skipped (``None`` alone gives ``None``). Bool masks are joined
    with logical AND; if any mask is floating, all are converted to additive form and
    summed (in the promoted floating dtype, see ``torch.promote_types``). The result has
    the broadcast shape.
    A typical use is ``combine_masks(causal_mask(T), padding_mask(lengths)[:, None, :])``.
    """
    present = [m for m in masks if m is not None]
    for i, m in enumerate(present):
        check_tensor(m, f"masks[{i}]")
        if m.dtype != torch.bool and m.dtype not in FLOAT_DTYPES:
            raise TypeError(f"masks[{i}] must be bool or floating-point, got {m.dtype}.")
    if not present:
        return None
    try:
        torch.broadcast_shapes(*(m.shape for m in present))
    except RuntimeError:
        shapes = ", ".join(fmt_shape(m.shape) for m in present)
        raise ValueError(f"masks of shapes {shapes} do not broadcast together.") from None
    if all(m.dtype == torch.bool for m in present):
        out = present[0]
        for m in present[1:]:
            out = out & m
        return out
    float_dtypes = [m.dtype for m in present if m.dtype != torch.bool]
    # The type that holds every mask's values: float16 with bfloat16 gives float32 (picking
    # either 16-bit type would turn the other's large values into inf, and softmax into NaN).
    dtype = functools.reduce(torch.promote_types, float_dtypes)
    out = to_additive_mask(present[0], dtype)
    for m in present[1:]:
        out = out + to_additive_mask(m, dtype)
    return out

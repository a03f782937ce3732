"""Splitting a model dimension into attention heads and back.

Multi-head attention (Vaswani et al., 2017, section 3.2.2) runs ``H`` attentions of size
``head_dim = d_model / H`` side by side. These helpers only *reshape*: the projections
that produce the per-head queries, keys and values live in :mod:`attnkit.multihead`.
"""

from __future__ import annotations

import torch

from ._validate import check_positive_int, check_tensor, fmt_shape


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """``(..., T, H * D) -> (..., H, T, D)``: give each head its own slice of the features.

    Head ``h`` gets features ``h * D : (h + 1) * D``, the layout of
    ``torch.nn.MultiheadAttention`` and of every common checkpoint.
    """
    check_tensor(x, "x", min_dim=2)
    num_heads = check_positive_int(num_heads, "num_heads")
    width = x.shape[-1]
    if width % num_heads:
        raise ValueError(
            f"the last dimension of x ({width}, shape {fmt_shape(x.shape)}) must be divisible "
            f"by num_heads={num_heads}."
        )
    x = x.unflatten(-1, (num_heads, width // num_heads))  # (..., T, H, D)
    return x.transpose(-3, -2)  # (..., H, T, D)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``(..., H, T, D) -> (..., T, H * D)``: the inverse of :func:`split_heads`."""
    check_tensor(x, "x", min_dim=3)
    return x.transpose(-3, -2).flatten(-2)  # (..., T, H * D)


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """``(..., H_kv, T, D) -> (..., H_kv * n_rep, T, D)`` for grouped-query attention.

    Query head ``h`` uses key/value head ``h // n_rep`` (Ainslie et al., 2023, "GQA";
    the same grouping as ``scaled_dot_product_attention(..., enable_gqa=True)``).
    ``n_rep = 1`` returns ``x`` itself.
    """
    check_tensor(x, "x", min_dim=3)
    n_rep = check_positive_int(n_rep, "n_rep")
    if n_rep == 1:
        return x
    return x.repeat_interleave(n_rep, dim=-3)  # (..., H_kv * n_rep, T, D)

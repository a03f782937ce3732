"""Full (dense) self-attention as an :class:`.EfficientSelfAttention`: the reference.

It forms the whole ``n x n`` score matrix with :func:`.scaled_dot_product_attention`;
every other method in :mod:`attnkit.efficient` is compared against it. With
``fused=True`` it calls PyTorch's fused ``scaled_dot_product_attention`` instead (on CPU a
FlashAttention-style kernel that never stores the ``n x n`` matrix): the same function,
tested equal, and what one would use in practice for dense attention.
"""

from __future__ import annotations

import torch.nn.functional as F

from ..attention import scaled_dot_product_attention
from ..masks import causal_mask, combine_masks
from ._base import EfficientSelfAttention, padding_to_mask


class FullSelfAttention(EfficientSelfAttention):
    """Ordinary multi-head self-attention, O(n^2) time (Vaswani et al., 2017).

    Args:
        d_model, num_heads, bias, causal: see :class:`~attnkit.efficient.EfficientSelfAttention`.
        fused: use ``torch.nn.functional.scaled_dot_product_attention`` for the core.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        *,
        bias: bool = True,
        causal: bool = False,
        fused: bool = False,
    ) -> None:
        super().__init__(d_model, num_heads, bias=bias, causal=causal)
        if not isinstance(fused, bool):
            raise TypeError(f"fused must be True or False, got {fused!r}.")
        self.fused = fused

    def attend(self, q, k, v, key_padding_mask):
        n = q.shape[-2]
        causal = causal_mask(n, device=q.device) if self.causal else None  # (n, n)
        mask = combine_masks(causal, padding_to_mask(key_padding_mask))
        if self.fused:
            # torch 2.13 also returns zeros for a query that may attend to nothing.
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, H, n, D)
        return scaled_dot_product_attention(q, k, v, mask)  # (B, H, n, D)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", fused={self.fused}"

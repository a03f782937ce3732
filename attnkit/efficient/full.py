"""Full (dense) self-attention as an :class:`EfficientSelfAttention`: the reference.

It forms the whole ``n x n`` score matrix with :func:`attnkit.scaled_dot_product_attention`;
every other method in :mod:`attnkit.efficient` is compared against it.
"""

from __future__ import annotations

from ..attention import scaled_dot_product_attention
from ..masks import causal_mask, combine_masks
from ._base import EfficientSelfAttention, padding_to_mask


class FullSelfAttention(EfficientSelfAttention):
    """Ordinary multi-head self-attention, O(n^2) time and memory (Vaswani et al., 2017)."""

    def attend(self, q, k, v, key_padding_mask):
        n = q.shape[-2]
        causal = causal_mask(n, device=q.device) if self.causal else None  # (n, n)
        mask = combine_masks(causal, padding_to_mask(key_padding_mask))
        return scaled_dot_product_attention(q, k, v, mask)  # (B, H, n, D)

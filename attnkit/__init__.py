"""attnkit: small, exact, tested implementations of attention mechanisms.

The companion package of the book *Self-Attention from First Principles*. Every
mechanism has a functional core working on tensors and a thin ``nn.Module``; masks
follow PyTorch's convention (bool ``True`` = may attend, floating = added to scores).
"""

from .attention import ScaledDotProductAttention, attend, scaled_dot_product_attention
from .masks import causal_mask, combine_masks, padding_mask, to_additive_mask
from .scoring import (
    AdditiveAttention,
    MultiplicativeAttention,
    additive_scores,
    multiplicative_scores,
)
from .softmax import masked_softmax

__version__ = "0.1.0"

__all__ = [
    "AdditiveAttention",
    "MultiplicativeAttention",
    "ScaledDotProductAttention",
    "additive_scores",
    "attend",
    "causal_mask",
    "combine_masks",
    "masked_softmax",
    "multiplicative_scores",
    "padding_mask",
    "scaled_dot_product_attention",
    "to_additive_mask",
]

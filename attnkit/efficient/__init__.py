"""Efficient attention: the whole family, exact where exact, each tested against dense.

Every method has a functional core on tensors ``(..., n, d)`` and a thin ``nn.Module``
(a subclass of :class:`EfficientSelfAttention`, which owns the projections). Masks follow
the core convention: bool ``True`` = may attend, floating = added to the scores.

* IO-aware, exact: :func:`~attnkit.efficient.tiled.tiled_attention`, O(n^2 d) time, O(n d) memory.
* Local window: :func:`~attnkit.efficient.local.local_attention`, O(n w d). [1]
* Sparse Transformer: :func:`.sparse_transformer_attention`, O(n sqrt(n) d). [1]
* BigBird: :func:`.bigbird_attention`, O(n b (w + g + r) d) for blocks of b. [1]
* Longformer: :func:`~attnkit.efficient.longformer.longformer_attention`, O(n (w + g) d). [1]
* Low rank: :func:`~attnkit.efficient.linformer.linformer_attention`, O(n k d), an approximation.
* Random features: :func:`~attnkit.efficient.performer.favor_attention`, O(n m d), an approximation
  (each kernel value is estimated without bias).
* Kernel (elu + 1): :func:`~attnkit.efficient.kernel.linear_attention`, O(n d^2). [2]

[1] exactly dense attention with the pattern's mask (the builders are public, e.g.
:func:`.sliding_window_mask`). [2] a different model, not an approximation of softmax.
"""

from ._base import EfficientSelfAttention
from .bigbird import BigBirdSelfAttention, bigbird_attention, bigbird_layout, bigbird_mask
from .blocksparse import block_sparse_attention, layout_to_mask
from .full import FullSelfAttention
from .kernel import LinearSelfAttention, elu_feature_map, kernel_attention, linear_attention
from .linformer import LinformerSelfAttention, linformer_attention
from .local import LocalSelfAttention, local_attention, sliding_window_mask
from .longformer import LongformerSelfAttention, longformer_attention, longformer_mask
from .model import ATTENTION_LAYERS, LongRangeClassifier, attention_class, make_self_attention
from .performer import (
    PerformerSelfAttention,
    default_num_features,
    favor_attention,
    orthogonal_gaussian_features,
    positive_random_features,
)
from .sparse_transformer import (
    SparseTransformerSelfAttention,
    fixed_mask,
    sparse_transformer_attention,
    strided_mask,
)
from .tiled import TiledSelfAttention, attention_with_lse, merge_attention_blocks, tiled_attention

__all__ = [
    "ATTENTION_LAYERS",
    "BigBirdSelfAttention",
    "EfficientSelfAttention",
    "FullSelfAttention",
    "LinearSelfAttention",
    "LinformerSelfAttention",
    "LocalSelfAttention",
    "LongRangeClassifier",
    "LongformerSelfAttention",
    "PerformerSelfAttention",
    "SparseTransformerSelfAttention",
    "TiledSelfAttention",
    "attention_class",
    "attention_with_lse",
    "bigbird_attention",
    "bigbird_layout",
    "bigbird_mask",
    "block_sparse_attention",
    "default_num_features",
    "elu_feature_map",
    "favor_attention",
    "fixed_mask",
    "kernel_attention",
    "layout_to_mask",
    "linear_attention",
    "linformer_attention",
    "local_attention",
    "longformer_attention",
    "longformer_mask",
    "make_self_attention",
    "merge_attention_blocks",
    "orthogonal_gaussian_features",
    "positive_random_features",
    "sliding_window_mask",
    "sparse_transformer_attention",
    "strided_mask",
    "tiled_attention",
]

# Adaptive attention span (Sukhbaatar et al., 2019): one learnable span per head.
from .adaptive_span import (
    AdaptiveSpanSelfAttention,
    adaptive_span_attention,
    adaptive_span_flops,
    adaptive_span_mask,
    soft_span_mask,
)

__all__ += [
    "AdaptiveSpanSelfAttention",
    "adaptive_span_attention",
    "adaptive_span_flops",
    "adaptive_span_mask",
    "soft_span_mask",
]

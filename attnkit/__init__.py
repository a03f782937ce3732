"""attnkit: small, exact, tested implementations of attention mechanisms.

The companion package of the book *Self-Attention from First Principles*. Every
mechanism has a functional core working on tensors and a thin ``nn.Module``; masks
follow PyTorch's convention (bool ``True`` = may attend, floating = added to scores).
"""

from .attention import ScaledDotProductAttention, attend, scaled_dot_product_attention
from .decoding import (
    beam_search,
    filter_logits,
    generate,
    gnmt_length_penalty,
    greedy_translate,
    sample_next,
)
from .heads import merge_heads, repeat_kv, split_heads
from .masks import causal_mask, combine_masks, padding_mask, to_additive_mask
from .multihead import KVCache, MultiHeadAttention, set_fused_attention
from .positional import (
    LearnedPositionalEmbedding,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
    alibi_bias,
    alibi_slopes,
    apply_rotary,
    rotary_cos_sin,
    sinusoidal_encoding,
)
from .scoring import (
    AdditiveAttention,
    MultiplicativeAttention,
    additive_scores,
    multiplicative_scores,
)
from .softmax import masked_softmax
from .training import (
    TrainConfig,
    TrainingTimeout,
    TrainResult,
    count_parameters,
    make_optimizer,
    seed_everything,
    train,
    warmup_schedule,
)
from .transformer import (
    FeedForward,
    Seq2SeqTransformer,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
    TransformerLM,
)

__version__ = "0.1.0"

__all__ = [
    "AdditiveAttention",
    "FeedForward",
    "KVCache",
    "LearnedPositionalEmbedding",
    "MultiHeadAttention",
    "MultiplicativeAttention",
    "RotaryEmbedding",
    "ScaledDotProductAttention",
    "Seq2SeqTransformer",
    "SinusoidalPositionalEncoding",
    "TrainConfig",
    "TrainResult",
    "TrainingTimeout",
    "TransformerDecoder",
    "TransformerDecoderLayer",
    "TransformerEncoder",
    "TransformerEncoderLayer",
    "TransformerLM",
    "additive_scores",
    "alibi_bias",
    "alibi_slopes",
    "apply_rotary",
    "attend",
    "beam_search",
    "causal_mask",
    "combine_masks",
    "count_parameters",
    "filter_logits",
    "generate",
    "gnmt_length_penalty",
    "greedy_translate",
    "make_optimizer",
    "masked_softmax",
    "merge_heads",
    "multiplicative_scores",
    "padding_mask",
    "repeat_kv",
    "rotary_cos_sin",
    "sample_next",
    "scaled_dot_product_attention",
    "seed_everything",
    "set_fused_attention",
    "sinusoidal_encoding",
    "split_heads",
    "to_additive_mask",
    "train",
    "warmup_schedule",
]

"""Attention in today's large language models (2023-2026): serving memory (multi-head
latent attention, paged key/value caches), long and streaming contexts, and new forms.

Each mechanism is a functional core on tensors plus a thin ``nn.Module``, tested against a
naive float64 reference.
"""

from .deltanet import DeltaNetAttention, delta_rule_chunkwise, delta_rule_recurrent
from .kv_memory import (
    PUBLISHED,
    KVLayout,
    kv_cache_bytes_per_token,
    kv_cache_elements_per_token,
)
from .lm import DecoderLM, SwiGLU, hybrid_mixer, lm_loss
from .mla import LatentKVCache, MultiHeadLatentAttention, latent_attention
from .paged import PagedKVCache, blocks_needed, paged_attention
from .probe import DecoderTrace, attention_logits, first_token_share, trace_decoder
from .rope_scaling import ROPE_SCALINGS, rope_cos_sin, scaled_rope_frequencies
from .sparse import (
    indexer_scores,
    nsa_attention,
    nsa_masks,
    topk_sparse_attention,
    topk_token_mask,
)
from .streaming import (
    SinkCache,
    recompute_window_logits,
    streaming_logits,
)
from .variants import (
    DifferentialAttention,
    LLMSelfAttention,
    differential_attention,
    differential_lambda_init,
    sigmoid_attention,
    softcap,
)

__all__ = [
    "PUBLISHED",
    "ROPE_SCALINGS",
    "DecoderLM",
    "DecoderTrace",
    "DeltaNetAttention",
    "DifferentialAttention",
    "KVLayout",
    "LLMSelfAttention",
    "LatentKVCache",
    "MultiHeadLatentAttention",
    "PagedKVCache",
    "SinkCache",
    "SwiGLU",
    "attention_logits",
    "blocks_needed",
    "delta_rule_chunkwise",
    "delta_rule_recurrent",
    "differential_attention",
    "differential_lambda_init",
    "first_token_share",
    "hybrid_mixer",
    "indexer_scores",
    "kv_cache_bytes_per_token",
    "kv_cache_elements_per_token",
    "latent_attention",
    "lm_loss",
    "nsa_attention",
    "nsa_masks",
    "paged_attention",
    "recompute_window_logits",
    "rope_cos_sin",
    "scaled_rope_frequencies",
    "sigmoid_attention",
    "softcap",
    "streaming_logits",
    "topk_sparse_attention",
    "topk_token_mask",
    "trace_decoder",
]

"""How many bytes a decoder keeps per token for its key/value cache.

At every decoding step a Transformer decoder attends to the keys and values of all
earlier tokens, so it keeps them: for each layer, each token and each *stored* head, one
key vector and one value vector. The stored size per token is what limits batch size and
context length at serving time, and what multi-query, grouped-query and multi-head latent
attention were designed to shrink:

=====================  =======================================================
attention              elements cached per token and layer
=====================  =======================================================
multi-head (MHA)       ``2 * H * d_head``         (a key and a value per head)
grouped-query (GQA)    ``2 * H_kv * d_head``      (``H_kv`` shared key/value heads)
multi-query (MQA)      ``2 * d_head``             (GQA with ``H_kv = 1``)
multi-head latent      ``d_c + d_rope``           (one latent vector and one shared
(MLA)                                             rotary key; DeepSeek-V2, eq. 9-14)
=====================  =======================================================

Multiply by the number of layers and the bytes of one element (2 for float16/bfloat16)
to get the bytes per token. ``PUBLISHED`` holds the attention shapes of a few open
models, each with the document it was read from.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._validate import check_choice, check_positive_int, check_str

__all__ = ["PUBLISHED", "KVLayout", "kv_cache_bytes_per_token", "kv_cache_elements_per_token"]


@dataclass(frozen=True)
class KVLayout:
    """The attention shape of a decoder, as far as its key/value cache is concerned.

    Args:
        name: a label for tables.
        num_layers: number of decoder layers ``L`` (each keeps its own cache).
        kind: ``"mha"``, ``"gqa"`` (``"mqa"`` is GQA with one key/value head) or ``"mla"``.
        num_heads: query heads ``H``.
        head_dim: ``d_head`` of the cached keys and values (MHA/GQA).
        num_kv_heads: stored key/value heads ``H_kv`` (GQA/MQA; ``H`` for MHA).
        latent_dim: ``d_c``, the size of MLA's compressed key/value vector.
        rope_dim: ``d_h^R``, the size of MLA's shared rotary key.
        source: where the numbers come from (paper table or configuration file).
    """

    name: str
    num_layers: int
    kind: str
    num_heads: int
    head_dim: int = 0
    num_kv_heads: int = 0
    latent_dim: int = 0
    rope_dim: int = 0
    source: str = ""

    def __post_init__(self) -> None:
        check_str(self.name, "name")
        check_str(self.source, "source")
        check_positive_int(self.num_layers, "num_layers")
        check_positive_int(self.num_heads, "num_heads")
        check_choice(self.kind, "kind", ("mha", "gqa", "mla"))
        for field_name in ("head_dim", "num_kv_heads", "latent_dim", "rope_dim"):
            check_positive_int(getattr(self, field_name), field_name, allow_zero=True)
        if self.kind == "mla":
            check_positive_int(self.latent_dim, "latent_dim")
            check_positive_int(self.rope_dim, "rope_dim", allow_zero=True)
        else:
            check_positive_int(self.head_dim, "head_dim")
            kv = self.num_kv_heads or self.num_heads
            check_positive_int(kv, "num_kv_heads")
            if self.kind == "mha" and kv != self.num_heads:
                raise ValueError(
                    f"an 'mha' layout stores every head: num_kv_heads must be num_heads="
                    f"{self.num_heads} (or 0), got {self.num_kv_heads}; use kind='gqa'."
                )
            if self.num_heads % kv:
                raise ValueError(
                    f"num_heads={self.num_heads} must be a multiple of num_kv_heads={kv}."
                )


def kv_cache_elements_per_token(layout: KVLayout) -> int:
    """Cached elements per token, summed over all layers (see the module table)."""
    if not isinstance(layout, KVLayout):
        raise TypeError(f"layout must be a KVLayout, got {type(layout).__name__}.")
    if layout.kind == "mla":
        per_layer = layout.latent_dim + layout.rope_dim
    else:
        per_layer = 2 * (layout.num_kv_heads or layout.num_heads) * layout.head_dim
    return layout.num_layers * per_layer


def kv_cache_bytes_per_token(layout: KVLayout, bytes_per_element: int = 2) -> int:
    """Bytes of key/value cache per token: elements times ``bytes_per_element``
    (2 for float16/bfloat16, 1 for an 8-bit cache, 4 for float32)."""
    bytes_per_element = check_positive_int(bytes_per_element, "bytes_per_element")
    return kv_cache_elements_per_token(layout) * bytes_per_element


PUBLISHED: dict[str, KVLayout] = {
    layout.name: layout
    for layout in (
        KVLayout(
            "Llama 2 7B", 32, "mha", 32, head_dim=128,
            source="config.json of meta-llama/Llama-2-7b-hf (Touvron et al. 2023, Llama 2: "
            "GQA only for 34B and 70B, table 1)",
        ),
        KVLayout(
            "Mistral 7B", 32, "gqa", 32, head_dim=128, num_kv_heads=8,
            source="Jiang et al. 2023, Mistral 7B, table 1",
        ),
        KVLayout(
            "Llama 3 8B", 32, "gqa", 32, head_dim=128, num_kv_heads=8,
            source="Llama Team 2024, The Llama 3 Herd of Models, table 3",
        ),
        KVLayout(
            "Llama 3 70B", 80, "gqa", 64, head_dim=128, num_kv_heads=8,
            source="Llama Team 2024, The Llama 3 Herd of Models, table 3",
        ),
        KVLayout(
            "DeepSeek-V2", 60, "mla", 128, latent_dim=512, rope_dim=64,
            source="DeepSeek-AI 2024, DeepSeek-V2, section 3.1 (model hyper-parameters)",
        ),
        KVLayout(
            "DeepSeek-V3", 61, "mla", 128, latent_dim=512, rope_dim=64,
            source="DeepSeek-AI 2024, DeepSeek-V3 technical report, section 4.2",
        ),
    )
}  # fmt: skip

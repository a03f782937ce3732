"""The queries, keys and values of an ``LLMSelfAttention`` written out with the formulas
(projection, per-head RMSNorm, RoPE): the shared start of the loop references of
``test_llm_variants.py`` and ``test_llm_probe.py``."""

from __future__ import annotations

import torch

import attnkit as ak
from attnkit.llm import LLMSelfAttention


def reference_qkv(
    m: LLMSelfAttention, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``q`` ``(B, T, H, D)``, ``k`` and ``v`` ``(B, T, H_kv, D)`` of ``x`` ``(B, T, d_model)``."""
    B, T, _ = x.shape
    H, D = m.num_heads, m.head_dim
    q = (x @ m.q_proj.weight.T).view(B, T, H, D)
    k = (x @ m.k_proj.weight.T).view(B, T, m.num_kv_heads, D)
    v = (x @ m.v_proj.weight.T).view(B, T, m.num_kv_heads, D)
    if m.q_norm is not None:
        q = q / q.pow(2).mean(-1, keepdim=True).add(1e-6).sqrt() * m.q_norm.weight
        k = k / k.pow(2).mean(-1, keepdim=True).add(1e-6).sqrt() * m.k_norm.weight
    if m.rope_base is not None:
        cos, sin = ak.rotary_cos_sin(T, D, base=m.rope_base, dtype=x.dtype)
        q = ak.apply_rotary(q.transpose(1, 2), cos, sin).transpose(1, 2)
        k = ak.apply_rotary(k.transpose(1, 2), cos, sin).transpose(1, 2)
    return q, k, v

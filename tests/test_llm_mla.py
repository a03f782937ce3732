"""Multi-head latent attention: the explicit and absorbed forms, the cache, the sizes."""

from __future__ import annotations

import math

import pytest
import torch

from attnkit.llm import (
    PUBLISHED,
    KVLayout,
    LatentKVCache,
    MultiHeadLatentAttention,
    kv_cache_bytes_per_token,
    latent_attention,
)


def _mla(q_latent_dim=None, seed=0):
    torch.manual_seed(seed)
    return MultiHeadLatentAttention(
        32, 4, head_dim=8, latent_dim=12, rope_dim=4, q_latent_dim=q_latent_dim
    ).double()


def _naive(m: MultiHeadLatentAttention, x: torch.Tensor) -> torch.Tensor:
    """Token by token and head by head, straight from the equations of the module docstring."""
    B, T, _ = x.shape
    H, d_h, d_r = m.num_heads, m.head_dim, m.rope_dim
    out = torch.zeros(B, T, H * d_h, dtype=x.dtype)
    theta = m.rope_base ** (-torch.arange(0, d_r, 2, dtype=torch.float64) / d_r)

    def rope(v, pos):  # rotate-half layout: pair (j, j + d_r/2)
        half = d_r // 2
        a, b = v[..., :half], v[..., half:]
        c, s = torch.cos(pos * theta), torch.sin(pos * theta)
        return torch.cat([a * c - b * s, b * c + a * s], dim=-1)

    for b in range(B):
        c = [m.w_dkv.weight @ x[b, t] for t in range(T)]
        kr = [rope(m.w_kr.weight @ x[b, t], t) for t in range(T)]
        for t in range(T):
            cq = x[b, t] if m.w_dq is None else m.w_dq.weight @ x[b, t]
            for i in range(H):
                rows = slice(i * d_h, (i + 1) * d_h)
                q = torch.cat(
                    [
                        m.w_uq.weight[rows] @ cq,
                        rope((m.w_qr.weight @ cq)[i * d_r : (i + 1) * d_r], t),
                    ]
                )
                keys = [torch.cat([m.w_uk.weight[rows] @ c[j], kr[j]]) for j in range(t + 1)]
                vals = [m.w_uv.weight[rows] @ c[j] for j in range(t + 1)]
                s = torch.stack([q @ k for k in keys]) / math.sqrt(d_h + d_r)
                p = torch.softmax(s, dim=0)
                out[b, t, rows] = sum(p[j] * vals[j] for j in range(t + 1))
    return out @ m.w_o.weight.T


@pytest.mark.parametrize("q_latent_dim", [None, 10])
def test_explicit_form_matches_the_equations(q_latent_dim):
    m = _mla(q_latent_dim)
    x = torch.randn(2, 5, 32, dtype=torch.float64)
    torch.testing.assert_close(m(x), _naive(m, x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("q_latent_dim", [None, 10])
def test_absorbed_form_equals_explicit_form(q_latent_dim):
    m = _mla(q_latent_dim, seed=1)
    x = torch.randn(3, 7, 32, dtype=torch.float64)
    torch.testing.assert_close(m(x, absorb=True), m(x), rtol=0, atol=1e-12)


def test_decoding_with_the_latent_cache_equals_the_full_forward():
    m = _mla(seed=2)
    x = torch.randn(2, 6, 32, dtype=torch.float64)
    full = m(x)
    cache = LatentKVCache()
    steps = [m(x[:, :3], cache=cache, absorb=True)]
    steps += [m(x[:, t : t + 1], cache=cache, absorb=True) for t in range(3, 6)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=0, atol=1e-12)
    assert len(cache) == 6
    assert cache.nbytes == 2 * 6 * (12 + 4) * 8 == 2 * 6 * m.cache_elements_per_token() * 8


def test_gradcheck_both_forms():
    g = torch.Generator().manual_seed(3)
    B, H, T, d_h, d_r, d_c = 1, 2, 3, 3, 2, 4
    args = [
        torch.randn(B, H, T, d_h, generator=g, dtype=torch.float64, requires_grad=True),
        torch.randn(B, H, T, d_r, generator=g, dtype=torch.float64, requires_grad=True),
        torch.randn(B, T, d_c, generator=g, dtype=torch.float64, requires_grad=True),
        torch.randn(B, T, d_r, generator=g, dtype=torch.float64, requires_grad=True),
        torch.randn(H, d_h, d_c, generator=g, dtype=torch.float64, requires_grad=True),
        torch.randn(H, d_h, d_c, generator=g, dtype=torch.float64, requires_grad=True),
    ]
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    for absorb in (False, True):
        assert torch.autograd.gradcheck(
            lambda *a, absorb=absorb: latent_attention(*a, mask, absorb=absorb), args
        )


def test_latent_attention_rejects_mismatched_shapes():
    q_c = torch.randn(1, 2, 3, 4)
    q_r = torch.randn(1, 2, 3, 2)
    c = torch.randn(1, 5, 6)
    k_r = torch.randn(1, 5, 2)
    w = torch.randn(2, 4, 6)
    with pytest.raises(ValueError, match="w_uk"):
        latent_attention(q_c, q_r, c, k_r, torch.randn(2, 4, 7), w)
    with pytest.raises(ValueError, match="k_r"):
        latent_attention(q_c, q_r, c, torch.randn(1, 4, 2), w, w)
    with pytest.raises(TypeError, match="absorb"):
        latent_attention(q_c, q_r, c, k_r, w, w, absorb="yes")


def test_published_cache_sizes():
    # Elements per token and layer: 2 * H_kv * d_head, or d_c + d_r for MLA.
    llama3_8b = PUBLISHED["Llama 3 8B"]
    assert kv_cache_bytes_per_token(llama3_8b) == 32 * 2 * 8 * 128 * 2 == 131072
    assert kv_cache_bytes_per_token(PUBLISHED["Llama 3 70B"]) == 80 * 2 * 8 * 128 * 2
    assert kv_cache_bytes_per_token(PUBLISHED["DeepSeek-V2"]) == 60 * 576 * 2
    # DeepSeek-V2, section 2.1.4 (table 1): MLA caches as much as GQA with 2.25 groups.
    v2 = PUBLISHED["DeepSeek-V2"]
    per_layer = kv_cache_bytes_per_token(v2, 1) / v2.num_layers
    assert per_layer / (2 * 128) == 2.25
    assert kv_cache_bytes_per_token(PUBLISHED["Llama 2 7B"], 1) == 32 * 2 * 32 * 128


def test_kv_layout_rejects_bad_values():
    with pytest.raises(ValueError, match="kind"):
        KVLayout("x", 2, "mqa", 4, head_dim=8)
    with pytest.raises(ValueError, match="num_kv_heads"):
        KVLayout("x", 2, "gqa", 4, head_dim=8, num_kv_heads=3)
    with pytest.raises(ValueError, match="latent_dim"):
        KVLayout("x", 2, "mla", 4)
    with pytest.raises(TypeError, match="layout"):
        kv_cache_bytes_per_token("Llama")

"""Streaming with a rolling cache and attention sinks, explicit positions, ALiBi and RoPE
scaling in LLMSelfAttention: each against a float64 reference written out here."""

from __future__ import annotations

import math

import pytest
import torch

import attnkit as ak
from attnkit.llm import (
    DecoderLM,
    LLMSelfAttention,
    SinkCache,
    recompute_window_logits,
    scaled_rope_frequencies,
    streaming_logits,
)


def _model(num_layers: int, seed: int, **attn) -> DecoderLM:
    torch.manual_seed(seed)
    model = DecoderLM(11, 16, num_layers, lambda i: LLMSelfAttention(16, 4, **attn), d_ff=24)
    for p in model.parameters():  # larger weights than the 0.02 init: sharper attention
        torch.nn.init.normal_(p, std=0.4)
    return model.double().eval()


def _kept(t: int, window: int, num_sinks: int) -> list[int]:
    """Stream indices kept after token t arrived: the first num_sinks, the last window."""
    if t + 1 <= num_sinks + window:
        return list(range(t + 1))
    return list(range(num_sinks)) + list(range(t - window + 1, t + 1))


def _rot(vec: torch.Tensor, pos: int, theta: torch.Tensor) -> torch.Tensor:
    """RoPE of one vector (rotate-half layout), written out."""
    a = pos * theta
    half = vec.shape[-1] // 2
    x1, x2 = vec[:half], vec[half:]
    return torch.cat((x1 * a.cos() - x2 * a.sin(), x2 * a.cos() + x1 * a.sin()))


def _naive_streaming(model: DecoderLM, idx: torch.Tensor, window: int, num_sinks: int):
    """Keep every token's unrotated key and value per layer; at step t select the kept
    ones, rotate them with RoPE at positions 0..n-1 and attend head by head with loops."""
    B, N = idx.shape
    store = [([], []) for _ in model.blocks]  # per layer: lists of (B, H, D) keys, values
    logits = []
    for t in range(N):
        kept = _kept(t, window, num_sinks)
        x = model.embed(idx[:, t])  # (B, d)
        for block, (ks, vs) in zip(model.blocks, store, strict=True):
            m = block.mixer
            h = block.mixer_norm(x)
            H, D = m.num_heads, m.head_dim
            q = (h @ m.q_proj.weight.T).view(B, H, D)
            ks.append((h @ m.k_proj.weight.T).view(B, H, D))
            vs.append((h @ m.v_proj.weight.T).view(B, H, D))
            n = len(kept)
            theta = m.rope_base ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)
            out = torch.zeros(B, H, D, dtype=torch.float64)
            for b in range(B):
                for hd in range(H):
                    qr = _rot(q[b, hd], n - 1, theta)
                    s = torch.stack(
                        [_rot(ks[j][b, hd], slot, theta) @ qr for slot, j in enumerate(kept)]
                    ) / math.sqrt(D)
                    w = torch.softmax(s, 0)
                    out[b, hd] = sum(w[slot] * vs[j][b, hd] for slot, j in enumerate(kept))
            x = x + out.reshape(B, H * D) @ m.out_proj.weight.T
            x = x + block.ffn(block.ffn_norm(x))
        logits.append(model.head(model.norm(x)))
    return torch.stack(logits, 1)


@pytest.mark.parametrize(("window", "num_sinks"), [(3, 0), (3, 2), (5, 1)])
def test_streaming_matches_a_naive_reference(window, num_sinks):
    model = _model(2, seed=window + num_sinks)
    idx = torch.randint(0, 11, (2, 13), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = streaming_logits(model, idx, window=window, num_sinks=num_sinks)
        want = _naive_streaming(model, idx, window, num_sinks)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_one_layer_streaming_equals_rerunning_on_the_kept_tokens():
    """One layer: the cached keys depend on their token only, so step t equals running the
    layer on the kept tokens at positions 0..n-1 (what StreamingLLM assigns)."""
    model = _model(1, seed=3)
    idx = torch.randint(0, 11, (1, 20), generator=torch.Generator().manual_seed(2))
    got = streaming_logits(model, idx, window=4, num_sinks=2)
    block = model.blocks[0]
    with torch.no_grad():
        for t in range(idx.shape[1]):
            kept = torch.tensor(_kept(t, 4, 2))
            x = model.embed(idx[:, kept])  # (1, n, d)
            x = x + block.mixer(block.mixer_norm(x), positions=torch.arange(len(kept)))
            x = x + block.ffn(block.ffn_norm(x))
            want = model.head(model.norm(x))[:, -1]
            torch.testing.assert_close(got[:, t], want, rtol=0, atol=1e-12)


def test_streaming_before_eviction_is_the_full_model():
    model = _model(3, seed=4, num_kv_heads=2, qk_norm=True)
    idx = torch.randint(0, 11, (2, 9), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(
            streaming_logits(model, idx, window=7, num_sinks=2), model(idx), rtol=0, atol=1e-12
        )


def test_alibi_streaming_before_eviction_is_the_full_model():
    model = _model(2, seed=5, rope_base=None, alibi=True)
    idx = torch.randint(0, 11, (1, 8), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(
            streaming_logits(model, idx, window=8), model(idx), rtol=0, atol=1e-12
        )


def test_recompute_window_logits_reruns_each_window():
    model = _model(2, seed=6)
    idx = torch.randint(0, 11, (2, 12), generator=torch.Generator().manual_seed(5))
    got = recompute_window_logits(model, idx, window=5, batch_size=3)
    with torch.no_grad():
        for t in range(12):
            want = model(idx[:, max(0, t - 4) : t + 1])[:, -1]
            torch.testing.assert_close(got[:, t], want, rtol=0, atol=1e-12)
    short = recompute_window_logits(model, idx[:, :4], window=5)
    torch.testing.assert_close(short, model(idx[:, :4]), rtol=0, atol=1e-12)


def test_sink_cache_keeps_the_first_sinks_and_the_last_window():
    cache = SinkCache(window=3, num_sinks=2)
    for t in range(9):
        kv = torch.full((1, 1, 1, 2), float(t))
        cache.append(kv, kv)
        assert cache.token_index.tolist() == _kept(t, 3, 2)
        assert len(cache) <= cache.capacity == 5
        assert cache.keys[0, 0, :, 0].tolist() == [float(i) for i in _kept(t, 3, 2)]
    assert cache.positions().tolist() == [0, 1, 2, 3, 4]
    chunk = SinkCache(window=2, num_sinks=1)
    chunk.append(torch.zeros(1, 1, 6, 2), torch.zeros(1, 1, 6, 2))
    assert chunk.token_index.tolist() == [0, 4, 5]
    with pytest.raises(ValueError, match="k must have shape"):
        chunk.append(torch.zeros(1, 2, 1, 2), torch.zeros(1, 2, 1, 2))
    with pytest.raises(ValueError, match="window"):
        SinkCache(0)


def test_explicit_positions_shift_rope_but_not_relative_scores():
    """RoPE scores depend on differences of positions: shifting all by 7 changes nothing;
    ALiBi likewise; compressing positions (PI by hand) changes the output."""
    torch.manual_seed(7)
    x = torch.randn(2, 6, 16, dtype=torch.float64)
    for opts in ({}, {"rope_base": None, "alibi": True}):
        m = LLMSelfAttention(16, 4, **opts).double()
        torch.testing.assert_close(m(x, positions=torch.arange(6) + 7), m(x), rtol=0, atol=1e-12)
    m = LLMSelfAttention(16, 4).double()
    assert (m(x, positions=torch.arange(6) / 2) - m(x)).abs().max() > 1e-3


def test_alibi_layer_matches_the_bias_of_attnkit():
    torch.manual_seed(8)
    m = LLMSelfAttention(16, 4, rope_base=None, alibi=True).double()
    x = torch.randn(2, 7, 16, dtype=torch.float64)
    q, k, v = (ak.split_heads(p(x), 4) for p in (m.q_proj, m.k_proj, m.v_proj))
    mask = ak.combine_masks(ak.causal_mask(7), ak.alibi_bias(4, 7, dtype=torch.float64))
    want = m.out_proj(ak.merge_heads(ak.scaled_dot_product_attention(q, k, v, mask)))
    torch.testing.assert_close(m(x), want, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="alibi"):
        LLMSelfAttention(16, 4, alibi=True)


@pytest.mark.parametrize("method", ["pi", "ntk", "yarn"])
def test_rope_scaling_uses_the_scaled_frequencies(method):
    torch.manual_seed(9)
    m = LLMSelfAttention(16, 2, rope_base=100.0).double()
    x = torch.randn(1, 9, 16, dtype=torch.float64)
    plain = m(x)
    m.set_rope_scaling(method, 4.0, original_length=8, beta=4.0)
    theta, scale = scaled_rope_frequencies(
        8, base=100.0, method=method, factor=4.0, original_length=8, beta=4.0
    )
    q, k, v = (ak.split_heads(p(x), 2) for p in (m.q_proj, m.k_proj, m.v_proj))
    angles = torch.outer(torch.arange(9, dtype=torch.float64), theta).repeat(1, 2)  # (T, D)
    q, k = (ak.apply_rotary(t, angles.cos(), angles.sin()) for t in (q, k))
    s = q @ k.transpose(-2, -1) / math.sqrt(8) * scale
    w = torch.softmax(s.masked_fill(~ak.causal_mask(9), -math.inf), -1)
    torch.testing.assert_close(m(x), m.out_proj(ak.merge_heads(w @ v)), rtol=0, atol=1e-12)
    assert (m(x) - plain).abs().max() > 1e-4
    m.set_rope_scaling()
    torch.testing.assert_close(m(x), plain, rtol=0, atol=0)
    with pytest.raises(ValueError, match="RoPE"):
        LLMSelfAttention(16, 2, rope_base=None).set_rope_scaling("pi", 2.0)


def test_streaming_gradcheck_free_inputs_are_validated():
    model = _model(1, seed=11)
    with pytest.raises(TypeError, match="model"):
        streaming_logits(torch.nn.Linear(2, 2), torch.zeros(1, 2, dtype=torch.long), window=2)
    with pytest.raises(ValueError, match="window"):
        streaming_logits(model, torch.zeros(1, 2, dtype=torch.long), window=0)
    with pytest.raises(ValueError, match="positions"):
        model.blocks[0].mixer(torch.zeros(1, 3, 16, dtype=torch.float64), positions=torch.arange(4))
    sig = DecoderLM(5, 8, 1, lambda i: LLMSelfAttention(8, 2, score="sigmoid"))
    with pytest.raises(ValueError, match="softmax"):
        streaming_logits(sig, torch.zeros(1, 2, dtype=torch.long), window=2)


def test_alibi_and_scaled_rope_layers_have_gradients():
    torch.manual_seed(12)
    x = torch.randn(1, 5, 8, dtype=torch.float64, requires_grad=True)
    for m in (
        LLMSelfAttention(8, 2, rope_base=None, alibi=True).double(),
        LLMSelfAttention(8, 2).double(),
    ):
        if m.rope_base is not None:
            m.set_rope_scaling("yarn", 2.0, original_length=4, beta=4.0)
        assert torch.autograd.gradcheck(lambda t, m=m: m(t, positions=torch.arange(5) + 3), (x,))

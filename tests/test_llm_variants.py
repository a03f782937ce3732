"""QK-norm, soft-capping, output gates, sigmoid and differential attention, windows and
sinks: each option of LLMSelfAttention against an independent float64 reference."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from llm_reference import reference_qkv

import attnkit as ak
from attnkit.llm import (
    DifferentialAttention,
    LLMSelfAttention,
    differential_attention,
    differential_lambda_init,
    sigmoid_attention,
    softcap,
)


def _reference(m: LLMSelfAttention, x: torch.Tensor) -> torch.Tensor:
    """Loop over heads, queries and keys with the formulas written out."""
    B, T, _ = x.shape
    H, D = m.num_heads, m.head_dim
    q, k, v = reference_qkv(m, x)  # (B, T, H, D), (B, T, H_kv, D) x 2
    out = torch.zeros(B, T, H, D, dtype=x.dtype)
    for b in range(B):
        for h in range(H):
            g = h // (H // m.num_kv_heads)
            for i in range(T):
                keys = [
                    j for j in range(i + 1)
                    if m.window is None or i - j < m.window or j < m.num_sinks
                ]  # fmt: skip
                s = torch.stack([q[b, i, h] @ k[b, j, g] for j in keys]) / math.sqrt(D)
                if m.softcap is not None:
                    s = m.softcap * torch.tanh(s / m.softcap)
                w = torch.softmax(s, 0) if m.score == "softmax" else torch.sigmoid(s - math.log(T))
                out[b, i, h] = sum(w[n] * v[b, j, g] for n, j in enumerate(keys))
    if m.gate is not None:
        out = out * torch.sigmoid(x @ m.gate.weight.T + m.gate.bias).view(B, T, H, D)
    return out.reshape(B, T, H * D) @ m.out_proj.weight.T


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"num_kv_heads": 1},
        {"qk_norm": True},
        {"softcap": 2.0},
        {"output_gate": True},
        {"score": "sigmoid"},
        {"window": 3},
        {"window": 3, "num_sinks": 2},
        {
            "rope_base": None,
            "qk_norm": True,
            "softcap": 5.0,
            "output_gate": True,
            "num_kv_heads": 2,
        },
    ],
)
def test_each_option_matches_the_reference(options):
    torch.manual_seed(0)
    m = LLMSelfAttention(16, 4, **options).double()
    if m.q_norm is not None:  # non-trivial gains
        torch.nn.init.uniform_(m.q_norm.weight, 0.5, 1.5)
        torch.nn.init.uniform_(m.k_norm.weight, 0.5, 1.5)
    x = torch.randn(2, 7, 16, dtype=torch.float64) * 3
    torch.testing.assert_close(m(x), _reference(m, x), rtol=0, atol=1e-12)


def test_default_layer_equals_torch_sdpa():
    torch.manual_seed(1)
    m = LLMSelfAttention(16, 4, rope_base=None).double()
    x = torch.randn(2, 9, 16, dtype=torch.float64)
    q, k, v = (ak.split_heads(p(x), 4) for p in (m.q_proj, m.k_proj, m.v_proj))
    want = m.out_proj(ak.merge_heads(F.scaled_dot_product_attention(q, k, v, is_causal=True)))
    torch.testing.assert_close(m(x), want, rtol=0, atol=1e-12)


def test_window_and_sink_mask():
    m = LLMSelfAttention(8, 2, window=2, num_sinks=1)
    want = torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 0, 1, 1]], dtype=torch.bool)
    assert torch.equal(m.mask(4), want)


def test_softcap_bounds_and_keeps_small_logits():
    s = torch.tensor([-1e4, -0.01, 0.0, 0.01, 1e4], dtype=torch.float64)
    capped = softcap(s, 50.0)
    assert bool((capped.abs() <= 50).all())
    torch.testing.assert_close(capped[1:4], s[1:4], rtol=1e-7, atol=0)


def test_sigmoid_attention_formula_and_mask():
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(2, 5, 4, generator=g, dtype=torch.float64) for _ in range(3))
    mask = ak.causal_mask(5)
    got = sigmoid_attention(q, k, v, mask)
    w = torch.sigmoid(q @ k.transpose(-2, -1) / 2 - math.log(5)) * mask
    torch.testing.assert_close(got, w @ v, rtol=0, atol=1e-14)
    with pytest.raises(TypeError, match="bool"):
        sigmoid_attention(q, k, v, mask.double())


def test_differential_attention_is_a_difference_of_two_softmax_maps():
    g = torch.Generator().manual_seed(3)
    q1, k1, q2, k2 = (torch.randn(3, 4, generator=g, dtype=torch.float64) for _ in range(4))
    v = torch.randn(3, 8, generator=g, dtype=torch.float64)
    a1 = torch.softmax(q1 @ k1.T / 2, -1)
    a2 = torch.softmax(q2 @ k2.T / 2, -1)
    torch.testing.assert_close(differential_attention(q1, k1, q2, k2, v, 0.3), (a1 - 0.3 * a2) @ v)
    assert differential_lambda_init(1) == pytest.approx(0.2)
    assert differential_lambda_init(40) == pytest.approx(0.8, abs=1e-5)


def test_differential_module_is_causal_and_has_the_papers_lambda():
    torch.manual_seed(4)
    m = DifferentialAttention(16, 2, layer=3).double()
    x = torch.randn(1, 6, 16, dtype=torch.float64)
    y = m(x)
    x2 = x.clone()
    x2[:, 4:] = 0
    torch.testing.assert_close(m(x2)[:, :4], y[:, :4], rtol=0, atol=1e-12)
    lam = (
        torch.exp(m.lambda_q1 @ m.lambda_k1) - torch.exp(m.lambda_q2 @ m.lambda_k2)
        + 0.8 - 0.6 * math.exp(-0.6)
    )  # fmt: skip
    torch.testing.assert_close(m.lam(), lam)


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="score"):
        LLMSelfAttention(8, 2, score="relu")
    with pytest.raises(TypeError, match="qk_norm"):
        LLMSelfAttention(8, 2, qk_norm="yes")
    with pytest.raises(ValueError, match="window"):
        LLMSelfAttention(8, 2, window=0)
    with pytest.raises(ValueError, match="cap"):
        softcap(torch.zeros(2), -1.0)

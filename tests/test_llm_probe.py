"""attnkit.llm.probe: attention logits and weights read out of a DecoderLM, against the
model's own forward pass and a float64 reference written with the formulas."""

from __future__ import annotations

import math

import pytest
import torch
from llm_reference import reference_qkv

import attnkit as ak
from attnkit import llm
from attnkit.llm.probe import DecoderTrace, attention_logits, first_token_share, trace_decoder


def _reference_logits(m: llm.LLMSelfAttention, x: torch.Tensor) -> torch.Tensor:
    """Per head and pair of positions, with RMSNorm, RoPE and the cap written out."""
    B, T, _ = x.shape
    H, D = m.num_heads, m.head_dim
    q, k, _ = reference_qkv(m, x)  # (B, T, H, D), (B, T, H_kv, D)
    out = torch.empty(B, H, T, T, dtype=x.dtype)
    for b in range(B):
        for h in range(H):
            g = h // (H // m.num_kv_heads)
            for i in range(T):
                for j in range(T):
                    s = q[b, i, h] @ k[b, j, g] / math.sqrt(D)
                    if m.softcap is not None:
                        s = m.softcap * torch.tanh(s / m.softcap)
                    out[b, h, i, j] = s
    return out


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"qk_norm": True},
        {"softcap": 1.5},
        {"num_kv_heads": 2, "qk_norm": True, "softcap": 3.0, "output_gate": True},
        {"rope_base": None, "window": 3, "num_sinks": 1},
    ],
)
def test_attention_logits_match_the_reference_and_the_layer_weights(options):
    torch.manual_seed(0)
    m = llm.LLMSelfAttention(16, 4, **options).double()
    if m.q_norm is not None:
        torch.nn.init.uniform_(m.q_norm.weight, 0.5, 1.5)
        torch.nn.init.uniform_(m.k_norm.weight, 0.5, 1.5)
    x = torch.randn(2, 7, 16, dtype=torch.float64) * 3
    logits = attention_logits(m, x)
    torch.testing.assert_close(logits, _reference_logits(m, x), rtol=0, atol=1e-12)
    _, weights = m(x, return_weights=True)
    torch.testing.assert_close(ak.masked_softmax(logits, m.mask(7)), weights, rtol=0, atol=1e-15)
    if m.softcap is not None:
        assert logits.abs().max() < m.softcap


def test_qk_norm_bounds_the_logits_by_the_gains():
    # |q_hat . k_hat| <= |q_hat| |k_hat| = sqrt(D) g_q sqrt(D) g_k for unit gains times g
    torch.manual_seed(1)
    m = llm.LLMSelfAttention(16, 2, qk_norm=True, rope_base=None).double()
    with torch.no_grad():
        m.q_proj.weight.mul_(1e3)  # huge projections: without the norm, huge logits
        m.k_proj.weight.mul_(1e3)
    x = torch.randn(1, 9, 16, dtype=torch.float64)
    D = m.head_dim
    assert attention_logits(m, x).abs().max() <= D / math.sqrt(D) + 1e-9


def _model(mixers):
    return llm.DecoderLM(11, 16, len(mixers), lambda i: mixers[i]).double()


def test_trace_decoder_computes_what_the_model_computes():
    torch.manual_seed(2)
    model = _model(
        [
            llm.LLMSelfAttention(16, 2, qk_norm=True),
            llm.DeltaNetAttention(16, 2, chunk_size=4),
            llm.LLMSelfAttention(16, 2, output_gate=True, softcap=4.0),
        ]
    )
    idx = torch.randint(0, 11, (3, 10))
    with torch.no_grad():
        trace = trace_decoder(model, idx)
        want = model(idx)
    assert isinstance(trace, DecoderTrace)
    torch.testing.assert_close(trace.output, want, rtol=0, atol=0)
    assert [s is None for s in trace.scores] == [False, True, False]
    assert [w is None for w in trace.weights] == [False, True, False]
    for w in (trace.weights[0], trace.weights[2]):
        assert w.shape == (3, 2, 10, 10)
        torch.testing.assert_close(w.sum(-1), torch.ones(3, 2, 10, dtype=torch.float64))
    allowed = [
        s.masked_fill(~m, 0).abs().max().item()
        for s, m in ((trace.scores[0], trace.masks[0]), (trace.scores[2], trace.masks[2]))
    ]
    assert trace.max_logit() == max(allowed)


def test_trace_max_logit_ignores_masked_positions_and_is_nan_without_attention():
    torch.manual_seed(3)
    model = _model([llm.LLMSelfAttention(16, 2, rope_base=None)])
    idx = torch.randint(0, 11, (1, 6))
    with torch.no_grad():
        trace = trace_decoder(model, idx)
        trace.scores[0][..., 0, 5] = 1e9  # a future key: masked, must not count
    assert trace.max_logit() < 1e3
    linear = _model([llm.DeltaNetAttention(16, 2)])
    with torch.no_grad():
        assert math.isnan(trace_decoder(linear, idx).max_logit())


def test_first_token_share():
    T = 6
    uniform = ak.masked_softmax(torch.zeros(2, 3, T, T), ak.causal_mask(T))
    got = first_token_share(uniform)
    want = sum(1 / (t + 1) for t in range(1, T)) / (T - 1)
    torch.testing.assert_close(got, torch.full((3,), want))
    sink = torch.zeros(1, 1, T, T)
    sink[..., 0] = 1.0
    torch.testing.assert_close(first_token_share(sink), torch.ones(1))
    torch.testing.assert_close(
        first_token_share(uniform, start=0)[0], torch.tensor(sum(1 / (t + 1) for t in range(T)) / T)
    )


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: attention_logits(torch.nn.Linear(2, 2), torch.zeros(1, 2, 2)), "attn"),
        (lambda: attention_logits(llm.LLMSelfAttention(8, 2), torch.zeros(1, 2, 4)), "x"),
        (lambda: trace_decoder(torch.nn.Linear(2, 2), torch.zeros(1, 2).long()), "model"),
        (lambda: first_token_share(torch.zeros(1, 2, 3, 4)), "weights"),
        (lambda: first_token_share(torch.zeros(1, 2, 3, 3), start=3), "start"),
    ],
)
def test_bad_input_names_the_argument(call, match):
    with pytest.raises((TypeError, ValueError), match=match):
        call()


def test_attention_logits_gradcheck():
    torch.manual_seed(4)
    m = llm.LLMSelfAttention(8, 2, qk_norm=True, softcap=3.0).double()
    x = torch.randn(1, 4, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: attention_logits(m, t), (x,))


@pytest.mark.parametrize("kind", ["alibi", "yarn"])
def test_attention_logits_of_alibi_and_scaled_rope_layers_are_the_layers_own(kind):
    torch.manual_seed(3)
    if kind == "alibi":
        m = llm.LLMSelfAttention(16, 4, rope_base=None, alibi=True).double()
    else:
        m = llm.LLMSelfAttention(16, 4).double()
        m.set_rope_scaling("yarn", 4.0, 4, beta=4.0)
        assert m.logit_scale != 1.0
    x = torch.randn(2, 9, 16, dtype=torch.float64)
    logits = attention_logits(m, x)
    _, weights = m(x, return_weights=True)
    torch.testing.assert_close(ak.masked_softmax(logits, m.mask(9)), weights, rtol=0, atol=1e-15)
    plain = llm.LLMSelfAttention(16, 4, rope_base=None if kind == "alibi" else 10000.0).double()
    plain.load_state_dict(m.state_dict())
    assert not torch.allclose(attention_logits(plain, x), logits)  # the bias/scaling counts

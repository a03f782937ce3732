"""attnkit.llm.lm: the small decoder LM, checked against Hugging Face's Llama with copied
weights, for causality, and for its input checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from attnkit.llm import (
    DecoderLM,
    DeltaNetAttention,
    LLMSelfAttention,
    hybrid_mixer,
    lm_loss,
)


def _attn_lm(vocab=50, d=32, layers=2, heads=4, kv_heads=2, **kw) -> DecoderLM:
    return DecoderLM(
        vocab, d, layers, lambda i: LLMSelfAttention(d, heads, num_kv_heads=kv_heads, **kw), d_ff=48
    )


def test_matches_hugging_face_llama_with_copied_weights():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=50,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        rms_norm_eps=1e-6,
        rope_theta=10000.0,
        max_position_embeddings=64,
        tie_word_embeddings=True,
        attention_bias=False,
        mlp_bias=False,
    )
    ref = transformers.LlamaForCausalLM(cfg).double().eval()
    ours = _attn_lm().double().eval()
    with torch.no_grad():
        ours.embed.weight.copy_(ref.model.embed_tokens.weight)
        ours.norm.weight.copy_(ref.model.norm.weight)
        for blk, layer in zip(ours.blocks, ref.model.layers, strict=True):
            a, m = layer.self_attn, layer.mlp
            blk.mixer_norm.weight.copy_(layer.input_layernorm.weight)
            blk.ffn_norm.weight.copy_(layer.post_attention_layernorm.weight)
            blk.mixer.q_proj.weight.copy_(a.q_proj.weight)
            blk.mixer.k_proj.weight.copy_(a.k_proj.weight)
            blk.mixer.v_proj.weight.copy_(a.v_proj.weight)
            blk.mixer.out_proj.weight.copy_(a.o_proj.weight)
            blk.ffn.w1.weight.copy_(m.gate_proj.weight)
            blk.ffn.w3.weight.copy_(m.up_proj.weight)
            blk.ffn.w2.weight.copy_(m.down_proj.weight)
    idx = torch.randint(0, 50, (3, 17))
    with torch.no_grad():
        expected = ref(idx).logits
        got = ours(idx)
    assert got.shape == (3, 17, 50)
    # Hugging Face's Llama computes RMSNorm and the RoPE angles in float32 even in a float64
    # model (LlamaRMSNorm and LlamaRotaryEmbedding cast to float), attnkit in float64, so
    # the logits agree to float32 round-off (~1e-7), no closer.
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["attn", "delta", "hybrid"])
def test_causal_and_tied(kind):
    torch.manual_seed(1)
    d = 16
    factories = {
        "attn": lambda: LLMSelfAttention(d, 2),
        "delta": lambda: DeltaNetAttention(d, 2),
    }
    pattern = {"attn": ["attn"], "delta": ["delta"], "hybrid": ["delta", "delta", "attn"]}[kind]
    model = DecoderLM(30, d, 3, hybrid_mixer(pattern, factories)).double().eval()
    assert model.head.weight is model.embed.weight
    names = [type(b.mixer).__name__ for b in model.blocks]
    expected = {"attn": "LLMSelfAttention", "delta": "DeltaNetAttention"}
    assert names == [expected[pattern[i % len(pattern)]] for i in range(3)]
    idx = torch.randint(0, 30, (2, 12))
    changed = idx.clone()
    changed[:, 7:] = (changed[:, 7:] + 1) % 30
    with torch.no_grad():
        a, b = model(idx), model(changed)
    torch.testing.assert_close(a[:, :7], b[:, :7])
    assert not torch.allclose(a[:, 7:], b[:, 7:])


def test_lm_loss_is_next_token_cross_entropy_and_trains():
    torch.manual_seed(2)
    model = _attn_lm(vocab=20, d=16, layers=1, heads=2, kv_heads=2)
    batch = torch.randint(0, 20, (4, 9))
    logits = model(batch[:, :-1])
    expected = nn.functional.cross_entropy(logits.reshape(-1, 20), batch[:, 1:].reshape(-1))
    torch.testing.assert_close(lm_loss(model, batch), expected)
    # at initialisation (std 0.02, tied) the loss is close to ln(vocab)
    assert abs(lm_loss(model, batch).item() - torch.log(torch.tensor(20.0)).item()) < 0.1
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    fixed = torch.arange(9).repeat(4, 1) % 20  # a sequence it can memorise
    first = lm_loss(model, fixed).item()
    for _ in range(100):
        opt.zero_grad()
        lm_loss(model, fixed).backward()
        opt.step()
    assert lm_loss(model, fixed).item() < 0.2 * first


def test_bad_input_is_named():
    with pytest.raises(TypeError, match="mixer"):
        DecoderLM(10, 8, 2, mixer=None)
    with pytest.raises(TypeError, match=r"mixer\(0\)"):
        DecoderLM(10, 8, 2, mixer=lambda i: "attention")
    with pytest.raises(ValueError, match="num_layers"):
        DecoderLM(10, 8, 0, mixer=lambda i: nn.Identity())
    with pytest.raises(TypeError, match="tie_embeddings"):
        DecoderLM(10, 8, 1, mixer=lambda i: nn.Identity(), tie_embeddings=1)
    model = DecoderLM(10, 8, 1, mixer=lambda i: nn.Identity())
    with pytest.raises(ValueError, match=r"idx must hold ids in \[0, 10\)"):
        model(torch.tensor([[3, 10]]))
    with pytest.raises(TypeError, match="idx must hold integer ids"):
        model(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="idx must have 2 dimensions"):
        model(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="batch must have shape"):
        lm_loss(model, torch.tensor([[1]]))
    with pytest.raises(ValueError, match="have no factory"):
        hybrid_mixer(["attn", "ssm"], {"attn": nn.Identity})
    with pytest.raises(TypeError, match="pattern"):
        hybrid_mixer("attn", {"attn": nn.Identity})
    with pytest.raises(TypeError, match="factories"):
        hybrid_mixer(["attn"], [nn.Identity])

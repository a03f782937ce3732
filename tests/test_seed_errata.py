"""Numerical evidence for the errata page of the source text (``book/errata.md``).

Each test computes what the seed text claims and what is true, and asserts that they
differ where the seed says they agree (or that the seed's numbers are impossible). The
page shows each test with ``literalinclude``; the test names follow the erratum slugs.
All tests are small (a few hundred numbers); the file runs in a few seconds, most of
it PyTorch's one-time start-up of its FLOP counter.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import attnkit as ak
from attnkit.efficient.linformer import linformer_attention
from attnkit.models.bert import BertConfig, BertForPreTraining
from attnkit.models.span_qa import SpanQATransformer, best_span
from attnkit.models.vit import ViT, ViTConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def matmul_flops(fn, *args, **kwargs) -> int:
    """FLOPs of the matrix products run by ``fn`` (2 per multiply-add), counted by PyTorch."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn(*args, **kwargs)
    return counter.get_total_flops()


def test_erratum_scale():
    """E1: the scale is 1/sqrt(d_k) (key width), not the reciprocal of the sequence length."""
    g = torch.Generator().manual_seed(0)
    d_k = 64
    q = torch.randn(1, d_k, generator=g, dtype=torch.float64)  # one query
    k = torch.randn(100, d_k, generator=g, dtype=torch.float64)  # 100 keys
    v = torch.randn(100, 8, generator=g, dtype=torch.float64)
    # attnkit's default is softmax(q k^T / sqrt(d_k)) v.
    _, w = ak.scaled_dot_product_attention(q, k, v, return_weights=True)
    assert torch.allclose(w, torch.softmax(q @ k.T / math.sqrt(d_k), dim=-1))

    def ratio(n, scale):
        """Weight of key 0 over weight of key 1 when the sequence has n keys."""
        _, w = ak.scaled_dot_product_attention(q, k[:n], v[:n], scale=scale, return_weights=True)
        return (w[0, 0] / w[0, 1]).item()

    # With 1/sqrt(d_k) how a query weighs two keys does not depend on the other keys ...
    assert ratio(10, 1 / math.sqrt(d_k)) == pytest.approx(ratio(100, 1 / math.sqrt(d_k)))
    # ... with the seed's 1/n it does: the same pair is weighed differently in a longer text.
    assert abs(math.log(ratio(10, 1 / 10)) - math.log(ratio(100, 1 / 100))) > 0.1


def test_erratum_worked_example():
    """E2-E4: the seed's numbers for the input [1, 2, 3] against real self-attention."""
    x = torch.tensor([[1.0], [2.0], [3.0]], dtype=torch.float64)  # d_k = 1, q = k = v = x
    o, a = ak.scaled_dot_product_attention(x, x, x, return_weights=True)
    o = o.squeeze(-1)
    assert a.shape == (3, 3)  # every query meets every key: a 3 x 3 matrix, not 3 scores
    assert torch.allclose(a.sum(-1), torch.ones(3, dtype=torch.float64))  # rows sum to 1
    assert ((o >= 1) & (o <= 3)).all()  # each output is an average of the values 1, 2, 3

    v = x.squeeze(-1)
    seed_weights = torch.softmax(1.0 * v, dim=0)  # e^i / (e^1 + e^2 + e^3): over the queries
    seed_step4 = seed_weights * v  # "softmax(scaled_score_i) * V_i": no sum over j
    seed_step5 = v / torch.exp(v).sum()  # "v_i / (e^1 + e^2 + e^3)": the seed's result
    assert not torch.allclose(seed_step4, o)
    assert ((seed_step5 < 1) | (seed_step5 > 3)).all()  # impossible for an average of 1, 2, 3
    assert torch.allclose(seed_step5 * torch.exp(v), seed_step4)  # step 5 lost e^i
    # The seed's three weights are row 1 of A, and its step-4 numbers the terms of o_1.
    assert torch.allclose(seed_weights, a[0])
    assert seed_step4.sum().item() == pytest.approx(o[0].item())


def test_erratum_complexity_omits_d():
    """E32: "O(n^2)" is the memory of the attention weights; the time is O(n^2 d):
    at a fixed length, four times the width costs four times the FLOPs, same weights."""
    g = torch.Generator().manual_seed(0)
    n = 128
    flops, weights = {}, {}
    for d in (16, 64):
        q, k, v = (torch.randn(n, d, generator=g) for _ in range(3))
        flops[d] = matmul_flops(ak.scaled_dot_product_attention, q, k, v)
        _, weights[d] = ak.scaled_dot_product_attention(q, k, v, return_weights=True)
    assert flops[16] == 4 * n * n * 16 and flops[64] == 4 * flops[16]  # linear in d
    assert weights[16].shape == weights[64].shape == (n, n)  # n^2 numbers whatever d is


def test_erratum_extractive_qa():
    """E33: an extractive (SQuAD-style) reader does not generate an answer: it scores a
    start and an end position, and the answer is the passage's own tokens between them."""
    torch.manual_seed(0)
    model = SpanQATransformer(vocab_size=40, d_model=16, num_heads=2, d_ff=32, max_len=24).eval()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 40, (8, 20), generator=g)  # [question | context] token ids
    segments = (torch.arange(20) >= 6).long().expand(8, 20)  # question 0..5, context 6..19
    real = torch.ones(8, 20, dtype=torch.bool)
    with torch.no_grad():
        start_logits, end_logits = model(ids, segments, real)
    # One score per input position and no vocabulary axis: nothing can be written that
    # is not already in the input. The scores follow the input's length, not a vocabulary.
    assert start_logits.shape == end_logits.shape == (8, 20)
    with torch.no_grad():
        short_start, _ = model(ids[:, :14], segments[:, :14], real[:, :14])
    assert short_start.shape == (8, 14)
    start, end = best_span(start_logits, end_logits, segments.bool(), max_answer_len=5)
    # The answer is the context's own tokens from start to end: a span, selected.
    assert ((start >= 6) & (start <= end) & (end - start < 5)).all()


def test_erratum_bidirectional_is_the_mask():
    """E35: the same self-attention is unidirectional with a causal mask (GPT) and
    bidirectional without one (BERT): the mask, not self-attention, decides."""
    torch.manual_seed(0)
    layer = ak.MultiHeadAttention(16, 2).eval()
    x = torch.randn(1, 6, 16)
    x_changed = x.clone()
    x_changed[0, -1] += 1.0  # change only the last token
    with torch.no_grad():
        causal, _ = layer(x, is_causal=True)
        causal_changed, _ = layer(x_changed, is_causal=True)
        full, _ = layer(x)
        full_changed, _ = layer(x_changed)
    # GPT-style: position 0 cannot see the last token, so its output does not move ...
    assert torch.equal(causal[0, :-1], causal_changed[0, :-1])
    # ... BERT-style, same parameters, no mask: every position sees it.
    assert ((full[0, :-1] - full_changed[0, :-1]).abs().amax(-1) > 1e-4).all()


def test_erratum_low_rank():
    """E13: factoring the weight matrices leaves the n x n attention; Linformer's
    projection of the keys and values along the sequence is what removes it."""
    g = torch.Generator().manual_seed(0)
    n, d, r, k_proj = 256, 64, 4, 32
    x = torch.randn(n, d, generator=g)
    w_q, w_k, w_v = (  # rank-r weight matrices W = U V, U (d, r), V (r, d)
        torch.randn(d, r, generator=g) @ torch.randn(r, d, generator=g) / d for _ in range(3)
    )
    assert torch.linalg.matrix_rank(w_q).item() == r
    q, k, v = x @ w_q, x @ w_k, x @ w_v  # (n, d) each
    _, a = ak.scaled_dot_product_attention(q, k, v, return_weights=True)
    assert a.shape == (n, n)  # still one weight per (query, key) pair
    assert matmul_flops(ak.scaled_dot_product_attention, q, k, v) == 4 * n * n * d  # unchanged
    e = torch.randn(k_proj, n, generator=g) / math.sqrt(k_proj)  # Linformer's E = F, (k, n)
    linformer = matmul_flops(linformer_attention, q, k, v, e, e)
    assert linformer == 8 * n * k_proj * d  # linear in n for a fixed k
    assert linformer < 4 * n * n * d / 2


def test_erratum_bert_example():
    """E25: in BERT positions enter at the input, and the MLM prediction is not added to
    the encoder output (a vocabulary distribution and a hidden state cannot be summed)."""
    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, d_model=16, num_heads=2, num_layers=2, d_ff=32, max_len=8)
    model = BertForPreTraining(config, next_sentence=False).eval()
    ids = torch.full((1, 5), 7)  # "a a a a a": one token repeated at five positions
    with torch.no_grad():
        x = model.bert.embeddings(ids)  # (1, 5, 16)
        hidden, _ = model.bert(ids)  # (1, 5, 16)
        encoded, _ = model.bert.encoder(x)
        logits, _ = model(ids)  # (1, 5, 50)
    # Same token, different positions: the embeddings already differ, before any attention.
    assert not torch.allclose(x[0, 0], x[0, 1])
    # The output is the encoder applied to those embeddings: nothing is added after it.
    assert torch.allclose(hidden, encoded)
    # "final_output = masked_output + output": the shapes do not even match.
    assert logits.shape[-1] == config.vocab_size != hidden.shape[-1] == config.d_model
    with pytest.raises(RuntimeError):
        logits + hidden


def test_erratum_vit_cost():
    """E31: global self-attention over an image grows with the square of the number of
    patches: doubling the image side multiplies the attention weights by about 16."""
    torch.manual_seed(0)
    counts = {}
    for side in (32, 64):
        config = ViTConfig(side, 4, 1, d_model=16, num_heads=2, num_layers=1, d_ff=32)
        model = ViT(config).eval()
        with torch.no_grad():
            _, weights = model(torch.randn(1, 1, side, side), return_attention=True)
        assert weights[0].shape[-1] == 1 + config.num_patches  # patches plus the class token
        counts[side] = weights[0].numel()
    assert counts[64] / counts[32] > 15  # (1 + 256)^2 / (1 + 64)^2 = 15.6; pixels grew 4x
    # A convolution's work grows like the number of pixels: 4x.
    conv = torch.nn.Conv2d(1, 16, 3, padding=1)
    ratio = matmul_flops(conv, torch.randn(1, 1, 64, 64)) / matmul_flops(
        conv, torch.randn(1, 1, 32, 32)
    )
    assert ratio == 4
    # ViT-Base/16 at 224 x 224 has 197 tokens; one token per pixel would have 50,176.
    assert ViTConfig(224, 16).num_patches + 1 == 197
    assert (ViTConfig(224, 1).num_patches / ViTConfig(224, 16).num_patches) ** 2 == 256**2

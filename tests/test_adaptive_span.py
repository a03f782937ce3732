"""Tests of attnkit.efficient.adaptive_span: attention with a learnable soft span.

The banded computation is compared with independent dense references written here: the
paper's formula ``a_tr = m(t - r) exp(s_tr) / sum_q m(t - q) exp(s_tq)`` evaluated with
explicit Python loops on small inputs, and ``torch.nn.functional.scaled_dot_product_attention``
with ``is_causal=True`` when every span covers the sequence. Gradients (to q, k, v, the
spans and the position embeddings) are checked in float64 with ``gradcheck``.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from attnkit import padding_mask
from attnkit.efficient import AdaptiveSpanSelfAttention
from attnkit.efficient.adaptive_span import (
    adaptive_span_attention,
    adaptive_span_flops,
    adaptive_span_mask,
    soft_span_mask,
)

F64 = {"rtol": 1e-12, "atol": 1e-12}


def randn(seed, *shape, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen, dtype=torch.float64).to(dtype)


def loop_reference(q, k, v, spans, ramp, pos_emb=None, key_mask=None):
    """The paper's formula with Python loops: q, k, v (H, n, d), spans (H,), float64."""
    num_heads, n, d = q.shape
    weights = torch.zeros(num_heads, n, n, dtype=torch.float64)
    for h in range(num_heads):
        z = float(spans[h])
        for t in range(n):
            terms = {}
            for r in range(t + 1):
                x = t - r
                m = min(max((ramp + z - x) / ramp, 0.0), 1.0)
                if m == 0.0 or (key_mask is not None and not key_mask[r]):
                    continue
                key = k[h, r] + (0 if pos_emb is None else pos_emb[h, x])
                terms[r] = m * math.exp(float(q[h, t] @ key) / math.sqrt(d))
            total = sum(terms.values())
            for r, value in terms.items():
                weights[h, t, r] = value / total
    return weights @ v, weights


# ------------------------------------------------------------------------ the mask


def test_soft_span_mask_values_and_gradient():
    x = torch.arange(0.0, 30.0, 0.5, dtype=torch.float64)
    z = torch.tensor(10.0, dtype=torch.float64, requires_grad=True)
    m = soft_span_mask(x, z, 4.0)
    want = torch.tensor([min(max((4 + 10 - xi) / 4, 0), 1) for xi in x.tolist()])
    torch.testing.assert_close(m.detach(), want.double(), **F64)
    (grad,) = torch.autograd.grad(m.sum(), z)
    inside = ((x > 10) & (x < 14)).sum().item()
    ends = ((x == 10) | (x == 14)).sum().item()  # autograd passes the slope at the two ends
    assert grad.item() == pytest.approx((inside + ends) / 4)


def test_adaptive_span_mask_is_causal_and_per_head():
    spans = torch.tensor([0.0, 2.5])
    m = adaptive_span_mask(6, spans, 2.0)
    assert m.shape == (2, 6, 6)
    assert torch.all(m.triu(1) == 0)
    # head 0: distance 0 -> 1, distance 1 -> 0.5, distance 2 -> 0
    torch.testing.assert_close(m[0, 5, [5, 4, 3]], torch.tensor([1.0, 0.5, 0.0]))
    # head 1: distances 0..2 -> 1, 3 -> 0.75, 4 -> 0.25, 5 -> 0
    torch.testing.assert_close(m[1, 5], torch.tensor([0.0, 0.25, 0.75, 1.0, 1.0, 1.0]))


# ----------------------------------------------------------------------- attention


@pytest.mark.parametrize("n", [1, 7, 33, 100])
def test_spans_covering_the_sequence_give_full_causal_attention(n):
    q, k, v = randn(0, 2, 3, n, 8), randn(1, 2, 3, n, 8), randn(2, 2, 3, n, 5)
    want = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    for span in (float(n), torch.full((3,), float(n) + 2.5, dtype=torch.float64)):
        got = adaptive_span_attention(q, k, v, span, ramp=1.0)
        torch.testing.assert_close(got, want, **F64)


@pytest.mark.parametrize(
    "n,spans,ramp",
    [
        (75, [0.0, 1.5, 6.0], 2.0),  # narrow: banded path with several blocks
        (130, [3.0, 0.0, 17.25], 4.0),  # banded, n not a multiple of the block
        (50, [40.0, 2.0, 10.0], 8.0),  # wide: the dense single-block path
    ],
)
def test_band_equals_loop_reference(n, spans, ramp):
    q, k, v = randn(3, 3, n, 4), randn(4, 3, n, 4), randn(5, 3, n, 3)
    spans = torch.tensor(spans, dtype=torch.float64)
    pos_emb = randn(6, 3, math.ceil(spans.max().item() + ramp), 4)
    for pe in (None, pos_emb):
        out, weights = adaptive_span_attention(
            q, k, v, spans, ramp=ramp, pos_emb=pe, return_weights=True
        )
        want_out, want_weights = loop_reference(q, k, v, spans, ramp, pos_emb=pe)
        torch.testing.assert_close(weights, want_weights, **F64)
        torch.testing.assert_close(out, want_out, **F64)


def test_weights_beyond_reach_are_zero_and_rows_sum_to_one():
    n, ramp = 90, 3.0
    spans = torch.tensor([0.0, 5.5, 20.0, 33.0], dtype=torch.float64)
    q, k, v = randn(7, 2, 4, n, 8), randn(8, 2, 4, n, 8), randn(9, 2, 4, n, 8)
    _, w = adaptive_span_attention(q, k, v, spans, ramp=ramp, return_weights=True)
    t = torch.arange(n)
    distance = (t[:, None] - t[None, :]).double()  # (n, n)
    outside = (distance < 0) | (distance >= spans[:, None, None] + ramp)  # (H, n, n)
    assert torch.all(w[:, outside] == 0)
    assert torch.all(w[:, ~outside] > 0)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 4, n, dtype=torch.float64), **F64)


def test_max_span_does_not_change_the_result():
    q, k, v = randn(10, 2, 70, 8), randn(11, 2, 70, 8), randn(12, 2, 70, 8)
    spans = torch.tensor([2.0, 9.5], dtype=torch.float64)
    want = adaptive_span_attention(q, k, v, spans, ramp=2.0)
    for max_span in (10, 40, 200):
        got = adaptive_span_attention(q, k, v, spans, ramp=2.0, max_span=max_span)
        torch.testing.assert_close(got, want, **F64)


def test_key_padding_mask_and_float32():
    n = 45
    q, k, v = (randn(s, 2, 2, n, 8, dtype=torch.float32) for s in (13, 14, 15))
    spans = torch.tensor([3.0, 12.0])
    keep = padding_mask(torch.tensor([45, 30]), n)  # (B, n)
    got = adaptive_span_attention(q, k, v, spans, ramp=4.0, mask=keep[:, None, None, :])
    assert got.dtype == torch.float32
    for b in range(2):
        want, _ = loop_reference(q[b].double(), k[b].double(), v[b].double(), spans, 4.0,
                                 key_mask=keep[b])  # fmt: skip
        torch.testing.assert_close(got[b].double(), want, rtol=1e-5, atol=1e-5)


def test_gradcheck_including_span_and_position_embeddings():
    n, ramp = 9, 2.0
    q, k, v = (randn(s, 1, 2, n, 2).requires_grad_() for s in (16, 17, 18))
    # spans away from the kinks of the mask (z - x not an integer multiple of the ramp ends)
    spans = torch.tensor([1.3, 4.6], dtype=torch.float64, requires_grad=True)
    pos_emb = randn(19, 2, 7, 2).requires_grad_()

    def fn(q, k, v, spans, pos_emb):
        return adaptive_span_attention(q, k, v, spans, ramp=ramp, max_span=5, pos_emb=pos_emb)

    assert torch.autograd.gradcheck(fn, (q, k, v, spans, pos_emb), fast_mode=True)
    # the banded path (n > 2 blocks of 32), one head
    qb, kb, vb = (randn(s, 1, 1, 70, 2).requires_grad_() for s in (20, 21, 22))
    span_b = torch.tensor([2.7], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda q, k, v, z: adaptive_span_attention(q, k, v, z, ramp=ramp),
        (qb, kb, vb, span_b),
        fast_mode=True,
    )
    out = fn(q, k, v, spans, pos_emb)
    (g,) = torch.autograd.grad(out.square().sum(), spans)
    assert torch.all(g != 0)  # the spans really are learned through the ramp


def test_validation_errors():
    q = randn(0, 2, 10, 4)
    with pytest.raises(ValueError, match="ramp"):
        adaptive_span_attention(q, q, q, 2.0, ramp=0.0)
    with pytest.raises(TypeError, match="ramp"):
        adaptive_span_attention(q, q, q, 2.0, ramp="2")
    with pytest.raises(ValueError, match="span must be >= 0"):
        adaptive_span_attention(q, q, q, -1.0, ramp=1.0)
    with pytest.raises(ValueError, match="max_span=3"):
        adaptive_span_attention(q, q, q, torch.tensor([1.0, 4.0]), ramp=1.0, max_span=3)
    with pytest.raises(ValueError, match="batch shape"):
        adaptive_span_attention(q, q, q, torch.ones(3, dtype=torch.float64), ramp=1.0)
    with pytest.raises(ValueError, match="pos_emb"):
        adaptive_span_attention(q, q, q, 2.0, ramp=1.0, pos_emb=randn(1, 2, 2, 4))
    with pytest.raises(TypeError, match="span"):
        adaptive_span_attention(q, q, q, "wide", ramp=1.0)
    with pytest.raises(ValueError, match="max_span"):
        AdaptiveSpanSelfAttention(8, 2, -1)
    with pytest.raises(ValueError, match="span must be <= max_span"):
        AdaptiveSpanSelfAttention(8, 2, 4, init_span=5.0)


# -------------------------------------------------------------------------- module


def test_module_matches_functional_and_learns_spans():
    torch.manual_seed(0)
    layer = AdaptiveSpanSelfAttention(16, 2, 10, ramp=4, init_span=3.0).double()
    x = randn(20, 2, 25, 16)
    keep = padding_mask(torch.tensor([25, 18]), 25)
    out = layer(x, key_padding_mask=keep)
    assert out.shape == (2, 25, 16)
    torch.testing.assert_close(layer.spans, torch.tensor([3.0, 3.0], dtype=torch.float64))
    # the module's output = projections around the functional core
    qh, kh, vh = (p(x).view(2, 25, 2, 8).transpose(1, 2) for p in
                  (layer.q_proj, layer.k_proj, layer.v_proj))  # fmt: skip
    core = adaptive_span_attention(qh, kh, vh, layer.spans, ramp=4, pos_emb=layer.key_pe,
                                   mask=keep[:, None, None, :])  # fmt: skip
    want = layer.out_proj(core.transpose(1, 2).reshape(2, 25, 16))
    torch.testing.assert_close(out, want, **F64)
    # the penalty is the mean span and has a gradient; out-of-range values are clamped
    penalty = layer.span_penalty()
    assert penalty.item() == pytest.approx(3.0)
    penalty.backward()
    torch.testing.assert_close(layer.span_fraction.grad, torch.full((2,), 5.0, dtype=torch.float64))
    with torch.no_grad():
        layer.span_fraction.copy_(torch.tensor([1.7, -0.2]))
    layer(x)
    torch.testing.assert_close(layer.spans, torch.tensor([10.0, 0.0], dtype=torch.float64))


def test_flops_count():
    # one head, span >= n: full causal attention, 2 d n (n + 1)
    assert adaptive_span_flops(50, [80.0], 1.0, 8) == 2 * 8 * 50 * 51
    # reach ceil(2.5 + 2) = 5 keys: queries 0..4 see 1..5 keys, the other 95 see 5 each
    assert adaptive_span_flops(100, [2.5], 2.0, 4) == 4 * 4 * (15 + 95 * 5)
    # a brute-force count over (query, key) pairs with a nonzero mask
    spans, ramp, n = [0.0, 3.2, 11.0], 3.0, 40
    pairs = sum(1 for z in spans for t in range(n) for r in range(t + 1) if t - r < z + ramp)
    assert adaptive_span_flops(n, spans, ramp, 6) == 4 * 6 * pairs


def test_large_scores_beyond_one_heads_reach_do_not_empty_its_rows():
    # Head 0 reaches 3 keys, head 1 sets the band at 10: the band holds keys that head 0
    # must ignore. With scores of several hundred they would take all of the softmax.
    n = 12
    scores = randn(23, 2, n, n) * 400.0
    eye = torch.eye(n, dtype=torch.float64)  # q = scores, k = I: q k^T = the scores
    spans = torch.tensor([1.0, 8.0], dtype=torch.float64)
    _, w = adaptive_span_attention(scores, eye, eye, spans, ramp=2.0, scale=1.0,
                                   return_weights=True)  # fmt: skip
    torch.testing.assert_close(w.sum(-1), torch.ones(2, n, dtype=torch.float64), **F64)
    m = adaptive_span_mask(n, spans, 2.0, dtype=torch.float64)
    logits = scores.masked_fill(m == 0, float("-inf"))
    want = torch.softmax(logits, -1) * m
    torch.testing.assert_close(w, want / want.sum(-1, keepdim=True), **F64)

"""Grader for chapter 16's exercises (adaptive attention span).

Each exercise is checked against attnkit's implementation *and* against an independent
reference written here: the formula evaluated number by number with Python's ``min`` and
``max``, the paper's weights computed with explicit loops over queries and keys,
``torch.nn.functional.scaled_dot_product_attention(is_causal=True)`` for spans longer than
the sequence, and a brute-force count of (query, key) pairs. Every test calls the learner's
function, so every test fails on the untouched exercise file.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from attnkit.efficient.adaptive_span import (
    adaptive_span_attention,
    adaptive_span_flops,
    soft_span_mask,
)
from attnkit.grading import require

CHAPTER = "16"
ex = pytest.mark.exercise


def _randn(*shape: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return scale * torch.randn(*shape, generator=gen, dtype=torch.float64)


# -------------------------------------------------------------------- soft_span_mask
@ex("soft_span_mask")
@pytest.mark.parametrize("span,ramp", [(0.0, 1.0), (0.0, 4.0), (2.5, 2.0), (7.0, 3.5), (30.0, 8.0)])
def test_soft_span_mask_matches_formula(learner, span, ramp):
    x = torch.arange(0.0, 40.0, 0.25, dtype=torch.float64)
    got = require(learner, "soft_span_mask")(x, span, ramp)
    assert torch.equal(x, torch.arange(0.0, 40.0, 0.25, dtype=torch.float64)), (
        "do not modify distance in place"
    )
    want = [min(max((ramp + span - xi) / ramp, 0.0), 1.0) for xi in x.tolist()]
    assert isinstance(got, torch.Tensor) and got.shape == x.shape, (
        f"return a tensor of the shape of distance {tuple(x.shape)}"
    )
    assert_close(
        got,
        torch.tensor(want, dtype=torch.float64),
        msg=f"m_z(x) must be min(max((R + z - x) / R, 0), 1) (z = {span}, R = {ramp})",
    )
    assert_close(got, soft_span_mask(x, span, ramp))


@ex("soft_span_mask")
def test_soft_span_mask_broadcasts_and_is_differentiable(learner):
    fn = require(learner, "soft_span_mask")
    x = torch.arange(20.0, dtype=torch.float64)  # (20,)
    spans = torch.tensor([[0.5], [3.25], [11.5]], dtype=torch.float64, requires_grad=True)
    got = fn(x, spans, 4.0)
    assert got.shape == (3, 20), "span (3, 1) against distance (20,) must broadcast to (3, 20)"
    assert_close(got, soft_span_mask(x, spans.detach(), 4.0))
    (grad,) = torch.autograd.grad(got.sum(), spans)
    # spans chosen so that no integer distance sits at an end of a ramp: 4 keys on each ramp
    assert_close(
        grad,
        torch.full((3, 1), 1.0, dtype=torch.float64),
        msg="d m / d z must be 1 / R on the ramp (4 keys here, 4 * 1/4 = 1) and 0 elsewhere",
    )


# ------------------------------------------------------------- adaptive_span_weights
def _loop_weights(scores: torch.Tensor, spans: list[float], ramp: float) -> torch.Tensor:
    """Reference: a_tr = m(t - r) e^s_tr / sum_q m(t - q) e^s_tq, loops, scores (H, n, n)."""
    num_heads, n, _ = scores.shape
    out = torch.zeros_like(scores)
    for h in range(num_heads):
        for t in range(n):
            terms = [
                min(max((ramp + spans[h] - (t - r)) / ramp, 0.0), 1.0)
                * math.exp(float(scores[h, t, r]))
                for r in range(t + 1)
            ]
            total = sum(terms)
            for r, term in enumerate(terms):
                out[h, t, r] = term / total
    return out


@ex("adaptive_span_weights")
@pytest.mark.parametrize(
    "spans,ramp,n",
    [
        ([0.0], 1.0, 6),  # span 0, ramp 1: only the query itself
        ([0.0, 1.5, 4.0], 2.0, 10),
        ([20.0, 0.0], 3.0, 9),  # span >= n: every earlier key, mask 1
        ([2.25, 6.0, 0.5, 13.0], 4.0, 15),
    ],
)
def test_adaptive_span_weights_match_loop(learner, spans, ramp, n):
    scores = _randn(len(spans), n, n, seed=len(spans) + n, scale=2.0)
    got = require(learner, "adaptive_span_weights")(
        scores, torch.tensor(spans, dtype=torch.float64), ramp
    )
    assert got.shape == scores.shape, f"expected shape {tuple(scores.shape)}, got {got.shape}"
    assert torch.all(got.triu(1) == 0), (
        "weights above the diagonal (keys after the query) must be 0"
    )
    assert_close(
        got,
        _loop_weights(scores, spans, ramp),
        msg="a_tr = m(t - r) exp(s_tr) / sum over q <= t of m(t - q) exp(s_tq)",
    )


@ex("adaptive_span_weights")
def test_adaptive_span_weights_match_attnkit_and_sdpa(learner):
    fn = require(learner, "adaptive_span_weights")
    q, k, v = (_randn(2, 3, 40, 8, seed=s) for s in (1, 2, 3))
    scores = q @ k.transpose(-2, -1) / math.sqrt(8)
    spans = torch.tensor([0.0, 5.5, 17.0], dtype=torch.float64)
    got = fn(scores, spans, 4.0)
    _, want = adaptive_span_attention(q, k, v, spans, ramp=4.0, return_weights=True)
    assert got.shape == (2, 3, 40, 40), "leading batch dimensions must be kept"
    assert_close(got, want, msg="differs from attnkit's adaptive_span_attention weights")
    long = fn(scores, torch.full((3,), 100.0, dtype=torch.float64), 4.0)
    assert_close(
        long @ v,
        F.scaled_dot_product_attention(q, k, v, is_causal=True),
        msg="with spans longer than the sequence the weights must be plain causal attention",
    )


@ex("adaptive_span_weights")
def test_adaptive_span_weights_large_scores(learner):
    scores = _randn(2, 12, 12, seed=4, scale=400.0)
    got = require(learner, "adaptive_span_weights")(
        scores, torch.tensor([1.0, 8.0], dtype=torch.float64), 2.0
    )
    assert torch.isfinite(got).all(), (
        "scores of several hundred overflowed exp: subtract the row maximum or use softmax"
    )
    assert_close(got.sum(-1), torch.ones(2, 12, dtype=torch.float64), msg="rows must sum to 1")
    eye = torch.eye(12, dtype=torch.float64)  # q = the scores, k = I: q k^T = the scores
    _, want = adaptive_span_attention(
        scores, eye, eye, torch.tensor([1.0, 8.0], dtype=torch.float64), ramp=2.0, scale=1.0,
        return_weights=True,
    )  # fmt: skip
    assert_close(got, want)


# ---------------------------------------------------------------------- span_penalty
@ex("span_penalty")
@pytest.mark.parametrize("layers,heads", [(1, 1), (1, 4), (3, 2)])
def test_span_penalty_value_and_gradient(learner, layers, heads):
    f = _randn(layers, heads, seed=5 + layers, scale=0.8).add(0.5).requires_grad_()
    got = require(learner, "span_penalty")(f, 48, 0.02)
    assert isinstance(got, torch.Tensor) and got.dim() == 0, "return a 0-d tensor"
    values = [min(max(x, 0.0), 1.0) * 48 for x in f.detach().flatten().tolist()]
    assert math.isclose(got.item(), 0.02 / heads * sum(values), rel_tol=1e-9), (
        "the penalty is lam / M * sum of max_span * clamp(f, 0, 1), M = heads per layer"
    )
    (grad,) = torch.autograd.grad(got, f)
    inside = (f.detach() > 0) & (f.detach() < 1)
    want = torch.where(inside, 0.02 * 48 / heads, 0.0).to(torch.float64)
    assert_close(grad, want, msg="gradient: lam * max_span / M inside [0, 1], 0 where clamped")


# --------------------------------------------------------------- adaptive_span_flops
@ex("adaptive_span_flops")
@pytest.mark.parametrize(
    "n,spans,ramp,d",
    [
        (1, [0.0], 1.0, 4),
        (10, [0.0], 1.0, 2),  # one key per query: 4 d n
        (30, [2.5, 0.0, 40.0], 3.0, 8),
        (64, [12.0, 0.0, 4.8, 0.0], 8.0, 8),
        (257, [31.0, 1.0], 32.0, 16),
    ],
)
def test_adaptive_span_flops_brute_force(learner, n, spans, ramp, d):
    got = require(learner, "adaptive_span_flops")(n, spans, ramp, d)
    pairs = sum(1 for z in spans for t in range(n) for r in range(t + 1) if t - r < z + ramp)
    assert isinstance(got, int), f"return an exact Python int, got {type(got).__name__}"
    assert int(got) == got and int(got) == 4 * d * pairs, (
        "count 4 * head_dim FLOPs for every (query, key) pair with t - r < z + R, r <= t"
    )
    assert int(got) == adaptive_span_flops(n, spans, ramp, d)


@ex("adaptive_span_flops")
def test_adaptive_span_flops_full_attention_limit(learner):
    fn = require(learner, "adaptive_span_flops")
    for n in (100, 4096):
        assert int(fn(n, [float(n)] * 3, 4.0, 8)) == 3 * 2 * 8 * n * (n + 1), (
            "spans >= n must give full causal attention: 2 d n (n + 1) per head"
        )

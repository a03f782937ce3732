"""Grader for chapter 19's exercises (new forms of attention).

References, computed independently of the exercises: `attnkit.llm.softcap` and the
formula evaluated number by number with `math.tanh`; `attnkit.llm.delta_rule_recurrent`
run for one position from the given state, and autograd's gradient of
``1/2 ||S k - v||^2``; sigmoid weights written as explicit loops over queries and keys;
`attnkit.llm.topk_token_mask` and a brute-force selection with Python's ``sorted``.
Every test calls the learner's function, so every test fails on the untouched file.
"""

from __future__ import annotations

import math

import pytest
import torch

from attnkit import llm
from attnkit.grading import require

CHAPTER = "19"
ex = pytest.mark.exercise


def _randn(*shape, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64) * scale


# ------------------------------------------------------------------------ softcap_logits
@ex("softcap_logits")
@pytest.mark.parametrize("cap", [50.0, 30.0, 1.0, 0.5])
def test_softcap_equals_the_formula(learner, cap):
    scores = _randn(3, 5, 7, seed=int(cap * 10), scale=3 * cap)
    got = require(learner, "softcap_logits")(scores, cap)
    assert isinstance(got, torch.Tensor), f"return a tensor, not {type(got).__name__}"
    assert got.shape == scores.shape, (
        f"expected shape {tuple(scores.shape)}, got {tuple(got.shape)}"
    )
    torch.testing.assert_close(got, llm.softcap(scores, cap), msg="not cap * tanh(scores / cap)")
    for s, g in zip(scores.flatten().tolist()[:20], got.flatten().tolist()[:20], strict=True):
        assert abs(g - cap * math.tanh(s / cap)) < 1e-9, f"softcap({s:.3f}) = {g}, cap {cap}"


@ex("softcap_logits")
def test_softcap_is_smooth_bounded_and_near_identity(learner):
    fn = require(learner, "softcap_logits")
    big = torch.tensor([-1e4, -200.0, 200.0, 1e4], dtype=torch.float64, requires_grad=True)
    out = fn(big, 50.0)
    assert bool((out.abs() < 50.0 + 1e-9).all()), f"values beyond the cap: {out.tolist()}"
    assert out[1].item() > -50.0 and out[1].item() < -49.0, (
        f"softcap(-200, 50) should be about -49.97, got {out[1].item():.3f}"
    )
    out.sum().backward()
    assert bool((big.grad[1:3] > 0).all()), (
        "the gradient at +-200 must be small but non-zero (a clamp has none)"
    )
    small = torch.tensor([0.0, 0.01, -0.02], dtype=torch.float64)
    torch.testing.assert_close(
        fn(small, 50.0), small, atol=1e-8, rtol=0, msg="small logits must pass almost unchanged"
    )


# ----------------------------------------------------------------------- delta_rule_step
@ex("delta_rule_step")
@pytest.mark.parametrize("d_v,d_k,beta", [(2, 3, 1.0), (4, 4, 0.3), (5, 2, 0.7), (1, 6, 0.05)])
def test_delta_step_equals_one_recurrent_step(learner, d_v, d_k, beta):
    S = _randn(d_v, d_k, seed=d_v * 10 + d_k)
    k = torch.nn.functional.normalize(_randn(d_k, seed=d_k), dim=0)
    v = _randn(d_v, seed=d_v + 100)
    before = S.clone()
    got = require(learner, "delta_rule_step")(S, k, v, beta)
    assert torch.equal(S, before), "S was modified: return a new state"
    assert isinstance(got, torch.Tensor) and got.shape == (d_v, d_k), (
        f"expected a tensor of shape {(d_v, d_k)} (d_v, d_k)"
    )
    one = lambda t: t[None, None, None]  # noqa: E731  (B, H, T=1, .)
    _, want = llm.delta_rule_recurrent(
        one(k),
        one(k),
        one(v),
        torch.full((1, 1, 1), beta, dtype=torch.float64),
        initial_state=S[None, None],
    )
    torch.testing.assert_close(got, want[0, 0], msg="not S - beta (S k - v) k^T")


@ex("delta_rule_step")
def test_delta_step_is_a_gradient_step(learner):
    S = _randn(3, 5, seed=7).requires_grad_()
    k, v = _randn(5, seed=8, scale=0.7), _randn(3, seed=9)  # a key of any norm
    (0.5 * (S @ k - v).pow(2).sum()).backward()
    got = require(learner, "delta_rule_step")(S.detach().clone(), k, v, 0.4)
    torch.testing.assert_close(
        got, S.detach() - 0.4 * S.grad, msg="one step must be S - beta * grad of 1/2 ||S k - v||^2"
    )


@ex("delta_rule_step")
def test_delta_step_with_beta_one_replaces_the_value(learner):
    fn = require(learner, "delta_rule_step")
    k = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    S = fn(
        torch.zeros(2, 3, dtype=torch.float64),
        k,
        torch.tensor([4.0, 1.0], dtype=torch.float64),
        1.0,
    )
    S = fn(S, k, torch.tensor([-2.0, 3.0], dtype=torch.float64), 1.0)
    torch.testing.assert_close(
        S @ k,
        torch.tensor([-2.0, 3.0], dtype=torch.float64),
        msg="with a unit key and beta = 1 the new value replaces the old",
    )


# ------------------------------------------------------------- sigmoid_attention_weights
def _loops(q, k, bias):
    n_q, n_k, d = q.shape[-2], k.shape[-2], q.shape[-1]
    out = torch.empty(*q.shape[:-2], n_q, n_k, dtype=q.dtype)
    for idx in torch.cartesian_prod(*(torch.arange(n) for n in q.shape[:-2])).reshape(
        -1, len(q.shape[:-2])
    ):
        i = tuple(idx.tolist())
        for a in range(n_q):
            for b in range(n_k):
                s = float(q[i][a] @ k[i][b]) / math.sqrt(d) + bias
                out[i][a, b] = 1 / (1 + math.exp(-s))
    return out


@ex("sigmoid_attention_weights")
@pytest.mark.parametrize("n_q,n_k,d", [(3, 7, 4), (5, 2, 9), (1, 1, 1), (4, 16, 8)])
def test_sigmoid_weights_with_the_default_bias(learner, n_q, n_k, d):
    q, k = _randn(2, n_q, d, seed=n_q), _randn(2, n_k, d, seed=n_k + 50)
    got = require(learner, "sigmoid_attention_weights")(q, k)
    assert isinstance(got, torch.Tensor) and got.shape == (2, n_q, n_k), (
        f"expected shape {(2, n_q, n_k)} (..., n_q, n_k)"
    )
    torch.testing.assert_close(
        got, _loops(q, k, -math.log(n_k)), msg="not sigmoid(q k^T / sqrt(d) - log(n_k))"
    )


@ex("sigmoid_attention_weights")
@pytest.mark.parametrize("bias", [0.0, -2.5, 1.0])
def test_sigmoid_weights_with_a_given_bias(learner, bias):
    q, k = _randn(3, 4, 6, seed=1), _randn(3, 5, 6, seed=2)
    got = require(learner, "sigmoid_attention_weights")(q, k, bias=bias)
    torch.testing.assert_close(got, _loops(q, k, bias), msg=f"wrong weights with bias={bias}")


@ex("sigmoid_attention_weights")
def test_sigmoid_weights_agree_with_attnkit(learner):
    q, k, v = _randn(1, 2, 6, 8, seed=3), _randn(1, 2, 11, 8, seed=4), _randn(1, 2, 11, 3, seed=5)
    w = require(learner, "sigmoid_attention_weights")(q, k)
    torch.testing.assert_close(
        w @ v, llm.sigmoid_attention(q, k, v), msg="weights @ v differ from llm.sigmoid_attention"
    )


# ---------------------------------------------------------------------- topk_causal_mask
def _brute_force(scores, top_k):
    T = scores.shape[0]
    out = torch.zeros(T, T, dtype=torch.bool)
    for t in range(T):
        keys = sorted(range(t + 1), key=lambda s: (-float(scores[t, s]), s))[:top_k]
        out[t, keys] = True
    return out


@ex("topk_causal_mask")
@pytest.mark.parametrize("T,top_k", [(1, 1), (6, 2), (9, 4), (12, 1), (5, 8)])
def test_topk_mask_selects_the_best_visible_keys(learner, T, top_k):
    scores = _randn(T, T, seed=T * 10 + top_k).float()
    got = require(learner, "topk_causal_mask")(scores, top_k)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.bool and got.shape == (T, T), (
        f"expected a bool tensor of shape {(T, T)}"
    )
    want = _brute_force(scores, top_k)
    assert torch.equal(got, want), f"wrong selection:\n{got.int()}\nexpected\n{want.int()}"
    assert torch.equal(got, llm.topk_token_mask(scores[None], top_k)[0])


@ex("topk_causal_mask")
def test_topk_mask_never_selects_a_future_key(learner):
    scores = torch.arange(64, dtype=torch.float32).view(8, 8)  # the future scores highest
    got = require(learner, "topk_causal_mask")(scores, 3)
    assert not bool(got.triu(1).any()), "a query selected a key after it"
    assert torch.equal(got.sum(-1), torch.tensor([1, 2, 3, 3, 3, 3, 3, 3])), (
        f"each query selects min(t + 1, top_k) keys, got {got.sum(-1).tolist()}"
    )


@ex("topk_causal_mask")
def test_topk_mask_breaks_ties_towards_the_earlier_key(learner):
    scores = torch.ones(5, 5)
    got = require(learner, "topk_causal_mask")(scores, 2)
    assert torch.equal(got, _brute_force(scores, 2)), (
        f"on equal scores prefer the earlier key:\n{got.int()}"
    )

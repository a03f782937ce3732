"""Grader for chapter 6's exercises (exact attention that moves fewer bytes).

Each exercise is checked against independent references written here or in PyTorch: dense
``torch.softmax`` attention over all keys, ``torch.logsumexp``,
``torch.nn.functional.scaled_dot_product_attention`` and PyTorch's autograd through dense
attention. Every test calls the learner's function, so every test fails on the untouched
exercise file.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from attnkit.grading import require

CHAPTER = "06"
ex = pytest.mark.exercise


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(*shape: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(*shape, generator=_gen(seed), dtype=torch.float64)


# ---------------------------------------------------------- online_softmax_attention
@ex("online_softmax_attention")
@pytest.mark.parametrize(
    "shape_q,n_k,d_v,block",
    [((1, 4), 1, 3, 1), ((5, 8), 37, 4, 1), ((5, 8), 37, 4, 10), ((2, 3, 7, 16), 100, 5, 32),
     ((2, 6, 8), 50, 8, 50), ((6, 8), 20, 8, 1000)],
)  # fmt: skip
def test_online_softmax_attention_equals_dense(learner, shape_q, n_k, d_v, block):
    *batch, _, d = shape_q
    q, k = _randn(*shape_q, seed=1), _randn(*batch, n_k, d, seed=2)
    v = _randn(*batch, n_k, d_v, seed=3)
    out, lse = require(learner, "online_softmax_attention")(q, k, v, block)
    scores = q @ k.transpose(-2, -1) / math.sqrt(d)
    want_out, want_lse = F.scaled_dot_product_attention(q, k, v), torch.logsumexp(scores, -1)
    assert out.shape == want_out.shape, f"out must have shape {tuple(want_out.shape)}"
    assert lse.shape == want_lse.shape, f"lse must have shape {tuple(want_lse.shape)} (per query)"
    assert_close(
        out,
        want_out,
        msg=f"{n_k} keys read in blocks of {block} must give attention over all of them "
        "(the last block may be shorter)",
    )
    assert_close(lse, want_lse, msg="lse must be m + log(l): the log-sum-exp of the scaled scores")


@ex("online_softmax_attention")
def test_online_softmax_attention_survives_large_scores(learner):
    q, k, v = (
        _randn(4, 16, seed=4, scale=12.0),
        _randn(300, 16, seed=5, scale=12.0),
        _randn(300, 6, seed=6),
    )
    out, lse = require(learner, "online_softmax_attention")(q, k, v, 64)
    assert torch.isfinite(out).all() and torch.isfinite(lse).all(), (
        "scores in the hundreds overflowed: subtract the running maximum before exp"
    )
    assert_close(out, F.scaled_dot_product_attention(q, k, v))
    assert_close(lse, torch.logsumexp(q @ k.T / 4.0, dim=-1))


@ex("online_softmax_attention")
def test_online_softmax_attention_never_forms_the_full_score_matrix(learner):
    """Every tensor computed from k or v is recorded: none may be (n_q, n_k) = (3, 64)."""
    fn = require(learner, "online_softmax_attention")
    q, k, v = _randn(3, 8, seed=7), _randn(64, 8, seed=8), _randn(64, 8, seed=9)
    shapes = []

    class Spy(torch.Tensor):
        """Records the shape of every tensor an operation on k or v returns."""

        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            out = super().__torch_function__(func, types, args, kwargs or {})
            for t in out if isinstance(out, tuple | list) else (out,):
                if isinstance(t, torch.Tensor):
                    shapes.append(tuple(t.shape))
            return out

    out, lse = fn(q, k.as_subclass(Spy), v.as_subclass(Spy), 16)
    out, lse = out.as_subclass(torch.Tensor), lse.as_subclass(torch.Tensor)
    assert_close(out, F.scaled_dot_product_attention(q, k, v))
    assert_close(lse, torch.logsumexp(q @ k.T / math.sqrt(8), dim=-1))
    full = [shape for shape in shapes if shape[-2:] in ((3, 64), (64, 3))]
    assert shapes and not full, (
        "a (3, 64) tensor, the full score matrix of 3 queries and 64 keys, was formed: read k "
        "and v in slices of `block` rows (k[..., j : j + block, :]) and keep one (n_q, block) "
        "tile at a time"
    )


@ex("online_softmax_attention")
def test_online_softmax_attention_float32_scores_beyond_exp_range(learner):
    # exp overflows above ~88.7 in float32 (above ~709 in float64): scores in the hundreds
    # in float32 catch an exp of raw scores that float64 would survive
    q, k, v = (_randn(4, 16, seed=s, scale=12.0).float() for s in (31, 32, 33))
    scores = q.double() @ k.double().T / 4.0
    assert scores.max() > 100.0  # the premise of the test
    out, lse = require(learner, "online_softmax_attention")(q, k, v, 3)
    assert torch.isfinite(out).all() and torch.isfinite(lse).all(), (
        "float32 scores above 88 overflowed exp: subtract the running maximum before exp"
    )
    want = F.scaled_dot_product_attention(q.double(), k.double(), v.double())
    assert_close(out.double(), want, rtol=1e-4, atol=1e-4)
    assert_close(lse.double(), torch.logsumexp(scores, dim=-1), rtol=1e-5, atol=1e-4)


# ---------------------------------------------------------------------- merge_blocks
def _block(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
    """Reference: dense softmax attention over one block and each query's log-sum-exp."""
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    return torch.softmax(s, dim=-1) @ v, torch.logsumexp(s, dim=-1)


@ex("merge_blocks")
@pytest.mark.parametrize("split", [1, 17, 50, 99])
def test_merge_blocks_equals_attention_over_all_keys(learner, split):
    merge = require(learner, "merge_blocks")
    q, k, v = _randn(2, 3, 6, 8, seed=1), _randn(2, 3, 100, 8, seed=2), _randn(2, 3, 100, 5, seed=3)
    a = _block(q, k[..., :split, :], v[..., :split, :])
    b = _block(q, k[..., split:, :], v[..., split:, :])
    out, lse = merge(*a, *b)
    want_out, want_lse = _block(q, k, v)
    assert out.shape == want_out.shape, f"out must have shape {tuple(want_out.shape)}"
    assert lse.shape == want_lse.shape, f"lse must have shape {tuple(want_lse.shape)} (per query)"
    assert_close(lse, want_lse, msg="lse must be log(exp(lse_a) + exp(lse_b))")
    assert_close(
        out,
        want_out,
        msg=f"merging keys [0, {split}) and [{split}, 100) must give attention over all 100 keys",
    )


@ex("merge_blocks")
def test_merge_blocks_is_symmetric_and_chains(learner):
    merge = require(learner, "merge_blocks")
    q, k, v = _randn(4, 16, seed=4), _randn(90, 16, seed=5), _randn(90, 16, seed=6)
    parts = [_block(q, k[i : i + 30], v[i : i + 30]) for i in (0, 30, 60)]
    ab = merge(*parts[0], *parts[1])
    ba = merge(*parts[1], *parts[0])
    assert_close(ab[0], ba[0], msg="merge(A, B) and merge(B, A) must give the same output")
    out, lse = merge(*ab, *parts[2])
    want_out, want_lse = _block(q, k, v)
    assert_close(out, want_out, msg="merging three blocks one after another must be exact")
    assert_close(lse, want_lse)


@ex("merge_blocks")
def test_merge_blocks_large_lse_and_empty_side(learner):
    merge = require(learner, "merge_blocks")
    out, lse = _block(_randn(5, 8, seed=7), _randn(20, 8, seed=8), _randn(20, 4, seed=9))
    got, got_lse = merge(out, lse + 1000.0, out, lse + 1000.0)
    assert torch.isfinite(got).all() and torch.isfinite(got_lse).all(), (
        "log-sum-exps around 1000 overflowed: exp(1000) is inf; use torch.logaddexp"
    )
    assert_close(got, out, msg="two halves with equal lse and equal outputs merge to that output")
    assert_close(got_lse, lse + 1000.0 + math.log(2.0))
    empty_out, empty_lse = torch.zeros_like(out), torch.full_like(lse, -math.inf)
    for args in ((out, lse, empty_out, empty_lse), (empty_out, empty_lse, out, lse)):
        got, got_lse = merge(*args)
        assert not torch.isnan(got).any(), "a side with lse = -inf (no key seen) gave NaN"
        assert_close(got, out, msg="merging with an empty side (lse = -inf) must change nothing")
        assert_close(got_lse, lse)


# --------------------------------------------------------------- attention_backward
def _autograd_grads(q, k, v, grad_out):
    q, k, v = (t.clone().requires_grad_() for t in (q, k, v))
    F.scaled_dot_product_attention(q, k, v).backward(grad_out)
    return q.grad, k.grad, v.grad


def _forward(q, k, v):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    return torch.softmax(scores, dim=-1) @ v, torch.logsumexp(scores, dim=-1)


@ex("attention_backward")
@pytest.mark.parametrize(
    "shape_q,n_k,d_v", [((1, 4), 1, 2), ((6, 8), 11, 3), ((2, 3, 9, 16), 20, 5), ((2, 7, 4), 7, 4)]
)
def test_attention_backward_equals_autograd(learner, shape_q, n_k, d_v):
    *batch, n_q, d = shape_q
    q, k = _randn(*shape_q, seed=10), _randn(*batch, n_k, d, seed=11)
    v, grad_out = _randn(*batch, n_k, d_v, seed=12), _randn(*batch, n_q, d_v, seed=13)
    out, lse = _forward(q, k, v)
    got = require(learner, "attention_backward")(q, k, v, out, lse, grad_out)
    assert isinstance(got, tuple | list) and len(got) == 3, "return (grad_q, grad_k, grad_v)"
    names = ("grad_q", "grad_k", "grad_v")
    for name, g, want in zip(names, got, _autograd_grads(q, k, v, grad_out)):
        assert g.shape == want.shape, f"{name} must have shape {tuple(want.shape)}"
        assert_close(g, want, msg=f"{name} differs from PyTorch's autograd through attention")


@ex("attention_backward")
def test_attention_backward_recomputes_p_from_the_given_lse(learner):
    """P must be exp(S - lse) with the lse passed in, and D must come from out and grad_out.

    With lse + log 2 every recomputed probability halves, while D = rowsum(dO * O) does not
    change: every gradient then halves exactly. A solution that calls softmax (ignoring lse)
    or keeps P would return the unchanged gradients instead.
    """
    q, k, v = _randn(2, 5, 8, seed=14), _randn(2, 12, 8, seed=15), _randn(2, 12, 4, seed=16)
    grad_out = _randn(2, 5, 4, seed=17)
    out, lse = _forward(q, k, v)
    fn = require(learner, "attention_backward")
    exact = fn(q, k, v, out, lse, grad_out)
    shifted = fn(q, k, v, out, lse + math.log(2.0), grad_out)
    for name, a, b in zip(("grad_q", "grad_k", "grad_v"), exact, shifted):
        assert_close(
            b,
            a / 2,
            msg=f"{name}: recompute P = exp(S - lse) from the lse given (do not call softmax), "
            "and take D = rowsum(grad_out * out)",
        )


@ex("attention_backward")
def test_attention_backward_large_scores_stay_finite(learner):
    q, k, v = (
        _randn(4, 16, seed=18, scale=12.0),
        _randn(30, 16, seed=19, scale=12.0),
        _randn(30, 3, seed=20),
    )
    grad_out = _randn(4, 3, seed=21)
    out, lse = _forward(q, k, v)
    got = require(learner, "attention_backward")(q, k, v, out, lse, grad_out)
    assert all(torch.isfinite(g).all() for g in got), (
        "scores in the hundreds gave inf or NaN: exp(S - lse) is at most 1, use it as is"
    )
    for g, want in zip(got, _autograd_grads(q, k, v, grad_out)):
        assert_close(g, want)


@ex("attention_backward")
def test_attention_backward_float32_scores_beyond_exp_range(learner):
    # in float32 exp(S) overflows above ~88.7 while exp(S - lse) <= 1 never does
    q, k, v = (_randn(4, 16, seed=s, scale=12.0).float() for s in (34, 35, 36))
    grad_out = _randn(4, 16, seed=37).float()
    out, lse = _forward(q, k, v)
    assert (q @ k.T / 4.0).max() > 100.0  # the premise of the test
    got = require(learner, "attention_backward")(q, k, v, out, lse, grad_out)
    assert all(torch.isfinite(g).all() for g in got), (
        "float32 scores above 88 gave inf or NaN: compute exp(S - lse), not exp(S) / exp(lse)"
    )
    want = _autograd_grads(q.double(), k.double(), v.double(), grad_out.double())
    for g, w in zip(got, want):
        assert_close(g.double(), w, rtol=1e-3, atol=1e-3)

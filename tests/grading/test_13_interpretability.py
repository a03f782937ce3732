"""Grader for chapter 13's exercises (how far attention explains).

Each exercise is checked against attnkit's implementation *and* against an independent
reference written here: an explicit product of 2 x 2 matrices worked out by hand, a
finite-difference derivative, a brute-force re-run of the model on each shortened
sentence, and ``scipy.stats.kendalltau``. Every test calls the learner's function, so
every test fails on the untouched exercise file.
"""

from __future__ import annotations

import math

import pytest
import scipy.stats
import torch
from torch.testing import assert_close

from attnkit.grading import require
from attnkit.interpret import attention_rollout, gradient_x_input, kendall_tau, leave_one_out
from attnkit.models.text_classifier import TransformerClassifier

CHAPTER = "13"
ex = pytest.mark.exercise


def _model(pooling: str, num_layers: int = 2, dtype=torch.float32) -> TransformerClassifier:
    torch.manual_seed(1)
    m = TransformerClassifier(
        14, 3, d_model=16, num_heads=2, num_layers=num_layers, d_ff=32, dropout=0.0,
        pooling=pooling,
    )  # fmt: skip
    return m.to(dtype).eval()


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 14, (4, 7), generator=g)
    mask = torch.arange(7)[None, :] < torch.tensor([[7], [4], [2], [1]])
    return ids.masked_fill(~mask, 0), mask


# ------------------------------------------------------------------------- rollout
@ex("rollout")
def test_rollout_by_hand(learner):
    fn = require(learner, "rollout")
    w1 = torch.tensor([[[[1.0, 0.0], [0.5, 0.5]], [[0.0, 1.0], [0.5, 0.5]]]])  # 2 heads
    w2 = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])
    # head mean of w1: [[.5, .5], [.5, .5]] -> 0.5 A + 0.5 I = [[.75, .25], [.25, .75]]
    # w2 -> [[.5, .5], [0, 1]]; rollout = A2 A1
    want = torch.tensor([[[0.5, 0.5], [0.25, 0.75]]])
    got = fn([w1, w2])
    assert got.shape == (1, 2, 2), f"expected shape (1, 2, 2), got {tuple(got.shape)}"
    assert_close(
        got, want, msg="rollout must be (0.5 A2 + 0.5 I) @ (0.5 A1 + 0.5 I), A = head mean"
    )
    assert_close(fn([w1]), torch.tensor([[[0.75, 0.25], [0.25, 0.75]]]), msg="one layer")
    assert not torch.allclose(fn([w2, w1]), want), "the order matters: the last layer goes left"


@ex("rollout")
@pytest.mark.parametrize("num_layers", [1, 3])
def test_rollout_matches_attnkit(learner, num_layers):
    model = _model("cls", num_layers)
    ids, mask = _batch(1)
    _, atts, _ = model(ids, mask, return_attention=True)
    got = require(learner, "rollout")(atts)
    assert_close(got, attention_rollout(atts), msg="differs from attnkit's attention_rollout")
    assert_close(got.sum(-1), torch.ones(4, 7), msg="rows of the rollout must sum to 1")


# -------------------------------------------------------------------- grad x input
@ex("grad_times_input")
def test_grad_times_input_known_gradient(learner):
    fn = require(learner, "grad_times_input")
    e = torch.randn(3, 4, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    w = torch.randn(5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    got = fn(lambda x: torch.tanh(x @ w).sum(-1), e)
    # d/dx tanh(x.w) = (1 - tanh^2) w  -> g = (1 - tanh^2(e.w)) (e.w)
    s = e @ w
    assert got.shape == (3, 4), f"expected (B, T) = (3, 4), got {tuple(got.shape)}"
    assert_close(got, (1 - torch.tanh(s) ** 2) * s, msg="gradient x input of tanh(e . w) is wrong")
    assert not got.requires_grad, "return a tensor without a gradient graph (detach it)"
    assert e.grad is None and not e.requires_grad, "do not modify emb"


@ex("grad_times_input")
def test_grad_times_input_matches_attnkit_and_finite_differences(learner):
    fn = require(learner, "grad_times_input")
    model = _model("attention", dtype=torch.float64)
    ids, mask = _batch(2)
    target = torch.tensor([0, 2, 1, 1])
    emb = model.embed_tokens(ids).detach()

    def f(x):
        return model.forward_embeddings(x, mask).gather(1, target[:, None])[:, 0]

    got = fn(f, emb) * mask
    assert_close(got, gradient_x_input(model, ids, mask, target), msg="differs from attnkit")
    # central finite differences along e_t itself: d/da f(e with e_t scaled by a) at a = 1
    b, t, h = 0, 3, 1e-5
    up, down = emb.clone(), emb.clone()
    up[b, t] *= 1 + h
    down[b, t] *= 1 - h
    with torch.no_grad():
        fd = (f(up)[b] - f(down)[b]) / (2 * h)
    assert abs(float(got[b, t]) - float(fd)) < 1e-6, "disagrees with a finite difference"


# ---------------------------------------------------------------------- leave one out
def _probs(model):
    return lambda i, m: torch.softmax(model(i, m), -1)


@ex("leave_one_out_scores")
@pytest.mark.parametrize("pooling", ["cls", "mean", "attention"])
def test_leave_one_out_matches_attnkit(learner, pooling):
    model = _model(pooling)
    ids, mask = _batch(3)
    target = torch.tensor([2, 0, 1, 0])
    got = require(learner, "leave_one_out_scores")(_probs(model), ids, mask, target)
    assert got.shape == (4, 7), f"expected (B, T) = (4, 7), got {tuple(got.shape)}"
    want = leave_one_out(model, ids, mask, target).to(got.dtype)
    assert_close(got, want, atol=1e-6, rtol=1e-5, msg="differs from attnkit's leave_one_out")
    assert (got[~mask] == 0).all(), "padding positions must get 0"
    assert (got[3] == 0).all(), "a row with a single real token must get 0 everywhere"


@ex("leave_one_out_scores")
def test_leave_one_out_brute_force(learner):
    model = _model("mean")
    ids, mask = _batch(4)
    target = torch.tensor([1, 1, 2, 0])
    got = require(learner, "leave_one_out_scores")(_probs(model), ids, mask, target)
    with torch.no_grad():
        for b in range(3):
            seq = ids[b][mask[b]].tolist()
            p = torch.softmax(model(torch.tensor([seq])), -1)[0, target[b]]
            for t in range(len(seq)):
                short = torch.tensor([seq[:t] + seq[t + 1 :]])
                q = torch.softmax(model(short), -1)[0, target[b]]
                assert abs(float(got[b, t]) - float(p - q)) < 1e-5, (
                    f"row {b}, token {t}: expected p(full) - p(token deleted) = {float(p - q):.5f}"
                )


@ex("leave_one_out_scores")
def test_leave_one_out_counting_model(learner):
    def share_of_sevens(ids, mask):
        share = ((ids == 7) & mask).sum(-1) / mask.sum(-1)
        return torch.stack([1 - share, share], dim=-1)

    ids = torch.tensor([[7, 7, 5, 0, 0], [5, 5, 5, 7, 5]])
    got = require(learner, "leave_one_out_scores")(
        share_of_sevens, ids, ids != 0, torch.tensor([1, 0])
    )
    # row 0: p(1) = 2/3; without a 7 -> 1/2, without the 5 -> 1
    # row 1: p(0) = 0.8; without a 5 -> 0.75, without the 7 -> 1
    want = torch.tensor(
        [[2 / 3 - 1 / 2, 2 / 3 - 1 / 2, 2 / 3 - 1, 0, 0], [0.05, 0.05, 0.05, -0.2, 0.05]]
    )
    assert_close(got.double(), want.double(), msg="wrong erasure scores for a hand-checkable model")


# ------------------------------------------------------------------------ kendall tau
@ex("kendall_tau_b")
def test_kendall_tau_b_matches_scipy(learner):
    fn = require(learner, "kendall_tau_b")
    g = torch.Generator().manual_seed(0)
    for n in (7, 3, 12, 2):  # ties (tau_b != tau_a) before the constant vectors of n = 2
        for _ in range(4):
            a = torch.randint(0, 4, (n,), generator=g).double()  # ties likely
            b = torch.randn(n, generator=g, dtype=torch.float64).round()
            want = scipy.stats.kendalltau(a.numpy(), b.numpy()).statistic
            got = fn(a, b)
            if math.isnan(want):
                assert math.isnan(got), f"a constant input must give nan, got {got}"
            else:
                assert abs(got - want) < 1e-12, f"tau_b({a.tolist()}, {b.tolist()}) = {want}"


@ex("kendall_tau_b")
def test_kendall_tau_b_special_cases_and_attnkit(learner):
    fn = require(learner, "kendall_tau_b")
    x = torch.arange(6.0)
    assert fn(x, x * 3 + 1) == pytest.approx(1.0), "the same order must give 1"
    assert fn(x, -x) == pytest.approx(-1.0), "the reversed order must give -1"
    assert math.isnan(fn(x, torch.zeros(6))), "a constant vector must give nan"
    assert isinstance(fn(x, x), float), "return a Python float"
    g = torch.Generator().manual_seed(5)
    a, b = torch.randn(2, 5, 9, generator=g, dtype=torch.float64)
    want = kendall_tau(a, b, torch.ones(5, 9, dtype=torch.bool))
    got = torch.tensor([fn(a[i], b[i]) for i in range(5)], dtype=torch.float64)
    assert_close(got, want, msg="differs from attnkit's kendall_tau")

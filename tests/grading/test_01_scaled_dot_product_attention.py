"""Grader for chapter 1's exercises: each function is compared with attnkit.

Every test must fail on the untouched exercise file (they all call the learner's
function) and pass on the solution; ``tests/test_grader.py`` checks both.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

import attnkit as ak
from attnkit.grading import require

CHAPTER = "01"
ex = pytest.mark.exercise


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _qkv(shape_q, n_k, d_v, seed, dtype=torch.float64):
    g = _gen(seed)
    *batch, n_q, d_k = shape_q
    q = torch.randn(*batch, n_q, d_k, generator=g, dtype=dtype)
    k = torch.randn(*batch, n_k, d_k, generator=g, dtype=dtype)
    v = torch.randn(*batch, n_k, d_v, generator=g, dtype=dtype)
    return q, k, v


@pytest.fixture
def with_reference_helpers(learner, monkeypatch):
    """Grade ``scaled_dot_product_attention`` on its own: the helpers it may call
    (the learner's ``attention_scores`` / ``masked_softmax``) are replaced by attnkit's."""

    def scores(q, k, scale=None):
        return (q @ k.transpose(-2, -1)) * (1 / math.sqrt(q.shape[-1]) if scale is None else scale)

    monkeypatch.setattr(learner, "attention_scores", scores, raising=False)
    monkeypatch.setattr(learner, "masked_softmax", ak.masked_softmax, raising=False)
    return learner


# ---------------------------------------------------------------- attention_scores
@ex("attention_scores")
@pytest.mark.parametrize("shape_q,n_k", [((3, 4), 5), ((2, 3, 7, 8), 2), ((1, 1), 1)])
def test_attention_scores_default_scale(learner, shape_q, n_k):
    q, k, _ = _qkv(shape_q, n_k, 1, seed=len(shape_q) + n_k)
    got = require(learner, "attention_scores")(q, k)
    want_shape = (*shape_q[:-1], n_k)
    assert got.shape == want_shape, f"expected shape {want_shape}, got {tuple(got.shape)}"
    assert_close(got, q @ k.transpose(-2, -1) / math.sqrt(shape_q[-1]))


@ex("attention_scores")
def test_attention_scores_custom_scale(learner):
    q, k, _ = _qkv((2, 3, 6), 4, 1, seed=3)
    got = require(learner, "attention_scores")(q, k, scale=0.5)
    assert_close(got, 0.5 * q @ k.transpose(-2, -1), msg="scale=0.5 must multiply q k^T by 0.5")


@ex("attention_scores")
def test_attention_scores_scale_zero_is_a_scale(learner):
    # scale=0.0 is a valid scale (all scores 0, uniform attention), not "no scale given"
    q, k, _ = _qkv((3, 4), 5, 1, seed=4)
    got = require(learner, "attention_scores")(q, k, scale=0.0)
    assert_close(got, torch.zeros(3, 5, dtype=q.dtype), msg="scale=0.0 must give all-zero scores")


# ------------------------------------------------------------------ masked_softmax
@ex("masked_softmax")
def test_masked_softmax_no_mask_equals_softmax(learner):
    s = torch.randn(4, 3, 7, generator=_gen(0), dtype=torch.float64)
    assert_close(require(learner, "masked_softmax")(s), torch.softmax(s, dim=-1))


@ex("masked_softmax")
def test_masked_softmax_large_scores_do_not_overflow(learner):
    s = torch.tensor([[1000.0, 1001.0, 1002.0], [-1000.0, 0.0, 1000.0]], dtype=torch.float32)
    got = require(learner, "masked_softmax")(s)
    assert torch.isfinite(got).all(), "scores of 1000 overflowed: subtract the row maximum first"
    assert_close(got, torch.softmax(s.double(), -1).float())


@ex("masked_softmax")
def test_masked_softmax_respects_mask(learner):
    s = torch.randn(2, 5, 6, generator=_gen(1), dtype=torch.float64)
    mask = torch.rand(2, 5, 6, generator=_gen(2)) > 0.4
    mask[..., 0] = True
    got = require(learner, "masked_softmax")(s, mask)
    assert (got[~mask] == 0).all(), "masked positions must get weight exactly 0"
    assert_close(got, ak.masked_softmax(s, mask))


@ex("masked_softmax")
def test_masked_softmax_broadcast_mask(learner):
    s = torch.randn(3, 4, 5, generator=_gen(3), dtype=torch.float64)
    mask = torch.tensor([True, True, False, True, False])  # broadcasts over (3, 4, 5)
    assert_close(require(learner, "masked_softmax")(s, mask), ak.masked_softmax(s, mask))


@ex("masked_softmax")
def test_masked_softmax_fully_masked_row_is_zero(learner):
    s = torch.randn(3, 4, generator=_gen(4), dtype=torch.float64, requires_grad=True)
    mask = torch.ones(3, 4, dtype=torch.bool)
    mask[1] = False
    got = require(learner, "masked_softmax")(s, mask)
    assert not torch.isnan(got).any(), "a fully masked row gave NaN; it must be all zeros"
    assert (got[1] == 0).all(), "a fully masked row must be all zeros"
    assert_close(got[[0, 2]], torch.softmax(s[[0, 2]], -1))
    (got * torch.arange(4.0, dtype=torch.float64)).sum().backward()
    assert torch.isfinite(s.grad).all(), "the gradient through a fully masked row must not be NaN"


# ---------------------------------------------------- scaled_dot_product_attention
@ex("scaled_dot_product_attention")
@pytest.mark.parametrize(
    "shape_q,n_k,d_v", [((5, 8), 5, 8), ((2, 4, 16), 7, 3), ((2, 3, 6, 4), 9, 5), ((1, 1), 1, 1)]
)
def test_sdpa_matches_torch(with_reference_helpers, shape_q, n_k, d_v):
    q, k, v = _qkv(shape_q, n_k, d_v, seed=sum(shape_q) + n_k)
    got = require(with_reference_helpers, "scaled_dot_product_attention")(q, k, v)
    want = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    assert got.shape == want.shape, f"expected shape {tuple(want.shape)}, got {tuple(got.shape)}"
    assert_close(got, want)


@ex("additive_scores")
def test_additive_scores_square_sizes(learner):
    # n_q = n_k and d_q = d_k = h: shapes alone no longer catch a missing transpose or
    # pairs (i, i) only, the values do
    g = _gen(30)
    n, d = 4, 4
    q, k = (
        torch.randn(n, d, generator=g, dtype=torch.float64),
        torch.randn(n, d, generator=g, dtype=torch.float64),
    )
    w_q, w_k = (
        torch.randn(d, d, generator=g, dtype=torch.float64),
        torch.randn(d, d, generator=g, dtype=torch.float64),
    )
    w = torch.randn(d, generator=g, dtype=torch.float64)
    got = require(learner, "additive_scores")(q, k, w_q, w_k, w)
    want = torch.tanh((q @ w_q.T)[:, None, :] + (k @ w_k.T)[None, :, :]) @ w
    assert got.shape == (n, n), f"expected shape {(n, n)}, got {tuple(got.shape)}"
    assert_close(got, want)


@ex("scaled_dot_product_attention")
def test_sdpa_with_causal_and_padding_mask(with_reference_helpers):
    q, k, v = _qkv((2, 6, 4), 6, 4, seed=11)
    mask = ak.causal_mask(6) & ak.padding_mask(torch.tensor([6, 4]))[:, None, :]
    got = require(with_reference_helpers, "scaled_dot_product_attention")(q, k, v, mask)
    assert_close(got, ak.scaled_dot_product_attention(q, k, v, mask))


@ex("scaled_dot_product_attention")
def test_sdpa_fully_masked_query_gives_zero(with_reference_helpers):
    q, k, v = _qkv((3, 4), 5, 2, seed=12)
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[2] = False
    got = require(with_reference_helpers, "scaled_dot_product_attention")(q, k, v, mask)
    assert torch.isfinite(got).all(), "output must be finite for a query that sees no key"
    assert (got[2] == 0).all(), "a query that may attend to no key must output zeros"


@ex("scaled_dot_product_attention")
def test_sdpa_uses_one_over_sqrt_dk(with_reference_helpers):
    # Large d_k: dividing by d_k (or n) instead of sqrt(d_k) gives visibly different output.
    q, k, v = _qkv((4, 64), 6, 3, seed=13)
    got = require(with_reference_helpers, "scaled_dot_product_attention")(q, k, v)
    assert_close(got, torch.softmax(q @ k.T / 8.0, -1) @ v, msg="scale the scores by 1/sqrt(d_k)")


# ---------------------------------------------------------------------- causal_mask
@ex("causal_mask")
@pytest.mark.parametrize("n", [1, 2, 5, 9])
def test_causal_mask_square(learner, n):
    got = require(learner, "causal_mask")(n)
    assert got.dtype == torch.bool, f"the mask must be bool, got {got.dtype}"
    assert torch.equal(got, torch.ones(n, n, dtype=torch.bool).tril())


@ex("causal_mask")
@pytest.mark.parametrize("n_q,n_k", [(1, 6), (2, 5), (4, 4), (3, 8)])
def test_causal_mask_with_cache(learner, n_q, n_k):
    got = require(learner, "causal_mask")(n_q, n_k)
    assert got.shape == (n_q, n_k), f"expected shape {(n_q, n_k)}, got {tuple(got.shape)}"
    assert torch.equal(got, ak.causal_mask(n_q, n_k)), "the last query must see every key"


# --------------------------------------------------------------------- padding_mask
@ex("padding_mask")
def test_padding_mask_basic(learner):
    lengths = torch.tensor([3, 1, 4, 2])
    got = require(learner, "padding_mask")(lengths)
    assert got.dtype == torch.bool, f"the mask must be bool, got {got.dtype}"
    assert torch.equal(got, ak.padding_mask(lengths))


@ex("padding_mask")
def test_padding_mask_zero_length_and_max_len(learner):
    lengths = torch.tensor([0, 2, 5])
    got = require(learner, "padding_mask")(lengths, max_len=7)
    assert got.shape == (3, 7), f"expected shape (3, 7), got {tuple(got.shape)}"
    assert torch.equal(got, ak.padding_mask(lengths, max_len=7))


@ex("padding_mask")
def test_padding_mask_large_batch_is_vectorised_correctly(learner):
    lengths = torch.randint(0, 50, (200,), generator=_gen(5))
    assert torch.equal(require(learner, "padding_mask")(lengths), ak.padding_mask(lengths))


# ------------------------------------------------------------------- additive_scores
@ex("additive_scores")
@pytest.mark.parametrize("batch", [(), (2,), (2, 3)])
def test_additive_scores_match_loop(learner, batch):
    g = _gen(len(batch) + 20)
    d_q, d_k, h, n_q, n_k = 3, 5, 7, 4, 6
    q = torch.randn(*batch, n_q, d_q, generator=g, dtype=torch.float64)
    k = torch.randn(*batch, n_k, d_k, generator=g, dtype=torch.float64)
    w_q = torch.randn(h, d_q, generator=g, dtype=torch.float64)
    w_k = torch.randn(h, d_k, generator=g, dtype=torch.float64)
    w = torch.randn(h, generator=g, dtype=torch.float64)
    got = require(learner, "additive_scores")(q, k, w_q, w_k, w)
    want = torch.empty(*batch, n_q, n_k, dtype=torch.float64)
    for i in range(n_q):
        for j in range(n_k):
            want[..., i, j] = torch.tanh(q[..., i, :] @ w_q.T + k[..., j, :] @ w_k.T) @ w
    assert got.shape == want.shape, f"expected shape {tuple(want.shape)}, got {tuple(got.shape)}"
    assert_close(got, want)

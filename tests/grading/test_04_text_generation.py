"""Grader for chapter 4's exercises (measuring and decoding a language model).

References: explicit formulas and loops, torch.nn.functional.cross_entropy, and
attnkit.decoding.filter_logits.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

import attnkit as ak
from attnkit.grading import require

CHAPTER = "04"
ex = pytest.mark.exercise


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------ perplexity
@ex("perplexity")
def test_perplexity_matches_cross_entropy(learner):
    g = _gen(0)
    logits = torch.randn(3, 7, 11, generator=g, dtype=torch.float64)
    targets = torch.randint(0, 11, (3, 7), generator=g)
    mask = torch.ones(3, 7, dtype=torch.bool)
    got = require(learner, "perplexity")(logits, targets, mask)
    want = math.exp(F.cross_entropy(logits.reshape(-1, 11), targets.reshape(-1)).item())
    assert isinstance(got, float), f"return a Python float, not {type(got).__name__}"
    assert abs(float(got) - want) < 1e-6 * want


@ex("perplexity")
def test_perplexity_ignores_masked_positions(learner):
    g = _gen(1)
    logits = torch.randn(2, 5, 6, generator=g, dtype=torch.float64)
    targets = torch.randint(0, 6, (2, 5), generator=g)
    mask = torch.tensor([[True, True, True, False, False], [True, False, False, False, False]])
    got = require(learner, "perplexity")(logits, targets, mask)
    want = math.exp(F.cross_entropy(logits[mask], targets[mask]).item())
    assert abs(float(got) - want) < 1e-6 * want, "only positions where mask is True count"


# ------------------------------------------------------------------ bigram_log_probs
@ex("bigram_log_probs")
@pytest.mark.parametrize("alpha", [1.0, 0.1])
def test_bigram_table_matches_counting(learner, alpha):
    ids = torch.randint(0, 5, (200,), generator=_gen(2))
    got = require(learner, "bigram_log_probs")(ids, 5, alpha)
    counts = torch.full((5, 5), alpha, dtype=torch.float64)
    for a, b in zip(ids[:-1].tolist(), ids[1:].tolist()):
        counts[a, b] += 1
    want = torch.log(counts / counts.sum(1, keepdim=True))
    assert tuple(got.shape) == (5, 5), f"expected shape (5, 5), got {tuple(got.shape)}"
    assert_close(torch.as_tensor(got, dtype=torch.float64), want)


@ex("bigram_log_probs")
def test_bigram_rows_are_distributions_with_unseen_tokens(learner):
    got = require(learner, "bigram_log_probs")(torch.tensor([0, 0, 0]), 4, 0.5)
    assert_close(got.double().exp().sum(-1), torch.ones(4, dtype=torch.float64))


# ----------------------------------------------------------------------- top_k_filter
@ex("top_k_filter")
@pytest.mark.parametrize("k", [1, 3, 10])
def test_top_k_filter(learner, k):
    logits = torch.randn(4, 3, 10, generator=_gen(k))
    before = logits.clone()
    got = require(learner, "top_k_filter")(logits, k)
    assert torch.equal(logits, before), "do not change the caller's logits: filter a copy"
    assert torch.equal(got, ak.filter_logits(logits, top_k=k))


# ----------------------------------------------------------------------- top_p_filter
@ex("top_p_filter")
@pytest.mark.parametrize("p", [0.05, 0.5, 0.9, 1.0])
def test_top_p_filter(learner, p):
    logits = torch.randn(5, 12, generator=_gen(int(p * 100))) * 2
    got = require(learner, "top_p_filter")(logits, p)
    assert torch.equal(got, ak.filter_logits(logits, top_p=p))


@ex("top_p_filter")
def test_top_p_keeps_minimal_set(learner):
    logits = torch.log(torch.tensor([[0.4, 0.3, 0.2, 0.1]]))
    kept = torch.isfinite(require(learner, "top_p_filter")(logits, 0.7))
    assert kept.tolist() == [[True, True, False, False]], "0.4 + 0.3 reaches p = 0.7: keep two"


# ----------------------------------------------------------------------------- sample
@ex("sample")
def test_sample_greedy_at_zero_temperature(learner):
    logits = torch.randn(7, 9, generator=_gen(3))
    got = require(learner, "sample")(logits, 0.0, _gen(0))
    assert torch.equal(got, logits.argmax(-1))


@ex("sample")
@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_sample_reproduces_multinomial(learner, temperature):
    logits = torch.randn(6, 8, generator=_gen(4))
    got = require(learner, "sample")(logits, temperature, _gen(11))
    want = torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=_gen(11))
    assert got.shape == (6,), f"expected shape (6,), got {tuple(got.shape)}"
    msg = "draw with torch.multinomial(probs, 1, generator=...)"
    assert torch.equal(got, want.squeeze(-1)), msg


# -------------------------------------------------------------------------- beam_step
@ex("beam_step")
@pytest.mark.parametrize("k,v,beam", [(1, 6, 3), (3, 5, 3), (4, 7, 2)])
def test_beam_step_matches_exhaustive_ranking(learner, k, v, beam):
    g = _gen(k * 10 + v)
    scores = -torch.rand(k, generator=g, dtype=torch.float64) * 3
    log_probs = torch.log_softmax(torch.randn(k, v, generator=g, dtype=torch.float64), -1)
    got_scores, parents, tokens = require(learner, "beam_step")(scores, log_probs, beam)
    candidates = sorted(
        ((scores[i] + log_probs[i, j]).item(), i, j) for i in range(k) for j in range(v)
    )[::-1][:beam]
    assert_close(got_scores, torch.tensor([c[0] for c in candidates], dtype=torch.float64))
    assert parents.tolist() == [c[1] for c in candidates], "parents: which beam each extends"
    assert tokens.tolist() == [c[2] for c in candidates], "tokens: the id each candidate adds"

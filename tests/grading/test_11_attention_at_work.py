"""Grader for chapter 11's exercises (attention at work).

Each exercise is checked against attnkit (``attnkit.metrics``, ``attnkit.models.span_qa``,
``attnkit.models.text_classifier``, ``attnkit.data.summaries``) *and* against an
independent reference written here or taken from a package: hand-worked F1 values, a
brute-force loop over all spans, an explicit per-row softmax, the ``rouge-score``
package, and sentence lists. Every test calls the learner's function, so every test fails
on the untouched exercise file.
"""

from __future__ import annotations

import itertools
import random

import pytest
import torch
from rouge_score import rouge_scorer
from torch.testing import assert_close

from attnkit.data.summaries import lead_k, make_document
from attnkit.grading import require
from attnkit.metrics import token_f1
from attnkit.models.span_qa import best_span
from attnkit.models.text_classifier import attention_pool

CHAPTER = "11"
ex = pytest.mark.exercise


# --------------------------------------------------------------------------- squad_f1
@ex("squad_f1")
@pytest.mark.parametrize(
    ("pred", "truth", "want"),
    [
        ("the red ball", "a ball", 2 / 3),  # p = 1/2, r = 1
        ("ball ball", "ball", 2 / 3),  # counted with multiplicity
        ("ball ball", "ball ball", 1.0),  # a set intersection would count 1 of 2
        ("john went home", "john went to bed", 4 / 7),  # p = 2/3, r = 1/2
        ("The Garden!", "garden", 1.0),  # normalisation
        ("kitchen", "garden", 0.0),
        ("the", "a", 0.0),  # both empty after normalisation: 0, as in v1.1
        ("", "", 0.0),
        ("the theatre", "theatre", 1.0),  # articles only as whole words
    ],
)
def test_squad_f1_hand_worked(learner, pred, truth, want):
    got = require(learner, "squad_f1")(pred, truth)
    assert got == pytest.approx(want), f"squad_f1({pred!r}, {truth!r}) should be {want:.4f}"


@ex("squad_f1")
def test_squad_f1_matches_attnkit(learner):
    fn = require(learner, "squad_f1")
    rng = random.Random(0)
    words = ["the", "a", "an", "red", "ball", "Ball,", "garden.", "Garden", "tom's", "x"]
    for _ in range(200):
        p = " ".join(rng.choices(words, k=rng.randint(0, 5)))
        t = " ".join(rng.choices(words, k=rng.randint(1, 5)))
        assert fn(p, t) == pytest.approx(token_f1(p, t)), f"differs from SQuAD on {p!r}, {t!r}"


# ------------------------------------------------------------------------- decode_span
def _brute(s, e, mask, max_len):
    best, arg = -float("inf"), None
    for i, j in itertools.product(range(len(s)), repeat=2):
        if mask[i] and mask[j] and i <= j < i + max_len and s[i] + e[j] > best:
            best, arg = s[i] + e[j], (i, j)
    return arg


@ex("decode_span")
@pytest.mark.parametrize("max_len", [1, 2, 3, 30])
def test_decode_span_matches_brute_force(learner, max_len):
    fn = require(learner, "decode_span")
    gen = torch.Generator().manual_seed(max_len)
    for first in range(0, 10, 3):
        s, e = torch.randn(11, generator=gen), torch.randn(11, generator=gen)
        mask = torch.arange(11) >= first
        got = fn(s, e, mask, max_len)
        want = _brute(s.tolist(), e.tolist(), mask.tolist(), max_len)
        assert tuple(int(x) for x in got) == want, (
            f"max_answer_len={max_len}: expected {want}, got {tuple(got)}"
        )


@ex("decode_span")
def test_decode_span_legal_and_matches_attnkit(learner):
    fn = require(learner, "decode_span")
    s = torch.tensor([0.0, -10.0, 5.0, 1.0, 0.5])
    e = torch.tensor([0.0, 9.0, 0.0, 1.0, 3.0])  # the best end lies before the best start
    m = torch.tensor([False, True, True, True, True])
    assert tuple(map(int, fn(s, e, m, 3))) == (2, 4), "spans need start <= end"
    assert tuple(map(int, fn(s, e, m, 1))) == (2, 2), "spans are at most max_answer_len long"
    # masked positions never win, however high their scores
    assert tuple(
        map(
            int,
            fn(torch.tensor([9.0, 0.0]), torch.tensor([9.0, 0.0]), torch.tensor([False, True]), 2),
        )
    ) == (1, 1)
    gen = torch.Generator().manual_seed(7)
    S, E = torch.randn(5, 20, generator=gen), torch.randn(5, 20, generator=gen)
    M = torch.arange(20)[None] >= torch.tensor([[0], [4], [9], [15], [19]])
    st, en = best_span(S, E, M, 5)
    for b in range(5):
        assert tuple(map(int, fn(S[b], E[b], M[b], 5))) == (int(st[b]), int(en[b]))


@ex("decode_span")
def test_decode_span_ties(learner):
    fn = require(learner, "decode_span")
    mask = torch.tensor([False, True, True, True, True, True])
    zeros = torch.zeros(6)
    assert tuple(map(int, fn(zeros, zeros, mask, 3))) == (1, 1), (
        "all spans score the same: on ties return the smallest i, then the smallest j"
    )
    s = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0, 0.0])
    e = torch.tensor([0.0, 0.0, 1.0, 0.0, 1.0, 0.0])  # (1, 2) and (3, 4) both score 2
    assert tuple(map(int, fn(s, e, mask, 3))) == (1, 2), "on ties return the smallest i"


# ---------------------------------------------------------------------- attention_pool
@ex("attention_pool")
def test_attention_pool_matches_explicit_softmax(learner):
    fn = require(learner, "attention_pool")
    gen = torch.Generator().manual_seed(3)
    sc = torch.randn(3, 6, generator=gen, dtype=torch.float64)
    va = torch.randn(3, 6, 4, generator=gen, dtype=torch.float64)
    mk = torch.arange(6)[None] < torch.tensor([[6], [3], [1]])
    pooled, w = fn(sc, va, mk)
    for b in range(3):
        n = int(mk[b].sum())
        want_w = torch.exp(sc[b, :n]) / torch.exp(sc[b, :n]).sum()
        assert_close(w[b, :n], want_w, msg="weights = softmax of the scores of real tokens")
        assert torch.all(w[b, n:] == 0), "padding must get weight exactly 0"
        assert_close(pooled[b], (want_w[:, None] * va[b, :n]).sum(0), msg="weighted average")


@ex("attention_pool")
def test_attention_pool_matches_attnkit_and_ignores_padding(learner):
    fn = require(learner, "attention_pool")
    gen = torch.Generator().manual_seed(4)
    sc, va = torch.randn(4, 9, generator=gen), torch.randn(4, 9, 5, generator=gen)
    mk = torch.arange(9)[None] < torch.tensor([[9], [5], [2], [7]])
    pooled, w = fn(sc, va, mk)
    want_p, want_w = attention_pool(sc, va, mk)
    assert_close(w, want_w)
    assert_close(pooled, want_p)
    va2, sc2 = va.clone(), sc.clone()
    va2[~mk] = 1e3
    sc2[~mk] = 50.0
    pooled2, _ = fn(sc2, va2, mk)
    assert_close(pooled2, pooled, msg="padded positions changed the result")


@ex("attention_pool")
def test_attention_pool_rows_of_very_different_magnitude(learner):
    fn = require(learner, "attention_pool")
    gen = torch.Generator().manual_seed(5)
    offsets = torch.tensor([[1000.0], [-1000.0], [0.0]])  # float32 exp overflows above ~88
    sc = torch.randn(3, 5, generator=gen) * 3 + offsets
    va = torch.randn(3, 5, 2, generator=gen)
    mk = torch.arange(5)[None] < torch.tensor([[5], [3], [4]])
    originals = (sc.clone(), va.clone(), mk.clone())
    pooled, w = fn(sc, va, mk)
    assert torch.isfinite(w).all() and torch.isfinite(pooled).all(), (
        "scores of +-1000 overflowed exp: subtract each row's maximum (torch.softmax does)"
    )
    want_p, want_w = attention_pool(sc - offsets, va, mk)  # softmax ignores a per-row constant
    assert_close(w, want_w, msg="weights of rows with very large or very small scores")
    assert_close(pooled, want_p)
    assert all(torch.equal(a, b) for a, b in zip((sc, va, mk), originals)), (
        "do not modify the inputs"
    )


# ---------------------------------------------------------------------------- rouge_l_f
@ex("rouge_l_f")
@pytest.mark.parametrize(
    ("pred", "ref", "want"),
    [
        ("a b c d", "a b c d", 1.0),
        ("a b c d", "d c b a", 0.25),  # LCS 1
        ("tom injured rome", "tom injured rome and ivan elected oslo", 0.6),  # p 1, r 3/7
        ("x y", "z", 0.0),
        ("a x b y c", "a b c", 0.75),  # LCS 3: p 3/5, r 1
    ],
)
def test_rouge_l_hand_worked(learner, pred, ref, want):
    got = require(learner, "rouge_l_f")(pred, ref)
    assert got == pytest.approx(want), f"rouge_l_f({pred!r}, {ref!r}) should be {want}"


@ex("rouge_l_f")
def test_rouge_l_matches_rouge_score(learner):
    fn = require(learner, "rouge_l_f")
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    rng = random.Random(1)
    vocab = ["tom", "rome", "was", "injured", "in", "on", "friday", "police", "men"]
    for _ in range(150):
        p = " ".join(rng.choices(vocab, k=rng.randint(1, 9)))
        r = " ".join(rng.choices(vocab, k=rng.randint(1, 9)))
        want = scorer.score(r, p)["rougeL"].fmeasure
        assert fn(p, r) == pytest.approx(want), f"differs from rouge-score on {p!r} vs {r!r}"


# ----------------------------------------------------------------------- lead_k_summary
@ex("lead_k_summary")
def test_lead_k_matches_sentence_lists(learner):
    fn = require(learner, "lead_k_summary")
    rng = random.Random(2)
    for _ in range(50):
        doc = make_document(rng)
        for k in (1, 2, 3, 5, 8):
            want = " ".join(doc.sentences[:k])
            assert fn(doc.document, k) == want, f"k={k}: expected {want!r}"
            assert fn(doc.document, k) == lead_k(doc, k)


@ex("lead_k_summary")
def test_lead_k_edge_cases(learner):
    fn = require(learner, "lead_k_summary")
    assert fn("a b .", 1) == "a b ."
    assert fn("a b . c .", 1) == "a b ."
    assert fn("a b . c .", 2) == "a b . c ."
    assert fn("a b . c .", 10) == "a b . c ."
    assert fn("one . two . three .", 2) == "one . two ."

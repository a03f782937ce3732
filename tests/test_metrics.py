"""Tests of attnkit.metrics: SQuAD v1.1 EM/F1 by hand, ROUGE/BLEU wrappers vs the packages."""

from __future__ import annotations

import math

import pytest
import sacrebleu
from rouge_score import rouge_scorer

from attnkit.metrics import (
    bleu,
    exact_match,
    max_over_ground_truths,
    normalize_answer,
    rouge,
    squad_scores,
    token_f1,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("The Garden", "garden"),
        ("  the   garden . ", "garden"),
        ("An apple, a pear!", "apple pear"),
        ("theatre", "theatre"),  # articles only as whole words
        ("Anna's cat", "annas cat"),  # apostrophe is punctuation, removed in place
        ("the-end", "theend"),  # punctuation removed before article removal
        ("THE", ""),
        ("", ""),
    ],
)
def test_normalize_answer(raw, expected):
    assert normalize_answer(raw) == expected


def test_exact_match():
    assert exact_match("the garden", "Garden.")
    assert not exact_match("the garden", "the kitchen")
    assert not exact_match("garden shed", "garden")


def test_token_f1_hand_worked():
    # pred {the, red, ball} -> {red, ball}; truth {a, ball} -> {ball}: p=1/2, r=1 -> 2/3.
    assert token_f1("the red ball", "a ball") == pytest.approx(2 / 3)
    # Counts matter: pred "ball ball" vs "ball": overlap 1, p=1/2, r=1.
    assert token_f1("ball ball", "ball") == pytest.approx(2 / 3)
    # pred 3 tokens, truth 4 tokens, 2 in common: p=2/3, r=1/2, F1 = 4/7.
    assert token_f1("john went home", "john went to bed") == pytest.approx(4 / 7)
    assert token_f1("kitchen", "garden") == 0.0
    assert token_f1("The Garden", "garden") == 1.0


def test_token_f1_empty_cases_follow_v11_script():
    # v1.1: no common token -> 0, even when both normalise to nothing (v2.0 would give 1).
    assert token_f1("", "") == 0.0
    assert token_f1("the", "a") == 0.0
    assert token_f1("", "garden") == 0.0
    assert exact_match("the", "a")  # while EM says both are the empty answer


def test_max_over_ground_truths():
    refs = ["the kitchen", "kitchen table", "garden"]
    assert max_over_ground_truths(token_f1, "kitchen", refs) == 1.0
    assert max_over_ground_truths(token_f1, "table", refs) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="ground_truths"):
        max_over_ground_truths(token_f1, "x", [])
    with pytest.raises(TypeError, match="ground_truths"):
        max_over_ground_truths(token_f1, "x", "garden")


def test_squad_scores_percent_average():
    preds = ["the garden", "kitchen table", "bob"]
    refs = [["Garden"], ["the kitchen", "hall"], "mary"]
    out = squad_scores(preds, refs)
    assert out["exact_match"] == pytest.approx(100 / 3)
    assert out["f1"] == pytest.approx(100 * (1 + 2 / 3 + 0) / 3)
    with pytest.raises(ValueError, match="same length"):
        squad_scores(["a"], [])
    with pytest.raises(ValueError, match="at least one"):
        squad_scores([], [])


def test_rouge_wrapper_matches_package_mean():
    preds = ["the cat sat on the mat", "police arrested two men", "rain fell"]
    refs = ["the cat was sitting on the mat", "two men were arrested by police", "sun"]
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    want = {t: 0.0 for t in ("rouge1", "rouge2", "rougeL")}
    for p, r in zip(preds, refs):
        s = scorer.score(r, p)
        for t in want:
            want[t] += 100 * s[t].fmeasure / 3
    got = rouge(preds, refs)
    assert got == pytest.approx(want)
    # Hand check, pair 2, ROUGE-1 with stemming: "arrested" ~ "arrest" both stem to "arrest";
    # pred {police, arrest, two, men} all in ref (6 tokens): p = 1, r = 4/6 -> F = 0.8.
    assert rouge([preds[1]], [refs[1]])["rouge1"] == pytest.approx(80.0)
    # Stemming matters: without it "sitting" != "sat" etc. and scores can only drop.
    assert rouge(preds, refs, use_stemmer=False)["rouge1"] <= got["rouge1"]
    with pytest.raises(ValueError, match="same length"):
        rouge(["a"], ["a", "b"])


def test_bleu_wrapper_matches_sacrebleu():
    preds = ["the cat sat on the mat", "a dog ran in the park today"]
    refs = ["the cat sat on a mat", "the dog ran in the park today"]
    score, sig = bleu(preds, refs)
    assert score == pytest.approx(sacrebleu.corpus_bleu(preds, [refs]).score)
    assert sig.startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:")
    assert bleu(["a b c d"], ["a b c d"])[0] == pytest.approx(100.0)
    # Two references per sentence.
    s2, sig2 = bleu(preds, [[r, p] for p, r in zip(preds, refs)])
    assert s2 == pytest.approx(100.0) and sig2.startswith("nrefs:2")
    assert not math.isnan(score) and 0 < score < 100
    with pytest.raises(ValueError, match="same number"):
        bleu(preds, [["x"], ["y", "z"]])


@pytest.mark.parametrize(
    "call",
    [
        lambda: squad_scores("ab", "ab"),
        lambda: bleu("a b c d", ["a b c d"]),
        lambda: rouge("ab", ["ab"]),
    ],
)
def test_a_bare_string_is_not_a_list_of_predictions(call):
    """issue 21: squad_scores("ab", "ab") used to score two one-letter answers (EM 100)."""
    with pytest.raises(TypeError, match=r"predictions must be a list of str, got str"):
        call()

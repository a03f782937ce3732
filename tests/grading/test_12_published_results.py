"""Grader for chapter 12's exercises (what the published results say).

Each exercise is checked against attnkit or a reference package *and* against an
independent reference written here: ``attnkit.Seq2SeqTransformer`` and PyTorch's own
``nn.Transformer`` for the parameter count, SacreBLEU's statistics and a brute-force loop for
BLEU, ``attnkit.published`` and direct arithmetic for the compute estimate,
``attnkit.metrics`` and hand-checked cases for SQuAD. Every test calls the learner's
function, so every test fails on the untouched exercise file.
"""

from __future__ import annotations

import math
import random

import pytest
import torch
from sacrebleu.metrics import BLEU

import attnkit as ak
from attnkit import published as pub
from attnkit.grading import require
from attnkit.metrics import exact_match, max_over_ground_truths, token_f1

CHAPTER = "12"
ex = pytest.mark.exercise


# ----------------------------------------------------------- transformer_param_count
def _attnkit_count(vocab: int, d: int, d_ff: int, layers: int, heads: int, shared: bool) -> int:
    with torch.device("meta"):
        m = ak.Seq2SeqTransformer(
            vocab,
            vocab,
            d_model=d,
            num_heads=heads,
            num_encoder_layers=layers,
            num_decoder_layers=layers,
            d_ff=d_ff,
            norm_first=False,
        )
    if shared:
        m.src_embed.weight = m.tgt_embed.weight
    return ak.count_parameters(m)


CONFIGS = [
    (37000, 512, 2048, 6, 8),
    (37000, 1024, 4096, 6, 16),
    (100, 16, 32, 1, 2),
    (7, 8, 8, 3, 1),
    (32000, 256, 1024, 2, 4),
]


@ex("transformer_param_count")
@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("vocab,d,d_ff,layers,heads", CONFIGS)
def test_param_count_matches_attnkit(learner, vocab, d, d_ff, layers, heads, shared):
    got = require(learner, "transformer_param_count")(vocab, d, d_ff, layers, shared)
    want = _attnkit_count(vocab, d, d_ff, layers, heads, shared)
    assert isinstance(got, int), f"return an int, got {type(got).__name__}"
    assert got == want, (
        f"transformer_param_count({vocab}, {d}, {d_ff}, {layers}, {shared}) = {got}, but "
        f"attnkit's model has {want} parameters"
    )


@ex("transformer_param_count")
@pytest.mark.parametrize("vocab,d,d_ff,layers,heads", CONFIGS[:3])
def test_param_count_matches_torch_transformer(learner, vocab, d, d_ff, layers, heads):
    got = require(learner, "transformer_param_count")(vocab, d, d_ff, layers, True)
    with torch.device("meta"):
        t = torch.nn.Transformer(d, heads, layers, layers, d_ff, batch_first=True)
    # nn.Transformer has the same layers plus a final LayerNorm after each stack (4 d)
    want = sum(p.numel() for p in t.parameters()) - 4 * d + vocab * d
    assert got == want, f"expected {want} (PyTorch's nn.Transformer + one embedding), got {got}"


@ex("transformer_param_count")
def test_param_count_sharing_difference_is_one_embedding(learner):
    fn = require(learner, "transformer_param_count")
    for vocab, d in ((37000, 512), (10, 4)):
        diff = fn(vocab, d, 4 * d, 2, False) - fn(vocab, d, 4 * d, 2, True)
        assert diff == vocab * d, "separate source embedding adds exactly vocab_size * d_model"


# ---------------------------------------------------------- modified_ngram_precision
def _brute_precision(hyp, refs, n):
    grams = [tuple(hyp[i : i + n]) for i in range(len(hyp) - n + 1)]
    matches = 0
    for g in set(grams):
        in_refs = max(sum(tuple(r[i : i + n]) == g for i in range(len(r) - n + 1)) for r in refs)
        matches += min(grams.count(g), in_refs)
    return matches, len(grams)


def _random_corpus(seed: int, size: int, vocab: str = "abcdefg"):
    rng = random.Random(seed)
    hyps, refs = [], []
    for _ in range(size):
        hyps.append([rng.choice(vocab) for _ in range(rng.randint(4, 12))])
        refs.append(
            [
                [rng.choice(vocab) for _ in range(rng.randint(4, 12))]
                for _ in range(rng.randint(1, 3))
            ]
        )
    return hyps, refs


@ex("modified_ngram_precision")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_modified_precision_matches_brute_force(learner, seed):
    fn = require(learner, "modified_ngram_precision")
    hyps, refs = _random_corpus(seed, 20, vocab="abc")
    for h, rs in zip(hyps, refs, strict=True):
        for n in (1, 2, 3, 4):
            got = fn(h, rs, n)
            assert tuple(got) == _brute_precision(h, rs, n), (
                f"modified_ngram_precision({h}, {rs}, {n}) = {got}, "
                f"expected {_brute_precision(h, rs, n)}"
            )


@ex("modified_ngram_precision")
def test_modified_precision_matches_sacrebleu_statistics(learner):
    fn = require(learner, "modified_ngram_precision")
    hyps, refs = _random_corpus(5, 30)
    single = [rs[0] for rs in refs]
    stats = BLEU(tokenize="none", smooth_method="none").corpus_score(
        [" ".join(h) for h in hyps], [[" ".join(r) for r in single]]
    )
    for n in range(1, 5):
        pairs = [fn(h, [r], n) for h, r in zip(hyps, single, strict=True)]
        assert sum(p[0] for p in pairs) == stats.counts[n - 1], f"matches of {n}-grams"
        assert sum(p[1] for p in pairs) == stats.totals[n - 1], f"total {n}-grams"


@ex("modified_ngram_precision")
def test_modified_precision_edge_cases(learner):
    fn = require(learner, "modified_ngram_precision")
    refs = [["the", "cat", "is", "on", "the", "mat"], ["there", "is", "a", "cat"]]
    assert tuple(fn(["the"] * 7, refs, 1)) == (2, 7), "clip at the most in any ONE reference"
    assert tuple(fn(["cat"], refs, 2)) == (0, 0), "a 1-token hypothesis has no bigrams"
    assert tuple(fn([], refs, 1)) == (0, 0)
    assert tuple(fn(["the", "cat"], refs, 4)) == (0, 0), (
        "a hypothesis shorter than n has no n-grams: total is max(0, |hyp| - n + 1), never negative"
    )
    assert tuple(fn(["dog", "dog"], refs, 1)) == (0, 2)


# ---------------------------------------------------------------------- corpus_bleu
def _sacre(hyps, refs):
    n_refs = max(len(r) for r in refs)
    streams = [[" ".join(r[min(k, len(r) - 1)]) for r in refs] for k in range(n_refs)]
    return (
        BLEU(tokenize="none", smooth_method="none")
        .corpus_score([" ".join(h) for h in hyps], streams)
        .score
    )


@ex("corpus_bleu")
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_corpus_bleu_matches_sacrebleu(learner, seed):
    fn = require(learner, "corpus_bleu")
    hyps, refs = _random_corpus(seed, 40, vocab="abcd")
    # sacrebleu needs as many references for every sentence: keep 1, or pad to 3 by repeating
    refs = [[rs[0]] for rs in refs] if seed % 2 else [(rs * 3)[:3] for rs in refs]
    got = fn(hyps, refs)
    want = _sacre(hyps, refs)
    assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9), f"BLEU {got}, sacrebleu {want}"


@ex("corpus_bleu")
def test_corpus_bleu_brevity_penalty(learner):
    fn = require(learner, "corpus_bleu")
    ref = list("abcdefghij")
    full = fn([ref], [[ref]])
    assert math.isclose(full, 100.0), f"a perfect match scores 100, got {full}"
    short = fn([ref[:6]], [[ref]])
    assert math.isclose(short, 100.0 * math.exp(1 - 10 / 6)), (
        "all n-grams of a 6-token prefix match, so BLEU = 100 * BP = 100 * exp(1 - 10/6)"
    )
    # the closest reference length is used: a 6-token reference makes BP 1
    assert math.isclose(fn([ref[:6]], [[ref, ref[:6]]]), 100.0)
    # a tie between lengths 5 and 7 for a 6-token hypothesis picks the shorter: BP = 1
    tie = fn([ref[:6]], [[ref[:5], ref[:7]]])
    assert math.isclose(tie, _sacre([ref[:6]], [[ref[:5], ref[:7]]]))


@ex("corpus_bleu")
def test_corpus_bleu_zero_and_max_n(learner):
    fn = require(learner, "corpus_bleu")
    assert fn([["x", "y", "z"]], [[["a", "b", "c"]]]) == 0.0, "no match gives 0"
    assert fn([["a", "b", "c"]], [[["a", "b", "c"]]]) == 0.0, "no 4-gram at all gives 0"
    got = fn([["a", "b", "c"]], [[["a", "b", "c"]]], max_n=3)
    assert math.isclose(got, 100.0), f"max_n=3 on an exact 3-token match gives 100, got {got}"
    hyps, refs = _random_corpus(9, 25, vocab="ab")
    got2 = fn(hyps, refs, max_n=2)
    stats = [[_brute_precision(h, r, n) for h, r in zip(hyps, refs, strict=True)] for n in (1, 2)]
    m = [sum(s[0] for s in per_n) for per_n in stats]
    t = [sum(s[1] for s in per_n) for per_n in stats]
    c = sum(len(h) for h in hyps)
    r = sum(
        min((len(x) for x in rs), key=lambda k, h=h: (abs(k - len(h)), k))
        for h, rs in zip(hyps, refs, strict=True)
    )
    bp = 1.0 if c > r else math.exp(1 - r / c)
    want = 100 * bp * math.exp((math.log(m[0] / t[0]) + math.log(m[1] / t[1])) / 2)
    assert math.isclose(got2, want, rel_tol=1e-9), f"BLEU-2 {got2}, expected {want}"


# ---------------------------------------------------------------- implied_utilization
@ex("implied_utilization")
def test_implied_utilization_against_attnkit_gpu_budget(learner):
    fn = require(learner, "implied_utilization")
    for n, d, hours, gpus, tflops in (
        (63e6, 2.5e9, 12, 8, pub.P100_TFLOPS),
        (1e8, 1e9, 10.0, 4, 100.0),
        (3.4e8, 3.3e10, 96.0, 16, 45.0),
    ):
        budget = pub.training_flops_from_gpu_time(hours, gpus, tflops)
        got = fn(n, d, hours, gpus, tflops)
        assert math.isclose(got, 6 * n * d / budget, rel_tol=1e-12), f"got {got}"


@ex("implied_utilization")
def test_implied_utilization_scaling(learner):
    fn = require(learner, "implied_utilization")
    base = fn(1e6, 1e6, 1.0, 1, 1.0)
    assert math.isclose(base, 6e12 / 3.6e15), (
        f"1e6 params x 1e6 tokens in 1 GPU-hour at 1 TFLOPS: {base}"
    )
    assert math.isclose(fn(2e6, 1e6, 1.0, 1, 1.0), 2 * base), "linear in the parameters"
    assert math.isclose(fn(1e6, 1e6, 2.0, 1, 1.0), base / 2), "inverse in the hours"
    assert math.isclose(fn(1e6, 1e6, 1.0, 4, 1.0), base / 4), "inverse in the GPUs"


# ------------------------------------------------------------------------ squad_em_f1
CASES = [
    ("the Eiffel Tower", ["Eiffel Tower", "The Eiffel Tower"]),
    ("in 1889", ["1889"]),
    ("Gustave Eiffel's company", ["Gustave Eiffel", "the company of Gustave Eiffel"]),
    ("Paris, France", ["Paris"]),
    ("An apple a day", ["apple day"]),
    ("the the", ["a"]),
    ("New York City", ["new york", "York City", "NYC"]),
    ("", ["something"]),
    ("cat cat cat", ["cat"]),
    ("U.S. Army", ["US army"]),
]


@ex("squad_em_f1")
@pytest.mark.parametrize("prediction,refs", CASES)
def test_squad_em_f1_matches_attnkit_metrics(learner, prediction, refs):
    em, f1 = require(learner, "squad_em_f1")(prediction, refs)
    want_em = max_over_ground_truths(exact_match, prediction, refs)
    want_f1 = max_over_ground_truths(token_f1, prediction, refs)
    assert float(em) == want_em, f"EM of {prediction!r} vs {refs}: expected {want_em}, got {em}"
    assert math.isclose(f1, want_f1, abs_tol=1e-12), (
        f"F1 of {prediction!r} vs {refs}: expected {want_f1}, got {f1}"
    )


@ex("squad_em_f1")
def test_squad_em_f1_hand_checked(learner):
    fn = require(learner, "squad_em_f1")
    assert tuple(fn("The Eiffel Tower!", ["eiffel tower"])) == (1.0, 1.0), "normalize first"
    em, f1 = fn("in 1889", ["1889"])
    assert em == 0.0 and math.isclose(f1, 2 / 3), "precision 1/2, recall 1, F1 2/3"
    em, f1 = fn("cat cat cat", ["cat"])
    assert em == 0.0 and math.isclose(f1, 0.5), "multiset overlap 1: precision 1/3, recall 1"
    em, f1 = fn("Gustave Eiffel's company", ["Gustave Eiffel", "the company of Gustave Eiffel"])
    assert em == 0.0 and math.isclose(f1, 4 / 7), "best reference: precision 2/3, recall 2/4"
    assert tuple(fn("the", ["a"])) == (1.0, 0.0), "both normalize to '': EM 1, F1 0 (v1.1)"

"""Tests of attnkit.decoding: logit filtering, sampling, generation and beam search.

References: hand-computed examples, brute-force enumeration on tiny "models" whose
next-token log-probabilities are a fixed table (a Markov chain over the last token), and
the equality of cached and uncached decoding on real models.
"""

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from attnkit.decoding import (
    beam_search,
    filter_logits,
    generate,
    gnmt_length_penalty,
    greedy_translate,
    sample_next,
)
from attnkit.transformer import Seq2SeqTransformer, TransformerLM

HYPOTHESIS = settings(max_examples=40, deadline=None, derandomize=True, database=None)
INF = float("-inf")
PAD, BOS, EOS = 0, 1, 2


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# ----------------------------------------------------------------------- stub models


class MarkovSeq2Seq(nn.Module):
    """A 'translation model' whose next-token log-probabilities depend on the last target
    token only: ``log_probs[last]``. With ``source_picks_start`` the first step reads the
    row of ``src[:, 0]`` instead of BOS's (so rows can differ); otherwise the source is
    ignored. It records the mode it was called in."""

    def __init__(self, probs, source_picks_start=False):
        super().__init__()
        self.table = torch.tensor(probs, dtype=torch.float64).log()  # (V, V)
        self.pad_id = PAD
        self.source_picks_start = source_picks_start
        self.calls = []

    def encode(self, src, src_key_padding_mask=None):
        self.calls.append((self.training, torch.is_grad_enabled()))
        return src[:, :, None].double()  # (B, S, 1)

    def decode(self, tgt, memory, memory_key_padding_mask=None, caches=None, offset=0):
        if self.source_picks_start:
            start = memory[:, :1, 0].long().expand_as(tgt)  # (B, T)
            tgt = torch.where(tgt == BOS, start, tgt)
        return self.table[tgt]  # (B, T, V)

    def new_caches(self):
        return []


class MarkovLM(nn.Module):
    """A 'language model' that predicts ``successor[last token]`` with certainty."""

    def __init__(self, successor):
        super().__init__()
        V = len(successor)
        self.table = torch.full((V, V), -30.0)
        self.table[torch.arange(V), torch.tensor(successor)] = 0.0

    def forward(self, idx, caches=None, offset=0):
        return self.table[idx]  # (B, T, V)

    def new_caches(self):
        return []


def sequence_logprob(model, tokens):
    """log P(tokens | BOS) under a MarkovSeq2Seq."""
    prev = [BOS, *tokens[:-1]]
    return sum(model.table[a, b].item() for a, b in zip(prev, tokens))


# Greedy takes 'a' (0.6) then ends with EOS (0.4): P = 0.24. The best sequence is 'b'
# (0.4) then EOS (0.95): P = 0.38. Tokens: 0 pad, 1 bos, 2 eos, 3 a, 4 b.
GREEDY_TRAP = [
    [0.01, 0.01, 0.01, 0.01, 0.96],  # after pad (never used)
    [0.0, 0.0, 0.0, 0.6, 0.4],  # after BOS: a or b
    [0.97, 0.01, 0.01, 0.005, 0.005],  # after EOS (never used: finished)
    [0.0, 0.0, 0.4, 0.3, 0.3],  # after a
    [0.0, 0.0, 0.95, 0.025, 0.025],  # after b
]


# ------------------------------------------------------------------- filter_logits


def test_top_k_keeps_the_k_largest():
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.0], [0.5, -1.0, 4.0, 2.0]])
    expected = torch.tensor([[INF, 3.0, 2.0, INF], [INF, INF, 4.0, 2.0]])
    assert torch.equal(filter_logits(logits, top_k=2), expected)
    assert torch.equal(filter_logits(logits, top_k=4), logits)
    assert torch.equal(filter_logits(logits, top_k=100), logits)
    ties = torch.tensor([1.0, 2.0, 2.0, 0.0])  # ties with the k-th largest are kept
    assert torch.equal(filter_logits(ties, top_k=1), torch.tensor([INF, 2.0, 2.0, INF]))


@pytest.mark.parametrize(
    "top_p, kept",
    [
        (0.3, [1]),
        (0.45, [1]),
        (0.6, [1, 3]),
        (0.8, [1, 3]),
        (0.86, [0, 1, 3]),
        (0.96, [0, 1, 2, 3]),
    ],
)
def test_top_p_keeps_the_smallest_set_reaching_p(top_p, kept):
    probs = torch.tensor([0.1, 0.5, 0.05, 0.35], dtype=torch.float64)
    out = filter_logits(probs.log(), top_p=top_p)
    assert torch.isfinite(out).nonzero().flatten().tolist() == kept
    torch.testing.assert_close(out[kept], probs.log()[kept])  # survivors unchanged


def test_top_p_one_keeps_everything_even_tiny_probabilities():
    logits = torch.tensor([0.0, -50.0, -80.0], dtype=torch.float64)
    assert torch.equal(filter_logits(logits, top_p=1.0), logits)


def test_top_k_is_applied_before_top_p():
    logits = torch.tensor([0.4, 0.3, 0.2, 0.1]).log()
    # top-p alone: 0.4 < 0.5, so the first two are kept
    assert torch.isfinite(filter_logits(logits, top_p=0.5)).tolist() == [1, 1, 0, 0]
    # top-k=2 first renormalises to (4/7, 3/7); 4/7 >= 0.5 alone
    both = filter_logits(logits, top_k=2, top_p=0.5)
    assert torch.isfinite(both).tolist() == [1, 0, 0, 0]


@HYPOTHESIS
@given(
    seed=st.integers(0, 2**31 - 1),
    V=st.integers(1, 30),
    top_p=st.floats(0.01, 0.99),
)
def test_top_p_set_is_minimal(seed, V, top_p):
    gen = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(V, generator=gen, dtype=torch.float64)
    probs = logits.softmax(-1)
    kept = torch.isfinite(filter_logits(logits, top_p=top_p))
    assert kept.any()
    mass = probs[kept].sum().item()
    assert mass >= top_p - 1e-12  # the kept set reaches p
    if (~kept).any():  # every kept token is at least as likely as every removed one
        assert probs[kept].min() >= probs[~kept].max()
    if kept.sum() > 1:  # dropping the least likely kept token falls below p
        assert mass - probs[kept].min().item() < top_p + 1e-12


def test_filter_logits_leaves_its_input_alone_and_validates():
    logits = torch.tensor([1.0, 2.0, 3.0])
    before = logits.clone()
    filter_logits(logits, top_k=1, top_p=0.5)
    assert torch.equal(logits, before)
    for kwargs, match in [
        (dict(top_k=0), "top_k must be a positive integer"),
        (dict(top_k=1.5), "top_k must be a positive integer"),
        (dict(top_p=0.0), r"top_p must be None or a number in \(0, 1\]"),
        (dict(top_p=1.2), r"top_p must be None or a number in \(0, 1\]"),
    ]:
        with pytest.raises(ValueError, match=match):
            filter_logits(logits, **kwargs)
    with pytest.raises(TypeError, match="logits must be floating-point"):
        filter_logits(torch.tensor([1, 2]), top_k=1)


# ---------------------------------------------------------------------- sample_next


def test_top_k_one_and_temperature_zero_are_argmax():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 50, generator=gen)
    argmax = logits.argmax(-1)
    assert torch.equal(sample_next(logits, top_k=1, generator=gen), argmax)
    assert torch.equal(sample_next(logits, temperature=0.0), argmax)
    assert torch.equal(sample_next(logits, temperature=0.5, top_p=1e-9, generator=gen), argmax)


def test_sampling_follows_the_softmax_and_respects_the_filters():
    gen = torch.Generator().manual_seed(1)
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = probs.log().expand(20000, 4)
    draws = sample_next(logits, generator=gen)
    freq = torch.bincount(draws, minlength=4) / 20000
    assert (freq - probs).abs().max() < 0.015
    hot = torch.bincount(sample_next(logits, temperature=2.0, generator=gen), minlength=4)
    assert hot[3] / 20000 > 0.1  # flatter: sqrt(p) renormalised gives 0.12 to the last
    nucleus = sample_next(logits, top_p=0.7, generator=gen)
    assert set(nucleus.tolist()) == {0, 1}


def test_sample_next_validates():
    with pytest.raises(ValueError, match="temperature must be a finite number >= 0"):
        sample_next(torch.zeros(1, 3), temperature=-1.0)
    with pytest.raises(ValueError, match=r"logits must have shape \(B, V\)"):
        sample_next(torch.zeros(3))


# ------------------------------------------------------------------------- generate


def small_lm(positional="learned", dropout=0.0, **kwargs):
    torch.manual_seed(0)
    return TransformerLM(
        23,
        d_model=32,
        num_heads=4,
        num_layers=2,
        d_ff=64,
        dropout=dropout,
        max_len=48,
        positional=positional,
        **kwargs,
    ).eval()


PROMPT = torch.tensor([[3, 7, 1], [5, 5, 9]])


@pytest.mark.parametrize("positional", ["learned", "sinusoidal", "rotary", "alibi"])
def test_generate_with_and_without_cache_gives_the_same_tokens(positional):
    model = small_lm(positional, num_kv_heads=2 if positional == "rotary" else None)
    runs = {}
    for use_cache in (True, False):
        greedy = generate(model, PROMPT, 30, temperature=0.0, use_cache=use_cache)
        gen = torch.Generator().manual_seed(123)
        sampled = generate(model, PROMPT, 30, use_cache=use_cache, generator=gen)
        gen = torch.Generator().manual_seed(7)
        nucleus = generate(
            model,
            PROMPT,
            30,
            temperature=0.8,
            top_k=10,
            top_p=0.9,
            use_cache=use_cache,
            generator=gen,
        )
        runs[use_cache] = (greedy, sampled, nucleus)
    for cached, recomputed in zip(runs[True], runs[False]):
        assert cached.shape == (2, 33)
        assert torch.equal(cached[:, :3], PROMPT)
        assert torch.equal(cached, recomputed)
    greedy, sampled, _ = runs[True]
    assert not torch.equal(greedy, sampled)  # the sampling really sampled


def test_generate_stops_at_eos_and_pads_finished_rows_with_eos():
    successor = [1, 2, 3, 4, 5, 6, 0, 0]  # t -> t + 1 (6 -> 0), EOS = 6
    model = MarkovLM(successor)
    prompt = torch.tensor([[3], [5]])
    out = generate(model, prompt, 10, temperature=0.0, eos_id=6)
    assert out.tolist() == [[3, 4, 5, 6], [5, 6, 6, 6]]
    no_eos = generate(model, prompt, 10, temperature=0.0)
    assert no_eos.shape == (2, 11)
    assert generate(model, prompt, 0).shape == (2, 1)


def test_generate_restores_the_mode_and_disables_dropout_and_gradients():
    model = small_lm(dropout=0.5).train()
    a = generate(model, PROMPT, 10, temperature=0.0)
    b = generate(model, PROMPT, 10, temperature=0.0)
    assert model.training
    model.eval()
    assert torch.equal(a, b) and torch.equal(a, generate(model, PROMPT, 10, temperature=0.0))
    assert not model.training
    stub = MarkovSeq2Seq(GREEDY_TRAP).train()
    greedy_translate(stub, torch.tensor([[5, 6]]), bos_id=BOS, eos_id=EOS, max_len=4)
    beam_search(stub, torch.tensor([[5, 6]]), beam_size=2, bos_id=BOS, eos_id=EOS, max_len=4)
    assert stub.training and stub.calls == [(False, False), (False, False)]


def test_generate_checks_the_position_table():
    model = small_lm("learned")  # max_len = 48
    generate(model, PROMPT, 46)  # positions 0..47 are fed
    with pytest.raises(ValueError, match="max_len = 48"):
        generate(model, PROMPT, 47)
    with pytest.raises(TypeError, match="prompt must hold integer token ids"):
        generate(model, PROMPT.float(), 3)


# --------------------------------------------------------------- translation decoding


def small_seq2seq(**kwargs):
    torch.manual_seed(1)
    args = dict(d_model=32, num_heads=4, d_ff=64, dropout=0.0, max_len=24)
    args.update(kwargs)
    return Seq2SeqTransformer(15, 17, **args).eval()


SRC = torch.tensor([[4, 5, 6, 7, 2], [8, 9, 2, 0, 0], [10, 2, 0, 0, 0]])


@pytest.mark.parametrize("positional", ["sinusoidal", "learned"])
def test_greedy_translate_with_and_without_cache(positional):
    model = small_seq2seq(positional=positional)
    cached = greedy_translate(model, SRC, bos_id=BOS, eos_id=EOS, max_len=12)
    recomputed = greedy_translate(model, SRC, bos_id=BOS, eos_id=EOS, max_len=12, use_cache=False)
    assert cached.shape == (3, 12) and torch.equal(cached, recomputed)


def test_greedy_translate_pads_after_eos_and_stops():
    model = MarkovSeq2Seq(GREEDY_TRAP)
    out = greedy_translate(model, SRC, bos_id=BOS, eos_id=EOS, max_len=10)
    assert out.tolist() == [[3, 2]] * 3  # a, EOS: greedy falls into the trap
    out = greedy_translate(model, SRC, bos_id=BOS, eos_id=EOS, max_len=1)
    assert out.tolist() == [[3]] * 3
    # rows finishing at different steps: padding after each row's EOS
    chain = [[0.1, 0.1, 0.1, 0.1, 0.6] for _ in range(5)]  # argmax 4 after EOS, not PAD
    chain[BOS] = [0.0, 0.0, 0.1, 0.5, 0.4]  # BOS -> a
    chain[3] = [0.0, 0.0, 0.2, 0.1, 0.7]  # a -> b
    chain[4] = [0.0, 0.0, 0.9, 0.05, 0.05]  # b -> EOS
    model = MarkovSeq2Seq(chain, source_picks_start=True)
    src = torch.tensor([[3, 9], [4, 9], [BOS, 9]])  # start after a, after b, after BOS
    out = greedy_translate(model, src, bos_id=BOS, eos_id=EOS, max_len=9)
    assert out.tolist() == [[4, 2, PAD], [2, PAD, PAD], [3, 4, 2]]
    beams, _ = beam_search(model, src, beam_size=1, bos_id=BOS, eos_id=EOS, max_len=9)
    assert torch.equal(beams, out)


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_beam_size_one_is_greedy(length_penalty):
    model = small_seq2seq()
    greedy = greedy_translate(model, SRC, bos_id=BOS, eos_id=EOS, max_len=10)
    beam, scores = beam_search(
        model,
        SRC,
        beam_size=1,
        bos_id=BOS,
        eos_id=EOS,
        max_len=10,
        length_penalty=length_penalty,
    )
    assert torch.equal(beam, greedy)
    # the score is the greedy path's log-probability (length-normalised)
    with torch.no_grad():
        tgt_in = torch.cat([torch.full((3, 1), BOS), greedy[:, :-1]], dim=1)
        logp = model(SRC, tgt_in).double().log_softmax(-1).gather(-1, greedy[..., None])[..., 0]
    is_eos = (greedy == EOS).long()
    real = (is_eos.cumsum(1) - is_eos) == 0  # up to and including the first EOS
    lengths = real.sum(1).double()
    expected = (logp * real).sum(1) / gnmt_length_penalty(lengths, length_penalty)
    torch.testing.assert_close(scores, expected, rtol=1e-5, atol=1e-5)


def test_beam_search_finds_what_greedy_misses():
    model = MarkovSeq2Seq(GREEDY_TRAP)
    src = torch.tensor([[5, 6, 7]])
    greedy = greedy_translate(model, src, bos_id=BOS, eos_id=EOS, max_len=6)
    assert greedy.tolist() == [[3, 2]]  # P = 0.6 * 0.4 = 0.24
    for alpha in (0.0, 0.6, 1.0):
        tokens, score = beam_search(
            model, src, beam_size=2, bos_id=BOS, eos_id=EOS, max_len=6, length_penalty=alpha
        )
        assert tokens.tolist() == [[4, 2]]  # P = 0.4 * 0.95 = 0.38
        expected = math.log(0.38) / ((5 + 2) / 6) ** alpha
        assert score.item() == pytest.approx(expected, rel=1e-12)


def best_by_enumeration(model, max_len, alpha, tokens=(EOS, 3, 4)):
    """The best length-normalised hypothesis among all of length <= max_len."""
    best, best_score = None, -math.inf
    for n in range(1, max_len + 1):
        for seq in itertools.product(tokens, repeat=n):
            if EOS in seq[:-1] or (n < max_len and seq[-1] != EOS):
                continue  # EOS only at the end; shorter than max_len only if ended
            score = sequence_logprob(model, list(seq)) / ((5 + n) / 6) ** alpha
            if score > best_score:
                best, best_score = list(seq), score
    return best, best_score


@pytest.mark.parametrize("alpha", [0.0, 1.0, 2.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wide_beam_equals_exhaustive_search(seed, alpha):
    gen = torch.Generator().manual_seed(seed)
    probs = torch.rand(5, 5, generator=gen, dtype=torch.float64) ** 3
    probs[:, :2] = 0.0  # never pad or BOS
    probs = (probs / probs.sum(1, keepdim=True)).tolist()
    model = MarkovSeq2Seq(probs)
    max_len = 4
    tokens, score = beam_search(
        model,
        SRC[:1],
        beam_size=27,
        bos_id=BOS,
        eos_id=EOS,
        max_len=max_len,
        length_penalty=alpha,
    )
    best, best_score = best_by_enumeration(model, max_len, alpha)
    assert score.item() == pytest.approx(best_score, rel=1e-12)
    got = tokens[0].tolist()
    got = got[: got.index(EOS) + 1] if EOS in got else got
    assert got == best


def history_dependent_seq2seq():
    """A float64 model with large random weights: its next-token distribution depends
    strongly on the whole prefix (a freshly initialised one barely looks at it)."""
    model = small_seq2seq().double()
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.4 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
        model.tgt_embed.weight[EOS] *= 0.1  # (tied) rarely the best: long hypotheses
    return model


def test_beam_search_batch_equals_one_by_one_and_cache_changes_nothing():
    model = history_dependent_seq2seq()
    kwargs = dict(beam_size=3, bos_id=BOS, eos_id=EOS, max_len=8)
    tokens, scores = beam_search(model, SRC, **kwargs)
    uncached, uncached_scores = beam_search(model, SRC, use_cache=False, **kwargs)
    assert torch.equal(tokens, uncached)
    torch.testing.assert_close(scores, uncached_scores, rtol=1e-10, atol=1e-10)
    for i in range(3):
        src = SRC[i : i + 1, : int((SRC[i] != PAD).sum())]  # without its padding
        one, one_score = beam_search(model, src, **kwargs)
        L = one.shape[1]
        assert one[0].tolist() == tokens[i, :L].tolist()
        assert torch.all(tokens[i, L:] == PAD)
        torch.testing.assert_close(one_score, scores[i : i + 1], rtol=1e-10, atol=1e-10)
    greedy = greedy_translate(model, SRC, bos_id=BOS, eos_id=EOS, max_len=8)
    assert torch.equal(
        greedy, greedy_translate(model, SRC, bos_id=BOS, eos_id=EOS, max_len=8, use_cache=False)
    )


def test_beam_search_validates():
    model = MarkovSeq2Seq(GREEDY_TRAP)
    with pytest.raises(ValueError, match="beam_size must be a positive integer"):
        beam_search(model, SRC, beam_size=0, bos_id=BOS, eos_id=EOS, max_len=3)
    with pytest.raises(ValueError, match="eos_id must be a non-negative integer"):
        greedy_translate(model, SRC, bos_id=BOS, eos_id=None, max_len=3)
    with pytest.raises(ValueError, match="length_penalty must be a finite number >= 0"):
        beam_search(model, SRC, beam_size=2, bos_id=BOS, eos_id=EOS, max_len=3, length_penalty=-1)


# ------------------------------------------------------------------ issue 21 regressions


@pytest.mark.parametrize("temperature", [1e-40, 1e-300, 5e-324])
def test_sample_next_tiny_temperature_is_greedy(temperature):
    logits = torch.tensor([[1.0, 3.0, 2.0], [0.5, -1.0, 0.25]])
    got = sample_next(logits, temperature=temperature, generator=torch.Generator().manual_seed(0))
    assert got.tolist() == [1, 0]


def test_gnmt_length_penalty_refuses_negative_lengths_and_bad_alpha():
    with pytest.raises(ValueError, match="length must hold lengths >= 0"):
        gnmt_length_penalty(torch.tensor([-1.0, 2.0]), 0.6)
    with pytest.raises(ValueError, match="length must hold lengths >= 0"):
        gnmt_length_penalty(torch.tensor([math.nan]), 0.6)
    for alpha in (math.nan, -0.5, math.inf):
        with pytest.raises(ValueError, match="alpha"):
            gnmt_length_penalty(torch.tensor([2.0]), alpha)


def test_decoding_checks_the_model_and_the_vocabulary():
    with pytest.raises(TypeError, match="model must be a TransformerLM"):
        generate("x", torch.ones(1, 2, dtype=torch.long), 2)
    with pytest.raises(TypeError, match="model must be a Seq2SeqTransformer"):
        beam_search(
            nn.Linear(2, 2),
            torch.ones(1, 2, dtype=torch.long),
            beam_size=2,
            bos_id=1,
            eos_id=2,
            max_len=3,
        )


def test_beam_search_refuses_eos_outside_the_vocabulary():
    torch.manual_seed(0)
    model = Seq2SeqTransformer(7, 9, 8, 2, 1, 1, 16, 0.0, max_len=8)
    src = torch.ones(1, 3, dtype=torch.long)
    with pytest.raises(ValueError, match=r"eos_id must be a token id in \[0, 9\)"):
        beam_search(model, src, beam_size=2, bos_id=1, eos_id=9, max_len=3)
    with pytest.raises(ValueError, match=r"src must hold token ids in \[0, 7\)"):
        greedy_translate(model, src * 7, bos_id=1, eos_id=2, max_len=3)

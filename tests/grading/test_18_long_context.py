"""Grader for chapter 18's exercises (long and streaming contexts).

References, computed independently of the exercises: `attnkit.llm.LLMSelfAttention.mask`
(window and sinks), `attnkit.llm.SinkCache` fed one token at a time, a loop over the pairs
for YaRN (and `attnkit.llm.scaled_rope_frequencies`), and `attnkit.alibi_bias` with a
causal mask.
"""

from __future__ import annotations

import math

import pytest
import torch

import attnkit as ak
from attnkit import llm
from attnkit.grading import require

CHAPTER = "18"
ex = pytest.mark.exercise


# ---------------------------------------------------------------------- sink_window_mask
@ex("sink_window_mask")
@pytest.mark.parametrize(
    "T,window,num_sinks", [(1, 1, 0), (6, 2, 1), (9, 3, 2), (8, 1, 3), (7, 10, 0), (12, 4, 0)]
)
def test_sink_window_mask_matches_the_layer(learner, T, window, num_sinks):
    got = require(learner, "sink_window_mask")(T, window, num_sinks)
    want = llm.LLMSelfAttention(8, 2, window=window, num_sinks=num_sinks).mask(T)
    assert isinstance(got, torch.Tensor), f"return a tensor, not {type(got).__name__}"
    assert got.dtype == torch.bool, f"return a bool mask, not {got.dtype}"
    assert got.shape == (T, T), f"expected shape {(T, T)}, got {tuple(got.shape)}"
    wrong = (got != want).nonzero().tolist()
    if wrong:
        i, j = wrong[0]
        raise AssertionError(
            f"sink_window_mask({T}, {window}, {num_sinks})[{i}, {j}] is {bool(got[i, j])}, "
            f"expected {bool(want[i, j])}: query i sees key j iff j <= i and "
            f"(i - j < window or j < num_sinks)"
        )


@ex("sink_window_mask")
def test_sink_window_mask_counts_keys(learner):
    got = require(learner, "sink_window_mask")(20, 5, 2)
    counts = got.sum(-1).tolist()
    want = [min(i + 1, 5 + 2) if i >= 5 else i + 1 for i in range(20)]
    assert counts == want, f"keys per query {counts}, expected {want}"


# --------------------------------------------------------------------------- kept_tokens
def _cache_reference(t: int, window: int, num_sinks: int) -> list[int]:
    cache = llm.SinkCache(window, num_sinks)
    for _ in range(t + 1):
        cache.append(torch.zeros(1, 1, 1, 1), torch.zeros(1, 1, 1, 1))
    return cache.token_index.tolist()


@ex("kept_tokens")
@pytest.mark.parametrize(
    "window,num_sinks", [(1, 0), (3, 4), (4, 1), (2, 3), (5, 0), (1, 2), (60, 4)]
)
def test_kept_tokens_follow_the_sink_cache(learner, window, num_sinks):
    fn = require(learner, "kept_tokens")
    for t in [*range(12), 70, 200]:
        got = fn(t, window, num_sinks)
        want = _cache_reference(t, window, num_sinks)
        assert isinstance(got, tuple) and len(got) == 2, "return a pair (kept, positions)"
        kept, positions = got
        assert list(kept) == want, (
            f"kept_tokens({t}, {window}, {num_sinks}): kept {list(kept)}, expected {want} "
            f"(the first num_sinks tokens, then the last window tokens, the newest included)"
        )
        assert list(positions) == list(range(len(want))), (
            f"kept_tokens({t}, {window}, {num_sinks}): positions {list(positions)}, expected "
            f"{list(range(len(want)))}: StreamingLLM positions tokens by their slot in the "
            f"cache, not by their index in the text"
        )
        assert all(isinstance(v, int) for v in [*kept, *positions]), "return lists of ints"


@ex("kept_tokens")
def test_kept_tokens_the_papers_example(learner):
    kept, positions = require(learner, "kept_tokens")(9, 4, 4)
    assert list(kept) == [0, 1, 2, 3, 6, 7, 8, 9], f"kept {list(kept)}"
    assert list(positions) == list(range(8)), (
        f"positions {list(positions)}: the paper assigns 0..7, not the text positions"
    )


# ---------------------------------------------------------------------- yarn_frequencies
def _yarn_loop(head_dim, base, factor, L, alpha, beta) -> list[float]:
    out = []
    for j in range(head_dim // 2):
        theta = base ** (-2 * j / head_dim)
        r = L * theta / (2 * math.pi)
        gamma = min(max((r - alpha) / (beta - alpha), 0.0), 1.0)
        out.append((1 - gamma) * theta / factor + gamma * theta)
    return out


@ex("yarn_frequencies")
@pytest.mark.parametrize(
    "head_dim,base,factor,L,alpha,beta",
    [
        (8, 10000.0, 4.0, 4096, 1.0, 32.0),
        (128, 10000.0, 16.0, 4096, 1.0, 32.0),
        (16, 10000.0, 2.0, 64, 1.0, 4.0),
        (32, 500000.0, 8.0, 8192, 2.0, 16.0),
        (2, 100.0, 1.0, 10, 1.0, 32.0),
    ],
)
def test_yarn_frequencies_formula(learner, head_dim, base, factor, L, alpha, beta):
    got = require(learner, "yarn_frequencies")(head_dim, base, factor, L, alpha, beta)
    assert isinstance(got, torch.Tensor), f"return a tensor, not {type(got).__name__}"
    assert got.dtype == torch.float64, f"return float64, not {got.dtype}"
    assert got.shape == (head_dim // 2,), (
        f"expected shape {(head_dim // 2,)}, got {tuple(got.shape)}"
    )
    want = torch.tensor(_yarn_loop(head_dim, base, factor, L, alpha, beta), dtype=torch.float64)
    lib, _ = llm.scaled_rope_frequencies(
        head_dim, base=base, method="yarn", factor=factor, original_length=L, alpha=alpha, beta=beta
    )
    torch.testing.assert_close(want, lib, rtol=1e-12, atol=0)  # the grader's own check
    torch.testing.assert_close(
        got, want, rtol=1e-10, atol=0,
        msg="wrong frequencies: keep pairs with many turns (r > beta), divide those with few "
        "(r < alpha) by the factor, blend linearly between",
    )  # fmt: skip


@ex("yarn_frequencies")
def test_yarn_keeps_fast_pairs_and_interpolates_slow_ones(learner):
    got = require(learner, "yarn_frequencies")(128, 10000.0, 8.0, 4096, 1.0, 32.0)
    plain = 10000.0 ** (-torch.arange(64, dtype=torch.float64) / 64)
    ratio = got / plain
    assert abs(ratio[0].item() - 1) < 1e-12, (
        f"the fastest pair must keep its frequency ({ratio[0]:.4f})"
    )
    assert abs(ratio[-1].item() - 1 / 8) < 1e-12, (
        f"the slowest pair must be divided by the factor 8 (ratio {ratio[-1]:.4f})"
    )


# --------------------------------------------------------------------- alibi_causal_bias
@ex("alibi_causal_bias")
@pytest.mark.parametrize("num_heads,T", [(1, 1), (2, 3), (4, 7), (8, 16), (16, 5)])
def test_alibi_causal_bias_matches_attnkit(learner, num_heads, T):
    got = require(learner, "alibi_causal_bias")(num_heads, T)
    assert isinstance(got, torch.Tensor), f"return a tensor, not {type(got).__name__}"
    assert got.dtype == torch.float64, f"return float64, not {got.dtype}"
    assert got.shape == (num_heads, T, T), (
        f"expected shape {(num_heads, T, T)}, got {tuple(got.shape)}"
    )
    want = ak.combine_masks(ak.causal_mask(T), ak.alibi_bias(num_heads, T, dtype=torch.float64))
    future = ~ak.causal_mask(T)
    assert bool(torch.isneginf(got[:, future]).all()), "keys after the query must get -inf"
    past = ak.causal_mask(T)
    torch.testing.assert_close(
        got[:, past], want[:, past], rtol=1e-12, atol=0,
        msg="wrong bias on or below the diagonal: -m_h (i - j) with m_h = 2^(-8h/H), h = 1..H",
    )  # fmt: skip


@ex("alibi_causal_bias")
def test_alibi_causal_bias_slopes_and_sign(learner):
    got = require(learner, "alibi_causal_bias")(8, 2)
    below = got[:, 1, 0].tolist()  # one position back, per head
    want = [-(2.0 ** (-(h + 1))) for h in range(8)]
    assert below == pytest.approx(want, rel=1e-12), (
        f"bias one position back per head {below}, expected {want} (slopes 1/2 .. 1/256, "
        f"negative: a distant key is penalised)"
    )
    assert got[:, 1, 1].abs().max() == 0, "a query's own key has distance 0: bias 0"

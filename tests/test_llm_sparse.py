"""Sparse attention: gathered top-k equals masked dense attention; NSA's branches follow
their definitions, checked query by query."""

from __future__ import annotations

import pytest
import torch

import attnkit as ak
from attnkit.llm import (
    indexer_scores,
    nsa_attention,
    nsa_masks,
    topk_sparse_attention,
    topk_token_mask,
)


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_indexer_scores_formula():
    q, k, w = _rand(2, 5, 3, 4, seed=1), _rand(2, 6, 4, seed=2), _rand(2, 5, 3, seed=3)
    got = indexer_scores(q, k, w)
    for b in range(2):
        for t in range(5):
            for s in range(6):
                want = sum(w[b, t, j] * torch.relu(q[b, t, j] @ k[b, s]) for j in range(3))
                assert abs(float(got[b, t, s] - want)) < 1e-12


def test_topk_mask_selects_the_best_visible_keys():
    scores = torch.tensor([[[5.0, 1, 9, 9], [1, 2, 3, 4], [4, 3, 2, 1], [0, 0, 0, 0]]])
    got = topk_token_mask(scores, 2)
    want = torch.tensor(
        [[[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0]]], dtype=torch.bool
    )  # causal: query 0 sees only key 0; ties go to the earlier key
    assert torch.equal(got, want)


@pytest.mark.parametrize("top_k", [1, 3, 8, 50])
def test_gathered_topk_attention_equals_masked_dense_attention(top_k):
    B, H, T, D = 2, 3, 12, 4
    q, k, v = _rand(B, H, T, D, seed=4), _rand(B, T, D, seed=5), _rand(B, T, 6, seed=6)
    scores = indexer_scores(
        _rand(B, T, 2, 3, seed=7), _rand(B, T, 3, seed=8), _rand(B, T, 2, seed=9)
    )
    selected = topk_token_mask(scores, top_k)
    got = topk_sparse_attention(q, k, v, selected)
    want = ak.scaled_dot_product_attention(q, k[:, None], v[:, None], selected[:, None])
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    if top_k >= T:  # selecting everything visible is causal attention
        dense = ak.scaled_dot_product_attention(q, k[:, None], v[:, None], ak.causal_mask(T))
        torch.testing.assert_close(got, dense, rtol=0, atol=1e-12)


def test_nsa_against_a_query_by_query_reference():
    B, H, T, D, bs, n_top, win = 1, 2, 11, 3, 3, 1, 2
    q, k, v = _rand(B, H, T, D, seed=10), _rand(B, 1, T, D, seed=11), _rand(B, 1, T, 5, seed=12)
    gates = torch.rand(B, H, T, 3, generator=torch.Generator().manual_seed(13), dtype=torch.float64)
    got = nsa_attention(q, k, v, gates, block_size=bs, top_blocks=n_top, window=win)
    sm = lambda s: torch.softmax(s / D**0.5, 0)  # noqa: E731
    for t in range(T):
        complete = [b for b in range((t + 1) // bs)]  # blocks whose last token is <= t
        kc = (
            torch.stack([k[0, 0, b * bs : (b + 1) * bs].mean(0) for b in complete])
            if complete
            else None
        )
        vc = (
            torch.stack([v[0, 0, b * bs : (b + 1) * bs].mean(0) for b in complete])
            if complete
            else None
        )
        p_sum = sum(sm(kc @ q[0, h, t]) for h in range(H)) if complete else None
        top = sorted(complete, key=lambda b: (-float(p_sum[b]), b))[:n_top] if complete else []
        blocks = set(top) | {t // bs}
        sel = [j for j in range(t + 1) if j // bs in blocks]
        near = [j for j in range(t + 1) if t - j < win]
        for h in range(H):
            o_cmp = sm(kc @ q[0, h, t]) @ vc if complete else torch.zeros(5, dtype=torch.float64)
            o_sel = sm(k[0, 0, sel] @ q[0, h, t]) @ v[0, 0, sel]
            o_win = sm(k[0, 0, near] @ q[0, h, t]) @ v[0, 0, near]
            g = gates[0, h, t]
            want = g[0] * o_cmp + g[1] * o_sel + g[2] * o_win
            torch.testing.assert_close(got[0, h, t], want, rtol=0, atol=1e-12)


def test_nsa_selection_is_sparse_and_causal():
    q, k = _rand(1, 2, 32, 4, seed=14), _rand(1, 1, 32, 4, seed=15)
    compressed, selected, windowed = nsa_masks(q, k, block_size=4, top_blocks=2, window=4)
    assert not bool(selected.triu(1).any()) and not bool(windowed.triu(1).any())
    assert int(selected[0, -1].sum()) <= 3 * 4  # two top blocks and its own block
    assert compressed.shape == (1, 32, 8)


def test_bad_inputs_are_named():
    q, k, v = _rand(1, 1, 4, 2), _rand(1, 4, 2), _rand(1, 4, 2)
    with pytest.raises(ValueError, match="selected"):
        topk_sparse_attention(q, k, v, torch.ones(1, 4, 4))
    with pytest.raises(ValueError, match="at least one key"):
        topk_sparse_attention(q, k, v, torch.zeros(1, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="top_k"):
        topk_token_mask(torch.zeros(1, 4, 4), 0)
    with pytest.raises(ValueError, match="gates"):
        nsa_attention(
            q, k[:, None], v[:, None], torch.zeros(1, 1, 4, 2), block_size=2, top_blocks=1, window=2
        )

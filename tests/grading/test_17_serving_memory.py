"""Grader for chapter 17's exercises (serving memory).

References, computed independently of the exercises: `attnkit.llm.kv_cache_bytes_per_token`
and the bytes of a real `attnkit.KVCache`; scores against keys rebuilt from the latents;
`attnkit.llm.PagedKVCache`, whose `gather` is the reference of the paged gather.
"""

from __future__ import annotations

import pytest
import torch

import attnkit as ak
from attnkit import llm
from attnkit.grading import require

CHAPTER = "17"
ex = pytest.mark.exercise


# ------------------------------------------------------------------------ kv_cache_bytes
@ex("kv_cache_bytes")
@pytest.mark.parametrize(
    "layers,kv_heads,head_dim,tokens,nbytes",
    [
        (1, 1, 1, 1, 1),
        (32, 8, 128, 1, 2),
        (80, 8, 128, 131072, 2),
        (3, 5, 7, 11, 4),
        (2, 4, 6, 0, 2),
    ],
)
def test_kv_cache_bytes_formula(learner, layers, kv_heads, head_dim, tokens, nbytes):
    got = require(learner, "kv_cache_bytes")(layers, kv_heads, head_dim, tokens, nbytes)
    layout = llm.KVLayout("x", layers, "gqa", kv_heads, head_dim=head_dim, num_kv_heads=kv_heads)
    want = tokens * llm.kv_cache_bytes_per_token(layout, nbytes)
    assert isinstance(got, int) and not isinstance(got, bool), (
        f"return a Python int, not {type(got).__name__}"
    )
    assert got == want, (
        f"kv_cache_bytes({layers}, {kv_heads}, {head_dim}, {tokens}, {nbytes}) = {got}, expected "
        f"{want}: every layer keeps a key and a value per stored head, per token"
    )


@ex("kv_cache_bytes")
def test_kv_cache_bytes_matches_a_real_cache(learner):
    mha = ak.MultiHeadAttention(32, 4, num_kv_heads=2).double()
    cache = ak.KVCache()
    x = torch.randn(1, 5, 32, dtype=torch.float64)
    with torch.no_grad():
        mha(x, x, x, cache=cache, is_causal=True)
    got = require(learner, "kv_cache_bytes")(1, 2, 8, 5, 8)
    assert got == cache.nbytes, (
        f"a float64 KVCache of 5 tokens holds {cache.nbytes} bytes, not {got}"
    )


# -------------------------------------------------------------------------- absorb_query
def _latent_problem(B, H, T, T_k, d_h, d_c, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    q_c = torch.randn(B, H, T, d_h, generator=g, dtype=torch.float64) * scale
    w_uk = torch.randn(H, d_h, d_c, generator=g, dtype=torch.float64)
    c = torch.randn(B, T_k, d_c, generator=g, dtype=torch.float64)
    return q_c, w_uk, c


@ex("absorb_query")
@pytest.mark.parametrize(
    "B,H,T,T_k,d_h,d_c",
    [(1, 1, 1, 1, 1, 1), (2, 3, 4, 5, 6, 7), (1, 4, 2, 9, 8, 3), (3, 2, 5, 2, 5, 5)],
)
def test_absorbed_scores_equal_scores_with_rebuilt_keys(learner, B, H, T, T_k, d_h, d_c):
    q_c, w_uk, c = _latent_problem(B, H, T, T_k, d_h, d_c, seed=B + H + d_c)
    q_lat = require(learner, "absorb_query")(q_c, w_uk)
    assert isinstance(q_lat, torch.Tensor), f"return a tensor, not {type(q_lat).__name__}"
    assert q_lat.shape == (B, H, T, d_c), (
        f"expected shape {(B, H, T, d_c)}, got {tuple(q_lat.shape)}"
    )
    k_c = torch.einsum("btc,hdc->bhtd", c, w_uk)  # keys rebuilt from the latents
    want = q_c @ k_c.transpose(-2, -1)
    got = q_lat @ c[:, None].transpose(-2, -1)
    torch.testing.assert_close(got, want, msg="absorbed scores differ from q_c @ k_c^T")


@ex("absorb_query")
def test_absorb_query_leaves_inputs_alone(learner):
    q_c, w_uk, _ = _latent_problem(1, 2, 3, 1, 4, 5, seed=9, scale=100.0)
    before = (q_c.clone(), w_uk.clone())
    require(learner, "absorb_query")(q_c, w_uk)
    assert torch.equal(q_c, before[0]) and torch.equal(w_uk, before[1]), "inputs were modified"


# -------------------------------------------------------------------------------- locate
@ex("locate")
@pytest.mark.parametrize("block_size", [1, 3, 4, 16])
def test_locate_every_position(learner, block_size):
    table = [5, 0, 11, 3, 8]
    fn = require(learner, "locate")
    for p in range(len(table) * block_size):
        got = fn(p, table, block_size)
        want = (table[p // block_size], p % block_size)
        assert tuple(got) == want, f"locate({p}, {table}, {block_size}) = {got}, expected {want}"
        assert all(isinstance(v, int) for v in got), "return two Python ints"


@ex("locate")
@pytest.mark.parametrize("position", [8, 9, 100])
def test_locate_beyond_the_blocks_raises_index_error(learner, position):
    with pytest.raises(IndexError):
        require(learner, "locate")(position, [3, 1], 4)


# -------------------------------------------------------------------------- gather_paged
def _filled_cache(block_size, H_kv, D, seed):
    g = torch.Generator().manual_seed(seed)
    cache = llm.PagedKVCache(40, block_size, H_kv, D, dtype=torch.float64)
    for seq, n in ((0, 3), (1, 5), (0, 4), (2, 2), (1, 1), (0, 6), (2, 7)):  # interleaved growth
        k = torch.randn(H_kv, n, D, generator=g, dtype=torch.float64)
        cache.append(seq, k, k * 2)
    cache.free(1)
    cache.append(
        3, torch.ones(H_kv, 5, D, dtype=torch.float64), torch.ones(H_kv, 5, D, dtype=torch.float64)
    )
    return cache


@ex("gather_paged")
@pytest.mark.parametrize("block_size,H_kv,D", [(1, 1, 1), (4, 2, 3), (3, 3, 2), (8, 1, 5)])
def test_gather_paged_equals_the_contiguous_cache(learner, block_size, H_kv, D):
    cache = _filled_cache(block_size, H_kv, D, seed=block_size * H_kv)
    fn = require(learner, "gather_paged")
    for seq in (0, 2, 3):
        got = fn(cache.k_pool, list(cache.tables[seq]), cache.lengths[seq])
        want = cache.gather(seq)[0]
        assert isinstance(got, torch.Tensor), f"return a tensor, not {type(got).__name__}"
        assert got.shape == want.shape, (
            f"request {seq}: expected shape {tuple(want.shape)} (H_kv, length, D), "
            f"got {tuple(got.shape)}"
        )
        torch.testing.assert_close(got, want, rtol=0, atol=0, msg=f"request {seq}: wrong keys")


@ex("gather_paged")
def test_gather_paged_follows_the_order_of_the_table(learner):
    # blocks listed out of numerical order: the table's order is the order of the positions
    pool = torch.arange(8 * 2 * 3 * 1, dtype=torch.float64).view(
        8, 2, 3, 1
    )  # (blocks, H_kv, bs, D)
    table = [6, 1, 4]
    got = require(learner, "gather_paged")(pool, table, 8)
    want = torch.cat([pool[b] for b in table], dim=1)[:, :8]  # (H_kv, 8, 1)
    assert isinstance(got, torch.Tensor), f"return a tensor, not {type(got).__name__}"
    assert got.shape == want.shape, f"expected shape {tuple(want.shape)}, got {tuple(got.shape)}"
    torch.testing.assert_close(
        got, want, rtol=0, atol=0, msg="positions must follow the block table's order"
    )

"""PagedAttention: a block table over a shared pool equals a contiguous cache."""

from __future__ import annotations

import pytest
import torch

import attnkit as ak
from attnkit.llm import PagedKVCache, blocks_needed, paged_attention


def _fill(cache: PagedKVCache, lengths: dict[int, int], seed: int):
    """Append random keys/values to several sequences in interleaved chunks; return the
    contiguous copies."""
    g = torch.Generator().manual_seed(seed)
    ref = {s: ([], []) for s in lengths}
    left = dict(lengths)
    while any(left.values()):
        for s in sorted(left):
            if left[s] == 0:
                continue
            t = min(left[s], int(torch.randint(1, 6, (), generator=g)))
            k = torch.randn(cache.num_kv_heads, t, cache.head_dim, generator=g, dtype=torch.float64)
            v = torch.randn(cache.num_kv_heads, t, cache.head_dim, generator=g, dtype=torch.float64)
            cache.append(s, k, v)
            ref[s][0].append(k)
            ref[s][1].append(v)
            left[s] -= t
    return {s: (torch.cat(ks, 1), torch.cat(vs, 1)) for s, (ks, vs) in ref.items()}


def test_gather_returns_what_was_appended_after_frees_and_reuse():
    cache = PagedKVCache(40, 4, 2, 3, dtype=torch.float64)
    first = _fill(cache, {0: 9, 1: 4, 2: 13}, seed=0)
    cache.free(1)  # its block goes back to the pool, then to sequence 3
    later = _fill(cache, {3: 7, 0: 5}, seed=1)
    k0, v0 = cache.gather(0)
    torch.testing.assert_close(k0, torch.cat([first[0][0], later[0][0]], 1), rtol=0, atol=0)
    torch.testing.assert_close(v0, torch.cat([first[0][1], later[0][1]], 1), rtol=0, atol=0)
    torch.testing.assert_close(cache.gather(2)[0], first[2][0], rtol=0, atol=0)
    torch.testing.assert_close(cache.gather(3)[1], later[3][1], rtol=0, atol=0)
    used = sum(len(t) for t in cache.tables.values())
    assert used + cache.num_free_blocks == 40
    assert used == sum(blocks_needed(n, 4) for n in cache.lengths.values())
    assert all(len(t) * 4 - cache.lengths[s] < 4 for s, t in cache.tables.items())


@pytest.mark.parametrize("t_q", [1, 3])
@pytest.mark.parametrize("num_kv_heads", [1, 2, 4])
def test_paged_attention_equals_attention_over_a_contiguous_cache(t_q, num_kv_heads):
    H, D = 4, 5
    cache = PagedKVCache(64, 4, num_kv_heads, D, dtype=torch.float64)
    ref = _fill(cache, {7: 11, 3: 4, 5: 17}, seed=t_q + num_kv_heads)
    seqs = [7, 3, 5]
    q = torch.randn(3, H, t_q, D, dtype=torch.float64)
    table, lengths = cache.block_table(seqs)
    got = paged_attention(q, cache.k_pool, cache.v_pool, table, lengths)
    for row, s in enumerate(seqs):
        k, v = (ak.repeat_kv(t, H // num_kv_heads) for t in ref[s])  # (H, n, D)
        n = k.shape[1]
        want = ak.scaled_dot_product_attention(q[row], k, v, ak.causal_mask(t_q, n))
        torch.testing.assert_close(got[row], want, rtol=0, atol=1e-12)


def test_out_of_blocks_stores_nothing():
    cache = PagedKVCache(2, 4, 1, 2)
    cache.append(0, torch.zeros(1, 6, 2), torch.zeros(1, 6, 2))
    with pytest.raises(RuntimeError, match="out of blocks"):
        cache.append(1, torch.zeros(1, 1, 2), torch.zeros(1, 1, 2))
    with pytest.raises(RuntimeError, match="out of blocks"):
        cache.append(0, torch.zeros(1, 3, 2), torch.zeros(1, 3, 2))
    assert cache.lengths == {0: 6} and cache.slots_wasted() == 2


def test_bad_inputs_name_the_argument():
    cache = PagedKVCache(4, 4, 2, 3)
    with pytest.raises(ValueError, match="k must have shape"):
        cache.append(0, torch.zeros(3, 1, 3), torch.zeros(3, 1, 3))
    with pytest.raises(TypeError, match="seq_id"):
        cache.append("a", torch.zeros(2, 1, 3), torch.zeros(2, 1, 3))
    with pytest.raises(ValueError, match="not in the cache"):
        cache.gather(9)
    q = torch.zeros(1, 2, 1, 3)
    table = torch.zeros(1, 1, dtype=torch.long)
    with pytest.raises(ValueError, match="lengths"):
        paged_attention(q, cache.k_pool, cache.v_pool, table, torch.tensor([0]))
    with pytest.raises(ValueError, match="block ids"):
        paged_attention(q, cache.k_pool, cache.v_pool, table + 7, torch.tensor([1]))

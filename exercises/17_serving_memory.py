# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercises: serving memory
#
# Four functions that a serving engineer writes sooner or later: the size of a key/value
# cache, the absorbed query of multi-head latent attention, and the two halves of a paged
# cache (finding a position through a block table, gathering a request's keys). Replace
# each `raise NotImplementedError(...)` with a few lines, then run the check cell after it
# (marked `# NBVAL_CHECK_OUTPUT`); its output must match what is stored under it. Grade the
# chapter from the repository root with
#
# ```bash
# .venv/bin/python -m attnkit.grade 17
# ```

# %%
import torch

from attnkit import llm

# %% [markdown]
# ## Exercise 1: the bytes of a key/value cache
#
# Write `kv_cache_bytes(num_layers, num_kv_heads, head_dim, num_tokens, bytes_per_element)`:
# the bytes that `num_tokens` tokens occupy in the cache of a decoder with `num_layers`
# layers, each storing `num_kv_heads` key/value heads of width `head_dim`, at
# `bytes_per_element` bytes per number (2 for bfloat16). Every layer stores a key **and**
# a value per stored head. Return an exact Python `int`.


# %%
def kv_cache_bytes(
    num_layers: int, num_kv_heads: int, head_dim: int, num_tokens: int, bytes_per_element: int
) -> int:
    """Bytes of the key/value cache of num_tokens tokens (keys and values, every layer)."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %%
# NBVAL_CHECK_OUTPUT
print(kv_cache_bytes(32, 8, 128, 1, 2))  # Llama 3 8B, one token, bfloat16
print(kv_cache_bytes(80, 8, 128, 131072, 2) / 2**30, "GiB")  # Llama 3 70B, 128k tokens
print(kv_cache_bytes(32, 32, 128, 4096, 2) // kv_cache_bytes(32, 8, 128, 4096, 2))

# %% [markdown]
# ## Exercise 2: the absorbed query of latent attention
#
# In multi-head latent attention the content key of head $i$ for token $j$ is
# $k^C_{j,i} = W_{UK,i}\, c_j$, with `w_uk[i]` of shape `(d_h, d_c)` and $c_j$ the cached
# latent of size `d_c`. Write `absorb_query(q_c, w_uk)`: for content queries `q_c` of shape
# `(B, H, T, d_h)`, return the absorbed queries $W_{UK,i}^\top q^C_{t,i}$ of shape
# `(B, H, T, d_c)`, so that `absorb_query(q_c, w_uk) @ c.T` gives the same scores as
# `q_c @ k_c.T`. Each head uses **its own** `w_uk[i]`.


# %%
def absorb_query(q_c: torch.Tensor, w_uk: torch.Tensor) -> torch.Tensor:
    """(B, H, T, d_h) content queries -> (B, H, T, d_c) queries for the cached latents."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %%
# NBVAL_CHECK_OUTPUT
g = torch.Generator().manual_seed(0)
q_c = torch.randn(1, 2, 3, 4, generator=g, dtype=torch.float64)  # (B, H, T, d_h)
w_uk = torch.randn(2, 4, 5, generator=g, dtype=torch.float64)  # (H, d_h, d_c)
c = torch.randn(1, 6, 5, generator=g, dtype=torch.float64)  # (B, T_k, d_c) cached latents
k_c = torch.einsum("btc,hdc->bhtd", c, w_uk)  # (B, H, T_k, d_h): the keys, rebuilt
print(absorb_query(q_c, w_uk).shape)
same = torch.allclose(
    absorb_query(q_c, w_uk) @ c[:, None].transpose(-2, -1), q_c @ k_c.transpose(-2, -1)
)
print("scores equal:", same)

# %% [markdown]
# ## Exercise 3: where does a position live?
#
# A paged cache stores position `p` of a request in block `block_table[p // block_size]`,
# at slot `p % block_size` of that block. Write `locate(position, block_table, block_size)`
# returning the pair `(block_id, slot)` as Python ints. `block_table` is a list of block
# ids in order. Raise `IndexError` when the position lies beyond the request's blocks.


# %%
def locate(position: int, block_table: list[int], block_size: int) -> tuple[int, int]:
    """(block id, slot) of `position` in a paged cache."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %%
# NBVAL_CHECK_OUTPUT
table = [7, 2, 9]
print([locate(p, table, 4) for p in (0, 3, 4, 11)])
try:
    locate(12, table, 4)
except IndexError:
    print("IndexError for position 12")

# %% [markdown]
# ## Exercise 4: gather a request's keys
#
# The pool holds blocks of shape `(num_blocks, H_kv, block_size, D)`. Write
# `gather_paged(pool, block_table, length)`: the first `length` positions of the request
# whose blocks are `block_table` (a list of ids, in order), as one contiguous tensor of
# shape `(H_kv, length, D)`, position 0 first. The blocks of a request are *not*
# consecutive in the pool, and its last block may be only partly filled.


# %%
def gather_paged(pool: torch.Tensor, block_table: list[int], length: int) -> torch.Tensor:
    """The request's first `length` positions, contiguous: (H_kv, length, D)."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %%
# NBVAL_CHECK_OUTPUT
cache = llm.PagedKVCache(8, 2, 1, 1)
for seq, values in ((0, [1.0, 2.0]), (1, [10.0, 20.0]), (0, [3.0, 4.0, 5.0])):
    kv = torch.tensor(values).view(1, -1, 1)  # (H_kv, T, D)
    cache.append(seq, kv, kv)
print(cache.tables[0], cache.lengths[0])
print(gather_paged(cache.k_pool, cache.tables[0], cache.lengths[0]).flatten().tolist())

# %% [markdown]
# ## Done?
#
# Run `python -m attnkit.grade 17`. Exercise 1 is the table of the chapter in one line;
# exercises 3 and 4 are what `llm.PagedKVCache` does for every decoding step.

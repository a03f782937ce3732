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
# # Exercises: the quadratic wall
#
# Four small functions that turn chapter 5's cost analysis into numbers you can trust:
# how much arithmetic attention does, how much memory its scores take, how many parameters
# it has (none of them depending on the length), and how long a sequence fits in a memory
# budget. Replace each `raise NotImplementedError(...)` with a few lines of Python, then
# run the check cell after it (marked `# NBVAL_CHECK_OUTPUT`); its output must match what
# is stored under it. Grade the chapter from the repository root with
#
# ```bash
# .venv/bin/python -m attnkit.grade 05
# ```

# %%
import math

import torch
from torch.utils.flop_counter import FlopCounterMode

import attnkit as ak

# %% [markdown]
# ## Exercise 1: the FLOPs of attention
#
# Write `attention_flops(n, d, num_heads)`: the floating-point operations of the two
# matrix products of self-attention, $S = QK^\top$ and $O = AV$, for **one** sequence of
# `n` tokens and `num_heads` heads of width `d`.
#
# Convention (the one of `torch.utils.flop_counter` and of chapter 5): a multiply-add counts
# as **2 FLOPs**, and nothing else is counted (not the scaling, not the softmax). Return an
# exact Python `int`.


# %%
def attention_flops(n: int, d: int, num_heads: int) -> int:
    """FLOPs (2 per multiply-add) of Q K^T and A V for num_heads heads of width d, n tokens."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %% [markdown]
# The check compares your count with what PyTorch counts while running attention on four
# heads of width 64.

# %%
# NBVAL_CHECK_OUTPUT
print(f"{attention_flops(1000, 64, 8):,}")  # the seed's n = 1000 example, per layer
q = k = v = torch.zeros(1, 4, 256, 64)  # (B, H, n, d)
with FlopCounterMode(display=False) as counter:
    torch.softmax(q @ k.transpose(-2, -1) / 8.0, dim=-1) @ v
print(attention_flops(256, 64, 4) == counter.get_total_flops())
print(attention_flops(512, 64, 4) // attention_flops(256, 64, 4))

# %% [markdown]
# ## Exercise 2: the memory of one score tensor
#
# Write `score_memory_bytes(batch, heads, n, dtype)`: the number of bytes of one tensor of
# shape `(batch, heads, n, n)` with elements of type `dtype` (a `torch.dtype` such as
# `torch.float32` or `torch.bfloat16`). **Do not allocate it**: at the lengths where the
# answer matters, the tensor would not fit. (`dtype.itemsize` gives the bytes per element.)


# %%
def score_memory_bytes(batch: int, heads: int, n: int, dtype: torch.dtype) -> int:
    """Bytes of one (batch, heads, n, n) tensor of the given dtype, computed, not allocated."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %%
# NBVAL_CHECK_OUTPUT
print(score_memory_bytes(1, 8, 1000, torch.float32))
print(score_memory_bytes(1, 8, 1000, torch.bfloat16))
print(score_memory_bytes(32, 16, 32768, torch.float16) / 2**40, "TiB")

# %% [markdown]
# ## Exercise 3: parameters do not depend on `n`
#
# Write `mha_parameter_count(d_model, num_heads, num_kv_heads, bias)`: the number of
# parameters of `ak.MultiHeadAttention(d_model, num_heads, num_kv_heads=num_kv_heads,
# bias=bias)`, from the shapes alone. The module has four projections:
#
# - queries $W_Q$ and output $W_O$: $d_{\text{model}} \to d_{\text{model}}$;
# - keys $W_K$ and values $W_V$: $d_{\text{model}} \to$ `num_kv_heads` $\times$ head
#   width, where the head width is `d_model // num_heads` (grouped-query attention shares
#   each key/value head between `num_heads // num_kv_heads` query heads; chapter 2);
# - with `bias=True`, each projection also has one bias per output.
#
# Notice what is *not* an argument: the sequence length.


# %%
def mha_parameter_count(d_model: int, num_heads: int, num_kv_heads: int, bias: bool) -> int:
    """Parameters of multi-head attention with grouped key/value heads (independent of n)."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %%
# NBVAL_CHECK_OUTPUT
print(mha_parameter_count(512, 8, 8, True))
print(mha_parameter_count(512, 8, 2, False))
layer = ak.MultiHeadAttention(512, 8, num_kv_heads=2, bias=False)
print(mha_parameter_count(512, 8, 2, False) == ak.count_parameters(layer))

# %% [markdown]
# ## Exercise 4: how long a sequence fits?
#
# Write `max_length_for_budget(budget_bytes, batch, heads, bytes_per_element)`: the
# largest length `n` such that one score tensor of shape `(batch, heads, n, n)` takes at
# most `budget_bytes` bytes, that is the largest `n` with (writing $B$ = `batch`,
# $H$ = `heads`, $b$ = `bytes_per_element`)
#
# $$
# B \cdot H \cdot n^2 \cdot b \le \text{budget},
# $$
#
# and `0` if not even `n = 1` fits. The answer must be **exact for any size**, so use
# integer arithmetic: `math.isqrt(m)` is the largest integer whose square is at most `m`.
# (A floating-point `math.sqrt` rounds, and near $10^{16}$ it is off by one.)


# %%
def max_length_for_budget(budget_bytes: int, batch: int, heads: int, bytes_per_element: int) -> int:
    """Largest n with batch * heads * n * n * bytes_per_element <= budget_bytes (0 if none)."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %% [markdown]
# The check asks: with 80 GB for the scores of one layer, how long can a sequence be with
# 32 heads in bfloat16, and in float32 with a batch of 8? Then it tests the boundary.

# %%
# NBVAL_CHECK_OUTPUT
print(max_length_for_budget(80 * 10**9, 1, 32, 2))
print(max_length_for_budget(80 * 10**9, 8, 32, 4))
print(max_length_for_budget(4 * 10**16, 1, 1, 4), max_length_for_budget(4 * 10**16 - 1, 1, 1, 4))
print(max_length_for_budget(3, 1, 1, 4))

# %% [markdown]
# ## Done?
#
# Run `python -m attnkit.grade 05`. Then look back at chapter 5: the first and last
# functions are the two sides of the quadratic wall. Doubling the budget lengthens the
# longest sequence by only $\sqrt{2}$.

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
# # Exercises: long and streaming contexts
#
# Four small functions behind the chapter's mechanisms: the mask of a sliding window with
# attention sinks, the tokens (and positions) that a StreamingLLM cache keeps, YaRN's
# rotary frequencies, and the ALiBi bias of a sequence of any length. Replace each
# `raise NotImplementedError(...)` with a few lines, then run the check cell after it
# (marked `# NBVAL_CHECK_OUTPUT`); its output must match what is stored under it. Grade the
# chapter from the repository root with
#
# ```bash
# .venv/bin/python -m attnkit.grade 18
# ```

# %%
import math

import torch

# %% [markdown]
# ## Exercise 1: a sliding window with sinks
#
# Write `sink_window_mask(T, window, num_sinks)`: the bool mask `(T, T)` whose entry
# `[i, j]` is `True` when query `i` may attend to key `j`. A query sees itself and the
# `window - 1` keys just before it, plus the first `num_sinks` positions, and never a key
# after itself (causal).


# %%
def sink_window_mask(T: int, window: int, num_sinks: int) -> torch.Tensor:
    """(T, T) bool: causal, and within the window or among the first num_sinks keys."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %%
# NBVAL_CHECK_OUTPUT
print(sink_window_mask(6, 2, 1).int())
print(sink_window_mask(4, 3, 0).sum(-1).tolist())  # keys per query

# %% [markdown]
# ## Exercise 2: what does the streaming cache keep?
#
# A StreamingLLM cache holds the first `num_sinks` tokens of the stream and the last
# `window` tokens (the newest one included). Tokens are numbered `0, 1, 2, ...` in the
# stream. Write `kept_tokens(t, window, num_sinks)`: after token `t` has arrived, return
# `(kept, positions)`, two lists of ints: the stream indices of the kept tokens in
# increasing order, and the **positions** the model gives them. StreamingLLM positions a
# token by its slot in the cache, not by its place in the text. Before the cache is full,
# nothing is evicted (and no token is listed twice).


# %%
def kept_tokens(t: int, window: int, num_sinks: int) -> tuple[list[int], list[int]]:
    """Stream indices kept after token t arrived, and their positions in the cache."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %%
# NBVAL_CHECK_OUTPUT
print(kept_tokens(2, 3, 4))
print(kept_tokens(8, 3, 4))  # the paper's example: [0, 1, 2, 3, 6, 7, 8]
print(kept_tokens(100, 2, 1))

# %% [markdown]
# ## Exercise 3: YaRN's frequencies
#
# RoPE pair `j` (`j = 0 .. head_dim/2 - 1`) turns at `theta_j = base ** (-2j / head_dim)`
# radians per position, so over the trained length `L = original_length` it makes
# `r_j = L * theta_j / (2 pi)` turns. For a context `factor` (`s`) times longer, YaRN
# keeps the frequency of pairs with `r_j > beta`, divides it by `s` for pairs with
# `r_j < alpha`, and between them blends linearly:
# `theta'_j = (1 - gamma_j) * theta_j / s + gamma_j * theta_j` with
# `gamma_j = (r_j - alpha) / (beta - alpha)` clipped to `[0, 1]`. Write
# `yarn_frequencies(head_dim, base, factor, original_length, alpha, beta)` returning the
# float64 tensor of the `head_dim / 2` new frequencies.


# %%
def yarn_frequencies(
    head_dim: int, base: float, factor: float, original_length: int, alpha: float, beta: float
) -> torch.Tensor:
    """(head_dim / 2,) float64 rotary frequencies of YaRN ('NTK-by-parts')."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %%
# NBVAL_CHECK_OUTPUT
theta = yarn_frequencies(8, 10000.0, 4.0, 4096, 1.0, 32.0)
print(theta.dtype, theta.shape)
print([round(x, 6) for x in theta.tolist()])
print([round(x, 4) for x in (theta / 10000.0 ** (-torch.arange(4.0) / 4)).tolist()])

# %% [markdown]
# ## Exercise 4: the ALiBi bias of a longer sequence
#
# ALiBi adds `-m_h * (i - j)` to the logit of query `i` and key `j` in head `h`, with
# slopes `m_h = 2 ** (-8 h / H)` for `h = 1 .. H` (`H` a power of two; for 8 heads:
# 1/2, 1/4, ..., 1/256). Write `alibi_causal_bias(num_heads, T)`: the float64 tensor
# `(num_heads, T, T)` to add to the scores of a causal decoder, with the ALiBi bias on and
# below the diagonal and `-inf` above it (keys after the query). Nothing in it depends on
# the length the model was trained on: the same function serves any `T`.


# %%
def alibi_causal_bias(num_heads: int, T: int) -> torch.Tensor:
    """(num_heads, T, T) float64: -m_h (i - j) for j <= i, -inf for j > i."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %%
# NBVAL_CHECK_OUTPUT
b = alibi_causal_bias(4, 5)
print(b.shape, b.dtype)
print(b[0])
print(b[:, 4, 0].tolist())  # the oldest key, seen from the last query, in each head

# %% [markdown]
# ## Done?
#
# Run `python -m attnkit.grade 18`. Exercise 1 is the mask of `llm.LLMSelfAttention`
# with `window` and `num_sinks`; exercise 2 is what `llm.SinkCache` keeps at every step;
# exercise 3 is `llm.scaled_rope_frequencies(..., method="yarn")`.

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
# # Exercises: scaled dot-product attention
#
# Six functions, each a building block of chapter 1. For each one:
#
# 1. read the instructions and the shapes;
# 2. replace `raise NotImplementedError(...)` with your code (use plain PyTorch: do not
#    call `attnkit` or `torch.nn.functional.scaled_dot_product_attention` inside your
#    function; they are there to check you);
# 3. run the cell after it, marked `# NBVAL_CHECK_OUTPUT`: its output must match the
#    output stored under it (that is what the solution prints).
#
# Grade the whole chapter from a terminal in the repository with
#
# ```bash
# .venv/bin/python -m attnkit.grade 01
# ```
#
# The grader loads only your `def`s and imports (not the other cells), tests each
# function on several inputs including edge cases, then runs this notebook and compares
# the check cells. It never modifies your file.
#
# Conventions, as in the chapter: batch dimensions come first and may be any number
# (`...`); a **bool mask** is `True` where a query *may attend* to a key.

# %%
import math

import torch

import attnkit as ak

torch.set_printoptions(precision=4, sci_mode=False)

# %% [markdown]
# ## Exercise 1: attention scores
#
# Write `attention_scores(q, k, scale=None)` returning the scaled scores
# $S = QK^\top \cdot \text{scale}$ with default scale $1/\sqrt{d_k}$.
#
# - `q`: `(..., n_q, d_k)`, `k`: `(..., n_k, d_k)` → `(..., n_q, n_k)`.
# - Use `k.transpose(-2, -1)`, not `k.T`, so that batch dimensions are kept.


# %%
def attention_scores(q: torch.Tensor, k: torch.Tensor, scale: float | None = None) -> torch.Tensor:
    """Scaled dot-product scores (..., n_q, n_k)."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %%
# NBVAL_CHECK_OUTPUT
q = torch.tensor([[1.0, 2.0, 0.0, 1.0]])
k = torch.tensor([[1.0, 1.0, 1.0, 1.0], [2.0, 0.0, -2.0, 0.0], [0.0, 3.0, 0.0, 3.0]])
print(attention_scores(q, k))
print(attention_scores(q, k, scale=1.0))

# %% [markdown]
# ## Exercise 2: a softmax that survives masks
#
# Write `masked_softmax(scores, mask=None)`: the softmax over the last axis in which
# positions where `mask` is `False` get weight exactly 0.
#
# - Subtract the row maximum before `exp` so that large scores do not overflow.
# - A row whose positions are **all** masked (a padding query, say) must come out as all
#   zeros, not NaN. (`torch.softmax` of a row of `-inf` is NaN: try it.)
# - `mask` is `None` or a bool tensor that broadcasts to `scores.shape`.


# %%
def masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax over the last axis; masked entries get 0; fully masked rows are all 0."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %%
# NBVAL_CHECK_OUTPUT
s = torch.tensor([[1.0, 2.0, 3.0], [1000.0, 1001.0, 1002.0], [5.0, 6.0, 7.0]])
m = torch.tensor([[True, True, False], [True, True, True], [False, False, False]])
print(masked_softmax(s))
print(masked_softmax(s, m))

# %% [markdown]
# ## Exercise 3: scaled dot-product attention
#
# Write `scaled_dot_product_attention(q, k, v, mask=None)` returning
# $\mathrm{softmax}\!\left(QK^\top/\sqrt{d_k}\right)V$ using your two functions above.
#
# - `q`: `(..., n_q, d_k)`, `k`: `(..., n_k, d_k)`, `v`: `(..., n_k, d_v)` →
#   `(..., n_q, d_v)`.
# - A query that may attend to no key must get a zero output.


# %%
def scaled_dot_product_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """softmax(q k^T / sqrt(d_k)) v, with an optional bool mask (True = may attend)."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
q, k, v = torch.randn(2, 4, 8), torch.randn(2, 6, 8), torch.randn(2, 6, 3)
ours = scaled_dot_product_attention(q, k, v)
print(ours.shape)
print(torch.allclose(ours, ak.scaled_dot_product_attention(q, k, v), atol=1e-6))
print(scaled_dot_product_attention(q, k, v)[0, 0])

# %% [markdown]
# ## Exercise 4: the causal mask
#
# Write `causal_mask(n_q, n_k=None)`: a bool `(n_q, n_k)` tensor, `True` where query `i`
# may attend to key `j`. With `n_k = n_q` (the default) query `i` sees keys `0..i`.
#
# When there are more keys than queries (decoding with a cache: the queries are the
# **last** `n_q` positions of the sequence), query `i` sits at position `i + n_k - n_q`
# and sees every key up to that position. Build it from `torch.arange`, not a loop.


# %%
def causal_mask(n_q: int, n_k: int | None = None) -> torch.Tensor:
    """Bool (n_q, n_k) mask: query i may attend to keys j <= i + (n_k - n_q)."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %%
# NBVAL_CHECK_OUTPUT
print(causal_mask(4).int())
print(causal_mask(2, 5).int())

# %% [markdown]
# ## Exercise 5: a padding mask from lengths
#
# Sentences in a batch have different lengths and are padded to a common length.
# Write `padding_mask(lengths, max_len=None)`: a bool `(B, max_len)` tensor that is
# `True` on the first `lengths[b]` positions of row `b` (the real tokens) and `False`
# on the padding. `max_len` defaults to the longest length. No Python loop over the batch.


# %%
def padding_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """Bool (B, max_len) mask, True on real tokens."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %%
# NBVAL_CHECK_OUTPUT
print(padding_mask(torch.tensor([3, 1, 0])).int())
print(padding_mask(torch.tensor([2, 4]), max_len=6).int())

# %% [markdown]
# With your functions, attention over a padded batch: the key mask `padding_mask(...)`
# gets a query axis with `[:, None, :]` so that it broadcasts over `(B, n_q, n_k)`.

# %%
torch.manual_seed(1)
lengths = torch.tensor([5, 3])
x = torch.randn(2, 5, 4)
key_mask = padding_mask(lengths)[:, None, :]  # (B, 1, n_k)
out = scaled_dot_product_attention(x, x, x, key_mask & causal_mask(5))
print(out.shape)

# %% [markdown]
# ## Exercise 6: additive (Bahdanau) scores
#
# Before the dot product, Bahdanau et al. (2014) scored a query/key pair with a small
# network: $\mathrm{score}(q_i, k_j) = w^\top \tanh(W_q q_i + W_k k_j)$.
# Write `additive_scores(q, k, w_q, w_k, w)`:
#
# - `q`: `(..., n_q, d_q)`, `k`: `(..., n_k, d_k)`, `w_q`: `(h, d_q)`, `w_k`: `(h, d_k)`,
#   `w`: `(h,)` → `(..., n_q, n_k)`.
# - Compute every pair at once with broadcasting: project, then add a `(..., n_q, 1, h)`
#   tensor to a `(..., 1, n_k, h)` one.


# %%
def additive_scores(
    q: torch.Tensor, k: torch.Tensor, w_q: torch.Tensor, w_k: torch.Tensor, w: torch.Tensor
) -> torch.Tensor:
    """Bahdanau scores w^T tanh(W_q q_i + W_k k_j), shape (..., n_q, n_k)."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(2)
q, k = torch.randn(3, 2), torch.randn(4, 5)
w_q, w_k, w = torch.randn(6, 2), torch.randn(6, 5), torch.randn(6)
print(additive_scores(q, k, w_q, w_k, w))
print(torch.allclose(additive_scores(q, k, w_q, w_k, w), ak.additive_scores(q, k, w_q, w_k, w)))

# %% [markdown]
# ## Done?
#
# Run `python -m attnkit.grade 01`. When everything passes, compare your code with
# `attnkit/softmax.py`, `attnkit/masks.py` and `attnkit/attention.py`: the library adds
# input checks with clear error messages, float masks, dropout and 16-bit support.

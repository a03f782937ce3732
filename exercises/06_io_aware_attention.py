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

# %%

# %% [markdown]
# # Exercises: exact attention that moves fewer bytes
#
# Three small functions, the three ideas of chapter 6: the online softmax that reads the
# keys block by block, the merge of two partial results through their log-sum-exps, and
# FlashAttention's backward pass, which recomputes the attention probabilities from the
# log-sum-exp instead of keeping them. Replace each `raise NotImplementedError(...)` with
# your code, then run the check cell after it (marked `# NBVAL_CHECK_OUTPUT`); its output
# must match what is stored under it. Grade the chapter from the repository root with
#
# ```bash
# .venv/bin/python -m attnkit.grade 06
# ```
#
# The grader loads only your `def`s and imports, tests each function on several inputs
# against dense attention and PyTorch's autograd, then runs this notebook and compares the
# check cells. Conventions, as in the chapter: batch dimensions come first and may be any
# number (`...`); scores are scaled by $1/\sqrt d$; no mask.

# %%
import math

import torch

import attnkit as ak
from attnkit.efficient.tiled import attention_with_lse

torch.set_printoptions(precision=4, sci_mode=False)

# %% [markdown]
# ## Exercise 1: the online softmax
#
# Write `online_softmax_attention(q, k, v, block)` returning `(out, lse)`: the attention
# output $\mathrm{softmax}(q k^\top / \sqrt d)\, v$ `(..., n_q, d_v)` and, per query, the
# log-sum-exp of its scaled scores `(..., n_q)`, reading the keys and values **`block` at a
# time**, in one pass. Keep per query a running maximum $m$, a running sum $\ell$ of
# $e^{s - m}$ and a running weighted sum $a$ of the values; when a block of scores $s$
# arrives,
#
# $$
# m' = \max(m, \max s), \qquad
# \ell' = e^{m - m'} \ell + \sum e^{s - m'}, \qquad
# a' = e^{m - m'} a + \sum e^{s - m'} v ,
# $$
#
# and at the end $o = a / \ell$, $\mathrm{lse} = m + \log \ell$.
#
# - `q`: `(..., n_q, d)`, `k`: `(..., n_k, d)`, `v`: `(..., n_k, d_v)`; `block` need not
#   divide `n_k` (the last block is shorter).
# - Start with $m = -\infty$, $\ell = 0$, $a = 0$; $e^{-\infty - m'} = 0$, so the first block
#   needs no special case.
# - Never form the `(n_q, n_k)` score matrix: only one `(n_q, block)` tile at a time.


# %%
def online_softmax_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q k^T / sqrt(d)) v and its log-sum-exp, one pass over `block` keys at a time."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %% [markdown]
# The check runs 1000 keys in blocks of 128 (the last holds 104) and compares with dense
# attention, then scales the scores up to about 1000, where a plain `exp` overflows.

# %%
# NBVAL_CHECK_OUTPUT
g = torch.Generator().manual_seed(0)
q = torch.randn(2, 30, 16, generator=g, dtype=torch.float64)
k, v = (torch.randn(2, 1000, 16, generator=g, dtype=torch.float64) for _ in range(2))
out, lse = online_softmax_attention(q, k, v, block=128)
print(tuple(out.shape), tuple(lse.shape))
print("== dense attention:", torch.allclose(out, ak.scaled_dot_product_attention(q, k, v)))
print("lse == logsumexp:", torch.allclose(lse, torch.logsumexp(q @ k.mT / 4, dim=-1)))
big_out, big_lse = online_softmax_attention(30 * q, 30 * k, v, block=100)
print(
    "finite with scores ~ 1000:",
    torch.isfinite(big_out).all().item(),
    torch.allclose(big_out, ak.scaled_dot_product_attention(30 * q, 30 * k, v)),
)

# %% [markdown]
# ## Exercise 2: merging two partial attention results
#
# Attention of the queries over a set of keys $A$ gives an output $o_A$ `(..., n_q, d_v)`
# and, per query, the log-sum-exp of its scores $\mathrm{lse}_A$ `(..., n_q)`; likewise for
# a disjoint set of keys $B$. Write `merge_blocks(out_a, lse_a, out_b, lse_b)` returning
# `(out, lse)`, the attention over $A \cup B$:
#
# $$
# \mathrm{lse} = \log\left(e^{\mathrm{lse}_A} + e^{\mathrm{lse}_B}\right), \qquad
# o = e^{\mathrm{lse}_A - \mathrm{lse}}\, o_A + e^{\mathrm{lse}_B - \mathrm{lse}}\, o_B .
# $$
#
# - Log-sum-exps can be large (say 1000): computing $e^{1000}$ overflows. `torch.logaddexp`
#   computes $\log(e^a + e^b)$ safely.
# - A side that has seen no key has $\mathrm{lse} = -\infty$ and a zero output; the merge
#   must then return the other side unchanged (your formula does, if it avoids
#   $-\infty - (-\infty)$). You may assume that at least one side has seen a key.


# %%
def merge_blocks(
    out_a: torch.Tensor, lse_a: torch.Tensor, out_b: torch.Tensor, lse_b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention over key sets A and B (disjoint) from the attention over each: (out, lse)."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %% [markdown]
# The check computes attention over 100 keys block by block (blocks of 30, 30, 30 and 10
# keys), merging as it goes, and compares with attention over all keys at once. Then it
# merges with an empty block and with scores around 1000.


# %%
# NBVAL_CHECK_OUTPUT
def block_attention(q, k, v):
    """Dense attention over one block of keys and the log-sum-exp of each query's scores."""
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., n_q, n_k)
    return torch.softmax(s, dim=-1) @ v, torch.logsumexp(s, dim=-1)


g = torch.Generator().manual_seed(0)
q, k, v = (torch.randn(3, n, 16, generator=g, dtype=torch.float64) for n in (5, 100, 100))
out, lse = block_attention(q, k[:, :30], v[:, :30])
for start in (30, 60, 90):
    block = block_attention(q, k[:, start : start + 30], v[:, start : start + 30])
    out, lse = merge_blocks(out, lse, *block)
full, full_lse = block_attention(q, k, v)
print("blockwise == all keys at once:", torch.allclose(out, full), torch.allclose(lse, full_lse))
empty = (torch.zeros_like(out), torch.full_like(lse, -math.inf))
same, _ = merge_blocks(out, lse, *empty)
print("merging an empty block changes nothing:", torch.allclose(same, out))
big = merge_blocks(out, lse + 1000, out, lse + 1000)
print(
    "no overflow at lse ~ 1000:", torch.isfinite(big[0]).all().item(), torch.allclose(big[0], out)
)

# %% [markdown]
# ## Exercise 3: the backward pass that recomputes
#
# FlashAttention keeps only the output $O$ and the log-sum-exp of each query's scores for
# the backward pass, not the `(n_q, n_k)` probabilities $P$. Write
# `attention_backward(q, k, v, out, lse, grad_out)` returning `(grad_q, grad_k, grad_v)`,
# the gradients of a loss with respect to `q`, `k` and `v`, given `grad_out`
# $= \partial \mathcal L / \partial O$, by **recomputing** the probabilities from the
# log-sum-exp:
#
# $$
# S = \frac{q k^\top}{\sqrt d}, \quad P = e^{S - \mathrm{lse}}, \quad
# dV = P^\top dO, \quad dP = dO\, V^\top, \quad
# D = \mathrm{rowsum}(dO \circ O), \quad dS = P \circ (dP - D),
# $$
#
# $$
# dQ = \frac{dS\, K}{\sqrt d}, \qquad dK = \frac{dS^\top Q}{\sqrt d} .
# $$
#
# - $D_i = \sum_j P_{ij}\, dP_{ij}$, the softmax's correction term, equals
#   $dO_i \cdot O_i$: computing it from `out` and `grad_out` costs $O(n d)$, not $O(n^2)$.
# - Use `lse` as given (broadcast it over the keys with `unsqueeze(-1)`); do not call
#   `torch.softmax`. (A real kernel does all this tile by tile; here one tile is enough.)


# %%
def attention_backward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    grad_out: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients (dq, dk, dv) of softmax(q k^T / sqrt(d)) v from out and lse (no P kept)."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %% [markdown]
# The check compares with PyTorch's autograd through dense attention, for a loss whose
# gradient with respect to the output is a random `grad_out`.

# %%
# NBVAL_CHECK_OUTPUT
g = torch.Generator().manual_seed(0)
q, k, v = (torch.randn(2, 3, 50, 8, generator=g, dtype=torch.float64) for _ in range(3))
grad_out = torch.randn(2, 3, 50, 8, generator=g, dtype=torch.float64)
with torch.no_grad():
    out, lse = attention_with_lse(q, k, v)  # what the forward pass keeps: O and lse
grads = attention_backward(q, k, v, out, lse, grad_out)
q, k, v = (t.clone().requires_grad_() for t in (q, k, v))
ak.scaled_dot_product_attention(q, k, v).backward(grad_out)
for name, got, want in zip(("dq", "dk", "dv"), grads, (q.grad, k.grad, v.grad)):
    print(name, tuple(got.shape), "== autograd:", torch.allclose(got, want))

# %% [markdown]
# ## Done?
#
# Run `python -m attnkit.grade 06`. Then look back at chapter 6: exercise 1 is the inner
# loop of FlashAttention's forward pass, exercise 2 is why attention can be split along
# the keys across tiles, devices or a cache, and exercise 3 is how training does without
# the $n \times n$ probabilities.

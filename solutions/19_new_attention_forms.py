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
# # Exercises: new forms of attention
#
# Four small functions behind the attention of 2025 language models: Gemma 2's logit
# soft-cap, one step of the delta rule, sigmoid attention with its bias, and the causal
# top-k selection of a sparse-attention indexer. Replace each
# `raise NotImplementedError(...)` with a few lines, then run the check cell after it
# (marked `# NBVAL_CHECK_OUTPUT`); its output must match what is stored under it. Grade the
# chapter from the repository root with
#
# ```bash
# .venv/bin/python -m attnkit.grade 19
# ```

# %%
import math

import torch

# %% [markdown]
# ## Exercise 1: soft-capping logits
#
# Write `softcap_logits(scores, cap)`: every entry $s$ of `scores` becomes
# $c \tanh(s / c)$ with $c$ = `cap`. Small logits pass almost unchanged, large ones are
# squashed smoothly into $(-c, c)$ (unlike a clamp, the result still has a gradient).
# Return a new tensor of the same shape.


# %%
def softcap_logits(scores: torch.Tensor, cap: float) -> torch.Tensor:
    """cap * tanh(scores / cap), elementwise."""
    # BEGIN SOLUTION
    return cap * torch.tanh(scores / cap)
    # END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
s = torch.tensor([-1000.0, -50.0, -1.0, 0.0, 1.0, 50.0, 1000.0], dtype=torch.float64)
print([round(v, 3) for v in softcap_logits(s, 50.0).tolist()])
print(round(softcap_logits(torch.tensor(3.0, dtype=torch.float64), 30.0).item(), 4))

# %% [markdown]
# ## Exercise 2: one step of the delta rule
#
# The state $S$ (`(d_v, d_k)`) of a DeltaNet layer is a linear map from keys to values.
# Write `delta_rule_step(S, k, v, beta)`: one gradient step of size $\beta$ on
# $\frac12 \lVert S k - v \rVert^2$,
#
# $$
# S' = S - \beta\,(S k - v)\,k^\top .
# $$
#
# `k` has shape `(d_k,)`, `v` shape `(d_v,)`, `beta` is a float in $(0, 1]$. Return the new
# state (do not modify `S`).


# %%
def delta_rule_step(
    S: torch.Tensor, k: torch.Tensor, v: torch.Tensor, beta: float
) -> torch.Tensor:
    """The state after writing the pair (k, v) with the delta rule: (d_v, d_k)."""
    # BEGIN SOLUTION
    error = S @ k - v  # what the state predicts for k, minus the target, (d_v,)
    return S - beta * torch.outer(error, k)
    # END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
state = torch.zeros(2, 3, dtype=torch.float64)  # (d_v, d_k)
k = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
state = delta_rule_step(state, k, torch.tensor([5.0, -1.0], dtype=torch.float64), 1.0)
print((state @ k).tolist())  # the value just written
state = delta_rule_step(state, k, torch.tensor([2.0, 2.0], dtype=torch.float64), 1.0)
print((state @ k).tolist())  # replaced, not added
state = delta_rule_step(state, k, torch.tensor([0.0, 0.0], dtype=torch.float64), 0.5)
print((state @ k).tolist())  # half-way towards the new value

# %% [markdown]
# ## Exercise 3: sigmoid attention weights
#
# Write `sigmoid_attention_weights(q, k, bias=None)` for queries `(..., n_q, d)` and keys
# `(..., n_k, d)`: the weights $\sigma(q k^\top / \sqrt{d} + b)$ of shape `(..., n_q, n_k)`,
# each computed on its own (no normalisation over the row). When `bias` is `None`, use
# $b = -\log n_k$ (Ramapuram et al. 2024), where $n_k$ is the number of **keys**.


# %%
def sigmoid_attention_weights(
    q: torch.Tensor, k: torch.Tensor, bias: float | None = None
) -> torch.Tensor:
    """sigmoid(q k^T / sqrt(d) + bias), bias = -log(n_k) by default: (..., n_q, n_k)."""
    # BEGIN SOLUTION
    b = -math.log(k.shape[-2]) if bias is None else bias
    return torch.sigmoid(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]) + b)
    # END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
q = torch.zeros(1, 4, dtype=torch.float64)
k = torch.zeros(9, 4, dtype=torch.float64)
w = sigmoid_attention_weights(q, k)
print(w.shape, round(w.sum().item(), 4))  # nine logits of 0, bias -log 9: a row sums to 0.9
print(round(sigmoid_attention_weights(q, k, bias=0.0).sum().item(), 4))

# %% [markdown]
# ## Exercise 4: a causal top-k selection mask
#
# A sparse-attention indexer scores every (query, key) pair; attention then reads only
# the best keys. Write `topk_causal_mask(scores, top_k)` for scores of shape `(T, T)`
# (row `t` = query `t`): a bool mask of the same shape that is `True` at the `top_k`
# highest-scoring keys **among the keys `s <= t`** that query `t` may see (all of them
# when there are at most `top_k`). On equal scores, prefer the **earlier** key.


# %%
def topk_causal_mask(scores: torch.Tensor, top_k: int) -> torch.Tensor:
    """Bool (T, T): each query's top_k best visible keys (ties to the earlier key)."""
    # BEGIN SOLUTION
    T = scores.shape[-1]
    visible = torch.ones(T, T, dtype=torch.bool).tril()
    masked = scores.masked_fill(~visible, float("-inf"))
    order = torch.sort(masked, dim=-1, descending=True, stable=True).indices[:, :top_k]
    chosen = torch.zeros(T, T, dtype=torch.bool).scatter(-1, order, True)
    return chosen & visible
    # END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
scores = torch.tensor(
    [
        [0.0, 9.0, 9.0, 9.0],
        [1.0, 2.0, 9.0, 9.0],
        [3.0, 1.0, 2.0, 9.0],
        [1.0, 1.0, 5.0, 0.0],
    ]
)
print(topk_causal_mask(scores, 2).int())

# %% [markdown]
# ## Done?
#
# Run `python -m attnkit.grade 19`. Exercise 1 is `llm.softcap`; exercise 2 is one step of
# `llm.delta_rule_recurrent`; exercise 4 is `llm.topk_token_mask` for one sequence.

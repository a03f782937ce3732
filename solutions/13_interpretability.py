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
# # Exercises: how far attention explains
#
# Four small functions, one for each family of attribution in chapter 13: attention
# rollout, gradient $\times$ input, leave-one-out erasure, and the rank correlation used to
# compare attributions. Replace each `raise NotImplementedError(...)` with your code, then
# run the check cell after it (marked `# NBVAL_CHECK_OUTPUT`); its output must match what
# is stored under it. Grade the chapter from the repository root with
#
# ```bash
# .venv/bin/python -m attnkit.grade 13
# ```
#
# The grader loads only your `def`s and imports, tests each function on several inputs
# against attnkit and against independent references, then runs this notebook and compares
# the check cells. Conventions, as in the chapter: batch first; a bool `mask` is `True` on
# real tokens, and sequences are right-padded (real tokens first, then padding).

# %%
import math

import scipy.stats
import torch

from attnkit.interpret import attention_rollout, gradient_x_input, kendall_tau, leave_one_out
from attnkit.models.text_classifier import TransformerClassifier

torch.set_printoptions(precision=4, sci_mode=False)


def tiny_model(pooling: str = "attention") -> TransformerClassifier:
    """A small untrained classifier with fixed weights, for the checks."""
    torch.manual_seed(0)
    model = TransformerClassifier(
        12, 2, d_model=16, num_heads=2, num_layers=2, d_ff=32, dropout=0.0, pooling=pooling
    )
    return model.eval()


# %% [markdown]
# ## Exercise 1: attention rollout
#
# Write `rollout(attentions)`. `attentions` is a list of per-layer attention weights, first
# layer first, each of shape `(B, H, T, T)` (rows sum to 1). Following
# Abnar & Zuidema (2020):
#
# 1. average each layer over its heads: $A^{(l)} = \frac1H \sum_h A^{(l,h)}$, `(B, T, T)`;
# 2. account for the residual connection: $\hat A^{(l)} = \tfrac12 A^{(l)} + \tfrac12 I$;
# 3. multiply, the *last* layer on the left: $R = \hat A^{(L)} \cdots \hat A^{(2)} \hat A^{(1)}$.
#
# Return $R$, `(B, T, T)`.


# %%
def rollout(attentions: list[torch.Tensor]) -> torch.Tensor:
    """Attention rollout (B, T, T) of per-layer (B, H, T, T) weights, first layer first."""
    # BEGIN SOLUTION
    result = None
    for w in attentions:
        a = w.mean(dim=1)  # (B, T, T)
        a = 0.5 * a + 0.5 * torch.eye(a.shape[-1], dtype=a.dtype)
        result = a if result is None else a @ result
    return result
    # END SOLUTION


# %% [markdown]
# The check rolls out two hand-made layers of one head over two tokens, then the three
# layers of attention of a small model, compared with attnkit's `attention_rollout`.

# %%
# NBVAL_CHECK_OUTPUT
w1 = torch.tensor([[[[1.0, 0.0], [0.5, 0.5]]]])  # (1, 1, 2, 2)
w2 = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])
print(rollout([w1, w2])[0])
model = tiny_model()
ids = torch.tensor([[2, 5, 7, 9, 3], [2, 6, 3, 0, 0]])
_, atts, _ = model(ids, ids != 0, return_attention=True)
r = rollout(atts)
print("rows sum to 1:", torch.allclose(r.sum(-1), torch.ones(2, 5)))
print("== attnkit:", torch.allclose(r, attention_rollout(atts), atol=1e-6))

# %% [markdown]
# ## Exercise 2: gradient $\times$ input
#
# Write `grad_times_input(f, emb)`. `f` maps embeddings `(B, T, D)` to one score per row,
# `(B,)` (for example the logit of the predicted class), and `emb` is a `(B, T, D)` tensor
# of embeddings. Return the `(B, T)` tensor
#
# $$ g_{b,t} = \sum_d e_{b,t,d} \, \frac{\partial f(e)_b}{\partial e_{b,t,d}} . $$
#
# Rows are independent, so you can differentiate `f(e).sum()` once for all of them. Do not
# change `emb` (differentiate a detached copy that requires a gradient) and return a tensor
# without a gradient graph.


# %%
def grad_times_input(f, emb: torch.Tensor) -> torch.Tensor:
    """Gradient x input (B, T) of the per-row scores f(emb) (B,) for embeddings (B, T, D)."""
    # BEGIN SOLUTION
    x = emb.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(f(x).sum(), x)
    return (grad * x).sum(-1).detach()
    # END SOLUTION


# %% [markdown]
# The check uses a function whose gradient you know, $f(e)_b = \sum_{t,d} e_{b,t,d}^2$
# (so $g = 2 e^2$ summed over $d$), then the classifier's logit of class 1, compared with
# attnkit's `gradient_x_input`.

# %%
# NBVAL_CHECK_OUTPUT
e = torch.tensor([[[1.0, 2.0], [0.0, -1.0], [3.0, 0.5]]])  # (1, 3, 2)
print(grad_times_input(lambda x: (x**2).sum((1, 2)), e))
model = tiny_model("cls")
mask = ids != 0
emb = model.embed_tokens(ids)
g = grad_times_input(lambda x: model.forward_embeddings(x, mask)[:, 1], emb) * mask
print(g.round(decimals=3))
want = gradient_x_input(model, ids, mask, torch.tensor([1, 1]))
print("== attnkit:", torch.allclose(g, want, atol=1e-6))

# %% [markdown]
# ## Exercise 3: leave-one-out erasure
#
# Write `leave_one_out_scores(prob_fn, ids, mask, target)`:
#
# - `prob_fn(ids, mask)` returns class probabilities `(B, C)` for a batch;
# - `ids` `(B, T)` and `mask` bool `(B, T)`, right-padded; `target` `(B,)` the class
#   whose probability we follow.
#
# For every real token $t$ of row $b$, **delete** it (the later tokens move one place left
# and the row gets one more padding position at the end, id 0) and return
# $p_{\text{target}}(x_b) - p_{\text{target}}(x_b \text{ without } t)$ at position
# $(b, t)$. Padding positions, and rows with a single real token (which cannot lose it),
# get 0. Return a float `(B, T)` tensor.


# %%
def leave_one_out_scores(prob_fn, ids: torch.Tensor, mask: torch.Tensor, target: torch.Tensor):
    """Drop of p(target) when each real token alone is deleted: (B, T), 0 on padding."""
    # BEGIN SOLUTION
    B, T = ids.shape
    out = torch.zeros(B, T)
    with torch.no_grad():
        base = prob_fn(ids, mask)[torch.arange(B), target]  # (B,)
        for b in range(B):
            n = int(mask[b].sum())
            if n < 2:
                continue
            for t in range(n):
                kept = torch.cat([ids[b, :t], ids[b, t + 1 : n]])
                new_ids = torch.zeros(1, T, dtype=ids.dtype)
                new_ids[0, : n - 1] = kept
                new_mask = torch.arange(T)[None, :] < n - 1
                p = prob_fn(new_ids, new_mask)[0, target[b]]
                out[b, t] = base[b] - p
    return out
    # END SOLUTION


# %% [markdown]
# The check erases the tokens of two short sequences for a model whose probability of
# class 1 is the fraction of token 7 among the real tokens (so you can work out the answer
# by hand), then for the classifier, compared with attnkit's `leave_one_out`.


# %%
# NBVAL_CHECK_OUTPUT
def count_sevens(ids, mask):
    share = ((ids == 7) & mask).sum(-1) / mask.sum(-1)
    return torch.stack([1 - share, share], dim=-1)


toy = torch.tensor([[7, 5, 7, 5], [7, 5, 0, 0]])
print(leave_one_out_scores(count_sevens, toy, toy != 0, torch.tensor([1, 1])))
model = tiny_model("mean")
target = torch.tensor([0, 1])
mask = ids != 0
loo = leave_one_out_scores(lambda i, m: torch.softmax(model(i, m), -1), ids, mask, target)
print(loo.round(decimals=4))
print("== attnkit:", torch.allclose(loo, leave_one_out(model, ids, mask, target), atol=1e-6))

# %% [markdown]
# ## Exercise 4: Kendall's $\tau_b$
#
# Write `kendall_tau_b(a, b)` for two 1-D tensors of the same length $n \ge 2$. Over all
# pairs $i < j$, a pair is *concordant* if $a_i - a_j$ and $b_i - b_j$ have the same
# sign (both non-zero) and *discordant* if opposite signs; let $C$ and $D$ count them,
# $P = n(n-1)/2$ all pairs, and $T_a$, $T_b$ the pairs tied in $a$ and in $b$. Return
#
# $$ \tau_b = \frac{C - D}{\sqrt{(P - T_a)(P - T_b)}} $$
#
# as a Python float, and `math.nan` when the denominator is 0 (a constant input).


# %%
def kendall_tau_b(a: torch.Tensor, b: torch.Tensor) -> float:
    """Kendall's tau-b of two 1-D score vectors (ties allowed); nan if one is constant."""
    # BEGIN SOLUTION
    n = a.shape[0]
    c = d = ties_a = ties_b = 0
    for i in range(n):
        for j in range(i + 1, n):
            sa = int(a[i] > a[j]) - int(a[i] < a[j])
            sb = int(b[i] > b[j]) - int(b[i] < b[j])
            ties_a += int(sa == 0)
            ties_b += int(sb == 0)
            c += int(sa * sb > 0)
            d += int(sa * sb < 0)
    pairs = n * (n - 1) // 2
    denom = math.sqrt((pairs - ties_a) * (pairs - ties_b))
    return math.nan if denom == 0 else (c - d) / denom
    # END SOLUTION


# %% [markdown]
# The check compares a few hand-made vectors (one with ties, one reversed, one constant)
# with `scipy.stats.kendalltau`, then a random batch with attnkit's `kendall_tau`.

# %%
# NBVAL_CHECK_OUTPUT
x = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
for y in ([1.0, 3.0, 2.0, 5.0, 4.0], [2.0, 2.0, 1.0, 3.0, 3.0], [5.0, 4.0, 3.0, 2.0, 1.0]):
    y = torch.tensor(y)
    print(round(kendall_tau_b(x, y), 4), round(float(scipy.stats.kendalltau(x, y).statistic), 4))
print(kendall_tau_b(x, torch.ones(5)))
g = torch.Generator().manual_seed(0)
a, b = torch.randint(0, 4, (2, 3, 8), generator=g).double()
ours = [kendall_tau_b(a[i], b[i]) for i in range(3)]
print([round(t, 4) for t in ours])
theirs = kendall_tau(a, b, torch.ones(3, 8, dtype=torch.bool))
print("== attnkit:", torch.allclose(torch.tensor(ours, dtype=torch.float64), theirs))

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
# # Exercises: adaptive attention span
#
# Four small functions, one for each idea of chapter 16: the soft span mask, the
# attention weights it produces, the L1 penalty that keeps spans short, and the cost that
# the learned spans imply. Replace each `raise NotImplementedError(...)` with your code,
# then run the check cell after it (marked `# NBVAL_CHECK_OUTPUT`); its output must match
# what is stored under it. Grade the chapter from the repository root with
#
# ```bash
# .venv/bin/python -m attnkit.grade 16
# ```
#
# The grader loads only your `def`s and imports, tests each function on several inputs
# against attnkit and against independent references, then runs this notebook and compares
# the check cells. Conventions, as in the chapter: the distance from query $t$ to key $r$
# is $x = t - r$; attention is causal (key $r \le t$); $R$ is the ramp width and $z$ a span.

# %%
import math

import torch

from attnkit.efficient.adaptive_span import adaptive_span_attention
from attnkit.efficient.adaptive_span import adaptive_span_flops as attnkit_flops

torch.set_printoptions(precision=4, sci_mode=False)

# %% [markdown]
# ## Exercise 1: the soft span mask
#
# Write `soft_span_mask(distance, span, ramp)`:
#
# $$
# m_z(x) = \min\left(\max\left(\frac{R + z - x}{R},\, 0\right),\, 1\right)
# $$
#
# - `distance` is a floating tensor of distances $x$ (any shape); `span` is a number or a
#   tensor $z$ that broadcasts with it; `ramp` is the number $R > 0$.
# - Return the broadcast shape. The result must be differentiable in `span` (no Python
#   `if` on tensor values; `torch.clamp` does it).


# %%
def soft_span_mask(distance: torch.Tensor, span: torch.Tensor | float, ramp: float) -> torch.Tensor:
    """m_z(x) = clamp((R + z - x) / R, 0, 1): 1 up to the span, 0 beyond span + ramp."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %% [markdown]
# The check prints the mask over distances 0 to 9 for three spans, and the gradient in the
# span of the mask's sum, for $z = 3.5$ and a ramp of 4: the distances 4 to 7 lie on the
# ramp, each with slope $1/4$.

# %%
# NBVAL_CHECK_OUTPUT
x = torch.arange(10.0)
for z in (0.0, 2.5, 6.0):
    print(f"z = {z}:", soft_span_mask(x, z, 2.0))
z = torch.tensor(3.5, requires_grad=True)
soft_span_mask(x, z, 4.0).sum().backward()
print("d sum(m) / dz with R = 4:", z.grad.item())

# %% [markdown]
# ## Exercise 2: adaptive-span attention weights
#
# Write `adaptive_span_weights(scores, span, ramp)`: the causal attention weights of
# adaptive span, from scores that are already scaled,
#
# $$
# a_{tr} = \frac{m_{z_h}(t - r)\, e^{s_{tr}}}{\sum_{q \le t} m_{z_h}(t - q)\, e^{s_{tq}}}
# \quad (r \le t), \qquad a_{tr} = 0 \quad (r > t).
# $$
#
# - `scores`: `(..., H, n, n)`, query rows, key columns; `span`: a float tensor `(H,)`, one
#   span per head; `ramp`: a number. Return weights of the shape of `scores`.
# - Build the distances $t - r$ with `torch.arange`, the mask with your `soft_span_mask`
#   (reshape the spans to `(H, 1, 1)`), and set it to 0 above the diagonal.
# - Scores can be large: compute $m\, e^{s - \max}$ with the row maximum taken over the
#   keys the query may see (or take `torch.softmax` over the masked scores and multiply by
#   $m$), then divide by the row sum. Every row has at least one key, itself ($m = 1$ at
#   distance 0).


# %%
def adaptive_span_weights(scores: torch.Tensor, span: torch.Tensor, ramp: float) -> torch.Tensor:
    """Causal adaptive-span weights (..., H, n, n) from scaled scores and spans (H,)."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %% [markdown]
# The check builds scores from random queries and keys, compares your weights with the
# weights of attnkit's `adaptive_span_attention` (which computes only a band of keys), and
# prints one row for each of three heads: span 0, span 2 and a span longer than the
# sequence (plain causal attention).

# %%
# NBVAL_CHECK_OUTPUT
g = torch.Generator().manual_seed(0)
q, k, v = (torch.randn(2, 3, 12, 4, generator=g, dtype=torch.float64) for _ in range(3))
spans = torch.tensor([0.0, 2.0, 50.0], dtype=torch.float64)
w = adaptive_span_weights(q @ k.transpose(-2, -1) / 2.0, spans, 3.0)
_, w_ak = adaptive_span_attention(q, k, v, spans, ramp=3.0, return_weights=True)
print(tuple(w.shape), "== attnkit:", torch.allclose(w, w_ak))
print("rows sum to 1:", torch.allclose(w.sum(-1), torch.ones(2, 3, 12, dtype=torch.float64)))
for h in range(3):
    print(f"head {h}, query 6:", w[0, h, 6].float())

# %% [markdown]
# ## Exercise 3: the span penalty
#
# A model keeps one parameter $f_{\ell h}$ per head $h$ of layer $\ell$ and uses the span
# $z_{\ell h} = S \cdot \mathrm{clamp}(f_{\ell h}, 0, 1)$. The paper adds to the loss
#
# $$
# \frac{\lambda}{M} \sum_{\ell, h} z_{\ell h},
# $$
#
# with $M$ the number of heads per layer. Write
# `span_penalty(span_fractions, max_span, lam)` for `span_fractions` of shape
# `(num_layers, M)`; return a 0-d tensor that is differentiable in `span_fractions`.


# %%
def span_penalty(span_fractions: torch.Tensor, max_span: int, lam: float) -> torch.Tensor:
    """lam / M * sum of the spans max_span * clamp(f, 0, 1) over all layers and heads."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %% [markdown]
# The check: two layers of four heads, one fraction out of range on each side; the
# penalty and its gradient (zero for the clamped heads).

# %%
# NBVAL_CHECK_OUTPUT
f = torch.tensor([[0.5, 0.25, 1.5, 0.05], [0.1, -0.2, 0.75, 0.9]], requires_grad=True)
penalty = span_penalty(f, 64, 0.01)
penalty.backward()
print("penalty:", round(penalty.item(), 6))
print("gradient:", f.grad)

# %% [markdown]
# ## Exercise 4: what the spans cost
#
# Write `adaptive_span_flops(n, spans, ramp, head_dim)`: the FLOPs of the scores and the
# weighted values of causal adaptive-span attention over `n` tokens, summed over the heads.
#
# - A head with span $z$ gives a nonzero weight to the keys at distance $x < z + R$, so
#   query $t$ (counting from 0) needs $\min(t + 1, \lceil z + R \rceil)$ keys.
# - Each key costs $2d$ FLOPs for its score ($d$ multiplications and $d$ additions) and
#   $2d$ for its share of the output: $4d$ per key.
# - `spans` is a list of floats; return a Python `int`. A closed form per head is faster
#   than a loop over the queries (but a loop is fine).


# %%
def adaptive_span_flops(n: int, spans: list[float], ramp: float, head_dim: int) -> int:
    """4 * head_dim * (number of (query, key) pairs with a nonzero mask), over all heads."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %% [markdown]
# The check compares with attnkit at the spans the chapter's model learned, against full
# causal attention ($2 d n (n + 1)$ per head) at three lengths.

# %%
# NBVAL_CHECK_OUTPUT
learned = [12.0, 0.0, 4.8, 0.0]
for n in (64, 1024, 8192):
    ours = adaptive_span_flops(n, learned, 8.0, 8)
    full = 4 * 2 * 8 * n * (n + 1)
    same = ours == attnkit_flops(n, learned, 8.0, 8)
    print(
        f"n = {n:>4}: {ours:>12,} FLOPs, full / adaptive = {full / ours:7.1f}, == attnkit: {same}"
    )

# %% [markdown]
# ## Done?
#
# Run `python -m attnkit.grade 16`. Exercises 1 and 2 are the whole mechanism of the
# adaptive span; exercise 3 is what makes spans shrink, and exercise 4 what their
# shrinking buys.

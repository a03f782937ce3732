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
# # Exercises: multi-head attention and positional encoding
#
# Six functions from chapter 2. For each one, replace `raise NotImplementedError(...)`
# with your code, then run the check cell after it (marked `# NBVAL_CHECK_OUTPUT`): its
# output must match what is stored under it. Inside your functions use plain PyTorch;
# exercise 3 may also call `ak.scaled_dot_product_attention` (you wrote it in chapter 1).
#
# Grade the chapter from the repository root with
#
# ```bash
# .venv/bin/python -m attnkit.grade 02
# ```
#
# Shapes are batch-first: `(B, T, d_model)` for token vectors and `(B, H, T, D)` once
# the model dimension is split into `H` heads of size `D = d_model / H`.

# %%
import torch

import attnkit as ak

torch.set_printoptions(precision=4, sci_mode=False)

# %% [markdown]
# ## Exercise 1: split the model dimension into heads
#
# Write `split_heads(x, num_heads)`: `(..., T, H * D) -> (..., H, T, D)`, where head `h`
# receives features `h * D` to `(h + 1) * D - 1` of every token (the layout of
# `torch.nn.MultiheadAttention`). Use `reshape`/`view` and `transpose`, no loops.


# %%
def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(..., T, H * D) -> (..., H, T, D)."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %%
# NBVAL_CHECK_OUTPUT
x = torch.arange(12.0).reshape(1, 2, 6)  # one sequence, 2 tokens, d_model = 6
print(split_heads(x, 3))
print(split_heads(torch.zeros(4, 5, 7, 32), 8).shape)

# %% [markdown]
# ## Exercise 2: merge the heads back
#
# Write `merge_heads(x)`: `(..., H, T, D) -> (..., T, H * D)`, the inverse of
# `split_heads`. (Why is `.reshape` needed rather than `.view` after the transpose?)


# %%
def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(..., H, T, D) -> (..., T, H * D)."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %%
# NBVAL_CHECK_OUTPUT
y = torch.randn(2, 4, 5, 8)
print(merge_heads(y).shape)
print(torch.equal(merge_heads(split_heads(x, 3)), x))

# %% [markdown]
# ## Exercise 3: multi-head attention from weight matrices
#
# Write `multi_head_attention(x, w_q, w_k, w_v, w_o, num_heads, mask=None)` for
# self-attention without biases:
#
# $$
# Q = X W_q^\top,\; K = X W_k^\top,\; V = X W_v^\top,\quad
# \text{head}_h = \mathrm{Attention}(Q_h, K_h, V_h),\quad
# \text{out} = \mathrm{Concat}(\text{head}_1, \dots, \text{head}_H)\, W_o^\top .
# $$
#
# - `x`: `(B, T, d_model)`; each `w_*`: `(d_model, d_model)` (PyTorch's `nn.Linear`
#   layout, hence the transposes); `mask`: optional bool, `True` = may attend, broadcasting
#   to `(B, H, T, T)`.
# - Use your `split_heads`/`merge_heads` and `ak.scaled_dot_product_attention`.


# %%
def multi_head_attention(
    x: torch.Tensor,
    w_q: torch.Tensor,
    w_k: torch.Tensor,
    w_v: torch.Tensor,
    w_o: torch.Tensor,
    num_heads: int,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Multi-head self-attention without biases: (B, T, d_model) -> (B, T, d_model)."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
d_model, heads = 8, 2
torch_mha = torch.nn.MultiheadAttention(d_model, heads, bias=False, batch_first=True)
w_q, w_k, w_v = torch_mha.in_proj_weight.detach().chunk(3)
w_o = torch_mha.out_proj.weight.detach()
x = torch.randn(1, 3, d_model)
ours = multi_head_attention(x, w_q, w_k, w_v, w_o, heads)
theirs, _ = torch_mha(x, x, x, need_weights=False)
print(torch.allclose(ours, theirs, atol=1e-6))
print(ours[0, 0])

# %% [markdown]
# ## Exercise 4: sinusoidal positional encoding
#
# Write `sinusoidal_encoding(n_positions, d_model)` returning the `(n_positions, d_model)`
# table of Vaswani et al. (2017), section 3.5 (`d_model` even):
#
# $$
# PE_{(pos,\,2i)} = \sin\!\left(\frac{pos}{10000^{2i/d_\text{model}}}\right),\qquad
# PE_{(pos,\,2i+1)} = \cos\!\left(\frac{pos}{10000^{2i/d_\text{model}}}\right).
# $$
#
# Build it with broadcasting: a `(n_positions, 1)` column of positions times a
# `(1, d_model / 2)` row of frequencies.


# %%
def sinusoidal_encoding(n_positions: int, d_model: int) -> torch.Tensor:
    """(n_positions, d_model) sinusoidal table; even columns sin, odd columns cos."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %%
# NBVAL_CHECK_OUTPUT
print(sinusoidal_encoding(3, 6))
print(sinusoidal_encoding(100, 64).shape)

# %% [markdown]
# ## Exercise 5: rotary position embedding (RoPE)
#
# RoPE (Su et al., 2021) rotates pairs of query/key features by an angle proportional to
# the position. Write `apply_rotary(x, base=10000.0)` for `x` of shape `(..., T, D)`
# (`D` even), rotating row `t` by position `t`, in the "rotate-half" layout used by
# GPT-NeoX and Llama: feature `j` is paired with feature `j + D/2` and rotated by the
# angle $t\,\theta_j$ with $\theta_j = \text{base}^{-2j/D}$, $j = 0, \dots, D/2 - 1$:
#
# $$
# \begin{pmatrix} y_j \\ y_{j+D/2} \end{pmatrix} =
# \begin{pmatrix} \cos t\theta_j & -\sin t\theta_j \\ \sin t\theta_j & \cos t\theta_j \end{pmatrix}
# \begin{pmatrix} x_j \\ x_{j+D/2} \end{pmatrix}.
# $$


# %%
def apply_rotary(x: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotate (..., T, D) by RoPE with positions 0..T-1 (rotate-half layout)."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %%
# NBVAL_CHECK_OUTPUT
q = torch.ones(1, 3, 4)
print(apply_rotary(q))
# The score between positions m and n depends only on m - n:
torch.manual_seed(1)
a, b = torch.randn(4), torch.randn(4)
seq_q, seq_k = a.expand(6, 4), b.expand(6, 4)  # the same vectors at positions 0..5
scores = apply_rotary(seq_q) @ apply_rotary(seq_k).T
print(torch.allclose(scores[1, 0], scores[5, 4]), torch.allclose(scores[2, 0], scores[4, 2]))

# %% [markdown]
# ## Exercise 6: share keys and values across query heads (GQA)
#
# Grouped-query attention keeps `H_kv < H` key/value heads; query head `h` uses key/value
# head `h // (H / H_kv)`. Write `repeat_kv(x, n_rep)`: `(B, H_kv, T, D) ->
# (B, H_kv * n_rep, T, D)` so that output head `h` is input head `h // n_rep`.


# %%
def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """(B, H_kv, T, D) -> (B, H_kv * n_rep, T, D); head h is input head h // n_rep."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %%
# NBVAL_CHECK_OUTPUT
kv = torch.arange(2.0).reshape(1, 2, 1, 1)  # two kv heads holding 0 and 1
print(repeat_kv(kv, 3).flatten())

# %% [markdown]
# ## Done?
#
# Run `python -m attnkit.grade 02`, then compare with `attnkit/heads.py`,
# `attnkit/multihead.py` and `attnkit/positional.py`.

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
# # Exercises: the Transformer
#
# Six pieces of the encoder–decoder of chapter 3. For each, replace
# `raise NotImplementedError(...)` with plain PyTorch, then run the check cell after it
# (marked `# NBVAL_CHECK_OUTPUT`); its output must match what is stored under it.
# Grade the chapter from the repository root with
#
# ```bash
# .venv/bin/python -m attnkit.grade 03
# ```

# %%
import torch
import torch.nn.functional as F

torch.set_printoptions(precision=4, sci_mode=False)

# %% [markdown]
# ## Exercise 1: layer normalisation
#
# Write `layer_norm(x, weight, bias, eps=1e-5)`: normalise each vector over its last
# axis to mean 0 and variance 1 (the *biased* variance, dividing by `d`), then scale and
# shift:
#
# $$
# \mathrm{LN}(x) = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} \odot \gamma + \beta,
# \qquad \mu = \tfrac1d \textstyle\sum_i x_i,\; \sigma^2 = \tfrac1d \sum_i (x_i - \mu)^2 .
# $$


# %%
def layer_norm(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-5
) -> torch.Tensor:
    """LayerNorm over the last axis of x (..., d) with weight and bias (d,)."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %%
# NBVAL_CHECK_OUTPUT
x = torch.tensor([[1.0, 2.0, 3.0, 6.0], [0.0, 0.0, 0.0, 4.0]])
print(layer_norm(x, torch.ones(4), torch.zeros(4)))
print(layer_norm(x, torch.full((4,), 2.0), torch.ones(4))[0])

# %% [markdown]
# ## Exercise 2: the position-wise feed-forward network
#
# Write `feed_forward(x, w1, b1, w2, b2)`: $\mathrm{FFN}(x) = \max(0, x W_1^\top + b_1)
# W_2^\top + b_2$, applied to every position independently (Vaswani et al., 2017, section
# 3.3). Shapes: `x` `(..., d_model)`, `w1` `(d_ff, d_model)`, `b1` `(d_ff,)`, `w2`
# `(d_model, d_ff)`, `b2` `(d_model,)` (the `nn.Linear` layout).


# %%
def feed_forward(
    x: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor
) -> torch.Tensor:
    """Position-wise FFN with ReLU: (..., d_model) -> (..., d_model)."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
w1, b1, w2, b2 = torch.randn(8, 4), torch.randn(8), torch.randn(4, 8), torch.randn(4)
print(feed_forward(torch.ones(2, 4), w1, b1, w2, b2))

# %% [markdown]
# ## Exercise 3: residual sublayers, post-LN and pre-LN
#
# Every sublayer (attention or feed-forward) is wrapped in a residual connection and a
# layer norm. The original Transformer normalises *after* the residual sum (post-LN);
# most modern models normalise the sublayer's *input* (pre-LN), which trains more
# stably. Write `residual(x, sublayer, norm, norm_first)`:
#
# - `norm_first=False` (post-LN): `norm(x + sublayer(x))`;
# - `norm_first=True` (pre-LN): `x + sublayer(norm(x))`.


# %%
def residual(x: torch.Tensor, sublayer, norm, norm_first: bool) -> torch.Tensor:
    """Residual connection around `sublayer` with LayerNorm `norm` before or after."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(1)
lin, ln = torch.nn.Linear(4, 4), torch.nn.LayerNorm(4)
x = torch.randn(1, 2, 4)
with torch.no_grad():
    print(residual(x, lin, ln, norm_first=False))
    print(residual(x, lin, ln, norm_first=True))

# %% [markdown]
# ## Exercise 4: the decoder's self-attention mask, with a cache
#
# At decoding step `t` the decoder feeds `n_new` new target positions while the keys of
# the earlier positions sit in a key/value cache, so there are `T_k` keys in total and
# the new queries are the *last* `n_new` positions. Write
# `decoder_self_mask(key_is_real, n_new)`:
#
# - `key_is_real`: bool `(B, T_k)`, `True` on real (non-padding) target tokens;
# - return bool `(B, n_new, T_k)`: query `i` (absolute position `T_k - n_new + i`) may
#   attend to key `j` iff `j` is not in its future **and** key `j` is real.


# %%
def decoder_self_mask(key_is_real: torch.Tensor, n_new: int) -> torch.Tensor:
    """Bool (B, n_new, T_k): causal (queries are the last n_new positions) and not padding."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %%
# NBVAL_CHECK_OUTPUT
real = torch.tensor([[True, True, True, True], [True, True, False, False]])
print(decoder_self_mask(real, 4).int())
print(decoder_self_mask(real, 1).int())

# %% [markdown]
# ## Exercise 5: one step of greedy decoding
#
# Write `greedy_step(logits, finished, eos_id, pad_id)`:
#
# - `logits`: `(B, V)` scores for the next token of each sentence; `finished`: bool `(B,)`.
# - Return `(next_tokens, finished)`: the argmax token of each row, except that rows
#   already finished emit `pad_id`; and the updated flags (a row is finished once it
#   has emitted `eos_id`). Do not modify `finished` in place.


# %%
def greedy_step(
    logits: torch.Tensor, finished: torch.Tensor, eos_id: int, pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Argmax next tokens (pad for finished rows) and the updated finished flags."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %%
# NBVAL_CHECK_OUTPUT
logits = torch.tensor([[0.1, 2.0, 0.3], [3.0, 0.0, 0.0], [0.0, 0.0, 5.0]])
done = torch.tensor([False, False, True])
print(greedy_step(logits, done, eos_id=0, pad_id=2))

# %% [markdown]
# ## Exercise 6: cross-entropy with label smoothing
#
# The Transformer was trained with label smoothing $\epsilon = 0.1$: the target
# distribution puts $1 - \epsilon$ on the correct token and spreads $\epsilon$ uniformly
# over all $V$ tokens (so the correct token gets $1 - \epsilon + \epsilon / V$). Write
# `smoothed_cross_entropy(logits, target, smoothing, ignore_index)`:
#
# - `logits` `(N, V)`, `target` `(N,)`; positions whose target is `ignore_index`
#   (padding) are left out; return the mean loss over the remaining positions.
# - Use `torch.log_softmax`. The result must equal `F.cross_entropy(logits, target,
#   label_smoothing=smoothing, ignore_index=ignore_index)`.


# %%
def smoothed_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, smoothing: float, ignore_index: int
) -> torch.Tensor:
    """Mean label-smoothed cross-entropy over positions whose target is not ignore_index."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(2)
logits, target = torch.randn(5, 7), torch.tensor([1, 0, 3, 0, 6])
ours = smoothed_cross_entropy(logits, target, 0.1, ignore_index=0)
print(round(ours.item(), 4))
print(torch.allclose(ours, F.cross_entropy(logits, target, label_smoothing=0.1, ignore_index=0)))

# %% [markdown]
# ## Done?
#
# Run `python -m attnkit.grade 03`, then read `attnkit/transformer.py` and
# `attnkit/decoding.py`, where these pieces are assembled into the model of the chapter.
# The library's layers are tested equal to `torch.nn.TransformerEncoderLayer` and
# `torch.nn.TransformerDecoderLayer` with copied weights.

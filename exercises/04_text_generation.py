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
# # Exercises: text generation
#
# Six functions behind the language model of chapter 4: how it is measured and how it
# picks the next token. Replace each `raise NotImplementedError(...)` with plain
# PyTorch and run the check cell after it (marked `# NBVAL_CHECK_OUTPUT`). Grade with
#
# ```bash
# .venv/bin/python -m attnkit.grade 04
# ```

# %%
import math

import torch

torch.set_printoptions(precision=4, sci_mode=False)

# %% [markdown]
# ## Exercise 1: perplexity
#
# Write `perplexity(logits, targets, mask)`: the exponential of the mean negative
# log-likelihood of the targets, counting only positions where `mask` is `True`:
#
# $$
# \mathrm{PPL} = \exp\!\Big(-\frac{1}{N}\sum_{t:\,\text{mask}_t} \log p(x_t \mid x_{<t})\Big).
# $$
#
# `logits` `(B, T, V)`, `targets` `(B, T)` (the next tokens), `mask` bool `(B, T)`;
# return a Python `float`.


# %%
def perplexity(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> float:
    """exp(mean NLL of targets over the masked-in positions)."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %%
# NBVAL_CHECK_OUTPUT
uniform = torch.zeros(1, 3, 10)  # a model that knows nothing: PPL = V
print(round(perplexity(uniform, torch.tensor([[1, 2, 3]]), torch.ones(1, 3, dtype=torch.bool)), 4))
sure = torch.full((1, 2, 4), -30.0)
sure[0, 0, 1] = sure[0, 1, 2] = 30.0
print(round(perplexity(sure, torch.tensor([[1, 2]]), torch.tensor([[True, True]])), 4))

# %% [markdown]
# ## Exercise 2: a bigram baseline
#
# The simplest language model predicts the next token from the previous one. Write
# `bigram_log_probs(ids, vocab_size, alpha)`: count every pair `(ids[t], ids[t+1])` in
# the 1-D tensor `ids`, add `alpha` to every count (add-$\alpha$ smoothing, so unseen
# pairs keep some probability) and return the `(V, V)` table of
# $\log p(\text{next} = j \mid \text{prev} = i)$ (each row is a distribution).
# No Python loop over the tokens: use `torch.bincount` or `index_put_(..., accumulate=True)`.


# %%
def bigram_log_probs(ids: torch.Tensor, vocab_size: int, alpha: float) -> torch.Tensor:
    """(V, V) add-alpha smoothed log P(next | prev) from a 1-D tensor of token ids."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %%
# NBVAL_CHECK_OUTPUT
table = bigram_log_probs(torch.tensor([0, 1, 0, 1, 0, 2]), vocab_size=3, alpha=0.5)
print(table.exp())

# %% [markdown]
# ## Exercise 3: top-k filtering
#
# Write `top_k_filter(logits, k)`: keep the `k` largest logits of each row (last axis)
# and set the others to `-inf`, so that sampling can only pick among the `k` most
# likely tokens. `logits` `(..., V)`, `1 <= k <= V`. (Use `torch.topk`; assume no ties.)


# %%
def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Logits with all but the k largest of each row set to -inf."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %%
# NBVAL_CHECK_OUTPUT
print(top_k_filter(torch.tensor([[1.0, 4.0, 2.0, 3.0], [0.5, -1.0, 0.0, 2.0]]), 2))

# %% [markdown]
# ## Exercise 4: nucleus (top-p) filtering
#
# Top-p sampling (Holtzman et al., 2019) keeps the *smallest* set of most likely tokens
# whose total probability is at least `p`, and removes the rest. Write
# `top_p_filter(logits, p)` for `0 < p <= 1`:
#
# 1. sort each row's probabilities in decreasing order and take the cumulative sum;
# 2. a token is removed if the cumulative probability *before* it is already `>= p`
#    (so the most likely token is always kept);
# 3. set removed logits to `-inf`, in the original order.


# %%
def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Logits with tokens outside the top-p nucleus of each row set to -inf."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %%
# NBVAL_CHECK_OUTPUT
logits = torch.log(torch.tensor([[0.5, 0.1, 0.3, 0.1], [0.05, 0.9, 0.03, 0.02]]))
print(top_p_filter(logits, 0.75).exp())
print(top_p_filter(logits, 0.95).exp())

# %% [markdown]
# ## Exercise 5: sampling with a temperature
#
# Write `sample(logits, temperature, generator)` returning one token id per row of
# `logits` `(B, V)`:
#
# - `temperature == 0`: the argmax (greedy);
# - otherwise draw from $\mathrm{softmax}(\text{logits} / T)$ with
#   `torch.multinomial(probs, 1, generator=generator)` (use exactly this call, so the
#   grader can reproduce your draws), returning shape `(B,)`.


# %%
def sample(logits: torch.Tensor, temperature: float, generator: torch.Generator) -> torch.Tensor:
    """(B,) tokens: argmax if temperature == 0, else a draw from softmax(logits / T)."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %%
# NBVAL_CHECK_OUTPUT
logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
g = torch.Generator().manual_seed(0)
draws = torch.stack([sample(logits, 1.0, g) for _ in range(4000)]).flatten()
print(torch.bincount(draws, minlength=4) / 4000)
print(sample(logits.repeat(3, 1), 0.0, g))

# %% [markdown]
# ## Exercise 6: one step of beam search
#
# A beam keeps the `K` best partial sentences. At each step every beam proposes every
# token; the new beams are the `beam_size` best of the `K * V` candidates by total score
# (sum of log-probabilities). Write `beam_step(scores, log_probs, beam_size)`:
#
# - `scores` `(K,)`: the current beams' total log-probabilities;
# - `log_probs` `(K, V)`: each beam's log-probabilities for the next token;
# - return `(new_scores, parents, tokens)`, each `(beam_size,)`, sorted best first:
#   the candidates' totals, which beam each extends, and the token it adds.


# %%
def beam_step(
    scores: torch.Tensor, log_probs: torch.Tensor, beam_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The beam_size best extensions: (scores, parent beam indices, token ids)."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %%
# NBVAL_CHECK_OUTPUT
scores = torch.tensor([-0.5, -1.0])
log_probs = torch.log(torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1]]))
print(beam_step(scores, log_probs, beam_size=3))

# %% [markdown]
# ## Done?
#
# Run `python -m attnkit.grade 04`, then compare with `attnkit/decoding.py`
# (`filter_logits`, `sample_next`, `generate`, `beam_search`).

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
# # Exercises: multimodal attention
#
# Five small functions around chapter 10's image-to-text model: the task's targets, the
# strips, one cross-attention step from words to image patches, the attention mass on each
# digit slot, and the exact-match metric. Replace each
# `raise NotImplementedError(...)` with your code, then run the check cell after it (marked
# `# NBVAL_CHECK_OUTPUT`); its output must match what is stored under it. Grade the chapter
# from the repository root with
#
# ```bash
# .venv/bin/python -m attnkit.grade 10
# ```
#
# The grader loads only your `def`s and imports, tests each function on several inputs
# against attnkit and against independent references, then runs this notebook and compares
# the check cells. Conventions, as in the chapter: batch dimensions come first; strips are
# `(1, 8, 24)` images with three 8 × 8 digit slots, right-aligned; attention weights over
# the 2 × 6 patch grid are numbered row-major.

# %%
import math

import torch

import attnkit as ak
from attnkit.data import digit_strips as ds
from attnkit.data.digits import digit_splits, load_digit_images

torch.set_printoptions(precision=4, sci_mode=False)

# %% [markdown]
# ## Exercise 1: numbers in words
#
# Write `number_to_words(n)` for integers $0 \le n \le 999$, American style: no "and", no
# hyphens, words separated by single spaces. Examples: `0` → `"zero"`, `17` →
# `"seventeen"`, `40` → `"forty"`, `42` → `"forty two"`, `105` → `"one hundred five"`,
# `300` → `"three hundred"`, `999` → `"nine hundred ninety nine"`. The words are those of
# the chapter's vocabulary: "zero" to "nineteen", "twenty", "thirty", "forty", "fifty",
# "sixty", "seventy", "eighty", "ninety", "hundred".


# %%
def number_to_words(n: int) -> str:
    """0 <= n <= 999 in English words, American style (no "and", no hyphens)."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %% [markdown]
# The check prints a few numbers and compares all 1000 with `attnkit`'s speller.

# %%
# NBVAL_CHECK_OUTPUT
for n in (0, 13, 20, 42, 100, 110, 517, 808, 999):
    print(n, "->", number_to_words(n))
print(
    "agrees with attnkit on 0..999:",
    all(number_to_words(n) == ds.number_to_words(n) for n in range(1000)),
)

# %% [markdown]
# ## Exercise 2: drawing a strip
#
# Write `compose_strip(digit_images)`: given the images of the digits of a number, most
# significant first, as a tensor `(k, 1, 8, 8)` with `k` = 2 or 3, return the strip
# `(1, 8, 24)`: the digits side by side, **right-aligned** in three 8-pixel slots (the
# units digit in columns 16 to 23), and zeros in the unused slot 0 of a two-digit number.
# Keep the dtype of the input.


# %%
def compose_strip(digit_images: torch.Tensor) -> torch.Tensor:
    """(k, 1, 8, 8) digit images, k in {2, 3}, most significant first -> (1, 8, 24)."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %% [markdown]
# The check rebuilds strips of `attnkit.data.digit_strips` from the digit images they
# report using (`digit_index`) and compares.

# %%
# NBVAL_CHECK_OUTPUT
images, _ = load_digit_images()
strips = ds.make_strips(digit_splits().test, 6, seed=1)
for b in range(6):
    idx = strips.digit_index[b]
    rebuilt = compose_strip(images[idx[idx >= 0]])
    same = torch.equal(rebuilt, strips.images[b])
    print(int(strips.numbers[b]), tuple(rebuilt.shape), "equals the library's strip:", same)

# %% [markdown]
# ## Exercise 3: one cross-attention step
#
# Write `cross_attention_by_hand(x, memory, attn)`: the cross-attention of an
# `ak.MultiHeadAttention` module `attn` (with `H = attn.num_heads` heads of size
# `D = d_model / H`) from text states `x` `(B, T, d_model)` to image patch states `memory`
# `(B, N, d_model)`, computed from the module's four linear layers `attn.q_proj`,
# `attn.k_proj`, `attn.v_proj`, `attn.out_proj`:
#
# $$
# Q_h = x W_Q^{(h)},\; K_h = M W_K^{(h)},\; V_h = M W_V^{(h)},\qquad
# A_h = \mathrm{softmax}\!\left(\frac{Q_h K_h^\top}{\sqrt D}\right),\qquad
# \text{out} = [A_1 V_1; \dots; A_H V_H]\, W_O ,
# $$
#
# where head $h$ uses features $hD$ to $(h+1)D - 1$ of each projection. Return
# `(out, weights)`: `(B, T, d_model)` and `(B, H, T, N)`. No masks.


# %%
def cross_attention_by_hand(
    x: torch.Tensor, memory: torch.Tensor, attn: ak.MultiHeadAttention
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-attention of attn from x (B, T, d) to memory (B, N, d): (out, weights)."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %% [markdown]
# The check compares with the module itself on random inputs (12 patches, as in the
# chapter).

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
attn = ak.MultiHeadAttention(32, num_heads=4).eval()
x, memory = torch.randn(2, 5, 32), torch.randn(2, 12, 32)
with torch.no_grad():
    out, weights = cross_attention_by_hand(x, memory, attn)
    want_out, want_weights = attn(x, memory, need_weights=True)
print("shapes:", tuple(out.shape), tuple(weights.shape))
print("rows sum to 1:", torch.allclose(weights.sum(-1), torch.ones(2, 4, 5)))
print("weights match the module:", torch.allclose(weights, want_weights, atol=1e-6))
print("output matches the module:", torch.allclose(out, want_out, atol=1e-5))

# %% [markdown]
# ## Exercise 4: attention mass per digit slot
#
# The chapter's ViT cuts an 8 × 24 strip into a grid of `gh × gw` = 2 × 6 patches,
# numbered row-major, so that digit slot `s` is made of patch columns `2s` and `2s + 1`.
# Write `slot_attention_mass(weights, grid, num_slots)`: for weights `(..., N)` over the
# `N = gh * gw` patches and a grid `(gh, gw)` whose `gw` columns split evenly into
# `num_slots` slots of `gw // num_slots` columns each, return `(..., num_slots)`: the
# summed weight of each slot's patches.


# %%
def slot_attention_mass(
    weights: torch.Tensor, grid: tuple[int, int], num_slots: int
) -> torch.Tensor:
    """(..., gh * gw) weights over a row-major grid -> (..., num_slots) mass per slot."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %% [markdown]
# The check sums the mass of one-hot weights and of uniform weights.

# %%
# NBVAL_CHECK_OUTPUT
one_hot = torch.eye(12)  # attention entirely on patch n, for n = 0..11
print(slot_attention_mass(one_hot, (2, 6), 3).argmax(-1).tolist())
print(slot_attention_mass(torch.full((2, 12), 1 / 12), (2, 6), 3))
print(slot_attention_mass(torch.arange(24.0).reshape(2, 12), (2, 6), 2))

# %% [markdown]
# ## Exercise 5: exact match
#
# Generated ids `pred` `(B, L)` (without the leading BOS, as `greedy_caption` returns them)
# and target ids `target` `(B, T)` (as `tgt_out`: words, EOS, then padding) may have
# different lengths. Write `exact_match(pred, target, eos_id)` returning the fraction
# (a Python float) of rows whose tokens **up to and including the first `eos_id`** are the
# same in both. Whatever follows the EOS does not count; a row of `pred` without any
# EOS is wrong (it never finished).


# %%
def exact_match(pred: torch.Tensor, target: torch.Tensor, eos_id: int) -> float:
    """Fraction of rows whose tokens up to and including the first EOS agree."""

    raise NotImplementedError("Exercise: replace this line with your code.")


# %% [markdown]
# The check: a perfect prediction with extra padding, a wrong word, a missing EOS.

# %%
# NBVAL_CHECK_OUTPUT
_, target = ds.target_tensors([342, 17, 300])  # (3, 5)
print(exact_match(torch.cat([target, torch.zeros(3, 2, dtype=torch.long)], 1), target, ds.EOS_ID))
wrong_word = target.clone()
wrong_word[0, 1] = ds.WORD_TO_ID["two"]
print(exact_match(wrong_word, target, ds.EOS_ID))
no_eos = target[:, :2]  # "seventeen <eos>" survives, the others are cut before their EOS
print(exact_match(no_eos, target, ds.EOS_ID))

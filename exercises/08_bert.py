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
# # Exercises: BERT
#
# Five small functions, one for each piece of chapter 8: the masked-LM corruption and its
# 80/10/10 rule, the masked-LM loss (only at the selected positions), BERT's input
# embeddings, the attention masks of a bidirectional and of a causal model, and the
# `[CLS] A [SEP] B [SEP]` input of a sentence pair. Replace each
# `raise NotImplementedError(...)` with your code, then run the check cell after it (marked
# `# NBVAL_CHECK_OUTPUT`); its output must match what is stored under it. Grade the chapter
# from the repository root with
#
# ```bash
# .venv/bin/python -m attnkit.grade 08
# ```
#
# The grader loads only your `def`s and imports, tests each function on several inputs
# against attnkit and against independent references, then runs this notebook and compares
# the check cells. Conventions, as in the chapter: batch first, token ids are `torch.long`,
# a bool attention mask is `True` where a query *may attend* to a key (and a padding mask
# `True` on real tokens), and a label of `-100` means "no prediction here".

# %%
import torch
import torch.nn.functional as F

import attnkit as ak
from attnkit.models.bert import BertConfig, BertEmbeddings, mask_tokens

torch.set_printoptions(precision=4, sci_mode=False)

# %% [markdown]
# ## Exercise 1: the 80/10/10 corruption
#
# BERT selects about 15% of the positions for prediction; a selected token is replaced by
# `[MASK]` with probability 0.8, by a random token with probability 0.1, and left unchanged
# with probability 0.1. Write `mlm_corrupt(tokens, selected, u, random_ids, mask_token_id)`
# that applies this rule given the random draws, all tensors of the shape of `tokens`:
#
# - `selected`: bool, `True` where the token is to be predicted;
# - `u`: floats in $[0, 1)$: a selected token becomes `[MASK]` if `u < 0.8`, becomes
#   `random_ids` (at that position) if `0.8 <= u < 0.9`, and stays unchanged if `u >= 0.9`;
# - return `(inputs, labels)`: the corrupted tokens, and the labels, equal to the original
#   token where `selected` and `-100` elsewhere. Do not modify `tokens` in place.
#
# Unselected positions are never changed, whatever `u` is.


# %%
def mlm_corrupt(
    tokens: torch.Tensor,
    selected: torch.Tensor,
    u: torch.Tensor,
    random_ids: torch.Tensor,
    mask_token_id: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's 80/10/10 corruption of the selected positions: (inputs, labels)."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %% [markdown]
# The check corrupts a short sequence by hand, then draws the random numbers exactly as
# `attnkit.models.bert.mask_tokens` does (a Bernoulli selection, uniforms, random ids, from
# one generator) and compares, and counts the three outcomes on a million tokens.

# %%
# NBVAL_CHECK_OUTPUT
tokens = torch.tensor([10, 11, 12, 13, 14, 15])
selected = torch.tensor([True, True, True, False, False, True])
u = torch.tensor([0.1, 0.85, 0.95, 0.1, 0.85, 0.8])
random_ids = torch.tensor([7, 8, 9, 7, 8, 9])
print(*mlm_corrupt(tokens, selected, u, random_ids, mask_token_id=4), sep="\n")

tokens = torch.randint(5, 1000, (1000, 1000), generator=torch.Generator().manual_seed(1))
g = torch.Generator().manual_seed(0)  # the draws, in mask_tokens' order
sel = torch.bernoulli(torch.full(tokens.shape, 0.15), generator=g).bool()
u = torch.rand(tokens.shape, generator=g)
rnd = torch.randint(1000, tokens.shape, generator=g)
inputs, labels = mlm_corrupt(tokens, sel, u, rnd, mask_token_id=4)
g = torch.Generator().manual_seed(0)
ref = mask_tokens(tokens, vocab_size=1000, mask_token_id=4, generator=g)
print("same as mask_tokens:", torch.equal(inputs, ref[0]) and torch.equal(labels, ref[1]))
n = sel.sum().item()
masked = (inputs == 4).sum().item() / n
unchanged = ((inputs == tokens) & sel).sum().item() / n
print(f"selected {n / tokens.numel():.3f} | [MASK] {masked:.3f} | unchanged {unchanged:.3f}")

# %% [markdown]
# ## Exercise 2: the masked-LM loss and accuracy
#
# Write `mlm_loss_and_accuracy(logits, labels)` for MLM logits `(B, T, V)` and labels
# `(B, T)` with `-100` at the positions that were not selected. Return `(loss, accuracy)`:
#
# - `loss`: the mean cross-entropy over the **selected positions only** (the others
#   contribute nothing, not even to the count of the mean);
# - `accuracy`: the fraction of selected positions whose arg-max logit is the label, a
#   float 0-d tensor.
#
# You may assume at least one position is selected.


# %%
def mlm_loss_and_accuracy(
    logits: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy and accuracy over the positions whose label is not -100."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %% [markdown]
# The check uses random logits with three selected positions, then changes the logits at
# an unselected position: the loss must not move.

# %%
# NBVAL_CHECK_OUTPUT
g = torch.Generator().manual_seed(1)
logits = torch.randn(2, 4, 6, generator=g)
labels = torch.full((2, 4), -100)
labels[0, 1], labels[1, 0], labels[1, 3] = 2, int(logits[1, 0].argmax()), 5
loss, acc = mlm_loss_and_accuracy(logits, labels)
print(f"loss {loss.item():.4f} | accuracy {acc.item():.4f}")
ref = F.cross_entropy(logits.flatten(0, 1), labels.flatten())  # ignore_index=-100
print(f"F.cross_entropy with ignore_index: {ref.item():.4f}")
logits[0, 0] += 100.0  # an unselected position
print(
    "unselected logits change nothing:",
    mlm_loss_and_accuracy(logits, labels)[0].item() == loss.item(),
)

# %% [markdown]
# ## Exercise 3: BERT's input embeddings
#
# BERT adds three learned embeddings **at the input**, then applies LayerNorm (there is no
# positional term added after attention). Write
# `bert_input_embeddings(input_ids, token_type_ids, word, position, segment, gamma, beta, eps)`:
#
# $$
# h_{b,t} = \mathrm{LayerNorm}\big(E_\text{word}[x_{b,t}] + E_\text{pos}[t]
# + E_\text{seg}[s_{b,t}]\big) ,
# $$
#
# where $x$ is `input_ids` and $s$ is `token_type_ids`, with the tables `word` `(V, d)`,
# `position` `(max_len, d)` and `segment` `(2, d)`, and the
# LayerNorm over the last dimension with gain `gamma` `(d,)`, shift `beta` `(d,)` and
# epsilon `eps` (biased variance, as `torch.nn.LayerNorm`). Ids are `(B, T)`; return
# `(B, T, d)`. Write the LayerNorm yourself (mean and variance), not with `F.layer_norm`.


# %%
def bert_input_embeddings(
    input_ids: torch.Tensor,
    token_type_ids: torch.Tensor,
    word: torch.Tensor,
    position: torch.Tensor,
    segment: torch.Tensor,
    gamma: torch.Tensor,
    beta: torch.Tensor,
    eps: float = 1e-12,
) -> torch.Tensor:
    """LayerNorm(word[ids] + position[t] + segment[types]): (B, T, d)."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %% [markdown]
# The check copies the weights of attnkit's `BertEmbeddings` (randomised, in eval mode so
# that dropout is off) and compares.

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
emb = BertEmbeddings(
    BertConfig(vocab_size=50, d_model=8, num_heads=2, num_layers=1, d_ff=16, max_len=12)
).eval()
with torch.no_grad():
    for p in emb.parameters():
        p.add_(0.5 * torch.randn_like(p))
ids = torch.tensor([[2, 7, 9, 3, 0], [2, 11, 3, 12, 3]])
types = torch.tensor([[0, 0, 0, 0, 0], [0, 0, 0, 1, 1]])
mine = bert_input_embeddings(
    ids,
    types,
    emb.word_embeddings.weight,
    emb.position.emb.weight,
    emb.token_type_embeddings.weight,
    emb.norm.weight,
    emb.norm.bias,
    emb.norm.eps,
)
print(
    tuple(mine.shape), "equal to BertEmbeddings:", torch.allclose(mine, emb(ids, types), atol=1e-5)
)
print(mine[1, 3, :4].detach())

# %% [markdown]
# ## Exercise 4: bidirectional and causal attention masks
#
# A batch of sequences of lengths `lengths` `(B,)` is padded to length `T`. Write
# `self_attention_mask(lengths, T, causal)` returning the bool `(B, T, T)` mask, `True` where
# query `i` of sequence `b` may attend key `j`:
#
# - BERT (`causal=False`): every real key, `j < lengths[b]`, whatever the query;
# - a GPT-style decoder (`causal=True`): real keys that are not in the future,
#   `j < lengths[b]` and `j <= i`.
#
# Use broadcasting, no Python loop.


# %%
def self_attention_mask(lengths: torch.Tensor, T: int, causal: bool = False) -> torch.Tensor:
    """Bool (B, T, T): True where query i of sequence b may attend key j."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %% [markdown]
# The check prints both masks for two sequences and compares them with attnkit's
# `padding_mask`, `causal_mask` and `combine_masks`.

# %%
# NBVAL_CHECK_OUTPUT
lengths = torch.tensor([4, 2])
print(self_attention_mask(lengths, 4).int())
print(self_attention_mask(lengths, 4, causal=True).int())
pad = ak.padding_mask(lengths, 4)[:, None, :]  # (B, 1, T)
print(
    "BERT mask == padding mask:", torch.equal(self_attention_mask(lengths, 4), pad.expand(2, 4, 4))
)
both = ak.combine_masks(pad, ak.causal_mask(4))
print("causal mask == padding & causal:", torch.equal(self_attention_mask(lengths, 4, True), both))

# %% [markdown]
# ## Exercise 5: a sentence pair as BERT's input
#
# For next-sentence prediction (and for fine-tuning on pairs of sentences) BERT reads
# `[CLS] A [SEP] B [SEP]`, with segment (token type) 0 on `[CLS]`, A and the first `[SEP]`,
# and 1 on B and the last `[SEP]`. Write
# `pack_sentence_pair(a, b, max_len, cls_id, sep_id)` for two lists of token ids, returning
# `(input_ids, token_type_ids)` as two lists of ints of length at most `max_len`
# (`max_len >= 5`). If the pair is too long, truncate "longest first": repeatedly drop the
# **last** token of the longer of the two sentences (of `b` when they are equally long)
# until `len(a) + len(b) + 3 <= max_len`. Do not modify `a` or `b`.


# %%
def pack_sentence_pair(
    a: list[int], b: list[int], max_len: int, cls_id: int, sep_id: int
) -> tuple[list[int], list[int]]:
    """[CLS] A [SEP] B [SEP] and its segment ids, truncated longest-first to max_len."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %% [markdown]
# The check packs a short pair, then two pairs that must be truncated.

# %%
# NBVAL_CHECK_OUTPUT
print(*pack_sentence_pair([10, 11], [20, 21, 22], max_len=16, cls_id=2, sep_id=3), sep="\n")
print(*pack_sentence_pair(list(range(10, 20)), [20, 21], max_len=10, cls_id=2, sep_id=3), sep="\n")
print(*pack_sentence_pair([10, 11, 12], [20, 21, 22, 23], max_len=8, cls_id=2, sep_id=3), sep="\n")

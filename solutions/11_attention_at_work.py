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
# # Exercises: attention at work
#
# Five small functions behind chapter 11's three tasks: SQuAD's token F1, decoding an
# answer span from start and end logits, attention pooling, ROUGE-L from the longest
# common subsequence, and the Lead-k baseline. Replace each
# `raise NotImplementedError(...)` with your code, then run the check cell after it (marked
# `# NBVAL_CHECK_OUTPUT`); its output must match what is stored under it. Grade the chapter
# from the repository root with
#
# ```bash
# .venv/bin/python -m attnkit.grade 11
# ```
#
# The grader loads only your `def`s and imports, tests each function on several inputs
# against attnkit (`attnkit.metrics`, `attnkit.models.span_qa`) and against independent
# references (the `rouge-score` package, brute-force loops), then runs this notebook and
# compares the check cells.

# %%
import re
import string
from collections import Counter

import torch
from rouge_score import rouge_scorer

from attnkit.metrics import token_f1
from attnkit.models.span_qa import best_span

torch.set_printoptions(precision=4, sci_mode=False)

# %% [markdown]
# ## Exercise 1: SQuAD token F1
#
# Write `squad_f1(prediction, ground_truth)` as the SQuAD v1.1 evaluation script defines
# it. First normalise both strings: lower-case; remove every character of
# `string.punctuation`; replace the whole words `a`, `an`, `the` by a space; collapse runs
# of whitespace (`" ".join(s.split())`). Split both on whitespace; the overlap $c$ is the
# number of tokens in common counted with multiplicity (the size of the intersection of
# the two `Counter`s). If $c = 0$ return `0.0` (even when both are empty); otherwise
# return $2pr/(p+r)$ with $p = c / |\text{prediction}|$ and $r = c / |\text{truth}|$.


# %%
def squad_f1(prediction: str, ground_truth: str) -> float:
    """SQuAD v1.1 token F1 between two answer strings, in [0, 1]."""

    # BEGIN SOLUTION
    def normalize(s: str) -> str:
        s = "".join(ch for ch in s.lower() if ch not in set(string.punctuation))
        s = re.sub(r"\b(a|an|the)\b", " ", s)
        return " ".join(s.split())

    pred, truth = normalize(prediction).split(), normalize(ground_truth).split()
    common = sum((Counter(pred) & Counter(truth)).values())
    if common == 0:
        return 0.0
    p, r = common / len(pred), common / len(truth)
    return 2 * p * r / (p + r)
    # END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
pairs = [
    ("the red ball", "a ball"),
    ("John went home", "john went to bed"),
    ("The Garden!", "garden"),
    ("ball ball", "ball"),
    ("kitchen", "garden"),
    ("the", "a"),
]
for p_, t_ in pairs:
    print(f"{p_!r:18s} {t_!r:20s} {squad_f1(p_, t_):.4f}")
assert all(abs(squad_f1(p_, t_) - token_f1(p_, t_)) < 1e-12 for p_, t_ in pairs)

# %% [markdown]
# ## Exercise 2: the best answer span
#
# Write `decode_span(start_logits, end_logits, mask, max_answer_len)` for one example:
# `start_logits` and `end_logits` are float `(T,)`, `mask` bool `(T,)` (`True` where the
# answer may lie). Return the pair of ints `(i, j)` maximising
# `start_logits[i] + end_logits[j]` over $i \le j < i +$ `max_answer_len` with
# `mask[i]` and `mask[j]` true. On ties return the smallest `i`, then the smallest `j`.
# Build the `(T, T)` table of sums with broadcasting, set illegal entries to $-\infty$,
# and take one `argmax` of the flattened table.


# %%
def decode_span(
    start_logits: torch.Tensor, end_logits: torch.Tensor, mask: torch.Tensor, max_answer_len: int
) -> tuple[int, int]:
    """Best legal span (i, j) of one example."""
    # BEGIN SOLUTION
    T = start_logits.shape[0]
    scores = start_logits[:, None] + end_logits[None, :]  # (T, T)
    ones = torch.ones(T, T, dtype=torch.bool)
    band = torch.triu(ones) & ~torch.triu(ones, diagonal=max_answer_len)
    legal = band & mask[:, None] & mask[None, :]
    flat = int(scores.masked_fill(~legal, float("-inf")).reshape(-1).argmax())
    return flat // T, flat % T
    # END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
s = torch.tensor([0.0, -10.0, 5.0, 1.0, 0.5])
e = torch.tensor([0.0, 9.0, 0.0, 1.0, 3.0])
m = torch.tensor([False, True, True, True, True])
for L in (1, 2, 3):
    print(L, decode_span(s, e, m, L))
gen = torch.Generator().manual_seed(0)
S, E = torch.randn(4, 12, generator=gen), torch.randn(4, 12, generator=gen)
M = torch.arange(12)[None, :] >= torch.tensor([[2], [3], [5], [7]])
got = [decode_span(S[b], E[b], M[b], 4) for b in range(4)]
print(got)
st, en = best_span(S, E, M, 4)
assert got == list(zip(st.tolist(), en.tolist()))

# %% [markdown]
# ## Exercise 3: attention pooling
#
# Write `attention_pool(scores, values, mask)`: `scores` float `(B, T)` (one score per
# token), `values` `(B, T, D)`, `mask` bool `(B, T)` (`True` on real tokens, at least one
# per row). Return `(pooled, weights)`: `weights = softmax(scores)` over the real tokens
# only (padding gets weight exactly 0), `(B, T)`; `pooled = sum_t weights_t * values_t`,
# `(B, D)`. This is how the chapter's Transformer classifier turns its token states into
# one sentence vector.


# %%
def attention_pool(
    scores: torch.Tensor, values: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax-weighted average of values over the real tokens."""
    # BEGIN SOLUTION
    weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)  # (B, T)
    pooled = torch.einsum("bt,btd->bd", weights, values)  # (B, D)
    return pooled, weights
    # END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
gen = torch.Generator().manual_seed(1)
sc = torch.randn(2, 4, generator=gen)
va = torch.randn(2, 4, 3, generator=gen)
mk = torch.tensor([[True, True, True, False], [True, False, False, False]])
pooled, w = attention_pool(sc, va, mk)
print(w)
print(pooled)

# %% [markdown]
# ## Exercise 4: ROUGE-L by hand
#
# Write `rouge_l_f(prediction, reference)`: the ROUGE-L F-measure (Lin, 2004) of two
# strings split on whitespace (no stemming, no lower-casing). With $\ell$ the length of
# their longest common subsequence (LCS, by dynamic programming:
# $L[i][j] = L[i-1][j-1] + 1$ if the tokens match, else $\max(L[i-1][j], L[i][j-1])$),
# precision $p = \ell / |\text{prediction}|$ and recall $r = \ell / |\text{reference}|$,
# return $2pr/(p+r)$, or `0.0` if $\ell = 0$. `rouge-score`'s `rougeL` without stemming
# gives the same number for strings of lower-case words made of letters and digits (its
# tokenizer drops other tokens, such as `;`).


# %%
def rouge_l_f(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure from the longest common subsequence of the two token lists."""
    # BEGIN SOLUTION
    a, b = prediction.split(), reference.split()
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a, 1):
        for j, y in enumerate(b, 1):
            table[i][j] = (
                table[i - 1][j - 1] + 1 if x == y else max(table[i - 1][j], table[i][j - 1])
            )
    lcs = table[-1][-1]
    if lcs == 0:
        return 0.0
    p, r = lcs / len(a), lcs / len(b)
    return 2 * p * r / (p + r)
    # END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
for pred, ref in [
    ("police arrested two men", "two men were arrested by police"),
    ("tom injured rome", "tom injured rome and ivan elected oslo"),
    ("a b c d", "d c b a"),
    ("x y", "z"),
]:
    mine = rouge_l_f(pred, ref)
    print(f"{pred!r:28s} {mine:.4f}")
    assert abs(mine - scorer.score(ref, pred)["rougeL"].fmeasure) < 1e-12

# %% [markdown]
# ## Exercise 5: the Lead-k baseline
#
# Write `lead_k_summary(document, k)`: the first `k` sentences of `document`, where a
# sentence is a run of words ending with the token `"."` (words are separated by single
# spaces, as in `attnkit.data.summaries`). Return them joined by single spaces, each
# sentence keeping its `"."`; if the document has fewer than `k` sentences return all of
# it. `k >= 1`.


# %%
def lead_k_summary(document: str, k: int) -> str:
    """The first k sentences of a document whose sentences end with ' .'."""
    # BEGIN SOLUTION
    sentences, current = [], []
    for word in document.split():
        current.append(word)
        if word == ".":
            sentences.append(" ".join(current))
            current = []
    if current:
        sentences.append(" ".join(current))
    return " ".join(sentences[:k])
    # END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
doc = (
    "the weather in paris was cold . anna said the food was good . "
    "tom was injured in rome on friday . bob visited oslo on monday ."
)
for k in (1, 2, 9):
    print(k, repr(lead_k_summary(doc, k)))

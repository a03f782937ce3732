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
# # Scaled dot-product attention
#
# Self-attention (自注意力) is the operation at the heart of the Transformer
# {cite:p}`vaswani2017attention`. Stripped of everything else (multiple heads, residual
# connections, layer norms) it is one short formula:
#
# $$
# \mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d_k}}\right) V .
# $$
#
# This chapter takes that formula apart. By the end you should be able to
#
# - explain attention as a *soft dictionary look-up* and say what queries, keys and values are;
# - compute scaled dot-product attention by hand for a tiny input, with every shape right;
# - compute the softmax without overflow, by subtracting the row maximum;
# - argue, with experiments rather than folklore, why the scores are divided by $\sqrt{d_k}$
#   and not by something else, such as the sequence length, and say when that argument
#   stops holding (after training);
# - build causal and padding masks and predict what happens to a query that may see nothing;
# - place the dot product next to the additive and multiplicative scores that preceded it,
#   and state what attention costs.
#
# Along the way we correct a widely copied interview answer (the "seed" answer, quoted in
# Chinese below) that gets the worked example and the scaling factor wrong, and we show the
# errors numerically.
#
# All code uses the companion package `attnkit` (imported as `ak`); plain `torch` appears
# only to *check* that the library does what the mathematics says.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from myst_nb import glue

import attnkit as ak

torch.manual_seed(0)
# One thread: the book runs its chapters side by side, one thread each, so every number
# below is the same on any machine, however many cores it has and however busy it is.
torch.set_num_threads(1)
torch.set_printoptions(precision=4, sci_mode=False)
plt.rcParams.update({"figure.dpi": 100, "axes.grid": False})
print("torch", torch.__version__, "| attnkit", ak.__version__)

# %% [markdown]
# (ch01-soft-lookup)=
# ## Why attention: a soft dictionary look-up
#
# ### Each position needs the others
#
# A sentence, an audio clip or an image enters a network as a sequence of vectors
# $x_1, \dots, x_n \in \mathbb{R}^{d}$. The meaning of a position depends on the others:
# in "the animal didn't cross the street because **it** was too tired", the vector for
# "it" should borrow information from "animal". A recurrent network passes information
# along the chain one step at a time; attention instead lets every position *look up*
# what it needs from every other position directly.
#
# ### Hard look-up versus soft look-up
#
# A Python `dict` performs a *hard* look-up: the query must match one key exactly, and
# you get that key's value. With vectors, exact matches never happen, so we score the
# query against every key by similarity, here the dot product $q^\top k_j$. Two ways to
# turn scores into an answer:
#
# - **hard**: take the value of the best-scoring key, i.e. weights $a = \mathrm{onehot}(\arg\max_j q^\top k_j)$;
# - **soft**: take a weighted average of *all* values, with weights
#   $a_j = \exp(s_j) / \sum_l \exp(s_l)$ (the softmax of the scores).
#
# Both answers have the same form, $\sum_j a_j v_j$; they differ only in the weights.
# The soft version is differentiable, so a network can learn *what to look for*. The
# same idea appears in the content-based addressing of Neural Turing Machines
# {cite:p}`graves2014neural`.
#
# Here is a dictionary with four 2-D keys and scalar values $10, 20, 30, 40$.

# %%
keys = torch.tensor([[-1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.8, 0.6]])  # (n_k=4, d_k=2)
values = torch.tensor([[10.0], [20.0], [30.0], [40.0]])  # (n_k=4, d_v=1)
query = torch.tensor([[0.9, 0.45]])  # (n_q=1, d_k=2)

scores = query @ keys.T  # (1, 4): similarity of the query with every key
hard_w = F.one_hot(scores.argmax(-1), num_classes=4).float()  # one-hot weights
print("scores        :", scores)
print("hard weights  :", hard_w, "-> answer", (hard_w @ values).item())

# %% [markdown]
# ### Temperature: from soft to hard
#
# The soft answer is `ak.scaled_dot_product_attention` with a single query. Its `scale`
# argument multiplies the scores before the softmax; $1/\text{scale}$ is what physicists
# call the *temperature*.

# %%
rows, soft = [], {}
for scale in [0.01, 1.0, 10.0, 100.0]:
    out, w = ak.scaled_dot_product_attention(query, keys, values, scale=scale, return_weights=True)
    soft[scale] = (w[0], out.item())  # (weights over the 4 keys, soft answer)
    rows.append(f"scale={scale:>6}: weights={w[0]}  soft answer={out.item():.4f}")
print("\n".join(rows))

# %% tags=["remove-cell"]
# The claims of the next paragraph, checked on the numbers above.
w_hot, answer_hot = soft[0.01]
w_mid, _ = soft[10.0]
w_cold, answer_cold = soft[100.0]
assert (w_hot - 0.25).abs().max() < 0.01 and abs(answer_hot - 25) < 0.5, (
    "claim no longer holds: 'at scale 0.01 the weights are nearly uniform, answer close to 25'"
)
assert w_cold.argmax() == 3 and abs(answer_cold - 40) < 0.01, (
    "claim no longer holds: 'at scale 100 the soft answer is the hard answer, 40'"
)
assert w_mid.argsort(descending=True)[1] == 2 and w_mid[2] > 0.2, (
    "claim no longer holds: 'at scale 10 the runner-up, key 2, gets a sizeable share'"
)
glue("ch01_answer_scale_0p01", answer_hot, display=False)
glue("ch01_max_dev_uniform_scale_0p01", float((w_hot - 0.25).abs().max()), display=False)
glue("ch01_answer_scale_100", answer_cold, display=False)
glue("ch01_key2_weight_scale_10", float(w_mid[2]), display=False)

# %% [markdown]
# At a small scale (high temperature) all keys get nearly the same weight: at scale 0.01
# the largest distance of a weight from 1/4 is
# {glue:text}`ch01_max_dev_uniform_scale_0p01:.4f`, and the answer, {glue:text}`ch01_answer_scale_0p01:.2f`, is close to the plain mean,
# 25. As the scale grows the weights concentrate on the best key and the soft answer
# tends to the hard answer, 40 ({glue:text}`ch01_answer_scale_100:.4f` at scale 100): the
# hard look-up is the limit of the soft one. At intermediate scales the runner-up, key 2,
# still gets a sizeable share ({glue:text}`ch01_key2_weight_scale_10:.0%` at scale 10).

# %%
scale_grid = torch.logspace(-2, 2.5, 200)
answers = [
    ak.scaled_dot_product_attention(query, keys, values, scale=float(s)).item() for s in scale_grid
]
# the caption's claim: the answer climbs steadily from about 25 (the mean) to 40 (the best key)
rising = (np.diff(answers) >= -1e-4).all()  # -1e-4: float32 round-off near 40
assert rising and abs(answers[0] - 25) < 0.1 and abs(answers[-1] - 40) < 0.01, (
    "claim no longer holds: 'the soft answer slides from the mean (25) to the best value (40)'"
)

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
shown = [0.01, 1.0, 10.0, 100.0]
for i, s in enumerate(shown):
    _, w = ak.scaled_dot_product_attention(query, keys, values, scale=s, return_weights=True)
    ax1.bar(np.arange(4) + (i - 1.5) * 0.2, w[0].numpy(), width=0.2, label=f"scale = {s:g}")
ax1.set_xticks(range(4), [f"key {j}\n(value {int(values[j])})" for j in range(4)])
ax1.set_ylabel("attention weight $a_j$")
ax1.set_title("Weights for one query at four scales")
ax1.legend(loc="upper left")
ax2.semilogx(scale_grid.numpy(), answers, label="soft answer $\\sum_j a_j v_j$")
ax2.axhline(40, color="k", ls="--", lw=1, label="hard answer (best key)")
ax2.axhline(values.mean().item(), color="gray", ls=":", lw=1, label="mean of values")
ax2.set_xlabel("scale (inverse temperature)")
ax2.set_ylabel("answer")
ax2.set_title("Soft look-up tends to hard look-up")
ax2.legend(loc="lower right")
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure: as the scale grows, the weights move from uniform to one-hot and the soft
# answer slides from the mean of the values (25) to the value of the best key (40).*
#
# Keep this picture in mind: **the size of the scores controls how "hard" attention is.**
# Too small and every position gets a blurry average; too large and attention becomes an
# argmax, which, as we will see, also stops gradients from flowing.

# %% [markdown]
# (ch01-qkv)=
# ## Queries, keys and values
#
# ### The formula
#
# Stack $n_q$ queries, $n_k$ keys and $n_k$ values as the rows of matrices
# $Q \in \mathbb{R}^{n_q \times d_k}$, $K \in \mathbb{R}^{n_k \times d_k}$,
# $V \in \mathbb{R}^{n_k \times d_v}$. Scaled dot-product attention
# {cite:p}`vaswani2017attention` computes
#
# $$
# S = \frac{QK^\top}{\sqrt{d_k}}, \qquad
# A = \mathrm{softmax}_{\text{row}}(S), \qquad
# O = AV,
# $$
#
# or, entry by entry, for query $i$ and key $j$:
#
# $$
# s_{ij} = \frac{q_i^\top k_j}{\sqrt{d_k}}, \qquad
# a_{ij} = \frac{\exp(s_{ij})}{\sum_{l=1}^{n_k} \exp(s_{il})}, \qquad
# o_i = \sum_{j=1}^{n_k} a_{ij}\, v_j .
# $$
#
# The softmax runs along each **row**: for a fixed query $i$ it normalises over the keys
# $j$, so every row of $A$ is a probability distribution over keys, and every output
# $o_i$ is a convex combination (weighted average) of the values.
#
# ### Shapes
#
# | tensor | shape | meaning |
# |---|---|---|
# | $Q$ | $(n_q, d_k)$ | one query per row |
# | $K$ | $(n_k, d_k)$ | one key per row; same width $d_k$ as the queries |
# | $V$ | $(n_k, d_v)$ | one value per key; width $d_v$ may differ from $d_k$ |
# | $S$, $A$ | $(n_q, n_k)$ | one score / weight per (query, key) pair |
# | $O$ | $(n_q, d_v)$ | one output per query |
#
# Any leading batch (or head) dimensions are carried along unchanged; `attnkit` follows
# the shape conventions of `torch.nn.functional.scaled_dot_product_attention`.
#
# ### Self-attention: queries, keys and values from one sequence
#
# In *self*-attention the queries, keys and values are three linear projections of the
# same sequence $X \in \mathbb{R}^{n \times d_{\text{model}}}$:
#
# $$
# Q = X W_Q, \quad K = X W_K, \quad V = X W_V, \qquad
# W_Q, W_K \in \mathbb{R}^{d_{\text{model}} \times d_k},\; W_V \in \mathbb{R}^{d_{\text{model}} \times d_v},
# $$
#
# so $n_q = n_k = n$. (In *cross*-attention the queries come from one sequence and the
# keys and values from another.) The projections are the learned parameters; here we use
# random matrices, scaled by $1/\sqrt{d_{\text{model}}}$ so that the entries of $Q$ and
# $K$ have variance about 1. Learning them, and running several in parallel as
# multi-head attention, is the subject of a later chapter.
#
# We embed a six-token sentence with a random embedding table. Note that "the" occurs twice.

# %%
torch.manual_seed(0)
tokens = ["the", "cat", "sat", "on", "the", "mat"]
vocab = sorted(set(tokens))
embedding = torch.randn(len(vocab), 8)  # (vocab, d_model)
X = embedding[[vocab.index(t) for t in tokens]]  # (n=6, d_model=8)

d_model, d_k, d_v = 8, 4, 4
W_Q = torch.randn(d_model, d_k) / math.sqrt(d_model)
W_K = torch.randn(d_model, d_k) / math.sqrt(d_model)
W_V = torch.randn(d_model, d_v) / math.sqrt(d_model)
Q, K, V = X @ W_Q, X @ W_K, X @ W_V
print("X", tuple(X.shape), "| Q", tuple(Q.shape), "| K", tuple(K.shape), "| V", tuple(V.shape))

# %% [markdown]
# ### Step by step, then checked against `attnkit` and PyTorch
#
# First the formula, one line per step, in plain `torch`:

# %%
S = Q @ K.T / math.sqrt(d_k)  # (n_q, n_k) scaled scores
A = torch.softmax(S, dim=-1)  # (n_q, n_k) softmax over keys, one row per query
O = A @ V  # (n_q, d_v) weighted sums of values
print("A =\n", A)
print("row sums:", A.sum(dim=-1))
assert torch.allclose(A.sum(dim=-1), torch.ones(len(tokens))), "every row must sum to 1"

# %% [markdown]
# Now the library function and PyTorch's own implementation must give the same numbers.

# %%
O_ak, A_ak = ak.scaled_dot_product_attention(Q, K, V, return_weights=True)
O_torch = F.scaled_dot_product_attention(Q, K, V)
checks = {
    "attnkit weights == step-by-step weights": torch.allclose(A_ak, A, atol=1e-6),
    "attnkit output  == step-by-step output ": torch.allclose(O_ak, O, atol=1e-6),
    "attnkit output  == torch F.sdpa output ": torch.allclose(O_ak, O_torch, atol=1e-6),
}
for name, ok in checks.items():
    print(f"{name}: {ok}")
assert all(checks.values()), "claim no longer holds: 'the three computations agree'"

# %%
fig, ax = plt.subplots(figsize=(5.2, 4.3))
im = ax.imshow(A_ak.numpy(), cmap="viridis", vmin=0)
for i in range(len(tokens)):
    for j in range(len(tokens)):
        a = A_ak[i, j].item()
        ax.text(
            j, i, f"{a:.2f}", ha="center", va="center", color="w" if a < 0.6 * A_ak.max() else "k"
        )
ax.set_xticks(range(6), tokens)
ax.set_yticks(range(6), tokens)
ax.set_xlabel("key $j$ (attended to)")
ax.set_ylabel("query $i$ (attending)")
ax.set_title("Self-attention weights $A$ (random projections)")
fig.colorbar(im, ax=ax, label="$a_{ij}$")
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure: each row is a probability distribution over the six keys; the two rows for
# "the" are identical, and so are the two columns for "the".*
#
# That last observation is not a coincidence. Attention only sees the *content* of the
# vectors, not their positions: identical tokens produce identical queries and keys, and
# permuting the input rows simply permutes the output rows (attention is
# *permutation-equivariant*). Word order must therefore be injected separately, with
# positional encodings, the topic of a later chapter.

# %%
perm = torch.tensor([3, 0, 5, 1, 4, 2])
O_perm = ak.scaled_dot_product_attention(X[perm] @ W_Q, X[perm] @ W_K, X[perm] @ W_V)
checks = {
    "rows of 'the' equal (weights and outputs)": torch.allclose(A_ak[0], A_ak[4], atol=1e-6)
    and torch.allclose(O_ak[0], O_ak[4], atol=1e-6),
    "columns of 'the' equal": torch.allclose(A_ak[:, 0], A_ak[:, 4], atol=1e-6),
    "attention(X[perm]) == attention(X)[perm]": torch.allclose(O_perm, O_ak[perm], atol=1e-6),
}
for name, ok in checks.items():
    print(f"{name}: {ok}")
assert all(checks.values()), "claim no longer holds: identical tokens, identical rows and columns"

# %% [markdown]
# (ch01-q-equals-k)=
# ### Why separate projections for queries and keys?
#
# Why learn $W_Q$ and $W_K$ separately, when one matrix would halve the parameters? Tie
# them, $W_K = W_Q$, and the score matrix becomes $S = X W_Q (X W_Q)^\top / \sqrt{d_k}$, a
# Gram matrix: **symmetric** ($s_{ij} = s_{ji}$: "$i$ attends to $j$" scores exactly as
# much as "$j$ attends to $i$", so no asymmetric relation such as "a verb looks for its
# subject" can be expressed) and **positive semi-definite**. By the Cauchy–Schwarz
# inequality $q_i \cdot q_j \le \lVert q_i \rVert \lVert q_j \rVert$, so a token's score
# for another token can exceed its score for itself only if that token's query is
# longer: most tokens attend most to *themselves*. We measure both on 64 random tokens
# ($d_{\text{model}} = 64$, $d_k = 16$), with tied and with separate random projections.

# %%
torch.manual_seed(0)
n_qk, d_model_qk, d_k_qk = 64, 64, 16
X_qk = torch.randn(n_qk, d_model_qk, dtype=torch.float64)  # (n, d_model)
W_q_qk = torch.randn(d_model_qk, d_k_qk, dtype=torch.float64) / math.sqrt(d_model_qk)
W_k_qk = torch.randn(d_model_qk, d_k_qk, dtype=torch.float64) / math.sqrt(d_model_qk)
Q_qk = X_qk @ W_q_qk  # (n, d_k)
qk_scores = {
    "W_K = W_Q": Q_qk @ Q_qk.T / math.sqrt(d_k_qk),  # (n, n)
    "separate": Q_qk @ (X_qk @ W_k_qk).T / math.sqrt(d_k_qk),  # (n, n)
}
qk_stats = {}
print(" projections | max |S - S^T| | smallest eigenvalue | rows whose top score is itself")
for name, S_qk in qk_scores.items():
    asym = (S_qk - S_qk.T).abs().max().item()
    eig_min = torch.linalg.eigvalsh((S_qk + S_qk.T) / 2).min().item()  # of the symmetric part
    self_top = (S_qk.argmax(-1) == torch.arange(n_qk)).double().mean().item()
    qk_stats[name] = (asym, eig_min, self_top)
    print(f" {name:11s} | {asym:12.1e} | {eig_min:+19.2e} | {self_top:30.0%}")
tied, separate = qk_stats["W_K = W_Q"], qk_stats["separate"]
assert tied[0] < 1e-12 and tied[1] > -1e-12, (
    f"claim no longer holds: 'tied: symmetric and positive semi-definite' (measured {tied[:2]})"
)
assert separate[0] > 1 and separate[1] < -1, (
    f"claim no longer holds: 'separate: neither symmetric nor PSD' (measured {separate[:2]})"
)
assert tied[2] > 0.8 and separate[2] < 0.1, (
    "claim no longer holds: 'tied: most tokens attend most to themselves' "
    f"(measured {tied[2]:.0%} tied, {separate[2]:.0%} separate)"
)
glue("ch01_qk_self_tied", 100 * tied[2], display=False)
glue("ch01_qk_self_separate", 100 * separate[2], display=False)

# %% [markdown]
# With tied projections {glue:text}`ch01_qk_self_tied:.0f`% of the tokens give their
# highest score to themselves (chance would be $1/64$, 1.6%); with separate projections
# {glue:text}`ch01_qk_self_separate:.0f`%. Separate $W_Q$ and $W_K$ make the score a general
# bilinear form $x_i^\top W_Q W_K^\top x_j$ (of rank at most $d_k$), which can be
# asymmetric and need not favour the diagonal.

# %% [markdown]
# (ch01-stable-softmax)=
# ### Computing the softmax without overflow
#
# The softmax formula cannot be typed in as written. In float32, $e^{s}$ overflows to
# infinity for $s > \ln(3.4 \times 10^{38}) \approx 88.7$, and underflows to 0 below about
# $-104$; a row of large scores then gives $\infty / \infty$ and a row of very negative
# scores $0 / 0$, both NaN. The fix is one line, because the softmax does not change when
# the same constant $c$ is subtracted from every score of a row:
#
# $$
# \frac{e^{s_j - c}}{\sum_l e^{s_l - c}} = \frac{e^{-c}\, e^{s_j}}{e^{-c} \sum_l e^{s_l}}
# = \frac{e^{s_j}}{\sum_l e^{s_l}} .
# $$
#
# Choosing $c = \max_l s_l$ makes every exponent $\le 0$, so no term overflows, and makes
# the largest term exactly $e^0 = 1$, so the denominator is at least 1 and never
# underflows to 0. Every serious implementation does this (`torch.softmax`,
# `ak.masked_softmax`, and, block by block, the fused kernels of later chapters); the same
# shift gives the stable log-sum-exp, $\log \sum_l e^{s_l} = c + \log \sum_l e^{s_l - c}$.

# %%
rows = {
    "large scores": torch.tensor([1000.0, 1001.0, 1002.0]),  # float32
    "very negative scores": torch.tensor([-1000.0, -1001.0, -1002.0]),
}
reference = torch.softmax(torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64), 0)  # same shifts
exp_limit = math.log(torch.finfo(torch.float32).max)
exp_limit_half = math.log(torch.finfo(torch.float16).max)
underflows = torch.exp(torch.tensor([-103.0, -104.0]))  # float32
print(
    f"float32: exp(s) overflows for s > {exp_limit:.2f}; exp(-103), exp(-104) =",
    underflows.tolist(),
)
print(f"float16: exp(s) overflows for s > {exp_limit_half:.2f}")
stable_ok, naive_nan = [], []
for name, s_row in rows.items():
    naive_w = torch.exp(s_row) / torch.exp(s_row).sum()  # the formula as written
    shifted = torch.exp(s_row - s_row.max())  # every exponent <= 0, the largest is exp(0) = 1
    stable_w = shifted / shifted.sum()
    print(
        f"{name:>20}: naive {naive_w} | shifted {stable_w} | torch.softmax {torch.softmax(s_row, 0)}"
    )
    naive_nan.append(bool(naive_w.isnan().all()))
    stable_ok.append(
        torch.allclose(stable_w.double(), reference if s_row[0] > 0 else reference.flip(0))
        and torch.allclose(stable_w, torch.softmax(s_row, 0))
        and torch.allclose(stable_w, ak.masked_softmax(s_row))
    )
assert [round(w, 3) for w in reference.tolist()] == [0.090, 0.245, 0.665], (
    f"claim no longer holds: 'softmax(0, 1, 2) = (0.090, 0.245, 0.665)' (measured {reference})"
)
assert underflows[0] > 0 and underflows[1] == 0 and round(exp_limit_half, 1) == 11.1, (
    "claim no longer holds: 'exp underflows to 0 below about -104; float16 overflows for "
    f"s > 11.1' (measured {underflows.tolist()}, {exp_limit_half:.2f})"
)
assert all(naive_nan) and all(stable_ok) and round(exp_limit, 1) == 88.7, (
    "claim no longer holds: 'the formula as written gives NaN in float32; shifted by the "
    "maximum it gives softmax([0, 1, 2]), as torch.softmax and attnkit do' "
    f"(naive NaN: {naive_nan}, shifted correct: {stable_ok}, limit {exp_limit:.2f})"
)

# %% [markdown]
# Both rows are the scores $(0, 1, 2)$ shifted by a constant (and, for the second,
# reversed), so their weights must be $\mathrm{softmax}(0, 1, 2) = (0.090, 0.245, 0.665)$:
# the shifted formula gives exactly that, the formula as written gives NaN. Scores of
# 1000 look extreme, but an unscaled score has standard deviation $\sqrt{d_k}$ (next
# section), and in 16-bit formats the limit is far lower (float16 overflows above
# $65\,504$, i.e. for $s > 11.1$).

# %% [markdown]
# (ch01-worked-example)=
# ## A worked example by hand: the input `[1, 2, 3]`
#
# The seed answer illustrates self-attention on the input `[1, 2, 3]`. Let us do it
# correctly first, then compare.
#
# ### The correct computation
#
# **Assumptions** (the seed leaves them implicit): each token is a 1-dimensional vector,
# so $d_{\text{model}} = d_k = d_v = 1$, and the projections are the identity,
# $W_Q = W_K = W_V = 1$. Then $q_i = k_i = v_i = x_i$ with $x = (1, 2, 3)^\top$, and the
# scale is $1/\sqrt{d_k} = 1$.
#
# **Scores.** Every query meets every key, giving a $3 \times 3$ matrix:
#
# $$
# S = \frac{QK^\top}{\sqrt{1}} = x x^\top =
# \begin{pmatrix} 1 & 2 & 3 \\ 2 & 4 & 6 \\ 3 & 6 & 9 \end{pmatrix},
# \qquad s_{ij} = i \cdot j .
# $$
#
# **Weights.** Softmax along each row, i.e. over the keys $j$ for a fixed query $i$:
#
# $$
# a_{ij} = \frac{e^{ij}}{e^{i} + e^{2i} + e^{3i}}, \qquad
# A = \begin{pmatrix}
# \frac{e^{1}}{e^{1}+e^{2}+e^{3}} & \frac{e^{2}}{e^{1}+e^{2}+e^{3}} & \frac{e^{3}}{e^{1}+e^{2}+e^{3}} \\
# \frac{e^{2}}{e^{2}+e^{4}+e^{6}} & \frac{e^{4}}{e^{2}+e^{4}+e^{6}} & \frac{e^{6}}{e^{2}+e^{4}+e^{6}} \\
# \frac{e^{3}}{e^{3}+e^{6}+e^{9}} & \frac{e^{6}}{e^{3}+e^{6}+e^{9}} & \frac{e^{9}}{e^{3}+e^{6}+e^{9}}
# \end{pmatrix}.
# $$
#
# **Outputs.** Each output is a weighted average of *all three* values:
#
# $$
# o_i = \sum_{j=1}^{3} a_{ij} v_j = \frac{1\cdot e^{i} + 2\cdot e^{2i} + 3\cdot e^{3i}}{e^{i} + e^{2i} + e^{3i}},
# \qquad
# o_1 = \frac{e + 2e^{2} + 3e^{3}}{e + e^{2} + e^{3}} \approx 2.575 .
# $$
#
# Because every $o_i$ is a convex combination of $v = (1, 2, 3)$, it must lie in $[1, 3]$.
# A larger query ($x_3 = 3$) multiplies all its scores, which sharpens its softmax (the
# temperature effect from the first section), so $o_3$ sits closest to 3. In code:

# %%
x = torch.tensor([[1.0], [2.0], [3.0]], dtype=torch.float64)  # (n=3, d=1): q = k = v = x
o, a = ak.scaled_dot_product_attention(x, x, x, return_weights=True)
e = math.e
o_exact = [
    (1 * e**i + 2 * e ** (2 * i) + 3 * e ** (3 * i)) / (e**i + e ** (2 * i) + e ** (3 * i))
    for i in (1, 2, 3)
]
print("S =\n", x @ x.T)
print("A =\n", a)
print("outputs (attnkit):", o.squeeze(-1))
print("outputs (closed form above):", torch.tensor(o_exact, dtype=torch.float64))
assert torch.allclose(o.squeeze(-1), torch.tensor(o_exact, dtype=torch.float64)), (
    "attnkit's outputs must equal the closed form; max error "
    f"{(o.squeeze(-1) - torch.tensor(o_exact, dtype=torch.float64)).abs().max():.1e}"
)
assert [round(o_i, 3) for o_i in o_exact] == [2.575, 2.851, 2.948], (
    "claim no longer holds: 'the outputs are 2.575, 2.851, 2.948' (measured "
    f"{[round(o_i, 4) for o_i in o_exact]})"
)
# every o_i lies in [1, 3], and the larger the query, the closer to 3
assert 1 <= o_exact[0] < o_exact[1] < o_exact[2] <= 3, (
    "claim no longer holds: 'every o_i lies in [1, 3], o_3 sits closest to 3' "
    f"(measured {o_exact[0]:.3g}, {o_exact[1]:.3g}, {o_exact[2]:.3g})"
)

# %% [markdown]
# (ch01-seed-example)=
# ### Where the seed answer goes wrong
#
# The seed answer (section 自注意力机制的基本概念和原理) works the same example with a
# different recipe. Its errors, one box each (the scale, its fourth error, is treated in
# {ref}`ch01-seed-scale`):
#
# ```{admonition} Seed erratum E2 · 基本概念和原理 (lines 24–31)
# :class: seed-erratum
# The seed says: 「$\text{score}_i = Q_i \cdot K_i$ ... $1 \cdot 1 = 1$, $1 \cdot 2 = 2$, $1 \cdot 3 = 3$」
# **Correction:** every query meets every key, $s_{ij} = q_i^\top k_j$, an $n \times n$
# matrix (here $x x^\top$ above), not $n$ numbers with a query fixed at 1. Entry:
# {ref}`E2 <errata-e2>`; evidence: {ref}`ch01-seed-example`.
# ```
#
# ```{admonition} Seed erratum E3 · 基本概念和原理 (lines 38–53)
# :class: seed-erratum
# The seed says: 「$\text{weighted_sum}_i = \text{softmax}(\text{scaled_score}_i) \cdot V_i$」
# **Correction:** each query has its own softmax over the keys and its output is the sum
# $o_i = \sum_j a_{ij} v_j$, not one product normalised over the queries. Entry:
# {ref}`E3 <errata-e3>`; evidence: {ref}`ch01-seed-example`.
# ```
#
# ```{admonition} Seed erratum E4 · 基本概念和原理 (lines 56–62)
# :class: seed-erratum
# The seed says: 「$\text{output}_i = \frac{v_i}{e^1 + e^2 + e^3}$」
# **Correction:** even within its own recipe the factor $e^{i}$ of step 4 is lost; the
# correct outputs are $2.575$, $2.851$, $2.948$, inside $[1, 3]$ as any weighted average of
# $1, 2, 3$ must be. Entry: {ref}`E4 <errata-e4>`; evidence: {ref}`ch01-seed-example`.
# ```
#
# ### Evidence
#
# Following the seed's recipe literally ($Q_i = 1$, $K_i = V_i = x_i$):

# %%
v = x.squeeze(-1)  # values 1, 2, 3
seed_p = torch.softmax(1.0 * v, dim=0)  # softmax over *queries* i of score_i = 1 * x_i
seed_step4 = seed_p * v  # e^i v_i / (e^1 + e^2 + e^3), no sum over j
seed_step5 = v / torch.exp(v).sum()  # v_i / (e^1 + e^2 + e^3), the seed's final line
correct = o.squeeze(-1)

print(" i | correct o_i | seed step 4 | seed step 5")
for i in range(3):
    print(f" {i + 1} |   {correct[i]:.4f}    |   {seed_step4[i]:.4f}    |   {seed_step5[i]:.4f}")
print("seed's weights sum to 1 over the queries:", round(seed_p.sum().item(), 4))
print(
    "correct weights sum to 1 over the keys, row by row:", [round(r, 4) for r in a.sum(-1).tolist()]
)
print(
    "sum of seed step 4 =",
    round(seed_step4.sum().item(), 4),
    "= correct o_1 =",
    round(correct[0].item(), 4),
)
seed_numbers = torch.cat([seed_step4, seed_step5])
n_outside = int(((seed_numbers < 1) | (seed_numbers > 3)).sum())
print("seed numbers outside [1, 3]:", n_outside, "of", seed_numbers.numel())
# the claims of the next paragraph
assert n_outside == 5, f"claim no longer holds: 'five of the six numbers' (measured {n_outside})"
assert torch.allclose(seed_p, a[0]), "claim no longer holds: 'the seed's weights are row 1 of A'"
assert torch.allclose(seed_step4.sum(), correct[0]), "claim: 'step 4 sums to the correct o_1'"

# %% [markdown]
# Five of the seed's six numbers fall outside $[1, 3]$, which no weighted average of the
# values $1, 2, 3$ can do. The last line is a precise diagnosis: with $Q_i = 1$ for all
# $i$, the seed's weights $e^{j}/(e^1+e^2+e^3)$ are exactly **row 1** of $A$ (the weights of the first
# query over the three keys), and its step-4 numbers are the three *terms* of $o_1$.
# Summing them gives the correct $o_1$; the seed instead reported the terms as if they
# were three different outputs, and the other two queries were never computed.

# %% [markdown]
# (ch01-scaling)=
# ## Why divide by √d_k?
#
# The scale keeps large scores from making the gradients vanish. The argument, sketched in
# a footnote of the Transformer paper {cite:p}`vaswani2017attention`, has three steps: dot
# products grow with $d_k$, large scores saturate the softmax, and a saturated softmax has
# almost no gradient. We check each step, then the assumption the first step rests on,
# and finally why dividing by the sequence length would be wrong.
#
# ### Step 1: dot products grow like √d_k
#
# Let $q, k \in \mathbb{R}^{d_k}$ be independent, with independent entries of mean 0 and variance 1.
# Each term $q_m k_m$ has mean 0 and variance $\mathbb{E}[q_m^2]\,\mathbb{E}[k_m^2] = 1$,
# and the $d_k$ terms are independent, so
#
# $$
# \mathbb{E}[q^\top k] = 0, \qquad \mathrm{Var}(q^\top k) = \sum_{m=1}^{d_k} \mathrm{Var}(q_m k_m) = d_k,
# \qquad \mathrm{Var}\!\left(\frac{q^\top k}{\sqrt{d_k}}\right) = 1 .
# $$
#
# The typical score therefore has size $\sqrt{d_k}$; dividing by $\sqrt{d_k}$ brings it
# back to 1 whatever the width. Empirically:

# %%
torch.manual_seed(0)
dims = [4, 16, 64, 256, 1024]
n_pairs = 20_000
var_raw, var_scaled = [], []
for d in dims:
    q, k = torch.randn(n_pairs, d), torch.randn(n_pairs, d)
    dots = (q * k).sum(-1)  # n_pairs independent dot products
    var_raw.append(dots.var().item())
    var_scaled.append((dots / math.sqrt(d)).var().item())
print(" d_k  | Var(q.k) | Var(q.k / sqrt(d_k))")
for d, vr, vs in zip(dims, var_raw, var_scaled):
    print(f"{d:5d} | {vr:8.1f} | {vs:.3f}")
# Var(q.k) / d_k is Var(q.k / sqrt(d_k)): its largest distance from 1 over all widths
var_dev = max(abs(vs - 1) for vs in var_scaled)
print(f"largest |Var(q.k) / d_k - 1|: {var_dev:.3f}")
assert var_dev < 0.05, f"claim no longer holds: 'Var(q.k) = d_k within 5%' (measured {var_dev:.1%})"
glue("ch01_var_max_rel_dev", var_dev, display=False)

# %%
fig, ax = plt.subplots(figsize=(5.5, 4))
ax.loglog(dims, dims, "k--", lw=1, label="theory: $y = d_k$")
ax.loglog(dims, var_raw, "o", ms=8, label="measured Var$(q^\\top k)$")
ax.loglog(dims, var_scaled, "s", ms=7, label="measured Var$(q^\\top k/\\sqrt{d_k})$")
ax.axhline(1, color="gray", lw=1, ls=":")
ax.set_xlabel("key dimension $d_k$")
ax.set_ylabel("variance of the score")
ax.set_title("Dot-product variance grows linearly with $d_k$")
ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure: the measured variance of $q^\top k$ lies on the line $y = d_k$, while the scaled
# score keeps variance 1 at every width (with 20,000 pairs per width, the largest
# deviation from the theory is {glue:text}`ch01_var_max_rel_dev:.1%`).*
#
# ### Step 2: large scores saturate the softmax
#
# Take 16 random keys and many random queries, and compare unscaled scores
# ($\text{scale} = 1$) with scaled ones ($\text{scale} = 1/\sqrt{d_k}$). We record the
# largest weight in each row and the row's entropy
# $H(a) = -\sum_j a_j \log a_j$, which is $\log n_k \approx 2.77$ for uniform weights and 0
# for one-hot weights. We also record the gradient for Step 3 in the same loop: for a
# random linear loss on the output, $L = \sum_i u_i^\top o_i$, we measure with autograd
# the gradient of $L$ with respect to the logits that enter the softmax. We work in
# float64 so that the very small gradients do not underflow to zero.

# %%
torch.manual_seed(0)
dims_sat = [1, 4, 16, 64, 256, 1024]
n_keys, n_queries = 16, 1000
stats = {name: {"max": [], "entropy": [], "grad": []} for name in ("unscaled", "scaled")}
for d in dims_sat:
    q = torch.randn(n_queries, 1, d, dtype=torch.float64)  # one query per batch item
    k = torch.randn(n_queries, n_keys, d, dtype=torch.float64)
    v = torch.randn(n_queries, n_keys, 8, dtype=torch.float64)
    u = torch.randn(n_queries, 1, 8, dtype=torch.float64)  # random read-out of the output
    for name, scale in (("unscaled", 1.0), ("scaled", 1 / math.sqrt(d))):
        logits = (scale * q @ k.transpose(-2, -1)).requires_grad_()  # (n_queries, 1, n_keys)
        w = ak.masked_softmax(logits)
        ((w @ v) * u).sum().backward()
        stats[name]["max"].append(w.max(-1).values.mean().item())
        stats[name]["entropy"].append(torch.special.entr(w).sum(-1).mean().item())
        stats[name]["grad"].append(logits.grad.norm(dim=-1).median().item())

print(" d_k  | max weight: unscaled  scaled | entropy: unscaled  scaled")
for i, d in enumerate(dims_sat):
    un, sc = stats["unscaled"], stats["scaled"]
    print(
        f"{d:5d} |             {un['max'][i]:.3f}   {sc['max'][i]:.3f} |"
        f"          {un['entropy'][i]:.3f}   {sc['entropy'][i]:.3f}"
    )

# %% tags=["remove-cell"]
# The claims of the caption below, checked on the table above.
un, sc = stats["unscaled"], stats["scaled"]
assert (np.diff(un["max"]) > 0).all() and un["max"][-1] > 0.9, (
    "claim no longer holds: 'unscaled, the largest weight tends to 1 as d_k grows'"
)
assert (np.diff(un["entropy"]) < 0).all() and un["entropy"][-1] < 0.2, (
    "claim no longer holds: 'unscaled, the entropy tends to 0 as d_k grows'"
)
assert max(sc["max"]) - min(sc["max"]) < 0.05 and max(sc["entropy"]) - min(sc["entropy"]) < 0.15, (
    "claim no longer holds: 'scaled, the largest weight and the entropy stay flat'"
)
glue("ch01_unscaled_max_1024", un["max"][-1], display=False)
glue("ch01_unscaled_entropy_1024", un["entropy"][-1], display=False)
glue("ch01_scaled_max_lo", min(sc["max"]), display=False)
glue("ch01_scaled_max_hi", max(sc["max"]), display=False)
glue("ch01_scaled_entropy_lo", min(sc["entropy"]), display=False)
glue("ch01_scaled_entropy_hi", max(sc["entropy"]), display=False)

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
for name, style in (("unscaled", "o-"), ("scaled", "s-")):
    label = "unscaled $q^\\top k$" if name == "unscaled" else "scaled $q^\\top k/\\sqrt{d_k}$"
    ax1.semilogx(dims_sat, stats[name]["max"], style, label=label)
    ax2.semilogx(dims_sat, stats[name]["entropy"], style, label=label)
ax1.axhline(1 / n_keys, color="gray", ls=":", lw=1, label="uniform ($1/n_k$)")
ax1.set_ylim(0, 1.05)
ax2.axhline(math.log(n_keys), color="gray", ls=":", lw=1, label="uniform ($\\log n_k$)")
ax1.set(xlabel="key dimension $d_k$", ylabel="mean largest weight", title="Largest weight per row")
ax2.set(xlabel="key dimension $d_k$", ylabel="mean entropy (nats)", title="Entropy of each row")
ax1.legend()
ax2.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure: without scaling the softmax becomes one-hot as $d_k$ grows (at $d_k = 1024$ the
# largest weight is {glue:text}`ch01_unscaled_max_1024:.3f` on average and the entropy
# {glue:text}`ch01_unscaled_entropy_1024:.3f` nats); with scaling both curves stay flat
# (largest weight between {glue:text}`ch01_scaled_max_lo:.3f` and
# {glue:text}`ch01_scaled_max_hi:.3f`, entropy between
# {glue:text}`ch01_scaled_entropy_lo:.2f` and {glue:text}`ch01_scaled_entropy_hi:.2f`
# nats, at every width).*
#
# ### Step 3: a saturated softmax passes almost no gradient
#
# The Jacobian of the softmax is
#
# $$
# \frac{\partial a_j}{\partial s_l} = a_j(\delta_{jl} - a_l),
# $$
#
# and every entry vanishes when $a$ is one-hot ($a_j \in \{0, 1\}$). So the gradient that
# reaches the scores, and through them $W_Q$ and $W_K$, shrinks as the softmax saturates.
# Note that this is different from a softmax feeding a cross-entropy loss, whose gradient
# $a - y$ does not vanish; inside attention the softmax output is multiplied by $V$, so
# the Jacobian above is what the gradient passes through.

# %%
fig, ax = plt.subplots(figsize=(5.5, 4))
ax.loglog(dims_sat, stats["unscaled"]["grad"], "o-", label="unscaled $q^\\top k$")
ax.loglog(dims_sat, stats["scaled"]["grad"], "s-", label="scaled $q^\\top k/\\sqrt{d_k}$")
ax.set_xlabel("key dimension $d_k$")
ax.set_ylabel("median $\\|\\partial L / \\partial \\mathrm{logits}\\|$")
ax.set_title("Gradient reaching the scores")
ax.legend()
fig.tight_layout()
plt.show()
grad_ratio = {name: stats[name]["grad"][-1] / stats[name]["grad"][0] for name in stats}
for name, ratio in grad_ratio.items():
    print(f"{name:>8}: gradient norm at d_k=1024 / at d_k=1 = {ratio:.1e}")
assert grad_ratio["unscaled"] < 1e-4, "claim no longer holds: 'more than four orders of magnitude'"
assert 0.5 < grad_ratio["scaled"] < 2, "claim no longer holds: 'with scaling it stays of order one'"
glue("ch01_grad_ratio_unscaled", grad_ratio["unscaled"], display=False)
glue("ch01_grad_ratio_scaled", grad_ratio["scaled"], display=False)

# %% [markdown]
# *Figure: without scaling the gradient through the softmax collapses by more than four
# orders of magnitude between $d_k = 1$ and $d_k = 1024$ (the median norm is multiplied by
# {glue:text}`ch01_grad_ratio_unscaled:.1e`); with scaling it stays of order one (a factor
# {glue:text}`ch01_grad_ratio_scaled:.2f`).*

# %% [markdown]
# (ch01-scale-after-training)=
# ### The assumption holds at initialisation, not after training
#
# Step 1 assumed that $q$ and $k$ are *independent*, with uncorrelated unit-variance
# components. With random projections, as at initialisation, that is true. Training
# breaks it on purpose: a model that must find one key among many learns projections that
# point a query and the key it looks for in the same direction. If the cosine between
# them is $c$, then $q^\top k = c\,\lVert q\rVert\,\lVert k\rVert = c\, d_k$ for
# unit-variance components: the score of an aligned pair grows like $d_k$, not like
# $\sqrt{d_k}$, and dividing by $\sqrt{d_k}$ no longer keeps it of order 1.
#
# We measure it on the smallest model that has to align queries and keys: one attention
# head (`ak.MultiHeadAttention(d, 1)`) reading a set of 8 (key, value) pairs and a query
# token that equals one of the keys; the read-out of the query position must name the
# value stored with that key. Keys and values are drawn from 32 symbols each, every pair
# is one position (the sum of a key and a value embedding), and the query is the last
# position. We train it at four widths $d_k$ for 300 steps of Adam (batch 128, learning
# rate $3 \times 10^{-3}$, seed 0) and measure, on 1,000 held-out sets, the dot products
# $\hat q^\top \hat k$ of the query with each key, where $\hat q = q / \mathrm{rms}(q)$
# and $\hat k = k / \mathrm{rms}(k)$ give every component unit variance, as Step 1 assumes
# (the rms is taken over all held-out queries, or keys, and components); the cosine
# between the query and its key; and the logit the softmax actually receives,
# $q^\top k / \sqrt{d_k}$, with the trained projections' own scale.

# %%
N_SYMBOLS, N_PAIRS = 32, 8


def recall_batch(gen, batch=128):
    """Sets of N_PAIRS (key, value) pairs with distinct keys, a query key, and its value."""
    keys = torch.rand(batch, N_SYMBOLS, generator=gen).argsort(-1)[:, :N_PAIRS]  # (B, P)
    vals = torch.randint(N_SYMBOLS, (batch, N_PAIRS), generator=gen)  # (B, P)
    pick = torch.randint(N_PAIRS, (batch,), generator=gen)  # (B,)
    return keys, vals, keys[torch.arange(batch), pick], vals[torch.arange(batch), pick]


class Recall(torch.nn.Module):
    """One attention head over the pairs and the query; the query position reads the value."""

    def __init__(self, d):
        super().__init__()
        self.key_emb = torch.nn.Embedding(N_SYMBOLS, d)
        self.val_emb = torch.nn.Embedding(N_SYMBOLS, d)
        self.query_emb = torch.nn.Embedding(N_SYMBOLS, d)
        self.attn = ak.MultiHeadAttention(d, 1)
        self.readout = torch.nn.Linear(d, N_SYMBOLS)

    def inputs(self, keys, vals, query):  # (B, P + 1, d): the pairs, then the query
        pairs = self.key_emb(keys) + self.val_emb(vals)
        return torch.cat([pairs, self.query_emb(query)[:, None]], dim=1)

    def forward(self, keys, vals, query):  # (B, N_SYMBOLS) logits of the value
        out, _ = self.attn(self.inputs(keys, vals, query))
        return self.readout(out[:, -1])


def normalised_dots(model, batch):
    """q^ . k^ of the query with every key (B, P), a (B, P) mask of the matching key,
    the (B, P) cosines of q and k, and the (B, P) logits q . k / sqrt(d_k) the softmax sees."""
    keys, vals, query, _ = batch
    with torch.no_grad():
        x = model.inputs(keys, vals, query)
        q = model.attn.q_proj(x[:, -1])  # (B, d_k) the query position
        k = model.attn.k_proj(x[:, :-1])  # (B, P, d_k) the pair positions
        q_hat, k_hat = q / q.pow(2).mean().sqrt(), k / k.pow(2).mean().sqrt()
        cosine = F.cosine_similarity(k, q[:, None, :], dim=-1)  # (B, P)
        logits = (k @ q[:, :, None])[..., 0] / math.sqrt(q.shape[-1])  # (B, P)
        return (k_hat @ q_hat[:, :, None])[..., 0], keys == query[:, None], cosine, logits


held_out = recall_batch(torch.Generator().manual_seed(1), batch=1000)
widths = [16, 32, 64, 128]
trained = {}
print(
    " d_k | sqrt(d_k) | init: std of q^.k^ | trained: std | matching key | cosine |"
    " logit | accuracy"
)
for d in widths:
    torch.manual_seed(0)
    model = Recall(d)
    dots0, match, _, _ = normalised_dots(model, held_out)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(300):
        keys_b, vals_b, query_b, target_b = recall_batch(gen)
        loss = F.cross_entropy(model(keys_b, vals_b, query_b), target_b)
        opt.zero_grad()
        loss.backward()
        opt.step()
    dots1, _, cos1, logits1 = normalised_dots(model, held_out)
    with torch.no_grad():
        acc = (model(*held_out[:3]).argmax(-1) == held_out[3]).float().mean().item()
    trained[d] = {
        "std0": dots0.std().item(),
        "std1": dots1.std().item(),
        "match1": dots1[match].mean().item(),  # mean q^.k^ of the key the query looks for
        "cos1": cos1[match].mean().item(),  # mean cosine of q and that key
        "logit1": logits1[match].mean().item(),  # mean q.k / sqrt(d_k) of that key
        "acc": acc,
    }
    t = trained[d]
    print(
        f"{d:4d} | {math.sqrt(d):9.1f} | {t['std0']:18.1f} | {t['std1']:12.1f} |"
        f" {t['match1']:12.1f} | {t['cos1']:6.2f} | {t['logit1']:5.1f} | {acc:.3f}"
    )

# %% tags=["remove-cell"]
# The claims of the next paragraph, checked on the table above.
init_dev = max(abs(trained[d]["std0"] / math.sqrt(d) - 1) for d in widths)
assert init_dev < 0.25, (
    "claim no longer holds: 'at initialisation the std of q^.k^ is sqrt(d_k)' "
    f"(largest relative deviation {init_dev:.1%})"
)
cosines = [trained[d]["cos1"] for d in widths]
match_slope = np.polyfit(np.log(widths), np.log([trained[d]["match1"] for d in widths]), 1)[0]
assert min(cosines) > 0.4 and 0.85 < match_slope < 1.15, (
    "claim no longer holds: 'after training the query and its key are aligned (cosine about "
    "0.6 at every width) and the matching score grows like d_k, slope about 1' (measured "
    f"cosines {[round(c, 2) for c in cosines]}, slope {match_slope:.2f})"
)
logit_growth = trained[128]["logit1"] / trained[16]["logit1"]
assert logit_growth > 2, (
    "claim no longer holds: 'the logit the softmax receives for the matching key grows with "
    f"d_k despite the 1/sqrt(d_k)' (d_k = 128 over d_k = 16: {logit_growth:.2f}x)"
)
assert min(trained[d]["std1"] / trained[d]["std0"] for d in widths) > 1.3, (
    "claim no longer holds: 'after training the spread of the scores exceeds sqrt(d_k)'"
)
assert min(trained[d]["acc"] for d in widths) > 0.9, "claim: 'every width learns the task'"
glue("ch01_init_std_dev", init_dev, display=False)
glue("ch01_trained_cos_lo", min(cosines), display=False)
glue("ch01_trained_cos_hi", max(cosines), display=False)
glue("ch01_trained_match_slope", float(match_slope), display=False)
glue("ch01_trained_acc_lo", min(trained[d]["acc"] for d in widths), display=False)
glue("ch01_trained_match_128", trained[128]["match1"], display=False)
glue("ch01_trained_logit_16", trained[16]["logit1"], display=False)
glue("ch01_trained_logit_128", trained[128]["logit1"], display=False)

# %% [markdown]
# Before training the spread of $\hat q^\top \hat k$ is close to $\sqrt{d_k}$ at every
# width (within {glue:text}`ch01_init_std_dev:.0%`; one random draw of the projections
# and 32 symbols per embedding leave some sampling noise), as Step 1 predicts. After 300 steps every width
# solves the task (held-out accuracy at least {glue:text}`ch01_trained_acc_lo:.0%`), and
# the query and its key are aligned: their mean cosine is between
# {glue:text}`ch01_trained_cos_lo:.2f` and {glue:text}`ch01_trained_cos_hi:.2f` at all four
# widths, so the matching score $\hat q^\top \hat k$ grows in proportion to $d_k$ (slope
# {glue:text}`ch01_trained_match_slope:.2f` on a log-log scale; at $d_k = 128$ it is
# {glue:text}`ch01_trained_match_128:.0f`, where $\sqrt{d_k} \approx 11$). The logits the
# softmax actually receives, $q^\top k/\sqrt{d_k}$ with the trained projections, grow
# too: the matching key's is {glue:text}`ch01_trained_logit_16:.1f` at $d_k = 16$ and
# {glue:text}`ch01_trained_logit_128:.1f` at $d_k = 128$ (one seed per width; asserted to
# grow more than twofold). The
# $1/\sqrt{d_k}$ rule is therefore a statement about initialisation: it makes every width
# start with unit-variance scores and an unsaturated softmax. It does not keep trained
# scores of order 1, and in large models growing attention logits are a known source of
# instability. Two remedies answer this directly:
#
# - **μP** (the maximal update parametrisation of Tensor Programs V)
#   {cite:p}`yang2022tensor` scales the scores by $1/d_k$ instead of $1/\sqrt{d_k}$,
#   precisely because trained queries and keys are correlated and their dot product grows
#   like $d_k$; with this and its other rules, hyperparameters tuned on a narrow model
#   transfer to a wide one.
# - **QK-norm** normalises $q$ and $k$ before the dot product, so the size of a score is
#   set by learned gains instead of growing with $\lVert q\rVert\,\lVert k\rVert$. Henry
#   et al. {cite:p}`henry2020query` scale unit-length $q$ and $k$ by a learned factor;
#   on the way to ViT-22B, in models of around 8B parameters, the attention logits grew until the
#   weights were almost one-hot and the training loss diverged; a LayerNorm on the queries
#   and on the keys removed the instability {cite:p}`dehghani2023scaling`.

# %% [markdown]
# (ch01-seed-scale)=
# ### Why not divide by the sequence length?
#
# ```{admonition} Seed erratum E1 · 基本概念和原理 (line 16)
# :class: seed-erratum
# The seed says: 「缩放因子通常是一个键序列长度的倒数」 (the scaling factor is usually the
# reciprocal of the key sequence length)
# **Correction:** the factor is $1/\sqrt{d_k}$, with $d_k$ the width of the queries and
# keys, not the number of keys (the seed's own formula, line 35, has it right). Entry:
# {ref}`E1 <errata-e1>`; evidence: {ref}`ch01-seed-scale`.
# ```
#
# Dividing by the number of keys instead, $s_{ij} = q_i^\top k_j / n$, fails on three
# counts.
#
# 1. **The score of a pair depends on the rest of the sentence.** The same query and key
#    get a different logit in a 10-token sentence than in a 100-token one.
# 2. **It does not fix the growth with $d_k$.** For a fixed $n$ the logit variance is
#    $d_k / n^2$, which still grows linearly with $d_k$.
# 3. **Long sequences are flattened toward uniform.** With logits of size
#    $\sqrt{d_k}/n \to 0$, every weight tends to $1/n$ and the entropy to its maximum
#    $\log n$: attention degenerates into a plain average. (Short sequences go the other
#    way and saturate.)

# %%
torch.manual_seed(0)
q1, k1 = torch.randn(64), torch.randn(64)  # one fixed (query, key) pair, d_k = 64
rows = []
for n in (10, 100):
    rows.append(
        f"n={n:3d}: logit with 1/n = {q1 @ k1 / n:+.4f} | with 1/sqrt(d_k) = {q1 @ k1 / 8:+.4f}"
    )

n_fixed = 16
rows.append(f"\nstd of the logits, n = {n_fixed} keys:\n  d_k | scale 1/n | scale 1/sqrt(d_k)")
for d in (16, 256, 4096):
    dots = (torch.randn(5000, d) * torch.randn(5000, d)).sum(-1)
    std_n, std_d = (dots / n_fixed).std().item(), (dots / math.sqrt(d)).std().item()
    rows.append(f"{d:5d} | {std_n:9.2f} | {std_d:6.2f}")
    # item 2: with 1/n the std is sqrt(d_k) / n, growing with d_k; with 1/sqrt(d_k) it is 1
    assert abs(std_n / (math.sqrt(d) / n_fixed) - 1) < 0.05 and abs(std_d - 1) < 0.05, (
        f"claim no longer holds: 'logit std sqrt(d_k)/n with 1/n, 1 with 1/sqrt(d_k)' at d_k={d}"
    )
print("\n".join(rows))

# %% [markdown]
# For item 3 we fix $d_k = 64$ and vary the number of keys $n$ (one query, random keys),
# and report two numbers: the normalised entropy $H(a)/\log n$ (1 means uniform) and the
# distance from uniform $\log n - H(a) = \mathrm{KL}(a \,\|\, \mathrm{uniform})$, i.e. how
# much the query actually *selects*.
#
# What to expect for many keys: if a query's logits $s_j$ are independent Gaussians of
# variance $\sigma^2$, the softmax denominator $\sum_l e^{s_l}$ is close to
# $n\,\mathbb{E}[e^{s}] = n\, e^{\sigma^2/2}$, so $\log(n a_j) \approx s_j - \sigma^2/2$ and
#
# $$
# \log n - H(a) = \sum_j a_j \log(n a_j) \approx \mathbb{E}_a[s] - \frac{\sigma^2}{2}
# = \sigma^2 - \frac{\sigma^2}{2} = \frac{\sigma^2}{2},
# $$
#
# because weighting a Gaussian density by $e^{s}$ shifts its mean from 0 to $\sigma^2$
# ($\mathbb{E}_a[s] \approx \mathbb{E}[s\,e^{s}] / \mathbb{E}[e^{s}] = \sigma^2$). With
# $1/\sqrt{d_k}$ the logits have variance $\sigma^2 = 1$ (on average over queries) whatever
# $n$ is, so the distance from uniform should settle near $0.5$ nats. With $1/n$ they have
# variance $\sigma^2 = d_k/n^2$, so it should fall like $d_k / (2n^2)$: as $1/n^2$.

# %%
torch.manual_seed(0)
d_fixed, trials = 64, 200
lengths_n = [2, 4, 8, 16, 64, 256, 1024, 4096]
norm_ent = {"1/n": [], "1/sqrt(d_k)": []}
kl_unif = {"1/n": [], "1/sqrt(d_k)": []}
for n in lengths_n:
    q = torch.randn(trials, 1, d_fixed)
    k = torch.randn(trials, n, d_fixed)
    v = torch.zeros(trials, n, 1)  # values do not matter for the weights
    for name, scale in (("1/n", 1 / n), ("1/sqrt(d_k)", 1 / math.sqrt(d_fixed))):
        _, w = ak.scaled_dot_product_attention(q, k, v, scale=scale, return_weights=True)
        # float64 entropy: log n - H is tiny for long sequences under 1/n (about 1e-6)
        h = torch.special.entr(w.double()).sum(-1).mean().item()
        norm_ent[name].append(h / math.log(n))
        kl_unif[name].append(math.log(n) - h)
print("   n  | H/log n: 1/n  1/sqrt(d_k) | log n - H: 1/n   1/sqrt(d_k)")
for i, n in enumerate(lengths_n):
    print(
        f"{n:5d} |        {norm_ent['1/n'][i]:.3f}  {norm_ent['1/sqrt(d_k)'][i]:.3f}       |"
        f"       {kl_unif['1/n'][i]:.1e}  {kl_unif['1/sqrt(d_k)'][i]:.4f}"
    )

# %% tags=["remove-cell"]
# The claims of the caption below, checked on the table above.
at = {n: i for i, n in enumerate(lengths_n)}
kl_fall = kl_unif["1/n"][at[64]] / kl_unif["1/n"][at[256]]  # 1/n^2 predicts (256/64)^2 = 16
kl_long = kl_unif["1/sqrt(d_k)"][at[64] :]  # n = 64 .. 4096
kl_short = kl_unif["1/sqrt(d_k)"][: at[64] + 1]  # n = 2 .. 64
assert norm_ent["1/n"][at[2]] < 0.5 and norm_ent["1/n"][at[2]] < norm_ent["1/sqrt(d_k)"][at[2]], (
    "claim no longer holds: 'with 1/n, sharp for n = 2'"
)
assert min(norm_ent["1/n"][at[256] :]) > 0.999, "claim: 'with 1/n, uniform for long sequences'"
# d_k / (2 n^2) (1 - 1/n) predicts 15.8; Monte Carlo noise is about 0.4
assert 14 < kl_fall < 18, f"claim: 'the distance from uniform falls like 1/n^2' (ratio {kl_fall})"
assert (np.diff(kl_short) > 0).all(), "claim: 'with 1/sqrt(d_k) it grows over the first keys'"
assert min(kl_long) > 0.45 and max(kl_long) < 0.55, (
    "claim: 'with 1/sqrt(d_k) it levels off near 0.5'"
)
assert norm_ent["1/n"][at[8]] == norm_ent["1/sqrt(d_k)"][at[8]], "claim: 'they coincide at n = 8'"
glue("ch01_norm_entropy_n2_inv_n", norm_ent["1/n"][at[2]], display=False)
glue("ch01_kl_fall_64_256", kl_fall, display=False)
glue("ch01_kl_sqrt_lo", min(kl_long), display=False)
glue("ch01_kl_sqrt_hi", max(kl_long), display=False)

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
for name, style in (("1/n", "o-"), ("1/sqrt(d_k)", "s-")):
    label = "scale $1/n$" if name == "1/n" else "scale $1/\\sqrt{d_k}$"
    ax1.semilogx(lengths_n, norm_ent[name], style, label=label)
    ax2.loglog(lengths_n, kl_unif[name], style, label=label)
ax1.axhline(1, color="gray", ls=":", lw=1, label="uniform weights")
ax1.set(
    xlabel="number of keys $n$", ylabel="$H(a) / \\log n$", title="Normalised entropy ($d_k = 64$)"
)
ax2.set(xlabel="number of keys $n$", ylabel="$\\log n - H(a)$ (nats)", title="How far from uniform")
ax1.legend()
ax2.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure: with $1/n$ the behaviour depends on the length: sharp for $n = 2$ (normalised
# entropy {glue:text}`ch01_norm_entropy_n2_inv_n:.2f`), uniform for long sequences, where
# the distance from uniform falls like $1/n^2$ (it is divided by
# {glue:text}`ch01_kl_fall_64_256:.1f` from $n = 64$ to $n = 256$, where $1/n^2$ predicts
# 16). With $1/\sqrt{d_k}$ the distance from uniform grows over the first few dozen keys
# and then levels off: from $n = 64$ to $4096$ it stays between
# {glue:text}`ch01_kl_sqrt_lo:.2f` and {glue:text}`ch01_kl_sqrt_hi:.2f` nats, close to the
# predicted $\sigma^2/2 = 0.5$. The two scales coincide only at $n = \sqrt{d_k} = 8$.*

# %% [markdown]
# (ch01-masks)=
# ## Masks
#
# A mask decides which keys each query may see. `attnkit` uses PyTorch's convention:
#
# - a **bool** mask holds `True` where query $i$ **may attend** to key $j$ and `False`
#   where it may not;
# - a **floating** mask is **added** to the scores: $0$ keeps a score, $-\infty$ removes it.
#
# Both act before the softmax, so a masked key gets weight exactly 0 and the remaining
# weights of the row still sum to 1:
#
# $$
# a_{ij} = \frac{m_{ij}\, e^{s_{ij}}}{\sum_{l} m_{il}\, e^{s_{il}}}, \qquad m_{ij} \in \{0, 1\}.
# $$
#
# Careful: not every API agrees. In `torch.nn.MultiheadAttention`, a `True` in a bool
# `attn_mask` or `key_padding_mask` means the position is *not* allowed to attend.
#
# ### The causal mask
#
# A decoder that generates text left to right must not peek at the future: query $i$ may
# only see keys $j \le i$ {cite:p}`vaswani2017attention`. The mask is lower-triangular.

# %%
T = 5
causal = ak.causal_mask(T)  # (T, T) bool
print(causal)
print("as an additive mask:\n", ak.to_additive_mask(causal))

# %% [markdown]
# ### Padding masks
#
# Sequences in a batch have different lengths and are padded to a common length. Padded
# positions are not real tokens, so no query may attend to them. `ak.padding_mask` builds
# a `(B, max_len)` mask from the lengths; inserting a query axis, `[:, None, :]`, turns it
# into a *key* mask that broadcasts against scores of shape `(B, n_q, n_k)`.

# %%
lengths = torch.tensor([5, 3])  # sequence 0 is full, sequence 1 has 2 padding positions
pad = ak.padding_mask(lengths, max_len=T)  # (B, T), True = real token
print(pad)
combined = ak.combine_masks(causal, pad[:, None, :])  # (T, T) & (B, 1, T) -> (B, T, T)
print("combined mask shape:", tuple(combined.shape))

# %% [markdown]
# `ak.combine_masks` keeps a position only if *every* mask allows it (logical AND for bool
# masks). We apply the combined mask to random self-attention over the padded batch.

# %%
torch.manual_seed(0)
Xb = torch.randn(2, T, 8)  # (B, T, d_model), positions >= length are padding
Qb, Kb, Vb = Xb @ W_Q, Xb @ W_K, Xb @ W_V
Ob, Ab = ak.scaled_dot_product_attention(Qb, Kb, Vb, combined, return_weights=True)
print("weights of sequence 1 (length 3):\n", Ab[1])
# masked keys get weight exactly 0, and every row still sums to 1
assert (Ab[~combined] == 0).all() and torch.allclose(Ab.sum(-1), torch.ones(2, T)), (
    "masked keys must get weight 0 and rows must sum to 1; found masked weight up to "
    f"{Ab[~combined].abs().max():.1e}, row-sum error {(Ab.sum(-1) - 1).abs().max():.1e}"
)

# %%
from matplotlib.colors import ListedColormap

mask_cmap = ListedColormap(["#d9d9d9", "#2c7fb8"])
panels = [
    (causal, "causal mask"),
    (pad[1, None, :].expand(T, T), "padding (key) mask, seq. 1"),
    (combined[1], "combined, seq. 1"),
]
fig, axes = plt.subplots(1, 4, figsize=(16, 3.9))
for ax, (m, title) in zip(axes[:3], panels):
    im = ax.imshow(m.int().numpy(), cmap=mask_cmap, vmin=0, vmax=1)
    ax.set_title(title)
    cb = fig.colorbar(im, ax=ax, ticks=[0.25, 0.75], fraction=0.046)
    cb.ax.set_yticklabels(["False:\nblocked", "True:\nmay attend"])
im = axes[3].imshow(Ab[1].numpy(), cmap="viridis", vmin=0, vmax=1)
axes[3].set_title("masked weights, seq. 1")
fig.colorbar(im, ax=axes[3], fraction=0.046, label="$a_{ij}$")
for ax in axes:
    ax.set_xlabel("key $j$")
    ax.set_ylabel("query $i$")
    ax.set_xticks(range(T))
    ax.set_yticks(range(T))
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure: the combined mask is the AND of the causal and padding masks, and the weights
# are exactly zero wherever the mask is `False` (upper triangle and the two padded key
# columns).*
#
# Rows 3 and 4 of sequence 1 are *padding queries*: they still produce outputs (from the
# real keys 0 to 2), which is harmless as long as the loss ignores them.
#
# ### A query that may see nothing
#
# If we also mask the padding *queries* (`pad[:, :, None]`), rows 3 and 4 of sequence 1
# have no key left. A naive softmax of a row of $-\infty$ computes $0/0$:

# %%
naive = torch.softmax(torch.full((3,), float("-inf")), 0)
print("torch.softmax of an all -inf row:", naive)

full_mask = ak.combine_masks(combined, pad[:, :, None])  # also block padding queries
Of, Af = ak.scaled_dot_product_attention(Qb, Kb, Vb, full_mask, return_weights=True)
print("attnkit weights, seq. 1:\n", Af[1])
print("attnkit outputs of the fully masked rows:\n", Of[1, 3:])
O_torch_full = F.scaled_dot_product_attention(Qb, Kb, Vb, attn_mask=full_mask)
agrees = torch.allclose(Of, O_torch_full, atol=1e-6)
print("torch F.sdpa agrees:", agrees)
nan_times_zero = 0 * torch.tensor(float("nan"))
print("and masking a NaN away afterwards does not work: 0 * nan =", nan_times_zero)
# the claims of the next paragraph
assert naive.isnan().all() and nan_times_zero.isnan(), (
    "claim no longer holds: 'a naive softmax of a row of -inf computes 0/0; 0 * nan = nan' "
    f"(measured softmax {naive.tolist()}, 0 * nan = {nan_times_zero.item()})"
)
assert (Af[1, 3:] == 0).all() and (Of[1, 3:] == 0).all() and agrees, (
    "claim no longer holds: 'attnkit and torch give zeros, not NaN, for a fully masked row'"
)

# %% [markdown]
# `attnkit` (like `F.scaled_dot_product_attention` in the PyTorch version used here) returns
# zero weights and a zero output for a fully masked row, instead of NaN. This matters in
# practice: a NaN output cannot be removed later by multiplying the loss with a 0/1 mask
# (the last line), so one NaN propagates through the loss and poisons every parameter in
# the backward pass.
#
# ### Garbage in a masked value row
#
# Padding positions often hold garbage (uninitialised memory, a NaN from dividing by a
# length of zero). The mask gives such a key weight 0, but the weighted sum still
# multiplies that 0 with its value row, and $0 \cdot \text{NaN} = \text{NaN}$. Below,
# one NaN is written into the value row of a padded position of sequence 1.

# %%
V_garbage = Vb.clone()
V_garbage[1, 4] = float("nan")  # position 4 of sequence 1 is padding: masked for every query
O_torch_garbage = F.scaled_dot_product_attention(Qb, Kb, V_garbage, attn_mask=combined)
O_ak_garbage = ak.scaled_dot_product_attention(Qb, Kb, V_garbage, combined)
nan_rows = O_torch_garbage[1].isnan().any(-1)  # (T,) output rows of sequence 1 with a NaN
print("torch F.sdpa: output rows of seq. 1 holding NaN:", nan_rows.tolist())
print("attnkit: any NaN?", bool(O_ak_garbage.isnan().any()))
print("attnkit: max change from the clean output:", (O_ak_garbage - Ob).abs().max().item())
assert nan_rows.all() and torch.allclose(O_ak_garbage, Ob, atol=1e-6, rtol=0), (
    "claim no longer holds: 'in torch's SDPA one NaN in a masked value row reaches every "
    "output row of its sequence; attnkit's output does not change' "
    f"(torch NaN rows {nan_rows.tolist()}, attnkit change "
    f"{(O_ak_garbage - Ob).abs().max().item():.1e})"
)

# %% [markdown]
# In PyTorch's function (the version used here) the NaN reaches **every** output row of
# sequence 1, although no query may attend to position 4. `attnkit` gives exactly the
# output it gives without the garbage: a key of weight 0 contributes exactly 0 to the
# weighted sum, whatever its value (the product is checked for NaN/inf, and only then
# redone without the values of weight 0).
#
# ### Causal masks when there are fewer queries than keys
#
# During generation with a key/value cache ({ref}`ch04-kv-cache` teaches it), the keys and
# values of the first tokens are stored, and only the *newest* $n_q$ tokens are fed as
# queries, so $n_q < n_k$. These
# queries are the **last** $n_q$ positions: query $i$ sits at absolute position
# $i + (n_k - n_q)$ and may see keys $j \le i + n_k - n_q$. That is what
# `ak.causal_mask(n_q, n_k)` does by default (`offset = n_k - n_q`). Aligning the first
# query with the first key instead (`offset=0`) is what
# `F.scaled_dot_product_attention(..., is_causal=True)` does, which is wrong for a cache
# (PyTorch offers `torch.nn.attention.bias.causal_lower_right` for the cache case).

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
for ax, off, title in zip(
    axes, (3, 0), ("offset = 3 (default $n_k - n_q$, KV cache)", "offset = 0 (like is_causal=True)")
):
    im = ax.imshow(ak.causal_mask(3, 6, offset=off).int().numpy(), cmap=mask_cmap, vmin=0, vmax=1)
    ax.set(title=title, xlabel="key position $j$", ylabel="query $i$ (its position)")
    ax.set_yticks(range(3), [f"{i} (pos {i + off})" for i in range(3)])
    cb = fig.colorbar(im, ax=ax, ticks=[0.25, 0.75], fraction=0.03)
    cb.ax.set_yticklabels(["blocked", "may attend"])
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure: with a cache the three new queries are positions 3, 4, 5 and see every key up
# to their own position (left); the top-left alignment (right) treats them as positions
# 0, 1, 2 and hides most of the past.*
#
# The check that matters: decoding the last three positions against the cached keys must
# reproduce the last three rows of full causal self-attention.

# %%
torch.manual_seed(0)
Q6, K6, V6 = torch.randn(6, 4), torch.randn(6, 4), torch.randn(6, 4)
full = ak.scaled_dot_product_attention(Q6, K6, V6, ak.causal_mask(6))
cached = ak.scaled_dot_product_attention(Q6[3:], K6, V6, ak.causal_mask(3, 6))
top_left = ak.scaled_dot_product_attention(Q6[3:], K6, V6, ak.causal_mask(3, 6, offset=0))
O_is_causal = F.scaled_dot_product_attention(Q6[3:], K6, V6, is_causal=True)
checks = {
    "default offset reproduces the full computation": torch.allclose(cached, full[3:], atol=1e-6),
    "offset=0 reproduces it": torch.allclose(top_left, full[3:], atol=1e-6),
    "offset=0 equals torch is_causal=True": torch.allclose(top_left, O_is_causal, atol=1e-6),
}
for name, ok in checks.items():
    print(f"{name}: {ok}")
assert checks == {name: name != "offset=0 reproduces it" for name in checks}, (
    "claim no longer holds: 'only the default offset reproduces the cache-free computation'"
)

# %% [markdown]
# (ch01-seed-multiplicative)=
# ## Before the Transformer: additive and multiplicative attention
#
# Soft attention over a sequence became widespread through neural machine translation,
# where a decoder state (the query) attends over the encoder states (keys and values). Only the **score**
# function differed from what we have seen; the softmax and the weighted sum were the same.
#
# **Additive attention** {cite:p}`bahdanau2014neural` scores each pair with a small
# feed-forward network with one hidden layer of size $h$:
#
# $$
# s_{ij} = w^\top \tanh(W_q q_i + W_k k_j), \qquad
# W_q \in \mathbb{R}^{h \times d_q},\; W_k \in \mathbb{R}^{h \times d_k},\; w \in \mathbb{R}^{h}.
# $$
#
# **Multiplicative attention** {cite:p}`luong2015effective` uses a plain dot product
# ("dot") or a bilinear form ("general"):
#
# $$
# s_{ij} = q_i^\top k_j \quad \text{(dot)}, \qquad s_{ij} = q_i^\top W k_j \quad \text{(general)}.
# $$
#
# **Scaled dot-product attention** {cite:p}`vaswani2017attention` is the "dot" score
# divided by $\sqrt{d_k}$. The learned matrix of "general" has not disappeared: it moved
# into the projections, since $q_i^\top k_j = x_i^\top W_Q W_K^\top x_j$ is a bilinear form
# in the inputs, of rank at most $d_k$.

# %%
torch.manual_seed(0)
n_q, n_k, d = 3, 5, 8
q, k, v = torch.randn(n_q, d), torch.randn(n_k, d), torch.randn(n_k, d)
additive = ak.AdditiveAttention(d, d, d_hidden=16)
dot = ak.MultiplicativeAttention(d, d, variant="dot")
general = ak.MultiplicativeAttention(d, d, variant="general")
rows, weights_of = [], {}
with torch.no_grad():
    for name, module in (("additive", additive), ("dot", dot), ("general", general)):
        _, weights_of[name] = module(q, k, v, return_weights=True)
        n_params = sum(p.numel() for p in module.parameters())
        rows.append(
            f"{name:>8}: {n_params:3d} parameters, weights of query 0 = {weights_of[name][0]}"
        )
    _, weights_of["scaled"] = ak.scaled_dot_product_attention(q, k, v, return_weights=True)
    rows.append(f"{'scaled':>8}:   0 parameters, weights of query 0 = {weights_of['scaled'][0]}")
print("\n".join(rows))
top_dot, top_scaled = (weights_of[name].max(-1).values for name in ("dot", "scaled"))  # (n_q,)
print("largest weight of each query, dot:", top_dot, "| scaled:", top_scaled)
# a larger scale can only raise the largest weight, so "clearly" is the claim to check
assert (top_dot > top_scaled).all() and top_dot.mean() - top_scaled.mean() > 0.1, (
    "claim no longer holds: 'dot weights are clearly sharper than scaled'"
)
glue("ch01_dot_top_weight_mean", top_dot.mean().item(), display=False)
glue("ch01_scaled_top_weight_mean", top_scaled.mean().item(), display=False)

# %% [markdown]
# Even at $d = 8$ the unscaled "dot" weights are clearly sharper than the scaled ones (the
# largest weight of a query is {glue:text}`ch01_dot_top_weight_mean:.2f` on average,
# against {glue:text}`ch01_scaled_top_weight_mean:.2f` with the scale): the saturation of
# the previous section, in miniature. Two checks make the formulas concrete: one additive
# score computed by hand from the module's parameters, and Luong's "dot" equal to scaled
# dot-product attention with `scale=1`.

# %%
with torch.no_grad():
    W_q, W_k, w_vec = additive.w_q.weight, additive.w_k.weight, additive.w.weight[0]
    s_01 = w_vec @ torch.tanh(W_q @ q[0] + W_k @ k[1])  # w^T tanh(W_q q_0 + W_k k_1)
    hidden = torch.tanh((q @ W_q.T)[:, None, :] + (k @ W_k.T)[None, :, :])  # (n_q, n_k, h)
    same_as_dot = torch.allclose(
        dot(q, k, v), ak.scaled_dot_product_attention(q, k, v, scale=1.0), atol=1e-6
    )
    by_hand_ok = torch.allclose(s_01, additive.scores(q, k)[0, 1])
    print("additive score (0,1) by hand == module:", by_hand_ok)
    print("Luong dot == attnkit with scale=1:", same_as_dot)
    assert by_hand_ok and same_as_dot, "claim no longer holds: the two checks of the formulas"
    print(
        "additive needs a hidden tensor of shape",
        tuple(hidden.shape),
        "= (n_q, n_k, h); the dot product needs only",
        tuple((q @ k.T).shape),
    )

# %% [markdown]
# **Why the scaled dot product won.** All scores come from one matrix multiplication
# $QK^\top$, the operation accelerators are built for, costing $O(n_q n_k d_k)$ time and
# $O(n_q n_k)$ memory. Additive attention must evaluate a hidden layer for every pair: an
# $(n_q, n_k, h)$ tensor and a $\tanh$ per entry. Vaswani et al. note that the two perform
# similarly for small $d_k$, and that additive attention outperforms the *unscaled* dot
# product for large $d_k$ {cite:p}`vaswani2017attention`, which is exactly the saturation
# problem of the previous section; dividing by $\sqrt{d_k}$ removes it and keeps the speed.
# (Additive attention also accepts queries and keys of different sizes, $d_q \ne d_k$;
# dot-product attention handles that through its projections $W_Q$, $W_K$.)

# %% [markdown]
# (ch01-seed-memory)=
# (ch01-costs)=
# ## Strengths and costs
#
# These points get their own chapters later; here is the short version, with evidence.
#
# ```{admonition} Seed erratum E6 · 优势和局限性 (line 85)
# :class: seed-erratum
# The seed says: 「由于需要存储大量的权重矩阵，自注意力机制可能需要更多的存储资源」 (more
# storage, because many weight matrices must be stored)
# **Correction:** the parameters $W_Q, W_K, W_V$ do not grow with $n$; what grows is the
# attention-weights matrix $A$, an $n \times n$ activation per head. Entry:
# {ref}`E6 <errata-e6>`; evidence: {ref}`ch01-seed-memory`.
# ```
#
# **Cost grows with $n^2$, but the parameters do not.** For self-attention over $n$
# tokens, $QK^\top$ and $AV$ take $O(n^2 d)$ time, and the matrix of attention weights
# $A$ has $n^2$ entries per head, i.e. $O(n^2)$ memory. The learned matrices
# $W_Q, W_K, W_V$ have a size fixed by $d_{\text{model}}$, $d_k$, $d_v$, independent of
# $n$; $A$ is an activation, recomputed for every input.

# %%
torch.manual_seed(0)
proj = torch.nn.ModuleDict({name: torch.nn.Linear(64, 64, bias=False) for name in ("q", "k", "v")})
n_params = sum(p.numel() for p in proj.parameters())
rows = ["    n  | parameters | entries of A | A in float32 | multiply-adds in QK^T and AV"]
entries = {}
with torch.no_grad():
    for n in (16, 256, 1024, 4096):
        Xn = torch.randn(n, 64)
        Qn, Kn, Vn = proj["q"](Xn), proj["k"](Xn), proj["v"](Xn)
        _, An = ak.scaled_dot_product_attention(Qn, Kn, Vn, return_weights=True)
        entries[n] = An.numel()
        mib = An.numel() * 4 / 2**20
        rows.append(
            f"{n:6d} | {n_params:10d} | {An.numel():12d} | {mib:8.2f} MiB | {2 * n * n * 64:14d}"
        )
print("\n".join(rows))
# the next paragraph: A grows 256-fold from n = 256 to 4096; the parameters stay 3 x 64 x 64
assert entries[4096] == 256 * entries[256] and n_params == 3 * 64 * 64, (
    "claim no longer holds: 'n x 16 multiplies the weights tensor by 256, parameters unchanged' "
    f"(measured x{entries[4096] / entries[256]:.3g}, {n_params} parameters)"
)

# %% [markdown]
# Multiplying $n$ by 16 (256 to 4096) multiplies the weights tensor by 256 and leaves the
# parameter count unchanged.
#
# **Every pair is one step apart, and all positions are computed at once.** Position 0
# can read position $n-1$ within a single layer (path length $O(1)$, versus $O(n)$ steps
# through a recurrent network), and the $n$ outputs come from matrix products with no
# sequential loop, so they parallelise fully. The gradient check below shows that the
# first output depends on the last input after one attention layer.

# %%
torch.manual_seed(0)
X_path = torch.randn(1024, 64, requires_grad=True)
out = ak.scaled_dot_product_attention(proj["q"](X_path), proj["k"](X_path), proj["v"](X_path))
out[0].sum().backward()
reaches = bool(X_path.grad[-1].abs().sum() > 0)
print("d out[0] / d x[1023] is nonzero:", reaches)
assert reaches, "claim no longer holds: 'the first output depends on the last input'"

# %% [markdown]
# ## Key takeaways
#
# - Attention is a **soft dictionary look-up**: score a query against every key, turn the
#   scores into weights with a softmax, return the weighted average of the values. The
#   hard look-up (argmax) is its zero-temperature limit.
# - $A = \mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d_k}}\right)$, $O = AV$, with shapes
#   $(n_q, d_k)$, $(n_k, d_k)$, $(n_k, d_v)$ in and $(n_q, d_v)$ out. The softmax runs
#   over the **keys** for each query, so every row of $A$ sums to 1 and every output is
#   a convex combination of the values.
# - In self-attention $Q = XW_Q$, $K = XW_K$, $V = XW_V$ all come from the same sequence;
#   the operation is permutation-equivariant, so positions must be added separately.
# - Compute the softmax with the row maximum subtracted: the result is unchanged and
#   $e^{s}$ can no longer overflow (float32 overflows above $s \approx 88.7$).
# - The scale is $1/\sqrt{d_k}$ because $\mathrm{Var}(q^\top k) = d_k$ for independent
#   unit-variance $q$ and $k$, as at initialisation; without it the softmax saturates and
#   its gradient vanishes. Training correlates $q$ and $k$, and then aligned scores grow
#   like $d_k$: μP scales by $1/d_k$, QK-norm normalises $q$ and $k$. Dividing by the sequence length is
#   wrong: it makes scores depend on $n$, does not fix the growth with $d_k$, and
#   flattens long sequences to uniform.
# - Masks (bool, `True` = may attend) remove keys before the softmax: causal masks for
#   decoders (with an offset of $n_k - n_q$ for a KV cache), padding masks from lengths.
#   A fully masked row should give zeros, not NaN.
# - The dot-product score replaced additive and multiplicative scores because it is a
#   single matrix multiply; the price is $O(n^2 d)$ time and $O(n^2)$ memory for $A$,
#   not extra parameters.
# - The seed answer's worked example and scaling factor are wrong (errata E1–E4, boxed
#   above); the memory cost it blames on weight matrices is the activation $A$ (E6).

# %% [markdown]
# ## Exercises
#
# The exercises for this chapter are in `exercises/01_scaled_dot_product_attention.ipynb`.
# Using plain PyTorch, you will implement
#
# 1. the scaled attention scores $QK^\top / \sqrt{d_k}$;
# 2. a masked softmax that keeps fully masked rows at zero;
# 3. scaled dot-product attention;
# 4. the causal mask;
# 5. a padding mask from a tensor of lengths;
# 6. additive (Bahdanau) attention scores.
#
# Grade your work with `python -m attnkit.grade 01`.

# %% [markdown]
# (ch01-interview)=
# ## Interview question
#
# ```{admonition} Interview question
# :class: tip
#
# **题目：** 请解释自注意力机制的基本概念和原理。
#
# :::{english-only}
# **Question:** Explain the basic concepts and principles of self-attention.
# :::
#
# **Model answer.** Self-attention lets every position of a sequence build its new
# representation as a weighted average over all positions: a soft, differentiable
# dictionary look-up ({ref}`ch01-soft-lookup`). Each input $x_i$ is projected into a query
# $q_i = x_i W_Q$, a key $k_i = x_i W_K$ and a value $v_i = x_i W_V$. Every query is
# compared with every key, giving an $n \times n$ score matrix $QK^\top/\sqrt{d_k}$; a
# softmax over the *keys* turns each row into weights that sum to 1, and the output is
# $O = AV$, so $o_i = \sum_j a_{ij} v_j$, a convex combination of the values
# ({ref}`ch01-qkv`, {ref}`ch01-worked-example`); in code the row maximum is subtracted
# before `exp`, which changes nothing but prevents overflow ({ref}`ch01-stable-softmax`).
# The scale is $1/\sqrt{d_k}$, with $d_k$ the key *dimension*: for independent
# unit-variance $q$ and $k$ (true at initialisation) the variance of $q^\top k$ is $d_k$,
# and large scores saturate the softmax and make its gradient vanish. After training, $q$
# and $k$ are correlated and aligned scores grow like $d_k$, which is why μP scales by
# $1/d_k$ and recent models normalise $q$ and $k$ (QK-norm)
# ({ref}`ch01-scale-after-training`). A common mistake, made by the source
# text, is to divide by the sequence length instead: a pair's score would then depend on
# the rest of the sentence, the growth with $d_k$ would remain, and long sequences would
# be flattened towards uniform weights ({ref}`ch01-scaling`). Masks remove keys before the
# softmax: causal for decoders, padding for batches ({ref}`ch01-masks`). Attention
# connects any two positions in one step and computes all positions in parallel; the price
# is $O(n^2 d)$ time and $O(n^2)$ memory for the weights, which are activations, not
# parameters ({ref}`ch01-costs`). On its own it ignores word order, so positions must be
# added ({doc}`chapter 2 <02_multi_head_attention>`).
# ```

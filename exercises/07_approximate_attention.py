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
# # Exercises: approximate attention
#
# Five small functions, one for each idea of chapter 7: a sparse pattern, Linformer's
# projections, the Performer's random features, BigBird's block layout and causal linear
# attention. Replace each
# `raise NotImplementedError(...)` with your code, then run the check cell after it (marked
# `# NBVAL_CHECK_OUTPUT`); its output must match what is stored under it. Grade the chapter
# from the repository root with
#
# ```bash
# .venv/bin/python -m attnkit.grade 07
# ```
#
# The grader loads only your `def`s and imports, tests each function on several inputs
# against attnkit and against independent references, then runs this notebook and compares
# the check cells. Conventions, as in the chapter: batch dimensions come first and may be
# any number (`...`); a bool mask is `True` where a query *may attend* to a key.

# %%
import math

import torch
import torch.nn.functional as F

import attnkit as ak
from attnkit.efficient.bigbird import bigbird_layout
from attnkit.efficient.kernel import linear_attention
from attnkit.efficient.linformer import linformer_attention
from attnkit.efficient.local import local_attention
from attnkit.efficient.performer import positive_random_features

torch.set_printoptions(precision=4, sci_mode=False)

# %% [markdown]
# ## Exercise 1: a sliding-window mask
#
# Write `sliding_window_mask(n, window, causal=False)`: the bool `(n, n)` mask of local
# attention, `True` where query `i` may attend key `j`:
#
# - not causal: $|i - j| \le$ `window` (`window` keys on each side, and the query itself);
# - causal: $0 \le i - j \le$ `window` (the query and the `window` keys before it).
#
# Build it from `torch.arange(n)` with broadcasting, without a Python loop.


# %%
def sliding_window_mask(n: int, window: int, causal: bool = False) -> torch.Tensor:
    """Bool (n, n): True where query i may attend key j of a sliding window of radius window."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %% [markdown]
# The check prints two small masks, counts the pairs of the chapter's window at
# $n = 1024$, and compares dense attention with your mask to attnkit's `local_attention`,
# which never builds the mask.

# %%
# NBVAL_CHECK_OUTPUT
print(sliding_window_mask(6, 1).int())
print(sliding_window_mask(6, 2, causal=True).int())
print(sliding_window_mask(1024, 128).sum().item(), "pairs at n = 1024, window 128")
g = torch.Generator().manual_seed(0)
q, k, v = (torch.randn(2, 50, 8, generator=g, dtype=torch.float64) for _ in range(3))
dense = ak.scaled_dot_product_attention(q, k, v, sliding_window_mask(50, 3))
print("equals local_attention:", torch.allclose(dense, local_attention(q, k, v, 3)))

# %% [markdown]
# ## Exercise 2: Linformer
#
# Write `linformer_attention_simple(q, k, v, e, f)`: project the `n` keys and values down
# to `k_proj` rows with the `(k_proj, n)` matrices `e` and `f`, then attend:
#
# $$
# \mathrm{softmax}\!\left(\frac{q\,(e\,k)^\top}{\sqrt d}\right) (f\,v) .
# $$
#
# - `q`, `k`: `(..., n, d)`, `v`: `(..., n, d_v)`; `e`, `f`: `(k_proj, n)`. Return
#   `(..., n, d_v)`. No mask.
# - `e @ k` multiplies every batch entry by the same `e` (broadcasting); use
#   `transpose(-2, -1)` for the keys.


# %%
def linformer_attention_simple(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, e: torch.Tensor, f: torch.Tensor
) -> torch.Tensor:
    """Linformer: softmax(q (e k)^T / sqrt(d)) (f v), with e, f of shape (k_proj, n)."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %% [markdown]
# The check: with identity projections ($k = n$, $E = F = I$) Linformer is full attention;
# with 16 random projections it matches attnkit's `linformer_attention`.

# %%
# NBVAL_CHECK_OUTPUT
g = torch.Generator().manual_seed(0)
q, k = (torch.randn(2, 4, 64, 8, generator=g, dtype=torch.float64) for _ in range(2))
v = torch.randn(2, 4, 64, 5, generator=g, dtype=torch.float64)
eye = torch.eye(64, dtype=torch.float64)
out = linformer_attention_simple(q, k, v, eye, eye)
print(
    tuple(out.shape),
    "identity == full attention:",
    torch.allclose(out, ak.scaled_dot_product_attention(q, k, v)),
)
e, f = (torch.randn(16, 64, generator=g, dtype=torch.float64) / 4 for _ in range(2))
out = linformer_attention_simple(q, k, v, e, f)
print(
    tuple(out.shape),
    "== linformer_attention:",
    torch.allclose(out, linformer_attention(q, k, v, e, f)),
)

# %% [markdown]
# ## Exercise 3: positive random features
#
# Write `random_feature_map(x, w)`, the Performer's positive random features
#
# $$
# \phi(x) = \frac{1}{\sqrt m} \exp\!\left(W x - \frac{|x|^2}{2}\right),
# $$
#
# for every row of `x` `(..., n, d)`, with the `m` random directions as the rows of `w`
# `(m, d)`; return `(..., n, m)`. (No stabilisation: plain `torch.exp`.) For directions drawn
# from $N(0, I)$, $\phi(q)^\top \phi(k)$ is an unbiased estimate of $e^{q^\top k}$.


# %%
def random_feature_map(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Positive random features exp(w x - |x|^2 / 2) / sqrt(m): (..., n, d) -> (..., n, m)."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %% [markdown]
# The check compares with attnkit's `positive_random_features` and estimates
# $e^{q^\top k}$ for one query and one key from 100,000 features.

# %%
# NBVAL_CHECK_OUTPUT
g = torch.Generator().manual_seed(0)
x = torch.randn(3, 7, 16, generator=g, dtype=torch.float64)
w = torch.randn(32, 16, generator=g, dtype=torch.float64)
phi = random_feature_map(x, w)
ref = positive_random_features(x, w, is_query=True, stabilize=False)
print(tuple(phi.shape), "positive:", bool((phi > 0).all()), "== attnkit:", torch.allclose(phi, ref))
q1, k1 = 0.2 * torch.randn(2, 1, 16, generator=g, dtype=torch.float64)
w_many = torch.randn(100_000, 16, generator=g, dtype=torch.float64)
estimate = (random_feature_map(q1, w_many) @ random_feature_map(k1, w_many).T).item()
exact = math.exp((q1 @ k1.T).item())
print(f"exp(q.k) = {exact:.3f}, estimated within 2%: {abs(estimate / exact - 1) < 0.02}")

# %% [markdown]
# ## Exercise 4: BigBird's block layout
#
# Write `bigbird_block_layout(n_blocks, num_window_blocks, num_global_blocks,
# random_blocks)`: the bool `(n_blocks, n_blocks)` layout of BigBird, `True` where query
# block `i` attends key block `j`:
#
# - **window**: $|i - j| \le (\text{num_window_blocks} - 1) / 2$ (`num_window_blocks` is
#   odd: the block itself and as many neighbours on each side);
# - **global**: the first `num_global_blocks` blocks attend to every block (their *rows*
#   are all `True`) and every block attends to them (their *columns* are all `True`); if
#   `num_global_blocks` is at least `n_blocks`, every block is global;
# - **random**: `random_blocks[i]` is a list of key blocks that query block `i` also
#   attends to (in BigBird they are drawn at random; here they are given, so that the
#   answer is deterministic). It has one list per query block, possibly empty.


# %%
def bigbird_block_layout(
    n_blocks: int, num_window_blocks: int, num_global_blocks: int, random_blocks: list[list[int]]
) -> torch.Tensor:
    """BigBird's bool (n_blocks, n_blocks) layout: window + global + the given random blocks."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %% [markdown]
# The check prints a small layout, then takes a layout drawn by attnkit's `bigbird_layout`,
# reads off its random blocks, and rebuilds it with your function.

# %%
# NBVAL_CHECK_OUTPUT
print(bigbird_block_layout(6, 3, 1, [[], [4], [5], [5], [1], [2]]).int())
drawn = bigbird_layout(12, generator=torch.Generator().manual_seed(0))  # 3 + 1 + 2 blocks
base = bigbird_block_layout(12, 3, 1, [[] for _ in range(12)])
extra = [torch.nonzero(row).flatten().tolist() for row in drawn & ~base]
print("random blocks per row:", [len(cols) for cols in extra])
print("rebuilt == attnkit's layout:", torch.equal(bigbird_block_layout(12, 3, 1, extra), drawn))

# %% [markdown]
# ## Exercise 5: causal linear attention
#
# Write `causal_linear_attention(q, k, v)`: the linear transformer with feature map
# $\phi(x) = \mathrm{elu}(x) + 1$ (`F.elu(x) + 1`), causal, with **cumulative sums**:
#
# $$
# S_i = \sum_{j \le i} \phi(k_j)\, v_j^\top, \qquad z_i = \sum_{j \le i} \phi(k_j), \qquad
# o_i = \frac{\phi(q_i)^\top S_i}{\phi(q_i)^\top z_i} .
# $$
#
# - `q`, `k`: `(..., n, d)`, `v`: `(..., n, d_v)` → `(..., n, d_v)`. No scale.
# - `torch.cumsum(x, dim)` gives all the prefix sums at once; the `S_i` together have shape
#   `(..., n, d, d_v)` (fine for an exercise; attnkit avoids storing them by working in
#   chunks). Build the outer products $\phi(k_j) v_j^\top$ with `unsqueeze` and
#   broadcasting.


# %%
def causal_linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal linear attention with phi = elu + 1, by cumulative sums: (..., n, d_v)."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %% [markdown]
# The check compares with attnkit's chunked `linear_attention(causal=True)`, and verifies
# causality: the first output is the first value (it sees one key), and changing the last
# token changes no earlier output.

# %%
# NBVAL_CHECK_OUTPUT
g = torch.Generator().manual_seed(0)
q, k, v = (torch.randn(2, 3, 40, 8, generator=g, dtype=torch.float64) for _ in range(3))
out = causal_linear_attention(q, k, v)
print(
    tuple(out.shape),
    "== linear_attention(causal=True):",
    torch.allclose(out, linear_attention(q, k, v, causal=True)),
)
print("first output == first value:", torch.allclose(out[..., 0, :], v[..., 0, :]))
k2 = k.clone()
k2[..., -1, :] += 5.0
changed = causal_linear_attention(q, k2, v)
print("earlier outputs unchanged:", torch.allclose(changed[..., :-1, :], out[..., :-1, :]))

# %% [markdown]
# ## Done?
#
# Run `python -m attnkit.grade 07`. Then look back at chapter 7: exercises 1 and 4 make
# attention cheaper by computing only the scores a pattern allows, exercise 2 by scoring
# every query against $k$ projected keys instead of $n$, exercise 3 estimates the softmax
# itself, and exercise 5 is a recurrent network hiding inside attention.

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
# # The quadratic wall
#
# Chapters 1 to 4 used attention on sequences of at most a few hundred tokens, where its
# cost never showed. This chapter is about what happens when the sequence gets long.
# Every query is compared with every key, so self-attention over $n$ tokens builds an
# $n \times n$ matrix of scores in every head of every layer: double the length and that
# matrix, and the work to fill it, grow four times. This is the **quadratic wall**, and
# it is the reason a whole family of "efficient attention" methods exists (chapters 6 and 7).
#
# The same all-pairs structure is also attention's great strength: every position reaches
# every other in one step, and all positions are computed at once, which a recurrent
# network cannot do. By the end of this chapter you should be able to
#
# - count the floating-point operations and bytes of attention exactly, for one head and
#   for a whole layer, and say when the $n^2$ term dominates;
# - explain why the memory that grows with $n$ is **activations**, not parameters, and
#   show it;
# - measure time and peak memory against $n$, fit the exponent, and predict the memory of
#   naive attention from a formula;
# - reproduce Table 1 of the Transformer paper {cite:p}`vaswani2017attention` (cost per
#   layer, sequential operations, maximum path length) and check its claims about
#   recurrent networks by measurement.
#
# The seed text treats these questions in two sections, on the strengths and limits of
# self-attention (自注意力机制的优势和局限性) and on its core problems and challenges
# (自注意力机制的核心问题和挑战). Its headline, quadratic cost, is right up to a missing
# factor; its account of the memory is wrong, and several other claims are half right.
# Each erratum gets a short box where the chapter measures the topic.
#
# All code uses the companion package `attnkit` (imported as `ak`) and its benchmark module
# `attnkit.bench`; plain `torch` appears only to *check* what the library does.

# %%
import functools
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from myst_nb import glue
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import attnkit as ak
from attnkit import bench

torch.manual_seed(0)
# One thread: the book runs its chapters side by side, one thread each, so every number
# below is the same on any machine, however many cores it has and however busy it is
# (timings aside).
torch.set_num_threads(1)
torch.set_printoptions(precision=4, sci_mode=False)
plt.rcParams.update({"figure.dpi": 100, "axes.grid": False})
print("torch", torch.__version__, "| attnkit", ak.__version__)

# %% [markdown]
# (ch05-cost)=
# ## Where the cost is
#
# ### One head, counted
#
# Take one head with $n$ queries, $n$ keys and $n$ values, each of width $d$ (the head
# dimension $d_k = d_v = d$). Chapter 1's three steps cost:
#
# | step | result | multiply-adds | other operations |
# |---|---|---|---|
# | $S = QK^\top / \sqrt{d}$ | $n \times n$ scores | $n \cdot n \cdot d$ | $n^2$ scalings |
# | $A = \mathrm{softmax}(S)$ | $n \times n$ weights | none | about $5 n^2$: max, subtract, exp, sum, divide |
# | $O = AV$ | $n \times d$ outputs | $n \cdot n \cdot d$ | none |
#
# We count **one multiply-add as two floating-point operations (FLOPs)**, a multiply and
# an add. This is the convention of `torch.utils.flop_counter` and of most hardware peak
# figures; some papers count multiply-adds instead, which halves every number. Counting
# only the two matrix products, one head costs
#
# $$
# \text{FLOPs}_{\text{head}} = 2 \cdot n^2 d + 2 \cdot n^2 d = 4 n^2 d ,
# $$
#
# and the softmax adds a few times $n^2$ more, a small fraction when $d \ge 64$. Time is
# therefore $O(n^2 d)$. Memory: the inputs and the output hold $4nd$ numbers, but $S$ and
# $A$ hold $n^2$ each, and for $n > 4d$ they are the largest things in the computation.
#
# PyTorch can count the FLOPs of what actually runs. `FlopCounterMode` records every
# matrix product executed inside it; here it watches `bench.naive_attention`, the textbook
# `softmax(q k^T / sqrt(d)) v` of the benchmark module, on a single head.


# %%
def matmul_flops(fn, *args, **kwargs):
    """FLOPs of the matrix products run by fn(*args, **kwargs), counted by PyTorch."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn(*args, **kwargs)
    return counter.get_total_flops()


print("    n |   d | counted by torch | formula 4 n^2 d")
for n, d in ((128, 64), (256, 64), (256, 128), (1024, 64)):
    q, k, v = bench.make_inputs(n, d=d, batch=1, heads=1)  # (1, 1, n, d) each
    counted = matmul_flops(bench.naive_attention, q, k, v)
    assert counted == 4 * n * n * d, (
        f"expected FLOPs 4 n^2 d = {4 * n * n * d:,} for n = {n}, d = {d};"
        f" torch counted {counted:,}"
    )
    print(f"{n:5d} | {d:3d} | {counted:16,d} | {4 * n * n * d:15,d}")

# %% [markdown]
# Doubling $n$ multiplies the count by 4; doubling $d$ multiplies it by 2.
#
# ### A whole layer: when does $n^2$ win?
#
# Multi-head attention (chapter 2) with $H$ heads of width $d = d_{\text{model}} / H$ runs
# the head above $H$ times, and adds four projections $W_Q, W_K, W_V, W_O$ of size
# $d_{\text{model}} \times d_{\text{model}}$, each applied to $n$ tokens:
#
# $$
# \text{FLOPs}_{\text{layer}}
# = \underbrace{4 \cdot 2\, n\, d_{\text{model}}^2}_{\text{projections}}
# + \underbrace{H \cdot 4 n^2 d}_{QK^\top \text{ and } AV}
# = 8\, n\, d_{\text{model}}^2 + 4\, n^2 d_{\text{model}} .
# $$
#
# The projections are linear in $n$ and the attention core is quadratic; the two are equal
# at $n = 2 d_{\text{model}}$. Below that length most of the arithmetic of an attention
# layer is in its projections, not in the all-pairs part. `ak.MultiHeadAttention` with the
# base Transformer's sizes ($d_{\text{model}} = 512$, $H = 8$), counted by PyTorch:

# %%
torch.manual_seed(0)
d_model, H = 512, 8
mha = ak.MultiHeadAttention(d_model, H)
print("    n | counted by torch | 8 n d^2 + 4 n^2 d | share of QK^T and AV")
for n in (128, 512, 1024, 2048):
    counted = matmul_flops(mha, torch.randn(1, n, d_model))
    projections, core = 8 * n * d_model**2, 4 * n * n * d_model
    assert counted == projections + core, (
        f"expected FLOPs 8 n d^2 + 4 n^2 d = {projections + core:,} for n = {n};"
        f" torch counted {counted:,}"
    )
    assert (core == projections) == (n == 2 * d_model), (  # the two parts are equal at n = 1024
        "claim no longer holds: 'the two are equal at n = 2 d_model'"
        f" (n = {n}: core {core:,}, projections {projections:,})"
    )
    print(f"{n:5d} | {counted:16,d} | {projections + core:17,d} | {core / counted:8.0%}")

# %% [markdown]
# At $n = 1024 = 2 d_{\text{model}}$ the two parts are equal, as predicted. The quadratic
# part takes over from there: its share is $n / (n + 2 d_{\text{model}})$, so at
# $n = 8192$ it would be $8/9$ of the layer's arithmetic.
#
# (ch05-memory)=
# ### Parameters stay, activations grow
#
# The weight matrices of an attention layer are $W_Q, W_K, W_V, W_O$ and their biases:
# $4 d_{\text{model}}^2 + 4 d_{\text{model}}$ numbers. **None of their shapes involves
# $n$.** The $n \times n$ matrices $S$ and $A$ are *activations*: they are computed from
# each input, used, and thrown away, and a new input of another length gets new ones.
# We run the same module on four lengths, asking for the attention weights each time:

# %%
n_params = ak.count_parameters(mha)
assert n_params == 4 * d_model**2 + 4 * d_model == 1_050_624, (  # the number quoted below
    "claim no longer holds: 'we counted their parameters above: the same 1,050,624'"
    f" (count_parameters: {n_params:,}, 4 d^2 + 4 d = {4 * d_model**2 + 4 * d_model:,})"
)
print("parameter shapes:", {name: tuple(p.shape) for name, p in mha.named_parameters()})
print(f"4 d^2 + 4 d = {4 * d_model**2 + 4 * d_model:,} | count_parameters: {n_params:,}")
print("\n    n | parameters | attention weights (B, H, n, n) | their size | size / parameters")
lengths = (64, 256, 1024, 2048)
weight_bytes = []
with torch.no_grad():
    for n in lengths:
        _, w = mha(torch.randn(1, n, d_model), need_weights=True)  # w: (1, 8, n, n)
        assert ak.count_parameters(mha) == n_params, (  # running it changed nothing
            "claim no longer holds: 'None of their shapes involves n'"
            f" (n = {n}: {ak.count_parameters(mha):,} parameters, expected {n_params:,})"
        )
        weight_bytes.append(w.numel() * w.element_size())
        print(
            f"{n:5d} | {ak.count_parameters(mha):10,d} | {tuple(w.shape)!s:>30} |"
            f" {weight_bytes[-1] / 2**20:7.1f} MiB | {weight_bytes[-1] / (4 * n_params):7.2f}"
        )

# %%
n_grid = np.logspace(np.log10(32), np.log10(8192), 100)
n_equal = math.sqrt(n_params / H)  # H n^2 = number of parameters
glue("ch05_n_equal", n_equal, display=False)
fig, ax = plt.subplots(figsize=(7, 4.2))
ax.loglog(n_grid, np.full_like(n_grid, 4 * n_params / 2**20), label="parameters (float32)")
ax.loglog(n_grid, H * n_grid**2 * 4 / 2**20, "--", label="attention weights $B H n^2$ (float32)")
ax.loglog(lengths, np.array(weight_bytes) / 2**20, "o", label="measured: the tensors returned")
ax.axvline(n_equal, color="gray", lw=0.8, ls=":")
ax.text(n_equal * 1.08, 0.05, f"equal at n = {n_equal:.0f}", color="gray")
ax.set_xlabel("sequence length $n$")
ax.set_ylabel("MiB, one layer, batch of one")
ax.set_title("MultiHeadAttention(512, 8): parameters vs attention weights")
ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure: the parameters of the layer are a flat line; its attention weights grow with
# slope 2 on a log-log plot and pass the parameters at
# $n \approx$ {glue:text}`ch05_n_equal:.0f` tokens, for a single sequence.*
#
# ### In training, the $n \times n$ tensors wait for the backward pass
#
# At inference each layer's $n \times n$ tensors can be freed as soon as the layer is done.
# In training they cannot: to compute gradients, autograd keeps the tensors that the
# backward pass needs, for every layer, until the backward pass reaches it. PyTorch lets us
# watch what it keeps with `torch.autograd.graph.saved_tensors_hooks`;
# `bench.saved_for_backward` does it, and is short enough to read:

# %%
import inspect

print(inspect.getsource(bench.saved_for_backward))

# %% [markdown]
# We count the saved tensors of size $B H n^2$ for three implementations of the same
# function.

# %%
n = 512
q, k, v = (t.requires_grad_() for t in bench.make_inputs(n))  # (1, 4, 512, 64) each
nn_bytes = q.shape[0] * q.shape[1] * n * n * 4  # one (B, H, n, n) float32 tensor
print(f"one (B, H, n, n) tensor: {nn_bytes / 2**20:.0f} MiB")
kept_n_by_n = []  # how many n x n tensors each implementation keeps
for name, fn in (
    ("attnkit reference (ak.scaled_dot_product_attention)", ak.scaled_dot_product_attention),
    ("naive with torch.softmax (bench.naive_attention)", bench.naive_attention),
    ("torch fused kernel (F.scaled_dot_product_attention)", F.scaled_dot_product_attention),
):
    sizes = bench.saved_for_backward(lambda fn=fn: fn(q, k, v))
    n_by_n = sum(s >= nn_bytes for s in sizes)
    kept_n_by_n.append(n_by_n)
    print(f"{name:<53}: keeps {n_by_n} n x n tensors, {sum(sizes) / 2**20:5.1f} MiB in all")
assert kept_n_by_n == [3, 1, 0], f"claim: 'three, one and none' (measured {kept_n_by_n})"

# %% [markdown]
# attnkit's reference implementation, written for clarity and for safe masking, keeps
# three (the scores, their exponentials and the weights); the naive version with
# `torch.softmax` keeps one, the weights $A$, which both the softmax and the product $AV$
# need for their gradients; PyTorch's fused kernel keeps none (only its inputs, its
# output and one number per query row, the logarithm of the softmax denominator) and
# recomputes what it needs during the backward pass. That
# recomputation is the idea of FlashAttention {cite:p}`dao2022flashattention`, which
# chapter 6 builds.
#
# (ch05-seed-memory)=
# ### Weight matrices and attention weights
#
# ```{admonition} Seed erratum E6 · 优势和局限性 (line 85; 101–103, 161, 176–178)
# :class: seed-erratum
# The seed says: 「由于需要存储大量的权重矩阵，自注意力机制可能需要更多的存储资源」;
# 「存储需求 $= O(5 \times 5) = O(25)$ 权重矩阵」
# **Correction:** the weight matrices $W_Q, W_K, W_V, W_O$ are four per layer whatever $n$
# is; what grows like $n^2$ is the attention-weights activation, one $n \times n$ matrix
# per head (25 numbers for five tokens, not 25 matrices). Entry: {ref}`E6 <errata-e6>`;
# evidence: {ref}`ch05-seed-memory`.
# ```
#
# We counted the parameters above: the same 1,050,624 at every length. What grows like
# $n^2$ is the tensor of attention *weights* $A$ (and the scores $S$): activations, $H$
# matrices of $n \times n$ numbers per layer, recomputed for every input and, in training,
# kept until the backward pass. The word "weights" has two meanings here, learned
# parameters and attention probabilities, and they behave differently: the parameters are
# paid for once, while the activations are paid again for every sequence in a batch, and
# they are what limits the context length.
#
# (ch05-seed-n1000)=
# ### Attention at $n = 1000$, counted
#
# ```{admonition} Seed erratum E8 · 优势和局限性 (line 98; 173)
# :class: seed-erratum
# The seed says: 「复杂度 $= O(5 \times 5) = O(25)$」; 「复杂度 $= O(1000^2) = 10^6$」
# **Correction:** $O(\cdot)$ describes growth, so $O(25) = O(1)$ says nothing; the count
# the examples are after is $4 n^2 d$ FLOPs per head for $QK^\top$ and $AV$, not $n^2$.
# Entry: {ref}`E8 <errata-e8>`; evidence: {ref}`ch05-seed-n1000`.
# ```
#
# $10^6$ is the number of (query, key) *pairs* at $n = 1000$; the real cost has factors a
# pair count drops: the width $d$ of each head, the number of heads $H$, the 2 FLOPs per
# multiply-add, and the two matrix products. With $d = 64$ and $H = 8$
# ($d_{\text{model}} = 512$), per layer and per sequence:

# %%
n, d, H = 1000, 64, 8
d_model = d * H
core_flops = 4 * H * n * n * d  # QK^T and AV, 2 FLOPs per multiply-add
projection_flops = 8 * n * d_model**2  # W_Q, W_K, W_V, W_O
score_bytes = H * n * n * 4  # one (H, n, n) float32 tensor
layer_param_bytes = (4 * d_model**2 + 4 * d_model) * 4
torch.manual_seed(0)
layer = ak.MultiHeadAttention(d_model, H)
x = torch.randn(1, n, d_model)
assert matmul_flops(layer, x) == core_flops + projection_flops, (
    f"expected the layer's FLOPs to be {core_flops + projection_flops:,};"
    f" torch counted {matmul_flops(layer, x):,}"
)
with torch.no_grad():
    _, w = layer(x, need_weights=True)
assert w.numel() * w.element_size() == score_bytes, (
    f"expected the (H, n, n) weights to take {score_bytes:,} bytes;"
    f" found {w.numel() * w.element_size():,} (shape {tuple(w.shape)}, {w.dtype})"
)

print(f"pairs (query, key) per head     : {n * n:>13,d}   (10^6)")
print(f"softmax entries, all heads      : {H * n * n:>13,d}")
print(f"FLOPs of QK^T and AV            : {core_flops:>13,d}   = {core_flops / 1e6:,.0f} x 10^6")
print(f"FLOPs of the four projections   : {projection_flops:>13,d}")
print(f"FLOPs of the layer (checked)    : {core_flops + projection_flops:>13,d}")
print(
    f"one score tensor (H, n, n) fp32 : {score_bytes:>13,d} bytes = {score_bytes / 2**20:.1f} MiB"
)
print(f"naive peak: scores + weights    : {2 * score_bytes:>13,d} bytes")
print(f"the layer's parameters, fp32    : {layer_param_bytes:>13,d} bytes")
batch, layers = 32, 6
print(
    f"kept for backward, batch {batch}, {layers} layers, one n x n tensor per head: "
    f"{batch * layers * score_bytes / 2**30:.1f} GiB"
)
# The figures quoted in the next paragraph:
glue("ch05_n1000_core_factor", core_flops // (n * n), display=False)  # 2 * 2 * d * H
glue("ch05_n1000_layer_gflop", (core_flops + projection_flops) / 1e9, display=False)
glue("ch05_n1000_score_mib", score_bytes / 2**20, display=False)
glue("ch05_n1000_peak_mib", 2 * score_bytes / 2**20, display=False)
glue("ch05_n1000_param_mib", layer_param_bytes / 2**20, display=False)
glue("ch05_n1000_score_over_params", score_bytes / layer_param_bytes, display=False)
glue("ch05_n1000_backward_gib", batch * layers * score_bytes / 2**30, display=False)

# %% [markdown]
# So the work per layer is {glue:text}`ch05_n1000_layer_gflop:.1f` $\times 10^9$ FLOPs, not
# $10^6$: the $10^6$ pairs are multiplied by $2 \times 2 \times d \times H =$
# {glue:text}`ch05_n1000_core_factor:d` for the attention core alone, and the projections add
# as much again at this length ($n \approx 2 d_{\text{model}}$). The memory is one
# {glue:text}`ch05_n1000_score_mib:.1f` MiB tensor of scores per layer and per sequence
# ({glue:text}`ch05_n1000_peak_mib:.0f` MiB at the peak of the naive computation, which holds
# scores and weights at once), {glue:text}`ch05_n1000_score_over_params:.1f` times the layer's
# {glue:text}`ch05_n1000_param_mib:.1f` MiB of parameters. Training a 6-layer encoder on
# batches of 32 such sequences keeps at least {glue:text}`ch05_n1000_backward_gib:.1f` GiB of
# attention weights alone for the backward pass.

# %% [markdown]
# (ch05-measured)=
# ## Measured: the wall on this machine
#
# Formulas predict exponents; a benchmark shows whether they hold on real hardware, where
# memory traffic, caches and thread start-up also cost time. `attnkit.bench` measures one
# attention call on inputs of shape $(B, H, n, d)$ in float32:
#
# - Time: the **minimum** wall-clock time over several runs after a warm-up (what
#   `bench.time_call(fn)` returns); the minimum is the least noisy estimate on a shared
#   machine. Where two methods are compared, we time them *in turn*, call by call
#   (`bench.time_in_turns`), so that whatever else runs on the machine slows both alike
#   and their ratio stays fair.
# - `bench.peak_extra_memory(method, n)` starts a **fresh Python process**, warms the
#   method up on a short input, runs the call once, and reports how far the process's
#   resident memory rose above where it started (the kernel's high-water mark). A fresh
#   process means that memory left over from earlier cells cannot hide or inflate the
#   result.
#
# We compare two methods: `"naive"`, the textbook formula that forms $S$ and $A$, and
# `"torch_sdpa"`, PyTorch's fused `F.scaled_dot_product_attention`, which computes the same
# function. Sizes: $B = 1$, $H = 4$, $d = 64$, $n$ from 256 to 4096, one thread (like the
# whole book). The timings depend on the machine and on what else runs on it: the text
# quotes them as "on the machine that built this page", and only the memory, a property of
# the algorithm, is asserted.


# %%
# NBVAL_IGNORE_OUTPUT
ns = [256, 512, 1024, 2048, 4096]
B, H, D = 1, 4, 64  # attnkit.bench's default sizes
methods = ("naive", "torch_sdpa")
seconds = {m: [] for m in methods}
peak = {m: [] for m in methods}
for n in ns:
    q, k, v = bench.make_inputs(n, d=D, batch=B, heads=H)  # (B, H, n, D) each
    g = torch.Generator().manual_seed(0)
    calls = {m: functools.partial(bench.METHODS[m].build(n, D, g), q, k, v) for m in methods}
    best = bench.time_in_turns(calls, repeats=5 if n <= 1024 else 3)
    for m in methods:
        seconds[m].append(best[m])
        peak[m].append(bench.peak_extra_memory(m, n, d=D, batch=B, heads=H, threads=1))
del q, k, v, calls

print("    n | naive: ms | peak MiB | formula 2 B H n^2 4 | torch SDPA: ms | peak MiB")
for i, n in enumerate(ns):
    formula = 2 * B * H * n * n * 4
    print(
        f"{n:5d} | {1e3 * seconds['naive'][i]:9.1f} | {peak['naive'][i] / 2**20:8.1f} |"
        f" {formula / 2**20:15.1f} MiB | {1e3 * seconds['torch_sdpa'][i]:14.1f} |"
        f" {peak['torch_sdpa'][i] / 2**20:8.1f}"
    )

# %% [markdown]
# The formula column is the memory that the naive computation must hold at its peak: two
# $(B, H, n, n)$ float32 tensors, the scores and the output of the softmax, which exist at
# the same time. Each takes $B H n^2 \times 4$ bytes.

# %%
# NBVAL_IGNORE_OUTPUT
time_slope = bench.loglog_slope(ns, seconds["naive"])
time_slope_long = bench.loglog_slope(ns[2:], seconds["naive"][2:])
sdpa_time_slope = bench.loglog_slope(ns, seconds["torch_sdpa"])
print(f"naive time slope, n = 256..4096  : {time_slope:.1f}")
print(f"naive time slope, n = 1024..4096 : {time_slope_long:.1f}")
print(f"torch SDPA time slope            : {sdpa_time_slope:.1f}")
flops_4096 = 4 * B * H * ns[-1] ** 2 * D
for m in methods:
    rate = flops_4096 / seconds[m][-1] / 1e9
    print(
        f"{m:>10} at n = 4096: {flops_4096 / 1e9:.1f} GFLOP in matrix products, {rate:.0f} GFLOP/s"
    )
naive_over_sdpa_4096 = seconds["naive"][-1] / seconds["torch_sdpa"][-1]
print(f"naive time / torch SDPA time at n = 4096: {naive_over_sdpa_4096:.1f}")
glue("ch05_naive_time_slope", time_slope, display=False)
glue("ch05_naive_time_slope_long", time_slope_long, display=False)
glue("ch05_naive_over_sdpa_4096", naive_over_sdpa_4096, display=False)

# %% [markdown]
# On the machine that built this page, the naive time grew with log-log slope
# {glue:text}`ch05_naive_time_slope_long:.1f` between $n = 1024$ and $4096$ and
# {glue:text}`ch05_naive_time_slope:.1f` over the whole range: short sequences finish too
# fast for the $n^2$ term to dominate (fixed costs per call, cache effects), and at long
# lengths the $n \times n$ tensors no longer fit in the caches, which can push the slope
# above 2. At $n = 4096$ naive attention took {glue:text}`ch05_naive_over_sdpa_4096:.1f`
# times as long as the fused kernel. Those are facts about one machine on one day. The
# memory is a fact about the algorithm, and these checks hold on any machine, so the
# book's build asserts them:

# %%
mem_slope = bench.loglog_slope(ns, peak["naive"])
ratio_4096 = peak["naive"][-1] / (2 * B * H * ns[-1] ** 2 * 4)
out_bytes = B * H * ns[-1] * D * 4  # the output of one call at n = 4096
assert 1.8 <= mem_slope <= 2.2, f"claim: 'naive memory has slope 2' (measured {mem_slope:.2f})"
assert 0.9 <= ratio_4096 <= 1.25, f"claim: 'naive peak matches the formula' ({ratio_4096:.3f})"
assert peak["torch_sdpa"][-1] < peak["naive"][-1] / 20, "claim: 'SDPA needs < 1/20 of naive'"
assert peak["torch_sdpa"][-1] < 3 * out_bytes, "claim: 'SDPA's peak is close to its output'"
print("naive memory slope between 1.8 and 2.2:", 1.8 <= mem_slope <= 2.2)
print("naive peak at n = 4096 between 0.9 and 1.25 times the formula:", 0.9 <= ratio_4096 <= 1.25)
print(
    "torch SDPA peak at n = 4096 below 1/20 of naive:",
    peak["torch_sdpa"][-1] < peak["naive"][-1] / 20,
)
print(
    "torch SDPA peak at n = 4096 below 3 times its output:", peak["torch_sdpa"][-1] < 3 * out_bytes
)
glue("ch05_sdpa_peak_mib_4096", peak["torch_sdpa"][-1] / 2**20, display=False)
glue("ch05_out_mib_4096", out_bytes / 2**20, display=False)
glue("ch05_naive_formula_mib_4096", 2 * B * H * ns[-1] ** 2 * 4 / 2**20, display=False)

# %%
# NBVAL_IGNORE_OUTPUT
print(f"naive memory slope: {mem_slope:.2f} | measured / formula at n = 4096: {ratio_4096:.3f}")
print(f"torch SDPA memory slope: {bench.loglog_slope(ns, peak['torch_sdpa']):.2f}")
print(
    f"torch SDPA at n = 4096: {peak['torch_sdpa'][-1] / 2**20:.1f} MiB;"
    f" the output alone: {out_bytes / 2**20:.1f} MiB"
)

# %%
# NBVAL_IGNORE_OUTPUT
ns_arr = np.array(ns, dtype=float)
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
for m, label in (("naive", "naive softmax(QK^T)V"), ("torch_sdpa", "torch SDPA (fused)")):
    ax1.loglog(ns, 1e3 * np.array(seconds[m]), "o-", base=2, label=label)
    ax2.loglog(ns, np.array(peak[m]) / 2**20, "o-", base=2, label=label)
ref = 1e3 * seconds["naive"][-1] * (ns_arr / ns[-1]) ** 2
ax1.loglog(ns, ref, "k:", base=2, label="slope 2")
ax2.loglog(
    ns, 2 * B * H * ns_arr**2 * 4 / 2**20, "k--", base=2, label="formula: 2 B H n² × 4 bytes"
)
ax1.set(xlabel="sequence length $n$", ylabel="forward time (ms, min of repeats)")
ax1.set_title(f"Time, (B, H, d) = ({B}, {H}, {D}), float32, 1 thread")
ax2.set(xlabel="sequence length $n$", ylabel="peak extra memory (MiB)")
ax2.set_title("Peak extra memory (fresh process per point)")
for ax in (ax1, ax2):
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure: left, the forward times on the machine that built this page, with a line of
# slope 2 for comparison; right, the naive peak memory sits on the formula for two
# $n \times n$ float32 tensors, while the fused kernel's memory stays far lower (below
# 1/20 of it at $n = 4096$, asserted above) and grows far more slowly.*
#
# ### The fused kernel already climbs the wall
#
# PyTorch's `F.scaled_dot_product_attention` gives the same output as the naive formula
# (chapter 1 checked it), yet its peak memory at $n = 4096$ is
# {glue:text}`ch05_sdpa_peak_mib_4096:.1f` MiB, close to the
# {glue:text}`ch05_out_mib_4096:.0f` MiB of its output, instead of
# {glue:text}`ch05_naive_formula_mib_4096:.0f` MiB. On CPU it dispatches to a
# *flash-attention* kernel:
# we can allow only that back-end and check that it runs and agrees with the naive formula.

# %%
q, k, v = bench.make_inputs(1024)
with sdpa_kernel(SDPBackend.FLASH_ATTENTION):  # raises if no flash kernel can run
    flash_out = F.scaled_dot_product_attention(q, k, v)
same = torch.allclose(flash_out, bench.naive_attention(q, k, v), atol=1e-5)
assert same, "claim: 'the flash back-end agrees with the naive formula'"
print("flash back-end == naive formula (float32, atol 1e-5):", same)

# %% [markdown]
# Such a kernel never forms $S$ or $A$: it walks over the keys in blocks, keeps for every
# query a running maximum, a running sum of exponentials and a running weighted sum of
# values, and rescales them as each block arrives (the *online softmax*). The arithmetic is
# the same $4 n^2 d$ FLOPs per head, so the time is still quadratic, but the memory is
# linear in $n$. It can save time as well, because the scores never make the round trip
# through main memory; how much depends on the machine (on the one that built this page,
# naive attention took {glue:text}`ch05_naive_over_sdpa_4096:.1f` times as long at
# $n = 4096$). Chapter 6 derives this algorithm and builds it.

# %% [markdown]
# (ch05-parallel)=
# ## Why attention parallelises and a recurrent network does not
#
# ### Sequential operations and path length
#
# A recurrent network (RNN) reads a sequence one token at a time,
#
# $$
# h_t = f(h_{t-1}, x_t), \qquad t = 1, \dots, n ,
# $$
#
# so $h_t$ cannot start before $h_{t-1}$ is finished: **$n$ sequential steps**, however
# many processors are available. Information from $x_1$ reaches $h_n$ only through
# $n - 1$ applications of $f$: the **path length** between the two positions is $O(n)$.
# Self-attention computes all $n$ outputs with a fixed number of matrix products, none of
# which waits for another position: $O(1)$ sequential operations, and every pair of
# positions is one step apart, path length $O(1)$. What attention pays instead is the
# $n^2$ of the previous sections.
#
# Vaswani et al. compare the layer types in their Table 1 {cite:p}`vaswani2017attention`
# (section 4, "Why Self-Attention"), with $n$ the length, $d$ the representation size, $k$
# the kernel width of a convolution and $r$ the size of the neighbourhood in restricted
# (local) self-attention:
#
# | layer type | complexity per layer | sequential operations | maximum path length |
# |---|---|---|---|
# | self-attention | $O(n^2 \cdot d)$ | $O(1)$ | $O(1)$ |
# | recurrent | $O(n \cdot d^2)$ | $O(n)$ | $O(n)$ |
# | convolutional | $O(k \cdot n \cdot d^2)$ | $O(1)$ | $O(\log_k n)$ |
# | self-attention (restricted) | $O(r \cdot n \cdot d)$ | $O(1)$ | $O(n / r)$ |
#
# The convolutional path length assumes dilated convolutions; with contiguous kernels a
# stack needs $O(n/k)$ layers to connect all positions. The paper's conclusion: self-attention
# is cheaper per layer than a recurrent layer when $n < d$, which was the usual case for
# sentence-level translation, and it wins on the other two columns at every length. Putting
# numbers into the $O(\cdot)$ expressions as they stand (constants set to 1, so only
# comparisons within a column mean anything), with $d = 512$, $k = 3$, $r = 64$:

# %%
d, kernel, r = 512, 3, 64
rows = {
    "self-attention": (lambda n: n * n * d, lambda n: 1, lambda n: 1),
    "recurrent": (lambda n: n * d * d, lambda n: n, lambda n: n),
    "convolutional (dilated)": (
        lambda n: kernel * n * d * d,
        lambda n: 1,
        lambda n: math.log(n, kernel),
    ),
    "self-attention (restricted)": (lambda n: r * n * d, lambda n: 1, lambda n: n / r),
}
print(f"{'layer type':<28} | {'n':>6} | {'ops per layer':>15} | {'sequential':>10} | {'path':>7}")
for n in (100, 1000, 10000):
    for name, (ops, seq, path) in rows.items():
        print(f"{name:<28} | {n:6d} | {ops(n):15.3g} | {seq(n):10d} | {path(n):7.1f}")
    print()
# The ratios quoted next: self-attention's work over the recurrent layer's is n / d.
attention_ops, rnn_ops = rows["self-attention"][0], rows["recurrent"][0]
attention_over_rnn = {n: attention_ops(n) / rnn_ops(n) for n in (100, 1000, 10000)}
assert [round(r, 1) for r in attention_over_rnn.values()] == [0.2, 2.0, 19.5], attention_over_rnn

# %% [markdown]
# At $n = 100$ self-attention does a fifth of the recurrent layer's work; at $n = 1000$
# twice as much; at $n = 10\,000$ twenty times as much, while still needing one
# sequential step instead of $10\,000$.
#
# ### The sequential depth, counted
#
# "Sequential operations" can be measured. When PyTorch runs a computation with gradients
# enabled, it records a graph of the operations it will have to differentiate and of what
# each one depends on. The
# longest chain of dependent operations in that graph, from the output back to the input,
# is the number of steps that must run one after another, however many processors there
# are (the *critical path*). We measure it for a GRU, a gated RNN (`torch.nn.GRU`), and for
# `ak.MultiHeadAttention`, both mapping $(B, n, d_{\text{model}})$ to
# $(B, n, d_{\text{model}})$.


# %%
def critical_path(out: torch.Tensor) -> int:
    """Longest chain of dependent operations in the autograd graph that produced out."""
    order, seen, stack = [], set(), [(out.grad_fn, False)]
    while stack:  # iterative depth-first search; children are finished before parents
        node, finished = stack.pop()
        if finished:
            order.append(node)
        elif node is not None and node not in seen:
            seen.add(node)
            stack.append((node, True))
            stack.extend((child, False) for child, _ in node.next_functions if child is not None)
    depth = {}
    for node in order:
        children = [depth[c] for c, _ in node.next_functions if c is not None]
        depth[node] = 1 + max(children, default=0)
    return depth[out.grad_fn]


torch.manual_seed(0)
d_model = 64
gru = torch.nn.GRU(d_model, d_model, batch_first=True)
attn = ak.MultiHeadAttention(d_model, 4)
print("    n | GRU: dependent operations | attention: dependent operations")
depth_ns = (16, 64, 256, 1024)
depths = {"gru": [], "attn": []}
for n in depth_ns:
    x = torch.randn(1, n, d_model, requires_grad=True)
    depths["gru"].append(critical_path(gru(x)[0]))
    depths["attn"].append(critical_path(attn(x)[0]))
    print(f"{n:5d} | {depths['gru'][-1]:25d} | {depths['attn'][-1]:31d}")
per_token = np.diff(depths["gru"]) / np.diff(depth_ns)
print("GRU: extra dependent operations per extra token:", per_token)
assert set(per_token) == {10.0} and len(set(depths["attn"])) == 1, (
    "claim no longer holds: 'The GRU's chain grows by exactly 10 operations per token ..."
    " The attention layer's chain has the same length at every n'"
    f" (measured per token: {per_token.tolist()}, attention depths: {depths['attn']})"
)

# %% [markdown]
# The GRU's chain grows by exactly 10 operations per token: each step's gates wait for the
# previous hidden state. The attention layer's chain has the same length at every $n$:
# a longer sequence makes its operations *bigger* (more rows in each matrix product),
# never *longer*. Bigger operations are what parallel hardware is built for.
#
# ### Path length, seen through gradients
#
# The path length column is about how directly one position can influence another. The
# gradient $\partial y_n / \partial x_{n-k}$ of the last output with respect to the input
# $k$ positions earlier measures that influence. In the GRU it must pass through $k$
# recurrent steps; in attention, through one softmax, whatever $k$ is. Both modules are
# untrained (PyTorch's default initialisation), in float64, averaged over 16 random
# sequences of length 64.

# %%
torch.manual_seed(0)
n, d_model, batch = 64, 64, 16
x = torch.randn(batch, n, d_model, dtype=torch.float64, requires_grad=True)
gru = torch.nn.GRU(d_model, d_model, batch_first=True).double()
attn = ak.MultiHeadAttention(d_model, 4).double()
influence = {}
for name, module in (("GRU", gru), ("attention", attn)):
    (grad,) = torch.autograd.grad(module(x)[0][:, -1].sum(), x)  # d y_last / d x
    influence[name] = grad.norm(dim=-1).mean(0).flip(0)  # (n,) indexed by distance k

fig, ax = plt.subplots(figsize=(7, 4))
for name, values in influence.items():
    ax.semilogy(range(n), values.numpy(), label=name)
ax.set_xlabel("distance $k$ between the output and the input position")
ax.set_ylabel(r"mean $\| \partial y_n / \partial x_{n-k} \|$")
ax.set_title("Influence of an input on the last output (untrained, d = 64)")
ax.legend()
fig.tight_layout()
plt.show()
for name, values in influence.items():
    print(
        f"{name:>9}: k = 1: {values[1]:.2e} | k = 16: {values[16]:.2e} | k = 63: {values[63]:.2e}"
    )
gru_decay = (influence["GRU"][63] / influence["GRU"][1]).item()
attn_far_near = (influence["attention"][32:].mean() / influence["attention"][1:32].mean()).item()
assert gru_decay < 1e-9 and 0.5 < attn_far_near < 2, (
    "claim no longer holds: 'through the GRU the influence of an input shrinks geometrically"
    " [below 1e-9 of k = 1 at k = 63]; through attention it does not depend on the distance"
    f" [far/near within a factor 2]' (measured {gru_decay:.3g} and {attn_far_near:.3g})"
)
glue("ch05_gru_decay_orders", -math.log10(gru_decay), display=False)
print("GRU: influence at k = 63 below 1e-9 of k = 1:", gru_decay < 1e-9)
print("attention: far (k >= 32) and near (1 <= k < 32) within a factor 2:", 0.5 < attn_far_near < 2)

# %% [markdown]
# *Figure: through the GRU the influence of an input shrinks geometrically with its
# distance, by {glue:text}`ch05_gru_decay_orders:.0f` orders of magnitude from $k = 1$ to
# $k = 63$; through attention it does not depend on the distance at all (the peak at $k = 0$ is the last position itself,
# which is also the query).*
#
# Training can teach a gated RNN to carry information further than this, which is what the
# gates are for; but the signal still has to survive $k$ steps. In attention it does not
# have to survive anything. (Attention also has no *notion* of distance: without
# positional information it cannot tell near from far at all, chapter 2.)
#
# ### Wall-clock: a GRU against attention
#
# Fewer sequential steps do not automatically mean less time: attention does more
# arithmetic. For $B$ sequences of width $d_{\text{model}}$, a GRU layer performs
# $3 \times 2$ products of a $d_{\text{model}}$-vector with a
# $d_{\text{model}} \times d_{\text{model}}$ matrix per token, $12\, B\, n\, d_{\text{model}}^2$
# FLOPs; attention performs $8\, B\, n\, d_{\text{model}}^2 + 4\, B\, n^2 d_{\text{model}}$.
# They do equal work at $n = d_{\text{model}}$. Below that, attention does less arithmetic
# *and* has fewer sequential steps; above it, attention does more arithmetic, but in large
# products that use the hardware better than the GRU's $n$ small steps. Somewhere the
# growing $n^2$ must win. We time one forward pass of `torch.nn.GRU` and of
# `ak.MultiHeadAttention` (attnkit's reference attention, and with `fused=True`, PyTorch's
# fused kernel) on the same input, one sequence of width 256 with 8 heads.
#
# These timings use **one thread**, like the whole book (which runs its chapters side by
# side, one thread each), and the three layers are timed in turn, call by call
# (`bench.time_in_turns`), so that another process on the machine slows them alike.
# One thread is also the fair setting for this comparison: one core executes everything in
# sequence, so what is compared is the arithmetic of each layer and how fast it runs, not
# how well it spreads over cores. That is the other half of the story, and the critical
# path above already settled it: on parallel hardware attention's work can be spread out,
# the GRU's chain of $10 n$ dependent operations cannot.

# %%
# NBVAL_IGNORE_OUTPUT
torch.manual_seed(0)
B, d_model, H = 1, 256, 8
modules = {
    "GRU (torch.nn.GRU)": torch.nn.GRU(d_model, d_model, batch_first=True),
    "attention (attnkit)": ak.MultiHeadAttention(d_model, H),
    "attention (fused=True)": ak.MultiHeadAttention(d_model, H, fused=True),
}
rnn_ns = [64, 128, 256, 512, 1024, 2048, 4096]
# attnkit's reference attention stops at 2048: at 4096 its (H, n, n) temporaries need GiBs.
longest = {"GRU (torch.nn.GRU)": 4096, "attention (attnkit)": 2048, "attention (fused=True)": 4096}
rnn_seconds = {name: [] for name in modules}
for n in rnn_ns:
    x = torch.randn(B, n, d_model)  # (B, n, d_model)
    calls = {
        name: functools.partial(module, x) for name, module in modules.items() if n <= longest[name]
    }
    best = bench.time_in_turns(calls, repeats=5 if n <= 512 else 3)
    for name in calls:
        rnn_seconds[name].append(best[name])

flops = {
    "GRU (torch.nn.GRU)": lambda n: 12 * B * n * d_model**2,
    "attention (attnkit)": lambda n: 8 * B * n * d_model**2 + 4 * B * n * n * d_model,
}
flops["attention (fused=True)"] = flops["attention (attnkit)"]
print("    n | " + " | ".join(f"{name:>22}" for name in modules) + "   (ms, and GFLOP/s)")
for i, n in enumerate(rnn_ns):
    cells = []
    for name in modules:
        if i < len(rnn_seconds[name]):
            t = rnn_seconds[name][i]
            cells.append(f"{1e3 * t:8.2f} ms {flops[name](n) / t / 1e9:5.1f}/s")
        else:
            cells.append("-")
    print(f"{n:5d} | " + " | ".join(f"{c:>22}" for c in cells))


def crossing(ns, t_attention, t_rnn):
    """Where attention becomes slower than the RNN for good: the first measured n from which
    it is slower at every larger n, and an estimate between that n and the one before it,
    interpolating log(time ratio) linearly in log(n). (None, None) if it never is; the
    estimate is None if attention is slower from the first n on."""
    m = len(t_attention)  # lengths measured for this attention
    log_ratio = np.log(np.array(t_attention) / np.array(t_rnn[:m]))  # > 0: attention slower
    i = m
    while i > 0 and log_ratio[i - 1] > 0:
        i -= 1
    if i == m:
        return None, None
    if i == 0:
        return ns[0], None
    lo, hi = log_ratio[i - 1], log_ratio[i]
    frac = lo / (lo - hi)  # where the interpolated log ratio is zero
    return ns[i], float(np.exp(np.log(ns[i - 1]) + frac * np.log(ns[i] / ns[i - 1])))


gru_seconds = rnn_seconds["GRU (torch.nn.GRU)"]
for name in ("attention (attnkit)", "attention (fused=True)"):
    first, estimate = crossing(rnn_ns, rnn_seconds[name], gru_seconds)
    if first is None:
        n_max = rnn_ns[len(rnn_seconds[name]) - 1]
        print(f"{name}: faster than the GRU at the longest length measured, n = {n_max}")
    else:
        where = "" if estimate is None else f" (the curves cross near n = {estimate:.0f})"
        print(f"{name}: slower than the GRU from n = {first} on{where}")
rnn_slopes = {}
for name, times in rnn_seconds.items():
    m = len(times)
    slope = rnn_slopes[name] = bench.loglog_slope(rnn_ns[2:m], times[2:])
    print(f"{name:>22}: time slope over n = 256..{rnn_ns[m - 1]}: {slope:.1f}")

# The figures quoted below, from this machine's timings. One claim is asserted, with a
# margin that timing noise cannot bridge: at n = 2048 attnkit's reference attention, with
# its (H, n, n) temporaries, is at least 3 times slower than the GRU (the layers were timed
# in turn, so load from another process slows both).
i_2048 = rnn_ns.index(2048)
reference_over_gru_2048 = rnn_seconds["attention (attnkit)"][i_2048] / gru_seconds[i_2048]
assert reference_over_gru_2048 >= 3, (
    "claim no longer holds: 'the quadratic term wins in the end: at n = 2048 attention is"
    f" at least 3 times slower than the GRU' (measured {reference_over_gru_2048:.1f})"
)
glue("ch05_gru_slope", rnn_slopes["GRU (torch.nn.GRU)"], display=False)
glue("ch05_reference_slope", rnn_slopes["attention (attnkit)"], display=False)
glue("ch05_fused_slope", rnn_slopes["attention (fused=True)"], display=False)
glue("ch05_reference_over_gru_2048", reference_over_gru_2048, display=False)
for key, name in (("reference", "attention (attnkit)"), ("fused", "attention (fused=True)")):
    times = rnn_seconds[name]
    glue(f"ch05_gru_over_{key}_64", gru_seconds[0] / times[0], display=False)
    glue(f"ch05_{key}_over_gru_longest", times[-1] / gru_seconds[len(times) - 1], display=False)
    first, estimate = crossing(rnn_ns, rnn_seconds[name], gru_seconds)
    where = (
        "did not cross within the lengths measured"
        if first is None
        else f"crossed near n = {estimate:.0f}"
        if estimate is not None
        else "was slower from the first length on"
    )
    glue(f"ch05_crossing_{key}", where, display=False)

# %%
# NBVAL_IGNORE_OUTPUT
fig, ax = plt.subplots(figsize=(7.5, 4.5))
for (name, times), marker in zip(rnn_seconds.items(), "os^"):
    ax.loglog(rnn_ns[: len(times)], 1e3 * np.array(times), marker=marker, base=2, label=name)
for name, color in (("attention (attnkit)", "C1"), ("attention (fused=True)", "C2")):
    _, estimate = crossing(rnn_ns, rnn_seconds[name], gru_seconds)
    if estimate is not None:
        ax.axvline(estimate, color=color, ls=":", lw=1)
ax.set_xlabel("sequence length $n$")
ax.set_ylabel("forward time (ms, min of repeats)")
ax.set_title(f"GRU vs multi-head attention, B = {B}, $d_{{model}}$ = {d_model}, 1 thread")
ax.grid(True, which="both", alpha=0.3)
ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure: the times on the machine that built this page. The GRU's work grows linearly
# with $n$ (slope 1), the attention layers' faster, towards slope 2 at long lengths; a dotted line
# marks where an attention curve crosses the GRU's, if it does within the lengths
# measured.*
#
# What the table shows, with the figures of the machine that built this page (they move
# with the machine; only the last point below is asserted, with a wide margin):
#
# - **The GRU pays a constant per token**: each of the $n$ steps is the same small product
#   of a vector with a matrix, and each must wait for the one before, so its time should
#   grow linearly (log-log slope 1). Measured from $n = 256$ on, the slope was
#   {glue:text}`ch05_gru_slope:.2f`. The layers are timed in turn at each length, but the
#   lengths one after another, so a change in the machine's load between two lengths bends
#   every curve; the ratios at one length are the steadier figures. (PyTorch already
#   computes the input half of the GRU, $W_{ih} x_t$, for all tokens in one product; only the
#   recurrent half is sequential.)
# - **Attention can be faster at short lengths**, where it does less arithmetic than the
#   GRU ($n < d_{\text{model}}$) in a few large products: at $n = 64$ the GRU took
#   {glue:text}`ch05_gru_over_reference_64:.1f` times as long as attnkit's attention and
#   {glue:text}`ch05_gru_over_fused_64:.1f` times as long as the fused one. It can stay
#   faster beyond $n = d_{\text{model}}$ while its large products run at a higher rate than
#   the GRU's small ones.
# - **The quadratic term wins in the end.** Attention's arithmetic grows four-fold per
#   doubling of $n$ at long lengths and the GRU's two-fold, so past some length the GRU is
#   faster. The measured times bend that way: from $n = 256$ on, their log-log slopes were
#   {glue:text}`ch05_reference_slope:.2f` for attnkit's attention and
#   {glue:text}`ch05_fused_slope:.2f` for the fused one, against the GRU's
#   {glue:text}`ch05_gru_slope:.2f`. Here attnkit's
#   reference attention {glue:text}`ch05_crossing_reference` and, at its longest length
#   ($n = 2048$), took {glue:text}`ch05_reference_over_gru_2048:.1f` times as long as the GRU
#   (asserted: at least 3 times). The fused kernel {glue:text}`ch05_crossing_fused`, and at
#   $n = 4096$ took {glue:text}`ch05_fused_over_gru_longest:.1f` times as long as the GRU:
#   it avoids the memory traffic of the $n \times n$ matrices (the FLOP rates in the table
#   show what that was worth on this machine), which can move the crossing out but cannot
#   remove it: its arithmetic is still $4 n^2 d_{\text{model}}$.
# - **The crossing is not a constant of nature.** It moves with the machine, with
#   $d_{\text{model}}$ and with the batch: a larger batch gives each of the GRU's steps
#   more rows to work on, so parallelism across sequences stands in for the parallelism
#   across positions that the RNN lacks (chapter 3 saw the same for generation). On a GPU,
#   with thousands of arithmetic units that only attention can keep busy, attention's
#   advantage is much larger; that is what made the Transformer fast to train
#   {cite:p}`vaswani2017attention`.
#
# (ch05-seed)=
# ## What the seed gets right and wrong
#
# Beyond the memory (corrected {ref}`above <ch05-seed-memory>`), the two seed sections make
# these claims.
#
# ```{admonition} Seed erratum E32 · 优势和局限性 (line 83)
# :class: seed-erratum
# The seed says: 「自注意力机制的计算复杂度为 $O(n^2)$」
# **Correction:** the time per layer is $O(n^2 d)$, plus $O(n\, d_{\text{model}}^2)$ for
# the projections; $O(n^2)$ is the memory of the attention weights. Entry:
# {ref}`E32 <errata-e32>`; evidence: {ref}`ch05-seed-n1000`.
# ```
#
# **Quadratic cost (计算复杂度, lines 83 and 159).** The growth in $n$ is
# real: the measured memory of naive attention grows four-fold per doubling of $n$
# (asserted), and on the machine that built this page its time grew with log-log slope
# {glue:text}`ch05_naive_time_slope_long:.1f` between $n = 1024$ and $4096$.
#
# **Long-range dependencies, "however far apart" (捕捉长距离依赖关系，无论它们之间的距离有多远,
# line 75).** *Right within the context window*: any two positions are one step apart, and
# the gradient experiment shows an input's influence not decaying with distance. But the
# window itself is finite, and the quadratic wall is what keeps it short (exercise 4
# computes the longest sequence a memory budget allows). Being *able* to attend far is not the
# same as *learning* to, which the seed itself concedes at line 165 (长距离依赖 among the
# challenges), and attention needs positional information to know what "far" is at all.
#
# ```{admonition} Seed erratum E5 · 优势和局限性 (line 77; 242, 425)
# :class: seed-erratum
# The seed says: 「这使得模型在处理大规模输入序列时更加高效」 (this makes the model more
# efficient on large-scale input sequences)
# **Correction:** parallel over positions, yes, in training and encoding; but the
# $O(n^2 d)$ work makes attention the *least* efficient layer on long inputs, and
# generation stays sequential. Entry: {ref}`E5 <errata-e5>`; evidence: {ref}`ch05-parallel`.
# ```
#
# **Parallel computation as a strength (并行计算, line 77).** Measured in this chapter:
# attention's chain of dependent operations has the same length at every $n$, where the
# GRU's grows by 10 per token ({ref}`ch05-parallel`), and its cost grows quadratically
# ({ref}`ch05-measured`); generation takes one forward pass per token
# ({ref}`ch04-kv-cache`).
#
# **Parallel computation as a challenge (并行计算效率有待提高, line 167).** This contradicts
# the strength above, and misplaces the problem. The arithmetic of attention parallelises
# perfectly; what limits the naive computation is **memory traffic**: it writes the
# $n \times n$ scores to main memory and reads them back, several times. The measurement
# above shows it: PyTorch's fused kernel does the same FLOPs with a fraction of the memory
# (below 1/20 of the naive peak at $n = 4096$, asserted), because it never stores the
# scores, and on the machine that built this page naive attention took
# {glue:text}`ch05_naive_over_sdpa_4096:.1f` times as long as the fused kernel. Making attention
# *IO-aware* in this sense is what FlashAttention did {cite:p}`dao2022flashattention`.
#
# ```{admonition} Seed erratum E7 · 优势和局限性 (line 87; 163, 181)
# :class: seed-erratum
# The seed says: 「自注意力权重通常难以解释，因为它们是在训练过程中自动学习的」
# **Correction:** attention weights are not learned: they are computed afresh from every
# input by the learned projections (the check below); whether they explain a prediction
# is a separate, contested question. Entry: {ref}`E7 <errata-e7>`; evidence: {ref}`ch05-seed`.
# ```
#
# **Interpretability (解释性, lines 87, 163 and 181).** Attention weights are, if
# anything, unusually easy to *read*: each row is a probability distribution
# over input positions (the heat maps of chapters 1 to 3). What is contested is whether
# they *explain* a prediction: Jain and Wallace found that very different attention
# distributions can give the same predictions {cite:p}`jain2019attention`, and Wiegreffe
# and Pinter that this depends on how "explanation" is tested
# {cite:p}`wiegreffe2019attention`. Chapter 13 takes up the question.

# %%
torch.manual_seed(0)
layer = ak.MultiHeadAttention(64, 4)
with torch.no_grad():
    _, w1 = layer(torch.randn(1, 6, 64), need_weights=True)
    _, w2 = layer(torch.randn(1, 6, 64), need_weights=True)
differ = not torch.allclose(w1, w2)
n_by_n_parameter = any(p.shape == (6, 6) for p in layer.parameters())
assert differ and not n_by_n_parameter, "claim: 'attention weights are computed, not learned'"
print("same parameters, two inputs -> different attention weights:", differ)
print("a parameter of shape (n, n) exists:", n_by_n_parameter)

# %% [markdown]
# **Flexibility (灵活性, line 79).** Vague, and true in the sense that the same layer serves
# encoders, decoders, cross-attention and other data types (chapters 3, 4, 9, 10).

# %% [markdown]
# ## Where next: efficient attention
#
# This chapter located the wall precisely: the $n \times n$ matrix, $4 n^2 d$ FLOPs and
# $n^2$ numbers per head and layer. Chapters 6 and 7 go around it in two different ways.
#
# - **Same function, less memory.** Tiled attention with an online softmax (the
#   FlashAttention idea) computes exactly $\mathrm{softmax}(QK^\top / \sqrt{d})V$ without
#   storing the scores: memory $O(n d)$, time still $O(n^2 d)$. We saw PyTorch's fused
#   kernel do this; chapter 6 builds it.
# - **A different function, less work** (chapter 7). Compute only some of the $n^2$ scores, or
#   approximate the matrix: *local* (sliding-window) attention, the "restricted"
#   row of Table 1; *sparse* patterns that add strided or global positions to a window
#   (Sparse Transformer, Longformer, BigBird); *low-rank* projections of the keys and values
#   along the sequence (Linformer); and *kernel* feature maps that remove the softmax's
#   all-pairs structure altogether (linear attention, Performer).
#
# Each of the second group trades some of what this chapter praised (every pair one step
# apart, exact softmax weights) for cost that grows more slowly than $n^2$. Chapter 7
# measures both sides of each trade with the same benchmark module used here.

# %% [markdown]
# ## Key takeaways
#
# - One head of attention over $n$ tokens costs $4 n^2 d$ FLOPs in its two matrix products
#   (a multiply-add counted as 2 FLOPs) plus a few $n^2$ for the softmax; a layer costs
#   $8 n d_{\text{model}}^2 + 4 n^2 d_{\text{model}}$, and the quadratic part dominates from
#   $n = 2 d_{\text{model}}$.
# - The memory that grows with $n$ is **activations**: $H$ score and weight matrices of
#   $n \times n$ per layer and per sequence, kept until the backward pass in training.
#   The parameters, $4 d_{\text{model}}^2 + 4 d_{\text{model}}$ per layer, do not depend on
#   $n$ (erratum {ref}`E6 <errata-e6>`).
# - Measured: the naive forward's peak memory has log-log slope 2 and matches
#   $2 \times B H n^2 \times 4$ bytes; its time, on the machine that built this page, grew
#   with slope {glue:text}`ch05_naive_time_slope_long:.1f` at long lengths.
#   PyTorch's fused (flash) kernel computes the same function with memory close to the
#   size of its output.
# - Attention has $O(1)$ sequential operations and path length, an RNN $O(n)$ (Table 1 of
#   the Transformer paper {cite:p}`vaswani2017attention`). Measured: the GRU's chain of
#   dependent operations grows by 10 per token, attention's is constant; an input's
#   influence through the GRU decays geometrically with distance, through attention not
#   at all.
# - In wall-clock time attention can beat a GRU at short lengths, but its quadratic growth
#   overtakes the GRU's linear growth eventually (here attnkit's reference attention was
#   {glue:text}`ch05_reference_over_gru_2048:.1f` times slower at $n = 2048$); where, depends
#   on the machine, the width and the batch, and a fused kernel moves the crossing out.
# - The parallelism "challenge" the seed names is really memory traffic, which fused
#   kernels remove; the quadratic arithmetic only changes if the function changes
#   (chapter 7).

# %% [markdown]
# ## Exercises
#
# The exercises for this chapter are in `exercises/05_quadratic_wall.ipynb`. With a few
# lines of Python each, you will write
#
# 1. `attention_flops`: the FLOPs of $QK^\top$ and $AV$ for $H$ heads, checked against
#    PyTorch's own counter;
# 2. `score_memory_bytes`: the size of one $(B, H, n, n)$ score tensor in any dtype;
# 3. `mha_parameter_count`: the parameters of multi-head attention with grouped key/value
#    heads, independent of $n$;
# 4. `max_length_for_budget`: the longest sequence whose score tensor fits in a memory
#    budget, exactly.
#
# Grade your work with `python -m attnkit.grade 05`.

# %% [markdown]
# (ch05-interview)=
# ## Interview question
#
# ```{admonition} Interview question
# :class: tip
#
# **题目：** 请阐述自注意力机制在自然语言处理中的优势及其局限性。
#
# **题目：** 请探讨自注意力机制在实现和应用中面临的核心问题和挑战。
#
# :::{english-only}
# **Question:** Describe the strengths and limitations of self-attention in NLP. What are
# the core problems and challenges in implementing and applying it?
# :::
#
# *This chapter answers the cost side of both questions; interpretability, the other
# limitation, is {doc}`chapter 13 <13_interpretability>`'s.*
#
# **Model answer.** The strengths come from comparing every position with every other in
# one step. Any two positions are joined by a path of length one, and all positions are
# computed at once by matrix products: a constant number of sequential operations where a
# recurrent network needs $n$. That is why Transformers train fast on parallel hardware
# ({ref}`ch05-parallel`). The limitation is the price of all pairs: per head, $QK^\top$
# and $AV$ cost $4 n^2 d$ FLOPs, and the $n \times n$ score and weight matrices take
# $O(n^2)$ memory per head and layer, kept for the backward pass in training
# ({ref}`ch05-cost`). The pitfall: that memory is *activations*, not parameters. The
# projections, $4 d_{\text{model}}^2$ numbers per layer, do not depend on $n$; the source
# text wrongly blames "storing many weight matrices" ({ref}`E6 <errata-e6>`,
# {ref}`ch05-memory`). Measured, naive
# attention's peak memory grows with log-log slope 2 and matches $2 B H n^2 \times 4$
# bytes ({ref}`ch05-measured`), and in wall-clock time attention can beat a GRU at short
# lengths but its quadratic growth overtakes the GRU's linear growth eventually. The
# challenges follow: a limited context window; memory traffic rather than arithmetic as
# the bottleneck, which fused kernels such as FlashAttention remove (exact, linear memory,
# still quadratic time); sequential decoding; sub-quadratic approximations that change
# what attention can express ({ref}`ch07-map`); and weights that are easy to draw but not
# guaranteed to explain a prediction ({ref}`ch13-removal`).
# ```

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
# # Exact attention that moves fewer bytes
#
# Chapter 5 located the quadratic wall ({ref}`ch05-cost`): one head of attention over $n$
# tokens computes $n^2$ scores, $4 n^2 d$ floating-point operations (FLOPs) and, done
# naively, stores $n \times n$ matrices that dwarf everything else in memory
# ({ref}`ch05-memory`). There are two ways around it, and they are easy to confuse:
#
# - **The same function, computed differently** (this chapter). Tiled attention with an
#   *online softmax*, the idea behind FlashAttention, returns exactly
#   $\mathrm{softmax}(QK^\top/\sqrt d)V$ without ever storing the $n \times n$ matrix. The
#   memory becomes linear in $n$; the arithmetic stays quadratic; what shrinks is the
#   traffic between the processor and its main memory. Nothing is approximated.
# - **A different function, cheaper by design** (chapter 7). Sparse patterns, low-rank
#   projections and kernel feature maps change what is computed in exchange for a cost
#   that grows more slowly than $n^2$.
#
# Keeping them apart matters in practice: the first is a drop-in replacement for any
# trained model (PyTorch's `scaled_dot_product_attention` is one), the second changes the
# model and has to be trained and validated as such.
#
# By the end of this chapter you should be able to
#
# - count the bytes that naive attention moves through main memory, and say why that,
#   not the arithmetic, is what an IO-aware kernel saves;
# - derive the online softmax and the merge of two partial results through their
#   log-sum-exps, and show that both are exact;
# - explain how FlashAttention trains without keeping the $n \times n$ probabilities
#   (it recomputes them in the backward pass), and what that costs;
# - read a benchmark of naive, fused and tiled exact attention without being fooled by it:
#   tiling by itself saves memory; it saves time only inside one fused kernel.
#
# Everything below uses the companion package `attnkit` (imported as `ak`), its module
# `attnkit.efficient.tiled` (tested equal to dense attention, values and gradients) and its
# benchmark module `attnkit.bench`.

# %%
import itertools
import math
import time

import matplotlib.pyplot as plt
import torch
from myst_nb import glue
from torch.utils._python_dispatch import TorchDispatchMode  # to see which kernel SDPA runs

import attnkit as ak
from attnkit import bench
from attnkit.efficient.tiled import attention_with_lse, merge_attention_blocks, tiled_attention

torch.manual_seed(0)
# One thread: the book runs its chapters side by side, one thread each, so every number
# below is the same on any machine, however many cores it has and however busy it is
# (timings aside).
torch.set_num_threads(1)
torch.set_printoptions(precision=4, sci_mode=False)
plt.rcParams.update({"figure.dpi": 100, "axes.grid": False})
print("torch", torch.__version__, "| attnkit", ak.__version__)

# %% [markdown]
# (ch06-bytes)=
# ## Counting the bytes
#
# Chapter 5 counted the arithmetic of attention: $4 n^2 d$ FLOPs per head. A processor
# also has to *move* the numbers it works on between its main memory and its arithmetic
# units, and on modern hardware moving is the slower of the two: a GPU can do tens to
# hundreds of floating-point operations in the time it reads one number from its main
# memory (chapter 14 measures that balance on this machine, {ref}`ch14-intensity`).
#
# Naive attention, as PyTorch runs it, is four operations, and each reads its inputs from
# main memory and writes its result back: $S = QK^\top$ (reads $2nd$ numbers, writes
# $n^2$), the scaling $S/\sqrt d$ ($n^2$ in, $n^2$ out), the softmax ($n^2$ in, $n^2$ out)
# and $PV$ ($n^2 + nd$ in, $nd$ out):
#
# $$
# \text{numbers moved, naive} = 4 n d + 6 n^2 .
# $$
#
# We do not have to trust this count: a `TorchFunctionMode` sees every operation PyTorch
# runs, and adds up the sizes of its tensor inputs and of its output (views, such as the
# transpose, move nothing and are skipped).


# %%
class Traffic(torch.overrides.TorchFunctionMode):
    """Numbers read and written by each torch operation run inside the mode, as if every
    operation read its tensor inputs from main memory and wrote its output back."""

    def __init__(self):
        super().__init__()
        self.ops = []  # (name, numbers read, numbers written)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if isinstance(out, torch.Tensor):
            inputs = [a for a in args if isinstance(a, torch.Tensor)]
            ptr = out.untyped_storage().data_ptr()
            if all(a.untyped_storage().data_ptr() != ptr for a in inputs):  # not a view
                read = sum(a.numel() for a in inputs)
                self.ops.append((getattr(func, "__name__", str(func)), read, out.numel()))
        return out


d = 64
qkv = bench.make_inputs(1024, d=d, batch=1, heads=1)  # (1, 1, 1024, 64) each
with torch.no_grad(), Traffic() as traffic:
    bench.naive_attention(*qkv)
print(f"{'operation':<10} | {'numbers read':>12} | {'numbers written':>15}   (n = 1024, d = {d})")
for name, read, written in traffic.ops:
    print(f"{name:<10} | {read:12,d} | {written:15,d}")

moved_naive = {}
for n in (256, 512, 1024, 2048, 4096):
    qkv = bench.make_inputs(n, d=d, batch=1, heads=1)  # (1, 1, n, 64) each
    with torch.no_grad(), Traffic() as traffic:
        bench.naive_attention(*qkv)
    moved_naive[n] = sum(read + written for _, read, written in traffic.ops)
    assert moved_naive[n] == 4 * n * d + 6 * n * n, (
        "claim no longer holds: 'numbers moved, naive = 4 n d + 6 n^2'"
        f" (n = {n}: counted {moved_naive[n]:,}, formula {4 * n * d + 6 * n * n:,})"
    )
print("counted == 4 n d + 6 n^2 for n =", ", ".join(map(str, moved_naive)))

# %% [markdown]
# A fused, tiled kernel (next section) instead loads one tile of $b_q$ queries, streams
# every key and value past it, and writes only the tile's output and its log-sum-exp; the
# scores and probabilities of the tile never leave the chip's fast memory. It reads $Q$
# once, $K$ and $V$ once per query tile, and writes $O$ and one number per query:
#
# $$
# \text{numbers moved, tiled} = n d + 2 n d \left\lceil \frac{n}{b_q} \right\rceil + n d + n .
# $$
#
# Both are still quadratic in $n$, but with very different constants: $6 n^2$ against
# $2 n^2 d / b_q$, which is $n^2$ for $b_q = 2d$. The FLOPs per number moved, the
# **arithmetic intensity**, tells which limit a kernel hits: naive attention's tends to
# $4 n^2 d / 6 n^2 = 2d/3$ whatever $n$, the tiled kernel's to $2 b_q$: the tile size, which
# the fast memory bounds, sets how much arithmetic each number read pays for
# {cite:p}`dao2022flashattention`.


# %%
def moved_tiled(n: int, d: int, block_q: int) -> int:
    """Numbers a fused tiled kernel moves: Q once, K and V once per query tile, O and lse."""
    return n * d + 2 * n * d * math.ceil(n / block_q) + n * d + n


ns = list(moved_naive)
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.5))
ax1.loglog(ns, [4 * moved_naive[n] for n in ns], "o-", base=2, label="naive (counted)")
ax2.semilogx(ns, [4 * n * n * d / moved_naive[n] for n in ns], "o-", base=2, label="naive")
for block_q in (64, 128, 256):
    ax1.loglog(ns, [4 * moved_tiled(n, d, block_q) for n in ns], "s--", base=2,
               label=f"tiled, $b_q$ = {block_q} (formula)")  # fmt: skip
    ax2.semilogx(ns, [4 * n * n * d / moved_tiled(n, d, block_q) for n in ns], "s--", base=2,
                 label=f"tiled, $b_q$ = {block_q}")  # fmt: skip
ax1.set_xlabel("sequence length n")
ax1.set_ylabel("bytes moved (float32), one head")
ax1.set_title(f"Main-memory traffic of one head's forward pass, d = {d}")
ax2.set_xlabel("sequence length n")
ax2.set_ylabel("FLOPs per number moved")
ax2.set_title("Arithmetic intensity")
for ax in (ax1, ax2):
    ax.legend(fontsize=9)
fig.tight_layout()
plt.show()

ratio_4k = moved_naive[4096] / moved_tiled(4096, d, 128)
intensity_naive = 4 * 4096**2 * d / moved_naive[4096]
intensity_tiled = 4 * 4096**2 * d / moved_tiled(4096, d, 128)
assert ratio_4k > 5 and intensity_tiled > 5 * intensity_naive, (
    "claim no longer holds: 'the tiled kernel moves several times fewer bytes'"
    f" (ratio {ratio_4k:.2f}, intensities {intensity_naive:.1f} and {intensity_tiled:.1f})"
)
glue("ch06_bytes_ratio_4k", ratio_4k, display=False)
glue("ch06_intensity_naive_4k", intensity_naive, display=False)
glue("ch06_intensity_tiled_4k", intensity_tiled, display=False)

# %% [markdown]
# *Figure: left, the bytes one head's forward pass moves through main memory; right, the
# FLOPs done per number moved. Naive attention's intensity flattens at $2d/3$; a tiled
# kernel's grows with its tile.*
#
# At $n = 4096$, $d = 64$ and tiles of 128 queries the tiled kernel moves
# {glue:text}`ch06_bytes_ratio_4k:.1f` times fewer bytes, and does
# {glue:text}`ch06_intensity_tiled_4k:.0f` FLOPs per number it moves against naive
# attention's {glue:text}`ch06_intensity_naive_4k:.0f`. Where the hardware can do far more
# FLOPs per number it reads than naive attention needs, the naive version waits on memory
# and the tiled one does not: that is why FlashAttention is *faster* as well as smaller,
# with the same FLOPs (and, in the backward pass, more). The rest of this chapter builds
# the algorithm that makes the tiled count possible.

# %% [markdown]
# (ch06-tiled)=
# ## Tiled attention: the same function in linear memory
#
# ### The online softmax
#
# Take one query and its scaled scores $s_1, \dots, s_n$ against the keys. Its output is
#
# $$
# o = \frac{\sum_j e^{s_j} v_j}{\sum_j e^{s_j}} .
# $$
#
# In code the row maximum $m = \max_j s_j$ is subtracted from every score before `exp`,
# which changes nothing and prevents overflow (the numerically stable softmax of chapter 1,
# {ref}`ch01-stable-softmax`).
# Computed that way, the scores are read three times: to find $m$, to sum the
# exponentials, to weight the values. The
# **online softmax** {cite:p}`milakov2018online` needs one pass. Read the keys in blocks
# and keep, after the keys seen so far, three running quantities:
#
# $$
# m = \max_{j \text{ seen}} s_j, \qquad
# \ell = \sum_{j \text{ seen}} e^{s_j - m}, \qquad
# a = \sum_{j \text{ seen}} e^{s_j - m}\, v_j .
# $$
#
# When a new block $\mathcal B$ of scores arrives, the maximum may rise to
# $m' = \max(m, \max_{j \in \mathcal B} s_j)$. The old sums were taken relative to $m$;
# multiplying them by $e^{m - m'}$ puts them relative to $m'$, because
# $e^{m - m'} e^{s_j - m} = e^{s_j - m'}$. So
#
# $$
# \ell' = e^{m - m'}\, \ell + \sum_{j \in \mathcal B} e^{s_j - m'}, \qquad
# a' = e^{m - m'}\, a + \sum_{j \in \mathcal B} e^{s_j - m'}\, v_j ,
# $$
#
# and after the last block $o = a / \ell$. Nothing but the block's own scores is ever held,
# and the log-sum-exp $\mathrm{lse} = \log \sum_j e^{s_j} = m + \log \ell$ comes for free.
# Here it is, for a whole set of queries at once, in a dozen lines (exercise 1 asks you to
# write it with batch dimensions):


# %%
def online_attention(q, k, v, block):
    """softmax(q k^T / sqrt(d)) v and its log-sum-exp, reading the keys `block` at a time."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    m = torch.full((*q.shape[:-1], 1), -math.inf, dtype=q.dtype)  # (n_q, 1) running max
    l = torch.zeros_like(m)  # (n_q, 1) running sum of exp(s - m)
    a = torch.zeros(*q.shape[:-1], v.shape[-1], dtype=q.dtype)  # (n_q, d_v) running sum
    for j in range(0, k.shape[-2], block):
        s = q @ k[j : j + block].T * scale  # (n_q, b): this block's scores only
        m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
        alpha = torch.exp(m - m_new)  # rescales the old sums (0 for the first block)
        p = torch.exp(s - m_new)  # (n_q, b)
        l = alpha * l + p.sum(dim=-1, keepdim=True)
        a = alpha * a + p @ v[j : j + block]
        m = m_new
    return a / l, (m + torch.log(l)).squeeze(-1)


torch.manual_seed(0)
q = torch.randn(300, 32, dtype=torch.float64)  # 300 queries
k, v = torch.randn(1000, 32, dtype=torch.float64), torch.randn(1000, 32, dtype=torch.float64)
out, lse = online_attention(q, k, v, block=128)  # 1000 keys in blocks of 128 (the last: 104)
dense = ak.scaled_dot_product_attention(q, k, v)
lse_dense = torch.logsumexp(q @ k.T / math.sqrt(32), dim=-1)
checks = {
    "output == dense attention": (out - dense).abs().max().item() < 1e-12,
    "lse == logsumexp of the scores": (lse - lse_dense).abs().max().item() < 1e-12,
}
for claim, holds in checks.items():
    assert holds, f"claim no longer holds: {claim!r}"
    print(f"{claim}, max |diff| < 1e-12: {holds}")

# %% [markdown]
# ### Merging two blocks
#
# The same update can be written for two *finished* partial results. If $o_A$ is the
# attention output over a set of keys $A$ with log-sum-exp $\mathrm{lse}_A$, and likewise
# for a disjoint set $B$, then a key of $A$ has weight $e^{s_j - \mathrm{lse}_A}$ within $A$
# and $e^{s_j - \mathrm{lse}}$ within $A \cup B$, where
# $\mathrm{lse} = \log(e^{\mathrm{lse}_A} + e^{\mathrm{lse}_B})$. Hence
#
# $$
# o_{A \cup B} = e^{\mathrm{lse}_A - \mathrm{lse}}\, o_A + e^{\mathrm{lse}_B - \mathrm{lse}}\, o_B .
# $$
#
# `attention_with_lse` is dense attention on one block that also returns the log-sum-exp,
# and `merge_attention_blocks` is this formula. Attention over 1000 keys, computed as two
# halves of unequal size and merged, is attention over all of them, in either order:

# %%
out_a, lse_a = attention_with_lse(q, k[:400], v[:400])  # (300, 32), (300,)
out_b, lse_b = attention_with_lse(q, k[400:], v[400:])
merged, lse_ab = merge_attention_blocks(out_a, lse_a, out_b, lse_b)
swapped, _ = merge_attention_blocks(out_b, lse_b, out_a, lse_a)
checks = {
    "merge(A, B) == full": (merged - dense).abs().max().item() < 1e-12,
    "merge(B, A) == merge(A, B)": (swapped - merged).abs().max().item() < 1e-12,
    "lse of the merge == lse of all keys": (lse_ab - lse_dense).abs().max().item() < 1e-12,
}
for claim, holds in checks.items():
    assert holds, f"claim no longer holds: {claim!r}"
    print(f"{claim}, max |diff| < 1e-12: {holds}")

# %% [markdown]
# This is why attention can be split across devices along the keys, or computed over a
# cache in pieces: each piece returns $(o, \mathrm{lse})$, a vector and one number per
# query, and the pieces merge exactly. Exercise 2 asks you to write the merge.
#
# ### Tiles, and a backward pass that recomputes
#
# Rabe and Staats applied the online update to attention over chunks of keys and showed
# that self-attention does not need $O(n^2)$ memory {cite:p}`rabe2021self`.
# FlashAttention {cite:p}`dao2022flashattention` tiles the queries too, so that one tile
# of $b_q$ queries by $b_k$ keys fits in a GPU's fast on-chip memory, and it solves the
# other half of the problem: *training*. Chapter 5 showed that autograd keeps the
# $n \times n$ probabilities $P$ for the backward pass ({ref}`ch05-memory`). FlashAttention
# keeps only the output $O$ and the log-sum-exp of each row, and in the backward pass
# recomputes each tile's probabilities as $P = \exp(S - \mathrm{lse})$ from a fresh
# $S = QK^\top / \sqrt d$ tile. With $dO = \partial \mathcal L / \partial O$ given, the
# gradients follow from $O = PV$ and the softmax's Jacobian, row by row:
#
# $$
# dV = P^\top dO, \quad dP = dO\, V^\top, \quad
# dS_{ij} = P_{ij} \big(dP_{ij} - D_i\big), \quad
# D_i = \sum_j P_{ij}\, dP_{ij} = dO_i \cdot O_i, \quad
# dQ = \frac{dS\, K}{\sqrt d}, \quad dK = \frac{dS^\top Q}{\sqrt d} .
# $$
#
# The identity $D_i = dO_i \cdot O_i$ (because $\sum_j P_{ij} v_j = O_i$) is what lets the
# backward pass work tile by tile: $D$ is computed once from $O$ and $dO$, in $O(n d)$,
# without a whole row of $P$. `tiled_attention` follows the formulation of FlashAttention-2
# {cite:p}`dao2023flashattention2`. It is exact for any block sizes (they need not divide
# $n$), with causal masking and with any mask, values and gradients alike (exercise 3 asks
# you to write the recomputing backward pass):

# %%
torch.manual_seed(0)
B, H, n, d = 2, 3, 333, 16  # 333 is divisible by none of the block sizes below
q, k, v = (torch.randn(B, H, n, d, dtype=torch.float64, requires_grad=True) for _ in range(3))
padding = torch.rand(B, 1, 1, n) > 0.2  # (B, 1, 1, n) bool, True = real key
print(f"{'case':<38} | {'output':^21} | {'gradients':^21}")
for name, kwargs, mask in (
    ("plain, blocks 64 x 100", {"block_q": 64, "block_k": 100}, None),
    ("causal, blocks 50 x 37", {"block_q": 50, "block_k": 37, "causal": True}, None),
    ("padding mask, blocks 128 x 128", {"block_q": 128, "block_k": 128}, padding),
):
    out = tiled_attention(q, k, v, mask, **kwargs)
    dense_mask = ak.combine_masks(ak.causal_mask(n) if kwargs.get("causal") else None, mask)
    ref = ak.scaled_dot_product_attention(q, k, v, dense_mask)
    grads = torch.autograd.grad(out.square().sum(), (q, k, v))
    grads_ref = torch.autograd.grad(ref.square().sum(), (q, k, v))
    diff = (out - ref).abs().max().item()
    diff_grad = max((g - r).abs().max().item() for g, r in zip(grads, grads_ref))
    assert diff < 1e-12 and diff_grad < 1e-12, f"claim: 'tiled is exact' fails for {name}"
    print(
        f"{name:<38} | max |diff| < 1e-12: {diff < 1e-12} | max |diff| < 1e-12: {diff_grad < 1e-12}"
    )

# %% [markdown]
# What does the backward pass keep? We watch the tensors that autograd saves, as in
# chapter 5, for the reference implementation and for the tiled one:


# %%
print("    n | reference: kept for backward | tiled: kept for backward | tiled: largest tensor")
ref_kept = {}  # n -> bytes the reference keeps
for n in (512, 1024, 2048):
    q, k, v = (t.requires_grad_() for t in bench.make_inputs(n))  # (1, 4, n, 64) float32
    ref = bench.saved_for_backward(lambda q=q, k=k, v=v: ak.scaled_dot_product_attention(q, k, v))
    tiled = bench.saved_for_backward(lambda q=q, k=k, v=v: tiled_attention(q, k, v))
    ref_kept[n] = sum(ref)
    print(
        f"{n:5d} | {sum(ref) / 2**20:24.1f} MiB | {sum(tiled) / 2**20:20.1f} MiB |"
        f" {max(tiled) / 2**20:16.2f} MiB"
    )
    assert max(tiled) == q.numel() * 4, (  # nothing bigger than one (B, H, n, d) tensor
        "claim no longer holds: 'The tiled version keeps Q, K, V, O ... and the log-sum-exp'"
        f" (n = {n}: largest kept tensor {max(tiled):,} bytes, one (B, H, n, d) tensor"
        f" {q.numel() * 4:,})"
    )
growth = [ref_kept[2 * n] / ref_kept[n] for n in (512, 1024)]
assert min(growth) > 3.5, (
    "claim no longer holds: 'The reference keeps n x n tensors: its memory grows about"
    f" four-fold per doubling' (measured {', '.join(f'{g:.2f}' for g in growth)})"
)

# %% [markdown]
# The reference keeps $n \times n$ tensors: its memory grows about four-fold per doubling. The
# tiled version keeps $Q$, $K$, $V$, $O$ (each $B H n d$ numbers) and the log-sum-exp
# ($B H n$ numbers), so its memory doubles: it is $O(n)$. During the computation it also
# holds one $b_q \times b_k$ score tile per batch element and head, whose size does not
# depend on $n$.
#
# The **time** does not improve in principle: every one of the $n^2$ scores is still
# computed, $4 n^2 d$ FLOPs per head in the forward pass. The backward pass even does more
# arithmetic: recomputing $S$ costs $2 n^2 d$ FLOPs on top of the $8 n^2 d$ of the
# ordinary backward pass. What it saves is **memory traffic**. A GPU's arithmetic is far
# faster than its main memory, and the naive computation writes $S$ and $P$ to main memory
# and reads them back several times; a fused tiled kernel keeps each tile in on-chip memory
# from the product $QK^\top$ to the product $PV$. That is how FlashAttention is both exact
# and faster {cite:p}`dao2022flashattention`, and it is what PyTorch's fused
# `scaled_dot_product_attention` does (chapter 5 measured its memory on this CPU). Our
# `tiled_attention` is the same algorithm written as a Python loop over tiles of ordinary
# PyTorch operations: it shows the memory saving faithfully, but each tile's scores still
# go through the CPU's caches and memory between operations. Section
# {ref}`ch06-measured` measures what that costs.

# %% [markdown]
# (ch06-measured)=
# ## Measured cost
#
# `python -m attnkit.bench` times one forward pass of every attention method in the book,
# on inputs of shape $(B, H, n, d) = (1, 4, n, 64)$ in float32 with 2 threads, and measures
# each point's peak extra memory in a fresh process, exactly as chapter 5 did for naive
# attention ({ref}`ch05-measured`). This chapter reads its three exact methods: naive
# $\mathrm{softmax}(QK^\top)V$, PyTorch's fused `scaled_dot_product_attention` (SDPA) and
# `attnkit`'s tiled loop, from $n = 1024$ to $16\,384$; chapter 7 reads the approximate
# ones from the same file ({ref}`ch07-measured`).
#
# ```{admonition} Where the numbers of this section come from
# :class: note
#
# Every number of this section up to the live measurement at its end (the figure, the
# table, and each figure quoted in the text) is read from the **committed file
# `book/data/efficient_bench.json`**, not measured while this page was built. The
# benchmark needs both cores of the machine to itself for about three minutes, which a
# build that runs two chapters side by side cannot give it. The file records the machine
# and the torch version it was measured with (printed below); it does not record the
# commit, so the cell also asks git for the last commit that changed the file, when git is
# available. To measure your own machine, and to re-check every statement below against
# it (each one is asserted on the file's numbers, so a new file that contradicts the text
# fails the build), run
# `python -m attnkit.bench --json book/data/efficient_bench.json` from the repository root.
# ```

# %%
res, provenance = bench.load_committed()  # book/data/efficient_bench.json
print("\n".join(provenance))

EXACT = ("naive", "torch_sdpa", "tiled")
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 5.2))
bench.plot(res, "seconds", ax=ax1, methods=EXACT)
bench.plot(res, "peak_extra_bytes", ax=ax2, methods=EXACT)
for ax in (ax1, ax2):
    ax.title.set_fontsize(10)
fig.tight_layout()
plt.show()

print(f"\n{'n':>6} | {'time, ms':^29} | {'peak extra memory, MiB':^32}")
print(f"{'':>6} | {'naive':>9} {'SDPA':>9} {'tiled':>9} | {'naive':>10} {'SDPA':>10} {'tiled':>10}")
for n_point in res.series("tiled")[0]:
    times = [1e3 * res.get(m, n_point).seconds for m in EXACT]
    peaks = [res.get(m, n_point).peak_extra_bytes / 2**20 for m in EXACT]
    print(
        f"{n_point:6d} | " + " ".join(f"{t:9.1f}" for t in times) + " | "
        + " ".join(f"{p:10.1f}" for p in peaks)
    )  # fmt: skip

# %% [markdown]
# *Figure (from the committed file): left, forward time against $n$; right, peak extra
# memory, both log-log. A slope of 1 is linear, 2 is quadratic. All three lines are the
# same function.*
#
# The statements that follow are each checked against the file by the next cell, and their
# figures are glued into the text from it:


# %%
def at(method: str, n: int, what: str = "seconds") -> float:
    """One number of the committed benchmark: `method`'s time or peak memory at length n."""
    return getattr(res.get(method, n), what)


def time_slope(method: str, what: str = "seconds") -> float:
    """Log-log slope of `method`'s time (or memory) over its measured lengths."""
    return bench.loglog_slope(*res.series(method, what))


facts = {}  # figures quoted in the text, glued as ch06_bench_<key>
out_16k = res.batch * res.heads * 16384 * res.d * 4  # bytes of one output at n = 16384
facts["naive_slope"] = time_slope("naive")
facts["naive_gib_16k"] = at("naive", 16384, "peak_extra_bytes") / 2**30
facts["naive_vs_formula_16k"] = at("naive", 16384, "peak_extra_bytes") / (
    2 * res.batch * res.heads * 16384**2 * 4
)
facts["sdpa_slope"] = time_slope("torch_sdpa")
facts["sdpa_mib_16k"] = at("torch_sdpa", 16384, "peak_extra_bytes") / 2**20
facts["out_mib_16k"] = out_16k / 2**20
facts["tiled_slope"] = time_slope("tiled")
_, tiled_peaks = res.series("tiled", "peak_extra_bytes")
tiled_steps = [b - a for a, b in itertools.pairwise(tiled_peaks)]  # added per doubling of n
step_ratios = [b / a for a, b in itertools.pairwise(tiled_steps)]
facts["tiled_mem_step_min"], facts["tiled_mem_step_max"] = min(step_ratios), max(step_ratios)
facts["tiled_mem_last_step_mib"] = tiled_steps[-1] / 2**20
tiled_time = [at("tiled", n) / at("torch_sdpa", n) for n in res.series("tiled")[0]]
tiled_mem = [at("tiled", n, "peak_extra_bytes") / at("torch_sdpa", n, "peak_extra_bytes")
             for n in res.series("tiled")[0]]  # fmt: skip
facts["tiled_time_min"], facts["tiled_time_max"] = min(tiled_time), max(tiled_time)
facts["tiled_mem_min"], facts["tiled_mem_max"] = min(tiled_mem), max(tiled_mem)
facts["tiled_vs_sdpa_1k"] = at("tiled", 1024) / at("torch_sdpa", 1024)
facts["naive_vs_sdpa_16k"] = at("naive", 16384) / at("torch_sdpa", 16384)
assert facts["naive_slope"] >= 1.9, (
    f"claim no longer holds: 'naive time grows at least quadratically' (slope"
    f" {facts['naive_slope']:.2f})"
)
assert 0.9 <= facts["naive_vs_formula_16k"] <= 1.25 and facts["naive_gib_16k"] >= 1, (
    "claim no longer holds: 'its memory follows chapter 5's formula 2 B H n^2 x 4 bytes'"
    f" (measured {facts['naive_vs_formula_16k']:.3g} times it,"
    f" {facts['naive_gib_16k']:.3g} GiB at n = 16384)"
)
assert facts["naive_slope"] > facts["sdpa_slope"], (
    "claim no longer holds: 'naive attention's slope is steeper still' (naive"
    f" {facts['naive_slope']:.2f}, SDPA {facts['sdpa_slope']:.2f})"
)
assert 1.8 <= facts["sdpa_slope"] <= 2.2, (
    f"claim no longer holds: 'SDPA's time is quadratic' (slope {facts['sdpa_slope']:.2f})"
)
assert facts["naive_vs_sdpa_16k"] > 1, (
    "claim no longer holds: 'the same quadratic time, a constant factor lower'"
    f" (naive / SDPA at 16384: {facts['naive_vs_sdpa_16k']:.2f})"
)
assert facts["sdpa_mib_16k"] < 3 * facts["out_mib_16k"], (
    "claim no longer holds: 'SDPA: a memory close to the size of its output'"
    f" ({facts['sdpa_mib_16k']:.1f} MiB against {facts['out_mib_16k']:.0f} MiB)"
)
assert abs(facts["tiled_slope"] - facts["sdpa_slope"]) < 0.15, (
    f"claim no longer holds: 'tiled has SDPA's slope' ({facts['tiled_slope']:.2f} against"
    f" {facts['sdpa_slope']:.2f})"
)
assert facts["tiled_mem_step_min"] > 1.7 and facts["tiled_mem_step_max"] < 2.3, (
    "claim no longer holds: 'its memory is linear: each doubling of n adds about twice what"
    f" the previous doubling added' (ratios {facts['tiled_mem_step_min']:.2f} to"
    f" {facts['tiled_mem_step_max']:.2f})"
)
assert facts["tiled_time_min"] > 1 and facts["tiled_time_max"] < 2, (
    "claim no longer holds: 'tiled takes a constant factor (between 1 and 2) of SDPA's time'"
    f" ({facts['tiled_time_min']:.2f} to {facts['tiled_time_max']:.2f})"
)
assert facts["tiled_mem_min"] >= 2 and facts["tiled_mem_max"] <= 5, (
    "claim no longer holds: 'tiled's memory is a few times SDPA's'"
    f" ({facts['tiled_mem_min']:.1f} to {facts['tiled_mem_max']:.1f})"
)
print("the project's targets for the tiled kernel:")
tiled_targets = [t for t in bench.TARGETS if "tiled" in t.text]
met = []
for target in tiled_targets:
    value, ok = target.check(res)
    met.append(ok is True)
    print(
        f"  {'met' if ok else 'MISSED':>6}: {target.text} = {value:.2f} (goal {target.op} {target.bound})"
    )
facts["targets_met"], facts["targets"] = sum(met), len(tiled_targets)
for key, value in facts.items():
    glue(f"ch06_bench_{key}", value, display=False)
print(f"{len(facts)} figures checked against {bench.COMMITTED} and glued into the text below")

# %% [markdown]
# **What these numbers say.** They were measured on the machine named above (not the one
# that built this page), with 2 threads, in float32, for the forward pass of one sequence
# with 4 heads of width 64. Naive attention and SDPA are PyTorch's own C++ code (two large
# matrix products and a softmax; one fused kernel); the tiled method is Python code that
# calls ordinary PyTorch operations, so its constant factor includes the overhead of many
# small operations and of writing each tile's intermediate tensors to memory.
#
# - Naive attention's time grows at least quadratically (log-log slope
#   {glue:text}`ch06_bench_naive_slope:.2f`), and its memory follows chapter 5's formula
#   $2 B H n^2 \times 4$ bytes ({glue:text}`ch06_bench_naive_vs_formula_16k:.2f` times it,
#   {glue:text}`ch06_bench_naive_gib_16k:.1f` GiB, at $n = 16\,384$).
# - The fused SDPA kernel has the same quadratic time (slope
#   {glue:text}`ch06_bench_sdpa_slope:.2f`), a constant factor lower (naive attention takes
#   {glue:text}`ch06_bench_naive_vs_sdpa_16k:.2f` times as long at $n = 16\,384$), and a
#   memory close to the size of its output ({glue:text}`ch06_bench_sdpa_mib_16k:.1f` MiB
#   against {glue:text}`ch06_bench_out_mib_16k:.0f` MiB at $n = 16\,384$).
# - The tiled implementation has SDPA's slope ({glue:text}`ch06_bench_tiled_slope:.2f`), as
#   it must (it does the same arithmetic), and takes
#   {glue:text}`ch06_bench_tiled_time_min:.2f` to {glue:text}`ch06_bench_tiled_time_max:.2f`
#   times SDPA's time ({glue:text}`ch06_bench_tiled_vs_sdpa_1k:.2f` at $n = 1024$), the
#   price of a loop of separate operations instead of one fused kernel. Its memory is
#   linear, a constant (the score tiles) plus a part proportional to $n$: each doubling of
#   $n$ adds {glue:text}`ch06_bench_tiled_mem_step_min:.2f` to
#   {glue:text}`ch06_bench_tiled_mem_step_max:.2f` times what the previous doubling added
#   ({glue:text}`ch06_bench_tiled_mem_last_step_mib:.0f` MiB from $n = 8192$ to
#   $16\,384$), so the log-log slope approaches 1 only at long lengths. It is
#   {glue:text}`ch06_bench_tiled_mem_min:.1f` to {glue:text}`ch06_bench_tiled_mem_max:.1f`
#   times SDPA's, because it also holds copies of $Q$ scaled and $K^\top$ and a score tile.
#   The targets printed above say whether the tiled kernel stayed within the project's
#   goals relative to SDPA and naive attention: {glue:text}`ch06_bench_targets_met:d` of
#   its {glue:text}`ch06_bench_targets:d` targets are met in this file.
#
# Which kernel is SDPA? The operations one call runs, as PyTorch's dispatcher sees them:


# %%
class Dispatched(TorchDispatchMode):
    """Names of the ATen operations run inside the mode (below the Python API)."""

    def __init__(self):
        super().__init__()
        self.names = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(func.__name__)
        return func(*args, **(kwargs or {}))


qkv = bench.make_inputs(1024)  # (1, 4, 1024, 64) each, as in the benchmark
with torch.no_grad(), Dispatched() as dispatched:
    torch.nn.functional.scaled_dot_product_attention(*qkv)
print("torch", torch.__version__, "| SDPA runs:", ", ".join(dispatched.names))
assert any("flash" in name for name in dispatched.names), (
    "claim no longer holds: 'on CPU, SDPA runs PyTorch's flash-attention kernel'"
    f" (dispatched to {dispatched.names})"
)

# %% [markdown]
# **Tiling by itself saves memory, not time.** Both fast and slow exact kernels here are
# tiled: on CPU, SDPA runs PyTorch's flash-attention kernel (the cell above shows the
# operation, with this page's torch; the benchmark file records the torch version it was
# measured with; chapter 5 checked the kernel against the naive formula,
# {ref}`ch05-measured`), the online softmax of this chapter as one fused C++ loop. It
# does the same $4 n^2 d$ FLOPs as naive attention and is faster, consistent with its
# never writing the $n \times n$ matrices to memory and reading them back. The tiled Python
# loop runs the same algorithm as a sequence of separate PyTorch operations: it shows the
# memory saving faithfully but not the speed, because each of its operations still writes
# its tile to memory before the next reads it.
#
# **What would differ on a GPU.** A GPU runs dense matrix products on tensor cores at a
# large fraction of a peak hundreds of times a 2-core CPU's, while its main memory (HBM)
# is far slower than its on-chip memory; naive attention there is limited by the memory
# traffic of $S$ and $P$, not by the arithmetic (chapter 14 measures where that line lies,
# {ref}`ch14-intensity`). A FlashAttention-style kernel keeps every tile in on-chip memory
# from $QK^\top$ to $PV$ {cite:p}`dao2022flashattention`, which is why it is faster there
# as well as smaller. Our tiled loop would be hopeless there as written (one kernel launch
# per operation per tile); the algorithm is only fast as one fused kernel.
#
# The benchmark times the forward pass only. In training, what is kept for the backward
# pass matters as much. One small **live** measurement, made on the machine that built
# this page while it was built (one thread, like the whole book), at $n = 1024$: the time
# of a forward and backward pass (the methods timed in turn, call by call, minimum of 3)
# and what autograd keeps for the backward pass:

# %%
# NBVAL_IGNORE_OUTPUT
n = 1024
q, k, v = (t.requires_grad_() for t in bench.make_inputs(n))  # (1, 4, 1024, 64)
step_methods = {
    "naive softmax(QK^T)V": bench.naive_attention,
    "torch SDPA (fused)": torch.nn.functional.scaled_dot_product_attention,
    "attnkit tiled (exact)": tiled_attention,
}
best = dict.fromkeys(step_methods, math.inf)
for round_ in range(4):  # round 0 is a warm-up
    for name, fn in step_methods.items():
        t0 = time.perf_counter()
        fn(q, k, v).sum().backward()
        if round_ > 0:
            best[name] = min(best[name], time.perf_counter() - t0)
kept = {
    name: bench.saved_for_backward(lambda fn=fn: fn(q, k, v)) for name, fn in step_methods.items()
}  # name -> sizes in bytes of the storages kept for the backward pass
print(f"{'method':<24} | forward + backward, ms | kept for backward, MiB | largest kept, MiB")
for name in step_methods:
    print(
        f"{name:<24} | {1e3 * best[name]:22.0f} | {sum(kept[name]) / 2**20:22.1f} |"
        f" {max(kept[name]) / 2**20:17.1f}"
    )
# The memory column is the algorithm's, so the build checks what the text says about it:
nn_bytes, qkv_bytes = q.shape[0] * q.shape[1] * n * n * 4, q.numel() * 4  # float32
assert max(kept["naive softmax(QK^T)V"]) >= nn_bytes, (
    "claim no longer holds: 'the naive version keeps an n x n tensor for the backward pass'"
    f" (largest kept {max(kept['naive softmax(QK^T)V']):,} bytes, n x n is {nn_bytes:,})"
)
for name in ("torch SDPA (fused)", "attnkit tiled (exact)"):
    assert sum(kept[name]) < 4.5 * qkv_bytes, (
        f"claim no longer holds: '{name} keeps only Q, K, V, O and the log-sum-exp'"
        f" (kept {sum(kept[name]):,} bytes; Q is {qkv_bytes:,})"
    )
sdpa_step = best["torch SDPA (fused)"]
glue("ch06_live_tiled_over_sdpa", best["attnkit tiled (exact)"] / sdpa_step, display=False)
glue("ch06_live_naive_over_sdpa", best["naive softmax(QK^T)V"] / sdpa_step, display=False)

# %% [markdown]
# The memory columns do not depend on the machine, and the cell asserts them: the naive
# version keeps an $n \times n$ tensor for the backward pass, the fused kernel and the
# tiled one keep only $Q, K, V, O$ and the log-sum-exp. The times do depend on the machine,
# and on what else is running. On the machine that built this page, the forward and
# backward pass of the tiled version took {glue:text}`ch06_live_tiled_over_sdpa:.1f` times
# as long as the fused kernel's, and naive attention's
# {glue:text}`ch06_live_naive_over_sdpa:.1f` times as long: the tiled backward pass pays
# for its recomputation and for its Python loop, but not for moving $n \times n$ matrices
# through memory.

# %% [markdown]
# (ch06-seed)=
# ## What the seed says
#
# The seed's outlook predicts "more efficient self-attention mechanisms" that reduce the
# computational complexity and the storage (更高效的自注意力机制, line 139). *Right as a
# prediction*, with a twist the seed could not name: the most widely adopted advance was
# not one of the four approximate families of its list of improved algorithms (lines 187
# to 219, reviewed claim by claim in chapter 7, {ref}`ch07-seed`), but the exact, IO-aware
# computation of this chapter, which removes the $n^2$ *memory* and most of the memory
# traffic while keeping the function {cite:p}`dao2022flashattention`. The quadratic
# arithmetic remains; going below it means computing a different function, the subject of
# chapter 7.

# %% [markdown]
# ## Key takeaways
#
# - Two different goals: **the same function with less memory** (this chapter: tiled
#   attention with an online softmax, exact, $O(n)$ memory, still $O(n^2 d)$ time, faster
#   only when fused), and **a different function with less work** (chapter 7: sparse,
#   low-rank, kernel).
# - The online softmax keeps a running maximum $m$, sum $\ell$ and weighted sum $a$ per
#   query and rescales them by $e^{m - m'}$ when the maximum grows; two partial results
#   merge exactly through their log-sum-exps, which is what lets attention be split along
#   the keys across tiles, devices or a cache.
# - FlashAttention keeps only $O$ and the log-sum-exp per row for the backward pass and
#   recomputes each tile of $P = \exp(S - \mathrm{lse})$ there: more FLOPs, far fewer
#   bytes, and no $n \times n$ tensor kept.
# - On the benchmark's machine the fused kernel and the tiled loop both have a quadratic
#   time slope (about 2; naive attention's is steeper still); the fused kernel is a
#   constant factor faster than either and both use memory linear in $n$. A Python loop
#   over tiles shows the memory saving, not the speed.

# %% [markdown]
# ## Exercises
#
# The exercises for this chapter are in `exercises/06_io_aware_attention.ipynb`. You will
# write
#
# 1. `online_softmax_attention`: attention and its log-sum-exp in one pass over blocks of
#    keys, with a running maximum;
# 2. `merge_blocks`: the merge of two partial attention results through their log-sum-exps;
# 3. `attention_backward`: FlashAttention's backward pass, which recomputes the
#    probabilities from the log-sum-exp instead of keeping them.
#
# Grade your work with `python -m attnkit.grade 06`.

# %% [markdown]
# (ch06-interview)=
# ## Interview question
#
# ```{admonition} Interview question
# :class: tip
#
# **题目：** FlashAttention 是近似注意力吗？它为什么既省内存又更快？
#
# :::{english-only}
# **Question:** Is FlashAttention an approximation of attention? Why does it use less
# memory, and why is it faster?
# :::
#
# **Model answer.** No: it computes exactly $\mathrm{softmax}(QK^\top/\sqrt d)V$, up to
# floating-point rounding. It reads the keys and values in tiles and keeps, per query, a
# running maximum $m$, a running sum $\ell$ of $e^{s - m}$ and a running weighted sum of
# the values, rescaling both by $e^{m - m'}$ whenever the maximum grows (the online
# softmax); after the last tile the output is the weighted sum over $\ell$
# ({ref}`ch06-tiled`). No $n \times n$ matrix is ever stored, so the memory is $O(n)$
# instead of $O(n^2)$. For training it keeps only the output and the log-sum-exp of each
# row, and the backward pass recomputes each tile of $P = \exp(S - \mathrm{lse})$: *more*
# FLOPs, not fewer. The time stays $O(n^2 d)$; it is faster because on a GPU naive
# attention is limited by memory traffic, writing $S$ and $P$ to HBM and reading them
# back, while the fused kernel keeps every tile in on-chip SRAM from $QK^\top$ to $PV$.
# What it does not do: reduce the quadratic arithmetic; that takes an approximation
# (sparse, low-rank or kernel attention, chapter 7), which changes the function.
# ```

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
# # Exercises: hardware acceleration
#
# Four small functions, one for each tool of chapter 14: the bytes that naive and fused
# attention move through main memory, the roofline, and rounding float32 to bfloat16 by
# hand. Replace each `raise NotImplementedError(...)` with your code, then run the check
# cell after it (marked `# NBVAL_CHECK_OUTPUT`); its output must match what is stored
# under it. Grade the chapter from the repository root with
#
# ```bash
# .venv/bin/python -m attnkit.grade 14
# ```
#
# The grader loads only your `def`s and imports, tests each function on several inputs
# against attnkit and against independent references, then runs this notebook and compares
# the check cells. Conventions, as in the chapter: a multiply-add is 2 FLOPs; every read
# and every write of an element of main memory counts its bytes once; GFLOP/s and GB/s are
# $10^9$ per second.

# %%
import math

import torch

from attnkit import hardware as hw

torch.set_printoptions(precision=4, sci_mode=False)

# %% [markdown]
# ## Exercise 1: the bytes of naive attention
#
# Naive attention over `batch_heads` independent heads, each with `n` queries, `n` keys
# and `n` values of width `d`, runs as separate kernels that each read their inputs from
# main memory and write their result back:
#
# 1. $S = QK^\top$: reads $Q$ and $K$, writes $S$ ($n \times n$);
# 2. `score_passes` element-wise passes over the scores (the softmax is one; a separate
#    scaling by $1/\sqrt d$ is a second): each reads and writes an $n \times n$ matrix;
# 3. $O = PV$: reads $P$ ($n \times n$) and $V$, writes $O$ ($n \times d$).
#
# Write `naive_attention_bytes(n, d, batch_heads=1, dtype_bytes=4, score_passes=1)`: the
# total number of bytes read and written, an exact Python `int`.


# %%
def naive_attention_bytes(
    n: int, d: int, batch_heads: int = 1, dtype_bytes: int = 4, score_passes: int = 1
) -> int:
    """Bytes read + written by naive attention (Q K^T, score passes, P V), all heads."""
    # BEGIN SOLUTION
    qk_product = 2 * n * d + n * n  # read Q, K; write S
    passes = score_passes * 2 * n * n  # each pass reads and writes the n x n scores
    pv_product = n * n + n * d + n * d  # read P, V; write O
    return batch_heads * dtype_bytes * (qk_product + passes + pv_product)
    # END SOLUTION


# %% [markdown]
# The check prints the count for one head and for the chapter's benchmark (4 heads,
# $n = 4096$, two passes), in MiB, compares it with attnkit, and prints the resulting
# arithmetic intensity, which should approach $d / 6$ FLOP/byte in float32.

# %%
# NBVAL_CHECK_OUTPUT
print(naive_attention_bytes(10, 3), naive_attention_bytes(10, 3, score_passes=2))
big = naive_attention_bytes(4096, 64, batch_heads=4, score_passes=2)
print(big / 2**20, "MiB")
print(big == hw.attention_io_bytes(4096, 64, batch_heads=4, score_passes=2))
for n in (256, 4096, 65536):
    flops = hw.attention_flops(n, 64)
    print(n, round(flops / naive_attention_bytes(n, 64, score_passes=2), 3), "FLOP/byte")

# %% [markdown]
# ## Exercise 2: the bytes of fused attention
#
# An IO-aware, fused kernel (FlashAttention) keeps the scores in registers and caches: it
# reads $Q$, $K$ and $V$ and writes $O$, once each. Write
# `fused_attention_bytes(n, d, batch_heads=1, dtype_bytes=4)`: the bytes it moves, an
# exact `int` (the ideal count, ignoring re-reads of $K$ and $V$).


# %%
def fused_attention_bytes(n: int, d: int, batch_heads: int = 1, dtype_bytes: int = 4) -> int:
    """Bytes read + written by a fused attention kernel: Q, K, V in, O out, all heads."""
    # BEGIN SOLUTION
    return batch_heads * dtype_bytes * 4 * n * d
    # END SOLUTION


# %% [markdown]
# The check compares with attnkit and prints how the fused kernel's intensity grows with
# $n$ while the naive one's stays put, and how much less a fused kernel moves at
# $n = 4096$ in bfloat16.

# %%
# NBVAL_CHECK_OUTPUT
print(fused_attention_bytes(10, 3), fused_attention_bytes(10, 3, batch_heads=4, dtype_bytes=2))
print(
    fused_attention_bytes(4096, 64, 4)
    == hw.attention_io_bytes(4096, 64, kind="fused", batch_heads=4)
)
for n in (256, 4096, 65536):
    flops = hw.attention_flops(n, 64)
    print(n, round(flops / fused_attention_bytes(n, 64), 1), "FLOP/byte")
ratio = naive_attention_bytes(4096, 64, 4, 2, 2) / fused_attention_bytes(4096, 64, 4, 2)
print(round(ratio, 2), "times fewer bytes")

# %% [markdown]
# ## Exercise 3: the roofline
#
# A machine with a compute ceiling of `peak_gflops` GFLOP/s and a memory bandwidth of
# `bandwidth_gbs` GB/s runs a kernel of arithmetic intensity `intensity` FLOP/byte at
# best at
#
# $$
# \min(\text{peak}, \; \text{intensity} \times \text{bandwidth}) \quad \text{GFLOP/s}.
# $$
#
# Write `attainable_gflops(intensity, peak_gflops, bandwidth_gbs)` for positive Python
# floats, returning a `float`. Raise a `ValueError` if any argument is not positive.


# %%
def attainable_gflops(intensity: float, peak_gflops: float, bandwidth_gbs: float) -> float:
    """Roofline bound in GFLOP/s: min(peak, intensity * bandwidth)."""
    # BEGIN SOLUTION
    for name, value in (
        ("intensity", intensity),
        ("peak_gflops", peak_gflops),
        ("bandwidth_gbs", bandwidth_gbs),
    ):
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value}.")
    return float(min(peak_gflops, intensity * bandwidth_gbs))
    # END SOLUTION


# %% [markdown]
# The check prints the roofline of a machine like the one that builds the book (about
# 400 GFLOP/s in float32 and 25 GB/s), its ridge point, and where naive and fused
# attention at $n = 4096$ land on it.

# %%
# NBVAL_CHECK_OUTPUT
for intensity in (0.5, 4.0, 16.0, 64.0, 1024.0):
    print(intensity, attainable_gflops(intensity, 400.0, 25.0))
print("ridge:", 400.0 / 25.0, "FLOP/byte")
flops = hw.attention_flops(4096, 64, batch_heads=4)
for name, moved in (
    ("naive", naive_attention_bytes(4096, 64, 4, score_passes=2)),
    ("fused", fused_attention_bytes(4096, 64, 4)),
):
    print(name, round(attainable_gflops(flops / moved, 400.0, 25.0), 1), "GFLOP/s at best")

# %% [markdown]
# ## Exercise 4: rounding float32 to bfloat16
#
# A bfloat16 number is the top 16 bits of a float32: 1 sign bit, the same 8 exponent bits
# and 7 mantissa bits. Write `round_to_bfloat16(x)`: for a float32 tensor `x`, the float32
# tensor of the nearest bfloat16 values, **rounding half to even**, computed with integer
# operations on the bits (do not convert with `.to(torch.bfloat16)` or `.bfloat16()`: the
# grader watches for it).
#
# - `x.view(torch.int32)` reinterprets the bits without copying (use a contiguous `x`);
#   `.view(torch.float32)` goes back.
# - Round to nearest: add half of the dropped part, `0x7FFF` or `0x8000`, then clear the
#   low 16 bits with `& -0x10000`. For ties to even, add `0x7FFF + b`, where `b` is the
#   lowest bit that you keep, `(bits >> 16) & 1`. A carry into the exponent is correct:
#   it rounds up to the next power of two, or to infinity above bfloat16's largest number.
# - Negative numbers need no special case (the sign bit is the top bit). NaN does: keep
#   it NaN (the addition could turn a NaN into infinity).


# %%
def round_to_bfloat16(x: torch.Tensor) -> torch.Tensor:
    """float32 -> nearest bfloat16 (ties to even), returned as float32, by integer ops."""
    # BEGIN SOLUTION
    bits = x.contiguous().view(torch.int32)
    lowest_kept = (bits >> 16) & 1
    rounded = ((bits + 0x7FFF + lowest_kept) & -0x10000).view(torch.float32)
    return torch.where(torch.isnan(x), x, rounded)
    # END SOLUTION


# %% [markdown]
# The check prints ties (exactly halfway between two bfloat16 numbers: they go to the one
# with an even last bit), a few ordinary numbers, the largest float32 (it rounds to
# infinity), a subnormal and NaN, then compares a million random numbers of all
# magnitudes with PyTorch's own conversion.

# %%
# NBVAL_CHECK_OUTPUT
ties = torch.tensor([1 + 2**-8, 1 + 3 * 2**-8, -(1 + 2**-8), 2 + 2**-7])
print(round_to_bfloat16(ties).tolist())
others = torch.tensor([math.pi, -1 / 3, 1e-40, 3.4028234663852886e38, math.inf, math.nan])
print([f"{v:.6g}" for v in round_to_bfloat16(others).tolist()])
g = torch.Generator().manual_seed(0)
x = torch.randn(10**6, generator=g) * torch.exp(20 * torch.randn(10**6, generator=g))
same = round_to_bfloat16(x).view(torch.int32) == x.to(torch.bfloat16).float().view(torch.int32)
print("bit-identical to x.to(torch.bfloat16):", bool(same.all()))

# %% [markdown]
# ## Done?
#
# Run `python -m attnkit.grade 14`. Then look back at chapter 14: exercises 1 to 3 are the
# whole argument for FlashAttention in three lines of arithmetic, and exercise 4 is why
# bfloat16 could replace float32 in training: the same exponent, so the same range, with
# the rounding you just wrote.

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
# # Hardware acceleration
#
# The seed text's last trend for self-attention (自注意力机制的发展趋势, trend 5) is
# hardware acceleration:
#
# ```{admonition} Seed erratum E34 · 发展趋势 (line 147)
# :class: seed-erratum
# The seed says: 「硬件加速：利用硬件加速技术，如GPU和TPU，进一步提高自注意力模型的计算性能」
# **Correction:** GPUs and TPUs were already the standard hardware of attention models
# when the seed was written (the Transformer itself was trained on eight GPUs in 2017),
# the status quo rather than a trend; what this chapter measures is what fitting the
# computation to the hardware gains on an unchanged machine. Entry: {ref}`E34 <errata-e34>`;
# evidence: {ref}`ch14-trend`.
# ```
#
# Faster chips helped; a large part of the gains of the last few years, though, came on
# the *same* hardware, from three ideas that this chapter measures one by one on the
# machine that builds this book:
#
# 1. **Move fewer bytes.** Attention's arithmetic is cheap relative to the traffic of its
#    $n \times n$ score matrix through main memory. IO-aware, fused kernels such as
#    FlashAttention compute exactly the same function while never writing that matrix
#    out {cite:p}`dao2022flashattention,ivanov2021data`.
# 2. **Use the right low precision.** bfloat16 halves the bytes and unlocks the matrix
#    units of modern chips, and it keeps float32's exponent range, so it does not overflow
#    where float16 does {cite:p}`kalamkar2019study,micikevicius2018mixed`.
# 3. **Let a compiler fuse the rest.** `torch.compile` turns a chain of small element-wise
#    operations into one loop, and, as we will see, even recognises the attention pattern
#    itself {cite:p}`ansel2024pytorch`.
#
# The tool that ties them together is the **roofline** {cite:p}`williams2009roofline`: a
# machine has a compute ceiling (FLOP/s) and a memory ceiling (bytes/s), and which one
# limits a kernel depends on how many FLOPs it does per byte it moves.
#
# By the end of this chapter you should be able to
#
# - measure a machine's two ceilings and draw its roofline;
# - count the FLOPs and the bytes of naive and fused attention, and say why one is
#   memory-bound and the other is not;
# - tell which kernel `torch.nn.functional.scaled_dot_product_attention` (SDPA) actually
#   ran, and which arguments make it fall back to the slow path;
# - say what `torch.compile` does to an attention function, and what bfloat16 costs in
#   accuracy;
# - answer the seed's trends question about hardware with evidence.
#
# Everything runs on one core of the CPU that builds the book; a last section shows what the
# same measurements look like on a GPU, when one is present.

# %%
import math
import os
import platform
import re
import shutil
import tempfile
import warnings

import matplotlib.pyplot as plt
import torch
import torch._inductor.config
import torch.nn.functional as F
from myst_nb import glue
from torch.nn.attention import SDPBackend, sdpa_kernel
from tqdm import tqdm

import attnkit as ak
from attnkit import bench
from attnkit import hardware as hw
from attnkit.efficient.tiled import tiled_attention

torch.manual_seed(0)
# One thread: the book runs its chapters side by side, one thread each, so every number
# below is the same on any machine, however many cores it has and however busy it is
# (timings aside).
torch.set_num_threads(1)
torch.set_printoptions(precision=4, sci_mode=False)
plt.rcParams.update({"figure.dpi": 100, "axes.grid": False})
print("torch", torch.__version__, "| attnkit", ak.__version__)

# %% [markdown]
# (ch14-ceilings)=
# ## The ceilings of this machine
#
# First, what is this machine? `torch.backends.cpu.get_cpu_capability()` says which vector
# instruction set PyTorch's own kernels were dispatched to; the CPU flags in
# `/proc/cpuinfo` say whether the chip has *AMX* (Advanced Matrix Extensions), tile units
# that multiply bfloat16 matrices, the CPU's counterpart of a GPU's tensor cores.
#
# From here on, every measurement runs on **one thread**. The book is built on two cores
# that other processes may share; two threads that must meet at every barrier slow down
# badly when either core is busy, one thread does not, and all the comparisons below
# (ratios of times on the same core) keep their meaning.

# %%
# NBVAL_IGNORE_OUTPUT
flags = ""
model_name = platform.processor() or platform.machine()
if os.path.exists("/proc/cpuinfo"):
    with open("/proc/cpuinfo") as f:
        cpuinfo = f.read()
    flags = " ".join(re.findall(r"^flags\s*:\s*(.*)$", cpuinfo, flags=re.M)[:1])
    model_name = (re.findall(r"^model name\s*:\s*(.*)$", cpuinfo, flags=re.M) or [model_name])[0]
torch.set_num_threads(1)  # every timing below: one thread (see the text)
has_amx_bf16 = "amx_bf16" in flags.split()
has_avx512_bf16 = "avx512_bf16" in flags.split()
print("CPU:", model_name, "|", os.cpu_count(), "logical cores,", torch.get_num_threads(), "used")
print("PyTorch CPU capability:", torch.backends.cpu.get_cpu_capability())
print("AMX bfloat16 tiles:", has_amx_bf16, "| AVX-512 bfloat16 instructions:", has_avx512_bf16)

# %% [markdown]
# ### The compute ceiling
#
# The highest arithmetic throughput that ordinary code reaches is that of a large matrix
# product, which the math library (oneDNN / MKL) has tuned to the last cycle. A product of
# two $n \times n$ matrices costs $2n^3$ FLOPs (one multiply-add = 2 FLOPs, as in chapter
# 5); `hw.matmul_gflops` times it with `bench.time_call` (the minimum over repeats) and
# divides.

# %%
# NBVAL_IGNORE_OUTPUT
MATMUL_N = 1024
dtypes = {
    "float64": torch.float64,
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
peak = {name: hw.matmul_gflops(MATMUL_N, dtypes[name], repeats=5) for name in dtypes if name != "float16"}
for name, gflops in peak.items():
    print(f"{name:>8} matmul, n = {MATMUL_N}: {gflops:7.0f} GFLOP/s")
# float16 only at n = 256: a CPU without float16 matrix instructions takes a slow generic path
fp16_gflops = hw.matmul_gflops(256, torch.float16, repeats=2)
print(f" float16 matmul, n = 256: {fp16_gflops:7.1f} GFLOP/s")
glue("ch14_fp16_matmul_gflops", fp16_gflops, display=False)
bf16_matmul_speedup = peak["bfloat16"] / peak["float32"]
print(f"bfloat16 / float32: {bf16_matmul_speedup:.1f}x")

# %% [markdown]
# The dtypes differ by more than their width: the speed of a matrix product depends on
# whether the chip has instructions for that format. float16 is measured on a smaller
# product, because a CPU without float16 matrix instructions runs it through a slow generic
# path: on the machine that built this page, {glue:text}`ch14_fp16_matmul_gflops:.1f`
# GFLOP/s. The same two bytes per number can be fast or slow; we come back to this for
# bfloat16 below ({ref}`ch14-bf16`).
#
# ### The memory ceiling
#
# Bandwidth is measured by copying a large buffer: a copy of $b$ bytes reads $b$ and
# writes $b$, so $2b$ bytes cross the memory bus. The buffer must be larger than the
# caches, or we measure a cache. To see where that happens, we copy buffers of
# increasing size.

# %%
# NBVAL_IGNORE_OUTPUT
copy_sizes = [2**18, 2**21, 2**24, 2**28]  # 256 KiB ... 256 MiB
bandwidth = {size: hw.memory_bandwidth_gbs(size, repeats=10) for size in copy_sizes}
for size, gbs in bandwidth.items():
    print(f"copy of {size / 2**20:5.0f} MiB: {gbs:6.1f} GB/s (read + write)")
dram_gbs = bandwidth[copy_sizes[-1]]
ridge = hw.ridge_point(peak["float32"], dram_gbs)
print(f"main-memory bandwidth ~ {dram_gbs:.0f} GB/s; float32 ridge point = {ridge:.0f} FLOP/byte")

# %%
assert all(gflops > 1.0 for gflops in peak.values()), (
    f"every matmul must exceed 1 GFLOP/s; lowest measured {min(peak.values()):.3g} GFLOP/s"
)
assert bandwidth[2**18] > 3 * dram_gbs, "claim: 'the small copies run from the caches, faster'"
assert ridge < 100, f"claim: 'a ridge point below 100 FLOP/byte' (measured {ridge:.0f})"
glue("ch14_ridge", ridge, display=False)
glue("ch14_dram_gbs", dram_gbs, display=False)
glue("ch14_peak_f32", peak["float32"], display=False)

# %% [markdown]
# The small copies run from the caches, faster than the largest one (the assert above
# checks at least 3x for 256 KiB against 256 MiB), which is the closest we get to main
# memory. The ratio of the two ceilings, the **ridge point**, is the arithmetic intensity
# a kernel needs to be compute-bound: a float32 kernel that does fewer FLOPs per byte than
# the ridge point cannot reach the matmul's speed, however well it is written, *if* its
# bytes come from main memory. On the machine that built this page the ridge point was
# {glue:text}`ch14_ridge:.1f` FLOP/byte ({glue:text}`ch14_peak_f32:.0f` GFLOP/s over
# {glue:text}`ch14_dram_gbs:.0f` GB/s); on any CPU core it is a few to a few tens of
# FLOP/byte (the assert checks below 100). (With one thread, both ceilings are those
# of one core: a single core cannot use the whole memory bus, so the chip's total
# bandwidth is higher; the ratio of the two is what matters here.)

# %% [markdown]
# (ch14-intensity)=
# ## The arithmetic intensity of attention
#
# One head of attention with $n$ queries and keys of width $d$ does
# $F = 4n^2 d$ FLOPs in its two matrix products ({ref}`ch05-cost`). What differs between
# implementations is the traffic to main memory, in elements per head
# (`hw.attention_io_bytes`):
#
# | implementation | reads and writes | elements moved | intensity $F / (4 \cdot \text{elements})$ in float32 |
# |---|---|---|---|
# | naive, `p` passes over the scores | $Q, K$ in, $S$ out; $p \times$ ($S$ in and out); $P$, $V$ in, $O$ out | $4nd + (2 + 2p) n^2$ | $\to d / (2 + 2p)$ as $n$ grows |
# | fused (IO-aware) | $Q, K, V$ in, $O$ out | $4nd$ | $n / 4$ |
#
# The naive intensity is bounded by a constant: for $d = 64$ and the two passes of
# `bench.naive_attention` (the scaling and the softmax) it tends to $64 / 6 \approx 11$
# FLOP/byte, whatever $n$. The fused intensity grows like $n$, because the $n^2$ work is
# done on data that stays in registers and caches, which is the whole point of
# FlashAttention's tiling {cite:p}`dao2022flashattention` and the analysis of data
# movement in {cite:t}`ivanov2021data`. The fused byte count is a lower bound (a real kernel
# re-reads $K$ and $V$ for each block of queries unless they stay in cache).

# %%
D = 64
for n in (256, 1024, 4096, 16384):
    flops = hw.attention_flops(n, D)
    naive_i = hw.arithmetic_intensity(flops, hw.attention_io_bytes(n, D, score_passes=2))
    fused_i = hw.arithmetic_intensity(flops, hw.attention_io_bytes(n, D, kind="fused"))
    print(f"n = {n:>5}: naive {naive_i:5.1f} FLOP/byte | fused {fused_i:7.1f} FLOP/byte")
assert (
    hw.arithmetic_intensity(
        hw.attention_flops(16384, D), hw.attention_io_bytes(16384, D, score_passes=2)
    )
    < D / 6
), (
    "claim no longer holds: 'the naive intensity tends to 64 / 6 = 11 FLOP/byte, whatever n' "
    "(measured "
    + format(
        hw.arithmetic_intensity(
            hw.attention_flops(16384, D), hw.attention_io_bytes(16384, D, score_passes=2)
        ),
        ".3g",
    )
    + " FLOP/byte at n = 16384)"
)
assert (
    hw.arithmetic_intensity(
        hw.attention_flops(4096, D), hw.attention_io_bytes(4096, D, kind="fused")
    )
    == 4096 / 4
), (
    "claim no longer holds: 'the fused intensity is n / 4' (measured "
    + format(
        hw.arithmetic_intensity(
            hw.attention_flops(4096, D), hw.attention_io_bytes(4096, D, kind="fused")
        ),
        ".6g",
    )
    + " FLOP/byte at n = 4096)"
)

# %% [markdown]
# (ch14-three-ways)=
# ## The same computation three ways
#
# Three exact implementations of $\mathrm{softmax}(QK^\top/\sqrt d)V$:
#
# - `bench.naive_attention`: three PyTorch operations with the $n \times n$ scores in
#   memory (chapter 5);
# - `tiled_attention`: attnkit's FlashAttention-style tiles with the online softmax, in
#   Python over blocks of 256 queries and 1024 keys (chapter 6, {ref}`ch06-tiled`);
# - `F.scaled_dot_product_attention`: PyTorch's fused C++ kernel.
#
# First, that they compute the same thing: in float64 to rounding error, and in float32
# to float32's rounding error.

# %%
q, k, v = bench.make_inputs(512, seed=1)  # (1, 4, 512, 64)
three_ways = {
    "naive": bench.naive_attention,
    "tiled": tiled_attention,
    "torch SDPA": F.scaled_dot_product_attention,
}
reference = bench.naive_attention(q.double(), k.double(), v.double())
for name, fn in three_ways.items():
    out64 = fn(q.double(), k.double(), v.double())
    out32 = fn(q, k, v)
    err64 = (out64 - reference).abs().max().item()
    err32 = (out32.double() - reference).abs().max().item()
    print(f"{name:>10}: max |error| float64 {err64:.1e}, float32 {err32:.1e}")
    assert err64 < 1e-12 and err32 < 1e-5, (
        f"claim no longer holds: '{name} computes the same thing, to rounding error' "
        f"(measured {err64:.1e} in float64, {err32:.1e} in float32)"
    )

# %% [markdown]
# Now their time and achieved GFLOP/s at several lengths, with one batch of 4 heads of
# width 64, as in chapters 5 and 6. The achieved throughput is $4 B H n^2 d$ divided by
# the measured time.
#
# Timing on a shared machine needs care: while this chapter runs, another program may be
# busy on the other core, competing for the memory bus and the shared cache. Every
# comparison of times in this chapter is therefore measured *in turns*: each round calls
# every contender once, one after the other, and each keeps its best time over the
# rounds, so that a busy moment slows all contenders of a round alike and the ratios keep
# their meaning (`bench.time_in_turns`). The absolute times are those of the machine that
# built this page.


# %%
# NBVAL_IGNORE_OUTPUT
NS = [256, 512, 1024, 2048, 4096]
BH = 4  # batch 1 x 4 heads
REPEATS_BY_N = {256: 10, 512: 10, 1024: 5, 2048: 3, 4096: 3}  # fewer where a call is long
seconds = {name: {} for name in three_ways}
for n in tqdm(NS, desc="lengths"):
    q, k, v = bench.make_inputs(n)
    best = bench.time_in_turns(
        {name: (lambda fn=fn, q=q, k=k, v=v: fn(q, k, v)) for name, fn in three_ways.items()},
        repeats=REPEATS_BY_N[n],
    )
    for name, t in best.items():
        seconds[name][n] = t
achieved = {
    name: {n: hw.attention_flops(n, D, batch_heads=BH) / t / 1e9 for n, t in per_n.items()}
    for name, per_n in seconds.items()
}
print(f"{'n':>5} | " + " | ".join(f"{name:>20}" for name in three_ways))
for n in NS:
    cells = [f"{seconds[m][n] * 1e3:8.2f} ms {achieved[m][n]:5.0f} GF/s" for m in three_ways]
    print(f"{n:>5} | " + " | ".join(cells))

# %% [markdown]
# And the peak extra memory of one call, measured by `bench.measure_peak_extra` with
# chapter 5's method: the rise of the process's resident set size at its peak during the
# call, after the memory freed earlier has been handed back to the operating system (so
# that reusing it counts). Memory, unlike time, does not depend on what else runs on the
# machine.

# %%
# NBVAL_IGNORE_OUTPUT
MEM_NS = [1024, 2048, 4096]
peak_mib = {name: {} for name in three_ways}
for n in MEM_NS:
    q, k, v = bench.make_inputs(n)
    with torch.inference_mode():
        for name, fn in three_ways.items():
            peak_mib[name][n] = bench.measure_peak_extra(lambda f=fn, a=(q, k, v): f(*a)) / 2**20
for n in MEM_NS:
    score_mib = BH * n * n * 4 / 2**20
    cells = " | ".join(f"{name} {peak_mib[name][n]:7.1f}" for name in three_ways)
    print(f"n = {n}: {cells} MiB  (one n x n float32 matrix: {score_mib:.0f} MiB)")

# %%
fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4))
for name in three_ways:
    ax_t.plot(NS, [seconds[name][n] * 1e3 for n in NS], "o-", label=name)
    ax_m.plot(MEM_NS, [peak_mib[name][n] for n in MEM_NS], "o-", label=name)
ax_m.plot(MEM_NS, [BH * n * n * 4 / 2**20 for n in MEM_NS], "k:", label="one n x n float32")
for ax, title, unit in (
    (ax_t, "time of one forward pass", "ms"),
    (ax_m, "peak extra memory", "MiB"),
):
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length n")
    ax.set_ylabel(unit)
    ax.set_title(f"{title} (B = 1, H = 4, d = 64, float32)")
    ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %%
# NBVAL_IGNORE_OUTPUT
N_BIG = 4096
fused_speedup = seconds["naive"][N_BIG] / seconds["torch SDPA"][N_BIG]
tiled_vs_sdpa = seconds["tiled"][N_BIG] / seconds["torch SDPA"][N_BIG]
score_mib_big = BH * N_BIG**2 * 4 / 2**20
memory_ratio = peak_mib["naive"][N_BIG] / peak_mib["torch SDPA"][N_BIG]
print(f"n = {N_BIG}: naive / SDPA time {fused_speedup:.1f}, tiled / SDPA time {tiled_vs_sdpa:.1f}")
print(f"naive / SDPA peak extra memory {memory_ratio:.0f}")
assert peak_mib["naive"][N_BIG] >= score_mib_big, "claim: 'naive holds an n x n matrix'"
assert peak_mib["torch SDPA"][N_BIG] < score_mib_big / 10, "claim: 'SDPA: a small fraction'"
assert peak_mib["tiled"][N_BIG] < score_mib_big / 10, "claim: 'tiled: the same profile'"
assert memory_ratio > 10, "claim: 'more than ten times less memory'"
assert fused_speedup > 1, "claim: 'the fused kernel is faster' (ratio of times in turns)"
glue("ch14_fused_speedup_4096", float(fused_speedup), display=False)
glue("ch14_tiled_vs_sdpa_4096", float(tiled_vs_sdpa), display=False)
glue("ch14_fused_memory_ratio_4096", float(memory_ratio), display=False)

# %% [markdown]
# At $n = 4096$ the fused kernel needs a small fraction of one $n \times n$ matrix, where
# the naive version holds more than one such matrix at its peak, and attnkit's tiled
# version has the same memory profile (the asserts: these are facts of the algorithms and
# hold on any machine). The fused kernel is also faster (asserted): on the machine that
# built this page, naive attention took {glue:text}`ch14_fused_speedup_4096:.1f` times as
# long as SDPA, and the tiled version, although written in Python,
# {glue:text}`ch14_tiled_vs_sdpa_4096:.1f` times as long: its inner work is large matrix
# products.
#
# ### The roofline
#
# Place each measurement at its arithmetic intensity (the naive one with its two passes
# over the scores, the two fused ones at $n/4$) against the two ceilings measured above.

# %%
naive_x = [
    hw.arithmetic_intensity(
        hw.attention_flops(n, D, batch_heads=BH),
        hw.attention_io_bytes(n, D, batch_heads=BH, score_passes=2),
    )
    for n in NS
]
fused_x = [
    hw.arithmetic_intensity(
        hw.attention_flops(n, D, batch_heads=BH),
        hw.attention_io_bytes(n, D, batch_heads=BH, kind="fused"),
    )
    for n in NS
]
fig, ax = plt.subplots(figsize=(8, 5))
hw.plot_roofline(
    ax,
    {"float32": peak["float32"], "bfloat16": peak["bfloat16"]},
    dram_gbs,
    {
        "naive (float32)": (naive_x, [achieved["naive"][n] for n in NS]),
        "attnkit tiled (float32)": (fused_x, [achieved["tiled"][n] for n in NS]),
        "torch SDPA (float32)": (fused_x, [achieved["torch SDPA"][n] for n in NS]),
    },
    intensity_range=(1.0, 3000.0),
    labels={
        "naive (float32)": ["n=256", "", "", "", "n=4096"],
        "torch SDPA (float32)": [f"n={n}" for n in NS],
    },
)
ax.set_title("Roofline of this CPU (measured ceilings) and attention, B = 1, H = 4, d = 64")
plt.show()

# %%
# NBVAL_IGNORE_OUTPUT
naive_roof_4096 = hw.roofline(naive_x[-1], peak["float32"], dram_gbs)
print(f"naive at n = 4096: intensity {naive_x[-1]:.1f} FLOP/byte, roof {naive_roof_4096:.0f},")
print(f"  achieved {achieved['naive'][4096]:.0f} GFLOP/s; SDPA {achieved['torch SDPA'][4096]:.0f}")
print(f"naive at n = 256: achieved {achieved['naive'][256]:.0f} GFLOP/s (scores: 1 MiB)")
assert fused_x[-1] > 10 * ridge, "claim: 'the fused points sit far right of the ridge'"
assert achieved["naive"][256] > 2 * achieved["naive"][4096], "claim: 'in vs out of cache'"
assert achieved["naive"][256] > achieved["torch SDPA"][256] / 4, "claim: 'of the same order'"
glue("ch14_naive_intensity_over_ridge", naive_x[-1] / ridge, display=False)
glue("ch14_sdpa_fraction_of_peak", achieved["torch SDPA"][4096] / peak["float32"], display=False)
glue("ch14_naive_small_vs_sdpa", achieved["naive"][256] / achieved["torch SDPA"][256], display=False)
glue("ch14_naive_fraction_of_roof", achieved["naive"][4096] / naive_roof_4096, display=False)
glue("ch14_naive_cache_drop", achieved["naive"][256] / achieved["naive"][4096], display=False)

# %% [markdown]
# How to read it. The fused points sit far to the right of the ridge point, in the
# compute-bound region (their intensity at $n = 4096$ is more than 10 times the ridge
# point, the assert checks), and the C++ kernel is limited by arithmetic, as a matmul is:
# on the machine that built this page it ran at {glue:text}`ch14_sdpa_fraction_of_peak:.0%`
# of the float32 matmul ceiling. The naive points all sit near the same low intensity,
# about 10 FLOP/byte, whatever $n$.
#
# **Where a CPU differs from a GPU.** Two things make this CPU's picture less clear-cut
# than a GPU's, and both are visible above.
#
# - *The ridge point is low.* One core gives a modest compute ceiling next to the memory
#   bus, so the ridge point is a few to a few tens of FLOP/byte, not hundreds, and naive
#   attention's intensity is not far from it: on the machine that built this page it was
#   {glue:text}`ch14_naive_intensity_over_ridge:.1f` times the ridge point (a value above
#   1 puts it, nominally, on the compute-bound side). The roofline alone therefore predicts only a modest penalty
#   for the naive version. A recent GPU's tensor cores have a ridge point in the hundreds
#   of FLOP/byte (their compute ceiling has grown even faster than memory bandwidth), which
#   puts naive attention deep in the memory-bound region.
# - *The caches are large.* At $n = 256$ the scores of four heads are 1 MiB and never
#   leave the caches (the small copies above ran faster than the large one); the naive
#   version's throughput is then of the same order as the fused kernel's (at least a
#   quarter of it, the assert checks; on the machine that built this page
#   {glue:text}`ch14_naive_small_vs_sdpa:.0%` of it). At $n = 4096$ they are
#   256 MiB per copy, and the naive version's throughput drops below half its small-$n$
#   value (the assert checks; here it was {glue:text}`ch14_naive_cache_drop:.1f` times
#   lower) and below the fused kernel's. A GPU's on-chip
#   memory is a few hundred KiB per streaming multiprocessor, so there the $n \times n$
#   matrix goes to HBM at far smaller $n$.
#
# The naive version also stays well below its own roof at large $n$ (here at
# {glue:text}`ch14_naive_fraction_of_roof:.0%` of it): the roofline is an upper bound, and
# the naive code pays costs that the model ignores, the exponentials of the softmax and,
# above all, fresh multi-hundred MiB buffers that the operating system must zero page by
# page on first touch. That is why FlashAttention mattered first on GPUs; on a CPU the
# same idea pays off too, and at large $n$ by the factor measured above.

# %% [markdown]
# (ch14-dispatch)=
# ## Which kernel PyTorch picks on a CPU, and why
#
# `F.scaled_dot_product_attention` is a dispatcher: it checks its arguments and calls one
# of several kernels. Which one ran can be read from the profiler: `hw.sdpa_backend` runs
# the call under `torch.autograd.profiler.profile` and returns the `aten` kernel it saw,
# `aten::_scaled_dot_product_flash_attention_for_cpu` (the fused, tiled kernel) or
# `aten::_scaled_dot_product_attention_math` (the fallback that builds the scores, like
# our naive version). We try the cases that matter in practice.

# %%
g = torch.Generator().manual_seed(0)
q, k, v = (torch.randn(2, 4, 128, 64, generator=g) for _ in range(3))  # (B, H, n, d)
bool_mask = torch.rand(128, 128, generator=g) > 0.2  # True = may attend
cases = {
    "float32": ((q, k, v), {}),
    "float64": ((q.double(), k.double(), v.double()), {}),
    "bfloat16": ((q.bfloat16(), k.bfloat16(), v.bfloat16()), {}),
    "float16": ((q.half(), k.half(), v.half()), {}),
    "bool mask": ((q, k, v), {"attn_mask": bool_mask}),
    "float (additive) mask": ((q, k, v), {"attn_mask": torch.zeros(128, 128)}),
    "is_causal=True": ((q, k, v), {"is_causal": True}),
    "requires_grad": ((q.clone().requires_grad_(), k, v), {}),
    "head width 65": (tuple(torch.randn(2, 4, 128, 65, generator=g) for _ in range(3)), {}),
    "non-contiguous (transposed)": ((q.transpose(1, 2).contiguous().transpose(1, 2), k, v), {}),
    "dropout_p=0.1": ((q, k, v), {"dropout_p": 0.1}),
    "3-D input (B*H, n, d)": ((q.flatten(0, 1), k.flatten(0, 1), v.flatten(0, 1)), {}),
}
backends = {name: hw.sdpa_backend(*args, **kwargs) for name, (args, kwargs) in cases.items()}
for name, kernel in backends.items():
    print(f"{name:>28} -> {kernel}")

# %%
FLASH = "aten::_scaled_dot_product_flash_attention_for_cpu"
MATH = "aten::_scaled_dot_product_attention_math"
falls_back = {"dropout_p=0.1", "3-D input (B*H, n, d)"}
for name, kernel in backends.items():
    assert kernel == (MATH if name in falls_back else FLASH), (name, kernel)
with sdpa_kernel(SDPBackend.MATH):
    assert hw.sdpa_backend(q, k, v) == MATH, (  # the context manager forces a backend
        f"sdpa_kernel(SDPBackend.MATH) must force {MATH}; found {hw.sdpa_backend(q, k, v)}"
    )

# %% [markdown]
# In torch 2.13 the fused CPU kernel handles every floating dtype (float64 included),
# boolean and additive masks, causal masking, inputs that require gradients,
# odd head widths and strided inputs. Two cases fall back to the math path:
# **dropout on the attention weights**, and **inputs without a separate heads
# dimension**. We did not guess these rules: forbid the math path and PyTorch states its
# reasons in warnings.


# %%
def why_not_fused(*args, **kwargs) -> list[str]:
    """PyTorch's own reasons for refusing the fused CPU kernel on this call."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                F.scaled_dot_product_attention(*args, **kwargs)
        except RuntimeError:
            pass
    return [str(w.message).split(" (Triggered")[0] for w in caught]


for name in sorted(falls_back):
    args, kwargs = cases[name]
    reasons = why_not_fused(*args, **kwargs)
    print(f"{name}: {reasons[-1]}")
    assert reasons, name

# %% [markdown]
# The 3-D case is a trap worth knowing: `(B*H, n, d)` tensors, common in older code,
# silently take the math path with its $O(n^2)$ memory. Adding a dimension costs nothing
# (a view) and restores the fused kernel. The peak extra memory of each call, and its time
# (in turns):

# %%
# NBVAL_IGNORE_OUTPUT
q, k, v = bench.make_inputs(N_BIG)  # (1, 4, 4096, 64)
q3, k3, v3 = (t.flatten(0, 1) for t in (q, k, v))  # (4, 4096, 64): the same data, 3-D
layouts = {
    "4-D": lambda: F.scaled_dot_product_attention(q, k, v),
    "3-D": lambda: F.scaled_dot_product_attention(q3, k3, v3),
    "3-D with [None]": lambda: F.scaled_dot_product_attention(q3[None], k3[None], v3[None]),
}
with torch.inference_mode():
    layout_mib = {name: bench.measure_peak_extra(fn) / 2**20 for name, fn in layouts.items()}
layout_seconds = bench.time_in_turns(layouts, repeats=2)
for name in layouts:
    print(f"{name:>16}: {layout_mib[name]:6.1f} MiB, {layout_seconds[name] * 1e3:6.1f} ms")
print(f"(one 4 x {N_BIG} x {N_BIG} float32 score tensor: {score_mib_big:.0f} MiB)")
assert layout_mib["3-D"] >= score_mib_big, "claim: 'the math path with its O(n^2) memory'"
assert (
    layout_mib["4-D"] < score_mib_big / 10 and layout_mib["3-D with [None]"] < score_mib_big / 10
), (
    "claim no longer holds: 'the two 4-D calls a small fraction of one' score tensor (measured "
    f"{layout_mib['4-D']:.3g} and {layout_mib['3-D with [None]']:.3g} MiB, "
    f"score tensor {score_mib_big:.3g} MiB)"
)
slowdown_3d = layout_seconds["3-D"] / layout_seconds["3-D with [None]"]
glue("ch14_3d_slowdown_4096", slowdown_3d, display=False)

# %% [markdown]
# The 3-D call held at least one $n \times n$ score tensor at its peak, the two 4-D calls
# a small fraction of one (the asserts). On the machine that built this page the 3-D call
# took {glue:text}`ch14_3d_slowdown_4096:.1f` times as long as the same data with a heads
# dimension added.

# %% [markdown]
# (ch14-compile)=
# ## torch.compile on a CPU
#
# `torch.compile` {cite:p}`ansel2024pytorch` traces a Python function into a graph
# (TorchDynamo) and hands it to a compiler back end, by default *Inductor*, which on a CPU
# generates C++ with OpenMP and compiles it with the system's compiler. Two things
# happen to attention. Inductor has a pattern matcher for the standard attention
# subgraph, `softmax(q @ k^T * scale) @ v` and its variants, which it replaces by the
# fused SDPA kernel; and whatever element-wise chain remains is fused into loops that read
# and write each element once. We compile the naive function, and a variant that SDPA
# has no argument for, scores *soft-capped* with $c \tanh(s / c)$ before the softmax (a
# bound on the logits used in some recent models), and look at the code Inductor generated
# (`hw.compile_attention` keeps it, via `torch._inductor.utils.run_and_get_code`).
# Compilation takes seconds and is reported; on a machine without a C++ compiler the cell
# says so instead of failing.


# %%
def softcapped_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cap: float = 30.0
) -> torch.Tensor:
    """Naive attention with soft-capped scores ``cap * tanh(s / cap)``: five passes over (n, n)."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, H, n, n)
    scores = cap * torch.tanh(scores / cap)  # |scores| < cap
    return torch.softmax(scores, dim=-1) @ v  # (B, H, n, d)


# %%
# NBVAL_IGNORE_OUTPUT
# A fresh, empty cache: report what compiling costs the first time, as in CI (it is
# deleted after the timings below).
os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="ch14_inductor_")
# One compiler process, not a pool of workers: the book gives each chapter one core.
torch._inductor.config.compile_threads = 1
N_COMPILE = 2048
q, k, v = bench.make_inputs(N_COMPILE)
compiled, compile_seconds, generated = {}, {}, {}
for name, fn in (("naive", bench.naive_attention), ("soft-capped", softcapped_attention)):
    result = hw.compile_attention(fn, q, k, v, dynamic=False)
    if result.error is None:
        compiled[name], compile_seconds[name] = result.fn, result.compile_seconds
        generated[name] = result.code  # the wrapper code Inductor generated
        print(f"compiled {name!r} in {result.compile_seconds:.1f} s")
    else:
        print(f"torch.compile failed for {name!r} on this machine: {result.error}")

# %%
# NBVAL_IGNORE_OUTPUT
CALL = re.compile(r"(torch\.ops\.aten\.\w+|extern_kernels\.\w+|cpp_fused_\w+)(?:\.default)?\(")
if len(compiled) == 2:
    calls = {name: CALL.findall(code) for name, code in generated.items()}
    for name, names in calls.items():
        print(f"{name}: the generated code calls", ", ".join(names))
    assert calls["naive"] == ["torch.ops.aten._scaled_dot_product_flash_attention_for_cpu"], (
        "claim no longer holds: 'only a call to _scaled_dot_product_flash_attention_for_cpu' "
        f"(measured calls {calls['naive']})"
    )
    assert calls["soft-capped"].count("extern_kernels.bmm") == 2, (
        "claim no longer holds: 'it compiles to two bmm calls' "
        f"(measured {calls['soft-capped'].count('extern_kernels.bmm')})"
    )
    assert sum(c.startswith("cpp_fused") for c in calls["soft-capped"]) == 1, (
        "claim no longer holds: 'around one generated C++ kernel' (measured "
        f"{sum(c.startswith('cpp_fused') for c in calls['soft-capped'])} cpp_fused kernels)"
    )
else:
    print("No compiler: skipped. Inductor needs a C++ compiler (gcc or clang) on a CPU.")

# %% [markdown]
# The naive function was *rewritten*: its compiled code contains no matrix product and no
# softmax, only a call to `_scaled_dot_product_flash_attention_for_cpu`. The pattern
# matcher recognised attention and swapped in the IO-aware kernel. The soft-capped
# variant matches no pattern; it compiles to two `bmm` calls to the math library around
# one generated C++ kernel (`cpp_fused_...`, named after the operations it fused) that
# does the scaling, the tanh, the max, the exponentials, the sum and the division in one
# pass. The $n \times n$ matrix is still written out, but once instead of five times.
# Timings and agreement:

# %%
# NBVAL_IGNORE_OUTPUT
candidates = {
    "naive, eager": bench.naive_attention,
    "soft-capped, eager": softcapped_attention,
    **{f"{name}, compiled": fn for name, fn in compiled.items()},
    "torch SDPA": F.scaled_dot_product_attention,
}
compile_times = bench.time_in_turns(
    {name: (lambda fn=fn: fn(q, k, v)) for name, fn in candidates.items()}, repeats=3
)
with torch.no_grad():
    references = {
        "naive": bench.naive_attention(q.double(), k.double(), v.double()),
        "soft-capped": softcapped_attention(q.double(), k.double(), v.double()),
        "torch SDPA": bench.naive_attention(q.double(), k.double(), v.double()),
    }
    for name, fn in candidates.items():
        err = (fn(q, k, v).double() - references[name.split(",")[0]]).abs().max().item()
        print(f"{name:>24}: {compile_times[name] * 1e3:7.1f} ms, max |error| {err:.1e}")
        assert err < 1e-5, name

# %%
# NBVAL_IGNORE_OUTPUT
if len(compiled) == 2:
    naive_speedup = compile_times["naive, eager"] / compile_times["naive, compiled"]
    capped_speedup = compile_times["soft-capped, eager"] / compile_times["soft-capped, compiled"]
    print(f"compiled / eager: naive {naive_speedup:.1f}x, soft-capped {capped_speedup:.1f}x")
    print(f"compilation: {', '.join(f'{k} {t:.1f} s' for k, t in compile_seconds.items())}")
    capped_vs_sdpa = compile_times["soft-capped, compiled"] / compile_times["torch SDPA"]
    compiled_naive_vs_sdpa = compile_times["naive, compiled"] / compile_times["torch SDPA"]
    with torch.inference_mode():
        capped_mib = bench.measure_peak_extra(lambda: compiled["soft-capped"](q, k, v)) / 2**20
    print(f"peak extra memory of the compiled soft-capped function: {capped_mib:.0f} MiB")
    assert capped_mib >= BH * N_COMPILE**2 * 4 / 2**20, "claim: 'still writes the n x n matrix'"
else:
    naive_speedup = capped_speedup = capped_vs_sdpa = compiled_naive_vs_sdpa = float("nan")
glue("ch14_compiled_naive_vs_sdpa", compiled_naive_vs_sdpa, display=False)
glue("ch14_compiled_capped_vs_sdpa", capped_vs_sdpa, display=False)
glue("ch14_compile_speedup_naive_2048", float(naive_speedup), display=False)
glue("ch14_compile_speedup_softcap_2048", float(capped_speedup), display=False)
for name in ("naive", "soft-capped"):
    key = "softcap" if name == "soft-capped" else name
    glue(f"ch14_compile_seconds_{key}", float(compile_seconds.get(name, math.nan)), display=False)
shutil.rmtree(os.environ.pop("TORCHINDUCTOR_CACHE_DIR"), ignore_errors=True)  # compiled already

# %% [markdown]
# Compiled, the naive function *becomes* SDPA (the generated code above calls nothing
# else), so it runs at the fused kernel's speed: on the machine that built this page it
# ran {glue:text}`ch14_compile_speedup_naive_2048:.1f` times as fast as the eager version,
# in {glue:text}`ch14_compiled_naive_vs_sdpa:.2f` times SDPA's own time. For the
# soft-capped variant, fusing the element-wise passes cuts the traffic over the scores,
# but the two products still write and read the $n \times n$ matrix (its peak extra
# memory holds at least one, asserted); here compiling made it
# {glue:text}`ch14_compile_speedup_softcap_2048:.1f` times as fast, and it still took
# {glue:text}`ch14_compiled_capped_vs_sdpa:.1f` times SDPA's time.
# Compilation itself costs seconds, once per shape, and more when there is C++ code to
# generate and compile, as for the soft-capped function, while the naive one needed none:
# here {glue:text}`ch14_compile_seconds_naive:.1f` s and
# {glue:text}`ch14_compile_seconds_softcap:.1f` s (`dynamic=True` trades some speed for one
# compilation across shapes). A compiler is a strong ally; the surest
# way to get the fused kernel is still to call it, `F.scaled_dot_product_attention`, and
# for variants like soft-capping, PyTorch's FlexAttention generates fused kernels from a
# small Python score function.

# %% [markdown]
# (ch14-bf16)=
# ## bfloat16 on a CPU
#
# A float32 number has 1 sign bit, 8 exponent bits and 23 mantissa bits. float16 keeps 5
# exponent bits and 10 mantissa bits; **bfloat16** ("brain float") keeps float32's 8
# exponent bits and only 7 mantissa bits {cite:p}`kalamkar2019study`. So bfloat16 is
# coarser than float16 (its machine epsilon is 8 times larger) but covers the same range
# as float32, up to about $3.4 \times 10^{38}$, where float16 stops at 65504.
# Mixed-precision training in float16 needs *loss scaling* to keep small gradients from
# underflowing and large values from overflowing {cite:p}`micikevicius2018mixed`;
# bfloat16 does not, which is why it became the default for training large models.

# %%
for name in ("float32", "bfloat16", "float16"):
    info = torch.finfo(dtypes[name])
    print(
        f"{name:>8}: {info.bits} bits, max {info.max:.3e}, smallest normal {info.tiny:.3e}, eps {info.eps:.1e}"
    )
assert torch.finfo(torch.bfloat16).max > 1e38 and torch.finfo(torch.float16).max == 65504, (
    "claim no longer holds: 'bfloat16 up to about 3.4e38, where float16 stops at 65504' "
    f"(measured {torch.finfo(torch.bfloat16).max:.3g} and {torch.finfo(torch.float16).max:.6g})"
)
big = torch.tensor([70000.0, 1e30])
print("float16 :", big.half().tolist(), "| bfloat16:", big.bfloat16().tolist())
assert torch.isinf(big.half()).all() and torch.isfinite(big.bfloat16()).all(), (
    "claim no longer holds: 'bfloat16 covers the range of float32, float16 stops at 65504' "
    f"(measured float16 {big.half().tolist()}, bfloat16 {big.bfloat16().tolist()})"
)

# %% [markdown]
# Rounding float32 to bfloat16 is simply dropping the low 16 bits of the bit pattern,
# with round-to-nearest-even; `hw.round_to_bfloat16` does it with integer operations, and
# it agrees bit for bit with PyTorch's conversion (you write it yourself in the
# exercises):

# %%
x = torch.tensor([1.0, 1.0 + 2**-8, 1.0 + 3 * 2**-8, math.pi, -1e-39, 3.4e38])
print(hw.round_to_bfloat16(x))
assert torch.equal(hw.round_to_bfloat16(x), x.to(torch.bfloat16).float()), (
    "claim no longer holds: 'it agrees bit for bit with PyTorch's conversion' (measured "
    f"{int((hw.round_to_bfloat16(x) != x.to(torch.bfloat16).float()).sum())} values differ)"
)

# %% [markdown]
# ### Overflow in attention scores
#
# Attention logits can be large: unnormalised queries and keys, a missing $1/\sqrt d$, or
# the outlier features of large models. With raw scores $q \cdot k$ approaching $10^5$,
# the naive function in float16 overflows in its first product (65504 is float16's
# largest number), and the softmax turns the infinities into NaN. In bfloat16 the scores
# stay finite. PyTorch's fused kernel survives in both formats, because it accumulates
# the scores in float32 inside the kernel.

# %%
g = torch.Generator().manual_seed(0)
q, k, v = (torch.randn(1, 2, 64, 64, generator=g) for _ in range(3))
q_big = q * 3000.0  # raw scores q.k up to about 10^5
reference = bench.naive_attention(q_big.double(), k.double(), v.double())
largest = (q_big.double() @ k.double().transpose(-2, -1)).abs().max().item()
scores16 = q_big.half() @ k.half().transpose(-2, -1)
print(f"largest |q.k| (float64): {largest:.3g}; float16 scores infinite: {scores16.isinf().any()}")
outputs = {}
for name in ("float16", "bfloat16"):
    dt = dtypes[name]
    for impl, fn in (("naive", bench.naive_attention), ("SDPA", F.scaled_dot_product_attention)):
        out = fn(q_big.to(dt), k.to(dt), v.to(dt)).double()
        outputs[impl, name] = out
        err = (out - reference).abs().max().item()  # NaN if any output is NaN
        print(
            f"{impl:>5} in {name:>8}: {out.isnan().sum().item():4d} NaN outputs, max |error| {err:.3g}"
        )
assert largest > 65504 and scores16.isinf().any(), (
    "claim no longer holds: 'the naive function in float16 overflows in its first product' "
    f"(measured largest |q.k| {largest:.3g}, infinite scores: {bool(scores16.isinf().any())})"
)
assert outputs["naive", "float16"].isnan().any(), (
    "claim no longer holds: 'the softmax turns the infinities into NaN' "
    f"(measured {int(outputs['naive', 'float16'].isnan().sum())} NaN outputs)"
)
assert torch.isfinite(outputs["naive", "bfloat16"]).all(), (
    "claim no longer holds: 'in bfloat16 the scores stay finite' (measured "
    f"{int((~torch.isfinite(outputs['naive', 'bfloat16'])).sum())} non-finite outputs)"
)
assert torch.isfinite(outputs["SDPA", "float16"]).all(), (
    "claim no longer holds: 'the fused kernel survives in both formats' (measured "
    f"{int((~torch.isfinite(outputs['SDPA', 'float16'])).sum())} non-finite outputs in float16)"
)
assert torch.isfinite(outputs["SDPA", "bfloat16"]).all(), (
    "claim no longer holds: 'the fused kernel survives in both formats' (measured "
    f"{int((~torch.isfinite(outputs['SDPA', 'bfloat16'])).sum())} non-finite outputs in bfloat16)"
)
assert (outputs["naive", "bfloat16"] - reference).abs().max() > 0.5, "claim: 'of the order of the values'"

# %% [markdown]
# Finite is not the same as accurate. With 8 bits of precision, a score near $10^5$ is
# rounded by hundreds, enough to change which key wins a nearly one-hot softmax, and the
# naive bfloat16 error printed above is of the order of the values themselves (above 0.5,
# the assert checks; the values are standard normal). bfloat16 fails
# gracefully where float16 fails catastrophically; the cure for huge logits is in the
# model (normalised or soft-capped scores), not in the number format.

# %% [markdown]
# ### Speed and accuracy of bfloat16 attention
#
# On a CPU the gain from bfloat16 comes from its matrix instructions (AMX tiles on recent
# Intel server chips), and from halving the bytes. We time SDPA in both precisions at
# $n = 4096$, in turns, and measure the error of each low precision
# against a float64 reference at $n = 1024$ with ordinary (unit-variance) inputs.

# %%
# NBVAL_IGNORE_OUTPUT
q, k, v = bench.make_inputs(N_BIG)
qb, kb, vb = q.bfloat16(), k.bfloat16(), v.bfloat16()
sdpa_times = bench.time_in_turns(
    {
        "float32": lambda: F.scaled_dot_product_attention(q, k, v),
        "bfloat16": lambda: F.scaled_dot_product_attention(qb, kb, vb),
    },
    repeats=3,
)
sdpa_f32, sdpa_bf16 = sdpa_times["float32"], sdpa_times["bfloat16"]
bf16_sdpa_speedup = sdpa_f32 / sdpa_bf16
print(f"SDPA at n = {N_BIG}: float32 {sdpa_f32 * 1e3:.1f} ms, bfloat16 {sdpa_bf16 * 1e3:.1f} ms")
print(f"bfloat16 speed-up: SDPA {bf16_sdpa_speedup:.1f}x, matmul {bf16_matmul_speedup:.1f}x")

# %%
q, k, v = bench.make_inputs(1024, seed=2)
reference = F.scaled_dot_product_attention(q.double(), k.double(), v.double())
errors, roundings = {}, {}
for name in ("float32", "bfloat16", "float16"):
    dt = dtypes[name]
    out = F.scaled_dot_product_attention(q.to(dt), k.to(dt), v.to(dt)).double()
    errors[name] = (out - reference).abs().max().item()
    roundings[name] = (v.to(dt).double() - v.double()).abs().max().item()
    print(f"SDPA {name:>8}: max |error| {errors[name]:.2e}", end=" ")
    print(f"(largest rounding error of one input value: {roundings[name]:.2e})")
assert errors["float32"] < 1e-5, (
    f"float32 SDPA must match float64 to float32 rounding; max error {errors['float32']:.1e}"
)
assert errors["float32"] < errors["float16"] < errors["bfloat16"] < 2e-2, (
    "claim no longer holds: 'errors in the order float32, float16, bfloat16, below 2e-2' "
    f"(measured {errors['float32']:.2e}, {errors['float16']:.2e}, {errors['bfloat16']:.2e})"
)
assert errors["float16"] < roundings["float16"] and errors["bfloat16"] < roundings["bfloat16"], (
    "claim no longer holds: 'each smaller than the largest rounding error of one input' "
    f"(measured float16 {errors['float16']:.2e} vs {roundings['float16']:.2e}, "
    f"bfloat16 {errors['bfloat16']:.2e} vs {roundings['bfloat16']:.2e})"
)
glue("ch14_bf16_sdpa_max_error", float(errors["bfloat16"]), display=False)

# %%
if has_amx_bf16:  # AMX multiplies bfloat16 tiles many times faster than float32 vectors
    assert bf16_matmul_speedup > 2.0, f"claim: 'clearly faster with AMX' ({bf16_matmul_speedup:.1f}x)"
glue("ch14_bf16_sdpa_speedup_4096", float(bf16_sdpa_speedup), display=False)
glue("ch14_bf16_matmul_speedup", float(bf16_matmul_speedup), display=False)
if has_amx_bf16:
    bf16_hardware = "AMX bfloat16 tiles"
elif has_avx512_bf16:
    bf16_hardware = "AVX-512 bfloat16 dot products, no AMX tiles"
else:
    bf16_hardware = "no bfloat16 matrix instructions"
glue("ch14_bf16_hardware", bf16_hardware, display=False)

# %% [markdown]
# The errors come out in the order of the formats' precision (float32, then float16,
# then bfloat16, which has 3 fewer mantissa bits than float16), below $2 \times 10^{-2}$
# for bfloat16, and each smaller than the largest rounding error of a single input value
# (printed next to it), because every output averages many rounded values (the asserts
# check all three statements). That is adequate for a network's activations, which is why
# inference and training run attention in bfloat16; the softmax statistics and
# accumulations are kept in float32 inside the fused kernel. The speed depends on the
# hardware. On a CPU with AMX bfloat16 tiles bfloat16 matrix products are clearly faster
# (where the AMX flag printed at the top of the chapter is `True`, the assert above
# requires at least 2x); AVX-512 bfloat16 dot-product instructions also help; on a CPU
# without either the conversion costs time and bfloat16 may be no faster at all, and a
# kernel such as SDPA gains only where its inner loops use those instructions. The CPU
# that built this page has {glue:text}`ch14_bf16_hardware`: float32 time divided by
# bfloat16 time was {glue:text}`ch14_bf16_matmul_speedup:.1f` for the matrix product and
# {glue:text}`ch14_bf16_sdpa_speedup_4096:.1f` for SDPA at $n = 4096$.
# Measure on the machine you deploy on.

# %% [markdown]
# (ch14-gpu)=
# ## On a GPU
#
# On a CUDA GPU, SDPA chooses among more kernels: FlashAttention-2
# {cite:p}`dao2023flashattention2` (`SDPBackend.FLASH_ATTENTION`), the memory-efficient
# kernel of xFormers (`EFFICIENT_ATTENTION`, after {cite:t}`rabe2021self`), cuDNN's
# attention (`CUDNN_ATTENTION`) and the math path. The cell below times each of them in
# bfloat16, with CUDA events and a synchronisation before reading the clock (GPU calls are
# asynchronous: without it one times the launch, not the work). It runs only where a GPU
# is present.


# %%
# NBVAL_IGNORE_OUTPUT
def cuda_seconds(fn, repeats: int = 10) -> float:
    """Minimum over ``repeats`` of the GPU time of ``fn()``, measured with CUDA events."""
    fn()  # warm-up: kernel selection, caches
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    best = math.inf
    for _ in range(repeats):
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()  # wait for the kernel before reading the events
        best = min(best, start.elapsed_time(end) / 1e3)  # elapsed_time is in ms
    return best


if torch.cuda.is_available():
    gpu_backends = {
        "flash (FlashAttention-2)": SDPBackend.FLASH_ATTENTION,
        "memory-efficient": SDPBackend.EFFICIENT_ATTENTION,
        "cuDNN": SDPBackend.CUDNN_ATTENTION,
        "math": SDPBackend.MATH,
    }
    print("GPU:", torch.cuda.get_device_name())
    for n in (1024, 4096):
        gq, gk, gv = (t.to("cuda", torch.bfloat16) for t in bench.make_inputs(n, batch=4, heads=16))
        flops = hw.attention_flops(n, D, batch_heads=4 * 16)
        for name, backend in gpu_backends.items():
            try:
                with sdpa_kernel(backend), torch.no_grad():
                    t = cuda_seconds(
                        lambda q=gq, k=gk, v=gv: F.scaled_dot_product_attention(q, k, v)
                    )
                print(f"n = {n}, {name:>24}: {t * 1e3:7.3f} ms, {flops / t / 1e12:6.1f} TFLOP/s")
            except RuntimeError as err:
                print(f"n = {n}, {name:>24}: not available ({str(err).splitlines()[0]})")
else:
    print("No CUDA GPU on this machine: the GPU timings are skipped (see the note below).")

# %% [markdown]
# ```{note}
# Where the book is built on a CPU, as in CI, the cell above printed only a note. On a
# recent NVIDIA GPU one expects the fused kernels (flash, memory-efficient, cuDNN) to be
# several times faster than the math path at $n = 4096$ (which also needs $n^2$ memory
# per head). That is the story of the CPU with a larger gap, which this book does not
# measure: a GPU's compute ceiling is tens of times higher while its on-chip memory is
# small, so a kernel that sends the scores to HBM is memory-bound by a wide margin. FlashAttention-2
# reorganised the work across threads to reach a large fraction of the matmul ceiling
# {cite:p}`dao2023flashattention2`; FlashAttention-3 uses the asynchronous copies and FP8
# tensor cores of Hopper GPUs {cite:p}`shah2024flashattention3`. None of these reduces the
# FLOP count of attention: they change the bytes moved, the precision and the scheduling.
# The forward pass does the same $4n^2d$ FLOPs per head; the backward pass even does
# *more* than the standard one, because it recomputes the scores and the softmax weights
# from $Q$, $K$ and the saved row statistics instead of reading an $n \times n$ matrix back
# from memory {cite:p}`dao2022flashattention`: extra arithmetic is cheaper than the bytes.
# ```

# %% [markdown]
# (ch14-trend)=
# ## The seed's trend 5, with evidence
#
# The measurements of this chapter, all on one core of one unchanged CPU, collected:

# %%
# NBVAL_IGNORE_OUTPUT
summary = {
    "IO-aware fused kernel vs naive, n = 4096 (time)": fused_speedup,
    "IO-aware fused kernel vs naive, n = 4096 (peak memory)": memory_ratio,
    "bfloat16 vs float32 SDPA, n = 4096 (time)": bf16_sdpa_speedup,
    f"bfloat16 vs float32 matmul, n = {MATMUL_N} (time)": bf16_matmul_speedup,
}
if len(compiled) == 2:
    summary["torch.compile vs eager naive, n = 2048 (time)"] = naive_speedup
    summary["torch.compile vs eager soft-capped, n = 2048 (time)"] = capped_speedup
for what, factor in summary.items():
    print(f"{what:<56} {factor:6.1f}x")

# %% [markdown]
# - **Fewer bytes, same FLOPs.** In the forward pass the fused kernel does exactly the
#   arithmetic of the naive one and wins by keeping the scores on chip: less time by the
#   factor above and more than ten times less memory at $n = 4096$ (asserted; here
#   {glue:text}`ch14_fused_memory_ratio_4096:.0f` times, {ref}`ch14-three-ways`). On
#   the roofline its intensity, $n/4$, is about a hundred times the naive version's at
#   $n = 4096$ and grows with $n$, far to the right of the ridge point, in the
#   compute-bound region ({ref}`ch14-intensity`). On a CPU core
#   the naive version is not deep in the memory-bound region, because the ridge point is
#   low (on the machine that built this page naive attention's intensity was
#   {glue:text}`ch14_naive_intensity_over_ridge:.1f` times it), so much of the gain there
#   comes from costs that the roofline leaves out (the fresh buffers of the naive
#   version, see {ref}`ch14-three-ways`); on a GPU,
#   whose ridge point is in the hundreds, the same change moves attention from far below
#   the ridge to above it.
# - **The right low precision.** bfloat16 halves every byte and feeds the matrix units;
#   it keeps float32's exponent, so the large logits that break float16 do not break it
#   ({ref}`ch14-bf16`).
# - **Compilers.** `torch.compile` fused the element-wise passes and even replaced the
#   naive attention by the fused kernel ({ref}`ch14-compile`).
#
# Faster chips matter too, but they multiply what these three ideas give; and each of
# these ideas was needed *because* of the hardware's balance: arithmetic has grown much
# faster than memory bandwidth, so the ridge point keeps moving right and more kernels
# fall on the memory-bound side.

# %% [markdown]
# (ch14-summary)=
# ## Summary
#
# - A machine has two ceilings, peak FLOP/s and memory bandwidth; a kernel's arithmetic
#   intensity (FLOP/byte) says which one limits it: attainable $=\min(\text{peak},
#   I \times \text{bandwidth})$.
# - Naive attention's intensity is bounded (about $d/6$ FLOP/byte here, because the
#   $n \times n$ scores go through memory); fused attention's grows like $n/4$.
# - On a CPU in torch 2.13, SDPA's fused kernel is the one that runs for all dtypes,
#   masks, causal attention and training; dropout and 3-D inputs fall back to the math
#   path.
# - `torch.compile` rewrites the attention pattern into the fused kernel and fuses
#   element-wise chains; compilation costs seconds, once per shape (on the machine that
#   built this page {glue:text}`ch14_compile_seconds_naive:.1f` s for the naive function,
#   {glue:text}`ch14_compile_seconds_softcap:.1f` s for the soft-capped one).
# - bfloat16 has float32's range and float16's size; it is fast where the hardware has
#   bfloat16 matrix units, and accurate enough for attention.

# %% [markdown]
# ## Exercises
#
# The exercises for this chapter are in `exercises/14_hardware_acceleration.ipynb`. You
# will write
#
# 1. `naive_attention_bytes`: the bytes that naive attention moves;
# 2. `fused_attention_bytes`: the bytes that fused attention moves;
# 3. `attainable_gflops`: the roofline;
# 4. `round_to_bfloat16`: float32 to bfloat16 with round-to-nearest-even, with integer
#    operations on the bits.
#
# Grade your work with `python -m attnkit.grade 14`.

# %% [markdown]
# (ch14-interview)=
# ## Interview question
#
# ```{admonition} Interview question
# :class: tip
#
# **题目：** 请分析自注意力机制在未来自然语言处理领域的发展趋势。
#
# :::{english-only}
# **Question:** Analyse the development trends of self-attention in the future of natural
# language processing.
# :::
#
# *This chapter answers the hardware-acceleration trend (硬件加速).*
#
# **Model answer.** GPUs and TPUs are the starting point, not the trend; the substance is
# fitting attention to the hardware's balance of arithmetic and memory traffic. Attention does $4n^2d$ FLOPs per head; computed naively it also writes and
# reads the $n \times n$ scores, so its arithmetic intensity stays near a constant (about
# $d/6$ FLOP/byte in float32, $d/3$ in bfloat16) while a recent GPU's ridge point for its
# tensor cores is in the hundreds: it is memory-bound ({ref}`ch14-intensity`). IO-aware kernels (FlashAttention and its
# successors) tile the computation with an online softmax so that the scores never leave
# on-chip memory: the same forward FLOPs (the backward pass recomputes the scores, trading
# a little arithmetic for many bytes), far fewer bytes, $O(n)$ memory. Even on the one CPU
# core that built this page, PyTorch's fused kernel was
# {glue:text}`ch14_fused_speedup_4096:.1f` times as fast as the naive version at
# $n = 4096$, with {glue:text}`ch14_fused_memory_ratio_4096:.0f` times less extra memory
# ({ref}`ch14-three-ways`). Second, lower precision in the right format: bfloat16 keeps
# float32's 8-bit exponent, so it needs no loss scaling and does not overflow on large
# logits where float16 does, while halving the bytes and using matrix units (tensor cores,
# AMX); FP8 is the next step {cite:p}`shah2024flashattention3` ({ref}`ch14-bf16`). Third,
# compilers: `torch.compile` fuses element-wise chains and rewrites the attention pattern
# into the fused kernel ({ref}`ch14-compile`). The pitfall: check which kernel actually
# runs, since dropout or 3-D inputs silently fall back to the math path
# ({ref}`ch14-dispatch`), and measure on the target machine. Next come paged key/value
# caches for serving {cite:p}`kwon2023efficient` and long sequences spread over devices
# ({ref}`ch15-sequence`).
# ```

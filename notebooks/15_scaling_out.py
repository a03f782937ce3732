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
# # Scaling out: data-parallel training
#
# Every model in this book trains on one CPU in a few minutes. The models that made
# self-attention famous do not: their training runs for weeks on thousands of accelerators
# at once, and the way a Transformer is spread over many devices is as much a part of the
# field's development as any change to attention itself. This chapter is about the first and
# most widely used step, **data parallelism**, done with PyTorch's own machinery
# (`torch.distributed` and `DistributedDataParallel`), and about what comes after it when
# one device's memory is no longer enough.
#
# We train chapter 4's character-level language model in two processes that cooperate
# through `torch.distributed`, exactly as they would on two GPUs, and check that the result
# is the same as training in one process with the same global batch. By the end you should
# be able to
#
# - show why the gradient of the mean loss over a global batch equals the mean of the
#   gradients of equal shards, and name what breaks the equality;
# - describe what `DistributedDataParallel` does at construction and during the backward
#   pass, and why communication overlaps computation;
# - derive the cost of a ring all-reduce, $2 (N - 1) / N$ times the gradient size sent by
#   each device;
# - run a data-parallel job with `torchrun`, and read its loss curves and step times;
# - compute the memory per device of ZeRO and FSDP sharding, and say what tensor, sequence
#   and context parallelism split instead.
#
# The seed text has no section on distributed training. Its question on the development
# trends of self-attention (自注意力机制的发展趋势) names efficiency and hardware
# acceleration; scaling training out over many devices is the part of that story this
# chapter tells, and the interview question at the end returns to it.
#
# The library code is in `attnkit.distributed` (imported as `akd`): a function that trains
# the model on one shard of each global batch, wrapped in `DistributedDataParallel` when
# there is more than one process, a command line for `torchrun`, and a launcher. It is a
# thin layer over `torch.distributed`; it implements no communication of its own.

# %%
import inspect
import math
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from myst_nb import glue
from torch.distributed import fsdp
from torch.nn.parallel import DistributedDataParallel

import attnkit as ak
from attnkit import distributed as akd
from attnkit.data import stdlib_docstrings
from attnkit.efficient.tiled import attention_with_lse, merge_attention_blocks

torch.manual_seed(0)
# One thread: the book runs its chapters side by side, one thread each, so every number
# below is the same on any machine, however many cores it has and however busy it is
# (timings aside).
torch.set_num_threads(1)
torch.set_printoptions(precision=4, sci_mode=False)
plt.rcParams.update({"figure.dpi": 100, "axes.grid": False})
print("torch", torch.__version__, "| attnkit", ak.__version__)
print("gloo available:", torch.distributed.is_gloo_available())

# %% [markdown]
# (ch15-why)=
# ## Why data parallelism works
#
# ### One global batch, many shards
#
# A training step computes the gradient of the mean loss over a batch of $B$ examples,
#
# $$
# g = \nabla_\theta \frac{1}{B} \sum_{i=1}^{B} \ell_i(\theta) .
# $$
#
# Split the batch into $N$ **shards** $S_1, \dots, S_N$ of equal size $b = B / N$, one per
# device. Device $r$ computes the gradient of the mean loss over its own shard,
# $g_r = \nabla_\theta \frac{1}{b} \sum_{i \in S_r} \ell_i$. Because the gradient is linear,
#
# $$
# \frac{1}{N} \sum_{r=1}^{N} g_r
# = \nabla_\theta \frac{1}{N b} \sum_{r=1}^{N} \sum_{i \in S_r} \ell_i
# = \nabla_\theta \frac{1}{B} \sum_{i=1}^{B} \ell_i = g .
# $$
#
# So if every device holds the same parameters, computes the gradient of its shard, and the
# devices **average** their gradients, every device ends up with exactly the gradient of
# the global batch. They then apply the same optimizer step to the same parameters and stay
# identical, without ever sending parameters to each other. That is data parallelism: $N$
# devices process $N$ times as many examples per step as one, at the price of one
# averaging of the gradients per step.
#
# The identity is exact in real arithmetic. In floating point the sums are taken in a
# different order, so the two gradients agree only to rounding error (float32 keeps about
# seven significant digits). We check it on chapter 4's model, with the gradient of a
# global batch of 16 windows against the mean of the gradients of two shards of 8, in
# float64 so that rounding does not hide anything.

# %%
workdir = tempfile.TemporaryDirectory(prefix="ch15_")  # removed when the kernel exits
corpus = Path(workdir.name) / "docstrings.txt"
corpus.write_text(stdlib_docstrings())  # written once; each training process reads it
settings = akd.DataParallelSettings()  # the chapter's run, printed further down
ids, vocab_size = akd.load_token_ids(settings.max_chars, str(corpus))
print(f"{len(ids):,} training characters, vocabulary of {vocab_size} ids")


def build_model():
    """Chapter 4's model at the chapter's size, float64, seeded initial weights."""
    ak.seed_everything(0)
    return ak.TransformerLM(
        vocab_size, d_model=64, num_heads=4, num_layers=2, d_ff=256, dropout=0.0, max_len=64
    ).double()


def gradient(model, batch):
    """The gradient of the mean next-character loss over batch, as one flat vector."""
    model.zero_grad()
    model.loss(batch).backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


model = build_model()
batch = next(akd.global_batches(ids, 16, 65, seed=0))  # (16, 65): 16 windows of 65 characters
g_global = gradient(model, batch)
g_shards = [gradient(model, akd.shard_rows(batch, r, 2)) for r in range(2)]  # 2 x (8, 65)
g_mean = (g_shards[0] + g_shards[1]) / 2
rel = ((g_mean - g_global).norm() / g_global.norm()).item()
print(f"parameters: {g_global.numel():,}")
rel_shards = ((g_shards[0] - g_shards[1]).norm() / g_global.norm()).item()
print(f"|mean of shard gradients - global gradient| / |global gradient| = {rel:.1e}")
print(f"|shard 0's gradient - shard 1's gradient| / |global gradient| = {rel_shards:.2f}")
assert rel < 1e-12, (
    "claim no longer holds: 'their mean is the global gradient to float64 rounding' "
    f"(measured {rel:.1e})"
)
assert rel_shards > 0.1, (
    "claim no longer holds: 'the two shard gradients differ by more than 10 %' "
    f"(measured {rel_shards:.3g})"
)

# %% [markdown]
# The two shard gradients are far apart (each shard is a different sample of text; the
# cell asserts that they differ by more than 10 % of the global gradient's norm), but
# their mean is the global gradient to float64 rounding (asserted below $10^{-12}$).
#
# ### What breaks the equality
#
# The derivation used three assumptions, and each has a classic failure.
#
# - **Equal shards.** With shards of sizes $b_r$, the global gradient is the *weighted*
#   mean $\sum_r (b_r / B)\, g_r$; the plain average that an all-reduce computes
#   over-weights the small shards. This happens with the last, incomplete batch of an
#   epoch, or when examples have different numbers of tokens and each device averages over
#   its own tokens. `akd.shard_rows` therefore refuses a batch its `world_size` does not
#   divide, and PyTorch's `DistributedSampler` pads the dataset so that every rank gets the
#   same number of examples.
# - **Examples that do not interact.** The loss must be a sum over examples. Batch
#   normalisation breaks this: its statistics are computed over the batch, so each device
#   normalises with the mean and variance of its own shard. (`torch.nn.SyncBatchNorm`
#   all-reduces the statistics instead.) Transformers use layer normalisation, which is
#   per example, so they are not affected.
# - **The same randomness.** Dropout draws a mask per example; on $N$ devices it draws $N$
#   masks of $b$ rows instead of one of $B$ rows, so the run is statistically equivalent
#   to single-process training but not equal to it. Worse, `ak.train` seeds every process
#   identically, so two ranks would draw *identical* masks for their (different) shards,
#   a correlation that a real run avoids by seeding each rank differently (e.g. with
#   `seed + rank`). Our runs use dropout 0, which is why they can be compared exactly.
#
# The first two failures, in numbers: unequal shards of 12 and 4 windows, and a batch
# normalisation layer applied to the whole batch versus to each half.

# %%
g_unequal = [gradient(model, batch[:12]), gradient(model, batch[12:])]
plain = (g_unequal[0] + g_unequal[1]) / 2
weighted = (12 * g_unequal[0] + 4 * g_unequal[1]) / 16
rel_plain = ((plain - g_global).norm() / g_global.norm()).item()
rel_weighted = ((weighted - g_global).norm() / g_global.norm()).item()
print(f"shards of 12 and 4: plain mean off by {rel_plain:.3f}, weighted mean by {rel_weighted:.1e}")

bn = torch.nn.BatchNorm1d(8).train()
x = torch.randn(16, 8, generator=torch.Generator().manual_seed(0)) + torch.arange(16.0)[:, None] / 4
whole = bn(x)
halves = torch.cat([bn(x[:8]), bn(x[8:])])
bn_diff = (whole - halves).abs().max().item()
print(f"batch norm on the whole batch vs on each half: max difference {bn_diff:.2f}")
assert rel_plain > 1e-2 and rel_weighted < 1e-12 and bn_diff > 0.5, (
    "claim no longer holds: 'the plain average over-weights small shards; batch norm per shard "
    f"differs' (measured plain {rel_plain:.3g}, weighted {rel_weighted:.1e}, "
    f"batch norm {bn_diff:.3g})"
)

# %% [markdown]
# (ch15-ddp)=
# ## How `DistributedDataParallel` does it
#
# PyTorch's `torch.nn.parallel.DistributedDataParallel` (DDP) {cite:p}`li2020pytorch` turns
# the derivation into a wrapper around an ordinary model. Each device runs its own
# **process** (its *rank*, $0 \le r < N$, in a *process group* of `world_size` $N$); the
# processes find each other through a rendezvous (an address and port, or a key-value
# store), and talk through a communication **backend**: gloo on CPUs, NCCL on NVIDIA GPUs.
# Wrapping the model does three things:
#
# 1. **At construction** it broadcasts rank 0's parameters and buffers to every rank, so
#    all replicas start identical even if they were initialised differently.
# 2. **During the backward pass** it registers a hook on every parameter. Gradients become
#    ready in roughly the reverse order of the forward pass; DDP groups them into
#    **buckets** of about 25 MB (`bucket_cap_mb`), and as soon as every gradient of a
#    bucket is ready it launches an asynchronous all-reduce of that bucket, while autograd
#    goes on computing the gradients of earlier layers. Communication thus **overlaps**
#    computation; bucketing matters because one all-reduce of 25 MB is much faster than a
#    thousand all-reduces of 25 kB, whose cost is dominated by latency.
# 3. **At the end of the backward pass** it waits for the last all-reduce. Each bucket's
#    gradients are divided by $N$ as part of its all-reduce, so every rank now holds the
#    averaged gradient, and the (unchanged) optimizer takes the same step everywhere.
#
# There is no parameter server and no broadcast of parameters after each step. Gradient
# accumulation over several micro-batches uses `model.no_sync()` to skip the all-reduce
# on all but the last one. Li et al. report near-linear scaling to 256 GPUs with these
# techniques {cite:p}`li2020pytorch`.
#
# In `attnkit.distributed` the training step is `ak.train`'s own, with the model wrapped:
# the loss function runs the wrapped model on this rank's shard. Here is that function:

# %%
print(inspect.getsource(akd.train_data_parallel).split("    def loss_fn")[1].split("    config")[0])

# %% [markdown]
# The returned expression is a small trick for logging: its **value** is the mean of the
# shard losses over all ranks (an all-reduce of a detached copy, divided by $N$), which is
# the loss of the global batch, but its **gradient** is that of the local loss, because
# the correction is detached. Logging rank 0's own loss would show the loss of half the
# batch, which is not comparable with single-process training.
#
# How large is what DDP communicates for our model? One float32 gradient per parameter:

# %%
grad_bytes = 4 * ak.count_parameters(model)
bucket_mb = inspect.signature(DistributedDataParallel).parameters["bucket_cap_mb"].default
print(f"gradient: {ak.count_parameters(model):,} float32 values = {grad_bytes / 2**20:.2f} MiB")
print(f"bucket_cap_mb default: {bucket_mb} (None means DDP's built-in 25 MiB)")
assert grad_bytes < 25 * 2**20 / 10, "claim no longer holds: 'well under one bucket'"

# %% [markdown]
# Well under one bucket (less than a tenth of 25 MiB, the assert checks): in our runs the
# whole gradient is all-reduced in one piece at the end of the backward pass, so there is
# nothing to overlap. The overlap pays off for
# models whose gradients span many buckets.
#
# (ch15-ring)=
# ## The all-reduce and its cost
#
# An **all-reduce** takes one tensor of $S$ bytes on each of $N$ devices and leaves the
# elementwise sum on every device. The obvious way, every device sending its tensor to
# one root which adds them up and sends the sum back, makes the root receive $(N - 1) S$
# bytes: its link is a bottleneck that grows with $N$.
#
# The **ring all-reduce** puts the devices on a ring and cuts each tensor into $N$ chunks.
#
# 1. **Reduce-scatter**, $N - 1$ steps: at each step every device sends one chunk to its
#    right neighbour, which adds it to its own copy of that chunk. The chunks are chosen so
#    that after $N - 1$ steps device $r$ holds the complete sum of one chunk.
# 2. **All-gather**, $N - 1$ steps: every device passes its complete chunk around the ring,
#    each device overwriting its copy, until every device holds every summed chunk.
#
# Each device sends $2 (N - 1)$ chunks of $S / N$ bytes, so
#
# $$
# \text{bytes sent per device} = \frac{2 (N - 1)}{N}\, S < 2 S ,
# $$
#
# **independent of $N$** in the limit, and every link is busy all the time. Patarasuk and
# Yuan showed that no all-reduce can send less per device, and that the ring attains this
# bound {cite:p}`patarasuk2009bandwidth`. With a latency $\alpha$ per message and a
# bandwidth $\beta$ bytes per second, the ring takes about
# $2 (N - 1) \alpha + \frac{2 (N - 1)}{N} \frac{S}{\beta}$ seconds: for large tensors the
# bandwidth term dominates, which is again why DDP sends buckets and not single gradients.
# (NCCL also has tree algorithms, whose number of latency terms grows with $\log N$
# rather than $N$.) Exercise 2 asks you to write the ring.

# %%
devices = np.arange(2, 65)
ring = 2 * (devices - 1) / devices  # bytes sent per device, in units of S
root = devices - 1  # bytes received by the root of the naive scheme, in units of S
fig, ax = plt.subplots(figsize=(6.5, 3.8))
ax.plot(devices, ring, label="ring all-reduce: each device sends $2(N-1)/N \\cdot S$")
ax.plot(devices, root, "--", label="send to a root and back: the root receives $(N-1) S$")
ax.set_xlabel("number of devices $N$")
ax.set_ylabel("bytes per device, in units of $S$")
ax.set_yscale("log")
ax.set_title("Communication of one all-reduce of $S$ bytes")
ax.legend(loc="upper left")
plt.show()
ring_factor_8 = 2 * (8 - 1) / 8
assert ring_factor_8 == 1.75 and ring.max() < 2, (
    "claim no longer holds: 'the ring's cost per device tends to 2S (1.75 S at N = 8)' "
    f"(measured {ring_factor_8:.3g} at N = 8, max {ring.max():.3g})"
)
glue("ch15_ring_bytes_factor_8", float(ring_factor_8), display=False)

# %% [markdown]
# *Figure: the ring's cost per device tends to $2S$ (1.75 S at $N = 8$), while the root of
# the naive scheme receives $N - 1$ times the gradient.*
#
# (ch15-run)=
# ## The experiment: two processes against one
#
# ### The run
#
# `akd.main` is a command line meant for `torchrun` (`python -m torch.distributed.run`),
# which starts `--nproc_per_node` processes and gives each its rank, the world size and the
# rendezvous address in environment variables. Each process then calls
# `torch.distributed.init_process_group("gloo")`, which reads them, trains, and destroys the
# process group at the end; rank 0 writes the results as JSON:
#
# ```bash
# python -m torch.distributed.run --standalone --nproc_per_node=2 \
#     -m attnkit.distributed --steps 40 --out results.json
# ```
#
# Without `torchrun` the same command trains in a single process without DDP: that is our
# reference. Both modes draw the same global batch at every step from a generator with the
# same seed (`akd.global_batches`, chapter 4's sampler), and each rank trains on its
# contiguous shard (`akd.shard_rows`). The initial weights are seeded identically, and DDP
# broadcasts rank 0's anyway. Each process uses one thread, so that two processes need
# only two cores. `akd.launch` runs the command in a subprocess (with a free
# local port for the rendezvous and `GLOO_SOCKET_IFNAME=lo`, so that gloo needs only the
# loopback interface, no network) and returns the JSON.
#
# The settings: chapter 4's model at a smaller size so that a run takes seconds.

# %%
print(settings)
print(f"parameters: {ak.count_parameters(model):,}")
print(
    f"global batch {settings.global_batch} windows x {settings.context} predicted characters"
    f" = {settings.global_batch * settings.context:,} characters per step"
)

# %%
runs = {
    "1 process": akd.launch(settings, 1, text_file=corpus),
    "2 processes (DDP)": akd.launch(settings, 2, text_file=corpus),
    "4 processes (DDP)": akd.launch(settings, 4, text_file=corpus),
}
for name, run in runs.items():
    print(
        f"{name:>18}: world_size {run['world_size']} | backend {run['backend']} | "
        f"first loss {run['losses'][0]:.4f} | last loss {run['losses'][-1]:.4f}"
    )

# %% [markdown]
# ### Loss curves and their difference
#
# Same data, same initial weights, same optimizer: the three loss curves should lie on top
# of each other, and the interesting plot is their difference.

# %%
steps = np.arange(1, settings.steps + 1)
reference = np.array(runs["1 process"]["losses"])
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
for (name, run), style in zip(runs.items(), ("-", "--", ":")):
    ax1.plot(steps, run["losses"], style, lw=2 if style == "-" else 1.5, label=name)
ax1.set_xlabel("step")
ax1.set_ylabel("training loss of the global batch (nats per character)")
ax1.set_title("Loss curves: one process and DDP")
ax1.legend()
rel_diff = {}
for name, run in list(runs.items())[1:]:
    rel_diff[name] = np.abs(np.array(run["losses"]) - reference) / reference
    ax2.semilogy(steps, np.maximum(rel_diff[name], 1e-10), "o-", ms=3, label=name)
ax2.axhline(1e-5, color="gray", ls="--", lw=1, label="tolerance of the tests, $10^{-5}$")
ax2.set_ylim(5e-11, 1e-2)
ax2.set_xlabel("step")
ax2.set_ylabel("|loss - loss of 1 process| / loss of 1 process")
ax2.set_title("Relative difference (0 drawn at $10^{-10}$)")
ax2.legend(loc="upper right", fontsize=8)
plt.tight_layout()
plt.show()

# %%
param_diff = {
    name: (run["params"] - runs["1 process"]["params"]).abs().max().item()
    for name, run in list(runs.items())[1:]
}
for name in rel_diff:
    print(
        f"{name}: max relative loss difference {rel_diff[name].max():.1e}, "
        f"max |parameter difference| {param_diff[name]:.1e}"
    )
print(
    f"loss fell from {reference[0]:.3f} to {reference[-1]:.3f} (ln V = {math.log(vocab_size):.3f})"
)
assert all(d.max() < 1e-5 for d in rel_diff.values()), (
    "claim no longer holds: 'relative difference stays below 1e-5 at every step' "
    f"(measured {max(d.max() for d in rel_diff.values()):.1e})"
)
assert all(d < 1e-4 for d in param_diff.values()), (
    "claim no longer holds: 'the final parameters (to 1e-4 in absolute value)' "
    f"(measured {max(param_diff.values()):.1e})"
)
assert abs(reference[0] - math.log(vocab_size)) < 0.5, "claim: 'falls from about ln V'"
assert reference[-1] < reference[0] - 1.0, "claim: 'to well below it in 40 steps'"
glue("ch15_loss_max_rel_diff_ddp2", float(rel_diff["2 processes (DDP)"].max()), display=False)
glue("ch15_param_max_abs_diff_ddp2", float(param_diff["2 processes (DDP)"]), display=False)
glue("ch15_final_loss", float(reference[-1]), display=False)

# %% [markdown]
# *Figure: left, the three loss curves are indistinguishable. Right, their relative
# difference from the single-process curve (points at $10^{-10}$ are steps where the
# losses are equal to the last bit) stays below $10^{-5}$ at every step, and so do
# the final parameters (to $10^{-4}$ in absolute value, as asserted above): what remains is
# float32 rounding, because the sums of the gradients are taken in a different order. The
# loss of the global batch falls from about $\ln V$ to well below it in 40 steps.*
#
# The tests of `attnkit.distributed` run the same comparison with two processes, with
# these tolerances, and a negative control: a run whose global batches come from another
# seed differs by more than $10^{-2}$, a thousand times the tolerance, so the comparison
# would catch a rank that trains on the wrong data. They also recompute the first logged
# loss by hand, to check that it is the mean over the global batch and not rank 0's.
#
# ### Step times
#
# Now the honest part. Each run also recorded the wall-clock time of every step on every
# rank, and the launcher the wall-clock time of the whole run, start-up included. These are
# times, not facts of the algorithm: they depend on the machine and on what else runs on
# it. (When this book is built, other chapters run side by side with this one, by default
# one per core, so the DDP processes share the cores with other busy processes.)

# %%
# NBVAL_IGNORE_OUTPUT
header = ("run", "median step (ms)", "mean step per rank (ms)", "whole run (s)")
print(" | ".join(f"{h:>{w}}" for h, w in zip(header, (18, 16, 26, 13))))
step_ms = {}
for name, run in runs.items():
    step_ms[name] = 1000 * float(np.median(run["step_seconds"]))
    per_rank = ", ".join(f"{1000 * t:.1f}" for t in run["mean_step_seconds_per_rank"])
    print(f"{name:>18} | {step_ms[name]:16.1f} | {per_rank:>26} | {run['wall_seconds']:13.1f}")
speedup = step_ms["1 process"] / step_ms["2 processes (DDP)"]
print(f"median step of 1 process / median step of 2 processes: {speedup:.2f} (ideal: 2)")
glue("ch15_step_ms_1proc", step_ms["1 process"], display=False)
glue("ch15_step_ms_ddp2", step_ms["2 processes (DDP)"], display=False)
glue("ch15_step_speedup_ddp2", speedup, display=False)
glue("ch15_cpu_count", os.cpu_count(), display=False)
glue("ch15_wall_s_1proc", float(runs["1 process"]["wall_seconds"]), display=False)
glue("ch15_wall_s_ddp2", float(runs["2 processes (DDP)"]["wall_seconds"]), display=False)

# %% [markdown]
# On the machine that built this page ({glue:text}`ch15_cpu_count` CPU cores, shared with
# the other chapters being built), the median step took
# {glue:text}`ch15_step_ms_1proc:.1f` ms in one process and
# {glue:text}`ch15_step_ms_ddp2:.1f` ms in each of two: a step speed-up of
# {glue:text}`ch15_step_speedup_ddp2:.2f`, where each DDP process computes half the batch
# and the ideal is 2. The whole run, start-up included, took
# {glue:text}`ch15_wall_s_1proc:.1f` s with one process and
# {glue:text}`ch15_wall_s_ddp2:.1f` s with two. (Read the medians: a rank's mean includes
# the first step and any step during which something else ran on the machine.) Take these
# figures as one observation of a shared machine, not as a property of DDP: the runs
# follow one another instead of taking turns, so whatever else runs on the cores
# during one run and not during another moves the ratio either way. Whatever the ratio, a
# model this tiny pays costs that a large one hides: the fixed costs of a step, the
# optimizer update and gradient clipping, which every rank repeats in full, the all-reduce
# through gloo (which goes through the operating system's network stack even on one
# machine) and the all-reduce of the logged loss; the competition of the processes for
# the cores, with each other and with everything else running (four processes on fewer
# than four free cores are simply oversubscribed); and the start-up, which costs seconds: `torchrun`, one
# Python interpreter per process importing torch, and the rendezvous.
#
# None of this is what data parallelism is for. It pays off when each device is a separate
# accelerator and the computation per step is large compared with the all-reduce of the
# gradients, which is the regime of real models: a step of a large model on a GPU can take
# hundreds of milliseconds of arithmetic, and the all-reduce of its buckets runs during
# the backward pass. What this experiment does show, exactly, is the part that carries
# over unchanged: the same code, with the same launcher, computes the same training run.
#
# (ch15-beyond)=
# ## Beyond one machine
#
# ### Multi-GPU and multi-node: NCCL and `torchrun`
#
# On GPUs only a few lines change. Each process drives one GPU, selected by the
# `LOCAL_RANK` that `torchrun` sets, the backend is **NCCL**, which moves data directly
# between GPUs over NVLink inside a node and over InfiniBand or Ethernet (with RDMA where
# available) between nodes, and DDP is told which device its replica lives on:
#
# ```python
# local_rank = int(os.environ["LOCAL_RANK"])
# torch.cuda.set_device(local_rank)
# dist.init_process_group("nccl")
# model = DistributedDataParallel(model.to(local_rank), device_ids=[local_rank])
# ```
#
# On several machines, `torchrun` is started once per node with the number of nodes and a
# rendezvous endpoint that all of them can reach, for example on each of two nodes with
# eight GPUs:
#
# ```bash
# torchrun --nnodes=2 --nproc_per_node=8 --rdzv-id=job1 --rdzv-backend=c10d \
#     --rdzv-endpoint=node0.example.org:29500 train.py
# ```
#
# Everything else in this chapter stays: shard the global batch (for a dataset, with
# `DistributedSampler`), seed the model identically, let DDP average the gradients. What
# changes is the balance: gradients now cross a network whose bandwidth inside a node is
# much higher than between nodes, so the all-reduce of {ref}`ch15-ring` and its overlap with
# the backward pass decide how well the run scales.
#
# ### Larger batches and the learning rate
#
# $N$ devices with $b$ examples each train with a global batch of $N b$: more data per
# step, fewer steps per epoch. Goyal et al. trained a ResNet-50 on ImageNet with batches
# of 8192 images on 256 GPUs in one hour, without losing accuracy, with two rules
# {cite:p}`goyal2017accurate`: the **linear scaling rule** (when the batch grows $k$ times,
# multiply the learning rate by $k$) and a **gradual warm-up** that raises the learning
# rate from the small-batch value to the scaled one over the first five epochs, because
# the scaled rate is too large while the weights change fast. The rule is a heuristic from
# SGD; they also saw it break down for much larger batches, and for Adam-type optimisers
# the learning rate is in practice retuned. Beyond a *critical batch size* that depends on
# the task and on the loss reached, larger batches buy little further speed
# {cite:p}`kaplan2020scaling`. Exercise 4 asks you to write the rule with its warm-up.
#
# ### Sharding the model state: ZeRO and FSDP
#
# DDP keeps a full copy of everything on every device: parameters, gradients and the
# optimizer state. For mixed-precision training with Adam, Rajbhandari et al. count
# {cite:p}`rajbhandari2020zero`, per parameter, 2 bytes of 16-bit parameters, 2 bytes of
# 16-bit gradients and $K = 12$ bytes of optimizer state (a float32 master copy of the
# parameter, Adam's first and second moments, 4 bytes each): 16 bytes per parameter,
# whatever the number of devices. **ZeRO** removes the redundancy in stages; with $\Psi$
# parameters on $N$ devices, the memory per device is
#
# | stage | sharded across devices | bytes per device |
# |---|---|---|
# | 0 (DDP) | nothing | $(2 + 2 + K)\, \Psi$ |
# | 1 | optimizer state | $2 \Psi + 2 \Psi + K \Psi / N$ |
# | 2 | optimizer state, gradients | $2 \Psi + (2 + K)\, \Psi / N$ |
# | 3 | optimizer state, gradients, parameters | $(2 + 2 + K)\, \Psi / N$ |
#
# Stages 1 and 2 communicate as much as DDP (the all-reduce becomes a reduce-scatter of
# the gradients and an all-gather of the updated parameters); stage 3 gathers each layer's
# parameters just before it is used, in the forward and again in the backward pass, for
# about 1.5 times DDP's communication. PyTorch's **Fully Sharded Data Parallel** (FSDP)
# {cite:p}`zhao2023pytorch` implements this in the framework: full sharding is ZeRO stage
# 3, `SHARD_GRAD_OP` is stage 2, and hybrid sharding shards within a node and replicates
# across nodes. Its current interface is `torch.distributed.fsdp.fully_shard`, applied to
# each Transformer block and then to the whole model. The table below evaluates the
# formulas for the 7.5-billion-parameter model of the ZeRO paper; activations, buffers and
# fragmentation come on top.


# %%
def zero_bytes_per_device(num_params, world_size, stage, k=12):
    """ZeRO's memory per device (bytes) for mixed-precision Adam: 2 + 2 + k bytes/param."""
    shards = {0: (0, 0, 0), 1: (0, 0, 1), 2: (0, 1, 1), 3: (1, 1, 1)}[stage]
    parts = (2, 2, k)  # 16-bit parameters, 16-bit gradients, optimizer state
    return sum(b * num_params / (world_size if s else 1) for b, s in zip(parts, shards))


psi = 7.5e9
world_sizes = (1, 8, 64, 1024)
print(f"memory per device (GB = 1e9 bytes) for {psi / 1e9:.1f}B parameters, mixed-precision Adam")
print(f"{'stage':<32}" + "".join(f"{f'N = {n}':>10}" for n in world_sizes))
names = ("0: DDP", "1: + optimizer state", "2: + gradients", "3: + parameters (FSDP full)")
table = {}
for stage, name in enumerate(names):
    table[stage] = [zero_bytes_per_device(psi, n, stage) / 1e9 for n in world_sizes]
    print(f"{name:<32}" + "".join(f"{gb:10.2f}" for gb in table[stage]))
# the paper's Table 1 gives 120, 31.4, 16.6 and 1.88 GB for 7.5B parameters on 64 devices
assert [round(table[s][2], 1) for s in range(4)] == [120.0, 31.4, 16.6, 1.9], (
    "claim no longer holds: 'the paper's Table 1 gives 120, 31.4, 16.6 and 1.88 GB' "
    f"(measured {[round(table[s][2], 2) for s in range(4)]} GB)"
)
glue("ch15_zero0_gb_7p5b", float(table[0][2]), display=False)
glue("ch15_zero3_gb_7p5b_n64", float(table[3][2]), display=False)
print("fully_shard available in this torch:", hasattr(fsdp, "fully_shard"))

# %% [markdown]
# At 120 GB, the 7.5B model does not fit on an 80 GB accelerator with DDP at all, before
# a single activation is stored; with stage 3 on 64 devices its model state takes under
# 2 GB per device. Sharding trades memory for communication, and it shards the model
# *state*, not the computation: each device still runs the whole model on its own shard
# of the batch. (Exercise 3 asks you to write this accounting.)
#
# ### Tensor parallelism
#
# When a single layer is too large, or its activations are, the computation itself is
# split. Megatron-LM's **tensor parallelism** {cite:p}`shoeybi2019megatron` splits each
# Transformer block across the devices of a node: the first matrix of the feed-forward
# network by columns, so that each device applies the GELU to its own slice of the hidden
# units, and the second by rows, so that the partial outputs are summed by one all-reduce;
# self-attention is split by heads, which are independent until the output projection
# (chapter 2). That costs two all-reduces of the activations per block in the forward pass
# and two in the backward pass, which is why tensor parallelism is kept inside a node,
# where NVLink is fast, and combined with data parallelism (and pipeline parallelism,
# which places consecutive layers on different devices) across nodes.
#
# (ch15-sequence)=
# ### Sequence and context parallelism for long contexts
#
# Attention's activations grow with the length $n$ of the context (linearly with the
# tiled attention of {ref}`ch06-tiled`, quadratically without it), so long contexts need a
# split along the **sequence**. Three designs, as pointers:
#
# - **Sequence parallelism** in Megatron {cite:p}`korthikanti2023reducing` shards the
#   parts of a block that tensor parallelism leaves replicated (layer norms, dropout)
#   along the sequence, replacing each all-reduce by a reduce-scatter and an all-gather of
#   the same total volume, and recomputes selected activations instead of storing them.
# - **Ring attention** {cite:p}`liu2024ring` gives each device one block of the sequence,
#   queries, keys and values. The key/value blocks travel around a ring of devices; each
#   device computes the attention of its queries to the block it holds, merges it with
#   what it has so far using the log-sum-exp merge of the online softmax
#   ({ref}`ch06-tiled`), and sends the block on while the next one is computed. The
#   context grows with the number of devices.
# - **DeepSpeed-Ulysses** {cite:p}`jacobs2023deepspeed` shards the sequence too, but before
#   attention an all-to-all regroups the data so that each device holds *whole* sequences
#   for a subset of the heads, computes ordinary attention, and a second all-to-all
#   restores the sequence sharding. The number of heads limits the number of devices.
#
# Ring attention is chapter 6's tiled attention with the tiles on different devices. The
# cell below plays the ring's schedule in one process, with attnkit's `attention_with_lse`
# and `merge_attention_blocks` (no communication: list indices stand for devices), and
# checks that each device ends up with exact attention for its queries.

# %%
g = torch.Generator().manual_seed(0)
q, k, v = (torch.randn(2, 1024, 32, generator=g, dtype=torch.float64) for _ in range(3))
n_dev = 4
q_blocks, kv_blocks = q.chunk(n_dev, dim=1), list(zip(k.chunk(n_dev, dim=1), v.chunk(n_dev, dim=1)))
outputs = []
for dev in range(n_dev):  # device dev holds queries q_blocks[dev]
    out, lse = None, None
    for step in range(n_dev):  # at step s it holds the key/value block of device dev - s
        kb, vb = kv_blocks[(dev - step) % n_dev]
        block = attention_with_lse(q_blocks[dev], kb, vb)
        out, lse = block if out is None else merge_attention_blocks(out, lse, *block)
    outputs.append(out)
ring_out = torch.cat(outputs, dim=1)  # (2, 1024, 32)
full = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(32), dim=-1) @ v
err = (ring_out - full).abs().max().item()
print(f"ring schedule on {n_dev} simulated devices vs full attention: max difference {err:.1e}")
assert err < 1e-12, (
    "claim no longer holds: 'its output is full attention to every key' "
    f"(measured max difference {err:.1e})"
)

# %% [markdown]
# Each simulated device only ever held a quarter of the queries and one quarter of the
# keys and values at a time, yet its output is full attention to every key. The causal
# case skips the blocks that lie entirely in the future, which leaves the devices unevenly
# loaded; practical implementations reorder the blocks to balance them.
#
# ## Key takeaways
#
# - With equal shards, the mean of the shard gradients *is* the gradient of the global
#   batch; unequal shards, batch normalisation and per-rank randomness are what break the
#   equality ({ref}`ch15-why`).
# - DDP broadcasts rank 0's weights once, then all-reduces gradient buckets during the
#   backward pass, overlapping communication with computation ({ref}`ch15-ddp`). A ring
#   all-reduce sends $2 (N - 1) / N$ times the gradient size per device, the optimum
#   ({ref}`ch15-ring`).
# - Measured here: two gloo processes and four reproduce single-process training to float32
#   rounding (losses within $10^{-5}$ relative). On the shared CPU cores that built this
#   page the median step of two processes was {glue:text}`ch15_step_speedup_ddp2:.2f` times as
#   fast as one process's, against an ideal of 2, and the whole run, start-up included,
#   took {glue:text}`ch15_wall_s_ddp2:.1f` s against {glue:text}`ch15_wall_s_1proc:.1f` s.
#   For a model this small on shared cores, such times depend on what else runs;
#   fixed costs, contention and start-up weigh on them as much as the arithmetic
#   ({ref}`ch15-run`).
# - Beyond: NCCL and `torchrun --nnodes` for many GPUs; the linear scaling rule with
#   warm-up for larger batches; ZeRO/FSDP to shard the 16 bytes per parameter of model
#   state; tensor parallelism inside a node; sequence and context parallelism (ring
#   attention, Ulysses) for long contexts ({ref}`ch15-beyond`).

# %% [markdown]
# ## Exercises
#
# The exercises for this chapter are in `exercises/15_scaling_out.ipynb`. You will write
#
# 1. `shard_rows`: a rank's contiguous shard of a global batch;
# 2. `ring_allreduce`: the ring all-reduce, simulated on a list of per-device tensors,
#    with the bytes each device sends;
# 3. `zero_memory_per_device`: ZeRO's memory accounting, stages 0 to 3;
# 4. `scaled_learning_rate`: the linear scaling rule with gradual warm-up.
#
# Grade your work with `python -m attnkit.grade 15`.

# %% [markdown]
# (ch15-interview)=
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
# *This chapter answers a side of the question that the source text's answer leaves out:
# scale, training spread over many devices.*
#
# **Model answer.** Beside the trends usually listed (cheaper attention, multimodality,
# interpretability, adaptive computation, hardware), one shapes all of them: scale. Models
# and contexts outgrow one device, so training is spread over many. The first step is data
# parallelism: every device holds the model and takes an equal shard of the global batch,
# and the average of the shard gradients is exactly the global batch's gradient; unequal
# shards, batch normalisation and per-rank randomness break that equality
# ({ref}`ch15-why`). PyTorch's DDP all-reduces gradient buckets during the backward pass,
# overlapping communication with computation, and a ring all-reduce sends $2(N-1)/N$ times
# the gradient size per device, almost independent of $N$ ({ref}`ch15-ddp`,
# {ref}`ch15-ring`). The chapter's two- and four-process runs reproduce single-process
# training to float32 rounding; on the shared CPU cores that built this page, and a
# model this small, two processes made a step {glue:text}`ch15_step_speedup_ddp2:.2f` times
# as fast as one (ideal 2), a figure that fixed costs and contention for the cores can push
# far from the ideal ({ref}`ch15-run`). Larger global batches need the
# learning rate scaled, with a warm-up. When the model state no longer fits, ZeRO and FSDP
# shard the optimizer state, gradients and parameters (16 bytes per parameter for
# mixed-precision Adam, divided by $N$ when all three are sharded); tensor parallelism
# splits each layer's matrices inside a node; and sequence or context parallelism splits
# long sequences, ring attention being tiled attention's online-softmax merge across
# devices ({ref}`ch15-beyond`, {ref}`ch15-sequence`). The common thread: communication,
# not arithmetic, becomes the bottleneck, just as memory traffic is on one device.
# ```

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
# # Exercises: scaling out
#
# Four small functions, one for each idea of chapter 15: the shard of a global batch that
# one rank trains on, the ring all-reduce that averages the gradients, ZeRO's memory
# accounting, and the linear learning-rate scaling rule with its warm-up. None of them
# needs more than one process: the all-reduce is simulated on a list of tensors, one per
# device. Replace each `raise NotImplementedError(...)` with your code, then run the check
# cell after it (marked `# NBVAL_CHECK_OUTPUT`); its output must match what is stored under
# it. Grade the chapter from the repository root with
#
# ```bash
# .venv/bin/python -m attnkit.grade 15
# ```
#
# The grader loads only your `def`s and imports, tests each function on several inputs
# against attnkit and against independent references, then runs this notebook and compares
# the check cells.

# %%
import torch

from attnkit import distributed as akd

torch.set_printoptions(precision=4, sci_mode=False)

# %% [markdown]
# ## Exercise 1: a rank's shard of the global batch
#
# Write `shard_rows(batch, rank, world_size)`: the rows of the global batch `(B, ...)` that
# rank `rank` of `world_size` processes trains on, a contiguous block of
# `b = B // world_size` rows: rows `rank * b` to `(rank + 1) * b - 1`.
#
# - Raise `ValueError` if `world_size` does not divide `B` (unequal shards would make the
#   mean of the shard gradients differ from the global gradient), or if `rank` is not in
#   `[0, world_size)`.
# - Return a slice of `batch` (a view); keep every trailing dimension.


# %%
def shard_rows(batch: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """Rows rank * b : (rank + 1) * b of batch (B, ...), with b = B // world_size."""
    # BEGIN SOLUTION
    rows = batch.shape[0]
    if world_size < 1 or rows % world_size:
        raise ValueError(f"world_size={world_size} must divide the batch's {rows} rows.")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank}.")
    b = rows // world_size
    return batch[rank * b : (rank + 1) * b]
    # END SOLUTION


# %% [markdown]
# The check shards a batch of 6 rows over 1, 2 and 3 ranks, compares with attnkit's
# `shard_rows` and shows that an uneven split is refused.

# %%
# NBVAL_CHECK_OUTPUT
batch = torch.arange(12).view(6, 2)
for world_size in (1, 2, 3):
    shards = [shard_rows(batch, r, world_size) for r in range(world_size)]
    print(world_size, "ranks:", [s[:, 0].tolist() for s in shards])
    same = all(torch.equal(s, akd.shard_rows(batch, r, world_size)) for r, s in enumerate(shards))
    print("  same as attnkit:", same)
try:
    shard_rows(batch, 0, 4)
except ValueError:
    print("4 ranks for 6 rows: ValueError")

# %% [markdown]
# ## Exercise 2: the ring all-reduce
#
# `tensors` is a list of $N$ tensors of the same shape and dtype, the tensor of device $i$
# at position $i$. Write `ring_allreduce(tensors)` returning `(results, bytes_sent)`:
# `results[i]` is device $i$'s copy of the elementwise sum (same shape and dtype), and
# `bytes_sent[i]` the number of bytes device $i$ sent, computed with the ring algorithm:
#
# 1. Flatten each device's tensor and cut it into $N$ chunks with
#    `torch.tensor_split(flat, N)` (chunk sizes differ by at most one element).
# 2. **Reduce-scatter**, steps $s = 0, \dots, N - 2$: every device $i$ sends its chunk
#    number $(i - s) \bmod N$ to device $(i + 1) \bmod N$, which **adds** it to its own
#    chunk of that number. All devices send at the same time: a step's messages are taken
#    before any of them is added. Afterwards device $i$ holds the full sum of chunk
#    $(i + 1) \bmod N$.
# 3. **All-gather**, steps $s = 0, \dots, N - 2$: every device $i$ sends its chunk number
#    $(i + 1 - s) \bmod N$ to device $(i + 1) \bmod N$, which **replaces** its chunk of that
#    number with it.
#
# Count a sent chunk as `chunk.numel() * chunk.element_size()` bytes. Do not modify the
# input tensors. With one device nothing is sent. When $N$ divides the number of
# elements, each device sends $2 (N - 1) / N$ times the size of one tensor.


# %%
def ring_allreduce(tensors: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[int]]:
    """Simulated ring all-reduce: every device's copy of the sum, and the bytes each sent."""
    # BEGIN SOLUTION
    n = len(tensors)
    shape = tensors[0].shape
    chunks = [list(t.flatten().clone().tensor_split(n)) for t in tensors]  # chunks[dev][c]
    sent = [0] * n
    for phase in ("reduce-scatter", "all-gather"):
        for s in range(n - 1):
            first = 0 if phase == "reduce-scatter" else 1
            messages = [(i, (i + first - s) % n) for i in range(n)]
            payload = [chunks[i][c].clone() for i, c in messages]  # taken before any update
            for (i, c), data in zip(messages, payload):
                dst = (i + 1) % n
                chunks[dst][c] = chunks[dst][c] + data if first == 0 else data
                sent[i] += data.numel() * data.element_size()
    return [torch.cat(ch).reshape(shape) for ch in chunks], sent
    # END SOLUTION


# %% [markdown]
# The check all-reduces integer tensors on 4 devices, float tensors whose size 4 does not
# divide, and compares the bytes with $2 (N - 1) / N$ times a tensor's size.

# %%
# NBVAL_CHECK_OUTPUT
ints = [torch.arange(8) * 10**i for i in range(4)]  # device i holds 0, 10^i, 2 * 10^i, ...
results, sent = ring_allreduce(ints)
print(results[0].tolist())
print("all devices equal:", all(torch.equal(r, results[0]) for r in results))
print("bytes sent:", sent, "| 2(N-1)/N x 64 bytes =", 2 * 3 / 4 * 64)
g = torch.Generator().manual_seed(0)
floats = [torch.randn(2, 5, generator=g, dtype=torch.float64) for _ in range(4)]
results, sent = ring_allreduce(floats)
print(tuple(results[2].shape), "sum correct:", torch.allclose(results[2], sum(floats)))
print("bytes sent with chunks of 3, 3, 2, 2 elements:", sent)
print("one device:", ring_allreduce([torch.ones(3)])[1])

# %% [markdown]
# ## Exercise 3: ZeRO's memory per device
#
# Mixed-precision training with Adam keeps, per parameter, 2 bytes of 16-bit parameters,
# 2 bytes of 16-bit gradients and `k = 12` bytes of optimizer state (float32 master
# weights, first and second moments). Write
# `zero_memory_per_device(num_params, world_size, stage, k=12)`, the bytes of model state
# per device of ZeRO on `world_size` devices:
#
# - stage 0 (plain data parallelism): nothing is sharded, $(2 + 2 + k)\,\Psi$;
# - stage 1: the optimizer state is sharded, $2\Psi + 2\Psi + k\Psi / N$;
# - stage 2: the gradients too, $2\Psi + (2 + k)\,\Psi / N$;
# - stage 3: the parameters too, $(2 + 2 + k)\,\Psi / N$.
#
# Return a float; raise `ValueError` for a stage other than 0, 1, 2, 3.


# %%
def zero_memory_per_device(num_params: float, world_size: int, stage: int, k: float = 12) -> float:
    """Bytes of model state per device under ZeRO stage 0-3 (mixed-precision Adam)."""
    # BEGIN SOLUTION
    if stage not in (0, 1, 2, 3):
        raise ValueError(f"stage must be 0, 1, 2 or 3, got {stage!r}.")
    params = 2 * num_params / (world_size if stage >= 3 else 1)
    grads = 2 * num_params / (world_size if stage >= 2 else 1)
    optimizer = k * num_params / (world_size if stage >= 1 else 1)
    return float(params + grads + optimizer)
    # END SOLUTION


# %% [markdown]
# The check reproduces Table 1 of the ZeRO paper (7.5 billion parameters, 64 devices, in
# GB of $10^9$ bytes) and shows the effect of $N$ at stage 3.

# %%
# NBVAL_CHECK_OUTPUT
for stage in range(4):
    print(f"stage {stage}: {zero_memory_per_device(7.5e9, 64, stage) / 1e9:.2f} GB")
print([round(zero_memory_per_device(1e9, n, 3) / 1e9, 3) for n in (1, 2, 8, 1024)])
try:
    zero_memory_per_device(1e9, 8, 4)
except ValueError:
    print("stage 4: ValueError")

# %% [markdown]
# ## Exercise 4: the linear scaling rule with gradual warm-up
#
# Goyal et al. (2017): when the global batch grows from `base_batch` to `batch`, multiply
# the learning rate by `batch / base_batch`; to avoid the large rate at the start, begin at
# `base_lr` and raise it linearly, over `warmup_steps` steps, to the scaled rate. Write
# `scaled_learning_rate(base_lr, base_batch, batch, step, warmup_steps)`, the learning
# rate of step `step` (counted from 0):
#
# - target $= \text{base_lr} \times \text{batch} / \text{base_batch}$;
# - for `step < warmup_steps`: base_lr + (target - base_lr) * step / warmup_steps;
# - otherwise (and always when `warmup_steps` is 0): the target.


# %%
def scaled_learning_rate(
    base_lr: float, base_batch: int, batch: int, step: int, warmup_steps: int
) -> float:
    """Learning rate of step `step` under the linear scaling rule with gradual warm-up."""
    # BEGIN SOLUTION
    target = base_lr * batch / base_batch
    if step < warmup_steps:
        return base_lr + (target - base_lr) * step / warmup_steps
    return target
    # END SOLUTION


# %% [markdown]
# The check: Goyal et al.'s ImageNet setting (0.1 for 256 images, batches of 8192, warm-up
# over 5 epochs of about 156 steps, 780 steps), at a few steps, and no warm-up.

# %%
# NBVAL_CHECK_OUTPUT
for step in (0, 390, 779, 780, 5000):
    print(step, round(scaled_learning_rate(0.1, 256, 8192, step, 780), 6))
print("no warm-up:", scaled_learning_rate(0.1, 256, 512, 0, 0))

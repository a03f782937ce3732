"""Misconceptions of chapter 15's exercises (scaling out).

Each function is a complete wrong answer that learners really write; the grader must fail
it, and the report names it from the message below (see ``attnkit.grading.misconceptions``).
"""

from __future__ import annotations

import math

import torch

from attnkit.grading.misconceptions import misconception


# ----------------------------------------------------------------------- shard_rows
@misconception(
    "shard_rows",
    en="you took every world_size-th row (batch[rank::world_size]); the exercise asks for a "
    "contiguous block, rows rank·b to (rank + 1)·b - 1.",
    zh="你每隔 world_size 行取一行（batch[rank::world_size]）；题目要求连续的一块：第 rank·b 到 "
    "(rank + 1)·b - 1 行。",
)
def strided_rows(batch, rank, world_size):
    if world_size < 1 or batch.shape[0] % world_size:
        raise ValueError("world_size must divide the batch")
    if not 0 <= rank < world_size:
        raise ValueError("rank out of range")
    return batch[rank::world_size]


@misconception(
    "shard_rows",
    en="an uneven split must raise ValueError (the mean of unequal shards' gradients is not "
    "the global gradient); you only checked the rank.",
    zh="不能整除时必须抛出 ValueError（大小不等的分片梯度取平均不等于全局梯度）；你只检查了 rank。",
)
def uneven_split_accepted(batch, rank, world_size):
    if not 0 <= rank < world_size:
        raise ValueError("rank out of range")
    b = batch.shape[0] // world_size
    return batch[rank * b : (rank + 1) * b]


@misconception(
    "shard_rows",
    en="torch.chunk(batch, world_size)[rank] does not check anything: it silently gives "
    "unequal (or too few) shards when world_size does not divide B.",
    zh="torch.chunk(batch, world_size)[rank] 不做任何检查：world_size 不能整除 B "
    "时它会悄悄给出大小不等（或数量不足）的分片。",
)
def chunk_without_checks(batch, rank, world_size):
    return torch.chunk(batch, world_size)[rank]


@misconception(
    "shard_rows",
    en="return a slice (a view of the batch's memory), not a copy: .clone() doubles the "
    "memory and detaches the shard from the batch.",
    zh="应返回切片（共享 batch 内存的视图），而不是副本：.clone() 会使内存翻倍，并使分片与原 batch "
    "脱钩。",
)
def copy_not_view(batch, rank, world_size):
    if world_size < 1 or batch.shape[0] % world_size:
        raise ValueError("world_size must divide the batch")
    if not 0 <= rank < world_size:
        raise ValueError("rank out of range")
    b = batch.shape[0] // world_size
    return batch[rank * b : (rank + 1) * b].clone()


@misconception(
    "shard_rows",
    en="a negative rank is invalid too: check 0 <= rank < world_size, not only the upper bound "
    "(Python slicing accepts negative numbers silently).",
    zh="负的 rank 也不合法：要检查 0 <= rank < world_size，而不只是上界（Python "
    "切片会默默接受负数）。",
)
def negative_rank_accepted(batch, rank, world_size):
    if world_size < 1 or batch.shape[0] % world_size:
        raise ValueError("world_size must divide the batch")
    if rank >= world_size:
        raise ValueError("rank out of range")
    b = batch.shape[0] // world_size
    return batch[rank * b : (rank + 1) * b]


# ------------------------------------------------------------------- ring_allreduce
def _ring(tensors, gather_offset=1, in_place=False, element_size=True):
    """The ring of the exercise, with one step changed by the misconceptions below."""
    n = len(tensors)
    shape = tensors[0].shape
    if in_place:  # chunks are views of the inputs
        chunks = [list(t.view(-1).tensor_split(n)) for t in tensors]
    else:
        chunks = [list(t.flatten().clone().tensor_split(n)) for t in tensors]
    sent = [0] * n
    for phase, first in (("reduce-scatter", 0), ("all-gather", gather_offset)):
        for s in range(n - 1):
            messages = [(i, (i + first - s) % n) for i in range(n)]
            payload = [chunks[i][c].clone() for i, c in messages]
            for (i, c), data in zip(messages, payload):
                dst = (i + 1) % n
                if phase == "all-gather":
                    chunks[dst][c] = data
                elif in_place:
                    chunks[dst][c].add_(data)
                else:
                    chunks[dst][c] = chunks[dst][c] + data
                sent[i] += data.numel() * (data.element_size() if element_size else 1)
    return [torch.cat(ch).reshape(shape) for ch in chunks], sent


@misconception(
    "ring_allreduce",
    en="your ring adds into views of the input tensors (flatten/view share memory): the "
    "callers' gradients change; clone before reducing.",
    zh="你的 ring 在输入张量的视图上原地相加（flatten/view 共享内存）：调用者的梯度被改了；"
    "归约前要先 clone。",
)
def reduces_into_the_inputs(tensors):
    return _ring(tensors, in_place=True)


@misconception(
    "ring_allreduce",
    en="you computed the bytes from the formula 2(N-1)/N × size; it holds only when N "
    "divides the number of elements: count the chunks each device really sends.",
    zh="你用公式 2(N-1)/N × 大小 算字节数；它只在 N 整除元素个数时成立："
    "应累计每个设备实际发送的块。",
)
def bytes_from_the_formula(tensors):
    n = len(tensors)
    total = sum(tensors[1:], tensors[0].clone())
    nbytes = total.numel() * total.element_size()
    return [total.clone() for _ in range(n)], [int(2 * (n - 1) * nbytes / n)] * n


@misconception(
    "ring_allreduce",
    en="after the reduce-scatter device i holds the full chunk (i + 1) mod N, so the "
    "all-gather starts by sending chunk (i + 1 - s) mod N, not (i - s) mod N.",
    zh="reduce-scatter 之后设备 i 持有完整的第 (i + 1) mod N 块，所以 all-gather 应从发送第 (i + 1 "
    "- s) mod N 块开始，而不是 (i - s) mod N。",
)
def all_gather_one_chunk_behind(tensors):
    return _ring(tensors, gather_offset=0)


@misconception(
    "ring_allreduce",
    en="bytes_sent counts bytes: chunk.numel() × chunk.element_size(), not the number of elements.",
    zh="bytes_sent 统计的是字节：chunk.numel() × chunk.element_size()，而不是元素个数。",
)
def counts_elements(tensors):
    return _ring(tensors, element_size=False)


# ----------------------------------------------------------- zero_memory_per_device
@misconception(
    "zero_memory_per_device",
    en="your stages are shifted: stage 1 shards only the optimizer state, stage 2 adds the "
    "gradients, stage 3 the parameters.",
    zh="你的阶段错位了：阶段 1 只切分优化器状态，阶段 2 再加上梯度，阶段 3 再加上参数。",
)
def stages_shifted(num_params, world_size, stage, k=12):
    if stage not in (0, 1, 2, 3):
        raise ValueError(f"stage must be 0, 1, 2 or 3, got {stage!r}.")
    params = 2 * num_params / (world_size if stage >= 2 else 1)
    grads = 2 * num_params / (world_size if stage >= 1 else 1)
    optimizer = k * num_params / (world_size if stage >= 1 else 1)
    return float(params + grads + optimizer)


@misconception(
    "zero_memory_per_device",
    en="the optimizer state is k bytes per parameter with k an argument: you always used 12.",
    zh="优化器状态是每个参数 k 字节，k 是参数：你总是用了 12。",
)
def k_hard_coded(num_params, world_size, stage, k=12):
    if stage not in (0, 1, 2, 3):
        raise ValueError(f"stage must be 0, 1, 2 or 3, got {stage!r}.")
    params = 2 * num_params / (world_size if stage >= 3 else 1)
    grads = 2 * num_params / (world_size if stage >= 2 else 1)
    optimizer = 12 * num_params / (world_size if stage >= 1 else 1)
    return float(params + grads + optimizer)


@misconception(
    "zero_memory_per_device",
    en="the text asks for a ValueError for a stage other than 0 to 3; yours treats it as "
    "another stage.",
    zh="题目要求阶段不是 0 到 3 时抛出 ValueError；你的代码却把它当作某个阶段处理了。",
)
def unknown_stage_accepted(num_params, world_size, stage, k=12):
    params = 2 * num_params / (world_size if stage >= 3 else 1)
    grads = 2 * num_params / (world_size if stage >= 2 else 1)
    optimizer = k * num_params / (world_size if stage >= 1 else 1)
    return float(params + grads + optimizer)


@misconception(
    "zero_memory_per_device",
    en="// floors the bytes of each shard; the formula divides exactly (Ψ / N need not be "
    "a whole number): use /.",
    zh="// 会把每个分片的字节数向下取整；公式是精确除法（Ψ / N 不一定是整数）：应使用 /。",
)
def floor_division(num_params, world_size, stage, k=12):
    if stage not in (0, 1, 2, 3):
        raise ValueError(f"stage must be 0, 1, 2 or 3, got {stage!r}.")
    params = 2 * num_params // (world_size if stage >= 3 else 1)
    grads = 2 * num_params // (world_size if stage >= 2 else 1)
    optimizer = k * num_params // (world_size if stage >= 1 else 1)
    return float(params + grads + optimizer)


@misconception(
    "zero_memory_per_device",
    en="'k = k or 12' replaces a valid k = 0 (an optimizer without state) by 12: test "
    "'k is None' if you need a default.",
    zh="'k = k or 12' 会把合法的 k = 0（没有状态的优化器）换成 12：需要默认值时应判断 'k is None'。"
    "",
)
def k_or_default(num_params, world_size, stage, k=12):
    k = k or 12
    if stage not in (0, 1, 2, 3):
        raise ValueError(f"stage must be 0, 1, 2 or 3, got {stage!r}.")
    params = 2 * num_params / (world_size if stage >= 3 else 1)
    grads = 2 * num_params / (world_size if stage >= 2 else 1)
    optimizer = k * num_params / (world_size if stage >= 1 else 1)
    return float(params + grads + optimizer)


# -------------------------------------------------------------- scaled_learning_rate
@misconception(
    "scaled_learning_rate",
    en="the warm-up starts at base_lr (step 0), not at 0: base_lr + (target - base_lr) · "
    "step / warmup_steps.",
    zh="预热从 base_lr（第 0 步）开始，而不是从 0 开始：base_lr + (target - base_lr) · step / "
    "warmup_steps。",
)
def warmup_from_zero(base_lr, base_batch, batch, step, warmup_steps):
    target = base_lr * batch / base_batch
    if step < warmup_steps:
        return target * step / warmup_steps
    return target


@misconception(
    "scaled_learning_rate",
    en="a larger batch gets a larger rate: multiply by batch / base_batch, not base_batch / batch.",
    zh="批量越大学习率越大：应乘以 batch / base_batch，而不是 base_batch / batch。",
)
def ratio_inverted(base_lr, base_batch, batch, step, warmup_steps):
    target = base_lr * base_batch / batch
    if step < warmup_steps:
        return base_lr + (target - base_lr) * step / warmup_steps
    return target


@misconception(
    "scaled_learning_rate",
    en="steps count from 0: step 0 uses base_lr, so the fraction is step / warmup_steps, "
    "not (step + 1) / warmup_steps.",
    zh="步数从 0 开始：第 0 步用 base_lr，所以比例是 step / warmup_steps，而不是 (step + 1) / "
    "warmup_steps。",
)
def warmup_off_by_one(base_lr, base_batch, batch, step, warmup_steps):
    target = base_lr * batch / base_batch
    if step < warmup_steps:
        return base_lr + (target - base_lr) * (step + 1) / warmup_steps
    return target


@misconception(
    "scaled_learning_rate",
    en="with warmup_steps = 0 there is no warm-up: 'step <= warmup_steps' divides by zero; "
    "the warm-up covers step < warmup_steps.",
    zh="warmup_steps = 0 时没有预热：写成 'step <= warmup_steps' 会除以零；预热只覆盖 step < "
    "warmup_steps。",
)
def warmup_test_inclusive(base_lr, base_batch, batch, step, warmup_steps):
    target = base_lr * batch / base_batch
    if step <= warmup_steps:
        return base_lr + (target - base_lr) * step / warmup_steps
    return target


@misconception(
    "scaled_learning_rate",
    en="Goyal et al.'s rule is linear: multiply by batch / base_batch, not by its square root.",
    zh="Goyal 等人的规则是线性的：乘以 batch / base_batch，而不是它的平方根。",
)
def square_root_scaling(base_lr, base_batch, batch, step, warmup_steps):
    target = base_lr * math.sqrt(batch / base_batch)
    if step < warmup_steps:
        return base_lr + (target - base_lr) * step / warmup_steps
    return target


@misconception(
    "scaled_learning_rate",
    en="'warmup_steps or 1' turns 'no warm-up' into a one-step warm-up, so step 0 gets "
    "base_lr instead of the scaled rate.",
    zh="'warmup_steps or 1' 把“不预热”变成了预热一步，第 0 步得到的是 base_lr "
    "而不是缩放后的学习率。",
)
def warmup_or_default(base_lr, base_batch, batch, step, warmup_steps):
    warmup = warmup_steps or 1
    target = base_lr * batch / base_batch
    if step < warmup:
        return base_lr + (target - base_lr) * step / warmup
    return target

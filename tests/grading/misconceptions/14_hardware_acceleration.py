"""Misconceptions of chapter 14's exercises (hardware acceleration).

Each function is a complete wrong answer that learners really write; the grader must fail
it, and the report names it from the message below (see ``attnkit.grading.misconceptions``).
"""

from __future__ import annotations

import torch

from attnkit.grading.misconceptions import misconception


# ------------------------------------------------------------------ naive_attention_bytes
@misconception(
    "naive_attention_bytes",
    en="every head moves its own Q, K, V, S and O: multiply by batch_heads.",
    zh="每个头都要搬运自己的 Q、K、V、S 和 O：结果要乘以 batch_heads。",
)
def one_head_only(n, d, batch_heads=1, dtype_bytes=4, score_passes=1):
    return dtype_bytes * (2 * n * d + n * n + score_passes * 2 * n * n + n * n + 2 * n * d)


@misconception(
    "naive_attention_bytes",
    en="an element-wise pass reads the n × n scores AND writes them back: 2 n² elements "
    "per pass, not n².",
    zh="逐元素的一遍既要读 n × n 的分数，也要写回：每遍 2 n² 个元素，不是 n²。",
)
def pass_counted_once(n, d, batch_heads=1, dtype_bytes=4, score_passes=1):
    return (
        batch_heads * dtype_bytes * (2 * n * d + n * n + score_passes * n * n + n * n + 2 * n * d)
    )


@misconception(
    "naive_attention_bytes",
    en="you counted elements, not bytes: multiply by dtype_bytes.",
    zh="你数的是元素个数而不是字节数：要乘以 dtype_bytes。",
)
def elements_not_bytes(n, d, batch_heads=1, dtype_bytes=4, score_passes=1):
    return batch_heads * (2 * n * d + n * n + score_passes * 2 * n * n + n * n + 2 * n * d)


@misconception(
    "naive_attention_bytes",
    en="the last kernel also writes its result O (n × d) back to main memory.",
    zh="最后一个核函数还要把结果 O（n × d）写回主存。",
)
def output_write_forgotten(n, d, batch_heads=1, dtype_bytes=4, score_passes=1):
    return (
        batch_heads * dtype_bytes * (2 * n * d + n * n + score_passes * 2 * n * n + n * n + n * d)
    )


# ------------------------------------------------------------------ fused_attention_bytes
@misconception(
    "fused_attention_bytes",
    en="a fused kernel still writes O: Q, K, V in and O out are four n × d tensors.",
    zh="融合核函数仍要写出 O：读入 Q、K、V 加写出 O，一共四个 n × d 张量。",
)
def output_not_written(n, d, batch_heads=1, dtype_bytes=4):
    return batch_heads * dtype_bytes * 3 * n * d


@misconception(
    "fused_attention_bytes",
    en="the point of fusion is that the n × n scores never reach main memory: do not count them.",
    zh="融合的关键就是 n × n 的分数从不写入主存：不要把它们计入。",
)
def scores_still_counted(n, d, batch_heads=1, dtype_bytes=4):
    return batch_heads * dtype_bytes * (4 * n * d + n * n)


@misconception(
    "fused_attention_bytes",
    en="every head reads its own Q, K, V and writes its own O: multiply by batch_heads.",
    zh="每个头都读自己的 Q、K、V 并写自己的 O：结果要乘以 batch_heads。",
)
def one_head_only_fused(n, d, batch_heads=1, dtype_bytes=4):
    return dtype_bytes * 4 * n * d


@misconception(
    "fused_attention_bytes",
    en="you counted elements, not bytes: multiply by dtype_bytes.",
    zh="你数的是元素个数而不是字节数：要乘以 dtype_bytes。",
)
def elements_not_bytes_fused(n, d, batch_heads=1, dtype_bytes=4):
    return batch_heads * 4 * n * d


# ---------------------------------------------------------------------- attainable_gflops
def _check(intensity, peak_gflops, bandwidth_gbs):
    for name, value in (("intensity", intensity), ("peak_gflops", peak_gflops),
                        ("bandwidth_gbs", bandwidth_gbs)):  # fmt: skip
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value}.")


@misconception(
    "attainable_gflops",
    en="the roofline is the lower of the two ceilings, min(peak, intensity × bandwidth), "
    "not the higher.",
    zh="屋顶线取两个上限中较低的一个，min(peak, intensity × bandwidth)，而不是较高的。",
)
def max_instead_of_min(intensity, peak_gflops, bandwidth_gbs):
    _check(intensity, peak_gflops, bandwidth_gbs)
    return float(max(peak_gflops, intensity * bandwidth_gbs))


@misconception(
    "attainable_gflops",
    en="the text asks for a ValueError when an argument is not positive; your function "
    "returns a number.",
    zh="题目要求参数不为正时抛出 ValueError；你的函数却返回了一个数。",
)
def no_validation(intensity, peak_gflops, bandwidth_gbs):
    return float(min(peak_gflops, intensity * bandwidth_gbs))


@misconception(
    "attainable_gflops",
    en="FLOP/byte × GB/s = GFLOP/s: multiply the intensity by the bandwidth, do not divide.",
    zh="FLOP/byte × GB/s = GFLOP/s：强度应乘以带宽，而不是相除。",
)
def bandwidth_divided(intensity, peak_gflops, bandwidth_gbs):
    _check(intensity, peak_gflops, bandwidth_gbs)
    return float(min(peak_gflops, bandwidth_gbs / intensity))


@misconception(
    "attainable_gflops",
    en="an assert is not input validation (it raises AssertionError and vanishes under "
    "python -O): raise ValueError.",
    zh="assert 不是输入检查（它抛出 AssertionError，且在 python -O 下会被去掉）：应抛出 "
    "ValueError。",
)
def assert_instead_of_raise(intensity, peak_gflops, bandwidth_gbs):
    assert intensity > 0 and peak_gflops > 0 and bandwidth_gbs > 0, "arguments must be positive"
    return float(min(peak_gflops, intensity * bandwidth_gbs))


# ---------------------------------------------------------------------- round_to_bfloat16
@misconception(
    "round_to_bfloat16",
    en="clearing the low 16 bits truncates toward zero; round to nearest by adding "
    "0x7FFF + the lowest kept bit first.",
    zh="直接清掉低 16 位是向零截断；应先加上 0x7FFF + 保留的最低位，再清零，实现就近舍入。",
)
def truncates(x):
    bits = x.contiguous().view(torch.int32)
    return torch.where(torch.isnan(x), x, (bits & -0x10000).view(torch.float32))


@misconception(
    "round_to_bfloat16",
    en="adding 0x8000 rounds ties away from zero; ties go to the even neighbour: add "
    "0x7FFF + ((bits >> 16) & 1).",
    zh="加 0x8000 会把恰好一半的情况远离零舍入；应舍入到偶数：加 0x7FFF + ((bits >> 16) & 1)。",
)
def ties_away_from_zero(x):
    bits = x.contiguous().view(torch.int32)
    return torch.where(torch.isnan(x), x, ((bits + 0x8000) & -0x10000).view(torch.float32))


@misconception(
    "round_to_bfloat16",
    en="the exercise asks for the rounding on the bits: .to(torch.bfloat16) is the answer "
    "you are meant to reproduce, not use.",
    zh="题目要求在比特上实现舍入：.to(torch.bfloat16) 是要你复现的结果，而不是拿来直接用的。",
)
def uses_bfloat16_conversion(x):
    return x.to(torch.bfloat16).float()


@misconception(
    "round_to_bfloat16",
    en="NaN needs a special case: adding the rounding bias to a NaN's bits can overflow "
    "into infinity or the sign bit; keep NaN as NaN.",
    zh="NaN 需要单独处理：给 NaN 的比特加上舍入偏置可能溢出成无穷大或改变符号位；应保持 NaN 不变。",
)
def nan_not_kept(x):
    bits = x.contiguous().view(torch.int32)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) & -0x10000).view(torch.float32)


@misconception(
    "round_to_bfloat16",
    en="x.view(torch.int32) shares memory with x: an in-place add on it changes the "
    "caller's tensor; compute on new tensors.",
    zh="x.view(torch.int32) 与 x 共享内存：在它上面原地相加会改掉调用者的张量；应在新张量上计算。",
)
def rounds_in_place(x):
    nan = torch.isnan(x)
    bits = x.view(torch.int32)
    bits.add_(0x7FFF + ((bits >> 16) & 1)).bitwise_and_(-0x10000)
    return torch.where(nan, float("nan"), x)

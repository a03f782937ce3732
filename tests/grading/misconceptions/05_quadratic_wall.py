"""Misconceptions of chapter 5's exercises (solutions/05_quadratic_wall.py).

Each function is a complete wrong answer a learner really writes; its name is the id.
"""

from __future__ import annotations

import math

import torch

from attnkit.grading.misconceptions import misconception


# -------------------------------------------------------------------- attention_flops
@misconception(
    "attention_flops",
    en="your count is half: there are two products (QKᵀ and AV), each n·n·d multiply-adds, "
    "and one multiply-add is 2 FLOPs",
    zh="你的计数少了一半：有两个矩阵乘（QKᵀ 和 AV），每个 n·n·d 次乘加，而一次乘加算 2 个 FLOP",
)
def flops_half(n, d, num_heads):
    return num_heads * 2 * n * n * d


@misconception(
    "attention_flops",
    en="you counted one head: every head does both products, multiply by num_heads",
    zh="你只算了一个头：每个头都要做这两个矩阵乘，要乘以 num_heads",
)
def flops_one_head(n, d, num_heads):
    return 2 * 2 * n * n * d


@misconception(
    "attention_flops",
    en="attention's products cost n·n·d each (n² scores of length-d dot products); n·d·d "
    "is the cost of a projection, not of attention",
    zh="注意力的两个矩阵乘各需 n·n·d 次乘加（n² 个长度为 d 的点积）；n·d·d 是投影的开销，不是注意力的",
)
def flops_n_d_squared(n, d, num_heads):
    return num_heads * 2 * 2 * n * d * d


@misconception(
    "attention_flops",
    en="the exercise counts only QKᵀ and AV; you added the four projections (Q, K, V, output)",
    zh="题目只计 QKᵀ 和 AV；你把四个投影（Q、K、V、输出）也算进去了",
)
def flops_with_projections(n, d, num_heads):
    width = num_heads * d
    return num_heads * 2 * 2 * n * n * d + 4 * 2 * n * width * width


@misconception(
    "attention_flops",
    en="you return a float (`**2.0`, `math.pow` or `/`): FLOP counts are exact integers, "
    "use integer arithmetic",
    zh="你返回的是浮点数（用了 `**2.0`、`math.pow` 或 `/`）：FLOP 计数是精确整数，请用整数运算",
)
def flops_float(n, d, num_heads):
    return 4 * math.pow(n, 2) * d * num_heads


# ----------------------------------------------------------------- score_memory_bytes
@misconception(
    "score_memory_bytes",
    en="you assumed 4 bytes per element: take the size from the dtype (`dtype.itemsize`)",
    zh="你假设每个元素 4 字节：应从 dtype 取得大小（`dtype.itemsize`）",
)
def memory_assumes_four_bytes(batch, heads, n, dtype):
    return batch * heads * n * n * 4


@misconception(
    "score_memory_bytes",
    en="you counted elements, not bytes: multiply by the bytes per element",
    zh="你算的是元素个数而不是字节数：还要乘以每个元素的字节数",
)
def memory_counts_elements(batch, heads, n, dtype):
    return batch * heads * n * n


@misconception(
    "score_memory_bytes",
    en="the score tensor is (batch, heads, n, n): n appears twice",
    zh="分数张量的形状是 (batch, heads, n, n)：n 出现两次",
)
def memory_linear_in_n(batch, heads, n, dtype):
    return batch * heads * n * dtype.itemsize


@misconception(
    "score_memory_bytes",
    en="`torch.finfo` only knows floating-point types (it fails on torch.bool): use "
    "`dtype.itemsize`",
    zh="`torch.finfo` 只适用于浮点类型（对 torch.bool 会出错）：请用 `dtype.itemsize`",
)
def memory_finfo_bits(batch, heads, n, dtype):
    return batch * heads * n * n * (torch.finfo(dtype).bits // 8)


# ---------------------------------------------------------------- mha_parameter_count
@misconception(
    "mha_parameter_count",
    en="with grouped-query attention W_K and W_V have num_kv_heads · (d_model // num_heads) "
    "outputs, not d_model",
    zh="分组查询注意力中 W_K 和 W_V 的输出维度是 num_kv_heads · (d_model // num_heads)，而不是 d_model",
)
def params_ignores_kv_heads(d_model, num_heads, num_kv_heads, bias):
    return 4 * d_model * d_model + (4 * d_model if bias else 0)


@misconception(
    "mha_parameter_count",
    en="a key/value head is d_model // num_heads wide: W_K and W_V have num_kv_heads times "
    "that many outputs, not num_kv_heads · d_model",
    zh="每个键/值头的宽度是 d_model // num_heads：W_K 和 W_V 的输出维度是它的 num_kv_heads 倍，而不是 num_kv_heads · d_model",
)
def params_kv_width_times_d_model(d_model, num_heads, num_kv_heads, bias):
    kv_width = num_kv_heads * d_model
    weights = 2 * d_model * d_model + 2 * d_model * kv_width
    return weights + (2 * d_model + 2 * kv_width if bias else 0)


@misconception(
    "mha_parameter_count",
    en="each bias has one entry per *output* of its projection: W_K's and W_V's biases are "
    "kv-width long, not d_model",
    zh="每个偏置的长度等于其投影的*输出*维度：W_K 和 W_V 的偏置长度是键/值的宽度，而不是 d_model",
)
def params_bias_d_model_each(d_model, num_heads, num_kv_heads, bias):
    kv_width = num_kv_heads * (d_model // num_heads)
    weights = 2 * d_model * d_model + 2 * d_model * kv_width
    return weights + (4 * d_model if bias else 0)


@misconception(
    "mha_parameter_count",
    en="you left out the output projection W_O (d_model × d_model, plus its bias)",
    zh="你漏掉了输出投影 W_O（d_model × d_model，以及它的偏置）",
)
def params_no_output_projection(d_model, num_heads, num_kv_heads, bias):
    kv_width = num_kv_heads * (d_model // num_heads)
    weights = d_model * d_model + 2 * d_model * kv_width
    return weights + (d_model + 2 * kv_width if bias else 0)


@misconception(
    "mha_parameter_count",
    en="you ignored `bias`: count the biases only when bias=True",
    zh="你忽略了 `bias` 参数：只有 bias=True 时才计入偏置",
)
def params_always_bias(d_model, num_heads, num_kv_heads, bias):
    kv_width = num_kv_heads * (d_model // num_heads)
    return 2 * d_model * d_model + 2 * d_model * kv_width + 2 * d_model + 2 * kv_width


# -------------------------------------------------------------- max_length_for_budget
@misconception(
    "max_length_for_budget",
    en="floating-point sqrt rounds: near 10¹⁶ `int(math.sqrt(...))` is off by one; use "
    "integer arithmetic, `math.isqrt(budget // per_square)`",
    zh="浮点 sqrt 会舍入：在 10¹⁶ 附近 `int(math.sqrt(...))` 会差一；请用整数运算 `math.isqrt(budget // per_square)`",
)
def budget_float_sqrt(budget_bytes, batch, heads, bytes_per_element):
    return int(math.sqrt(budget_bytes / (batch * heads * bytes_per_element)))


@misconception(
    "max_length_for_budget",
    en="rounding to the nearest integer can exceed the budget: the largest n that fits "
    "is the floor of the square root",
    zh="四舍五入可能超出预算：能放下的最大 n 是平方根向下取整",
)
def budget_rounds(budget_bytes, batch, heads, bytes_per_element):
    return round(math.sqrt(budget_bytes / (batch * heads * bytes_per_element)))


@misconception(
    "max_length_for_budget",
    en="you left the batch out: the scores of every sequence in the batch share the budget",
    zh="你漏掉了批大小：批中每个序列的分数都要占用这份预算",
)
def budget_ignores_batch(budget_bytes, batch, heads, bytes_per_element):
    return math.isqrt(budget_bytes // (heads * bytes_per_element))


@misconception(
    "max_length_for_budget",
    en="you left out the bytes per element: the budget is in bytes, n² elements take "
    "n²·b bytes per head and sequence",
    zh="你漏掉了每个元素的字节数：预算以字节计，n² 个元素在每个头、每个序列上占 n²·b 字节",
)
def budget_ignores_bytes_per_element(budget_bytes, batch, heads, bytes_per_element):
    return math.isqrt(budget_bytes // (batch * heads))

"""Misconceptions of chapter 10's exercises (multimodal attention).

Each function is a complete wrong answer that learners really write; the grader must fail
it, and the report names it from the message below (see ``attnkit.grading.misconceptions``).
"""

from __future__ import annotations

import math

import torch

from attnkit.grading.misconceptions import misconception

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


# ------------------------------------------------------------------- number_to_words
@misconception(
    "number_to_words",
    en="the chapter's vocabulary has no hyphens: 42 is 'forty two', not 'forty-two'.",
    zh="本章的词表里没有连字符：42 应写成 'forty two'，而不是 'forty-two'。",
)
def hyphenated_tens(n):
    if n < 20:
        return _ONES[n]
    words = [_ONES[n // 100], "hundred"] if n >= 100 else []
    rest = n % 100
    if rest >= 20:
        words.append(_TENS[rest // 10] + (f"-{_ONES[rest % 10]}" if rest % 10 else ""))
    elif rest:
        words.append(_ONES[rest])
    return " ".join(words)


@misconception(
    "number_to_words",
    en="American style has no 'and': 105 is 'one hundred five', not 'one hundred and five'.",
    zh="美式写法不加 'and'：105 是 'one hundred five'，不是 'one hundred and five'。",
)
def british_and(n):
    if n < 20:
        return _ONES[n]
    words = [_ONES[n // 100], "hundred"] if n >= 100 else []
    rest = n % 100
    if rest and n >= 100:
        words.append("and")
    if rest >= 20:
        words.append(_TENS[rest // 10])
        if rest % 10:
            words.append(_ONES[rest % 10])
    elif rest:
        words.append(_ONES[rest])
    return " ".join(words)


@misconception(
    "number_to_words",
    en="a zero digit is not spoken: 40 is 'forty' and 300 is 'three hundred', without "
    "a trailing 'zero'.",
    zh="为零的数位不读出来：40 是 'forty'，300 是 'three hundred'，结尾不要加 'zero'。",
)
def spoken_zero_digits(n):
    if n < 20:
        return _ONES[n]
    words = [_ONES[n // 100], "hundred"] if n >= 100 else []
    rest = n % 100
    if rest >= 20:
        words += [_TENS[rest // 10], _ONES[rest % 10]]
    else:
        words.append(_ONES[rest])
    return " ".join(words)


@misconception(
    "number_to_words",
    en="your tens are one step off ('fifty two' for 42): index the tens list so that "
    "tens[4] is 'forty'.",
    zh="你的十位错了一位（42 读成 'fifty two'）：十位列表的下标应使 tens[4] 为 'forty'。",
)
def tens_off_by_one(n):
    tens = ["ten", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
    if n < 20:
        return _ONES[n]
    words = [_ONES[n // 100], "hundred"] if n >= 100 else []
    rest = n % 100
    if rest >= 20:
        words.append(tens[min(rest // 10, 8)])
        if rest % 10:
            words.append(_ONES[rest % 10])
    elif rest:
        words.append(_ONES[rest])
    return " ".join(words)


# --------------------------------------------------------------------- compose_strip
@misconception(
    "compose_strip",
    en="the digits are right-aligned: a two-digit number leaves slot 0 (columns 0 to 7) "
    "blank, not slot 2.",
    zh="数字要右对齐：两位数应空出第 0 格（第 0 到 7 列），而不是第 2 格。",
)
def left_aligned(digit_images):
    k = digit_images.shape[0]
    blank = digit_images.new_zeros(3 - k, 1, 8, 8)
    return torch.cat(list(torch.cat([digit_images, blank], dim=0)), dim=-1)


@misconception(
    "compose_strip",
    en="your strip is always float32: allocate it with the input's dtype "
    "(digit_images.new_zeros or dtype=digit_images.dtype).",
    zh="你的条带图像总是 float32：应按输入的 dtype 分配（digit_images.new_zeros 或 "
    "dtype=digit_images.dtype）。",
)
def strip_always_float32(digit_images):
    k = digit_images.shape[0]
    out = torch.zeros(1, 8, 24)
    for j in range(k):
        slot = 3 - k + j
        out[0, :, 8 * slot : 8 * slot + 8] = digit_images[j, 0]
    return out


@misconception(
    "compose_strip",
    en="you stacked the digits vertically (dimension H): side by side means concatenating "
    "along the width, the last dimension.",
    zh="你把数字竖着叠起来了（H 维）：并排放置应沿宽度、即最后一维拼接。",
)
def stacked_vertically(digit_images):
    k = digit_images.shape[0]
    blank = digit_images.new_zeros(3 - k, 1, 8, 8)
    return torch.cat(list(torch.cat([blank, digit_images], dim=0)), dim=-2)


@misconception(
    "compose_strip",
    en="the strip is always three slots wide (1, 8, 24): a two-digit number keeps a blank slot 0.",
    zh="条带图像总是三格宽 (1, 8, 24)：两位数也要保留空白的第 0 格。",
)
def no_blank_slot(digit_images):
    return torch.cat(list(digit_images), dim=-1)


@misconception(
    "compose_strip",
    en="the digits come most significant first: the units digit goes in the last slot "
    "(columns 16 to 23), not the first.",
    zh="数字按从高位到低位给出：个位应放在最后一格（第 16 到 23 列），而不是第一格。",
)
def digits_reversed(digit_images):
    k = digit_images.shape[0]
    blank = digit_images.new_zeros(3 - k, 1, 8, 8)
    return torch.cat(list(torch.cat([blank, digit_images.flip(0)], dim=0)), dim=-1)


# ----------------------------------------------------------- cross_attention_by_hand
def _heads(t, H):
    return t.unflatten(-1, (H, t.shape[-1] // H)).transpose(1, 2)  # (B, H, L, D)


@misconception(
    "cross_attention_by_hand",
    en="the scores are divided by √d_model; each head scales by √D with D = d_model / H.",
    zh="你的分数除以了 √d_model；每个头应除以 √D，其中 D = d_model / H。",
)
def scale_by_d_model(x, memory, attn):
    H, d = attn.num_heads, x.shape[-1]
    q, k, v = (
        _heads(attn.q_proj(x), H),
        _heads(attn.k_proj(memory), H),
        _heads(attn.v_proj(memory), H),
    )
    weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d), dim=-1)
    return attn.out_proj((weights @ v).transpose(1, 2).flatten(-2)), weights


@misconception(
    "cross_attention_by_hand",
    en="reshaping (B, T, d_model) straight to (B, H, T, D) mixes tokens into heads: "
    "unflatten to (B, T, H, D), then transpose(1, 2).",
    zh="把 (B, T, d_model) 直接 reshape 成 (B, H, T, D) 会把不同 token 混进同一个头：应先 "
    "unflatten 成 (B, T, H, D)，再 transpose(1, 2)。",
)
def reshape_without_transpose(x, memory, attn):
    H = attn.num_heads
    B, T, d = x.shape
    N, D = memory.shape[1], d // H
    q = attn.q_proj(x).reshape(B, H, T, D)
    k = attn.k_proj(memory).reshape(B, H, N, D)
    v = attn.v_proj(memory).reshape(B, H, N, D)
    weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(D), dim=-1)
    return attn.out_proj((weights @ v).reshape(B, T, d)), weights


@misconception(
    "cross_attention_by_hand",
    en="your softmax runs over the queries (dim=-2); each query's weights over the N "
    "patches must sum to 1 (dim=-1).",
    zh="你的 softmax 沿查询维（dim=-2）计算；每个查询对 N 个图像块的权重之和应为 1（dim=-1）。",
)
def softmax_over_queries(x, memory, attn):
    H = attn.num_heads
    D = x.shape[-1] // H
    q, k, v = (
        _heads(attn.q_proj(x), H),
        _heads(attn.k_proj(memory), H),
        _heads(attn.v_proj(memory), H),
    )
    weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(D), dim=-2)
    return attn.out_proj((weights @ v).transpose(1, 2).flatten(-2)), weights


@misconception(
    "cross_attention_by_hand",
    en="the weights are right but the output skips W_O: apply attn.out_proj to the "
    "concatenated heads.",
    zh="权重是对的，但输出漏了 W_O：要对拼接后的多头结果再做 attn.out_proj。",
)
def missing_output_projection(x, memory, attn):
    H = attn.num_heads
    D = x.shape[-1] // H
    q, k, v = (
        _heads(attn.q_proj(x), H),
        _heads(attn.k_proj(memory), H),
        _heads(attn.v_proj(memory), H),
    )
    weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(D), dim=-1)
    return (weights @ v).transpose(1, 2).flatten(-2), weights


@misconception(
    "cross_attention_by_hand",
    en="keys and values come from the image (memory), not from the text x: that would be "
    "self-attention.",
    zh="键和值来自图像（memory），而不是文本 x：那样就变成自注意力了。",
)
def keys_from_text(x, memory, attn):
    H = attn.num_heads
    D = x.shape[-1] // H
    q, k, v = _heads(attn.q_proj(x), H), _heads(attn.k_proj(x), H), _heads(attn.v_proj(x), H)
    weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(D), dim=-1)
    return attn.out_proj((weights @ v).transpose(1, 2).flatten(-2)), weights


# ---------------------------------------------------------------- slot_attention_mass
@misconception(
    "slot_attention_mass",
    en="you cut the N patch numbers into contiguous blocks; the grid is row-major, so a "
    "slot is a band of columns in every grid row.",
    zh="你把 N 个图像块的编号切成了连续的几段；网格按行优先编号，一个数字格是每一行中的若干列。",
)
def contiguous_blocks(weights, grid, num_slots):
    return weights.reshape(*weights.shape[:-1], num_slots, -1).sum(-1)


@misconception(
    "slot_attention_mass",
    en="your reshape interleaves the columns (gw // num_slots, num_slots): slot s is the "
    "adjacent columns s·w to (s+1)·w - 1.",
    zh="你的 reshape 把列交错分配了 (gw // num_slots, num_slots)：第 s 格应是相邻的第 s·w 到 "
    "(s+1)·w - 1 列。",
)
def interleaved_columns(weights, grid, num_slots):
    gh, gw = grid
    w = weights.reshape(*weights.shape[:-1], gh, gw // num_slots, num_slots)
    return w.sum(dim=(-3, -2))


@misconception(
    "slot_attention_mass",
    en="the mass of a slot is the sum of its patches' weights, not their mean.",
    zh="一个数字格的注意力质量是其图像块权重之和，而不是平均值。",
)
def mean_not_sum(weights, grid, num_slots):
    gh, gw = grid
    return weights.reshape(*weights.shape[:-1], gh, num_slots, gw // num_slots).mean(dim=(-3, -1))


@misconception(
    "slot_attention_mass",
    en="you kept only the first row of the patch grid: a slot includes its columns in all gh rows.",
    zh="你只用了图像块网格的第一行：一个数字格包括所有 gh 行中它的那几列。",
)
def first_grid_row_only(weights, grid, num_slots):
    gh, gw = grid
    w = weights.reshape(*weights.shape[:-1], gh, num_slots, gw // num_slots)
    return w[..., 0, :, :].sum(-1)


# ----------------------------------------------------------------------- exact_match
def _upto_eos(row, eos_id):
    return row[: row.index(eos_id) + 1] if eos_id in row else None


@misconception(
    "exact_match",
    en="you compared whole rows, padding included: only the tokens up to and including "
    "the first EOS count, and pred and target may differ in length.",
    zh="你比较了整行（包括填充）：只有到第一个 EOS（含）为止的 token 才算，而且 pred 和 target "
    "长度可以不同。",
)
def compare_whole_rows(pred, target, eos_id):
    return float((pred[:, : target.shape[1]] == target).all(dim=1).float().mean())


@misconception(
    "exact_match",
    en="return a Python float (float(...) or .item()), not a tensor.",
    zh="应返回 Python 的 float（用 float(...) 或 .item()），而不是张量。",
)
def returns_tensor(pred, target, eos_id):
    hits = [
        _upto_eos(p, eos_id) is not None and _upto_eos(p, eos_id) == _upto_eos(t, eos_id)
        for p, t in zip(pred.tolist(), target.tolist())
    ]
    return torch.tensor(hits, dtype=torch.float64).mean()


@misconception(
    "exact_match",
    en="zip() stops at the shorter row: a prediction cut before its EOS agrees with the "
    "target on every position zip compares, but it is wrong.",
    zh="zip() 会在较短的一行结束：在 EOS 之前被截断的预测在 zip 比较的每个位置都和目标一致，"
    "但它是错的。",
)
def overlapping_prefix_only(pred, target, eos_id):
    hits = 0
    for p, t in zip(pred.tolist(), target.tolist()):
        t_words = _upto_eos(t, eos_id) or t
        hits += all(a == b for a, b in zip(p, t_words))
    return hits / len(target)


@misconception(
    "exact_match",
    en="a row that never emits EOS is wrong: you compared it as if it ended where the row ends.",
    zh="从未输出 EOS 的行算错：你把它当成在行末结束来比较了。",
)
def missing_eos_counts(pred, target, eos_id):
    hits = 0
    for p, t in zip(pred.tolist(), target.tolist()):
        p_words = _upto_eos(p, eos_id) or [*p, eos_id]
        hits += p_words == _upto_eos(t, eos_id)
    return hits / len(target)

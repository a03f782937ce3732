"""Misconceptions of chapter 16's exercises (adaptive attention span).

Each function is a complete wrong answer that learners really write; the grader must fail
it, and the report names it from the message below (see ``attnkit.grading.misconceptions``).
"""

from __future__ import annotations

import math

import torch

from attnkit.grading.misconceptions import misconception


# -------------------------------------------------------------------- soft_span_mask
@misconception(
    "soft_span_mask",
    en="without the upper clamp the mask exceeds 1 for distances below the span: clamp to "
    "[0, 1], not only at 0.",
    zh="没有上限截断时，距离小于跨度处的掩码会超过 1：应截断到 [0, 1]，而不只是在 0 处截断。",
)
def no_upper_clamp(distance, span, ramp):
    return ((ramp + span - distance) / ramp).clamp(min=0.0)


@misconception(
    "soft_span_mask",
    en="the mask falls as the distance grows: (R + z - x) / R, you wrote (R + x - z) / R.",
    zh="掩码应随距离增大而减小：(R + z - x) / R，你写成了 (R + x - z) / R。",
)
def distance_and_span_swapped(distance, span, ramp):
    return ((ramp + distance - span) / ramp).clamp(0.0, 1.0)


@misconception(
    "soft_span_mask",
    en="a hard 0/1 mask (distance <= span) has no ramp and no gradient in the span: the "
    "span could never be learned.",
    zh="硬的 0/1 掩码（distance <= span）既没有斜坡，对跨度也没有梯度：跨度就无法学习。",
)
def hard_mask(distance, span, ramp):
    return (distance <= span).to(distance.dtype)


@misconception(
    "soft_span_mask",
    en="span may be a tensor of spans that broadcasts with distance: float(span) (or a "
    "Python if on it) breaks the broadcast and the gradient.",
    zh="span 可以是一个与 distance 广播的跨度张量：float(span)（或对它用 Python 的 if）"
    "会破坏广播和梯度。",
)
def span_as_python_float(distance, span, ramp):
    z = float(span)
    return ((ramp + z - distance) / ramp).clamp(0.0, 1.0)


@misconception(
    "soft_span_mask",
    en="divide by the ramp R: without it the ramp is always one token wide.",
    zh="要除以斜坡宽度 R：不除的话斜坡永远只有一个 token 宽。",
)
def ramp_not_divided(distance, span, ramp):
    return (ramp + span - distance).clamp(0.0, 1.0)


@misconception(
    "soft_span_mask",
    en="your function computes the mask in place in the distance tensor: the caller's "
    "distances are overwritten; build a new tensor.",
    zh="你的函数在 distance 张量上原地计算掩码：调用者的距离被覆盖了；应新建张量。",
)
def mask_in_place(distance, span, ramp):
    return distance.neg_().add_(ramp + span).div_(ramp).clamp_(0.0, 1.0)


# ------------------------------------------------------------- adaptive_span_weights
def _mask_matrix(scores, span, ramp, mask_fn, causal=True):
    """The soft mask (H, n, n) from the learner's soft_span_mask (``mask_fn``), as the solution."""
    n = scores.shape[-1]
    pos = torch.arange(n, dtype=scores.dtype)
    distance = pos[:, None] - pos[None, :]
    m = mask_fn(distance, span.to(scores.dtype)[:, None, None], ramp)
    if causal:
        m = torch.where(distance >= 0, m, torch.zeros_like(m))
    return m


@misconception(
    "adaptive_span_weights",
    en="multiplying the softmax by the mask leaves rows that no longer sum to 1: divide by "
    "the row sum again.",
    zh="softmax 乘上掩码后每行之和不再是 1：还要再除以行和。",
)
def not_renormalized(scores, span, ramp):
    m = _mask_matrix(scores, span, ramp, soft_span_mask)
    return torch.softmax(scores.masked_fill(m == 0, float("-inf")), dim=-1) * m


@misconception(
    "adaptive_span_weights",
    en="the attention is causal: keys after the query (r > t) get weight 0, but m(t - r) "
    "is 1 for negative distances.",
    zh="注意力是因果的：查询之后的键（r > t）权重为 0，但 m(t - r) 在距离为负时等于 1。",
)
def not_causal(scores, span, ramp):
    m = _mask_matrix(scores, span, ramp, soft_span_mask, causal=False)
    w = torch.softmax(scores.masked_fill(m == 0, float("-inf")), dim=-1) * m
    return w / w.sum(dim=-1, keepdim=True)


@misconception(
    "adaptive_span_weights",
    en="the mask multiplies the exponentials, m · e^s, not the scores inside the softmax.",
    zh="掩码乘的是指数项 m · e^s，而不是 softmax 里面的分数。",
)
def mask_multiplies_scores(scores, span, ramp):
    m = _mask_matrix(scores, span, ramp, soft_span_mask)
    logits = (scores * m).masked_fill(m == 0, float("-inf"))
    return torch.softmax(logits, dim=-1)


@misconception(
    "adaptive_span_weights",
    en="exp of scores of several hundred overflows: subtract the row maximum (or use "
    "torch.softmax) before exponentiating.",
    zh="几百大小的分数取 exp 会溢出：取指数之前先减去行最大值（或者用 torch.softmax）。",
)
def exp_without_max(scores, span, ramp):
    m = _mask_matrix(scores, span, ramp, soft_span_mask)
    w = m * torch.exp(scores)
    return w / w.sum(dim=-1, keepdim=True)


# ---------------------------------------------------------------------- span_penalty
@misconception(
    "span_penalty",
    en="the span is S · clamp(f, 0, 1): fractions outside [0, 1] must be clamped (and get "
    "no gradient).",
    zh="跨度是 S · clamp(f, 0, 1)：超出 [0, 1] 的比例要截断（截断处没有梯度）。",
)
def fractions_not_clamped(span_fractions, max_span, lam):
    return lam / span_fractions.shape[-1] * (max_span * span_fractions).sum()


@misconception(
    "span_penalty",
    en="M is the number of heads per layer: divide the sum by M, not by the number of all "
    "heads (you took the mean over layers too).",
    zh="M 是每层的头数：总和应除以 M，而不是所有头的数量（你把各层也平均了）。",
)
def mean_over_all_heads(span_fractions, max_span, lam):
    return lam * (max_span * span_fractions.clamp(0.0, 1.0)).mean()


@misconception(
    "span_penalty",
    en="the penalty is on spans in tokens: multiply the clamped fractions by max_span.",
    zh="惩罚针对的是以 token 计的跨度：截断后的比例要乘以 max_span。",
)
def max_span_left_out(span_fractions, max_span, lam):
    return lam / span_fractions.shape[-1] * span_fractions.clamp(0.0, 1.0).sum()


@misconception(
    "span_penalty",
    en="return a 0-d tensor that keeps the graph: .item() (or float()) cuts the gradient "
    "the penalty is for.",
    zh="应返回保留计算图的 0 维张量：.item()（或 float()）会切断惩罚项所需的梯度。",
)
def returns_python_float(span_fractions, max_span, lam):
    spans = max_span * span_fractions.clamp(0.0, 1.0)
    return (lam / span_fractions.shape[-1] * spans.sum()).item()


# --------------------------------------------------------------- adaptive_span_flops
def _pairs(n, reach):
    return reach * (reach + 1) // 2 + (n - reach) * reach


@misconception(
    "adaptive_span_flops",
    en="a query sees the keys at distance x < z + R, that is ⌈z + R⌉ keys: int() rounds "
    "down and drops one when z + R is not whole.",
    zh="一个查询能看到距离 x < z + R 的键，即 ⌈z + R⌉ 个：int() 向下取整，z + R "
    "不是整数时会少一个。",
)
def reach_rounded_down(n, spans, ramp, head_dim):
    return 4 * head_dim * sum(_pairs(n, min(n, int(z + ramp))) for z in spans)


@misconception(
    "adaptive_span_flops",
    en="early queries have fewer keys: query t sees min(t + 1, ⌈z + R⌉) keys, not ⌈z + R⌉ "
    "for every query.",
    zh="靠前的查询能看到的键更少：查询 t 看到 min(t + 1, ⌈z + R⌉) 个键，而不是每个查询都看到 ⌈z + "
    "R⌉ 个。",
)
def every_query_full_window(n, spans, ramp, head_dim):
    return 4 * head_dim * sum(n * min(n, math.ceil(z + ramp)) for z in spans)


@misconception(
    "adaptive_span_flops",
    en="each key costs 4d FLOPs: 2d for its score and 2d for its share of the weighted "
    "values; you counted only one of them.",
    zh="每个键的开销是 4d 次浮点运算：分数 2d，加权求和的值 2d；你只算了其中一项。",
)
def scores_only(n, spans, ramp, head_dim):
    return 2 * head_dim * sum(_pairs(n, min(n, math.ceil(z + ramp))) for z in spans)


@misconception(
    "adaptive_span_flops",
    en="return an exact Python int: the division in reach (reach + 1) / 2 makes a float; "
    "use // (the product of two consecutive numbers is even).",
    zh="应返回精确的 Python int：reach (reach + 1) / 2 中的除法会得到 float；用 //（"
    "相邻两数之积必为偶数）。",
)
def true_division_float(n, spans, ramp, head_dim):
    pairs = 0.0
    for z in spans:
        reach = min(n, math.ceil(z + ramp))
        pairs += reach * (reach + 1) / 2 + (n - reach) * reach
    return 4 * head_dim * pairs


@misconception(
    "adaptive_span_flops",
    en="a span longer than the sequence still reaches only n keys: cap the window with "
    "min(n, ⌈z + R⌉).",
    zh="跨度超过序列长度时最多也只能看到 n 个键：窗口要用 min(n, ⌈z + R⌉) 封顶。",
)
def window_not_capped(n, spans, ramp, head_dim):
    return 4 * head_dim * sum(_pairs(n, math.ceil(z + ramp)) for z in spans)

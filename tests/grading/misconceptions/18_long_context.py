"""Misconceptions for chapter 18's exercises (long and streaming contexts): each is a wrong
implementation that the grader must fail and name."""

from __future__ import annotations

import math

import torch

from attnkit.grading.misconceptions import misconception


# ---------------------------------------------------------------------- sink_window_mask
@misconception(
    "sink_window_mask",
    en="your window is one key too wide: a query sees itself and window - 1 keys before it "
    "(i - j < window, not <=).",
    zh="你的窗口多了一个键：查询看到自己以及它之前的 window - 1 个键（是 i - j < window，不是 <=）。",
)
def window_off_by_one(T, window, num_sinks):
    i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
    return (j <= i) & ((i - j <= window) | (j < num_sinks))


@misconception(
    "sink_window_mask",
    en="your sinks break causality: the first queries must not see sink keys that come after "
    "them (apply j <= i to the sinks too).",
    zh="你的汇聚点破坏了因果性：前面的查询不能看到位于它之后的汇聚点键（对汇聚点也要满足 j <= i）。",
)
def sinks_not_causal(T, window, num_sinks):
    i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
    return ((j <= i) & (i - j < window)) | (j < num_sinks)


@misconception(
    "sink_window_mask",
    en="your window is symmetric (|i - j| < window): a decoder's query never sees later keys.",
    zh="你的窗口是对称的（|i - j| < window）：解码器的查询永远看不到后面的键。",
)
def symmetric_window(T, window, num_sinks):
    i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
    return ((i - j).abs() < window) | ((j < num_sinks) & (j <= i))


@misconception(
    "sink_window_mask",
    en="you made the first num_sinks QUERIES see everything: sinks are the first num_sinks "
    "KEYS (columns), visible to every later query.",
    zh="你让前 num_sinks 个查询（行）看到了全部：汇聚点是前 num_sinks 个键（列），对之后每个查询都可见。",
)
def sinks_as_rows(T, window, num_sinks):
    i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
    return (j <= i) & ((i - j < window) | (i < num_sinks))


# --------------------------------------------------------------------------- kept_tokens
@misconception(
    "kept_tokens",
    en="you gave the kept tokens their positions in the text: StreamingLLM numbers them by "
    "their slot in the cache, 0 .. n - 1, so no position exceeds the cache size.",
    zh="你给保留的词元用了它们在文本中的位置：StreamingLLM 按它们在缓存中的槽位编号 0 .. n - 1，"
    "所以位置永远不会超过缓存大小。",
)
def text_positions(t, window, num_sinks):
    if t + 1 <= num_sinks + window:
        kept = list(range(t + 1))
    else:
        kept = list(range(num_sinks)) + list(range(t - window + 1, t + 1))
    return kept, kept


@misconception(
    "kept_tokens",
    en="your window leaves out the newest token: the last window tokens include token t itself.",
    zh="你的窗口漏掉了最新的词元：最后 window 个词元包括词元 t 本身。",
)
def window_excludes_new(t, window, num_sinks):
    if t + 1 <= num_sinks + window:
        kept = list(range(t + 1))
    else:
        kept = list(range(num_sinks)) + list(range(t - window, t))
    return kept, list(range(len(kept)))


@misconception(
    "kept_tokens",
    en="you evicted the sinks: the first num_sinks tokens of the stream stay for ever; only "
    "the tokens between them and the window are dropped.",
    zh="你把汇聚点也淘汰了：数据流的前 num_sinks 个词元永远保留，只丢弃它们和窗口之间的词元。",
)
def no_sinks(t, window, num_sinks):
    capacity = num_sinks + window
    kept = list(range(max(0, t + 1 - capacity), t + 1))
    return kept, list(range(len(kept)))


@misconception(
    "kept_tokens",
    en="before the cache is full, nothing is evicted and no token is listed twice: handle "
    "the start of the stream, where the sinks and the window overlap.",
    zh="缓存未满之前不淘汰任何词元，也不能重复列出同一个词元：要处理数据流开头汇聚点和窗口重叠的情况。",
)
def overlap_not_handled(t, window, num_sinks):
    kept = list(range(min(num_sinks, t + 1))) + list(range(max(0, t - window + 1), t + 1))
    return kept, list(range(len(kept)))


# ---------------------------------------------------------------------- yarn_frequencies
def _theta(head_dim, base):
    j = torch.arange(head_dim // 2, dtype=torch.float64)
    return base ** (-2 * j / head_dim)


@misconception(
    "yarn_frequencies",
    en="your ramp is backwards: pairs that turn MANY times over L (fast, r > beta) keep their "
    "frequency; the slow ones (r < alpha) are divided by the factor.",
    zh="你的斜坡方向反了：在 L 内转很多圈的快速对（r > beta）保持原频率；慢速对（r < alpha）才除以倍数。",
)
def ramp_reversed(head_dim, base, factor, original_length, alpha, beta):
    theta = _theta(head_dim, base)
    gamma = ((original_length * theta / (2 * math.pi) - alpha) / (beta - alpha)).clamp(0, 1)
    return gamma * theta / factor + (1 - gamma) * theta


@misconception(
    "yarn_frequencies",
    en="you counted radians, not turns: r_j = L * theta_j / (2 pi) is the number of full "
    "rotations over the trained length.",
    zh="你算的是弧度而不是圈数：r_j = L * theta_j / (2 pi) 是训练长度内转过的整圈数。",
)
def radians_not_turns(head_dim, base, factor, original_length, alpha, beta):
    theta = _theta(head_dim, base)
    gamma = ((original_length * theta - alpha) / (beta - alpha)).clamp(0, 1)
    return (1 - gamma) * theta / factor + gamma * theta


@misconception(
    "yarn_frequencies",
    en="gamma must be clipped to [0, 1]: outside the ramp a pair is either kept or "
    "interpolated, never pushed beyond.",
    zh="gamma 必须截断到 [0, 1]：在斜坡之外，一个频率对要么保持，要么插值，不能超出。",
)
def no_clamp(head_dim, base, factor, original_length, alpha, beta):
    theta = _theta(head_dim, base)
    gamma = (original_length * theta / (2 * math.pi) - alpha) / (beta - alpha)
    return (1 - gamma) * theta / factor + gamma * theta


@misconception(
    "yarn_frequencies",
    en="you divided every frequency by the factor: that is position interpolation; YaRN "
    "leaves the fast pairs alone.",
    zh="你把所有频率都除以了倍数：那是位置插值（PI）；YaRN 不改变快速的频率对。",
)
def plain_interpolation(head_dim, base, factor, original_length, alpha, beta):
    return _theta(head_dim, base) / factor


# --------------------------------------------------------------------- alibi_causal_bias
def _distance(T):
    pos = torch.arange(T, dtype=torch.float64)
    return pos[:, None] - pos[None, :]


@misconception(
    "alibi_causal_bias",
    en="your bias has the wrong sign: ALiBi PENALISES distant keys, -m_h (i - j) <= 0.",
    zh="你的偏置符号反了：ALiBi 是惩罚远处的键，-m_h (i - j) <= 0。",
)
def wrong_sign(num_heads, T):
    h = torch.arange(1, num_heads + 1, dtype=torch.float64)
    d = _distance(T)
    bias = (2.0 ** (-8.0 * h / num_heads))[:, None, None] * d
    return bias.masked_fill(d < 0, -math.inf)


@misconception(
    "alibi_causal_bias",
    en="your slopes start one step too early: heads are counted h = 1 .. H, so the first slope "
    "is 2^(-8/H), not 1.",
    zh="你的斜率起点早了一步：头的编号是 h = 1 .. H，所以第一个斜率是 2^(-8/H)，不是 1。",
)
def heads_from_zero(num_heads, T):
    h = torch.arange(num_heads, dtype=torch.float64)
    d = _distance(T)
    bias = -(2.0 ** (-8.0 * h / num_heads))[:, None, None] * d
    return bias.masked_fill(d < 0, -math.inf)


@misconception(
    "alibi_causal_bias",
    en="keys after the query got a finite (positive!) bias: in a decoder they must be masked "
    "with -inf.",
    zh="查询之后的键得到了有限（甚至为正）的偏置：在解码器中它们必须用 -inf 屏蔽。",
)
def not_causal(num_heads, T):
    h = torch.arange(1, num_heads + 1, dtype=torch.float64)
    return -(2.0 ** (-8.0 * h / num_heads))[:, None, None] * _distance(T)


@misconception(
    "alibi_causal_bias",
    en="every head got the same slope: ALiBi gives each head its own slope m_h = 2^(-8h/H), "
    "from short-sighted to far-sighted.",
    zh="所有头用了同一个斜率：ALiBi 给每个头各自的斜率 m_h = 2^(-8h/H)，从只看近处到能看远处。",
)
def one_slope(num_heads, T):
    d = _distance(T)
    bias = -(2.0 ** (-8.0 / num_heads)) * d
    return bias.expand(num_heads, T, T).masked_fill(d < 0, -math.inf)

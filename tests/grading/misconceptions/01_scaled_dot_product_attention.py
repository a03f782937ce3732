"""Misconceptions of chapter 1's exercises (solutions/01_scaled_dot_product_attention.py).

Each function is a complete wrong answer a learner really writes; its name is the id.
Names of the chapter's other exercises (``attention_scores``, ``masked_softmax``) are the
learner's own, bound when the grader replays the misconception.
"""

from __future__ import annotations

import math

import torch

from attnkit.grading.misconceptions import misconception


# ---------------------------------------------------------------- attention_scores
@misconception(
    "attention_scores",
    en="your scores are √d_k times too small: did you divide by d_k instead of √d_k?",
    zh="你的分数小了 √d_k 倍：是不是除以了 d_k 而不是 √d_k？",
)
def scale_by_d_k(q, k, scale=None):
    if scale is None:
        scale = 1.0 / q.shape[-1]
    return (q @ k.transpose(-2, -1)) * scale


@misconception(
    "attention_scores",
    en="you scaled by 1/√n (n = the number of keys); the scale is 1/√d_k, d_k = the "
    "size of each query/key vector (the last axis)",
    zh="你用 1/√n（n 为键的个数）缩放；正确的缩放是 1/√d_k，d_k 是每个查询/键向量的长度（最后一个轴）",
)
def scale_by_sqrt_n(q, k, scale=None):
    if scale is None:
        scale = 1.0 / math.sqrt(k.shape[-2])
    return (q @ k.transpose(-2, -1)) * scale


@misconception(
    "attention_scores",
    en="you forgot the default scale: without an explicit scale the scores must be "
    "multiplied by 1/√d_k",
    zh="你漏掉了默认缩放：没有给出 scale 时，分数要乘以 1/√d_k",
)
def no_default_scale(q, k, scale=None):
    scores = q @ k.transpose(-2, -1)
    return scores if scale is None else scores * scale


@misconception(
    "attention_scores",
    en="`scale = scale or 1/√d_k` treats a valid scale of 0 as missing: test `scale is None`",
    zh="`scale = scale or 1/√d_k` 会把合法的 scale=0 当作没给：请用 `scale is None` 判断",
)
def scale_or_default(q, k, scale=None):
    scale = scale or 1.0 / math.sqrt(q.shape[-1])
    return (q @ k.transpose(-2, -1)) * scale


@misconception(
    "attention_scores",
    en="you divided by `scale` instead of multiplying: `scale` is the factor the "
    "scores are multiplied by (1/√d_k by default)",
    zh="你把 `scale` 当成了除数：`scale` 是分数要乘上的因子（默认 1/√d_k）",
)
def divide_by_scale(q, k, scale=None):
    if scale is None:
        scale = math.sqrt(q.shape[-1])
    return (q @ k.transpose(-2, -1)) / scale


@misconception(
    "attention_scores",
    en="`k.T` reverses every axis of a batched tensor: use `k.transpose(-2, -1)` to swap "
    "only the last two",
    zh="对带批维度的张量，`k.T` 会反转所有轴：请用 `k.transpose(-2, -1)` 只交换最后两个轴",
)
def k_dot_T(q, k, scale=None):
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    return (q @ k.T) * scale


# ------------------------------------------------------------------ masked_softmax
@misconception(
    "masked_softmax",
    en="your weights sum to 1 over the query axis: softmax over the wrong dimension "
    "(it must be the last axis, the keys)?",
    zh="你的权重在查询轴上和为 1：softmax 的维度选错了（应是最后一个轴，即键）？",
)
def softmax_over_queries(scores, mask=None):
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-2)
    return torch.nan_to_num(weights, nan=0.0)


@misconception(
    "masked_softmax",
    en="your mask is inverted: `True` means *may attend*, so fill `~mask` (not `mask`) with -inf",
    zh="你的掩码用反了：`True` 表示*可以关注*，应当把 `~mask`（而不是 `mask`）填为 -inf",
)
def mask_polarity_inverted(scores, mask=None):
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    row_max = scores.amax(dim=-1, keepdim=True)
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
    e = torch.exp(scores - row_max)
    total = e.sum(dim=-1, keepdim=True)
    return e / torch.where(total > 0, total, torch.ones_like(total))


@misconception(
    "masked_softmax",
    en="large scores overflow: exp(1000) is inf; subtract each row's maximum before exp",
    zh="分数很大时会溢出：exp(1000) 是 inf；求 exp 之前先减去每行的最大值",
)
def no_max_subtraction(scores, mask=None):
    e = torch.exp(scores)
    if mask is not None:
        e = e.masked_fill(~mask, 0.0)
    total = e.sum(dim=-1, keepdim=True)
    return e / torch.where(total > 0, total, torch.ones_like(total))


@misconception(
    "masked_softmax",
    en="a fully masked row gives NaN: softmax of a row of -inf is 0/0; return zeros for such rows",
    zh="全被掩码的一行得到 NaN：全是 -inf 的一行做 softmax 就是 0/0；这种行应返回全 0",
)
def nan_on_fully_masked_row(scores, mask=None):
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1)


@misconception(
    "masked_softmax",
    en="you fill masked scores with a large negative number (-1e9): a fully masked row "
    "then gets uniform weights instead of zeros",
    zh="你用一个很大的负数（-1e9）填充被掩码的分数：全被掩码的一行会得到均匀权重，而不是全 0",
)
def fill_minus_1e9(scores, mask=None):
    if mask is not None:
        scores = scores.masked_fill(~mask, -1e9)
    return torch.softmax(scores, dim=-1)


@misconception(
    "masked_softmax",
    en="multiplying the scores by the mask sets masked scores to 0, not to -inf: they "
    "still get weight exp(0) in the softmax",
    zh="把分数乘以掩码只会让被掩码的分数变成 0，而不是 -inf：它们在 softmax 中仍有 exp(0) 的权重",
)
def multiply_scores_by_mask(scores, mask=None):
    if mask is not None:
        scores = scores * mask
    return torch.softmax(scores, dim=-1)


@misconception(
    "masked_softmax",
    en="you zeroed the masked weights after the softmax without renormalising: each "
    "row must still sum to 1 over the allowed keys",
    zh="你在 softmax 之后把被掩码的权重置 0，却没有重新归一化：每行在允许的键上仍须和为 1",
)
def mask_after_softmax(scores, mask=None):
    weights = torch.softmax(scores, dim=-1)
    return weights if mask is None else weights * mask


# ---------------------------------------------------- scaled_dot_product_attention
@misconception(
    "scaled_dot_product_attention",
    en="you did not scale the scores: use your attention_scores (1/√d_k), not a bare q @ kᵀ",
    zh="你没有缩放分数：请用你的 attention_scores（乘 1/√d_k），而不是直接 q @ kᵀ",
)
def sdpa_unscaled(q, k, v, mask=None):
    return masked_softmax(q @ k.transpose(-2, -1), mask) @ v


@misconception(
    "scaled_dot_product_attention",
    en="you scaled the scores by 1/d_k: the paper divides by √d_k",
    zh="你把分数乘了 1/d_k：论文中是除以 √d_k",
)
def sdpa_scale_by_d_k(q, k, v, mask=None):
    return masked_softmax(attention_scores(q, k, scale=1.0 / q.shape[-1]), mask) @ v


@misconception(
    "scaled_dot_product_attention",
    en="you ignored the mask: pass `mask` to masked_softmax",
    zh="你忽略了掩码：要把 `mask` 传给 masked_softmax",
)
def sdpa_ignores_mask(q, k, v, mask=None):
    return masked_softmax(attention_scores(q, k)) @ v


@misconception(
    "scaled_dot_product_attention",
    en="you swapped queries and keys (attention_scores(k, q)): the weights must be "
    "(..., n_q, n_k), one row per query",
    zh="你把查询和键对调了（attention_scores(k, q)）：权重形状应为 (..., n_q, n_k)，每个查询一行",
)
def sdpa_swaps_q_and_k(q, k, v, mask=None):
    return masked_softmax(attention_scores(k, q), mask).transpose(-2, -1) @ v


# ---------------------------------------------------------------------- causal_mask
@misconception(
    "causal_mask",
    en="your mask is the upper triangle: query i may attend to keys j ≤ i (the past), not j ≥ i",
    zh="你的掩码是上三角：查询 i 只能关注 j ≤ i 的键（过去），而不是 j ≥ i",
)
def causal_upper_triangle(n_q, n_k=None):
    if n_k is None:
        n_k = n_q
    q_pos = torch.arange(n_q).unsqueeze(-1) + (n_k - n_q)
    return torch.arange(n_k).unsqueeze(0) >= q_pos


@misconception(
    "causal_mask",
    en="your mask hides the diagonal: a query may attend to its own position (j ≤ i, not j < i)",
    zh="你的掩码挡住了对角线：查询可以关注自己的位置（j ≤ i，而不是 j < i）",
)
def causal_strict(n_q, n_k=None):
    if n_k is None:
        n_k = n_q
    q_pos = torch.arange(n_q).unsqueeze(-1) + (n_k - n_q)
    return torch.arange(n_k).unsqueeze(0) < q_pos


@misconception(
    "causal_mask",
    en="with more keys than queries (a cache) the queries are the *last* n_q positions: "
    "query i sits at i + n_k − n_q; `tril` aligns them with the first ones",
    zh="键多于查询时（使用缓存），查询是*最后* n_q 个位置：查询 i 位于 i + n_k − n_q；`tril` 却把它们对齐到最前面",
)
def causal_tril_without_offset(n_q, n_k=None):
    if n_k is None:
        n_k = n_q
    return torch.ones(n_q, n_k, dtype=torch.bool).tril()


@misconception(
    "causal_mask",
    en="your mask is not bool (a 0/1 float or int tensor): `~mask` and masked_fill need "
    "a bool tensor",
    zh="你的掩码不是 bool 类型（0/1 的浮点或整数张量）：`~mask` 和 masked_fill 需要 bool 张量",
)
def causal_float_mask(n_q, n_k=None):
    if n_k is None:
        n_k = n_q
    return torch.ones(n_q, n_k).tril(diagonal=n_k - n_q)


# --------------------------------------------------------------------- padding_mask
@misconception(
    "padding_mask",
    en="your mask is inverted: it must be True on the real tokens (the first lengths[b] "
    "positions) and False on the padding",
    zh="你的掩码反了：它应在真实词元（前 lengths[b] 个位置）上为 True，在填充位置上为 False",
)
def padding_inverted(lengths, max_len=None):
    if max_len is None:
        max_len = int(lengths.max()) if lengths.numel() else 0
    return torch.arange(max_len).unsqueeze(0) >= lengths.unsqueeze(-1)


@misconception(
    "padding_mask",
    en="off by one: positions 0 … lengths[b] − 1 are real, so compare with `<`, not `<=`",
    zh="差一错误：真实位置是 0 … lengths[b] − 1，应该用 `<` 比较，而不是 `<=`",
)
def padding_off_by_one(lengths, max_len=None):
    if max_len is None:
        max_len = int(lengths.max()) if lengths.numel() else 0
    return torch.arange(max_len).unsqueeze(0) <= lengths.unsqueeze(-1)


@misconception(
    "padding_mask",
    en="you ignored `max_len`: the mask has max_len columns when it is given",
    zh="你忽略了 `max_len`：给出 max_len 时，掩码应有 max_len 列",
)
def padding_ignores_max_len(lengths, max_len=None):
    return torch.arange(int(lengths.max())).unsqueeze(0) < lengths.unsqueeze(-1)


@misconception(
    "padding_mask",
    en="your mask is (max_len, B), transposed: put the batch axis first, "
    "`arange(max_len)[None, :] < lengths[:, None]`",
    zh="你的掩码是 (max_len, B)，转置了：批维度应在前，`arange(max_len)[None, :] < lengths[:, None]`",
)
def padding_transposed(lengths, max_len=None):
    if max_len is None:
        max_len = int(lengths.max()) if lengths.numel() else 0
    return torch.arange(max_len).unsqueeze(-1) < lengths.unsqueeze(0)


@misconception(
    "padding_mask",
    en="your mask is an integer tensor: return the bool comparison itself, not `.int()`/"
    "`.long()` of it",
    zh="你的掩码是整数张量：请直接返回比较得到的 bool 张量，不要再 `.int()`/`.long()`",
)
def padding_int_mask(lengths, max_len=None):
    if max_len is None:
        max_len = int(lengths.max()) if lengths.numel() else 0
    return (torch.arange(max_len).unsqueeze(0) < lengths.unsqueeze(-1)).long()


# ------------------------------------------------------------------- additive_scores
@misconception(
    "additive_scores",
    en="you only scored the pairs (i, i): add a (..., n_q, 1, h) tensor to a "
    "(..., 1, n_k, h) one to get every (query, key) pair",
    zh="你只算了 (i, i) 这些配对：把 (..., n_q, 1, h) 的张量与 (..., 1, n_k, h) 的张量相加，才能得到所有 (查询, 键) 对",
)
def additive_diagonal_only(q, k, w_q, w_k, w):
    return torch.tanh(q @ w_q.T + k @ w_k.T) @ w


@misconception(
    "additive_scores",
    en="W_q is (h, d_q): project with `q @ w_q.T`, not `q @ w_q`",
    zh="W_q 的形状是 (h, d_q)：投影要写 `q @ w_q.T`，而不是 `q @ w_q`",
)
def additive_untransposed_weights(q, k, w_q, w_k, w):
    hq = (q @ w_q).unsqueeze(-2)
    hk = (k @ w_k).unsqueeze(-3)
    return torch.tanh(hq + hk) @ w


@misconception(
    "additive_scores",
    en="tanh goes around the sum: w·tanh(W_q q + W_k k), not w·(tanh(W_q q) + tanh(W_k k))",
    zh="tanh 作用在和上：w·tanh(W_q q + W_k k)，而不是 w·(tanh(W_q q) + tanh(W_k k))",
)
def additive_tanh_each_term(q, k, w_q, w_k, w):
    hq = torch.tanh(q @ w_q.T).unsqueeze(-2)
    hk = torch.tanh(k @ w_k.T).unsqueeze(-3)
    return (hq + hk) @ w


@misconception(
    "additive_scores",
    en="your result is (..., n_k, n_q): the query axis must come first (unsqueeze the "
    "projected queries at -2 and the keys at -3)",
    zh="你的结果是 (..., n_k, n_q)：查询轴应在前（投影后的查询在 -2 处、键在 -3 处增加维度）",
)
def additive_transposed(q, k, w_q, w_k, w):
    hq = (q @ w_q.T).unsqueeze(-3)
    hk = (k @ w_k.T).unsqueeze(-2)
    return torch.tanh(hq + hk) @ w


@misconception(
    "additive_scores",
    en="you summed over the hidden axis instead of taking the dot product with w",
    zh="你对隐藏维度直接求和，而不是与 w 做点积",
)
def additive_sum_not_w(q, k, w_q, w_k, w):
    hq = (q @ w_q.T).unsqueeze(-2)
    hk = (k @ w_k.T).unsqueeze(-3)
    return torch.tanh(hq + hk).sum(-1)

"""Misconceptions for chapter 19's exercises (new forms of attention): each is a wrong
implementation that the grader must fail and name."""

from __future__ import annotations

import math

import torch

from attnkit.grading.misconceptions import misconception


# ------------------------------------------------------------------------ softcap_logits
@misconception(
    "softcap_logits",
    en="you clamped the logits: a hard clip has no gradient beyond the cap; soft-capping uses "
    "cap * tanh(scores / cap), smooth everywhere.",
    zh="你把 logits 硬截断了：截断在上限之外没有梯度；软上限是 cap * tanh(scores / cap)，处处光滑。",
)
def hard_clamp(scores, cap):
    return scores.clamp(-cap, cap)


@misconception(
    "softcap_logits",
    en="you forgot to divide by cap inside the tanh: cap * tanh(scores) squashes even small "
    "logits; it must be cap * tanh(scores / cap).",
    zh="你忘了在 tanh 里除以 cap：cap * tanh(scores) 连小的 logits 也压扁了；应是 cap * tanh(scores / cap)。",
)
def no_inner_division(scores, cap):
    return cap * torch.tanh(scores)


@misconception(
    "softcap_logits",
    en="you forgot to multiply by cap outside the tanh: tanh(scores / cap) lies in (-1, 1), "
    "not (-cap, cap).",
    zh="你忘了在 tanh 外面乘以 cap：tanh(scores / cap) 落在 (-1, 1)，而不是 (-cap, cap)。",
)
def no_outer_factor(scores, cap):
    return torch.tanh(scores / cap)


# ----------------------------------------------------------------------- delta_rule_step
@misconception(
    "delta_rule_step",
    en="you wrote plain linear attention, S + beta v k^T: the delta rule first subtracts what "
    "the state already predicts for k, S - beta (S k - v) k^T.",
    zh="你写成了普通线性注意力 S + beta v k^T：delta 规则要先减去状态对 k 的已有预测，即 S - beta (S k - v) k^T。",
)
def additive_update(S, k, v, beta):
    return S + beta * torch.outer(v, k)


@misconception(
    "delta_rule_step",
    en="your step has the wrong sign: a gradient step on 1/2 ||S k - v||^2 subtracts "
    "beta (S k - v) k^T.",
    zh="你的更新方向反了：对 1/2 ||S k - v||^2 做梯度下降要减去 beta (S k - v) k^T。",
)
def wrong_sign(S, k, v, beta):
    return S + beta * torch.outer(S @ k - v, k)


@misconception(
    "delta_rule_step",
    en="you erased the old value fully but wrote the new one with beta: S (I - k k^T) + "
    "beta v k^T. Both parts carry beta: S - beta (S k - v) k^T.",
    zh="你把旧值完全擦除、却只按 beta 写入新值：S (I - k k^T) + beta v k^T。两部分都要乘 beta：S - beta (S k - v) k^T。",
)
def erase_without_beta(S, k, v, beta):
    return S - torch.outer(S @ k, k) + beta * torch.outer(v, k)


@misconception(
    "delta_rule_step",
    en="you used k^T S instead of S k: the state maps keys (d_k) to values (d_v), so the "
    "prediction is S @ k.",
    zh="你用了 k^T S 而不是 S k：状态把键（d_k 维）映射到值（d_v 维），预测是 S @ k。",
)
def transposed_read(S, k, v, beta):
    if S.shape[0] != S.shape[1]:
        raise RuntimeError("shape mismatch: k^T S needs a square state")
    return S - beta * torch.outer(S.T @ k - v, k)


# ------------------------------------------------------------- sigmoid_attention_weights
@misconception(
    "sigmoid_attention_weights",
    en="you left out the default bias: without b = -log(n_k) a row of n_k weights sums to "
    "about n_k / 2 and grows with the context.",
    zh="你漏掉了默认偏置：没有 b = -log(n_k)，一行 n_k 个权重的和约为 n_k / 2，随上下文增长。",
)
def no_default_bias(q, k, bias=None):
    b = 0.0 if bias is None else bias
    return torch.sigmoid(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]) + b)


@misconception(
    "sigmoid_attention_weights",
    en="you used the number of queries for the bias: it is -log(n_k), the number of keys "
    "each weight's row spreads over.",
    zh="你用查询的个数算偏置：应是 -log(n_k)，n_k 是每一行分布其上的键的个数。",
)
def queries_in_bias(q, k, bias=None):
    b = -math.log(q.shape[-2]) if bias is None else bias
    return torch.sigmoid(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]) + b)


@misconception(
    "sigmoid_attention_weights",
    en="you normalised the rows (a softmax): sigmoid attention computes each weight on its own, "
    "rows need not sum to 1.",
    zh="你对每一行做了归一化（即 softmax）：sigmoid 注意力的每个权重各自计算，行和不必为 1。",
)
def softmax_instead(q, k, bias=None):
    return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)


@misconception(
    "sigmoid_attention_weights",
    en="you divided the scores by d instead of sqrt(d).",
    zh="你把分数除以了 d，而不是 sqrt(d)。",
)
def divided_by_d(q, k, bias=None):
    b = -math.log(k.shape[-2]) if bias is None else bias
    return torch.sigmoid(q @ k.transpose(-2, -1) / q.shape[-1] + b)


# ---------------------------------------------------------------------- topk_causal_mask
@misconception(
    "topk_causal_mask",
    en="you took the top k before applying the causal mask: a query may only choose among "
    "keys s <= t, so mask the future first, then select.",
    zh="你先取前 k 再加因果掩码：查询只能在 s <= t 的键中选择，应先屏蔽未来再选。",
)
def topk_then_mask(scores, top_k):
    T = scores.shape[-1]
    order = torch.sort(scores, dim=-1, descending=True, stable=True).indices[:, :top_k]
    chosen = torch.zeros(T, T, dtype=torch.bool).scatter(-1, order, True)
    return chosen & torch.ones(T, T, dtype=torch.bool).tril()


@misconception(
    "topk_causal_mask",
    en="you excluded the query's own position: query t may read keys s <= t, itself included.",
    zh="你排除了查询自己的位置：查询 t 可以读取 s <= t 的键，包括它自己。",
)
def strictly_past(scores, top_k):
    T = scores.shape[-1]
    visible = torch.ones(T, T, dtype=torch.bool).tril(-1)
    visible[0, 0] = True  # the first query must see something
    masked = scores.masked_fill(~visible, float("-inf"))
    order = torch.sort(masked, dim=-1, descending=True, stable=True).indices[:, :top_k]
    return torch.zeros(T, T, dtype=torch.bool).scatter(-1, order, True) & visible


@misconception(
    "topk_causal_mask",
    en="you selected the lowest scores: the indexer keeps the keys with the HIGHEST scores.",
    zh="你选了分数最低的键：索引器保留分数最高的键。",
)
def lowest_scores(scores, top_k):
    T = scores.shape[-1]
    visible = torch.ones(T, T, dtype=torch.bool).tril()
    masked = scores.masked_fill(~visible, float("inf"))
    order = torch.sort(masked, dim=-1, stable=True).indices[:, :top_k]
    return torch.zeros(T, T, dtype=torch.bool).scatter(-1, order, True) & visible


@misconception(
    "topk_causal_mask",
    en="your ties go to the later key (torch.topk does not promise an order on ties): sort "
    "stably, or break ties by position, so the earlier key wins.",
    zh="相等分数时你选了更晚的键（torch.topk 对并列不保证顺序）：用稳定排序或按位置打破并列，让更早的键胜出。",
)
def ties_to_later(scores, top_k):
    T = scores.shape[-1]
    visible = torch.ones(T, T, dtype=torch.bool).tril()
    masked = scores.masked_fill(~visible, float("-inf")).flip(-1)
    order = torch.sort(masked, dim=-1, descending=True, stable=True).indices[:, :top_k]
    return (T - 1 - order).new_zeros(T, T, dtype=torch.bool).scatter(
        -1, T - 1 - order, True
    ) & visible

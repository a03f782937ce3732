"""Misconceptions of chapter 6's exercises (solutions/06_io_aware_attention.py).

Each function is a complete wrong answer a learner really writes; its name is the id.
"""

from __future__ import annotations

import math

import torch

from attnkit.grading.misconceptions import misconception


# ---------------------------------------------------------- online_softmax_attention
def _tiles(q, k, v, block):
    scale = 1.0 / math.sqrt(q.shape[-1])
    for j in range(0, k.shape[-2], block):
        yield q @ k[..., j : j + block, :].transpose(-2, -1) * scale, v[..., j : j + block, :]


def _start(q, v):
    m = torch.full((*q.shape[:-1], 1), -math.inf, dtype=q.dtype)
    return m, torch.zeros_like(m), torch.zeros(*q.shape[:-1], v.shape[-1], dtype=q.dtype)


@misconception(
    "online_softmax_attention",
    en="you formed the whole (n_q, n_k) score matrix: the point is to read k and v `block` "
    "rows at a time and keep only one (n_q, block) tile",
    zh="你构造了整个 (n_q, n_k) 分数矩阵：本题的要点是每次只读 `block` 行 k 和 v，只保留一个 (n_q, block) 的分块",
)
def online_forms_full_scores(q, k, v, block):
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    return torch.softmax(s, dim=-1) @ v, torch.logsumexp(s, dim=-1)


@misconception(
    "online_softmax_attention",
    en="when the running maximum grows, the old sums were computed against the old "
    "maximum: multiply ℓ and a by e^(m − m′) before adding the new block",
    zh="当运行最大值变大时，旧的和是相对旧最大值计算的：加入新块之前要先把 ℓ 和 a 乘以 e^(m − m′)",
)
def online_without_rescaling(q, k, v, block):
    m, ell, a = _start(q, v)
    for s, v_block in _tiles(q, k, v, block):
        m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
        p = torch.exp(s - m_new)
        ell = ell + p.sum(dim=-1, keepdim=True)
        a = a + p @ v_block
        m = m_new
    return a / ell, (m + torch.log(ell)).squeeze(-1)


@misconception(
    "online_softmax_attention",
    en="exp of raw scores overflows once they reach the hundreds: keep a running maximum m "
    "and exponentiate s − m",
    zh="分数达到数百时，直接对原始分数求 exp 会溢出：要维护运行最大值 m，对 s − m 求 exp",
)
def online_without_running_max(q, k, v, block):
    _, ell, a = _start(q, v)
    for s, v_block in _tiles(q, k, v, block):
        p = torch.exp(s)
        ell = ell + p.sum(dim=-1, keepdim=True)
        a = a + p @ v_block
    return a / ell, torch.log(ell).squeeze(-1)


@misconception(
    "online_softmax_attention",
    en="ℓ is a sum of e^(s − m), so the log-sum-exp is m + log ℓ: you left out the maximum",
    zh="ℓ 是 e^(s − m) 的和，所以 log-sum-exp 是 m + log ℓ：你漏掉了最大值 m",
)
def online_lse_without_max(q, k, v, block):
    m, ell, a = _start(q, v)
    for s, v_block in _tiles(q, k, v, block):
        m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
        alpha = torch.exp(m - m_new)
        p = torch.exp(s - m_new)
        ell = alpha * ell + p.sum(dim=-1, keepdim=True)
        a = alpha * a + p @ v_block
        m = m_new
    return a / ell, torch.log(ell).squeeze(-1)


@misconception(
    "online_softmax_attention",
    en="your loop drops the last, shorter block: step through range(0, n_k, block) and "
    "slice k[..., j : j + block, :] (a slice past the end is just shorter)",
    zh="你的循环丢掉了最后那个较短的块：用 range(0, n_k, block) 遍历并切片 k[..., j : j + block, :]（越过末尾的切片只是更短）",
)
def online_drops_last_block(q, k, v, block):
    n_full = max(k.shape[-2] // block, 1) * block
    m, ell, a = _start(q, v)
    for s, v_block in _tiles(q, k[..., :n_full, :], v[..., :n_full, :], block):
        m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
        alpha = torch.exp(m - m_new)
        p = torch.exp(s - m_new)
        ell = alpha * ell + p.sum(dim=-1, keepdim=True)
        a = alpha * a + p @ v_block
        m = m_new
    return a / ell, (m + torch.log(ell)).squeeze(-1)


# --------------------------------------------------------------- attention_backward
def _recompute(q, k, lse):
    scale = 1.0 / math.sqrt(q.shape[-1])
    s = q @ k.transpose(-2, -1) * scale
    return s, torch.exp(s - lse.unsqueeze(-1)), scale


@misconception(
    "attention_backward",
    en="you recomputed P with softmax, ignoring the lse you were given: P = exp(S − lse) "
    "(the point of saving lse is that no second softmax is needed)",
    zh="你用 softmax 重新计算了 P，忽略了传入的 lse：P = exp(S − lse)（保存 lse 的意义正在于不必再做一次 softmax）",
)
def backward_softmax_not_lse(q, k, v, out, lse, grad_out):
    s, _, scale = _recompute(q, k, lse)
    p = torch.softmax(s, dim=-1)
    grad_p = grad_out @ v.transpose(-2, -1)
    grad_s = p * (grad_p - (grad_out * out).sum(dim=-1, keepdim=True))
    return grad_s @ k * scale, grad_s.transpose(-2, -1) @ q * scale, p.transpose(-2, -1) @ grad_out


@misconception(
    "attention_backward",
    en="the correction D is rowsum(P ∘ dP) = rowsum(dO ∘ O), not the plain row sum of dP",
    zh="修正项 D 是 rowsum(P ∘ dP) = rowsum(dO ∘ O)，而不是 dP 的简单行和",
)
def backward_d_is_rowsum_dp(q, k, v, out, lse, grad_out):
    _, p, scale = _recompute(q, k, lse)
    grad_p = grad_out @ v.transpose(-2, -1)
    grad_s = p * (grad_p - grad_p.sum(dim=-1, keepdim=True))
    return grad_s @ k * scale, grad_s.transpose(-2, -1) @ q * scale, p.transpose(-2, -1) @ grad_out


@misconception(
    "attention_backward",
    en="you left out the softmax's correction: dS = P ∘ (dP − D), not P ∘ dP",
    zh="你漏掉了 softmax 的修正项：dS = P ∘ (dP − D)，而不是 P ∘ dP",
)
def backward_without_correction(q, k, v, out, lse, grad_out):
    _, p, scale = _recompute(q, k, lse)
    grad_s = p * (grad_out @ v.transpose(-2, -1))
    return grad_s @ k * scale, grad_s.transpose(-2, -1) @ q * scale, p.transpose(-2, -1) @ grad_out


@misconception(
    "attention_backward",
    en="S = q kᵀ/√d, so dQ and dK carry the factor 1/√d too",
    zh="S = q kᵀ/√d，所以 dQ 和 dK 也要带上 1/√d 这个因子",
)
def backward_without_scale(q, k, v, out, lse, grad_out):
    _, p, _ = _recompute(q, k, lse)
    grad_p = grad_out @ v.transpose(-2, -1)
    grad_s = p * (grad_p - (grad_out * out).sum(dim=-1, keepdim=True))
    return grad_s @ k, grad_s.transpose(-2, -1) @ q, p.transpose(-2, -1) @ grad_out


@misconception(
    "attention_backward",
    en="dV = Pᵀ dO: each key collects the gradient of the queries that attended to it, so "
    "P must be transposed",
    zh="dV = Pᵀ dO：每个键收集关注过它的查询的梯度，所以 P 要转置",
)
def backward_grad_v_untransposed(q, k, v, out, lse, grad_out):
    _, p, scale = _recompute(q, k, lse)
    grad_p = grad_out @ v.transpose(-2, -1)
    grad_s = p * (grad_p - (grad_out * out).sum(dim=-1, keepdim=True))
    return grad_s @ k * scale, grad_s.transpose(-2, -1) @ q * scale, p @ grad_out


@misconception(
    "attention_backward",
    en="exp(S) / exp(lse) overflows to inf/inf for large scores: exponentiate the "
    "difference, exp(S − lse), which is at most 1",
    zh="分数很大时 exp(S) / exp(lse) 会变成 inf/inf：应对差求指数，exp(S − lse) 最多为 1",
)
def backward_ratio_of_exps(q, k, v, out, lse, grad_out):
    s, _, scale = _recompute(q, k, lse)
    p = torch.exp(s) / torch.exp(lse).unsqueeze(-1)
    grad_p = grad_out @ v.transpose(-2, -1)
    grad_s = p * (grad_p - (grad_out * out).sum(dim=-1, keepdim=True))
    return grad_s @ k * scale, grad_s.transpose(-2, -1) @ q * scale, p.transpose(-2, -1) @ grad_out


# ---------------------------------------------------------------------- merge_blocks
@misconception(
    "merge_blocks",
    en="log(exp(a) + exp(b)) overflows for log-sum-exps around 1000 (exp(1000) = inf): "
    "use torch.logaddexp",
    zh="对 1000 左右的 log-sum-exp，log(exp(a) + exp(b)) 会溢出（exp(1000) = inf）：请用 torch.logaddexp",
)
def merge_naive_exp(out_a, lse_a, out_b, lse_b):
    lse = torch.log(torch.exp(lse_a) + torch.exp(lse_b))
    w_a = torch.exp(lse_a - lse).unsqueeze(-1)
    w_b = torch.exp(lse_b - lse).unsqueeze(-1)
    return w_a * out_a + w_b * out_b, lse


@misconception(
    "merge_blocks",
    en="averaging the two outputs weights both blocks equally; each must be weighted by "
    "its share of the softmax mass, exp(lse_side − lse)",
    zh="对两个输出取平均等于给两个块相同的权重；每个块应按它在 softmax 中所占的份额 exp(lse_side − lse) 加权",
)
def merge_average(out_a, lse_a, out_b, lse_b):
    return (out_a + out_b) / 2, torch.logaddexp(lse_a, lse_b)


@misconception(
    "merge_blocks",
    en="the merged lse is log(e^lse_A + e^lse_B), not max(lse_A, lse_B): the maximum is "
    "only the running value used for stability",
    zh="合并后的 lse 是 log(e^lse_A + e^lse_B)，不是 max(lse_A, lse_B)：最大值只是为数值稳定而用的中间量",
)
def merge_lse_is_max(out_a, lse_a, out_b, lse_b):
    lse = torch.maximum(lse_a, lse_b)
    w_a = torch.exp(lse_a - lse).unsqueeze(-1)
    w_b = torch.exp(lse_b - lse).unsqueeze(-1)
    return w_a * out_a + w_b * out_b, lse


@misconception(
    "merge_blocks",
    en="adding log-sum-exps multiplies the sums: the lse of A ∪ B is logaddexp(lse_A, "
    "lse_B), not lse_A + lse_B",
    zh="把 log-sum-exp 相加相当于把和相乘：A ∪ B 的 lse 是 logaddexp(lse_A, lse_B)，而不是 lse_A + lse_B",
)
def merge_adds_lse(out_a, lse_a, out_b, lse_b):
    lse = lse_a + lse_b
    w = torch.softmax(torch.stack([lse_a, lse_b]), dim=0).unsqueeze(-1)
    return w[0] * out_a + w[1] * out_b, lse


@misconception(
    "merge_blocks",
    en="the weights are per query (..., n_q) while the outputs are (..., n_q, d_v): "
    "unsqueeze(-1) the weights before multiplying",
    zh="权重是每个查询一个 (..., n_q)，输出是 (..., n_q, d_v)：相乘之前要对权重 unsqueeze(-1)",
)
def merge_without_unsqueeze(out_a, lse_a, out_b, lse_b):
    lse = torch.logaddexp(lse_a, lse_b)
    return torch.exp(lse_a - lse) * out_a + torch.exp(lse_b - lse) * out_b, lse

"""Misconceptions of chapter 13's exercises (how far attention explains).

Each function is a complete wrong answer that learners really write; the grader must fail
it, and the report names it from the message below (see ``attnkit.grading.misconceptions``).
"""

from __future__ import annotations

import math

import torch

from attnkit.grading.misconceptions import misconception


# ------------------------------------------------------------------------- rollout
def _rollout(attentions, fuse, residual=True, last_on_left=True):
    result = None
    for w in attentions:
        a = fuse(w)
        if residual:
            a = 0.5 * a + 0.5 * torch.eye(a.shape[-1], dtype=a.dtype)
        if result is not None:
            a = a @ result if last_on_left else result @ a
        result = a
    return result


@misconception(
    "rollout",
    en="the product is in the wrong order: R = Â(L) ... Â(2) Â(1), the last layer on the left.",
    zh="连乘的顺序反了：R = Â(L) ... Â(2) Â(1)，最后一层在最左边。",
)
def first_layer_on_the_left(attentions):
    return _rollout(attentions, lambda w: w.mean(1), last_on_left=False)


@misconception(
    "rollout",
    en="you left out the residual connection: use ½ A + ½ I for every layer.",
    zh="你漏掉了残差连接：每一层都要用 ½ A + ½ I。",
)
def no_residual_identity(attentions):
    return _rollout(attentions, lambda w: w.mean(1), residual=False)


@misconception(
    "rollout",
    en="you summed the heads instead of averaging them (1/H Σ_h), so the rows no longer sum to 1.",
    zh="你把各个头相加而不是取平均（1/H Σ_h），结果每一行的和不再是 1。",
)
def heads_summed(attentions):
    return _rollout(attentions, lambda w: w.sum(1))


@misconception(
    "rollout",
    en="you took the attention of the first head only; average over all heads.",
    zh="你只用了第一个头的注意力；应对所有头取平均。",
)
def first_head_only(attentions):
    return _rollout(attentions, lambda w: w[:, 0])


# -------------------------------------------------------------------- grad x input
@misconception(
    "grad_times_input",
    en="you returned the gradient alone (summed over d); gradient × input multiplies it "
    "by the embedding first: Σ_d e · ∂f/∂e.",
    zh="你只返回了梯度（对 d 求和）；梯度 × 输入要先乘以嵌入本身：Σ_d e · ∂f/∂e。",
)
def gradient_without_input(f, emb):
    x = emb.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(f(x).sum(), x)
    return grad.sum(-1).detach()


@misconception(
    "grad_times_input",
    en="you took the norm of gradient × input over d; the exercise sums it, keeping its "
    "sign (negative evidence stays negative).",
    zh="你对 d 维取了梯度 × 输入的范数；题目要求求和并保留符号（负向证据应保持为负）。",
)
def norm_instead_of_sum(f, emb):
    x = emb.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(f(x).sum(), x)
    return (grad * x).norm(dim=-1).detach()


@misconception(
    "grad_times_input",
    en="you set requires_grad on emb itself and returned a tensor with a graph: "
    "differentiate a detached copy and return .detach().",
    zh="你直接在 emb 上设置了 requires_grad，并返回了带计算图的张量：应对 detach 后的副本求导，"
    "并返回 .detach()。",
)
def marks_emb_requires_grad(f, emb):
    emb.requires_grad_(True)
    f(emb).sum().backward()
    return (emb.grad * emb).sum(-1)


@misconception(
    "grad_times_input",
    en="you summed over the tokens (dim 1); the attribution of token t sums over the "
    "embedding features d (dim -1), giving (B, T).",
    zh="你对 token 维（dim 1）求和了；token t 的归因应对嵌入特征 d（dim -1）求和，结果是 (B, T)。",
)
def summed_over_tokens(f, emb):
    x = emb.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(f(x).sum(), x)
    return (grad * x).sum(1).detach()


# ---------------------------------------------------------------------- leave one out
def _loo(prob_fn, ids, mask, target, erase, sign=1.0, skip_single=True):
    B, T = ids.shape
    out = torch.zeros(B, T)
    with torch.no_grad():
        base = prob_fn(ids, mask)[torch.arange(B), target]
        for b in range(B):
            n = int(mask[b].sum())
            if skip_single and n < 2:
                continue
            for t in range(n):
                new_ids, new_mask = erase(ids[b], mask[b], t, n)
                p = prob_fn(new_ids[None], new_mask[None])[0, target[b]]
                out[b, t] = sign * (base[b] - p)
    return out


def _delete(row, mask_row, t, n):
    T = row.shape[0]
    new_ids = torch.zeros(T, dtype=row.dtype)
    new_ids[: n - 1] = torch.cat([row[:t], row[t + 1 : n]])
    return new_ids, torch.arange(T) < n - 1


def _mask_out(row, mask_row, t, n):
    new_mask = mask_row.clone()
    new_mask[t] = False
    return row, new_mask


def _pad_id(row, mask_row, t, n):
    new_ids = row.clone()
    new_ids[t] = 0
    return new_ids, mask_row


@misconception(
    "leave_one_out_scores",
    en="you masked the token out in place instead of deleting it: the later tokens must "
    "move one place left (their positions change), and the row gets padding at the end.",
    zh="你只是在原位置把 token 掩盖掉，而不是删除它：后面的 token 应整体左移一位（位置随之改变），"
    "行尾多一个填充。",
)
def mask_instead_of_delete(prob_fn, ids, mask, target):
    return _loo(prob_fn, ids, mask, target, _mask_out)


@misconception(
    "leave_one_out_scores",
    en="replacing the token by the padding id 0 while the mask still says 'real' feeds the "
    "model a real token 0: delete it (and shorten the mask).",
    zh="把 token 换成填充 id 0 而掩码仍标为“真实”，等于给模型喂了一个真实的 0 号 token：应删除它（"
    "并缩短掩码）。",
)
def replaced_by_pad_id(prob_fn, ids, mask, target):
    return _loo(prob_fn, ids, mask, target, _pad_id)


@misconception(
    "leave_one_out_scores",
    en="the sign is reversed: the score is p(full) - p(without t), positive when deleting "
    "the token lowers the probability.",
    zh="符号反了：分数是 p(完整) - p(去掉 t)，删除该 token 使概率下降时为正。",
)
def sign_reversed(prob_fn, ids, mask, target):
    return _loo(prob_fn, ids, mask, target, _delete, sign=-1.0)


@misconception(
    "leave_one_out_scores",
    en="a row with a single real token cannot lose it: its scores are 0, do not run the "
    "model on an empty row.",
    zh="只有一个真实 token 的行不能再删：它的分数为 0，不要把空行送进模型。",
)
def single_token_rows_erased(prob_fn, ids, mask, target):
    return _loo(prob_fn, ids, mask, target, _delete, skip_single=False)


# ------------------------------------------------------------------------ kendall tau
def _counts(a, b):
    n = a.shape[0]
    c = d = ties_a = ties_b = ties_both = 0
    for i in range(n):
        for j in range(i + 1, n):
            sa = int(a[i] > a[j]) - int(a[i] < a[j])
            sb = int(b[i] > b[j]) - int(b[i] < b[j])
            ties_a += sa == 0
            ties_b += sb == 0
            ties_both += sa == 0 and sb == 0
            c += sa * sb > 0
            d += sa * sb < 0
    return c, d, ties_a, ties_b, n * (n - 1) // 2


@misconception(
    "kendall_tau_b",
    en="you computed τ_a = (C - D) / P; with ties τ_b divides by √((P - T_a)(P - T_b)).",
    zh="你算的是 τ_a = (C - D) / P；有并列时 τ_b 要除以 √((P - T_a)(P - T_b))。",
)
def tau_a(a, b):
    c, d, _, _, pairs = _counts(a, b)
    return (c - d) / pairs


@misconception(
    "kendall_tau_b",
    en="return a Python float (float(...) or .item()), not a 0-d tensor.",
    zh="应返回 Python 的 float（用 float(...) 或 .item()），而不是 0 维张量。",
)
def returns_tensor(a, b):
    sa = torch.sign(a[:, None] - a[None, :]).triu(1)
    sb = torch.sign(b[:, None] - b[None, :]).triu(1)
    n = a.shape[0]
    pairs = n * (n - 1) // 2
    ties_a = pairs - int((sa != 0).sum())
    ties_b = pairs - int((sb != 0).sum())
    denom = torch.tensor(float((pairs - ties_a) * (pairs - ties_b)), dtype=torch.float64).sqrt()
    return (sa * sb).sum().to(torch.float64) / denom


@misconception(
    "kendall_tau_b",
    en="a constant input has no order at all: τ_b is undefined and the exercise asks for "
    "math.nan, not 0.",
    zh="常数输入根本没有顺序：τ_b 没有定义，题目要求返回 math.nan，而不是 0。",
)
def constant_gives_zero(a, b):
    c, d, ties_a, ties_b, pairs = _counts(a, b)
    denom = math.sqrt((pairs - ties_a) * (pairs - ties_b))
    return 0.0 if denom == 0 else (c - d) / denom


@misconception(
    "kendall_tau_b",
    en="a pair tied in a or in b is neither concordant nor discordant: you counted ties "
    "as concordant.",
    zh="在 a 或 b 中并列的一对既不是一致对也不是不一致对：你把并列算成了一致对。",
)
def ties_counted_concordant(a, b):
    c, d, ties_a, ties_b, pairs = _counts(a, b)
    ties_any = pairs - c - d
    denom = math.sqrt((pairs - ties_a) * (pairs - ties_b))
    return math.nan if denom == 0 else (c + ties_any - d) / denom

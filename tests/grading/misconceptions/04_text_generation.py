"""Misconceptions of chapter 4's exercises (solutions/04_text_generation.py).

Each function is a complete wrong answer a learner really writes; its name is the id.
"""

from __future__ import annotations

import math

import torch

from attnkit.grading.misconceptions import misconception


def _nll(logits, targets):
    logp = torch.log_softmax(logits.double(), dim=-1)
    return -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B, T)


# ------------------------------------------------------------------------ perplexity
@misconception(
    "perplexity",
    en="perplexity is exp of the *mean* negative log-likelihood per token, not of the sum",
    zh="困惑度是每个词元平均负对数似然的 exp，而不是总和的 exp",
)
def ppl_exp_of_sum(logits, targets, mask):
    return math.exp(_nll(logits, targets)[mask].sum().item())


@misconception(
    "perplexity",
    en="you averaged over every position: only the positions where mask is True count",
    zh="你对所有位置求了平均：只有 mask 为 True 的位置才计入",
)
def ppl_ignores_mask(logits, targets, mask):
    return math.exp(_nll(logits, targets).mean().item())


@misconception(
    "perplexity",
    en="you zeroed the masked positions but still divided by B·T: divide by the number of "
    "positions where mask is True",
    zh="你把被掩码的位置置 0，却仍除以 B·T：应除以 mask 为 True 的位置个数",
)
def ppl_divides_by_all_positions(logits, targets, mask):
    return math.exp(((_nll(logits, targets) * mask).sum() / mask.numel()).item())


@misconception(
    "perplexity",
    en="you return a tensor; the exercise asks for a Python float (`math.exp(x.item())` "
    "or `float(...)`)",
    zh="你返回的是张量；题目要求返回 Python 浮点数（`math.exp(x.item())` 或 `float(...)`）",
)
def ppl_returns_tensor(logits, targets, mask):
    return torch.exp(_nll(logits, targets)[mask].mean())


@misconception(
    "perplexity",
    en="logits are not log-probabilities: apply log_softmax over the vocabulary before "
    "picking the target's entry",
    zh="logits 不是对数概率：先在词表维度上做 log_softmax，再取目标词元对应的项",
)
def ppl_logits_as_log_probs(logits, targets, mask):
    nll = -logits.double().gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return math.exp(nll[mask].mean().item())


@misconception(
    "perplexity",
    en="`targets` are already the next tokens (aligned with `logits`): shifting them by "
    "one more position compares each prediction with the token after next",
    zh="`targets` 已经是下一个词元（与 `logits` 对齐）：再错开一位，就是拿预测去比后一个词元",
)
def ppl_shifts_targets_again(logits, targets, mask):
    nll = _nll(logits[:, :-1], targets[:, 1:])
    return math.exp(nll[mask[:, 1:]].mean().item())


# ------------------------------------------------------------------ bigram_log_probs
def _counts(ids, vocab_size):
    pair = ids[:-1] * vocab_size + ids[1:]
    counts = torch.bincount(pair, minlength=vocab_size * vocab_size).double()
    return counts.reshape(vocab_size, vocab_size)


@misconception(
    "bigram_log_probs",
    en="you normalised by the whole table (a joint probability): each row prev = i must "
    "sum to 1, divide by the row sums",
    zh="你用整张表的总和归一化（得到的是联合概率）：每一行 prev = i 的和必须为 1，请除以行和",
)
def bigram_joint_normalisation(ids, vocab_size, alpha):
    counts = _counts(ids, vocab_size) + alpha
    return torch.log(counts / counts.sum())


@misconception(
    "bigram_log_probs",
    en="you normalised the columns (dim=0), which gives p(prev | next); each row "
    "(dim=1) must be a distribution over the next token",
    zh="你按列（dim=0）归一化，得到的是 p(prev | next)；每一行（dim=1）应是下一个词元的分布",
)
def bigram_normalises_columns(ids, vocab_size, alpha):
    counts = _counts(ids, vocab_size) + alpha
    return torch.log(counts / counts.sum(dim=0, keepdim=True))


@misconception(
    "bigram_log_probs",
    en="you left out the smoothing: add alpha to every count, or unseen pairs get log 0 "
    "= −inf (and rows never seen are 0/0)",
    zh="你漏掉了平滑：每个计数都要加 alpha，否则未出现的配对是 log 0 = −inf（从未出现的行则是 0/0）",
)
def bigram_no_smoothing(ids, vocab_size, alpha):
    counts = _counts(ids, vocab_size)
    return torch.log(counts / counts.sum(dim=1, keepdim=True))


@misconception(
    "bigram_log_probs",
    en="your table is transposed: row i is the previous token, column j the next one "
    "(pair index prev·V + next)",
    zh="你的表转置了：第 i 行是前一个词元，第 j 列是下一个词元（配对索引为 prev·V + next）",
)
def bigram_transposed(ids, vocab_size, alpha):
    counts = _counts(ids, vocab_size).T + alpha
    return torch.log(counts / counts.sum(dim=1, keepdim=True))


@misconception(
    "bigram_log_probs",
    en="you returned probabilities; the exercise asks for their logarithm",
    zh="你返回的是概率；题目要求返回它们的对数",
)
def bigram_probabilities_not_logs(ids, vocab_size, alpha):
    counts = _counts(ids, vocab_size) + alpha
    return counts / counts.sum(dim=1, keepdim=True)


# ----------------------------------------------------------------------- top_k_filter
@misconception(
    "top_k_filter",
    en="you kept the k *smallest* logits: topk's default (largest=True) gives the k largest",
    zh="你保留的是最*小*的 k 个 logits：topk 默认（largest=True）给出最大的 k 个",
)
def top_k_keeps_smallest(logits, k):
    kth = torch.topk(logits, k, dim=-1, largest=False).values[..., -1:]
    return logits.masked_fill(logits > kth, float("-inf"))


@misconception(
    "top_k_filter",
    en="off by one: the k-th largest value is at index k − 1 of the sorted row; you kept "
    "k + 1 tokens",
    zh="差一错误：第 k 大的值在降序排序后的索引 k − 1 处；你保留了 k + 1 个词元",
)
def top_k_off_by_one(logits, k):
    kth = torch.sort(logits, dim=-1, descending=True).values[..., k : k + 1]
    return logits.masked_fill(logits < kth, float("-inf"))


@misconception(
    "top_k_filter",
    en="removed logits must be −inf, not 0: a logit of 0 still gets probability after the softmax",
    zh="被移除的 logits 必须是 −inf 而不是 0：logit 为 0 在 softmax 之后仍有概率",
)
def top_k_fills_zero(logits, k):
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, 0.0)


@misconception(
    "top_k_filter",
    en="you wrote −inf into the caller's `logits` (in place): filter a copy "
    "(`masked_fill`, not `masked_fill_` or `logits[...] = `)",
    zh="你把 −inf 原地写进了调用者的 `logits`：请在副本上过滤（用 `masked_fill`，而不是 `masked_fill_` 或 `logits[...] =`）",
)
def top_k_in_place(logits, k):
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    logits[logits < kth] = float("-inf")
    return logits


@misconception(
    "top_k_filter",
    en="you took the top k over the wrong axis: filter each row over the vocabulary (dim=-1)",
    zh="你在错误的轴上取了 top k：应在每一行的词表维度（dim=-1）上过滤",
)
def top_k_wrong_axis(logits, k):
    k = min(k, logits.shape[0])
    kth = torch.topk(logits, k, dim=0).values[-1:]
    return logits.masked_fill(logits < kth, float("-inf"))


# ----------------------------------------------------------------------- top_p_filter
def _remove_in_original_order(remove_sorted, order):
    return torch.zeros_like(remove_sorted).scatter(-1, order, remove_sorted)


@misconception(
    "top_p_filter",
    en="you removed a token when the cumulative probability *including* it reaches p; "
    "use the mass *before* it (cumsum − p_i), so the token that crosses p stays "
    "and the most likely one is never removed",
    zh="你在*包含*该词元的累计概率达到 p 时就把它移除了；应使用它*之前*的累计概率（cumsum − p_i），这样跨过 p 的那个词元会保留，最可能的词元也永远不会被移除",
)
def top_p_inclusive_cumsum(logits, p):
    probs, order = torch.sort(torch.softmax(logits, dim=-1), dim=-1, descending=True)
    remove_sorted = torch.cumsum(probs, dim=-1) >= p
    return logits.masked_fill(_remove_in_original_order(remove_sorted, order), float("-inf"))


@misconception(
    "top_p_filter",
    en="you applied the mask computed in sorted order to the unsorted logits: scatter it "
    "back to the original positions",
    zh="你把按排序后顺序算出的掩码直接用到了未排序的 logits 上：要把它 scatter 回原来的位置",
)
def top_p_forgets_to_unsort(logits, p):
    probs, _ = torch.sort(torch.softmax(logits, dim=-1), dim=-1, descending=True)
    remove_sorted = torch.cumsum(probs, dim=-1) - probs >= p
    return logits.masked_fill(remove_sorted, float("-inf"))


@misconception(
    "top_p_filter",
    en="you took the cumulative sum of the logits; p is a probability mass, so apply softmax first",
    zh="你对 logits 求了累计和；p 是概率质量，要先做 softmax",
)
def top_p_cumsum_of_logits(logits, p):
    values, order = torch.sort(logits, dim=-1, descending=True)
    remove_sorted = torch.cumsum(values, dim=-1) - values >= p
    return logits.masked_fill(_remove_in_original_order(remove_sorted, order), float("-inf"))


@misconception(
    "top_p_filter",
    en="you sorted in increasing order: the nucleus is built from the *most* likely tokens "
    "(descending=True)",
    zh="你按升序排序了：核（nucleus）是由*最*可能的词元组成的（descending=True）",
)
def top_p_ascending(logits, p):
    probs, order = torch.sort(torch.softmax(logits, dim=-1), dim=-1)
    remove_sorted = torch.cumsum(probs, dim=-1) - probs >= p
    return logits.masked_fill(_remove_in_original_order(remove_sorted, order), float("-inf"))


# ----------------------------------------------------------------------------- sample
@misconception(
    "sample",
    en="the temperature divides the logits (softmax(logits / T)); you multiplied",
    zh="温度是用来除 logits 的（softmax(logits / T)）；你却乘了",
)
def sample_multiplies_by_temperature(logits, temperature, generator):
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits * temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@misconception(
    "sample",
    en="torch.multinomial returns (B, 1): squeeze the last axis to get one token per row, (B,)",
    zh="torch.multinomial 返回 (B, 1)：要去掉最后一个轴，得到每行一个词元的 (B,)",
)
def sample_keeps_sample_axis(logits, temperature, generator):
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator)


@misconception(
    "sample",
    en="you did not pass `generator=` to torch.multinomial: the draw uses the global "
    "random state and cannot be reproduced",
    zh="你没有把 `generator=` 传给 torch.multinomial：抽样用的是全局随机状态，无法复现",
)
def sample_without_generator(logits, temperature, generator):
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    return torch.multinomial(probs, 1).squeeze(-1)


@misconception(
    "sample",
    en="temperature 0 divides by zero: handle it first and return the argmax",
    zh="温度为 0 时会除以零：要先单独处理，返回 argmax",
)
def sample_divides_by_zero_temperature(logits, temperature, generator):
    probs = torch.softmax(logits / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@misconception(
    "sample",
    en="softmax over the wrong axis: each row is a distribution over the vocabulary (dim=-1)",
    zh="softmax 的轴错了：每一行是词表上的分布（dim=-1）",
)
def sample_softmax_over_batch(logits, temperature, generator):
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits / temperature, dim=0)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


# -------------------------------------------------------------------------- beam_step
@misconception(
    "beam_step",
    en="parents and tokens are swapped: in the flattened (K·V) index, the beam is "
    "index // V and the token index % V",
    zh="父束和词元弄反了：在展平的 (K·V) 索引中，束是 index // V，词元是 index % V",
)
def beam_div_mod_swapped(scores, log_probs, beam_size):
    vocab = log_probs.shape[-1]
    best, flat = torch.topk((scores.unsqueeze(-1) + log_probs).flatten(), beam_size)
    return best, flat % vocab, flat // vocab


@misconception(
    "beam_step",
    en="you ranked the next-token log-probabilities alone: a candidate's score is its "
    "beam's total plus the token's log-probability",
    zh="你只按下一个词元的对数概率排序：候选的分数是所在束的总分加上该词元的对数概率",
)
def beam_ignores_beam_scores(scores, log_probs, beam_size):
    vocab = log_probs.shape[-1]
    best, flat = torch.topk(log_probs.flatten(), beam_size)
    return best, flat // vocab, flat % vocab


@misconception(
    "beam_step",
    en="you kept only the best token of each beam: the best candidates may all extend the "
    "same beam; rank all K·V candidates together",
    zh="你只保留了每个束最好的一个词元：最好的候选可能都来自同一个束；要把全部 K·V 个候选放在一起排序",
)
def beam_best_token_per_beam(scores, log_probs, beam_size):
    best_per_beam, token = (scores.unsqueeze(-1) + log_probs).max(dim=-1)
    best, parents = torch.topk(best_per_beam, beam_size)
    return best, parents, token[parents]


@misconception(
    "beam_step",
    en="the flattened index is parent·V + token: divide by the vocabulary size V, not by "
    "the number of beams K",
    zh="展平后的索引是 parent·V + token：要除以词表大小 V，而不是束的个数 K",
)
def beam_divides_by_beams(scores, log_probs, beam_size):
    k = log_probs.shape[0]
    best, flat = torch.topk((scores.unsqueeze(-1) + log_probs).flatten(), beam_size)
    return best, flat // k, flat % k

"""Misconceptions of chapter 11's exercises (attention at work).

Each function is a complete wrong answer that learners really write; the grader must fail
it, and the report names it from the message below (see ``attnkit.grading.misconceptions``).
"""

from __future__ import annotations

import re
import string
from collections import Counter

import torch

from attnkit.grading.misconceptions import misconception


def _normalize(s: str) -> str:
    s = "".join(ch for ch in s.lower() if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def _f1(pred: list[str], truth: list[str], common: int) -> float:
    if common == 0:
        return 0.0
    p, r = common / len(pred), common / len(truth)
    return 2 * p * r / (p + r)


# --------------------------------------------------------------------------- squad_f1
@misconception(
    "squad_f1",
    en="you split the raw strings: normalise first (lower-case, strip punctuation, drop "
    "a/an/the, collapse spaces), so 'The Garden!' matches 'garden'.",
    zh="你直接切分了原始字符串：应先规范化（转小写、去标点、去掉 a/an/the、合并空白），这样 'The "
    "Garden!' 才能匹配 'garden'。",
)
def no_normalization(prediction, ground_truth):
    pred, truth = prediction.split(), ground_truth.split()
    return _f1(pred, truth, sum((Counter(pred) & Counter(truth)).values()))


@misconception(
    "squad_f1",
    en="the overlap counts tokens with multiplicity (Counter & Counter), not the distinct "
    "tokens of a set intersection.",
    zh="重叠数要按重复次数计（Counter & Counter），而不是集合交集里不同 token 的个数。",
)
def set_overlap(prediction, ground_truth):
    pred, truth = _normalize(prediction).split(), _normalize(ground_truth).split()
    return _f1(pred, truth, len(set(pred) & set(truth)))


@misconception(
    "squad_f1",
    en="articles are removed as whole words only (\\b(a|an|the)\\b): 'the theatre' keeps "
    "'theatre'.",
    zh="冠词只按整词删除（\\b(a|an|the)\\b）：'the theatre' 中的 'theatre' 要保留。",
)
def articles_inside_words(prediction, ground_truth):
    def normalize(s):
        s = "".join(ch for ch in s.lower() if ch not in set(string.punctuation))
        s = re.sub(r"a|an|the", " ", s)
        return " ".join(s.split())

    pred, truth = normalize(prediction).split(), normalize(ground_truth).split()
    return _f1(pred, truth, sum((Counter(pred) & Counter(truth)).values()))


@misconception(
    "squad_f1",
    en="SQuAD v1.1 returns 0.0 when there is no common token, even when both answers are "
    "empty after normalisation.",
    zh="没有公共 token 时 SQuAD v1.1 返回 0.0，即使两个答案规范化后都为空也是如此。",
)
def both_empty_is_one(prediction, ground_truth):
    pred, truth = _normalize(prediction).split(), _normalize(ground_truth).split()
    if not pred and not truth:
        return 1.0
    return _f1(pred, truth, sum((Counter(pred) & Counter(truth)).values()))


# ------------------------------------------------------------------------- decode_span
def _table(start_logits, end_logits, legal):
    T = start_logits.shape[0]
    scores = start_logits[:, None] + end_logits[None, :]
    flat = int(scores.masked_fill(~legal, float("-inf")).reshape(-1).argmax())
    return flat // T, flat % T


def _band(T, max_answer_len):
    ones = torch.ones(T, T, dtype=torch.bool)
    return torch.triu(ones) & ~torch.triu(ones, diagonal=max_answer_len)


@misconception(
    "decode_span",
    en="the best start and the best end taken separately can give an end before the start "
    "or a span that is too long: maximise over legal pairs (i, j) together.",
    zh="分别取最佳起点和最佳终点，可能得到终点在起点之前或过长的片段：应在合法的 (i, j) "
    "对上一起求最大。",
)
def independent_argmax(start_logits, end_logits, mask, max_answer_len):
    i = int(start_logits.masked_fill(~mask, float("-inf")).argmax())
    j = int(end_logits.masked_fill(~mask, float("-inf")).argmax())
    return i, j


@misconception(
    "decode_span",
    en="your spans can be one token too long: j < i + max_answer_len, so a span has at "
    "most max_answer_len tokens.",
    zh="你的片段可能多出一个 token：应满足 j < i + max_answer_len，片段最多 max_answer_len 个 "
    "token。",
)
def span_one_too_long(start_logits, end_logits, mask, max_answer_len):
    legal = _band(start_logits.shape[0], max_answer_len + 1) & mask[:, None] & mask[None, :]
    return _table(start_logits, end_logits, legal)


@misconception(
    "decode_span",
    en="you ignored the mask: positions where mask is False (question, padding) may never "
    "start or end the answer.",
    zh="你忽略了掩码：mask 为 False 的位置（问题、填充）不能作为答案的起点或终点。",
)
def mask_ignored(start_logits, end_logits, mask, max_answer_len):
    return _table(start_logits, end_logits, _band(start_logits.shape[0], max_answer_len))


@misconception(
    "decode_span",
    en="the flat index of a (T, T) table is i * T + j: i = flat // T and j = flat % T, not "
    "the other way round.",
    zh="(T, T) 表的展平下标是 i * T + j：i = flat // T，j = flat % T，不要反过来。",
)
def row_column_swapped(start_logits, end_logits, mask, max_answer_len):
    legal = _band(start_logits.shape[0], max_answer_len) & mask[:, None] & mask[None, :]
    i, j = _table(start_logits, end_logits, legal)
    return j, i


@misconception(
    "decode_span",
    en="on ties the smallest i, then the smallest j wins: your loop with >= keeps the last "
    "maximum (one argmax of the flattened table keeps the first).",
    zh="平局时取最小的 i，再取最小的 j：你用 >= 的循环保留了最后一个最大值（对展平的表做一次 "
    "argmax 保留的是第一个）。",
)
def ties_keep_the_last(start_logits, end_logits, mask, max_answer_len):
    T = start_logits.shape[0]
    best, arg = -float("inf"), None
    for i in range(T):
        for j in range(i, min(T, i + max_answer_len)):
            score = float(start_logits[i] + end_logits[j])
            if mask[i] and mask[j] and score >= best:
                best, arg = score, (i, j)
    return arg


# ---------------------------------------------------------------------- attention_pool
@misconception(
    "attention_pool",
    en="zeroing the padding after the softmax leaves weights that no longer sum to 1: mask "
    "the scores with -inf before the softmax.",
    zh="在 softmax 之后再把填充位置清零，权重之和就不再是 1：应在 softmax 之前用 -inf 掩盖分数。",
)
def mask_after_softmax(scores, values, mask):
    weights = torch.softmax(scores, dim=-1) * mask
    return torch.einsum("bt,btd->bd", weights, values), weights


@misconception(
    "attention_pool",
    en="the mask is inverted: True marks real tokens, so fill -inf where the mask is False "
    "(masked_fill(~mask, ...)).",
    zh="掩码方向反了：True 表示真实 token，应在 mask 为 False 的位置填 -inf（masked_fill(~mask, "
    "...)）。",
)
def mask_inverted(scores, values, mask):
    weights = torch.softmax(scores.masked_fill(mask, float("-inf")), dim=-1)
    return torch.einsum("bt,btd->bd", weights, values), weights


@misconception(
    "attention_pool",
    en="a score of 0 is not 'no weight': exp(0) = 1, so padding filled with 0 still gets "
    "weight; fill -inf.",
    zh="分数为 0 并不等于“没有权重”：exp(0) = 1，填 0 的填充位置仍有权重；应填 -inf。",
)
def mask_filled_with_zero(scores, values, mask):
    weights = torch.softmax(scores.masked_fill(~mask, 0.0), dim=-1)
    return torch.einsum("bt,btd->bd", weights, values), weights


@misconception(
    "attention_pool",
    en="your softmax runs over the batch (dim=0): the weights of one sentence run over its "
    "tokens (dim=-1).",
    zh="你的 softmax 沿 batch 维（dim=0）计算：一个句子的权重应在它的 token 上归一化（dim=-1）。",
)
def softmax_over_batch(scores, values, mask):
    weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=0)
    weights = torch.nan_to_num(weights)
    return torch.einsum("bt,btd->bd", weights, values), weights


@misconception(
    "attention_pool",
    en="exp of large scores overflows (and of very negative ones underflows to 0/0): "
    "subtract each row's maximum first, as torch.softmax does.",
    zh="分数很大时 exp 会溢出（很负时会下溢成 0/0）：先减去每行的最大值，torch.softmax "
    "就是这样做的。",
)
def exp_without_max(scores, values, mask):
    e = torch.exp(scores) * mask
    weights = e / e.sum(dim=-1, keepdim=True)
    return torch.einsum("bt,btd->bd", weights, values), weights


# ---------------------------------------------------------------------------- rouge_l_f
def _lcs_f(lcs: int, a: list[str], b: list[str]) -> float:
    if lcs == 0:
        return 0.0
    p, r = lcs / len(a), lcs / len(b)
    return 2 * p * r / (p + r)


@misconception(
    "rouge_l_f",
    en="you computed the longest common substring (contiguous); ROUGE-L uses the longest "
    "common subsequence, gaps allowed.",
    zh="你求的是最长公共子串（必须连续）；ROUGE-L 用的是最长公共子序列，允许有间隔。",
)
def common_substring(prediction, reference):
    a, b = prediction.split(), reference.split()
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    best = 0
    for i, x in enumerate(a, 1):
        for j, y in enumerate(b, 1):
            table[i][j] = table[i - 1][j - 1] + 1 if x == y else 0
            best = max(best, table[i][j])
    return _lcs_f(best, a, b)


@misconception(
    "rouge_l_f",
    en="you counted common words regardless of order (that is ROUGE-1); ROUGE-L needs them "
    "in the same order: the LCS.",
    zh="你统计的是不管顺序的公共词（那是 ROUGE-1）；ROUGE-L 要求顺序一致：最长公共子序列。",
)
def unigram_overlap(prediction, reference):
    a, b = prediction.split(), reference.split()
    return _lcs_f(sum((Counter(a) & Counter(b)).values()), a, b)


@misconception(
    "rouge_l_f",
    en="you returned the recall ℓ / |reference|; the exercise asks for the F-measure 2pr / (p + "
    "r).",
    zh="你返回的是召回率 ℓ / |reference|；题目要的是 F 值 2pr / (p + r)。",
)
def recall_only(prediction, reference):
    a, b = prediction.split(), reference.split()
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a, 1):
        for j, y in enumerate(b, 1):
            table[i][j] = (
                table[i - 1][j - 1] + 1 if x == y else max(table[i - 1][j], table[i][j - 1])
            )
    return table[-1][-1] / len(b)


@misconception(
    "rouge_l_f",
    en="your recurrence adds 1 to max(L[i-1][j], L[i][j-1]) on a match, so a repeated word "
    "is counted twice: on a match it is L[i-1][j-1] + 1.",
    zh="你的递推在匹配时对 max(L[i-1][j], L[i][j-1]) 加 1，重复的词会被算两次：匹配时应为 "
    "L[i-1][j-1] + 1。",
)
def lcs_recurrence_overcounts(prediction, reference):
    a, b = prediction.split(), reference.split()
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a, 1):
        for j, y in enumerate(b, 1):
            table[i][j] = max(table[i - 1][j], table[i][j - 1]) + (x == y)
    return _lcs_f(table[-1][-1], a, b)


# ----------------------------------------------------------------------- lead_k_summary
@misconception(
    "lead_k_summary",
    en="splitting on ' . ' and gluing the pieces back adds or drops a final '.': keep each "
    "sentence with its own '.' token.",
    zh="按 ' . ' 切分再拼回去，会多出或丢掉结尾的 '.'：让每个句子保留它自己的 '.' token。",
)
def split_on_period(document, k):
    return " . ".join(document.split(" . ")[:k]) + " ."


@misconception(
    "lead_k_summary",
    en="each sentence keeps its '.': you stopped just before the k-th period.",
    zh="每个句子都要保留它的 '.'：你在第 k 个句号之前就停下了。",
)
def stops_before_period(document, k):
    words, seen = [], 0
    for word in document.split():
        if word == ".":
            seen += 1
            if seen == k:
                break
        words.append(word)
    return " ".join(words)


@misconception(
    "lead_k_summary",
    en="'.' is a token of its own, separated by a space: 'a b .' must stay 'a b .', not "
    "become 'a b.'.",
    zh="'.' 是一个独立的 token，前面有空格：'a b .' 应保持原样，而不是变成 'a b.'。",
)
def period_glued_to_word(document, k):
    sentences = [s.strip() for s in document.split(".") if s.strip()]
    return " ".join(s + "." for s in sentences[:k])


@misconception(
    "lead_k_summary",
    en="a document with fewer than k sentences is returned whole; indexing sentence i for "
    "i < k runs past the end.",
    zh="句子少于 k 个的文档应整篇返回；按下标逐个取前 k 个句子会越界。",
)
def indexes_past_the_end(document, k):
    sentences, current = [], []
    for word in document.split():
        current.append(word)
        if word == ".":
            sentences.append(" ".join(current))
            current = []
    return " ".join(sentences[i] for i in range(k))

"""Misconceptions of chapter 8's exercises (solutions/08_bert.py).

Each function is a complete wrong answer a learner really writes; its name is the id.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attnkit.grading.misconceptions import misconception


# ------------------------------------------------------------------------ mlm_corrupt
def _masks(selected, u):
    return selected & (u < 0.8), selected & (u >= 0.8) & (u < 0.9)


@misconception(
    "mlm_corrupt",
    en="you wrote [MASK] into the caller's `tokens` (in place): build the inputs on a copy "
    "(masked_fill / torch.where return new tensors)",
    zh="你把 [MASK] 原地写进了调用者的 `tokens`：请在副本上构造输入（masked_fill / torch.where 会返回新张量）",
)
def corrupt_in_place(tokens, selected, u, random_ids, mask_token_id):
    to_mask, to_random = _masks(selected, u)
    labels = tokens.masked_fill(~selected, -100)
    tokens[to_mask] = mask_token_id
    tokens[to_random] = random_ids[to_random]
    return tokens, labels


@misconception(
    "mlm_corrupt",
    en="a selected token that stays unchanged (u ≥ 0.9) is still predicted: its label is "
    "the token, not −100",
    zh="被选中但保持不变（u ≥ 0.9）的词元仍然要预测：它的标签是原词元，而不是 −100",
)
def corrupt_labels_only_changed(tokens, selected, u, random_ids, mask_token_id):
    to_mask, to_random = _masks(selected, u)
    inputs = torch.where(to_random, random_ids, tokens.masked_fill(to_mask, mask_token_id))
    return inputs, tokens.masked_fill(~(to_mask | to_random), -100)


@misconception(
    "mlm_corrupt",
    en="the 10 % bands are swapped: 0.8 ≤ u < 0.9 gives a random token, u ≥ 0.9 leaves "
    "the token unchanged",
    zh="两个 10% 的区间弄反了：0.8 ≤ u < 0.9 换成随机词元，u ≥ 0.9 保持原词元不变",
)
def corrupt_bands_swapped(tokens, selected, u, random_ids, mask_token_id):
    to_mask = selected & (u < 0.8)
    to_random = selected & (u >= 0.9)
    inputs = torch.where(to_random, random_ids, tokens.masked_fill(to_mask, mask_token_id))
    return inputs, tokens.masked_fill(~selected, -100)


@misconception(
    "mlm_corrupt",
    en="only *selected* positions are corrupted: combine every condition on u with `selected &`",
    zh="只有*被选中*的位置才会被改动：每个关于 u 的条件都要与 `selected &` 结合",
)
def corrupt_ignores_selection(tokens, selected, u, random_ids, mask_token_id):
    to_mask, to_random = u < 0.8, (u >= 0.8) & (u < 0.9)
    inputs = torch.where(to_random, random_ids, tokens.masked_fill(to_mask, mask_token_id))
    return inputs, tokens.masked_fill(~selected, -100)


@misconception(
    "mlm_corrupt",
    en="the labels are the *original* tokens, not the corrupted inputs ([MASK] is never "
    "the answer)",
    zh="标签是*原始*词元，而不是被改动后的输入（[MASK] 永远不是答案）",
)
def corrupt_labels_from_inputs(tokens, selected, u, random_ids, mask_token_id):
    to_mask, to_random = _masks(selected, u)
    inputs = torch.where(to_random, random_ids, tokens.masked_fill(to_mask, mask_token_id))
    return inputs, inputs.masked_fill(~selected, -100)


@misconception(
    "mlm_corrupt",
    en="unselected positions get the label −100 (ignored by cross_entropy), not 0: "
    "0 is a real token id",
    zh="未被选中位置的标签是 −100（cross_entropy 会忽略它），而不是 0：0 是一个真实的词元编号",
)
def corrupt_labels_zero(tokens, selected, u, random_ids, mask_token_id):
    to_mask, to_random = _masks(selected, u)
    inputs = torch.where(to_random, random_ids, tokens.masked_fill(to_mask, mask_token_id))
    return inputs, tokens * selected


# -------------------------------------------------------------- mlm_loss_and_accuracy
@misconception(
    "mlm_loss_and_accuracy",
    en="you averaged the loss over every position; only the selected ones (label ≠ −100) "
    "count, in the sum and in the count",
    zh="你对所有位置的损失求了平均；只有被选中的位置（标签 ≠ −100）才计入求和与计数",
)
def mlm_loss_over_all_positions(logits, labels):
    loss = F.cross_entropy(logits.flatten(0, 1), labels.clamp(min=0).flatten())
    selected = labels != -100
    accuracy = (logits[selected].argmax(-1) == labels[selected]).float().mean()
    return loss, accuracy


@misconception(
    "mlm_loss_and_accuracy",
    en="your accuracy counts the unselected positions (as wrong): divide by the number of "
    "selected positions only",
    zh="你的准确率把未被选中的位置也算进去了（算作错误）：只应除以被选中位置的个数",
)
def mlm_accuracy_over_all_positions(logits, labels):
    selected = labels != -100
    loss = F.cross_entropy(logits[selected], labels[selected])
    accuracy = (logits.argmax(-1) == labels).float().mean()
    return loss, accuracy


@misconception(
    "mlm_loss_and_accuracy",
    en="the accuracy must be a float 0-d tensor; you returned a Python number (`.item()`)",
    zh="准确率必须是浮点型的 0 维张量；你返回了 Python 数值（`.item()`）",
)
def mlm_accuracy_python_float(logits, labels):
    selected = labels != -100
    picked, targets = logits[selected], labels[selected]
    accuracy = (picked.argmax(-1) == targets).float().mean().item()
    return F.cross_entropy(picked, targets), accuracy


@misconception(
    "mlm_loss_and_accuracy",
    en="the loss is the *mean* cross-entropy over the selected positions, not the sum",
    zh="损失是被选中位置交叉熵的*平均*，而不是总和",
)
def mlm_loss_summed(logits, labels):
    selected = labels != -100
    picked, targets = logits[selected], labels[selected]
    accuracy = (picked.argmax(-1) == targets).float().mean()
    return F.cross_entropy(picked, targets, reduction="sum"), accuracy


@misconception(
    "mlm_loss_and_accuracy",
    en="`//` is integer division: the number right // the number selected is 0 unless all "
    "are right; compute a float mean",
    zh="`//` 是整数除法：答对个数 // 被选中个数，除非全对否则为 0；请计算浮点平均",
)
def mlm_accuracy_integer_division(logits, labels):
    selected = labels != -100
    picked, targets = logits[selected], labels[selected]
    accuracy = (picked.argmax(-1) == targets).sum() // targets.numel()
    return F.cross_entropy(picked, targets), accuracy


# ------------------------------------------------------------- bert_input_embeddings
def _norm(x, gamma, beta, eps, unbiased=False):
    mean = x.mean(-1, keepdim=True)
    var = x.var(-1, unbiased=unbiased, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * gamma + beta


@misconception(
    "bert_input_embeddings",
    en="LayerNorm uses the biased variance (divide by d): `x.var()` defaults to the "
    "unbiased one, pass unbiased=False",
    zh="LayerNorm 用的是有偏方差（除以 d）：`x.var()` 默认是无偏方差，要传 unbiased=False",
)
def embeddings_unbiased_variance(input_ids, token_type_ids, word, position, segment,
                                 gamma, beta, eps=1e-12):  # fmt: skip
    T = input_ids.shape[1]
    x = word[input_ids] + position[:T] + segment[token_type_ids]
    return _norm(x, gamma, beta, eps, unbiased=True)


@misconception(
    "bert_input_embeddings",
    en="you left out the LayerNorm: BERT normalises the sum of the three embeddings",
    zh="你漏掉了 LayerNorm：BERT 会对三个嵌入之和做归一化",
)
def embeddings_without_layer_norm(input_ids, token_type_ids, word, position, segment,
                                  gamma, beta, eps=1e-12):  # fmt: skip
    T = input_ids.shape[1]
    return word[input_ids] + position[:T] + segment[token_type_ids]


@misconception(
    "bert_input_embeddings",
    en="the position table is indexed by the position t (0 … T − 1), not by the token id",
    zh="位置嵌入表按位置 t（0 … T − 1）索引，而不是按词元编号",
)
def embeddings_position_by_token_id(input_ids, token_type_ids, word, position, segment,
                                    gamma, beta, eps=1e-12):  # fmt: skip
    x = word[input_ids] + position[input_ids] + segment[token_type_ids]
    return _norm(x, gamma, beta, eps)


@misconception(
    "bert_input_embeddings",
    en="you left out the segment (token type) embedding: add segment[token_type_ids]",
    zh="你漏掉了段（token type）嵌入：要加上 segment[token_type_ids]",
)
def embeddings_without_segments(input_ids, token_type_ids, word, position, segment,
                                gamma, beta, eps=1e-12):  # fmt: skip
    T = input_ids.shape[1]
    return _norm(word[input_ids] + position[:T], gamma, beta, eps)


@misconception(
    "bert_input_embeddings",
    en="you added the whole position table (max_len rows): take its first T rows, position[:T]",
    zh="你加上了整张位置表（max_len 行）：只取前 T 行，position[:T]",
)
def embeddings_whole_position_table(input_ids, token_type_ids, word, position, segment,
                                    gamma, beta, eps=1e-12):  # fmt: skip
    x = word[input_ids] + position + segment[token_type_ids]
    return _norm(x, gamma, beta, eps)


# ---------------------------------------------------------------- self_attention_mask
@misconception(
    "self_attention_mask",
    en="padding hides *keys* (the last axis, j < lengths[b]); you masked the padded "
    "queries instead",
    zh="填充要挡住的是*键*（最后一个轴，j < lengths[b]）；你挡住的却是填充位置的查询",
)
def mask_pads_queries(lengths, T, causal=False):
    pos = torch.arange(T)
    mask = (pos[None, :, None] < lengths[:, None, None]).expand(len(lengths), T, T)
    if causal:
        mask = mask & (pos[None, :] <= pos[:, None])
    return mask


@misconception(
    "self_attention_mask",
    en="your causal mask looks at the future: query i may attend key j only if j ≤ i",
    zh="你的因果掩码看向了未来：查询 i 只能关注 j ≤ i 的键",
)
def mask_causal_reversed(lengths, T, causal=False):
    pos = torch.arange(T)
    mask = (pos[None, None, :] < lengths[:, None, None]).expand(len(lengths), T, T)
    if causal:
        mask = mask & (pos[None, :] >= pos[:, None])
    return mask


@misconception(
    "self_attention_mask",
    en="you ignored `causal`: with causal=True a query may not attend to later keys",
    zh="你忽略了 `causal`：causal=True 时查询不能关注后面的键",
)
def mask_ignores_causal(lengths, T, causal=False):
    pos = torch.arange(T)
    return (pos[None, None, :] < lengths[:, None, None]).expand(len(lengths), T, T)


@misconception(
    "self_attention_mask",
    en="off by one: the real keys are j = 0 … lengths[b] − 1, so compare with <, not <=",
    zh="差一错误：真实的键是 j = 0 … lengths[b] − 1，应该用 < 比较，而不是 <=",
)
def mask_padding_off_by_one(lengths, T, causal=False):
    pos = torch.arange(T)
    mask = (pos[None, None, :] <= lengths[:, None, None]).expand(len(lengths), T, T)
    if causal:
        mask = mask & (pos[None, :] <= pos[:, None])
    return mask


@misconception(
    "self_attention_mask",
    en="you returned the broadcastable (B, 1, T) key mask; the exercise asks for the full "
    "(B, T, T), one row per query (expand it)",
    zh="你返回的是可广播的 (B, 1, T) 键掩码；题目要求完整的 (B, T, T)，每个查询一行（请 expand）",
)
def mask_not_expanded(lengths, T, causal=False):
    pos = torch.arange(T)
    mask = pos[None, None, :] < lengths[:, None, None]
    if causal:
        mask = mask & (pos[None, :] <= pos[:, None])
    return mask


# ----------------------------------------------------------------- pack_sentence_pair
def _pack(a, b, cls_id, sep_id):
    return [cls_id, *a, sep_id, *b, sep_id], [0] * (len(a) + 2) + [1] * (len(b) + 1)


@misconception(
    "pack_sentence_pair",
    en="truncation drops the *last* token of the longer sentence (`pop()`), not the first",
    zh="截断去掉的是较长句子的*最后*一个词元（`pop()`），而不是第一个",
)
def pack_drops_first_token(a, b, max_len, cls_id, sep_id):
    a, b = list(a), list(b)
    while len(a) + len(b) + 3 > max_len:
        (a if len(a) > len(b) else b).pop(0)
    return _pack(a, b, cls_id, sep_id)


@misconception(
    "pack_sentence_pair",
    en="when the two sentences are equally long, drop from b, not from a",
    zh="两个句子一样长时，要从 b 中去掉词元，而不是 a",
)
def pack_ties_drop_a(a, b, max_len, cls_id, sep_id):
    a, b = list(a), list(b)
    while len(a) + len(b) + 3 > max_len:
        (a if len(a) >= len(b) else b).pop()
    return _pack(a, b, cls_id, sep_id)


@misconception(
    "pack_sentence_pair",
    en="segment 0 covers [CLS], A *and the first [SEP]*; segment 1 covers B and the last [SEP]",
    zh="段 0 包括 [CLS]、A *以及第一个 [SEP]*；段 1 包括 B 和最后一个 [SEP]",
)
def pack_first_sep_in_segment_b(a, b, max_len, cls_id, sep_id):
    a, b = list(a), list(b)
    while len(a) + len(b) + 3 > max_len:
        (a if len(a) > len(b) else b).pop()
    return [cls_id, *a, sep_id, *b, sep_id], [0] * (len(a) + 1) + [1] * (len(b) + 2)


@misconception(
    "pack_sentence_pair",
    en="you truncated the caller's lists `a` and `b` (pop on them): copy them first",
    zh="你截断了调用者传入的列表 `a` 和 `b`（直接对它们 pop）：请先复制",
)
def pack_modifies_inputs(a, b, max_len, cls_id, sep_id):
    while len(a) + len(b) + 3 > max_len:
        (a if len(a) > len(b) else b).pop()
    return _pack(list(a), list(b), cls_id, sep_id)


@misconception(
    "pack_sentence_pair",
    en="the three special tokens ([CLS] and two [SEP]) count towards max_len: the limit "
    "is len(a) + len(b) + 3 ≤ max_len",
    zh="三个特殊词元（[CLS] 和两个 [SEP]）也计入 max_len：限制是 len(a) + len(b) + 3 ≤ max_len",
)
def pack_forgets_special_tokens(a, b, max_len, cls_id, sep_id):
    a, b = list(a), list(b)
    while len(a) + len(b) > max_len:
        (a if len(a) > len(b) else b).pop()
    return _pack(a, b, cls_id, sep_id)

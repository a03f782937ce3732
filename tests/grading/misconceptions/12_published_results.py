"""Misconceptions of chapter 12's exercises (what the published results say).

Each function is a complete wrong answer that learners really write; the grader must fail
it, and the report names it from the message below (see ``attnkit.grading.misconceptions``).
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter

from attnkit.grading.misconceptions import misconception


# ----------------------------------------------------------- transformer_param_count
def _count(vocab, d, d_ff, layers, shared, attention, layer_norm, decoder_attentions, outputs):
    feed_forward = 2 * d * d_ff + d_ff + d
    encoder_layer = attention + feed_forward + 2 * layer_norm
    decoder_layer = decoder_attentions * attention + feed_forward + 3 * layer_norm
    embeddings = ((1 if shared else 2) + outputs) * vocab * d
    return layers * (encoder_layer + decoder_layer) + embeddings


@misconception(
    "transformer_param_count",
    en="the four attention projections have biases too: 4 d_model² + 4 d_model per "
    "attention block.",
    zh="注意力的四个投影也有偏置：每个注意力块是 4 d_model² + 4 d_model 个参数。",
)
def attention_without_biases(vocab_size, d_model, d_ff, num_layers, shared_source_target=True):
    return _count(vocab_size, d_model, d_ff, num_layers, shared_source_target,
                  4 * d_model * d_model, 2 * d_model, 2, 0)  # fmt: skip


@misconception(
    "transformer_param_count",
    en="a decoder layer has two attention blocks: masked self-attention and "
    "cross-attention to the encoder.",
    zh="解码器的每一层有两个注意力块：带掩码的自注意力和对编码器的交叉注意力。",
)
def decoder_without_cross_attention(
    vocab_size, d_model, d_ff, num_layers, shared_source_target=True
):
    return _count(vocab_size, d_model, d_ff, num_layers, shared_source_target,
                  4 * d_model * d_model + 4 * d_model, 2 * d_model, 1, 0)  # fmt: skip


@misconception(
    "transformer_param_count",
    en="the output projection is tied to the target embedding: it adds no parameters.",
    zh="输出投影与目标端嵌入共享权重：它不增加参数。",
)
def untied_output_projection(vocab_size, d_model, d_ff, num_layers, shared_source_target=True):
    return _count(vocab_size, d_model, d_ff, num_layers, shared_source_target,
                  4 * d_model * d_model + 4 * d_model, 2 * d_model, 2, 1)  # fmt: skip


@misconception(
    "transformer_param_count",
    en="a LayerNorm has a gain and a shift: 2 d_model parameters, not d_model.",
    zh="LayerNorm 有缩放和平移两组参数：共 2 d_model 个，不是 d_model 个。",
)
def layer_norm_gain_only(vocab_size, d_model, d_ff, num_layers, shared_source_target=True):
    return _count(vocab_size, d_model, d_ff, num_layers, shared_source_target,
                  4 * d_model * d_model + 4 * d_model, d_model, 2, 0)  # fmt: skip


# ---------------------------------------------------------- modified_ngram_precision
def _ngrams(tokens, n):
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


@misconception(
    "modified_ngram_precision",
    en="you did not clip: an n-gram counts at most as often as it occurs in one reference "
    "(the 'the the the' example).",
    zh="你没有截断计数：一个 n 元组最多只能按它在单个参考译文中出现的次数计（'the the the' 的例子）"
    "。",
)
def unclipped_counts(hypothesis, references, n):
    hyp = _ngrams(hypothesis, n)
    seen = set().union(*(_ngrams(r, n) for r in references))
    matches = sum(count for g, count in hyp.items() if g in seen)
    return matches, max(0, len(hypothesis) - n + 1)


@misconception(
    "modified_ngram_precision",
    en="the clip is the largest count in any ONE reference, not the sum over the references.",
    zh="截断值是在任意“一个”参考译文中的最大次数，而不是所有参考译文次数之和。",
)
def clip_by_sum_over_references(hypothesis, references, n):
    hyp = _ngrams(hypothesis, n)
    total_ref = Counter()
    for r in references:
        total_ref += _ngrams(r, n)
    matches = sum(min(count, total_ref[g]) for g, count in hyp.items())
    return matches, max(0, len(hypothesis) - n + 1)


@misconception(
    "modified_ngram_precision",
    en="total is the number of n-grams, |hyp| - n + 1, not the number of tokens.",
    zh="total 是 n 元组的个数 |hyp| - n + 1，而不是 token 的个数。",
)
def total_counts_tokens(hypothesis, references, n):
    hyp = _ngrams(hypothesis, n)
    max_ref = Counter()
    for r in references:
        max_ref |= _ngrams(r, n)
    return sum(min(c, max_ref[g]) for g, c in hyp.items()), len(hypothesis)


@misconception(
    "modified_ngram_precision",
    en="a hypothesis shorter than n has no n-grams: total is max(0, |hyp| - n + 1), never "
    "negative.",
    zh="比 n 短的假设没有 n 元组：total 是 max(0, |hyp| - n + 1)，不能为负。",
)
def negative_total(hypothesis, references, n):
    hyp = _ngrams(hypothesis, n)
    max_ref = Counter()
    for r in references:
        max_ref |= _ngrams(r, n)
    return sum(min(c, max_ref[g]) for g, c in hyp.items()), len(hypothesis) - n + 1


@misconception(
    "modified_ngram_precision",
    en="you counted each distinct n-gram once: a repeated n-gram matches up to its clipped "
    "count, min(count_hyp, max_r count_r).",
    zh="你把每个不同的 n 元组只算了一次：重复的 n 元组最多可匹配截断后的次数 min(count_hyp, max_r "
    "count_r)。",
)
def distinct_ngrams_only(hypothesis, references, n):
    hyp = _ngrams(hypothesis, n)
    seen = set().union(*(_ngrams(r, n) for r in references))
    return sum(1 for g in hyp if g in seen), max(0, len(hypothesis) - n + 1)


# ---------------------------------------------------------------------- corpus_bleu
def _stats(hypotheses, references, max_n, ref_length, precision):
    """Summed statistics, from the learner's modified_ngram_precision (``precision``)."""
    matches, totals, c, r = [0] * max_n, [0] * max_n, 0, 0
    for hyp, refs in zip(hypotheses, references):
        for n in range(1, max_n + 1):
            m, t = precision(hyp, refs, n)
            matches[n - 1] += m
            totals[n - 1] += t
        c += len(hyp)
        r += ref_length(hyp, refs)
    return matches, totals, c, r


def _closest(hyp, refs):
    return min((len(x) for x in refs), key=lambda length: (abs(length - len(hyp)), length))


@misconception(
    "corpus_bleu",
    en="corpus BLEU pools the n-gram counts and lengths of all sentences first; the mean "
    "of sentence BLEUs is a different (and lower) number.",
    zh="语料级 BLEU 先汇总所有句子的 n 元组计数和长度；逐句 BLEU 的平均是另一个（通常更低的）数。",
)
def average_of_sentence_bleu(hypotheses, references, max_n=4):
    scores = []
    for hyp, refs in zip(hypotheses, references):
        m, t, c, r = _stats([hyp], [refs], max_n, _closest, modified_ngram_precision)
        if min(t) == 0 or min(m) == 0:
            scores.append(0.0)
            continue
        bp = 1.0 if c > r else math.exp(1 - r / c)
        scores.append(100 * bp * math.exp(sum(math.log(a / b) for a, b in zip(m, t)) / max_n))
    return sum(scores) / len(scores)


@misconception(
    "corpus_bleu",
    en="BLEU takes the geometric mean of the p_n (exp of the mean log), not their arithmetic mean.",
    zh="BLEU 对 p_n 取几何平均（对数平均再取 exp），而不是算术平均。",
)
def arithmetic_mean_of_precisions(hypotheses, references, max_n=4):
    m, t, c, r = _stats(hypotheses, references, max_n, _closest, modified_ngram_precision)
    if min(t) == 0 or min(m) == 0:
        return 0.0
    bp = 1.0 if c > r else math.exp(1 - r / c)
    return 100 * bp * sum(a / b for a, b in zip(m, t)) / max_n


@misconception(
    "corpus_bleu",
    en="the brevity penalty is exp(1 - r / c) with c the hypothesis length: you inverted "
    "the ratio.",
    zh="简短惩罚是 exp(1 - r / c)，c 是假设的长度：你把比值写反了。",
)
def brevity_penalty_inverted(hypotheses, references, max_n=4):
    m, t, c, r = _stats(hypotheses, references, max_n, _closest, modified_ngram_precision)
    if min(t) == 0 or min(m) == 0:
        return 0.0
    bp = 1.0 if c > r else math.exp(1 - c / r)
    return 100 * bp * math.exp(sum(math.log(a / b) for a, b in zip(m, t)) / max_n)


@misconception(
    "corpus_bleu",
    en="r uses the reference length closest to the hypothesis (the shorter on a tie), not "
    "the shortest reference.",
    zh="r 取与假设长度最接近的参考长度（相同时取较短者），而不是最短的参考译文。",
)
def shortest_reference_length(hypotheses, references, max_n=4):
    m, t, c, r = _stats(
        hypotheses,
        references,
        max_n,
        lambda h, rs: min(len(x) for x in rs),
        modified_ngram_precision,
    )
    if min(t) == 0 or min(m) == 0:
        return 0.0
    bp = 1.0 if c > r else math.exp(1 - r / c)
    return 100 * bp * math.exp(sum(math.log(a / b) for a, b in zip(m, t)) / max_n)


# ---------------------------------------------------------------- implied_utilization
@misconception(
    "implied_utilization",
    en="hours must become seconds (× 3600) before multiplying by FLOP/s.",
    zh="小时要先换算成秒（× 3600），再乘以每秒浮点运算数。",
)
def hours_not_in_seconds(num_params, num_tokens, hours, num_gpus, tflops_per_gpu):
    return 6.0 * num_params * num_tokens / (hours * num_gpus * tflops_per_gpu * 1e12)


@misconception(
    "implied_utilization",
    en="training costs 6ND (2 forward + 4 backward per parameter and token), not 2ND, "
    "the forward pass alone.",
    zh="训练的计算量是 6ND（每个参数每个 token：前向 2 次、反向 4 次），不是只算前向的 2ND。",
)
def forward_pass_only(num_params, num_tokens, hours, num_gpus, tflops_per_gpu):
    return 2.0 * num_params * num_tokens / (hours * 3600.0 * num_gpus * tflops_per_gpu * 1e12)


@misconception(
    "implied_utilization",
    en="a TFLOPS is 10¹² FLOP/s, not 10⁹.",
    zh="1 TFLOPS 是 10¹² 次浮点运算每秒，不是 10⁹。",
)
def tera_as_giga(num_params, num_tokens, hours, num_gpus, tflops_per_gpu):
    return 6.0 * num_params * num_tokens / (hours * 3600.0 * num_gpus * tflops_per_gpu * 1e9)


@misconception(
    "implied_utilization",
    en="the GPU budget is hours × 3600 × the number of GPUs × the throughput per GPU: you left out the GPUs.",
    zh="GPU 预算是 小时 × 3600 × GPU 数 × 每块 GPU 的吞吐量：你漏掉了 GPU 的数量。",
)
def gpus_left_out(num_params, num_tokens, hours, num_gpus, tflops_per_gpu):
    return 6.0 * num_params * num_tokens / (hours * 3600.0 * tflops_per_gpu * 1e12)


# ------------------------------------------------------------------------ squad_em_f1
def _norm(s):
    s = "".join(ch for ch in s.lower() if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def _token_f1(pred, ref):
    p, r = _norm(pred).split(), _norm(ref).split()
    common = sum((Counter(p) & Counter(r)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(r)
    return 2 * precision * recall / (precision + recall)


@misconception(
    "squad_em_f1",
    en="exact match compares the normalised strings: 'the Eiffel Tower' equals 'Eiffel Tower'.",
    zh="完全匹配比较的是规范化后的字符串：'the Eiffel Tower' 与 'Eiffel Tower' 相等。",
)
def em_without_normalization(prediction, references):
    em = max(float(prediction == ref) for ref in references)
    return em, max(_token_f1(prediction, ref) for ref in references)


@misconception(
    "squad_em_f1",
    en="with several references SQuAD keeps the best score (the maximum), not the average.",
    zh="有多个参考答案时 SQuAD 取最好的分数（最大值），而不是平均值。",
)
def average_over_references(prediction, references):
    em = sum(float(_norm(prediction) == _norm(ref)) for ref in references) / len(references)
    return em, sum(_token_f1(prediction, ref) for ref in references) / len(references)


@misconception(
    "squad_em_f1",
    en="F1 is the maximum over all references too, not the F1 against the first one.",
    zh="F1 同样要在所有参考答案上取最大值，而不是只和第一个比较。",
)
def f1_first_reference_only(prediction, references):
    em = max(float(_norm(prediction) == _norm(ref)) for ref in references)
    return em, _token_f1(prediction, references[0])


@misconception(
    "squad_em_f1",
    en="you removed the articles and punctuation for F1 but compared lower-cased strings "
    "only for EM: both use the same normalisation.",
    zh="你在 F1 中去掉了冠词和标点，但 EM 只比较了转小写后的字符串：两者应使用同样的规范化。",
)
def em_lowercase_only(prediction, references):
    em = max(float(prediction.lower().strip() == ref.lower().strip()) for ref in references)
    return em, max(_token_f1(prediction, ref) for ref in references)

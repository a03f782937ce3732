"""Misconceptions of chapter 3's exercises (solutions/03_transformer.py).

Each function is a complete wrong answer a learner really writes; its name is the id.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attnkit.grading.misconceptions import misconception


# ------------------------------------------------------------------------ layer_norm
@misconception(
    "layer_norm",
    en="`x.var()` is the unbiased variance (divides by d − 1); LayerNorm divides by d: "
    "use `unbiased=False` or compute the mean of the squared deviations",
    zh="`x.var()` 默认是无偏方差（除以 d − 1）；LayerNorm 除以 d：请用 `unbiased=False`，或自己求偏差平方的均值",
)
def ln_unbiased_variance(x, weight, bias, eps=1e-5):
    mean = x.mean(dim=-1, keepdim=True)
    var = x.var(dim=-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


@misconception(
    "layer_norm",
    en="eps goes inside the square root, √(σ² + ε), not after it (√σ² + ε)",
    zh="eps 要放在平方根里面，√(σ² + ε)，而不是 √σ² + ε",
)
def ln_eps_outside_sqrt(x, weight, bias, eps=1e-5):
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    return (x - mean) / (torch.sqrt(var) + eps) * weight + bias


@misconception(
    "layer_norm",
    en="you ignored the `eps` argument (a fixed 1e-5): use the eps the caller gives",
    zh="你忽略了 `eps` 参数（固定用 1e-5）：请使用调用者给出的 eps",
)
def ln_ignores_eps(x, weight, bias, eps=1e-5):
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-5) * weight + bias


@misconception(
    "layer_norm",
    en="without eps a constant row (variance 0) divides 0 by 0: add eps inside the sqrt",
    zh="没有 eps 时，常数行（方差为 0）会出现 0/0：请在平方根内加上 eps",
)
def ln_no_eps(x, weight, bias, eps=1e-5):
    mean = x.mean(dim=-1, keepdim=True)
    std = x.std(dim=-1, keepdim=True, unbiased=False)
    return (x - mean) / std * weight + bias


@misconception(
    "layer_norm",
    en="you normalised over the whole tensor; LayerNorm normalises each position over its "
    "last axis (keepdim=True, dim=-1)",
    zh="你在整个张量上做了归一化；LayerNorm 是对每个位置沿最后一个轴归一化（dim=-1，keepdim=True）",
)
def ln_over_all_elements(x, weight, bias, eps=1e-5):
    mean = x.mean()
    var = ((x - mean) ** 2).mean()
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


# ---------------------------------------------------------------------- feed_forward
@misconception(
    "feed_forward",
    en="the Transformer's FFN uses ReLU, max(0, ·), not GELU",
    zh="Transformer 的前馈网络用 ReLU，即 max(0, ·)，不是 GELU",
)
def ffn_gelu(x, w1, b1, w2, b2):
    return F.gelu(x @ w1.T + b1) @ w2.T + b2


@misconception(
    "feed_forward",
    en="w1 is (d_ff, d_model) in nn.Linear's layout: compute `x @ w1.T`, not `x @ w1`",
    zh="w1 的形状是 nn.Linear 布局的 (d_ff, d_model)：应计算 `x @ w1.T`，而不是 `x @ w1`",
)
def ffn_weights_not_transposed(x, w1, b1, w2, b2):
    return torch.relu(x @ w1 + b1) @ w2 + b2


@misconception(
    "feed_forward",
    en="there is no ReLU after the second layer: FFN(x) = max(0, xW₁ᵀ + b₁)W₂ᵀ + b₂",
    zh="第二层之后没有 ReLU：FFN(x) = max(0, xW₁ᵀ + b₁)W₂ᵀ + b₂",
)
def ffn_relu_on_output(x, w1, b1, w2, b2):
    return torch.relu(torch.relu(x @ w1.T + b1) @ w2.T + b2)


@misconception(
    "feed_forward",
    en="you left out the bias b₁ of the first layer (inside the ReLU)",
    zh="你漏掉了第一层的偏置 b₁（在 ReLU 里面）",
)
def ffn_missing_b1(x, w1, b1, w2, b2):
    return torch.relu(x @ w1.T) @ w2.T + b2


# -------------------------------------------------------------------------- residual
@misconception(
    "residual",
    en="your two orders are swapped: norm_first=True is pre-LN, x + sublayer(norm(x)); "
    "norm_first=False is post-LN, norm(x + sublayer(x))",
    zh="你把两种顺序弄反了：norm_first=True 是 pre-LN，x + sublayer(norm(x))；norm_first=False 是 post-LN，norm(x + sublayer(x))",
)
def residual_orders_swapped(x, sublayer, norm, norm_first):
    if not norm_first:
        return x + sublayer(norm(x))
    return norm(x + sublayer(x))


@misconception(
    "residual",
    en="in pre-LN the residual carries the raw x, not norm(x): x + sublayer(norm(x))",
    zh="pre-LN 中残差传递的是原始的 x，而不是 norm(x)：x + sublayer(norm(x))",
)
def residual_pre_ln_adds_normed_input(x, sublayer, norm, norm_first):
    if norm_first:
        h = norm(x)
        return h + sublayer(h)
    return norm(x + sublayer(x))


@misconception(
    "residual",
    en="you forgot the residual connection itself: add x to the sublayer's output",
    zh="你漏掉了残差连接本身：要把 x 加到子层的输出上",
)
def residual_without_skip(x, sublayer, norm, norm_first):
    if norm_first:
        return sublayer(norm(x))
    return norm(sublayer(x))


@misconception(
    "residual",
    en="pre-LN normalises the sublayer's input, not its output: x + sublayer(norm(x)), "
    "not x + norm(sublayer(x))",
    zh="pre-LN 归一化的是子层的输入而不是输出：x + sublayer(norm(x))，而不是 x + norm(sublayer(x))",
)
def residual_pre_ln_norms_output(x, sublayer, norm, norm_first):
    if norm_first:
        return x + norm(sublayer(x))
    return norm(x + sublayer(x))


# ------------------------------------------------------------------ decoder_self_mask
@misconception(
    "decoder_self_mask",
    en="with a cache the new queries are the *last* n_new positions: query i sits at "
    "T_k − n_new + i, so `tril` of an (n_new, T_k) matrix is shifted",
    zh="使用缓存时，新查询是*最后* n_new 个位置：查询 i 位于 T_k − n_new + i，所以 (n_new, T_k) 矩阵的 `tril` 错位了",
)
def decoder_mask_without_offset(key_is_real, n_new):
    t_k = key_is_real.shape[-1]
    causal = torch.ones(n_new, t_k, dtype=torch.bool).tril()
    return causal & key_is_real[:, None, :]


@misconception(
    "decoder_self_mask",
    en="you left out the padding: a query must not attend to a padding key "
    "(combine the causal mask with key_is_real using &)",
    zh="你没有处理填充：查询不能关注填充位置的键（用 & 把因果掩码和 key_is_real 结合起来）",
)
def decoder_mask_ignores_padding(key_is_real, n_new):
    t_k = key_is_real.shape[-1]
    q_pos = torch.arange(n_new).unsqueeze(-1) + (t_k - n_new)
    causal = torch.arange(t_k).unsqueeze(0) <= q_pos
    return causal.expand(key_is_real.shape[0], n_new, t_k)


@misconception(
    "decoder_self_mask",
    en="the padding mask hides *keys* (columns): index it as key_is_real[:, None, :], "
    "not as a query mask [:, :, None]",
    zh="填充掩码要挡住的是*键*（列）：应写 key_is_real[:, None, :]，而不是当成查询掩码 [:, :, None]",
)
def decoder_mask_pads_queries(key_is_real, n_new):
    t_k = key_is_real.shape[-1]
    q_pos = torch.arange(n_new).unsqueeze(-1) + (t_k - n_new)
    causal = torch.arange(t_k).unsqueeze(0) <= q_pos
    return causal & key_is_real[:, -n_new:, None]


@misconception(
    "decoder_self_mask",
    en="a key must be in the past *and* real: combine the two masks with &, not |",
    zh="键必须既在过去*又*是真实词元：两个掩码要用 & 结合，而不是 |",
)
def decoder_mask_or(key_is_real, n_new):
    t_k = key_is_real.shape[-1]
    q_pos = torch.arange(n_new).unsqueeze(-1) + (t_k - n_new)
    causal = torch.arange(t_k).unsqueeze(0) <= q_pos
    return causal | key_is_real[:, None, :]


@misconception(
    "decoder_self_mask",
    en="your mask is a 0/1 number tensor (from multiplying the masks); return a bool "
    "tensor, combining the masks with &",
    zh="你的掩码是 0/1 数值张量（由掩码相乘得到）；请用 & 结合掩码，返回 bool 张量",
)
def decoder_mask_float(key_is_real, n_new):
    t_k = key_is_real.shape[-1]
    q_pos = torch.arange(n_new).unsqueeze(-1) + (t_k - n_new)
    causal = (torch.arange(t_k).unsqueeze(0) <= q_pos).float()
    return causal * key_is_real[:, None, :].float()


# ------------------------------------------------------------------------ greedy_step
@misconception(
    "greedy_step",
    en="you changed `finished` in place (`|=`): the caller's flags must stay as they were; "
    "return a new tensor",
    zh="你原地修改了 `finished`（`|=`）：调用者的标记必须保持原样；请返回一个新张量",
)
def greedy_updates_finished_in_place(logits, finished, eos_id, pad_id):
    next_tokens = logits.argmax(dim=-1)
    next_tokens = torch.where(finished, torch.full_like(next_tokens, pad_id), next_tokens)
    finished |= next_tokens == eos_id
    return next_tokens, finished


@misconception(
    "greedy_step",
    en="rows that are already finished must emit pad_id, not their argmax",
    zh="已经结束的行应输出 pad_id，而不是它们的 argmax",
)
def greedy_no_padding(logits, finished, eos_id, pad_id):
    next_tokens = logits.argmax(dim=-1)
    return next_tokens, finished | (next_tokens == eos_id)


@misconception(
    "greedy_step",
    en="you updated `finished` before padding, so a row that emits EOS now gets pad_id "
    "instead of its EOS: pad with the *old* flags",
    zh="你在填充之前就更新了 `finished`，于是这一步刚输出 EOS 的行得到的是 pad_id 而不是 EOS：应按*旧的*标记填充",
)
def greedy_pads_with_new_flags(logits, finished, eos_id, pad_id):
    next_tokens = logits.argmax(dim=-1)
    finished = finished | (next_tokens == eos_id)
    next_tokens = torch.where(finished, torch.full_like(next_tokens, pad_id), next_tokens)
    return next_tokens, finished


@misconception(
    "greedy_step",
    en="you never update the flags: a row is finished once it has emitted eos_id",
    zh="你从未更新结束标记：一行一旦输出 eos_id 就结束了",
)
def greedy_never_finishes(logits, finished, eos_id, pad_id):
    next_tokens = logits.argmax(dim=-1)
    next_tokens = torch.where(finished, torch.full_like(next_tokens, pad_id), next_tokens)
    return next_tokens, finished.clone()


@misconception(
    "greedy_step",
    en="argmax over the wrong axis: the next token is the argmax over the vocabulary "
    "(dim=-1), one per row",
    zh="argmax 的轴错了：下一个词元是在词表维度（dim=-1）上的 argmax，每行一个",
)
def greedy_argmax_over_batch(logits, finished, eos_id, pad_id):
    next_tokens = logits.argmax(dim=0)[: logits.shape[0]]
    next_tokens = torch.where(finished, torch.full_like(next_tokens, pad_id), next_tokens)
    return next_tokens, finished | (next_tokens == eos_id)


# -------------------------------------------------------------- smoothed_cross_entropy
def _kept(logits, target, ignore_index):
    keep = target != ignore_index
    return torch.log_softmax(logits[keep], dim=-1), target[keep]


@misconception(
    "smoothed_cross_entropy",
    en="ε is spread over all V tokens (the correct one included, 1 − ε + ε/V), not over "
    "the V − 1 wrong ones",
    zh="ε 要均匀分给全部 V 个词元（包括正确的那个，得到 1 − ε + ε/V），而不是只分给 V − 1 个错误词元",
)
def ce_smoothing_over_other_classes(logits, target, smoothing, ignore_index):
    logp, tgt = _kept(logits, target, ignore_index)
    v = logits.shape[-1]
    q = torch.full_like(logp, smoothing / (v - 1))
    q.scatter_(-1, tgt.unsqueeze(-1), 1 - smoothing)
    return -(q * logp).sum(-1).mean()


@misconception(
    "smoothed_cross_entropy",
    en="you averaged over all N positions, padding included (as zeros): the mean is over "
    "the positions whose target is not ignore_index",
    zh="你对全部 N 个位置求了平均（填充位置算作 0）：平均应只在目标不是 ignore_index 的位置上求",
)
def ce_mean_over_all_positions(logits, target, smoothing, ignore_index):
    keep = target != ignore_index
    logp = torch.log_softmax(logits, dim=-1)
    nll = -logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    loss = (1 - smoothing) * nll + smoothing * -logp.mean(dim=-1)
    return (loss * keep).sum() / target.numel()


@misconception(
    "smoothed_cross_entropy",
    en="you ignored ignore_index: padding positions must be left out of the loss",
    zh="你忽略了 ignore_index：填充位置不能计入损失",
)
def ce_ignores_ignore_index(logits, target, smoothing, ignore_index):
    logp = torch.log_softmax(logits, dim=-1)
    nll = -logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    return ((1 - smoothing) * nll + smoothing * -logp.mean(dim=-1)).mean()


@misconception(
    "smoothed_cross_entropy",
    en="the smoothing term is the *mean* of −log p over the V tokens (ε/V each), not their sum",
    zh="平滑项是 −log p 在 V 个词元上的*平均*（每个 ε/V），而不是总和",
)
def ce_uniform_term_summed(logits, target, smoothing, ignore_index):
    logp, tgt = _kept(logits, target, ignore_index)
    nll = -logp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)
    return ((1 - smoothing) * nll + smoothing * -logp.sum(dim=-1)).mean()


@misconception(
    "smoothed_cross_entropy",
    en="you returned a Python float (`.item()`): the loss must stay a tensor so that "
    "`loss.backward()` can train the model",
    zh="你返回了 Python 浮点数（`.item()`）：损失必须保持为张量，才能调用 `loss.backward()` 训练模型",
)
def ce_returns_float(logits, target, smoothing, ignore_index):
    logp, tgt = _kept(logits, target, ignore_index)
    nll = -logp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)
    return ((1 - smoothing) * nll + smoothing * -logp.mean(dim=-1)).mean().item()

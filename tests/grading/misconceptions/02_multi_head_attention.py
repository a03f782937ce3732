"""Misconceptions of chapter 2's exercises (solutions/02_multi_head_attention.py).

Each function is a complete wrong answer a learner really writes; its name is the id.
Names of the chapter's other exercises (``split_heads``, ``merge_heads``) are the
learner's own, bound when the grader replays the misconception.
"""

from __future__ import annotations

import math

import torch

import attnkit as ak
from attnkit.grading.misconceptions import misconception


# ----------------------------------------------------------------------- split_heads
@misconception(
    "split_heads",
    en="reshaping straight to (..., H, T, D) mixes tokens into heads: reshape to "
    "(..., T, H, D) first, then swap the T and H axes",
    zh="直接 reshape 成 (..., H, T, D) 会把不同词元混进同一个头：先 reshape 成 (..., T, H, D)，再交换 T 和 H 两个轴",
)
def split_reshape_without_transpose(x, num_heads):
    *lead, t, width = x.shape
    return x.reshape(*lead, num_heads, t, width // num_heads)


@misconception(
    "split_heads",
    en="you stopped at (..., T, H, D): the head axis must come before the time axis, "
    "(..., H, T, D)",
    zh="你停在了 (..., T, H, D)：头的轴应在时间轴之前，即 (..., H, T, D)",
)
def split_without_transpose(x, num_heads):
    *lead, t, width = x.shape
    return x.reshape(*lead, t, num_heads, width // num_heads)


@misconception(
    "split_heads",
    en="your heads take every H-th feature (interleaved); head h must get the "
    "contiguous block of features h·D … (h+1)·D − 1",
    zh="你的每个头取的是每隔 H 个的特征（交错）；头 h 应得到连续的一段特征 h·D … (h+1)·D − 1",
)
def split_interleaved(x, num_heads):
    *lead, t, width = x.shape
    x = x.reshape(*lead, t, width // num_heads, num_heads).transpose(-1, -2)
    return x.transpose(-3, -2)


@misconception(
    "split_heads",
    en="you assumed exactly one batch axis (`b, t, d = x.shape`): batch dimensions may be "
    "any number, use `*lead, t, d = x.shape`",
    zh="你假设恰好只有一个批维度（`b, t, d = x.shape`）：批维度可以有任意多个，请用 `*lead, t, d = x.shape`",
)
def split_assumes_3d(x, num_heads):
    b, t, width = x.shape
    return x.reshape(b, t, num_heads, width // num_heads).transpose(1, 2)


# ----------------------------------------------------------------------- merge_heads
@misconception(
    "merge_heads",
    en="reshaping (..., H, T, D) straight to (..., T, H·D) mixes heads and tokens: swap "
    "the H and T axes first",
    zh="把 (..., H, T, D) 直接 reshape 成 (..., T, H·D) 会混淆头和词元：先交换 H 和 T 两个轴",
)
def merge_reshape_without_transpose(x):
    *lead, h, t, d = x.shape
    return x.reshape(*lead, t, h * d)


@misconception(
    "merge_heads",
    en="`.view` fails after `.transpose` (the tensor is no longer contiguous): use "
    "`.reshape` (or `.contiguous().view`)",
    zh="`.transpose` 之后 `.view` 会失败（张量不再连续）：请用 `.reshape`（或 `.contiguous().view`）",
)
def merge_view_after_transpose(x):
    x = x.transpose(-3, -2)
    return x.view(*x.shape[:-2], x.shape[-2] * x.shape[-1])


@misconception(
    "merge_heads",
    en="you assumed a 4-D (B, H, T, D) input: batch dimensions may be any number, "
    "transpose axes -3 and -2",
    zh="你假设输入一定是 4 维的 (B, H, T, D)：批维度可以有任意多个，请交换轴 -3 和 -2",
)
def merge_assumes_4d(x):
    b, h, t, d = x.shape
    return x.permute(0, 2, 1, 3).reshape(b, t, h * d)


@misconception(
    "merge_heads",
    en="you concatenated along the wrong axis: the heads go side by side in the feature "
    "axis, (..., T, H·D), not stacked in time",
    zh="你沿错误的轴拼接：各头应在特征轴上并排，得到 (..., T, H·D)，而不是在时间轴上堆叠",
)
def merge_cat_time(x):
    return torch.cat(list(x.unbind(dim=-3)), dim=-2)


# -------------------------------------------------------------- multi_head_attention
@misconception(
    "multi_head_attention",
    en="you forgot the output projection: the merged heads are multiplied by W_oᵀ",
    zh="你漏掉了输出投影：拼接后的各头还要乘以 W_oᵀ",
)
def mha_no_output_projection(x, w_q, w_k, w_v, w_o, num_heads, mask=None):
    q = split_heads(x @ w_q.T, num_heads)
    k = split_heads(x @ w_k.T, num_heads)
    v = split_heads(x @ w_v.T, num_heads)
    return merge_heads(ak.scaled_dot_product_attention(q, k, v, mask))


@misconception(
    "multi_head_attention",
    en="the weights have nn.Linear's (out, in) layout: project with `x @ w.T`, not `x @ w`",
    zh="权重是 nn.Linear 的 (out, in) 布局：投影应写 `x @ w.T`，而不是 `x @ w`",
)
def mha_weights_not_transposed(x, w_q, w_k, w_v, w_o, num_heads, mask=None):
    q = split_heads(x @ w_q, num_heads)
    k = split_heads(x @ w_k, num_heads)
    v = split_heads(x @ w_v, num_heads)
    return merge_heads(ak.scaled_dot_product_attention(q, k, v, mask)) @ w_o


@misconception(
    "multi_head_attention",
    en="each head's scores are scaled by 1/√d_model; the scale is 1/√D with D = d_model/H, "
    "the size of one head",
    zh="你用 1/√d_model 缩放每个头的分数；正确的是 1/√D，D = d_model/H 是单个头的维度",
)
def mha_scale_by_d_model(x, w_q, w_k, w_v, w_o, num_heads, mask=None):
    q = split_heads(x @ w_q.T, num_heads)
    k = split_heads(x @ w_k.T, num_heads)
    v = split_heads(x @ w_v.T, num_heads)
    scores = q @ k.transpose(-2, -1) / math.sqrt(x.shape[-1])
    heads = ak.masked_softmax(scores, mask) @ v
    return merge_heads(heads) @ w_o.T


@misconception(
    "multi_head_attention",
    en="you never split into heads: that is single-head attention over all d_model "
    "features (right only when H = 1)",
    zh="你根本没有分头：这是在全部 d_model 个特征上的单头注意力（只有 H = 1 时才对）",
)
def mha_single_head(x, w_q, w_k, w_v, w_o, num_heads, mask=None):
    out = ak.scaled_dot_product_attention(x @ w_q.T, x @ w_k.T, x @ w_v.T, mask)
    return out @ w_o.T


@misconception(
    "multi_head_attention",
    en="you ignored the mask: pass `mask` to the attention",
    zh="你忽略了掩码：要把 `mask` 传给注意力函数",
)
def mha_ignores_mask(x, w_q, w_k, w_v, w_o, num_heads, mask=None):
    q = split_heads(x @ w_q.T, num_heads)
    k = split_heads(x @ w_k.T, num_heads)
    v = split_heads(x @ w_v.T, num_heads)
    return merge_heads(ak.scaled_dot_product_attention(q, k, v)) @ w_o.T


# --------------------------------------------------------------- sinusoidal_encoding
def _table(angle_sin, angle_cos, n, d):
    pe = torch.zeros(n, d)
    pe[:, 0::2] = torch.sin(angle_sin)
    pe[:, 1::2] = torch.cos(angle_cos)
    return pe


@misconception(
    "sinusoidal_encoding",
    en="the exponent is 2i/d_model with i the pair index: you used i/d_model, so the "
    "wavelengths grow too slowly",
    zh="指数是 2i/d_model（i 是成对的序号）：你用了 i/d_model，波长增长得太慢",
)
def pe_exponent_i_over_d(n_positions, d_model):
    pos = torch.arange(n_positions, dtype=torch.float32).unsqueeze(1)
    i = torch.arange(d_model // 2, dtype=torch.float32)
    angle = pos / (10000.0 ** (i / d_model))
    return _table(angle, angle, n_positions, d_model)


@misconception(
    "sinusoidal_encoding",
    en="your table puts all sines in the first half and all cosines in the second; the "
    "paper interleaves them: even columns sin, odd columns cos",
    zh="你的表把所有 sin 放在前半、cos 放在后半；论文中是交错排列：偶数列 sin，奇数列 cos",
)
def pe_halves(n_positions, d_model):
    pos = torch.arange(n_positions, dtype=torch.float32).unsqueeze(1)
    i2 = torch.arange(0, d_model, 2, dtype=torch.float32)
    angle = pos / (10000.0 ** (i2 / d_model))
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1)


@misconception(
    "sinusoidal_encoding",
    en="sin and cos are swapped: even columns (2i) hold sin, odd columns (2i + 1) cos",
    zh="sin 和 cos 放反了：偶数列（2i）是 sin，奇数列（2i + 1）是 cos",
)
def pe_sin_cos_swapped(n_positions, d_model):
    pos = torch.arange(n_positions, dtype=torch.float32).unsqueeze(1)
    i2 = torch.arange(0, d_model, 2, dtype=torch.float32)
    angle = pos / (10000.0 ** (i2 / d_model))
    pe = torch.zeros(n_positions, d_model)
    pe[:, 0::2] = torch.cos(angle)
    pe[:, 1::2] = torch.sin(angle)
    return pe


@misconception(
    "sinusoidal_encoding",
    en="columns 2i and 2i + 1 share one frequency, 1/10000^(2i/d_model); you gave column "
    "j its own frequency 1/10000^(j/d_model)",
    zh="第 2i 列和第 2i + 1 列共用同一个频率 1/10000^(2i/d_model)；你却给第 j 列用了各自的频率 1/10000^(j/d_model)",
)
def pe_frequency_per_column(n_positions, d_model):
    pos = torch.arange(n_positions, dtype=torch.float32).unsqueeze(1)
    j = torch.arange(d_model, dtype=torch.float32)
    angle = pos / (10000.0 ** (j / d_model))
    return _table(angle[:, 0::2], angle[:, 1::2], n_positions, d_model)


@misconception(
    "sinusoidal_encoding",
    en="positions start at 0, not 1: row 0 is sin(0) = 0, cos(0) = 1",
    zh="位置从 0 开始，而不是 1：第 0 行是 sin(0) = 0、cos(0) = 1",
)
def pe_positions_from_one(n_positions, d_model):
    pos = torch.arange(1, n_positions + 1, dtype=torch.float32).unsqueeze(1)
    i2 = torch.arange(0, d_model, 2, dtype=torch.float32)
    angle = pos / (10000.0 ** (i2 / d_model))
    return _table(angle, angle, n_positions, d_model)


# ----------------------------------------------------------------------- apply_rotary
def _rotate(x1, x2, cos, sin):
    return x1 * cos - x2 * sin, x1 * sin + x2 * cos


@misconception(
    "apply_rotary",
    en="you paired neighbouring features (2j, 2j + 1), the GPT-J layout; here feature j "
    "is paired with j + D/2 (rotate-half, GPT-NeoX/Llama)",
    zh="你把相邻特征 (2j, 2j + 1) 配成一对（GPT-J 的布局）；这里特征 j 与 j + D/2 配对（rotate-half，GPT-NeoX/Llama）",
)
def rope_interleaved_pairs(x, base=10000.0):
    t, d = x.shape[-2], x.shape[-1]
    theta = base ** (-torch.arange(0, d // 2, dtype=x.dtype) * 2 / d)
    angle = torch.arange(t, dtype=x.dtype).unsqueeze(1) * theta
    y1, y2 = _rotate(x[..., 0::2], x[..., 1::2], torch.cos(angle), torch.sin(angle))
    return torch.stack([y1, y2], dim=-1).flatten(-2)


@misconception(
    "apply_rotary",
    en="you rotate the wrong way: y_j = x_j cos − x_{j+D/2} sin and "
    "y_{j+D/2} = x_j sin + x_{j+D/2} cos",
    zh="你的旋转方向反了：y_j = x_j cos − x_{j+D/2} sin，y_{j+D/2} = x_j sin + x_{j+D/2} cos",
)
def rope_rotates_backwards(x, base=10000.0):
    t, d = x.shape[-2], x.shape[-1]
    theta = base ** (-torch.arange(0, d // 2, dtype=x.dtype) * 2 / d)
    angle = torch.arange(t, dtype=x.dtype).unsqueeze(1) * theta
    x1, x2 = x[..., : d // 2], x[..., d // 2 :]
    y1, y2 = _rotate(x1, x2, torch.cos(angle), -torch.sin(angle))
    return torch.cat([y1, y2], dim=-1)


@misconception(
    "apply_rotary",
    en="θ_j = base^(−2j/D): you left out the factor 2 in the exponent",
    zh="θ_j = base^(−2j/D)：你漏掉了指数中的因子 2",
)
def rope_theta_without_two(x, base=10000.0):
    t, d = x.shape[-2], x.shape[-1]
    theta = base ** (-torch.arange(0, d // 2, dtype=x.dtype) / d)
    angle = torch.arange(t, dtype=x.dtype).unsqueeze(1) * theta
    x1, x2 = x[..., : d // 2], x[..., d // 2 :]
    return torch.cat(_rotate(x1, x2, torch.cos(angle), torch.sin(angle)), dim=-1)


@misconception(
    "apply_rotary",
    en="you ignored `base`: θ_j = base^(−2j/D) with the base the caller gives",
    zh="你忽略了 `base` 参数：θ_j = base^(−2j/D)，base 由调用者给出",
)
def rope_ignores_base(x, base=10000.0):
    t, d = x.shape[-2], x.shape[-1]
    theta = 10000.0 ** (-torch.arange(0, d // 2, dtype=x.dtype) * 2 / d)
    angle = torch.arange(t, dtype=x.dtype).unsqueeze(1) * theta
    x1, x2 = x[..., : d // 2], x[..., d // 2 :]
    return torch.cat(_rotate(x1, x2, torch.cos(angle), torch.sin(angle)), dim=-1)


@misconception(
    "apply_rotary",
    en="the first row is position 0 (no rotation); your positions start at 1",
    zh="第一行是位置 0（不旋转）；你的位置从 1 开始",
)
def rope_positions_from_one(x, base=10000.0):
    t, d = x.shape[-2], x.shape[-1]
    theta = base ** (-torch.arange(0, d // 2, dtype=x.dtype) * 2 / d)
    angle = torch.arange(1, t + 1, dtype=x.dtype).unsqueeze(1) * theta
    x1, x2 = x[..., : d // 2], x[..., d // 2 :]
    return torch.cat(_rotate(x1, x2, torch.cos(angle), torch.sin(angle)), dim=-1)


# -------------------------------------------------------------------------- repeat_kv
@misconception(
    "repeat_kv",
    en="`x.repeat(1, n_rep, 1, 1)` tiles the heads (0, 1, 0, 1, …); head h must be input "
    "head h // n_rep (0, 0, 1, 1, …): use repeat_interleave or expand on a new axis",
    zh="`x.repeat(1, n_rep, 1, 1)` 是把各头平铺（0, 1, 0, 1, …）；头 h 应是输入的第 h // n_rep 个头（0, 0, 1, 1, …）：请用 repeat_interleave，或在新轴上 expand",
)
def repeat_tiles_heads(x, n_rep):
    return x.repeat(1, n_rep, 1, 1)


@misconception(
    "repeat_kv",
    en="you repeated along the time axis (dim 2); the heads are dim 1",
    zh="你沿时间轴（第 2 维）重复了；头在第 1 维",
)
def repeat_time_axis(x, n_rep):
    return x.repeat_interleave(n_rep, dim=2)


@misconception(
    "repeat_kv",
    en="you stopped at (B, H_kv, n_rep, T, D): merge the two head axes into one, "
    "(B, H_kv·n_rep, T, D)",
    zh="你停在了 (B, H_kv, n_rep, T, D)：要把两个头相关的轴合并成一个，得到 (B, H_kv·n_rep, T, D)",
)
def repeat_without_reshape(x, n_rep):
    b, h_kv, t, d = x.shape
    return x[:, :, None].expand(b, h_kv, n_rep, t, d)

"""Misconceptions of chapter 7's exercises (solutions/07_approximate_attention.py).

Each function is a complete wrong answer a learner really writes; its name is the id.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from attnkit.grading.misconceptions import misconception


# --------------------------------------------------------------- sliding_window_mask
def _offset(n):
    pos = torch.arange(n)
    return pos[None, :] - pos[:, None]  # (n, n): j - i


@misconception(
    "sliding_window_mask",
    en="your causal window looks ahead: a causal query sees itself and the `window` keys "
    "*before* it, 0 ≤ i − j ≤ window",
    zh="你的因果窗口看向了未来：因果查询只能看到自己和它*之前*的 `window` 个键，即 0 ≤ i − j ≤ window",
)
def window_causal_looks_ahead(n, window, causal=False):
    offset = _offset(n)
    lower = 0 if causal else -window
    return (offset >= lower) & (offset <= window)


@misconception(
    "sliding_window_mask",
    en="off by one: the window includes the keys at distance exactly `window` (≤, not <)",
    zh="差一错误：窗口包含距离恰好为 `window` 的键（用 ≤，不是 <）",
)
def window_strict(n, window, causal=False):
    offset = _offset(n)
    upper = 1 if causal else window
    return (offset > -window) & (offset < upper) | (offset == 0)


@misconception(
    "sliding_window_mask",
    en="you ignored `causal`: with causal=True a query may not see the keys after it",
    zh="你忽略了 `causal`：causal=True 时查询不能看到它之后的键",
)
def window_ignores_causal(n, window, causal=False):
    return _offset(n).abs() <= window


@misconception(
    "sliding_window_mask",
    en="`window` is the radius (keys on *each* side), not the total width: |i − j| ≤ window",
    zh="`window` 是半径（*每一侧*的键数），不是总宽度：|i − j| ≤ window",
)
def window_as_total_width(n, window, causal=False):
    offset = _offset(n)
    radius = window // 2
    upper = 0 if causal else radius
    return (offset >= -radius) & (offset <= upper)


@misconception(
    "sliding_window_mask",
    en="your mask is a 0/1 number tensor: return the bool comparison (True = may attend)",
    zh="你的掩码是 0/1 数值张量：请直接返回 bool 比较结果（True = 可以关注）",
)
def window_int_mask(n, window, causal=False):
    offset = _offset(n)
    upper = 0 if causal else window
    return ((offset >= -window) & (offset <= upper)).int()


# -------------------------------------------------------- linformer_attention_simple
@misconception(
    "linformer_attention_simple",
    en="e projects the keys and f the values; you swapped them",
    zh="e 投影键，f 投影值；你把它们弄反了",
)
def linformer_e_f_swapped(q, k, v, e, f):
    scores = q @ (f @ k).transpose(-2, -1) / math.sqrt(q.shape[-1])
    return torch.softmax(scores, dim=-1) @ (e @ v)


@misconception(
    "linformer_attention_simple",
    en="only the keys and values are projected; the n queries stay, so the output has n rows",
    zh="只投影键和值；n 个查询保持不变，所以输出有 n 行",
)
def linformer_projects_queries(q, k, v, e, f):
    scores = (e @ q) @ (e @ k).transpose(-2, -1) / math.sqrt(q.shape[-1])
    return torch.softmax(scores, dim=-1) @ (f @ v)


@misconception(
    "linformer_attention_simple",
    en="you left out the 1/√d scale of the scores",
    zh="你漏掉了分数的 1/√d 缩放",
)
def linformer_no_scale(q, k, v, e, f):
    return torch.softmax(q @ (e @ k).transpose(-2, -1), dim=-1) @ (f @ v)


@misconception(
    "linformer_attention_simple",
    en="the scale is 1/√d with d the feature size of q and k, not 1/√k_proj",
    zh="缩放是 1/√d，d 是 q、k 的特征维度，而不是 1/√k_proj",
)
def linformer_scale_by_k_proj(q, k, v, e, f):
    scores = q @ (e @ k).transpose(-2, -1) / math.sqrt(e.shape[0])
    return torch.softmax(scores, dim=-1) @ (f @ v)


# ---------------------------------------------------------------- random_feature_map
def _wx(x, w):
    return x @ w.transpose(-2, -1)


def _sq(x):
    return x.square().sum(dim=-1, keepdim=True)


@misconception(
    "random_feature_map",
    en="you left out the 1/√m factor: with it, φ(q)·φ(k) averages over the m features",
    zh="你漏掉了 1/√m 因子：有了它，φ(q)·φ(k) 才是在 m 个特征上的平均",
)
def features_no_normalisation(x, w):
    return torch.exp(_wx(x, w) - _sq(x) / 2)


@misconception(
    "random_feature_map",
    en="you left out the −|x|²/2 term: without it φ(q)·φ(k) estimates e^{q·k + |q|²/2 + |k|²/2}",
    zh="你漏掉了 −|x|²/2 这一项：没有它，φ(q)·φ(k) 估计的是 e^{q·k + |q|²/2 + |k|²/2}",
)
def features_without_norm_term(x, w):
    return torch.exp(_wx(x, w)) / math.sqrt(w.shape[0])


@misconception(
    "random_feature_map",
    en="the correction is |x|²/2, half the squared norm; you subtracted all of |x|²",
    zh="修正项是 |x|²/2，即平方范数的一半；你减去了整个 |x|²",
)
def features_full_square(x, w):
    return torch.exp(_wx(x, w) - _sq(x)) / math.sqrt(w.shape[0])


@misconception(
    "random_feature_map",
    en="the correction uses the *squared* norm |x|² (sum of squares), not the norm |x|",
    zh="修正项用的是*平方*范数 |x|²（平方和），而不是范数 |x|",
)
def features_norm_not_squared(x, w):
    return torch.exp(_wx(x, w) - x.norm(dim=-1, keepdim=True) / 2) / math.sqrt(w.shape[0])


@misconception(
    "random_feature_map",
    en="the normalisation is 1/√m (so that the product of two feature vectors gets 1/m), not 1/m",
    zh="归一化因子是 1/√m（这样两个特征向量的乘积得到 1/m），而不是 1/m",
)
def features_divide_by_m(x, w):
    return torch.exp(_wx(x, w) - _sq(x) / 2) / w.shape[0]


# -------------------------------------------------------------- bigbird_block_layout
def _window(n_blocks, radius):
    blocks = torch.arange(n_blocks)
    return (blocks[:, None] - blocks[None, :]).abs() <= radius


@misconception(
    "bigbird_block_layout",
    en="global blocks work both ways: their rows are all True (they attend to every "
    "block) *and* their columns are all True (every block attends to them)",
    zh="全局块是双向的：它们的行全为 True（它们关注所有块），*并且*它们的列也全为 True（所有块都关注它们）",
)
def bigbird_global_rows_only(n_blocks, num_window_blocks, num_global_blocks, random_blocks):
    layout = _window(n_blocks, (num_window_blocks - 1) // 2)
    layout[:num_global_blocks, :] = True
    for i, keys in enumerate(random_blocks):
        layout[i, keys] = True
    return layout


@misconception(
    "bigbird_block_layout",
    en="num_window_blocks is the window's total width (odd): the radius is "
    "(num_window_blocks − 1) / 2 blocks on each side",
    zh="num_window_blocks 是窗口的总宽度（奇数）：每侧的半径是 (num_window_blocks − 1) / 2 个块",
)
def bigbird_window_as_radius(n_blocks, num_window_blocks, num_global_blocks, random_blocks):
    layout = _window(n_blocks, num_window_blocks)
    layout[:num_global_blocks, :] = True
    layout[:, :num_global_blocks] = True
    for i, keys in enumerate(random_blocks):
        layout[i, keys] = True
    return layout


@misconception(
    "bigbird_block_layout",
    en="you left out the random blocks: row i also attends to the key blocks in random_blocks[i]",
    zh="你漏掉了随机块：第 i 行还要关注 random_blocks[i] 中的键块",
)
def bigbird_no_random_blocks(n_blocks, num_window_blocks, num_global_blocks, random_blocks):
    layout = _window(n_blocks, (num_window_blocks - 1) // 2)
    layout[:num_global_blocks, :] = True
    layout[:, :num_global_blocks] = True
    return layout


@misconception(
    "bigbird_block_layout",
    en="random attention is not symmetric: random_blocks[i] adds keys to row i only, "
    "not row j to column i",
    zh="随机注意力不是对称的：random_blocks[i] 只给第 i 行增加键，不会反过来给第 j 行加上第 i 列",
)
def bigbird_random_symmetric(n_blocks, num_window_blocks, num_global_blocks, random_blocks):
    layout = _window(n_blocks, (num_window_blocks - 1) // 2)
    layout[:num_global_blocks, :] = True
    layout[:, :num_global_blocks] = True
    for i, keys in enumerate(random_blocks):
        layout[i, keys] = True
        layout[keys, i] = True
    return layout


# ----------------------------------------------------------- causal_linear_attention
def _phi(x):
    return F.elu(x) + 1


def _linear(phi_q, S, z):
    numerator = (phi_q.unsqueeze(-2) @ S).squeeze(-2)
    return numerator / (phi_q * z).sum(dim=-1, keepdim=True)


@misconception(
    "causal_linear_attention",
    en="you summed over all keys: that is non-causal linear attention; use cumulative "
    "sums (torch.cumsum) so that query i sees only keys j ≤ i",
    zh="你对所有键求和了：这是非因果的线性注意力；请用累积和（torch.cumsum），让查询 i 只看到 j ≤ i 的键",
)
def linear_not_causal(q, k, v):
    phi_q, phi_k = _phi(q), _phi(k)
    S = (phi_k.unsqueeze(-1) * v.unsqueeze(-2)).sum(dim=-3, keepdim=True)
    z = phi_k.sum(dim=-2, keepdim=True)
    return _linear(phi_q, S, z)


@misconception(
    "causal_linear_attention",
    en="the cumulative sums run over the positions (dim −3 for S, −2 for z), not over the features",
    zh="累积和要沿位置维度求（S 是 dim −3，z 是 dim −2），而不是沿特征维度",
)
def linear_cumsum_over_features(q, k, v):
    phi_q, phi_k = _phi(q), _phi(k)
    S = torch.cumsum(phi_k.unsqueeze(-1) * v.unsqueeze(-2), dim=-2)
    z = torch.cumsum(phi_k, dim=-1)
    return _linear(phi_q, S, z)


@misconception(
    "causal_linear_attention",
    en="you left out the normaliser φ(q_i)·z_i: without it the weights of a query do not sum to 1",
    zh="你漏掉了归一化项 φ(q_i)·z_i：没有它，一个查询的权重之和不为 1",
)
def linear_no_denominator(q, k, v):
    phi_q, phi_k = _phi(q), _phi(k)
    S = torch.cumsum(phi_k.unsqueeze(-1) * v.unsqueeze(-2), dim=-3)
    return (phi_q.unsqueeze(-2) @ S).squeeze(-2)


@misconception(
    "causal_linear_attention",
    en="the feature map is elu(x) + 1 (always positive); plain elu(x) can be negative and "
    "the normaliser can cross zero",
    zh="特征映射是 elu(x) + 1（恒为正）；单纯的 elu(x) 可能为负，归一化项可能经过 0",
)
def linear_elu_without_one(q, k, v):
    phi_q, phi_k = F.elu(q), F.elu(k)
    S = torch.cumsum(phi_k.unsqueeze(-1) * v.unsqueeze(-2), dim=-3)
    return _linear(phi_q, S, torch.cumsum(phi_k, dim=-2))


@misconception(
    "causal_linear_attention",
    en="query i also sees key i itself: the sums run over j ≤ i (an inclusive cumsum), not j < i",
    zh="查询 i 也能看到键 i 本身：求和范围是 j ≤ i（包含自身的 cumsum），而不是 j < i",
)
def linear_exclusive_cumsum(q, k, v):
    phi_q, phi_k = _phi(q), _phi(k)
    kv = phi_k.unsqueeze(-1) * v.unsqueeze(-2)
    S = torch.cumsum(kv, dim=-3) - kv
    z = torch.cumsum(phi_k, dim=-2) - phi_k
    return _linear(phi_q, S, z)

"""Misconceptions of chapter 9's exercises (the Vision Transformer).

Each function is a complete wrong answer that learners really write; the grader must fail
it, and the report names it from the message below (see ``attnkit.grading.misconceptions``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attnkit.grading.misconceptions import misconception
from attnkit.models.vit import patchify, unpatchify


# ------------------------------------------------------------------- patchify_images
@misconception(
    "patchify_images",
    en="your patches are rows of the raw pixel buffer: a reshape straight to (B, N, C p p) "
    "without the permute does not cut p x p blocks.",
    zh="你的图像块其实是像素缓冲区里连续的一段：直接 reshape 成 (B, N, C p p) 而不先 permute，"
    "切出来的并不是 p x p 的方块。",
)
def reshape_without_permute(images, patch_size):
    B, C, H, W = images.shape
    p = patch_size
    return images.reshape(B, (H // p) * (W // p), C * p * p)


@misconception(
    "patchify_images",
    en="each patch is flattened in (p, p, C) order (channels last), but the exercise asks "
    "for (C, p, p), as patch.flatten() of a channels-first block.",
    zh="每个图像块按 (p, p, C)（通道在最后）展平了，但题目要求 (C, p, p) 的顺序，"
    "即通道优先的块直接 flatten()。",
)
def channels_last_flatten(images, patch_size):
    B, C, H, W = images.shape
    p = patch_size
    x = images.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(B, (H // p) * (W // p), C * p * p)


@misconception(
    "patchify_images",
    en="your patches are numbered column by column (top to bottom first); reading order "
    "is left to right, then top to bottom.",
    zh="你的图像块是按列编号的（先从上到下）；阅读顺序应是先从左到右，再从上到下。",
)
def column_major_patches(images, patch_size):
    B, C, H, W = images.shape
    p = patch_size
    x = images.reshape(B, C, H // p, p, W // p, p).permute(0, 4, 2, 1, 3, 5)
    return x.reshape(B, (H // p) * (W // p), C * p * p)


@misconception(
    "patchify_images",
    en="you split H into (p, H/p) instead of (H/p, p): each 'patch' gathers pixels p rows "
    "apart, a strided grid, not a contiguous block.",
    zh="你把 H 拆成了 (p, H/p) 而不是 (H/p, p)：每个“图像块”取的是相隔若干行的像素，是跨步网格，"
    "不是连续的方块。",
)
def strided_not_blocked(images, patch_size):
    B, C, H, W = images.shape
    p = patch_size
    x = images.reshape(B, C, p, H // p, p, W // p).permute(0, 3, 5, 1, 2, 4)
    return x.reshape(B, (H // p) * (W // p), C * p * p)


@misconception(
    "patchify_images",
    en="F.unfold returns (B, C p p, N): you forgot to transpose the last two dimensions.",
    zh="F.unfold 返回的是 (B, C p p, N)：你忘了交换最后两个维度。",
)
def unfold_without_transpose(images, patch_size):
    return F.unfold(images, kernel_size=patch_size, stride=patch_size)


# --------------------------------------------------------------------- embed_patches
@misconception(
    "embed_patches",
    en="the class token gets no position embedding: E_pos has 1 + N rows and row 0 belongs "
    "to x_class.",
    zh="类别 token 没有加位置编码：E_pos 有 1 + N 行，第 0 行属于 x_class。",
)
def class_token_without_position(patches, weight, bias, cls_token, pos_embed):
    x = patches @ weight.T + bias + pos_embed[:, 1:]
    return torch.cat([cls_token.expand(x.shape[0], -1, -1), x], dim=1)


@misconception(
    "embed_patches",
    en="the class token must come first (position 0), not after the patches.",
    zh="类别 token 应放在最前面（位置 0），而不是放在图像块之后。",
)
def class_token_last(patches, weight, bias, cls_token, pos_embed):
    x = patches @ weight.T + bias
    return torch.cat([x, cls_token.expand(x.shape[0], -1, -1)], dim=1) + pos_embed


@misconception(
    "embed_patches",
    en="the projection has a bias: x_p E = x_p weight^T + bias, as in nn.Linear.",
    zh="线性投影带有偏置：x_p E = x_p weight^T + bias，与 nn.Linear 的约定相同。",
)
def projection_without_bias(patches, weight, bias, cls_token, pos_embed):
    x = patches @ weight.T
    return torch.cat([cls_token.expand(x.shape[0], -1, -1), x], dim=1) + pos_embed


@misconception(
    "embed_patches",
    en="cls_token is (1, 1, D): expand it to (B, 1, D) before concatenating with a batch of "
    "B images.",
    zh="cls_token 的形状是 (1, 1, D)：与 B 张图像拼接前要先 expand 成 (B, 1, D)。",
)
def class_token_not_expanded(patches, weight, bias, cls_token, pos_embed):
    x = patches @ weight.T + bias
    return torch.cat([cls_token, x], dim=1) + pos_embed


# ------------------------------------------------------------------- shuffle_patches
@misconception(
    "shuffle_patches",
    en="you moved patch n to position perm[n]; the exercise asks the opposite: position n "
    "receives patch perm[n] (a gather, not a scatter).",
    zh="你把第 n 块移到了位置 perm[n]；题目要求相反：位置 n 放入第 perm[n] 块（是 gather，不是 "
    "scatter）。",
)
def scatter_instead_of_gather(images, perm, patch_size):
    _, C, H, W = images.shape
    patches = patchify(images, patch_size)
    out = torch.empty_like(patches)
    out[:, perm] = patches
    return unpatchify(out, patch_size, (H, W), C)


@misconception(
    "shuffle_patches",
    en="you indexed the batch dimension with perm: patches are dimension 1 of (B, N, C p p).",
    zh="你用 perm 索引了 batch 维：图像块在 (B, N, C p p) 的第 1 维。",
)
def permute_batch_axis(images, perm, patch_size):
    _, C, H, W = images.shape
    patches = patchify(images, patch_size)
    return unpatchify(patches[perm], patch_size, (H, W), C)


@misconception(
    "shuffle_patches",
    en="a plain reshape of the shuffled patches back to (B, C, H, W) does not put the "
    "blocks back in place: undo patchify with the inverse permute (or unpatchify).",
    zh="把打乱后的图像块直接 reshape 回 (B, C, H, W) 并不能把方块放回原位：要用相反的 permute（或 "
    "unpatchify）还原。",
)
def reshape_back_without_permute(images, perm, patch_size):
    patches = patchify(images, patch_size)
    return patches[:, perm].reshape(images.shape)


# ---------------------------------------------------------------------------- rollout
@misconception(
    "rollout",
    en="the product is in the wrong order: the last layer multiplies on the left, Ã_L ... Ã_2 Ã_1.",
    zh="连乘的顺序反了：最后一层应乘在左边，即 Ã_L ... Ã_2 Ã_1。",
)
def first_layer_on_the_left(attentions):
    result = None
    for weights in attentions:
        a = 0.5 * weights.mean(dim=1) + 0.5 * torch.eye(weights.shape[-1], dtype=weights.dtype)
        result = a if result is None else result @ a
    return result


@misconception(
    "rollout",
    en="you left out the residual connection: each layer is ½ A + ½ I, not A alone.",
    zh="你漏掉了残差连接：每一层应是 ½ A + ½ I，而不只是 A。",
)
def no_residual_identity(attentions):
    result = None
    for weights in attentions:
        a = weights.mean(dim=1)
        result = a if result is None else a @ result
    return result


@misconception(
    "rollout",
    en="you summed the heads instead of averaging them, so the rows no longer sum to 1.",
    zh="你把各个头相加而不是取平均，结果每一行的和不再是 1。",
)
def heads_summed(attentions):
    result = None
    for weights in attentions:
        a = 0.5 * weights.sum(dim=1) + 0.5 * torch.eye(weights.shape[-1], dtype=weights.dtype)
        result = a if result is None else a @ result
    return result


@misconception(
    "rollout",
    en="you fused the heads with their maximum; the exercise averages them (head mean).",
    zh="你用最大值融合了各个头；题目要求对头取平均。",
)
def heads_max_fusion(attentions):
    result = None
    for weights in attentions:
        a = 0.5 * weights.amax(dim=1) + 0.5 * torch.eye(weights.shape[-1], dtype=weights.dtype)
        result = a if result is None else a @ result
    return result


# ---------------------------------------------------------------------- shift_digits
@misconception(
    "shift_digits",
    en="torch.roll wraps the pixels that leave one side around to the other; the "
    "uncovered border must be zeros.",
    zh="torch.roll 会把移出一侧的像素绕回到另一侧；空出来的边缘应填 0。",
)
def roll_wraps_around(images, shifts):
    out = torch.empty_like(images)
    for b in range(images.shape[0]):
        dy, dx = int(shifts[b, 0]), int(shifts[b, 1])
        out[b] = torch.roll(images[b], shifts=(dy, dx), dims=(1, 2))
    return out


@misconception(
    "shift_digits",
    en="dy and dx are swapped: shifts[b] = (dy, dx) moves rows by dy (dimension H) and "
    "columns by dx (dimension W).",
    zh="dy 和 dx 用反了：shifts[b] = (dy, dx) 中 dy 移动行（H 维），dx 移动列（W 维）。",
)
def dy_dx_swapped(images, shifts):
    return _shift(images, shifts[:, [1, 0]])


@misconception(
    "shift_digits",
    en="the content moves the wrong way: out[i, j] = images[i - dy, j - dx], so a positive "
    "dy moves it down and a positive dx to the right.",
    zh="移动方向反了：out[i, j] = images[i - dy, j - dx]，正的 dy 向下移，正的 dx 向右移。",
)
def shift_direction_inverted(images, shifts):
    return _shift(images, -shifts)


@misconception(
    "shift_digits",
    en="your function writes the shifted pixels into the input images: build a new tensor "
    "(torch.zeros_like) and leave the input unchanged.",
    zh="你的函数把平移后的像素写回了输入图像：应新建张量（torch.zeros_like），不要修改输入。",
)
def shifts_in_place(images, shifts):
    shifted = _shift(images, shifts)
    images.copy_(shifted)
    return images


def _shift(images, shifts):
    """Correct zero-filled shift, used by the misconceptions above with altered shifts."""
    B, _, H, W = images.shape
    out = torch.zeros_like(images)
    for b in range(B):
        dy, dx = int(shifts[b, 0]), int(shifts[b, 1])
        rows_out, rows_in = slice(max(dy, 0), min(H + dy, H)), slice(max(-dy, 0), min(H - dy, H))
        cols_out, cols_in = slice(max(dx, 0), min(W + dx, W)), slice(max(-dx, 0), min(W - dx, W))
        if rows_out.start < rows_out.stop and cols_out.start < cols_out.stop:
            out[b, :, rows_out, cols_out] = images[b, :, rows_in, cols_in]
    return out

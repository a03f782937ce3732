"""Grader for chapter 9's exercises (the Vision Transformer).

Each exercise is checked against attnkit *and* against an independent reference written
here: explicit loops over patches and pixels, a ``Conv2d`` with kernel size and stride
``p``, the input captured from attnkit's ViT encoder, ``torch.roll`` on padded images, and
rollouts multiplied out by hand. Every test calls the learner's function, so every test
fails on the untouched exercise file.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from attnkit.grading import require
from attnkit.models.vit import ViT, ViTConfig, attention_rollout, patchify
from attnkit.vision import shift_images

CHAPTER = "09"
ex = pytest.mark.exercise


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _rand(*shape: int, seed: int) -> torch.Tensor:
    return torch.rand(*shape, generator=_gen(seed), dtype=torch.float64)


def _loop_patches(images: torch.Tensor, p: int) -> torch.Tensor:
    """Reference: patches cut one by one in reading order, each block flattened."""
    B, _, H, W = images.shape
    rows = []
    for b in range(B):
        rows.append(
            torch.stack(
                [
                    images[b, :, i : i + p, j : j + p].flatten()
                    for i in range(0, H, p)
                    for j in range(0, W, p)
                ]
            )
        )
    return torch.stack(rows)  # (B, N, C p p)


# ------------------------------------------------------------------- patchify_images
@ex("patchify_images")
@pytest.mark.parametrize(
    "shape,p", [((1, 1, 4, 4), 2), ((2, 1, 8, 8), 2), ((3, 3, 6, 9), 3), ((2, 2, 4, 4), 4)]
)
def test_patchify_images_matches_loop_and_attnkit(learner, shape, p):
    images = _rand(*shape, seed=1)
    got = require(learner, "patchify_images")(images, p)
    want = _loop_patches(images, p)
    B, C, H, W = shape
    assert got.shape == (B, (H // p) * (W // p), C * p * p), (
        f"expected shape (B, N, C p p) = {tuple(want.shape)}, got {tuple(got.shape)}"
    )
    assert torch.equal(got, want), (
        "patch n must be the block at patch-row n // (W / p), patch-column n % (W / p), "
        "flattened in (C, p, p) order"
    )
    assert torch.equal(got, patchify(images, p))


@ex("patchify_images")
def test_patchify_images_patch_size_one_and_conv(learner):
    fn = require(learner, "patchify_images")
    images = _rand(2, 3, 5, 5, seed=2)
    got = fn(images, 1)
    assert torch.equal(got, images.flatten(2).transpose(1, 2)), (
        "with patch_size=1 every pixel is a patch of C values, in reading order"
    )
    x = _rand(2, 2, 8, 8, seed=3)
    w = _rand(7, 2, 4, 4, seed=4)
    conv = F.conv2d(x, w, stride=4).flatten(2).transpose(1, 2)  # (2, 4, 7)
    assert_close(
        fn(x, 4) @ w.reshape(7, -1).T, conv, msg="patches @ W^T must equal a stride-p conv"
    )


# --------------------------------------------------------------------- embed_patches
def _encoder_input(vit: ViT, images: torch.Tensor) -> torch.Tensor:
    captured = []
    hook = vit.encoder.register_forward_pre_hook(lambda m, args: captured.append(args[0]))
    try:
        with torch.no_grad():
            vit(images)
    finally:
        hook.remove()
    return captured[0]


@ex("embed_patches")
@pytest.mark.parametrize("image_size,p,c,d", [(8, 2, 1, 16), (8, 4, 3, 12), (6, 3, 2, 8)])
def test_embed_patches_matches_vit_encoder_input(learner, image_size, p, c, d):
    torch.manual_seed(5)
    vit = ViT(ViTConfig(image_size, p, c, d, 2, 1, 16, 3)).double().eval()
    with torch.no_grad():  # non-trivial class token and positions
        vit.cls_token.normal_()
        vit.pos_embed.normal_()
    images = _rand(4, c, image_size, image_size, seed=6)
    proj = vit.patch_embed.proj
    got = require(learner, "embed_patches")(
        patchify(images, p), proj.weight.reshape(d, -1), proj.bias, vit.cls_token, vit.pos_embed
    )
    want = _encoder_input(vit, images)
    assert got.shape == want.shape, f"expected shape (B, 1 + N, D) = {tuple(want.shape)}"
    assert_close(got, want, msg="z_0 = [x_class; x_p E] + E_pos, the input of the ViT encoder")


@ex("embed_patches")
def test_embed_patches_by_hand(learner):
    fn = require(learner, "embed_patches")
    B, N, P, D = 3, 5, 4, 6
    patches, weight = _rand(B, N, P, seed=7), _rand(D, P, seed=8)
    bias, cls, pos = _rand(D, seed=9), _rand(1, 1, D, seed=10), _rand(1, 1 + N, D, seed=11)
    got = fn(patches, weight, bias, cls, pos)
    assert got.shape == (B, 1 + N, D), f"expected shape {(B, 1 + N, D)}, got {tuple(got.shape)}"
    for b in range(B):
        assert_close(got[b, 0], cls[0, 0] + pos[0, 0], msg="token 0 is x_class + E_pos[0]")
        for n in range(N):
            want = weight @ patches[b, n] + bias + pos[0, 1 + n]
            assert_close(got[b, 1 + n], want, msg="token 1 + n is x_p^n W^T + b + E_pos[1 + n]")
    zero = fn(patches, weight, bias, torch.zeros_like(cls), torch.zeros_like(pos))
    assert_close(zero[:, 1:], patches @ weight.T + bias)


# ------------------------------------------------------------------- shuffle_patches
@ex("shuffle_patches")
@pytest.mark.parametrize("shape,p,seed", [((2, 1, 8, 8), 2, 0), ((1, 3, 6, 9), 3, 1)])
def test_shuffle_patches_moves_each_patch(learner, shape, p, seed):
    images = _rand(*shape, seed=12)
    _, _, H, W = shape
    n = (H // p) * (W // p)
    perm = torch.randperm(n, generator=_gen(seed))
    got = require(learner, "shuffle_patches")(images, perm, p)
    assert got.shape == images.shape, "the shuffled images keep the shape (B, C, H, W)"
    gw = W // p
    for k in range(n):  # target patch k is source patch perm[k]
        src = int(perm[k])
        ti, tj = divmod(k, gw)
        si, sj = divmod(src, gw)
        assert torch.equal(
            got[:, :, ti * p : (ti + 1) * p, tj * p : (tj + 1) * p],
            images[:, :, si * p : (si + 1) * p, sj * p : (sj + 1) * p],
        ), f"patch {k} of the result must be patch perm[{k}] = {src} of the input"


@ex("shuffle_patches")
def test_shuffle_patches_identity_inverse_and_vit(learner):
    fn = require(learner, "shuffle_patches")
    images = _rand(3, 1, 8, 8, seed=13)
    assert torch.equal(fn(images, torch.arange(16), 2), images), "the identity permutation"
    perm = torch.randperm(16, generator=_gen(2))
    back = fn(fn(images, perm, 2), torch.argsort(perm), 2)
    assert torch.equal(back, images), "shuffling by perm then by its inverse must undo it"
    torch.manual_seed(0)
    vit = ViT(ViTConfig(8, 2, 1, 16, 2, 2, 32, 10)).double().eval()
    with torch.no_grad():
        vit.pos_embed.zero_()
        assert_close(vit(fn(images, perm, 2)), vit(images))


# ---------------------------------------------------------------------------- rollout
def _attentions(layers, heads, B, T, seed):
    g = _gen(seed)
    return [
        torch.softmax(torch.randn(B, h, T, T, generator=g, dtype=torch.float64) * 2, dim=-1)
        for h in heads[:layers]
    ]


@ex("rollout")
@pytest.mark.parametrize(
    "layers,heads,B,T",
    [(1, (1,), 1, 1), (1, (3,), 2, 5), (3, (2, 4, 1), 2, 7), (4, (4,) * 4, 1, 17)],
)
def test_rollout_matches_attnkit_and_hand_product(learner, layers, heads, B, T):
    attns = _attentions(layers, heads, B, T, seed=14)
    got = require(learner, "rollout")(attns)
    want = torch.eye(T, dtype=torch.float64).expand(B, T, T)
    for w in attns:  # by hand: head average, half identity, last layer on the left
        want = (0.5 * w.mean(1) + 0.5 * torch.eye(T, dtype=torch.float64)) @ want
    assert got.shape == (B, T, T), f"expected shape {(B, T, T)}, got {tuple(got.shape)}"
    assert_close(got, want, msg="rollout = (A_L/2 + I/2) ... (A_1/2 + I/2), heads averaged")
    assert_close(got, attention_rollout(attns, head_fusion="mean", residual=True))


@ex("rollout")
def test_rollout_order_matters_and_rows_sum_to_one(learner):
    fn = require(learner, "rollout")
    attns = _attentions(2, (2, 2), 1, 4, seed=15)
    got = fn(attns)
    assert_close(got.sum(-1), torch.ones(1, 4, dtype=torch.float64), msg="rows must sum to 1")
    a1 = 0.5 * attns[0].mean(1) + 0.5 * torch.eye(4, dtype=torch.float64)
    a2 = 0.5 * attns[1].mean(1) + 0.5 * torch.eye(4, dtype=torch.float64)
    assert_close(got, a2 @ a1, msg="the last layer multiplies on the left: A_2 A_1, not A_1 A_2")
    assert not torch.allclose(a1 @ a2, a2 @ a1)  # the test can tell the order apart


# ---------------------------------------------------------------------- shift_digits
def _loop_shift(images, shifts):
    out = torch.zeros_like(images)
    B, _, H, W = images.shape
    for b in range(B):
        dy, dx = int(shifts[b, 0]), int(shifts[b, 1])
        for i in range(H):
            for j in range(W):
                if 0 <= i - dy < H and 0 <= j - dx < W:
                    out[b, :, i, j] = images[b, :, i - dy, j - dx]
    return out


@ex("shift_digits")
@pytest.mark.parametrize(
    "shape,max_shift", [((1, 1, 1, 1), 1), ((6, 1, 8, 8), 3), ((4, 2, 5, 7), 8)]
)
def test_shift_digits_matches_loop_and_attnkit(learner, shape, max_shift):
    images = _rand(*shape, seed=16)
    shifts = torch.randint(-max_shift, max_shift + 1, (shape[0], 2), generator=_gen(17))
    got = require(learner, "shift_digits")(images, shifts)
    assert got.shape == images.shape, "the shifted images keep the shape (B, C, H, W)"
    assert torch.equal(got, _loop_shift(images, shifts)), (
        "out[b, :, i, j] = images[b, :, i - dy, j - dx] where that pixel exists, else 0"
    )
    assert torch.equal(got, shift_images(images, shifts))


@ex("shift_digits")
def test_shift_digits_edges(learner):
    fn = require(learner, "shift_digits")
    images = _rand(4, 1, 6, 6, seed=18)
    shifts = torch.tensor([[0, 0], [2, -1], [-6, 0], [0, 9]])
    got = fn(images, shifts)
    assert torch.equal(got[0], images[0]), "a (0, 0) shift changes nothing"
    padded = F.pad(images[1], (6, 6, 6, 6))  # zeros around: roll cannot wrap into the image
    rolled = torch.roll(padded, shifts=(2, -1), dims=(1, 2))[:, 6:12, 6:12]
    assert torch.equal(got[1], rolled), "positive dy moves the content down, negative dx left"
    assert got[2:].abs().sum() == 0, "a shift of the whole height or width leaves only zeros"
    assert torch.equal(images, _rand(4, 1, 6, 6, seed=18)), "do not modify the input images"

# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercises: the Vision Transformer
#
# Five small functions, one for each idea of chapter 9: cutting an image into patches, the
# embedding equation with its class token and position embeddings, shuffling patches (and
# what a ViT without position embeddings makes of it), attention rollout, and the pixel
# shifts used as augmentation. Replace each `raise NotImplementedError(...)` with your code,
# then run the check cell after it (marked `# NBVAL_CHECK_OUTPUT`); its output must match
# what is stored under it. Grade the chapter from the repository root with
#
# ```bash
# .venv/bin/python -m attnkit.grade 09
# ```
#
# The grader loads only your `def`s and imports, tests each function on several inputs
# against attnkit and against independent references, then runs this notebook and compares
# the check cells. Conventions, as in the chapter: images are channels-first
# `(B, C, H, W)`; patches are numbered in reading order (left to right, then top to bottom)
# and each is flattened in the order `(C, p, p)`.

# %%
import torch

from attnkit.models.vit import ViT, ViTConfig, attention_rollout, patchify, unpatchify
from attnkit.vision import shift_images

torch.set_printoptions(precision=4, sci_mode=False)

# %% [markdown]
# ## Exercise 1: patches
#
# Write `patchify_images(images, patch_size)`: cut `images` `(B, C, H, W)` into
# non-overlapping `p x p` patches (`p = patch_size` divides `H` and `W`) and return them
# flattened, `(B, N, C p p)` with `N = (H / p) (W / p)`:
#
# - patch `n` is the one at patch-row `n // (W / p)` and patch-column `n % (W / p)`;
# - inside a patch, the values are in the order channel, then pixel row, then pixel column
#   (`patch.flatten()` of a `(C, p, p)` block).
#
# Use `reshape` and `permute` only (no loop). Hint: `(B, C, H, W)` is
# `(B, C, H/p, p, W/p, p)`.


# %%
def patchify_images(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, N, C p p): flattened p x p patches in reading order."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %% [markdown]
# The check cuts a 4x4 image whose pixel values are their own positions, then compares with
# attnkit's `patchify` on a batch of 2-channel rectangular images.

# %%
# NBVAL_CHECK_OUTPUT
image = torch.arange(16.0).reshape(1, 1, 4, 4)
print(patchify_images(image, 2))
g = torch.Generator().manual_seed(0)
x = torch.randn(3, 2, 6, 9, generator=g)
print(
    tuple(patchify_images(x, 3).shape),
    "== attnkit:",
    torch.equal(patchify_images(x, 3), patchify(x, 3)),
)

# %% [markdown]
# ## Exercise 2: the embedding equation
#
# Write `embed_patches(patches, weight, bias, cls_token, pos_embed)`, equation 1 of the ViT:
#
# $$
# z_0 = [\,x_\text{class};\; x_p^1 E;\; \dots;\; x_p^N E\,] + E_\text{pos} .
# $$
#
# - `patches`: `(B, N, P)` (from exercise 1, `P = C p p`);
# - `weight` `(D, P)` and `bias` `(D,)`: the linear projection, `x_p E = x_p weight^T + bias`
#   (the convention of `nn.Linear`);
# - `cls_token`: `(1, 1, D)`, the same for every image; `pos_embed`: `(1, 1 + N, D)`.
#
# Return `(B, 1 + N, D)`: the class token first, then the projected patches, plus the
# position embeddings.


# %%
def embed_patches(
    patches: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    cls_token: torch.Tensor,
    pos_embed: torch.Tensor,
) -> torch.Tensor:
    """ViT eq. 1: (B, N, P) patches -> (B, 1 + N, D) tokens with class token and positions."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %% [markdown]
# The check takes a ViT from attnkit, captures what enters its encoder (a forward
# pre-hook), and rebuilds it from the ViT's own parameters with your function.

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
config = ViTConfig(8, 2, 1, 16, 2, 1, 32, 10)
vit = ViT(config).eval()
images = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(1))
captured = []
hook = vit.encoder.register_forward_pre_hook(lambda module, args: captured.append(args[0]))
with torch.no_grad():
    vit(images)
hook.remove()
proj = vit.patch_embed.proj
z0 = embed_patches(
    patchify(images, 2), proj.weight.reshape(16, -1), proj.bias, vit.cls_token, vit.pos_embed
)
print(
    tuple(z0.shape),
    "== the input of attnkit's encoder:",
    torch.allclose(z0, captured[0], atol=1e-6),
)
print("class token identical for all images:", torch.allclose(z0[:, 0], z0[:1, 0].expand(5, -1)))

# %% [markdown]
# ## Exercise 3: shuffling patches
#
# Write `shuffle_patches(images, perm, patch_size)`: return images of the same shape whose
# patch `n` is patch `perm[n]` of the input (`perm` is a permutation of `0, ..., N-1`, a
# `torch.long` tensor). Patches are numbered as in exercise 1; attnkit's `patchify` and
# `unpatchify` are imported for you.


# %%
def shuffle_patches(images: torch.Tensor, perm: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H, W) whose patch n is patch perm[n] of images."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %% [markdown]
# The check shuffles the 4x4 image of exercise 1, then shows the chapter's point: a ViT
# whose position embeddings are zero gives the same logits for an image and its shuffled
# version; with position embeddings the logits change.

# %%
# NBVAL_CHECK_OUTPUT
print(shuffle_patches(torch.arange(16.0).reshape(1, 1, 4, 4), torch.tensor([3, 2, 1, 0]), 2))
torch.manual_seed(0)
vit = ViT(ViTConfig(8, 2, 1, 16, 2, 2, 32, 10)).eval()
images = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(2))
perm = torch.randperm(16, generator=torch.Generator().manual_seed(3))
shuffled = shuffle_patches(images, perm, 2)
with torch.no_grad():
    print("with E_pos, same logits:", torch.allclose(vit(shuffled), vit(images), atol=1e-5))
    vit.pos_embed.zero_()
    print("E_pos = 0, same logits:", torch.allclose(vit(shuffled), vit(images), atol=1e-5))

# %% [markdown]
# ## Exercise 4: attention rollout
#
# Write `rollout(attentions)`: attention rollout {cite:p}`abnar2020quantifying` from a list
# of per-layer attention weights `(B, H, T, T)` (first layer first; rows sum to 1):
#
# 1. average the heads of each layer: $A_\ell$ `(B, T, T)`;
# 2. account for the residual connection: $\tilde A_\ell = \tfrac12 A_\ell + \tfrac12 I$;
# 3. multiply, last layer on the left: $\tilde A_L \cdots \tilde A_2 \tilde A_1$.
#
# Return `(B, T, T)`. Layers may have different numbers of heads.


# %%
def rollout(attentions: list[torch.Tensor]) -> torch.Tensor:
    """Attention rollout: product of the head-averaged, residual-corrected layers (B, T, T)."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %% [markdown]
# The check: one uniform layer over 3 tokens by hand, then the attention of a random ViT
# compared with attnkit's `attention_rollout`.

# %%
# NBVAL_CHECK_OUTPUT
print(rollout([torch.full((1, 1, 3, 3), 1 / 3, dtype=torch.float64)]))
torch.manual_seed(0)
vit = ViT(ViTConfig(8, 2, 1, 16, 2, 3, 32, 10)).eval()
with torch.no_grad():
    _, attns = vit(
        torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(4)), return_attention=True
    )
r = rollout(attns)
print(tuple(r.shape), "rows sum to 1:", torch.allclose(r.sum(-1), torch.ones(2, 17)))
print("== attnkit:", torch.allclose(r, attention_rollout(attns), atol=1e-6))

# %% [markdown]
# ## Exercise 5: shifting digits
#
# Write `shift_digits(images, shifts)`: translate each image by whole pixels, filling the
# uncovered border with zeros (the background):
#
# $$
# \text{out}[b, c, i, j] = \begin{cases} \text{images}[b, c, i - dy_b, j - dx_b] &
# \text{if that pixel exists,} \\ 0 & \text{otherwise,} \end{cases}
# $$
#
# where `shifts[b] = (dy_b, dx_b)` (`shifts` is a `(B, 2)` integer tensor; positive `dy`
# moves the content down, positive `dx` to the right; a shift may exceed the image, then
# the result is all zeros). A loop over the batch is fine; `torch.roll` is not enough on its
# own (it wraps around).


# %%
def shift_digits(images: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Translate each image (B, C, H, W) by shifts[b] = (dy, dx) pixels, zero fill."""
    raise NotImplementedError("Exercise: replace this line with your code.")


# %% [markdown]
# The check shifts a 4x4 image three ways and compares with attnkit's `shift_images` on a
# batch of random images and shifts.

# %%
# NBVAL_CHECK_OUTPUT
image = torch.arange(1.0, 17.0).reshape(1, 1, 4, 4).expand(3, 1, 4, 4)
print(shift_digits(image, torch.tensor([[1, 0], [0, -2], [-1, 1]])))
g = torch.Generator().manual_seed(5)
x = torch.rand(16, 2, 8, 8, generator=g)
s = torch.randint(-9, 10, (16, 2), generator=g)
print("== attnkit's shift_images:", torch.equal(shift_digits(x, s), shift_images(x, s)))

# %% [markdown]
# ## Done?
#
# Run `python -m attnkit.grade 09`. Then look back at chapter 9: exercises 1 and 2 are the
# whole difference between a ViT and the text Transformers of the earlier chapters,
# exercise 3 is why position embeddings are not optional, and exercise 4 is the arithmetic
# behind the rollout pictures.

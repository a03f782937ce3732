"""The Vision Transformer (Dosovitskiy et al., 2021, "An Image is Worth 16x16 Words").

An image is cut into ``N = (H / p) (W / p)`` non-overlapping ``p x p`` patches; each patch is
flattened and linearly projected to ``d_model`` (section 3.1, eq. 1), a learned class token
is prepended, learned position embeddings for the ``1 + N`` positions are added, and a
pre-LN Transformer encoder (LayerNorm before each sublayer, exact GELU in the MLP, eq. 2-3)
runs over the sequence. A final LayerNorm and a linear head on the class token give the
logits (eq. 4).

* :func:`patchify` / :func:`unpatchify`: images ``(B, C, H, W)`` <-> patches ``(B, N, C p p)``.
* :class:`ViTConfig`, :class:`PatchEmbedding`, :class:`ViT`.
* :func:`.attention_rollout` (defined in :mod:`attnkit.interpret`, re-exported here),
  :func:`cls_rollout_map`: where the class token "looks"
  (Abnar & Zuidema, 2020, "Quantifying Attention Flow in Transformers").
* :func:`load_hf_vit_state_dict`: load a Hugging Face ``ViTModel`` /
  ``ViTForImageClassification`` state dict (outputs agree to float rounding; tested).

Conventions: batch-first; images are channels-first ``(B, C, H, W)``; patches are numbered
row-major (left to right, then top to bottom), and each patch is flattened in the order
``(C, p, p)``, the order of a ``Conv2d(kernel_size=p, stride=p)``'s weight.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .._validate import (
    check_floating,
    check_images,
    check_module_dtype,
    check_positive_int,
    check_probability,
    check_tensor,
    fmt_shape,
)
from ..interpret import HEAD_FUSIONS, attention_rollout  # noqa: F401 (re-exported)
from ..transformer import TransformerEncoder, TransformerEncoderLayer

# ----------------------------------------------------------------------------- patches


def _pair(size: object, name: str) -> tuple[int, int]:
    """An int ``s`` -> ``(s, s)``; a pair of ints -> itself."""
    if isinstance(size, (tuple, list)) and len(size) == 2:
        return check_positive_int(size[0], name), check_positive_int(size[1], name)
    s = check_positive_int(size, name)
    return s, s


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut images into flattened, non-overlapping patches (ViT section 3.1).

    Args:
        images: ``(B, C, H, W)``, floating; ``H`` and ``W`` divisible by ``patch_size``.
        patch_size: ``p``.

    Returns:
        ``(B, N, C p p)`` with ``N = (H / p) (W / p)``: patch ``n`` is the one at row
        ``n // (W / p)``, column ``n % (W / p)``, flattened in ``(C, p, p)`` order (as a
        ``Conv2d(kernel_size=p, stride=p)`` weight).
    """
    images = check_images(images)
    p = check_positive_int(patch_size, "patch_size")
    B, C, H, W = images.shape
    if H % p or W % p:
        raise ValueError(
            f"images of height {H} and width {W} cannot be cut into {p}x{p} patches: "
            f"H and W must be divisible by patch_size={p}."
        )
    gh, gw = H // p, W // p
    x = images.reshape(B, C, gh, p, gw, p)  # (B, C, gh, p, gw, p)
    x = x.permute(0, 2, 4, 1, 3, 5)  # (B, gh, gw, C, p, p)
    return x.reshape(B, gh * gw, C * p * p)  # (B, N, C p p)


def unpatchify(
    patches: torch.Tensor, patch_size: int, image_size: int | Sequence[int], channels: int
) -> torch.Tensor:
    """The exact inverse of :func:`patchify`: ``(B, N, C p p) -> (B, C, H, W)``.

    Args:
        patches: ``(B, N, C p p)``, ``N = (H / p) (W / p)``.
        patch_size: ``p``.
        image_size: ``H`` (square images) or ``(H, W)``.
        channels: ``C``.
    """
    check_floating(check_tensor(patches, "patches"), "patches")
    p = check_positive_int(patch_size, "patch_size")
    H, W = _pair(image_size, "image_size")
    C = check_positive_int(channels, "channels")
    if H % p or W % p:
        raise ValueError(f"image_size ({H}, {W}) must be divisible by patch_size={p}.")
    gh, gw = H // p, W // p
    if patches.dim() != 3 or patches.shape[1:] != (gh * gw, C * p * p):
        raise ValueError(
            f"patches must have shape (B, N, C*p*p) = (B, {gh * gw}, {C * p * p}) for "
            f"channels={C}, image_size=({H}, {W}) and patch_size={p}, "
            f"got {fmt_shape(patches.shape)}."
        )
    B = patches.shape[0]
    x = patches.reshape(B, gh, gw, C, p, p)  # (B, gh, gw, C, p, p)
    x = x.permute(0, 3, 1, 4, 2, 5)  # (B, C, gh, p, gw, p)
    return x.reshape(B, C, H, W)  # (B, C, H, W)


# ------------------------------------------------------------------------------ config


@dataclass(frozen=True)
class ViTConfig:
    """Sizes of a :class:`ViT`. ViT-Base/16 is ``ViTConfig(224, 16, 3, 768, 12, 12, 3072,
    1000)``.

    Args:
        image_size: side of square input images, or ``(H, W)`` for rectangular ones
            (a list is stored as a tuple).
        patch_size: side ``p`` of the (square) patches; divides ``H`` and ``W``.
        channels: input channels ``C``.
        d_model, num_heads, num_layers, d_ff: Transformer sizes (``d_ff`` = MLP size).
        num_classes: size of the classification head; ``0`` = no head (the model then
            returns the final hidden states).
        dropout: dropout on the embeddings, attention weights, sublayer outputs and MLP.
        layer_norm_eps: the LayerNorms' epsilon (Hugging Face's default, ``1e-12``).
    """

    image_size: int | tuple[int, int] = 224
    patch_size: int = 16
    channels: int = 3
    d_model: int = 768
    num_heads: int = 12
    num_layers: int = 12
    d_ff: int = 3072
    num_classes: int = 1000
    dropout: float = 0.0
    layer_norm_eps: float = 1e-12

    def __post_init__(self) -> None:
        if isinstance(self.image_size, list):  # keep the frozen config hashable
            object.__setattr__(self, "image_size", tuple(self.image_size))
        if isinstance(self.image_size, tuple) and len(self.image_size) != 2:
            raise ValueError(
                f"image_size must be an int or a pair (H, W), got {self.image_size!r}."
            )
        _pair(self.image_size, "image_size")
        for name in ("patch_size", "channels", "d_model", "num_heads"):
            check_positive_int(getattr(self, name), name)
        for name in ("num_layers", "d_ff"):
            check_positive_int(getattr(self, name), name)
        check_positive_int(self.num_classes, "num_classes", allow_zero=True)
        check_probability(self.dropout, "dropout")
        eps = self.layer_norm_eps
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not 0 < eps < math.inf:
            raise ValueError(f"layer_norm_eps must be a positive finite number, got {eps!r}.")
        H, W = self.image_hw
        if H % self.patch_size or W % self.patch_size:
            raise ValueError(
                f"image_size={self.image_size} must be divisible by patch_size={self.patch_size}"
                f" (height {H} and width {W})."
            )
        if self.d_model % self.num_heads:
            raise ValueError(
                f"d_model={self.d_model} must be divisible by num_heads={self.num_heads}."
            )

    @property
    def image_hw(self) -> tuple[int, int]:
        """The input images' ``(H, W)``: ``(image_size, image_size)`` for an int."""
        return _pair(self.image_size, "image_size")

    @property
    def grid(self) -> tuple[int, int]:
        """Patches per column and per row, ``(gh, gw) = (H / p, W / p)``."""
        H, W = self.image_hw
        return H // self.patch_size, W // self.patch_size

    @property
    def num_patches(self) -> int:
        """``N = (H / p) (W / p)``."""
        gh, gw = self.grid
        return gh * gw


# ------------------------------------------------------------------------------ modules


class PatchEmbedding(nn.Module):
    """Linear projection of flattened patches (ViT eq. 1, ``x_p E``), computed as a
    ``Conv2d(kernel_size=p, stride=p)``: ``(B, C, H, W) -> (B, N, d_model)``.

    Equal to ``nn.Linear(C p p, d_model)`` on :func:`patchify` with weight
    ``proj.weight.reshape(d_model, C p p)`` (tested).
    """

    def __init__(self, patch_size: int, channels: int, d_model: int) -> None:
        super().__init__()
        self.patch_size = check_positive_int(patch_size, "patch_size")
        self.channels = check_positive_int(channels, "channels")
        d_model = check_positive_int(d_model, "d_model")
        self.proj = nn.Conv2d(channels, d_model, kernel_size=patch_size, stride=patch_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, N, d_model)``, patches in row-major order."""
        images = check_images(images)
        p = self.patch_size
        if images.shape[1] != self.channels or images.shape[2] % p or images.shape[3] % p:
            raise ValueError(
                f"images must have shape (B, {self.channels}, H, W) with H and W divisible by "
                f"patch_size={p}, got {fmt_shape(images.shape)}."
            )
        check_module_dtype(images, "images", self)
        x = self.proj(images)  # (B, d_model, gh, gw)
        return x.flatten(2).transpose(1, 2)  # (B, N, d_model)


class ViT(nn.Module):
    """The Vision Transformer (Dosovitskiy et al., 2021), eq. 1-4::

        z_0 = [x_class; x_p^1 E; ...; x_p^N E] + E_pos       # (B, 1 + N, d_model)
        z_l = z_l' + MLP(LN(z_l')),  z_l' = z_{l-1} + MSA(LN(z_{l-1}))
        y   = head(LN(z_L^0))                                  # class token

    Built from :class:`~attnkit.transformer.TransformerEncoderLayer` (``norm_first=True``,
    ``activation="gelu"``, exact) and a :class:`~attnkit.transformer.TransformerEncoder`
    with its final LayerNorm. Initialisation: truncated normal (std 0.02) for the patch
    projection, Linear weights, class token and position embeddings; biases 0.

    Attributes: ``patch_embed`` (:class:`PatchEmbedding`), ``cls_token`` ``(1, 1, d_model)``,
    ``pos_embed`` ``(1, 1 + N, d_model)`` (``N = gh * gw``, patches row-major, see
    ``config.grid``), ``encoder``, ``head`` (``None`` if ``num_classes == 0``).
    """

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        if not isinstance(config, ViTConfig):
            raise TypeError(f"config must be a ViTConfig, got {type(config).__name__}.")
        self.config = c = config
        self.patch_embed = PatchEmbedding(c.patch_size, c.channels, c.d_model)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.d_model))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + c.num_patches, c.d_model))
        self.dropout = nn.Dropout(c.dropout)

        def block() -> TransformerEncoderLayer:
            return TransformerEncoderLayer(
                c.d_model,
                c.num_heads,
                c.d_ff,
                c.dropout,
                "gelu",
                norm_first=True,
                layer_norm_eps=c.layer_norm_eps,
            )

        self.encoder = TransformerEncoder(block, c.num_layers, final_norm=True)
        self.head = nn.Linear(c.d_model, c.num_classes) if c.num_classes else None
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def _check_input(self, images: object) -> torch.Tensor:
        c = self.config
        return check_images(images, chw=(c.channels, *c.image_hw), module=self)

    def forward_features(
        self, images: torch.Tensor, *, return_attention: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        """Images ``(B, C, H, W)`` -> final hidden states ``(B, 1 + N, d_model)`` (after the
        final LayerNorm; position 0 is the class token) and, with ``return_attention``,
        the per-layer attention weights ``(B, H, 1 + N, 1 + N)`` (else ``None``)."""
        images = self._check_input(images)
        x = self.patch_embed(images)  # (B, N, d_model)
        cls = self.cls_token.expand(x.shape[0], -1, -1)  # (B, 1, d_model)
        x = torch.cat([cls, x], dim=1) + self.pos_embed  # (B, 1 + N, d_model)
        x = self.dropout(x)
        return self.encoder(x, need_weights=bool(return_attention))  # (B, 1 + N, d_model)

    def forward(
        self, images: torch.Tensor, *, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Images ``(B, C, H, W)`` (the parameters' dtype) -> logits ``(B, num_classes)``,
        or the final hidden states ``(B, 1 + N, d_model)`` when ``num_classes == 0``.

        With ``return_attention=True``, returns ``(output, attentions)``: a list with one
        ``(B, H, 1 + N, 1 + N)`` tensor of attention weights per layer (rows sum to 1;
        call ``model.eval()`` first, dropout does not perturb the returned weights but does
        perturb the activations).
        """
        h, weights = self.forward_features(images, return_attention=return_attention)
        out = h if self.head is None else self.head(h[:, 0])  # (B, classes) or (B, 1+N, D)
        if return_attention:
            assert weights is not None
            return out, weights
        return out


# ----------------------------------------------------------------------- attention rollout


def cls_rollout_map(rollout: torch.Tensor, grid: int | Sequence[int]) -> torch.Tensor:
    """The class token's row of a rollout over the patches, as an image-shaped map.

    Args:
        rollout: ``(B, 1 + N, 1 + N)`` from :func:`.attention_rollout` (token 0 = class).
        grid: ``(gh, gw)`` patches per column and row (or one int for a square grid), with
            ``gh * gw = N``; e.g. ``config.grid``.

    Returns:
        ``(B, gh, gw)``: ``rollout[:, 0, 1:]`` reshaped row-major.
    """
    check_floating(check_tensor(rollout, "rollout"), "rollout")
    gh, gw = _pair(grid, "grid")
    if rollout.dim() != 3 or rollout.shape[1:] != (1 + gh * gw, 1 + gh * gw):
        raise ValueError(
            f"rollout must have shape (B, 1+N, 1+N) = (B, {1 + gh * gw}, {1 + gh * gw}) for "
            f"grid ({gh}, {gw}), got {fmt_shape(rollout.shape)}."
        )
    return rollout[:, 0, 1:].reshape(-1, gh, gw)  # (B, gh, gw)


# ------------------------------------------------------------------- Hugging Face weights


def _hf_layer_names(i: int) -> dict[str, tuple[str, str]]:
    """attnkit name -> (transformers >= 5 name, older name) for layer ``i``."""
    new, old = f"layers.{i}.", f"encoder.layer.{i}."
    pairs = {
        "self_attn.q_proj": ("attention.q_proj", "attention.attention.query"),
        "self_attn.k_proj": ("attention.k_proj", "attention.attention.key"),
        "self_attn.v_proj": ("attention.v_proj", "attention.attention.value"),
        "self_attn.out_proj": ("attention.o_proj", "attention.output.dense"),
        "ff.linear1": ("mlp.fc1", "intermediate.dense"),
        "ff.linear2": ("mlp.fc2", "output.dense"),
        "norm1": ("layernorm_before", "layernorm_before"),
        "norm2": ("layernorm_after", "layernorm_after"),
    }
    out = {}
    for ours, (n, o) in pairs.items():
        for p in ("weight", "bias"):
            out[f"encoder.layers.{i}.{ours}.{p}"] = (f"{new}{n}.{p}", f"{old}{o}.{p}")
    return out


def _hf_names(model: ViT) -> dict[str, tuple[str, ...]]:
    """attnkit parameter name -> candidate Hugging Face names (without the ``vit.``)."""
    names: dict[str, tuple[str, ...]] = {
        "cls_token": ("embeddings.cls_token",),
        "pos_embed": ("embeddings.position_embeddings",),
        "patch_embed.proj.weight": ("embeddings.patch_embeddings.projection.weight",),
        "patch_embed.proj.bias": ("embeddings.patch_embeddings.projection.bias",),
        "encoder.norm.weight": ("layernorm.weight",),
        "encoder.norm.bias": ("layernorm.bias",),
    }
    for i in range(len(model.encoder.layers)):
        names.update(_hf_layer_names(i))
    if model.head is not None:
        names["head.weight"] = ("classifier.weight",)
        names["head.bias"] = ("classifier.bias",)
    return names


def load_hf_vit_state_dict(model: ViT, state_dict: Mapping[str, torch.Tensor]) -> ViT:
    """Copy a Hugging Face ``ViTModel`` / ``ViTForImageClassification`` state dict into
    ``model`` (in place; returns it).

    Keys may carry a ``vit.`` prefix (``ViTForImageClassification``) or not (``ViTModel``);
    both the transformers >= 5 names (``layers.i.attention.q_proj``, ``mlp.fc1``) and the
    older ones (``encoder.layer.i.attention.attention.query``, ``intermediate.dense``) are
    understood. The pooler (``pooler.*``, unused by the classifier) is ignored. The HF
    model must use exact GELU, ``qkv_bias=True`` and the same sizes and eps as
    ``model.config`` (compare ``layer_norm_eps``: ``model`` does not read the HF config).

    Raises:
        ValueError: listing the missing and the unexpected keys (a ``ValueError``, as
            every argument check of attnkit).
        ValueError: on a shape mismatch, naming both keys.
    """
    if not isinstance(model, ViT):
        raise TypeError(f"model must be an attnkit ViT, got {type(model).__name__}.")
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict must be a mapping, got {type(state_dict).__name__}.")
    sd = {(k[4:] if k.startswith("vit.") else k): v for k, v in state_dict.items()}
    ours = dict(model.named_parameters())
    picked: dict[str, str] = {}
    missing = []
    for name, candidates in _hf_names(model).items():
        found = [c for c in candidates if c in sd]
        if found:
            picked[name] = found[0]
        else:
            missing.append(" or ".join(dict.fromkeys(candidates)))
    used = set(picked.values())
    unexpected = sorted(k for k in sd if k not in used and not k.startswith("pooler."))
    if missing or unexpected:
        raise ValueError(
            f"state_dict does not match this ViT ({model.config}). "
            f"Missing keys: {missing or 'none'}. Unexpected keys: {unexpected or 'none'}."
        )
    for name, key in picked.items():  # check every shape before copying anything
        if sd[key].shape != ours[name].shape:
            raise ValueError(
                f"shape mismatch: Hugging Face {key!r} is {fmt_shape(sd[key].shape)} but "
                f"attnkit {name!r} is {fmt_shape(ours[name].shape)}."
            )
    with torch.no_grad():
        for name, key in picked.items():
            ours[name].copy_(sd[key])
    return model

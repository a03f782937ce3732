"""Multi-head latent attention (MLA; DeepSeek-AI 2024, "DeepSeek-V2", section 2.1).

MLA caches one small latent vector per token instead of a key and a value per head.
With ``h_t`` the input of token ``t`` (``d_model``), ``H`` heads of size ``d_h``, a
latent size ``d_c`` and a rotary size ``d_r`` (the paper's ``d_h^R``)::

    c_t   = W_DKV h_t                        (d_c,)        <- cached
    k_t^R = RoPE_t(W_KR h_t)                 (d_r,)        <- cached, shared by all heads
    k_{t,i} = [W_UK,i c_t ; k_t^R]           (d_h + d_r,)  head i's key
    v_{t,i} =  W_UV,i c_t                    (d_h,)        head i's value
    q_{t,i} = [W_UQ,i c_t^Q ; RoPE_t(W_QR,i c_t^Q)],  c_t^Q = W_DQ h_t (or h_t itself)
    o_{t,i} = sum_j softmax_j(q_{t,i} . k_{j,i} / sqrt(d_h + d_r)) v_{j,i}
    u_t     = W_O [o_{t,1}; ...; o_{t,H}]

The cache holds ``d_c + d_r`` numbers per token and layer (576 in DeepSeek-V2, where an
MHA of the same heads would hold ``2 * 128 * 128 = 32768``).

**Weight absorption.** The content part of a score is
``(W_UQ,i c^Q_t) . (W_UK,i c_j) = (W_UK,i^T q^C_{t,i}) . c_j``: multiply the query by
``W_UK,i^T`` once and score it directly against the cached latents, never building the
keys. Likewise ``W_O,i W_UV,i`` can be applied after the weighted sum of latents. This is
why the rotary part is *decoupled*: a rotation between ``W_UQ`` and ``W_UK`` would depend
on both positions and could not be folded into one matrix. :func:`latent_attention`
computes both forms; they agree to rounding (tested in float64).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .._validate import (
    check_floating,
    check_positive_int,
    check_positive_number,
    check_tensor,
    fmt_shape,
)
from ..attention import scaled_dot_product_attention
from ..heads import merge_heads, split_heads
from ..masks import causal_mask
from ..positional import apply_rotary, rotary_cos_sin
from ..softmax import masked_softmax

__all__ = ["LatentKVCache", "MultiHeadLatentAttention", "latent_attention"]


def _check_latent_inputs(
    q_c: object, q_r: object, c_kv: object, k_r: object, w_uk: object, w_uv: object
) -> None:
    names = ("q_c", "q_r", "c_kv", "k_r", "w_uk", "w_uv")
    dims = (4, 4, 3, 3, 3, 3)
    for name, t, d in zip(names, (q_c, q_r, c_kv, k_r, w_uk, w_uv), dims):
        check_floating(check_tensor(t, name, min_dim=d), name)
        if t.dim() != d:  # type: ignore[union-attr]
            raise ValueError(f"{name} must have {d} dimensions, got {fmt_shape(t.shape)}.")  # type: ignore[union-attr]
    B, H, T_q, d_h = q_c.shape  # type: ignore[union-attr]
    d_c = c_kv.shape[-1]  # type: ignore[union-attr]
    expected = {
        "q_r": (B, H, T_q, q_r.shape[-1]),  # type: ignore[union-attr]
        "k_r": (B, c_kv.shape[1], q_r.shape[-1]),  # type: ignore[union-attr]
        "w_uk": (H, d_h, d_c),
        "w_uv": (H, w_uv.shape[1], d_c),  # type: ignore[union-attr]
    }
    for name, t in (("q_r", q_r), ("k_r", k_r), ("w_uk", w_uk), ("w_uv", w_uv)):
        if tuple(t.shape) != expected[name]:  # type: ignore[union-attr]
            raise ValueError(
                f"{name} must have shape {fmt_shape(expected[name])} to match q_c "
                f"{fmt_shape(q_c.shape)} (B, H, T_q, d_h) and c_kv {fmt_shape(c_kv.shape)} "  # type: ignore[union-attr]
                f"(B, T_k, d_c); got {fmt_shape(t.shape)}."  # type: ignore[union-attr]
            )
    if c_kv.shape[0] != B:  # type: ignore[union-attr]
        raise ValueError(
            f"c_kv must have batch size {B} like q_c, got shape {fmt_shape(c_kv.shape)}."  # type: ignore[union-attr]
        )


def latent_attention(
    q_c: torch.Tensor,
    q_r: torch.Tensor,
    c_kv: torch.Tensor,
    k_r: torch.Tensor,
    w_uk: torch.Tensor,
    w_uv: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    absorb: bool = False,
) -> torch.Tensor:
    """The attention of MLA, from the cached latents, in the explicit or absorbed form.

    Args:
        q_c: content queries ``(B, H, T_q, d_h)``.
        q_r: rotated rotary queries ``(B, H, T_q, d_r)``.
        c_kv: cached latents ``(B, T_k, d_c)``.
        k_r: cached rotated rotary keys ``(B, T_k, d_r)``, shared by all heads.
        w_uk: key up-projection per head ``(H, d_h, d_c)`` (``k^C_{j,i} = w_uk[i] @ c_j``).
        w_uv: value up-projection per head ``(H, d_v, d_c)``.
        mask: bool (``True`` = may attend) or additive mask broadcasting to
            ``(B, H, T_q, T_k)``.
        absorb: ``False`` builds every head's keys and values from the latents and calls
            :func:`~attnkit.attention.scaled_dot_product_attention` (the training form);
            ``True`` folds ``w_uk`` into the queries and ``w_uv`` after the weighted sum,
            attending in the latent space (the inference form). Same result.

    Returns:
        Per-head outputs ``(B, H, T_q, d_v)``; the scale is ``1 / sqrt(d_h + d_r)``.
    """
    _check_latent_inputs(q_c, q_r, c_kv, k_r, w_uk, w_uv)
    if not isinstance(absorb, bool):
        raise TypeError(f"absorb must be True or False, got {absorb!r}.")
    H = q_c.shape[1]
    scale = 1.0 / math.sqrt(q_c.shape[-1] + q_r.shape[-1])
    if not absorb:
        k_c = torch.einsum("btc,hdc->bhtd", c_kv, w_uk)  # (B, H, T_k, d_h)
        v = torch.einsum("btc,hdc->bhtd", c_kv, w_uv)  # (B, H, T_k, d_v)
        k_rope = k_r[:, None].expand(-1, H, -1, -1)  # (B, H, T_k, d_r)
        q = torch.cat([q_c, q_r], dim=-1)  # (B, H, T_q, d_h + d_r)
        k = torch.cat([k_c, k_rope], dim=-1)  # (B, H, T_k, d_h + d_r)
        return scaled_dot_product_attention(q, k, v, mask, scale=scale)  # type: ignore[return-value]
    q_latent = torch.einsum("bhqd,hdc->bhqc", q_c, w_uk)  # (B, H, T_q, d_c)
    scores = q_latent @ c_kv[:, None].transpose(-2, -1)  # (B, H, T_q, T_k)
    scores = scores + q_r @ k_r[:, None].transpose(-2, -1)  # rotary part, (B, H, T_q, T_k)
    weights = masked_softmax(scores * scale, mask)  # (B, H, T_q, T_k)
    o_latent = weights @ c_kv[:, None]  # (B, H, T_q, d_c)
    return torch.einsum("bhqc,hdc->bhqd", o_latent, w_uv)  # (B, H, T_q, d_v)


@dataclass
class LatentKVCache:
    """What MLA keeps per token: the latent ``c`` ``(B, T, d_c)`` and the rotated shared
    rotary key ``k_r`` ``(B, T, d_r)``."""

    c_kv: torch.Tensor | None = None
    k_r: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if (self.c_kv is None) != (self.k_r is None):
            raise ValueError("c_kv and k_r must both be given or both be None.")
        if self.c_kv is not None and self.k_r is not None:
            for name, t in (("c_kv", self.c_kv), ("k_r", self.k_r)):
                check_floating(check_tensor(t, name, min_dim=3), name)
            if self.c_kv.shape[:2] != self.k_r.shape[:2]:
                raise ValueError(
                    f"c_kv (B, T, d_c) and k_r (B, T, d_r) must cover the same batch and "
                    f"positions, got {fmt_shape(self.c_kv.shape)} and {fmt_shape(self.k_r.shape)}."
                )

    def __len__(self) -> int:
        return 0 if self.c_kv is None else self.c_kv.shape[1]

    @property
    def nbytes(self) -> int:
        """Memory held by the cache, in bytes."""
        return sum(t.numel() * t.element_size() for t in (self.c_kv, self.k_r) if t is not None)

    def update(self, c_kv: torch.Tensor, k_r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append the new positions (along axis 1) and return everything cached."""
        for name, t in (("c_kv", c_kv), ("k_r", k_r)):
            check_tensor(t, name, min_dim=3)
        if self.c_kv is None:
            self.c_kv, self.k_r = c_kv, k_r
        else:
            assert self.k_r is not None
            if c_kv.shape[0] != self.c_kv.shape[0]:
                raise ValueError(
                    f"the cache holds a batch of {self.c_kv.shape[0]}, got c_kv of shape "
                    f"{fmt_shape(c_kv.shape)}; use a new LatentKVCache for another batch."
                )
            self.c_kv = torch.cat([self.c_kv, c_kv], dim=1)  # (B, T_past + T, d_c)
            self.k_r = torch.cat([self.k_r, k_r], dim=1)  # (B, T_past + T, d_r)
        return self.c_kv, self.k_r


class MultiHeadLatentAttention(nn.Module):
    """Causal multi-head latent attention with decoupled RoPE (DeepSeek-V2, section 2.1).

    Args:
        d_model: model width.
        num_heads: ``H``.
        head_dim: ``d_h``, the size of each head's content query/key and value.
        latent_dim: ``d_c``, the size of the cached latent (DeepSeek-V2: 512 = 4 d_h).
        rope_dim: ``d_r`` (``d_h^R``), the size of the rotary query/key part (even;
            DeepSeek-V2: 64 = d_h / 2).
        q_latent_dim: ``d_c'``, a low-rank bottleneck for the queries (DeepSeek-V2:
            1536), or ``None`` for full-rank query projections (DeepSeek-V2-Lite).
        rope_base: the rotary frequency base.

    The paper also puts an RMSNorm after each latent; it is left out here, since it
    changes neither the cache size nor the absorption argument.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        head_dim: int,
        latent_dim: int,
        rope_dim: int,
        *,
        q_latent_dim: int | None = None,
        rope_base: float = 10000.0,
    ) -> None:
        super().__init__()
        self.d_model = check_positive_int(d_model, "d_model")
        self.num_heads = check_positive_int(num_heads, "num_heads")
        self.head_dim = check_positive_int(head_dim, "head_dim")
        self.latent_dim = check_positive_int(latent_dim, "latent_dim")
        self.rope_dim = check_positive_int(rope_dim, "rope_dim")
        if self.rope_dim % 2:
            raise ValueError(f"rope_dim must be even (pairs are rotated), got {rope_dim}.")
        self.rope_base = check_positive_number(rope_base, "rope_base")
        H, d_h, d_r = self.num_heads, self.head_dim, self.rope_dim
        if q_latent_dim is None:
            self.w_dq = None
            q_in = self.d_model
        else:
            q_in = check_positive_int(q_latent_dim, "q_latent_dim")
            self.w_dq = nn.Linear(self.d_model, q_in, bias=False)
        self.w_uq = nn.Linear(q_in, H * d_h, bias=False)  # content queries
        self.w_qr = nn.Linear(q_in, H * d_r, bias=False)  # rotary queries, one per head
        self.w_dkv = nn.Linear(self.d_model, self.latent_dim, bias=False)
        self.w_kr = nn.Linear(self.d_model, d_r, bias=False)  # one rotary key for all heads
        self.w_uk = nn.Linear(self.latent_dim, H * d_h, bias=False)
        self.w_uv = nn.Linear(self.latent_dim, H * d_h, bias=False)
        self.w_o = nn.Linear(H * d_h, self.d_model, bias=False)

    def per_head(self, linear: nn.Linear) -> torch.Tensor:
        """An up-projection's weight ``(H * d_h, d_c)`` viewed per head ``(H, d_h, d_c)``."""
        return linear.weight.unflatten(0, (self.num_heads, self.head_dim))

    def _rope(self, x: torch.Tensor, offset: int) -> torch.Tensor:
        cos, sin = rotary_cos_sin(
            x.shape[-2], self.rope_dim, base=self.rope_base, offset=offset,
            dtype=x.dtype, device=x.device,
        )  # fmt: skip
        return apply_rotary(x, cos, sin)

    def forward(
        self,
        x: torch.Tensor,
        *,
        cache: LatentKVCache | None = None,
        absorb: bool = False,
    ) -> torch.Tensor:
        """Causal self-attention over ``x`` ``(B, T, d_model)``, after the ``len(cache)``
        positions already in ``cache`` (which is updated). ``absorb`` picks the form of
        :func:`latent_attention`. Returns ``(B, T, d_model)``."""
        check_floating(check_tensor(x, "x", min_dim=3), "x")
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(
                f"x must have shape (B, T, d_model={self.d_model}), got {fmt_shape(x.shape)}."
            )
        if cache is not None and not isinstance(cache, LatentKVCache):
            raise TypeError(f"cache must be a LatentKVCache or None, got {type(cache).__name__}.")
        past = 0 if cache is None else len(cache)
        T = x.shape[1]
        q_in = x if self.w_dq is None else self.w_dq(x)  # (B, T, d_c' or d_model)
        q_c = split_heads(self.w_uq(q_in), self.num_heads)  # (B, H, T, d_h)
        q_r = self._rope(split_heads(self.w_qr(q_in), self.num_heads), past)  # (B, H, T, d_r)
        c_kv = self.w_dkv(x)  # (B, T, d_c)
        k_r = self._rope(self.w_kr(x), past)  # (B, T, d_r)
        if cache is not None:
            c_kv, k_r = cache.update(c_kv, k_r)  # (B, past + T, ...)
        mask = causal_mask(T, past + T, device=x.device)  # (T, past + T)
        heads = latent_attention(
            q_c, q_r, c_kv, k_r, self.per_head(self.w_uk), self.per_head(self.w_uv), mask,
            absorb=absorb,
        )  # (B, H, T, d_h)  # fmt: skip
        return self.w_o(merge_heads(heads))  # (B, T, d_model)

    def cache_elements_per_token(self) -> int:
        """Numbers cached per token by this layer: ``d_c + d_r``."""
        return self.latent_dim + self.rope_dim

"""Linformer: self-attention with low-rank projected keys and values.

Wang, Li, Khabsa, Fang and Ma, 2020, "Linformer: Self-Attention with Linear Complexity",
section 4. The ``n x n`` attention matrix is approximately low rank, so the ``n`` keys and
values are first mixed down to ``k = proj_len`` rows by learned matrices ``E, F``
(``k x n``)::

    K' = E K,   V' = F V                                   (k x d)
    head = softmax(Q K'^T / sqrt(d)) V'                    (eq. 7)

which costs O(n k d) time and O(n k) memory instead of O(n^2 d) and O(n^2).

``E`` and ``F`` act along the *sequence* axis, so a Linformer layer is built for one
maximum length ``seq_len``. It cannot be causal: every projected key mixes all positions,
including future ones.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .._validate import (
    broadcast_batch,
    broadcasts_to,
    check_floating,
    check_positive_int,
    check_qkv,
    check_scale,
    check_tensor,
    compute_dtype,
    fmt_shape,
)
from ..attention import scaled_dot_product_attention
from ._base import EfficientSelfAttention


def _check_projections(e_proj: object, f_proj: object, n: int) -> torch.Size:
    """Validate ``E`` and ``F`` (``(..., proj_len, n)``); return their broadcast batch shape."""
    for name, p in (("e_proj", e_proj), ("f_proj", f_proj)):
        check_floating(check_tensor(p, name, min_dim=2), name)
        assert isinstance(p, torch.Tensor)
        if p.shape[-1] != n:
            raise ValueError(
                f"{name} must have shape (proj_len, n) with n = {n}, the number of keys; "
                f"got {name} {fmt_shape(p.shape)}."
            )
    assert isinstance(e_proj, torch.Tensor) and isinstance(f_proj, torch.Tensor)
    if e_proj.shape[-2] != f_proj.shape[-2]:
        raise ValueError(
            f"e_proj and f_proj must project to the same length proj_len (second-to-last "
            f"dimension); got e_proj {fmt_shape(e_proj.shape)} and f_proj "
            f"{fmt_shape(f_proj.shape)}."
        )
    return broadcast_batch("e_proj and f_proj", e_proj=e_proj.shape[:-2], f_proj=f_proj.shape[:-2])


def _check_key_mask(mask: object, batch: torch.Size, n: int) -> torch.Tensor:
    """Check Linformer's key padding mask: bool broadcasting to ``(..., 1, n)``."""
    check_tensor(mask, "mask", min_dim=1)
    assert isinstance(mask, torch.Tensor)
    target = torch.Size((*batch, 1, n))
    if mask.dtype != torch.bool or not broadcasts_to(mask.shape, target):
        raise ValueError(
            f"mask must be a bool key padding mask (True = real key) that broadcasts to "
            f"(..., 1, n) = {fmt_shape(target)}; got {mask.dtype} {fmt_shape(mask.shape)}. "
            f"For (B, H, n, d) inputs pass a (B, n) padding mask as mask[:, None, None, :]."
        )
    return mask


def linformer_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    e_proj: torch.Tensor,
    f_proj: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    """Linformer attention ``softmax(q (E k)^T * scale) (F v)`` (Wang et al., 2020, eq. 7).

    Args:
        q: queries ``(..., n_q, d)``.
        k: keys ``(..., n, d)``.
        v: values ``(..., n, d_v)``. ``q``, ``k``, ``v`` share one floating dtype and their
            leading dimensions broadcast; 16-bit inputs are computed in float32 and the
            output cast back.
        e_proj: ``E`` ``(proj_len, n)``, or per head ``(..., proj_len, n)`` broadcasting
            with the batch dimensions; projects the keys, ``K' = E K`` ``(..., proj_len, d)``.
        f_proj: ``F``, the same shape as ``E``; projects the values, ``V' = F V``. Both are
            cast to the dtype of the computation.
        mask: optional key padding mask, bool broadcasting to ``(..., 1, n)``, ``True`` =
            real key. Padded keys and values are set to zero *before* the projection, which
            is what the paper's fixed-length setting implies (a shorter input is a longer
            one padded with zeros). It is **not** the same as excluding them: the
            ``proj_len`` projected keys are all still attended to, so e.g. with ``E = F = I``
            a padded key becomes a zero key with score 0 and a zero value, which still takes
            weight ``exp(0) / Z`` in the softmax (and shrinks the output).
        scale: score multiplier; default ``1 / sqrt(d)``.

    Returns:
        ``(..., n_q, d_v)`` in the dtype of ``q``.

    Complexity:
        time O(n proj_len (d + d_v) + n_q proj_len (d + d_v)), memory O(n_q proj_len);
        no ``n x n`` matrix.
    """
    batch = check_qkv(q, k, v)
    n = k.shape[-2]
    proj_batch = _check_projections(e_proj, f_proj, n)
    batch = broadcast_batch("q, k, v and e_proj, f_proj", qkv=batch, projections=proj_batch)
    scale = check_scale(scale)
    if mask is not None:
        _check_key_mask(mask, batch, n)

    work = compute_dtype(q.dtype)
    k, v = k.to(work), v.to(work)
    if mask is not None:
        real = mask.transpose(-2, -1)  # (..., n, 1)
        k, v = torch.where(real, k, 0.0), torch.where(real, v, 0.0)  # padded rows are zero
    k_proj = e_proj.to(work) @ k  # (..., proj_len, d)   K' = E K
    v_proj = f_proj.to(work) @ v  # (..., proj_len, d_v) V' = F V
    out = scaled_dot_product_attention(q.to(work), k_proj, v_proj, scale=scale)  # (..., n_q, d_v)
    return out.to(q.dtype)


class LinformerSelfAttention(EfficientSelfAttention):
    """Multi-head Linformer self-attention with learned projections ``E`` and ``F``.

    Args:
        d_model: model width; num_heads: number of heads (``head_dim = d_model // H``).
        seq_len: the longest sequence ``n`` the layer accepts (``E`` is ``proj_len x seq_len``).
        proj_len: ``k``, the number of projected keys and values.
        share_kv: use one matrix for keys and values (``F = E``, the paper's key-value
            sharing); otherwise ``E`` and ``F`` are separate.
        bias: whether the q/k/v/out projections have biases.

    ``E`` and ``F`` are shared across heads (the paper's headwise sharing) and initialised
    ``N(0, 1 / proj_len)``. A shorter input of ``n < seq_len`` tokens uses the first ``n``
    columns ``E[:, :n]``, exactly what zero-padding it to ``seq_len`` would give; a longer
    one raises ``ValueError``. Not causal. Time O(n proj_len d_model) per layer.
    """

    supports_causal = False

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        seq_len: int,
        proj_len: int,
        *,
        share_kv: bool = False,
        bias: bool = True,
    ) -> None:
        super().__init__(d_model, num_heads, bias=bias)
        self.seq_len = check_positive_int(seq_len, "seq_len")
        self.proj_len = check_positive_int(proj_len, "proj_len")
        if not isinstance(share_kv, bool):
            raise TypeError(f"share_kv must be True or False, got {share_kv!r}.")
        self.share_kv = share_kv
        std = 1.0 / math.sqrt(self.proj_len)
        self.e_proj = nn.Parameter(torch.randn(self.proj_len, self.seq_len) * std)  # E
        f_proj = None if share_kv else nn.Parameter(torch.randn(self.proj_len, self.seq_len) * std)
        self.register_parameter("f_proj", f_proj)  # F (None: F = E)

    def attend(self, q, k, v, key_padding_mask):
        n = q.shape[-2]
        if n > self.seq_len:
            raise ValueError(
                f"{type(self).__name__} was built for sequences of at most seq_len = "
                f"{self.seq_len} tokens (E and F are proj_len x seq_len), got n = {n}."
            )
        e = self.e_proj[:, :n]  # (proj_len, n)
        f = e if self.f_proj is None else self.f_proj[:, :n]  # (proj_len, n)
        mask = None if key_padding_mask is None else key_padding_mask[:, None, None, :]
        return linformer_attention(q, k, v, e, f, mask=mask)  # (B, H, n, D)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, seq_len={self.seq_len}, proj_len={self.proj_len}, "
            f"share_kv={self.share_kv}"
        )


__all__ = ["LinformerSelfAttention", "linformer_attention"]

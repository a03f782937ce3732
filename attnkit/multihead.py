"""Multi-head attention (Vaswani et al., 2017, section 3.2.2) with grouped-query attention
and a key/value cache.

::

    head_h = Attention(X_q W_q^h, X_k W_k^h, X_v W_v^h),   h = 1..H
    MultiHead(X_q, X_k, X_v) = Concat(head_1, ..., head_H) W_o

Everything is **batch-first**: inputs are ``(B, T, d_model)``. Masks follow the core
convention of :func:`~attnkit.attention.scaled_dot_product_attention`: bool ``True`` = may attend,
floating = added to the scores. Note that ``torch.nn.MultiheadAttention``'s
``key_padding_mask`` uses the *opposite* convention (``True`` = ignore); here a key
padding mask is ``True`` on real tokens, as :func:`~attnkit.masks.padding_mask` returns.

Grouped-query attention (Ainslie et al., 2023) uses ``num_kv_heads < num_heads`` key/value
heads, each shared by ``num_heads / num_kv_heads`` query heads; ``num_kv_heads = 1`` is
multi-query attention (Shazeer, 2019). The cache then shrinks by the same factor.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ._validate import (
    check_bool,
    check_floating,
    check_mask,
    check_positive_int,
    check_probability,
    check_same_dtype,
    check_sequence,
    check_tensor,
    fmt_shape,
)
from .attention import scaled_dot_product_attention
from .heads import merge_heads, repeat_kv, split_heads
from .masks import causal_mask, combine_masks


@dataclass
class KVCache:
    """The keys and values a layer has seen so far, ``(B, H_kv, T, head_dim)`` each.

    Self-attention appends the new positions at every decoding step. For cross-attention
    create it with ``static=True``: the memory's keys and values are computed on the first
    call and reused afterwards.
    """

    k: torch.Tensor | None = None
    v: torch.Tensor | None = None
    static: bool = False

    def __post_init__(self) -> None:
        self.static = check_bool(self.static, "static")
        if (self.k is None) != (self.v is None):
            raise ValueError("k and v must both be given or both be None.")
        if self.k is not None:
            k, v, self.k, self.v = self.k, self.v, None, None
            self.update(k, v)

    def __len__(self) -> int:
        return 0 if self.k is None else self.k.shape[-2]

    @property
    def nbytes(self) -> int:
        """Memory held by the cached keys and values, in bytes."""
        return sum(t.numel() * t.element_size() for t in (self.k, self.v) if t is not None)

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store ``k``, ``v`` (appending along time unless static); return everything.

        Raises:
            TypeError: if ``k`` or ``v`` is not a floating tensor, or their dtype differs
                from each other or from the cached ones.
            ValueError: if ``k`` and ``v`` are not ``(B, H_kv, T, head_dim)`` with the same
                ``B, H_kv, T``, or ``B, H_kv, head_dim`` differ from the cached tensors'
                (a cache reused with another batch size, say).
        """
        for name, t in (("k", k), ("v", v)):
            check_floating(check_tensor(t, name), name)
            if t.dim() != 4:
                raise ValueError(
                    f"{name} must have shape (B, H_kv, T, head_dim), got {fmt_shape(t.shape)}."
                )
        check_same_dtype(k=k, v=v)
        if k.shape[:3] != v.shape[:3]:
            raise ValueError(
                f"k and v must share (B, H_kv, T); got k {fmt_shape(k.shape)} and "
                f"v {fmt_shape(v.shape)}."
            )
        if self.k is not None and not self.static:
            assert self.v is not None
            for name, new, old in (("k", k, self.k), ("v", v, self.v)):
                if new.shape[:2] != old.shape[:2] or new.shape[3] != old.shape[3]:
                    raise ValueError(
                        f"{name} {fmt_shape(new.shape)} does not fit the cached "
                        f"{fmt_shape(old.shape)}: B, H_kv and head_dim must stay the same "
                        f"(a cache holds one batch; start a new one for another)."
                    )
                if new.dtype != old.dtype:
                    raise TypeError(f"{name} is {new.dtype} but the cache holds {old.dtype}.")
        if self.k is None or self.static:
            self.k, self.v = k, v
        else:
            assert self.v is not None
            self.k = torch.cat([self.k, k], dim=-2)  # (B, H_kv, T_past + T, D)
            self.v = torch.cat([self.v, v], dim=-2)
        return self.k, self.v


def _as_4d_mask(mask: torch.Tensor, name: str) -> torch.Tensor:
    """Accept (T_q, T_k), (B, T_q, T_k) or (B|1, H|1, T_q, T_k); return a 4-D view."""
    check_tensor(mask, name)
    if mask.dim() == 2:
        return mask[None, None]  # (1, 1, T_q, T_k)
    if mask.dim() == 3:
        return mask[:, None]  # (B, 1, T_q, T_k)
    if mask.dim() == 4:
        return mask
    raise ValueError(
        f"{name} must have shape (T_q, T_k), (B, T_q, T_k) or (B, H, T_q, T_k); "
        f"got {fmt_shape(mask.shape)}."
    )


class MultiHeadAttention(nn.Module):
    """Multi-head attention with optional grouped-query heads, RoPE and a KV cache.

    Args:
        d_model: model width (size of the queries and of the output).
        num_heads: number of query heads ``H``; ``head_dim = d_model // H``.
        num_kv_heads: number of key/value heads (divides ``H``); default ``H``.
        dropout: dropout on the attention weights, in training mode only.
        bias: whether the four projections have biases.
        kdim, vdim: sizes of the key and value inputs (cross-attention); default ``d_model``.
        rotary: optional module ``rotary(q, k, offset) -> (q, k)`` applied to the per-head
            queries and keys (for example :class:`attnkit.positional.RotaryEmbedding`);
            ``offset`` is the number of cached positions.
        fused: compute the attention itself with PyTorch's fused
            ``torch.nn.functional.scaled_dot_product_attention`` whenever the weights are
            not requested (about 1.5x faster training on CPU); the default uses attnkit's
            own exact :func:`.scaled_dot_product_attention`. Both are tested equal.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        *,
        num_kv_heads: int | None = None,
        dropout: float = 0.0,
        bias: bool = True,
        kdim: int | None = None,
        vdim: int | None = None,
        rotary: nn.Module | None = None,
        fused: bool = False,
    ) -> None:
        super().__init__()
        d_model = check_positive_int(d_model, "d_model")
        num_heads = check_positive_int(num_heads, "num_heads")
        num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
        num_kv_heads = check_positive_int(num_kv_heads, "num_kv_heads")
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} must be divisible by num_heads={num_heads}.")
        if num_heads % num_kv_heads:
            raise ValueError(
                f"num_heads={num_heads} must be a multiple of num_kv_heads={num_kv_heads}."
            )
        self.d_model, self.num_heads, self.num_kv_heads = d_model, num_heads, num_kv_heads
        self.head_dim = d_model // num_heads
        self.kdim = d_model if kdim is None else check_positive_int(kdim, "kdim")
        self.vdim = d_model if vdim is None else check_positive_int(vdim, "vdim")
        self.dropout = check_probability(dropout, "dropout")
        bias = check_bool(bias, "bias")
        if rotary is not None and not callable(rotary):
            raise TypeError(f"rotary must be None or a callable, got {type(rotary).__name__}.")
        kv_width = num_kv_heads * self.head_dim
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(self.kdim, kv_width, bias=bias)
        self.v_proj = nn.Linear(self.vdim, kv_width, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        self.rotary = rotary
        self.fused = check_bool(fused, "fused")
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        # torch.nn.MultiheadAttention's initialisation: Xavier-uniform weights, zero biases.
        for proj in (self.q_proj, self.k_proj, self.v_proj, self.out_proj):
            nn.init.xavier_uniform_(proj.weight)
            if proj.bias is not None:
                nn.init.zeros_(proj.bias)

    def _keys_values(
        self, key: torch.Tensor, value: torch.Tensor, cache: KVCache | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected keys/values ``(B, H_kv, T_k, D)``, read from or added to ``cache``."""
        if cache is not None and cache.static and cache.k is not None:
            assert cache.v is not None
            return cache.k, cache.v
        k = split_heads(self.k_proj(key), self.num_kv_heads)  # (B, H_kv, T, D)
        v = split_heads(self.v_proj(value), self.num_kv_heads)  # (B, H_kv, T, D)
        return k, v

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor | None = None,
        value: torch.Tensor | None = None,
        *,
        attn_mask: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
        is_causal: bool = False,
        need_weights: bool = False,
        cache: KVCache | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend from ``query`` to ``key``/``value`` (self-attention when they are omitted).

        Args:
            query: ``(B, T_q, d_model)``.
            key: ``(B, T_k, kdim)``; default ``query``.
            value: ``(B, T_k, vdim)``; default ``key``.
            attn_mask: bool (``True`` = may attend) or float (added) mask of shape
                ``(T_q, T_k)``, ``(B, T_q, T_k)`` or ``(B|1, H|1, T_q, T_k)``, where ``T_k``
                counts cached positions too.
            key_padding_mask: bool ``(B, T_k)``, ``True`` on real tokens (the opposite of
                ``torch.nn.MultiheadAttention``).
            is_causal: add a causal mask; with a cache, queries are the last positions.
            need_weights: also return the per-head weights ``(B, H, T_q, T_k)``.
            cache: a :class:`KVCache` to read and extend (incremental decoding).

        Returns:
            ``(output, weights)``: output ``(B, T_q, d_model)``; weights or ``None``.
        """
        query = check_sequence(query, "query", self, self.d_model, min_dim=3)
        key = (
            query if key is None else check_sequence(key, "key", self, self.kdim, "kdim", min_dim=3)
        )
        value = (
            key
            if value is None
            else check_sequence(value, "value", self, self.vdim, "vdim", min_dim=3)
        )
        if key.shape[:2] != value.shape[:2] or key.shape[0] != query.shape[0]:
            raise ValueError(
                f"query {fmt_shape(query.shape)}, key {fmt_shape(key.shape)} and value "
                f"{fmt_shape(value.shape)} must share the batch size, and key and value the "
                f"length."
            )
        is_causal = check_bool(is_causal, "is_causal")
        need_weights = check_bool(need_weights, "need_weights")
        if cache is not None and not isinstance(cache, KVCache):
            raise TypeError(f"cache must be a KVCache or None, got {type(cache).__name__}.")
        past = 0 if cache is None or cache.static else len(cache)

        q = split_heads(self.q_proj(query), self.num_heads)  # (B, H, T_q, D)
        reused = cache is not None and cache.static and cache.k is not None
        k, v = self._keys_values(key, value, cache)  # (B, H_kv, T_new, D)
        if self.rotary is not None:
            q, k_rotated = self.rotary(q, k, offset=past)
            if not reused:  # a static cache holds keys that were rotated when stored
                k = k_rotated
        if cache is not None:
            k, v = cache.update(k, v)  # (B, H_kv, T_k, D) with the past prepended
        n_rep = self.num_heads // self.num_kv_heads
        k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)  # (B, H, T_k, D)

        t_q, t_k = q.shape[-2], k.shape[-2]
        masks = []
        if attn_mask is not None:
            mask4d = _as_4d_mask(attn_mask, "attn_mask")
            check_mask(mask4d, (query.shape[0], self.num_heads, t_q, t_k), "attn_mask")
            masks.append(mask4d)
        if key_padding_mask is not None:
            check_tensor(key_padding_mask, "key_padding_mask")
            if key_padding_mask.dtype != torch.bool or key_padding_mask.shape != (
                query.shape[0],
                t_k,
            ):
                raise ValueError(
                    f"key_padding_mask must be bool of shape (B, T_k) = "
                    f"({query.shape[0]}, {t_k}), True on real tokens; got "
                    f"{key_padding_mask.dtype} {fmt_shape(key_padding_mask.shape)}."
                )
            masks.append(key_padding_mask[:, None, None, :])  # (B, 1, 1, T_k)
        if is_causal:
            masks.append(causal_mask(t_q, t_k, device=q.device))
        mask = combine_masks(*masks)

        p = self.dropout if self.training else 0.0
        weights = None
        if self.fused and not need_weights:
            # Same mask convention (bool True = may attend, float added); rows with no
            # allowed key give zeros in torch >= 2.5, like attnkit's own function.
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
            if mask is not None and not bool(torch.isfinite(out).all()):
                # PyTorch's kernel lets 0 * NaN from a masked value row leak into every
                # output row; attnkit's function does not. Redo the (rare) case exactly.
                out = scaled_dot_product_attention(q, k, v, mask, dropout_p=p)
        else:
            out, weights = scaled_dot_product_attention(
                q, k, v, mask, dropout_p=p, return_weights=True
            )  # (B, H, T_q, D), (B, H, T_q, T_k)
        out = self.out_proj(merge_heads(out))  # (B, T_q, d_model)
        return out, (weights if need_weights else None)

    def new_cache(self, *, static: bool = False) -> KVCache:
        """An empty cache for this layer (``static=True`` for cross-attention memory)."""
        return KVCache(static=check_bool(static, "static"))

    @classmethod
    def from_torch(cls, m: nn.MultiheadAttention) -> MultiHeadAttention:
        """Copy the weights of a ``torch.nn.MultiheadAttention`` into a new module.

        The copy computes the same function (tested), except that attnkit is always
        batch-first and its ``key_padding_mask`` is ``True`` on real tokens: pass
        ``~torch_mask``. ``add_bias_kv`` and ``add_zero_attn`` are not supported.
        """
        if not isinstance(m, nn.MultiheadAttention):
            raise TypeError(f"m must be a torch.nn.MultiheadAttention, got {type(m).__name__}.")
        if m.bias_k is not None or m.add_zero_attn:
            raise ValueError("add_bias_kv and add_zero_attn are not supported by from_torch.")
        has_bias = m.in_proj_bias is not None
        new = cls(
            m.embed_dim, m.num_heads, dropout=m.dropout, bias=has_bias, kdim=m.kdim, vdim=m.vdim
        ).to(m.out_proj.weight.dtype)
        with torch.no_grad():
            if m._qkv_same_embed_dim:
                w_q, w_k, w_v = m.in_proj_weight.chunk(3, dim=0)
            else:
                w_q, w_k, w_v = m.q_proj_weight, m.k_proj_weight, m.v_proj_weight
            for proj, w in ((new.q_proj, w_q), (new.k_proj, w_k), (new.v_proj, w_v)):
                proj.weight.copy_(w)
            if has_bias:
                for proj, b in zip((new.q_proj, new.k_proj, new.v_proj), m.in_proj_bias.chunk(3)):
                    proj.bias.copy_(b)
                new.out_proj.bias.copy_(m.out_proj.bias)
            new.out_proj.weight.copy_(m.out_proj.weight)
        return new

    def extra_repr(self) -> str:
        return (
            f"d_model={self.d_model}, num_heads={self.num_heads}, "
            f"num_kv_heads={self.num_kv_heads}, head_dim={self.head_dim}, dropout={self.dropout}"
            + (", fused=True" if self.fused else "")
        )


def set_fused_attention(model: nn.Module, enabled: bool = True) -> nn.Module:
    """Switch every :class:`MultiHeadAttention` inside ``model`` to PyTorch's fused kernel
    (``enabled=True``) or back to attnkit's exact function; returns ``model``.

    Use it to train faster; the models compute the same function either way (tested),
    and modules still use attnkit's function whenever weights are requested.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    enabled = check_bool(enabled, "enabled")
    for module in model.modules():
        if isinstance(module, MultiHeadAttention):
            module.fused = enabled
    return model

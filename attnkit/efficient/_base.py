"""What every efficient self-attention layer shares: the projections and the head split.

An efficient method changes only *how* ``softmax(q k^T / sqrt(d)) v`` (or its
approximation) is computed from the per-head queries, keys and values. The projections
``W_q, W_k, W_v, W_o`` around it are those of ordinary multi-head attention (Vaswani et al.,
2017, section 3.2.2), so they live here once and every method's ``nn.Module`` only
implements :meth:`EfficientSelfAttention.attend`.

Convention: inputs are batch-first ``(B, n, d_model)``; a key padding mask is bool
``(B, n)`` with ``True`` on real tokens (what :func:`attnkit.padding_mask` returns).
"""

from __future__ import annotations

import torch
from torch import nn

from .._validate import check_bool, check_positive_int, check_sequence, check_tensor, fmt_shape
from ..heads import merge_heads, split_heads


def check_key_padding_mask(mask: object, batch: int, n: int) -> torch.Tensor:
    """Check a key padding mask: bool ``(B, n)``, ``True`` = real token."""
    check_tensor(mask, "key_padding_mask")
    assert isinstance(mask, torch.Tensor)
    if mask.dtype != torch.bool or mask.shape != (batch, n):
        raise ValueError(
            f"key_padding_mask must be a bool tensor of shape (B, n) = ({batch}, {n}) with "
            f"True on real tokens; got {mask.dtype} {fmt_shape(mask.shape)}."
        )
    return mask


class EfficientSelfAttention(nn.Module):
    """Multi-head self-attention whose core is supplied by a subclass.

    Args:
        d_model: model width; ``head_dim = d_model // num_heads``.
        num_heads: number of heads ``H``.
        bias: whether the projections have biases.
        causal: let position ``i`` attend to positions ``j <= i`` only. Methods that
            cannot be causal raise ``ValueError`` when asked to be.

    Subclasses set ``supports_causal`` and implement :meth:`attend`. There is no
    dropout on the attention weights (most efficient methods never form them); put
    dropout on the layer's output instead.
    """

    supports_causal: bool = True

    def __init__(self, d_model: int, num_heads: int, *, bias: bool = True, causal: bool = False):
        super().__init__()
        d_model = check_positive_int(d_model, "d_model")
        num_heads = check_positive_int(num_heads, "num_heads")
        if d_model % num_heads:
            raise ValueError(
                f"d_model={d_model} must be divisible by num_heads={num_heads} "
                f"(each head gets d_model // num_heads features)."
            )
        causal = check_bool(causal, "causal")
        bias = check_bool(bias, "bias")
        if causal and not self.supports_causal:
            raise ValueError(f"{type(self).__name__} cannot be causal; use causal=False.")
        self.d_model = d_model
        self.num_heads = num_heads
        self.head_dim = d_model // num_heads
        self.causal = causal
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        key_padding_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """Per-head core: ``q, k, v`` are ``(B, H, n, head_dim)``; return ``(B, H, n, head_dim)``.

        ``key_padding_mask`` is ``None`` or bool ``(B, n)`` with ``True`` = real token.
        """
        raise NotImplementedError

    def forward(
        self, x: torch.Tensor, *, key_padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Self-attention over ``x`` ``(B, n, d_model)``; returns ``(B, n, d_model)``."""
        x = check_sequence(x, "x", self, self.d_model)
        if key_padding_mask is not None:
            check_key_padding_mask(key_padding_mask, x.shape[0], x.shape[1])
        q = split_heads(self.q_proj(x), self.num_heads)  # (B, H, n, D)
        k = split_heads(self.k_proj(x), self.num_heads)  # (B, H, n, D)
        v = split_heads(self.v_proj(x), self.num_heads)  # (B, H, n, D)
        out = self.attend(q, k, v, key_padding_mask)  # (B, H, n, D)
        return self.out_proj(merge_heads(out))  # (B, n, d_model)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, num_heads={self.num_heads}, causal={self.causal}"


def padding_to_mask(key_padding_mask: torch.Tensor | None) -> torch.Tensor | None:
    """``(B, n)`` key padding mask -> ``(B, 1, 1, n)`` attention mask (or ``None``)."""
    if key_padding_mask is None:
        return None
    return key_padding_mask[:, None, None, :]  # (B, 1, 1, n)

"""Changes to softmax attention in 2023-2025 language models, as small functions and one
configurable causal self-attention layer.

- **QK-norm** (Dehghani et al. 2023, ViT-22B, with LayerNorm; RMSNorm over the whole
  query/key projection in OLMo 2, per head in Qwen3 and Gemma 3, and per head here):
  normalise each query and key before the dot product, so the logits cannot grow with the
  norms of ``q`` and ``k`` (the failure the 1/sqrt(d_k) argument of chapter 1
  does not cover once ``q`` and ``k`` are trained and correlated).
- **Logit soft-capping** (Gemma Team 2024, Gemma 2): ``cap * tanh(s / cap)`` bounds every
  logit smoothly to ``(-cap, cap)`` (Gemma 2 uses ``cap = 50`` in attention).
- **Output gate** (Qiu et al. 2025, "Gated Attention for Large Language Models"): each
  head's output is multiplied elementwise by ``sigmoid(x W_g)``, after attention and
  before the output projection; a head can then output (nearly) nothing without having to
  park its weight on a "sink" token.
- **Sigmoid attention** (Ramapuram et al. 2024): ``sigmoid(q k^T / sqrt(d) + b) v`` with
  ``b = -log(n)``: each weight is computed on its own, rows need not sum to 1.
- **Differential attention** (Ye et al. 2024, "Differential Transformer"): the difference of
  two softmax maps, ``(softmax(Q_1 K_1^T / sqrt(d)) - lambda softmax(Q_2 K_2^T / sqrt(d))) V``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .._validate import (
    check_floating,
    check_mask,
    check_positive_int,
    check_positive_number,
    check_qkv,
    check_real,
    check_tensor,
    fmt_shape,
)
from ..attention import scaled_dot_product_attention
from ..heads import merge_heads, repeat_kv, split_heads
from ..masks import causal_mask
from ..positional import alibi_slopes, apply_rotary
from ..softmax import masked_softmax
from .rope_scaling import rope_cos_sin, scaled_rope_frequencies

__all__ = [
    "DifferentialAttention",
    "LLMSelfAttention",
    "differential_attention",
    "differential_lambda_init",
    "sigmoid_attention",
    "softcap",
]


def softcap(scores: torch.Tensor, cap: float) -> torch.Tensor:
    """``cap * tanh(scores / cap)``: close to ``scores`` for ``|scores| << cap``, never
    beyond ``+-cap`` (Gemma 2)."""
    check_floating(check_tensor(scores, "scores"), "scores")
    cap = check_positive_number(cap, "cap")
    return cap * torch.tanh(scores / cap)


def sigmoid_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    bias: float | None = None,
) -> torch.Tensor:
    """``sigmoid(q k^T / sqrt(d_k) + bias) v`` with masked (bool ``False``) weights set to 0.

    ``bias`` defaults to ``-log(n_k)``, the bias Ramapuram et al. 2024 recommend, which
    keeps the initial sum of a row near ``1``. Shapes as
    :func:`attnkit.attention.scaled_dot_product_attention`; only bool masks.
    """
    batch = check_qkv(q, k, v)
    n_q, n_k = q.shape[-2], k.shape[-2]
    if mask is not None:
        check_mask(mask, (*batch, n_q, n_k))
        if mask.dtype != torch.bool:
            raise TypeError(f"mask must be a bool tensor for sigmoid attention, got {mask.dtype}.")
    b = -math.log(max(n_k, 1)) if bias is None else check_real(bias, "bias")
    weights = torch.sigmoid(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]) + b)  # (..., n_q, n_k)
    if mask is not None:
        weights = weights.masked_fill(~mask, 0.0)
    return weights @ v  # (..., n_q, d_v)


def differential_lambda_init(layer: int) -> float:
    """``lambda_init = 0.8 - 0.6 exp(-0.3 (layer - 1))`` for layers counted from 1
    (Ye et al. 2024, section 2.1)."""
    layer = check_positive_int(layer, "layer")
    return 0.8 - 0.6 * math.exp(-0.3 * (layer - 1))


def differential_attention(
    q1: torch.Tensor,
    k1: torch.Tensor,
    q2: torch.Tensor,
    k2: torch.Tensor,
    v: torch.Tensor,
    lam: torch.Tensor | float,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """``(softmax(q1 k1^T / sqrt(d)) - lam * softmax(q2 k2^T / sqrt(d))) v``.

    Args:
        q1, k1, q2, k2: ``(..., n, d)`` halves of each head's queries and keys.
        v: ``(..., n_k, 2d)`` values.
        lam: the learned scalar ``lambda`` (a float or a 0-d tensor).
        mask: bool or additive mask for both maps.
    """
    check_qkv(q1, k1, v, names=("q1", "k1", "v"))
    check_qkv(q2, k2, v, names=("q2", "k2", "v"))
    if isinstance(lam, torch.Tensor):
        if lam.dim() != 0 or not lam.is_floating_point():
            raise ValueError(
                f"lam must be a float or a 0-d floating tensor, got {fmt_shape(lam.shape)}."
            )
    else:
        check_real(lam, "lam")
    a1 = scaled_dot_product_attention(q1, k1, v, mask)
    a2 = scaled_dot_product_attention(q2, k2, v, mask)
    return a1 - lam * a2  # (..., n_q, 2d)


class _HeadRMSNorm(nn.Module):
    """RMSNorm over the last axis with a learned gain (per head feature)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


class LLMSelfAttention(nn.Module):
    """Causal self-attention of a 2024-2025 decoder, one option per change.

    Args:
        d_model, num_heads: width and query heads; ``head_dim = d_model / num_heads``.
        num_kv_heads: grouped-query attention (default: ``num_heads``).
        rope_base: RoPE on queries and keys (``None``: no RoPE).
        qk_norm: RMSNorm of each head's queries and keys before the product.
        softcap: cap of the attention logits (``None``: none).
        output_gate: elementwise sigmoid gate on each head's output (Qiu et al. 2025).
        score: ``"softmax"`` or ``"sigmoid"`` (Ramapuram et al. 2024).
        window: sliding window (a query sees itself and the ``window - 1`` keys before
            it; ``None``: full causal attention).
        num_sinks: with a window, the first ``num_sinks`` positions stay visible to every
            query (attention sinks, Xiao et al. 2023).
        alibi: add the ALiBi bias ``-m_h (p_i - p_j)`` to the logits (Press et al. 2022;
            slopes of :func:`attnkit.positional.alibi_slopes`); needs ``rope_base=None``.

    Positions: ``forward(x, positions=p)`` gives token ``t`` the position ``p[t]`` (an
    integer or real tensor ``(T,)``; default ``0 .. T - 1``). Positions set the RoPE angles
    and the ALiBi distances only; the mask (causal, window, sinks) is by index in ``x``.
    :meth:`set_rope_scaling` swaps the rotary frequencies for those of PI, NTK-aware
    scaling or YaRN (and YaRN's logit multiplier), without touching the weights.

    ``forward(x, return_weights=True)`` also returns the weights ``(B, H, T, T)``.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        *,
        num_kv_heads: int | None = None,
        rope_base: float | None = 10000.0,
        qk_norm: bool = False,
        softcap: float | None = None,
        output_gate: bool = False,
        score: str = "softmax",
        window: int | None = None,
        num_sinks: int = 0,
        alibi: bool = False,
    ) -> None:
        super().__init__()
        self.d_model = check_positive_int(d_model, "d_model")
        self.num_heads = check_positive_int(num_heads, "num_heads")
        self.num_kv_heads = check_positive_int(num_kv_heads or num_heads, "num_kv_heads")
        if d_model % num_heads or num_heads % self.num_kv_heads:
            raise ValueError(
                f"d_model={d_model} must be divisible by num_heads={num_heads}, and "
                f"num_heads by num_kv_heads={self.num_kv_heads}."
            )
        for name, flag in (("qk_norm", qk_norm), ("output_gate", output_gate), ("alibi", alibi)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be True or False, got {flag!r}.")
        if score not in ("softmax", "sigmoid"):
            raise ValueError(f"score must be 'softmax' or 'sigmoid', got {score!r}.")
        self.head_dim = d_model // num_heads
        self.rope_base = (
            None if rope_base is None else check_positive_number(rope_base, "rope_base")
        )
        self.softcap = None if softcap is None else check_positive_number(softcap, "softcap")
        self.score = score
        self.window = None if window is None else check_positive_int(window, "window")
        self.num_sinks = check_positive_int(num_sinks, "num_sinks", allow_zero=True)
        if alibi and self.rope_base is not None:
            raise ValueError("alibi replaces RoPE: pass rope_base=None together with alibi=True.")
        self.alibi = alibi
        # Rotary frequencies theta_j (float64, (head_dim / 2,)) and the logit multiplier:
        # plain RoPE until set_rope_scaling changes them. Plain attributes, not buffers, so
        # that .float() / .double() never round the frequencies.
        self.rope_theta: torch.Tensor | None = None
        self.logit_scale = 1.0
        if self.rope_base is not None:
            self.set_rope_scaling()
        kv = self.num_kv_heads * self.head_dim
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, kv, bias=False)
        self.v_proj = nn.Linear(d_model, kv, bias=False)
        self.out_proj = nn.Linear(d_model, d_model, bias=False)
        self.q_norm = _HeadRMSNorm(self.head_dim) if qk_norm else None
        self.k_norm = _HeadRMSNorm(self.head_dim) if qk_norm else None
        self.gate = nn.Linear(d_model, d_model, bias=True) if output_gate else None

    def mask(self, T: int, device: torch.device | None = None) -> torch.Tensor:
        """The bool mask ``(T, T)``: causal, within the window, or one of the sinks."""
        allowed = causal_mask(T, device=device)  # (T, T)
        if self.window is not None:
            i = torch.arange(T, device=device)
            near = (i[:, None] - i[None, :]) < self.window
            sink = i[None, :] < self.num_sinks
            allowed = allowed & (near | sink)
        return allowed

    def set_rope_scaling(
        self,
        method: str = "none",
        factor: float = 1.0,
        original_length: int | None = None,
        *,
        alpha: float = 1.0,
        beta: float = 32.0,
    ) -> None:
        """Use the rotary frequencies (and logit multiplier) of
        :func:`~attnkit.llm.rope_scaling.scaled_rope_frequencies` for ``method`` in
        ``"none"``, ``"pi"``, ``"ntk"``, ``"yarn"``; ``set_rope_scaling()`` restores plain
        RoPE. No weight changes: this is scaling without fine-tuning."""
        if self.rope_base is None:
            raise ValueError("set_rope_scaling needs a RoPE layer (rope_base is None).")
        self.rope_theta, self.logit_scale = scaled_rope_frequencies(
            self.head_dim,
            base=self.rope_base,
            method=method,
            factor=factor,
            original_length=original_length,
            alpha=alpha,
            beta=beta,
        )

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries ``(B, H, T, D)``, keys and values ``(B, H_kv, T, D)`` of ``x``
        ``(B, T, d_model)``: projected, split into heads, QK-normed; not yet rotated."""
        q = split_heads(self.q_proj(x), self.num_heads)  # (B, H, T, D)
        k = split_heads(self.k_proj(x), self.num_kv_heads)  # (B, H_kv, T, D)
        v = split_heads(self.v_proj(x), self.num_kv_heads)
        if self.q_norm is not None and self.k_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        return q, k, v

    def rotate(self, t: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """RoPE (with the current frequencies) of queries or keys ``t`` ``(..., T, D)`` at
        ``positions`` ``(T,)``; ``t`` unchanged in a layer without RoPE."""
        if self.rope_theta is None:
            return t
        cos, sin = rope_cos_sin(positions, self.rope_theta, dtype=t.dtype)  # (T, D)
        return apply_rotary(t, cos.to(t.device), sin.to(t.device))

    def logits(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        q_positions: torch.Tensor,
        k_positions: torch.Tensor,
    ) -> torch.Tensor:
        """The logits ``(B, H, T_q, T_k)`` fed to the softmax (or sigmoid), unmasked: for
        rotated queries ``(B, H, T_q, D)`` and keys ``(B, H_kv, T_k, D)``,
        ``q k^T / sqrt(D)``, times YaRN's multiplier, plus ALiBi's bias (at the
        positions of queries and keys), then soft-capped."""
        k = repeat_kv(k, self.num_heads // self.num_kv_heads)  # (B, H, T_k, D)
        logits = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)  # (B, H, T_q, T_k)
        if self.logit_scale != 1.0:
            logits = logits * self.logit_scale
        if self.alibi:
            slopes = alibi_slopes(self.num_heads, dtype=torch.float64)  # (H,)
            distance = q_positions.to(torch.float64)[:, None] - k_positions.to(torch.float64)
            bias = -slopes[:, None, None] * distance  # (H, T_q, T_k)
            logits = logits + bias.to(logits.dtype).to(logits.device)
        if self.softcap is not None:
            logits = softcap(logits, self.softcap)
        return logits

    def attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        mask: torch.Tensor,
        q_positions: torch.Tensor,
        k_positions: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Heads ``(B, H, T_q, D)`` and weights ``(B, H, T_q, T_k)`` for rotated queries
        ``(B, H, T_q, D)``, rotated keys and values ``(B, H_kv, T_k, D)``, a bool ``mask``
        ``(T_q, T_k)`` and the positions of queries and keys (for ALiBi)."""
        logits = self.logits(q, k, q_positions, k_positions)  # (B, H, T_q, T_k)
        if self.score == "softmax":
            weights = masked_softmax(logits, mask)
        else:
            weights = torch.sigmoid(logits - math.log(k.shape[-2])).masked_fill(~mask, 0.0)
        v = repeat_kv(v, self.num_heads // self.num_kv_heads)  # (B, H, T_k, D)
        return weights @ v, weights  # (B, H, T_q, D), (B, H, T_q, T_k)

    def forward(
        self,
        x: torch.Tensor,
        *,
        positions: torch.Tensor | None = None,
        return_weights: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        check_floating(check_tensor(x, "x", min_dim=3), "x")
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"x must have shape (B, T, {self.d_model}), got {fmt_shape(x.shape)}.")
        if not isinstance(return_weights, bool):
            raise TypeError(f"return_weights must be True or False, got {return_weights!r}.")
        T = x.shape[1]
        if positions is None:
            positions = torch.arange(T, device=x.device)
        else:
            check_tensor(positions, "positions", min_dim=1)
            if positions.shape != (T,) or positions.dtype == torch.bool:
                raise ValueError(
                    f"positions must be a numeric tensor of shape ({T},), "
                    f"got {fmt_shape(positions.shape)} {positions.dtype}."
                )
        q, k, v = self.project(x)  # (B, H, T, D), (B, H_kv, T, D) x 2
        q, k = self.rotate(q, positions), self.rotate(k, positions)
        heads, weights = self.attend(q, k, v, self.mask(T, x.device), positions, positions)
        if self.gate is not None:
            heads = heads * torch.sigmoid(split_heads(self.gate(x), self.num_heads))
        out = self.out_proj(merge_heads(heads))  # (B, T, d_model)
        return (out, weights) if return_weights else out


class DifferentialAttention(nn.Module):
    """Causal multi-head differential attention (Ye et al. 2024, section 2.1).

    Each of the ``num_heads`` heads has two query/key halves of size ``d`` and values of
    size ``2d`` (``d_model = num_heads * 2d``); ``lambda`` is re-parameterised as
    ``exp(lq1 . lk1) - exp(lq2 . lk2) + lambda_init``; each head's output goes through an
    RMSNorm and is scaled by ``1 - lambda_init``.
    """

    def __init__(self, d_model: int, num_heads: int, *, layer: int = 1) -> None:
        super().__init__()
        self.d_model = check_positive_int(d_model, "d_model")
        self.num_heads = check_positive_int(num_heads, "num_heads")
        if d_model % (2 * num_heads):
            raise ValueError(
                f"d_model={d_model} must be divisible by 2 * num_heads={2 * num_heads}."
            )
        self.d = d_model // (2 * num_heads)
        self.lambda_init = differential_lambda_init(layer)
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.out_proj = nn.Linear(d_model, d_model, bias=False)
        self.lambda_q1, self.lambda_k1, self.lambda_q2, self.lambda_k2 = (
            nn.Parameter(torch.randn(self.d) * 0.1) for _ in range(4)
        )
        self.norm = _HeadRMSNorm(2 * self.d)

    def lam(self) -> torch.Tensor:
        """The current ``lambda`` (a 0-d tensor)."""
        return (
            torch.exp(self.lambda_q1 @ self.lambda_k1)
            - torch.exp(self.lambda_q2 @ self.lambda_k2)
            + self.lambda_init
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_floating(check_tensor(x, "x", min_dim=3), "x")
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"x must have shape (B, T, {self.d_model}), got {fmt_shape(x.shape)}.")
        T = x.shape[1]
        q = split_heads(self.q_proj(x), 2 * self.num_heads)  # (B, 2H, T, d)
        k = split_heads(self.k_proj(x), 2 * self.num_heads)
        v = split_heads(self.v_proj(x), self.num_heads)  # (B, H, T, 2d)
        q1, q2 = q[:, 0::2], q[:, 1::2]  # (B, H, T, d) each
        k1, k2 = k[:, 0::2], k[:, 1::2]
        heads = differential_attention(
            q1, k1, q2, k2, v, self.lam(), causal_mask(T, device=x.device)
        )
        heads = self.norm(heads) * (1 - self.lambda_init)  # (B, H, T, 2d)
        return self.out_proj(merge_heads(heads))  # (B, T, d_model)

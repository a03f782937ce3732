"""DeltaNet and Gated DeltaNet: linear attention with the delta rule, in the recurrent
and the chunkwise-parallel form (Yang et al. 2024, "Parallelizing Linear Transformers with
the Delta Rule over Sequence Length"; Yang, Kautz and Hatamizadeh 2024, "Gated Delta
Networks").

Linear attention keeps a state ``S`` (``d_v x d_k``) instead of a growing cache and reads
it with the query, ``o_t = S_t q_t``. Plain linear attention only adds,
``S_t = S_{t-1} + v_t k_t^T``, so old associations are never removed. The delta rule first
reads what the state predicts for ``k_t`` and moves it towards ``v_t`` by a step
``beta_t in (0, 1]``; Gated DeltaNet also decays the whole state by ``alpha_t in (0, 1]``::

    S_t = alpha_t * S_{t-1} (I - beta_t k_t k_t^T) + beta_t v_t k_t^T,    o_t = S_t q_t

(``alpha_t = 1``: DeltaNet.) The recurrence is sequential in ``t``. The chunkwise form
splits the sequence into chunks of ``C`` positions. Inside a chunk starting from state
``S`` it writes the product of the ``(I - beta k k^T)`` factors in the WY form
``I - sum_j w_j k_j^T`` and solves for all ``w_j`` (and the value updates ``u_j``) with one
triangular system, so each chunk is a few matrix products (see
:func:`delta_rule_chunkwise`). Both forms compute the same outputs (tested in float64).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._validate import check_floating, check_positive_int, check_tensor, fmt_shape
from ..heads import merge_heads, split_heads

__all__ = ["DeltaNetAttention", "delta_rule_chunkwise", "delta_rule_recurrent"]


def _check_delta_inputs(q, k, v, beta, alpha, initial_state) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        check_floating(check_tensor(t, name, min_dim=4), name)
        if t.dim() != 4:
            raise ValueError(f"{name} must have shape (B, H, T, D), got {fmt_shape(t.shape)}.")
    B, H, T, d_k = q.shape
    if k.shape != q.shape or v.shape[:3] != (B, H, T):
        raise ValueError(
            f"q and k must have one shape (B, H, T, d_k) and v (B, H, T, d_v); got "
            f"q {fmt_shape(q.shape)}, k {fmt_shape(k.shape)}, v {fmt_shape(v.shape)}."
        )
    for name, t in (("beta", beta), ("alpha", alpha)):
        if t is None and name == "alpha":
            continue
        check_floating(check_tensor(t, name, min_dim=3), name)
        if tuple(t.shape) != (B, H, T):
            raise ValueError(
                f"{name} must have shape (B, H, T) = {(B, H, T)}, got {fmt_shape(t.shape)}."
            )
    if initial_state is not None:
        check_floating(check_tensor(initial_state, "initial_state", min_dim=4), "initial_state")
        if tuple(initial_state.shape) != (B, H, v.shape[-1], d_k):
            raise ValueError(
                f"initial_state must have shape (B, H, d_v, d_k) = {(B, H, v.shape[-1], d_k)}, "
                f"got {fmt_shape(initial_state.shape)}."
            )


def delta_rule_recurrent(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    alpha: torch.Tensor | None = None,
    *,
    initial_state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The (gated) delta rule, one position at a time: the reference.

    Args:
        q, k: ``(B, H, T, d_k)``; DeltaNet layers L2-normalise ``k`` (and ``q``) so that
            ``I - beta k k^T`` is a contraction.
        v: ``(B, H, T, d_v)``.
        beta: writing strengths ``(B, H, T)`` in ``(0, 1]``.
        alpha: decays ``(B, H, T)`` in ``(0, 1]``, or ``None`` for DeltaNet (all 1).
        initial_state: ``S_0`` ``(B, H, d_v, d_k)``; default zeros.

    Returns:
        ``(o, S_T)``: outputs ``(B, H, T, d_v)`` and the final state ``(B, H, d_v, d_k)``.
    """
    _check_delta_inputs(q, k, v, beta, alpha, initial_state)
    B, H, T, d_k = k.shape
    S = q.new_zeros(B, H, v.shape[-1], d_k) if initial_state is None else initial_state
    outputs = []
    for t in range(T):
        k_t, v_t, b_t = k[:, :, t], v[:, :, t], beta[:, :, t, None]  # (B, H, d), (B, H, 1)
        if alpha is not None:
            S = alpha[:, :, t, None, None] * S  # decay the whole state
        predicted = (S @ k_t[..., None]).squeeze(-1)  # S k_t, (B, H, d_v)
        S = S + (b_t * (v_t - predicted))[..., None] * k_t[:, :, None, :]  # (B, H, d_v, d_k)
        outputs.append((S @ q[:, :, t, :, None]).squeeze(-1))  # S_t q_t, (B, H, d_v)
    return torch.stack(outputs, dim=2), S


def delta_rule_chunkwise(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    alpha: torch.Tensor | None = None,
    *,
    chunk_size: int = 64,
    initial_state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same outputs as :func:`delta_rule_recurrent`, a chunk at a time.

    In a chunk of ``C`` positions starting from state ``S``, with cumulative decays
    ``g_i = alpha_1 ... alpha_i`` (all 1 for DeltaNet) and ``D_ij = g_i / g_j``::

        (I + diag(beta) strict_lower(K K^T)) W = diag(beta) K                   (WY form)
        (I + diag(beta) strict_lower(D * K K^T)) U = diag(beta) V
        U' = U - diag(g) W S^T                       (what each write adds, given S)
        O  = diag(g) Q S^T + (lower(Q K^T) * D) U'   (lower includes the diagonal)
        S' = g_C S + U'^T diag(g_C / g) K

    Two triangular solves and a few ``C x C`` and ``C x d`` products per chunk, instead
    of ``C`` sequential rank-one updates. Args and returns as in the recurrent form, plus
    ``chunk_size`` (``C``; the last chunk may be shorter).
    """
    _check_delta_inputs(q, k, v, beta, alpha, initial_state)
    C = check_positive_int(chunk_size, "chunk_size")
    B, H, T, d_k = k.shape
    S = q.new_zeros(B, H, v.shape[-1], d_k) if initial_state is None else initial_state
    log_alpha = None if alpha is None else torch.log(alpha)
    outputs = []
    for start in range(0, T, C):
        sl = slice(start, min(start + C, T))
        Q, K, V, b = q[:, :, sl], k[:, :, sl], v[:, :, sl], beta[:, :, sl, None]  # (B, H, c, .)
        c = K.shape[2]
        if log_alpha is None:
            g = q.new_ones(B, H, c, 1)  # (B, H, c, 1)
            D = q.new_ones(B, H, c, c)
        else:
            log_g = log_alpha[:, :, sl].cumsum(-1)  # (B, H, c)
            g = log_g.exp()[..., None]
            diff = log_g[..., :, None] - log_g[..., None, :]  # log(g_i / g_j), (B, H, c, c)
            D = diff.masked_fill(
                ~torch.ones(c, c, dtype=torch.bool, device=q.device).tril(), float("-inf")
            ).exp()
        KK = K @ K.transpose(-2, -1)  # (B, H, c, c)
        eye = torch.eye(c, dtype=q.dtype, device=q.device)
        A_w = eye + b * KK.tril(-1)  # unit lower triangular
        A_u = eye + b * (KK * D).tril(-1)
        W = torch.linalg.solve_triangular(A_w, b * K, upper=False, unitriangular=True)
        U = torch.linalg.solve_triangular(A_u, b * V, upper=False, unitriangular=True)
        U_prime = U - g * (W @ S.transpose(-2, -1))  # (B, H, c, d_v)
        scores = (Q @ K.transpose(-2, -1)).tril() * D  # (B, H, c, c)
        outputs.append(g * (Q @ S.transpose(-2, -1)) + scores @ U_prime)  # (B, H, c, d_v)
        g_last = g[:, :, -1:, :]  # (B, H, 1, 1)
        S = g_last[..., 0:1] * S + U_prime.transpose(-2, -1) @ ((g_last / g) * K)
    return torch.cat(outputs, dim=2), S


class DeltaNetAttention(nn.Module):
    """A (Gated) DeltaNet token mixer: projections, L2-normalised queries and keys,
    ``beta = sigmoid(x W_beta)`` per head, optional ``alpha = sigmoid(x W_alpha)`` per
    head, the delta rule in chunks, and an output projection.

    Simplified against the papers: no short convolutions, no output norm or gate, and
    ``alpha`` is a plain sigmoid where Gated DeltaNet parameterises its decay as Mamba2
    does (these change the model, not the delta rule, which is what is tested here).
    """

    def __init__(
        self, d_model: int, num_heads: int, *, gated: bool = False, chunk_size: int = 64
    ) -> None:
        super().__init__()
        self.d_model = check_positive_int(d_model, "d_model")
        self.num_heads = check_positive_int(num_heads, "num_heads")
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} must be divisible by num_heads={num_heads}.")
        if not isinstance(gated, bool):
            raise TypeError(f"gated must be True or False, got {gated!r}.")
        self.chunk_size = check_positive_int(chunk_size, "chunk_size")
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.w_beta = nn.Linear(d_model, num_heads)
        self.w_alpha = nn.Linear(d_model, num_heads) if gated else None
        self.out_proj = nn.Linear(d_model, d_model, bias=False)

    def forward(self, x: torch.Tensor, *, recurrent: bool = False) -> torch.Tensor:
        """``x`` ``(B, T, d_model)`` -> ``(B, T, d_model)``; causal by construction.
        ``recurrent=True`` uses the sequential reference instead of chunks."""
        check_floating(check_tensor(x, "x", min_dim=3), "x")
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"x must have shape (B, T, {self.d_model}), got {fmt_shape(x.shape)}.")
        q, k, v = (split_heads(t, self.num_heads) for t in self.qkv(x).chunk(3, dim=-1))
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)  # (B, H, T, D)
        beta = torch.sigmoid(self.w_beta(x)).transpose(1, 2)  # (B, H, T)
        alpha = None if self.w_alpha is None else torch.sigmoid(self.w_alpha(x)).transpose(1, 2)
        if recurrent:
            o, _ = delta_rule_recurrent(q, k, v, beta, alpha)
        else:
            o, _ = delta_rule_chunkwise(q, k, v, beta, alpha, chunk_size=self.chunk_size)
        return self.out_proj(merge_heads(o))  # (B, T, d_model)

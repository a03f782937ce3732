"""The scoring rules that came before scaled dot-product attention.

* Additive attention (Bahdanau, Cho & Bengio, 2014, "Neural Machine Translation by
  Jointly Learning to Align and Translate"): ``score(q, k) = w^T tanh(W_q q + W_k k)``.
* Multiplicative attention (Luong, Pham & Manning, 2015, "Effective Approaches to
  Attention-based Neural Machine Translation"): ``dot``: ``q^T k``; ``general``:
  ``q^T W k``.

Both feed the same masked softmax and weighted sum as scaled dot-product attention
(:func:`attnkit.attention.attend`); only the score changes. Scores have shape
``(..., n_q, n_k)`` for queries ``(..., n_q, d_q)`` and keys ``(..., n_k, d_k)``.
"""

from __future__ import annotations

import torch
from torch import nn

from ._validate import (
    broadcast_batch,
    check_bool,
    check_choice,
    check_floating,
    check_mask,
    check_module_dtype,
    check_positive_int,
    check_probability,
    check_same_dtype,
    check_tensor,
    compute_dtype,
    fmt_shape,
)
from .attention import _attend


def _check_pair(q: object, k: object, d_q: int, d_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    for name, t, d in (("q", q, d_q), ("k", k, d_k)):
        check_floating(check_tensor(t, name, min_dim=2), name)
        assert isinstance(t, torch.Tensor)
        if t.shape[-1] != d:
            raise ValueError(
                f"{name} must have last dimension {d}, got shape {fmt_shape(t.shape)}."
            )
    assert isinstance(q, torch.Tensor) and isinstance(k, torch.Tensor)
    broadcast_batch("q and k", q=q.shape[:-2], k=k.shape[:-2])
    return q, k


def _check_weight(
    w: object, name: str, shape: tuple[int, ...], like: torch.Tensor, fits: str
) -> torch.Tensor:
    check_floating(check_tensor(w, name), name)
    assert isinstance(w, torch.Tensor)
    if tuple(w.shape) != shape:
        raise ValueError(
            f"{name} must have shape {fmt_shape(shape)} to fit {fits}, got {fmt_shape(w.shape)}."
        )
    check_same_dtype(**{"q": like, name: w})
    return w


def _additive(q, k, w_q, w_k, w):  # arguments checked by the callers
    work = compute_dtype(q.dtype)  # 16-bit inputs: float32, as SDPA's math path
    hq = q.to(work) @ w_q.to(work).T  # (..., n_q, d_hidden)
    hk = k.to(work) @ w_k.to(work).T  # (..., n_k, d_hidden)
    hidden = torch.tanh(hq.unsqueeze(-2) + hk.unsqueeze(-3))  # (..., n_q, n_k, d_hidden)
    return hidden @ w.to(work)  # (..., n_q, n_k) in the working dtype


def _multiplicative(q, k, w):  # arguments checked by the callers
    work = compute_dtype(q.dtype)
    q = q.to(work)
    if w is not None:
        q = q @ w.to(work)  # (..., n_q, d_k)
    return q @ k.to(work).transpose(-2, -1)  # (..., n_q, n_k) in the working dtype


def additive_scores(
    q: torch.Tensor, k: torch.Tensor, w_q: torch.Tensor, w_k: torch.Tensor, w: torch.Tensor
) -> torch.Tensor:
    """Bahdanau scores ``w^T tanh(q W_q^T + k W_k^T)`` for every query/key pair.

    Args:
        q: ``(..., n_q, d_q)``; k: ``(..., n_k, d_k)``.
        w_q: ``(d_hidden, d_q)``; w_k: ``(d_hidden, d_k)``; w: ``(d_hidden,)``; all five
            share one floating dtype. 16-bit inputs are computed in float32 (no overflow
            of ``q W_q^T`` past 65,504) and the scores cast back.

    Returns:
        ``(..., n_q, n_k)``. Memory is ``O(n_q * n_k * d_hidden)``, one reason the
        dot product (no hidden layer per pair) replaced it.

    Raises:
        TypeError: if an argument is not a floating tensor, or the dtypes differ.
        ValueError: if a shape disagrees with the ones above.
    """
    for name, t in (("q", q), ("k", k)):
        check_floating(check_tensor(t, name, min_dim=2), name)
    q, k = _check_pair(q, k, q.shape[-1], k.shape[-1])
    check_floating(check_tensor(w_q, "w_q", min_dim=2), "w_q")
    d_hidden = w_q.shape[0]
    _check_weight(w_q, "w_q", (d_hidden, q.shape[-1]), q, "q (..., d_q)")
    _check_weight(w_k, "w_k", (d_hidden, k.shape[-1]), q, "k (..., d_k) and w_q (d_hidden, d_q)")
    _check_weight(w, "w", (d_hidden,), q, "w_q (d_hidden, d_q)")
    check_same_dtype(q=q, k=k)
    return _additive(q, k, w_q, w_k, w).to(q.dtype)


def multiplicative_scores(
    q: torch.Tensor, k: torch.Tensor, w: torch.Tensor | None = None
) -> torch.Tensor:
    """Luong scores: ``q k^T`` ("dot", ``w=None``) or ``q W k^T`` ("general").

    Args:
        q: ``(..., n_q, d_q)``; k: ``(..., n_k, d_k)`` with ``d_k = d_q`` for "dot".
        w: optional ``(d_q, d_k)`` matrix. One floating dtype for all; 16-bit inputs are
            computed in float32 and the scores cast back.

    Returns:
        ``(..., n_q, n_k)``, unscaled (Luong et al. did not divide by ``sqrt(d)``).

    Raises:
        TypeError: if an argument is not a floating tensor, or the dtypes differ.
        ValueError: if the shapes do not fit (``d_q = d_k`` without ``w``).
    """
    check_floating(check_tensor(q, "q", min_dim=2), "q")
    check_floating(check_tensor(k, "k", min_dim=2), "k")
    d_k = k.shape[-1]
    if w is None:
        q, k = _check_pair(q, k, d_k, d_k)
    else:
        q, k = _check_pair(q, k, q.shape[-1], d_k)
        _check_weight(w, "w", (q.shape[-1], d_k), q, "q (..., d_q) and k (..., d_k)")
    check_same_dtype(q=q, k=k)
    return _multiplicative(q, k, w).to(q.dtype)


class _ScoredAttention(nn.Module):
    """Shared forward: score, then :func:`.attend` (masked softmax + weighted sum)."""

    d_q: int
    d_k: int
    dropout: float

    def _scores(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError  # each scoring rule defines its own

    def scores(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """``(..., n_q, n_k)`` scores in the dtype of ``q`` (computed in float32 for 16-bit
        inputs); ``q`` ``(..., n_q, d_q)``, ``k`` ``(..., n_k, d_k)``."""
        q, k = _check_pair(q, k, self.d_q, self.d_k)
        for name, t in (("q", q), ("k", k)):
            check_module_dtype(t, name, self)
        return self._scores(q, k).to(q.dtype)

    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        mask: torch.Tensor | None = None,
        *,
        return_weights: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Attend queries ``(..., n_q, d_q)`` over keys ``(..., n_k, d_k)`` and values
        ``(..., n_k, d_v)``; ``mask`` as in :func:`.scaled_dot_product_attention`."""
        q, k = _check_pair(q, k, self.d_q, self.d_k)
        check_floating(check_tensor(v, "v", min_dim=2), "v")
        for name, t in (("q", q), ("k", k), ("v", v)):
            check_module_dtype(t, name, self)
        check_same_dtype(q=q, k=k, v=v)
        if v.shape[-2] != k.shape[-2]:
            raise ValueError(
                f"k and v must have the same number of keys n_k; got k {fmt_shape(k.shape)} "
                f"and v {fmt_shape(v.shape)}."
            )
        broadcast_batch("q, k and v", q=q.shape[:-2], k=k.shape[:-2], v=v.shape[:-2])
        return_weights = check_bool(return_weights, "return_weights")
        scores = self._scores(q, k)  # (..., n_q, n_k), float32 for 16-bit inputs
        if mask is not None:
            check_mask(mask, scores.shape)
        p = self.dropout if self.training else 0.0
        work = v.to(scores.dtype)
        output, weights = _attend(scores, work, mask, p, None, strict=False)
        output, weights = output.to(v.dtype), weights.to(q.dtype)
        return (output, weights) if return_weights else output


class AdditiveAttention(_ScoredAttention):
    """Bahdanau et al. (2014) additive attention as a module.

    Args:
        d_q: query size; d_k: key size; d_hidden: size of the hidden tanh layer.
        dropout: dropout on the weights in training mode.
    """

    def __init__(self, d_q: int, d_k: int, d_hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.d_q = check_positive_int(d_q, "d_q")
        self.d_k = check_positive_int(d_k, "d_k")
        d_hidden = check_positive_int(d_hidden, "d_hidden")
        self.dropout = check_probability(dropout, "dropout")
        self.w_q = nn.Linear(d_q, d_hidden, bias=False)
        self.w_k = nn.Linear(d_k, d_hidden, bias=False)
        self.w = nn.Linear(d_hidden, 1, bias=False)

    def _scores(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return _additive(q, k, self.w_q.weight, self.w_k.weight, self.w.weight[0])


class MultiplicativeAttention(_ScoredAttention):
    """Luong et al. (2015) multiplicative attention: ``variant="dot"`` or ``"general"``.

    Args:
        d_q: query size; d_k: key size (must equal ``d_q`` for "dot").
        variant: ``"dot"`` (no parameters) or ``"general"`` (a ``d_q x d_k`` matrix).
        dropout: dropout on the weights in training mode.
    """

    def __init__(self, d_q: int, d_k: int, variant: str = "general", dropout: float = 0.0) -> None:
        super().__init__()
        self.d_q = check_positive_int(d_q, "d_q")
        self.d_k = check_positive_int(d_k, "d_k")
        self.dropout = check_probability(dropout, "dropout")
        check_choice(variant, "variant", ("dot", "general"))
        if variant == "dot" and d_q != d_k:
            raise ValueError(f'variant="dot" needs d_q == d_k, got d_q={d_q}, d_k={d_k}.')
        self.variant = variant
        self.w = nn.Parameter(torch.empty(d_q, d_k)) if variant == "general" else None
        if self.w is not None:
            nn.init.xavier_uniform_(self.w)

    def _scores(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return _multiplicative(q, k, self.w)

    def extra_repr(self) -> str:
        return f"d_q={self.d_q}, d_k={self.d_k}, variant={self.variant!r}"

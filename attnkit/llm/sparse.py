"""Sparse attention of 2025 language models: a top-k token selector in the style of
DeepSeek Sparse Attention, and Native Sparse Attention's three branches.

- **Top-k selection** (DeepSeek-AI 2025, DeepSeek-V3.2-Exp): a small "lightning indexer"
  scores every earlier token for each query,
  ``I[t, s] = sum_j w[t, j] * relu(q_I[t, j] . k_I[s])`` over a few indexer heads ``j``,
  and attention then reads only the ``top_k`` best tokens. The attention itself is exact
  on the selected set: :func:`topk_sparse_attention` equals dense attention with every
  unselected key masked out.
- **Native Sparse Attention** (Yuan et al. 2025, NSA): each query combines, with gates,
  (1) attention over *compressed* blocks of keys and values, (2) attention over the
  tokens of the ``top_blocks`` blocks that (1) found most important, and (3) a sliding
  window. Here a block is compressed by its mean (the paper learns an MLP with
  intra-block positions) and selection blocks equal compression blocks (the paper allows
  other sizes); both are stated simplifications that keep the branch structure.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .._validate import (
    check_bool,
    check_floating,
    check_positive_int,
    check_qkv,
    check_tensor,
    fmt_shape,
)
from ..attention import scaled_dot_product_attention
from ..masks import causal_mask

__all__ = [
    "indexer_scores",
    "nsa_attention",
    "nsa_masks",
    "topk_sparse_attention",
    "topk_token_mask",
]


def indexer_scores(q_index: torch.Tensor, k_index: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Lightning-indexer scores ``I[b,t,s] = sum_j w[b,t,j] relu(q_index[b,t,j] . k_index[b,s])``.

    Args:
        q_index: ``(B, T, H_I, d_I)`` indexer queries (``H_I`` small, e.g. 64 in V3.2).
        k_index: ``(B, S, d_I)`` one indexer key per token.
        w: ``(B, T, H_I)`` per-query head weights.

    Returns:
        ``(B, T, S)`` scores (not masked; see :func:`topk_token_mask`).
    """
    for name, t, d in (("q_index", q_index, 4), ("k_index", k_index, 3), ("w", w, 3)):
        check_floating(check_tensor(t, name, min_dim=d), name)
        if t.dim() != d:
            raise ValueError(f"{name} must have {d} dimensions, got {fmt_shape(t.shape)}.")
    if q_index.shape[-1] != k_index.shape[-1] or w.shape != q_index.shape[:3]:
        raise ValueError(
            f"q_index (B, T, H_I, d_I) {fmt_shape(q_index.shape)}, k_index (B, S, d_I) "
            f"{fmt_shape(k_index.shape)} and w (B, T, H_I) {fmt_shape(w.shape)} do not match."
        )
    dots = torch.einsum("bthd,bsd->bths", q_index, k_index)  # (B, T, H_I, S)
    return torch.einsum("bth,bths->bts", w, F.relu(dots))  # (B, T, S)


def topk_token_mask(scores: torch.Tensor, top_k: int, *, causal: bool = True) -> torch.Tensor:
    """Bool mask ``(B, T, S)``: for each query the ``top_k`` highest-scoring keys among
    those it may see (all of them when it may see fewer); ties go to the earlier key.
    With ``causal``, query ``t`` sees keys ``s <= t + S - T``."""
    check_floating(check_tensor(scores, "scores", min_dim=2), "scores")
    top_k = check_positive_int(top_k, "top_k")
    causal = check_bool(causal, "causal")
    T, S = scores.shape[-2:]
    visible = causal_mask(T, S, device=scores.device) if causal else scores.new_ones(T, S).bool()
    masked = scores.masked_fill(~visible, float("-inf"))
    k = min(top_k, S)
    # stable descending sort: equal scores keep their order, so the earlier key wins
    order = torch.sort(masked, dim=-1, descending=True, stable=True).indices[..., :k]
    chosen = torch.zeros_like(masked, dtype=torch.bool).scatter(-1, order, True)
    return chosen & visible


def topk_sparse_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, selected: torch.Tensor
) -> torch.Tensor:
    """Attention of each query over its selected keys only, computed by *gathering* them.

    Args:
        q: ``(B, H, T, D)``; k, v: ``(B, S, D)`` and ``(B, S, D_v)``, shared by the heads
            (MQA, as MLA's absorbed form is in DeepSeek-V3.2).
        selected: bool ``(B, T, S)``, e.g. from :func:`topk_token_mask`; every query must
            select at least one key. Queries may select different numbers of keys (a causal
            top-k selects ``min(t + 1, k)``): the gather pads to the largest count ``K``
            and masks the padding.

    Returns:
        ``(B, H, T, D_v)``: equal to dense attention with ``mask = selected``, at a cost
        ``O(T K)`` instead of ``O(T S)``.
    """
    for name, t in (("q", q), ("k", k), ("v", v)):
        check_floating(check_tensor(t, name, min_dim=4 if name == "q" else 3), name)
    check_qkv(q, k[:, None], v[:, None])
    check_tensor(selected, "selected", min_dim=3)
    B, _, T, D = q.shape
    if selected.dtype != torch.bool or tuple(selected.shape) != (B, T, k.shape[1]):
        raise ValueError(
            f"selected must be a bool tensor (B, T, S) = {(B, T, k.shape[1])}, got "
            f"{selected.dtype} {fmt_shape(selected.shape)}."
        )
    counts = selected.sum(-1)  # (B, T)
    if bool((counts == 0).any()):
        raise ValueError("every query must select at least one key.")
    K = int(counts.max())
    # indices of the selected keys, padded with the last one and masked below
    idx = torch.sort(selected.to(torch.int8), dim=-1, descending=True, stable=True).indices[..., :K]
    valid = torch.arange(K, device=q.device) < counts[..., None]  # (B, T, K)
    batch = torch.arange(B, device=q.device)[:, None, None]
    k_sel, v_sel = k[batch, idx], v[batch, idx]  # (B, T, K, D), (B, T, K, D_v)
    scores = torch.einsum("bhtd,btkd->bhtk", q, k_sel) / D**0.5  # (B, H, T, K)
    weights = torch.softmax(scores.masked_fill(~valid[:, None], float("-inf")), dim=-1)
    return torch.einsum("bhtk,btkd->bhtd", weights, v_sel)  # (B, H, T, D_v)


def nsa_masks(
    q: torch.Tensor, k: torch.Tensor, *, block_size: int, top_blocks: int, window: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The token masks of NSA's selection and window branches and the block mask of its
    compression branch, for causal self-attention.

    Returns:
        ``(compressed, selected, windowed)``: ``(B, T, n_blocks)`` -- block ``b`` is visible
        to query ``t`` once it is complete (``(b + 1) * block_size - 1 <= t``);
        ``(B, T, T)`` -- the tokens (``<= t``) of the ``top_blocks`` complete blocks with
        the largest compressed attention summed over heads, plus ``t``'s own block; and
        ``(T, T)`` -- the last ``window`` tokens.
    """
    check_qkv(q, k, k)
    block_size = check_positive_int(block_size, "block_size")
    top_blocks = check_positive_int(top_blocks, "top_blocks", allow_zero=True)
    window = check_positive_int(window, "window")
    B, _, T, D = q.shape
    n_blocks = T // block_size
    t = torch.arange(T, device=q.device)
    block_end = torch.arange(n_blocks, device=q.device) * block_size + block_size - 1
    compressed = (block_end[None, :] <= t[:, None]).expand(B, T, n_blocks)  # (B, T, nb)
    k_cmp = k[:, :, : n_blocks * block_size].unflatten(2, (n_blocks, block_size)).mean(3)
    p_cmp = torch.softmax(
        (q @ k_cmp.transpose(-2, -1) / D**0.5).masked_fill(~compressed[:, None], float("-inf")),
        dim=-1,
    ).nan_to_num(0.0)  # (B, H, T, nb); rows with no complete block are all 0
    importance = p_cmp.sum(1).masked_fill(~compressed, float("-inf"))  # (B, T, nb)
    chosen = torch.zeros(B, T, n_blocks + 1, dtype=torch.bool, device=q.device)
    if n_blocks and top_blocks:
        order = torch.sort(importance, dim=-1, descending=True, stable=True).indices
        order = order[..., : min(top_blocks, n_blocks)]
        chosen[..., :n_blocks] = torch.zeros(
            B, T, n_blocks, dtype=torch.bool, device=q.device
        ).scatter(-1, order, True)
        chosen[..., :n_blocks] &= compressed
    own = t // block_size  # (T,) each query's own block (may be incomplete)
    chosen[:, t, own] = True
    token_block = t // block_size  # (T,)
    selected = chosen[..., token_block] & causal_mask(T, device=q.device)  # (B, T, T)
    windowed = causal_mask(T, device=q.device) & ((t[:, None] - t[None, :]) < window)
    return compressed, selected, windowed


def nsa_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    gates: torch.Tensor,
    *,
    block_size: int,
    top_blocks: int,
    window: int,
) -> torch.Tensor:
    """Native Sparse Attention for causal self-attention with one key/value head.

    Args:
        q: ``(B, H, T, D)``; k, v: ``(B, 1, T, D)`` and ``(B, 1, T, D_v)``.
        gates: ``(B, H, T, 3)`` in ``[0, 1]`` (the paper: an MLP and a sigmoid on the
            input), the weights of the compressed, selected and window branches.
        block_size, top_blocks, window: see :func:`nsa_masks`.

    Returns:
        ``(B, H, T, D_v)``.
    """
    check_qkv(q, k, v)
    check_floating(check_tensor(gates, "gates", min_dim=4), "gates")
    if tuple(gates.shape) != (*q.shape[:3], 3):
        raise ValueError(f"gates must have shape (B, H, T, 3), got {fmt_shape(gates.shape)}.")
    compressed, selected, windowed = nsa_masks(
        q, k, block_size=block_size, top_blocks=top_blocks, window=window
    )
    n_blocks = compressed.shape[-1]
    k_cmp = k[:, :, : n_blocks * block_size].unflatten(2, (n_blocks, block_size)).mean(3)
    v_cmp = v[:, :, : n_blocks * block_size].unflatten(2, (n_blocks, block_size)).mean(3)
    o_cmp = scaled_dot_product_attention(q, k_cmp, v_cmp, compressed[:, None])  # 0 if no block
    o_sel = scaled_dot_product_attention(q, k, v, selected[:, None])
    o_win = scaled_dot_product_attention(q, k, v, windowed)
    return gates[..., 0:1] * o_cmp + gates[..., 1:2] * o_sel + gates[..., 2:3] * o_win

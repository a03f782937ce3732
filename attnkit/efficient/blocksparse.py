"""Block-sparse attention: compute only the score tiles a sparsity pattern needs.

Sparse attention patterns (a sliding window, strided columns, global tokens, random
blocks; Child et al., 2019, "Generating Long Sequences with Sparse Transformers";
Zaheer et al., 2020, "Big Bird: Transformers for Longer Sequences", section 2 and
appendix D) are described most simply by a *block layout*: cut the sequence into blocks
of ``block_size`` positions and say which ``(query block, key block)`` tiles of the
``n x n`` score matrix are computed. The engine here gathers, for every query block, the
key blocks its row of the layout names and computes the scores there only::

    for query block b:  K_b = concat(K[blocks j with layout[b, j]])     (L_b keys)
                        out_b = softmax(Q_b K_b^T * scale + mask) V_b

The rows are padded to the largest key-block count and run as one batched matmul, so the
cost is ``O(n * max_keys * d)`` instead of ``O(n^2 * d)``. Rows whose layout is entirely
``True`` (BigBird's global blocks) are computed densely on their own, so that a few
global rows do not make every row pay for ``n`` keys.

The module also holds the helpers the other block-sparse methods share (positions of the
padding, per-tile masks, the safe softmax over several parts): :mod:`.local`,
:mod:`.sparse_transformer`, :mod:`.bigbird`, :mod:`.longformer`.

Position convention used by every helper: a long tensor ``pos`` gives each (possibly
padded, possibly reordered) row its position in the original sequence, and ``-1`` for
rows that are padding. Padding keys are never attended to; padding queries are dropped.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .._validate import (
    check_mask,
    check_positive_int,
    check_qkv,
    check_scale,
    check_tensor,
    compute_dtype,
    fmt_shape,
)
from ..masks import causal_mask

__all__ = ["block_sparse_attention", "layout_to_mask"]

# Smallest block of the banded methods for tiny windows: fewer, larger matmuls beat many
# tiny ones (a window of radius w uses blocks of max(w, MIN_BLOCK) positions).
MIN_BLOCK = 32


# --------------------------------------------------------------------------- shared helpers


def check_self_attention_inputs(
    q: object, k: object, v: object, mask: object, scale: object
) -> tuple[torch.Size, int, float | None]:
    """Validate ``q, k, v`` of one sequence (same ``n``) and an optional mask and scale.

    Returns ``(batch, n, scale)`` with ``batch`` the broadcast leading shape.
    """
    batch = check_qkv(q, k, v)
    assert isinstance(q, torch.Tensor) and isinstance(k, torch.Tensor)
    if q.shape[-2] != k.shape[-2]:
        raise ValueError(
            f"q and k must hold the same sequence (self-attention), i.e. the same n; got q "
            f"{fmt_shape(q.shape)} and k {fmt_shape(k.shape)}."
        )
    n = q.shape[-2]
    if mask is not None:
        check_mask(mask, (*batch, n, n))
    return batch, n, check_scale(scale)


def check_bool(x: object, name: str) -> bool:
    """Check a Python bool flag (``causal``)."""
    if not isinstance(x, bool):
        raise TypeError(f"{name} must be True or False, got {x!r}.")
    return x


def default_scale(scale: float | None, d: int) -> float:
    """``1 / sqrt(d)`` unless a scale is given."""
    return 1.0 / math.sqrt(d) if scale is None else scale


def pad_to(x: torch.Tensor, length: int) -> torch.Tensor:
    """``(..., n, f) -> (..., length, f)``: append zero rows (``length >= n``)."""
    extra = length - x.shape[-2]
    return x if extra == 0 else F.pad(x, (0, 0, 0, extra))


def padded_positions(n: int, length: int, device: torch.device) -> torch.Tensor:
    """``(length,)`` positions ``0 .. n-1`` followed by ``-1`` for the padding."""
    pos = torch.arange(length, device=device)
    return torch.where(pos < n, pos, torch.full_like(pos, -1))


def gather_mask(mask: torch.Tensor, qpos: torch.Tensor, kpos: torch.Tensor) -> torch.Tensor:
    """The entries of a user mask at query positions ``qpos`` and key positions ``kpos``.

    Args:
        mask: bool or floating mask broadcastable to ``(..., n_q, n_k)``.
        qpos: long tensor of query positions; ``-1`` (padding) is read as 0.
        kpos: long tensor of key positions, broadcasting with ``qpos`` to a tile shape ``T``.

    Returns:
        ``(*mask_batch, *T)``: ``mask[..., qpos, kpos]``, which broadcasts against scores
        ``(*batch, *T)``. Only ``O(|T|)`` entries are read: a dense ``(n, n)`` mask given
        by the user is sliced, never expanded. Entries read at padding positions are
        meaningless; the caller masks those positions itself.
    """
    while mask.dim() < 2:
        mask = mask.unsqueeze(0)
    rank = max(qpos.dim(), kpos.dim())  # give both the tile's rank, so the batch dims
    qpos = qpos.clamp(min=0).reshape((1,) * (rank - qpos.dim()) + qpos.shape)  # of the
    kpos = kpos.clamp(min=0).reshape((1,) * (rank - kpos.dim()) + kpos.shape)  # mask line up
    if mask.shape[-1] == 1:
        kpos = torch.zeros_like(kpos)
    if mask.shape[-2] == 1:  # a key mask (e.g. (B, 1, 1, n) padding): index keys only
        return mask[..., 0, :][..., kpos]  # (*mask_batch, *kpos.shape)
    if mask.shape[-1] == 1:
        return mask[..., :, 0][..., qpos]  # (*mask_batch, *qpos.shape)
    return mask[..., qpos, kpos]  # (*mask_batch, *T)


def masked_logits(
    scores: torch.Tensor,
    allowed: torch.Tensor,
    mask: torch.Tensor | None,
    qpos: torch.Tensor,
    kpos: torch.Tensor,
) -> torch.Tensor:
    """Scores with ``-inf`` where the pattern (``allowed``) or the user mask forbids a key.

    Args:
        scores: ``(*batch, *T)`` scaled scores of a tile, a fresh tensor (it is
            overwritten in place to save a pass over the largest tensor of the method).
        allowed: bool, broadcastable to ``scores``: the sparsity pattern (and padding).
        mask: optional user mask (see :func:`gather_mask`); a floating mask is added.
        qpos, kpos: original positions of the tile's queries and keys.
    """
    if mask is not None:
        m = gather_mask(mask, qpos, kpos)
        if m.dtype == torch.bool:
            allowed = allowed & m
        else:
            scores = scores + m.to(scores.dtype)
    return scores.masked_fill_(~allowed, float("-inf"))


def safe_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis with the convention of :func:`attnkit.softmax.masked_softmax`.

    ``-inf`` entries get weight 0; a row that is ``-inf`` everywhere (no allowed key) gets
    zero weights and zero (not NaN) gradients. Uses the fused ``torch.softmax`` (one pass),
    plus one ``amax`` pass to find empty rows; the hot path of every block-sparse method.
    """
    if logits.shape[-1] == 0:
        return logits * 0  # no keys at all: empty weights, keeps the graph
    empty = logits.amax(dim=-1, keepdim=True) == float("-inf")  # (..., 1) rows with no key
    if not bool(empty.any()):
        return torch.softmax(logits, dim=-1)
    # softmax of an all -inf row is NaN: give those rows finite logits, then zero them.
    weights = torch.softmax(logits.masked_fill(empty, 0.0), dim=-1)
    return weights.masked_fill(empty, 0.0)


def softmax_parts(*logits: torch.Tensor) -> list[torch.Tensor]:
    """One softmax over several parts of a row, concatenated along the last axis.

    A query whose key set is the union of disjoint parts (a local band and strided
    columns, a window and global tokens) needs *one* normalisation over all of them.
    See :func:`safe_softmax` for masked entries and empty rows.

    Returns the weights split back into the parts' widths.
    """
    if len(logits) == 1:
        return [safe_softmax(logits[0])]
    widths = [part.shape[-1] for part in logits]
    weights = safe_softmax(torch.cat(logits, dim=-1))
    return list(weights.split(widths, dim=-1))


def block_tiles(
    x: torch.Tensor, block: int, before: int, after: int, *, value: float = 0
) -> torch.Tensor:
    """For each block, the blocks ``b - before .. b + after`` side by side.

    ``(..., nb * block, f) -> (..., nb, (before + 1 + after) * block, f)``: one copy of
    ``x`` per neighbour (a Python loop over the few neighbours, never over blocks); blocks
    outside the sequence are filled with ``value`` (0 for keys and values, -1 for
    positions).
    """
    *lead, length, f = x.shape
    nb = length // block
    blocks = x.unflatten(-2, (nb, block))  # (..., nb, block, f)
    out = x.new_empty((*lead, nb, before + 1 + after, block, f))
    for slot, shift in enumerate(range(-before, after + 1)):
        # block b gets block b + shift in this slot; the blocks past an end get `value`
        lo, hi = max(0, -shift), min(nb, nb - shift)  # destination blocks that exist
        if lo < hi:
            out[..., lo:hi, slot, :, :] = blocks[..., lo + shift : hi + shift, :, :]
        out[..., :lo, slot, :, :] = value
        out[..., max(hi, lo) :, slot, :, :] = value
    return out.flatten(-4, -2).unflatten(-2, (nb, (before + 1 + after) * block))


def band_logits(
    q: torch.Tensor,
    k: torch.Tensor,
    pos: torch.Tensor,
    *,
    block: int,
    before: int,
    after: int,
    lo: int,
    hi: int,
    scale: float,
    mask: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores of a banded pattern, block by block.

    Query ``i`` (row ``a`` of block ``b``) may attend key ``j`` iff ``lo <= j - i <= hi``,
    where ``i, j`` are row indices in ``q``/``k``; the keys of block ``b`` are taken from
    blocks ``b - before .. b + after``, which must contain the whole band.

    Args:
        q, k: ``(..., N, d)`` with ``N`` a multiple of ``block``.
        pos: ``(..., N)`` (broadcasting to the batch) original positions, ``-1`` = padding;
            used to drop padding keys and to read the user mask.
        block, before, after: tiling; ``lo, hi``: band edges in rows.
        scale: score multiplier; mask: optional user mask over original positions.

    Returns:
        ``(logits, qpos)``: logits ``(..., nb, block, L)`` with ``L = (before+1+after) *
        block`` and ``-inf`` outside the pattern; ``qpos`` ``(..., nb, block, 1)``.
    """
    nb = q.shape[-2] // block
    q_tiles = (q * scale).unflatten(-2, (nb, block))  # (..., nb, block, d)
    k_tiles = block_tiles(k, block, before, after)  # (..., nb, L, d)
    scores = q_tiles @ k_tiles.transpose(-2, -1)  # (..., nb, block, L), already scaled

    width = (before + 1 + after) * block
    rows = torch.arange(block, device=q.device)
    cols = torch.arange(width, device=q.device)
    offset = cols[None, :] - before * block - rows[:, None]  # (block, L): j - i
    in_band = (offset >= lo) & (offset <= hi)  # (block, L)
    qpos = pos.unflatten(-1, (nb, block)).unsqueeze(-1)  # (..., nb, block, 1)
    kpos = block_tiles(pos.unsqueeze(-1), block, before, after, value=-1)  # (..., nb, L, 1)
    kpos = kpos.transpose(-2, -1)  # (..., nb, 1, L)
    allowed = in_band & (kpos >= 0)  # (..., nb, block, L)
    return masked_logits(scores, allowed, mask, qpos, kpos), qpos


def band_output(
    weights: torch.Tensor, v: torch.Tensor, *, block: int, before: int, after: int
) -> torch.Tensor:
    """``(..., nb, block, L)`` weights of :func:`band_logits` times the value tiles.

    Returns ``(..., nb * block, d_v)``.
    """
    v_tiles = block_tiles(v, block, before, after)  # (..., nb, L, d_v)
    return (weights @ v_tiles).flatten(-3, -2)  # (..., nb * block, d_v)


# --------------------------------------------------------------------------- layouts


def check_layout(layout: object, n_blocks_q: int, n_blocks_k: int) -> torch.Tensor:
    """Check a block layout: bool ``(n_blocks_q, n_blocks_k)``."""
    check_tensor(layout, "layout")
    assert isinstance(layout, torch.Tensor)
    if layout.dtype != torch.bool or layout.shape != (n_blocks_q, n_blocks_k):
        raise ValueError(
            f"layout must be a bool tensor of shape (n_blocks_q, n_blocks_k) = "
            f"({n_blocks_q}, {n_blocks_k}) (ceil(n / block_size) blocks per side); got "
            f"{layout.dtype} {fmt_shape(layout.shape)}."
        )
    return layout


def layout_to_mask(
    layout: torch.Tensor,
    block_size: int,
    n: int,
    n_k: int | None = None,
    *,
    causal: bool = False,
) -> torch.Tensor:
    """Expand a block layout into the dense bool ``(n, n_k)`` mask it stands for.

    Args:
        layout: bool ``(ceil(n / block_size), ceil(n_k / block_size))``, ``True`` = the
            tile of query block ``a`` and key block ``b`` is computed.
        block_size: positions per block (the last block may be shorter).
        n: number of queries; ``n_k``: number of keys (default ``n``).
        causal: also forbid keys after the query (``j > i``).

    Returns:
        Bool ``(n, n_k)``, ``True`` = may attend. Dense, ``O(n * n_k)``: for drawing and
        tests only.
    """
    block_size = check_positive_int(block_size, "block_size")
    n = check_positive_int(n, "n")
    n_k = n if n_k is None else check_positive_int(n_k, "n_k")
    check_bool(causal, "causal")
    layout = check_layout(layout, -(-n // block_size), -(-n_k // block_size))
    dense = layout.repeat_interleave(block_size, 0).repeat_interleave(block_size, 1)
    dense = dense[:n, :n_k]  # (n, n_k)
    if causal:
        dense = dense & causal_mask(n, n_k, offset=0, device=layout.device)
    return dense


def key_blocks_per_row(layout: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the ``True`` key blocks of each layout row, padded to the longest row.

    ``(R, n_blocks_k) -> (index, valid)``, both ``(R, max_count)``: ``index[r, :count_r]``
    are row ``r``'s key blocks in increasing order, the rest are 0 with ``valid`` False.
    """
    counts = layout.sum(dim=1)  # (R,)
    width = int(counts.max()) if layout.numel() else 0
    # A stable sort of (not layout) puts the True columns first, in increasing order.
    order = torch.sort((~layout).to(torch.uint8), dim=1, stable=True).indices  # (R, nkb)
    index = order[:, :width]  # (R, width)
    valid = torch.arange(width, device=layout.device) < counts[:, None]  # (R, width)
    return torch.where(valid, index, torch.zeros_like(index)), valid


# --------------------------------------------------------------------------- the engine


def _sparse_rows(q_blocks, k_blocks, v_blocks, layout_rows, qpos, kpos_blocks, mask, causal):
    """Gathered path: each query block against its own list of key blocks.

    ``q_blocks`` ``(..., R, bs, d)`` are the ``R`` query blocks (already scaled),
    ``layout_rows`` their ``(R, nkb)`` layout rows and ``qpos`` ``(R, bs, 1)`` their
    positions; ``k_blocks``, ``v_blocks`` ``(..., nkb, bs, d)`` and ``kpos_blocks``
    ``(nkb, bs)`` cover all keys.
    Returns ``(..., R, bs, d_v)``.
    """
    index, valid = key_blocks_per_row(layout_rows)  # (R, K)
    n_rows, width = index.shape
    bs = k_blocks.shape[-2]
    flat = index.flatten()  # (R * K,)
    k_sel = k_blocks.index_select(-3, flat).unflatten(-3, (n_rows, width)).flatten(-3, -2)
    v_sel = v_blocks.index_select(-3, flat).unflatten(-3, (n_rows, width)).flatten(-3, -2)
    scores = q_blocks @ k_sel.transpose(-2, -1)  # (..., R, bs, K * bs)

    kpos = kpos_blocks[index].view(n_rows, 1, width * bs)  # (R, 1, K * bs)
    kvalid = valid.repeat_interleave(bs, dim=1).view(n_rows, 1, width * bs)
    allowed = kvalid & (kpos >= 0)  # (R, 1, K * bs)
    if causal:
        allowed = allowed & (kpos <= qpos)  # (R, bs, K * bs)
    (weights,) = softmax_parts(masked_logits(scores, allowed, mask, qpos, kpos))
    return weights @ v_sel  # (..., R, bs, d_v)


def _dense_rows(q_blocks, k, v, qpos, kpos, mask, causal):
    """Dense path for query blocks that attend to every key block (global rows).

    ``q_blocks`` ``(..., R, bs, d)`` (already scaled) with positions ``qpos``
    ``(R, bs, 1)``; ``k``, ``v`` ``(..., N_k, d)`` with positions ``kpos`` ``(N_k,)``.
    Returns ``(..., R, bs, d_v)`` in ``O(R * bs * N_k * d)``.
    """
    n_rows, bs = q_blocks.shape[-3], q_blocks.shape[-2]
    scores = q_blocks.flatten(-3, -2) @ k.transpose(-2, -1)  # (..., R * bs, N_k)
    qpos = qpos.reshape(n_rows * bs, 1)  # (R * bs, 1)
    kpos = kpos.view(1, -1)  # (1, N_k)
    allowed = kpos >= 0
    if causal:
        allowed = allowed & (kpos <= qpos)
    (weights,) = softmax_parts(masked_logits(scores, allowed, mask, qpos, kpos))
    return (weights @ v).unflatten(-2, (n_rows, bs))  # (..., R, bs, d_v)


def block_sparse_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    layout: torch.Tensor,
    *,
    block_size: int,
    mask: torch.Tensor | None = None,
    scale: float | None = None,
    causal: bool = False,
) -> torch.Tensor:
    """Attention restricted to the tiles of a block layout, computed tile by tile.

    Query ``i`` may attend key ``j`` iff ``layout[i // block_size, j // block_size]`` (and
    ``j <= i`` when ``causal``, and the user mask allows it): exactly
    ``scaled_dot_product_attention(q, k, v, layout_to_mask(layout, ...) & mask)``.

    Args:
        q: ``(..., n_q, d_k)``; k: ``(..., n_k, d_k)``; v: ``(..., n_k, d_v)``, one
            floating dtype; 16-bit inputs are computed in float32 and cast back.
        layout: bool ``(ceil(n_q / block_size), ceil(n_k / block_size))``, True = compute
            this tile. ``n`` need not be a multiple of ``block_size``: the sequences are
            padded internally and the padding is masked.
        block_size: positions per block.
        mask: optional bool (``True`` = may attend) or floating (added) mask
            broadcastable to ``(..., n_q, n_k)``; only the entries of computed tiles are
            read.
        scale: score multiplier, default ``1 / sqrt(d_k)``.
        causal: also forbid ``j > i`` inside the tiles (needs ``n_q == n_k``).

    Returns:
        ``(..., n_q, d_v)``. A query with no allowed key gets zeros (masked_softmax).

    Complexity: with ``K`` the largest number of ``True`` blocks in a row that is not
    all ``True``, ``O(n_q * K * block_size * d)`` time and memory; rows that are all
    ``True`` (global rows) are computed densely, ``O(block_size * n_k * d)`` each.
    """
    batch = check_qkv(q, k, v)
    block_size = check_positive_int(block_size, "block_size")
    scale = check_scale(scale)
    check_bool(causal, "causal")
    n_q, n_k, d = q.shape[-2], k.shape[-2], q.shape[-1]
    if causal and n_q != n_k:
        raise ValueError(f"causal=True needs n_q == n_k, got n_q={n_q} and n_k={n_k}.")
    if mask is not None:
        check_mask(mask, (*batch, n_q, n_k))
    nqb, nkb = -(-n_q // block_size), -(-n_k // block_size)
    layout = check_layout(layout, nqb, nkb).to(q.device)
    if n_q == 0 or n_k == 0:
        return q.new_zeros((*batch, n_q, v.shape[-1]))
    scale = default_scale(scale, d)

    work = compute_dtype(q.dtype)
    qpos = padded_positions(n_q, nqb * block_size, q.device).view(nqb, block_size, 1)
    kpos = padded_positions(n_k, nkb * block_size, q.device)  # (N_k,)
    q_blocks = pad_to(q.to(work) * scale, nqb * block_size).unflatten(-2, (nqb, block_size))
    k_pad = pad_to(k.to(work), nkb * block_size)  # (..., N_k, d)
    v_pad = pad_to(v.to(work), nkb * block_size)  # (..., N_k, d_v)

    full = layout.all(dim=1)  # (nqb,): rows that see every key block (global rows)
    sparse_rows, dense_rows = (~full).nonzero().flatten(), full.nonzero().flatten()
    parts = []  # (..., R, bs, d_v) for the sparse rows, then for the dense rows
    if sparse_rows.numel():
        k_blocks = k_pad.unflatten(-2, (nkb, block_size))  # (..., nkb, bs, d)
        v_blocks = v_pad.unflatten(-2, (nkb, block_size))  # (..., nkb, bs, d_v)
        q_rows = q_blocks.index_select(-3, sparse_rows)  # (..., R, bs, d)
        kpos_blocks = kpos.view(nkb, block_size)
        rows_layout, rows_qpos = layout[sparse_rows], qpos[sparse_rows]
        part = _sparse_rows(
            q_rows, k_blocks, v_blocks, rows_layout, rows_qpos, kpos_blocks, mask, causal
        )
        parts.append(part)
    if dense_rows.numel():
        q_rows = q_blocks.index_select(-3, dense_rows)  # (..., R, bs, d)
        parts.append(_dense_rows(q_rows, k_pad, v_pad, qpos[dense_rows], kpos, mask, causal))
    out = parts[0]
    if len(parts) == 2:  # put the blocks back in order
        out = torch.cat(parts, dim=-3)  # (..., nqb, bs, d_v)
        out = out.index_select(-3, torch.argsort(torch.cat([sparse_rows, dense_rows])))
    out = out.flatten(-3, -2)[..., :n_q, :]  # (..., n_q, d_v)
    return out.expand(*batch, n_q, out.shape[-1]).to(q.dtype)

"""A paged key/value cache and attention over it (Kwon et al. 2023, "Efficient Memory
Management for Large Language Model Serving with PagedAttention", the vLLM paper).

A server decodes many sequences at once and does not know how long each will grow. A
contiguous cache must reserve room for the longest possible sequence up front; most of
that room stays empty. PagedAttention stores keys and values in fixed-size *blocks* taken
from one shared pool as a sequence grows, like pages of virtual memory. Each sequence keeps
a *block table*: the ids of its blocks, in order. Position ``p`` of a sequence lives in
block ``table[p // block_size]`` at slot ``p % block_size``. Only the last block of each
sequence is partly empty, so at most ``block_size - 1`` slots per sequence are wasted.

Attention reads the blocks through the table. Here the blocks are gathered into a
contiguous view and masked, which gives exactly the attention of a contiguous cache; the
fused kernels of vLLM read the blocks in place, with the same result.
"""

from __future__ import annotations

import math

import torch

from .._validate import check_dtype, check_floating, check_positive_int, check_tensor, fmt_shape
from ..attention import scaled_dot_product_attention
from ..heads import repeat_kv

__all__ = ["PagedKVCache", "blocks_needed", "paged_attention"]


def blocks_needed(length: int, block_size: int) -> int:
    """Blocks that hold ``length`` positions: ``ceil(length / block_size)``."""
    length = check_positive_int(length, "length", allow_zero=True)
    block_size = check_positive_int(block_size, "block_size")
    return math.ceil(length / block_size)


class PagedKVCache:
    """Keys and values of many sequences in one pool of fixed-size blocks.

    Args:
        num_blocks: blocks in the pool.
        block_size: positions per block (vLLM's default is 16).
        num_kv_heads: key/value heads ``H_kv`` stored per position.
        head_dim: size of each key and value.
        dtype: dtype of the pool.

    The pool tensors are ``k_pool``/``v_pool`` of shape
    ``(num_blocks, H_kv, block_size, head_dim)``.
    """

    def __init__(
        self,
        num_blocks: int,
        block_size: int,
        num_kv_heads: int,
        head_dim: int,
        *,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.num_blocks = check_positive_int(num_blocks, "num_blocks")
        self.block_size = check_positive_int(block_size, "block_size")
        self.num_kv_heads = check_positive_int(num_kv_heads, "num_kv_heads")
        self.head_dim = check_positive_int(head_dim, "head_dim")
        dtype = check_dtype(dtype)
        shape = (self.num_blocks, self.num_kv_heads, self.block_size, self.head_dim)
        self.k_pool = torch.zeros(shape, dtype=dtype)
        self.v_pool = torch.zeros(shape, dtype=dtype)
        self._free = list(range(self.num_blocks - 1, -1, -1))  # pop() hands out block 0 first
        self.tables: dict[int, list[int]] = {}
        self.lengths: dict[int, int] = {}

    @property
    def num_free_blocks(self) -> int:
        """Blocks not held by any sequence."""
        return len(self._free)

    def _check_kv(self, k: object, v: object) -> int:
        for name, t in (("k", k), ("v", v)):
            check_floating(check_tensor(t, name, min_dim=3), name)
            want = (self.num_kv_heads, t.shape[1], self.head_dim)  # type: ignore[union-attr]
            if t.dim() != 3 or tuple(t.shape) != want:  # type: ignore[union-attr]
                raise ValueError(
                    f"{name} must have shape (H_kv={self.num_kv_heads}, T, "
                    f"head_dim={self.head_dim}), got {fmt_shape(t.shape)}."  # type: ignore[union-attr]
                )
        if k.shape != v.shape:  # type: ignore[union-attr]
            raise ValueError(
                f"k and v must have the same shape, got {fmt_shape(k.shape)} and "  # type: ignore[union-attr]
                f"{fmt_shape(v.shape)}."  # type: ignore[union-attr]
            )
        return k.shape[1]  # type: ignore[union-attr]

    def append(self, seq_id: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Store the keys and values ``(H_kv, T, head_dim)`` of ``T`` new positions of
        sequence ``seq_id`` (a new id starts a sequence), taking blocks from the pool as
        needed. Raises ``RuntimeError`` when the pool has too few free blocks; nothing is
        stored then."""
        if isinstance(seq_id, bool) or not isinstance(seq_id, int):
            raise TypeError(f"seq_id must be an int, got {type(seq_id).__name__}.")
        T = self._check_kv(k, v)
        table = self.tables.get(seq_id, [])
        start = self.lengths.get(seq_id, 0)
        extra = blocks_needed(start + T, self.block_size) - len(table)
        if extra > len(self._free):
            raise RuntimeError(
                f"the pool is out of blocks: sequence {seq_id} needs {extra} more, "
                f"{len(self._free)} are free; free finished sequences or use more blocks."
            )
        table = table + [self._free.pop() for _ in range(extra)]
        self.tables[seq_id], self.lengths[seq_id] = table, start + T
        for t in range(T):
            block, slot = divmod(start + t, self.block_size)
            self.k_pool[table[block], :, slot] = k[:, t]
            self.v_pool[table[block], :, slot] = v[:, t]

    def free(self, seq_id: int) -> None:
        """Return the blocks of a finished sequence to the pool."""
        if seq_id not in self.tables:
            raise ValueError(f"seq_id {seq_id!r} is not in the cache.")
        self._free.extend(reversed(self.tables.pop(seq_id)))
        del self.lengths[seq_id]

    def gather(self, seq_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The keys and values of one sequence, contiguous: ``(H_kv, length, head_dim)``."""
        if seq_id not in self.tables:
            raise ValueError(f"seq_id {seq_id!r} is not in the cache.")
        table, n = self.tables[seq_id], self.lengths[seq_id]
        k = self.k_pool[table].transpose(0, 1).flatten(1, 2)  # (H_kv, blocks * bs, D)
        v = self.v_pool[table].transpose(0, 1).flatten(1, 2)
        return k[:, :n], v[:, :n]

    def block_table(self, seq_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The block tables of ``seq_ids`` as one ``(B, max_blocks)`` long tensor (padded
        with block 0, masked by length) and their lengths ``(B,)``."""
        for s in seq_ids:
            if s not in self.tables:
                raise ValueError(f"seq_id {s!r} is not in the cache.")
        width = max(len(self.tables[s]) for s in seq_ids)
        table = torch.zeros(len(seq_ids), width, dtype=torch.long)
        for row, s in enumerate(seq_ids):
            table[row, : len(self.tables[s])] = torch.tensor(self.tables[s])
        lengths = torch.tensor([self.lengths[s] for s in seq_ids])
        return table, lengths

    def slots_wasted(self) -> int:
        """Reserved but empty slots: only in each sequence's last block."""
        return sum(len(t) * self.block_size - self.lengths[s] for s, t in self.tables.items())


def paged_attention(
    q: torch.Tensor,
    k_pool: torch.Tensor,
    v_pool: torch.Tensor,
    block_table: torch.Tensor,
    lengths: torch.Tensor,
    *,
    scale: float | None = None,
) -> torch.Tensor:
    """Causal attention of the newest ``T_q`` positions of each sequence over its cache.

    Args:
        q: queries ``(B, H, T_q, D)``: the last ``T_q`` positions of each sequence (whose
            keys and values are already in the pool), e.g. ``T_q = 1`` when decoding.
        k_pool, v_pool: ``(num_blocks, H_kv, block_size, D)``; ``H`` a multiple of ``H_kv``.
        block_table: long ``(B, max_blocks)``, block ids of each sequence in order.
        lengths: ``(B,)`` positions stored per sequence (``>= T_q``).
        scale: score multiplier, default ``1 / sqrt(D)``.

    Returns:
        ``(B, H, T_q, D)``, equal to attention over the contiguous cache.
    """
    check_floating(check_tensor(q, "q", min_dim=4), "q")
    for name, t in (("k_pool", k_pool), ("v_pool", v_pool)):
        check_floating(check_tensor(t, name, min_dim=4), name)
    check_tensor(block_table, "block_table", min_dim=2)
    check_tensor(lengths, "lengths", min_dim=1)
    B, H, T_q, D = q.shape
    num_blocks, H_kv, bs, _ = k_pool.shape
    if k_pool.shape != v_pool.shape or k_pool.shape[-1] != D or H % H_kv:
        raise ValueError(
            f"k_pool and v_pool must both have shape (num_blocks, H_kv, block_size, D={D}) "
            f"with H={H} a multiple of H_kv; got {fmt_shape(k_pool.shape)} and "
            f"{fmt_shape(v_pool.shape)}."
        )
    if block_table.dtype != torch.long or block_table.shape[0] != B:
        raise ValueError(
            f"block_table must be a long tensor (B={B}, max_blocks), got {block_table.dtype} "
            f"{fmt_shape(block_table.shape)}."
        )
    if lengths.shape != (B,) or bool((lengths < T_q).any()):
        raise ValueError(f"lengths must be (B={B},) with every length >= T_q={T_q}.")
    if bool((lengths > block_table.shape[1] * bs).any()):
        raise ValueError("lengths: a length exceeds the slots of its block table.")
    if bool(((block_table < 0) | (block_table >= num_blocks)).any()):
        raise ValueError(f"block_table: block ids must lie in [0, {num_blocks}).")
    k = k_pool[block_table].transpose(1, 2).flatten(2, 3)  # (B, H_kv, max_blocks * bs, D)
    v = v_pool[block_table].transpose(1, 2).flatten(2, 3)
    n = k.shape[2]
    lengths = lengths.to(q.device)
    pos = torch.arange(n, device=q.device)  # (n,)
    q_pos = lengths[:, None] - T_q + torch.arange(T_q, device=q.device)  # (B, T_q)
    mask = pos[None, None, :] <= q_pos[:, :, None]  # (B, T_q, n): causal, and < length
    k, v = repeat_kv(k, H // H_kv), repeat_kv(v, H // H_kv)  # (B, H, n, D)
    return scaled_dot_product_attention(q, k, v, mask[:, None], scale=scale)  # type: ignore[return-value]

"""BigBird: window + global + random blocks (the ITC variant).

Zaheer et al., 2020, "Big Bird: Transformers for Longer Sequences", section 2 and
appendix D. The sequence is cut into blocks of ``block_size`` positions and every query
block attends to

* **window**: itself and its ``(num_window_blocks - 1) / 2`` neighbours on each side;
* **global**: the first ``num_global_blocks`` blocks, which in turn attend to everything
  (ITC, "internal transformer construction": existing tokens are made global);
* **random**: ``num_random_blocks`` further key blocks drawn at random (distinct, not
  already covered), fixed once per sequence length.

The paper shows that this sparse graph keeps the expressive power of full attention
(a universal approximator and Turing complete, section 3) while costing
``O(n * (w + g + r) * block_size * d)``. The computation is
:func:`attnkit.efficient.blocksparse.block_sparse_attention` on the layout; the global
query rows, which see every block, are computed densely (they are few).
"""

from __future__ import annotations

import torch

from .._validate import check_positive_int
from ._base import EfficientSelfAttention, padding_to_mask
from .blocksparse import block_sparse_attention, check_self_attention_inputs, layout_to_mask

__all__ = ["BigBirdSelfAttention", "bigbird_attention", "bigbird_layout", "bigbird_mask"]


def _check_counts(
    num_window_blocks: object, num_global_blocks: object, num_random_blocks: object
) -> tuple[int, int, int]:
    """Check the three block counts of BigBird; the window count must be odd."""
    w = check_positive_int(num_window_blocks, "num_window_blocks")
    if w % 2 == 0:
        raise ValueError(
            f"num_window_blocks must be odd (the block itself plus the same number of "
            f"neighbours on each side), got {w}."
        )
    g = check_positive_int(num_global_blocks, "num_global_blocks", allow_zero=True)
    r = check_positive_int(num_random_blocks, "num_random_blocks", allow_zero=True)
    return w, g, r


def bigbird_layout(
    n_blocks: int,
    *,
    num_window_blocks: int = 3,
    num_global_blocks: int = 1,
    num_random_blocks: int = 2,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The bool ``(n_blocks, n_blocks)`` block layout of BigBird-ITC, ``True`` = attend.

    Args:
        n_blocks: number of blocks of the sequence.
        num_window_blocks: odd width of the sliding window in blocks (3 = self and one
            neighbour on each side).
        num_global_blocks: the first blocks are global: their rows and columns are all
            ``True``. More than ``n_blocks`` makes every block global.
        num_random_blocks: each non-global query block also attends to this many distinct
            key blocks drawn uniformly among those not yet covered (fewer if fewer remain).
        generator: CPU random generator for the random blocks (reproducible with a seed).

    Returns:
        Bool ``(n_blocks, n_blocks)`` on the CPU.
    """
    n_blocks = check_positive_int(n_blocks, "n_blocks")
    w, g, r = _check_counts(num_window_blocks, num_global_blocks, num_random_blocks)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {generator!r}.")
    blocks = torch.arange(n_blocks)
    layout = (blocks[:, None] - blocks[None, :]).abs() <= (w - 1) // 2  # window
    layout[:g, :] = True  # global blocks attend to everything ...
    layout[:, :g] = True  # ... and everything attends to them
    if r > 0 and g < n_blocks:
        # r distinct uncovered blocks per row: the r largest of uniform keys, with the
        # covered blocks pushed below every uniform key (a uniformly random subset).
        # Global rows are fully covered, so they get none.
        keys = torch.rand((n_blocks, n_blocks), generator=generator)
        keys = keys.masked_fill(layout, -1.0)
        values, index = keys.topk(min(r, n_blocks), dim=1)  # (n_blocks, r)
        chosen = torch.zeros_like(layout).scatter_(1, index, values >= 0)
        layout = layout | chosen
    return layout


def bigbird_mask(
    n: int,
    block_size: int,
    *,
    num_window_blocks: int = 3,
    num_global_blocks: int = 1,
    num_random_blocks: int = 2,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Dense bool ``(n, n)`` mask of a BigBird layout (see :func:`bigbird_layout`).

    Uses ``ceil(n / block_size)`` blocks. ``O(n^2)``: for drawing and tests only.
    """
    n = check_positive_int(n, "n")
    block_size = check_positive_int(block_size, "block_size")
    layout = bigbird_layout(
        -(-n // block_size),
        num_window_blocks=num_window_blocks,
        num_global_blocks=num_global_blocks,
        num_random_blocks=num_random_blocks,
        generator=generator,
    )
    return layout_to_mask(layout, block_size, n)


def bigbird_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    layout: torch.Tensor,
    *,
    block_size: int,
    mask: torch.Tensor | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    """BigBird attention: ``q`` attends to ``k, v`` on the tiles of a (BigBird) layout.

    Exactly ``scaled_dot_product_attention(q, k, v, layout_to_mask(layout, block_size, n)
    & mask)``, computed block by block.

    Args:
        q, k: ``(..., n, d_k)``; v: ``(..., n, d_v)``, one floating dtype.
        layout: bool ``(ceil(n / block_size),) * 2``, e.g. from :func:`bigbird_layout`.
        block_size: positions per block (``n`` need not be a multiple).
        mask: optional bool (``True`` = may attend) or floating (added) mask broadcastable
            to ``(..., n, n)``, e.g. a ``(B, 1, 1, n)`` key padding mask.
        scale: score multiplier, default ``1 / sqrt(d_k)``.

    Returns:
        ``(..., n, d_v)``; a query with no allowed key gets zeros.

    Complexity: ``O(n * K * block_size * d)`` with ``K`` the largest number of key blocks
    of a non-global row (``w + g + r``), plus ``O(g * block_size * n * d)`` for the dense
    global rows.
    """
    check_self_attention_inputs(q, k, v, mask, scale)
    return block_sparse_attention(q, k, v, layout, block_size=block_size, mask=mask, scale=scale)


class BigBirdSelfAttention(EfficientSelfAttention):
    """Multi-head BigBird self-attention (non-causal).

    Every head shares one layout. It is drawn once per sequence length ``n`` from a
    generator seeded with ``seed`` and cached, so the same ``n`` always gives the same
    random blocks (in training and in evaluation, and across module copies).

    Args:
        d_model, num_heads, bias: as :class:`~attnkit.efficient.EfficientSelfAttention`.
        block_size: positions per block.
        num_window_blocks, num_global_blocks, num_random_blocks: see
            :func:`bigbird_layout`.
        seed: seed of the random blocks.
    """

    supports_causal = False

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        block_size: int,
        *,
        num_window_blocks: int = 3,
        num_global_blocks: int = 1,
        num_random_blocks: int = 2,
        seed: int = 0,
        bias: bool = True,
    ) -> None:
        super().__init__(d_model, num_heads, bias=bias)
        self.block_size = check_positive_int(block_size, "block_size")
        counts = _check_counts(num_window_blocks, num_global_blocks, num_random_blocks)
        self.num_window_blocks, self.num_global_blocks, self.num_random_blocks = counts
        self.seed = check_positive_int(seed, "seed", allow_zero=True)
        self._layouts: dict[int, torch.Tensor] = {}  # n -> layout (not a buffer)

    def layout(self, n: int) -> torch.Tensor:
        """The (cached) bool block layout used for sequences of length ``n``."""
        if n not in self._layouts:
            self._layouts[n] = bigbird_layout(
                -(-n // self.block_size),
                num_window_blocks=self.num_window_blocks,
                num_global_blocks=self.num_global_blocks,
                num_random_blocks=self.num_random_blocks,
                generator=torch.Generator().manual_seed(self.seed),
            )
        return self._layouts[n]

    def attend(self, q, k, v, key_padding_mask):
        if q.shape[-2] == 0:
            return q.new_zeros(q.shape)
        layout = self.layout(q.shape[-2]).to(q.device)
        mask = padding_to_mask(key_padding_mask)  # (B, 1, 1, n) or None
        return bigbird_attention(q, k, v, layout, block_size=self.block_size, mask=mask)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, block_size={self.block_size}, "
            f"num_window_blocks={self.num_window_blocks}, "
            f"num_global_blocks={self.num_global_blocks}, "
            f"num_random_blocks={self.num_random_blocks}, seed={self.seed}"
        )

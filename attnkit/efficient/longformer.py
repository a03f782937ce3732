"""Longformer: a sliding window plus a few global tokens with their own projections.

Beltagy, Peters and Cohan, 2020, "Longformer: The Long-Document Transformer",
section 3.1. Every token attends to the ``window`` tokens on each side of it (the
sliding window of :mod:`.local`). A few task-specific tokens (``[CLS]``, the question
tokens in QA) get *global* attention, which is symmetric: they attend to every token and
every token attends to them. Global attention uses separate projections ``Q_g, K_g, V_g``
(the paper's "linear projections for global attention"):

* query ``i`` not global: keys ``{j : |i - j| <= window} | G`` with ``q, k, v``;
* query ``g`` in ``G``: all keys, with ``q_g, k_g, v_g``.

Cost: ``O(n * (window + |G|) * d)`` for the ordinary rows, ``O(|G| * n * d)`` for the
global rows, never an ``n x n`` matrix. A global key that already lies in a query's
window is counted once (in the window part).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .._validate import (
    check_positive_int,
    check_sequence,
    check_tensor,
    compute_dtype,
    fmt_shape,
)
from ..heads import merge_heads, split_heads
from ._base import EfficientSelfAttention, check_key_padding_mask, padding_to_mask
from .blocksparse import (
    MIN_BLOCK,
    band_logits,
    band_output,
    check_self_attention_inputs,
    default_scale,
    masked_logits,
    pad_to,
    padded_positions,
    safe_softmax,
    softmax_parts,
)

__all__ = ["LongformerSelfAttention", "longformer_attention", "longformer_mask"]

GlobalIndex = Sequence[int] | torch.Tensor


def check_global_index(
    global_index: object, n: int | None, device: torch.device | str | None = None
) -> torch.Tensor:
    """Check global token positions and return them sorted, without repeats, as a long tensor.

    Accepts a sequence of ints or a 1-D integer tensor with values in ``[0, n)`` (only
    ``>= 0`` when ``n`` is ``None``, i.e. not known yet); may be empty (no global token).
    """
    if isinstance(global_index, torch.Tensor):
        ok = global_index.dim() == 1 and not (
            global_index.is_floating_point()
            or global_index.is_complex()
            or global_index.dtype == torch.bool
        )
        index = global_index.to(device=device, dtype=torch.long) if ok else None
    elif isinstance(global_index, (Sequence, range)) and not isinstance(global_index, str):
        ok = all(isinstance(g, int) and not isinstance(g, bool) for g in global_index)
        index = torch.tensor(list(global_index), dtype=torch.long, device=device) if ok else None
    else:
        ok, index = False, None
    if not ok or index is None:
        raise TypeError(
            f"global_index must be a sequence of ints or a 1-D integer tensor of positions, "
            f"got {global_index!r}."
        )
    if index.numel() and int(index.min()) < 0:
        raise ValueError(f"global_index must hold positions >= 0, got {index.tolist()}.")
    if index.numel() and n is not None and int(index.max()) >= n:
        raise ValueError(
            f"global_index must hold positions in [0, n) = [0, {n}), got {index.tolist()}."
        )
    return torch.unique(index)  # sorted, each position once


def longformer_mask(
    n: int,
    window: int,
    global_index: GlobalIndex,
    *,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Dense bool ``(n, n)`` mask of Longformer's pattern, ``True`` = may attend.

    ``|i - j| <= window``, or ``j`` global (every token sees the global ones), or ``i``
    global (a global token sees every token). ``O(n^2)``: for drawing and tests only.
    """
    n = check_positive_int(n, "n")
    window = check_positive_int(window, "window", allow_zero=True)
    index = check_global_index(global_index, n, device)
    pos = torch.arange(n, device=device)
    allowed = (pos[:, None] - pos[None, :]).abs() <= window  # (n, n)
    is_global = torch.zeros(n, dtype=torch.bool, device=device)
    is_global[index] = True
    return allowed | is_global[None, :] | is_global[:, None]


def _check_global_projections(q, k, v, q_global, k_global, v_global) -> None:
    """The global projections must have the shapes and dtype of the local ones."""
    pairs = (("q_global", q_global, q), ("k_global", k_global, k), ("v_global", v_global, v))
    for name, t, like in pairs:
        check_tensor(t, name)
        if t.shape != like.shape or t.dtype != like.dtype:
            local = name.split("_")[0]
            raise ValueError(
                f"{name} must have the shape and dtype of {local}, {fmt_shape(like.shape)} "
                f"{like.dtype}; got {fmt_shape(t.shape)} {t.dtype}."
            )


def _local_rows(q, k, v, index, window, *, scale, mask):
    """Window plus global keys for every query, with the local projections.

    ``q, k, v`` ``(..., n, d)``; returns ``(..., n, d_v)``. The keys of query ``i`` are
    its band ``|i - j| <= window`` and the global keys outside the band, joined in one
    softmax.
    """
    n = q.shape[-2]
    window = min(window, n - 1)  # a larger radius reaches no further key
    block = max(window, min(MIN_BLOCK, n))
    length = -(-n // block) * block
    pos = padded_positions(n, length, q.device)  # (N,)
    qp, kp, vp = (pad_to(x, length) for x in (q, k, v))  # (..., N, d)
    band = {"block": block, "before": 1, "after": 1}
    a1, qpos = band_logits(qp, kp, pos, **band, lo=-window, hi=window, scale=scale, mask=mask)
    if index.numel() == 0:
        (w1,) = softmax_parts(a1)
        return band_output(w1, vp, **band)[..., :n, :]

    k_glob = k.index_select(-2, index)  # (..., G, d)
    v_glob = v.index_select(-2, index)  # (..., G, d_v)
    scores = (qp * scale) @ k_glob.transpose(-2, -1)  # (..., N, G)
    scores = scores.unflatten(-2, qpos.shape[-3:-1])  # (..., nb, block, G)
    outside = (index - qpos).abs() > window  # (nb, block, G): not in the band already
    a2 = masked_logits(scores, outside, mask, qpos, index)
    w1, w2 = softmax_parts(a1, a2)  # (..., nb, block, L), (..., nb, block, G)
    out = band_output(w1, vp, **band) + w2.flatten(-3, -2) @ v_glob  # (..., N, d_v)
    return out[..., :n, :]


def _global_rows(q_global, k_global, v_global, index, *, scale, mask):
    """Global queries over all keys with the global projections: ``(..., G, d_v)``."""
    n = k_global.shape[-2]
    q_rows = q_global.index_select(-2, index) * scale  # (..., G, d)
    scores = q_rows @ k_global.transpose(-2, -1)  # (..., G, n)
    qpos, kpos = index[:, None], torch.arange(n, device=index.device)  # (G, 1), (n,)
    allowed = torch.ones((1, 1), dtype=torch.bool, device=index.device)
    weights = safe_softmax(masked_logits(scores, allowed, mask, qpos, kpos))
    return weights @ v_global  # (..., G, d_v)


def longformer_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    q_global: torch.Tensor,
    k_global: torch.Tensor,
    v_global: torch.Tensor,
    window: int,
    global_index: GlobalIndex,
    *,
    mask: torch.Tensor | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    """Longformer attention: sliding window + global tokens with separate projections.

    Query ``i`` not in ``global_index`` attends with ``q, k, v`` to its window
    ``|i - j| <= window`` and to every global key (each key once). A global query ``g``
    attends with ``q_global[g]`` to *all* keys ``k_global``, values ``v_global``. With
    ``q_global, k_global, v_global = q, k, v`` this is exactly
    ``scaled_dot_product_attention(q, k, v, longformer_mask(n, window, global_index) &
    mask)``.

    Args:
        q, k: ``(..., n, d_k)``; v: ``(..., n, d_v)``: local projections, one sequence,
            one floating dtype (16-bit inputs are computed in float32 and cast back).
        q_global, k_global, v_global: global projections, shaped like ``q, k, v``.
        window: keys on each side (radius), ``>= 0``.
        global_index: positions of the global tokens (ints or a 1-D integer tensor, in
            ``[0, n)``; repeats are ignored; may be empty).
        mask: optional bool (``True`` = may attend) or floating (added) mask broadcastable
            to ``(..., n, n)``, e.g. a ``(B, 1, 1, n)`` key padding mask; it applies to
            the global rows too.
        scale: score multiplier, default ``1 / sqrt(d_k)``.

    Returns:
        ``(..., n, d_v)`` in the dtype of ``q``; a query with no allowed key gets zeros.

    Complexity: ``O(n * (window + G) * d + G * n * d)`` time and memory, ``G`` the number
    of global tokens.
    """
    batch, n, scale = check_self_attention_inputs(q, k, v, mask, scale)
    _check_global_projections(q, k, v, q_global, k_global, v_global)
    window = check_positive_int(window, "window", allow_zero=True)
    if n == 0:
        check_global_index(global_index, n)
        return q.new_zeros((*batch, 0, v.shape[-1]))
    index = check_global_index(global_index, n, q.device)  # (G,)
    scale = default_scale(scale, q.shape[-1])

    dtype, work = q.dtype, compute_dtype(q.dtype)
    q, k, v = q.to(work), k.to(work), v.to(work)
    out = _local_rows(q, k, v, index, window, scale=scale, mask=mask)  # (..., n, d_v)
    if index.numel():
        qg, kg, vg = q_global.to(work), k_global.to(work), v_global.to(work)
        rows = _global_rows(qg, kg, vg, index, scale=scale, mask=mask)  # (..., G, d_v)
        out = out.index_copy(-2, index, rows.expand(*out.shape[:-2], *rows.shape[-2:]))
    return out.to(dtype)


class LongformerSelfAttention(EfficientSelfAttention):
    """Multi-head Longformer self-attention (non-causal) with global projections.

    Besides the projections of :class:`.EfficientSelfAttention` (used by the window) it has
    ``q_global``, ``k_global``, ``v_global`` ``nn.Linear(d_model, d_model)`` for the global
    attention, initialised independently.

    Args:
        d_model, num_heads, bias: as :class:`~attnkit.efficient.EfficientSelfAttention`.
        window: keys on each side (radius).
        global_index: default positions of the global tokens; a forward call may override
            them with its own ``global_index``.
    """

    supports_causal = False

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        window: int,
        *,
        global_index: GlobalIndex = (0,),
        bias: bool = True,
    ) -> None:
        super().__init__(d_model, num_heads, bias=bias)
        self.window = check_positive_int(window, "window", allow_zero=True)
        # Validate the kind now; the range [0, n) is checked against each input.
        index = check_global_index(global_index, n=None)
        self.global_index: tuple[int, ...] = tuple(index.tolist())
        self.q_global = torch.nn.Linear(d_model, d_model, bias=bias)
        self.k_global = torch.nn.Linear(d_model, d_model, bias=bias)
        self.v_global = torch.nn.Linear(d_model, d_model, bias=bias)

    def attend_with_global(
        self, q, k, v, q_global, k_global, v_global, key_padding_mask, global_index
    ) -> torch.Tensor:
        """Per-head core: all tensors ``(B, H, n, head_dim)``; returns ``(B, H, n, head_dim)``."""
        mask = padding_to_mask(key_padding_mask)  # (B, 1, 1, n) or None
        return longformer_attention(
            q, k, v, q_global, k_global, v_global, self.window, global_index, mask=mask
        )

    def attend(self, q, k, v, key_padding_mask):
        """The core with the global projections replaced by the local ones.

        This is all the base class's interface can express (it projects ``x`` once);
        :meth:`forward` uses the separate global projections.
        """
        return self.attend_with_global(q, k, v, q, k, v, key_padding_mask, self.global_index)

    def forward(
        self,
        x: torch.Tensor,
        *,
        key_padding_mask: torch.Tensor | None = None,
        global_index: GlobalIndex | None = None,
    ) -> torch.Tensor:
        """Self-attention over ``x`` ``(B, n, d_model)``; returns ``(B, n, d_model)``.

        ``global_index`` (positions in ``[0, n)``) overrides the module's default for this
        call; ``None`` uses ``self.global_index``.
        """
        x = check_sequence(x, "x", self, self.d_model)
        if key_padding_mask is not None:
            check_key_padding_mask(key_padding_mask, x.shape[0], x.shape[1])
        index = self.global_index if global_index is None else global_index
        projections = (self.q_proj, self.k_proj, self.v_proj)
        projections += (self.q_global, self.k_global, self.v_global)
        heads = [split_heads(proj(x), self.num_heads) for proj in projections]  # (B, H, n, D)
        out = self.attend_with_global(*heads, key_padding_mask, index)  # (B, H, n, D)
        return self.out_proj(merge_heads(out))  # (B, n, d_model)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, window={self.window}, global_index={self.global_index}"

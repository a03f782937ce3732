"""Kernel (linear) attention: the linear transformer of Katharopoulos et al. (2020).

Katharopoulos, Vyas, Pappas and Fleuret, 2020, "Transformers are RNNs: Fast Autoregressive
Transformers with Linear Attention", sections 3.2-3.4. Replace the similarity
``exp(q_i^T k_j)`` of softmax attention by a kernel ``phi(q_i)^T phi(k_j)`` with a feature
map ``phi: R^d -> R^m`` whose values are non-negative (eq. 4). Then::

    out_i = sum_j phi(q_i)^T phi(k_j) v_j / sum_j phi(q_i)^T phi(k_j)
          = phi(q_i)^T S / phi(q_i)^T z,   S = sum_j phi(k_j) v_j^T,  z = sum_j phi(k_j)  (eq. 5)

and ``S`` (``m x d``) and ``z`` (``m``) are computed once for all queries: O(n m d) time
instead of O(n^2 d). With a causal mask the sums run over ``j <= i`` (eq. 8-9): ``S_i`` and
``z_i`` are prefix sums, which is what makes the model an RNN (section 3.4).

The causal prefix sums are computed **chunkwise**: the sequence is cut into chunks of
``c`` positions; within a chunk the ``c x c`` block of ``phi(q) phi(k)^T`` is formed and
masked (a small quadratic part), and across chunks a running state ``S, z`` carries the sum
over all earlier chunks. Memory, including what autograd keeps for the backward pass, is
``O(n c + n m + (n / c) m d)``, not the ``O(n m d)`` of materialising every ``S_i``.

All of it runs a block of about 1024 positions at a time (a Python loop over blocks, with
big matrix products inside): the features are computed per block, so the ``(n, m)``
feature matrices never all sit in memory and each block's stay in cache, which keeps the
time linear in ``n`` in practice, not only on paper.

:func:`kernel_attention` is the shared core (any non-negative feature map, see also
:mod:`attnkit.efficient.performer`); :func:`linear_attention` uses the paper's map
``phi(x) = elu(x) + 1`` (section 3.2.1).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .._validate import (
    broadcasts_to,
    check_floating,
    check_positive_int,
    check_qkv,
    check_scale,
    check_tensor,
    compute_dtype,
    fmt_shape,
)
from ._base import EfficientSelfAttention

_BLOCK = 1024  # positions per step of the loops (causal: rounded to whole chunks)


def check_kernel_padding_mask(mask: object, batch: torch.Size, n_k: int) -> torch.Tensor:
    """Check a key padding mask for the functional cores: bool, broadcasting to ``(..., n_k)``.

    ``True`` marks a real key. For ``(B, H, n, m)`` features pass a ``(B, n)`` padding mask
    as ``mask[:, None, :]`` (shape ``(B, 1, n)``).
    """
    check_tensor(mask, "key_padding_mask", min_dim=1)
    assert isinstance(mask, torch.Tensor)
    target = torch.Size((*batch, n_k))
    if mask.dtype != torch.bool or not broadcasts_to(mask.shape, target):
        raise ValueError(
            f"key_padding_mask must be a bool tensor (True = real key) that broadcasts to "
            f"(..., n_k) = {fmt_shape(target)}; got {mask.dtype} {fmt_shape(mask.shape)}. "
            f"For (B, H, n, d) inputs pass a (B, n) mask as mask[:, None, :]."
        )
    return mask


def check_kernel_options(
    causal: object, eps: object, chunk_size: object, n_q: int, n_k: int
) -> tuple[float, int]:
    """Check ``causal``, ``eps`` and ``chunk_size``; return ``(eps, chunk_size)``."""
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be True or False, got {causal!r}.")
    if eps is None:
        raise TypeError("eps must be a positive number, got None.")
    eps = check_scale(eps, "eps")
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    if causal and n_q != n_k:
        raise ValueError(
            f"causal kernel attention needs as many queries as keys (query i sees keys "
            f"j <= i); got n_q = {n_q} and n_k = {n_k}."
        )
    assert eps is not None
    return eps, chunk_size


QueryFeatures = Callable[[slice], torch.Tensor]
KeyFeatures = Callable[[slice, torch.Tensor | None], tuple[torch.Tensor, torch.Tensor | None]]


def _blocks(n: int, size: int) -> list[slice]:
    """``[0, size), [size, 2 size), ...`` covering ``range(n)``."""
    return [slice(start, start + size) for start in range(0, n, size)]


def _with_ones(v: torch.Tensor) -> torch.Tensor:
    """``(..., n, d_v) -> (..., n, d_v + 1)``: the sums that give ``S`` then also give ``z``."""
    return F.pad(v, (0, 1), value=1.0)


def _given_features(phi: torch.Tensor, mask: torch.Tensor | None) -> KeyFeatures:
    """Key features already computed (padded keys zeroed), with no rescaling of the sums."""

    def key_features(part: slice, sums: torch.Tensor | None):
        block = phi[..., part, :]  # (..., b, m)
        if mask is not None:
            block = torch.where(mask[..., part, None], block, 0.0)
        return block, sums

    return key_features


def _attend_blockwise(
    query_features: QueryFeatures,
    key_features: KeyFeatures,
    v: torch.Tensor,
    n_q: int,
    *,
    causal: bool,
    chunk_size: int,
    eps: float,
) -> torch.Tensor:
    """``phi_q_i^T S_i / max(phi_q_i^T z_i, eps)`` ``(..., n_q, d_v)``, a block at a time.

    The features are produced block by block (about ``_BLOCK`` positions) so that the
    ``(n, m)`` feature matrices never all sit in memory and each block's stay in cache:
    ``query_features(part)`` returns ``phi(q)`` ``(..., b, m)`` for the positions ``part``
    and ``key_features(part, sums)`` returns ``phi(k)`` for them together with the sums
    over the earlier blocks, brought to the same scale (the Performer rescales them when
    its stabilising constant changes; other feature maps return them unchanged).
    """
    if causal:
        outs = _causal_sums(query_features, key_features, v, chunk_size)
    else:
        outs = _noncausal_sums(query_features, key_features, v, n_q)
    return torch.cat([_normalise(out, eps) for out in outs], dim=-2)[..., :n_q, :]


def _noncausal_sums(
    query_features: QueryFeatures, key_features: KeyFeatures, v: torch.Tensor, n_q: int
) -> list[torch.Tensor]:
    """``phi_q [S | z]`` with ``[S | z] = sum_j phi_k_j [v_j | 1]^T`` over all keys (eq. 5).

    Returns one ``(..., b, d_v + 1)`` tensor per block of queries.
    """
    Sz = None  # (..., m, d_v + 1)
    for part in _blocks(v.shape[-2], _BLOCK):
        phi_k, Sz = key_features(part, Sz)  # (..., b, m)
        Sz_block = phi_k.transpose(-2, -1) @ _with_ones(v[..., part, :])  # (..., m, d_v + 1)
        Sz = Sz_block if Sz is None else Sz + Sz_block
    return [query_features(part) @ Sz for part in _blocks(n_q, _BLOCK)]


def _chunk(x: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """``(..., n, f) -> (..., n / c, c, f)``, zero-padding ``n`` up to a multiple of ``c``."""
    n = x.shape[-2]
    pad = -n % chunk_size
    if pad:
        x = F.pad(x, (0, 0, 0, pad))  # zero rows: zero features contribute nothing
    return x.unflatten(-2, (-1, chunk_size))  # (..., n_c, c, f)


def _causal_sums(
    query_features: QueryFeatures, key_features: KeyFeatures, v: torch.Tensor, chunk_size: int
) -> list[torch.Tensor]:
    """``phi_q_i [S_i | z_i]`` with sums over ``j <= i`` (eq. 8-9), chunk by chunk.

    The loop steps over blocks of whole chunks and carries the running state ``[S | z]``
    of everything before the block; inside a block all chunks are handled at once.
    Returns one ``(..., g * c, d_v + 1)`` tensor per block (the last one zero-padded to
    whole chunks).
    """
    n = v.shape[-2]
    c = min(chunk_size, n)
    keep = torch.ones(c, c, dtype=torch.bool, device=v.device).tril()  # (c, c), j <= i
    outs, state = [], None  # state: (..., m, d_v + 1), sum over all earlier blocks
    for part in _blocks(n, c * max(1, _BLOCK // c)):
        phi_q = query_features(part)  # (..., b, m)
        phi_k, state = key_features(part, state)  # (..., b, m)
        Q, K, V = _chunk(phi_q, c), _chunk(phi_k, c), _chunk(_with_ones(v[..., part, :]), c)
        out, state = _causal_block(Q, K, V, keep, state)
        outs.append(out)  # (..., g * c, d_v + 1)
    return outs


def _causal_block(
    Q: torch.Tensor,
    K: torch.Tensor,
    V: torch.Tensor,
    keep: torch.Tensor,
    state: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal sums for ``g`` chunks ``(..., g, c, f)`` that follow the running ``state``."""
    # Within a chunk: the masked c x c block of phi_q phi_k^T (the small quadratic part).
    A = (Q @ K.transpose(-2, -1)).mul_(keep)  # (..., g, c, c); batched .tril() is slow
    # Across chunks: chunk t sees the state [S | z] of the chunks before it (exclusive sum).
    Sz = K.transpose(-2, -1) @ V  # (..., g, m, d_v + 1), one per chunk
    before = F.pad(Sz[..., :-1, :, :], (0, 0, 0, 0, 1, 0)).cumsum(dim=-3)  # (..., g, m, d_v + 1)
    if state is not None:
        before = before + state.unsqueeze(-3)
    out = A @ V + Q @ before  # (..., g, c, d_v + 1)
    return out.flatten(-3, -2), before[..., -1, :, :] + Sz[..., -1, :, :]


def kernel_attention(
    phi_q: torch.Tensor,
    phi_k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = False,
    key_padding_mask: torch.Tensor | None = None,
    eps: float = 1e-6,
    chunk_size: int = 128,
) -> torch.Tensor:
    """Attention with the kernel ``phi(q)^T phi(k)`` in linear time (Katharopoulos et al., eq. 5).

    ``out_i = phi_q_i^T S_i / max(phi_q_i^T z_i, eps)`` with ``S_i = sum_j phi_k_j v_j^T`` and
    ``z_i = sum_j phi_k_j``, the sums running over all keys ``j`` or, with ``causal=True``,
    over ``j <= i`` (eq. 8-9). This is exactly ``A v`` for ``A = phi_q phi_k^T`` (masked)
    with its rows normalised to sum to 1, but ``A`` (``n_q x n_k``) is never formed.
    (``z`` is computed as the ``S`` of a column of ones appended to ``v``.)

    Args:
        phi_q: query features ``(..., n_q, m)``; must be non-negative (a kernel's features).
        phi_k: key features ``(..., n_k, m)``, non-negative.
        v: values ``(..., n_k, d_v)``. The three share one floating dtype and their leading
            dimensions broadcast; 16-bit inputs are computed in float32, output cast back.
        causal: query ``i`` sees keys ``j <= i`` only (needs ``n_q == n_k``).
        key_padding_mask: optional bool tensor broadcasting to ``(..., n_k)``, ``True`` = real
            key; the features of padded keys are set to zero, so they take no weight. (For
            ``(B, H, n, m)`` features pass a ``(B, n)`` mask as ``mask[:, None, :]``.)
        eps: lower bound on the normaliser ``phi_q_i^T z_i``. The paper's code *adds* eps;
            clamping keeps the result exact whenever the normaliser exceeds eps, and a query
            with no real key (normaliser 0) gets a zero output and zero gradients.
        chunk_size: chunk length ``c`` of the causal computation; any positive value gives
            the same result up to rounding.

    Returns:
        ``(..., n_q, d_v)`` in the dtype of ``v``.

    Complexity:
        time ``O(n m d_v)`` (causal: ``O(n c (m + d_v) + n m d_v)``); extra memory
        ``O(n d_v + m d_v)`` non-causal, ``O(n c + n d_v + (n / c) m d_v)`` causal (plus
        ``O(n m)`` for masked features when ``key_padding_mask`` is given).
    """
    batch = check_qkv(
        phi_q, phi_k, v, names=("phi_q", "phi_k", "v"), last="number of features m (last dimension)"
    )
    n_q, n_k = phi_q.shape[-2], phi_k.shape[-2]
    eps, chunk_size = check_kernel_options(causal, eps, chunk_size, n_q, n_k)
    # One pass over the features (O(n m), less than the O(n m d_v) of the attention): a
    # negative feature can make the normaliser 0 or negative, and the "weights" no
    # longer a distribution.
    for name, phi in (("phi_q", phi_q), ("phi_k", phi_k)):
        if phi.numel() and not bool((phi >= 0).all()):
            raise ValueError(
                f"{name} must be non-negative (a kernel's feature map, e.g. elu(x) + 1); "
                f"its smallest entry is {phi.min().item():.3g}."
            )

    if key_padding_mask is not None:
        check_kernel_padding_mask(key_padding_mask, batch, n_k)
    out_dtype, work = v.dtype, compute_dtype(v.dtype)
    if n_q == 0 or n_k == 0:
        return torch.zeros((*batch, n_q, v.shape[-1]), dtype=out_dtype, device=v.device)

    phi_q, phi_k, v = phi_q.to(work), phi_k.to(work), v.to(work)
    out = _attend_blockwise(
        lambda part: phi_q[..., part, :],
        _given_features(phi_k, key_padding_mask),
        v,
        n_q,
        causal=causal,
        chunk_size=chunk_size,
        eps=eps,
    )  # (..., n_q, d_v)
    return out.to(out_dtype)


def _normalise(out: torch.Tensor, eps: float) -> torch.Tensor:
    """``[num | den]`` ``(..., n, d_v + 1)`` -> ``num / max(den, eps)`` ``(..., n, d_v)``."""
    return out[..., :-1] / out[..., -1:].clamp_min(eps)  # (..., n, d_v)


def elu_feature_map(x: torch.Tensor) -> torch.Tensor:
    """``phi(x) = elu(x) + 1``, the feature map of the linear transformer (section 3.2.1).

    ``x + 1`` for ``x > 0`` and ``exp(x)`` otherwise: positive, so the kernel
    ``phi(q)^T phi(k)`` is a non-negative similarity; ``m = d`` features. Computed as the
    paper's code does, ``elu(x) + 1 = (exp(x) - 1) + 1``, which is fast (two passes over
    the data) but rounds tiny features to multiples of the spacing of numbers near 1: in
    float32 ``phi(x)`` has an absolute error up to 6e-8 and is exactly 0 for ``x`` below
    about -17.3 (float64: 1e-16 and -37). A query whose features are all 0 gets a zero
    output, see ``eps`` in :func:`kernel_attention`.
    Shape ``(..., d) -> (..., d)``, elementwise, O(n d).
    """
    check_floating(check_tensor(x, "x"), "x")
    # In-place add: elu's backward uses its input, not its output, so this is safe.
    return F.elu(x).add_(1.0)


def linear_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = False,
    key_padding_mask: torch.Tensor | None = None,
    eps: float = 1e-6,
    chunk_size: int = 128,
) -> torch.Tensor:
    """Linear attention with ``phi(x) = elu(x) + 1`` (Katharopoulos et al., 2020, eq. 5-9).

    ``out_i = sum_j phi(q_i)^T phi(k_j) v_j / sum_j phi(q_i)^T phi(k_j)`` over all keys, or
    over ``j <= i`` when ``causal``. There is no ``1 / sqrt(d)`` scale: the kernel replaces
    the softmax entirely.

    Args:
        q: queries ``(..., n_q, d)``; k: keys ``(..., n_k, d)``; v: values
            ``(..., n_k, d_v)``; one floating dtype, leading dimensions broadcast.
        causal, key_padding_mask, eps, chunk_size: as in :func:`kernel_attention`
            (``key_padding_mask`` bool broadcasting to ``(..., n_k)``, ``True`` = real key).

    Returns:
        ``(..., n_q, d_v)`` in the dtype of ``v``. Time ``O(n d d_v)``, no ``n x n`` matrix.
    """
    batch = check_qkv(q, k, v)
    n_q, n_k = q.shape[-2], k.shape[-2]
    eps, chunk_size = check_kernel_options(causal, eps, chunk_size, n_q, n_k)
    if key_padding_mask is not None:
        check_kernel_padding_mask(key_padding_mask, batch, n_k)
    out_dtype, work = q.dtype, compute_dtype(q.dtype)
    if n_q == 0 or n_k == 0:
        return torch.zeros((*batch, n_q, v.shape[-1]), dtype=out_dtype, device=v.device)

    q, k, v = q.to(work), k.to(work), v.to(work)

    def key_features(part: slice, sums: torch.Tensor | None):
        phi_k = elu_feature_map(k[..., part, :])  # (..., b, d)
        if key_padding_mask is not None:
            phi_k = torch.where(key_padding_mask[..., part, None], phi_k, 0.0)
        return phi_k, sums

    out = _attend_blockwise(
        lambda part: elu_feature_map(q[..., part, :]),  # (..., b, d)
        key_features,
        v,
        n_q,
        causal=causal,
        chunk_size=chunk_size,
        eps=eps,
    )  # (..., n_q, d_v)
    return out.to(out_dtype)


class LinearSelfAttention(EfficientSelfAttention):
    """Multi-head linear-transformer self-attention, ``phi = elu + 1`` (Katharopoulos et al.).

    Args:
        d_model: model width; num_heads: number of heads (``head_dim = d_model // H``).
        causal: autoregressive (``j <= i``) attention, computed chunkwise.
        bias: whether the q/k/v/out projections have biases.

    Time O(n d_model head_dim), memory O(n d_model) per layer: linear in the length ``n``.
    """

    supports_causal = True

    def __init__(
        self, d_model: int, num_heads: int, *, causal: bool = False, bias: bool = True
    ) -> None:
        super().__init__(d_model, num_heads, bias=bias, causal=causal)

    def attend(self, q, k, v, key_padding_mask):
        mask = None if key_padding_mask is None else key_padding_mask[:, None, :]  # (B, 1, n)
        return linear_attention(q, k, v, causal=self.causal, key_padding_mask=mask)


__all__ = [
    "LinearSelfAttention",
    "elu_feature_map",
    "kernel_attention",
    "linear_attention",
]

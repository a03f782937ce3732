"""Performer attention: FAVOR+, softmax attention through positive orthogonal random features.

Choromanski, Likhosherstov, Dohan, Song, Gane, Sarlos, Hawkins, Davis, Mohiuddin, Kaiser,
Belanger, Colwell and Weller, 2021 (ICLR), "Rethinking Attention with Performers",
sections 2.3-2.4.

The softmax kernel is an expectation over Gaussian directions ``w ~ N(0, I_d)`` (lemma 1)::

    exp(q^T k) = E_w[ exp(w^T q - |q|^2 / 2) exp(w^T k - |k|^2 / 2) ],

so with ``m`` directions ``w_1 .. w_m`` (the rows of a ``projection`` matrix ``W``) the
*positive random features* (eq. 7)::

    phi(x) = exp(W x - |x|^2 / 2) / sqrt(m)

give an unbiased estimate ``phi(q)^T phi(k)`` of ``exp(q^T k)`` that is always positive
(unlike ``sin``/``cos`` features, whose estimate of a small softmax weight can be negative).
Scaling ``q`` and ``k`` by ``scale ** 0.5`` turns it into an estimate of
``exp(q^T k * scale)``, and :func:`attnkit.efficient.kernel.kernel_attention` then computes
softmax attention's normalised weighted sum in time linear in ``n``. Drawing the ``w`` in
blocks of mutually *orthogonal* directions (section 2.4) lowers the estimator's variance.
"""

from __future__ import annotations

import math

import torch

from .._validate import (
    check_bool,
    check_dtype,
    check_floating,
    check_generator,
    check_positive_int,
    check_qkv,
    check_scale,
    check_tensor,
    compute_dtype,
    fmt_shape,
)
from ._base import EfficientSelfAttention
from .kernel import _attend_blockwise, check_kernel_options, check_kernel_padding_mask


def orthogonal_gaussian_features(
    num_features: int,
    dim: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Random directions ``W`` ``(num_features, dim)``, orthogonal within blocks of ``dim``.

    Each block of ``dim`` rows is a uniformly random orthogonal matrix (QR of a Gaussian
    matrix, with the signs fixed so that it is Haar-distributed) whose rows are rescaled by
    the norms of independent Gaussian vectors in ``R^dim`` (chi-distributed). Every row is
    then marginally ``N(0, I_dim)``, so the features stay unbiased, while rows in one block
    are exactly orthogonal (Choromanski et al., 2021, section 2.4). Blocks are stacked and
    the last one truncated to ``num_features`` rows.

    Args:
        num_features: ``m``, the number of random features.
        dim: ``d``, the dimension of queries and keys.
        generator: random generator (its device is where the draw happens); default global.
        dtype, device: of the result.

    Returns:
        ``(m, d)`` tensor. Cost O(ceil(m / d) d^3) for the QR decompositions.
    """
    m = check_positive_int(num_features, "num_features")
    d = check_positive_int(dim, "dim")
    check_dtype(dtype)
    check_generator(generator)
    where = generator.device if generator is not None else torch.device("cpu")
    blocks = -(-m // d)
    gauss = torch.randn(blocks, d, d, generator=generator, dtype=torch.float64, device=where)
    Q, R = torch.linalg.qr(gauss)  # (blocks, d, d) each
    Q = Q * torch.sign(torch.diagonal(R, dim1=-2, dim2=-1)).unsqueeze(-2)  # Haar
    rows = Q.transpose(-2, -1)  # (blocks, d, d), orthonormal rows
    norms = torch.randn(blocks, d, d, generator=generator, dtype=torch.float64, device=where)
    norms = norms.norm(dim=-1, keepdim=True)  # (blocks, d, 1), chi(d) lengths
    W = (rows * norms).reshape(blocks * d, d)[:m]  # (m, d)
    return W.to(dtype=dtype, device=device if device is not None else where)


def positive_random_features(
    x: torch.Tensor,
    projection: torch.Tensor,
    *,
    is_query: bool,
    stabilize: bool = True,
    key_padding_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Positive random features ``phi(x) = exp(W x - |x|^2 / 2) / sqrt(m)`` (eq. 7).

    ``E_W[phi(q)^T phi(k)] = exp(q^T k)`` when the rows of ``W`` are ``N(0, I)``.

    With ``stabilize=True`` a constant is subtracted from the exponent before ``exp`` so
    that it cannot overflow: the maximum of each row for queries (``is_query=True``), one
    maximum over all (real) keys and features for keys. A query's constant multiplies its
    numerator and its normaliser alike, and the keys' constant multiplies every term, so
    both cancel in attention's normalisation; but ``phi(q)^T phi(k)`` is then only
    *proportional* to the estimate of ``exp(q^T k)``. Use ``stabilize=False`` for the plain
    estimate. (Used for causal attention, the keys' constant depends on later keys too: it
    cancels exactly, but a much larger later key can make earlier keys' features underflow.
    :func:`favor_attention` avoids that with a running maximum.)

    Args:
        x: queries or keys ``(..., n, d)``, floating; 16-bit inputs are computed in float32.
        projection: ``W`` ``(m, d)`` (or broadcasting ``(..., m, d)``), e.g. from
            :func:`orthogonal_gaussian_features`; cast to the dtype of the computation.
        is_query: which stabilising constant to use (see above).
        stabilize: subtract the maximum of the exponent before ``exp``.
        key_padding_mask: keys only: optional bool broadcasting to ``(..., n)`` (the shape
            of ``x`` without its last dimension), ``True`` = real key; padded keys get zero
            features and are left out of the max.

    Returns:
        ``(..., n, m)`` non-negative features in the dtype of ``x``. Time O(n m d).
    """
    check_floating(check_tensor(x, "x", min_dim=2), "x")
    check_floating(check_tensor(projection, "projection", min_dim=2), "projection")
    is_query = check_bool(is_query, "is_query")
    stabilize = check_bool(stabilize, "stabilize")
    if projection.shape[-1] != x.shape[-1]:
        raise ValueError(
            f"projection must have shape (m, d) with d = {x.shape[-1]}, the last dimension of "
            f"x {fmt_shape(x.shape)}; got projection {fmt_shape(projection.shape)}."
        )
    if not isinstance(is_query, bool):
        raise TypeError(f"is_query must be True or False, got {is_query!r}.")
    if key_padding_mask is not None:
        if is_query:
            raise ValueError("key_padding_mask is for keys only; pass it with is_query=False.")
        check_kernel_padding_mask(key_padding_mask, x.shape[:-2], x.shape[-2])
    work = compute_dtype(x.dtype)
    phi = _features(x.to(work), projection.to(work), 1.0, is_query, stabilize, key_padding_mask)
    return phi.to(x.dtype)  # (..., n, m)


def _features(
    x: torch.Tensor,
    W: torch.Tensor,
    x_scale: float,
    is_query: bool,
    stabilize: bool,
    key_padding_mask: torch.Tensor | None,
) -> torch.Tensor:
    """``phi(c x)`` for ``c = x_scale`` without forming ``c x``: ``w^T (c x) = (c w)^T x``.

    Few passes over the ``(..., n, m)`` features: one matmul, one max, one in-place
    subtract and one in-place ``exp``; everything else is per row ``(..., n, 1)``.
    """
    m = W.shape[-2]
    wx = x @ (W * x_scale).transpose(-2, -1)  # (..., n, m): w_r^T (c x)
    half_sq = torch.linalg.vector_norm(x, dim=-1, keepdim=True).square() * (x_scale**2 / 2)
    # phi = exp(wx - offset), offset = |c x|^2 / 2 + log(sqrt(m)) (+ the stabilising shift).
    offset = half_sq + math.log(m) / 2  # (..., n, 1)
    if stabilize and wx.shape[-2] > 0:
        offset = offset + _stabilizer(wx, half_sq, is_query, key_padding_mask)
    if key_padding_mask is not None:
        offset = torch.where(key_padding_mask.unsqueeze(-1), offset, math.inf)  # exp(-inf) = 0
    # In place: wx is a fresh matmul output that no backward formula needs.
    return wx.sub_(offset).exp_()  # (..., n, m)


def _stabilizer(
    wx: torch.Tensor, half_sq: torch.Tensor, is_query: bool, key_padding_mask: torch.Tensor | None
) -> torch.Tensor:
    """The (detached) largest exponent ``w^T x - |x|^2 / 2``: per row, or over all real keys."""
    with torch.no_grad():
        top = wx.amax(dim=-1, keepdim=True) - half_sq  # (..., n, 1), each row's largest
        if is_query:
            return top  # (..., n, 1)
        if key_padding_mask is not None:
            top = torch.where(key_padding_mask.unsqueeze(-1), top, -math.inf)
        top = top.amax(dim=-2, keepdim=True)  # (..., 1, 1)
        return torch.where(torch.isfinite(top), top, 0.0)  # all keys padded: no shift


def favor_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    projection: torch.Tensor,
    *,
    causal: bool = False,
    key_padding_mask: torch.Tensor | None = None,
    scale: float | None = None,
    eps: float = 1e-6,
    chunk_size: int = 128,
) -> torch.Tensor:
    """FAVOR+ estimate of ``softmax(q k^T * scale) v`` in linear time (Choromanski et al.).

    ``q`` and ``k`` are multiplied by ``scale ** 0.5`` so that
    ``E[phi(q_i)^T phi(k_j)] = exp(q_i^T k_j * scale)``; the features of
    :func:`positive_random_features` then go through the kernel attention of
    :func:`attnkit.efficient.kernel.kernel_attention`. The result is random (through
    ``projection``); its error shrinks like ``1 / sqrt(m)``.

    Like :func:`attnkit.efficient.kernel.kernel_attention` it runs a block of about 1024
    positions at a time, computing each block's features on the way, so the ``(n, m)``
    features never all sit in memory. The keys' stabilising constant is then the running
    maximum over the blocks so far: sums made under a smaller maximum are rescaled by
    ``exp(old - new)`` when it grows (the online maximum of tiled softmax attention). In
    exact arithmetic that is the same as one maximum over all keys; in causal attention it
    depends on no key beyond the current block.

    Args:
        q: queries ``(..., n_q, d)``; k: keys ``(..., n_k, d)``; v: values ``(..., n_k, d_v)``;
            one floating dtype, leading dimensions broadcast; 16-bit inputs are computed in
            float32 and the output cast back.
        projection: random directions ``(m, d)``, see :func:`orthogonal_gaussian_features`.
        causal: query ``i`` attends to keys ``j <= i`` only (needs ``n_q == n_k``).
        key_padding_mask: optional bool broadcasting to ``(..., n_k)``, ``True`` = real key
            (for ``(B, H, n, d)`` inputs pass a ``(B, n)`` mask as ``mask[:, None, :]``).
            A query with no real key gets a zero output.
        scale: score multiplier; default ``1 / sqrt(d)``.
        eps, chunk_size: as in :func:`attnkit.efficient.kernel.kernel_attention`.

    Returns:
        ``(..., n_q, d_v)`` in the dtype of ``q``. Time O(n m (d + d_v)) (causal: plus
        O(n c (m + d_v))); no ``n x n`` matrix. Memory for the forward pass O(n d + b m)
        with blocks of ``b`` positions (plus what autograd keeps for the backward pass).
    """
    batch = check_qkv(q, k, v)
    scale = check_scale(scale)
    d = q.shape[-1]
    check_floating(check_tensor(projection, "projection", min_dim=2), "projection")
    if projection.shape[-1] != d:
        raise ValueError(
            f"projection must have shape (m, d) with d = {d}, the last dimension of q and k; "
            f"got projection {fmt_shape(projection.shape)}."
        )
    n_q, n_k = q.shape[-2], k.shape[-2]
    eps, chunk_size = check_kernel_options(causal, eps, chunk_size, n_q, n_k)
    if key_padding_mask is not None:
        check_kernel_padding_mask(key_padding_mask, batch, n_k)
    if scale is None:
        scale = 1.0 / math.sqrt(d)

    out_dtype, work = q.dtype, compute_dtype(q.dtype)
    root, W = math.sqrt(scale), projection.to(work)
    q, k, v = q.to(work), k.to(work), v.to(work)
    if key_padding_mask is not None:  # the mask may broadcast k to more batch dimensions
        k = k.expand(*batch, *k.shape[-2:])  # a view, no copy
    if n_q == 0 or n_k == 0:
        return torch.zeros((*batch, n_q, v.shape[-1]), dtype=out_dtype, device=q.device)

    out = _attend_blockwise(
        lambda part: _features(q[..., part, :], W, root, True, True, None),  # (..., b, m)
        _RunningMaxKeyFeatures(k, W, root, key_padding_mask),
        v,
        n_q,
        causal=causal,
        chunk_size=chunk_size,
        eps=eps,
    )  # (..., n_q, d_v)
    return out.to(out_dtype)


class _RunningMaxKeyFeatures:
    """Key features block by block, stabilised by the running maximum of the exponents.

    Called with a block ``part`` and the sums over earlier blocks, it returns the block's
    features shifted by ``shift = max(shift, this block's largest exponent)`` and the sums
    multiplied by ``exp(old shift - new shift)``, which puts them on the same scale (the
    online maximum of tiled softmax attention). ``shift`` is ``(..., 1, 1)``; ``-inf``
    means no real key so far.
    """

    def __init__(
        self, k: torch.Tensor, W: torch.Tensor, x_scale: float, mask: torch.Tensor | None
    ) -> None:
        self.k, self.W, self.x_scale, self.mask = k, W, x_scale, mask
        self.shift: torch.Tensor | None = None

    def __call__(
        self, part: slice, sums: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        k = self.k[..., part, :]  # (..., b, d)
        mask = None if self.mask is None else self.mask[..., part]  # (..., b)
        m = self.W.shape[-2]
        wx = k @ (self.W * self.x_scale).transpose(-2, -1)  # (..., b, m)
        half_sq = torch.linalg.vector_norm(k, dim=-1, keepdim=True).square()
        half_sq = half_sq * (self.x_scale**2 / 2)  # (..., b, 1)
        with torch.no_grad():
            top = wx.amax(dim=-1, keepdim=True) - half_sq  # (..., b, 1), each key's largest
            if mask is not None:
                top = torch.where(mask.unsqueeze(-1), top, -math.inf)
            top = top.amax(dim=-2, keepdim=True)  # (..., 1, 1)
            old = top if self.shift is None else self.shift
            self.shift = torch.maximum(old, top)
            # exp(old - new) <= 1; -inf - -inf = nan where no key so far was real (sums 0).
            rescale = torch.exp(torch.nan_to_num(old - self.shift, nan=0.0))
        if sums is not None:
            sums = sums * rescale
        offset = half_sq + (math.log(m) / 2 + self.shift)  # (..., b, 1)
        if mask is not None:  # padded keys: exp(-inf) = 0 (shift = -inf only if all are)
            offset = torch.where(mask.unsqueeze(-1), offset, math.inf)
        return wx.sub_(offset).exp_(), sums  # (..., b, m)


def default_num_features(head_dim: int) -> int:
    """``m = ceil(d ln d)`` (natural log, at least 1): the paper's ``Theta(d log d)`` (section 4).

    ``head_dim = 64`` gives 267 features, ``head_dim = 8`` gives 17.
    """
    d = check_positive_int(head_dim, "head_dim")
    return max(1, math.ceil(d * math.log(d)))


class PerformerSelfAttention(EfficientSelfAttention):
    """Multi-head Performer self-attention (FAVOR+, Choromanski et al., 2021).

    Args:
        d_model: model width; num_heads: number of heads (``head_dim = d_model // H``).
        num_features: ``m`` random features; default ``ceil(head_dim * ln(head_dim))``
            (the ``d log d`` of the paper; 267 for ``head_dim = 64``).
        causal: autoregressive attention (``j <= i``), computed chunkwise.
        seed: seed of the first draw of the random directions.
        bias: whether the q/k/v/out projections have biases.

    The directions ``projection`` ``(m, head_dim)`` are a buffer (saved in the state dict,
    not trained), shared by all heads. The paper redraws them from time to time during
    training: call :meth:`redraw_features`. Time O(n m head_dim) per head.
    """

    supports_causal = True

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        *,
        num_features: int | None = None,
        causal: bool = False,
        seed: int = 0,
        bias: bool = True,
    ) -> None:
        super().__init__(d_model, num_heads, bias=bias, causal=causal)
        if num_features is None:
            num_features = default_num_features(self.head_dim)
        self.num_features = check_positive_int(num_features, "num_features")
        seed = check_positive_int(seed, "seed", allow_zero=True)
        generator = torch.Generator().manual_seed(seed)
        projection = orthogonal_gaussian_features(
            self.num_features, self.head_dim, generator=generator, dtype=self.q_proj.weight.dtype
        )
        self.register_buffer("projection", projection)  # (m, head_dim)

    @torch.no_grad()
    def redraw_features(self, generator: torch.Generator | None = None) -> None:
        """Draw new random directions in place (default: from the global generator)."""
        fresh = orthogonal_gaussian_features(
            self.num_features,
            self.head_dim,
            generator=generator,
            dtype=self.projection.dtype,
            device=self.projection.device,
        )
        self.projection.copy_(fresh)

    def attend(self, q, k, v, key_padding_mask):
        mask = None if key_padding_mask is None else key_padding_mask[:, None, :]  # (B, 1, n)
        return favor_attention(
            q, k, v, self.projection, causal=self.causal, key_padding_mask=mask
        )  # (B, H, n, D)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, num_features={self.num_features}"


__all__ = [
    "PerformerSelfAttention",
    "default_num_features",
    "favor_attention",
    "orthogonal_gaussian_features",
    "positive_random_features",
]

"""Positional information for attention, which on its own ignores order.

Attention is permutation-equivariant: permuting the keys (with their values) leaves every
query's output unchanged. Each scheme below puts position back in:

* Sinusoidal encoding (Vaswani et al., 2017, "Attention Is All You Need", section 3.5):
  a fixed table *added to the input embeddings* before the first layer.
* Learned absolute embedding (BERT, Devlin et al., 2019; GPT-2, Radford et al., 2019):
  a trained table, also added to the input embeddings.
* Rotary position embedding, RoPE (Su et al., 2021, "RoFormer: Enhanced Transformer with
  Rotary Position Embedding"): the queries and keys of *every* layer are rotated by
  angles proportional to their position, so that ``q_m . k_n`` depends on ``m - n`` only.
* ALiBi (Press, Smith & Lewis, 2021, "Train Short, Test Long: Attention with Linear
  Biases Enables Input Length Extrapolation"): a per-head penalty proportional to the
  distance, *added to the scores* as a float mask.

Every scheme has a functional core on tensors and a thin ``nn.Module`` where it needs
state. Tables are computed in float64 and then cast to the requested dtype.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import nn

from ._validate import (
    FLOAT_DTYPES,
    broadcasts_to,
    check_bool,
    check_floating,
    check_module_dtype,
    check_positive_int,
    check_probability,
    check_same_dtype,
    check_tensor,
    compute_dtype,
    fmt_shape,
)

# ----------------------------------------------------------------------------- checks


def _check_base(base: object) -> float:
    """The base of the frequencies (10000 in both papers): a positive finite number."""
    if isinstance(base, bool) or not isinstance(base, numbers.Real):
        raise TypeError(f"base must be a positive number, got {type(base).__name__}.")
    if not (math.isfinite(float(base)) and base > 0):
        raise ValueError(f"base must be a positive finite number, got {base!r}.")
    return float(base)


def _check_dtype(dtype: object) -> torch.dtype:
    if dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"dtype must be a floating-point dtype (float16, bfloat16, float32 or float64), "
            f"got {dtype}."
        )
    assert isinstance(dtype, torch.dtype)
    return dtype


def _check_head_dim(head_dim: object) -> int:
    head_dim = check_positive_int(head_dim, "head_dim")
    if head_dim % 2:
        raise ValueError(
            f"head_dim must be even for rotary embeddings (features are rotated in pairs), "
            f"got {head_dim}."
        )
    return head_dim


def _check_offset(offset: object) -> int:
    """A position offset: any Python int (negative values are allowed, as in causal_mask)."""
    if isinstance(offset, bool) or not isinstance(offset, int):
        raise TypeError(f"offset must be an int, got {type(offset).__name__}.")
    return offset


def _check_embeddings(x: object, d_model: int) -> torch.Tensor:
    """Check input embeddings ``(..., T, d_model)``."""
    check_floating(check_tensor(x, "x", min_dim=2), "x")
    assert isinstance(x, torch.Tensor)
    if x.shape[-1] != d_model:
        raise ValueError(
            f"x must have shape (B, T, d_model) with d_model = {d_model}, got {fmt_shape(x.shape)}."
        )
    return x


def _check_span(offset: object, n: int, max_len: int) -> int:
    """Check that positions ``offset, ..., offset + n - 1`` fit in a table of ``max_len``."""
    offset = check_positive_int(offset, "offset", allow_zero=True)
    if offset + n > max_len:
        raise ValueError(
            f"The input covers positions {offset}..{offset + n - 1} (T = {n}, offset = "
            f"{offset}) but the table has max_len = {max_len} positions; build the module "
            f"with max_len >= {offset + n} or feed shorter sequences."
        )
    return offset


# ------------------------------------------------------------------------- sinusoidal


def sinusoidal_encoding(
    n_positions: int,
    d_model: int,
    *,
    base: float = 10000.0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The fixed sinusoidal table of Vaswani et al. (2017), section 3.5.

    ::

        PE[pos, 2i]     = sin(pos / base^(2i / d_model))
        PE[pos, 2i + 1] = cos(pos / base^(2i / d_model))

    Each pair of columns ``(2i, 2i + 1)`` is a point on a circle turning with angular
    frequency ``base^(-2i / d_model)``, so ``PE[pos + k]`` is a fixed rotation (a linear
    function depending on ``k`` only) of ``PE[pos]``, the property the paper cites. An odd
    ``d_model`` is supported: the last column is then a sine column without its cosine
    partner, i.e. the formula above evaluated for every column index below ``d_model``.

    Args:
        n_positions: number of positions (rows).
        d_model: embedding size (columns).
        base: the frequency base, 10000 in the paper.
        dtype: floating dtype of the result (computed in float64, then cast).
        device: where to put the result.

    Returns:
        Tensor ``(n_positions, d_model)``, to be *added* to the input embeddings.
    """
    n_positions = check_positive_int(n_positions, "n_positions")
    d_model = check_positive_int(d_model, "d_model")
    base = _check_base(base)
    dtype = _check_dtype(dtype)
    pos = torch.arange(n_positions, dtype=torch.float64).unsqueeze(-1)  # (n_positions, 1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)  # (ceil(d_model / 2),)
    angles = pos / base ** (two_i / d_model)  # (n_positions, ceil(d_model / 2))
    pe = torch.empty(n_positions, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angles)
    pe[:, 1::2] = torch.cos(angles[:, : d_model // 2])
    return pe.to(dtype).to(device)  # (n_positions, d_model)


class SinusoidalPositionalEncoding(nn.Module):
    """Add the sinusoidal table of Vaswani et al. (2017) to input embeddings, then dropout.

    The table is a non-persistent buffer (it is not saved in the ``state_dict``; it moves
    with ``.to(device)``). The paper also multiplies the token embeddings by
    ``sqrt(d_model)`` before adding the encoding; that is left to the caller.

    Args:
        d_model: embedding size.
        max_len: longest ``offset + T`` that ``forward`` accepts.
        dropout: dropout on the sum (0.1 in the paper), in training mode only.
        base: the frequency base, 10000 in the paper.
    """

    pe: torch.Tensor

    def __init__(
        self, d_model: int, max_len: int = 5000, dropout: float = 0.0, base: float = 10000.0
    ) -> None:
        super().__init__()
        self.d_model = check_positive_int(d_model, "d_model")
        self.max_len = check_positive_int(max_len, "max_len")
        self.dropout = nn.Dropout(check_probability(dropout, "dropout"))
        pe = sinusoidal_encoding(self.max_len, self.d_model, base=base)  # (max_len, d_model)
        self.register_buffer("pe", pe, persistent=False)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """``dropout(x + PE[offset : offset + T])`` for embeddings ``x`` of shape
        ``(B, T, d_model)``; ``offset`` is the position of ``x[:, 0]`` (for KV caches)."""
        x = _check_embeddings(x, self.d_model)
        T = x.shape[-2]
        offset = _check_span(offset, T, self.max_len)
        pe = self.pe[offset : offset + T].to(x.dtype)  # (T, d_model)
        return self.dropout(x + pe)  # (B, T, d_model)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, max_len={self.max_len}"


# ---------------------------------------------------------------------------- learned


class LearnedPositionalEmbedding(nn.Module):
    """A trained absolute position table added to the input embeddings (BERT, GPT-2).

    ``nn.Embedding(max_len, d_model)`` indexed by position, initialised from
    ``N(0, 0.02^2)`` as in GPT-2 and BERT. Unlike the sinusoidal table it cannot be
    evaluated beyond ``max_len``: longer inputs raise an error.

    Args:
        max_len: number of positions the table holds.
        d_model: embedding size.
        dropout: dropout on the sum (GPT-2 applies it there), in training mode only.
    """

    def __init__(self, max_len: int, d_model: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.max_len = check_positive_int(max_len, "max_len")
        self.d_model = check_positive_int(d_model, "d_model")
        self.emb = nn.Embedding(self.max_len, self.d_model)
        nn.init.normal_(self.emb.weight, mean=0.0, std=0.02)
        self.dropout = nn.Dropout(check_probability(dropout, "dropout"))

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """``dropout(x + emb(offset + arange(T)))`` for embeddings ``x`` of shape
        ``(B, T, d_model)``; ``offset`` is the position of ``x[:, 0]`` (for KV caches)."""
        x = _check_embeddings(x, self.d_model)
        check_module_dtype(x, "x", self)
        T = x.shape[-2]
        offset = _check_span(offset, T, self.max_len)
        positions = torch.arange(offset, offset + T, device=x.device)  # (T,)
        return self.dropout(x + self.emb(positions))  # (B, T, d_model)

    def extra_repr(self) -> str:
        return f"max_len={self.max_len}, d_model={self.d_model}"


# ----------------------------------------------------------------------------- rotary


def rotary_cos_sin(
    n_positions: int,
    head_dim: int,
    *,
    base: float = 10000.0,
    offset: int = 0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosines and sines of the rotary angles (Su et al., 2021, RoFormer, eq. 15).

    Position ``m`` rotates feature pair ``j`` (``0 <= j < head_dim / 2``) by the angle
    ``m * theta_j`` with ``theta_j = base^(-2j / head_dim)``. In the "rotate half" layout
    (see :func:`apply_rotary`) pair ``j`` is made of features ``j`` and
    ``j + head_dim / 2``, so both halves of each row repeat the same angles:
    ``cos[m] = cos(m * [theta_0, ..., theta_{d/2-1}, theta_0, ..., theta_{d/2-1}])``.

    Args:
        n_positions: number of consecutive positions.
        head_dim: size of each head's queries and keys; must be even.
        base: the frequency base, 10000 in the paper.
        offset: the first position (e.g. the length of a key/value cache).
        dtype: floating dtype of the result (computed in float64, then cast).
        device: where to put the result.

    Returns:
        ``(cos, sin)``, each of shape ``(n_positions, head_dim)``, for positions
        ``offset, ..., offset + n_positions - 1``.
    """
    n_positions = check_positive_int(n_positions, "n_positions")
    head_dim = _check_head_dim(head_dim)
    offset = _check_offset(offset)
    base = _check_base(base)
    dtype = _check_dtype(dtype)
    two_j = torch.arange(0, head_dim, 2, dtype=torch.float64)  # (head_dim / 2,)
    theta = base ** (-two_j / head_dim)  # (head_dim / 2,)
    pos = torch.arange(offset, offset + n_positions, dtype=torch.float64)  # (n_positions,)
    angles = torch.outer(pos, theta)  # (n_positions, head_dim / 2)
    angles = torch.cat((angles, angles), dim=-1)  # (n_positions, head_dim)
    return angles.cos().to(dtype).to(device), angles.sin().to(dtype).to(device)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """``[x1, x2] -> [-x2, x1]`` on the last axis split in halves (GPT-NeoX, Llama, HF).

    Raises:
        TypeError: if ``x`` is not a tensor. ValueError: if its last dimension is odd.
    """
    check_tensor(x, "x", min_dim=1)
    if x.shape[-1] % 2:
        raise ValueError(
            f"x must have an even last dimension (pairs of features), got {fmt_shape(x.shape)}."
        )
    x1, x2 = x.chunk(2, dim=-1)  # (..., head_dim / 2) each
    return torch.cat((-x2, x1), dim=-1)  # (..., head_dim)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate queries or keys ``x`` by the angles of ``cos``/``sin`` (RoPE, Su et al. 2021).

    Convention: "rotate half", as in GPT-NeoX, Llama and Hugging Face's ``rotate_half``.
    Feature ``j`` is paired with feature ``j + head_dim / 2`` (not with ``j + 1`` as in the
    RoFormer paper and its interleaved layout); the pair ``(x_j, x_{j + d/2})`` is rotated
    by the angle of column ``j``::

        out = x * cos + rotate_half(x) * sin,   rotate_half([x1, x2]) = [-x2, x1]

    Both layouts give the same model up to a fixed permutation of the features, but the
    weights of a pretrained model only work with the layout they were trained with.

    Args:
        x: floating tensor ``(..., T, head_dim)``, e.g. ``(B, H, T, head_dim)``; 16-bit
            inputs are rotated in float32 and cast back.
        cos, sin: from :func:`rotary_cos_sin`, shape ``(T, head_dim)`` or any shape that
            broadcasts to ``x`` without enlarging it (e.g. ``(B, 1, T, head_dim)``).

    Returns:
        The rotated tensor, with the shape and dtype of ``x``. Norms of each pair, hence
        of each row, are preserved.
    """
    check_floating(check_tensor(x, "x", min_dim=2), "x")
    for name, t in (("cos", cos), ("sin", sin)):
        check_floating(check_tensor(t, name, min_dim=2), name)
    if x.shape[-1] % 2:
        raise ValueError(
            f"The last dimension of x (head_dim) must be even for rotary embeddings, got "
            f"shape {fmt_shape(x.shape)}."
        )
    if cos.shape != sin.shape:
        raise ValueError(
            f"cos and sin must have the same shape, got {fmt_shape(cos.shape)} and "
            f"{fmt_shape(sin.shape)}."
        )
    if not broadcasts_to(cos.shape, x.shape):
        T, head_dim = x.shape[-2:]
        raise ValueError(
            f"cos and sin of shape {fmt_shape(cos.shape)} cannot broadcast to x of shape "
            f"{fmt_shape(x.shape)} = (..., T, head_dim); build them with "
            f"rotary_cos_sin({T}, {head_dim})."
        )
    work = compute_dtype(x.dtype)
    xw, cw, sw = x.to(work), cos.to(work), sin.to(work)
    return (xw * cw + rotate_half(xw) * sw).to(x.dtype)  # (..., T, head_dim)


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (Su et al., 2021, RoFormer) for queries and keys.

    Applied inside attention, to the queries and keys of every head and layer after their
    projections (values are not rotated). Uses the "rotate half" layout of
    :func:`apply_rotary`. No parameters; the angles are recomputed at each call.

    Args:
        head_dim: size of each head's queries and keys; must be even.
        base: the frequency base, 10000 in the paper.
    """

    def __init__(self, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        self.head_dim = _check_head_dim(head_dim)
        self.base = _check_base(base)

    def _cos_sin(self, x: torch.Tensor, offset: int) -> tuple[torch.Tensor, torch.Tensor]:
        return rotary_cos_sin(
            x.shape[-2],
            self.head_dim,
            base=self.base,
            offset=offset,
            dtype=compute_dtype(x.dtype),
            device=x.device,
        )

    def _check(self, x: object, name: str) -> torch.Tensor:
        check_floating(check_tensor(x, name, min_dim=2), name)
        assert isinstance(x, torch.Tensor)
        if x.shape[-1] != self.head_dim:
            raise ValueError(
                f"{name} must have shape (B, H, T, head_dim) with head_dim = {self.head_dim}, "
                f"got {fmt_shape(x.shape)}."
            )
        return x

    def rotate(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """Rotate one tensor ``(..., T, head_dim)`` whose first row is at position ``offset``."""
        x = self._check(x, "x")
        return apply_rotary(x, *self._cos_sin(x, offset))

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, offset: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotate queries and keys ``(B, H, T, head_dim)`` that sit at the same positions
        ``offset, ..., offset + T - 1`` (``offset`` = position of the first query).

        With a key/value cache, rotate the new keys here together with the new queries
        and store the *rotated* keys in the cache; the cached keys are never rotated again.

        Returns:
            ``(q_rot, k_rot)``, with the shapes and dtypes of ``q`` and ``k``.
        """
        q, k = self._check(q, "q"), self._check(k, "k")
        if q.shape[-2] != k.shape[-2]:
            raise ValueError(
                f"q and k must cover the same positions (same T), got q {fmt_shape(q.shape)} "
                f"and k {fmt_shape(k.shape)}. Rotate keys when they are computed, before "
                f"they enter a key/value cache, or use rotate(x, offset) for each."
            )
        check_same_dtype(q=q, k=k)
        cos, sin = self._cos_sin(q, offset)  # (T, head_dim) each
        return apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, base={self.base}"


# ------------------------------------------------------------------------------ ALiBi


def _geometric_slopes(n: int) -> list[float]:
    """``2^(-8/n * (i + 1))`` for ``i = 0, ..., n - 1`` (n a power of two)."""
    return [2.0 ** (-8.0 * (i + 1) / n) for i in range(n)]


def alibi_slopes(
    num_heads: int,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The per-head slopes ``m`` of ALiBi (Press et al., 2021, section 3).

    For ``n`` heads, ``n`` a power of two, the slopes are the geometric sequence
    ``2^(-8/n), 2^(-16/n), ..., 2^(-8)`` (for 8 heads: 1/2, 1/4, ..., 1/256). Otherwise,
    following the paper's code: take the slopes of the closest lower power of two ``p``,
    then every other slope of ``2p`` (its 1st, 3rd, 5th, ...) until there are ``n``. For 6
    heads: 1/4, 1/16, 1/64, 1/256 (from 4 heads), then 1/2, 1/8 (from 8 heads).

    Returns:
        Tensor ``(num_heads,)`` in the paper's order (head ``h`` gets ``slopes[h]``).
    """
    num_heads = check_positive_int(num_heads, "num_heads")
    dtype = _check_dtype(dtype)
    lower = 1 << (num_heads.bit_length() - 1)  # largest power of two <= num_heads
    slopes = _geometric_slopes(lower)
    slopes += _geometric_slopes(2 * lower)[0::2][: num_heads - lower]
    return torch.tensor(slopes, dtype=dtype, device=device)  # (num_heads,)


def alibi_bias(
    num_heads: int,
    n_q: int,
    n_k: int | None = None,
    *,
    offset: int | None = None,
    symmetric: bool = False,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The ALiBi bias ``-m_h * (i - j)`` of Press et al. (2021), to be added to the scores.

    Query ``i`` sits at position ``i + offset``; key ``j`` at position ``j``. The default
    ``offset = n_k - n_q`` takes the queries to be the *last* ``n_q`` positions, as
    :func:`~attnkit.masks.causal_mask` does (right for decoding with a key/value cache).

    The bias is a float mask: pass it (or ``combine_masks(causal_mask(n_q, n_k), bias)``)
    as ``mask`` to :func:`~attnkit.attention.scaled_dot_product_attention`, or as ``attn_mask`` to
    PyTorch's function; it broadcasts to scores ``(B, num_heads, n_q, n_k)``. ALiBi was
    designed for causal language models: with ``symmetric=False`` the bias is only
    meaningful on keys ``j <= i + offset``, so combine it with a causal mask (for keys in
    the future it is *positive*). For attention without a causal mask (an encoder) use
    ``symmetric=True``, which gives ``-m_h * |i + offset - j|``. No position embedding is
    added to the inputs when ALiBi is used.

    Args:
        num_heads: number of heads (one slope each, see :func:`alibi_slopes`).
        n_q: number of queries; n_k: number of keys, defaults to ``n_q``.
        offset: position of query 0 among the keys; defaults to ``n_k - n_q``.
        symmetric: use the distance ``|i - j|`` (non-causal use).
        dtype: floating dtype of the result (computed in float64, then cast).
        device: where to put the result.

    Returns:
        Float tensor ``(num_heads, n_q, n_k)``.
    """
    num_heads = check_positive_int(num_heads, "num_heads")
    symmetric = check_bool(symmetric, "symmetric")
    n_q = check_positive_int(n_q, "n_q")
    n_k = n_q if n_k is None else check_positive_int(n_k, "n_k")
    offset = n_k - n_q if offset is None else _check_offset(offset)
    dtype = _check_dtype(dtype)
    slopes = alibi_slopes(num_heads, dtype=torch.float64)  # (H,)
    q_pos = torch.arange(n_q, dtype=torch.float64).unsqueeze(-1) + offset  # (n_q, 1)
    k_pos = torch.arange(n_k, dtype=torch.float64).unsqueeze(0)  # (1, n_k)
    distance = q_pos - k_pos  # (n_q, n_k)
    if symmetric:
        distance = distance.abs()
    bias = -slopes[:, None, None] * distance  # (H, n_q, n_k)
    return bias.to(dtype).to(device)

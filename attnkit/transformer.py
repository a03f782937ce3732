"""The Transformer (Vaswani et al., 2017, "Attention Is All You Need", section 3).

Building blocks, from small to large:

* :class:`FeedForward`: the position-wise feed-forward network of section 3.3,
  ``FFN(x) = act(x W_1 + b_1) W_2 + b_2``.
* :class:`TransformerEncoderLayer`: self-attention and FFN sublayers, each wrapped in a
  residual connection and a LayerNorm; :class:`TransformerDecoderLayer` adds
  cross-attention over the encoder's output (the *memory*) between the two.
* :class:`TransformerEncoder` / :class:`TransformerDecoder`: stacks of layers.
* :class:`Seq2SeqTransformer`: the encoder-decoder model of the paper, for translation.
* :class:`TransformerLM`: a decoder-only, causal language model (GPT, Radford et al.,
  2018/2019).

Where the LayerNorm goes (Xiong et al., 2020, "On Layer Normalization in the Transformer
Architecture"):

* post-LN, ``norm_first=False`` (the paper): ``x = LN(x + Sublayer(x))``;
* pre-LN, ``norm_first=True`` (GPT-2 and most models since): ``x = x + Sublayer(LN(x))``.
  The residual stream is then never normalised, so a pre-LN *stack* needs one final
  LayerNorm after its last layer; a post-LN stack does not.

Conventions: everything is **batch-first**, ``(B, T, d_model)``. Masks follow
:mod:`attnkit.masks`: bool ``True`` = may attend, floating = added to the scores; a key
padding mask is ``True`` on **real tokens** (the opposite of ``torch.nn.Transformer*``,
whose ``key_padding_mask`` is ``True`` on padding). The layers' ``from_torch``
classmethods copy PyTorch's modules; their outputs agree to float rounding (tested).
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ._validate import (
    check_floating,
    check_module_dtype,
    check_positive_int,
    check_probability,
    check_sequence,
    check_tensor,
    compute_dtype,
    fmt_shape,
)
from .multihead import KVCache, MultiHeadAttention
from .positional import (
    LearnedPositionalEmbedding,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
    alibi_bias,
)

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"relu": F.relu, "gelu": F.gelu}
SEQ2SEQ_POSITIONAL = ("sinusoidal", "learned")
LM_POSITIONAL = ("learned", "sinusoidal", "rotary", "alibi")

# ----------------------------------------------------------------------------- checks


def _check_choice(value: object, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {listed}; got {value!r}.")
    assert isinstance(value, str)
    return value


def _check_bool(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}.")
    return value


def _check_eps(eps: object) -> float:
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not 0 < eps < math.inf:
        raise ValueError(f"layer_norm_eps must be a positive finite number, got {eps!r}.")
    return float(eps)


def _check_tokens(idx: object, name: str, vocab_size: int) -> torch.Tensor:
    """Check a batch of token ids ``(B, T)``: integers in ``[0, vocab_size)``."""
    check_tensor(idx, name)
    assert isinstance(idx, torch.Tensor)
    if idx.is_floating_point() or idx.is_complex() or idx.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer token ids, got {idx.dtype}.")
    if idx.dim() != 2 or idx.shape[1] == 0:
        raise ValueError(
            f"{name} must have shape (B, T) with T >= 1 (batch first), got {fmt_shape(idx.shape)}."
        )
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= vocab_size):
        raise ValueError(
            f"{name} holds ids from {int(idx.min())} to {int(idx.max())}, but the vocabulary "
            f"has {vocab_size} entries (ids 0..{vocab_size - 1})."
        )
    return idx


def _check_caches(caches: object, num_layers: int) -> int:
    """Check a list of per-layer caches and return the number of cached positions."""
    if not isinstance(caches, (list, tuple)) or len(caches) != num_layers:
        got = (
            f"{type(caches).__name__} of length {len(caches)}"
            if isinstance(caches, (list, tuple))
            else type(caches).__name__
        )
        raise ValueError(
            f"caches must be a list with one entry per layer ({num_layers}), as new_caches() "
            f"returns; got {got}."
        )
    first = caches[0][0] if isinstance(caches[0], tuple) else caches[0]
    return len(first)


def _check_offset(offset: object, past: int | None) -> int:
    """``offset`` = position of the first input token; with caches it must be ``past``."""
    offset = check_positive_int(offset, "offset", allow_zero=True)
    if past is not None and offset != past:
        raise ValueError(
            f"offset={offset} but the caches already hold {past} positions; with caches, "
            f"offset must be the number of cached positions ({past})."
        )
    return offset


def _layer_norm(d_model: int, eps: float) -> nn.LayerNorm:
    return nn.LayerNorm(d_model, eps=eps)


# ------------------------------------------------------------------ from_torch helpers


def _torch_activation(activation: object) -> str:
    """``"relu"`` or ``"gelu"`` for the activations of a torch Transformer layer."""
    if activation is F.relu or type(activation) is nn.ReLU:
        return "relu"
    if activation is F.gelu or (type(activation) is nn.GELU and activation.approximate == "none"):
        return "gelu"
    raise ValueError(
        f"from_torch supports the activations relu and gelu (exact) only, got {activation!r}; "
        f"custom activation callables are not supported."
    )


def _check_torch_layer(m: nn.Module, norms: tuple[nn.LayerNorm, ...]) -> None:
    """Refuse the torch Transformer-layer options that attnkit's layers do not have."""
    if any(not n.elementwise_affine for n in norms):
        raise ValueError("from_torch needs LayerNorms with elementwise_affine=True.")
    if m.linear1.bias is None or any(n.bias is None for n in norms):
        raise ValueError("from_torch does not support layers built with bias=False.")
    if len({n.eps for n in norms}) > 1:
        raise ValueError(
            f"from_torch needs one eps for all LayerNorms, got {[n.eps for n in norms]}."
        )
    if not m.self_attn.batch_first:
        warnings.warn(
            f"the torch layer has batch_first=False; its weights are copied, but attnkit's "
            f"{type(m).__name__} takes batch-first inputs (B, T, d_model): transpose "
            f"(T, B, d_model) inputs with x.transpose(0, 1).",
            stacklevel=3,
        )


def _copy_(ours: nn.Module, theirs: nn.Module) -> None:
    """Copy the weight and bias of a Linear or LayerNorm (same shapes)."""
    with torch.no_grad():
        ours.weight.copy_(theirs.weight)
        ours.bias.copy_(theirs.bias)


# -------------------------------------------------------------------------- the layers


class FeedForward(nn.Module):
    """The position-wise feed-forward network (Vaswani et al., 2017, section 3.3).

    ::

        FFN(x) = linear2(dropout(act(linear1(x))))

    applied to each position separately: ``(..., d_model) -> (..., d_ff) -> (..., d_model)``,
    any floating dtype of the parameters. The attribute names match
    ``torch.nn.TransformerEncoderLayer`` (``linear1``, ``dropout``, ``linear2``). The
    paper uses ReLU with ``d_ff = 4 d_model``; GPT uses GELU (Hendrycks & Gimpel, 2016).

    Args:
        d_model: input and output size.
        d_ff: hidden size.
        dropout: dropout on the hidden activations, in training mode only.
        activation: ``"relu"`` or ``"gelu"`` (the exact, erf-based GELU).
    """

    def __init__(
        self, d_model: int, d_ff: int, dropout: float = 0.0, activation: str = "relu"
    ) -> None:
        super().__init__()
        d_model = check_positive_int(d_model, "d_model")
        d_ff = check_positive_int(d_ff, "d_ff")
        self.activation = _check_choice(activation, "activation", tuple(ACTIVATIONS))
        self.linear1 = nn.Linear(d_model, d_ff)
        self.dropout = nn.Dropout(check_probability(dropout, "dropout"))
        self.linear2 = nn.Linear(d_ff, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., d_model) -> (..., d_model)``.

        Raises:
            TypeError: if ``x`` is not a floating tensor of the parameters' dtype.
            ValueError: if its last dimension is not ``d_model``.
        """
        check_floating(check_tensor(x, "x", min_dim=1), "x")
        if x.shape[-1] != self.linear1.in_features:
            raise ValueError(
                f"x must have shape (..., d_model) = (..., {self.linear1.in_features}), "
                f"got {fmt_shape(x.shape)}."
            )
        check_module_dtype(x, "x", self)
        h = ACTIVATIONS[self.activation](self.linear1(x))  # (..., d_ff)
        return self.linear2(self.dropout(h))  # (..., d_model)

    def extra_repr(self) -> str:
        return f"activation={self.activation!r}"


class TransformerEncoderLayer(nn.Module):
    """Self-attention, then the feed-forward network, each with residual and LayerNorm.

    post-LN (``norm_first=False``, Vaswani et al., 2017, section 3.1)::

        x = norm1(x + dropout1(SelfAttention(x)))
        x = norm2(x + dropout2(FFN(x)))

    pre-LN (``norm_first=True``, GPT-2; Xiong et al., 2020)::

        x = x + dropout1(SelfAttention(norm1(x)))
        x = x + dropout2(FFN(norm2(x)))

    Dropout is applied to each sublayer's output before the residual sum (section 5.4),
    inside the FFN, and on the attention weights, as ``torch.nn.TransformerEncoderLayer``
    does. With ``is_causal=True`` and a :class:`~attnkit.multihead.KVCache` this layer is
    also the block of a decoder-only model (GPT): self-attention and FFN, no cross-attention.

    Args:
        d_model: model width. num_heads: attention heads. d_ff: hidden size of the FFN.
        dropout: dropout probability (training mode only).
        activation: ``"relu"`` (the paper) or ``"gelu"``.
        norm_first: pre-LN if ``True``, post-LN (the paper's) if ``False``.
        layer_norm_eps: the LayerNorms' epsilon.
        num_kv_heads: key/value heads for grouped-query attention; default ``num_heads``.
        rotary: optional :class:`~attnkit.positional.RotaryEmbedding` for the self-attention.

    Parameters are initialised as PyTorch's layer does (Xavier-uniform attention
    projections, ``nn.Linear``'s default for the FFN); the models below re-initialise.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        d_ff: int,
        dropout: float = 0.0,
        activation: str = "relu",
        norm_first: bool = False,
        layer_norm_eps: float = 1e-5,
        num_kv_heads: int | None = None,
        rotary: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.d_model = check_positive_int(d_model, "d_model")
        self.norm_first = _check_bool(norm_first, "norm_first")
        eps = _check_eps(layer_norm_eps)
        dropout = check_probability(dropout, "dropout")
        self.self_attn = MultiHeadAttention(
            d_model, num_heads, num_kv_heads=num_kv_heads, dropout=dropout, rotary=rotary
        )
        self.ff = FeedForward(d_model, d_ff, dropout, activation)
        self.norm1, self.norm2 = _layer_norm(d_model, eps), _layer_norm(d_model, eps)
        self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout)

    def _sa_block(
        self, x: torch.Tensor, cache: KVCache | None, need_weights: bool, **masks
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        out, weights = self.self_attn(x, need_weights=need_weights, cache=cache, **masks)
        return self.dropout1(out), weights  # (B, T, d_model), (B, H, T, T_k) or None

    def _ff_block(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout2(self.ff(x))  # (B, T, d_model)

    def forward(
        self,
        x: torch.Tensor,
        *,
        attn_mask: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
        is_causal: bool = False,
        need_weights: bool = False,
        cache: KVCache | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One encoder layer.

        Args:
            x: ``(B, T, d_model)``, the dtype of the parameters.
            attn_mask: bool (``True`` = may attend) or float (added) mask, ``(T, T_k)``,
                ``(B, T, T_k)`` or ``(B|1, H|1, T, T_k)``; ``T_k`` counts cached positions.
            key_padding_mask: bool ``(B, T_k)``, ``True`` on real tokens.
            is_causal: let position ``i`` attend to positions ``<= i`` only.
            need_weights: also return the attention weights ``(B, H, T, T_k)``.
            cache: a :class:`~attnkit.multihead.KVCache` to read and extend (decoding).

        Returns:
            ``(x, weights)``: ``(B, T, d_model)`` and the weights or ``None``.
        """
        x = check_sequence(x, "x", self, self.d_model)
        masks = dict(attn_mask=attn_mask, key_padding_mask=key_padding_mask, is_causal=is_causal)
        if self.norm_first:
            a, weights = self._sa_block(self.norm1(x), cache, need_weights, **masks)
            x = x + a  # (B, T, d_model)
            x = x + self._ff_block(self.norm2(x))
        else:
            a, weights = self._sa_block(x, cache, need_weights, **masks)
            x = self.norm1(x + a)  # (B, T, d_model)
            x = self.norm2(x + self._ff_block(x))
        return x, weights

    def new_cache(self) -> KVCache:
        """An empty key/value cache for this layer's self-attention."""
        return KVCache()

    @classmethod
    def from_torch(cls, m: nn.TransformerEncoderLayer) -> TransformerEncoderLayer:
        """Copy a ``torch.nn.TransformerEncoderLayer`` (all weights, activation, norm
        position, eps, dropout). The copy is batch-first, and its key padding mask is
        ``True`` on real tokens: pass ``~torch_mask``. Layers built with ``bias=False`` or
        a custom activation callable are refused."""
        if not isinstance(m, nn.TransformerEncoderLayer):
            raise TypeError(
                f"m must be a torch.nn.TransformerEncoderLayer, got {type(m).__name__}."
            )
        activation = _torch_activation(m.activation)
        _check_torch_layer(m, (m.norm1, m.norm2))
        d_model, d_ff = m.linear1.in_features, m.linear1.out_features
        new = cls(
            d_model,
            m.self_attn.num_heads,
            d_ff,
            dropout=m.dropout.p,
            activation=activation,
            norm_first=m.norm_first,
            layer_norm_eps=m.norm1.eps,
        )
        new.self_attn = MultiHeadAttention.from_torch(m.self_attn)
        new.dropout1.p, new.dropout2.p = m.dropout1.p, m.dropout2.p
        for ours, theirs in (
            (new.ff.linear1, m.linear1),
            (new.ff.linear2, m.linear2),
            (new.norm1, m.norm1),
            (new.norm2, m.norm2),
        ):
            _copy_(ours.to(theirs.weight.dtype), theirs)
        return new.to(m.linear1.weight.device)

    def extra_repr(self) -> str:
        return f"norm_first={self.norm_first}"


class TransformerDecoderLayer(nn.Module):
    """Masked self-attention, cross-attention over the memory, FFN (Vaswani et al., 2017).

    post-LN (``norm_first=False``, the paper)::

        x = norm1(x + dropout1(SelfAttention(x)))          # causal by default
        x = norm2(x + dropout2(CrossAttention(x, memory)))  # queries x, keys/values memory
        x = norm3(x + dropout3(FFN(x)))

    pre-LN (``norm_first=True``) moves each norm onto the sublayer's input, as in
    :class:`TransformerEncoderLayer`. For incremental decoding pass a ``self_cache``
    (:class:`~attnkit.multihead.KVCache`) and a ``cross_cache`` (``KVCache(static=True)``:
    the memory's keys and values are computed once) and feed one new target position at
    a time; the result equals running the whole prefix at once (tested).

    Args: as :class:`TransformerEncoderLayer`; ``rotary`` applies to the self-attention
    only (the memory has its own positions).
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        d_ff: int,
        dropout: float = 0.0,
        activation: str = "relu",
        norm_first: bool = False,
        layer_norm_eps: float = 1e-5,
        num_kv_heads: int | None = None,
        rotary: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.d_model = check_positive_int(d_model, "d_model")
        self.norm_first = _check_bool(norm_first, "norm_first")
        eps = _check_eps(layer_norm_eps)
        dropout = check_probability(dropout, "dropout")
        self.self_attn = MultiHeadAttention(
            d_model, num_heads, num_kv_heads=num_kv_heads, dropout=dropout, rotary=rotary
        )
        self.cross_attn = MultiHeadAttention(
            d_model, num_heads, num_kv_heads=num_kv_heads, dropout=dropout
        )
        self.ff = FeedForward(d_model, d_ff, dropout, activation)
        self.norm1, self.norm2, self.norm3 = (_layer_norm(d_model, eps) for _ in range(3))
        self.dropout1, self.dropout2, self.dropout3 = (nn.Dropout(dropout) for _ in range(3))

    def _sa_block(self, x: torch.Tensor, cache: KVCache | None, **masks) -> torch.Tensor:
        out, _ = self.self_attn(x, cache=cache, **masks)
        return self.dropout1(out)  # (B, T, d_model)

    def _ca_block(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        key_padding_mask: torch.Tensor | None,
        cache: KVCache | None,
        need_weights: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        out, weights = self.cross_attn(
            x, memory, key_padding_mask=key_padding_mask, need_weights=need_weights, cache=cache
        )
        return self.dropout2(out), weights  # (B, T, d_model), (B, H, T, S) or None

    def _ff_block(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout3(self.ff(x))  # (B, T, d_model)

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        *,
        self_attn_mask: torch.Tensor | None = None,
        self_key_padding_mask: torch.Tensor | None = None,
        memory_key_padding_mask: torch.Tensor | None = None,
        is_causal: bool = True,
        self_cache: KVCache | None = None,
        cross_cache: KVCache | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One decoder layer.

        Args:
            x: target-side input ``(B, T, d_model)``; with ``self_cache``, only the new
                positions (often ``T = 1``).
            memory: the encoder's output ``(B, S, d_model)``. Ignored once ``cross_cache``
                holds its keys and values.
            self_attn_mask: extra mask on the self-attention scores ``(T, T_k)`` (or with
                batch/head axes), bool ``True`` = may attend or float (added).
            self_key_padding_mask: bool ``(B, T_k)``, ``True`` on real target tokens
                (``T_k`` counts cached positions). Not needed for right-padded targets
                under a causal mask: real positions never see the padding after them.
            memory_key_padding_mask: bool ``(B, S)``, ``True`` on real source tokens.
            is_causal: causal self-attention (the default, as a decoder needs); with a
                cache the new positions are the last ones.
            self_cache, cross_cache: caches from :meth:`new_caches` for incremental decoding.
            need_weights: also return the cross-attention weights ``(B, H, T, S)``.

        Returns:
            ``(x, cross_weights)``: ``(B, T, d_model)`` and the weights or ``None``.
        """
        x = check_sequence(x, "x", self, self.d_model)
        memory = check_sequence(memory, "memory", self, self.d_model)
        if memory.shape[0] != x.shape[0]:
            raise ValueError(
                f"x {fmt_shape(x.shape)} and memory {fmt_shape(memory.shape)} must have the "
                f"same batch size B."
            )
        masks = dict(
            attn_mask=self_attn_mask, key_padding_mask=self_key_padding_mask, is_causal=is_causal
        )
        cross = (memory_key_padding_mask, cross_cache, need_weights)
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), self_cache, **masks)  # (B, T, d_model)
            a, weights = self._ca_block(self.norm2(x), memory, *cross)
            x = x + a
            x = x + self._ff_block(self.norm3(x))
        else:
            x = self.norm1(x + self._sa_block(x, self_cache, **masks))  # (B, T, d_model)
            a, weights = self._ca_block(x, memory, *cross)
            x = self.norm2(x + a)
            x = self.norm3(x + self._ff_block(x))
        return x, weights

    def new_caches(self) -> tuple[KVCache, KVCache]:
        """Empty ``(self_cache, cross_cache)``; the cross-attention one is static."""
        return KVCache(), KVCache(static=True)

    @classmethod
    def from_torch(cls, m: nn.TransformerDecoderLayer) -> TransformerDecoderLayer:
        """Copy a ``torch.nn.TransformerDecoderLayer`` (``self_attn``, ``multihead_attn``
        as ``cross_attn``, ``linear1``/``linear2``, ``norm1..3``, activation, norm position,
        eps, dropout). Batch-first; key padding masks are ``True`` on real tokens."""
        if not isinstance(m, nn.TransformerDecoderLayer):
            raise TypeError(
                f"m must be a torch.nn.TransformerDecoderLayer, got {type(m).__name__}."
            )
        activation = _torch_activation(m.activation)
        _check_torch_layer(m, (m.norm1, m.norm2, m.norm3))
        d_model, d_ff = m.linear1.in_features, m.linear1.out_features
        new = cls(
            d_model,
            m.self_attn.num_heads,
            d_ff,
            dropout=m.dropout.p,
            activation=activation,
            norm_first=m.norm_first,
            layer_norm_eps=m.norm1.eps,
        )
        new.self_attn = MultiHeadAttention.from_torch(m.self_attn)
        new.cross_attn = MultiHeadAttention.from_torch(m.multihead_attn)
        new.dropout1.p, new.dropout2.p, new.dropout3.p = (m.dropout1.p, m.dropout2.p, m.dropout3.p)
        for ours, theirs in (
            (new.ff.linear1, m.linear1),
            (new.ff.linear2, m.linear2),
            (new.norm1, m.norm1),
            (new.norm2, m.norm2),
            (new.norm3, m.norm3),
        ):
            _copy_(ours.to(theirs.weight.dtype), theirs)
        return new.to(m.linear1.weight.device)

    def extra_repr(self) -> str:
        return f"norm_first={self.norm_first}"


# -------------------------------------------------------------------------- the stacks


def _final_norm_from_torch(new: nn.Module, norm: nn.Module | None) -> None:
    """Copy the ``norm`` of a torch Transformer stack into ``new.norm``."""
    if norm is None:
        return
    if type(norm) is not nn.LayerNorm or not norm.elementwise_affine or norm.bias is None:
        raise ValueError(
            f"from_torch supports a final norm that is an affine nn.LayerNorm with bias, "
            f"got {norm!r}."
        )
    new.norm.eps = norm.eps
    _copy_(new.norm.to(norm.weight.dtype), norm)


class TransformerEncoder(nn.Module):
    """A stack of :class:`TransformerEncoderLayer` s and an optional final LayerNorm.

    A pre-LN stack (``norm_first=True`` layers) needs ``final_norm=True``: its residual
    stream is never normalised otherwise (GPT-2 adds this ``ln_f``). A post-LN stack
    already ends with a LayerNorm: use ``final_norm=False``.

    Args:
        layer_factory: called ``num_layers`` times, each call returning a new
            :class:`TransformerEncoderLayer`, e.g.
            ``lambda: TransformerEncoderLayer(128, 4, 512, norm_first=True)``. (Unlike
            ``torch.nn.TransformerEncoder`` no layer is deep-copied, so the layers do not
            start with identical weights.)
        num_layers: number of layers.
        final_norm: add a LayerNorm (eps of the first layer) after the last layer.
    """

    def __init__(
        self,
        layer_factory: Callable[[], TransformerEncoderLayer],
        num_layers: int,
        final_norm: bool,
    ) -> None:
        super().__init__()
        num_layers = check_positive_int(num_layers, "num_layers")
        if not callable(layer_factory):
            raise TypeError(
                f"layer_factory must be a function returning a new layer, got "
                f"{type(layer_factory).__name__}."
            )
        layers = [layer_factory() for _ in range(num_layers)]
        if not all(isinstance(layer, TransformerEncoderLayer) for layer in layers):
            raise TypeError("layer_factory must return TransformerEncoderLayer instances.")
        self.layers = nn.ModuleList(layers)
        first = layers[0]
        final = _check_bool(final_norm, "final_norm")
        self.norm = _layer_norm(first.d_model, first.norm1.eps) if final else None

    def forward(
        self,
        x: torch.Tensor,
        *,
        attn_mask: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
        is_causal: bool = False,
        need_weights: bool = False,
        caches: list[KVCache] | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        """Run every layer (same masks for each), then the final norm.

        Args: as :meth:`TransformerEncoderLayer.forward`; ``caches`` is one
        :class:`~attnkit.multihead.KVCache` per layer (see :meth:`new_caches`).

        Returns:
            ``(x, weights)``: ``(B, T, d_model)`` and, with ``need_weights``, the list of
            per-layer attention weights ``(B, H, T, T_k)``, else ``None``.
        """
        if caches is not None:
            _check_caches(caches, len(self.layers))
        weights = []
        for i, layer in enumerate(self.layers):
            x, w = layer(
                x,
                attn_mask=attn_mask,
                key_padding_mask=key_padding_mask,
                is_causal=is_causal,
                need_weights=need_weights,
                cache=None if caches is None else caches[i],
            )  # (B, T, d_model)
            weights.append(w)
        if self.norm is not None:
            x = self.norm(x)
        return x, (weights if need_weights else None)

    def new_caches(self) -> list[KVCache]:
        """One empty :class:`~attnkit.multihead.KVCache` per layer."""
        return [layer.new_cache() for layer in self.layers]

    @classmethod
    def from_torch(cls, m: nn.TransformerEncoder) -> TransformerEncoder:
        """Copy a ``torch.nn.TransformerEncoder`` (layers and its optional ``norm``).

        In eval mode with a padding mask, torch's stack may take a nested-tensor fast path
        whose output is 0 at padded positions; the copy computes them like any other."""
        if not isinstance(m, nn.TransformerEncoder):
            raise TypeError(f"m must be a torch.nn.TransformerEncoder, got {type(m).__name__}.")
        copies = iter([TransformerEncoderLayer.from_torch(layer) for layer in m.layers])
        new = cls(lambda: next(copies), len(m.layers), final_norm=m.norm is not None)
        _final_norm_from_torch(new, m.norm)
        return new


class TransformerDecoder(nn.Module):
    """A stack of :class:`TransformerDecoderLayer` s and an optional final LayerNorm.

    Args: as :class:`TransformerEncoder` (``final_norm=True`` for pre-LN layers).
    """

    def __init__(
        self,
        layer_factory: Callable[[], TransformerDecoderLayer],
        num_layers: int,
        final_norm: bool,
    ) -> None:
        super().__init__()
        num_layers = check_positive_int(num_layers, "num_layers")
        if not callable(layer_factory):
            raise TypeError(
                f"layer_factory must be a function returning a new layer, got "
                f"{type(layer_factory).__name__}."
            )
        layers = [layer_factory() for _ in range(num_layers)]
        if not all(isinstance(layer, TransformerDecoderLayer) for layer in layers):
            raise TypeError("layer_factory must return TransformerDecoderLayer instances.")
        self.layers = nn.ModuleList(layers)
        first = layers[0]
        final = _check_bool(final_norm, "final_norm")
        self.norm = _layer_norm(first.d_model, first.norm1.eps) if final else None

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        *,
        self_attn_mask: torch.Tensor | None = None,
        self_key_padding_mask: torch.Tensor | None = None,
        memory_key_padding_mask: torch.Tensor | None = None,
        is_causal: bool = True,
        need_weights: bool = False,
        caches: list[tuple[KVCache, KVCache]] | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        """Run every layer over the same memory, then the final norm.

        Args: as :meth:`TransformerDecoderLayer.forward`; ``caches`` is one
        ``(self_cache, cross_cache)`` pair per layer (see :meth:`new_caches`).

        Returns:
            ``(x, weights)``: ``(B, T, d_model)`` and, with ``need_weights``, the list of
            per-layer cross-attention weights ``(B, H, T, S)``, else ``None``.
        """
        if caches is not None:
            _check_caches(caches, len(self.layers))
        weights = []
        for i, layer in enumerate(self.layers):
            self_cache, cross_cache = (None, None) if caches is None else caches[i]
            x, w = layer(
                x,
                memory,
                self_attn_mask=self_attn_mask,
                self_key_padding_mask=self_key_padding_mask,
                memory_key_padding_mask=memory_key_padding_mask,
                is_causal=is_causal,
                self_cache=self_cache,
                cross_cache=cross_cache,
                need_weights=need_weights,
            )  # (B, T, d_model)
            weights.append(w)
        if self.norm is not None:
            x = self.norm(x)
        return x, (weights if need_weights else None)

    def new_caches(self) -> list[tuple[KVCache, KVCache]]:
        """One empty ``(self_cache, cross_cache)`` pair per layer."""
        return [layer.new_caches() for layer in self.layers]

    @classmethod
    def from_torch(cls, m: nn.TransformerDecoder) -> TransformerDecoder:
        """Copy a ``torch.nn.TransformerDecoder`` (layers and its optional ``norm``)."""
        if not isinstance(m, nn.TransformerDecoder):
            raise TypeError(f"m must be a torch.nn.TransformerDecoder, got {type(m).__name__}.")
        copies = iter([TransformerDecoderLayer.from_torch(layer) for layer in m.layers])
        new = cls(lambda: next(copies), len(m.layers), final_norm=m.norm is not None)
        _final_norm_from_torch(new, m.norm)
        return new


# -------------------------------------------------------------------------- the models


def _init_weights(module: nn.Module) -> None:
    """GPT-2's initialisation: Linear weights and embeddings ~ N(0, 0.02^2), biases 0,
    LayerNorms 1 and 0 (their default)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _scale_residual_projections(layers: nn.ModuleList, num_residuals: int) -> None:
    """GPT-2 (Radford et al., 2019, section 2.3): the projections that write into the
    residual stream start with std ``0.02 / sqrt(num_residuals)``, so the variance of the
    stream does not grow with depth."""
    std = 0.02 / math.sqrt(num_residuals)
    for layer in layers:
        for m in layer.modules():
            if isinstance(m, MultiHeadAttention):
                nn.init.normal_(m.out_proj.weight, mean=0.0, std=std)
            elif isinstance(m, FeedForward):
                nn.init.normal_(m.linear2.weight, mean=0.0, std=std)


def _absolute_positions(kind: str, d_model: int, max_len: int) -> nn.Module | None:
    """The module that adds absolute positions to the embeddings (None for RoPE/ALiBi)."""
    if kind == "sinusoidal":
        return SinusoidalPositionalEncoding(d_model, max_len=max_len)
    if kind == "learned":
        return LearnedPositionalEmbedding(max_len, d_model)
    return None


class Seq2SeqTransformer(nn.Module):
    """The encoder-decoder Transformer of Vaswani et al. (2017), for translation.

    ``src (B, S) -> embed * sqrt(d_model) + positions -> encoder -> memory (B, S, d_model)``;
    ``tgt (B, T) -> embed * sqrt(d_model) + positions -> decoder(memory) -> logits (B, T, V)``.

    The token embeddings are multiplied by ``sqrt(d_model)`` (section 3.4) and the
    positional encoding is *added* before the first layer (section 3.5), followed by
    dropout. ReLU FFNs. The default is pre-LN (``norm_first=True``, with final LayerNorms),
    which trains without the paper's learning-rate warm-up; ``norm_first=False`` gives
    the paper's post-LN model.

    Initialisation: Linear weights ~ N(0, 0.02^2), biases 0, learned positions ~
    N(0, 0.02^2) (GPT-2); token embeddings ~ N(0, 1/d_model), so that after the
    ``sqrt(d_model)`` scaling they have unit variance, on the scale of the sinusoidal
    encoding (fairseq and tensor2tensor do the same).

    Padding: when a source key padding mask is not given it is ``src != pad_id`` (set
    ``pad_id=None`` to disable). Targets are padded on the right, which the causal mask
    already keeps away from real positions; the loss should ignore ``pad_id``.

    Args:
        src_vocab_size, tgt_vocab_size: vocabulary sizes.
        d_model, num_heads, d_ff: layer sizes. num_encoder_layers, num_decoder_layers.
        dropout: dropout everywhere (embeddings, attention weights, sublayers, FFN).
        max_len: the longest source or target sequence.
        norm_first: pre-LN (default) or post-LN layers.
        pad_id: padding id, or ``None``.
        positional: ``"sinusoidal"`` (the paper) or ``"learned"``.
        tie_target_embeddings: use the target embedding matrix as the output projection
            (section 3.4; Press & Wolf, 2017): ``out_proj.weight is tgt_embed.weight``.
    """

    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        d_model: int = 128,
        num_heads: int = 4,
        num_encoder_layers: int = 2,
        num_decoder_layers: int = 2,
        d_ff: int = 512,
        dropout: float = 0.1,
        max_len: int = 256,
        norm_first: bool = True,
        pad_id: int | None = 0,
        positional: str = "sinusoidal",
        tie_target_embeddings: bool = True,
    ) -> None:
        super().__init__()
        self.src_vocab_size = check_positive_int(src_vocab_size, "src_vocab_size")
        self.tgt_vocab_size = check_positive_int(tgt_vocab_size, "tgt_vocab_size")
        self.d_model = check_positive_int(d_model, "d_model")
        self.max_len = check_positive_int(max_len, "max_len")
        check_positive_int(num_encoder_layers, "num_encoder_layers")
        check_positive_int(num_decoder_layers, "num_decoder_layers")
        self.positional = _check_choice(positional, "positional", SEQ2SEQ_POSITIONAL)
        if pad_id is not None:
            pad_id = check_positive_int(pad_id, "pad_id", allow_zero=True)
        self.pad_id = pad_id
        _check_bool(tie_target_embeddings, "tie_target_embeddings")
        dropout = check_probability(dropout, "dropout")

        self.src_embed = nn.Embedding(src_vocab_size, d_model)
        self.tgt_embed = nn.Embedding(tgt_vocab_size, d_model)
        self.src_pos = _absolute_positions(positional, d_model, max_len)
        self.tgt_pos = _absolute_positions(positional, d_model, max_len)
        self.dropout = nn.Dropout(dropout)
        layer_args = (d_model, num_heads, d_ff, dropout, "relu", norm_first)
        self.encoder = TransformerEncoder(
            lambda: TransformerEncoderLayer(*layer_args), num_encoder_layers, norm_first
        )
        self.decoder = TransformerDecoder(
            lambda: TransformerDecoderLayer(*layer_args), num_decoder_layers, norm_first
        )
        self.out_proj = nn.Linear(d_model, tgt_vocab_size, bias=False)
        _init_weights(self)
        for embed in (self.src_embed, self.tgt_embed):
            nn.init.normal_(embed.weight, mean=0.0, std=d_model**-0.5)
        if tie_target_embeddings:
            self.out_proj.weight = self.tgt_embed.weight  # one tensor, (V_tgt, d_model)

    def _embed(
        self, tokens: torch.Tensor, embed: nn.Embedding, pos: nn.Module, offset: int
    ) -> torch.Tensor:
        x = embed(tokens) * math.sqrt(self.d_model)  # (B, T, d_model)
        return self.dropout(pos(x, offset=offset))  # (B, T, d_model)

    def _source_mask(self, src: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor | None:
        """The given source key padding mask, or ``src != pad_id``."""
        if mask is not None or self.pad_id is None:
            return mask
        return src != self.pad_id  # (B, S), True on real tokens

    def encode(
        self, src: torch.Tensor, src_key_padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Source ids ``(B, S)`` -> memory ``(B, S, d_model)``.

        ``src_key_padding_mask``: bool ``(B, S)``, ``True`` on real tokens; default
        ``src != pad_id``. Pass the same mask as ``memory_key_padding_mask`` to
        :meth:`decode`."""
        src = _check_tokens(src, "src", self.src_vocab_size)
        mask = self._source_mask(src, src_key_padding_mask)
        x = self._embed(src, self.src_embed, self.src_pos, 0)  # (B, S, d_model)
        memory, _ = self.encoder(x, key_padding_mask=mask)
        return memory  # (B, S, d_model)

    def _decode_hidden(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        memory_key_padding_mask: torch.Tensor | None,
        caches: list[tuple[KVCache, KVCache]] | None,
        offset: int,
        tgt_key_padding_mask: torch.Tensor | None,
        need_weights: bool,
    ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        tgt = _check_tokens(tgt, "tgt", self.tgt_vocab_size)
        past = None if caches is None else _check_caches(caches, len(self.decoder.layers))
        offset = _check_offset(offset, past)
        y = self._embed(tgt, self.tgt_embed, self.tgt_pos, offset)  # (B, T, d_model)
        return self.decoder(
            y,
            memory,
            self_key_padding_mask=tgt_key_padding_mask,
            memory_key_padding_mask=memory_key_padding_mask,
            is_causal=True,
            need_weights=need_weights,
            caches=caches,
        )  # (B, T, d_model), list of (B, H, T, S) or None

    def decode(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        memory_key_padding_mask: torch.Tensor | None = None,
        caches: list[tuple[KVCache, KVCache]] | None = None,
        offset: int = 0,
        *,
        tgt_key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Target ids ``(B, T)`` and memory ``(B, S, d_model)`` -> logits ``(B, T, V_tgt)``.

        Args:
            tgt: target ids; with ``caches``, only the new ones (often ``T = 1``).
            memory: from :meth:`encode`.
            memory_key_padding_mask: bool ``(B, S)``, ``True`` on real source tokens.
            caches: from :meth:`new_caches`, for incremental decoding.
            offset: position of ``tgt[:, 0]``: the number of positions already cached.
            tgt_key_padding_mask: bool ``(B, T_k)``, ``True`` on real target tokens.
        """
        h, _ = self._decode_hidden(
            tgt, memory, memory_key_padding_mask, caches, offset, tgt_key_padding_mask, False
        )
        return self.out_proj(h)  # (B, T, V_tgt)

    def forward(
        self,
        src: torch.Tensor,
        tgt_in: torch.Tensor,
        src_key_padding_mask: torch.Tensor | None = None,
        tgt_key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Teacher forcing: ``src (B, S)``, ``tgt_in (B, T)`` (BOS + target[:-1]) ->
        logits ``(B, T, V_tgt)``; position ``t`` predicts the target token ``t``."""
        src = _check_tokens(src, "src", self.src_vocab_size)
        mask = self._source_mask(src, src_key_padding_mask)
        memory = self.encode(src, mask)  # (B, S, d_model)
        return self.decode(tgt_in, memory, mask, tgt_key_padding_mask=tgt_key_padding_mask)

    def new_caches(self) -> list[tuple[KVCache, KVCache]]:
        """Empty ``(self_cache, cross_cache)`` per decoder layer for :meth:`decode`."""
        return self.decoder.new_caches()

    def cross_attention_weights(
        self,
        src: torch.Tensor,
        tgt_in: torch.Tensor,
        src_key_padding_mask: torch.Tensor | None = None,
        tgt_key_padding_mask: torch.Tensor | None = None,
    ) -> list[torch.Tensor]:
        """The decoder's attention over the source: one ``(B, H, T, S)`` tensor per layer.

        Row ``t`` of head ``h`` says where target position ``t`` looked in the source
        (the alignment heatmaps; padded source positions get weight 0). Call
        ``model.eval()`` first so that dropout does not perturb the weights.
        """
        src = _check_tokens(src, "src", self.src_vocab_size)
        mask = self._source_mask(src, src_key_padding_mask)
        memory = self.encode(src, mask)  # (B, S, d_model)
        _, weights = self._decode_hidden(
            tgt_in, memory, mask, None, 0, tgt_key_padding_mask, need_weights=True
        )
        assert weights is not None
        return weights


class TransformerLM(nn.Module):
    """A decoder-only, causal Transformer language model (GPT; Radford et al., 2018/2019).

    ``idx (B, T) -> token embedding (+ absolute positions) -> dropout -> num_layers pre-LN
    blocks (causal self-attention + GELU FFN) -> final LayerNorm -> logits (B, T, V)``.
    Position ``t``'s logits predict token ``t + 1`` and depend on tokens ``<= t`` only.

    Positions (``positional``):

    * ``"learned"`` (GPT-2) or ``"sinusoidal"``: added to the token embeddings;
      sequences are limited to ``max_len`` positions.
    * ``"rotary"``: each attention rotates its queries and keys with a
      :class:`~attnkit.positional.RotaryEmbedding` (Su et al., 2021).
    * ``"alibi"``: :func:`~attnkit.positional.alibi_bias` is added to the scores, together
      with the causal mask (Press et al., 2021).

    Initialisation (GPT-2): Linear weights and embeddings ~ N(0, 0.02^2), biases 0; the
    projections into the residual stream (attention ``out_proj``, FFN ``linear2``) ~
    N(0, (0.02 / sqrt(2 num_layers))^2). Token embeddings are not scaled.

    Args:
        vocab_size: vocabulary size ``V``.
        d_model, num_heads, num_layers, d_ff: sizes.
        dropout: dropout on the embeddings, attention weights, sublayer outputs and FFN.
        max_len: the longest sequence, for the absolute position tables (unused with
            ``"rotary"`` and ``"alibi"``, which have no table).
        positional: ``"learned"``, ``"sinusoidal"``, ``"rotary"`` or ``"alibi"``.
        num_kv_heads: key/value heads (grouped-query attention); default ``num_heads``.
        tie_weights: use the token embedding matrix as the output projection:
            ``lm_head.weight is tok_embed.weight`` (Press & Wolf, 2017).
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 128,
        num_heads: int = 4,
        num_layers: int = 4,
        d_ff: int = 512,
        dropout: float = 0.1,
        max_len: int = 256,
        positional: str = "learned",
        num_kv_heads: int | None = None,
        tie_weights: bool = True,
    ) -> None:
        super().__init__()
        self.vocab_size = check_positive_int(vocab_size, "vocab_size")
        self.d_model = check_positive_int(d_model, "d_model")
        self.num_heads = check_positive_int(num_heads, "num_heads")
        self.max_len = check_positive_int(max_len, "max_len")
        self.positional = _check_choice(positional, "positional", LM_POSITIONAL)
        _check_bool(tie_weights, "tie_weights")
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} must be divisible by num_heads={num_heads}.")
        head_dim = d_model // num_heads

        def block() -> TransformerEncoderLayer:
            rotary = RotaryEmbedding(head_dim) if positional == "rotary" else None
            return TransformerEncoderLayer(
                d_model,
                num_heads,
                d_ff,
                dropout,
                "gelu",
                norm_first=True,
                num_kv_heads=num_kv_heads,
                rotary=rotary,
            )

        self.tok_embed = nn.Embedding(vocab_size, d_model)
        self.pos = _absolute_positions(positional, d_model, max_len)
        self.dropout = nn.Dropout(check_probability(dropout, "dropout"))
        self.blocks = TransformerEncoder(block, num_layers, final_norm=True)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)
        _init_weights(self)
        _scale_residual_projections(self.blocks.layers, 2 * len(self.blocks.layers))
        if tie_weights:
            self.lm_head.weight = self.tok_embed.weight  # one tensor, (V, d_model)

    def _alibi(self, n_q: int, n_k: int, x: torch.Tensor) -> torch.Tensor:
        """ALiBi bias for the last ``n_q`` of ``n_k`` positions, ``(1, H, n_q, n_k)``."""
        bias = alibi_bias(
            self.num_heads, n_q, n_k, dtype=compute_dtype(x.dtype), device=x.device
        )  # (H, n_q, n_k)
        return bias[None]  # (1, H, n_q, n_k): a 3-D mask would read as (B, n_q, n_k)

    def forward(
        self, idx: torch.Tensor, caches: list[KVCache] | None = None, offset: int = 0
    ) -> torch.Tensor:
        """Token ids ``(B, T)`` -> next-token logits ``(B, T, V)``.

        Args:
            idx: token ids; with ``caches``, only the new ones (often ``T = 1``).
            caches: from :meth:`new_caches`, read and extended (incremental decoding).
            offset: position of ``idx[:, 0]``; with ``caches`` it must equal the number of
                cached positions. Matters only for absolute positions.
        """
        idx = _check_tokens(idx, "idx", self.vocab_size)
        past = None if caches is None else _check_caches(caches, len(self.blocks.layers))
        offset = _check_offset(offset, past)
        T = idx.shape[1]
        x = self.tok_embed(idx)  # (B, T, d_model)
        if self.pos is not None:
            x = self.pos(x, offset=offset)
        x = self.dropout(x)
        bias = self._alibi(T, T + (past or 0), x) if self.positional == "alibi" else None
        x, _ = self.blocks(x, attn_mask=bias, is_causal=True, caches=caches)
        return self.lm_head(x)  # (B, T, V)

    def new_caches(self) -> list[KVCache]:
        """One empty :class:`~attnkit.multihead.KVCache` per block."""
        return self.blocks.new_caches()

    def loss(self, idx: torch.Tensor) -> torch.Tensor:
        """Mean next-token cross-entropy of ``idx (B, T)``, ``T >= 2`` (in nats):
        positions ``0..T-2`` predict tokens ``1..T-1``."""
        idx = _check_tokens(idx, "idx", self.vocab_size)
        if idx.shape[1] < 2:
            raise ValueError(f"idx needs T >= 2 tokens for a loss, got {fmt_shape(idx.shape)}.")
        logits = self(idx[:, :-1])  # (B, T - 1, V)
        return F.cross_entropy(logits.flatten(0, 1), idx[:, 1:].flatten())

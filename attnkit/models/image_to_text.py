"""An image-to-text model: a ViT encoder and a text decoder joined by cross-attention.

The design of image captioning since "Show, Attend and Tell" (Xu et al., 2015), with the
recurrent decoder replaced by a Transformer decoder (Vaswani et al., 2017) and the CNN by a
Vision Transformer (Dosovitskiy et al., 2021)::

    images (B, C, H, W) -> ViT -> patch states, the memory      (B, N, d_model)
    words  (B, T)       -> embed * sqrt(d_model) + positions    (B, T, d_model)
                        -> L x [causal self-attention, cross-attention to the memory, FFN]
                        -> LayerNorm -> tied output projection -> logits (B, T, V)

In every cross-attention the queries come from the text and the keys and values from the
image patches: row ``t`` of a ``(T, N)`` weight matrix says where in the image the decoder
looks while it writes word ``t + 1``.

* :class:`ImageToText`: the model (``encode``, ``decode``, ``forward``, ``new_caches``,
  ``cross_attention_weights``, ``loss``), shaped like :class:`.Seq2SeqTransformer`.
* :func:`greedy_caption`: greedy decoding with or without key/value caches (the same loop
  as :func:`~attnkit.decoding.greedy_translate`; same result either way, tested).

The memory is the ViT's final hidden states of the **patches only**, without the class
token: every cross-attention weight then lands on a place in the image, so the weights
over the ``N`` patches sum to 1 and can be drawn as a map over the image. (The class token
still takes part in the encoder's self-attention; the decoder can read the whole image
through the patches, which makes a summary token unnecessary here.)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .._validate import check_positive_int, check_probability
from ..decoding import _check_id, _greedy_from_memory, _inference
from ..multihead import KVCache
from ..transformer import (
    SEQ2SEQ_POSITIONAL,
    TransformerDecoder,
    TransformerDecoderLayer,
    _absolute_positions,
    _check_bool,
    _check_caches,
    _check_choice,
    _check_offset,
    _check_tokens,
    _init_weights,
)
from .vit import ViT, ViTConfig


class ImageToText(nn.Module):
    """A :class:`~attnkit.models.vit.ViT` encoder and a pre-LN Transformer decoder.

    The decoder is a :class:`~attnkit.transformer.TransformerDecoder` of ``norm_first=True``
    :class:`~attnkit.transformer.TransformerDecoderLayer` s (GELU FFN) with a final
    LayerNorm; token embeddings are scaled by ``sqrt(d_model)`` and added to learned or
    sinusoidal positions (as in :class:`~attnkit.transformer.Seq2SeqTransformer`); the output
    projection is tied to the token embedding.

    Initialisation: the ViT's own (truncated normal, std 0.02); decoder Linear weights
    ~ N(0, 0.02^2), biases 0, learned positions ~ N(0, 0.02^2), token embeddings ~
    N(0, 1/d_model).

    Args:
        vit_config: the encoder; must have ``num_classes=0`` (no head). Its ``d_model``
            is the decoder's width.
        vocab_size: size ``V`` of the word vocabulary.
        num_decoder_layers: decoder layers.
        num_heads: decoder heads (self- and cross-attention); default the ViT's.
        d_ff: decoder FFN size; default ``4 * d_model``.
        dropout: decoder dropout (embeddings, attention weights, sublayers, FFN); the
            encoder uses ``vit_config.dropout``.
        max_len: the longest target sequence (position table).
        pad_id: the padding id of the targets (the loss ignores it; :func:`greedy_caption`
            writes it after EOS), or ``None``.
        positional: ``"learned"`` or ``"sinusoidal"``.

    Attributes: ``encoder`` (the ViT), ``tok_embed``, ``pos``, ``decoder``, ``out_proj``
    (``out_proj.weight is tok_embed.weight``), ``grid`` (the patch grid ``(gh, gw)``).
    """

    def __init__(
        self,
        vit_config: ViTConfig,
        vocab_size: int,
        *,
        num_decoder_layers: int = 2,
        num_heads: int | None = None,
        d_ff: int | None = None,
        dropout: float = 0.0,
        max_len: int = 32,
        pad_id: int | None = 0,
        positional: str = "learned",
    ) -> None:
        super().__init__()
        if not isinstance(vit_config, ViTConfig):
            raise TypeError(f"vit_config must be a ViTConfig, got {type(vit_config).__name__}.")
        if vit_config.num_classes != 0:
            raise ValueError(
                f"vit_config.num_classes must be 0 (the encoder returns hidden states, not "
                f"logits), got {vit_config.num_classes}."
            )
        self.vocab_size = check_positive_int(vocab_size, "vocab_size")
        check_positive_int(num_decoder_layers, "num_decoder_layers")
        if d_ff is not None:
            check_positive_int(d_ff, "d_ff")
        self.d_model = d_model = vit_config.d_model
        self.max_len = check_positive_int(max_len, "max_len")
        num_heads = vit_config.num_heads if num_heads is None else num_heads
        num_heads = check_positive_int(num_heads, "num_heads")
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} must be divisible by num_heads={num_heads}.")
        d_ff = check_positive_int(4 * d_model if d_ff is None else d_ff, "d_ff")
        dropout = check_probability(dropout, "dropout")
        self.positional = _check_choice(positional, "positional", SEQ2SEQ_POSITIONAL)
        if pad_id is not None:
            pad_id = check_positive_int(pad_id, "pad_id", allow_zero=True)
            if pad_id >= vocab_size:
                raise ValueError(f"pad_id={pad_id} must be below vocab_size={vocab_size}.")
        self.pad_id = pad_id
        self.grid = vit_config.grid

        self.encoder = ViT(vit_config)  # initialises itself
        self.tok_embed = nn.Embedding(vocab_size, d_model)
        self.pos = _absolute_positions(positional, d_model, max_len)
        self.dropout = nn.Dropout(dropout)

        def block() -> TransformerDecoderLayer:
            return TransformerDecoderLayer(d_model, num_heads, d_ff, dropout, "gelu", True)

        self.decoder = TransformerDecoder(block, num_decoder_layers, final_norm=True)
        self.out_proj = nn.Linear(d_model, vocab_size, bias=False)
        for part in (self.pos, self.decoder, self.out_proj):
            if part is not None:
                _init_weights(part)
        nn.init.normal_(self.tok_embed.weight, mean=0.0, std=d_model**-0.5)
        self.out_proj.weight = self.tok_embed.weight  # one tensor, (V, d_model)

    @property
    def vit_config(self) -> ViTConfig:
        """The encoder's :class:`~attnkit.models.vit.ViTConfig`."""
        return self.encoder.config

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, H, W)`` (the parameters' dtype) -> memory ``(B, N, d_model)``:
        the ViT's final hidden states of the ``N`` patches (row-major), class token
        dropped."""
        hidden, _ = self.encoder.forward_features(images)  # (B, 1 + N, d_model)
        return hidden[:, 1:]  # (B, N, d_model)

    def _decode_hidden(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        memory_key_padding_mask: torch.Tensor | None,
        caches: list[tuple[KVCache, KVCache]] | None,
        offset: int,
        need_weights: bool,
    ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        tgt = _check_tokens(tgt, "tgt", self.vocab_size)
        past = None if caches is None else _check_caches(caches, len(self.decoder.layers))
        offset = _check_offset(offset, past)
        if offset + tgt.shape[1] > self.max_len:
            raise ValueError(
                f"positions {offset}..{offset + tgt.shape[1] - 1} are beyond the position "
                f"table (max_len={self.max_len})."
            )
        y = self.tok_embed(tgt) * math.sqrt(self.d_model)  # (B, T, d_model)
        y = self.dropout(self.pos(y, offset=offset))
        return self.decoder(
            y,
            memory,
            memory_key_padding_mask=memory_key_padding_mask,
            is_causal=True,
            need_weights=need_weights,
            caches=caches,
        )  # (B, T, d_model), list of (B, H, T, N) or None

    def decode(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        memory_key_padding_mask: torch.Tensor | None = None,
        caches: list[tuple[KVCache, KVCache]] | None = None,
        offset: int = 0,
    ) -> torch.Tensor:
        """Word ids ``(B, T)`` and memory ``(B, N, d_model)`` -> logits ``(B, T, V)``.

        Args:
            tgt: int64 ids in ``[0, V)``; with ``caches``, only the new ones (often
                ``T = 1``).
            memory: from :meth:`encode`.
            memory_key_padding_mask: bool ``(B, N)``, ``True`` on patches that may be
                attended (all of them, ``None``, for whole images).
            caches: from :meth:`new_caches`, read and extended (incremental decoding).
            offset: position of ``tgt[:, 0]``: the number of positions already cached.
        """
        h, _ = self._decode_hidden(tgt, memory, memory_key_padding_mask, caches, offset, False)
        return self.out_proj(h)  # (B, T, V)

    def forward(self, images: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: images ``(B, C, H, W)``, ``tgt_in (B, T)`` (BOS + words) ->
        logits ``(B, T, V)``; position ``t`` predicts word ``t + 1`` (``tgt_out[:, t]``)."""
        return self.decode(tgt_in, self.encode(images))

    def loss(
        self, images: torch.Tensor, tgt_in: torch.Tensor, tgt_out: torch.Tensor
    ) -> torch.Tensor:
        """Mean cross-entropy (nats) of ``tgt_out (B, T)`` under teacher forcing, ignoring
        ``pad_id`` positions."""
        logits = self(images, tgt_in)  # (B, T, V)
        tgt_out = _check_tokens(tgt_out, "tgt_out", self.vocab_size)
        if tgt_out.shape != tgt_in.shape:
            raise ValueError(
                f"tgt_out {tuple(tgt_out.shape)} must have the shape of tgt_in "
                f"{tuple(tgt_in.shape)}."
            )
        ignore = -100 if self.pad_id is None else self.pad_id
        return F.cross_entropy(logits.flatten(0, 1), tgt_out.flatten(), ignore_index=ignore)

    def new_caches(self) -> list[tuple[KVCache, KVCache]]:
        """Empty ``(self_cache, cross_cache)`` per decoder layer for :meth:`decode`."""
        return self.decoder.new_caches()

    def cross_attention_weights(
        self, images: torch.Tensor, tgt_in: torch.Tensor
    ) -> list[torch.Tensor]:
        """The decoder's attention over the patches: one ``(B, H, T, N)`` tensor per layer.

        Row ``t`` of head ``h`` is where position ``t`` (which writes word ``t + 1``)
        looks; it sums to 1 over the ``N`` patches (row-major over ``self.grid``). Call
        ``model.eval()`` first so that dropout does not perturb the weights.
        """
        memory = self.encode(images)  # (B, N, d_model)
        _, weights = self._decode_hidden(tgt_in, memory, None, None, 0, need_weights=True)
        assert weights is not None
        return weights


def greedy_caption(
    model: ImageToText,
    images: torch.Tensor,
    *,
    bos_id: int,
    eos_id: int,
    max_len: int,
    use_cache: bool = True,
) -> torch.Tensor:
    """Greedy decoding: encode the images once, then take the argmax word at every step.

    Args:
        model: an :class:`ImageToText`.
        images: ``(B, C, H, W)``.
        bos_id: the id the decoder starts from. eos_id: the id that ends a caption.
        max_len: the most tokens generated per row (counting EOS), ``<= model.max_len``.
        use_cache: decode incrementally with key/value caches (the same result).

    Returns:
        ``(B, L)`` int64 ids, ``L <= max_len``, without the leading BOS; a row ends with
        its EOS followed by ``model.pad_id`` (or ``eos_id`` if it is ``None``); decoding
        stops when every row has produced EOS. Runs in eval mode without gradients and
        restores the model's mode.
    """
    if not isinstance(model, ImageToText):
        raise TypeError(f"model must be an ImageToText, got {type(model).__name__}.")
    max_len = check_positive_int(max_len, "max_len")
    if max_len > model.max_len:
        raise ValueError(
            f"max_len={max_len} exceeds the model's position table (max_len={model.max_len})."
        )
    bos_id, eos_id = _check_id(bos_id, "bos_id"), _check_id(eos_id, "eos_id")
    for name, token in (("bos_id", bos_id), ("eos_id", eos_id)):
        if token >= model.vocab_size:
            raise ValueError(f"{name}={token} must be below vocab_size={model.vocab_size}.")
    _check_bool(use_cache, "use_cache")
    with _inference(model):
        memory = model.encode(images)  # (B, N, d_model)
        return _greedy_from_memory(model, memory, None, bos_id, eos_id, max_len, use_cache)

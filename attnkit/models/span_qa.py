"""Extractive question answering: start/end logits over ``[CLS] question [SEP] context``.

The reader of BERT's SQuAD fine-tuning (Devlin et al., 2019, section 4.2): every
position ``i`` of the context gets a start score ``s_i`` and an end score ``e_i`` from one
linear layer on the encoder's output; training minimises the mean of the two
cross-entropies of the true start and end positions; the answer is the span ``(i, j)``
with ``i <= j``, within the context and at most ``max_answer_len`` tokens long, that
maximises ``s_i + e_j`` (:func:`best_span`).

* :class:`SpanQATransformer`: token + learned position + segment embeddings, a pre-LN
  :class:`~attnkit.transformer.TransformerEncoder`, the start/end head.
* :class:`SpanQAGRU`: the non-attention baseline, a bidirectional GRU (packed, so padding
  never enters the recurrence) with the same start/end head, in the spirit of the
  recurrent readers before BERT (Seo et al., 2017, without their attention flow).
* :func:`span_loss`, :func:`best_span`.

Conventions: batch-first ``(B, T)`` int64 ids; ``attention_mask`` is bool ``(B, T)``,
``True`` on real tokens; ``context_mask`` bool ``(B, T)``, ``True`` where an answer may
lie. Both models return ``(start_logits, end_logits)``, each ``(B, T)`` float32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._validate import (
    check_bool,
    check_bool_mask,
    check_floating,
    check_ids,
    check_positive_int,
    check_probability,
    check_tensor,
    fmt_shape,
)
from ..positional import LearnedPositionalEmbedding, RotaryEmbedding
from ..transformer import TransformerEncoder, TransformerEncoderLayer

__all__ = ["SpanQAGRU", "SpanQATransformer", "best_span", "span_loss"]


def _check_inputs(
    model: nn.Module, input_ids: object, segment_ids: object, attention_mask: object
) -> None:
    """Ids in the vocabulary, segments 0 or 1, a bool mask; all ``(B, T)``."""
    _check_ids_and_mask(input_ids, attention_mask)
    check_ids(input_ids, "input_ids", vocab_size=model.tok.num_embeddings)
    check_ids(segment_ids, "segment_ids", vocab_size=2)
    if segment_ids.shape != input_ids.shape:
        raise ValueError(
            f"segment_ids must have the shape of input_ids {fmt_shape(input_ids.shape)}, "
            f"got {fmt_shape(segment_ids.shape)}."
        )


def _check_ids_and_mask(input_ids: object, attention_mask: object) -> None:
    check_tensor(input_ids, "input_ids", min_dim=2)
    check_tensor(attention_mask, "attention_mask", min_dim=2)
    if input_ids.dim() != 2 or attention_mask.shape != input_ids.shape:
        raise ValueError(
            "input_ids and attention_mask must both be (B, T); got "
            f"{fmt_shape(input_ids.shape)} and {fmt_shape(attention_mask.shape)}."
        )
    check_bool_mask(attention_mask, "attention_mask", meaning="True = real token")


class SpanQATransformer(nn.Module):
    """Transformer encoder reader with start/end logits.

    ``x = tok(ids) + seg(segment_ids)`` -> dropout -> ``num_layers`` pre-LN encoder layers
    (bidirectional self-attention over question and context, padding masked) -> final
    LayerNorm -> ``Linear(d_model, 2)`` -> start and end logits. Positions: rotary
    (default; Su et al., 2021: attention scores depend on relative offsets, so "the token
    three to the left" is the same pattern in every sentence) or learned absolute
    embeddings added to ``x``.

    Args:
        vocab_size: number of token ids. d_model, num_heads, d_ff, num_layers: sizes.
        max_len: longest input. dropout: dropout probability.
        positional: ``"rotary"`` or ``"learned"``.
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 64,
        num_heads: int = 4,
        d_ff: int = 128,
        num_layers: int = 2,
        max_len: int = 128,
        dropout: float = 0.1,
        positional: str = "rotary",
    ) -> None:
        super().__init__()
        check_positive_int(vocab_size, "vocab_size")
        self.d_model = check_positive_int(d_model, "d_model")
        if positional not in ("rotary", "learned"):
            raise ValueError(f"positional must be 'rotary' or 'learned', got {positional!r}.")
        num_heads = check_positive_int(num_heads, "num_heads")
        check_positive_int(d_ff, "d_ff")
        check_positive_int(num_layers, "num_layers")
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} must be divisible by num_heads={num_heads}.")
        self.positional = positional
        self.max_len = check_positive_int(max_len, "max_len")
        dropout = check_probability(dropout, "dropout")
        self.tok = nn.Embedding(vocab_size, d_model)
        self.pos = LearnedPositionalEmbedding(max_len, d_model) if positional == "learned" else None
        rotary = RotaryEmbedding(d_model // num_heads) if positional == "rotary" else None
        self.seg = nn.Embedding(2, d_model)
        self.dropout = nn.Dropout(dropout)
        self.encoder = TransformerEncoder(
            lambda: TransformerEncoderLayer(
                d_model, num_heads, d_ff, dropout, "gelu", True, rotary=rotary
            ),
            num_layers,
            final_norm=True,
        )
        self.qa_head = nn.Linear(d_model, 2)
        for emb in (self.tok, self.seg):
            nn.init.normal_(emb.weight, std=0.02)

    def forward(
        self,
        input_ids: torch.Tensor,
        segment_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor] | tuple[torch.Tensor, torch.Tensor, list]:
        """``(B, T)`` ids, segments (0 question, 1 context) and bool mask -> start and end
        logits ``(B, T)``; with ``need_weights`` also the per-layer attention weights
        ``(B, H, T, T)``."""
        _check_inputs(self, input_ids, segment_ids, attention_mask)
        need_weights = check_bool(need_weights, "need_weights")
        if input_ids.shape[1] > self.max_len:
            raise ValueError(f"input_ids has {input_ids.shape[1]} tokens > max_len={self.max_len}.")
        x = self.tok(input_ids) + self.seg(segment_ids)  # (B, T, d_model)
        if self.pos is not None:
            x = self.pos(x)
        h, weights = self.encoder(
            self.dropout(x), key_padding_mask=attention_mask, need_weights=need_weights
        )  # (B, T, d_model)
        start, end = self.qa_head(h).unbind(dim=-1)  # (B, T) each
        if need_weights:
            return start, end, weights
        return start, end


class SpanQAGRU(nn.Module):
    """Bidirectional-GRU reader with the same start/end head (no attention anywhere).

    ``x = tok(ids) + seg(segment_ids)`` -> a ``num_layers`` bidirectional GRU over the
    real tokens (``pack_padded_sequence``) -> ``Linear(2 * hidden, 2)``. The question
    reaches a context position only through the recurrent state: the forward direction
    reads the question first.
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 64,
        hidden: int = 64,
        num_layers: int = 2,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        check_positive_int(vocab_size, "vocab_size")
        d_model = check_positive_int(d_model, "d_model")
        hidden = check_positive_int(hidden, "hidden")
        num_layers = check_positive_int(num_layers, "num_layers")
        dropout = check_probability(dropout, "dropout")
        self.tok = nn.Embedding(vocab_size, d_model)
        self.seg = nn.Embedding(2, d_model)
        self.dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(
            d_model,
            hidden,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.qa_head = nn.Linear(2 * hidden, 2)

    def forward(
        self, input_ids: torch.Tensor, segment_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Same inputs and outputs as :meth:`SpanQATransformer.forward` (no weights).

        The mask must be a prefix of ``True`` s (right padding), with at least one ``True``.

        Raises:
            TypeError: on a non-tensor, float ids or a non-bool mask.
            ValueError: on ids outside the vocabulary, segments other than 0/1, shapes
                that differ, or a mask that is not a non-empty prefix (left padding).
        """
        _check_inputs(self, input_ids, segment_ids, attention_mask)
        if attention_mask.numel() and (
            bool((attention_mask[:, 1:] & ~attention_mask[:, :-1]).any())
            or not bool(attention_mask[:, 0].all())
        ):
            raise ValueError(
                "attention_mask must be a prefix of True in every row (right padding, at "
                "least one real token); the GRU packs the real tokens of each row."
            )
        lengths = attention_mask.sum(dim=1).cpu()  # (B,)
        x = self.dropout(self.tok(input_ids) + self.seg(segment_ids))  # (B, T, d_model)
        packed = nn.utils.rnn.pack_padded_sequence(
            x, lengths, batch_first=True, enforce_sorted=False
        )
        out, _ = self.gru(packed)
        h, _ = nn.utils.rnn.pad_packed_sequence(
            out, batch_first=True, total_length=input_ids.shape[1]
        )  # (B, T, 2 * hidden)
        start, end = self.qa_head(self.dropout(h)).unbind(dim=-1)  # (B, T) each
        return start, end


def span_loss(
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
    start_positions: torch.Tensor,
    end_positions: torch.Tensor,
    context_mask: torch.Tensor,
) -> torch.Tensor:
    """``(CE(start) + CE(end)) / 2`` over positions allowed by ``context_mask``.

    Logits ``(B, T)`` float; positions ``(B,)`` int64, inside the context; the mask bool
    ``(B, T)``. Positions outside the context are excluded from the softmax (score
    ``-inf``), so the loss is the negative log-likelihood of the true start and end among
    context positions only. Returns a scalar tensor.
    """
    check_bool_mask(context_mask, "context_mask", meaning="True on context tokens")
    for name, t in (("start_logits", start_logits), ("end_logits", end_logits)):
        check_floating(check_tensor(t, name, min_dim=2), name)
        if t.shape != context_mask.shape:
            raise ValueError(
                f"{name} must have the shape of context_mask {fmt_shape(context_mask.shape)}, "
                f"got {fmt_shape(t.shape)}."
            )
    B, T = context_mask.shape[0], context_mask.shape[-1]
    for name, pos in (("start_positions", start_positions), ("end_positions", end_positions)):
        check_ids(pos, name, vocab_size=T, dim=1)
        if pos.shape[0] != B:
            raise ValueError(f"{name} must have shape (B,) = ({B},), got {fmt_shape(pos.shape)}.")
    rows = torch.arange(context_mask.shape[0])
    if not (context_mask[rows, start_positions].all() and context_mask[rows, end_positions].all()):
        raise ValueError("start_positions and end_positions must lie inside context_mask.")
    neg = torch.finfo(start_logits.dtype).min
    s = start_logits.masked_fill(~context_mask, neg)  # (B, T)
    e = end_logits.masked_fill(~context_mask, neg)  # (B, T)
    return (F.cross_entropy(s, start_positions) + F.cross_entropy(e, end_positions)) / 2


def best_span(
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
    mask: torch.Tensor,
    max_answer_len: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The best legal span of each row: ``argmax_{i <= j < i + max_answer_len} s_i + e_j``.

    Args:
        start_logits, end_logits: ``(B, T)`` float scores.
        mask: bool ``(B, T)``, ``True`` where a span may start and end (the context);
            every row needs at least one ``True``.
        max_answer_len: the longest span in tokens, ``>= 1``.

    Returns:
        ``(start, end)``, each ``(B,)`` int64, inclusive positions with
        ``mask[b, start] & mask[b, end]`` and ``0 <= end - start < max_answer_len``. Ties go
        to the smallest ``start``, then the smallest ``end`` (row-major ``argmax``). The
        span may cross positions where ``mask`` is ``False`` between its ends only if
        the mask has holes; contexts are contiguous in practice.
    """
    check_floating(check_tensor(start_logits, "start_logits", min_dim=2), "start_logits")
    check_floating(check_tensor(end_logits, "end_logits", min_dim=2), "end_logits")
    check_tensor(mask, "mask", min_dim=2)
    if not (start_logits.shape == end_logits.shape == mask.shape) or start_logits.dim() != 2:
        raise ValueError(
            "start_logits, end_logits and mask must all be (B, T); got "
            f"{fmt_shape(start_logits.shape)}, {fmt_shape(end_logits.shape)}, "
            f"{fmt_shape(mask.shape)}."
        )
    check_bool_mask(mask, "mask", meaning="True = may be part of the answer", nonempty_rows=True)
    max_answer_len = check_positive_int(max_answer_len, "max_answer_len")
    B, T = start_logits.shape
    scores = start_logits[:, :, None] + end_logits[:, None, :]  # (B, T_start, T_end)
    ones = torch.ones(T, T, dtype=torch.bool, device=mask.device)
    band = torch.triu(ones) & ~torch.triu(ones, diagonal=max_answer_len)  # i <= j < i + L
    legal = band[None] & mask[:, :, None] & mask[:, None, :]  # (B, T, T)
    scores = scores.masked_fill(~legal, float("-inf"))
    flat = scores.reshape(B, T * T).argmax(dim=1)  # (B,)
    return flat // T, flat % T

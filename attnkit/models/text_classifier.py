"""Text classifiers: a Transformer encoder with three poolings, and two attention-free baselines.

* :class:`TransformerClassifier`: token embeddings + learned or sinusoidal positions +
  :class:`~attnkit.transformer.TransformerEncoder` (pre-LN) + a pooling + a linear head.
  The pooling is ``"cls"`` (the first token's state, BERT), ``"mean"`` (uniform weights
  over the real tokens) or ``"attention"``: a learned query scores every token and the
  softmax of the scores weights the sum (Yang et al., 2016, "Hierarchical Attention
  Networks"; Lin et al., 2017, "A Structured Self-Attentive Sentence Embedding").
* :func:`attention_pool`: that weighted sum as a function, with the padding mask.
* :class:`BagOfWordsClassifier`: mean of the word embeddings -> linear (fastText,
  Joulin et al., 2017): no word order at all.
* :class:`GRUClassifier`: a bidirectional GRU (Cho et al., 2014) with last-state, mean or
  max pooling: word order, but no attention.

Conventions: ``ids`` are ``LongTensor (B, T)``; ``mask`` is bool ``(B, T)``, ``True`` on
real tokens, and every row needs at least one; padding never changes the logits (tested).
Every pooling is a weighted average of the final states, so every model of this module
that pools returns its pooling weights ``(B, T)``: one-hot on position 0 for ``"cls"``,
``1 / n`` on the ``n`` real tokens for ``"mean"``, the softmax for ``"attention"``; always
0 on padding.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .._validate import (
    check_bool_mask,
    check_ids,
    check_int,
    check_module,
    check_positive_int,
    check_probability,
    check_tensor,
    fmt_shape,
)
from ..positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding
from ..training import TrainConfig, TrainResult, sample_batches, train
from ..transformer import TransformerEncoder, TransformerEncoderLayer

POOLINGS = ("cls", "mean", "attention")
GRU_POOLINGS = ("last", "mean", "max")
POSITIONALS = ("learned", "sinusoidal")


def check_ids_mask(
    ids: object, mask: object, vocab_size: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check ``ids`` ``LongTensor (B, T)`` and ``mask`` bool ``(B, T)`` (``None`` = all
    real) with at least one real token per row; return both.

    Raises:
        TypeError: if ``ids`` or ``mask`` is not a tensor, ``mask`` not bool, or
            ``vocab_size`` not an int.
        ValueError: if ``ids`` is not an int64/int32 ``(B, T)`` tensor with ids in
            ``[0, vocab_size)``, or ``mask`` not ``(B, T)`` with a True in every row.
    """
    if vocab_size is not None:
        vocab_size = check_positive_int(vocab_size, "vocab_size")
    check_tensor(ids, "ids")
    assert isinstance(ids, torch.Tensor)
    if ids.dim() != 2 or ids.dtype not in (torch.int64, torch.int32):
        raise ValueError(
            f"ids must be an integer tensor of shape (B, T), got {ids.dtype} "
            f"{fmt_shape(ids.shape)}."
        )
    if vocab_size is not None and ids.numel() and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(
            f"ids must lie in [0, vocab_size={vocab_size}), got values in "
            f"[{int(ids.min())}, {int(ids.max())}]."
        )
    if mask is None:
        mask = torch.ones(ids.shape, dtype=torch.bool, device=ids.device)
    mask = check_bool_mask(mask, "mask", ids.shape, nonempty_rows=True)
    return ids, mask


def attention_pool(
    scores: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax-weighted average of ``values`` over the sequence (attention pooling).

    ``weights = softmax(scores)`` over the real tokens (padding gets weight 0),
    ``pooled = sum_t weights_t values_t``.

    Args:
        scores: ``(B, T)``, floating, one score per token.
        values: ``(B, T, D)``, the states to average.
        mask: bool ``(B, T)``, ``True`` on real tokens (at least one per row), or ``None``.

    Returns:
        ``(pooled, weights)``: ``(B, D)`` and ``(B, T)``, rows of ``weights`` summing to 1.
    """
    check_tensor(scores, "scores")
    check_tensor(values, "values")
    if scores.dim() != 2 or values.dim() != 3 or values.shape[:2] != scores.shape:
        raise ValueError(
            f"scores must be (B, T) and values (B, T, D) with the same B and T, got "
            f"{fmt_shape(scores.shape)} and {fmt_shape(values.shape)}."
        )
    if not scores.is_floating_point():
        raise TypeError(f"scores must be floating, got {scores.dtype}.")
    if mask is not None:
        mask = check_bool_mask(mask, "mask", scores.shape, nonempty_rows=True)
        scores = scores.masked_fill(~mask, float("-inf"))  # (B, T)
    weights = torch.softmax(scores, dim=-1)  # (B, T)
    pooled = torch.einsum("bt,btd->bd", weights, values)  # (B, D)
    return pooled, weights


def _check_choice(value: object, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}.")
    return str(value)


class TransformerClassifier(nn.Module):
    """A Transformer-encoder sequence classifier (pre-LN, BERT-like, trained from scratch).

    ``x = dropout(E[ids] + P)``; ``h = Encoder(x, key_padding_mask=mask)`` (pre-LN layers,
    final LayerNorm); ``z = pool(h)``; ``logits = W z + b``.

    Args:
        vocab_size: number of token ids.
        num_classes: number of output classes.
        d_model, num_heads, num_layers, d_ff: encoder sizes.
        max_len: longest sequence accepted.
        dropout: on embeddings, attention weights, sublayer outputs.
        pooling: ``"cls"`` (state of position 0, so put a ``[CLS]`` token there),
            ``"mean"`` (uniform over real tokens) or ``"attention"`` (learned query,
            ``score_t = v^T tanh(W h_t)``, Yang et al., 2016).
        positional: ``"learned"`` (BERT) or ``"sinusoidal"`` (Vaswani et al., 2017).
        pad_id: id of the padding token (its embedding row starts at 0).
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int = 2,
        d_model: int = 64,
        num_heads: int = 4,
        num_layers: int = 2,
        d_ff: int = 128,
        max_len: int = 64,
        dropout: float = 0.1,
        pooling: str = "cls",
        positional: str = "learned",
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        self.vocab_size = check_positive_int(vocab_size, "vocab_size")
        self.num_classes = check_positive_int(num_classes, "num_classes")
        self.d_model = check_positive_int(d_model, "d_model")
        self.max_len = check_positive_int(max_len, "max_len")
        self.pooling = _check_choice(pooling, "pooling", POOLINGS)
        self.positional = _check_choice(positional, "positional", POSITIONALS)
        dropout = check_probability(dropout, "dropout")
        self.pad_id = check_positive_int(pad_id, "pad_id", allow_zero=True)
        self.tok_emb = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        if positional == "learned":
            self.pos: nn.Module = LearnedPositionalEmbedding(max_len, d_model, dropout)
        else:
            self.pos = SinusoidalPositionalEncoding(d_model, max_len, dropout)
        self.encoder = TransformerEncoder(
            lambda: TransformerEncoderLayer(
                d_model, num_heads, d_ff, dropout, activation="gelu", norm_first=True
            ),
            num_layers,
            final_norm=True,
        )
        if pooling == "attention":
            self.pool_proj = nn.Linear(d_model, d_model)
            self.pool_query = nn.Linear(d_model, 1, bias=False)
        self.head = nn.Linear(d_model, num_classes)
        nn.init.normal_(self.tok_emb.weight, std=0.02)
        with torch.no_grad():
            self.tok_emb.weight[pad_id].zero_()

    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings ``E[ids]``, ``(B, T, d_model)``, before positions are added:
        the "input" of gradient x input attributions."""
        ids, _ = check_ids_mask(ids, None, self.vocab_size)
        return self.tok_emb(ids)  # (B, T, d_model)

    def pool_scores(self, h: torch.Tensor) -> torch.Tensor:
        """The attention pooling's scores ``v^T tanh(W h_t)``, ``(B, T)`` (attention only)."""
        if self.pooling != "attention":
            raise ValueError(
                f"pool_scores needs pooling='attention', this model has {self.pooling!r}."
            )
        return self.pool_query(torch.tanh(self.pool_proj(h))).squeeze(-1)  # (B, T)

    def forward_embeddings(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        *,
        return_attention: bool = False,
        pool_weights: torch.Tensor | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """:meth:`forward` from token embeddings ``x`` ``(B, T, d_model)`` (positions are
        added here), e.g. embeddings that require a gradient, or scaled ones."""
        check_tensor(x, "x")
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(
                f"x must have shape (B, T, d_model={self.d_model}), got {fmt_shape(x.shape)}."
            )
        B, T, _ = x.shape
        if self.max_len < T:
            raise ValueError(f"sequences of length {T} exceed max_len={self.max_len}.")
        _, mask = check_ids_mask(torch.zeros(B, T, dtype=torch.long, device=x.device), mask)
        h = self.pos(x)  # (B, T, d_model)
        h, attentions = self.encoder(h, key_padding_mask=mask, need_weights=return_attention)
        if pool_weights is not None:
            check_tensor(pool_weights, "pool_weights")
            if pool_weights.shape != (B, T):
                raise ValueError(
                    f"pool_weights must have shape (B, T) = ({B}, {T}), got "
                    f"{fmt_shape(pool_weights.shape)}."
                )
            weights = pool_weights.to(h.dtype).masked_fill(~mask, 0.0)  # (B, T)
        elif self.pooling == "cls":
            weights = torch.zeros(B, T, dtype=h.dtype, device=h.device)
            weights[:, 0] = 1.0  # (B, T)
        elif self.pooling == "mean":
            weights = mask.to(h.dtype) / mask.sum(dim=-1, keepdim=True)  # (B, T)
        else:
            _, weights = attention_pool(self.pool_scores(h), h, mask)  # (B, T)
        pooled = torch.einsum("bt,btd->bd", weights, h)  # (B, d_model)
        logits = self.head(pooled)  # (B, num_classes)
        if return_attention:
            assert attentions is not None
            return logits, attentions, weights
        return logits

    def forward(
        self,
        ids: torch.Tensor,
        mask: torch.Tensor | None = None,
        *,
        return_attention: bool = False,
        pool_weights: torch.Tensor | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """Classify token sequences.

        Args:
            ids: ``LongTensor (B, T)``, ``T <= max_len``.
            mask: bool ``(B, T)``, ``True`` on real tokens (``None`` = all real).
            return_attention: also return every layer's attention weights and the
                pooling weights.
            pool_weights: replace the pooling weights by these ``(B, T)`` (set to 0 on
                padding, not renormalised): counterfactual experiments in the style of
                Jain & Wallace (2019).

        Returns:
            ``logits`` ``(B, num_classes)``, or with ``return_attention``
            ``(logits, attentions, pool_weights)``: a list of ``num_layers`` tensors
            ``(B, H, T, T)`` (first layer first; rows over keys sum to 1, 0 on padded
            keys) and ``(B, T)`` (0 on padding, rows summing to 1).
        """
        ids, mask = check_ids_mask(ids, mask, self.vocab_size)
        return self.forward_embeddings(
            self.tok_emb(ids), mask, return_attention=return_attention, pool_weights=pool_weights
        )

    def extra_repr(self) -> str:
        return f"pooling={self.pooling!r}, positional={self.positional!r}"


class BagOfWordsClassifier(nn.Module):
    """Mean of the word embeddings of the real tokens, then a linear layer (fastText,
    Joulin et al., 2017). Word order is invisible to it.

    Args:
        vocab_size: number of token ids. num_classes: output classes.
        d_embed: embedding size. pad_id: the padding id.
    """

    def __init__(
        self, vocab_size: int, num_classes: int = 2, d_embed: int = 64, pad_id: int = 0
    ) -> None:
        super().__init__()
        self.vocab_size = check_positive_int(vocab_size, "vocab_size")
        self.num_classes = check_positive_int(num_classes, "num_classes")
        check_positive_int(d_embed, "d_embed")
        check_int(pad_id, "pad_id", low=0, high=vocab_size - 1)
        self.emb = nn.Embedding(vocab_size, d_embed, padding_idx=pad_id)
        self.head = nn.Linear(d_embed, num_classes)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``ids`` ``(B, T)``, ``mask`` bool ``(B, T)`` -> logits ``(B, num_classes)``."""
        ids, mask = check_ids_mask(ids, mask, self.vocab_size)
        m = mask.to(self.emb.weight.dtype)  # (B, T)
        e = self.emb(ids) * m[..., None]  # (B, T, d_embed)
        return self.head(e.sum(dim=1) / m.sum(dim=1, keepdim=True))  # (B, num_classes)


class GRUClassifier(nn.Module):
    """A bidirectional GRU (Cho et al., 2014) over the embeddings, pooled without attention.

    Args:
        vocab_size, num_classes: as above. d_embed: embedding size. hidden: GRU state size
            per direction. num_layers: GRU layers. pooling: ``"last"`` (the forward
            direction's state at the last real token concatenated with the backward
            direction's state at the first), ``"mean"`` or ``"max"`` over real tokens.
        dropout: on the embeddings. pad_id: the padding id.

    Sequences must be right-padded (``mask`` a prefix of ``True``); they are packed, so
    padding never reaches the GRU.
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int = 2,
        d_embed: int = 64,
        hidden: int = 64,
        num_layers: int = 1,
        pooling: str = "last",
        dropout: float = 0.0,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        self.vocab_size = check_positive_int(vocab_size, "vocab_size")
        self.num_classes = check_positive_int(num_classes, "num_classes")
        check_int(pad_id, "pad_id", low=0, high=vocab_size - 1)
        self.hidden = check_positive_int(hidden, "hidden")
        self.pooling = _check_choice(pooling, "pooling", GRU_POOLINGS)
        self.emb = nn.Embedding(vocab_size, check_positive_int(d_embed, "d_embed"), pad_id)
        self.dropout = nn.Dropout(check_probability(dropout, "dropout"))
        self.gru = nn.GRU(
            d_embed,
            hidden,
            check_positive_int(num_layers, "num_layers"),
            batch_first=True,
            bidirectional=True,
        )
        self.head = nn.Linear(2 * hidden, num_classes)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``ids`` ``(B, T)``, ``mask`` bool ``(B, T)`` (right-padded) -> ``(B, num_classes)``."""
        ids, mask = check_ids_mask(ids, mask, self.vocab_size)
        lengths = mask.sum(dim=-1)  # (B,)
        T = ids.shape[1]
        if not torch.equal(mask, torch.arange(T, device=ids.device)[None, :] < lengths[:, None]):
            raise ValueError("GRUClassifier needs right-padded sequences: mask = True then False.")
        x = self.dropout(self.emb(ids))  # (B, T, d_embed)
        packed = nn.utils.rnn.pack_padded_sequence(
            x, lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        out, h_n = self.gru(packed)
        if self.pooling == "last":
            pooled = torch.cat([h_n[-2], h_n[-1]], dim=-1)  # (B, 2 hidden): fwd last, bwd first
        else:
            out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)
            m = mask[..., None]  # (B, T, 1)
            if self.pooling == "mean":
                pooled = (out * m).sum(dim=1) / m.sum(dim=1)  # (B, 2 hidden)
            else:
                pooled = out.masked_fill(~m, -math.inf).amax(dim=1)  # (B, 2 hidden)
        return self.head(pooled)  # (B, num_classes)


def classifier_loss(model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Cross-entropy of ``model(ids, mask)`` against ``labels`` for a batch
    ``(ids, mask, labels, ...)``: the ``loss_fn`` of :func:`attnkit.training.train`."""
    model = check_module(model)
    if not isinstance(batch, (tuple, list)) or len(batch) < 3:
        raise TypeError(
            f"batch must be a tuple (ids, mask, labels, ...), got {type(batch).__name__}."
        )
    ids, mask, labels = batch[:3]
    _check_labels(labels, "batch's labels", ids, model)
    return F.cross_entropy(model(ids, mask), labels)


def _check_labels(labels: object, name: str, ids: torch.Tensor, model: nn.Module) -> None:
    """Labels ``(N,)``, one per row of ``ids``, in ``[0, model.num_classes)`` when known."""
    num_classes = getattr(model, "num_classes", None)
    check_ids(labels, name, vocab_size=num_classes if isinstance(num_classes, int) else None, dim=1)
    if isinstance(ids, torch.Tensor) and labels.shape[0] != ids.shape[0]:
        raise ValueError(
            f"{name} must have shape (N,) = ({ids.shape[0]},), got {fmt_shape(labels.shape)}."
        )


def train_classifier(
    model: nn.Module,
    ids: torch.Tensor,
    mask: torch.Tensor,
    labels: torch.Tensor,
    config: TrainConfig,
    *,
    batch_size: int = 64,
) -> TrainResult:
    """Train a classifier of this module with :func:`attnkit.training.train` on random
    mini-batches (drawn with a generator seeded by ``config.seed``; right-padded, each cut
    to its longest sequence) and cross-entropy.

    Args:
        model: a classifier ``model(ids, mask) -> logits``.
        ids, mask, labels: the whole training set, ``(N, T)``, bool ``(N, T)``, ``(N,)``.
        config: the :class:`~attnkit.training.TrainConfig` (steps, lr, seed, ...).
        batch_size: examples per step.
    """
    model = check_module(model)
    ids, mask = check_ids_mask(ids, mask, getattr(model, "vocab_size", None))
    _check_labels(labels, "labels", ids, model)
    if labels.shape != ids.shape[:1]:
        raise ValueError(
            f"labels must have shape (N,) = ({ids.shape[0]},), got {fmt_shape(labels.shape)}."
        )
    batch_size = check_positive_int(batch_size, "batch_size")
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}.")
    rows = sample_batches(
        {"ids": ids, "mask": mask, "labels": labels}, batch_size, seed=config.seed
    )

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        for b in rows:
            T = int(b["mask"].sum(dim=-1).max())  # drop the columns that are all padding
            yield b["ids"][:, :T], b["mask"][:, :T], b["labels"]

    return train(model, classifier_loss, batches(), config)


@torch.no_grad()
def accuracy(
    model: nn.Module,
    ids: torch.Tensor,
    mask: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int = 512,
) -> float:
    """Fraction of correct argmax predictions (model in eval mode, restored after).

    Raises:
        TypeError: if ``model`` is not a module, or an argument has the wrong type.
        ValueError: if ``ids``/``mask`` are not as in :func:`check_ids_mask`, ``labels``
            not ``(N,)`` ids of the model's classes, or ``batch_size`` not a positive int.
    """
    model = check_module(model)
    ids, mask = check_ids_mask(ids, mask, getattr(model, "vocab_size", None))
    _check_labels(labels, "labels", ids, model)
    batch_size = check_positive_int(batch_size, "batch_size")
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, len(ids), batch_size):
        logits = model(ids[i : i + batch_size], mask[i : i + batch_size])
        if isinstance(logits, tuple):
            logits = logits[0]
        correct += int((logits.argmax(-1) == labels[i : i + batch_size]).sum())
    model.train(was_training)
    return correct / len(ids)


__all__ = [
    "BagOfWordsClassifier",
    "GRUClassifier",
    "TransformerClassifier",
    "accuracy",
    "attention_pool",
    "check_ids_mask",
    "classifier_loss",
    "train_classifier",
]

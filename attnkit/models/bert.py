"""BERT (Devlin et al., 2019, "BERT: Pre-training of Deep Bidirectional Transformers for
Language Understanding"), built from attnkit's layers.

* :class:`BertEmbeddings`: token + learned position + segment (token type) embeddings,
  then LayerNorm and dropout (section 3, figure 2).
* :class:`BertModel`: the embeddings, a post-LN stack of
  :class:`~attnkit.transformer.TransformerEncoderLayer` s with the exact (erf) GELU, and the
  pooler ``tanh(W h_[CLS] + b)``. Returns ``(sequence_output (B, T, d), pooled (B, d))``.
* :class:`BertMLMHead`: the masked-LM head, ``dense -> GELU -> LayerNorm -> decoder``,
  whose decoder weight is *tied* to the token embedding matrix (its bias is its own).
* :class:`BertForPreTraining`: MLM head plus the optional next-sentence head
  (``Linear(d, 2)`` on the pooled output); ``next_sentence=False`` is BERT-for-masked-LM.
* :class:`BertForSequenceClassification`: dropout and ``Linear(d, num_labels)`` on pooled.
* :func:`mask_tokens`: the masked-LM corruption of section 3.1 (15% of positions; of
  those 80% ``[MASK]``, 10% random token, 10% unchanged).
* :func:`masked_lm_loss`: the MLM loss and accuracy, running the MLM head only at the
  selected positions.
* :func:`load_hf_bert_state_dict` / :func:`bert_config_from_hf`: load Hugging Face
  ``transformers`` BERT weights and configs (tested equal to ``transformers``' models).

Conventions: batch-first ``(B, T)`` token ids; ``attention_mask`` is bool ``(B, T)``,
``True`` on real tokens (as :func:`~attnkit.masks.padding_mask`), like Hugging Face's 1/0 mask.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .._validate import (
    check_bool,
    check_bool_mask,
    check_floating,
    check_instance,
    check_module_dtype,
    check_positive_int,
    check_probability,
    check_tensor,
    fmt_shape,
)
from ..multihead import MultiHeadAttention
from ..positional import LearnedPositionalEmbedding
from ..transformer import TransformerEncoder, TransformerEncoderLayer

IGNORE_INDEX = -100  # the label that torch.nn.functional.cross_entropy ignores by default
"""The label that ``torch.nn.functional.cross_entropy`` ignores by default."""

# ------------------------------------------------------------------------------ config


@dataclass(frozen=True)
class BertConfig:
    """Sizes of a BERT model. BERT-base: ``vocab_size=30522, d_model=768, num_heads=12,
    num_layers=12, d_ff=3072, max_len=512`` (Devlin et al., 2019, section 3).

    Args:
        vocab_size: number of token ids (WordPiece vocabulary).
        d_model: hidden size ``H``. num_heads: attention heads ``A``. num_layers: ``L``.
        d_ff: feed-forward hidden size (``4H`` in the paper).
        max_len: number of learned positions.
        type_vocab_size: number of segments (2: sentence A and B).
        dropout: dropout probability everywhere (embeddings, attention, sublayers).
        layer_norm_eps: the LayerNorms' epsilon (1e-12 in BERT's release).
        pad_token_id: the id of ``[PAD]``; its embedding row starts at zero.
    """

    vocab_size: int
    d_model: int
    num_heads: int
    num_layers: int
    d_ff: int
    max_len: int
    type_vocab_size: int = 2
    dropout: float = 0.1
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "num_heads", "num_layers", "d_ff", "max_len"):
            check_positive_int(getattr(self, name), name)
        check_positive_int(self.type_vocab_size, "type_vocab_size")
        check_probability(self.dropout, "dropout")
        eps = self.layer_norm_eps
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not 0 < eps < math.inf:
            raise ValueError(f"layer_norm_eps must be a positive finite number, got {eps!r}.")
        if self.d_model % self.num_heads:
            raise ValueError(
                f"d_model={self.d_model} must be divisible by num_heads={self.num_heads}."
            )
        pad = check_positive_int(self.pad_token_id, "pad_token_id", allow_zero=True)
        if pad >= self.vocab_size:
            raise ValueError(
                f"pad_token_id={pad} must be a token id below vocab_size={self.vocab_size}."
            )


def bert_config_from_hf(hf_config: object, *, dropout: float | None = None) -> BertConfig:
    """A :class:`BertConfig` from a Hugging Face ``transformers.BertConfig`` or its dict
    (``config.json``). ``dropout`` defaults to ``hidden_dropout_prob``; attnkit uses one
    dropout probability, so differing attention dropout is refused (pass ``dropout=`` to
    choose one). Only ``hidden_act="gelu"`` and absolute positions are supported."""
    if isinstance(hf_config, Mapping):
        get = hf_config.get
    elif hasattr(hf_config, "to_dict"):
        get = hf_config.to_dict().get  # type: ignore[union-attr]
    else:
        raise TypeError(
            f"hf_config must be a transformers.BertConfig or a dict, got "
            f"{type(hf_config).__name__}."
        )
    needed = (
        "vocab_size",
        "hidden_size",
        "num_attention_heads",
        "num_hidden_layers",
        "intermediate_size",
        "max_position_embeddings",
    )
    missing = [k for k in needed if get(k) is None]
    if missing:
        raise ValueError(f"hf_config lacks {', '.join(missing)}.")
    act = get("hidden_act", "gelu")
    if act != "gelu":
        raise ValueError(f"only hidden_act='gelu' (exact erf GELU) is supported, got {act!r}.")
    pos = get("position_embedding_type", "absolute")
    if pos not in (None, "absolute"):
        raise ValueError(f"only absolute position embeddings are supported, got {pos!r}.")
    if dropout is None:
        hidden, attn = get("hidden_dropout_prob", 0.1), get("attention_probs_dropout_prob", 0.1)
        if attn != hidden:
            raise ValueError(
                f"hidden_dropout_prob={hidden} and attention_probs_dropout_prob={attn} differ; "
                f"attnkit uses one dropout: pass dropout=... to choose it."
            )
        dropout = hidden
    return BertConfig(
        vocab_size=get("vocab_size"),
        d_model=get("hidden_size"),
        num_heads=get("num_attention_heads"),
        num_layers=get("num_hidden_layers"),
        d_ff=get("intermediate_size"),
        max_len=get("max_position_embeddings"),
        type_vocab_size=get("type_vocab_size", 2),
        dropout=dropout,
        layer_norm_eps=get("layer_norm_eps", 1e-12),
        pad_token_id=get("pad_token_id", 0) or 0,
    )


# ----------------------------------------------------------------------------- checks


def _check_ids(ids: object, name: str, upper: int, shape: torch.Size | None = None) -> torch.Tensor:
    """Integer ids in ``[0, upper)``; shape ``(B, T)`` or, if given, ``shape``."""
    check_tensor(ids, name)
    assert isinstance(ids, torch.Tensor)
    if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer ids (e.g. torch.long), got {ids.dtype}.")
    if shape is None and (ids.dim() != 2 or ids.shape[1] == 0):
        raise ValueError(f"{name} must have shape (B, T) with T >= 1, got {fmt_shape(ids.shape)}.")
    if shape is not None and ids.shape != shape:
        raise ValueError(
            f"{name} must have the shape of input_ids {fmt_shape(shape)}, "
            f"got {fmt_shape(ids.shape)}."
        )
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= upper):
        raise ValueError(
            f"{name} holds ids from {int(ids.min())} to {int(ids.max())}; "
            f"allowed are 0..{upper - 1}."
        )
    return ids


def _check_config(config: object) -> BertConfig:
    if not isinstance(config, BertConfig):
        raise TypeError(f"config must be a BertConfig, got {type(config).__name__}.")
    return config


def _init_bert_(module: nn.Module) -> None:
    """BERT's initialisation: N(0, 0.02^2) weights, zero biases, unit LayerNorms."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


# ------------------------------------------------------------------------------ model


class BertEmbeddings(nn.Module):
    """``dropout(LayerNorm(E_token[ids] + E_position[t] + E_segment[token_type_ids]))``
    (Devlin et al., 2019, figure 2).

    ``input_ids`` and ``token_type_ids``: integer ``(B, T)``, ``T <= max_len``;
    ``token_type_ids`` defaults to zeros (all sentence A). Output ``(B, T, d_model)``.
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        c = self.config = _check_config(config)
        self.word_embeddings = nn.Embedding(c.vocab_size, c.d_model, padding_idx=c.pad_token_id)
        self.position = LearnedPositionalEmbedding(c.max_len, c.d_model)  # adds E_position
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.d_model)
        self.norm = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.dropout)

    def forward(
        self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Embed integer ``input_ids`` ``(B, T)``; output ``(B, T, d_model)``."""
        input_ids = _check_ids(input_ids, "input_ids", self.config.vocab_size)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        token_type_ids = _check_ids(
            token_type_ids, "token_type_ids", self.config.type_vocab_size, input_ids.shape
        )
        x = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        x = self.position(x)  # (B, T, d_model), positions added
        return self.dropout(self.norm(x))  # (B, T, d_model)


class BertModel(nn.Module):
    """BERT's encoder: embeddings, ``num_layers`` post-LN Transformer encoder layers with
    GELU, and (``add_pooling_layer=True``) the pooler ``tanh(W h_[CLS] + b)`` on position 0.

    Call ``model(input_ids, token_type_ids=None, attention_mask=None)``:

    * ``input_ids``: integer ``(B, T)``; ``token_type_ids``: integer ``(B, T)`` segments;
    * ``attention_mask``: bool ``(B, T)``, ``True`` on real tokens, ``False`` on padding.

    Returns ``(sequence_output, pooled)``: ``(B, T, d_model)`` and ``(B, d_model)``, or
    ``None`` for ``pooled`` without a pooler. Outputs at padded positions are meaningless.
    """

    def __init__(self, config: BertConfig, *, add_pooling_layer: bool = True) -> None:
        add_pooling_layer = check_bool(add_pooling_layer, "add_pooling_layer")
        super().__init__()
        c = self.config = _check_config(config)
        self.embeddings = BertEmbeddings(c)
        self.encoder = TransformerEncoder(
            lambda: TransformerEncoderLayer(
                c.d_model,
                c.num_heads,
                c.d_ff,
                dropout=c.dropout,
                activation="gelu",
                norm_first=False,
                layer_norm_eps=c.layer_norm_eps,
            ),
            c.num_layers,
            final_norm=False,  # post-LN: every layer already ends with a LayerNorm
        )
        self.pooler = nn.Linear(c.d_model, c.d_model) if add_pooling_layer else None
        self.apply(_init_bert_)

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Run the encoder: ``(sequence_output, pooled)``, as the class docstring describes."""
        x = self.embeddings(input_ids, token_type_ids)  # (B, T, d_model)
        if attention_mask is not None:
            attention_mask = check_bool_mask(attention_mask, "attention_mask", input_ids.shape)
        h, _ = self.encoder(x, key_padding_mask=attention_mask)  # (B, T, d_model)
        pooled = None if self.pooler is None else torch.tanh(self.pooler(h[:, 0]))  # (B, d)
        return h, pooled


class BertMLMHead(nn.Module):
    """The masked-LM head: ``decoder(LayerNorm(GELU(dense(h))))`` -> logits ``(B, T, V)``.

    ``decoder.weight`` **is** ``word_embeddings.weight`` (the same Parameter, tied as in
    BERT's release; Press & Wolf, 2017); ``decoder.bias`` is the head's own.
    """

    def __init__(self, config: BertConfig, word_embeddings: nn.Embedding) -> None:
        super().__init__()
        c = _check_config(config)
        check_instance(word_embeddings, "word_embeddings", nn.Embedding, "an nn.Embedding")
        if tuple(word_embeddings.weight.shape) != (c.vocab_size, c.d_model):
            raise ValueError(
                f"word_embeddings must be (vocab_size, d_model) = ({c.vocab_size}, "
                f"{c.d_model}), got {fmt_shape(word_embeddings.weight.shape)}."
            )
        self.dense = nn.Linear(c.d_model, c.d_model)
        self.norm = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps)
        self.decoder = nn.Linear(c.d_model, c.vocab_size)
        self.apply(_init_bert_)
        nn.init.zeros_(self.decoder.bias)
        self.decoder.weight = word_embeddings.weight  # tied: (V, d_model)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """``(..., d_model) -> (..., vocab_size)``, e.g. ``(B, T, d_model)``.

        Raises:
            TypeError: if ``h`` is not a floating tensor of the parameters' dtype.
            ValueError: if the last dimension of ``h`` is not ``d_model``.
        """
        check_floating(check_tensor(h, "h", min_dim=1), "h")
        if h.shape[-1] != self.dense.in_features:
            raise ValueError(
                f"h must have shape (..., d_model) = (..., {self.dense.in_features}), "
                f"got {fmt_shape(h.shape)}."
            )
        check_module_dtype(h, "h", self)
        h = self.norm(F.gelu(self.dense(h)))  # (B, T, d_model)
        return self.decoder(h)  # (B, T, V)


class BertForPreTraining(nn.Module):
    """BERT with its pre-training heads (Devlin et al., 2019, section 3.1): masked LM and,
    if ``next_sentence=True``, next-sentence prediction ``Linear(d_model, 2)`` on the pooled
    ``[CLS]`` vector. With ``next_sentence=False`` it is BERT-for-masked-LM (no pooler).

    ``forward(input_ids, token_type_ids=None, attention_mask=None)`` returns
    ``(mlm_logits (B, T, V), nsp_logits (B, 2) or None)``. Train the MLM head with
    ``F.cross_entropy(logits.flatten(0, 1), labels.flatten())`` and the labels of
    :func:`mask_tokens` (``-100`` is ignored).
    """

    def __init__(self, config: BertConfig, *, next_sentence: bool = True) -> None:
        next_sentence = check_bool(next_sentence, "next_sentence")
        super().__init__()
        c = self.config = _check_config(config)
        self.bert = BertModel(c, add_pooling_layer=bool(next_sentence))
        self.mlm = BertMLMHead(c, self.bert.embeddings.word_embeddings)
        self.nsp = nn.Linear(c.d_model, 2) if next_sentence else None
        if self.nsp is not None:
            _init_bert_(self.nsp)

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(mlm_logits (B, T, V), nsp_logits (B, 2) or None)``; inputs as in
        :meth:`BertModel.forward`."""
        h, pooled = self.bert(input_ids, token_type_ids, attention_mask)  # (B, T, d), (B, d)
        nsp = None if self.nsp is None else self.nsp(pooled)  # (B, 2)
        return self.mlm(h), nsp  # (B, T, V), (B, 2) or None


class BertForSequenceClassification(nn.Module):
    """BERT fine-tuned for classification (section 4.1): ``Linear(dropout(pooled))``.

    ``forward(input_ids, token_type_ids=None, attention_mask=None)`` -> logits
    ``(B, num_labels)``.
    """

    def __init__(self, config: BertConfig, num_labels: int) -> None:
        super().__init__()
        c = self.config = _check_config(config)
        self.num_labels = check_positive_int(num_labels, "num_labels")
        self.bert = BertModel(c)
        self.dropout = nn.Dropout(c.dropout)
        self.classifier = nn.Linear(c.d_model, self.num_labels)
        _init_bert_(self.classifier)

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits ``(B, num_labels)``; inputs as :meth:`BertModel.forward`."""
        _, pooled = self.bert(input_ids, token_type_ids, attention_mask)  # (B, d_model)
        return self.classifier(self.dropout(pooled))  # (B, num_labels)


# ---------------------------------------------------------------------------- masking


def mask_tokens(
    tokens: torch.Tensor,
    *,
    vocab_size: int,
    mask_token_id: int,
    special_mask: torch.Tensor | None = None,
    mlm_probability: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masked-LM corruption (Devlin et al., 2019, section 3.1 and appendix A.1).

    Each eligible position is selected independently with probability ``mlm_probability``;
    a selected token becomes ``[MASK]`` with probability 0.8, a uniformly random token with
    probability 0.1, and stays unchanged with probability 0.1.

    Args:
        tokens: integer token ids of any shape, e.g. ``(B, T)``, in ``[0, vocab_size)``.
        vocab_size: number of token ids (random replacements are drawn from all of them).
        mask_token_id: the id of ``[MASK]``.
        special_mask: optional bool tensor of ``tokens``' shape, ``True`` = never select
            (``[CLS]``, ``[SEP]``, ``[PAD]``).
        mlm_probability: selection probability in ``[0, 1]``.
        generator: optional ``torch.Generator`` (on ``tokens``' device) for reproducibility.

    Returns:
        ``(inputs, labels)``, both of ``tokens``' shape and dtype: the corrupted inputs, and
        the original token at selected positions, ``-100`` elsewhere (ignored by
        ``F.cross_entropy``).
    """
    vocab_size = check_positive_int(vocab_size, "vocab_size")
    tokens = _check_ids(tokens, "tokens", vocab_size, shape=getattr(tokens, "shape", None))
    mask_token_id = check_positive_int(mask_token_id, "mask_token_id", allow_zero=True)
    if mask_token_id >= vocab_size:
        raise ValueError(f"mask_token_id={mask_token_id} must be below vocab_size={vocab_size}.")
    p = mlm_probability
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"mlm_probability must be a number in [0, 1], got {p!r}.")
    if special_mask is not None:
        special_mask = check_bool_mask(
            special_mask, "special_mask", tokens.shape, meaning="True = never select"
        )
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}.")

    kw = dict(device=tokens.device, generator=generator)
    probs = torch.full(tokens.shape, float(p), device=tokens.device)
    if special_mask is not None:
        probs = probs.masked_fill(special_mask, 0.0)
    selected = torch.bernoulli(probs, generator=generator).bool()  # (..., ) True = predict
    u = torch.rand(tokens.shape, **kw)  # which of the three corruptions
    to_mask = selected & (u < 0.8)
    to_random = selected & (u >= 0.8) & (u < 0.9)
    random_ids = torch.randint(vocab_size, tokens.shape, dtype=tokens.dtype, **kw)

    inputs = tokens.masked_fill(to_mask, mask_token_id)
    inputs = torch.where(to_random, random_ids, inputs)
    labels = tokens.masked_fill(~selected, IGNORE_INDEX)
    return inputs, labels


def masked_lm_loss(
    model: BertForPreTraining,
    input_ids: torch.Tensor,
    labels: torch.Tensor,
    token_type_ids: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The masked-LM loss and accuracy, with the MLM head run at the selected positions only.

    Equal to ``F.cross_entropy(mlm_logits.flatten(0, 1), labels.flatten())`` with the full
    logits of ``model(...)``, but the ``(B, T, vocab_size)`` logits are never built: only
    the ``N`` positions whose label is not ``-100`` (about 15% of them, from
    :func:`mask_tokens`) go through the head, a large saving when the vocabulary is large.
    The next-sentence head, if any, is not used.

    Args:
        model: a :class:`BertForPreTraining`.
        input_ids: corrupted inputs ``(B, T)``; ``labels``: integer ``(B, T)``, the original
            token at selected positions and ``-100`` elsewhere.
        token_type_ids, attention_mask: as :meth:`BertModel.forward`.

    Returns:
        ``(loss, accuracy)``: the mean cross-entropy over the ``N`` selected positions
        (a 0-d tensor with gradient; ``0.0``, still with gradient, when ``N = 0``) and the
        fraction of them whose arg-max prediction is the label (0-d, no gradient; ``nan``
        when ``N = 0``).
    """
    if not isinstance(model, BertForPreTraining):
        raise TypeError(f"model must be a BertForPreTraining, got {type(model).__name__}.")
    input_ids = _check_ids(input_ids, "input_ids", model.config.vocab_size)
    check_tensor(labels, "labels")
    if labels.shape != input_ids.shape or labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(
            f"labels must be integer ids of the shape of input_ids {fmt_shape(input_ids.shape)}"
            f", got {labels.dtype} {fmt_shape(labels.shape)}."
        )
    selected = labels != IGNORE_INDEX  # (B, T)
    targets = labels[selected]  # (N,)
    if targets.numel() and (
        int(targets.min()) < 0 or int(targets.max()) >= model.config.vocab_size
    ):
        raise ValueError(
            f"labels must be -100 or token ids below vocab_size={model.config.vocab_size}."
        )
    h, _ = model.bert(input_ids, token_type_ids, attention_mask)  # (B, T, d_model)
    logits = model.mlm(h[selected])  # (N, V)
    if targets.numel() == 0:
        return logits.sum() * 0.0, torch.tensor(float("nan"))
    loss = F.cross_entropy(logits, targets)
    accuracy = (logits.detach().argmax(-1) == targets).float().mean()
    return loss, accuracy


# ---------------------------------------------------------------- Hugging Face weights


def _layer_keys(i: int, layer: TransformerEncoderLayer) -> dict[str, nn.Module]:
    """Hugging Face names of one encoder layer's Linears/LayerNorms -> attnkit modules."""
    attn = layer.self_attn
    assert isinstance(attn, MultiHeadAttention)
    p = f"encoder.layer.{i}."
    return {
        p + "attention.self.query": attn.q_proj,
        p + "attention.self.key": attn.k_proj,
        p + "attention.self.value": attn.v_proj,
        p + "attention.output.dense": attn.out_proj,
        p + "attention.output.LayerNorm": layer.norm1,
        p + "intermediate.dense": layer.ff.linear1,
        p + "output.dense": layer.ff.linear2,
        p + "output.LayerNorm": layer.norm2,
    }


def _hf_targets(model: nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    """Every Hugging Face key the model needs -> the attnkit tensor it fills."""
    if isinstance(model, BertModel):
        bert, heads = model, {}
    elif isinstance(model, BertForPreTraining):
        bert = model.bert
        heads = {
            "cls.predictions.transform.dense": model.mlm.dense,
            "cls.predictions.transform.LayerNorm": model.mlm.norm,
        }
        if model.nsp is not None:
            heads["cls.seq_relationship"] = model.nsp
    elif isinstance(model, BertForSequenceClassification):
        bert, heads = model.bert, {"classifier": model.classifier}
    else:
        raise TypeError(
            f"model must be a BertModel, BertForPreTraining or BertForSequenceClassification, "
            f"got {type(model).__name__}."
        )
    emb = bert.embeddings
    modules: dict[str, nn.Module] = {
        prefix + "embeddings.LayerNorm": emb.norm,
        prefix + "embeddings.position_embeddings": emb.position.emb,
        prefix + "embeddings.token_type_embeddings": emb.token_type_embeddings,
        prefix + "embeddings.word_embeddings": emb.word_embeddings,
    }
    for i, layer in enumerate(bert.encoder.layers):
        modules.update({prefix + k: m for k, m in _layer_keys(i, layer).items()})
    if bert.pooler is not None:
        modules[prefix + "pooler.dense"] = bert.pooler
    modules.update(heads)
    targets = {}
    for name, m in modules.items():
        targets[name + ".weight"] = m.weight
        if getattr(m, "bias", None) is not None:
            targets[name + ".bias"] = m.bias
    if isinstance(model, BertForPreTraining):
        targets["cls.predictions.bias"] = model.mlm.decoder.bias
    return targets


def load_hf_bert_state_dict(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, strict: bool = True
) -> list[str]:
    """Copy a Hugging Face ``transformers`` BERT state dict into an attnkit BERT model.

    ``model`` is a :class:`BertModel` (from ``BertModel`` keys such as
    ``embeddings.word_embeddings.weight``, with or without the ``bert.`` prefix),
    :class:`BertForPreTraining` (``bert.*`` and ``cls.predictions.*``, plus
    ``cls.seq_relationship.*`` if it has the next-sentence head; a ``BertForMaskedLM``
    state dict fits ``next_sentence=False``) or :class:`BertForSequenceClassification`
    (``bert.*`` and ``classifier.*``). The separate query/key/value projections map to
    ``MultiHeadAttention.q_proj/k_proj/v_proj``; ``attention.output.dense`` to
    ``out_proj``. The tied ``cls.predictions.decoder.weight`` must equal the word
    embeddings (it is not copied: attnkit's decoder *is* the embedding matrix).

    Raises ``ValueError`` naming every missing key (and, with ``strict=True``, every
    unexpected one), or on a shape mismatch; nothing is copied then.
    Returns the keys of ``state_dict`` that were ignored (unexpected, ``strict=False``).
    """
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict must be a mapping, got {type(state_dict).__name__}.")
    strict = check_bool(strict, "strict")
    backbone = any(k.startswith("bert.") for k in state_dict)
    prefix = "bert." if backbone or not isinstance(model, BertModel) else ""
    targets = _hf_targets(model, prefix)
    tolerated = {
        prefix + "embeddings.position_ids",  # a buffer in older transformers versions
        "cls.predictions.decoder.bias",  # the same tensor as cls.predictions.bias
    }
    tied_key = "cls.predictions.decoder.weight"
    if isinstance(model, BertForPreTraining):
        tolerated.add(tied_key)
    missing = [k for k in targets if k not in state_dict]
    unexpected = [k for k in state_dict if k not in targets and k not in tolerated]
    if missing or (strict and unexpected):
        lines = []
        if missing:
            lines.append(f"missing keys: {', '.join(missing)}")
        if strict and unexpected:
            lines.append(f"unexpected keys: {', '.join(unexpected)} (pass strict=False to skip)")
        raise ValueError(
            f"state_dict does not match {type(model).__name__} "
            f"(Hugging Face key prefix {prefix!r}); " + "; ".join(lines) + "."
        )
    for key, ours in targets.items():
        theirs = state_dict[key]
        if tuple(theirs.shape) != tuple(ours.shape):
            raise ValueError(
                f"{key}: state_dict has shape {fmt_shape(theirs.shape)}, the model expects "
                f"{fmt_shape(ours.shape)}; build the model with bert_config_from_hf(config)."
            )
    word_key = prefix + "embeddings.word_embeddings.weight"
    if tied_key in state_dict and not torch.equal(
        state_dict[tied_key].to(state_dict[word_key]), state_dict[word_key]
    ):
        raise ValueError(
            f"{tied_key} differs from {word_key}; attnkit's MLM decoder is tied to the word "
            f"embeddings and cannot hold an untied decoder."
        )
    with torch.no_grad():
        for key, ours in targets.items():
            ours.copy_(state_dict[key])
    return unexpected


__all__ = [
    "IGNORE_INDEX",
    "BertConfig",
    "BertEmbeddings",
    "BertForPreTraining",
    "BertForSequenceClassification",
    "BertMLMHead",
    "BertModel",
    "bert_config_from_hf",
    "load_hf_bert_state_dict",
    "mask_tokens",
    "masked_lm_loss",
]

"""Published results of attention models on four NLP benchmarks, as typed, validated data.

The single source of the figures quoted by chapter 12 ("What the published results say")
and by the book's summary. Each :class:`PublishedResult` is one number as printed in one
paper: the task, dataset and split, the system, its architecture family, whether its body
was pretrained on unlabelled text, the metric and the value, the BibTeX key of the paper
that *prints* the number (``citation``) and, where different and available, of the
paper that *introduced* the system (``system_citation``), plus where in the paper it is
(``where``: table or section).

Conventions:

* ``family`` is the main sequence-modelling block of the system: ``"recurrent"`` (LSTM /
  GRU stacks, with attention between them or not), ``"convolutional"``, ``"self-attention"``
  (Transformer layers), ``"conv+self-attention"`` (QANet's encoder), ``"feature-based"``
  (a linear model over hand-made features), ``"heuristic"`` (Lead-3) or ``"human"``.
  Almost every neural system here uses attention somewhere; the family says what the
  *rest* of the network is.
* ``pretrained`` is ``True`` when the network body was pretrained on unlabelled text
  (language-model or denoising pretraining) before training on the task. Pretrained word
  vectors alone (GloVe) do not count.
* Every value is on the 0-100 scale the papers print (BLEU, EM and F1 in %, ROUGE
  F-measures x 100, accuracy and error rate in %).
* ``training_flops`` is the training cost in floating-point operations where the paper
  states it (Vaswani et al., 2017, Table 2: GPU time x number of GPUs x assumed sustained
  single-precision throughput), else ``None``.

The figures were checked against the papers (see the chapter for the caveats of each).
:func:`results` filters them; :func:`table` turns rows into plain tuples for printing.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass, fields

import torch

__all__ = [
    "FAMILIES",
    "METRICS",
    "P100_TFLOPS",
    "PAPER_MODEL_SIZES",
    "RESULTS",
    "PaperModelSize",
    "PublishedResult",
    "citation_keys",
    "results",
    "table",
    "training_flops_from_gpu_time",
]

FAMILIES = (
    "recurrent",
    "convolutional",
    "self-attention",
    "conv+self-attention",
    "feature-based",
    "heuristic",
    "human",
)
"""The architecture families a :class:`PublishedResult` may name."""
METRICS = ("BLEU", "EM", "F1", "ROUGE-1", "ROUGE-2", "ROUGE-L", "accuracy", "error")
"""The metrics a :class:`PublishedResult` may report."""
SPLITS = ("dev", "test")
P100_TFLOPS = 9.5  # Vaswani et al. (2017), footnote to section 6.1: assumed P100 throughput
"""Assumed P100 throughput in TFLOPS (Vaswani et al., 2017, footnote to section 6.1)."""

_KEY = re.compile(r"^[a-z][a-z0-9]*\d{4}[a-z0-9]*$")


def _check_text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}.")
    return value


def _check_key(value: object, name: str) -> str:
    if not isinstance(value, str) or not _KEY.match(value):
        raise ValueError(
            f"{name} must be a BibTeX key like 'vaswani2017attention' (lower-case author, "
            f"year, first word), got {value!r}."
        )
    return value


def _check_choice(value: object, name: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}.")
    return value  # type: ignore[return-value]


def _check_real(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}.")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}.")
    return float(value)


@dataclass(frozen=True)
class PublishedResult:
    """One published number. Validated on construction (see the module docstring)."""

    task: str
    dataset: str
    split: str
    model: str
    family: str
    pretrained: bool
    metric: str
    value: float
    citation: str
    where: str
    system_citation: str | None = None
    ensemble: bool = False
    training_flops: float | None = None
    note: str = ""

    def __post_init__(self) -> None:
        for name in ("task", "dataset", "model", "where"):
            _check_text(getattr(self, name), name)
        _check_choice(self.split, "split", SPLITS)
        _check_choice(self.family, "family", FAMILIES)
        _check_choice(self.metric, "metric", METRICS)
        for name in ("pretrained", "ensemble"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}.")
        value = _check_real(self.value, "value")
        if not 0.0 <= value <= 100.0:
            raise ValueError(
                f"value of {self.model} ({self.metric}) must lie in [0, 100] (the papers' "
                f"percent scale), got {value}."
            )
        _check_key(self.citation, "citation")
        if self.system_citation is not None:
            _check_key(self.system_citation, "system_citation")
        if self.training_flops is not None:
            flops = _check_real(self.training_flops, "training_flops")
            if flops <= 0:
                raise ValueError(f"training_flops must be positive, got {flops}.")
        if not isinstance(self.note, str):
            raise TypeError(f"note must be a string, got {type(self.note).__name__}.")

    @property
    def key(self) -> tuple[str, str, str, bool, str, str]:
        """What identifies a row, ``(dataset, split, model, ensemble, metric, citation)``."""
        return (self.dataset, self.split, self.model, self.ensemble, self.metric, self.citation)


@dataclass(frozen=True)
class PaperModelSize:
    """A parameter count printed in a paper, with the configuration it belongs to."""

    model: str
    reported_millions: float
    num_layers: int
    d_model: int
    d_ff: int
    num_heads: int
    vocab_size: int
    citation: str
    where: str

    def __post_init__(self) -> None:
        _check_text(self.model, "model")
        _check_text(self.where, "where")
        _check_key(self.citation, "citation")
        if _check_real(self.reported_millions, "reported_millions") <= 0:
            raise ValueError("reported_millions must be positive.")
        for name in ("num_layers", "d_model", "d_ff", "num_heads", "vocab_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name} must be a positive int, got {v!r}.")


def _wmt(pair, model, family, bleu, flops, system_citation, *, ensemble=False, note=""):
    return PublishedResult(
        task="translation",
        dataset=f"WMT14 {pair}",
        split="test",
        model=model,
        family=family,
        pretrained=False,
        metric="BLEU",
        value=bleu,
        citation="vaswani2017attention",
        where="Table 2 (newstest2014)",
        system_citation=system_citation,
        ensemble=ensemble,
        training_flops=flops,
        note=note,
    )


def _rouge(model, family, pretrained, r1, r2, rl, citation, where, system_citation, note=""):
    return [
        PublishedResult(
            task="summarization",
            dataset="CNN/DailyMail",
            split="test",
            model=model,
            family=family,
            pretrained=pretrained,
            metric=metric,
            value=value,
            citation=citation,
            where=where,
            system_citation=system_citation,
            note=note,
        )
        for metric, value in (("ROUGE-1", r1), ("ROUGE-2", r2), ("ROUGE-L", rl))
    ]


def _squad(dataset, split, model, family, pretrained, metric, value, citation, where, **kw):
    return PublishedResult(
        task="question answering",
        dataset=dataset,
        split=split,
        model=model,
        family=family,
        pretrained=pretrained,
        metric=metric,
        value=value,
        citation=citation,
        where=where,
        **kw,
    )


def _imdb(model, family, pretrained, error, citation, where, system_citation=None, note=""):
    return PublishedResult(
        task="sentiment classification",
        dataset="IMDB",
        split="test",
        model=model,
        family=family,
        pretrained=pretrained,
        metric="error",
        value=error,
        citation=citation,
        where=where,
        system_citation=system_citation,
        note=note,
    )


_MOE = "LSTM layers with a sparsely gated mixture-of-experts layer between them"
_DEEPATT = "deep LSTM encoder-decoder with attention"
_BIG_FR = "41.8 in the later arXiv revisions of the paper"
_BART = "Table 3 (non-anonymized CNN/DailyMail)"
_BERT_T2 = "Table 2 (SQuAD 1.1)"
_BERT_T3 = "Table 3 (SQuAD 2.0)"
_LEADERBOARD = "the SQuAD leaderboard's human figure, quoted by BERT"

RESULTS: tuple[PublishedResult, ...] = (
    # ------------------------------------------------- WMT14 (Vaswani et al., 2017, Table 2)
    _wmt("En-De", "ByteNet", "convolutional", 23.75, None, None),
    _wmt("En-De", "GNMT + RL", "recurrent", 24.6, 2.3e19, "wu2016google"),
    _wmt("En-De", "ConvS2S", "convolutional", 25.16, 9.6e18, "gehring2017convolutional"),
    _wmt("En-De", "MoE", "recurrent", 26.03, 2.0e19, None, note=_MOE),
    _wmt("En-De", "GNMT + RL", "recurrent", 26.30, 1.8e20, "wu2016google", ensemble=True),
    _wmt(
        "En-De",
        "ConvS2S",
        "convolutional",
        26.36,
        7.7e19,
        "gehring2017convolutional",
        ensemble=True,
    ),
    _wmt("En-De", "Transformer (base)", "self-attention", 27.3, 3.3e18, "vaswani2017attention"),
    _wmt("En-De", "Transformer (big)", "self-attention", 28.4, 2.3e19, "vaswani2017attention"),
    _wmt("En-Fr", "Deep-Att + PosUnk", "recurrent", 39.2, 1.0e20, None, note=_DEEPATT),
    _wmt("En-Fr", "GNMT + RL", "recurrent", 39.92, 1.4e20, "wu2016google"),
    _wmt("En-Fr", "ConvS2S", "convolutional", 40.46, 1.5e20, "gehring2017convolutional"),
    _wmt("En-Fr", "MoE", "recurrent", 40.56, 1.2e20, None, note=_MOE),
    _wmt("En-Fr", "Deep-Att + PosUnk", "recurrent", 40.4, 8.0e20, None, ensemble=True),
    _wmt("En-Fr", "GNMT + RL", "recurrent", 41.16, 1.1e21, "wu2016google", ensemble=True),
    _wmt(
        "En-Fr",
        "ConvS2S",
        "convolutional",
        41.29,
        1.2e21,
        "gehring2017convolutional",
        ensemble=True,
    ),
    _wmt("En-Fr", "Transformer (base)", "self-attention", 38.1, 3.3e18, "vaswani2017attention"),
    _wmt(
        "En-Fr",
        "Transformer (big)",
        "self-attention",
        41.0,
        2.3e19,
        "vaswani2017attention",
        note=_BIG_FR,
    ),
    # ------------------------------------------------------------------------ SQuAD 1.1
    _squad(
        "SQuAD 1.1",
        "test",
        "Logistic regression",
        "feature-based",
        False,
        "F1",
        51.0,
        "rajpurkar2016squad",
        "Abstract",
    ),
    _squad(
        "SQuAD 1.1",
        "test",
        "Human",
        "human",
        False,
        "F1",
        86.8,
        "rajpurkar2016squad",
        "Abstract",
    ),
    _squad(
        "SQuAD 1.1",
        "dev",
        "BiDAF",
        "recurrent",
        False,
        "EM",
        67.7,
        "seo2017bidirectional",
        "single model, development set (ablation results)",
        note="BiLSTM encoders with bidirectional attention",
    ),
    _squad(
        "SQuAD 1.1",
        "dev",
        "BiDAF",
        "recurrent",
        False,
        "F1",
        77.3,
        "seo2017bidirectional",
        "single model, development set (ablation results)",
        note="BiLSTM encoders with bidirectional attention",
    ),
    _squad(
        "SQuAD 1.1",
        "test",
        "QANet (+ back-translation data)",
        "conv+self-attention",
        False,
        "F1",
        84.6,
        "yu2018qanet",
        "Abstract (single model)",
        note="trained with data augmented by back-translation",
    ),
    _squad(
        "SQuAD 1.1",
        "dev",
        "BERT-base",
        "self-attention",
        True,
        "EM",
        80.8,
        "devlin2019bert",
        _BERT_T2,
    ),
    _squad(
        "SQuAD 1.1",
        "dev",
        "BERT-base",
        "self-attention",
        True,
        "F1",
        88.5,
        "devlin2019bert",
        _BERT_T2,
    ),
    _squad(
        "SQuAD 1.1",
        "dev",
        "BERT-large",
        "self-attention",
        True,
        "EM",
        84.1,
        "devlin2019bert",
        _BERT_T2,
    ),
    _squad(
        "SQuAD 1.1",
        "dev",
        "BERT-large",
        "self-attention",
        True,
        "F1",
        90.9,
        "devlin2019bert",
        _BERT_T2,
    ),
    _squad(
        "SQuAD 1.1",
        "test",
        "BERT-large (+ TriviaQA)",
        "self-attention",
        True,
        "EM",
        85.1,
        "devlin2019bert",
        _BERT_T2,
        note="single model, first fine-tuned on TriviaQA",
    ),
    _squad(
        "SQuAD 1.1",
        "test",
        "BERT-large (+ TriviaQA)",
        "self-attention",
        True,
        "F1",
        91.8,
        "devlin2019bert",
        _BERT_T2,
        note="single model, first fine-tuned on TriviaQA",
    ),
    _squad(
        "SQuAD 1.1",
        "test",
        "Human (leaderboard)",
        "human",
        False,
        "EM",
        82.3,
        "devlin2019bert",
        _BERT_T2,
        note=_LEADERBOARD,
    ),
    _squad(
        "SQuAD 1.1",
        "test",
        "Human (leaderboard)",
        "human",
        False,
        "F1",
        91.2,
        "devlin2019bert",
        _BERT_T2,
        note=_LEADERBOARD,
    ),
    # ------------------------------------------------------------------------ SQuAD 2.0
    _squad(
        "SQuAD 2.0",
        "test",
        "BERT-large",
        "self-attention",
        True,
        "EM",
        80.0,
        "devlin2019bert",
        _BERT_T3,
    ),
    _squad(
        "SQuAD 2.0",
        "test",
        "BERT-large",
        "self-attention",
        True,
        "F1",
        83.1,
        "devlin2019bert",
        _BERT_T3,
    ),
    _squad("SQuAD 2.0", "test", "Human", "human", False, "EM", 86.9, "devlin2019bert", _BERT_T3),
    _squad("SQuAD 2.0", "test", "Human", "human", False, "F1", 89.5, "devlin2019bert", _BERT_T3),
    # -------------------------------------------- CNN/DailyMail (Lewis et al., 2020, Table 3)
    *_rouge(
        "Lead-3",
        "heuristic",
        False,
        40.42,
        17.62,
        36.67,
        "lewis2020bart",
        _BART,
        None,
        note="the first three sentences of the article",
    ),
    *_rouge(
        "Pointer-generator",
        "recurrent",
        False,
        36.44,
        15.66,
        33.42,
        "lewis2020bart",
        _BART,
        "see2017get",
        note="BiLSTM encoder, LSTM decoder, attention + copying",
    ),
    *_rouge(
        "Pointer-generator + coverage",
        "recurrent",
        False,
        39.53,
        17.28,
        36.38,
        "lewis2020bart",
        _BART,
        "see2017get",
        note="BiLSTM encoder, LSTM decoder, attention + copying",
    ),
    *_rouge(
        "BertSumAbs",
        "self-attention",
        True,
        41.72,
        19.39,
        38.76,
        "lewis2020bart",
        _BART,
        "liu2019text",
    ),
    *_rouge(
        "BertSumExtAbs",
        "self-attention",
        True,
        42.13,
        19.60,
        39.18,
        "lewis2020bart",
        _BART,
        "liu2019text",
    ),
    *_rouge(
        "BART", "self-attention", True, 44.16, 21.28, 40.90, "lewis2020bart", _BART, "lewis2020bart"
    ),
    *_rouge(
        "BertSumExt",
        "self-attention",
        True,
        43.25,
        20.24,
        39.63,
        "liu2019text",
        "Table 2 (extractive)",
        "liu2019text",
        note="extractive: selects sentences of the article",
    ),
    # -------------------------------------------------------------------------------- IMDB
    _imdb(
        "ULMFiT",
        "recurrent",
        True,
        4.6,
        "howard2018universal",
        "Table 2",
        "howard2018universal",
        note="AWD-LSTM pretrained as a language model on Wikitext-103",
    ),
    _imdb(
        "BERT-base + ITPT",
        "self-attention",
        True,
        4.37,
        "sun2019fine",
        "IMDb results, BERT-ITPT-FiT row",
        "devlin2019bert",
        note="BERT further pretrained on in-domain text, then fine-tuned",
    ),
    _imdb(
        "BERT-large + ITPT",
        "self-attention",
        True,
        4.21,
        "sun2019fine",
        "IMDb results, BERT-ITPT-FiT row",
        "devlin2019bert",
        note="BERT further pretrained on in-domain text, then fine-tuned",
    ),
    _imdb(
        "XLNet-large",
        "self-attention",
        True,
        3.79,
        "yang2019xlnet",
        "text-classification error table, first arXiv version (June 2019)",
        "yang2019xlnet",
        note="the IMDB error differs between versions of the paper; cite the version you read",
    ),
)
"""Every published number the book quotes, one :class:`PublishedResult` each."""

PAPER_MODEL_SIZES: tuple[PaperModelSize, ...] = (
    PaperModelSize(
        "Transformer (base)",
        65,
        6,
        512,
        2048,
        8,
        37000,
        "vaswani2017attention",
        "Table 3; vocabulary: section 5.1 ('about 37000 tokens', En-De)",
    ),
    PaperModelSize(
        "Transformer (big)",
        213,
        6,
        1024,
        4096,
        16,
        37000,
        "vaswani2017attention",
        "Table 3; vocabulary: section 5.1 ('about 37000 tokens', En-De)",
    ),
    PaperModelSize(
        "BERT-base",
        110,
        12,
        768,
        3072,
        12,
        30522,
        "devlin2019bert",
        "Section 3 (vocabulary: the released WordPiece vocabulary)",
    ),
    PaperModelSize(
        "BERT-large",
        340,
        24,
        1024,
        4096,
        16,
        30522,
        "devlin2019bert",
        "Section 3 (vocabulary: the released WordPiece vocabulary)",
    ),
)
"""Parameter counts printed in papers, with their configurations."""


def results(
    *,
    task: str | None = None,
    dataset: str | None = None,
    metric: str | None = None,
    split: str | None = None,
    rows: Iterable[PublishedResult] | None = None,
) -> list[PublishedResult]:
    """The rows of ``RESULTS`` (or of ``rows``) that match every filter given, in order.

    Example: ``results(dataset="WMT14 En-De")`` gives Table 2's English-German column.
    """
    for name, value, choices in (("metric", metric, METRICS), ("split", split, SPLITS)):
        if value is not None:
            _check_choice(value, name, choices)
    out = []
    for r in RESULTS if rows is None else rows:
        if not isinstance(r, PublishedResult):
            raise TypeError(f"rows must hold PublishedResult objects, got {type(r).__name__}.")
        if task is not None and r.task != task:
            continue
        if dataset is not None and r.dataset != dataset:
            continue
        if metric is not None and r.metric != metric:
            continue
        if split is not None and r.split != split:
            continue
        out.append(r)
    return out


_FIELDS = tuple(f.name for f in fields(PublishedResult))


def table(
    rows: Iterable[PublishedResult],
    columns: Sequence[str] = ("model", "family", "pretrained", "metric", "value", "citation"),
) -> list[tuple]:
    """Rows as plain tuples of the requested ``columns`` (field names), header first.

    ``table(results(dataset="IMDB"))[0]`` is the header ``("model", "family", ...)``.
    """
    columns = tuple(columns)
    unknown = [c for c in columns if c not in _FIELDS]
    if unknown or not columns:
        raise ValueError(
            f"columns must be a non-empty sequence of field names of PublishedResult "
            f"({', '.join(_FIELDS)}); unknown: {unknown}."
        )
    index = [_FIELDS.index(c) for c in columns]
    out: list[tuple] = [columns]
    for r in rows:
        values = astuple(r)
        out.append(tuple(values[i] for i in index))
    return out


def citation_keys(rows: Iterable[PublishedResult] | None = None) -> set[str]:
    """Every BibTeX key used by ``rows`` (default: all of ``RESULTS`` and the model sizes)."""
    keys: set[str] = set()
    for r in RESULTS if rows is None else rows:
        keys.add(r.citation)
        if r.system_citation is not None:
            keys.add(r.system_citation)
    if rows is None:
        keys.update(s.citation for s in PAPER_MODEL_SIZES)
    return keys


def paper_transformer(size: PaperModelSize, *, share_source: bool = True) -> torch.nn.Module:
    """The encoder-decoder of Vaswani et al. (2017) at a Table 3 size, on the meta device.

    An :class:`attnkit.Seq2SeqTransformer` with the paper's post-LN layers (no final
    LayerNorm), ``size``'s layer sizes and vocabulary, and the output projection tied to
    the target embedding (section 3.4). With ``share_source`` the source embedding is the
    same matrix as well (one byte-pair vocabulary for both languages, section 5.1). Built
    on the ``meta`` device: shapes and parameter counts without memory or compute.
    """
    from .transformer import Seq2SeqTransformer

    if not isinstance(size, PaperModelSize):
        raise TypeError(f"size must be a PaperModelSize, got {type(size).__name__}.")
    with torch.device("meta"):
        model = Seq2SeqTransformer(
            size.vocab_size,
            size.vocab_size,
            d_model=size.d_model,
            num_heads=size.num_heads,
            num_encoder_layers=size.num_layers,
            num_decoder_layers=size.num_layers,
            d_ff=size.d_ff,
            norm_first=False,  # the paper's post-LN layers
            tie_target_embeddings=True,  # output projection = target embedding
        )
    if share_source:
        model.src_embed.weight = model.tgt_embed.weight  # one matrix for both languages
    return model


def training_flops_from_gpu_time(hours: float, num_gpus: int, tflops: float) -> float:
    """Training cost as Vaswani et al. (2017) estimate it: time x GPUs x sustained FLOP/s.

    ``hours`` of wall-clock training on ``num_gpus`` GPUs, each assumed to sustain
    ``tflops`` x 10^12 floating-point operations per second. For the base Transformer,
    ``training_flops_from_gpu_time(12, 8, P100_TFLOPS)`` is about ``3.3e18`` (Table 2).
    """
    hours = _check_real(hours, "hours")
    tflops = _check_real(tflops, "tflops")
    if hours <= 0 or tflops <= 0:
        raise ValueError(f"hours and tflops must be positive, got {hours} and {tflops}.")
    if isinstance(num_gpus, bool) or not isinstance(num_gpus, int) or num_gpus <= 0:
        raise ValueError(f"num_gpus must be a positive int, got {num_gpus!r}.")
    return hours * 3600.0 * num_gpus * tflops * 1e12

"""Evaluation metrics of the applications chapter: SQuAD EM/F1, ROUGE and BLEU.

* SQuAD v1.1 exact match and token F1 (Rajpurkar et al., 2016), written to agree with
  the official ``evaluate-v1.1.py`` script: answers are normalised (lower-case, punctuation
  removed, the articles *a*, *an*, *the* dropped, whitespace collapsed), EM compares the
  normalised strings, F1 is the harmonic mean of precision and recall of the bag of
  normalised tokens, and each question takes the best score over its reference answers.
  As in the v1.1 script (unlike the v2.0 one), an F1 with no token in common is 0, even
  when both answers normalise to the empty string.
* ROUGE-1/2/L F-measure (Lin, 2004) via the ``rouge-score`` package (Porter
  stemming on, as usual for CNN/Daily Mail), averaged over a corpus.
* Corpus BLEU (Papineni et al., 2002) via ``sacrebleu`` (Post, 2018), which
  also returns the signature that makes the number reproducible.

The ROUGE and BLEU functions are thin wrappers: the scoring itself is the packages'.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Sequence

from ._validate import check_bool, check_choice, check_str, check_str_list

__all__ = [
    "bleu",
    "exact_match",
    "max_over_ground_truths",
    "normalize_answer",
    "rouge",
    "squad_scores",
    "token_f1",
]

_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def _check_str(x: object, name: str) -> str:
    if not isinstance(x, str):
        raise TypeError(f"{name} must be a str, got {type(x).__name__}.")
    return x


def normalize_answer(s: str) -> str:
    """Normalise an answer as SQuAD v1.1 does.

    Lower-case, remove every ASCII punctuation character (``string.punctuation``), replace
    the whole words ``a``, ``an``, ``the`` by a space, then collapse runs of whitespace to
    one space and strip the ends. The order (lower, punctuation, articles, whitespace) is
    the script's: ``"The"`` is an article only after lower-casing.

    >>> normalize_answer("  The  Garden! ")
    'garden'
    """
    s = _check_str(s, "s").lower()
    s = "".join(ch for ch in s if ch not in _PUNCTUATION)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def exact_match(prediction: str, ground_truth: str) -> bool:
    """True when the two answers are equal after :func:`normalize_answer`."""
    return normalize_answer(_check_str(prediction, "prediction")) == normalize_answer(
        _check_str(ground_truth, "ground_truth")
    )


def token_f1(prediction: str, ground_truth: str) -> float:
    """SQuAD token F1 between a predicted and a reference answer, in ``[0, 1]``.

    Both answers are normalised and split on whitespace; the overlap is the size of the
    multiset intersection of the two bags of tokens (a token counts as many times as it
    occurs in both). With ``p = overlap / len(pred)`` and ``r = overlap / len(truth)``,
    F1 is ``2 p r / (p + r)``. No common token gives 0.0 (also when both are empty, as in
    the v1.1 script).
    """
    pred_tokens = normalize_answer(_check_str(prediction, "prediction")).split()
    truth_tokens = normalize_answer(_check_str(ground_truth, "ground_truth")).split()
    common = Counter(pred_tokens) & Counter(truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_tokens)
    recall = num_same / len(truth_tokens)
    return 2 * precision * recall / (precision + recall)


def max_over_ground_truths(
    metric: Callable[[str, str], float], prediction: str, ground_truths: Sequence[str]
) -> float:
    """Best score of ``prediction`` against any of the reference answers.

    SQuAD gives several crowd-sourced answers per question; a prediction is as good as
    its best match. ``ground_truths`` must hold at least one string.
    """
    if isinstance(ground_truths, str) or not isinstance(ground_truths, Sequence):
        raise TypeError(
            "ground_truths must be a sequence of str (a list of reference answers), "
            f"got {type(ground_truths).__name__}."
        )
    if len(ground_truths) == 0:
        raise ValueError("ground_truths must hold at least one reference answer, got none.")
    if not callable(metric):
        raise TypeError(f"metric must be a function (prediction, truth) -> float, got {metric!r}.")
    check_str(prediction, "prediction")
    check_str_list(ground_truths, "ground_truths")
    return max(float(metric(prediction, gt)) for gt in ground_truths)


def _check_references(references: object) -> list[list[str]]:
    """``references``: a list whose items are a str or a non-empty list of str."""
    if isinstance(references, str) or not isinstance(references, Sequence):
        raise TypeError(
            f"references must be a list (one item per prediction: a str or a list of str), "
            f"got {type(references).__name__}"
            + (f"; wrap one string as [{references!r}]." if isinstance(references, str) else ".")
        )
    out = []
    for i, r in enumerate(references):
        refs = [r] if isinstance(r, str) else r
        if not isinstance(refs, Sequence) or not refs:
            raise TypeError(f"references[{i}] must be a str or a non-empty list of str, got {r!r}.")
        out.append(check_str_list(refs, f"references[{i}]"))
    return out


def _check_pairs(predictions: Sequence, references: Sequence, item: str, pairing: str) -> None:
    """Predictions and references pair up one to one, and there is at least one ``item``."""
    check_str_list(predictions, "predictions")
    if isinstance(references, str) or not isinstance(references, Sequence):
        _check_references(references)  # raises, naming references
    if len(predictions) != len(references):
        raise ValueError(
            f"predictions and references must have the same length ({pairing}), "
            f"got {len(predictions)} and {len(references)}."
        )
    if len(predictions) == 0:
        raise ValueError(f"predictions must hold at least one {item}, got none.")


def squad_scores(
    predictions: Sequence[str], references: Sequence[str | Sequence[str]]
) -> dict[str, float]:
    """SQuAD v1.1 ``{"exact_match": ..., "f1": ...}`` in percent, averaged over questions.

    ``predictions[i]`` is the answer string for question ``i``; ``references[i]`` is its
    reference answer or a list of reference answers (best one counts). Both sequences
    must have the same, non-zero length.

    Raises:
        TypeError: if ``predictions`` is not a list of str (a bare str is refused: it
            would be read as one prediction per character), or ``references`` not a list
            of str / lists of str.
        ValueError: if the lengths differ or are zero.
    """
    _check_pairs(predictions, references, "answer", "one per question")
    em = f1 = 0.0
    for pred, refs in zip(predictions, _check_references(references), strict=True):
        em += max_over_ground_truths(exact_match, pred, refs)
        f1 += max_over_ground_truths(token_f1, pred, refs)
    n = len(predictions)
    return {"exact_match": 100.0 * em / n, "f1": 100.0 * f1 / n}


def rouge(
    predictions: Sequence[str],
    references: Sequence[str],
    rouge_types: Sequence[str] = ("rouge1", "rouge2", "rougeL"),
    use_stemmer: bool = True,
) -> dict[str, float]:
    """Corpus ROUGE F-measure in percent, the mean over pairs of ``rouge_score``'s scores.

    A thin wrapper around ``rouge_score.rouge_scorer.RougeScorer`` (Porter stemmer on by
    default). Returns ``{rouge_type: mean F-measure * 100}``. ``rougeL`` is the sentence-
    level LCS; pass ``"rougeLsum"`` for the newline-split summary-level variant.

    Raises:
        TypeError: if ``predictions``, ``references`` or ``rouge_types`` is not a list of
            str (a bare str is refused), or ``use_stemmer`` not a bool.
        ValueError: if the lengths differ or are zero, or a ROUGE type is unknown.
    """
    from rouge_score import rouge_scorer

    _check_pairs(predictions, references, "summary", "one reference per summary")
    check_str_list(references, "references")
    rouge_types = check_str_list(rouge_types, "rouge_types")
    known = (
        "rouge1",
        "rouge2",
        "rouge3",
        "rouge4",
        "rouge5",
        "rouge6",
        "rouge7",
        "rouge8",
        "rouge9",
        "rougeL",
        "rougeLsum",
    )
    for t in rouge_types:
        check_choice(t, "rouge_types[i]", known)
    use_stemmer = check_bool(use_stemmer, "use_stemmer")
    scorer = rouge_scorer.RougeScorer(list(rouge_types), use_stemmer=use_stemmer)
    totals = dict.fromkeys(rouge_types, 0.0)
    for pred, ref in zip(predictions, references, strict=True):
        scores = scorer.score(_check_str(ref, "references[i]"), _check_str(pred, "predictions[i]"))
        for t in rouge_types:
            totals[t] += scores[t].fmeasure
    return {t: 100.0 * v / len(predictions) for t, v in totals.items()}


def bleu(
    predictions: Sequence[str], references: Sequence[str | Sequence[str]]
) -> tuple[float, str]:
    """Corpus BLEU (0..100) and its sacrebleu signature, e.g. ``nrefs:1|case:mixed|...``.

    ``references[i]`` is one reference string or a list of them (all items must have the
    same number of references, as sacrebleu requires). Default sacrebleu settings
    (13a tokenizer, exponential smoothing) are used; the signature records them.

    Raises:
        TypeError: if ``predictions`` is not a list of str (a bare str is refused) or
            ``references`` not a list of str / lists of str.
        ValueError: if the lengths differ or are zero, or the items of ``references``
            hold different numbers of references.
    """
    import sacrebleu

    _check_pairs(predictions, references, "sentence", "one item of references per sentence")
    refs = _check_references(references)
    n_refs = {len(r) for r in refs}
    if len(n_refs) != 1:
        raise ValueError(
            f"every item of references must have the same number of references, got {n_refs}."
        )
    streams = [[r[j] for r in refs] for j in range(n_refs.pop())]
    metric = sacrebleu.BLEU()
    result = metric.corpus_score(list(predictions), streams)
    return float(result.score), str(metric.get_signature())

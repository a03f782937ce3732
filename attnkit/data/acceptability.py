"""A sentence-acceptability task made from the standard library's docstrings.

In the spirit of CoLA (Warstadt et al., 2019), a binary classification task that needs
knowledge of English word order and usage, generated here so that nothing is downloaded:

* label 1 (acceptable): a real sentence of a docstring;
* label 0 (unacceptable): another real sentence, corrupted, either by **shuffling** its
  words (the bag of words is unchanged, only the order is wrong) or by **replacing** a
  third of its words by different words drawn from the word frequencies of the sentence
  pool (so "the" is a likely replacement).

Only alphabetic words are moved or replaced, never punctuation or numbers, and every example is
written the same way, lower-cased words of :func:`~attnkit.data.words.split_words` joined by
single spaces, so that neither capitals nor spacing give the label away. Some corruptions
can still read as acceptable (a shuffle that only exchanges "a" and "the", replacements
of "list" by "set"): the labels are a little noisy and no classifier can reach 100%.

:func:`acceptability_task` splits **by source**: docstrings are assigned to pretraining or
to fine-tuning by a hash of their text, fine-tuning sentences are drawn only from the
fine-tuning docstrings, and a sentence whose words also occur, in the same order, anywhere
in the pretraining docstrings is dropped. Train, validation and test sets are disjoint
sets of distinct sentences.
"""

from __future__ import annotations

import bisect
import random
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate

from .._validate import (
    check_choice,
    check_instance,
    check_int,
    check_positive_int,
    check_real,
    check_str,
    check_str_list,
)
from .corpus import _stdlib_docstring_list
from .words import split_words

MIN_WORDS, MAX_WORDS = 6, 30
"""A sentence is kept if it has this many words of ``split_words`` (inclusive)."""

CORRUPTIONS = ("shuffle", "replace")
"""The two ways to corrupt a sentence (shuffle its words, or replace some of them)."""

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_PROSE = re.compile(r"^[A-Z][A-Za-z0-9 ,;:'\"()-]*[a-z]\.$")
_PARAGRAPH = re.compile(r"\n\s*\n")


@dataclass(frozen=True)
class AcceptabilityExample:
    """One example. ``text``: lower-cased words joined by spaces; ``label``: 1 = a real
    sentence, 0 = corrupted; ``corruption``: ``"none"``, ``"shuffle"`` or ``"replace"``;
    ``source``: the real sentence (normalised the same way) it was made from."""

    text: str
    label: int
    corruption: str
    source: str


@dataclass(frozen=True)
class AcceptabilityTask:
    """What :func:`acceptability_task` returns: the pretraining docstrings and three
    disjoint labelled splits (tuples of :class:`AcceptabilityExample`)."""

    pretrain_texts: tuple[str, ...]
    train: tuple[AcceptabilityExample, ...]
    val: tuple[AcceptabilityExample, ...]
    test: tuple[AcceptabilityExample, ...]


def extract_sentences(text: str) -> list[str]:
    """The prose sentences of a docstring, in order.

    Paragraphs (separated by blank lines) with an indented line or a ``>>>`` line (code,
    lists, examples) are skipped; the lines of the others are joined with spaces and cut
    after ``.``, ``!`` or ``?`` followed by a space and a capital letter. A sentence is kept
    if it starts with a capital letter, ends with a lower-case letter and a full stop,
    holds only letters, digits, spaces and ``, ; : ' " ( ) -``, and has ``MIN_WORDS`` to
    ``MAX_WORDS`` words.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}.")
    sentences = []
    for paragraph in _PARAGRAPH.split(text):
        lines = paragraph.split("\n")
        if any(line.startswith((" ", "\t", ">>>")) for line in lines):
            continue
        joined = " ".join(line.strip() for line in lines)
        for sentence in _SENTENCE_END.split(joined):
            if _PROSE.match(sentence) and MIN_WORDS <= len(split_words(sentence)) <= MAX_WORDS:
                sentences.append(sentence)
    return sentences


def normalise(sentence: str) -> str:
    """The words of ``split_words(sentence)`` joined by single spaces."""
    check_str(sentence, "sentence")
    return " ".join(split_words(sentence))


class _WordSampler:
    """Draws alphabetic words with their frequencies in a pool of sentences."""

    def __init__(self, sentences: Iterable[str]) -> None:
        counts: dict[str, int] = {}
        for s in sentences:
            for w in s.split():
                if w.isalpha():
                    counts[w] = counts.get(w, 0) + 1
        self.words = sorted(counts)
        self.cumulative = list(accumulate(counts[w] for w in self.words))

    def draw(self, rng: random.Random) -> str:
        r = rng.randrange(self.cumulative[-1])
        return self.words[bisect.bisect_right(self.cumulative, r)]


def corrupt(sentence: str, kind: str, rng: random.Random, sampler: _WordSampler) -> str | None:
    """``sentence`` (normalised) with one corruption, or ``None`` if impossible.

    * ``"shuffle"``: the alphabetic words are put in a random order (punctuation, digits and
      the bag of words stay); ``None`` if fewer than two different alphabetic words.
    * ``"replace"``: a third of the alphabetic words (at least one), at random positions,
      are replaced by different words drawn from ``sampler``; ``None`` if no
      alphabetic word.
    """
    check_str(sentence, "sentence")
    check_choice(kind, "kind", CORRUPTIONS)
    check_instance(rng, "rng", random.Random, "a random.Random")
    check_instance(sampler, "sampler", _WordSampler, "a word sampler of label_examples")
    words = sentence.split()
    alpha = [i for i, w in enumerate(words) if w.isalpha()]
    if kind == "shuffle":
        originals = [words[i] for i in alpha]
        if len(set(originals)) < 2:
            return None
        order = originals[:]
        while order == originals:
            rng.shuffle(order)
        for i, w in zip(alpha, order):
            words[i] = w
    elif kind == "replace":
        if not alpha:
            return None
        for i in rng.sample(alpha, max(1, len(alpha) // 3)):
            new = sampler.draw(rng)
            while new == words[i]:
                new = sampler.draw(rng)
            words[i] = new
    else:
        raise ValueError(f"kind must be one of {CORRUPTIONS}, got {kind!r}.")
    return " ".join(words)


def label_examples(sentences: Sequence[str], seed: int = 0) -> list[AcceptabilityExample]:
    """Alternate real and corrupted examples: ``sentences[0]`` stays real, ``sentences[1]``
    is corrupted, and so on (so every even-length prefix is balanced). Each corruption is
    ``"shuffle"`` or ``"replace"`` with probability 1/2, drawn with ``random.Random(seed)``;
    replacement words follow the word frequencies of ``sentences``. ``sentences`` must be
    normalised (see :func:`normalise`)."""
    sentences = check_str_list(sentences, "sentences")
    rng = random.Random(check_int(seed, "seed"))
    sampler = _WordSampler(sentences)
    examples = []
    for i, s in enumerate(sentences):
        if i % 2 == 0:
            examples.append(AcceptabilityExample(s, 1, "none", s))
            continue
        kind = rng.choice(CORRUPTIONS)
        bad = corrupt(s, kind, rng, sampler)
        if bad is None:  # e.g. all words equal: the other corruption always works
            kind = "replace"
            bad = corrupt(s, kind, rng, sampler)
        assert bad is not None
        examples.append(AcceptabilityExample(bad, 0, kind, s))
    return examples


def is_finetune_docstring(text: str, finetune_fraction: float) -> bool:
    """Whether a docstring goes to fine-tuning: ``crc32(text) mod 10_000`` falls below
    ``finetune_fraction * 10_000`` (deterministic, independent of order and of Python's
    string hashing)."""
    check_str(text, "text")
    check_real(finetune_fraction, "finetune_fraction", low=0.0, high=1.0, what="a number in [0, 1]")
    return zlib.crc32(text.encode("utf-8")) % 10_000 < round(finetune_fraction * 10_000)


def acceptability_task(
    docstrings: Sequence[str] | None = None,
    *,
    finetune_fraction: float = 0.4,
    n_val: int = 300,
    n_test: int = 800,
    seed: int = 0,
) -> AcceptabilityTask:
    """Pretraining texts and the acceptability splits, all from the same docstrings.

    1. Each docstring goes to fine-tuning if :func:`is_finetune_docstring`, else to
       pretraining (``pretrain_texts``, in the original order).
    2. The fine-tuning sentences are those of :func:`extract_sentences`, normalised,
       without duplicates, and without any that occurs as a contiguous run of words inside
       a normalised pretraining docstring (so pretraining never sees a test sentence).
    3. They are sorted, shuffled with ``random.Random(seed)`` and cut into test
       (``n_test``), validation (``n_val``) and train (the rest), each labelled with
       :func:`label_examples` (seeds ``seed``, ``seed + 1``, ``seed + 2``), so each
       split is balanced and the first ``2k`` training examples are too.

    Args:
        docstrings: the texts; default the standard library's docstrings, one per
            module, class or function (as :func:`~attnkit.data.corpus.stdlib_docstrings` joins).
        finetune_fraction: share of the docstrings used for fine-tuning, in (0, 1).
        n_val, n_test: sizes of the validation and test sets.
        seed: seed of the shuffle and of the corruptions.

    On CPython 3.11.7 with the defaults: 3,447 pretraining docstrings (205,671 words of
    ``split_words``) and 2,509 fine-tuning sentences: 1,409 train, 300 validation, 800 test
    (about 5 s, mostly reading the docstrings).
    """
    if docstrings is None:
        docstrings = _stdlib_docstring_list()
    if isinstance(docstrings, str):
        raise TypeError("docstrings must be a sequence of texts, got a single str.")
    if not isinstance(finetune_fraction, float) or not 0.0 < finetune_fraction < 1.0:
        raise ValueError(f"finetune_fraction must be a float in (0, 1), got {finetune_fraction!r}.")
    n_val = check_positive_int(n_val, "n_val")
    n_test = check_positive_int(n_test, "n_test")
    seed = check_positive_int(seed, "seed", allow_zero=True)

    pretrain, finetune = [], []
    for i, doc in enumerate(docstrings):
        if not isinstance(doc, str):
            raise TypeError(f"docstrings[{i}] must be a str, got {type(doc).__name__}.")
        (finetune if is_finetune_docstring(doc, finetune_fraction) else pretrain).append(doc)

    seen = "\n".join(f" {normalise(doc)} " for doc in pretrain)
    sentences = {normalise(s) for doc in finetune for s in extract_sentences(doc)}
    sentences = sorted(s for s in sentences if f" {s} " not in seen)
    random.Random(seed).shuffle(sentences)
    if n_val + n_test >= len(sentences):
        raise ValueError(
            f"only {len(sentences)} fine-tuning sentences: n_val + n_test = {n_val + n_test} "
            f"leaves none for training."
        )
    test, val, train = (
        sentences[:n_test],
        sentences[n_test : n_test + n_val],
        sentences[n_test + n_val :],
    )
    return AcceptabilityTask(
        pretrain_texts=tuple(pretrain),
        train=tuple(label_examples(train, seed + 2)),
        val=tuple(label_examples(val, seed + 1)),
        test=tuple(label_examples(test, seed)),
    )


__all__ = [
    "CORRUPTIONS",
    "MAX_WORDS",
    "MIN_WORDS",
    "AcceptabilityExample",
    "AcceptabilityTask",
    "acceptability_task",
    "corrupt",
    "extract_sentences",
    "is_finetune_docstring",
    "label_examples",
    "normalise",
]

"""Synthetic movie-review sentences whose sentiment depends on negation and word order.

A binary sentiment task (label 1 = positive, 0 = negative) in the spirit of SST
(Socher et al., 2013), generated here so that nothing is downloaded, and built so that
**which words decide the label is known exactly**: every example carries the positions of
its deciding tokens, the ground truth that the interpretability chapter compares
attributions with.

Grammar (``[x]`` = optional, ``|`` = choice; every choice is uniform unless stated)::

    sentence  := single | but | although_first | although_second
                 (probabilities 0.5, 0.2, 0.15, 0.15)
    single    := [opener ","] clause [tail]
    but       := [opener ","] clause1 "but" clause [tail]
    although_first  := "although" clause "," clause [tail]      # main clause is 2nd
    although_second := clause "," "although" clause [tail]      # main clause is 1st
    clause    := subject [aside] "was" negated | subject [aside] "was" plain
    negated   := negation [softener] adjective                   (probability 0.3)
    plain     := [intensifier] adjective
    clause1   := clause | "i expected" subject "to be" [intensifier] adjective
                 (the expectation form with probability 0.3; it is never negated)
    negation  := "not" | "never"
    softener  := "really" | "that" | "particularly" | "at all" | "even" | "in any way"
    intensifier := "very" | "quite" | "truly" | "rather" | "so" | "extremely"
    adjective := POSITIVE | NEGATIVE  (10 words each, see the constants below)
    subject, opener, aside, tail: neutral phrases (see the constants below); ``aside`` is
                 a comma-delimited relative clause that puts words between the subject
                 and its adjective (probability 0.3), ``opener`` (probability 0.3) and
                 ``tail`` (probability 0.3; the tail "at all" is only used after a negated
                 last clause) put words around the cues.

Labelling rules:

1. A clause's polarity is its adjective's polarity, flipped if the clause is negated.
2. ``single``: the label is the clause's polarity.
3. ``but``: the clause **after** "but" decides (``clause1`` is what was expected or
   conceded).
4. ``although``: the clause **not** introduced by "although" (the main clause) decides,
   whether the subordinate clause comes first or second.
5. In the three contrast forms the two clauses always have **opposite** polarities, so
   the label cannot be read off the adjectives alone: it takes the clause structure.

The deciding tokens (``SentimentExample.decisive``) are the adjective of the deciding
clause, its negation word when it is negated, and the contrast word ("but" / "although")
in the contrast forms. Positions index ``split_words(text)`` (0-based); after
:meth:`~attnkit.data.words.WordTokenizer.batch_encode`, which prepends ``[CLS]``, add 1
(:func:`encode_sentiment` does this and returns the bool mask of deciding tokens).

A bag-of-words model sees the same words for "although A was good , B was bad" and "A was
good , although B was bad", and cannot express "``not`` flips the next adjective" with a
linear score: it is measurably worse than an order-aware model, but far above chance on
``single`` sentences.

Splits (:func:`sentiment_task`): every text is unique across train, validation and test.
Generalisation is probed with **held-out combinations**: a sentence's *combination* is
(form, adjective of clause 1, adjective of clause 2 or ``-``, negation of each clause);
a fixed fifth of combinations, chosen by a CRC-32 hash of the combination, never occurs
in train or validation. The test set takes every held-out draw and a random fifth of the
other draws until it is full, so about 55% of it is held out (``SentimentExample.heldout``
marks them) and the rest is in-distribution. Every word of the vocabulary still occurs in
training. A held-out combination can be demanding: ``("single", "great", "-", False,
False)`` is held out while ``("single", "great", "-", True, False)`` is not, so training
shows "great" in single-clause sentences only negated ("was not great"), and a bag-of-words
model learns "great" as a negative word (an order-aware model learns the negation rule).
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass

import torch

from .._validate import check_instance, check_int, check_positive_int
from .words import WordTokenizer, split_words

POSITIVE = (
    "good",
    "great",
    "brilliant",
    "wonderful",
    "excellent",
    "superb",
    "charming",
    "delightful",
    "moving",
    "enjoyable",
)
"""The positive adjectives."""
NEGATIVE = (
    "bad",
    "awful",
    "dull",
    "boring",
    "terrible",
    "weak",
    "poor",
    "clumsy",
    "tedious",
    "dreadful",
)
"""The negative adjectives."""
SUBJECTS = (
    "the film",
    "the movie",
    "the plot",
    "the acting",
    "the story",
    "the music",
    "the ending",
    "the script",
    "the cast",
    "the dialogue",
)
NEGATIONS = ("not", "never")
SOFTENERS = ("really", "that", "particularly", "at all", "even", "in any way")
INTENSIFIERS = ("very", "quite", "truly", "rather", "so", "extremely")
OPENERS = (
    "to be honest",
    "all in all",
    "after a long week",
    "if you ask me",
    "having read the book first",
    "on a quiet friday night",
)
ASIDES = (
    ", which i watched on a rainy sunday ,",
    ", as my friend had said ,",
    ", in the version i saw ,",
    ", from what i remember ,",
)
TAILS = ("from start to finish", "for most of its two hours", "in my opinion")
FORMS = ("single", "but", "although_first", "although_second")
"""The four sentence forms of the module's grammar (one clause, or two joined by a contrast)."""
FORM_WEIGHTS = (0.5, 0.2, 0.15, 0.15)
HELDOUT_FRACTION = 5
"""A combination is held out if its CRC-32 is divisible by this (about one in five)."""


@dataclass(frozen=True)
class SentimentExample:
    """One sentence. ``text``: lower-cased words joined by single spaces; ``label``: 1 =
    positive, 0 = negative; ``form``: one of :data:`FORMS`; ``decisive``: positions (in
    ``split_words(text)``) of the deciding tokens; ``heldout``: its combination never
    occurs in train or validation."""

    text: str
    label: int
    form: str
    decisive: tuple[int, ...]
    heldout: bool = False

    @property
    def words(self) -> list[str]:
        """The words of ``text``, ``split_words(text)``."""
        return split_words(self.text)


@dataclass(frozen=True)
class SentimentTask:
    """What :func:`sentiment_task` returns: three disjoint splits and a tokenizer whose
    vocabulary is every word of the grammar (so no ``[UNK]``)."""

    train: tuple[SentimentExample, ...]
    val: tuple[SentimentExample, ...]
    test: tuple[SentimentExample, ...]
    tokenizer: WordTokenizer


@dataclass
class _Clause:
    words: list[str]
    polarity: int  # 1 positive, 0 negative
    adj: int  # index of the adjective in words
    neg: int | None  # index of the negation word, if any
    adjective: str


def _clause(rng: random.Random, polarity: int, *, allow_expect: bool = False) -> _Clause:
    """A clause of the given final polarity (see the module grammar)."""
    subject = rng.choice(SUBJECTS).split()
    if allow_expect and rng.random() < 0.3:
        words = ["i", "expected", *subject, "to", "be"]
        if rng.random() < 0.5:
            words.append(rng.choice(INTENSIFIERS))
        adjective = rng.choice(POSITIVE if polarity else NEGATIVE)
        return _Clause([*words, adjective], polarity, len(words), None, adjective)
    words = list(subject)
    if rng.random() < 0.3:
        words += rng.choice(ASIDES).split()
    words.append("was")
    negated = rng.random() < 0.3
    neg = None
    if negated:
        neg = len(words)
        words.append(rng.choice(NEGATIONS))
        if rng.random() < 0.5:
            words += rng.choice(SOFTENERS).split()
    elif rng.random() < 0.5:
        words.append(rng.choice(INTENSIFIERS))
    adj_polarity = polarity ^ int(negated)
    adjective = rng.choice(POSITIVE if adj_polarity else NEGATIVE)
    return _Clause([*words, adjective], polarity, len(words), neg, adjective)


def _decisive(clause: _Clause, offset: int) -> list[int]:
    out = [offset + clause.adj]
    if clause.neg is not None:
        out.append(offset + clause.neg)
    return out


def _sentence(rng: random.Random) -> tuple[SentimentExample, tuple]:
    """One example and its combination key."""
    form = rng.choices(FORMS, FORM_WEIGHTS)[0]
    label = rng.randrange(2)
    words: list[str] = []
    if form in ("single", "but") and rng.random() < 0.3:
        words += [*rng.choice(OPENERS).split(), ","]
    if form == "single":
        c = _clause(rng, label)
        decisive = _decisive(c, len(words))
        words += c.words
        key: tuple = (form, c.adjective, "-", c.neg is not None, False)
        last = c
    else:
        main = _clause(rng, label)
        other = _clause(rng, 1 - label, allow_expect=form == "but")
        if form == "but":
            words += other.words
            contrast = len(words)
            words.append("but")
            decisive = [contrast, *_decisive(main, len(words))]
            words += main.words
            first, second = other, main
        elif form == "although_first":
            words.append("although")
            words += other.words
            words.append(",")
            decisive = [0, *_decisive(main, len(words))]
            words += main.words
            first, second = other, main
        else:
            decisive = _decisive(main, 0)
            words += main.words
            words.append(",")
            decisive.append(len(words))
            words.append("although")
            words += other.words
            first, second = main, other
        key = (
            form,
            first.adjective,
            second.adjective,
            first.neg is not None,
            second.neg is not None,
        )
        last = second
    if rng.random() < 0.3:
        if last.neg is not None and rng.random() < 0.5:
            words += ["at", "all"]
        else:
            words += rng.choice(TAILS).split()
    text = " ".join(words)
    example = SentimentExample(text, label, form, tuple(sorted(decisive)))
    return example, key


def _is_heldout(key: tuple) -> bool:
    return zlib.crc32(repr(key).encode()) % HELDOUT_FRACTION == 0


def grammar_words() -> list[str]:
    """Every word the grammar can produce, in a fixed order (first use in the constants)."""
    phrases = [
        *POSITIVE,
        *NEGATIVE,
        *SUBJECTS,
        *NEGATIONS,
        *SOFTENERS,
        *INTENSIFIERS,
        *OPENERS,
        *ASIDES,
        *TAILS,
        "i expected to be was but although at all ,",
    ]
    words: list[str] = []
    for phrase in phrases:
        for w in split_words(phrase):
            if w not in words:
                words.append(w)
    return words


def make_sentiment_examples(n: int, seed: int = 0) -> list[SentimentExample]:
    """``n`` distinct examples drawn from the grammar with ``random.Random(seed)``.

    Each example's ``heldout`` flag says whether its combination is a held-out one.
    """
    n = check_positive_int(n, "n")
    rng = random.Random(check_int(seed, "seed"))
    seen: set[str] = set()
    out: list[SentimentExample] = []
    for _ in range(50 * n):
        ex, key = _sentence(rng)
        if ex.text in seen:
            continue
        seen.add(ex.text)
        out.append(SentimentExample(ex.text, ex.label, ex.form, ex.decisive, _is_heldout(key)))
        if len(out) == n:
            return out
    raise RuntimeError(f"could only draw {len(out)} distinct sentences, asked for {n}.")


def sentiment_task(
    n_train: int = 4000, n_val: int = 500, n_test: int = 1000, seed: int = 0
) -> SentimentTask:
    """Disjoint train / validation / test splits of distinct sentences (see the module).

    Train and validation hold only combinations that are not held out; the test set
    takes every held-out draw and a fifth of the others, so about 55% of it
    (``heldout=True``) probes word combinations never seen in training. Same arguments,
    same splits.
    """
    n_train = check_positive_int(n_train, "n_train")
    n_val = check_positive_int(n_val, "n_val")
    n_test = check_positive_int(n_test, "n_test")
    rng = random.Random(check_int(seed, "seed"))
    seen: set[str] = set()
    train: list[SentimentExample] = []
    val: list[SentimentExample] = []
    test: list[SentimentExample] = []
    for _ in range(50 * (n_train + n_val + n_test)):
        if len(train) == n_train and len(val) == n_val and len(test) == n_test:
            break
        ex, key = _sentence(rng)
        if ex.text in seen:
            continue
        held = _is_heldout(key)
        ex = SentimentExample(ex.text, ex.label, ex.form, ex.decisive, held)
        if len(test) < n_test and (held or rng.random() < 0.2):
            test.append(ex)
        elif held:
            continue
        elif len(train) < n_train:
            train.append(ex)
        elif len(val) < n_val:
            val.append(ex)
        elif len(test) < n_test:
            test.append(ex)
        else:
            continue
        seen.add(ex.text)
    else:
        raise RuntimeError("the grammar could not produce enough distinct sentences.")
    return SentimentTask(tuple(train), tuple(val), tuple(test), WordTokenizer(grammar_words()))


def encode_sentiment(
    examples: list[SentimentExample] | tuple[SentimentExample, ...],
    tokenizer: WordTokenizer,
    max_len: int = 64,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Encode examples as ``[CLS] words [SEP]``, right-padded.

    Returns:
        ``(input_ids, mask, labels, decisive)``: ``LongTensor (B, T)``, bool ``(B, T)``
        (``True`` on real tokens), ``LongTensor (B,)``, and bool ``(B, T)``, ``True`` on the
        deciding tokens (positions shifted by one for ``[CLS]``).
    """
    if not isinstance(examples, (list, tuple)):
        raise TypeError(
            f"examples must be a list of SentimentExample, got {type(examples).__name__}."
        )
    if len(examples) == 0:
        raise ValueError("examples must hold at least one SentimentExample.")
    for i, ex in enumerate(examples):
        check_instance(ex, f"examples[{i}]", SentimentExample)
    if not isinstance(tokenizer, WordTokenizer):
        raise TypeError(f"tokenizer must be a WordTokenizer, got {type(tokenizer).__name__}.")
    max_len = check_positive_int(max_len, "max_len")
    longest = max(len(ex.words) for ex in examples) + 2
    if longest > max_len:
        raise ValueError(f"max_len={max_len} is too short: the longest example needs {longest}.")
    ids, mask = tokenizer.batch_encode([ex.text for ex in examples], max_len)  # (B, T)
    labels = torch.tensor([ex.label for ex in examples], dtype=torch.long)  # (B,)
    decisive = torch.zeros_like(mask)  # (B, T)
    for i, ex in enumerate(examples):
        decisive[i, [p + 1 for p in ex.decisive]] = True
    return ids, mask, labels, decisive


__all__ = [
    "FORMS",
    "NEGATIVE",
    "POSITIVE",
    "SentimentExample",
    "SentimentTask",
    "encode_sentiment",
    "grammar_words",
    "make_sentiment_examples",
    "sentiment_task",
]

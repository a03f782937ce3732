"""Generated news-like documents with a rule-defined reference summary.

A document is five sentences in a random order. One or two of them report an **event**
(``{person} was {verb} in {city} on {day} .`` with ``verb`` one of :data:`EVENT_VERBS`);
the others are **filler** that mention the same kinds of words
(``{person} said the {thing} was {adjective} .``, ``the weather in {city} was
{adjective} .``, ``{person} visited {city} on {day} .``). The reference summary is
defined by a rule:

    for each event sentence, in document order, write ``{person} {verb} {city}``;
    join them with ``;``.

So the summary needs **content selection** (which sentences are events: only the verb
says so; filler mentions people and cities too) and **compression** (drop ``was``,
``in``, the day). Lead-k (the first ``k`` sentences; See et al., 2017) is right only by
luck: the events sit anywhere in the document.

Example::

    the weather in paris was cold . anna said the food was good . tom was injured in
    rome on friday . bob visited oslo on monday . ivan said the film was long .
    -> tom injured rome

Splits: distinct documents (checked by text); deterministic given the seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from .._validate import check_id_list, check_instance, check_int, check_positive_int
from .tokenizer import pad_right

PEOPLE = ("anna", "bob", "tom", "ivan", "lena", "omar", "sara", "paul", "mia", "li")
CITIES = ("paris", "rome", "oslo", "lima", "cairo", "delhi", "tokyo", "berlin")
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday")
EVENT_VERBS = ("arrested", "elected", "injured")
"""The verbs of event sentences; only they mark a sentence as an event."""
THINGS = ("food", "film", "road", "game")
ADJECTIVES = ("good", "long", "cold", "new")

PAD, BOS, EOS = "[PAD]", "[BOS]", "[EOS]"
VOCAB: tuple[str, ...] = (
    PAD,
    BOS,
    EOS,
    *("was", "in", "on", "said", "the", "weather", "visited", ".", ";"),
    *PEOPLE,
    *CITIES,
    *DAYS,
    *EVENT_VERBS,
    *THINGS,
    *ADJECTIVES,
)
"""Every word of documents and summaries (one shared vocabulary); ``PAD`` is id 0."""
WORD_TO_ID = {w: i for i, w in enumerate(VOCAB)}


@dataclass(frozen=True)
class SummaryExample:
    """A document, its sentences, its reference summary and which sentences are events."""

    sentences: tuple[str, ...]
    summary: str
    event_indices: tuple[int, ...]

    @property
    def document(self) -> str:
        """The document as one string, its sentences joined by single spaces."""
        return " ".join(self.sentences)


def _filler(rng: random.Random) -> str:
    kind = rng.randrange(3)
    if kind == 0:
        return f"{rng.choice(PEOPLE)} said the {rng.choice(THINGS)} was {rng.choice(ADJECTIVES)} ."
    if kind == 1:
        return f"the weather in {rng.choice(CITIES)} was {rng.choice(ADJECTIVES)} ."
    return f"{rng.choice(PEOPLE)} visited {rng.choice(CITIES)} on {rng.choice(DAYS)} ."


def make_document(rng: random.Random, num_sentences: int = 5) -> SummaryExample:
    """One document of ``num_sentences >= 3`` sentences with 1 or 2 events at random
    positions, and its reference summary (see the module docstring)."""
    check_instance(rng, "rng", random.Random, "a random.Random")
    num_sentences = check_positive_int(num_sentences, "num_sentences")
    if num_sentences < 3:
        raise ValueError(f"num_sentences must be >= 3, got {num_sentences}.")
    n_events = rng.choice((1, 2))
    positions = sorted(rng.sample(range(num_sentences), n_events))
    sentences, parts = [], []
    for i in range(num_sentences):
        if i in positions:
            p, v, c = rng.choice(PEOPLE), rng.choice(EVENT_VERBS), rng.choice(CITIES)
            sentences.append(f"{p} was {v} in {c} on {rng.choice(DAYS)} .")
            parts.append(f"{p} {v} {c}")
        else:
            sentences.append(_filler(rng))
    return SummaryExample(tuple(sentences), " ; ".join(parts), tuple(positions))


def summary_splits(
    n_train: int = 4000, n_val: int = 300, n_test: int = 500, num_sentences: int = 5, seed: int = 0
) -> dict[str, list[SummaryExample]]:
    """Train, validation and test documents, all distinct. Split ``k`` draws from
    ``random.Random(seed * 1000 + k)``."""
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    for name, n in sizes.items():
        check_positive_int(n, f"n_{name}")
    seed = check_int(seed, "seed")
    seen: set[str] = set()
    out: dict[str, list[SummaryExample]] = {}
    for k, (name, n) in enumerate(sizes.items()):
        rng = random.Random(seed * 1000 + k)
        docs: list[SummaryExample] = []
        while len(docs) < n:
            ex = make_document(rng, num_sentences)
            if ex.document not in seen:
                seen.add(ex.document)
                docs.append(ex)
        out[name] = docs
    return out


def lead_k(ex: SummaryExample, k: int) -> str:
    """The Lead-k baseline: the document's first ``k`` sentences, joined by spaces."""
    check_instance(ex, "ex", SummaryExample)
    k = check_positive_int(k, "k")
    return " ".join(ex.sentences[:k])


def encode_summaries(examples: list[SummaryExample]) -> dict[str, torch.Tensor]:
    """Right-padded id tensors (``PAD`` = 0) for a sequence-to-sequence model.

    Returns ``src`` ``(N, S)`` (the document), ``tgt_in`` ``(N, L)`` (``BOS`` + summary)
    and ``tgt_out`` ``(N, L)`` (summary + ``EOS``), all int64.
    """
    if isinstance(examples, str) or not isinstance(examples, (list, tuple)):
        raise TypeError(
            f"examples must be a list of SummaryExample, got {type(examples).__name__}."
        )
    if not examples:
        raise ValueError("examples must hold at least one SummaryExample, got none.")
    for i, ex in enumerate(examples):
        check_instance(ex, f"examples[{i}]", SummaryExample)
    src = [[WORD_TO_ID[w] for w in ex.document.split()] for ex in examples]
    tgt = [[WORD_TO_ID[w] for w in ex.summary.split()] for ex in examples]
    S, L = max(map(len, src)), max(map(len, tgt)) + 1
    pad = WORD_TO_ID[PAD]
    return {
        "src": pad_right(src, pad, S)[0],  # (N, S)
        "tgt_in": pad_right([[WORD_TO_ID[BOS], *t] for t in tgt], pad, L)[0],  # (N, L)
        "tgt_out": pad_right([[*t, WORD_TO_ID[EOS]] for t in tgt], pad, L)[0],  # (N, L)
    }


def decode_ids(ids: torch.Tensor | list[int]) -> str:
    """Ids -> text, stopping at the first ``EOS`` and skipping ``PAD`` and ``BOS``."""
    words = []
    for i in check_id_list(ids, "ids", len(VOCAB)):
        w = VOCAB[i]
        if w == EOS:
            break
        if w not in (PAD, BOS):
            words.append(w)
    return " ".join(words)

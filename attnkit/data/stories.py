"""Generated stories with span-answer questions: extractive QA in the style of bAbI.

A story is a sequence of short sentences about people, objects and places, in the style
of the bAbI tasks (Weston et al., 2015)::

    mary took the apple . john went to the kitchen . bob went to the garden .
    mary went to the office . bob took the milk .

Each person of the story goes to one place (``{person} went to the {place} .``); each
object is taken by one person (``{person} took the {object} .``), who carries it, before
or after moving; the sentences are shuffled. A question's answer is a **span** of the
story, given as inclusive token positions ``(answer_start, answer_end)`` into ``story``:

* ``where is {person} ?`` -> the ``{place}`` of that person's move (1 supporting fact);
* ``who has the {object} ?`` -> the ``{person}`` of the ``took`` sentence (1 fact);
* ``where is the {object} ?`` -> the ``{place}`` of the carrier's move (2 facts: the
  ``took`` sentence gives the carrier, the carrier's ``went to`` sentence the place).

No leakage. The splits are made of different stories (checked by text). Moreover some
``(person, place)`` pairs are **held out**: the pair ``(PEOPLE[i], PLACES[j])`` with
``(i + 2 * j) % 5 == 0``. No training or validation story contains a held-out pair in a
``went to`` sentence; every test story's question has an answer that rests on one (the
person asked about, or the carrier of the object asked about, ends at a held-out place;
``who has`` questions are not in the test split). A model that memorised which person
tends to be where cannot answer the test set.

Everything is deterministic given the seed: :func:`make_story` draws from a
``random.Random``; :func:`story_splits` seeds one generator per split.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from .._validate import check_bool, check_choice, check_instance, check_int, check_positive_int

PEOPLE = ("john", "mary", "sandra", "daniel", "bob", "alice", "kate", "tom")
PLACES = ("kitchen", "garden", "hallway", "bathroom", "office", "bedroom")
OBJECTS = ("apple", "football", "milk", "book", "key", "ball")

PAD, CLS, SEP = "[PAD]", "[CLS]", "[SEP]"
VOCAB: tuple[str, ...] = (
    PAD,
    CLS,
    SEP,
    *("the", "is", "in", "went", "to", "took", ".", "where", "who", "has", "?"),
    *PEOPLE,
    *PLACES,
    *OBJECTS,
)
"""Every word of the generator; ``VOCAB.index(PAD) == 0``."""
WORD_TO_ID = {w: i for i, w in enumerate(VOCAB)}

QUESTION_TYPES = ("where_person", "who_has", "where_object")
"""The question kinds, in order ``where is {person} ?``, ``who has the {object} ?`` and
``where is the {object} ?``."""


def is_held_out(person: str, place: str) -> bool:
    """True for the ``(person, place)`` pairs that only test stories contain.

    Raises:
        ValueError: if ``person`` is not one of ``PEOPLE`` or ``place`` not one of
            ``PLACES``.
    """
    check_choice(person, "person", PEOPLE)
    check_choice(place, "place", PLACES)
    return (PEOPLE.index(person) + 2 * PLACES.index(place)) % 5 == 0


@dataclass(frozen=True)
class QAExample:
    """One story, one question and its answer span.

    Attributes:
        story: the story's tokens (lower-case words and ``.``).
        question: the question's tokens, ending with ``?``.
        answer_start, answer_end: inclusive token positions of the answer in ``story``.
        qtype: one of :data:`QUESTION_TYPES`.
        hops: number of supporting facts needed (1 or 2).
        supporting: the sentence indices (0-based) of the supporting facts.
    """

    story: tuple[str, ...]
    question: tuple[str, ...]
    answer_start: int
    answer_end: int
    qtype: str
    hops: int
    supporting: tuple[int, ...]

    @property
    def answer(self) -> str:
        """The answer text, ``" ".join(story[answer_start : answer_end + 1])``."""
        return " ".join(self.story[self.answer_start : self.answer_end + 1])

    @property
    def story_text(self) -> str:
        """The story as one string, its tokens joined by single spaces."""
        return " ".join(self.story)


def _sentences_to_tokens(sentences: list[list[str]]) -> tuple[list[str], list[int]]:
    tokens: list[str] = []
    starts = []
    for s in sentences:
        starts.append(len(tokens))
        tokens.extend(s)
    return tokens, starts


def make_story(
    rng: random.Random,
    num_people: int = 3,
    num_objects: int = 1,
    qtype: str | None = None,
    allow_held_out: bool = False,
) -> QAExample:
    """Draw one story and one question about it.

    ``num_people`` distinct people each go to one place (``went to``), and
    ``num_objects`` distinct objects are each taken by a different person (``took``),
    before or after that person's move; the sentences come in a random order, so a
    story has ``num_people + num_objects`` sentences.

    Args:
        rng: the random generator (the only source of randomness).
        num_people: people in the story, ``2 <= num_people <= len(PEOPLE)``.
        num_objects: objects, ``1 <= num_objects <= min(num_people, len(OBJECTS))``.
        qtype: the question type, or ``None`` for a uniform choice of
            :data:`QUESTION_TYPES`.
        allow_held_out: allow held-out ``(person, place)`` pairs in ``went to`` sentences.
    """
    check_instance(rng, "rng", random.Random, "a random.Random")
    allow_held_out = check_bool(allow_held_out, "allow_held_out")
    num_people = check_positive_int(num_people, "num_people")
    num_objects = check_positive_int(num_objects, "num_objects")
    if not 2 <= num_people <= len(PEOPLE):
        raise ValueError(f"num_people must be in [2, {len(PEOPLE)}], got {num_people}.")
    if num_objects > min(num_people, len(OBJECTS)):
        raise ValueError(
            f"num_objects must be <= min(num_people, {len(OBJECTS)}), got {num_objects}."
        )
    if qtype is not None and qtype not in QUESTION_TYPES:
        raise ValueError(f"qtype must be one of {QUESTION_TYPES} or None, got {qtype!r}.")
    people = rng.sample(PEOPLE, num_people)
    place_of = {}
    for p in people:
        places = [pl for pl in PLACES if allow_held_out or not is_held_out(p, pl)]
        place_of[p] = rng.choice(places)
    objects = rng.sample(OBJECTS, num_objects)
    carrier = dict(zip(objects, rng.sample(people, num_objects), strict=True))
    sentences = [[p, "went", "to", "the", place_of[p], "."] for p in people]
    sentences += [[carrier[o], "took", "the", o, "."] for o in objects]
    rng.shuffle(sentences)
    tokens, starts = _sentences_to_tokens(sentences)
    move_of = {s[0]: i for i, s in enumerate(sentences) if s[1] == "went"}
    took_of = {s[3]: i for i, s in enumerate(sentences) if s[1] == "took"}
    choice = qtype or rng.choice(QUESTION_TYPES)
    story = tuple(tokens)
    if choice == "where_person":
        p = rng.choice(people)
        pos = starts[move_of[p]] + 4  # "{p} went to the {place} ."
        return QAExample(story, ("where", "is", p, "?"), pos, pos, choice, 1, (move_of[p],))
    obj = rng.choice(objects)
    i_took = took_of[obj]
    if choice == "who_has":
        pos = starts[i_took]
        return QAExample(story, ("who", "has", "the", obj, "?"), pos, pos, choice, 1, (i_took,))
    i_move = move_of[carrier[obj]]
    pos = starts[i_move] + 4
    return QAExample(
        story,
        ("where", "is", "the", obj, "?"),
        pos,
        pos,
        choice,
        2,
        tuple(sorted((i_took, i_move))),
    )


def answer_rests_on_held_out(ex: QAExample) -> bool:
    """True if the answer is a place reached by a held-out ``(person, place)`` move."""
    check_instance(ex, "ex", QAExample)
    if ex.qtype == "who_has":
        return False
    s = ex.story
    mover_pos = ex.answer_start - 4  # "{person} went to the {place}"
    if mover_pos < 0 or s[mover_pos + 1] != "went":
        return False
    return is_held_out(s[mover_pos], s[ex.answer_end])


def held_out_moves(ex: QAExample) -> list[tuple[str, str]]:
    """The held-out ``(person, place)`` pairs of the story's ``went to`` sentences."""
    check_instance(ex, "ex", QAExample)
    s = ex.story
    return [
        (s[i], s[i + 4])
        for i in range(len(s) - 4)
        if s[i + 1] == "went" and is_held_out(s[i], s[i + 4])
    ]


def story_splits(
    n_train: int = 4000,
    n_val: int = 500,
    n_test: int = 1000,
    num_people: int = 3,
    num_objects: int = 1,
    seed: int = 0,
) -> dict[str, list[QAExample]]:
    """Train, validation and test examples, one question per story.

    Train and validation use no held-out pair; every test question's answer rests on a
    held-out pair (so ``where_person`` and ``where_object`` only). Stories are unique
    within and across splits. Split ``k`` uses ``random.Random(seed * 1000 + k)``.
    """
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    for name, n in sizes.items():
        check_positive_int(n, f"n_{name}")
    seed = check_int(seed, "seed")
    seen: set[str] = set()
    out: dict[str, list[QAExample]] = {}
    for k, (name, n) in enumerate(sizes.items()):
        rng = random.Random(seed * 1000 + k)
        examples: list[QAExample] = []
        while len(examples) < n:
            if name == "test":
                qtype = rng.choice(("where_person", "where_object"))
                ex = make_story(rng, num_people, num_objects, qtype, allow_held_out=True)
                if not answer_rests_on_held_out(ex):
                    continue
            else:
                ex = make_story(rng, num_people, num_objects)
            if ex.story_text in seen:
                continue
            seen.add(ex.story_text)
            examples.append(ex)
        out[name] = examples
    return out


def encode_qa(examples: list[QAExample], max_len: int | None = None) -> dict[str, torch.Tensor]:
    """Token ids of ``[CLS] question [SEP] story``, right-padded, and the answer positions.

    Returns a dict of tensors:

    * ``input_ids`` ``(N, T)`` int64, ``0`` = ``[PAD]``;
    * ``segment_ids`` ``(N, T)`` int64: 0 on ``[CLS]``, the question and ``[SEP]``, 1 on
      the story (and on padding, which the masks exclude);
    * ``attention_mask`` ``(N, T)`` bool, ``True`` on real tokens;
    * ``context_mask`` ``(N, T)`` bool, ``True`` on story tokens: where a span may lie;
    * ``start_positions``, ``end_positions`` ``(N,)`` int64, into the *input* (story
      position + ``len(question) + 2``).
    """
    if isinstance(examples, str) or not isinstance(examples, (list, tuple)):
        raise TypeError(f"examples must be a list of QAExample, got {type(examples).__name__}.")
    if not examples:
        raise ValueError("examples must hold at least one QAExample, got none.")
    for i, ex in enumerate(examples):
        check_instance(ex, f"examples[{i}]", QAExample)
    rows = [[CLS, *ex.question, SEP, *ex.story] for ex in examples]
    T = max(len(r) for r in rows) if max_len is None else check_positive_int(max_len, "max_len")
    if max(len(r) for r in rows) > T:
        raise ValueError(f"max_len={T} is shorter than the longest example.")
    N = len(rows)
    ids = torch.zeros(N, T, dtype=torch.long)
    seg = torch.ones(N, T, dtype=torch.long)
    ctx = torch.zeros(N, T, dtype=torch.bool)
    start = torch.empty(N, dtype=torch.long)
    end = torch.empty(N, dtype=torch.long)
    for n, (row, ex) in enumerate(zip(rows, examples, strict=True)):
        offset = len(ex.question) + 2
        ids[n, : len(row)] = torch.tensor([WORD_TO_ID[w] for w in row])
        seg[n, :offset] = 0
        ctx[n, offset : len(row)] = True
        start[n] = ex.answer_start + offset
        end[n] = ex.answer_end + offset
    return {
        "input_ids": ids,
        "segment_ids": seg,
        "attention_mask": ids != 0,
        "context_mask": ctx,
        "start_positions": start,
        "end_positions": end,
    }


def span_text(ex: QAExample, start: int, end: int) -> str:
    """The story text of an input span ``[start, end]`` (positions into ``encode_qa``'s
    input, inclusive); empty if the span is not inside the story."""
    check_instance(ex, "ex", QAExample)
    start, end = check_int(start, "start"), check_int(end, "end")
    offset = len(ex.question) + 2
    s, e = start - offset, end - offset
    if s < 0 or e >= len(ex.story) or s > e:
        return ""
    return " ".join(ex.story[s : e + 1])

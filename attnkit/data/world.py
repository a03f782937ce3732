"""A small generated language in which words have meanings: what pretraining can learn.

Sentences describe a tiny world of people, animals, food, tools and places, written from
templates whose slots accept one category each ("the {animal} eats the {food} ."). Nothing
in a word's spelling says its category; only the contexts it appears in do. That is what
makes the language useful for showing what masked-language-model pretraining buys:

* :func:`world_corpus`: unlabelled sentences that use **every** noun, the pretraining text;
* :func:`plausibility_task`: a labelled task, "is this sentence plausible?" (label 1: every
  slot holds a noun of its category; label 0: one noun was replaced by a noun of another
  category, "the hammer eats the bread ."). The nouns of each category are cut in two
  halves: the labelled training examples and the ``test_seen`` set use only the first half
  (the *labelled* nouns), the ``test_unseen`` set only the second half (the *held-out*
  nouns). A model trained from scratch has never seen a held-out noun, so it cannot know
  its category; a model pretrained on the corpus may have learned it from the contexts.

Everything is deterministic given the seeds; sentences are lower-case words separated by
single spaces, ending with " .".
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from .._validate import check_positive_int

CATEGORIES: dict[str, tuple[str, ...]] = {
    "person": (
        "farmer", "teacher", "doctor", "baker", "sailor", "miller",
        "hunter", "nurse", "tailor", "painter", "judge", "smith",
    ),
    "animal": (
        "cat", "dog", "horse", "cow", "sheep", "goat",
        "pig", "rabbit", "fox", "wolf", "bear", "deer",
    ),
    "food": (
        "bread", "apple", "cheese", "rice", "soup", "cake",
        "carrot", "grape", "egg", "bean", "pear", "plum",
    ),
    "tool": (
        "hammer", "saw", "drill", "knife", "brush", "shovel",
        "rake", "wrench", "ladder", "needle", "axe", "chisel",
    ),
    "place": (
        "kitchen", "garden", "forest", "river", "market", "village",
        "school", "harbor", "farm", "castle", "bridge", "library",
    ),
}  # fmt: skip
"""Twelve nouns per category; the first six of each are the *labelled* nouns by default."""

ADJECTIVES: dict[str, tuple[str, ...]] = {
    "person": ("tired", "kind", "young"),
    "animal": ("hungry", "wild", "small"),
    "food": ("fresh", "sweet", "ripe"),
    "tool": ("sharp", "heavy", "rusty"),
    "place": ("quiet", "busy", "old"),
}
"""Optional adjectives; they fit their category but are shared by all of its nouns."""

TEMPLATES: tuple[str, ...] = (
    "the {person} feeds the {animal} in the {place} .",
    "the {animal} eats the {food} .",
    "the {animal} sleeps in the {place} .",
    "the {person} cooks the {food} in the {place} .",
    "the {person} sharpens the {tool} .",
    "the {person} cuts the {food} with the {tool} .",
    "the {person} buys the {food} at the {place} .",
    "the {person} carries the {tool} to the {place} .",
    "the {animal} runs to the {place} .",
    "the {person} finds the {animal} near the {place} .",
    "the {person} paints the {tool} .",
    "the {animal} smells the {food} in the {place} .",
)
"""Sentence templates; each ``{category}`` slot takes a noun of that category."""

ADJECTIVE_PROBABILITY = 0.3
_SLOT = re.compile(r"\{(\w+)\}")


def _check_seed(seed: object) -> int:
    return check_positive_int(seed, "seed", allow_zero=True)


def noun_split(seed: int = 0) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """``(labelled, held_out)``: each category's nouns cut into two halves of six.

    ``seed=0`` keeps the order of :data:`CATEGORIES` (first six labelled); other seeds
    shuffle each category first.
    """
    seed = _check_seed(seed)
    rng = random.Random(seed)
    labelled, held_out = {}, {}
    for category, nouns in CATEGORIES.items():
        nouns = list(nouns)
        if seed:
            rng.shuffle(nouns)
        half = len(nouns) // 2
        labelled[category], held_out[category] = tuple(nouns[:half]), tuple(nouns[half:])
    return labelled, held_out


def _fill(template: str, nouns: dict[str, tuple[str, ...]], rng: random.Random) -> list[str]:
    """A template's words with each slot filled by a random noun (maybe an adjective first)."""
    words: list[str] = []
    for word in template.split():
        slot = _SLOT.fullmatch(word)
        if slot is None:
            words.append(word)
            continue
        category = slot[1]
        if rng.random() < ADJECTIVE_PROBABILITY:
            words.append(rng.choice(ADJECTIVES[category]))
        words.append(rng.choice(nouns[category]))
    return words


def world_corpus(num_sentences: int, seed: int = 0) -> list[str]:
    """``num_sentences`` plausible sentences using all the nouns: the pretraining text."""
    num_sentences = check_positive_int(num_sentences, "num_sentences")
    rng = random.Random(_check_seed(seed))
    return [" ".join(_fill(rng.choice(TEMPLATES), CATEGORIES, rng)) for _ in range(num_sentences)]


@dataclass(frozen=True)
class WorldExample:
    """One labelled sentence: ``label`` 1 = plausible; for ``label`` 0, ``replaced`` is the
    noun put into a slot of another category (``""`` for plausible sentences)."""

    text: str
    label: int
    replaced: str = ""


def _example(nouns: dict[str, tuple[str, ...]], label: int, rng: random.Random) -> WorldExample:
    template = rng.choice(TEMPLATES)
    words = _fill(template, nouns, rng)
    if label == 1:
        return WorldExample(" ".join(words), 1)
    # Replace one slot's noun with a noun of another category.
    slots = [i for i, w in enumerate(words) if any(w in n for n in nouns.values())]
    i = rng.choice(slots)
    own = next(c for c, n in nouns.items() if words[i] in n)
    other = rng.choice([c for c in nouns if c != own])
    words[i] = rng.choice(nouns[other])
    return WorldExample(" ".join(words), 0, words[i])


def _examples(nouns: dict[str, tuple[str, ...]], n: int, rng: random.Random) -> list[WorldExample]:
    """``n`` examples with alternating labels 1, 0, 1, ... (every even prefix balanced)."""
    return [_example(nouns, 1 - i % 2, rng) for i in range(n)]


@dataclass(frozen=True)
class PlausibilityTask:
    """The labelled task of :func:`plausibility_task`."""

    train: list[WorldExample]
    test_seen: list[WorldExample]
    test_unseen: list[WorldExample]
    labelled_nouns: dict[str, tuple[str, ...]]
    held_out_nouns: dict[str, tuple[str, ...]]


def plausibility_task(
    num_train: int = 2000, num_test: int = 1000, *, seed: int = 0, noun_seed: int = 0
) -> PlausibilityTask:
    """Labelled sentences: ``train`` and ``test_seen`` with the labelled nouns only,
    ``test_unseen`` with the held-out nouns only (see the module docstring).

    Labels alternate 1, 0, 1, ... in every split, so any even-sized prefix of ``train`` is
    balanced. Test sentences that also occur in ``train`` are possible (the language is
    small); ``test_unseen`` shares no noun with ``train``.
    """
    num_train = check_positive_int(num_train, "num_train")
    num_test = check_positive_int(num_test, "num_test")
    rng = random.Random(_check_seed(seed))
    noun_seed = check_positive_int(noun_seed, "noun_seed", allow_zero=True)
    labelled, held_out = noun_split(noun_seed)
    return PlausibilityTask(
        train=_examples(labelled, num_train, rng),
        test_seen=_examples(labelled, num_test, rng),
        test_unseen=_examples(held_out, num_test, rng),
        labelled_nouns=labelled,
        held_out_nouns=held_out,
    )


__all__ = [
    "ADJECTIVES",
    "CATEGORIES",
    "TEMPLATES",
    "PlausibilityTask",
    "WorldExample",
    "noun_split",
    "plausibility_task",
    "world_corpus",
]

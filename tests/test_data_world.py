"""Tests of attnkit.data.world: the generated language of the BERT chapter."""

import itertools
import re

import pytest

from attnkit.data.world import (
    ADJECTIVES,
    CATEGORIES,
    TEMPLATES,
    noun_split,
    plausibility_task,
    world_corpus,
)

CATEGORY_OF = {n: c for c, nouns in CATEGORIES.items() for n in nouns}
ADJ_OF = {a: c for c, adjs in ADJECTIVES.items() for a in adjs}


def parse(text):
    """(template, [noun per slot]) by matching the sentence against every template."""
    words = [w for w in text.split() if w not in ADJ_OF]
    for template in TEMPLATES:
        parts = template.split()
        if len(parts) != len(words):
            continue
        nouns = []
        for p, w in zip(parts, words):
            slot = re.fullmatch(r"\{(\w+)\}", p)
            if slot:
                nouns.append((slot[1], w))
            elif p != w:
                break
        else:
            return template, nouns
    raise AssertionError(f"no template matches {text!r}")


def test_vocabulary_is_well_formed():
    nouns = [n for ns in CATEGORIES.values() for n in ns]
    assert len(nouns) == len(set(nouns)) == 60
    assert not set(nouns) & set(ADJ_OF)
    for template in TEMPLATES:
        assert set(re.findall(r"\{(\w+)\}", template)) <= set(CATEGORIES)


def test_corpus_is_plausible_deterministic_and_uses_every_noun():
    corpus = world_corpus(3000, seed=5)
    assert corpus == world_corpus(3000, seed=5) and corpus != world_corpus(3000, seed=6)
    used = set()
    for text in corpus:
        assert text.endswith(" .") and text == text.lower()
        _, nouns = parse(text)
        assert all(CATEGORY_OF[w] == c for c, w in nouns), text
        used |= {w for _, w in nouns}
        ws = text.split()
        for a, b in itertools.pairwise(ws):  # an adjective fits the noun after it
            if a in ADJ_OF:
                assert CATEGORY_OF[b] == ADJ_OF[a], text
    assert used == set(CATEGORY_OF)


def test_noun_split_halves():
    labelled, held_out = noun_split(0)
    for c, nouns in CATEGORIES.items():
        assert labelled[c] == nouns[:6] and held_out[c] == nouns[6:]
    lab3, held3 = noun_split(3)
    for c, nouns in CATEGORIES.items():
        assert sorted(lab3[c] + held3[c]) == sorted(nouns) and len(lab3[c]) == 6
    assert lab3 != labelled


def test_task_labels_and_noun_sets():
    task = plausibility_task(400, 300, seed=2)
    labelled = {n for ns in task.labelled_nouns.values() for n in ns}
    held_out = {n for ns in task.held_out_nouns.values() for n in ns}
    for name, split, allowed in (
        ("train", task.train, labelled),
        ("test_seen", task.test_seen, labelled),
        ("test_unseen", task.test_unseen, held_out),
    ):
        assert [e.label for e in split] == [1 - i % 2 for i in range(len(split))], name
        for e in split:
            _, nouns = parse(e.text)
            assert {w for _, w in nouns} <= allowed, (name, e.text)
            wrong = [w for c, w in nouns if CATEGORY_OF[w] != c]
            if e.label == 1:
                assert wrong == [] and e.replaced == ""
            else:
                assert wrong == [e.replaced], (name, e.text)
    again = plausibility_task(400, 300, seed=2)
    assert again.test_unseen == task.test_unseen
    assert plausibility_task(400, 300, seed=3).train != task.train


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: world_corpus(0), "num_sentences"),
        (lambda: world_corpus(5, seed=-1), "seed"),
        (lambda: plausibility_task(0), "num_train"),
        (lambda: plausibility_task(10, 0), "num_test"),
        (lambda: noun_split(1.5), "seed"),
    ],
)
def test_bad_arguments_are_named(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()

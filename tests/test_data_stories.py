"""Tests of attnkit.data.stories: answers are right, spans point at them, no leakage."""

from __future__ import annotations

import random

import pytest

from attnkit.data.stories import (
    PEOPLE,
    PLACES,
    VOCAB,
    QAExample,
    answer_rests_on_held_out,
    encode_qa,
    held_out_moves,
    is_held_out,
    make_story,
    span_text,
    story_splits,
)


def _solve(ex: QAExample) -> str:
    """An independent solver that reads the story sentence by sentence."""
    sentences = " ".join(ex.story).split(" . ")
    place, holder = {}, {}
    for s in sentences:
        w = s.replace(" .", "").split()
        if w[1] == "went":
            place[w[0]] = w[4]
        else:
            holder[w[3]] = w[0]
    q = ex.question
    if q[0] == "who":
        return holder[q[3]]
    if q[2] == "the":
        return place[holder[q[3]]]
    return place[q[2]]


@pytest.fixture(scope="module")
def splits():
    return story_splits(n_train=600, n_val=100, n_test=200, seed=3)


def test_answers_match_independent_solver(splits):
    for exs in splits.values():
        for ex in exs:
            assert ex.answer == _solve(ex)


def test_hops_and_supporting_facts():
    rng = random.Random(1)
    ex = make_story(rng, qtype="where_object")
    assert ex.hops == 2 and len(ex.supporting) == 2
    sentences = " ".join(ex.story).split(" . ")
    took, went = sorted(ex.supporting, key=lambda i: "went" in sentences[i])
    assert "took" in sentences[took] and "went" in sentences[went]
    assert make_story(rng, qtype="where_person").hops == 1
    assert make_story(rng, qtype="who_has").hops == 1


def test_no_leakage(splits):
    texts = {k: {ex.story_text for ex in v} for k, v in splits.items()}
    assert not texts["train"] & texts["test"] and not texts["val"] & texts["test"]
    assert not texts["train"] & texts["val"]
    assert all(len(texts[k]) == len(splits[k]) for k in splits)
    assert not any(held_out_moves(ex) for ex in splits["train"] + splits["val"])
    assert all(answer_rests_on_held_out(ex) for ex in splits["test"])
    n_held = sum(is_held_out(p, pl) for p in PEOPLE for pl in PLACES)
    assert 0 < n_held < len(PEOPLE) * len(PLACES) / 3


def test_deterministic():
    a = story_splits(50, 10, 10, seed=5)
    b = story_splits(50, 10, 10, seed=5)
    assert a == b
    assert a != story_splits(50, 10, 10, seed=6)


def test_encode_qa_positions(splits):
    exs = splits["val"][:20]
    enc = encode_qa(exs)
    for n, ex in enumerate(exs):
        s, e = int(enc["start_positions"][n]), int(enc["end_positions"][n])
        assert span_text(ex, s, e) == ex.answer
        assert enc["context_mask"][n, s] and enc["context_mask"][n, e]
        assert VOCAB[int(enc["input_ids"][n, 0])] == "[CLS]"
        n_q = len(ex.question)
        assert VOCAB[int(enc["input_ids"][n, n_q + 1])] == "[SEP]"
        assert int(enc["segment_ids"][n, : n_q + 2].sum()) == 0
        assert int(enc["context_mask"][n].sum()) == len(ex.story)
    assert (enc["attention_mask"] == (enc["input_ids"] != 0)).all()
    assert span_text(exs[0], 0, 1) == ""  # not in the story


def test_arguments_checked():
    rng = random.Random(0)
    with pytest.raises(ValueError, match="qtype"):
        make_story(rng, qtype="why")
    with pytest.raises(ValueError, match="num_people"):
        make_story(rng, num_people=1)
    with pytest.raises(ValueError, match="num_objects"):
        make_story(rng, num_people=2, num_objects=3)
    with pytest.raises(ValueError, match="examples"):
        encode_qa([])

"""Tests of attnkit.data.acceptability: sentence extraction, corruptions, and the splits of
the acceptability task (disjoint, balanced, free of pretraining text, deterministic)."""

import random
from collections import Counter

import pytest

from attnkit.data.acceptability import (
    _WordSampler,
    acceptability_task,
    corrupt,
    extract_sentences,
    is_finetune_docstring,
    label_examples,
    normalise,
)
from attnkit.data.words import split_words


def test_extract_sentences_by_hand():
    doc = (
        "Return the list of all names in the module.\n"
        "It is sorted. Short one.\n\n"
        "Example:\n    >>> f(x)\n    3\n\n"
        ">>> g()\n\n"
        "The value of x must be between 1 and 10, both included.\n"
        "See below.\n\n"
        "Has a weird ch@racter in this long sentence here."
    )
    assert extract_sentences(doc) == [
        "Return the list of all names in the module.",
        "The value of x must be between 1 and 10, both included.",
    ]


def test_normalise():
    assert normalise("Return os.path, NOW.") == "return os . path , now ."


def test_corruptions():
    sampler = _WordSampler(["the cat sat on the mat .", "a dog ."])
    s = "the cat sat on the mat , 3 times ."
    for seed in range(50):
        rng = random.Random(seed)
        shuffled = corrupt(s, "shuffle", rng, sampler)
        assert shuffled != s and Counter(shuffled.split()) == Counter(s.split())
        words = shuffled.split()
        assert [w for w in words if not w.isalpha()] == [",", "3", "."]
        assert [i for i, w in enumerate(words) if not w.isalpha()] == [6, 7, 9]
        replaced = corrupt(s, "replace", rng, sampler)
        diff = [(a, b) for a, b in zip(s.split(), replaced.split()) if a != b]
        assert len(replaced.split()) == 10 and len(diff) == 7 // 3  # a third of 7 words
        assert all(b.isalpha() for _, b in diff)
    assert corrupt("a a .", "shuffle", random.Random(0), sampler) is None
    assert corrupt("3 .", "replace", random.Random(0), sampler) is None
    assert corrupt("a b .", "replace", random.Random(0), sampler).count(" ") == 2
    with pytest.raises(ValueError, match="kind"):
        corrupt(s, "delete", random.Random(0), sampler)


def test_word_sampler_follows_frequencies():
    sampler = _WordSampler(["x x x y"])
    rng = random.Random(0)
    draws = Counter(sampler.draw(rng) for _ in range(4000))
    assert set(draws) == {"x", "y"} and 0.70 < draws["x"] / 4000 < 0.80


def test_label_examples_alternate_and_balance():
    sents = [normalise(f"Word{i} is a word with number {i} and more words.") for i in range(40)]
    ex = label_examples(sents, seed=3)
    assert [e.label for e in ex] == [1, 0] * 20
    assert all(e.source == s for e, s in zip(ex, sents))
    assert all((e.text == e.source) == (e.label == 1) for e in ex)
    assert {e.corruption for e in ex} == {"none", "shuffle", "replace"}
    assert ex == label_examples(sents, seed=3)
    assert ex != label_examples(sents, seed=4)


def test_is_finetune_docstring_fraction():
    docs = [f"docstring number {i}" for i in range(5000)]
    share = sum(is_finetune_docstring(d, 0.4) for d in docs) / len(docs)
    assert 0.37 < share < 0.43


@pytest.fixture(scope="module")
def task():
    return acceptability_task()


def test_task_sizes_and_balance(task):
    assert len(task.test) == 800 and len(task.val) == 300 and len(task.train) > 1000
    for split in (task.train, task.val, task.test):
        labels = [e.label for e in split]
        assert abs(sum(labels) - len(labels) / 2) <= 0.5
    assert sum(e.label for e in task.train[:100]) == 50
    assert len(task.pretrain_texts) > 3000


def test_task_splits_are_disjoint_and_unseen(task):
    sources = [{e.source for e in split} for split in (task.train, task.val, task.test)]
    assert sum(map(len, sources)) == len(task.train) + len(task.val) + len(task.test)
    assert not (sources[0] & sources[1] or sources[0] & sources[2] or sources[1] & sources[2])
    pretrain = "\n".join(" " + " ".join(split_words(d)) + " " for d in task.pretrain_texts)
    assert all(f" {s} " not in pretrain for group in sources for s in group)
    assert not any(is_finetune_docstring(d, 0.4) for d in task.pretrain_texts)


def test_task_is_deterministic_and_seeded(task):
    assert acceptability_task() == task
    other = acceptability_task(seed=1)
    assert other.pretrain_texts == task.pretrain_texts
    assert {e.source for e in other.test} != {e.source for e in task.test}


def test_task_on_given_docstrings_and_errors():
    docs = [f"This is sentence number {i} of the tiny corpus." for i in range(60)]
    small = acceptability_task(docs, n_val=4, n_test=6)
    assert len(small.val) == 4 and len(small.test) == 6
    assert len(small.train) + len(small.pretrain_texts) == 50
    with pytest.raises(ValueError, match="leaves none"):
        acceptability_task(docs, n_val=30, n_test=30)
    with pytest.raises(ValueError, match="finetune_fraction"):
        acceptability_task(docs, finetune_fraction=1.0)
    with pytest.raises(TypeError, match="single str"):
        acceptability_task("one text")

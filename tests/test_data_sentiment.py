"""Tests of the synthetic sentiment task (attnkit.data.sentiment)."""

import pytest
import torch

from attnkit.data.sentiment import (
    NEGATIVE,
    POSITIVE,
    encode_sentiment,
    grammar_words,
    make_sentiment_examples,
    sentiment_task,
)
from attnkit.data.words import split_words


@pytest.fixture(scope="module")
def task():
    return sentiment_task(n_train=600, n_val=100, n_test=200, seed=3)


def _clause_polarity(words):
    """An independent re-implementation of the labelling rules on one clause's words."""
    adj = [w for w in words if w in POSITIVE or w in NEGATIVE]
    assert len(adj) == 1, words
    pol = int(adj[0] in POSITIVE)
    if "expected" not in words and ("not" in words or "never" in words):
        pol = 1 - pol
    return pol


def _label(words):
    if "but" in words:
        return _clause_polarity(words[words.index("but") + 1 :])
    if "although" in words:
        a = words.index("although")
        if a == 0:  # the main clause starts at ", the" (an aside starts ", which" etc.)
            cut = next(i for i in range(len(words) - 1) if words[i : i + 2] == [",", "the"])
            return _clause_polarity(words[cut:])
        return _clause_polarity(words[:a])
    return _clause_polarity(words)


def test_labels_follow_the_documented_rules(task):
    for ex in task.train + task.val + task.test:
        words = split_words(ex.text)
        assert ex.label == _label(words), ex.text


def test_decisive_tokens(task):
    for ex in task.train[:300]:
        words = ex.words
        picked = [words[p] for p in ex.decisive]
        sentiment = [w for w in picked if w in POSITIVE or w in NEGATIVE]
        assert len(sentiment) == 1, (ex.text, picked)
        assert set(picked) - set(sentiment) <= {"not", "never", "but", "although"}
        if ex.form != "single":
            assert ("but" in picked) == (ex.form == "but")
            assert ("although" in picked) == ex.form.startswith("although")


def test_splits_are_disjoint_and_deterministic(task):
    texts = [{ex.text for ex in split} for split in (task.train, task.val, task.test)]
    assert sum(map(len, texts)) == 900
    assert not (texts[0] & texts[1]) and not (texts[0] & texts[2]) and not (texts[1] & texts[2])
    assert not any(ex.heldout for ex in task.train + task.val)
    assert 0.3 < sum(ex.heldout for ex in task.test) / 200 < 0.8
    again = sentiment_task(n_train=600, n_val=100, n_test=200, seed=3)
    assert again.train == task.train and again.test == task.test
    assert sentiment_task(n_train=600, n_val=100, n_test=200, seed=4).train != task.train


def test_balanced_and_far_apart_cues(task):
    labels = [ex.label for ex in task.train]
    assert 0.4 < sum(labels) / len(labels) < 0.6
    spans = [max(ex.decisive) - min(ex.decisive) for ex in task.train]
    assert max(spans) >= 8


def test_vocabulary_covers_grammar(task):
    ids, mask, labels, decisive = encode_sentiment(task.test, task.tokenizer)
    assert not (ids == task.tokenizer.unk_id).any()
    assert set(grammar_words()) == set(task.tokenizer.words)
    assert ids.shape == mask.shape == decisive.shape and labels.shape == (200,)
    assert (ids[:, 0] == task.tokenizer.cls_id).all()
    assert not (decisive & ~mask).any()
    for i in range(5):
        ex = task.test[i]
        chosen = [task.tokenizer.vocab[j] for j in ids[i][decisive[i]].tolist()]
        assert chosen == [ex.words[p] for p in ex.decisive]
    assert torch.equal(labels, torch.tensor([ex.label for ex in task.test]))


def test_errors():
    with pytest.raises(ValueError, match="n_train"):
        sentiment_task(n_train=0)
    with pytest.raises(ValueError, match="n"):
        make_sentiment_examples(-1)
    ex = make_sentiment_examples(3, seed=1)
    with pytest.raises(ValueError, match="max_len"):
        encode_sentiment(ex, sentiment_task(10, 10, 10).tokenizer, max_len=3)
    with pytest.raises(TypeError, match="tokenizer"):
        encode_sentiment(ex, "tok")


def test_documented_heldout_example(task):
    def plain_great(ex):
        return ex.form == "single" and "great" in ex.words and not {"not", "never"} & set(ex.words)

    assert not any(plain_great(ex) for ex in task.train + task.val)
    assert any(plain_great(ex) and ex.heldout for ex in task.test)
    assert any(
        ex.form == "single" and "great" in ex.words and "not" in ex.words for ex in task.train
    )

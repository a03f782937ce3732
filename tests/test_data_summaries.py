"""Tests of attnkit.data.summaries: the summary rule, Lead-k, encoding, no leakage."""

from __future__ import annotations

import random
import re

import pytest

from attnkit.data.summaries import (
    EVENT_VERBS,
    VOCAB,
    decode_ids,
    encode_summaries,
    lead_k,
    make_document,
    summary_splits,
)

EVENT = re.compile(r"^(\w+) was (" + "|".join(EVENT_VERBS) + r") in (\w+) on \w+ \.$")


def test_summary_follows_the_rule():
    rng = random.Random(0)
    for _ in range(300):
        ex = make_document(rng)
        parts = [m.groups() for s in ex.sentences if (m := EVENT.match(s))]
        assert ex.summary == " ; ".join(" ".join(p) for p in parts)
        assert [i for i, s in enumerate(ex.sentences) if EVENT.match(s)] == list(ex.event_indices)
        assert 1 <= len(parts) <= 2


def test_lead_k_is_not_the_summary():
    exs = summary_splits(300, 10, 10, seed=1)["train"]
    first_is_event = sum(ex.event_indices[0] == 0 for ex in exs) / len(exs)
    assert 0.15 < first_is_event < 0.5  # events are anywhere
    ex = exs[0]
    assert lead_k(ex, 2) == ex.sentences[0] + " " + ex.sentences[1]
    assert lead_k(ex, 99) == ex.document
    with pytest.raises(ValueError, match="k"):
        lead_k(ex, 0)


def test_splits_distinct_and_deterministic():
    sp = summary_splits(200, 50, 50, seed=2)
    docs = {k: {ex.document for ex in v} for k, v in sp.items()}
    assert all(len(docs[k]) == len(sp[k]) for k in sp)
    assert not (docs["train"] & docs["test"]) and not (docs["train"] & docs["val"])
    assert sp == summary_splits(200, 50, 50, seed=2)


def test_encode_and_decode_roundtrip():
    exs = summary_splits(20, 5, 5, seed=0)["val"]
    enc = encode_summaries(exs)
    for n, ex in enumerate(exs):
        assert decode_ids(enc["src"][n]) == ex.document
        assert decode_ids(enc["tgt_out"][n]) == ex.summary
        assert VOCAB[int(enc["tgt_in"][n, 0])] == "[BOS]"
        length = len(ex.summary.split())
        assert (enc["tgt_in"][n, 1 : length + 1] == enc["tgt_out"][n, :length]).all()
        assert VOCAB[int(enc["tgt_out"][n, length])] == "[EOS]"

"""Tests of attnkit.data.digit_strips: number words, strips, leakage, determinism.

References: a hand-written table of number words, invariants that any correct speller
satisfies (checked on all 1000 numbers), and the digit images themselves (each slot of a
strip must be exactly the image whose index it reports).
"""

import pytest
import torch

from attnkit.data import digit_strips as ds
from attnkit.data.digits import digit_splits, load_digit_images

TABLE = {
    0: "zero",
    7: "seven",
    10: "ten",
    11: "eleven",
    12: "twelve",
    13: "thirteen",
    17: "seventeen",
    19: "nineteen",
    20: "twenty",
    21: "twenty one",
    40: "forty",
    42: "forty two",
    58: "fifty eight",
    99: "ninety nine",
    100: "one hundred",
    101: "one hundred one",
    105: "one hundred five",
    110: "one hundred ten",
    115: "one hundred fifteen",
    120: "one hundred twenty",
    300: "three hundred",
    342: "three hundred forty two",
    517: "five hundred seventeen",
    690: "six hundred ninety",
    808: "eight hundred eight",
    999: "nine hundred ninety nine",
}


@pytest.mark.parametrize("n, words", sorted(TABLE.items()))
def test_number_to_words_table(n, words):
    assert ds.number_to_words(n) == words


def test_number_to_words_invariants():
    seen = set()
    for n in range(1000):
        words = ds.number_to_words(n).split()
        seen.add(" ".join(words))
        assert 1 <= len(words) <= ds.MAX_WORDS and all(w in ds.WORD_TO_ID for w in words)
        assert ("hundred" in words) == (n >= 100)
        assert ("zero" in words) == (n == 0)
        if n >= 100:  # "<digit> hundred" + the words of the rest, unless it is 0
            assert words[:2] == [ds.ONES[n // 100], "hundred"]
            rest = ds.number_to_words(n % 100).split()
            assert words[2:] == ([] if n % 100 == 0 else rest)
        elif n >= 20:
            assert words[0] == ds.TENS[n // 10]
            assert words[1:] == ([] if n % 10 == 0 else [ds.ONES[n % 10]])
    assert len(seen) == 1000  # injective: the words determine the number


def test_number_to_words_errors():
    for bad in (-1, 1000, 2.0, True, "5"):
        with pytest.raises(ValueError, match="n must be"):
            ds.number_to_words(bad)


def test_vocabulary_and_ids():
    assert ds.VOCAB[:3] == ("<pad>", "<bos>", "<eos>") and len(ds.VOCAB) == 32
    assert (ds.PAD_ID, ds.BOS_ID, ds.EOS_ID) == (0, 1, 2) and len(set(ds.VOCAB)) == 32
    ids = ds.encode_words("three hundred forty two")
    assert [ds.VOCAB[i] for i in ids] == ["three", "hundred", "forty", "two"]
    assert ds.decode_ids([ds.BOS_ID, *ids, ds.EOS_ID, 7, ds.PAD_ID]) == "three hundred forty two"
    assert ds.decode_ids(torch.tensor([ds.EOS_ID, 5])) == ""
    with pytest.raises(ValueError, match="vocabulary"):
        ds.encode_words("forty-two")


def test_word_slots():
    assert ds.word_slots(342) == [(0,), (0,), (1,), (2,)]
    assert ds.word_slots(517) == [(0,), (0,), (1, 2)]
    assert ds.word_slots(300) == [(0,), (0,)]
    assert ds.word_slots(305) == [(0,), (0,), (2,)]
    assert ds.word_slots(40) == [(1,)] and ds.word_slots(42) == [(1,), (2,)]
    assert ds.word_slots(17) == [(1, 2)]
    for n in range(10, 1000):  # one entry per word, and every nonzero digit described
        slots = ds.word_slots(n)
        assert len(slots) == len(ds.number_to_words(n).split())
        digits = ds.number_digits(torch.tensor([n]))[0].tolist()
        covered = {s for group in slots for s in group}
        assert covered == {s for s, d in enumerate(digits) if d > 0} | (
            {2} if 10 <= n % 100 < 20 else set()
        )
    with pytest.raises(ValueError):
        ds.word_slots(9)


def test_target_tensors():
    tgt_in, tgt_out = ds.target_tensors([342, 17, 300])
    assert tgt_in.shape == tgt_out.shape == (3, ds.TARGET_LEN) and tgt_in.dtype == torch.long
    w = ds.WORD_TO_ID
    assert tgt_in[0].tolist() == [ds.BOS_ID, w["three"], w["hundred"], w["forty"], w["two"]]
    assert tgt_out[0].tolist() == [w["three"], w["hundred"], w["forty"], w["two"], ds.EOS_ID]
    assert tgt_in[1].tolist() == [ds.BOS_ID, w["seventeen"], 0, 0, 0]
    assert tgt_out[1].tolist() == [w["seventeen"], ds.EOS_ID, 0, 0, 0]
    # the decoder input is the output shifted right by one, BOS first
    words = tgt_out[:, :-1] != ds.EOS_ID
    assert torch.equal(tgt_in[:, 1:][words], tgt_out[:, :-1][words])


def test_strips_show_the_right_digit_images():
    splits = digit_splits()
    all_images, all_labels = load_digit_images()
    strips = ds.make_strips(splits.train, 300, seed=3)
    assert strips.images.shape == (300, 1, 8, 24) and strips.images.dtype == torch.float32
    assert int(strips.numbers.min()) >= 10 and int(strips.numbers.max()) <= 999
    for b in range(300):
        n = int(strips.numbers[b])
        digits = [n // 100, n // 10 % 10, n % 10]
        for s in range(3):
            cell = strips.images[b, :, :, 8 * s : 8 * s + 8]
            idx = int(strips.digit_index[b, s])
            if s == 0 and n < 100:  # the blank slot is on the left
                assert idx == -1 and cell.abs().max() == 0
            else:
                assert int(all_labels[idx]) == digits[s]
                assert torch.equal(cell, all_images[idx])
        words = ds.decode_ids(strips.tgt_out[b])
        assert words == ds.number_to_words(n)


def test_no_image_leakage_and_disjoint_sources():
    splits = digit_splits()
    strips = ds.strip_splits(2000, 300, 1000, seed=0)
    for name in ("train", "val", "test"):
        used = getattr(strips, name).digit_index
        used = set(used[used >= 0].tolist())
        own = set(getattr(splits, name).index.tolist())
        assert used <= own, f"{name} strips use images of another split"
    test_used = strips.test.digit_index[strips.test.digit_index >= 0]
    train_used = strips.train.digit_index[strips.train.digit_index >= 0]
    assert not set(test_used.tolist()) & set(train_used.tolist())
    assert len(set(test_used.tolist())) > 300  # most test images are used


def test_determinism_and_seeds():
    a = ds.strip_splits(200, 20, 50, seed=1)
    b = ds.strip_splits(200, 20, 50, seed=1)
    c = ds.strip_splits(200, 20, 50, seed=2)
    for x, y in zip(a, b):
        for t, u in zip(x, y):
            assert torch.equal(t, u)
    assert not torch.equal(a.train.numbers, c.train.numbers)
    assert not torch.equal(a.train.numbers[:50], a.test.numbers)  # own generator per set


def test_number_distribution_is_uniform_enough():
    strips = ds.make_strips(digit_splits().train, 9000, seed=0)
    two_digit = (strips.numbers < 100).float().mean().item()
    assert abs(two_digit - 0.1) < 0.015  # 90 of the 990 numbers have two digits


def test_strip_batches():
    strips = ds.make_strips(digit_splits().train, 100, seed=0)
    batches = ds.strip_batches(strips, 32, 7, seed=0)
    assert len(batches) == 7
    images, tgt_in, tgt_out = batches[0]
    assert images.shape == (32, 1, 8, 24) and tgt_in.shape == tgt_out.shape == (32, 5)
    rows = {tuple(r.tolist()): i for i, r in enumerate(strips.images.flatten(1))}
    assert len(rows) == 100  # the strips are distinct
    # the first 3 batches are one pass over a permutation: 96 distinct strips
    first = [rows[tuple(r.tolist())] for b in batches[:3] for r in b[0].flatten(1)]
    assert len(set(first)) == 96
    i = first[0]
    assert torch.equal(tgt_in[0], strips.tgt_in[i]) and torch.equal(tgt_out[0], strips.tgt_out[i])
    again = ds.strip_batches(strips, 32, 7, seed=0)
    assert all(torch.equal(x[0], y[0]) for x, y in zip(batches, again))
    with pytest.raises(ValueError, match="batch_size"):
        ds.strip_batches(strips, 101, 1)


def test_draw_strips_errors():
    split = digit_splits().test
    with pytest.raises(ValueError, match="from 10 to 999"):
        ds.draw_strips(split, torch.tensor([5]))
    with pytest.raises(ValueError, match=r"\(B,\)"):
        ds.draw_strips(split, torch.tensor([[15]]))

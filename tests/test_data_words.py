"""Tests of attnkit.data.words: the word-level tokenizer of the BERT chapter. Expected ids
and vocabularies are written out by hand."""

import pytest
import torch

from attnkit.data.words import SPECIAL_TOKENS, WordTokenizer, split_words
from attnkit.models.bert import mask_tokens


def test_split_words_by_hand():
    assert split_words("Return os.path.join(a, b).") == [
        "return", "os", ".", "path", ".", "join", "(", "a", ",", "b", ")", ".",
    ]  # fmt: skip
    assert split_words("It's 2024-01-31!") == ["it", "'", "s", "2024", "-", "01", "-", "31", "!"]
    assert split_words("  \n\t ") == []
    assert split_words("x_1 >= 10") == ["x", "_", "1", ">", "=", "10"]


def test_vocabulary_order_and_specials():
    tok = WordTokenizer.from_texts(["b a c a", "c a b d"], max_words=3)
    assert tok.vocab == (*SPECIAL_TOKENS, "a", "b", "c")  # a: 3, then b, c: 2 each (alphabetic)
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 1, 2, 3, 4)
    assert [tok.token_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert len(tok) == 8
    assert WordTokenizer.from_texts(["c a b d", "b a c a"], max_words=3) == tok  # order-free
    assert WordTokenizer.from_texts(["b a c a", "c a b d"], min_count=2).words == ("a", "b", "c")
    assert WordTokenizer.from_texts("x y x").words == ("x", "y")
    assert WordTokenizer(["z", "y"]).vocab[5:] == ("z", "y")


def test_encode_decode():
    tok = WordTokenizer(["the", "cat", "."])
    assert tok.encode("The cat sat.") == [2, 5, 6, 1, 7, 3]
    assert tok.encode("The cat sat.", add_special=False) == [5, 6, 1, 7]
    assert tok.decode([2, 5, 6, 1, 7, 3, 0]) == "the cat ."
    assert tok.decode(torch.tensor([2, 5, 4, 3]), skip_special=False) == "[CLS] the [MASK] [SEP]"
    assert tok.token_id("dog") == tok.unk_id and tok.token_id("cat") == 6


def test_batch_encode_truncates_and_pads():
    tok = WordTokenizer(["a", "b", "c"])
    ids, mask = tok.batch_encode(["a b c a b", "c"], max_len=5)
    assert ids.tolist() == [[2, 5, 6, 7, 3], [2, 7, 3, 0, 0]]
    assert mask.dtype == torch.bool
    assert mask.tolist() == [[True] * 5, [True, True, True, False, False]]
    ids, mask = tok.batch_encode(["b", "a c"], max_len=10, add_special=False)
    assert ids.tolist() == [[6, 0], [5, 7]] and mask.tolist() == [[True, False], [True, True]]
    assert tok.special_mask(torch.tensor([[2, 5, 3, 0, 4, 1]])).tolist() == [
        [True, False, True, True, False, False]
    ]


def test_special_mask_keeps_mask_tokens_off_specials():
    tok = WordTokenizer(["a", "b", "c"])
    ids, _ = tok.batch_encode(["a b c", "c"] * 200, max_len=8)
    gen = torch.Generator().manual_seed(0)
    special = tok.special_mask(ids)
    _, labels = mask_tokens(
        ids, vocab_size=len(tok), mask_token_id=tok.mask_id, special_mask=special,
        mlm_probability=0.9, generator=gen,
    )  # fmt: skip
    assert (labels[special] == -100).all()
    assert (labels != -100).sum() > 0.8 * (~special).sum()


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: WordTokenizer("abc"), TypeError, "single str"),
        (lambda: WordTokenizer(["Cat"]), ValueError, "words\\[0\\]"),
        (lambda: WordTokenizer(["a b"]), ValueError, "single lower-case word"),
        (lambda: WordTokenizer(["a", "a"]), ValueError, "more than once"),
        (lambda: WordTokenizer.from_texts(["a"], max_words=-1), ValueError, "max_words"),
        (lambda: WordTokenizer.from_texts(["a"], min_count=0), ValueError, "min_count"),
        (lambda: WordTokenizer.from_texts([1]), TypeError, "texts\\[0\\]"),
        (lambda: WordTokenizer(["a"]).batch_encode("a", 4), TypeError, "single str"),
        (lambda: WordTokenizer(["a"]).batch_encode(["a"], 1), ValueError, "at least 2"),
        (lambda: WordTokenizer(["a"]).decode([9]), ValueError, "integers in"),
        (lambda: WordTokenizer(["a"]).decode(torch.ones(2, 2).long()), ValueError, "1-D"),
        (lambda: split_words(3), TypeError, "str"),
    ],
)
def test_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()

"""Tests of attnkit.data: the character tokenizer, the date translation task and the
standard-library docstring corpus. Expected strings are written out by hand."""

import datetime
import json
import random
import re

import pytest
import torch

from attnkit import padding_mask
from attnkit.data import (
    FORMATS,
    CharTokenizer,
    date_splits,
    make_date_pairs,
    random_date,
    stdlib_docstrings,
    train_val_split,
)
from attnkit.data import dates as D

# -------------------------------------------------------------------------- tokenizer


def test_tokenizer_vocabulary_order():
    tok = CharTokenizer(["hello", "world"])
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id) == (0, 1, 2, 3)
    assert tok.vocab == ("<pad>", "<bos>", "<eos>", "<unk>", "d", "e", "h", "l", "o", "r", "w")
    assert len(tok) == 11
    # the order of the texts does not matter, only the set of characters
    assert CharTokenizer(["dlrow", "olleh", ""]) == tok
    assert CharTokenizer(alphabet="wrolhed") == tok
    assert CharTokenizer(alphabet=["b", "a"]).vocab[4:] == ("a", "b")


def test_tokenizer_encode_decode():
    tok = CharTokenizer(["hello", "world"])
    assert tok.encode("hold") == [6, 8, 7, 4]
    assert tok.encode("hold", add_bos=True, add_eos=True) == [1, 6, 8, 7, 4, 2]
    assert tok.encode("") == []
    assert tok.encode("hi!") == [6, 3, 3]  # unknown characters -> UNK
    assert tok.decode([1, 6, 8, 7, 4, 2, 0, 0]) == "hold"
    assert tok.decode([1, 6, 3, 2, 0], skip_special=False) == "<bos>h<unk><eos><pad>"
    assert tok.decode(torch.tensor([6, 5, 7, 7, 8])) == "hello"
    text = "hello world"  # " " is unknown
    assert tok.decode(tok.encode(text)) == "helloworld"


def test_tokenizer_round_trip_unicode():
    texts = ["二〇二四年三月五日", "March 5, 2024", "2024-03-05"]
    tok = CharTokenizer(texts)
    for t in texts:
        assert tok.decode(tok.encode(t, add_bos=True, add_eos=True)) == t


def test_tokenizer_batch_encode():
    tok = CharTokenizer(alphabet="abc")  # a=4, b=5, c=6
    ids, lengths = tok.batch_encode(["ab", "", "cab"], add_bos=True, add_eos=True)
    assert ids.dtype == lengths.dtype == torch.long
    assert ids.tolist() == [[1, 4, 5, 2, 0], [1, 2, 0, 0, 0], [1, 6, 4, 5, 2]]
    assert lengths.tolist() == [4, 2, 5]
    assert torch.equal(padding_mask(lengths, ids.shape[1]), ids != tok.pad_id)
    ids, lengths = tok.batch_encode(["ab", "c"], pad_to=4)
    assert ids.tolist() == [[4, 5, 0, 0], [6, 0, 0, 0]] and lengths.tolist() == [2, 1]
    ids, lengths = tok.batch_encode([])
    assert ids.shape == (0, 0) and lengths.shape == (0,)


def test_tokenizer_save_and_load():
    tok = CharTokenizer(["héllo wörld", "2024年"])
    state = json.loads(json.dumps(tok.to_dict()))
    again = CharTokenizer.from_dict(state)
    assert again == tok and again.vocab == tok.vocab
    assert again.encode("wörld年") == tok.encode("wörld年")


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: CharTokenizer(), ValueError, "exactly one of texts"),
        (lambda: CharTokenizer(["a"], alphabet="a"), ValueError, "exactly one of texts"),
        (lambda: CharTokenizer(["a", 3]), TypeError, r"texts\[1\] must be a str"),
        (lambda: CharTokenizer(alphabet=["a", "bc"]), ValueError, "single characters"),
        (lambda: CharTokenizer(alphabet="ab").encode(5), TypeError, "text must be a str"),
        (lambda: CharTokenizer(alphabet="ab").decode([7]), ValueError, r"in \[0, 6\), got 7"),
        (
            lambda: CharTokenizer(alphabet="ab").decode(torch.zeros(2, 2, dtype=torch.long)),
            ValueError,
            "1-D integer tensor",
        ),
        (
            lambda: CharTokenizer(alphabet="ab").batch_encode(["aba"], pad_to=2),
            ValueError,
            r"pad_to=2 is shorter than the longest encoding \(3\)",
        ),
        (lambda: CharTokenizer(alphabet="ab").batch_encode("ab"), TypeError, "single str"),
        (lambda: CharTokenizer.from_dict({"chars": "ab"}), ValueError, "CharTokenizer.to_dict"),
    ],
)
def test_tokenizer_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


# ------------------------------------------------------------------------------ dates

MAR_5_2024 = datetime.date(2024, 3, 5)  # a Tuesday
DEC_31_2021 = datetime.date(2021, 12, 31)  # a Friday
OCT_10_2010 = datetime.date(2010, 10, 10)  # a Sunday
FEB_29_2000 = datetime.date(2000, 2, 29)  # a Tuesday
JAN_1_1900 = datetime.date(1900, 1, 1)  # a Monday

# format -> expected strings for the dates above, in that order, written by hand
EXPECTED = {
    D.month_day_year: [
        "March 5, 2024", "December 31, 2021", "October 10, 2010", "February 29, 2000",
        "January 1, 1900",
    ],
    D.day_month_year: [
        "5 March 2024", "31 December 2021", "10 October 2010", "29 February 2000",
        "1 January 1900",
    ],
    D.abbr_month_padded_day_year: [
        "Mar 05 2024", "Dec 31 2021", "Oct 10 2010", "Feb 29 2000", "Jan 01 1900",
    ],
    D.day_abbr_month_year_dashes: [
        "05-Mar-2024", "31-Dec-2021", "10-Oct-2010", "29-Feb-2000", "01-Jan-1900",
    ],
    D.weekday_month_day_year: [
        "Tuesday, March 5, 2024", "Friday, December 31, 2021", "Sunday, October 10, 2010",
        "Tuesday, February 29, 2000", "Monday, January 1, 1900",
    ],
    D.abbr_weekday_day_abbr_month_year: [
        "Tue, 5 Mar 2024", "Fri, 31 Dec 2021", "Sun, 10 Oct 2010", "Tue, 29 Feb 2000",
        "Mon, 1 Jan 1900",
    ],
    D.ordinal_of_month: [
        "the 5th of March, 2024", "the 31st of December, 2021", "the 10th of October, 2010",
        "the 29th of February, 2000", "the 1st of January, 1900",
    ],
    D.abbr_month_ordinal_year: [
        "Mar. 5th, 2024", "Dec. 31st, 2021", "Oct. 10th, 2010", "Feb. 29th, 2000",
        "Jan. 1st, 1900",
    ],
    D.us_numeric: ["03/05/2024", "12/31/2021", "10/10/2010", "02/29/2000", "01/01/1900"],
    D.european_numeric: ["05.03.2024", "31.12.2021", "10.10.2010", "29.02.2000", "01.01.1900"],
    D.year_month_day_slashes: ["2024/3/5", "2021/12/31", "2010/10/10", "2000/2/29", "1900/1/1"],
    D.lower_month_day_year: [
        "march 5, 2024", "december 31, 2021", "october 10, 2010", "february 29, 2000",
        "january 1, 1900",
    ],
    D.upper_day_abbr_month_year: [
        "05 MAR 2024", "31 DEC 2021", "10 OCT 2010", "29 FEB 2000", "01 JAN 1900",
    ],
    D.upper_weekday_month_day_year: [
        "TUESDAY, MARCH 5, 2024", "FRIDAY, DECEMBER 31, 2021", "SUNDAY, OCTOBER 10, 2010",
        "TUESDAY, FEBRUARY 29, 2000", "MONDAY, JANUARY 1, 1900",
    ],
    D.chinese_arabic: [
        "2024年3月5日", "2021年12月31日", "2010年10月10日", "2000年2月29日", "1900年1月1日",
    ],
    D.chinese_numerals: [
        "二〇二四年三月五日", "二〇二一年十二月三十一日", "二〇一〇年十月十日",
        "二〇〇〇年二月二十九日", "一九〇〇年一月一日",
    ],
    D.chinese_padded_weekday: [
        "2024年03月05日星期二", "2021年12月31日星期五", "2010年10月10日星期日",
        "2000年02月29日星期二", "1900年01月01日星期一",
    ],
}  # fmt: skip
HAND_DATES = [MAR_5_2024, DEC_31_2021, OCT_10_2010, FEB_29_2000, JAN_1_1900]


def test_there_are_enough_formats_and_all_are_checked_by_hand():
    assert len(FORMATS) >= 15
    assert set(EXPECTED) == set(FORMATS)


@pytest.mark.parametrize("fmt", FORMATS, ids=[f.__name__ for f in FORMATS])
def test_format_hand_checked(fmt):
    assert [fmt(d) for d in HAND_DATES] == EXPECTED[fmt]


def test_ordinal_suffixes():
    expected = [
        "1st", "2nd", "3rd", "4th", "5th", "6th", "7th", "8th", "9th", "10th",
        "11th", "12th", "13th", "14th", "15th", "16th", "17th", "18th", "19th", "20th",
        "21st", "22nd", "23rd", "24th", "25th", "26th", "27th", "28th", "29th", "30th",
        "31st",
    ]  # fmt: skip
    assert [D.ordinal(n) for n in range(1, 32)] == expected
    assert [D.ordinal(n) for n in (101, 111, 112, 113, 122)] == [
        "101st", "111th", "112th", "113th", "122nd",
    ]  # fmt: skip


def test_chinese_numbers():
    expected = [
        "一", "二", "三", "四", "五", "六", "七", "八", "九", "十",
        "十一", "十二", "十三", "十四", "十五", "十六", "十七", "十八", "十九", "二十",
        "二十一", "二十二", "二十三", "二十四", "二十五", "二十六", "二十七", "二十八", "二十九",
        "三十", "三十一",
    ]  # fmt: skip
    assert [D.chinese_number(n) for n in range(1, 32)] == expected
    assert D.chinese_year(1908) == "一九〇八"
    assert D.chinese_year(2050) == "二〇五〇"


def test_weekdays_over_a_whole_week():
    """Monday 2024-03-04 to Sunday 2024-03-10, in English and Chinese."""
    week = [datetime.date(2024, 3, 4) + datetime.timedelta(days=i) for i in range(7)]
    english = [D.weekday_month_day_year(d).split(",")[0] for d in week]
    assert english == [
        "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday",
    ]  # fmt: skip
    chinese = [D.chinese_padded_weekday(d)[-3:] for d in week]
    assert chinese == ["星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期日"]


def test_random_date_range_and_uniformity():
    rng = random.Random(0)
    days = [random_date(rng) for _ in range(20000)]
    assert min(days) >= datetime.date(1900, 1, 1) and max(days) <= datetime.date(2099, 12, 31)
    first_half = sum(d.year < 2000 for d in days) / len(days)
    assert 0.48 < first_half < 0.52  # 36,524 of the 73,049 days are before 2000
    assert len({d.month for d in days}) == 12 and len({d.day for d in days}) == 31


def test_make_date_pairs_deterministic():
    a = make_date_pairs(200, seed=1)
    assert a == make_date_pairs(200, seed=1)
    assert a != make_date_pairs(200, seed=2)
    assert make_date_pairs(50, seed=1) == a[:50]  # one (date, format) draw per pair
    assert make_date_pairs(0, seed=1) == []
    pairs = make_date_pairs(2000, seed=3)
    assert len({s for s, _ in pairs}) > 1900
    for fmt in FORMATS:  # every format is used
        assert any(fmt(datetime.date.fromisoformat(t)) == s for s, t in pairs), fmt.__name__


def test_make_date_pairs_targets_are_iso_dates_of_the_source():
    pairs = make_date_pairs(3000, seed=4)
    for source, target in pairs:
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", target)
        day = datetime.date.fromisoformat(target)
        assert day.isoformat() == target
        assert source in {fmt(day) for fmt in FORMATS}


def test_make_date_pairs_custom_formats():
    pairs = make_date_pairs(20, seed=0, formats=[D.chinese_numerals])
    for source, target in pairs:
        assert source == D.chinese_numerals(datetime.date.fromisoformat(target))


def test_target_is_a_function_of_the_source():
    """No string is produced by two formats (or two dates) with different targets."""
    rng = random.Random(5)
    days = [random_date(rng) for _ in range(3000)]
    days += [datetime.date(2001, m, d) for m in range(1, 13) for d in range(1, 13)]
    reading = {}
    for day in days:
        for fmt in FORMATS:
            source = fmt(day)
            assert reading.setdefault(source, day) == day, (source, fmt.__name__)


def test_date_splits_no_leakage():
    splits = date_splits(5000, 500, 700, seed=0)
    assert [len(splits[k]) for k in ("train", "val", "test")] == [5000, 500, 700]
    dates = {k: {t for _, t in v} for k, v in splits.items()}
    assert not dates["train"] & dates["val"]
    assert not dates["train"] & dates["test"]
    assert not dates["val"] & dates["test"]
    assert len(dates["val"]) == 500 and len(dates["test"]) == 700  # each held-out date once
    # the sources differ too, in any format: no held-out date is reachable from train
    train_sources = {s for s, _ in splits["train"]}
    held_out_days = [datetime.date.fromisoformat(t) for t in dates["val"] | dates["test"]]
    held_out = {fmt(day) for day in held_out_days for fmt in FORMATS}
    assert not train_sources & held_out
    assert date_splits(5000, 500, 700, seed=0) == splits
    assert date_splits(5000, 500, 700, seed=1) != splits


def test_date_splits_errors():
    with pytest.raises(ValueError, match="leaves no date for training"):
        date_splits(10, 73049, 0)
    with pytest.raises(ValueError, match="n_val must be a non-negative integer"):
        date_splits(10, -1, 0)
    with pytest.raises(ValueError, match="formats must be a non-empty sequence"):
        make_date_pairs(3, seed=0, formats=[])


# ----------------------------------------------------------------------------- corpus


def test_corpus_deterministic_ascii_and_large():
    text = stdlib_docstrings()
    assert text == stdlib_docstrings()
    assert len(text) > 1_000_000  # 1,482,325 characters on CPython 3.11.7
    assert re.fullmatch(r"[\x20-\x7e\n]*", text)
    assert "\n\n\n" not in text
    assert text == text.strip()
    assert stdlib_docstrings(max_chars=1000) == text[:1000]


def test_corpus_holds_known_docstrings():
    text = stdlib_docstrings()
    # textwrap.dedent, unchanged from Python 3.10 to 3.13
    assert "Remove any common leading whitespace from every line in `text`." in text
    assert "Decode a JSON document from ``s`` (a ``str`` beginning with" in text  # json
    # nothing from the skipped folders (tkinter/__init__.py, idlelib/calltip.py,
    # test/support/__init__.py)
    assert "Wrapper functions for Tcl/Tk." not in text
    assert "Pop up a reminder of how to call a function." not in text
    assert "Supporting definitions for the Python regression tests." not in text


def test_train_val_split_contiguous_and_disjoint():
    text = stdlib_docstrings()
    train, val = train_val_split(text, val_fraction=0.1)
    assert train + "\n\n" + val == text  # contiguous blocks, nothing lost or shared
    assert 0.09 < len(val) / len(text) < 0.11
    assert text.startswith(train) and text.endswith(val)
    assert val[:200] not in train  # the validation text starts with unseen paragraphs
    small = "aaa\n\nbbb\n\nccc\n\nddd"
    assert train_val_split(small, 0.3) == ("aaa\n\nbbb\n\nccc", "ddd")
    assert train_val_split("abcdefghij", 0.2) == ("abcdefgh", "ij")


def test_train_val_split_errors():
    with pytest.raises(ValueError, match=r"val_fraction must be in \(0, 1\)"):
        train_val_split("abc", 1.0)
    with pytest.raises(TypeError, match="text must be a str"):
        train_val_split(["abc"])

"""Date translation, the sequence-to-sequence task of the Transformer chapter.

The source is a date written in one of many human formats, the target the same date in
ISO 8601, ``YYYY-MM-DD``::

    "Tuesday, March 5, 2024"  ->  "2024-03-05"
    "the 5th of March, 2024"  ->  "2024-03-05"
    "二〇二四年三月五日"        ->  "2024-03-05"

Every format fixes how it is read (``03/05/2024`` is always month first, ``05.03.2024``
always day first, years always have four digits), so the target is a function of the
source string. Dates are uniform between 1900-01-01 and 2099-12-31. Month and weekday
names come from tables below, not from ``strftime``, whose output depends on the locale.
Everything is generated from a seed with :class:`random.Random`; nothing is downloaded.
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Callable, Sequence

from .._validate import check_instance, check_int, check_positive_int

MIN_DATE = datetime.date(1900, 1, 1)
MAX_DATE = datetime.date(2099, 12, 31)

MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
MONTHS_ABBR = tuple(m[:3] for m in MONTHS)  # Jan, Feb, ..., Sep, ..., Dec
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
WEEKDAYS_ABBR = tuple(w[:3] for w in WEEKDAYS)  # Mon, ..., Sun
CHINESE_DIGITS = "〇一二三四五六七八九"
CHINESE_WEEKDAYS = ("一", "二", "三", "四", "五", "六", "日")  # 星期一 (Monday) .. 星期日

DateFormat = Callable[[datetime.date], str]


# ---------------------------------------------------------------------------- helpers


def ordinal(n: int) -> str:
    """``1 -> "1st"``, ``2 -> "2nd"``, ``3 -> "3rd"``, ``4 -> "4th"``, ``11 -> "11th"``,
    ``12 -> "12th"``, ``13 -> "13th"``, ``21 -> "21st"``, ``22 -> "22nd"``, ..."""
    n = check_positive_int(n, "n")
    if n % 100 in (11, 12, 13):
        return f"{n}th"
    return f"{n}" + {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def chinese_number(n: int) -> str:
    """Chinese numeral for ``1 <= n <= 99`` as written in dates: ``5 -> 五``,
    ``10 -> 十``, ``11 -> 十一``, ``20 -> 二十``, ``31 -> 三十一``."""
    n = check_positive_int(n, "n")
    if n > 99:
        raise ValueError(f"n must be at most 99, got {n}.")
    tens, units = divmod(n, 10)
    head = "" if tens == 0 else ("十" if tens == 1 else CHINESE_DIGITS[tens] + "十")
    return head + (CHINESE_DIGITS[units] if units else "")


def chinese_year(year: int) -> str:
    """A year read digit by digit with 〇 for zero: ``2024 -> 二〇二四``."""
    year = check_positive_int(year, "year", allow_zero=True)
    return "".join(CHINESE_DIGITS[int(c)] for c in f"{year:04d}")


def _check_date(d: object) -> None:
    if not isinstance(d, datetime.date):
        raise TypeError(f"d must be a datetime.date, got {type(d).__name__} {d!r}.")


# ---------------------------------------------------------------------------- formats
# One function per format; the examples are for 2024-03-05, a Tuesday.


def month_day_year(d: datetime.date) -> str:
    """``March 5, 2024``"""
    _check_date(d)
    return f"{MONTHS[d.month - 1]} {d.day}, {d.year}"


def day_month_year(d: datetime.date) -> str:
    """``5 March 2024``"""
    _check_date(d)
    return f"{d.day} {MONTHS[d.month - 1]} {d.year}"


def abbr_month_padded_day_year(d: datetime.date) -> str:
    """``Mar 05 2024``"""
    _check_date(d)
    return f"{MONTHS_ABBR[d.month - 1]} {d.day:02d} {d.year}"


def day_abbr_month_year_dashes(d: datetime.date) -> str:
    """``05-Mar-2024``"""
    _check_date(d)
    return f"{d.day:02d}-{MONTHS_ABBR[d.month - 1]}-{d.year}"


def weekday_month_day_year(d: datetime.date) -> str:
    """``Tuesday, March 5, 2024``"""
    _check_date(d)
    return f"{WEEKDAYS[d.weekday()]}, {month_day_year(d)}"


def abbr_weekday_day_abbr_month_year(d: datetime.date) -> str:
    """``Tue, 5 Mar 2024`` (as in e-mail headers)"""
    _check_date(d)
    return f"{WEEKDAYS_ABBR[d.weekday()]}, {d.day} {MONTHS_ABBR[d.month - 1]} {d.year}"


def ordinal_of_month(d: datetime.date) -> str:
    """``the 5th of March, 2024``"""
    _check_date(d)
    return f"the {ordinal(d.day)} of {MONTHS[d.month - 1]}, {d.year}"


def abbr_month_ordinal_year(d: datetime.date) -> str:
    """``Mar. 5th, 2024``"""
    _check_date(d)
    return f"{MONTHS_ABBR[d.month - 1]}. {ordinal(d.day)}, {d.year}"


def us_numeric(d: datetime.date) -> str:
    """``03/05/2024``: month first (United States)"""
    _check_date(d)
    return f"{d.month:02d}/{d.day:02d}/{d.year}"


def european_numeric(d: datetime.date) -> str:
    """``05.03.2024``: day first (Germany, Russia, ...)"""
    _check_date(d)
    return f"{d.day:02d}.{d.month:02d}.{d.year}"


def year_month_day_slashes(d: datetime.date) -> str:
    """``2024/3/5``: year first, no zero padding"""
    _check_date(d)
    return f"{d.year}/{d.month}/{d.day}"


def lower_month_day_year(d: datetime.date) -> str:
    """``march 5, 2024``"""
    _check_date(d)
    return month_day_year(d).lower()


def upper_day_abbr_month_year(d: datetime.date) -> str:
    """``05 MAR 2024``"""
    _check_date(d)
    return f"{d.day:02d} {MONTHS_ABBR[d.month - 1].upper()} {d.year}"


def upper_weekday_month_day_year(d: datetime.date) -> str:
    """``TUESDAY, MARCH 5, 2024``"""
    _check_date(d)
    return weekday_month_day_year(d).upper()


def chinese_arabic(d: datetime.date) -> str:
    """``2024年3月5日``"""
    _check_date(d)
    return f"{d.year}年{d.month}月{d.day}日"


def chinese_numerals(d: datetime.date) -> str:
    """``二〇二四年三月五日``"""
    _check_date(d)
    return f"{chinese_year(d.year)}年{chinese_number(d.month)}月{chinese_number(d.day)}日"


def chinese_padded_weekday(d: datetime.date) -> str:
    """``2024年03月05日星期二``"""
    _check_date(d)
    return f"{d.year}年{d.month:02d}月{d.day:02d}日星期{CHINESE_WEEKDAYS[d.weekday()]}"


FORMATS: list[DateFormat] = [
    month_day_year,
    day_month_year,
    abbr_month_padded_day_year,
    day_abbr_month_year_dashes,
    weekday_month_day_year,
    abbr_weekday_day_abbr_month_year,
    ordinal_of_month,
    abbr_month_ordinal_year,
    us_numeric,
    european_numeric,
    year_month_day_slashes,
    lower_month_day_year,
    upper_day_abbr_month_year,
    upper_weekday_month_day_year,
    chinese_arabic,
    chinese_numerals,
    chinese_padded_weekday,
]
"""The formats :func:`make_date_pairs` draws from by default: functions ``date -> str``."""


# ------------------------------------------------------------------------------- data


def random_date(rng: random.Random) -> datetime.date:
    """A date drawn uniformly from 1900-01-01 to 2099-12-31 (both included)."""
    check_instance(rng, "rng", random.Random, "a random.Random")
    return datetime.date.fromordinal(rng.randint(MIN_DATE.toordinal(), MAX_DATE.toordinal()))


def _check_formats(formats: Sequence[DateFormat] | None) -> list[DateFormat]:
    if isinstance(formats, str):
        raise TypeError("formats must be a sequence of functions date -> str, got a str.")
    formats = list(FORMATS if formats is None else formats)
    if not formats or not all(callable(f) for f in formats):
        raise ValueError("formats must be a non-empty sequence of functions date -> str.")
    return formats


def _pairs(
    dates: Sequence[datetime.date], rng: random.Random, formats: Sequence[DateFormat]
) -> list[tuple[str, str]]:
    """``(source, target)`` for each date, in a format drawn uniformly by ``rng``."""
    return [(rng.choice(formats)(d), d.isoformat()) for d in dates]


def make_date_pairs(
    n: int, seed: int, formats: Sequence[DateFormat] | None = None
) -> list[tuple[str, str]]:
    """``n`` pairs ``(source, target)`` such as ``("5 March 2024", "2024-03-05")``.

    Each pair draws a date with :func:`random_date`, then a format uniformly from
    ``formats`` (default :data:`FORMATS`), from ``random.Random(seed)``: the same seed
    gives the same pairs, and the first ``m`` of ``n`` pairs are the ``m`` pairs of the
    same seed. Dates may repeat; for train/validation/test sets whose dates do
    not overlap use :func:`date_splits`.
    """
    n = check_positive_int(n, "n", allow_zero=True)
    formats = _check_formats(formats)
    rng = random.Random(check_int(seed, "seed"))
    pairs = []
    for _ in range(n):
        day = random_date(rng)
        pairs.append((rng.choice(formats)(day), day.isoformat()))
    return pairs


def date_splits(
    n_train: int,
    n_val: int,
    n_test: int,
    seed: int = 0,
    formats: Sequence[DateFormat] | None = None,
) -> dict[str, list[tuple[str, str]]]:
    """Train, validation and test pairs whose *dates* do not overlap (no leakage).

    The set of all 73,049 dates is shuffled with ``random.Random(seed)``; the first
    ``n_val`` dates make the validation set and the next ``n_test`` the test set (each
    date once), and the training pairs draw their dates uniformly, with repetition, from
    the remaining ones. A date seen in training thus never appears in validation or test,
    in any format. Each pair's format is drawn uniformly from ``formats``.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}``, lists of ``(source, target)``.
    """
    n_train = check_positive_int(n_train, "n_train", allow_zero=True)
    n_val = check_positive_int(n_val, "n_val", allow_zero=True)
    n_test = check_positive_int(n_test, "n_test", allow_zero=True)
    formats = _check_formats(formats)
    first, last = MIN_DATE.toordinal(), MAX_DATE.toordinal()
    n_dates = last - first + 1
    if n_val + n_test > n_dates - 1:
        raise ValueError(
            f"n_val + n_test = {n_val + n_test} leaves no date for training: there are "
            f"{n_dates} dates from {MIN_DATE} to {MAX_DATE}."
        )
    rng = random.Random(check_int(seed, "seed"))
    ordinals = list(range(first, last + 1))
    rng.shuffle(ordinals)
    held_out = [datetime.date.fromordinal(o) for o in ordinals[: n_val + n_test]]
    train_pool = ordinals[n_val + n_test :]
    train = [datetime.date.fromordinal(rng.choice(train_pool)) for _ in range(n_train)]
    return {
        "train": _pairs(train, rng, formats),
        "val": _pairs(held_out[:n_val], rng, formats),
        "test": _pairs(held_out[n_val:], rng, formats),
    }

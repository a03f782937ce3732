"""Digit strips: numbers drawn with handwritten digits, to be read out as English words.

The image-to-text task of the multimodal chapter. A *strip* shows a number from 10 to 999
as handwritten digit images (:mod:`attnkit.data.digits`, 8 x 8 pixels) side by side in
three slots, ``(1, 8, 24)`` in all; the target is the number in words, e.g. ``342`` ->
``"three hundred forty two"``.

* **Right-aligned.** The units digit is always in slot 2 (pixel columns 16..23), the tens
  digit in slot 1 (columns 8..15) and the hundreds digit in slot 0 (columns 0..7); a
  two-digit number leaves slot 0 **blank** (all zeros, the digits' background). So each
  slot always holds the same decimal place, and each word describes a known slot
  (:func:`word_slots`).
* **Words.** American style, without "and" and without hyphens, one token per word:
  ``105`` -> ``"one hundred five"``, ``42`` -> ``"forty two"``, ``17`` -> ``"seventeen"``,
  ``300`` -> ``"three hundred"``. A teen ("seventeen") describes two digits, the tens
  word ("forty") one, "hundred" and the word before it the hundreds digit.
* **Vocabulary** (:data:`VOCAB`): ``<pad>`` 0, ``<bos>`` 1, ``<eos>`` 2, then the 29 words
  of the numbers 0..999 ("zero" .. "nineteen", "twenty" .. "ninety", "hundred").
* **No leakage of images.** Each strip's digit images are drawn from one split of
  :func:`~attnkit.data.digits.digit_splits`: :func:`strip_splits` builds the training strips
  from the training digits only, the test strips from the test digits only. The *numbers*
  are drawn independently (uniformly from 10..999), so a test number usually also occurs
  in training, written with other images: the test measures reading new handwriting,
  not composing unseen numbers.
* **Deterministic.** Everything is drawn from a ``torch.Generator`` seeded by ``seed``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .._validate import (
    check_generator,
    check_id_list,
    check_ids,
    check_instance,
    check_positive_int,
    check_tensor,
    fmt_shape,
)
from .digits import IMAGE_SIZE, Split, digit_splits

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
)
ONES = tuple(_ONES.split())  # ONES[n] names n < 20
TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
SPECIALS = ("<pad>", "<bos>", "<eos>")
VOCAB: tuple[str, ...] = (*SPECIALS, *ONES, *TENS[2:], "hundred")
"""The word-level vocabulary, the three special tokens then the 29 number words."""
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
WORD_TO_ID = {w: i for i, w in enumerate(VOCAB)}
NUM_SLOTS = 3
STRIP_SHAPE = (1, IMAGE_SIZE, NUM_SLOTS * IMAGE_SIZE)  # (C, H, W) = (1, 8, 24)
MAX_WORDS = 4  # "seven hundred seventy seven"
TARGET_LEN = MAX_WORDS + 1  # the words and EOS (tgt_out), or BOS and the words (tgt_in)
LOW, HIGH = 10, 999  # the numbers of the strips


def _check_number(n: object, low: int = 0, high: int = HIGH) -> int:
    n = check_positive_int(n, "n", allow_zero=True)
    if not low <= n <= high:
        raise ValueError(f"n must be an integer from {low} to {high}, got {n}.")
    return n


def number_to_words(n: int) -> str:
    """An integer from 0 to 999 in English words, American style: no "and", no hyphens.

    ``0`` -> ``"zero"``, ``17`` -> ``"seventeen"``, ``40`` -> ``"forty"``, ``42`` ->
    ``"forty two"``, ``105`` -> ``"one hundred five"``, ``300`` -> ``"three hundred"``,
    ``999`` -> ``"nine hundred ninety nine"``.
    """
    n = _check_number(n)
    if n < 20:
        return ONES[n]
    hundreds, rest = divmod(n, 100)
    words = [ONES[hundreds], "hundred"] if hundreds else []
    if rest >= 20:
        tens, units = divmod(rest, 10)
        words.append(TENS[tens])
        if units:
            words.append(ONES[units])
    elif rest:
        words.append(ONES[rest])
    return " ".join(words)


def word_slots(n: int) -> list[tuple[int, ...]]:
    """For each word of ``number_to_words(n)`` (``10 <= n <= 999``), the strip slots of the
    digits it describes (slot 0 = hundreds, 1 = tens, 2 = units; right-aligned strips).

    The hundreds word and "hundred" describe slot 0, a tens word ("forty") slot 1, a units
    word slot 2, and a teen or "ten" ("seventeen") both slots 1 and 2.
    ``342`` -> ``[(0,), (0,), (1,), (2,)]``, ``517`` -> ``[(0,), (0,), (1, 2)]``.
    """
    n = _check_number(n, LOW)
    hundreds, rest = divmod(n, 100)
    slots: list[tuple[int, ...]] = [(0,), (0,)] if hundreds else []
    if rest >= 20:
        slots.append((1,))
        if rest % 10:
            slots.append((2,))
    elif rest >= 10:
        slots.append((1, 2))
    elif rest:
        slots.append((2,))
    return slots


def encode_words(text: str) -> list[int]:
    """Words separated by spaces -> their ids in :data:`VOCAB` (no BOS/EOS added)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}.")
    unknown = [w for w in text.split() if w not in WORD_TO_ID]
    if unknown:
        raise ValueError(f"text has words outside the vocabulary: {unknown}.")
    return [WORD_TO_ID[w] for w in text.split()]


def decode_ids(ids: torch.Tensor | list[int]) -> str:
    """Ids -> words: stops at the first ``<eos>``, skips ``<pad>`` and ``<bos>``."""
    words = []
    for i in check_id_list(ids, "ids", len(VOCAB)):
        if i == EOS_ID:
            break
        if i not in (PAD_ID, BOS_ID):
            words.append(VOCAB[i])
    return " ".join(words)


def target_tensors(numbers: torch.Tensor | list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher-forcing targets of numbers ``(B,)``: ``tgt_in``, ``tgt_out``, both ``(B, 5)``.

    ``tgt_in = [<bos>, w_1, ..., w_k, <pad>...]`` and ``tgt_out = [w_1, ..., w_k, <eos>,
    <pad>...]`` (int64, right-padded with ``<pad>``): position ``t`` reads ``tgt_in[:t+1]``
    and predicts ``tgt_out[t]``.
    """
    if isinstance(numbers, torch.Tensor):
        check_ids(numbers, "numbers", dim=1)
        numbers = numbers.tolist()
    numbers = check_id_list(numbers, "numbers", HIGH + 1)  # 0..999, as number_to_words
    tgt_in = torch.full((len(numbers), TARGET_LEN), PAD_ID, dtype=torch.long)
    tgt_out = torch.full((len(numbers), TARGET_LEN), PAD_ID, dtype=torch.long)
    for b, n in enumerate(numbers):
        ids = encode_words(number_to_words(n))
        tgt_in[b, : len(ids) + 1] = torch.tensor([BOS_ID, *ids])
        tgt_out[b, : len(ids) + 1] = torch.tensor([*ids, EOS_ID])
    return tgt_in, tgt_out


def number_digits(numbers: torch.Tensor) -> torch.Tensor:
    """Numbers ``(B,)`` (10..999) -> the digit in each slot ``(B, 3)``, ``-1`` = blank."""
    check_ids(numbers, "numbers", dim=1)
    if numbers.numel() and (int(numbers.min()) < LOW or int(numbers.max()) > HIGH):
        raise ValueError(f"numbers must lie from {LOW} to {HIGH}.")
    digits = torch.stack([numbers // 100, numbers // 10 % 10, numbers % 10], dim=1)  # (B, 3)
    return digits.masked_fill((numbers < 100)[:, None] & (torch.arange(3) == 0), -1)


def draw_strips(
    split: Split, numbers: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw each number with digit images of ``split``, right-aligned in 3 slots.

    Each digit's image is drawn uniformly (with replacement) from the images of its class
    in ``split``.

    Args:
        split: a :class:`~attnkit.data.digits.Split` (``images (n, 1, 8, 8)``, ``labels``,
            ``index``).
        numbers: int64 ``(B,)``, each from 10 to 999.
        generator: for the draws.

    Returns:
        ``(images, digit_index)``: ``(B, 1, 8, 24)`` in ``[0, 1]`` (the split's dtype),
        and ``(B, 3)`` int64, the index (``split.index``: the position in
        :func:`~attnkit.data.digits.load_digit_images`) of the image in each slot, ``-1``
        for the blank slot of a two-digit number.
    """
    check_instance(split, "split", Split)
    check_generator(generator)
    check_tensor(numbers, "numbers")
    if numbers.dim() != 1 or numbers.is_floating_point() or numbers.dtype == torch.bool:
        raise ValueError(f"numbers must be an integer tensor (B,), got {fmt_shape(numbers.shape)}.")
    if numbers.numel() and (int(numbers.min()) < LOW or int(numbers.max()) > HIGH):
        raise ValueError(f"numbers must lie from {LOW} to {HIGH}.")
    digits = number_digits(numbers)  # (B, 3)
    B = len(numbers)
    images = split.images.new_zeros(B, *STRIP_SHAPE)  # (B, 1, 8, 24)
    index = torch.full((B, NUM_SLOTS), -1, dtype=torch.long)
    for d in range(10):
        pool = torch.nonzero(split.labels == d).flatten()  # positions in the split
        rows, slots = torch.nonzero(digits == d, as_tuple=True)
        if len(rows) == 0:
            continue
        if len(pool) == 0:
            raise ValueError(f"split has no image of the digit {d}.")
        pick = pool[torch.randint(len(pool), (len(rows),), generator=generator)]
        for r, s, p in zip(rows.tolist(), slots.tolist(), pick.tolist()):
            images[r, :, :, s * IMAGE_SIZE : (s + 1) * IMAGE_SIZE] = split.images[p]
            index[r, s] = int(split.index[p])
    return images, index


class Strips(NamedTuple):
    """A set of strips: ``images (n, 1, 8, 24)``, ``numbers (n,)``, ``tgt_in (n, 5)``,
    ``tgt_out (n, 5)`` (see :func:`target_tensors`) and ``digit_index (n, 3)`` (see
    :func:`draw_strips`)."""

    images: torch.Tensor
    numbers: torch.Tensor
    tgt_in: torch.Tensor
    tgt_out: torch.Tensor
    digit_index: torch.Tensor


def make_strips(split: Split, n: int, *, seed: int = 0) -> Strips:
    """``n`` strips of numbers drawn uniformly from 10..999, drawn with ``split``'s images.

    The same ``split``, ``n`` and ``seed`` give the same strips."""
    check_instance(split, "split", Split)
    n = check_positive_int(n, "n")
    seed = check_positive_int(seed, "seed", allow_zero=True)
    gen = torch.Generator().manual_seed(seed)
    numbers = torch.randint(LOW, HIGH + 1, (n,), generator=gen)  # (n,)
    images, index = draw_strips(split, numbers, gen)
    tgt_in, tgt_out = target_tensors(numbers)
    return Strips(images, numbers, tgt_in, tgt_out, index)


class StripSplits(NamedTuple):
    """Train, validation and test :class:`Strips`, each drawn from its own digit split."""

    train: Strips
    val: Strips
    test: Strips


def strip_splits(
    n_train: int = 20000, n_val: int = 500, n_test: int = 2000, *, seed: int = 0
) -> StripSplits:
    """Strips for training, validation and test from ``digit_splits(seed=seed)`` (its
    default fractions: 1,259 / 179 / 359 digit images).

    The strips of each set use only the digit images of the matching split, so no test
    image is ever seen in training. Each set has its own generator (seeds ``seed``,
    ``seed + 1``, ``seed + 2``).
    """
    for name, value in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        check_positive_int(value, name)
    seed = check_positive_int(seed, "seed", allow_zero=True)
    digits = digit_splits(seed=seed)
    return StripSplits(
        make_strips(digits.train, n_train, seed=seed),
        make_strips(digits.val, n_val, seed=seed + 1),
        make_strips(digits.test, n_test, seed=seed + 2),
    )


def strip_batches(
    strips: Strips, batch_size: int, num_batches: int, *, seed: int = 0
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``num_batches`` batches ``(images, tgt_in, tgt_out)`` of ``batch_size`` strips:
    the strips in a random order (``seed``), reshuffled each time they run out; a pass
    ends with its last full batch."""
    check_instance(strips, "strips", Strips)
    batch_size = check_positive_int(batch_size, "batch_size")
    num_batches = check_positive_int(num_batches, "num_batches")
    n = len(strips.numbers)
    if batch_size > n:
        raise ValueError(f"batch_size={batch_size} exceeds the number of strips ({n}).")
    gen = torch.Generator().manual_seed(check_positive_int(seed, "seed", allow_zero=True))
    out: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    while len(out) < num_batches:
        order = torch.randperm(n, generator=gen)
        for start in range(0, n - batch_size + 1, batch_size):
            idx = order[start : start + batch_size]
            out.append((strips.images[idx], strips.tgt_in[idx], strips.tgt_out[idx]))
            if len(out) == num_batches:
                break
    return out

"""Handwritten digits that ship with scikit-learn: the image data of the vision chapters.

:func:`sklearn.datasets.load_digits` returns 1,797 grey-scale images of 8 x 8 pixels
(values 0..16), the test part of the UCI "Optical Recognition of Handwritten Digits" data
set, about 180 per class. It is installed with scikit-learn, so nothing is downloaded.
scikit-learn is imported only when the images are loaded.

:func:`digit_splits` cuts them into train / validation / test sets that are stratified by
class, disjoint (every image is in exactly one split) and the same for every reader with the
same ``seed``. The data set has no writer identities, so the same person's handwriting
can appear in several splits; accuracies measured on it are optimistic compared with a
test on unseen writers.
"""

from __future__ import annotations

import functools
import numbers
from typing import NamedTuple

import torch

from .._validate import check_positive_int

NUM_CLASSES = 10
IMAGE_SIZE = 8
MAX_PIXEL = 16.0  # load_digits' pixel values are integers 0..16


@functools.lru_cache(maxsize=1)
def _load() -> tuple[torch.Tensor, torch.Tensor]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "attnkit.data.digits needs scikit-learn: pip install 'attnkit[notebooks]' "
            "(or pip install scikit-learn)."
        ) from err
    bunch = load_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32) / MAX_PIXEL  # (1797, 8, 8)
    labels = torch.as_tensor(bunch.target, dtype=torch.long)  # (1797,)
    return images[:, None], labels  # (N, 1, 8, 8) in [0, 1], (N,)


def load_digit_images(dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits: images ``(N, 1, 8, 8)`` of ``dtype`` scaled to ``[0, 1]`` (pixel / 16)
    and labels ``(N,)`` (``torch.long``, 0..9), in scikit-learn's order. Returns new tensors.
    """
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}.")
    images, labels = _load()
    return images.to(dtype=dtype, copy=True), labels.clone()


class Split(NamedTuple):
    """One split: ``images (n, 1, 8, 8)``, ``labels (n,)`` and ``index (n,)``, the positions
    of the images in :func:`load_digit_images`' order."""

    images: torch.Tensor
    labels: torch.Tensor
    index: torch.Tensor


class DigitSplits(NamedTuple):
    """Train, validation and test :class:`Split`\\ s, disjoint and stratified by class."""

    train: Split
    val: Split
    test: Split


def _check_fraction(x: object, name: str) -> float:
    if isinstance(x, bool) or not isinstance(x, numbers.Real) or not 0.0 <= float(x) < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1), got {x!r}.")
    return float(x)


def digit_splits(
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> DigitSplits:
    """Split the digits into train / validation / test, stratified by class.

    In each class, the images are shuffled with ``seed``; the first
    ``round(test_fraction * n_c)`` go to test, the next ``round(val_fraction * n_c)`` to
    validation, the rest to train. Each split is then ordered by original index. The
    defaults give 1,259 / 179 / 359 images.

    Args:
        val_fraction, test_fraction: fractions in ``[0, 1)`` whose sum is below 1.
        seed: a non-negative integer; the same seed gives the same splits.
        dtype: floating dtype of the images.
    """
    val_fraction = _check_fraction(val_fraction, "val_fraction")
    test_fraction = _check_fraction(test_fraction, "test_fraction")
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"val_fraction + test_fraction must be below 1 so that some images are left for "
            f"training, got {val_fraction} + {test_fraction}."
        )
    seed = check_positive_int(seed, "seed", allow_zero=True)
    images, labels = load_digit_images(dtype)
    gen = torch.Generator().manual_seed(seed)
    parts: dict[str, list[torch.Tensor]] = {"train": [], "val": [], "test": []}
    for c in range(NUM_CLASSES):
        idx = torch.nonzero(labels == c).flatten()  # (n_c,)
        idx = idx[torch.randperm(len(idx), generator=gen)]
        n_test = round(test_fraction * len(idx))
        n_val = round(val_fraction * len(idx))
        parts["test"].append(idx[:n_test])
        parts["val"].append(idx[n_test : n_test + n_val])
        parts["train"].append(idx[n_test + n_val :])

    def make(name: str) -> Split:
        index = torch.cat(parts[name]).sort().values  # (n,)
        return Split(images[index], labels[index], index)

    return DigitSplits(make("train"), make("val"), make("test"))

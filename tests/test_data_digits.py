"""Tests of attnkit.data.digits: scikit-learn's 8x8 digits and their splits."""

import pytest
import torch

from attnkit.data.digits import digit_splits, load_digit_images

sklearn_datasets = pytest.importorskip("sklearn.datasets")


def test_images_match_sklearn():
    images, labels = load_digit_images()
    bunch = sklearn_datasets.load_digits()
    assert images.shape == (1797, 1, 8, 8) and images.dtype == torch.float32
    assert labels.dtype == torch.long and labels.tolist() == bunch.target.tolist()
    assert torch.equal(images[:, 0] * 16, torch.as_tensor(bunch.images, dtype=torch.float32))
    assert images.min() == 0 and images.max() == 1


def test_load_returns_copies_and_dtype():
    a, la = load_digit_images(torch.float64)
    assert a.dtype == torch.float64
    a.zero_()
    la.zero_()
    b, lb = load_digit_images()
    assert b.sum() > 0 and lb.sum() > 0


def test_splits_are_disjoint_complete_stratified_and_deterministic():
    s = digit_splits(seed=3)
    images, labels = load_digit_images()
    index = torch.cat([s.train.index, s.val.index, s.test.index])
    assert sorted(index.tolist()) == list(range(1797))  # disjoint and complete
    assert (len(s.train.index), len(s.val.index), len(s.test.index)) == (1259, 179, 359)
    for part in s:
        assert torch.equal(part.images, images[part.index])
        assert torch.equal(part.labels, labels[part.index])
        assert torch.equal(part.index, part.index.sort().values)
    counts = torch.bincount(labels, minlength=10).float()
    test_counts = torch.bincount(s.test.labels, minlength=10).float()
    assert torch.all((test_counts - 0.2 * counts).abs() <= 0.5)  # rounded per class
    again = digit_splits(seed=3)
    assert torch.equal(again.test.index, s.test.index)
    other = digit_splits(seed=4)
    assert not torch.equal(other.test.index, s.test.index)


def test_split_fractions_follow_arguments():
    s = digit_splits(0.0, 0.5, seed=0)
    assert len(s.val.index) == 0
    assert abs(len(s.test.index) - 1797 / 2) <= 10


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"val_fraction": 0.5, "test_fraction": 0.5}, "below 1"),
        ({"test_fraction": -0.1}, "test_fraction"),
        ({"val_fraction": 1}, "val_fraction"),
        ({"seed": -1}, "seed"),
        ({"dtype": torch.long}, "dtype"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        digit_splits(**kwargs)

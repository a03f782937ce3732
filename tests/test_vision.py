"""Tests of attnkit.vision: shifts, batches, evaluation and the training wrapper.

References: pixel loops for the shifts, ``torch.roll`` on padded images, scikit-learn's
``confusion_matrix``, hand-counted epochs.
"""

import math

import pytest
import torch
from torch import nn

from attnkit.models.cnn import SmallCNN
from attnkit.vision import (
    accuracy,
    classification_loss,
    classifier_batches,
    confusion_matrix,
    fit_classifier,
    predict,
    random_shift,
    shift_images,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _loop_shift(images, shifts):
    out = torch.zeros_like(images)
    B, _, H, W = images.shape
    for b in range(B):
        dy, dx = (int(s) for s in shifts[b])
        for i in range(H):
            for j in range(W):
                if 0 <= i - dy < H and 0 <= j - dx < W:
                    out[b, :, i, j] = images[b, :, i - dy, j - dx]
    return out


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (4, 1, 8, 8), (3, 2, 5, 7)])
def test_shift_images_matches_loop(shape):
    g = torch.Generator().manual_seed(0)
    images = torch.rand(*shape, generator=g)
    shifts = torch.randint(-3, 4, (shape[0], 2), generator=g)
    shifts[0] = torch.tensor([0, 0])
    got = shift_images(images, shifts)
    assert got.shape == images.shape
    torch.testing.assert_close(got, _loop_shift(images, shifts), rtol=0, atol=0)
    torch.testing.assert_close(got[0], images[0], rtol=0, atol=0)  # (0, 0) is the identity


def test_shift_images_equals_roll_of_padded_image():
    g = torch.Generator().manual_seed(1)
    images = torch.rand(2, 1, 6, 6, generator=g, dtype=torch.float64)
    shifts = torch.tensor([[2, -1], [-3, 3]])
    for b in range(2):
        padded = nn.functional.pad(images[b], (6, 6, 6, 6))  # (1, 18, 18), zero border
        rolled = torch.roll(padded, shifts=tuple(shifts[b].tolist()), dims=(1, 2))
        torch.testing.assert_close(shift_images(images, shifts)[b], rolled[:, 6:12, 6:12])


def test_shift_past_the_border_gives_zeros():
    images = torch.ones(2, 1, 4, 4)
    out = shift_images(images, torch.tensor([[4, 0], [0, -5]]))
    assert out.abs().sum() == 0


def test_random_shift_is_reproducible_and_bounded():
    images = torch.zeros(200, 1, 9, 9)
    images[:, :, 4, 4] = 1.0  # a single bright pixel in the centre
    a = random_shift(images, 2, generator=torch.Generator().manual_seed(5))
    b = random_shift(images, 2, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b)
    where = a[:, 0].flatten(1).argmax(dim=1)  # (200,)
    rows, cols = where // 9 - 4, where % 9 - 4
    assert rows.abs().max() == 2 and cols.abs().max() == 2  # every shift up to 2 occurs
    assert set(rows.tolist()) == set(range(-2, 3)) and set(cols.tolist()) == set(range(-2, 3))
    torch.testing.assert_close(random_shift(images, 0), images)


def test_shift_bad_arguments():
    with pytest.raises(ValueError, match="shifts"):
        shift_images(torch.rand(2, 1, 4, 4), torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="shifts"):
        shift_images(torch.rand(2, 1, 4, 4), torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        shift_images(torch.rand(4, 4), torch.zeros(1, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="max_shift"):
        random_shift(torch.rand(2, 1, 4, 4), -1)


def test_classifier_batches_cover_each_epoch_once():
    images = torch.arange(10.0).reshape(10, 1, 1, 1)
    labels = torch.arange(10)
    stream = classifier_batches(images, labels, 4, seed=0)
    for _ in range(3):  # three epochs of 4 + 4 + 2
        batches = [next(stream) for _ in range(3)]
        assert [len(y) for _, y in batches] == [4, 4, 2]
        seen = torch.cat([y for _, y in batches])
        assert sorted(seen.tolist()) == list(range(10))
        for x, y in batches:
            assert torch.equal(x.flatten().long(), y)  # images stay paired with labels
    again = classifier_batches(images, labels, 4, seed=0)
    first = classifier_batches(images, labels, 4, seed=0)
    assert all(torch.equal(next(again)[1], next(first)[1]) for _ in range(6))


def test_classifier_batches_shift_keeps_labels():
    images = torch.zeros(6, 1, 5, 5)
    images[:, :, 2, 2] = 1.0
    stream = classifier_batches(images, torch.arange(6), 6, max_shift=1, seed=0)
    x, _ = next(stream)
    assert torch.equal(x.sum(dim=(1, 2, 3)), torch.ones(6))  # a 1-pixel shift loses nothing
    assert not torch.equal(x, images)


def test_confusion_matrix_matches_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    g = torch.Generator().manual_seed(2)
    labels, preds = (
        torch.randint(0, 5, (300,), generator=g),
        torch.randint(0, 5, (300,), generator=g),
    )
    want = metrics.confusion_matrix(labels.numpy(), preds.numpy(), labels=list(range(5)))
    got = confusion_matrix(preds, labels, 5)
    assert got.dtype == torch.long and torch.equal(got, torch.as_tensor(want))
    with pytest.raises(ValueError, match="predictions"):
        confusion_matrix(torch.tensor([5]), torch.tensor([0]), 5)
    with pytest.raises(ValueError, match="same shape"):
        confusion_matrix(torch.tensor([1, 2]), torch.tensor([0]), 5)


def test_predict_and_accuracy_restore_mode():
    torch.manual_seed(0)
    model = SmallCNN(dropout=0.5)
    model.train()
    x = torch.rand(20, 1, 8, 8)
    logits = predict(model, x, batch_size=7)
    assert model.training
    model.eval()
    torch.testing.assert_close(logits, model(x))
    y = logits.argmax(-1)
    assert accuracy(model, x, y) == 1.0
    assert accuracy(model, x, (y + 1) % 10) == 0.0
    model.train()
    assert math.isclose(
        accuracy(model, x, torch.where(torch.arange(20) < 5, y, (y + 1) % 10)), 0.25
    )


def test_fit_classifier_learns_and_logs_epochs():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    images = torch.rand(64, 1, 8, 8, generator=g) * 0.1
    labels = torch.arange(64) % 2
    images[labels == 1, :, :4] += 0.8  # class 1: bright upper half
    model = SmallCNN(8, 1, 2, (4, 8), 16)
    result = fit_classifier(
        model, images, labels, epochs=10, batch_size=16, lr=1e-2, val=(images, labels),
        eval_every_epochs=5, progress=False,
    )  # fmt: skip
    assert result.steps_done == 40
    assert [h["step"] for h in result.history] == [20, 40]
    assert result.history[-1]["val_acc"] == 1.0
    assert result.history[-1]["val_loss"] < result.history[0]["train_loss"]
    loss = classification_loss(model, (images, labels))
    assert loss.requires_grad and loss.item() < 0.2


def test_fit_classifier_bad_arguments():
    model = SmallCNN()
    x, y = torch.rand(4, 1, 8, 8), torch.arange(4)
    with pytest.raises(ValueError, match="warmup_epochs"):
        fit_classifier(model, x, y, epochs=1, warmup_epochs=2, progress=False)
    with pytest.raises(ValueError, match="labels"):
        fit_classifier(model, x, y.float(), epochs=1, progress=False)
    with pytest.raises(ValueError, match="epochs"):
        fit_classifier(model, x, y, epochs=0, progress=False)

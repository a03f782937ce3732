"""Training helpers for small image classifiers (the Vision Transformer chapter).

* :func:`shift_images` / :func:`random_shift`: translate images by whole pixels, filling
  with zeros (the background of the digits): the data augmentation of the chapter.
* :func:`classifier_batches`: an endless stream of shuffled (and optionally shifted)
  mini-batches, epoch after epoch, for :func:`attnkit.training.train`.
* :func:`fit_classifier`: epoch-based training of any ``(B, C, H, W) -> (B, K)`` model with
  cross-entropy, built on :func:`attnkit.training.train` (AdamW, warm-up + cosine, clipping).
* :func:`predict`, :func:`accuracy`, :func:`confusion_matrix`: evaluation.

Images are channels-first ``(B, C, H, W)`` floating tensors; labels are ``torch.long``
class indices ``(B,)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ._validate import check_images, check_positive_int, check_tensor, fmt_shape
from .training import TrainConfig, TrainResult, train


def _check_labels(labels: object, n: int, name: str = "labels") -> torch.Tensor:
    check_tensor(labels, name)
    assert isinstance(labels, torch.Tensor)
    if labels.dtype != torch.long or labels.shape != (n,):
        raise ValueError(
            f"{name} must be a torch.long tensor of shape ({n},) (one class index per image), "
            f"got dtype {labels.dtype} and shape {fmt_shape(labels.shape)}."
        )
    return labels


# ----------------------------------------------------------------------- augmentation


def shift_images(images: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Translate each image by whole pixels, filling the uncovered border with zeros.

    ``out[b, :, i, j] = images[b, :, i - dy_b, j - dx_b]`` where that pixel exists, else 0:
    a positive ``dy`` moves the content down, a positive ``dx`` to the right. Pixels moved
    past the border are lost.

    Args:
        images: ``(B, C, H, W)``, floating.
        shifts: ``(B, 2)`` integer tensor of ``(dy, dx)`` per image.

    Returns:
        ``(B, C, H, W)``, a new tensor.
    """
    images = check_images(images)
    check_tensor(shifts, "shifts")
    B, _, H, W = images.shape
    if shifts.shape != (B, 2) or shifts.is_floating_point() or shifts.dtype == torch.bool:
        raise ValueError(
            f"shifts must be an integer tensor of shape (B, 2) = ({B}, 2) holding (dy, dx) per "
            f"image, got dtype {shifts.dtype} and shape {fmt_shape(shifts.shape)}."
        )
    shifts = shifts.to(device=images.device, dtype=torch.long)
    rows = torch.arange(H, device=images.device) - shifts[:, :1]  # (B, H): source row
    cols = torch.arange(W, device=images.device) - shifts[:, 1:]  # (B, W): source column
    valid = ((rows >= 0) & (rows < H))[:, :, None] & ((cols >= 0) & (cols < W))[:, None, :]
    b = torch.arange(B, device=images.device)[:, None, None]  # (B, 1, 1)
    r, c = rows.clamp(0, H - 1)[:, :, None], cols.clamp(0, W - 1)[:, None, :]
    out = images[b, :, r, c]  # (B, H, W, C): advanced indices first
    return out.permute(0, 3, 1, 2) * valid[:, None].to(images.dtype)  # (B, C, H, W)


def random_shift(
    images: torch.Tensor, max_shift: int, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Shift each image by ``(dy, dx)`` drawn uniformly from ``{-max_shift, ..., max_shift}^2``
    (independently per image), with zero fill; see :func:`shift_images`.

    Args:
        images: ``(B, C, H, W)``, floating.
        max_shift: largest shift in pixels, ``>= 0`` (0 returns a copy).
        generator: a CPU ``torch.Generator`` for reproducible shifts.
    """
    images = check_images(images)
    max_shift = check_positive_int(max_shift, "max_shift", allow_zero=True)
    shape = (images.shape[0], 2)
    shifts = torch.randint(-max_shift, max_shift + 1, shape, generator=generator)  # (B, 2)
    return shift_images(images, shifts)


# ------------------------------------------------------------------------- batches


def classifier_batches(
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    *,
    max_shift: int = 0,
    seed: int = 0,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless mini-batches ``(images (b, C, H, W), labels (b,))``, epoch after epoch.

    Each epoch is a new random permutation of the ``n`` examples cut into
    ``ceil(n / batch_size)`` batches (the last one smaller if ``batch_size`` does not divide
    ``n``); with ``max_shift > 0`` every image of every batch is shifted at random
    (:func:`random_shift`), so each epoch sees new variants. Shuffling and shifts use their
    own generator seeded with ``seed``, independent of torch's global one.
    """
    images = check_images(images)
    labels = _check_labels(labels, images.shape[0])
    batch_size = check_positive_int(batch_size, "batch_size")
    max_shift = check_positive_int(max_shift, "max_shift", allow_zero=True)
    gen = torch.Generator().manual_seed(check_positive_int(seed, "seed", allow_zero=True))
    n = images.shape[0]
    if n == 0:
        raise ValueError("images must hold at least one example, got none.")
    while True:
        order = torch.randperm(n, generator=gen)  # (n,)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            x = images[idx]  # (b, C, H, W)
            if max_shift:
                x = random_shift(x, max_shift, generator=gen)
            yield x, labels[idx]


def classification_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Mean cross-entropy of ``model(images)`` (logits ``(b, K)``) against ``labels``: the
    ``loss_fn`` of :func:`attnkit.training.train` for a classifier."""
    images, labels = batch
    return F.cross_entropy(model(images), labels)


# ---------------------------------------------------------------------- evaluation


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Logits ``(n, K)`` of ``model`` on ``images`` ``(n, C, H, W)``, in eval mode (the
    model's mode is restored) without gradients, ``batch_size`` images at a time."""
    images = check_images(images)
    batch_size = check_positive_int(batch_size, "batch_size")
    was_training = model.training
    model.eval()
    try:
        out = [model(images[i : i + batch_size]) for i in range(0, images.shape[0], batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out)


def accuracy(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 512
) -> float:
    """Fraction of ``images`` whose predicted class, the argmax of the logits, is the label."""
    labels = _check_labels(labels, check_images(images).shape[0])
    predictions = predict(model, images, batch_size).argmax(dim=-1)  # (n,)
    return (predictions == labels).double().mean().item()


def confusion_matrix(
    predictions: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """``(K, K)`` counts (``torch.long``): entry ``[t, p]`` is how many examples of true class
    ``t`` were predicted as ``p``; rows are true classes, columns predictions.

    Args:
        predictions, labels: ``(n,)`` integer class indices in ``[0, num_classes)``.
        num_classes: ``K``.
    """
    k = check_positive_int(num_classes, "num_classes")
    for name, t in (("predictions", predictions), ("labels", labels)):
        check_tensor(t, name)
        if t.dim() != 1 or t.is_floating_point() or t.dtype == torch.bool:
            raise ValueError(
                f"{name} must be a 1-D integer tensor, got {t.dtype} {fmt_shape(t.shape)}."
            )
        if t.numel() and (t.min() < 0 or t.max() >= k):
            raise ValueError(f"{name} must lie in [0, {k}), got values in [{t.min()}, {t.max()}].")
    if predictions.shape != labels.shape:
        raise ValueError(
            f"predictions and labels must have the same shape, got "
            f"{fmt_shape(predictions.shape)} and {fmt_shape(labels.shape)}."
        )
    flat = labels.long() * k + predictions.long()  # (n,)
    return torch.bincount(flat, minlength=k * k).reshape(k, k)


# ------------------------------------------------------------------------- training


def fit_classifier(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 0.05,
    warmup_epochs: int = 1,
    max_shift: int = 0,
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
    eval_every_epochs: int = 1,
    seed: int = 0,
    progress: bool = True,
    max_seconds: float | None = None,
) -> TrainResult:
    """Train a classifier with cross-entropy for ``epochs`` passes over the data.

    A thin epoch-based wrapper of :func:`attnkit.training.train`: ``steps = epochs *
    ceil(n / batch_size)`` AdamW updates (weight decay on the matrices only), a linear
    warm-up of ``warmup_epochs`` epochs then a cosine decay to 0, gradient clipping at 1,
    batches from :func:`classifier_batches` (shuffled each epoch, randomly shifted by up to
    ``max_shift`` pixels).

    Args:
        model: ``(B, C, H, W) -> logits (B, K)``; trained in place.
        images, labels: the training set, ``(n, C, H, W)`` floating and ``(n,)`` long.
        epochs: passes over the training set, ``>= 1``.
        batch_size, lr, weight_decay: as named.
        warmup_epochs: length of the linear warm-up, ``0 <= warmup_epochs <= epochs``.
        max_shift: random-shift augmentation in pixels (0 = none).
        val: optional ``(images, labels)``; then every ``eval_every_epochs`` epochs (and at
            the end) the history records ``val_loss`` and ``val_acc`` on it.
        seed: seeds :func:`attnkit.training.train` (dropout) and the batches.
        progress: show a progress bar.
        max_seconds: optional wall-clock guard: exceeding it raises
            :class:`~attnkit.training.TrainingTimeout` (see :class:`~attnkit.training.TrainConfig`).

    Returns:
        The :class:`~attnkit.training.TrainResult`; ``history[i]["step"] / steps_per_epoch``
        is the epoch of an entry.
    """
    images = check_images(images)
    labels = _check_labels(labels, images.shape[0])
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    warmup_epochs = check_positive_int(warmup_epochs, "warmup_epochs", allow_zero=True)
    if warmup_epochs > epochs:
        raise ValueError(f"warmup_epochs ({warmup_epochs}) must not exceed epochs ({epochs}).")
    eval_every_epochs = check_positive_int(eval_every_epochs, "eval_every_epochs")
    steps_per_epoch = math.ceil(images.shape[0] / batch_size)
    config = TrainConfig(
        steps=epochs * steps_per_epoch,
        lr=lr,
        weight_decay=weight_decay,
        warmup_steps=warmup_epochs * steps_per_epoch,
        schedule="cosine",
        grad_clip=1.0,
        eval_every=eval_every_epochs * steps_per_epoch,
        seed=seed,
        progress=progress,
        max_seconds=max_seconds,
    )
    evaluate: Any = None
    if val is not None:
        val_images = check_images(val[0], "val[0]")
        val_labels = _check_labels(val[1], val_images.shape[0], "val[1]")

        def evaluate(m: nn.Module) -> dict[str, float]:
            logits = predict(m, val_images)  # (n_val, K)
            return {
                "val_loss": F.cross_entropy(logits, val_labels).item(),
                "val_acc": (logits.argmax(-1) == val_labels).double().mean().item(),
            }

    batches = classifier_batches(images, labels, batch_size, max_shift=max_shift, seed=seed)
    return train(model, classification_loss, batches, config, evaluate=evaluate)

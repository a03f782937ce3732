"""A small LeNet-style convolutional network: the baseline of the vision chapter.

LeCun et al. (1998), "Gradient-Based Learning Applied to Document Recognition", stack
convolutions, subsampling and fully connected layers. :class:`SmallCNN` keeps that shape with
today's defaults: per stage a ``3 x 3`` convolution (padding 1, so the size is kept), a ReLU
and a ``2 x 2`` max-pool that halves the height and width; then a flatten, one hidden
fully connected layer with a ReLU, and a linear classifier::

    (B, C, H, W) -> [conv3x3 -> ReLU -> maxpool2] x len(widths) -> flatten
                 -> Linear(widths[-1] * (H / 2^k) * (W / 2^k), hidden) -> ReLU -> Linear(hidden, K)

Unlike a Vision Transformer, the network is built to be local (each convolution sees a
``3 x 3`` neighbourhood) and translation-equivariant up to the pooling: the *inductive bias*
that a ViT has to learn from data.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .._validate import (
    check_images,
    check_positive_int,
    check_probability,
)


class SmallCNN(nn.Module):
    """A LeNet-style CNN for small square images: ``(B, C, H, W) -> logits (B, num_classes)``.

    Args:
        image_size: side ``H = W`` of the input images; divisible by ``2 ** len(widths)``.
        channels: input channels ``C``.
        num_classes: number of classes ``K``.
        widths: output channels of the convolution of each stage (one stage per entry).
        hidden: width of the hidden fully connected layer.
        dropout: dropout before the classifier (0 = none).

    Attributes: ``convs`` (an ``nn.ModuleList`` of ``Conv2d``), ``fc`` (the hidden layer),
    ``head`` (the classifier), ``dropout``.

    With the defaults (8 x 8 grey-scale digits, ``widths=(16, 32)``, ``hidden=64``) the
    feature map after the two stages is ``(B, 32, 2, 2)`` and the model has 13,706
    parameters.
    """

    def __init__(
        self,
        image_size: int = 8,
        channels: int = 1,
        num_classes: int = 10,
        widths: Sequence[int] = (16, 32),
        hidden: int = 64,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.image_size = check_positive_int(image_size, "image_size")
        self.channels = check_positive_int(channels, "channels")
        num_classes = check_positive_int(num_classes, "num_classes")
        hidden = check_positive_int(hidden, "hidden")
        check_probability(dropout, "dropout")
        if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence) or not widths:
            raise ValueError(
                f"widths must be a non-empty sequence of positive ints, got {widths!r}."
            )
        widths = tuple(check_positive_int(w, f"widths[{i}]") for i, w in enumerate(widths))
        factor = 2 ** len(widths)
        if image_size % factor:
            raise ValueError(
                f"image_size={image_size} must be divisible by 2 ** len(widths) = {factor}: "
                f"each of the {len(widths)} stages halves the image with a 2x2 max-pool."
            )
        self.widths = widths
        ins = (channels, *widths[:-1])
        self.convs = nn.ModuleList(nn.Conv2d(i, o, 3, padding=1) for i, o in zip(ins, widths))
        side = image_size // factor
        self.fc = nn.Linear(widths[-1] * side * side, hidden)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, num_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The convolutional stages: ``(B, C, H, W) -> (B, widths[-1], H / 2^k, W / 2^k)``."""
        chw = (self.channels, self.image_size, self.image_size)
        check_images(images, chw=chw, module=self)
        x = images
        for conv in self.convs:
            x = F.max_pool2d(F.relu(conv(x)), 2)  # (B, width, H', W') with H' halved
        return x

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, H, W)`` (the parameters' dtype) -> logits ``(B, num_classes)``."""
        x = self.features(images).flatten(1)  # (B, widths[-1] * H' * W')
        x = self.dropout(F.relu(self.fc(x)))  # (B, hidden)
        return self.head(x)  # (B, num_classes)

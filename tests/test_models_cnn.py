"""Tests of attnkit.models.cnn.SmallCNN.

References are independent of the module's code path: parameter counts by hand, an
``nn.Sequential`` LeNet built here with the same weights, a convolution written as a loop
over pixels, and a few steps of training that must fit a tiny data set.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attnkit.models.cnn import SmallCNN
from attnkit.training import count_parameters

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.mark.parametrize(
    "image_size,channels,classes,widths,hidden",
    [(8, 1, 10, (16, 32), 64), (16, 3, 5, (4, 8, 6), 7), (4, 2, 3, (5,), 9)],
)
def test_shapes_and_parameter_count(image_size, channels, classes, widths, hidden):
    torch.manual_seed(0)
    model = SmallCNN(image_size, channels, classes, widths, hidden)
    x = torch.randn(3, channels, image_size, image_size)
    side = image_size // 2 ** len(widths)
    assert model.features(x).shape == (3, widths[-1], side, side)
    assert model(x).shape == (3, classes)
    ins = (channels, *widths[:-1])
    conv = sum(i * o * 9 + o for i, o in zip(ins, widths))
    fc = widths[-1] * side * side * hidden + hidden + hidden * classes + classes
    assert count_parameters(model) == conv + fc


def test_default_has_13706_parameters():
    assert count_parameters(SmallCNN()) == 13_706  # the number its docstring states


def test_equals_sequential_lenet_with_same_weights():
    torch.manual_seed(1)
    model = SmallCNN(8, 1, 10, (16, 32), 64).eval()
    ref = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(128, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )
    pairs = [(0, model.convs[0]), (3, model.convs[1]), (7, model.fc), (9, model.head)]
    with torch.no_grad():
        for i, layer in pairs:
            ref[i].weight.copy_(layer.weight)
            ref[i].bias.copy_(layer.bias)
    x = torch.rand(5, 1, 8, 8)
    torch.testing.assert_close(model(x), ref(x))


def test_first_convolution_matches_pixel_loop():
    torch.manual_seed(2)
    model = SmallCNN(4, 2, 3, (3,), 4).double()
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64)
    conv = model.convs[0]
    padded = F.pad(x, (1, 1, 1, 1))
    want = torch.empty(1, 3, 4, 4, dtype=torch.float64)
    for o in range(3):
        for i in range(4):
            for j in range(4):
                patch = padded[0, :, i : i + 3, j : j + 3]
                want[0, o, i, j] = (patch * conv.weight[o]).sum() + conv.bias[o]
    pooled = F.relu(want).reshape(1, 3, 2, 2, 2, 2).amax(dim=(3, 5))  # 2x2 max-pool
    torch.testing.assert_close(model.features(x), pooled)


def test_fits_a_tiny_data_set():
    torch.manual_seed(3)
    model = SmallCNN(8, 1, 4, (4, 8), 16)
    x, y = torch.rand(16, 1, 8, 8), torch.arange(16) % 4
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = F.cross_entropy(model(x), y).item()
    for _ in range(150):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    assert loss.item() < 0.05 * first
    assert (model(x).argmax(-1) == y).all()


def test_dropout_only_in_train_mode():
    torch.manual_seed(4)
    model = SmallCNN(dropout=0.5)
    x = torch.rand(4, 1, 8, 8)
    model.eval()
    torch.testing.assert_close(model(x), model(x))
    model.train()
    assert not torch.allclose(model(x), model(x))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(image_size=6), "divisible by 2 \\*\\* len"),
        (dict(widths=()), "widths"),
        (dict(widths=(4, 0)), "widths\\[1\\]"),
        (dict(hidden=0), "hidden"),
        (dict(dropout=1.0), "dropout"),
        (dict(channels=-1), "channels"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SmallCNN(**kwargs)


def test_bad_inputs():
    model = SmallCNN()
    with pytest.raises(ValueError, match=r"\(B, 1, 8, 8\)"):
        model(torch.rand(2, 1, 16, 16))
    with pytest.raises(ValueError, match="shape"):
        model(torch.rand(1, 8, 8))
    with pytest.raises(TypeError, match="floating"):
        model(torch.zeros(2, 1, 8, 8, dtype=torch.long))
    with pytest.raises(TypeError, match="dtype"):
        model(torch.rand(2, 1, 8, 8, dtype=torch.float64))

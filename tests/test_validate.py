"""The shared boolean-mask check: each failure names the argument and what was expected."""

import pytest
import torch

from attnkit._validate import check_bool_mask


def test_check_bool_mask_accepts_and_returns_the_mask():
    mask = torch.tensor([[True, False], [False, True]])
    assert check_bool_mask(mask, "mask", (2, 2), nonempty_rows=True) is mask


@pytest.mark.parametrize(
    ("mask", "kwargs", "error", "match"),
    [
        ([[1, 0]], {}, TypeError, r"mask must be a torch\.Tensor"),
        (
            torch.ones(1, 2),
            {},
            TypeError,
            r"mask must be a bool tensor \(True on real tokens\), "
            r"got torch\.float32; pass mask\.bool\(\)",
        ),
        (
            torch.ones(1, 2, dtype=torch.bool),
            {"shape": (1, 3)},
            ValueError,
            r"mask must have shape \(1, 3\), got \(1, 2\)",
        ),
        (
            torch.tensor([[True], [False]]),
            {"nonempty_rows": True, "meaning": "True = keep"},
            ValueError,
            r"every row of mask needs at least one True \(True = keep\)",
        ),
    ],
)
def test_check_bool_mask_errors(mask, kwargs, error, match):
    with pytest.raises(error, match=match):
        check_bool_mask(mask, "mask", **kwargs)

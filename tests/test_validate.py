"""The shared argument checks: each failure names the argument and what was expected."""

import math

import numpy as np
import pytest
import torch

from attnkit._validate import check_bool_mask, check_positive_number


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


@pytest.mark.parametrize("x", [3, 0.25, np.float32(2.5)])
def test_check_positive_number_returns_a_float(x):
    got = check_positive_number(x, "ramp")
    assert isinstance(got, float) and got == float(x)


@pytest.mark.parametrize(
    ("x", "error", "match"),
    [
        ("2", TypeError, r"ramp must be a positive number, got str"),
        (True, TypeError, r"ramp must be a positive number, got bool"),
        (0, ValueError, r"ramp must be a positive finite number, got 0"),
        (-1.5, ValueError, r"ramp must be a positive finite number, got -1\.5"),
        (math.inf, ValueError, r"ramp must be a positive finite number, got inf"),
        (math.nan, ValueError, r"ramp must be a positive finite number, got nan"),
    ],
)
def test_check_positive_number_errors(x, error, match):
    with pytest.raises(error, match=match):
        check_positive_number(x, "ramp")

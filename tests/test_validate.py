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


# --------------------------------------------- the checks added for issue 21 (one style)


@pytest.mark.parametrize("x", [True, False, np.bool_(True), torch.tensor(False)])
def test_check_bool_accepts_real_bools(x):
    from attnkit._validate import check_bool

    assert check_bool(x, "flag") is bool(x)


@pytest.mark.parametrize("x", ["no", "yes", 1, 0, None, 1.0, torch.tensor(1)])
def test_check_bool_refuses_truthy_stand_ins(x):
    from attnkit._validate import check_bool

    with pytest.raises(TypeError, match="flag must be True or False"):
        check_bool(x, "flag")


@pytest.mark.parametrize(
    ("x", "error", "match"),
    [
        (1.0, TypeError, r"dim must be an integer, got float 1\.0"),
        (True, TypeError, "dim must be an integer, got bool"),
        ("1", TypeError, "dim must be an integer, got str"),
        (5, ValueError, r"dim must be an integer in \[-2, 1\], got 5"),
    ],
)
def test_check_int_errors(x, error, match):
    from attnkit._validate import check_int

    with pytest.raises(error, match=match):
        check_int(x, "dim", low=-2, high=1)


def test_check_int_accepts_numpy_and_0d_tensor_ints():
    from attnkit._validate import check_int

    assert check_int(np.int64(3), "n") == 3 and check_int(torch.tensor(4), "n") == 4


@pytest.mark.parametrize("x", ["ab", ("a", 1), 3])
def test_check_str_list_refuses_a_bare_string_and_non_strings(x):
    from attnkit._validate import check_str_list

    with pytest.raises(TypeError, match="names"):
        check_str_list(x, "names")


def test_check_ids_range_and_dtype():
    from attnkit._validate import check_ids

    with pytest.raises(TypeError, match=r"ids must hold integer ids, got torch\.float32"):
        check_ids(torch.zeros(2), "ids")
    with pytest.raises(ValueError, match=r"ids must hold ids in \[0, 5\).*from -1 to 5"):
        check_ids(torch.tensor([-1, 5]), "ids", vocab_size=5)
    assert check_ids(torch.tensor([0, 4]), "ids", vocab_size=5, dim=1).tolist() == [0, 4]


def test_check_choice_and_module():
    from attnkit._validate import check_choice, check_module

    with pytest.raises(ValueError, match="kind must be one of 'a', 'b'; got 'c'"):
        check_choice("c", "kind", ("a", "b"))
    with pytest.raises(ValueError, match="kind must be one of"):
        check_choice(["a"], "kind", {"a": 1})  # unhashable: refused, not a crash
    with pytest.raises(TypeError, match=r"model must be .*no encode"):
        check_module(torch.nn.Linear(1, 1), needs=("encode",))

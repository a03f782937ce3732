"""Tests of attnkit.heads: split_heads, merge_heads and repeat_kv.

The references are explicit slicing and explicit loops written out below, never attnkit
itself.
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attnkit.heads import merge_heads, repeat_kv, split_heads

HYPOTHESIS = settings(max_examples=40, deadline=None, derandomize=True, database=None)


def randn(gen, *shape, dtype=torch.float64):
    return torch.randn(*shape, generator=gen, dtype=torch.float64).to(dtype)


def split_reference(x, num_heads):
    """(..., T, H * D) -> (..., H, T, D) by explicit slicing: head h gets h*D:(h+1)*D."""
    d = x.shape[-1] // num_heads
    return torch.stack([x[..., h * d : (h + 1) * d] for h in range(num_heads)], dim=-3)


def merge_reference(x):
    """(..., H, T, D) -> (..., T, H * D) by concatenating the heads along the features."""
    return torch.cat([x[..., h, :, :] for h in range(x.shape[-3])], dim=-1)


def repeat_reference(x, n_rep):
    """Output head h is input head h // n_rep, by an explicit loop."""
    heads = [x[..., h // n_rep, :, :] for h in range(x.shape[-3] * n_rep)]
    return torch.stack(heads, dim=-3)


# ------------------------------------------------------------------ split / merge

batch_dims = st.lists(st.integers(1, 3), min_size=0, max_size=3)


@HYPOTHESIS
@given(
    batch=batch_dims,
    t=st.integers(1, 6),
    num_heads=st.integers(1, 5),
    head_dim=st.integers(1, 5),
    seed=st.integers(0, 2**31 - 1),
)
def test_property_split_merge_are_inverses(batch, t, num_heads, head_dim, seed):
    gen = torch.Generator().manual_seed(seed)
    x = randn(gen, *batch, t, num_heads * head_dim)
    split = split_heads(x, num_heads)
    assert split.shape == (*batch, num_heads, t, head_dim)
    assert torch.equal(merge_heads(split), x)
    y = randn(gen, *batch, num_heads, t, head_dim)
    merged = merge_heads(y)
    assert merged.shape == (*batch, t, num_heads * head_dim)
    assert torch.equal(split_heads(merged, num_heads), y)


@HYPOTHESIS
@given(
    batch=batch_dims,
    t=st.integers(1, 6),
    num_heads=st.integers(1, 5),
    head_dim=st.integers(1, 5),
    seed=st.integers(0, 2**31 - 1),
)
def test_property_split_and_merge_match_explicit_slicing(batch, t, num_heads, head_dim, seed):
    gen = torch.Generator().manual_seed(seed)
    x = randn(gen, *batch, t, num_heads * head_dim)
    assert torch.equal(split_heads(x, num_heads), split_reference(x, num_heads))
    y = randn(gen, *batch, num_heads, t, head_dim)
    assert torch.equal(merge_heads(y), merge_reference(y))


def test_head_h_gets_features_h_times_d():
    """Features 0..11 over 3 heads of size 4: head h holds h*4 .. h*4+3 in every row."""
    t, num_heads, head_dim = 2, 3, 4
    x = torch.arange(num_heads * head_dim, dtype=torch.float32).repeat(t, 1)  # (T, 12)
    x = x + 100 * torch.arange(t)[:, None]  # row t adds 100 * t
    heads = split_heads(x, num_heads)  # (3, 2, 4)
    for h in range(num_heads):
        for row in range(t):
            expected = torch.arange(h * head_dim, (h + 1) * head_dim) + 100.0 * row
            assert torch.equal(heads[h, row], expected)


def test_leading_batch_dims_are_kept_and_independent():
    gen = torch.Generator().manual_seed(0)
    x = randn(gen, 2, 3, 5, 12)  # two batch dims
    heads = split_heads(x, 4)
    assert heads.shape == (2, 3, 4, 5, 3)
    for i in range(2):
        for j in range(3):
            assert torch.equal(heads[i, j], split_reference(x[i, j], 4))
    assert torch.equal(merge_heads(heads), x)


def test_split_is_a_view_and_keeps_dtype_and_grad():
    x = torch.randn(2, 3, 8, dtype=torch.float16, requires_grad=True)
    heads = split_heads(x, 2)
    assert heads.dtype == torch.float16
    assert heads.data_ptr() == x.data_ptr()  # no copy
    merge_heads(heads).sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: split_heads(torch.randn(2, 5, 10), 3), ValueError, r"divisible by num_heads=3"),
        (lambda: split_heads(torch.randn(10), 2), ValueError, r"x must have at least 2 dim"),
        (lambda: split_heads(torch.randn(2, 4), 0), ValueError, r"num_heads must be a positive"),
        (lambda: split_heads(torch.randn(2, 4), 2.0), ValueError, r"num_heads"),
        (lambda: split_heads([[1.0, 2.0]], 1), TypeError, r"x must be a torch\.Tensor"),
        (lambda: merge_heads(torch.randn(5, 4)), ValueError, r"x must have at least 3 dim"),
        (lambda: repeat_kv(torch.randn(5, 4), 2), ValueError, r"x must have at least 3 dim"),
        (lambda: repeat_kv(torch.randn(2, 5, 4), 0), ValueError, r"n_rep must be a positive"),
        (lambda: repeat_kv(torch.randn(2, 5, 4), -1), ValueError, r"n_rep"),
    ],
    ids=[
        "split_not_divisible",
        "split_1d",
        "split_zero_heads",
        "split_float_heads",
        "split_list",
        "merge_2d",
        "repeat_2d",
        "repeat_zero",
        "repeat_negative",
    ],
)
def test_bad_input_raises_naming_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()


# ---------------------------------------------------------------------- repeat_kv


@HYPOTHESIS
@given(
    batch=batch_dims,
    kv_heads=st.integers(1, 4),
    n_rep=st.integers(1, 4),
    t=st.integers(1, 5),
    d=st.integers(1, 4),
    seed=st.integers(0, 2**31 - 1),
)
def test_property_repeat_kv_matches_explicit_loop(batch, kv_heads, n_rep, t, d, seed):
    gen = torch.Generator().manual_seed(seed)
    x = randn(gen, *batch, kv_heads, t, d)
    out = repeat_kv(x, n_rep)
    assert out.shape == (*batch, kv_heads * n_rep, t, d)
    assert torch.equal(out, repeat_reference(x, n_rep))


def test_repeat_kv_groups_consecutive_query_heads():
    """Head h of the output is kv head h // n_rep: [a, b] -> [a, a, a, b, b, b]."""
    x = torch.tensor([1.0, 2.0]).reshape(2, 1, 1)  # (H_kv=2, T=1, D=1)
    out = repeat_kv(x, 3)
    assert out.flatten().tolist() == [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]


def test_repeat_kv_one_returns_the_same_tensor():
    x = torch.randn(2, 3, 4, 5)
    assert repeat_kv(x, 1) is x


def test_repeat_kv_matches_torch_sdpa_gqa_grouping():
    """enable_gqa=True in torch's function pairs query head h with kv head h // n_rep too."""
    gen = torch.Generator().manual_seed(1)
    q = randn(gen, 2, 6, 4, 8)
    k, v = randn(gen, 2, 2, 5, 8), randn(gen, 2, 2, 5, 3)
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    repeated = torch.nn.functional.scaled_dot_product_attention(q, repeat_kv(k, 3), repeat_kv(v, 3))
    torch.testing.assert_close(repeated, expected, rtol=1e-12, atol=1e-12)

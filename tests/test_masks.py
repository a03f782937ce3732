"""Tests of the masks (causal_mask, padding_mask, combine_masks, to_additive_mask) and of
masked_softmax, against masks built by hand, torch.tril and torch's own softmax/attention.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn.attention.bias import causal_lower_right

from attnkit import causal_mask, combine_masks, masked_softmax, padding_mask, to_additive_mask

HYPOTHESIS = settings(max_examples=40, deadline=None, derandomize=True, database=None)
INF = math.inf


def randn(gen, *shape, dtype=torch.float64):
    return torch.randn(*shape, generator=gen, dtype=torch.float64).to(dtype)


def tril(n_q, n_k, diagonal):
    """Bool mask: query i may see key j iff j <= i + diagonal (built with torch.tril)."""
    return torch.ones(n_q, n_k).tril(diagonal).bool()


# ---------------------------------------------------------------------- causal_mask


@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_causal_mask_square_is_tril(n):
    mask = causal_mask(n)
    assert mask.dtype == torch.bool
    assert mask.shape == (n, n)
    assert torch.equal(mask, tril(n, n, 0))
    assert torch.equal(causal_mask(n, n), mask)


def test_causal_mask_explicit_small():
    expected = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0]], dtype=torch.bool)
    assert torch.equal(causal_mask(3, 5, offset=1), expected)


@pytest.mark.parametrize(("n_q", "n_k"), [(3, 7), (1, 5), (6, 4), (4, 4), (2, 9)])
def test_causal_mask_rectangular_alignment(n_q, n_k):
    """Default = bottom-right (offset n_k - n_q); offset=0 = top-left."""
    lower_right = causal_mask(n_q, n_k)
    top_left = causal_mask(n_q, n_k, offset=0)
    assert lower_right.shape == top_left.shape == (n_q, n_k)
    assert torch.equal(lower_right, tril(n_q, n_k, n_k - n_q))
    assert torch.equal(top_left, tril(n_q, n_k, 0))
    # the last query sees every key when aligned bottom-right; the first query of a
    # top-left mask sees only key 0
    assert lower_right[-1].all()
    assert torch.equal(top_left[0], torch.arange(n_k) == 0)


@pytest.mark.parametrize("offset", [-3, -1, 0, 2, 10])
def test_causal_mask_custom_offset(offset):
    mask = causal_mask(4, 6, offset=offset)
    for i in range(4):
        for j in range(6):
            assert mask[i, j].item() == (j <= i + offset)


@pytest.mark.parametrize(("n_q", "n_k"), [(3, 7), (1, 5), (4, 4)])
def test_causal_mask_matches_torch_causal_variants(n_q, n_k):
    """Using each mask in torch's own attention reproduces causal_lower_right / is_causal."""
    gen = torch.Generator().manual_seed(n_q + 10 * n_k)
    q, k, v = randn(gen, n_q, 4), randn(gen, n_k, 4), randn(gen, n_k, 3)
    sdpa = F.scaled_dot_product_attention
    torch.testing.assert_close(
        sdpa(q, k, v, attn_mask=causal_mask(n_q, n_k)),
        sdpa(q, k, v, attn_mask=causal_lower_right(n_q, n_k)),
    )
    torch.testing.assert_close(
        sdpa(q, k, v, attn_mask=causal_mask(n_q, n_k, offset=0)), sdpa(q, k, v, is_causal=True)
    )


def test_causal_mask_accepts_integer_tensor_sizes():
    assert torch.equal(causal_mask(torch.tensor(3), torch.tensor(5)), tril(3, 5, 2))


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        ((0,), {}, ValueError, r"n_q must be a positive integer"),
        ((-2,), {}, ValueError, r"n_q must be a positive integer"),
        ((2.0,), {}, ValueError, r"n_q must be a positive integer"),
        ((3, 0), {}, ValueError, r"n_k must be a positive integer"),
        ((3, True), {}, ValueError, r"n_k must be a positive integer"),
        ((3, 4), {"offset": 1.5}, TypeError, r"offset must be an int"),
        ((3, 4), {"offset": True}, TypeError, r"offset must be an int"),
    ],
)
def test_causal_mask_bad_input(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        causal_mask(*args, **kwargs)


# --------------------------------------------------------------------- padding_mask


def test_padding_mask_from_lengths():
    mask = padding_mask(torch.tensor([3, 0, 5, 1]))
    expected = torch.tensor(
        [
            [1, 1, 1, 0, 0],
            [0, 0, 0, 0, 0],
            [1, 1, 1, 1, 1],
            [1, 0, 0, 0, 0],
        ],
        dtype=torch.bool,
    )
    assert mask.dtype == torch.bool
    assert torch.equal(mask, expected)


def test_padding_mask_longer_max_len():
    mask = padding_mask(torch.tensor([2, 4], dtype=torch.int32), max_len=6)
    expected = torch.tensor([[1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0]], dtype=torch.bool)
    assert torch.equal(mask, expected)


def test_padding_mask_max_len_equal_and_zero():
    assert torch.equal(
        padding_mask(torch.tensor([2, 1]), max_len=2), torch.tensor([[True, True], [True, False]])
    )
    assert padding_mask(torch.tensor([0, 0])).shape == (2, 0)
    assert padding_mask(torch.tensor([0]), max_len=0).shape == (1, 0)
    assert padding_mask(torch.tensor([], dtype=torch.long), max_len=3).shape == (0, 3)


@pytest.mark.parametrize("seed", range(3))
def test_padding_mask_random_lengths_match_loop(seed):
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, 9, (6,), generator=gen)
    mask = padding_mask(lengths, max_len=10)
    for b, n in enumerate(lengths.tolist()):
        assert mask[b].tolist() == [t < n for t in range(10)]


def test_padding_mask_as_key_mask_in_attention():
    """padding_mask(lengths)[:, None, :] removes the padded keys from torch's attention."""
    gen = torch.Generator().manual_seed(0)
    lengths = torch.tensor([4, 2])
    q, k, v = randn(gen, 2, 3, 5), randn(gen, 2, 4, 5), randn(gen, 2, 4, 2)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=padding_mask(lengths)[:, None, :])
    truncated = F.scaled_dot_product_attention(q[1], k[1, :2], v[1, :2])
    torch.testing.assert_close(out[1], truncated)
    torch.testing.assert_close(out[0], F.scaled_dot_product_attention(q[0], k[0], v[0]))


@pytest.mark.parametrize(
    ("lengths", "kwargs", "error", "message"),
    [
        (torch.tensor([[1, 2]]), {}, ValueError, r"lengths must be 1-D"),
        (torch.tensor(3), {}, ValueError, r"lengths must be 1-D"),
        (torch.tensor([1.0, 2.0]), {}, TypeError, r"lengths must hold integers.*float"),
        (torch.tensor([True, False]), {}, TypeError, r"lengths must hold integers.*bool"),
        (torch.tensor([2, -1]), {}, ValueError, r"lengths must be >= 0"),
        (torch.tensor([2, 5]), {"max_len": 4}, ValueError, r"max_len=4 is shorter .* \(5\)"),
        (torch.tensor([2, 1]), {"max_len": -1}, ValueError, r"max_len must be a non-negative"),
        (torch.tensor([2, 1]), {"max_len": 3.0}, ValueError, r"max_len must be a non-negative"),
        ([2, 1], {}, TypeError, r"lengths must be a torch\.Tensor"),
    ],
)
def test_padding_mask_bad_input(lengths, kwargs, error, message):
    with pytest.raises(error, match=message):
        padding_mask(lengths, **kwargs)


# ------------------------------------------------------------------ to_additive_mask


def test_to_additive_mask_bool():
    mask = torch.tensor([[True, False, True], [False, False, True]])
    additive = to_additive_mask(mask)
    assert additive.dtype == torch.float32
    expected = torch.tensor([[0.0, -INF, 0.0], [-INF, -INF, 0.0]])
    assert torch.equal(additive, expected)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64], ids=str)
def test_to_additive_mask_dtype(dtype):
    additive = to_additive_mask(torch.tensor([True, False]), dtype)
    assert additive.dtype == dtype
    assert additive[0] == 0
    assert additive[1] == -INF


def test_to_additive_mask_float_is_converted_not_changed():
    mask = torch.tensor([0.5, -2.0, -INF], dtype=torch.float64)
    out = to_additive_mask(mask)
    assert out.dtype == torch.float32
    assert torch.equal(out, torch.tensor([0.5, -2.0, -INF]))


def test_to_additive_mask_same_attention_as_bool():
    """torch's attention with the additive form equals torch's attention with the bool mask."""
    gen = torch.Generator().manual_seed(1)
    q, k, v = randn(gen, 2, 4, 6), randn(gen, 2, 5, 6), randn(gen, 2, 5, 3)
    mask = torch.rand(2, 4, 5, generator=gen) < 0.6
    mask[..., 0] = True
    sdpa = F.scaled_dot_product_attention
    torch.testing.assert_close(
        sdpa(q, k, v, attn_mask=to_additive_mask(mask, torch.float64)),
        sdpa(q, k, v, attn_mask=mask),
    )


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ((torch.tensor([1, 0]),), TypeError, r"mask must be bool or floating-point.*int64"),
        ((torch.tensor([True]), torch.int32), TypeError, r"dtype must be a floating-point"),
        (([True, False],), TypeError, r"mask must be a torch\.Tensor"),
    ],
)
def test_to_additive_mask_bad_input(args, error, message):
    with pytest.raises(error, match=message):
        to_additive_mask(*args)


# --------------------------------------------------------------------- combine_masks


def test_combine_bool_masks_is_logical_and_with_broadcast():
    gen = torch.Generator().manual_seed(2)
    lengths = torch.tensor([4, 2, 3])
    causal = causal_mask(4)  # (T, T)
    keys = padding_mask(lengths)[:, None, :]  # (B, 1, T)
    combined = combine_masks(causal, keys)
    assert combined.dtype == torch.bool
    assert combined.shape == (3, 4, 4)
    for b in range(3):
        for i in range(4):
            for j in range(4):
                assert combined[b, i, j].item() == (j <= i and j < lengths[b].item())
    third = torch.rand(4, 4, generator=gen) < 0.5
    assert torch.equal(combine_masks(causal, keys, third), causal & keys & third)


def test_combine_bool_and_float_masks_sums_additive_forms():
    allowed = torch.tensor([[True, False, True], [True, True, False]])
    bias = torch.tensor([[0.5, 1.0, -2.0], [0.0, -INF, 3.0]], dtype=torch.float64)
    combined = combine_masks(allowed, bias)
    assert combined.dtype == torch.float64
    expected = torch.tensor([[0.5, -INF, -2.0], [0.0, -INF, -INF]], dtype=torch.float64)
    assert torch.equal(combined, expected)
    assert torch.equal(combine_masks(bias, allowed), expected)  # order does not matter


def test_combine_float_masks_uses_widest_dtype_and_broadcasts():
    row = torch.tensor([[1.0], [2.0]], dtype=torch.float32)  # (2, 1)
    col = torch.tensor([0.25, -1.0, 0.0], dtype=torch.float64)  # (3,)
    combined = combine_masks(row, col)
    assert combined.dtype == torch.float64
    assert combined.shape == (2, 3)
    assert torch.equal(
        combined, torch.tensor([[1.25, 0.0, 1.0], [2.25, 1.0, 2.0]], dtype=torch.float64)
    )


def test_combine_float16_and_bfloat16_masks_promotes_to_float32():
    """Neither 16-bit type holds the other's values (bf16 1e5 is inf in fp16): use float32."""
    half = torch.tensor([0.0, -1.0, 0.5], dtype=torch.float16)
    brain = torch.tensor([1e5, 0.0, -INF], dtype=torch.bfloat16)
    for combined in (combine_masks(half, brain), combine_masks(brain, half)):
        assert combined.dtype == torch.float32
        expected = half.float() + brain.float()
        assert torch.equal(combined, expected)
        assert combined[0] == float(torch.tensor(1e5, dtype=torch.bfloat16))


def test_combined_mask_gives_the_attention_of_both_masks():
    """Attention (torch's) with combine_masks(bool, float) = scores + bias, then mask."""
    gen = torch.Generator().manual_seed(3)
    q, k, v = randn(gen, 4, 6), randn(gen, 5, 6), randn(gen, 5, 3)
    allowed = causal_mask(4, 5)
    bias = randn(gen, 4, 5)
    scores = (q @ k.T / math.sqrt(6) + bias).masked_fill(~allowed, -INF)
    expected = torch.softmax(scores, -1) @ v
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=combine_masks(allowed, bias))
    torch.testing.assert_close(out, expected)


def test_combine_masks_none_handling():
    mask = torch.tensor([True, False])
    assert combine_masks() is None
    assert combine_masks(None) is None
    assert combine_masks(None, None) is None
    assert torch.equal(combine_masks(None, mask, None), mask)
    bias = torch.tensor([0.5, -1.0])
    assert torch.equal(combine_masks(bias, None), bias)


@pytest.mark.parametrize(
    ("masks", "error", "message"),
    [
        (
            (torch.ones(3, 4).bool(), torch.ones(5, 4).bool()),
            ValueError,
            r"masks of shapes \(3, 4\), \(5, 4\) do not broadcast",
        ),
        ((torch.ones(3, 4).bool(), torch.zeros(2, 1, 5)), ValueError, r"do not broadcast"),
        (
            (torch.ones(3).bool(), torch.ones(3, dtype=torch.long)),
            TypeError,
            r"masks\[1\] must be bool or floating-point",
        ),
        ((None, [True, False]), TypeError, r"masks\[0\] must be a torch\.Tensor"),
    ],
)
def test_combine_masks_bad_input(masks, error, message):
    with pytest.raises(error, match=message):
        combine_masks(*masks)


# -------------------------------------------------------------------- masked_softmax


@pytest.mark.parametrize("dim", [-1, 0, 1, 2])
def test_masked_softmax_without_mask_is_softmax(dim):
    gen = torch.Generator().manual_seed(4)
    scores = randn(gen, 3, 4, 5) * 3
    expected = scores.exp() / scores.exp().sum(dim=dim, keepdim=True)
    torch.testing.assert_close(masked_softmax(scores, dim=dim), expected, rtol=1e-12, atol=1e-14)


def test_masked_softmax_bool_mask_renormalises_kept_entries():
    scores = torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.5, -1.0, 2.0, 0.0]], dtype=torch.float64)
    keep = torch.tensor([[True, False, True, False], [True, True, True, True]])
    weights = masked_softmax(scores, keep)
    kept = torch.tensor([1.0, 3.0], dtype=torch.float64).exp()
    expected_row0 = torch.tensor([kept[0], 0.0, kept[1], 0.0], dtype=torch.float64) / kept.sum()
    torch.testing.assert_close(weights[0], expected_row0, rtol=1e-12, atol=0)
    torch.testing.assert_close(weights[1], torch.softmax(scores[1], -1), rtol=1e-12, atol=0)
    assert weights[0, 1] == 0
    assert weights[0, 3] == 0


def test_masked_softmax_float_mask_is_added():
    gen = torch.Generator().manual_seed(5)
    scores, bias = randn(gen, 4, 6), randn(gen, 4, 6)
    bias[1, 2] = -INF
    weights = masked_softmax(scores, bias)
    torch.testing.assert_close(weights, torch.softmax(scores + bias, -1), rtol=1e-12, atol=1e-15)
    assert weights[1, 2] == 0


def test_masked_softmax_broadcast_mask_and_other_dim():
    gen = torch.Generator().manual_seed(6)
    scores = randn(gen, 2, 5, 3)
    keep = torch.tensor([True, False, True, True, False])[:, None]  # (5, 1), softmax over dim 1
    weights = masked_softmax(scores, keep, dim=1)
    expected = torch.softmax(scores.masked_fill(~keep, -INF), dim=1)
    torch.testing.assert_close(weights, expected, rtol=1e-12, atol=1e-15)


def test_masked_softmax_over_an_empty_axis():
    """No positions at all (n = 0): empty weights like torch.softmax, not an error."""
    scores = torch.zeros(3, 0, requires_grad=True)
    weights = masked_softmax(scores, torch.zeros(3, 0, dtype=torch.bool))
    assert weights.shape == torch.softmax(scores, -1).shape == (3, 0)
    assert weights.dtype == scores.dtype
    assert masked_softmax(torch.zeros(0, 4, dtype=torch.float64), dim=0).shape == (0, 4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("additive", [False, True])
def test_masked_softmax_fully_masked_row(dtype, additive):
    """A row with nothing allowed gives zeros (not NaN), and a zero, finite gradient."""
    scores = torch.tensor(
        [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [0.0, 1.0, -1.0]], dtype=dtype, requires_grad=True
    )
    keep = torch.tensor([[True, True, False], [False, False, False], [True, True, True]])
    mask = to_additive_mask(keep, dtype) if additive else keep
    weights = masked_softmax(scores, mask)
    assert not torch.isnan(weights).any()
    assert torch.equal(weights[1], torch.zeros(3, dtype=dtype))
    torch.testing.assert_close(weights[2], torch.softmax(scores[2].detach(), -1))
    (weights * torch.tensor([1.0, -2.0, 0.5], dtype=dtype)).sum().backward()
    assert torch.isfinite(scores.grad).all()
    assert torch.equal(scores.grad[1], torch.zeros(3, dtype=dtype))
    assert scores.grad[0, 2] == 0  # masked entry of a live row
    assert scores.grad[2].abs().sum() > 0


def test_masked_softmax_gradcheck_with_masked_entries_and_dead_row():
    gen = torch.Generator().manual_seed(7)
    scores = randn(gen, 3, 4).requires_grad_()
    keep = torch.tensor([[1, 0, 1, 1], [0, 0, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    assert torch.autograd.gradcheck(lambda s: masked_softmax(s, keep), (scores,))
    assert torch.autograd.gradgradcheck(lambda s: masked_softmax(s, keep), (scores,))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("base", [1e4, -1e4, 1e6, -1e6])
def test_masked_softmax_large_logits(dtype, base):
    """Shifting by the row maximum keeps exp finite: [b, b + 1] -> [1/(1+e), e/(1+e)]."""
    weights = masked_softmax(torch.tensor([base, base + 1.0], dtype=dtype))
    e = math.e
    expected = torch.tensor([1 / (1 + e), e / (1 + e)], dtype=dtype)
    tol = 1e-6 if dtype == torch.float32 else 1e-14
    torch.testing.assert_close(weights, expected, rtol=tol, atol=0)


@pytest.mark.parametrize(
    ("dtype", "value"),
    [
        (torch.float32, 3e38),
        (torch.float32, -3e38),
        (torch.float64, 1e308),
        (torch.float64, -1e308),
    ],
)
def test_masked_softmax_extreme_equal_logits(dtype, value):
    """Equal scores near the largest float give equal weights (exp would overflow)."""
    weights = masked_softmax(torch.tensor([value, value, value, value], dtype=dtype))
    assert torch.equal(weights, torch.full((4,), 0.25, dtype=dtype))


def test_masked_softmax_large_logits_with_mask_and_gradient():
    scores = torch.tensor([[1e4, 1e4 + 1, 5e4], [-1e4, -1e4 + 2, 0.0]], requires_grad=True)
    keep = torch.tensor([[True, True, False], [True, True, False]])
    weights = masked_softmax(scores, keep)
    e = math.e
    expected = torch.tensor(
        [[1 / (1 + e), e / (1 + e), 0.0], [1 / (1 + e**2), e**2 / (1 + e**2), 0.0]]
    )
    torch.testing.assert_close(weights, expected, rtol=1e-6, atol=0)
    (weights[:, 0] * 3).sum().backward()
    assert torch.isfinite(scores.grad).all()
    # d w_0 / d s_0 = w_0 (1 - w_0)
    torch.testing.assert_close(scores.grad[:, 0], 3 * expected[:, 0] * (1 - expected[:, 0]))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_masked_softmax_half_precision(dtype):
    """16-bit scores: evaluated in float32, returned in the input dtype, rounded once."""
    gen = torch.Generator().manual_seed(8)
    scores = (randn(gen, 6, 9) * 4).to(dtype)
    # row 0: scores too large for exp (and, in float16, for any sum of them)
    scores[0, :2] = torch.tensor([60000.0, 60032.0], dtype=dtype)  # exact in float16
    scores[0, 2:] = -60000
    weights = masked_softmax(scores)
    assert weights.dtype == dtype
    exact = torch.softmax(scores.double(), -1)
    u = torch.finfo(dtype).eps / 2
    torch.testing.assert_close(weights.double(), exact, rtol=u, atol=1e-6)


# --- properties


@HYPOTHESIS
@given(
    seed=st.integers(0, 2**31 - 1),
    rows=st.integers(1, 5),
    n=st.integers(1, 8),
    density=st.sampled_from([0.0, 0.4, 0.9, 1.0]),
    spread=st.sampled_from([1.0, 30.0]),
)
def test_property_masked_softmax_is_a_distribution(seed, rows, n, density, spread):
    """Weights are in [0, 1], exactly 0 where masked, rows sum to 1 (0 if fully masked)."""
    gen = torch.Generator().manual_seed(seed)
    scores = randn(gen, rows, n) * spread
    keep = torch.rand(rows, n, generator=gen) < density
    weights = masked_softmax(scores, keep)
    assert torch.all((weights >= 0) & (weights <= 1))
    assert torch.all(weights[~keep] == 0)
    torch.testing.assert_close(weights.sum(-1), keep.any(-1).double(), rtol=0, atol=1e-12)


@HYPOTHESIS
@given(
    seed=st.integers(0, 2**31 - 1),
    rows=st.integers(1, 5),
    n=st.integers(1, 8),
    shift=st.floats(-1e4, 1e4, allow_nan=False),
    use_mask=st.booleans(),
)
def test_property_masked_softmax_shift_invariance(seed, rows, n, shift, use_mask):
    """masked_softmax(s + c) == masked_softmax(s) for a constant c per row."""
    gen = torch.Generator().manual_seed(seed)
    scores = randn(gen, rows, n) * 5
    keep = torch.rand(rows, n, generator=gen) < 0.7 if use_mask else None
    c = shift * torch.rand(rows, 1, generator=gen, dtype=torch.float64)
    expected = torch.softmax(scores if keep is None else scores.masked_fill(~keep, -INF), -1)
    if keep is not None:
        expected = torch.where(keep.any(-1, keepdim=True), expected, 0.0)
    # s + c loses about |c| * 2^-53 of each score, hence the absolute tolerance
    torch.testing.assert_close(masked_softmax(scores + c, keep), expected, rtol=1e-10, atol=1e-11)
    torch.testing.assert_close(masked_softmax(scores, keep), expected, rtol=1e-12, atol=1e-14)


# --- bad input


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        (([1.0, 2.0],), {}, TypeError, r"scores must be a torch\.Tensor"),
        ((torch.tensor([1, 2]),), {}, TypeError, r"scores must be a floating-point"),
        ((torch.tensor(1.0),), {}, ValueError, r"scores must have at least 1 dim"),
        ((torch.zeros(2, 3),), {"dim": 2}, ValueError, r"dim=2 is out of range"),
        ((torch.zeros(2, 3),), {"dim": -3}, ValueError, r"dim=-3 is out of range"),
        (
            (torch.zeros(2, 3), torch.ones(3, 2).bool()),
            {},
            ValueError,
            r"mask of shape \(3, 2\) cannot broadcast",
        ),
        ((torch.zeros(2, 3), torch.ones(4, 2, 3).bool()), {}, ValueError, r"mask of shape"),
        (
            (torch.zeros(2, 3), torch.ones(2, 3, dtype=torch.int64)),
            {},
            TypeError,
            r"mask must be bool",
        ),
    ],
)
def test_masked_softmax_bad_input(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        masked_softmax(*args, **kwargs)

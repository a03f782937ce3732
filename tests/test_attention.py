"""Tests of attnkit.scaled_dot_product_attention and ScaledDotProductAttention.

Every numerical check compares against an independent reference: PyTorch's
``torch.nn.functional.scaled_dot_product_attention`` or a float64 softmax written out
below, never against attnkit itself.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn.attention.bias import causal_lower_right

from attnkit import (
    ScaledDotProductAttention,
    attend,
    causal_mask,
    masked_softmax,
    padding_mask,
    scaled_dot_product_attention,
    to_additive_mask,
)

HYPOTHESIS = settings(max_examples=40, deadline=None, derandomize=True, database=None)
DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]
HALF_DTYPES = [torch.bfloat16, torch.float16]


# --------------------------------------------------------------------------- helpers


def reference_attention(q, k, v, mask=None, scale=None):
    """float64 softmax(q k^T * scale + mask) v; rows with no allowed key get weight 0."""
    q, k, v = (t.detach().double() for t in (q, k, v))
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * scale
    if mask is not None:
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, -math.inf)
        else:
            scores = scores + mask.double()
    weights = torch.softmax(scores, dim=-1)  # NaN on rows that are all -inf
    allowed = torch.isfinite(scores).any(dim=-1, keepdim=True)
    weights = torch.where(allowed, weights, torch.zeros_like(weights))
    return weights @ v, weights


def unit_roundoff(dtype):
    """u = eps / 2: the largest relative error of rounding one real number to ``dtype``."""
    return torch.finfo(dtype).eps / 2


def assert_close_to_torch(ours, theirs, v):
    """Compare attnkit with torch's output with the tolerance of the dtype (see tolerance)."""
    assert ours.dtype == theirs.dtype == v.dtype
    assert ours.shape == theirs.shape
    rtol, atol = tolerance(v)
    torch.testing.assert_close(ours, theirs, rtol=rtol, atol=atol)


def tolerance(v):
    """(rtol, atol) for comparing two attention outputs whose values are ``v``.

    The output is a convex combination of the rows of v, so ``max|v|`` is the natural
    scale of an absolute error.

    * float32 / float64: only the order of the floating-point operations differs, and the
      exp of the scores amplifies rounding errors of the scores (O(1)-O(10) here):
      1e-6 (about 8 eps) in float32; 1e-12 in float64, where the differences seen are
      ~1e-15, leaving room for other BLAS libraries. Relative, and absolute * max|v|.
    * bfloat16 / float16: attnkit computes in float32 and rounds the output once, which
      costs at most u = eps/2 relative (2^-8 ~ 0.0039 for bf16, 2^-11 ~ 0.00049 for
      fp16). torch's CPU kernel also rounds its output, so two roundings (of slightly
      different float32 values) can land one ulp apart: rtol = 2u = eps. torch also
      rounds the softmax weights to the 16-bit type before multiplying by v, an error of
      at most u * sum_j p_j |v_j| <= u * max|v|; that is the atol.

    Measured over 200 random cases per dtype (and the fixed cases below): the largest
    difference uses 18% of this tolerance in float32, 0.03% in float64, 25% in bfloat16
    and 31% in float16. (benchmarks/sdpa_agreement.py prints the raw numbers.)
    """
    scale = float(v.detach().double().abs().max()) if v.numel() else 1.0
    if v.dtype == torch.float64:
        return 1e-12, 1e-12 * scale
    if v.dtype == torch.float32:
        return 1e-6, 1e-6 * scale
    u = unit_roundoff(v.dtype)
    return 2 * u, u * scale


def randn(gen, *shape, dtype=torch.float64):
    """Standard normal numbers drawn in float64 from ``gen`` and rounded to ``dtype``."""
    return torch.randn(*shape, generator=gen, dtype=torch.float64).to(dtype)


def randint(gen, low, high):
    """Uniform integer in [low, high]."""
    return int(torch.randint(low, high + 1, (1,), generator=gen))


MASK_KINDS = ("none", "bool", "float", "causal_top_left", "causal_lower_right")


def random_case(seed, dtype):
    """A random problem: 0-3 broadcasting batch dims, n_q != n_k, d_v != d_k, a mask, scale."""
    gen = torch.Generator().manual_seed(seed)
    batch = [randint(gen, 1, 3) for _ in range(randint(gen, 0, 3))]
    q_batch = [b if randint(gen, 0, 3) else 1 for b in batch]
    kv_batch = [b if randint(gen, 0, 3) else 1 for b in batch]
    if kv_batch and randint(gen, 0, 2) == 0:
        kv_batch = kv_batch[1:]  # fewer leading dims on k/v than on q
    full_batch = list(torch.broadcast_shapes(tuple(q_batch), tuple(kv_batch)))
    n_q, n_k = randint(gen, 1, 9), randint(gen, 1, 9)
    d_k, d_v = randint(gen, 1, 24), randint(gen, 1, 24)
    q = randn(gen, *q_batch, n_q, d_k, dtype=dtype)
    k = randn(gen, *kv_batch, n_k, d_k, dtype=dtype)
    v = randn(gen, *kv_batch, n_k, d_v, dtype=dtype)
    mask_shapes = [
        (n_q, n_k),
        (*full_batch, n_q, n_k),
        (*full_batch, 1, n_k),
        (*[1] * len(full_batch), n_q, n_k),
    ]
    shape = mask_shapes[randint(gen, 0, len(mask_shapes) - 1)]
    kind = MASK_KINDS[seed % len(MASK_KINDS)]
    mask = None
    if kind == "bool":
        mask = torch.rand(shape, generator=gen) < 0.75
    elif kind == "float":
        mask = randn(gen, *shape)
        mask = mask.masked_fill(torch.rand(shape, generator=gen) < 0.2, -math.inf).to(dtype)
    elif kind == "causal_top_left":
        mask = causal_mask(n_q, n_k, offset=0)
    elif kind == "causal_lower_right":
        mask = causal_mask(n_q, n_k)
    # custom scale on every other seed, up to twice the default
    factor = 0.25 + 1.75 * float(torch.rand((), generator=gen))
    scale = None if seed % 2 else factor / math.sqrt(d_k)
    return q, k, v, mask, scale


def torch_sdpa(q, k, v, mask=None, **kwargs):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, **kwargs)


# ------------------------------------------------------------- agreement with torch

SHAPES = [
    # (q, k, v)
    ((5, 8), (7, 8), (7, 4)),  # no batch dims, n_q != n_k, d_v != d_k
    ((1, 4, 6), (1, 4, 6), (1, 4, 6)),  # one batch dim of size 1
    ((3, 5, 8), (3, 7, 8), (3, 7, 3)),  # one batch dim
    ((2, 3, 5, 8), (1, 3, 7, 8), (1, 3, 7, 2)),  # two batch dims, k/v broadcast
    ((2, 3, 4, 5, 8), (3, 1, 7, 8), (3, 1, 7, 6)),  # three batch dims, k/v fewer dims
    ((5, 8), (2, 7, 8), (2, 7, 8)),  # q shared by a batch of keys/values
    ((0, 3, 8), (0, 4, 8), (0, 4, 5)),  # empty batch
    ((2, 0, 8), (2, 4, 8), (2, 4, 5)),  # no queries
    ((2, 3, 8), (2, 0, 8), (2, 0, 5)),  # no keys at all: zeros, like torch
    ((2, 1, 8), (2, 1, 8), (2, 1, 1)),  # a single query and key, d_v = 1
    ((2, 6, 1), (2, 9, 1), (2, 9, 3)),  # d_k = 1
]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shapes", SHAPES, ids=str)
def test_matches_torch_shapes(shapes, dtype):
    gen = torch.Generator().manual_seed(sum(map(sum, shapes)))
    q, k, v = (randn(gen, *s, dtype=dtype) for s in shapes)
    ours = scaled_dot_product_attention(q, k, v)
    assert_close_to_torch(ours, torch_sdpa(q, k, v), v)


def _mask(kind, gen, dtype):
    """Masks for scores of shape (2, 3, 5, 7) in several broadcast shapes."""
    if kind == "causal_top_left":
        return causal_mask(5, 7, offset=0)
    if kind == "causal_lower_right":
        return causal_mask(5, 7)
    name, *shape = kind.split("-")
    shape = tuple(int(s) for s in shape)
    if name == "bool":
        mask = torch.rand(shape, generator=gen) < 0.7
        mask[..., 0] = True  # no fully masked rows here; those are tested separately
        return mask
    mask = randn(gen, *shape)
    if name == "inf":
        mask = mask.masked_fill(torch.rand(shape, generator=gen) < 0.3, -math.inf)
        mask[..., 0] = 0.0
    return mask.to(dtype)


MASKS = [
    "bool-5-7",  # (n_q, n_k)
    "bool-7",  # (n_k,)
    "bool-2-1-1-7",  # key padding (B, 1, 1, n_k)
    "bool-1-3-5-7",  # per head
    "bool-2-3-5-7",  # full
    "float-5-7",
    "float-2-1-1-7",
    "float-2-3-1-7",
    "inf-2-3-5-7",  # additive with -inf entries
    "causal_top_left",
    "causal_lower_right",
]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("kind", MASKS)
def test_matches_torch_masks(kind, dtype):
    gen = torch.Generator().manual_seed(len(kind))
    q = randn(gen, 2, 3, 5, 8, dtype=dtype)
    k = randn(gen, 2, 1, 7, 8, dtype=dtype)
    v = randn(gen, 1, 3, 7, 6, dtype=dtype)
    mask = _mask(kind, gen, dtype)
    ours = scaled_dot_product_attention(q, k, v, mask)
    assert_close_to_torch(ours, torch_sdpa(q, k, v, mask), v)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("seed", range(15))
def test_matches_torch_random(seed, dtype):
    """Random shapes, broadcasting, masks and scales (see random_case)."""
    q, k, v, mask, scale = random_case(seed, dtype)
    ours = scaled_dot_product_attention(q, k, v, mask, scale=scale)
    assert_close_to_torch(ours, torch_sdpa(q, k, v, mask, scale=scale), v)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("scale", [0.05, 0.3, 1.0, 2.5])
def test_matches_torch_custom_scale(scale, dtype):
    gen = torch.Generator().manual_seed(5)
    q, k = randn(gen, 2, 4, 6, dtype=dtype), randn(gen, 2, 5, 6, dtype=dtype)
    v = randn(gen, 2, 5, 3, dtype=dtype)
    ours = scaled_dot_product_attention(q, k, v, scale=scale)
    assert_close_to_torch(ours, torch_sdpa(q, k, v, scale=scale), v)
    # and the scale really is used: the default differs
    assert not torch.allclose(ours, scaled_dot_product_attention(q, k, v))


@pytest.mark.parametrize(("n_q", "n_k"), [(4, 4), (3, 7), (1, 5), (6, 6)])
def test_default_causal_mask_is_torch_lower_right(n_q, n_k):
    """causal_mask(n_q, n_k) gives torch's causal_lower_right attention."""
    gen = torch.Generator().manual_seed(n_q * 10 + n_k)
    q, k, v = randn(gen, 2, n_q, 8), randn(gen, 2, n_k, 8), randn(gen, 2, n_k, 5)
    ours = scaled_dot_product_attention(q, k, v, causal_mask(n_q, n_k))
    theirs = torch_sdpa(q, k, v, causal_lower_right(n_q, n_k))
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("n_q", "n_k"), [(4, 4), (3, 7), (6, 4), (1, 5)])
def test_offset_zero_causal_mask_is_torch_is_causal(n_q, n_k):
    """causal_mask(n_q, n_k, offset=0) gives torch's is_causal=True (top-left) attention."""
    gen = torch.Generator().manual_seed(n_q * 10 + n_k)
    q, k, v = randn(gen, 2, n_q, 8), randn(gen, 2, n_k, 8), randn(gen, 2, n_k, 5)
    ours = scaled_dot_product_attention(q, k, v, causal_mask(n_q, n_k, offset=0))
    theirs = torch_sdpa(q, k, v, is_causal=True)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)


def test_lower_right_causal_with_more_queries_than_keys():
    """n_q > n_k: the first n_q - n_k queries see no key and give zeros."""
    gen = torch.Generator().manual_seed(0)
    q, k, v = randn(gen, 6, 4), randn(gen, 3, 4), randn(gen, 3, 2)
    out = scaled_dot_product_attention(q, k, v, causal_mask(6, 3))
    expected, _ = reference_attention(q, k, v, torch.ones(6, 3).tril(-3).bool())
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    assert torch.equal(out[:3], torch.zeros(3, 2, dtype=out.dtype))


# ------------------------------------------------------ half precision vs float64


@pytest.mark.parametrize("dtype", HALF_DTYPES, ids=str)
@pytest.mark.parametrize("seed", range(12))
def test_half_precision_is_rounded_once(seed, dtype):
    """16-bit outputs are within u = eps/2 (one rounding) of the exact float64 result.

    attnkit computes in float32 and rounds once at the end, so every element is within
    u * |exact| of the exact value of the *rounded 16-bit inputs*, up to float32 noise
    (atol = 1e-6 * max|v|; measured < 1e-7 * max|v|). rtol = u cannot be tightened: the
    rounding of the output alone reaches it (measured: 99% of the tolerance is used).
    attnkit is also never less accurate than torch's kernel (which rounds the softmax
    weights to 16 bits as well), up to the same float32 noise.
    """
    q, k, v, mask, scale = random_case(1000 + seed, dtype)
    ours = scaled_dot_product_attention(q, k, v, mask, scale=scale)
    exact, _ = reference_attention(q, k, v, mask, scale)
    noise = 1e-6 * float(v.double().abs().max())
    torch.testing.assert_close(ours.double(), exact, rtol=unit_roundoff(dtype), atol=noise)
    theirs = torch_sdpa(q, k, v, mask, scale=scale)
    our_error = (ours.double() - exact).abs().max()
    their_error = (theirs.double() - exact).abs().max()
    assert our_error <= their_error + noise


# ------------------------------------------------------------------ return_weights


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_weights_match_float64_reference(dtype):
    gen = torch.Generator().manual_seed(1)
    q, k = randn(gen, 2, 3, 5, 8, dtype=dtype), randn(gen, 2, 3, 7, 8, dtype=dtype)
    v = randn(gen, 2, 3, 7, 4, dtype=dtype)
    out, weights = scaled_dot_product_attention(q, k, v, return_weights=True)
    assert out.shape == (2, 3, 5, 4)
    assert weights.shape == (2, 3, 5, 7)
    assert out.dtype == weights.dtype == dtype
    # the reference written out by hand: exp(s_ij) / sum_l exp(s_il), s = q k^T / sqrt(d_k)
    scores = torch.einsum("bhid,bhjd->bhij", q.double(), k.double()) / math.sqrt(8)
    expected = scores.exp() / scores.exp().sum(dim=-1, keepdim=True)
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    torch.testing.assert_close(weights.double(), expected, rtol=tol, atol=tol)
    torch.testing.assert_close(
        weights.sum(-1).double(),
        torch.ones(2, 3, 5, dtype=torch.float64),
        rtol=0,
        atol=10 * torch.finfo(dtype).eps,
    )
    torch.testing.assert_close(out.double(), expected @ v.double(), rtol=tol, atol=tol)


def test_weights_with_mask_and_broadcast_batch():
    """Weights have the broadcast shape (..., n_q, n_k) and are 0 where the mask is False."""
    gen = torch.Generator().manual_seed(2)
    q, k, v = randn(gen, 2, 1, 4, 6), randn(gen, 3, 5, 6), randn(gen, 3, 5, 2)
    mask = torch.rand(2, 3, 4, 5, generator=gen) < 0.6
    out, weights = scaled_dot_product_attention(q, k, v, mask, return_weights=True)
    expected_out, expected_weights = reference_attention(q, k, v, mask)
    assert weights.shape == (2, 3, 4, 5)
    assert out.shape == (2, 3, 4, 2)
    assert torch.all(weights[~mask] == 0)
    torch.testing.assert_close(weights, expected_weights, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out, expected_out, rtol=1e-12, atol=1e-12)
    row_sums = weights.sum(-1)
    expected_sums = mask.any(-1).double()  # 1, or 0 for a row where nothing is allowed
    torch.testing.assert_close(row_sums, expected_sums, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", HALF_DTYPES, ids=str)
def test_weights_half_precision(dtype):
    """16-bit weights are returned in the input dtype, each within one rounding of exact."""
    gen = torch.Generator().manual_seed(3)
    q, k, v = (randn(gen, 3, 6, 8, dtype=dtype) for _ in range(3))
    _, weights = scaled_dot_product_attention(q, k, v, return_weights=True)
    _, exact = reference_attention(q, k, v)
    assert weights.dtype == dtype
    torch.testing.assert_close(weights.double(), exact, rtol=unit_roundoff(dtype), atol=1e-6)


# ---------------------------------------------------------------------- gradients


def _grad_inputs(seed, n_q=3, n_k=4, d_k=3, d_v=2):
    gen = torch.Generator().manual_seed(seed)
    q = randn(gen, 2, n_q, d_k).requires_grad_()
    k = randn(gen, 2, n_k, d_k).requires_grad_()
    v = randn(gen, 2, n_k, d_v).requires_grad_()
    return q, k, v


def _grad_masks():
    rows_ok = torch.tensor([[1, 0, 1, 0], [0, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    one_dead_row = rows_ok.clone()
    one_dead_row[1] = False
    additive = torch.tensor(
        [[0.0, -1.0, 0.5, -math.inf], [0.2, 0.0, -math.inf, 1.0], [-math.inf] * 4],
        dtype=torch.float64,
    )
    return {
        "none": None,
        "bool": rows_ok,
        "bool_fully_masked_row": one_dead_row,
        "float_with_fully_masked_row": additive,
        "key_padding": torch.tensor([True, True, False, True]).expand(2, 1, 4),
    }


@pytest.mark.parametrize("mask_name", list(_grad_masks()))
def test_gradcheck(mask_name):
    """float64 first and second derivatives of both the output and the returned weights."""
    mask = _grad_masks()[mask_name]
    q, k, v = _grad_inputs(0)

    def f(q, k, v):
        out, weights = scaled_dot_product_attention(q, k, v, mask, scale=0.7, return_weights=True)
        return torch.cat([out.flatten(), weights.flatten()])  # so neither can be skipped

    assert torch.autograd.gradcheck(f, (q, k, v))
    assert torch.autograd.gradgradcheck(f, (q, k, v))


@pytest.mark.parametrize("mask_name", ["none", "bool", "key_padding"])
def test_gradients_match_torch(mask_name):
    """Backward through attnkit equals backward through torch's function (float64)."""
    mask = _grad_masks()[mask_name]
    grads = []
    for fn in (scaled_dot_product_attention, torch_sdpa):
        q, k, v = _grad_inputs(1)
        out = fn(q, k, v, mask)
        out.backward(torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape))
        grads.append((q.grad, k.grad, v.grad))
    for ours, theirs in zip(*grads):
        torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)


# -------------------------------------------------------------- fully masked rows


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("additive", [False, True])
def test_fully_masked_row_gives_zeros_and_zero_gradient(dtype, additive):
    gen = torch.Generator().manual_seed(4)
    q = randn(gen, 2, 4, 8, dtype=dtype).requires_grad_()
    k = randn(gen, 2, 6, 8, dtype=dtype).requires_grad_()
    v = randn(gen, 2, 6, 3, dtype=dtype).requires_grad_()
    mask = torch.rand(4, 6, generator=gen) < 0.6
    mask[:, 0] = True
    mask[2] = False  # query 2 may attend to nothing
    if additive:
        mask = to_additive_mask(mask, dtype)
    out, weights = scaled_dot_product_attention(q, k, v, mask, return_weights=True)
    assert torch.equal(out[:, 2], torch.zeros(2, 3, dtype=dtype))
    assert torch.equal(weights[:, 2], torch.zeros(2, 6, dtype=dtype))
    expected, _ = reference_attention(q, k, v, mask)
    rtol, atol = tolerance(v)
    torch.testing.assert_close(out.double(), expected, rtol=2 * rtol, atol=2 * atol)
    (out.double() * torch.linspace(-2, 3, out.numel()).reshape(out.shape)).sum().backward()
    for t in (q, k, v):
        assert torch.isfinite(t.grad).all()
    assert torch.equal(q.grad[:, 2], torch.zeros(2, 8, dtype=dtype))
    assert q.grad[:, [0, 1, 3]].abs().sum() > 0


def test_no_keys_gives_zeros_and_zero_gradients():
    """n_k = 0 (e.g. an empty memory): every query sees nothing; output 0, weights empty."""
    gen = torch.Generator().manual_seed(18)
    q = randn(gen, 2, 3, 4).requires_grad_()
    k, v = randn(gen, 2, 0, 4).requires_grad_(), randn(gen, 2, 0, 5).requires_grad_()
    out, weights = scaled_dot_product_attention(q, k, v, return_weights=True)
    assert weights.shape == (2, 3, 0)
    assert torch.equal(out, torch.zeros(2, 3, 5, dtype=torch.float64))
    out.sum().backward()
    assert torch.equal(q.grad, torch.zeros_like(q))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_padded_queries_give_zeros(dtype):
    """Self-attention over padded sequences: padded queries see nothing and give zeros."""
    gen = torch.Generator().manual_seed(5)
    lengths = torch.tensor([5, 2, 0])
    x = randn(gen, 3, 5, 4, dtype=dtype).requires_grad_()
    valid = padding_mask(lengths)  # (B, T)
    mask = valid[:, :, None] & valid[:, None, :]  # query and key must both be real tokens
    out = scaled_dot_product_attention(x, x, x, mask)
    expected, _ = reference_attention(x, x, x, mask)
    rtol, atol = tolerance(x)
    torch.testing.assert_close(out.double(), expected, rtol=2 * rtol, atol=2 * atol)
    assert torch.equal(out[~valid], torch.zeros(int((~valid).sum()), 4, dtype=dtype))
    out.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert torch.equal(x.grad[~valid], torch.zeros_like(x.grad[~valid]))


# --------------------------------------------------------------- large logits


@pytest.mark.parametrize("factor", [1e2, 1e4, 1e6])
def test_large_logits_float32(factor):
    """Scores of size ~factor^2 in float32 neither overflow nor lose the answer."""
    gen = torch.Generator().manual_seed(6)
    q = randn(gen, 2, 5, 8, dtype=torch.float32) * factor
    k = randn(gen, 2, 7, 8, dtype=torch.float32) * factor
    v = randn(gen, 2, 7, 3, dtype=torch.float32)
    mask = torch.rand(5, 7, generator=gen) < 0.7
    mask[:, 0] = True
    out, weights = scaled_dot_product_attention(q, k, v, mask, return_weights=True)
    assert torch.isfinite(out).all()
    assert torch.isfinite(weights).all()
    expected, expected_weights = reference_attention(q, k, v, mask)
    torch.testing.assert_close(out.double(), expected, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(weights.double(), expected_weights, rtol=1e-6, atol=1e-6)


def test_large_masked_score_is_ignored():
    """A masked key with by far the largest score gets no weight."""
    q = torch.tensor([[1e4, 0.0]])
    k = torch.tensor([[1e4, 0.0], [1.0, 0.0], [0.0, 1.0]])
    v = torch.tensor([[100.0], [1.0], [2.0]])
    mask = torch.tensor([[False, True, True]])
    out, weights = scaled_dot_product_attention(q, k, v, mask, scale=1.0, return_weights=True)
    # scores of the allowed keys: 1e4 and 0 -> all weight on key 1
    assert torch.equal(weights, torch.tensor([[0.0, 1.0, 0.0]]))
    assert torch.equal(out, torch.tensor([[1.0]]))


@pytest.mark.parametrize("dtype", HALF_DTYPES, ids=str)
def test_large_logits_half_precision(dtype):
    """16-bit scores that would overflow float16 (|s| > 65504) are fine: computed in float32."""
    gen = torch.Generator().manual_seed(7)
    q = (randn(gen, 4, 8) * 200).to(dtype)
    k = (randn(gen, 6, 8) * 200).to(dtype)
    v = randn(gen, 6, 2, dtype=dtype)
    out = scaled_dot_product_attention(q, k, v, scale=1.0)
    assert torch.isfinite(out).all()
    expected, _ = reference_attention(q, k, v, scale=1.0)
    torch.testing.assert_close(out.double(), expected, rtol=unit_roundoff(dtype), atol=1e-6)


# ----------------------------------------------------------------- properties

small = st.integers(min_value=1, max_value=7)


def _random_mask(gen, n_q, n_k, density):
    return torch.rand(n_q, n_k, generator=gen) < density


@HYPOTHESIS
@given(
    seed=st.integers(0, 2**31 - 1),
    n_q=small,
    n_k=small,
    d=small,
    density=st.sampled_from([0.0, 0.3, 0.8, 1.0]),
)
def test_property_weights_are_a_distribution(seed, n_q, n_k, d, density):
    """Weights are >= 0, 0 where masked, and each row sums to 1 (0 if fully masked)."""
    gen = torch.Generator().manual_seed(seed)
    q, k, v = randn(gen, n_q, d), randn(gen, n_k, d), randn(gen, n_k, d)
    mask = _random_mask(gen, n_q, n_k, density)
    _, weights = scaled_dot_product_attention(q, k, v, mask, return_weights=True)
    assert torch.all(weights >= 0)
    assert torch.all(weights[~mask] == 0)
    torch.testing.assert_close(weights.sum(-1), mask.any(-1).double(), rtol=0, atol=1e-12)


@HYPOTHESIS
@given(seed=st.integers(0, 2**31 - 1), n=small, d=small, use_mask=st.booleans())
def test_property_permutation_equivariance(seed, n, d, use_mask):
    """Self-attention without positions: permuting the tokens permutes the output."""
    gen = torch.Generator().manual_seed(seed)
    x = randn(gen, n, d)
    w_q, w_k, w_v = randn(gen, d, d), randn(gen, d, d), randn(gen, d, d)
    mask = _random_mask(gen, n, n, 0.6) if use_mask else None
    perm = torch.randperm(n, generator=gen)

    def self_attention(x, mask):
        return scaled_dot_product_attention(x @ w_q, x @ w_k, x @ w_v, mask)

    permuted_mask = None if mask is None else mask[perm][:, perm]
    out = self_attention(x, mask)
    torch.testing.assert_close(
        self_attention(x[perm], permuted_mask), out[perm], rtol=1e-10, atol=1e-10
    )


@HYPOTHESIS
@given(
    seed=st.integers(0, 2**31 - 1),
    n_q=small,
    n_k=small,
    d=small,
    density=st.sampled_from([0.3, 0.8, 1.0]),
)
def test_property_output_is_convex_combination(seed, n_q, n_k, d, density):
    """Every output coordinate lies between the min and max of the allowed values."""
    gen = torch.Generator().manual_seed(seed)
    q, k = randn(gen, n_q, d) * 3, randn(gen, n_k, d) * 3
    v = randn(gen, n_k, 3)
    mask = _random_mask(gen, n_q, n_k, density)
    out = scaled_dot_product_attention(q, k, v, mask)
    for i in range(n_q):
        allowed = v[mask[i]]
        if len(allowed) == 0:
            assert torch.equal(out[i], torch.zeros(3, dtype=out.dtype))
            continue
        assert torch.all(out[i] >= allowed.min(0).values - 1e-12)
        assert torch.all(out[i] <= allowed.max(0).values + 1e-12)


@HYPOTHESIS
@given(
    seed=st.integers(0, 2**31 - 1),
    n_q=small,
    n_k=small,
    shift=st.floats(-1e3, 1e3, allow_nan=False),
)
def test_property_row_constant_in_additive_mask_changes_nothing(seed, n_q, n_k, shift):
    """Adding a constant to all scores of a row (via a (n_q, 1) float mask) is a no-op."""
    gen = torch.Generator().manual_seed(seed)
    q, k, v = randn(gen, n_q, 4), randn(gen, n_k, 4), randn(gen, n_k, 2)
    row_shift = shift * torch.rand(n_q, 1, generator=gen, dtype=torch.float64)
    expected, _ = reference_attention(q, k, v)
    out = scaled_dot_product_attention(q, k, v, row_shift)
    torch.testing.assert_close(out, expected, rtol=1e-9, atol=1e-9)


# ----------------------------------------------------------------------- dropout


def test_no_dropout_is_deterministic():
    gen = torch.Generator().manual_seed(8)
    q, k, v = randn(gen, 2, 4, 8), randn(gen, 2, 6, 8), randn(gen, 2, 6, 3)
    first = scaled_dot_product_attention(q, k, v, dropout_p=0.0)
    second = scaled_dot_product_attention(q, k, v, dropout_p=0.0)
    assert torch.equal(first, second)
    torch.testing.assert_close(first, reference_attention(q, k, v)[0], rtol=1e-12, atol=1e-12)


def test_dropout_zeroes_weights_and_rescales_survivors():
    """With v = identity the output *is* the dropped weight matrix: entries are 0 or w/(1-p)."""
    p, n_samples = 0.3, 4000
    gen = torch.Generator().manual_seed(9)
    q, k = randn(gen, 1, 4, 5), randn(gen, 1, 6, 5)
    v = torch.eye(6, dtype=torch.float64)
    _, weights = scaled_dot_product_attention(q, k, v, return_weights=True)
    dropped, weights_again = scaled_dot_product_attention(
        q.expand(n_samples, 4, 5),
        k,
        v,
        dropout_p=p,
        return_weights=True,
        generator=torch.Generator().manual_seed(10),
    )
    torch.testing.assert_close(weights_again, weights.expand(n_samples, 4, 6))  # pre-dropout
    kept = dropped != 0
    torch.testing.assert_close(dropped[kept], (weights / (1 - p)).expand_as(dropped)[kept])
    # fraction dropped: binomial with n = 4000 * 24 draws; allow 5 standard deviations
    n = kept.numel()
    assert abs((~kept).sum().item() / n - p) < 5 * math.sqrt(p * (1 - p) / n)


def test_dropout_mean_approaches_no_dropout_output():
    """E[output] = output without dropout; the sample mean is within 5 standard errors."""
    p, n_samples = 0.4, 20000
    gen = torch.Generator().manual_seed(11)
    q, k, v = randn(gen, 3, 5), randn(gen, 7, 5), randn(gen, 7, 2)
    expected, weights = reference_attention(q, k, v)
    samples = scaled_dot_product_attention(
        q.expand(n_samples, 3, 5), k, v, dropout_p=p, generator=torch.Generator().manual_seed(12)
    )
    # each weight is w / (1 - p) with probability 1 - p and 0 otherwise, independently:
    # Var[out_ic] = sum_j w_ij^2 v_jc^2 p / (1 - p)
    variance = (weights**2) @ (v**2) * p / (1 - p)
    standard_error = (variance / n_samples).sqrt()
    deviation = (samples.mean(0) - expected).abs()
    assert torch.all(deviation < 5 * standard_error)
    assert samples.std(0).min() > 0  # it really is random


def test_dropout_generator_reproducible():
    gen = torch.Generator().manual_seed(13)
    q, k, v = randn(gen, 4, 8), randn(gen, 6, 8), randn(gen, 6, 3)

    def run(seed):
        g = torch.Generator().manual_seed(seed)
        return scaled_dot_product_attention(q, k, v, dropout_p=0.5, generator=g)

    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))


def test_module_matches_torch_and_uses_no_dropout_in_eval():
    gen = torch.Generator().manual_seed(14)
    q, k, v = randn(gen, 2, 4, 8), randn(gen, 2, 6, 8), randn(gen, 2, 6, 3)
    mask = causal_mask(4, 6)
    module = ScaledDotProductAttention(dropout=0.5, scale=0.3)
    assert module.training
    module.eval()
    expected = torch_sdpa(q, k, v, mask, scale=0.3)
    torch.manual_seed(0)
    first = module(q, k, v, mask)
    second = module(q, k, v, mask)
    torch.testing.assert_close(first, expected, rtol=1e-12, atol=1e-12)
    assert torch.equal(first, second)
    _, weights = module(q, k, v, mask, return_weights=True)
    torch.testing.assert_close(weights, reference_attention(q, k, v, mask, 0.3)[1])
    module.train()
    torch.manual_seed(0)
    assert not torch.allclose(module(q, k, v, mask), expected)


def test_module_default_scale_and_no_parameters():
    gen = torch.Generator().manual_seed(15)
    q, k, v = randn(gen, 5, 16), randn(gen, 3, 16), randn(gen, 3, 4)
    module = ScaledDotProductAttention()
    assert list(module.parameters()) == []
    torch.testing.assert_close(module(q, k, v), reference_attention(q, k, v)[0])


def test_module_train_mode_dropout_mean():
    """In training mode the module drops weights; the average over many runs is unbiased."""
    p, n_samples = 0.25, 20000
    gen = torch.Generator().manual_seed(16)
    q, k, v = randn(gen, 2, 4), randn(gen, 5, 4), randn(gen, 5, 3)
    expected, weights = reference_attention(q, k, v)
    torch.manual_seed(17)
    samples = ScaledDotProductAttention(dropout=p)(q.expand(n_samples, 2, 4), k, v)
    variance = (weights**2) @ (v**2) * p / (1 - p)
    assert torch.all((samples.mean(0) - expected).abs() < 5 * (variance / n_samples).sqrt())
    assert samples.std(0).min() > 0


# ------------------------------------------------------------------- bad input


def _qkv():
    return torch.randn(2, 5, 8), torch.randn(2, 7, 8), torch.randn(2, 7, 4)


BAD_CALLS = {
    "q_list": (lambda q, k, v: ([[1.0]], k, v, {}), TypeError, r"q must be a torch\.Tensor"),
    "k_list": (lambda q, k, v: (q, [[1.0]], v, {}), TypeError, r"k must be a torch\.Tensor"),
    "v_list": (lambda q, k, v: (q, k, v.tolist(), {}), TypeError, r"v must be a torch\.Tensor"),
    "q_int": (lambda q, k, v: (q.long(), k, v, {}), TypeError, r"q must be a floating-point"),
    "v_int": (lambda q, k, v: (q, k, v.int(), {}), TypeError, r"v must be a floating-point"),
    "q_1d": (lambda q, k, v: (q[0, 0], k, v, {}), ValueError, r"q must have at least 2 dim"),
    "dtype_mismatch": (
        lambda q, k, v: (q, k.double(), v, {}),
        TypeError,
        r"q, k, v must share one dtype.*k is torch\.float64",
    ),
    "d_k_mismatch": (
        lambda q, k, v: (q, k[..., :6], v, {}),
        ValueError,
        r"q and k must have the same last dimension d_k",
    ),
    "n_k_mismatch": (lambda q, k, v: (q, k, v[:, :6], {}), ValueError, r"k and v .* n_k"),
    "batch_mismatch": (
        lambda q, k, v: (q, torch.randn(3, 7, 8), torch.randn(3, 7, 4), {}),
        ValueError,
        r"leading \(batch\) dimensions.*q \(2\).*k \(3\)",
    ),
    "mask_shape": (
        lambda q, k, v: (q, k, v, {"mask": torch.ones(5, 6, dtype=torch.bool)}),
        ValueError,
        r"mask of shape \(5, 6\) cannot broadcast",
    ),
    "mask_enlarges": (
        lambda q, k, v: (q, k, v, {"mask": torch.ones(3, 2, 5, 7).bool()}),
        ValueError,
        r"mask of shape \(3, 2, 5, 7\)",
    ),
    "mask_int": (
        lambda q, k, v: (q, k, v, {"mask": torch.ones(5, 7, dtype=torch.long)}),
        TypeError,
        r"mask must be bool .* or floating-point",
    ),
    "mask_list": (
        lambda q, k, v: (q, k, v, {"mask": [[True] * 7] * 5}),
        TypeError,
        r"mask must be a torch\.Tensor",
    ),
    "scale_zero": (lambda q, k, v: (q, k, v, {"scale": 0.0}), ValueError, r"scale must be a pos"),
    "scale_neg": (lambda q, k, v: (q, k, v, {"scale": -1}), ValueError, r"scale must be a pos"),
    "scale_nan": (lambda q, k, v: (q, k, v, {"scale": math.nan}), ValueError, r"scale.*nan"),
    "scale_inf": (lambda q, k, v: (q, k, v, {"scale": math.inf}), ValueError, r"scale.*inf"),
    "scale_str": (lambda q, k, v: (q, k, v, {"scale": "0.5"}), TypeError, r"scale must be None"),
    "dropout_neg": (
        lambda q, k, v: (q, k, v, {"dropout_p": -0.1}),
        ValueError,
        r"dropout_p must be a number in \[0, 1\)",
    ),
    "dropout_one": (lambda q, k, v: (q, k, v, {"dropout_p": 1.0}), ValueError, r"dropout_p"),
    "dropout_nan": (lambda q, k, v: (q, k, v, {"dropout_p": math.nan}), ValueError, r"dropout_p"),
    "dropout_bool": (lambda q, k, v: (q, k, v, {"dropout_p": True}), ValueError, r"dropout_p"),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_bad_input_raises_naming_the_argument(case):
    make, error, message = BAD_CALLS[case]
    q, k, v, kwargs = make(*_qkv())
    mask = kwargs.pop("mask", None)
    with pytest.raises(error, match=message):
        scaled_dot_product_attention(q, k, v, mask, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dropout": 1.5}, r"dropout must be a number in \[0, 1\)"),
        ({"dropout": -0.5}, r"dropout must be"),
        ({"scale": 0}, r"scale must be a positive"),
        ({"scale": math.nan}, r"scale must be a positive"),
    ],
)
def test_module_rejects_bad_hyperparameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ScaledDotProductAttention(**kwargs)


def test_module_validates_inputs():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match=r"k and v .* n_k"):
        ScaledDotProductAttention()(q, k, v[:, :3])


def test_numpy_scalars_are_accepted_for_scale_and_dropout():
    np = pytest.importorskip("numpy")
    q = torch.randn(2, 3, 4)
    out = scaled_dot_product_attention(q, q, q, scale=np.float32(0.5), dropout_p=np.float64(0.0))
    torch.testing.assert_close(out, scaled_dot_product_attention(q, q, q, scale=0.5))
    with pytest.raises(ValueError, match="dropout_p"):
        scaled_dot_product_attention(q, q, q, dropout_p=np.float64(1.5))


# ------------------------------------------------- issue 21: garbage in masked positions


@pytest.mark.parametrize("garbage", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("additive", [False, True])
def test_masked_value_rows_do_not_leak(garbage, additive):
    """A NaN/inf in a value row that no query may see changes nothing (torch's SDPA lets
    0 * NaN reach every output row); fully masked rows stay 0; gradients stay finite."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 3, dtype=torch.float64) for _ in range(3))
    allowed = torch.ones(2, 4, 4, dtype=torch.bool)
    allowed[..., 3] = False  # key 3 is padding
    allowed[1, 0] = False  # query 0 of batch 1 sees nothing
    mask = to_additive_mask(allowed, torch.float64) if additive else allowed
    clean = scaled_dot_product_attention(q, k, v, mask)
    dirty_v = v.clone().requires_grad_(True)
    with torch.no_grad():
        dirty_v[:, 3] = garbage
    out = scaled_dot_product_attention(q, k, dirty_v, mask)
    assert torch.equal(out, clean)
    assert (out[1, 0] == 0).all()
    out.sum().backward()
    assert torch.isfinite(dirty_v.grad).all()
    torch_out = F.scaled_dot_product_attention(q, k, dirty_v.detach(), attn_mask=mask)
    assert not torch.isfinite(torch_out).all()  # what the book says torch does


def test_unmasked_nan_value_still_propagates():
    """Only weight-0 positions are taken out: a NaN a query does attend to gives NaN."""
    q, k, v = (torch.randn(1, 3, 2) for _ in range(3))
    v[0, 1, 0] = math.nan
    out = scaled_dot_product_attention(q, k, v)
    assert out[..., 0].isnan().all() and torch.isfinite(out[..., 1]).all()


def test_attend_checks_its_arguments():
    scores, v = torch.randn(2, 3, 4), torch.randn(2, 4, 5)
    for p in (1.0, 1.5, -0.5, math.nan):
        with pytest.raises(ValueError, match="dropout_p"):
            attend(scores, v, dropout_p=p)
    with pytest.raises(TypeError, match="v must be a floating-point tensor"):
        attend(scores, v.long())
    with pytest.raises(ValueError, match=r"scores .* and v .* must agree on n_k"):
        attend(scores, torch.randn(2, 3, 5))


def test_masked_softmax_refuses_nan_at_allowed_positions():
    with pytest.raises(ValueError, match="scores must be finite"):
        masked_softmax(torch.tensor([1.0, math.nan]))
    with pytest.raises(ValueError, match="scores must be finite"):
        masked_softmax(torch.tensor([1.0, math.inf]))
    # masked away, NaN and +inf are fine, with a bool or an additive mask
    s = torch.tensor([1.0, math.nan, math.inf])
    keep = torch.tensor([True, False, False])
    assert torch.equal(masked_softmax(s, keep), torch.tensor([1.0, 0.0, 0.0]))
    assert torch.equal(masked_softmax(s, to_additive_mask(keep)), torch.tensor([1.0, 0.0, 0.0]))


def test_flags_must_be_bools_and_d_k_zero_needs_a_scale():
    q = torch.randn(2, 3)
    with pytest.raises(TypeError, match="return_weights must be True or False"):
        scaled_dot_product_attention(q, q, q, return_weights="no")
    empty = torch.randn(2, 0)
    with pytest.raises(ValueError, match="d_k = 0"):
        scaled_dot_product_attention(empty, empty, q)
    out = scaled_dot_product_attention(empty, empty, q, scale=1.0)  # uniform weights
    torch.testing.assert_close(out, q.mean(0).expand(2, 3))

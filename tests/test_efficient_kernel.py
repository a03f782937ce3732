"""Tests of kernel attention: the linear transformer (elu + 1) and the Performer (FAVOR+).

The exact references are written out here: the quadratic form ``A = phi_q phi_k^T``
(masked, row-normalised, times ``v``) for :func:`kernel_attention`, and a float64 softmax
for :func:`favor_attention`'s approximation.
"""

import math
from unittest import mock

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode

from attnkit.efficient import kernel as kernel_module
from attnkit.efficient.kernel import (
    LinearSelfAttention,
    elu_feature_map,
    kernel_attention,
    linear_attention,
)
from attnkit.efficient.performer import (
    PerformerSelfAttention,
    default_num_features,
    favor_attention,
    orthogonal_gaussian_features,
    positive_random_features,
)

HYPOTHESIS = settings(max_examples=25, deadline=None, derandomize=True, database=None)


# --------------------------------------------------------------------------- helpers


def gen(seed):
    return torch.Generator().manual_seed(seed)


def randn(g, *shape, dtype=torch.float64):
    return torch.randn(*shape, generator=g, dtype=dtype)


def quadratic_kernel_attention(phi_q, phi_k, v, causal=False, key_mask=None):
    """Reference: ``A = phi_q phi_k^T``, masked, rows normalised (0 if empty), ``A v``."""
    A = phi_q @ phi_k.transpose(-2, -1)  # (..., n_q, n_k)
    if causal:
        n = A.shape[-1]
        A = A * torch.ones(n, n, dtype=torch.bool).tril()
    if key_mask is not None:
        A = A * key_mask.unsqueeze(-2)  # (..., 1, n_k)
    total = A.sum(-1, keepdim=True)
    return (A / torch.where(total > 0, total, torch.ones_like(total))) @ v


def softmax_reference(q, k, v, scale=None, causal=False, key_mask=None):
    """float64 softmax(q k^T * scale) v with causal / key padding masks."""
    q, k, v = (t.detach().double() for t in (q, k, v))
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * scale
    allowed = torch.ones(scores.shape, dtype=torch.bool)
    if causal:
        allowed = allowed & torch.ones(scores.shape[-2:], dtype=torch.bool).tril()
    if key_mask is not None:
        allowed = allowed & key_mask.unsqueeze(-2)
    weights = torch.softmax(scores.masked_fill(~allowed, -math.inf), dim=-1)
    return torch.nan_to_num(weights, nan=0.0) @ v


def elu_plus_one(x):
    """The linear transformer's feature map written out: x + 1 for x > 0, exp(x) otherwise."""
    return torch.where(x > 0, x + 1, torch.exp(torch.clamp(x, max=0)))


def positive_features(n, m, g, *shape):
    return torch.rand(*shape, n, m, generator=g, dtype=torch.float64) + 0.05


# ------------------------------------------------------------------ kernel_attention


@HYPOTHESIS
@given(
    seed=st.integers(0, 2**16),
    n=st.integers(1, 40),
    m=st.integers(1, 6),
    d_v=st.integers(1, 5),
    chunk=st.integers(1, 17),
    block=st.sampled_from([1, 5, 16, 1024]),
    causal=st.booleans(),
)
def test_property_kernel_attention_equals_quadratic_form(seed, n, m, d_v, chunk, block, causal):
    """Any chunk size (dividing n or not) and any number of causal loop steps (blocks of
    whole chunks, one or several) give the explicit quadratic form (float64)."""
    g = gen(seed)
    phi_q, phi_k = positive_features(n, m, g, 2, 3), positive_features(n, m, g, 2, 3)
    v = randn(g, 2, 3, n, d_v)
    with mock.patch.object(kernel_module, "_BLOCK", block):
        out = kernel_attention(phi_q, phi_k, v, causal=causal, chunk_size=chunk)
    expected = quadratic_kernel_attention(phi_q, phi_k, v, causal)
    assert out.shape == (2, 3, n, d_v)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("causal", [False, True])
def test_kernel_attention_gradients_match_quadratic_form(causal):
    grads = []
    for fn in (
        lambda a, b, c: kernel_attention(a, b, c, causal=causal, chunk_size=4),
        lambda a, b, c: quadratic_kernel_attention(a, b, c, causal),
    ):
        g = gen(3)
        phi_q = positive_features(11, 5, g, 2).requires_grad_()
        phi_k = positive_features(11, 5, g, 2).requires_grad_()
        v = randn(g, 2, 11, 3).requires_grad_()
        out = fn(phi_q, phi_k, v)
        out.backward(torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape))
        grads.append((phi_q.grad, phi_k.grad, v.grad))
    for ours, theirs in zip(*grads):
        torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)


def test_kernel_attention_long_causal_sequence_with_default_chunks():
    """n = 2500 with the default chunk 128 and loop blocks of 1024 positions: 3 blocks."""
    g = gen(29)
    phi_q, phi_k, v = (
        positive_features(2500, 3, g),
        positive_features(2500, 3, g),
        randn(g, 2500, 2),
    )
    out = kernel_attention(phi_q, phi_k, v, causal=True)
    expected = quadratic_kernel_attention(phi_q, phi_k, v, causal=True)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("causal", "chunk"), [(False, 128), (True, 2), (True, 16)])
@mock.patch.object(kernel_module, "_BLOCK", 4)  # causal, chunk 2: loop blocks of 4 positions
def test_kernel_attention_gradcheck(causal, chunk):
    g = gen(4)
    phi_q = positive_features(7, 4, g, 2).requires_grad_()
    phi_k = positive_features(7, 4, g, 2).requires_grad_()
    v = randn(g, 2, 7, 3).requires_grad_()
    mask = torch.tensor([True, True, False, True, True, True, False]).expand(2, 7)

    def f(a, b, c):
        return kernel_attention(a, b, c, causal=causal, chunk_size=chunk, key_padding_mask=mask)

    assert torch.autograd.gradcheck(f, (phi_q, phi_k, v))


def test_kernel_attention_non_causal_allows_different_lengths_and_2d_inputs():
    g = gen(5)
    phi_q, phi_k, v = positive_features(4, 3, g), positive_features(9, 3, g), randn(g, 9, 2)
    out = kernel_attention(phi_q, phi_k, v)
    assert out.shape == (4, 2)
    torch.testing.assert_close(out, quadratic_kernel_attention(phi_q, phi_k, v), atol=1e-12, rtol=0)


def test_kernel_attention_broadcasts_batch_dimensions():
    g = gen(6)
    phi_q = positive_features(10, 4, g, 2, 1)  # (B, 1, n, m)
    phi_k = positive_features(10, 4, g, 1, 3)  # (1, H, n, m)
    v = randn(g, 10, 5)  # (n, d_v)
    for causal in (False, True):
        out = kernel_attention(phi_q, phi_k, v, causal=causal, chunk_size=3)
        assert out.shape == (2, 3, 10, 5)
        expected = quadratic_kernel_attention(phi_q, phi_k, v, causal)
        torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("causal", [False, True])
def test_kernel_attention_ignores_padded_keys(causal):
    """Padded keys take no weight: their features and values may be anything."""
    g = gen(7)
    B, H, n, m = 2, 3, 13, 4
    phi_q, phi_k = positive_features(n, m, g, B, H), positive_features(n, m, g, B, H)
    v = randn(g, B, H, n, 5)
    mask = torch.rand(B, n, generator=g) < 0.6
    mask[:, 0] = True
    out = kernel_attention(
        phi_q, phi_k, v, causal=causal, key_padding_mask=mask[:, None], chunk_size=4
    )
    expected = quadratic_kernel_attention(phi_q, phi_k, v, causal, mask[:, None])
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-12)
    pad = ~mask[:, None, :, None]  # (B, 1, n, 1)
    other = kernel_attention(
        phi_q,
        torch.where(pad, 100.0 * phi_k, phi_k),
        torch.where(pad, -7.0 + v, v),
        causal=causal,
        key_padding_mask=mask[:, None],
        chunk_size=4,
    )
    torch.testing.assert_close(other, out, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("causal", [False, True])
def test_kernel_attention_rows_without_real_keys_give_zeros_and_zero_gradients(causal):
    g = gen(8)
    phi_q = positive_features(6, 3, g, 2).requires_grad_()
    phi_k = positive_features(6, 3, g, 2).requires_grad_()
    v = randn(g, 2, 6, 4).requires_grad_()
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[0] = False  # batch 0: every key padded
    mask[1, :2] = False  # batch 1: queries 0 and 1 see no real key when causal
    out = kernel_attention(phi_q, phi_k, v, causal=causal, key_padding_mask=mask)
    assert torch.equal(out[0], torch.zeros(6, 4, dtype=torch.float64))
    if causal:
        assert torch.equal(out[1, :2], torch.zeros(2, 4, dtype=torch.float64))
    out.backward(torch.linspace(-1, 2, out.numel(), dtype=out.dtype).reshape(out.shape))
    for t in (phi_q, phi_k, v):
        assert torch.isfinite(t.grad).all()
    assert torch.equal(phi_q.grad[0], torch.zeros(6, 3, dtype=torch.float64))
    assert torch.equal(v.grad[0], torch.zeros(6, 4, dtype=torch.float64))
    assert phi_q.grad[1].abs().sum() > 0


@pytest.mark.parametrize("n", [1, 5, 9, 16])
@mock.patch.object(kernel_module, "_BLOCK", 8)  # chunks of 4, loop blocks of 8 positions
def test_kernel_attention_causal_output_ignores_the_future(n):
    """Changing positions > i (features and values) leaves outputs 0..i exactly unchanged."""
    g = gen(9)
    phi_q, phi_k, v = (
        positive_features(n, 3, g, 2),
        positive_features(n, 3, g, 2),
        randn(g, 2, n, 2),
    )
    out = kernel_attention(phi_q, phi_k, v, causal=True, chunk_size=4)
    for i in range(n):
        later = torch.arange(n) > i
        bumped = [torch.where(later[:, None], 5.0 * t + 1.0, t) for t in (phi_q, phi_k, v)]
        changed = kernel_attention(*bumped, causal=True, chunk_size=4)
        assert torch.equal(changed[:, : i + 1], out[:, : i + 1])
        if i + 1 < n:
            assert not torch.equal(changed[:, i + 1 :], out[:, i + 1 :])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_kernel_attention_half_precision_is_computed_in_float32(dtype):
    g = gen(10)
    phi_q, phi_k = (
        positive_features(20, 4, g, 2).to(dtype),
        positive_features(20, 4, g, 2).to(dtype),
    )
    v = randn(g, 2, 20, 3).to(dtype)
    for causal in (False, True):
        out = kernel_attention(phi_q, phi_k, v, causal=causal, chunk_size=8)
        assert out.dtype == dtype
        expected = quadratic_kernel_attention(phi_q.double(), phi_k.double(), v.double(), causal)
        torch.testing.assert_close(out, expected.to(dtype), rtol=torch.finfo(dtype).eps, atol=0.0)


def test_kernel_attention_empty_sequence():
    phi = torch.ones(2, 0, 3)
    out = kernel_attention(phi, phi, torch.ones(2, 0, 4), causal=True)
    assert out.shape == (2, 0, 4)


KERNEL_BAD_CALLS = {
    "phi_q_list": (dict(phi_q=[[1.0]]), TypeError, r"phi_q must be a torch\.Tensor"),
    "phi_k_int": (
        dict(phi_k=torch.ones(2, 5, 3, dtype=torch.long)),
        TypeError,
        r"phi_k must be a floating-point tensor",
    ),
    "v_1d": (dict(v=torch.ones(5)), ValueError, r"v must have at least 2 dimensions"),
    "dtype_mix": (dict(v=torch.ones(2, 5, 4, dtype=torch.float64)), TypeError, r"share one dtype"),
    "m_mismatch": (dict(phi_k=torch.ones(2, 5, 2)), ValueError, r"same number of features m"),
    "n_mismatch": (dict(v=torch.ones(2, 6, 4)), ValueError, r"phi_k and v .* n_k"),
    "batch": (dict(v=torch.ones(3, 5, 4)), ValueError, r"leading \(batch\) dimensions"),
    "causal_lengths": (
        dict(phi_q=torch.ones(2, 4, 3), causal=True),
        ValueError,
        r"causal kernel attention needs as many queries as keys",
    ),
    "causal_str": (dict(causal="yes"), TypeError, r"causal must be True or False"),
    "mask_int": (
        dict(key_padding_mask=torch.ones(2, 5, dtype=torch.long)),
        ValueError,
        r"key_padding_mask must be a bool tensor",
    ),
    "mask_shape": (
        dict(key_padding_mask=torch.ones(2, 4, dtype=torch.bool)),
        ValueError,
        r"broadcasts to \(\.\.\., n_k\) = \(2, 5\)",
    ),
    "eps_zero": (dict(eps=0.0), ValueError, r"eps must be a positive"),
    "eps_none": (dict(eps=None), TypeError, r"eps must be a positive number"),
    "chunk_zero": (dict(chunk_size=0), ValueError, r"chunk_size must be a positive integer"),
    "chunk_float": (dict(chunk_size=2.5), ValueError, r"chunk_size must be a positive integer"),
}


@pytest.mark.parametrize("case", list(KERNEL_BAD_CALLS))
def test_kernel_attention_bad_input_raises(case):
    change, error, message = KERNEL_BAD_CALLS[case]
    args = dict(phi_q=torch.ones(2, 5, 3), phi_k=torch.ones(2, 5, 3), v=torch.ones(2, 5, 4))
    args.update(change)
    with pytest.raises(error, match=message):
        kernel_attention(args.pop("phi_q"), args.pop("phi_k"), args.pop("v"), **args)


# --------------------------------------------------------- linear attention (elu + 1)


def test_elu_feature_map_is_elu_plus_one():
    x = torch.linspace(-30, 5, 200, dtype=torch.float64, requires_grad=True)
    phi = elu_feature_map(x)
    torch.testing.assert_close(phi, elu_plus_one(x), rtol=0, atol=1e-15)
    assert (phi > 0).all()
    phi.sum().backward()
    expected = torch.where(x > 0, 1.0, torch.exp(x.detach().clamp(max=0)))
    torch.testing.assert_close(x.grad, expected, rtol=1e-15, atol=0)
    with pytest.raises(TypeError, match="x must be a floating-point"):
        elu_feature_map(torch.ones(3, dtype=torch.long))


@HYPOTHESIS
@given(
    seed=st.integers(0, 2**16),
    n=st.integers(1, 30),
    d=st.integers(1, 6),
    n_q=st.integers(1, 12),
    chunk=st.integers(1, 9),
    block=st.sampled_from([1, 4, 1024]),
    causal=st.booleans(),
    padded=st.booleans(),
)
def test_property_linear_attention_equals_quadratic_form(
    seed, n, d, n_q, chunk, block, causal, padded
):
    """Causal or not (then with n_q queries), one or several loop blocks, padded or not."""
    g = gen(seed)
    q, k, v = randn(g, 2, n if causal else n_q, d), randn(g, 2, n, d), randn(g, 2, n, 3)
    mask = (torch.rand(2, n, generator=g) < 0.7) if padded else None
    with mock.patch.object(kernel_module, "_BLOCK", block):
        out = linear_attention(q, k, v, causal=causal, key_padding_mask=mask, chunk_size=chunk)
    expected = quadratic_kernel_attention(elu_plus_one(q), elu_plus_one(k), v, causal, mask)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("causal", [False, True])
def test_linear_attention_gradcheck(causal):
    g = gen(11)
    q, k, v = (randn(g, 2, 6, 3).requires_grad_() for _ in range(3))

    def f(q, k, v):
        return linear_attention(q, k, v, causal=causal, chunk_size=4)

    assert torch.autograd.gradcheck(f, (q, k, v))


def test_linear_attention_bfloat16_matches_float32():
    g = gen(12)
    q, k, v = (randn(g, 2, 4, 33, 8, dtype=torch.float32) for _ in range(3))
    for causal in (False, True):
        expected = linear_attention(q, k, v, causal=causal)
        out = linear_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), causal=causal)
        assert out.dtype == torch.bfloat16
        torch.testing.assert_close(out.float(), expected, rtol=0.02, atol=0.02)


def test_linear_attention_checks_its_inputs():
    q = torch.ones(2, 5, 4)
    with pytest.raises(ValueError, match=r"q and k must have the same last dimension"):
        linear_attention(q, torch.ones(2, 5, 3), torch.ones(2, 5, 4))
    with pytest.raises(TypeError, match=r"share one dtype"):
        linear_attention(q, q.double(), q)
    with pytest.raises(ValueError, match=r"causal kernel attention needs as many"):
        linear_attention(q[:, :3], q, q, causal=True)


def _heads(x, H):
    B, n, D = x.shape
    return x.reshape(B, n, H, D // H).transpose(1, 2)  # (B, H, n, D / H)


def _module_reference(module, x, core):
    """out_proj(merge(core(q, k, v))) with the module's own weights, written out."""
    H = module.num_heads
    q, k, v = (_heads(p(x), H) for p in (module.q_proj, module.k_proj, module.v_proj))
    out = core(q, k, v)  # (B, H, n, D / H)
    return module.out_proj(out.transpose(1, 2).reshape(x.shape))


@pytest.mark.parametrize("causal", [False, True])
def test_linear_self_attention_matches_its_definition(causal):
    torch.manual_seed(0)
    module = LinearSelfAttention(12, 3, causal=causal).double()
    x = randn(gen(13), 2, 9, 12)
    mask = torch.tensor([[True] * 9, [True] * 6 + [False] * 3])

    def core(q, k, v):
        return quadratic_kernel_attention(
            elu_plus_one(q), elu_plus_one(k), v, causal, mask[:, None]
        )

    out = module(x, key_padding_mask=mask)
    torch.testing.assert_close(out, _module_reference(module, x, core), rtol=1e-10, atol=1e-12)
    assert module.supports_causal and module.causal is causal


def test_linear_self_attention_causal_ignores_future_tokens():
    torch.manual_seed(1)
    module = LinearSelfAttention(8, 2, causal=True)
    x = torch.randn(1, 12, 8)
    y = x.clone()
    y[:, 7:] = torch.randn(1, 5, 8)
    torch.testing.assert_close(module(x)[:, :7], module(y)[:, :7], rtol=0, atol=1e-6)


def test_linear_self_attention_rejects_bad_arguments():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        LinearSelfAttention(10, 3)
    with pytest.raises(TypeError, match="causal must be True or False"):
        LinearSelfAttention(8, 2, causal=1)
    with pytest.raises(ValueError, match=r"key_padding_mask must be a bool tensor of shape"):
        LinearSelfAttention(8, 2)(torch.randn(2, 5, 8), key_padding_mask=torch.ones(2, 5))


# --------------------------------------------------- Performer: random features


def test_orthogonal_gaussian_features_rows_are_orthogonal_within_blocks():
    d, m = 8, 29  # three full blocks and a partial one
    W = orthogonal_gaussian_features(m, d, generator=gen(14), dtype=torch.float64)
    assert W.shape == (m, d) and W.dtype == torch.float64
    for start in range(0, m, d):
        block = W[start : start + d]
        gram = block @ block.T
        off_diagonal = gram - torch.diag(torch.diagonal(gram))
        assert off_diagonal.abs().max() < 1e-10
        assert torch.diagonal(gram).min() > 0
    # Different blocks are independent draws, not orthogonal to each other.
    assert (W[:d] @ W[d : 2 * d].T).abs().max() > 0.1
    # Rows are rescaled by chi-distributed norms, not left at unit length.
    assert W.norm(dim=-1).std() > 0.1


def test_orthogonal_gaussian_features_rows_are_standard_gaussian():
    """Each row is marginally N(0, I_d): coordinate means 0 and second moments 1."""
    d, m = 6, 12000
    W = orthogonal_gaussian_features(m, d, generator=gen(15), dtype=torch.float64)
    se = 1 / math.sqrt(m)  # standard error of a coordinate mean
    assert W.mean(0).abs().max() < 5 * se
    torch.testing.assert_close(
        W.pow(2).mean(0), torch.ones(d, dtype=torch.float64), atol=5 * math.sqrt(2) * se, rtol=0
    )
    # |w|^2 ~ chi-square(d): mean d, variance 2d.
    assert abs(W.pow(2).sum(-1).mean().item() - d) < 5 * math.sqrt(2 * d / m)


def test_orthogonal_gaussian_features_generator_is_reproducible():
    a = orthogonal_gaussian_features(10, 4, generator=gen(1))
    b = orthogonal_gaussian_features(10, 4, generator=gen(1))
    c = orthogonal_gaussian_features(10, 4, generator=gen(2))
    assert a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_positive_random_features_formula_and_stabilisation():
    g = gen(16)
    W = orthogonal_gaussian_features(10, 4, generator=g, dtype=torch.float64)
    x = randn(g, 2, 7, 4)
    plain = positive_random_features(x, W, is_query=True, stabilize=False)
    expected = torch.exp(x @ W.T - (x * x).sum(-1, keepdim=True) / 2) / math.sqrt(10)
    torch.testing.assert_close(plain, expected, rtol=1e-13, atol=0)
    # Queries: each row divided by its own constant; keys: all rows by one constant.
    as_query = positive_random_features(x, W, is_query=True)
    ratio = plain / as_query  # (2, 7, 10)
    torch.testing.assert_close(ratio, ratio[..., :1].expand_as(ratio), rtol=1e-12, atol=0)
    assert as_query.amax(-1).sub(1 / math.sqrt(10)).abs().max() < 1e-12
    as_key = positive_random_features(x, W, is_query=False)
    ratio = plain / as_key
    torch.testing.assert_close(ratio, ratio[:, :1, :1].expand_as(ratio), rtol=1e-12, atol=0)
    assert not torch.allclose(ratio[0, 0, 0], ratio[1, 0, 0])  # one constant per batch item


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_positive_random_features_stabilisation_prevents_overflow_and_underflow(dtype):
    """float32: exp(w^T x - |x|^2 / 2) overflows for x near a long w (exponent |w|^2 / 2 ~
    128); float64: it underflows to 0 everywhere for large x (exponents below -400000)."""
    W = orthogonal_gaussian_features(300, 256, generator=gen(17), dtype=dtype)
    if dtype == torch.float32:
        x = W[:3].unsqueeze(0)  # (1, 3, 256)
    else:
        x = 60 * torch.randn(1, 3, 256, generator=gen(18), dtype=dtype)
    plain = positive_random_features(x, W, is_query=True, stabilize=False)
    assert torch.isinf(plain).any() or torch.equal(plain, torch.zeros_like(plain))
    # The offset |x|^2 / 2 is rounded to the dtype: relative error ~ eps * |x|^2 / 2.
    rtol = 1e-4 if dtype == torch.float32 else 1e-9
    top = 300**-0.5  # the largest stabilised feature, exp(0) / sqrt(m)
    as_query = positive_random_features(x, W, is_query=True)
    assert torch.isfinite(as_query).all()
    expected = torch.full((1, 3), top, dtype=dtype)
    torch.testing.assert_close(as_query.amax(-1), expected, rtol=rtol, atol=0)
    as_key = positive_random_features(x, W, is_query=False)
    assert torch.isfinite(as_key).all()
    expected = torch.full((1,), top, dtype=dtype)
    torch.testing.assert_close(as_key.amax((-2, -1)), expected, rtol=rtol, atol=0)


def test_positive_random_features_estimate_the_softmax_kernel_without_bias():
    """Mean over many independent draws of phi(q)^T phi(k) is exp(q.k) within 4 std errors."""
    d, draws = 4, 20000
    g = gen(19)
    W = orthogonal_gaussian_features(d * draws, d, generator=g, dtype=torch.float64)
    W = W.reshape(draws, d, d)  # each block is one independent draw of m = d features
    for q, k in [
        (torch.tensor([0.3, -0.2, 0.5, 0.1]), torch.tensor([0.4, 0.1, 0.2, -0.3])),
        (torch.tensor([0.6, 0.6, 0.0, -0.4]), torch.tensor([0.5, 0.7, -0.2, -0.1])),
    ]:
        q, k = q.double(), k.double()
        phi_q = positive_random_features(q.expand(draws, 1, d), W, is_query=True, stabilize=False)
        phi_k = positive_random_features(k.expand(draws, 1, d), W, is_query=False, stabilize=False)
        estimates = (phi_q * phi_k).sum(-1).flatten()  # (draws,)
        se = estimates.std() / math.sqrt(draws)
        assert abs(estimates.mean() - math.exp(q @ k)) < 4 * se
        # Power: a bias of 10% (far less than e.g. a missing |x|^2 / 2 gives) would be seen.
        assert 4 * se < 0.1 * math.exp(q @ k)


def test_positive_random_features_padded_keys():
    g = gen(20)
    W = orthogonal_gaussian_features(6, 3, generator=g, dtype=torch.float64)
    x = 0.3 * randn(g, 2, 5, 3)
    mask = torch.tensor([[True, True, False, True, False], [True] * 5])
    # A padded key equal to the longest direction w has the largest possible exponent,
    # |w|^2 / 2: it must not set the maximum that the real keys are shifted by.
    longest = W[W.norm(dim=-1).argmax()]
    x_pad = torch.where(mask[..., None], x, longest)
    phi = positive_random_features(x_pad, W, is_query=False, key_padding_mask=mask)
    assert torch.equal(phi[0, 2], torch.zeros(6, dtype=torch.float64))
    reference = positive_random_features(x[:1, mask[0]], W, is_query=False)
    torch.testing.assert_close(phi[0, mask[0]], reference[0], rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="key_padding_mask is for keys only"):
        positive_random_features(x, W, is_query=True, key_padding_mask=mask)


# --------------------------------------------------------- Performer: favor_attention


def favor_reference(q, k, v, W, causal=False, key_mask=None, scale=None):
    """FAVOR+ composed from the public parts: features of q and k, then kernel attention."""
    root = (q.shape[-1] ** -0.5 if scale is None else scale) ** 0.5
    phi_q = positive_random_features(q * root, W, is_query=True)
    phi_k = positive_random_features(k * root, W, is_query=False, key_padding_mask=key_mask)
    return kernel_attention(phi_q, phi_k, v, causal=causal, key_padding_mask=key_mask)


@HYPOTHESIS
@given(
    seed=st.integers(0, 2**16),
    n=st.integers(1, 40),
    block=st.sampled_from([1, 3, 8, 1024]),
    chunk=st.integers(1, 9),
    causal=st.booleans(),
    padded=st.booleans(),
    spread=st.sampled_from([0.2, 3.0]),
)
def test_property_blocked_favor_equals_features_then_kernel_attention(
    seed, n, block, chunk, causal, padded, spread
):
    """favor_attention's block loops with a running key maximum (several blocks or one) equal
    the unblocked composition with one maximum over all keys. Keys with a large spread of
    norms make that maximum grow and shrink from block to block."""
    g = gen(seed)
    q, k, v = randn(g, 2, n, 4), randn(g, 2, n, 4), randn(g, 2, n, 3)
    k = k * torch.rand(2, n, 1, generator=g, dtype=torch.float64) * spread
    W = orthogonal_gaussian_features(6, 4, generator=g, dtype=torch.float64)
    mask = (torch.rand(2, n, generator=g) < 0.7) if padded else None
    with mock.patch.object(kernel_module, "_BLOCK", block):
        out = favor_attention(q, k, v, W, causal=causal, key_padding_mask=mask, chunk_size=chunk)
    expected = favor_reference(q, k, v, W, causal, mask)
    torch.testing.assert_close(out, expected, rtol=1e-9, atol=1e-12)


def test_blocked_favor_rescales_earlier_blocks_when_the_maximum_grows():
    """Keys k_j = t_j w_0 with t_j growing to 1: the exponent |w_0|^2 (t - t^2 / 2) grows
    along the sequence, so every block raises the running maximum."""
    g = gen(30)
    n = 64
    q, v = randn(g, n, 4), randn(g, n, 3)
    W = 2.0 * orthogonal_gaussian_features(8, 4, generator=g, dtype=torch.float64)
    t = torch.linspace(0.05, 1.0, n, dtype=torch.float64)[:, None]
    k = t * W[0] * 4**0.25 + 0.01 * randn(g, n, 4)  # 4 ** 0.25 undoes the scale 1 / sqrt(d)
    for causal in (False, True):
        with mock.patch.object(kernel_module, "_BLOCK", 8):
            out = favor_attention(q, k, v, W, causal=causal, chunk_size=4)
        torch.testing.assert_close(out, favor_reference(q, k, v, W, causal), rtol=1e-9, atol=1e-12)


def test_favor_stabilisation_with_extreme_norms():
    """float64, |k sqrt(scale)| ~ 45: exponents near -800, below exp's range (-745).

    Only the right constants keep the features finite and nonzero: a per-row maximum for
    the queries (one long query must not wipe out the others), and a maximum over the
    *real* keys (a padded key with exponent |w|^2 / 2 > 0 must not set it)."""
    g = gen(32)
    n, d = 8, 4
    W = orthogonal_gaussian_features(16, d, generator=g, dtype=torch.float64)
    root = d**-0.25
    q = 0.3 * randn(g, n, d)
    q[0] = 45 / root * q[0] / q[0].norm()  # one very long query
    k = randn(g, n, d)
    k = 45 / root * k / k.norm(dim=-1, keepdim=True)  # long keys, exponents below -800
    v = randn(g, n, 3)
    mask = torch.tensor([True] * 5 + [False] * 3)
    k_pad = torch.where(mask[:, None], k, W[0] / root)  # padded: the largest exponent
    out = favor_attention(q, k_pad, v, W, key_padding_mask=mask)
    assert torch.isfinite(out).all() and (out[0].abs() > 0).all()
    torch.testing.assert_close(out, favor_reference(q, k[:5], v[:5], W), rtol=1e-9, atol=1e-12)
    plain = positive_random_features(k[:5] * root, W, is_query=False, stabilize=False)
    assert (plain < 1e-300).all()  # 0 or denormal: why the stabilisation is needed


def _well_conditioned(seed, n=24, d=16, dtype=torch.float64):
    g = gen(seed)
    q, k = 0.5 * randn(g, 2, n, d, dtype=dtype), 0.5 * randn(g, 2, n, d, dtype=dtype)
    return q, k, randn(g, 2, n, 8, dtype=dtype)


@pytest.mark.parametrize("causal", [False, True])
def test_favor_error_shrinks_as_the_number_of_features_grows(causal):
    """Mean absolute error vs exact softmax attention (averaged over 6 draws) at m = 16..1024."""
    q, k, v = _well_conditioned(21)
    exact = softmax_reference(q, k, v, causal=causal)
    errors = []
    for m in (16, 64, 256, 1024):
        per_draw = []
        for seed in range(6):
            W = orthogonal_gaussian_features(m, 16, generator=gen(seed), dtype=torch.float64)
            out = favor_attention(q, k, v, W, causal=causal)
            per_draw.append((out - exact).abs().mean().item())
        errors.append(sum(per_draw) / len(per_draw))
    assert errors == sorted(errors, reverse=True), errors
    # Measured: 0.061, 0.035, 0.021, 0.011 (non-causal); 0.081, 0.049, 0.030, 0.015 (causal),
    # roughly the 1 / sqrt(m) of a Monte Carlo estimate.
    assert errors[-1] < 0.025, errors
    assert errors[0] > 4 * errors[-1], errors


def test_favor_default_scale_and_custom_scale():
    q, k, v = _well_conditioned(22, n=10, d=8)
    W = orthogonal_gaussian_features(64, 8, generator=gen(0), dtype=torch.float64)
    default = favor_attention(q, k, v, W)
    torch.testing.assert_close(
        default, favor_attention(q, k, v, W, scale=8**-0.5), rtol=1e-13, atol=0
    )
    # scale s is the same as scaling q and k by sqrt(s) and using scale 1.
    custom = favor_attention(q, k, v, W, scale=0.3)
    moved = favor_attention(q * 0.3**0.5, k * 0.3**0.5, v, W, scale=1.0)
    torch.testing.assert_close(custom, moved, rtol=1e-12, atol=1e-13)
    assert not torch.allclose(custom, default)


@mock.patch.object(kernel_module, "_BLOCK", 8)  # chunks of 4: blocks of 8 positions
def test_favor_causal_output_ignores_the_future():
    q, k, v = _well_conditioned(23, n=13, d=8)
    W = orthogonal_gaussian_features(32, 8, generator=gen(1), dtype=torch.float64)
    out = favor_attention(q, k, v, W, causal=True, chunk_size=4)
    for i in (0, 4, 7, 11):
        later = (torch.arange(13) > i)[:, None]
        bumped = [torch.where(later, 2.0 * t - 0.5, t) for t in (q, k, v)]
        changed = favor_attention(*bumped, W, causal=True, chunk_size=4)
        # Only rounding differs: the keys' stabilising maximum includes later keys of the
        # same block. Earlier blocks do not see later ones at all.
        torch.testing.assert_close(changed[:, : i + 1], out[:, : i + 1], rtol=1e-12, atol=1e-13)
        if i == 7:  # the end of the first block
            assert torch.equal(changed[:, :8], out[:, :8])
        assert not torch.allclose(changed[:, i + 1 :], out[:, i + 1 :])


@pytest.mark.parametrize("causal", [False, True])
def test_favor_ignores_padded_keys(causal):
    q, k, v = _well_conditioned(24, n=12, d=8)
    W = orthogonal_gaussian_features(256, 8, generator=gen(2), dtype=torch.float64)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[0, [2, 5, 9]] = False
    mask[1, 6:] = False
    out = favor_attention(q, k, v, W, causal=causal, key_padding_mask=mask, chunk_size=5)
    pad = ~mask[..., None]
    k_junk, v_junk = torch.where(pad, 30.0, k), torch.where(pad, -9.0, v)
    other = favor_attention(
        q, k_junk, v_junk, W, causal=causal, key_padding_mask=mask, chunk_size=5
    )
    torch.testing.assert_close(other, out, rtol=1e-12, atol=1e-13)
    # Batch 1 has its padding at the end: non-causally that is attention over 6 keys only.
    if not causal:
        short = favor_attention(q[1:], k[1:, :6], v[1:, :6], W)
        torch.testing.assert_close(out[1:], short, rtol=1e-12, atol=1e-13)
    # And it approximates softmax attention that excludes the padded keys.
    exact = softmax_reference(q, k, v, causal=causal, key_mask=mask)
    assert (out - exact).abs().mean() < 0.05  # measured 0.02 (m = 256)
    unmasked = softmax_reference(q, k, v, causal=causal)
    assert (out - unmasked).abs().mean() > 0.1


@pytest.mark.parametrize("causal", [False, True])
@mock.patch.object(kernel_module, "_BLOCK", 4)
def test_favor_queries_without_real_keys_give_zeros_and_finite_gradients(causal):
    """Batch 0: every key padded; batch 1: the first block (4 keys) padded."""
    q, k, v = (t.requires_grad_() for t in _well_conditioned(31, n=10, d=4))
    W = orthogonal_gaussian_features(8, 4, generator=gen(5), dtype=torch.float64)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[0] = False
    mask[1, :4] = False
    out = favor_attention(q, k, v, W, causal=causal, key_padding_mask=mask, chunk_size=2)
    assert torch.equal(out[0], torch.zeros(10, 8, dtype=torch.float64))
    if causal:
        assert torch.equal(out[1, :4], torch.zeros(4, 8, dtype=torch.float64))
    torch.testing.assert_close(
        out, favor_reference(q, k, v, W, causal, mask), rtol=1e-9, atol=1e-12
    )
    out.backward(torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape))
    for t in (q, k, v):
        assert torch.isfinite(t.grad).all()
    assert torch.equal(k.grad[0], torch.zeros(10, 4, dtype=torch.float64))
    assert torch.equal(v.grad[1, :4], torch.zeros(4, 8, dtype=torch.float64))


@pytest.mark.parametrize("causal", [False, True])
def test_favor_gradcheck(causal):
    q, k, v = (t.requires_grad_() for t in _well_conditioned(25, n=6, d=3))
    W = orthogonal_gaussian_features(5, 3, generator=gen(3), dtype=torch.float64)

    def f(q, k, v):
        return favor_attention(q, k, v, W, causal=causal, chunk_size=2)

    with mock.patch.object(kernel_module, "_BLOCK", 4):  # two blocks of 4 positions
        assert torch.autograd.gradcheck(f, (q, k, v))


def test_favor_half_precision_and_float32_projection():
    q, k, v = _well_conditioned(26, n=20, d=8, dtype=torch.float32)
    W = orthogonal_gaussian_features(64, 8, generator=gen(4))
    expected = favor_attention(q, k, v, W)
    out = favor_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), W)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), expected, rtol=0.03, atol=0.03)
    # A float32 projection is cast for float64 inputs.
    out64 = favor_attention(q.double(), k.double(), v.double(), W)
    torch.testing.assert_close(out64.float(), expected, rtol=1e-4, atol=1e-5)


FAVOR_BAD_CALLS = {
    "projection_width": (
        dict(projection=torch.ones(10, 5)),
        ValueError,
        r"projection must have shape \(m, d\) with d = 4",
    ),
    "projection_1d": (
        dict(projection=torch.ones(4)),
        ValueError,
        r"projection must have at least 2",
    ),
    "projection_int": (
        dict(projection=torch.ones(3, 4, dtype=torch.long)),
        TypeError,
        r"projection must be a floating",
    ),
    "q_k_width": (
        dict(k=torch.ones(2, 6, 3)),
        ValueError,
        r"q and k must have the same last dimension",
    ),
    "scale": (dict(scale=-1.0), ValueError, r"scale must be a positive"),
    "mask_shape": (
        dict(key_padding_mask=torch.ones(2, 5, dtype=torch.bool)),
        ValueError,
        r"key_padding_mask must be a bool tensor",
    ),
    "causal_lengths": (
        dict(q=torch.ones(2, 3, 4), causal=True),
        ValueError,
        r"as many queries as keys",
    ),
}


@pytest.mark.parametrize("case", list(FAVOR_BAD_CALLS))
def test_favor_bad_input_raises(case):
    change, error, message = FAVOR_BAD_CALLS[case]
    args = dict(
        q=torch.ones(2, 6, 4),
        k=torch.ones(2, 6, 4),
        v=torch.ones(2, 6, 2),
        projection=torch.ones(10, 4),
    )
    args.update(change)
    with pytest.raises(error, match=message):
        favor_attention(args.pop("q"), args.pop("k"), args.pop("v"), args.pop("projection"), **args)


def test_random_feature_helpers_bad_input():
    with pytest.raises(ValueError, match="num_features must be a positive integer"):
        orthogonal_gaussian_features(0, 4)
    with pytest.raises(ValueError, match="dim must be a positive integer"):
        orthogonal_gaussian_features(4, -1)
    with pytest.raises(TypeError, match="dtype must be a floating-point dtype"):
        orthogonal_gaussian_features(4, 4, dtype=torch.int64)
    with pytest.raises(TypeError, match="is_query must be True or False"):
        positive_random_features(torch.ones(3, 4), torch.ones(5, 4), is_query=None)
    with pytest.raises(ValueError, match=r"projection must have shape \(m, d\) with d = 4"):
        positive_random_features(torch.ones(3, 4), torch.ones(5, 3), is_query=True)


# ------------------------------------------------------ Performer: the nn.Module


def test_default_num_features_is_d_log_d():
    assert default_num_features(64) == math.ceil(64 * math.log(64)) == 267
    assert default_num_features(1) == 1
    assert default_num_features(8) == 17


@pytest.mark.parametrize("causal", [False, True])
def test_performer_self_attention_matches_its_definition(causal):
    torch.manual_seed(2)
    module = PerformerSelfAttention(16, 2, num_features=40, causal=causal, seed=3).double()
    assert module.projection.shape == (40, 8) and module.projection.dtype == torch.float64
    x = randn(gen(27), 2, 10, 16)
    mask = torch.tensor([[True] * 10, [True] * 7 + [False] * 3])

    def core(q, k, v):
        W = module.projection
        return favor_attention(q, k, v, W, causal=causal, key_padding_mask=mask[:, None])

    out = module(x, key_padding_mask=mask)
    torch.testing.assert_close(out, _module_reference(module, x, core), rtol=1e-10, atol=1e-12)


def test_performer_projection_is_a_seeded_buffer_and_can_be_redrawn():
    a = PerformerSelfAttention(32, 4, seed=5)
    b = PerformerSelfAttention(32, 4, seed=5)
    c = PerformerSelfAttention(32, 4, seed=6)
    assert a.num_features == default_num_features(8) == 17
    assert "projection" in dict(a.named_buffers()) and "projection" in a.state_dict()
    assert all(p is not a.projection for p in a.parameters())
    assert torch.equal(a.projection, b.projection) and not torch.equal(a.projection, c.projection)
    before = a.projection.clone()
    a.redraw_features(generator=gen(7))
    b.redraw_features(generator=gen(7))
    assert not torch.equal(a.projection, before) and torch.equal(a.projection, b.projection)
    a.redraw_features()  # global generator
    assert a.projection.shape == (17, 8)
    assert "num_features=17" in repr(a)


def test_performer_self_attention_causal_ignores_future_tokens():
    torch.manual_seed(3)
    module = PerformerSelfAttention(8, 2, causal=True).double()
    x = torch.randn(1, 12, 8, dtype=torch.float64)
    y = x.clone()
    y[:, 5:] = torch.randn(1, 7, 8, dtype=torch.float64)
    torch.testing.assert_close(module(x)[:, :5], module(y)[:, :5], rtol=1e-10, atol=1e-12)


def test_performer_approximates_full_attention_with_many_features():
    """With small weights the layer is close to ordinary softmax multi-head attention."""
    torch.manual_seed(4)
    module = PerformerSelfAttention(16, 2, num_features=2048, seed=1).double()
    x = 0.5 * randn(gen(28), 2, 9, 16)

    def exact(q, k, v):
        return softmax_reference(q, k, v)

    out = module(x)
    torch.testing.assert_close(out, _module_reference(module, x, exact), rtol=0, atol=0.02)


def test_performer_self_attention_rejects_bad_arguments():
    with pytest.raises(ValueError, match="num_features must be a positive integer"):
        PerformerSelfAttention(8, 2, num_features=0)
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        PerformerSelfAttention(8, 2, seed=-1)
    with pytest.raises(ValueError, match=r"x must have shape \(B, T, d_model\)"):
        PerformerSelfAttention(8, 2)(torch.randn(5, 8))


# ------------------------------------------------------------ no n x n intermediates


class _ShapeRecorder(TorchDispatchMode):
    """Records the shape of every tensor an aten operation returns."""

    def __init__(self):
        super().__init__()
        self.shapes = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.shapes.append(tuple(t.shape))
        return out


@pytest.mark.parametrize(
    "call",
    [
        lambda q, k, v, W: kernel_attention(q.exp(), k.exp(), v, chunk_size=32),
        lambda q, k, v, W: kernel_attention(q.exp(), k.exp(), v, causal=True, chunk_size=32),
        lambda q, k, v, W: linear_attention(q, k, v, causal=True, chunk_size=32),
        lambda q, k, v, W: favor_attention(q, k, v, W, causal=True, chunk_size=32),
        lambda q, k, v, W: favor_attention(
            q, k, v, W, key_padding_mask=torch.rand(2, 1, 300) < 0.9
        ),
    ],
    ids=["kernel", "kernel_causal", "linear_causal", "favor_causal", "favor_padded"],
)
def test_no_intermediate_is_n_by_n(call):
    """Forward and backward at n = 300: no tensor has two dimensions as large as n / 2."""
    n = 300
    q, k, v = (torch.randn(2, 3, n, 8, requires_grad=True) for _ in range(3))
    W = orthogonal_gaussian_features(16, 8, generator=gen(0))
    recorder = _ShapeRecorder()
    with recorder:
        call(q, k, v, W).sum().backward()
    assert recorder.shapes
    big = [s for s in recorder.shapes if sum(size >= n // 2 for size in s) >= 2]
    assert not big, big[:5]

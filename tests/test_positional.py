"""Tests of attnkit.positional: sinusoidal, learned, rotary (RoPE) and ALiBi.

Each numerical check compares against an independent reference written out below
(explicit loops with ``math``, complex numbers, hand-computed constants, PyTorch's own
attention), or checks a property the papers state, never attnkit against itself.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from attnkit import (
    LearnedPositionalEmbedding,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
    alibi_bias,
    alibi_slopes,
    apply_rotary,
    causal_mask,
    combine_masks,
    rotary_cos_sin,
    scaled_dot_product_attention,
    sinusoidal_encoding,
)


def randn(seed, *shape, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen, dtype=torch.float64).to(dtype)


# ------------------------------------------------------------------------- sinusoidal


def loop_sinusoidal(n, d, base=10000.0):
    """The table of Vaswani et al. (2017), section 3.5, one entry at a time."""
    pe = [[0.0] * d for _ in range(n)]
    for pos in range(n):
        for col in range(d):
            i = col // 2
            angle = pos / base ** (2 * i / d)
            pe[pos][col] = math.sin(angle) if col % 2 == 0 else math.cos(angle)
    return torch.tensor(pe, dtype=torch.float64)


@pytest.mark.parametrize("n, d", [(1, 1), (7, 2), (50, 16), (33, 9), (10, 3)])
def test_sinusoidal_equals_double_loop(n, d):
    pe = sinusoidal_encoding(n, d, dtype=torch.float64)
    assert pe.shape == (n, d) and pe.dtype == torch.float64
    torch.testing.assert_close(pe, loop_sinusoidal(n, d), rtol=0, atol=1e-12)


def test_sinusoidal_base_and_dtype():
    pe = sinusoidal_encoding(20, 6, base=100.0, dtype=torch.float64)
    torch.testing.assert_close(pe, loop_sinusoidal(20, 6, base=100.0), rtol=0, atol=1e-12)
    assert sinusoidal_encoding(4, 6).dtype == torch.float32
    assert sinusoidal_encoding(4, 6, dtype=torch.bfloat16).dtype == torch.bfloat16


def test_sinusoidal_hand_picked_entries():
    pe = sinusoidal_encoding(100, 8, dtype=torch.float64)
    assert pe[0].tolist() == [0.0, 1.0] * 4  # sin 0, cos 0 in every pair
    assert pe[1, 0].item() == pytest.approx(math.sin(1.0), abs=1e-15)
    assert pe[1, 1].item() == pytest.approx(math.cos(1.0), abs=1e-15)
    # column 2 = 2i with i = 1: frequency 10000^(-2/8) = 0.1
    assert pe[5, 2].item() == pytest.approx(math.sin(0.5), abs=1e-14)
    assert pe[5, 3].item() == pytest.approx(math.cos(0.5), abs=1e-14)
    # column 6 = 2i with i = 3: frequency 10000^(-6/8) = 0.001
    assert pe[99, 6].item() == pytest.approx(math.sin(0.099), abs=1e-14)
    assert pe[99, 7].item() == pytest.approx(math.cos(0.099), abs=1e-14)


@pytest.mark.parametrize("k", [1, 3, 17])
def test_sinusoidal_shift_is_a_fixed_rotation(k):
    """PE[p + k] = M_k PE[p] for every p, with M_k block-diagonal (2x2 rotations)."""
    n, d = 64, 10
    pe = sinusoidal_encoding(n + k, d, dtype=torch.float64)
    m = torch.zeros(d, d, dtype=torch.float64)
    for i in range(d // 2):
        w = 1.0 / 10000.0 ** (2 * i / d)
        c, s = math.cos(k * w), math.sin(k * w)
        # sin(a + b) = sin a cos b + cos a sin b;  cos(a + b) = cos a cos b - sin a sin b
        block = torch.tensor([[c, s], [-s, c]], dtype=torch.float64)
        m[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = block
    torch.testing.assert_close(pe[k:], pe[:n] @ m.T, rtol=0, atol=1e-12)
    # The linear map fitted from the data alone, with no knowledge of the frequencies,
    # reproduces every shift exactly and is the same block-diagonal rotation.
    fitted = torch.linalg.lstsq(pe[:n], pe[k:]).solution.T  # (d, d)
    torch.testing.assert_close(pe[:n] @ fitted.T, pe[k:], rtol=0, atol=1e-10)
    torch.testing.assert_close(fitted, m, rtol=0, atol=1e-6)


def test_sinusoidal_module_adds_table_with_offset():
    d, max_len = 12, 40
    module = SinusoidalPositionalEncoding(d, max_len=max_len)
    table = loop_sinusoidal(max_len, d).float()
    x = randn(0, 2, 7, d, dtype=torch.float32)
    torch.testing.assert_close(module(x), x + table[:7])
    torch.testing.assert_close(module(x, offset=5), x + table[5:12])
    torch.testing.assert_close(module(x, offset=max_len - 7), x + table[-7:])
    assert "pe" not in module.state_dict()  # non-persistent buffer
    assert module(x.double()).dtype == torch.float64


def test_sinusoidal_module_dropout_only_in_training():
    module = SinusoidalPositionalEncoding(8, max_len=16, dropout=0.5)
    x = randn(1, 3, 16, 8, dtype=torch.float32)
    expected = x + sinusoidal_encoding(16, 8)
    module.eval()
    torch.testing.assert_close(module(x), expected)
    module.train()
    torch.manual_seed(0)
    out = module(x)
    kept = out != 0
    assert 0.3 < kept.float().mean().item() < 0.7
    torch.testing.assert_close(out[kept], 2 * expected[kept])


# ---------------------------------------------------------------------------- learned


def test_learned_adds_rows_of_the_table():
    torch.manual_seed(0)
    module = LearnedPositionalEmbedding(max_len=10, d_model=4)
    assert module.emb.weight.shape == (10, 4)
    assert 0.005 < module.emb.weight.std().item() < 0.05  # GPT-2 style N(0, 0.02^2)
    x = randn(2, 3, 6, 4, dtype=torch.float32)
    out = module(x)
    assert out.shape == (3, 6, 4)
    torch.testing.assert_close(out, x + module.emb.weight[:6])
    torch.testing.assert_close(module(x, offset=4), x + module.emb.weight[4:10])


def test_learned_is_trained():
    module = LearnedPositionalEmbedding(8, 3)
    module(torch.zeros(2, 5, 3), offset=2).sum().backward()
    grad = module.emb.weight.grad
    assert torch.equal(grad[2:7], torch.full((5, 3), 2.0))
    assert torch.equal(grad[:2], torch.zeros(2, 3)) and torch.equal(grad[7:], torch.zeros(1, 3))


@pytest.mark.parametrize(
    "module",
    [LearnedPositionalEmbedding(8, 4), SinusoidalPositionalEncoding(4, max_len=8)],
    ids=["learned", "sinusoidal"],
)
def test_too_long_input_raises(module):
    module(torch.zeros(1, 8, 4))  # exactly max_len is fine
    module(torch.zeros(1, 3, 4), offset=5)
    with pytest.raises(ValueError, match=r"positions 0\.\.8 .*max_len = 8"):
        module(torch.zeros(1, 9, 4))
    with pytest.raises(ValueError, match=r"positions 6\.\.8 .*max_len >= 9"):
        module(torch.zeros(1, 3, 4), offset=6)
    with pytest.raises(ValueError, match="offset must be a non-negative integer"):
        module(torch.zeros(1, 3, 4), offset=-1)
    with pytest.raises(ValueError, match=r"d_model = 4, got \(1, 3, 5\)"):
        module(torch.zeros(1, 3, 5))
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        module(torch.zeros(1, 3, 4, dtype=torch.long))


def test_learned_dtype_mismatch_raises():
    with pytest.raises(TypeError, match=r"x has dtype torch\.float64"):
        LearnedPositionalEmbedding(8, 4)(torch.zeros(1, 3, 4, dtype=torch.float64))


# ----------------------------------------------------------------------------- rotary


def complex_rope(x, positions, base=10000.0):
    """RoPE as complex multiplication: z_j = x_j + i x_{j+d/2} times exp(i m theta_j)."""
    d = x.shape[-1]
    half = d // 2
    z = torch.complex(x[..., :half], x[..., half:])  # (..., T, d/2)
    theta = torch.tensor([base ** (-2 * j / d) for j in range(half)], dtype=torch.float64)
    angles = torch.tensor(positions, dtype=torch.float64)[:, None] * theta  # (T, d/2)
    rotated = z * torch.polar(torch.ones_like(angles), angles)
    return torch.cat((rotated.real, rotated.imag), dim=-1)


def rope_at(x, m, base=10000.0):
    """Rotate a single vector ``x`` (d,) as if it sat at position ``m``."""
    cos, sin = rotary_cos_sin(1, x.shape[-1], base=base, offset=m, dtype=torch.float64)
    return apply_rotary(x[None], cos, sin)[0]


@pytest.mark.parametrize("head_dim", [2, 8, 64])
def test_rope_equals_complex_implementation(head_dim):
    x = randn(3, 2, 3, 11, head_dim)
    cos, sin = rotary_cos_sin(11, head_dim, offset=4, dtype=torch.float64)
    expected = complex_rope(x, list(range(4, 15)))
    torch.testing.assert_close(apply_rotary(x, cos, sin), expected, rtol=0, atol=1e-12)
    cos, sin = rotary_cos_sin(11, head_dim, base=500.0, dtype=torch.float64)
    expected = complex_rope(x, list(range(11)), base=500.0)
    torch.testing.assert_close(apply_rotary(x, cos, sin), expected, rtol=0, atol=1e-12)


def test_rope_cos_sin_hand_picked():
    cos, sin = rotary_cos_sin(4, 4, dtype=torch.float64)
    assert cos.shape == sin.shape == (4, 4)
    # theta = (1, 10000^(-1/2) = 0.01), repeated for both halves
    assert sin[3].tolist() == pytest.approx([math.sin(3), math.sin(0.03)] * 2, abs=1e-15)
    assert cos[3].tolist() == pytest.approx([math.cos(3), math.cos(0.03)] * 2, abs=1e-15)


def test_rope_convention_is_rotate_half():
    """Feature j pairs with j + d/2: e_0 at position m goes to cos(m) e_0 + sin(m) e_2."""
    e0 = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    out = rope_at(e0, 2)
    expected = torch.tensor([math.cos(2), 0.0, math.sin(2), 0.0], dtype=torch.float64)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("diff", [0, 1, 5, -3])
def test_rope_dot_product_depends_only_on_relative_position(diff):
    q, k = randn(4, 16), randn(5, 16)
    dots = [torch.dot(rope_at(q, n + diff), rope_at(k, n)).item() for n in (0, 1, 7, 100, 2049)]
    unrotated = torch.dot(q, k).item()
    assert max(dots) - min(dots) < 1e-10
    if diff == 0:
        assert dots[0] == pytest.approx(unrotated, abs=1e-12)
    else:
        assert abs(dots[0] - unrotated) > 1e-3  # the relative position does matter


def test_rope_preserves_norms_and_position_zero_is_identity():
    x = randn(6, 2, 4, 9, 32)
    cos, sin = rotary_cos_sin(9, 32, offset=123, dtype=torch.float64)
    out = apply_rotary(x, cos, sin)
    torch.testing.assert_close(out.norm(dim=-1), x.norm(dim=-1), rtol=1e-12, atol=0)
    # norm of every rotated pair (x_j, x_{j+d/2}) is preserved too
    pairs = lambda t: t[..., :16] ** 2 + t[..., 16:] ** 2  # noqa: E731
    torch.testing.assert_close(pairs(out), pairs(x), rtol=1e-12, atol=1e-12)
    cos0, sin0 = rotary_cos_sin(1, 32, dtype=torch.float64)
    assert torch.equal(apply_rotary(x[..., :1, :], cos0, sin0), x[..., :1, :])


def test_rope_offset_equals_slice_of_full_rotation():
    x = randn(7, 2, 3, 20, 8)
    full = apply_rotary(x, *rotary_cos_sin(20, 8, dtype=torch.float64))
    part = apply_rotary(x[..., 12:17, :], *rotary_cos_sin(5, 8, offset=12, dtype=torch.float64))
    torch.testing.assert_close(part, full[..., 12:17, :], rtol=0, atol=1e-14)
    rope = RotaryEmbedding(8)
    q_full, k_full = rope(x, 2 * x)
    q_part, k_part = rope(x[..., 12:17, :], 2 * x[..., 12:17, :], offset=12)
    torch.testing.assert_close(q_part, q_full[..., 12:17, :], rtol=0, atol=1e-14)
    torch.testing.assert_close(k_part, k_full[..., 12:17, :], rtol=0, atol=1e-14)
    torch.testing.assert_close(rope.rotate(x[..., 12:17, :], 12), part, rtol=0, atol=0)


def test_rope_module_matches_complex_and_keeps_dtype():
    q, k = randn(8, 2, 4, 6, 16), randn(9, 2, 4, 6, 16)
    rope = RotaryEmbedding(16, base=1000.0)
    q_rot, k_rot = rope(q, k, offset=3)
    positions = list(range(3, 9))
    torch.testing.assert_close(q_rot, complex_rope(q, positions, 1000.0), rtol=0, atol=1e-12)
    torch.testing.assert_close(k_rot, complex_rope(k, positions, 1000.0), rtol=0, atol=1e-12)
    for dtype in (torch.float32, torch.bfloat16):
        q_rot, k_rot = rope(q.to(dtype), k.to(dtype))
        assert q_rot.dtype == k_rot.dtype == dtype
        expected = complex_rope(q, list(range(6)), 1000.0)
        tol = 1e-5 if dtype == torch.float32 else 2e-2
        torch.testing.assert_close(q_rot.double(), expected, rtol=tol, atol=tol)


def test_rope_scores_inside_attention_are_shift_invariant():
    """Shifting every position by the same amount leaves attention unchanged (RoPE only)."""
    q, k, v = randn(10, 1, 2, 5, 8), randn(11, 1, 2, 5, 8), randn(12, 1, 2, 5, 8)
    rope = RotaryEmbedding(8)
    out0 = scaled_dot_product_attention(*rope(q, k), v, causal_mask(5))
    out1 = scaled_dot_product_attention(*rope(q, k, offset=1000), v, causal_mask(5))
    torch.testing.assert_close(out0, out1, rtol=0, atol=1e-10)


# ------------------------------------------------------------------------------ ALiBi


def test_alibi_slopes_power_of_two():
    assert alibi_slopes(8, dtype=torch.float64).tolist() == [1 / 2**i for i in range(1, 9)]
    assert alibi_slopes(1, dtype=torch.float64).tolist() == [1 / 256]
    assert alibi_slopes(2, dtype=torch.float64).tolist() == [1 / 16, 1 / 256]
    expected16 = [2 ** (-0.5 * i) for i in range(1, 17)]
    assert alibi_slopes(16, dtype=torch.float64).tolist() == pytest.approx(expected16, rel=1e-15)
    assert alibi_slopes(4).dtype == torch.float32


def test_alibi_slopes_not_power_of_two():
    # 6 heads: the 4 slopes of 4 heads (2^-2, 2^-4, 2^-6, 2^-8), then every other slope
    # of 8 heads (2^-1, 2^-3, 2^-5, 2^-7) until there are 6: 2^-1, 2^-3.
    assert alibi_slopes(6, dtype=torch.float64).tolist() == [
        1 / 4, 1 / 16, 1 / 64, 1 / 256, 1 / 2, 1 / 8,
    ]  # fmt: skip
    # 3 heads: 2^-4, 2^-8 from 2 heads, then 2^-2 (the first of 4 heads).
    assert alibi_slopes(3, dtype=torch.float64).tolist() == [1 / 16, 1 / 256, 1 / 4]
    # 12 heads: 8 heads' slopes, then 16 heads' slopes 2^-0.5, 2^-1.5, 2^-2.5, 2^-3.5.
    expected = [2.0**-i for i in range(1, 9)] + [2 ** -(i + 0.5) for i in range(4)]
    assert alibi_slopes(12, dtype=torch.float64).tolist() == pytest.approx(expected, rel=1e-15)


def loop_alibi(slopes, n_q, n_k, offset, symmetric=False):
    bias = torch.zeros(len(slopes), n_q, n_k, dtype=torch.float64)
    for h, m in enumerate(slopes):
        for i in range(n_q):
            for j in range(n_k):
                dist = (i + offset) - j
                bias[h, i, j] = -m * (abs(dist) if symmetric else dist)
    return bias


@pytest.mark.parametrize(
    "n_q, n_k, offset", [(5, 5, None), (1, 7, None), (3, 8, None), (4, 6, 0), (2, 3, 10)]
)
@pytest.mark.parametrize("symmetric", [False, True])
def test_alibi_bias_equals_loop(n_q, n_k, offset, symmetric):
    slopes = [1 / 4, 1 / 16, 1 / 64, 1 / 256, 1 / 2, 1 / 8]  # 6 heads, by hand
    bias = alibi_bias(6, n_q, n_k, offset=offset, symmetric=symmetric, dtype=torch.float64)
    expected_offset = n_k - n_q if offset is None else offset
    expected = loop_alibi(slopes, n_q, n_k, expected_offset, symmetric)
    assert bias.shape == (6, n_q, n_k) and bias.dtype == torch.float64
    torch.testing.assert_close(bias, expected, rtol=0, atol=0)


def test_alibi_bias_hand_picked():
    bias = alibi_bias(2, 3)  # slopes 1/16, 1/256; default n_k = n_q, offset 0
    assert bias.dtype == torch.float32
    assert bias[0, 2].tolist() == [-2 / 16, -1 / 16, 0.0]  # the paper's figure 3, last row
    assert bias[1, 1].tolist() == [-1 / 256, 0.0, 1 / 256]


@pytest.mark.parametrize("n_q, n_k", [(6, 6), (2, 6)])
def test_alibi_as_float_mask_matches_torch_sdpa(n_q, n_k):
    B, H, d = 2, 4, 8
    q, k, v = randn(13, B, H, n_q, d), randn(14, B, H, n_k, d), randn(15, B, H, n_k, d)
    mask = combine_masks(causal_mask(n_q, n_k), alibi_bias(H, n_q, n_k, dtype=torch.float64))
    assert mask.shape == (H, n_q, n_k) and mask.dtype == torch.float64
    ours = scaled_dot_product_attention(q, k, v, mask)
    theirs = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    # and against the formula: softmax(q k^T / sqrt(d) - m_h (i - j)) over j <= i
    slopes = torch.tensor([1 / 4, 1 / 16, 1 / 64, 1 / 256], dtype=torch.float64)
    i = torch.arange(n_q)[:, None] + (n_k - n_q)
    j = torch.arange(n_k)[None, :]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d) - slopes[:, None, None] * (i - j)
    weights = scores.masked_fill(j > i, -math.inf).softmax(-1)
    torch.testing.assert_close(ours, weights @ v, rtol=1e-12, atol=1e-12)


def test_alibi_symmetric_as_float_mask_matches_torch_sdpa():
    q, k, v = randn(16, 1, 2, 5, 4), randn(17, 1, 2, 7, 4), randn(18, 1, 2, 7, 4)
    bias = alibi_bias(2, 5, 7, offset=0, symmetric=True)
    q, k, v = q.float(), k.float(), v.float()
    ours = scaled_dot_product_attention(q, k, v, bias)
    theirs = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    torch.testing.assert_close(ours, theirs)


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: RotaryEmbedding(7), ValueError, "head_dim must be even .* got 7"),
        (lambda: rotary_cos_sin(4, 5), ValueError, "head_dim must be even"),
        (lambda: rotary_cos_sin(0, 4), ValueError, "n_positions must be a positive integer"),
        (lambda: rotary_cos_sin(4, 4, base=-1.0), ValueError, "base must be a positive finite"),
        (lambda: rotary_cos_sin(4, 4, offset=1.5), TypeError, "offset must be an int"),
        (
            lambda: apply_rotary(torch.zeros(3, 5), torch.zeros(3, 5), torch.zeros(3, 5)),
            ValueError,
            r"last dimension of x \(head_dim\) must be even",
        ),
        (
            lambda: apply_rotary(torch.zeros(2, 3, 4), *rotary_cos_sin(5, 4)),
            ValueError,
            r"cannot broadcast to x of shape \(2, 3, 4\).*rotary_cos_sin\(3, 4\)",
        ),
        (
            lambda: apply_rotary(torch.zeros(3, 4), torch.zeros(3, 4), torch.zeros(1, 4)),
            ValueError,
            "cos and sin must have the same shape",
        ),
        (
            lambda: apply_rotary(torch.zeros(3, 4, dtype=torch.long), *rotary_cos_sin(3, 4)),
            TypeError,
            "x must be a floating-point tensor",
        ),
        (
            lambda: RotaryEmbedding(4)(torch.zeros(1, 1, 3, 4), torch.zeros(1, 1, 5, 4)),
            ValueError,
            "q and k must cover the same positions",
        ),
        (
            lambda: RotaryEmbedding(4)(torch.zeros(1, 1, 3, 8), torch.zeros(1, 1, 3, 8)),
            ValueError,
            r"q must have shape \(B, H, T, head_dim\) with head_dim = 4",
        ),
        (
            lambda: RotaryEmbedding(4)(torch.zeros(1, 3, 4), torch.zeros(1, 3, 4).double()),
            TypeError,
            "q, k must share one dtype",
        ),
        (lambda: alibi_slopes(0), ValueError, "num_heads must be a positive integer, got 0"),
        (lambda: alibi_slopes(-2), ValueError, "num_heads must be a positive integer"),
        (lambda: alibi_bias(0, 4), ValueError, "num_heads must be a positive integer"),
        (lambda: alibi_bias(2, 0), ValueError, "n_q must be a positive integer"),
        (lambda: alibi_bias(2, 3, offset=0.5), TypeError, "offset must be an int"),
        (lambda: alibi_bias(2, 3, dtype=torch.long), TypeError, "dtype must be a floating"),
        (lambda: sinusoidal_encoding(4, 0), ValueError, "d_model must be a positive integer"),
        (lambda: sinusoidal_encoding(4, 4, base="1e4"), TypeError, "base must be a positive"),
        (
            lambda: sinusoidal_encoding(4, 4, dtype=torch.int32),
            TypeError,
            "dtype must be a floating",
        ),
        (lambda: SinusoidalPositionalEncoding(8, dropout=1.0), ValueError, r"dropout must be"),
        (lambda: LearnedPositionalEmbedding(0, 8), ValueError, "max_len must be a positive"),
    ],
)
def test_bad_inputs_raise(call, error, message):
    with pytest.raises(error, match=message):
        call()

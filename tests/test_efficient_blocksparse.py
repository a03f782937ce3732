"""Tests of the block-sparse family: the engine, local (sliding-window) attention, the
Sparse Transformer patterns, BigBird and Longformer.

Every method is compared with dense ``attnkit.scaled_dot_product_attention`` given the
method's dense mask (built independently here or by the public mask builders, which are
themselves checked against hand-written cases): forward and gradients, in float64.
"""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attnkit import combine_masks, scaled_dot_product_attention
from attnkit.efficient._base import padding_to_mask
from attnkit.efficient.bigbird import (
    BigBirdSelfAttention,
    bigbird_attention,
    bigbird_layout,
    bigbird_mask,
)
from attnkit.efficient.blocksparse import (
    block_sparse_attention,
    key_blocks_per_row,
    layout_to_mask,
    safe_softmax,
)
from attnkit.efficient.full import FullSelfAttention
from attnkit.efficient.local import LocalSelfAttention, local_attention, sliding_window_mask
from attnkit.efficient.longformer import (
    LongformerSelfAttention,
    longformer_attention,
    longformer_mask,
)
from attnkit.efficient.sparse_transformer import (
    SparseTransformerSelfAttention,
    fixed_mask,
    sparse_transformer_attention,
    strided_mask,
)
from attnkit.heads import merge_heads, split_heads
from attnkit.softmax import masked_softmax

HYPOTHESIS = settings(max_examples=25, deadline=None, derandomize=True, database=None)
ATOL64 = 1e-12


# --------------------------------------------------------------------------- helpers


def randn(gen, *shape, dtype=torch.float64, grad=True):
    x = torch.randn(*shape, generator=gen, dtype=torch.float64).to(dtype)
    return x.requires_grad_(grad)


def qkv(gen, *batch, n, d=4, d_v=3, dtype=torch.float64):
    """Random q, k ``(*batch, n, d)`` and v ``(*batch, n, d_v)`` that require grad."""
    q = randn(gen, *batch, n, d, dtype=dtype)
    k = randn(gen, *batch, n, d, dtype=dtype)
    return q, k, randn(gen, *batch, n, d_v, dtype=dtype)


def key_padding(gen, batch, n, p_keep=0.7):
    """Bool (B, n), True = real token; row 0 keeps all its tokens."""
    keep = torch.rand(batch, n, generator=gen) < p_keep
    keep[0] = True
    return keep


def assert_matches(fn, ref_fn, inputs, gen, atol=ATOL64):
    """fn(*inputs) equals ref_fn(*inputs), and so do the gradients w.r.t. every input."""
    out, ref = fn(*inputs), ref_fn(*inputs)
    assert out.shape == ref.shape and out.dtype == ref.dtype
    torch.testing.assert_close(out, ref, rtol=0, atol=atol)
    grad_out = torch.randn(out.shape, generator=gen, dtype=out.dtype)
    grads = torch.autograd.grad(out, inputs, grad_out)
    ref_grads = torch.autograd.grad(ref, inputs, grad_out)
    for g, rg in zip(grads, ref_grads):
        assert torch.isfinite(g).all()
        torch.testing.assert_close(g, rg, rtol=0, atol=atol)


def assert_matches_dense(fn, dense_mask, q, k, v, gen, atol=ATOL64):
    """fn(q, k, v) equals dense attention with ``dense_mask`` (forward and gradients)."""

    def ref(q, k, v):
        return scaled_dot_product_attention(q, k, v, dense_mask)

    assert_matches(fn, ref, (q, k, v), gen, atol)


def key_sets_from_uniform_weights(fn, n):
    """Run ``fn`` with q = 0 (uniform weights over each key set) and v = I.

    Row i of the output is then ``1 / |A(i)|`` on the keys of A(i), each counted once.
    Returns the bool (n, n) set of keys that got weight, after checking the weights.
    """
    q = torch.zeros(n, 2, dtype=torch.float64)
    k = torch.randn(n, 2, dtype=torch.float64)
    v = torch.eye(n, dtype=torch.float64)
    out = fn(q, k, v)  # (n, n)
    attended = out > 0
    counts = attended.sum(-1, keepdim=True).clamp(min=1).double()
    torch.testing.assert_close(out, attended / counts, rtol=0, atol=1e-12)
    return attended


class MaskedFull(FullSelfAttention):
    """Dense multi-head reference: FullSelfAttention with an extra fixed (n, n) mask."""

    def __init__(self, d_model, num_heads, pattern):
        super().__init__(d_model, num_heads)
        self.pattern = pattern

    def attend(self, q, k, v, key_padding_mask):
        mask = combine_masks(self.pattern, padding_to_mask(key_padding_mask))
        return scaled_dot_product_attention(q, k, v, mask)


def dense_twin(module, pattern):
    """A MaskedFull with the module's projection weights."""
    full = MaskedFull(module.d_model, module.num_heads, pattern).double()
    names = ("q_proj", "k_proj", "v_proj", "out_proj")
    full.load_state_dict({k: v for k, v in module.state_dict().items() if k.split(".")[0] in names})
    return full


def max_saved_numel(fn, *args):
    """Largest tensor autograd saves while running ``fn`` (scores and weights are saved)."""
    sizes = []

    def pack(t):
        sizes.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(*args)
    return max(sizes)


# --------------------------------------------------------------------------- engine


def test_layout_to_mask_by_hand():
    layout = torch.tensor([[True, False], [True, True]])
    expected = torch.tensor([[1, 1, 0], [1, 1, 0], [1, 1, 1]], dtype=torch.bool)
    assert torch.equal(layout_to_mask(layout, 2, 3), expected)
    causal = torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=torch.bool)
    assert torch.equal(layout_to_mask(layout, 2, 3, causal=True), expected & causal)
    wide = layout_to_mask(torch.tensor([[False, True]]), 2, 1, 3)  # n_q = 1, n_k = 3
    assert torch.equal(wide, torch.tensor([[False, False, True]]))


def test_key_blocks_per_row():
    layout = torch.tensor([[0, 1, 0, 1], [1, 1, 1, 0], [0, 0, 0, 0]], dtype=torch.bool)
    index, valid = key_blocks_per_row(layout)
    assert index.shape == valid.shape == (3, 3)
    assert valid.tolist() == [[True, True, False], [True, True, True], [False] * 3]
    assert index[0, :2].tolist() == [1, 3] and index[1].tolist() == [0, 1, 2]


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(("n", "block_size"), [(10, 3), (16, 4), (5, 8), (9, 1)])
def test_engine_matches_dense(n, block_size, causal):
    gen = torch.Generator().manual_seed(n * 10 + block_size)
    nb = -(-n // block_size)
    layout = torch.rand(nb, nb, generator=gen) < 0.4
    layout[0] = True  # a full (dense-path) row
    if nb > 2:
        layout[1] = False  # an empty row: zero output
    q, k, v = qkv(gen, 2, 3, n=n)
    pad = padding_to_mask(key_padding(gen, 2, n))  # (2, 1, 1, n)
    dense = layout_to_mask(layout, block_size, n, causal=causal) & pad

    def fn(q, k, v):
        return block_sparse_attention(
            q, k, v, layout, block_size=block_size, mask=pad, causal=causal
        )

    assert_matches_dense(fn, dense, q, k, v, gen)


def test_engine_general_masks_and_rectangular():
    gen = torch.Generator().manual_seed(1)
    n_q, n_k, bs = 7, 11, 3
    layout = torch.rand(3, 4, generator=gen) < 0.6
    q = randn(gen, 2, n_q, 5)
    k, v = randn(gen, 2, n_k, 5), randn(gen, 1, n_k, 2)  # v broadcasts over the batch
    float_mask = randn(gen, n_q, n_k, grad=False)
    bool_mask = torch.rand(2, n_q, n_k, generator=gen) < 0.7
    structure = layout_to_mask(layout, bs, n_q, n_k)
    for mask, dense in (
        (float_mask, torch.where(structure, float_mask, -math.inf)),
        (bool_mask, structure & bool_mask),
    ):

        def fn(q, k, v, mask=mask):
            return block_sparse_attention(q, k, v, layout, block_size=bs, mask=mask)

        assert_matches_dense(fn, dense, q, k, v, gen)


def test_engine_unbatched_and_scale():
    gen = torch.Generator().manual_seed(2)
    q, k, v = qkv(gen, n=9)  # (n, d): no batch dims
    layout = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 1, 1]], dtype=torch.bool)
    out = block_sparse_attention(q, k, v, layout, block_size=4, scale=0.3)
    ref = scaled_dot_product_attention(q, k, v, layout_to_mask(layout, 4, 9), scale=0.3)
    torch.testing.assert_close(out, ref, rtol=0, atol=ATOL64)


def test_engine_gradcheck():
    gen = torch.Generator().manual_seed(3)
    q, k, v = qkv(gen, 2, n=7, d=3, d_v=2)
    layout = torch.tensor([[1, 1, 0], [0, 1, 1], [1, 1, 1]], dtype=torch.bool)
    pad = torch.tensor([True] * 6 + [False])

    def fn(q, k, v):
        return block_sparse_attention(q, k, v, layout, block_size=3, mask=pad, causal=True)

    assert torch.autograd.gradcheck(fn, (q, k, v))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_engine_low_precision(dtype):
    gen = torch.Generator().manual_seed(4)
    q, k, v = qkv(gen, 2, n=13, dtype=dtype)
    layout = torch.rand(4, 4, generator=gen) < 0.5
    out = block_sparse_attention(q, k, v, layout, block_size=4)
    assert out.dtype == dtype
    ref = scaled_dot_product_attention(
        *(t.double() for t in (q, k, v)), layout_to_mask(layout, 4, 13)
    )
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(out.double(), ref, rtol=tol, atol=tol)


def test_safe_softmax_matches_masked_softmax():
    gen = torch.Generator().manual_seed(5)
    x = randn(gen, 3, 6)
    allowed = torch.rand(3, 6, generator=gen) < 0.5
    allowed[1] = False  # an empty row

    def ours(x):
        return safe_softmax(x.masked_fill(~allowed, -math.inf))

    def theirs(x):
        return masked_softmax(x, allowed)

    assert_matches(ours, theirs, (x,), gen)
    assert torch.equal(ours(x)[1], torch.zeros(6, dtype=x.dtype))


def test_engine_bad_inputs():
    q = k = v = torch.randn(10, 4)
    layout = torch.ones(3, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"layout must be a bool tensor of shape .* \(3, 3\)"):
        block_sparse_attention(q, k, v, torch.ones(2, 3, dtype=torch.bool), block_size=4)
    with pytest.raises(ValueError, match="layout must be a bool"):
        block_sparse_attention(q, k, v, layout.int(), block_size=4)
    with pytest.raises(ValueError, match="block_size must be a positive integer"):
        block_sparse_attention(q, k, v, layout, block_size=0)
    with pytest.raises(ValueError, match="causal=True needs n_q == n_k"):
        block_sparse_attention(q[:5], k, v, layout[:2], block_size=4, causal=True)
    with pytest.raises(ValueError, match="mask of shape"):
        block_sparse_attention(q, k, v, layout, block_size=4, mask=torch.ones(3, 10).bool())
    with pytest.raises(TypeError, match="causal must be True or False"):
        block_sparse_attention(q, k, v, layout, block_size=4, causal=1)


# --------------------------------------------------------------------------- local


def test_sliding_window_mask_by_hand():
    m = sliding_window_mask(5, 1)
    expected = [[1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 0, 1, 1]]
    assert m.int().tolist() == expected
    causal = sliding_window_mask(5, 2, causal=True)
    assert causal[4].int().tolist() == [0, 0, 1, 1, 1]
    assert causal[1].int().tolist() == [1, 1, 0, 0, 0]
    dilated = sliding_window_mask(8, 2, dilation=3)
    assert dilated[4].nonzero().flatten().tolist() == [1, 4, 7]
    assert dilated[0].nonzero().flatten().tolist() == [0, 3, 6]
    assert sliding_window_mask(8, 1, dilation=2, causal=True)[5].nonzero().flatten().tolist() == [
        3,
        5,
    ]
    assert torch.equal(sliding_window_mask(4, 0), torch.eye(4, dtype=torch.bool))


@HYPOTHESIS
@given(
    n=st.integers(1, 70),
    window=st.integers(0, 40),
    dilation=st.integers(1, 5),
    causal=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_local_matches_dense(n, window, dilation, causal, seed):
    gen = torch.Generator().manual_seed(seed)
    q, k, v = qkv(gen, 2, 2, n=n)
    pad = padding_to_mask(key_padding(gen, 2, n))
    dense = sliding_window_mask(n, window, dilation=dilation, causal=causal) & pad

    def fn(q, k, v):
        return local_attention(q, k, v, window, dilation=dilation, causal=causal, mask=pad)

    assert_matches_dense(fn, dense, q, k, v, gen)


def test_local_large_window_block_path():
    """window >= 32 (blocks of size window) and several blocks, n not a multiple."""
    gen = torch.Generator().manual_seed(6)
    q, k, v = qkv(gen, 1, 2, n=300)
    for causal in (False, True):
        dense = sliding_window_mask(300, 45, causal=causal)

        def fn(q, k, v, causal=causal):
            return local_attention(q, k, v, 45, causal=causal)

        assert_matches_dense(fn, dense, q, k, v, gen)


def test_local_general_and_float_masks():
    gen = torch.Generator().manual_seed(7)
    n = 40
    q, k, v = qkv(gen, 2, n=n)
    window = sliding_window_mask(n, 6, dilation=2)
    general = torch.rand(n, n, generator=gen) < 0.6  # a mask with a real query axis
    float_mask = randn(gen, 2, 1, n, grad=False)
    for mask, dense in (
        (general, window & general),
        (float_mask, torch.where(window, float_mask, -math.inf)),
    ):

        def fn(q, k, v, mask=mask):
            return local_attention(q, k, v, 6, dilation=2, mask=mask)

        assert_matches_dense(fn, dense, q, k, v, gen)


def test_local_counts_each_key_once():
    got = key_sets_from_uniform_weights(lambda q, k, v: local_attention(q, k, v, 3, dilation=2), 17)
    assert torch.equal(got, sliding_window_mask(17, 3, dilation=2))


def test_local_gradcheck():
    gen = torch.Generator().manual_seed(8)
    q, k, v = qkv(gen, n=9, d=3, d_v=2)
    pad = torch.tensor([True] * 8 + [False])

    def fn(q, k, v):
        return local_attention(q, k, v, 2, dilation=2, causal=True, mask=pad)

    assert torch.autograd.gradcheck(fn, (q, k, v))


def test_local_fully_masked_rows_are_zero():
    gen = torch.Generator().manual_seed(9)
    q, k, v = qkv(gen, n=12)
    pad = torch.ones(12, dtype=torch.bool)
    pad[:6] = False  # queries 0..2 (window 2, causal) see only padding
    out = local_attention(q, k, v, 2, causal=True, mask=pad)
    assert torch.equal(out[:6], torch.zeros(6, 3, dtype=out.dtype))
    out.sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))


def test_local_half_precision():
    gen = torch.Generator().manual_seed(10)
    q, k, v = qkv(gen, 2, n=50, dtype=torch.float16)
    out = local_attention(q, k, v, 5)
    assert out.dtype == torch.float16
    ref = scaled_dot_product_attention(q.float(), k.float(), v.float(), sliding_window_mask(50, 5))
    torch.testing.assert_close(out.float(), ref, rtol=2e-3, atol=2e-3)


def test_local_never_forms_n_by_n():
    gen = torch.Generator().manual_seed(11)
    n = 600
    q, k, v = qkv(gen, 1, 1, n=n)
    assert max_saved_numel(lambda: local_attention(q, k, v, 4)) < n * n / 4


@pytest.mark.parametrize("causal", [False, True])
def test_local_module_matches_dense_module(causal):
    gen = torch.Generator().manual_seed(12)
    torch.manual_seed(0)
    module = LocalSelfAttention(8, 2, 3, dilation=2, causal=causal).double()
    n = 21
    full = dense_twin(module, sliding_window_mask(n, 3, dilation=2, causal=causal))
    x = randn(gen, 3, n, 8)
    pad = key_padding(gen, 3, n)
    torch.testing.assert_close(
        module(x, key_padding_mask=pad), full(x, key_padding_mask=pad), rtol=0, atol=ATOL64
    )


MODULES = {
    "local": lambda: LocalSelfAttention(8, 2, 4),
    "sparse_transformer": lambda: SparseTransformerSelfAttention(8, 2, 3, causal=False),
    "bigbird": lambda: BigBirdSelfAttention(8, 2, 3),
    "longformer": lambda: LongformerSelfAttention(8, 2, 2, global_index=(0, 4)),
}


@pytest.mark.parametrize("name", MODULES)
def test_modules_ignore_padded_keys(name):
    gen = torch.Generator().manual_seed(13)
    module = MODULES[name]().double()
    x = randn(gen, 2, 15, 8, grad=False)
    pad = torch.ones(2, 15, dtype=torch.bool)
    pad[1, 10:] = False
    y = x.clone()
    y[1, 10:] = 100 * torch.randn(5, 8, generator=gen, dtype=torch.float64)
    out_x, out_y = module(x, key_padding_mask=pad), module(y, key_padding_mask=pad)
    torch.testing.assert_close(out_x[:, :10], out_y[:, :10], rtol=0, atol=ATOL64)
    torch.testing.assert_close(out_x[0], out_y[0], rtol=0, atol=ATOL64)
    assert not torch.allclose(module(y)[1, :10], out_y[1, :10])  # without the mask they count


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("name", ["local", "strided", "fixed", "bigbird", "longformer"])
def test_low_precision_inputs(name, dtype):
    n = 40
    layout = bigbird_layout(10, generator=torch.Generator().manual_seed(0))
    fn, dense = {
        "local": (
            lambda *t: local_attention(*t, 3, dilation=2),
            sliding_window_mask(n, 3, dilation=2),
        ),
        "strided": (lambda *t: sparse_transformer_attention(*t, "strided", 6), strided_mask(n, 6)),
        "fixed": (
            lambda *t: sparse_transformer_attention(*t, "fixed", 6, c=2),
            fixed_mask(n, 6, c=2),
        ),
        "bigbird": (
            lambda *t: bigbird_attention(*t, layout, block_size=4),
            layout_to_mask(layout, 4, n),
        ),
        "longformer": (
            lambda *t: longformer_attention(*t, *t, 3, [0, 7]),
            longformer_mask(n, 3, [0, 7]),
        ),
    }[name]
    gen = torch.Generator().manual_seed(25)
    q, k, v = qkv(gen, 2, n=n, dtype=dtype)
    out = fn(q, k, v)
    assert out.dtype == dtype
    ref = scaled_dot_product_attention(*(t.double() for t in (q, k, v)), dense)
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(out.double(), ref, rtol=tol, atol=tol)


def test_local_bad_inputs():
    q = k = v = torch.randn(2, 6, 4)
    with pytest.raises(ValueError, match="window must be a non-negative integer"):
        local_attention(q, k, v, -1)
    with pytest.raises(ValueError, match="dilation must be a positive integer"):
        local_attention(q, k, v, 2, dilation=0)
    with pytest.raises(TypeError, match="causal must be True or False"):
        local_attention(q, k, v, 2, causal="yes")
    with pytest.raises(ValueError, match="same n"):
        local_attention(q, k[:, :5], v[:, :5], 2)
    with pytest.raises(ValueError, match="cannot broadcast"):
        local_attention(q, k, v, 2, mask=torch.ones(5, 6, dtype=torch.bool))
    with pytest.raises(TypeError, match="floating-point"):
        local_attention(q.long(), k, v, 2)
    with pytest.raises(ValueError, match="window must be"):
        LocalSelfAttention(8, 2, 1.5)


# --------------------------------------------------------------------------- sparse transformer


def rows(mask):
    return [set(r.nonzero().flatten().tolist()) for r in mask]


def test_strided_mask_by_hand():
    # n=8, stride=3, causal: previous 3 positions, plus every 3rd position before.
    expected = [
        {0},
        {0, 1},
        {0, 1, 2},
        {0, 1, 2, 3},
        {1, 2, 3, 4},
        {2, 3, 4, 5},
        {0, 3, 4, 5, 6},
        {1, 4, 5, 6, 7},
    ]
    assert rows(strided_mask(8, 3)) == expected
    non_causal = rows(strided_mask(8, 3, causal=False))
    assert non_causal[1] == {0, 1, 2, 3, 4, 7}
    assert non_causal[7] == {1, 4, 5, 6, 7}


def test_fixed_mask_by_hand():
    # n=8, stride=3, c=1, causal: own block so far, plus positions 2 and 5 (j mod 3 == 2).
    expected = [{0}, {0, 1}, {0, 1, 2}, {2, 3}, {2, 3, 4}, {2, 3, 4, 5}, {2, 5, 6}, {2, 5, 6, 7}]
    assert rows(fixed_mask(8, 3)) == expected
    assert rows(fixed_mask(8, 3, c=2))[7] == {1, 2, 4, 5, 6, 7}
    assert rows(fixed_mask(8, 3, causal=False))[0] == {0, 1, 2, 5}
    assert rows(fixed_mask(8, 3, causal=False))[7] == {2, 5, 6, 7}


def st_mask(pattern, n, stride, c, causal):
    if pattern == "strided":
        return strided_mask(n, stride, causal=causal)
    return fixed_mask(n, stride, c=c, causal=causal)


@HYPOTHESIS
@given(
    pattern=st.sampled_from(["strided", "fixed"]),
    n=st.integers(1, 60),
    stride=st.integers(1, 12),
    c=st.integers(1, 12),
    causal=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_sparse_transformer_matches_dense(pattern, n, stride, c, causal, seed):
    c = min(c, stride)
    gen = torch.Generator().manual_seed(seed)
    q, k, v = qkv(gen, 2, 2, n=n)
    pad = padding_to_mask(key_padding(gen, 2, n))
    dense = st_mask(pattern, n, stride, c, causal) & pad

    def fn(q, k, v):
        return sparse_transformer_attention(q, k, v, pattern, stride, c=c, causal=causal, mask=pad)

    assert_matches_dense(fn, dense, q, k, v, gen)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("pattern", ["strided", "fixed"])
def test_sparse_transformer_counts_each_key_once(pattern, causal):
    def fn(q, k, v):
        return sparse_transformer_attention(q, k, v, pattern, 4, c=2, causal=causal)

    assert torch.equal(key_sets_from_uniform_weights(fn, 19), st_mask(pattern, 19, 4, 2, causal))


def test_sparse_transformer_float_mask_and_gradcheck():
    gen = torch.Generator().manual_seed(14)
    q, k, v = qkv(gen, n=10, d=3, d_v=2)
    float_mask = randn(gen, 10, 10, grad=False)
    for pattern in ("strided", "fixed"):
        dense = torch.where(st_mask(pattern, 10, 3, 2, True), float_mask, -math.inf)

        def fn(q, k, v, pattern=pattern):
            return sparse_transformer_attention(q, k, v, pattern, 3, c=2, mask=float_mask)

        assert_matches_dense(fn, dense, q, k, v, gen)
        assert torch.autograd.gradcheck(fn, (q, k, v))


def test_sparse_transformer_subquadratic():
    gen = torch.Generator().manual_seed(15)
    n = 1024
    q, k, v = qkv(gen, 1, n=n)
    for pattern in ("strided", "fixed"):
        saved = max_saved_numel(lambda p=pattern: sparse_transformer_attention(q, k, v, p, 32))
        assert saved < n * n / 4


@pytest.mark.parametrize("pattern", ["strided", "fixed"])
def test_sparse_transformer_module_matches_dense_module(pattern):
    gen = torch.Generator().manual_seed(16)
    module = SparseTransformerSelfAttention(8, 2, 4, pattern=pattern, c=2).double()
    n = 19
    full = dense_twin(module, st_mask(pattern, n, 4, 2, True))
    x = randn(gen, 2, n, 8)
    pad = key_padding(gen, 2, n)
    torch.testing.assert_close(
        module(x, key_padding_mask=pad), full(x, key_padding_mask=pad), rtol=0, atol=ATOL64
    )


def test_sparse_transformer_bad_inputs():
    q = k = v = torch.randn(6, 4)
    with pytest.raises(ValueError, match="pattern must be 'strided' or 'fixed'"):
        sparse_transformer_attention(q, k, v, "local", 2)
    with pytest.raises(ValueError, match="stride must be a positive integer"):
        sparse_transformer_attention(q, k, v, "strided", 0)
    with pytest.raises(ValueError, match="c must be between 1 and stride=2"):
        sparse_transformer_attention(q, k, v, "fixed", 2, c=3)
    with pytest.raises(ValueError, match="c must be between"):
        fixed_mask(6, 2, c=3)
    with pytest.raises(ValueError, match="pattern must be"):
        SparseTransformerSelfAttention(8, 2, 3, pattern="dense")


# --------------------------------------------------------------------------- BigBird


@pytest.mark.parametrize(("n_blocks", "w", "g", "r"), [(12, 3, 1, 2), (20, 5, 2, 3), (9, 1, 0, 1)])
def test_bigbird_layout_structure(n_blocks, w, g, r):
    gen = torch.Generator().manual_seed(17)
    layout = bigbird_layout(
        n_blocks, num_window_blocks=w, num_global_blocks=g, num_random_blocks=r, generator=gen
    )
    assert layout.dtype == torch.bool and layout.shape == (n_blocks, n_blocks)
    blocks = torch.arange(n_blocks)
    window = (blocks[:, None] - blocks[None, :]).abs() <= (w - 1) // 2
    glob = torch.zeros(n_blocks, n_blocks, dtype=torch.bool)
    glob[:g, :], glob[:, :g] = True, True
    assert torch.equal(layout[:g], torch.ones(g, n_blocks, dtype=torch.bool))
    assert torch.equal(layout[:, :g], torch.ones(n_blocks, g, dtype=torch.bool))
    assert torch.equal(layout[:, :g].T, layout[:g, :])  # the global part is symmetric
    covered = window | glob
    assert (layout >= covered).all()  # window and global always present
    extra = (layout & ~covered).sum(dim=1)  # random blocks per row
    available = (~covered).sum(dim=1)
    assert torch.equal(extra[g:], torch.minimum(available, torch.tensor(r))[g:])
    assert extra[:g].sum() == 0


def test_bigbird_layout_reproducible():
    def make(seed):
        return bigbird_layout(30, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(make(3), make(3))
    assert not torch.equal(make(3), make(4))
    mask = bigbird_mask(50, 4, generator=torch.Generator().manual_seed(3))
    layout = bigbird_layout(13, generator=torch.Generator().manual_seed(3))
    assert torch.equal(mask, layout_to_mask(layout, 4, 50))


@HYPOTHESIS
@given(
    n=st.integers(1, 60),
    block_size=st.integers(1, 9),
    w=st.sampled_from([1, 3, 5]),
    g=st.integers(0, 2),
    r=st.integers(0, 3),
    seed=st.integers(0, 2**16),
)
def test_bigbird_matches_dense(n, block_size, w, g, r, seed):
    gen = torch.Generator().manual_seed(seed)
    nb = -(-n // block_size)
    counts = {"num_window_blocks": w, "num_global_blocks": g, "num_random_blocks": r}
    layout = bigbird_layout(nb, **counts, generator=gen)
    q, k, v = qkv(gen, 2, 2, n=n)
    pad = padding_to_mask(key_padding(gen, 2, n))
    dense = layout_to_mask(layout, block_size, n) & pad

    def fn(q, k, v):
        return bigbird_attention(q, k, v, layout, block_size=block_size, mask=pad)

    assert_matches_dense(fn, dense, q, k, v, gen)


def test_bigbird_counts_each_key_once_and_gradcheck():
    layout = bigbird_layout(5, generator=torch.Generator().manual_seed(0))

    def fn(q, k, v):
        return bigbird_attention(q, k, v, layout, block_size=3)

    assert torch.equal(key_sets_from_uniform_weights(fn, 14), layout_to_mask(layout, 3, 14))
    gen = torch.Generator().manual_seed(18)
    assert torch.autograd.gradcheck(fn, qkv(gen, n=14, d=2, d_v=2))


def test_bigbird_subquadratic():
    gen = torch.Generator().manual_seed(19)
    n, bs = 1024, 16
    q, k, v = qkv(gen, 1, n=n)
    layout = bigbird_layout(n // bs, generator=gen)
    saved = max_saved_numel(lambda: bigbird_attention(q, k, v, layout, block_size=bs))
    assert saved < n * n / 4


def test_bigbird_module_fixed_layout_and_dense_twin():
    gen = torch.Generator().manual_seed(20)
    module = BigBirdSelfAttention(8, 2, 3, num_random_blocks=1, seed=5).double()
    n = 20
    layout = module.layout(n)
    assert module.layout(n) is layout  # cached per n
    expected = bigbird_layout(7, num_random_blocks=1, generator=torch.Generator().manual_seed(5))
    assert torch.equal(layout, expected)
    other = BigBirdSelfAttention(8, 2, 3, num_random_blocks=1, seed=5)
    assert torch.equal(other.layout(n), layout)  # reproducible across modules
    full = dense_twin(module, layout_to_mask(layout, 3, n))
    x = randn(gen, 2, n, 8)
    pad = key_padding(gen, 2, n)
    torch.testing.assert_close(
        module(x, key_padding_mask=pad), full(x, key_padding_mask=pad), rtol=0, atol=ATOL64
    )


def test_bigbird_bad_inputs():
    with pytest.raises(ValueError, match="num_window_blocks must be odd"):
        bigbird_layout(5, num_window_blocks=2)
    with pytest.raises(ValueError, match="num_random_blocks must be a non-negative integer"):
        bigbird_layout(5, num_random_blocks=-1)
    with pytest.raises(TypeError, match=r"generator must be a torch\.Generator"):
        bigbird_layout(5, generator=3)
    q = k = v = torch.randn(10, 4)
    with pytest.raises(ValueError, match=r"layout must be a bool tensor of shape .* \(4, 4\)"):
        bigbird_attention(q, k, v, torch.ones(3, 3, dtype=torch.bool), block_size=3)
    with pytest.raises(ValueError, match="block_size must be a positive integer"):
        BigBirdSelfAttention(8, 2, 0)


# --------------------------------------------------------------------------- Longformer


def test_longformer_mask_by_hand():
    m = longformer_mask(6, 1, [0, 4])
    expected = [
        [1, 1, 1, 1, 1, 1],
        [1, 1, 1, 0, 1, 0],
        [1, 1, 1, 1, 1, 0],
        [1, 0, 1, 1, 1, 0],
        [1, 1, 1, 1, 1, 1],
        [1, 0, 0, 0, 1, 1],
    ]
    assert m.int().tolist() == expected
    assert torch.equal(longformer_mask(6, 2, []), sliding_window_mask(6, 2))


@HYPOTHESIS
@given(
    n=st.integers(1, 60),
    window=st.integers(0, 40),
    global_index=st.lists(st.integers(0, 59), max_size=4),
    seed=st.integers(0, 2**16),
)
def test_longformer_shared_projections_match_dense(n, window, global_index, seed):
    global_index = [g % n for g in global_index]  # repeats allowed: counted once
    gen = torch.Generator().manual_seed(seed)
    q, k, v = qkv(gen, 2, 2, n=n)
    pad = padding_to_mask(key_padding(gen, 2, n))
    dense = longformer_mask(n, window, global_index) & pad

    def fn(q, k, v):
        return longformer_attention(q, k, v, q, k, v, window, global_index, mask=pad)

    assert_matches_dense(fn, dense, q, k, v, gen)


def longformer_reference(q, k, v, qg, kg, vg, window, global_index, mask):
    """Dense: every row from the shared-projection pattern, global rows from (qg, kg, vg)."""
    n = q.shape[-2]
    pattern = combine_masks(longformer_mask(n, window, global_index), mask)
    local = scaled_dot_product_attention(q, k, v, pattern)
    everything = scaled_dot_product_attention(qg, kg, vg, mask)  # (..., n, d_v)
    is_global = torch.zeros(n, 1, dtype=torch.bool)
    is_global[list(global_index)] = True
    return torch.where(is_global, everything, local)


def test_longformer_separate_global_projections():
    gen = torch.Generator().manual_seed(21)
    n, window, global_index = 37, 3, [0, 9, 36]
    q, k, v = qkv(gen, 2, 2, n=n)
    qg, kg, vg = qkv(gen, 2, 2, n=n)
    pad = padding_to_mask(key_padding(gen, 2, n))
    inputs = (q, k, v, qg, kg, vg)

    def fn(*t):
        return longformer_attention(*t, window, global_index, mask=pad)

    def ref(*t):
        return longformer_reference(*t, window, global_index, pad)

    assert_matches(fn, ref, inputs, gen)
    # The non-global rows do not depend on the global projections.
    shared = longformer_attention(q, k, v, q, k, v, window, global_index, mask=pad)
    others = [i for i in range(n) if i not in global_index]
    torch.testing.assert_close(fn(*inputs)[..., others, :], shared[..., others, :], rtol=0, atol=0)
    # The global rows are dense attention of q_global over k_global, v_global.
    dense_rows = scaled_dot_product_attention(qg[..., global_index, :], kg, vg, pad)
    torch.testing.assert_close(fn(*inputs)[..., global_index, :], dense_rows, rtol=0, atol=ATOL64)


def test_longformer_counts_each_key_once_and_gradcheck():
    def fn(q, k, v):
        return longformer_attention(q, k, v, q, k, v, 2, [1, 3, 10])

    assert torch.equal(key_sets_from_uniform_weights(fn, 13), longformer_mask(13, 2, [1, 3, 10]))
    gen = torch.Generator().manual_seed(22)
    inputs = qkv(gen, n=9, d=2, d_v=2) + qkv(gen, n=9, d=2, d_v=2)
    pad = torch.tensor([True] * 8 + [False])
    assert torch.autograd.gradcheck(
        lambda *t: longformer_attention(*t, 1, torch.tensor([0, 5]), mask=pad), inputs
    )


def test_longformer_subquadratic():
    gen = torch.Generator().manual_seed(23)
    n = 800
    q, k, v = qkv(gen, 1, n=n)
    saved = max_saved_numel(lambda: longformer_attention(q, k, v, q, k, v, 8, [0, 400]))
    assert saved < n * n / 4


def test_longformer_module():
    gen = torch.Generator().manual_seed(24)
    module = LongformerSelfAttention(8, 2, 2, global_index=(0, 5)).double()
    n = 15
    x = randn(gen, 2, n, 8)
    pad = key_padding(gen, 2, n)

    def reference(global_index):
        projections = (module.q_proj, module.k_proj, module.v_proj)
        projections += (module.q_global, module.k_global, module.v_global)
        heads = [split_heads(proj(x), 2) for proj in projections]
        out = longformer_reference(*heads, 2, global_index, padding_to_mask(pad))
        return module.out_proj(merge_heads(out))

    out = module(x, key_padding_mask=pad)
    torch.testing.assert_close(out, reference([0, 5]), rtol=0, atol=ATOL64)
    out = module(x, key_padding_mask=pad, global_index=[3])
    torch.testing.assert_close(out, reference([3]), rtol=0, atol=ATOL64)
    assert module.global_index == (0, 5)  # the override does not stick
    # With global projections equal to the local ones: masked dense attention.
    module.q_global.load_state_dict(module.q_proj.state_dict())
    module.k_global.load_state_dict(module.k_proj.state_dict())
    module.v_global.load_state_dict(module.v_proj.state_dict())
    full = dense_twin(module, longformer_mask(n, 2, [0, 5]))
    torch.testing.assert_close(
        module(x, key_padding_mask=pad), full(x, key_padding_mask=pad), rtol=0, atol=ATOL64
    )


def test_longformer_bad_inputs():
    q = k = v = torch.randn(6, 4)
    with pytest.raises(ValueError, match=r"global_index must hold positions in \[0, n\)"):
        longformer_attention(q, k, v, q, k, v, 1, [6])
    with pytest.raises(ValueError, match="global_index must hold positions >= 0"):
        longformer_attention(q, k, v, q, k, v, 1, [-1])
    with pytest.raises(ValueError, match="global_index must hold positions >= 0"):
        LongformerSelfAttention(8, 2, 1, global_index=[-2])
    with pytest.raises(TypeError, match="global_index must be a sequence of ints"):
        longformer_attention(q, k, v, q, k, v, 1, [0.5])
    with pytest.raises(TypeError, match="global_index must be"):
        longformer_attention(q, k, v, q, k, v, 1, torch.tensor([True]))
    with pytest.raises(ValueError, match="q_global must have the shape and dtype of q"):
        longformer_attention(q, k, v, q[:5], k, v, 1, [0])
    with pytest.raises(ValueError, match="v_global must have the shape and dtype of v"):
        longformer_attention(q, k, v, q, k, v.double(), 1, [0])
    module = LongformerSelfAttention(8, 2, 1, global_index=[7])
    with pytest.raises(ValueError, match="global_index must hold positions"):
        module(torch.randn(1, 5, 8))
    with pytest.raises(TypeError, match="global_index must be"):
        LongformerSelfAttention(8, 2, 1, global_index="0")


@pytest.mark.parametrize(
    ("window", "dilation", "causal"), [(5, 1, False), (7, 2, True), (40, 1, True)]
)
def test_local_attention_in_chunks_equals_dense(window, dilation, causal):
    # Long enough that local_attention processes its blocks in several chunks
    # (local.CHUNK_BLOCKS query blocks at a time), including a ragged last chunk.
    import attnkit.efficient.local as local

    n = 37 * 32 * (local.CHUNK_BLOCKS // 4) + 5
    g = torch.Generator().manual_seed(7)
    q, k, v = (torch.randn(2, n, 4, generator=g, dtype=torch.float64) for _ in range(3))
    for t in (q, k, v):
        t.requires_grad_(True)
    lengths = torch.tensor([n, n - 300])
    pad = (torch.arange(n) < lengths[:, None])[:, None, :]  # (B, 1, n)
    got = local_attention(q, k, v, window, dilation=dilation, causal=causal, mask=pad)
    dense = sliding_window_mask(n, window, dilation=dilation, causal=causal) & pad
    want = scaled_dot_product_attention(q, k, v, dense)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=0)
    grads = torch.autograd.grad((got * want.detach()).sum(), (q, k, v))
    wants = torch.autograd.grad((want * want.detach()).sum(), (q, k, v))
    for a, b in zip(grads, wants):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)

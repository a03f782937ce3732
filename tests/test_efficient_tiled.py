"""Tests of attnkit.efficient.tiled: tiled attention with an online softmax.

Every result is compared with the dense reference :func:`attnkit.scaled_dot_product_attention`
given the equivalent dense mask (built with ``causal_mask`` / ``combine_masks``), forward
and backward; the building blocks are compared with ``torch.logsumexp`` and with attention
over the whole key set.
"""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode

from attnkit import causal_mask, combine_masks, padding_mask, scaled_dot_product_attention
from attnkit.efficient.full import FullSelfAttention
from attnkit.efficient.tiled import (
    TiledSelfAttention,
    _Tiles,
    attention_with_lse,
    merge_attention_blocks,
    tiled_attention,
)

HYPOTHESIS = settings(max_examples=25, deadline=None, derandomize=True, database=None)
F64 = {"rtol": 1e-12, "atol": 1e-12}
F32 = {"rtol": 1e-5, "atol": 1e-5}


def randn(gen, *shape, dtype=torch.float64):
    """Standard normal numbers drawn in float64 from ``gen`` and rounded to ``dtype``."""
    return torch.randn(*shape, generator=gen, dtype=torch.float64).to(dtype)


def qkv(gen, q_shape, k_shape, d_v=None, dtype=torch.float64, grad=False):
    """q ``q_shape``, k ``k_shape`` and v like k with last dimension ``d_v``."""
    d_v = k_shape[-1] if d_v is None else d_v
    q, k = randn(gen, *q_shape, dtype=dtype), randn(gen, *k_shape, dtype=dtype)
    v = randn(gen, *k_shape[:-1], d_v, dtype=dtype)
    return tuple(t.requires_grad_(grad) for t in (q, k, v))


def dense(q, k, v, mask=None, *, causal=False, scale=None):
    """The reference: dense attention with the causal mask folded into ``mask``."""
    n_q, n_k = q.shape[-2], k.shape[-2]
    full = combine_masks(causal_mask(n_q, n_k) if causal else None, mask)
    return scaled_dot_product_attention(q, k, v, full, scale=scale)


def make_mask(kind, gen, batch, n_q, n_k, dtype=torch.float64):
    """Masks in the core convention for scores ``(*batch, n_q, n_k)``."""
    if kind == "none":
        return None
    if kind == "padding":  # (B, 1, 1, n_k) key padding, as the modules build it
        lengths = torch.randint(1, n_k + 1, (batch[0],), generator=gen)
        return padding_mask(lengths, n_k)[:, None, None, :]
    if kind == "bool":
        return torch.rand(*batch, n_q, n_k, generator=gen) < 0.6
    if kind == "bool-2d":
        return torch.rand(n_q, n_k, generator=gen) < 0.6
    if kind == "bool-keys":  # (n_k,)
        keep = torch.rand(n_k, generator=gen) < 0.7
        keep[0] = True
        return keep
    if kind == "float":
        mask = randn(gen, *batch[1:], n_q, n_k)  # one fewer leading dimension
        return mask.masked_fill(torch.rand(mask.shape, generator=gen) < 0.3, -math.inf).to(dtype)
    if kind == "float-rows":  # (n_q, 1): a per-query shift, broadcast over the keys
        return randn(gen, n_q, 1, dtype=dtype) * 10
    raise ValueError(kind)


MASK_KINDS = ["none", "padding", "bool", "bool-2d", "bool-keys", "float", "float-rows"]


# ------------------------------------------------------------ forward vs dense


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize(("n_q", "n_k"), [(13, 13), (9, 17), (17, 9), (1, 6)])
def test_matches_dense_float64(n_q, n_k, kind, causal):
    gen = torch.Generator().manual_seed(n_q * 100 + n_k)
    q, k, v = qkv(gen, (2, 3, n_q, 8), (2, 3, n_k, 8), d_v=5)
    mask = make_mask(kind, gen, (2, 3), n_q, n_k)
    out = tiled_attention(q, k, v, mask, causal=causal, block_q=4, block_k=5)
    assert out.shape == (2, 3, n_q, 5)
    torch.testing.assert_close(out, dense(q, k, v, mask, causal=causal), **F64)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("kind", ["none", "padding", "bool", "float"])
def test_matches_dense_float32(kind, causal):
    gen = torch.Generator().manual_seed(3)
    q, k, v = qkv(gen, (2, 4, 70, 16), (2, 4, 90, 16), dtype=torch.float32)
    mask = make_mask(kind, gen, (2, 4), 70, 90, dtype=torch.float32)
    out = tiled_attention(q, k, v, mask, causal=causal, block_q=16, block_k=32)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, dense(q, k, v, mask, causal=causal), **F32)


@pytest.mark.parametrize(
    ("q_shape", "k_shape"),
    [
        ((11, 8), (14, 8)),  # 2-D: no batch dimensions
        ((3, 11, 8), (3, 14, 8)),  # 3-D
        ((11, 8), (2, 14, 8)),  # q shared by a batch of keys/values
        ((2, 3, 11, 8), (1, 3, 14, 8)),  # k/v broadcast over the batch
        ((2, 3, 11, 8), (3, 14, 8)),  # k/v with fewer leading dimensions
    ],
    ids=str,
)
@pytest.mark.parametrize("causal", [False, True])
def test_batch_shapes(q_shape, k_shape, causal):
    gen = torch.Generator().manual_seed(len(q_shape) + len(k_shape))
    q, k, v = qkv(gen, q_shape, k_shape, d_v=3)
    out = tiled_attention(q, k, v, causal=causal, block_q=4, block_k=3)
    expected = dense(q, k, v, causal=causal)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, **F64)


@pytest.mark.parametrize(("block_q", "block_k"), [(1, 1), (3, 7), (5, 100), (100, 4), (256, 1024)])
def test_block_sizes(block_q, block_k):
    """Any block sizes, dividing n or not, larger than n or 1, give the same result."""
    gen = torch.Generator().manual_seed(block_q + block_k)
    q, k, v = qkv(gen, (2, 21, 6), (2, 30, 6))
    mask = make_mask("bool", gen, (2,), 21, 30)
    for causal in (False, True):
        out = tiled_attention(q, k, v, mask, causal=causal, block_q=block_q, block_k=block_k)
        torch.testing.assert_close(out, dense(q, k, v, mask, causal=causal), **F64)


def test_custom_scale():
    gen = torch.Generator().manual_seed(4)
    q, k, v = qkv(gen, (2, 9, 6), (2, 11, 6))
    out = tiled_attention(q, k, v, scale=0.3, block_q=4, block_k=4)
    torch.testing.assert_close(out, dense(q, k, v, scale=0.3), **F64)
    assert not torch.allclose(out, tiled_attention(q, k, v, block_q=4, block_k=4))


def test_expanded_mask_and_non_contiguous_inputs():
    """An expanded (stride-0) mask and transposed inputs (as split_heads makes) work."""
    gen = torch.Generator().manual_seed(5)
    q, k, v = (randn(gen, 2, 12, 3, 4).transpose(1, 2) for _ in range(3))  # (B, H, n, D)
    mask = (torch.rand(12, 12, generator=gen) < 0.5).expand(2, 3, 12, 12)
    out = tiled_attention(q, k, v, mask, causal=True, block_q=5, block_k=5)
    torch.testing.assert_close(out, dense(q, k, v, mask, causal=True), **F64)


def test_large_logits():
    """Scores ~1e5 neither overflow nor lose the answer (float32)."""
    gen = torch.Generator().manual_seed(6)
    q, k, v = qkv(gen, (7, 4), (9, 4), dtype=torch.float32)
    q, k = q * 300, k * 300
    out = tiled_attention(q, k, v, block_q=2, block_k=2)
    assert torch.isfinite(out).all()
    expected = dense(q.double(), k.double(), v.double())
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-5)


def test_row_that_starts_seeing_keys_late_with_very_negative_scores():
    """The running max stays -inf until a row sees a key, then jumps to its real scores.

    Row 1 sees nothing in the first key block and scores ~ -1e4 in the second one:
    exp(-1e4) underflows, so shifting by anything but the true maximum would give 0.
    """
    gen = torch.Generator().manual_seed(6)
    q, k, v = qkv(gen, (3, 4), (8, 4))
    mask = torch.zeros(3, 8, dtype=torch.float64)
    mask[1, :4] = -math.inf
    mask[1, 4:] = -1e4 + randn(gen, 4)
    out = tiled_attention(q, k, v, mask, block_q=2, block_k=4)
    torch.testing.assert_close(out, dense(q, k, v, mask), **F64)
    assert out[1].abs().sum() > 0


@HYPOTHESIS
@given(
    seed=st.integers(0, 2**31 - 1),
    n_q=st.integers(1, 20),
    n_k=st.integers(1, 20),
    block_q=st.integers(1, 8),
    block_k=st.integers(1, 8),
    causal=st.booleans(),
    kind=st.sampled_from(MASK_KINDS),
)
def test_property_matches_dense(seed, n_q, n_k, block_q, block_k, causal, kind):
    gen = torch.Generator().manual_seed(seed)
    q, k, v = qkv(gen, (2, 2, n_q, 4), (2, 2, n_k, 4), d_v=3)
    mask = make_mask(kind, gen, (2, 2), n_q, n_k)
    out = tiled_attention(q, k, v, mask, causal=causal, block_q=block_q, block_k=block_k)
    torch.testing.assert_close(out, dense(q, k, v, mask, causal=causal), **F64)


# ------------------------------------------------------------------- gradients


def _backward(fn, q, k, v, **kwargs):
    """Gradients of a fixed linear function of the output w.r.t. q, k and v."""
    out = fn(q, k, v, **kwargs)
    weights = torch.linspace(-1, 2, out.numel(), dtype=out.dtype).reshape(out.shape)
    return torch.autograd.grad((out * weights).sum(), (q, k, v))


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("kind", ["none", "padding", "bool", "float", "float-rows"])
@pytest.mark.parametrize(("n_q", "n_k"), [(10, 10), (7, 12), (12, 7)])
def test_gradients_match_dense(n_q, n_k, kind, causal):
    gen = torch.Generator().manual_seed(n_q + 10 * n_k)
    q, k, v = qkv(gen, (2, 2, n_q, 5), (2, 2, n_k, 5), d_v=3, grad=True)
    mask = make_mask(kind, gen, (2, 2), n_q, n_k)
    ours = _backward(tiled_attention, q, k, v, mask=mask, causal=causal, block_q=3, block_k=4)
    theirs = _backward(dense, q, k, v, mask=mask, causal=causal)
    for g_ours, g_theirs in zip(ours, theirs):
        assert torch.isfinite(g_ours).all()
        torch.testing.assert_close(g_ours, g_theirs, **F64)


def test_gradients_with_broadcast_batch():
    """k/v shared by a batch of queries: their gradients are summed over the batch."""
    gen = torch.Generator().manual_seed(7)
    q, k, v = qkv(gen, (3, 2, 6, 4), (2, 9, 4), grad=True)
    ours = _backward(tiled_attention, q, k, v, causal=True, block_q=4, block_k=4)
    theirs = _backward(dense, q, k, v, causal=True)
    assert ours[1].shape == k.shape
    for g_ours, g_theirs in zip(ours, theirs):
        torch.testing.assert_close(g_ours, g_theirs, **F64)


@pytest.mark.parametrize(
    ("causal", "kind", "n_q", "n_k"),
    [(False, "none", 5, 7), (True, "none", 6, 4), (False, "bool", 5, 5), (True, "float", 4, 6)],
)
def test_gradcheck(causal, kind, n_q, n_k):
    gen = torch.Generator().manual_seed(8)
    q, k, v = qkv(gen, (2, n_q, 3), (2, n_k, 3), d_v=2, grad=True)
    mask = make_mask(kind, gen, (2,), n_q, n_k)

    def f(q, k, v):
        return tiled_attention(q, k, v, mask, causal=causal, scale=0.8, block_q=2, block_k=3)

    assert torch.autograd.gradcheck(f, (q, k, v))


def test_float_mask_gets_no_gradient():
    gen = torch.Generator().manual_seed(9)
    q, k, v = qkv(gen, (4, 3), (5, 3), grad=True)
    mask = randn(gen, 4, 5).requires_grad_()
    tiled_attention(q, k, v, mask, block_q=2, block_k=2).sum().backward()
    assert mask.grad is None
    assert q.grad is not None


# ------------------------------------------------------------ fully masked rows


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("additive", [False, True])
def test_fully_masked_rows_give_zero_output_and_gradients(additive, dtype):
    gen = torch.Generator().manual_seed(10)
    q, k, v = qkv(gen, (2, 7, 4), (2, 9, 4), dtype=dtype, grad=True)
    mask = torch.rand(2, 7, 9, generator=gen) < 0.5
    mask[..., 0] = True
    mask[0, 3] = False  # query 3 of batch 0 sees nothing
    mask[1, 5:] = False  # two queries of batch 1, spanning two query blocks
    if additive:
        mask = torch.zeros(mask.shape, dtype=dtype).masked_fill(~mask, -math.inf)
    out = tiled_attention(q, k, v, mask, block_q=3, block_k=4)
    assert torch.equal(out[0, 3], torch.zeros(4, dtype=dtype))
    assert torch.equal(out[1, 5:], torch.zeros(2, 4, dtype=dtype))
    (out.float() * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
    for t in (q, k, v):
        assert torch.isfinite(t.grad).all()
    assert torch.equal(q.grad[0, 3], torch.zeros(4, dtype=dtype))
    assert torch.equal(q.grad[1, 5:], torch.zeros(2, 4, dtype=dtype))
    assert q.grad[0, :3].abs().sum() > 0


def test_causal_with_more_queries_than_keys():
    """Bottom-right alignment: the first n_q - n_k queries see no key and give zeros."""
    gen = torch.Generator().manual_seed(11)
    q, k, v = qkv(gen, (10, 4), (4, 4), grad=True)
    out = tiled_attention(q, k, v, causal=True, block_q=3, block_k=2)
    assert torch.equal(out[:6], torch.zeros(6, 4, dtype=out.dtype))
    torch.testing.assert_close(out, dense(q, k, v, causal=True), **F64)
    out.sum().backward()
    assert torch.equal(q.grad[:6], torch.zeros(6, 4, dtype=q.dtype))
    assert torch.isfinite(k.grad).all()


def test_no_keys_gives_zeros():
    gen = torch.Generator().manual_seed(12)
    q, k, v = qkv(gen, (2, 3, 4), (2, 0, 4), d_v=5, grad=True)
    out = tiled_attention(q, k, v)
    assert torch.equal(out, torch.zeros(2, 3, 5, dtype=torch.float64))
    out.sum().backward()
    assert torch.equal(q.grad, torch.zeros_like(q))


# ------------------------------------------------------------------ 16-bit inputs


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("causal", [False, True])
def test_half_precision_close_to_float32(dtype, causal):
    """16-bit inputs are computed in float32: one rounding of the float32 result."""
    gen = torch.Generator().manual_seed(13)
    q, k, v = qkv(gen, (2, 3, 40, 16), (2, 3, 40, 16), dtype=dtype)
    out = tiled_attention(q, k, v, causal=causal, block_q=16, block_k=16)
    assert out.dtype == dtype
    expected = dense(q.float(), k.float(), v.float(), causal=causal)
    u = torch.finfo(dtype).eps / 2
    torch.testing.assert_close(out.float(), expected, rtol=u, atol=1e-5)


def test_half_precision_gradients():
    gen = torch.Generator().manual_seed(14)
    q, k, v = qkv(gen, (2, 12, 8), (2, 12, 8), dtype=torch.bfloat16, grad=True)
    grads = _backward(tiled_attention, q, k, v, causal=True, block_q=5, block_k=5)
    q32, k32, v32 = (t.detach().float().requires_grad_() for t in (q, k, v))
    expected = _backward(dense, q32, k32, v32, causal=True)
    for g, e in zip(grads, expected):
        assert g.dtype == torch.bfloat16
        torch.testing.assert_close(g.float(), e, rtol=1e-2, atol=1e-2)


# ------------------------------------------------------------------ memory / work


class _LargestResult(TorchDispatchMode):
    """Records the largest number of elements of any tensor an aten op produces."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


@pytest.mark.parametrize("causal", [False, True])
def test_never_materialises_the_score_matrix(causal):
    """No op in forward or backward makes a tensor anywhere near (N, n_q, n_k)."""
    gen = torch.Generator().manual_seed(15)
    n, d, block = 96, 4, 16
    q, k, v = qkv(gen, (2, 2, n, d), (2, 2, n, d), grad=True)
    mask = make_mask("padding", gen, (2, 2), n, n)
    with _LargestResult() as spy:
        out = tiled_attention(q, k, v, mask, causal=causal, block_q=block, block_k=block)
        out.sum().backward()
    tile, inputs, scores = 4 * block * block, 4 * n * d, 4 * n * n
    assert spy.largest <= max(tile, inputs) < scores // 4


def test_causal_skips_tiles_above_the_diagonal():
    """With n = 8 and 2 x 2 tiles only the 4 + 3 + 2 + 1 tiles on or below it are visited."""
    tiles = _Tiles((), 8, 8, None, True, 2, 2)
    visited = [(i, j) for i in tiles.rows() for j in tiles.cols(*i)]
    assert len(visited) == 10
    assert all(j0 <= i1 - 1 for (_, i1), (j0, _) in visited)
    full = _Tiles((), 8, 8, None, False, 2, 2)
    assert sum(len(full.cols(*i)) for i in full.rows()) == 16
    # more keys than queries: the query block 0:2 sits at positions 4, 5 and needs keys 0..5
    assert _Tiles((), 4, 8, None, True, 2, 4).cols(0, 2) == [(0, 4), (4, 6)]


def test_no_graph_is_recorded_inside_the_kernel():
    """Inference does not build an autograd graph; training records one node for the kernel."""
    gen = torch.Generator().manual_seed(16)
    q, k, v = qkv(gen, (6, 4), (6, 4), grad=True)
    with torch.no_grad():
        assert not tiled_attention(q, k, v, block_q=2, block_k=2).requires_grad
    out = tiled_attention(q, k, v, block_q=2, block_k=2)
    names = []
    stack = [out.grad_fn]
    while stack:
        node = stack.pop()
        if node is not None:
            names.append(type(node).__name__)
            stack.extend(next_fn for next_fn, _ in node.next_functions)
    assert sum("TiledAttention" in name for name in names) == 1
    assert not {"ExpBackward0", "BmmBackward0", "BaddbmmBackward0"} & set(names)


# ------------------------------------------------------------- building blocks


@pytest.mark.parametrize("kind", ["none", "bool", "float"])
def test_attention_with_lse(kind):
    gen = torch.Generator().manual_seed(17)
    q, k, v = qkv(gen, (2, 3, 6, 5), (2, 3, 8, 5), d_v=4)
    mask = make_mask(kind, gen, (2, 3), 6, 8)
    out, lse = attention_with_lse(q, k, v, mask, scale=0.6)
    scores = (q @ k.transpose(-2, -1)) * 0.6
    if mask is not None:
        scores = scores.masked_fill(~mask, -math.inf) if mask.dtype == torch.bool else scores + mask
    assert lse.shape == (2, 3, 6)
    torch.testing.assert_close(lse, torch.logsumexp(scores, dim=-1), **F64)
    torch.testing.assert_close(out, scaled_dot_product_attention(q, k, v, mask, scale=0.6), **F64)


def test_attention_with_lse_fully_masked_row():
    gen = torch.Generator().manual_seed(18)
    q, k, v = qkv(gen, (3, 4), (5, 4), grad=True)
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[1] = False
    out, lse = attention_with_lse(q, k, v, mask)
    assert lse[1] == -math.inf
    assert torch.isfinite(lse[[0, 2]]).all()
    assert torch.equal(out[1], torch.zeros(4, dtype=out.dtype))
    (out.sum() + lse[[0, 2]].sum()).backward()
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))
    assert torch.equal(q.grad[1], torch.zeros(4, dtype=q.dtype))


def test_attention_with_lse_gradcheck():
    gen = torch.Generator().manual_seed(19)
    q, k, v = qkv(gen, (2, 3, 4), (2, 5, 4), d_v=2, grad=True)
    mask = make_mask("bool", gen, (2,), 3, 5)

    def f(q, k, v):
        out, lse = attention_with_lse(q, k, v, mask)
        return torch.cat([out.flatten(), lse.clamp(min=-1e3).flatten()])

    assert torch.autograd.gradcheck(f, (q, k, v))


@HYPOTHESIS
@given(
    seed=st.integers(0, 2**31 - 1),
    n_q=st.integers(1, 8),
    n_k=st.integers(2, 12),
    data=st.data(),
    kind=st.sampled_from(["none", "bool", "float"]),
)
def test_property_merge_of_two_key_blocks_is_full_attention(seed, n_q, n_k, data, kind):
    """Split the keys at a random point, attend to each part, merge: the full attention."""
    split = data.draw(st.integers(1, n_k - 1), label="split")
    gen = torch.Generator().manual_seed(seed)
    q, k, v = qkv(gen, (2, n_q, 4), (2, n_k, 4), d_v=3)
    mask = make_mask(kind, gen, (2,), n_q, n_k)
    parts = []
    for keys in (slice(0, split), slice(split, n_k)):
        part_mask = None if mask is None else mask[..., keys]
        parts.extend(attention_with_lse(q, k[:, keys], v[:, keys], part_mask))
    out, lse = merge_attention_blocks(*parts)
    full_out, full_lse = attention_with_lse(q, k, v, mask)
    assert not out.isnan().any()
    torch.testing.assert_close(out, full_out, **F64)
    torch.testing.assert_close(lse, full_lse, **F64)


def test_merge_with_empty_sides():
    """-inf on one side takes the other side as is; -inf on both gives zeros, no NaN."""
    gen = torch.Generator().manual_seed(20)
    out_a, out_b = randn(gen, 3, 2), randn(gen, 3, 2)
    inf = math.inf
    lse_a = torch.tensor([0.5, -inf, -inf], dtype=torch.float64)
    lse_b = torch.tensor([-inf, 1.5, -inf], dtype=torch.float64)
    out_a[2] = out_b[2] = 0.0  # what attention_with_lse returns for an empty row
    inputs = [t.requires_grad_() for t in (out_a, lse_a, out_b, lse_b)]
    out, lse = merge_attention_blocks(*inputs)
    assert not out.isnan().any()
    assert torch.equal(out[0], out_a[0])
    assert torch.equal(out[1], out_b[1])
    assert torch.equal(out[2], torch.zeros(2, dtype=out.dtype))
    assert torch.equal(lse, torch.tensor([0.5, 1.5, -inf], dtype=torch.float64))
    (out.sum() + lse[:2].sum()).backward()
    for t in inputs:
        assert not t.grad.isnan().any()


@pytest.mark.parametrize("empty_side", [None, "a", "b"])
def test_merge_gradients_match_full_attention(empty_side):
    """Backward through split + merge equals backward through attention over all keys."""
    gen = torch.Generator().manual_seed(23)
    q, k, v = qkv(gen, (2, 5, 4), (2, 9, 4), d_v=3, grad=True)
    mask = torch.rand(5, 9, generator=gen) < 0.7
    mask[:, [0, 8]] = True
    if empty_side == "a":
        mask[1, :4] = False  # query 1 sees no key of the first part
    elif empty_side == "b":
        mask[3, 4:] = False

    def merged(q, k, v):
        a = attention_with_lse(q, k[:, :4], v[:, :4], mask[:, :4])
        b = attention_with_lse(q, k[:, 4:], v[:, 4:], mask[:, 4:])
        return torch.cat([t.flatten() for t in merge_attention_blocks(*a, *b)])

    def full(q, k, v):
        return torch.cat([t.flatten() for t in attention_with_lse(q, k, v, mask)])

    weights = torch.linspace(-1, 1, 2 * 5 * 4, dtype=torch.float64)
    ours = torch.autograd.grad((merged(q, k, v) * weights).sum(), (q, k, v))
    theirs = torch.autograd.grad((full(q, k, v) * weights).sum(), (q, k, v))
    for g_ours, g_theirs in zip(ours, theirs):
        torch.testing.assert_close(g_ours, g_theirs, **F64)


# ------------------------------------------------------------------------ module


def _twin_modules(causal, **kwargs):
    torch.manual_seed(21)
    full = FullSelfAttention(16, 4, causal=causal).double()
    tiled = TiledSelfAttention(16, 4, causal=causal, **kwargs).double()
    tiled.load_state_dict(full.state_dict())
    return full, tiled


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("padded", [False, True])
def test_module_matches_full_self_attention(causal, padded):
    full, tiled = _twin_modules(causal, block_q=3, block_k=5)
    gen = torch.Generator().manual_seed(22)
    x = randn(gen, 3, 11, 16)
    lengths = torch.tensor([11, 6, 1])
    kpm = padding_mask(lengths) if padded else None
    out = tiled(x, key_padding_mask=kpm)
    expected = full(x, key_padding_mask=kpm)
    torch.testing.assert_close(out, expected, **F64)
    out.sum().backward()
    expected.sum().backward()
    for (name, p_full), p_tiled in zip(full.named_parameters(), tiled.parameters()):
        torch.testing.assert_close(p_tiled.grad, p_full.grad, **F64, msg=name)


def test_module_repr_and_defaults():
    module = TiledSelfAttention(8, 2)
    assert (module.block_q, module.block_k) == (256, 1024)
    assert TiledSelfAttention.supports_causal
    assert "block_q=256, block_k=1024" in repr(module)


# -------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("bad", [0, -3, 2.0, True, None, "4"])
@pytest.mark.parametrize("name", ["block_q", "block_k"])
def test_bad_block_sizes(name, bad):
    q = torch.randn(4, 3)
    with pytest.raises(ValueError, match=f"{name} must be a positive integer"):
        tiled_attention(q, q, q, **{name: bad})
    with pytest.raises(ValueError, match=f"{name} must be a positive integer"):
        TiledSelfAttention(8, 2, **{name: bad})


def test_bad_shapes():
    q = torch.randn(2, 5, 8)
    with pytest.raises(ValueError, match="same last dimension d_k"):
        tiled_attention(q, torch.randn(2, 6, 4), torch.randn(2, 6, 8))
    with pytest.raises(ValueError, match="same number of keys n_k"):
        tiled_attention(q, torch.randn(2, 6, 8), torch.randn(2, 7, 8))
    with pytest.raises(ValueError, match="must broadcast"):
        tiled_attention(q, torch.randn(3, 6, 8), torch.randn(3, 6, 8))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        tiled_attention(torch.randn(8), torch.randn(6, 8), torch.randn(6, 8))
    with pytest.raises(TypeError, match="share one dtype"):
        tiled_attention(q, q.double(), q)
    with pytest.raises(TypeError, match="floating-point"):
        tiled_attention(q.long(), q.long(), q.long())


def test_bad_masks():
    q = torch.randn(2, 5, 8)
    k = torch.randn(2, 6, 8)
    with pytest.raises(TypeError, match="mask must be bool"):
        tiled_attention(q, k, k, torch.ones(5, 6, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"mask of shape \(6, 5\) cannot broadcast"):
        tiled_attention(q, k, k, torch.ones(6, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="cannot broadcast"):
        tiled_attention(q, k, k, torch.ones(3, 5, 6, dtype=torch.bool))  # would enlarge
    with pytest.raises(TypeError, match="causal must be True or False"):
        tiled_attention(q, k, k, causal=1)
    with pytest.raises(ValueError, match="scale must be a positive"):
        tiled_attention(q, k, k, scale=-1.0)
    with pytest.raises(TypeError, match="mask must be bool"):
        attention_with_lse(q, k, k, torch.ones(5, 6, dtype=torch.int64))


def test_module_bad_padding_mask():
    module = TiledSelfAttention(8, 2)
    with pytest.raises(ValueError, match="key_padding_mask must be a bool tensor"):
        module(torch.randn(2, 5, 8), key_padding_mask=torch.ones(2, 5))

"""Tests of Linformer attention (Wang et al., 2020): ``softmax(q (E k)^T * scale) (F v)``.

References are written out in float64 here; with ``E = F = I`` Linformer *is* full
attention, which is compared with :func:`attnkit.scaled_dot_product_attention`.
"""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode

from attnkit import scaled_dot_product_attention
from attnkit.efficient.linformer import LinformerSelfAttention, linformer_attention

HYPOTHESIS = settings(max_examples=25, deadline=None, derandomize=True, database=None)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def randn(g, *shape, dtype=torch.float64):
    return torch.randn(*shape, generator=g, dtype=dtype)


def reference_linformer(q, k, v, e, f, scale=None):
    """float64 ``softmax(q (E k)^T * scale) (F v)`` written out."""
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    k_proj, v_proj = e @ k, f @ v  # (..., proj_len, d), (..., proj_len, d_v)
    weights = torch.softmax((q @ k_proj.transpose(-2, -1)) * scale, dim=-1)
    return weights @ v_proj


# ----------------------------------------------------------------- the functional core


@HYPOTHESIS
@given(
    seed=st.integers(0, 2**16),
    n=st.integers(1, 20),
    d=st.integers(1, 6),
    d_v=st.integers(1, 5),
    batch=st.sampled_from([(), (2,), (2, 3)]),
)
def test_property_identity_projections_give_full_attention(seed, n, d, d_v, batch):
    """proj_len = n and E = F = I: exactly softmax attention, forward and gradients."""
    g = gen(seed)
    eye = torch.eye(n, dtype=torch.float64)
    inputs = [randn(g, *batch, n, d), randn(g, *batch, n, d), randn(g, *batch, n, d_v)]
    results = []
    for fn in (
        lambda q, k, v: linformer_attention(q, k, v, eye, eye),
        scaled_dot_product_attention,
    ):
        q, k, v = (t.clone().requires_grad_() for t in inputs)
        out = fn(q, k, v)
        out.backward(torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape))
        results.append((out, q.grad, k.grad, v.grad))
    for ours, theirs in zip(*results):
        torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)


@HYPOTHESIS
@given(
    seed=st.integers(0, 2**16),
    n=st.integers(1, 24),
    n_q=st.integers(1, 10),
    proj_len=st.integers(1, 8),
    per_head=st.booleans(),
)
def test_property_matches_written_out_reference(seed, n, n_q, proj_len, per_head):
    g = gen(seed)
    q, k, v = randn(g, 2, 3, n_q, 4), randn(g, 2, 3, n, 4), randn(g, 2, 3, n, 5)
    shape = (3, proj_len, n) if per_head else (proj_len, n)  # per head: broadcasts over B
    e, f = randn(g, *shape) / proj_len**0.5, randn(g, *shape) / proj_len**0.5
    out = linformer_attention(q, k, v, e, f)
    assert out.shape == (2, 3, n_q, 5)
    torch.testing.assert_close(out, reference_linformer(q, k, v, e, f), rtol=1e-10, atol=1e-12)


def test_custom_scale():
    g = gen(1)
    q, k, v = randn(g, 6, 4), randn(g, 10, 4), randn(g, 10, 3)
    e, f = randn(g, 5, 10), randn(g, 5, 10)
    out = linformer_attention(q, k, v, e, f, scale=0.3)
    torch.testing.assert_close(out, reference_linformer(q, k, v, e, f, 0.3), rtol=1e-10, atol=1e-12)
    assert not torch.allclose(out, linformer_attention(q, k, v, e, f))


def test_gradcheck_including_the_projections():
    g = gen(2)
    q, k, v = randn(g, 2, 4, 3), randn(g, 2, 6, 3), randn(g, 2, 6, 2)
    e, f = randn(g, 3, 6), randn(g, 3, 6)
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])[:, None, :]  # (B, 1, n)
    inputs = [t.requires_grad_() for t in (q, k, v, e, f)]

    def fn(q, k, v, e, f):
        return linformer_attention(q, k, v, e, f, mask=mask, scale=0.8)

    assert torch.autograd.gradcheck(fn, inputs)


def test_padded_keys_are_zeroed_before_the_projection():
    """With a mask, padded keys/values count as zero rows: changing them changes nothing."""
    g = gen(3)
    B, H, n, d = 2, 2, 9, 4
    q, k, v = randn(g, B, H, n, d), randn(g, B, H, n, d), randn(g, B, H, n, 3)
    e, f = randn(g, 4, n), randn(g, 4, n)
    lengths = torch.tensor([9, 6])
    real = torch.arange(n) < lengths[:, None]  # (B, n)
    mask = real[:, None, None, :]  # (B, 1, 1, n)
    out = linformer_attention(q, k, v, e, f, mask=mask)
    zeroed = real[:, None, :, None]  # (B, 1, n, 1)
    expected = reference_linformer(q, k * zeroed, v * zeroed, e, f)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-12)
    junk = linformer_attention(
        q, torch.where(zeroed, k, 50.0), torch.where(zeroed, v, -3.0), e, f, mask=mask
    )
    torch.testing.assert_close(junk, out, rtol=1e-10, atol=1e-12)
    # Right padding is the paper's fixed-length setting: the same as dropping the padded
    # keys and the matching columns of E and F.
    short = linformer_attention(q[1], k[1, :, :6], v[1, :, :6], e[:, :6], f[:, :6])
    torch.testing.assert_close(out[1], short, rtol=1e-10, atol=1e-12)


def test_zeroing_padded_keys_is_not_excluding_them():
    """E = F = I: a zeroed key keeps score 0 and weight exp(0) / Z, unlike a masked key."""
    g = gen(4)
    n = 6
    q, k, v = randn(g, n, 3), randn(g, n, 3), randn(g, n, 2)
    real = torch.tensor([True, True, True, True, False, False])
    eye = torch.eye(n, dtype=torch.float64)
    out = linformer_attention(q, k, v, eye, eye, mask=real[None, :])
    zero_keys = scaled_dot_product_attention(q, k * real[:, None], v * real[:, None])
    torch.testing.assert_close(out, zero_keys, rtol=1e-10, atol=1e-12)
    excluded = scaled_dot_product_attention(q, k, v, real[None, :])
    assert (out - excluded).abs().max() > 0.05


def test_all_keys_padded_gives_zeros_and_finite_gradients():
    g = gen(5)
    q, k, v = (randn(g, 2, 5, 3).requires_grad_() for _ in range(3))
    e = randn(g, 2, 5)
    mask = torch.tensor([[False] * 5, [True] * 5])[:, None, :]
    out = linformer_attention(q, k, v, e, e, mask=mask)
    assert torch.equal(out[0], torch.zeros(5, 3, dtype=torch.float64))
    out.sum().backward()
    for t in (q, k, v):
        assert torch.isfinite(t.grad).all()
    assert torch.equal(k.grad[0], torch.zeros(5, 3, dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_half_precision_is_computed_in_float32(dtype):
    g = gen(6)
    q, k, v = (randn(g, 2, 16, 8, dtype=torch.float32) for _ in range(3))
    e, f = randn(g, 4, 16, dtype=torch.float32) / 2, randn(g, 4, 16, dtype=torch.float32) / 2
    expected = linformer_attention(q, k, v, e, f)
    out = linformer_attention(q.to(dtype), k.to(dtype), v.to(dtype), e.to(dtype), f.to(dtype))
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), expected, rtol=0.03, atol=0.03)


BAD_CALLS = {
    "e_width": (
        dict(e_proj=torch.ones(3, 7)),
        ValueError,
        r"e_proj must have shape \(proj_len, n\) with n = 8",
    ),
    "f_width": (
        dict(f_proj=torch.ones(3, 5)),
        ValueError,
        r"f_proj must have shape \(proj_len, n\)",
    ),
    "proj_lengths": (dict(f_proj=torch.ones(4, 8)), ValueError, r"same length proj_len"),
    "e_1d": (dict(e_proj=torch.ones(8)), ValueError, r"e_proj must have at least 2 dimensions"),
    "e_int": (
        dict(e_proj=torch.ones(3, 8, dtype=torch.long)),
        TypeError,
        r"e_proj must be a floating",
    ),
    "e_batch": (dict(e_proj=torch.ones(5, 3, 8)), ValueError, r"leading \(batch\) dimensions"),
    "mask_float": (
        dict(mask=torch.ones(2, 1, 8)),
        ValueError,
        r"mask must be a bool key padding mask",
    ),
    "mask_shape": (
        dict(mask=torch.ones(2, 8, 8, dtype=torch.bool)),
        ValueError,
        r"\(\.\.\., 1, n\) = \(2, 1, 8\)",
    ),
    "scale": (dict(scale=0.0), ValueError, r"scale must be a positive"),
    "qk_width": (
        dict(k=torch.ones(2, 8, 3)),
        ValueError,
        r"q and k must have the same last dimension",
    ),
    "kv_length": (
        dict(v=torch.ones(2, 7, 2)),
        ValueError,
        r"k and v must have the same number of keys",
    ),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_bad_input_raises_naming_the_argument(case):
    change, error, message = BAD_CALLS[case]
    args = dict(
        q=torch.ones(2, 5, 4),
        k=torch.ones(2, 8, 4),
        v=torch.ones(2, 8, 2),
        e_proj=torch.ones(3, 8),
        f_proj=torch.ones(3, 8),
    )
    args.update(change)
    positional = [args.pop(key) for key in ("q", "k", "v", "e_proj", "f_proj")]
    with pytest.raises(error, match=message):
        linformer_attention(*positional, **args)


# ---------------------------------------------------------------------- the nn.Module


def _heads(x, H):
    B, n, D = x.shape
    return x.reshape(B, n, H, D // H).transpose(1, 2)  # (B, H, n, D / H)


def _module_reference(module, x, mask=None):
    """The layer written out with its own weights and E[:, :n], F[:, :n]."""
    n = x.shape[1]
    H = module.num_heads
    q, k, v = (_heads(p(x), H) for p in (module.q_proj, module.k_proj, module.v_proj))
    if mask is not None:
        k, v = k * mask[:, None, :, None], v * mask[:, None, :, None]
    e = module.e_proj[:, :n]
    f = e if module.f_proj is None else module.f_proj[:, :n]
    out = reference_linformer(q, k, v, e, f)  # (B, H, n, D / H)
    return module.out_proj(out.transpose(1, 2).reshape(x.shape))


@pytest.mark.parametrize("share_kv", [False, True])
@pytest.mark.parametrize("n", [12, 7])
def test_module_matches_its_definition(share_kv, n):
    """Full length and a shorter input (which uses the first n columns of E and F)."""
    torch.manual_seed(0)
    module = LinformerSelfAttention(16, 4, seq_len=12, proj_len=5, share_kv=share_kv).double()
    x = randn(gen(7), 2, n, 16)
    mask = torch.ones(2, n, dtype=torch.bool)
    mask[1, n - 3 :] = False
    out = module(x, key_padding_mask=mask)
    assert out.shape == (2, n, 16)
    torch.testing.assert_close(out, _module_reference(module, x, mask), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(module(x), _module_reference(module, x), rtol=1e-10, atol=1e-12)


def test_module_parameters_and_initialisation():
    torch.manual_seed(1)
    module = LinformerSelfAttention(32, 4, seq_len=400, proj_len=100)
    assert module.e_proj.shape == module.f_proj.shape == (100, 400)
    assert not torch.equal(module.e_proj, module.f_proj)
    # N(0, 1 / proj_len): 40,000 samples pin the standard deviation to within about 1%.
    for p in (module.e_proj, module.f_proj):
        assert abs(p.std().item() - 0.1) < 0.003 and abs(p.mean().item()) < 0.002
    shared = LinformerSelfAttention(32, 4, seq_len=400, proj_len=100, share_kv=True)
    assert shared.f_proj is None
    names = {name for name, _ in shared.named_parameters()}
    assert "e_proj" in names and "f_proj" not in names
    assert (
        sum(p.numel() for p in module.parameters()) - sum(p.numel() for p in shared.parameters())
        == 100 * 400
    )
    assert "seq_len=400, proj_len=100, share_kv=True" in repr(shared)


def test_module_projections_are_trained():
    torch.manual_seed(2)
    module = LinformerSelfAttention(8, 2, seq_len=6, proj_len=3)
    module(torch.randn(2, 6, 8)).square().sum().backward()
    assert module.e_proj.grad.abs().sum() > 0 and module.f_proj.grad.abs().sum() > 0


def test_module_rejects_long_inputs_and_causal():
    module = LinformerSelfAttention(8, 2, seq_len=6, proj_len=3)
    with pytest.raises(ValueError, match=r"at most seq_len = 6 tokens .* got n = 7"):
        module(torch.randn(1, 7, 8))
    assert LinformerSelfAttention.supports_causal is False
    with pytest.raises(TypeError):
        LinformerSelfAttention(8, 2, seq_len=6, proj_len=3, causal=True)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(seq_len=0, proj_len=3), ValueError, r"seq_len must be a positive integer"),
        (dict(seq_len=6, proj_len=-1), ValueError, r"proj_len must be a positive integer"),
        (dict(seq_len=6, proj_len=2.5), ValueError, r"proj_len must be a positive integer"),
        (dict(seq_len=6, proj_len=3, share_kv=1), TypeError, r"share_kv must be True or False"),
    ],
)
def test_module_rejects_bad_hyperparameters(kwargs, error, message):
    with pytest.raises(error, match=message):
        LinformerSelfAttention(8, 2, **kwargs)


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


def test_no_intermediate_is_n_by_n():
    """Forward and backward of the layer at n = 300, proj_len = 8: nothing is n x n."""
    n = 300
    module = LinformerSelfAttention(16, 2, seq_len=n, proj_len=8)
    x = torch.randn(2, n, 16, requires_grad=True)
    mask = torch.rand(2, n) < 0.9
    recorder = _ShapeRecorder()
    with recorder:
        module(x, key_padding_mask=mask).sum().backward()
    big = [s for s in recorder.shapes if sum(size >= n // 2 for size in s) >= 2]
    assert recorder.shapes and not big, big[:5]

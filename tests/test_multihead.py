"""Tests of attnkit.multihead: MultiHeadAttention, grouped-query heads, KVCache, from_torch.

Every numerical check compares against an independent reference: ``torch.nn.
MultiheadAttention``, ``torch.nn.functional.scaled_dot_product_attention`` (with
``enable_gqa=True``), or the explicit per-head float64 computation ``reference_mha``
written out below from the module's weight matrices, never attnkit against itself.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from attnkit.multihead import KVCache, MultiHeadAttention

HYPOTHESIS = settings(max_examples=40, deadline=None, derandomize=True, database=None)
E, H = 16, 4  # d_model and number of query heads of most tests; head_dim = 4


# --------------------------------------------------------------------------- helpers


def randn(gen, *shape, dtype=torch.float64):
    """Standard normal numbers drawn in float64 from ``gen`` and rounded to ``dtype``."""
    return torch.randn(*shape, generator=gen, dtype=torch.float64).to(dtype)


def randomize_(module, seed):
    """Overwrite every parameter with seeded random values (biases too, so they matter)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            scale = p.shape[-1] ** -0.5 if p.dim() == 2 else 0.5
            p.copy_(randn(gen, *p.shape, dtype=p.dtype) * scale)
    return module


def make_mha(seed=0, dtype=torch.float64, **kwargs):
    """An attnkit module in eval mode with random weights and biases."""
    kwargs = {"d_model": E, "num_heads": H, **kwargs}
    return randomize_(MultiHeadAttention(**kwargs).to(dtype), seed).eval()


def rope(x, positions, base=100.0):
    """Rotary position embedding of ``x (..., T, D)`` at integer ``positions (T,)``."""
    d = x.shape[-1]
    inv_freq = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)  # (D/2,)
    angle = positions.double()[:, None] * inv_freq  # (T, D/2)
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2)


def reference_mha(module, query, key=None, value=None, mask=None, positions=None):
    """Explicit float64 multi-head attention with the weights of ``module``.

    Query head ``h`` uses rows ``h*D:(h+1)*D`` of the query projection and key/value head
    ``g = h // (H / H_kv)``, i.e. rows ``g*D:(g+1)*D`` of the key and value projections.
    ``mask`` is ``None`` or 4-D ``(B|1, H|1, T_q, T_k)``: bool ``True`` = may attend, or
    float, added to the scores. ``positions = (q_pos, k_pos)`` applies ``rope`` to the
    per-head queries and keys. Rows with no allowed key get weight 0.

    Returns ``(output (B, T_q, d_model), weights (B, H, T_q, T_k))``.
    """
    key = query if key is None else key
    value = key if value is None else value
    num_heads, num_kv = module.num_heads, module.num_kv_heads
    d = module.d_model // num_heads

    def project(linear, x, head):
        rows = slice(head * d, (head + 1) * d)
        out = x.double() @ linear.weight.detach().double()[rows].T
        if linear.bias is not None:
            out = out + linear.bias.detach().double()[rows]
        return out  # (B, T, D)

    heads, weights = [], []
    for h in range(num_heads):
        g = h // (num_heads // num_kv)
        q = project(module.q_proj, query, h)
        k = project(module.k_proj, key, g)
        v = project(module.v_proj, value, g)
        if positions is not None:
            q, k = rope(q, positions[0]), rope(k, positions[1])
        scores = q @ k.transpose(-2, -1) / math.sqrt(d)  # (B, T_q, T_k)
        if mask is not None:
            m = mask[:, h if mask.shape[1] > 1 else 0]  # (B|1, T_q, T_k)
            if m.dtype == torch.bool:
                scores = scores.masked_fill(~m, -math.inf)
            else:
                scores = scores + m.double()
        w = torch.softmax(scores, dim=-1)
        allowed = torch.isfinite(scores).any(dim=-1, keepdim=True)
        w = torch.where(allowed, w, torch.zeros_like(w))
        heads.append(w @ v)
        weights.append(w)
    concat = torch.cat(heads, dim=-1)  # (B, T_q, H * D)
    out = concat @ module.out_proj.weight.detach().double().T
    if module.out_proj.bias is not None:
        out = out + module.out_proj.bias.detach().double()
    return out, torch.stack(weights, dim=1)


def causal(t_q, t_k=None):
    """Bool (T_q, T_k), True = may attend; queries are the last T_q positions."""
    t_k = t_q if t_k is None else t_k
    return torch.ones(t_q, t_k, dtype=torch.bool).tril(diagonal=t_k - t_q)


def close_f64(actual, expected):
    torch.testing.assert_close(actual, expected.to(actual.dtype), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------ agreement with torch

TORCH_TOL = {torch.float32: 1e-6, torch.float64: 1e-12}
DTYPES = [torch.float32, torch.float64]


def assert_matches_torch(ours, theirs):
    """attnkit vs torch.nn.MultiheadAttention: same dtype, same shape, within TORCH_TOL.

    Outputs are O(1) here, so one number serves as relative and absolute tolerance:
    only the order of the floating-point operations differs.
    """
    assert ours.dtype == theirs.dtype
    assert ours.shape == theirs.shape
    tol = TORCH_TOL[ours.dtype]
    torch.testing.assert_close(ours, theirs, rtol=tol, atol=tol)


def torch_mha(dtype, *, batch_first=True, bias=True, kdim=None, vdim=None, seed=0):
    m = nn.MultiheadAttention(
        E, H, bias=bias, kdim=kdim, vdim=vdim, batch_first=batch_first, dtype=dtype
    )
    return randomize_(m, seed).eval()


def run_torch(m, query, key, value, **kwargs):
    """Call torch's module on batch-first inputs (transposing for batch_first=False).

    The same tensor passed twice stays the same object, so torch still sees
    self-attention (``query is key is value``) and may take its fast path.
    """
    if not m.batch_first:
        seq_first = {}
        for t in (query, key, value):
            seq_first.setdefault(id(t), t.transpose(0, 1))
        query, key, value = (seq_first[id(t)] for t in (query, key, value))
    with torch.no_grad():
        out, weights = m(query, key, value, **kwargs)
    return (out if m.batch_first else out.transpose(0, 1)), weights


def inputs(kind, dtype, seed, b=2, t_q=5, t_k=7):
    """(query, key, value) for self-attention or cross-attention (kdim=5, vdim=3)."""
    gen = torch.Generator().manual_seed(seed)
    query = randn(gen, b, t_q, E, dtype=dtype)
    if kind == "self":
        return query, query, query
    kdim, vdim = (5, 3) if kind == "cross_kvdim" else (E, E)
    return query, randn(gen, b, t_k, kdim, dtype=dtype), randn(gen, b, t_k, vdim, dtype=dtype)


KV_DIMS = {"self": (None, None), "cross": (None, None), "cross_kvdim": (5, 3)}


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("kind", list(KV_DIMS))
@pytest.mark.parametrize("batch_first", [True, False], ids=["batch_first", "seq_first"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_from_torch_matches_torch(dtype, batch_first, kind, bias):
    kdim, vdim = KV_DIMS[kind]
    m = torch_mha(dtype, batch_first=batch_first, bias=bias, kdim=kdim, vdim=vdim, seed=1)
    assert m._qkv_same_embed_dim == (kind != "cross_kvdim")  # separate q/k/v weights
    ours = MultiHeadAttention.from_torch(m).eval()
    assert next(ours.parameters()).dtype == dtype
    assert (ours.q_proj.bias is not None) == bias
    query, key, value = inputs(kind, dtype, seed=2)
    expected, _ = run_torch(m, query, key, value, need_weights=False)
    out, weights = ours(query, None if kind == "self" else key, None if kind == "self" else value)
    assert weights is None
    assert_matches_torch(out, expected)


def _masks(mask_kind, gen, dtype, b=2, t_q=5, t_k=7):
    """(attnkit kwargs, torch kwargs) for one kind of mask; no query row is fully masked."""
    lengths = torch.tensor([t_k, 3])
    real = torch.arange(t_k)[None, :] < lengths[:, None]  # (B, T_k), True = real token
    allowed = torch.rand(t_q, t_k, generator=gen) < 0.6
    allowed[:, 0] = True
    per_head = torch.rand(b, H, t_q, t_k, generator=gen) < 0.6
    per_head[..., 0] = True
    additive = randn(gen, t_q, t_k, dtype=dtype).masked_fill(~allowed, -math.inf)
    additive_per_head = randn(gen, b, H, t_q, t_k, dtype=dtype)
    if mask_kind == "key_padding":
        return {"key_padding_mask": real}, {"key_padding_mask": ~real}
    if mask_kind == "bool":
        return {"attn_mask": allowed}, {"attn_mask": ~allowed}
    if mask_kind == "float":
        return {"attn_mask": additive}, {"attn_mask": additive}
    if mask_kind == "bool_per_head":  # torch wants (B * H, T_q, T_k), batch-major
        return {"attn_mask": per_head}, {"attn_mask": ~per_head.reshape(b * H, t_q, t_k)}
    if mask_kind == "float_per_head":
        flat = additive_per_head.reshape(b * H, t_q, t_k)
        return {"attn_mask": additive_per_head}, {"attn_mask": flat}
    if mask_kind == "bool_and_key_padding":
        return (
            {"attn_mask": allowed, "key_padding_mask": real},
            {"attn_mask": ~allowed, "key_padding_mask": ~real},
        )
    raise AssertionError(mask_kind)


MASK_KINDS = [
    "key_padding",
    "bool",
    "float",
    "bool_per_head",
    "float_per_head",
    "bool_and_key_padding",
]


@pytest.mark.parametrize("mask_kind", MASK_KINDS)
@pytest.mark.parametrize("batch_first", [True, False], ids=["batch_first", "seq_first"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_from_torch_matches_torch_with_masks(dtype, batch_first, mask_kind):
    gen = torch.Generator().manual_seed(3)
    ours_kwargs, torch_kwargs = _masks(mask_kind, gen, dtype)
    m = torch_mha(dtype, batch_first=batch_first, seed=4)
    ours = MultiHeadAttention.from_torch(m).eval()
    query, key, value = inputs("cross", dtype, seed=5)
    expected, _ = run_torch(m, query, key, value, need_weights=False, **torch_kwargs)
    out, _ = ours(query, key, value, **ours_kwargs)
    assert_matches_torch(out, expected)


@pytest.mark.parametrize("mask_kind", ["none", "key_padding", "bool_per_head"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_per_head_weights_match_torch(dtype, mask_kind):
    """need_weights=True gives torch's average_attn_weights=False weights (B, H, T_q, T_k)."""
    gen = torch.Generator().manual_seed(6)
    ours_kwargs, torch_kwargs = ({}, {}) if mask_kind == "none" else _masks(mask_kind, gen, dtype)
    m = torch_mha(dtype, seed=7)
    ours = MultiHeadAttention.from_torch(m).eval()
    query, key, value = inputs("cross", dtype, seed=8)
    expected, expected_weights = run_torch(
        m, query, key, value, need_weights=True, average_attn_weights=False, **torch_kwargs
    )
    out, weights = ours(query, key, value, need_weights=True, **ours_kwargs)
    assert weights.shape == (2, H, 5, 7)
    assert_matches_torch(out, expected)
    assert_matches_torch(weights, expected_weights)
    _, averaged = run_torch(m, query, key, value, need_weights=True, **torch_kwargs)
    assert_matches_torch(weights.mean(dim=1), averaged)


@pytest.mark.parametrize("torch_hint", [False, True], ids=["mask_only", "mask_and_hint"])
@pytest.mark.parametrize("batch_first", [True, False], ids=["batch_first", "seq_first"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_is_causal_matches_torch_with_explicit_causal_mask(dtype, batch_first, torch_hint):
    m = torch_mha(dtype, batch_first=batch_first, seed=9)
    ours = MultiHeadAttention.from_torch(m).eval()
    x, _, _ = inputs("self", dtype, seed=10, t_q=6)
    disallowed = ~causal(6)  # torch's bool attn_mask: True = may NOT attend
    expected, _ = run_torch(m, x, x, x, attn_mask=disallowed, is_causal=torch_hint)
    out, weights = ours(x, is_causal=True, need_weights=True)
    assert_matches_torch(out, expected)
    assert torch.all(weights[..., disallowed] == 0)
    # and the causal mask matters: without it the first position sees the future
    assert not torch.allclose(ours(x)[0][:, 0], expected[:, 0])


def test_from_torch_copies_hyperparameters():
    m = nn.MultiheadAttention(E, H, dropout=0.25, kdim=5, vdim=3, dtype=torch.float64)
    ours = MultiHeadAttention.from_torch(m)
    assert (ours.d_model, ours.num_heads, ours.num_kv_heads, ours.head_dim) == (E, H, H, 4)
    assert (ours.kdim, ours.vdim, ours.dropout) == (5, 3, 0.25)
    assert ours.k_proj.weight.shape == (E, 5) and ours.v_proj.weight.shape == (E, 3)
    assert all(p.dtype == torch.float64 for p in ours.parameters())


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: nn.Linear(4, 4), TypeError, r"m must be a torch\.nn\.MultiheadAttention"),
        (lambda: MultiHeadAttention(E, H), TypeError, r"got MultiHeadAttention"),
        (lambda: nn.MultiheadAttention(E, H, add_bias_kv=True), ValueError, r"add_bias_kv"),
        (lambda: nn.MultiheadAttention(E, H, add_zero_attn=True), ValueError, r"add_zero_attn"),
    ],
    ids=["linear", "attnkit_module", "add_bias_kv", "add_zero_attn"],
)
def test_from_torch_rejects(make, error, message):
    with pytest.raises(error, match=message):
        MultiHeadAttention.from_torch(make())


# ---------------------------------------------------------------- grouped-query heads


def sdpa_gqa_reference(module, x, *, is_causal=False, attn_mask=None):
    """torch's scaled_dot_product_attention with enable_gqa=True and the module's weights."""
    b, t, _ = x.shape
    num_heads, num_kv, d = module.num_heads, module.num_kv_heads, module.head_dim
    with torch.no_grad():
        q = module.q_proj(x).view(b, t, num_heads, d).transpose(1, 2)  # (B, H, T, D)
        k = module.k_proj(x).view(b, t, num_kv, d).transpose(1, 2)  # (B, H_kv, T, D)
        v = module.v_proj(x).view(b, t, num_kv, d).transpose(1, 2)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, is_causal=is_causal, enable_gqa=True
        )
        return module.out_proj(out.transpose(1, 2).reshape(b, t, num_heads * d))


@pytest.mark.parametrize("mask", ["none", "is_causal", "causal_mask", "random_mask"])
@pytest.mark.parametrize("num_kv_heads", [1, 2, 4])
def test_gqa_matches_torch_sdpa_enable_gqa(num_kv_heads, mask):
    module = make_mha(seed=11, num_kv_heads=num_kv_heads)
    gen = torch.Generator().manual_seed(12)
    x = randn(gen, 3, 6, E)
    random = torch.rand(3, 1, 6, 6, generator=gen) < 0.6
    random[..., 0] = True
    allowed = {  # 4-D (B|1, 1, T, T), True = may attend
        "none": None,
        "is_causal": causal(6)[None, None],
        "causal_mask": causal(6)[None, None],
        "random_mask": random,
    }[mask]
    if mask == "is_causal":
        expected = sdpa_gqa_reference(module, x, is_causal=True)
        out, _ = module(x, is_causal=True)
    else:
        expected = sdpa_gqa_reference(module, x, attn_mask=allowed)
        out, _ = module(x, attn_mask=allowed)
    close_f64(out, expected)
    close_f64(out, reference_mha(module, x, mask=allowed)[0])  # the per-head loop agrees


def test_gqa_query_heads_share_kv_heads():
    """With H_kv = 2 and H = 4, query heads 0, 1 use kv head 0; heads 2, 3 use kv head 1.

    Give all query heads the same weights: heads sharing a kv head then have identical
    attention weights, and heads in different groups (different kv weights) do not.
    """
    module = make_mha(seed=13, num_kv_heads=2)
    with torch.no_grad():
        w = module.q_proj.weight[:4].clone()
        module.q_proj.weight.copy_(w.repeat(H, 1))
        module.q_proj.bias.copy_(module.q_proj.bias[:4].repeat(H))
    x = randn(torch.Generator().manual_seed(14), 2, 5, E)
    _, weights = module(x, need_weights=True)
    # Equal up to float64 rounding: the math library may take a different code path for
    # another head's slice of the batched product (bit-equality held on some CPUs only).
    torch.testing.assert_close(weights[:, 0], weights[:, 1], rtol=0, atol=1e-12)
    torch.testing.assert_close(weights[:, 2], weights[:, 3], rtol=0, atol=1e-12)
    assert not torch.allclose(weights[:, 0], weights[:, 2])


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("num_kv_heads", [1, 2, 4])
def test_gqa_kv_parameters_shrink(num_kv_heads, bias):
    d_model, num_heads, kdim, vdim = 32, 8, 12, 20
    head_dim = d_model // num_heads
    mha = MultiHeadAttention(d_model, num_heads, bias=bias, kdim=kdim, vdim=vdim)
    gqa = MultiHeadAttention(
        d_model, num_heads, num_kv_heads=num_kv_heads, bias=bias, kdim=kdim, vdim=vdim
    )

    def count(linear):
        return sum(p.numel() for p in linear.parameters())

    kv_width = num_kv_heads * head_dim
    assert count(gqa.k_proj) == kdim * kv_width + bias * kv_width
    assert count(gqa.v_proj) == vdim * kv_width + bias * kv_width
    ratio = num_heads // num_kv_heads
    assert count(mha.k_proj) == ratio * count(gqa.k_proj)
    assert count(mha.v_proj) == ratio * count(gqa.v_proj)
    for name in ("q_proj", "out_proj"):  # untouched
        assert count(getattr(gqa, name)) == d_model * d_model + bias * d_model


# ---------------------------------------------------------------------- KV cache


def chunks(t, size):
    return [slice(s, min(s + size, t)) for s in range(0, t, size)]


@pytest.mark.parametrize("chunk", [1, 3], ids=["one_at_a_time", "chunks_of_3"])
@pytest.mark.parametrize("num_kv_heads", [1, 2, 4])
def test_cache_decoding_equals_full_causal_computation(num_kv_heads, chunk):
    module = make_mha(seed=15, num_kv_heads=num_kv_heads)
    b, t, d = 2, 7, module.head_dim
    x = randn(torch.Generator().manual_seed(16), b, t, E)
    expected, _ = reference_mha(module, x, mask=causal(t)[None, None])
    cache = KVCache()
    assert len(cache) == 0 and cache.nbytes == 0
    outs = []
    for part in chunks(t, chunk):
        out, _ = module(x[:, part], is_causal=True, cache=cache)
        outs.append(out)
        seen = part.stop
        assert len(cache) == seen
        assert cache.k.shape == cache.v.shape == (b, num_kv_heads, seen, d)
        assert cache.nbytes == 2 * b * num_kv_heads * seen * d * 8  # float64
    close_f64(torch.cat(outs, dim=1), expected)
    # cached keys/values are the projections of the whole sequence, kv head g = rows g*D:...
    for g in range(num_kv_heads):
        rows = slice(g * d, (g + 1) * d)
        k_g = x @ module.k_proj.weight[rows].T + module.k_proj.bias[rows]
        v_g = x @ module.v_proj.weight[rows].T + module.v_proj.bias[rows]
        close_f64(cache.k[:, g], k_g)
        close_f64(cache.v[:, g], v_g)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_cache_nbytes_counts_both_tensors(dtype):
    module = make_mha(seed=17, dtype=dtype, num_kv_heads=2)
    cache = module.new_cache()
    assert isinstance(cache, KVCache) and not cache.static
    x = randn(torch.Generator().manual_seed(40), 3, 5, E, dtype=dtype)
    module(x, cache=cache, is_causal=True)
    module(x[:, :2], cache=cache, is_causal=True)
    element = torch.tensor([], dtype=dtype).element_size()
    assert len(cache) == 7
    assert cache.nbytes == 2 * 3 * 2 * 7 * 4 * element


def test_cache_with_key_padding_mask_over_past_and_present():
    """key_padding_mask covers cached positions too: (B, T_past + T_new)."""
    module = make_mha(seed=18, num_kv_heads=2)
    x = randn(torch.Generator().manual_seed(19), 2, 6, E)
    real = torch.tensor([[True] * 6, [False, True, True, True, True, True]])  # left padding
    mask = (causal(6)[None] & real[:, None, :])[:, None]  # (B, 1, T, T)
    expected, _ = reference_mha(module, x, mask=mask)
    cache = KVCache()
    out_prefix, _ = module(x[:, :4], is_causal=True, key_padding_mask=real[:, :4], cache=cache)
    out_rest = [
        module(x[:, i : i + 1], is_causal=True, key_padding_mask=real[:, : i + 1], cache=cache)[0]
        for i in (4, 5)
    ]
    close_f64(torch.cat([out_prefix, *out_rest], dim=1), expected)


class CallCounter:
    """Counts the forward calls of a submodule through a forward hook."""

    def __init__(self, module):
        self.calls = 0
        self.handle = module.register_forward_hook(self._hook)

    def _hook(self, module, args, output):
        self.calls += 1


@pytest.mark.parametrize("num_kv_heads", [1, 4])
def test_static_cache_projects_the_memory_once(num_kv_heads):
    module = make_mha(seed=20, num_kv_heads=num_kv_heads, kdim=5, vdim=3)
    gen = torch.Generator().manual_seed(21)
    memory_k, memory_v = randn(gen, 2, 9, 5), randn(gen, 2, 9, 3)
    queries = randn(gen, 2, 4, E)
    k_calls, v_calls = CallCounter(module.k_proj), CallCounter(module.v_proj)
    q_calls = CallCounter(module.q_proj)
    cache = KVCache(static=True)
    for step in range(4):
        query = queries[:, step : step + 1]
        out, _ = module(query, memory_k, memory_v, cache=cache)
        close_f64(out, reference_mha(module, query, memory_k, memory_v)[0])
        assert len(cache) == 9
        assert cache.nbytes == 2 * 2 * num_kv_heads * 9 * 4 * 8
    assert (k_calls.calls, v_calls.calls, q_calls.calls) == (1, 1, 4)
    # without a cache the memory is projected at every call
    module(queries[:, :1], memory_k, memory_v)
    assert (k_calls.calls, v_calls.calls) == (2, 2)


# ------------------------------------------------------------------------- masks


def _mask_in_shape(shape_name, full):
    """Cut ``full`` (B, H, T_q, T_k) down to one of the accepted shapes, and the 4-D
    version of that cut for the reference."""
    if shape_name == "(T_q,T_k)":
        return full[0, 0], full[:1, :1]
    if shape_name == "(B,T_q,T_k)":
        return full[:, 0], full[:, :1]
    if shape_name == "(B,H,T_q,T_k)":
        return full, full
    if shape_name == "(1,H,T_q,T_k)":
        return full[:1], full[:1]
    if shape_name == "(B,1,T_q,T_k)":
        return full[:, :1], full[:, :1]
    raise AssertionError(shape_name)


MASK_SHAPES = ["(T_q,T_k)", "(B,T_q,T_k)", "(B,H,T_q,T_k)", "(1,H,T_q,T_k)", "(B,1,T_q,T_k)"]


@pytest.mark.parametrize("dtype_kind", ["bool", "float"])
@pytest.mark.parametrize("shape_name", MASK_SHAPES)
def test_attn_mask_shapes_match_per_head_reference(shape_name, dtype_kind):
    module = make_mha(seed=22, num_kv_heads=2)
    gen = torch.Generator().manual_seed(23)
    query, key = randn(gen, 3, 5, E), randn(gen, 3, 6, E)
    if dtype_kind == "bool":
        full = torch.rand(3, H, 5, 6, generator=gen) < 0.6
        full[..., 0] = True
    else:
        full = randn(gen, 3, H, 5, 6) * 2
    mask, mask_4d = _mask_in_shape(shape_name, full)
    expected, expected_weights = reference_mha(module, query, key, mask=mask_4d)
    out, weights = module(query, key, attn_mask=mask, need_weights=True)
    close_f64(out, expected)
    close_f64(weights, expected_weights)


@pytest.mark.parametrize("how", ["bool_attn_mask", "float_attn_mask", "key_padding_mask"])
def test_fully_masked_query_row_gives_zero_attention(how):
    """A query that may see no key: attention output 0, so the module returns out_proj.bias."""
    module = make_mha(seed=24)
    gen = torch.Generator().manual_seed(25)
    query = randn(gen, 2, 4, E).requires_grad_()
    key = randn(gen, 2, 6, E).requires_grad_()
    allowed = torch.rand(4, 6, generator=gen) < 0.6
    allowed[:, 0] = True
    real = torch.ones(2, 6, dtype=torch.bool)
    if how == "key_padding_mask":
        real[1] = False  # batch element 1: every key is padding
        kwargs = {"attn_mask": allowed, "key_padding_mask": real}
        dead = (torch.tensor([1, 1, 1, 1]), torch.arange(4))  # (batch, query) pairs
    else:
        allowed[2] = False  # query 2 may attend to nothing
        mask = allowed
        if how == "float_attn_mask":
            mask = torch.zeros(4, 6, dtype=torch.float64).masked_fill(~allowed, -math.inf)
        kwargs = {"attn_mask": mask}
        dead = (torch.tensor([0, 1]), torch.tensor([2, 2]))
    out, weights = module(query, key, need_weights=True, **kwargs)
    assert torch.isfinite(out).all() and torch.isfinite(weights).all()
    bias = module.out_proj.bias.detach()
    assert torch.equal(out[dead].detach(), bias.expand(len(dead[0]), E))
    assert torch.equal(weights.transpose(1, 2)[dead], torch.zeros(len(dead[0]), H, 6))
    mask_4d = (allowed[None] & real[:, None, :])[:, None]
    close_f64(out, reference_mha(module, query, key, mask=mask_4d)[0])
    out.sum().backward()
    assert torch.isfinite(query.grad).all() and torch.isfinite(key.grad).all()
    assert torch.equal(query.grad[dead], torch.zeros(len(dead[0]), E, dtype=torch.float64))


# ---------------------------------------------------------------------- bad input


def _good():
    gen = torch.Generator().manual_seed(26)
    return randn(gen, 2, 5, E), randn(gen, 2, 7, E), randn(gen, 2, 7, E)


BAD_CALLS = {
    "query_width": (lambda q, k, v: ((q[..., :12],), {}), ValueError, r"query must have shape"),
    "key_width": (lambda q, k, v: ((q, k[..., :3], v), {}), ValueError, r"key must have shape"),
    "value_width": (lambda q, k, v: ((q, k, v[..., :3]), {}), ValueError, r"value must have"),
    "query_2d": (lambda q, k, v: ((q[0],), {}), ValueError, r"query must have at least 3 dim"),
    "key_2d": (lambda q, k, v: ((q, k[0], v), {}), ValueError, r"key must have at least 3 dim"),
    "query_4d": (lambda q, k, v: ((q[None],), {}), ValueError, r"query must have shape \(B, T"),
    "query_list": (lambda q, k, v: ((q.tolist(),), {}), TypeError, r"query must be a torch"),
    "batch_mismatch": (
        lambda q, k, v: ((q, k[:1], v[:1]), {}),
        ValueError,
        r"query \(2, 5, 16\), key \(1, 7, 16\).*batch size",
    ),
    "length_mismatch": (
        lambda q, k, v: ((q, k, v[:, :6]), {}),
        ValueError,
        r"key and value the length",
    ),
    "query_int": (lambda q, k, v: ((q.long(),), {}), TypeError, r"query must be a floating"),
    "key_int": (lambda q, k, v: ((q, k.int(), v), {}), TypeError, r"key must be a floating"),
    "query_dtype": (
        lambda q, k, v: ((q.float(),), {}),
        TypeError,
        r"query has dtype torch\.float32 but the module's parameters are torch\.float64",
    ),
    "key_padding_float": (
        lambda q, k, v: ((q, k, v), {"key_padding_mask": torch.ones(2, 7)}),
        ValueError,
        r"key_padding_mask must be bool of shape \(B, T_k\) = \(2, 7\)",
    ),
    "key_padding_shape": (
        lambda q, k, v: ((q, k, v), {"key_padding_mask": torch.ones(2, 5, dtype=torch.bool)}),
        ValueError,
        r"key_padding_mask must be bool .*got torch\.bool \(2, 5\)",
    ),
    "key_padding_3d": (
        lambda q, k, v: ((q, k, v), {"key_padding_mask": torch.ones(2, 1, 7, dtype=torch.bool)}),
        ValueError,
        r"key_padding_mask",
    ),
    "key_padding_list": (
        lambda q, k, v: ((q, k, v), {"key_padding_mask": [[True] * 7] * 2}),
        TypeError,
        r"key_padding_mask must be a torch\.Tensor",
    ),
    "attn_mask_5d": (
        lambda q, k, v: ((q, k, v), {"attn_mask": torch.ones(1, 2, H, 5, 7, dtype=torch.bool)}),
        ValueError,
        r"attn_mask must have shape \(T_q, T_k\)",
    ),
    "attn_mask_list": (
        lambda q, k, v: ((q, k, v), {"attn_mask": [[True] * 7] * 5}),
        TypeError,
        r"attn_mask must be a torch\.Tensor",
    ),
    "attn_mask_shape": (
        lambda q, k, v: ((q, k, v), {"attn_mask": torch.ones(5, 6, dtype=torch.bool)}),
        ValueError,
        r"attn_mask of shape \(1, 1, 5, 6\) cannot broadcast",
    ),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_bad_input_raises_naming_the_argument(case):
    make, error, message = BAD_CALLS[case]
    args, kwargs = make(*_good())
    with pytest.raises(error, match=message):
        make_mha()(*args, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"d_model": 10, "num_heads": 3}, r"d_model=10 must be divisible by num_heads=3"),
        ({"num_kv_heads": 3}, r"num_heads=4 must be a multiple of num_kv_heads=3"),
        ({"num_kv_heads": 8}, r"num_heads=4 must be a multiple of num_kv_heads=8"),
        ({"num_kv_heads": 0}, r"num_kv_heads must be a positive integer"),
        ({"num_heads": 0}, r"num_heads must be a positive integer"),
        ({"d_model": 0}, r"d_model must be a positive integer"),
        ({"kdim": 0}, r"kdim must be a positive integer"),
        ({"vdim": 2.5}, r"vdim must be a positive integer"),
        ({"dropout": 1.0}, r"dropout must be a number in \[0, 1\)"),
    ],
)
def test_constructor_rejects_bad_hyperparameters(kwargs, message):
    kwargs = {"d_model": E, "num_heads": H, **kwargs}
    with pytest.raises(ValueError, match=message):
        MultiHeadAttention(**kwargs)


# ------------------------------------------------------------------------ dropout


def test_eval_mode_is_deterministic_and_uses_no_dropout():
    module = make_mha(seed=27, dropout=0.5)
    x = randn(torch.Generator().manual_seed(28), 2, 5, E)
    torch.manual_seed(0)
    first, second = module(x)[0], module(x)[0]
    assert torch.equal(first, second)
    close_f64(first, reference_mha(module, x)[0])


def test_train_mode_dropout_is_random_and_unbiased():
    """Dropout on the attention weights, then the linear out_proj: E[output] = eval output.

    Each weight w_hij becomes w_hij * m / (1 - p) with m ~ Bernoulli(1 - p), independently,
    so Var[out_ie] = p / (1 - p) * sum_hj w_hij^2 u_hje^2, where u_hj = W_o[:, head h] v_hj
    is value j of head h after the output projection. The sample mean over n copies must
    lie within 5 standard errors of the eval output.
    """
    p, n, t = 0.3, 20000, 3
    module = make_mha(seed=29, dropout=p, d_model=8, num_heads=2)
    x = randn(torch.Generator().manual_seed(30), 1, t, 8)
    expected, weights = reference_mha(module, x)  # (1, t, 8), (1, 2, t, t)
    d = 4
    w_v, b_v = module.v_proj.weight.detach(), module.v_proj.bias.detach()
    w_o = module.out_proj.weight.detach()
    variance = torch.zeros(t, 8, dtype=torch.float64)
    for h in range(2):
        v_h = x[0] @ w_v[h * d : (h + 1) * d].T + b_v[h * d : (h + 1) * d]  # (t, D)
        u_h = v_h @ w_o[:, h * d : (h + 1) * d].T  # (t_k, 8)
        variance += (weights[0, h] ** 2) @ (u_h**2) * p / (1 - p)
    standard_error = (variance / n).sqrt()

    module.train()
    torch.manual_seed(31)
    with torch.no_grad():
        samples, _ = module(x.expand(n, t, 8))
        again, _ = module(x)
    assert not torch.allclose(again[0], expected[0])  # dropout is on in training
    assert not torch.equal(samples[0], samples[1])  # and random
    deviation = (samples.mean(0) - expected[0]).abs()
    assert torch.all(deviation < 5 * standard_error)
    assert torch.all(standard_error > 0)
    # the spread fixes the rate p: the sample variance is within 10% of the prediction
    # (its relative standard error is about 1.5% here; p = 0.15 would give 41%)
    ratio = samples.var(0) / variance
    assert torch.all((ratio > 0.9) & (ratio < 1.1)), ratio
    module.eval()
    close_f64(module(x)[0], expected)  # back to deterministic


# ------------------------------------------------------------------- rotary hook


class RecordingRotary(nn.Module):
    """Test double: records the offsets and shapes it is called with; changes nothing."""

    def __init__(self):
        super().__init__()
        self.offsets, self.shapes = [], []

    def forward(self, q, k, offset):
        self.offsets.append(offset)
        self.shapes.append((tuple(q.shape), tuple(k.shape)))
        return q, k


class Rope(nn.Module):
    """Test double: the explicit ``rope`` above, at positions offset, offset + 1, ..."""

    def forward(self, q, k, offset):
        def positions(x):
            return torch.arange(offset, offset + x.shape[-2])

        return rope(q, positions(q)), rope(k, positions(k))


@pytest.mark.parametrize(
    ("chunk", "expected_offsets"), [(1, [0, 1, 2, 3, 4, 5, 6]), (3, [0, 3, 6])]
)
def test_rotary_is_called_with_the_cache_offset(chunk, expected_offsets):
    recorder = RecordingRotary()
    module = make_mha(seed=32, num_kv_heads=2, rotary=recorder)
    x = randn(torch.Generator().manual_seed(33), 2, 7, E)
    cache = KVCache()
    for part in chunks(7, chunk):
        module(x[:, part], is_causal=True, cache=cache)
    assert recorder.offsets == expected_offsets
    sizes = [p.stop - p.start for p in chunks(7, chunk)]
    # queries (B, H, T_new, D) and only the *new* keys (B, H_kv, T_new, D)
    assert recorder.shapes == [((2, H, s, 4), (2, 2, s, 4)) for s in sizes]
    recorder.offsets.clear()
    module(x)  # no cache: offset 0
    assert recorder.offsets == [0]


@pytest.mark.parametrize("chunk", [1, 3])
def test_rotary_cache_decoding_equals_full_computation(chunk):
    """Keys are rotated at their absolute positions before they are cached."""
    module = make_mha(seed=34, num_kv_heads=2, rotary=Rope())
    x = randn(torch.Generator().manual_seed(35), 2, 7, E)
    positions = (torch.arange(7), torch.arange(7))
    expected, _ = reference_mha(module, x, mask=causal(7)[None, None], positions=positions)
    close_f64(module(x, is_causal=True)[0], expected)
    cache = KVCache()
    outs = [module(x[:, part], is_causal=True, cache=cache)[0] for part in chunks(7, chunk)]
    close_f64(torch.cat(outs, dim=1), expected)


def test_rotary_static_cache_does_not_rotate_cached_keys_again():
    """Regression: a static cache returned the stored (already rotated) memory keys, and
    the rotary hook rotated them a second time on every later call."""
    module = make_mha(seed=36, rotary=Rope())
    gen = torch.Generator().manual_seed(37)
    memory, queries = randn(gen, 2, 6, E), randn(gen, 2, 3, E)
    positions = (torch.arange(1), torch.arange(6))
    cache = KVCache(static=True)
    for step in range(3):
        query = queries[:, step : step + 1]
        expected, _ = reference_mha(module, query, memory, positions=positions)
        close_f64(module(query, memory, cache=cache)[0], expected)


# ----------------------------------------------------------------- gradients, symmetry


@pytest.mark.parametrize("mask", ["none", "key_padding"])
@pytest.mark.parametrize("num_kv_heads", [1, 2])
def test_gradcheck(num_kv_heads, mask):
    module = make_mha(seed=38, d_model=4, num_heads=2, num_kv_heads=num_kv_heads)
    gen = torch.Generator().manual_seed(39)
    query = randn(gen, 2, 3, 4).requires_grad_()
    key = randn(gen, 2, 4, 4).requires_grad_()
    value = randn(gen, 2, 4, 4).requires_grad_()
    real = torch.tensor([[True, True, True, True], [True, True, False, False]])
    kpm = real if mask == "key_padding" else None

    def f(query, key, value):
        out, weights = module(query, key, value, key_padding_mask=kpm, need_weights=True)
        return torch.cat([out.flatten(), weights.flatten()])

    assert torch.autograd.gradcheck(f, (query, key, value))


@HYPOTHESIS
@given(
    seed=st.integers(0, 2**31 - 1),
    t=st.integers(1, 7),
    num_kv_heads=st.sampled_from([1, 2, 4]),
    use_mask=st.booleans(),
)
def test_property_permutation_equivariance(seed, t, num_kv_heads, use_mask):
    """Self-attention without positions: permuting the tokens permutes the output."""
    module = make_mha(seed=seed % 1000, num_kv_heads=num_kv_heads)
    gen = torch.Generator().manual_seed(seed)
    x = randn(gen, 2, t, E)
    perm = torch.randperm(t, generator=gen)
    mask = torch.rand(2, H, t, t, generator=gen) < 0.7 if use_mask else None
    permuted_mask = None if mask is None else mask[:, :, perm][:, :, :, perm]
    out, weights = module(x, attn_mask=mask, need_weights=True)
    out_p, weights_p = module(x[:, perm], attn_mask=permuted_mask, need_weights=True)
    torch.testing.assert_close(out_p, out[:, perm], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(weights_p, weights[:, :, perm][:, :, :, perm], rtol=0, atol=1e-12)


# ------------------------------------------------------------------ fused attention path


@pytest.mark.parametrize("num_kv_heads", [4, 2, 1])
@pytest.mark.parametrize("masks", ["none", "causal+padding", "float"])
def test_fused_path_equals_exact_path_outputs_and_gradients(num_kv_heads, masks):
    """set_fused_attention swaps attnkit's SDPA for torch's fused one: same function."""
    import attnkit as ak

    gen = torch.Generator().manual_seed(50)
    torch.manual_seed(51)
    exact = MultiHeadAttention(8, 4, num_kv_heads=num_kv_heads).double()
    fused = MultiHeadAttention(8, 4, num_kv_heads=num_kv_heads).double()
    fused.load_state_dict(exact.state_dict())
    ak.set_fused_attention(fused)
    assert fused.fused and not exact.fused
    x = randn(gen, 2, 5, 8)
    kwargs = {}
    if masks == "causal+padding":
        kwargs = {
            "is_causal": True,
            "key_padding_mask": torch.tensor([[True] * 5, [True] * 3 + [False] * 2]),
        }
    elif masks == "float":
        kwargs = {"attn_mask": randn(gen, 5, 5)}
    outs = []
    for module in (exact, fused):
        xi = x.clone().requires_grad_()
        out, _ = module(xi, **kwargs)
        out.backward(torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape))
        outs.append((out, xi.grad, module.q_proj.weight.grad))
    for a, b in zip(*outs):
        close_f64(a, b)
    weights = fused(x, need_weights=True, **kwargs)[1]  # weights requested: exact path
    assert weights is not None


def test_set_fused_attention_rejects_non_modules():
    import attnkit as ak

    with pytest.raises(TypeError, match=r"model must be a torch\.nn\.Module"):
        ak.set_fused_attention("model")

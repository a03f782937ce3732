"""Grader for chapter 2's exercises (multi-head attention and positional encoding).

References are independent of the learner's file: torch.nn.MultiheadAttention with
copied weights, explicit loops, and RoPE written with complex numbers.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

import attnkit as ak
from attnkit.grading import require

CHAPTER = "02"
ex = pytest.mark.exercise


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def with_reference_heads(learner, monkeypatch):
    """Grade ``multi_head_attention`` on its own: the learner's split/merge are replaced."""
    monkeypatch.setattr(learner, "split_heads", ak.split_heads, raising=False)
    monkeypatch.setattr(learner, "merge_heads", ak.merge_heads, raising=False)
    return learner


# ----------------------------------------------------------------------- split_heads
@ex("split_heads")
@pytest.mark.parametrize(
    "shape,h", [((2, 5, 12), 3), ((7, 8), 2), ((2, 3, 4, 16), 4), ((1, 1, 6), 6)]
)
def test_split_heads_layout(learner, shape, h):
    x = torch.randn(*shape, generator=_gen(sum(shape)))
    got = require(learner, "split_heads")(x, h)
    d = shape[-1] // h
    want = torch.stack([x[..., i * d : (i + 1) * d] for i in range(h)], dim=-3)
    assert got.shape == want.shape, f"expected shape {tuple(want.shape)}, got {tuple(got.shape)}"
    assert torch.equal(got, want), "head h must get features h*D ... (h+1)*D-1 of every token"


# ----------------------------------------------------------------------- merge_heads
@ex("merge_heads")
@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (4, 7, 2), (1, 2, 3, 1, 6)])
def test_merge_heads_inverts_split(learner, shape):
    x = torch.randn(*shape, generator=_gen(len(shape)))
    got = require(learner, "merge_heads")(x)
    want = torch.cat(list(x.unbind(dim=-3)), dim=-1)
    assert got.shape == want.shape, f"expected shape {tuple(want.shape)}, got {tuple(got.shape)}"
    assert torch.equal(got, want)


# -------------------------------------------------------------- multi_head_attention
def _torch_mha(d_model, h, seed, dtype=torch.float64):
    torch.manual_seed(seed)
    m = torch.nn.MultiheadAttention(d_model, h, bias=False, batch_first=True).to(dtype).eval()
    w_q, w_k, w_v = m.in_proj_weight.detach().chunk(3)
    return m, (w_q, w_k, w_v, m.out_proj.weight.detach())


@ex("multi_head_attention")
@pytest.mark.parametrize("d_model,h,t", [(8, 2, 5), (12, 3, 4), (16, 1, 3), (16, 16, 2)])
def test_mha_matches_torch(with_reference_heads, d_model, h, t):
    m, weights = _torch_mha(d_model, h, seed=d_model + h)
    x = torch.randn(3, t, d_model, generator=_gen(t), dtype=torch.float64)
    got = require(with_reference_heads, "multi_head_attention")(x, *weights, h)
    want, _ = m(x, x, x, need_weights=False)
    assert_close(got, want)


@ex("multi_head_attention")
def test_mha_with_causal_mask(with_reference_heads):
    m, weights = _torch_mha(8, 2, seed=5)
    x = torch.randn(2, 6, 8, generator=_gen(6), dtype=torch.float64)
    got = require(with_reference_heads, "multi_head_attention")(x, *weights, 2, ak.causal_mask(6))
    want, _ = m(x, x, x, attn_mask=~ak.causal_mask(6), need_weights=False)  # torch: True = block
    assert_close(got, want)


# --------------------------------------------------------------- sinusoidal_encoding
def _pe_loop(n, d):
    pe = torch.empty(n, d, dtype=torch.float64)
    for pos in range(n):
        for i in range(0, d, 2):
            pe[pos, i] = math.sin(pos / 10000 ** (i / d))
            pe[pos, i + 1] = math.cos(pos / 10000 ** (i / d))
    return pe


@ex("sinusoidal_encoding")
@pytest.mark.parametrize("n,d", [(1, 2), (10, 8), (50, 64), (7, 6)])
def test_sinusoidal_matches_formula(learner, n, d):
    got = require(learner, "sinusoidal_encoding")(n, d)
    assert got.shape == (n, d), f"expected shape {(n, d)}, got {tuple(got.shape)}"
    assert_close(got.double(), _pe_loop(n, d), rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------- apply_rotary
def _rope_complex(x, base=10000.0):
    """RoPE with complex numbers: pair (j, j + D/2) is the complex number x_j + i x_{j+D/2}."""
    t, d = x.shape[-2], x.shape[-1]
    z = torch.complex(x[..., : d // 2], x[..., d // 2 :])
    theta = base ** (-2 * torch.arange(d // 2, dtype=torch.float64) / d)
    rot = torch.polar(torch.ones(t, d // 2, dtype=torch.float64), torch.arange(t)[:, None] * theta)
    z = z * rot
    return torch.cat([z.real, z.imag], dim=-1)


@ex("apply_rotary")
@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 7, 8), (1, 16, 2)])
def test_rotary_matches_complex_rotation(learner, shape):
    x = torch.randn(*shape, generator=_gen(len(shape)), dtype=torch.float64)
    got = require(learner, "apply_rotary")(x)
    assert got.shape == x.shape, f"expected shape {tuple(x.shape)}, got {tuple(got.shape)}"
    assert_close(got, _rope_complex(x))


@ex("apply_rotary")
def test_rotary_custom_base(learner):
    x = torch.randn(6, 8, generator=_gen(9), dtype=torch.float64)
    assert_close(require(learner, "apply_rotary")(x, base=100.0), _rope_complex(x, base=100.0))


# -------------------------------------------------------------------------- repeat_kv
@ex("repeat_kv")
@pytest.mark.parametrize("h_kv,n_rep", [(1, 4), (2, 2), (3, 1), (2, 3)])
def test_repeat_kv_grouping(learner, h_kv, n_rep):
    x = torch.randn(2, h_kv, 5, 4, generator=_gen(h_kv * 10 + n_rep))
    got = require(learner, "repeat_kv")(x, n_rep)
    assert got.shape == (2, h_kv * n_rep, 5, 4), f"got shape {tuple(got.shape)}"
    for h in range(h_kv * n_rep):
        assert torch.equal(got[:, h], x[:, h // n_rep]), (
            f"output head {h} must be input head {h // n_rep}"
        )

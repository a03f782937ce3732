"""DeltaNet / Gated DeltaNet: the chunkwise form equals the recurrence."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from attnkit.llm import DeltaNetAttention, delta_rule_chunkwise, delta_rule_recurrent


def _inputs(B=2, H=3, T=13, d_k=4, d_v=5, gated=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, T, d_k, generator=g, dtype=torch.float64)
    k = F.normalize(torch.randn(B, H, T, d_k, generator=g, dtype=torch.float64), dim=-1)
    v = torch.randn(B, H, T, d_v, generator=g, dtype=torch.float64)
    beta = torch.rand(B, H, T, generator=g, dtype=torch.float64)
    alpha = 0.5 + 0.5 * torch.rand(B, H, T, generator=g, dtype=torch.float64) if gated else None
    return q, k, v, beta, alpha


def _by_the_definition(q, k, v, beta, alpha):
    """S_t = alpha_t S_{t-1} (I - beta_t k_t k_t^T) + beta_t v_t k_t^T with explicit matrices."""
    B, H, T, d_k = k.shape
    out = torch.zeros(B, H, T, v.shape[-1], dtype=q.dtype)
    for b in range(B):
        for h in range(H):
            S = torch.zeros(v.shape[-1], d_k, dtype=q.dtype)
            for t in range(T):
                kt, a = k[b, h, t], 1.0 if alpha is None else alpha[b, h, t]
                S = a * S @ (torch.eye(d_k, dtype=q.dtype) - beta[b, h, t] * torch.outer(kt, kt))
                S = S + beta[b, h, t] * torch.outer(v[b, h, t], kt)
                out[b, h, t] = S @ q[b, h, t]
    return out


@pytest.mark.parametrize("gated", [False, True])
def test_recurrent_form_is_the_definition(gated):
    args = _inputs(gated=gated)
    o, _ = delta_rule_recurrent(*args)
    torch.testing.assert_close(o, _by_the_definition(*args), rtol=0, atol=1e-12)


@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("chunk_size", [1, 4, 5, 13, 64])
def test_chunkwise_equals_recurrent(gated, chunk_size):
    args = _inputs(gated=gated, seed=chunk_size)
    S0 = torch.randn(2, 3, 5, 4, dtype=torch.float64)
    o_r, S_r = delta_rule_recurrent(*args, initial_state=S0)
    o_c, S_c = delta_rule_chunkwise(*args, chunk_size=chunk_size, initial_state=S0)
    torch.testing.assert_close(o_c, o_r, rtol=0, atol=1e-11)
    torch.testing.assert_close(S_c, S_r, rtol=0, atol=1e-11)


def test_gradcheck_chunkwise():
    q, k, v, beta, alpha = (t.detach().requires_grad_() for t in _inputs(1, 1, 6, 3, 2, seed=3))
    assert torch.autograd.gradcheck(
        lambda *a: delta_rule_chunkwise(*a, chunk_size=4)[0], (q, k, v, beta, alpha)
    )


def test_delta_rule_stores_and_overwrites_an_association():
    # beta = 1 with a unit key: after writing v for k, reading with k returns v exactly,
    # and a second write with the same key replaces it (plain linear attention would add).
    k = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]], dtype=torch.float64)
    v = torch.tensor([[[[2.0], [-3.0]]]], dtype=torch.float64)
    o, _ = delta_rule_recurrent(k, k, v, torch.ones(1, 1, 2, dtype=torch.float64))
    assert o.flatten().tolist() == [2.0, -3.0]


@pytest.mark.parametrize("gated", [False, True])
def test_module_chunks_equal_recurrence_and_are_causal(gated):
    torch.manual_seed(0)
    m = DeltaNetAttention(16, 2, gated=gated, chunk_size=4).double()
    x = torch.randn(2, 11, 16, dtype=torch.float64)
    y = m(x)
    torch.testing.assert_close(y, m(x, recurrent=True), rtol=0, atol=1e-11)
    x2 = x.clone()
    x2[:, 7:] += 1.0
    torch.testing.assert_close(m(x2)[:, :7], y[:, :7], rtol=0, atol=1e-12)


def test_bad_shapes_are_named():
    q, k, v, beta, _ = _inputs()
    with pytest.raises(ValueError, match="beta"):
        delta_rule_chunkwise(q, k, v, beta[..., :-1])
    with pytest.raises(ValueError, match="initial_state"):
        delta_rule_recurrent(q, k, v, beta, initial_state=torch.zeros(1))
    with pytest.raises(ValueError, match="chunk_size"):
        delta_rule_chunkwise(q, k, v, beta, chunk_size=0)

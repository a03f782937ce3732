"""Grader for chapter 7's exercises (approximate attention).

Each exercise is checked against attnkit's implementation *and* against an independent
reference written here: an explicit Python loop,
``torch.nn.functional.scaled_dot_product_attention``, a Monte-Carlo average, or the dense
masked formula of causal linear attention. Every test calls the learner's function,
so every test fails on the untouched exercise file.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from attnkit.efficient.bigbird import bigbird_layout
from attnkit.efficient.kernel import linear_attention
from attnkit.efficient.linformer import linformer_attention
from attnkit.efficient.local import sliding_window_mask
from attnkit.efficient.performer import positive_random_features
from attnkit.grading import require

CHAPTER = "07"
ex = pytest.mark.exercise


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(*shape: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(*shape, generator=_gen(seed), dtype=torch.float64)


# --------------------------------------------------------------- sliding_window_mask
@ex("sliding_window_mask")
@pytest.mark.parametrize(
    "n,window,causal",
    [(1, 0, False), (7, 0, False), (7, 2, False), (7, 2, True), (10, 3, True), (33, 5, False)],
)
def test_sliding_window_mask_matches_loop(learner, n, window, causal):
    got = require(learner, "sliding_window_mask")(n, window, causal)
    want = torch.zeros(n, n, dtype=torch.bool)
    for i in range(n):
        for j in range(n):
            want[i, j] = (0 <= i - j <= window) if causal else abs(i - j) <= window
    assert isinstance(got, torch.Tensor) and got.dtype == torch.bool, (
        "return a bool tensor (True = may attend)"
    )
    assert got.shape == (n, n), f"expected shape ({n}, {n}), got {tuple(got.shape)}"
    kind = "0 <= i - j <= window" if causal else "|i - j| <= window"
    assert torch.equal(got, want), (
        f"sliding_window_mask({n}, {window}, causal={causal}) is wrong: True exactly where {kind}"
    )


@ex("sliding_window_mask")
@pytest.mark.parametrize("causal", [False, True])
def test_sliding_window_mask_matches_attnkit(learner, causal):
    fn = require(learner, "sliding_window_mask")
    for n, window in ((64, 4), (100, 99), (100, 150), (257, 128)):
        got = fn(n, window, causal)
        want = sliding_window_mask(n, window, causal=causal)
        assert torch.equal(got, want), (
            f"sliding_window_mask({n}, {window}, causal={causal}) differs from attnkit's "
            "(a window wider than the sequence must simply reach its ends)"
        )


# -------------------------------------------------------- linformer_attention_simple
@ex("linformer_attention_simple")
@pytest.mark.parametrize("shape", [(12, 4), (2, 3, 16, 8)])
def test_linformer_identity_projection_is_full_attention(learner, shape):
    *batch, n, _ = shape
    q, k = _randn(*shape, seed=10), _randn(*shape, seed=11)
    v = _randn(*batch, n, 5, seed=12)
    eye = torch.eye(n, dtype=torch.float64)
    got = require(learner, "linformer_attention_simple")(q, k, v, eye, eye)
    want = F.scaled_dot_product_attention(q, k, v)
    assert got.shape == want.shape, f"expected shape {tuple(want.shape)}, got {tuple(got.shape)}"
    assert_close(
        got,
        want,
        msg="with e = f = identity Linformer must equal softmax(q k^T / sqrt(d)) v exactly",
    )


@ex("linformer_attention_simple")
@pytest.mark.parametrize("proj", [1, 7, 32])
def test_linformer_matches_attnkit(learner, proj):
    q, k, v = (_randn(2, 2, 40, 6, seed=s) for s in (13, 14, 15))
    e, f = _randn(proj, 40, seed=16, scale=0.2), _randn(proj, 40, seed=17, scale=0.2)
    got = require(learner, "linformer_attention_simple")(q, k, v, e, f)
    want = linformer_attention(q, k, v, e, f)
    assert got.shape == (2, 2, 40, 6), f"expected shape (2, 2, 40, 6), got {tuple(got.shape)}"
    assert_close(
        got,
        want,
        msg="expected softmax(q (e k)^T / sqrt(d)) (f v): e projects the keys, f the values",
    )


# ---------------------------------------------------------------- random_feature_map
@ex("random_feature_map")
@pytest.mark.parametrize("shape,m", [((5, 3), 4), ((2, 6, 8), 20), ((1, 2, 3, 16), 64)])
def test_random_feature_map_formula(learner, shape, m):
    x, w = _randn(*shape, seed=18, scale=0.7), _randn(m, shape[-1], seed=19)
    got = require(learner, "random_feature_map")(x, w)
    want = positive_random_features(x, w, is_query=True, stabilize=False)
    assert got.shape == (*shape[:-1], m), f"expected shape {(*shape[:-1], m)}, got {got.shape}"
    flat_x, flat_got = x.reshape(-1, shape[-1]), got.reshape(-1, m)
    for row in range(flat_x.shape[0]):  # an explicit loop over rows and features
        for r in range(m):
            value = math.exp(float(w[r] @ flat_x[row]) - float(flat_x[row] @ flat_x[row]) / 2)
            assert math.isclose(flat_got[row, r].item(), value / math.sqrt(m), rel_tol=1e-9), (
                "phi(x)_r must be exp(w_r . x - |x|^2 / 2) / sqrt(m)"
            )
    assert_close(got, want)


@ex("random_feature_map")
def test_random_feature_map_is_unbiased_and_positive(learner):
    fn = require(learner, "random_feature_map")
    q, k = _randn(3, 8, seed=20, scale=0.35), _randn(3, 8, seed=21, scale=0.35)
    w = _randn(200_000, 8, seed=22)
    phi_q, phi_k = fn(q, w), fn(k, w)
    assert (phi_q > 0).all() and (phi_k > 0).all(), "positive random features must be > 0"
    estimate, exact = phi_q @ phi_k.T, torch.exp(q @ k.T)  # (3, 3) each
    rel = (estimate / exact - 1).abs().max().item()
    assert rel < 0.03, (
        f"phi(q) . phi(k) should estimate exp(q . k) (relative error {rel:.3f} with 200,000 "
        "features): check the -|x|^2 / 2 and the 1 / sqrt(m)"
    )


# -------------------------------------------------------------- bigbird_block_layout
def _loop_layout(n_blocks, w, g, random_blocks):
    """Reference: BigBird's layout built entry by entry."""
    layout = torch.zeros(n_blocks, n_blocks, dtype=torch.bool)
    for i in range(n_blocks):
        for j in range(n_blocks):
            layout[i, j] = abs(i - j) <= (w - 1) // 2 or i < g or j < g or j in random_blocks[i]
    return layout


@ex("bigbird_block_layout")
@pytest.mark.parametrize(
    "n_blocks,w,g,random_blocks",
    [
        (1, 1, 0, [[]]),
        (5, 1, 0, [[], [], [], [], []]),
        (6, 3, 1, [[], [4], [5], [5], [1], [2]]),
        (8, 5, 2, [[7], [6], [7, 0], [], [0], [], [1], [3]]),
        (4, 3, 0, [[3], [3], [0], [0]]),
        (3, 3, 5, [[], [], []]),
    ],
)
def test_bigbird_block_layout_matches_loop(learner, n_blocks, w, g, random_blocks):
    got = require(learner, "bigbird_block_layout")(n_blocks, w, g, random_blocks)
    want = _loop_layout(n_blocks, w, g, random_blocks)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.bool, "return a bool tensor"
    assert got.shape == (n_blocks, n_blocks), f"expected shape ({n_blocks}, {n_blocks})"
    assert torch.equal(got, want), (
        f"layout wrong for n_blocks={n_blocks}, window={w}, global={g}: window |i - j| <= "
        "(window - 1) // 2, global rows and columns all True, plus random_blocks[i] in row i"
    )


@ex("bigbird_block_layout")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bigbird_block_layout_rebuilds_attnkit_layout(learner, seed):
    fn = require(learner, "bigbird_block_layout")
    n_blocks = 10
    no_random = bigbird_layout(n_blocks, num_random_blocks=0)
    empty = [[] for _ in range(n_blocks)]
    assert torch.equal(fn(n_blocks, 3, 1, empty), no_random), (
        "with no random blocks the layout must equal attnkit's bigbird_layout(10, "
        "num_random_blocks=0): a 3-block window and one global block"
    )
    drawn = bigbird_layout(n_blocks, generator=_gen(seed))
    random_blocks = [torch.nonzero(row).flatten().tolist() for row in drawn & ~no_random]
    assert torch.equal(fn(n_blocks, 3, 1, random_blocks), drawn), (
        "adding the random blocks of attnkit's layout must give that layout back"
    )


# ----------------------------------------------------------- causal_linear_attention
def _dense_causal_linear(q, k, v):
    """Reference: the n x n kernel matrix, masked to j <= i, normalised row by row."""
    a = (F.elu(q) + 1) @ (F.elu(k) + 1).transpose(-2, -1)  # (..., n, n)
    a = a * torch.ones(a.shape[-2:], dtype=torch.bool).tril()
    return (a / a.sum(dim=-1, keepdim=True)) @ v


@ex("causal_linear_attention")
@pytest.mark.parametrize("shape,d_v", [((1, 3), 2), ((9, 4), 3), ((2, 3, 25, 8), 8)])
def test_causal_linear_attention_matches_dense_formula(learner, shape, d_v):
    *batch, n, _ = shape
    q, k = _randn(*shape, seed=23), _randn(*shape, seed=24)
    v = _randn(*batch, n, d_v, seed=25)
    got = require(learner, "causal_linear_attention")(q, k, v)
    want = _dense_causal_linear(q, k, v)
    assert got.shape == want.shape, f"expected shape {tuple(want.shape)}, got {tuple(got.shape)}"
    assert_close(
        got,
        want,
        msg="o_i = phi(q_i) S_i / phi(q_i) z_i with phi = elu + 1 and sums over j <= i",
    )


@ex("causal_linear_attention")
def test_causal_linear_attention_matches_attnkit_and_is_causal(learner):
    fn = require(learner, "causal_linear_attention")
    q, k, v = (_randn(2, 2, 60, 6, seed=s, scale=2.0) for s in (26, 27, 28))
    got = fn(q, k, v)
    assert_close(got, linear_attention(q, k, v, causal=True), msg="differs from attnkit's")
    k2, v2 = k.clone(), v.clone()
    k2[..., 30:, :] = _randn(2, 2, 30, 6, seed=29)
    v2[..., 30:, :] = _randn(2, 2, 30, 6, seed=30)
    moved = fn(q, k2, v2)
    assert_close(
        moved[..., :30, :],
        got[..., :30, :],
        msg="changing tokens 30 and later changed earlier outputs: the sums must be over j <= i",
    )
    assert_close(got[..., 0, :], v[..., 0, :], msg="the first query sees only the first value")

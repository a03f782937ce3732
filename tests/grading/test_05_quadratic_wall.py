"""Grader for chapter 5's exercises (the cost of attention in FLOPs, bytes and parameters).

References, computed independently of the formulas the exercises ask for: PyTorch's
``FlopCounterMode`` watching a real attention computation, the size of a tensor allocated
on the ``meta`` device (shape only, no memory), the parameter count of
``attnkit.MultiHeadAttention`` and ``torch.nn.MultiheadAttention``, and an integer binary
search.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import attnkit as ak
from attnkit.grading import require

CHAPTER = "05"
ex = pytest.mark.exercise


def _counted_flops(n: int, d: int, heads: int) -> int:
    """FLOPs that PyTorch counts for softmax(q k^T / sqrt(d)) v on (1, heads, n, d) inputs."""
    q = k = v = torch.zeros(1, heads, n, d, device="meta")
    with FlopCounterMode(display=False) as counter:
        torch.softmax(q @ k.transpose(-2, -1) / d**0.5, dim=-1) @ v
    return counter.get_total_flops()


def _meta_bytes(shape: tuple[int, ...], dtype: torch.dtype) -> int:
    t = torch.empty(shape, dtype=dtype, device="meta")  # no memory is allocated
    return t.numel() * t.element_size()


def _largest_fitting(budget: int, per_square: int) -> int:
    """Largest n >= 0 with per_square * n * n <= budget, by binary search on integers."""
    lo, hi = 0, 1
    while per_square * hi * hi <= budget:
        hi *= 2
    while hi - lo > 1:  # invariant: lo fits, hi does not
        mid = (lo + hi) // 2
        if per_square * mid * mid <= budget:
            lo = mid
        else:
            hi = mid
    return lo


# -------------------------------------------------------------------- attention_flops
@ex("attention_flops")
@pytest.mark.parametrize("n,d,heads", [(1, 1, 1), (7, 3, 1), (128, 64, 4), (1000, 64, 8)])
def test_attention_flops_match_pytorch_counter(learner, n, d, heads):
    got = require(learner, "attention_flops")(n, d, heads)
    want = _counted_flops(n, d, heads)
    assert got == want, (
        f"attention_flops({n}, {d}, {heads}) = {got}, but PyTorch counts {want:,} FLOPs for "
        "Q K^T and A V (2 FLOPs per multiply-add, both products, every head)"
    )


@ex("attention_flops")
def test_attention_flops_is_exact_int_and_scales(learner):
    fn = require(learner, "attention_flops")
    got = fn(2**20, 128, 32)
    assert isinstance(got, int), f"return a Python int, not {type(got).__name__}"
    assert got == 4 * 32 * 2**40 * 128
    assert fn(2000, 64, 8) == 4 * fn(1000, 64, 8), "doubling n must multiply the FLOPs by 4"
    assert fn(1000, 128, 8) == 2 * fn(1000, 64, 8), "doubling d must multiply the FLOPs by 2"
    assert fn(1000, 64, 16) == 2 * fn(1000, 64, 8), "doubling the heads must double the FLOPs"


# ----------------------------------------------------------------- score_memory_bytes
@ex("score_memory_bytes")
@pytest.mark.parametrize(
    "dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.bool], ids=str
)
def test_score_memory_bytes_every_dtype(learner, dtype):
    got = require(learner, "score_memory_bytes")(3, 5, 77, dtype)
    want = _meta_bytes((3, 5, 77, 77), dtype)
    assert got == want, f"a (3, 5, 77, 77) tensor of {dtype} takes {want} bytes, not {got}"


@ex("score_memory_bytes")
@pytest.mark.parametrize("batch,heads,n", [(1, 1, 1), (1, 8, 1000), (16, 32, 131072)])
def test_score_memory_bytes_long_sequences(learner, batch, heads, n):
    got = require(learner, "score_memory_bytes")(batch, heads, n, torch.float32)
    want = _meta_bytes((batch, heads, n, n), torch.float32)
    assert isinstance(got, int), f"return a Python int, not {type(got).__name__}"
    assert got == want, f"({batch}, {heads}, {n}, {n}) float32 takes {want:,} bytes, not {got:,}"


# ---------------------------------------------------------------- mha_parameter_count
@ex("mha_parameter_count")
@pytest.mark.parametrize(
    "d_model,heads,kv_heads,bias",
    [(64, 4, 4, True), (64, 4, 4, False), (512, 8, 2, True), (96, 6, 1, False), (512, 8, 8, True)],
)
def test_mha_parameter_count_matches_module(learner, d_model, heads, kv_heads, bias):
    got = require(learner, "mha_parameter_count")(d_model, heads, kv_heads, bias)
    module = ak.MultiHeadAttention(d_model, heads, num_kv_heads=kv_heads, bias=bias)
    want = ak.count_parameters(module)
    assert got == want, (
        f"MultiHeadAttention({d_model}, {heads}, num_kv_heads={kv_heads}, bias={bias}) has "
        f"{want} parameters, not {got} (keys and values have num_kv_heads * head width outputs)"
    )


@ex("mha_parameter_count")
@pytest.mark.parametrize("bias", [True, False])
def test_mha_parameter_count_matches_torch(learner, bias):
    got = require(learner, "mha_parameter_count")(128, 8, 8, bias)
    want = sum(p.numel() for p in torch.nn.MultiheadAttention(128, 8, bias=bias).parameters())
    assert got == want, f"torch.nn.MultiheadAttention(128, 8, bias={bias}) has {want}, not {got}"


# -------------------------------------------------------------- max_length_for_budget
@ex("max_length_for_budget")
@pytest.mark.parametrize(
    "budget,batch,heads,bpe",
    [(10**6, 1, 1, 4), (80 * 10**9, 1, 32, 2), (24 * 2**30, 8, 16, 4), (12345678, 3, 5, 2)],
)
def test_max_length_for_budget(learner, budget, batch, heads, bpe):
    got = require(learner, "max_length_for_budget")(budget, batch, heads, bpe)
    want = _largest_fitting(budget, batch * heads * bpe)
    assert got == want, f"the largest n that fits is {want}, not {got}"


@ex("max_length_for_budget")
@pytest.mark.parametrize("n", [1, 2, 1000, 46341])
def test_max_length_for_budget_boundary(learner, n):
    fn = require(learner, "max_length_for_budget")
    per_square = 2 * 4 * 2  # batch 2, 4 heads, 2 bytes per element
    exact = per_square * n * n
    assert fn(exact, 2, 4, 2) == n, f"a budget of exactly {exact} bytes fits n = {n}"
    assert fn(exact - 1, 2, 4, 2) == n - 1, f"one byte less than {exact} fits only n = {n - 1}"


@ex("max_length_for_budget")
def test_max_length_for_budget_is_exact_for_huge_budgets(learner):
    fn = require(learner, "max_length_for_budget")
    n = 10**8
    got = fn(4 * n * n - 1, 1, 1, 4)
    assert got == n - 1, (
        f"a budget of 4 * 10**16 - 1 bytes fits n = {n - 1}, not {got}: floating-point sqrt "
        "rounds at this size; use integer arithmetic (math.isqrt)"
    )
    assert isinstance(got, int), f"return a Python int, not {type(got).__name__}"
    assert fn(3, 1, 1, 4) == 0, "if not even n = 1 fits, return 0"

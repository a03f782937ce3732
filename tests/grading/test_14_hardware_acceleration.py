"""Grader for chapter 14's exercises (hardware acceleration).

Each exercise is checked against attnkit's implementation (``attnkit.hardware``) *and*
against an independent reference written here: byte counts from the sizes of real tensors
of each step, an explicit two-branch roofline, and PyTorch's own float32 -> bfloat16
conversion. Every test calls the learner's function, so every test fails on the untouched
exercise file.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from attnkit import hardware as hw
from attnkit.grading import require

CHAPTER = "14"
ex = pytest.mark.exercise

DTYPES = {4: torch.float32, 2: torch.bfloat16, 8: torch.float64}


def _nbytes(*tensors: torch.Tensor) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _naive_reference(n: int, d: int, bh: int, dtype_bytes: int, passes: int) -> int:
    """Bytes of naive attention, from the sizes of the tensors each kernel reads and writes."""
    dt = DTYPES[dtype_bytes]
    q = k = v = o = torch.empty(bh, n, d, dtype=dt)
    s = torch.empty(bh, n, n, dtype=dt)
    moved = _nbytes(q, k) + _nbytes(s)  # S = Q K^T
    for _ in range(passes):
        moved += 2 * _nbytes(s)  # read S, write S'
    return moved + _nbytes(s, v) + _nbytes(o)  # O = P V


SIZES = [
    (1, 1, 1, 4, 1),
    (10, 3, 1, 4, 1),
    (10, 3, 1, 4, 2),
    (7, 5, 3, 2, 1),
    (128, 64, 8, 2, 3),
    (4096, 64, 4, 4, 2),
    (1000, 128, 16, 8, 1),
]


# ------------------------------------------------------------------ naive_attention_bytes
@ex("naive_attention_bytes")
@pytest.mark.parametrize("n,d,bh,dtype_bytes,passes", SIZES)
def test_naive_attention_bytes(learner, n, d, bh, dtype_bytes, passes):
    fn = require(learner, "naive_attention_bytes")
    got = fn(n, d, bh, dtype_bytes, passes)
    want = _naive_reference(n, d, bh, dtype_bytes, passes)
    assert isinstance(got, int), f"return an int, got {type(got).__name__}"
    assert got == want, (
        f"naive_attention_bytes({n}, {d}, {bh}, {dtype_bytes}, {passes}) = {got}, expected "
        f"{want}: count Q, K read and S written; each pass reads and writes S; then P, V "
        "read and O written, for every head"
    )
    assert got == hw.attention_io_bytes(
        n, d, kind="naive", batch_heads=bh, dtype_bytes=dtype_bytes, score_passes=passes
    )


@ex("naive_attention_bytes")
def test_naive_attention_bytes_defaults_and_keywords(learner):
    fn = require(learner, "naive_attention_bytes")
    assert fn(10, 3) == 4 * 520, "defaults: batch_heads=1, dtype_bytes=4, score_passes=1"
    assert fn(10, 3, batch_heads=2, dtype_bytes=2, score_passes=2) == 2 * 2 * 720


# ------------------------------------------------------------------ fused_attention_bytes
@ex("fused_attention_bytes")
@pytest.mark.parametrize("n,d,bh,dtype_bytes,passes", SIZES)
def test_fused_attention_bytes(learner, n, d, bh, dtype_bytes, passes):
    fn = require(learner, "fused_attention_bytes")
    got = fn(n, d, bh, dtype_bytes)
    t = torch.empty(bh, n, d, dtype=DTYPES[dtype_bytes])
    want = _nbytes(t, t, t) + _nbytes(t)  # Q, K, V read; O written
    assert isinstance(got, int), f"return an int, got {type(got).__name__}"
    assert got == want, (
        f"fused_attention_bytes({n}, {d}, {bh}, {dtype_bytes}) = {got}, expected {want}: "
        "Q, K, V read once and O written once, for every head"
    )
    assert got == hw.attention_io_bytes(n, d, kind="fused", batch_heads=bh, dtype_bytes=dtype_bytes)


@ex("fused_attention_bytes")
def test_fused_intensity_grows_like_n(learner):
    fn = require(learner, "fused_attention_bytes")
    assert fn(10, 3) == 4 * 120, "defaults: batch_heads=1, dtype_bytes=4"
    for n in (64, 1024, 16384):
        intensity = hw.attention_flops(n, 64) / fn(n, 64)
        assert intensity == pytest.approx(n / 4), "float32 fused intensity should be n / 4"


# ---------------------------------------------------------------------- attainable_gflops
def _roof(intensity: float, peak: float, bandwidth: float) -> float:
    ridge = peak / bandwidth
    return intensity * bandwidth if intensity < ridge else peak


@ex("attainable_gflops")
@pytest.mark.parametrize(
    "intensity,peak,bandwidth",
    [
        (0.5, 400.0, 25.0),
        (16.0, 400.0, 25.0),  # exactly at the ridge
        (15.9, 400.0, 25.0),
        (1024.0, 400.0, 25.0),
        (1e-3, 1e6, 3e3),
        (250.0, 989e3, 3350.0),  # a GPU-like machine, memory-bound
        (400.0, 989e3, 3350.0),  # compute-bound
    ],
)
def test_attainable_gflops(learner, intensity, peak, bandwidth):
    fn = require(learner, "attainable_gflops")
    got = fn(intensity, peak, bandwidth)
    assert isinstance(got, float), f"return a float, got {type(got).__name__}"
    assert got == pytest.approx(_roof(intensity, peak, bandwidth), rel=1e-12), (
        f"attainable_gflops({intensity}, {peak}, {bandwidth}) = {got}: "
        "it is min(peak, intensity * bandwidth)"
    )
    assert got == pytest.approx(hw.roofline(intensity, peak, bandwidth), rel=1e-12)


@ex("attainable_gflops")
@pytest.mark.parametrize("args", [(0.0, 1.0, 1.0), (1.0, -5.0, 1.0), (1.0, 1.0, 0.0)])
def test_attainable_gflops_rejects_non_positive(learner, args):
    fn = require(learner, "attainable_gflops")
    with pytest.raises(ValueError):
        fn(*args)


# ---------------------------------------------------------------------- round_to_bfloat16
class _NoBfloat16(TorchDispatchMode):
    """Records whether any operation produced a bfloat16 tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.used = False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        outs = out if isinstance(out, (tuple, list)) else (out,)
        if any(isinstance(o, torch.Tensor) and o.dtype == torch.bfloat16 for o in outs):
            self.used = True
        return out


def _bits_equal(got: torch.Tensor, want: torch.Tensor) -> bool:
    nan = want.isnan()
    if not torch.equal(got.isnan(), nan):
        return False
    return torch.equal(got[~nan].view(torch.int32), want[~nan].view(torch.int32))


SPECIAL = [
    1 + 2**-8,  # tie -> 1 (even)
    1 + 3 * 2**-8,  # tie -> 1 + 2**-6 (even)
    -(1 + 2**-8),
    -(1 + 3 * 2**-8),
    2 + 2**-7,  # tie at a larger exponent
    1 + 2**-8 + 2**-20,  # just above the tie: up
    1 + 2**-8 - 2**-20,  # just below the tie: down
    0.0,
    -0.0,
    1e-40,  # subnormals
    -3e-40,
    1.4e-45,
    1.1754942e-38,  # the largest subnormal region, rounds into the normal range
    3.4028234663852886e38,  # float32 max: rounds to inf
    -3.4028234663852886e38,
    3.3895313892515355e38,  # bfloat16 max: exact
    math.inf,
    -math.inf,
    math.nan,
    1 - 2**-24,  # rounds up across a power of two
]


@ex("round_to_bfloat16")
def test_round_to_bfloat16_special_values(learner):
    fn = require(learner, "round_to_bfloat16")
    x = torch.tensor(SPECIAL, dtype=torch.float32)
    got = fn(x.clone())
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float32, "return a float32 tensor"
    assert got.shape == x.shape
    want = x.to(torch.bfloat16).float()
    for i, value in enumerate(SPECIAL):
        g_i, w_i = got[i : i + 1], want[i : i + 1]
        assert _bits_equal(g_i, w_i), (
            f"round_to_bfloat16({value!r}) = {g_i.item()!r}, expected {w_i.item()!r} "
            "(round half to even on the bits; NaN stays NaN)"
        )
    assert _bits_equal(got, hw.round_to_bfloat16(x))


@ex("round_to_bfloat16")
@pytest.mark.parametrize("seed", [0, 1])
def test_round_to_bfloat16_random_bit_patterns(learner, seed):
    fn = require(learner, "round_to_bfloat16")
    g = torch.Generator().manual_seed(seed)
    bits = torch.randint(-(2**31), 2**31 - 1, (20000,), generator=g, dtype=torch.int64)
    x = bits.to(torch.int32).view(torch.float32).reshape(4, 50, 100)  # every kind of float
    original = x.clone()
    got = fn(x)
    assert got.shape == x.shape, "keep the shape"
    assert _bits_equal(x, original), "do not modify the input in place"
    assert _bits_equal(got, x.to(torch.bfloat16).float()), (
        "round_to_bfloat16 differs from x.to(torch.bfloat16) on random bit patterns"
    )


@ex("round_to_bfloat16")
def test_round_to_bfloat16_uses_integer_ops(learner):
    fn = require(learner, "round_to_bfloat16")
    values = [1.0, 1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-8 + 2**-20, math.pi, -2.5e-39, -(2**-130)]
    nan = torch.tensor([0x7FFFFFFF], dtype=torch.int32).view(torch.float32)  # all mantissa bits
    x = torch.cat([torch.tensor(values), nan])  # ties, round-ups, subnormals, a NaN
    with _NoBfloat16() as mode:
        got = fn(x)
    assert not mode.used, (
        "round with integer operations on the bits: no .to(torch.bfloat16) / .bfloat16()"
    )
    assert _bits_equal(got, x.to(torch.bfloat16).float())

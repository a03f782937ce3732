"""Tests for attnkit.hardware: FLOP and byte counts by hand, the roofline, SDPA backends."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from attnkit import hardware as hw
from attnkit.bench import naive_attention


def test_attention_flops_hand_count_and_flop_counter():
    assert hw.attention_flops(2, 3) == 2 * (2 * 2 * 3) * 2  # two products, 2 FLOPs per MAC
    assert hw.attention_flops(1000, 64, batch_heads=8) == 8 * 4 * 1000**2 * 64
    q = k = v = torch.zeros(2, 3, 64, 16)  # (B, H, n, d)
    with FlopCounterMode(display=False) as counter:
        naive_attention(q, k, v)
    assert hw.attention_flops(64, 16, batch_heads=6) == counter.get_total_flops()


def test_attention_io_bytes_hand_counts():
    n, d = 10, 3
    # naive, softmax only: Q, K read (60), S written (100), softmax r+w (200), P read (100),
    # V read (30), O written (30): 520 elements.
    assert hw.attention_io_bytes(n, d, kind="naive", dtype_bytes=1) == 520
    # a separate scaling pass adds one more read + write of the scores
    assert hw.attention_io_bytes(n, d, kind="naive", dtype_bytes=1, score_passes=2) == 720
    # fused: Q, K, V read, O written
    assert hw.attention_io_bytes(n, d, kind="fused", dtype_bytes=1) == 120
    assert hw.attention_io_bytes(n, d, kind="fused", batch_heads=4, dtype_bytes=2) == 960


def test_intensity_naive_saturates_fused_grows():
    d = 64
    naive = [
        hw.arithmetic_intensity(hw.attention_flops(n, d), hw.attention_io_bytes(n, d))
        for n in (256, 4096, 65536)
    ]
    fused = [
        hw.arithmetic_intensity(hw.attention_flops(n, d), hw.attention_io_bytes(n, d, kind="fused"))
        for n in (256, 4096, 65536)
    ]
    # naive -> 4 n^2 d / (4 * 4 n^2) = d / 4 = 16 FLOP/byte in float32
    assert naive[-1] == pytest.approx(d / 4, rel=0.01) and naive[0] < naive[-1]
    # fused = 4 n^2 d / (4 * 4 n d) = n / 4: proportional to n
    assert fused == pytest.approx([64.0, 1024.0, 16384.0])


def test_roofline_is_the_min_of_the_two_ceilings():
    assert hw.roofline(1.0, 400.0, 40.0) == 40.0  # memory-bound
    assert hw.roofline(100.0, 400.0, 40.0) == 400.0  # compute-bound
    assert hw.roofline(10.0, 400.0, 40.0) == 400.0  # exactly at the ridge
    assert hw.ridge_point(400.0, 40.0) == 10.0
    assert hw.roofline(9.0, 400.0, 40.0) == 360.0


def test_round_to_bfloat16_matches_torch_bit_for_bit():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20000, generator=g) * torch.exp(30 * torch.randn(20000, generator=g))
    one = 1.0
    special = torch.tensor(
        [0.0, -0.0, one + 2**-8, one + 3 * 2**-8, -(one + 2**-8), 1e-39, -3e-40, 1e-45,
         3.4e38, -3.4e38, math.inf, -math.inf, math.nan]
    )  # fmt: skip
    x = torch.cat([x, special])
    got = hw.round_to_bfloat16(x)
    want = x.to(torch.bfloat16).float()
    assert torch.equal(got.isnan(), want.isnan())
    assert torch.equal(got[~got.isnan()].view(torch.int32), want[~want.isnan()].view(torch.int32))
    # the ties, by hand: 1 + 2^-8 is halfway between 1 and 1 + 2^-7 -> even (1.0)
    assert hw.round_to_bfloat16(torch.tensor([one + 2**-8])).item() == 1.0
    assert hw.round_to_bfloat16(torch.tensor([one + 3 * 2**-8])).item() == one + 2**-6


def test_sdpa_backend_flash_for_plain_float32_math_for_dropout():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 32, 8, generator=g) for _ in range(3))
    assert hw.sdpa_backend(q, k, v) == "aten::_scaled_dot_product_flash_attention_for_cpu"
    assert hw.sdpa_backend(q, k, v, dropout_p=0.5) == "aten::_scaled_dot_product_attention_math"
    assert hw.sdpa_backend(q[0], k[0], v[0]) == "aten::_scaled_dot_product_attention_math"
    out = F.scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(out, naive_attention(q, k, v))


def test_compile_attention_reports_failure_instead_of_raising():
    def broken(x: torch.Tensor) -> torch.Tensor:
        raise ValueError("no compiler here")

    result = hw.compile_attention(broken, torch.zeros(2), backend="eager")
    assert result.fn is None and result.error is not None and "ValueError" in result.error
    ok = hw.compile_attention(lambda x: x * 2, torch.ones(3), backend="eager")
    assert ok.error is None and torch.equal(ok.fn(torch.ones(3)), torch.full((3,), 2.0))


def test_measured_ceilings_are_positive_and_plausible():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        gflops = hw.matmul_gflops(128, repeats=2)
        gbs = hw.memory_bandwidth_gbs(2**22, repeats=2)
    finally:
        torch.set_num_threads(threads)
    assert 0.1 < gflops < 1e5 and 0.1 < gbs < 1e5


@pytest.mark.parametrize(
    "call,error,words",
    [
        (lambda: hw.attention_flops(0, 4), ValueError, "n"),
        (lambda: hw.attention_io_bytes(8, 4, kind="flash"), ValueError, "kind"),
        (lambda: hw.attention_io_bytes(8, 4, dtype_bytes=0), ValueError, "dtype_bytes"),
        (lambda: hw.arithmetic_intensity(1.0, 0.0), ValueError, "bytes_moved"),
        (lambda: hw.roofline(1.0, -1.0, 2.0), ValueError, "peak_gflops"),
        (lambda: hw.roofline(1.0, 2.0, math.nan), ValueError, "bandwidth_gbs"),
        (lambda: hw.roofline("1", 2.0, 2.0), TypeError, "intensity"),
        (lambda: hw.matmul_gflops(8, torch.int32), TypeError, "dtype"),
        (lambda: hw.round_to_bfloat16(torch.zeros(2, dtype=torch.float64)), TypeError, "float32"),
        (lambda: hw.sdpa_backend([1.0], [1.0], [1.0]), TypeError, "q"),
        (lambda: hw.compile_attention(3), TypeError, "fn"),
    ],
)
def test_validation_errors_name_the_argument(call, error, words):
    with pytest.raises(error, match=words):
        call()


def test_sdpa_backend_prints_nothing(capfd):
    q = torch.zeros(1, 1, 4, 8)
    hw.sdpa_backend(q, q, q)
    out, err = capfd.readouterr()
    assert out == "" and err == "", f"the profiler's log lines leaked: {err!r}"

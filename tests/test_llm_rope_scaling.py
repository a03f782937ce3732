"""RoPE scaling: each method's frequencies follow its paper's formula."""

from __future__ import annotations

import math

import pytest
import torch

import attnkit as ak
from attnkit.llm import rope_cos_sin, scaled_rope_frequencies


def test_no_scaling_is_plain_rope():
    theta, scale = scaled_rope_frequencies(16, base=500.0)
    cos, sin = rope_cos_sin(torch.arange(7, 12), theta, dtype=torch.float64)
    want_cos, want_sin = ak.rotary_cos_sin(5, 16, base=500.0, offset=7, dtype=torch.float64)
    torch.testing.assert_close(cos, want_cos, rtol=0, atol=1e-15)
    torch.testing.assert_close(sin, want_sin, rtol=0, atol=1e-15)
    assert scale == 1.0
    plain, _ = scaled_rope_frequencies(16)
    for method in ("pi", "ntk"):  # factor 1: nothing to stretch
        torch.testing.assert_close(scaled_rope_frequencies(16, method=method)[0], plain)


def test_position_interpolation_is_rope_at_positions_divided_by_s():
    theta, _ = scaled_rope_frequencies(8, method="pi", factor=4.0)
    plain, _ = scaled_rope_frequencies(8)
    pos = torch.arange(0, 40)
    torch.testing.assert_close(rope_cos_sin(pos, theta)[1], rope_cos_sin(pos / 4, plain)[1])


def test_ntk_divides_the_slowest_pair_by_s_and_keeps_the_fastest():
    plain, _ = scaled_rope_frequencies(64)
    ntk, _ = scaled_rope_frequencies(64, method="ntk", factor=8.0)
    assert ntk[0] == plain[0]
    assert math.isclose(float(ntk[-1]), float(plain[-1]) / 8, rel_tol=1e-12)
    ratio = plain / ntk
    assert bool((ratio[1:] > ratio[:-1]).all())  # interpolated more and more


def test_yarn_keeps_fast_pairs_interpolates_slow_pairs_and_ramps_between():
    d, L, s = 64, 256, 4.0
    plain, _ = scaled_rope_frequencies(d)
    yarn, logit_scale = scaled_rope_frequencies(
        d, method="yarn", factor=s, original_length=L, alpha=1.0, beta=32.0
    )
    turns = L * plain / (2 * math.pi)
    fast, slow = turns > 32, turns < 1
    assert fast.any() and slow.any() and (~fast & ~slow).any()
    torch.testing.assert_close(yarn[fast], plain[fast], rtol=0, atol=0)
    torch.testing.assert_close(yarn[slow], plain[slow] / s, rtol=1e-15, atol=0)
    mid = ~fast & ~slow
    gamma = (turns[mid] - 1) / 31
    torch.testing.assert_close(yarn[mid], (1 - gamma) * plain[mid] / s + gamma * plain[mid])
    assert logit_scale == pytest.approx((0.1 * math.log(4) + 1) ** 2)


def test_bad_arguments():
    with pytest.raises(ValueError, match="method"):
        scaled_rope_frequencies(8, method="linear")
    with pytest.raises(ValueError, match="original_length"):
        scaled_rope_frequencies(8, method="yarn", factor=2.0)
    with pytest.raises(ValueError, match="factor"):
        scaled_rope_frequencies(8, method="pi", factor=0.5)
    with pytest.raises(ValueError, match="even"):
        scaled_rope_frequencies(7)

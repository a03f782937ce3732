"""Running a RoPE model past the length it was trained on: position interpolation,
NTK-aware scaling and YaRN.

RoPE (:func:`attnkit.positional.apply_rotary`) turns position ``m`` into rotations by the angles
``m * theta_j``, ``theta_j = base^(-2j/d)`` for ``j = 0 .. d/2 - 1``. A model trained on
``L`` positions has seen every angle of the fast pairs (small ``j``: many full turns)
but only part of a turn of the slow ones; at ``m > L`` the slow pairs reach angles it never
saw. Each method below changes the frequencies for a context ``s`` times longer:

- **Position interpolation** (Chen et al. 2023): ``theta_j / s`` for every ``j`` -- the
  ``sL`` positions are squeezed into the trained range of angles; neighbouring
  positions become ``s`` times harder to tell apart.
- **NTK-aware scaling** (bloc97 2023, formalised by Peng et al. 2023, section 3.1): a
  larger base ``base * s^(d/(d-2))``: the slowest pair is divided by exactly ``s``, the
  fastest is unchanged, the ones between by less and less.
- **YaRN** (Peng et al. 2023, section 3.2-3.4, "NTK-by-parts" plus a temperature): pair
  ``j`` makes ``r_j = L / lambda_j`` turns over the trained length (wavelength
  ``lambda_j = 2 pi / theta_j``). Pairs with ``r_j > beta`` keep their frequency, pairs
  with ``r_j < alpha`` are interpolated by ``s``, and a linear ramp joins the two:
  ``theta'_j = (1 - gamma_j) theta_j / s + gamma_j theta_j``. The logits are multiplied
  by ``1/t`` with ``sqrt(1/t) = 0.1 ln(s) + 1``. The paper uses ``alpha = 1``,
  ``beta = 32`` for Llama.

:func:`scaled_rope_frequencies` returns the frequencies and the logit multiplier;
:func:`rope_cos_sin` turns frequencies into the ``cos``/``sin`` tables of
:func:`attnkit.positional.apply_rotary`.
"""

from __future__ import annotations

import math

import torch

from .._validate import (
    check_dtype,
    check_floating,
    check_positive_int,
    check_positive_number,
    check_tensor,
    fmt_shape,
)

__all__ = ["ROPE_SCALINGS", "rope_cos_sin", "scaled_rope_frequencies"]

ROPE_SCALINGS = ("none", "pi", "ntk", "yarn")


def scaled_rope_frequencies(
    head_dim: int,
    *,
    base: float = 10000.0,
    method: str = "none",
    factor: float = 1.0,
    original_length: int | None = None,
    alpha: float = 1.0,
    beta: float = 32.0,
) -> tuple[torch.Tensor, float]:
    """Rotary frequencies ``theta_j`` (float64, ``(head_dim / 2,)``) and the multiplier of
    the attention logits, for ``method`` in ``ROPE_SCALINGS`` and a context
    ``factor`` (``s``) times the trained length ``original_length`` (``L``, needed by
    YaRN only). ``factor = 1`` returns plain RoPE for every method."""
    head_dim = check_positive_int(head_dim, "head_dim")
    if head_dim % 2:
        raise ValueError(f"head_dim must be even, got {head_dim}.")
    base = check_positive_number(base, "base")
    s = check_positive_number(factor, "factor")
    if s < 1:
        raise ValueError(f"factor must be >= 1 (a longer context), got {factor}.")
    if method not in ROPE_SCALINGS:
        raise ValueError(f"method must be one of {ROPE_SCALINGS}, got {method!r}.")
    j = torch.arange(head_dim // 2, dtype=torch.float64)
    theta = base ** (-2 * j / head_dim)  # (head_dim / 2,)
    if method == "pi":
        return theta / s, 1.0
    if method == "ntk":
        new_base = base * s ** (head_dim / (head_dim - 2)) if head_dim > 2 else base * s
        return new_base ** (-2 * j / head_dim), 1.0
    if method == "yarn":
        if original_length is None:
            raise ValueError("method='yarn' needs original_length (the trained length L).")
        L = check_positive_int(original_length, "original_length")
        alpha = check_positive_number(alpha, "alpha")
        beta = check_positive_number(beta, "beta")
        if not alpha < beta:
            raise ValueError(f"alpha must be smaller than beta, got {alpha} and {beta}.")
        turns = L * theta / (2 * math.pi)  # r_j = L / lambda_j
        gamma = ((turns - alpha) / (beta - alpha)).clamp(0.0, 1.0)
        logit_scale = (0.1 * math.log(s) + 1.0) ** 2
        return (1 - gamma) * theta / s + gamma * theta, logit_scale
    return theta, 1.0


def rope_cos_sin(
    positions: torch.Tensor, theta: torch.Tensor, *, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos``/``sin`` tables ``(T, head_dim)`` for integer or real ``positions`` ``(T,)``
    and frequencies ``theta`` ``(head_dim / 2,)``, in the rotate-half layout of
    :func:`attnkit.positional.apply_rotary` (both halves repeat the angles)."""
    check_tensor(positions, "positions", min_dim=1)
    check_floating(check_tensor(theta, "theta", min_dim=1), "theta")
    dtype = check_dtype(dtype)
    if positions.dim() != 1 or theta.dim() != 1:
        raise ValueError(
            f"positions and theta must be 1-D tensors, got positions {fmt_shape(positions.shape)} "
            f"and theta {fmt_shape(theta.shape)}."
        )
    angles = torch.outer(positions.to(torch.float64), theta.to(torch.float64))  # (T, d/2)
    angles = torch.cat((angles, angles), dim=-1)  # (T, head_dim)
    return angles.cos().to(dtype), angles.sin().to(dtype)

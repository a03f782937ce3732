"""Attention and the hardware it runs on: the roofline, measured ceilings, SDPA backends.

The roofline model (Williams, Waterman & Patterson, 2009, "Roofline: an insightful visual
performance model for multicore architectures") bounds the speed of a kernel by two
ceilings of the machine: its peak arithmetic throughput (GFLOP/s) and its memory bandwidth
(GB/s) times the kernel's *arithmetic intensity*, the FLOPs it performs per byte it moves
to and from main memory::

    attainable GFLOP/s = min(peak GFLOP/s, intensity x bandwidth GB/s)

Attention computed naively writes the ``n x n`` scores to memory and reads them back, so
its intensity stays near ``d / 4`` FLOP/byte in float32 whatever ``n``; an IO-aware, fused
kernel (FlashAttention, Dao et al., 2022) reads ``Q, K, V`` and writes ``O`` once, so its
intensity grows like ``n``. This module counts those bytes and FLOPs, measures the two
ceilings of the machine it runs on, tells which kernel
``torch.nn.functional.scaled_dot_product_attention`` dispatched to, wraps ``torch.compile``
so that a missing compiler is reported rather than raised, and rounds float32 to bfloat16
with integer operations on the bit pattern.

* :func:`attention_flops`, :func:`attention_io_bytes`, :func:`arithmetic_intensity`,
  :func:`roofline`, :func:`ridge_point`: the model.
* :func:`matmul_gflops`, :func:`memory_bandwidth_gbs`: the two measured ceilings.
* :func:`sdpa_backend`: the ``aten`` kernel that SDPA ran, read from the profiler.
* :func:`compile_attention`: ``torch.compile`` with its compilation time, or the error.
* :func:`round_to_bfloat16`: round-to-nearest-even float32 -> bfloat16, returned as float32.
* :func:`plot_roofline`: the log-log roofline picture with measured points.

Conventions: a multiply-add counts as 2 FLOPs (as in ``torch.utils.flop_counter`` and
chapter 5); bytes are counted once per read and once per write of main memory; GFLOP/s
and GB/s are 10^9 per second.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ._validate import check_positive_int, check_positive_number, check_tensor
from .bench import time_call

ATTENTION_KINDS = ("naive", "fused")
"""The two memory-traffic models of :func:`attention_io_bytes` (its ``kind`` argument)."""

#: The ``aten`` kernels behind ``scaled_dot_product_attention`` (torch 2.x).
SDPA_KERNELS = (
    "aten::_scaled_dot_product_flash_attention_for_cpu",
    "aten::_scaled_dot_product_flash_attention",
    "aten::_scaled_dot_product_efficient_attention",
    "aten::_scaled_dot_product_cudnn_attention",
    "aten::_scaled_dot_product_attention_math_for_mps",
    "aten::_scaled_dot_product_attention_math",
)


# ---------------------------------------------------------------------------------------
# The model: FLOPs, bytes, intensity, roofline
# ---------------------------------------------------------------------------------------


def attention_flops(n: int, d: int, *, batch_heads: int = 1) -> int:
    """FLOPs of the two matrix products of attention, ``Q K^T`` and ``P V``.

    Args:
        n: sequence length (queries = keys = ``n``).
        d: head width (``d_k = d_v = d``).
        batch_heads: number of independent ``(n, d)`` heads, ``B x H``.

    Returns:
        ``batch_heads * 4 n^2 d`` (2 FLOPs per multiply-add; the softmax's few ``n^2``
        operations are not counted), the count of chapter 5 and ``FlopCounterMode``.
    """
    n = check_positive_int(n, "n")
    d = check_positive_int(d, "d")
    batch_heads = check_positive_int(batch_heads, "batch_heads")
    return batch_heads * 4 * n * n * d


def attention_io_bytes(
    n: int,
    d: int,
    *,
    kind: str = "naive",
    batch_heads: int = 1,
    dtype_bytes: int = 4,
    score_passes: int = 1,
) -> int:
    """Bytes that attention moves to and from main memory, in the ideal count of each kind.

    ``kind="fused"`` (IO-aware, FlashAttention): read ``Q, K, V`` and write ``O`` once,
    ``4 n d`` elements per head; the scores live in on-chip memory (registers, caches)
    only. This is a lower bound: a real kernel re-reads ``K`` and ``V`` once per block of
    queries unless they fit in cache.

    ``kind="naive"``: three kernels with the ``n x n`` matrix in main memory:
    ``S = Q K^T`` reads ``Q, K`` (``2 n d``) and writes ``S`` (``n^2``); each of
    ``score_passes`` element-wise passes over the scores (the softmax; a separate scaling
    ``/ sqrt(d)`` is a second pass) reads and writes ``n^2``; ``O = P V`` reads ``P``
    (``n^2``) and ``V`` (``n d``) and writes ``O`` (``n d``). In all
    ``4 n d + (2 + 2 score_passes) n^2`` elements per head.

    Args:
        n: sequence length; d: head width.
        kind: ``"naive"`` or ``"fused"``.
        batch_heads: number of heads ``B x H``.
        dtype_bytes: bytes per element (4 for float32, 2 for bfloat16).
        score_passes: element-wise passes over the ``n x n`` scores (naive only; >= 1).

    Returns:
        The byte count (int).
    """
    n = check_positive_int(n, "n")
    d = check_positive_int(d, "d")
    batch_heads = check_positive_int(batch_heads, "batch_heads")
    dtype_bytes = check_positive_int(dtype_bytes, "dtype_bytes")
    score_passes = check_positive_int(score_passes, "score_passes")
    if kind not in ATTENTION_KINDS:
        raise ValueError(f"kind must be one of {ATTENTION_KINDS}, got {kind!r}.")
    elements = 4 * n * d
    if kind == "naive":
        elements += (2 + 2 * score_passes) * n * n
    return batch_heads * dtype_bytes * elements


def arithmetic_intensity(flops: float, bytes_moved: float) -> float:
    """FLOPs per byte moved: ``flops / bytes_moved`` (both positive)."""
    flops = check_positive_number(flops, "flops")
    bytes_moved = check_positive_number(bytes_moved, "bytes_moved")
    return flops / bytes_moved


def roofline(intensity: float, peak_gflops: float, bandwidth_gbs: float) -> float:
    """Attainable GFLOP/s of a kernel of the given intensity (FLOP/byte) on a machine.

    ``min(peak_gflops, intensity * bandwidth_gbs)``: below the ridge point the kernel is
    memory-bound (the sloped line), above it compute-bound (the flat line).
    """
    intensity = check_positive_number(intensity, "intensity")
    peak_gflops = check_positive_number(peak_gflops, "peak_gflops")
    bandwidth_gbs = check_positive_number(bandwidth_gbs, "bandwidth_gbs")
    return min(peak_gflops, intensity * bandwidth_gbs)


def ridge_point(peak_gflops: float, bandwidth_gbs: float) -> float:
    """The intensity (FLOP/byte) where the two ceilings meet: ``peak / bandwidth``."""
    peak_gflops = check_positive_number(peak_gflops, "peak_gflops")
    bandwidth_gbs = check_positive_number(bandwidth_gbs, "bandwidth_gbs")
    return peak_gflops / bandwidth_gbs


# ---------------------------------------------------------------------------------------
# The ceilings, measured
# ---------------------------------------------------------------------------------------


def matmul_gflops(
    n: int = 1024, dtype: torch.dtype = torch.float32, *, repeats: int = 5, seed: int = 0
) -> float:
    """Measured throughput of one ``(n, n) @ (n, n)`` product in GFLOP/s (``2 n^3`` FLOPs).

    The time is :func:`attnkit.bench.time_call`'s minimum over ``repeats`` runs, with
    the current ``torch.get_num_threads()``; on CPU this is the practical compute ceiling
    (oneDNN / MKL kernels; bfloat16 uses AMX tiles where the CPU has them).
    """
    n = check_positive_int(n, "n")
    repeats = check_positive_int(repeats, "repeats")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}.")
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, n, generator=g).to(dtype)  # (n, n)
    b = torch.randn(n, n, generator=g).to(dtype)  # (n, n)
    out = torch.empty(n, n, dtype=dtype)
    seconds = time_call(lambda: torch.mm(a, b, out=out), repeats=repeats)
    return 2 * n**3 / seconds / 1e9


def memory_bandwidth_gbs(num_bytes: int = 2**28, *, repeats: int = 5) -> float:
    """Measured main-memory bandwidth in GB/s: a ``copy_`` of ``num_bytes`` bytes.

    A copy reads ``num_bytes`` and writes ``num_bytes``: both are counted (``2 num_bytes``
    per copy). Choose ``num_bytes`` well above the last-level cache, or this measures the
    cache instead.
    """
    num_bytes = check_positive_int(num_bytes, "num_bytes")
    repeats = check_positive_int(repeats, "repeats")
    src = torch.ones(max(1, num_bytes // 4), dtype=torch.float32)
    dst = torch.empty_like(src)
    seconds = time_call(lambda: dst.copy_(src), repeats=repeats)
    return 2 * src.numel() * 4 / seconds / 1e9


# ---------------------------------------------------------------------------------------
# Which kernel SDPA ran
# ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Send what C++ libraries write to file descriptor 2 to ``/dev/null`` meanwhile.

    The profiler's tracing library (kineto) logs a line at every start and stop, straight
    to the process's stderr, where no Python setting reaches it.
    """
    with contextlib.suppress(AttributeError, ValueError):
        sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)


def sdpa_backend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **kwargs: Any) -> str:
    """The ``aten`` kernel that ``F.scaled_dot_product_attention(q, k, v, **kwargs)`` runs.

    Runs the call once under ``torch.autograd.profiler.profile`` (the legacy profiler,
    which records ``aten`` ops; its tracing library's log lines are silenced) and returns
    the first recorded op of :data:`SDPA_KERNELS`, e.g.
    ``"aten::_scaled_dot_product_flash_attention_for_cpu"`` (the fused CPU kernel) or
    ``"aten::_scaled_dot_product_attention_math"`` (the unfused fallback, which
    materialises the scores). ``kwargs`` are passed on (``attn_mask``, ``dropout_p``,
    ``is_causal``, ``scale``, ``enable_gqa``).
    """
    check_tensor(q, "q", min_dim=2)
    check_tensor(k, "k", min_dim=2)
    check_tensor(v, "v", min_dim=2)
    with _native_stderr_silenced(), torch.autograd.profiler.profile(use_kineto=False) as prof:
        F.scaled_dot_product_attention(q, k, v, **kwargs)
    names = [event.name for event in prof.function_events]
    for name in names:
        if name in SDPA_KERNELS:
            return name
    raise RuntimeError(f"no known SDPA kernel among the recorded ops: {sorted(set(names))}")


# ---------------------------------------------------------------------------------------
# torch.compile, timed, without crashing where there is no compiler
# ---------------------------------------------------------------------------------------


@dataclass
class CompiledFunction:
    """What :func:`compile_attention` returns.

    ``fn`` is the compiled function (``None`` if compilation failed), ``compile_seconds``
    the wall-clock time of the first call (tracing + code generation + C++ compilation),
    ``error`` the failure's ``"Type: message"`` (``None`` on success), ``code`` the
    Python wrapper code that Inductor generated on that first call (``""`` for other
    back ends); it names every kernel the compiled function calls.
    """

    fn: Callable[..., torch.Tensor] | None
    compile_seconds: float
    error: str | None = None
    code: str = ""


def compile_attention(
    fn: Callable[..., torch.Tensor],
    *example_inputs: torch.Tensor,
    dynamic: bool = False,
    **compile_kwargs: Any,
) -> CompiledFunction:
    """``torch.compile(fn, dynamic=dynamic, **compile_kwargs)``, compiled now and timed.

    The first call on ``example_inputs`` (under ``torch.no_grad``) triggers compilation;
    its wall-clock time and the code Inductor generated are returned. Any exception (no
    C++ compiler, an unsupported platform) is caught and reported in ``error`` so that a
    notebook can say so and go on.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}.")
    start = time.perf_counter()
    try:
        from torch._inductor.utils import run_and_get_code

        compiled = torch.compile(fn, dynamic=dynamic, **compile_kwargs)
        with torch.no_grad():
            _, codes = run_and_get_code(compiled, *example_inputs)
    except Exception as err:  # any failure is reported, not raised
        message = str(err).strip().splitlines()[0] if str(err).strip() else ""
        return CompiledFunction(
            None, time.perf_counter() - start, f"{type(err).__name__}: {message}"
        )
    return CompiledFunction(compiled, time.perf_counter() - start, code="\n".join(codes))


# ---------------------------------------------------------------------------------------
# bfloat16
# ---------------------------------------------------------------------------------------


def round_to_bfloat16(x: torch.Tensor) -> torch.Tensor:
    """Round float32 values to the nearest bfloat16 (ties to even), returned as float32.

    bfloat16 is the top 16 bits of a float32: sign, the same 8 exponent bits, 7 mantissa
    bits. Rounding adds ``0x7FFF`` plus the lowest kept bit to the int32 bit pattern and
    clears the low 16 bits (a carry into the exponent is the correct rounding up, up to
    ``inf``); NaN stays NaN. Equals ``x.to(torch.bfloat16).float()`` bit for bit,
    subnormals included.

    Args:
        x: a float32 tensor of any shape.

    Returns:
        float32 tensor of the same shape whose values are exactly representable in bfloat16.
    """
    check_tensor(x, "x")
    if x.dtype != torch.float32:
        raise TypeError(f"x must be a float32 tensor, got {x.dtype}.")
    bits = x.contiguous().view(torch.int32)
    lowest_kept = (bits >> 16) & 1  # 1 if the result would be odd: ties go to even
    rounded = (bits + 0x7FFF + lowest_kept) & -0x10000  # clear the low 16 bits
    return torch.where(torch.isnan(x), x, rounded.view(torch.float32))


# ---------------------------------------------------------------------------------------
# The picture
# ---------------------------------------------------------------------------------------


def plot_roofline(
    ax: Any,
    peaks_gflops: Mapping[str, float],
    bandwidth_gbs: float,
    points: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    intensity_range: tuple[float, float] = (0.5, 2000.0),
    labels: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """Draw a log-log roofline on the matplotlib axes ``ax``.

    Args:
        ax: matplotlib axes.
        peaks_gflops: one flat ceiling per entry, e.g. ``{"float32 matmul": 400.0}``.
        bandwidth_gbs: the memory ceiling's slope (GB/s).
        points: per series, ``(intensities in FLOP/byte, achieved GFLOP/s)``.
        intensity_range: the x-axis range (FLOP/byte).
        labels: optional per-series text next to each point (e.g. ``"n=1024"``).
    """
    bandwidth_gbs = check_positive_number(bandwidth_gbs, "bandwidth_gbs")
    lo, hi = intensity_range
    xs = [lo * (hi / lo) ** (i / 199) for i in range(200)]
    for (name, peak), style in zip(peaks_gflops.items(), ("-", "--", ":", "-.")):
        ax.plot(
            xs,
            [roofline(x, peak, bandwidth_gbs) for x in xs],
            "k" + style,
            lw=1.2,
            label=f"roofline: {name} {peak:.0f} GFLOP/s, {bandwidth_gbs:.0f} GB/s",
        )
    for (name, (intensities, gflops)), marker in zip(points.items(), "osD^v<>"):
        ax.plot(intensities, gflops, marker=marker, ls="", ms=7, label=name)
        for i, (x, y) in enumerate(zip(intensities, gflops)):
            if labels and name in labels:
                ax.annotate(
                    labels[name][i], (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7
                )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_xlabel("arithmetic intensity (FLOP / byte of main memory)")
    ax.set_ylabel("attainable / achieved GFLOP/s")
    ax.legend(fontsize=7, loc="lower right")


__all__ = [
    "ATTENTION_KINDS",
    "SDPA_KERNELS",
    "CompiledFunction",
    "arithmetic_intensity",
    "attention_flops",
    "attention_io_bytes",
    "compile_attention",
    "matmul_gflops",
    "memory_bandwidth_gbs",
    "plot_roofline",
    "ridge_point",
    "roofline",
    "round_to_bfloat16",
    "sdpa_backend",
]

"""Time and memory of every attention method, measured on this machine.

Run ``python -m attnkit.bench`` (``--help`` for options). For each method and sequence
length ``n`` it measures, on inputs of shape ``(B, H, n, d)`` in float32:

* **time**: the minimum over repeated forward passes (after a warm-up) in this process,
  with ``torch.set_num_threads(threads)``; the minimum is the least noisy estimate of
  what the code costs (Chen & Revels, 2016, "Robust benchmarking in noisy environments").
* **peak extra memory**: in a *fresh* subprocess per point, the rise of the resident set
  size during one call: the kernel's high-water mark ``VmHWM`` is reset just before the
  call (``/proc/self/clear_refs``) and read after it, minus the resident size before it.
  ``tracemalloc`` cannot be used: it does not see the memory that torch allocates.

It prints one table per quantity with ratios to naive attention and to
``torch.nn.functional.scaled_dot_product_attention``, checks the project's targets
(:data:`TARGETS`), writes JSON and, with ``--plots DIR``, the figures the book shows.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

Attention = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


# ---------------------------------------------------------------------------------------
# The methods
# ---------------------------------------------------------------------------------------


def naive_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The textbook ``softmax(q k^T / sqrt(d)) v``, forming the whole ``n x n`` matrix."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, H, n, n)
    return torch.softmax(scores, dim=-1) @ v  # (B, H, n, d)


@dataclass(frozen=True)
class Method:
    """One benchmarked method: a name, how to build it for ``n``, and its size class.

    ``build(n, d, generator)`` returns a function ``(q, k, v) -> out`` with any fixed
    parameters (projections, random features, layouts) already drawn, so that only the
    attention itself is timed.
    """

    name: str
    label: str
    build: Callable[[int, int, torch.Generator], Attention]
    linear: bool = False
    exact: bool = True


def _fixed(fn: Attention) -> Callable[[int, int, torch.Generator], Attention]:
    return lambda n, d, g: fn


def _tiled(n: int, d: int, g: torch.Generator) -> Attention:
    from .efficient.tiled import tiled_attention

    return tiled_attention


def _local(n: int, d: int, g: torch.Generator) -> Attention:
    from .efficient.local import local_attention

    return lambda q, k, v: local_attention(q, k, v, LOCAL_WINDOW)


def _strided(n: int, d: int, g: torch.Generator) -> Attention:
    from .efficient.sparse_transformer import sparse_transformer_attention

    stride = sparse_stride(n)
    return lambda q, k, v: sparse_transformer_attention(q, k, v, "strided", stride, causal=False)


def _bigbird(n: int, d: int, g: torch.Generator) -> Attention:
    from .efficient.bigbird import bigbird_attention, bigbird_layout

    n_blocks = -(-n // BIGBIRD_BLOCK)
    layout = bigbird_layout(n_blocks, generator=g)
    return lambda q, k, v: bigbird_attention(q, k, v, layout, block_size=BIGBIRD_BLOCK)


def _longformer(n: int, d: int, g: torch.Generator) -> Attention:
    from .efficient.longformer import longformer_attention

    index = torch.tensor([0])
    return lambda q, k, v: longformer_attention(q, k, v, q, k, v, LOCAL_WINDOW, index)


def _linformer(n: int, d: int, g: torch.Generator) -> Attention:
    from .efficient.linformer import linformer_attention

    e = torch.randn(LINFORMER_K, n, generator=g) / math.sqrt(LINFORMER_K)  # (k, n)
    f = torch.randn(LINFORMER_K, n, generator=g) / math.sqrt(LINFORMER_K)  # (k, n)
    return lambda q, k, v: linformer_attention(q, k, v, e, f)


def _performer(n: int, d: int, g: torch.Generator) -> Attention:
    from .efficient.performer import favor_attention, orthogonal_gaussian_features

    projection = orthogonal_gaussian_features(PERFORMER_FEATURES, d, generator=g)  # (m, d)
    return lambda q, k, v: favor_attention(q, k, v, projection)


def _linear(n: int, d: int, g: torch.Generator) -> Attention:
    from .efficient.kernel import linear_attention

    return linear_attention


def sparse_stride(n: int) -> int:
    """The Sparse Transformer's stride for length ``n``: the power of two nearest sqrt(n)."""
    return 2 ** round(math.log2(math.sqrt(n)))


LOCAL_WINDOW = 128  # keys on each side: 257 keys per query, "w = 256"
BIGBIRD_BLOCK = 64
LINFORMER_K = 128
PERFORMER_FEATURES = 256  # about d log d for d = 64, the paper's choice

METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("naive", "naive softmax(QK^T)V", _fixed(naive_attention)),
        Method("torch_sdpa", "torch SDPA (fused)", _fixed(F.scaled_dot_product_attention)),
        Method("tiled", "attnkit tiled (exact)", _tiled),
        Method("sparse_strided", "Sparse Transformer, strided", _strided),
        Method("local", f"local, window ±{LOCAL_WINDOW}", _local, linear=True),
        Method("longformer", "Longformer (window + 1 global)", _longformer, linear=True),
        Method("bigbird", "BigBird (blocks of 64)", _bigbird, linear=True),
        Method("linformer", f"Linformer, k = {LINFORMER_K}", _linformer, linear=True, exact=False),
        Method(
            "performer",
            f"Performer, m = {PERFORMER_FEATURES}",
            _performer,
            linear=True,
            exact=False,
        ),
        Method("linear", "linear (elu + 1)", _linear, linear=True, exact=False),
    )
}


# ---------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------


def make_inputs(
    n: int, *, d: int = 64, batch: int = 1, heads: int = 4, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random float32 ``q, k, v`` of shape ``(batch, heads, n, d)``."""
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(batch, heads, n, d, generator=g) for _ in range(3))  # type: ignore[return-value]


def time_call(fn: Callable[[], object], *, repeats: int = 5, warmup: int = 1) -> float:
    """Minimum wall-clock seconds of ``fn()`` over ``repeats`` runs, after ``warmup`` runs."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got {repeats}, {warmup}.")
    with torch.inference_mode():
        for _ in range(warmup):
            fn()
        best = math.inf
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - start)
    return best


def time_in_turns(
    fns: Mapping[str, Callable[[], object]], *, repeats: int = 5, warmup: int = 1
) -> dict[str, float]:
    """Minimum wall-clock seconds of each function, timed in turns.

    Each of ``repeats`` rounds calls every function once, in the order given, after
    ``warmup`` calls of each (lazy initialisation and first-touch memory are not the
    cost). Taking turns makes the comparison fair on a shared machine: a burst of load
    from another process slows every contender of that round, not one of them; the
    minimum is the least noisy estimate. Runs under ``torch.inference_mode()``.

    Args:
        fns: names to functions of no argument, e.g. ``{"naive": lambda: f(q, k, v)}``.
        repeats: timed rounds, ``>= 1``.
        warmup: untimed calls of each function first, ``>= 0``.

    Returns:
        ``{name: seconds}``, in the order of ``fns``.
    """
    if not isinstance(fns, Mapping) or not fns or not all(callable(f) for f in fns.values()):
        raise TypeError("fns must be a non-empty mapping of names to functions of no argument.")
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got {repeats}, {warmup}.")
    best = dict.fromkeys(fns, math.inf)
    with torch.inference_mode():
        for _ in range(warmup):
            for fn in fns.values():
                fn()
        for _ in range(repeats):
            for name, fn in fns.items():
                start = time.perf_counter()
                fn()
                best[name] = min(best[name], time.perf_counter() - start)
    return best


def _status_kb(field_name: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field_name} not found in /proc/self/status")


def _release_free_memory() -> None:
    """Give freed heap memory back to the OS (glibc), so that reusing it counts as growth."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def measure_peak_extra(fn: Callable[[], object]) -> int:
    """Bytes by which the resident set size rose at its peak during ``fn()`` (Linux only).

    Memory that the process freed earlier but still holds would be reused without
    raising the resident size, so it is first handed back to the OS (``malloc_trim``).
    """
    _release_free_memory()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the high-water mark VmHWM to the current RSS
    before = _status_kb("VmRSS")
    fn()
    return max(0, _status_kb("VmHWM") - before) * 1024


def saved_for_backward(fn: Callable[[], object]) -> list[int]:
    """Sizes in bytes of the distinct storages that autograd keeps for the backward pass
    while ``fn()`` runs (a storage saved several times, or a view of it, counts once).

    Watched with :func:`torch.autograd.graph.saved_tensors_hooks`: this is what training
    holds in memory per layer until the backward pass reaches it.
    """
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return list(storages.values())


def _worker(method: str, n: int, d: int, batch: int, heads: int, threads: int) -> dict:
    """Inside the fresh subprocess: warm the method up on a short input, then measure."""
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    small = make_inputs(256, d=d, batch=batch, heads=heads)
    with torch.inference_mode():
        METHODS[method].build(256, d, g)(*small)  # lazy initialisation is not the method's cost
    q, k, v = make_inputs(n, d=d, batch=batch, heads=heads)
    fn = METHODS[method].build(n, d, g)
    with torch.inference_mode():
        return {"peak_extra_bytes": measure_peak_extra(lambda: fn(q, k, v))}


def peak_extra_memory(
    method: str, n: int, *, d: int = 64, batch: int = 1, heads: int = 4, threads: int = 2
) -> int:
    """Peak extra bytes of one forward pass of ``method`` at length ``n``, in a new process."""
    _check_method(method)
    cmd = [sys.executable, "-m", "attnkit.bench", "--worker", method, str(n)]
    cmd += ["--d", str(d), "--batch", str(batch), "--heads", str(heads), "--threads", str(threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"memory worker for {method} at n={n} failed:\n{done.stderr[-2000:]}")
    return int(json.loads(done.stdout.strip().splitlines()[-1])["peak_extra_bytes"])


def _check_method(name: str) -> None:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHODS)}.")


@dataclass
class Point:
    """One measurement: ``seconds`` is the minimum over repeats, memory in bytes."""

    method: str
    n: int
    seconds: float | None = None
    peak_extra_bytes: int | None = None


@dataclass
class Results:
    """Everything one run measured, with the conditions it ran under."""

    d: int
    batch: int
    heads: int
    threads: int
    points: list[Point] = field(default_factory=list)
    machine: dict = field(default_factory=dict)

    def get(self, method: str, n: int) -> Point | None:
        """The point of ``method`` at length ``n``, or ``None`` if this run has none."""
        for p in self.points:
            if p.method == method and p.n == n:
                return p
        return None

    def series(self, method: str, what: str = "seconds") -> tuple[list[int], list[float]]:
        """``(ns, values)`` of one method, skipping points that were not measured."""
        pts = sorted((p for p in self.points if p.method == method), key=lambda p: p.n)
        pairs = [(p.n, getattr(p, what)) for p in pts if getattr(p, what) is not None]
        return [n for n, _ in pairs], [val for _, val in pairs]

    def to_json(self) -> dict:
        """A JSON-serialisable ``dict`` of the whole run (the inverse of :meth:`from_json`)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Results:
        """Rebuild a :class:`Results` from the ``dict`` of :meth:`to_json`."""
        points = [Point(**p) for p in data["points"]]
        return cls(**{**data, "points": points})


COMMITTED = "book/data/efficient_bench.json"  # relative to the repository root


def load_committed(path: str | os.PathLike | None = None) -> tuple[Results, list[str]]:
    """The committed benchmark that chapters 6 and 7 read, and where it comes from.

    Args:
        path: the JSON file written by ``python -m attnkit.bench --json``; default
            ``COMMITTED`` under the repository that holds this package.

    Returns:
        ``(results, provenance)``: the :class:`Results`, and lines saying which file,
        measured on what, changed by which commit (asked of git when it is available) and
        with which inputs.

    Raises:
        FileNotFoundError: when the file is missing, saying how to create it.
    """
    root = Path(__file__).resolve().parents[1]
    file = root / COMMITTED if path is None else Path(path)
    if not file.exists():
        raise FileNotFoundError(
            f"{file} is missing; create it with `python -m attnkit.bench --json {file}` "
            "(about 3 minutes)."
        )
    res = Results.from_json(json.loads(file.read_text(encoding="utf-8")))
    try:
        commit = subprocess.run(
            ["git", "log", "-1", "--format=%h, %cs", "--", str(file)],
            cwd=file.parent, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        commit = ""
    shown = file.relative_to(root) if file.is_relative_to(root) else file
    provenance = [
        f"file: {shown}",
        "measured on: " + ", ".join(f"{key} = {value}" for key, value in res.machine.items()),
        f"last commit that changed it: {commit or 'unknown (no git history here)'}",
        f"inputs (B, H, n, d) = ({res.batch}, {res.heads}, n, {res.d}), float32, forward pass only",
    ]
    return res, provenance


def machine_info(threads: int) -> dict:
    """What the numbers depend on: CPU, threads, torch version."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "threads": threads,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def default_lengths(method: Method, ns: Sequence[int], linear_ns: Sequence[int]) -> list[int]:
    """The lengths to run ``method`` at: ``linear_ns`` for a linear-time method, else ``ns``."""
    return list(linear_ns if method.linear else ns)


def _time_point(
    method: Method,
    n: int,
    d: int,
    batch: int,
    heads: int,
    g: torch.Generator,
    budget_seconds: float,
) -> float:
    """Minimum forward time; as many repeats (2..10) as fit in ``budget_seconds``."""
    q, k, v = make_inputs(n, d=d, batch=batch, heads=heads)
    fn = method.build(n, d, g)
    first = time_call(lambda: fn(q, k, v), repeats=1, warmup=1)
    repeats = int(max(2, min(10, budget_seconds // max(first, 1e-9))))
    return min(first, time_call(lambda: fn(q, k, v), repeats=repeats, warmup=0))


def run(
    methods: Sequence[str] = tuple(METHODS),
    ns: Sequence[int] = (1024, 2048, 4096, 8192, 16384),
    linear_ns: Sequence[int] = (1024, 2048, 4096, 8192, 16384, 32768),
    *,
    d: int = 64,
    batch: int = 1,
    heads: int = 4,
    threads: int = 2,
    memory: bool = True,
    budget_seconds: float = 2.0,
    progress: bool = True,
) -> Results:
    """Measure every method at every length; see the module docstring for how."""
    for name in methods:
        _check_method(name)
    torch.set_num_threads(threads)
    res = Results(d=d, batch=batch, heads=heads, threads=threads, machine=machine_info(threads))
    g = torch.Generator().manual_seed(0)
    for name in methods:
        method = METHODS[name]
        for n in default_lengths(method, ns, linear_ns):
            seconds = _time_point(method, n, d, batch, heads, g, budget_seconds)
            point = Point(name, n, seconds=seconds)
            if memory:
                point.peak_extra_bytes = peak_extra_memory(
                    name, n, d=d, batch=batch, heads=heads, threads=threads
                )
            res.points.append(point)
            if progress:
                mem = (
                    ""
                    if point.peak_extra_bytes is None
                    else f", {point.peak_extra_bytes / 2**20:8.1f} MiB"
                )
                print(f"  {name:>15} n={n:>6}: {seconds * 1e3:9.2f} ms{mem}", flush=True)
    return res


# ---------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------


def loglog_slope(ns: Sequence[float], values: Sequence[float]) -> float:
    """Least-squares slope of ``log(value)`` against ``log(n)``: 1 = linear, 2 = quadratic."""
    if len(ns) < 2 or len(ns) != len(values):
        raise ValueError("need at least two (n, value) pairs of equal length.")
    xs = [math.log(n) for n in ns]
    ys = [math.log(val) for val in values]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx


@dataclass(frozen=True)
class Target:
    """A goal from the project's issue, checked against a run's figures."""

    text: str
    compute: Callable[[Results], float | None]
    op: str  # ">=" or "<="
    bound: float

    def check(self, res: Results) -> tuple[float | None, bool | None]:
        """``(value, met)``: the figure computed from ``res`` and whether it satisfies
        ``op bound``; ``(None, None)`` when ``res`` lacks what it needs."""
        value = self.compute(res)
        if value is None:
            return None, None
        return value, (value >= self.bound) if self.op == ">=" else (value <= self.bound)


def _ratio(res: Results, a: str, b: str, n: int, what: str = "seconds") -> float | None:
    pa, pb = res.get(a, n), res.get(b, n)
    if pa is None or pb is None or getattr(pa, what) is None or getattr(pb, what) is None:
        return None
    if getattr(pb, what) == 0:
        return None
    return getattr(pa, what) / getattr(pb, what)


def _slope(res: Results, method: str, lo: int, hi: int) -> float | None:
    ns, ts = res.series(method)
    pairs = [(n, t) for n, t in zip(ns, ts) if lo <= n <= hi]
    if len(pairs) < 2 or pairs[0][0] != lo or pairs[-1][0] != hi:
        return None
    return loglog_slope([n for n, _ in pairs], [t for _, t in pairs])


def _inverse(x: float | None) -> float | None:
    return None if x is None or x == 0 else 1.0 / x


TARGETS: tuple[Target, ...] = (
    Target(
        "tiled throughput / torch SDPA throughput at n=4096",
        lambda r: _ratio(r, "torch_sdpa", "tiled", 4096),
        ">=",
        0.7,
    ),
    Target(
        "tiled speed-up over naive at n=4096",
        lambda r: _ratio(r, "naive", "tiled", 4096),
        ">=",
        1.5,
    ),
    Target(
        "naive peak extra memory / tiled's at n=8192",
        lambda r: _ratio(r, "naive", "tiled", 8192, "peak_extra_bytes"),
        ">=",
        20.0,
    ),
    Target(
        "local (window ±128) log-log time slope, n=4K..32K",
        lambda r: _slope(r, "local", 4096, 32768),
        "<=",
        1.3,
    ),
    Target(
        "local speed-up over torch SDPA at n=16384",
        lambda r: _ratio(r, "torch_sdpa", "local", 16384),
        ">=",
        3.0,
    ),
    Target(
        "Linformer (k=128) speed-up over naive at n=4096",
        lambda r: _ratio(r, "naive", "linformer", 4096),
        ">=",
        2.0,
    ),
    Target(
        "Performer log-log time slope, n=1K..32K",
        lambda r: _slope(r, "performer", 1024, 32768),
        "<=",
        1.2,
    ),
)
"""The project's goals, checked by :func:`format_targets` after each run."""


def format_tables(res: Results) -> str:
    """Time and memory tables with ratios to naive and to torch's SDPA."""
    lines = []
    methods = list(dict.fromkeys(p.method for p in res.points))
    ns = sorted({p.n for p in res.points})
    for what, unit, scale in (("seconds", "ms", 1e3), ("peak_extra_bytes", "MiB", 2.0**-20)):
        if all(getattr(p, what) is None for p in res.points):
            continue
        title = "time (min over repeats)" if what == "seconds" else "peak extra memory"
        lines.append(f"\n{title}, {unit}; in brackets: x naive / x torch SDPA")
        lines.append(f"{'method':>15} " + " ".join(f"{n:>22}" for n in ns))
        for m in methods:
            cells = []
            for n in ns:
                p = res.get(m, n)
                if p is None or getattr(p, what) is None:
                    cells.append(f"{'-':>22}")
                    continue
                val = getattr(p, what) * scale
                r_naive = _ratio(res, m, "naive", n, what)
                r_sdpa = _ratio(res, m, "torch_sdpa", n, what)
                rn = "-" if r_naive is None else f"{r_naive:.2f}"
                rs = "-" if r_sdpa is None else f"{r_sdpa:.2f}"
                cells.append(f"{val:>9.1f} ({rn:>4}/{rs:>5})")
            lines.append(f"{m:>15} " + " ".join(cells))
    return "\n".join(lines)


def format_targets(res: Results) -> str:
    """A text table: each of :data:`TARGETS`, its value in ``res`` and whether it is met."""
    lines = ["\ntargets:"]
    for t in TARGETS:
        value, ok = t.check(res)
        verdict = "not measured" if ok is None else ("met" if ok else "MISSED")
        shown = "-" if value is None else f"{value:.2f}"
        lines.append(f"  [{verdict:>12}] {t.text}: {shown} (goal {t.op} {t.bound})")
    return "\n".join(lines)


def plot(res: Results, what: str = "seconds", ax=None, methods: Sequence[str] | None = None):
    """Log-log plot of time (``what="seconds"``) or peak extra memory against ``n``."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5))
    names = methods or list(dict.fromkeys(p.method for p in res.points))
    scale, unit = (1.0, "seconds") if what == "seconds" else (2.0**-20, "MiB")
    for name in names:
        ns, vals = res.series(name, what)
        vals = [max(v * scale, 1e-3 if what != "seconds" else 0) for v in vals]
        if not ns:
            continue
        style = "-" if METHODS[name].exact else "--"
        ax.loglog(ns, vals, style, marker="o", ms=3, label=METHODS[name].label)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("sequence length n")
    kind = "forward time" if what == "seconds" else "peak extra memory"
    ax.set_ylabel(f"{kind} ({unit})")
    ax.set_title(
        f"{kind}, d={res.d}, (B, H)=({res.batch}, {res.heads}), {res.threads} threads, float32"
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return ax


# ---------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m attnkit.bench",
        description="Time and peak memory of attnkit's attention methods against naive "
        "attention and torch's fused scaled_dot_product_attention.",
    )
    p.add_argument("--methods", nargs="+", default=list(METHODS), help="methods to measure")
    p.add_argument("--n", nargs="+", type=int, default=[1024, 2048, 4096, 8192, 16384])
    p.add_argument(
        "--linear-n",
        nargs="+",
        type=int,
        default=[1024, 2048, 4096, 8192, 16384, 32768],
        help="lengths for the linear-time methods",
    )
    p.add_argument("--d", type=int, default=64, help="head dimension")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    p.add_argument("--json", default=None, help="write the results to this JSON file")
    p.add_argument("--plots", default=None, help="write time.png and memory.png to this folder")
    p.add_argument("--worker", nargs=2, metavar=("METHOD", "N"), help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: measure, print the tables and the targets, optionally write the
    results as JSON (``--json``) and plots (``--plots``); returns 0."""
    args = _parser().parse_args(argv)
    for name in ("d", "batch", "heads", "threads"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name} must be a positive integer, got {getattr(args, name)}.")
    if args.worker:
        method, n = args.worker
        out = _worker(method, int(n), args.d, args.batch, args.heads, args.threads)
        print(json.dumps(out))
        return 0
    for name in args.methods:
        if name not in METHODS:
            raise SystemExit(f"unknown method {name!r}; choose from {', '.join(METHODS)}.")
    if any(n < 1 for n in [*args.n, *args.linear_n]):
        raise SystemExit("--n and --linear-n must be positive integers.")
    start = time.perf_counter()
    res = run(
        args.methods,
        args.n,
        args.linear_n,
        d=args.d,
        batch=args.batch,
        heads=args.heads,
        threads=args.threads,
        memory=not args.no_memory,
    )
    print(format_tables(res))
    print(format_targets(res))
    print(f"\nmachine: {res.machine}; total {time.perf_counter() - start:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res.to_json(), f, indent=1)
        print(f"wrote {args.json}")
    if args.plots:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        os.makedirs(args.plots, exist_ok=True)
        for what, fname in (("seconds", "time.png"), ("peak_extra_bytes", "memory.png")):
            ax = plot(res, what)
            ax.figure.tight_layout()
            ax.figure.savefig(os.path.join(args.plots, fname), dpi=120)
            plt.close(ax.figure)
        print(f"wrote plots to {args.plots}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""How closely does attnkit's scaled dot-product attention agree with PyTorch's?

Runs many random cases (shapes with 0-3 broadcasting batch dimensions, n_q != n_k,
d_v != d_k, no mask / bool / additive / causal masks of several broadcast shapes, custom
scales; fixed seeds) through ``attnkit.scaled_dot_product_attention`` and
``torch.nn.functional.scaled_dot_product_attention`` and prints, per dtype, the largest
disagreement between the two. For bfloat16 and float16 it also prints each
implementation's error against a float64 reference computed from the same (rounded)
16-bit inputs, so that one sees which of the two is closer to the exact answer.

Errors (the worst over all cases): ``max abs`` is ``max |a - b|`` over the output
elements; ``max rel`` is ``max |a - b| / max |b|`` per case, the error relative to the
size of that case's output (an element-wise ratio would be dominated by outputs that
happen to be near 0). For 16-bit dtypes ``beyond 1 rounding`` is
``max (|a - b| - u |b|) / max |b|`` with ``u = eps / 2``: rounding the exact result once
to the 16-bit type costs up to ``u |b|``, so a value near 0 (float32 noise) means "as
accurate as a 16-bit output can be", and a value of order ``u`` means intermediate
results were rounded to 16 bits too.

Usage (from the repository root)::

    python benchmarks/sdpa_agreement.py [--cases 2000] [--seed 0] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

try:
    import attnkit
except ImportError:  # running from a checkout in which attnkit is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import attnkit

DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
HALF = ("bfloat16", "float16")
MASK_KINDS = ("none", "bool", "float", "causal_top_left", "causal_lower_right")


def _randint(gen: torch.Generator, lo: int, hi: int) -> int:
    """Uniform integer in [lo, hi]."""
    return int(torch.randint(lo, hi + 1, (1,), generator=gen))


def random_case(gen: torch.Generator, dtype: torch.dtype) -> dict:
    """One random attention problem: q, k, v, mask and scale, all in ``dtype``."""
    batch = [_randint(gen, 1, 3) for _ in range(_randint(gen, 0, 3))]
    # Each batch dim of q and of k/v is independently either full or 1 (broadcast).
    q_batch = [b if _randint(gen, 0, 3) else 1 for b in batch]
    kv_batch = [b if _randint(gen, 0, 3) else 1 for b in batch]
    if kv_batch and _randint(gen, 0, 3) == 0:
        kv_batch = kv_batch[1:]  # k/v with fewer leading dims than q
    full_batch = list(torch.broadcast_shapes(tuple(q_batch), tuple(kv_batch)))
    n_q, n_k = _randint(gen, 1, 12), _randint(gen, 1, 12)
    d_k, d_v = _randint(gen, 1, 32), _randint(gen, 1, 32)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen, dtype=torch.float64).to(dtype)

    q, k, v = randn(*q_batch, n_q, d_k), randn(*kv_batch, n_k, d_k), randn(*kv_batch, n_k, d_v)
    kind = MASK_KINDS[_randint(gen, 0, len(MASK_KINDS) - 1)]
    shapes = [
        (n_q, n_k),
        (*full_batch, n_q, n_k),
        (*full_batch, 1, n_k),
        (*[1] * len(full_batch), n_q, n_k),
    ]
    shape = shapes[_randint(gen, 0, len(shapes) - 1)]
    mask = None
    if kind == "bool":
        mask = torch.rand(shape, generator=gen) < 0.75
    elif kind == "float":
        mask = torch.randn(shape, generator=gen, dtype=torch.float64)
        mask = mask.masked_fill(torch.rand(shape, generator=gen) < 0.2, -math.inf).to(dtype)
    elif kind == "causal_top_left":
        mask = attnkit.causal_mask(n_q, n_k, offset=0)
    elif kind == "causal_lower_right":
        mask = attnkit.causal_mask(n_q, n_k)
    # default scale 1/sqrt(d_k) or a custom one between a quarter and twice that (as in tests)
    factor = 0.25 + 1.75 * float(torch.rand((), generator=gen))
    scale = None if _randint(gen, 0, 1) else factor / math.sqrt(d_k)
    return {"q": q, "k": k, "v": v, "mask": mask, "scale": scale}


def reference_float64(q, k, v, mask, scale) -> torch.Tensor:
    """softmax(q k^T * scale + mask) v in float64, rows with no allowed key -> 0."""
    q, k, v = q.double(), k.double(), v.double()
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * scale
    if mask is not None:
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, -math.inf)
        else:
            scores = scores + mask.double()
    weights = torch.softmax(scores, dim=-1)
    allowed = torch.isfinite(scores).any(dim=-1, keepdim=True)
    weights = torch.where(allowed, weights, torch.zeros_like(weights))
    return weights @ v


def errors(a: torch.Tensor, b: torch.Tensor, u: float | None = None) -> dict[str, float]:
    """Largest errors of ``a`` against the reference ``b`` (one case).

    ``abs``: max |a - b|. ``rel``: max |a - b| / max |b|. With a unit roundoff ``u``
    also ``beyond_1_rounding``: max (|a - b| - u |b|) / max |b|, how far ``a`` is from
    being the reference rounded once to the output dtype (<= 0 would be exact rounding).
    """
    diff = (a.double() - b.double()).abs()
    out = {"abs": 0.0, "rel": 0.0}
    if u is not None:
        out["beyond_1_rounding"] = -math.inf
    if diff.numel() == 0:
        return out
    size = float(b.double().abs().max()) or 1.0
    out["abs"] = float(diff.max())
    out["rel"] = out["abs"] / size
    if u is not None:
        out["beyond_1_rounding"] = float((diff - u * b.double().abs()).max()) / size
    return out


def run(cases: int, seed: int) -> dict:
    """{dtype: {comparison: {metric: worst value over all cases}}}."""
    results = {}
    for index, (name, dtype) in enumerate(DTYPES.items()):
        gen = torch.Generator().manual_seed(seed + 1000 * index)
        u = torch.finfo(dtype).eps / 2
        worst: dict[str, dict[str, float]] = {}
        for _ in range(cases):
            c = random_case(gen, dtype)
            ours = attnkit.scaled_dot_product_attention(
                c["q"], c["k"], c["v"], c["mask"], scale=c["scale"]
            )
            theirs = F.scaled_dot_product_attention(
                c["q"], c["k"], c["v"], attn_mask=c["mask"], scale=c["scale"]
            )
            found = {"attnkit vs torch": errors(ours, theirs)}
            if name in HALF:
                exact = reference_float64(c["q"], c["k"], c["v"], c["mask"], c["scale"])
                found["attnkit vs float64"] = errors(ours, exact, u)
                found["torch vs float64"] = errors(theirs, exact, u)
            for comparison, metrics in found.items():
                slot = worst.setdefault(comparison, dict.fromkeys(metrics, -math.inf))
                for metric, value in metrics.items():
                    slot[metric] = max(slot[metric], value)
        results[name] = {"cases": cases, "unit_roundoff": u, **worst}
    return results


def format_table(results: dict) -> str:
    header = ("dtype", "comparison", "max abs", "max rel", "beyond 1 rounding")
    rows = []
    for name, entry in results.items():
        for comparison, metrics in entry.items():
            if not isinstance(metrics, dict):
                continue
            rounding = metrics.get("beyond_1_rounding")
            rows.append(
                (
                    name,
                    comparison,
                    f"{metrics['abs']:.2e}",
                    f"{metrics['rel']:.2e}",
                    "-" if rounding is None else f"{rounding:.2e}",
                )
            )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    units = ", ".join(
        f"{name} {entry['unit_roundoff']:.2e}" for name, entry in results.items() if name in HALF
    )
    lines.append(f"unit roundoff u = eps/2: {units}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000, help="random cases per dtype")
    parser.add_argument("--seed", type=int, default=0, help="base random seed")
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        metavar="PATH",
        help="also write the numbers to this JSON file",
    )
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    results = run(args.cases, args.seed)
    elapsed = time.perf_counter() - start
    print(
        f"attnkit {attnkit.__version__} vs torch {torch.__version__}: "
        f"{args.cases} random cases per dtype, seed {args.seed}, {elapsed:.1f} s"
    )
    print(format_table(results))
    if args.json is not None:
        payload = {
            "attnkit": attnkit.__version__,
            "torch": torch.__version__,
            "seed": args.seed,
            "seconds": elapsed,
            "results": results,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

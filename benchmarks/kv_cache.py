"""How much does the key/value cache speed up generation?

Generates ``N`` new tokens greedily from a small :class:`attnkit.TransformerLM` (by
default d_model 128, 4 heads, 4 layers, d_ff 512, learned positions, float32, random
weights) with ``attnkit.decoding.generate`` twice: ``use_cache=True`` runs the prompt once
and then feeds one token per step through the per-layer caches; ``use_cache=False``
reruns the whole sequence at every step. Each time is the minimum of ``--repeats`` runs
(the least disturbed by other processes) on ``--threads`` CPU threads. The script also
checks that both modes produce the same tokens.

Without the cache, step ``t`` processes ``T0 + t`` positions, so generating ``N`` tokens
costs O(N^2) position-passes through the layers (and O(N^3) attention work); with it,
O(N) position-passes and O(N^2) attention. The speed-up therefore grows roughly linearly
with ``N``.

Usage (from the repository root)::

    python benchmarks/kv_cache.py [--new-tokens 128 256 512] [--repeats 3] [--threads 2]
                                  [--json results.json]
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

import torch

try:
    import attnkit
    from attnkit.decoding import generate
    from attnkit.transformer import TransformerLM
except ImportError:  # running from a checkout in which attnkit is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import attnkit
    from attnkit.decoding import generate
    from attnkit.transformer import TransformerLM


def build_model(args: argparse.Namespace, max_len: int) -> TransformerLM:
    torch.manual_seed(args.seed)
    model = TransformerLM(
        args.vocab_size,
        d_model=args.d_model,
        num_heads=args.num_heads,
        num_layers=args.num_layers,
        d_ff=4 * args.d_model,
        dropout=0.0,
        max_len=max_len,
        positional="learned",
    )
    return model.eval()


def best_time(fn, repeats: int) -> tuple[float, torch.Tensor]:
    """The minimum wall-clock time of ``repeats`` calls of ``fn`` and its last result."""
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def run(args: argparse.Namespace) -> list[dict]:
    model = build_model(args, max_len=args.prompt_len + max(args.new_tokens))
    gen = torch.Generator().manual_seed(args.seed)
    prompt = torch.randint(0, args.vocab_size, (args.batch, args.prompt_len), generator=gen)
    generate(model, prompt, 8, temperature=0.0)  # warm-up (allocator, kernels)
    rows = []
    for n in args.new_tokens:
        times, outputs = {}, {}
        for use_cache in (False, True):
            times[use_cache], outputs[use_cache] = best_time(
                functools.partial(generate, model, prompt, n, temperature=0.0, use_cache=use_cache),
                args.repeats,
            )
        rows.append(
            {
                "new_tokens": n,
                "no_cache_s": times[False],
                "cache_s": times[True],
                "speedup": times[False] / times[True],
                "no_cache_ms_per_token": 1000 * times[False] / n,
                "cache_ms_per_token": 1000 * times[True] / n,
                "same_tokens": bool(torch.equal(outputs[False], outputs[True])),
            }
        )
        print(f"  {n} tokens done", file=sys.stderr, flush=True)
    return rows


def format_table(rows: list[dict]) -> str:
    header = ("new tokens", "no cache (s)", "cache (s)", "speed-up", "ms/token", "same tokens")
    lines = [
        (
            str(r["new_tokens"]),
            f"{r['no_cache_s']:.3f}",
            f"{r['cache_s']:.3f}",
            f"{r['speedup']:.1f}x",
            f"{r['no_cache_ms_per_token']:.2f} -> {r['cache_ms_per_token']:.2f}",
            "yes" if r["same_tokens"] else "NO",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
    out = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in [header, *lines]]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-tokens", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--prompt-len", type=int, default=16)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--vocab-size", type=int, default=256)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--num-heads", type=int, default=4)
    parser.add_argument("--num-layers", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3, help="time = min over this many runs")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        metavar="PATH",
        help="also write the numbers to this JSON file",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    rows = run(args)
    elapsed = time.perf_counter() - start
    print(
        f"attnkit {attnkit.__version__}, torch {torch.__version__}, {args.threads} thread(s): "
        f"TransformerLM d_model={args.d_model}, {args.num_heads} heads, {args.num_layers} "
        f"layers, d_ff={4 * args.d_model}, vocab {args.vocab_size}; batch {args.batch}, "
        f"prompt {args.prompt_len} tokens, greedy; min of {args.repeats} runs ({elapsed:.0f} s)"
    )
    print(format_table(rows))
    if args.json is not None:
        payload = {
            "attnkit": attnkit.__version__,
            "torch": torch.__version__,
            "threads": args.threads,
            "config": {k: v for k, v in vars(args).items() if k != "json"},
            "seconds": elapsed,
            "results": rows,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0 if all(r["same_tokens"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

"""How much memory does the key/value cache take with grouped-query attention?

A stack of 8 ``attnkit.MultiHeadAttention`` self-attention layers (d_model = 512, 8 query
heads of size 64, float32, batch 1) is run causally over ``T`` random inputs with one
``KVCache`` per layer, each layer's output feeding the next; the sequence goes in chunks
(``--chunk`` positions at a time, "chunked prefill"), so the attention weights of one
call stay small. The script then reports ``sum(cache.nbytes)`` over the 8 caches for
``num_kv_heads`` = 8 (multi-head), 4, 2 (grouped-query) and 1 (multi-query), and the
ratio to multi-head attention. Only attention layers are built: feed-forward blocks
and norms hold no cache and do not change these numbers.

Lengths up to ``--max-measured`` (default 4096) are **measured** from the filled cache
objects. Filling a 16K cache runs 16x the attention work of a 4K one (the scores grow as
T^2), too slow for a shared 2-core machine, so longer lengths are **computed** from
``2 (K and V) * layers * B * num_kv_heads * T * head_dim * bytes per element``; the
script first checks that this formula reproduces every measured number exactly (it
exits with an error otherwise), and labels each row ``measured`` or ``computed``.

Usage (from the repository root)::

    python benchmarks/gqa_cache_memory.py [--lengths 1024,4096,16384] [--max-measured 4096]
        [--chunk 256] [--threads 1] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

try:
    from attnkit.multihead import KVCache, MultiHeadAttention
except ImportError:  # running from a checkout in which attnkit is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from attnkit.multihead import KVCache, MultiHeadAttention

D_MODEL, NUM_HEADS, NUM_LAYERS, BATCH = 512, 8, 8, 1
HEAD_DIM = D_MODEL // NUM_HEADS
KV_HEADS = (8, 4, 2, 1)
DTYPE = torch.float32


def label(num_kv_heads: int) -> str:
    if num_kv_heads == NUM_HEADS:
        return "MHA"
    return "MQA" if num_kv_heads == 1 else "GQA"


def formula_bytes(num_kv_heads: int, length: int) -> int:
    """2 (K and V) * layers * B * H_kv * T * head_dim * element size."""
    element = torch.tensor([], dtype=DTYPE).element_size()
    return 2 * NUM_LAYERS * BATCH * num_kv_heads * length * HEAD_DIM * element


@torch.inference_mode()
def measure(num_kv_heads: int, length: int, chunk: int, seed: int) -> tuple[int, int, float]:
    """Fill one cache per layer by running the stack; return (bytes, cached length, s)."""
    torch.manual_seed(seed)
    layers = [
        MultiHeadAttention(D_MODEL, NUM_HEADS, num_kv_heads=num_kv_heads).to(DTYPE).eval()
        for _ in range(NUM_LAYERS)
    ]
    caches = [KVCache() for _ in layers]
    x = torch.randn(BATCH, length, D_MODEL, dtype=DTYPE)
    start = time.perf_counter()
    for s in range(0, length, chunk):
        h = x[:, s : s + chunk]
        for layer, cache in zip(layers, caches):
            h = h + layer(h, is_causal=True, cache=cache)[0]  # residual stream
    elapsed = time.perf_counter() - start
    lengths = {len(cache) for cache in caches}
    assert lengths == {length}, lengths
    for cache in caches:
        assert cache.k is not None and cache.v is not None
        assert cache.k.shape == cache.v.shape == (BATCH, num_kv_heads, length, HEAD_DIM)
    return sum(cache.nbytes for cache in caches), length, elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", default="1024,4096,16384", help="comma-separated T")
    parser.add_argument(
        "--max-measured", type=int, default=4096, help="measure lengths up to this; compute above"
    )
    parser.add_argument("--chunk", type=int, default=256, help="positions per prefill call")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1 by default: on a shared 2-core machine two threads that wait "
        "for each other were up to 3x slower than one)",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    lengths = [int(s) for s in args.lengths.split(",")]
    torch.set_num_threads(args.threads)

    print(
        f"KV cache of {NUM_LAYERS} attention layers, d_model={D_MODEL}, {NUM_HEADS} query "
        f"heads of {HEAD_DIM}, batch {BATCH}, {str(DTYPE).removeprefix('torch.')}; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    rows = []
    total_start = time.perf_counter()
    for length in lengths:
        mha_bytes = None
        for num_kv_heads in KV_HEADS:
            expected = formula_bytes(num_kv_heads, length)
            if length <= args.max_measured:
                nbytes, _, seconds = measure(num_kv_heads, length, args.chunk, args.seed)
                source = "measured"
                if nbytes != expected:
                    print(
                        f"error: measured {nbytes} bytes for T={length}, "
                        f"num_kv_heads={num_kv_heads}, the formula gives {expected}",
                        file=sys.stderr,
                    )
                    return 1
            else:
                nbytes, seconds, source = expected, None, "computed"
            if num_kv_heads == NUM_HEADS:
                mha_bytes = nbytes
            rows.append(
                {
                    "seq_len": length,
                    "num_kv_heads": num_kv_heads,
                    "kind": label(num_kv_heads),
                    "bytes": nbytes,
                    "mib": nbytes / 2**20,
                    "ratio_vs_mha": nbytes / mha_bytes if mha_bytes else None,
                    "source": source,
                    "fill_seconds": seconds,
                }
            )

    header = f"{'T':>6} {'kv heads':>8} {'kind':>4} {'bytes':>12} {'MiB':>8} {'vs MHA':>7}  source"
    print(header)
    print("-" * len(header))
    for r in rows:
        took = f" (filled in {r['fill_seconds']:.1f} s)" if r["fill_seconds"] is not None else ""
        print(
            f"{r['seq_len']:>6} {r['num_kv_heads']:>8} {r['kind']:>4} {r['bytes']:>12,} "
            f"{r['mib']:>8.1f} {r['ratio_vs_mha']:>7.3f}  {r['source']}{took}"
        )
    measured = sorted({r["seq_len"] for r in rows if r["source"] == "measured"})
    computed = sorted({r["seq_len"] for r in rows if r["source"] == "computed"})
    print(
        f"measured from filled KVCache objects: T in {measured}; computed from the formula "
        f"2 * layers * B * num_kv_heads * T * head_dim * bytes (checked against every "
        f"measured number): T in {computed}. Total {time.perf_counter() - total_start:.1f} s."
    )
    if args.json:
        config = {
            "d_model": D_MODEL,
            "num_heads": NUM_HEADS,
            "head_dim": HEAD_DIM,
            "num_layers": NUM_LAYERS,
            "batch": BATCH,
            "dtype": str(DTYPE),
            "chunk": args.chunk,
            "threads": args.threads,
            "max_measured": args.max_measured,
            "torch": torch.__version__,
        }
        args.json.write_text(json.dumps({"config": config, "results": rows}, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Overhead of attnkit's argument checks and NaN-safe weighted sum on the hot path.

Times ``scaled_dot_product_attention`` and ``MultiHeadAttention.forward`` at n = 1024 for
two versions of attnkit in one process, in turns (:func:`attnkit.bench.time_in_turns`
per round; the median over rounds of each contender's time), so that load from other
processes hits both alike. The old version is a copy of the package under another name:

    git archive <commit> attnkit | tar -x -C /tmp/old && mv /tmp/old/attnkit /tmp/old/attnkit_old
    python benchmarks/validation_overhead.py /tmp/old

Prints the medians, their ratio (new / old) and the load average before and after.
"""

from __future__ import annotations

import importlib
import os
import statistics
import sys

import torch

import attnkit
from attnkit.bench import time_in_turns


def main(old_root: str, rounds: int = 25) -> None:
    torch.set_num_threads(1)
    sys.path.insert(0, old_root)
    old = importlib.import_module("attnkit_old")
    torch.manual_seed(0)
    B, H, n, d = 1, 4, 1024, 64
    q, k, v = (torch.randn(B, H, n, d) for _ in range(3))
    mask = torch.ones(n, n, dtype=torch.bool).tril()
    additive = torch.zeros(n, n).masked_fill(~mask, float("-inf"))
    x = torch.randn(B, n, H * d)
    kpm = torch.ones(B, n, dtype=torch.bool)
    kpm[:, -100:] = False
    mha = {}
    # "old again" is the old code timed a second time: the spread of old vs old again
    # is the noise of the machine, the yardstick for old vs new.
    pkgs = (("old", old), ("new", attnkit), ("old again", old))
    for name, pkg in pkgs:
        torch.manual_seed(0)
        mha[name] = pkg.MultiHeadAttention(H * d, H).eval()
    cases = {
        "sdpa, bool mask": {
            name: (lambda p=pkg: p.scaled_dot_product_attention(q, k, v, mask))
            for name, pkg in pkgs
        },
        "sdpa, additive mask": {
            name: (lambda p=pkg: p.scaled_dot_product_attention(q, k, v, additive))
            for name, pkg in pkgs
        },
        "mha": {
            name: (lambda m=mha[name]: m(x, key_padding_mask=kpm, is_causal=True))
            for name, _ in pkgs
        },
    }
    print(f"load average before: {os.getloadavg()}, cores: {os.cpu_count()}, 1 thread")
    for case, fns in cases.items():
        times: dict[str, list[float]] = {name: [] for name in fns}
        for _ in range(rounds):
            for name, t in time_in_turns(fns, repeats=1, warmup=0).items():
                times[name].append(t)
        for stat, f in (("median", statistics.median), ("min", min)):
            s = {name: f(ts) for name, ts in times.items()}
            print(
                f"{case}: n={n}, (B, H, d)=({B}, {H}, {d}), {stat} of {rounds} calls: "
                + ", ".join(f"{name} {t * 1e3:.2f} ms" for name, t in s.items())
                + f"; new/old = {s['new'] / s['old']:.3f}, "
                f"old again/old = {s['old again'] / s['old']:.3f}"
            )
    # The added work itself, timed beside the call it is part of: the argument checks
    # (O(1)) and the two passes of the new code over small tensors, the row sums of the
    # softmax (n_q numbers per head) and the output (n_q * d_v per head).
    from attnkit._validate import check_bool, check_mask, check_probability, check_qkv, check_scale

    out = attnkit.scaled_dot_product_attention(q, k, v, mask)
    total = torch.rand(B, H, n, 1)

    def added() -> None:
        batch = check_qkv(q, k, v)
        check_scale(None)
        check_probability(0.0, "dropout_p")
        check_bool(False, "return_weights")
        check_mask(mask, (*batch, n, n))
        bool(torch.isfinite(total).all())
        bool(torch.isfinite(out).all())

    t = time_in_turns(
        {"sdpa": lambda: attnkit.scaled_dot_product_attention(q, k, v, mask), "added": added},
        repeats=rounds,
    )
    print(
        f"added work alone: {t['added'] * 1e6:.0f} us, the whole new sdpa call "
        f"{t['sdpa'] * 1e3:.2f} ms (min of {rounds}): {t['added'] / t['sdpa']:.2%} of the call"
    )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:]))

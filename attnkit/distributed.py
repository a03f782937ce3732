"""Data-parallel training of chapter 4's language model with ``torch.distributed``.

Data parallelism (Li et al., 2020, "PyTorch Distributed: Experiences on Accelerating Data
Parallel Training"): every process (rank) holds a full copy of the model, takes its own
shard of the **global batch**, computes the gradient of the mean loss over its shard, and
the processes average their gradients (an all-reduce) before every identical optimizer
step. With ``world_size`` equal shards::

    grad (1/B) sum_{i in batch} loss_i = (1/world_size) sum_r grad (1/b) sum_{i in shard r} loss_i,

with ``b = B / world_size``, so data-parallel training follows single-process training on
the same global batch up to float rounding. This module shows it, with PyTorch's own
machinery only (``DistributedDataParallel``, the gloo backend, ``torchrun``); it is not a
distributed engine.

* :func:`shard_rows`: rank ``r``'s contiguous rows of a global batch.
* :func:`global_batches`: the seeded stream of global batches, the same on every rank.
* :func:`train_data_parallel`: trains a small :class:`~attnkit.transformer.TransformerLM`
  with :func:`attnkit.training.train`, wrapped in DDP when ``world_size > 1``, and returns
  the per-step **global** mean loss (an all-reduce of the shard losses, not rank 0's own).
* :func:`main`: the command line, run by ``torchrun``::

      python -m torch.distributed.run --standalone --nproc_per_node=2 \\
          -m attnkit.distributed --steps 40 --out results.json

  Without ``torchrun`` (no ``WORLD_SIZE`` in the environment) it trains in one process
  without DDP: the single-process reference.
* :func:`launch`: runs :func:`main` in a subprocess (``torchrun`` for ``world_size >= 2``)
  and returns its JSON results; used by the book and the tests.

Each process uses one thread (``torch.set_num_threads(1)``), so that two processes share
two cores without oversubscription. On CPU the backend is gloo, which talks over TCP; the
children get ``GLOO_SOCKET_IFNAME=lo`` (the loopback interface) unless it is already set,
so that no network is needed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ._validate import check_positive_int, check_positive_number, check_tensor
from .data import CharTokenizer, stdlib_docstrings, train_val_split
from .training import TrainConfig, seed_everything, train
from .transformer import TransformerLM

__all__ = [
    "DataParallelSettings",
    "global_batches",
    "launch",
    "load_token_ids",
    "main",
    "parameter_vector",
    "shard_rows",
    "train_data_parallel",
]


# ------------------------------------------------------------------------ settings


@dataclass(frozen=True)
class DataParallelSettings:
    """The run: model size, global batch, optimizer and seeds (checked when created).

    Attributes:
        steps: optimizer updates.
        global_batch: windows per step over **all** ranks; each rank takes
            ``global_batch / world_size`` of them (must divide evenly).
        context: characters the model reads; a window has ``context + 1`` characters.
        d_model, num_heads, num_layers, d_ff: sizes of the ``TransformerLM``.
        lr: peak AdamW learning rate (linear warm-up, then cosine decay to 0).
        warmup_steps: warm-up length, ``<= steps``.
        seed: seeds the initial weights and :func:`attnkit.training.train`.
        data_seed: seeds the generator that draws the global batches.
        max_chars: keep only the first ``max_chars`` characters of the corpus (``0`` =
            all of it), to keep start-up short.
    """

    steps: int = 40
    global_batch: int = 16
    context: int = 64
    d_model: int = 64
    num_heads: int = 4
    num_layers: int = 2
    d_ff: int = 256
    lr: float = 2e-3
    warmup_steps: int = 5
    seed: int = 0
    data_seed: int = 0
    max_chars: int = 400_000

    def __post_init__(self) -> None:
        for name in ("steps", "global_batch", "context", "d_model", "num_heads", "num_layers"):
            check_positive_int(getattr(self, name), name)
        check_positive_int(self.d_ff, "d_ff")
        for name in ("warmup_steps", "seed", "data_seed", "max_chars"):
            check_positive_int(getattr(self, name), name, allow_zero=True)
        if self.warmup_steps > self.steps:
            raise ValueError(
                f"warmup_steps ({self.warmup_steps}) must not exceed steps ({self.steps})."
            )
        check_positive_number(self.lr, "lr")


# ------------------------------------------------------------------------- the data


def shard_rows(batch: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """Rank ``rank``'s contiguous shard of a global batch: rows ``rank * b : (rank + 1) * b``.

    Args:
        batch: the global batch ``(B, ...)``, the same tensor on every rank.
        rank: this process's index, ``0 <= rank < world_size``.
        world_size: the number of processes; must divide ``B`` (equal shards are what
            makes the mean of the shard gradients equal the global gradient).

    Returns:
        A view ``(B / world_size, ...)`` of ``batch``.
    """
    batch = check_tensor(batch, "batch", min_dim=1)
    world_size = check_positive_int(world_size, "world_size")
    rank = check_positive_int(rank, "rank", allow_zero=True)
    if rank >= world_size:
        raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}.")
    rows = batch.shape[0]
    if rows % world_size:
        raise ValueError(
            f"batch has {rows} rows, which world_size={world_size} does not divide: the "
            f"shards would be unequal and their mean gradient would not be the global one. "
            f"Choose a global batch that is a multiple of world_size."
        )
    b = rows // world_size
    return batch[rank * b : (rank + 1) * b]


def global_batches(
    ids: torch.Tensor, global_batch: int, window: int, *, seed: int = 0
) -> Iterator[torch.Tensor]:
    """Endless global batches ``(global_batch, window)`` of windows of ``ids``.

    Start positions are drawn uniformly by ``torch.randint`` from a generator seeded with
    ``seed`` (chapter 4's sampler), so every rank that uses the same seed sees the same
    global batches in the same order.

    Args:
        ids: the token ids, 1-D, longer than ``window``.
        global_batch: windows per batch.
        window: characters per window (the model's context plus one).
        seed: seed of the sampling generator.
    """
    ids = check_tensor(ids, "ids", min_dim=1)
    if ids.dim() != 1:
        raise ValueError(f"ids must be 1-D, got {ids.dim()} dimensions.")
    global_batch = check_positive_int(global_batch, "global_batch")
    window = check_positive_int(window, "window")
    if len(ids) < window:
        raise ValueError(f"ids has {len(ids)} tokens, fewer than window={window}.")
    return _windows(ids, global_batch, window, torch.Generator().manual_seed(seed))


def _windows(
    ids: torch.Tensor, global_batch: int, window: int, gen: torch.Generator
) -> Iterator[torch.Tensor]:
    offsets = torch.arange(window)  # (window,)
    while True:
        starts = torch.randint(0, len(ids) - window + 1, (global_batch,), generator=gen)
        yield ids[starts[:, None] + offsets]  # (global_batch, window)


def load_token_ids(max_chars: int = 0, text_file: str | None = None) -> tuple[torch.Tensor, int]:
    """Chapter 4's training ids and vocabulary size.

    The text is :func:`~attnkit.data.corpus.stdlib_docstrings` (or the contents of ``text_file``,
    a copy of it saved once so that child processes skip the extraction), cut to
    ``max_chars`` characters if ``max_chars > 0``, then split by
    :func:`~attnkit.data.corpus.train_val_split` (10 % validation) and encoded with a
    :class:`~attnkit.data.tokenizer.CharTokenizer` built on the training part.

    Returns:
        ``(train_ids, vocab_size)``: an int64 tensor ``(N,)`` and an int.
    """
    max_chars = check_positive_int(max_chars, "max_chars", allow_zero=True)
    text = Path(text_file).read_text() if text_file else stdlib_docstrings()
    if max_chars:
        text = text[:max_chars]
    train_text, _ = train_val_split(text, 0.1)
    tok = CharTokenizer([train_text])
    return torch.tensor(tok.encode(train_text)), len(tok)


# ------------------------------------------------------------------------ training


def parameter_vector(model: nn.Module) -> torch.Tensor:
    """All parameters of ``model`` flattened into one float64 vector (shared ones once)."""
    return torch.cat([p.detach().double().flatten() for p in model.parameters()])


def _rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def train_data_parallel(
    settings: DataParallelSettings, ids: torch.Tensor, vocab_size: int, *, progress: bool = False
) -> dict[str, Any]:
    """Train a ``TransformerLM`` data-parallel over the current process group.

    If a process group is initialised (``torchrun``) with ``world_size > 1``, the model is
    wrapped in ``DistributedDataParallel``, which broadcasts rank 0's initial parameters
    and all-reduces (averages) the gradients during backward; otherwise the model is
    trained in this process alone. Either way each step draws the same global batch (see
    :func:`global_batches`, seeded with ``settings.data_seed``) and this rank trains on
    :func:`shard_rows` of it, with :func:`attnkit.training.train` (AdamW, warm-up and
    cosine decay, clipping at norm 1; dropout 0).

    The loss that ``train`` logs is the **global** mean: the shard losses are averaged
    with an all-reduce of a detached copy, and the loss returned for backward is
    ``local + (global - local).detach()``: its value is the global mean, its gradient
    that of the local shard loss (DDP does the averaging of gradients).

    Args:
        settings: the :class:`DataParallelSettings`.
        ids: the training token ids ``(N,)``, the same on every rank.
        vocab_size: the model's vocabulary size.
        progress: show ``train``'s progress bar (rank 0 only).

    Returns:
        On every rank, a dict with ``losses`` (global mean loss of each step, a list of
        floats), ``step_seconds`` (this rank's wall-clock time of each step),
        ``world_size``, ``rank``, ``params`` (the final parameters,
        :func:`parameter_vector`) and ``grad_norms`` (each step's global gradient norm).
    """
    if not isinstance(settings, DataParallelSettings):
        raise TypeError(f"settings must be a DataParallelSettings, got {type(settings).__name__}.")
    check_positive_int(vocab_size, "vocab_size")
    rank, world_size = _rank_and_world()
    shard_rows(torch.empty(settings.global_batch), 0, world_size)  # divisibility, early
    seed_everything(settings.seed)  # same initial weights on every rank (DDP broadcasts too)
    model: nn.Module = TransformerLM(
        vocab_size,
        d_model=settings.d_model,
        num_heads=settings.num_heads,
        num_layers=settings.num_layers,
        d_ff=settings.d_ff,
        dropout=0.0,
        max_len=settings.context,
    )
    if world_size > 1:
        model = nn.parallel.DistributedDataParallel(model)

    def loss_fn(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        shard = shard_rows(batch, rank, world_size)  # (b, context + 1)
        logits = model(shard[:, :-1])  # (b, context, V); through DDP's forward
        local = F.cross_entropy(logits.flatten(0, 1), shard[:, 1:].flatten())
        if world_size == 1:
            return local
        mean = local.detach().clone()
        dist.all_reduce(mean)  # sum of the shard losses, for logging only
        mean /= world_size
        return local + (mean - local.detach())  # value: global mean; gradient: local loss

    config = TrainConfig(
        steps=settings.steps,
        lr=settings.lr,
        warmup_steps=settings.warmup_steps,
        eval_every=1,
        seed=settings.seed,
        progress=progress and rank == 0,
    )
    batches = global_batches(
        ids, settings.global_batch, settings.context + 1, seed=settings.data_seed
    )
    result = train(model, loss_fn, batches, config)
    elapsed = [h["elapsed_s"] for h in result.history]
    module = model.module if world_size > 1 else model
    return {
        "losses": [h["train_loss"] for h in result.history],
        "grad_norms": [h["grad_norm"] for h in result.history],
        "step_seconds": [b - a for a, b in zip([0.0, *elapsed[:-1]], elapsed)],
        "world_size": world_size,
        "rank": rank,
        "params": parameter_vector(module),
    }


# -------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m attnkit.distributed",
        description="Train chapter 4's language model data-parallel (run it with torchrun).",
    )
    for f in dataclasses.fields(DataParallelSettings):
        parser.add_argument(
            f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default
        )
    parser.add_argument("--out", required=True, help="JSON results, written by rank 0")
    parser.add_argument("--params-out", help="optional .pt file for the final parameters")
    parser.add_argument("--text-file", help="corpus text (default: stdlib_docstrings())")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--progress", action="store_true", help="progress bar on rank 0")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: train, then rank 0 writes the JSON results (see :func:`launch`).

    Under ``torchrun`` (``WORLD_SIZE`` set) it joins the gloo process group from the
    environment and destroys it at the end; otherwise it trains in this process alone.
    """
    args = _parser().parse_args(argv)
    settings = DataParallelSettings(
        **{f.name: getattr(args, f.name) for f in dataclasses.fields(DataParallelSettings)}
    )
    torch.set_num_threads(check_positive_int(args.threads, "threads"))
    distributed = "WORLD_SIZE" in os.environ
    if distributed:
        dist.init_process_group("gloo")  # rank, world size, address: torchrun's environment
    try:
        ids, vocab_size = load_token_ids(settings.max_chars, args.text_file)
        start = time.perf_counter()
        out = train_data_parallel(settings, ids, vocab_size, progress=args.progress)
        seconds = time.perf_counter() - start
        mean_step = sum(out["step_seconds"]) / len(out["step_seconds"])
        per_rank = [mean_step]
        if distributed:
            per_rank = [None] * out["world_size"]
            dist.all_gather_object(per_rank, mean_step)
        if out["rank"] == 0:
            params = out.pop("params")
            results = {
                **out,
                "settings": dataclasses.asdict(settings),
                "distributed": distributed,
                "backend": dist.get_backend() if distributed else None,
                "threads_per_process": torch.get_num_threads(),
                "vocab_size": vocab_size,
                "train_seconds": seconds,
                "mean_step_seconds_per_rank": per_rank,
                "param_count": int(params.numel()),
                "param_sum": float(params.sum()),
                "param_l2": float(params.norm()),
                "torch": torch.__version__,
            }
            Path(args.out).write_text(json.dumps(results, indent=1))
            if args.params_out:
                torch.save(params, args.params_out)
    finally:
        if distributed:
            dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(
    settings: DataParallelSettings,
    world_size: int,
    *,
    text_file: str | os.PathLike[str] | None = None,
    timeout: float = 120.0,
    with_params: bool = True,
    threads: int = 1,
) -> dict[str, Any]:
    """Run :func:`main` in a subprocess and return its results.

    ``world_size == 1`` runs ``python -m attnkit.distributed`` (one process, no DDP: the
    single-process reference); ``world_size >= 2`` runs ``python -m torch.distributed.run
    --nnodes=1 --nproc_per_node=world_size`` with a free localhost port as rendezvous.
    Children inherit the environment plus ``GLOO_SOCKET_IFNAME=lo`` (if unset).

    Args:
        settings: the :class:`DataParallelSettings`.
        world_size: number of processes, ``>= 1``.
        text_file: corpus text to pass as ``--text-file`` (saves each child the
            extraction of the docstrings); ``None`` lets each child extract it.
        timeout: seconds before the run is killed and ``TimeoutError`` raised.
        with_params: also return the final parameters, ``results["params"]`` (float64).
        threads: torch threads per process (``--threads``); 1 lets two processes share
            two cores.

    Returns:
        The JSON dict written by rank 0 (see :func:`main`), plus ``params`` and
        ``wall_seconds`` (the whole subprocess, start-up included).

    Raises:
        RuntimeError: the run failed; the message ends with the children's stderr.
    """
    if not isinstance(settings, DataParallelSettings):
        raise TypeError(f"settings must be a DataParallelSettings, got {type(settings).__name__}.")
    world_size = check_positive_int(world_size, "world_size")
    threads = check_positive_int(threads, "threads")
    if settings.global_batch % world_size:
        raise ValueError(
            f"world_size={world_size} must divide settings.global_batch={settings.global_batch}."
        )
    check_positive_number(timeout, "timeout")
    with tempfile.TemporaryDirectory(prefix="attnkit_ddp_") as tmp:
        out, params_out = Path(tmp) / "results.json", Path(tmp) / "params.pt"
        args = [f"--out={out}", f"--threads={threads}"]
        for f in dataclasses.fields(settings):
            args.append(f"--{f.name.replace('_', '-')}={getattr(settings, f.name)}")
        if with_params:
            args.append(f"--params-out={params_out}")
        if text_file is not None:
            args.append(f"--text-file={text_file}")
        if world_size == 1:
            cmd = [sys.executable, "-m", "attnkit.distributed", *args]
        else:
            cmd = [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes=1",
                f"--nproc_per_node={world_size}",
                "--rdzv-backend=c10d",
                f"--rdzv-endpoint=127.0.0.1:{_free_port()}",
                "-m",
                "attnkit.distributed",
                *args,
            ]
        env = {**os.environ, "GLOO_SOCKET_IFNAME": os.environ.get("GLOO_SOCKET_IFNAME", "lo")}
        env["OMP_NUM_THREADS"] = str(threads)
        start = time.perf_counter()
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as err:
            raise TimeoutError(
                f"the {world_size}-process run took more than {timeout} s: {' '.join(cmd)}"
            ) from err
        wall = time.perf_counter() - start
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(
                f"the {world_size}-process run failed (exit code {proc.returncode}): "
                f"{' '.join(cmd)}\n--- stderr ---\n{proc.stderr[-4000:]}"
            )
        results = json.loads(out.read_text())
        results["wall_seconds"] = wall
        if with_params:
            results["params"] = torch.load(params_out)
    return results


if __name__ == "__main__":
    main()

"""Train the same small classifier with each attention on the long-range retrieval task.

The efficient-attention chapter's accuracy table (in the style of the Long Range Arena,
Tay et al., 2021) comes from :func:`run_retrieval`: one call per attention method, the
same data stream, model sizes, optimizer, schedule and seed for all of them.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from ..data.retrieval import RetrievalTask, retrieval_batches, retrieval_split
from ..training import TrainConfig, count_parameters, seed_everything, train
from .model import LongRangeClassifier

#: The methods of the chapter's accuracy table with their settings at n = 1024 (the tiled
#: kernel is left out: it computes the same function as "full", which is tested).
RETRIEVAL_METHODS: dict[str, tuple[str, dict[str, Any]]] = {
    "full (fused SDPA)": ("full", {"fused": True}),
    "local, window ±128": ("local", {"window": 128}),
    "Sparse Transformer, strided 32": ("sparse", {"stride": 32, "causal": False}),
    "BigBird, blocks of 64": ("bigbird", {"block_size": 64}),
    "Longformer, window ±128 + [0] global": ("longformer", {"window": 128}),
    "Linformer, k = 128": ("linformer", {"seq_len": 1024, "proj_len": 128}),
    "Performer, m = D ln D": ("performer", {}),
    "linear (elu + 1)": ("linear", {}),
}


@dataclass(frozen=True)
class RetrievalRecipe:
    """Everything that stays fixed across methods.

    ``schedule`` is the length curriculum ``[(n, steps), ...]``: the model first learns to
    retrieve on short sequences, then trains and is evaluated at ``eval_n``.
    """

    schedule: tuple[tuple[int, int], ...] = ((128, 300), (1024, 150))
    eval_n: int = 1024
    batch_size: int = 16
    test_size: int = 512
    d_model: int = 32
    num_heads: int = 2
    num_layers: int = 2
    d_ff: int = 64
    lr: float = 3e-3
    warmup_steps: int = 30
    noise_vocab: int = 8
    num_values: int = 10
    seed: int = 0

    @property
    def steps(self) -> int:
        """Total number of training steps over the whole ``schedule``."""
        return sum(steps for _, steps in self.schedule)

    @property
    def task(self) -> RetrievalTask:
        """The :class:`~attnkit.data.retrieval.RetrievalTask` of this vocabulary."""
        return RetrievalTask(self.noise_vocab, self.num_values)


@dataclass
class RetrievalResult:
    """What one method achieved: accuracy, cost and the accuracy by needle distance."""

    attention: str
    options: dict[str, Any]
    test_accuracy: float
    train_seconds: float
    step_seconds: float
    step_peak_bytes: int | None
    parameters: int
    accuracy_by_distance: list[tuple[int, int, float]] = field(default_factory=list)
    history: list[dict[str, float]] = field(default_factory=list)


def _loss(model: LongRangeClassifier, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    tokens, labels = batch
    return F.cross_entropy(model(tokens), labels)


@torch.no_grad()
def predict(model: LongRangeClassifier, tokens: torch.Tensor, batch_size: int = 64):
    """Predicted labels ``(N,)`` for ``tokens`` ``(N, n)``, in eval mode."""
    was_training = model.training
    model.eval()
    try:
        starts = range(0, len(tokens), batch_size)
        chunks = [model(tokens[i : i + batch_size]).argmax(-1) for i in starts]
    finally:
        model.train(was_training)
    return torch.cat(chunks)


def accuracy_by_distance(
    correct: torch.Tensor, positions: torch.Tensor, edges: list[int]
) -> list[tuple[int, int, float]]:
    """Accuracy for needles at positions in ``[edges[i], edges[i+1])``: ``(lo, hi, acc)``."""
    out = []
    for lo, hi in itertools.pairwise(edges):
        sel = (positions >= lo) & (positions < hi)
        if sel.any():
            out.append((lo, hi, correct[sel].float().mean().item()))
    return out


def _measure_step(model, batch) -> tuple[float, int | None]:
    """Seconds and peak extra memory (bytes, Linux only) of one training step."""
    from ..bench import measure_peak_extra

    def step() -> None:
        model.zero_grad(set_to_none=True)
        with torch.enable_grad():
            _loss(model, batch).backward()
        model.zero_grad(set_to_none=True)

    step()  # warm-up
    start = time.perf_counter()
    step()
    seconds = time.perf_counter() - start
    try:
        peak = measure_peak_extra(step)
    except OSError:
        peak = None
    return seconds, peak


def run_retrieval(
    attention: str,
    options: dict[str, Any] | None = None,
    recipe: RetrievalRecipe | None = None,
    *,
    progress: bool = True,
) -> RetrievalResult:
    """Train a :class:`.LongRangeClassifier` with ``attention`` and measure it.

    Returns the test accuracy at ``recipe.eval_n`` (on :func:`.retrieval_split` "test"), the
    wall-clock training time, the time and peak extra memory of one training step at
    ``eval_n``, and the accuracy by needle position (distance from the query at 0).
    """
    recipe = recipe or RetrievalRecipe()
    options = dict(options or {})
    task = recipe.task
    seed_everything(recipe.seed)
    model = LongRangeClassifier(
        task.vocab_size,
        task.num_values,
        attention,
        options,
        d_model=recipe.d_model,
        num_heads=recipe.num_heads,
        num_layers=recipe.num_layers,
        d_ff=recipe.d_ff,
        max_len=max(max(n for n, _ in recipe.schedule), recipe.eval_n),
    )
    config = TrainConfig(
        steps=recipe.steps,
        lr=recipe.lr,
        warmup_steps=recipe.warmup_steps,
        eval_every=recipe.steps,
        seed=recipe.seed,
        progress=progress,
    )
    batches = retrieval_batches(task, recipe.batch_size, list(recipe.schedule), seed=recipe.seed)
    result = train(model, _loss, batches, config)

    tokens, labels, positions = retrieval_split(task, recipe.test_size, recipe.eval_n, "test")
    correct = predict(model, tokens) == labels  # (N,)
    edges = [e for e in (1, 129, 257, 513) if e < recipe.eval_n] + [recipe.eval_n]
    probe = retrieval_split(task, recipe.batch_size, recipe.eval_n, "val")[:2]
    step_seconds, step_peak = _measure_step(model, probe)
    return RetrievalResult(
        attention=attention,
        options=options,
        test_accuracy=correct.float().mean().item(),
        train_seconds=result.seconds,
        step_seconds=step_seconds,
        step_peak_bytes=step_peak,
        parameters=count_parameters(model),
        accuracy_by_distance=accuracy_by_distance(correct, positions, edges),
        history=result.history,
    )

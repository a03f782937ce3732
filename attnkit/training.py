"""A small, deterministic training loop shared by every chapter that trains a model.

What :func:`train` does, and nothing more: AdamW with decoupled weight decay on the
matrices only (biases, LayerNorm weights and other 1-D parameters are not decayed, the
nanoGPT convention), a linear warm-up followed by a cosine, constant or inverse square
root schedule, gradient clipping by global norm, periodic evaluation, a text progress
bar and an optional wall-clock budget. Two runs with the same seed, data and initial
model give bit-identical losses on CPU (same machine, same number of threads).

Counting steps: in a schedule, ``step`` is the number of optimizer updates already
done, so the first update uses the schedule's value at step 0, which is 0 during
warm-up (as with PyTorch's ``LambdaLR`` and Hugging Face's schedules). In a training
history, ``step`` is the number of updates done when the entry was logged
(``eval_every``, ``2 * eval_every``, ..., and the last step).

Example:
    >>> gen = seed_everything(0)
    >>> model = torch.nn.Linear(3, 1)
    >>> data = [(torch.randn(16, 3, generator=gen), torch.randn(16, 1, generator=gen))]
    >>> def loss_fn(model, batch):
    ...     x, y = batch
    ...     return torch.nn.functional.mse_loss(model(x), y)
    >>> config = TrainConfig(steps=20, warmup_steps=5, eval_every=10, progress=False)
    >>> result = train(model, loss_fn, data, config)
    >>> [entry["step"] for entry in result.history]
    [10, 20]
"""

from __future__ import annotations

import math
import numbers
import random
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ._validate import check_bool, check_positive_int, check_scale

if TYPE_CHECKING:  # matplotlib is optional: imported by TrainResult.plot only
    from matplotlib.axes import Axes

SCHEDULES = ("cosine", "constant", "inverse_sqrt")
"""The learning-rate schedules :func:`warmup_schedule` knows, after the linear warm-up."""

PROGRESS_LINES = 10
"""How many times the progress bar is redrawn when stderr is not a terminal."""

_LOGGED = ("step", "train_loss", "lr", "grad_norm", "elapsed_s")  # keys train() writes


# ------------------------------------------------------------------- small checks


def _check_module(model: object, name: str = "model") -> nn.Module:
    """Check that ``model`` is a ``torch.nn.Module``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(model).__name__}.")
    return model


def _check_number(
    x: object, name: str, *, positive: bool = False, at_most: float = math.inf
) -> float:
    """Check a finite real number ``>= 0`` (``> 0`` if ``positive``), ``<= at_most``."""
    ok = isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(float(x))
    if ok:
        ok = (float(x) > 0 if positive else float(x) >= 0) and float(x) <= at_most
    if not ok:
        what = "a positive" if positive else "a non-negative"
        bound = "" if at_most == math.inf else f" at most {at_most}"
        raise ValueError(f"{name} must be {what} finite number{bound}, got {x!r}.")
    return float(x)


def _check_seed(seed: object) -> int:
    """Check a seed: an integer in [0, 2**32), the range that every generator accepts."""
    seed = check_positive_int(seed, "seed", allow_zero=True)
    if seed >= 2**32:
        raise ValueError(f"seed must be below 2**32 (numpy's limit), got {seed}.")
    return seed


def _check_schedule(
    warmup_steps: object,
    total_steps: object,
    kind: object,
    min_lr_ratio: object,
    *,
    total_name: str = "total_steps",
    kind_name: str = "kind",
) -> None:
    """Check the arguments of a warm-up schedule (shared by TrainConfig)."""
    warmup_steps = check_positive_int(warmup_steps, "warmup_steps", allow_zero=True)
    total_steps = check_positive_int(total_steps, total_name)
    if kind not in SCHEDULES:
        listed = ", ".join(repr(s) for s in SCHEDULES)
        raise ValueError(f"{kind_name} must be one of {listed}; got {kind!r}.")
    if warmup_steps > total_steps:
        raise ValueError(
            f"warmup_steps ({warmup_steps}) must not exceed {total_name} ({total_steps}): "
            f"the learning rate would never reach its base value. Lower warmup_steps."
        )
    if kind == "inverse_sqrt" and warmup_steps == 0:
        raise ValueError(
            f"{kind_name}='inverse_sqrt' needs warmup_steps >= 1: its factor "
            f"min(step / warmup_steps, sqrt(warmup_steps / step)) divides by it."
        )
    _check_number(min_lr_ratio, "min_lr_ratio", at_most=1.0)
    if kind != "cosine" and min_lr_ratio != 0:
        raise ValueError(
            f"min_lr_ratio only applies to {kind_name}='cosine'; got min_lr_ratio="
            f"{min_lr_ratio!r} with {kind_name}={kind!r}."
        )


# ------------------------------------------------------------ seeds and counting


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python's ``random``, numpy's global generator (if numpy is installed) and torch.

    ``torch.manual_seed`` also seeds every CUDA device. Call it before building the model
    so that its initial weights are reproducible.

    Args:
        seed: an integer in ``[0, 2**32)``.

    Returns:
        A new CPU ``torch.Generator`` seeded with ``seed``, for data shuffling, e.g.
        ``DataLoader(dataset, shuffle=True, generator=gen)``.
    """
    seed = _check_seed(seed)
    random.seed(seed)
    try:
        import numpy as np
    except ImportError:  # numpy is optional: attnkit only needs torch
        pass
    else:
        np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of scalar parameters of ``model`` (a parameter shared by two layers counts once).

    Args:
        model: any ``torch.nn.Module``.
        trainable_only: count only parameters with ``requires_grad=True``.
    """
    _check_module(model)
    trainable_only = check_bool(trainable_only, "trainable_only")
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


# -------------------------------------------------------- optimizer and schedule


def make_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with decoupled weight decay on the matrices only (the nanoGPT convention).

    Parameters with ``dim() >= 2`` (weight matrices, embeddings) form a group with
    ``weight_decay``; 1-D and 0-D ones (biases, LayerNorm gains and shifts, scalars) form
    a group without decay. Frozen parameters (``requires_grad=False``) are left out, and
    an empty group is not created. Other settings are PyTorch's defaults
    (``betas=(0.9, 0.999)``, ``eps=1e-8``).

    Args:
        model: the model whose trainable parameters are optimized.
        lr: base learning rate, a positive number.
        weight_decay: decoupled weight decay of the matrices, ``>= 0``; each update
            multiplies them by ``1 - lr * weight_decay`` (with the scheduled lr).
    """
    _check_module(model)
    lr = _check_number(lr, "lr", positive=True)
    weight_decay = _check_number(weight_decay, "weight_decay")
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError(
            "model has no trainable parameters (it has none, or all have "
            "requires_grad=False): there is nothing to train."
        )
    decay = [p for p in trainable if p.dim() >= 2]
    no_decay = [p for p in trainable if p.dim() < 2]
    groups = [
        {"params": params, "weight_decay": wd}
        for params, wd in ((decay, weight_decay), (no_decay, 0.0))
        if params
    ]
    return torch.optim.AdamW(groups, lr=lr)


def _lr_factor(
    step: int, *, warmup_steps: int, total_steps: int, kind: str, min_lr_ratio: float
) -> float:
    """Multiplier of the base learning rate after ``step`` updates."""
    if step < warmup_steps:
        return step / warmup_steps  # linear warm-up from 0
    if kind == "constant":
        return 1.0
    if kind == "inverse_sqrt":  # min(step / warmup, sqrt(warmup / step)) for step >= warmup
        return math.sqrt(warmup_steps / step)
    decay_steps = total_steps - warmup_steps
    progress = 1.0 if decay_steps == 0 else min(1.0, (step - warmup_steps) / decay_steps)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_schedule(
    optimizer: torch.optim.Optimizer,
    warmup_steps: int,
    total_steps: int,
    *,
    kind: str = "cosine",
    min_lr_ratio: float = 0.0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up, then cosine decay, a constant, or the inverse square root.

    After ``step`` updates (call ``scheduler.step()`` after each ``optimizer.step()``)
    each parameter group's learning rate is its base ``lr`` times

    * warm-up, ``step < warmup_steps``: ``step / warmup_steps`` (so 0 at step 0);
    * ``kind="cosine"``: ``r + (1 - r) * (1 + cos(pi * p)) / 2`` with
      ``p = (step - warmup_steps) / (total_steps - warmup_steps)`` capped at 1 and
      ``r = min_lr_ratio``: 1 at the end of warm-up, ``r`` from ``total_steps`` on;
    * ``kind="constant"``: 1;
    * ``kind="inverse_sqrt"``: ``sqrt(warmup_steps / step)``. With the warm-up this is
      ``min(step / warmup, sqrt(warmup / step))``, eq. 3 of Vaswani et al. (2017)
      without its ``d_model ** -0.5`` factor, which here is part of the base lr.

    Args:
        optimizer: the optimizer whose groups' learning rates are scheduled.
        warmup_steps: length of the linear warm-up, ``>= 0`` (``>= 1`` for inverse_sqrt).
        total_steps: planned number of updates, ``>= warmup_steps``; only the cosine
            schedule uses it (it ends there).
        kind: ``"cosine"``, ``"constant"`` or ``"inverse_sqrt"``.
        min_lr_ratio: final learning rate of the cosine as a fraction of the base, in
            ``[0, 1]``; must stay 0 for the other kinds, which do not use it.
    """
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}."
        )
    _check_schedule(warmup_steps, total_steps, kind, min_lr_ratio)
    factor = partial(
        _lr_factor,
        warmup_steps=int(warmup_steps),
        total_steps=int(total_steps),
        kind=kind,
        min_lr_ratio=float(min_lr_ratio),
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# ----------------------------------------------------------- configuration, result


@dataclass(frozen=True)
class TrainConfig:
    """Settings of :func:`train`; checked when created (frozen: use ``dataclasses.replace``).

    Attributes:
        steps: number of optimizer updates, ``>= 1``.
        lr: peak (base) learning rate of AdamW.
        weight_decay: decoupled weight decay of the parameters with ``dim() >= 2``.
        warmup_steps: linear warm-up length, ``0 <= warmup_steps <= steps``.
        schedule: after warm-up, ``"cosine"`` (to 0 at ``steps``), ``"constant"`` or
            ``"inverse_sqrt"``; see :func:`warmup_schedule`.
        grad_clip: maximum global gradient norm (L2 over all parameters); ``None`` = no
            clipping (the norm is still recorded).
        eval_every: log (and evaluate) every ``eval_every`` steps, and at the last step.
        seed: passed to :func:`seed_everything` at the start of training (it drives
            dropout and any shuffling that uses torch's global generator).
        progress: show a text progress bar on ``sys.stderr``.
        max_seconds: a guard, not a budget: if the run has taken longer than this many
            wall-clock seconds after a step that is not the last, :func:`train` raises
            :class:`TrainingTimeout` naming the steps done. A run is defined by its steps,
            data and seed, so it is never silently shortened; ``None`` (the default) sets
            no guard.
    """

    steps: int
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup_steps: int = 100
    schedule: str = "cosine"
    grad_clip: float | None = 1.0
    eval_every: int = 100
    seed: int = 0
    progress: bool = True
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        check_positive_int(self.steps, "steps")
        _check_number(self.lr, "lr", positive=True)
        _check_number(self.weight_decay, "weight_decay")
        _check_schedule(
            self.warmup_steps,
            self.steps,
            self.schedule,
            0.0,
            total_name="steps",
            kind_name="schedule",
        )
        check_scale(self.grad_clip, "grad_clip")
        check_positive_int(self.eval_every, "eval_every")
        _check_seed(self.seed)
        if not isinstance(self.progress, bool):
            raise TypeError(f"progress must be True or False, got {self.progress!r}.")
        check_scale(self.max_seconds, "max_seconds")


class TrainingTimeout(RuntimeError):
    """A training run exceeded its ``max_seconds`` guard; raised, never a shortened run.

    Attributes:
        steps_done: updates made before the guard fired.
        steps: updates the run was defined with.
        seconds: wall-clock seconds elapsed when it fired.
    """

    def __init__(self, steps_done: int, steps: int, seconds: float, max_seconds: float):
        self.steps_done, self.steps, self.seconds = steps_done, steps, seconds
        super().__init__(
            f"training exceeded its max_seconds={max_seconds:g} guard after {steps_done} of "
            f"{steps} steps ({seconds:.0f} s). The run is defined by its {steps} steps and is "
            "not shortened: this machine is slower or busier than the guard allows; raise "
            "max_seconds (or set it to None) and run again."
        )


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        history: one dict per logged step with ``step`` (updates done), ``train_loss``
            (mean over the steps since the previous entry), ``lr`` (learning rate of the
            entry's last update), ``grad_norm`` (mean pre-clipping gradient norm since
            the previous entry), ``elapsed_s`` (wall-clock seconds since the start,
            evaluation included) and the metrics returned by ``evaluate``, if any.
        steps_done: number of updates made (always ``config.steps`` for a returned
            result: a run that cannot finish raises instead).
        seconds: wall-clock duration of the whole run.
    """

    history: list[dict[str, float]] = field(default_factory=list)
    steps_done: int = 0
    seconds: float = 0.0

    def losses(self) -> tuple[list[int], list[float]]:
        """The logged steps and their mean training losses, as two lists."""
        return [int(h["step"]) for h in self.history], [h["train_loss"] for h in self.history]

    def plot(
        self, ax: Axes | None = None, metrics: Sequence[str] = ("train_loss", "val_loss")
    ) -> Axes:
        """Draw the logged loss curves against the step with matplotlib.

        Args:
            ax: matplotlib ``Axes`` to draw on; ``None`` creates a new figure.
            metrics: history keys to draw; those absent from the history (e.g.
                ``val_loss`` without ``evaluate``) are skipped, but at least one must exist.

        Returns:
            The ``Axes``, with labelled axes, a legend and a title.
        """
        import matplotlib.pyplot as plt

        metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
        present = [m for m in metrics if any(m in h for h in self.history)]
        if not present:
            keys = sorted({k for h in self.history for k in h})
            raise ValueError(f"none of metrics {metrics} is in the history; its keys: {keys}.")
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 4))
        for name in present:
            points = [(h["step"], h[name]) for h in self.history if name in h]
            ax.plot(*zip(*points), marker="o", markersize=3, label=name)
        ax.set_xlabel("step")
        ax.set_ylabel("loss" if all("loss" in m for m in present) else "value")
        ax.set_title(f"Training curves ({self.steps_done} steps)")
        ax.legend()
        return ax


# ---------------------------------------------------------------------- training


def sample_batches(
    data: Mapping[str, torch.Tensor], batch_size: int, *, seed: int = 0
) -> Iterator[dict[str, torch.Tensor]]:
    """Endless mini-batches of rows drawn uniformly at random, with replacement.

    Each batch is ``{name: tensor[idx]}`` for one ``idx`` of ``batch_size`` row indices
    drawn by ``torch.randint`` from a generator seeded with ``seed`` (so the sequence of
    batches is the same on every run, independent of the global generators).

    Args:
        data: named tensors sharing their first dimension ``N`` (e.g. ``{"src": (N, S),
            "tgt_in": (N, L), "tgt_out": (N, L)}``).
        batch_size: rows per batch, ``>= 1``.
        seed: seed of the sampling generator.

    Yields:
        dicts with the keys of ``data`` and tensors of ``batch_size`` rows.
    """
    if not isinstance(data, Mapping) or len(data) == 0:
        raise TypeError("data must be a non-empty mapping of names to tensors.")
    sizes = {}
    for name, t in data.items():
        if not isinstance(t, torch.Tensor) or t.dim() == 0:
            raise TypeError(f"data[{name!r}] must be a tensor with at least one dimension.")
        sizes[name] = t.shape[0]
    if len(set(sizes.values())) != 1:
        raise ValueError(f"every tensor in data must have the same number of rows, got {sizes}.")
    n = next(iter(sizes.values()))
    if n == 0:
        raise ValueError("data has no rows to sample from.")
    batch_size = check_positive_int(batch_size, "batch_size")
    gen = torch.Generator().manual_seed(_check_seed(seed))
    return _sample_rows(data, n, batch_size, gen)


def _sample_rows(
    data: Mapping[str, torch.Tensor], n: int, batch_size: int, gen: torch.Generator
) -> Iterator[dict[str, torch.Tensor]]:
    while True:
        idx = torch.randint(n, (batch_size,), generator=gen)  # (batch_size,)
        yield {name: t[idx] for name, t in data.items()}


def _endless(batches: Iterable[Any]) -> Iterator[Any]:
    """Yield batches forever, iterating ``batches`` again each time it runs out.

    A re-iterable (a list, a ``DataLoader``, which reshuffles each pass) is cycled. A
    one-shot iterator (a generator) cannot be restarted: it must be endless, and running
    out raises, rather than keeping every batch it yielded in memory for replay.
    """
    passes = 0
    while True:
        count = 0
        for batch in batches:
            count += 1
            yield batch
        if count == 0 and passes == 0:
            raise ValueError("batches yielded no batch at all.")
        if isinstance(batches, Iterator):
            raise ValueError(
                f"batches is a one-shot iterator (e.g. a generator) and ran out after "
                f"{count} batches; it cannot be restarted. Pass a list (list(batches)), a "
                f"DataLoader, or an endless generator."
            )
        passes += 1


def _check_loss(loss: object, step: int) -> torch.Tensor:
    """Check what ``loss_fn`` returned: a 0-d floating tensor with a gradient graph."""
    if not isinstance(loss, torch.Tensor):
        raise TypeError(
            f"loss_fn must return a scalar torch.Tensor, got {type(loss).__name__} at step {step}."
        )
    if loss.dim() != 0 or not loss.is_floating_point():
        raise ValueError(
            f"loss_fn must return a scalar (0-d) floating-point tensor, got shape "
            f"{tuple(loss.shape)} and dtype {loss.dtype} at step {step}; reduce it, "
            f"e.g. with .mean()."
        )
    if not loss.requires_grad:
        raise ValueError(
            f"the loss returned by loss_fn at step {step} does not require grad: it was "
            f"computed under torch.no_grad(), detached, or does not depend on the model."
        )
    return loss


def _train_step(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, Any], torch.Tensor],
    batch: Any,
    optimizer: torch.optim.Optimizer,
    max_norm: float,
    step: int,
) -> tuple[float, float]:
    """One update; returns the loss and the gradient norm before clipping."""
    optimizer.zero_grad(set_to_none=True)
    loss = _check_loss(loss_fn(model, batch), step)
    value = loss.item()
    if not math.isfinite(value):
        raise FloatingPointError(
            f"the loss is {value} at step {step}; training stopped before updating. "
            f"Check the data for NaN/inf, lower lr, or enable grad_clip."
        )
    loss.backward()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    grad_norm = float(nn.utils.clip_grad_norm_(params, max_norm))
    if not math.isfinite(grad_norm):
        raise FloatingPointError(
            f"the gradient norm is {grad_norm} at step {step} although the loss is finite "
            f"({value}); training stopped before updating."
        )
    optimizer.step()
    return value, grad_norm


def _evaluate(
    model: nn.Module, evaluate: Callable[[nn.Module], Mapping[str, float]], step: int
) -> dict[str, float]:
    """Call ``evaluate(model)`` in eval mode without gradients; check and return its metrics."""
    model.eval()
    try:
        with torch.no_grad():
            metrics = evaluate(model)
    finally:
        model.train()
    if not isinstance(metrics, Mapping):
        raise TypeError(
            f"evaluate must return a dict of metric name -> number, got "
            f"{type(metrics).__name__} at step {step}."
        )
    checked = {}
    for name, value in metrics.items():
        if name in _LOGGED:
            raise ValueError(f"evaluate returned the metric {name!r}, a name train() uses itself.")
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(
                f"evaluate must return numbers; its metric {name!r} is {type(value).__name__}."
            )
        checked[str(name)] = float(value)
    return checked


class _SilentBar:
    """Stand-in for a disabled tqdm bar (so that progress=False does not need tqdm)."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **kwargs: Any) -> None:
        pass

    def write(self, s: str, file: Any = None) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(config: TrainConfig) -> Any:
    """A text tqdm bar on sys.stderr (no notebook widget), or a silent one."""
    if not config.progress:
        return _SilentBar()
    try:
        from tqdm import tqdm
    except ImportError as err:
        raise ImportError(
            "progress=True needs tqdm (pip install 'attnkit[notebooks]'); or pass progress=False."
        ) from err
    bar = dict(total=config.steps, desc="train", unit="step", file=sys.stderr)
    if _is_terminal(sys.stderr):
        return tqdm(**bar)  # redrawn in place, about ten times a second
    # A notebook, a log file or the built book: each redraw may become a line of its own,
    # so redraw only every tenth of the run (about PROGRESS_LINES lines in all).
    every = max(1, math.ceil(config.steps / PROGRESS_LINES))
    return tqdm(**bar, miniters=every, mininterval=0.0, maxinterval=math.inf)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values)


def train(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, Any], torch.Tensor],
    batches: Iterable[Any],
    config: TrainConfig,
    *,
    evaluate: Callable[[nn.Module], Mapping[str, float]] | None = None,
) -> TrainResult:
    """Train ``model`` for ``config.steps`` AdamW updates and return the logged history.

    Each step: ``loss = loss_fn(model, batch)`` on the next batch (model in train mode),
    backward, gradient clipping to ``config.grad_clip``, an AdamW update (see
    :func:`make_optimizer`), then the learning-rate schedule (see :func:`warmup_schedule`).
    Every ``config.eval_every`` steps and at the last one an entry is added to the history
    and ``evaluate(model)`` is called, in eval mode under ``torch.no_grad()``.

    Training starts with ``seed_everything(config.seed)``, which resets the global
    generators. Each module's train/eval mode is restored at the end.

    Args:
        model: the ``nn.Module`` to train, in place (already on its device).
        loss_fn: ``loss_fn(model, batch)`` returns the scalar loss tensor of a batch.
        batches: an iterable of batches, used again from its start when it runs out (a
            list, a ``DataLoader``), or an endless iterator (a generator that samples
            batches); a one-shot iterator that runs out raises ``ValueError``.
        config: the :class:`TrainConfig`.
        evaluate: optional ``evaluate(model)`` returning ``{"val_loss": ..., ...}``,
            numbers (or one-element tensors) added to the history.

    Returns:
        A :class:`TrainResult`.

    Raises:
        FloatingPointError: the loss (or the gradient norm) is NaN or infinite; the
            message gives the step, and the parameters are those before that step.
        ValueError: the model has no trainable parameters, or ``loss_fn`` does not return
            a scalar tensor with a gradient graph.
        TrainingTimeout: ``config.max_seconds`` is set and the run took longer than that
            before its last step (the run is never shortened to fit).
    """
    _check_module(model)
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}.")
    if evaluate is not None and not callable(evaluate):
        raise TypeError(f"evaluate must be None or callable, got {type(evaluate).__name__}.")
    if not isinstance(batches, Iterable):
        raise TypeError(f"batches must be iterable, got {type(batches).__name__}.")
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}.")

    seed_everything(config.seed)
    optimizer = make_optimizer(model, config.lr, config.weight_decay)
    scheduler = warmup_schedule(optimizer, config.warmup_steps, config.steps, kind=config.schedule)
    max_norm = math.inf if config.grad_clip is None else config.grad_clip
    modes = {module: module.training for module in model.modules()}
    stream = _endless(batches)
    result = TrainResult()
    losses: list[float] = []
    norms: list[float] = []
    bar = _progress_bar(config)
    start = time.perf_counter()
    model.train()
    try:
        for step in range(1, config.steps + 1):
            lr = optimizer.param_groups[0]["lr"]
            loss, grad_norm = _train_step(model, loss_fn, next(stream), optimizer, max_norm, step)
            scheduler.step()
            losses.append(loss)
            norms.append(grad_norm)
            result.steps_done = step
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
            if step % config.eval_every == 0 or step == config.steps:
                metrics = {} if evaluate is None else _evaluate(model, evaluate, step)
                result.history.append(
                    {
                        "step": step,
                        "train_loss": _mean(losses),
                        "lr": lr,
                        "grad_norm": _mean(norms),
                        "elapsed_s": time.perf_counter() - start,
                        **metrics,
                    }
                )
                losses.clear()
                norms.clear()
            elapsed = time.perf_counter() - start
            guard = config.max_seconds
            if guard is not None and elapsed > guard and step < config.steps:
                raise TrainingTimeout(step, config.steps, elapsed, guard)
    finally:
        bar.close()
        for module, mode in modes.items():
            module.train(mode)
    result.seconds = time.perf_counter() - start
    return result

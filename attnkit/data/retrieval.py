"""A long-range retrieval task on which locality alone fails (efficient-attention chapter).

Each example is a sequence of ``n`` tokens::

    position:  0        1 ... p-1     p         p+1 ... n-1
    token:     [QUERY]  noise ...     VALUE_c   noise ...

Position 0 holds the ``QUERY`` token (the model reads its answer there, like BERT's
``[CLS]``); one *needle* position ``p``, uniform over ``1 .. n-1``, holds ``VALUE_c``, one
of ``num_values`` value tokens; every other position holds a noise token drawn uniformly
from ``noise_vocab`` symbols. The label is ``c``. A model answers only if information flows
from position ``p`` to position 0, whatever their distance: attention restricted to a
window of radius ``w`` around the query cannot see needles beyond ``w`` (``L`` layers of
it: beyond ``L * w``), so its accuracy is capped near ``P(p <= L w) + P(p > L w) / C``.
The task is in the spirit of the retrieval tasks of the Long Range Arena (Tay et al., 2021)
but generated here, so it needs no download.

Token ids: ``0 .. noise_vocab - 1`` noise, then the ``num_values`` value tokens, then
``QUERY``; ``vocab_size = noise_vocab + num_values + 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .._validate import check_instance, check_int, check_positive_int


@dataclass(frozen=True)
class RetrievalTask:
    """The vocabulary of the retrieval task (see the module docstring)."""

    noise_vocab: int = 8
    num_values: int = 10

    def __post_init__(self) -> None:
        check_positive_int(self.noise_vocab, "noise_vocab")
        if check_positive_int(self.num_values, "num_values") < 2:
            raise ValueError(f"num_values must be at least 2, got {self.num_values}.")

    @property
    def query_token(self) -> int:
        """Id of the query token, right after the noise and value ids."""
        return self.noise_vocab + self.num_values

    @property
    def vocab_size(self) -> int:
        """How many token ids there are (noise, values and the query token)."""
        return self.noise_vocab + self.num_values + 1

    def sample(
        self, num: int, n: int, *, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Draw ``num`` examples of length ``n``.

        Returns:
            ``(tokens, labels, positions)``: ``tokens`` int64 ``(num, n)``, ``labels``
            int64 ``(num,)`` in ``0 .. num_values - 1``, ``positions`` int64 ``(num,)``,
            the needle's position in ``1 .. n - 1``.
        """
        num = check_positive_int(num, "num")
        n = check_positive_int(n, "n")
        if n < 2:
            raise ValueError(f"n must be at least 2 (the query and the needle), got {n}.")
        tokens = torch.randint(0, self.noise_vocab, (num, n), generator=generator)  # (num, n)
        labels = torch.randint(0, self.num_values, (num,), generator=generator)  # (num,)
        positions = torch.randint(1, n, (num,), generator=generator)  # (num,)
        tokens[torch.arange(num), positions] = self.noise_vocab + labels
        tokens[:, 0] = self.query_token
        return tokens, labels, positions


def retrieval_split(
    task: RetrievalTask, num: int, n: int, split: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A fixed validation or test set: ``split`` is ``"val"`` or ``"test"``.

    Each split has its own seed, different from the training stream of
    :func:`retrieval_batches`; with ``noise_vocab ** (n - 2)`` possible noise patterns a
    repeated sequence between splits is, for ``n >= 64``, practically impossible (the
    tests check it on the sizes the book uses).
    """
    check_instance(task, "task", RetrievalTask)
    seeds = {"val": 1_000_001, "test": 2_000_003}
    if split not in seeds:
        raise ValueError(f"split must be 'val' or 'test', got {split!r}.")
    return task.sample(num, n, generator=torch.Generator().manual_seed(seeds[split]))


def retrieval_batches(
    task: RetrievalTask,
    batch_size: int,
    schedule: list[tuple[int, int]],
    *,
    seed: int = 0,
):
    """Training batches ``(tokens, labels)``: ``schedule`` lists ``(n, steps)`` phases.

    For example ``[(128, 300), (1024, 150)]`` yields 300 batches of length 128, then 150
    of length 1024 (a length curriculum). Each batch is freshly sampled, so the model
    never sees the same training sequence twice.
    """
    check_instance(task, "task", RetrievalTask)
    batch_size = check_positive_int(batch_size, "batch_size")
    if isinstance(schedule, str) or not isinstance(schedule, (list, tuple)):
        raise TypeError(f"schedule must be a list of (n, steps) pairs, got {schedule!r}.")
    if not schedule:
        raise ValueError("schedule must list at least one (n, steps) phase.")
    for phase in schedule:
        if not isinstance(phase, (list, tuple)) or len(phase) != 2:
            raise TypeError(f"schedule must be a list of (n, steps) pairs, got item {phase!r}.")
        check_positive_int(phase[0], "n in schedule")
        check_positive_int(phase[1], "steps in schedule")
    seed = check_int(seed, "seed")
    # Checked here, at the call; the batches are drawn lazily by the generator below.
    return _batches(task, batch_size, schedule, seed)


def _batches(task: RetrievalTask, batch_size: int, schedule: list[tuple[int, int]], seed: int):
    g = torch.Generator().manual_seed(seed)
    for n, steps in schedule:
        for _ in range(steps):
            tokens, labels, _ = task.sample(batch_size, n, generator=g)
            yield tokens, labels

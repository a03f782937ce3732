"""Grader for chapter 15's exercises (scaling out: data parallelism).

Each exercise is checked against attnkit's implementation or the chapter's formulas *and*
against an independent reference written here: explicit slicing and ``torch.chunk``, the
plain ``sum`` of the device tensors and a chunk-by-chunk count of the ring's messages, the
numbers of Table 1 of the ZeRO paper (Rajbhandari et al., 2020), and a closed form of the
warm-up line. Every test calls the learner's function, so every test fails on the
untouched exercise file.
"""

from __future__ import annotations

import pytest
import torch

from attnkit import distributed as akd
from attnkit.grading import require

CHAPTER = "15"
ex = pytest.mark.exercise


# ----------------------------------------------------------------------- shard_rows
@ex("shard_rows")
@pytest.mark.parametrize(
    "shape,world_size", [((1,), 1), ((8,), 2), ((12, 3), 3), ((16, 5, 2), 4), ((6, 4), 6)]
)
def test_shard_rows_matches_slicing_and_attnkit(learner, shape, world_size):
    fn = require(learner, "shard_rows")
    batch = torch.arange(torch.Size(shape).numel()).view(shape)
    pieces = torch.chunk(batch, world_size)  # equal pieces when world_size divides B
    for rank in range(world_size):
        got = fn(batch, rank, world_size)
        assert isinstance(got, torch.Tensor), "return a tensor"
        assert got.shape == pieces[rank].shape, (
            f"shard_rows(batch {tuple(shape)}, {rank}, {world_size}) has shape "
            f"{tuple(got.shape)}, expected {tuple(pieces[rank].shape)}"
        )
        assert torch.equal(got, pieces[rank]), f"rank {rank}'s rows are wrong"
        assert torch.equal(got, akd.shard_rows(batch, rank, world_size))
        assert got.untyped_storage().data_ptr() == batch.untyped_storage().data_ptr(), (
            "return a slice of batch (a view of its memory), not a copy"
        )


@ex("shard_rows")
def test_shard_rows_concatenates_back_to_the_batch(learner):
    fn = require(learner, "shard_rows")
    batch = torch.randn(24, 3, generator=torch.Generator().manual_seed(0))
    for world_size in (1, 2, 3, 4, 6, 8, 12, 24):
        shards = [fn(batch, r, world_size) for r in range(world_size)]
        assert torch.equal(torch.cat(shards), batch), (
            f"the {world_size} shards, in rank order, must be the batch again"
        )


@ex("shard_rows")
@pytest.mark.parametrize("rank,world_size", [(0, 4), (0, 5), (2, 2), (3, 2), (-1, 2)])
def test_shard_rows_rejects_uneven_splits_and_bad_ranks(learner, rank, world_size):
    fn = require(learner, "shard_rows")
    with pytest.raises(ValueError):
        fn(torch.zeros(6, 2), rank, world_size)


# ------------------------------------------------------------------- ring_allreduce
def _ring_bytes(numel: int, element_size: int, n: int) -> list[int]:
    """Reference count: the chunk numbers each device sends, from the ring's schedule."""
    sizes = [len(c) for c in torch.arange(numel).tensor_split(n)]
    sent = []
    for i in range(n):
        numbers = [(i - s) % n for s in range(n - 1)] + [(i + 1 - s) % n for s in range(n - 1)]
        sent.append(sum(sizes[c] for c in numbers) * element_size)
    return sent


@ex("ring_allreduce")
@pytest.mark.parametrize(
    "n,shape,dtype",
    [
        (2, (8,), torch.int64),
        (3, (4, 5), torch.int32),
        (4, (8,), torch.int64),
        (5, (3, 7), torch.int64),
        (7, (2,), torch.int64),  # more devices than elements: empty chunks
    ],
)
def test_ring_allreduce_exact_on_integers(learner, n, shape, dtype):
    fn = require(learner, "ring_allreduce")
    g = torch.Generator().manual_seed(n)
    tensors = [torch.randint(-1000, 1000, shape, generator=g).to(dtype) for _ in range(n)]
    copies = [t.clone() for t in tensors]
    results, sent = fn(tensors)
    want = sum(copies)
    assert len(results) == n and len(sent) == n, "one result and one byte count per device"
    for i, r in enumerate(results):
        assert r.shape == want.shape and r.dtype == dtype, (
            f"device {i}'s result must keep the shape {tuple(shape)} and dtype {dtype}"
        )
        assert torch.equal(r, want), f"device {i} does not hold the sum"
    assert all(torch.equal(t, c) for t, c in zip(tensors, copies)), "do not modify the inputs"
    want_bytes = _ring_bytes(want.numel(), want.element_size(), n)
    assert [int(b) for b in sent] == want_bytes, (
        f"bytes sent {list(sent)}, expected {want_bytes} from the ring's schedule"
    )


@ex("ring_allreduce")
@pytest.mark.parametrize("n", [2, 3, 4, 8])
def test_ring_allreduce_floats_and_the_bandwidth_formula(learner, n):
    fn = require(learner, "ring_allreduce")
    g = torch.Generator().manual_seed(10 + n)
    tensors = [torch.randn(3, 8 * n, generator=g) for _ in range(n)]  # n divides numel
    results, sent = fn(tensors)
    torch.testing.assert_close(results[0], torch.stack(tensors).sum(0), rtol=1e-5, atol=1e-5)
    for r in results[1:]:
        assert torch.equal(r, results[0]), (
            "every device must end with the same copy (the all-gather copies whole chunks)"
        )
    nbytes = tensors[0].numel() * tensors[0].element_size()
    assert all(int(b) == 2 * (n - 1) * nbytes // n for b in sent), (
        f"each device should send 2(N-1)/N x {nbytes} bytes, got {list(sent)}"
    )


@ex("ring_allreduce")
def test_ring_allreduce_one_device_sends_nothing(learner):
    fn = require(learner, "ring_allreduce")
    x = torch.tensor([[1.5, -2.0], [3.0, 4.0]])
    results, sent = fn([x])
    assert [int(b) for b in sent] == [0], "with one device nothing is sent"
    assert len(results) == 1 and torch.equal(results[0], x)


# ----------------------------------------------------------- zero_memory_per_device
@ex("zero_memory_per_device")
def test_zero_memory_reproduces_the_papers_table(learner):
    fn = require(learner, "zero_memory_per_device")
    # Rajbhandari et al. (2020), Table 1: Psi = 7.5B, N_d = 64, K = 12 (GB)
    paper = {0: 120.0, 1: 31.4, 2: 16.6, 3: 1.88}
    for stage, gb in paper.items():
        got = fn(7.5e9, 64, stage) / 1e9
        assert got == pytest.approx(gb, abs=0.05), f"stage {stage}: {got:.2f} GB, paper {gb}"


@ex("zero_memory_per_device")
@pytest.mark.parametrize(
    "num_params,world_size,k",
    [(1e6, 1, 12), (3.3e8, 8, 12), (7e9, 16, 8), (1_003, 7, 12), (2_000_001, 4, 0)],
)
def test_zero_memory_formulas(learner, num_params, world_size, k):
    fn = require(learner, "zero_memory_per_device")
    psi, n = num_params, world_size
    want = [
        (4 + k) * psi,
        4 * psi + k * psi / n,
        2 * psi + (2 + k) * psi / n,
        (4 + k) * psi / n,
    ]
    got = [fn(num_params, world_size, stage, k) for stage in range(4)]
    for stage in range(4):
        assert isinstance(got[stage], float), f"return a float, got {type(got[stage]).__name__}"
        assert got[stage] == pytest.approx(want[stage], rel=1e-12), (
            f"stage {stage} is wrong ({num_params} parameters, {world_size} devices, k = {k})"
        )
    if world_size == 1:
        assert len({round(x) for x in got}) == 1, "on one device every stage costs the same"


@ex("zero_memory_per_device")
def test_zero_memory_uses_the_given_k(learner):
    fn = require(learner, "zero_memory_per_device")
    for k in (8, 0, 20):  # k = 0: an optimizer without state (plain SGD)
        got = fn(1e6, 4, 1, k)
        assert got == pytest.approx(4e6 + k * 1e6 / 4, rel=1e-12), (
            f"stage 1 with k = {k}: 2 + 2 bytes per parameter, k / N of optimizer state"
        )


@ex("zero_memory_per_device")
@pytest.mark.parametrize("stage", [-1, 4, 5])
def test_zero_memory_rejects_unknown_stages(learner, stage):
    fn = require(learner, "zero_memory_per_device")
    with pytest.raises(ValueError):
        fn(1e9, 8, stage)


# -------------------------------------------------------------- scaled_learning_rate
@ex("scaled_learning_rate")
@pytest.mark.parametrize(
    "base_lr,base_batch,batch,warmup",
    [(0.1, 256, 8192, 780), (3e-4, 32, 128, 10), (0.5, 64, 64, 5)],
)
def test_scaled_learning_rate_warmup_line_and_target(learner, base_lr, base_batch, batch, warmup):
    fn = require(learner, "scaled_learning_rate")
    k = batch / base_batch
    for step in range(0, warmup + 20):
        # closed form: from base_lr at step 0 to k * base_lr at step `warmup`, then flat
        want = base_lr * (1 + (k - 1) * min(step, warmup) / warmup)
        got = fn(base_lr, base_batch, batch, step, warmup)
        assert got == pytest.approx(want, rel=1e-12), f"step {step}: {got}, expected {want}"


@ex("scaled_learning_rate")
def test_scaled_learning_rate_without_warmup_is_the_linear_rule(learner):
    fn = require(learner, "scaled_learning_rate")
    for batch in (256, 512, 1024, 8192):
        got = fn(0.1, 256, batch, 0, 0)
        assert got == pytest.approx(0.1 * batch / 256, rel=1e-12), (
            "without warm-up the rate is base_lr * batch / base_batch from step 0"
        )
    assert fn(0.1, 256, 128, 3, 0) == pytest.approx(0.05), "a smaller batch scales down"

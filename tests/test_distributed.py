"""Tests of attnkit.distributed: sharding, the seeded global batches, and a real 2-process
DistributedDataParallel run (gloo, torchrun, CPU) against single-process training.

Tolerances (measured on the 2-core build machine, torch 2.13 CPU, 40 steps, seed 0): the
per-step losses of the two runs differ by at most 2.3e-7 relative and the final parameters
by at most 5.5e-6 (float32 reduction order); the tests allow 1e-5 and 1e-4. A run on a
different global batch (the negative control) differs by more than 1e-2 relative.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from attnkit import distributed as D
from attnkit.data import stdlib_docstrings
from attnkit.transformer import TransformerLM

LOSS_RTOL = 1e-5
PARAM_ATOL = 1e-4
SETTINGS = D.DataParallelSettings(steps=40, global_batch=16, context=64, seed=0, data_seed=0)


# ------------------------------------------------------------------------ shard_rows
@pytest.mark.parametrize("rows,world_size", [(1, 1), (8, 1), (8, 2), (12, 3), (16, 4), (6, 6)])
def test_shard_rows_partitions_the_batch_in_order(rows, world_size):
    batch = torch.arange(rows * 3).view(rows, 3)
    shards = [D.shard_rows(batch, r, world_size) for r in range(world_size)]
    for r, shard in enumerate(shards):
        b = rows // world_size
        assert shard.shape == (b, 3)
        assert torch.equal(shard, batch[r * b : (r + 1) * b])  # contiguous block r
    assert torch.equal(torch.cat(shards), batch)


def test_shard_rows_keeps_trailing_dimensions():
    batch = torch.randn(4, 2, 5)
    assert D.shard_rows(batch, 1, 2).shape == (2, 2, 5)


@pytest.mark.parametrize(
    "rank,world_size,match",
    [(0, 3, "does not divide"), (2, 2, "rank must be in"), (-1, 2, "rank"), (0, 0, "world_size")],
)
def test_shard_rows_rejects_bad_arguments(rank, world_size, match):
    with pytest.raises(ValueError, match=match):
        D.shard_rows(torch.zeros(8, 2), rank, world_size)


def test_shard_rows_rejects_non_tensors_and_scalars():
    with pytest.raises(TypeError, match="batch"):
        D.shard_rows([[1, 2], [3, 4]], 0, 2)
    with pytest.raises(ValueError, match="batch"):
        D.shard_rows(torch.tensor(1.0), 0, 1)


# -------------------------------------------------------------------- global_batches
def test_global_batches_are_seeded_windows_of_ids():
    ids = torch.arange(1000)
    first = D.global_batches(ids, 16, 65, seed=3)
    again = D.global_batches(ids, 16, 65, seed=3)
    other = D.global_batches(ids, 16, 65, seed=4)
    for _ in range(3):
        a, b, c = next(first), next(again), next(other)
        assert a.shape == (16, 65)
        assert torch.equal(a, b)
        assert not torch.equal(a, c)
        # each row is a contiguous window of ids (here ids[i] == i)
        assert torch.equal(a - a[:, :1], torch.arange(65).expand(16, 65))
        assert int(a.max()) <= 999


def test_global_batches_rejects_bad_arguments():
    with pytest.raises(ValueError, match="window"):
        D.global_batches(torch.arange(10), 4, 11)
    with pytest.raises(ValueError, match="1-D"):
        D.global_batches(torch.zeros(3, 40, dtype=torch.long), 4, 5)
    with pytest.raises(ValueError, match="global_batch"):
        D.global_batches(torch.arange(100), 0, 5)


# ------------------------------------------------------------------ settings, launch
@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"steps": 0}, "steps"),
        ({"global_batch": -2}, "global_batch"),
        ({"warmup_steps": 50, "steps": 40}, "warmup_steps"),
        ({"lr": 0.0}, "lr"),
        ({"seed": -1}, "seed"),
    ],
)
def test_settings_reject_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        D.DataParallelSettings(**kwargs)


def test_launch_rejects_bad_arguments():
    with pytest.raises(ValueError, match="must divide"):
        D.launch(D.DataParallelSettings(global_batch=15), 2)
    with pytest.raises(ValueError, match="world_size"):
        D.launch(SETTINGS, 0)
    with pytest.raises(TypeError, match="DataParallelSettings"):
        D.launch({"steps": 3}, 2)


def test_launch_surfaces_the_childrens_stderr(tmp_path):
    missing = tmp_path / "no_such_corpus.txt"
    with pytest.raises(RuntimeError, match="no_such_corpus"):
        D.launch(D.DataParallelSettings(steps=2, warmup_steps=1), 2, text_file=missing)


# ------------------------------------------------------------- the distributed run
@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "docstrings.txt"
    path.write_text(stdlib_docstrings()[: SETTINGS.max_chars])
    return path


@pytest.fixture(scope="module")
def runs(corpus_file):
    """The single-process reference and the 2-process DDP run, same global batches."""
    single = D.launch(SETTINGS, 1, text_file=corpus_file)
    ddp = D.launch(SETTINGS, 2, text_file=corpus_file)
    return single, ddp


def test_runs_report_what_they_did(runs):
    single, ddp = runs
    assert (single["world_size"], single["distributed"]) == (1, False)
    assert (ddp["world_size"], ddp["distributed"], ddp["backend"]) == (2, True, "gloo")
    assert len(ddp["mean_step_seconds_per_rank"]) == 2
    for run in runs:
        assert len(run["losses"]) == SETTINGS.steps
        assert run["threads_per_process"] == 1
        assert run["settings"] == json.loads(json.dumps(SETTINGS.__dict__))
        assert run["params"].numel() == run["param_count"]
    # training works: the loss falls from about ln V
    assert single["losses"][0] > 4.0 and single["losses"][-1] < single["losses"][0] - 1.0


def test_ddp_loss_curve_matches_single_process(runs):
    single, ddp = runs
    a = torch.tensor(single["losses"], dtype=torch.float64)
    b = torch.tensor(ddp["losses"], dtype=torch.float64)
    rel = ((a - b).abs() / a).max().item()
    assert rel < LOSS_RTOL, f"max relative loss difference {rel:.2e}"
    torch.testing.assert_close(
        torch.tensor(ddp["grad_norms"]), torch.tensor(single["grad_norms"]), rtol=1e-3, atol=0
    )


def test_ddp_final_parameters_match_single_process(runs):
    single, ddp = runs
    diff = (single["params"] - ddp["params"]).abs().max().item()
    assert diff < PARAM_ATOL, f"max parameter difference {diff:.2e}"
    assert ddp["param_sum"] == pytest.approx(float(ddp["params"].sum()))


def test_first_logged_loss_is_the_global_mean_not_rank_0s(runs, corpus_file):
    """Independent check of the logged loss: recompute step 1 by hand."""
    _, ddp = runs
    ids, vocab_size = D.load_token_ids(SETTINGS.max_chars, str(corpus_file))
    torch.manual_seed(SETTINGS.seed)  # the initial weights, as train_data_parallel builds them
    model = TransformerLM(
        vocab_size, d_model=64, num_heads=4, num_layers=2, d_ff=256, dropout=0.0, max_len=64
    )
    gen = torch.Generator().manual_seed(SETTINGS.data_seed)
    starts = torch.randint(0, len(ids) - 65 + 1, (16,), generator=gen)
    batch = torch.stack([ids[s : s + 65] for s in starts.tolist()])  # (16, 65)
    with torch.no_grad():
        nll = F.cross_entropy(
            model(batch[:, :-1]).flatten(0, 1), batch[:, 1:].flatten(), reduction="none"
        ).view(16, 64)
    global_mean, rank0_mean = nll.mean().item(), nll[:8].mean().item()
    assert ddp["losses"][0] == pytest.approx(global_mean, rel=1e-5)
    assert abs(rank0_mean - global_mean) > 100 * LOSS_RTOL * global_mean  # distinguishable


def test_negative_control_other_global_batch_differs_far_beyond_tolerance(runs, corpus_file):
    """A run on other global batches: the comparison above would catch such a mismatch."""
    single, _ = runs
    other = D.launch(
        D.DataParallelSettings(**{**SETTINGS.__dict__, "data_seed": 1}),
        1,
        text_file=corpus_file,
        with_params=False,
    )
    a = torch.tensor(single["losses"])
    b = torch.tensor(other["losses"])
    rel = ((a - b).abs() / a).max().item()
    assert rel > 1000 * LOSS_RTOL, f"only {rel:.2e}: the tolerance would not catch it"

"""Tests of the attention registry, the long-range classifier and the retrieval task."""

from __future__ import annotations

import pytest
import torch

from attnkit.data.retrieval import RetrievalTask, retrieval_batches, retrieval_split
from attnkit.efficient.experiment import (
    RetrievalRecipe,
    accuracy_by_distance,
    predict,
    run_retrieval,
)
from attnkit.efficient.full import FullSelfAttention
from attnkit.efficient.model import (
    ATTENTION_LAYERS,
    LongRangeClassifier,
    attention_class,
    make_self_attention,
)

# options small enough for n = 64 that every method still differs from full attention
OPTIONS = {
    "full": {},
    "tiled": {"block_q": 16, "block_k": 32},
    "local": {"window": 8},
    "sparse": {"stride": 8, "causal": False},
    "bigbird": {"block_size": 8},
    "longformer": {"window": 8},
    "linformer": {"seq_len": 64, "proj_len": 16},
    "performer": {"num_features": 32},
    "linear": {},
}


def test_options_cover_the_registry():
    assert set(OPTIONS) == set(ATTENTION_LAYERS)


@pytest.mark.parametrize("kind", list(ATTENTION_LAYERS))
def test_every_layer_builds_runs_and_ignores_padded_keys(kind):
    torch.manual_seed(0)
    layer = make_self_attention(kind, 16, 2, **OPTIONS[kind]).double()
    assert isinstance(layer, attention_class(kind))
    x = torch.randn(2, 64, 16, dtype=torch.float64)
    out = layer(x)
    assert out.shape == x.shape and torch.isfinite(out).all()
    # changing the padded tail must not change the outputs at real positions
    if kind == "linformer":
        return  # Linformer projects keys over positions: padding is not excluded (documented)
    lengths = torch.tensor([64, 40])
    mask = torch.arange(64) < lengths[:, None]  # (B, n)
    y = x.clone()
    y[1, 40:] += torch.randn(24, 16, dtype=torch.float64)
    a = layer(x, key_padding_mask=mask)[1, :40]
    b = layer(y, key_padding_mask=mask)[1, :40]
    torch.testing.assert_close(a, b)


def test_fused_full_attention_equals_attnkit():
    torch.manual_seed(1)
    ref = FullSelfAttention(16, 4, causal=True)
    fused = FullSelfAttention(16, 4, causal=True, fused=True)
    fused.load_state_dict(ref.state_dict())
    x = torch.randn(3, 20, 16)
    mask = torch.arange(20) < torch.tensor([20, 11, 5])[:, None]
    torch.testing.assert_close(fused(x, key_padding_mask=mask), ref(x, key_padding_mask=mask))


def test_registry_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown attention 'flash'"):
        make_self_attention("flash", 16, 2)
    with pytest.raises(TypeError, match=r"bad options .* 'local'"):
        make_self_attention("local", 16, 2, radius=3)
    with pytest.raises(TypeError, match="fused must be True or False"):
        FullSelfAttention(16, 2, fused=1)


def test_classifier_shapes_and_errors():
    model = LongRangeClassifier(20, 5, "local", {"window": 4}, max_len=32)
    tokens = torch.randint(0, 20, (3, 32))
    assert model(tokens).shape == (3, 5)
    with pytest.raises(ValueError, match="exceeds max_len=32"):
        model(torch.randint(0, 20, (1, 33)))
    with pytest.raises(ValueError, match="int64"):
        model(tokens.float())


def test_classifier_reads_position_zero_only_through_attention():
    # With a window of 2 and 2 layers, position 0 cannot see position 10: its output
    # does not change when that token does.
    torch.manual_seed(0)
    model = LongRangeClassifier(20, 5, "local", {"window": 2}, max_len=16).eval()
    tokens = torch.randint(0, 20, (1, 16))
    other = tokens.clone()
    other[0, 10] = (other[0, 10] + 1) % 20
    torch.testing.assert_close(model(tokens), model(other))
    full = LongRangeClassifier(20, 5, "full", max_len=16).eval()
    assert not torch.allclose(full(tokens), full(other))


# ------------------------------------------------------------------ retrieval data
def test_retrieval_examples_are_well_formed():
    task = RetrievalTask(noise_vocab=8, num_values=10)
    tokens, labels, positions = task.sample(500, 64, generator=torch.Generator().manual_seed(0))
    assert tokens.shape == (500, 64) and tokens.dtype == torch.int64
    assert (tokens[:, 0] == task.query_token).all()
    is_value = (tokens >= task.noise_vocab) & (tokens < task.query_token)
    assert (is_value.sum(1) == 1).all(), "exactly one needle per sequence"
    assert (is_value.float().argmax(1) == positions).all()
    assert (tokens[torch.arange(500), positions] - task.noise_vocab == labels).all()
    assert positions.min() >= 1 and positions.max() <= 63
    assert set(labels.tolist()) == set(range(10))
    assert task.vocab_size == 19


def test_retrieval_splits_are_fixed_and_disjoint():
    task = RetrievalTask()
    val = retrieval_split(task, 256, 1024, "val")
    test = retrieval_split(task, 256, 1024, "test")
    assert torch.equal(test[0], retrieval_split(task, 256, 1024, "test")[0])
    train = torch.cat([b[0] for b in retrieval_batches(task, 16, [(1024, 16)])])
    seen = {tuple(t.tolist()) for t in train} | {tuple(t.tolist()) for t in val[0]}
    assert not any(tuple(t.tolist()) in seen for t in test[0])
    with pytest.raises(ValueError, match="split must be 'val' or 'test'"):
        retrieval_split(task, 4, 16, "train")


def test_retrieval_batches_follow_the_schedule():
    lengths = [b[0].shape[1] for b in retrieval_batches(RetrievalTask(), 4, [(16, 3), (32, 2)])]
    assert lengths == [16, 16, 16, 32, 32]
    with pytest.raises(ValueError, match="at least one"):
        list(retrieval_batches(RetrievalTask(), 4, []))
    with pytest.raises(ValueError, match="num_values must be at least 2"):
        RetrievalTask(num_values=1)


def test_accuracy_by_distance_bins():
    correct = torch.tensor([True, False, True, True])
    positions = torch.tensor([1, 2, 10, 11])
    assert accuracy_by_distance(correct, positions, [1, 5, 20]) == [(1, 5, 0.5), (5, 20, 1.0)]


def test_run_retrieval_trains_and_reports():
    recipe = RetrievalRecipe(schedule=((32, 40),), eval_n=32, test_size=64, batch_size=8)
    result = run_retrieval("local", {"window": 4}, recipe, progress=False)
    assert 0.0 <= result.test_accuracy <= 1.0
    assert result.train_seconds > 0 and result.step_seconds > 0
    assert result.parameters > 0 and result.history[-1]["step"] == 40
    assert [(lo, hi) for lo, hi, _ in result.accuracy_by_distance] == [(1, 32)]
    model = LongRangeClassifier(19, 10, "full", max_len=8)
    preds = predict(model, torch.randint(0, 19, (10, 8)), batch_size=3)
    assert preds.shape == (10,) and model.training

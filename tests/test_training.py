"""Tests of attnkit.training: seeds, the AdamW parameter groups, the warm-up schedules and
the train() loop (convergence, clipping, determinism, time budget, evaluation, errors).

Expected values come from the formulas written out here or from closed-form solutions
(linear regression, Adam's first step), never from attnkit itself.
"""

import itertools
import math
import random
import time

import matplotlib

matplotlib.use("Agg")  # before pyplot is imported anywhere: no display in tests

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from attnkit.training import (
    PROGRESS_LINES,
    TrainConfig,
    TrainingTimeout,
    TrainResult,
    count_parameters,
    make_optimizer,
    sample_batches,
    seed_everything,
    train,
    warmup_schedule,
)


def quiet(**kwargs):
    """A TrainConfig without progress bar and without warm-up unless asked."""
    kwargs.setdefault("progress", False)
    kwargs.setdefault("warmup_steps", 0)
    return TrainConfig(**kwargs)


def mse(model, batch):
    x, y = batch
    return nn.functional.mse_loss(model(x), y)


def without_time(history):
    """History entries without the wall-clock field, which differs between runs."""
    return [{k: v for k, v in entry.items() if k != "elapsed_s"} for entry in history]


class Scalar(nn.Module):
    """A single float64 weight of shape (1, 1) (a matrix, so in the decayed group)."""

    def __init__(self, value=0.0):
        super().__init__()
        self.w = nn.Parameter(torch.full((1, 1), value, dtype=torch.float64))


# -------------------------------------------------------------------- seed_everything


def test_seed_everything_seeds_all_generators():
    gen = seed_everything(7)
    assert isinstance(gen, torch.Generator)
    assert gen.initial_seed() == 7
    first = (random.random(), np.random.rand(), torch.rand(3), torch.rand(3, generator=gen))
    gen = seed_everything(7)
    second = (random.random(), np.random.rand(), torch.rand(3), torch.rand(3, generator=gen))
    assert first[:2] == second[:2]
    assert torch.equal(first[2], second[2]) and torch.equal(first[3], second[3])
    seed_everything(8)
    assert random.random() != first[0]


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, "0", True])
def test_seed_everything_rejects_bad_seeds(seed):
    with pytest.raises(ValueError, match="seed"):
        seed_everything(seed)


# ------------------------------------------------------------------- count_parameters


def test_count_parameters():
    lin = nn.Linear(3, 2)  # 6 weights + 2 biases
    assert count_parameters(lin) == 8
    lin.bias.requires_grad_(False)
    assert count_parameters(lin) == 6
    assert count_parameters(lin, trainable_only=False) == 8
    assert count_parameters(nn.Sequential(lin, lin)) == 6  # shared parameters count once
    assert count_parameters(nn.ReLU()) == 0
    with pytest.raises(TypeError, match="model"):
        count_parameters(torch.zeros(3))


# ------------------------------------------------------------------ make_optimizer


class Mixed(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.lin1 = nn.Linear(4, 4)
        self.norm = nn.LayerNorm(4)
        self.lin2 = nn.Linear(4, 2)
        self.gain = nn.Parameter(torch.ones(()))  # 0-d
        self.frozen = nn.Parameter(torch.ones(3, 3), requires_grad=False)

    def forward(self, idx):
        h = self.norm(self.lin1(self.emb(idx)))
        return self.gain * self.lin2(h) + self.frozen.sum()


def test_make_optimizer_decays_only_matrices():
    model = Mixed()
    opt = make_optimizer(model, lr=0.01, weight_decay=0.1)
    assert isinstance(opt, torch.optim.AdamW)
    by_decay = {g["weight_decay"]: {id(p) for p in g["params"]} for g in opt.param_groups}
    assert set(by_decay) == {0.1, 0.0}
    matrices = [model.emb.weight, model.lin1.weight, model.lin2.weight]
    others = [model.lin1.bias, model.norm.weight, model.norm.bias, model.lin2.bias, model.gain]
    assert by_decay[0.1] == {id(p) for p in matrices}
    assert by_decay[0.0] == {id(p) for p in others}
    assert all(g["lr"] == 0.01 for g in opt.param_groups)
    # only one group when there is nothing to split
    assert len(make_optimizer(nn.Linear(2, 2, bias=False), 0.1, 0.1).param_groups) == 1


def test_train_decays_matrices_but_not_vectors():
    """With a zero gradient AdamW's only change is the decay: w <- w * (1 - lr * wd)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}

    def zero_grad_loss(model, batch):
        return sum((p * 0.0).sum() for p in model.parameters())

    lr, wd, steps = 0.1, 0.5, 3
    config = quiet(steps=steps, lr=lr, weight_decay=wd, schedule="constant")
    train(model, zero_grad_loss, [None], config)
    after = dict(model.named_parameters())
    expected = before["0.weight"] * (1 - lr * wd) ** steps
    torch.testing.assert_close(after["0.weight"].detach(), expected, rtol=1e-6, atol=0)
    for name in ("0.bias", "1.weight", "1.bias"):  # 1-D: untouched, bit for bit
        assert torch.equal(after[name].detach(), before[name]), name


def test_make_optimizer_errors():
    frozen = nn.Linear(2, 2).requires_grad_(False)
    for model in (frozen, nn.ReLU()):
        with pytest.raises(ValueError, match="no trainable parameters"):
            make_optimizer(model, 0.1, 0.0)
    with pytest.raises(ValueError, match="lr"):
        make_optimizer(nn.Linear(2, 2), 0.0, 0.0)
    with pytest.raises(ValueError, match="weight_decay"):
        make_optimizer(nn.Linear(2, 2), 0.1, -1.0)


# ------------------------------------------------------------------- warmup_schedule


def scheduled_lrs(n_steps, *args, base_lr=2.0, **kwargs):
    """The learning rate used by updates 0, 1, ..., n_steps of a real optimizer."""
    param = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=base_lr)
    sched = warmup_schedule(opt, *args, **kwargs)
    lrs = []
    for _ in range(n_steps + 1):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()  # no gradient: a no-op, but keeps the scheduler's call order right
        sched.step()
    return lrs


def test_cosine_schedule_values():
    # warm-up 10, total 110, base 2, floor 10 %: midpoint of the decay is step 60
    lrs = scheduled_lrs(120, 10, 110, kind="cosine", min_lr_ratio=0.1)
    assert lrs[0] == 0.0
    assert lrs[5] == pytest.approx(2.0 * 5 / 10)
    assert lrs[10] == pytest.approx(2.0)
    assert lrs[35] == pytest.approx(2.0 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4))))
    assert lrs[60] == pytest.approx(2.0 * (0.1 + 0.9 * 0.5))
    assert lrs[110] == pytest.approx(2.0 * 0.1)
    assert lrs[120] == pytest.approx(2.0 * 0.1)  # stays at the floor after total_steps
    decay = lrs[10:111]
    assert all(a >= b for a, b in itertools.pairwise(decay))


def test_cosine_schedule_without_warmup_starts_at_base_lr():
    lrs = scheduled_lrs(100, 0, 100)
    assert lrs[0] == pytest.approx(2.0)
    assert lrs[50] == pytest.approx(1.0)
    assert lrs[100] == pytest.approx(0.0, abs=1e-12)


def test_constant_schedule_values():
    lrs = scheduled_lrs(50, 8, 40, kind="constant")
    assert lrs[0] == 0.0
    assert lrs[2] == pytest.approx(2.0 * 2 / 8)
    assert lrs[8] == lrs[24] == lrs[40] == lrs[50] == pytest.approx(2.0)


def test_inverse_sqrt_schedule_matches_vaswani_eq3():
    warmup = 16
    lrs = scheduled_lrs(400, warmup, 400, kind="inverse_sqrt")
    for step in (0, 1, 8, 16, 64, 208, 400):
        # lr * min(step / warmup, sqrt(warmup / step)), the step = 0 case is 0
        expected = 0.0 if step == 0 else 2.0 * min(step / warmup, math.sqrt(warmup / step))
        assert lrs[step] == pytest.approx(expected), step
    assert lrs[64] == pytest.approx(1.0)  # sqrt(16 / 64) = 1/2 of the base lr 2


def test_schedule_scales_every_group():
    opt = make_optimizer(nn.Linear(2, 2), lr=0.5, weight_decay=0.1)  # two groups
    sched = warmup_schedule(opt, 4, 10)
    opt.step()
    sched.step()
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.5 / 4, 0.5 / 4])


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((5, 10), {"kind": "linear"}, "kind"),
        ((11, 10), {}, "warmup_steps"),
        ((-1, 10), {}, "warmup_steps"),
        ((0, 0), {}, "total_steps"),
        ((0, 10), {"kind": "inverse_sqrt"}, "warmup_steps >= 1"),
        ((2, 10), {"min_lr_ratio": 1.5}, "min_lr_ratio"),
        ((2, 10), {"min_lr_ratio": -0.1}, "min_lr_ratio"),
        ((2, 10), {"kind": "constant", "min_lr_ratio": 0.1}, "min_lr_ratio"),
    ],
)
def test_warmup_schedule_errors(args, kwargs, match):
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match=match):
        warmup_schedule(opt, *args, **kwargs)


def test_warmup_schedule_needs_an_optimizer():
    with pytest.raises(TypeError, match="optimizer"):
        warmup_schedule([nn.Parameter(torch.zeros(1))], 1, 10)


# ----------------------------------------------------------------------- TrainConfig


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": 0}, "steps"),
        ({"steps": -5}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"steps": 10, "lr": 0.0}, "lr"),
        ({"steps": 10, "lr": math.nan}, "lr"),
        ({"steps": 10, "weight_decay": -0.1}, "weight_decay"),
        ({"steps": 10, "warmup_steps": 11}, "warmup_steps"),
        ({"steps": 10, "schedule": "linear"}, "schedule"),
        ({"steps": 10, "grad_clip": 0.0}, "grad_clip"),
        ({"steps": 10, "eval_every": 0}, "eval_every"),
        ({"steps": 10, "seed": -1}, "seed"),
        ({"steps": 10, "progress": "yes"}, "progress"),
        ({"steps": 10, "max_seconds": -1.0}, "max_seconds"),
    ],
)
def test_train_config_rejects_bad_values(kwargs, match):
    kwargs.setdefault("warmup_steps", 0)
    with pytest.raises((ValueError, TypeError), match=match):
        TrainConfig(**kwargs)


def test_train_config_default_warmup_needs_enough_steps():
    assert TrainConfig(steps=100).warmup_steps == 100
    with pytest.raises(ValueError, match="warmup_steps"):
        TrainConfig(steps=50)


# ---------------------------------------------------------------------- train: learning


def test_train_fits_linear_regression():
    """Noise-free data y = X w* + b*: the least-squares solution is (w*, b*) exactly."""
    gen = seed_everything(0)
    w_true, b_true = torch.tensor([[2.0, -1.0, 0.5]]), 0.3
    x = torch.randn(64, 3, generator=gen)
    y = x @ w_true.T + b_true
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)]  # cycled
    model = nn.Linear(3, 1)
    config = quiet(steps=600, lr=0.05, weight_decay=0.0, warmup_steps=20, eval_every=100)
    result = train(model, mse, batches, config)
    torch.testing.assert_close(model.weight.detach(), w_true, atol=1e-2, rtol=0)
    assert model.bias.item() == pytest.approx(b_true, abs=1e-2)
    steps, losses = result.losses()
    assert steps == [100, 200, 300, 400, 500, 600]
    assert losses[-1] < 1e-4 < losses[0]
    assert result.steps_done == 600


def test_train_history_fields():
    data = [(torch.ones(4, 2), torch.zeros(4, 1))]
    config = quiet(steps=10, lr=0.1, warmup_steps=10, eval_every=5, schedule="constant")
    result = train(nn.Linear(2, 1), mse, data, config)
    assert isinstance(result, TrainResult)
    assert [list(h) for h in result.history] == [
        ["step", "train_loss", "lr", "grad_norm", "elapsed_s"]
    ] * 2
    # lr of each entry's last update: updates 5 and 10 come after 4 and 9 updates
    assert [h["lr"] for h in result.history] == pytest.approx([0.1 * 4 / 10, 0.1 * 9 / 10])
    assert 0 < result.history[0]["elapsed_s"] <= result.history[1]["elapsed_s"] <= result.seconds


def test_train_loss_is_the_mean_since_the_last_log():
    values = iter(range(1, 100))

    def counting_loss(model, batch):  # loss k at step k; zero gradient
        return (model.weight * 0.0).sum() + float(next(values))

    config = quiet(steps=7, eval_every=3)
    result = train(nn.Linear(1, 1), counting_loss, [None], config)
    assert result.losses() == ([3, 6, 7], [2.0, 5.0, 7.0])


def recording_loss(seen):
    def loss_fn(model, batch):
        seen.append(int(batch))
        return (model.weight * 0.0).sum() + batch

    return loss_fn


@pytest.mark.parametrize("kind", ["list", "dataloader"])
def test_reiterable_batches_are_cycled(kind):
    items = [torch.tensor(float(i)) for i in range(3)]
    source = items if kind == "list" else DataLoader(torch.arange(3.0), batch_size=None)
    seen = []
    train(nn.Linear(1, 1), recording_loss(seen), source, quiet(steps=7))
    assert seen == [0, 1, 2, 0, 1, 2, 0]


def test_endless_generator_is_consumed_without_restarting():
    seen = []
    train(nn.Linear(1, 1), recording_loss(seen), itertools.count(), quiet(steps=5))
    assert seen == [0, 1, 2, 3, 4]


def test_exhausted_one_shot_iterator_raises():
    """A generator cannot be restarted; replaying it would mean keeping every batch."""
    seen = []
    batches = (torch.tensor(float(i)) for i in range(3))
    with pytest.raises(ValueError, match=r"one-shot iterator .* ran out after 3 batches"):
        train(nn.Linear(1, 1), recording_loss(seen), batches, quiet(steps=7))
    assert seen == [0, 1, 2]


# ---------------------------------------------------------------------- train: clipping


def test_clipping_bounds_the_gradient_and_the_update():
    """A loss scaled by 1e6 has gradients of norm ~1e6; grad_clip=1e-3 rescales them to norm
    1e-3 before AdamW. AdamW's first update (m = (1-b1) g, v = (1-b2) g^2, bias-corrected to
    g and g^2, no weight decay) is  delta = -lr * g / (|g| + eps)  per coordinate, so
    |delta| < lr, whereas an SGD step on the raw gradient would move by ~lr * 1e6."""
    gen = seed_everything(0)
    x = torch.randn(8, 4, generator=gen)
    model = nn.Linear(4, 1)
    before = [p.detach().clone() for p in model.parameters()]

    def huge_loss(model, batch):
        return 1e6 * model(x).pow(2).mean()

    lr, clip = 0.1, 1e-3
    config = quiet(steps=1, lr=lr, weight_decay=0.0, grad_clip=clip)
    result = train(model, huge_loss, [None], config)
    assert result.history[0]["grad_norm"] > 1e3  # the recorded norm is the one before clipping
    grads = [p.grad for p in model.parameters()]  # left by the last step: clipped
    assert torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])) <= clip * (1 + 1e-5)
    for p, p0, g in zip(model.parameters(), before, grads):
        delta = p.detach() - p0
        assert delta.abs().max() <= lr * (1 + 1e-6)
        torch.testing.assert_close(delta, -lr * g / (g.abs() + 1e-8), rtol=1e-4, atol=1e-7)


def test_clipped_gradient_is_what_adamw_sees():
    """Clip a gradient of 1e6 down to 1e-8 = Adam's eps: the first update becomes
    lr * 1e-8 / (1e-8 + 1e-8) = lr / 2. Without clipping it would be lr * 1e6/(1e6 + eps) ~ lr."""
    model = Scalar()
    lr = 0.1

    def linear_loss(model, batch):
        return 1e6 * model.w.sum()

    config = quiet(steps=1, lr=lr, weight_decay=0.0, grad_clip=1e-8)
    train(model, linear_loss, [None], config)
    assert model.w.item() == pytest.approx(-lr / 2, rel=1e-6)
    config = quiet(steps=1, lr=lr, weight_decay=0.0, grad_clip=None)
    train(model := Scalar(), linear_loss, [None], config)
    assert model.w.item() == pytest.approx(-lr, rel=1e-6)


# -------------------------------------------------------------------- train: determinism


def determinism_run(seed, config_seed=0):
    gen = seed_everything(seed)
    model = nn.Sequential(
        nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.2), nn.LayerNorm(16), nn.Linear(16, 1)
    )
    x = torch.randn(64, 4, generator=gen)
    y = x.sum(dim=1, keepdim=True).sin()
    loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True, generator=gen)

    def evaluate(model):
        return {"val_loss": mse(model, (x, y)).item()}

    config = quiet(steps=30, lr=1e-2, warmup_steps=5, eval_every=10, seed=config_seed)
    result = train(model, mse, loader, config, evaluate=evaluate)
    return result, [p.detach().clone() for p in model.parameters()]


def test_train_is_bit_identical_across_runs():
    (first, params1), (second, params2) = determinism_run(0), determinism_run(0)
    assert without_time(first.history) == without_time(second.history)  # ==, not allclose
    assert all(torch.equal(a, b) for a, b in zip(params1, params2))
    # the comparison can fail: another config seed changes the dropout masks
    other, _ = determinism_run(0, config_seed=1)
    assert other.losses()[1] != first.losses()[1]


# ---------------------------------------------------------- train: evaluation and modes


@pytest.mark.parametrize(
    ("steps", "eval_every", "expected"),
    [(25, 10, [10, 20, 25]), (20, 10, [10, 20]), (5, 10, [5]), (3, 1, [1, 2, 3])],
)
def test_evaluate_called_every_eval_every_steps_and_at_the_end(steps, eval_every, expected):
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    calls, done = [], []

    def loss_fn(model, batch):
        assert model.training and torch.is_grad_enabled()
        done.append(len(done) + 1)
        return model(torch.ones(1, 2)).sum()

    def evaluate(model):
        assert not model.training and not model[1].training
        assert not torch.is_grad_enabled()
        calls.append(len(done))
        return {"val_loss": 1.0, "accuracy": torch.tensor(0.5)}

    config = quiet(steps=steps, eval_every=eval_every)
    result = train(model, loss_fn, [None], config, evaluate=evaluate)
    assert calls == expected
    assert [h["step"] for h in result.history] == expected
    assert all(h["val_loss"] == 1.0 and h["accuracy"] == 0.5 for h in result.history)


def test_train_steps_in_train_mode_and_restores_module_modes():
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    model.eval()

    def loss_fn(model, batch):
        assert model.training and model[1].training
        return model(torch.ones(1, 2)).sum()

    train(model, loss_fn, [None], quiet(steps=2))
    assert not model.training and not model[1].training


def test_evaluate_must_return_numbers():
    loss = lambda m, b: m.weight.sum()  # noqa: E731
    for bad in (0.5, None):
        with pytest.raises(TypeError, match="dict"):
            train(nn.Linear(1, 1), loss, [None], quiet(steps=1), evaluate=lambda m, v=bad: v)
    with pytest.raises(TypeError, match="'val_loss'"):
        train(nn.Linear(1, 1), loss, [None], quiet(steps=1), evaluate=lambda m: {"val_loss": "x"})
    with pytest.raises(ValueError, match="'lr'"):
        train(nn.Linear(1, 1), loss, [None], quiet(steps=1), evaluate=lambda m: {"lr": 1.0})


# ----------------------------------------------------------------- train: time budget


def test_max_seconds_is_a_guard_that_raises_never_a_shorter_run():
    def slow_loss(model, batch):
        time.sleep(0.01)
        return model.weight.pow(2).sum()

    config = quiet(steps=200, eval_every=100, max_seconds=0.15)  # 2 s if ignored
    pattern = r"max_seconds=0.15 guard after \d+ of 200 steps"
    with pytest.raises(TrainingTimeout, match=pattern) as info:
        train(nn.Linear(2, 1), slow_loss, [None], config)
    err = info.value  # it fired before the last step, after at least 0.15 s of sleeps
    assert 1 <= err.steps_done < 200 and err.steps == 200 and err.seconds > 0.15
    assert isinstance(err, RuntimeError)


def test_no_timeout_within_the_guard():
    result = train(
        nn.Linear(2, 1), lambda m, b: m.weight.pow(2).sum(), [None], quiet(steps=5, max_seconds=60)
    )
    assert result.steps_done == 5 and not hasattr(result, "stopped_early")


# ------------------------------------------------------------------------ train: errors


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_loss_raises_with_the_step(bad):
    model = nn.Linear(2, 1)
    snapshot = {}

    def loss_fn(model, batch):
        snapshot["step"] = snapshot.get("step", 0) + 1
        loss = model(torch.ones(1, 2)).pow(2).sum()
        if snapshot["step"] == 3:
            snapshot["params"] = [p.detach().clone() for p in model.parameters()]
            return loss * bad
        return loss

    with pytest.raises(FloatingPointError, match=f"the loss is {bad} at step 3"):
        train(model, loss_fn, [None], quiet(steps=10, lr=0.1))
    # the parameters are those of step 2: the bad step made no update
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), snapshot["params"]))


def test_non_finite_gradient_raises_with_the_step():
    def sqrt_loss(model, batch):  # sqrt(0) = 0 but its derivative is infinite
        return model.w.sqrt().sum()

    with pytest.raises(FloatingPointError, match="gradient norm is inf at step 1"):
        train(Scalar(), sqrt_loss, [None], quiet(steps=3))


@pytest.mark.parametrize(
    ("loss_fn", "error", "match"),
    [
        (lambda m, b: 1.0, TypeError, "scalar torch.Tensor"),
        (lambda m, b: m(torch.ones(3, 2)), ValueError, r"scalar \(0-d\)"),
        (lambda m, b: m(torch.ones(1, 2)).sum().detach(), ValueError, "require grad"),
        (lambda m, b: m(torch.ones(1, 2)).sum().long(), ValueError, "floating-point"),
    ],
)
def test_loss_fn_must_return_a_scalar_tensor(loss_fn, error, match):
    with pytest.raises(error, match=match):
        train(nn.Linear(2, 1), loss_fn, [None], quiet(steps=2))


def test_train_argument_errors():
    loss = lambda m, b: m.weight.sum()  # noqa: E731
    with pytest.raises(ValueError, match="no trainable parameters"):
        train(nn.Linear(1, 1).requires_grad_(False), loss, [None], quiet(steps=1))
    with pytest.raises(ValueError, match="no batch"):
        train(nn.Linear(1, 1), loss, [], quiet(steps=1))
    with pytest.raises(ValueError, match="no batch"):
        train(nn.Linear(1, 1), loss, iter([]), quiet(steps=1))
    with pytest.raises(TypeError, match="config"):
        train(nn.Linear(1, 1), loss, [None], {"steps": 1})
    with pytest.raises(TypeError, match="batches"):
        train(nn.Linear(1, 1), loss, 3, quiet(steps=1))
    with pytest.raises(TypeError, match="loss_fn"):
        train(nn.Linear(1, 1), None, [None], quiet(steps=1))
    with pytest.raises(TypeError, match="model"):
        train(lambda x: x, loss, [None], quiet(steps=1))


# ------------------------------------------------------------------- progress and plot


def test_progress_bar_is_text_on_stderr(capsys):
    loss = lambda m, b: m.weight.pow(2).sum()  # noqa: E731
    train(nn.Linear(1, 1), loss, [None], quiet(steps=3, progress=True))
    out, err = capsys.readouterr()
    assert out == ""
    assert "train" in err and "3/3" in err and "loss=" in err
    train(nn.Linear(1, 1), loss, [None], quiet(steps=3, progress=False))
    assert capsys.readouterr() == ("", "")


def test_progress_bar_off_a_terminal_is_redrawn_about_ten_times(capsys):
    # capsys's stderr is not a terminal, like a notebook's or the book build's: a bar
    # redrawn every step would leave hundreds of lines in the rendered page.
    loss = lambda m, b: m.weight.pow(2).sum()  # noqa: E731
    train(nn.Linear(1, 1), loss, [None], quiet(steps=500, progress=True))
    _, err = capsys.readouterr()
    draws = [s for s in err.replace("\n", "\r").split("\r") if "/500" in s]
    assert PROGRESS_LINES <= len(draws) <= PROGRESS_LINES + 3, f"{len(draws)} redraws"
    assert "500/500" in draws[-1]


def test_plot_draws_labelled_loss_curves():
    data = [(torch.ones(4, 2), torch.zeros(4, 1))]
    config = quiet(steps=20, lr=0.05, eval_every=5)
    result = train(nn.Linear(2, 1), mse, data, config, evaluate=lambda m: {"val_loss": 0.25})
    ax = result.plot()
    try:
        assert isinstance(ax, matplotlib.axes.Axes)
        assert ax.get_xlabel() == "step" and ax.get_ylabel() == "loss"
        assert ax.get_title()
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train_loss", "val_loss"]
        train_line, val_line = ax.get_lines()
        steps, losses = result.losses()
        assert list(train_line.get_xdata()) == steps == [5, 10, 15, 20]
        assert list(train_line.get_ydata()) == losses
        assert list(val_line.get_ydata()) == [0.25] * 4
    finally:
        plt.close(ax.figure)


def test_plot_on_given_axes_and_missing_metrics():
    result = train(nn.Linear(1, 1), lambda m, b: m.weight.pow(2).sum(), [None], quiet(steps=4))
    fig, ax = plt.subplots()
    try:
        assert result.plot(ax=ax) is ax
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train_loss"]
        with pytest.raises(ValueError, match="none of metrics"):
            result.plot(ax=ax, metrics=("val_loss",))
    finally:
        plt.close(fig)


def test_sample_batches_draws_rows_with_replacement_reproducibly():
    data = {"x": torch.arange(10), "y": torch.arange(10) * 2}
    first = list(itertools.islice(sample_batches(data, 4, seed=7), 3))
    again = list(itertools.islice(sample_batches(data, 4, seed=7), 3))
    gen = torch.Generator().manual_seed(7)
    for a, b in zip(first, again, strict=True):
        idx = torch.randint(10, (4,), generator=gen)  # the documented draw
        assert torch.equal(a["x"], idx) and torch.equal(a["y"], 2 * idx)
        assert torch.equal(a["x"], b["x"])
    other = next(sample_batches(data, 4, seed=8))
    assert not torch.equal(other["x"], first[0]["x"])


@pytest.mark.parametrize(
    ("data", "batch_size", "error", "match"),
    [
        ({}, 2, TypeError, "non-empty mapping"),
        ({"x": torch.tensor(1.0)}, 2, TypeError, r"data\['x'\]"),
        ({"x": torch.zeros(3), "y": torch.zeros(4)}, 2, ValueError, "same number of rows"),
        ({"x": torch.zeros(0)}, 2, ValueError, "no rows"),
        ({"x": torch.zeros(3)}, 0, ValueError, "batch_size"),
    ],
)
def test_sample_batches_errors(data, batch_size, error, match):
    with pytest.raises(error, match=match):
        sample_batches(data, batch_size)

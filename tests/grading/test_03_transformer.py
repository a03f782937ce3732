"""Grader for chapter 3's exercises (the Transformer's pieces).

References: torch.nn.functional.layer_norm / cross_entropy, torch.nn layers, explicit
loops, and attnkit's causal and padding masks.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

import attnkit as ak
from attnkit.grading import require

CHAPTER = "03"
ex = pytest.mark.exercise


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------ layer_norm
@ex("layer_norm")
@pytest.mark.parametrize("shape", [(4,), (3, 8), (2, 5, 16)])
def test_layer_norm_matches_torch(learner, shape):
    g = _gen(len(shape))
    x = torch.randn(*shape, generator=g, dtype=torch.float64) * 3 + 1
    w = torch.randn(shape[-1], generator=g, dtype=torch.float64)
    b = torch.randn(shape[-1], generator=g, dtype=torch.float64)
    got = require(learner, "layer_norm")(x, w, b)
    assert_close(got, F.layer_norm(x, (shape[-1],), w, b, eps=1e-5))


@ex("layer_norm")
def test_layer_norm_eps_matters_for_constant_rows(learner):
    x = torch.full((2, 6), 3.0, dtype=torch.float64)  # zero variance: eps keeps it finite
    w, b = torch.ones(6, dtype=torch.float64), torch.zeros(6, dtype=torch.float64)
    got = require(learner, "layer_norm")(x, w, b, eps=0.1)
    assert torch.isfinite(got).all(), "a constant row must stay finite (add eps inside the sqrt)"
    assert_close(got, F.layer_norm(x, (6,), w, b, eps=0.1))


@ex("layer_norm")
def test_layer_norm_uses_the_given_eps(learner):
    # rows with a variance comparable to eps: eps=0.1 visibly changes the result
    x = torch.randn(3, 6, generator=_gen(8), dtype=torch.float64) * 0.3
    w, b = torch.ones(6, dtype=torch.float64), torch.zeros(6, dtype=torch.float64)
    got = require(learner, "layer_norm")(x, w, b, eps=0.1)
    assert_close(got, F.layer_norm(x, (6,), w, b, eps=0.1), msg="use the eps you are given")


# ---------------------------------------------------------------------- feed_forward
@ex("feed_forward")
@pytest.mark.parametrize("lead", [(5,), (2, 3), ()])
def test_feed_forward_matches_torch_layers(learner, lead):
    torch.manual_seed(len(lead))
    lin1, lin2 = torch.nn.Linear(6, 12).double(), torch.nn.Linear(12, 6).double()
    x = torch.randn(*lead, 6, dtype=torch.float64)
    got = require(learner, "feed_forward")(x, lin1.weight, lin1.bias, lin2.weight, lin2.bias)
    assert_close(got, lin2(torch.relu(lin1(x))))


# -------------------------------------------------------------------------- residual
@ex("residual")
@pytest.mark.parametrize("norm_first", [False, True])
def test_residual_both_orders(learner, norm_first):
    torch.manual_seed(3)
    lin, ln = torch.nn.Linear(8, 8).double(), torch.nn.LayerNorm(8).double()
    with torch.no_grad():
        ln.weight.uniform_(0.5, 1.5)
        ln.bias.uniform_(-0.5, 0.5)
    x = torch.randn(2, 4, 8, dtype=torch.float64)
    got = require(learner, "residual")(x, lin, ln, norm_first=norm_first)
    want = x + lin(ln(x)) if norm_first else ln(x + lin(x))
    assert_close(got, want, msg=f"norm_first={norm_first} computes the wrong order")


@ex("residual")
def test_residual_matches_torch_encoder_layer_ffn_block(learner):
    """Post-LN FFN sublayer of torch's encoder layer: norm2(x + ff(x)) (dropout off)."""
    torch.manual_seed(4)
    layer = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True).double()
    x = torch.randn(1, 3, 8, dtype=torch.float64)

    def ff(h):
        return layer.linear2(torch.relu(layer.linear1(h)))

    got = require(learner, "residual")(x, ff, layer.norm2, norm_first=False)
    assert_close(got, layer.norm2(x + ff(x)))


# ------------------------------------------------------------------ decoder_self_mask
@ex("decoder_self_mask")
@pytest.mark.parametrize("lengths,n_new", [([4, 2], 4), ([5, 3, 1], 1), ([6, 6], 3), ([1], 1)])
def test_decoder_self_mask(learner, lengths, n_new):
    lengths = torch.tensor(lengths)
    real = ak.padding_mask(lengths)  # (B, T_k)
    got = require(learner, "decoder_self_mask")(real, n_new)
    t_k = real.shape[1]
    want = ak.causal_mask(n_new, t_k)[None] & real[:, None, :]
    assert got.shape == want.shape, f"expected shape {tuple(want.shape)}, got {tuple(got.shape)}"
    assert got.dtype == torch.bool, f"the mask must be bool, got {got.dtype}"
    assert torch.equal(got, want)


# ------------------------------------------------------------------------ greedy_step
@ex("greedy_step")
def test_greedy_step_argmax_and_padding(learner):
    logits = torch.randn(6, 9, generator=_gen(5))
    finished = torch.tensor([False, True, False, False, True, False])
    eos = int(logits[0].argmax())  # row 0 emits EOS now
    tokens, done = require(learner, "greedy_step")(logits, finished, eos_id=eos, pad_id=99)
    want = torch.where(finished, torch.tensor(99), logits.argmax(-1))
    assert torch.equal(tokens, want), "finished rows emit pad_id, the others their argmax"
    assert torch.equal(done, finished | (want == eos)), "a row finishes when it emits eos_id"


@ex("greedy_step")
def test_greedy_step_does_not_modify_its_input(learner):
    finished = torch.tensor([False, False])
    logits = torch.tensor([[0.0, 5.0], [5.0, 0.0]])
    _, done = require(learner, "greedy_step")(logits, finished, eos_id=1, pad_id=0)
    assert torch.equal(finished, torch.tensor([False, False])), "do not change `finished` in place"
    assert torch.equal(done, torch.tensor([True, False]))


# -------------------------------------------------------------- smoothed_cross_entropy
@ex("smoothed_cross_entropy")
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_smoothed_ce_matches_torch(learner, smoothing):
    g = _gen(int(smoothing * 10))
    logits = torch.randn(12, 7, generator=g, dtype=torch.float64)
    target = torch.randint(0, 7, (12,), generator=g)
    target[[2, 5]] = 0
    got = require(learner, "smoothed_cross_entropy")(logits, target, smoothing, ignore_index=0)
    want = F.cross_entropy(logits, target, label_smoothing=smoothing, ignore_index=0)
    assert_close(torch.as_tensor(got, dtype=torch.float64), want)


@ex("smoothed_cross_entropy")
def test_smoothed_ce_is_a_tensor_that_trains(learner):
    logits = torch.randn(6, 5, generator=_gen(9), dtype=torch.float64, requires_grad=True)
    target = torch.tensor([1, 0, 3, 2, 0, 4])
    got = require(learner, "smoothed_cross_entropy")(logits, target, 0.1, ignore_index=0)
    assert isinstance(got, torch.Tensor) and got.dim() == 0, (
        f"return the loss as a 0-d tensor (not {type(got).__name__}), so that it can be trained"
    )
    (grad,) = torch.autograd.grad(got, logits)
    want = F.cross_entropy(logits, target, label_smoothing=0.1, ignore_index=0)
    assert_close(grad, torch.autograd.grad(want, logits)[0])


@ex("smoothed_cross_entropy")
def test_smoothed_ce_other_ignore_index(learner):
    logits = torch.randn(8, 5, generator=_gen(7), dtype=torch.float64)
    target = torch.tensor([4, 4, 1, 0, 2, 4, 3, 0])
    got = require(learner, "smoothed_cross_entropy")(logits, target, 0.1, ignore_index=4)
    want = F.cross_entropy(logits, target, label_smoothing=0.1, ignore_index=4)
    assert_close(torch.as_tensor(got, dtype=torch.float64), want)

"""Tests of the additive (Bahdanau) and multiplicative (Luong) scoring rules and modules,
against scores computed pair by pair with explicit Python loops in float64.
"""

import math

import pytest
import torch

from attnkit import (
    AdditiveAttention,
    MultiplicativeAttention,
    additive_scores,
    causal_mask,
    multiplicative_scores,
    padding_mask,
    to_additive_mask,
)

TOL = {"rtol": 1e-12, "atol": 1e-12}


def randn(gen, *shape):
    return torch.randn(*shape, generator=gen, dtype=torch.float64)


def loop_additive(q, k, w_q, w_k, w):
    """scores[..., i, j] = w . tanh(W_q q_i + W_k k_j), one pair at a time (q, k: (B, n, d))."""
    out = torch.empty(q.shape[0], q.shape[1], k.shape[1], dtype=torch.float64)
    for b in range(q.shape[0]):
        for i in range(q.shape[1]):
            for j in range(k.shape[1]):
                hidden = [
                    math.tanh(float(w_q[h] @ q[b, i] + w_k[h] @ k[b, j])) for h in range(w.shape[0])
                ]
                out[b, i, j] = sum(float(w[h]) * hidden[h] for h in range(w.shape[0]))
    return out


def loop_multiplicative(q, k, w=None):
    """scores[..., i, j] = q_i^T W k_j (or q_i . k_j without W), one pair at a time."""
    out = torch.empty(q.shape[0], q.shape[1], k.shape[1], dtype=torch.float64)
    for b in range(q.shape[0]):
        for i in range(q.shape[1]):
            for j in range(k.shape[1]):
                if w is None:
                    out[b, i, j] = sum(float(q[b, i, c] * k[b, j, c]) for c in range(q.shape[2]))
                else:
                    out[b, i, j] = sum(
                        float(q[b, i, r] * w[r, c] * k[b, j, c])
                        for r in range(q.shape[2])
                        for c in range(k.shape[2])
                    )
    return out


def softmax_weighted_sum(scores, v, keep=None):
    """exp(s_ij) / sum_l exp(s_il) over the kept keys, times v; rows with nothing kept -> 0."""
    scores = scores.detach()
    keep = torch.ones_like(scores, dtype=torch.bool) if keep is None else keep.expand_as(scores)
    e = torch.where(keep, torch.exp(scores - scores.amax(-1, keepdim=True)), 0.0)
    total = e.sum(-1, keepdim=True)
    weights = torch.where(total > 0, e / total.clamp_min(1e-300), 0.0)
    return weights @ v.detach(), weights


# ------------------------------------------------------------------ functional scores


def test_additive_scores_match_loop():
    gen = torch.Generator().manual_seed(0)
    q, k = randn(gen, 2, 3, 4), randn(gen, 2, 5, 6)
    w_q, w_k, w = randn(gen, 7, 4), randn(gen, 7, 6), randn(gen, 7)
    scores = additive_scores(q, k, w_q, w_k, w)
    assert scores.shape == (2, 3, 5)
    torch.testing.assert_close(scores, loop_additive(q, k, w_q, w_k, w), **TOL)


def test_additive_scores_unbatched_and_broadcast():
    gen = torch.Generator().manual_seed(1)
    q, k = randn(gen, 3, 4), randn(gen, 2, 5, 6)  # q shared by both key sets
    w_q, w_k, w = randn(gen, 2, 4), randn(gen, 2, 6), randn(gen, 2)
    unbatched = additive_scores(q, k[0], w_q, w_k, w)
    assert unbatched.shape == (3, 5)
    torch.testing.assert_close(unbatched, loop_additive(q[None], k[:1], w_q, w_k, w)[0], **TOL)
    batched = additive_scores(q, k, w_q, w_k, w)
    assert batched.shape == (2, 3, 5)
    torch.testing.assert_close(batched, loop_additive(q.expand(2, 3, 4), k, w_q, w_k, w), **TOL)


@pytest.mark.parametrize(("d_q", "d_k"), [(4, 6), (5, 5)])
def test_multiplicative_general_scores_match_loop(d_q, d_k):
    gen = torch.Generator().manual_seed(2)
    q, k, w = randn(gen, 2, 3, d_q), randn(gen, 2, 4, d_k), randn(gen, d_q, d_k)
    scores = multiplicative_scores(q, k, w)
    assert scores.shape == (2, 3, 4)
    torch.testing.assert_close(scores, loop_multiplicative(q, k, w), **TOL)


def test_multiplicative_dot_scores_match_loop():
    gen = torch.Generator().manual_seed(3)
    q, k = randn(gen, 2, 3, 5), randn(gen, 2, 4, 5)
    torch.testing.assert_close(multiplicative_scores(q, k), loop_multiplicative(q, k), **TOL)


# ---------------------------------------------------------------------------- modules


def _additive_module(d_q=4, d_k=6, d_hidden=5, seed=4):
    torch.manual_seed(seed)
    return AdditiveAttention(d_q, d_k, d_hidden).double()


def _module_weights(module):
    return module.w_q.weight, module.w_k.weight, module.w.weight[0]


def test_additive_attention_module_matches_reference():
    gen = torch.Generator().manual_seed(5)
    module = _additive_module()
    q, k, v = randn(gen, 2, 3, 4), randn(gen, 2, 5, 6), randn(gen, 2, 5, 2)
    out, weights = module(q, k, v, return_weights=True)
    scores = loop_additive(q, k, *(t.detach() for t in _module_weights(module)))
    expected_out, expected_weights = softmax_weighted_sum(scores, v)
    assert out.shape == (2, 3, 2)
    assert weights.shape == (2, 3, 5)
    torch.testing.assert_close(weights, expected_weights, **TOL)
    torch.testing.assert_close(out, expected_out, **TOL)
    torch.testing.assert_close(module(q, k, v), expected_out, **TOL)


@pytest.mark.parametrize(
    ("variant", "d_q", "d_k"), [("general", 4, 6), ("general", 5, 5), ("dot", 5, 5)]
)
def test_multiplicative_attention_module_matches_reference(variant, d_q, d_k):
    gen = torch.Generator().manual_seed(6)
    torch.manual_seed(7)
    module = MultiplicativeAttention(d_q, d_k, variant).double()
    q, k, v = randn(gen, 2, 3, d_q), randn(gen, 2, 4, d_k), randn(gen, 2, 4, 3)
    out, weights = module(q, k, v, return_weights=True)
    w = None if variant == "dot" else module.w.detach()
    expected_out, expected_weights = softmax_weighted_sum(loop_multiplicative(q, k, w), v)
    torch.testing.assert_close(weights, expected_weights, **TOL)
    torch.testing.assert_close(out, expected_out, **TOL)


def test_parameters():
    assert sum(p.numel() for p in AdditiveAttention(4, 6, 5).parameters()) == 5 * (4 + 6 + 1)
    assert sum(p.numel() for p in MultiplicativeAttention(4, 6).parameters()) == 4 * 6
    assert list(MultiplicativeAttention(4, 4, "dot").parameters()) == []


def _make(kind, **kwargs):
    """A float64 module of the given kind with fixed random parameters (d_q = d_k = 4)."""
    torch.manual_seed(9)
    if kind == "additive":
        return AdditiveAttention(4, 4, 3, **kwargs).double()
    return MultiplicativeAttention(4, 4, kind, **kwargs).double()


def _loop_scores(module, q, k):
    """The module's scores recomputed pair by pair from its parameters."""
    if isinstance(module, AdditiveAttention):
        return loop_additive(q, k, *(t.detach() for t in _module_weights(module)))
    return loop_multiplicative(q, k, None if module.w is None else module.w.detach())


@pytest.mark.parametrize("kind", ["additive", "general", "dot"])
def test_modules_honour_masks(kind):
    """Bool and -inf masks: masked weights are 0, fully masked rows output 0."""
    gen = torch.Generator().manual_seed(8)
    module = _make(kind)
    q, k, v = randn(gen, 2, 4, 4), randn(gen, 2, 5, 4), randn(gen, 2, 5, 3)
    scores = _loop_scores(module, q, k)
    keep = causal_mask(4, 5) & padding_mask(torch.tensor([5, 1]))[:, None, :]
    keep[0, 2] = False  # a query that sees nothing
    for mask in (keep, to_additive_mask(keep, torch.float64)):
        out, weights = module(q, k, v, mask, return_weights=True)
        expected_out, expected_weights = softmax_weighted_sum(scores, v, keep)
        assert torch.all(weights[~keep] == 0)
        assert torch.equal(out[0, 2], torch.zeros(3, dtype=torch.float64))
        torch.testing.assert_close(weights, expected_weights, **TOL)
        torch.testing.assert_close(out, expected_out, **TOL)


@pytest.mark.parametrize("kind", ["additive", "general", "dot"])
def test_modules_add_a_float_mask_to_the_scores(kind):
    gen = torch.Generator().manual_seed(17)
    module = _make(kind)
    q, k, v = randn(gen, 4, 4), randn(gen, 5, 4), randn(gen, 5, 3)
    bias = randn(gen, 4, 5)
    out, weights = module(q, k, v, bias, return_weights=True)
    expected_out, expected_weights = softmax_weighted_sum(
        _loop_scores(module, q[None], k[None])[0] + bias, v
    )
    torch.testing.assert_close(weights, expected_weights, **TOL)
    torch.testing.assert_close(out, expected_out, **TOL)


def test_additive_attention_gradcheck():
    gen = torch.Generator().manual_seed(10)
    module = _additive_module(d_q=3, d_k=2, d_hidden=4)
    q = randn(gen, 2, 3, 3).requires_grad_()
    k = randn(gen, 2, 4, 2).requires_grad_()
    v = randn(gen, 2, 4, 2).requires_grad_()
    mask = torch.tensor([[1, 1, 0, 1], [0, 0, 0, 0], [1, 0, 0, 0]], dtype=torch.bool)
    assert torch.autograd.gradcheck(lambda q, k, v: module(q, k, v), (q, k, v))

    # with a fully masked row, and through the returned weights as well
    def output_and_weights(q, k, v):
        out, weights = module(q, k, v, mask, return_weights=True)
        return torch.cat([out.flatten(), weights.flatten()])

    assert torch.autograd.gradcheck(output_and_weights, (q, k, v))


def test_additive_scores_gradcheck_including_parameters():
    gen = torch.Generator().manual_seed(11)
    tensors = [randn(gen, *s).requires_grad_() for s in [(2, 3), (4, 2), (3, 3), (3, 2), (3,)]]
    assert torch.autograd.gradcheck(additive_scores, tensors)


def test_multiplicative_attention_gradcheck():
    gen = torch.Generator().manual_seed(12)
    torch.manual_seed(13)
    module = MultiplicativeAttention(3, 2).double()
    q, k, v = randn(gen, 3, 3), randn(gen, 4, 2), randn(gen, 4, 2)
    inputs = (q.requires_grad_(), k.requires_grad_(), v.requires_grad_(), module.w)
    assert torch.autograd.gradcheck(lambda q, k, v, w: module(q, k, v), inputs)


def test_module_parameters_receive_gradients():
    """Backward (through output and weights) reaches W_q, W_k and w of the module."""
    gen = torch.Generator().manual_seed(14)
    module = _additive_module()
    q, k, v = randn(gen, 3, 4), randn(gen, 5, 6), randn(gen, 5, 2)
    out, weights = module(q, k, v, return_weights=True)
    (out.pow(2).sum() + weights.pow(2).sum()).backward()
    for p in module.parameters():
        assert p.grad is not None
        assert p.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", ["additive", "general", "dot"])
def test_modules_use_no_dropout_in_eval(kind):
    gen = torch.Generator().manual_seed(15)
    module = _make(kind, dropout=0.5)
    q, k, v = randn(gen, 3, 4), randn(gen, 6, 4), randn(gen, 6, 2)
    expected, _ = softmax_weighted_sum(_loop_scores(module, q[None], k[None])[0], v)
    module.eval()
    torch.testing.assert_close(module(q, k, v), expected, **TOL)
    module.train()
    torch.manual_seed(0)
    assert not torch.allclose(module(q, k, v), expected)


# ----------------------------------------------------------------------- bad input


def _inputs():
    return torch.randn(2, 3, 4), torch.randn(2, 5, 6), torch.randn(2, 5, 2)


@pytest.mark.parametrize(
    "module",
    [AdditiveAttention(4, 6, 8), MultiplicativeAttention(4, 6)],
    ids=["additive", "multiplicative"],
)
@pytest.mark.parametrize(
    ("case", "error", "message"),
    [
        ("q_last_dim", ValueError, r"q must have last dimension 4, got shape \(2, 3, 5\)"),
        ("k_last_dim", ValueError, r"k must have last dimension 6, got shape \(2, 5, 4\)"),
        ("n_k", ValueError, r"k and v must have the same number of keys n_k"),
        ("q_list", TypeError, r"q must be a torch\.Tensor"),
        ("v_int", TypeError, r"v must be a floating-point"),
        ("k_1d", ValueError, r"k must have at least 2 dimensions"),
        ("batch", ValueError, r"leading \(batch\) dimensions of q and k"),
        ("mask_shape", ValueError, r"mask of shape \(3, 4\) cannot broadcast"),
        ("mask_int", TypeError, r"mask must be bool"),
    ],
)
def test_modules_reject_bad_input(module, case, error, message):
    q, k, v = _inputs()
    mask = None
    if case == "q_last_dim":
        q = torch.randn(2, 3, 5)
    elif case == "k_last_dim":
        k = torch.randn(2, 5, 4)
    elif case == "n_k":
        v = torch.randn(2, 4, 2)
    elif case == "q_list":
        q = q.tolist()
    elif case == "v_int":
        v = v.long()
    elif case == "k_1d":
        k = k[0, 0]
    elif case == "batch":
        q = torch.randn(3, 3, 4)
    elif case == "mask_shape":
        mask = torch.ones(3, 4, dtype=torch.bool)
    elif case == "mask_int":
        mask = torch.ones(3, 5, dtype=torch.int32)
    with pytest.raises(error, match=message):
        module(q, k, v, mask)


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (
            lambda: MultiplicativeAttention(4, 6, "dot"),
            ValueError,
            r'variant="dot" needs d_q == d_k, got d_q=4, d_k=6',
        ),
        (lambda: MultiplicativeAttention(4, 4, "scaled"), ValueError, r"variant must be"),
        (lambda: MultiplicativeAttention(0, 4), ValueError, r"d_q must be a positive integer"),
        (lambda: MultiplicativeAttention(4, 4, dropout=1.0), ValueError, r"dropout must be"),
        (lambda: AdditiveAttention(4, 6, 0), ValueError, r"d_hidden must be a positive integer"),
        (lambda: AdditiveAttention(4, -1, 3), ValueError, r"d_k must be a positive integer"),
        (lambda: AdditiveAttention(4.0, 6, 3), ValueError, r"d_q must be a positive integer"),
        (lambda: AdditiveAttention(4, 6, 3, dropout=-0.1), ValueError, r"dropout must be"),
    ],
)
def test_module_constructors_reject_bad_arguments(make, error, message):
    with pytest.raises(error, match=message):
        make()


@pytest.mark.parametrize(
    "cls,args", [(AdditiveAttention, (4, 4, 8)), (MultiplicativeAttention, (4, 4))]
)
def test_modules_reject_inputs_of_another_dtype_than_their_parameters(cls, args):
    module = cls(*args)  # float32 parameters
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    with pytest.raises(
        TypeError, match=r"q has dtype torch.float64 .* parameters are torch.float32"
    ):
        module(x, x, x)
    assert module.double()(x, x, x).dtype == torch.float64

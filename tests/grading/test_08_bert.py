"""Grader for chapter 8's exercises (BERT).

Each exercise is checked against attnkit's implementation *and* against an independent
reference written here: explicit Python loops over positions, ``F.cross_entropy`` with its
``ignore_index``, ``torch.nn.functional.layer_norm`` on summed ``nn.Embedding`` lookups, and
the closed-form longest-first truncation of Hugging Face's Python tokenizers. Every test
calls the learner's function, so every test fails on the untouched exercise file.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

import attnkit as ak
from attnkit.grading import require
from attnkit.models.bert import BertConfig, BertEmbeddings, mask_tokens

CHAPTER = "08"
ex = pytest.mark.exercise


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------ mlm_corrupt
@ex("mlm_corrupt")
def test_mlm_corrupt_by_hand_and_loop(learner):
    fn = require(learner, "mlm_corrupt")
    tokens = torch.tensor([[10, 11, 12, 13], [14, 15, 16, 17]])
    selected = torch.tensor([[True, True, True, False], [False, True, True, True]])
    u = torch.tensor([[0.0, 0.8, 0.9, 0.5], [0.1, 0.7999, 0.8999, 0.99]])
    rnd = torch.tensor([[7, 8, 9, 7], [8, 9, 7, 8]])
    before = tokens.clone()
    inputs, labels = fn(tokens, selected, u, rnd, 4)
    assert torch.equal(tokens, before), "do not modify tokens in place"
    assert inputs.tolist() == [[4, 8, 12, 13], [14, 4, 7, 17]], (
        "a selected token becomes [MASK] if u < 0.8, random_ids if 0.8 <= u < 0.9, "
        "else stays; unselected tokens never change"
    )
    assert labels.tolist() == [[10, 11, 12, -100], [-100, 15, 16, 17]], (
        "labels: the original token where selected, -100 elsewhere"
    )


@ex("mlm_corrupt")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mlm_corrupt_matches_loop_and_attnkit(learner, seed):
    fn = require(learner, "mlm_corrupt")
    tokens = torch.randint(5, 300, (16, 40), generator=_gen(100 + seed))
    special = torch.zeros_like(tokens, dtype=torch.bool)
    special[:, 0] = special[:, -1] = True
    g = _gen(seed)  # the draws of attnkit's mask_tokens, in its order
    probs = torch.full(tokens.shape, 0.4).masked_fill(special, 0.0)
    selected = torch.bernoulli(probs, generator=g).bool()
    u = torch.rand(tokens.shape, generator=g)
    rnd = torch.randint(300, tokens.shape, generator=g)
    inputs, labels = fn(tokens, selected, u, rnd, 3)
    want_in, want_lab = mask_tokens(
        tokens,
        vocab_size=300,
        mask_token_id=3,
        special_mask=special,
        mlm_probability=0.4,
        generator=_gen(seed),
    )
    assert torch.equal(inputs, want_in) and torch.equal(labels, want_lab), (
        "differs from attnkit.models.bert.mask_tokens given the same random draws"
    )
    for (b, t), tok in zip(torch.cartesian_prod(torch.arange(16), torch.arange(40)).tolist(),
                           tokens.flatten().tolist()):  # fmt: skip
        if not selected[b, t]:
            assert inputs[b, t] == tok and labels[b, t] == -100
        else:
            want = 3 if u[b, t] < 0.8 else int(rnd[b, t]) if u[b, t] < 0.9 else tok
            assert inputs[b, t] == want and labels[b, t] == tok


@ex("mlm_corrupt")
def test_mlm_corrupt_any_shape_and_dtype(learner):
    fn = require(learner, "mlm_corrupt")
    tokens = torch.arange(24, dtype=torch.int32).reshape(2, 3, 4)
    selected = torch.ones_like(tokens, dtype=torch.bool)
    u = torch.full(tokens.shape, 0.95)
    inputs, labels = fn(tokens, selected, u, torch.zeros_like(tokens), 99)
    assert inputs.shape == tokens.shape and inputs.dtype == torch.int32
    assert torch.equal(inputs, tokens) and torch.equal(labels, tokens), (
        "u >= 0.9: a selected token stays unchanged (but is still predicted)"
    )
    inputs, labels = fn(tokens, ~selected, torch.zeros(tokens.shape), tokens, 99)
    assert torch.equal(inputs, tokens) and (labels == -100).all()


# -------------------------------------------------------------- mlm_loss_and_accuracy
def _loop_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    nll, right, n = 0.0, 0, 0
    for b in range(labels.shape[0]):
        for t in range(labels.shape[1]):
            y = int(labels[b, t])
            if y == -100:
                continue
            logp = torch.log_softmax(logits[b, t].double(), -1)
            nll -= float(logp[y])
            right += int(int(logits[b, t].argmax()) == y)
            n += 1
    return nll / n, right / n


@ex("mlm_loss_and_accuracy")
@pytest.mark.parametrize("seed,p", [(0, 0.15), (1, 0.5), (2, 1.0)])
def test_mlm_loss_matches_references(learner, seed, p):
    fn = require(learner, "mlm_loss_and_accuracy")
    g = _gen(seed)
    logits = 3 * torch.randn(4, 9, 11, generator=g, dtype=torch.float64)
    labels = torch.randint(11, (4, 9), generator=g)
    labels = labels.masked_fill(torch.rand(4, 9, generator=g) >= p, -100)
    labels[0, 0] = int(logits[0, 0].argmax())  # at least one selected, one right
    loss, acc = fn(logits, labels)
    want_loss, want_acc = _loop_loss(logits, labels)
    assert torch.is_tensor(loss) and loss.dim() == 0, "loss must be a 0-d tensor"
    assert loss.item() == pytest.approx(want_loss, rel=1e-6), (
        "mean cross-entropy over the selected positions only"
    )
    assert loss.item() == pytest.approx(
        F.cross_entropy(logits.flatten(0, 1), labels.flatten()).item(), rel=1e-6
    )
    assert float(acc) == pytest.approx(want_acc), "accuracy over the selected positions only"
    assert torch.is_tensor(acc) and acc.dim() == 0 and acc.is_floating_point(), (
        f"accuracy must be a float 0-d tensor, not {type(acc).__name__}"
    )


@ex("mlm_loss_and_accuracy")
def test_mlm_loss_ignores_unselected_and_has_gradient(learner):
    fn = require(learner, "mlm_loss_and_accuracy")
    logits = torch.zeros(2, 3, 5, requires_grad=True)
    labels = torch.tensor([[1, -100, -100], [-100, -100, 2]])
    loss, _ = fn(logits, labels)
    assert loss.item() == pytest.approx(torch.log(torch.tensor(5.0)).item(), rel=1e-6), (
        "uniform logits over 5 tokens: the loss is log 5 (the mean over the 2 selected only)"
    )
    loss.backward()
    assert logits.grad is not None and logits.grad[0, 1].abs().sum() == 0, (
        "unselected positions must get no gradient"
    )
    assert logits.grad[0, 0].abs().sum() > 0
    bigger = torch.zeros(2, 3, 5)
    bigger[0, 1, 3] = bigger[1, 0, 0] = 50.0  # unselected positions
    assert fn(bigger, labels)[0].item() == pytest.approx(loss.item())
    bigger[1, 2, 2] = 50.0
    assert float(fn(bigger, labels)[1]) == pytest.approx(0.5)


# ------------------------------------------------------------- bert_input_embeddings
def _embeddings(seed: int, d: int = 16, max_len: int = 20) -> BertEmbeddings:
    torch.manual_seed(seed)
    emb = BertEmbeddings(BertConfig(40, d, 2, 1, 2 * d, max_len, dropout=0.1)).eval()
    with torch.no_grad():
        for p in emb.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return emb


def _args(emb: BertEmbeddings):
    return (
        emb.word_embeddings.weight,
        emb.position.emb.weight,
        emb.token_type_embeddings.weight,
        emb.norm.weight,
        emb.norm.bias,
        emb.norm.eps,
    )


@ex("bert_input_embeddings")
@pytest.mark.parametrize("B,T", [(1, 1), (3, 7), (2, 20)])
def test_input_embeddings_match_attnkit_and_layer_norm(learner, B, T):
    fn = require(learner, "bert_input_embeddings")
    emb = _embeddings(B * 100 + T)
    g = _gen(T)
    ids = torch.randint(40, (B, T), generator=g)
    types = torch.randint(2, (B, T), generator=g)
    got = fn(ids, types, *_args(emb))
    assert got.shape == (B, T, 16), f"expected shape ({B}, {T}, 16), got {tuple(got.shape)}"
    with torch.no_grad():
        assert_close(got, emb(ids, types), msg="differs from attnkit's BertEmbeddings (eval)")
        word, pos, seg, gamma, beta, eps = _args(emb)
        x = word[ids] + pos[torch.arange(T)][None] + seg[types]
        assert_close(got, F.layer_norm(x, (16,), gamma, beta, eps))


@ex("bert_input_embeddings")
def test_input_embeddings_positions_and_segments_matter(learner):
    fn = require(learner, "bert_input_embeddings")
    emb = _embeddings(5)
    ids = torch.full((1, 6), 7)  # the same token everywhere
    out = fn(ids, torch.zeros_like(ids), *_args(emb))
    assert not torch.allclose(out[0, 0], out[0, 1]), (
        "the same token at two positions must get different vectors (positions added)"
    )
    other = fn(ids, torch.ones_like(ids), *_args(emb))
    assert not torch.allclose(out, other), "the segment embedding must be added"
    plain = fn(ids, torch.zeros_like(ids), *_args(emb)[:3], torch.ones(16), torch.zeros(16), 1e-12)
    assert_close(plain.mean(-1), torch.zeros(1, 6), atol=1e-5, rtol=0)
    assert_close(plain.var(-1, unbiased=False), torch.ones(1, 6), atol=1e-4, rtol=0)


# ---------------------------------------------------------------- self_attention_mask
@ex("self_attention_mask")
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("lengths,T", [([1], 1), ([3, 5, 1], 5), ([7, 7], 9), ([2, 6, 4, 6], 6)])
def test_self_attention_mask_matches_loop(learner, lengths, T, causal):
    fn = require(learner, "self_attention_mask")
    got = fn(torch.tensor(lengths), T, causal)
    B = len(lengths)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.bool, "return a bool tensor"
    assert got.shape == (B, T, T), f"expected shape ({B}, {T}, {T}), got {tuple(got.shape)}"
    for b in range(B):
        for i in range(T):
            for j in range(T):
                want = j < lengths[b] and (j <= i or not causal)
                assert bool(got[b, i, j]) == want, (
                    f"lengths={lengths}, causal={causal}: entry [{b}, {i}, {j}] should be {want}"
                )


@ex("self_attention_mask")
def test_self_attention_mask_matches_attnkit(learner):
    fn = require(learner, "self_attention_mask")
    lengths = torch.tensor([12, 3, 9])
    pad = ak.padding_mask(lengths, 12)[:, None, :]  # (B, 1, T)
    assert torch.equal(fn(lengths, 12, False), pad.expand(3, 12, 12))
    assert torch.equal(fn(lengths, 12, True), ak.combine_masks(pad, ak.causal_mask(12)))
    # with the mask, attention over a padded batch equals attention over each sequence alone
    g = _gen(0)
    q, k, v = (torch.randn(3, 12, 4, generator=g, dtype=torch.float64) for _ in range(3))
    out = ak.scaled_dot_product_attention(q, k, v, fn(lengths, 12, False))
    for b, n in enumerate(lengths.tolist()):
        alone = ak.scaled_dot_product_attention(q[b, :n], k[b, :n], v[b, :n])
        assert_close(out[b, :n], alone)


# ----------------------------------------------------------------- pack_sentence_pair
def _reference_pair(a, b, max_len, cls_id, sep_id):
    """Hugging Face's Python-tokenizer longest-first truncation, in closed form."""
    remove = max(0, len(a) + len(b) + 3 - max_len)
    first = min(abs(len(a) - len(b)), remove)
    second = remove - first
    if len(a) > len(b):
        cut_a, cut_b = first + second // 2, second - second // 2
    else:
        cut_a, cut_b = second // 2, first + second - second // 2
    a, b = a[: len(a) - cut_a], b[: len(b) - cut_b]
    return [cls_id, *a, sep_id, *b, sep_id], [0] * (len(a) + 2) + [1] * (len(b) + 1)


@ex("pack_sentence_pair")
def test_pack_sentence_pair_by_hand(learner):
    fn = require(learner, "pack_sentence_pair")
    a, b = [10, 11], [20, 21, 22]
    assert fn(a, b, 16, 2, 3) == ([2, 10, 11, 3, 20, 21, 22, 3], [0, 0, 0, 0, 1, 1, 1, 1])
    assert a == [10, 11] and b == [20, 21, 22], "do not modify a or b"
    assert fn([10, 11, 12], [20, 21, 22, 23], 8, 101, 102) == (
        [101, 10, 11, 12, 102, 20, 21, 102],
        [0, 0, 0, 0, 0, 1, 1, 1],
    ), "equal lengths: drop the last token of b first"
    assert fn([], [], 5, 2, 3) == ([2, 3, 3], [0, 0, 1])
    long_a, long_b = list(range(10, 20)), [20, 21]
    fn(long_a, long_b, 10, 2, 3)  # must truncate copies, not the caller's lists
    assert long_a == list(range(10, 20)) and long_b == [20, 21], (
        "truncation modified the lists passed in: copy a and b first"
    )


@ex("pack_sentence_pair")
@pytest.mark.parametrize("seed", range(6))
def test_pack_sentence_pair_matches_reference(learner, seed):
    fn = require(learner, "pack_sentence_pair")
    g = _gen(seed)
    for _ in range(40):
        la, lb, max_len = (int(x) for x in torch.randint(0, 25, (3,), generator=g))
        max_len += 5
        a = list(range(100, 100 + la))
        b = list(range(200, 200 + lb))
        got = fn(a, b, max_len, 2, 3)
        want = _reference_pair(a, b, max_len, 2, 3)
        assert tuple(got) == want, (
            f"len(a)={la}, len(b)={lb}, max_len={max_len}: expected {want}, got {got}"
        )
        assert len(got[0]) <= max_len

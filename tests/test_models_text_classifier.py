"""Tests of attnkit.models.text_classifier."""

import pytest
import torch
import torch.nn.functional as F

from attnkit.models.text_classifier import (
    BagOfWordsClassifier,
    GRUClassifier,
    TransformerClassifier,
    accuracy,
    attention_pool,
    train_classifier,
)
from attnkit.training import TrainConfig

V = 20


def _batch(seed=0, B=4, T=7):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, V, (B, T), generator=g)
    lengths = torch.tensor([T, 3, 5, 1])[:B]
    mask = torch.arange(T)[None, :] < lengths[:, None]
    return ids.masked_fill(~mask, 0), mask


def _models():
    torch.manual_seed(0)
    out = {
        f"tf-{p}": TransformerClassifier(
            V, 3, d_model=16, num_heads=2, d_ff=32, dropout=0.0, pooling=p, positional=pos
        )
        for p, pos in (("cls", "learned"), ("mean", "sinusoidal"), ("attention", "learned"))
    }
    out["bow"] = BagOfWordsClassifier(V, 3, d_embed=8)
    out["gru-last"] = GRUClassifier(V, 3, d_embed=8, hidden=8)
    out["gru-max"] = GRUClassifier(V, 3, d_embed=8, hidden=8, pooling="max")
    out["gru-mean"] = GRUClassifier(V, 3, d_embed=8, hidden=8, pooling="mean")
    return out


@pytest.mark.parametrize("name", list(_models()))
def test_shapes_and_padding_invariance(name):
    model = _models()[name].eval()
    ids, mask = _batch()
    logits = model(ids, mask)
    assert logits.shape == (4, 3)
    # extra padding columns, and other ids under the padding, change nothing
    ids2 = torch.cat([ids, torch.randint(5, V, (4, 3))], dim=1)
    mask2 = torch.cat([mask, torch.zeros(4, 3, dtype=torch.bool)], dim=1)
    ids2 = torch.where(mask2, ids2, torch.randint(0, V, ids2.shape))
    torch.testing.assert_close(model(ids2, mask2), logits, atol=1e-5, rtol=1e-5)
    # each row alone, unpadded, gives the same logits
    for i in range(4):
        n = int(mask[i].sum())
        torch.testing.assert_close(
            model(ids[i : i + 1, :n]), logits[i : i + 1], atol=1e-5, rtol=1e-5
        )
    # ... and the logits do depend on the real tokens
    ids3 = ids.clone()
    ids3[0, 0] = 5 if ids[0, 0] != 5 else 6
    assert not torch.allclose(model(ids3, mask)[0], logits[0])


@pytest.mark.parametrize("pooling", ["cls", "mean", "attention"])
def test_attention_outputs(pooling):
    model = TransformerClassifier(
        V, 2, d_model=16, num_heads=2, num_layers=3, d_ff=32, pooling=pooling
    ).eval()
    ids, mask = _batch(1)
    logits, atts, pool = model(ids, mask, return_attention=True)
    torch.testing.assert_close(logits, model(ids, mask))
    assert len(atts) == 3 and all(a.shape == (4, 2, 7, 7) for a in atts)
    for a in atts:
        torch.testing.assert_close(a.sum(-1), torch.ones(4, 2, 7))
        assert (a.masked_select(~mask[:, None, None, :].expand_as(a)) == 0).all()
    assert pool.shape == (4, 7)
    torch.testing.assert_close(pool.sum(-1), torch.ones(4))
    assert (pool[~mask] == 0).all()
    if pooling == "cls":
        assert (pool[:, 0] == 1).all()
    if pooling == "mean":
        torch.testing.assert_close(pool, mask.float() / mask.sum(-1, keepdim=True))
    if pooling == "attention":
        # the pool weights are the masked softmax of the learned scores
        h = model.encoder(model.pos(model.tok_emb(ids)), key_padding_mask=mask)[0]
        scores = model.pool_scores(h).masked_fill(~mask, -1e9)
        torch.testing.assert_close(pool, F.softmax(scores, -1))
        # replacing the weights by themselves changes nothing; by uniform ones it does
        torch.testing.assert_close(model(ids, mask, pool_weights=pool), logits)
        uniform = mask.float() / mask.sum(-1, keepdim=True)
        assert not torch.allclose(model(ids, mask, pool_weights=uniform), logits)


def test_attention_pool_matches_a_loop():
    g = torch.Generator().manual_seed(0)
    scores, values = torch.randn(3, 5, generator=g), torch.randn(3, 5, 4, generator=g)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    pooled, w = attention_pool(scores, values, mask)
    for b in range(3):
        n = int(mask[b].sum())
        e = [float(torch.exp(scores[b, t])) for t in range(n)]
        ref_w = [x / sum(e) for x in e]
        ref = sum(ref_w[t] * values[b, t] for t in range(n))
        torch.testing.assert_close(pooled[b], ref)
        torch.testing.assert_close(w[b, :n], torch.tensor(ref_w))
        assert (w[b, n:] == 0).all()


def test_gradients_flow_and_overfit():
    torch.manual_seed(0)
    model = TransformerClassifier(
        V, 2, d_model=16, num_heads=2, d_ff=32, dropout=0.0, pooling="attention"
    )
    ids, mask = _batch(2)
    labels = torch.tensor([0, 1, 1, 0])
    F.cross_entropy(model(ids, mask), labels).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    model.zero_grad()
    cfg = TrainConfig(steps=60, lr=1e-2, warmup_steps=0, progress=False, eval_every=60)
    for m in (model, GRUClassifier(V, 2, d_embed=8, hidden=8)):
        train_classifier(m, ids, mask, labels, cfg, batch_size=4)
        assert accuracy(m, ids, mask, labels) == 1.0


def test_bag_of_words_ignores_order():
    model = BagOfWordsClassifier(V, 2)
    ids = torch.tensor([[5, 6, 7, 8]])
    torch.testing.assert_close(model(ids), model(ids.flip(-1)))
    gru = GRUClassifier(V, 2).eval()
    assert not torch.allclose(gru(ids), gru(ids.flip(-1)))


def test_errors():
    model = TransformerClassifier(V, 2, d_model=16, num_heads=2, max_len=8)
    ids, mask = _batch()
    with pytest.raises(ValueError, match="ids"):
        model(ids.float(), mask)
    with pytest.raises(ValueError, match="vocab_size"):
        model(ids + V, mask)
    with pytest.raises(TypeError, match=r"mask must be a bool tensor .*mask\.bool\(\)"):
        model(ids, mask.long())
    with pytest.raises(ValueError, match="at least one"):
        model(ids, torch.zeros_like(mask))
    with pytest.raises(ValueError, match="max_len"):
        model(torch.ones(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match="pooling"):
        TransformerClassifier(V, pooling="max")
    with pytest.raises(ValueError, match="positional"):
        TransformerClassifier(V, positional="rope")
    with pytest.raises(ValueError, match="pool_weights"):
        model(ids, mask, pool_weights=torch.ones(4, 3))
    with pytest.raises(ValueError, match="right-padded"):
        GRUClassifier(V)(ids, mask.flip(-1))
    with pytest.raises(ValueError, match="scores"):
        attention_pool(torch.ones(2, 3), torch.ones(2, 4, 5))

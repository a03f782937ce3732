"""Tests of attnkit.interpret (attributions and their evaluation)."""

import pytest
import scipy.stats
import torch

from attnkit.interpret import (
    attention_rollout,
    gradient_x_input,
    integrated_gradients,
    kendall_tau,
    leave_one_out,
    permute_weights,
    pooled_attention,
    pooled_rollout,
    random_k_mask,
    removal_curve,
    remove_tokens,
    top_k_mask,
    top_k_overlap,
    top_k_precision,
    total_variation,
)
from attnkit.models.text_classifier import TransformerClassifier

V = 15


def _model(pooling="cls", dtype=torch.float32):
    torch.manual_seed(0)
    m = TransformerClassifier(
        V, 2, d_model=16, num_heads=2, num_layers=2, d_ff=32, dropout=0.0, pooling=pooling
    )
    return m.to(dtype).eval()


def _batch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, V, (3, 6), generator=g)
    mask = torch.arange(6)[None, :] < torch.tensor([[6], [4], [2]])
    return ids.masked_fill(~mask, 0), mask


def test_pooled_attention_and_rollout():
    model = _model("cls")
    ids, mask = _batch()
    _, atts, pool = model(ids, mask, return_attention=True)
    raw = pooled_attention(atts, pool)
    torch.testing.assert_close(raw, atts[-1].mean(1)[:, 0, :])
    torch.testing.assert_close(raw.sum(-1), torch.ones(3))
    assert (raw[~mask] == 0).all()
    torch.testing.assert_close(pooled_attention(atts, pool, layer=0), atts[0].mean(1)[:, 0])
    roll = pooled_rollout(atts, pool)
    eye = torch.eye(6)
    a1, a2 = [(0.5 * a.mean(1) + 0.5 * eye) for a in atts]
    torch.testing.assert_close(roll, (a2 @ a1)[:, 0, :])
    assert (roll[~mask] == 0).all()
    mean_model = _model("mean")
    _, atts, pool = mean_model(ids, mask, return_attention=True)
    expected = (atts[-1].mean(1) * pool[:, :, None]).sum(1)  # pool-weighted rows
    torch.testing.assert_close(pooled_attention(atts, pool), expected)
    with pytest.raises(ValueError, match="layer"):
        pooled_attention(atts, pool, layer=2)
    with pytest.raises(ValueError, match="pool_weights"):
        pooled_attention(atts, pool[:, :3])
    with pytest.raises(ValueError, match="empty"):
        attention_rollout([])


def test_gradient_x_input_matches_a_jacobian():
    model = _model("attention", torch.float64)
    ids, mask = _batch()
    target = torch.tensor([1, 0, 1])
    gxi = gradient_x_input(model, ids, mask, target)
    for b in range(3):
        n = int(mask[b].sum())
        e = model.tok_emb(ids[b : b + 1, :n]).detach()
        jac = torch.autograd.functional.jacobian(
            lambda x, c=int(target[b]): model.forward_embeddings(x)[0, c], e
        )  # (1, n, d)
        torch.testing.assert_close(gxi[b, :n], (jac * e)[0].sum(-1))
        assert (gxi[b, n:] == 0).all()
    # default target = predicted class; parameters get no gradient
    pred = model(ids, mask).argmax(-1)
    torch.testing.assert_close(
        gradient_x_input(model, ids, mask), gradient_x_input(model, ids, mask, pred)
    )
    assert all(p.grad is None for p in model.parameters())


def test_integrated_gradients_completeness():
    model = _model("cls", torch.float64)
    ids, mask = _batch()
    target = torch.tensor([0, 1, 0])
    ig = integrated_gradients(model, ids, mask, target, steps=64)
    e = model.tok_emb(ids)
    with torch.no_grad():
        full = model.forward_embeddings(e, mask).gather(1, target[:, None])[:, 0]
        zero = model.forward_embeddings(torch.zeros_like(e), mask).gather(1, target[:, None])[:, 0]
    torch.testing.assert_close(
        ig.sum(-1), full - zero, atol=2e-3 * float((full - zero).abs().max()), rtol=0
    )
    assert (ig[~mask] == 0).all()
    # one step is gradient x input at half the embedding: far from complete in general
    ig1 = integrated_gradients(model, ids, mask, target, steps=1)
    assert not torch.allclose(ig1.sum(-1), full - zero, atol=1e-3)


def test_remove_tokens():
    ids = torch.tensor([[2, 7, 8, 9, 3], [2, 6, 3, 0, 0]])
    mask = ids != 0
    remove = torch.tensor([[0, 1, 0, 1, 0], [0, 0, 1, 0, 0]], dtype=torch.bool)
    new_ids, new_mask = remove_tokens(ids, mask, remove)
    assert new_ids.tolist() == [[2, 8, 3, 0, 0], [2, 6, 0, 0, 0]]
    assert new_mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0]]
    m_ids, m_mask = remove_tokens(ids, mask, remove, mode="mask")
    assert torch.equal(m_ids, ids) and torch.equal(m_mask, mask & ~remove)
    with pytest.raises(ValueError, match="every real token"):
        remove_tokens(ids, mask, mask)
    with pytest.raises(ValueError, match="mode"):
        remove_tokens(ids, mask, remove, mode="drop")


def test_leave_one_out_matches_explicit_deletions():
    model = _model("mean")
    ids, mask = _batch()
    loo = leave_one_out(model, ids, mask)
    with torch.no_grad():
        for b in range(3):
            seq = ids[b][mask[b]].tolist()
            p = torch.softmax(model(torch.tensor([seq])), -1)[0]
            pred = int(p.argmax())
            for t in range(len(seq)):
                short = seq[:t] + seq[t + 1 :]
                q = torch.softmax(model(torch.tensor([short])), -1)[0, pred]
                assert abs(float(loo[b, t]) - float(p[pred] - q)) < 1e-5
    assert (loo[~mask] == 0).all()
    cand = mask.clone()
    cand[:, 0] = False
    loo_c = leave_one_out(model, ids, mask, candidates=cand)
    assert (loo_c[:, 0] == 0).all()
    torch.testing.assert_close(loo_c[cand], loo[cand])


def test_top_k_mask_and_random():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.9, -2.0], [3.0, 1.0, 2.0, 0.0, 0.0]])
    cand = torch.tensor([[1, 1, 1, 1, 1], [0, 1, 1, 0, 0]], dtype=torch.bool)
    assert top_k_mask(scores, 2, cand).int().tolist() == [[0, 1, 0, 1, 0], [0, 1, 1, 0, 0]]
    assert top_k_mask(scores, 1, cand).int().tolist() == [[0, 1, 0, 0, 0], [0, 0, 1, 0, 0]]
    assert top_k_mask(scores, 1, cand, absolute=True)[0].int().tolist() == [0, 0, 0, 0, 1]
    assert top_k_mask(scores, 0, cand).sum() == 0
    assert top_k_mask(scores, torch.tensor([1, 0]), cand).int().tolist()[1] == [0] * 5
    g = torch.Generator().manual_seed(0)
    r = random_k_mask(cand, 2, g)
    assert r.sum(-1).tolist() == [2, 2] and not (r & ~cand).any()
    counts = sum(random_k_mask(cand, 1, g)[0].float() for _ in range(500))
    assert counts.min() > 60  # roughly uniform over the 5 candidates
    with pytest.raises(ValueError, match="k"):
        top_k_mask(scores, -1, cand)


def test_removal_curve():
    model = _model("cls")
    ids, mask = _batch()
    cand = mask.clone()
    cand[:, 0] = False  # keep [CLS]
    scores = torch.randn(3, 6, generator=torch.Generator().manual_seed(2))
    drop, flip = removal_curve(model, ids, mask, scores, [0, 1, 2], candidates=cand)
    assert drop.shape == flip.shape == (3,) and drop[0] == 0 and flip[0] == 0
    with torch.no_grad():
        p0 = torch.softmax(model(ids, mask), -1)
        pred = p0.argmax(-1)
        new = remove_tokens(ids, mask, top_k_mask(scores, 2, cand))
        p2 = torch.softmax(model(*new), -1)
    ref = (p0.gather(1, pred[:, None]) - p2.gather(1, pred[:, None])).mean()
    assert abs(float(drop[2]) - float(ref)) < 1e-6
    assert abs(float(flip[2]) - float((p2.argmax(-1) != pred).float().mean())) < 1e-6
    # k beyond the length never removes every token
    removal_curve(model, ids, mask, scores, [10])
    d1, _ = removal_curve(model, ids, mask, None, [1], generator=torch.Generator().manual_seed(0))
    d2, _ = removal_curve(model, ids, mask, None, [1], generator=torch.Generator().manual_seed(0))
    assert torch.equal(d1, d2)
    with pytest.raises(ValueError, match="generator"):
        removal_curve(model, ids, mask, None, [1])


def test_kendall_tau_matches_scipy():
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 4, (20, 9), generator=g).double()  # many ties
    b = a + torch.randn(20, 9, generator=g, dtype=torch.float64)
    b[::3] = torch.randint(0, 3, (7, 9), generator=g).double()
    mask = torch.arange(9)[None, :] < torch.randint(3, 10, (20, 1), generator=g)
    tau = kendall_tau(a, b, mask)
    for i in range(20):
        n = int(mask[i].sum())
        ref = scipy.stats.kendalltau(a[i, :n].numpy(), b[i, :n].numpy()).statistic
        assert abs(float(tau[i]) - ref) < 1e-12 or (torch.isnan(tau[i]) and ref != ref)
    ok = ~torch.isnan(tau)
    assert ok.sum() >= 15
    assert kendall_tau(a, a, mask)[ok].min().item() == pytest.approx(1.0)
    assert kendall_tau(b, -b, mask)[ok].max().item() == pytest.approx(-1.0)


def test_overlap_and_precision():
    a = torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0]])
    b = torch.tensor([[1.0, 4.0, 3.0, 5.0, 2.0]])
    cand = torch.ones(1, 5, dtype=torch.bool)
    assert top_k_overlap(a, b, 2, cand).item() == 0.5  # {0, 1} vs {3, 1}
    assert top_k_overlap(a, b, 5, cand).item() == 1.0
    truth = torch.tensor([[0, 0, 1, 1, 0]], dtype=torch.bool)
    assert top_k_precision(a, truth, cand).item() == 0.0  # top-2 of a: {0, 1}
    assert top_k_precision(b, truth, cand).item() == 0.5  # {3, 1}
    assert top_k_precision(b, truth, cand, k=3).item() == pytest.approx(2 / 3)


def test_permute_weights_and_total_variation():
    w = torch.tensor([[0.1, 0.2, 0.7, 0.0], [0.6, 0.4, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=torch.bool)
    p = permute_weights(w, mask, torch.Generator().manual_seed(0))
    for i in range(2):
        assert sorted(p[i][mask[i]].tolist()) == sorted(w[i][mask[i]].tolist())
    assert (p[~mask] == 0).all()
    outs = {
        tuple(permute_weights(w, mask, torch.Generator().manual_seed(s))[0].tolist())
        for s in range(30)
    }
    assert len(outs) > 1
    tv = total_variation(
        torch.tensor([[0.2, 0.8], [0.5, 0.5]]), torch.tensor([[0.6, 0.4], [0.5, 0.5]])
    )
    torch.testing.assert_close(tv, torch.tensor([0.4, 0.0]))


def test_errors():
    model = _model()
    ids, mask = _batch()
    with pytest.raises(TypeError, match="TransformerClassifier"):
        gradient_x_input(torch.nn.Linear(2, 2), ids, mask)
    with pytest.raises(ValueError, match="target"):
        gradient_x_input(model, ids, mask, torch.tensor([0, 5, 1]))
    with pytest.raises(ValueError, match="steps"):
        integrated_gradients(model, ids, mask, steps=0)
    with pytest.raises(TypeError, match="candidates"):
        leave_one_out(model, ids, mask, candidates=mask.long())
    with pytest.raises(ValueError, match="shape"):
        kendall_tau(torch.ones(3, 5), torch.ones(3, 6), mask)

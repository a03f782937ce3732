"""Tests of attnkit.models.span_qa and attnkit.models.rnn_seq2seq."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from attnkit.models.rnn_seq2seq import GRUSeq2Seq, rnn_greedy_decode
from attnkit.models.span_qa import SpanQAGRU, SpanQATransformer, best_span, span_loss

pytestmark = pytest.mark.usefixtures("one_thread")


def _brute_force_span(s, e, mask, max_len):
    best, arg = -float("inf"), None
    for i, j in itertools.product(range(len(s)), repeat=2):
        if mask[i] and mask[j] and i <= j < i + max_len and s[i] + e[j] > best:
            best, arg = s[i] + e[j], (i, j)
    return arg


def test_best_span_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    for max_len in (1, 2, 4, 20):
        s = torch.randn(6, 9, generator=g)
        e = torch.randn(6, 9, generator=g)
        mask = torch.zeros(6, 9, dtype=torch.bool)
        for b in range(6):
            mask[b, b // 2 + 1 : 9 - b // 3] = True
        st, en = best_span(s, e, mask, max_len)
        for b in range(6):
            assert (int(st[b]), int(en[b])) == _brute_force_span(
                s[b].tolist(), e[b].tolist(), mask[b].tolist(), max_len
            )


def test_best_span_prefers_legal_over_higher_illegal():
    s = torch.tensor([[0.0, -10.0, 5.0, 1.0]])
    e = torch.tensor([[0.0, 9.0, 0.0, 1.0]])  # best end (1) lies before best start (2)
    mask = torch.tensor([[False, True, True, True]])
    assert tuple(map(int, best_span(s, e, mask, 3))) == (2, 3)
    assert tuple(map(int, best_span(s, e, mask, 1))) == (2, 2)
    with pytest.raises(ValueError, match="at least one True"):
        best_span(s, e, torch.zeros(1, 4, dtype=torch.bool), 2)
    with pytest.raises(ValueError, match="max_answer_len"):
        best_span(s, e, mask, 0)


def test_span_loss_equals_masked_cross_entropy():
    g = torch.Generator().manual_seed(1)
    s, e = torch.randn(3, 7, generator=g), torch.randn(3, 7, generator=g)
    mask = torch.zeros(3, 7, dtype=torch.bool)
    mask[:, 3:] = True
    sp, ep = torch.tensor([3, 4, 6]), torch.tensor([4, 4, 6])
    want = 0.0
    for b in range(3):
        ls = torch.log_softmax(s[b, 3:], 0)[sp[b] - 3]
        le = torch.log_softmax(e[b, 3:], 0)[ep[b] - 3]
        want += -(ls + le) / 2 / 3
    assert span_loss(s, e, sp, ep, mask).item() == pytest.approx(want.item(), abs=1e-6)
    with pytest.raises(ValueError, match="inside context_mask"):
        span_loss(s, e, torch.tensor([0, 4, 6]), ep, mask)


@pytest.mark.parametrize("positional", ["rotary", "learned"])
def test_transformer_reader_shapes_and_padding(positional):
    torch.manual_seed(0)
    m = SpanQATransformer(
        30, d_model=32, num_heads=4, d_ff=64, num_layers=2, max_len=16, positional=positional
    ).eval()
    ids = torch.randint(3, 30, (2, 10))
    seg = torch.ones(2, 10, dtype=torch.long)
    seg[:, :3] = 0
    mask = torch.ones(2, 10, dtype=torch.bool)
    s, e, w = m(ids, seg, mask, need_weights=True)
    assert s.shape == e.shape == (2, 10) and len(w) == 2 and w[0].shape == (2, 4, 10, 10)
    # Padding changes nothing at real positions.
    ids_p = torch.cat([ids, torch.zeros(2, 3, dtype=torch.long)], 1)
    seg_p = torch.cat([seg, torch.ones(2, 3, dtype=torch.long)], 1)
    mask_p = torch.cat([mask, torch.zeros(2, 3, dtype=torch.bool)], 1)
    s2, e2 = m(ids_p, seg_p, mask_p)
    torch.testing.assert_close(s2[:, :10], s, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(e2[:, :10], e, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="positional"):
        SpanQATransformer(30, positional="none")


def test_gru_reader_ignores_padding():
    torch.manual_seed(0)
    m = SpanQAGRU(30, d_model=16, hidden=16, num_layers=2).eval()
    ids = torch.randint(3, 30, (1, 8))
    seg = torch.ones(1, 8, dtype=torch.long)
    s, e = m(ids, seg, torch.ones(1, 8, dtype=torch.bool))
    ids_p = torch.cat([ids, torch.full((1, 4), 7)], 1)
    mask_p = torch.cat([torch.ones(1, 8, dtype=torch.bool), torch.zeros(1, 4, dtype=torch.bool)], 1)
    s2, e2 = m(ids_p, torch.ones(1, 12, dtype=torch.long), mask_p)
    torch.testing.assert_close(s2[:, :8], s, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(e2[:, :8], e, atol=1e-5, rtol=1e-5)


def test_readers_learn_a_toy_span():
    """Both readers can fit "the answer is the token after the marker 2"."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 12, (64, 10), generator=g)
    pos = torch.randint(0, 8, (64,), generator=g)
    ids[torch.arange(64), pos] = 2
    seg = torch.ones(64, 10, dtype=torch.long)
    mask = torch.ones(64, 10, dtype=torch.bool)
    for m in (SpanQATransformer(12, 32, 4, 64, 2, 16, 0.0), SpanQAGRU(12, 16, 16, 1, 0.0)):
        torch.manual_seed(0)
        opt = torch.optim.Adam(m.parameters(), 1e-2)
        for _ in range(150):
            s, e = m(ids, seg, mask)
            loss = span_loss(s, e, pos + 1, pos + 1, mask)
            opt.zero_grad()
            loss.backward()
            opt.step()
        st, en = best_span(*m(ids, seg, mask), mask, 2)
        assert (st == pos + 1).float().mean() > 0.9 and (en == pos + 1).float().mean() > 0.9


def test_gru_seq2seq_copies_and_greedy_matches_forward():
    torch.manual_seed(0)
    m = GRUSeq2Seq(10, 10, d_model=16, hidden=32, dropout=0.0)
    src = torch.randint(3, 10, (64, 4))
    tgt_out = torch.cat([src, torch.full((64, 1), 2)], 1)  # copy, then EOS=2
    tgt_in = torch.cat([torch.ones(64, 1, dtype=torch.long), src], 1)  # BOS=1
    opt = torch.optim.Adam(m.parameters(), 1e-2)
    for _ in range(300):
        loss = F.cross_entropy(m(src, tgt_in).reshape(-1, 10), tgt_out.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = rnn_greedy_decode(m, src, bos_id=1, eos_id=2, max_len=8)
    assert (out[:, :5] == tgt_out).float().mean() > 0.9
    # Greedy equals the argmax of teacher forcing on its own output.
    m.eval()
    with torch.no_grad():
        lg = m(src, torch.cat([torch.ones(64, 1, dtype=torch.long), out[:, :4]], 1))
    assert (lg.argmax(-1) == out[:, :5]).all()
    # Padding of the source does not change the encoding.
    h = m.encode(src[:1])
    h_p = m.encode(torch.cat([src[:1], torch.zeros(1, 3, dtype=torch.long)], 1))
    torch.testing.assert_close(h, h_p)

"""Grader for chapter 10's exercises (multimodal attention).

Each exercise is checked against attnkit *and* an independent reference written here: a
hand-written table of number words, strips assembled pixel by pixel, the attention
weights of ``ak.MultiHeadAttention`` and of ``torch.nn.functional``'s
``scaled_dot_product_attention``, explicit loops over patches, and string comparison of
decoded words. Every test calls the learner's function, so every test fails on the
untouched exercise file.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

import attnkit as ak
from attnkit.data import digit_strips as ds
from attnkit.data.digits import digit_splits, load_digit_images
from attnkit.grading import require

CHAPTER = "10"
ex = pytest.mark.exercise

TABLE = {
    0: "zero",
    5: "five",
    10: "ten",
    11: "eleven",
    15: "fifteen",
    19: "nineteen",
    20: "twenty",
    30: "thirty",
    42: "forty two",
    99: "ninety nine",
    100: "one hundred",
    101: "one hundred one",
    110: "one hundred ten",
    113: "one hundred thirteen",
    250: "two hundred fifty",
    307: "three hundred seven",
    999: "nine hundred ninety nine",
}


# ------------------------------------------------------------------- number_to_words
@ex("number_to_words")
@pytest.mark.parametrize("n, words", sorted(TABLE.items()))
def test_number_to_words_table(learner, n, words):
    got = require(learner, "number_to_words")(n)
    assert got == words, f"number_to_words({n}) should be {words!r}, got {got!r}"


@ex("number_to_words")
def test_number_to_words_all(learner):
    fn = require(learner, "number_to_words")
    for n in range(1000):
        got = fn(n)
        assert isinstance(got, str), "return a str"
        assert got == ds.number_to_words(n), (
            f"number_to_words({n}) = {got!r}, expected {ds.number_to_words(n)!r} "
            "(single spaces, no 'and', no hyphens)"
        )


# --------------------------------------------------------------------- compose_strip
def _strip_by_pixels(digits: torch.Tensor) -> torch.Tensor:
    k = digits.shape[0]
    out = torch.zeros(1, 8, 24, dtype=digits.dtype)
    for j in range(k):
        slot = 3 - k + j
        for y in range(8):
            for x in range(8):
                out[0, y, 8 * slot + x] = digits[j, 0, y, x]
    return out


@ex("compose_strip")
@pytest.mark.parametrize("k, seed", [(2, 0), (3, 1), (3, 2), (2, 3)])
def test_compose_strip_pixels(learner, k, seed):
    fn = require(learner, "compose_strip")
    g = torch.Generator().manual_seed(seed)
    digits = torch.rand(k, 1, 8, 8, generator=g) + 0.01  # no zero pixel in a digit
    got = fn(digits)
    assert tuple(got.shape) == (1, 8, 24), f"expected shape (1, 8, 24), got {tuple(got.shape)}"
    assert_close(got, _strip_by_pixels(digits), msg="digits must be right-aligned, slot 0 blank")


@ex("compose_strip")
def test_compose_strip_matches_library_and_dtype(learner):
    fn = require(learner, "compose_strip")
    images, _ = load_digit_images()
    strips = ds.make_strips(digit_splits().val, 40, seed=5)
    for b in range(40):
        idx = strips.digit_index[b]
        got = fn(images[idx[idx >= 0]])
        assert torch.equal(got, strips.images[b]), f"strip of {int(strips.numbers[b])} differs"
    double = fn(images[:3].double())
    assert double.dtype == torch.float64, "keep the dtype of the digit images"


# ----------------------------------------------------------- cross_attention_by_hand
@ex("cross_attention_by_hand")
@pytest.mark.parametrize("B, T, N, d, H", [(2, 5, 12, 32, 4), (1, 1, 3, 8, 1), (3, 4, 7, 24, 6)])
def test_cross_attention_by_hand_matches_module(learner, B, T, N, d, H):
    fn = require(learner, "cross_attention_by_hand")
    torch.manual_seed(B * 100 + N)
    attn = ak.MultiHeadAttention(d, num_heads=H).eval()
    with torch.no_grad():
        for p in attn.parameters():
            p.normal_(0, 0.3)  # random biases too
    x, memory = torch.randn(B, T, d), torch.randn(B, N, d)
    with torch.no_grad():
        out, weights = fn(x, memory, attn)
        want_out, want_w = attn(x, memory, need_weights=True)
    assert tuple(weights.shape) == (B, H, T, N), f"weights must be (B, H, T, N) = {(B, H, T, N)}"
    assert_close(weights, want_w, rtol=1e-5, atol=1e-6, msg="weights differ from the module's")
    assert_close(out, want_out, rtol=1e-5, atol=1e-5, msg="output differs from the module's")


@ex("cross_attention_by_hand")
def test_cross_attention_by_hand_matches_torch_sdpa(learner):
    fn = require(learner, "cross_attention_by_hand")
    torch.manual_seed(7)
    attn = ak.MultiHeadAttention(16, num_heads=2).double().eval()
    x, memory = torch.randn(2, 3, 16).double(), torch.randn(2, 9, 16).double()
    with torch.no_grad():
        out, _ = fn(x, memory, attn)
        q = attn.q_proj(x).view(2, 3, 2, 8).transpose(1, 2)
        k = attn.k_proj(memory).view(2, 9, 2, 8).transpose(1, 2)
        v = attn.v_proj(memory).view(2, 9, 2, 8).transpose(1, 2)
        ref = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(2, 3, 16)
        ref = attn.out_proj(ref)
    assert_close(out, ref, msg="output differs from torch's scaled_dot_product_attention")


# ---------------------------------------------------------------- slot_attention_mass
def _mass_by_loop(weights, grid, num_slots):
    gh, gw = grid
    width = gw // num_slots
    flat = weights.reshape(-1, gh * gw)
    out = torch.zeros(flat.shape[0], num_slots, dtype=weights.dtype)
    for r in range(flat.shape[0]):
        for n in range(gh * gw):
            out[r, (n % gw) // width] += flat[r, n]
    return out.reshape(*weights.shape[:-1], num_slots)


@ex("slot_attention_mass")
@pytest.mark.parametrize(
    "shape, grid, slots", [((12,), (2, 6), 3), ((2, 4, 5, 12), (2, 6), 3), ((3, 24), (4, 6), 2)]
)
def test_slot_attention_mass_loop(learner, shape, grid, slots):
    fn = require(learner, "slot_attention_mass")
    g = torch.Generator().manual_seed(len(shape))
    weights = torch.rand(*shape, generator=g, dtype=torch.float64)
    got = fn(weights, grid, slots)
    want = _mass_by_loop(weights, grid, slots)
    assert tuple(got.shape) == tuple(want.shape), f"expected shape {tuple(want.shape)}"
    assert_close(got, want, msg="slot s is made of the columns [s*w, (s+1)*w) of every grid row")


@ex("slot_attention_mass")
def test_slot_attention_mass_on_model_weights(learner):
    fn = require(learner, "slot_attention_mass")
    from attnkit.models.image_to_text import ImageToText
    from attnkit.models.vit import ViTConfig

    torch.manual_seed(0)
    cfg = ViTConfig((8, 24), 4, 1, 16, 2, 1, 32, 0)
    model = ImageToText(cfg, len(ds.VOCAB), num_decoder_layers=1, d_ff=32, max_len=6).eval()
    strips = ds.make_strips(digit_splits().test, 4, seed=0)
    with torch.no_grad():
        (w,) = model.cross_attention_weights(strips.images, strips.tgt_in)
    got = fn(w, model.grid, 3)
    assert tuple(got.shape) == (4, 2, 5, 3)
    assert_close(got.sum(-1), torch.ones(4, 2, 5), msg="the slots' masses must sum to 1")
    assert_close(got, _mass_by_loop(w, model.grid, 3))


# ----------------------------------------------------------------------- exact_match
@ex("exact_match")
def test_exact_match_cases(learner):
    fn = require(learner, "exact_match")
    _, target = ds.target_tensors([342, 17, 300, 45])  # (4, 5)
    pad = torch.zeros(4, 3, dtype=torch.long)
    assert fn(target, target, ds.EOS_ID) == 1.0
    assert fn(torch.cat([target, pad], 1), target, ds.EOS_ID) == 1.0, "padding after EOS is fine"
    junk = torch.cat([target, torch.full((4, 2), 7)], 1)
    assert fn(junk, target, ds.EOS_ID) == 1.0, "whatever follows the first EOS does not count"
    wrong = target.clone()
    wrong[3, 0] = ds.WORD_TO_ID["fifty"]
    assert fn(wrong, target, ds.EOS_ID) == 0.75
    cut = target[:, :2]  # only "seventeen <eos>" is complete
    assert fn(cut, target, ds.EOS_ID) == 0.25, "a prediction without EOS is wrong"
    early = target.clone()
    early[0, 2] = ds.EOS_ID  # "three hundred <eos>" for 342
    assert fn(early, target, ds.EOS_ID) == 0.75, "stopping early is wrong"


@ex("exact_match")
def test_exact_match_against_decoded_strings(learner):
    fn = require(learner, "exact_match")
    g = torch.Generator().manual_seed(3)
    numbers = torch.randint(10, 1000, (200,), generator=g)
    _, target = ds.target_tensors(numbers)
    pred = target.clone()
    flip = torch.rand(200, generator=g) < 0.3
    where = torch.randint(0, 3, (200,), generator=g)
    pred[flip, where[flip]] = torch.randint(3, len(ds.VOCAB), (int(flip.sum()),), generator=g)
    words = [ds.decode_ids(p) == ds.number_to_words(int(n)) for p, n in zip(pred, numbers)]
    has_eos = (pred == ds.EOS_ID).any(1).tolist()
    want = sum(w and e for w, e in zip(words, has_eos)) / 200
    got = fn(pred, target, ds.EOS_ID)
    assert isinstance(got, float), "return a Python float"
    assert got == pytest.approx(want)

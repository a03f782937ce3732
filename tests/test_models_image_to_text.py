"""Tests of attnkit.models.image_to_text: shapes, causality, caches, cross-attention,
gradients, errors, greedy decoding and a tiny overfit.

Independent references: the cross-attention weights recomputed by hand from the
module's projections, the full teacher-forced forward for incremental decoding, and
greedy decoding without caches (re-running the whole prefix).
"""

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

import attnkit as ak
from attnkit.data import digit_strips as ds
from attnkit.data.digits import digit_splits
from attnkit.models.image_to_text import ImageToText, greedy_caption
from attnkit.models.vit import ViTConfig

VIT = ViTConfig(
    image_size=(8, 24),
    patch_size=4,
    channels=1,
    d_model=32,
    num_heads=4,
    num_layers=2,
    d_ff=64,
    num_classes=0,
)
V = len(ds.VOCAB)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def small(**kwargs) -> ImageToText:
    torch.manual_seed(0)
    args = dict(num_decoder_layers=2, d_ff=64, max_len=8)
    args.update(kwargs)
    return ImageToText(VIT, V, **args).eval()


def inputs(B=3, T=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(B, 1, 8, 24, generator=g)
    tgt = torch.randint(3, V, (B, T), generator=g)
    tgt[:, 0] = ds.BOS_ID
    return images, tgt


def test_shapes_and_tied_projection():
    model = small()
    images, tgt = inputs()
    memory = model.encode(images)
    assert memory.shape == (3, 12, 32) and model.grid == (2, 6)
    assert model(images, tgt).shape == (3, 5, V)
    weights = model.cross_attention_weights(images, tgt)
    assert len(weights) == 2 and all(w.shape == (3, 4, 5, 12) for w in weights)
    assert model.out_proj.weight is model.tok_embed.weight
    assert model.decoder.layers[0].norm_first and model.decoder.norm is not None


def test_memory_is_the_vits_patch_states():
    model = small()
    images, _ = inputs()
    hidden = model.encoder(images)  # (B, 1 + N, d): class token first
    torch.testing.assert_close(model.encode(images), hidden[:, 1:])


@pytest.mark.parametrize("positional", ["learned", "sinusoidal"])
def test_causal(positional):
    model = small(positional=positional)
    images, tgt = inputs()
    base = model(images, tgt)
    for t in range(1, 5):
        changed = tgt.clone()
        changed[:, t] = (changed[:, t] + 1 - 3) % (V - 3) + 3
        out = model(images, changed)
        torch.testing.assert_close(out[:, :t], base[:, :t])
        assert not torch.allclose(out[:, t:], base[:, t:])


@pytest.mark.parametrize("positional", ["learned", "sinusoidal"])
def test_incremental_decoding_equals_full_forward(positional):
    model = small(positional=positional)
    images, tgt = inputs(T=6)
    full = model(images, tgt)
    with torch.no_grad():
        memory = model.encode(images)
        caches = model.new_caches()
        steps = [model.decode(tgt[:, t : t + 1], memory, caches=caches, offset=t) for t in range(6)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="offset"):
        model.decode(tgt[:, :1], memory, caches=caches, offset=0)


def test_cross_attention_rows_sum_to_one_and_match_by_hand():
    model = small()
    images, tgt = inputs()
    weights = model.cross_attention_weights(images, tgt)
    for w in weights:
        torch.testing.assert_close(w.sum(-1), torch.ones(3, 4, 5))
        assert (w >= 0).all()
    # recompute the first layer's cross-attention from its projections
    layer = model.decoder.layers[0]
    with torch.no_grad():
        memory = model.encode(images)
        y = model.tok_embed(tgt) * math.sqrt(32) + model.pos.emb.weight[:5]
        h = y + layer.self_attn(layer.norm1(y), is_causal=True)[0]
        q = layer.cross_attn.q_proj(layer.norm2(h)).view(3, 5, 4, 8).transpose(1, 2)
        k = layer.cross_attn.k_proj(memory).view(3, 12, 4, 8).transpose(1, 2)
        by_hand = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(8), dim=-1)
    torch.testing.assert_close(weights[0], by_hand, rtol=1e-5, atol=1e-6)


def test_each_patch_reaches_the_text():
    # cross-attention is the only path from the image: changing one patch changes logits
    model = small()
    images, tgt = inputs(B=1)
    base = model(images, tgt)
    for n in (0, 5, 11):
        r, c = divmod(n, 6)
        other = images.clone()
        other[..., 4 * r : 4 * r + 4, 4 * c : 4 * c + 4] += 1.0
        assert not torch.allclose(model(other, tgt), base)


def test_gradient_flows_to_the_encoder():
    model = small().train()
    images, _ = inputs()
    tgt_in, tgt_out = ds.target_tensors([342, 17, 999])
    model.loss(images, tgt_in, tgt_out).backward()
    for name in (
        "encoder.patch_embed.proj.weight",
        "encoder.pos_embed",
        "encoder.encoder.layers.0.self_attn.q_proj.weight",
        "tok_embed.weight",
    ):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_loss_ignores_padding():
    model = small()
    images, _ = inputs()
    tgt_in, tgt_out = ds.target_tensors([342, 17, 999])
    logits = model(images, tgt_in)
    real = tgt_out != ds.PAD_ID
    want = F.cross_entropy(logits[real], tgt_out[real])
    torch.testing.assert_close(model.loss(images, tgt_in, tgt_out), want)


def test_greedy_with_and_without_cache():
    model = small()
    images, _ = inputs(B=6, seed=4)
    cached = greedy_caption(model, images, bos_id=ds.BOS_ID, eos_id=ds.EOS_ID, max_len=8)
    again = greedy_caption(
        model, images, bos_id=ds.BOS_ID, eos_id=ds.EOS_ID, max_len=8, use_cache=False
    )
    assert cached.shape[0] == 6 and cached.shape[1] <= 8 and torch.equal(cached, again)
    # the first generated token is the argmax of the full forward after BOS
    bos = torch.full((6, 1), ds.BOS_ID)
    assert torch.equal(cached[:, 0], model(images, bos)[:, 0].argmax(-1))


def test_greedy_pads_after_eos_and_restores_mode():
    model = small().train()
    with torch.no_grad():  # make EOS the argmax after the first word: bias the output
        model.decoder.norm.bias.zero_()
    images, _ = inputs(B=2)
    out = greedy_caption(model, images, bos_id=ds.BOS_ID, eos_id=ds.EOS_ID, max_len=8)
    assert model.training
    for row in out.tolist():
        if ds.EOS_ID in row:
            after = row[row.index(ds.EOS_ID) + 1 :]
            assert all(t == ds.PAD_ID for t in after)


def test_errors():
    with pytest.raises(ValueError, match="num_classes must be 0"):
        ImageToText(dataclasses.replace(VIT, num_classes=10), V)
    with pytest.raises(TypeError, match="ViTConfig"):
        ImageToText({"d_model": 32}, V)
    with pytest.raises(ValueError, match="divisible by num_heads"):
        ImageToText(VIT, V, num_heads=5)
    with pytest.raises(ValueError, match="pad_id"):
        ImageToText(VIT, 5, pad_id=5)
    with pytest.raises(ValueError, match="positional"):
        ImageToText(VIT, V, positional="rotary")
    model = small()
    images, tgt = inputs()
    with pytest.raises(ValueError, match=r"\(B, 1, 8, 24\)"):
        model(torch.rand(3, 1, 8, 8), tgt)
    with pytest.raises(ValueError, match="vocabulary"):
        model(images, tgt + V)
    with pytest.raises(TypeError, match="integer token ids"):
        model(images, tgt.float())
    with pytest.raises(ValueError, match="max_len=8"):
        model(images, torch.ones(3, 9, dtype=torch.long))
    with pytest.raises(ValueError, match="same batch size"):
        model.decode(tgt, model.encode(images[:2]))
    with pytest.raises(ValueError, match="max_len"):
        greedy_caption(model, images, bos_id=1, eos_id=2, max_len=9)
    with pytest.raises(ValueError, match="eos_id"):
        greedy_caption(model, images, bos_id=1, eos_id=V, max_len=5)
    with pytest.raises(TypeError, match="ImageToText"):
        greedy_caption(torch.nn.Linear(2, 2), images, bos_id=1, eos_id=2, max_len=5)


def test_tiny_overfit():
    """Eight strips learned perfectly in a few seconds."""
    strips = ds.make_strips(digit_splits().train, 8, seed=0)
    ak.seed_everything(0)
    model = ImageToText(VIT, V, num_decoder_layers=1, d_ff=64, max_len=8)
    batch = (strips.images, strips.tgt_in, strips.tgt_out)
    config = ak.TrainConfig(
        steps=400, lr=5e-3, weight_decay=0.0, warmup_steps=10, eval_every=400, progress=False
    )
    ak.train(model, lambda m, b: m.loss(*b), [batch], config)
    out = greedy_caption(model, strips.images, bos_id=ds.BOS_ID, eos_id=ds.EOS_ID, max_len=5)
    got = [ds.decode_ids(r) for r in out]
    assert got == [ds.number_to_words(n) for n in strips.numbers.tolist()]

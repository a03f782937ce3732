"""Tests of attnkit.models.vit: patches, patch embedding, the ViT, rollout, HF loading.

References are independent of attnkit: hand-made images whose pixel values encode their
position, ``nn.Linear`` on the patches, hand-computed rollouts, and Hugging Face
``transformers``' ViT built from a small config with random weights (nothing downloaded).
"""

import dataclasses

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from attnkit.models.vit import (
    PatchEmbedding,
    ViT,
    ViTConfig,
    attention_rollout,
    cls_rollout_map,
    load_hf_vit_state_dict,
    patchify,
    unpatchify,
)

SMALL = ViTConfig(
    image_size=16,
    patch_size=4,
    channels=1,
    d_model=32,
    num_heads=4,
    num_layers=2,
    d_ff=64,
    num_classes=10,
    dropout=0.0,
)
TOL = dict(rtol=1e-5, atol=1e-5)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# ----------------------------------------------------------------------------- patches


@settings(max_examples=40, deadline=None)
@given(
    b=st.integers(1, 3),
    c=st.integers(1, 4),
    p=st.integers(1, 5),
    gh=st.integers(1, 4),
    gw=st.integers(1, 4),
)
def test_patchify_unpatchify_invertible(b, c, p, gh, gw):
    g = torch.Generator().manual_seed(b * 1000 + c * 100 + p * 10 + gh + gw)
    images = torch.randn(b, c, gh * p, gw * p, generator=g)
    patches = patchify(images, p)
    assert patches.shape == (b, gh * gw, c * p * p)
    back = unpatchify(patches, p, (gh * p, gw * p), c)
    assert torch.equal(back, images)
    assert torch.equal(patchify(back, p), patches)


def test_patch_order_hand_made():
    # 2 channels, 4x6 image, 2x2 patches -> a 2x3 grid; pixel value = 100 c + 10 y + x
    c, y, x = torch.meshgrid(torch.arange(2), torch.arange(4), torch.arange(6), indexing="ij")
    image = (100 * c + 10 * y + x).float()[None]  # (1, 2, 4, 6)
    patches = patchify(image, 2)  # (1, 6, 8)
    assert patches.shape == (1, 6, 8)
    # patch 4 = grid row 1, column 1: pixels y in {2, 3}, x in {2, 3}; order (C, p, p)
    expected = [22, 23, 32, 33, 122, 123, 132, 133]
    assert patches[0, 4].tolist() == expected
    # patch 2 = row 0, column 2 (row-major numbering)
    assert patches[0, 2, :4].tolist() == [4, 5, 14, 15]
    assert patches[0, :, 0].tolist() == [0, 2, 4, 20, 22, 24]


def test_patch_embedding_equals_linear_on_patches():
    torch.manual_seed(0)
    emb = PatchEmbedding(patch_size=4, channels=3, d_model=8).double()
    images = torch.randn(2, 3, 8, 12, dtype=torch.float64)
    linear = nn.Linear(3 * 4 * 4, 8).double()
    with torch.no_grad():
        linear.weight.copy_(emb.proj.weight.reshape(8, -1))
        linear.bias.copy_(emb.proj.bias)
    expected = linear(patchify(images, 4))  # (B, N, d_model)
    torch.testing.assert_close(emb(images), expected, rtol=1e-12, atol=1e-12)


def test_patch_errors():
    with pytest.raises(ValueError, match="divisible by patch_size=4"):
        patchify(torch.randn(1, 1, 8, 6), 4)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        patchify(torch.randn(8, 8), 4)
    with pytest.raises(TypeError, match="floating-point"):
        patchify(torch.zeros(1, 1, 4, 4, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="patch_size must be a positive integer"):
        patchify(torch.randn(1, 1, 4, 4), 0)
    with pytest.raises(ValueError, match=r"\(B, 4, 12\)"):
        unpatchify(torch.randn(1, 4, 11), 2, 4, 3)
    with pytest.raises(ValueError, match="divisible"):
        unpatchify(torch.randn(1, 4, 12), 3, 4, 3)
    emb = PatchEmbedding(4, 3, 8)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        emb(torch.randn(1, 1, 8, 8))


# ------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(image_size=15), "divisible by patch_size"),
        (dict(num_heads=5), "divisible by num_heads"),
        (dict(num_classes=-1), "num_classes"),
        (dict(dropout=1.0), "dropout"),
        (dict(layer_norm_eps=0.0), "layer_norm_eps"),
        (dict(channels=0), "channels"),
    ],
)
def test_config_errors(change, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(SMALL, **change)


def test_config_frozen_and_grid():
    assert SMALL.grid == (4, 4) and SMALL.num_patches == 16
    assert ViTConfig().layer_norm_eps == 1e-12
    with pytest.raises(dataclasses.FrozenInstanceError):
        SMALL.d_model = 64  # type: ignore[misc]


# ------------------------------------------------------------------------------ the ViT


def test_vit_shapes_and_attention():
    torch.manual_seed(0)
    model = ViT(SMALL).eval()
    images = torch.randn(3, 1, 16, 16)
    logits = model(images)
    assert logits.shape == (3, 10)
    out, attn = model(images, return_attention=True)
    torch.testing.assert_close(out, logits)
    assert len(attn) == 2
    for w in attn:
        assert w.shape == (3, 4, 17, 17)
        torch.testing.assert_close(w.sum(-1), torch.ones(3, 4, 17))
    layer = model.encoder.layers[0]
    assert layer.norm_first and layer.ff.activation == "gelu"
    assert layer.norm1.eps == 1e-12 and model.encoder.norm is not None


def test_vit_without_head_returns_hidden_states():
    model = ViT(dataclasses.replace(SMALL, num_classes=0)).eval()
    assert model.head is None
    h = model(torch.randn(2, 1, 16, 16))
    assert h.shape == (2, 17, 32)


def test_vit_class_token_depends_on_every_patch():
    # the head reads the class token; changing any one patch must change the logits
    torch.manual_seed(1)
    model = ViT(SMALL).eval()
    images = torch.randn(1, 1, 16, 16)
    base = model(images)
    for n in (0, 5, 15):
        other = images.clone()
        r, c = divmod(n, 4)
        other[..., 4 * r : 4 * r + 4, 4 * c : 4 * c + 4] += 1.0
        assert not torch.allclose(model(other), base)


def test_vit_input_errors():
    model = ViT(SMALL)
    with pytest.raises(ValueError, match=r"\(B, 1, 16, 16\)"):
        model(torch.randn(2, 3, 16, 16))
    with pytest.raises(ValueError, match=r"\(B, 1, 16, 16\)"):
        model(torch.randn(2, 1, 8, 8))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        model(torch.randn(1, 16, 16))
    with pytest.raises(TypeError, match="dtype"):
        model(torch.randn(1, 1, 16, 16, dtype=torch.float64))
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        model([[0.0]])
    with pytest.raises(TypeError, match="ViTConfig"):
        ViT({"image_size": 16})


# ----------------------------------------------------------------------------- rollout


def _stochastic(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(*shape, generator=g, dtype=torch.float64), dim=-1)


def test_rollout_rows_sum_to_one():
    attn = [_stochastic(2, 3, 5, 5, seed=s) for s in range(3)]
    for residual in (True, False):
        r = attention_rollout(attn, residual=residual)
        assert r.shape == (2, 5, 5)
        torch.testing.assert_close(r.sum(-1), torch.ones(2, 5, dtype=torch.float64))


def test_rollout_hand_computed_two_layers():
    # layer 1: two heads, mean [[0.5, 0.5], [0.25, 0.75]]; layer 2: one head
    w1 = torch.tensor([[[[1.0, 0.0], [0.5, 0.5]], [[0.0, 1.0], [0.0, 1.0]]]])  # (1, 2, 2, 2)
    w2 = torch.tensor([[[[0.0, 1.0], [1.0, 0.0]]]])  # (1, 1, 2, 2)
    # with the residual: A = (mean + I) / 2
    a1 = torch.tensor([[0.75, 0.25], [0.125, 0.875]])
    a2 = torch.tensor([[0.5, 0.5], [0.5, 0.5]])
    torch.testing.assert_close(attention_rollout([w1, w2])[0], a2 @ a1)
    # = [[0.4375, 0.5625], [0.4375, 0.5625]]
    torch.testing.assert_close(
        attention_rollout([w1, w2])[0], torch.tensor([[0.4375, 0.5625], [0.4375, 0.5625]])
    )
    # without the residual: layer 2 swaps the rows of layer 1's mean; order matters
    m1 = torch.tensor([[0.5, 0.5], [0.25, 0.75]])
    expected = torch.tensor([[0.25, 0.75], [0.5, 0.5]])
    torch.testing.assert_close(attention_rollout([w1, w2], residual=False)[0], expected)
    assert not torch.allclose(attention_rollout([w2, w1], residual=False)[0], expected)
    torch.testing.assert_close(w2[0, 0] @ m1, expected)


def test_rollout_one_layer_no_residual_is_head_mean():
    w = _stochastic(2, 4, 6, 6)
    torch.testing.assert_close(attention_rollout([w], residual=False), w.mean(1))
    torch.testing.assert_close(attention_rollout([w], head_fusion="max", residual=False), w.amax(1))


def test_rollout_of_vit_and_cls_map():
    torch.manual_seed(0)
    model = ViT(SMALL).eval()
    _, attn = model(torch.randn(2, 1, 16, 16), return_attention=True)
    r = attention_rollout(attn)
    assert r.shape == (2, 17, 17)
    torch.testing.assert_close(r.sum(-1), torch.ones(2, 17))
    m = cls_rollout_map(r, SMALL.grid)
    assert m.shape == (2, 4, 4)
    assert torch.equal(m[:, 1, 2], r[:, 0, 1 + 1 * 4 + 2])  # row-major patch order
    assert torch.equal(cls_rollout_map(r, 4), m)


def test_rollout_errors():
    w = _stochastic(1, 2, 5, 5)
    with pytest.raises(ValueError, match="at least one layer"):
        attention_rollout([])
    with pytest.raises(TypeError, match="list of per-layer"):
        attention_rollout(w)
    with pytest.raises(ValueError, match="head_fusion"):
        attention_rollout([w], head_fusion="median")
    with pytest.raises(ValueError, match=r"attentions\[1\]"):
        attention_rollout([w, _stochastic(1, 2, 4, 4)])
    with pytest.raises(ValueError, match=r"\(B, H, T, T\)"):
        attention_rollout([w[0]])
    with pytest.raises(ValueError, match=r"\(B, 17, 17\)"):
        cls_rollout_map(w[:, 0], (4, 4))


# ------------------------------------------------------------------------- Hugging Face


def _hf_config(**kw):
    transformers = pytest.importorskip("transformers")
    return transformers, transformers.ViTConfig(
        image_size=16,
        patch_size=4,
        num_channels=1,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        num_labels=10,
        **kw,
    )


def _randomize_biases(model: nn.Module) -> None:
    """HF initialises biases and LayerNorms to 0/1: perturb them so that the test sees
    every parameter (a wrongly mapped bias would otherwise go unnoticed)."""
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "layernorm" in name or "cls_token" in name:
                p.add_(0.1 * torch.randn(p.shape, generator=g))


def test_hf_classification_equivalence():
    transformers, cfg = _hf_config()
    torch.manual_seed(0)
    hf = transformers.ViTForImageClassification(cfg).eval()
    _randomize_biases(hf)
    ours = load_hf_vit_state_dict(ViT(SMALL), hf.state_dict()).eval()
    images = torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        out = hf(pixel_values=images, output_hidden_states=True)
        logits = ours(images)
        hidden, _ = ours.forward_features(images)
    torch.testing.assert_close(logits, out.logits, **TOL)
    last = hf.vit.layernorm(out.hidden_states[-1])  # ViTModel's last_hidden_state
    torch.testing.assert_close(hidden, last, **TOL)


def test_hf_model_without_head_equivalence():
    transformers, cfg = _hf_config()
    torch.manual_seed(1)
    hf = transformers.ViTModel(cfg).eval()  # no "vit." prefix; has a pooler (ignored)
    _randomize_biases(hf)
    ours = ViT(dataclasses.replace(SMALL, num_classes=0))
    load_hf_vit_state_dict(ours, hf.state_dict())
    images = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        expected = hf(pixel_values=images).last_hidden_state
        got = ours.eval()(images)
    torch.testing.assert_close(got, expected, **TOL)


def test_hf_old_key_names_are_understood():
    # transformers < 5 named the layers encoder.layer.i.attention.attention.query etc.
    transformers, cfg = _hf_config()
    torch.manual_seed(2)
    hf = transformers.ViTForImageClassification(cfg).eval()
    _randomize_biases(hf)
    renames = {
        "vit.layers.": "vit.encoder.layer.",
        ".attention.q_proj.": ".attention.attention.query.",
        ".attention.k_proj.": ".attention.attention.key.",
        ".attention.v_proj.": ".attention.attention.value.",
        ".attention.o_proj.": ".attention.output.dense.",
        ".mlp.fc1.": ".intermediate.dense.",
        ".mlp.fc2.": ".output.dense.",
    }
    old = {}
    for k, v in hf.state_dict().items():
        for a, b in renames.items():
            k = k.replace(a, b)
        old[k] = v
    if not any(k.startswith("vit.encoder.layer.0.attention.attention.query") for k in old):
        pytest.skip("this transformers version already uses the old names")
    ours = load_hf_vit_state_dict(ViT(SMALL), old).eval()
    images = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(ours(images), hf(pixel_values=images).logits, **TOL)


def test_hf_loading_errors():
    transformers, cfg = _hf_config()
    sd = transformers.ViTForImageClassification(cfg).state_dict()
    with pytest.raises(ValueError, match=r"Missing keys: none\. Unexpected keys:.*classifier"):
        load_hf_vit_state_dict(ViT(dataclasses.replace(SMALL, num_classes=0)), sd)
    partial = {k: v for k, v in sd.items() if "layernorm_after" not in k}
    partial["vit.extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"layers\.0\.layernorm_after\.weight.*extra\.weight"):
        load_hf_vit_state_dict(ViT(SMALL), partial)
    model = ViT(dataclasses.replace(SMALL, num_classes=7))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"classifier\.weight"):
        load_hf_vit_state_dict(model, sd)
    for k, v in model.state_dict().items():  # nothing was copied
        assert torch.equal(v, before[k])
    with pytest.raises(TypeError, match="attnkit ViT"):
        load_hf_vit_state_dict(nn.Linear(2, 2), sd)


# ------------------------------------------------------------------- rectangular images

RECT = dataclasses.replace(SMALL, image_size=(8, 24))  # a 2 x 6 grid of 4 x 4 patches


def test_rectangular_config():
    assert RECT.image_hw == (8, 24) and RECT.grid == (2, 6) and RECT.num_patches == 12
    assert SMALL.image_hw == (16, 16) and SMALL.image_size == 16  # ints stay ints
    listed = dataclasses.replace(SMALL, image_size=[8, 24])
    assert listed.image_size == (8, 24) and hash(listed) == hash(RECT)
    assert dataclasses.replace(SMALL, image_size=(24, 8)).grid == (6, 2)
    with pytest.raises(ValueError, match=r"divisible by patch_size=4 \(height 8 and width 22\)"):
        dataclasses.replace(SMALL, image_size=(8, 22))
    with pytest.raises(ValueError, match="pair"):
        dataclasses.replace(SMALL, image_size=(8, 8, 8))
    with pytest.raises(ValueError, match="image_size"):
        dataclasses.replace(SMALL, image_size=(8, 0))


def test_rectangular_vit_shapes_and_errors():
    torch.manual_seed(0)
    model = ViT(RECT).eval()
    assert model.pos_embed.shape == (1, 13, 32)
    out, attn = model(torch.randn(2, 1, 8, 24), return_attention=True)
    assert out.shape == (2, 10) and all(w.shape == (2, 4, 13, 13) for w in attn)
    with pytest.raises(ValueError, match=r"\(B, 1, 8, 24\)"):
        model(torch.randn(2, 1, 24, 8))  # transposed
    with pytest.raises(ValueError, match=r"\(B, 1, 8, 24\)"):
        model(torch.randn(2, 1, 16, 16))
    r = attention_rollout(attn)
    assert cls_rollout_map(r, RECT.grid).shape == (2, 2, 6)


def test_rectangular_vit_patch_order_is_row_major():
    # hidden state of token 1 + n belongs to grid cell (n // 6, n % 6): without attention
    # (one layer whose attention output is zeroed) only that token changes.
    torch.manual_seed(2)
    model = ViT(dataclasses.replace(RECT, num_layers=1, num_classes=0)).eval()
    model.encoder.layers[0].self_attn.register_forward_hook(
        lambda m, args, out: (torch.zeros_like(out[0]), out[1])
    )
    images = torch.randn(1, 1, 8, 24)
    base = model(images)
    for n in (0, 4, 7, 11):
        r, c = divmod(n, 6)
        other = images.clone()
        other[..., 4 * r : 4 * r + 4, 4 * c : 4 * c + 4] += 1.0
        changed = (model(other) - base).abs().amax(-1)[0] > 1e-6  # (13,)
        assert changed.nonzero().flatten().tolist() == [1 + n]


def test_hf_rectangular_equivalence():
    transformers, cfg = _hf_config()
    cfg.image_size = (8, 24)
    torch.manual_seed(4)
    hf = transformers.ViTForImageClassification(cfg).eval()
    _randomize_biases(hf)
    ours = load_hf_vit_state_dict(ViT(RECT), hf.state_dict()).eval()
    images = torch.randn(3, 1, 8, 24)
    with torch.no_grad():
        torch.testing.assert_close(ours(images), hf(pixel_values=images).logits, **TOL)
    with pytest.raises(ValueError, match="shape mismatch"):
        load_hf_vit_state_dict(ViT(SMALL), hf.state_dict())  # 17 positions vs 13

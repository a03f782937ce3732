"""Tests of attnkit.transformer: layers, stacks, Seq2SeqTransformer and TransformerLM.

References are independent of attnkit: ``torch.nn.TransformerEncoderLayer`` /
``TransformerDecoderLayer`` / ``TransformerEncoder`` / ``TransformerDecoder`` with the same
weights, full recomputation for the key/value caches, and invariances (causality,
permutation equivariance) that hold whatever the weights.

torch's encoder layer has a "fast path" (``torch._transformer_encoder_layer_fwd``) that
it takes in eval mode without gradients; each comparison is made both against it and
against the ordinary path (``torch.backends.mha.set_fastpath_enabled(False)``). torch's
encoder *stack* has a nested-tensor fast path which returns 0 at padded positions; there
only the real positions are compared.
"""

import contextlib
import copy
import math
import warnings

import pytest
import torch
from torch import nn

from attnkit.multihead import KVCache
from attnkit.positional import RotaryEmbedding
from attnkit.transformer import (
    FeedForward,
    Seq2SeqTransformer,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
    TransformerLM,
)

D_MODEL, HEADS, D_FF = 16, 4, 32
TOL = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float64: dict(rtol=1e-12, atol=1e-12)}
CACHE_TOL = dict(rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------------------- helpers


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@contextlib.contextmanager
def fastpath(enabled: bool):
    """Run torch's modules with their fast paths enabled or disabled (restored after)."""
    before = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(enabled)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(before)


def randomize_(module: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter random values (torch zero-initialises biases and sets the
    LayerNorms to 1/0, which would hide a parameter that is not copied)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
    return module


def right_padding(lengths, T):
    """Bool (B, T), True on the first lengths[b] positions (attnkit's convention)."""
    return torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]


def torch_causal(T):
    """torch's bool causal mask: True = may NOT attend (the same type as its padding mask)."""
    return torch.ones(T, T, dtype=torch.bool).triu(1)


def seeded(seed=0):
    torch.manual_seed(seed)


# ------------------------------------------------------------------------ FeedForward


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_feed_forward_is_linear_act_linear(activation):
    seeded()
    ff = FeedForward(D_MODEL, D_FF, activation=activation).double()
    x = torch.randn(2, 5, D_MODEL, dtype=torch.float64)
    act = torch.relu if activation == "relu" else nn.functional.gelu
    h = act(x @ ff.linear1.weight.T + ff.linear1.bias)
    expected = h @ ff.linear2.weight.T + ff.linear2.bias
    torch.testing.assert_close(ff(x), expected, rtol=1e-13, atol=1e-13)


def test_feed_forward_rejects_unknown_activation():
    with pytest.raises(ValueError, match="activation"):
        FeedForward(D_MODEL, D_FF, activation="swish")


# ---------------------------------------------------------------- encoder layer vs torch

MASK_KINDS = ["none", "padding", "causal", "padding+causal"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mask_kind", MASK_KINDS)
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_matches_torch(norm_first, activation, mask_kind, dtype):
    seeded(1)
    theirs = nn.TransformerEncoderLayer(
        D_MODEL,
        HEADS,
        D_FF,
        dropout=0.0,
        activation=activation,
        batch_first=True,
        norm_first=norm_first,
        dtype=dtype,
    )
    randomize_(theirs).eval()
    ours = TransformerEncoderLayer.from_torch(theirs).eval()
    B, T = 3, 6
    x = torch.randn(B, T, D_MODEL, dtype=dtype)
    real = right_padding([6, 4, 1], T) if "padding" in mask_kind else None
    causal = "causal" in mask_kind
    our_out, weights = ours(x, key_padding_mask=real, is_causal=causal)
    assert weights is None
    kwargs = dict(
        src_mask=torch_causal(T) if causal else None,
        src_key_padding_mask=None if real is None else ~real,  # torch: True = padding
        is_causal=causal,
    )
    for enabled in (False, True):
        with fastpath(enabled), torch.no_grad():
            their_out = theirs(x, **kwargs)
        torch.testing.assert_close(our_out, their_out, **TOL[dtype])


def test_encoder_layer_matches_torch_in_training_mode_without_dropout():
    """Training mode takes torch's ordinary path, with gradients: compare those too."""
    seeded(2)
    theirs = randomize_(
        nn.TransformerEncoderLayer(D_MODEL, HEADS, D_FF, dropout=0.0, batch_first=True)
    ).double()
    ours = TransformerEncoderLayer.from_torch(theirs)
    x = torch.randn(2, 5, D_MODEL, dtype=torch.float64, requires_grad=True)
    ours(x)[0].pow(2).sum().backward()
    g_ours, x.grad = x.grad, None
    theirs(x).pow(2).sum().backward()
    torch.testing.assert_close(g_ours, x.grad, **TOL[torch.float64])
    assert all(p.grad is not None for p in ours.parameters())
    torch.testing.assert_close(ours.ff.linear1.weight.grad, theirs.linear1.weight.grad)
    torch.testing.assert_close(ours.norm1.weight.grad, theirs.norm1.weight.grad)


def test_encoder_layer_returns_attention_weights():
    seeded(3)
    layer = TransformerEncoderLayer(D_MODEL, HEADS, D_FF).eval()
    x = torch.randn(2, 5, D_MODEL)
    out, weights = layer(x, is_causal=True, need_weights=True)
    assert out.shape == x.shape and weights.shape == (2, HEADS, 5, 5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, HEADS, 5))
    assert torch.all(weights.triu(1) == 0)  # causal: nothing above the diagonal


# ---------------------------------------------------------------- decoder layer vs torch


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_matches_torch(norm_first, activation, dtype):
    seeded(4)
    theirs = nn.TransformerDecoderLayer(
        D_MODEL,
        HEADS,
        D_FF,
        dropout=0.0,
        activation=activation,
        batch_first=True,
        norm_first=norm_first,
        dtype=dtype,
    )
    randomize_(theirs).eval()
    ours = TransformerDecoderLayer.from_torch(theirs).eval()
    B, T, S = 3, 5, 7
    x = torch.randn(B, T, D_MODEL, dtype=dtype)
    memory = torch.randn(B, S, D_MODEL, dtype=dtype)
    tgt_real = right_padding([5, 3, 2], T)
    src_real = right_padding([7, 2, 5], S)
    our_out, _ = ours(
        x, memory, self_key_padding_mask=tgt_real, memory_key_padding_mask=src_real
    )  # is_causal=True is the default
    for enabled in (False, True):
        with fastpath(enabled), torch.no_grad():
            their_out = theirs(
                x,
                memory,
                tgt_mask=torch_causal(T),
                tgt_key_padding_mask=~tgt_real,
                memory_key_padding_mask=~src_real,
                tgt_is_causal=True,
            )
        torch.testing.assert_close(our_out, their_out, **TOL[dtype])


def test_decoder_layer_cross_attention_weights_ignore_padded_memory():
    seeded(5)
    layer = TransformerDecoderLayer(D_MODEL, HEADS, D_FF).eval()
    x, memory = torch.randn(2, 3, D_MODEL), torch.randn(2, 4, D_MODEL)
    src_real = right_padding([4, 2], 4)
    _, weights = layer(x, memory, memory_key_padding_mask=src_real, need_weights=True)
    assert weights.shape == (2, HEADS, 3, 4)
    assert torch.all(weights[1, :, :, 2:] == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, HEADS, 3))


# ------------------------------------------------------------------ stacks vs torch


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_stack_matches_torch(norm_first):
    seeded(6)
    layer = nn.TransformerEncoderLayer(
        D_MODEL, HEADS, D_FF, dropout=0.0, batch_first=True, norm_first=norm_first
    )
    final = nn.LayerNorm(D_MODEL, eps=1e-6) if norm_first else None
    with warnings.catch_warnings():  # torch: "enable_nested_tensor is True, but ..."
        warnings.simplefilter("ignore", UserWarning)
        theirs = nn.TransformerEncoder(layer, num_layers=3, norm=final)
    randomize_(theirs).eval()  # after the deep copies: the layers differ
    ours = TransformerEncoder.from_torch(theirs).eval()
    assert (ours.norm is not None) == norm_first and len(ours.layers) == 3
    x = torch.randn(3, 6, D_MODEL)
    real = right_padding([6, 3, 5], 6)
    our_out, _ = ours(x, key_padding_mask=real)
    with fastpath(False), torch.no_grad():
        torch.testing.assert_close(our_out, theirs(x, src_key_padding_mask=~real), **TOL[x.dtype])
    with warnings.catch_warnings(), torch.no_grad():  # nested tensors are a "prototype"
        warnings.simplefilter("ignore", UserWarning)
        fast = theirs(x, src_key_padding_mask=~real)
    torch.testing.assert_close(our_out[real], fast[real], **TOL[x.dtype])


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_stack_matches_torch(norm_first):
    seeded(7)
    layer = nn.TransformerDecoderLayer(
        D_MODEL, HEADS, D_FF, dropout=0.0, batch_first=True, norm_first=norm_first
    )
    final = nn.LayerNorm(D_MODEL) if norm_first else None
    theirs = randomize_(nn.TransformerDecoder(layer, num_layers=2, norm=final)).double().eval()
    ours = TransformerDecoder.from_torch(theirs).eval()
    x, memory = torch.randn(2, 5, D_MODEL).double(), torch.randn(2, 4, D_MODEL).double()
    src_real = right_padding([4, 2], 4)
    our_out, _ = ours(x, memory, memory_key_padding_mask=src_real)
    with torch.no_grad():
        their_out = theirs(
            x,
            memory,
            tgt_mask=torch_causal(5),
            memory_key_padding_mask=~src_real,
            tgt_is_causal=True,
        )
    torch.testing.assert_close(our_out, their_out, **TOL[torch.float64])


# ------------------------------------------------------------------------- from_torch


def test_from_torch_refuses_custom_activation_and_bias_false():
    custom = nn.TransformerEncoderLayer(D_MODEL, HEADS, D_FF, activation=torch.tanh)
    with pytest.raises(ValueError, match="custom activation"):
        TransformerEncoderLayer.from_torch(custom)
    tanh_gelu = nn.TransformerDecoderLayer(D_MODEL, HEADS, D_FF, activation=nn.GELU("tanh"))
    with pytest.raises(ValueError, match="relu and gelu"):
        TransformerDecoderLayer.from_torch(tanh_gelu)
    no_bias = nn.TransformerEncoderLayer(D_MODEL, HEADS, D_FF, bias=False, batch_first=True)
    with pytest.raises(ValueError, match="bias=False"):
        TransformerEncoderLayer.from_torch(no_bias)
    with pytest.raises(TypeError, match="TransformerEncoderLayer"):
        TransformerEncoderLayer.from_torch(nn.TransformerDecoderLayer(D_MODEL, HEADS, D_FF))


def test_from_torch_accepts_module_activations():
    layer = nn.TransformerEncoderLayer(D_MODEL, HEADS, D_FF, activation=nn.GELU())
    with pytest.warns(UserWarning, match="batch-first"):
        assert TransformerEncoderLayer.from_torch(layer).ff.activation == "gelu"


def test_from_torch_of_a_sequence_first_layer_warns_and_computes_the_same():
    seeded(8)
    theirs = randomize_(nn.TransformerEncoderLayer(D_MODEL, HEADS, D_FF, dropout=0.0)).eval()
    with pytest.warns(UserWarning, match=r"batch-first inputs \(B, T, d_model\)"):
        ours = TransformerEncoderLayer.from_torch(theirs)
    x = torch.randn(5, 2, D_MODEL)  # (T, B, d_model) for torch
    with torch.no_grad():
        expected = theirs(x).transpose(0, 1)
    torch.testing.assert_close(ours(x.transpose(0, 1))[0], expected, **TOL[torch.float32])


# ------------------------------------------------------------------------- gradcheck


@pytest.mark.parametrize("norm_first", [False, True])
def test_gradcheck_encoder_layer(norm_first):
    seeded(9)
    layer = TransformerEncoderLayer(8, 2, 12, activation="gelu", norm_first=norm_first)
    layer = randomize_(layer).double()
    x = torch.randn(2, 3, 8, dtype=torch.float64, requires_grad=True)
    real = right_padding([3, 2], 3)
    assert torch.autograd.gradcheck(
        lambda x: layer(x, key_padding_mask=real, is_causal=True)[0], (x,)
    )


def test_gradcheck_decoder_layer():
    seeded(10)
    layer = randomize_(TransformerDecoderLayer(8, 2, 12, norm_first=True)).double()
    x = torch.randn(2, 3, 8, dtype=torch.float64, requires_grad=True)
    memory = torch.randn(2, 4, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, m: layer(x, m)[0], (x, memory))


# ---------------------------------------------------------- incremental decoding (caches)


@pytest.mark.parametrize("rotary", [False, True])
@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_with_caches_equals_full_recomputation(norm_first, rotary):
    seeded(11)
    layer = TransformerDecoderLayer(
        D_MODEL,
        HEADS,
        D_FF,
        norm_first=norm_first,
        num_kv_heads=2,
        rotary=RotaryEmbedding(D_MODEL // HEADS) if rotary else None,
    )
    layer = randomize_(layer).double().eval()
    B, T, S = 2, 6, 5
    x = torch.randn(B, T, D_MODEL, dtype=torch.float64)
    memory = torch.randn(B, S, D_MODEL, dtype=torch.float64)
    src_real = right_padding([5, 3], S)
    full, full_w = layer(x, memory, memory_key_padding_mask=src_real, need_weights=True)
    self_cache, cross_cache = layer.new_caches()
    steps, weights = [], []
    for t in range(T):
        out, w = layer(
            x[:, t : t + 1],
            memory,
            memory_key_padding_mask=src_real,
            self_cache=self_cache,
            cross_cache=cross_cache,
            need_weights=True,
        )
        steps.append(out)
        weights.append(w)
    assert len(self_cache) == T and len(cross_cache) == S
    torch.testing.assert_close(torch.cat(steps, dim=1), full, **CACHE_TOL)
    torch.testing.assert_close(torch.cat(weights, dim=2), full_w, **CACHE_TOL)


def small_seq2seq(positional="sinusoidal", **kwargs):
    seeded(12)
    args = dict(d_model=D_MODEL, num_heads=HEADS, d_ff=D_FF, dropout=0.0, max_len=32)
    args.update(kwargs)
    return Seq2SeqTransformer(11, 13, positional=positional, **args).double().eval()


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("positional", ["sinusoidal", "learned"])
def test_seq2seq_decode_with_caches_equals_full(positional, norm_first):
    model = small_seq2seq(positional, norm_first=norm_first)
    src = torch.tensor([[3, 4, 5, 6, 2], [7, 8, 2, 0, 0]])  # 0 = padding
    tgt = torch.tensor([[1, 5, 6, 7, 8, 9], [1, 4, 3, 2, 0, 0]])
    mask = src != 0
    memory = model.encode(src)  # default mask: src != pad_id
    full = model.decode(tgt, memory, mask)
    caches = model.new_caches()
    # a prefix of 2 at once, then one position at a time
    first = model.decode(tgt[:, :2], memory, mask, caches=caches, offset=0)
    rest = [
        model.decode(tgt[:, t : t + 1], memory, mask, caches=caches, offset=t)
        for t in range(2, tgt.shape[1])
    ]
    torch.testing.assert_close(torch.cat([first, *rest], dim=1), full, **CACHE_TOL)


def small_lm(positional="learned", **kwargs):
    seeded(13)
    args = dict(d_model=D_MODEL, num_heads=HEADS, num_layers=2, d_ff=D_FF, dropout=0.0)
    args.update(max_len=32, **kwargs)
    return TransformerLM(17, positional=positional, **args).double().eval()


@pytest.mark.parametrize("num_kv_heads", [None, 1])
@pytest.mark.parametrize("positional", ["learned", "sinusoidal", "rotary", "alibi"])
def test_lm_with_caches_equals_full(positional, num_kv_heads):
    model = small_lm(positional, num_kv_heads=num_kv_heads)
    idx = torch.randint(0, 17, (2, 9), generator=torch.Generator().manual_seed(0))
    full = model(idx)
    caches = model.new_caches()
    chunks = [model(idx[:, :4], caches=caches)]
    chunks += [model(idx[:, t : t + 1], caches=caches, offset=t) for t in range(4, 9)]
    assert len(caches[0]) == 9
    torch.testing.assert_close(torch.cat(chunks, dim=1), full, **CACHE_TOL)


def test_gqa_cache_is_smaller():
    mha, gqa = small_lm("rotary"), small_lm("rotary", num_kv_heads=1)
    idx = torch.zeros(1, 5, dtype=torch.long)
    c_mha, c_gqa = mha.new_caches(), gqa.new_caches()
    mha(idx, caches=c_mha), gqa(idx, caches=c_gqa)
    assert c_mha[0].nbytes == HEADS * c_gqa[0].nbytes


def test_caches_need_the_matching_offset():
    model = small_lm("learned")
    caches = model.new_caches()
    model(torch.zeros(1, 3, dtype=torch.long), caches=caches)
    with pytest.raises(ValueError, match="offset=0 but the caches already hold 3"):
        model(torch.zeros(1, 1, dtype=torch.long), caches=caches)
    with pytest.raises(ValueError, match="one entry per layer"):
        model(torch.zeros(1, 1, dtype=torch.long), caches=caches[:1], offset=3)


# ------------------------------------------------------------------------- invariances


@pytest.mark.parametrize("positional", ["learned", "sinusoidal", "rotary", "alibi"])
def test_lm_is_causal(positional):
    model = small_lm(positional)
    idx = torch.randint(0, 17, (2, 8), generator=torch.Generator().manual_seed(1))
    changed = idx.clone()
    changed[:, 5] = (idx[:, 5] + 1) % 17
    a, b = model(idx), model(changed)
    torch.testing.assert_close(a[:, :5], b[:, :5], rtol=1e-12, atol=1e-12)
    assert (a[:, 5:] - b[:, 5:]).abs().amax() > 1e-3  # the change does reach later positions


def test_seq2seq_decoder_is_causal_and_ignores_padded_source():
    model = small_seq2seq()
    src = torch.tensor([[3, 4, 5, 2, 0, 0]])
    tgt = torch.tensor([[1, 5, 6, 7, 8]])
    logits = model(src, tgt)
    future = tgt.clone()
    future[0, 3] = 12
    changed = model(src, future)
    torch.testing.assert_close(logits[:, :3], changed[:, :3], rtol=1e-12, atol=1e-12)
    assert (logits[:, 3:] - changed[:, 3:]).abs().amax() > 1e-3
    # tokens under the padding mask do not matter (the default mask is src != pad_id)
    mask = src != 0
    other = src.clone()
    other[0, 4:] = 9
    torch.testing.assert_close(model(other, tgt, src_key_padding_mask=mask), logits)
    assert (model(other, tgt) - logits).abs().amax() > 1e-3  # ... unless they are real


def test_encoder_without_positions_is_permutation_equivariant():
    seeded(14)
    encoder = TransformerEncoder(
        lambda: TransformerEncoderLayer(D_MODEL, HEADS, D_FF, norm_first=True),
        num_layers=2,
        final_norm=True,
    )
    encoder = randomize_(encoder).double().eval()
    x = torch.randn(2, 7, D_MODEL, dtype=torch.float64)
    real = right_padding([7, 5], 7)
    perm = torch.tensor([3, 0, 6, 1, 5, 2, 4])
    out, _ = encoder(x, key_padding_mask=real)
    out_perm, _ = encoder(x[:, perm], key_padding_mask=real[:, perm])
    torch.testing.assert_close(out_perm, out[:, perm], rtol=1e-12, atol=1e-12)


def test_stack_layers_start_different_and_final_norm_is_explicit():
    encoder = TransformerEncoder(lambda: TransformerEncoderLayer(8, 2, 16), 2, final_norm=False)
    w0, w1 = (layer.ff.linear1.weight for layer in encoder.layers)
    assert encoder.norm is None and not torch.equal(w0, w1)
    with pytest.raises(TypeError, match="final_norm"):
        TransformerEncoder(lambda: TransformerEncoderLayer(8, 2, 16), 2, final_norm=None)
    with pytest.raises(TypeError, match="TransformerDecoderLayer"):
        TransformerDecoder(lambda: TransformerEncoderLayer(8, 2, 16), 2, final_norm=True)


# ----------------------------------------------------------------------------- models


def test_weight_tying_shares_one_tensor():
    lm = TransformerLM(17, d_model=16, num_heads=2, num_layers=1, d_ff=32)
    assert lm.lm_head.weight is lm.tok_embed.weight
    assert sum(p is lm.tok_embed.weight for p in lm.parameters()) == 1
    lm.loss(torch.randint(0, 17, (2, 6))).backward()
    opt = torch.optim.SGD(lm.parameters(), lr=1.0)
    opt.step()
    assert lm.lm_head.weight.data_ptr() == lm.tok_embed.weight.data_ptr()
    untied = TransformerLM(17, d_model=16, num_heads=2, num_layers=1, d_ff=32, tie_weights=False)
    assert untied.lm_head.weight is not untied.tok_embed.weight
    assert len(list(untied.parameters())) == len(list(lm.parameters())) + 1

    s2s = Seq2SeqTransformer(11, 13, d_model=16, num_heads=2, d_ff=32)
    assert s2s.out_proj.weight is s2s.tgt_embed.weight
    assert s2s.out_proj.weight is not s2s.src_embed.weight
    s2s_untied = Seq2SeqTransformer(11, 13, d_model=16, num_heads=2, tie_target_embeddings=False)
    assert s2s_untied.out_proj.weight is not s2s_untied.tgt_embed.weight


def test_initialisation_follows_gpt2():
    seeded(15)
    lm = TransformerLM(500, d_model=128, num_heads=4, num_layers=8, d_ff=512)
    block = lm.blocks.layers[0]
    assert abs(block.ff.linear1.weight.std().item() - 0.02) < 0.002
    assert abs(lm.tok_embed.weight.std().item() - 0.02) < 0.002
    residual = 0.02 / math.sqrt(2 * 8)
    assert abs(block.self_attn.out_proj.weight.std().item() - residual) < 0.1 * residual
    assert abs(block.ff.linear2.weight.std().item() - residual) < 0.1 * residual
    assert torch.all(block.ff.linear1.bias == 0) and torch.all(block.norm1.weight == 1)
    s2s = Seq2SeqTransformer(500, 500, d_model=128, positional="learned")
    assert abs(s2s.src_embed.weight.std().item() - 128**-0.5) < 0.01
    assert abs(s2s.tgt_embed.weight.std().item() - 128**-0.5) < 0.01
    assert abs(s2s.src_pos.emb.weight.std().item() - 0.02) < 0.002


def test_seq2seq_scales_embeddings_and_adds_positions():
    model = small_seq2seq(num_encoder_layers=1)
    src = torch.tensor([[3, 4, 5]])
    x = model.src_embed(src) * math.sqrt(D_MODEL) + model.src_pos.pe[:3].double()
    expected, _ = model.encoder(x)
    torch.testing.assert_close(model.encode(src), expected)


def test_lm_loss_is_next_token_cross_entropy():
    model = small_lm("rotary")
    idx = torch.randint(0, 17, (3, 7), generator=torch.Generator().manual_seed(2))
    logp = model(idx[:, :-1]).log_softmax(-1)
    expected = -logp.gather(-1, idx[:, 1:, None]).mean()
    torch.testing.assert_close(model.loss(idx), expected)


def test_lm_learns_a_repeating_sequence():
    seeded(16)
    model = TransformerLM(8, d_model=32, num_heads=2, num_layers=2, d_ff=64, dropout=0.0)
    idx = torch.arange(24).remainder(8)[None].repeat(4, 1)  # 0 1 2 ... 7 0 1 ...
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = model.loss(idx).item()
    for _ in range(60):
        opt.zero_grad()
        loss = model.loss(idx)
        loss.backward()
        opt.step()
    assert first > 1.8 and loss.item() < 0.1


def test_cross_attention_weights_per_layer():
    model = small_seq2seq(num_decoder_layers=3)
    src = torch.tensor([[3, 4, 5, 2], [6, 2, 0, 0]])
    tgt = torch.tensor([[1, 5, 6], [1, 7, 0]])
    weights = model.cross_attention_weights(src, tgt)
    assert len(weights) == 3
    for w in weights:
        assert w.shape == (2, HEADS, 3, 4)
        torch.testing.assert_close(w.sum(-1), torch.ones(2, HEADS, 3, dtype=w.dtype))
        assert torch.all(w[1, ..., 2:] == 0)  # padded source positions


def test_dropout_only_in_training_mode():
    seeded(17)
    model = TransformerLM(17, d_model=16, num_heads=2, num_layers=1, d_ff=32, dropout=0.3)
    idx = torch.randint(0, 17, (2, 6))
    assert not torch.equal(model(idx), model(idx))
    model.eval()
    assert torch.equal(model(idx), model(idx))


def test_errors_name_the_argument():
    model = small_lm("learned")
    with pytest.raises(TypeError, match="idx must hold integer token ids"):
        model(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="vocabulary has 17 entries"):
        model(torch.tensor([[3, 17]]))
    with pytest.raises(ValueError, match="max_len = 32"):
        model(torch.zeros(1, 33, dtype=torch.long))
    with pytest.raises(ValueError, match="positional must be one of"):
        TransformerLM(17, positional="relative")
    with pytest.raises(ValueError, match="d_model=30 must be divisible by num_heads=4"):
        TransformerLM(17, d_model=30)
    layer = TransformerEncoderLayer(D_MODEL, HEADS, D_FF)
    with pytest.raises(ValueError, match=r"x must have shape \(B, T, d_model\)"):
        layer(torch.randn(2, 5, D_MODEL + 1))
    with pytest.raises(TypeError, match="norm_first must be True or False"):
        TransformerEncoderLayer(D_MODEL, HEADS, D_FF, norm_first="yes")
    with pytest.raises(ValueError, match="layer_norm_eps"):
        TransformerEncoderLayer(D_MODEL, HEADS, D_FF, layer_norm_eps=0)
    decoder = TransformerDecoderLayer(D_MODEL, HEADS, D_FF)
    with pytest.raises(ValueError, match="same batch size"):
        decoder(torch.randn(2, 3, D_MODEL), torch.randn(3, 4, D_MODEL))
    cache = KVCache()
    assert len(cache) == 0


@pytest.mark.parametrize("positional", ["learned", "sinusoidal", "rotary", "alibi"])
def test_fused_attention_gives_the_same_language_model(positional):
    """ak.set_fused_attention only changes the kernel: same logits, loss and gradients."""
    import attnkit as ak

    torch.manual_seed(60)
    exact = ak.TransformerLM(
        13,
        d_model=16,
        num_heads=4,
        num_layers=2,
        d_ff=32,
        dropout=0.0,
        max_len=12,
        positional=positional,
    ).double()
    fused = copy.deepcopy(exact)
    ak.set_fused_attention(fused)
    idx = torch.randint(0, 13, (3, 10))
    losses = [m.loss(idx) for m in (exact, fused)]
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-12, atol=1e-12)
    for loss in losses:
        loss.backward()
    for a, b in zip(exact.parameters(), fused.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-12)

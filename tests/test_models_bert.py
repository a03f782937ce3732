"""Tests of attnkit.models.bert: BERT against Hugging Face ``transformers``, mask_tokens.

The reference models are ``transformers.BertModel`` / ``BertForMaskedLM`` /
``BertForPreTraining`` / ``BertForSequenceClassification`` built from a small config with
random weights (nothing is downloaded); their state dicts are loaded into attnkit and the
outputs compared at the real (non-padded) positions.
"""

import pytest
import torch
import torch.nn.functional as F

from attnkit.models.bert import (
    IGNORE_INDEX,
    BertConfig,
    BertForPreTraining,
    BertForSequenceClassification,
    BertModel,
    bert_config_from_hf,
    load_hf_bert_state_dict,
    mask_tokens,
    masked_lm_loss,
)

transformers = pytest.importorskip("transformers")

V, D, LAYERS, HEADS, D_FF, MAX_LEN = 97, 32, 2, 4, 64, 64
TOL = dict(rtol=1e-5, atol=1e-5)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def hf_config():
    return transformers.BertConfig(
        vocab_size=V,
        hidden_size=D,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=D_FF,
        max_position_embeddings=MAX_LEN,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )


def randomize_(model: torch.nn.Module, seed: int) -> None:
    """Non-trivial values everywhere (HF zeroes biases and sets LayerNorms to 1)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))


def batch(seed: int = 0):
    """ids (B, T), token types (B, T), and a padding mask True on real tokens."""
    g = torch.Generator().manual_seed(seed)
    B, T = 3, 11
    ids = torch.randint(1, V, (B, T), generator=g)
    types = (torch.arange(T) >= 5).long().expand(B, T).clone()
    lengths = torch.tensor([11, 7, 4])
    real = torch.arange(T)[None, :] < lengths[:, None]  # (B, T)
    ids = ids.masked_fill(~real, 0)
    return ids, types, real


def hf_run(model, ids, types, real):
    with torch.no_grad():
        return model(input_ids=ids, token_type_ids=types, attention_mask=real.long())


def make_hf(cls, seed: int = 0, **kw):
    torch.manual_seed(seed)
    model = cls(hf_config(), **kw).eval()
    randomize_(model, seed + 1)
    return model


# ---------------------------------------------------------------------- HF equivalence


@pytest.mark.parametrize("with_mask", [True, False])
def test_bert_model_matches_hf(with_mask):
    hf = make_hf(transformers.BertModel)
    ours = BertModel(bert_config_from_hf(hf.config)).eval()
    assert load_hf_bert_state_dict(ours, hf.state_dict()) == []
    ids, types, real = batch()
    if not with_mask:
        real = torch.ones_like(real)
    ref = hf_run(hf, ids, types, real)
    with torch.no_grad():
        seq, pooled = ours(ids, types, real)
    assert seq.shape == (3, 11, D) and pooled.shape == (3, D)
    torch.testing.assert_close(seq[real], ref.last_hidden_state[real], **TOL)
    torch.testing.assert_close(pooled, ref.pooler_output, **TOL)


def test_masked_lm_matches_hf_and_is_tied():
    hf = make_hf(transformers.BertForMaskedLM)
    cfg = bert_config_from_hf(hf.config.to_dict())  # the dict form too
    ours = BertForPreTraining(cfg, next_sentence=False).eval()
    assert ours.mlm.decoder.weight is ours.bert.embeddings.word_embeddings.weight
    load_hf_bert_state_dict(ours, hf.state_dict())
    assert ours.mlm.decoder.weight is ours.bert.embeddings.word_embeddings.weight
    ids, types, real = batch(1)
    ref = hf_run(hf, ids, types, real).logits
    with torch.no_grad():
        logits, nsp = ours(ids, types, real)
    assert nsp is None and logits.shape == (3, 11, V)
    torch.testing.assert_close(logits[real], ref[real], **TOL)
    # Tied: a gradient on the logits reaches the embedding matrix through the decoder.
    ours.zero_grad()
    ours(ids, types, real)[0][:, :, 5].sum().backward()
    assert ours.bert.embeddings.word_embeddings.weight.grad[5].abs().sum() > 0


def test_pretraining_with_nsp_matches_hf():
    hf = make_hf(transformers.BertForPreTraining, seed=3)
    ours = BertForPreTraining(bert_config_from_hf(hf.config)).eval()
    load_hf_bert_state_dict(ours, hf.state_dict())
    ids, types, real = batch(2)
    ref = hf_run(hf, ids, types, real)
    with torch.no_grad():
        logits, nsp = ours(ids, types, real)
    torch.testing.assert_close(logits[real], ref.prediction_logits[real], **TOL)
    torch.testing.assert_close(nsp, ref.seq_relationship_logits, **TOL)


def test_sequence_classification_matches_hf():
    cfg = hf_config()
    cfg.num_labels = 3
    torch.manual_seed(4)
    hf = transformers.BertForSequenceClassification(cfg).eval()
    randomize_(hf, 5)
    ours = BertForSequenceClassification(bert_config_from_hf(cfg), num_labels=3).eval()
    load_hf_bert_state_dict(ours, hf.state_dict())
    ids, types, real = batch(3)
    ref = hf_run(hf, ids, types, real).logits
    with torch.no_grad():
        torch.testing.assert_close(ours(ids, types, real), ref, **TOL)


def test_loader_accepts_prefixed_backbone_keys():
    hf = make_hf(transformers.BertModel, seed=6)
    ours = BertModel(bert_config_from_hf(hf.config)).eval()
    load_hf_bert_state_dict(ours, {"bert." + k: v for k, v in hf.state_dict().items()})
    ids, types, real = batch()
    with torch.no_grad():
        torch.testing.assert_close(
            ours(ids, types, real)[1], hf_run(hf, ids, types, real).pooler_output, **TOL
        )


# -------------------------------------------------------------------------- loader errors


def test_loader_names_missing_and_unexpected_keys():
    hf = make_hf(transformers.BertModel)
    ours = BertModel(bert_config_from_hf(hf.config))
    sd = dict(hf.state_dict())
    del sd["encoder.layer.1.attention.self.key.weight"]
    with pytest.raises(ValueError, match=r"missing keys: encoder\.layer\.1\.attention\.self\.key"):
        load_hf_bert_state_dict(ours, sd)
    sd = dict(hf.state_dict(), extra_thing=torch.zeros(1))
    with pytest.raises(ValueError, match="unexpected keys: extra_thing"):
        load_hf_bert_state_dict(ours, sd)
    assert load_hf_bert_state_dict(ours, sd, strict=False) == ["extra_thing"]


def test_loader_refuses_bad_shapes_and_untied_decoder():
    hf = make_hf(transformers.BertForMaskedLM)
    cfg = bert_config_from_hf(hf.config)
    ours = BertForPreTraining(cfg, next_sentence=False)
    sd = dict(hf.state_dict())
    sd["cls.predictions.decoder.weight"] = sd["cls.predictions.decoder.weight"] + 1.0
    with pytest.raises(ValueError, match="tied"):
        load_hf_bert_state_dict(ours, sd)
    small = BertForPreTraining(
        BertConfig(V, D, HEADS, LAYERS, D_FF, max_len=32), next_sentence=False
    )
    with pytest.raises(ValueError, match=r"position_embeddings\.weight"):
        load_hf_bert_state_dict(small, hf.state_dict())
    with pytest.raises(TypeError, match="model must be"):
        load_hf_bert_state_dict(torch.nn.Linear(2, 2), hf.state_dict())


# ------------------------------------------------------------------------- model checks


def test_model_shapes_init_and_input_errors():
    cfg = BertConfig(V, D, HEADS, LAYERS, D_FF, MAX_LEN, dropout=0.0)
    model = BertModel(cfg)
    emb = model.embeddings.word_embeddings.weight
    assert torch.all(emb[cfg.pad_token_id] == 0)
    assert 0.015 < emb[1:].std().item() < 0.025  # N(0, 0.02^2)
    assert model.encoder.layers[0].norm1.eps == 1e-12
    assert model.encoder.layers[0].ff.activation == "gelu"
    ids = torch.randint(0, V, (2, 5))
    seq, pooled = model(ids)  # default token types and no mask
    assert seq.shape == (2, 5, D) and pooled.shape == (2, D)
    assert torch.all(pooled.abs() <= 1)  # tanh
    with pytest.raises(TypeError, match="input_ids must hold integer"):
        model(ids.float())
    with pytest.raises(ValueError, match="input_ids holds ids"):
        model(ids + V)
    with pytest.raises(ValueError, match="token_type_ids holds ids"):
        model(ids, torch.full_like(ids, 2))
    with pytest.raises(TypeError, match=r"attention_mask must be a bool.*\.bool\(\)"):
        model(ids, None, torch.ones_like(ids))
    with pytest.raises(ValueError, match=r"max_len = 64"):
        model(torch.zeros(1, MAX_LEN + 1, dtype=torch.long))


def test_config_validation():
    with pytest.raises(ValueError, match="divisible"):
        BertConfig(V, 30, 4, 1, 8, 8)
    with pytest.raises(ValueError, match="dropout"):
        BertConfig(V, D, HEADS, 1, 8, 8, dropout=1.0)
    with pytest.raises(ValueError, match="pad_token_id"):
        BertConfig(V, D, HEADS, 1, 8, 8, pad_token_id=V)
    with pytest.raises(ValueError, match="layer_norm_eps"):
        BertConfig(V, D, HEADS, 1, 8, 8, layer_norm_eps=0.0)
    with pytest.raises(ValueError, match="hidden_act"):
        bert_config_from_hf(dict(hf_config().to_dict(), hidden_act="relu"))
    with pytest.raises(ValueError, match="hidden_size"):
        bert_config_from_hf({"vocab_size": 5})
    cfg = bert_config_from_hf(hf_config())
    assert (cfg.d_model, cfg.num_layers, cfg.d_ff, cfg.dropout) == (D, LAYERS, D_FF, 0.0)


def test_pretraining_loss_trains():
    """A few Adam steps on a fixed masked batch lower the MLM loss."""
    torch.manual_seed(0)
    cfg = BertConfig(V, D, HEADS, 1, D_FF, MAX_LEN, dropout=0.0)
    model = BertForPreTraining(cfg)
    ids = torch.randint(5, V, (4, 16))
    inputs, labels = mask_tokens(
        ids, vocab_size=V, mask_token_id=4, generator=torch.Generator().manual_seed(0)
    )
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        logits, _ = model(inputs)
        loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


# ---------------------------------------------------------------------------- mask_tokens

MASK_ID, BIG_V = 3, 30_000


def masked_stats(seed: int):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(10, BIG_V, (200, 1000), generator=g)  # no [MASK] among them
    special = torch.zeros_like(tokens, dtype=torch.bool)
    special[:, 0] = special[:, -1] = True  # [CLS], [SEP]
    special[::7, 900:] = True  # padding
    inputs, labels = mask_tokens(
        tokens,
        vocab_size=BIG_V,
        mask_token_id=MASK_ID,
        special_mask=special,
        generator=torch.Generator().manual_seed(seed + 1),
    )
    return tokens, special, inputs, labels


def test_mask_tokens_statistics():
    tokens, special, inputs, labels = masked_stats(0)
    selected = labels != IGNORE_INDEX
    eligible = ~special
    frac = selected.sum().item() / eligible.sum().item()
    assert abs(frac - 0.15) < 0.005
    n = selected.sum().item()
    as_mask = (inputs[selected] == MASK_ID).sum().item() / n
    unchanged = (inputs[selected] == tokens[selected]).sum().item() / n
    random = 1.0 - as_mask - unchanged
    assert abs(as_mask - 0.80) < 0.01
    assert abs(random - 0.10) < 0.01
    assert abs(unchanged - 0.10) < 0.01
    # Random replacements spread over the vocabulary.
    replaced = inputs[selected & (inputs != MASK_ID) & (inputs != tokens)]
    assert replaced.min() < BIG_V // 10 and replaced.max() > BIG_V - BIG_V // 10


def test_mask_tokens_labels_and_specials():
    tokens, special, inputs, labels = masked_stats(1)
    selected = labels != IGNORE_INDEX
    assert not (selected & special).any()
    assert torch.equal(labels[selected], tokens[selected])
    assert torch.all(labels[~selected] == IGNORE_INDEX)
    assert torch.equal(inputs[~selected], tokens[~selected])  # only selected change
    assert inputs.dtype == labels.dtype == tokens.dtype and inputs.shape == tokens.shape


def test_mask_tokens_reproducible_and_edge_probabilities():
    tokens = torch.randint(10, 100, (8, 50))
    kw = dict(vocab_size=100, mask_token_id=MASK_ID)
    a = mask_tokens(tokens, **kw, generator=torch.Generator().manual_seed(7))
    b = mask_tokens(tokens, **kw, generator=torch.Generator().manual_seed(7))
    c = mask_tokens(tokens, **kw, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])
    inputs, labels = mask_tokens(tokens, **kw, mlm_probability=0.0)
    assert torch.equal(inputs, tokens) and torch.all(labels == IGNORE_INDEX)
    _, labels = mask_tokens(tokens, **kw, mlm_probability=1.0)
    assert torch.equal(labels, tokens)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(mlm_probability=1.5), ValueError, "mlm_probability"),
        (dict(mlm_probability=-0.1), ValueError, "mlm_probability"),
        (dict(tokens=torch.rand(2, 3)), TypeError, "tokens must hold integer"),
        (dict(tokens=torch.full((2, 3), 200)), ValueError, "tokens holds ids"),
        (dict(special_mask=torch.zeros(2, 3, dtype=torch.long)), TypeError, "special_mask"),
        (dict(special_mask=torch.zeros(3, 2, dtype=torch.bool)), ValueError, "special_mask"),
        (dict(mask_token_id=100), ValueError, "mask_token_id"),
        (dict(vocab_size=0), ValueError, "vocab_size"),
        (dict(generator=7), TypeError, "generator"),
        (dict(tokens=[[1, 2]]), TypeError, "tokens must be a torch.Tensor"),
    ],
)
def test_mask_tokens_bad_inputs(kwargs, error, match):
    args = dict(tokens=torch.randint(10, 100, (2, 3)), vocab_size=100, mask_token_id=MASK_ID)
    args.update(kwargs)
    tokens = args.pop("tokens")
    with pytest.raises(error, match=match):
        mask_tokens(tokens, **args)


# ------------------------------------------------------------------------- masked_lm_loss


def test_masked_lm_loss_equals_full_logits_loss():
    """Same loss and gradients as cross-entropy over the full (B, T, V) logits."""
    torch.manual_seed(0)
    cfg = BertConfig(V, D, HEADS, LAYERS, D_FF, MAX_LEN, dropout=0.0)
    model = BertForPreTraining(cfg, next_sentence=False)
    randomize_(model, 1)
    ids, types, real = batch(2)
    inputs, labels = mask_tokens(
        ids,
        vocab_size=V,
        mask_token_id=4,
        special_mask=~real,
        mlm_probability=0.3,
        generator=torch.Generator().manual_seed(3),
    )
    assert 3 < (labels != IGNORE_INDEX).sum() < labels.numel() // 2
    loss, acc = masked_lm_loss(model, inputs, labels, types, real)
    loss.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    logits, _ = model(inputs, types, real)  # (B, T, V)
    want = F.cross_entropy(logits.flatten(0, 1), labels.flatten())
    want.backward()
    torch.testing.assert_close(loss, want, **TOL)
    for got, ref in zip(grads, (p.grad for p in model.parameters())):
        torch.testing.assert_close(got, ref, **TOL)
    sel = labels != IGNORE_INDEX
    manual = sum(int(logits[b, t].argmax() == labels[b, t]) for b, t in sel.nonzero().tolist())
    assert acc.item() == pytest.approx(manual / int(sel.sum()))
    assert not acc.requires_grad


def test_masked_lm_loss_perfect_and_empty_and_errors():
    torch.manual_seed(0)
    model = BertForPreTraining(BertConfig(V, D, HEADS, 1, D_FF, MAX_LEN), next_sentence=False)
    ids, _, _ = batch(0)
    labels = torch.full_like(ids, IGNORE_INDEX)
    loss, acc = masked_lm_loss(model, ids, labels)
    assert loss.item() == 0.0 and loss.requires_grad and torch.isnan(acc)
    loss.backward()  # no error: a batch without selected positions contributes nothing
    with torch.no_grad():  # make the head predict token 7 everywhere
        model.mlm.decoder.bias.fill_(-100.0)
        model.mlm.decoder.bias[7] = 100.0
    labels[0, :3] = 7
    labels[1, 2] = 8
    loss, acc = masked_lm_loss(model, ids, labels)
    assert acc.item() == pytest.approx(0.75)
    assert loss.item() == pytest.approx(200.0 / 4, rel=0.05)  # 3 right (~0), 1 wrong (~200)
    with pytest.raises(TypeError, match="BertForPreTraining"):
        masked_lm_loss(model.bert, ids, labels)
    with pytest.raises(ValueError, match="labels must be integer ids"):
        masked_lm_loss(model, ids, labels[:, :3])
    with pytest.raises(ValueError, match="below vocab_size"):
        masked_lm_loss(model, ids, labels.masked_fill(labels == 7, V))

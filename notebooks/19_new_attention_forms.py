# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # New forms of attention: norms, gates, differences, the delta rule and sparsity
#
# The attention of {doc}`chapter 1 <01_scaled_dot_product_attention>` has survived eight
# years almost unchanged: $\mathrm{softmax}(QK^\top/\sqrt{d_k})\,V$. The open models of
# 2024–2025 change it in small, precise places, each answering a problem met at scale:
#
# - **the logits grow** during training until the softmax is one-hot and training breaks:
#   *QK-norm* and *logit soft-capping* bound them;
# - **every head must attend somewhere**, so heads with nothing to read park their weight
#   on the first token (an *attention sink*): an *output gate* lets a head say nothing;
# - **irrelevant tokens get weight too**: *differential attention* subtracts a second map
#   to cancel it; *sigmoid attention* drops the normalisation altogether;
# - **the cache grows with the context**: *linear attention with the delta rule* keeps a
#   fixed-size state instead, and 2025 models mix it with a few softmax layers (*hybrid
#   stacks*), or keep softmax but read only a few keys per query (*sparse attention*).
#
# For each we write the mathematics, check the code in `attnkit.llm` against it, and
# measure one thing on this machine: small language models trained for a fixed number of
# steps, with the seeds said, and exactness checks in float64. What a model of about
# 140,000 parameters can show is limited; where it shows less than the papers report, we
# say so.

# %%

import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from myst_nb import glue

import attnkit as ak
from attnkit import llm
from attnkit.data import CharTokenizer, stdlib_docstrings

torch.manual_seed(0)
# One thread: the book runs its chapters side by side, one thread each, so every number
# below is the same on any machine, however many cores it has.
torch.set_num_threads(1)
torch.set_printoptions(precision=4, sci_mode=False)
plt.rcParams.update({"figure.dpi": 100, "axes.grid": False})
print("torch", torch.__version__, "| attnkit", ak.__version__)

# %% [markdown]
# All the language models of this chapter are `llm.DecoderLM`s (pre-norm, RMSNorm,
# SwiGLU, tied embeddings: the shape of Llama-style models) of width 64 with two layers and
# four heads, reading the Python standard library's docstrings
# ({doc}`chapter 4 <04_text_generation>`'s text) one character at a time; only the token
# mixer of each layer changes. A batch is 8 windows of 32 characters drawn from a seeded
# generator, each preceded by the tokenizer's `BOS` token, as a document starts in a
# language model (so the first position always holds the same, content-free token).

# %%
text = stdlib_docstrings(max_chars=200_000)
tok = CharTokenizer([text])
ids = torch.tensor(tok.encode(text))
V, D_MODEL, LAYERS, HEADS, WINDOW, BATCH = len(tok), 64, 2, 4, 32, 8


def text_batches(seed: int, batch: int = BATCH, window: int = WINDOW):
    """Endless (batch, window + 1) batches: BOS, then window characters of the text drawn
    from a generator seeded with seed (inputs: the first window tokens)."""
    gen = torch.Generator().manual_seed(seed)
    offsets = torch.arange(window)
    bos = torch.full((batch, 1), tok.bos_id)
    while True:
        starts = torch.randint(0, len(ids) - window, (batch,), generator=gen)
        yield torch.cat([bos, ids[starts[:, None] + offsets]], dim=1)


probe = next(text_batches(seed=1000, batch=16))[:, :-1]  # a fixed batch to look inside models
n_params = sum(
    p.numel()
    for p in llm.DecoderLM(V, D_MODEL, LAYERS, lambda i: llm.LLMSelfAttention(D_MODEL, HEADS)).parameters()
)  # tied embeddings are counted once
assert 130_000 < n_params < 150_000, f"claim no longer holds: 'about 140,000 parameters' ({n_params:,})"
glue("ch19_params", n_params, display=False)
print(f"{len(text):,} characters, vocabulary {V}, probe batch {tuple(probe.shape)}, "
      f"{n_params:,} parameters per model")  # fmt: skip

# %% [markdown]
# (ch19-qk-norm)=
# ## QK-norm and logit soft-capping
#
# ### What √d_k does not cover
#
# {ref}`Chapter 1 <ch01-scaling>` divided the scores by $\sqrt{d_k}$: for **independent**
# queries and keys with unit-variance entries, $\mathrm{Var}(q^\top k) = d_k$, so
# $q^\top k / \sqrt{d_k}$ has variance 1 at initialisation, whatever the width. Training
# breaks both assumptions ({ref}`chapter 1 <ch01-scale-after-training>` measured it). The
# projections $W_Q, W_K$ grow, and the queries and keys that
# should match become *aligned*; then $q^\top k = \lVert q\rVert\,\lVert k\rVert \cos\theta$
# grows with the norms, and nothing in the formula stops it. Once the largest logit of a
# row exceeds the others by ten or more, the softmax is one-hot: its gradient vanishes
# ({ref}`chapter 1 <ch01-scaling>`), the attention cannot change its mind, and at scale the
# loss diverges. Dehghani et al. met exactly this training vision transformers of about 8
# billion parameters: the loss diverged, caused by extremely large attention logits that
# made the attention weights almost one-hot (near-zero entropy)
# {cite:p}`dehghani2023scaling`.
#
# ### Two fixes
#
# **QK-norm** normalises each query and key before the product
# {cite:p}`dehghani2023scaling`: with RMSNorm and learned gains $g_q, g_k \in
# \mathbb{R}^{d_k}$, $\hat q = g_q \odot q / \mathrm{rms}(q)$ has norm at most
# $\sqrt{d_k}\,\max_i |g_{q,i}|$, so by Cauchy–Schwarz
#
# $$
# \left|\frac{\hat q^\top \hat k}{\sqrt{d_k}}\right|
# \le \frac{\lVert \hat q\rVert\,\lVert \hat k\rVert}{\sqrt{d_k}}
# \le \sqrt{d_k}\,\max_i |g_{q,i}|\,\max_i |g_{k,i}| .
# $$
#
# The logits can still grow, but only through the gains, slowly. OLMo 2 normalises the
# whole query and key projections this way {cite:p}`olmo2024olmo2`; Qwen3 does it per head
# {cite:p}`yang2025qwen3`, as `llm.LLMSelfAttention(qk_norm=True)` does.
#
# **Logit soft-capping** (Gemma 2 {cite:p}`gemmateam2024gemma2`) squashes every logit
# smoothly into $(-c, c)$:
#
# $$
# \mathrm{softcap}(s) = c \tanh(s / c) \approx s \text{ for } |s| \ll c .
# $$
#
# Gemma 2 uses $c = 50$ on the attention logits and $c = 30$ on the final output logits.
# We use Gemma's $c = 50$.
#
# `llm.attention_logits` returns the logits a layer feeds to its softmax (after its norm,
# RoPE and cap), so we can watch them; first, that they are exactly what the layer uses.

# %%
torch.manual_seed(0)
layer = llm.LLMSelfAttention(D_MODEL, HEADS, qk_norm=True, softcap=50.0).double()
x = torch.randn(2, 12, D_MODEL, dtype=torch.float64) * 5  # (B, T, d_model)
with torch.no_grad():
    _, weights = layer(x, return_weights=True)
    logits = llm.attention_logits(layer, x)
logit_diff = (ak.masked_softmax(logits, layer.mask(12)) - weights).abs().max().item()
assert logit_diff < 1e-15, (
    f"claim no longer holds: 'softmax of the read-out logits = the layer's weights' "
    f"({logit_diff:.1e})"
)
s = torch.linspace(-200, 200, 9, dtype=torch.float64)
capped = llm.softcap(s, 50.0)
print("s          :", s.tolist())
print("softcap(s) :", [round(v, 2) for v in capped.tolist()])
assert capped.abs().max() < 50 and abs(llm.softcap(torch.tensor(1.0), 50.0) - 1.0) < 1e-3, (
    "claim no longer holds: 'softcap is the identity for small s and below c everywhere'"
)

# %% [markdown]
# ### A high learning rate, three ways
#
# We train the same model three ways — plain, with QK-norm, with soft-capping at 50 — at
# a learning rate far above what such a model wants. A short search (learning rates 0.01,
# 0.03, 0.1, 0.3 and 1, 120 steps each, seeds 0 and 1, windows without the `BOS` token and
# a cap of 20; not re-run here) showed the plain model's largest logit growing at every
# one of them (to 140–170 at 0.01, past 1,000 from 0.03 on), while QK-norm kept it below
# 20 up to 0.1; at 1.0 every model, normalised or not, lost its training (losses above 10). The chapter uses **0.1**, 120 AdamW steps (10 of
# warm-up, then constant, gradient clipping at 1 as everywhere in the book), **three
# seeds** (0, 1, 2), and records the largest attention logit over the probe batch every 20
# steps. `ak.train` raises `FloatingPointError` on a NaN loss; we would record the step.

# %%
LR, QK_STEPS, QK_SEEDS = 0.1, 120, (0, 1, 2)
VARIANTS = {
    "plain": {},
    "QK-norm": {"qk_norm": True},
    "soft-cap 50": {"softcap": 50.0},
}


def make_lm(mixer_options: dict, seed: int) -> llm.DecoderLM:
    """A 2-layer, width-64 DecoderLM whose layers are LLMSelfAttention(**mixer_options)."""
    torch.manual_seed(seed)
    return llm.DecoderLM(
        V, D_MODEL, LAYERS, lambda i: llm.LLMSelfAttention(D_MODEL, HEADS, **mixer_options)
    )


def train_lm(model, seed, steps, lr, warmup, schedule, eval_every, evaluate=None):
    """Train on the text; return (TrainResult or None, the step of a NaN loss or None)."""
    config = ak.TrainConfig(
        steps=steps, lr=lr, warmup_steps=warmup, schedule=schedule, weight_decay=0.0,
        eval_every=eval_every, seed=seed, progress=False,
    )  # fmt: skip
    try:
        return ak.train(model, llm.lm_loss, text_batches(seed), config, evaluate=evaluate), None
    except FloatingPointError as err:  # the message names the step
        return None, str(err)


def max_logit(model) -> dict:
    return {"max_logit": llm.trace_decoder(model, probe).max_logit()}


runs = {}  # (variant, seed) -> (TrainResult, trained model)
for name, options in VARIANTS.items():
    for seed in QK_SEEDS:
        model = make_lm(options, seed)
        result, diverged = train_lm(model, seed, QK_STEPS, LR, 10, "constant", 20, max_logit)
        assert diverged is None, f"{name}, seed {seed}: {diverged}"  # none did in our runs
        runs[name, seed] = (result, model)
        print(f"{name:12} seed {seed}: final loss {result.history[-1]['train_loss']:.3f}, "
              f"largest logit {[round(h['max_logit'], 1) for h in result.history]}")  # fmt: skip

# %%
final = {n: [runs[n, s][0].history[-1]["max_logit"] for s in QK_SEEDS] for n in VARIANTS}
loss = {n: [runs[n, s][0].history[-1]["train_loss"] for s in QK_SEEDS] for n in VARIANTS}

fig, ax = plt.subplots(figsize=(6.5, 3.4))
colors = {"plain": "tab:red", "QK-norm": "tab:blue", "soft-cap 50": "tab:green"}
for (name, seed), (result, _) in runs.items():
    steps = [h["step"] for h in result.history]
    ax.plot(steps, [h["max_logit"] for h in result.history], color=colors[name],
            label=name if seed == 0 else None, marker="o", markersize=3)  # fmt: skip
ax.set_yscale("log")
ax.set_xlabel("training step (learning rate 0.1)")
ax.set_ylabel("largest |attention logit|")
ax.set_title("Attention logits during training (3 seeds each)")
ax.legend()
plt.tight_layout()
plt.show()

# the QK-norm bound, with the gains each trained model learned
bound_ok = []
for seed in QK_SEEDS:
    model = runs["QK-norm", seed][1]
    with torch.no_grad():
        trace = llm.trace_decoder(model, probe)
    for block, scores, allowed in zip(model.blocks, trace.scores, trace.masks, strict=True):
        attn = block.mixer  # |logit| <= sqrt(d_k) max|g_q| max|g_k|, per layer
        gains = attn.q_norm.weight.abs().max() * attn.k_norm.weight.abs().max()
        bound = math.sqrt(attn.head_dim) * gains.item()
        bound_ok.append(scores.masked_fill(~allowed, 0).abs().max().item() <= bound * (1 + 1e-5))
assert all(bound_ok), "claim no longer holds: 'QK-norm logits stay within the gains' bound'"


def one_hot_rows(model) -> float:
    """Share of attention rows (queries t >= 1, all heads and layers) whose largest weight
    exceeds 0.99."""
    with torch.no_grad():
        weights = llm.trace_decoder(model, probe).weights
    return torch.cat([w[:, :, 1:].amax(-1).flatten() for w in weights]).gt(0.99).double().mean().item()


one_hot = {n: [one_hot_rows(runs[n, s][1]) for s in QK_SEEDS] for n in VARIANTS}
print("share of one-hot rows (max weight > 0.99):", {n: [round(v, 2) for v in one_hot[n]] for n in VARIANTS})
assert max(one_hot["soft-cap 50"]) < 0.5, (
    f"claim no longer holds: 'soft-capping kept most rows soft' ({one_hot['soft-cap 50']})"
)
assert min(one_hot["plain"]) > 2 * max(one_hot["QK-norm"]), (
    f"claim no longer holds: 'the plain model has over twice QK-norm's share of one-hot rows' "
    f"({one_hot})"
)
for name in VARIANTS:
    glue(f"ch19_onehot_{name.split()[0].replace('-', '')}", float(np.mean(one_hot[name])), display=False)
assert min(final["plain"]) > 10 * max(final["QK-norm"]), (
    f"claim no longer holds: 'the plain model's largest logit is over ten times QK-norm's' "
    f"({final['plain']} vs {final['QK-norm']})"
)
assert min(final["plain"]) > 500, (
    f"claim no longer holds: 'plain logits in the thousands' ({final['plain']})"
)
assert max(final["soft-cap 50"]) <= 50, "claim no longer holds: 'soft-capped logits below 50'"
assert np.mean(loss["plain"]) > np.mean(loss["QK-norm"]), (
    f"claim no longer holds: 'plain ends with the higher mean loss' ({loss})"
)
for name in VARIANTS:
    glue(f"ch19_maxlogit_{name.split()[0].replace('-', '')}_min", min(final[name]), display=False)
    glue(f"ch19_maxlogit_{name.split()[0].replace('-', '')}_max", max(final[name]), display=False)
    glue(f"ch19_loss_{name.split()[0].replace('-', '')}", float(np.mean(loss[name])), display=False)
print({n: [round(v, 1) for v in final[n]] for n in VARIANTS})
print({n: [round(v, 3) for v in loss[n]] for n in VARIANTS})

# %% [markdown]
# At learning rate 0.1 the plain model's largest logit ends between
# {glue:text}`ch19_maxlogit_plain_min:,.0f` and {glue:text}`ch19_maxlogit_plain_max:,.0f`
# over the three seeds, and {glue:text}`ch19_onehot_plain:.0%` of its attention rows are
# one-hot (largest weight above 0.99; mean over the seeds). With QK-norm the largest logit
# ends between {glue:text}`ch19_maxlogit_QKnorm_min:.1f` and
# {glue:text}`ch19_maxlogit_QKnorm_max:.1f`, within the bound above computed from the gains
# each model learned (checked), with {glue:text}`ch19_onehot_QKnorm:.0%` one-hot rows;
# soft-capped, {glue:text}`ch19_onehot_softcap:.0%`. Soft-capped logits sit at the cap (up to
# {glue:text}`ch19_maxlogit_softcap_max:.1f`). The mean final training loss is
# {glue:text}`ch19_loss_plain:.3f` plain, {glue:text}`ch19_loss_QKnorm:.3f` with QK-norm
# and {glue:text}`ch19_loss_softcap:.3f` soft-capped.
#
# What this tiny model does **not** show is the divergence itself: no run produced a NaN
# loss, even at learning rate 1 in the search; AdamW's normalised steps and gradient
# clipping keep a model of {glue:text}`ch19_params:,` parameters alive while its attention saturates. What it does
# show is the mechanism that precedes divergence at scale — the unbounded logit growth and
# the one-hot rows — and that both fixes remove it. Soft-capping at 50 still allows a gap
# of up to 100 between two logits of a row, enough for a one-hot softmax: here it kept
# most rows soft, but nothing in the cap guarantees that, whereas QK-norm's bound does
# (as long as the gains stay small).

# %% [markdown]
# (ch19-gated-attention)=
# ## Gated attention and the attention sink
#
# A softmax row sums to 1, so a head that has nothing useful to read must still put its
# weight somewhere. Trained models park it on the first token, which every query can
# see: the *attention sink* (Xiao et al. {cite:p}`xiao2024efficient`;
# {ref}`chapter 18 <ch18-attention-sinks>` measures it). Qiu et al. add a gate after
# attention, per head and per feature, computed from the layer's input $x_t$
# {cite:p}`qiu2025gated`:
#
# $$
# o_{t,h} = \sigma(x_t W_{g,h}) \odot \sum_{j \le t} p_{tj,h}\, v_{j,h}, \qquad
# \text{then the output projection.}
# $$
#
# A head can now output (nearly) nothing by closing its gate, and needs no sink. Comparing
# over 30 variants of 1.7B dense and 15B mixture-of-experts models trained on 3.5 trillion
# tokens, the authors found that this gate after attention consistently improved
# performance, and that its sparse gate values mitigated the attention sink
# {cite:p}`qiu2025gated`; Qwen3-Next uses it in its softmax layers {cite:p}`qwen2025next`.
#
# We train two-layer models with and without `output_gate=True` (learning rate 0.01,
# 20 warm-up steps then cosine, 300 steps; seeds 0 and 1) and measure with
# `llm.first_token_share` the weight each head puts on the first token (the `BOS`),
# averaged over the queries $t \ge 1$ of the probe batch. (At learning rate 3e-3 no sink
# had formed after 300 steps in a trial run, with or without the gate.) For reference, uniform causal attention over 32 positions gives
# $\frac{1}{31}\sum_{t=1}^{31} \frac{1}{t+1}$.

# %%
GATE_SEEDS, GATE_STEPS = (0, 1), 300
uniform = float(sum(1 / (t + 1) for t in range(1, WINDOW)) / (WINDOW - 1))
share, gate_loss, gate_values = {}, {}, {}
for gated in (False, True):
    for seed in GATE_SEEDS:
        model = make_lm({"output_gate": gated}, seed)
        result, diverged = train_lm(model, seed, GATE_STEPS, 1e-2, 20, "cosine", GATE_STEPS)
        assert diverged is None, diverged
        model.eval()
        with torch.no_grad():
            trace = llm.trace_decoder(model, probe)
            per_head = torch.stack([llm.first_token_share(w) for w in trace.weights])  # (L, H)
            if gated:  # the gate's mean value, per layer
                h = model.blocks[0].mixer_norm(model.embed(probe))
                gate_values[seed] = torch.sigmoid(model.blocks[0].mixer.gate(h)).mean().item()
        share[gated, seed] = per_head
        gate_loss[gated, seed] = result.history[-1]["train_loss"]
        print(f"output_gate={gated!s:5} seed {seed}: loss {gate_loss[gated, seed]:.3f}, "
              f"first-token share per layer and head\n{per_head}")  # fmt: skip

mean_share = {g: float(np.mean([share[g, s].mean().item() for s in GATE_SEEDS])) for g in (False, True)}
max_share = {g: max(share[g, s].max().item() for s in GATE_SEEDS) for g in (False, True)}
print(f"uniform attention: {uniform:.3f}; mean share without gate {mean_share[False]:.3f}, "
      f"with gate {mean_share[True]:.3f}; mean gate value (layer 0) {gate_values}")  # fmt: skip
glue("ch19_uniform_share", uniform, display=False)
glue("ch19_share_plain", mean_share[False], display=False)
glue("ch19_share_gated", mean_share[True], display=False)
glue("ch19_share_plain_max", max_share[False], display=False)
glue("ch19_share_gated_max", max_share[True], display=False)

for seed in GATE_SEEDS:
    plain_mean, gated_mean = share[False, seed].mean().item(), share[True, seed].mean().item()
    assert plain_mean > 1.5 * gated_mean, (
        f"claim no longer holds: 'the gate lowers the first token's share' (seed {seed}: "
        f"{plain_mean:.3f} vs {gated_mean:.3f})"
    )
assert max_share[False] > 2 * max_share[True], (
    f"claim no longer holds: 'the strongest sink head without the gate draws over twice as "
    f"much' ({max_share})"
)
for seed in GATE_SEEDS:
    assert share[False, seed].max().item() > 3 * uniform, (
        f"claim no longer holds: 'without the gate a head draws several times the uniform "
        f"share to the first token' (seed {seed}: {share[False, seed].max().item():.3f})"
    )
assert mean_share[False] > uniform, (
    f"claim no longer holds: 'without the gate the first token draws more than uniform "
    f"attention gives it' ({mean_share[False]:.3f} vs {uniform:.3f})"
)
gate_init = []  # the same gate mean before training (same seeds, same probe batch)
for seed in GATE_SEEDS:
    model = make_lm({"output_gate": True}, seed)
    with torch.no_grad():
        h = model.blocks[0].mixer_norm(model.embed(probe))
        gate_init.append(torch.sigmoid(model.blocks[0].mixer.gate(h)).mean().item())
assert max(gate_values.values()) < 0.45 and all(0.45 < g < 0.55 for g in gate_init), (
    f"claim no longer holds: 'the trained gates are mostly closed, from about 0.5 at "
    f"initialisation' (trained {gate_values}, initial {gate_init})"
)
glue("ch19_gate_mean", float(np.mean(list(gate_values.values()))), display=False)
glue("ch19_gate_init", float(np.mean(gate_init)), display=False)

fig, axes = plt.subplots(1, 2, figsize=(7, 2.6), sharey=True)
for ax, gated in zip(axes, (False, True), strict=True):
    grid = torch.cat([share[gated, s] for s in GATE_SEEDS], dim=1)  # (L, H * seeds)
    im = ax.imshow(grid.numpy(), vmin=0, vmax=1, cmap="viridis")
    ax.set_title("with output gate" if gated else "without gate")
    ax.set_xlabel("head (seed 0: 0-3, seed 1: 4-7)")
    ax.set_yticks(range(LAYERS))
axes[0].set_ylabel("layer")
fig.colorbar(im, ax=axes, label="weight on the first token", shrink=0.7)
plt.show()

# %% [markdown]
# Without the gate the first token draws {glue:text}`ch19_share_plain:.1%` of the
# attention on average (seeds 0 and 1), against {glue:text}`ch19_uniform_share:.1%` for
# uniform attention, and one head puts {glue:text}`ch19_share_plain_max:.0%` of its
# weight there: a sink is forming. With the gate the average is
# {glue:text}`ch19_share_gated:.1%` and no head exceeds
# {glue:text}`ch19_share_gated_max:.0%`. The gates are mostly closed (their mean value in
# layer 0 is {glue:text}`ch19_gate_mean:.2f` after training, against
# {glue:text}`ch19_gate_init:.2f` at initialisation): heads switch themselves off with the gate
# instead of with the first token. The direction is the paper's; the size is not
# comparable — after 300 steps our sinks are young (a trained LLM's sink heads put most of
# their weight on the first token), and two seeds of a model this small are an
# illustration, not evidence about large models.

# %% [markdown]
# (ch19-differential)=
# ## Differential attention
#
# A softmax row gives every key some weight, so the output of a head always carries a
# little of every irrelevant token. Ye et al. compute two maps from two halves of each
# head's queries and keys and subtract {cite:p}`ye2024differential`:
#
# $$
# \mathrm{DiffAttn}(X) = \Big(\mathrm{softmax}\big(\tfrac{Q_1 K_1^\top}{\sqrt d}\big)
# - \lambda\, \mathrm{softmax}\big(\tfrac{Q_2 K_2^\top}{\sqrt d}\big)\Big) V,
# \qquad \lambda = e^{\lambda_{q1}\cdot\lambda_{k1}} - e^{\lambda_{q2}\cdot\lambda_{k2}}
# + \lambda_{\text{init}},
# $$
#
# like a differential amplifier: what both maps share (the spread over irrelevant
# tokens) cancels, what only the first has (the relevant key) survives. Each head's
# output is then normalised and scaled by $1 - \lambda_{\text{init}}$, with
# $\lambda_{\text{init}} = 0.8 - 0.6\,e^{-0.3(l-1)}$ in layer $l$. First,
# `llm.differential_attention` against the formula written with explicit weights:

# %%
torch.manual_seed(0)
n, d = 10, 8
q1, k1, q2, k2 = (torch.randn(2, 3, n, d, dtype=torch.float64) for _ in range(4))
v = torch.randn(2, 3, n, 2 * d, dtype=torch.float64)
lam = 0.62
p1 = torch.softmax(q1 @ k1.transpose(-2, -1) / math.sqrt(d), dim=-1)
p2 = torch.softmax(q2 @ k2.transpose(-2, -1) / math.sqrt(d), dim=-1)
diff_err = (llm.differential_attention(q1, k1, q2, k2, v, lam) - (p1 - lam * p2) @ v).abs().max().item()
print(f"max |differential_attention - formula| = {diff_err:.1e}")
assert diff_err < 1e-14, f"claim no longer holds: 'equal to the formula' ({diff_err:.1e})"
glue("ch19_diff_err", diff_err, display=False)

# %% [markdown]
# What does the difference cancel? Take one query and 64 keys, in an idealised case: both
# maps see the same random "background" logits (standard normal), and the first also sees
# the one relevant key with a logit 3 higher (in a trained layer the second map is
# learned and only approximates the shared part). We compare the weight on the relevant key with the total
# absolute weight on the 63 others, for one softmax and for the difference with
# $\lambda = 0.8$ (its initial value deep in a network), over 200 random draws.

# %%
gen = torch.Generator().manual_seed(0)
background = torch.randn(200, 64, generator=gen, dtype=torch.float64)  # (draws, keys)
signal = background.clone()
signal[:, 0] += 3.0  # key 0 is the relevant one
single = torch.softmax(signal, -1)
difference = torch.softmax(signal, -1) - 0.8 * torch.softmax(background, -1)
snr = {
    name: (w[:, 0] / w[:, 1:].abs().sum(-1)).mean().item()
    for name, w in (("softmax", single), ("differential", difference))
}
print({k: round(val, 3) for k, val in snr.items()})
assert snr["differential"] > 2 * snr["softmax"], (
    f"claim no longer holds: 'the difference more than doubles the ratio' ({snr})"
)
glue("ch19_snr_softmax", snr["softmax"], display=False)
glue("ch19_snr_diff", snr["differential"], display=False)

# %% [markdown]
# The relevant key gets {glue:text}`ch19_snr_softmax:.2f` times the total weight of the
# others in one softmax, and {glue:text}`ch19_snr_diff:.2f` times in the difference: the
# shared background cancels (not completely, since the relevant key's logit also changes
# the first map's normaliser). The difference can be negative; that is allowed — the rows
# no longer sum to 1 but to $1 - \lambda$. `llm.DifferentialAttention` is the full layer
# (two halves per head, the $\lambda$ re-parameterisation, per-head RMSNorm); the paper
# reports that it needs fewer parameters or tokens than a Transformer for the same loss
# {cite:p}`ye2024differential`, a claim about models much larger than ours.

# %% [markdown]
# (ch19-sigmoid)=
# ## Sigmoid attention
#
# Ramapuram et al. drop the normalisation: each weight is a sigmoid of its own logit
# {cite:p}`ramapuram2024sigmoid`,
#
# $$
# \mathrm{SigmoidAttn}(Q, K, V) = \sigma\!\Big(\frac{QK^\top}{\sqrt{d_k}} + b\Big) V,
# \qquad b = -\log n ,
# $$
#
# with $n$ the number of keys. No row-wise sum is needed (each weight is computed alone,
# which kernels like), and no token is forced to receive weight. The bias matters: without
# it, a row of $n$ logits near 0 sums to about $n/2$ and the output grows with the
# context. With $b = -\log n$ and $\sigma(s - \log n) \approx e^{s}/n$ for $s \ll \log n$,
# a row sums to about $\frac{1}{n}\sum_j e^{s_j} \approx \mathbb{E}[e^{s}]$, which for
# standard normal logits is $e^{1/2} \approx 1.65$: close to a softmax's 1, not equal.

# %%
torch.manual_seed(0)
q, k, v = (torch.randn(1, 2, 50, 16, dtype=torch.float64) for _ in range(3))
mask = ak.causal_mask(50)
ref = (torch.sigmoid(q @ k.transpose(-2, -1) / 4 - math.log(50)) * mask) @ v
sig_err = (llm.sigmoid_attention(q, k, v, mask) - ref).abs().max().item()
assert sig_err < 1e-14, f"claim no longer holds: 'equal to the formula' ({sig_err:.1e})"
glue("ch19_sig_err", sig_err, display=False)

row_sums = {}
for n in (16, 256, 4096):
    g = torch.Generator().manual_seed(n)
    q = torch.randn(256, 64, generator=g, dtype=torch.float64)  # 256 query rows
    k = torch.randn(n, 64, generator=g, dtype=torch.float64)
    logits = q @ k.T / 8  # (256, n), unit-variance logits
    row_sums[n] = (
        torch.sigmoid(logits - math.log(n)).sum(-1).mean().item(),
        torch.sigmoid(logits).sum(-1).mean().item(),
    )
    print(f"n = {n:5}: mean row sum with b = -log n: {row_sums[n][0]:.3f}; "
          f"without a bias: {row_sums[n][1]:7.1f}")  # fmt: skip
assert all(1.3 < with_b < 1.8 for with_b, _ in row_sums.values()), (
    f"claim no longer holds: 'row sums near e^(1/2) with the bias' ({row_sums})"
)
assert all(abs(no_b / n - 0.5) < 0.05 for n, (_, no_b) in row_sums.items()), (
    "claim no longer holds: 'about n/2 without a bias'"
)
glue("ch19_sig_rowsum_4096", row_sums[4096][0], display=False)
glue("ch19_sig_rowsum_16", row_sums[16][0], display=False)

# %% [markdown]
# `llm.sigmoid_attention` equals the formula to {glue:text}`ch19_sig_err:.0e`. With the
# bias, rows sum to {glue:text}`ch19_sig_rowsum_16:.2f` at 16 keys and
# {glue:text}`ch19_sig_rowsum_4096:.2f` at 4,096 — the same scale whatever the length;
# without it, to half the length. The bias alone is not the whole recipe: the paper
# identifies taming the large attention norms of early training as the crucial factor,
# and pairs the bias with a hybrid norm (or LayerScale) to match softmax attention;
# `llm.LLMSelfAttention(score="sigmoid")` is the layer.

# %% [markdown]
# (ch19-deltanet)=
# ## Linear attention with the delta rule
#
# ### A state instead of a cache
#
# Drop the softmax and attention becomes associative:
# $o_t = \sum_{j \le t} (q_t^\top k_j)\, v_j = \big(\sum_{j\le t} v_j k_j^\top\big) q_t =
# S_t\, q_t$ ({ref}`chapter 7 <ch07-kernel>`). The state
# $S_t \in \mathbb{R}^{d_v \times d_k}$ has a **fixed size**: decoding needs no growing key/value
# cache. Plain linear attention only adds, $S_t = S_{t-1} + v_t k_t^\top$, so old
# associations pile up and interfere.
#
# ### The delta rule: one step of online regression
#
# DeltaNet {cite:p}`yang2024parallelizing` treats $S$ as a linear map to be fitted to the
# pairs $(k_t, v_t)$ as they arrive. The loss of the current pair is
# $\mathcal{L}_t(S) = \tfrac12 \lVert S k_t - v_t \rVert^2$, with gradient
# $(S k_t - v_t) k_t^\top$; one gradient step of size $\beta_t$ is
#
# $$
# S_t = S_{t-1} - \beta_t (S_{t-1} k_t - v_t) k_t^\top
#     = S_{t-1}(I - \beta_t k_t k_t^\top) + \beta_t v_t k_t^\top .
# $$
#
# It first reads what the state predicts for $k_t$ and moves that prediction towards
# $v_t$: with $\lVert k_t\rVert = 1$ and $\beta_t = 1$ the old value stored under $k_t$ is
# *replaced*. Gated DeltaNet {cite:p}`yang2024gated` also decays the state,
# $S_t = \alpha_t S_{t-1}(I - \beta_t k_t k_t^\top) + \beta_t v_t k_t^\top$, to forget in bulk.
#
# ### Chunkwise = recurrent
#
# The recurrence is sequential. The chunkwise form (see `llm.delta_rule_chunkwise`)
# writes the product of a chunk's $(I - \beta k k^\top)$ factors in the WY form and finds
# all of a chunk's updates with two triangular solves, so training runs in matrix
# products. The two forms must agree; we check the gradient-step reading of one step too.

# %%
torch.manual_seed(0)
B, H, T, dk, dv = 2, 3, 100, 16, 12
q = F.normalize(torch.randn(B, H, T, dk, dtype=torch.float64), dim=-1)
k = F.normalize(torch.randn(B, H, T, dk, dtype=torch.float64), dim=-1)
v = torch.randn(B, H, T, dv, dtype=torch.float64)
beta = torch.rand(B, H, T, dtype=torch.float64)
alpha = torch.rand(B, H, T, dtype=torch.float64) * 0.5 + 0.5
chunk_err = {}
for name, a in (("DeltaNet", None), ("Gated DeltaNet", alpha)):
    o_rec, S_rec = llm.delta_rule_recurrent(q, k, v, beta, a)
    for C in (1, 7, 32, 64):
        o_chk, S_chk = llm.delta_rule_chunkwise(q, k, v, beta, a, chunk_size=C)
        err = max((o_rec - o_chk).abs().max().item(), (S_rec - S_chk).abs().max().item())
        chunk_err[name, C] = err
print({f"{n}, C={c}": f"{e:.1e}" for (n, c), e in chunk_err.items()})
worst_chunk = max(chunk_err.values())
assert worst_chunk < 1e-12, f"claim no longer holds: 'chunkwise = recurrent' ({worst_chunk:.1e})"
glue("ch19_chunk_err", worst_chunk, display=False)

# one step = one gradient step on 1/2 ||S k - v||^2
S0 = torch.randn(dv, dk, dtype=torch.float64, requires_grad=True)
k1, v1, b1 = k[0, 0, 0], v[0, 0, 0], beta[0, 0, 0]
(0.5 * (S0 @ k1 - v1).pow(2).sum()).backward()
_, S1 = llm.delta_rule_recurrent(
    q[:1, :1, :1], k[:1, :1, :1], v[:1, :1, :1], beta[:1, :1, :1], initial_state=S0.detach()[None, None]
)
step_err = (S1[0, 0] - (S0 - b1 * S0.grad)).abs().max().item()
assert step_err < 1e-14, f"claim no longer holds: 'a delta step is a gradient step' ({step_err:.1e})"

# %% [markdown]
# In float64 the chunkwise outputs and final states equal the recurrent ones to
# {glue:text}`ch19_chunk_err:.0e` for chunks of 1, 7, 32 and 64 positions, with and without
# the gate, and one step of the rule is one gradient step of size $\beta$ on
# $\frac12\lVert S k - v\rVert^2$ (checked with autograd).
#
# ### A constant state, and what it costs in time
#
# Per layer and head, the delta-rule state holds $d_v d_k$ numbers whatever the length; a
# softmax layer's cache holds $2 T d$ and grows. We time one forward pass of the three
# forms (one head-batch of $B = 1$, $H = 4$, $d = 16$, float32) at growing $T$: the
# recurrent loop, the chunkwise form (chunks of 64), and causal softmax attention, each the
# best of 3 runs (the loop and softmax attention at $T = 4{,}096$ run once, to save time),
# in the same cell. We
# time with the CPU time of this process (`time.process_time`): with one thread it is the
# work done, and other programs sharing the machine cannot inflate it as they inflate
# wall-clock time.

# %%
# NBVAL_IGNORE_OUTPUT (times)
def best_time(fn, *args, repeats: int = 3, **kwargs) -> float:
    """The fastest of `repeats` calls fn(*args, **kwargs), in CPU seconds of this process."""
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn(*args, **kwargs)
        times.append(time.process_time() - start)
    return min(times)


timing, state_numbers, cache_numbers = {}, {}, {}
for T in (256, 1024, 4096):
    g = torch.Generator().manual_seed(T)
    q, k = (F.normalize(torch.randn(1, 4, T, 16, generator=g), dim=-1) for _ in range(2))
    v, beta = torch.randn(1, 4, T, 16, generator=g), torch.rand(1, 4, T, generator=g)
    mask = ak.causal_mask(T)
    with torch.no_grad():
        timing[T] = {
            "recurrent": best_time(llm.delta_rule_recurrent, q, k, v, beta, repeats=1 if T > 1024 else 3),
            "chunkwise": best_time(llm.delta_rule_chunkwise, q, k, v, beta, chunk_size=64),
            "softmax": best_time(ak.scaled_dot_product_attention, q, k, v, mask, repeats=1 if T > 1024 else 3),
        }
        _, S = llm.delta_rule_chunkwise(q, k, v, beta, chunk_size=64)
    state_numbers[T] = S[0].numel()  # (H, d_v, d_k)
    cache_numbers[T] = 2 * k[0].numel()  # keys and values, (H, T, d)
    print(f"T = {T:4}: " + ", ".join(f"{n} {t * 1e3:7.1f} ms" for n, t in timing[T].items())
          + f" | state {state_numbers[T]:,} numbers, KV cache {cache_numbers[T]:,}")  # fmt: skip

rec_vs_chunk = timing[4096]["recurrent"] / timing[4096]["chunkwise"]
soft_growth = timing[4096]["softmax"] / timing[1024]["softmax"]  # 4x the length
chunk_growth = timing[4096]["chunkwise"] / timing[1024]["chunkwise"]
assert len(set(state_numbers.values())) == 1, "claim no longer holds: 'the state does not grow'"
assert cache_numbers[4096] == 16 * cache_numbers[256], "claim: 'the cache grows with T'"
assert rec_vs_chunk > 3, f"claim no longer holds: 'chunkwise several times faster' ({rec_vs_chunk:.1f})"
assert soft_growth > 2 * chunk_growth and soft_growth > 8 > chunk_growth, (
    f"claim no longer holds: 'softmax time grows nearer 16x (quadratic), chunkwise nearer 4x "
    f"(linear), for 4x the length' ({soft_growth:.1f}x vs {chunk_growth:.1f}x)"
)
glue("ch19_rec_vs_chunk", rec_vs_chunk, display=False)
glue("ch19_soft_growth", soft_growth, display=False)
glue("ch19_chunk_growth", chunk_growth, display=False)
glue("ch19_state_numbers", state_numbers[4096], display=False)
glue("ch19_cache_4096", cache_numbers[4096], display=False)

# %% [markdown]
# On the machine that built this page, at $T = 4{,}096$ the chunkwise form is
# {glue:text}`ch19_rec_vs_chunk:.0f` times faster than the position-by-position loop
# (same outputs). From $T = 1{,}024$ to $4{,}096$ (4 times longer), softmax attention's time
# grew {glue:text}`ch19_soft_growth:.1f` times, the chunkwise form's
# {glue:text}`ch19_chunk_growth:.1f` times: nearer the 16 of a quadratic cost and the 4 of
# a linear one (checked: above and below their geometric midpoint, 8). At $T = 256$ the
# fixed costs of each call weigh too much to read a trend. The state stays at
# {glue:text}`ch19_state_numbers:,` numbers, where the softmax cache of the same heads at
# 4,096 tokens holds {glue:text}`ch19_cache_4096:,`. (Production kernels make the
# chunkwise form faster still; these are plain PyTorch, one thread.)

# %% [markdown]
# (ch19-hybrid)=
# ## Hybrid stacks
#
# A fixed-size state cannot remember everything: $d_k$ orthogonal keys fill it. The 2025
# models therefore keep a few softmax layers (with their growing cache) among many linear
# ones:
#
# | model | linear layers | softmax layers | ratio | source |
# |---|---|---|---|---|
# | Qwen3-Next-80B-A3B | Gated DeltaNet | gated attention | 3 : 1 | model card {cite:p}`qwen2025next` |
# | Kimi Linear | Kimi Delta Attention (a Gated DeltaNet refinement) | MLA | 3 : 1 | {cite:p}`kimiteam2025linear` |
# | MiniMax-01 | lightning (linear) attention | softmax | 7 : 1 | {cite:p}`minimax2025minimax01` |
# | Jamba | Mamba (a state-space layer) | softmax | 7 : 1 | {cite:p}`lieber2024jamba` |
#
# `llm.hybrid_mixer` builds such stacks for `llm.DecoderLM` by repeating a pattern over
# the layers. Built at width 8 (only the layer types matter here), the share of layers
# that keep a key/value cache is the fraction of a full-attention cache they need:

# %%
linear_layer = lambda: llm.DeltaNetAttention(8, 2, gated=True)  # noqa: E731
softmax_layer = lambda: llm.LLMSelfAttention(8, 2, qk_norm=True, output_gate=True)  # noqa: E731
STACKS = {"3 : 1 (Qwen3-Next, Kimi Linear)": (["lin"] * 3 + ["attn"], 48),
          "7 : 1 (MiniMax-01, Jamba)": (["lin"] * 7 + ["attn"], 80)}  # fmt: skip
cache_share = {}
for name, (pattern, layers) in STACKS.items():
    mixer = llm.hybrid_mixer(pattern, {"lin": linear_layer, "attn": softmax_layer})
    model = llm.DecoderLM(10, 8, layers, mixer)
    kinds = [type(b.mixer).__name__ for b in model.blocks]
    n_attn = kinds.count("LLMSelfAttention")
    cache_share[name] = n_attn / layers
    print(f"{name}: {layers} layers, first eight {kinds[:8]}\n   {n_attn} softmax layers: "
          f"cache {cache_share[name]:.1%} of full attention")  # fmt: skip
assert cache_share["3 : 1 (Qwen3-Next, Kimi Linear)"] == 0.25, "claim: '3:1 keeps a quarter'"
glue("ch19_cache_share_31", cache_share["3 : 1 (Qwen3-Next, Kimi Linear)"], display=False)
glue("ch19_cache_share_71", cache_share["7 : 1 (MiniMax-01, Jamba)"], display=False)

# %% [markdown]
# A 3 : 1 stack keeps {glue:text}`ch19_cache_share_31:.0%` of the cache, which is the
# "up to 75% less KV cache" Kimi Linear reports {cite:p}`kimiteam2025linear`; 7 : 1 keeps
# {glue:text}`ch19_cache_share_71:.1%`. (The layer counts, 48 and 80, are those of
# Qwen3-Next-80B-A3B and MiniMax-Text-01 from their model cards; Kimi Linear and Jamba
# have other depths, e.g. Jamba-v0.1's 32 layers are 4 blocks of 1 attention and 7 Mamba
# layers. The states of the linear layers add a constant.)
#
# ### Why keep any softmax layer: recall from a full memory
#
# Write $N$ random key–value pairs ($d_k = d_v = 16$, random unit keys) into a memory, then
# read each value back with its key and count a pair as recalled when the read-out is
# closer (in cosine) to its own value than to any other stored value. Three memories:
# **additive** linear attention ($S = \sum_j v_j k_j^\top$), the **delta rule**
# ($\beta = 1$), and **softmax attention** over the stored pairs (a cache; logits
# $10\cos$, a sharp softmax). Then a second test, *updating*: write $N = 8$ pairs, then
# write the same 8 keys again with new values, and measure how far the read-out is from
# the new value, $\lVert \text{read} - v_{\text{new}}\rVert / \lVert v_{\text{new}}\rVert$.
# Three seeds (0, 1, 2) each.

# %%
def recall(memory: str, N: int, seed: int, update: bool = False, d: int = 16) -> float:
    """Fraction of N random pairs recalled (nearest stored value in cosine) from a memory;
    with update, every key is written twice, and the mean relative error of the read-out
    against the second values is returned instead."""
    g = torch.Generator().manual_seed(seed)
    keys = F.normalize(torch.randn(1, 1, N, d, generator=g, dtype=torch.float64), dim=-1)
    values = torch.randn(1, 1, N, d, generator=g, dtype=torch.float64)
    written_k, written_v = keys, values
    if update:  # the same keys again, with new values: those are the answers
        values = torch.randn(1, 1, N, d, generator=g, dtype=torch.float64)
        written_k, written_v = torch.cat([keys, keys], 2), torch.cat([written_v, values], 2)
    if memory == "softmax (cache)":
        read = ak.scaled_dot_product_attention(keys * 10 * math.sqrt(d), written_k, written_v)
    else:
        if memory == "additive linear":
            S = written_v.transpose(-2, -1) @ written_k  # sum_j v_j k_j^T, (1, 1, d, d)
        else:
            beta = torch.ones(1, 1, written_k.shape[2], dtype=torch.float64)
            _, S = llm.delta_rule_recurrent(written_k, written_k, written_v, beta)
        read = keys @ S.transpose(-2, -1)  # S k_i for every i, (1, 1, N, d)
    if update:
        return ((read - values).norm(dim=-1) / values.norm(dim=-1)).mean().item()
    cos = F.normalize(read[0, 0], dim=-1) @ F.normalize(values[0, 0], dim=-1).T  # (N, N)
    return (cos.argmax(-1) == torch.arange(N)).double().mean().item()


MEMORIES, SIZES, RECALL_SEEDS = ("additive linear", "delta rule", "softmax (cache)"), (8, 16, 32, 64, 128), (0, 1, 2)
recalled = {m: np.array([[recall(m, N, s) for N in SIZES] for s in RECALL_SEEDS]) for m in MEMORIES}
updated = {m: np.array([recall(m, 8, s, update=True) for s in RECALL_SEEDS]) for m in MEMORIES}
fig, ax = plt.subplots(figsize=(5.5, 3.2))
for m in MEMORIES:
    ax.errorbar(SIZES, recalled[m].mean(0), yerr=recalled[m].std(0), marker="o", label=m, capsize=3)
ax.set_xscale("log", base=2)
ax.axvline(16, color="gray", linestyle=":", label="$d_k = 16$")
ax.set_xlabel("pairs stored, N")
ax.set_ylabel("fraction recalled")
ax.set_title("Recall from a fixed state vs a cache (3 seeds)")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()
for m in MEMORIES:
    print(f"{m:16} stored once: {dict(zip(SIZES, recalled[m].mean(0).round(2).tolist(), strict=True))}"
          f" | error after rewriting 8 keys: {updated[m].round(2).tolist()}")  # fmt: skip
i128 = SIZES.index(128)
assert recalled["softmax (cache)"].min() == 1.0, "claim no longer holds: 'the cache recalls all'"
for m in ("additive linear", "delta rule"):
    assert recalled[m][:, i128].max() < 0.3, f"claim no longer holds: '{m} fails at 128 pairs'"
assert updated["delta rule"].max() < 0.5 * updated["additive linear"].min(), (
    f"claim no longer holds: 'after rewriting, the delta rule's error is under half the "
    f"additive one' ({updated})"
)
for m in ("additive linear", "delta rule"):
    assert recalled[m][:, 0].mean() > 0.8, f"claim no longer holds: '{m} recalls most of 8 pairs'"
assert recalled["delta rule"][:, 1].mean() < recalled["additive linear"][:, 1].mean(), (
    "claim no longer holds: 'at 16 pairs the delta rule recalls fewer than the additive memory'"
)
glue("ch19_recall_add_8", float(recalled["additive linear"][:, 0].mean()), display=False)
glue("ch19_recall_delta_8", float(recalled["delta rule"][:, 0].mean()), display=False)
glue("ch19_recall_add_16", float(recalled["additive linear"][:, 1].mean()), display=False)
glue("ch19_recall_delta_16", float(recalled["delta rule"][:, 1].mean()), display=False)
glue("ch19_recall_add_128", float(recalled["additive linear"][:, i128].mean()), display=False)
glue("ch19_recall_delta_128", float(recalled["delta rule"][:, i128].mean()), display=False)
glue("ch19_update_add", float(updated["additive linear"].mean()), display=False)
glue("ch19_update_delta", float(updated["delta rule"].mean()), display=False)
glue("ch19_update_soft", float(updated["softmax (cache)"].mean()), display=False)

# %% [markdown]
# Both fixed-size memories recall most pairs at $N = 8$ (additive
# {glue:text}`ch19_recall_add_8:.0%`, delta rule {glue:text}`ch19_recall_delta_8:.0%`;
# means over the three seeds, as every number below) and fall apart once $N$ passes
# $d_k = 16$: at 128 pairs the additive memory recalls
# {glue:text}`ch19_recall_add_128:.0%` and the delta rule
# {glue:text}`ch19_recall_delta_128:.0%`, while the cache recalls all of them, every seed. The delta rule is not a bigger memory — at 16 pairs
# it recalls {glue:text}`ch19_recall_delta_16:.0%` against additive's
# {glue:text}`ch19_recall_add_16:.0%`, because with $\beta = 1$ each write overwrites what
# overlapping keys had stored — but a better-managed one: after the 8 keys are rewritten,
# its read-out is {glue:text}`ch19_update_delta:.2f` away from the new values (relative
# error), against {glue:text}`ch19_update_add:.2f` for the additive memory, which returns
# old plus new (and {glue:text}`ch19_update_soft:.2f` for the cache, which averages the two
# entries of each key). Hence the hybrids: linear layers for the bulk of the layers, and a
# few softmax layers whose cache can look anything up exactly.
#
# We also tried to show this with trained models — two-layer softmax, DeltaNet-then-softmax
# and DeltaNet-only models on multi-query associative recall, 200 to 400 steps, 2 seeds
# (trial runs, not re-run here) — but within this chapter's budget none of them learned
# the task: recall stayed at or below 13% (chance 3 to 6%), the softmax models no better
# than the others. So we measure the memories directly. The trained comparisons are the
# papers': Kimi Linear reports its 3 : 1 hybrid beating full MLA attention under the same
# training recipe {cite:p}`kimiteam2025linear`.

# %% [markdown]
# (ch19-sparse)=
# ## Sparse attention for long contexts
#
# The other way to tame the cost: keep softmax attention and its cache, but let each
# query **read** only a few keys. Two 2025 designs:
#
# - **DeepSeek Sparse Attention** (DeepSeek-V3.2-Exp {cite:p}`deepseekai2025v32`): a small
#   *lightning indexer* scores every earlier token for each query,
#   $I_{t,s} = \sum_j w_{t,j}\,\mathrm{ReLU}(q^I_{t,j}\cdot k^I_s)$, and attention reads
#   only the top-$k$ tokens ($k = 2048$ in V3.2). The indexer still touches every token,
#   but with a small number of heads, in FP8; the expensive attention reads $k$.
# - **Native Sparse Attention** (Yuan et al. {cite:p}`yuan2025native`): each query mixes,
#   with learned gates, attention over *compressed* blocks of keys, over the tokens of the
#   top blocks that the compressed scores select, and over a sliding window.
#
# `llm.topk_sparse_attention` *gathers* the selected keys and attends over them; it must
# equal dense attention with every other key masked out. `llm.nsa_attention` is built from
# `llm.nsa_masks`; we check its selected branch the same way.

# %%
torch.manual_seed(0)
B, H, T, d = 2, 4, 96, 16
q = torch.randn(B, H, T, d, dtype=torch.float64)
kv = torch.randn(B, T, d, dtype=torch.float64)
scores = llm.indexer_scores(torch.randn(B, T, 2, 8, dtype=torch.float64),
                            torch.randn(B, T, 8, dtype=torch.float64),
                            torch.rand(B, T, 2, dtype=torch.float64))  # fmt: skip
selected = llm.topk_token_mask(scores, top_k=16)  # (B, T, T)
sparse = llm.topk_sparse_attention(q, kv, kv, selected)
dense = ak.scaled_dot_product_attention(q, kv[:, None], kv[:, None], selected[:, None])
topk_err = (sparse - dense).abs().max().item()
assert topk_err < 1e-14, f"claim no longer holds: 'top-k gather = masked dense' ({topk_err:.1e})"
assert bool((selected.sum(-1) == torch.clamp(torch.arange(T) + 1, max=16)).all()), (
    "claim no longer holds: 'each query reads min(t + 1, k) keys'"
)
glue("ch19_topk_err", topk_err, display=False)

gates = torch.rand(B, H, T, 3, dtype=torch.float64)
k1, v1 = kv[:, None], kv[:, None]
only_selected = torch.zeros_like(gates)
only_selected[..., 1] = 1.0
_, sel_mask, _ = llm.nsa_masks(q, k1, block_size=8, top_blocks=2, window=16)
nsa_sel = llm.nsa_attention(q, k1, v1, only_selected, block_size=8, top_blocks=2, window=16)
nsa_err = (nsa_sel - ak.scaled_dot_product_attention(q, k1, v1, sel_mask[:, None])).abs().max().item()
assert nsa_err < 1e-14, f"claim no longer holds: 'NSA selection = masked dense' ({nsa_err:.1e})"
glue("ch19_nsa_err", nsa_err, display=False)

# %% [markdown]
# Both equal the masked dense reference (to {glue:text}`ch19_topk_err:.0e` and
# {glue:text}`ch19_nsa_err:.0e`). How many keys does the **last** query of a context of
# length $T$ read? Dense: $T$. Top-$k$: $k$ (we use V3.2's 2,048) plus the indexer's $T$
# cheap scores. NSA, with illustrative sizes (blocks of 64, 16 selected blocks, a window
# of 512; the paper also compresses with overlapping blocks, which we simplify to the
# selection blocks {cite:p}`yuan2025native`): its complete compressed blocks, the tokens
# of the selected blocks (plus its own block) and the window, counted from
# `llm.nsa_masks` up to 4,096 tokens and bounded by
# $T/64 + 17 \cdot 64 + 512$ beyond.

# %%
def nsa_keys_read(T: int, block: int = 64, top: int = 16, window: int = 512) -> int:
    """Keys the last query of T tokens reads in NSA, counted from llm.nsa_masks (the three
    branches summed: complete compressed blocks, selected tokens, window)."""
    g = torch.Generator().manual_seed(T)
    q, k = torch.randn(2, 1, 1, T, 8, generator=g).unbind(0)  # (B, H, T, d) each
    compressed, selected, windowed = llm.nsa_masks(q, k, block_size=block, top_blocks=top, window=window)
    return int(compressed[0, -1].sum() + selected[0, -1].sum() + windowed[-1].sum())


def nsa_bound(T: int, block: int = 64, top: int = 16, window: int = 512) -> int:
    """T // block compressed blocks + at most (top + 1) blocks of tokens + the window."""
    return T // block + min((top + 1) * block, T) + min(window, T)


reads = {}
for T in (1024, 4096, 131072):
    nsa_n = nsa_keys_read(T) if T <= 4096 else nsa_bound(T)
    assert nsa_n <= nsa_bound(T), f"claim no longer holds: 'NSA reads at most the bound' (T = {T})"
    reads[T] = (T, min(2048, T), nsa_n)
    print(f"T = {T:7,}: dense {T:7,} | top-k {min(2048, T):5,} (+ {T:,} indexer scores) | "
          f"NSA {nsa_n:5,}{' (bound)' if T > 4096 else ''} keys per query")  # fmt: skip
assert reads[1024][2] > 1024, (
    f"claim no longer holds: 'at 1,024 tokens NSA's branches read more keys than dense "
    f"attention' ({reads[1024][2]})"
)
glue("ch19_nsa_1024", reads[1024][2], display=False)
glue("ch19_nsa_4096", reads[4096][2], display=False)
glue("ch19_nsa_131k", reads[131072][2], display=False)
glue("ch19_nsa_ratio_131k", 131072 / reads[131072][2], display=False)

# %% [markdown]
# At 4,096 tokens the last query reads {glue:text}`ch19_nsa_4096:,` keys under NSA; at
# 131,072 at most {glue:text}`ch19_nsa_131k:,`, {glue:text}`ch19_nsa_ratio_131k:.0f` times
# fewer than dense attention, and 2,048 under
# top-$k$ selection; the count grows only through the compressed blocks ($T/64$). At short
# contexts sparsity buys nothing: at 1,024 tokens the three branches together read
# {glue:text}`ch19_nsa_1024:,` keys, more than dense attention's 1,024, because they
# overlap (the window and the selected blocks cover the same recent tokens). What is
# saved is the reading of keys and values — the memory traffic that dominates decoding
# ({doc}`chapter 17 <17_serving_memory>`); the cache itself is kept whole, since any token
# may be selected later.

# %% [markdown]
# (ch19-summary)=
# ## Summary
#
# - The $1/\sqrt{d_k}$ scale fixes the logits' variance **at initialisation**; training
#   grows and aligns queries and keys. At a high learning rate a small model's largest
#   logit reached {glue:text}`ch19_maxlogit_plain_min:,.0f` to
#   {glue:text}`ch19_maxlogit_plain_max:,.0f` (3 seeds); **QK-norm** bounded it by
#   $\sqrt{d_k}\max|g_q|\max|g_k|$ (checked against the learned gains), **soft-capping**
#   by $c$. No run diverged to NaN at this scale.
# - An **output gate** after attention lets a head output nothing, so it needs no sink
#   on the first token: in our small models (2 seeds) the first token's share of the
#   attention fell from {glue:text}`ch19_share_plain:.1%` to {glue:text}`ch19_share_gated:.1%`.
# - **Differential attention** subtracts a second softmax map; the shared spread cancels
#   (the relevant-to-rest ratio rose from {glue:text}`ch19_snr_softmax:.2f` to
#   {glue:text}`ch19_snr_diff:.2f` in our example). **Sigmoid attention** with bias
#   $-\log n$ keeps rows near $e^{1/2}$ in total, at any length.
# - The **delta rule** is online regression on the state,
#   $S_t = S_{t-1} - \beta_t (S_{t-1}k_t - v_t)k_t^\top$; its chunkwise form equals the
#   recurrence ({glue:text}`ch19_chunk_err:.0e` in float64) and runs as matrix products.
#   The state is constant in $T$, but its recall falls apart once $N$ passes $d_k$ stored
#   pairs (of 128 pairs at $d_k = 16$: {glue:text}`ch19_recall_add_128:.0%` additive,
#   {glue:text}`ch19_recall_delta_128:.0%` delta rule; a cache recalls all), so **hybrid
#   stacks** keep one softmax layer in four (Qwen3-Next, Kimi Linear) or eight (MiniMax-01,
#   Jamba), and a quarter or an eighth of the cache.
# - **Sparse attention** (DeepSeek's top-$k$ indexer, NSA) keeps softmax and its cache but
#   reads a bounded number of keys per query, exactly equal to masked dense attention on
#   the keys it selects.
#
# The exercises implement the pieces: a soft-cap, one delta-rule step, sigmoid attention
# with its bias, and a causal top-$k$ selection mask.

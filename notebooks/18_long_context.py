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
# # Long and streaming contexts: windows, attention sinks, RoPE scaling and ALiBi
#
# A model is trained on sequences of some length $L$ (4,096 tokens for Llama 2
# {cite:p}`touvron2023llama2`, 8,192 for Gemma 2 {cite:p}`gemmateam2024gemma2`). Users then want more: a chat that never ends, a book in one prompt. Two
# different problems hide behind "a longer context":
#
# - **memory and work**: the key/value cache of {doc}`chapter 17 <17_serving_memory>`
#   grows with every token, and each new token attends to all of it. *Sliding windows*
#   bound both, and a stack of windowed layers still reaches far back;
# - **positions the model never saw**: past $L$, a RoPE model meets rotation angles it was
#   never trained on, and its predictions fall apart. Two families of fixes: keep the
#   positions small (a *rolling cache* whose tokens are renumbered, as StreamingLLM does,
#   with *attention sinks*), or stretch the rotary frequencies (*position interpolation*,
#   *NTK-aware scaling*, *YaRN*), or use a position scheme that extrapolates by design
#   (*ALiBi*).
#
# This chapter builds each piece in `attnkit.llm`, checks it against a float64 reference,
# and measures all of them on the same small character-level language models trained at
# $L = 64$ and read at up to $8L$. The models are tiny, so the chapter says plainly which
# published effects they reproduce and which they do not.

# %%

import math

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from myst_nb import glue
from torch.utils.flop_counter import FlopCounterMode

import attnkit as ak
from attnkit import llm
from attnkit.data import CharTokenizer, stdlib_docstrings, train_val_split

torch.manual_seed(0)
# One thread: the book runs its chapters side by side, one thread each, so every number
# below is the same on any machine, however many cores it has.
torch.set_num_threads(1)
torch.set_printoptions(precision=4, sci_mode=False)
plt.rcParams.update({"figure.dpi": 100, "axes.grid": False})
print("torch", torch.__version__, "| attnkit", ak.__version__)

# %% [markdown]
# (ch18-sliding-window)=
# ## Sliding windows and local/global layers
#
# ### The mask and the receptive field
#
# In *sliding-window attention* the query at position $i$ sees only the $W$ most recent
# positions, itself included:
#
# $$
# \text{allowed}(i, j) = \big[\, j \le i \,\big] \wedge \big[\, i - j < W \,\big].
# $$
#
# Each layer's work and cache per token are then bounded by $W$, not by the length of the
# text. Information still travels further: layer 1 mixes positions $i - W + 1 \dots i$,
# layer 2 mixes the outputs of layer 1, each of which already summarises $W$ positions,
# so after $\ell$ layers position $i$ depends on
#
# $$
# \ell\,(W - 1) + 1 \quad \text{positions}
# $$
#
# (the *receptive field* grows by $W - 1$ per layer, as in a stack of convolutions).
# Mistral 7B uses $W = 4096$ in all of its 32 layers; its paper counts a theoretical
# attention span of about 131K tokens ($32 \times 4096$) {cite:p}`jiang2023mistral`.
# Gemma 2 alternates layers: a *local* layer with a 4,096-token window, then a *global*
# layer over the whole 8,192-token context {cite:p}`gemmateam2024gemma2`. One global layer
# is enough to make the receptive field the whole context.
#
# `llm.LLMSelfAttention(..., window=W)` applies this mask; with `num_sinks=S` the first
# $S$ positions stay visible to every query as well (we come back to these *sinks*
# below). First the masks, then the receptive field, *measured*: change the token at
# position $j$ and look whether the last position's logits move.

# %%
T_pic, W_pic = 12, 4
masks = {
    "causal": llm.LLMSelfAttention(8, 2).mask(T_pic),
    f"window W = {W_pic}": llm.LLMSelfAttention(8, 2, window=W_pic).mask(T_pic),
    f"W = {W_pic} + 2 sinks": llm.LLMSelfAttention(8, 2, window=W_pic, num_sinks=2).mask(T_pic),
}
for name, m in masks.items():
    print(f"{name:18}: keys per query {m.sum(-1).tolist()}")
assert masks[f"window W = {W_pic}"].sum(-1).max() == W_pic, "claim: 'at most W keys per query'"


def reach(pattern: list[str], window: int, T: int = 24) -> list[int]:
    """Positions j whose token changes the last position's logits, in a random float64
    DecoderLM whose layers follow `pattern` ('local': window, 'global': full causal)."""
    torch.manual_seed(1)
    factories = {
        "local": lambda: llm.LLMSelfAttention(16, 2, window=window),
        "global": lambda: llm.LLMSelfAttention(16, 2),
    }
    model = llm.DecoderLM(10, 16, len(pattern), llm.hybrid_mixer(pattern, factories)).double()
    idx = torch.randint(0, 10, (1, T), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        base = model(idx)[0, -1]
        found = []
        for j in range(T):
            changed = idx.clone()
            changed[0, j] = (changed[0, j] + 1) % 10
            if (model(changed)[0, -1] - base).abs().max() > 1e-13:
                found.append(j)
    return found


W = 4
fields = {}
for pattern in (["local"], ["local"] * 2, ["local"] * 3, ["local", "global"]):
    r = reach(pattern, W)
    fields["+".join(pattern)] = len(r)
    print(
        f"{' + '.join(pattern):22}: last position depends on {len(r):2d} positions {r[0]}..{r[-1]}"
    )
for n_layers in (1, 2, 3):
    got = fields["+".join(["local"] * n_layers)]
    assert got == n_layers * (W - 1) + 1, (
        f"claim no longer holds: 'receptive field l(W-1)+1' ({n_layers} layers: {got})"
    )
assert fields["local+global"] == 24, "claim no longer holds: 'one global layer sees everything'"
glue("ch18_rf3", fields["local+local+local"], display=False)

fig, axes = plt.subplots(1, 3, figsize=(9, 3.1))
for ax, (name, m) in zip(axes, masks.items(), strict=True):
    ax.imshow(m.numpy(), cmap="Blues", vmin=0, vmax=1.3)
    ax.set_title(name)
    ax.set_xlabel("key position j")
    ax.set_xticks(range(0, T_pic, 2))
    ax.set_yticks(range(0, T_pic, 2))
axes[0].set_ylabel("query position i")
plt.suptitle("Which keys each query sees (dark: allowed)")
plt.tight_layout()
plt.show()

# %% [markdown]
# Three windowed layers with $W = 4$ make the last position depend on exactly
# {glue:text}`ch18_rf3` positions, $3 \cdot (4 - 1) + 1$; put one global layer in the
# stack and it depends on all 24. The dependence is exact, not approximate: outside the
# receptive field the logits do not move at all, because masked keys get a weight of
# exactly zero.
#
# ### The rolling buffer: a bounded cache
#
# With a window, a token older than $W$ positions is never read again, so the cache can
# drop it. Mistral 7B keeps a *rolling buffer* of $W$ slots and writes position $i$ into
# slot $i \bmod W$, overwriting the token that just left the window
# {cite:p}`jiang2023mistral`. `llm.SinkCache(window=W)` keeps the same set of tokens (it
# appends and slices instead of overwriting in place, so its slots are in arrival order).
# The saving is simple arithmetic: at 32k tokens a 4,096-token window keeps 8 times less
# (the figure Mistral's paper gives),
# and Gemma 2's alternation keeps, at its full 8,192-token context, $4{,}096$ tokens in
# half the layers and $8{,}192$ in the other half.

# %%
cache = llm.SinkCache(window=W)
sizes = []
for t in range(20):
    kv = torch.full((1, 1, 1, 2), float(t))  # (B, H_kv, 1, D): token t's key and value
    cache.append(kv, kv)
    sizes.append(len(cache))
print("cache size after each token:", sizes)
print("tokens kept after 20 tokens:", cache.token_index.tolist())
assert max(sizes) == W and cache.token_index.tolist() == [16, 17, 18, 19], "rolling buffer"
mistral_saving = 32768 / 4096
gemma2_share = (4096 + 8192) / (2 * 8192)
print(f"Mistral 7B at 32k tokens keeps 1/{mistral_saving:.0f} of a full cache; "
      f"Gemma 2 at 8k keeps {gemma2_share:.0%} of a full cache")  # fmt: skip
glue("ch18_gemma2_share", gemma2_share, display=False)

# %% [markdown]
# Gemma 2 thus keeps {glue:text}`ch18_gemma2_share:.0%` of a full cache at 8k: local
# layers halve only their own half. The window is a trade: tokens further back than the
# receptive field cannot influence the prediction at all, and within it, old tokens reach
# the top only through intermediate positions. Mistral's paper reports that its model,
# with this window, beats Llama 2 13B on its benchmarks {cite:p}`jiang2023mistral`; what
# the window alone costs in quality it does not isolate.

# %% [markdown]
# (ch18-models)=
# ## Small models trained at $L = 64$
#
# To test what happens past the trained length we need a trained model. We train
# character-level decoders (`llm.DecoderLM`: pre-norm, RMSNorm, SwiGLU, tied embeddings)
# on the Python docstrings of {doc}`chapter 4 <04_text_generation>`: width 64, 2 layers,
# 4 heads of width 16, every training window $L = 64$ characters long. Two kinds:
#
# - **RoPE** in every layer (base 10,000), the model of the next two sections;
# - **ALiBi** in every layer, no RoPE ({ref}`ch18-alibi`).
#
# Each kind is trained with seeds 0 and 1 (initial weights and batches): 300 steps of 16
# windows, AdamW at a peak learning rate of $3 \times 10^{-3}$ with 50 warm-up steps and a
# cosine decay. These runs are short: the models are far from converged, and every
# conclusion below is about models of this size and training.

# %%
text = stdlib_docstrings()
train_text, val_text = train_val_split(text, 0.1)
tok = CharTokenizer([train_text])
V = len(tok)
train_ids = torch.tensor(tok.encode(train_text))
val_ids = torch.tensor(tok.encode(val_text))
L, D_MODEL, LAYERS, HEADS = 64, 64, 2, 4
STEPS, BATCH, SEEDS = 300, 16, (0, 1)


def train_batches(seed: int):
    """Endless (BATCH, L + 1) random windows of the training text."""
    g = torch.Generator().manual_seed(seed)
    while True:
        starts = torch.randint(0, len(train_ids) - L - 1, (BATCH,), generator=g).tolist()
        yield torch.stack([train_ids[s : s + L + 1] for s in starts])


def make_model(kind: str, seed: int) -> llm.DecoderLM:
    torch.manual_seed(seed)
    if kind == "rope":
        mixer = lambda i: llm.LLMSelfAttention(D_MODEL, HEADS)  # noqa: E731
    else:
        mixer = lambda i: llm.LLMSelfAttention(D_MODEL, HEADS, rope_base=None, alibi=True)  # noqa: E731
    return llm.DecoderLM(V, D_MODEL, LAYERS, mixer)


models = {}
for kind in ("rope", "alibi"):
    for seed in SEEDS:
        model = make_model(kind, seed)
        config = ak.TrainConfig(
            steps=STEPS, lr=3e-3, warmup_steps=50, eval_every=STEPS, seed=seed, progress=False
        )
        result = ak.train(model, llm.lm_loss, train_batches(seed), config)
        assert result.steps_done == STEPS, f"expected {STEPS} steps, found {result.steps_done}"
        models[kind, seed] = model.eval()
        print(f"{kind:5} seed {seed}: final training loss {result.history[-1]['train_loss']:.3f}")
glue("ch18_params", ak.count_parameters(models["rope", 0]), display=False)

# %% [markdown]
# Each model has {glue:text}`ch18_params:,` parameters.
#
# (ch18-attention-sinks)=
# ## Streaming past $L$: the window cache and attention sinks
#
# ### Three ways to read an endless stream
#
# StreamingLLM {cite:p}`xiao2024efficient` compares three ways to run a model trained on $L$
# tokens over a stream much longer than $L$, with bounded work per token:
#
# - **window cache**: keep the keys and values of the last $W$ tokens per layer (the
#   rolling buffer above); the first tokens of the stream are evicted after $W$ steps;
# - **sliding window with re-computation**: for each new token, run the model afresh on
#   the last $W$ tokens. Each prediction is exactly what the model was trained to do, but
#   every token costs a forward pass over $W$ tokens;
# - **sinks + window**: keep the first $S$ tokens of the stream *for ever*, plus the last
#   $W$. The paper keeps $S = 4$ and reports that this restores the perplexity that the
#   window cache loses on Llama-2, MPT, Falcon and Pythia, streaming up to 4 million
#   tokens, up to 22.2 times faster than re-computation.
#
# The reason it gives: trained LLMs put a large share of their attention on the first
# tokens, whatever they are, because softmax weights must sum to one and the first token
# is visible to every query: it becomes a place to park attention that has nowhere useful
# to go, an **attention sink**. Evict it and the weights of every row are redistributed.
# (The paper also finds that adding a placeholder token as a dedicated sink during
# pre-training further improves streaming.)
#
# ### Positions inside the cache
#
# Positions matter as much as the tokens. StreamingLLM numbers the tokens by their
# **slot in the cache**, not their position in the text: with tokens $[0, 1, 2, 3, 6, 7,
# 8]$ cached and token 9 arriving, the positions are $0, 1, \dots, 7$, so no position ever
# exceeds the cache size. For RoPE this means caching keys *before* the rotation and
# rotating them at every step with their current slot. `llm.streaming_logits` does exactly
# this (each layer has its own `llm.SinkCache` of unrotated keys), and
# `llm.recompute_window_logits` is the re-computation baseline. Two checks in float64 on a
# random model: before anything is evicted, streaming must equal the model run on the
# whole prefix; afterwards, for a one-layer model (whose cached keys depend on their token
# alone), step $t$ must equal the model run on the kept tokens at positions $0 .. n-1$.

# %%
torch.manual_seed(3)
probe = llm.DecoderLM(V, 32, 1, lambda i: llm.LLMSelfAttention(32, 4)).double().eval()
for p in probe.parameters():  # larger weights than the 0.02 init: sharper attention
    torch.nn.init.normal_(p, std=0.3)
ids = val_ids[:40].view(1, -1)  # (1, 40)
W_probe, S_probe = 8, 4
with torch.no_grad():
    streamed = llm.streaming_logits(probe, ids, window=W_probe, num_sinks=S_probe)
    prefix_diff = (streamed[:, :12] - probe(ids[:, :12])).abs().max().item()
    block = probe.blocks[0]
    kept_diff = 0.0
    for t in range(12, 40):
        kept = list(range(S_probe)) + list(range(t - W_probe + 1, t + 1))  # the cache's tokens
        x = probe.embed(ids[:, kept])  # (1, n, d)
        x = x + block.mixer(block.mixer_norm(x), positions=torch.arange(len(kept)))
        x = x + block.ffn(block.ffn_norm(x))
        rerun = probe.head(probe.norm(x))[:, -1]
        kept_diff = max(kept_diff, (streamed[:, t] - rerun).abs().max().item())
print(f"before eviction, max |streaming - full model|           = {prefix_diff:.1e}")
print(f"after eviction,  max |streaming - rerun on kept tokens| = {kept_diff:.1e}")
assert max(prefix_diff, kept_diff) < 1e-12, (
    f"claim no longer holds: 'streaming is exact to rounding' ({prefix_diff:.1e}, {kept_diff:.1e})"
)
glue("ch18_stream_diff", max(prefix_diff, kept_diff), display=False)

# %% [markdown]
# Both agree to {glue:text}`ch18_stream_diff:.0e`. (With several layers the cached keys
# of layer 2 were computed when their token arrived, from the context it had then; that
# is what makes the window cache differ from re-computation. The tests of `attnkit`
# compare the multi-layer case with a reference that stores every token's key and value
# and re-rotates the kept ones by hand.)
#
# ### The measurement
#
# Each trained RoPE model reads 4 streams of $8L = 512$ characters of validation text, in
# four ways: the **full** model with an unbounded cache (positions up to 511, far beyond
# the trained 63), the **window** cache of 64 tokens, **sinks + window** (4 sinks and 60
# recent tokens: the same 64 slots), and **re-computation** over the last 64 tokens. We
# report the perplexity of the characters after the first $L$ (before that, the four are
# the same computation).

# %%
N_STREAM, B_STREAM, SINKS = 8 * L, 4, 4
starts = torch.linspace(0, len(val_ids) - N_STREAM - 2, B_STREAM).long().tolist()
stream_x = torch.stack([val_ids[s : s + N_STREAM] for s in starts])  # (4, 512)
stream_y = torch.stack([val_ids[s + 1 : s + N_STREAM + 1] for s in starts])


def token_nll(logits: torch.Tensor) -> torch.Tensor:
    """(B, N) cross-entropy of each next character."""
    return F.cross_entropy(logits.flatten(0, 1), stream_y.flatten(), reduction="none").view(
        stream_y.shape
    )


streaming = {}  # (method, seed) -> (B, N) losses
for seed in SEEDS:
    model = models["rope", seed]
    with torch.no_grad():
        streaming["full", seed] = token_nll(model(stream_x))
    streaming["window", seed] = token_nll(llm.streaming_logits(model, stream_x, window=L))
    streaming["sinks + window", seed] = token_nll(
        llm.streaming_logits(model, stream_x, window=L - SINKS, num_sinks=SINKS)
    )
    streaming["re-computation", seed] = token_nll(
        llm.recompute_window_logits(model, stream_x, window=L)
    )
METHODS = ("full", "window", "sinks + window", "re-computation")
stream_ppl = {k: math.exp(v[:, L:].mean().item()) for k, v in streaming.items()}
print("perplexity of characters L..8L-1   " + "   ".join(f"seed {s}" for s in SEEDS))
for method in METHODS:
    print(f"{method:16}" + "".join(f"{stream_ppl[method, s]:10.2f}" for s in SEEDS))

for seed in SEEDS:
    ref = stream_ppl["re-computation", seed]
    for method in ("window", "sinks + window"):
        gap = abs(stream_ppl[method, seed] / ref - 1)
        assert gap < 0.03, (
            f"claim no longer holds: 'window and sinks within 3% of re-computation' "
            f"(seed {seed}, {method}: {gap:.1%})"
        )
    blowup = stream_ppl["full", seed] / ref
    assert blowup > 1.3, (
        f"claim no longer holds: 'the unbounded model fails past L' (seed {seed}: {blowup:.2f}x)"
    )
gaps = [
    abs(stream_ppl[m, s] / stream_ppl["re-computation", s] - 1)
    for m in ("window", "sinks + window")
    for s in SEEDS
]
glue("ch18_stream_gap", max(gaps), display=False)
glue(
    "ch18_full_blowup",
    min(stream_ppl["full", s] / stream_ppl["re-computation", s] for s in SEEDS),
    display=False,
)
glue("ch18_recompute_ppl0", stream_ppl["re-computation", 0], display=False)
glue("ch18_full_ppl0", stream_ppl["full", 0], display=False)

fig, ax = plt.subplots(figsize=(7, 3.2))
segments = np.arange(0, N_STREAM, L)
for method, style in zip(METHODS, ("k-", "C0o-", "C1s--", "C2^:"), strict=True):
    per_seg = [
        [math.exp(streaming[method, s][:, a : a + L].mean().item()) for a in segments]
        for s in SEEDS
    ]
    ax.plot(segments + L / 2, np.mean(per_seg, axis=0), style, label=method, markersize=4)
ax.axvline(L, color="gray", lw=0.8)
ax.text(L + 5, ax.get_ylim()[1] * 0.95, "trained length L", color="gray", va="top")
ax.set_xlabel("position in the stream (centre of each block of 64 characters)")
ax.set_ylabel("perplexity (mean of 2 seeds)")
ax.set_title("Streaming 8L characters with a 64-slot cache")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# Past $L$, the model with an unbounded cache degrades steadily as positions grow (at
# least {glue:text}`ch18_full_blowup:.1f` times the perplexity of re-computation; for
# seed 0, {glue:text}`ch18_full_ppl0:.1f` against {glue:text}`ch18_recompute_ppl0:.2f`):
# RoPE does not extrapolate here. The three bounded methods follow the difficulty of the
# text (their bumps are the same), and they are **indistinguishable**: the window cache, with its
# first tokens evicted, is within {glue:text}`ch18_stream_gap:.1%` of re-computation, as
# are sinks + window. The collapse that StreamingLLM reports for the window cache does
# not happen in these models. The measurement that explains why: how much attention do
# they put on the first token?
#
# ### Is there a sink?
#
# On 32 validation windows of length $L$ we average, for every layer and head, the weight
# that queries at positions $t \ge 8$ give to position 0, and compare it with what a
# uniform row would give, the mean of $1/(t+1)$. A sink shows as a ratio well above 1.

# %%
probe_x = val_ids[: 32 * L].view(32, L)  # (32, 64)
t_q = torch.arange(L)
late = t_q >= 8
uniform = (1.0 / (t_q[late] + 1.0)).mean().item()
sink_ratio = {}  # (seed, layer) -> per-head ratios
for seed in SEEDS:
    with torch.no_grad():
        trace = llm.trace_decoder(models["rope", seed], probe_x)
    for layer, w in enumerate(trace.weights):
        on_first = llm.first_token_share(w, start=8)  # (H,): mean weight on position 0
        sink_ratio[seed, layer] = on_first / uniform
        print(f"seed {seed} layer {layer}: weight on the first token / uniform, per head: "
              f"{[round(r, 2) for r in sink_ratio[seed, layer].tolist()]}")  # fmt: skip
largest = max(r.max().item() for r in sink_ratio.values())
mean_ratio = torch.cat(list(sink_ratio.values())).mean().item()
assert mean_ratio < 0.8 and largest < 2, (
    f"claim no longer holds: 'no sink at this scale' (mean {mean_ratio:.2f}, max {largest:.2f})"
)
glue("ch18_sink_mean", mean_ratio, display=False)
glue("ch18_sink_max", largest, display=False)

# %% [markdown]
# **No sink emerges in these models.** Averaged over layers, heads and both seeds, the
# first token gets {glue:text}`ch18_sink_mean:.2f` times the weight of a uniform row,
# *less* than an average token; the most sink-like of the 16 heads gives it
# {glue:text}`ch18_sink_max:.1f` times a uniform share, a mild preference, not a sink.
# These models attend locally (characters depend mostly on the few before them) and have
# no weight parked on the first token to lose, so evicting it changes nothing. That is
# consistent with the paper's explanation, which ties the sink to attention that has
# nowhere useful to go; whether such a habit forms depends on the model and its training,
# and our two-layer, 300-step models did not form it. The mechanism is still worth
# knowing and is implemented exactly here; its *benefit* is a property of the trained
# model, and this chapter can only show that the benefit is absent when the sink is
# absent. Two things do carry over at any scale: the bounded cache keeps the positions
# inside the trained range (the "full" curve shows what happens otherwise), and the cache
# costs $S + W$ slots per layer whatever the length of the stream.

# %% [markdown]
# (ch18-rope-scaling)=
# ## Stretching RoPE: interpolation, NTK-aware scaling and YaRN
#
# The other route keeps every token and makes the positions fit. RoPE rotates feature
# pair $j$ of queries and keys by $m\,\theta_j$ at position $m$, with
# $\theta_j = b^{-2j/d}$ ({ref}`chapter 2 <ch02-relative>`). Over a trained length $L$,
# pair $j$ makes $r_j = L\,\theta_j / 2\pi$ turns: the fast pairs (small $j$) turn many
# times and have seen every angle; the slow pairs turn less than once and, past $L$, reach
# angles they never saw. To read $s L$ tokens (`llm.scaled_rope_frequencies`):
#
# - **Position interpolation** (PI) {cite:p}`chen2023extending` divides every frequency by
#   $s$: the positions $0 .. sL$ are squeezed into the trained range of angles. The paper
#   fine-tunes the extended model on the longer length, within 1,000 steps.
# - **NTK-aware scaling** (posted by "bloc97" on Reddit in 2023 and formalised in the YaRN
#   paper {cite:p}`peng2024yarn`) raises the base to $b\, s^{d/(d-2)}$: the slowest pair is
#   divided by exactly $s$, the fastest is almost unchanged.
# - **YaRN** {cite:p}`peng2024yarn` keeps the pairs that turn more than $\beta$ times over
#   $L$, interpolates those that turn less than $\alpha$ times, ramps linearly between, and
#   multiplies the logits by $(0.1 \ln s + 1)^2$. The paper uses $\alpha = 1$,
#   $\beta = 32$ for Llama, reports its main results after fine-tuning (400 steps for
#   $s = 16$ on Llama 2), and shows that a dynamic variant extends the context without
#   any fine-tuning.
#
# We apply each, **without fine-tuning**, to the trained RoPE models
# (`LLMSelfAttention.set_rope_scaling`, which swaps the rotary frequencies and leaves the
# weights alone), and read the validation text in windows of $L$, $2L$ and $4L$
# characters, with $s$ = the ratio to $L$. At $L = 64$ and $d = 16$ the fastest pair turns
# only about 10 times over $L$, so YaRN with the paper's $\beta = 32$ interpolates every
# pair (it becomes PI with a temperature). We also run it with $\beta = 4$, our choice, so
# that the one pair that turns ten times keeps its frequency, as in Llama's proportions.
# First, what each method does to the 8 frequencies at $s = 4$:

# %%
HEAD_DIM = D_MODEL // HEADS
SCALINGS = {
    "none": {"method": "none"},
    "PI": {"method": "pi"},
    "NTK-aware": {"method": "ntk"},
    "YaRN (beta 32)": {"method": "yarn", "beta": 32.0},
    "YaRN (beta 4)": {"method": "yarn", "beta": 4.0},
}
plain, _ = llm.scaled_rope_frequencies(HEAD_DIM)
turns = L * plain / (2 * math.pi)
print("turns of each pair over L:", [round(r, 2) for r in turns.tolist()])
fig, ax = plt.subplots(figsize=(6.5, 3))
for name, kw in SCALINGS.items():
    theta, temp = llm.scaled_rope_frequencies(HEAD_DIM, factor=4.0, original_length=L, **kw)
    ax.plot(theta / plain, "o-", label=f"{name} (logits x{temp:.2f})", markersize=4)
ax.set_xlabel("feature pair j (fast to slow)")
ax.set_ylabel(r"$\theta'_j \,/\, \theta_j$")
ax.set_title("Frequency multipliers for s = 4 (L = 64, head width 16)")
ax.legend(fontsize=7)
plt.tight_layout()
plt.show()
ntk_slowest = (llm.scaled_rope_frequencies(HEAD_DIM, method="ntk", factor=4.0)[0] / plain)[-1]
assert abs(ntk_slowest - 0.25) < 1e-12, "claim: 'NTK divides the slowest pair by exactly s'"

# %% [markdown]
# Now the perplexities. For each length we cut the first 4,096 characters of validation
# text into windows of that length (at $T = L$ the factor is 1 and every method is plain
# RoPE, so that column is measured once); a window of $2L$ contains twice the context, so a
# model that uses its extra context *well* should do slightly better than at $L$.

# %%
EVAL_CHARS = 4096


def window_ppl(model: llm.DecoderLM, T: int) -> float:
    """Perplexity over the first EVAL_CHARS validation characters in windows of T."""
    n = EVAL_CHARS // T
    x, y = val_ids[: n * T].view(n, T), val_ids[1 : n * T + 1].view(n, T)
    with torch.no_grad():
        logits = model(x)
    return math.exp(F.cross_entropy(logits.flatten(0, 1), y.flatten()).item())


def set_scaling(model: llm.DecoderLM, s: float, **kw) -> None:
    for block in model.blocks:
        block.mixer.set_rope_scaling(factor=s, original_length=L, **kw)


LENGTHS = (L, 2 * L, 4 * L)
ppl = {}  # (name, seed, T) -> perplexity
for seed in SEEDS:
    model = models["rope", seed]
    ppl["none", seed, L] = window_ppl(model, L)
    for name, kw in SCALINGS.items():
        ppl[name, seed, L] = ppl["none", seed, L]  # factor 1: every method is plain RoPE
        for T in LENGTHS[1:]:
            set_scaling(model, T / L, **kw)
            ppl[name, seed, T] = window_ppl(model, T)
    set_scaling(model, 1.0)  # back to plain RoPE
    for T in LENGTHS:
        ppl["ALiBi", seed, T] = window_ppl(models["alibi", seed], T)

print(f"{'perplexity':16}" + "".join(f"{f'T = {T}':>16}" for T in LENGTHS) + "   (seed 0 / seed 1)")
for name in (*SCALINGS, "ALiBi"):
    cells = [f"{ppl[name, 0, T]:6.2f} /{ppl[name, 1, T]:6.2f}" for T in LENGTHS]
    print(f"{name:16}" + "".join(f"{c:>16}" for c in cells))

for seed in SEEDS:
    none_L, none_4L = ppl["none", seed, L], ppl["none", seed, 4 * L]
    assert none_4L > 1.1 * none_L, f"claim: 'plain RoPE degrades at 4L' (seed {seed})"
    assert ppl["NTK-aware", seed, 4 * L] < 0.95 * none_4L, f"claim: 'NTK best at 4L' ({seed})"
    for T in (2 * L, 4 * L):
        assert ppl["PI", seed, T] > 1.2 * ppl["none", seed, T], (
            f"claim no longer holds: 'PI without fine-tuning is worse than nothing' "
            f"(seed {seed}, T = {T})"
        )
        best = min(SCALINGS, key=lambda n, s=seed, t=T: ppl[n, s, t])
        assert best in ("none", "NTK-aware"), f"claim: 'NTK or none is best' ({seed}, {T}: {best})"
    alibi_drift = ppl["ALiBi", seed, 4 * L] / ppl["ALiBi", seed, L]
    assert alibi_drift < 1.02, f"claim: 'ALiBi holds its perplexity at 4L' ({alibi_drift:.3f})"
    assert ppl["ALiBi", seed, L] > ppl["none", seed, L], "claim: 'ALiBi worse at L here'"
    assert ppl["ALiBi", seed, 4 * L] > ppl["NTK-aware", seed, 4 * L], (
        "claim: 'NTK at 4L beats ALiBi'"
    )
    assert ppl["ALiBi", seed, 4 * L] < ppl["ALiBi", seed, L], "claim: 'ALiBi goes down, slightly'"
    assert (
        ppl["NTK-aware", seed, 4 * L]
        < ppl["YaRN (beta 4)", seed, 4 * L]
        < ppl["YaRN (beta 32)", seed, 4 * L]
    ), f"claim no longer holds: 'YaRN beta 4 between NTK and beta 32 at 4L' (seed {seed})"
    longer = min(ppl[n, seed, T] for n in SCALINGS for T in (2 * L, 4 * L))
    assert longer > ppl["none", seed, L], (
        f"claim no longer holds: 'no RoPE variant reads a longer window better' (seed {seed})"
    )


def mean_ppl(name: str, T: int) -> float:
    return float(np.mean([ppl[name, s, T] for s in SEEDS]))


for key, name, T in (
    ("none_L", "none", L),
    ("none_4L", "none", 4 * L),
    ("pi_2L", "PI", 2 * L),
    ("ntk_4L", "NTK-aware", 4 * L),
    ("yarn32_4L", "YaRN (beta 32)", 4 * L),
    ("yarn4_4L", "YaRN (beta 4)", 4 * L),
    ("alibi_L", "ALiBi", L),
    ("alibi_4L", "ALiBi", 4 * L),
):
    glue(f"ch18_ppl_{key}", mean_ppl(name, T), display=False)

# %% [markdown]
# Means over the two seeds. Plain RoPE goes from {glue:text}`ch18_ppl_none_L:.2f` at
# $L$ to {glue:text}`ch18_ppl_none_4L:.2f` at $4L$. Without fine-tuning:
#
# - **PI is worse than doing nothing** ({glue:text}`ch18_ppl_pi_2L:.1f` at $2L$): the
#   model never learned to tell apart neighbours that are half a position apart, and a
#   character model lives on its neighbours. This is why PI is always followed by
#   fine-tuning in its paper.
# - **NTK-aware scaling is the best** here at $4L$ ({glue:text}`ch18_ppl_ntk_4L:.2f`):
#   it leaves the fast pairs, which carry the local order, almost untouched.
# - **YaRN** with the paper's $\beta = 32$ behaves like PI at this tiny $L$
#   ({glue:text}`ch18_ppl_yarn32_4L:.1f` at $4L$); with $\beta = 4$ it keeps the fastest
#   pair and is back to about the level of no scaling
#   ({glue:text}`ch18_ppl_yarn4_4L:.2f`), still behind NTK. The published YaRN results are
#   mostly after fine-tuning, where its ramp and temperature help convergence; we did not
#   fine-tune.
#
# None of the RoPE variants reads a longer window *better* than a window of $L$: the
# extra context is not something these models can use without training on it. ALiBi, in
# the last row, is the only model whose perplexity goes down, slightly, as the windows
# grow (next section).

# %% [markdown]
# (ch18-alibi)=
# ## ALiBi: a position scheme that extrapolates by design
#
# ALiBi {cite:p}`press2022train` adds no position vectors at all. Head $h$ adds the
# fixed bias $-m_h (i - j)$ to the logit of query $i$ and key $j$, with slopes
# $m_h = 2^{-8h/H}$ ($h = 1 .. H$; for our 4 heads $1/4, 1/16, 1/64, 1/256$): the further
# back a key, the larger its penalty, at a rate that differs per head. Nothing in the bias
# depends on the length trained on, so a longer sequence only adds keys with large
# penalties. The paper trains a 1.3B-parameter model on 1,024 tokens that, read at 2,048,
# matches the perplexity of a sinusoidal model trained on 2,048.
#
# `LLMSelfAttention(..., rope_base=None, alibi=True)` adds this bias (tested against
# `ak.alibi_bias` of {ref}`chapter 2 <ch02-relative>` in the package's tests). In the
# table above, the ALiBi models hold their perplexity from $L$
# ({glue:text}`ch18_ppl_alibi_L:.2f`) to $4L$ ({glue:text}`ch18_ppl_alibi_4L:.2f`), while
# plain RoPE degrades, so the extrapolation claim holds at this scale. But at $L$ itself
# the ALiBi models are worse than the RoPE models after the same 300 steps
# ({glue:text}`ch18_ppl_alibi_L:.2f` against {glue:text}`ch18_ppl_none_L:.2f`), and even
# NTK-scaled RoPE at $4L$ beats them. Extrapolating without loss is not the same as using
# the longer context: ALiBi's penalty makes far keys nearly invisible, which is also why
# it extrapolates.
#
# The bias itself, for a longer sequence, is just a bigger matrix of distances; the check
# below builds it for 4 heads and 6 positions and compares a row with the formula.

# %%
bias = ak.alibi_bias(4, 6, dtype=torch.float64)  # (H, T, T): -m_h (i - j), valid for j <= i
slopes = ak.alibi_slopes(4, dtype=torch.float64)
print("slopes:", slopes.tolist())
print("head 0, query 5:", bias[0, 5].tolist())
assert slopes.tolist() == [1 / 4, 1 / 16, 1 / 64, 1 / 256], "claim: slopes 2^(-8h/H)"
row = -0.25 * (5 - torch.arange(6.0, dtype=torch.float64))
assert torch.equal(bias[0, 5], row), "claim no longer holds: 'the bias is -m_h (i - j)'"

# %% [markdown]
# (ch18-cost)=
# ## What each mechanism costs
#
# Per token, in one layer of width $d$ with a context of $n$ tokens:
#
# | mechanism | cache per layer | attention work per new token |
# |---|---|---|
# | full causal attention | $n$ keys and values | $\propto n\, d$ |
# | sliding window $W$ (rolling buffer) | $W$ | $\propto W d$ |
# | sinks + window (StreamingLLM) | $S + W$ | $\propto (S + W)\, d$, plus re-rotating $S + W$ keys |
# | re-computation over $W$ | none kept | a full forward pass over $W$ tokens |
# | PI / NTK / YaRN, ALiBi | unchanged ($n$) | unchanged (a different table of angles, or a bias) |
#
# The re-rotation of StreamingLLM is the price of positions within the cache: every step
# rotates all cached keys again ($O((S + W)\, d)$, the same order as the attention
# itself). We count the matrix-product operations of streaming 128 tokens through a
# trained model with PyTorch's `FlopCounterMode`, cache of 64 slots versus re-computation
# over 64 tokens.

# %%
flop_x = stream_x[:1, :128]  # (1, 128)
counts = {}
for name, run in (
    ("sinks + window", lambda: llm.streaming_logits(models["rope", 0], flop_x, window=60, num_sinks=4)),
    ("re-computation", lambda: llm.recompute_window_logits(models["rope", 0], flop_x, window=64)),
):  # fmt: skip
    with FlopCounterMode(display=False) as counter:
        run()
    counts[name] = counter.get_total_flops()
    print(f"{name:15}: {counts[name] / 1e6:8.1f} MFLOP for 128 tokens")
flop_ratio = counts["re-computation"] / counts["sinks + window"]
assert flop_ratio > 10, f"claim no longer holds: 're-computation costs >10x' ({flop_ratio:.1f}x)"
glue("ch18_flop_ratio", flop_ratio, display=False)

# %% [markdown]
# Re-computation costs {glue:text}`ch18_flop_ratio:.0f` times the matrix work of the
# rolling cache on the same tokens here (the tokens before the cache fills cost the same
# in both), the gap StreamingLLM's 22.2x speed-up comes from. Neither method reads a token
# further back than its window: streaming keeps the work and memory bounded, it does not
# make the model *remember* more.

# %% [markdown]
# (ch18-summary)=
# ## Summary
#
# - **Sliding windows** bound each layer's cache and work by $W$; a stack of $\ell$
#   windowed layers still reaches $\ell (W - 1) + 1$ positions (measured exactly). Mistral
#   7B uses $W = 4096$ with a rolling buffer; Gemma 2 alternates 4,096-token local layers
#   with global layers over 8,192 tokens, keeping 75 % of a full cache at 8k.
# - **StreamingLLM** keeps $S = 4$ sink tokens plus a window, and numbers the tokens by
#   their slot in the cache (keys cached before RoPE). Implemented exactly
#   (`llm.SinkCache`, `llm.streaming_logits`, to {glue:text}`ch18_stream_diff:.0e` in
#   float64). In our small models **no sink emerges** (the first token gets
#   {glue:text}`ch18_sink_mean:.2f` times a uniform share), and the window cache is as good
#   as sinks + window and as re-computation (within {glue:text}`ch18_stream_gap:.1%`),
#   while the unbounded model fails past $L$. The sink is a property of large trained
#   models; its absence here is the honest result at this scale.
# - **RoPE scaling without fine-tuning**: NTK-aware scaling helps most at $4L$, PI hurts
#   (its paper fine-tunes), YaRN depends on where its ramp sits for the trained length.
# - **ALiBi** holds its perplexity up to $4L$ by construction, but its models are worse
#   at $L$ than RoPE models trained the same way.
#
# The exercises build the pieces: the window-with-sinks mask, the rolling cache's kept
# tokens and positions, YaRN's frequencies, and the ALiBi bias of a longer sequence.

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
# 4 heads of width 16, every training window $L = 64$ tokens long: the tokenizer's `BOS`
# token, then 63 characters, as a document starts in a language model (so position 0
# always holds the same, content-free token, as in {doc}`chapter 19
# <19_new_attention_forms>`). Two kinds:
#
# - **RoPE** in every layer (base 10,000), the model of the next two sections;
# - **ALiBi** in every layer, no RoPE ({ref}`ch18-alibi`).
#
# Each kind is trained with seeds 0 and 1 (initial weights and batches): 300 steps of 16
# windows, AdamW without weight decay at a peak learning rate of $10^{-2}$ with 20 warm-up
# steps and a cosine decay (the recipe with which chapter 19's models formed a sink).
# These runs are short: the models are far from converged, and every conclusion below is
# about models of this size and training.

# %%
text = stdlib_docstrings()
train_text, val_text = train_val_split(text, 0.1)
tok = CharTokenizer([train_text])
V = len(tok)
train_ids = torch.tensor(tok.encode(train_text))
val_ids = torch.tensor(tok.encode(val_text))
L, D_MODEL, LAYERS, HEADS = 64, 64, 2, 4
STEPS, BATCH, SEEDS = 300, 16, (0, 1)


BOS = tok.bos_id


def with_bos(chars: torch.Tensor) -> torch.Tensor:
    """(B, T) character ids -> (B, T + 1) ids that start with BOS."""
    return torch.cat((torch.full((chars.shape[0], 1), BOS), chars), dim=1)


def train_batches(seed: int):
    """Endless (BATCH, L + 1) batches: BOS, then L characters of the training text (the
    inputs are the first L tokens, BOS and 63 characters; the targets the L characters)."""
    g = torch.Generator().manual_seed(seed)
    while True:
        starts = torch.randint(0, len(train_ids) - L, (BATCH,), generator=g).tolist()
        yield with_bos(torch.stack([train_ids[s : s + L] for s in starts]))


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
            steps=STEPS, lr=1e-2, warmup_steps=20, weight_decay=0.0, eval_every=STEPS,
            seed=seed, progress=False,
        )  # fmt: skip
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
#   the last $W$ tokens. Each prediction reads a window like those of training, but every
#   token costs a forward pass over $W$ tokens;
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
# ### Is there a sink?
#
# First the measurement that StreamingLLM's explanation rests on: how much attention do
# the trained RoPE models put on the first token? On 32 validation windows of length $L$
# (`BOS` and 63 characters) we average, for every layer and head, the weight that the
# queries $t \ge 1$ give to position 0 (`llm.first_token_share`), and compare it with
# what a uniform causal row would give, the mean of $1/(t+1)$ over $t = 1 .. 63$.

# %%
probe_x = with_bos(val_ids[: 32 * (L - 1)].view(32, L - 1))  # (32, 64)
uniform = sum(1 / (t + 1) for t in range(1, L)) / (L - 1)
sink_share = {}  # seed -> (layers, heads) weight on position 0
for seed in SEEDS:
    with torch.no_grad():
        trace = llm.trace_decoder(models["rope", seed], probe_x)
    sink_share[seed] = torch.stack([llm.first_token_share(w) for w in trace.weights])
    print(f"seed {seed}: weight on the first token, per layer (rows) and head\n{sink_share[seed]}")
for seed in SEEDS:
    mean_share, max_share = sink_share[seed].mean().item(), sink_share[seed].max().item()
    assert mean_share > 2 * uniform and max_share > 0.5, (
        f"claim no longer holds: 'a sink forms: over twice the uniform share on average, one "
        f"head above 50%' (seed {seed}: mean {mean_share:.3f}, max {max_share:.3f}, uniform {uniform:.3f})"
    )
glue("ch18_uniform_share", uniform, display=False)
glue("ch18_sink_mean", float(np.mean([sink_share[s].mean().item() for s in SEEDS])), display=False)
glue("ch18_sink_max_min", min(sink_share[s].max().item() for s in SEEDS), display=False)

# %% [markdown]
# **A sink forms.** Averaged over layers, heads and both seeds, the first token (the `BOS`)
# draws {glue:text}`ch18_sink_mean:.1%` of the attention, against
# {glue:text}`ch18_uniform_share:.1%` for uniform attention, and in each seed at least one
# head puts {glue:text}`ch18_sink_max_min:.0%` or more of its weight there.
#
# The sink is a product of the training recipe, and it has a price here. Trial runs that
# this page does not re-run: the first version of this chapter trained the same models
# without `BOS` at a learning rate of $3 \times 10^{-3}$ (with weight decay 0.01 and 50
# warm-up steps); no head put more than 1.2 times a uniform share on the first token, and
# evicting it changed the streaming perplexity by less than 1%. With `BOS` at
# $3 \times 10^{-3}$ (seed 0) no sink formed either; at $6 \times 10^{-3}$ one seed of two
# formed one. And the runs that formed a sink were the worse language models: the
# $3 \times 10^{-3}$ models read the streams below at a perplexity of about 7.5, the
# models of this page at about 11. Our reading: in these tiny models, the sink comes with
# a learning rate high enough to leave some heads with nothing useful to attend to.
#
# ### The measurement
#
# Each trained RoPE model reads 4 streams of `BOS` and $8L = 512$ characters of validation
# text, in five ways: the **full** model with an unbounded cache (positions up to 512, far
# beyond the trained 63); the **window** cache of 64 tokens (the `BOS` is evicted at the
# 65th token); **sinks + window** (4 sinks, that is `BOS` and the first 3 characters, and
# 60 recent tokens: the same 64 slots); and two re-computations, the model run afresh for
# each prediction: on `BOS` and the last 63 characters (**re-computation**, exactly the
# input it was trained on), and on the last 64 characters without `BOS`
# (**re-computation, no BOS**, the paper's baseline taken literally). We report the
# perplexity of the characters after the first $L$
# tokens (before that, all five are the same computation).

# %%
N_STREAM, B_STREAM, SINKS = 8 * L, 4, 4
starts = torch.linspace(0, len(val_ids) - N_STREAM - 2, B_STREAM).long().tolist()
stream_chars = torch.stack([val_ids[s : s + N_STREAM + 1] for s in starts])  # (4, 513)
stream_x = with_bos(stream_chars[:, :-1])  # (4, 513): BOS, then 512 characters
stream_y = stream_chars  # (4, 513): the next character after each token


def token_nll(logits: torch.Tensor) -> torch.Tensor:
    """(B, N) cross-entropy of each next character."""
    return F.cross_entropy(logits.flatten(0, 1), stream_y.flatten(), reduction="none").view(
        stream_y.shape
    )


@torch.no_grad()
def recompute_with_bos(model: llm.DecoderLM, x: torch.Tensor) -> torch.Tensor:
    """(B, N, V) logits: the prediction after token i >= L comes from the model run afresh
    on BOS and the tokens i - L + 2 .. i (L tokens in all); before, from the whole prefix."""
    chars = x[:, 1:]  # (B, N - 1)
    windows = chars.unfold(1, L - 1, 1)[:, 1:]  # (B, N - L, L - 1): ends at token L .. N-1
    flat = windows.reshape(-1, L - 1)
    last = torch.cat([model(with_bos(flat[i : i + 256]))[:, -1] for i in range(0, len(flat), 256)])
    return torch.cat((model(x[:, :L]), last.view(x.shape[0], -1, model.vocab_size)), dim=1)


streaming = {}  # (method, seed) -> (B, N) losses
for seed in SEEDS:
    model = models["rope", seed]
    with torch.no_grad():
        streaming["full", seed] = token_nll(model(stream_x))
    streaming["window", seed] = token_nll(llm.streaming_logits(model, stream_x, window=L))
    streaming["sinks + window", seed] = token_nll(
        llm.streaming_logits(model, stream_x, window=L - SINKS, num_sinks=SINKS)
    )
    streaming["re-computation", seed] = token_nll(recompute_with_bos(model, stream_x))
    streaming["re-computation, no BOS", seed] = token_nll(
        llm.recompute_window_logits(model, stream_x, window=L)
    )
METHODS = ("full", "window", "sinks + window", "re-computation", "re-computation, no BOS")
stream_ppl = {k: math.exp(v[:, L:].mean().item()) for k, v in streaming.items()}
print("perplexity of the characters after token L   " + "   ".join(f"seed {s}" for s in SEEDS))
for method in METHODS:
    print(f"{method:24}" + "".join(f"{stream_ppl[method, s]:10.2f}" for s in SEEDS))


def vs_recompute(method: str, seed: int) -> float:
    return stream_ppl[method, seed] / stream_ppl["re-computation", seed]


for seed in SEEDS:
    sinks_gap = abs(vs_recompute("sinks + window", seed) - 1)
    assert sinks_gap < 0.02, (
        f"claim no longer holds: 'sinks + window within 2% of re-computation' "
        f"(seed {seed}: {sinks_gap:.1%})"
    )
    for method in ("window", "re-computation, no BOS"):
        assert vs_recompute(method, seed) > 1.05, (
            f"claim no longer holds: '{method} over 5% worse than re-computation' "
            f"(seed {seed}: {vs_recompute(method, seed):.3f})"
        )
    assert vs_recompute("full", seed) > 1.1, (
        f"claim no longer holds: 'the unbounded model degrades past L' (seed {seed}: "
        f"{vs_recompute('full', seed):.2f}x re-computation)"
    )
glue(
    "ch18_sinks_gap", max(abs(vs_recompute("sinks + window", s) - 1) for s in SEEDS), display=False
)
glue("ch18_window_loss_min", min(vs_recompute("window", s) - 1 for s in SEEDS), display=False)
glue("ch18_window_loss_max", max(vs_recompute("window", s) - 1 for s in SEEDS), display=False)
glue("ch18_nobos_loss_min", min(vs_recompute(METHODS[-1], s) - 1 for s in SEEDS), display=False)
glue("ch18_full_blowup", min(vs_recompute("full", s) for s in SEEDS), display=False)
glue("ch18_recompute_ppl0", stream_ppl["re-computation", 0], display=False)
glue("ch18_window_ppl0", stream_ppl["window", 0], display=False)
glue("ch18_sinks_ppl0", stream_ppl["sinks + window", 0], display=False)
glue("ch18_full_ppl0", stream_ppl["full", 0], display=False)

fig, ax = plt.subplots(figsize=(7, 3.2))
segments = np.arange(0, N_STREAM, L)
for method, style in zip(METHODS, ("k-", "C0o-", "C1s--", "C2^:", "C3v-."), strict=True):
    per_seg = [
        [math.exp(streaming[method, s][:, a : a + L].mean().item()) for a in segments]
        for s in SEEDS
    ]
    ax.plot(segments + L / 2, np.mean(per_seg, axis=0), style, label=method, markersize=4)
ax.axvline(L, color="gray", lw=0.8)
ax.set_yscale("log")
ax.text(L + 5, ax.get_ylim()[1] * 0.9, "trained length L", color="gray", va="top")
ax.set_xlabel("position in the stream (centre of each block of 64 tokens)")
ax.set_ylabel("perplexity (mean of 2 seeds)")
ax.set_title("Streaming BOS + 8L characters with a 64-slot cache")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# Past $L$, in both seeds:
#
# - the model with an unbounded cache degrades as positions grow (at least
#   {glue:text}`ch18_full_blowup:.1f` times the perplexity of re-computation; for seed 0,
#   {glue:text}`ch18_full_ppl0:.1f` against {glue:text}`ch18_recompute_ppl0:.2f`): RoPE
#   does not extrapolate here;
# - the **window** cache, which has evicted the `BOS`, is
#   {glue:text}`ch18_window_loss_min:.0%` to {glue:text}`ch18_window_loss_max:.0%` worse
#   than re-computation (seed 0: {glue:text}`ch18_window_ppl0:.2f`);
# - **sinks + window**, which keeps the `BOS`, is within
#   {glue:text}`ch18_sinks_gap:.1%` of re-computation (seed 0:
#   {glue:text}`ch18_sinks_ppl0:.2f`), at the cost of the window cache;
# - re-computation on the last 64 characters *without* `BOS` is at least
#   {glue:text}`ch18_nobos_loss_min:.0%` worse than with it, although its first token
#   sits at position 0 too.
#
# This is StreamingLLM's finding in miniature, and it fits the paper's explanation: the
# sink heads lose the token they park their attention on, and keeping that token restores
# the quality of re-computation at the cost of a rolling cache. The size differs: our
# window cache degrades by the amounts above, where the paper's window attention *fails*
# once the text exceeds the cache (its abstract's word); our sinks are young, after 300
# steps. And the re-computation without `BOS` suggests that our sink is the `BOS` token
# itself, not whatever token comes first: our models always saw the same `BOS` at
# position 0, which makes it more like the paper's dedicated placeholder sink token than
# like a first token that happens to be there. With two seeds of one small model and 4
# streams, this shows the mechanism, not its size in an LLM. What carries over at any
# scale: the bounded cache keeps the positions inside the trained range (the "full" curve
# shows what happens otherwise), and costs $S + W$ slots per layer whatever the length of
# the stream.

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
#   divided by exactly $s$, the fastest ($j = 0$, $\theta_0 = 1$ for any base) is unchanged.
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
# tokens, with $s$ = the ratio to $L$. At $L = 64$ and $d = 16$ the fastest pair turns
# only about 10 times over $L$, so with the paper's $\beta = 32$ no pair keeps its
# frequency: YaRN multiplies the fastest pair's frequency by 0.47 at $s = 4$, the second
# by 0.30 and all the others by about $1/s = 0.25$ (close to PI, with a temperature). We
# also run it with $\beta = 4$, our choice, so that the one pair that turns ten times
# keeps its frequency, as in Llama's proportions. First, what each method does to the 8
# frequencies at $s = 4$:

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
yarn32 = llm.scaled_rope_frequencies(HEAD_DIM, method="yarn", factor=4.0, original_length=L)[0]
yarn32 = (yarn32 / plain).tolist()
assert round(yarn32[0], 2) == 0.47 and round(yarn32[1], 2) == 0.30, (
    f"claim no longer holds: 'YaRN (beta 32) multiplies the two fastest pairs by 0.47, 0.30' "
    f"({yarn32[:2]})"
)
assert all(abs(m - 0.25) < 1e-3 for m in yarn32[2:]), "claim: 'the others by about 1/s'"

# %% [markdown]
# Now the perplexities. For each length $T$ we cut the first 4,096 characters of
# validation text into pieces of $T$ characters and predict each piece from `BOS` and its
# own first $T - 1$ characters, a window of $T$ tokens as in training (at $T = L$ the factor is 1 and every method is plain
# RoPE, so that column is measured once); a window of $2L$ contains twice the context, so a
# model that uses its extra context *well* should do slightly better than at $L$.

# %%
EVAL_CHARS = 4096


def window_ppl(model: llm.DecoderLM, T: int) -> float:
    """Perplexity of the first EVAL_CHARS validation characters, read in windows of T
    tokens: BOS and T - 1 characters, predicting those T characters."""
    n = EVAL_CHARS // T
    y = val_ids[: n * T].view(n, T)  # (n, T) targets
    x = with_bos(y[:, :-1])  # (n, T) inputs
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
    assert none_4L > 1.05 * none_L, f"claim: 'plain RoPE degrades at 4L' (seed {seed})"
    ntk_4L = ppl["NTK-aware", seed, 4 * L]
    assert all(ntk_4L < ppl[n, seed, 4 * L] for n in (*SCALINGS, "ALiBi") if n != "NTK-aware"), (
        f"claim no longer holds: 'NTK-aware scaling is the best at 4L' (seed {seed})"
    )
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
    assert longer > 0.99 * ppl["none", seed, L], (
        f"claim no longer holds: 'no RoPE variant reads a longer window more than 1% better' "
        f"(seed {seed}: {longer:.3f} vs {ppl['none', seed, L]:.3f})"
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
# - **NTK-aware scaling is the best** at $4L$ in both seeds
#   ({glue:text}`ch18_ppl_ntk_4L:.2f`), ALiBi included: it leaves the fast pairs, which
#   carry the local order, untouched or nearly so.
# - **YaRN** with the paper's $\beta = 32$ behaves like PI at this tiny $L$
#   ({glue:text}`ch18_ppl_yarn32_4L:.1f` at $4L$); with $\beta = 4$ it keeps the fastest
#   pair and lands between NTK and $\beta = 32$ in both seeds
#   ({glue:text}`ch18_ppl_yarn4_4L:.2f` on average, about the level of no scaling). The
#   published YaRN results are mostly after fine-tuning, which its paper says YaRN needs
#   less of than earlier methods; we did not fine-tune.
#
# None of the RoPE variants reads a longer window better than a window of $L$ by more
# than 1% (NTK at $2L$ comes closest): the extra context is not something these models
# can use without training on it. ALiBi, in
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
#   float64). Our small models, trained with a `BOS` token at the start of every window,
#   form a sink on it ({glue:text}`ch18_sink_mean:.1%` of the attention on average, against
#   {glue:text}`ch18_uniform_share:.1%` uniform). Streaming $8L$ tokens (2 seeds), the
#   window cache that evicts it is {glue:text}`ch18_window_loss_min:.0%` to
#   {glue:text}`ch18_window_loss_max:.0%` worse than re-computation; sinks + window is
#   within {glue:text}`ch18_sinks_gap:.1%` of it; the unbounded model degrades past $L$.
# - **RoPE scaling without fine-tuning**: NTK-aware scaling helps most at $4L$, PI hurts
#   (its paper fine-tunes), YaRN depends on where its ramp sits for the trained length.
# - **ALiBi** holds its perplexity up to $4L$ by construction, but its models are worse
#   at $L$ than RoPE models trained the same way.
#
# The exercises build the pieces: the window-with-sinks mask, the rolling cache's kept
# tokens and positions, YaRN's frequencies, and the ALiBi bias of a longer sequence.

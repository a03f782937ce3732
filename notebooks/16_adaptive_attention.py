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
# # Adaptive attention span
#
# Every head of a causal Transformer layer may look at every earlier token, and pays for
# it: $O(n^2)$ scores per head, whatever the head is for. Yet the heads of a trained model
# do very different jobs. Some look at the previous token or two, some look far back. If
# a head only ever uses the last eight tokens, computing its scores against the other
# thousands is waste. Chapter 7 cut this waste with *fixed* patterns chosen by hand
# ({ref}`ch07-sparse`): a window of $w$ tokens for every head. This chapter lets each head
# *learn* how far back it needs to look: the adaptive attention span of
# {cite:t}`sukhbaatar2019adaptive`.
#
# Their finding, on character-level language modelling with spans of up to 8192
# characters, is the motivation: with a learnable span per head, the heads of the lower
# layers keep short spans, and only a few heads, in the upper layers, grow spans of
# thousands. The average span is then a small fraction of the maximum, and
# so is the cost {cite:p}`sukhbaatar2019adaptive`.
#
# By the end of this chapter you should be able to
#
# - write the soft span mask $m_z$ and explain why it makes the span $z$ learnable by
#   gradient descent;
# - compute adaptive-span attention on only the keys within reach, and check it against
#   dense attention;
# - train a small model on a task in which one lookup is short and one is long, and read
#   off which head learned which range;
# - compute the cost saved from the learned spans, and measure it against PyTorch's
#   fused full attention;
# - say what "adaptive attention" means in the research literature, which is not what the
#   seed text says it means.
#
# Everything below uses the module `attnkit.efficient.adaptive_span`, which is tested
# equal to dense attention with the same soft mask.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from myst_nb import glue
from torch import nn

import attnkit as ak
from attnkit.bench import time_in_turns
from attnkit.efficient.adaptive_span import (
    AdaptiveSpanSelfAttention,
    adaptive_span_attention,
    adaptive_span_flops,
    adaptive_span_mask,
    soft_span_mask,
)
from attnkit.efficient.full import FullSelfAttention
from attnkit.efficient.model import EncoderBlock
from attnkit.heads import split_heads
from attnkit.training import TrainConfig, count_parameters, sample_batches, seed_everything, train

torch.manual_seed(0)
# One thread: the book runs its chapters side by side, one thread each, so every number
# below is the same on any machine, however many cores it has and however busy it is
# (timings aside).
torch.set_num_threads(1)
torch.set_printoptions(precision=4, sci_mode=False)
plt.rcParams.update({"figure.dpi": 100, "axes.grid": False})
print("torch", torch.__version__, "| attnkit", ak.__version__)

# %% [markdown]
# (ch16-mask)=
# ## The soft span mask
#
# Take one head of a causal layer and a query at position $t$. Its scores against the
# keys at positions $r \le t$ are $s_{tr}$; the distance to a key is $x = t - r \ge 0$.
# A *hard* span $z$ would keep the keys with $x \le z$ and drop the others; an integer
# $z$ cannot be learned by gradient descent, since the loss does not change smoothly with
# it. {cite:t}`sukhbaatar2019adaptive` replace the hard cut by a ramp of width $R$:
#
# $$
# m_z(x) = \min\left(\max\left(\frac{R + z - x}{R},\, 0\right),\, 1\right),
# $$
#
# which is 1 for $x \le z$, 0 for $x \ge z + R$, and falls linearly in between. The
# weights are the softmax with each key's term multiplied by its mask:
#
# $$
# a_{tr} = \frac{m_z(t - r)\, e^{s_{tr}}}{\sum_{q \le t} m_z(t - q)\, e^{s_{tq}}} .
# $$
#
# For a key on the ramp, $\partial m_z(x) / \partial z = 1/R$; elsewhere it is 0 (at the
# two ends of the ramp autograd takes the ramp's slope). So the
# span $z \in [0, S]$ is a real number, learned together with the other weights, and the
# loss sees it through the keys on the ramp: if the keys just beyond the current span
# would help, the gradient widens the span. Each head has its own $z$, and the loss adds an
# L1 penalty on the spans, $\frac{\lambda}{M} \sum_i z_i$ ($M$ heads per layer), so that a
# head keeps a long span only if the task pays for it. Two details of the paper are kept
# here: the query also sees itself ($x = 0$, where $m_z = 1$ for every $z \ge 0$, as in
# any causal decoder; the paper's sum runs over the $S$ previous positions), and the keys
# carry *relative* position embeddings, $s_{tr} = q_t^\top (k_r + p_{t-r}) / \sqrt d$, so
# that a head can find "the token 20 positions back" by its distance.
#
# The figure draws $m_z$ for three spans and checks the slope with autograd.

# %%
R = 8.0
distance = torch.arange(0, 49, dtype=torch.float64)
fig, ax = plt.subplots(figsize=(6.5, 3.2))
for z in (0.0, 12.0, 32.0):
    ax.plot(distance, soft_span_mask(distance, z, R), "o-", ms=3, label=f"$z = {z:g}$")
ax.axvspan(12, 12 + R, color="0.9", label="ramp of $z = 12$")
ax.set(xlabel="distance to the key, $x = t - r$", ylabel="mask $m_z(x)$",
       title=f"The soft span mask, ramp $R = {R:g}$")  # fmt: skip
ax.legend()
plt.show()

z = torch.tensor(12.0, dtype=torch.float64, requires_grad=True)
mask = soft_span_mask(distance, z, R)
slopes = torch.stack(
    [torch.autograd.grad(mask[i], z, retain_graph=True)[0] for i in range(len(distance))]
)
on_ramp = (distance >= 12) & (distance <= 12 + R)  # autograd uses the ramp's slope at its ends
print("dm/dz on the ramp:", slopes[on_ramp].unique().tolist(), " elsewhere:",
      slopes[~on_ramp].unique().tolist())  # fmt: skip
assert torch.allclose(slopes[on_ramp], torch.tensor(1 / R, dtype=torch.float64)), (
    "claim no longer holds: 'for a key on the ramp, dm_z/dz = 1/R' "
    f"(measured {slopes[on_ramp].unique().tolist()}, 1/R = {1 / R:.3g})"
)
assert torch.all(slopes[~on_ramp] == 0), (
    "claim no longer holds: 'elsewhere it is 0' "
    f"(measured up to {slopes[~on_ramp].abs().max():.3g})"
)
assert torch.all(mask[distance <= 12] == 1) and torch.all(mask[distance >= 12 + R] == 0), (
    "m_z must be 1 up to x = z and 0 from x = z + R; found "
    f"{mask[distance <= 12].min():.3g} and {mask[distance >= 12 + R].max():.3g}"
)

# %% [markdown]
# (ch16-code)=
# ## Computing only the keys within reach
#
# A key at distance $x \ge z + R$ gets the weight $0 \cdot e^{s_{tr}} / (\dots) = 0$
# exactly, so its score need not be computed at all. If the spans of a layer are at most
# $S$, only the keys at distance $x < S + R$ matter: a band of width $S + R$ behind each
# query, instead of all $t + 1$ earlier keys.
# `adaptive_span_attention(q, k, v, span, ramp=R)` computes that band in blocks, the
# causal band of chapter 7's local attention
# ({ref}`ch07-sparse`): each block of at least $S + R$ queries is scored against its own
# block and the one before it. Then it forms $m \cdot \mathrm{softmax}(s)$ and renormalises
# each row, which is $a_{tr}$ above (the factor $\sum_q e^{s_{tq}}$ cancels). The time and
# memory are $O(n (S + R) d)$ instead of $O(n^2 d)$; `span` may hold one value per head.
#
# The first check: with every span at least $n$ the mask is 1 on every earlier key, and
# the result must be ordinary causal attention, here PyTorch's own. The second: with short
# spans, the band computation must equal the dense formula above, computed on the full
# $n \times n$ matrix with `adaptive_span_mask`; rows sum to 1 and the weights beyond
# $z + R$ are exactly 0.

# %%
g = torch.Generator().manual_seed(0)
B, H, n, d = 2, 4, 300, 16
q, k, v = (torch.randn(B, H, n, d, generator=g, dtype=torch.float64) for _ in range(3))

out = adaptive_span_attention(q, k, v, float(n), ramp=R)
reference = F.scaled_dot_product_attention(q, k, v, is_causal=True)
print(
    "spans >= n vs SDPA(is_causal=True), max |difference|:", f"{(out - reference).abs().max():.1e}"
)
assert torch.allclose(out, reference, atol=1e-12), (
    "with spans >= n the result must be causal attention (SDPA); max difference "
    f"{(out - reference).abs().max():.1e}"
)

spans = torch.tensor([0.0, 3.5, 20.0, 40.0], dtype=torch.float64)  # one span per head
out, weights = adaptive_span_attention(q, k, v, spans, ramp=R, return_weights=True)
m = adaptive_span_mask(n, spans, R, dtype=torch.float64)  # (H, n, n)
scores = (q @ k.transpose(-2, -1) / math.sqrt(d)).masked_fill(m == 0, float("-inf"))
dense = torch.softmax(scores, dim=-1) * m
dense = dense / dense.sum(dim=-1, keepdim=True)  # the formula for a_tr, on all n x n pairs
t_pos = torch.arange(n)
dist = t_pos[:, None] - t_pos[None, :]  # (n, n)
beyond = (dist < 0) | (dist[None] >= spans[:, None, None] + R)  # (H, n, n)
print("band vs dense formula, max |difference| of weights:",
      f"{(weights - dense).abs().max():.1e}, of outputs: {(out - dense @ v).abs().max():.1e}")  # fmt: skip
print("keys with a nonzero weight per query: at most", math.ceil(spans.max() + R), "of", n)
assert (
    torch.allclose(weights, dense, atol=1e-12) and torch.allclose(out, dense @ v, atol=1e-12)
), (
    "the band computation must equal the dense formula; max difference of weights "
    f"{(weights - dense).abs().max():.1e}, of outputs {(out - dense @ v).abs().max():.1e}"
)
assert torch.allclose(weights.sum(-1), torch.ones(B, H, n, dtype=torch.float64)), (
    f"weights must sum to 1 over the keys; max error {(weights.sum(-1) - 1).abs().max():.1e}"
)
assert torch.all(weights.masked_select(beyond.expand_as(weights)) == 0), (
    "weights beyond z + R must be exactly 0; found up to "
    f"{weights.masked_select(beyond.expand_as(weights)).abs().max():.1e}"
)

# %% [markdown]
# The module `AdaptiveSpanSelfAttention(d_model, num_heads, max_span, ramp=R)` wraps this
# in the projections of multi-head attention. Each head's span is a parameter
# $z_h = S f_h$ with $f_h$ clamped to $[0, 1]$ (as in the paper's code), `layer.spans` reads
# them, `layer.span_penalty()` is their mean, for the loss's L1 term, and the band of keys
# computed follows the *current* largest span, so the layer gets cheaper as the spans
# shrink.

# %% [markdown]
# (ch16-task)=
# ## A task where heads need different ranges
#
# The sequences are random symbols from $\{0, 1, 2, 3\}$, 64 long. At every position
# $t \ge L = 20$ the model must output the *pair* $(x_{t-L}, x_{t-1})$, one of 16 classes:
# one lookup one token back, one lookup twenty tokens back. Neither alone helps with the
# other half of the pair, so a model that sees only the last few tokens can get at most
# $1/4$ of the pairs right, and one that finds both gets all of them.
#
# The model is small: symbol embeddings (no absolute positions: the relative position
# embeddings inside the attention are its only sense of order), one
# pre-LN block whose attention is `AdaptiveSpanSelfAttention` with 4 heads, maximum span
# $S = 32$ and ramp $R = 8$, and a linear classifier. All spans start at $S$; the loss is
# the cross-entropy plus $\lambda = 0.05$ times the mean span. The *full* model is the same
# with $S = 64$ and the spans frozen there, so that every head always sees every earlier
# token: full causal attention, with the same relative positions.

# %%
V, N, L = 4, 64, 20  # symbols, sequence length, the long lookup
S, R, LAMBDA, HEADS = 32, 8, 0.05, 4


def make_pairs(count: int, seed: int) -> dict[str, torch.Tensor]:
    """Random symbols; the target at t >= L is the pair (x[t-L], x[t-1]) as one class."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(V, (count, N), generator=gen)  # (count, N)
    y = torch.full_like(x, -100)  # ignored by the loss before position L
    y[:, L:] = x[:, :-L] * V + x[:, L - 1 : -1]  # (count, N - L) classes in [0, V^2)
    return {"x": x, "y": y}


train_data, test_data = make_pairs(20_000, seed=1), make_pairs(1000, seed=2)
monitor = {name: t[:200] for name, t in test_data.items()}  # checked during training


class SpanModel(nn.Module):
    """Symbol embeddings, one pre-LN block with adaptive-span attention, a classifier."""

    def __init__(self, max_span: int, init_span: float, d_model: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(V, d_model)
        self.attn = AdaptiveSpanSelfAttention(d_model, HEADS, max_span, ramp=R, init_span=init_span)
        self.block = EncoderBlock(self.attn, 4 * d_model)
        self.ln = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, V * V)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.ln(self.block(self.embed(x))))  # (B, N, V^2)


def accuracy(model: nn.Module, data: dict[str, torch.Tensor]) -> float:
    keep = data["y"] >= 0
    with torch.no_grad():
        predicted = model(data["x"]).argmax(-1)
    return (predicted[keep] == data["y"][keep]).float().mean().item()


def fit(
    model: SpanModel, lam: float, steps: int = 800
) -> tuple[list[int], np.ndarray, list[float]]:
    """Train; return the logged steps, the spans there (steps, H) and the accuracy on 200
    test sequences there."""
    spans_log, acc_log = [], []

    def loss_fn(m, batch):
        logits = m(batch["x"])
        task = F.cross_entropy(logits.flatten(0, 1), batch["y"].flatten())
        return task + lam * m.attn.span_penalty()

    def evaluate(m):
        spans_log.append(m.attn.spans.tolist())
        acc_log.append(accuracy(m, monitor))
        return {"test_acc": acc_log[-1]}

    config = TrainConfig(steps=steps, lr=3e-3, warmup_steps=50, eval_every=40, seed=0)
    result = train(model, loss_fn, sample_batches(train_data, 32, seed=0), config,
                   evaluate=evaluate)  # fmt: skip
    return [int(h["step"]) for h in result.history], np.array(spans_log), acc_log


seed_everything(0)
adaptive = SpanModel(S, init_span=float(S))
print(f"{count_parameters(adaptive):,} parameters")
steps, span_history, acc_history = fit(adaptive, LAMBDA)

# %% [markdown]
# The baseline: full causal attention, the same model and training without the penalty,
# 300 steps (it learns the task as fast; there are no spans to settle).

# %%
seed_everything(0)
full = SpanModel(N, init_span=float(N))
full.attn.span_fraction.requires_grad_(False)  # spans fixed at N: every earlier key, mask 1
_ = fit(full, 0.0, steps=300)  # it needs no time for spans to settle

# %%
final_spans = adaptive.attn.spans
reach = final_spans + R  # the keys at distance < z + R get a nonzero weight
acc_adaptive, acc_full = accuracy(adaptive, test_data), accuracy(full, test_data)
print("learned spans z:      ", [round(s, 2) for s in final_spans.tolist()])
print("reach z + R:          ", [round(s, 2) for s in reach.tolist()])
print(f"test accuracy: adaptive span {acc_adaptive:.3f}, full attention {acc_full:.3f} "
      f"(chance 1/16 = {1 / 16:.3f}; one lookup only: 1/4)")  # fmt: skip
long_heads = int((reach > L).sum())
print(f"heads that reach distance L = {L}: {long_heads} of {HEADS}")
early = max(a for step, a in zip(steps, acc_history) if step <= 160)
print(f"best test accuracy in the first 160 steps: {early:.3f}")
assert acc_adaptive >= 0.99 and acc_full >= 0.99 and early >= 0.99, (
    "claim no longer holds: 'test accuracy at least 0.99, within the first 160 steps' "
    f"(measured adaptive {acc_adaptive:.3f}, full {acc_full:.3f}, first 160 steps {early:.3f})"
)
assert 1 <= long_heads <= HEADS // 2, (  # at most half of the heads stay long
    "claim no longer holds: 'at most half of the heads keep a reach just beyond L' "
    f"(measured {long_heads} of {HEADS})"
)
assert int((reach < L).sum()) == HEADS - long_heads, (  # the others stop short of L
    "claim no longer holds: 'the others stop short of it' "
    f"(measured {int((reach < L).sum())} short of L, expected {HEADS - long_heads})"
)
assert float(final_spans.min()) <= 1.0, (  # and one of them shrinks to (almost) nothing
    "claim no longer holds: 'one of them at a span of (almost) 0' "
    f"(measured smallest span {float(final_spans.min()):.3g})"
)
assert torch.all((final_spans[reach > L] - (L - R)).abs() < 1.0), (  # long spans z ~ L - R
    "claim no longer holds: 'the long span stops at z ~ L - R' (measured "
    f"{[round(s, 2) for s in final_spans[reach > L].tolist()]}, L - R = {L - R:g})"
)
first_solved = next(i for i, a in enumerate(acc_history) if a >= 0.99)
spans_then = span_history[first_solved]  # (H,)
print(f"accuracy first >= 0.99 at step {steps[first_solved]}; spans then:",
      [round(z, 1) for z in spans_then.tolist()])  # fmt: skip
assert spans_then.min() > L - R, "claim: 'solved while every span is still longer than L - R'"
glue("ch16_early_acc", early, display=False)
glue("ch16_solved_step", steps[first_solved], display=False)

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.6), gridspec_kw={"width_ratios": [2, 1]})
for h in range(HEADS):
    ax1.plot(steps, span_history[:, h], label=f"head {h}")
ax1.axhline(L - R, color="k", ls=":", label=f"$L - R = {L - R}$: reach $= L$")
ax1.set(xlabel="training step", ylabel="span $z_h$ (tokens)",
        title="Learned spans during training")  # fmt: skip
ax1b = ax1.twinx()
ax1b.plot(steps, acc_history, "k--", lw=1)
ax1b.set(ylabel="test accuracy (dashed, 200 sequences)", ylim=(0, 1.05))
ax1.legend(loc="upper right", fontsize=8)
ax2.bar(range(HEADS), final_spans.tolist(), label="span $z$")
ax2.bar(range(HEADS), [R] * HEADS, bottom=final_spans.tolist(), color="0.8", label="ramp $R$")
ax2.axhline(L, color="k", ls=":", label=f"$L = {L}$")
ax2.set(xlabel="head", ylabel="distance (tokens)", xticks=range(HEADS),
        title="Final span and ramp per head")  # fmt: skip
ax2.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# The accuracy on the 200 test sequences checked during training reaches
# {glue:text}`ch16_early_acc:.3f` within the first 160 steps (at least 0.99, asserted); when
# it first passes 0.99, at step {glue:text}`ch16_solved_step`, every span is still longer
# than $L - R$, where the long ones end (asserted). The penalty then shrinks the spans
# together until the task pushes back. The figure and the
# assertions above show how it ends (seed 0): at most half of the heads keep a reach
# $z + R$ just beyond $L$, the others stop short of it, one of them at a span of (almost)
# 0, where it still sees distances $0$ to $R - 1$, which hold the previous token, and the
# final test accuracy is {glue:text}`ch16_acc_adaptive:.3f` (asserted at least 0.99). Two things to notice:
#
# - **The long span stops at $z \approx L - R$, not at $L$.** A key on the ramp is
#   down-weighted by $m_z(x) < 1$, but the weights are renormalised: a head that puts
#   nearly all its softmax mass on distance $L$ keeps it even when $m_z(L)$ is small. So
#   "span" means $z$, and what a head sees is its *reach* $z + R$.
# - **This is fragile where it matters.** Once a span has retreated so far that
#   $m_z(L) = 0$, the useful key is off the ramp and the gradient that would bring it back
#   is exactly 0 (the slope of the mask beyond $z + R$, checked in {ref}`ch16-mask`).
#   A penalty that pushes harder than the task pulls can move a span past that edge, and
#   nothing then brings it back: $\lambda$ must stay small compared with what the long
#   lookup is worth to the loss.
#
# Which head does what can be read from the weights: for each head, the mean attention
# weight at each distance, over the test queries $t \ge L$.

# %%
with torch.no_grad():
    h_in = adaptive.block.ln1(adaptive.embed(test_data["x"]))  # (B, N, d_model)
    layer = adaptive.attn
    qh, kh, vh = (split_heads(p(h_in), HEADS) for p in (layer.q_proj, layer.k_proj, layer.v_proj))
    _, w = adaptive_span_attention(qh, kh, vh, layer.spans, ramp=R, pos_emb=layer.key_pe,
                                   return_weights=True)  # fmt: skip
by_distance = torch.zeros(HEADS, N)  # (H, distance)
for t in range(L, N):
    by_distance[:, : t + 1] += w[:, :, t, torch.arange(t, -1, -1)].mean(0)  # key t - x
by_distance /= N - L
fig, ax = plt.subplots(figsize=(6.5, 3.2))
for h in range(HEADS):
    ax.plot(range(N), by_distance[h], "o-", ms=3, label=f"head {h} (z = {final_spans[h]:.1f})")
ax.set(xlabel="distance to the key, $x = t - r$", ylabel="mean attention weight", xlim=(-1, 32),
       title="Where each head looks (test queries $t \\geq L$)")  # fmt: skip
ax.legend(fontsize=8)
plt.show()
for h in range(HEADS):
    print(f"head {h}: mean weight {by_distance[h, 1]:.3f} at distance 1, "
          f"{by_distance[h, L]:.3f} at distance {L}")  # fmt: skip
is_long = reach > L
assert torch.all(by_distance[~is_long, 1] > 0.8), (  # short heads: the previous token
    "claim no longer holds: 'the heads short of L put almost all their weight on the previous "
    f"token' (measured lowest {by_distance[~is_long, 1].min():.3g})"
)
assert float(by_distance[is_long, L].sum()) > 0.8, (  # long heads: together, distance L
    "claim no longer holds: 'their weights at distance L add up to most of one' "
    f"(measured {float(by_distance[is_long, L].sum()):.3g})"
)

# %% [markdown]
# The heads that stop short of $L$ put almost all their weight on the previous token; the
# heads that kept a long reach carry the lookup $L$ tokens back between them (their
# weights at distance $L$ add up to most of one), and use the rest of their weight on
# nearby tokens. The division of labour is not always one head per job, but the ranges are
# what the task needs: short where a short lookup suffices, long only where a long one is
# required.

# %% [markdown]
# (ch16-cost)=
# ## Cost versus full attention
#
# The learned spans fix the cost. A query at position $t$ of a head with span $z$ needs
# $\min(t + 1, \lceil z + R \rceil)$ keys, each costing $2d$ FLOPs for its score and $2d$
# for its share of the output; full causal attention needs $t + 1$ keys per query,
# $2 d n (n + 1)$ FLOPs per head in all. `adaptive_span_flops(n, spans, R, d)` sums this over
# the heads. The spans do not depend on $n$: the same heads on longer sequences would
# still look back at most $\lceil z + R \rceil$ tokens, so the saving grows linearly
# with $n$.

# %%
head_dim = adaptive.attn.head_dim
print(f"{'n':>6} {'full causal FLOPs':>18} {'adaptive FLOPs':>15} {'ratio':>8}")
flops_ratio = {}
for n_point in (64, 512, 4096, 8192):
    full_flops = adaptive_span_flops(n_point, [float(n_point)] * HEADS, R, head_dim)
    ours = adaptive_span_flops(n_point, final_spans, R, head_dim)
    flops_ratio[n_point] = full_flops / ours
    print(f"{n_point:>6} {full_flops:>18,} {ours:>15,} {flops_ratio[n_point]:>8.1f}")
assert full_flops == HEADS * 2 * head_dim * n_point * (n_point + 1), (
    "full causal attention must cost 2 d n (n + 1) FLOPs per head; found "
    f"{full_flops:,}, expected {HEADS * 2 * head_dim * n_point * (n_point + 1):,}"
)
assert flops_ratio[64] > 1.5 and flops_ratio[4096] > 50, (
    "claim no longer holds: 'quality kept at a fraction of the FLOPs' (measured full / adaptive "
    f"{flops_ratio[64]:.3g} at n = 64, {flops_ratio[4096]:.3g} at n = 4096)"
)
assert flops_ratio[8192] > 1.9 * flops_ratio[4096], (  # linear versus quadratic
    "claim no longer holds: 'the saving grows linearly with n' (measured ratio "
    f"{flops_ratio[4096]:.3g} at n = 4096, {flops_ratio[8192]:.3g} at n = 8192)"
)

# %% [markdown]
# FLOPs are not time. Our implementation computes one band for all the heads of a layer,
# as wide as the *largest* span plus the ramp and rounded up to blocks of at least 32
# queries (each scored against its own block and the previous one), so it does more
# arithmetic than the count above; and the full attention it competes with is PyTorch's
# fused `scaled_dot_product_attention`, a FlashAttention-style kernel, while ours is a
# handful of ordinary tensor operations. The benchmark times one forward pass (4 heads of
# width 8, the learned spans) on one core of the machine that builds the book: the best of
# 5 rounds, each round running the two layers in turn (`time_in_turns`), so that
# a busy moment of the machine slows both alike.


# %%
# NBVAL_IGNORE_OUTPUT
lengths = [256, 512, 1024, 2048, 4096, 8192]
seconds = {"full (SDPA, causal)": [], "adaptive span (learned)": []}
gen = torch.Generator().manual_seed(0)
for n_point in lengths:
    q, k, v = (torch.randn(1, HEADS, n_point, head_dim, generator=gen) for _ in range(3))
    best = time_in_turns({
        "full (SDPA, causal)":
            lambda q=q, k=k, v=v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
        "adaptive span (learned)":
            lambda q=q, k=k, v=v: adaptive_span_attention(q, k, v, final_spans, ramp=R),
    })  # fmt: skip
    for name, t in best.items():
        seconds[name].append(t)
time_ratio = {
    n_point: a / b
    for n_point, a, b in zip(lengths, *seconds.values())
}  # fmt: skip
for n_point in lengths:
    print(f"n = {n_point:>5}: full / adaptive time = {time_ratio[n_point]:.2f}")
# the shortest length from which on the adaptive layer was faster at every length measured
crossover = min(n0 for n0 in [*lengths, math.inf] if all(time_ratio[m] > 1 for m in lengths if m >= n0))
print("adaptive span faster at every length from n =", crossover)

fig, ax = plt.subplots(figsize=(6.5, 3.8))
for name, values in seconds.items():
    ax.loglog(lengths, [1e3 * s for s in values], "o-", label=name)
ax.set(xlabel="sequence length $n$", ylabel="forward time (ms)",
       title="One attention layer, 4 heads, learned spans, one CPU core")  # fmt: skip
ax.legend()
plt.show()
assert time_ratio[8192] > 3, "claim: 'at the longest length the band wins, by a wide margin'"
assert time_ratio[8192] > 3 * time_ratio[512], "claim: 'its lead grows with n'"
glue("ch16_crossover_n", crossover, display=False)
glue("ch16_time_ratio_256", time_ratio[256], display=False)
glue("ch16_time_ratio_8192", time_ratio[8192], display=False)

# %% [markdown]
# The plot shows the two regimes. For short sequences the fused kernel can win: it does
# more arithmetic, but in one optimised call, while the band costs a fixed number of tensor
# operations whatever $n$. The full attention's time grows as $n^2$ and the band's as $n$,
# so beyond a crossover length the adaptive layer is faster, and its lead grows with $n$.
# The asserts check the long end with wide margins: at $n = 8192$ the band is more than 3
# times faster, and the ratio there is more than 3 times the ratio at $n = 512$ (an
# $n^2$ against an $n$ cost would make it 16 times). On the
# machine that built this page, full time divided by adaptive time was
# {glue:text}`ch16_time_ratio_256:.2f` at $n = 256$ (below 1 means that the fused kernel
# was faster) and {glue:text}`ch16_time_ratio_8192:.1f` at $n = 8192$, and the adaptive
# layer was faster at every length measured from $n =$ {glue:text}`ch16_crossover_n` on;
# the table of FLOPs says how
# far the lead could grow with a fused kernel for the band. Memory follows the same shapes: the band holds
# $O(n (S + R))$ scores, where unfused full attention holds $n^2$. This is the paper's
# point: the context can grow to thousands of tokens while the cost follows what the
# heads use {cite:p}`sukhbaatar2019adaptive`.

# %% tags=["remove-cell"]
# Figures quoted by the closing chapter ("Summary"), recorded with myst-nb's glue
# (this cell displays nothing and is hidden in the book).
glue("ch16_max_reach", float(reach.max()), display=False)
glue("ch16_mean_span", float(final_spans.mean()), display=False)
glue("ch16_acc_adaptive", float(acc_adaptive), display=False)
glue("ch16_acc_full", float(acc_full), display=False)
glue("ch16_flops_ratio_4096", float(flops_ratio[4096]), display=False)
glue("ch16_time_ratio_4096", float(time_ratio[4096]), display=False)
glue("ch16_time_ratio_512", float(time_ratio[512]), display=False)

# %% [markdown]
# (ch16-trend)=
# ## What "adaptive attention" means
#
# The seed text's answer to the question on the future of self-attention lists five
# trends: more efficient attention (chapters 6 and 7), multimodal attention (chapter 10),
# interpretability (chapter 13), hardware acceleration (chapter 14), and, fourth, adaptive
# attention:
#
# ```{admonition} Seed erratum E12 · 发展趋势 (line 145)
# :class: seed-erratum
# The seed says: 「自注意力机制将变得更加自适应，根据特定任务和上下文自动调整注意力权重」
# **Correction:** every attention layer has adjusted its weights to the context since the
# first one {cite:p}`bahdanau2014neural`; what the literature calls adaptive attention
# adapts what ordinary attention keeps fixed: the span, the sparsity or the computation.
# Entry: {ref}`E12 <errata-e12>`; evidence: {ref}`ch16-trend`.
# ```
#
# The weights are a softmax of scores computed from the input, and a trained model's
# weights are fitted to its task. The cell
# below shows it for an ordinary, untrained causal layer: two inputs, two different sets of
# weights, and yet every query of both looks at all $t + 1$ keys up to its own: the
# *weights* adapt, the *range* and the *cost* do not.

# %%
torch.manual_seed(0)
layer = FullSelfAttention(32, 4, causal=True)
x1, x2 = torch.randn(2, 1, 64, 32).unbind(0)
with torch.no_grad():
    maps = []
    for x in (x1, x2):
        qx, kx, vx = (split_heads(p(x), 4) for p in (layer.q_proj, layer.k_proj, layer.v_proj))
        maps.append(ak.scaled_dot_product_attention(qx, kx, vx, ak.causal_mask(64),
                                                    return_weights=True)[1])  # fmt: skip
change = (maps[0] - maps[1]).abs().sum(-1).mean().item()
nonzero = [(w_map > 0).sum(-1) for w_map in maps]  # (1, H, n) keys with a nonzero weight
print(f"mean L1 change of a row of weights between the two inputs: {change:.3f}")
print("keys with a nonzero weight, query t = 0, 31, 63:", nonzero[0][0, 0, [0, 31, 63]].tolist(),
      "for both inputs:", torch.equal(nonzero[0], nonzero[1]))  # fmt: skip
assert change > 0.1, (
    "claim no longer holds: 'two inputs, two different sets of weights' "
    f"(measured mean L1 change {change:.3g})"
)
assert (
    torch.equal(nonzero[0][0, 0], torch.arange(1, 65)) and torch.equal(nonzero[0], nonzero[1])
), (
    "claim no longer holds: 'every query of both looks at all t + 1 keys up to its own' "
    f"(measured {nonzero[0][0, 0, [0, 31, 63]].tolist()} keys at t = 0, 31, 63; "
    f"{nonzero[1][0, 0, [0, 31, 63]].tolist()} for the second input)"
)

# %% [markdown]
# In the research literature "adaptive attention" means adapting something that ordinary
# attention keeps fixed:
#
# - **the range**: the adaptive span of this chapter, one learned span per head
#   {cite:p}`sukhbaatar2019adaptive`; its *dynamic* variant computes the span from the
#   current token, $z_t = S\, \sigma(v^\top x_t + b)$, so that the range also changes with
#   the input (not built here);
# - **the sparsity**: adaptively sparse attention replaces the softmax by $\alpha$-entmax,
#   which gives exact zeros to low scores, with a shape parameter $\alpha$ learned per head
#   from dense (softmax) to sparse (sparsemax) {cite:p}`correia2019adaptively`;
# - **the computation**: adaptive computation time lets a recurrent network decide how many
#   steps to spend on each input {cite:p}`graves2016adaptive`, and the Universal Transformer
#   applies one layer repeatedly with such a halting mechanism per position
#   {cite:p}`dehghani2019universal`.
#
# Adaptive range and adaptive computation share the aim of chapter 7's fixed patterns, to
# spend computation only where the input needs it, but learn where that is instead of
# fixing it by hand; adaptive sparsity aims at sharper weights with exact zeros, which
# also makes them easier to read. As for "improving model performance": the adaptive span's
# direct gain is cost, quality kept at a fraction of the FLOPs, and that is what made a
# maximum context of 8192 characters affordable, which in turn gave the paper its
# state-of-the-art results on character-level language modelling
# {cite:p}`sukhbaatar2019adaptive`. Our task shows the first half: the accuracy of full
# attention with fewer FLOPs ({ref}`ch16-cost`).

# %% [markdown]
# ## Key takeaways
#
# - Heads need different ranges. A learnable span per head lets each look only as far back
#   as its job requires; in the paper most heads stay short and a few grow long.
# - The soft mask $m_z(x) = \mathrm{clamp}((R + z - x)/R, 0, 1)$ makes the span a real,
#   differentiable parameter: $\partial m / \partial z = 1/R$ on the ramp. An L1 penalty on
#   the spans makes long spans cost something.
# - Keys beyond $z + R$ get weight exactly 0, so only a band of width $S + R$ need be
#   computed: $O(n (S + R) d)$ instead of $O(n^2 d)$.
# - On a task with one short and one long lookup, at most half of the heads kept a reach
#   just beyond the long distance, the others shrank below it, and the accuracy matched
#   full attention's.
#   A span settles at about $L - R$, because renormalisation keeps the weight of a key on
#   the ramp; a span that retreats past the key gets no gradient back.
# - Fewer FLOPs become less time only beyond a crossover length, against a fused full
#   attention kernel: on the CPU core that built this page, from $n =$
#   {glue:text}`ch16_crossover_n` on, and the lead then grows with $n$.
# - "Adaptive attention" in research means adapting the range, the sparsity or the
#   computation; attention weights have always adapted to the input.

# %% [markdown]
# ## Exercises
#
# The exercises for this chapter are in `exercises/16_adaptive_attention.ipynb`. You will
# write
#
# 1. `soft_span_mask`: the soft mask $m_z(x)$;
# 2. `adaptive_span_weights`: causal adaptive-span attention weights from a matrix of
#    scores, one span per head;
# 3. `span_penalty`: the paper's L1 penalty on the spans of a model;
# 4. `adaptive_span_flops`: the FLOPs that given spans need, against full attention.
#
# Grade your work with `python -m attnkit.grade 16`.

# %% [markdown]
# (ch16-interview)=
# ## Interview question
#
# ```{admonition} Interview question
# :class: tip
#
# **题目：** 请分析自注意力机制在未来自然语言处理领域的发展趋势。
#
# :::{english-only}
# **Question:** Analyse the development trends of self-attention in the future of natural
# language processing.
# :::
#
# *This chapter answers the source text's fourth trend, adaptive attention (自适应注意力).*
#
# **Model answer.** Attention weights *already* adapt to every input, since they are a
# softmax of scores computed from it, so "attention that adjusts its weights to the task
# and context" is not a new trend ({ref}`ch16-trend`). Research makes adaptive what
# ordinary attention fixes. The *range*: the adaptive attention span gives each head a
# learnable span $z$ and multiplies its weights by a soft mask
# $m_z(x) = \mathrm{clamp}((R + z - x)/R, 0, 1)$ of the distance $x$, then renormalises;
# the mask is differentiable in $z$ (slope $1/R$ on the ramp), and an L1 penalty keeps
# each head only as long as its job needs ({ref}`ch16-mask`). Keys beyond $z + R$ get
# weight exactly 0, so only a band is computed, $O(n(S + R)d)$ instead of $O(n^2 d)$; in
# the paper most heads stay short and a few grow long, which made a context of 8192
# characters affordable. On the chapter's task with one short and one long lookup, at most
# half of the heads kept a long reach, the others shrank, and the accuracy matched full
# attention with fewer FLOPs ({ref}`ch16-task`, {ref}`ch16-cost`). The trade-offs: fewer
# FLOPs become less time only beyond a crossover length against a fused dense kernel, and
# a span that retreats past a needed key gets no gradient back, so the penalty must stay
# weak. Other adaptive axes: the *sparsity* ($\alpha$-entmax learns per head how sparse
# its weights are) and the *computation* (adaptive computation time and the Universal
# Transformer decide per position how many steps to run).
# ```

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
# # How far attention explains
#
# An attention layer hands us, for free, a probability distribution over the input tokens.
# It is tempting to read it as an explanation: "the model called this review negative
# because it attended to *awful*". This chapter asks when that reading is justified, and
# measures the answer on a model we train ourselves.
#
# The seed text lists interpretability among the limitations and core challenges of
# self-attention (局限性, 核心问题和挑战), with a reason that does not hold:
#
# ```{admonition} Seed erratum E7 · 优势和局限性 (line 87)
# :class: seed-erratum
# The seed says: 「自注意力权重通常难以解释，因为它们是在训练过程中自动学习的」
# **Correction:** attention weights are not learned parameters but computed afresh for
# every input; they can be a poor explanation because a weight on a position is not, in
# general, the contribution of the word there (how poor is measured in this chapter).
# Entry: {ref}`E7 <errata-e7>`; evidence: {ref}`ch13-truth`.
# ```
#
# Attention weights are not hard to *read*: each row is a probability distribution
# over positions, non-negative and summing to one, which is more than most activations
# offer. The real problem is **faithfulness**: does the weight on position $t$ measure how
# much *the word at position $t$* matters for the prediction? Three reasons it need not:
#
# 1. **Mixing.** After the first layer, position $t$ no longer holds the word $t$: its state
#    is already a mixture of the whole sentence. A weight on position $t$ in layer 2 is a
#    weight on that mixture.
# 2. **The weight is not the contribution.** The output is $\sum_t \alpha_t v_t$; a large
#    $\alpha_t$ on a small or irrelevant value vector $v_t$ contributes little
#    {cite:p}`kobayashi2020attention`, and residual connections and feed-forward layers
#    carry information around the attention altogether.
# 3. **Many weights, one output.** Very different attention distributions can give nearly
#    the same prediction {cite:p}`jain2019attention`, so the distribution the model happens
#    to produce need not be *the* reason for its output (but see
#    {cite:t}`wiegreffe2019attention` for what such counterfactuals do and do not show).
#
# So "is attention an explanation?" is an empirical question about a given model. We
# answer it for one model with the tools of the literature: rank agreement with
# gradient-based and erasure-based attributions {cite:p}`jain2019attention`, the effect of
# removing the top-ranked tokens {cite:p}`serrano2019attention,deyoung2020eraser`,
# agreement with tokens that we *know* decide the label, and counterfactual attention
# weights {cite:p}`jain2019attention,wiegreffe2019attention`.
#
# By the end of this chapter you should be able to
#
# - compute raw attention, attention rollout, gradient $\times$ input, integrated
#   gradients and leave-one-out erasure for a Transformer classifier, and say what each
#   one measures;
# - evaluate an attribution: rank correlation, removal curves against a random baseline,
#   and agreement with ground truth;
# - run the counterfactual-attention test and interpret it with Wiegreffe & Pinter's
#   caveats;
# - explain why a synthetic task can give a cleaner picture than a real one.
#
# Everything uses the companion package `attnkit`: the task comes from
# `attnkit.data.sentiment`, the models from `attnkit.models.text_classifier`, and every
# attribution and evaluation tool from `attnkit.interpret`.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from myst_nb import glue

import attnkit as ak
from attnkit.data.sentiment import FORMS, encode_sentiment, sentiment_task
from attnkit.interpret import (
    attention_rollout,
    gradient_x_input,
    integrated_gradients,
    kendall_tau,
    leave_one_out,
    permute_weights,
    pooled_attention,
    pooled_rollout,
    removal_curve,
    top_k_precision,
    total_variation,
)
from attnkit.models.text_classifier import TransformerClassifier, accuracy, train_classifier
from attnkit.training import TrainConfig, count_parameters, seed_everything

torch.manual_seed(0)
# One thread: the book runs its chapters side by side, one thread each, so every number
# below is the same on any machine, however many cores it has and however busy it is
# (timings aside).
torch.set_num_threads(1)
torch.set_printoptions(precision=4, sci_mode=False)
plt.rcParams.update({"figure.dpi": 100, "axes.grid": False})
print("torch", torch.__version__, "| attnkit", ak.__version__)

# %% [markdown]
# (ch13-task)=
# ## A task whose reasons we know
#
# On real data nobody knows which words *really* decided a label, so every evaluation of an
# attribution is indirect. We therefore generate movie-review sentences from a small
# grammar in which the deciding words are known by construction
# (`attnkit.data.sentiment`; the grammar and labelling rules are in its docstring):
#
# - **negation** flips a clause: "the film was not good at all" is negative, also with
#   words between *not* and the adjective ("was not particularly good");
# - **contrast** picks a clause: after "A but B" the clause B decides; in "although A, B"
#   and "B, although A" the main clause B decides, wherever it stands; the two clauses
#   always have opposite polarities, so the adjectives alone do not give the label;
# - **neutral fillers** ("as my friend had said", "to be honest") put the cues far apart.
#
# Each example carries the positions of its **deciding tokens**: the adjective of the
# deciding clause, its negation if any, and the contrast word. The test set mixes ordinary
# sentences with held-out combinations of form, adjectives and negations that never occur
# in training (for example "the film was great" when training only ever said "not great" in
# a single-clause sentence), so it also probes generalisation.

# %%
task = sentiment_task()  # 4000 / 500 / 1000 sentences, seed 0
tok = task.tokenizer
print(f"train {len(task.train)}, val {len(task.val)}, test {len(task.test)}, vocabulary {len(tok)}")
for form in FORMS:
    ex = next(e for e in task.train if e.form == form)
    marked = " ".join(f"[{w}]" if i in ex.decisive else w for i, w in enumerate(ex.words))
    print(f"{form:16s} label {ex.label}: {marked}")

# %% [markdown]
# The deciding tokens are in brackets. A bag-of-words model cannot tell "although A was
# good, B was bad" from "A was good, although B was bad", and a linear score cannot
# express "*not* flips the next adjective"; the comparison of such baselines with the
# Transformer is in chapter 11. Here we need one good Transformer to explain.
#
# (ch13-model)=
# ## The model: a Transformer with attention pooling
#
# `TransformerClassifier` embeds the tokens, adds learned positions, runs a two-layer
# pre-LN encoder (two heads of width 16) and pools the final states
# $h_1, \dots, h_n$ with a learned query, the *attention pooling* of hierarchical
# attention networks {cite:p}`yang2016hierarchical` and structured self-attentive sentence
# embeddings {cite:p}`lin2017structured`:
#
# $$
# s_t = v^\top \tanh(W h_t), \qquad
# \alpha = \mathrm{softmax}(s), \qquad
# z = \sum_t \alpha_t h_t, \qquad
# \text{logits} = U z + b .
# $$
#
# The pooling weights $\alpha$ are exactly the kind of attention that
# {cite:t}`jain2019attention` studied: one distribution over the tokens, applied right
# before the output layer. If any attention is an explanation, this one should be. We
# train for {glue:text}`ch13_steps` steps of 64 sentences with a fixed seed.

# %%
train_ids, train_mask, train_y, _ = encode_sentiment(task.train, tok)
test_ids, test_mask, test_y, test_decisive = encode_sentiment(task.test, tok)
held = torch.tensor([ex.heldout for ex in task.test])
recipe = TrainConfig(steps=800, lr=3e-3, warmup_steps=50, eval_every=800, seed=0)


def make_model(pooling: str) -> TransformerClassifier:
    seed_everything(0)
    model = TransformerClassifier(
        len(tok), pooling=pooling, d_model=32, num_heads=2, num_layers=2, d_ff=64, dropout=0.0
    )
    train_classifier(model, train_ids, train_mask, train_y, recipe, batch_size=64)
    return model.eval()


model = make_model("attention")
test_acc = accuracy(model, test_ids, test_mask, test_y)
held_acc = accuracy(model, test_ids[held], test_mask[held], test_y[held])
print(f"{count_parameters(model):,} parameters")
print(f"test accuracy {test_acc:.3f} (held-out combinations: {held_acc:.3f})")
assert test_acc >= 0.95 and held_acc >= 0.95, (
    f"claim no longer holds: 'both at least 95%' (measured {test_acc:.1%}, {held_acc:.1%})"
)
glue("ch13_steps", recipe.steps, display=False)
glue("ch13_test_acc", test_acc, display=False)
glue("ch13_held_acc", held_acc, display=False)

# %% [markdown]
# The model is accurate on the whole test set, held-out combinations included
# ({glue:text}`ch13_test_acc:.1%` and {glue:text}`ch13_held_acc:.1%`, both at least 95%,
# asserted above), so it has learned the rules rather than the sentences. Now
# we ask it *why*.
#
# (ch13-methods)=
# ## Six ways to score a token
#
# Each method gives one score per token of a sentence, for the predicted class $c$. Let
# $A^{(l)} = \frac{1}{H}\sum_h A^{(l,h)}$ be layer $l$'s attention averaged over its heads
# (row $q$ = query, column $k$ = key) and $e_t$ the embedding of token $t$.
#
# - **Pooling attention**: $\alpha_t$ itself.
# - **Last-layer attention**: where the pooled vector looks in the last encoder layer,
#   $\sum_q \alpha_q A^{(L)}_{q t}$ (for a `[CLS]`-pooled model: the `[CLS]` row).
# - **Attention rollout** {cite:p}`abnar2020quantifying`: account for the residual
#   connection with $\hat A^{(l)} = \tfrac12 A^{(l)} + \tfrac12 I$ and follow the mixing
#   through the layers, $R = \hat A^{(L)} \cdots \hat A^{(1)}$; the score is
#   $\sum_q \alpha_q R_{q t}$. This is the answer to reason 1 above.
# - **Gradient $\times$ input** {cite:p}`shrikumar2016not`:
#   $g_t = e_t \cdot \partial f_c / \partial e_t$, the first-order Taylor estimate of
#   what zeroing $e_t$ would do to the logit $f_c$; we rank by $|g_t|$.
#   **Integrated gradients** {cite:p}`sundararajan2017axiomatic` average the gradient
#   along the straight path from $0$ to $e$,
#   $\mathrm{IG}_t = e_t \cdot \int_0^1 \partial f_c(a e) / \partial e_t \, da$, which makes
#   the scores add up to $f_c(e) - f_c(0)$ (*completeness*).
# - **Leave-one-out erasure** {cite:p}`li2016understanding`: delete token $t$ and measure
#   the drop of the predicted probability, $p_c(x) - p_c(x_{\setminus t})$. It is the
#   direct, single-token answer to "does this word matter?", and the reference we compare
#   the others with.
#
# We score the first 500 test sentences with each method (integrated gradients with 32
# steps). `[CLS]` and `[SEP]` are never ranked or removed: the `candidates` are the words.

# %%
# NBVAL_IGNORE_OUTPUT
start = time.perf_counter()
N = 500
ids, mask, decisive = test_ids[:N], test_mask[:N], test_decisive[:N]
candidates = mask & (ids != tok.cls_id) & (ids != tok.sep_id)  # (N, T)
with torch.no_grad():
    logits, attentions, alpha = model(ids, mask, return_attention=True)
pred = logits.argmax(-1)  # (B,)
scores = {
    "pooling attention": alpha,
    "last-layer attention": pooled_attention(attentions, alpha),
    "rollout": pooled_rollout(attentions, alpha),
    "grad x input": gradient_x_input(model, ids, mask).abs(),
    "integrated gradients": integrated_gradients(model, ids, mask, steps=32).abs(),
    "erasure": leave_one_out(model, ids, mask, candidates=candidates),
}
scores = {name: s.masked_fill(~candidates, 0.0) for name, s in scores.items()}
print(f"all attributions of {N} sentences in {time.perf_counter() - start:.1f} s")

# %% [markdown]
# Before trusting them, we check what the introduction claimed (every row of attention
# weights is a probability distribution) and that the code computes the formulas: the
# rollout against an explicit product of the per-layer matrices, integrated gradients
# against completeness (with 256 steps in double precision; the gap is measured relative
# to the largest $|f_c(e) - f_c(0)|$ of the sentences), and erasure against deleting the
# word by hand from one sentence.

# %%
# attention weights are easy to *read*: every row is a probability distribution
assert torch.allclose(alpha.sum(-1), torch.ones(N), atol=1e-5) and (alpha >= 0).all(), (
    "claim no longer holds: 'every row of attention weights is a probability distribution' "
    f"(pooling: largest |row sum - 1| {(alpha.sum(-1) - 1).abs().max().item():.3g}, "
    f"smallest weight {alpha.min().item():.3g})"
)
for a in attentions:
    assert torch.allclose(a.sum(-1), torch.ones(a.shape[:-1]), atol=1e-5), (
        "claim no longer holds: 'every row of attention weights is a probability distribution' "
        f"(largest |row sum - 1| {(a.sum(-1) - 1).abs().max().item():.3g})"
    )
i = 0
A1, A2 = (0.5 * a[i].mean(0) + 0.5 * torch.eye(a.shape[-1]) for a in attentions)
rollout_by_hand = alpha[i] @ (A2 @ A1)
assert torch.allclose(pooled_rollout(attentions, alpha)[i], rollout_by_hand, atol=1e-6), (
    "expected pooled_rollout to equal the explicit product; max difference "
    f"{(pooled_rollout(attentions, alpha)[i] - rollout_by_hand).abs().max().item():.3g}"
)
assert torch.allclose(attention_rollout(attentions)[i], A2 @ A1, atol=1e-6), (
    "expected attention_rollout to equal A2 @ A1; max difference "
    f"{(attention_rollout(attentions)[i] - A2 @ A1).abs().max().item():.3g}"
)

m64 = model.double()
ig = integrated_gradients(m64, ids[:8], mask[:8], pred[:8], steps=256)
e = m64.embed_tokens(ids[:8])
with torch.no_grad():
    f_e = m64.forward_embeddings(e, mask[:8]).gather(1, pred[:8, None])[:, 0]
    f_0 = m64.forward_embeddings(0 * e, mask[:8]).gather(1, pred[:8, None])[:, 0]
completeness_gap = float((ig.sum(-1) - (f_e - f_0)).abs().max() / (f_e - f_0).abs().max())
model = m64.float()
print(f"integrated gradients: largest relative completeness gap {completeness_gap:.1e}")
assert completeness_gap < 0.01, (
    "expected integrated gradients to satisfy completeness (relative gap below 0.01); found "
    f"{completeness_gap:.3g}"
)

words = task.test[i].words
t = task.test[i].decisive[0] + 1  # +1 for [CLS]
with torch.no_grad():
    p_full = torch.softmax(model(ids[i : i + 1, : len(words) + 2]), -1)[0, pred[i]]
    shorter = torch.cat([ids[i, :t], ids[i, t + 1 : len(words) + 2]])[None]
    p_without = torch.softmax(model(shorter), -1)[0, pred[i]]
print(f"sentence: {task.test[i].text!r}; deleting {words[t - 1]!r}:")
print(f"p = {p_full:.4f} -> {p_without:.4f}; erasure score {scores['erasure'][i, t]:.4f}")
assert abs(float(p_full - p_without) - float(scores["erasure"][i, t])) < 1e-5, (
    f"expected the erasure score to equal the drop by hand, {float(p_full - p_without):.6g}; "
    f"found {float(scores['erasure'][i, t]):.6g}"
)

# %% [markdown]
# (ch13-heatmaps)=
# ## What the methods say about a few sentences
#
# Each panel is one test sentence, each row one method, each cell a token, coloured by the
# method's score divided by its largest absolute value in the sentence. The deciding
# tokens are in red on the horizontal axis.

# %%
examples = [
    next(j for j, ex in enumerate(task.test[:N]) if ex.form == form and len(ex.words) <= 18)
    for form in ("single", "but", "although_first")
]
fig, axes = plt.subplots(len(examples), 1, figsize=(11, 8.5))
for ax, j in zip(axes, examples):
    n = len(task.test[j].words)
    table = np.stack([s[j, 1 : n + 1].numpy() for s in scores.values()])  # (methods, n)
    table = table / np.abs(table).max(axis=1, keepdims=True)
    ax.imshow(table, cmap="coolwarm", vmin=-1, vmax=1, aspect="auto")
    ax.set_yticks(range(len(scores)), list(scores))
    ax.set_xticks(range(n), task.test[j].words, rotation=45, ha="right")
    for pos in task.test[j].decisive:
        ax.get_xticklabels()[pos].set_color("red")
    names = ("negative", "positive")
    ax.set_title(
        f"form {task.test[j].form!r}: label {names[task.test[j].label]}, "
        f"predicted {names[int(pred[j])]}"
    )
    ax.set_xlabel("token (red: deciding tokens)")
fig.suptitle("Per-token scores, each row scaled to [-1, 1] (blue: negative, red: positive)")
fig.tight_layout()
plt.show()
filler_erasure = float(scores["erasure"][candidates & ~decisive].abs().median())
print(f"median |erasure score| of the non-deciding words: {filler_erasure:.1e}")
assert filler_erasure < 0.01, f"claim no longer holds: 'below 0.01' ({filler_erasure:.1e})"
glue("ch13_filler_erasure", filler_erasure, display=False)

# %% [markdown]
# The pictures already suggest the pattern that the measurements below confirm: the
# pooling weights are spread over many positions (their largest weight in a sentence is
# {glue:text}`ch13_largest_alpha:.3f` on average, below 0.3, asserted in section (c)) and
# often peak away from the deciding words, while rollout, the gradient methods and erasure concentrate on the deciding
# adjective. Erasure is signed (positive: deleting the token lowers the probability of the
# predicted class) and close to zero for most words: over all 500 sentences, the median
# $|$erasure score$|$ of the non-deciding words is {glue:text}`ch13_filler_erasure:.1e`,
# below 0.01 (asserted in the cell above).
#
# (ch13-agreement)=
# ## (a) Do the rankings agree?
#
# {cite:t}`jain2019attention` compared the ranking of tokens by attention with the ranking
# by gradients and by leave-one-out erasure, using Kendall's $\tau$ per sentence
# ($\tau = 1$: same order, $0$: unrelated, $-1$: reversed). We do the same, with erasure as
# the reference.

# %%
reference = scores["erasure"]
taus = {
    name: kendall_tau(s, reference, candidates).float()
    for name, s in scores.items()
    if name != "erasure"
}
mean_tau = {name: float(t.nanmean()) for name, t in taus.items()}
for name, value in mean_tau.items():
    print(f"Kendall tau with erasure, {name:21s}: mean {value:+.3f}")
tau_attention_gradient = float(
    kendall_tau(scores["pooling attention"], scores["grad x input"], candidates).nanmean()
)
print(f"Kendall tau, pooling attention vs grad x input: mean {tau_attention_gradient:+.3f}")

fig, ax = plt.subplots(figsize=(7.5, 3.8))
bins = np.linspace(-1, 1, 41)
for name in ("pooling attention", "rollout", "grad x input"):
    t = taus[name]
    ax.hist(t[~t.isnan()].numpy(), bins=bins, alpha=0.5, label=name)
ax.set_xlabel("Kendall tau with leave-one-out erasure (per sentence)")
ax.set_ylabel("number of test sentences")
ax.set_title("Rank agreement with erasure")
ax.legend()
plt.show()

assert abs(mean_tau["pooling attention"]) < 0.15, (
    "claim no longer holds: 'uncorrelated with the erasure ranking, within +-0.15 of zero' "
    f"(measured {mean_tau['pooling attention']:.3g})"
)
assert mean_tau["rollout"] > mean_tau["pooling attention"] + 0.1, (
    "claim no longer holds: 'rollout agrees better' (measured tau "
    f"{mean_tau['rollout']:.3g} vs pooling attention {mean_tau['pooling attention']:.3g})"
)
assert mean_tau["grad x input"] > mean_tau["pooling attention"] + 0.05, (
    "claim no longer holds: 'the gradient methods agree better' (measured grad x input tau "
    f"{mean_tau['grad x input']:.3g} vs pooling attention {mean_tau['pooling attention']:.3g})"
)
assert mean_tau["integrated gradients"] > mean_tau["pooling attention"] + 0.05, (
    "claim no longer holds: 'the gradient methods agree better' (measured integrated "
    f"gradients tau {mean_tau['integrated gradients']:.3g} vs pooling attention "
    f"{mean_tau['pooling attention']:.3g})"
)
assert abs(tau_attention_gradient) < 0.2, (
    "claim no longer holds: 'uncorrelated with gradient x input, within +-0.2' "
    f"(measured {tau_attention_gradient:.3g})"
)
assert max(mean_tau.values()) < 0.5, (
    "claim no longer holds: 'no method reaches a mean tau of 0.5' "
    f"(measured {max(mean_tau.values()):.3g})"
)
for name, key in (("pooling attention", "attention"), ("rollout", "rollout"),
                  ("grad x input", "gradxinput"), ("integrated gradients", "ig")):  # fmt: skip
    glue(f"ch13_tau_{key}", mean_tau[name], display=False)
glue("ch13_tau_attention_gradient", tau_attention_gradient, display=False)
glue("ch13_tau_max", max(mean_tau.values()), display=False)

# %% [markdown]
# The pooling weights are essentially uncorrelated with the erasure ranking (mean $\tau$
# {glue:text}`ch13_tau_attention:+.3f`, within $\pm 0.15$ of zero, asserted) and with
# gradient $\times$ input ({glue:text}`ch13_tau_attention_gradient:+.3f`, within
# $\pm 0.2$): the same finding as Jain & Wallace's on recurrent models. Rollout
# ({glue:text}`ch13_tau_rollout:+.3f`) and the gradient methods
# ({glue:text}`ch13_tau_gradxinput:+.3f` and {glue:text}`ch13_tau_ig:+.3f`) agree better,
# but no method reaches a mean $\tau$ of 0.5 over *all* tokens (the highest is
# {glue:text}`ch13_tau_max:+.3f`).
# That is expected here: most words of a sentence have an erasure effect of almost zero,
# and the order among these near-zero words is noise that $\tau$ counts as much as the
# order of the few words that matter. Rank correlation over all tokens is a harsh
# measure; the next two look only at the top of the ranking.
#
# (ch13-removal)=
# ## (b) Removing the top-ranked tokens
#
# If a method's top tokens are the ones the model relies on, deleting them should hurt
# the prediction more than deleting random tokens. We delete the top $k$ words of each
# sentence by each method and record the drop of the predicted class's probability and
# the fraction of flipped predictions (in the spirit of
# {cite:t}`serrano2019attention` and the *comprehensiveness* of
# {cite:t}`deyoung2020eraser`).

# %%
ks = [0, 1, 2, 3, 4]
curves = {
    name: removal_curve(model, ids, mask, s, ks, candidates=candidates)
    for name, s in scores.items()
}
curves["random"] = removal_curve(
    model, ids, mask, None, ks, candidates=candidates,
    generator=torch.Generator().manual_seed(0),
)  # fmt: skip

fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
for name, (drop, flip) in curves.items():
    style = "k--" if name == "random" else "-o"
    axes[0].plot(ks, drop, style, label=name)
    axes[1].plot(ks, flip, style, label=name)
axes[0].set_ylabel("mean drop of p(predicted class)")
axes[1].set_ylabel("fraction of predictions flipped")
for ax in axes:
    ax.set_xlabel("k, number of top-ranked words deleted")
    ax.set_xticks(ks)
axes[0].set_title("Probability drop")
axes[1].set_title("Flip rate")
axes[1].legend(fontsize=8)
fig.tight_layout()
plt.show()

flip1 = {name: float(flip[1]) for name, (_, flip) in curves.items()}
for name, value in flip1.items():
    print(f"delete the top word by {name:21s}: {value:.1%} of predictions flip")
print("flip rate of erasure for k = 0..4:", [round(float(f), 3) for f in curves["erasure"][1]])
assert flip1["pooling attention"] < flip1["random"] + 0.1, (
    "claim no longer holds: 'about as many as deleting a random word, within 10 points' "
    f"(measured {flip1['pooling attention']:.3g} vs random {flip1['random']:.3g})"
)
assert flip1["erasure"] > 0.5 and flip1["rollout"] > 0.5, (
    "claim no longer holds: 'the top word by erasure or by rollout flips more than half' "
    f"(measured {flip1['erasure']:.3g}, {flip1['rollout']:.3g})"
)
assert flip1["erasure"] > flip1["random"] + 0.1, (
    "claim no longer holds: 'deleting the top word by erasure flips more than a random word' "
    f"(measured {flip1['erasure']:.3g} vs random {flip1['random']:.3g})"
)
assert min(flip1["grad x input"], flip1["integrated gradients"]) > flip1["random"] + 0.1, (
    "claim no longer holds: 'the gradient methods are in between' (measured "
    f"{flip1['grad x input']:.3g}, {flip1['integrated gradients']:.3g} vs random "
    f"{flip1['random']:.3g})"
)
assert max(flip1["grad x input"], flip1["integrated gradients"]) < flip1["rollout"], (
    "claim no longer holds: 'the gradient methods are in between' (measured "
    f"{flip1['grad x input']:.3g}, {flip1['integrated gradients']:.3g} vs rollout "
    f"{flip1['rollout']:.3g})"
)
assert curves["erasure"][1][-1] < curves["erasure"][1][1], (  # not monotone in k
    "claim no longer holds: 'erasure's flip rate at k = 4 is lower than at k = 1' "
    f"(measured {float(curves['erasure'][1][-1]):.3g} vs {float(curves['erasure'][1][1]):.3g})"
)

# %% tags=["remove-cell"]
# Figures quoted by the closing chapter ("Summary"), recorded with myst-nb's glue
# (this cell displays nothing and is hidden in the book).
for name, key in (("pooling attention", "attention"), ("rollout", "rollout"),
                  ("erasure", "erasure"), ("random", "random"),
                  ("grad x input", "gradxinput"), ("integrated gradients", "ig")):  # fmt: skip
    glue(f"ch13_flip_{key}", flip1[name], display=False)
glue("ch13_flip_erasure_k4", float(curves["erasure"][1][-1]), display=False)

# %% [markdown]
# Deleting the single most-attended word (by the pooling weights) flips
# {glue:text}`ch13_flip_attention:.1%` of the predictions, about as many as deleting a
# random word ({glue:text}`ch13_flip_random:.1%`; within 10 points, asserted). Deleting the
# top word by erasure ({glue:text}`ch13_flip_erasure:.1%`) or by rollout
# ({glue:text}`ch13_flip_rollout:.1%`) flips more than half of them; the gradient methods
# are in between ({glue:text}`ch13_flip_gradxinput:.1%` and
# {glue:text}`ch13_flip_ig:.1%`). The curves are not monotone in $k$ (erasure's flip rate is
# {glue:text}`ch13_flip_erasure_k4:.1%` at $k = 4$, lower than at $k = 1$, asserted), and that is a property of the task, not a bug: deleting both "not" and "good" from "was not good" leaves a sentence with no
# opinion at all, which the model may well call positive again.
#
# (ch13-truth)=
# ## (c) Do the top tokens hit the deciding tokens?
#
# Here the synthetic task pays off: we can ask directly whether a method's highest-ranked
# word is a deciding token, and what fraction of its top-$m$ words are, with $m$ the
# number of deciding tokens of the sentence (1 to 4).

# %%
hits = {}
for name, s in scores.items():
    top1 = float(top_k_precision(s, decisive, candidates, k=1).mean())
    top_m = float(top_k_precision(s, decisive, candidates).mean())
    hits[name] = (top1, top_m)
    print(f"{name:21s}: top word is deciding {top1:6.1%}, precision at m {top_m:6.1%}")
chance = float((decisive.sum(-1) / candidates.sum(-1)).mean())
print(f"{'random ranking':21s}: {chance:6.1%} (expected precision of a random ranking)")
largest_alpha = float(alpha.max(-1).values.mean())
print(f"mean largest pooling weight per sentence: {largest_alpha:.3f}")
assert hits["pooling attention"][0] < 0.35, (
    "claim no longer holds: 'the pooling weights' top word is a deciding token in fewer than "
    f"35%' (measured {hits['pooling attention'][0]:.3g})"
)
assert hits["rollout"][0] > 0.9 and hits["erasure"][0] > 0.8, (
    "claim no longer holds: 'rollout's in more than 90% and erasure's in more than 80%' "
    f"(measured {hits['rollout'][0]:.3g}, {hits['erasure'][0]:.3g})"
)
assert max(hits, key=lambda name: hits[name][0]) == "rollout", (  # "first on deciding tokens"
    "claim no longer holds: 'rollout first of the six on deciding tokens' (first: "
    f"{max(hits, key=lambda name: hits[name][0])})"
)
assert max(mean_tau, key=mean_tau.get) == "rollout", (  # "first in mean tau"
    "claim no longer holds: 'rollout the closest to erasure in mean tau' (closest: "
    f"{max(mean_tau, key=mean_tau.get)})"
)
assert hits["grad x input"][0] > hits["pooling attention"][0] + 0.2, (
    "claim no longer holds: 'the pooling weights hit a deciding token hardly better than "
    f"chance' (measured grad x input {hits['grad x input'][0]:.3g} vs pooling attention "
    f"{hits['pooling attention'][0]:.3g})"
)
two_worst = sorted(hits, key=lambda name: hits[name][0])[:2]
assert set(two_worst) == {"pooling attention", "last-layer attention"}, two_worst
assert abs(hits["pooling attention"][0] - chance) < 0.1 and chance < 0.25, (
    "claim no longer holds: 'about as often as a randomly chosen word would, within 10 "
    f"points' (measured {hits['pooling attention'][0]:.3g} vs chance {chance:.3g})"
)
assert largest_alpha < 0.3, (
    "claim no longer holds: 'their largest weight in a sentence is below 0.3 on average' "
    f"(measured {largest_alpha:.3g})"
)
for name, key in (("pooling attention", "attention"), ("rollout", "rollout"),
                  ("erasure", "erasure"), ("grad x input", "gradxinput"),
                  ("integrated gradients", "ig"), ("last-layer attention", "lastlayer")):  # fmt: skip
    glue(f"ch13_top1_{key}", hits[name][0], display=False)
glue("ch13_top1_chance", chance, display=False)
glue("ch13_largest_alpha", largest_alpha, display=False)

# %% [markdown]
# The pooling weights' top word is a deciding token in
# {glue:text}`ch13_top1_attention:.1%` of the sentences (fewer than 35%); rollout's in
# {glue:text}`ch13_top1_rollout:.1%` (more than 90%) and erasure's in
# {glue:text}`ch13_top1_erasure:.1%` (more than 80%; all asserted), the gradient methods'
# in {glue:text}`ch13_top1_gradxinput:.1%` and {glue:text}`ch13_top1_ig:.1%`. The pooling
# weights' top word hits a deciding token about as often as a randomly chosen word would
# ({glue:text}`ch13_top1_chance:.1%`; within 10 points, asserted): as an explanation of
# *which words* decided the label they are, with last-layer attention
# ({glue:text}`ch13_top1_lastlayer:.1%`), the worst of the six (asserted), hardly better
# than chance.
#
# Why would the last attention of the model point at the wrong words while rollout,
# computed from the *other* attention matrices, points at the right ones? Because of
# reason 1 of the introduction. After two layers of self-attention the state $h_t$ at any
# position already holds what the model needs to know about the whole sentence, so the
# pooling can read it almost anywhere: which positions it weights is not constrained by
# the training loss, and carries little information. Rollout follows the mixing back
# to the words, and it is the encoder's self-attention, not the pooling, that does the
# work of finding the adjective and its negation.
#
# (ch13-counterfactual)=
# ## (d) Counterfactual attention
#
# {cite:t}`jain2019attention` proposed a sharper test: if the attention weights explain
# the output, *other* weights should give a different output. We replace each sentence's
# pooling weights by a random permutation of them (over its real tokens) and by uniform
# weights, keep everything else, and measure how far the output distribution moves, with
# the total variation distance $\mathrm{TVD}(p, p') = \tfrac12 \sum_c |p_c - p'_c|$.
#
# {cite:t}`wiegreffe2019attention` pointed out that a model whose weights are swapped
# after training is not a model that was *trained* with those weights. Their baseline: train
# a model whose attention is frozen to uniform weights from the start. If it is as good,
# the learned attention was not needed for the task. Our `pooling="mean"` model is exactly
# that.

# %%
with torch.no_grad():
    p = torch.softmax(logits, -1)
    permuted = permute_weights(alpha, mask, torch.Generator().manual_seed(0))
    p_perm = torch.softmax(model(ids, mask, pool_weights=permuted), -1)
    uniform = mask.float() / mask.sum(-1, keepdim=True)
    p_unif = torch.softmax(model(ids, mask, pool_weights=uniform), -1)
tvd_perm, tvd_unif = total_variation(p, p_perm), total_variation(p, p_unif)
flip_perm = float((p_perm.argmax(-1) != pred).float().mean())
flip_unif = float((p_unif.argmax(-1) != pred).float().mean())
print(f"permuted pooling weights: median TVD {tvd_perm.median():.1e}, {flip_perm:.1%} flipped")
print(f"uniform pooling weights:  median TVD {tvd_unif.median():.1e}, {flip_unif:.1%} flipped")

uniform_model = make_model("mean")
uniform_acc = accuracy(uniform_model, test_ids, test_mask, test_y)
print(f"test accuracy: attention pooling {test_acc:.3f}, uniform pooling {uniform_acc:.3f}")

fig, ax = plt.subplots(figsize=(7.5, 3.8))
bins = np.logspace(-8, 0, 41)
ax.hist(tvd_perm.clamp_min(1e-8).numpy(), bins=bins, alpha=0.6, label="permuted weights")
ax.hist(tvd_unif.clamp_min(1e-8).numpy(), bins=bins, alpha=0.6, label="uniform weights")
ax.set_xscale("log")
ax.set_xlabel("total variation distance to the original output (log scale)")
ax.set_ylabel("number of test sentences")
ax.set_title("Changing the pooling weights after training")
ax.legend()
plt.show()

assert tvd_perm.median() < 0.01 and tvd_unif.median() < 0.01, (
    "claim no longer holds: 'median TVD below 0.01' (measured "
    f"{tvd_perm.median().item():.3g}, {tvd_unif.median().item():.3g})"
)
assert flip_perm < 0.1 and flip_unif < 0.1, (
    f"claim no longer holds: 'fewer than 10% flipped' ({flip_perm:.1%}, {flip_unif:.1%})"
)
assert abs(uniform_acc - test_acc) < 0.03, (
    f"claim no longer holds: 'within 3 points' ({uniform_acc:.3f} vs {test_acc:.3f})"
)
glue("ch13_tvd_perm", float(tvd_perm.median()), display=False)
glue("ch13_tvd_unif", float(tvd_unif.median()), display=False)
glue("ch13_flip_perm", flip_perm, display=False)
glue("ch13_flip_unif", flip_unif, display=False)
glue("ch13_uniform_acc", uniform_acc, display=False)
glue("ch13_uniform_cost", 100 * (test_acc - uniform_acc), display=False)

# %% [markdown]
# Permuting the pooling weights, or replacing them by uniform ones, leaves the output of
# the typical sentence practically unchanged (median TVD {glue:text}`ch13_tvd_perm:.1e`
# and {glue:text}`ch13_tvd_unif:.1e`, below 0.01) and flips
# {glue:text}`ch13_flip_perm:.1%` and {glue:text}`ch13_flip_unif:.1%` of the predictions
# (fewer than 10%); a model trained from the start with uniform pooling reaches
# {glue:text}`ch13_uniform_acc:.1%` test accuracy, within 3 points of the attention-pooling
# model's {glue:text}`ch13_test_acc:.1%` (all asserted; one training run each). By Jain & Wallace's
# criterion the pooling weights are not an explanation of this model; by Wiegreffe &
# Pinter's, they were hardly necessary for the task: doing without them cost
# {glue:text}`ch13_uniform_cost:.1f` points of accuracy (one run each, so part of that
# gap may be the seed's). Both statements are about *this* attention layer, not about the
# self-attention inside the encoder, whose rollout is among the best of our attributions
# (first of the six on deciding tokens, and of the five compared with erasure, the
# closest to it in mean $\tau$; both asserted).
#
# (ch13-real)=
# ## What carries over to real tasks
#
# The synthetic task is kind to attributions: every label is decided by one to four known
# words, the vocabulary is tiny, and the model is accurate. Three things change on real
# data.
#
# - **There is no ground truth.** Evaluation falls back to agreement between methods and
#   to erasure-style tests, and erasure itself moves the input off the training
#   distribution (a sentence with a hole in it), which is why ERASER measures both
#   *comprehensiveness* and *sufficiency* against human rationales
#   {cite:p}`deyoung2020eraser`.
# - **Evidence is redundant and distributed.** Real sentiment is spread over many words
#   that say the same thing; deleting one rarely flips a decision, so
#   {cite:t}`serrano2019attention` found that one often has to erase a large fraction of
#   the highest-attended tokens before a decision changes.
# - **Attention weights ignore the values.** Weighting the attention by the norms of the
#   transformed value vectors changes the picture substantially in BERT
#   {cite:p}`kobayashi2020attention`, and {cite:t}`abnar2020quantifying` show that raw
#   attention in upper layers correlates poorly with input gradients and blank-out scores
#   while rollout and attention flow do better, the same pattern as here.
#
# None of this makes attention maps useless. They show *what* a layer does, and
# individual heads of BERT track syntax and coreference in ways that can be checked
# {cite:p}`clark2019what`. What they do not show, without the tests of this chapter, is
# *why* the model produced a given output.
#
# ## Summary
#
# - Attention weights are hard to use as explanations because a weight on a position is
#   not the contribution of the word at that position (mixing across layers, value norms,
#   residual paths), and because different weights can give the same output.
# - On our task, the learned pooling weights fail every test: no rank agreement with
#   erasure or gradients, removal hardly better than random, the deciding token on top for
#   only {glue:text}`ch13_top1_attention:.1%` of sentences, and permuted or uniform weights
#   leave the output practically unchanged.
# - Attention rollout, which follows the mixing through the encoder, finds a deciding token
#   first in {glue:text}`ch13_top1_rollout:.1%` of sentences; erasure and the gradient
#   methods also beat random removal clearly.
# - Whether attention explains is a property of a model and a layer, to be measured with
#   rank agreement, removal curves, ground truth where it exists, and counterfactuals.

# %% [markdown]
# ## Exercises
#
# The exercises for this chapter are in `exercises/13_interpretability.ipynb`. You will
# write
#
# 1. `rollout`: attention rollout from the per-layer attention weights;
# 2. `grad_times_input`: gradient $\times$ input for any differentiable function of the
#    embeddings;
# 3. `leave_one_out_scores`: leave-one-out erasure by deleting each token in turn;
# 4. `kendall_tau_b`: Kendall's $\tau_b$ between two score vectors, with ties.
#
# Grade your work with `python -m attnkit.grade 13`.

# %% [markdown]
# (ch13-interview)=
# ## Interview question
#
# ```{admonition} Interview question
# :class: tip
#
# **题目：** 请探讨自注意力机制在实现和应用中面临的核心问题和挑战。
#
# :::{english-only}
# **Question:** Discuss the core problems and challenges that self-attention faces in
# implementation and application.
# :::
#
# *This chapter answers the interpretability challenge (可解释性); the cost challenges are
# {doc}`chapter 5 <05_quadratic_wall>`'s.*
#
# **Model answer.** Cost comes first, $O(n^2 d)$ time and, done naively, $O(n^2)$ memory
# ({ref}`ch05-cost`); the subtler challenge is interpretability, which the source text
# states wrongly: "the weights are hard to interpret because they are learned". Every
# parameter is learned; the real problem is *faithfulness*. A weight on position $t$ in a
# deep layer is a weight on a mixture of the whole sentence, it ignores the size of the
# value vector and the residual paths, and quite different weights can give the same
# output, so attention need not say why the model decided ({ref}`ch13-methods`). It has to
# be tested: agreement with erasure and gradient attributions, removing the top tokens
# against a random baseline, ground truth where it exists, and counterfactual weights. On
# this chapter's sentiment model the attention-pooling weights fail these tests: deleting
# the most-attended word flips about as many predictions as deleting a random word, their
# top word is a deciding token in only a minority of sentences, and permuted or uniform
# pooling weights barely change the output; attention rollout and leave-one-out erasure do
# find the negations and contrast words that decide the label ({ref}`ch13-removal`,
# {ref}`ch13-truth`, {ref}`ch13-counterfactual`). On real data there is no ground truth
# and the evidence is spread over many words, so these tests matter more
# ({ref}`ch13-real`). Attention maps describe what a layer does; to claim that they
# explain a decision, one must measure it.
# ```

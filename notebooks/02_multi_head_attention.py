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
# # Multi-head attention and positional encoding
#
# Chapter 1 built one scaled dot-product attention. The Transformer
# {cite:p}`vaswani2017attention` never uses it alone: it runs several attentions side by
# side (**multi-head attention**), and because attention cannot see word order, it
# injects the position of every token (**positional encoding**). This chapter covers both.
# By the end you should be able to
#
# - explain why one softmax gives one weighted average per query, and why $H$ heads of
#   size $d_{\text{model}}/H$ can attend to several places at once where one head of size
#   $d_{\text{model}}$ cannot, at the same cost;
# - write multi-head attention with every shape right, and check it against PyTorch;
# - show, in a tiny model trained on a CPU, heads that specialise in different relations;
# - prove and check that attention without positions is blind to order, and say *where*
#   positions must enter;
# - say what splitting into heads costs: each head's scores have rank at most
#   $d_{\text{model}} / H$;
# - derive the sinusoidal encoding, rotary embeddings (RoPE) and ALiBi, place them after
#   the learned relative representations and T5's bias that preceded them, and check
#   their key properties numerically;
# - explain grouped-query and multi-query attention and measure how much key/value cache
#   they save.
#
# The seed text's section on "self-attention in the Transformer" (自注意力机制在Transformer模型中的实现)
# makes four claims about heads and positions that do not hold as stated; each gets a
# short box where the chapter treats the topic, with a link to its entry on the
# {ref}`errata page <errata>`.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from myst_nb import glue
from torch import nn

import attnkit as ak

torch.manual_seed(0)
# One thread: the book runs its chapters side by side, one thread each, so every number
# below is the same on any machine, however many cores it has and however busy it is.
torch.set_num_threads(1)
torch.set_printoptions(precision=4, sci_mode=False)
plt.rcParams.update({"figure.dpi": 100, "axes.grid": False})
print("torch", torch.__version__, "| attnkit", ak.__version__)

# %% [markdown]
# (ch02-why-heads)=
# ## Why several heads?
#
# ### One softmax, one weighted average
#
# For each query $i$, attention returns $o_i = \sum_j a_{ij} v_j$ with weights $a_{ij}$
# that sum to 1: a single weighted average of the values. Suppose position $i$ needs two
# different things at once, say the token just before it *and* the first token of the
# sentence. One attention can
#
# - put all its weight on one of them and lose the other; or
# - split its weight, $o_i \approx \tfrac12 v_a + \tfrac12 v_b$, and receive a *blend*
#   in which the two tokens share the same coordinates. With an even split, ($a$ first,
#   $b$ previous) and ($b$ first, $a$ previous) give the same blend of the two tokens'
#   values: which token came from where is lost.
#
# The Transformer paper puts it in one line: "with a single attention head, averaging
# inhibits this" {cite:p}`vaswani2017attention`. The fix is to run several attentions in
# parallel, each with its own queries, keys and values, so that each can put its weight
# somewhere else, and to keep their outputs in separate coordinates.
#
# ### The formula
#
# Multi-head attention with $H$ heads {cite:p}`vaswani2017attention` projects the input
# $X \in \mathbb{R}^{T \times d_{\text{model}}}$ once per head, into a smaller space of size
# $D = d_{\text{model}} / H$:
#
# $$
# \text{head}_h = \mathrm{Attention}\big(X W_q^{h},\; X W_k^{h},\; X W_v^{h}\big)
# = \mathrm{softmax}\!\left(\frac{X W_q^{h} (X W_k^{h})^\top}{\sqrt{D}}\right) X W_v^{h},
# \qquad W_q^{h}, W_k^{h}, W_v^{h} \in \mathbb{R}^{d_{\text{model}} \times D},
# $$
#
# for $h = 1, \dots, H$, then concatenates the heads and mixes them with an output
# projection $W_o \in \mathbb{R}^{H D \times d_{\text{model}}}$:
#
# $$
# \mathrm{MultiHead}(X) = \mathrm{Concat}(\text{head}_1, \dots, \text{head}_H)\, W_o
# = \sum_{h=1}^{H} \text{head}_h\, W_o^{h},
# $$
#
# where $W_o^{h}$ is the block of $D$ rows of $W_o$ that multiplies head $h$. The second
# form shows what $W_o$ does: each head writes its result into the output through its
# own matrix, and the contributions are added.
#
# In practice the $H$ matrices $W_q^{1}, \dots, W_q^{H}$ are stored side by side as one
# $d_{\text{model}} \times d_{\text{model}}$ matrix: one matrix product computes all the
# heads' queries, and a reshape hands columns $hD$ to $(h+1)D - 1$ to head $h$. The same
# holds for keys and values.
#
# ### Shapes
#
# Batch-first, as in `attnkit` ($B$ sequences of length $T$):
#
# | step | tensor | shape |
# |---|---|---|
# | input | $X$ | $(B, T, d_{\text{model}})$ |
# | projections | $XW_q$, $XW_k$, $XW_v$ | $(B, T, d_{\text{model}})$ each |
# | split heads | $Q$, $K$, $V$ | $(B, H, T, D)$, with $D = d_{\text{model}}/H$ |
# | scores, weights | $QK^\top/\sqrt{D}$, $A$ | $(B, H, T, T)$ |
# | per-head outputs | $AV$ | $(B, H, T, D)$ |
# | merge heads | $\mathrm{Concat}(\text{head}_1, \dots, \text{head}_H)$ | $(B, T, H D) = (B, T, d_{\text{model}})$ |
# | output projection | $\mathrm{Concat}(\dots)\,W_o$ | $(B, T, d_{\text{model}})$ |
#
# The head axis behaves like a second batch axis: scaled dot-product attention from
# chapter 1 runs on all $B \times H$ (sequence, head) pairs at once.
#
# ### Same cost as one big head
#
# The four projections hold $4 d_{\text{model}}^2$ weights (plus $4 d_{\text{model}}$
# biases) whatever $H$ is: splitting into heads only decides which columns work together.
# The multiply-adds do not depend on $H$ either: the projections cost
# $4 T d_{\text{model}}^2$, and the scores cost $H \cdot T^2 D = T^2 d_{\text{model}}$,
# the same as one head of width $d_{\text{model}}$ (likewise for $AV$). The paper notes
# that "the total computational cost is similar to that of single-head attention with
# full dimensionality" {cite:p}`vaswani2017attention`.

# %%
d_model, T_demo = 64, 10
x_demo = torch.randn(1, T_demo, d_model)
rows = [" H | head size D | parameters | attention weights tensor (B, H, T, T)"]
for H in (1, 2, 4, 8):
    mha = ak.MultiHeadAttention(d_model, H)
    _, w = mha(x_demo, need_weights=True)
    rows.append(f"{H:2d} | {mha.head_dim:11d} | {ak.count_parameters(mha):10d} | {tuple(w.shape)}")
    assert ak.count_parameters(mha) == 4 * d_model**2 + 4 * d_model, (  # the same for every H
        "claim no longer holds: 'the parameter count is 4 * 64^2 + 4 * 64 for every H' "
        f"(measured {ak.count_parameters(mha)} at H = {H})"
    )
    assert w.shape == (1, H, T_demo, T_demo), (  # the weights tensor grows with H
        f"claim no longer holds: 'the weights tensor is (B, H, T, T)' (measured {tuple(w.shape)})"
    )
print("\n".join(rows))
print("4 * d_model**2 + 4 * d_model =", 4 * d_model**2 + 4 * d_model)

# %% [markdown]
# The parameter count is $4 \cdot 64^2 + 4 \cdot 64 = 16\,640$ for every $H$. The one thing
# that grows with $H$ is the tensor of attention weights, $(B, H, T, T)$: $H$ maps of
# $T \times T$ weights instead of one. That is an activation, not a parameter, and fused
# kernels avoid storing it at all.

# %% [markdown]
# (ch02-code)=
# ## Multi-head attention in code
#
# ### Splitting and merging heads are reshapes
#
# `ak.split_heads` turns $(\dots, T, H D)$ into $(\dots, H, T, D)$ and `ak.merge_heads`
# undoes it. No number is computed: head $h$ simply receives features $hD, \dots, (h+1)D - 1$
# of every token. Take two tokens with six features, split into three heads of size two:

# %%
x_small = torch.arange(12.0).reshape(1, 2, 6)  # (B=1, T=2, d_model=6)
heads = ak.split_heads(x_small, 3)  # (B=1, H=3, T=2, D=2)
print("x =\n", x_small[0])
print("split into 3 heads, shape", tuple(heads.shape))
for h in range(3):
    print(f"head {h}:\n", heads[0, h])
checks = {
    "merge_heads(split_heads(x)) == x": torch.equal(ak.merge_heads(heads), x_small),
    "split_heads shares memory with x (a view)": heads.data_ptr() == x_small.data_ptr(),
    "but it is no longer contiguous": not heads.is_contiguous(),
}
for name, ok in checks.items():
    print(f"{name}: {ok}")
assert all(checks.values()), (
    "claim no longer holds: 'splitting and merging heads are reshapes, split_heads a view' "
    f"(measured False: {[name for name, ok in checks.items() if not ok]})"
)
assert torch.equal(heads[0, 1], x_small[0, :, 2:4]), (  # head 1 receives features 2 and 3
    f"claim no longer holds: 'head 1 features 2 and 3' (measured {heads[0, 1].tolist()})"
)

# %% [markdown]
# Head 0 sees features 0 and 1 of both tokens, head 1 features 2 and 3, head 2 features
# 4 and 5. `split_heads` is a view (`unflatten` then `transpose`); after the transpose the
# memory order no longer matches the shape, so `merge_heads` has to copy (`flatten` or
# `reshape`, not `view`).
#
# ### `ak.MultiHeadAttention` against `torch.nn.MultiheadAttention`
#
# `ak.MultiHeadAttention` holds the four projections `q_proj`, `k_proj`, `v_proj`,
# `out_proj` and implements the formula above. We build a PyTorch module, copy its weights
# with `ak.MultiHeadAttention.from_torch`, and compare the outputs and the **per-head**
# weights (PyTorch averages the heads unless `average_attn_weights=False`).

# %%
torch.manual_seed(0)
B, T, d_model, H = 2, 5, 16, 4
torch_mha = nn.MultiheadAttention(d_model, H, batch_first=True).eval()
mha = ak.MultiHeadAttention.from_torch(torch_mha).eval()
x = torch.randn(B, T, d_model)

with torch.no_grad():
    out_ak, w_ak = mha(x, need_weights=True)
    out_pt, w_pt = torch_mha(x, x, x, need_weights=True, average_attn_weights=False)
print("output shape", tuple(out_ak.shape), "| weights shape", tuple(w_ak.shape))
checks = {
    "outputs equal": torch.allclose(out_ak, out_pt, atol=1e-6),
    "per-head weights equal": torch.allclose(w_ak, w_pt, atol=1e-6),
}
for name, ok in checks.items():
    print(f"{name}: {ok}")
assert all(checks.values()), "claim no longer holds: 'attnkit and torch give the same numbers'"

# %% [markdown]
# The two libraries disagree on one convention. A key padding mask in `attnkit` is `True`
# on **real** tokens (the book's convention: `True` = may attend), while in
# `torch.nn.MultiheadAttention` `True` means **ignore**. Passing the negation gives the
# same result; a causal mask gives the same result too.

# %%
lengths = torch.tensor([5, 3])
real = ak.padding_mask(lengths, max_len=T)  # (B, T), True = real token
with torch.no_grad():
    out_ak, w_ak = mha(x, key_padding_mask=real, is_causal=True, need_weights=True)
    out_pt, w_pt = torch_mha(
        x,
        x,
        x,
        key_padding_mask=~real,  # torch: True = ignore
        attn_mask=~ak.causal_mask(T),  # torch bool attn_mask: True = not allowed
        need_weights=True,
        average_attn_weights=False,
    )
print("attnkit key_padding_mask:\n", real)
checks = {
    "masked outputs equal": torch.allclose(out_ak, out_pt, atol=1e-6),
    "masked per-head weights equal": torch.allclose(w_ak, w_pt, atol=1e-6),
}
for name, ok in checks.items():
    print(f"{name}: {ok}")
assert all(checks.values()), "claim no longer holds: 'the negated masks give the same result'"

# %% [markdown]
# ### The formula, step by step, from the module's own weights
#
# To see that the module computes exactly the formula, we redo it by hand: project,
# split, attend with chapter 1's `ak.scaled_dot_product_attention` (the head axis is just
# another batch axis), merge, project. We also check the sum form
# $\sum_h \text{head}_h W_o^{h}$. (`nn.Linear` stores its weight as
# $(\text{out}, \text{in})$, so $W_o^{h}$ is a block of *columns* of `out_proj.weight`.)

# %%
with torch.no_grad():
    q = ak.split_heads(mha.q_proj(x), H)  # (B, H, T, D)
    k = ak.split_heads(mha.k_proj(x), H)  # (B, H, T, D)
    v = ak.split_heads(mha.v_proj(x), H)  # (B, H, T, D)
    per_head = ak.scaled_dot_product_attention(q, k, v)  # (B, H, T, D)
    by_hand = mha.out_proj(ak.merge_heads(per_head))  # (B, T, d_model)

    D = d_model // H
    W_o, b_o = mha.out_proj.weight, mha.out_proj.bias  # (d_model, H * D), (d_model,)
    as_sum = sum(per_head[:, h] @ W_o[:, h * D : (h + 1) * D].T for h in range(H)) + b_o
    out_module, _ = mha(x)
print("q, k, v:", tuple(q.shape), "| per-head outputs:", tuple(per_head.shape))
checks = {
    "by hand == module": torch.allclose(by_hand, out_module, atol=1e-6),
    "sum over heads of head_h W_o^h == module": torch.allclose(as_sum, out_module, atol=1e-6),
}
for name, ok in checks.items():
    print(f"{name}: {ok}")
assert all(checks.values()), "claim no longer holds: 'the module computes the formula'"

# %% [markdown]
# (ch02-heads)=
# ## What do different heads attend to?
#
# The argument above says that several heads *can* attend to different places. Do they,
# when trained? We build a task that needs two relations at once and look.
#
# ### A task with two relations
#
# Sequences of $T = 12$ random tokens from a vocabulary of $V = 32$. At every position
# $t \ge 1$ the model must output **two** tokens: the **previous token** $x_{t-1}$ and
# the **first token** $x_0$ of the sequence. (At $t = 1$ the two coincide.)
#
# The model is deliberately minimal: token embeddings plus learned position embeddings
# (why positions are needed is the subject of the second half of this chapter), **one**
# causal `ak.MultiHeadAttention` layer with $d_{\text{model}} = 32$, and a linear read-out
# with $2V$ outputs (two classifiers). There is no residual connection and no
# feed-forward layer, so everything the read-out knows must come through attention.
# Changing the number of heads $H$ does not change the parameter count.

# %%
V, T, d_model = 32, 12, 32


class TwoRelationModel(nn.Module):
    """Embeddings + learned positions -> one causal multi-head attention -> two read-outs."""

    def __init__(self, num_heads: int) -> None:
        super().__init__()
        self.tok = nn.Embedding(V, d_model)
        self.pos = ak.LearnedPositionalEmbedding(T, d_model)
        self.attn = ak.MultiHeadAttention(d_model, num_heads)
        self.readout = nn.Linear(d_model, 2 * V)  # logits for (previous, first)

    def forward(self, tokens, need_weights=False):
        h = self.pos(self.tok(tokens))  # (B, T, d_model)
        a, w = self.attn(h, is_causal=True, need_weights=need_weights)  # (B, T, d_model)
        return self.readout(a).unflatten(-1, (2, V)), w  # (B, T, 2, V), (B, H, T, T)


def make_batch(gen, batch_size=128):
    """Random sequences and their targets (previous token, first token) at t = 1..T-1."""
    tokens = torch.randint(0, V, (batch_size, T), generator=gen)  # (B, T)
    previous = tokens[:, :-1]  # x_{t-1} for t = 1..T-1
    first = tokens[:, :1].expand(-1, T - 1)  # x_0
    return tokens, torch.stack([previous, first], dim=-1)  # (B, T), (B, T-1, 2)


def batches(seed):
    gen = torch.Generator().manual_seed(seed)
    while True:  # an endless stream of fresh random batches
        yield make_batch(gen)


def loss_fn(model, batch):
    tokens, targets = batch
    logits, _ = model(tokens)  # (B, T, 2, V)
    return F.cross_entropy(logits[:, 1:].reshape(-1, V), targets.reshape(-1))


val_tokens, val_targets = make_batch(torch.Generator().manual_seed(1234), batch_size=1000)


def evaluate(model):
    pred = model(val_tokens)[0][:, 1:].argmax(-1)  # (1000, T-1, 2)
    correct = pred == val_targets
    late = correct[:, 1:]  # queries t >= 2, where the two targets are different positions
    return {
        "acc_previous": correct[..., 0].float().mean().item(),
        "acc_first": correct[..., 1].float().mean().item(),
        "acc_both": correct.all(-1).float().mean().item(),
        "acc_previous_late": late[..., 0].float().mean().item(),
        "acc_first_late": late[..., 1].float().mean().item(),
    }


tokens, targets = make_batch(torch.Generator().manual_seed(0), batch_size=1)
print("tokens            :", tokens[0].tolist())
print("target (previous) :", ["-", *targets[0, :, 0].tolist()])
print("target (first)    :", ["-", *targets[0, :, 1].tolist()])

# %% [markdown]
# ### Training with 1, 2 and 4 heads
#
# We train three models that differ only in $H$, each for 1000 steps with `ak.train`
# (AdamW, warm-up then cosine decay), on fresh random batches, and measure on 1000
# held-out sequences how often *both* outputs are right.

# %%
config = ak.TrainConfig(steps=1000, lr=1e-2, warmup_steps=50, eval_every=100, progress=False)
models, results = {}, {}
for H in (1, 2, 4):
    ak.seed_everything(0)
    models[H] = TwoRelationModel(H)
    results[H] = ak.train(models[H], loss_fn, batches(seed=0), config, evaluate=evaluate)
    models[H].eval()

print(" H | parameters | acc. previous | acc. first | acc. both")
for H, res in results.items():
    final = res.history[-1]
    print(
        f" {H} | {ak.count_parameters(models[H]):10d} | {final['acc_previous']:13.3f} |"
        f" {final['acc_first']:10.3f} | {final['acc_both']:9.3f}"
    )

# %% tags=["remove-cell"]
# The claims of the caption below (and of the key takeaways), checked on the runs above.
n_params = {ak.count_parameters(m) for m in models.values()}
acc_both = {H: res.history[-1]["acc_both"] for H, res in results.items()}
loss_end = {H: res.history[-1]["train_loss"] for H, res in results.items()}
solved_at = {  # first logged step from which the held-out accuracy (both outputs) stays >= 99%
    H: min(
        (
            h["step"]
            for h in res.history
            if all(g["acc_both"] >= 0.99 for g in res.history if g["step"] >= h["step"])
        ),
        default=None,
    )
    for H, res in results.items()
}
acc_curve = {H: [h["acc_both"] for h in res.history] for H, res in results.items()}
assert len(n_params) == 1, "claim no longer holds: 'the same number of parameters for every H'"
assert min(acc_both[2], acc_both[4]) >= 0.99, f"claim: '2 and 4 heads solve the task' ({acc_both})"
assert solved_at[2] is not None and solved_at[4] is not None, (
    f"claim: 'and stay there' ({solved_at})"
)
assert max(solved_at[2], solved_at[4]) <= 500, f"claim: 'within a few hundred steps' ({solved_at})"
assert max(loss_end[2], loss_end[4]) < 1e-2, f"claim: 'the loss falls towards zero' ({loss_end})"
assert all(a1 < min(a2, a4) for a1, a2, a4 in zip(acc_curve[1], acc_curve[2], acc_curve[4])), (
    "claim no longer holds: 'the single head learns more slowly' (below both at every logged step)"
)
assert 0.8 < acc_both[1] < 0.99 and solved_at[1] is None, (
    f"claim no longer holds: 'the single head ends short of perfect' ({acc_both[1]:.3f})"
)
glue("ch02_two_rel_params", n_params.pop(), display=False)
for H in (1, 2, 4):
    glue(f"ch02_two_rel_acc_both_h{H}", acc_both[H], display=False)
    glue(f"ch02_two_rel_loss_end_h{H}", loss_end[H], display=False)
glue("ch02_two_rel_solved_at_h2", int(solved_at[2]), display=False)
glue("ch02_two_rel_solved_at_h4", int(solved_at[4]), display=False)

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
for H, res in results.items():
    steps = [h["step"] for h in res.history]
    ax1.semilogy(steps, [h["train_loss"] for h in res.history], "o-", ms=3, label=f"H = {H}")
    ax2.plot(steps, [h["acc_both"] for h in res.history], "o-", ms=3, label=f"H = {H}")
ax1.set(xlabel="step", ylabel="training loss (log scale)", title="Training loss")
ax2.set(xlabel="step", ylabel="held-out accuracy (both outputs right)", title="Accuracy")
ax2.set_ylim(0, 1.02)
for ax in (ax1, ax2):
    ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure: the three models have the same {glue:text}`ch02_two_rel_params` parameters.
# With 2 and 4 heads the held-out accuracy on both outputs passes 99% within a few hundred
# steps and stays there (from step {glue:text}`ch02_two_rel_solved_at_h2` and step
# {glue:text}`ch02_two_rel_solved_at_h4` respectively), ending at
# {glue:text}`ch02_two_rel_acc_both_h2:.1%` and {glue:text}`ch02_two_rel_acc_both_h4:.1%`,
# and the training loss falls towards zero ({glue:text}`ch02_two_rel_loss_end_h2:.1e` and
# {glue:text}`ch02_two_rel_loss_end_h4:.1e`, averaged over the last 100 steps). The single
# head is behind at every logged step and ends short of perfect, at
# {glue:text}`ch02_two_rel_acc_both_h1:.1%` (training loss
# {glue:text}`ch02_two_rel_loss_end_h1:.2f`).*
#
# ### Looking at the heads
#
# Now the attention weights of each head on one held-out sequence. Row $t$ is query $t$;
# the causal mask leaves the upper triangle empty.

# %%
example = val_tokens[:1]  # one held-out sequence, (1, T)
weights = {}
with torch.no_grad():
    for H, model in models.items():
        weights[H] = model(val_tokens, need_weights=True)[1]  # (1000, H, T, T)

fig, axes = plt.subplots(2, 4, figsize=(16, 8), layout="constrained")
panels = [(1, 0, axes[0, 0]), (2, 0, axes[0, 1]), (2, 1, axes[0, 2])]
panels += [(4, h, axes[1, h]) for h in range(4)]
labels = [str(t) for t in example[0].tolist()]
for H, h, ax in panels:
    im = ax.imshow(weights[H][0, h].numpy(), cmap="viridis", vmin=0, vmax=1)
    ax.set_title(f"{H}-head model, head {h}")
    ax.set_xticks(range(T), labels, fontsize=8)
    ax.set_yticks(range(T), [f"{t}: {s}" for t, s in enumerate(labels)], fontsize=8)
    ax.set_xlabel("key (token)")
    if ax in (axes[0, 0], axes[1, 0]):
        ax.set_ylabel("query (position: token)")
axes[0, 3].axis("off")
fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.02, label="attention weight")
fig.suptitle("Attention weights on one held-out sequence")
plt.show()

# %% [markdown]
# *Figure: in the 2-head model one head puts its weight on column 0 (the first token) and
# the other on the diagonal just below the main one (the previous token). The 4-head model
# has two heads of each kind. The single head spreads its weight between column 0 and the
# previous token, in proportions that change from row to row.*
#
# The pictures show one sequence; averages over all 1000 held-out sequences (queries
# $t \ge 2$, where the two targets are different positions) confirm them:

# %%
t = torch.arange(2, T)
roles, shares = {}, {}
print(" model | head | weight on first token | weight on previous token | on itself | role")
for H, w in weights.items():
    on_first = w[:, :, t, 0].mean(dim=(0, 2))  # (H,)
    on_prev = w[:, :, t, t - 1].mean(dim=(0, 2))  # (H,)
    on_self = w[:, :, t, t].mean(dim=(0, 2))  # (H,) the query's own position
    for h in range(H):
        f, p, s_ = on_first[h].item(), on_prev[h].item(), on_self[h].item()
        role = "first" if f > 0.8 else "previous" if p > 0.6 else "mixed"
        roles[H, h], shares[H, h] = role, (f, p, s_)
        print(f"   H={H} |   {h}  | {f:21.3f} | {p:24.3f} | {s_:9.3f} | {role}")

# %% tags=["remove-cell"]
# The claims of the figure caption above and of the next two paragraphs, checked.
head_of = {role: [h for h in range(2) if roles[2, h] == role] for role in ("first", "previous")}
first_2, prev_2 = shares[2, head_of["first"][0]], shares[2, head_of["previous"][0]]
roles_4 = sorted(roles[4, h] for h in range(4))
assert roles[1, 0] == "mixed" and sorted(roles[2, h] for h in range(2)) == ["first", "previous"], (
    "claim no longer holds: 'one head of the 2-head model per relation, the single head mixed'"
)
assert roles_4 == ["first", "first", "previous", "previous"], (
    f"claim no longer holds: 'the 4-head model has two heads of each kind' ({roles_4})"
)
assert first_2[0] > 0.95, "claim no longer holds: 'almost all its weight on the first token'"
assert prev_2[2] > (1 - prev_2[1]) / 2, "claim: 'most of the rest on the query's own position'"
single = shares[1, 0]
assert 0.35 < single[0] < 0.65 and 0.35 < single[1] < 0.65, (
    f"claim no longer holds: 'the single head splits its weight roughly in half' ({single})"
)
glue("ch02_h2_first_head_on_first", first_2[0], display=False)
glue("ch02_h2_prev_head_on_prev", prev_2[1], display=False)
glue("ch02_h2_prev_head_on_self", prev_2[2], display=False)
glue("ch02_h1_on_first", single[0], display=False)
glue("ch02_h1_on_prev", single[1], display=False)

# %% [markdown]
# With two heads the division of labour is clean: one head puts almost all its weight on
# the first token ({glue:text}`ch02_h2_first_head_on_first:.3f`), the other
# {glue:text}`ch02_h2_prev_head_on_prev:.2f` on the previous token, with most of the rest
# on the query's own position ({glue:text}`ch02_h2_prev_head_on_self:.2f`). With four
# heads there are two heads of each kind (the table names them). Which head takes which
# job is decided by the random initialisation: the heads are interchangeable, so
# permuting them at initialisation permutes their roles.
#
# The single head, having only one softmax, splits its weight roughly in half *on
# average*: {glue:text}`ch02_h1_on_first:.2f` on the first token and
# {glue:text}`ch02_h1_on_prev:.2f` on the previous one. It still gets both outputs right
# for {glue:text}`ch02_two_rel_acc_both_h1:.1%` of the held-out queries, so let us see
# how: the split varies a lot from sequence to sequence, and we compare its errors with how
# even the split is.

# %%
with torch.no_grad():
    logits = models[1](val_tokens)[0][:, 1:]  # (1000, T-1, 2, V)
wrong = (logits.argmax(-1) != val_targets).any(-1)[:, 1:]  # queries t >= 2, (1000, T-2)
w1 = weights[1][:, 0]  # (1000, T, T)
share_first = w1[:, t, 0] / (w1[:, t, 0] + w1[:, t, t - 1])  # first / (first + previous)
even = (share_first - 0.5).abs() < 0.05
err_even, err_other = wrong[even].float().mean().item(), wrong[~even].float().mean().item()
print(f"std of the weight on the first token across queries: {w1[:, t, 0].std():.2f}")
print(
    f"queries with a nearly even split (share of 'first' in 0.45..0.55): {even.float().mean():.1%}"
)
print(f"error rate on those queries:   {err_even:.1%}")
print(
    f"error rate on all other ones:  {err_other:.1%}"
    f" ({wrong[~even].sum().item()} errors in {(~even).sum().item()} queries)"
)
assert err_even > 0.2 and err_other < 0.01, (
    "claim no longer holds: 'the errors are where the split is even, hardly anywhere else'"
)
glue("ch02_h1_share_std", w1[:, t, 0].std().item(), display=False)
glue("ch02_h1_err_even", err_even, display=False)
glue("ch02_h1_errors_other", int(wrong[~even].sum()), display=False)
glue("ch02_h1_queries_other", int((~even).sum()), display=False)

# %% [markdown]
# The single head survives by **leaning**: depending on the tokens, it gives clearly more
# weight to one of the two positions (the weight on the first token varies with a standard
# deviation of {glue:text}`ch02_h1_share_std:.2f` across queries), and the read-out can
# then tell them apart. Where it does not lean (a split within 0.45 to 0.55) the two
# tokens arrive as a nearly symmetric blend, exactly the situation described at the start
# of the chapter, and the model is wrong on {glue:text}`ch02_h1_err_even:.0%` of those
# queries, against {glue:text}`ch02_h1_errors_other` errors in the other
# {glue:text}`ch02_h1_queries_other` queries. Two heads remove the problem: each keeps its
# own softmax and its own output coordinates.
#
# (ch02-seed-heads)=
# ### Knocking out heads
#
# Heatmaps are suggestive; a causal test is stronger. In
# $\sum_h \text{head}_h W_o^{h}$, setting $\text{head}_h$ to zero removes exactly head
# $h$'s contribution. We do that with a forward pre-hook on `out_proj` that multiplies
# the concatenated heads by a 0/1 mask, and measure the accuracy of the 4-head model.


# %%
def accuracy_without(model, heads_off):
    """Held-out accuracies with the outputs of the heads in heads_off set to zero."""
    attn = model.attn
    keep = torch.ones(attn.num_heads, attn.head_dim)
    keep[list(heads_off)] = 0.0
    hook = attn.out_proj.register_forward_pre_hook(lambda mod, args: (args[0] * keep.flatten(),))
    try:
        with torch.no_grad():
            return evaluate(model)
    finally:
        hook.remove()


first_heads = [h for h in range(4) if roles[4, h] == "first"]
prev_heads = [h for h in range(4) if roles[4, h] == "previous"]
print(f"4-head model: heads {first_heads} attend to the first token,", end=" ")
print(f"heads {prev_heads} to the previous one")
print(" heads removed | acc. previous | acc. first | at t >= 2: previous | first")
ablations = {}
for off in [[], *[[h] for h in range(4)], first_heads, prev_heads]:
    acc = ablations[tuple(off)] = accuracy_without(models[4], off)
    print(
        f" {off!s:>13} | {acc['acc_previous']:13.3f} | {acc['acc_first']:10.3f} |"
        f" {acc['acc_previous_late']:19.3f} | {acc['acc_first_late']:5.3f}"
    )
print(f"chance level: {1 / V:.3f}")

# %% tags=["remove-cell"]
# The claims of the next paragraph, checked on the table above.
full = ablations[()]
no_first, no_prev = ablations[tuple(first_heads)], ablations[tuple(prev_heads)]
assert no_first["acc_first_late"] < 2 / V and no_prev["acc_previous_late"] < 2 / V, (
    "claim no longer holds: 'removing a pair drops its relation to near chance at t >= 2'"
)
# accuracy at t = 1 alone: the mean over t = 1..T-1 is (acc(t=1) + (T - 2) * acc(t >= 2)) / (T - 1)
first_at_t1 = (T - 1) * no_first["acc_first"] - (T - 2) * no_first["acc_first_late"]
assert first_at_t1 > 0.5, f"claim: 'at t = 1 the first token still arrives' ({first_at_t1:.3f})"
assert no_first["acc_previous"] >= full["acc_previous"] - 0.01, "claim: 'previous untouched'"
assert no_prev["acc_first"] >= full["acc_first"] - 0.01, "claim: 'first untouched'"
single_drops = [  # accuracy lost on a head's own relation when that head alone is removed
    full[f"acc_{roles[4, h]}"] - ablations[(h,)][f"acc_{roles[4, h]}"] for h in range(4)
]
pair_drops = [
    full["acc_first"] - no_first["acc_first"],
    full["acc_previous"] - no_prev["acc_previous"],
]
assert min(single_drops) > 0 and max(single_drops) < 0.75 * min(pair_drops), (
    f"claim: 'one head of a pair costs much less than the pair' ({single_drops}, {pair_drops})"
)
glue("ch02_ablate_first_pair_acc_first", no_first["acc_first"], display=False)
glue("ch02_ablate_first_pair_acc_first_late", no_first["acc_first_late"], display=False)
glue("ch02_ablate_prev_pair_acc_prev", no_prev["acc_previous"], display=False)
glue("ch02_ablate_prev_pair_acc_prev_late", no_prev["acc_previous_late"], display=False)
glue("ch02_ablate_single_drop_min", 100 * min(single_drops), display=False)
glue("ch02_ablate_single_drop_max", 100 * max(single_drops), display=False)
glue("ch02_ablate_pair_drop_first", 100 * pair_drops[0], display=False)
glue("ch02_ablate_pair_drop_prev", 100 * pair_drops[1], display=False)

# %% [markdown]
# The ablations confirm the reading of the heatmaps. Removing both "first" heads leaves
# the previous token untouched and drops the accuracy on the first token to
# {glue:text}`ch02_ablate_first_pair_acc_first:.3f`. That is above chance
# ($1/32 \approx 0.031$) only because of position $t = 1$, where the first token *is* the
# previous token and still arrives through the "previous" heads: at the positions
# $t \ge 2$ the accuracy is {glue:text}`ch02_ablate_first_pair_acc_first_late:.3f`, near
# chance. Removing both "previous" heads does the opposite: the first token is untouched
# and the accuracy on the previous token falls to
# {glue:text}`ch02_ablate_prev_pair_acc_prev:.3f`
# ({glue:text}`ch02_ablate_prev_pair_acc_prev_late:.3f` at $t \ge 2$, near chance).
# Removing one head of a pair costs between {glue:text}`ch02_ablate_single_drop_min:.0f`
# and {glue:text}`ch02_ablate_single_drop_max:.0f` points of accuracy on its relation,
# since the read-out was trained on the sum of both, but clearly less than removing the
# pair ({glue:text}`ch02_ablate_pair_drop_first:.0f` points on the first token,
# {glue:text}`ch02_ablate_pair_drop_prev:.0f` on the previous one): the other head of the
# pair still carries the relation.
#
# In large trained Transformers the picture is similar but noisier. Voita et al.
# {cite:p}`voita2019analyzing` find a few specialised heads (attending to the neighbouring
# token, following syntactic relations, or pointing at rare words) that do most of the work,
# while most of the others can be pruned with little loss; Michel et al.
# {cite:p}`michel2019sixteen` remove a large fraction of heads at test time, in some layers
# all but one, without a significant drop in quality. Heads *may* specialise, in which
# positions they attend to and through which projection subspace; whether they do is
# measured, as here, not assumed.
#
# ```{admonition} Seed erratum E15 · Transformer中的实现 (line 230)
# :class: seed-erratum
# The seed says: 「每个头关注不同的特征」 (each head attends to different features)
# **Correction:** nothing forces heads to differ; some specialise and many are redundant
# in trained models, which is measured by ablation, not assumed. Entry: {ref}`E15 <errata-e15>`;
# evidence: {ref}`ch02-seed-heads`.
# ```

# %% [markdown]
# (ch02-low-rank)=
# ### The price of splitting: each head's scores have rank at most $D$
#
# Splitting $d_{\text{model}}$ into $H$ heads keeps the parameters and the cost, but each
# head scores with vectors of only $D = d_{\text{model}} / H$ numbers. Its score matrix
# $Q^{h} K^{h\top}$ is a product of a $T \times D$ and a $D \times T$ matrix, so its rank
# is at most $D$: when $D < T$ a head cannot express every pattern of $T \times T$ scores,
# only those of rank $D$ (before the softmax). Bhojanapalli et al.
# {cite:p}`bhojanapalli2020low` call this the **low-rank bottleneck** of multi-head
# attention, show that it limits what a head can represent when $D$ is smaller than the
# sequence length, and propose to set the head size independently of $H$. We measure
# the rank of every head's (unmasked) score matrix in the three trained models, on the
# held-out sequences ($T = 12$ positions).

# %%
rank_rows, head_ranks = (
    [" H | head size D | rank of Q K^T per head (T = 12), max over sequences"],
    {},
)
with torch.no_grad():
    for H_rank, model_rank in models.items():
        attn_r = model_rank.attn
        h_in = model_rank.pos(model_rank.tok(val_tokens[:200])).double()  # (B, T, d_model)
        q_r = ak.split_heads(
            F.linear(h_in, attn_r.q_proj.weight.double(), attn_r.q_proj.bias.double()), H_rank
        )
        k_r = ak.split_heads(
            F.linear(h_in, attn_r.k_proj.weight.double(), attn_r.k_proj.bias.double()), H_rank
        )
        ranks = torch.linalg.matrix_rank(q_r @ k_r.transpose(-2, -1))  # (B, H)
        head_ranks[H_rank] = ranks.amax(0).tolist()
        rank_rows.append(f"{H_rank:2d} | {attn_r.head_dim:11d} | {head_ranks[H_rank]}")
print("\n".join(rank_rows))
assert (
    all(max(head_ranks[H_rank]) <= models[H_rank].attn.head_dim for H_rank in models)
    and head_ranks[4] == [d_model // 4] * 4
    and head_ranks[1] == [T]
), (
    "claim no longer holds: 'each head's score matrix has rank at most D = d_model / H: "
    f"8 with 4 heads, full (12) with one head' (measured {head_ranks})"
)

# %% [markdown]
# With four heads of size 8, every head's $12 \times 12$ score matrix has rank 8, never
# 12; the single head of size 32 reaches full rank. On this task the bottleneck costs
# nothing: the four rank-8 heads solve it, while the single full-rank head ends short of
# perfect ({ref}`ch02-heads`, one seed each); with long sequences and small heads
# it is a real limit on what one head can express.

# %% [markdown]
# (ch02-order)=
# ## Attention is blind to order
#
# ### Permutation equivariance
#
# Let $P$ be a $T \times T$ permutation matrix, so $PX$ is the input with its rows
# (tokens) reordered. Without a mask, every step of multi-head attention commutes with $P$:
# the projections act on each row, so $Q' = PQ$, $K' = PK$, $V' = PV$; the scores become
# $Q' K'^\top = P\, QK^\top P^\top$ (rows *and* columns permuted); a row-wise softmax
# permutes along with them, $A' = PAP^\top$; and $A'V' = PAP^\top P V = P\,AV$ because
# $P^\top P = I$. The output projection acts on each row again. Hence
#
# $$
# \mathrm{MultiHead}(PX) = P\, \mathrm{MultiHead}(X) .
# $$
#
# Reordering the input reorders the output *in the same way* and changes nothing else: each
# token's output does not depend on where the token stands. (A causal mask breaks this
# symmetry, because the mask itself is a statement about order; the encoder's
# self-attention has no such mask.)

# %%
torch.manual_seed(0)
mha = ak.MultiHeadAttention(16, 4).eval()
x = torch.randn(2, 7, 16)  # (B, T, d_model)
perm = torch.tensor([4, 0, 6, 2, 1, 5, 3])
with torch.no_grad():
    out, w = mha(x, need_weights=True)
    out_p, w_p = mha(x[:, perm], need_weights=True)
checks = {
    "MHA(X[perm]) == MHA(X)[perm]": torch.allclose(out_p, out[:, perm], atol=1e-6),
    "weights: A' == P A P^T": torch.allclose(w_p, w[:, :, perm][:, :, :, perm], atol=1e-6),
}
for name, ok in checks.items():
    print(f"{name}: {ok}")
assert all(checks.values()), "claim no longer holds: 'multi-head attention is equivariant'"

# %% [markdown]
# For language this is fatal. Take "dog bites man" and "man bites dog": same three
# tokens, opposite meanings. Without positions, the output vector of "dog" is the same in
# both sentences, and so is any order-independent summary of the sentence, such as the mean.

# %%
torch.manual_seed(0)
vocab = ["dog", "bites", "man"]
emb = nn.Embedding(len(vocab), 16)
s1 = torch.tensor([[0, 1, 2]])  # dog bites man
s2 = torch.tensor([[2, 1, 0]])  # man bites dog
with torch.no_grad():
    o1, _ = mha(emb(s1))
    o2, _ = mha(emb(s2))
checks = {
    "output of 'dog' equal in both sentences": torch.allclose(o1[0, 0], o2[0, 2], atol=1e-6),
    "mean over the sentence equal": torch.allclose(o1.mean(1), o2.mean(1), atol=1e-6),
}
for name, ok in checks.items():
    print(f"{name}: {ok}")
assert all(checks.values()), "claim no longer holds: 'without positions both sentences look alike'"

# %% [markdown]
# So positions must be injected. The rest of the chapter is about how, and the first
# question is *where*.
#
# (ch02-positions)=
# ## Where the positions go
#
# ### Before the first layer
#
# The Transformer **adds** a positional encoding to the input embeddings, "at the bottoms
# of the encoder and decoder stacks" {cite:p}`vaswani2017attention` (section 3.5):
#
# $$
# X^{(0)}_t = \mathrm{Embed}(x_t) \cdot \sqrt{d_{\text{model}}} + PE_t ,
# $$
#
# (the factor $\sqrt{d_{\text{model}}}$ is from section 3.4 of the paper). Every layer then
# works on vectors that carry both content and position, so the queries and keys, and hence
# the attention weights, depend on position.
#
# (ch02-seed-pe-after)=
# ### Positions added after attention do not reach the weights
#
# ```{admonition} Seed erratum E17 · Transformer中的实现 (lines 268–270)
# :class: seed-erratum
# The seed says: 「$\text{output}(a) = \text{weighted_sum}(a) + \text{positional_encoding}(a)$」
# **Correction:** the Transformer adds the positional encoding to the input embeddings,
# before the first layer, so that the attention weights can depend on position. Entry:
# {ref}`E17 <errata-e17>`; evidence: {ref}`ch02-seed-pe-after`.
# ```
#
# If positions enter after the attention, that attention computed its weights from order-blind vectors:
# the weights are still those of a bag of words, and adding $PE_t$ afterwards only glues a
# position label onto an output whose *content* ignores order. We compare the two
# placements on "dog bites man" and "man bites dog", using the same attention layer and
# the sinusoidal table introduced in the next section.

# %%
pe = ak.sinusoidal_encoding(3, 16)  # (T=3, d_model=16), one row per position
with torch.no_grad():
    # seed: attention on the embeddings, then add the positions to its output
    a1, w1 = mha(emb(s1), need_weights=True)
    a2, w2 = mha(emb(s2), need_weights=True)
    after1, after2 = a1 + pe, a2 + pe
    # Transformer: add the positions to the embeddings, then attention
    b1, v1 = mha(emb(s1) + pe, need_weights=True)
    b2, v2 = mha(emb(s2) + pe, need_weights=True)


def dog_row(weights, sentence):
    """Head-averaged weights of the query 'dog' over the keys, reordered as dog, bites, man."""
    row = weights[0].mean(0)[(sentence[0] == 0).nonzero().item()]  # (T,)
    order = [sentence[0].tolist().index(i) for i in range(3)]
    return row[order]


print("weights of the query 'dog' on (dog, bites, man), averaged over the 4 heads:")
print("  PE after attention  (seed)       , dog bites man:", dog_row(w1, s1))
print("  PE after attention  (seed)       , man bites dog:", dog_row(w2, s2))
print("  PE before attention (Transformer), dog bites man:", dog_row(v1, s1))
print("  PE before attention (Transformer), man bites dog:", dog_row(v2, s2))
content_gap = after1[0, 0] - after2[0, 2] - (pe[0] - pe[2])
only_label = torch.allclose(content_gap, torch.zeros(16), atol=1e-6)
print("seed: output(dog) differs between sentences only by PE(0) - PE(2):", only_label)
# the claims of the next paragraph
weight_change = (dog_row(v1, s1) - dog_row(v2, s2)).abs().max().item()
assert torch.allclose(dog_row(w1, s1), dog_row(w2, s2), atol=1e-6) and only_label, (
    "claim no longer holds: 'with PE after attention, dog attends the same way in both sentences'"
)
assert weight_change > 0.01, "claim no longer holds: 'with PE before attention the weights change'"

# %% [markdown]
# With the positions added after attention, "dog" attends in exactly the same way in both
# sentences, and its two outputs differ by nothing but $PE_0 - PE_2$, a label that says
# where "dog" stands and nothing about who bites whom. With the positions added before
# attention, the weights change with the word order: the layer can now compute
# order-dependent relations. (In a deep network, a position added after layer 1 would
# reach layer 2; but layer 1 would have been wasted on a bag of words, and this is not
# what the Transformer does.)
#
# (ch02-seed-raw-vectors)=
# ### Why queries and keys need their own projections
#
# ```{admonition} Seed erratum E18 · Transformer中的实现 (lines 248–265)
# :class: seed-erratum
# The seed says: 「$\text{similarity}(a, b) = a \cdot b$ ... $\text{weighted_sum}(a) = \text{softmax}(a, b) \cdot b$」
# **Correction:** scores come from projected queries and keys, $q_a^\top k_b$, and the
# output is a sum over all keys of projected values, $o_a = \sum_j a_{aj} v_j$. Entry:
# {ref}`E18 <errata-e18>`; evidence: {ref}`ch02-seed-raw-vectors`.
# ```
#
# Scores computed from the raw vectors, $a \cdot b$, have a subtle flaw: without
# the projections $W_q$, $W_k$, the score matrix $XX^\top$ is symmetric, and by the
# Cauchy-Schwarz inequality $a \cdot b \le \lVert a \rVert\, \lVert b \rVert$. When the
# vectors have similar norms, every token scores highest with itself, so attention mostly
# returns the token it started from.

# %%
torch.manual_seed(0)
X = F.normalize(torch.randn(6, 16), dim=-1)  # six token vectors of norm 1
raw = X @ X.T / 4  # scores from the raw vectors, scaled by 1/sqrt(16)
Wq, Wk = torch.randn(16, 16) / 4, torch.randn(16, 16) / 4
proj = (X @ Wq) @ (X @ Wk).T / 4  # with learned-style projections W_q, W_k
print(
    "raw scores symmetric:",
    torch.allclose(raw, raw.T),
    "| projected:",
    torch.allclose(proj, proj.T),
)
print("best key of each query, raw scores      :", raw.argmax(-1).tolist())
print("best key of each query, projected scores:", proj.argmax(-1).tolist())
assert torch.allclose(raw, raw.T) and not torch.allclose(proj, proj.T), (
    "claim no longer holds: 'without the projections the score matrix is symmetric' "
    f"(max asymmetry: raw {(raw - raw.T).abs().max():.1e}, "
    f"projected {(proj - proj.T).abs().max():.1e})"
)
assert raw.argmax(-1).tolist() == list(range(6)), (
    "claim: 'with raw vectors, every query picks itself'"
)
assert proj.argmax(-1).tolist() != list(range(6)), "claim: 'with projections, not always itself'"

# %% [markdown]
# With raw vectors every query's best key is itself ($0, 1, \dots, 5$); with projections
# the query can look for something other than itself, and token $i$ can attend to $j$
# without $j$ attending to $i$ as strongly.
#
# (ch02-sinusoidal)=
# ## Sinusoidal positional encoding
#
# ### The formula
#
# The original Transformer uses a fixed table {cite:p}`vaswani2017attention`. For position
# $p$ and column pairs $(2i, 2i+1)$, $i = 0, \dots, d_{\text{model}}/2 - 1$:
#
# $$
# PE_{(p,\,2i)} = \sin(\omega_i\, p), \qquad PE_{(p,\,2i+1)} = \cos(\omega_i\, p),
# \qquad \omega_i = 10000^{-2i/d_{\text{model}}} .
# $$
#
# Each column pair is a point turning around a circle as $p$ grows, at its own angular
# speed $\omega_i$. The wavelengths $2\pi / \omega_i$ grow geometrically from $2\pi$
# (the first pair changes at every step) to $10000 \cdot 2\pi$ (the last pairs barely
# move): a continuous analogue of a binary counter, whose low bits flip fast and high
# bits slowly.

# %%
n_pos, d_pe = 100, 64
PE = ak.sinusoidal_encoding(n_pos, d_pe, dtype=torch.float64)  # (n_pos, d_model)
print("PE shape:", tuple(PE.shape), "| first position:", PE[0, :6].tolist())

module = ak.SinusoidalPositionalEncoding(d_pe, max_len=n_pos)
emb_in = torch.randn(2, 10, d_pe)
adds = torch.allclose(module(emb_in), emb_in + PE[:10].float())
print("module adds the table:", adds)
assert adds and PE.abs().max() <= 1, (  # the caption: all values lie in [-1, 1]
    "claim no longer holds: 'the module adds the table; all values lie in [-1, 1]' "
    f"(measured adds: {adds}, max |PE| {PE.abs().max():.3g})"
)

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [1.3, 1]})
im = ax1.imshow(PE.numpy(), cmap="RdBu_r", aspect="auto", vmin=-1, vmax=1)
ax1.set(
    xlabel="column (2i: sine, 2i+1: cosine)",
    ylabel="position p",
    title="Sinusoidal table, $d_{model}=64$",
)
fig.colorbar(im, ax=ax1, label="$PE_{(p, j)}$")
for col in (4, 12, 24, 40):
    ax2.plot(
        PE[:, col].numpy(),
        label=f"column {col}: wavelength {2 * math.pi * 10000 ** (col / d_pe):.0f}",
    )
ax2.set(
    xlabel="position p", ylabel="value", title="Four sine columns of the table", ylim=(-1.15, 1.75)
)
ax2.legend(loc="upper center", ncol=2, fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure: left columns oscillate fast and right columns slowly; every row (position) is a
# different pattern, and all values lie in $[-1, 1]$ whatever the position.*
#
# ### A shift is a rotation
#
# The paper chose sinusoids because "for any fixed offset $k$, $PE_{p+k}$ can be
# represented as a linear function of $PE_p$" {cite:p}`vaswani2017attention`. By the
# angle-addition formulas, for each pair,
#
# $$
# \begin{pmatrix} \sin \omega_i (p+k) \\ \cos \omega_i (p+k) \end{pmatrix}
# = \begin{pmatrix} \cos \omega_i k & \sin \omega_i k \\ -\sin \omega_i k & \cos \omega_i k \end{pmatrix}
# \begin{pmatrix} \sin \omega_i p \\ \cos \omega_i p \end{pmatrix},
# $$
#
# so $PE_{p+k} = M_k\, PE_p$ with $M_k$ block-diagonal, made of $2 \times 2$ rotations, and
# independent of $p$. A layer can therefore learn "look $k$ positions back" with one
# linear map. We build $M_k$ from the formula and check it on every position.


# %%
def shift_matrix(k, d_model):
    """Block-diagonal M_k with PE[p + k] = M_k PE[p] for every p."""
    omegas = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    blocks = [
        torch.tensor(
            [[math.cos(w * k), math.sin(w * k)], [-math.sin(w * k), math.cos(w * k)]],
            dtype=torch.float64,
        )
        for w in omegas.tolist()
    ]
    return torch.block_diag(*blocks)  # (d_model, d_model)


for k in (1, 5, 37):
    M = shift_matrix(k, d_pe)
    shifted = PE[:-k] @ M.T  # M_k PE_p for p = 0 .. n_pos - k - 1
    rotates = torch.allclose(shifted, PE[k:], atol=1e-12)
    orthogonal = torch.allclose(M @ M.T, torch.eye(d_pe, dtype=torch.float64))
    print(f"k = {k:2d}: PE[p + k] == M_k PE[p] for all p: {rotates}; M_k orthogonal: {orthogonal}")
    assert rotates and orthogonal, f"claim no longer holds: 'a shift is a rotation' (k = {k})"

# %% [markdown]
# ### Dot products depend on the distance only
#
# The same identity gives the dot product of two positions:
#
# $$
# PE_p \cdot PE_q = \sum_{i} \big(\sin \omega_i p \sin \omega_i q + \cos \omega_i p \cos \omega_i q\big)
# = \sum_{i=0}^{d_{\text{model}}/2 - 1} \cos\big(\omega_i (p - q)\big),
# $$
#
# a function of $p - q$ only, equal to its maximum $d_{\text{model}}/2$ at distance 0 and,
# because the cosines of different frequencies fall out of phase, smaller at larger
# distances (on average; the decay is neither monotonic nor complete). It is
# also symmetric in $p - q$: the raw encodings do not say which position comes first. The
# projections $W_q$, $W_k$ of the attention layer can recover the direction, since
# $M_k$ is a rotation and not a symmetric map.

# %%
gram = PE @ PE.T  # (n_pos, n_pos) dot products between positions
toeplitz = torch.allclose(gram[0, :60], gram[40, 40:])
print("row p = 0 equals row p = 40 shifted (Toeplitz):", toeplitz)
print("PE_p . PE_p =", round(gram[7, 7].item(), 6), "= d_model / 2")
assert toeplitz and torch.allclose(gram.diagonal(), torch.full_like(gram[0], d_pe / 2)), (
    "claim no longer holds: 'a function of p - q only, equal to d_model / 2 at distance 0' "
    f"(measured Toeplitz: {toeplitz}, diagonal from {gram.diagonal().min():.6g} "
    f"to {gram.diagonal().max():.6g})"
)
assert (gram.argmax(-1) == torch.arange(n_pos)).all(), (  # largest on the main diagonal
    "claim no longer holds: 'its maximum at distance 0' (measured "
    f"{int((gram.argmax(-1) != torch.arange(n_pos)).sum())} rows peak elsewhere)"
)

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
im = ax1.imshow(gram.numpy(), cmap="viridis")
ax1.set(xlabel="position q", ylabel="position p", title="$PE_p \\cdot PE_q$, $d_{model} = 64$")
fig.colorbar(im, ax=ax1, label="dot product")
dist = np.arange(0, 100)
similarity = {}  # normalised PE_50 . PE_(50 + distance), distance 0..99
for d in (64, 512):
    table = ak.sinusoidal_encoding(200, d, dtype=torch.float64)
    similarity[d] = table[50] @ table[50:150].T / (d / 2)
    ax2.plot(dist, similarity[d].numpy(), label=f"$d_{{model}} = {d}$")
ax2.axhline(0, color="gray", lw=1, ls=":")
ax2.set(
    xlabel="distance $|p - q|$",
    ylabel="$PE_p \\cdot PE_q \\;/\\; (d_{model}/2)$",
    title="Similarity falls with distance",
)
ax2.legend()
fig.tight_layout()
plt.show()

# %% tags=["remove-cell"]
# The claims of the caption below, checked on the curves of the right panel.
wiggle = {d: sim[10:].diff().abs().sum().item() for d, sim in similarity.items()}
assert all(sim[10] < 0.75 for sim in similarity.values()), "claim: 'drops quickly over ten'"
assert wiggle[512] < wiggle[64] / 2, "claim no longer holds: 'wiggles average out when wider'"
assert min(sim.min() for sim in similarity.values()) > 0.3, "claim: 'stays well above zero'"
for d, sim in similarity.items():
    glue(f"ch02_pe_similarity_10_d{d}", sim[10].item(), display=False)
    glue(f"ch02_pe_similarity_min_d{d}", sim.min().item(), display=False)

# %% [markdown]
# *Figure: the dot-product matrix is constant along diagonals (it depends on $p - q$ only)
# and largest on the main diagonal. The normalised similarity drops quickly over the first
# ten positions (to {glue:text}`ch02_pe_similarity_10_d64:.2f` for $d_{\text{model}} = 64$
# and {glue:text}`ch02_pe_similarity_10_d512:.2f` for 512), then slowly, with wiggles that
# average out for wider encodings; up to distance 99 it stays well above zero (its minimum
# is {glue:text}`ch02_pe_similarity_min_d64:.2f` and
# {glue:text}`ch02_pe_similarity_min_d512:.2f`), because the slowest columns have hardly
# turned yet. Nearby positions look alike, distant ones less so.*
#
# (ch02-seed-learned-pe)=
# ### Fixed or learned?
#
# ```{admonition} Seed erratum E16 · Transformer中的实现 (line 233)
# :class: seed-erratum
# The seed says: 「位置编码通常是一个可学习的向量」 (the positional encoding is usually a
# learnable vector)
# **Correction:** the Transformer's encoding is the fixed sinusoidal table, with no
# parameters; learned absolute tables came later (BERT, GPT), and many recent models use
# relative schemes instead. Entry: {ref}`E16 <errata-e16>`; evidence: {ref}`ch02-seed-learned-pe`.
# ```
#
# The Transformer's encoding is the **fixed** sinusoidal table above, with no parameters.
# The authors also tried learned position embeddings, as used in the convolutional
# sequence-to-sequence model {cite:p}`gehring2017convolutional`, found "nearly identical
# results" (Table 3, row E), and kept the sinusoids because they "may allow the model to
# extrapolate to sequence lengths longer than the ones encountered during training"
# {cite:p}`vaswani2017attention`.
#
# Learned absolute embeddings became common later: BERT {cite:p}`devlin2019bert` and GPT
# {cite:p}`radford2018improving` train a table with one vector per position, added to the
# token embeddings exactly like the sinusoids (`ak.LearnedPositionalEmbedding`). The price
# is parameters and a hard length limit: there is no vector for a position the table does
# not have.

# %%
learned = ak.LearnedPositionalEmbedding(max_len=512, d_model=64)
print("learned table, 512 positions x 64:", ak.count_parameters(learned), "parameters")
print("sinusoidal module:", ak.count_parameters(ak.SinusoidalPositionalEncoding(64)), "parameters")
assert ak.count_parameters(learned) == 512 * 64, (
    "claim no longer holds: 'a table with one vector per position' "
    f"(measured {ak.count_parameters(learned)} parameters, expected 512 x 64)"
)
assert ak.count_parameters(ak.SinusoidalPositionalEncoding(64)) == 0, (
    "claim no longer holds: 'the fixed sinusoidal table, with no parameters' "
    f"(measured {ak.count_parameters(ak.SinusoidalPositionalEncoding(64))})"
)
try:
    learned(torch.randn(1, 600, 64))
    raise AssertionError("claim no longer holds: 'no vector for a position beyond the table'")
except ValueError as err:
    print("600 positions ->", type(err).__name__ + ":", str(err).split(";")[0])
far = ak.sinusoidal_encoding(10**6 + 1, 4)[-1]
print(
    "the sinusoidal formula has a row for any position, e.g. p = 10**6:",
    [round(v, 4) for v in far.tolist()],
)

# %% [markdown]
# In short: the original Transformer uses fixed sinusoids; BERT, GPT and many models of
# that period learn an absolute table; and many recent large language models use neither,
# but a *relative* scheme applied inside attention, the subject of the next section.
#
# (ch02-relative)=
# ## Relative positions inside attention
#
# Absolute encodings tell each token where it is; what language mostly needs is where
# tokens are *relative to each other* ("the previous word", "three words back"). Relative
# schemes put the distance directly into the attention scores and add nothing to the
# embeddings.
#
# ### Before RoPE: learned relative representations and T5's buckets
#
# The idea is older than the two schemes below. Shaw et al. {cite:p}`shaw2018self` gave
# self-attention learned vectors for the relative distance $j - i$, clipped to
# $[-k, k]$: a vector $a^K_{ij}$ added to the key inside the score,
# $q_i^\top (k_j + a^K_{ij}) / \sqrt{D}$, and a vector $a^V_{ij}$ added to the value
# in the weighted sum. On WMT 2014 translation, in the big Transformer, this replaced the
# sinusoids with gains of 1.3 BLEU (English–German) and 0.3 BLEU (English–French), and
# adding the sinusoids back on top gave nothing more. T5
# {cite:p}`raffel2020exploring` simplified it to one learned **scalar** per distance and
# head, added to the score, shared by all layers, with distances grouped into 32 buckets
# whose ranges grow logarithmically up to `max_distance` = 128 (the last bucket, which
# with this rounding starts at 113, takes every longer distance). ALiBi, below, is T5's bias with the learned scalars replaced by a fixed
# linear penalty; RoPE makes the dependence on $j - i$ exact without any table. We build
# T5's bias for a decoder (distance $i - j \ge 0$; in T5's code half the buckets hold
# one distance each and the other half cover the rest logarithmically). The result is a
# float mask of shape $(H, T, T)$, added to the scores (ALiBi's bias, below, has the same
# shape):


# %%
def t5_bucket(distance, num_buckets=32, max_distance=128):
    """T5's bucket of a causal distance i - j >= 0: exact below num_buckets / 2, then log."""
    exact = num_buckets // 2
    log_ratio = torch.log(distance.clamp(min=1).double() / exact) / math.log(max_distance / exact)
    log_bucket = exact + (log_ratio * (num_buckets - exact)).long()
    return torch.where(distance < exact, distance, log_bucket.clamp(max=num_buckets - 1))


distances = torch.arange(300)
buckets = t5_bucket(distances)
first_of = {b: int(distances[buckets == b][0]) for b in buckets.unique().tolist()}
print("first distance of each bucket:", list(first_of.values()))
T_t5, H_t5 = 200, 4
bias_table = nn.Embedding(32, H_t5)  # one learned scalar per (bucket, head)
dist_t5 = torch.arange(T_t5)[:, None] - torch.arange(T_t5)[None, :]  # (T, T): i - j
with torch.no_grad():
    t5_bias = bias_table(t5_bucket(dist_t5.clamp(min=0))).permute(2, 0, 1)  # (H, T, T)
toeplitz = all(
    torch.equal(t5_bias.diagonal(-o, 1, 2)[:, 1:], t5_bias.diagonal(-o, 1, 2)[:, :-1])
    for o in range(T_t5)
)
assert len(first_of) == 32 and first_of[16] == 16 and first_of[31] == 113, (
    "claim no longer holds: '32 buckets, exact up to 15, the last one starts at 113' "
    f"(measured {first_of})"
)
assert (buckets[128:] == 31).all() and toeplitz, (
    "claim no longer holds: 'distances from 128 on share the last bucket; the bias depends "
    "on i - j only'"
)

# %% [markdown]
# ### Rotary position embedding (RoPE)
#
# RoPE {cite:p}`su2021roformer` rotates the query and the key by an angle proportional to
# their positions. In two dimensions, with $R(\alpha)$ the rotation by $\alpha$, a query
# at position $m$ and a key at position $n$ become $R(m\theta) q$ and $R(n\theta) k$, and
#
# $$
# \big(R(m\theta) q\big)^\top \big(R(n\theta) k\big) = q^\top R(m\theta)^\top R(n\theta)\, k
# = q^\top R\big((n - m)\theta\big)\, k ,
# $$
#
# because rotations compose by adding angles and $R(\alpha)^\top = R(-\alpha)$. The
# score depends on the positions only through $n - m$. A head of size $D$ is cut into
# $D/2$ planes, each rotated with its own frequency $\theta_j = 10000^{-2j/D}$ (the same
# geometric ladder as the sinusoids). `attnkit` pairs feature $j$ with feature
# $j + D/2$ (the "rotate half" layout of GPT-NeoX and Llama) rather than with $j + 1$
# as in the paper; the two layouts define the same model up to a fixed permutation of the
# features.
#
# We check the claim: one fixed query vector and one fixed key vector, placed at
# several pairs of positions $(m, n)$.

# %%
torch.manual_seed(0)
head_dim = 16
rope = ak.RotaryEmbedding(head_dim)
q_vec, k_vec = (
    torch.randn(head_dim, dtype=torch.float64),
    torch.randn(head_dim, dtype=torch.float64),
)


def rope_score(m, n):
    """Score of q at position m with k at position n, after rotating both."""
    q_rot = rope.rotate(q_vec[None], offset=m)[0]  # one row at position m
    k_rot = rope.rotate(k_vec[None], offset=n)[0]
    return (q_rot @ k_rot).item()


rope_scores = {}
for m, n in [(5, 2), (10, 7), (100, 97), (4000, 3997), (5, 3), (5, 8)]:
    rope_scores[m, n] = rope_score(m, n)
    print(f"(m, n) = ({m:4d}, {n:4d}), m - n = {m - n:2d}: score = {rope_scores[m, n]:+.6f}")
q_at_50 = rope.rotate(q_vec[None], offset=50)[0]
keeps_norm = math.isclose(q_at_50.norm().item(), q_vec.norm().item())
print("rotation keeps the norm:", keeps_norm)
print("RoPE has", ak.count_parameters(rope), "parameters")
# the claims of the next paragraph: one score for m - n = 3, other scores for 2 and -3
at_3 = [rope_scores[m, m - 3] for m in (5, 10, 100, 4000)]
assert max(at_3) - min(at_3) < 1e-9 and keeps_norm and ak.count_parameters(rope) == 0, (
    "claim no longer holds: 'every pair with m - n = 3 gives the same score' (measured "
    f"spread {max(at_3) - min(at_3):.1e}, keeps the norm: {keeps_norm}, "
    f"{ak.count_parameters(rope)} parameters)"
)
assert min(abs(rope_scores[5, n] - at_3[0]) for n in (3, 8)) > 0.1, (
    "claim: 'other distances differ'"
)

# %% [markdown]
# Every pair with $m - n = 3$ gives the same score, even at position 4000, and other
# distances give other scores (note $m - n = -3$ differs from $+3$: unlike the dot products
# of sinusoids, RoPE scores know the direction). The whole score matrix of a fixed pair
# $(q, k)$ is therefore constant along its diagonals:

# %%
n_show = 40
q_all = rope.rotate(q_vec.expand(n_show, head_dim), offset=0)  # q at positions 0..39
k_all = rope.rotate(k_vec.expand(n_show, head_dim), offset=0)  # k at positions 0..39
scores_qk = q_all @ k_all.T  # (n_show, n_show), entry (m, n)
diagonal = torch.allclose(scores_qk[:-5, :-5], scores_qk[5:, 5:])
print("constant along diagonals:", diagonal)
assert diagonal, "claim no longer holds: 'the score matrix is constant along its diagonals'"

fig, ax = plt.subplots(figsize=(5.5, 4.5))
im = ax.imshow(scores_qk.numpy(), cmap="RdBu_r")
ax.set(
    xlabel="key position n", ylabel="query position m", title="RoPE score of one fixed (q, k) pair"
)
fig.colorbar(im, ax=ax, label="$(R_m q)^\\top (R_n k)$")
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure: the same query and key vectors give a score that depends only on $m - n$:
# every diagonal has a single colour.*
#
# **Where RoPE is applied.** Not to the embeddings: RoPE rotates the per-head queries and
# keys *inside every attention layer*, after the projections $W_q$, $W_k$ and before the
# dot product. Values are not rotated. `ak.MultiHeadAttention(..., rotary=...)` does
# exactly this, as a by-hand computation confirms. Shifting every position by the same
# amount leaves all the scores unchanged, and the model now tells "dog bites man" from
# "man bites dog".

# %%
torch.manual_seed(0)
d_model, H = 16, 4
mha_rope = ak.MultiHeadAttention(d_model, H, rotary=ak.RotaryEmbedding(d_model // H)).eval()
x = torch.randn(1, 6, d_model)
with torch.no_grad():
    out_module, _ = mha_rope(x)
    q = ak.split_heads(mha_rope.q_proj(x), H)  # (B, H, T, D)
    k = ak.split_heads(mha_rope.k_proj(x), H)
    v = ak.split_heads(mha_rope.v_proj(x), H)  # values are not rotated
    q_r, k_r = mha_rope.rotary(q, k)  # rotate queries and keys, positions 0..T-1
    by_hand = mha_rope.out_proj(ak.merge_heads(ak.scaled_dot_product_attention(q_r, k_r, v)))
    q_s, k_s = mha_rope.rotary(q, k, offset=1000)  # the same tokens at positions 1000..1005
    o1, _ = mha_rope(emb(s1))
    o2, _ = mha_rope(emb(s2))
checks = {
    "module == rotate q, k per head, then attention": torch.allclose(
        out_module, by_hand, atol=1e-6
    ),
    "scores unchanged when all positions shift by 1000": torch.allclose(
        q_r @ k_r.transpose(-2, -1), q_s @ k_s.transpose(-2, -1), atol=1e-4
    ),
    "with RoPE, output of 'dog' equal in both sentences": torch.allclose(
        o1[0, 0], o2[0, 2], atol=1e-6
    ),
}
for name, ok in checks.items():
    print(f"{name}: {ok}")
assert list(checks.values()) == [True, True, False], "claim no longer holds: the three RoPE facts"

# %% [markdown]
# (The shift check uses a tolerance of $10^{-4}$ because the rotated queries and keys are
# float32 numbers; in exact arithmetic the scores are identical.)
#
# ### ALiBi: a distance penalty on the scores
#
# ALiBi {cite:p}`press2022train` ("attention with linear biases") is simpler still: no
# rotation, no vectors, just a penalty proportional to the distance, added to the scores
# of head $h$:
#
# $$
# s^{h}_{ij} = \frac{q_i^\top k_j}{\sqrt{D}} - m_h \,(i - j), \qquad j \le i,
# $$
#
# with a causal mask for $j > i$. The slopes $m_h$ are fixed, not learned: for $H$ heads
# the geometric sequence $2^{-8/H}, 2^{-16/H}, \dots, 2^{-8}$. A head with a steep slope only
# sees its neighbourhood; a head with a gentle slope sees far. In code the bias is just
# a **float mask** (added to the scores), combined with the causal mask, so the attention
# function does not change. We check the result against PyTorch's function given the same mask.

# %%
H, T = 8, 12
slopes = ak.alibi_slopes(H)
print("slopes:", [f"1/{round(1 / s)}" for s in slopes.tolist()])
bias = ak.alibi_bias(H, T)  # (H, T, T): -m_h (i - j)
mask = ak.combine_masks(
    ak.causal_mask(T), bias
)  # float: bias where allowed, -inf above the diagonal
print("bias of head 0, query 4:", bias[0, 4].tolist())

torch.manual_seed(0)
q, k, v = torch.randn(2, H, T, 16), torch.randn(2, H, T, 16), torch.randn(2, H, T, 16)
out_ak = ak.scaled_dot_product_attention(q, k, v, mask)
out_pt = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
same = torch.allclose(out_ak, out_pt, atol=1e-6)
print("attnkit == torch F.sdpa with the same float mask:", same)
assert same and bias[0, 11, 0] == -5.5, (
    # the caption below: head 0 reaches -5.5 at distance 11
    "claim no longer holds: 'attnkit == torch F.sdpa; head 0 reaches -5.5 at distance 11' "
    f"(measured same: {same}, bias {bias[0, 11, 0]:.3g})"
)
assert torch.allclose(slopes, 2.0 ** (-8.0 * torch.arange(1, H + 1) / H)), (
    # 2^(-8/H) ... 2^(-8)
    "claim no longer holds: 'the slopes are 2^(-8/H), 2^(-16/H), ..., 2^(-8)' "
    f"(measured {slopes[0]:.3g} ... {slopes[-1]:.3g})"
)

# %%
fig, axes = plt.subplots(2, 4, figsize=(15, 7), layout="constrained")
for h, ax in enumerate(axes.ravel()):
    shown = mask[h].clone()
    shown[torch.isinf(shown)] = float("nan")  # leave masked entries blank
    im = ax.imshow(shown.numpy(), cmap="magma", vmin=-5.5, vmax=0)
    ax.set_title(f"head {h}, slope 1/{round(1 / slopes[h].item())}")
    ax.set_xlabel("key j")
    ax.set_ylabel("query i")
    ax.set_xticks(range(0, T, 2))
    ax.set_yticks(range(0, T, 2))
fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.02, label="bias $-m_h (i - j)$")
fig.suptitle("ALiBi biases added to the scores (blank: causal mask)")
plt.show()

# %% [markdown]
# *Figure: each head penalises distant keys linearly, head 0 steeply (its bias reaches
# $-5.5$ at distance 11) and head 7 barely at all.*
#
# To see what the slopes do on their own, set $q = k = 0$: the content scores vanish and
# the weights are $\mathrm{softmax}(-m_h (i - j))$, a geometric decay with the distance.

# %%
T_long = 64
zeros = torch.zeros(1, H, T_long, 8)
_, w_bias = ak.scaled_dot_product_attention(
    zeros,
    zeros,
    zeros,
    ak.combine_masks(ak.causal_mask(T_long), ak.alibi_bias(H, T_long)),
    return_weights=True,
)
fig, ax = plt.subplots(figsize=(6.5, 4))
for h in (0, 2, 4, 7):
    ax.semilogy(
        np.arange(T_long),
        w_bias[0, h, -1].flip(0).numpy(),
        label=f"head {h}, slope 1/{round(1 / slopes[h].item())}",
    )
ax.set(
    xlabel="distance i - j (query = last position)",
    ylabel="weight (log scale)",
    title="ALiBi alone: attention decays with distance",
    ylim=(1e-6, 1),
)
ax.legend()
fig.tight_layout()
plt.show()
last_five_head0 = w_bias[0, 0, -1, -5:].sum().item()  # weight on distances 0..4
spread_head7 = (w_bias[0, 7, -1].max() / w_bias[0, 7, -1].min()).item()  # 1 = uniform
assert last_five_head0 > 0.9 and spread_head7 < 1.5, "claim no longer holds: the caption below"
glue("ch02_alibi_head0_last5", last_five_head0, display=False)
glue("ch02_alibi_head7_spread", spread_head7, display=False)

# %% [markdown]
# *Figure: head 0 puts almost all its weight on the last few tokens
# ({glue:text}`ch02_alibi_head0_last5:.0%` on the last five), head 7 spreads it nearly
# uniformly over all 64 (its largest weight is {glue:text}`ch02_alibi_head7_spread:.2f`
# times its smallest).*
#
# Because the penalty is defined for any distance and nothing is learned per position,
# an ALiBi model trained on short sequences can be run on longer ones; Press et al. show
# that it extrapolates to inputs longer than those seen in training where sinusoidal
# encodings degrade {cite:p}`press2022train`.
#
# (ch02-gqa)=
# ## Grouped-query and multi-query attention
#
# ### What the key/value cache costs
#
# A decoder that generates one token at a time keeps the keys and values of every earlier
# position in every layer, the **KV cache**; chapter 4 explains it, checks that it changes
# no output and measures what it saves ({ref}`ch04-kv-cache`). What matters here is its
# size:
#
# $$
# \text{bytes} = 2 \times L \times B \times H_{kv} \times T \times D \times (\text{bytes per number}),
# $$
#
# for $L$ layers, batch $B$, $H_{kv}$ key/value heads of size $D$ and $T$ cached
# positions (the 2 counts keys and values). It grows with the context length and the
# batch, while the weights do not. Worse, each decoding step must *read* the whole cache
# for only a few operations per number, so long-context decoding is limited by memory
# bandwidth rather than arithmetic {cite:p}`shazeer2019fast`. For a decoder of typical
# 7-billion-parameter shape (32 layers, 32 heads of size 128, 16-bit numbers), the
# formula gives:

# %%
L_big, H_big, D_big, bytes_per = 32, 32, 128, 2
weights_gib = 7e9 * bytes_per / 2**30
print(f"weights: {weights_gib:.1f} GiB (computed)")
print("   T    | batch | KV cache, H_kv = 32 | H_kv = 8 | H_kv = 1   (computed from the formula)")
kv_gib = {}
for T_ctx, batch in ((4096, 1), (32768, 1), (4096, 16)):
    row = [2 * L_big * batch * h_kv * T_ctx * D_big * bytes_per / 2**30 for h_kv in (32, 8, 1)]
    kv_gib[T_ctx, batch] = row[0]
    print(f" {T_ctx:6d} | {batch:5d} | {row[0]:15.1f} GiB | {row[1]:4.1f} GiB | {row[2]:5.2f} GiB")
# the next paragraph: at 32k tokens, or 16 x 4k, the MHA cache outgrows the 13 GiB of weights
assert round(weights_gib) == 13 and kv_gib[4096, 1] < weights_gib, (
    "claim no longer holds: 'the 13 GiB of weights', more than the cache at 4k tokens "
    f"(measured {weights_gib:.3g} GiB of weights, {kv_gib[4096, 1]:.3g} GiB of cache)"
)
assert min(kv_gib[32768, 1], kv_gib[4096, 16]) > weights_gib, (
    "claim no longer holds: 'at 32k tokens, or 16 sequences of 4k, the cache outgrows the "
    f"weights' (measured {kv_gib[32768, 1]:.3g} and {kv_gib[4096, 16]:.3g} GiB "
    f"against {weights_gib:.3g} GiB)"
)

# %% [markdown]
# At 32k tokens of context, or 16 sequences of 4k, the cache of standard multi-head
# attention outgrows the 13 GiB of weights.
#
# ### Fewer key/value heads
#
# **Multi-query attention** (MQA) {cite:p}`shazeer2019fast` keeps $H$ query heads but a
# single key head and a single value head shared by all of them: the cache shrinks by a
# factor $H$. **Grouped-query attention** (GQA) {cite:p}`ainslie2023gqa` interpolates: $H_{kv}$
# key/value heads, each shared by a group of $H / H_{kv}$ query heads; query head $h$ uses
# key/value head $\lfloor h \,/\, (H / H_{kv}) \rfloor$. $H_{kv} = H$ is ordinary
# multi-head attention and $H_{kv} = 1$ is MQA. Ainslie et al. report that GQA reaches
# quality close to multi-head attention at a speed close to MQA, and that an existing
# multi-head checkpoint can be converted ("uptrained") with a small fraction of its
# original training compute.
#
# In `ak.MultiHeadAttention(d_model, H, num_kv_heads=H_kv)`, `k_proj` and `v_proj`
# produce only $H_{kv} D$ features, and `ak.repeat_kv` copies each key/value head to its
# group just before the attention. PyTorch's `F.scaled_dot_product_attention(...,
# enable_gqa=True)` does the same grouping internally; we feed it the module's own
# projections and compare.

# %%
torch.manual_seed(0)
d_model, H, T = 64, 8, 10
x = torch.randn(2, T, d_model)
print(" H_kv | k_proj weight | parameters | matches torch enable_gqa")
for H_kv in (8, 4, 2, 1):
    gqa = ak.MultiHeadAttention(d_model, H, num_kv_heads=H_kv).eval()
    with torch.no_grad():
        out_module, _ = gqa(x, is_causal=True)
        q = ak.split_heads(gqa.q_proj(x), H)  # (B, H, T, D)
        k = ak.split_heads(gqa.k_proj(x), H_kv)  # (B, H_kv, T, D)
        v = ak.split_heads(gqa.v_proj(x), H_kv)  # (B, H_kv, T, D)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)  # (B, H, T, D)
        out_torch = gqa.out_proj(ak.merge_heads(o))
    same = torch.allclose(out_module, out_torch, atol=1e-6)
    shape = str(tuple(gqa.k_proj.weight.shape))
    print(f" {H_kv:4d} | {shape:>13} | {ak.count_parameters(gqa):10d} | {same}")
    assert same, f"claim no longer holds: 'attnkit GQA == torch enable_gqa' (H_kv = {H_kv})"

kv = torch.arange(2.0).reshape(1, 2, 1, 1)  # two key/value heads holding 0 and 1
used = ak.repeat_kv(kv, 4).flatten().tolist()
print("repeat_kv to 8 query heads -> kv head used by each query head:", used)
assert used == [h // 4 for h in range(8)], (
    # query head h uses kv head floor(h / (H / H_kv))
    f"claim no longer holds: 'query head h uses kv head floor(h / (H / H_kv))' (measured {used})"
)

# %% [markdown]
# ### Measuring the cache
#
# We now decode with a small stack of 4 attention layers ($d_{\text{model}} = 256$, 8
# query heads of size 32, float32, batch 1), each layer with its own `ak.KVCache`:
# a 32-token prompt is processed at once ("prefill"), then 96 more positions one at a
# time. (Only attention layers are built, with residual connections; feed-forward layers
# hold no cache.) For every $H_{kv}$ we check that step-by-step decoding with the cache
# reproduces the full causal forward pass, then read `KVCache.nbytes`.

# %%
d_model, H, n_layers = 256, 8, 4
prompt_len, new_tokens = 32, 96
torch.manual_seed(0)
inputs = torch.randn(1, prompt_len + new_tokens, d_model)  # stand-ins for token embeddings


def run_stack(layers, x, caches=None):
    """Causal self-attention layers with residual connections; optional per-layer caches."""
    for i, layer in enumerate(layers):
        x = x + layer(x, is_causal=True, cache=None if caches is None else caches[i])[0]
    return x


cache_bytes = {}
print(" H_kv | cached | K per layer, shape | bytes (4 layers) | formula   | decode == full")
for H_kv in (8, 4, 2, 1):
    torch.manual_seed(0)
    layers = [ak.MultiHeadAttention(d_model, H, num_kv_heads=H_kv).eval() for _ in range(n_layers)]
    caches = [ak.KVCache() for _ in layers]
    with torch.no_grad():
        outs = [run_stack(layers, inputs[:, :prompt_len], caches)]  # prefill
        for t in range(prompt_len, prompt_len + new_tokens):
            outs.append(run_stack(layers, inputs[:, t : t + 1], caches))  # one position
        full = run_stack(layers, inputs)  # no cache: everything at once
    same = torch.allclose(torch.cat(outs, dim=1), full, atol=1e-4)  # float32 round-off
    cache_bytes[H_kv] = sum(c.nbytes for c in caches)
    formula = 2 * n_layers * 1 * H_kv * len(caches[0]) * (d_model // H) * 4
    shape = str(tuple(caches[0].k.shape))
    row = f" {H_kv:4d} | {len(caches[0]):6d} | {shape:>18} | {cache_bytes[H_kv]:16,d} |"
    print(row, f"{formula:9,d} | {same}")
    assert same and cache_bytes[H_kv] == formula, "claim: 'decoding == full; bytes == formula'"
# the caption below: halving H_kv halves the cache, from 1024 KiB (MHA) to 128 KiB (MQA)
assert [cache_bytes[h] // 1024 for h in (8, 4, 2, 1)] == [1024, 512, 256, 128], (
    "claim no longer holds: 'halving H_kv halves the cache, from 1024 KiB to 128 KiB' "
    f"(measured {[cache_bytes[h] // 1024 for h in (8, 4, 2, 1)]} KiB)"
)

# %%
fig, ax = plt.subplots(figsize=(6.5, 4))
labels_kv = [
    f"$H_{{kv}}$ = {h}\n" + ("MHA" if h == H else "MQA" if h == 1 else "GQA") for h in cache_bytes
]
kib = [b / 1024 for b in cache_bytes.values()]
bars = ax.bar(labels_kv, kib, color=["#2c7fb8", "#41b6c4", "#7fcdbb", "#c7e9b4"])
for bar, value in zip(bars, kib):
    ax.text(bar.get_x() + bar.get_width() / 2, value, f"{value:.0f} KiB", ha="center", va="bottom")
ax.set(
    ylabel="KV cache (KiB), measured", title="KV cache after 128 positions, 4 layers, 8 query heads"
)
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure: the measured cache halves each time the number of key/value heads halves, from
# 1024 KiB for multi-head attention to 128 KiB for multi-query attention; the number of
# query heads (8) and the model width are the same in all four.*
#
# The measured bytes equal the formula exactly, so the 7B-scale numbers above are not a
# guess: with $H_{kv} = 8$ instead of 32 the same hardware holds a four times longer
# context or a four times larger batch. What GQA and MQA give up is capacity: fewer
# distinct keys and values per layer, which is why GQA, with a few groups, is the common
# compromise.

# %% [markdown]
# ## Key takeaways
#
# - One attention head returns **one weighted average** per query. To gather several
#   kinds of information at once, multi-head attention runs $H$ attentions of size
#   $D = d_{\text{model}}/H$ in parallel and combines them:
#   $\mathrm{Concat}(\text{head}_1, \dots, \text{head}_H) W_o = \sum_h \text{head}_h W_o^{h}$.
# - Splitting into heads is a reshape, $(B, T, d_{\text{model}}) \to (B, H, T, D)$; it costs
#   no parameters and no extra multiply-adds. Only the attention-weights tensor grows $H$-fold.
#   The price is rank: each head's score matrix $Q^h K^{h\top}$ has rank at most $D$ (the
#   low-rank bottleneck; measured: 8, never 12, with four heads of size 8).
# - Trained heads can specialise: on a task needing the previous token and the first
#   token, 2 heads split the jobs cleanly ({glue:text}`ch02_two_rel_acc_both_h2:.1%`
#   accuracy) where 1 head with the same {glue:text}`ch02_two_rel_params` parameters
#   reaches {glue:text}`ch02_two_rel_acc_both_h1:.1%`; ablations confirm the roles. In
#   large models many heads are redundant and can be pruned.
# - Without positions, self-attention is **permutation-equivariant**: "dog bites man" and
#   "man bites dog" look the same. The Transformer adds the positional encoding to the
#   **input embeddings**, before the first layer; adding it to the attention output
#   leaves the attention weights order-blind.
# - The sinusoidal encoding is **fixed**: $PE_{p+k}$ is a rotation of $PE_p$, and
#   $PE_p \cdot PE_q$ depends on $p - q$ only. Learned tables (BERT, GPT) work as well
#   within their length but cannot go beyond it.
# - Relative schemes put the distance into the scores: learned vectors per clipped
#   distance (Shaw et al.), a learned scalar per distance bucket and head (T5), then RoPE,
#   which rotates queries and keys so that scores depend on $m - n$ only, and ALiBi, which
#   adds $-m_h (i - j)$ as a float mask. None adds anything to the embeddings.
# - Grouped-query ($1 < H_{kv} < H$) and multi-query ($H_{kv} = 1$) attention share
#   key/value heads between query heads, shrinking the KV cache, which dominates memory
#   and bandwidth in long-context decoding, by a factor $H / H_{kv}$.

# %% [markdown]
# ## Exercises
#
# The exercises for this chapter are in `exercises/02_multi_head_attention.ipynb`.
# Using plain PyTorch, you will implement
#
# 1. `split_heads`: $(\dots, T, HD) \to (\dots, H, T, D)$;
# 2. `merge_heads`, its inverse;
# 3. `multi_head_attention` from four weight matrices, checked against
#    `torch.nn.MultiheadAttention`;
# 4. `sinusoidal_encoding`, the fixed table of the Transformer;
# 5. `apply_rotary`, RoPE in the rotate-half layout, with a check that scores depend on
#    $m - n$ only;
# 6. `repeat_kv`, which shares key/value heads across query heads for grouped-query attention.
#
# Grade your work with `python -m attnkit.grade 02`.

# %% [markdown]
# (ch02-interview)=
# ## Interview question
#
# ```{admonition} Interview question
# :class: tip
#
# **题目：** 请解释自注意力机制在Transformer模型中的实现方式和作用。
#
# :::{english-only}
# **Question:** Explain how self-attention is implemented in the Transformer, and what it
# does there.
# :::
#
# **Model answer.** Each layer runs multi-head scaled dot-product attention. The input $X$
# is projected, per head, into queries, keys and values of width $d_{\text{model}}/H$;
# each head computes $\mathrm{softmax}(QK^\top/\sqrt{d_k})V$, and the heads are
# concatenated and mixed by an output projection $W_o$. Splitting into heads is a reshape:
# no extra parameters or multiply-adds, and each head returns its own weighted average, so
# the layer can gather several kinds of information at once; on the chapter's task with
# two relations, two heads split the jobs and solve it where one head of the same size
# falls short ({ref}`ch02-why-heads`, {ref}`ch02-heads`). Attention sits in a residual
# block with layer normalisation, followed by a position-wise feed-forward network;
# decoder self-attention is causally masked, and the decoder also attends to the encoder's
# output ({doc}`chapter 3 <03_transformer>`). Attention is permutation-equivariant, so
# order must be supplied: the original model adds fixed sinusoidal encodings to the input
# embeddings, *before* the first layer ({ref}`ch02-order`, {ref}`ch02-positions`). Two
# points an interviewer probes, both wrong in the source text: the original encoding is
# fixed, not learned (BERT and GPT learn theirs), and adding it to the attention *output*
# would leave the attention weights order-blind. Many recent models inject positions
# inside every attention layer instead: RoPE rotates queries and keys, ALiBi adds a
# distance penalty to the scores ({ref}`ch02-relative`). The role: every position gathers
# information from every other in one step, all in parallel, at $O(n^2 d)$ per layer; in
# generation the key/value cache dominates memory, and grouped-query attention shrinks it
# by $H/H_{kv}$ ({ref}`ch02-gqa`).
# ```

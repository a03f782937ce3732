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
# # Multimodal attention: reading numbers from images
#
# A *modality* is a kind of data: text, images, sound. A **multimodal** model takes in (or
# puts out) more than one of them: it writes a caption for a photograph, answers a
# question about a chart, or finds the image that matches a sentence. Attention is the
# natural glue, because it does not care where its keys and values come from: a word
# can attend to image patches exactly as it attends to other words, as long as both are
# vectors of the same width.
#
# This chapter builds the smallest complete example: an **image-to-text** model that
# looks at a strip of two or three handwritten digits and writes the number in English
# words ("three hundred forty two"). A Vision Transformer (chapter 9's ViT
# {cite:p}`dosovitskiy2021image`) turns the strip into patch vectors; a Transformer
# decoder (chapter 3) writes the words, and **cross-attention** connects them: at every
# word, the decoder's query is compared with the keys of all image patches. The task is
# small enough to train on one CPU core (the time it took on the machine that built this
# page is printed with the training curve), and structured enough that we
# know which part of the image each word *should* come from: "hundred" from the first
# digit, "forty" from the middle one, "seventeen" from the last two. So we can check
# whether the cross-attention maps look where they should, and measure it.
#
# By the end you should be able to
#
# - name the two ways of letting text attend to an image (cross-attention, and
#   self-attention over concatenated tokens) and the contrastive alternative, and say
#   which design well-known models use;
# - write cross-attention with queries from text and keys and values from image patches,
#   and recompute a model's cross-attention weights from its projections;
# - train an image-to-text model with teacher forcing, decode it greedily with a
#   key/value cache, and evaluate it by exact match, per length and per word;
# - draw cross-attention maps over the image for each generated word, and measure what
#   fraction of the attention falls on the part of the image the word describes.
#
# The seed text mentions multimodality once, in its section on future trends
# (自注意力机制的发展趋势): "multimodal self-attention" (多模态自注意力) will extend to
# images, sound and text, and in image captioning "self-attention can consider the visual
# information of the image and the linguistic information of the text at the same time"
# (自注意力机制可以同时考虑图像中的视觉信息和文本中的语言信息). Section
# {ref}`ch10-seed` sorts out what is right and what is loose in that.
#
# Everything below uses `attnkit` (imported as `ak`): the model is
# `attnkit.models.image_to_text.ImageToText`, the data `attnkit.data.digit_strips`.

# %%
import math
from collections import Counter, defaultdict

import matplotlib.pyplot as plt
import torch
from myst_nb import glue

import attnkit as ak
from attnkit.data import digit_strips as ds
from attnkit.models.image_to_text import ImageToText, greedy_caption
from attnkit.models.vit import ViTConfig

torch.manual_seed(0)
# One thread: the book runs its chapters side by side, one thread each, so every number
# below is the same on any machine, however many cores it has and however busy it is
# (timings aside).
torch.set_num_threads(1)
torch.set_printoptions(precision=4, sci_mode=False)
plt.rcParams.update({"figure.dpi": 100, "axes.grid": False})
print("torch", torch.__version__, "| attnkit", ak.__version__)

# %% [markdown]
# (ch10-designs)=
# ## Three ways to join images and text
#
# Suppose an image has been cut into $N$ patches and encoded into vectors
# $M \in \mathbb{R}^{N \times d}$ (the *memory*), and a text of $T$ tokens is embedded as
# $Z \in \mathbb{R}^{T \times d}$. There are three common ways to make them interact.
#
# 1. **Cross-attention** (encoder–decoder). The text's queries attend to the image's keys
#    and values, $\mathrm{softmax}\big((Z W_Q)(M W_K)^\top / \sqrt{D}\big)\, M W_V$, in a
#    separate sublayer of each decoder layer; the image never attends to the text. This
#    is the design of neural image captioning since "Show, Attend and Tell"
#    {cite:p}`xu2015show`, which added (additive) attention over the CNN's spatial
#    features to the caption generator of "Show and Tell" {cite:p}`vinyals2015show` (that
#    one fed the image once, as a single vector, with no attention). Flamingo
#    {cite:p}`alayrac2022flamingo` inserts gated cross-attention layers into a frozen
#    language model, and BLIP's captioning decoder {cite:p}`li2022blip` reads the image
#    through cross-attention too.
# 2. **Self-attention over concatenated tokens** (single stream). The patch vectors and
#    the word vectors are put in one sequence $[M; Z]$ of $N + T$ tokens, and ordinary
#    self-attention runs over all of them. Image tokens and text tokens then share the
#    same projections, and the *mask* decides who sees whom. With no mask (an encoder
#    over both) attention goes both ways. Many recent vision-language models, LLaVA
#    {cite:p}`liu2023visual` among them, instead feed projected image tokens as a prefix
#    to a decoder-only language model under its ordinary causal mask: the text attends
#    to the image, but the image tokens, which come first, cannot attend to any text
#    after them. Image and text
#    attend to each other in both directions there only with a **prefix-LM** mask, which
#    lets every token of the prefix (the image and, say, a text prompt) see the whole
#    prefix, and keeps the generated text causal (checked below).
# 3. **No attention between the modalities: contrastive alignment.** CLIP
#    {cite:p}`radford2021learning` encodes the image and the text *separately* (a ViT or
#    CNN, and a text Transformer) into one vector each, and trains both encoders so that
#    the embeddings of matching pairs have a high cosine similarity and mismatched pairs a
#    low one. Attention works within each modality only; the two meet in a dot product.
#    That is ideal for retrieval and zero-shot classification, but it cannot generate a
#    caption.
#
# Cross-attention is not a different mechanism from self-attention: it is one block of
# self-attention over the concatenation. If the text's queries may attend to the image
# keys only, the text rows of joint attention over $[M; Z]$ *are* cross-attention, with the
# same projections. The cell below checks this with one `ak.MultiHeadAttention`.

# %%
torch.manual_seed(0)
d, N, T = 32, 12, 5
attn = ak.MultiHeadAttention(d, num_heads=4).eval()
M = torch.randn(2, N, d)  # image patches (memory)
Z = torch.randn(2, T, d)  # text tokens
with torch.no_grad():
    cross_out, cross_w = attn(Z, M, need_weights=True)  # queries Z, keys/values M
    joint = torch.cat([M, Z], dim=1)  # (B, N + T, d): one sequence
    text_sees_image_only = torch.zeros(N + T, N + T, dtype=torch.bool)
    text_sees_image_only[N:, :N] = True  # rows: text queries; columns: image keys
    text_sees_image_only[:N, :N] = True  # (image rows: any valid pattern; unused)
    joint_out, joint_w = attn(joint, attn_mask=text_sees_image_only, need_weights=True)
print(
    "text rows of joint attention == cross-attention:",
    torch.allclose(joint_out[:, N:], cross_out, atol=1e-6),
)
print(
    "their weights, (B, H, T, N):",
    tuple(cross_w.shape),
    torch.allclose(joint_w[:, :, N:, :N], cross_w),
)
assert torch.allclose(joint_out[:, N:], cross_out, atol=1e-6), (
    "expected the text rows of joint attention to equal cross-attention; max difference "
    f"{(joint_out[:, N:] - cross_out).abs().max().item():.3g}"
)
assert torch.allclose(joint_w[:, :, N:, :N], cross_w, atol=1e-7), (
    "expected the text-to-image weights of joint attention to equal the cross-attention "
    f"weights; max difference {(joint_w[:, :, N:, :N] - cross_w).abs().max().item():.3g}"
)

# %% [markdown]
# (ch10-prefix-lm)=
# In the single stream, the mask decides the direction. Take the image prefix, a prompt of
# $P = 2$ text tokens and $T - P = 3$ generated tokens, and change only the prompt: under
# the causal mask of a decoder-only model the image tokens' outputs do not move (they
# cannot see the text after them); under a prefix-LM mask they do.

# %%
P = 2  # prompt tokens: part of the prefix; the other T - P text tokens are generated
causal = ak.causal_mask(N + T)  # (N + T, N + T), True = may attend
prefix_lm = causal.clone()
prefix_lm[: N + P, : N + P] = True  # the prefix (image + prompt) sees the whole prefix
Z2 = Z.clone()
Z2[:, :P] = torch.randn(2, P, d)  # a different prompt, same image
image_moves = {}
with torch.no_grad():
    for name, mask in (("causal", causal), ("prefix-LM", prefix_lm)):
        out1 = attn(torch.cat([M, Z], 1), attn_mask=mask)[0][:, :N]  # image rows
        out2 = attn(torch.cat([M, Z2], 1), attn_mask=mask)[0][:, :N]
        image_moves[name] = (out1 - out2).abs().max().item()
        print(f"{name:9s}: image tokens see text: {bool(mask[:N, N:].any())}; "
              f"image outputs change with the prompt by {image_moves[name]:.2e}")  # fmt: skip
assert not causal[:N, N:].any() and image_moves["causal"] == 0.0, (
    "claim no longer holds: 'under the causal mask the image tokens cannot see the text' "
    f"(measured change {image_moves['causal']:.3g})"
)
assert prefix_lm[:N, N : N + P].all() and image_moves["prefix-LM"] > 1e-3, (
    "claim no longer holds: 'under a prefix-LM mask the image tokens see the prompt' "
    f"(measured change {image_moves['prefix-LM']:.3g})"
)
assert not prefix_lm[: N + P, N + P :].any(), (
    "expected the prefix not to see the generated tokens under the prefix-LM mask"
)

# %% [markdown]
# What the designs really differ in is therefore *which* blocks of the $(N + T) \times
# (N + T)$ attention pattern exist, and whether the two modalities share projection
# weights. With cross-attention the image is encoded once, independently of the text, and
# its keys and values are computed once per image and cached for every word; in the single
# stream the image tokens sit in the same sequence as the text, so every layer pays for
# $N + T$ tokens.
#
# (ch10-cross-attention)=
# ## Cross-attention from words to patches
#
# In each decoder layer, after the causal self-attention over the words written so far,
# the cross-attention sublayer computes, per head $h$ with $D = d / H$,
#
# $$
# Q_h = \mathrm{LN}(Z) W_Q^{(h)} \in \mathbb{R}^{T \times D}, \qquad
# K_h = M W_K^{(h)}, \quad V_h = M W_V^{(h)} \in \mathbb{R}^{N \times D},
# $$
#
# $$
# A_h = \mathrm{softmax}\!\left(\frac{Q_h K_h^\top}{\sqrt{D}}\right) \in \mathbb{R}^{T \times N},
# \qquad
# \mathrm{CrossAttn}(Z, M) = [A_1 V_1; \dots; A_H V_H]\, W_O ,
# $$
#
# and adds the result to the residual stream (pre-LN, as in chapter 3). Row $t$ of $A_h$
# is a probability distribution over the $N$ patches: where the decoder looks while
# producing the next word. Because the patches come from a grid, each row can be folded
# back into the image's shape and drawn over it. This is the picture
# {cite:t}`xu2015show` made famous for captioning.
#
# Two details matter for the pictures below. First, our memory is the ViT's final states
# of the **patches only**: the ViT's class token is dropped, so every unit of attention
# lands somewhere in the image. Second, the encoder's self-attention has already mixed
# information between patches, so a patch's vector is not "the pixels of that patch"
# alone; attention maps show where the decoder reads, not what each vector contains. We
# therefore check the maps with a measurement rather than by eye.
#
# (ch10-task)=
# ## The task: digit strips to words
#
# `attnkit.data.digit_strips` draws a number from 10 to 999 with the handwritten 8 × 8
# digits of scikit-learn (chapter 9), side by side in three slots: an image of 8 × 24
# pixels. The number is **right-aligned**: the units digit is always in slot 2, the tens
# in slot 1, the hundreds in slot 0; a two-digit number leaves slot 0 blank. The target is
# the number in words, American style (no "and", no hyphens), one token per word, over a
# vocabulary of 29 words and `<pad>`, `<bos>`, `<eos>` (asserted below). The English number system makes
# the alignment interesting: "hundred" and the word before it describe slot 0, a tens word
# ("forty") slot 1, a units word slot 2, but a teen ("seventeen", "ten") describes slots 1
# *and* 2 with one word, and a zero digit produces no word at all.
#
# The digit images of each strip come from **one** split of `digit_splits`: training
# strips use only training digits, test strips only test digits, so the test measures
# reading handwriting the model has never seen. (The numbers themselves are drawn
# uniformly from 10 to 999 for every split, so a test number usually also occurs in
# training, drawn with other images.)

# %%
splits = ds.strip_splits(n_train=20000, n_val=500, n_test=2000, seed=0)
train, val, test = splits
print("strips:", {name: tuple(s.images.shape) for name, s in zip(("train", "val", "test"), splits)})
print("vocabulary:", len(ds.VOCAB), "tokens:", " ".join(ds.VOCAB))
for n in (342, 517, 40, 105, 17):
    print(f"{n:4d} -> {ds.number_to_words(n)!r:<28} describes slots {ds.word_slots(n)}")
used = {
    name: set(s.digit_index[s.digit_index >= 0].tolist())
    for name, s in zip(("train", "val", "test"), splits)
}
print("digit images shared by train and test strips:", len(used["train"] & used["test"]))
print("distinct digit images in the test strips:", len(used["test"]))
print("two-digit numbers among the test strips:", int((test.numbers < 100).sum()))
print("distinct digit images in the training strips:", len(used["train"]))
assert not used["train"] & used["test"] and not used["train"] & used["val"], (
    "claim no longer holds: 'test strips only test digits' (digit images shared with "
    f"training: {len(used['train'] & used['test'])} test, {len(used['train'] & used['val'])} val)"
)
assert len(ds.VOCAB) == 32 and ds.VOCAB[:3] == ("<pad>", "<bos>", "<eos>"), (  # 29 words + 3
    f"expected 32 tokens starting with <pad>, <bos>, <eos>; found {len(ds.VOCAB)}: {ds.VOCAB[:3]}"
)
glue("ch10_n_train", len(train.numbers), display=False)
glue("ch10_train_digit_images", len(used["train"]), display=False)

# %%
fig, axes = plt.subplots(2, 4, figsize=(12, 3.6), layout="constrained")
for ax, i in zip(axes.ravel(), range(8)):
    ax.imshow(train.images[i, 0], cmap="gray_r", vmin=0, vmax=1)
    ax.set_title(ds.number_to_words(int(train.numbers[i])), fontsize=9)
    ax.set_xticks([4, 12, 20], ["slot 0", "slot 1", "slot 2"], fontsize=7)
    ax.set_yticks([])
    for x in (7.5, 15.5):
        ax.axvline(x, color="tab:red", lw=0.5, ls=":")
fig.suptitle("Training strips (8 × 24 pixels) and their targets")
plt.show()

# %% [markdown]
# *Figure: eight training strips; the dotted lines separate the three digit slots. Two-digit
# numbers have an empty slot 0.*
#
# The decoder is trained with teacher forcing, as in chapter 3: it reads
# `tgt_in` $= \langle\text{bos}\rangle, w_1, \dots, w_k$ and predicts `tgt_out`
# $= w_1, \dots, w_k, \langle\text{eos}\rangle$, padded to five positions:

# %%
for name, row in (("tgt_in ", train.tgt_in[0]), ("tgt_out", train.tgt_out[0])):
    print(name, [ds.VOCAB[i] for i in row.tolist()])

# %% [markdown]
# (ch10-model)=
# ## The model
#
# `ImageToText` joins a `ViT` (chapter 9) without classification head and a pre-LN
# Transformer decoder (chapter 3). The ViT cuts the 8 × 24 strip into 4 × 4 patches, a
# grid of 2 × 6 = 12 patches, so each digit slot is a 2 × 2 block of four patches
# (patch columns $2s$ and $2s + 1$ for slot $s$). The sizes:
#
# | stage | computation | shape |
# |---|---|---|
# | image | one strip | $(B, 1, 8, 24)$ |
# | patches | 12 patches of 16 pixels, linear projection, class token, learned positions | $(B, 13, 64)$ |
# | ViT encoder | 2 pre-LN layers, 4 heads, final LayerNorm | $(B, 13, 64)$ |
# | memory | the 12 patch states (class token dropped) | $(B, 12, 64)$ |
# | words | $\langle\text{bos}\rangle$ + words, embedding $\times \sqrt{d}$ + learned positions | $(B, T, 64)$ |
# | decoder | 2 pre-LN layers: causal self-attention, cross-attention to the memory, GELU FFN | $(B, T, 64)$ |
# | output | final LayerNorm, projection tied with the word embedding | $(B, T, 32)$ |

# %%
vit_config = ViTConfig(
    image_size=(8, 24),
    patch_size=4,
    channels=1,
    d_model=64,
    num_heads=4,
    num_layers=2,
    d_ff=128,
    num_classes=0,
    dropout=0.1,
)
ak.seed_everything(0)
model = ImageToText(
    vit_config, len(ds.VOCAB), num_decoder_layers=2, d_ff=128, max_len=8, dropout=0.1
)
ak.set_fused_attention(model)
print("patch grid:", vit_config.grid, "->", vit_config.num_patches, "patches")
for name, part in (
    ("ViT encoder", model.encoder),
    ("word embedding (= output)", model.tok_embed),
    ("positions", model.pos),
    ("decoder", model.decoder),
):
    print(f"{name:<28} {ak.count_parameters(part):>8,}")
print(f"{'total':<28} {ak.count_parameters(model):>8,}")
with torch.no_grad():
    logits = model(train.images[:4], train.tgt_in[:4])
    memory = model.encode(train.images[:4])
print("memory", tuple(memory.shape), "| logits", tuple(logits.shape))
assert memory.shape == (4, 12, 64) and logits.shape == (4, train.tgt_in.shape[1], 32), (
    f"expected memory (4, 12, 64) and logits (4, {train.tgt_in.shape[1]}, 32); "
    f"found {tuple(memory.shape)} and {tuple(logits.shape)}"
)

# %% [markdown]
# (ch10-training)=
# ## Training
#
# Cross-entropy of `tgt_out` under teacher forcing, ignoring padding (`model.loss`);
# AdamW with peak learning rate $3 \times 10^{-3}$, 100 warm-up steps and a cosine decay
# over {glue:text}`ch10_steps` steps of {glue:text}`ch10_batch` strips (`ak.train`, with a
# progress bar), dropout 0.1 in the encoder and the decoder, and no time budget: the run is
# defined by its steps, data and seed. The {glue:text}`ch10_n_train` training strips are
# made of only {glue:text}`ch10_train_digit_images` distinct digit images, each seen many
# times in different numbers; the dropout is a guard against learning those images by
# heart.

# %%
STEPS, BATCH = 2000, 64
batches = ds.strip_batches(train, batch_size=BATCH, num_batches=STEPS, seed=0)
config = ak.TrainConfig(steps=STEPS, lr=3e-3, warmup_steps=100, eval_every=400, progress=True)
glue("ch10_steps", STEPS, display=False)
glue("ch10_batch", BATCH, display=False)


def loss_fn(model, batch):
    return model.loss(*batch)


def evaluate(model):
    return {"val_loss": model.loss(val.images, val.tgt_in, val.tgt_out).item()}


result = ak.train(model, loss_fn, batches, config, evaluate=evaluate)
model.eval()
print(" step | train loss | val loss")
for h in result.history:
    print(f" {h['step']:4d} | {h['train_loss']:10.4f} | {h['val_loss']:8.4f}")

# %%
# NBVAL_IGNORE_OUTPUT
print(f"training time: {result.seconds:.1f} s for {result.steps_done} steps")

# %%
fig, ax = plt.subplots(figsize=(7, 4))
result.plot(ax=ax)
ax.set_yscale("log")
ax.set_ylabel("cross-entropy (nats per word, log scale)")
ax.set_title("Training the digit-strip reader")
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure: mean training loss per 400 steps (with dropout active) and validation loss on
# 500 strips of unseen digit images.*
#
# (ch10-results)=
# ## Results
#
# ### Greedy decoding and exact match
#
# `greedy_caption` encodes the strips once and writes the most probable word at each
# step, with a key/value cache (the same loop as chapter 3's `greedy_translate`). The
# metric is **exact match**: the whole generated string equals the target. We also check
# that decoding without the cache gives the same words.

# %%
out = greedy_caption(model, test.images, bos_id=ds.BOS_ID, eos_id=ds.EOS_ID, max_len=ds.TARGET_LEN)
out_nocache = greedy_caption(
    model, test.images, bos_id=ds.BOS_ID, eos_id=ds.EOS_ID, max_len=ds.TARGET_LEN, use_cache=False
)
preds = [ds.decode_ids(row) for row in out]
refs = [ds.number_to_words(n) for n in test.numbers.tolist()]
correct = torch.tensor([p == r for p, r in zip(preds, refs)])
exact = correct.float().mean().item()
two = test.numbers < 100
exact_two, exact_three = (correct[s].float().mean().item() for s in (two, ~two))
print("same words with and without the cache:", torch.equal(out, out_nocache))
print(f"exact match on {len(refs)} test strips: {exact:.3f}")
print(f"  two-digit numbers   ({int(two.sum()):4d}): {exact_two:.3f}")
print(f"  three-digit numbers ({int((~two).sum()):4d}): {exact_three:.3f}")
assert torch.equal(out, out_nocache), "claim no longer holds: 'the decoders agree on every strip'"
assert exact >= 0.85, f"claim no longer holds: 'exact match of 0.85 or more' ({exact:.3f})"
assert min(exact_two, exact_three) >= 0.83, (
    f"claim no longer holds: '0.83 or more for each length' ({exact_two:.3f}, {exact_three:.3f})"
)
glue("ch10_exact", exact, display=False)
glue("ch10_exact_two", exact_two, display=False)
glue("ch10_exact_three", exact_three, display=False)

# %% [markdown]
# The model reads {glue:text}`ch10_exact:.1%` of the strips of unseen handwriting exactly:
# {glue:text}`ch10_exact_two:.1%` of the two-digit and {glue:text}`ch10_exact_three:.1%` of
# the three-digit numbers. The asserts behind these figures are floors, not the result:
# they require 0.85 or more overall and 0.83 or more for each length, set a few points
# below what this run (one seed) gives so that a different CPU's rounding does not fail
# the build while a broken model still does. The cached and the recomputing decoders
# agree on every strip (asserted exactly).
#
# Per word: for each position of the target, is the generated word right? (A prediction
# shorter than the target counts as wrong at the missing positions.) And per digit: is
# each slot's digit recovered when we read the number back from the words?

# %%
word_total, word_right = Counter(), Counter()
for p, r in zip(preds, refs):
    pw, rw = p.split(), r.split()
    for i, w in enumerate(rw):
        word_total[w] += 1
        word_right[w] += i < len(pw) and pw[i] == w
word_acc = {w: word_right[w] / word_total[w] for w in word_total}
words_to_number = {ds.number_to_words(n): n for n in range(1000)}
pred_numbers = torch.tensor([words_to_number.get(p, -1) for p in preds])
valid = pred_numbers >= 10
slot_right = (
    ds.number_digits(pred_numbers.clamp(min=10)) == ds.number_digits(test.numbers)
) & valid[:, None]
print("predictions that are valid number words:", int(valid.sum()), "of", len(preds))
print(
    "digit accuracy per slot (hundreds, tens, units):",
    [round(x, 3) for x in slot_right.float().mean(0).tolist()],
)
print(
    "worst words:",
    ", ".join(
        f"{w} {a:.3f} (n={word_total[w]})"
        for w, a in sorted(word_acc.items(), key=lambda x: x[1])[:6]
    ),
)
print(
    "word accuracy over all positions:",
    round(sum(word_right.values()) / sum(word_total.values()), 3),
)
worst = sorted(word_acc, key=word_acc.get)
slot_acc = slot_right.float().mean(0)  # (3,): hundreds, tens, units
teen_counts = [word_total[w] for w in ds.ONES[10:]]
assert bool(valid.all()), (  # every output is the spelling of some number
    "claim no longer holds: 'every output is a well-formed number' "
    f"(measured {int((~valid).sum())} of {len(preds)} invalid)"
)
assert slot_acc.min() >= 0.93, f"claim no longer holds: 'at least 93% per slot' ({slot_acc})"
assert sum(word_right.values()) / sum(word_total.values()) >= 0.94, (
    "claim no longer holds: 'word accuracy over all positions of 0.94 or more' "
    f"(measured {sum(word_right.values()) / sum(word_total.values()):.3g})"
)
assert all(w in ds.ONES[10:] for w in worst[:3]), (  # the three worst words are teens
    f"claim no longer holds: 'the three worst words are teens' (measured {worst[:3]})"
)
assert min(teen_counts) >= 10 and max(teen_counts) <= 35, (  # "about 20 test strips each"
    "claim no longer holds: 'they are rare, 10 to 35 test strips each' "
    f"(measured {min(teen_counts)} to {max(teen_counts)})"
)
glue("ch10_slot_acc_min", slot_acc.min().item(), display=False)
glue("ch10_slot_acc_hundreds", slot_acc[0].item(), display=False)
glue("ch10_word_acc", sum(word_right.values()) / sum(word_total.values()), display=False)
glue("ch10_teen_count_min", min(teen_counts), display=False)
glue("ch10_teen_count_max", max(teen_counts), display=False)

# %% [markdown]
# Every output is a well-formed number (the model has learned the grammar of number
# words perfectly), and each digit slot is read right at least
# {glue:text}`ch10_slot_acc_min:.1%` of the time (asserted: at least 93%): the errors are
# misread handwriting, not bad English. Exact match needs all three digits, so it is lower
# than the per-digit accuracies. The three worst words are teens (asserted): they are rare
# (only numbers ending in 10 to 19 use them, {glue:text}`ch10_teen_count_min` to
# {glue:text}`ch10_teen_count_max` test strips each) and each needs two digits read
# correctly.

# %% [markdown]
# Some of the errors:

# %%
wrong = [i for i in range(len(refs)) if preds[i] != refs[i]]
fig, axes = plt.subplots(2, 4, figsize=(12, 3.6), layout="constrained")
for ax, i in zip(axes.ravel(), wrong[:8]):
    ax.imshow(test.images[i, 0], cmap="gray_r", vmin=0, vmax=1)
    ax.set_title(f"true: {refs[i]}\nread: {preds[i]}", fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("Test strips read wrongly (unseen handwriting)")
plt.show()

# %% [markdown]
# (ch10-maps)=
# ## Where each word looks
#
# ### Cross-attention maps
#
# `model.cross_attention_weights(images, tgt_in)` returns, for each decoder layer, the
# weights $(B, H, T, N)$. We feed the model's *own* greedy output (with
# $\langle\text{bos}\rangle$ in front), so that row $t$ is the attention while the model
# generated its word $t + 1$, and fold each row back into the 2 × 6 patch grid.


# %%
def generated_inputs(out):
    """<bos> + the generated words, as the decoder's input for the weights."""
    bos = torch.full((out.shape[0], 1), ds.BOS_ID)
    return torch.cat([bos, out[:, :-1]], dim=1)  # (B, L)


pick = []
for cond in (
    lambda n: n >= 100 and n % 100 >= 20 and n % 10,
    lambda n: n >= 100 and 10 <= n % 100 < 20,
    lambda n: n < 100 and n % 10,
    lambda n: n >= 100 and n % 100 < 10 and n % 10,
):
    pick.append(
        next(i for i in range(len(refs)) if preds[i] == refs[i] and cond(int(test.numbers[i])))
    )
with torch.no_grad():
    w_ex = model.cross_attention_weights(test.images[pick], generated_inputs(out[pick]))
gh, gw = vit_config.grid
fig, axes = plt.subplots(len(pick), 5, figsize=(14, 1.9 * len(pick)), layout="constrained")
for r, i in enumerate(pick):
    words = [*preds[i].split(), "<eos>"]
    axes[r, 0].imshow(test.images[i, 0], cmap="gray_r")
    axes[r, 0].set_title(f"strip: {int(test.numbers[i])}", fontsize=9)
    for t in range(4):
        ax = axes[r, t + 1]
        if t < len(words):
            amap = (
                torch.stack([w[r] for w in w_ex]).mean((0, 1))[t].reshape(gh, gw)
            )  # mean of layers, heads
            ax.imshow(test.images[i, 0], cmap="gray_r")
            im = ax.imshow(
                amap.repeat_interleave(4, 0).repeat_interleave(4, 1),
                cmap="magma",
                alpha=0.6,
                vmin=0,
                vmax=0.5,
            )
            ax.set_title(f"writing {words[t]!r}", fontsize=9)
        ax.axis("off")
    axes[r, 0].set_xticks([])
    axes[r, 0].set_yticks([])
fig.colorbar(
    im,
    ax=axes.ravel().tolist(),
    fraction=0.02,
    label="cross-attention weight (mean of layers and heads)",
)
fig.suptitle("Cross-attention over the strip while each word is generated")
plt.show()

# %% [markdown]
# *Figure: for four correctly read test strips (a three-digit number with a tens word, one
# with a teen, a two-digit number, one with a zero tens digit), the cross-attention of the
# step that wrote each word, averaged over both layers and all heads, drawn over the
# strip; brighter = more weight on that 4 × 4 patch.*
#
# ### A measured summary
#
# The maps are examples; now a number for every word of every correctly read test strip.
# For each generated word we sum the cross-attention weights (per layer, averaged over
# heads) over the four patches of the slot(s) the word describes (`ds.word_slots`). If
# attention ignored the digits' positions, a one-slot word would put about 1/3 of its
# weight there and a teen (two slots) about 2/3.

# %%
ok = [i for i in range(len(refs)) if preds[i] == refs[i]]
with torch.no_grad():
    w_all = model.cross_attention_weights(test.images[ok], generated_inputs(out[ok]))


def slot_mass(w):
    """(..., N) weights over the 2 x 6 grid -> (..., 3) mass per digit slot."""
    return w.reshape(*w.shape[:-1], gh, 3, 2).sum((-3, -1))


def kind_of(word, position, n):
    if word == "hundred":
        return "'hundred'"
    if position == 0 and n >= 100:
        return "hundreds digit word"
    if word in ds.TENS:
        return "tens word (twenty..ninety)"
    if word in ds.ONES[10:]:
        return "teen / ten"
    return "units word"


summary, spread = {}, {}  # mass on the word's own slot(s); mean mass on each slot
for layer, w in enumerate(w_all):
    mass = slot_mass(w.mean(1))  # (B, L, 3): per generated position, per slot
    on_slot, per_slot = defaultdict(list), defaultdict(list)
    for b, i in enumerate(ok):
        n = int(test.numbers[i])
        for t, (word, slots) in enumerate(zip(refs[i].split(), ds.word_slots(n))):
            on_slot[kind_of(word, t, n)].append(mass[b, t, list(slots)].sum().item())
            per_slot[kind_of(word, t, n)].append(mass[b, t])
    summary[layer] = {k: sum(v) / len(v) for k, v in on_slot.items()}
    spread[layer] = {k: torch.stack(v).mean(0) for k, v in per_slot.items()}
    counts = {k: len(v) for k, v in on_slot.items()}
kinds = [
    "hundreds digit word",
    "'hundred'",
    "tens word (twenty..ninety)",
    "teen / ten",
    "units word",
]
print(f"{'':<28} {'':>6} | {'layer 1':^26} | {'layer 2':^26}")
print(
    f"{'word kind':<28} {'count':>6} | {'own':>5} {'slot0':>6} {'slot1':>6} {'slot2':>6} |"
    f" {'own':>5} {'slot0':>6} {'slot1':>6} {'slot2':>6}"
)
for k in kinds:
    cells = [
        f"{summary[l][k]:5.2f} " + " ".join(f"{x:6.2f}" for x in spread[l][k].tolist())
        for l in (0, 1)
    ]
    print(f"{k:<28} {counts[k]:>6} | {cells[0]} | {cells[1]}")
chance = {k: 2 / 3 if k == "teen / ten" else 1 / 3 for k in kinds}  # position ignored
digit_kinds = ["hundreds digit word", "tens word (twenty..ninety)", "units word"]
below_chance = {l: [k for k in digit_kinds if summary[l][k] < chance[k]] for l in (0, 1)}
print("digit words with less than chance (1/3) on their own slot:", below_chance)
assert all(below_chance[l] for l in (0, 1)), (
    "claim no longer holds: 'in each layer, some kind of digit word puts less than 1/3 of "
    f"its attention on its own slot' ({below_chance})"
)
# the hundreds digit word is written at the <bos> step: no earlier step to inherit from
assert max(summary[l]["hundreds digit word"] for l in (0, 1)) < 0.2, (
    "claim no longer holds: 'the hundreds digit word puts under 0.2 on slot 0 in both layers'"
)
for key, kind in (("teen", "teen / ten"), ("tens", "tens word (twenty..ninety)"),
                  ("hundreds_digit", "hundreds digit word"), ("units", "units word"),
                  ("hundred", "'hundred'")):  # fmt: skip
    for layer in (0, 1):
        glue(f"ch10_mass_{key}_l{layer + 1}", summary[layer][kind], display=False)

# %% [markdown]
# Reading the table: the maps do **not** simply mark the digit that each word describes.
# The share of attention on the word's own slot, first and second layer, against 1/3 for
# attention that ignored position:
#
# | word kind | own slot(s) | layer 1 | layer 2 | chance |
# |---|---|---|---|---|
# | hundreds digit word | 0 | {glue:text}`ch10_mass_hundreds_digit_l1:.2f` | {glue:text}`ch10_mass_hundreds_digit_l2:.2f` | 0.33 |
# | tens word | 1 | {glue:text}`ch10_mass_tens_l1:.2f` | {glue:text}`ch10_mass_tens_l2:.2f` | 0.33 |
# | units word | 2 | {glue:text}`ch10_mass_units_l1:.2f` | {glue:text}`ch10_mass_units_l2:.2f` | 0.33 |
# | teen / ten | 1 and 2 | {glue:text}`ch10_mass_teen_l1:.2f` | {glue:text}`ch10_mass_teen_l2:.2f` | 0.67 |
# | "hundred" | 0 | {glue:text}`ch10_mass_hundred_l1:.2f` | {glue:text}`ch10_mass_hundred_l2:.2f` | 0.33 |
#
# In each layer at least one kind of digit word puts *less* of its attention on its own
# slot than attention that ignored position would (asserted; in the run shown in the
# table, all three kinds do, in both layers), and yet the model reads every slot right at
# least {glue:text}`ch10_slot_acc_min:.1%` of the time. So at the step that writes such a
# word, most of the cross-attention lands on patches of *other* slots: the map shows where
# the decoder reads, and that is not where the digit is drawn.
#
# How does the right digit come out, then? The architecture leaves two routes, and either
# one breaks the picture "a word looks at its digit". First, a patch state is not the
# pixels of its patch: the ViT's two self-attention layers have already mixed information
# between the patches (the warning of section {ref}`ch10-cross-attention`), so a digit can
# be read from a state at another position. Second, a word is not decided by the
# cross-attention of its own step alone: through its causal self-attention, the step also
# receives what the earlier steps read from the image, and the decoder has two layers of
# each. For one kind of word the second route is closed: the hundreds digit word is
# written at the first step, from `<bos>`, with no earlier step to inherit from, and it
# puts under 0.2 of its attention on slot 0 in both layers (asserted). Yet the hundreds
# slot is read right {glue:text}`ch10_slot_acc_hundreds:.1%` of the time, so its digit
# must come mostly from the patch states of slots 1 and 2: the first route, unless the
# small weight on slot 0 meets an unusually large value vector (a weight is not a
# contribution; chapter 13). For the other words this chapter does not separate the two
# routes; that would take a probe of the patch states or an intervention on the weights. The intuition "forty should look at the
# middle digit" is reasonable, and only a measurement tells whether a given model does.
# (Chapter 13 measures the same gap between attention weights and the tokens that decide
# a prediction, and one remedy: following the mixing back through the layers.)

# %% [markdown]
# ### Checking the weights against the equations
#
# The weights above come from the module; do they follow the cross-attention formula of
# section {ref}`ch10-cross-attention`? We recompute the first decoder layer's weights
# from its parts: the word embeddings and positions, the causal self-attention sublayer,
# the LayerNorm before the cross-attention, and the query and key projections.

# %%
layer = model.decoder.layers[0]
ca = layer.cross_attn
images, tgt = test.images[:16], generated_inputs(out[:16])
with torch.no_grad():
    M = model.encode(images)  # (B, N, d)
    Z = model.tok_embed(tgt) * math.sqrt(model.d_model) + model.pos.emb.weight[: tgt.shape[1]]
    Z = Z + layer.self_attn(layer.norm1(Z), is_causal=True)[0]  # residual + causal self-attn
    H, D = ca.num_heads, model.d_model // ca.num_heads
    Q = ca.q_proj(layer.norm2(Z)).unflatten(-1, (H, D)).transpose(1, 2)  # (B, H, T, D)
    K = ca.k_proj(M).unflatten(-1, (H, D)).transpose(1, 2)  # (B, H, N, D)
    A = torch.softmax(Q @ K.transpose(-2, -1) / math.sqrt(D), dim=-1)  # (B, H, T, N)
    from_module = model.cross_attention_weights(images, tgt)[0]
print("max |by hand - module|:", (A - from_module).abs().max().item())
print("rows sum to 1 over the 12 patches:", torch.allclose(from_module.sum(-1), torch.ones(())))
assert torch.allclose(A, from_module, atol=1e-5), (
    "expected the weights recomputed by hand to equal the module's; max difference "
    f"{(A - from_module).abs().max().item():.3g}"
)
assert torch.allclose(from_module.sum(-1), torch.ones(()), atol=1e-5), (
    "expected each row of cross-attention weights to sum to 1; largest deviation "
    f"{(from_module.sum(-1) - 1).abs().max().item():.3g}"
)

# %% [markdown]
# (ch10-seed)=
# ## What the seed says about multimodal attention
#
# The seed's trend section (its second trend, and its example) predicts "multimodal
# self-attention" (多模态自注意力): self-attention extended to images, sound and text for
# cross-modal understanding, and, in image captioning, self-attention that "considers the
# visual information of the image and the linguistic information of the text at the same
# time".
#
# - **Right:** attention is the common tool of multimodal models, and the trend it
#   predicts has happened: ViT-style image encoders {cite:p}`dosovitskiy2021image`,
#   captioning and question answering (BLIP {cite:p}`li2022blip`), few-shot
#   vision-language models (Flamingo {cite:p}`alayrac2022flamingo`) and joint
#   image-text embeddings (CLIP {cite:p}`radford2021learning`) are all built from
#   Transformers.
#
# ```{admonition} Seed erratum E11 · 发展趋势 (lines 141, 149)
# :class: seed-erratum
# The seed says: 「在图像描述生成任务中，自注意力机制可以同时考虑图像中的视觉信息和文本中的语言信息」
# **Correction:** "self-attention" names one of three designs: many captioning models
# join the modalities with cross-attention (queries from the words, keys and values from
# the image), others run self-attention over concatenated image and text tokens, where
# the mask decides who sees whom (under a decoder's causal mask the image cannot see the
# text), and CLIP has no attention between them. Entry: {ref}`E11 <errata-e11>`; evidence:
# {ref}`ch10-designs`.
# ```
#
# In this chapter's model cross-attention is the only path from the image to the words
# (the test `test_each_patch_reaches_the_text` checks that every patch reaches them), the
# image is encoded once without seeing the text, and its keys and values are computed once
# and cached for all words (the static cross-attention cache of chapter 3). The maps of
# {ref}`ch10-maps` show that cross-attention weights are not self-explaining either: some
# kinds of words put most of their attention on patches of other slots than the digit
# they name. The seed gives no evidence for its prediction; measurements such as this
# chapter's exact match and per-slot attention mass are the kind of evidence such claims
# need.

# %% [markdown]
# ## Key takeaways
#
# - A multimodal model lets one modality attend to another. Three designs:
#   **cross-attention** (text queries, image keys and values: captioning since Show,
#   Attend and Tell, Flamingo, BLIP), **self-attention over concatenated tokens** (one
#   stream), and **contrastive alignment** without attention between the modalities
#   (CLIP). Cross-attention is a block of joint self-attention, checked in code.
# - Cross-attention: $A = \mathrm{softmax}\big((Z W_Q)(M W_K)^\top / \sqrt D\big)$,
#   $T \times N$ per head, each row a distribution over the image patches; with patch
#   states as memory it can be folded back onto the image.
# - `ImageToText` = ViT encoder (patch states, class token dropped) + pre-LN Transformer
#   decoder with tied output. Trained with teacher forcing for {glue:text}`ch10_steps`
#   steps, it reads {glue:text}`ch10_exact:.1%` of the strips of unseen handwriting
#   exactly; its errors are misread digits, and the rare teens are its hardest words.
# - The maps do not mark the digit each word describes: in each layer some kind of digit
#   word puts less than chance on its own slot, yet the digits are read right. The
#   encoder's self-attention (which mixes the patches) and the decoder's (which passes on
#   what earlier steps read) both allow that; which one the model uses was not measured.
#   Attention maps are evidence to be measured, not pictures to be trusted.

# %% [markdown]
# ## Exercises
#
# The exercises for this chapter are in `exercises/10_multimodal_attention.ipynb`. You will
# write
#
# 1. `number_to_words`: the targets of the task;
# 2. `compose_strip`: a right-aligned strip from two or three digit images;
# 3. `cross_attention_by_hand`: the weights and output of one cross-attention step from
#    a module's projections;
# 4. `slot_attention_mass`: the attention mass on each digit slot;
# 5. `exact_match`: whole-string accuracy of generated ids.
#
# Grade your work with `python -m attnkit.grade 10`.

# %% [markdown]
# (ch10-interview)=
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
# *This chapter answers the multimodal trend (多模态自注意力);
# {doc}`chapter 7 <07_approximate_attention>` answers efficiency,
# {doc}`chapter 13 <13_interpretability>` interpretability,
# {doc}`chapter 14 <14_hardware_acceleration>` hardware,
# {doc}`chapter 15 <15_scaling_out>` scale and {doc}`chapter 16 <16_adaptive_attention>`
# adaptive attention.*
#
# **Model answer.** The source text names five trends: more efficient attention,
# multimodal attention, interpretability, adaptive attention and hardware acceleration. On
# multimodality, be precise about the mechanism, because "self-attention over images and
# text" hides three designs ({ref}`ch10-designs`). In captioning and many vision-language
# models the text reads the image through **cross-attention**: queries from the words,
# keys and values from the image patches (Show, Attend and Tell, Flamingo, BLIP). The
# alternative puts image tokens and text tokens into one sequence under ordinary
# self-attention; cross-attention is in fact one block of that joint attention, which the
# chapter checks in code. CLIP has no attention between the modalities at all: two
# encoders aligned contrastively, ideal for retrieval and zero-shot classification but
# unable to generate a caption. The trade-off: cross-attention encodes the image once and
# caches its keys and values for every word, while a single stream pays for $N + T$
# tokens in every layer and lets the mask decide the direction: under the causal mask of
# a decoder-only (LLaVA-style) model the image prefix cannot attend to the text after it,
# and image and text attend to each other both ways only with a full or prefix-LM mask
# ({ref}`ch10-designs`, {ref}`the mask check <ch10-prefix-lm>`). And attention maps must
# be measured, not trusted: in the chapter's digits-to-words model, which reads each
# digit right at least 93% of the time, some kinds of digit words put less than chance of
# their cross-attention on their own digit. A patch state is not its patch's pixels once the ViT encoder's
# self-attention has mixed them, and a word's step also inherits, through the decoder's
# self-attention, what earlier steps read; a map shows where a step reads, not where the
# evidence is drawn ({ref}`ch10-maps`).
# ```

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
# # Text generation with a decoder-only Transformer
#
# Chapter 3 assembled attention, feed-forward layers, residual connections and layer
# norms into a Transformer. This chapter puts one to work on the task that made
# Transformers famous outside research: **writing text**. A GPT-style model
# {cite:p}`radford2018improving,radford2019language` is nothing but a stack of *causal*
# self-attention blocks trained to predict the next token; everything it writes, it
# writes one token at a time from that prediction.
#
# We train a small character-level model on real English prose, in
# {glue:text}`ch04_steps` optimisation steps on one CPU thread (they took
# {glue:text}`ch04_train_seconds:.0f` seconds on the machine that built this page), and
# look at it from every side. By the end you should be able to
#
# - write a language model's probability with the chain rule and explain why a causal
#   mask lets **one** forward pass compute every conditional $p(x_t \mid x_{<t})$;
# - define perplexity and bits per character, relate them to the cross-entropy loss, and
#   measure them fairly against unigram and bigram baselines;
# - turn next-token probabilities into text with greedy decoding, temperature, top-k and
#   top-p sampling, and say why greedy decoding repeats itself;
# - explain the key/value cache, derive what it saves, and measure it.
#
# The seed text lists text generation (文本生成) among the applications of self-attention
# in a single sentence. At the end we check what that sentence, and the seed's other
# remarks that bear on generation, get right and what they leave out, with evidence from
# the model trained here.
#
# All code uses the companion package `attnkit` (imported as `ak`); plain `torch` appears
# only to *check* that the library does what the mathematics says, and in a few lines of
# evaluation glue (counting characters for the baselines).

# %%
import math
import re
import sys

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from myst_nb import glue

import attnkit as ak
from attnkit.bench import time_in_turns
from attnkit.data import CharTokenizer, stdlib_docstrings, train_val_split

torch.manual_seed(0)
# One thread: the book runs its chapters side by side, one thread each, so every number
# below is the same on any machine, however many cores it has and however busy it is
# (timings aside).
torch.set_num_threads(1)
torch.set_printoptions(precision=4, sci_mode=False)
plt.rcParams.update({"figure.dpi": 100, "axes.grid": False})
print("torch", torch.__version__, "| attnkit", ak.__version__)

# %% [markdown]
# (ch04-lm)=
# ## Language models: predicting the next token
#
# ### The chain rule
#
# A **language model** assigns a probability to every sequence of tokens
# $x = (x_1, \dots, x_T)$. Any joint distribution can be factorised, exactly and without
# assumptions, by the chain rule of probability:
#
# $$
# p(x_1, \dots, x_T) = \prod_{t=1}^{T} p(x_t \mid x_1, \dots, x_{t-1})
# = \prod_{t=1}^{T} p(x_t \mid x_{<t}) .
# $$
#
# So a model that can answer one question, *"given the text so far, how likely is each
# possible next token?"*, defines the probability of whole texts, and it can also
# **write**: draw $x_1$, then $x_2$ given $x_1$, and so on. Models built this way are called
# *autoregressive*. Here the tokens are single characters, so the model spells.
#
# Training maximises the log-likelihood of a training text, i.e. minimises the average
# negative log-likelihood per token, which is the **cross-entropy** between the text and
# the model's predictions:
#
# $$
# \mathcal{L}(\theta) = -\frac{1}{T} \sum_{t=1}^{T} \log p_\theta(x_t \mid x_{<t}) .
# $$
#
# ### Decoder-only Transformers
#
# GPT {cite:p}`radford2018improving` and GPT-2 {cite:p}`radford2019language` model
# $p(x_t \mid x_{<t})$ with the *decoder* of the Transformer {cite:p}`vaswani2017attention`
# stripped of its cross-attention: there is no encoder, only a stack of blocks, each with
# **causally masked** self-attention followed by a feed-forward network. The input is the
# text shifted by one position: the token at position $t$ goes in, and the logits that come
# out at position $t$ are the prediction for the token at $t + 1$.
#
# The causal mask (chapter 1) lets position $t$ attend to positions $\le t$ only. That has
# two consequences, and the whole chapter rests on them:
#
# 1. **Training is parallel.** For a training text, all $T$ predictions
#    $p(x_{t+1} \mid x_{\le t})$ come out of *one* forward pass, since none of them can see
#    the token it is asked to predict. Feeding the true previous tokens rather than the
#    model's own guesses is called *teacher forcing*.
# 2. **Generation is sequential.** When the model writes, $x_{t+1}$ does not exist until
#    it has been sampled from the prediction at position $t$: one forward pass per new
#    token. The key/value cache at the end of the chapter makes each of those passes cheap.
#
# ### Perplexity and bits per character
#
# The loss $\mathcal{L}$, in nats per token, is the natural measure of a language model;
# two transformations of it are easier to read:
#
# $$
# \mathrm{PPL} = \exp(\mathcal{L}), \qquad
# \text{bits per character} = \frac{\mathcal{L}}{\ln 2} = \log_2 \mathrm{PPL} .
# $$
#
# - **Perplexity** is an effective number of choices. A model that spreads its probability
#   uniformly over $V$ characters has $\mathcal{L} = \ln V$ and $\mathrm{PPL} = V$; a
#   perplexity of 5 means the model is, on average, as uncertain as a fair choice among 5
#   characters. Lower is better, and 1 would be perfect prediction.
# - **Bits per character** is the length of the text compressed with the model: an
#   arithmetic coder driven by the model's probabilities needs about
#   $-\log_2 p(x_t \mid x_{<t})$ bits for character $x_t$, so $\mathcal{L} / \ln 2$ bits
#   per character on average, against the 7 bits of the ASCII code (stored, as usual, in
#   8-bit bytes).
#
# The numbers of two models can only be compared if they are averages over the same
# characters, so below every model scores exactly the same target characters.

# %% [markdown]
# (ch04-data)=
# ## The data: docstrings of the Python standard library
#
# We need real English prose that every reader has offline. Python ships with one: the
# **docstrings** of its standard library. `ak.data.stdlib_docstrings` walks the installed
# standard-library sources, parses every file with the `ast` module, and joins the module,
# class and function docstrings (keeping printable ASCII; test packages and a few others are
# skipped). The text depends only on the Python installation.

# %%
text = stdlib_docstrings()
train_text, val_text = train_val_split(text, 0.1)
tok = CharTokenizer([train_text])
V = len(tok)
train_ids = torch.tensor(tok.encode(train_text))
val_ids = torch.tensor(tok.encode(val_text))

print("Python", sys.version.split()[0])
print(
    f"text: {len(text):,} characters | train: {len(train_text):,} | validation: {len(val_text):,}"
)
print(f"vocabulary: {V} ids = 4 special tokens + {len(tok.chars)} characters")
print(
    "characters of the validation text missing from the vocabulary:", set(val_text) - set(tok.chars)
)
assert not set(val_text) - set(tok.chars), "claim no longer holds: 'no unknown token is needed'"
assert V == 100, f"claim no longer holds: 'perplexity close to V = 100' (measured V = {V})"
print("\n--- the first 420 characters ---")
print(text[:420])

# %% [markdown]
# It is technical English, with a lot of code-like structure (indentation, parentheses,
# identifiers), which a character model must learn too. `train_val_split` cuts the text at
# a blank line so that the **validation text is the last tenth, a contiguous block of whole
# docstrings** that the model never sees during training, rather than characters scattered
# through the training text. Every validation character is in the vocabulary, so no
# unknown token is needed. The validation text starts like this:

# %%
print(val_text[:300])

# %% [markdown]
# (ch04-bpe)=
# ### Characters or sub-words? A byte-pair tokenizer on the same text
#
# A character vocabulary is tiny and never meets an unknown token, but it makes sequences
# long: every character is a position that attention has to pay for. Real language models
# use **sub-word** tokens. Byte-pair encoding (BPE) {cite:p}`sennrich2016neural` starts
# from single symbols and repeatedly merges the most frequent adjacent pair into a new
# symbol, until the vocabulary has the size asked for; a new text is split by replaying
# the merges in the order they were learned. GPT-2 {cite:p}`radford2019language` runs it
# on bytes, so that any string can be encoded. We train such a byte-level BPE with Hugging
# Face's `tokenizers` library (not a copy written here) on the training text, with a
# vocabulary of 1,024 (256 bytes and 768 merges) and of 4,096, and compare the length of
# the validation text in tokens with its length in characters.

# %%
import json
import os

os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one thread, as everywhere in the book
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers


def train_bpe(text: str, vocab_size: int) -> Tokenizer:
    """A byte-level BPE tokenizer (GPT-2 style) trained on ``text`` by ``tokenizers``."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)  # words, then bytes
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes
        show_progress=False,
    )
    bpe.train_from_iterator([text], trainer=trainer)
    return bpe


bpes = {vocab_size_bpe: train_bpe(train_text, vocab_size_bpe) for vocab_size_bpe in (1024, 4096)}
bpe_sample = "Return the number of items in the container."
chars_per_token = {}
for vocab_size_bpe, bpe in bpes.items():
    bpe_ids = bpe.encode(val_text).ids
    chars_per_token[vocab_size_bpe] = len(val_text) / len(bpe_ids)
    round_trip = bpe.decode(bpe_ids) == val_text
    print(
        f"vocabulary {bpe.get_vocab_size():5,}: validation text {len(val_text):,} characters ->"
        f" {len(bpe_ids):,} tokens ({chars_per_token[vocab_size_bpe]:.2f} characters per token);"
        f" decode(encode(text)) == text: {round_trip}"
    )
    assert bpe.get_vocab_size() == vocab_size_bpe and round_trip, (
        f"claim no longer holds: 'vocabulary {vocab_size_bpe}, and decoding gives the text back'"
    )
merges = json.loads(bpes[1024].to_str())["model"]["merges"]  # in the order learned
first_ten = [a + b for a, b in merges[:10]]
print("first ten merges:", first_ten)
print("the sample in 1,024-token BPE:", bpes[1024].encode(bpe_sample).tokens)
print("the sample in 4,096-token BPE:", bpes[4096].encode(bpe_sample).tokens)
print(f"the sample in characters: {len(tok.encode(bpe_sample))} tokens")
assert 2 < chars_per_token[1024] < chars_per_token[4096], (
    "claim no longer holds: 'more than two characters per token, more with a larger vocabulary' "
    f"(measured {chars_per_token})"
)
assert {"ĠĠ", "Ġthe"} <= set(first_ten) and "Ġcontainer" in bpes[4096].encode(bpe_sample).tokens, (
    "claim no longer holds: 'early merges: two spaces and \"the\"; whole words with 4,096 tokens'"
)
glue("ch04_bpe_cpt_1k", chars_per_token[1024], display=False)
glue("ch04_bpe_cpt_4k", chars_per_token[4096], display=False)

# %% [markdown]
# The first merges join a space to a following letter, two spaces (the indentation of the
# docstrings) and frequent English pieces such as "the" ("Ġ" is how the byte-level
# alphabet shows a space); with 4,096 tokens whole words are single tokens. With 1,024
# tokens the validation text is {glue:text}`ch04_bpe_cpt_1k:.2f` characters per token,
# with 4,096 tokens
# {glue:text}`ch04_bpe_cpt_4k:.2f`: at the same context length in *tokens*, the model sees
# that many times more text, and attention's $n^2$ cost falls by the square of the ratio,
# against a larger embedding table and output layer ($V \times d$ each). This chapter keeps
# characters, because with 100 symbols every model fits in a few minutes of CPU and the
# baselines (unigram, bigram) are exact. WordPiece (BERT's tokenizer, chapter 8) is the
# same idea with word-internal pieces marked `##`; GNMT's word-piece model chooses merges
# by the gain in language-model likelihood rather than by pair frequency
# {cite:p}`wu2016google`.

# %% [markdown]
# ### Training batches and evaluation windows
#
# The model reads windows of 128 characters. A training batch is {glue:text}`ch04_batch`
# windows of 129 characters whose start positions are drawn uniformly from the training text: the first
# 128 characters are the input and the last 128, shifted by one, are the targets. The
# generator below yields such batches forever, from its own seeded random generator.


# %%
BATCH = 32  # windows per training batch


def train_batches(ids, batch_size=BATCH, window=129, seed=0):
    """Endless batches (batch_size, window) of contiguous windows drawn uniformly from ids."""
    gen = torch.Generator().manual_seed(seed)
    offsets = torch.arange(window)  # (window,)
    while True:
        starts = torch.randint(0, len(ids) - window + 1, (batch_size,), generator=gen)
        yield ids[starts[:, None] + offsets]  # (batch_size, window)


batches = train_batches(train_ids)
print("one training batch:", tuple(next(train_batches(train_ids)).shape))
glue("ch04_batch", BATCH, display=False)

# %% [markdown]
# For evaluation we fix **one** set of target characters, used for every model in this
# chapter: the validation text is cut into non-overlapping windows, window $i$ has input
# characters $128i, \dots, 128i + 127$ and targets $128i + 1, \dots, 128i + 128$. Each
# target character is scored exactly once, by every model (the few characters at the end
# that do not fill a window are left out). Within a window the Transformer sees between 1
# and 128 characters of context.

# %%
n_windows = (len(val_ids) - 1) // 128
val_inputs = val_ids[: n_windows * 128].view(n_windows, 128)  # (n_windows, 128)
val_targets = val_ids[1 : n_windows * 128 + 1].view(n_windows, 128)  # the next characters
print(f"{n_windows} windows, {val_targets.numel():,} target characters")
print("validation characters left out at the end:", len(val_ids) - 1 - val_targets.numel())
print("targets are the inputs shifted by one:", torch.equal(val_inputs[:, 1:], val_targets[:, :-1]))
assert torch.equal(val_inputs[:, 1:], val_targets[:, :-1]), (
    "claim no longer holds: 'targets 128i + 1 .. 128i + 128', the inputs shifted by one"
)

# %% [markdown]
# (ch04-baselines)=
# ## Baselines: unigram and bigram models
#
# Before training anything we need to know what "good" means. Two classical models, fitted
# by counting characters in the training text:
#
# - **Unigram**: ignore the context, $p(x_t \mid x_{<t}) = p(x_t)$, the frequency of each
#   character, with add-one smoothing so that no character gets probability 0:
#   $p(c) = \frac{n(c) + 1}{N + V}$.
# - **Bigram**: use the previous character only,
#   $p(x_t \mid x_{<t}) = p(x_t \mid x_{t-1}) = \frac{n(x_{t-1}, x_t) + \alpha}{n(x_{t-1}) + \alpha V}$,
#   with add-$\alpha$ smoothing, $\alpha = 0.1$. Its table has $V^2$ entries.
#
# Both are scored on exactly the target characters defined above. For the bigram the
# "previous character" of target $t$ is input $t$, which is the true previous character
# even for the first target of a window. (Exercise 2 asks you to write the bigram table.)

# %%
unigram_counts = torch.bincount(train_ids, minlength=V).double() + 1.0  # add-one
log_p_unigram = torch.log(unigram_counts / unigram_counts.sum())  # (V,)

alpha = 0.1
pairs = train_ids[:-1] * V + train_ids[1:]  # one index per (previous, next) pair
bigram_counts = torch.bincount(pairs, minlength=V * V).double().view(V, V) + alpha
log_p_bigram = torch.log(bigram_counts / bigram_counts.sum(dim=1, keepdim=True))  # (V, V)

nll = {  # negative log-likelihood of every target character, (n_windows, 128), in nats
    "unigram": -log_p_unigram[val_targets],
    "bigram": -log_p_bigram[val_inputs, val_targets],
}
for name, values in nll.items():
    loss = values.mean().item()
    print(
        f"{name:>8}: cross-entropy {loss:.4f} nats | perplexity {math.exp(loss):6.2f}"
        f" | {loss / math.log(2):.3f} bits/char"
    )
print(f"uniform over the {V} ids: perplexity {V} | {math.log2(V):.3f} bits/char")
ppl_unigram, ppl_bigram = (math.exp(nll[name].mean().item()) for name in ("unigram", "bigram"))
glue("ch04_unigram_vs_uniform", ppl_unigram / V, display=False)
glue("ch04_bigram_vs_unigram", ppl_bigram / ppl_unigram, display=False)
glue("ch04_bigram_entries", V * V, display=False)
assert 0.2 < ppl_unigram / V < 0.3, (
    "claim no longer holds: 'about a quarter of the uniform model's' "
    f"(measured {ppl_unigram / V:.3g})"
)
assert 0.4 < ppl_bigram / ppl_unigram < 0.6, (
    f"claim no longer holds: 'roughly halves it again' (measured {ppl_bigram / ppl_unigram:.3g})"
)
letters = torch.tensor([tok.encode(c)[0] for c in "abcdefghijklmnopqrstuvwxyz"])
after_q = tok.vocab[int(log_p_bigram[tok.encode("q")[0]].argmax())]
after_space = tok.vocab[int(log_p_bigram[tok.encode(" ")[0]].argmax())]
letter_after_space = tok.vocab[int(letters[log_p_bigram[tok.encode(" ")[0], letters].argmax()])]
print(f"the bigram's most likely character after 'q': {after_q!r}; after a space: {after_space!r}")
print(f"its most likely lower-case letter after a space: {letter_after_space!r}")
assert (after_q, after_space, letter_after_space) == ("u", " ", "t"), (
    "claim no longer holds: 'q -> u; space -> space, or among letters t'"
)

# %% [markdown]
# Knowing the character frequencies cuts the perplexity to about a quarter of the uniform
# model's ({glue:text}`ch04_unigram_vs_uniform:.2f` times it); knowing the previous
# character roughly halves it again ({glue:text}`ch04_bigram_vs_unigram:.2f` times the
# unigram's). The bigram's table, with {glue:text}`ch04_bigram_entries:,` entries, knows
# that "q" is followed by "u", that a space is most often followed by another space (the
# docstrings are indented) and, among the letters, by "t", but nothing about words. Anything that uses more context should do better.

# %% [markdown]
# (ch04-model)=
# ## A decoder-only Transformer
#
# ### The model
#
# `ak.TransformerLM` is a GPT-2-style decoder-only model: chapter 3's decoder without the
# cross-attention (there is no encoder to attend to). It has token embeddings
# plus learned position embeddings, a stack of pre-LN blocks (causal multi-head
# self-attention, then a GELU feed-forward network, each in a residual branch), a final
# layer norm and a linear read-out to $V$ logits, whose matrix is tied to the token
# embedding. Ours has {glue:text}`ch04_layers` layers of width 128 with 4 heads
# (feed-forward width 512), a context of 128 characters, and
# {glue:text}`ch04_params:,` parameters.
# `ak.set_fused_attention` switches its attention layers to PyTorch's fused kernel, which
# computes the same function faster.

# %%
LAYERS = 2  # Transformer blocks
ak.seed_everything(0)
model = ak.TransformerLM(
    V,
    d_model=128,
    num_heads=4,
    num_layers=LAYERS,
    d_ff=512,
    dropout=0.0,
    max_len=128,
    positional="learned",
)
ak.set_fused_attention(model)
print(f"parameters: {ak.count_parameters(model):,}")
print("read-out tied to the token embedding:", model.lm_head.weight is model.tok_embed.weight)
glue("ch04_layers", LAYERS, display=False)
glue("ch04_params", ak.count_parameters(model), display=False)

# %% [markdown]
# ### One forward pass, every conditional
#
# Two checks, on the untrained model (the property is structural, it does not come from
# training). First, **causality**: if we change the characters from position 64 on, the
# logits at positions 0 to 63 must not move, while later ones do. Second, **one pass
# computes every conditional**: the logits at position $t$ of a full forward pass must equal
# the last logits of a pass over the prefix $x_{\le t}$ alone, which is how the model will
# be used when it generates.

# %%
model.eval()
x = val_inputs[:1]  # (1, 128), one validation window
x_changed = x.clone()
x_changed[0, 64:] = torch.randint(4, V, (64,), generator=torch.Generator().manual_seed(0))
with torch.no_grad():
    logits = model(x)  # (1, 128, V)
    logits_changed = model(x_changed)
    change = (logits - logits_changed).abs().amax(dim=-1)[0]  # (128,) per position
    print("positions 0..63 unchanged (to 1e-6):", bool(change[:64].max() < 1e-6))
    print("every position 64..127 changed by more than 1e-3:", bool(change[64:].min() > 1e-3))
    same = [
        torch.allclose(model(x[:, : t + 1])[0, -1], logits[0, t], atol=1e-5)
        for t in (0, 9, 63, 127)
    ]
    print("full pass at t == pass over the prefix x[:t+1], t = 0, 9, 63, 127:", same)
assert change[:64].max() < 1e-6 and change[64:].min() > 1e-3, "claim no longer holds: causality"
assert all(same), "claim no longer holds: 'one pass computes every conditional'"

# %% [markdown]
# `model.loss(batch)` is the training loss: it feeds characters $0..127$ of each window
# and takes the cross-entropy of the logits against characters $1..128$. Written out with
# plain PyTorch:

# %%
batch = next(train_batches(train_ids))  # (32, 129)
with torch.no_grad():
    explicit = F.cross_entropy(model(batch[:, :-1]).flatten(0, 1), batch[:, 1:].flatten())
    print(
        "model.loss == explicit next-character cross-entropy:",
        torch.allclose(model.loss(batch), explicit),
    )
    assert torch.allclose(model.loss(batch), explicit), (
        f"expected model.loss == {explicit.item():.6g}, found {model.loss(batch).item():.6g}"
    )

# %% [markdown]
# ### Before training
#
# With small random weights the logits are nearly equal, so an untrained model should be
# close to uniform: perplexity close to $V = 100$. During training we monitor the loss on a
# fixed subset of 32 validation windows, spread over the validation text; that is cheap
# enough to run every 200 steps. (The final comparison uses all windows.)

# %%
eval_windows = torch.linspace(0, n_windows - 1, 32).long()  # 32 windows across the text


def evaluate(model):
    """Validation cross-entropy (nats) on 32 fixed windows; called by ak.train."""
    logits = model(val_inputs[eval_windows])  # (32, 128, V)
    loss = F.cross_entropy(logits.flatten(0, 1), val_targets[eval_windows].flatten())
    return {"val_loss": loss.item()}


with torch.no_grad():
    untrained = evaluate(model)["val_loss"]
print(
    f"untrained: loss {untrained:.3f} nats (ln V = {math.log(V):.3f}), perplexity {math.exp(untrained):.1f}"
)
assert abs(math.exp(untrained) / V - 1) < 0.2, (
    f"claim no longer holds: 'perplexity close to V = 100' (measured {math.exp(untrained):.3g})"
)

# %% [markdown]
# ### Training
#
# `ak.train` runs AdamW {cite:p}`loshchilov2019decoupled` (weight decay 0.01, on the
# matrices only) with a peak learning rate of $2 \times 10^{-3}$, reached after 100 steps of
# linear warm-up and followed by a cosine decay to 0 at the last step, clipping gradients
# at norm 1. {glue:text}`ch04_steps` steps of {glue:text}`ch04_batch` windows predict
# {glue:text}`ch04_chars_m:.1f` million characters, about {glue:text}`ch04_passes:.1f`
# passes over the training text. The run is defined by its steps, its data and its seed,
# not by the clock: it always makes all its steps, so the model, and every number below,
# is the same on a fast machine and on a slow one (with the same PyTorch, CPU type and
# one thread).


# %%
def loss_fn(model, batch):
    return model.loss(batch)  # next-character cross-entropy, nats


STEPS = 700
config = ak.TrainConfig(steps=STEPS, lr=2e-3, warmup_steps=100, eval_every=200, progress=False)
result = ak.train(model, loss_fn, batches, config, evaluate=evaluate)
assert result.steps_done == STEPS, (  # a run is never shortened: it completes or raises
    f"expected {STEPS} steps, found {result.steps_done}"
)
glue("ch04_steps", STEPS, display=False)
glue("ch04_chars_m", STEPS * BATCH * 128 / 1e6, display=False)
glue("ch04_passes", STEPS * BATCH * 128 / len(train_ids), display=False)
glue("ch04_train_seconds", result.seconds, display=False)
model.eval()
print(" step | train loss | val loss (32 windows) | val perplexity")
for h in result.history:
    print(
        f" {int(h['step']):4d} | {h['train_loss']:10.4f} | {h['val_loss']:20.4f} |"
        f" {math.exp(h['val_loss']):14.2f}"
    )

# %%
# NBVAL_IGNORE_OUTPUT
print(
    f"on this machine: trained {result.steps_done} steps in {result.seconds:.1f} s "
    f"({1000 * result.seconds / result.steps_done:.0f} ms per step)"
)

# %%
ax = result.plot()
ax.plot([0], [untrained], "x", color="C1", label="val_loss before training")
for name, style in (("unigram", ":"), ("bigram", "--")):
    ax.axhline(nll[name].mean().item(), color="gray", ls=style, lw=1, label=f"{name} (validation)")
ax.set_ylabel("cross-entropy (nats per character)")
ax.set_title(f"Training the character model ({result.steps_done} steps)")
ax.legend()
plt.show()

# %% tags=["remove-cell"]
# The claims of the caption below, checked on the logged history.
first_eval, last_eval = result.history[0], result.history[-1]
assert first_eval["val_loss"] < nll["bigram"].mean().item(), (
    f"claim no longer holds: 'below the bigram's level at step {first_eval['step']}' "
    f"(measured {first_eval['val_loss']:.3g})"
)
assert first_eval["train_loss"] > first_eval["val_loss"], (
    "claim no longer holds: 'its first point is higher' "
    f"(measured {first_eval['train_loss']:.3g} vs {first_eval['val_loss']:.3g})"
)
assert abs(last_eval["val_loss"] - last_eval["train_loss"]) < 0.15, (
    "claim no longer holds: 'the two stay close: not overfitting' "
    f"(measured gap {last_eval['val_loss'] - last_eval['train_loss']:.3g})"
)

# %% [markdown]
# *Figure: starting from the untrained model's loss (the cross at step 0, near $\ln V$),
# the validation loss on 32 windows is already below the bigram's level at step 200. The
# training loss is logged as the mean over each block of 200 steps, so its first point, which
# includes the untrained start, is higher. Afterwards the two fall together and stay close:
# with about {glue:text}`ch04_passes:.1f` passes over the data the model is not
# overfitting.*
#
# ### The comparison
#
# Now every model on every validation target. The Transformer's negative log-likelihoods
# come from one forward pass per batch of windows.

# %%
with torch.no_grad():
    nll["Transformer"] = torch.cat(
        [
            F.cross_entropy(model(xb).transpose(1, 2), yb, reduction="none")  # (B, 128)
            for xb, yb in zip(val_inputs.split(64), val_targets.split(64))
        ]
    ).double()  # (n_windows, 128)

sizes = {
    "unigram": f"{V} (table)",
    "bigram": f"{V * V:,} (table)",
    "Transformer": f"{ak.count_parameters(model):,}",
}
print(f"scored characters: {nll['Transformer'].numel():,} (the same for all three)")
print("model       | parameters       | val perplexity | bits/char")
for name in ("unigram", "bigram", "Transformer"):
    loss = nll[name].mean().item()
    print(f"{name:<11} | {sizes[name]:<16} | {math.exp(loss):14.2f} | {loss / math.log(2):9.3f}")
ppl_transformer = math.exp(nll["Transformer"].mean().item())
vs_bigram = ppl_transformer / ppl_bigram
bits_vs_bigram = nll["Transformer"].mean().item() / nll["bigram"].mean().item()
glue("ch04_ppl_transformer", ppl_transformer, display=False)
glue("ch04_ppl_bigram", ppl_bigram, display=False)
glue("ch04_ppl_vs_bigram", vs_bigram, display=False)
glue("ch04_bits_vs_bigram", bits_vs_bigram, display=False)
MARGIN = 0.5  # the claim: the Transformer's perplexity is below half the bigram's
glue("ch04_margin", MARGIN, display=False)
assert vs_bigram < MARGIN, (
    f"claim no longer holds: 'the Transformer's perplexity is below {MARGIN:.0%} of the "
    f"bigram's' (measured {ppl_transformer:.2f} vs {ppl_bigram:.2f}, ratio {vs_bigram:.2f})"
)

# %% [markdown]
# The table above is the headline: measured on the same characters, the Transformer's
# perplexity, {glue:text}`ch04_ppl_transformer:.2f`, is {glue:text}`ch04_ppl_vs_bigram:.0%`
# of the bigram's, {glue:text}`ch04_ppl_bigram:.2f`: below {glue:text}`ch04_margin:.0%`
# of it, the margin this chapter checks (its build fails if the margin is not met). In bits per character, it
# needs {glue:text}`ch04_bits_vs_bigram:.0%` of the bigram's. It is also far from what
# large models reach, of course: it is small, trained for {glue:text}`ch04_steps` steps on
# one CPU core, and sees at most 128 characters.
#
# ### How much context does the model use?
#
# Within a window, target $t$ has $t + 1$ characters of context (the first target sees one
# character, like a bigram; the last sees 128). Averaging the loss over windows at each
# position shows how much the extra context is worth.

# %%
per_position = {name: values.mean(dim=0) / math.log(2) for name, values in nll.items()}  # bits
context = np.arange(1, 129)
fig, ax = plt.subplots(figsize=(7, 4))
ax.plot(context, per_position["Transformer"].numpy(), label="Transformer")
ax.plot(context, per_position["bigram"].numpy(), label="bigram", alpha=0.8)
ax.axhline(per_position["unigram"].mean().item(), color="gray", ls=":", label="unigram")
ax.set_xscale("log")
ax.set(
    xlabel="characters of context available (log scale)",
    ylabel="bits per character",
    title="Validation loss by position in the window",
)
ax.legend()
fig.tight_layout()
plt.show()
tf, bg = per_position["Transformer"], per_position["bigram"]  # (128,) bits per character
first, rest = tf[0].item(), tf[32:].mean().item()
print(
    f"Transformer: {first:.2f} bits/char with 1 character of context (bigram {bg[0].item():.2f}), "
    f"{tf[4].item():.2f} with 5, {tf[11].item():.2f} with 12, {tf[12:32].mean().item():.2f} "
    f"with 13 to 32, {rest:.2f} with 33 to 128 characters"
)
print(f"bigram: from {bg.min().item():.2f} to {bg.max().item():.2f} bits/char over the positions")
glue("ch04_bits_1", first, display=False)
glue("ch04_bits_rest", rest, display=False)
assert first > bg[0].item() - 0.1, (
    "claim no longer holds: 'with a single character of context the Transformer does no "
    f"better than the bigram' (measured {first:.3g} vs {bg[0].item():.3g} bits)"
)
assert first - tf[4].item() > 2 * (tf[4].item() - tf[11].item()) > 0, (
    "claim no longer holds: 'falls steeply over the first few characters, more slowly up to "
    f"a dozen' (measured {first:.3g}, {tf[4].item():.3g}, {tf[11].item():.3g} bits)"
)
assert abs(tf[12:32].mean().item() - rest) < 0.15, (
    "claim no longer holds: 'changes little after that' "
    f"(measured {tf[12:32].mean().item():.3g} vs {rest:.3g} bits)"
)
assert bg.max().item() - bg.min().item() < 0.5, (
    f"claim no longer holds: 'the bigram is flat' (measured range {bg.max() - bg.min():.3g} bits)"
)

# %% [markdown]
# *Figure: with a single character of context the Transformer
# ({glue:text}`ch04_bits_1:.2f` bits per character) does no better than the bigram: it
# has the same information, and this position is only 1 in 128 of its training signal.
# Its loss then falls steeply over the first few characters (the rest of the current
# word), more slowly up to a dozen or so, and changes little after that
# ({glue:text}`ch04_bits_rest:.2f` bits per character with 33 to 128 characters of
# context). The bigram, which ignores everything but the last character, is flat.*
#
# This is the measurable meaning of "self-attention captures context": each prediction
# attends over all earlier characters in the window, and the loss shows that they are used.
# It also shows a limit of a model this small and this briefly trained: it makes little use
# of context beyond a couple of words, although it could attend to 128 characters.

# %% [markdown]
# (ch04-sampling)=
# ## Sampling: from probabilities to text
#
# The model gives a distribution over the next character; a **decoding rule** turns it into
# text. `ak.generate(model, prompt, n, ...)` repeats $n$ times: run the model, take the
# logits $z$ of the last position, choose a character with `ak.sample_next`, append it.

# %%
prompt_text = "Return the"
prompt = torch.tensor([tok.encode(prompt_text)])  # (1, 10)
n_new = model.max_len + 1 - prompt.shape[1]  # the position table holds 128 positions
print(f"prompt {prompt_text!r}: {prompt.shape[1]} characters; {n_new} new characters per sample")


def continue_prompt(seed=0, batch=1, **sampling):
    """Decoded continuations (prompt included) of `batch` copies of the prompt."""
    gen = torch.Generator().manual_seed(seed)
    out = ak.generate(model, prompt.repeat(batch, 1), n_new, generator=gen, **sampling)
    return [tok.decode(row) for row in out]


# %% [markdown]
# ### Greedy decoding and temperature
#
# **Greedy decoding** takes the most likely character, $x_{t+1} = \arg\max_i z_i$.
# **Sampling with temperature** $\tau > 0$ draws from
#
# $$
# p_\tau(i) = \frac{\exp(z_i / \tau)}{\sum_{j=1}^{V} \exp(z_j / \tau)} .
# $$
#
# $\tau = 1$ is the model's own distribution; $\tau < 1$ sharpens it towards the argmax
# (greedy is the limit $\tau \to 0$, and `temperature=0` means greedy in `attnkit`);
# $\tau > 1$ flattens it towards uniform. It is the same temperature as in chapter 1's soft
# look-up, applied to the output softmax instead of the attention softmax. Five samples from
# the same prompt, each drawn with a generator seeded with 0:

# %%
temperatures = (0.0, 0.5, 0.8, 1.0, 1.5)
shown_samples = {}  # temperature -> the sample printed
for temperature in temperatures:
    sample = continue_prompt(temperature=temperature)[0]
    shown_samples[temperature] = sample
    print(f"--- temperature {temperature} ---\n{sample}\n")

# %% [markdown]
# Read them from the bottom up. At $\tau = 1.5$ the flattened distribution gives real
# weight to characters the model considers unlikely, and each such slip becomes part of the
# context for every later prediction: errors compound into non-words. At $\tau = 1$ the text
# has the look of a docstring, with many real words, but wanders. At $\tau = 0.5$ and $0.8$
# it is more fluent, and at $0.5$ more repetitive. Greedy decoding is the most fluent locally and
# gets stuck in a loop. (These are single samples; below we measure them, and 16 samples
# per temperature, with two numbers, and the chapter checks each of these statements
# against those numbers.)
#
# ### Why greedy decoding repeats itself
#
# Greedy decoding is a deterministic function of the context, and it is *mode-seeking*: at
# every step it takes the single most likely character. The most likely continuations are
# the most frequent words and phrases of the training text; writing them creates contexts in
# which the same frequent continuations are again the most likely, and because nothing random
# ever happens, once a context comes back, what followed it comes back too. Human text is not
# written like that, and text that maximises probability step by step is abnormally
# repetitive. Holtzman et al. find this in large models too, and also for beam search, which
# looks for the most probable *sequence* rather than the most probable next token
# {cite:p}`holtzman2020curious`.
#
# They also found a feedback loop in GPT-2: the probability of a repeated phrase
# *increases* with each repetition, so a loop, once entered, becomes ever more likely. That
# requires the model to copy from its context. Does our small model do it? We repeat a phrase
# to fill the 128-character window and measure the model's mean probability for the
# characters of each copy. The third phrase is random characters: a model that copies from
# its context would predict its second copy almost perfectly.

# %%
phrases = ("the string ", "Return the name of the file. ", "Qx7 zebra! ")
copy_probs = {}
for phrase in phrases:
    n_copies, size = model.max_len // len(phrase), len(phrase)
    ids = torch.tensor([tok.encode(phrase * n_copies)])  # (1, n_copies * size)
    with torch.no_grad():
        p_next = model(ids[:, :-1]).softmax(dim=-1)[0]  # (T - 1, V): row i predicts char i + 1
    p_actual = p_next[torch.arange(ids.shape[1] - 1), ids[0, 1:]]  # p(actual next character)
    copy_probs[phrase] = [  # copy j = characters j*size .. (j+1)*size - 1
        p_actual[max(j * size - 1, 0) : (j + 1) * size - 1].mean().item() for j in range(n_copies)
    ]
print("phrase                          | copies | copy 1 | copy 2 | last copy")
for phrase, probs in copy_probs.items():
    print(
        f"{phrase!r:<31} | {len(probs):6d} | {probs[0]:6.3f} | {probs[1]:6.3f} | {probs[-1]:9.3f}"
    )

fig, ax = plt.subplots(figsize=(6.5, 4))
for phrase, probs in copy_probs.items():
    ax.plot(np.arange(1, len(probs) + 1), probs, "o-", ms=4, label=repr(phrase))
ax.set(
    xlabel="copy of the phrase",
    ylabel="mean p(character | everything before)",
    ylim=(0, 1.02),
    title="A phrase repeated to fill the context window",
)
ax.legend()
fig.tight_layout()
plt.show()

# %% tags=["remove-cell"]
# The claims of the caption and the paragraph below, checked on the measurement above.
for phrase, probs in copy_probs.items():
    assert probs[-1] <= probs[1] + 0.05, (
        f"claim no longer holds: 'drifts down rather than up' ({phrase!r}: measured "
        f"{probs[1]:.3g} on copy 2, {probs[-1]:.3g} on the last)"
    )
    assert max(probs) < 0.9, (
        f"claim no longer holds: 'never approaches 1' ({phrase!r}: measured {max(probs):.3g})"
    )
random_copies = copy_probs[phrases[-1]]
assert random_copies[-1] <= random_copies[0] + 0.05 and random_copies[-1] < 0.3, (
    "claim no longer holds: 'the random phrase stays as unpredictable on its last copy' "
    f"(measured {random_copies[0]:.3g} on the first, {random_copies[-1]:.3g} on the last)"
)
glue("ch04_random_copies", len(random_copies), display=False)

# %% [markdown]
# *Figure: the model's mean probability for the characters of each successive copy of a
# repeated phrase. It drifts down rather than up, and never approaches 1, not even for the
# random phrase after {glue:text}`ch04_random_copies` copies.*
#
# Our model shows no such feedback loop: repetition does not make it more confident, and
# it has not learned to copy from its context at all (the random phrase stays as
# unpredictable on its last copy as on its first). That is consistent with the
# loss-by-position figure, where context beyond a dozen or so characters helped little.
# Its greedy loops therefore come from mode-seeking alone. In a model that does copy, the
# feedback loop makes them stickier still. Either way, the cure is the same: sample.
#
# ### Measuring the trade-off
#
# Two numbers per temperature, averaged over 16 samples of the same length (at $\tau = 0$
# the 16 are identical):
#
# - **distinct 4-grams**: the share of the 4-character substrings of a sample that are
#   different; a sample stuck in a loop repeats its 4-grams, so low means repetitive;
# - **real words**: the share of generated words (runs of letters followed by a non-letter)
#   that occur somewhere in the training text; low means the sample invents non-words.
#
# As a reference we measure 16 excerpts of real text of the same length, spread over the
# validation text: a good decoder should produce text with similar statistics.

# %%
train_words = set(re.findall(r"[A-Za-z]+", train_text))


def distinct_4grams(s):
    grams = [s[i : i + 4] for i in range(len(s) - 3)]
    return len(set(grams)) / len(grams)


def real_word_share(s):
    words = re.findall(r"[A-Za-z]+(?=[^A-Za-z])", s)  # complete words only
    return sum(w in train_words for w in words) / max(len(words), 1)


def measure(texts):
    """Mean share of distinct 4-grams and mean share of real words of a list of texts."""
    return [np.mean([f(s) for s in texts]) for f in (distinct_4grams, real_word_share)]


def sample_and_measure(**sampling):
    """Measure 16 continuations of the prompt (prompt removed), drawn with seed 1."""
    samples = continue_prompt(seed=1, batch=16, **sampling)
    return measure([s[len(prompt_text) :] for s in samples])


starts = torch.linspace(0, len(val_text) - n_new, 16).long().tolist()
reference = measure([val_text[i : i + n_new] for i in starts])  # 16 excerpts of real text
print("    decoding     | distinct 4-grams | real words")
print(f"validation text  | {reference[0]:16.3f} | {reference[1]:10.3f}")
diversity, realness = [], []
for temperature in temperatures:
    d4, real = sample_and_measure(temperature=temperature)
    diversity.append(d4)
    realness.append(real)
    print(f"temperature {temperature:<4} | {d4:16.3f} | {real:10.3f}")


def distance_to_text(d4, real):
    """How far a decoder's two shares are from those of the validation text (L1)."""
    return abs(d4 - reference[0]) + abs(real - reference[1])


distances = [distance_to_text(d4, real) for d4, real in zip(diversity, realness)]
closest = temperatures[int(np.argmin(distances))]
print("closest to the validation text on both measures: temperature", closest)
glue("ch04_closest_temperature", closest, display=False)

# %%
fig, ax = plt.subplots(figsize=(6.5, 4))
ax.plot(temperatures, diversity, "o-", color="C0", label="distinct 4-grams (diversity)")
ax.plot(temperatures, realness, "s-", color="C1", label="words found in the training text")
ax.axhline(reference[0], color="C0", ls=":", lw=1, label="validation text, distinct 4-grams")
ax.axhline(reference[1], color="C1", ls="--", lw=1, label="validation text, real words")
ax.set(
    xlabel="temperature $\\tau$ (0 = greedy)",
    ylabel="share",
    ylim=(0, 1.05),
    title="Diversity against correctness, 16 samples per temperature",
)
ax.legend(loc="lower left")
fig.tight_layout()
plt.show()

# %%
# The five samples printed earlier, with the same two measures (prompt removed).
shown_stats = {t: measure([s[len(prompt_text) :]]) for t, s in shown_samples.items()}
for t, (d4, real) in shown_stats.items():
    print(f"sample at temperature {t:<4}: distinct 4-grams {d4:.2f}, real words {real:.2f}")

# %% tags=["remove-cell"]
# The claims about the five samples, the figure and the next paragraph, checked.
d4_shown = {t: d4 for t, (d4, _) in shown_stats.items()}
real_shown = {t: real for t, (_, real) in shown_stats.items()}
assert d4_shown[0.0] < 0.5, (
    f"claim no longer holds: 'greedy decoding gets stuck in a loop' (measured {d4_shown[0.0]:.3g})"
)
assert min(real_shown, key=real_shown.get) == 1.5, (
    f"claim no longer holds: 'at 1.5, errors compound into non-words' (measured {real_shown})"
)
assert real_shown[1.0] > 0.4, (
    f"claim no longer holds: 'at 1, many real words' (measured {real_shown[1.0]:.3g})"
)
assert real_shown[0.0] == max(real_shown.values()), (
    f"claim no longer holds: 'greedy decoding is the most fluent locally' (measured {real_shown})"
)
assert min(realness[1], realness[2]) > realness[3], (
    f"claim no longer holds: 'at 0.5 and 0.8 it is more fluent' (measured {realness[1:4]})"
)
assert diversity[1] < min(diversity[2], diversity[3]), (
    f"claim no longer holds: 'and at 0.5 more repetitive' (measured {diversity[1:4]})"
)
assert diversity[0] < diversity[-1] and realness[0] > realness[-1], (
    "claim no longer holds: 'raising the temperature buys diversity with correctness' "
    f"(measured {diversity}, {realness})"
)
assert int(np.argmax(diversity)) != int(np.argmax(realness)), (
    "claim no longer holds: 'no single temperature maximises both' "
    f"(measured {diversity}, {realness})"
)
assert diversity[0] < reference[0] - 0.2, (
    "claim no longer holds: 'greedy text is far more repetitive than real text' "
    f"(measured {diversity[0]:.3g} vs {reference[0]:.3g})"
)
assert max(realness[3:]) < reference[1] - 0.1, (
    "claim no longer holds: 'temperatures of 1 and above invent far more words' "
    f"(measured {max(realness[3:]):.3g} vs {reference[1]:.3g})"
)
assert 0.0 < closest < 1.0, f"claim no longer holds: 'a temperature below 1' ({closest})"

# %% [markdown]
# *Figure: raising the temperature buys diversity (fewer repeated 4-grams) with correctness
# (fewer real words); no single temperature maximises both. The horizontal lines are the
# same measurements on real text.*
#
# Real text is not perfectly "correct" by this measure either: it contains identifiers and
# rare words that the training text never uses. Greedy text is far more repetitive than
# real text, and temperatures of 1 and above invent far more words; a temperature below 1
# ({glue:text}`ch04_closest_temperature` here) comes closest to real text on both
# measures (the smallest sum of the two differences). Matching the statistics
# of human text, rather than maximising probability, is the goal Holtzman et al. argue
# for {cite:p}`holtzman2020curious`.
#
# ### Top-k and top-p (nucleus) sampling
#
# Temperature reshapes the whole distribution, including its long tail of unlikely
# characters, and it is the tail that produces the non-words. Truncation removes the tail
# before sampling:
#
# - **top-k**: keep the $k$ most likely characters, renormalise, sample;
# - **top-p** or **nucleus sampling** {cite:p}`holtzman2020curious`: keep the *smallest* set
#   of most likely characters whose total probability is at least $p$.
#
# `ak.filter_logits` sets the removed logits to $-\infty$ (`ak.sample_next` applies the
# temperature first, then the filter). We check top-p against its definition on the
# model's prediction of the first letter of the word after "Return the ":

# %%
with torch.no_grad():
    z = model(torch.tensor([tok.encode("Return the ")]))[0, -1]  # (V,) logits
p = z.softmax(-1)
kept = ak.filter_logits(z, top_p=0.9) > float("-inf")  # (V,) bool
n_kept = int(kept.sum())
order = p.argsort(descending=True)
mass = p[kept].sum().item()
mass_without_last = mass - p[kept].min().item()
print("kept characters, most likely first:", "".join(tok.vocab[i] for i in order[:n_kept]))
print(f"kept = the {n_kept} most likely: {bool(kept[order[:n_kept]].all())}")
print(
    f"their mass {mass:.3f} >= 0.9; without the least likely of them {mass_without_last:.3f} < 0.9"
)
print(
    "top_k=5 keeps the 5 most likely:",
    torch.equal(ak.filter_logits(z, top_k=5) > float("-inf"), p >= p[order[4]]),
)
assert bool(kept[order[:n_kept]].all()) and mass >= 0.9 > mass_without_last, (
    "claim no longer holds: 'the smallest set of most likely characters whose total probability "
    f"is at least p' (measured {n_kept} kept, mass {mass:.3g}, without the last {mass_without_last:.3g})"
)
assert torch.equal(ak.filter_logits(z, top_k=5) > float("-inf"), p >= p[order[4]]), (
    "claim no longer holds: 'top-k: keep the k most likely characters'"
)

# %% [markdown]
# The point of top-p is that the number of candidates **adapts to the context**. After
# "Retur" only "n" is plausible; after a space, dozens of words can start. We apply it to
# every position of one validation sentence:

# %%
sentence = "Return a new list containing all items from the iterable in ascending order."
ids = torch.tensor([tok.encode(sentence)])
with torch.no_grad():
    z_all = model(ids[:, :-1])[0]  # (T - 1, V): prediction of characters 1..T-1
nucleus = (ak.filter_logits(z_all, top_p=0.9) > float("-inf")).sum(-1)  # (T - 1,)

fig, ax = plt.subplots(figsize=(13, 3.4))
ax.bar(np.arange(len(nucleus)), nucleus.numpy(), color="#2c7fb8", label="top-p, p = 0.9")
ax.axhline(5, color="k", ls="--", lw=1, label="top-k, k = 5")
ax.set_xticks(np.arange(len(nucleus)), [c if c != " " else "␣" for c in sentence[1:]], fontsize=8)
ax.set(
    xlabel="character being predicted",
    ylabel="candidates kept",
    title="Nucleus size along a sentence",
)
ax.legend()
fig.tight_layout()
plt.show()
print(
    f"nucleus size: min {nucleus.min().item()}, median {nucleus.median().item()}, max {nucleus.max().item()}"
)
# Row i predicts sentence[i + 1] from sentence[: i + 1]: inside a word, or a word's first letter.
inside = [i for i in range(len(nucleus)) if sentence[i].isalpha() and sentence[i + 1].isalpha()]
word_start = [i for i in range(len(nucleus)) if sentence[i] == " "]
in_word, at_start = nucleus[inside], nucleus[word_start]
print(
    f"inside words: median {in_word.median().item()}, min {in_word.min().item()}; "
    f"at word starts: median {at_start.median().item()}, max {at_start.max().item()}"
)
glue("ch04_nucleus_in_word", in_word.median().item(), display=False)
glue("ch04_nucleus_word_start", at_start.median().item(), display=False)
glue("ch04_nucleus_max", at_start.max().item(), display=False)
assert (nucleus < 5).any() and at_start.median() > 5, (
    "claim no longer holds: 'with k = 5, both happen in this one sentence' "
    f"(measured smallest nucleus {nucleus.min()}, median at word starts {at_start.median()})"
)
assert in_word.min().item() == 1 and 2 * in_word.median() <= at_start.median(), (
    "claim no longer holds: 'inside a word the nucleus is small (down to a single one); at the "
    f"start of a word it widens' (measured medians {in_word.median()} and {at_start.median()})"
)

# %% [markdown]
# *Figure: inside a word the nucleus is small (a median of
# {glue:text}`ch04_nucleus_in_word` characters, down to a single one); at the start of a
# word it widens (a median of {glue:text}`ch04_nucleus_word_start`, up to
# {glue:text}`ch04_nucleus_max`). A fixed $k$ is too wide wherever the nucleus is smaller
# than $k$ (it lets in junk) and too narrow wherever it is larger (it cuts off plausible
# words); with $k = 5$ (the dashed line) both happen in this one sentence.*
#
# Samples with truncation, from the same prompt and seed as before:

# %%
for label, sampling in (
    ("top-k, k = 5, temperature 1.0", dict(top_k=5)),
    ("top-p, p = 0.9, temperature 1.0", dict(top_p=0.9)),
    ("top-p, p = 0.9, temperature 1.5", dict(top_p=0.9, temperature=1.5)),
):
    print(f"--- {label} ---\n{continue_prompt(**sampling)[0]}\n")

# %% [markdown]
# The same two measures as before, on 16 samples each, next to plain sampling at
# $\tau = 1$ and the real text:

# %%
print("    decoding                    | distinct 4-grams | real words")
print(f"validation text                 | {reference[0]:16.3f} | {reference[1]:10.3f}")
print(f"temperature 1.0                 | {diversity[3]:16.3f} | {realness[3]:10.3f}")
truncated = {}  # label -> (distinct 4-grams, real words)
for label, sampling in (
    ("top-k, k = 5", dict(top_k=5)),
    ("top-p, p = 0.9", dict(top_p=0.9)),
    ("top-p, p = 0.9, temperature 1.5", dict(top_p=0.9, temperature=1.5)),
):
    truncated[label] = d4, real = sample_and_measure(**sampling)
    print(f"{label:<31} | {d4:16.3f} | {real:10.3f}")
best_truncated = min(distance_to_text(*truncated[k]) for k in ("top-k, k = 5", "top-p, p = 0.9"))
print(
    f"distance to the validation text: best temperature {min(distances):.3f}, best truncation {best_truncated:.3f}"
)

# %% tags=["remove-cell"]
# The claims of the next paragraph, checked on the table above.
for label in ("top-k, k = 5", "top-p, p = 0.9"):
    d4, real = truncated[label]
    assert real > realness[3] + 0.08, (
        f"claim no longer holds: '{label} raises the share of real words a lot' "
        f"(measured {real:.3g} vs {realness[3]:.3g})"
    )
    assert d4 > diversity[3] - 0.1, (
        f"claim no longer holds: '{label} costs little diversity' "
        f"(measured {d4:.3g} vs {diversity[3]:.3g})"
    )
glue("ch04_truncation_distance", float(best_truncated), display=False)
glue("ch04_temperature_distance", float(min(distances)), display=False)
assert best_truncated > min(distances), (
    "claim no longer holds: 'a lower temperature alone comes closer than either truncation' "
    f"(measured {min(distances):.3g} vs {best_truncated:.3g})"
)
most_real = max(truncated[k][1] for k in ("top-k, k = 5", "top-p, p = 0.9"))
assert most_real < reference[1] - 0.1, (
    "claim no longer holds: 'truncated samples still contain far fewer real words than real "
    f"text does' (measured {most_real:.3g} vs {reference[1]:.3g})"
)
hot = truncated["top-p, p = 0.9, temperature 1.5"][1]
assert hot < truncated["top-p, p = 0.9"][1] - 0.1, (
    "claim no longer holds: 'truncation does not rescue a high temperature' "
    f"(measured real words {hot:.3g} vs {truncated['top-p, p = 0.9'][1]:.3g})"
)

# %% [markdown]
# At $\tau = 1$ both truncations raise the share of real words a lot and cost little
# diversity. Measured as before by the sum of the two differences from the real text, the
# better of the two is at {glue:text}`ch04_truncation_distance:.2f`, against
# {glue:text}`ch04_temperature_distance:.2f` for the best temperature alone (the last line
# of the table): on this small model, lowering the temperature alone comes closer to real
# text than either truncation at $\tau = 1$, whose samples still contain far fewer real
# words than real text does. Truncation does not rescue a high
# temperature, though. `ak.sample_next` divides by the temperature *before* filtering, so
# at $\tau = 1.5$ the flattened distribution needs many more characters to reach a mass of
# 0.9, and the nucleus lets the junk back in. In practice the two are used together,
# typically with a temperature at or a little below 1 and $p$ around 0.9; the best values
# depend on the model and the task.

# %% [markdown]
# (ch04-kv-cache)=
# ## The key/value cache
#
# ### What is recomputed
#
# `ak.generate(..., use_cache=False)` does the obvious thing: at every step it runs the
# model on the **whole** sequence so far and keeps only the last logits. But by causality
# (checked above), the keys and values of positions $1..t-1$ do not depend on the new token;
# step $t$ recomputes them from scratch. With `use_cache=True` (the default), each attention
# layer stores its keys and values in a `KVCache`: the prompt is run once, and every later
# step feeds **only the newest token**, whose query attends over the cached keys and values
# (chapter 1 introduced the causal mask with the offset it needs; chapter 2 how
# grouped-query attention shrinks the cache).
#
# The cost, for $L$ layers of width $d$ (feed-forward width $4d$), at a step with $t$
# tokens of context:
#
# | | projections and feed-forward | attention (scores and weighted sum) | step $t$ | all $T$ steps |
# |---|---|---|---|---|
# | no cache | $t$ tokens: $O(t\,d^2)$ | $t$ queries $\times$ $t$ keys: $O(t^2 d)$ | $O(t\,d^2 + t^2 d)$ | $O(T^2 d^2 + T^3 d)$ |
# | cache | 1 token: $O(d^2)$ | 1 query $\times$ $t$ keys: $O(t\,d)$ | $O(d^2 + t\,d)$ | $O(T\,d^2 + T^2 d)$ |
#
# (per layer; the factor $L$ multiplies everything). The cache saves a factor of about $t$ per
# step. It does not make attention free: the new query still reads all $t$ cached keys, so
# the total stays quadratic in $T$, against cubic without the cache.
#
# ### Same tokens
#
# The cache changes how the logits are computed, not what they are, so both paths must
# produce the same characters, for greedy decoding and for seeded sampling (each step makes
# one draw from the generator either way):

# %%
for sampling in (dict(temperature=0.0), dict(temperature=1.0), dict(temperature=0.8, top_p=0.9)):
    outs = [
        ak.generate(
            model,
            prompt,
            n_new,
            use_cache=use_cache,
            generator=torch.Generator().manual_seed(0),
            **sampling,
        )
        for use_cache in (True, False)
    ]
    print(f"{sampling}: identical tokens with and without the cache: {torch.equal(*outs)}")
    assert torch.equal(*outs), f"claim no longer holds: 'the same tokens' ({sampling})"

with torch.no_grad():
    caches = model.new_caches()
    full = model(x)  # (1, 128, V), no cache
    steps = [model(x[:, :10], caches=caches)]  # the "prompt": 10 positions at once
    steps += [model(x[:, t : t + 1], caches=caches, offset=t) for t in range(10, 128)]
print(
    "logits, token by token with the cache == one full pass:",
    torch.allclose(torch.cat(steps, dim=1), full, atol=1e-4),
)
cache_diff = (torch.cat(steps, dim=1) - full).abs().max().item()
assert cache_diff < 1e-4, (
    f"claim no longer holds: 'changes how the logits are computed, not what they are' "
    f"(measured {cache_diff:.3g})"
)

# %% [markdown]
# ### What the cache costs in memory
#
# The cache holds, per layer, the keys and the values of every position:
# $2 \times L \times B \times H_{kv} \times T \times D$ numbers (chapter 2). After the 128
# positions above:

# %%
n_bytes = sum(c.nbytes for c in caches)
L, H, D = len(caches), model.num_heads, model.d_model // model.num_heads
formula = 2 * L * 1 * H * 128 * D * 4  # float32
print(
    f"KV cache after 128 positions: {n_bytes:,} bytes; formula 2 L B H T D x 4 bytes = {formula:,}"
)
assert n_bytes == formula, f"expected {formula:,} bytes (the formula), found {n_bytes:,}"
glue("ch04_cache_mib", n_bytes / 2**20, display=False)

# %% [markdown]
# {glue:text}`ch04_cache_mib:.2g` MiB here, but the cache grows linearly with context length and batch size, and for
# large models it, rather than the weights, limits how many sequences fit in memory. This
# memory holds activations, recomputed for every text, not parameters. Multi-query
# attention {cite:p}`shazeer2019fast` and grouped-query attention
# {cite:p}`ainslie2023gqa` share key/value heads between query heads and shrink the cache
# by a factor $H / H_{kv}$ ({ref}`ch02-gqa` measured it): `ak.TransformerLM` accepts
# `num_kv_heads` for that.
#
# ### Measured speed-up
#
# First the prediction: the multiply-adds of the matrix products (projections,
# feed-forward, attention and read-out) for each method, counted from the table's formulas
# with this model's sizes, starting from a 10-character prompt.


# %%
def multiply_adds(n_new, prompt_len=10, cached=True, d=128, L=LAYERS, V=V):
    """Multiply-adds of the matrix products of generating n_new tokens (approximate)."""
    total = 0
    for t in range(prompt_len, prompt_len + n_new):  # t = tokens in the input at this step
        fresh = t if (not cached or t == prompt_len) else 1  # tokens run through the model
        attn = sum(2 * (t - fresh + i + 1) * d for i in range(fresh))  # query i sees its past
        total += L * (12 * d * d * fresh + attn) + V * d * fresh
    return total


lengths = (50, 100, 200, 400)
mac_ratio = [multiply_adds(n, cached=False) / multiply_adds(n, cached=True) for n in lengths]
for n, ratio in zip(lengths, mac_ratio):
    print(f"{n:3d} new tokens: {ratio:5.1f} times fewer multiply-adds with the cache")

# %% [markdown]
# Our model's position table holds 128 positions, so `ak.generate` refuses to go further
# (relative schemes such as RoPE and ALiBi have no table; chapter 2). Speed does not depend
# on the values of the weights, so for longer runs we time an untrained twin with a
# 512-position table. First we count the positions that go through its blocks while it
# writes 50 tokens from a 10-character prompt (a fact of the algorithm, the same on every
# machine); then we time greedy decoding, each time the best of 3 runs, with and without
# the cache in turn. The timings are those of the machine that built this page: another
# machine, or a busier one, gives other times and other ratios.

# %%
ak.seed_everything(0)
twin = ak.TransformerLM(
    V,
    d_model=128,
    num_heads=4,
    num_layers=LAYERS,
    d_ff=512,
    dropout=0.0,
    max_len=512,
    positional="learned",
)
ak.set_fused_attention(twin)
long_prompt = val_inputs[:1, :10]  # (1, 10)

# Positions that go through the model's blocks, counted by a hook: the algorithm's part.
positions = []
hook = twin.blocks.register_forward_pre_hook(
    lambda module, args: positions.append(args[0].shape[1])
)
try:
    counted = {}
    for use_cache in (False, True):
        positions.clear()
        ak.generate(twin, long_prompt, 50, temperature=0, use_cache=use_cache)
        counted[use_cache] = list(positions)
finally:
    hook.remove()
print("50 new tokens, positions through the model, no cache:", sum(counted[False]))
print("                                             cache   :", sum(counted[True]))
assert counted[False] == list(range(10, 60)) and counted[True] == [10] + [1] * 49, (
    f"expected 10, 11, ..., 59 positions without the cache and 10, 1, 1, ... with it, found "
    f"{counted[False]} and {counted[True]}"
)


# %%
# NBVAL_IGNORE_OUTPUT
seconds = {True: [], False: []}
print("measured on this machine (best of 3, interleaved)")
print("new tokens | no cache (s) | cache (s) | speed-up")
for n in lengths:
    no_cache, cache = time_in_turns(
        {
            "no cache": lambda n=n: ak.generate(twin, long_prompt, n, temperature=0, use_cache=False),
            "cache": lambda n=n: ak.generate(twin, long_prompt, n, temperature=0, use_cache=True),
        },
        repeats=3,
        warmup=0,
    ).values()
    seconds[False].append(no_cache)
    seconds[True].append(cache)
    print(f"{n:10d} | {no_cache:12.3f} | {cache:9.3f} | {no_cache / cache:7.1f}x")

one_pass, write = time_in_turns(
    {
        "one pass": lambda: model(val_inputs[:1]),
        "write": lambda: ak.generate(model, prompt, n_new, temperature=0),
    },
    repeats=3,
    warmup=0,
).values()
print(f"\nscoring 128 characters of text: one forward pass, {1000 * one_pass:.1f} ms")
print(
    f"writing {n_new} characters: {n_new} forward passes with the cache, {1000 * write:.0f} ms "
    f"({write / one_pass:.0f}x longer)"
)
speedups = [f / c for f, c in zip(seconds[False], seconds[True])]
glue("ch04_kv_speedup_first", speedups[0], display=False)
glue("ch04_write_vs_read", write / one_pass, display=False)

# %% tags=["remove-cell"]
# Figures quoted by the closing chapter ("Summary"), recorded with myst-nb's glue
# (this cell displays nothing and is hidden in the book).
glue("ch04_kv_tokens", lengths[-1], display=False)
glue("ch04_kv_speedup", seconds[False][-1] / seconds[True][-1], display=False)
glue("ch04_kv_tokens_first", lengths[0], display=False)
glue("ch04_mac_ratio_first", mac_ratio[0], display=False)
glue("ch04_mac_ratio_last", mac_ratio[-1], display=False)

# %%
# NBVAL_IGNORE_OUTPUT
fig, ax = plt.subplots(figsize=(6.5, 4))
ax.plot(lengths, seconds[False], "o-", label="use_cache=False (recompute everything)")
ax.plot(lengths, seconds[True], "s-", label="use_cache=True")
ax.set(xlabel="new tokens", ylabel="seconds (best of 3)", title="Generation time, measured")
ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure: generation time on the machine that built this page. Without the cache every
# step is longer than the last, so the time should grow faster than linearly with the
# number of new tokens; with the cache, almost linearly.*
#
# On the machine that built this page, the cache made generation
# {glue:text}`ch04_kv_speedup_first:.1f` times faster for {glue:text}`ch04_kv_tokens_first`
# new tokens and {glue:text}`ch04_kv_speedup:.1f` times faster for
# {glue:text}`ch04_kv_tokens`. The arithmetic predicts a saving that grows with the length,
# from {glue:text}`ch04_mac_ratio_first:.1f` to {glue:text}`ch04_mac_ratio_last:.1f` times
# fewer multiply-adds, and a measured speed-up well below that ratio is typical. A cached step of this small model is dozens of tiny operations on
# one token, so its time is dominated by fixed per-operation overhead (Python, dispatch,
# memory allocation) rather than arithmetic; the savings in arithmetic show more fully for
# larger models and longer contexts. The last two lines show the other side of causal
# masking: *reading* 128 characters takes one forward pass, *writing* them takes one pass
# per character, however fast each pass is (here writing took
# {glue:text}`ch04_write_vs_read:.0f` times as long as reading).

# %% [markdown]
# (ch04-seed-generation)=
# ## What the seed says about generation
#
# The seed's list of applications (自注意力机制的应用场景) gives text generation one sentence:
#
# > 5. **文本生成：** 自注意力机制在文本生成任务中用于捕捉输入文本的上下文信息，生成连贯、自然的文本。
#
# ("In text generation, self-attention is used to capture the context of the input text, to
# generate coherent, natural text.") Checked against this chapter:
#
# - **It holds that the context is used.** The comparison table shows the Transformer far
#   below the bigram on the same characters, and the loss-by-position figure shows each
#   prediction improving as more preceding characters become available.
# - **It leaves out that the context is the left context only.** When a model writes, the
#   following text does not exist yet; its self-attention must be causally masked, which
#   we checked numerically. Attention that sees both sides, as in BERT, is what a
#   left-to-right generator must not have: BERT drops the causal mask and is trained to
#   fill in masked tokens from both sides, not to continue a text
#   {cite:p}`devlin2019bert` (erratum {ref}`E35 <errata-e35>`: the bidirectionality comes
#   from the missing mask, not from self-attention).
# - **It overstates what attention alone delivers.** Coherent, natural text is not a
#   property of the attention layers: the *same* weights produced a loop under greedy
#   decoding and non-words at temperature 1.5. Whether text is coherent depends on the
#   model's quality *and* on the decoding rule {cite:p}`holtzman2020curious`. The numbers
#   from this chapter's samples:

# %%
rows = [("validation text", *reference), ("greedy", diversity[0], realness[0])]
rows += [
    (f"temperature {t}", d, r) for t, d, r in zip(temperatures[2:], diversity[2:], realness[2:])
]
print("same weights, different decoding | distinct 4-grams | real words")
for name, d, r in rows:
    print(f"{name:<32} | {d:16.2f} | {r:10.2f}")

# %% [markdown]
# Two more remarks of the seed bear on generation, and chapter 3 has their boxes. Its
# praise of parallel computation (erratum {ref}`E5 <errata-e5>`) holds for training and
# for reading the prompt, not for writing: the timing above shows one forward pass per
# new character, and the cache makes each pass cheap without making them parallel
# ({ref}`ch03-seed-parallel`). Its account of translation (erratum
# {ref}`E9 <errata-e9>`) describes an encoder–decoder, where the link between the
# languages is cross-attention ({ref}`ch03-seed-translation`); in a decoder-only model,
# source and target are concatenated into one sequence and ordinary causal self-attention
# does connect them: GPT-2 translates this way, prompted with example sentence pairs
# {cite:p}`radford2019language`.

# %% [markdown]
# ## Key takeaways
#
# - A language model is a next-token predictor: by the chain rule,
#   $p(x) = \prod_t p(x_t \mid x_{<t})$. A decoder-only Transformer (GPT) computes every
#   conditional of a training text in **one** forward pass, because the causal mask hides
#   each target from its own prediction; we checked that logits at position $t$ ignore
#   later tokens.
# - The training loss is the cross-entropy $\mathcal{L}$ in nats per token;
#   perplexity $= e^{\mathcal{L}}$ (an effective number of choices, $V$ for a uniform model)
#   and bits per character $= \mathcal{L} / \ln 2$ (the size of the text compressed with the
#   model). Compare models only on the same target tokens.
# - Always measure baselines. On the same validation characters, a
#   {glue:text}`ch04_layers`-layer character Transformer trained for
#   {glue:text}`ch04_steps` steps on one CPU core reaches
#   {glue:text}`ch04_ppl_vs_bigram:.0%` of a bigram model's perplexity (table above), and
#   its loss falls as more context is available.
# - Decoding is a separate choice from the model. Greedy decoding is mode-seeking and falls
#   into loops (in large models the loops also reinforce themselves); temperature trades
#   diversity against correctness; top-k and top-p cut the unreliable tail, and top-p adapts
#   the number of candidates to the context. Judge a decoder by how close its output comes
#   to the statistics of real text, not by its probability.
# - Generation is sequential: one forward pass per token. The **KV cache** stores each
#   layer's keys and values so that a step processes only the new token: per step
#   $O(d^2 + t d)$ instead of $O(t d^2 + t^2 d)$, with the same tokens as recomputation.
#   Its memory grows with length and batch; multi-query and grouped-query attention shrink it.
# - The seed's one-line description of generation is right that context is used, but
#   omits causality and credits attention with coherence that in fact also depends on
#   decoding; on its praise of parallelism see erratum {ref}`E5 <errata-e5>`.

# %% [markdown]
# ## Exercises
#
# The exercises for this chapter are in `exercises/04_text_generation.ipynb`. Using plain
# PyTorch, you will implement
#
# 1. `perplexity`: the exponential of the mean negative log-likelihood over masked-in
#    positions;
# 2. `bigram_log_probs`: the add-$\alpha$ smoothed bigram table, with no Python loop over
#    the tokens;
# 3. `top_k_filter`: keep the $k$ largest logits of each row;
# 4. `top_p_filter`: keep the smallest nucleus of probability at least $p$;
# 5. `sample`: greedy at temperature 0, otherwise one draw from the tempered softmax;
# 6. `beam_step`: one step of beam search, keeping the best extensions of several partial
#    sequences.
#
# Grade your work with `python -m attnkit.grade 04`.

# %% [markdown]
# (ch04-interview)=
# ## Interview question
#
# ```{admonition} Interview question
# :class: tip
#
# **题目：** 请列举自注意力机制在自然语言处理中的主要应用场景。
#
# :::{english-only}
# **Question:** List the main applications of self-attention in natural language
# processing.
# :::
#
# *This chapter answers the text-generation part (文本生成); {doc}`chapter 3 <03_transformer>`
# answers machine translation, {doc}`chapter 11 <11_attention_at_work>` sentiment
# analysis, question answering and summarization.*
#
# **Model answer.** Text generation uses a decoder-only Transformer such as GPT, trained
# to predict the next token: $p(x) = \prod_t p(x_t \mid x_{<t})$ ({ref}`ch04-lm`). Its
# self-attention is causally masked, so one forward pass over a training text yields every
# conditional at once and training is parallel. The source text says attention "captures
# the context"; right, but it is the *left* context only, and BERT-style bidirectional
# attention cannot generate. The context is really used: the chapter's small character
# model, trained for {glue:text}`ch04_steps` steps on one CPU core, reaches
# {glue:text}`ch04_ppl_vs_bigram:.0%` of a bigram model's perplexity on the same characters, and its loss falls as more preceding characters are
# available, though it makes little use of context beyond a couple of words
# ({ref}`ch04-baselines`, {ref}`ch04-model`). Writing is sequential, one forward pass per
# token; a key/value cache stores past keys and values so that each step processes only
# the new token, with the same output, at the price of memory that grows with length and
# batch, reduced by multi-query or grouped-query attention ({ref}`ch04-kv-cache`). The
# pitfall an interviewer probes: coherence is not a property of attention alone. The same
# weights loop under greedy decoding and produce non-words at a high temperature; top-k
# and top-p sampling cut the unreliable tail ({ref}`ch04-sampling`). The limits are the
# quadratic cost and the fixed context window.
# ```

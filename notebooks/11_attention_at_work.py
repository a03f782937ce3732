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
# # Attention at work
#
# The seed text answers "list the main applications of self-attention in NLP"
# (自注意力机制的应用场景) with five: machine translation, summarization, sentiment
# analysis, question answering and text generation, and says that attention "significantly
# improves performance" in all of them. A list of applications is easy to write; this
# chapter *measures*. For three tasks we build a small data set whose answer is defined by
# a rule, train a small attention model **and** a model without attention on the same data
# for the same number of steps, with three seeds each, and score both with the task's
# standard metric:
#
# | task | data (generated, never downloaded) | metric | attention model | baseline without attention |
# |---|---|---|---|---|
# | sentiment | sentences with negation and contrast ("not good", "... but ...") | accuracy | Transformer encoder, attention pooling | bag of words; bidirectional GRU |
# | extractive QA | bAbI-style stories {cite:p}`weston2015towards` | SQuAD EM and token F1 {cite:p}`rajpurkar2016squad` | Transformer reader (start/end logits) | bidirectional GRU reader |
# | summarization | news-like reports with a rule-defined summary | ROUGE-1/2/L {cite:p}`lin2004rouge` | encoder–decoder Transformer | GRU encoder–decoder, no attention {cite:p}`sutskever2014sequence`; Lead-k {cite:p}`see2017get` |
#
# Two things will come out that the seed does not say. First, "attention" in these
# applications is not one thing: a reader attends *within* its input (self-attention),
# a translator or summarizer attends *from the output to the input* (cross-attention), and
# a classifier may attend once more to *pool* its tokens. Second, attention is not magic:
# on none of the three small, clean tasks below is the attention model ahead of the
# recurrent one with every seed at the same number of steps, and a bag of words, which
# ignores word order, fails where order decides.
#
# By the end of this chapter you should be able to
#
# - compute SQuAD exact match and token F1 by hand, and ROUGE with `rouge-score`;
# - decode an answer span from start and end logits;
# - explain why a bag of words fails on negation, and why Lead-k fails when the
#   important sentences are not at the top;
# - read a comparison of an attention model with a baseline and say what it does and does
#   not show.

# %%

import dataclasses

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from myst_nb import glue

import attnkit as ak
from attnkit.data import stories, summaries
from attnkit.data.sentiment import encode_sentiment, sentiment_task
from attnkit.metrics import exact_match, rouge, squad_scores, token_f1
from attnkit.models.rnn_seq2seq import GRUSeq2Seq, rnn_greedy_decode
from attnkit.models.span_qa import SpanQAGRU, SpanQATransformer, best_span, span_loss
from attnkit.models.text_classifier import (
    BagOfWordsClassifier,
    GRUClassifier,
    TransformerClassifier,
    accuracy,
    train_classifier,
)
from attnkit.training import sample_batches

torch.manual_seed(0)
# One thread: the book runs its chapters side by side, one thread each, so every number
# below is the same on any machine, however many cores it has and however busy it is
# (timings aside).
torch.set_num_threads(1)
torch.set_printoptions(precision=4, sci_mode=False)
plt.rcParams.update({"figure.dpi": 100, "axes.grid": False})
print("torch", torch.__version__, "| attnkit", ak.__version__)
RESULTS = {}  # task -> {model: array of test scores, one per seed}, tabulated at the end
SEEDS = (0, 1, 2)  # every model of every task is trained once per seed


def spread(x) -> str:
    """'mean ± std [min, max]' of one score over the seeds."""
    x = np.asarray(x, dtype=float)
    return f"{x.mean():.3f} ± {x.std(ddof=1):.3f} [{x.min():.3f}, {x.max():.3f}]"

# %% [markdown]
# (ch11-which-attention)=
# ## Which attention? The seed's translation example
#
# ```{admonition} Seed erratum E9 · 应用场景 (lines 114, 129)
# :class: seed-erratum
# The seed says: 「自注意力机制在机器翻译模型中可以捕捉源语言句子中的关键词汇，如“喜欢”和“苹果”，并将它们与目标语言中的对应词汇关联起来」
# **Correction:** the link from an output word to the source words is the decoder's
# cross-attention; self-attention relates words within one sequence. Entry:
# {ref}`E9 <errata-e9>`; evidence: {ref}`ch11-which-attention`.
# ```
#
# In the encoder–decoder Transformer
# {cite:p}`vaswani2017attention` the encoder's self-attention relates source words to
# source words, the decoder's (causal) self-attention target words to earlier target words,
# and only the decoder's **cross-attention** has target positions as queries and source
# positions as keys: it is the one that can link "apples" to 苹果. The shapes say it
# without any training:

# %%
mt = ak.Seq2SeqTransformer(20, 20, d_model=32, num_heads=2, d_ff=64, dropout=0.0).eval()
src = torch.randint(3, 20, (1, 6))  # 6 source tokens ("我 喜欢 吃 苹果 。" + EOS, say)
tgt = torch.randint(3, 20, (1, 5))  # 5 target tokens ("I like eating apples .")
with torch.no_grad():
    enc_x = mt._embed(src, mt.src_embed, mt.src_pos, 0)
    _, enc_self = mt.encoder(enc_x, need_weights=True)
    cross = mt.cross_attention_weights(src, tgt)
print("encoder self-attention :", tuple(enc_self[0].shape), "(batch, heads, source, source)")
print("decoder cross-attention:", tuple(cross[0].shape), "(batch, heads, target, source)")
assert enc_self[0].shape[-2:] == (6, 6) and cross[0].shape[-2:] == (5, 6), (
    "expected (6, 6) encoder self-attention and (5, 6) cross-attention; found "
    f"{tuple(enc_self[0].shape[-2:])} and {tuple(cross[0].shape[-2:])}"
)

# %% [markdown]
# Self-attention matters for translation too (it builds the contextual representations
# that cross-attention reads), but the word alignment the seed describes is
# cross-attention, the mechanism of {cite:t}`bahdanau2014neural`. We meet it again in
# summarization below.
#
# (ch11-sentiment)=
# ## Task 1: sentiment with negation and contrast
#
# ```{admonition} Seed erratum E10 · 应用场景 (line 118)
# :class: seed-erratum
# The seed says: 「自注意力机制可以识别文本中的情感关键词」
# **Correction:** keywords fail where sentiment is hard (negation, contrast), a recurrent
# model without attention handles those (here better than the Transformer at the same
# budget), and the attention weights need not point at the deciding words. Entry:
# {ref}`E10 <errata-e10>`; evidence: {ref}`ch11-sentiment`.
# ```
#
# If keywords were enough, a **bag of words** (the average of the word embeddings, then a
# linear layer, as fastText {cite:p}`joulin2017bag`) would do as well as anything. Negation
# and contrast are where it cannot: "the film was not good" has the keyword *good* and is
# negative; in "the plot was dull but the acting was great" the clause after *but* decides.
#
# The data come from `attnkit.data.sentiment` (the generator and its labelling rule are
# documented in the module): single clauses with optional negation, and two-clause sentences
# joined by *but* or *although*. Some combinations (for example an adjective under a
# negation it never carries in training) are **held out** of the training and validation
# sets and appear only in the test set.

# %%
task = sentiment_task()  # 4000 / 500 / 1000 sentences, seed 0
tok = task.tokenizer
train_ids, train_mask, train_y, _ = encode_sentiment(task.train, tok)
val_s = encode_sentiment(task.val, tok)[:3]
test_s = encode_sentiment(task.test, tok)[:3]
held = torch.tensor([ex.heldout for ex in task.test])
print(f"train {len(task.train)} | val {len(task.val)} | test {len(task.test)}", end=" ")
print(f"(held-out combinations: {int(held.sum())})")
for ex in task.train[:4]:
    print(f"  {'pos' if ex.label else 'neg'} | {ex.text}")
train_texts = {ex.text for ex in task.train}
assert not train_texts & {ex.text for ex in task.test}, (
    "expected no training sentence in the test set; found "
    f"{len(train_texts & {ex.text for ex in task.test})}"
)
assert not train_texts & {ex.text for ex in task.val}, (
    "expected no training sentence in the validation set; found "
    f"{len(train_texts & {ex.text for ex in task.val})}"
)
assert not any(ex.heldout for ex in task.train + task.val), (
    "claim no longer holds: 'held out of the training and validation sets' (measured "
    f"{sum(ex.heldout for ex in task.train + task.val)} held-out sentences there)"
)

# %% [markdown]
# Three models, each trained with `attnkit.training.train` (AdamW, warm-up, cosine decay)
# for the same {glue:text}`ch11_sent_steps` steps on batches of 64 sentences: the
# bag of words, a bidirectional GRU (no attention), and a two-layer Transformer encoder
# whose sentence vector is an **attention pooling** of its outputs (a learned score per
# token, softmax, weighted average). The schedule is the same for all three; the peak
# learning rate is $10^{-2}$ for the bag of words and $3 \times 10^{-3}$ for the other two.
# Each model is trained {glue:text}`ch11_n_seeds` times, with seeds 0, 1 and 2 (the seed
# sets the initial weights and the order of the batches, the same for every model), and
# the table gives each score as mean ± standard deviation [min, max] over the seeds.

# %%
V_s = len(tok)
SENT_STEPS = 400  # the same for every model
sentiment_models = {
    "bag of words": (
        lambda: BagOfWordsClassifier(V_s),
        ak.TrainConfig(steps=SENT_STEPS, lr=1e-2, warmup_steps=50, eval_every=SENT_STEPS),
    ),
    "BiGRU": (
        lambda: GRUClassifier(V_s, d_embed=32, hidden=32),
        ak.TrainConfig(steps=SENT_STEPS, lr=3e-3, warmup_steps=50, eval_every=SENT_STEPS),
    ),
    "Transformer": (
        lambda: TransformerClassifier(
            V_s, pooling="attention", d_model=32, num_heads=2, num_layers=2, d_ff=64, dropout=0.0
        ),
        ak.TrainConfig(steps=SENT_STEPS, lr=3e-3, warmup_steps=50, eval_every=SENT_STEPS),
    ),
}
glue("ch11_sent_steps", SENT_STEPS, display=False)
glue("ch11_n_seeds", len(SEEDS), display=False)
SPLITS = ("val", "test", "test, held-out")
sent_acc = {name: {split: [] for split in SPLITS} for name in sentiment_models}  # per seed
trained_sentiment = {}  # the seed-0 models, looked inside below
for name, (make, cfg) in sentiment_models.items():
    for seed in SEEDS:
        ak.seed_everything(seed)
        model = make()
        cfg_seed = dataclasses.replace(cfg, seed=seed)
        train_classifier(model, train_ids, train_mask, train_y, cfg_seed, batch_size=64)
        if seed == 0:
            trained_sentiment[name] = model
        sent_acc[name]["val"].append(accuracy(model, *val_s))
        sent_acc[name]["test"].append(accuracy(model, *test_s))
        sent_acc[name]["test, held-out"].append(
            accuracy(model, test_s[0][held], test_s[1][held], test_s[2][held])
        )
sent_acc = {name: {k: np.array(v) for k, v in acc.items()} for name, acc in sent_acc.items()}
print(f"accuracy over seeds {SEEDS}: mean ± std [min, max]")
for name, acc in sent_acc.items():
    print(f"{name:13s}", " | ".join(f"{k} {spread(v)}" for k, v in acc.items()))
RESULTS["sentiment (test accuracy)"] = {k: v["test"] for k, v in sent_acc.items()}

# %%
tf_acc, gru_acc, bow_acc = sent_acc["Transformer"], sent_acc["BiGRU"], sent_acc["bag of words"]
assert gru_acc["test"].min() >= 0.97, (
    "claim no longer holds: 'the GRU solves the task with every seed' (measured lowest "
    f"test accuracy {gru_acc['test'].min():.3g})"
)
assert tf_acc["test"].min() >= 0.8 and tf_acc["test"].max() < gru_acc["test"].min(), (
    "claim no longer holds: 'the Transformer gets most of the test set right, and less of it "
    f"than the GRU, with every seed' (measured {tf_acc['test']} vs GRU {gru_acc['test']})"
)
assert bow_acc["val"].min() > 0.5 and bow_acc["val"].max() < 0.7, (  # above chance, not solved
    "claim no longer holds: 'the bag of words is above chance but far from solving the task "
    f"on validation, with every seed' (measured {bow_acc['val']})"
)
assert bow_acc["test, held-out"].max() < 0.5, (  # worse than a coin
    "claim no longer holds: 'below chance on the held-out test combinations, with every seed' "
    f"(measured {bow_acc['test, held-out']})"
)
assert bow_acc["test"].max() < tf_acc["test"].min() - 0.3, (
    "claim no longer holds: 'keywords are not enough' (measured best bag-of-words test "
    f"accuracy {bow_acc['test'].max():.3g}, worst Transformer {tf_acc['test'].min():.3g})"
)
for name, key in (("bag of words", "bow"), ("BiGRU", "gru"), ("Transformer", "tf")):
    for split, skey in (("val", "val"), ("test", "test"), ("test, held-out", "held")):
        glue(f"ch11_sent_{key}_{skey}", float(sent_acc[name][split].mean()), display=False)
        glue(f"ch11_sent_{key}_{skey}_min", float(sent_acc[name][split].min()), display=False)
        glue(f"ch11_sent_{key}_{skey}_max", float(sent_acc[name][split].max()), display=False)

# %% [markdown]
# The table above shows three things, each of them with every seed (asserted on the
# lowest or highest of the {glue:text}`ch11_n_seeds` runs). The bag of words is above
# chance but far from solving the task on validation ({glue:text}`ch11_sent_bow_val:.1%`
# on average) and **below** chance on the held-out test combinations
# ({glue:text}`ch11_sent_bow_held:.1%` on average, {glue:text}`ch11_sent_bow_held_max:.1%`
# at best): it scores "not *adjective*" with the polarity the adjective had in training,
# which negation reverses. Keywords are not enough, whatever weights them. The GRU, with
# no attention at all, solves the task in {glue:text}`ch11_sent_steps` steps
# ({glue:text}`ch11_sent_gru_test:.1%` test accuracy on average, at least
# {glue:text}`ch11_sent_gru_test_min:.1%`); the Transformer gets most of it right but is
# behind the GRU with every seed ({glue:text}`ch11_sent_tf_test:.1%` on average,
# {glue:text}`ch11_sent_tf_test_min:.1%` to {glue:text}`ch11_sent_tf_test_max:.1%`). At
# this budget, seeing the order matters and attention is not needed for it: the model
# without attention is the one ahead. A plausible reason, not tested here, is that
# recurrence gives the GRU word order for free, while the Transformer must learn to use
# the positions added to its token embeddings. (With more steps the Transformer may catch
# up; that is not what was measured here.)
#
# Does the attention pooling show where the Transformer "looks"? One might expect its
# weights to concentrate on the deciding words (the sentiment word of the deciding clause,
# its negation, *but* or *although*; the generator marks them). The plot below shows one
# contrast sentence, and the assert after it measures the whole test set (both for the
# Transformer trained with seed 0).

# %%
clf = trained_sentiment["Transformer"].eval()
i_but = next(i for i, ex in enumerate(task.test) if ex.form == "but")  # a contrast sentence
ids1, mask1, y1 = (t[i_but : i_but + 1] for t in test_s)
with torch.no_grad():
    logits1, _, pool_w = clf(ids1, mask1, return_attention=True)
n_real = int(mask1[0].sum())
labels1 = tok.decode(ids1[0, :n_real].tolist(), skip_special=False).split()
assert len(labels1) == n_real, f"expected one label per real token ({n_real}); found {len(labels1)}"
fig, ax = plt.subplots(figsize=(8, 2.4))
ax.bar(range(n_real), pool_w[0, :n_real].numpy())
ax.set_xticks(range(n_real), labels1, rotation=60)
ax.set_ylabel("pooling weight")
ax.set_title(
    f"Attention pooling of the Transformer (label {int(y1)}, predicted {int(logits1.argmax())})"
)
plt.tight_layout()
plt.show()
assert torch.allclose(pool_w[0].sum(), torch.tensor(1.0), atol=1e-5), (
    f"expected the pooling weights to sum to 1; found {pool_w[0].sum().item():.6g}"
)

# %%
decisive = encode_sentiment(task.test, tok)[3]  # (N, T) bool, the deciding words
with torch.no_grad():
    _, _, pool_all = clf(test_s[0], test_s[1], return_attention=True)
mass = (pool_all * decisive).sum(1).mean().item()
share = (decisive.sum(1) / test_s[1].sum(1)).mean().item()
print(f"pooling weight on the deciding words: {mass:.3f} (uniform weights would give {share:.3f})")
assert mass < share, (
    "claim no longer holds: 'the deciding words get less of the pooling weight than uniform"
    f" weights would give them' (measured {mass:.3f}, uniform {share:.3f})"
)
glue("ch11_pool_mass", mass, display=False)
glue("ch11_pool_share", share, display=False)

# %% [markdown]
# They do not: the deciding words get {glue:text}`ch11_pool_mass:.3f` of the pooling
# weight on average, less than uniform weights would give them
# ({glue:text}`ch11_pool_share:.3f`; asserted: below it), and the model is still right
# on most sentences. So the pooling does not pick out the deciding words; what decides
# must reach the pooled tokens through the self-attention layers below, which mix every
# token's state with the others' (where exactly the decision forms was not measured). The
# pooling weights are a view of the last step, not an explanation of the decision, which
# is the caution of {cite:t}`jain2019attention` and {cite:t}`wiegreffe2019attention`
# (chapter 13 takes it up).

# %% [markdown]
# (ch11-metrics)=
# ## Metrics: SQuAD EM and F1, ROUGE
#
# **SQuAD** {cite:p}`rajpurkar2016squad` compares a predicted answer string with each
# reference answer after *normalisation* (lower-case, punctuation removed, the articles
# *a*, *an*, *the* dropped, whitespace collapsed). **Exact match** (EM) is 1 if the
# normalised strings are equal. **Token F1** treats both as bags of tokens: with $c$ tokens
# in common (counted with multiplicity), precision $p = c/|\hat a|$, recall $r = c/|a|$ and
# $F_1 = 2pr/(p+r)$; each question takes the best score over its references, and the data
# set's EM and F1 are means in percent. `attnkit.metrics` implements the official v1.1
# evaluation script's definitions (and, as that script does, gives F1 = 0 when nothing is
# in common, even for two empty answers).
#
# **ROUGE** {cite:p}`lin2004rouge` scores a summary against a reference: ROUGE-1 and
# ROUGE-2 are F-measures of unigram and bigram overlap, ROUGE-L of the longest common
# subsequence (LCS). We call the `rouge-score` package with Porter stemming, as is usual
# for the CNN/Daily Mail benchmark {cite:p}`hermann2015teaching,see2017get`, and average
# the per-summary F-measures.

# %%
print("EM('The garden.', 'garden') =", exact_match("The garden.", "garden"))
print("F1('the red ball', 'a ball') =", round(token_f1("the red ball", "a ball"), 4))
print(squad_scores(["the kitchen", "bob"], [["kitchen"], ["mary"]]))
r_ex = rouge(["police arrested two men"], ["two men were arrested by police"])
print({k: round(v, 2) for k, v in r_ex.items()})
assert token_f1("the red ball", "a ball") == 2 / 3, (  # p = 1/2 ({red, ball}), r = 1
    f"expected token F1 2/3; found {token_f1('the red ball', 'a ball'):.6g}"
)
assert r_ex["rouge1"] == 80.0, (  # 4 of 4 predicted unigrams match (stemmed), 4 of 6 reference
    f"expected ROUGE-1 of 80.0; found {r_ex['rouge1']:.6g}"
)

# %% [markdown]
# ROUGE-2 of that pair is low and ROUGE-L lower than ROUGE-1 because word order differs:
# ROUGE-L rewards only the words that appear in the same order in both.
#
# (ch11-qa)=
# ## Task 2: extractive question answering
#
# ```{admonition} Seed erratum E33 · 应用场景 (lines 120, 290)
# :class: seed-erratum
# The seed says: 「模型能够更好地理解问题的意图，并生成更相关的答案」
# **Correction:** in extractive QA (SQuAD, and this section) the model does not generate
# the answer: it scores start and end positions and selects a span of the passage.
# Entry: {ref}`E33 <errata-e33>`; evidence: {ref}`ch11-qa`.
# ```
#
# In extractive QA the answer is a **span** of a given text, as in SQuAD. Our texts are
# bAbI-style stories {cite:p}`weston2015towards` from `attnkit.data.stories`: each person
# goes to one place, each object is taken by one person, and the sentences are shuffled.
# Three kinds of question, each with its answer span:
#
# - `where is {person} ?` → the place of that person's move (one supporting fact);
# - `who has the {object} ?` → the person of the `took` sentence (one fact);
# - `where is the {object} ?` → the place of the *carrier's* move: two facts, the `took`
#   sentence and then the carrier's `went to` sentence, wherever it is in the story.
#
# The test set is built against memorisation: some (person, place) pairs never occur in
# training or validation stories, and every test answer rests on one of them.

# %%
qa = stories.story_splits()  # 4000 / 500 / 1000 stories of 3 people and 1 object, seed 0
for ex in qa["train"][:2] + qa["test"][:1]:
    print(ex.story_text)
    print("   Q:", " ".join(ex.question), "| A:", repr(ex.answer), f"| hops {ex.hops}")
print({k: len(v) for k, v in qa.items()})
qa_texts = {k: {ex.story_text for ex in v} for k, v in qa.items()}
assert not qa_texts["train"] & qa_texts["test"] and not qa_texts["train"] & qa_texts["val"], (
    "expected no training story in the test or validation set; found "
    f"{len(qa_texts['train'] & qa_texts['test'])} and {len(qa_texts['train'] & qa_texts['val'])}"
)
assert not any(stories.held_out_moves(ex) for ex in qa["train"] + qa["val"]), (
    "claim no longer holds: 'some (person, place) pairs never occur in training or validation "
    f"stories' (measured {sum(bool(stories.held_out_moves(ex)) for ex in qa['train'] + qa['val'])}"
    " stories with one)"
)
assert all(stories.answer_rests_on_held_out(ex) for ex in qa["test"]), (
    "claim no longer holds: 'every test answer rests on one of them' (measured "
    f"{sum(not stories.answer_rests_on_held_out(ex) for ex in qa['test'])} test answers"
    " that do not)"
)

# %% [markdown]
# The reader sees `[CLS] question [SEP] story` and gives every story token a start score
# $s_i$ and an end score $e_j$ (one linear layer on the encoder's output), as BERT does
# for SQuAD {cite:p}`devlin2019bert`. Training minimises
# $\tfrac12\left(-\log \mathrm{softmax}(s)_{i^*} - \log \mathrm{softmax}(e)_{j^*}\right)$
# over story positions; at test time the answer is the legal span with the highest
# $s_i + e_j$:
#
# $$
# (\hat\imath, \hat\jmath) = \arg\max_{i \le j < i + L_{\max}} \; s_i + e_j ,
# $$
#
# computed for all pairs at once in `best_span` (a $T \times T$ score table, masked to
# the band $i \le j < i + L_{\max}$ and to story positions). The attention model is a
# two-layer Transformer encoder with rotary positions; the baseline a two-layer
# bidirectional GRU with the same head. Both are trained for the same
# {glue:text}`ch11_qa_steps` steps on batches of 64, with the same learning-rate schedule
# (peak $10^{-3}$), once per seed (0, 1, 2); the validation curves are drawn for seed 0.

# %%
# NBVAL_IGNORE_OUTPUT
qa_enc = {k: stories.encode_qa(v) for k, v in qa.items()}


def qa_loss(model, b):
    s, e = model(b["input_ids"], b["segment_ids"], b["attention_mask"])[:2]
    return span_loss(s, e, b["start_positions"], b["end_positions"], b["context_mask"])


def qa_predict(model, split):
    b = qa_enc[split]
    with torch.no_grad():
        s, e = model(b["input_ids"], b["segment_ids"], b["attention_mask"])[:2]
    st, en = best_span(s, e, b["context_mask"], max_answer_len=3)
    return [stories.span_text(ex, int(i), int(j)) for ex, i, j in zip(qa[split], st, en)]


def qa_score(model, split):
    return squad_scores(qa_predict(model, split), [ex.answer for ex in qa[split]])


QA_STEPS = 500  # the same for both readers
qa_models = {
    "Transformer": lambda: SpanQATransformer(len(stories.VOCAB), 64, 4, 128, 2, 64, dropout=0.0),
    "BiGRU": lambda: SpanQAGRU(len(stories.VOCAB), 64, 64, 2, dropout=0.0),
}
qa_trained, qa_hist = {}, {}  # the seed-0 readers and their validation curves
qa_em = {name: {"all": [], 1: [], 2: []} for name in qa_models}  # test EM per seed
qa_f1_equals_em = True
for name, make in qa_models.items():
    for seed in SEEDS:
        ak.seed_everything(seed)
        model = make()
        cfg = ak.TrainConfig(
            steps=QA_STEPS, lr=1e-3, warmup_steps=50, eval_every=100 if seed == 0 else QA_STEPS,
            seed=seed,
        )  # fmt: skip
        batches = sample_batches(qa_enc["train"], 64, seed=seed)
        evaluate = (lambda m: qa_score(m, "val")) if seed == 0 else None  # curves: seed 0
        res = ak.train(model, qa_loss, batches, cfg, evaluate=evaluate)
        model.eval()
        preds = qa_predict(model, "test")
        sc = squad_scores(preds, [ex.answer for ex in qa["test"]])
        qa_f1_equals_em &= sc["f1"] == sc["exact_match"]
        qa_em[name]["all"].append(sc["exact_match"])
        for h in (1, 2):
            sel = [i for i, ex in enumerate(qa["test"]) if ex.hops == h]
            sub = squad_scores([preds[i] for i in sel], [qa["test"][i].answer for i in sel])
            qa_em[name][h].append(sub["exact_match"])
        if seed == 0:
            qa_trained[name], qa_hist[name] = model, res.history
            n_par = ak.count_parameters(model)
            print(f"{name}: {n_par:,} parameters, {res.seconds:.1f} s (seed 0)")
qa_em = {name: {k: np.array(v) for k, v in d.items()} for name, d in qa_em.items()}

# %%
print(f"test exact match (%) over seeds {SEEDS}: mean ± std [min, max]")
for name, d in qa_em.items():
    print(f"{name:12s} all {spread(d['all'])} | 1 hop {spread(d[1])} | 2 hops {spread(d[2])}")
RESULTS["QA (test EM)"] = {k: v["all"] / 100 for k, v in qa_em.items()}

fig, ax = plt.subplots(figsize=(6, 3.5))
for name, hist in qa_hist.items():
    ax.plot([h["step"] for h in hist], [h["exact_match"] for h in hist], marker="o", label=name)
ax.set_xlabel("training step")
ax.set_ylabel("validation EM (%)")
ax.set_title("Extractive QA: validation exact match during training (seed 0)")
ax.legend()
plt.tight_layout()
plt.show()

# %%
em_tf, em_gru = qa_em["Transformer"]["all"], qa_em["BiGRU"]["all"]
qa_gap = em_tf.mean() - em_gru.mean()
qa_tf_wins = int((em_tf > em_gru).sum())  # seeds where the Transformer reader is ahead
assert (em_tf != em_gru).all(), f"expected no tie between the readers ({em_tf}, {em_gru})"
assert 0 < qa_tf_wins < len(SEEDS), (
    "claim no longer holds: 'neither reader is ahead with every seed' (measured Transformer "
    f"{em_tf}, GRU {em_gru})"
)
assert np.ptp(em_tf) > 20 and np.ptp(em_gru) < 10, (
    "claim no longer holds: 'the Transformer's exact match spreads over more than 20 points "
    f"across the seeds, the GRU's over less than 10' (measured {em_tf} and {em_gru})"
)
assert em_tf.max() >= 65 and em_gru.max() <= 55, (
    "claim no longer holds: 'the best Transformer run at least 65%, every GRU run at most "
    f"55%' (measured {em_tf} and {em_gru})"
)
assert qa_f1_equals_em, "claim no longer holds: 'F1 equals EM here' (one-word answers)"
for name, key in (("Transformer", "tf"), ("BiGRU", "gru")):
    for h in (1, 2):
        glue(f"ch11_qa_{key}_hop{h}", float(qa_em[name][h].mean()), display=False)
    glue(f"ch11_qa_{key}_min", float(qa_em[name]["all"].min()), display=False)
    glue(f"ch11_qa_{key}_max", float(qa_em[name]["all"].max()), display=False)
glue("ch11_qa_steps", QA_STEPS, display=False)
glue("ch11_qa_gap", float(qa_gap), display=False)
glue("ch11_qa_tf_wins", qa_tf_wins, display=False)

# %% tags=["remove-cell"]
# Figures quoted by the closing chapter ("Summary"), recorded with myst-nb's glue
# (this cell displays nothing and is hidden in the book).
glue("ch11_em_transformer", float(em_tf.mean()), display=False)
glue("ch11_em_bigru", float(em_gru.mean()), display=False)

# %% [markdown]
# The three seeds do not agree on a winner. After the same
# {glue:text}`ch11_qa_steps` steps the GRU reader is stable, from
# {glue:text}`ch11_qa_gru_min:.1f` to {glue:text}`ch11_qa_gru_max:.1f`% exact match
# (mean {glue:text}`ch11_em_bigru:.1f`%), while the Transformer reader depends on the
# seed: from {glue:text}`ch11_qa_tf_min:.1f` to {glue:text}`ch11_qa_tf_max:.1f`% (mean
# {glue:text}`ch11_em_transformer:.1f`%; asserted: a spread of more than 20 points against
# less than 10). It is ahead of the GRU with {glue:text}`ch11_qa_tf_wins` of the
# {glue:text}`ch11_n_seeds` seeds and behind with the rest (asserted: neither reader is
# ahead with every seed, and no seed ties). One reading, not tested here: the Transformer
# learns this task late, and at this budget each run stops at a different point of that
# climb. The curve drawn above and the look inside below are seed 0's. Per kind of
# question, on average over the seeds, the Transformer answers
# {glue:text}`ch11_qa_tf_hop1:.1f`% of the one-hop questions and
# {glue:text}`ch11_qa_tf_hop2:.1f`% of the two-hop ones (`where is the {object} ?`, which
# need the reader to find the carrier in one sentence and the carrier's move in another);
# the GRU reader {glue:text}`ch11_qa_gru_hop1:.1f`% and {glue:text}`ch11_qa_gru_hop2:.1f`%.
# F1 equals EM here because every answer is a single word; on SQuAD, with longer answers,
# F1 gives partial credit for overlapping spans.
#
# Two cautions keep this honest. The models are tiny and the training short
# ({glue:text}`ch11_qa_steps` steps of 64 stories): the result is a statement about this
# budget, and given many more steps either reader may solve the task. (On the original
# bAbI tasks {cite:p}`weston2015towards`, memory networks trained with the supporting
# facts marked solve the one- and two-fact tasks, while the paper's LSTM reaches 50% and
# 20%; those figures were checked in a secondary copy of the paper's table.) And the
# Transformer uses *rotary* positions, which make "the word four to the left" the same
# pattern in every sentence; where it does win, this inductive bias may help it as much
# as attention as such (not measured here: separating the two would take the same reader
# with other positions).

# %% [markdown]
# **A look inside.** Which story tokens does the predicted start token of the seed-0
# Transformer attend to? For a two-hop question we plot the last layer's attention from the
# predicted start position, averaged over heads.

# %%
ex_i = next(i for i, ex in enumerate(qa["test"]) if ex.hops == 2)
ex = qa["test"][ex_i]
b1 = stories.encode_qa([ex])
reader = qa_trained["Transformer"]
with torch.no_grad():
    s1, e1, w1 = reader(b1["input_ids"], b1["segment_ids"], b1["attention_mask"], need_weights=True)
st1, en1 = best_span(s1, e1, b1["context_mask"], 3)
row = w1[-1][0, :, int(st1)].mean(0)  # (T,) attention of the start token, mean over heads
tokens1 = ["[CLS]", *ex.question, "[SEP]", *ex.story]
fig, ax = plt.subplots(figsize=(11, 2.8))
ax.bar(range(len(tokens1)), row.numpy())
ax.set_xticks(range(len(tokens1)), tokens1, rotation=90, fontsize=7)
ax.set_ylabel("attention weight")
ax.set_title(
    f"Q: {' '.join(ex.question)}  predicted {stories.span_text(ex, int(st1), int(en1))!r}, "
    f"gold {ex.answer!r}: last layer, from the predicted start"
)
plt.tight_layout()
plt.show()
assert torch.allclose(row.sum(), torch.tensor(1.0), atol=1e-5), (
    f"expected the attention row to sum to 1; found {row.sum().item():.6g}"
)

# %% [markdown]
# (ch11-summarization)=
# ## Task 3: summarization
#
# `attnkit.data.summaries` writes five-sentence reports. One or two sentences report an
# **event** (`{person} was {arrested|elected|injured} in {city} on {day} .`); the others
# are filler that mention people and cities too. The reference summary follows a rule:
# each event, in document order, compressed to `{person} {verb} {city}`, joined by `;`.
# The summary therefore needs content selection (only the verb marks an event) and
# compression. **Lead-k**, the first $k$ sentences, is the classic extractive baseline of
# news summarization {cite:p}`see2017get`, strong on news because journalists put the
# important facts first; here the events sit anywhere.

# %%
sm = summaries.summary_splits()  # 4000 / 300 / 500, seed 0
for ex in sm["train"][:2]:
    print(ex.document, "\n   ->", ex.summary)
sm_texts = {k: {ex.document for ex in v} for k, v in sm.items()}
assert not sm_texts["train"] & sm_texts["test"] and not sm_texts["train"] & sm_texts["val"], (
    "expected no training document in the test or validation set; found "
    f"{len(sm_texts['train'] & sm_texts['test'])} and {len(sm_texts['train'] & sm_texts['val'])}"
)
sm_refs = {k: [ex.summary for ex in v] for k, v in sm.items()}
lead = {
    k: rouge([summaries.lead_k(ex, k) for ex in sm["test"]], sm_refs["test"]) for k in (1, 2, 3)
}
for k, sc in lead.items():
    print(f"Lead-{k}:", {m: round(v, 1) for m, v in sc.items()})
first_is_event = np.mean([ex.event_indices[0] == 0 for ex in sm["test"]])
print(f"the first sentence is an event in {first_is_event:.0%} of the test documents")
doc_tokens = [len(ex.document.split()) for v in sm.values() for ex in v]
summary_words = [len(ex.summary.replace(" ;", "").split()) for v in sm.values() for ex in v]
print(f"documents: {min(doc_tokens)} to {max(doc_tokens)} tokens; summaries: at most "
      f"{max(summary_words)} words")  # fmt: skip
glue("ch11_doc_tokens_min", min(doc_tokens), display=False)
glue("ch11_doc_tokens_max", max(doc_tokens), display=False)
glue("ch11_summary_words_max", max(summary_words), display=False)

# %% [markdown]
# Lead-k's ROUGE-2 is zero: the reference bigram "tom injured" never occurs in a document,
# where it reads "tom was injured". An extract cannot compress. Now two abstractive models
# that generate the summary token by token: the encoder–decoder Transformer of chapter 3
# (`ak.Seq2SeqTransformer`, decoded with `ak.greedy_translate`), whose decoder
# cross-attends to every document token, and a GRU encoder–decoder **without** attention
# {cite:p}`sutskever2014sequence,cho2014learning`, whose decoder sees the document only
# through the encoder's final state.

# %%
# NBVAL_IGNORE_OUTPUT
sm_enc = {k: summaries.encode_summaries(v) for k, v in sm.items()}
V_m = len(summaries.VOCAB)
BOS_ID, EOS_ID = summaries.WORD_TO_ID[summaries.BOS], summaries.WORD_TO_ID[summaries.EOS]
SM_STEPS = 200  # the same for both models


def sm_loss(model, b):
    logits = model(b["src"], b["tgt_in"])  # (B, L, V)
    return F.cross_entropy(logits.reshape(-1, V_m), b["tgt_out"].reshape(-1), ignore_index=0)


def sm_generate(model, split):
    src = sm_enc[split]["src"]
    if isinstance(model, GRUSeq2Seq):
        ids = rnn_greedy_decode(model, src, bos_id=BOS_ID, eos_id=EOS_ID, max_len=12)
    else:
        ids = ak.greedy_translate(model, src, bos_id=BOS_ID, eos_id=EOS_ID, max_len=12)
    return [summaries.decode_ids(r) for r in ids]


def sm_score(model, split):
    return rouge(sm_generate(model, split), sm_refs[split])


sm_models = {
    "Transformer": (
        lambda: ak.Seq2SeqTransformer(
            V_m, V_m, d_model=64, num_heads=4, d_ff=128, dropout=0.0, max_len=64
        ),
        3e-3,
    ),
    "GRU, no attention": (lambda: GRUSeq2Seq(V_m, V_m, d_model=64, hidden=128, dropout=0.0), 3e-3),
}
sm_trained, sm_hist = {}, {}  # the seed-0 models and their validation curves
sm_scores = {name: {"rouge2": [], "rougeL": [], "loss": []} for name in sm_models}  # per seed
for name, (make, lr) in sm_models.items():
    for seed in SEEDS:
        ak.seed_everything(seed)
        model = make()
        cfg = ak.TrainConfig(  # logged every 50 steps: the loss is a mean over 50 steps
            steps=SM_STEPS, lr=lr, warmup_steps=50, eval_every=SM_STEPS // 4, seed=seed
        )
        batches = sample_batches(sm_enc["train"], 64, seed=seed)
        evaluate = (lambda m: sm_score(m, "val")) if seed == 0 else None  # curves: seed 0
        res = ak.train(model, sm_loss, batches, cfg, evaluate=evaluate)
        model.eval()
        sc = sm_score(model, "test")
        sm_scores[name]["rouge2"].append(sc["rouge2"])
        sm_scores[name]["rougeL"].append(sc["rougeL"])
        sm_scores[name]["loss"].append(res.history[-1]["train_loss"])  # last 50 steps
        if seed == 0:
            sm_trained[name], sm_hist[name] = model, res.history
            n_par = ak.count_parameters(model)
            print(f"{name}: {n_par:,} parameters, {res.seconds:.1f} s (seed 0)")
sm_scores = {name: {k: np.array(v) for k, v in d.items()} for name, d in sm_scores.items()}

# %%
print(f"test ROUGE (%) over seeds {SEEDS}: mean ± std [min, max]")
for name, d in sm_scores.items():
    print(f"{name:18s} ROUGE-2 {spread(d['rouge2'])} | ROUGE-L {spread(d['rougeL'])}"
          f" | training loss, last 50 steps {spread(d['loss'])}")  # fmt: skip
print(f"{'Lead-3':18s} ROUGE-2 {lead[3]['rouge2']:.3f} | ROUGE-L {lead[3]['rougeL']:.3f}")
gen_t = sm_generate(sm_trained["Transformer"], "test")
for i in range(3):
    print(f"  ref: {sm_refs['test'][i]!r:40s} Transformer (seed 0): {gen_t[i]!r}")
shown = [(gen_t[i].split(), sm_refs["test"][i].split()) for i in range(3)]
assert len(set(gen_t[:3])) == 1 and all(  # one summary of the right form, for 3 documents
    len(g) == 3 and g[1] in summaries.EVENT_VERBS and g[0] != r[0] for g, r in shown
), (
    "claim no longer holds: 'a name, an event verb and a city, the same for every document"
    f" printed, with the wrong name' (printed {gen_t[:3]}, references {sm_refs['test'][:3]})"
)
RESULTS["summarization (test ROUGE-L)"] = {k: v["rougeL"] / 100 for k, v in sm_scores.items()}
RESULTS["summarization (test ROUGE-L)"]["Lead-3"] = np.array([lead[3]["rougeL"] / 100])

fig, ax = plt.subplots(figsize=(6, 3.5))
for name, hist in sm_hist.items():
    ax.plot([h["step"] for h in hist], [h["rougeL"] for h in hist], marker="o", label=name)
ax.axhline(lead[3]["rougeL"], color="gray", ls="--", label="Lead-3")
ax.set_xlabel("training step")
ax.set_ylabel("validation ROUGE-L (%)")
ax.set_title("Summarization: validation ROUGE-L during training (seed 0)")
ax.legend()
plt.tight_layout()
plt.show()

# %%
assert lead[1]["rouge2"] == lead[2]["rouge2"] == lead[3]["rouge2"] == 0.0, (
    "claim no longer holds: 'Lead-k's ROUGE-2 is zero' (measured "
    f"{[round(lead[k]['rouge2'], 3) for k in (1, 2, 3)]})"
)
assert lead[3]["rougeL"] < 30 and 0.2 < first_is_event < 0.45, (
    "claim no longer holds: 'here the events sit anywhere' (measured Lead-3 ROUGE-L "
    f"{lead[3]['rougeL']:.3g}, first sentence an event in {first_is_event:.3g})"
)
sm_tf, sm_gru = sm_scores["Transformer"], sm_scores["GRU, no attention"]
assert sm_gru["rougeL"].min() > sm_tf["rougeL"].max() + 10, (
    "claim no longer holds: 'the worst GRU run more than 10 ROUGE-L points above the best "
    f"Transformer run' (measured {sm_gru['rougeL']} and {sm_tf['rougeL']})"
)
assert (sm_tf["rouge2"] < sm_gru["rouge2"] / 2).all(), (  # "little ROUGE-2"
    "claim no longer holds: 'little ROUGE-2, with every seed' (measured Transformer "
    f"{sm_tf['rouge2']}, GRU {sm_gru['rouge2']})"
)
assert (sm_tf["loss"] > sm_gru["loss"]).all(), (
    "claim no longer holds: 'the Transformer's training loss over the last 50 steps is "
    f"higher, with every seed' (measured {sm_tf['loss']} vs GRU {sm_gru['loss']})"
)
n_below_lead = int((sm_tf["rougeL"] < lead[3]["rougeL"]).sum())
for name, key in (("Transformer", "tf"), ("GRU, no attention", "gru")):
    for metric in ("rougeL", "rouge2", "loss"):
        glue(f"ch11_sm_{key}_{metric}", float(sm_scores[name][metric].mean()), display=False)
        glue(f"ch11_sm_{key}_{metric}_min", float(sm_scores[name][metric].min()), display=False)
        glue(f"ch11_sm_{key}_{metric}_max", float(sm_scores[name][metric].max()), display=False)
glue("ch11_sm_lead3_rougeL", lead[3]["rougeL"], display=False)
glue("ch11_sm_tf_below_lead", n_below_lead, display=False)
glue("ch11_sm_steps", SM_STEPS, display=False)
glue("ch11_first_is_event", float(first_is_event), display=False)

# %% [markdown]
# This result goes against the seed's claim, and it is worth reading carefully. After the
# same {glue:text}`ch11_sm_steps` steps, the GRU **without** attention reaches a test
# ROUGE-L of {glue:text}`ch11_sm_gru_rougeL:.1f` on average
# ({glue:text}`ch11_sm_gru_rougeL_min:.1f` to {glue:text}`ch11_sm_gru_rougeL_max:.1f`)
# and the Transformer {glue:text}`ch11_sm_tf_rougeL:.1f`
# ({glue:text}`ch11_sm_tf_rougeL_min:.1f` to {glue:text}`ch11_sm_tf_rougeL_max:.1f`;
# asserted: the worst GRU run more than 10 points above the best Transformer run).
# Neither has finished learning the rule in so few steps, but the GRU is further along:
# the Transformer's training loss over the last 50 steps is
# {glue:text}`ch11_sm_tf_loss:.2f` nats on average against the GRU's
# {glue:text}`ch11_sm_gru_loss:.2f` (asserted: higher with every seed). The seed-0
# Transformer's summaries printed above have the format of a summary (a name, an event
# verb, a city), but they are one and the same summary for three different documents,
# with the wrong name each time (asserted), so its ROUGE comes from the right kinds of
# words, with little ROUGE-2
# ({glue:text}`ch11_sm_tf_rouge2:.1f` on average against the GRU's
# {glue:text}`ch11_sm_gru_rouge2:.1f`; asserted: less than half, with every seed). In
# {glue:text}`ch11_sm_tf_below_lead` of the {glue:text}`ch11_n_seeds` runs it is even
# below Lead-3 ({glue:text}`ch11_sm_lead3_rougeL:.1f` ROUGE-L), an extract that can
# neither select the event sentences nor compress them (its ROUGE-2 is zero).
#
# Why is the GRU, which must squeeze the whole document into one state, ahead here? The
# documents are {glue:text}`ch11_doc_tokens_min` to {glue:text}`ch11_doc_tokens_max`
# tokens and the summaries at most {glue:text}`ch11_summary_words_max` words, little to
# carry in a 128-dimensional state. The encoder–decoder without attention degrades on
# *long* inputs, which is what attention was introduced to fix
# {cite:p}`bahdanau2014neural`; the large gains of Transformers in summarization
# {cite:p}`liu2019text,lewis2020bart` come with long documents, large data and
# pre-training, none of which this experiment has. What it shows is narrower: at this
# budget ({glue:text}`ch11_sm_steps` steps, no tuning of either model, three seeds), the
# GRU, whose recurrence gives it word order and locality for free, learns the rule
# faster. The Transformer has to learn "the name two tokens before the event verb" from
# *absolute* sinusoidal positions; the QA model above uses rotary positions, which put
# relative offsets into the attention scores directly. One small task at one budget is
# not a verdict on either architecture.

# %% [markdown]
# **A look inside.** The cross-attention of the seed-0 Transformer shows which document
# tokens each summary token was generated from (last decoder layer, mean over heads).

# %%
ex = sm["test"][0]
src1 = sm_enc["test"]["src"][:1]
out1 = ak.greedy_translate(
    sm_trained["Transformer"], src1, bos_id=BOS_ID, eos_id=EOS_ID, max_len=12
)
words_out = summaries.decode_ids(out1[0]).split()
tgt_in1 = torch.tensor([[BOS_ID] + [summaries.WORD_TO_ID[w] for w in words_out]])
with torch.no_grad():
    cross1 = sm_trained["Transformer"].cross_attention_weights(src1, tgt_in1)[-1][0].mean(0)
doc_words = ex.document.split()
fig, ax = plt.subplots(figsize=(11, 3))
ax.imshow(cross1[:, : len(doc_words)].numpy(), aspect="auto", cmap="viridis")
ax.set_xticks(range(len(doc_words)), doc_words, rotation=90, fontsize=7)
ax.set_yticks(range(len(words_out) + 1), ["[BOS]", *words_out])
ax.set_xlabel("document token (key)")
ax.set_ylabel("decoder input (query)")
ax.set_title("Summarization: cross-attention of the last decoder layer (mean over heads)")
plt.tight_layout()
plt.show()
assert torch.allclose(cross1.sum(-1), torch.ones(cross1.shape[0]), atol=1e-5), (
    "expected each cross-attention row to sum to 1; largest deviation "
    f"{(cross1.sum(-1) - 1).abs().max().item():.3g}"
)

# %% [markdown]
# (ch11-results)=
# ## Results
#
# All numbers are on the test sets, from the runs above; accuracy and EM as fractions,
# ROUGE-L as a fraction of 1. Within a task every model had the same number of steps, and
# each model was trained with the same {glue:text}`ch11_n_seeds` seeds (0, 1, 2: initial
# weights and batch order). The same steps are not the same compute or size: the models'
# parameter counts and times per step differ (printed above for the QA and summarization
# models), and no model was tuned. The table gives mean ± standard deviation and the
# range; the plot shows the mean as a bar, the range as whiskers and every run as a dot.
# Three seeds give a first idea of the spread, not a confidence interval: the comparisons
# below are asserted seed by seed or on the worst and best runs (for example the best
# Transformer summarizer against the worst GRU one), not on the means alone.

# %%
rows = []
print(f"{'task':30s} {'model':18s} mean ± std [min, max] over seeds {SEEDS}")
for task_name, scores in RESULTS.items():
    for model_name, v in scores.items():
        rows.append((task_name, model_name, v))
        cell = spread(v) if len(v) > 1 else f"{v[0]:.3f} (no training: one value)"
        print(f"{task_name:30s} {model_name:18s} {cell}")
fig, axes = plt.subplots(1, len(RESULTS), figsize=(13, 3.5))
for ax, (task_name, scores) in zip(axes, RESULTS.items()):
    for i, v in enumerate(scores.values()):
        ax.bar(i, v.mean(), color=f"C{i}", alpha=0.6)
        if len(v) > 1:  # the range over the seeds, and each seed's score
            ax.errorbar(i, v.mean(), yerr=[[v.mean() - v.min()], [v.max() - v.mean()]],
                        color="k", capsize=4)  # fmt: skip
            ax.plot([i] * len(v), v, "k.", ms=5)
    ax.set_xticks(range(len(scores)), list(scores), rotation=20)
    ax.set_ylim(0, 1.05)
    ax.set_title(task_name)
    ax.set_ylabel("score")
plt.suptitle(
    f"Attention model vs baselines on three tasks (test sets; bars: mean of {len(SEEDS)} "
    "seeds, whiskers: min to max, dots: each seed)"
)
plt.tight_layout()
plt.show()
assert len(rows) == 3 + 2 + 3, f"expected 3 + 2 + 3 result rows; found {len(rows)}"
assert all(len(v) == len(SEEDS) for _, m, v in rows if m != "Lead-3"), (
    f"expected {len(SEEDS)} seeds for every trained model"
)

# %% [markdown]
# What the table shows, task by task, against the seed's list:
#
# - **Sentiment.** Keywords alone (the bag of words) fail on negation and contrast with
#   every seed, and the GRU, with no attention at all, is ahead of the Transformer with
#   every seed at this budget. Word order and scope decide.
# - **Question answering.** No winner at this budget: the Transformer reader is ahead
#   with {glue:text}`ch11_qa_tf_wins` of the {glue:text}`ch11_n_seeds` seeds and behind
#   with the rest, its exact match spread over more than 20 points, the GRU's over less
#   than 10. A single run could have been read as a clear win or as a loss; three
#   seeds show how much one run can mislead.
# - **Summarization.** The GRU encoder–decoder without attention wins at this budget and
#   input length, with every seed; the seed-0 Transformer writes summaries of the right
#   form, but the same one for each of the three documents printed, with the wrong name.
#   Lead-k shows why summarization needs content selection and compression.
#
# So "attention significantly improves performance" (显著提高模型的性能) is a claim about
# large models, long inputs and pre-training, which chapter 12 examines with the published
# numbers. On these small, short, clean tasks the outcome depended on the task and, for
# question answering, on the seed; the runs vary neither the budget nor the positional
# encodings, which may matter as much. It has to be measured.
#
# ## Summary
#
# - Each application uses attention differently: self-attention inside a reader or
#   classifier, cross-attention from a decoder to its source, attention pooling into one
#   vector.
# - Extractive QA predicts start and end scores and decodes the best legal span; SQuAD
#   scores it with exact match and token F1 after normalisation.
# - Summaries are scored with ROUGE-1/2/L; Lead-k is the extractive baseline, strong only
#   when the important sentences come first.
# - A fair comparison trains a baseline on the same data and budget, over several seeds,
#   and reports the spread. Here, with the same steps and three seeds each, a GRU beat
#   the Transformer on sentiment and summarization with every seed, and on QA the order
#   depended on the seed. That holds at this small budget, and the runs do not separate
#   attention from the way each model is given word order (recurrence; learned,
#   sinusoidal or rotary positions).

# %% [markdown]
# ## Exercises
#
# The exercises for this chapter are in `exercises/11_attention_at_work.ipynb`. You will
# write
#
# 1. `squad_f1`: SQuAD's normalisation and token F1;
# 2. `decode_span`: the best legal span from start and end logits;
# 3. `attention_pool`: attention pooling of a sequence with a padding mask;
# 4. `rouge_l_f`: ROUGE-L from the longest common subsequence, checked against
#    `rouge-score`;
# 5. `lead_k_summary`: the Lead-k baseline.
#
# Grade your work with `python -m attnkit.grade 11`.

# %% [markdown]
# (ch11-interview)=
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
# *This chapter answers the sentiment-analysis, question-answering and summarization parts
# (情感分析、问答系统、文本摘要); {doc}`chapter 3 <03_transformer>` answers machine translation,
# {doc}`chapter 4 <04_text_generation>` text generation.*
#
# **Model answer.** The useful answer names each task *and* the attention it uses.
# *Sentiment and other classification*: an encoder's self-attention builds contextual
# token states, pooled into one vector by a `[CLS]` token or attention pooling; what beats
# a bag of keywords is seeing order and scope ("not good", "... but great"), not "finding
# the sentiment keywords" as the source text puts it, and a recurrent network sees that
# too ({ref}`ch11-sentiment`). *Extractive question answering* (SQuAD): question and
# passage are encoded together, `[CLS] question [SEP] passage`, so self-attention relates
# every passage word to the question; a linear layer scores start and end positions, the
# answer is the best legal span, scored by exact match and token F1 ({ref}`ch11-qa`,
# {ref}`ch11-metrics`). *Summarization and translation*: encoder–decoder models, where the
# link between an output word and the source words is the decoder's **cross**-attention,
# not self-attention ({ref}`ch11-which-attention`, {ref}`ch11-summarization`); summaries
# are scored with ROUGE against a Lead-k baseline. *Generation*: decoder-only models with
# causal self-attention. The caveat an interviewer wants: attention is not automatically
# better. With the same number of training steps (three seeds each), a small GRU beat
# the Transformer on sentiment and summarization, and on question answering the winner
# depended on the seed ({ref}`ch11-results`); the large published
# gains came with pretraining and scale ({ref}`ch12-verdict`).
# ```

"""Every public callable of attnkit: a clear error on bad input, the right answer on edge input.

The registry ``CALLS`` maps each public callable (everything in the ``__all__`` of
``attnkit``, ``attnkit.efficient``, ``attnkit.models.*``, ``attnkit.decoding``,
``attnkit.metrics``, ``attnkit.interpret``, ``attnkit.training`` and ``attnkit.data.*``; the
public functions and classes defined in a module without ``__all__``) to one valid call.
``test_registry_covers_the_public_api`` fails when a public callable has no entry.

For each entry, hypothesis replaces one argument of the valid call by a bad value of the
kind its annotation allows (a float or a bool for an int, a string or 1 for a bool, NaN for
a float, a list or a tensor of the wrong dtype for a tensor, a bare string for a list of
strings, a non-module for a model, ...) plus the entry's own bad values (wrong ranks,
shapes that do not broadcast, ids out of range, negative sizes), and checks that the call
raises ``TypeError`` or ``ValueError`` with a message naming the argument. Records (plain
dataclasses and named tuples that attnkit returns) are called with valid values only: they
hold data and check nothing. The edge cases at the end compare against float64 references.
"""

from __future__ import annotations

import datetime
import importlib
import inspect
import math
import pkgutil
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import attnkit
import attnkit.data
import attnkit.models
from attnkit import efficient as eff
from attnkit import llm
from attnkit import metrics as met
from attnkit.data import acceptability as acc
from attnkit.data import (
    digit_strips,
    digits,
    retrieval,
    sentiment,
    stories,
    summaries,
    words,
)
from attnkit.models import bert, image_to_text, rnn_seq2seq, span_qa, vit
from attnkit.models import text_classifier as tc

pytestmark = pytest.mark.usefixtures("one_thread")

MODULES = [
    "attnkit",
    "attnkit.efficient",
    "attnkit.llm",
    "attnkit.decoding",
    "attnkit.metrics",
    "attnkit.interpret",
    "attnkit.training",
    *(f"attnkit.models.{m.name}" for m in pkgutil.iter_modules(attnkit.models.__path__)),
    *(f"attnkit.data.{m.name}" for m in pkgutil.iter_modules(attnkit.data.__path__)),
    "attnkit.data",  # last: what it re-exports is listed under its submodule
]


def public_callables() -> dict[str, Callable[..., Any]]:
    """``{"module.name": object}`` for every public callable, each object once (first
    module that exports it)."""
    found: dict[str, Callable[..., Any]] = {}
    seen: set[int] = set()
    for name in MODULES:
        module = importlib.import_module(name)
        names = getattr(module, "__all__", None)
        if names is None:
            names = [
                n
                for n, o in vars(module).items()
                if not n.startswith("_")
                and (inspect.isfunction(o) or inspect.isclass(o))
                and o.__module__ == name
            ]
        for n in names:
            obj = getattr(module, n)
            if callable(obj) and id(obj) not in seen:
                seen.add(id(obj))
                found[f"{name}.{n}"] = obj
    return found


# ------------------------------------------------------------------ shared small objects

g = torch.Generator().manual_seed(0)


def rnd(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=g, dtype=dtype)


def ids(*shape: int, high: int = 10) -> torch.Tensor:
    return torch.randint(0, high, shape, generator=g)


def ones(*shape: int) -> torch.Tensor:
    return torch.ones(*shape, dtype=torch.bool)


_cache: dict[str, Any] = {}


def thunk(f: Callable[[], Any]) -> Callable[[], Any]:
    """Mark a builder: the registry calls it for each call instead of passing it."""
    f.thunk = True  # type: ignore[attr-defined]
    return f


def cached(key: str, make: Callable[[], Any]) -> Any:
    if key not in _cache:
        torch.manual_seed(0)
        _cache[key] = make()
    return _cache[key]


@thunk
def lm() -> attnkit.TransformerLM:
    return cached("lm", lambda: attnkit.TransformerLM(12, 8, 2, 1, 16, 0.0, max_len=16))


@thunk
def s2s() -> attnkit.Seq2SeqTransformer:
    return cached(
        "s2s", lambda: attnkit.Seq2SeqTransformer(11, 12, 8, 2, 1, 1, 16, 0.0, max_len=16)
    )


@thunk
def clf() -> tc.TransformerClassifier:
    return cached("clf", lambda: tc.TransformerClassifier(10, 2, 8, 2, 1, 16, 16, 0.0))


@thunk
def bert_cfg() -> bert.BertConfig:
    return bert.BertConfig(vocab_size=20, d_model=8, num_heads=2, num_layers=1, d_ff=16, max_len=8)


def bert_model() -> bert.BertModel:
    return cached("bert_model", lambda: bert.BertModel(bert_cfg()))


@thunk
def bert_pt() -> bert.BertForPreTraining:
    return cached("bert", lambda: bert.BertForPreTraining(bert_cfg()))


@thunk
def vit_cfg() -> vit.ViTConfig:
    return vit.ViTConfig(8, 4, 1, 8, 2, 1, 16, 0)


def vit_model() -> vit.ViT:
    return cached("vit", lambda: vit.ViT(vit_cfg()))


@thunk
def i2t() -> image_to_text.ImageToText:
    return cached(
        "i2t", lambda: image_to_text.ImageToText(vit_cfg(), 12, num_decoder_layers=1, max_len=8)
    )


@thunk
def gru() -> rnn_seq2seq.GRUSeq2Seq:
    return cached("gru", lambda: rnn_seq2seq.GRUSeq2Seq(11, 12, 8, 8, 1, 0.0))


@thunk
def qa_examples() -> list[stories.QAExample]:
    return cached("qa", lambda: stories.story_splits(4, 2, 2, seed=0)["train"])


@thunk
def docs() -> list[summaries.SummaryExample]:
    return cached("docs", lambda: summaries.summary_splits(3, 2, 2, seed=0)["train"])


@thunk
def senti() -> list[sentiment.SentimentExample]:
    return cached("senti", lambda: sentiment.make_sentiment_examples(4, seed=0))


@thunk
def wtok() -> words.WordTokenizer:
    return cached("wtok", lambda: words.WordTokenizer(["a", "b", "c"]))


@thunk
def strips() -> digit_strips.Strips:
    return cached("strips", lambda: digit_strips.make_strips(split(), 4, seed=0))


@thunk
def split() -> digits.Split:
    return cached("split", lambda: digits.digit_splits().test)


@thunk
def attn_maps() -> list[torch.Tensor]:
    return [torch.softmax(rnd(2, 2, 4, 4), -1) for _ in range(2)]


@thunk
def day() -> datetime.date:
    return datetime.date(2020, 2, 29)


# ------------------------------------------------------------------------------ registry


@dataclass
class Entry:
    """One valid call (``make() -> (args, kwargs)``), extra bad values per argument, the
    arguments not to perturb automatically, and whether the callable is a plain record."""

    make: Callable[[], tuple[tuple, dict]]
    bad: dict[str, list[Any]] = field(default_factory=dict)
    keep: frozenset[str] = frozenset()
    record: bool = False


def E(*args: Any, bad: dict | None = None, keep: tuple = (), **kwargs: Any) -> Entry:
    """An entry whose valid call is fixed; tensors are rebuilt each time by thunks."""

    def make() -> tuple[tuple, dict]:
        def ev(x: Any) -> Any:
            thunk = getattr(x, "__name__", "") == "<lambda>" or getattr(x, "thunk", False)
            return x() if callable(x) and thunk else x

        return tuple(ev(a) for a in args), {k: ev(v) for k, v in kwargs.items()}

    return Entry(make, bad or {}, frozenset(keep))


def R(*args: Any, **kwargs: Any) -> Entry:
    e = E(*args, **kwargs)
    e.record = True
    return e


NAN = float("nan")
QKV = (lambda: rnd(2, 3, 4), lambda: rnd(2, 5, 4), lambda: rnd(2, 5, 6))

CALLS: dict[str, Entry] = {
    # ----------------------------------------------------------------------- attnkit.llm
    "attnkit.llm.DecoderLM": E(
        10, 8, 2, lambda: lambda i: torch.nn.Identity(), d_ff=12, bad={"vocab_size": [0]}
    ),
    "attnkit.llm.SwiGLU": E(8, 12, bad={"d_ff": [0]}),
    "attnkit.llm.hybrid_mixer": E(
        lambda: ["a", "b"], lambda: {"a": torch.nn.Identity, "b": torch.nn.Identity}
    ),
    "attnkit.llm.lm_loss": E(
        lambda: llm.DecoderLM(10, 8, 1, lambda i: torch.nn.Identity()),
        lambda: torch.randint(0, 10, (2, 5)),
    ),
    "attnkit.llm.DecoderTrace": R(
        lambda: rnd(1, 2, 3), lambda: [None], lambda: [None], lambda: [None]
    ),
    "attnkit.llm.attention_logits": E(
        lambda: llm.LLMSelfAttention(8, 2, qk_norm=True, softcap=5.0),
        lambda: rnd(2, 3, 8),
        bad={"x": [rnd(2, 3, 4), rnd(3, 8)]},
    ),
    "attnkit.llm.first_token_share": E(
        lambda: torch.softmax(rnd(2, 3, 4, 4), -1),
        start=1,
        bad={"weights": [rnd(2, 3, 4, 5), rnd(3, 4, 4)], "start": [-1, 4]},
    ),
    "attnkit.llm.trace_decoder": E(
        lambda: llm.DecoderLM(10, 8, 2, lambda i: llm.LLMSelfAttention(8, 2)),
        lambda: torch.randint(0, 10, (2, 5)),
        bad={"idx": [torch.tensor([[10]]), torch.zeros(5).long()]},
    ),
    "attnkit.llm.DeltaNetAttention": E(8, 2, gated=True, chunk_size=4, bad={"num_heads": [3]}),
    "attnkit.llm.DifferentialAttention": E(8, 2, layer=2, bad={"num_heads": [3], "layer": [0]}),
    "attnkit.llm.KVLayout": E(
        "toy",
        2,
        "gqa",
        4,
        head_dim=8,
        num_kv_heads=2,
        source="test",
        bad={"kind": ["mqa"], "num_kv_heads": [3], "num_layers": [0]},
    ),
    "attnkit.llm.LLMSelfAttention": E(
        8,
        2,
        num_kv_heads=1,
        rope_base=100.0,
        qk_norm=True,
        softcap=5.0,
        output_gate=True,
        score="softmax",
        window=3,
        num_sinks=1,
        alibi=False,
        bad={
            "score": ["relu"],
            "num_kv_heads": [3],
            "window": [0],
            "softcap": [-1.0],
            "alibi": [True],
        },
    ),
    "attnkit.llm.LatentKVCache": E(lambda: rnd(1, 3, 4), lambda: rnd(1, 3, 2)),
    "attnkit.llm.MultiHeadLatentAttention": E(
        16, 2, 4, 6, 2, q_latent_dim=5, rope_base=100.0, bad={"rope_dim": [3], "latent_dim": [0]}
    ),
    "attnkit.llm.SinkCache": E(3, 1, bad={"window": [0], "num_sinks": [-1]}),
    "attnkit.llm.recompute_window_logits": E(
        lambda: llm.DecoderLM(10, 8, 1, lambda i: llm.LLMSelfAttention(8, 2)),
        lambda: torch.randint(0, 10, (2, 7)),
        window=3,
        batch_size=2,
        bad={"window": [0], "batch_size": [0]},
    ),
    "attnkit.llm.streaming_logits": E(
        lambda: llm.DecoderLM(10, 8, 1, lambda i: llm.LLMSelfAttention(8, 2)),
        lambda: torch.randint(0, 10, (2, 7)),
        window=3,
        num_sinks=1,
        bad={"window": [0], "num_sinks": [-1], "idx": [torch.randint(10, 12, (2, 5))]},
    ),
    "attnkit.llm.PagedKVCache": E(4, 2, 1, 3, dtype=torch.float64, bad={"block_size": [0]}),
    "attnkit.llm.blocks_needed": E(5, 2, bad={"length": [-1], "block_size": [0]}),
    "attnkit.llm.delta_rule_chunkwise": E(
        lambda: rnd(1, 2, 5, 3),
        lambda: rnd(1, 2, 5, 3),
        lambda: rnd(1, 2, 5, 4),
        lambda: torch.rand(1, 2, 5),
        lambda: torch.rand(1, 2, 5),
        chunk_size=2,
        initial_state=lambda: rnd(1, 2, 4, 3),
        bad={"beta": [rnd(1, 2, 4)], "k": [rnd(1, 2, 5, 2)], "chunk_size": [0]},
    ),
    "attnkit.llm.delta_rule_recurrent": E(
        lambda: rnd(1, 2, 5, 3),
        lambda: rnd(1, 2, 5, 3),
        lambda: rnd(1, 2, 5, 4),
        lambda: torch.rand(1, 2, 5),
        lambda: torch.rand(1, 2, 5),
        initial_state=lambda: rnd(1, 2, 4, 3),
        bad={"alpha": [rnd(2, 5)], "initial_state": [rnd(1, 2, 3, 3)]},
    ),
    "attnkit.llm.differential_attention": E(
        lambda: rnd(2, 3, 4),
        lambda: rnd(2, 3, 4),
        lambda: rnd(2, 3, 4),
        lambda: rnd(2, 3, 4),
        lambda: rnd(2, 3, 8),
        0.5,
        lambda: ones(3, 3),
        bad={"k2": [rnd(2, 3, 5)], "v": [rnd(2, 4, 8)], "lam": ["x"]},
    ),
    "attnkit.llm.differential_lambda_init": E(3, bad={"layer": [0, -1]}),
    "attnkit.llm.indexer_scores": E(
        lambda: rnd(1, 3, 2, 4),
        lambda: rnd(1, 5, 4),
        lambda: rnd(1, 3, 2),
        bad={"k_index": [rnd(1, 5, 3)], "w": [rnd(1, 3, 3)]},
    ),
    "attnkit.llm.kv_cache_bytes_per_token": E(
        lambda: llm.PUBLISHED["Llama 3 8B"],
        2,
        bad={"layout": ["Llama 3 8B"], "bytes_per_element": [0]},
    ),
    "attnkit.llm.kv_cache_elements_per_token": E(
        lambda: llm.PUBLISHED["DeepSeek-V2"], bad={"layout": ["DeepSeek-V2", 3]}
    ),
    "attnkit.llm.latent_attention": E(
        lambda: rnd(1, 2, 3, 4),
        lambda: rnd(1, 2, 3, 2),
        lambda: rnd(1, 5, 6),
        lambda: rnd(1, 5, 2),
        lambda: rnd(2, 4, 6),
        lambda: rnd(2, 4, 6),
        lambda: ones(3, 5),
        absorb=True,
        bad={"w_uk": [rnd(2, 4, 7)], "k_r": [rnd(1, 4, 2)], "mask": [ones(3, 4)]},
    ),
    "attnkit.llm.nsa_attention": E(
        lambda: rnd(1, 2, 8, 3),
        lambda: rnd(1, 1, 8, 3),
        lambda: rnd(1, 1, 8, 4),
        lambda: torch.rand(1, 2, 8, 3),
        block_size=2,
        top_blocks=1,
        window=2,
        bad={"gates": [rnd(1, 2, 8, 2)], "block_size": [0], "window": [0]},
    ),
    "attnkit.llm.nsa_masks": E(
        lambda: rnd(1, 2, 8, 3),
        lambda: rnd(1, 1, 8, 3),
        block_size=2,
        top_blocks=1,
        window=2,
        bad={"k": [rnd(1, 1, 8, 4)], "top_blocks": [-1]},
    ),
    "attnkit.llm.paged_attention": E(
        lambda: rnd(1, 2, 1, 3),
        lambda: rnd(4, 1, 2, 3),
        lambda: rnd(4, 1, 2, 3),
        lambda: torch.tensor([[0, 2]]),
        lambda: torch.tensor([3]),
        bad={
            "block_table": [torch.tensor([[0, 9]]), torch.tensor([0, 2])],
            "lengths": [torch.tensor([5])],
        },
    ),
    "attnkit.llm.rope_cos_sin": E(
        lambda: torch.arange(4),
        lambda: torch.rand(3),
        dtype=torch.float64,
        bad={"positions": [torch.zeros(2, 2)], "theta": [torch.zeros(2, 2)]},
    ),
    "attnkit.llm.scaled_rope_frequencies": E(
        8,
        base=100.0,
        method="yarn",
        factor=2.0,
        original_length=16,
        alpha=1.0,
        beta=8.0,
        bad={"method": ["linear"], "factor": [0.5], "head_dim": [7], "beta": [0.5]},
    ),
    "attnkit.llm.sigmoid_attention": E(
        *QKV, lambda: ones(3, 5), bias=-1.0, bad={"mask": [ones(3, 5).double()], "bias": ["x"]}
    ),
    "attnkit.llm.softcap": E(lambda: rnd(2, 3), 5.0, bad={"cap": [0.0, -1.0]}),
    "attnkit.llm.topk_sparse_attention": E(
        lambda: rnd(1, 2, 4, 3),
        lambda: rnd(1, 4, 3),
        lambda: rnd(1, 4, 5),
        lambda: llm.topk_token_mask(torch.rand(1, 4, 4), 2),
        bad={"selected": [torch.ones(1, 4, 4)], "v": [rnd(1, 3, 5)]},
    ),
    "attnkit.llm.topk_token_mask": E(lambda: rnd(1, 4, 4), 2, causal=True, bad={"top_k": [0]}),
    # ------------------------------------------------------------------------- attnkit
    "attnkit.AdditiveAttention": E(4, 6, 5, 0.1, bad={"d_hidden": [0, -2]}),
    "attnkit.FeedForward": E(8, 16, 0.0, "gelu", bad={"activation": ["tanh"]}),
    "attnkit.KVCache": E(lambda: rnd(1, 2, 3, 4), lambda: rnd(1, 2, 3, 4), False),
    "attnkit.LearnedPositionalEmbedding": E(16, 8, 0.0, bad={"max_len": [0]}),
    "attnkit.MultiHeadAttention": E(8, 2, num_kv_heads=1, dropout=0.1, bad={"num_heads": [3]}),
    "attnkit.MultiplicativeAttention": E(4, 4, "dot", 0.0, bad={"variant": ["cat"]}),
    "attnkit.RotaryEmbedding": E(8, 10000.0, bad={"head_dim": [7, 0]}),
    "attnkit.ScaledDotProductAttention": E(0.1, 0.5, bad={"dropout": [1.0], "scale": [-1.0]}),
    "attnkit.Seq2SeqTransformer": E(11, 12, 8, 2, 1, 1, 16, 0.0, max_len=16),
    "attnkit.SinusoidalPositionalEncoding": E(8, 16, 0.0, 10000.0, bad={"d_model": [7]}),
    "attnkit.TrainConfig": E(200, bad={"steps": [0], "schedule": ["linearish"]}),
    "attnkit.TrainResult": R([], 0, 0.0),
    "attnkit.TrainingTimeout": R(1, 2, 0.5, 0.1),
    "attnkit.TransformerDecoder": E(
        lambda: lambda: attnkit.TransformerDecoderLayer(8, 2, 16), 1, True, bad={"num_layers": [0]}
    ),
    "attnkit.TransformerDecoderLayer": E(8, 2, 16, 0.0, "relu", False, 1e-5),
    "attnkit.TransformerEncoder": E(
        lambda: lambda: attnkit.TransformerEncoderLayer(8, 2, 16), 1, True, bad={"num_layers": [0]}
    ),
    "attnkit.TransformerEncoderLayer": E(8, 2, 16, 0.0, "relu", False, 1e-5),
    "attnkit.TransformerLM": E(12, 8, 2, 1, 16, 0.0, 16, bad={"positional": ["absolute-ish"]}),
    "attnkit.additive_scores": E(
        lambda: rnd(2, 3, 4),
        lambda: rnd(2, 5, 6),
        lambda: rnd(7, 4),
        lambda: rnd(7, 6),
        lambda: rnd(7),
        bad={"q": [rnd(2, 3, 5), rnd(4)], "w": [rnd(6), rnd(7, 1)], "w_k": [rnd(7, 5)]},
    ),
    "attnkit.alibi_bias": E(4, 3, 5, bad={"num_heads": [0], "n_q": [-1]}),
    "attnkit.alibi_slopes": E(4, bad={"num_heads": [0], "dtype": [torch.int64]}),
    "attnkit.apply_rotary": E(
        lambda: rnd(2, 3, 4),
        lambda: rnd(3, 4),
        lambda: rnd(3, 4),
        bad={"x": [rnd(2, 3, 5), rnd(3)], "cos": [rnd(3, 5)], "sin": [rnd(4, 4)]},
    ),
    "attnkit.attend": E(
        lambda: rnd(2, 3, 5),
        lambda: rnd(2, 5, 6),
        lambda: ones(3, 5),
        dropout_p=0.0,
        bad={
            "scores": [rnd(2, 3, 4), rnd(3)],
            "v": [rnd(2, 4, 6), torch.ones(2, 5, 6, dtype=torch.int64)],
            "mask": [ones(3, 4), ones(4, 3, 5)],
            "dropout_p": [1.0, 1.5, -0.5, NAN],
        },
    ),
    "attnkit.beam_search": E(
        s2s,
        lambda: ids(2, 4, high=11),
        beam_size=2,
        bos_id=1,
        eos_id=2,
        max_len=3,
        bad={
            "eos_id": [12, -1],
            "bos_id": [100],
            "src": [torch.full((2, 4), 11), ids(4)],
            "src_key_padding_mask": [ones(2, 5)],
            "beam_size": [0],
            "length_penalty": [-1.0, math.inf],
            "model": [torch.nn.Linear(2, 2)],
        },
    ),
    "attnkit.causal_mask": E(3, 4, bad={"n_q": [-1], "n_k": [-1]}),
    "attnkit.combine_masks": E(
        lambda: ones(3, 3), lambda: torch.zeros(3, 3), bad={"masks": ["x", ones(2, 4)]}
    ),
    "attnkit.count_parameters": E(lambda: torch.nn.Linear(2, 2), True),
    "attnkit.filter_logits": E(
        lambda: rnd(2, 5), top_k=2, top_p=0.9, bad={"top_k": [0, -1], "top_p": [0.0, 1.5, NAN]}
    ),
    "attnkit.generate": E(
        lm,
        lambda: ids(2, 3, high=12),
        3,
        temperature=0.0,
        bad={
            "prompt": [torch.full((2, 3), 12), ids(3)],
            "max_new_tokens": [-1],
            "eos_id": [12],
            "temperature": [-1.0, math.inf],
            "model": [torch.nn.Linear(2, 2)],
        },
    ),
    "attnkit.gnmt_length_penalty": E(
        lambda: torch.tensor([1.0, 3.0]),
        0.6,
        bad={"alpha": [-1.0, math.inf], "length": [torch.tensor([-1.0]), torch.tensor([NAN])]},
    ),
    "attnkit.greedy_translate": E(
        s2s,
        lambda: ids(2, 4, high=11),
        bos_id=1,
        eos_id=2,
        max_len=3,
        bad={
            "eos_id": [12],
            "src": [torch.full((2, 4), -1)],
            "max_len": [0],
            "model": [torch.nn.Linear(2, 2)],
        },
    ),
    "attnkit.make_optimizer": E(
        lambda: torch.nn.Linear(2, 2), 1e-3, 0.01, bad={"lr": [-1.0, 0.0], "weight_decay": [-1.0]}
    ),
    "attnkit.masked_softmax": E(
        lambda: rnd(2, 3, 5),
        lambda: ones(3, 5),
        dim=-1,
        bad={
            "scores": [torch.tensor([1.0, NAN]), torch.tensor([math.inf, 0.0])],
            "mask": [ones(3, 4), torch.ones(3, 5, dtype=torch.int64)],
            "dim": [3, -4, 1.0],
        },
    ),
    "attnkit.merge_heads": E(
        lambda: rnd(2, 3, 4, 5), bad={"x": [rnd(3, 4), "x", [1.0]]}, keep=("x",)
    ),  # a reshape: any dtype
    "attnkit.multiplicative_scores": E(
        lambda: rnd(2, 3, 4),
        lambda: rnd(2, 5, 6),
        lambda: rnd(4, 6),
        bad={"w": [rnd(6, 4), rnd(4)], "k": [rnd(3, 5, 6), rnd(6)], "q": [rnd(2, 3, 5)]},
    ),
    "attnkit.padding_mask": E(
        lambda: torch.tensor([2, 3]), 4, bad={"lengths": [torch.tensor([-1, 2])], "max_len": [2]}
    ),
    "attnkit.repeat_kv": E(
        lambda: rnd(2, 2, 3, 4), 2, bad={"n_rep": [0], "x": [rnd(3, 4), [1.0]]}, keep=("x",)
    ),
    "attnkit.rotary_cos_sin": E(5, 8, bad={"head_dim": [7, 0], "n_positions": [-1]}),
    "attnkit.sample_next": E(
        lambda: rnd(2, 5),
        temperature=0.7,
        top_k=3,
        bad={
            "logits": [rnd(5), rnd(2, 0), torch.tensor([[NAN, 1.0]])],
            "temperature": [-1.0, math.inf],
        },
    ),
    "attnkit.scaled_dot_product_attention": E(
        *QKV,
        lambda: ones(3, 5),
        scale=0.5,
        return_weights=False,
        bad={
            "q": [rnd(2, 3, 5), rnd(4), rnd(3, 3, 4)],
            "k": [rnd(2, 4, 4), rnd(2, 5, 4, dtype=torch.float64)],
            "v": [rnd(2, 4, 6)],
            "mask": [ones(3, 4), ones(4, 3, 5)],
            "scale": [-1.0, 0.0, math.inf],
            "dropout_p": [1.0, -0.5],
        },
    ),
    "attnkit.seed_everything": E(0, bad={"seed": [-1]}),
    "attnkit.set_fused_attention": E(lambda: attnkit.MultiHeadAttention(4, 2), True),
    "attnkit.sinusoidal_encoding": E(5, 8, bad={"d_model": [0], "n_positions": [-1]}),
    "attnkit.split_heads": E(
        lambda: rnd(2, 3, 8), 2, bad={"num_heads": [3, 0], "x": [rnd(8), "x"]}, keep=("x",)
    ),
    "attnkit.to_additive_mask": E(
        lambda: ones(3, 3),
        bad={"dtype": [torch.int64], "mask": [torch.ones(3, 3, dtype=torch.int64), "x"]},
        keep=("mask",),  # a floating mask is converted, by design
    ),
    "attnkit.train": E(
        lambda: torch.nn.Linear(2, 1),
        lambda: lambda m, b: m(b).pow(2).mean(),
        lambda: [torch.ones(3, 2)],
        lambda: attnkit.TrainConfig(2, progress=False, warmup_steps=1, eval_every=1),
        bad={"config": [{"steps": 2}]},
    ),
    "attnkit.warmup_schedule": E(
        lambda: torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=0.1),
        2,
        10,
        bad={"kind": ["exp"], "warmup_steps": [-1, 11], "total_steps": [0], "min_lr_ratio": [1.5]},
    ),
    # ---------------------------------------------------------------- attnkit.decoding
    # (its public functions are exported by attnkit and covered above)
    # --------------------------------------------------------------- attnkit.efficient
    "attnkit.efficient.BigBirdSelfAttention": E(8, 2, 2, bad={"block_size": [0]}),
    "attnkit.efficient.EfficientSelfAttention": E(8, 2, bad={"num_heads": [3]}),
    "attnkit.efficient.FullSelfAttention": E(8, 2),
    "attnkit.efficient.LinearSelfAttention": E(8, 2),
    "attnkit.efficient.LinformerSelfAttention": E(8, 2, 6, 3, bad={"proj_len": [0]}),
    "attnkit.efficient.LocalSelfAttention": E(8, 2, 2, bad={"window": [-1]}),
    "attnkit.efficient.LongRangeClassifier": E(10, 2, "local", {"window": 2}, max_len=8),
    "attnkit.efficient.LongformerSelfAttention": E(8, 2, 2, global_index=(0,)),
    "attnkit.efficient.PerformerSelfAttention": E(8, 2, num_features=4),
    "attnkit.efficient.SparseTransformerSelfAttention": E(8, 2, 2, bad={"pattern": ["dense"]}),
    "attnkit.efficient.TiledSelfAttention": E(8, 2, block_q=2, block_k=2),
    "attnkit.efficient.attention_class": E("local", bad={"kind": ["nope"]}),
    "attnkit.efficient.attention_with_lse": E(
        *QKV, bad={"q": [rnd(2, 3, 5)], "mask": [ones(3, 4)], "scale": [-1.0]}
    ),
    "attnkit.efficient.bigbird_attention": E(
        lambda: rnd(1, 4, 2),
        lambda: rnd(1, 4, 2),
        lambda: rnd(1, 4, 2),
        lambda: eff.bigbird_layout(2, num_random_blocks=0),
        block_size=2,
        bad={"block_size": [0, 1], "layout": [ones(3, 3)]},
    ),
    "attnkit.efficient.bigbird_layout": E(4, num_random_blocks=1, bad={"n_blocks": [0]}),
    "attnkit.efficient.bigbird_mask": E(8, 2, num_random_blocks=1, bad={"block_size": [0, 3]}),
    "attnkit.efficient.block_sparse_attention": E(
        lambda: rnd(1, 4, 2),
        lambda: rnd(1, 4, 2),
        lambda: rnd(1, 4, 2),
        lambda: ones(2, 2),
        block_size=2,
        bad={"block_size": [0, 1], "layout": [ones(3, 3)]},
    ),
    "attnkit.efficient.default_num_features": E(8, bad={"head_dim": [0]}),
    "attnkit.efficient.elu_feature_map": E(lambda: rnd(2, 3)),
    "attnkit.efficient.favor_attention": E(
        lambda: rnd(1, 4, 2),
        lambda: rnd(1, 4, 2),
        lambda: rnd(1, 4, 3),
        lambda: rnd(5, 2),
        bad={"projection": [rnd(5, 3)], "chunk_size": [0], "eps": [-1.0]},
    ),
    "attnkit.efficient.fixed_mask": E(6, 2, bad={"stride": [0], "c": [0]}),
    "attnkit.efficient.kernel_attention": E(
        lambda: rnd(1, 4, 2).exp(),
        lambda: rnd(1, 4, 2).exp(),
        lambda: rnd(1, 4, 3),
        bad={"phi_q": [-torch.ones(1, 4, 2)], "phi_k": [-torch.ones(1, 4, 2)], "eps": [-1.0]},
    ),
    "attnkit.efficient.layout_to_mask": E(
        lambda: ones(2, 2), 2, 4, bad={"block_size": [0], "n": [5]}
    ),
    "attnkit.efficient.linear_attention": E(
        lambda: rnd(1, 4, 2),
        lambda: rnd(1, 4, 2),
        lambda: rnd(1, 4, 3),
        key_padding_mask=lambda: ones(1, 4),
        bad={"key_padding_mask": [ones(1, 5)], "q": [rnd(1, 4, 3)]},
    ),
    "attnkit.efficient.linformer_attention": E(
        lambda: rnd(1, 4, 2),
        lambda: rnd(1, 4, 2),
        lambda: rnd(1, 4, 3),
        lambda: rnd(2, 4),
        lambda: rnd(2, 4),
        bad={"e_proj": [rnd(2, 5)], "f_proj": [rnd(3, 4)]},
    ),
    "attnkit.efficient.local_attention": E(
        lambda: rnd(1, 4, 2),
        lambda: rnd(1, 4, 2),
        lambda: rnd(1, 4, 3),
        2,
        bad={"window": [-1], "dilation": [0]},
    ),
    "attnkit.efficient.longformer_attention": E(
        lambda: rnd(1, 4, 2),
        lambda: rnd(1, 4, 2),
        lambda: rnd(1, 4, 3),
        lambda: rnd(1, 4, 2),
        lambda: rnd(1, 4, 2),
        lambda: rnd(1, 4, 3),
        2,
        (0,),
        bad={"window": [-1], "global_index": [(9,), (-9,)]},
    ),
    "attnkit.efficient.longformer_mask": E(
        6, 2, (0,), bad={"window": [-1], "global_index": [(7,)]}
    ),
    "attnkit.efficient.make_self_attention": E("local", 8, 2, window=2, bad={"kind": ["nope"]}),
    "attnkit.efficient.merge_attention_blocks": E(
        lambda: rnd(2, 3, 4),
        lambda: rnd(2, 3),
        lambda: rnd(2, 3, 4),
        lambda: rnd(2, 3),
        bad={"lse_a": [rnd(2, 4), rnd(2, 3, 1)], "out_b": [rnd(2, 3, 5)], "lse_b": [rnd(3)]},
    ),
    "attnkit.efficient.orthogonal_gaussian_features": E(6, 4, bad={"num_features": [0]}),
    "attnkit.efficient.positive_random_features": E(
        lambda: rnd(1, 4, 2), lambda: rnd(5, 2), is_query=True, bad={"projection": [rnd(5, 3)]}
    ),
    "attnkit.efficient.sliding_window_mask": E(6, 2, bad={"window": [-1], "n": [-1]}),
    "attnkit.efficient.sparse_transformer_attention": E(
        lambda: rnd(1, 4, 2),
        lambda: rnd(1, 4, 2),
        lambda: rnd(1, 4, 3),
        "strided",
        2,
        bad={"pattern": ["dense"], "stride": [0]},
    ),
    "attnkit.efficient.strided_mask": E(6, 2, bad={"stride": [0]}),
    "attnkit.efficient.tiled_attention": E(
        *QKV, block_q=2, block_k=2, bad={"block_q": [0], "mask": [ones(3, 4)]}
    ),
    "attnkit.efficient.AdaptiveSpanSelfAttention": E(8, 2, 4, ramp=2, bad={"max_span": [0]}),
    "attnkit.efficient.adaptive_span_attention": E(
        lambda: rnd(1, 2, 4, 2),
        lambda: rnd(1, 2, 4, 2),
        lambda: rnd(1, 2, 4, 3),
        2.0,
        ramp=1.0,
        bad={"ramp": [0.0, -1.0], "span": [-1.0]},
    ),
    "attnkit.efficient.adaptive_span_flops": E(8, [2.0, 3.0], 1.0, 4, bad={"n": [0]}),
    "attnkit.efficient.adaptive_span_mask": E(5, 2.0, 1.0, bad={"n": [0], "ramp": [0.0]}),
    "attnkit.efficient.soft_span_mask": E(
        lambda: torch.arange(4.0), 2.0, 1.0, bad={"ramp": [0.0], "span": [NAN]}
    ),
    # ----------------------------------------------------------------- attnkit.metrics
    "attnkit.metrics.bleu": E(["a b c d"], ["a b c d"], bad={"predictions": ["ab"]}),
    "attnkit.metrics.exact_match": E("a", "a"),
    "attnkit.metrics.max_over_ground_truths": E(met.token_f1, "a b", ["a", "b"]),
    "attnkit.metrics.normalize_answer": E("The  cat"),
    "attnkit.metrics.rouge": E(
        ["a b"], ["a c"], bad={"predictions": ["ab"], "rouge_types": [("rougeX",)]}
    ),
    "attnkit.metrics.squad_scores": E(
        ["a"], ["a"], bad={"predictions": ["ab"], "references": ["ab", ["a", "b"]]}
    ),
    "attnkit.metrics.token_f1": E("a b", "a"),
    # --------------------------------------------------------------- attnkit.interpret
    "attnkit.interpret.attention_rollout": E(
        attn_maps, bad={"head_fusion": ["median"], "attentions": [[], [rnd(2, 4)]]}
    ),
    "attnkit.interpret.gradient_x_input": E(
        clf, lambda: ids(2, 4), lambda: ones(2, 4), bad={"ids": [torch.full((2, 4), 10)]}
    ),
    "attnkit.interpret.integrated_gradients": E(
        clf, lambda: ids(2, 4), lambda: ones(2, 4), steps=2, bad={"steps": [0]}
    ),
    "attnkit.interpret.kendall_tau": E(
        lambda: rnd(2, 4), lambda: rnd(2, 4), lambda: ones(2, 4), bad={"b": [rnd(2, 5)]}
    ),
    "attnkit.interpret.leave_one_out": E(
        clf, lambda: ids(2, 4), lambda: ones(2, 4), bad={"mode": ["erase"]}
    ),
    "attnkit.interpret.permute_weights": E(
        lambda: torch.softmax(rnd(2, 4), -1),
        lambda: ones(2, 4),
        lambda: torch.Generator().manual_seed(0),
        bad={"mask": [ones(2, 5)]},
    ),
    "attnkit.interpret.pooled_attention": E(
        attn_maps, lambda: torch.softmax(rnd(2, 4), -1), layer=-1, bad={"layer": [5, 1.0]}
    ),
    "attnkit.interpret.pooled_rollout": E(attn_maps, lambda: torch.softmax(rnd(2, 4), -1)),
    "attnkit.interpret.random_k_mask": E(
        lambda: ones(2, 4), 2, lambda: torch.Generator().manual_seed(0), bad={"k": [-1, 1.5]}
    ),
    "attnkit.interpret.removal_curve": E(
        clf,
        lambda: ids(2, 4),
        lambda: ones(2, 4),
        lambda: rnd(2, 4),
        [0, 1],
        bad={"ks": [[-1], "ab", [1.5]]},
    ),
    "attnkit.interpret.remove_tokens": E(
        lambda: ids(2, 4),
        lambda: ones(2, 4),
        lambda: torch.zeros(2, 4, dtype=torch.bool),
        bad={"mode": ["erase"], "remove": [ones(2, 5)]},
    ),
    "attnkit.interpret.top_k_mask": E(
        lambda: rnd(2, 4), 2, lambda: ones(2, 4), bad={"k": [-1, 1.5]}
    ),
    "attnkit.interpret.top_k_overlap": E(
        lambda: rnd(2, 4), lambda: rnd(2, 4), 2, lambda: ones(2, 4), bad={"k": [-1]}
    ),
    "attnkit.interpret.top_k_precision": E(
        lambda: rnd(2, 4), lambda: ones(2, 4), lambda: ones(2, 4), 2, bad={"k": [-1]}
    ),
    "attnkit.interpret.total_variation": E(
        lambda: torch.softmax(rnd(2, 4), -1),
        lambda: torch.softmax(rnd(2, 4), -1),
        bad={"q": [rnd(2, 5)]},
    ),
    # ---------------------------------------------------------------- attnkit.training
    "attnkit.training.sample_batches": E(
        lambda: {"x": torch.arange(6)}, 2, bad={"batch_size": [0], "data": [{"x": 3}, {}]}
    ),
    # ------------------------------------------------------------------ attnkit.models
    "attnkit.models.bert.BertConfig": E(20, 8, 2, 1, 16, 8, bad={"num_heads": [3]}),
    "attnkit.models.bert.BertEmbeddings": E(bert_cfg),
    "attnkit.models.bert.BertForPreTraining": E(bert_cfg),
    "attnkit.models.bert.BertForSequenceClassification": E(bert_cfg, 2, bad={"num_labels": [0]}),
    "attnkit.models.bert.BertMLMHead": E(bert_cfg, lambda: torch.nn.Embedding(20, 8)),
    "attnkit.models.bert.BertModel": E(bert_cfg),
    "attnkit.models.bert.bert_config_from_hf": E(
        lambda: dict(
            vocab_size=20,
            hidden_size=8,
            num_attention_heads=2,
            num_hidden_layers=1,
            intermediate_size=16,
            max_position_embeddings=8,
            type_vocab_size=2,
            hidden_dropout_prob=0.1,
            attention_probs_dropout_prob=0.1,
            layer_norm_eps=1e-12,
            pad_token_id=0,
            hidden_act="gelu",
            position_embedding_type="absolute",
        ),
        bad={"hf_config": [{"vocab_size": 20}], "dropout": [1.5]},
    ),
    "attnkit.models.bert.load_hf_bert_state_dict": E(
        lambda: bert.BertModel(bert_cfg()),
        lambda: {k: v.detach().clone() for k, v in bert._hf_targets(bert_model(), "").items()},
        strict=True,
        bad={"state_dict": [[1, 2], {"x": 3}]},
    ),
    "attnkit.models.bert.mask_tokens": E(
        lambda: ids(2, 5, high=20),
        vocab_size=20,
        mask_token_id=3,
        bad={"mask_token_id": [20], "mlm_probability": [1.5], "vocab_size": [0]},
    ),
    "attnkit.models.bert.masked_lm_loss": E(
        bert_pt,
        lambda: ids(2, 5, high=20),
        lambda: torch.full((2, 5), -100),
        bad={"input_ids": [torch.full((2, 5), 20)], "labels": [torch.full((2, 5), 20)]},
    ),
    "attnkit.models.cnn.SmallCNN": E(8, 1, 10, (4, 8), 16, bad={"widths": [(), (0,)]}),
    "attnkit.models.image_to_text.ImageToText": E(vit_cfg, 12, num_decoder_layers=1, max_len=8),
    "attnkit.models.image_to_text.greedy_caption": E(
        i2t,
        lambda: rnd(2, 1, 8, 8),
        bos_id=1,
        eos_id=2,
        max_len=3,
        bad={"eos_id": [12], "images": [rnd(2, 8, 8)], "model": [torch.nn.Linear(2, 2)]},
    ),
    "attnkit.models.rnn_seq2seq.GRUSeq2Seq": E(11, 12, 8, 8, 1, 0.0, bad={"pad_id": [11, -1]}),
    "attnkit.models.rnn_seq2seq.rnn_greedy_decode": E(
        gru,
        lambda: ids(2, 4, high=11),
        bos_id=1,
        eos_id=2,
        max_len=3,
        bad={"src": [torch.full((2, 4), 11)], "eos_id": [12], "model": [torch.nn.Linear(2, 2)]},
    ),
    "attnkit.models.span_qa.SpanQAGRU": E(10, 8, 8, 1, 0.0),
    "attnkit.models.span_qa.SpanQATransformer": E(
        10, 8, 2, 16, 1, 16, 0.0, bad={"positional": ["relative"]}
    ),
    "attnkit.models.span_qa.best_span": E(
        lambda: rnd(2, 5),
        lambda: rnd(2, 5),
        lambda: ones(2, 5),
        3,
        bad={"max_answer_len": [0], "mask": [ones(2, 4)]},
    ),
    "attnkit.models.span_qa.span_loss": E(
        lambda: rnd(2, 5),
        lambda: rnd(2, 5),
        lambda: torch.tensor([0, 1]),
        lambda: torch.tensor([1, 2]),
        lambda: ones(2, 5),
        bad={"start_positions": [torch.tensor([0, 5])], "end_positions": [torch.tensor([-1, 2])]},
    ),
    "attnkit.models.text_classifier.BagOfWordsClassifier": E(10, 2, 8, bad={"pad_id": [10]}),
    "attnkit.models.text_classifier.GRUClassifier": E(10, 2, 8, 8, bad={"pooling": ["median"]}),
    "attnkit.models.text_classifier.TransformerClassifier": E(
        10, 2, 8, 2, 1, 16, 16, 0.0, bad={"pooling": ["max"]}
    ),
    "attnkit.models.text_classifier.accuracy": E(
        clf,
        lambda: ids(2, 4),
        lambda: ones(2, 4),
        lambda: torch.tensor([0, 1]),
        bad={"labels": [torch.tensor([0, 2]), torch.tensor([0, 1, 1])], "batch_size": [0]},
    ),
    "attnkit.models.text_classifier.attention_pool": E(
        lambda: rnd(2, 4), lambda: rnd(2, 4, 3), lambda: ones(2, 4), bad={"values": [rnd(2, 5, 3)]}
    ),
    "attnkit.models.text_classifier.check_ids_mask": E(
        lambda: ids(2, 4), lambda: ones(2, 4), 10, bad={"ids": [torch.full((2, 4), 10)]}
    ),
    "attnkit.models.text_classifier.classifier_loss": E(
        clf,
        lambda: (ids(2, 4), ones(2, 4), torch.tensor([0, 1])),
        bad={"batch": [(ids(2, 4), ones(2, 4), torch.tensor([0, 2])), "x"]},
    ),
    "attnkit.models.text_classifier.train_classifier": E(
        lambda: tc.BagOfWordsClassifier(10, 2, 4),
        lambda: ids(4, 3),
        lambda: ones(4, 3),
        lambda: torch.tensor([0, 1, 0, 1]),
        lambda: attnkit.TrainConfig(1, progress=False, warmup_steps=0, eval_every=1),
        batch_size=2,
        bad={"labels": [torch.tensor([0, 1, 0, 2])], "batch_size": [0]},
    ),
    "attnkit.models.vit.patchify": E(lambda: rnd(2, 1, 8, 8), 4, bad={"patch_size": [3, 0]}),
    "attnkit.models.vit.unpatchify": E(
        lambda: rnd(2, 4, 16), 4, 8, 1, bad={"patch_size": [3], "channels": [2]}
    ),
    "attnkit.models.vit.ViTConfig": E(8, 4, 1, 8, 2, 1, 16, 3, bad={"patch_size": [3]}),
    "attnkit.models.vit.PatchEmbedding": E(4, 1, 8, bad={"patch_size": [0]}),
    "attnkit.models.vit.ViT": E(vit_cfg),
    "attnkit.models.vit.cls_rollout_map": E(
        lambda: torch.softmax(rnd(2, 5, 5), -1), 2, bad={"grid": [3, 0]}
    ),
    "attnkit.models.vit.load_hf_vit_state_dict": E(
        lambda: vit.ViT(vit_cfg()),
        lambda: {
            hf[0]: vit_model().state_dict()[name].clone()
            for name, hf in vit._hf_names(vit_model()).items()
        },
        bad={"state_dict": [[1, 2]], "model": [torch.nn.Linear(2, 2)]},
        keep=("state_dict",),
    ),
    # -------------------------------------------------------------------- attnkit.data
    "attnkit.data.acceptability.AcceptabilityExample": R("A cat sat.", 1, "none", "x"),
    "attnkit.data.acceptability.AcceptabilityTask": R((), (), (), ()),
    "attnkit.data.acceptability.acceptability_task": E(
        [
            f"The cat number {i} sat on the mat today. The dog ran in the park again."
            for i in range(40)
        ],
        n_val=1,
        n_test=1,
        bad={"finetune_fraction": [1.5, -0.1], "n_val": [-1], "docstrings": ["ab"]},
    ),
    "attnkit.data.acceptability.corrupt": E(
        "The cat sat on the mat today.",
        "shuffle",
        lambda: random.Random(0),
        lambda: acc._WordSampler(["The cat sat on the mat today."]),
        bad={"kind": ["melt"]},
        keep=("sampler",),
    ),
    "attnkit.data.acceptability.extract_sentences": E("The cat sat on the mat. A dog ran."),
    "attnkit.data.acceptability.is_finetune_docstring": E(
        "text", 0.4, bad={"finetune_fraction": [1.5]}
    ),
    "attnkit.data.acceptability.label_examples": E(
        ["The cat sat on the mat today.", "The dog ran in the park again."],
        bad={"sentences": ["ab"]},
    ),
    "attnkit.data.acceptability.normalise": E("The  cat."),
    "attnkit.data.corpus.stdlib_docstrings": E(2000, bad={"max_chars": [-1]}),
    "attnkit.data.corpus.train_val_split": E("abcdefghij", 0.2, bad={"val_fraction": [1.0, -0.1]}),
    **{
        f"attnkit.data.dates.{n}": E(day, bad={"d": ["2020-02-29"]})
        for n in [
            "month_day_year",
            "day_month_year",
            "abbr_month_padded_day_year",
            "day_abbr_month_year_dashes",
            "weekday_month_day_year",
            "abbr_weekday_day_abbr_month_year",
            "ordinal_of_month",
            "abbr_month_ordinal_year",
            "us_numeric",
            "european_numeric",
            "year_month_day_slashes",
            "lower_month_day_year",
            "upper_day_abbr_month_year",
            "upper_weekday_month_day_year",
            "chinese_arabic",
            "chinese_numerals",
            "chinese_padded_weekday",
        ]
    },
    "attnkit.data.dates.ordinal": E(3, bad={"n": [0, -1]}),
    "attnkit.data.dates.chinese_number": E(31, bad={"n": [-1]}),
    "attnkit.data.dates.chinese_year": E(2020, bad={"year": [-1]}),
    "attnkit.data.dates.random_date": E(lambda: random.Random(0)),
    "attnkit.data.dates.make_date_pairs": E(3, 0, bad={"n": [-1], "formats": [[], "ab"]}),
    "attnkit.data.dates.date_splits": E(3, 2, 2, 0, bad={"n_train": [-1]}),
    "attnkit.data.digit_strips.number_to_words": E(42, bad={"n": [-1, 1000]}),
    "attnkit.data.digit_strips.word_slots": E(42, bad={"n": [-1, 1000]}),
    "attnkit.data.digit_strips.encode_words": E("forty two", bad={"text": ["forty zwei"]}),
    "attnkit.data.digit_strips.decode_ids": E([3, 4], bad={"ids": [[-1], [10**6], "ab"]}),
    "attnkit.data.digit_strips.target_tensors": E([42, 17], bad={"numbers": [[-1], [1000]]}),
    "attnkit.data.digit_strips.number_digits": E(
        lambda: torch.tensor([42, 17]), bad={"numbers": [torch.tensor([-1])]}
    ),
    "attnkit.data.digit_strips.draw_strips": E(
        split, lambda: torch.tensor([42, 17]), bad={"numbers": [torch.tensor([1000])]}
    ),
    "attnkit.data.digit_strips.Strips": R(*([lambda: torch.zeros(1)] * 5)),
    "attnkit.data.digit_strips.make_strips": E(split, 3, bad={"n": [-1]}),
    "attnkit.data.digit_strips.StripSplits": R(strips, strips, strips),
    "attnkit.data.digit_strips.strip_splits": E(3, 2, 2, bad={"n_train": [-1]}),
    "attnkit.data.digit_strips.strip_batches": E(strips, 2, 2, bad={"batch_size": [0]}),
    "attnkit.data.digits.load_digit_images": E(bad={"dtype": [torch.int64]}),
    "attnkit.data.digits.Split": R(*([lambda: torch.zeros(1)] * 3)),
    "attnkit.data.digits.DigitSplits": R(split, split, split),
    "attnkit.data.digits.digit_splits": E(0.1, 0.2, bad={"val_fraction": [1.0, -0.1]}),
    "attnkit.data.retrieval.RetrievalTask": E(8, 10, bad={"noise_vocab": [0]}),
    "attnkit.data.retrieval.retrieval_split": E(
        lambda: retrieval.RetrievalTask(), 3, 8, "test", bad={"split": ["dev"], "n": [0]}
    ),
    "attnkit.data.retrieval.retrieval_batches": E(
        lambda: retrieval.RetrievalTask(), 2, [(1, 8)], bad={"schedule": [[(1, 0)], "ab"]}
    ),
    "attnkit.data.sentiment.SentimentExample": R("good", 1, "plain", (0,)),
    "attnkit.data.sentiment.SentimentTask": R((), (), (), wtok),
    "attnkit.data.sentiment.encode_sentiment": E(
        senti, lambda: sentiment.sentiment_task(4, 2, 2).tokenizer, 64, bad={"max_len": [0]}
    ),
    "attnkit.data.sentiment.grammar_words": E(),
    "attnkit.data.sentiment.make_sentiment_examples": E(3, bad={"n": [-1]}),
    "attnkit.data.sentiment.sentiment_task": E(4, 2, 2, bad={"n_train": [-1]}),
    "attnkit.data.stories.is_held_out": E(
        "john", "kitchen", bad={"person": ["nobody"], "place": ["moon"]}
    ),
    "attnkit.data.stories.QAExample": R(("a",), ("b",), 0, 0, "where", 1, (0,)),
    "attnkit.data.stories.make_story": E(
        lambda: random.Random(0), bad={"num_people": [0], "qtype": ["why"]}
    ),
    "attnkit.data.stories.answer_rests_on_held_out": E(lambda: qa_examples()[0]),
    "attnkit.data.stories.held_out_moves": E(lambda: qa_examples()[0]),
    "attnkit.data.stories.story_splits": E(4, 2, 2, bad={"n_train": [-1], "num_people": [0]}),
    "attnkit.data.stories.encode_qa": E(qa_examples, bad={"max_len": [0], "examples": ["ab"]}),
    "attnkit.data.stories.span_text": E(lambda: qa_examples()[0], 0, 0),
    "attnkit.data.summaries.SummaryExample": R(("a.",), "a.", (0,)),
    "attnkit.data.summaries.make_document": E(lambda: random.Random(0), bad={"num_sentences": [0]}),
    "attnkit.data.summaries.summary_splits": E(3, 2, 2, bad={"n_train": [-1]}),
    "attnkit.data.summaries.lead_k": E(lambda: docs()[0], 2, bad={"k": [-1]}),
    "attnkit.data.summaries.encode_summaries": E(docs, bad={"examples": ["ab"]}),
    "attnkit.data.summaries.decode_ids": E([3, 4], bad={"ids": [[-1], [10**6]]}),
    "attnkit.data.tokenizer.CharTokenizer": E(["abc"], bad={"texts": [[1], 3]}, keep=("texts",)),
    "attnkit.data.tokenizer.token_strings": E(
        [4, 5], ["<pad>", "<bos>", "<eos>", "<unk>", "a", "b"], 4, True, bad={"ids": [[9], [-1]]}
    ),
    "attnkit.data.tokenizer.pad_right": E(
        [[1, 2], [3]], 0, 3, bad={"length": [1, 0], "encoded": [["ab"]]}
    ),
    "attnkit.data.words.WordTokenizer": E(["a", "b"], bad={"words": ["ab", [1]]}),
    "attnkit.data.words.split_words": E("Hello, world!"),
    "attnkit.data.world.PlausibilityTask": R([], [], [], {}, {}),
    "attnkit.data.world.WorldExample": R("a cat eats.", 1),
    "attnkit.data.world.noun_split": E(0),
    "attnkit.data.world.plausibility_task": E(4, 2, bad={"num_train": [-1]}),
    "attnkit.data.world.world_corpus": E(3, bad={"num_sentences": [-1]}),
}

# Methods of the modules whose forward the issue names, and the main layers.
METHODS: dict[str, Entry] = {
    "attnkit.FeedForward.forward": E(
        lambda: attnkit.FeedForward(8, 16), lambda: rnd(2, 3, 8), bad={"x": [rnd(2, 3, 7), [1]]}
    ),
    "attnkit.MultiHeadAttention.forward": E(
        lambda: attnkit.MultiHeadAttention(8, 2),
        lambda: rnd(2, 3, 8),
        key_padding_mask=lambda: ones(2, 3),
        is_causal=False,
        need_weights=False,
        bad={
            "query": [rnd(2, 3, 7), rnd(3, 8)],
            "key_padding_mask": [ones(2, 4), torch.ones(2, 3)],
            "attn_mask": [ones(4, 4), ones(2, 5, 3, 3)],
            "is_causal": ["yes"],
            "need_weights": ["no"],
            "cache": ["x"],
        },
    ),
    "attnkit.KVCache.update": E(
        lambda: attnkit.KVCache(rnd(2, 2, 3, 4), rnd(2, 2, 3, 4)),
        lambda: rnd(2, 2, 1, 4),
        lambda: rnd(2, 2, 1, 4),
        bad={"k": [rnd(3, 2, 1, 4), rnd(2, 2, 1, 5), rnd(2, 1, 4)], "v": [rnd(2, 2, 2, 4)]},
    ),
    "attnkit.MultiplicativeAttention.forward": E(
        lambda: attnkit.MultiplicativeAttention(4, 4),
        *QKV,
        return_weights=False,
        bad={"return_weights": ["yes"], "q": [rnd(2, 3, 5)], "v": [rnd(2, 4, 6)]},
    ),
    "attnkit.AdditiveAttention.forward": E(
        lambda: attnkit.AdditiveAttention(4, 4, 3),
        *QKV,
        return_weights=False,
        bad={"return_weights": ["yes"], "q": [rnd(2, 3, 5)], "v": [rnd(2, 4, 6)]},
    ),
    "attnkit.TransformerLM.forward": E(
        lm, lambda: ids(2, 3, high=12), bad={"idx": [torch.full((2, 3), 12)]}
    ),
    "attnkit.models.bert.BertMLMHead.forward": E(
        lambda: bert.BertMLMHead(bert_cfg(), torch.nn.Embedding(20, 8)),
        lambda: rnd(2, 3, 8),
        bad={"h": [rnd(2, 3, 7), rnd(7)]},
    ),
    "attnkit.models.span_qa.SpanQAGRU.forward": E(
        lambda: span_qa.SpanQAGRU(10, 8, 8, 1, 0.0),
        lambda: ids(2, 4),
        lambda: ids(2, 4, high=2),
        lambda: ones(2, 4),
        bad={"input_ids": [torch.full((2, 4), 10)], "segment_ids": [torch.full((2, 4), 2)]},
    ),
    "attnkit.models.rnn_seq2seq.GRUSeq2Seq.forward": E(
        gru,
        lambda: ids(2, 4, high=11),
        lambda: ids(2, 3, high=12),
        bad={"src": [torch.full((2, 4), 11)], "tgt_in": [torch.full((2, 3), 12)]},
    ),
    "attnkit.models.text_classifier.GRUClassifier.forward": E(
        lambda: tc.GRUClassifier(10, 2, 8, 8),
        lambda: ids(2, 4),
        lambda: ones(2, 4),
        bad={"ids": [torch.full((2, 4), 10)], "mask": [torch.tensor([[False, True] * 2] * 2)]},
    ),
}


def target(name: str) -> tuple[Callable[..., Any], Callable[[], tuple[tuple, dict]]]:
    """The function to call and the builder of its arguments (for a method: the bound
    method of a fresh instance)."""
    entry = {**CALLS, **METHODS}[name]
    if name in METHODS:
        cls_path, method = name.rsplit(".", 1)
        mod, cls = cls_path.rsplit(".", 1)
        unbound = getattr(getattr(importlib.import_module(mod), cls), method)

        def make() -> tuple[tuple, dict]:
            args, kwargs = entry.make()
            return args, kwargs

        return unbound, make
    return public_callables()[name], entry.make


def bound_arguments(fn: Callable[..., Any], args: tuple, kwargs: dict) -> inspect.BoundArguments:
    bound = inspect.signature(fn).bind(*args, **kwargs)
    bound.apply_defaults()
    return bound


# ---------------------------------------------------------------- bad values by annotation


class _Obj:
    """An object of no expected type."""

    def __repr__(self) -> str:
        return "<object>"


def auto_bad(annotation: str, value: Any, param: inspect.Parameter) -> st.SearchStrategy | None:
    """Bad values for an argument, from its annotation (``from __future__ import
    annotations`` keeps them as strings) and its valid value; None where none is generic."""
    a = annotation.replace(" ", "")
    optional = "None" in a or param.default is None
    none = [] if optional else [st.none()]
    if param.kind is inspect.Parameter.VAR_POSITIONAL:
        return st.sampled_from(["x", 3.5])
    if a in ("int", "int|None"):
        return st.one_of(
            st.floats(allow_nan=True).filter(lambda x: not float(x).is_integer()),
            st.just(float(value) if isinstance(value, int) else 1.0),
            st.text(max_size=2),
            st.booleans(),
            *none,
        )
    if a in ("bool",):
        return st.one_of(st.integers(-2, 2), st.text(max_size=3), st.floats(0, 1), st.none())
    if a in ("float", "float|None", "T|float", "torch.Tensor|float"):
        return st.one_of(st.text(max_size=2), st.booleans(), st.just(math.nan), *none)
    if a in ("str", "str|None"):
        return st.one_of(st.integers(), st.binary(max_size=2), st.floats(), *none)
    if a in ("Sequence[str]", "list[str]", "Sequence[str|Sequence[str]]", "Iterable[str]"):
        return st.one_of(st.text(min_size=1, max_size=3), st.lists(st.integers(), min_size=1))
    if a in ("datetime.date",):
        return st.one_of(st.text(max_size=10), st.integers())
    if a in ("random.Random",):
        return st.one_of(st.integers(), st.text(max_size=2), st.none())
    if a in ("torch.Generator", "torch.Generator|None"):
        return st.one_of(st.integers(), st.text(max_size=2))
    if a == "torch.dtype":
        return st.sampled_from(["float32", 32, None])
    if a in ("torch.Tensor", "torch.Tensor|None"):
        bad: list[Any] = ["x", 3.5, _Obj()]
        if isinstance(value, torch.Tensor):
            bad.append(value.tolist())
            if value.is_floating_point() or value.dtype == torch.bool:
                bad.append(value.long())
            else:
                bad.append(value.float())
        return st.sampled_from(bad)
    if a in ("Sequence[torch.Tensor]",):
        return st.sampled_from(["x", [1, 2], 3.5])
    if a in ("torch.optim.Optimizer",):
        return st.sampled_from(["x", torch.nn.Linear(1, 1)])
    module_types = (
        "nn.Module",
        "TransformerClassifier",
        "ImageToText",
        "GRUSeq2Seq",
        "ViT",
        "BertForPreTraining",
        "BertConfig",
        "ViTConfig",
        "RetrievalTask",
        "WordTokenizer",
        "QAExample",
        "SummaryExample",
        "Split",
        "Strips",
        "TrainConfig",
        "nn.Embedding",
        "list[QAExample]",
        "list[SummaryExample]",
    )
    if a in module_types:
        return st.sampled_from(["x", 3, _Obj()])
    if a.startswith("Callable"):
        return st.sampled_from([3, "x"])
    return None


def cases_for(name: str) -> list[tuple[str, st.SearchStrategy]]:
    """``(argument, strategy of bad values)`` for every argument of a registered callable."""
    entry = {**CALLS, **METHODS}[name]
    fn, make = target(name)
    args, kwargs = make()
    bound = bound_arguments(fn, args, kwargs)
    params = inspect.signature(fn).parameters
    out = []
    for arg, value in bound.arguments.items():
        if arg == "self":
            continue
        strategies = []
        if arg not in entry.keep and arg not in ("device", "options", "kwargs"):
            auto = auto_bad(str(params[arg].annotation), value, params[arg])
            if auto is not None:
                strategies.append(auto)
        if arg in entry.bad:
            strategies.append(st.sampled_from(entry.bad[arg]))
        if strategies:
            out.append((arg, st.one_of(*strategies)))
    unknown = set(entry.bad) - set(bound.arguments)
    assert not unknown, f"{name}: bad values for unknown arguments {unknown}"
    return out


VALIDATED = sorted(n for n, e in {**CALLS, **METHODS}.items() if not e.record)
TRIED: dict[str, int] = {}


def test_registry_covers_the_public_api():
    public = set(public_callables())
    missing = sorted(public - set(CALLS))
    stale = sorted(set(CALLS) - public)
    assert not missing, f"public callables without an entry in CALLS: {missing}"
    assert not stale, f"entries of CALLS that are no longer public: {stale}"


@pytest.mark.parametrize("name", sorted({**CALLS, **METHODS}))
def test_valid_call_runs(name):
    fn, make = target(name)
    args, kwargs = make()
    fn(*args, **kwargs)


@pytest.mark.parametrize("name", VALIDATED)
def test_bad_input_raises_naming_the_argument(name):
    cases = cases_for(name)
    if not cases:
        pytest.skip(f"{name} takes no arguments")
    fn, make = target(name)

    @settings(
        max_examples=min(40, max(10, 3 * len(cases))),
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=(Phase.explicit, Phase.generate),  # report the first failure, unshrunk
        report_multiple_bugs=False,
    )
    @given(st.data())
    def run(data: st.DataObject) -> None:
        i = data.draw(st.integers(0, len(cases) - 1), label="argument")
        arg, strategy = cases[i]
        value = data.draw(strategy, label=arg)
        args, kwargs = make()
        bound = bound_arguments(fn, args, kwargs)
        if inspect.signature(fn).parameters[arg].kind is inspect.Parameter.VAR_POSITIONAL:
            bound.arguments[arg] = (*bound.arguments[arg], value)
        else:
            bound.arguments[arg] = value
        TRIED[name] = TRIED.get(name, 0) + 1
        try:
            fn(*bound.args, **bound.kwargs)
        except (TypeError, ValueError) as e:
            message = str(e)
            assert arg in message, f"{name}({arg}={value!r}): message {message!r}"
            return
        raise AssertionError(f"{name} accepted {arg}={value!r}")

    run()


# ------------------------------------------------------------- valid edge inputs, float64


def _reference(q, k, v, allowed):
    """Attention in float64 from the definition: masked keys are left out of the sum."""
    q, k, v = q.double(), k.double(), v.double()
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    s = s.masked_fill(~allowed, -math.inf)
    w = torch.softmax(s, -1).nan_to_num(0.0)  # fully masked rows: zeros
    v_clean = v.nan_to_num(0.0, 0.0, 0.0)  # masked rows contribute 0 whatever they hold
    return w @ v_clean, w


@st.composite
def attention_inputs(draw: st.DrawFn) -> tuple[torch.Tensor, ...]:
    b = draw(st.integers(0, 2))
    n_q, n_k, d = draw(st.integers(1, 4)), draw(st.integers(0, 5)), draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**16))
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(b, m, d, generator=gen) for m in (n_q, n_k, n_k))
    allowed = torch.rand(b, n_q, n_k, generator=gen) < draw(st.floats(0.0, 1.0))
    garbage = draw(st.sampled_from([math.nan, math.inf, -math.inf, 1e30]))
    v = v.masked_fill(~allowed.any(-2, keepdim=True).transpose(-2, -1), garbage)
    return q, k, v, allowed


EDGE = settings(max_examples=60, deadline=None, derandomize=True, database=None)


@EDGE
@given(attention_inputs(), st.sampled_from([torch.float32, torch.float64]))
def test_sdpa_edges_match_float64_reference(inputs, dtype):
    """Empty batch, n_k = 0, fully masked rows, garbage (NaN, inf) in masked value rows."""
    q, k, v, allowed = inputs
    out, w = attnkit.scaled_dot_product_attention(
        q.to(dtype), k.to(dtype), v.to(dtype), allowed, return_weights=True
    )
    ref_out, ref_w = _reference(q, k, v, allowed)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(out.double(), ref_out, atol=tol, rtol=tol)
    torch.testing.assert_close(w.double(), ref_w, atol=tol, rtol=tol)
    additive = attnkit.to_additive_mask(allowed, dtype=dtype)
    out_add = attnkit.scaled_dot_product_attention(q.to(dtype), k.to(dtype), v.to(dtype), additive)
    torch.testing.assert_close(out_add.double(), ref_out, atol=tol, rtol=tol)


@EDGE
@given(attention_inputs())
def test_mha_key_padding_ignores_garbage_in_padded_values(inputs):
    q, _, _, _ = inputs
    b, n, d = q.shape[0], q.shape[1], 8
    gen = torch.Generator().manual_seed(n)
    x = torch.randn(b, n, d, generator=gen, dtype=torch.float64)
    keep = torch.ones(b, n, dtype=torch.bool)
    keep[:, -1] = False
    torch.manual_seed(0)
    mha = attnkit.MultiHeadAttention(d, 2).double()
    clean, _ = mha(x, key_padding_mask=keep)
    dirty_x = x.clone()
    dirty_x[:, -1] = math.nan  # the padded position's input is garbage
    for fused in (False, True):
        mha.fused = fused
        dirty, _ = mha(x, dirty_x, dirty_x, key_padding_mask=keep)
        torch.testing.assert_close(dirty, clean, atol=1e-12, rtol=0)


@EDGE
@given(
    st.integers(0, 2**16),
    st.sampled_from([torch.float16, torch.bfloat16]),
    st.sampled_from(["dot", "general", "additive"]),
    st.floats(1.0, 3e3),
)
def test_scoring_modules_half_precision_large_logits(seed, dtype, kind, size):
    """Scores far past float16's 65,504 (size**2 * d): the same weights as float64."""
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(1, 3, 4, generator=gen, dtype=torch.float64) for _ in range(3))
    q, k = q * size, k * size
    torch.manual_seed(seed)
    if kind == "additive":
        module = attnkit.AdditiveAttention(4, 4, 5).double()
    else:
        module = attnkit.MultiplicativeAttention(4, 4, kind).double()
    _, ref = module(q, k, v, return_weights=True)
    half = module.to(dtype)
    out, w = half(q.to(dtype), k.to(dtype), v.to(dtype), return_weights=True)
    assert out.dtype == dtype and torch.isfinite(out).all() and torch.isfinite(w).all()
    # the 16-bit rounding of the inputs moves huge scores by a few units: compare with the
    # float64 module on the rounded inputs
    ref_module = half.double()
    _, ref = ref_module(
        q.to(dtype).double(), k.to(dtype).double(), v.to(dtype).double(), return_weights=True
    )
    torch.testing.assert_close(w.double(), ref, atol=1e-2, rtol=0)


@EDGE
@given(st.integers(0, 2**16), st.sampled_from([torch.float16, torch.bfloat16]))
def test_sdpa_half_precision_large_logits(seed, dtype):
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(2, 3, 8, generator=gen) * 300 for _ in range(3))
    q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
    out = attnkit.scaled_dot_product_attention(q, k, v)
    ref, _ = _reference(q, k, v, torch.ones(2, 3, 3, dtype=torch.bool))
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.double(), ref, atol=3.0, rtol=1e-2)


@EDGE
@given(st.floats(1e-300, 1e-30) | st.just(5e-324), st.integers(0, 2**16))
def test_sample_next_tiny_temperature_is_greedy(temperature, seed):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(3, 7, generator=gen)
    got = attnkit.sample_next(logits, temperature=temperature, generator=gen)
    assert torch.equal(got, logits.argmax(-1))

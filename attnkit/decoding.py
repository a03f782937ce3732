"""Turning a trained model's logits into text: sampling, greedy decoding and beam search.

* :func:`filter_logits`: top-k (Fan et al., 2018) and top-p / nucleus (Holtzman et al.,
  2019, "The Curious Case of Neural Text Degeneration") truncation.
* :func:`sample_next`: temperature, truncation, then one draw per row (or argmax).
* :func:`generate`: autoregressive generation from a :class:`~attnkit.transformer.TransformerLM`,
  with or without the key/value cache (same tokens either way, tested).
* :func:`greedy_translate` and :func:`beam_search` for a
  :class:`~attnkit.transformer.Seq2SeqTransformer`; beam search with GNMT's length penalty (Wu et
  al., 2016, "Google's Neural Machine Translation System", section 7).

Every function runs the model under ``torch.no_grad()`` in eval mode and puts the model
back in the mode it was in (training or not) afterwards.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ._validate import (
    check_bool,
    check_bool_mask,
    check_generator,
    check_module,
    check_positive_int,
    check_real,
    check_tensor,
    compute_dtype,
    fmt_shape,
)
from .multihead import KVCache

# ----------------------------------------------------------------------------- checks


def _check_top_p(top_p: object) -> float | None:
    if top_p is None:
        return None
    if isinstance(top_p, bool) or not isinstance(top_p, numbers.Real) or not 0 < top_p <= 1:
        raise ValueError(f"top_p must be None or a number in (0, 1], got {top_p!r}.")
    return float(top_p)


def _check_temperature(temperature: object) -> float:
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, numbers.Real)
        or not 0 <= temperature < math.inf
    ):
        raise ValueError(
            f"temperature must be a finite number >= 0 (0 = greedy), got {temperature!r}."
        )
    return float(temperature)


def _check_logits(logits: object, name: str = "logits", *, dim: int | None = None) -> torch.Tensor:
    check_tensor(logits, name, min_dim=1)
    assert isinstance(logits, torch.Tensor)
    if not logits.is_floating_point():
        raise TypeError(f"{name} must be floating-point, got {logits.dtype}.")
    if dim is not None and logits.dim() != dim:
        raise ValueError(f"{name} must have shape (B, V), got {fmt_shape(logits.shape)}.")
    if logits.shape[-1] == 0:
        raise ValueError(f"{name} must have at least one entry on its last axis (V >= 1).")
    return logits


def _check_ids(x: object, name: str) -> torch.Tensor:
    check_tensor(x, name)
    assert isinstance(x, torch.Tensor)
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer token ids, got {x.dtype}.")
    if x.dim() != 2 or x.shape[1] == 0:
        raise ValueError(f"{name} must have shape (B, T) with T >= 1, got {fmt_shape(x.shape)}.")
    return x


def _vocab_size(model: nn.Module) -> int | None:
    size = getattr(model, "vocab_size", None)
    if size is None:
        size = getattr(model, "tgt_vocab_size", None)
    return size if isinstance(size, int) else None


def _check_id(token: object, name: str, model: nn.Module | None = None) -> int:
    """A token id >= 0, below the model's vocabulary size when it has one."""
    token = check_positive_int(token, name, allow_zero=True)
    size = None if model is None else _vocab_size(model)
    if size is not None and token >= size:
        raise ValueError(f"{name} must be a token id in [0, {size}) (the vocabulary), got {token}.")
    return token


def _check_in_vocab(model: nn.Module, ids: torch.Tensor, name: str, attr: str = "") -> None:
    """Every id of ``ids`` in ``[0, V)`` for the model's vocabulary size ``V`` (``attr``
    names it when the model has two vocabularies)."""
    size = getattr(model, attr, None) if attr else _vocab_size(model)
    if isinstance(size, int) and ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= size):
        raise ValueError(
            f"{name} must hold token ids in [0, {size}) (the model's vocabulary), got ids from "
            f"{int(ids.min())} to {int(ids.max())}."
        )


@contextlib.contextmanager
def _inference(model: nn.Module) -> Iterator[None]:
    """Eval mode and no gradients inside; the model's previous mode restored on exit."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


# --------------------------------------------------------------------------- sampling


def filter_logits(
    logits: torch.Tensor, *, top_k: int | None = None, top_p: float | None = None
) -> torch.Tensor:
    """Keep the most likely tokens and set the others' logits to ``-inf``.

    * top-k: keep the ``k`` largest logits of each row (entries tied with the ``k``-th
      largest are kept too); ``k >= V`` keeps everything.
    * top-p, nucleus sampling (Holtzman et al., 2019): keep the *smallest* set of most
      likely tokens whose probability ``softmax(logits)`` sums to at least ``p``; the most
      likely token is always kept. ``p = 1`` keeps everything.

    With both, top-k is applied first and top-p then works on the renormalised survivors
    (the order of Hugging Face's ``generate``).

    Args:
        logits: floating tensor ``(..., V)``.
        top_k: ``None`` or a positive integer.
        top_p: ``None`` or a number in ``(0, 1]``.

    Returns:
        A new tensor like ``logits`` (the input is not modified); removed entries are
        ``-inf``. Apply a temperature
        *before* filtering: top-p depends on it.
    """
    logits = _check_logits(logits).clone()
    top_k = None if top_k is None else check_positive_int(top_k, "top_k")
    top_p = _check_top_p(top_p)
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]  # (..., 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True, stable=True)  # (..., V)
        probs = sorted_logits.to(compute_dtype(logits.dtype)).softmax(dim=-1)
        mass_before = probs.cumsum(dim=-1) - probs  # probability of the better tokens
        remove_sorted = mass_before >= top_p  # the better ones already reach p
        remove_sorted[..., 0] = False  # always keep the most likely token
        remove = remove_sorted.scatter(-1, order, remove_sorted)  # back to vocabulary order
        logits = logits.masked_fill(remove, float("-inf"))
    return logits


def sample_next(
    logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Choose one token per row from next-token logits ``(B, V)``.

    ``temperature = 0`` is greedy decoding (argmax; ``top_k``/``top_p`` change nothing).
    Otherwise the logits, shifted by their row maximum, are divided by the temperature
    (< 1 sharpens, > 1 flattens; a tiny one such as ``1e-40`` is greedy decoding, ties
    drawn at random, never an overflow),
    filtered by :func:`filter_logits`, and one token is drawn from their softmax
    (computed in float32 for 16-bit logits) with ``torch.multinomial``.

    Args:
        logits: floating ``(B, V)``.
        temperature: ``>= 0``.
        top_k, top_p: see :func:`filter_logits`.
        generator: random generator for the draw (reproducible sampling).

    Returns:
        Token ids ``(B,)`` (int64).

    Raises:
        TypeError: if ``logits`` is not a floating tensor.
        ValueError: if ``logits`` is not ``(B, V)`` with ``V >= 1``, a row has no finite
            maximum (NaN, ``+inf``, or nothing but ``-inf``), ``temperature`` is negative
            or not finite, or ``top_k`` / ``top_p`` are out of range.
    """
    logits = _check_logits(logits, dim=2)
    temperature = _check_temperature(temperature)
    top_k = None if top_k is None else check_positive_int(top_k, "top_k")
    top_p = _check_top_p(top_p)
    generator = check_generator(generator)
    if temperature == 0.0:
        return logits.argmax(dim=-1)  # (B,)
    work = logits.to(compute_dtype(logits.dtype))
    row_max = work.amax(dim=-1, keepdim=True)  # (B, 1)
    if not bool(torch.isfinite(row_max).all()):
        raise ValueError(
            "logits must have a finite maximum in every row (no NaN or +inf, not all -inf)."
        )
    scaled = work / temperature  # (B, V)
    if not bool(torch.isfinite(scaled.amax(dim=-1)).all()):
        # A tiny temperature overflowed the best logit to +inf (NaN probabilities). Shift
        # each row by its maximum first (the softmax does not change): the best tokens then
        # have logit 0 and the others go to -inf, so temperatures down to the smallest
        # float are greedy decoding (ties drawn at random). A temperature that rounds to 0
        # in the dtype makes 0 / 0: the best tokens keep 0, what 0 / T is.
        shifted = work - row_max  # (B, V), <= 0, with 0 at the best tokens
        scaled = torch.where(shifted == 0, shifted, shifted / temperature)
    probs = filter_logits(scaled, top_k=top_k, top_p=top_p).softmax(dim=-1)  # (B, V)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)  # (B,)


# ------------------------------------------------------------------- language models


def generate(
    model: nn.Module,
    prompt: torch.Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_id: int | None = None,
    use_cache: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Continue ``prompt`` with tokens drawn from a :class:`~attnkit.transformer.TransformerLM`.

    With ``use_cache=True`` the prompt is run through the model once, filling one
    key/value cache per layer, and each later step feeds only the newest token: step
    ``t`` costs O(t) attention instead of the O(t^2) of rerunning the whole sequence
    (``use_cache=False``). Both give the same tokens, for greedy decoding and for seeded
    sampling (each step makes one draw from ``generator`` either way).

    Args:
        model: a :class:`~attnkit.transformer.TransformerLM` (anything with
            ``model(idx, caches=None, offset=0) -> (B, T, V)`` and ``new_caches()``).
        prompt: token ids ``(B, T0)``, ``T0 >= 1``.
        max_new_tokens: how many tokens to add at most (``>= 0``).
        temperature, top_k, top_p: see :func:`sample_next`.
        eos_id: if given, a row that produces it is finished: its later tokens are
            ``eos_id`` too, and generation stops early once every row has finished.
        use_cache: use key/value caches.
        generator: random generator for sampling.

    Returns:
        ``(B, T0 + n)`` token ids, the prompt followed by ``n <= max_new_tokens`` new ones.
        With absolute positions, ``T0 + max_new_tokens - 1`` must not exceed the model's
        ``max_len`` (no sliding window).
    """
    model = check_module(
        model, needs=("new_caches",), what="a TransformerLM (a module with new_caches())"
    )
    prompt = _check_ids(prompt, "prompt")
    use_cache = check_bool(use_cache, "use_cache")
    _check_in_vocab(model, prompt, "prompt")
    max_new_tokens = check_positive_int(max_new_tokens, "max_new_tokens", allow_zero=True)
    eos_id = None if eos_id is None else _check_id(eos_id, "eos_id", model)
    max_len = getattr(model, "max_len", None)
    needed = prompt.shape[1] + max_new_tokens - 1
    if getattr(model, "pos", None) is not None and max_len is not None and needed > max_len:
        raise ValueError(
            f"prompt length {prompt.shape[1]} + max_new_tokens {max_new_tokens} - 1 = {needed} "
            f"positions, but the model's position table has max_len = {max_len}."
        )
    # The sampling options are checked here, not at the first step (which may not come).
    temperature = _check_temperature(temperature)
    top_k = None if top_k is None else check_positive_int(top_k, "top_k")
    top_p = _check_top_p(top_p)
    generator = check_generator(generator)
    sampling = dict(temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)
    tokens = prompt  # (B, T)
    finished = torch.zeros(prompt.shape[0], dtype=torch.bool, device=prompt.device)
    with _inference(model):
        caches = model.new_caches() if use_cache else None
        new = prompt  # what the cache has not seen yet
        for _ in range(max_new_tokens):
            if use_cache:
                logits = model(new, caches=caches, offset=tokens.shape[1] - new.shape[1])
            else:
                logits = model(tokens)  # (B, T, V)
            nxt = sample_next(logits[:, -1], **sampling)  # (B,)
            if eos_id is not None:
                nxt = nxt.masked_fill(finished, eos_id)
                finished = finished | (nxt == eos_id)
            new = nxt[:, None]  # (B, 1)
            tokens = torch.cat([tokens, new], dim=1)  # (B, T + 1)
            if eos_id is not None and bool(finished.all()):
                break
    return tokens


# --------------------------------------------------------------- sequence to sequence


def _check_seq2seq(model: object) -> nn.Module:
    return check_module(
        model,
        needs=("encode", "decode", "new_caches"),
        what="a Seq2SeqTransformer (a module with encode, decode and new_caches)",
    )


def _source_and_mask(
    model: nn.Module, src: torch.Tensor, src_key_padding_mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    src = _check_ids(src, "src")
    _check_in_vocab(model, src, "src", "src_vocab_size")
    if src_key_padding_mask is not None:
        check_bool_mask(src_key_padding_mask, "src_key_padding_mask", src.shape)
    pad_id = getattr(model, "pad_id", None)
    if src_key_padding_mask is None and pad_id is not None:
        src_key_padding_mask = src != pad_id  # (B, S), True on real tokens
    return src, src_key_padding_mask


def _filler(model: nn.Module, eos_id: int) -> int:
    """The id written after a row's EOS: the model's ``pad_id``, else ``eos_id``."""
    pad_id = getattr(model, "pad_id", None)
    return eos_id if pad_id is None else pad_id


def greedy_translate(
    model: nn.Module,
    src: torch.Tensor,
    src_key_padding_mask: torch.Tensor | None = None,
    *,
    bos_id: int,
    eos_id: int,
    max_len: int,
    use_cache: bool = True,
) -> torch.Tensor:
    """Greedy decoding with a :class:`.Seq2SeqTransformer`: the argmax each step.

    Args:
        model: a :class:`~attnkit.transformer.Seq2SeqTransformer` (``encode``, ``decode``,
            ``new_caches``, ``pad_id``).
        src: source ids ``(B, S)``.
        src_key_padding_mask: bool ``(B, S)``, ``True`` on real tokens; default
            ``src != model.pad_id``.
        bos_id: the id the decoder starts from. eos_id: the id that ends a sentence.
        max_len: the most tokens generated per row (counting EOS).
        use_cache: decode incrementally with key/value caches (same result).

    Returns:
        ``(B, L)`` generated ids, ``L <= max_len``, *without* the leading BOS. A row
        ends with its EOS followed by ``model.pad_id`` (or ``eos_id`` if it has none);
        decoding stops when every row has produced EOS.
    """
    model = _check_seq2seq(model)
    src, mask = _source_and_mask(model, src, src_key_padding_mask)
    max_len = check_positive_int(max_len, "max_len")
    bos_id, eos_id = _check_id(bos_id, "bos_id", model), _check_id(eos_id, "eos_id", model)
    use_cache = check_bool(use_cache, "use_cache")
    with _inference(model):
        memory = model.encode(src, mask)  # (B, S, d_model)
        return _greedy_from_memory(model, memory, mask, bos_id, eos_id, max_len, use_cache)


def _greedy_from_memory(
    model: nn.Module,
    memory: torch.Tensor,
    memory_key_padding_mask: torch.Tensor | None,
    bos_id: int,
    eos_id: int,
    max_len: int,
    use_cache: bool,
) -> torch.Tensor:
    """The greedy loop of any encoder-decoder model, from the encoder's output on.

    ``model`` has ``decode(tgt, memory, memory_key_padding_mask, caches=, offset=)`` ->
    logits ``(B, T, V)``, ``new_caches()`` and optionally ``pad_id``. ``memory`` is
    ``(B, S, d_model)``. The caller has checked the arguments and entered
    :func:`_inference`. Returns ``(B, L)`` ids without the BOS, as :func:`greedy_translate`.
    """
    filler = _filler(model, eos_id)
    B = memory.shape[0]
    ys = torch.full((B, 1), bos_id, dtype=torch.long, device=memory.device)  # (B, 1)
    finished = torch.zeros(B, dtype=torch.bool, device=memory.device)
    mask = memory_key_padding_mask
    caches = model.new_caches() if use_cache else None
    for t in range(max_len):
        if use_cache:
            logits = model.decode(ys[:, -1:], memory, mask, caches=caches, offset=t)
        else:
            logits = model.decode(ys, memory, mask)  # (B, t + 1, V)
        nxt = logits[:, -1].argmax(dim=-1).masked_fill(finished, filler)  # (B,)
        finished = finished | (nxt == eos_id)
        ys = torch.cat([ys, nxt[:, None]], dim=1)  # (B, t + 2)
        if bool(finished.all()):
            break
    return ys[:, 1:]


def gnmt_length_penalty(length: torch.Tensor, alpha: float) -> torch.Tensor:
    """GNMT's length penalty ``lp(Y) = ((5 + |Y|) / 6) ** alpha`` (Wu et al., 2016, sec. 7).

    A hypothesis is ranked by ``log P(Y | X) / lp(Y)``; since log-probabilities are
    negative, ``alpha > 0`` favours longer outputs, ``alpha = 0`` ranks by raw
    log-probability. ``|Y|`` counts the generated tokens including EOS.

    Args:
        length: floating or integer tensor of lengths ``>= 0`` (any shape).
        alpha: a finite number ``>= 0``.

    Raises:
        TypeError: if ``length`` is not a real tensor or ``alpha`` not a number.
        ValueError: if ``alpha`` is negative or not finite, or a length is negative or NaN
            (one pass over the lengths: they are as many as the hypotheses).
    """
    check_tensor(length, "length")
    if length.is_complex() or length.dtype == torch.bool:
        raise TypeError(f"length must be a real tensor of lengths, got {length.dtype}.")
    alpha = check_real(alpha, "alpha", low=0.0, what="a finite number >= 0")
    if length.numel() and not bool((length >= 0).all()):
        raise ValueError("length must hold lengths >= 0 (no negative numbers, no NaN).")
    return ((5.0 + length) / 6.0) ** alpha


def _reorder_caches(caches: list[tuple[KVCache, KVCache]], index: torch.Tensor) -> None:
    """Make row ``i`` of each self-attention cache a copy of row ``index[i]``.

    The cross-attention caches hold the memory, identical for the beams of one example
    and never reordered across examples, so they are left alone."""
    for self_cache, _ in caches:
        if self_cache.k is not None:
            assert self_cache.v is not None
            self_cache.k = self_cache.k.index_select(0, index)  # (B * K, H_kv, T, D)
            self_cache.v = self_cache.v.index_select(0, index)


def beam_search(
    model: nn.Module,
    src: torch.Tensor,
    src_key_padding_mask: torch.Tensor | None = None,
    *,
    beam_size: int,
    bos_id: int,
    eos_id: int,
    max_len: int,
    length_penalty: float = 1.0,
    use_cache: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Beam search with a :class:`~attnkit.transformer.Seq2SeqTransformer`.

    Each example keeps the ``beam_size`` most probable partial translations (by total
    log-probability). At every step each beam is extended by every token and the
    ``beam_size`` best of the ``beam_size * V`` extensions survive. A beam that has
    produced EOS is *finished*: it stays in the beam with a fixed score (it can only be
    continued by padding, at no cost) and competes with the live ones. The search stops
    when every beam of every example is finished or after ``max_len`` tokens; then the
    beam with the best length-normalised score ``log P(Y | X) / lp(Y)`` wins, where
    ``lp`` is GNMT's :func:`gnmt_length_penalty` ``((5 + |Y|) / 6) ** length_penalty``.

    With ``beam_size = 1`` this is exactly greedy decoding (tested).

    Args:
        model, src, src_key_padding_mask, bos_id, eos_id, max_len, use_cache: as in
            :func:`greedy_translate`; ``src`` is ``(B, S)`` (``B = 1`` for one sentence).
        beam_size: number of beams ``K`` per example.
        length_penalty: GNMT's ``alpha`` (``>= 0``; 0.6 to 1.0 in the paper; 0 = none).

    Returns:
        ``(tokens, scores)``: the best hypothesis of each example, ``(B, L)`` without BOS,
        ending with EOS and padded with ``model.pad_id`` (or ``eos_id``) as in
        :func:`greedy_translate`; and its length-normalised score ``(B,)``, equal to its
        log-probability when ``length_penalty = 0``.
    """
    model = _check_seq2seq(model)
    src, mask = _source_and_mask(model, src, src_key_padding_mask)
    K = check_positive_int(beam_size, "beam_size")
    max_len = check_positive_int(max_len, "max_len")
    bos_id, eos_id = _check_id(bos_id, "bos_id", model), _check_id(eos_id, "eos_id", model)
    use_cache = check_bool(use_cache, "use_cache")
    if (
        isinstance(length_penalty, bool)
        or not isinstance(length_penalty, numbers.Real)
        or not 0 <= length_penalty < math.inf
    ):
        raise ValueError(f"length_penalty must be a finite number >= 0, got {length_penalty!r}.")
    filler = _filler(model, eos_id)
    B, device = src.shape[0], src.device
    rows = torch.arange(B, device=device)[:, None]  # (B, 1)
    with _inference(model):
        memory = model.encode(src, mask).repeat_interleave(K, dim=0)  # (B * K, S, d_model)
        mask = None if mask is None else mask.repeat_interleave(K, dim=0)  # (B * K, S)
        caches = model.new_caches() if use_cache else None
        ys = torch.full((B * K, 1), bos_id, dtype=torch.long, device=device)  # (B * K, 1)
        scores = torch.full((B, K), float("-inf"), dtype=torch.float64, device=device)
        scores[:, 0] = 0.0  # one live beam at the start, not K copies of it
        finished = torch.zeros(B, K, dtype=torch.bool, device=device)
        lengths = torch.zeros(B, K, dtype=torch.long, device=device)
        for t in range(max_len):
            if use_cache:
                logits = model.decode(ys[:, -1:], memory, mask, caches=caches, offset=t)
            else:
                logits = model.decode(ys, memory, mask)  # (B * K, t + 1, V)
            V = logits.shape[-1]
            logp = F.log_softmax(logits[:, -1].double(), dim=-1).view(B, K, V)
            frozen = torch.full((V,), float("-inf"), dtype=logp.dtype, device=device)
            frozen[filler] = 0.0  # a finished beam continues with padding, at no cost
            logp = torch.where(finished[..., None], frozen, logp)  # (B, K, V)
            candidates = (scores[..., None] + logp).view(B, K * V)  # (B, K * V)
            scores, choice = candidates.topk(K, dim=-1)  # (B, K) each
            beam, token = choice // V, choice % V  # which beam it extends, with what
            parent = (rows * K + beam).view(-1)  # (B * K,) rows of ys to extend
            ys = torch.cat([ys[parent], token.view(-1, 1)], dim=1)  # (B * K, t + 2)
            was_finished = finished.gather(1, beam)  # (B, K)
            lengths = lengths.gather(1, beam) + (~was_finished).long()
            finished = was_finished | (token == eos_id)
            if caches is not None:
                _reorder_caches(caches, parent)
            if bool(finished.all()):
                break
        normalised = scores / gnmt_length_penalty(lengths.double(), float(length_penalty))
        best = normalised.argmax(dim=-1)  # (B,)
        tokens = ys.view(B, K, -1)[torch.arange(B, device=device), best, 1:]  # (B, L)
        return tokens, normalised[torch.arange(B, device=device), best]

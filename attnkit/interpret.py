"""Attribution methods for Transformer classifiers, and tools to evaluate them.

Each method gives one score per token, ``(B, T)``: how much that token is said to matter
for the prediction.

* From the attention weights: :func:`pooled_attention` (the last layer's attention as seen
  by the pooled representation, mean over heads) and :func:`attention_rollout` /
  :func:`pooled_rollout` (Abnar & Zuidema, 2020); for an attention-pooling model the
  pooling weights themselves.
* From gradients: :func:`gradient_x_input` (Shrikumar et al., 2016) and
  :func:`integrated_gradients` (Sundararajan et al., 2017), on the token embeddings.
* From erasure: :func:`leave_one_out` (Li et al., 2016), the change in the predicted
  probability when one token is deleted, the "ground-truth" effect of a single token.
* Evaluation: :func:`remove_tokens`, :func:`top_k_mask`, :func:`random_k_mask`,
  :func:`removal_curve` (delete the top-k tokens, measure the probability drop and the
  flip rate), :func:`kendall_tau` and :func:`top_k_overlap` (rank agreement between two
  attributions), :func:`top_k_precision` (agreement with known deciding tokens),
  :func:`permute_weights`, :func:`total_variation` (counterfactual attention, Jain &
  Wallace, 2019).

Conventions: ``ids`` ``LongTensor (B, T)``; ``mask`` bool ``(B, T)``, ``True`` on real
tokens, right-padded; ``candidates`` bool ``(B, T)``, the tokens that may be ranked or
removed (default: ``mask``; pass ``mask & ~special`` to leave ``[CLS]`` / ``[SEP]`` out). A
padding position is never a candidate: scores there are 0 and rankings never pick it. The
``target`` class defaults to the model's prediction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ._validate import (
    check_bool,
    check_bool_mask,
    check_floating,
    check_generator,
    check_int,
    check_positive_int,
    check_tensor,
    fmt_shape,
)
from .models.text_classifier import TransformerClassifier, check_ids_mask

HEAD_FUSIONS = ("mean", "max", "min")
"""How :func:`attention_rollout` combines the heads of a layer (``head_fusion``)."""
REMOVAL_MODES = ("delete", "mask")

# ----------------------------------------------------------------------------- checks


def _check_model(model: object) -> TransformerClassifier:
    if not isinstance(model, TransformerClassifier):
        raise TypeError(
            f"model must be an attnkit TransformerClassifier, got {type(model).__name__}."
        )
    return model


def _check_scores(
    scores: object, name: str, shape: Sequence[int], like: str = "mask"
) -> torch.Tensor:
    check_floating(check_tensor(scores, name), name)
    assert isinstance(scores, torch.Tensor)
    if tuple(scores.shape) != tuple(shape):
        raise ValueError(
            f"{name} must have the shape (B, T) of {like}, {fmt_shape(shape)}; "
            f"got {fmt_shape(scores.shape)}."
        )
    return scores


def _check_candidates(candidates: object, mask: torch.Tensor) -> torch.Tensor:
    if candidates is None:
        return mask
    check_bool_mask(candidates, "candidates", mask.shape, meaning="True on rankable tokens")
    return candidates & mask  # padding is never a candidate


def _target(model: TransformerClassifier, ids, mask, target) -> torch.Tensor:
    if target is None:
        with torch.no_grad():
            return model(ids, mask).argmax(-1)  # (B,)
    check_tensor(target, "target")
    if target.shape != ids.shape[:1] or target.is_floating_point():
        raise ValueError(
            f"target must be an integer tensor of shape (B,) = ({ids.shape[0]},), got "
            f"{target.dtype} {fmt_shape(target.shape)}."
        )
    if target.min() < 0 or target.max() >= model.num_classes:
        raise ValueError(f"target must lie in [0, num_classes={model.num_classes}).")
    return target


def _probs(model: TransformerClassifier, ids, mask, **kwargs) -> torch.Tensor:
    return torch.softmax(model(ids, mask, **kwargs).float(), dim=-1)  # (B, C)


# -------------------------------------------------------------------------- attention


def attention_rollout(
    attentions: Sequence[torch.Tensor], *, head_fusion: str = "mean", residual: bool = True
) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema, 2020, section 3).

    For each layer ``l``: fuse the heads, ``A_l = fuse_h W_l`` (``"mean"``, as in the paper,
    or ``"max"``/``"min"``); with ``residual``, account for the skip connection with
    ``A_l = rownorm(A_l + I)`` (= ``0.5 A_l + 0.5 I`` for row-stochastic ``A_l``); then
    multiply in order: ``rollout = A_L ... A_2 A_1``. Row ``i`` of the result says how much
    each input token contributes to the output token ``i`` of the last layer.

    Args:
        attentions: one ``(B, H, T, T)`` tensor of attention weights per layer, first
            layer first (as ``ViT(..., return_attention=True)`` and
            ``TransformerClassifier(..., return_attention=True)`` return); floating, rows
            summing to 1. The number of heads may differ between layers.
        head_fusion: ``"mean"``, ``"max"`` or ``"min"`` over the heads.
        residual: add the identity for the residual connection.

    Returns:
        ``(B, T, T)``, rows summing to 1 when the inputs' rows do. With padding, columns of
        padded keys stay 0 except on the diagonal of padded query rows.
    """
    if isinstance(attentions, torch.Tensor) or not isinstance(attentions, Sequence):
        raise TypeError(
            "attentions must be a list of per-layer (B, H, T, T) tensors, got "
            f"{type(attentions).__name__}."
        )
    if len(attentions) == 0:
        raise ValueError("attentions must hold at least one layer's weights, got an empty list.")
    if head_fusion not in HEAD_FUSIONS:
        raise ValueError(f"head_fusion must be one of {HEAD_FUSIONS}, got {head_fusion!r}.")
    if not isinstance(residual, bool):
        raise TypeError(f"residual must be True or False, got {residual!r}.")
    shape = None
    rollout = None
    for i, w in enumerate(attentions):
        name = f"attentions[{i}]"
        check_floating(check_tensor(w, name), name)
        if w.dim() != 4 or w.shape[-1] != w.shape[-2]:
            raise ValueError(f"{name} must have shape (B, H, T, T), got {fmt_shape(w.shape)}.")
        if shape is not None and (w.shape[0], w.shape[-1]) != (shape[0], shape[-1]):
            raise ValueError(
                f"all layers' weights must share B and T (heads may differ); attentions[0] "
                f"is {fmt_shape(shape)} but {name} is {fmt_shape(w.shape)}."
            )
        shape = shape or w.shape
        if head_fusion == "mean":
            a = w.mean(dim=1)  # (B, T, T)
        elif head_fusion == "max":
            a = w.amax(dim=1)
        else:
            a = w.amin(dim=1)
        if residual:
            a = a + torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
            a = a / a.sum(dim=-1, keepdim=True)  # (B, T, T), rows sum to 1
        rollout = a if rollout is None else a @ rollout  # (B, T, T)
    assert rollout is not None
    return rollout


def _pool_row(matrix: torch.Tensor, pool_weights: torch.Tensor) -> torch.Tensor:
    check_floating(check_tensor(pool_weights, "pool_weights"), "pool_weights")
    if pool_weights.shape != matrix.shape[:2]:
        raise ValueError(
            f"pool_weights must have shape (B, T) = {fmt_shape(matrix.shape[:2])}, got "
            f"{fmt_shape(pool_weights.shape)}."
        )
    return torch.einsum("bq,bqk->bk", pool_weights.to(matrix.dtype), matrix)  # (B, T)


def pooled_attention(
    attentions: Sequence[torch.Tensor], pool_weights: torch.Tensor, *, layer: int = -1
) -> torch.Tensor:
    """Raw attention of one layer, as seen by the pooled representation.

    ``score_k = sum_q pool_q mean_h W[layer][:, h, q, k]``: for ``"cls"`` pooling
    (``pool`` one-hot on position 0) the ``[CLS]`` row of the layer's head-averaged
    attention; for mean or attention pooling the pooling-weighted mix of the rows.

    Args:
        attentions: per-layer ``(B, H, T, T)`` weights from ``return_attention=True``.
        pool_weights: ``(B, T)``, the pooling weights from the same call.
        layer: which layer (default the last).

    Returns:
        ``(B, T)``, non-negative, rows summing to 1 (0 on padded keys).
    """
    if isinstance(attentions, torch.Tensor) or not isinstance(attentions, Sequence):
        raise TypeError("attentions must be a list of per-layer (B, H, T, T) tensors.")
    layer = check_int(layer, "layer")
    if not -len(attentions) <= layer < len(attentions):
        raise ValueError(f"layer must index one of the {len(attentions)} layers, got {layer}.")
    w = check_tensor(attentions[layer], f"attentions[{layer}]")
    if w.dim() != 4:
        raise ValueError(f"attentions[{layer}] must be (B, H, T, T), got {fmt_shape(w.shape)}.")
    return _pool_row(w.mean(dim=1), pool_weights)  # (B, T)


def pooled_rollout(
    attentions: Sequence[torch.Tensor], pool_weights: torch.Tensor, **kwargs: object
) -> torch.Tensor:
    """:func:`attention_rollout` read by the pooling: ``sum_q pool_q rollout[:, q, :]``,
    ``(B, T)`` (the ``[CLS]`` row for ``"cls"`` pooling). ``kwargs`` go to the rollout."""
    return _pool_row(attention_rollout(attentions, **kwargs), pool_weights)  # type: ignore[arg-type]


# -------------------------------------------------------------------------- gradients


def gradient_x_input(
    model: TransformerClassifier,
    ids: torch.Tensor,
    mask: torch.Tensor | None = None,
    target: torch.Tensor | None = None,
) -> torch.Tensor:
    """Gradient x input on the token embeddings (Shrikumar et al., 2016).

    ``score_t = sum_d e_{t,d} * d logit_target / d e_{t,d}`` for the token embeddings
    ``e = E[ids]`` (before positions are added). Signed: positive = pushes towards the
    target class; rank by ``abs()`` for "importance". The model runs in its current mode
    (call ``model.eval()`` first); its parameters' gradients are left untouched.

    Returns:
        ``(B, T)``, float, 0 on padding.
    """
    model = _check_model(model)
    ids, mask = check_ids_mask(ids, mask, model.vocab_size)
    target = _target(model, ids, mask, target)
    emb = model.embed_tokens(ids).detach().requires_grad_(True)  # (B, T, d_model)
    logits = model.forward_embeddings(emb, mask)  # (B, C)
    picked = logits.gather(1, target[:, None]).sum()
    (grad,) = torch.autograd.grad(picked, emb)  # (B, T, d_model)
    return (grad * emb).sum(-1).detach().masked_fill(~mask, 0.0)  # (B, T)


def integrated_gradients(
    model: TransformerClassifier,
    ids: torch.Tensor,
    mask: torch.Tensor | None = None,
    target: torch.Tensor | None = None,
    *,
    steps: int = 32,
) -> torch.Tensor:
    """Integrated gradients on the token embeddings (Sundararajan et al., 2017, eq. 1).

    ``score_t = sum_d e_{t,d} * mean_{s=1..steps} d logit_target(a_s e) / d e_{t,d}`` with
    ``a_s = (s - 1/2) / steps`` (midpoint Riemann sum) and the all-zero embedding as
    baseline (positions are still added). Completeness: the scores sum to
    ``logit_target(e) - logit_target(0)`` up to the Riemann error, which shrinks with
    ``steps``.

    Returns:
        ``(B, T)``, float, 0 on padding.
    """
    model = _check_model(model)
    ids, mask = check_ids_mask(ids, mask, model.vocab_size)
    steps = check_positive_int(steps, "steps")
    target = _target(model, ids, mask, target)
    emb = model.embed_tokens(ids).detach()  # (B, T, d_model)
    total = torch.zeros_like(emb)
    for s in range(steps):
        alpha = (s + 0.5) / steps
        x = (alpha * emb).requires_grad_(True)
        logits = model.forward_embeddings(x, mask)  # (B, C)
        (grad,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), x)
        total += grad
    return (total / steps * emb).sum(-1).masked_fill(~mask, 0.0)  # (B, T)


# ---------------------------------------------------------------------------- erasure


def remove_tokens(
    ids: torch.Tensor, mask: torch.Tensor, remove: torch.Tensor, *, mode: str = "delete"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Remove the tokens where ``remove`` is ``True``.

    ``"delete"``: the kept tokens move left (they take new positions), as if the words were
    never written, and the freed places become padding (``id`` 0, mask ``False``).
    ``"mask"``: the tokens stay but their mask entry becomes ``False``: no token attends to
    them and poolings ignore them, while the others keep their positions.

    Args:
        ids: ``(B, T)``; mask: bool ``(B, T)``; remove: bool ``(B, T)`` (ignored on padding;
            at least one real token per row must stay).

    Returns:
        ``(ids, mask)`` of the same shape ``(B, T)``.
    """
    ids, mask = check_ids_mask(ids, mask)
    check_bool_mask(remove, "remove", ids.shape, meaning="True on the tokens to remove")
    if mode not in REMOVAL_MODES:
        raise ValueError(f"mode must be one of {REMOVAL_MODES}, got {mode!r}.")
    keep = mask & ~remove  # (B, T)
    if not bool(keep.any(dim=-1).all()):
        raise ValueError("remove would delete every real token of a row; keep at least one.")
    if mode == "mask":
        return ids, keep
    order = torch.argsort((~keep).to(torch.int8), dim=-1, stable=True)  # kept first, in order
    new_ids = ids.gather(1, order).masked_fill(~keep.gather(1, order), 0)  # (B, T)
    new_mask = torch.arange(ids.shape[1], device=ids.device)[None, :] < keep.sum(-1, keepdim=True)
    return new_ids, new_mask


def leave_one_out(
    model: TransformerClassifier,
    ids: torch.Tensor,
    mask: torch.Tensor | None = None,
    target: torch.Tensor | None = None,
    *,
    candidates: torch.Tensor | None = None,
    mode: str = "delete",
) -> torch.Tensor:
    """Leave-one-out erasure (Li et al., 2016): ``score_t = p_target(x) - p_target(x - t)``.

    The drop in the probability of the target class when token ``t`` alone is removed
    (:func:`remove_tokens`, ``mode`` ``"delete"`` or ``"mask"``). One forward pass of the
    whole batch per position. Positive = the token supported the target class.

    Returns:
        ``(B, T)``, 0 on non-candidates and padding.
    """
    model = _check_model(model)
    ids, mask = check_ids_mask(ids, mask, model.vocab_size)
    candidates = _check_candidates(candidates, mask)
    target = _target(model, ids, mask, target)
    out = torch.zeros(ids.shape, dtype=torch.float32)
    with torch.no_grad():
        base = _probs(model, ids, mask).gather(1, target[:, None])[:, 0]  # (B,)
        for t in range(ids.shape[1]):
            rows = candidates[:, t] & (mask.sum(-1) > 1)  # a lone token cannot be removed
            if not rows.any():
                continue
            remove = torch.zeros_like(mask)
            remove[:, t] = True
            new_ids, new_mask = remove_tokens(ids[rows], mask[rows], remove[rows], mode=mode)
            p = _probs(model, new_ids, new_mask).gather(1, target[rows, None])[:, 0]
            out[rows, t] = base[rows] - p
    return out  # (B, T)


# ------------------------------------------------------------------------- evaluation


def top_k_mask(
    scores: torch.Tensor,
    k: int | torch.Tensor,
    candidates: torch.Tensor,
    *,
    absolute: bool = False,
) -> torch.Tensor:
    """The ``k`` highest-scoring candidates of each row (fewer if a row has fewer).

    Ties are broken by position (the earlier token first). With ``absolute``, rank by
    ``|score|``.

    Args:
        scores: ``(B, T)`` floating. k: an int ``>= 0``, or one per row, ``LongTensor
            (B,)``. candidates: bool ``(B, T)``.

    Returns:
        bool ``(B, T)``, ``True`` on the chosen tokens (never on a non-candidate).
    """
    check_bool_mask(candidates, "candidates", meaning="True on rankable tokens")
    scores = _check_scores(scores, "scores", candidates.shape, "candidates")
    absolute = check_bool(absolute, "absolute")
    if isinstance(k, torch.Tensor):
        if k.shape != candidates.shape[:1] or k.is_floating_point() or bool((k < 0).any()):
            raise ValueError(
                f"k must be a non-negative int or an int tensor of shape (B,), got {k}."
            )
        k = k[:, None]  # (B, 1)
    else:
        k = check_positive_int(k, "k", allow_zero=True)
    s = scores.abs() if absolute else scores
    s = s.double().masked_fill(~candidates, -math.inf)  # (B, T)
    order = torch.argsort(-s, dim=-1, stable=True)  # best first, earlier first on ties
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(s.shape[1]).expand_as(order).contiguous())
    return (rank < k) & candidates  # (B, T)


def random_k_mask(
    candidates: torch.Tensor, k: int | torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """``k`` candidates per row chosen uniformly at random (all if fewer): the baseline of a
    removal curve. bool ``(B, T)``."""
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}.")
    check_bool_mask(candidates, "candidates", meaning="True on rankable tokens")
    noise = torch.rand(candidates.shape, generator=generator)  # (B, T)
    return top_k_mask(noise, k, candidates)


def removal_curve(
    model: TransformerClassifier,
    ids: torch.Tensor,
    mask: torch.Tensor,
    scores: torch.Tensor | None,
    ks: Sequence[int],
    *,
    candidates: torch.Tensor | None = None,
    absolute: bool = False,
    mode: str = "delete",
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Remove each row's top-``k`` tokens by ``scores`` and measure the effect.

    For each ``k``: the mean drop of the probability of the originally predicted class,
    ``mean_b [p_pred(x_b) - p_pred(x_b - topk_b)]``, and the flip rate, the fraction of rows
    whose predicted class changes. With ``scores=None`` the tokens are random (pass a
    ``generator``). At least one real token always stays: ``k`` is capped per row at the
    number of candidates (minus one if every real token is a candidate).

    Returns:
        ``(prob_drop, flip_rate)``: two float tensors of shape ``(len(ks),)``.
    """
    model = _check_model(model)
    ids, mask = check_ids_mask(ids, mask, model.vocab_size)
    candidates = _check_candidates(candidates, mask)
    if scores is None and generator is None:
        raise ValueError("scores=None (random removal) needs a generator.")
    check_generator(generator)
    absolute = check_bool(absolute, "absolute")
    if isinstance(ks, int) or not all(isinstance(k, int) and k >= 0 for k in ks):
        raise ValueError(f"ks must be a sequence of non-negative ints, got {ks!r}.")
    room = candidates.sum(-1) - (candidates == mask).all(dim=-1).long()  # (B,)
    with torch.no_grad():
        p0 = _probs(model, ids, mask)  # (B, C)
        pred = p0.argmax(-1)  # (B,)
        base = p0.gather(1, pred[:, None])[:, 0]
        drops, flips = [], []
        for k in ks:
            k_rows = room.clamp(max=k)  # (B,)
            if scores is None:
                assert generator is not None
                chosen = random_k_mask(candidates, k_rows, generator)
            else:
                chosen = top_k_mask(scores, k_rows, candidates, absolute=absolute)
            new_ids, new_mask = remove_tokens(ids, mask, chosen, mode=mode)
            p = _probs(model, new_ids, new_mask)  # (B, C)
            drops.append(float((base - p.gather(1, pred[:, None])[:, 0]).mean()))
            flips.append(float((p.argmax(-1) != pred).float().mean()))
    return torch.tensor(drops), torch.tensor(flips)


def kendall_tau(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Kendall's tau-b between two attributions, per row, over the tokens where ``mask``.

    ``tau_b = (C - D) / sqrt((P - T_a) (P - T_b))`` with ``C`` / ``D`` the concordant /
    discordant pairs, ``P`` all pairs and ``T_a`` / ``T_b`` the pairs tied in ``a`` / ``b``
    (the definition of ``scipy.stats.kendalltau``). 1 = same order, -1 = reversed.

    Args:
        a, b: ``(B, T)`` floating scores. mask: bool ``(B, T)``, the tokens to compare.

    Returns:
        ``(B,)`` float64; NaN for a row with fewer than 2 tokens or constant scores.
    """
    check_bool_mask(mask, "mask")
    a = _check_scores(a, "a", mask.shape).double()
    b = _check_scores(b, "b", mask.shape).double()
    da = torch.sign(a[:, :, None] - a[:, None, :])  # (B, T, T)
    db = torch.sign(b[:, :, None] - b[:, None, :])
    pair = mask[:, :, None] & mask[:, None, :]
    pair = pair & torch.ones_like(pair).triu(1)  # each unordered pair once
    num = (da * db * pair).sum((1, 2))
    n_a = ((da != 0) & pair).sum((1, 2)).double()  # pairs not tied in a
    n_b = ((db != 0) & pair).sum((1, 2)).double()
    return num / torch.sqrt(n_a * n_b)  # (B,), NaN where 0 / 0


def top_k_overlap(
    a: torch.Tensor, b: torch.Tensor, k: int, candidates: torch.Tensor, *, absolute: bool = False
) -> torch.Tensor:
    """``|top_k(a) & top_k(b)| / k`` per row (``k`` capped at the number of candidates).
    ``(B,)`` float."""
    absolute = check_bool(absolute, "absolute")
    check_bool_mask(candidates, "candidates", meaning="True on rankable tokens")
    a = _check_scores(a, "a", candidates.shape, "candidates")
    b = _check_scores(b, "b", candidates.shape, "candidates")
    ta = top_k_mask(a, k, candidates, absolute=absolute)
    tb = top_k_mask(b, k, candidates, absolute=absolute)
    kk = torch.clamp(candidates.sum(-1), max=k).clamp(min=1)
    return (ta & tb).sum(-1) / kk  # (B,)


def top_k_precision(
    scores: torch.Tensor,
    truth: torch.Tensor,
    candidates: torch.Tensor,
    k: int | None = None,
    *,
    absolute: bool = False,
) -> torch.Tensor:
    """Fraction of each row's top-``k`` tokens that are ground-truth deciding tokens.

    With ``k=None``, ``k`` is each row's number of true tokens (then precision = recall).

    Args:
        scores: ``(B, T)``. truth: bool ``(B, T)`` (e.g. ``encode_sentiment``'s
            ``decisive``). candidates: bool ``(B, T)``.

    Returns:
        ``(B,)`` float.
    """
    check_bool_mask(candidates, "candidates", meaning="True on rankable tokens")
    check_bool_mask(truth, "truth", candidates.shape, meaning="True on the deciding tokens")
    absolute = check_bool(absolute, "absolute")
    if k is None:
        chosen = top_k_mask(scores, (truth & candidates).sum(-1), candidates, absolute=absolute)
    else:
        chosen = top_k_mask(scores, k, candidates, absolute=absolute)
    n = chosen.sum(-1).clamp(min=1)
    return (chosen & truth).sum(-1) / n  # (B,)


# ------------------------------------------------------------- counterfactual attention


def permute_weights(
    weights: torch.Tensor, mask: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """Shuffle each row's weights among its real tokens (padding stays 0): the
    counterfactual of Jain & Wallace (2019, section 4.2). ``(B, T)``."""
    check_bool_mask(mask, "mask")
    weights = _check_scores(weights, "weights", mask.shape)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}.")
    out = torch.zeros_like(weights)
    for i in range(weights.shape[0]):
        pos = mask[i].nonzero()[:, 0]
        perm = pos[torch.randperm(len(pos), generator=generator)]
        out[i, pos] = weights[i, perm]
    return out


def total_variation(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Total variation distance ``0.5 sum_c |p_c - q_c|`` between rows of two
    probability tables ``(B, C)``; ``(B,)`` in ``[0, 1]``."""
    p = check_floating(check_tensor(p, "p"), "p")
    q = check_floating(check_tensor(q, "q"), "q")
    if p.shape != q.shape or p.dim() != 2:
        raise ValueError(
            f"p and q must both be (B, C), got {fmt_shape(p.shape)} and {fmt_shape(q.shape)}."
        )
    return 0.5 * (p - q).abs().sum(-1)


__all__ = [
    "HEAD_FUSIONS",
    "attention_rollout",
    "gradient_x_input",
    "integrated_gradients",
    "kendall_tau",
    "leave_one_out",
    "permute_weights",
    "pooled_attention",
    "pooled_rollout",
    "random_k_mask",
    "removal_curve",
    "remove_tokens",
    "top_k_mask",
    "top_k_overlap",
    "top_k_precision",
    "total_variation",
]

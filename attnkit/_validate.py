"""Input checks shared by every attnkit function.

Each check raises early with a sentence that names the argument and says what was
expected, so that a learner sees *what* to fix rather than a stack trace from deep
inside a matrix multiplication.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def fmt_shape(shape: Sequence[int]) -> str:
    """Format a shape as ``(2, 5, 8)`` for error messages."""
    return "(" + ", ".join(str(int(s)) for s in shape) + ")"


def check_tensor(x: object, name: str, *, min_dim: int = 0) -> torch.Tensor:
    """Check that ``x`` is a ``torch.Tensor`` with at least ``min_dim`` dimensions."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor, got {type(x).__name__}. "
            f"Wrap your data with torch.as_tensor(...)."
        )
    if x.dim() < min_dim:
        raise ValueError(
            f"{name} must have at least {min_dim} dimensions, got shape {fmt_shape(x.shape)}."
        )
    return x


def check_floating(x: torch.Tensor, name: str) -> torch.Tensor:
    """Check that ``x`` holds floating-point numbers (attention needs real-valued scores)."""
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name} must be a floating-point tensor (float16, bfloat16, float32 or float64), "
            f"got {x.dtype}. Convert it first, e.g. {name}.float()."
        )
    return x


def check_same_dtype(**tensors: torch.Tensor) -> torch.dtype:
    """Check that all tensors share one dtype and return it."""
    dtypes = {name: t.dtype for name, t in tensors.items()}
    if len(set(dtypes.values())) > 1:
        listed = ", ".join(f"{n} is {d}" for n, d in dtypes.items())
        raise TypeError(f"{', '.join(dtypes)} must share one dtype; got {listed}.")
    return next(iter(dtypes.values()))


def broadcast_batch(what: str, **shapes: Sequence[int]) -> torch.Size:
    """Broadcast the leading (batch) dimensions of several shapes, or explain why not."""
    try:
        return torch.broadcast_shapes(*shapes.values())
    except RuntimeError:
        listed = ", ".join(f"{n} {fmt_shape(s)}" for n, s in shapes.items())
        raise ValueError(
            f"The leading (batch) dimensions of {what} must broadcast against each other; "
            f"got {listed}."
        ) from None


def broadcasts_to(shape: Sequence[int], target: Sequence[int]) -> bool:
    """True if a tensor of ``shape`` broadcasts to ``target`` without enlarging it."""
    target = torch.Size(target)
    try:
        return torch.broadcast_shapes(torch.Size(shape), target) == target
    except RuntimeError:
        return False


def check_qkv(
    q: object,
    k: object,
    v: object,
    *,
    names: tuple[str, str, str] = ("q", "k", "v"),
    last: str = "last dimension d_k",
) -> torch.Size:
    """Validate queries ``(..., n_q, f)``, keys ``(..., n_k, f)`` and values ``(..., n_k, d_v)``.

    One floating dtype, matching last dimensions of the first two (described by ``last``),
    as many values as keys; returns the broadcast batch shape. ``names`` are used in the
    messages (e.g. ``("phi_q", "phi_k", "v")`` for feature maps).
    """
    nq, nk, nv = names
    for name, t in zip(names, (q, k, v)):
        check_floating(check_tensor(t, name, min_dim=2), name)
    assert isinstance(q, torch.Tensor) and isinstance(k, torch.Tensor)
    assert isinstance(v, torch.Tensor)
    check_same_dtype(**{nq: q, nk: k, nv: v})
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"{nq} and {nk} must have the same {last}; got {nq} {fmt_shape(q.shape)} and "
            f"{nk} {fmt_shape(k.shape)}, i.e. {q.shape[-1]} vs {k.shape[-1]}."
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"{nk} and {nv} must have the same number of keys n_k (second-to-last dimension); "
            f"got {nk} {fmt_shape(k.shape)} and {nv} {fmt_shape(v.shape)}."
        )
    return broadcast_batch(
        f"{nq}, {nk} and {nv}", **{nq: q.shape[:-2], nk: k.shape[:-2], nv: v.shape[:-2]}
    )


def check_mask(mask: object, scores_shape: Sequence[int], name: str = "mask") -> torch.Tensor:
    """Check an attention mask against the shape of the scores ``(..., n_q, n_k)``.

    A bool mask means ``True`` = may attend; a floating mask is added to the scores.
    The mask must broadcast to the scores without enlarging them.
    """
    check_tensor(mask, name)
    assert isinstance(mask, torch.Tensor)
    if mask.dtype != torch.bool and mask.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name} must be bool (True = may attend) or floating-point (added to the scores), "
            f"got {mask.dtype}. If it holds 0/1 flags, pass {name}.bool()."
        )
    target = torch.Size(scores_shape)
    if not broadcasts_to(mask.shape, target):
        raise ValueError(
            f"{name} of shape {fmt_shape(mask.shape)} cannot broadcast to the attention scores "
            f"of shape {fmt_shape(target)} = (..., n_q, n_k)."
        )
    return mask


def check_bool_mask(
    mask: object,
    name: str,
    shape: Sequence[int] | None = None,
    *,
    meaning: str = "True on real tokens",
    nonempty_rows: bool = False,
) -> torch.Tensor:
    """Check a boolean mask: a bool tensor, of ``shape`` when given.

    ``meaning`` says what ``True`` stands for (it goes into the message); with
    ``nonempty_rows``, every row (last dimension) must hold at least one ``True``.
    """
    check_tensor(mask, name)
    assert isinstance(mask, torch.Tensor)
    if mask.dtype != torch.bool:
        raise TypeError(
            f"{name} must be a bool tensor ({meaning}), got {mask.dtype}; pass {name}.bool()."
        )
    if shape is not None and tuple(mask.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {fmt_shape(shape)}, got {fmt_shape(mask.shape)}.")
    if nonempty_rows and not bool(mask.any(dim=-1).all()):
        raise ValueError(f"every row of {name} needs at least one True ({meaning}).")
    return mask


def check_probability(p: object, name: str) -> float:
    """Check a probability used for dropout: a number in [0, 1)."""
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= float(p) < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1), got {p!r}.")
    return float(p)


def check_positive_number(x: object, name: str) -> float:
    """Check a positive finite real number (not a bool) and return it as a float."""
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"{name} must be a positive number, got {type(x).__name__}.")
    if not (math.isfinite(float(x)) and x > 0):
        raise ValueError(f"{name} must be a positive finite number, got {x!r}.")
    return float(x)


def check_scale(scale: object, name: str = "scale") -> float | None:
    """Check an optional score scale: ``None`` or a positive finite number."""
    if scale is None:
        return None
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
        raise TypeError(f"{name} must be None or a positive number, got {type(scale).__name__}.")
    return check_positive_number(scale, name)


def check_positive_int(n: object, name: str, *, allow_zero: bool = False) -> int:
    """Check that ``n`` is a (positive) Python or 0-d tensor integer and return it."""
    if isinstance(n, torch.Tensor) and n.dim() == 0 and not n.is_floating_point():
        n = int(n.item())
    lowest = 0 if allow_zero else 1
    if isinstance(n, bool) or not isinstance(n, int) or n < lowest:
        kind = "a non-negative" if allow_zero else "a positive"
        raise ValueError(f"{name} must be {kind} integer, got {n!r}.")
    return n


def check_module_dtype(x: torch.Tensor, name: str, module: torch.nn.Module) -> None:
    """Check that an input has the dtype of the module's parameters (if it has any)."""
    param = next(module.parameters(), None)
    if param is not None and x.dtype != param.dtype:
        raise TypeError(
            f"{name} has dtype {x.dtype} but the module's parameters are {param.dtype}; "
            f"convert one of them, e.g. module.to({x.dtype}) or {name}.to({param.dtype})."
        )


def check_images(
    images: object,
    name: str = "images",
    *,
    chw: tuple[int, int, int] | None = None,
    module: torch.nn.Module | None = None,
) -> torch.Tensor:
    """Check a floating batch of images ``(B, C, H, W)`` (channels first).

    With ``chw``, ``(C, H, W)`` must equal it (the message names ``module``'s class); with
    ``module``, the dtype must be that of its parameters.
    """
    check_floating(check_tensor(images, name), name)
    assert isinstance(images, torch.Tensor)
    if images.dim() != 4:
        raise ValueError(
            f"{name} must have shape (B, C, H, W) (channels first), got {fmt_shape(images.shape)}."
        )
    if chw is not None and tuple(images.shape[1:]) != tuple(chw):
        owner = "" if module is None else f" for this {type(module).__name__}"
        c, h, w = chw
        raise ValueError(
            f"{name} must have shape (B, C, H, W) = (B, {c}, {h}, {w}){owner}, "
            f"got {fmt_shape(images.shape)}."
        )
    if module is not None:
        check_module_dtype(images, name, module)
    return images


def check_sequence(
    x: object,
    name: str,
    module: torch.nn.Module,
    width: int,
    width_name: str = "d_model",
    *,
    min_dim: int = 0,
) -> torch.Tensor:
    """Check a batch-first sequence of vectors ``(B, T, width)`` fed to ``module``."""
    check_floating(check_tensor(x, name, min_dim=min_dim), name)
    assert isinstance(x, torch.Tensor)
    if x.dim() != 3 or x.shape[-1] != width:
        raise ValueError(
            f"{name} must have shape (B, T, {width_name}) = (B, T, {width}) (batch first), "
            f"got {fmt_shape(x.shape)}."
        )
    check_module_dtype(x, name, module)
    return x


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype in which softmax is evaluated: float32 for 16-bit inputs, else the input's."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype

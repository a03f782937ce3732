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
    """Check a probability used for dropout: a real number in [0, 1) (not a bool, not NaN);
    a ``ValueError`` naming ``name`` otherwise."""
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= float(p) < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1), got {p!r}.")
    return float(p)


def check_bool(x: object, name: str) -> bool:
    """Check a flag: ``True`` or ``False`` (a ``numpy.bool_`` or a 0-d bool tensor too).

    Truthy stand-ins (``"no"``, ``1``, ``None``) are refused with a ``TypeError``: a
    flag given the string ``"no"`` would otherwise silently mean yes.
    """
    if isinstance(x, bool):
        return x
    numpy_bool = type(x).__module__ == "numpy" and getattr(x, "ndim", 1) == 0
    if numpy_bool and getattr(getattr(x, "dtype", None), "kind", "") == "b":
        return bool(x)  # numpy.bool_ (numpy 1 and 2), not an array
    if isinstance(x, torch.Tensor) and x.dim() == 0 and x.dtype == torch.bool:
        return bool(x.item())
    raise TypeError(f"{name} must be True or False, got {type(x).__name__} {x!r}.")


def check_int(n: object, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """Check an integer (a Python, numpy or 0-d integer tensor int; not a bool, not 1.0)
    with ``low <= n <= high`` where given, and return it as an ``int``."""
    if isinstance(n, torch.Tensor) and n.dim() == 0 and not n.is_floating_point():
        n = n.item()
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(n).__name__} {n!r}.")
    n = int(n)
    if (low is not None and n < low) or (high is not None and n > high):
        lo = "-inf" if low is None else str(low)
        hi = "inf" if high is None else str(high)
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {n}.")
    return n


def check_real(
    x: object,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    what: str = "a finite number",
) -> float:
    """Check a finite real number (not a bool) with ``low <= x <= high`` where given."""
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"{name} must be {what}, got {type(x).__name__} {x!r}.")
    v = float(x)
    if not math.isfinite(v) or (low is not None and v < low) or (high is not None and v > high):
        raise ValueError(f"{name} must be {what}, got {x!r}.")
    return v


def check_choice(x: object, name: str, choices: Sequence[object]) -> object:
    """Check that ``x`` is one of ``choices`` (a ``ValueError`` listing them if not)."""
    try:  # a bool is not a stand-in for 0 or 1; an unhashable x is in no dict
        ok = not isinstance(x, bool) and x in choices
    except TypeError:
        ok = False
    if not ok:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {listed}; got {x!r}.")
    return x


def check_str(x: object, name: str) -> str:
    """Check a ``str``."""
    if not isinstance(x, str):
        raise TypeError(f"{name} must be a str, got {type(x).__name__}.")
    return x


def check_str_list(x: object, name: str) -> list[str]:
    """Check a list (or tuple) of strings; a bare ``str`` is refused, not split into
    characters."""
    if isinstance(x, str) or not isinstance(x, Sequence):
        raise TypeError(
            f"{name} must be a list of str, got {type(x).__name__}"
            + (f"; wrap one string as [{x!r}]." if isinstance(x, str) else ".")
        )
    for i, item in enumerate(x):
        if not isinstance(item, str):
            raise TypeError(f"{name}[{i}] must be a str, got {type(item).__name__}.")
    return list(x)


def check_module(
    model: object, name: str = "model", *, needs: Sequence[str] = (), what: str = ""
) -> torch.nn.Module:
    """Check a ``torch.nn.Module`` that has the methods/attributes ``needs``."""
    kind = what or "a torch.nn.Module"
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"{name} must be {kind}, got {type(model).__name__}.")
    missing = [a for a in needs if not hasattr(model, a)]
    if missing:
        raise TypeError(
            f"{name} must be {kind} (with {', '.join(needs)}); "
            f"{type(model).__name__} has no {', '.join(missing)}."
        )
    return model


def check_instance(x: object, name: str, cls: type | tuple[type, ...], what: str = "") -> object:
    """Check ``isinstance(x, cls)``; the message says ``what`` (default: the class name)."""
    if not isinstance(x, cls):
        kind = what or (
            cls.__name__ if isinstance(cls, type) else " or ".join(c.__name__ for c in cls)
        )
        raise TypeError(f"{name} must be {kind}, got {type(x).__name__}.")
    return x


def check_generator(generator: object, name: str = "generator") -> torch.Generator | None:
    """Check an optional ``torch.Generator``."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"{name} must be None or a torch.Generator, got {type(generator).__name__}."
        )
    return generator


def check_dtype(dtype: object, name: str = "dtype", *, floating: bool = True) -> torch.dtype:
    """Check a ``torch.dtype`` (a floating one when ``floating``)."""
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"{name} must be a torch.dtype, got {type(dtype).__name__} {dtype!r}.")
    if floating and dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be a floating-point dtype, got {dtype}.")
    return dtype


def check_id_list(ids: object, name: str, vocab_size: int) -> list[int]:
    """A 1-d tensor or a list of integer ids in ``[0, vocab_size)``, as a list of ints."""
    if isinstance(ids, torch.Tensor):
        check_ids(ids, name, vocab_size=vocab_size, dim=1)
        return [int(i) for i in ids.tolist()]
    if isinstance(ids, str) or not isinstance(ids, Sequence):
        raise TypeError(f"{name} must be a list or 1-d tensor of ids, got {type(ids).__name__}.")
    out = [check_int(i, f"{name}[{j}]") for j, i in enumerate(ids)]
    bad = [i for i in out if not 0 <= i < vocab_size]
    if bad:
        raise ValueError(f"{name} must hold ids in [0, {vocab_size}), got {bad[0]}.")
    return out


def check_ids(
    x: object, name: str, *, vocab_size: int | None = None, dim: int | None = None
) -> torch.Tensor:
    """Check a tensor of integer ids (any integer dtype, not bool), of ``dim`` dimensions
    when given, each in ``[0, vocab_size)`` when given (one pass over the ids: an embedding
    table's ``IndexError`` would not name the argument)."""
    check_tensor(x, name)
    assert isinstance(x, torch.Tensor)
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer ids, got {x.dtype}; pass {name}.long().")
    if dim is not None and x.dim() != dim:
        raise ValueError(f"{name} must have {dim} dimensions, got shape {fmt_shape(x.shape)}.")
    if vocab_size is not None and x.numel() and (int(x.min()) < 0 or int(x.max()) >= vocab_size):
        raise ValueError(
            f"{name} must hold ids in [0, {vocab_size}) (the vocabulary size), "
            f"got values from {int(x.min())} to {int(x.max())}."
        )
    return x


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

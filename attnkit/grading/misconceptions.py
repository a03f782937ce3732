"""Misconceptions: catalogued wrong implementations, recognised in a learner's answer.

A catalogue, ``tests/grading/misconceptions/NN_slug.py`` (same ``NN_slug`` as
``solutions/NN_slug.py``), holds complete wrong implementations of the chapter's
exercises, each decorated with :func:`misconception`::

    @misconception("attention_scores", en="...", zh="...")
    def scale_by_d_k(q, k, scale=None):  # the function's name is the misconception's id
        return q @ k.transpose(-2, -1) / q.shape[-1]

A misconception may call the chapter's other exercise functions by their bare names,
exactly as the solution does: they resolve to the learner's functions (as the graded
test sees them, helpers replaced by the grader included).

While a grading test of exercise ``X`` runs (the plugin :mod:`attnkit.grading.plugin`
starts a :class:`Recorder` for it), the functions :func:`attnkit.grading.require` returns
for ``X`` record every call: copies of the arguments taken before the call, a copy of the
result or the exception's type, which arguments the call changed in place, whether the
result shares memory with an argument, and the gradient of the result when an argument
requires one. When the test fails, :func:`explain` replays each catalogued
misconception of ``X`` on the same inputs and names the one that behaves the same on
every recorded call; when none does, it says how the first differing call departs from
the reference solution (shape, dtype, a constant scale factor, which rows or columns,
the largest difference, an argument changed in place) instead of a bare assertion.

Messages are in English or Chinese, from the environment variable ``ATTNKIT_GRADE_LANG``
(``en`` by default; any value starting with ``zh`` gives Chinese).
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import inspect
import math
import os
import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

MAX_CALLS = 16  # calls recorded per test (the first ones); replays stay cheap
REPLAY_BUDGET_S = 10.0  # stop replaying misconceptions after this many seconds
RTOL, ATOL = 1e-6, 1e-9  # "the same number" (Python floats), and tensors of other dtypes
_TOLERANCE = {  # per dtype, as torch.testing.assert_close (rtol, atol)
    torch.float64: (1e-7, 1e-7),
    torch.float32: (1.3e-6, 1e-5),
    torch.bfloat16: (1.6e-2, 1e-5),
    torch.float16: (1e-3, 1e-5),
}
CATALOGUE_DIR = Path("tests") / "grading" / "misconceptions"

__all__ = [
    "Misconception",
    "Recorder",
    "behaviour_of",
    "catalogue_path",
    "explain",
    "language",
    "load_catalogue",
    "misconception",
    "named_for_exercise",
    "substitute",
    "variant",
    "wrap_required",
]


# ------------------------------------------------------------------ the catalogue
@dataclass(frozen=True)
class Misconception:
    """One catalogued mistake: ``fn`` is a complete wrong implementation of ``exercise``."""

    id: str
    exercise: str
    en: str
    zh: str
    fn: Callable[..., Any] = field(repr=False, compare=False)

    def message(self, lang: str | None = None) -> str:
        return self.zh if (lang or language()) == "zh" else self.en


def misconception(exercise: str, *, en: str, zh: str) -> Callable[[Callable], Callable]:
    """Mark a function as a misconception of ``exercise`` (its name is the id).

    The function is returned unchanged, so the catalogue module stays plain Python.
    """
    if not (isinstance(exercise, str) and exercise.isidentifier()):
        raise ValueError(f"exercise must be a function name, got {exercise!r}")
    for lang, text in (("en", en), ("zh", zh)):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"the {lang} message of a misconception of {exercise} is empty")

    def mark(fn: Callable) -> Callable:
        fn.__misconception__ = Misconception(fn.__name__, exercise, en.strip(), zh.strip(), fn)
        return fn

    return mark


def language() -> str:
    """``"zh"`` when ``ATTNKIT_GRADE_LANG`` starts with ``zh``, else ``"en"``."""
    return "zh" if os.environ.get("ATTNKIT_GRADE_LANG", "en").lower().startswith("zh") else "en"


def catalogue_path(test_file: str | Path) -> Path:
    """``tests/grading/test_NN_slug.py`` -> ``tests/grading/misconceptions/NN_slug.py``."""
    test_file = Path(test_file)
    return test_file.parent / "misconceptions" / f"{test_file.stem.removeprefix('test_')}.py"


@functools.cache
def _load_module(path: Path) -> types.ModuleType | None:
    if not path.is_file():
        return None
    name = f"attnkit_misconceptions_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_catalogue(path: str | Path) -> dict[str, list[Misconception]]:
    """The misconceptions of a catalogue file, per exercise, in the order of the file."""
    module = _load_module(Path(path).resolve())
    found: dict[str, list[Misconception]] = {}
    if module is None:
        return found
    for obj in vars(module).values():
        m = getattr(obj, "__misconception__", None)
        if isinstance(m, Misconception) and getattr(obj, "__module__", None) == module.__name__:
            found.setdefault(m.exercise, []).append(m)
    return found


def _catalogue_globals(m: Misconception) -> dict[str, Any]:
    return {k: v for k, v in m.fn.__globals__.items() if not k.startswith("__")}


def _bind(m: Misconception, learner_names: dict[str, Any]) -> Callable:
    """The misconception's function with its missing global names (the chapter's other
    exercises) taken from ``learner_names``; the catalogue's own names win."""
    fn = m.fn
    scope = {**learner_names, **fn.__globals__}
    bound = types.FunctionType(fn.__code__, scope, fn.__name__, fn.__defaults__, fn.__closure__)
    bound.__kwdefaults__ = fn.__kwdefaults__
    return bound


def substitute(module: types.ModuleType, m: Misconception) -> types.ModuleType:
    """Put misconception ``m`` in ``module`` in place of its exercise (for testing the
    catalogue): the catalogue's names join the module, and the function's globals are the
    module's own namespace, so helpers a test replaces are seen as a learner's are."""
    namespace = vars(module)
    namespace.update(_catalogue_globals(m))
    fn = m.fn
    wrong = types.FunctionType(fn.__code__, namespace, m.exercise, fn.__defaults__, fn.__closure__)
    wrong.__kwdefaults__ = fn.__kwdefaults__
    namespace[m.exercise] = wrong
    return module


_VARIANT: list[Misconception] = []  # set by the catalogue check (tests/test_misconceptions.py)


def variant(module: types.ModuleType) -> types.ModuleType:
    """The learner module the grading tests see: ``module`` itself, or with the
    misconception under test substituted when the catalogue check has set one."""
    return substitute(module, _VARIANT[-1]) if _VARIANT else module


# ------------------------------------------------------------------ copying values
def _clone(obj: Any) -> Any:
    """A deep copy that keeps ``requires_grad`` and copies generators by state."""
    if isinstance(obj, torch.Tensor):
        c = obj.detach().clone()
        return c.requires_grad_(obj.requires_grad) if c.is_floating_point() else c
    if isinstance(obj, torch.Generator):
        g = torch.Generator(device=obj.device)
        g.set_state(obj.get_state())
        return g
    if isinstance(obj, (list, tuple)):
        items = [_clone(x) for x in obj]
        return type(obj)(items) if type(obj) in (list, tuple) else _try_deepcopy(obj)
    if isinstance(obj, dict):
        return {k: _clone(v) for k, v in obj.items()}
    return _try_deepcopy(obj)


def _try_deepcopy(obj: Any) -> Any:
    try:
        return copy.deepcopy(obj)
    except Exception:
        return obj


def _detached(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if type(obj) in (list, tuple):
        return type(obj)(_detached(x) for x in obj)
    if isinstance(obj, dict):
        return {k: _detached(v) for k, v in obj.items()}
    return _try_deepcopy(obj)


def _tensors(obj: Any, path: str = "") -> list[tuple[str, torch.Tensor]]:
    if isinstance(obj, torch.Tensor):
        return [(path, obj)]
    if isinstance(obj, (list, tuple)):
        return [t for i, x in enumerate(obj) for t in _tensors(x, f"{path}[{i}]")]
    if isinstance(obj, dict):
        return [t for k, x in obj.items() for t in _tensors(x, f"{path}[{k!r}]")]
    return []


def _same_tensor(a: torch.Tensor, b: torch.Tensor, close: bool) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if torch.equal(a, b):  # the common case for arguments, and cheap
        return True
    if not (a.is_floating_point() or a.is_complex()):
        return False
    if not close:
        return bool(((a == b) | (torch.isnan(a) & torch.isnan(b))).all())
    rtol, atol = _TOLERANCE.get(b.dtype, (RTOL, ATOL))
    a64, b64 = a.detach().reshape(-1).double(), b.detach().reshape(-1).double()
    head = slice(0, 4096)  # a wrong answer usually differs early: decide on a prefix first
    if not torch.allclose(a64[head], b64[head], rtol=rtol, atol=atol, equal_nan=True):
        return False
    return torch.allclose(a64, b64, rtol=rtol, atol=atol, equal_nan=True)


def same_value(a: Any, b: Any, close: bool = True) -> bool:
    """Equal values: tensors of the same shape and dtype within tolerance (NaN equals
    NaN), numbers within tolerance and of the same kind, containers item by item."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (
            isinstance(a, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and _same_tensor(a.detach(), b.detach(), close)
        )
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if isinstance(a, int) != isinstance(b, int):
            return False
        if isinstance(a, int):
            return a == b  # counts, sizes, indices: exact
        if math.isnan(a) and math.isnan(b):
            return True
        return math.isclose(a, b, rel_tol=RTOL, abs_tol=ATOL) if close else a == b
    if type(a) in (list, tuple) or type(b) in (list, tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(same_value, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:
        return False


# ------------------------------------------------------------------ behaviour of a call
@dataclass
class Behaviour:
    """What one call did: its result (or exception type), the arguments it changed in
    place, the arguments its result shares memory with, the gradient of the result."""

    output: Any = None
    error: str | None = None
    mutated: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    grads: tuple[Any, ...] | None = None

    def same_as(self, other: Behaviour) -> bool:
        if self.error or other.error:
            return self.error == other.error and self.mutated == other.mutated
        if self.mutated != other.mutated or self.aliases != other.aliases:
            return False
        if not same_value(self.output, other.output):
            return False
        if self.grads is not None and other.grads is not None:
            return all(map(_same_grad, self.grads, other.grads))
        return True


def _same_grad(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return same_value(a, b)


@dataclass
class Call:
    """One recorded call: the arguments (copied before the call), the learner's names as
    they were (for replaying misconceptions that call helpers), what the call did."""

    args: tuple
    kwargs: dict
    names: dict[str, Any]
    behaviour: Behaviour
    rng: torch.Tensor | None = None  # torch's global random state before the call


def _arg_items(args: tuple, kwargs: dict) -> list[tuple[str, Any]]:
    return [(f"#{i}", a) for i, a in enumerate(args)] + list(kwargs.items())


def _grad_weights(out: torch.Tensor) -> torch.Tensor:
    g = torch.Generator().manual_seed(1234)
    return torch.randn(out.shape, generator=g, dtype=out.dtype)


def behaviour_of(
    fn: Callable, args: tuple, kwargs: dict, rng: torch.Tensor | None = None
) -> Behaviour:
    """Call ``fn`` on copies of the arguments (with torch's global random state set to
    ``rng``, restored afterwards) and describe what it did (never raises). The arguments
    themselves are left untouched, so they are what the copies are compared with."""
    before = (args, kwargs)
    args, kwargs = _clone(args), _clone(kwargs)
    with torch.random.fork_rng(devices=[]):
        if rng is not None:
            torch.set_rng_state(rng)
        try:
            out = fn(*args, **kwargs)
        except Exception as exc:
            return Behaviour(error=type(exc).__name__, mutated=_mutated(before, args, kwargs))
        return _describe(out, args, kwargs, before)


def _mutated(before: Any, args: tuple, kwargs: dict) -> tuple[str, ...]:
    if before is None:
        return ()
    old = dict(_arg_items(*before))
    changed = []
    for name, value in _arg_items(args, kwargs):
        for (_, a), (_, b) in zip(_tensors(old.get(name)), _tensors(value)):
            if not _same_tensor(a.detach(), b.detach(), close=False):
                changed.append(name)
                break
    return tuple(changed)


def _describe(out: Any, args: tuple, kwargs: dict, before: Any) -> Behaviour:
    inputs = _arg_items(args, kwargs)
    aliases = []
    for name, value in inputs:
        ptrs = {t.untyped_storage().data_ptr() for _, t in _tensors(value) if t.numel()}
        if any(t.numel() and t.untyped_storage().data_ptr() in ptrs for _, t in _tensors(out)):
            aliases.append(name)
    grads = None
    leaves = [t for _, v in inputs for _, t in _tensors(v) if t.requires_grad]
    if leaves and isinstance(out, torch.Tensor) and out.requires_grad and out.is_floating_point():
        try:
            loss = (torch.nan_to_num(out) * _grad_weights(out)).sum()
            grads = tuple(
                None if g is None else g.detach().clone()
                for g in torch.autograd.grad(loss, leaves, retain_graph=True, allow_unused=True)
            )
        except Exception:
            grads = None
    return Behaviour(
        output=_detached(out),
        mutated=_mutated(before, args, kwargs),
        aliases=tuple(aliases),
        grads=grads,
    )


# ------------------------------------------------------------------ recording
class Recorder:
    """Records the calls of one exercise's function during one grading test."""

    active: Recorder | None = None

    def __init__(self, exercise: str) -> None:
        self.exercise = exercise
        self.calls: list[Call] = []

    def __enter__(self) -> Recorder:
        Recorder.active = self
        return self

    def __exit__(self, *exc: object) -> None:
        if Recorder.active is self:
            Recorder.active = None

    def wrap(self, module: types.ModuleType, name: str, obj: Any) -> Any:
        """``obj`` (the learner's ``name``), recording its calls when ``name`` is the
        exercise being graded and ``obj`` a plain function; otherwise ``obj`` itself."""
        if name != self.exercise or not inspect.isfunction(obj):
            return obj

        @functools.wraps(obj)
        def recorded(*args: Any, **kwargs: Any) -> Any:
            if len(self.calls) >= MAX_CALLS:
                return obj(*args, **kwargs)
            before = _clone((args, kwargs))
            names, rng = dict(vars(module)), torch.get_rng_state()
            try:
                out = obj(*args, **kwargs)
            except Exception as exc:
                did = Behaviour(error=type(exc).__name__, mutated=_mutated(before, args, kwargs))
                self.calls.append(Call(*before, names, did, rng))
                raise
            self.calls.append(Call(*before, names, _describe(out, args, kwargs, before), rng))
            return out

        return recorded


def wrap_required(module: types.ModuleType, name: str, obj: Any) -> Any:
    """Used by :func:`attnkit.grading.require`: record when a recorder is active."""
    recorder = Recorder.active
    return obj if recorder is None else recorder.wrap(module, name, obj)


# ------------------------------------------------------------------ explaining
def matching(calls: list[Call], candidates: list[Misconception]) -> list[Misconception]:
    """The misconceptions that behave as the learner did on every recorded call."""
    found, start = [], time.monotonic()
    for m in candidates:
        if time.monotonic() - start > REPLAY_BUDGET_S:
            break
        if all(
            behaviour_of(_bind(m, c.names), c.args, c.kwargs, c.rng).same_as(c.behaviour)
            for c in calls
        ):
            found.append(m)
    return found


@functools.cache
def _reference_module(solution: Path) -> types.ModuleType | None:
    from .loader import load_definitions

    try:
        return load_definitions(solution, module_name=f"reference_{solution.stem}")
    except Exception:
        return None


def explain(
    exercise: str, calls: list[Call], catalogue: Path, solution: Path | None
) -> dict[str, Any]:
    """The report's fields for a failed test of ``exercise``: ``misconception`` (the
    first catalogued one that behaves as the learner's code did on every recorded call,
    with ``also``: the others that do) or else ``diagnosis`` (how the learner's result
    departs from the reference solution's). Empty when no call was recorded."""
    if not calls:
        return {}
    lang = language()
    found = matching(calls, load_catalogue(catalogue).get(exercise, []))
    if found:
        first = found[0]
        named = {"id": first.id, "message": first.message(lang)}
        if len(found) > 1:
            named["also"] = [m.id for m in found[1:]]
        return {"misconception": named}
    reference = _reference_module(solution) if solution is not None else None
    ref_fn = getattr(reference, exercise, None) if reference is not None else None
    if not callable(ref_fn):
        return {}
    text = diagnose(ref_fn, calls, lang)
    return {"diagnosis": text} if text else {}


_T = {
    "raised": ("your function raised {err} where the solution returns {what}",
               "你的函数抛出了 {err}，而参考答案返回 {what}"),
    "should_raise": ("the solution raises {err} here (invalid input), yours returns {what}",
                     "这里参考答案会抛出 {err}（输入不合法），你的函数却返回了 {what}"),
    "other_error": ("your function raised {err}; the solution raises {ref}",
                    "你的函数抛出了 {err}，参考答案抛出的是 {ref}"),
    "type": ("you return {got}; the solution returns {want}",
             "你返回的是 {got}，参考答案返回的是 {want}"),
    "shape": ("your result has shape {got}; expected {want}",
              "你的结果形状是 {got}，应为 {want}"),
    "transposed": (" (your result is the expected one with its last two axes swapped)",
                   "（你的结果是正确结果交换了最后两个轴）"),
    "swapped": ("your result is the expected one with its last two axes swapped (transposed)",
                "你的结果是正确结果交换了最后两个轴（转置了）"),
    "dtype": ("your result has dtype {got}; expected {want}",
              "你的结果的 dtype 是 {got}，应为 {want}"),
    "scale": ("your result is the expected one times {factor} (a constant factor: "
              "a wrong scale somewhere?)",
              "你的结果是正确结果的 {factor} 倍（一个常数因子：某处的缩放错了？）"),
    "nan": ("your result has NaN or inf at {n} position(s) where the solution's is finite",
            "你的结果在 {n} 个位置上是 NaN 或 inf，而参考答案是有限值"),
    "where_rows": ("{n} of {total} values differ, in rows {rows} of the last two axes; "
                   "largest difference {diff:.3g}",
                   "{total} 个值中有 {n} 个不同，位于最后两个轴的第 {rows} 行；最大差 {diff:.3g}"),
    "where_cols": ("{n} of {total} values differ, in columns {cols} of the last two axes; "
                   "largest difference {diff:.3g}",
                   "{total} 个值中有 {n} 个不同，位于最后两个轴的第 {cols} 列；最大差 {diff:.3g}"),
    "where": ("{n} of {total} values differ, first at index {first}; largest difference "
              "{diff:.3g}",
              "{total} 个值中有 {n} 个不同，第一个在索引 {first}；最大差 {diff:.3g}"),
    "value": ("your result is {got}; expected {want}", "你的结果是 {got}，应为 {want}"),
    "mutated": ("your function changed its argument(s) {names} in place; work on a copy",
                "你的函数原地修改了参数 {names}；请在副本上计算"),
    "alias": ("your result shares memory with the argument(s) {names}; return a new tensor",
              "你的结果与参数 {names} 共享内存；请返回一个新张量"),
    "grad": ("the values are right but the gradient through them differs from the "
             "solution's{nan}",
             "数值正确，但反向传播的梯度与参考答案不同{nan}"),
    "grad_nan": (" (yours has NaN)", "（你的梯度中有 NaN）"),
    "same": ("on the inputs this test used your function returns what the solution "
             "returns; read the test's message",
             "在这个测试的输入上，你的函数与参考答案返回相同结果；请阅读测试给出的信息"),
    "call": ("on the call with {args}: ", "在参数为 {args} 的调用上："),
}  # fmt: skip


def _t(key: str, lang: str, **kw: Any) -> str:
    en, zh = _T[key]
    return (zh if lang == "zh" else en).format(**kw)


def _short(obj: Any) -> str:
    if isinstance(obj, torch.Tensor):
        if obj.numel() <= 6:
            return repr(obj.tolist())
        return f"Tensor{list(obj.shape)} {str(obj.dtype).removeprefix('torch.')}"
    if isinstance(obj, (list, tuple)):
        return type(obj).__name__ + "(" + ", ".join(_short(x) for x in obj[:4]) + ")"
    text = repr(obj)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(obj: Any, lang: str = "en") -> str:
    if isinstance(obj, torch.Tensor):
        shape, dtype = tuple(obj.shape), str(obj.dtype).removeprefix("torch.")
        if lang == "zh":
            return f"形状为 {shape} 的张量（{dtype}）"
        return f"a tensor of shape {shape} ({dtype})"
    return f"{type(obj).__name__} {_short(obj)}"


def _param_names(fn: Callable, names: tuple[str, ...]) -> str:
    try:
        params = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        params = []
    out = []
    for n in names:
        if n.startswith("#") and int(n[1:]) < len(params):
            out.append(f"`{params[int(n[1:])]}`")
        else:
            out.append(f"`{n.lstrip('#')}`")
    return ", ".join(out)


def _compare_tensors(got: torch.Tensor, want: torch.Tensor, lang: str) -> str:
    if got.shape != want.shape:
        text = _t("shape", lang, got=tuple(got.shape), want=tuple(want.shape))
        swapped = (*want.shape[:-2], want.shape[-1], want.shape[-2]) if want.dim() >= 2 else ()
        if got.shape == swapped and same_value(got.transpose(-2, -1), want):
            text += _t("transposed", lang)
        return text
    if got.dtype != want.dtype:
        return _t("dtype", lang, got=got.dtype, want=want.dtype)
    square = got.dim() >= 2 and got.shape[-1] == got.shape[-2] > 1
    if square and same_value(got.transpose(-2, -1), want):
        return _t("swapped", lang)
    if not (got.is_floating_point() or want.is_floating_point()):
        got_f, want_f = got.double(), want.double()
    else:
        got_f, want_f = got.detach().double(), want.detach().double()
    bad_nan = ~torch.isfinite(got_f) & torch.isfinite(want_f)
    if bool(bad_nan.any()):
        return _t("nan", lang, n=int(bad_nan.sum()))
    finite = torch.isfinite(got_f) & torch.isfinite(want_f)
    nz = finite & (want_f.abs() > 1e-9 * max(1.0, float(want_f[finite].abs().max() or 1)))
    if int(nz.sum()) >= 2 and want.numel() > 1:
        ratios = got_f[nz] / want_f[nz]
        factor = float(ratios.median())
        if (
            abs(factor - 1) > 1e-3
            and torch.allclose(ratios, torch.full_like(ratios, factor), rtol=1e-4)
            and bool((got_f[finite & ~nz].abs() < 1e-9).all())
        ):
            f = f"{factor:.4g}" + (f" (= 1/{1 / factor:.4g})" if abs(factor) < 1 else "")
            return _t("scale", lang, factor=f)
    diff = (got_f - want_f).abs().nan_to_num(nan=float("inf"))
    rtol, atol = _TOLERANCE.get(want.dtype, (RTOL, ATOL))
    wrong = diff > atol + rtol * want_f.abs().nan_to_num()
    if got.dim() == 0 or want.numel() == 1:
        return _t("value", lang, got=_short(got), want=_short(want))
    n, total, max_diff = int(wrong.sum()), wrong.numel(), float(diff[wrong].max())
    if got.dim() >= 2 and n:
        rows = wrong.flatten(0, -3).any(0) if got.dim() > 2 else wrong  # (R, C)
        bad_rows = rows.any(-1).nonzero().flatten().tolist()
        bad_cols = rows.any(-2).nonzero().flatten().tolist()
        if len(bad_rows) < rows.shape[-2]:
            return _t("where_rows", lang, n=n, total=total, rows=_few(bad_rows), diff=max_diff)
        if len(bad_cols) < rows.shape[-1]:
            return _t("where_cols", lang, n=n, total=total, cols=_few(bad_cols), diff=max_diff)
    first = tuple(wrong.nonzero()[0].tolist()) if n else ()
    return _t("where", lang, n=n, total=total, first=first, diff=max_diff)


def _few(items: list[int]) -> str:
    return ", ".join(map(str, items[:6])) + (", ..." if len(items) > 6 else "")


def _compare(got: Any, want: Any, lang: str) -> str:
    if isinstance(got, torch.Tensor) and isinstance(want, torch.Tensor):
        return _compare_tensors(got, want, lang)
    if type(got) is not type(want) and not (
        type(got) in (list, tuple) and type(want) in (list, tuple)
    ):
        return _t("type", lang, got=_kind(got, lang), want=_kind(want, lang))
    if type(got) in (list, tuple) and type(want) in (list, tuple):
        if type(got) is not type(want) or len(got) != len(want):
            return _t("type", lang, got=_kind(got, lang), want=_kind(want, lang))
        for i, (a, b) in enumerate(zip(got, want)):
            if not same_value(a, b):
                return f"[{i}]: " + _compare(a, b, lang)
    return _t("value", lang, got=_short(got), want=_short(want))


def diagnose(reference: Callable, calls: list[Call], lang: str = "en") -> str:
    """How the learner's first call that differs from ``reference`` differs (one line)."""
    for call in calls:
        want = behaviour_of(reference, call.args, call.kwargs, call.rng)
        got = call.behaviour
        if got.same_as(want):
            continue
        args = ", ".join(
            [_short(a) for a in call.args] + [f"{k}={_short(v)}" for k, v in call.kwargs.items()]
        )
        prefix = _t("call", lang, args=args) if len(args) <= 120 else ""
        if got.error and want.error:
            return prefix + _t("other_error", lang, err=got.error, ref=want.error)
        if got.error:
            return prefix + _t("raised", lang, err=got.error, what=_kind(want.output, lang))
        if want.error:
            return prefix + _t("should_raise", lang, err=want.error, what=_kind(got.output, lang))
        if got.mutated != want.mutated and got.mutated:
            return prefix + _t("mutated", lang, names=_param_names(reference, got.mutated))
        if not same_value(got.output, want.output):
            return prefix + _compare(got.output, want.output, lang)
        if got.aliases != want.aliases and got.aliases:
            return prefix + _t("alias", lang, names=_param_names(reference, got.aliases))
        if got.grads is not None and want.grads is not None:
            has_nan = any(
                isinstance(g, torch.Tensor) and bool(torch.isnan(g).any()) for g in got.grads
            )
            return prefix + _t("grad", lang, nan=_t("grad_nan", lang) if has_nan else "")
    return _t("same", lang)


def named_for_exercise(records: list[dict]) -> dict[str, Any] | None:
    """What the report says about one exercise, from its tests' records: the
    misconception named by the most failed tests (``ids``: it and any named equally
    often; ``text``: its message), else the first diagnosis; ``None`` if neither."""
    failed = [r for r in records if r.get("status") == "failed"]
    counts: dict[str, int] = {}
    messages: dict[str, str] = {}
    for r in failed:
        named = r.get("misconception")
        if not named:
            continue
        messages.setdefault(named["id"], named["message"])
        for mid in [named["id"], *named.get("also", [])]:
            counts[mid] = counts.get(mid, 0) + 1
    if messages:
        best = max(counts[i] for i in messages)
        ids = [i for i, n in counts.items() if n == best]
        first = next(i for i in messages if counts[i] == best)
        return {"kind": "misconception", "ids": [first, *(i for i in ids if i != first)],
                "text": messages[first]}  # fmt: skip
    for r in failed:
        if r.get("diagnosis"):
            return {"kind": "diagnosis", "ids": [], "text": r["diagnosis"]}
    return None

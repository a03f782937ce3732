"""The sandboxed worker of instructor mode: loads the learner's definitions, serves calls.

Started by :class:`attnkit.grading.remote.Connection` as
``python -I -m attnkit.grading.worker IN_FD OUT_FD LEARNER_FILE`` inside the sandbox.
Everything here runs next to the learner's code, so nothing here is trusted by the
judge: the replies are read with the restricted unpickler, and the audit (which library
functions the learner's code reached) is evidence for the instructor, not a verdict.
Messages from the judge are trusted (cloudpickle). The learner's ``print`` goes to
stderr (a log), never into the message channel's file descriptor.
"""

from __future__ import annotations

import os
import sys
import threading
import traceback
from collections import OrderedDict
from pathlib import Path
from typing import Any

_SDPA = "scaled_dot_product_attention"
_state = threading.local()


def install_audit(events: set[str], repo_dirs: tuple[str, ...]):
    """Record, while a call of the judge runs, what the learner's code reaches: every
    function of attnkit (each replaced by a recording wrapper in every attnkit namespace
    that holds it: once before the learner's code is loaded, and again after, through
    the returned function, for the modules it imported and the names it bound),
    torch's ``scaled_dot_product_attention``, files opened under the repository (but
    not the package's own modules being imported) or under a ``solutions`` folder,
    sockets and subprocesses (an audit hook, which cannot be removed). Only the
    outermost library call is recorded; nothing is recorded while a function the
    grader passed or bound runs (:class:`_Trusted`)."""
    import functools
    import types

    import torch.nn.functional as F

    def recording() -> bool:
        return getattr(_state, "recording", False) and not getattr(_state, "paused", 0)

    def wrap(fn, label: str):
        @functools.wraps(fn)
        def audited(*args, **kwargs):
            if recording():
                events.add(label)
            _state.paused = getattr(_state, "paused", 0) + 1
            try:
                return fn(*args, **kwargs)
            finally:
                _state.paused -= 1

        audited._attnkit_audited = True
        return audited

    wrapped: dict[int, object] = {}

    def wrapped_value(value):
        """The recording wrapper of an attnkit function (else ``None``)."""
        if not isinstance(value, types.FunctionType) or hasattr(value, "_attnkit_audited"):
            return None
        owner = getattr(value, "__module__", "") or ""
        if not owner.startswith("attnkit") or ".grading" in owner:
            return None
        if id(value) not in wrapped:
            wrapped[id(value)] = wrap(value, f"{owner}.{value.__name__}")
        return wrapped[id(value)]

    def wrap_all(extra: dict | None = None) -> None:
        namespaces = [
            vars(mod)
            for name, mod in list(sys.modules.items())
            if (name == "attnkit" or name.startswith("attnkit.")) and ".grading" not in name
        ]
        for namespace in [*namespaces, *([extra] if extra is not None else [])]:
            for attr, value in list(namespace.items()):
                replacement = wrapped_value(value)
                if replacement is not None:
                    namespace[attr] = replacement

    wrap_all()
    F.scaled_dot_product_attention = wrap(F.scaled_dot_product_attention, f"torch {_SDPA}")
    package = os.path.join(repo_dirs[0], "attnkit") if repo_dirs else ""

    def audit(event, args):
        if not recording():
            return
        if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            full = os.path.abspath(os.fsdecode(args[0]))
            parts = Path(full).parts
            if "__pycache__" in parts or ".venv" in parts or "site-packages" in parts:
                return  # modules being imported
            if package and full.startswith(package + os.sep):
                return
            if "solutions" in parts or any(full.startswith(d) for d in repo_dirs):
                events.add(f"open {full}")
        elif event in ("socket.connect", "subprocess.Popen", "os.system", "os.exec", "os.fork"):
            events.add(event)

    sys.addaudithook(audit)
    return wrap_all


class _Trusted:
    """A function the grader bound in the learner's module: run with the audit paused."""

    def __init__(self, fn) -> None:
        self.fn = fn
        self.__name__ = getattr(fn, "__name__", "grader_helper")

    def __call__(self, *args, **kwargs):
        _state.paused = getattr(_state, "paused", 0) + 1
        try:
            return self.fn(*args, **kwargs)
        finally:
            _state.paused -= 1


def _tensor_bytes_equal(a, b) -> bool:
    import torch

    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.is_floating_point() or a.is_complex():
        same = (a == b) | (torch.isnan(a) & torch.isnan(b))
        return bool(same.all())
    return bool(torch.equal(a, b))


def serve(in_fd: int, out_fd: int, learner_file: str) -> None:
    """Load the definitions, answer ``ready`` (or ``load_error``), then serve."""
    import pickle

    import torch

    import attnkit

    from .loader import LearnerFileError, load_definitions
    from .remote import (
        OwnFunction,
        _flat_safe,
        dumps_safe,
        read_message,
        to_safe,
        unflatten,
        write_message,
    )

    torch.set_num_threads(1)
    repo_dirs = (str(Path(attnkit.__file__).resolve().parents[1]),)
    events: set[str] = set()
    rewrap = install_audit(events, repo_dirs)

    def send(message: dict) -> None:
        write_message(out_fd, dumps_safe(message))

    def reply_exception(exc: BaseException, name: str = "(call)") -> None:
        tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
        sys.stderr.write("".join(tb[-6:]))
        message = {"kind": "raise", "type": type(exc).__name__, "message": str(exc)[:4000]}
        send({**message, "audit": {name: sorted(events)}})

    _state.recording = True
    try:
        module = load_definitions(learner_file, module_name="learner")
    except LearnerFileError as exc:
        send({"kind": "load_error", "message": str(exc), "audit": {"(loading)": sorted(events)}})
        return
    except BaseException as exc:
        send({"kind": "load_error", "message": f"{type(exc).__name__}: {exc}"})
        return
    finally:
        _state.recording = False
    rewrap(module.__dict__)  # attnkit modules the learner imported, names it bound
    own = dict(module.__dict__)
    names = {
        k: ("function" if callable(v) and not isinstance(v, type) else "value")
        for k, v in own.items()
        if not k.startswith("__") and not isinstance(v, type(sys))
    }
    send({"kind": "ready", "names": names, "audit": {"(loading)": sorted(events)}})
    events.clear()

    graphs: OrderedDict[int, tuple[list, list]] = OrderedDict()
    next_id = 0

    while True:
        data = read_message(in_fd)
        if data is None:
            return
        message = pickle.loads(data)
        kind = message["kind"]
        if kind == "bind":
            value = message["value"]
            if isinstance(value, OwnFunction):
                value = own.get(value.name)
            elif callable(value):
                value = _Trusted(value)
            module.__dict__[message["name"]] = value
            send({"kind": "ok"})
        elif kind == "unbind":
            module.__dict__.pop(message["name"], None)
            if message["name"] in own:
                module.__dict__[message["name"]] = own[message["name"]]
            send({"kind": "ok"})
        elif kind == "get":
            try:
                send({"kind": "value", "value": to_safe(module.__dict__[message["name"]])})
            except BaseException as exc:
                reply_exception(exc)
        elif kind == "release":
            graphs.pop(message["call_id"], None)
        elif kind == "backward":
            entry = graphs.get(message["call_id"])
            try:
                if entry is None:
                    raise RuntimeError("this call's graph was released")
                inputs, outputs = entry
                pairs = [
                    (o, g)
                    for o, g in zip(outputs, message["grads"], strict=False)
                    if o.requires_grad and g is not None
                ]
                grads = torch.autograd.grad(
                    [o for o, _ in pairs],
                    [t for _, t in inputs],
                    [g for _, g in pairs],
                    retain_graph=True,  # until released: the judge may differentiate twice
                    allow_unused=True,
                )
                grads = [None if g is None else g.detach() for g in grads]
                send({"kind": "grads", "grads": grads, "audit": {"(backward)": sorted(events)}})
            except BaseException as exc:
                reply_exception(exc)
            events.clear()
        elif kind == "call":
            name = message["name"]
            tensors = []
            for t, flag in zip(message["tensors"], message["requires_grad"], strict=True):
                t = t.clone() if not t.is_contiguous() else t
                if flag and (t.is_floating_point() or t.is_complex()):
                    t = t.requires_grad_(True)
                tensors.append(t)
            args, kwargs = unflatten(message["structure"], tensors)
            before = [t.detach().clone() for t in tensors]
            gens = generators_in((args, kwargs))
            gen_before = [g.get_state() for g in gens]
            fn = module.__dict__.get(name)
            try:
                if fn is None:
                    raise AttributeError(f"your file no longer defines `{name}`")
                own_ids = {id(v) for v in own.values()}
                args = _trust_arguments(args, own_ids)
                kwargs = _trust_arguments(kwargs, own_ids)
                _state.recording, _state.paused = True, 0
                try:
                    result = fn(*args, **kwargs)
                finally:
                    _state.recording = False
                out: list = []
                safe = _flat_safe(to_safe(result), out)
                mutated = {
                    i: t.detach().clone()
                    for i, (t, b) in enumerate(zip(tensors, before, strict=True))
                    if not _tensor_bytes_equal(t.detach(), b)
                }
                generators = {
                    i: g.get_state()
                    for i, (g, s) in enumerate(zip(gens, gen_before, strict=True))
                    if not torch.equal(g.get_state(), s)
                }
                reply: dict[str, Any] = {
                    "kind": "ok",
                    "result": safe,
                    "tensors": [o.detach() for o in out],
                    "mutated": mutated,
                    "generators": generators,
                    "audit": {name: sorted(events)},
                }
                if message["keep_graph"]:
                    raw: list = []
                    _collect(result, raw)
                    inputs = [(i, t) for i, t in enumerate(tensors) if t.requires_grad]
                    differentiable = [bool(o.requires_grad) for o in raw]
                    if any(differentiable) and inputs:
                        next_id += 1
                        graphs[next_id] = (inputs, raw)
                        while len(graphs) > 64:
                            graphs.popitem(last=False)
                        reply["call_id"] = next_id
                    reply["grad_inputs"] = [i for i, _ in inputs]
                    reply["differentiable"] = differentiable
                send(reply)
            except BaseException as exc:
                reply_exception(exc, name)
            events.clear()
        elif kind == "exit":
            return


def _trust_arguments(value: Any, own_ids: set[int]) -> Any:
    """The grader's callables among the arguments (a model, a reference function) run
    with the audit paused: their library calls are not the learner's."""
    import torch

    if isinstance(value, torch.nn.Module):

        def pause(*_):
            _state.paused = getattr(_state, "paused", 0) + 1

        def resume(*_):
            _state.paused = max(0, getattr(_state, "paused", 0) - 1)

        if not getattr(value, "_attnkit_trusted", False):
            value.register_forward_pre_hook(pause)
            value.register_forward_hook(resume)
            value._attnkit_trusted = True
        return value
    if type(value) in (list, tuple):
        return type(value)(_trust_arguments(v, own_ids) for v in value)
    if type(value) is dict:
        return {k: _trust_arguments(v, own_ids) for k, v in value.items()}
    if callable(value) and id(value) not in own_ids and not isinstance(value, (type, _Trusted)):
        return _Trusted(value)
    return value


def _collect(value: Any, out: list) -> None:
    """The tensors of a result in the order :func:`remote._flat_safe` numbers them."""
    import torch

    if isinstance(value, torch.Tensor):
        out.append(value)
    elif type(value) in (list, tuple) or (isinstance(value, tuple) and hasattr(value, "_fields")):
        for v in value:
            _collect(v, out)
    elif type(value) is dict:
        for v in value.values():
            _collect(v, out)


def generators_in(values: Any) -> list:
    """The torch.Generator objects inside ``values`` (lists/tuples/dicts), in order: the
    judge and the worker both use it to carry random state across the process boundary."""
    import torch

    found: list = []

    def walk(v: Any) -> None:
        if isinstance(v, torch.Generator):
            found.append(v)
        elif type(v) in (list, tuple):
            for x in v:
                walk(x)
        elif type(v) is dict:
            for x in v.values():
                walk(x)

    walk(values)
    return found


def main() -> None:
    """``python -m attnkit.grading.worker IN_FD OUT_FD LEARNER_FILE``."""
    in_fd, out_fd, learner_file = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    # The learner's output goes to stderr; the message channel stays out of reach of print.
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    serve(in_fd, out_fd, learner_file)


if __name__ == "__main__":
    main()

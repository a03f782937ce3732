"""The learner's definitions in a sandboxed worker process; the tests in the judge.

Instructor mode must give a score that the learner's code cannot forge. Inside one
Python process nothing can guarantee that: code that runs there (a class body, an
UPPER_CASE constant, the graded function itself) can rebind ``torch.equal``, the test
module's ``assert_close``, the plugin's classification, ``os.write``… and any check of
"identities at the end" can be patched too. So the learner's code and the tests never
share a process:

* The **judge** (pytest with the instructor's test file, conftest and plugin) never
  executes a line of the learner's code. Its ``learner`` fixture is a
  :class:`RemoteLearner`: a module whose functions are stubs.
* The **worker** (:mod:`attnkit.grading.worker`, started inside the sandbox of
  :mod:`attnkit.grading.sandbox`) loads the learner's definitions and serves calls: the
  judge sends the arguments, the worker runs the learner's function and sends back the
  result; every assertion runs in the judge on what came back.

What crosses the boundary, and how:

* judge → worker: ``cloudpickle`` (trusted data: the tests' tensors, generators,
  ``nn.Module`` objects, lambdas and closures such as a test's reference helper, which
  run *inside* the worker so that autograd flows through them).
* worker → judge: only tensors, numbers, strings, ``None`` and lists/tuples/dicts of
  them, written with ``torch.save`` and read back with ``torch.load(weights_only=True)``,
  the restricted unpickler meant for untrusted files: the worker cannot make the judge
  build any other object, let alone run code. Exceptions come back as (type name,
  message) and are raised in the judge as the built-in type of that name (so
  ``pytest.raises(ValueError)`` works) or as :class:`LearnerError`; pytest's own
  outcome exceptions are never recreated.
* In-place changes: the worker compares every tensor argument (and generator state)
  before and after the call and sends back the changed ones; the judge copies them into
  its own arguments, so the tests that an input is left untouched still see a mutation.
* Gradients: when an argument requires grad, the call goes through a
  ``torch.autograd.Function`` whose ``backward`` asks the worker for the gradient of
  the learner's own graph (kept there until released).
* A call that does not answer within the time limit, or a worker that dies
  (``os._exit``, a signal, the memory limit), fails that test with the cause
  (:class:`LearnerTimeout`, :class:`LearnerCrash`); the worker is killed and started
  again for the next test, the grader's rebinding of helpers replayed.

The worker also reports, per call, what the learner's code reached at run time (an
attnkit function, torch's ``scaled_dot_product_attention``, a file under
``solutions/``); the judge writes these to the configuration's ``audit_file`` for the
gradebook (evidence for the instructor: it comes from the learner's side).
"""

from __future__ import annotations

import builtins
import contextlib
import io
import json
import os
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
import types
import weakref
from pathlib import Path
from typing import Any

from .worker import generators_in

_HEADER = struct.Struct("<Q")
MAX_MESSAGE = 1 << 30  # a reply above 1 GiB is refused (the worker is then restarted)
_TAG = "__attnkit_remote__"


class LearnerError(Exception):
    """The learner's function raised an exception of a type the judge does not recreate."""


class LearnerTimeout(Exception):
    """The learner's function did not return in time (its name says "Timeout": the
    grading plugin classifies the test as timed out)."""


class LearnerCrash(Exception):
    """The worker running the learner's code ended during a call."""


# ------------------------------------------------------------------ framing
def write_message(fd: int, payload: bytes) -> None:
    """Write one length-prefixed message to the file descriptor ``fd``."""
    data = memoryview(_HEADER.pack(len(payload)) + payload)
    while data:
        n = os.write(fd, data)
        data = data[n:]


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes | None:
    chunks, left = [], n
    while left:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                raise TimeoutError
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_message(fd: int, deadline: float | None = None, limit: int = MAX_MESSAGE) -> bytes | None:
    """Read one message from ``fd``; ``None`` at end of file. Raises ``TimeoutError``
    past ``deadline`` (``time.monotonic()``) and ``ValueError`` above ``limit`` bytes."""
    head = _read_exact(fd, _HEADER.size, deadline)
    if head is None:
        return None
    (size,) = _HEADER.unpack(head)
    if size > limit:
        raise ValueError(f"message of {size} bytes refused (limit {limit})")
    return _read_exact(fd, size, deadline)


# ------------------------------------------------------- safe values (worker → judge)
def to_safe(value: Any, depth: int = 0) -> Any:
    """``value`` as tensors, numbers, strings, None, lists, tuples and dicts only (what
    ``torch.load(weights_only=True)`` accepts); other objects become a tagged
    description that the judge turns back into a numpy value or an error."""
    import torch

    if depth > 20:
        return {_TAG: "unsupported", "type": "deeply nested value", "repr": ""}
    if value is None or type(value) in (bool, int, float, complex, str, bytes):
        return value
    if isinstance(value, torch.Tensor):
        if type(value) is not torch.Tensor:
            value = value.as_subclass(torch.Tensor)
        return value.detach()
    if isinstance(value, torch.Generator):
        return {_TAG: "generator", "state": value.get_state()}
    if isinstance(value, (torch.dtype, torch.device)):
        return {_TAG: type(value).__name__, "repr": str(value)}
    if type(value) in (list, tuple):
        return type(value)(to_safe(v, depth + 1) for v in value)
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a namedtuple: its values
        return tuple(to_safe(v, depth + 1) for v in value)
    if type(value) is dict:
        return {to_safe(k, depth + 1): to_safe(v, depth + 1) for k, v in value.items()}
    if type(value).__module__ == "numpy":
        import numpy as np

        if isinstance(value, np.ndarray):
            return {_TAG: "ndarray", "tensor": torch.from_numpy(np.ascontiguousarray(value))}
        if isinstance(value, np.generic):
            return {_TAG: "numpy-scalar", "dtype": str(value.dtype), "value": value.item()}
    for kind in (bool, int, float, str):  # subclasses of the simple types (e.g. IntEnum)
        if isinstance(value, kind):
            return kind(value)
    return {_TAG: "unsupported", "type": type(value).__qualname__, "repr": repr(value)[:200]}


def from_safe(value: Any) -> Any:
    """Inverse of :func:`to_safe` in the judge (only numpy values are rebuilt)."""
    import torch

    if isinstance(value, list):
        return [from_safe(v) for v in value]
    if isinstance(value, tuple):
        return tuple(from_safe(v) for v in value)
    if isinstance(value, dict):
        kind = value.get(_TAG) if all(isinstance(k, str) for k in value) else None
        if kind is None:
            return {k: from_safe(v) for k, v in value.items()}
        if kind == "ndarray" and isinstance(value.get("tensor"), torch.Tensor):
            return value["tensor"].numpy()
        if kind == "numpy-scalar":
            import numpy as np

            return np.dtype(str(value["dtype"])).type(value["value"])
        if kind in ("dtype", "device"):
            text = str(value["repr"])
            if kind == "device":
                return torch.device(text)
            dtype = getattr(torch, text.removeprefix("torch."), None)
            if isinstance(dtype, torch.dtype):
                return dtype
        raise TypeError(
            f"your function returned a {value.get('type', kind)} ({value.get('repr', '')}); "
            "the grader expects tensors, numbers, strings or lists/tuples/dicts of them"
        )
    return value


def dumps_safe(message: dict) -> bytes:
    """Serialise a worker → judge message (its values already made safe)."""
    import torch

    buffer = io.BytesIO()
    torch.save(message, buffer)
    return buffer.getvalue()


def loads_safe(data: bytes) -> dict:
    """Read a worker → judge message with the restricted unpickler; anything else than
    the allowed types raises."""
    import torch

    message = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    if not isinstance(message, dict) or not isinstance(message.get("kind"), str):
        raise ValueError("malformed message from the worker")
    return message


# ------------------------------------------------------------- flat tensor slots
class Slot:
    """A placeholder for the ``index``-th tensor of a flattened argument list."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __reduce__(self):
        return (Slot, (self.index,))


def flatten(value: Any, out: list) -> Any:
    """Replace the tensors inside lists/tuples/dicts of ``value`` by :class:`Slot` s
    (appending the tensors to ``out``)."""
    import torch

    if isinstance(value, torch.Tensor):
        out.append(value)
        return Slot(len(out) - 1)
    if type(value) in (list, tuple):
        return type(value)(flatten(v, out) for v in value)
    if type(value) is dict:
        return {k: flatten(v, out) for k, v in value.items()}
    return value


def unflatten(value: Any, tensors: list) -> Any:
    """Inverse of :func:`flatten`."""
    if isinstance(value, Slot):
        return tensors[value.index]
    if type(value) in (list, tuple):
        return type(value)(unflatten(v, tensors) for v in value)
    if type(value) is dict:
        return {k: unflatten(v, tensors) for k, v in value.items()}
    return value


def _flat_safe(value: Any, out: list) -> Any:
    """Like :func:`flatten` on a value already made safe, with slots as tagged dicts."""
    import torch

    if isinstance(value, torch.Tensor):
        out.append(value)
        return {_TAG: "slot", "index": len(out) - 1}
    if type(value) in (list, tuple):
        return type(value)(_flat_safe(v, out) for v in value)
    if type(value) is dict:
        return {k: _flat_safe(v, out) for k, v in value.items()}
    return value


def _unflat_safe(value: Any, tensors: list) -> Any:
    if isinstance(value, dict) and value.get(_TAG) == "slot":
        index = value.get("index")
        if not isinstance(index, int) or not 0 <= index < len(tensors):
            raise ValueError("malformed tensor slot from the worker")
        return tensors[index]
    if isinstance(value, list):
        return [_unflat_safe(v, tensors) for v in value]
    if isinstance(value, tuple):
        return tuple(_unflat_safe(v, tensors) for v in value)
    if isinstance(value, dict):
        return {k: _unflat_safe(v, tensors) for k, v in value.items()}
    return value


# --------------------------------------------------------------------- the judge
class OwnFunction:
    """Pickled in place of one of the learner's own functions (the worker substitutes
    its object), e.g. when a test passes one learner function to another."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __reduce__(self):
        return (OwnFunction, (self.name,))


def _exception(kind: str, message: str) -> BaseException:
    """The judge-side exception for a learner exception of type name ``kind``."""
    if kind == "LearnerFileError":
        from .loader import LearnerFileError

        return LearnerFileError(message)
    cls = getattr(builtins, kind, None)
    if isinstance(cls, type) and issubclass(cls, Exception) and not issubclass(cls, Warning):
        try:
            return cls(message)
        except Exception:  # an exception type that needs other arguments
            pass
    return LearnerError(f"{kind}: {message}" if message else kind)


class Connection:
    """The judge's end of one submission's worker: starts it in the sandbox, sends
    calls, restarts it after a crash or a timeout."""

    def __init__(self, config: dict) -> None:
        from .sandbox import Sandbox

        self.config = config
        self.sandbox = Sandbox.from_json(config["sandbox"])
        self.learner_file = Path(config["learner_file"])
        self.call_timeout = float(config["call_timeout"])
        self.tmp = Path(config["tmp"])
        self.proc: subprocess.Popen | None = None
        self.to_worker = self.from_worker = -1
        self.names: dict[str, str] = {}
        self.overrides: dict[str, Any] = {}
        self.audit: dict[str, set[str]] = {}
        self.stderr_path = self.tmp / "worker-stderr.txt"
        self.starts = 0

    # -- process
    def start(self) -> None:
        """Start the worker and load the learner's definitions (raises
        ``LearnerFileError`` when they do not load)."""
        self.stop()
        self.starts += 1
        parent_in, child_out = os.pipe()
        child_in, parent_out = os.pipe()
        workdir = self.tmp / "work"
        workdir.mkdir(exist_ok=True)
        learner = self.sandbox.inside(self.tmp, self.learner_file)
        cmd = [
            *self.sandbox.wrapper(self.tmp),
            sys.executable, "-I", "-B", "-m", "attnkit.grading.worker",
            str(child_in), str(child_out), str(learner),
        ]  # fmt: skip
        env = {
            "PATH": "/usr/bin:/bin",
            "PYTHONDONTWRITEBYTECODE": "1",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "HOME": "/tmp" if self.sandbox.mode == "bwrap" else str(workdir),
            "TMPDIR": "/tmp" if self.sandbox.mode == "bwrap" else str(workdir),
            "ATTNKIT_GRADE_LANG": os.environ.get("ATTNKIT_GRADE_LANG", "en"),
            "LANG": "C.UTF-8",
        }
        with self.stderr_path.open("ab") as err:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                pass_fds=(child_in, child_out),
                cwd=workdir if self.sandbox.mode != "bwrap" else None,
                env=env,
                preexec_fn=self.sandbox.preexec(),
                start_new_session=True,
            )
        os.close(child_in)
        os.close(child_out)
        self.from_worker, self.to_worker = parent_in, parent_out
        reply = self._receive(time.monotonic() + max(60.0, 4 * self.call_timeout), "loading")
        if reply["kind"] == "load_error":
            from .loader import LearnerFileError

            raise LearnerFileError(str(reply.get("message", "")))
        if reply["kind"] != "ready" or not isinstance(reply.get("names"), dict):
            raise LearnerCrash(f"the worker did not start: {reply.get('kind')}")
        # names come from the worker: only plain public identifiers become attributes
        self.names = {
            str(k): str(v)
            for k, v in reply["names"].items()
            if str(k).isidentifier() and not str(k).startswith("__") and str(k) != "_conn"
        }
        for name, value in self.overrides.items():
            self._bind(name, value)

    def stop(self) -> None:
        """Kill the worker (its whole process group / sandbox) and close the pipes."""
        for fd in (self.to_worker, self.from_worker):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.to_worker = self.from_worker = -1
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def _cause(self) -> str:
        """Why the worker ended, from its exit status and the end of its stderr."""
        if self.proc is None:
            return "the worker is not running"
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "the worker stopped answering"
        if code < 0 or code > 128:
            sig = -code if code < 0 else code - 128
            name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else sig
            what = {
                "SIGXCPU": "the CPU-time limit",
                "SIGKILL": "SIGKILL (the memory limit or the OOM killer?)",
                "SIGXFSZ": "the file-size limit",
            }.get(str(name), str(name))
            cause = f"killed by {what}"
        else:
            cause = f"exit status {code} (os._exit or sys.exit outside a call?)"
        tail = ""
        if self.stderr_path.exists():
            lines = self.stderr_path.read_text(errors="replace").strip().splitlines()
            tail = f"; its last output: {lines[-1][:300]}" if lines else ""
        return cause + tail

    # -- messages
    def _send(self, message: dict) -> None:
        buffer = io.BytesIO()
        pickler = _JudgePickler(buffer, protocol=5)
        pickler.dump(message)
        # a worker that died is reported by the reply (end of file), with its cause
        with contextlib.suppress(OSError):
            write_message(self.to_worker, buffer.getvalue())

    def _receive(self, deadline: float, what: str) -> dict:
        self._waited = deadline - time.monotonic()
        try:
            data = read_message(self.from_worker, deadline)
        except TimeoutError:
            self.stop()
            raise LearnerTimeout(
                f"timed out: {what} did not finish within {self._waited:.0f} s (stopped)"
            ) from None
        except ValueError as exc:
            self.stop()
            raise LearnerCrash(f"{what}: {exc}") from None
        if data is None:
            cause = self._cause()
            self.stop()
            raise LearnerCrash(f"the process running your code ended during {what}: {cause}")
        try:
            message = loads_safe(data)
        except Exception as exc:
            self.stop()
            raise LearnerCrash(f"{what}: unreadable reply from the worker ({exc})") from None
        for name, events in (message.get("audit") or {}).items():
            if isinstance(events, (list, tuple)):
                self.audit.setdefault(str(name), set()).update(str(e) for e in events)
        return message

    def request(self, message: dict, what: str, timeout: float | None = None) -> dict:
        """Send ``message``, wait for the reply (starting the worker if needed) for
        ``timeout`` seconds (default: the call time limit)."""
        if self.proc is None:
            self.start()
        self._send(message)
        return self._receive(time.monotonic() + (timeout or self.call_timeout), what)

    # -- module operations
    def _bind(self, name: str, value: Any) -> None:
        self._send({"kind": "bind", "name": name, "value": value})
        reply = self._receive(time.monotonic() + self.call_timeout, f"binding `{name}`")
        if reply["kind"] != "ok":
            raise LearnerCrash(f"binding `{name}` failed: {reply.get('message')}")

    def bind(self, name: str, value: Any) -> None:
        """Rebind ``name`` in the learner's module (the tests' reference helpers)."""
        if _own_name(value) == name:
            self.overrides.pop(name, None)
            value = OwnFunction(name)
        else:
            self.overrides[name] = value
        if self.proc is None:
            self.start()
        else:
            self._bind(name, value)

    def unbind(self, name: str) -> None:
        """Remove a name the tests had bound (``monkeypatch`` undoing ``raising=False``)."""
        self.overrides.pop(name, None)
        if self.proc is not None:
            self._send({"kind": "unbind", "name": name})
            self._receive(time.monotonic() + self.call_timeout, f"unbinding `{name}`")

    def call(self, name: str, args: tuple, kwargs: dict) -> Any:
        """Call the learner's ``name`` on the arguments; return what it returned."""
        import torch

        tensors: list = []
        structure = flatten((args, kwargs), tensors)
        needs_grad = torch.is_grad_enabled() and any(
            t.requires_grad for t in tensors if isinstance(t, torch.Tensor)
        )
        if needs_grad:
            return _call_with_grad(self, name, structure, tensors)
        result, _ = self._call(name, structure, tensors, keep_graph=False)
        return result

    def _call(self, name: str, structure: Any, tensors: list, keep_graph: bool):
        import torch

        sent = [t.detach() for t in tensors]
        flags = [bool(t.requires_grad) for t in tensors]
        generators = generators_in((structure,))
        message = {
            "kind": "call", "name": name, "structure": structure, "tensors": sent,
            "requires_grad": flags, "keep_graph": keep_graph,
        }  # fmt: skip
        reply = self.request(message, f"`{name}`")
        if reply["kind"] == "raise":
            raise _exception(str(reply.get("type")), str(reply.get("message", "")))
        if reply["kind"] != "ok":
            raise LearnerCrash(f"`{name}`: unexpected reply {reply['kind']!r}")
        out_tensors = reply.get("tensors") or []
        if not all(isinstance(t, torch.Tensor) for t in out_tensors):
            raise LearnerCrash(f"`{name}`: malformed reply")
        result = from_safe(_unflat_safe(reply.get("result"), out_tensors))
        with torch.no_grad():
            for index, new in (reply.get("mutated") or {}).items():
                if isinstance(index, int) and 0 <= index < len(tensors):
                    target = tensors[index]
                    if isinstance(new, torch.Tensor) and new.shape == target.shape:
                        target.copy_(new)
                    else:
                        target.data = new.to(target.dtype)
        for index, state in (reply.get("generators") or {}).items():
            if isinstance(index, int) and 0 <= index < len(generators):
                generators[index].set_state(state)
        return result, reply

    def close(self) -> None:
        """Stop the worker and write the audit (``$ATTNKIT_SANDBOX_AUDIT``)."""
        self.stop()
        path = self.config.get("audit_file")
        if path:
            data = {
                "audit": {k: sorted(v) for k, v in self.audit.items()},
                "worker_starts": self.starts,
                "sandbox": self.sandbox.mode,
            }
            Path(path).write_text(json.dumps(data), encoding="utf-8")


def _call_with_grad(conn: Connection, name: str, structure: Any, tensors: list) -> Any:
    import torch

    holder: dict[str, Any] = {}

    class RemoteCall(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *inputs):
            result, reply = conn._call(name, structure, list(inputs), keep_graph=True)
            outs: list = []
            holder["structure"] = flatten(result, outs)
            ctx.call_id = reply.get("call_id")
            ctx.starts = conn.starts
            ctx.n_inputs = len(inputs)
            ctx.grad_inputs = list(reply.get("grad_inputs") or [])
            non_diff = [
                o for o, d in zip(outs, reply.get("differentiable") or [], strict=False) if not d
            ]
            ctx.mark_non_differentiable(*non_diff)
            holder["n_outs"] = len(outs)
            if ctx.call_id is not None:
                weakref.finalize(ctx, _release, conn, ctx.call_id, conn.starts)
            return tuple(outs)

        @staticmethod
        def backward(ctx, *grads):
            if ctx.call_id is None or ctx.starts != conn.starts:
                raise LearnerCrash(f"`{name}`: its graph is gone (the worker was restarted)")
            message = {"kind": "backward", "call_id": ctx.call_id, "grads": list(grads)}
            # a first backward pass imports part of torch (sympy) in the worker: more time
            slack = max(30.0, conn.call_timeout)
            reply = conn.request(message, f"the backward pass of `{name}`", slack)
            if reply["kind"] == "raise":
                raise _exception(str(reply.get("type")), str(reply.get("message", "")))
            got = reply.get("grads") or []
            out: list = [None] * ctx.n_inputs
            for index, g in zip(ctx.grad_inputs, got, strict=False):
                if isinstance(index, int) and 0 <= index < ctx.n_inputs:
                    out[index] = g if isinstance(g, torch.Tensor) else None
            return tuple(out)

    outs = RemoteCall.apply(*tensors)
    return unflatten(holder["structure"], list(outs))


def _release(conn: Connection, call_id: int, starts: int) -> None:
    if conn.proc is not None and conn.starts == starts:
        with contextlib.suppress(Exception):
            conn._send({"kind": "release", "call_id": call_id})


class _JudgePickler:
    """cloudpickle, with the learner's own functions sent as :class:`OwnFunction` and
    the test modules pickled by value (the worker cannot import them)."""

    def __new__(cls, file, protocol):
        import cloudpickle

        class Pickler(cloudpickle.Pickler):
            def reducer_override(self, obj):
                own = _own_name(obj)
                if own is not None:
                    return (OwnFunction, (own,))
                module = getattr(obj, "__module__", None)
                if isinstance(module, str) and _by_value(module):
                    mod = sys.modules.get(module)
                    if mod is not None:
                        cloudpickle.register_pickle_by_value(mod)
                return super().reducer_override(obj)

        return Pickler(file, protocol=protocol)


def _by_value(module: str) -> bool:
    """Whether objects of ``module`` must be pickled by value: anything that is not an
    installed package the worker imports the same way (tests, conftest)."""
    top = module.split(".")[0]
    return top.startswith(("test_", "conftest")) or top in ("__main__",)


def remote_function(conn: Connection, name: str) -> Any:
    """A plain function standing for the learner's ``name``: calling it runs the
    learner's function in the worker. (A real function, so that the misconception
    recorder of :mod:`attnkit.grading.misconceptions` records its calls as it does a
    learner's own.)"""

    def call(*args: Any, **kwargs: Any) -> Any:
        return conn.call(name, args, kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"the learner's `{name}`, run in the sandbox"
    call._attnkit_remote = name
    return call


def _own_name(value: Any) -> str | None:
    """The learner name a :func:`remote_function` stands for (else ``None``)."""
    name = getattr(value, "_attnkit_remote", None)
    return name if isinstance(name, str) else None


class RemoteLearner(types.ModuleType):
    """The learner's module as the tests see it: one :func:`remote_function` per
    function the learner defines; other values are fetched on access; setting an
    attribute (a test's reference helper) rebinds the name in the worker too."""

    def __init__(self, name: str, conn: Connection) -> None:
        super().__init__(name)
        object.__setattr__(self, "_conn", conn)
        object.__setattr__(self, "__file__", str(conn.learner_file))
        for own, kind in conn.names.items():
            if kind == "function":
                object.__setattr__(self, own, remote_function(conn, own))

    def __getattr__(self, name: str) -> Any:  # only for names not in the module's dict
        conn = object.__getattribute__(self, "_conn")
        if conn.names.get(name) != "value" or name.startswith("__"):
            raise AttributeError(name)
        reply = conn.request({"kind": "get", "name": name}, f"reading `{name}`")
        if reply["kind"] == "raise":
            raise _exception(str(reply.get("type")), str(reply.get("message", "")))
        return from_safe(reply.get("value"))

    def __setattr__(self, name: str, value: Any) -> None:
        conn = object.__getattribute__(self, "_conn")
        object.__setattr__(self, name, value)
        conn.bind(name, value)

    def __delattr__(self, name: str) -> None:
        conn = object.__getattribute__(self, "_conn")
        object.__delattr__(self, name)
        conn.unbind(name)
        if conn.names.get(name) == "function":
            object.__setattr__(self, name, remote_function(conn, name))


# --------------------------------------------------------------- the judge's entry
CONFIG_ENV = "ATTNKIT_SANDBOX_CONFIG"
_connections: list[Connection] = []


def sandboxed() -> bool:
    """Whether this process is the judge of instructor mode."""
    return bool(os.environ.get(CONFIG_ENV))


def load_remote(module_name: str) -> RemoteLearner:
    """The learner module of instructor mode (configured by ``$ATTNKIT_SANDBOX_CONFIG``,
    a JSON file written by :mod:`attnkit.grading.classroom`)."""
    config = json.loads(Path(os.environ[CONFIG_ENV]).read_text(encoding="utf-8"))
    conn = Connection(config)
    if not _connections:
        import atexit

        atexit.register(close_all)
    _connections.append(conn)
    conn.start()
    return RemoteLearner(module_name, conn)


def close_all() -> None:
    """Stop every worker and write the audit files (at the judge's exit)."""
    while _connections:
        _connections.pop().close()


def new_tmp(prefix: str = "attnkit-sandbox-") -> Path:
    """A fresh private folder (mode 0700) for one submission's worker."""
    return Path(tempfile.mkdtemp(prefix=prefix))

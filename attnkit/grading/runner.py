"""Run one command for the grader: bounded, in its own process group, honest about its end.

:func:`run` starts a command in a new session (its own process group), with optional
resource limits (memory, CPU seconds, processes, file size) and an optional ``wrapper``
prefix (a sandbox such as bubblewrap). It kills the *whole* group when the command ends or
is stopped, and any process that left the group but still carries this run's token in its
environment (a Jupyter kernel starts its own session, for example). It returns the output
and the real cause of the end: an exit status, a signal, the out-of-memory killer, a time
limit, or the caller's own ``poll`` asking to stop (a test that hangs inside one C call).

Limits are set by a small launcher (``python -S -c``) that calls ``setrlimit`` and then
``exec``s the rest of the command line, so that they hold before the command's first
instruction and are inherited by its children (and by the sandbox, which comes after the
launcher on the command line). They need POSIX; elsewhere they are ignored and
:attr:`Outcome.limits_applied` is ``False``.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .messages import t

__all__ = ["Limits", "Outcome", "run"]

TOKEN_VARIABLE = "ATTNKIT_GRADE_RUN"

# Sets each limit given on the command line ("-" = leave as is), then execs the command.
# The soft CPU limit sends SIGXCPU (reported as such); the hard one, a second later, kills.
_LAUNCHER = """\
import os, resource, sys
names = ("RLIMIT_DATA", "RLIMIT_CPU", "RLIMIT_NPROC", "RLIMIT_FSIZE")
for name, value in zip(names, sys.argv[1:5]):
    if value == "-":
        continue
    which, value = getattr(resource, name), int(value)
    hard = resource.getrlimit(which)[1]
    top = value + 1 if name == "RLIMIT_CPU" else value
    if hard != resource.RLIM_INFINITY:
        value, top = min(value, hard), min(top, hard)
    resource.setrlimit(which, (value, top))
os.execvp(sys.argv[5], sys.argv[5:])
"""


@dataclass(frozen=True)
class Limits:
    """Resource limits of each process the command starts (``None``: no limit).

    ``memory_bytes`` is ``RLIMIT_DATA``: the private writable memory of each process (heap
    and anonymous mappings; Linux >= 4.7); an allocation beyond it fails with
    ``MemoryError`` or torch's "can't allocate memory". (``RLIMIT_AS`` would also count
    address space reserved but never used: torch with 4 threads reserves 0.9 GB, and
    each further thread 64 MB more for its malloc arena, so the limit would depend on
    the number of cores.) ``cpu_seconds`` is ``RLIMIT_CPU``;
    ``processes`` is ``RLIMIT_NPROC`` (counted per user by the kernel, and not enforced for
    root); ``file_bytes`` is ``RLIMIT_FSIZE`` (largest file a process may write).
    """

    memory_bytes: int | None = None
    cpu_seconds: int | None = None
    processes: int | None = None
    file_bytes: int | None = None

    def __post_init__(self) -> None:
        for name in ("memory_bytes", "cpu_seconds", "processes", "file_bytes"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise ValueError(f"Limits.{name} must be a positive int or None, got {value!r}.")

    def argv(self) -> list[str]:
        """The launcher's four arguments."""
        values = (self.memory_bytes, self.cpu_seconds, self.processes, self.file_bytes)
        return ["-" if v is None else str(v) for v in values]


@dataclass(frozen=True)
class Outcome:
    """How a command ended.

    ``cause`` is one of ``"exited"`` (``returncode`` holds the status, 0 = success),
    ``"signal"`` (killed by ``signal``, not by the grader), ``"oom"`` (killed by the
    system's out-of-memory killer: SIGKILL while the cgroup's ``oom_kill`` count rose),
    ``"timeout"`` (the grader stopped it after ``limit`` seconds) or ``"stopped"`` (the
    ``poll`` function asked to stop; ``reason`` is what it returned).
    """

    output: str
    cause: str
    returncode: int | None
    signal: int | None
    elapsed: float
    limit: float
    reason: str = ""
    limits: Limits | None = None
    limits_applied: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.cause == "exited" and self.returncode == 0

    @property
    def signal_name(self) -> str:
        if self.signal is None:
            return ""
        with contextlib.suppress(ValueError):
            return signal.Signals(self.signal).name
        return f"signal {self.signal}"

    def describe(self) -> str:
        """One sentence, in the grader's language, saying how the command ended."""
        if self.cause == "exited":
            return t("run.exited", code=self.returncode)
        if self.cause == "timeout":
            return t("run.timeout", seconds=self.limit)
        if self.cause == "stopped":
            return t("run.stopped", reason=self.reason)
        if self.cause == "oom":
            return t("run.oom")
        name = self.signal_name
        if self.signal == getattr(signal, "SIGXCPU", None) and self.limits_applied:
            return t("run.cpu", seconds=self.limits.cpu_seconds)
        if self.signal == getattr(signal, "SIGXFSZ", None) and self.limits_applied:
            return t("run.fsize", mb=self.limits.file_bytes / 2**20)
        if self.signal == getattr(signal, "SIGKILL", None):
            return t("run.sigkill")
        memory = self.limits.memory_bytes if self.limits_applied and self.limits else None
        if memory and self.signal in (signal.SIGABRT, signal.SIGSEGV, signal.SIGBUS):
            return t("run.signal_memory", name=name, gb=memory / 2**30)
        return t("run.signal", name=name)


def _cgroup_oom_kills() -> int | None:
    """The number of processes the OOM killer has killed in this process's memory cgroup
    (cgroup v2 ``memory.events`` or v1 ``memory.oom_control``), or ``None`` if unknown."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    candidates = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            candidates += [Path("/sys/fs/cgroup", path.lstrip("/"), "memory.events")]
            candidates += [Path("/sys/fs/cgroup/memory.events")]
        elif "memory" in controllers.split(","):
            base = Path("/sys/fs/cgroup/memory")
            candidates += [base / path.lstrip("/") / "memory.oom_control"]
            candidates += [base / "memory.oom_control"]
    for candidate in candidates:
        with contextlib.suppress(OSError, ValueError):
            for line in candidate.read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    return None


def _processes_with_token(token: str) -> list[int]:
    """PIDs of the processes (this user's, on Linux) whose environment holds the token."""
    needle = f"{TOKEN_VARIABLE}={token}".encode()
    found = []
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                if needle in Path(entry.path, "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
    return found


def _kill_everything(proc: subprocess.Popen, token: str) -> None:
    """SIGKILL the command's process group, then every process still carrying the token
    (started in another session, such as a Jupyter kernel and its children)."""
    if os.name != "posix":
        with contextlib.suppress(OSError):
            proc.kill()
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    for _ in range(5):  # a process may fork while the others die: look again
        pids = _processes_with_token(token)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def run(
    cmd: Sequence[str],
    *,
    timeout: float,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    limits: Limits | None = None,
    wrapper: Sequence[str] | None = None,
    poll: Callable[[], str | None] | None = None,
    poll_interval: float = 0.1,
) -> Outcome:
    """Run ``cmd`` (stdout and stderr together, no stdin) for at most ``timeout`` seconds.

    Args:
        cmd: the command line.
        timeout: wall-clock limit in seconds (finite, positive).
        cwd, env: working directory and environment (default: this process's).
        limits: resource limits of every process of the command (POSIX only).
        wrapper: a prefix such as a sandbox's command line (``["bwrap", ..., "--"]``); it
            comes after the limits' launcher, so the sandbox itself runs under the limits.
        poll: called every ``poll_interval`` seconds while the command runs; a non-empty
            string stops the command, and becomes :attr:`Outcome.reason`.

    Returns:
        An :class:`Outcome`. The command's whole process group is killed in every case,
        and so is every process that still has this run's token in its environment.
    """
    if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"timeout must be a finite number of seconds > 0, got {timeout!r}.")
    if isinstance(cmd, str) or not cmd:
        raise ValueError("cmd must be a non-empty sequence of arguments, not a string.")
    token = uuid.uuid4().hex
    child_env = dict(os.environ if env is None else env)
    child_env[TOKEN_VARIABLE] = token
    posix = os.name == "posix"
    prefix = [sys.executable, "-S", "-c", _LAUNCHER, *limits.argv()] if limits and posix else []
    full = [*prefix, *(wrapper or ()), *cmd]
    kwargs = {"start_new_session": True} if posix else {}
    if not posix:
        kwargs["creationflags"] = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)

    oom_before = _cgroup_oom_kills()
    start = time.monotonic()
    cause, reason = "", ""
    with tempfile.TemporaryFile("w+b") as log:
        proc = subprocess.Popen(
            full, cwd=cwd, env=child_env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, **kwargs,
        )  # fmt: skip
        try:
            while proc.poll() is None:
                if time.monotonic() - start > timeout:
                    cause = "timeout"
                    break
                reason = (poll() or "") if poll is not None else ""
                if reason:
                    cause = "stopped"
                    break
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=poll_interval)
        finally:
            _kill_everything(proc, token)
            proc.wait()
        elapsed = time.monotonic() - start
        log.seek(0)
        output = log.read().decode("utf-8", errors="replace")

    code = proc.returncode
    sig = -code if code < 0 else None
    if not cause:
        cause = "exited" if sig is None else "signal"
        if sig == getattr(signal, "SIGKILL", None):
            after = _cgroup_oom_kills()
            if oom_before is not None and after is not None and after > oom_before:
                cause = "oom"
    return Outcome(
        output=output,
        cause=cause,
        returncode=code if code >= 0 else None,
        signal=sig if cause in ("signal", "oom") else None,
        elapsed=elapsed,
        limit=float(timeout),
        reason=reason,
        limits=limits,
        limits_applied=bool(prefix),
    )

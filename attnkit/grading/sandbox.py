"""The sandbox of instructor mode: where a learner's code runs, and with which limits.

Two layers, the second always present:

1. **bubblewrap** (``bwrap``, Debian's ``bubblewrap``): new user, PID, network, IPC and
   UTS namespaces (so no network at all, and every process the learner starts dies with
   the sandbox), the system (``/usr``, ``/etc``), the Python installation and the
   repository bound **read-only**, the repository's ``solutions/`` and ``.git`` hidden,
   and one private folder bound at ``/tmp``: the only writable place, and the working
   directory.
2. **rlimits**, set in the child before it executes: address space (memory), CPU
   seconds, number of processes, size of a written file, open files; core dumps off.

Unprivileged user namespaces are not available everywhere (some containers and
distributions switch them off). :func:`probe_bwrap` runs ``bwrap`` once on ``true`` and
reports what it saw; when it fails the grader falls back to rlimits alone and prints a
warning (:attr:`Sandbox.warning`), and the class driver then also fingerprints the
instructor's copy before and after each submission (a write is caught, not prevented).
``ATTNKIT_BWRAP=none`` forces the fallback (the tests use it to check both paths);
``ATTNKIT_BWRAP=/path/to/bwrap`` picks another binary.
"""

from __future__ import annotations

import ctypes
import functools
import os
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Limits:
    """Resource limits of one learner process (``None``: leave the inherited limit).

    The same meanings as :class:`attnkit.grading.runner.Limits`: ``memory_bytes`` is
    ``RLIMIT_DATA`` (private writable memory; an allocation beyond it fails with
    ``MemoryError`` or torch's "can't allocate memory"; ``RLIMIT_AS`` would also count the
    address space torch reserves per thread), ``cpu_seconds`` the CPU time of the whole
    worker (every call of one submission until it is restarted), ``processes``
    ``RLIMIT_NPROC`` (counted per user by the kernel and **not enforced for root**, also
    not inside a user namespace whose user maps to root: there the PID namespace of
    bubblewrap, which dies with the sandbox, is what bounds them), ``file_bytes`` the
    largest file written, ``open_files`` the descriptors. Core dumps are always off.
    """

    memory_bytes: int | None = 4 << 30
    cpu_seconds: int | None = 120
    processes: int | None = 256
    file_bytes: int | None = 64 << 20
    open_files: int | None = 256

    def rlimits(self) -> dict[int, int]:
        """The ``resource.RLIMIT_*`` values to set (soft = hard)."""
        table = {
            resource.RLIMIT_DATA: self.memory_bytes,
            resource.RLIMIT_CPU: self.cpu_seconds,
            resource.RLIMIT_NPROC: self.processes,
            resource.RLIMIT_FSIZE: self.file_bytes,
            resource.RLIMIT_NOFILE: self.open_files,
            resource.RLIMIT_CORE: 0,
        }
        return {k: v for k, v in table.items() if v is not None}


def apply_limits(limits: Limits) -> None:
    """Set ``limits`` on the current process (called in the child, before ``exec``).

    Also asks the kernel to kill this process when its parent dies, so that a worker
    never outlives the grader.
    """
    for which, value in limits.rlimits().items():
        _soft, hard = resource.getrlimit(which)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(which, (value, value))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def bwrap_binary() -> str | None:
    """The ``bwrap`` to use: ``$ATTNKIT_BWRAP`` (``none`` for no sandbox), else PATH."""
    chosen = os.environ.get("ATTNKIT_BWRAP", "")
    if chosen.lower() in ("none", "off", "0"):
        return None
    if chosen:
        return chosen if os.access(chosen, os.X_OK) else None
    return shutil.which("bwrap")


def _python_paths() -> list[Path]:
    """Folders a Python worker needs to read: the interpreter's installation, the
    virtual environment and every ``sys.path`` folder outside both (site-packages)."""
    roots = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve()}
    exe = Path(sys.executable).resolve()
    roots.add(exe.parent.parent)
    for entry in sys.path:
        if entry and Path(entry).is_dir():
            p = Path(entry).resolve()
            if not any(p == r or r in p.parents for r in roots):
                roots.add(p)
    return sorted(roots)


def _system_paths() -> list[str]:
    """``/usr`` and ``/etc`` bound, ``/bin``, ``/lib``… as the same links or binds."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    if Path("/etc").is_dir():
        args += ["--ro-bind", "/etc", "/etc"]
    return args


def bwrap_command(
    bwrap: str, read_only: Sequence[Path], writable_tmp: Path, hidden: Sequence[Path] = ()
) -> list[str]:
    """The bubblewrap prefix: every namespace unshared (network included), ``read_only``
    folders bound read-only at their own path, ``hidden`` folders replaced by an empty
    read-only tmpfs (files by ``/dev/null``), ``writable_tmp`` bound at ``/tmp`` as the
    working directory. The process runs as ``nobody`` with no capabilities and dies
    with its parent.
    """
    args = [
        bwrap, "--unshare-all", "--unshare-user", "--uid", "65534", "--gid", "65534",
        "--die-with-parent", "--new-session", "--cap-drop", "ALL",
        *_system_paths(), "--proc", "/proc", "--dev", "/dev",
    ]  # fmt: skip
    # /tmp first: a repository or virtual environment that lives under /tmp is bound on
    # top of it below (the other order would hide it behind the private /tmp)
    args += ["--bind", str(writable_tmp), "/tmp"]
    bound: list[Path] = []
    for folder in sorted({Path(p).resolve() for p in read_only}):
        if any(b == folder or b in folder.parents for b in bound):
            continue  # already visible through an enclosing bind
        if str(folder).startswith(("/usr/", "/etc/")) or str(folder) in ("/usr", "/etc"):
            continue
        args += ["--ro-bind", str(folder), str(folder)]
        bound.append(folder)
    for path in hidden:
        path = Path(path)
        if not any(b == path or b in path.parents for b in bound):
            continue  # not visible anyway
        if path.is_dir():
            args += ["--tmpfs", str(path), "--remount-ro", str(path)]
        elif path.exists():
            args += ["--ro-bind", "/dev/null", str(path)]
    args += ["--chdir", "/tmp"]
    args += ["--setenv", "HOME", "/tmp", "--setenv", "TMPDIR", "/tmp"]
    return args


@functools.cache
def probe_bwrap(bwrap: str) -> tuple[bool, str]:
    """Whether ``bwrap`` can build our sandbox here: runs it once on ``true``.

    Returns ``(works, what was seen)``; the text is bwrap's own error when it fails
    (e.g. "No permissions to create new namespace" where user namespaces are off).
    """
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        cmd = [*bwrap_command(bwrap, _python_paths(), Path(tmp)), "true"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return False, f"{type(exc).__name__}: {exc}"
    if done.returncode == 0:
        version = subprocess.run([bwrap, "--version"], capture_output=True, text=True)
        return True, version.stdout.strip() or "bwrap works"
    return False, (done.stderr.strip() or f"bwrap exited with {done.returncode}")


@dataclass
class Sandbox:
    """How the learner's code of one submission is started.

    ``mode`` is ``"bwrap"`` (namespaces + rlimits) or ``"rlimits"`` (the fallback);
    ``warning`` says why the fallback is used (empty with bwrap).
    """

    limits: Limits = field(default_factory=Limits)
    read_only: tuple[Path, ...] = ()
    hidden: tuple[Path, ...] = ()
    mode: str = "rlimits"
    bwrap: str | None = None
    warning: str = ""

    @classmethod
    def detect(
        cls,
        repositories: Sequence[Path],
        limits: Limits | None = None,
        hide: Sequence[Path] = (),
    ) -> Sandbox:
        """The sandbox for learner code next to the instructor's ``repositories``
        (bound read-only, their ``solutions/`` and ``.git`` hidden, and ``hide``: e.g.
        the submissions folder and the gradebook, should they lie inside the
        repository): bwrap when it works here, else rlimits alone with a warning."""
        repos = tuple(Path(r).resolve() for r in repositories)
        hidden = tuple(r / name for r in repos for name in ("solutions", ".git"))
        hidden += tuple(Path(p).resolve() for p in hide)
        box = cls(limits or Limits(), (*repos, *_python_paths()), hidden)
        binary = bwrap_binary()
        if binary is None:
            why = (
                "ATTNKIT_BWRAP=none"
                if os.environ.get("ATTNKIT_BWRAP")
                else "bwrap is not installed (bash tools/install_sandbox.sh)"
            )
            box.warning = f"no sandbox ({why}): learner code runs with rlimits alone"
            return box
        works, seen = probe_bwrap(binary)
        if not works:
            box.warning = f"bwrap does not work here ({seen}): learner code runs with rlimits alone"
            return box
        box.mode, box.bwrap = "bwrap", binary
        return box

    def wrapper(self, tmp: Path) -> list[str]:
        """The command prefix (empty without bwrap) for a process whose private
        writable folder is ``tmp`` (seen as ``/tmp`` inside bwrap)."""
        if self.mode != "bwrap" or self.bwrap is None:
            return []
        return bwrap_command(self.bwrap, self.read_only, tmp, self.hidden)

    def inside(self, tmp: Path, path: Path) -> Path:
        """Where ``path`` (a file under ``tmp``) is seen by the sandboxed process."""
        if self.mode == "bwrap":
            return Path("/tmp") / Path(path).relative_to(tmp)
        return Path(path)

    def preexec(self) -> Callable[[], None]:
        """The function to run in the child before ``exec`` (rlimits, death signal)."""
        limits = self.limits
        return lambda: apply_limits(limits)

    def to_json(self) -> dict:
        """A JSON-able description (the judge process rebuilds it with :meth:`from_json`)."""
        data = asdict(self)
        data["limits"] = asdict(self.limits)
        data["read_only"] = [str(p) for p in self.read_only]
        data["hidden"] = [str(p) for p in self.hidden]
        return data

    @classmethod
    def from_json(cls, data: dict) -> Sandbox:
        """Inverse of :meth:`to_json`."""
        return cls(
            limits=Limits(**data["limits"]),
            read_only=tuple(Path(p) for p in data["read_only"]),
            hidden=tuple(Path(p) for p in data["hidden"]),
            mode=data["mode"],
            bwrap=data["bwrap"],
            warning=data["warning"],
        )

"""attnkit.grading.runner: limits, process groups and the real cause of an abnormal end.

Each command here is a few lines of Python without torch (fast); the grader's own use of
the runner is tested end to end in test_grader_robust.py.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid
from pathlib import Path

import pytest

from attnkit.grading import runner
from attnkit.grading.runner import Limits, run

posix_only = pytest.mark.skipif(os.name != "posix", reason="process groups and rlimits")
linux_only = pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds processes in /proc")


def py(code: str) -> list[str]:
    return [sys.executable, "-S", "-c", code]


def alive(marker: str) -> list[int]:
    """PIDs of processes whose command line contains ``marker``."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline and int(entry.name) != os.getpid():
                found.append(int(entry.name))
    return found


def test_normal_exit_and_output():
    out = run(py("print('hello'); import sys; sys.exit(3)"), timeout=30)
    assert out.cause == "exited" and out.returncode == 3 and not out.ok
    assert "hello" in out.output
    assert "status 3" in out.describe()
    assert run(py("pass"), timeout=30).ok


def test_os_exit_is_an_exit_status_not_a_timeout():
    out = run(py("import os; os._exit(7)"), timeout=30)
    assert (out.cause, out.returncode) == ("exited", 7), out
    assert "timed out" not in out.describe() and "7" in out.describe()


@posix_only
def test_killed_by_a_signal_is_named():
    out = run(py("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"), timeout=30)
    assert out.cause == "signal" and out.signal == signal.SIGSEGV
    assert "SIGSEGV" in out.describe()
    out = run(py("import os, signal; os.kill(os.getpid(), signal.SIGKILL)"), timeout=30)
    assert out.cause in ("signal", "oom") and out.signal == signal.SIGKILL
    assert "out-of-memory" in out.describe() and "time limit" not in out.describe()


@posix_only
def test_sigkill_with_a_rising_oom_count_is_reported_as_the_oom_killer(monkeypatch):
    counts = iter([4, 5])
    monkeypatch.setattr(runner, "_cgroup_oom_kills", lambda: next(counts))
    out = run(py("import os, signal; os.kill(os.getpid(), signal.SIGKILL)"), timeout=30)
    assert out.cause == "oom" and "out-of-memory killer" in out.describe()


def test_time_limit_and_a_hang_inside_one_c_call():
    start = time.monotonic()
    out = run(py("sum(range(10**15))"), timeout=1.0)  # one C call: no signal handler runs
    assert out.cause == "timeout" and time.monotonic() - start < 20
    assert "1 s" in out.describe()


def test_poll_can_stop_the_command_with_a_reason():
    calls = []

    def poll():
        calls.append(1)
        return "enough" if len(calls) >= 3 else None

    out = run(py("import time; time.sleep(60)"), timeout=60, poll=poll, poll_interval=0.05)
    assert out.cause == "stopped" and out.reason == "enough" and out.elapsed < 30


@linux_only
def test_children_of_the_command_die_with_it():
    marker = f"attnkit-orphan-{uuid.uuid4().hex}"
    sleeper = f"[sys.executable, '-S', '-c', 'import time; time.sleep(300)', '{marker}']"
    code = (
        "import subprocess, sys\n"
        f"subprocess.Popen({sleeper})\n"
        # one in a session of its own, like a Jupyter kernel: found by the run's token
        f"subprocess.Popen({sleeper}, start_new_session=True)\n"
        "print('started')\n"
    )
    out = run(py(code), timeout=30)
    assert out.ok and "started" in out.output
    deadline = time.monotonic() + 5
    while alive(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert alive(marker) == []


@posix_only
def test_memory_limit_makes_a_large_allocation_fail_cleanly():
    limits = Limits(memory_bytes=2**30)
    out = run(py("b = bytearray(3 * 2**30)"), timeout=30, limits=limits)
    assert out.returncode == 1 and "MemoryError" in out.output, out
    assert run(py("b = bytearray(200 * 2**20)"), timeout=30, limits=limits).ok  # under it


@posix_only
def test_cpu_and_file_size_limits_are_named():
    out = run(py("while True: pass"), timeout=60, limits=Limits(cpu_seconds=1))
    assert out.signal == signal.SIGXCPU and "CPU time" in out.describe(), out
    code = "import tempfile\nf = tempfile.TemporaryFile()\n"
    code += "f.write(b'x' * 2**21); f.flush()"
    out = run(py(code), timeout=30, limits=Limits(file_bytes=2**20))
    assert out.returncode == 1 and "File too large" in out.output, out  # Python ignores SIGXFSZ


def test_wrapper_prefixes_the_command():
    out = run(py("import sys; print(sys.argv[1:])"), timeout=30, wrapper=["env", "X=1"])
    assert out.ok and "[]" in out.output
    out = run(py("import os; print(os.environ['X'])"), timeout=30, wrapper=["env", "X=wrapped"])
    assert "wrapped" in out.output


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1, 0])
def test_bad_timeouts_are_refused(bad):
    with pytest.raises(ValueError, match="timeout"):
        run(py("pass"), timeout=bad)


def test_bad_limits_are_refused():
    with pytest.raises(ValueError, match="memory_bytes"):
        Limits(memory_bytes=0)

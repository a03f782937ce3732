"""A pytest plugin that writes one JSON line per graded item, as soon as it is known.

Loaded by the grader with ``-p attnkit.grading.plugin --attnkit-report=FILE`` (and
``--attnkit-collected=FILE``, which receives the list of collected items). Writing
line by line means the results gathered so far survive even if the test process has to
be killed (an infinite loop in compiled code, say).

Each line holds ``nodeid``, ``exercise`` (from ``@pytest.mark.exercise``, or the notebook
cell for nbval items), ``kind`` (``"test"`` or ``"cell"``/``"check-cell"``), ``status``
(``passed``, ``failed``, ``not attempted``, ``timed out``, ``error``) and ``message``;
a failed test also gets ``misconception`` (``{"id", "message"}``, the catalogued mistake
the learner's code behaves like) or ``diagnosis`` (how its result departs from the
solution's), see ``attnkit.grading.misconceptions``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from .explain import add_reasons

_MAX_MESSAGE_LINES = 12


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the options ``--attnkit-report=FILE`` and ``--attnkit-collected=FILE``."""
    parser.addoption("--attnkit-report", default=None, help="file to append JSON results to")
    parser.addoption(
        "--attnkit-collected",
        default=None,
        help="file to write the collected items to, as a JSON list of [nodeid, exercise]",
    )
    parser.addoption(
        "--attnkit-started",
        default=None,
        help="file to append the nodeid of each item to as it starts (to name a hang)",
    )


def _note(event: object) -> None:
    path = _CONFIG[0].getoption("--attnkit-started") if _CONFIG else None
    if path:
        with Path(path).open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(event) + "\n")


def pytest_runtest_logstart(nodeid: str, location: tuple) -> None:
    """Note each item as it starts (its nodeid): if the process then hangs or dies, the
    grader knows which test (and so which exercise) did it."""
    _note(nodeid)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    """Note that the item's set-up is done (``{"call": nodeid}``): a hang or crash before
    this is in loading the learner's file, not in the exercise."""
    _note({"call": item.nodeid})


_CONFIG: list[pytest.Config] = []


def pytest_configure(config: pytest.Config) -> None:
    """Keep the configuration for the hooks that are not given it."""
    _CONFIG[:] = [config]


def pytest_collection_finish(session: pytest.Session) -> None:
    """Record every collected item, so that items a killed run never reached can be
    reported as timed out."""
    path = session.config.getoption("--attnkit-collected")
    if path:
        items = [[item.nodeid, _describe(item)[0]] for item in session.items]
        part = Path(f"{path}.part")  # written whole, then renamed: never read half-written
        part.write_text(json.dumps(items), encoding="utf-8")
        part.replace(path)
        if any(item.get_closest_marker("exercise") for item in session.items):
            _warm_up()


def _warm_up() -> None:
    """Import, before any test's time limit starts, what torch imports on first use
    (``assert_close`` alone pulls in sympy: 519 modules, 0.65 s of CPU here, several
    seconds on a busy machine). Otherwise the first test pays for it and, with a short
    ``--timeout``, is interrupted in the middle of an import, which breaks the tests after
    it (half-imported modules, operators registered twice)."""
    try:
        import torch
        from torch.testing import assert_close

        x = torch.ones(1, 2, 2, dtype=torch.float64)
        assert_close(torch.nn.functional.scaled_dot_product_attention(x, x, x), x)
    except Exception:  # a warm-up never decides a grade
        pass


def _classify(excinfo: pytest.ExceptionInfo[BaseException] | None, text: str) -> str:
    if excinfo is None:
        return "passed"
    if excinfo.errisinstance(NotImplementedError) or "NotImplementedError" in text:
        return "not attempted"
    first_line = text.splitlines()[0] if text else ""
    if "Timeout" in first_line or "timed out" in first_line:
        return "timed out"
    if type(excinfo.value).__name__ == "LearnerFileError":
        return "error"
    return "failed"


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _notebook_message(exc: BaseException) -> str:
    """nbval's error for a cell: for an exception, the exception's own last line; for
    an output mismatch, the start of the diff."""
    inner = _ANSI.sub("", getattr(exc, "inner_traceback", None) or "")
    lines = [ln.rstrip() for ln in inner.splitlines() if ln.strip()]
    if str(exc).startswith("Cell execution caused an exception") and lines:
        return lines[-1]
    return "\n".join([str(exc), *lines[:8]])


def _message(excinfo: pytest.ExceptionInfo[BaseException] | None) -> str:
    if excinfo is None:
        return ""
    if hasattr(excinfo.value, "inner_traceback"):
        return _notebook_message(excinfo.value)
    text = excinfo.exconly().strip()
    for prefix in ("Failed: ", "AssertionError: "):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    lines = text.splitlines()
    if len(lines) > _MAX_MESSAGE_LINES:
        lines = [*lines[:_MAX_MESSAGE_LINES], "..."]
    return "\n".join(lines)


def _describe(item: pytest.Item) -> tuple[str, str]:
    marker = item.get_closest_marker("exercise")
    if marker is not None and marker.args:
        return str(marker.args[0]), "test"
    cell = getattr(item, "cell", None)
    if cell is not None:  # an nbval notebook cell
        source = cell.get("source", "") if isinstance(cell, dict) else ""
        kind = "check-cell" if "NBVAL_CHECK_OUTPUT" in source else "cell"
        return item.name, kind
    return item.name, "test"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Record the calls of the graded exercise's function while its test runs."""
    from .misconceptions import Recorder

    Recorder.active = None
    marker = item.get_closest_marker("exercise")
    if item.config.getoption("--attnkit-report") and marker is not None and marker.args:
        Recorder.active = Recorder(str(marker.args[0]))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    from .misconceptions import Recorder

    Recorder.active = None


def _stop_timeout(item: pytest.Item) -> None:
    """Cancel pytest-timeout's alarm for ``item`` (set for its whole protocol): if it
    fired during the replays, its ``Failed`` would escape the report hook and end pytest
    with an internal error, losing the tests after this one."""
    cancel = getattr(item.ihook, "pytest_timeout_cancel_timer", None)
    if cancel is not None:
        cancel(item=item)


def _explanation(item: pytest.Item, exercise: str) -> dict:
    """The ``misconception`` or ``diagnosis`` fields for a failed test (never raises)."""
    from .misconceptions import Recorder, catalogue_path, explain

    recorder = Recorder.active
    test_file = getattr(getattr(item, "module", None), "__file__", None)
    if recorder is None or recorder.exercise != exercise or not test_file:
        return {}
    test_file = Path(test_file)
    solution = test_file.parents[2] / "solutions" / f"{test_file.stem.removeprefix('test_')}.py"
    try:
        return explain(exercise, recorder.calls, catalogue_path(test_file), solution)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # never cost the learner their result (a time limit too)
        return {"diagnosis": f"(no diagnosis: {type(exc).__name__}: {exc})"}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """Append the item's final result (after its call, or a failed setup) to the report file."""
    outcome = yield
    report = outcome.get_result()
    path = item.config.getoption("--attnkit-report")
    if not path:
        return
    final = report.when == "call" or (report.when == "setup" and not report.passed)
    if not final:
        return
    excinfo = None if report.passed or report.skipped else call.excinfo
    message = add_reasons(excinfo, _message(excinfo))
    status = "skipped" if report.skipped else _classify(excinfo, message)
    exercise, kind = _describe(item)
    record = {
        "nodeid": item.nodeid,
        "exercise": exercise,
        "kind": kind,
        "status": status,
        "message": message,
    }
    if kind == "check-cell" and excinfo is not None:
        # an exception stopped the cell (as opposed to output that differs): the notebook
        # did not run to its end
        record["raised"] = str(excinfo.value).startswith("Cell execution caused an exception")
    if status == "failed" and kind == "test":
        _stop_timeout(item)  # replaying misconceptions is the grader's time, not the test's
        _note({"explain": item.nodeid})  # the grader's watchdog allows it its own budget
        record.update(_explanation(item, exercise))
    with Path(path).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")

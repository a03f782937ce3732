"""Grade the exercises of one chapter: ``python -m attnkit.grade 01``.

Two parts, each in separate processes with time and memory limits
(``attnkit.grading.runner``), so that a bug in the learner's code (an exception, a
syntax error, an infinite loop, a crash, a huge allocation) is reported, never a crash or
a hang of the grader:

1. **Tests.** ``tests/grading/test_NN_*.py`` run with pytest against the *definitions*
   of the learner's file (functions, classes, imports, UPPER_CASE constants; demo cells
   are not run), comparing with attnkit on several inputs including edge cases. A test
   that hangs (even inside one C call) or kills its process is named, and the run goes
   on with the remaining tests in a new process.
2. **Notebook.** A temporary copy of the learner's notebook runs under nbval; every cell
   must run, and the cells marked ``# NBVAL_CHECK_OUTPUT`` must print what the solution
   prints.

The score counts the tests, the check cells and "the notebook runs to the end" as items;
it is 100% exactly when the exit status is 0. The learner's files and the book's sources
are only read, never written; the only file the grader writes by itself is the git-ignored
progress file (``attnkit.grading.progress``). Exit status: 0 when everything passed,
1 otherwise, 2 for a usage error (no such chapter or exercise, an unreadable file, a bad
option). Other commands: ``--hint EXERCISE``, ``--progress``, ``--reset``.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import math
import os
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .grading import progress
from .grading.chapters import all_exercises, grading_test_files
from .grading.checks import (
    UsageError,
    chapter_id,
    check_json_path,
    check_learner_file,
    pair_warning,
    seconds,
    test_file_identity,
)
from .grading.commands import (
    load_progress,
    pad,
    print_progress,
    reset_progress,
    save_progress,
    show_hint,
)
from .grading.explain import MEMORY_VARIABLE
from .grading.loader import LearnerFileError, newest_file, repo_root, source_of
from .grading.messages import EN, LANG_VARIABLE, current_lang, detect_lang, set_lang, t
from .grading.runner import Limits, Outcome, run

STATUS_ORDER = ("error", "timed out", "failed", "not attempted", "passed")
CHECK_MARK = "NBVAL_CHECK_OUTPUT"
PYTEST = [sys.executable, "-m", "pytest", "-p", "attnkit.grading.plugin", "-p", "no:cacheprovider"]
# pytest runs with plugin autoloading off and only these plugins: it starts in half the CPU
# time (1.9 s instead of 3.8 s here), and no installed plugin can change the grading.
TEST_PLUGINS = ("pytest_timeout", "_hypothesis_pytestplugin")
NOTEBOOK_PLUGINS = ("nbval.plugin",)
DEFAULT_MEMORY_GB = 4.0
COLLECTION_S = 120.0  # starting pytest and collecting the tests
MAX_RUNS = 25  # test processes for one grading (a hang or crash starts one more)
REPLAY_ALLOWANCE_S = 15.0  # after a failed test: misconceptions.REPLAY_BUDGET_S (10 s) + 5
BACKSTOP_S = 6 * 3600.0  # never reached: the watchdog stops a run long before


def _grace(timeout: float) -> float:
    """Extra seconds a test or cell gets past ``timeout`` before its process is killed
    (pytest-timeout or nbval should stop it first, unless it is stuck inside a C call)."""
    return 3.0 + 0.25 * timeout


# ------------------------------------------------------------------ watching a run
class _Lines:
    """The complete lines appended to a file since the last call (a growing JSONL file)."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset = path, 0

    def new(self) -> list:
        if not self.path.exists():
            return []
        with self.path.open("rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        return [json.loads(line) for line in data[:end].decode("utf-8").splitlines() if line]


class Watch:
    """Polled by the runner while pytest runs: notes each item as it starts and ends,
    tells the progress printer, and stops the run when collection takes longer than
    ``COLLECTION_S`` or an item runs longer than ``timeout`` plus the grace."""

    def __init__(self, folder: Path, timeout: float, on_record=None) -> None:
        self.report, self.started_file = folder / "report.jsonl", folder / "started.jsonl"
        self.collected_file = folder / "collected.json"
        self._records, self._started = _Lines(self.report), _Lines(self.started_file)
        self.records: list[dict] = []
        self.started: list[str] = []
        self.called: set[str] = set()  # items whose set-up finished
        self.timeout, self.on_record = timeout, on_record
        self.limit = timeout + _grace(timeout)  # seconds one item may run before the kill
        self.begin = time.monotonic()
        self.current_since = self.last_event = self.begin

    def args(self) -> list[str]:
        return [
            f"--attnkit-report={self.report}",
            f"--attnkit-collected={self.collected_file}",
            f"--attnkit-started={self.started_file}",
        ]

    def __call__(self) -> str | None:
        self.update()
        now = time.monotonic()
        running = self.running()
        if running is None and not self.started and now - self.begin > COLLECTION_S:
            return t("stop.collection", seconds=COLLECTION_S)
        # set-up (the learner's file loaded, nbval's kernel started) gets COLLECTION_S;
        # the item itself, from its call on, its time limit plus the grace
        limit = self.limit if running in self.called else COLLECTION_S
        if running is not None and now - self.current_since > limit:
            return t("stop.hung", item=running, seconds=limit)
        if running is None and self.started and now - self.last_event > self.limit + 60:
            return t("stop.idle", seconds=self.limit + 60)  # stuck between tests
        return None

    def update(self) -> None:
        for event in self._started.new():
            if isinstance(event, dict):
                if event.get("call"):
                    self.called.add(event["call"])
                    self.current_since = time.monotonic()
                if event.get("explain"):  # replaying misconceptions: up to their budget more
                    self.current_since = time.monotonic() + REPLAY_ALLOWANCE_S
                continue
            self.started.append(event)
            self.current_since = self.last_event = time.monotonic()
        for record in self._records.new():
            self.last_event = time.monotonic()
            self.records.append(record)
            if self.on_record:
                self.on_record(record)

    def running(self) -> str | None:
        """The item that started last and has no result yet, if any."""
        done = {r["nodeid"] for r in self.records}
        last = self.started[-1] if self.started else None
        return last if last is not None and last not in done else None

    def collected(self) -> list[list[str]]:
        if not self.collected_file.exists():
            return []
        return json.loads(self.collected_file.read_text(encoding="utf-8"))


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", LANG_VARIABLE: current_lang()}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env.update(extra)
    return env


def _pytest(plugins: tuple[str, ...]) -> list[str]:
    """The pytest command line with the grading plugin and ``plugins`` (those installed)."""
    found = [p for p in plugins if importlib.util.find_spec(p.split(".")[0]) is not None]
    return [*PYTEST, *(arg for p in found for arg in ("-p", p))]


def _crash_record(nodeid: str, exercise: str, outcome: Outcome, limit: float, kind="test"):
    """The record of the test (or cell) during which the process hung or died."""
    if outcome.cause in ("stopped", "timeout"):
        status = "timed out"
        message = t("crash.hung", exercise=exercise, seconds=limit)
    else:
        status = "error"
        message = t("crash.died", exercise=exercise, how=outcome.describe())
        internal = [ln for ln in outcome.output.splitlines() if ln.startswith("INTERNALERROR>")]
        if outcome.cause == "exited" and internal:
            message += " " + t("crash.internal", line=internal[-1][14:].strip())
        elif outcome.cause == "exited":
            message += " " + t("crash.exit_hint", code=outcome.returncode)
    return {
        "nodeid": nodeid,
        "exercise": exercise,
        "kind": kind,
        "status": status,
        "message": message,
    }


# ------------------------------------------------------------------------- the tests
@dataclass
class Setup:
    """What one grading needs (built by :func:`main` from the command line)."""

    root: Path
    chapter: str
    test_file: Path
    learner: Path
    timeout: float
    limits: Limits
    wrapper: list[str] | None = None


def grade_tests(setup: Setup, on_record=None) -> list[dict]:
    """Run the chapter's grading tests against the learner's file; one record per test.

    A test that hangs past its time limit (even inside one C call, which pytest-timeout
    cannot interrupt) or kills its process is recorded as such, with the other tests of
    its exercise, and the remaining tests run in a new process. A hang or crash while the
    learner's file is loaded (before any test body) ends the grading: every test needs it.
    Raises :class:`GradingError` if the tests cannot start at all.
    """
    env = _child_env({"ATTNKIT_LEARNER_FILE": str(setup.learner)})
    if setup.limits.memory_bytes:
        env[MEMORY_VARIABLE] = f"{setup.limits.memory_bytes / 2**30:g}"
    records: list[dict] = []
    expected: list[list[str]] = []
    loading = False
    with tempfile.TemporaryDirectory() as tmp:
        for attempt in range(MAX_RUNS):
            watch = Watch(Path(tmp) / f"run{attempt}", setup.timeout, on_record)
            outcome = _run_tests(setup, env, watch, skip=[r["nodeid"] for r in records])
            records += watch.records
            expected = expected or watch.collected()
            culprit = watch.running()
            if culprit is None:
                break  # finished, or died between tests (the rest is reported below)
            if culprit not in watch.called:
                loading = True  # stuck or killed in the set-up: loading the learner's file
                break
            exercise = dict(map(tuple, expected)).get(culprit, "?")
            crash = _crash_record(culprit, exercise, outcome, watch.limit)
            # the other tests of that exercise would most likely hang or crash too
            records += [crash, *_same_exercise(expected, records, crash)]
            if on_record:
                on_record(crash)
    if not expected:
        raise GradingError(t("grading.tests_did_not_run", log=outcome.output[-3000:]))
    return records + _not_reached(expected, records, outcome, loading)


def _run_tests(setup: Setup, env: dict[str, str], watch: Watch, skip: list[str]) -> Outcome:
    """One pytest process over the chapter's tests, less ``skip``; ``watch`` follows it."""
    watch.report.parent.mkdir()
    args = [str(setup.test_file), *watch.args(), f"--timeout={setup.timeout}"]
    args += ["--timeout-method=signal", "-q", *(f"--deselect={nodeid}" for nodeid in skip)]
    outcome = run(
        _pytest(TEST_PLUGINS) + args,
        timeout=BACKSTOP_S,
        cwd=setup.root,
        env=env,
        limits=setup.limits,
        wrapper=setup.wrapper,
        poll=watch,
    )
    watch.update()
    return outcome


def _same_exercise(expected: list[list[str]], records: list[dict], crash: dict) -> list[dict]:
    """Records for the tests of the crash's exercise not yet run: they would most likely
    hang or crash the same way."""
    seen = {r["nodeid"] for r in records} | {crash["nodeid"]}
    test = crash["nodeid"].split("::")[-1]
    return [
        {
            "nodeid": nodeid,
            "exercise": name,
            "kind": "test",
            "status": crash["status"],
            "message": t("crash.same_exercise", test=test),
        }
        for nodeid, name in expected
        if name == crash["exercise"] and nodeid not in seen
    ]


def _not_reached(
    expected: list[list[str]], records: list[dict], outcome: Outcome, loading: bool = False
) -> list:
    """Records for the collected tests that never ran (the process kept failing)."""
    seen = {r["nodeid"] for r in records}
    message = t("crash.loading" if loading else "crash.not_reached", how=outcome.describe())
    return [
        {
            "nodeid": nodeid,
            "exercise": exercise,
            "kind": "test",
            "status": "error",
            "message": message,
        }
        for nodeid, exercise in expected
        if nodeid not in seen
    ]


class GradingError(Exception):
    """A part of the grading could not run at all; the message says what happened."""


# ---------------------------------------------------------------------- the notebook
def _sections(nb) -> dict[str, str]:
    """Map nbval's item names ("Cell 3": the 4th *code* cell) to the markdown heading
    the cell sits under, so that a failure can be found in the notebook."""
    where, heading, n_code = {}, t("nb.top"), 0
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            lines = cell.source.splitlines()
            titles = [ln.lstrip("#").strip() for ln in lines if ln.startswith("#")]
            heading = titles[-1] if titles else heading
        elif cell.cell_type == "code":
            where[f"Cell {n_code}"] = heading
            n_code += 1
    return where


def _first_lines(nb) -> dict[str, str]:
    """nbval's item name -> the first non-empty line of that code cell."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    firsts = {}
    for index, cell in enumerate(code):
        lines = [ln.strip() for ln in cell.source.splitlines() if ln.strip()]
        firsts[f"Cell {index}"] = lines[0][:80] if lines else ""
    return firsts


def build_check_notebook(
    learner: Path, expected_file: Path, dest: Path
) -> tuple[int, set[str], dict[str, str]]:
    """Write to ``dest`` a copy of the learner's notebook ready for ``nbval --nbval-lax``.

    All outputs are stripped; each check cell (``# NBVAL_CHECK_OUTPUT``) gets the
    solution's outputs from ``expected_file``, matched by its source text. Returns the
    number of check cells expected, the nbval names ("Cell 3") of the learner's check
    cells that match none (changed by the learner), and each code cell's heading.
    """
    import jupytext
    import nbformat

    nb = jupytext.read(learner)
    expected = json.loads(expected_file.read_text(encoding="utf-8"))
    by_source = {e["source"].strip(): e for e in expected["checks"]}
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    unmatched = set()
    for index, cell in enumerate(code_cells):
        cell.outputs = []
        cell.execution_count = None
        if CHECK_MARK not in cell.source:
            continue
        ref = by_source.get(cell.source.strip())
        if ref is None:
            unmatched.add(f"Cell {index}")
        else:
            cell.outputs = [nbformat.from_dict(o) for o in ref["outputs"]]
            cell.execution_count = ref["execution_count"]
    nbformat.write(nb, dest)
    return len(expected["checks"]), unmatched, _sections(nb)


def grade_notebook(setup: Setup, expected_file: Path, on_record=None) -> dict:
    """Run the learner's notebook under nbval; records per cell plus the check counts.

    A cell that runs past its time limit plus the grace (stuck in a C call, where the
    kernel cannot be interrupted) stops the run: it is named, and the cells after it are
    reported as not run.
    """
    import nbformat

    with tempfile.TemporaryDirectory() as tmp:
        nb_path = Path(tmp) / f"graded_{setup.learner.stem}.ipynb"
        n_checks, unmatched, sections = build_check_notebook(setup.learner, expected_file, nb_path)
        nb = nbformat.read(nb_path, as_version=4)
        firsts = _first_lines(nb)
        if not firsts:
            return {
                "records": [],
                "checks_matched": 0,
                "checks_expected": n_checks,
                "note": t("nb.empty"),
            }
        watch = Watch(Path(tmp) / "run", setup.timeout, on_record)
        watch.report.parent.mkdir()
        args = [
            str(nb_path),
            "--nbval-lax",
            f"--nbval-cell-timeout={setup.timeout}",
            *watch.args(),
            "-q",
            f"--rootdir={tmp}",
        ]
        outcome = run(
            _pytest(NOTEBOOK_PLUGINS) + args,
            timeout=BACKSTOP_S,
            cwd=tmp,
            # the kernel's IPython history and connection files stay in the temporary folder
            env=_child_env({"IPYTHONDIR": f"{tmp}/ipython", "JUPYTER_RUNTIME_DIR": f"{tmp}/rt"}),
            limits=setup.limits,
            wrapper=setup.wrapper,
            poll=watch,
        )
        watch.update()
        records = watch.records
        culprit = watch.running()
        if culprit is not None:
            cell = culprit.split("::")[-1]
            records.append(_crash_record(culprit, cell, outcome, watch.limit, "cell"))
        if not records:
            raise GradingError(t("grading.nb_did_not_run", log=outcome.output[-3000:]))
        records += _cells_not_run(firsts, records, culprit or "")
    for r in records:
        r["section"] = sections.get(r["exercise"], "")
        r["line"] = firsts.get(r["exercise"], "")
        if r["exercise"] in unmatched and r["status"] == "passed":
            r["status"] = "failed"
            r["message"] = t("nb.check_changed")
    matched = sum(r["kind"] == "check-cell" for r in records) - len(unmatched)
    return {"records": records, "checks_matched": max(matched, 0), "checks_expected": n_checks}


def _cells_not_run(firsts: dict[str, str], records: list[dict], culprit: str) -> list[dict]:
    seen = {r["exercise"] for r in records}
    stopped_at = culprit.split("::")[-1] or "?"
    return [
        {
            "nodeid": name,
            "exercise": name,
            "kind": "cell",
            "status": "error",
            "message": t("nb.not_run", cell=stopped_at),
        }
        for name in firsts
        if name not in seen
    ]


# ---------------------------------------------------------------------- the report
def summarize(records: list[dict]) -> dict[str, dict]:
    """Per exercise: number of tests, number passed, overall status, messages."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        groups[r["exercise"]].append(r)
    summary = {}
    for name, rs in groups.items():
        statuses = {r["status"] for r in rs}
        if statuses == {"passed"}:
            status = "passed"
        elif statuses == {"not attempted"}:
            status = "not attempted"
        else:
            status = next((s for s in STATUS_ORDER if s in statuses and s != "passed"), "failed")
        summary[name] = {
            "tests": len(rs),
            "passed": sum(r["status"] == "passed" for r in rs),
            "status": status,
            "problems": [r for r in rs if r["status"] not in ("passed", "not attempted")],
        }
    return summary


def score(records: list[dict], notebook: dict | None) -> dict:
    """The score's items: every test, every expected check cell, and (when the notebook
    is graded) "the notebook runs to the end". 100% if and only if all of them pass."""
    passed = sum(r["status"] == "passed" for r in records)
    total = len(records)
    if notebook is not None:
        cells = notebook["records"]
        checks_ok = sum(r["status"] == "passed" for r in cells if r["kind"] == "check-cell")
        runs = bool(cells) and all(
            r["status"] == "passed" if r["kind"] == "cell" else not r.get("raised", False)
            for r in cells
        )  # every cell ran without an exception (a check cell's output may still differ)
        passed += min(checks_ok, notebook["checks_matched"]) + runs
        total += notebook["checks_expected"] + 1
    percent = 100 if passed == total and total else math.floor(100 * passed / max(total, 1))
    return {"passed": passed, "total": total, "percent": percent, "complete": passed == total}


def _status_word(status: str) -> str:
    return t(f"status.{status}") if f"status.{status}" in EN else status


def explanation_lines(problems: list[dict]) -> list[str]:
    """The likely misconception (or, when none is catalogued, the diagnosis) of a failed
    exercise, from its failed tests' records, as lines for the report."""
    from .grading.misconceptions import named_for_exercise

    named = named_for_exercise(problems)
    if named is None:
        return []
    if named["kind"] == "misconception":
        return [t("report.misconception", message=named["text"])]
    return [t("report.diagnosis", text=named["text"])]


def _problem_lines(p: dict, indent: str) -> list[str]:
    test = p["nodeid"].split("::")[-1]
    lines = (p["message"] or p["status"]).splitlines() or [p["status"]]
    return [f"{indent}  - {test}: {lines[0]}", *(f"{indent}    {ln}" for ln in lines[1:6])]


def print_tests(tests: dict[str, dict]) -> None:
    width = max([len(n) for n in tests] + [20])
    head = pad(t("report.exercise"), width) + "  " + pad(t("report.tests"), 7, right=True)
    print(f"\n{head}  {t('report.status')}")
    print(f"{'-' * width}  {'-' * 7}  {'-' * 14}")
    for name, s in tests.items():
        print(f"{name:<{width}}  {s['passed']:>3}/{s['tests']:<3}  {_status_word(s['status'])}")
        for line in explanation_lines(s["problems"]):
            print(f"{'':<{width}}    > {line}")
        for p in s["problems"][:3]:
            print("\n".join(_problem_lines(p, " " * width)))
    n_tests = sum(s["tests"] for s in tests.values())
    n_pass = sum(s["passed"] for s in tests.values())
    n_done = sum(s["status"] == "passed" for s in tests.values())
    print("\n" + t("report.tests_line", passed=n_pass, total=n_tests, done=n_done, n=len(tests)))


def print_notebook(learner: Path, notebook: dict) -> None:
    cells = notebook["records"]
    checks = [r for r in cells if r["kind"] == "check-cell"]
    ok_checks = sum(r["status"] == "passed" for r in checks)
    ok_cells = sum(r["status"] == "passed" for r in cells)
    print(
        t(
            "report.notebook_line",
            name=learner.name,
            ok=ok_cells,
            n=len(cells),
            checks=ok_checks,
            expected=notebook["checks_expected"],
        )
    )
    if notebook.get("note"):
        print(f"  {notebook['note']}")
    if notebook["checks_matched"] < notebook["checks_expected"]:
        missing = notebook["checks_expected"] - notebook["checks_matched"]
        print("  " + t("report.checks_changed", n=missing))
    for r in cells:
        if r["status"] == "passed":
            continue
        first = (r["message"] or r["status"]).splitlines()[0]
        what = "report.check_cell" if r["kind"] == "check-cell" else "report.cell"
        print(
            "  - "
            + t(
                what,
                cell=r["exercise"],
                section=r.get("section", ""),
                line=r.get("line", ""),
                status=_status_word(r["status"]),
                message=first,
            )
        )


def print_report(learner: Path, tests: dict[str, dict], notebook: dict | None, result: dict):
    """Print the per-exercise report and the score."""
    print_tests(tests)
    if notebook is not None:
        print_notebook(learner, notebook)
    key = "report.score_complete" if result["complete"] else "report.score"
    print(t(key, percent=result["percent"], passed=result["passed"], total=result["total"]))


class Progress:
    """Prints while grading runs: a line when the tests reach a new exercise, and a line
    about the notebook at its first cell and then every ``every`` seconds."""

    def __init__(self, every: float = 15.0) -> None:
        self.exercise, self.cells, self.every, self.last = "", 0, every, 0.0

    def test(self, record: dict) -> None:
        if record["exercise"] != self.exercise:
            self.exercise = record["exercise"]
            print("  " + t("progress.tests", exercise=self.exercise), flush=True)

    def cell(self, record: dict) -> None:
        self.cells += 1
        now = time.monotonic()
        if self.cells == 1 or now - self.last >= self.every:
            self.last = now
            print("  " + t("progress.cells", n=self.cells), flush=True)


# ------------------------------------------------------------------- the command
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m attnkit.grade",
        description="Grade the exercises of one chapter of the book.",
    )
    parser.add_argument("chapter", nargs="?", help="chapter number, e.g. 01")
    parser.add_argument(
        "--target",
        choices=["exercises", "solutions"],
        default="exercises",
        help="which folder's file to grade (default: exercises, your work)",
    )
    parser.add_argument("--file", type=Path, help="grade this .py/.ipynb file instead")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per test or cell")
    parser.add_argument(
        "--memory",
        type=float,
        default=DEFAULT_MEMORY_GB,
        help=f"memory limit of each grading process in GB (default {DEFAULT_MEMORY_GB:g})",
    )
    parser.add_argument("--skip-notebook", action="store_true", help="only run the tests")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--hint", metavar="EXERCISE", help="show the next hint of an exercise")
    parser.add_argument("--progress", action="store_true", help="show your progress")
    parser.add_argument(
        "--reset", action="store_true", help="forget your progress (of CHAPTER, or all)"
    )
    parser.add_argument(
        "--lang", choices=["en", "zh"], help="language of the messages (default: the locale)"
    )
    _add_class_options(parser)
    return parser


def _add_class_options(parser: argparse.ArgumentParser) -> None:
    """The options of instructor mode (``attnkit.grading.classroom``)."""
    group = parser.add_argument_group("instructor mode (a class, sandboxed, into a gradebook)")
    group.add_argument(
        "--class",
        dest="class_dir",
        type=Path,
        help="grade every submission (a file or a folder each) in this folder",
    )
    group.add_argument("--out", type=Path, help="the gradebook CSV to write (JSON beside it)")
    group.add_argument("--jobs", type=int, help="submissions graded at a time (default: cores)")


def _grade_class(args: argparse.Namespace) -> int:
    """``--class DIR --out CSV``: every submission in the sandbox, one gradebook."""
    from .grading.classroom import grade_class

    try:
        if args.chapter is None:
            raise UsageError(t("usage.no_chapter_given"))
        chapter = chapter_id(args.chapter)
        if args.out is None:
            raise UsageError("--class needs --out gradebook.csv")
        if not args.class_dir.is_dir():
            raise UsageError(f"--class must be a folder of submissions, got {args.class_dir}")
        timeout = seconds(args.timeout, "--timeout")
        if args.jobs is not None and args.jobs < 1:
            raise UsageError(f"--jobs must be at least 1, got {args.jobs}")
        root = Path(__file__).resolve().parents[1]  # the instructor's copy, never the cwd
        out = args.out.resolve()
        if args.class_dir.resolve() in (out.parent, *out.parent.parents):
            raise UsageError("--out must not be inside the submissions folder")
        return grade_class(
            chapter, args.class_dir.resolve(), out, root=root, timeout=timeout, jobs=args.jobs
        )
    except (UsageError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _setup(args: argparse.Namespace, root: Path) -> tuple[Setup, Path | None, list[str]]:
    """Check the command line for grading; return the setup, --json's path and warnings."""
    chapter = chapter_id(args.chapter)
    files = grading_test_files(root)
    if chapter not in files:
        raise UsageError(t("usage.no_chapter", chapter=chapter, have=", ".join(files)))
    timeout = seconds(args.timeout, "--timeout")
    memory = seconds(args.memory, "--memory")
    if args.file is not None:
        learner = args.file.expanduser().resolve()
    else:
        try:
            learner = newest_file(root / args.target, chapter)
        except LearnerFileError as exc:
            raise UsageError(str(exc)) from None
    check_learner_file(learner, chapter, all_exercises(root))
    json_path = None if args.json is None else check_json_path(args.json, root, learner)
    warning = pair_warning(learner)
    limits = Limits(memory_bytes=int(memory * 2**30))
    setup = Setup(root, chapter, files[chapter], learner, timeout, limits)
    return setup, json_path, [warning] if warning else []


def _write_json(path: Path, data: dict) -> None:
    """Write the report atomically beside its destination (a crash leaves no half file)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, ensure_ascii=False)
    os.replace(tmp, path)


def _syntax_error(learner: Path) -> SyntaxError | None:
    try:
        ast.parse(source_of(learner), filename=str(learner))
    except SyntaxError as exc:
        return exc
    return None


def grade(setup: Setup, skip_notebook: bool) -> tuple[list[dict], dict | None]:
    """Run the tests and the notebook side by side (two processes); print progress."""
    expected = sorted((setup.root / "tests" / "grading" / "expected").glob(f"{setup.chapter}_*"))
    show = Progress()
    with ThreadPoolExecutor(max_workers=2) as pool:
        tests_job = pool.submit(grade_tests, setup, show.test)
        notebook_job = None
        if not skip_notebook and expected:
            notebook_job = pool.submit(grade_notebook, setup, expected[0], show.cell)
        records = tests_job.result()
        notebook = None if notebook_job is None else notebook_job.result()
    return records, notebook


def main(argv: list[str] | None = None) -> int:
    """The command line, ``python -m attnkit.grade CHAPTER [options]``.

    Returns the exit status: 0 if everything passed, 1 if something failed (or the file
    has a syntax error), 2 for a usage error (no such chapter or exercise, an unreadable
    file, a bad option, a --json path that would overwrite a source or learner file).
    """
    args = _parser().parse_args(argv)
    set_lang(args.lang or os.environ.get(LANG_VARIABLE) or detect_lang())
    if args.class_dir is not None:
        return _grade_class(args)
    try:
        root = repo_root()
        store = progress.progress_path(root)
        if args.progress:
            return print_progress(root, store)
        if args.reset:
            return reset_progress(store, None if args.chapter is None else chapter_id(args.chapter))
        if args.chapter is None:
            raise UsageError(t("usage.no_chapter_given"))
        if args.hint:
            chapter = chapter_id(args.chapter)
            if chapter not in grading_test_files(root):
                raise UsageError(
                    t("usage.no_chapter", chapter=chapter, have=", ".join(grading_test_files(root)))
                )
            return show_hint(root, chapter, args.hint, store)
        setup, json_path, warnings = _setup(args, root)
    except (UsageError, LearnerFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return _grade_and_report(setup, args, json_path, warnings, store)


def _grade_and_report(
    setup: Setup, args, json_path: Path | None, warnings: list[str], store: Path
) -> int:
    identity = test_file_identity(setup.root, setup.test_file)
    print(t("report.grading", chapter=setup.chapter, path=setup.learner))
    print(
        t(
            "report.test_file",
            path=identity["path"],
            commit=identity["commit"] or "-",
            state=t("report.modified") if identity["modified"] else "",
        )
    )
    for warning in warnings:
        print(t("report.warning", text=warning))
    base = {
        "learner": str(setup.learner),
        "chapter": setup.chapter,
        "test_file": identity,
        "warnings": warnings,
        "lang": current_lang(),
    }
    error = _syntax_error(setup.learner)
    if error is not None:
        print(
            "\n"
            + t(
                "report.syntax_error",
                line=error.lineno,
                msg=error.msg,
                text=(error.text or "").rstrip(),
            )
        )
        if json_path:
            result = {"passed": 0, "total": 1, "percent": 0, "complete": False}
            _write_json(json_path, {**base, "syntax_error": str(error), "score": result})
        return 1
    try:
        records, notebook = grade(setup, args.skip_notebook)
    except GradingError as exc:
        print(f"\n{exc}", file=sys.stderr)
        return 1
    tests = summarize(records)
    result = score(records, notebook)
    print_report(setup.learner, tests, notebook, result)
    if args.target == "exercises" or args.file is not None:
        data, writable = load_progress(store)
        if writable:
            save_progress(store, progress.record_grading(data, setup.chapter, tests))
    if json_path:
        _write_json(json_path, {**base, "tests": records, "notebook": notebook, "score": result})
    return 0 if result["complete"] else 1


def _in_ipython() -> bool:
    """True inside IPython/Jupyter (``%run -m attnkit.grade 01``), where raising
    SystemExit would print a traceback-like notice under the report."""
    shell = sys.modules.get("IPython")
    get = getattr(shell, "get_ipython", None)
    return bool(get and get() is not None)


if __name__ == "__main__":
    try:
        status = main()
    except BrokenPipeError:  # `... | head`: the reader has gone, nothing more to say
        sys.stderr.close()
        status = 1
    if not _in_ipython():
        sys.exit(status)

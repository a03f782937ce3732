"""Grade the exercises of one chapter: ``python -m attnkit.grade 01``.

Two parts, each in a separate process with time limits, so that a bug in the learner's
code (an exception, a syntax error, an infinite loop) is reported, never a crash or hang:

1. **Tests.** ``tests/grading/test_NN_*.py`` run with pytest against the *definitions*
   of the learner's file (functions, classes, imports; demo cells are not run), comparing
   with attnkit on several inputs including edge cases.
2. **Notebook.** A temporary copy of the learner's notebook runs under nbval; the cells
   marked ``# NBVAL_CHECK_OUTPUT`` must print what the solution prints.

The learner's files are only read, never written. Exit status: 0 when everything passed,
1 otherwise, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .grading.loader import LearnerFileError, newest_file, repo_root, source_of

STATUS_ORDER = ("error", "timed out", "failed", "not attempted", "passed")
CHECK_MARK = "NBVAL_CHECK_OUTPUT"


def _chapter_id(text: str) -> str:
    if not text.isdigit():
        raise ValueError(f"chapter must be a number such as 01, got {text!r}.")
    return f"{int(text):02d}"


def _run_pytest(
    args: list[str], env: dict[str, str], time_limit: Callable[[], float], cwd: Path
) -> str:
    """Run pytest in a subprocess; return its output. The process is killed once it has
    run ``time_limit()`` seconds in total (asked again while it runs, so the limit can
    grow when the number of tests becomes known)."""
    cmd = [sys.executable, "-m", "pytest", "-p", "attnkit.grading.plugin", "-p", "no:cacheprovider"]
    start = time.monotonic()
    with tempfile.TemporaryFile("w+", encoding="utf-8") as log:
        proc = subprocess.Popen(
            cmd + args, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        note = ""
        while proc.poll() is None:
            limit = time_limit()
            if time.monotonic() - start > limit:
                proc.kill()
                note = f"\n[grader] stopped after {limit:.0f} s in total.\n"
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.1)
        log.seek(0)
        return log.read() + note


def _read_records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def grade_tests(test_file: Path, learner: Path, root: Path, timeout: float) -> list[dict]:
    """Run the chapter's grading tests against ``learner``; one record per test."""
    env = {**os.environ, "ATTNKIT_LEARNER_FILE": str(learner), "PYTHONDONTWRITEBYTECODE": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.jsonl"
        collected = Path(tmp) / "collected.json"
        args = [
            str(test_file),
            f"--attnkit-report={report}",
            f"--attnkit-collected={collected}",
            f"--timeout={timeout}",
            "--timeout-method=signal",
            "-q",
        ]

        counted: list[int] = []

        def time_limit() -> float:
            """Collection gets 120 s; then ``timeout`` per collected test, plus 60 s."""
            if not counted and collected.exists():
                counted.append(len(json.loads(collected.read_text())))
            return timeout * counted[0] + 60.0 if counted else 120.0

        log = _run_pytest(args, env, time_limit, root)
        records = _read_records(report)
        expected = json.loads(collected.read_text()) if collected.exists() else []
    seen = {r["nodeid"] for r in records}
    for nodeid, exercise in expected:
        if nodeid not in seen:
            records.append(
                {
                    "nodeid": nodeid,
                    "exercise": exercise,
                    "kind": "test",
                    "status": "timed out",
                    "message": "not reached: the test run was stopped (time limit)",
                }
            )
    if not records:
        raise RuntimeError(f"the grading tests did not run. pytest said:\n{log[-3000:]}")
    return records


def _sections(nb) -> dict[str, str]:
    """Map nbval's item names ("Cell 3": the 4th *code* cell) to the markdown heading
    the cell sits under, so that a failure can be found in the notebook."""
    where, heading, n_code = {}, "top of the notebook", 0
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            lines = cell.source.splitlines()
            titles = [ln.lstrip("#").strip() for ln in lines if ln.startswith("#")]
            heading = titles[-1] if titles else heading
        elif cell.cell_type == "code":
            where[f"Cell {n_code}"] = heading
            n_code += 1
    return where


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


def grade_notebook(learner: Path, expected_file: Path, root: Path, timeout: float) -> dict:
    """Run the learner's notebook under nbval; records per cell plus the check counts."""
    with tempfile.TemporaryDirectory() as tmp:
        nb_path = Path(tmp) / f"graded_{learner.stem}.ipynb"
        n_checks, unmatched, sections = build_check_notebook(learner, expected_file, nb_path)
        report = Path(tmp) / "report.jsonl"
        args = [
            str(nb_path),
            "--nbval-lax",
            f"--nbval-cell-timeout={timeout}",
            f"--attnkit-report={report}",
            "-q",
            f"--rootdir={tmp}",
        ]
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        log = _run_pytest(args, env, lambda: 900.0, Path(tmp))
        records = _read_records(report)
    if not records:
        raise RuntimeError(f"the notebook did not run. pytest said:\n{log[-3000:]}")
    for r in records:
        r["section"] = sections.get(r["exercise"], "")
        if r["exercise"] in unmatched and r["status"] == "passed":
            r["status"] = "failed"
            r["message"] = "this check cell was changed; restore the text the exercise gave"
    matched = sum(r["kind"] == "check-cell" for r in records) - len(unmatched)
    return {"records": records, "checks_matched": matched, "checks_expected": n_checks}


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
            status = next(s for s in STATUS_ORDER if s in statuses and s != "passed")
        summary[name] = {
            "tests": len(rs),
            "passed": sum(r["status"] == "passed" for r in rs),
            "status": status,
            "problems": [r for r in rs if r["status"] not in ("passed", "not attempted")],
        }
    return summary


def explanation_lines(problems: list[dict]) -> list[str]:
    """The likely misconception (or, when none is catalogued, the diagnosis) of a failed
    exercise, from its failed tests' records, as lines for the report."""
    from .grading.misconceptions import language, named_for_exercise

    named = named_for_exercise(problems)
    if named is None:
        return []
    zh = language() == "zh"
    if named["kind"] == "misconception":
        label = "可能的误解" if zh else "likely misconception"
    else:
        label = "与参考答案的差别" if zh else "what differs"
    return [f"{label}: {named['text']}"]


def print_report(learner: Path, tests: dict[str, dict], notebook: dict | None) -> None:
    """Print the per-exercise report and the score."""
    width = max([len(n) for n in tests] + [20])
    print(f"\n{'exercise':<{width}}  {'tests':>7}  status")
    print(f"{'-' * width}  {'-' * 7}  {'-' * 14}")
    for name, s in tests.items():
        print(f"{name:<{width}}  {s['passed']:>3}/{s['tests']:<3}  {s['status']}")
        for line in explanation_lines(s["problems"]):
            print(f"{'':<{width}}    > {line}")
        for p in s["problems"][:3]:
            test = p["nodeid"].split("::")[-1]
            lines = (p["message"] or p["status"]).splitlines() or [p["status"]]
            print(f"{'':<{width}}    - {test}: {lines[0]}")
            for line in lines[1:6]:
                print(f"{'':<{width}}      {line}")
    n_tests = sum(s["tests"] for s in tests.values())
    n_pass = sum(s["passed"] for s in tests.values())
    n_done = sum(s["status"] == "passed" for s in tests.values())
    print(f"\nTests: {n_pass}/{n_tests} passed; exercises complete: {n_done}/{len(tests)}")
    if notebook is not None:
        cells = notebook["records"]
        checks = [r for r in cells if r["kind"] == "check-cell"]
        ok_checks = sum(r["status"] == "passed" for r in checks)
        ok_cells = sum(r["status"] == "passed" for r in cells)
        print(
            f"Notebook ({learner.name} under nbval): {ok_cells}/{len(cells)} cells ran; "
            f"{ok_checks}/{notebook['checks_expected']} check cells print what the solution prints"
        )
        if notebook["checks_matched"] < notebook["checks_expected"]:
            missing = notebook["checks_expected"] - notebook["checks_matched"]
            print(f"  ({missing} check cell(s) were changed or removed; restore them to pass)")
        for r in checks:
            if r["status"] != "passed":
                first = (r["message"] or r["status"]).splitlines()[0]
                print(f"  - {r['exercise']} ({r['section']}): {r['status']}: {first}")
    score = n_pass / n_tests if n_tests else 0.0
    print(f"Score: {100 * score:.0f}%")


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
        chapter = _chapter_id(args.chapter)
        if args.out is None:
            raise ValueError("--class needs --out gradebook.csv")
        if not args.class_dir.is_dir():
            raise ValueError(f"--class must be a folder of submissions, got {args.class_dir}")
        if not args.timeout > 0 or args.timeout == float("inf"):
            raise ValueError(f"--timeout must be a positive number of seconds, got {args.timeout}")
        if args.jobs is not None and args.jobs < 1:
            raise ValueError(f"--jobs must be at least 1, got {args.jobs}")
        root = Path(__file__).resolve().parents[1]  # the instructor's copy, never the cwd
        out = args.out.resolve()
        if args.class_dir.resolve() in (out.parent, *out.parent.parents):
            raise ValueError("--out must not be inside the submissions folder")
        return grade_class(
            chapter, args.class_dir.resolve(), out, root=root, timeout=args.timeout, jobs=args.jobs
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    """The command line, ``python -m attnkit.grade CHAPTER [--target ...] [--file ...]``.

    Returns the exit status: 0 if everything passed, 1 if something failed (or the file
    has a syntax error), 2 for a usage error (no such chapter,
    an unreadable file, a bad option).
    """
    parser = argparse.ArgumentParser(
        prog="python -m attnkit.grade",
        description="Grade the exercises of one chapter of the book.",
    )
    parser.add_argument("chapter", help="chapter number, e.g. 01")
    parser.add_argument(
        "--target",
        choices=["exercises", "solutions"],
        default="exercises",
        help="which folder's file to grade (default: exercises, your work)",
    )
    parser.add_argument("--file", type=Path, help="grade this .py/.ipynb file instead")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per test or cell")
    parser.add_argument("--skip-notebook", action="store_true", help="only run the tests")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    _add_class_options(parser)
    args = parser.parse_args(argv)
    if args.class_dir is not None:
        return _grade_class(args)

    try:
        chapter = _chapter_id(args.chapter)
        if args.timeout <= 0:
            raise ValueError(f"--timeout must be positive, got {args.timeout}.")
        root = repo_root()
        test_files = sorted((root / "tests" / "grading").glob(f"test_{chapter}_*.py"))
        if not test_files:
            have = sorted(p.name[5:7] for p in (root / "tests" / "grading").glob("test_*_*.py"))
            raise ValueError(f"no graded exercises for chapter {chapter}; chapters: {have}.")
        learner = args.file.resolve() if args.file else newest_file(root / args.target, chapter)
        if args.json is not None and args.json.resolve() == learner:
            raise ValueError("--json must not point at the file being graded.")
    except (ValueError, LearnerFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    print(f"Grading chapter {chapter}: {learner}")
    try:
        ast.parse(source_of(learner), filename=str(learner))
    except LearnerFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SyntaxError as exc:
        print(
            f"\nYour file has a syntax error at line {exc.lineno}: {exc.msg}\n"
            f"    {(exc.text or '').rstrip()}\nFix it and grade again. Score: 0%"
        )
        if args.json:
            args.json.write_text(json.dumps({"syntax_error": str(exc)}))
        return 1

    # The tests and the notebook run in two processes at the same time (independent).
    expected = sorted((root / "tests" / "grading" / "expected").glob(f"{chapter}_*.json"))
    with ThreadPoolExecutor(max_workers=2) as pool:
        tests_job = pool.submit(grade_tests, test_files[0], learner, root, args.timeout)
        notebook_job = None
        if not args.skip_notebook and expected:
            notebook_job = pool.submit(grade_notebook, learner, expected[0], root, args.timeout)
        records = tests_job.result()
        notebook = None if notebook_job is None else notebook_job.result()
    tests = summarize(records)
    print_report(learner, tests, notebook)
    if args.json:
        args.json.write_text(
            json.dumps({"learner": str(learner), "tests": records, "notebook": notebook}, indent=1)
        )
    all_ok = all(r["status"] == "passed" for r in records)
    if notebook is not None:
        all_ok = all_ok and all(r["status"] == "passed" for r in notebook["records"])
        all_ok = all_ok and notebook["checks_matched"] == notebook["checks_expected"]
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""The grading pattern itself: the learner's command, the loader and the exercise tool.

These prove what CI must prove for every chapter: each solution passes, each untouched
exercise fails *every* one of its tests (no vacuous test), grading never writes to the
learner's files, and broken learner code (syntax error, infinite loop) is reported.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from attnkit.grading.loader import LearnerFileError, load_definitions, newest_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from make_exercises import ExerciseError, coalesce_streams, strip_solutions  # noqa: E402

CHAPTERS = sorted({p.name[5:7] for p in (ROOT / "tests" / "grading").glob("test_[0-9][0-9]_*.py")})


def grade(*args: str, timeout: float = 600) -> tuple[int, str, dict]:
    """Run ``python -m attnkit.grade`` as a learner would; return (exit code, output, json)."""
    out = ROOT / "_build" / "grader-test" / f"{time.monotonic_ns()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    progress = out.with_suffix(".progress.json")  # never the learner's own progress file
    done = subprocess.run(
        [sys.executable, "-m", "attnkit.grade", *args, "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "ATTNKIT_PROGRESS_FILE": str(progress), "ATTNKIT_GRADE_LANG": "en"},
    )
    data = json.loads(out.read_text()) if out.exists() else {}
    return done.returncode, done.stdout + done.stderr, data


@functools.cache
def grade_solution(chapter: str) -> tuple[int, str, dict]:
    """The full grading of a chapter's solution, shared by the tests that inspect it."""
    return grade(chapter, "--target", "solutions")


def digest(folder: Path) -> dict[str, tuple[str, int]]:
    return {
        p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(folder.iterdir())
        if p.is_file()
    }


def solution_source(chapter: str) -> str:
    return next((ROOT / "solutions").glob(f"{chapter}_*.py")).read_text(encoding="utf-8")


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_solution_gets_full_score(chapter):
    code, out, data = grade_solution(chapter)
    assert code == 0, out
    assert data["tests"] and all(r["status"] == "passed" for r in data["tests"]), out
    nb = data["notebook"]
    assert nb["checks_expected"] > 0 and nb["checks_matched"] == nb["checks_expected"], out
    assert all(r["status"] == "passed" for r in nb["records"]), out


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_untouched_exercise_fails_every_test_and_is_not_modified(chapter):
    before = digest(ROOT / "exercises")
    code, out, data = grade(chapter)
    assert code == 1, out
    statuses = {r["nodeid"]: r["status"] for r in data["tests"]}
    vacuous = [n for n, s in statuses.items() if s == "passed"]
    assert not vacuous, f"these tests pass on the untouched exercise: {vacuous}"
    assert set(statuses.values()) == {"not attempted"}, out
    checks = [r for r in data["notebook"]["records"] if r["kind"] == "check-cell"]
    assert checks and all(r["status"] != "passed" for r in checks), out
    assert digest(ROOT / "exercises") == before, "grading modified the learner's files"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_exercise_has_graded_tests_and_a_check_cell(chapter):
    _, _, data = grade_solution(chapter)
    graded = {r["exercise"] for r in data["tests"]}
    source = solution_source(chapter)
    assert source.count("# BEGIN SOLUTION") == len(graded), (
        "one graded exercise per solution region"
    )
    expected = json.loads(
        next((ROOT / "tests/grading/expected").glob(f"{chapter}_*.json")).read_text()
    )
    assert len(expected["checks"]) >= len(graded)


def test_partial_work_is_graded_per_exercise(tmp_path):
    learner = tmp_path / "01_mine.py"
    wrong = solution_source("01").replace(
        "    return k_pos <= q_pos\n", "    return k_pos >= q_pos  # bug: upper triangle\n"
    )
    assert wrong != solution_source("01")
    learner.write_text(wrong)
    code, out, data = grade("01", "--file", str(learner), "--skip-notebook")
    assert code == 1
    by_ex: dict[str, set[str]] = {}
    for r in data["tests"]:
        by_ex.setdefault(r["exercise"], set()).add(r["status"])
    assert "failed" in by_ex.pop("causal_mask"), out  # (n = 1 is the same either way)
    assert all(s == {"passed"} for s in by_ex.values()), out
    assert "causal_mask" in out and "failed" in out


def test_wrong_output_in_a_check_cell_is_reported(tmp_path):
    learner = tmp_path / "01_mine.py"
    learner.write_text(
        solution_source("01").replace(
            "print(causal_mask(4).int())", "print(causal_mask(4).int())\nprint('extra')"
        )
    )
    code, out, data = grade("01", "--file", str(learner))
    assert code == 1
    checks = [r for r in data["notebook"]["records"] if r["kind"] == "check-cell"]
    assert [r["status"] for r in checks].count("passed") == len(checks) - 1, out
    assert "changed or removed" in out  # the edited check cell has no expected output


def test_syntax_error_is_a_clear_message_not_a_crash(tmp_path):
    learner = tmp_path / "01_mine.py"
    learner.write_text("import torch\n\ndef causal_mask(n_q, n_k=None):\n    return (\n")
    before = learner.read_bytes()
    code, out, _ = grade("01", "--file", str(learner))
    assert code == 1
    assert "syntax error at line" in out and "Traceback" not in out, out
    assert learner.read_bytes() == before


def test_infinite_loop_times_out_and_the_rest_is_graded(tmp_path):
    learner = tmp_path / "01_mine.py"
    source = solution_source("01")
    looping = source.replace(
        "    if max_len is None:\n        max_len = int(lengths.max())",
        "    while True:\n        pass\n"
        "    if max_len is None:\n        max_len = int(lengths.max())",
    )
    assert looping != source
    learner.write_text(looping)
    start = time.monotonic()
    code, out, data = grade("01", "--file", str(learner), "--timeout", "2", "--skip-notebook")
    assert time.monotonic() - start < 120
    assert code == 1
    for r in data["tests"]:
        want = "timed out" if r["exercise"] == "padding_mask" else "passed"
        assert r["status"] == want, (r, out)


def test_collected_items_are_recorded_with_their_exercise(tmp_path):
    """The grading run records what it collected (so that tests a killed run never reached
    are reported as timed out, and the total time limit counts every test)."""
    listing = tmp_path / "collected.json"
    env = {**os.environ, "ATTNKIT_LEARNER_FILE": str(next((ROOT / "solutions").glob("01_*.py")))}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "attnkit.grading.plugin", "-p", "no:cacheprovider",
         "--collect-only", "-q", f"--attnkit-collected={listing}", "tests/grading"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    items = json.loads(listing.read_text())
    reported = [ln for ln in done.stdout.splitlines() if "::" in ln]
    assert [nodeid for nodeid, _ in items] == reported
    files = {nodeid.split("::")[0] for nodeid, _ in items}
    assert len(files) == len(CHAPTERS)
    # every grading test names its exercise (not just the test function's name)
    assert not [nodeid for nodeid, exercise in items if exercise.startswith("test_")]


def test_usage_errors_exit_2():
    assert grade("99")[0] == 2
    assert grade("xx")[0] == 2
    assert grade("01", "--timeout", "0")[0] == 2


# ------------------------------------------------------------------------- the loader
def test_loader_runs_definitions_only(tmp_path):
    path = tmp_path / "01_x.py"
    path.write_text(
        "import math\nLIMIT = 3\nlowercase = 1 / 0\n"
        "def f(x):\n    return math.sqrt(x) + LIMIT\n"
        "raise RuntimeError('a demo cell must not run')\n"
        "class C:\n    pass\n"
    )
    module = load_definitions(path)
    assert module.f(4.0) == 5.0 and module.LIMIT == 3 and hasattr(module, "C")
    assert not hasattr(module, "lowercase")


def test_loader_reads_notebooks_and_skips_magics(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# title"),
        nbformat.v4.new_code_cell("%matplotlib inline\nimport math"),
        nbformat.v4.new_code_cell("def g():\n    return math.pi"),
        nbformat.v4.new_code_cell("g() / 0"),
    ]
    path = tmp_path / "01_x.ipynb"
    nbformat.write(nb, path)
    assert abs(load_definitions(path).g() - 3.14159) < 1e-4


def test_loader_reports_syntax_errors_with_line(tmp_path):
    path = tmp_path / "01_x.py"
    path.write_text("x = 1\ndef f(:\n    pass\n")
    with pytest.raises(LearnerFileError, match="line 2"):
        load_definitions(path)


def test_newest_of_the_pair_is_graded(tmp_path):
    py, ipynb = tmp_path / "01_a.py", tmp_path / "01_a.ipynb"
    py.write_text("")
    ipynb.write_text("{}")
    os.utime(py, (1, 1))
    os.utime(ipynb, (2, 2))
    assert newest_file(tmp_path, "01") == ipynb
    os.utime(py, (3, 3))
    assert newest_file(tmp_path, "01") == py
    with pytest.raises(LearnerFileError, match="No file for chapter 02"):
        newest_file(tmp_path, "02")


# ---------------------------------------------------------------- the exercise tool
def test_strip_solutions_keeps_indentation_and_the_rest():
    src = (
        "def f(x):\n    y = 1\n    # BEGIN SOLUTION\n    return x + y\n    # END SOLUTION\n"
        "\nz = 2\n"
    )
    out = strip_solutions(src, "t")
    assert out == (
        "def f(x):\n    y = 1\n"
        '    raise NotImplementedError("Exercise: replace this line with your code.")\n'
        "\nz = 2\n"
    )


@pytest.mark.parametrize(
    "src,problem",
    [
        ("# BEGIN SOLUTION\nx = 1\n", "never closed"),
        ("x = 1\n# END SOLUTION\n", "without BEGIN"),
        ("# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION\n", "inside another"),
    ],
)
def test_strip_solutions_rejects_unbalanced_markers(src, problem):
    with pytest.raises(ExerciseError, match=problem):
        strip_solutions(src, "t")


def test_coalesce_streams_merges_split_prints():
    import nbformat

    outs = [
        nbformat.v4.new_output("stream", name="stdout", text="a\n"),
        nbformat.v4.new_output("stream", name="stdout", text="b\n"),
        nbformat.v4.new_output("stream", name="stderr", text="c\n"),
    ]
    merged = coalesce_streams(outs)
    assert [(o.name, o.text) for o in merged] == [("stdout", "a\nb\n"), ("stderr", "c\n")]

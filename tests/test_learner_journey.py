"""A learner's first session, end to end, on a fresh clone of the repository.

Clone the book, grade the untouched chapter 1 exercises (score 0), write
``attention_scores`` the way the seed text would (no scaling: wrong, the grader says so),
fix it with the $1/\\sqrt{d_k}$ factor, grade again: that exercise passes, the score goes
up, the other exercises are still "not attempted". Grading never writes to the learner's
files, and leaves nothing else behind in the clone's tracked files.

The clone is of the committed ``HEAD`` (as a learner would get it); the project's
environment is reused (installing it again would take minutes), with ``PYTHONPATH``
pointing at the clone so that its own ``attnkit`` and graders are used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXERCISE = "exercises/01_scaled_dot_product_attention.py"

# What a learner types into the body of attention_scores(q, k, scale=None).
UNSCALED = "    return q @ k.transpose(-2, -1)\n"
SCALED = (
    "    if scale is None:\n"
    "        scale = q.shape[-1] ** -0.5\n"
    "    return (q @ k.transpose(-2, -1)) * scale\n"
)


def fill_first_exercise(path: Path, body: str) -> None:
    """Write ``body`` as the body of ``attention_scores`` (the file's first exercise).

    Everything between the docstring line and the next cell marker is replaced, so this
    works on the untouched file and on an earlier attempt alike.
    """
    text = path.read_text(encoding="utf-8")
    start = text.index("def attention_scores(")
    docstring_end = text.index('"""\n', text.index('"""', start) + 3) + 4
    cell_end = text.index("\n\n\n# %%", docstring_end)
    path.write_text(text[:docstring_end] + body + text[cell_end:], encoding="utf-8")


def fingerprint(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("the learner journey clones the repository: needs git and a git checkout")
    target = tmp_path_factory.mktemp("learner") / "book"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(target)], check=True)
    return target


def grade(clone: Path, tmp: Path, name: str) -> tuple[int, str, dict]:
    """``python -m attnkit.grade 01`` run inside the clone, as the README tells a learner."""
    report = tmp / f"{name}.json"
    env = {**os.environ, "PYTHONPATH": str(clone)}
    done = subprocess.run(
        [sys.executable, "-m", "attnkit.grade", "01", "--json", str(report)],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done.returncode, done.stdout + done.stderr, json.loads(report.read_text())


def per_exercise(result: dict) -> dict[str, set[str]]:
    statuses: dict[str, set[str]] = {}
    for record in result["tests"]:
        statuses.setdefault(record["exercise"], set()).add(record["status"])
    return statuses


def passed(result: dict) -> int:
    return sum(record["status"] == "passed" for record in result["tests"])


def tracked_changes(clone: Path) -> list[str]:
    out = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=clone,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted(line[3:] for line in out.splitlines())


def test_fill_one_function_and_watch_the_score_change(clone, tmp_path):
    learner = clone / EXERCISE
    twin = learner.with_suffix(".ipynb")

    # 1. Untouched: every test fails as "not attempted", score 0 %.
    code, output, first = grade(clone, tmp_path, "untouched")
    assert code == 1 and "Score: 0%" in output, output
    assert per_exercise(first)["attention_scores"] == {"not attempted"}
    assert passed(first) == 0

    # 2. The seed's formula: scores without the 1/sqrt(d_k) factor. Graded as wrong.
    fill_first_exercise(learner, UNSCALED)
    os.utime(learner)  # the newest file of the .py/.ipynb pair is the one graded
    before = fingerprint(learner), fingerprint(twin)
    code, output, second = grade(clone, tmp_path, "unscaled")
    assert (fingerprint(learner), fingerprint(twin)) == before, "grading touched the files"
    assert code == 1
    # The default-scale tests fail; only an explicit scale=1.0 could pass.
    assert "failed" in per_exercise(second)["attention_scores"], output
    assert "attention_scores" in output and "failed" in output

    # 3. Fixed: the exercise passes, the score rises, the rest is still not attempted.
    fill_first_exercise(learner, SCALED)
    os.utime(learner)
    before = fingerprint(learner), fingerprint(twin)
    code, output, third = grade(clone, tmp_path, "scaled")
    assert (fingerprint(learner), fingerprint(twin)) == before, "grading touched the files"
    statuses = per_exercise(third)
    assert statuses["attention_scores"] == {"passed"}, output
    assert all(s == {"not attempted"} for name, s in statuses.items() if name != "attention_scores")
    assert passed(third) > passed(second) >= passed(first) == 0
    # The score counts the tests, the check cells and "the notebook runs to its end".
    score = third["score"]
    assert score["passed"] > passed(third) and not score["complete"]
    assert score["percent"] == 100 * score["passed"] // score["total"] > 0
    assert f"Score: {score['percent']}%" in output, output

    # The learner's edit is the only change to the clone's tracked files.
    assert tracked_changes(clone) == [EXERCISE]

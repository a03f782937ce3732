"""The book's rules of evidence, checked on the chapters' source.

- A training run is defined by its steps, data and seed: no chapter passes a wall-clock
  budget (``max_seconds``) to a training function; ``attnkit.train`` only raises when a
  guard is exceeded (tests/test_training.py).
- No assert on an absolute wall-clock time: a slower or busier machine must build the same
  book, only more slowly.
- Every chapter checks the claims of its text: it has asserts (or glued values), and every
  assert has a message, so that a build whose results no longer support the text stops
  with the claim that failed (``claim no longer holds: '...' (measured ...)``).
- Every chapter runs torch with one thread, so that its numbers do not depend on the
  machine's cores or load (tools/execute_chapters.py runs chapters side by side).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
TIME_WORDS = re.compile(r"(seconds|elapsed|_ms\b|_s\b|wall|perf_counter|time\.time)", re.I)


def test_chapters_found():
    assert len(CHAPTERS) >= 16, [p.name for p in CHAPTERS]


def _tree(path: Path) -> ast.Module:
    # Percent-format notebooks are Python files whose markdown cells are comments.
    source = path.read_text(encoding="utf-8")
    source = re.sub(r"^(\s*)[%!].*$", r"\1pass", source, flags=re.M)  # magics
    return ast.parse(source)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_no_wall_clock_budget_shortens_a_run(path):
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.keyword) and node.arg == "max_seconds":
            value = node.value
            assert isinstance(value, ast.Constant) and value.value is None, (
                f"{path.name}:{node.value.lineno}: max_seconds passed to a run; a run is "
                "defined by its steps, data and seed"
            )


def _absolute_time_bound(test: ast.expr) -> bool:
    """True if ``test`` compares a time-like name with a number literal."""
    for node in ast.walk(test):
        if not isinstance(node, ast.Compare):
            continue
        sides = [node.left, *node.comparators]
        timed = any(TIME_WORDS.search(ast.unparse(s)) for s in sides)
        literal = any(
            isinstance(s, ast.Constant) and isinstance(s.value, int | float) for s in sides
        )
        if timed and literal:
            return True
    return False


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_no_assert_on_an_absolute_wall_time(path):
    bad = [
        f"{path.name}:{node.lineno}: {ast.unparse(node.test)}"
        for node in ast.walk(_tree(path))
        if isinstance(node, ast.Assert) and _absolute_time_bound(node.test)
    ]
    assert not bad, "asserts on a wall-clock time fail on a slow or busy machine:\n" + "\n".join(
        bad
    )


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_checks_its_claims(path):
    tree = _tree(path)
    asserts = sum(isinstance(node, ast.Assert) for node in ast.walk(tree))
    glued = sum(
        isinstance(node, ast.Call) and getattr(node.func, "id", None) == "glue"
        for node in ast.walk(tree)
    )
    assert asserts + glued >= 5, f"{path.name}: {asserts} asserts, {glued} glued values"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_assert_names_what_it_checks(path):
    bare = [
        f"{path.name}:{node.lineno}: assert {ast.unparse(node.test)}"
        for node in ast.walk(_tree(path))
        if isinstance(node, ast.Assert) and node.msg is None
    ]
    assert not bare, "asserts without a message naming the claim they check:\n" + "\n".join(bare)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_runs_torch_with_one_thread(path):
    calls = [
        node
        for node in ast.walk(_tree(path))
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.set_num_threads"
    ]
    assert calls, f"{path.name} does not set torch's threads"
    first = min(calls, key=lambda node: node.lineno)
    assert ast.unparse(first.args[0]) == "1", f"{path.name}: first call is {ast.unparse(first)}"

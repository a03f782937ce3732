"""What the repository says about its graded chapters: test files and exercise names."""

from __future__ import annotations

import ast
from pathlib import Path


def _is_exercise_mark(node: ast.expr, aliases: set[str]) -> bool:
    """``pytest.mark.exercise`` (any prefix), or a name bound to it (``ex = ...``)."""
    if isinstance(node, ast.Attribute):
        return node.attr == "exercise" and isinstance(node.value, ast.Attribute)
    return isinstance(node, ast.Name) and node.id in aliases


def grading_test_files(root: Path) -> dict[str, Path]:
    """``{"01": tests/grading/test_01_....py, ...}`` for every graded chapter."""
    files = sorted((root / "tests" / "grading").glob("test_[0-9][0-9]_*.py"))
    return {p.name[5:7]: p for p in files}


def chapter_exercises(test_file: Path) -> list[str]:
    """The exercises a grading test file grades (its ``@pytest.mark.exercise`` names),
    in order of first appearance."""
    tree = ast.parse(test_file.read_text(encoding="utf-8"))
    aliases = {
        target.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and _is_exercise_mark(node.value, set())
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    names = [
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and _is_exercise_mark(node.func, aliases)
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ]
    return list(dict.fromkeys(names))


def all_exercises(root: Path) -> dict[str, list[str]]:
    """``{chapter: [exercise, ...]}`` for every graded chapter."""
    return {chapter: chapter_exercises(path) for chapter, path in grading_test_files(root).items()}

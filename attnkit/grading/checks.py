"""The grader's checks of its input, before anything runs: each refusal is a
:class:`UsageError` (exit status 2) whose message says what to do.

The chapter and the numbers of the command line; the learner's file (a folder, a missing
file, a wrong suffix, a file of another chapter by its name or its content, text that is
not UTF-8, JSON that is not a notebook); the ``--json`` path (never a learner or source
file); and two facts printed with the report: whether the ``.py`` and ``.ipynb`` of the
pair hold different code, and which test file (path, git commit) grades the chapter.
"""

from __future__ import annotations

import ast
import contextlib
import json
import math
import subprocess
from pathlib import Path

from .loader import LearnerFileError, source_of
from .messages import t

# Folders of the repository that hold the book's sources: --json may never write there.
SOURCE_FOLDERS = (
    ".ci",
    ".git",
    "attnkit",
    "book",
    "exercises",
    "notebooks",
    "solutions",
    "tests",
    "tools",
)


class UsageError(Exception):
    """A usage error (exit status 2); the message says what to do."""


def chapter_id(text: str) -> str:
    if not text.isdigit():
        raise UsageError(t("usage.chapter", got=text))
    return f"{int(text):02d}"


def seconds(value: float, option: str) -> float:
    if not (math.isfinite(value) and value > 0):
        raise UsageError(t("usage.positive", option=option, got=value))
    return value


def _twin(path: Path) -> Path:
    return path.with_suffix(".ipynb" if path.suffix == ".py" else ".py")


def check_learner_file(path: Path, chapter: str, exercises: dict[str, list[str]]) -> None:
    """Refuse what cannot be graded as chapter ``chapter``: a folder, a missing file, a
    wrong suffix, a file of another chapter, an unreadable text or notebook."""
    if path.is_dir():
        found = sorted(p.name for p in path.glob(f"{chapter}_*") if p.suffix in (".py", ".ipynb"))
        raise UsageError(t("usage.file_is_folder", path=path, found=", ".join(found) or "-"))
    if not path.is_file():
        raise UsageError(t("usage.file_missing", path=path))
    if path.suffix not in (".py", ".ipynb"):
        raise UsageError(t("usage.file_suffix", path=path))
    prefix = path.name[:2]
    if path.name[2:3] == "_" and prefix.isdigit() and prefix != chapter and prefix in exercises:
        raise UsageError(t("usage.other_chapter", path=path.name, other=prefix, chapter=chapter))
    try:
        source = source_of(path)
    except LearnerFileError as exc:
        raise UsageError(str(exc)) from None
    if path.suffix == ".ipynb":
        _check_notebook_format(path)
    defined = _defined_names(source)
    if defined is not None and not defined & set(exercises.get(chapter, [])):
        others = [c for c, names in exercises.items() if c != chapter and defined & set(names)]
        if others:
            raise UsageError(
                t("usage.defines_other", path=path.name, other=others[0], chapter=chapter)
            )


def _defined_names(source: str) -> set[str] | None:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None  # reported (with its line) when grading starts
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return {node.name for node in tree.body if isinstance(node, kinds)}


def _check_notebook_format(path: Path) -> None:
    """Refuse a JSON file that is not a version-4 notebook (nbformat alone would read a
    dict with only ``cells`` as an nbformat-1 notebook and convert it)."""
    import nbformat

    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        keys = ("cells", "metadata", "nbformat", "nbformat_minor")
        missing = [k for k in keys if not isinstance(raw, dict) or k not in raw]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        nbformat.validate(nbformat.reads(json.dumps(raw), as_version=4))
    except Exception as exc:  # nbformat raises several kinds; all mean "not a notebook"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(t("usage.bad_notebook", path=path, error=first[:200])) from None


def check_json_path(path: Path, root: Path, learner: Path) -> Path:
    """``--json``'s path, resolved, or a :class:`UsageError` if writing it could destroy
    work: the graded file or its twin, any ``.py``/``.ipynb``, a file of the book's sources
    (inside a source folder, or tracked by git), a folder; or its folder does not exist."""
    path = path.expanduser().resolve()
    if path in (learner, _twin(learner)) or path.suffix in (".py", ".ipynb"):
        raise UsageError(t("usage.json_learner", path=path))
    inside = [f for f in SOURCE_FOLDERS if path.is_relative_to(root / f)]
    if inside or path == root or tracked_by_git(root, path):
        raise UsageError(t("usage.json_source", path=path))
    if path.is_dir():
        raise UsageError(t("usage.json_folder", path=path))
    if not path.parent.is_dir():
        raise UsageError(t("usage.json_no_folder", path=path, folder=path.parent))
    return path


def tracked_by_git(root: Path, path: Path) -> bool:
    if not (path.exists() and path.is_relative_to(root) and (root / ".git").exists()):
        return False
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            ["git", "ls-files", "--error-unmatch", str(path)],
            cwd=root,
            capture_output=True,
            timeout=30,
        )
        return done.returncode == 0
    return False


def pair_warning(learner: Path) -> str | None:
    """A warning when the learner's ``.py`` and ``.ipynb`` hold different code: the one
    graded (the newer, or ``--file``'s) is named, so work in the other is not lost."""
    twin = _twin(learner)
    if not twin.is_file():
        return None
    try:
        mine, other = _code_cells(learner), _code_cells(twin)
    except Exception:  # the twin is unreadable: it is not graded either way
        return None
    if mine == other:
        return None
    newer = learner if learner.stat().st_mtime_ns >= twin.stat().st_mtime_ns else twin
    return t("warn.pair_differs", graded=learner.name, other=twin.name, newer=newer.name)


def _code_cells(path: Path) -> list[str]:
    import jupytext

    nb = jupytext.read(path)
    cells = [c.source.strip() for c in nb.cells if c.cell_type == "code"]
    return [c for c in cells if c]


def test_file_identity(root: Path, test_file: Path) -> dict:
    """The grading test file: its path, the git commit it was last changed in, and
    whether it differs from that commit (``commit`` is ``None`` outside git)."""
    rel = test_file.relative_to(root).as_posix()
    commit, modified = None, None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        log = subprocess.run(
            ["git", "log", "-1", "--format=%h %cs", "--", rel],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=30,
        )
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", rel],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if log.returncode == 0 and log.stdout.strip():
            commit = log.stdout.strip()
            modified = bool(status.stdout.strip())
    return {"path": rel, "commit": commit, "modified": modified}

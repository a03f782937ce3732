"""Load a learner's exercise file for grading: definitions only, never the demo cells.

An exercise exists twice, as a jupytext pair: ``NN_name.py`` (percent format) and
``NN_name.ipynb``. The learner may edit either; the grader takes whichever was modified
last. Only ``import`` statements, ``def`` and ``class`` statements and assignments to
UPPER_CASE constants are executed, so cells that plot, train or call unfinished
functions cannot break (or slow down) grading. Nothing is ever written to the file.
"""

from __future__ import annotations

import ast
import json
import re
import types
from pathlib import Path

from .messages import t

_KEPT = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_CONSTANT = re.compile(r"^[A-Z][A-Z0-9_]*$")
_MAGIC = re.compile(r"^\s*[%!]")


class LearnerFileError(Exception):
    """The learner's file cannot be read, parsed or executed; the message says why."""


def repo_root(start: Path | None = None) -> Path:
    """The book's repository root: the nearest folder up from ``start`` (default: the
    working directory, then this package) holding ``_toc.yml`` and ``tests/grading``."""
    candidates = [Path.cwd() if start is None else Path(start)]
    candidates.append(Path(__file__).resolve().parents[2])
    for base in candidates:
        for folder in (base.resolve(), *base.resolve().parents):
            if (folder / "_toc.yml").is_file() and (folder / "tests" / "grading").is_dir():
                return folder
    raise LearnerFileError(t("load.no_repo"))


def chapter_files(folder: Path, chapter: str) -> list[Path]:
    """The ``.py``/``.ipynb`` files of chapter ``chapter`` (e.g. ``"01"``) in ``folder``."""
    return sorted(
        p for p in folder.glob(f"{chapter}_*") if p.suffix in (".py", ".ipynb") and p.is_file()
    )


def newest_file(folder: Path, chapter: str) -> Path:
    """The most recently modified of the chapter's ``.py`` and ``.ipynb`` in ``folder``.

    On equal modification times the ``.py`` file wins (it is the text a diff shows).
    """
    files = chapter_files(folder, chapter)
    if not files:
        raise LearnerFileError(t("load.no_file", chapter=chapter, folder=folder))
    return max(files, key=lambda p: (p.stat().st_mtime_ns, p.suffix == ".py"))


def notebook_code(path: Path) -> str:
    """The code of an ``.ipynb`` file: its code cells joined, IPython magics commented out."""
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
        cells = nb["cells"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LearnerFileError(t("load.bad_notebook", path=path, error=exc)) from None
    chunks = []
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        lines = ["# " + ln if _MAGIC.match(ln) else ln for ln in source.splitlines()]
        chunks.append("\n".join(lines))
    return "\n\n".join(chunks) + "\n"


def source_of(path: Path) -> str:
    """The Python source of a learner file (``.py`` read as is, ``.ipynb`` code cells)."""
    path = Path(path)
    if not path.is_file():
        raise LearnerFileError(t("usage.file_missing", path=path))
    if path.suffix == ".ipynb":
        return notebook_code(path)
    if path.suffix == ".py":
        try:
            return path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise LearnerFileError(t("load.not_utf8", path=path, position=exc.start)) from None
    raise LearnerFileError(t("usage.file_suffix", path=path))


def _is_definition(node: ast.stmt) -> bool:
    if isinstance(node, _KEPT):
        return True
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return all(isinstance(t, ast.Name) and _CONSTANT.match(t.id) for t in targets)
    return False


def skipped_names(source: str) -> dict[str, int]:
    """Top-level names that the loader does *not* define, with the line that sets them:
    lowercase assignments (and ``for``/``with`` targets) outside functions and classes."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    names: dict[str, int] = {}
    for node in tree.body:
        if _is_definition(node):
            continue
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.For, ast.AsyncFor)):
            targets = [node.target]
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            targets = [item.optional_vars for item in node.items if item.optional_vars]
        for target in targets:
            for sub in ast.walk(target):
                if isinstance(sub, ast.Name):
                    names.setdefault(sub.id, node.lineno)
    return names


def load_definitions(path: str | Path, module_name: str = "learner") -> types.ModuleType:
    """Execute only the definitions of a learner file and return them as a module.

    Raises:
        LearnerFileError: the file is missing, has a syntax error, or a definition fails
            to execute (for example an import of a package that is not installed).
    """
    path = Path(path)
    source = source_of(path)
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        where = t("load.where", line=exc.lineno, column=exc.offset or "?")
        text = f"\n    {exc.text.rstrip()}" if exc.text else ""
        hint = t("load.cells_only") if path.suffix == ".ipynb" else ""
        raise LearnerFileError(
            t("load.syntax", name=path.name, where=where, hint=hint, msg=exc.msg, text=text)
        ) from None
    tree.body = [node for node in tree.body if _is_definition(node)]
    module = types.ModuleType(module_name)
    module.__file__ = str(path)
    try:
        exec(compile(tree, str(path), "exec"), module.__dict__)
    except Exception as exc:
        raise LearnerFileError(
            t("load.failed", name=path.name, error=f"{type(exc).__name__}: {exc}")
        ) from None
    return module

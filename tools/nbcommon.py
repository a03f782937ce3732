"""Shared helpers for the notebook tools: jupytext pairs, stripping, stable cell ids."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parents[1]
PAIR_DIRS = ("notebooks", "solutions", "exercises")
PY_FORMAT = "py:percent"
CHECK_MARK = "NBVAL_CHECK_OUTPUT"


def pair_sources(folder: str) -> list[Path]:
    """The ``.py`` halves of the jupytext pairs in ``ROOT/folder``."""
    return sorted((ROOT / folder).glob("[0-9][0-9]_*.py"))


def stable_ids(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Give cells ids derived from their position and content (jupytext draws random ones),
    so that the same source always produces the same .ipynb bytes."""
    for i, cell in enumerate(nb.cells):
        digest = hashlib.sha1(f"{i}\0{cell.cell_type}\0{cell.source}".encode()).hexdigest()
        cell["id"] = digest[:8]
    return nb


def strip_outputs(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Remove every output, execution count and execution timing from ``nb``."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
    return nb


def ipynb_text(nb: nbformat.NotebookNode) -> str:
    """The .ipynb serialisation used for every committed notebook."""
    return jupytext.writes(stable_ids(nb), fmt="ipynb")


def py_text(nb: nbformat.NotebookNode) -> str:
    """The jupytext percent serialisation used for every committed .py notebook."""
    return jupytext.writes(nb, fmt=PY_FORMAT)


def cells_signature(nb: nbformat.NotebookNode) -> list[tuple[str, str, tuple[str, ...]]]:
    """What must agree between the two files of a pair: cell types, sources and tags."""
    return [(c.cell_type, c.source.strip(), tuple(c.metadata.get("tags", ()))) for c in nb.cells]


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def cores() -> int:
    """CPU cores this process may use (its CPU affinity; all of them where the OS cannot say)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1

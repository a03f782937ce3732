"""Do not run a chapter twice in one CI run.

``tools/build_book.sh`` executes every chapter and stores the successful executions in the
book's jupyter-cache (``_build/.jupyter_cache``, keyed by the notebook's code). When the
tests then find a chapter there, executed *after* the last change to ``attnkit`` and to
the notebook itself, running it again under nbval would only repeat the same work: its
cells are deselected and the summary says so. Without a fresh book build (or with
``ATTNKIT_RERUN_NOTEBOOKS=1``) every chapter is executed here, cell by cell, as usual.
"""

from __future__ import annotations

import os
from datetime import timezone
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "_build" / ".jupyter_cache"
_validated: list[str] = []


def _newest_source_mtime(notebook: Path) -> float:
    sources = [notebook, *(ROOT / "attnkit").rglob("*.py")]
    return max(p.stat().st_mtime for p in sources)


def _executed_by_book_build(notebook: Path) -> bool:
    """True if the book's cache holds a successful run of this notebook's current code,
    made after the notebook and every attnkit source file last changed."""
    if os.environ.get("ATTNKIT_RERUN_NOTEBOOKS") == "1" or not CACHE.is_dir():
        return False
    try:
        import nbformat
        from jupyter_cache import get_cache
    except ImportError:
        return False
    try:
        record = get_cache(str(CACHE)).match_cache_notebook(nbformat.read(notebook, as_version=4))
    except KeyError:  # no successful execution of this code
        return False
    created = record.created.replace(tzinfo=timezone.utc).timestamp()
    return created > _newest_source_mtime(notebook)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep, skip = [], []
    verdicts: dict[Path, bool] = {}
    for item in items:
        path = Path(str(item.fspath))
        if path.suffix != ".ipynb" or path.parent != ROOT / "notebooks":
            keep.append(item)
            continue
        if path not in verdicts:
            verdicts[path] = _executed_by_book_build(path)
            if verdicts[path]:
                _validated.append(path.name)
        (skip if verdicts[path] else keep).append(item)
    if skip:
        config.hook.pytest_deselected(items=skip)
        items[:] = keep


def pytest_terminal_summary(terminalreporter) -> None:
    if _validated:
        terminalreporter.write_line(
            "notebooks executed without error by the book build after their last change "
            f"(jupyter-cache), not run again: {', '.join(sorted(_validated))}"
        )

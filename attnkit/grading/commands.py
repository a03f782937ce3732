"""The learner's commands besides grading: ``--hint``, ``--progress`` and ``--reset``.

Hints come from ``solutions/NN_slug.hints.toml`` (:mod:`attnkit.grading.hints`), the
count of hints seen and the gradings from the progress file
(:mod:`attnkit.grading.progress`). A progress file that cannot be read is reported and
left alone: a hint is still shown, and nothing is recorded.
"""

from __future__ import annotations

import sys
import unicodedata
from pathlib import Path

from . import hints as hints_mod
from . import progress
from .chapters import all_exercises, chapter_exercises, grading_test_files
from .checks import UsageError
from .messages import current_lang, t


def pad(text: str, width: int, right: bool = False) -> str:
    """``text`` padded to ``width`` terminal columns (a Chinese character takes two)."""
    wide = sum(unicodedata.east_asian_width(c) in "WF" for c in text)
    fill = " " * max(width - len(text) - wide, 0)
    return fill + text if right else text + fill


def show_hint(root: Path, chapter: str, exercise: str, store: Path) -> int:
    """Print the next hint of ``exercise`` the learner has not seen; record it."""
    names = chapter_exercises(grading_test_files(root)[chapter])
    if exercise not in names:
        raise UsageError(
            t("hint.unknown", exercise=exercise, chapter=chapter, names=", ".join(names))
        )
    path = hints_mod.hints_path(root, chapter)
    try:
        entry = hints_mod.load_hints(path).get(exercise, {}) if path else {}
    except hints_mod.HintsError as exc:
        raise UsageError(str(exc)) from None
    lang = current_lang()
    items = entry.get(lang) or entry.get("en") or []
    if not items:
        print(t("hint.none", exercise=exercise))
        return 0
    data, writable = load_progress(store)
    seen = progress.hints_seen(data, chapter, exercise)
    if seen >= len(items):
        print(t("hint.all_seen", exercise=exercise, n=len(items)))
        for number, text in enumerate(items, 1):
            print(f"  {number}. {text}")
        return 0
    print(t("hint.header", exercise=exercise, number=seen + 1, n=len(items)))
    print(items[seen])
    if seen + 1 < len(items):
        print("\n" + t("hint.more", chapter=chapter, exercise=exercise))
    if writable:
        save_progress(store, progress.record_hint(data, chapter, exercise, seen + 1))
    return 0


def load_progress(store: Path) -> tuple[dict, bool]:
    """The progress (empty if unreadable) and whether it may be written back."""
    try:
        return progress.load(store), True
    except progress.ProgressError as exc:
        print(t("progress.warning", error=exc), file=sys.stderr)
        return progress.empty(), False


def save_progress(store: Path, data: dict) -> None:
    try:
        progress.save(store, data)
    except OSError as exc:
        print(t("progress.not_saved", path=store, error=exc), file=sys.stderr)


def print_progress(root: Path, store: Path) -> int:
    """Print the table of all chapters: exercises passed, gradings, hints, last grading."""
    try:
        data = progress.load(store)
    except progress.ProgressError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = progress.table(data, all_exercises(root))
    print(t("progress.header", path=store))
    widths = (8, 10, 9, 6)
    keys = (
        "progress.col_chapter",
        "progress.col_done",
        "progress.col_attempts",
        "progress.col_hints",
    )
    head = [pad(t(k), w, right=i > 0) for i, (k, w) in enumerate(zip(keys, widths))]
    print(" ".join(head) + "  " + t("progress.col_last"))
    for r in rows:
        cells = [r["chapter"], f"{r['passed']}/{r['exercises']}", r["attempts"], r["hints"]]
        line = " ".join(pad(str(c), w, right=i > 0) for i, (c, w) in enumerate(zip(cells, widths)))
        print(f"{line}  {r['last'] or '-'}")
    passed, total = sum(r["passed"] for r in rows), sum(r["exercises"] for r in rows)
    print(t("progress.total", passed=passed, n=total))
    return 0


def reset_progress(store: Path, chapter: str | None) -> int:
    if chapter is None:
        if store.exists():
            store.unlink()
        print(t("progress.reset_all", path=store))
        return 0
    try:
        data = progress.load(store)
    except progress.ProgressError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    save_progress(store, progress.reset(data, chapter))
    print(t("progress.reset_chapter", chapter=chapter))
    return 0

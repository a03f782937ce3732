"""The learner's progress, kept in one git-ignored file of the repository.

``.attnkit-progress.json`` at the repository's root (``$ATTNKIT_PROGRESS_FILE`` replaces
the path, for tests) holds, per chapter, the number of gradings and the last one's time,
and per exercise the number of gradings, the best and the last status, the most tests
passed and the number of hints shown. It is written whole into a temporary file beside it
and renamed over it (atomic: a crash never leaves half a file), and nothing else is ever
written. A file that cannot be read is reported and left alone, never overwritten.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from pathlib import Path

from .messages import t

FILE_NAME = ".attnkit-progress.json"
PATH_VARIABLE = "ATTNKIT_PROGRESS_FILE"
VERSION = 1
# "best" status: a passed exercise stays passed; a failed attempt beats none at all.
_RANK = {"not attempted": 0, "error": 1, "timed out": 1, "failed": 2, "passed": 3}


class ProgressError(Exception):
    """The progress file exists but is not readable progress; the message says what to do."""


def progress_path(root: Path) -> Path:
    """Where progress is kept: ``$ATTNKIT_PROGRESS_FILE`` or ``ROOT/.attnkit-progress.json``."""
    override = os.environ.get(PATH_VARIABLE)
    return Path(override) if override else Path(root) / FILE_NAME


def empty() -> dict:
    return {"version": VERSION, "chapters": {}}


def load(path: Path) -> dict:
    """The progress stored at ``path`` (empty if there is no file yet).

    Raises:
        ProgressError: the file is not JSON, or not in this format.
    """
    if not path.exists():
        return empty()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        _check(data)
    except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError) as exc:
        raise ProgressError(t("progress.corrupt", path=path, error=exc)) from None
    return data


def _check(data: object) -> None:
    if not isinstance(data, dict) or data.get("version") != VERSION:
        raise ValueError(f"not a version-{VERSION} progress file")
    if not isinstance(data.get("chapters"), dict):
        raise ValueError("no 'chapters' table")
    for chapter, entry in data["chapters"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("exercises"), dict):
            raise ValueError(f"chapter {chapter!r} has no 'exercises' table")
        for name, ex in entry["exercises"].items():
            if not isinstance(ex, dict) or not isinstance(ex.get("hints", 0), int):
                raise ValueError(f"chapter {chapter}: exercise {name!r} is malformed")


def save(path: Path, data: dict) -> None:
    """Write ``data`` to ``path`` atomically (a temporary file beside it, then a rename)."""
    _check(data)
    fd, tmp = tempfile.mkstemp(prefix=f"{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, ensure_ascii=False, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime())


def _chapter(data: dict, chapter: str) -> dict:
    return data["chapters"].setdefault(chapter, {"attempts": 0, "last": "", "exercises": {}})


def _exercise(data: dict, chapter: str, name: str) -> dict:
    entry = _chapter(data, chapter)["exercises"].setdefault(name, {})
    for key, value in (
        ("attempts", 0),
        ("best", "not attempted"),
        ("last", "not attempted"),
        ("best_tests", 0),
        ("tests", 0),
        ("hints", 0),
    ):
        entry.setdefault(key, value)
    return entry


def record_grading(data: dict, chapter: str, summary: dict[str, dict]) -> dict:
    """Add one grading of ``chapter``; ``summary`` is grade's per-exercise summary
    (``{"status", "passed", "tests"}`` per exercise)."""
    entry = _chapter(data, chapter)
    entry["attempts"] += 1
    entry["last"] = _now()
    for name, s in summary.items():
        ex = _exercise(data, chapter, name)
        ex["attempts"] += 1
        ex["last"] = s["status"]
        if _RANK.get(s["status"], 0) >= _RANK.get(ex["best"], 0):
            ex["best"] = s["status"]
        ex["best_tests"] = max(ex["best_tests"], s["passed"])
        ex["tests"] = s["tests"]
    return data


def hints_seen(data: dict, chapter: str, exercise: str) -> int:
    """How many hints of ``exercise`` the learner has been shown."""
    ex = data["chapters"].get(chapter, {}).get("exercises", {}).get(exercise, {})
    return int(ex.get("hints", 0))


def record_hint(data: dict, chapter: str, exercise: str, number: int) -> dict:
    """Note that hint ``number`` (1-based) of ``exercise`` has been shown."""
    ex = _exercise(data, chapter, exercise)
    ex["hints"] = max(ex["hints"], number)
    return data


def reset(data: dict, chapter: str | None = None) -> dict:
    """Forget one chapter (or everything when ``chapter`` is ``None``)."""
    if chapter is None:
        return empty()
    data["chapters"].pop(chapter, None)
    return data


def table(data: dict, exercises: dict[str, list[str]]) -> list[dict]:
    """One row per graded chapter: exercises passed (best status), gradings, hints, last."""
    rows = []
    for chapter, names in exercises.items():
        entry = data["chapters"].get(chapter, {})
        ex = entry.get("exercises", {})
        rows.append(
            {
                "chapter": chapter,
                "passed": sum(ex.get(n, {}).get("best") == "passed" for n in names),
                "exercises": len(names),
                "attempts": entry.get("attempts", 0),
                "hints": sum(ex.get(n, {}).get("hints", 0) for n in names),
                "last": entry.get("last", ""),
            }
        )
    return rows

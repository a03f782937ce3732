"""Hints: up to three per exercise, kept beside the solution in ``solutions/NN_slug.hints.toml``.

::

    [attention_scores]
    en = ["the idea", "the shapes", "a code sketch that does not give the answer away"]
    zh = ["思路", "形状", "代码框架"]

``python -m attnkit.grade 01 --hint attention_scores`` shows the next hint the learner has
not seen yet (the count is kept in the progress file); nothing is generated from these
files into the exercises.
"""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

MAX_HINTS = 3


class HintsError(Exception):
    """A hints file cannot be read or is malformed; the message says which and why."""


def hints_path(root: Path, chapter: str) -> Path | None:
    """``solutions/NN_slug.hints.toml`` beside the chapter's ``solutions/NN_slug.py``, or
    ``None`` if there is none (a hints file under another slug is not the chapter's)."""
    for solution in sorted((root / "solutions").glob(f"{chapter}_*.py")):
        path = solution.with_suffix(".hints.toml")
        if path.is_file():
            return path
    return None


def load_hints(path: Path) -> dict[str, dict[str, list[str]]]:
    """``{exercise: {"en": [...], "zh": [...]}}`` from a hints file.

    Raises:
        HintsError: not valid TOML, or an entry that is not a table of string lists.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise HintsError(f"{path.name}: {exc}") from None
    hints: dict[str, dict[str, list[str]]] = {}
    for exercise, table in data.items():
        if not isinstance(table, dict):
            raise HintsError(f"{path.name}: [{exercise}] must be a table with en and zh lists.")
        for lang, items in table.items():
            if not (isinstance(items, list) and all(isinstance(s, str) for s in items)):
                raise HintsError(f"{path.name}: [{exercise}].{lang} must be a list of strings.")
        hints[exercise] = {lang: list(items) for lang, items in table.items()}
    return hints


def problems(path: Path, exercises: list[str]) -> list[str]:
    """What is wrong with a chapter's hints file: every exercise needs 1 to 3 non-empty
    hints in English and in Chinese, and the file may name only the chapter's exercises."""
    try:
        hints = load_hints(path)
    except HintsError as exc:
        return [str(exc)]
    found = [
        f"{path.name}: [{name}] is not an exercise of this chapter ({', '.join(exercises)})"
        for name in hints
        if name not in exercises
    ]
    for name in exercises:
        entry = hints.get(name)
        if entry is None:
            found.append(f"{path.name}: no hints for {name}")
            continue
        for lang in ("en", "zh"):
            items = entry.get(lang, [])
            if not 1 <= len(items) <= MAX_HINTS or not all(s.strip() for s in items):
                found.append(f"{path.name}: [{name}].{lang} needs 1 to 3 non-empty hints")
        if len(entry.get("en", [])) != len(entry.get("zh", [])):
            found.append(f"{path.name}: [{name}] has different numbers of en and zh hints")
        extra = set(entry) - {"en", "zh"}
        if extra:
            found.append(f"{path.name}: [{name}] has unknown keys {sorted(extra)}")
    return found

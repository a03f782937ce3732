"""Say *why* for the errors whose cause is the grader's own set-up, not the learner's logic.

Used by the pytest plugin on each failure message:

* a ``NameError`` for a name that the learner's file sets at the top level in lowercase:
  the loader runs only imports, functions, classes and UPPER_CASE constants, so the name
  really is undefined while grading (and the learner deserves to know why);
* an allocation that fails under the grader's memory limit (``MemoryError``, torch's
  "can't allocate memory"): "used more than N GB";
* pytest-timeout's "Timeout (>2.0s)": what usually causes it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .loader import skipped_names, source_of
from .messages import t

MEMORY_VARIABLE = "ATTNKIT_GRADE_MEMORY_GB"
_NAME_ERROR = re.compile(r"name '([A-Za-z_][A-Za-z0-9_]*)' is not defined")
_TIMEOUT = re.compile(r"Timeout \(>([0-9.]+)s\) from pytest-timeout")
_ALLOCATION = ("can't allocate memory", "not enough memory", "std::bad_alloc")


def explain_name_error(name: str, learner: str | Path | None) -> str | None:
    """Why ``name`` is undefined, if the learner's file sets it where the loader skips it."""
    if not learner:
        return None
    try:
        line = skipped_names(source_of(Path(learner))).get(name)
    except Exception:  # the file changed or vanished: nothing to add
        return None
    if line is None:
        return None
    return t("explain.lowercase", name=name, line=line, upper=name.upper())


def explain_memory(text: str, exc: BaseException | None) -> str | None:
    """Say "used more than N GB" when an allocation failed under the grader's memory limit."""
    limit = os.environ.get(MEMORY_VARIABLE)
    failed = isinstance(exc, MemoryError) or any(s in text for s in _ALLOCATION)
    if not (limit and failed):
        return None
    return t("explain.memory", gb=float(limit))


def add_reasons(excinfo, message: str) -> str:
    """``message`` with the reason appended when one of the cases above applies."""
    if excinfo is None:
        return message
    exc = excinfo.value
    notes = []
    found = _NAME_ERROR.search(message) if "NameError" in message else None
    if isinstance(exc, NameError) or found:
        name = getattr(exc, "name", None) or (found.group(1) if found else "")
        notes.append(explain_name_error(name, os.environ.get("ATTNKIT_LEARNER_FILE")))
    notes.append(explain_memory(message, exc))
    timeout = _TIMEOUT.match(message)
    if timeout:
        notes.append(t("explain.timeout", seconds=float(timeout.group(1))))
    notes = [n for n in notes if n]
    return "\n".join([message, *notes]) if notes else message

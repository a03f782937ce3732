"""Fixtures for the exercise graders.

Which file is graded:
- ``ATTNKIT_LEARNER_FILE=path`` (set by ``python -m attnkit.grade``), or else
- the newest of the chapter's ``.py``/``.ipynb`` in ``$ATTNKIT_GRADE_TARGET``
  (``solutions`` by default, so the plain test run proves every solution passes).

Only the definitions of that file are loaded (see ``attnkit.grading.loader``). In
instructor mode (``python -m attnkit.grade NN --class DIR``, which sets
``$ATTNKIT_SANDBOX_CONFIG``) they are loaded in a sandboxed worker process instead, and the
fixture returns a stand-in module whose functions run there (``attnkit.grading.remote``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from attnkit.grading import load_definitions, newest_file
from attnkit.grading.misconceptions import variant
from attnkit.grading.remote import load_remote, sandboxed

ROOT = Path(__file__).resolve().parents[2]


def learner_path(chapter: str) -> Path:
    explicit = os.environ.get("ATTNKIT_LEARNER_FILE")
    if explicit:
        return Path(explicit)
    target = os.environ.get("ATTNKIT_GRADE_TARGET", "solutions")
    return newest_file(ROOT / target, chapter)


@pytest.fixture(scope="module")
def learner(request: pytest.FixtureRequest):
    """The learner's module (definitions only) for the test module's ``CHAPTER``."""
    chapter = request.module.CHAPTER
    if sandboxed():
        return load_remote(f"learner_{chapter}")
    module = load_definitions(learner_path(chapter), module_name=f"learner_{chapter}")
    return variant(module)  # itself, except when tests/test_misconceptions.py substitutes

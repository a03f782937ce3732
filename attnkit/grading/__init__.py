"""Autograding of the book's exercises.

* :mod:`attnkit.grading.loader` loads the definitions of a learner's file (never its demo
  cells) from the ``.py`` or ``.ipynb`` of a jupytext pair, whichever is newer.
* :mod:`attnkit.grading.plugin` is a pytest plugin that records each graded item.
* :mod:`attnkit.grade` is the learner's command: ``python -m attnkit.grade 01``.
* In Jupyter, ``%load_ext attnkit.grading`` adds the magic ``%grade 01``
  (``attnkit.grading.jupyter``).
"""

from __future__ import annotations

import types
from typing import Any

from .jupyter import load_ipython_extension
from .loader import LearnerFileError, load_definitions, newest_file, repo_root

__all__ = [
    "LearnerFileError",
    "load_definitions",
    "load_ipython_extension",
    "newest_file",
    "repo_root",
    "require",
]


def require(module: types.ModuleType, name: str) -> Any:
    """Return ``module.name`` or fail the calling test with a message a learner understands.

    During a graded run (the plugin is loaded), the function of the exercise being tested
    comes back wrapped so that its calls are recorded, to name the learner's misconception
    if the test fails (see ``attnkit.grading.misconceptions``).
    """
    if not hasattr(module, name):
        import pytest

        from .messages import t

        pytest.fail(t("load.undefined", name=name), pytrace=False)
    from .misconceptions import wrap_required  # records the call when a test is graded

    return wrap_required(module, name, getattr(module, name))

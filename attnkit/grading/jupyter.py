"""Grading from a notebook cell: ``%load_ext attnkit.grading``, then ``%grade 01``.

``%grade`` takes the same arguments as ``python -m attnkit.grade`` and prints the same
report in the cell (``%run -m attnkit.grade 01`` works too). It grades the *saved* files:
save the notebook first (Ctrl+S), the grader never reads the unsaved editor.
"""

from __future__ import annotations

import shlex


def grade_magic(line: str) -> int:
    """``%grade CHAPTER [options]``: run the grader in this kernel; return its exit status
    (shown only when it is not 0, as the cell's result)."""
    from attnkit.grade import main

    status = main(shlex.split(line))
    return status or None


def load_ipython_extension(ipython) -> None:
    """Register ``%grade`` (called by ``%load_ext attnkit.grading``)."""
    ipython.register_magic_function(grade_magic, magic_kind="line", magic_name="grade")

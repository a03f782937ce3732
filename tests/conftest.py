"""Fixtures shared by the attnkit tests (the graders have their own in tests/grading)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models: on a shared machine two threads mostly wait for each other.

    Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``; the number of
    threads is restored after the module.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

"""Shared fixtures: the checkout, the lessons, and check-result assertions."""

from __future__ import annotations

import os
from pathlib import Path

# One thread per process, before torch is imported, inherited by every kernel and grading
# worker the tests start. The suite runs two tests at a time on two cores (pytest -n 2), each
# with kernels of its own, and torch's default of one OpenMP thread per core then
# oversubscribes the CPU: two lessons executed at once took 45-76 s each with 2 threads, and
# 15-18 s with 1 (alone, 1 thread costs about 10%).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402

from helpers.checks.core import Outcome  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def root() -> Path:
    return ROOT


def assert_correct(result):
    assert result.outcome is Outcome.CORRECT, str(result)


def assert_not_attempted(result):
    assert result.outcome is Outcome.NOT_ATTEMPTED, str(result)


def assert_incorrect(result, *words):
    """The answer was judged wrong and the message names the mistake (each word appears)."""
    assert result.outcome is Outcome.INCORRECT, str(result)
    for word in words:
        assert word.lower() in result.message.lower(), f"{word!r} not in: {result.message}"


# The longest tests (measured in `make test` on 2 cores, in this order: 296, 160, 52, 80, 75 and 45 s).
# They run first, and `make test` hands out tests one at a time (--maxschedchunk=1), so that the two
# workers start them side by side and finish together; in collection order the 330 s test began near the
# end, and one core idled for its last five minutes. None of these uses a module-scoped fixture, so
# moving them splits no module's setup.
FIRST = (
    "tests/test_grading_lesson07.py::",
    "tests/test_notebooks.py::test_autograde_round_trip[07_distributed]",
    "tests/test_notebooks.py::test_solution_runs_top_to_bottom_in_fast_mode[07_distributed]",
    "tests/test_grading_run.py::test_hostile_notebooks",
    "tests/test_grading_run.py::test_layouts_jobs_and_resume",
    "tests/test_notebooks.py::test_nbgrader_validate_passes_solved_exercises_and_fails_the_unsolved_one[07",
)


def pytest_collection_modifyitems(config, items):
    def order(item):
        return next((k for k, prefix in enumerate(FIRST) if item.nodeid.startswith(prefix)), len(FIRST))

    items.sort(key=order)  # stable: everything else keeps its order

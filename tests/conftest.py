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

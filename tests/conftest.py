"""Shared fixtures: the checkout, the lessons, and check-result assertions."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.checks.core import Outcome

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

"""Course-wide settings read from the environment: fast mode and where data lives.

Nothing here runs on import; each value is read when a function is called, so a
test can switch modes with ``monkeypatch.setenv``.
"""

from __future__ import annotations

import os
from pathlib import Path

FAST_ENV = "COURSE_FAST"
DATA_ENV = "COURSE_DATA_DIR"
OFFLINE_ENV = "COURSE_OFFLINE"
COLLECTIVE_TIMEOUT_ENV = "COURSE_COLLECTIVE_TIMEOUT"

_TRUE = {"1", "true", "yes", "on"}


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def fast_mode() -> bool:
    """True when ``COURSE_FAST=1``: small real subsets and few steps, for tests and grading.

    Full mode is the default for learners.
    """
    return _flag(FAST_ENV)


def fast_or_full(*, fast, full):
    """Return ``fast`` in fast mode and ``full`` otherwise.

    Example: ``steps = fast_or_full(fast=20, full=200)``.
    """
    return fast if fast_mode() else full


def offline() -> bool:
    """True when ``COURSE_OFFLINE=1``: never try to download anything."""
    return _flag(OFFLINE_ENV)


def collective_timeout(default: float = 30.0) -> float:
    """Seconds a collective of lesson 07's checks may wait for another rank: ``$COURSE_COLLECTIVE_TIMEOUT``,
    else ``default``.

    Generous by default: under a grader running several notebooks on a busy machine a healthy rank can be
    starved for seconds (a rank that left is noticed at once anyway). A grader on a fast machine, or a
    test, may set it lower, so that a hung collective costs less waiting.

    Raises:
        ValueError: when the variable is set to anything but a number of seconds above 0.
    """
    text = os.environ.get(COLLECTIVE_TIMEOUT_ENV, "").strip()
    if not text:
        return default
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < float("inf"):
        raise ValueError(f"{COLLECTIVE_TIMEOUT_ENV}={text!r} is not a number of seconds above 0: set it to one "
                         f"(for example {COLLECTIVE_TIMEOUT_ENV}=30), or unset it for the default of {default:g} s.")
    return seconds


def repo_root() -> Path | None:
    """The course checkout that holds this package, or None when installed elsewhere (Colab)."""
    root = Path(__file__).resolve().parents[1]
    if (root / "solutions").is_dir() and (root / "pyproject.toml").is_file():
        return root
    return None


def data_dir() -> Path:
    """The course's data folder: ``$COURSE_DATA_DIR``, else ``data/`` in the checkout, else ``~/.cache``."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    root = repo_root()
    if root is not None:
        return root / "data"
    return Path.home() / ".cache" / "pytorch-course" / "data"

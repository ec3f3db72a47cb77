"""Run nbgrader's command-line apps from Python, with this interpreter's tools on PATH.

nbgrader shells out to ``alembic`` (to set up a gradebook), which lives next to the
interpreter in a virtual environment that may not be activated.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def nbgrader_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for an nbgrader subprocess: the interpreter's bin folder first on PATH."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.update(extra or {})
    return env


def run_nbgrader(args: list[str], cwd: Path, *, extra_env: dict[str, str] | None = None,
                 timeout: float | None = None) -> subprocess.CompletedProcess:
    """``python -m nbgrader ARGS`` in ``cwd``; returns the finished process (output captured)."""
    return subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd, capture_output=True,
                          text=True, env=nbgrader_env(extra_env), timeout=timeout)

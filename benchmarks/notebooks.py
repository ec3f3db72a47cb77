"""`make bench`: how long each lesson's notebook takes top to bottom, in full mode and in fast mode.

Runs a copy of every instructor notebook (solutions/NN_topic/, so every exercise is
answered and every cell runs) in a temporary folder with a fresh kernel, offline, and
prints the wall time of each run, kernel start included. Targets (issues 6 and 14): at most
60 s in full mode and at most 20 s in fast mode on 2 CPU cores; printed, not asserted.

Usage: ``python -m benchmarks.notebooks [--lessons 04 05] [--modes full fast]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from helpers import config
from helpers.course.execute import execute
from helpers.course.lessons import ReleaseError, find_lessons

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"full": 60.0, "fast": 20.0}


def time_notebook(source: Path, fast: bool) -> float:
    """Seconds to execute a throwaway copy of ``source`` (its lesson folder copied too)."""
    with tempfile.TemporaryDirectory(prefix="course-bench-") as tmp:
        folder = Path(tmp) / source.parent.name
        shutil.copytree(source.parent, folder, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "*.pt"))
        return execute(folder / source.name, fast=fast)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.notebooks", description=__doc__.splitlines()[0])
    parser.add_argument("--lessons", nargs="*", default=None, help="lesson numbers or names (default: all)")
    parser.add_argument("--modes", nargs="*", choices=list(TARGETS), default=list(TARGETS))
    args = parser.parse_args(argv)
    os.environ.setdefault(config.DATA_ENV, str(config.data_dir()))  # the copies read the checkout's data
    rows, failed = [], False
    for lesson in find_lessons(ROOT, args.lessons):
        for mode in args.modes:
            try:
                seconds = time_notebook(lesson.source, fast=mode == "fast")
            except ReleaseError as err:
                print(f"{lesson.name} ({mode}): FAILED\n{err}", file=sys.stderr)
                failed = True
                continue
            rows.append((lesson.name, mode, seconds))
            print(f"{lesson.name} ({mode}): {seconds:.1f} s", flush=True)
    print(f"\nnotebooks top to bottom (targets: full <= {TARGETS['full']:.0f} s, fast <= {TARGETS['fast']:.0f} s)")
    for name, mode, seconds in rows:
        verdict = "met" if seconds <= TARGETS[mode] else "MISSED"
        print(f"  [{verdict}] {name:<22} {mode:<5} {seconds:6.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

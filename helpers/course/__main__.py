"""``python -m helpers.course release|check|execute [LESSON ...]``: the instructor's commands.

release: regenerate notebooks/ from solutions/ (nbgrader generate_assignment).
check:   exit 1 when a student notebook in notebooks/ is stale.
execute: run the solution notebooks in full mode and save their outputs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from helpers.course.execute import execute
from helpers.course.release import ReleaseError, find_lessons, release, stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.course", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["release", "check", "execute"])
    parser.add_argument("lessons", nargs="*", help="lesson names or numbers (default: all)")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the course checkout (default: .)")
    args = parser.parse_args(argv)
    try:
        if args.command == "execute":
            for lesson in find_lessons(args.root, args.lessons):
                print(f"executed {lesson.source.relative_to(args.root)} in {execute(lesson.source):.1f} s")
            return 0
        if args.command == "release":
            for path in release(args.root, args.lessons):
                print(f"released {path.relative_to(args.root)}")
            return 0
        problems = stale(args.root, args.lessons)
    except ReleaseError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for line in problems:
        print(f"{line}: run `make release` and commit the result", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m helpers.course release|check [LESSON ...]``: the instructor's commands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from helpers.course.release import ReleaseError, release, stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.course", description=__doc__)
    parser.add_argument("command", choices=["release", "check"],
                        help="release: regenerate notebooks/ from solutions/; check: fail if they are stale")
    parser.add_argument("lessons", nargs="*", help="lesson names or numbers (default: all)")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the course checkout (default: .)")
    args = parser.parse_args(argv)
    try:
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

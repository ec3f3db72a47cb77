"""``python -m helpers.course release|check|execute|slides [LESSON ...]``: the instructor's commands.

release: bring the Colab badge and setup up to date in solutions/ (from pyproject.toml),
         then regenerate notebooks/ from solutions/ (nbgrader generate_assignment).
check:   exit 1 when a student notebook, a deck or a Colab badge/setup is stale.
execute: run the solution notebooks in full mode and save their outputs.
slides:  build slides/NN_topic.slides.html and slides/index.html, and copy the
         JavaScript they load from node_modules/ into slides/vendor/ (run `npm ci` first).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from helpers.course.execute import execute
from helpers.course.lessons import ReleaseError, find_lessons
from helpers.course.release import release, stale


def _check(root: Path, lessons: list[str]) -> list[str]:
    from helpers.course import colab, slides

    problems = colab.stale_sources(root, lessons)
    problems += stale(root, lessons)
    problems += [f"{line} (run `make slides`)" for line in slides.stale(root)]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.course", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["release", "check", "execute", "slides"])
    parser.add_argument("lessons", nargs="*", help="lesson names or numbers (default: all)")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the course checkout (default: .)")
    parser.add_argument("--no-vendor", action="store_true",
                        help="slides: write the decks only, not slides/vendor/ (no node_modules needed)")
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
        if args.command == "slides":
            from helpers.course import slides

            for path in slides.build(args.root, args.lessons, with_vendor=not args.no_vendor):
                print(f"wrote {path.relative_to(args.root)}")
            if not args.no_vendor:
                print(f"copied the decks' JavaScript into {slides.SLIDES_DIR}/{slides.VENDOR_DIR}/")
            return 0
        problems = _check(args.root, args.lessons)
    except ReleaseError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for line in problems:
        if "(run `make slides`)" in line:
            print(f"{line} and commit the result", file=sys.stderr)
        else:
            print(f"{line}: run `make release` and commit the result", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

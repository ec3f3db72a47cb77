"""A Gradescope autograder for one lesson: ``dist/gradescope/<lesson>.zip``.

Gradescope's autograder specification: the zip holds ``setup.sh`` (run once, as root, on an
Ubuntu image, to install what grading needs) and ``run_autograder`` (run for each submission);
the zip is extracted into ``/autograder/source``, the student's files are in
``/autograder/submission``, and ``/autograder/results/results.json`` receives the result: a
top-level ``score`` and ``output``, and ``tests``, each with ``name``, ``score``, ``max_score``,
``output`` and ``visibility`` (``visible``, ``after_published``, ...).

The zip carries this course's own grader (``helpers/``, the lesson's ``solutions/`` folder,
``nbgrader_config.py`` and the pinned ``requirements.txt``), so a notebook submitted to
Gradescope is graded exactly as ``python -m helpers.grading grade`` grades it: the canary,
the sandbox, the restored checks. It holds the solution and the hidden tests, so it is for
Gradescope's autograder upload only, never for students.

  python -m helpers.grading gradescope 01          # build (what `make gradescope LESSON=01` runs)
  python -m helpers.grading.gradescope run 01 /autograder   # what run_autograder runs
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import traceback
import zipfile
from pathlib import Path

from helpers.course.lessons import find_lessons, read_source

COURSE_FILES = ("nbgrader_config.py", "requirements.txt", "pyproject.toml", "README.md")

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root, in /autograder/source, when the autograder image is built.
set -euo pipefail
cd "$(dirname "$0")"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
command -v python3.11 >/dev/null || apt-get install -y -qq python3.11 python3.11-venv
apt-get install -y -qq python3.11-venv
# Fashion-MNIST from Debian/Ubuntu when the image has it; else helpers.data downloads it below.
apt-get install -y -qq dataset-fashion-mnist || true
# The course's pinned environment, in a venv of its own: exactly the torch requirements.txt pins.
python3.11 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -r requirements.txt
.venv/bin/python -m pip uninstall --quiet --yes rfc3987-syntax || true
pinned=$(sed -n 's/^torch==//p' requirements.txt)
.venv/bin/python -c "import sys, torch; v = torch.__version__.split('+')[0]; \\
sys.exit(0 if v == '$pinned' else 'torch ' + v + ' is installed, requirements.txt pins $pinned')"
.venv/bin/python -m helpers.data prepare \
  || echo "warning: the data sets are not ready; lessons that need them will fail the canary"
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for each submission. AUTOGRADER_ROOT (default /autograder) holds source/,
# submission/ and results/; COURSE_PYTHON (default: source/.venv/bin/python, else python3) grades.
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
SOURCE="$ROOT/source"
if [ -z "${{COURSE_PYTHON:-}}" ]; then
  if [ -x "$SOURCE/.venv/bin/python" ]; then COURSE_PYTHON="$SOURCE/.venv/bin/python"; else COURSE_PYTHON=python3; fi
fi
mkdir -p "$ROOT/results"
rm -f "$ROOT/results/results.json"
cd "$SOURCE" && "$COURSE_PYTHON" -m helpers.grading.gradescope run {lesson} "$ROOT"
code=$?
if [ ! -s "$ROOT/results/results.json" ]; then
  said="The autograder failed before it could grade your notebook (exit code $code)."
  said="$said The course staff can see why in the autograder output."
  printf '{{"score": 0, "output": "%s", "tests": []}}\\n' "$said" > "$ROOT/results/results.json"
fi
exit 0
"""


def _add(zf: zipfile.ZipFile, name: str, data: bytes, executable: bool = False) -> None:
    info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
    info.external_attr = (0o100755 if executable else 0o100644) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data)


def _tree(root: Path, folder: str) -> list[Path]:
    skip = ("__pycache__", ".ipynb_checkpoints")
    return sorted(p for p in (root / folder).rglob("*")
                  if p.is_file() and not any(s in p.parts for s in skip) and p.suffix != ".pyc")


def build(root: Path, lesson_name: str, out_dir: Path) -> tuple[Path, int]:
    """Write ``out_dir/<lesson>.zip``, the lesson's Gradescope autograder.

    Returns:
        (the zip's path, the number of files in it).

    Raises:
        ReleaseError: no such lesson, or its instructor notebook is malformed.
    """
    lesson = find_lessons(root, [lesson_name])[0]
    read_source(lesson.source)  # a malformed lesson stops here, not on Gradescope
    files = _tree(root, "helpers") + _tree(root, f"solutions/{lesson.name}") + [root / f for f in COURSE_FILES]
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{lesson.name}.zip"
    with zipfile.ZipFile(path, "w") as zf:
        _add(zf, "setup.sh", SETUP_SH.encode(), executable=True)
        _add(zf, "run_autograder", RUN_AUTOGRADER.format(lesson=lesson.name).encode(), executable=True)
        for file in files:
            _add(zf, file.relative_to(root).as_posix(), file.read_bytes())
    return path, len(files) + 2


def build_command(args) -> int:
    """``python -m helpers.grading gradescope LESSON [--out dist/gradescope]``."""
    from helpers.course.lessons import ReleaseError

    out = args.out if args.out.is_absolute() else args.root / args.out
    try:
        path, count = build(args.root.resolve(), args.lesson, out)
    except ReleaseError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"Wrote {path} ({count} files): upload it as the Gradescope assignment's autograder (it holds the "
          "solution and the hidden tests: never give it to students).")
    return 0


def failure(output: str) -> dict:
    """A result that gives 0 and says what went wrong."""
    return {"score": 0.0, "output": output, "tests": []}


def results(row, cells) -> dict:
    """Gradescope's results.json for one graded row: one test per graded cell.

    Args:
        row: the student's ``report.Row``.
        cells: the lesson's ``course.GradedCell`` list.
    """
    from helpers.grading.report import status

    tests = []
    for number, cell in enumerate(cells, start=1):
        score, message = row.scores[cell.grade_id], row.messages.get(cell.grade_id, "")
        state = status(score, cell, message)
        said = message if state in message.lower() else f"{state}: {message}"  # "...: not attempted." says it
        tests.append({"name": cell.title, "number": str(number), "score": score, "max_score": cell.points,
                      "status": "passed" if score >= cell.points else "failed",
                      "output": said if message and state != "correct" else state,
                      "visibility": "after_published" if cell.hidden.strip() else "visible"})
    total = sum(t["score"] for t in tests)
    output = f"{total:g} / {sum(c.points for c in cells):g} points."
    if row.problem:
        output = f"Your notebook could not be graded: {row.problem}. " + output
    return {"score": total, "output": output, "stdout_visibility": "hidden", "tests": tests}


def _submitted(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.ipynb")
                  if ".ipynb_checkpoints" not in p.parts and not p.name.startswith("."))


def grade_submission(root: Path, lesson_name: str, home: Path) -> dict:
    """Grade the one notebook in ``home/submission`` with the course's grader; the results.json content."""
    from helpers.grading import layouts, report, runner
    from helpers.grading.course import GradingError, graded_cells

    notebooks = _submitted(home / "submission")
    if len(notebooks) != 1:
        found = ", ".join(p.relative_to(home / "submission").as_posix() for p in notebooks)
        why = f"{len(notebooks)} notebooks ({found})" if notebooks else "no notebook (.ipynb)"
        return failure(f"Your submission has {why}: submit exactly one notebook, {lesson_name}.ipynb.")
    lesson = find_lessons(root, [lesson_name])[0]
    cells = graded_cells(read_source(lesson.source))
    with tempfile.TemporaryDirectory(prefix="gradescope-") as scratch:
        folder = Path(scratch) / "submissions"
        folder.mkdir()
        shutil.copy(notebooks[0], folder / "submission.ipynb")
        subs, problems, _ = layouts.collect(folder, lesson.name, [lesson.name], Path(scratch))
        out = Path(scratch) / "out"
        try:
            graded = runner.grade(subs, lesson, out, runner.Settings(jobs=1), progress=False,
                                  hide_extra=[(home / "submission").resolve(), Path(scratch).resolve()])
        except GradingError as err:
            print(f"error: {err}")
            return failure("The autograder could not grade notebooks (its environment is broken); the course "
                           "staff can see why in the autograder output. Your submission is kept.")
    rows = report.build_rows(subs, graded, problems, cells, None)
    for note in rows[0].review:  # code aimed at the grading: for the staff, in the autograder output
        print(f"review: {note}")
    return results(rows[0], cells)


def run(root: Path, lesson_name: str, home: Path) -> dict:
    """Grade and write ``home/results/results.json``, whatever happens (a failure result on any error)."""
    try:
        result = grade_submission(root, lesson_name, home)
    except Exception as err:  # anything at all: Gradescope must still get a result
        traceback.print_exc()
        result = failure(f"The autograder failed ({type(err).__name__}: {err}); the course staff can see why in "
                         "the autograder output.")
    path = home / "results" / "results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(f"{result['score']:g} points; wrote {path}")
    return result


def main(argv: list[str] | None = None) -> int:
    """``python -m helpers.grading.gradescope run LESSON AUTOGRADER_ROOT`` (what run_autograder runs)."""
    parser = argparse.ArgumentParser(prog="python -m helpers.grading.gradescope")
    parser.add_argument("command", choices=["run"])
    parser.add_argument("lesson")
    parser.add_argument("home", type=Path, help="the autograder folder (Gradescope's /autograder)")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the course files (default: .)")
    args = parser.parse_args(argv)
    run(args.root.resolve(), args.lesson, args.home.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())

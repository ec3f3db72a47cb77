"""Grade a class's notebooks, build the bundle students receive, or a lesson's Gradescope autograder.

  python -m helpers.grading grade LESSON SUBMISSIONS [--out grades] [--jobs 2] [--due 2026-12-01T23:59]
      [--scheduler tcp://HOST:8786 | --scheduler-file PATH | --slurm [--slurm-queue Q ...]]
  python -m helpers.grading bundle [--out dist/student-bundle.zip]
  python -m helpers.grading gradescope LESSON [--out dist/gradescope]

SUBMISSIONS is nbgrader's submitted/ folder (or the course folder holding it), a flat folder
of <student>.ipynb files, or a zip exported by a learning-management system (Canvas-style
names such as doe_jane_12345_6789_01_tensors_autograd.ipynb). Writes OUT/grades.csv (also as
OUT/grades-<lesson>.csv, which stays when another lesson is graded into OUT),
OUT/feedback/<student>/<lesson>.html and prints a summary. Run again after an interruption:
finished notebooks are kept in OUT/.cache and not graded twice. With --scheduler,
--scheduler-file or --slurm the notebooks are graded on a Dask cluster's workers instead of
this machine's pool; the grade sheet is the same, byte for byte.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from helpers.course.lessons import ReleaseError, find_lessons, read_source


def _size(text: str) -> int:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMG]?)i?B?", text.strip(), re.IGNORECASE)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size such as 4G or 512M")
    return int(float(match[1]) * 1024 ** " KMG".index(match[2].upper() or " "))


def _due(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date such as 2026-12-01T23:59") from None
    return when if when.tzinfo else when.astimezone()  # a date without a zone is local time


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m helpers.grading", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the course checkout (default: .)")
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("grade", help="autograde every submission of a lesson")
    g.add_argument("lesson", help="lesson name or number (01 or 01_tensors_autograd)")
    g.add_argument("submissions", type=Path, help="folder or zip of submissions")
    g.add_argument("--out", type=Path, default=Path("grades"), help="output folder (default: grades/)")
    g.add_argument("--jobs", type=int, default=2, help="notebooks graded at once (default: 2)")
    g.add_argument("--due", type=_due, help="due date (ISO, local time unless a zone is given): adds a late column")
    g.add_argument("--timeout", type=int, default=60, help="seconds per cell (default: 60)")
    g.add_argument("--notebook-timeout", type=int, default=900, help="seconds per notebook (default: 900)")
    g.add_argument("--memory", type=_size, default="4G", help="memory per notebook kernel (default: 4G)")
    g.add_argument("--max-processes", type=int, default=256,
                   help="processes and threads per kernel, against fork bombs (default: 256)")
    g.add_argument("--no-isolate", action="store_true", help="do not hide the course's files from the kernels")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.add_argument("--canvas", type=Path, metavar="ROSTER",
                   help="also write OUT/canvas.csv for Canvas's gradebook import; ROSTER is the gradebook exported "
                        "from Canvas (Grades > Export). Students are matched by SIS User ID, SIS Login ID or Canvas "
                        "ID; roster students with no submission get an empty cell, so Canvas keeps their grade. "
                        "Lessons graded one after another into the same OUT build one file")
    _cluster_options(g)
    b = sub.add_parser("bundle", help="build the archive students receive")
    b.add_argument("--out", type=Path, default=Path("dist/student-bundle.zip"), help="default: dist/student-bundle.zip")
    s = sub.add_parser("gradescope", help="build a lesson's Gradescope autograder (instructor-only: it holds the "
                                          "solution and hidden tests; upload it to Gradescope, never to students)")
    s.add_argument("lesson", help="lesson name or number (01 or 01_tensors_autograd)")
    s.add_argument("--out", type=Path, default=Path("dist/gradescope"), help="folder (default: dist/gradescope/)")
    return parser


def _cluster_options(g) -> None:
    c = g.add_argument_group("grading on a Dask cluster (default: this machine's pool of --jobs workers)")
    where = c.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS", help="a running Dask scheduler, e.g. tcp://HOST:8786")
    where.add_argument("--scheduler-file", type=Path, metavar="PATH",
                       help="the file a running scheduler wrote (dask scheduler --scheduler-file PATH)")
    where.add_argument("--slurm", action="store_true", help="start the workers as Slurm jobs (dask-jobqueue)")
    c.add_argument("--slurm-queue", help="Slurm partition (default: the cluster's default)")
    c.add_argument("--slurm-account", help="Slurm account to charge")
    c.add_argument("--slurm-cores", type=int, default=4, help="cores per job, one notebook each (default: 4)")
    c.add_argument("--slurm-memory", default="16GB", help="memory per job (default: 16GB)")
    c.add_argument("--slurm-walltime", default="01:00:00", help="time limit per job (default: 01:00:00)")
    c.add_argument("--slurm-jobs", type=int, default=2, help="Slurm jobs to start (default: 2)")


def _slurm(args) -> dict | None:
    if not args.slurm:
        return None
    return {"queue": args.slurm_queue, "account": args.slurm_account, "cores": args.slurm_cores,
            "memory": args.slurm_memory, "walltime": args.slurm_walltime, "jobs": args.slurm_jobs}


def grade_command(args) -> int:
    from helpers.grading import canvas, cluster, layouts, report, runner
    from helpers.grading.course import GradingError, graded_cells

    root = args.root.resolve()
    try:
        lesson = find_lessons(root, [args.lesson])[0]
        cells = graded_cells(read_source(lesson.source))
        roster = canvas.read_roster(args.canvas, lesson.name) if args.canvas else None
    except (ReleaseError, canvas.RosterError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    names = [lesson.name for lesson in find_lessons(root)]
    out = args.out if args.out.is_absolute() else Path.cwd() / args.out
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="course-submissions-") as scratch:
        try:
            subs, problems, layout = layouts.collect(args.submissions, lesson.name, names, Path(scratch))
        except layouts.LayoutError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(f"{len(subs)} submissions of {lesson.name} found ({layout} layout in {args.submissions})")
        settings = runner.Settings(jobs=args.jobs, timeout=args.timeout, memory=args.memory, nproc=args.max_processes,
                                   notebook_timeout=args.notebook_timeout, isolate=not args.no_isolate)
        out.mkdir(parents=True, exist_ok=True)
        hide = [args.submissions.resolve(), out.resolve()]
        try:
            with cluster.connect(root, args.scheduler, args.scheduler_file, _slurm(args)) as client:
                results = runner.grade(subs, lesson, out, settings, hide_extra=hide, progress=not args.quiet,
                                       elsewhere=cluster.on(client))
        except GradingError as err:
            print(f"error: {err}", file=sys.stderr)
            return 3
        except KeyboardInterrupt:
            print(f"\ninterrupted: finished notebooks are kept in {out / '.cache'}; run the same command "
                  "again to grade the rest.", file=sys.stderr)
            return 130
    rows = report.build_rows(subs, results, problems, cells, args.due)
    sheets = report.write_sheets(out, rows, lesson.name, cells, args.due)
    count = report.write_feedback(out / "feedback", rows, lesson.name, cells)
    print(report.summary(rows, problems, lesson.name, cells))
    if roster:
        canvas.export(out / "canvas.csv", roster, sum(c.points for c in cells), rows, subs)
    print(f"Wrote {' and '.join(map(str, sheets))}, and {count} feedback pages in {out / 'feedback'} "
          f"({runner.elapsed(started)}).")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "grade":
        return grade_command(args)
    if args.command == "gradescope":
        from helpers.grading.gradescope import build_command

        return build_command(args)
    from helpers.grading.bundle import LeakError, build

    out = args.out if args.out.is_absolute() else args.root / args.out
    try:
        path, count = build(args.root.resolve(), out)
    except LeakError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"Wrote {path} ({count} files).")
    return 0


if __name__ == "__main__":
    sys.exit(main())

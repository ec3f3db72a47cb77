"""Benchmark: plain serial ``nbgrader autograde`` against ``python -m helpers.grading``, on
this machine's pool and on a Dask cluster.

Generates N distinct submissions of one lesson (a mix of solved, partly solved and
untouched answers, built from the real student notebook and the reference answers),
grades them three ways in the same run (plain nbgrader; ``--jobs J``; ``--scheduler`` of a
Dask ``LocalCluster`` of J one-thread workers), and prints the wall times, the seconds per
notebook, the speedup, whether every score is identical and whether the two grade sheets are
the same bytes. From the Dask run's cost per notebook and core it projects the time to grade
60,000 notebooks on 20 machines of 16 cores.

    python benchmarks/grading.py [--lesson 01] [--n 50] [--jobs 2]

Targets (issue 4): at least 2x faster on 2 cores, at most 3 s per notebook, identical scores.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from helpers.course.lessons import find_lessons  # noqa: E402
from helpers.course.nbgrader_run import nbgrader_env, run_nbgrader  # noqa: E402

FAST = {"COURSE_FAST": "1", "COURSE_OFFLINE": "1", "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore"}


def submissions(lesson, n: int) -> dict[str, nbformat.NotebookNode]:
    """N distinct notebooks: student i solves the exercises whose bit is set in a mix of patterns."""
    source = nbformat.read(lesson.source, as_version=4)
    answers = {c.metadata.nbgrader["grade_id"]: c.source for c in source.cells
               if c.metadata.get("nbgrader", {}).get("solution") and c.cell_type == "code"}
    out = {}
    for i in range(n):
        nb = nbformat.read(lesson.student, as_version=4)
        ids = list(answers)
        solved = set(ids) if i % 5 == 0 else {g for k, g in enumerate(ids) if (i * 7 + k) % 3 != 0}
        if i % 5 == 1:
            solved = set()
        for cell in nb.cells:
            gid = cell.metadata.get("nbgrader", {}).get("grade_id")
            if gid in solved:
                cell.source = "\n".join(line for line in answers[gid].splitlines()
                                        if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION"))
            if gid == ids[0]:
                cell.source += f"\n# submitted by student {i:03d}"  # every notebook differs
        out[f"s{i:03d}"] = nb
    return out


def plain(lesson, subs: dict, work: Path) -> tuple[float, float, dict]:
    """Serial ``nbgrader autograde`` in a course folder; (generate seconds, autograde seconds, scores)."""
    from nbgrader.api import Gradebook

    course = work / "course"
    course.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(lesson.source_dir, course / "solutions" / lesson.name)
    t = time.monotonic()
    proc = run_nbgrader(["generate_assignment", lesson.name, "--force", "--log-level=WARN"], course)
    generate = time.monotonic() - t
    if proc.returncode:
        raise SystemExit(proc.stdout + proc.stderr)
    for student, nb in subs.items():
        folder = course / "submitted" / student / lesson.name
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{lesson.name}.ipynb")
    t = time.monotonic()
    proc = run_nbgrader(["autograde", lesson.name, "--force", "--log-level=WARN"], course, extra_env=FAST)
    seconds = time.monotonic() - t
    if proc.returncode:
        raise SystemExit(proc.stdout[-3000:] + proc.stderr[-3000:])
    scores = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for sub in gb.assignment_submissions(lesson.name):
            scores[sub.student.id] = {g.name: float(g.score) for g in sub.notebooks[0].grades}
    return generate, seconds, scores


def ours(lesson, submitted: Path, out: Path, jobs: int, *extra: str) -> tuple[float, dict]:
    import subprocess

    t = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "helpers.grading", "grade", lesson.name, str(submitted),
                           "--out", str(out), "--jobs", str(jobs), "--quiet", *extra], cwd=ROOT, env=nbgrader_env(),
                          capture_output=True, text=True)
    seconds = time.monotonic() - t
    if proc.returncode:
        raise SystemExit(proc.stdout[-3000:] + proc.stderr[-3000:])
    with open(out / "grades.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    ids = [k for k in rows[0] if k.startswith("ex")] if rows else []
    for r in rows:
        if r["status"] != "graded":
            print(f"  {r['student']}: {r['status']}")
    return seconds, {r["student"]: {g: float(r[g]) for g in ids} for r in rows}


def on_cluster(lesson, submitted: Path, out: Path, workers: int) -> tuple[float, dict]:
    """``ours`` with ``--scheduler`` of a local Dask cluster; its start is counted."""
    from distributed import LocalCluster

    t = time.monotonic()
    with LocalCluster(n_workers=workers, threads_per_worker=1, host="127.0.0.1", dashboard_address=None) as cluster:
        _, scores = ours(lesson, submitted, out, workers, "--scheduler", cluster.scheduler_address)
    return time.monotonic() - t, scores


def projection(seconds: float, n: int, cores: int, total: int = 60_000, machines: int = 20,
               per_machine: int = 16) -> str:
    """The time to grade ``total`` notebooks on ``machines`` of ``per_machine`` cores, at the cost per
    notebook and core measured here (start-up and canaries included, so an upper bound)."""
    per_core = seconds * cores / n
    hours = total * per_core / (machines * per_machine) / 3600
    return (f"projection: {total:,} notebooks on {machines} machines x {per_machine} cores at {per_core:.1f} "
            f"core-s per notebook (measured here) = {hours:.2f} h, if each core grades one notebook at a "
            f"time as fast as here and each machine has the memory for {per_machine} kernels")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lesson", default="01")
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    lesson = find_lessons(ROOT, [args.lesson])[0]
    subs = submissions(lesson, args.n)
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        work = Path(tmp)
        generate, serial, expected = plain(lesson, subs, work)
        parallel, got = ours(lesson, work / "course" / "submitted", work / "grades", args.jobs)
        dask, on_dask = on_cluster(lesson, work / "course" / "submitted", work / "dask", args.jobs)
        same_bytes = (work / "grades" / "grades.csv").read_bytes() == (work / "dask" / "grades.csv").read_bytes()
    same = expected == got == on_dask
    n = args.n
    print(f"lesson {lesson.name}, {n} submissions")
    print(f"plain nbgrader autograde (serial): {serial:7.1f} s  {serial / n:5.2f} s/notebook"
          f"  (+ {generate:.1f} s generate_assignment, not counted)")
    print(f"helpers.grading --jobs {args.jobs}:      {parallel:7.1f} s  {parallel / n:5.2f} s/notebook"
          "  (everything counted)")
    print(f"helpers.grading on Dask ({args.jobs} workers): {dask:7.1f} s  {dask / n:5.2f} s/notebook"
          f"  (everything counted: cluster start, a canary per worker); grade sheet the same bytes as "
          f"--jobs {args.jobs}: {'yes' if same_bytes else 'NO'}")
    print(f"speedup: {serial / parallel:.2f}x; scores identical: {'yes' if same else 'NO'}")
    print(projection(dask, n, args.jobs))
    if not same:
        for student in sorted(set(expected) | set(got)):
            if expected.get(student) != got.get(student):
                print(f"  {student}: nbgrader {expected.get(student)} vs ours {got.get(student)}")
    met = serial / parallel >= 2 and parallel / n <= 3 and same
    print(f"targets (>= 2x, <= 3 s/notebook, identical): {'met' if met else 'NOT met'}")
    return 0 if same and same_bytes else 1


if __name__ == "__main__":
    sys.exit(main())

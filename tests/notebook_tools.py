"""Building nbgrader course folders and student submissions for the notebook tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat

from helpers.course.nbgrader_run import run_nbgrader

FAST_ENV = {"COURSE_FAST": "1", "COURSE_OFFLINE": "1", "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore"}


def exercises(nb) -> list[tuple[int, int]]:
    """(index of the answer cell, points of the graded cells that follow it) for each exercise."""
    found = []
    for i, cell in enumerate(nb.cells):
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") and cell.cell_type == "code":
            found.append([i, 0])
        elif meta.get("grade") and found:
            found[-1][1] += meta["points"]
    return [tuple(x) for x in found]


def solve(student, source, which: list[int]):
    """A copy of the student notebook with the answers of exercises ``which`` (0-based) filled in."""
    nb = nbformat.from_dict(student)
    answers = exercises(source)
    for k in which:
        index = answers[k][0]
        gid = source.cells[index].metadata.nbgrader.grade_id
        target = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == gid)
        target.source = "\n".join(line for line in source.cells[index].source.splitlines()
                                   if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION"))
    return nb


def make_course(root: Path, course: Path, lesson: str) -> Path:
    """A temporary nbgrader course folder with ``lesson`` generated into its own gradebook."""
    course.mkdir(parents=True, exist_ok=True)
    shutil.copy(root / "nbgrader_config.py", course)
    shutil.copytree(root / "solutions" / lesson, course / "solutions" / lesson)
    proc = run_nbgrader(["generate_assignment", lesson, "--force", "--log-level=WARN"], course)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return course


def submit(course: Path, lesson: str, student: str, nb) -> None:
    folder = course / "submitted" / student / lesson
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / f"{lesson}.ipynb")


def scores(course: Path, lesson: str) -> dict[str, float]:
    """Total score per student for ``lesson`` from the course's gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        return {s.student.id: s.score for s in gb.assignment_submissions(lesson)}

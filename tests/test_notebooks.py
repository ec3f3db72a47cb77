"""Every lesson end to end: the solution runs (nbval), validates, and autogrades as it should."""

from __future__ import annotations

import subprocess
import sys

import nbformat
import pytest

from helpers.course.lessons import find_lessons
from helpers.course.nbgrader_run import nbgrader_env, run_nbgrader
from tests.conftest import ROOT
from tests.notebook_tools import FAST_ENV, exercises, make_course, scores, solve, submit

pytestmark = pytest.mark.slow
LESSONS = [lesson.name for lesson in find_lessons(ROOT)]


def _read(path):
    return nbformat.read(path, as_version=4)


def _source(lesson):
    return ROOT / "solutions" / lesson / f"{lesson}.ipynb"


def _student(lesson):
    return ROOT / "notebooks" / lesson / f"{lesson}.ipynb"


@pytest.mark.parametrize("lesson", LESSONS)
def test_compared_cells_have_stored_outputs(lesson):
    """nbval compares nothing for a cell without outputs: every compared cell must have them."""
    nb = _read(_source(lesson))
    checked = [c for c in nb.cells if "nbval-check-output" in c.metadata.get("tags", [])]
    assert len(checked) >= 8, "too few cells whose output the tests compare"
    empty = [c.source.splitlines()[0] for c in checked if not c.get("outputs")]
    assert not empty, f"compared cells without stored outputs (execute and save the notebook): {empty}"
    checks = [c for c in checked if "check" in c.metadata.get("tags", [])]
    for cell in checks:
        text = "".join(o.get("data", {}).get("text/plain", "") for o in cell.outputs)
        assert ": correct." in text, f"{cell.source}: the stored solution output is not 'correct': {text}"


@pytest.mark.parametrize("lesson", LESSONS)
def test_solution_runs_top_to_bottom_in_fast_mode(lesson, tmp_path):
    """The solution executes (nbval-lax), and the tagged cells' outputs match the stored ones."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax", "--nbval-current-env",
         "-o", "addopts=", "--rootdir", str(tmp_path), str(_source(lesson))],
        capture_output=True, text=True, env=nbgrader_env(FAST_ENV), cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    n_cells = sum(c.cell_type == "code" for c in _read(_source(lesson)).cells)
    assert f"{n_cells} passed" in proc.stdout, proc.stdout[-2000:]


@pytest.mark.parametrize("lesson", LESSONS)
def test_nbgrader_validate_passes_solved_exercises_and_fails_the_unsolved_one(lesson, tmp_path):
    """The learner's Validate on the student notebook with every exercise solved but the last graded one:
    it fails on exactly that exercise's cell. One run judges both ways (solved cells pass, an unsolved one
    fails); the hidden tests on the full solution are the autograde round trip's."""
    source, student = _read(_source(lesson)), _read(_student(lesson))
    found = exercises(source)
    last = max(k for k, (_, points) in enumerate(found) if points)
    path = tmp_path / f"{lesson}.ipynb"
    nbformat.write(solve(student, source, [k for k in range(len(found)) if k != last]), path)
    proc = run_nbgrader(["validate", str(path)], tmp_path, extra_env=FAST_ENV, timeout=600)
    assert "VALIDATION FAILED ON 1 CELL(S)!" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-2000:]
    answer = exercises(student)[last][0]
    graded = next(c for c in student.cells[answer + 1:] if c.metadata.get("nbgrader", {}).get("grade"))
    failed = proc.stdout.split("VALIDATION FAILED ON 1 CELL(S)!", 1)[1]
    assert graded.source.strip().splitlines()[0][:60] in failed, failed[:2000]  # validate prints its start


@pytest.mark.parametrize("lesson", LESSONS)
def test_autograde_round_trip(lesson, tmp_path):
    """Solution: full marks. Untouched: 0. Exactly two exercises solved: exactly their points. And the
    untouched notebook, every exercise unsolved, ran top to bottom: only the exercises' own cells failed,
    every other cell ran (with the course's stand-ins, or skipping what needs an answer)."""
    source, student = _read(_source(lesson)), _read(_student(lesson))
    course = make_course(ROOT, tmp_path / "course", lesson)
    points = [p for _, p in exercises(source)]
    submit(course, lesson, "solution", source)
    submit(course, lesson, "untouched", student)
    submit(course, lesson, "two_solved", solve(student, source, [0, 2]))
    proc = run_nbgrader(["autograde", lesson, "--force"], course, extra_env=FAST_ENV, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert scores(course, lesson) == {"solution": sum(points), "untouched": 0,
                                      "two_solved": points[0] + points[2]}
    ran = _read(course / "autograded" / "untouched" / lesson / f"{lesson}.ipynb")
    code = [c for c in ran.cells if c.cell_type == "code" and c.source.strip()]
    assert all(c.execution_count for c in code), "the untouched notebook did not run to the end"
    errors = [out for c in code for out in c.get("outputs", []) if out.get("output_type") == "error"]
    assert errors, "no error output at all: the unsolved exercises' tests must fail"
    blocked = [(i, cell.source.splitlines()[0], out.get("ename"), out.get("evalue", "")[:200])
               for i, cell in enumerate(ran.cells) if cell.cell_type == "code" and not _may_fail(cell)
               for out in cell.get("outputs", []) if out.get("output_type") == "error"]
    assert not blocked, f"cells that an unsolved exercise blocked: {blocked}"


def _may_fail(cell) -> bool:
    """The cells an unsolved exercise is allowed to fail: its answer cell (a value's stub raises), its instant
    check and its graded test."""
    grader = cell.metadata.get("nbgrader", {})
    return bool(grader.get("grade") or grader.get("solution") or "check" in cell.metadata.get("tags", []))

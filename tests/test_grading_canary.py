"""The canary (the reference solution graded first, in the same sandbox), errors in cells with no
points in the review column and the summary, and a course whose data/ folder is a link."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

from helpers.course.nbgrader_run import nbgrader_env
from helpers.course.release import Lesson
from helpers.grading import report, runner, worker
from helpers.grading.course import GradedCell, GradingError
from helpers.grading.layouts import Submission
from tests.conftest import ROOT
from tests.grading_tools import LESSON, SOURCE, STUDENT

CELLS = [GradedCell("ex1_a", 1.0, "Exercise 1"), GradedCell("ex2_b", 2.0, "Exercise 2")]


class FakeWorker:
    def __init__(self, result):
        self.result, self.jobs = result, []

    def grade(self, job, limit):
        self.jobs.append(job)
        return self.result


def _canary(result, log=None):
    lesson = Lesson(LESSON, ROOT)
    template = SimpleNamespace(cells=CELLS, max_points=3.0)
    fake = FakeWorker(result)
    runner.canary(fake, lesson, template, SimpleNamespace(notebook_timeout=60), log or (lambda *a, **k: None))
    return fake


def test_canary_grades_the_reference_solution_and_says_so():
    said = []
    fake = _canary({"scores": {"ex1_a": 1.0, "ex2_b": 2.0}, "errors": [], "seconds": 2.5}, said.append)
    assert fake.jobs == [{"id": -1, "path": str(SOURCE)}]
    assert said == ["canary: the reference solution scores 3 / 3 with no error (2.5 s)"]


@pytest.mark.parametrize("result, named", [
    ({"scores": {"ex1_a": 1.0, "ex2_b": 0.0}, "messages": {"ex2_b": "FileExistsError: data"}, "errors": []},
     "graded cell ex2_b: 0 / 2 points (FileExistsError: data)"),
    ({"scores": {"ex1_a": 1.0, "ex2_b": 2.0}, "errors": ["cell 4: FileExistsError: [Errno 17] data/FashionMNIST"]},
     "cell 4: FileExistsError: [Errno 17] data/FashionMNIST (a cell with no points)"),
    ({"scores": {}, "problem": "the grading worker stopped"},
     "the notebook could not be graded: the grading worker stopped"),
])
def test_a_canary_short_of_full_marks_or_with_an_error_stops_grading_naming_the_cell(result, named):
    with pytest.raises(GradingError) as err:
        _canary(result)
    assert named in str(err.value)
    assert f"solutions/{LESSON}/{LESSON}.ipynb" in str(err.value) and "no submission was graded" in str(err.value)


def test_errors_in_the_lessons_cells_skip_answer_cells_and_unsolved_exercises():
    nb = nbformat.v4.new_notebook()
    error = {"output_type": "error", "traceback": []}
    lesson_cell = nbformat.v4.new_code_cell("x = data.fashion_mnist()")
    lesson_cell.outputs = [nbformat.v4.new_output(**error, ename="FileExistsError", evalue="data")]
    answer_cell = nbformat.v4.new_code_cell("def f():\n    return 1 / 0")
    answer_cell.metadata["nbgrader"] = {"solution": True, "grade": False, "grade_id": "ex1_answer"}
    answer_cell.outputs = [nbformat.v4.new_output(**error, ename="ZeroDivisionError", evalue="division")]
    unsolved = nbformat.v4.new_code_cell("y = f2()")
    unsolved.outputs = [nbformat.v4.new_output(**error, ename="NotImplementedError", evalue="")]
    scratch = nbformat.v4.new_code_cell("my own scratch")
    scratch.outputs = [nbformat.v4.new_output(**error, ename="NameError", evalue="scratch")]
    nb.cells = [lesson_cell, answer_cell, unsolved, scratch]
    released = {lesson_cell.source, answer_cell.source, unsolved.source}
    assert worker._other_errors(nb, released) == ["cell 0: FileExistsError: data"]
    assert len(worker._other_errors(nb)) == 4  # all of them stay in the cache, for the curious instructor


def test_cell_errors_reach_the_review_column_and_a_count_in_the_summary():
    subs = [Submission("ada", Path("ada.ipynb"), "ada.ipynb"), Submission("bea", Path("bea.ipynb"), "bea.ipynb")]
    full = {"ex1_a": 1.0, "ex2_b": 2.0}
    results = {"ada": {"scores": full, "cell_errors": []},
               "bea": {"scores": full, "cell_errors": ["cell 4: FileExistsError: data", "cell 9: NameError: x"]}}
    rows = report.build_rows(subs, results, [], CELLS, None)
    assert rows[0].review == []
    assert rows[1].review == ["error in a cell with no points: cell 4: FileExistsError: data (and 1 more)"]
    text = report.summary(rows, [], LESSON, CELLS)
    assert "1 notebook(s) with errors in the lesson's cells that carry no points" in text


def test_the_data_folder_is_given_to_the_kernels_with_its_links_resolved(tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)
    (tmp_path / "shared-disk").mkdir()
    (tmp_path / "course").mkdir()
    (tmp_path / "course" / "data").symlink_to(tmp_path / "shared-disk")
    assert runner.data_folder(tmp_path / "course") == str((tmp_path / "shared-disk").resolve())
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "course" / "data"))
    assert runner.data_folder(Path("/nowhere")) == str((tmp_path / "shared-disk").resolve())


# ------------------------------------------------------------------ end to end, on a copy of the course


def _course_copy(base: Path) -> Path:
    """Lesson 01 of the course in a folder of its own, with data/ a link to the checkout's data folder."""
    course = base / "course"
    for rel in (f"solutions/{LESSON}", f"notebooks/{LESSON}", "nbgrader_config.py", "pyproject.toml"):
        (course / rel).parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if (ROOT / rel).is_dir() else shutil.copy)(ROOT / rel, course / rel)
    (course / "data").symlink_to((ROOT / "data").resolve())
    return course


def _grade(course: Path, submissions: Path, out: Path):
    return subprocess.run([sys.executable, "-m", "helpers.grading", "--root", str(course), "grade", "01",
                           str(submissions), "--out", str(out), "--quiet", "--jobs", "1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, env=nbgrader_env())


@pytest.mark.slow
def test_a_course_whose_data_folder_is_a_link_grades_and_a_broken_reference_stops_grading(tmp_path):
    course = _course_copy(tmp_path)
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(SOURCE, subs / "ada.ipynb")
    shutil.copy(STUDENT, subs / "bea.ipynb")

    proc = _grade(course, subs, tmp_path / "out")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "canary: the reference solution scores 13 / 13 with no error" in proc.stdout
    sheet = (tmp_path / "out" / "grades.csv").read_text().splitlines()
    ada = next(line for line in sheet if line.startswith("ada,"))
    assert ada.endswith(",13,13,graded,"), ada  # full marks and nothing to review

    # An environment fault in a cell that carries no points: the reference no longer runs cleanly.
    source = course / "solutions" / LESSON / f"{LESSON}.ipynb"
    nb = nbformat.read(source, as_version=4)
    setup = next(i for i, c in enumerate(nb.cells) if "setup" in c.metadata.get("tags", []))
    nb.cells.insert(setup + 1, nbformat.v4.new_code_cell('raise FileExistsError("data/FashionMNIST")'))
    nbformat.write(nb, source)
    proc = _grade(course, subs, tmp_path / "out-broken")
    assert proc.returncode == 3, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "the canary failed" in proc.stderr
    assert f"cell {setup + 1}: FileExistsError: data/FashionMNIST (a cell with no points)" in proc.stderr
    assert not (tmp_path / "out-broken" / "grades.csv").exists()
    assert os.path.islink(course / "data")

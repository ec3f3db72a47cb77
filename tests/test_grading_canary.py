"""The canary (the reference solution graded first, in the same sandbox), errors in cells with no
points in the review column and the summary, and a course whose data/ folder is a link."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

from helpers.course.lessons import Lesson
from helpers.grading import report, runner, worker
from helpers.grading.course import GradedCell, GradingError
from helpers.grading.layouts import Submission
from tests.conftest import ROOT
from tests.grading_tools import LESSON, SOURCE

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

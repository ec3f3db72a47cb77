"""Grades into the tools schools use: Canvas's gradebook import (canvas.csv) and a Gradescope
autograder (dist/gradescope/<lesson>.zip). Unit tests on the Canvas module with made-up rows,
then one end-to-end `grade --canvas` and one Gradescope autograder run on real lesson 01 notebooks."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import zipfile

import nbformat
import pytest

from helpers.config import data_dir
from helpers.course.nbgrader_run import nbgrader_env
from helpers.grading import canvas, gradescope
from helpers.grading.course import GradedCell
from helpers.grading.report import Row
from tests.conftest import ROOT
from tests.grading_tools import FULL, IDS, LESSON, POINTS, SOURCE, STUDENT, read

HEADER = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "01 Tensors (123456)", "02 Shapes (123457)",
          "Current Score", "Final Score"]
ROSTER = [HEADER,
          ["    Points Possible", "", "", "", "", "15", "10", "(read only)", "(read only)"],
          ["", "", "", "", "", "Manual Posting", "", "", ""],
          ["Doe, Jane", "12345", "S001", "jdoe@uni.edu", "Sec A", "", "", "", ""],
          ["Roe, Rick", "12346", "S002", "rroe@uni.edu", "Sec A", "", "", "", ""],
          ["Poe, Ann", "12347", "S003", "apoe@uni.edu", "Sec B", "", "", "", ""],
          ["Student, Test", "99999", "", "", "Sec A", "", "", "", ""]]


def _write(path, table):
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(table)
    return path


def _read(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


class Log:
    """Collects what the module prints (warnings go to stderr, through ``file=``)."""

    def __init__(self):
        self.lines = []

    def __call__(self, text, file=None):
        self.lines.append(text)

    def warnings(self):
        return [line for line in self.lines if line.startswith("warning:")]


def _row(student, total, problem=""):
    return Row(student, {"ex": float(total)}, {}, problem)


# ------------------------------------------------------------------ Canvas: reading the roster

def test_roster_skips_points_possible_read_only_and_posting_rows(tmp_path):
    roster = canvas.read_roster(_write(tmp_path / "r.csv", ROSTER), LESSON)
    assert [s["Student"] for s in roster.students] == ["Doe, Jane", "Roe, Rick", "Poe, Ann", "Student, Test"]
    assert (roster.column, roster.existing) == ("01 Tensors (123456)", True)
    table = [HEADER[:5], ["Read Only", "", "", "", ""], ["Doe, Jane", "12345", "S001", "jdoe", "A"]]
    assert len(canvas.read_roster(_write(tmp_path / "ro.csv", table), LESSON).students) == 1


@pytest.mark.parametrize("columns, lesson, expected", [
    (["01 Tensors (123456)", "02 Shapes (7)"], "02_shapes", ("02 Shapes (7)", True)),
    (["Lab 01_tensors_autograd (55)", "Current Score"], LESSON, ("Lab 01_tensors_autograd (55)", True)),
    (["010 Extra (5)", "Current Score", "Final Score"], LESSON, (LESSON, False)),  # 010 is not lesson 01
])
def test_lesson_column_is_the_rosters_own_or_a_new_one(columns, lesson, expected):
    assert canvas.lesson_column(list(canvas.IDENTITY) + columns, lesson) == expected


@pytest.mark.parametrize("content, said", [
    ("Name,ID,Section\nDoe,1,A\n", "no Student, SIS User ID, SIS Login ID column"),
    (b"PK\x03\x04\x14\x00\x00\x00\x08\x00\xff\xfe\x9c", "not a CSV text file"),
    ("", "is empty"),
    ("Student,ID,SIS User ID,SIS Login ID,Section\n    Points Possible,,,,\n", "lists no students"),
    ("Student,ID,SIS User ID,SIS Login ID,Section,01 A (1),01 B (2)\nDoe,1,S,s,A,,\n", "several roster columns"),
])
def test_bad_roster_says_what_is_wrong(tmp_path, content, said):
    path = tmp_path / "roster.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(canvas.RosterError, match=said):
        canvas.read_roster(path, LESSON)
    with pytest.raises(canvas.RosterError, match="does not exist"):
        canvas.read_roster(tmp_path / "missing.csv", LESSON)


# ------------------------------------------------------------------ Canvas: writing canvas.csv

def test_canvas_csv_matches_by_sis_login_and_canvas_id_and_warns(tmp_path):
    """The documented import format: identity columns, the lesson's column, a Points Possible row;
    SIS User ID, SIS Login ID (also its part before @) and Canvas ID all match; the unmatched
    graded student and the roster students without a grade are named; empty cells, never 0."""
    roster = canvas.read_roster(_write(tmp_path / "r.csv", ROSTER), LESSON)
    rows = [_row("S001", 13), _row("rroe", 7.5), _row("poe_ann", 0), _row("ghost", 4), _row("bad", 0, "timed out")]
    log = Log()
    canvas.export(tmp_path / "canvas.csv", roster, 13, rows, [_Sub("poe_ann", "12347")], log)
    table = _read(tmp_path / "canvas.csv")
    assert table[0] == [*canvas.IDENTITY, "01 Tensors (123456)"]
    assert table[1] == ["Points Possible", "", "", "", "", "13"]
    assert table[2:] == [["Doe, Jane", "12345", "S001", "jdoe@uni.edu", "Sec A", "13"],
                         ["Roe, Rick", "12346", "S002", "rroe@uni.edu", "Sec A", "7.5"],
                         ["Poe, Ann", "12347", "S003", "apoe@uni.edu", "Sec B", "0"],
                         ["Student, Test", "99999", "", "", "Sec A", ""]]
    warnings = log.warnings()
    assert any("not in the roster" in w and "ghost (4 points)" in w and "bad (" in w for w in warnings), warnings
    assert any("no submission" in w and "Student, Test" in w and "left empty" in w for w in warnings), warnings


def test_sis_user_id_wins_over_login_and_canvas_id(tmp_path):
    table = [HEADER[:5], ["A", "111", "S9", "x", "s"], ["B", "222", "x", "S9@u", "s"], ["C", "S9", "y", "z", "s"]]
    roster = canvas.read_roster(_write(tmp_path / "r.csv", table), LESSON)
    assert canvas.match(roster, "S9", None)["Student"] == "A"
    assert canvas.match(roster, "nobody", "222")["Student"] == "B"
    assert canvas.match(roster, "S9@u", None)["Student"] == "B"


def test_ungraded_and_doubled_students_are_left_empty_and_named(tmp_path):
    roster = canvas.read_roster(_write(tmp_path / "r.csv", ROSTER), LESSON)
    log = Log()
    cells = canvas.scores_by_id(roster, [_row("S001", 3, "not a notebook"), _row("S002", 5), _row("rroe", 6)], {},
                                log)
    assert cells == {"12345": "", "12346": ""}
    assert any("could not be graded" in w and "S001 (not a notebook)" in w for w in log.warnings())
    assert any("match two submissions" in w and "Roe, Rick" in w for w in log.warnings())


def test_lessons_graded_one_after_another_build_one_file(tmp_path):
    """A second lesson keeps the first one's column and points; a student added to the roster since
    gets an empty cell for the old lesson; one who left keeps their row, with a warning."""
    first = canvas.read_roster(_write(tmp_path / "r1.csv", ROSTER), LESSON)
    out = tmp_path / "canvas.csv"
    canvas.export(out, first, 13, [_row("S001", 13), _row("S002", 2)], [], Log())
    later = [r for r in ROSTER if r[0] != "Roe, Rick"] + [["New, Kid", "12348", "S004", "nkid", "Sec B"] + [""] * 4]
    second = canvas.read_roster(_write(tmp_path / "r2.csv", later), "02_shapes")
    log = Log()
    canvas.export(out, second, 10, [_row("S001", 9), _row("S004", 10)], [], log)
    table = _read(out)
    assert table[0] == [*canvas.IDENTITY, "01 Tensors (123456)", "02 Shapes (123457)"]
    assert table[1] == ["Points Possible", "", "", "", "", "13", "10"]
    by_name = {r[0]: r[5:] for r in table[2:]}
    assert by_name == {"Doe, Jane": ["13", "9"], "Poe, Ann": ["", ""], "Student, Test": ["", ""],
                       "New, Kid": ["", "10"], "Roe, Rick": ["2", ""]}
    assert any("earlier canvas.csv are not in this roster" in w and "Roe, Rick" in w for w in log.warnings())
    canvas.export(out, second, 10, [_row("S001", 10)], [], Log())  # grading the lesson again replaces its column
    assert _read(out)[0] == table[0] and _read(out)[2][5:] == ["13", "10"]


class _Sub:
    def __init__(self, student, canvas_id):
        self.student, self.canvas_id = student, canvas_id


# ------------------------------------------------------------------ end to end: grade --canvas

def _grade(submissions, out, *extra):
    return subprocess.run([sys.executable, "-m", "helpers.grading", "grade", "01", str(submissions), "--out", str(out),
                           "--quiet", *extra], cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env=nbgrader_env())


@pytest.mark.slow
def test_grade_writes_canvas_csv_from_an_lms_zip(tmp_path):
    """An LMS zip of two students (the solution and the untouched student notebook), matched by
    the Canvas user id in their file names, plus a roster student who submitted nothing."""
    archive = tmp_path / "submissions.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(f"doe_jane_12345_6789_{LESSON}.ipynb", nbformat.writes(read(SOURCE)))
        zf.writestr(f"roe_rick_12346_6790_{LESSON}.ipynb", nbformat.writes(read(STUDENT)))
    roster = _write(tmp_path / "roster.csv", [[c.replace("S00", "X") for c in r] for r in ROSTER])
    proc = _grade(archive, tmp_path / "out", "--canvas", str(roster))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = _read(tmp_path / "out" / "canvas.csv")
    assert table[0] == [*canvas.IDENTITY, "01 Tensors (123456)"]
    assert table[1] == ["Points Possible", "", "", "", "", f"{FULL:g}"]
    assert {r[0]: r[5] for r in table[2:]} == {"Doe, Jane": f"{FULL:g}", "Roe, Rick": "0", "Poe, Ann": "",
                                                "Student, Test": ""}
    assert "no submission" in proc.stderr and "Poe, Ann" in proc.stderr


def test_bad_roster_stops_before_grading(tmp_path):
    (tmp_path / "subs").mkdir()
    nbformat.write(read(STUDENT), tmp_path / "subs" / "ann.ipynb")
    bad = tmp_path / "roster.csv"
    bad.write_text("Name,Email\nDoe,d@u\n")
    proc = _grade(tmp_path / "subs", tmp_path / "out", "--canvas", str(bad))
    assert proc.returncode == 2
    assert "no Student, ID, SIS User ID, SIS Login ID, Section columns" in proc.stderr
    assert not (tmp_path / "out").exists()  # nothing graded, nothing written


# ------------------------------------------------------------------ Gradescope

def _check_results(result, cells_max=None):
    """results.json as Gradescope's specification has it: tests with name, score <= max_score,
    output and visibility; their scores add up to the top-level score."""
    assert isinstance(result["score"], float) and isinstance(result["output"], str)
    for test in result["tests"]:
        assert {"name", "score", "max_score", "output", "visibility"} <= set(test)
        assert 0 <= test["score"] <= test["max_score"]
        assert test["visibility"] in ("visible", "after_published")
    assert sum(t["score"] for t in result["tests"]) == pytest.approx(result["score"])
    if cells_max is not None:
        assert [t["max_score"] for t in result["tests"]] == cells_max


def test_results_one_test_per_graded_cell():
    cells = [GradedCell("ex1", 1, "Exercise 1: floats", hidden="assert x"), GradedCell("ex2", 2, "Exercise 2: mean")]
    row = Row("submission", {"ex1": 1.0, "ex2": 0.0}, {"ex2": "expected a tensor of shape (3,), got (3, 1)"})
    result = gradescope.results(row, cells)
    _check_results(result, [1, 2])
    assert [(t["name"], t["score"], t["visibility"]) for t in result["tests"]] == [
        ("Exercise 1: floats", 1.0, "after_published"), ("Exercise 2: mean", 0.0, "visible")]
    assert result["tests"][1]["output"] == "incorrect: expected a tensor of shape (3,), got (3, 1)"
    assert result["score"] == 1.0 and result["output"] == "1 / 3 points."
    broken = gradescope.results(Row("s", {"ex1": 0.0, "ex2": 0.0}, {}, "timed out after 900 s"), cells)
    assert broken["score"] == 0 and "could not be graded: timed out" in broken["output"]


@pytest.fixture(scope="module")
def autograder(tmp_path_factory):
    """dist/gradescope/<lesson>.zip built by the command, unzipped as Gradescope lays it out."""
    dist = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "helpers.grading", "gradescope", "01", "--out", str(dist)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    archive = dist / f"{LESSON}.zip"
    with zipfile.ZipFile(archive) as zf:
        names = set(zf.namelist())
        modes = {i.filename: i.external_attr >> 16 for i in zf.infolist()}
    assert {"setup.sh", "run_autograder", f"solutions/{LESSON}/{LESSON}.ipynb", "helpers/grading/runner.py",
            "nbgrader_config.py", "requirements.txt", "pyproject.toml"} <= names
    assert not any(n.startswith(("solutions/02", "tests/", ".git", "data/")) or "__pycache__" in n for n in names)
    assert modes["run_autograder"] & 0o111 and modes["setup.sh"] & 0o111
    return archive


def _autograde(archive, home, notebooks, python=sys.executable):
    """Lay out ``home`` like /autograder (source/, submission/, results/) and run run_autograder
    (setup.sh is skipped: the course's venv is given as COURSE_PYTHON)."""
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(home / "source")
    os.chmod(home / "source" / "run_autograder", 0o755)
    (home / "submission").mkdir()
    for name, nb in notebooks.items():
        nbformat.write(nb, home / "submission" / name)
    # The data: on Gradescope setup.sh prepares them in source/data; here they are the checkout's.
    env = nbgrader_env({"AUTOGRADER_ROOT": str(home), "COURSE_PYTHON": python, "COURSE_DATA_DIR": str(data_dir())})
    proc = subprocess.run([str(home / "source" / "run_autograder")], cwd=home, capture_output=True, text=True,
                          timeout=900, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((home / "results" / "results.json").read_text()), proc


@pytest.mark.slow
def test_gradescope_autograder_gives_the_solution_full_marks(autograder, tmp_path):
    result, proc = _autograde(autograder, tmp_path, {"my_work.ipynb": read(SOURCE)})
    _check_results(result, [float(POINTS[gid]) for gid in IDS])
    assert result["score"] == FULL, proc.stdout[-3000:]
    assert all(t["visibility"] == "after_published" and t["output"] == "correct" for t in result["tests"])
    assert "canary: the reference solution scores" in proc.stdout  # the course's own grader ran


@pytest.mark.parametrize("notebooks, said", [
    ({}, "no notebook (.ipynb)"),
    ({"a.ipynb": None, "b.ipynb": None}, "2 notebooks (a.ipynb, b.ipynb)"),
])
def test_gradescope_no_or_several_notebooks_is_a_clear_zero(autograder, tmp_path, notebooks, said):
    result, _ = _autograde(autograder, tmp_path, {k: read(STUDENT) for k in notebooks})
    assert result["score"] == 0 and result["tests"] == [] and said in result["output"]


def test_gradescope_writes_results_even_when_python_fails(autograder, tmp_path):
    result, _ = _autograde(autograder, tmp_path, {"x.ipynb": read(STUDENT)}, python="/bin/false")
    assert result["score"] == 0 and "failed before it could grade" in result["output"]


def test_gradescope_run_turns_any_error_into_a_failure_result(tmp_path, monkeypatch):
    def broken(*args):
        raise OSError("disk full")

    monkeypatch.setattr(gradescope, "grade_submission", broken)
    result = gradescope.run(ROOT, LESSON, tmp_path)
    assert json.loads((tmp_path / "results" / "results.json").read_text()) == result
    assert result["score"] == 0 and "OSError: disk full" in result["output"]

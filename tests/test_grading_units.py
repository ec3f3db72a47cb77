"""The grading command's parts that run no notebook: layouts, reading and normalising
submissions, the review flags, the grade sheet and feedback, the CLI's errors, the bundle."""

from __future__ import annotations

import csv
import json
import os
import zipfile
from datetime import datetime, timezone

import nbformat
import pytest

from helpers.grading import bundle, flags, layouts, report, worker
from helpers.grading.__main__ import main
from helpers.grading.course import graded_cells, trusted_aliases
from tests.conftest import ROOT
from tests.grading_tools import LESSON, SOURCE, STUDENT, cell, read, solved

LESSONS = [LESSON, "02_nn_module"]


def _write(path, nb=None, text=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    if text is not None:
        path.write_text(text)
    else:
        nbformat.write(nb if nb is not None else read(STUDENT), path)
    return path


# ------------------------------------------------------------------ layouts


def test_nbgrader_layout_from_course_folder_or_submitted(tmp_path):
    for student in ("alice", "bob"):
        _write(tmp_path / "submitted" / student / LESSON / f"{LESSON}.ipynb")
    (tmp_path / "submitted" / "alice" / LESSON / "timestamp.txt").write_text("2026-12-02 10:00:00.000000 UTC")
    _write(tmp_path / "submitted" / "carol" / "02_nn_module" / "02_nn_module.ipynb")  # wrong lesson only
    for given in (tmp_path, tmp_path / "submitted"):
        subs, problems, layout = layouts.collect(given, LESSON, LESSONS, tmp_path / "scratch")
        assert layout == "nbgrader"
        assert [s.student for s in subs] == ["alice", "bob"]
        assert subs[0].submitted_at == datetime(2026, 12, 2, 10, tzinfo=timezone.utc)
        assert [(p.student, p.message) for p in problems] == [
            ("carol", f"has no {LESSON}/ folder (lessons found: 02_nn_module)")]


def test_nbgrader_layout_accepts_a_renamed_notebook_but_not_two(tmp_path):
    _write(tmp_path / "submitted" / "alice" / LESSON / "copy of lesson.ipynb")
    _write(tmp_path / "submitted" / "bob" / LESSON / "a.ipynb")
    _write(tmp_path / "submitted" / "bob" / LESSON / "b.ipynb")
    subs, problems, _ = layouts.collect(tmp_path, LESSON, LESSONS, tmp_path / "scratch")
    assert [s.student for s in subs] == ["alice"]
    assert problems[0].student == "bob" and f"none named {LESSON}.ipynb" in problems[0].message


def test_flat_folder_takes_ids_from_file_names(tmp_path):
    _write(tmp_path / "jane_doe.ipynb")
    _write(tmp_path / f"max_mustermann_{LESSON}.ipynb")
    _write(tmp_path / "essay.pdf", text="not a notebook")
    _write(tmp_path / "sam_02_nn_module.ipynb")
    subs, problems, layout = layouts.collect(tmp_path, LESSON, LESSONS, tmp_path / "scratch")
    assert layout == "flat"
    assert [s.student for s in subs] == ["jane_doe", "max_mustermann"]
    assert {p.source: p.message for p in problems} == {
        "essay.pdf": "is not a notebook (.ipynb); skipped",
        "sam_02_nn_module.ipynb": f"is for lesson 02_nn_module, not {LESSON}; skipped"}


def test_canvas_zip_names_late_marker_and_resubmissions(tmp_path):
    archive = tmp_path / "export.zip"
    nb = nbformat.writes(read(STUDENT))
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(f"doe_jane_12345_6789_{LESSON}.ipynb", nb)
        zf.writestr(f"roe_rick_late_22222_7000_{LESSON}.ipynb", nb)
        zf.writestr(zipfile.ZipInfo(f"poe_ed_33333_7001_{LESSON}.ipynb", (2026, 1, 1, 0, 0, 0)), nb)
        zf.writestr(zipfile.ZipInfo(f"poe_ed_33333_7002_{LESSON}-1.ipynb", (2026, 1, 2, 0, 0, 0)), nb)
        zf.writestr("poe_ed_33333_7003_notes.txt", "hello")
        zf.writestr("__MACOSX/._junk", "junk")
        zf.writestr("../../escape.ipynb", nb)
    before = archive.read_bytes()
    subs, problems, layout = layouts.collect(archive, LESSON, LESSONS, tmp_path / "scratch")
    assert archive.read_bytes() == before
    assert layout == "zip (flat)"
    assert [(s.student, s.marked_late) for s in subs] == [("doe_jane", False), ("escape", False),
                                                         ("poe_ed", False), ("roe_rick", True)]
    assert subs[2].source.endswith(f"7002_{LESSON}-1.ipynb")
    assert not (tmp_path / "escape.ipynb").exists()
    messages = {p.source.split(":", 1)[1]: p.message for p in problems}
    assert messages["poe_ed_33333_7003_notes.txt"] == "is not a notebook (.ipynb); skipped"
    assert "older submission of poe_ed" in messages[f"poe_ed_33333_7001_{LESSON}.ipynb"]


def test_unknown_layouts_are_clear_errors(tmp_path):
    with pytest.raises(layouts.LayoutError, match="does not exist"):
        layouts.collect(tmp_path / "nowhere", LESSON, LESSONS, tmp_path)
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "other").mkdir()
    with pytest.raises(layouts.LayoutError, match="holds no notebooks and no nbgrader folders"):
        layouts.collect(tmp_path / "empty", LESSON, LESSONS, tmp_path)
    _write(tmp_path / "grades.txt", text="x")
    with pytest.raises(layouts.LayoutError, match="not a folder or a zip"):
        layouts.collect(tmp_path / "grades.txt", LESSON, LESSONS, tmp_path)


# ------------------------------------------------------------------ reading submissions


@pytest.mark.parametrize("content, message", [
    (b"", "the file is empty"),
    (b'{"cells": [', "not valid notebook JSON"),
    (b"[1, 2]", "not a Jupyter notebook"),
    (json.dumps({"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "worksheets": []}).encode(),
     "old format nbformat 3"),
    (json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"cell_type": "code"}]}).encode(),
     "malformed"),
])
def test_unreadable_submissions_get_a_message(tmp_path, content, message):
    path = tmp_path / "x.ipynb"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        worker.read_notebook(path)


def test_normalise_puts_back_the_source_metadata():
    source = read(SOURCE)
    trusted = {c.metadata.nbgrader["grade_id"]: {**c.metadata.nbgrader, "cell_type": c.cell_type}
               for c in source.cells if "nbgrader" in c.metadata}
    nb = solved()
    meta = cell(nb, "ex3_linear_forward").metadata.nbgrader
    meta["points"], meta["locked"] = 100, False
    cell(nb, "ex4_flatten_images").metadata.nbgrader["grade_id"] = "ex4_mine"
    cell(nb, "ex5_mse_grads").cell_type = "markdown"
    worker.normalise(nb, trusted)
    assert cell(nb, "ex3_linear_forward").metadata.nbgrader["points"] == 2
    assert cell(nb, "ex3_linear_forward").metadata.nbgrader["locked"] is True
    assert not any(c.metadata.get("nbgrader", {}).get("grade_id") == "ex4_mine" for c in nb.cells)
    assert cell(nb, "ex5_mse_grads").cell_type == "code"


def test_lesson_facts_come_from_the_source():
    source = read(SOURCE)
    cells = graded_cells(source)
    assert [c.grade_id for c in cells][0] == "ex1_to_float_pixels"
    assert cells[0].title.startswith("Exercise 1:") and "manual_seed(101)" in cells[0].hidden
    aliases = trusted_aliases(source)
    assert aliases["checks"] == ["helpers.checks", "lesson01"] and aliases["torch"] == ["torch", None]


def test_flags_point_at_tampering_but_not_at_honest_code():
    released = {c.source for c in read(STUDENT).cells}
    assert flags.scan(read(SOURCE), {"checks", "torch"}, released) == []
    nb = solved()
    cell(nb, "ex2_answer").source += "\nchecks.ex2.grade = print\nimport builtins\nAssertionError = Warning\n"
    notes = flags.scan(nb, {"checks", "torch"}, released)
    assert "assigns to checks.ex2.grade" in notes and "touches the builtins" in notes
    assert "assigns to AssertionError" in notes


# ------------------------------------------------------------------ reports


def _rows():
    cells = graded_cells(read(SOURCE))
    hidden = next(line for line in cells[1].hidden.splitlines() if len(line.strip()) > 12).strip()
    results = {"ann": {"scores": {"ex1_to_float_pixels": 1.0, "ex2_standardize_features": 0.0},
                       "messages": {"ex2_standardize_features": "❌ Exercise 2: incorrect. 3 of 8 elements differ."}},
               "ben": {"scores": {"ex2_standardize_features": 0.0}, "flags": ["uses ctypes"],
                       "messages": {"ex2_standardize_features": f"ValueError: I saw {hidden}"}}}
    subs = [layouts.Submission("ann", ROOT, "ann.ipynb", datetime(2026, 12, 1, tzinfo=timezone.utc)),
            layouts.Submission("ben", ROOT, "ben.ipynb", datetime(2026, 12, 3, tzinfo=timezone.utc))]
    problems = [layouts.Problem("cy.pdf", "is not a notebook (.ipynb); skipped", "cy")]
    due = datetime(2026, 12, 2, tzinfo=timezone.utc)
    return report.build_rows(subs, results, problems, cells, due), cells, due, hidden


def test_grade_sheet_columns_and_late_flag(tmp_path):
    rows, cells, due, _ = _rows()
    report.write_csv(tmp_path / "grades.csv", rows, LESSON, cells, due)
    table = list(csv.DictReader(open(tmp_path / "grades.csv", encoding="utf-8")))
    assert list(table[0])[:3] == ["student", "lesson", "ex1_to_float_pixels"]
    assert [(r["student"], r["total"], r["max"], r["late"]) for r in table] == [
        ("ann", "1", "13", "no"), ("ben", "0", "13", "yes"), ("cy", "0", "13", "no")]
    assert table[2]["status"] == "cy.pdf is not a notebook (.ipynb); skipped"
    assert table[1]["review"] == "uses ctypes"


def test_each_lessons_sheet_stays_when_the_next_is_graded_into_the_same_out(tmp_path):
    rows, cells, due, _ = _rows()
    report.write_sheets(tmp_path, rows, LESSON, cells, due)
    report.write_sheets(tmp_path, rows[:1], "02_nn_module", cells, None)
    first = list(csv.DictReader(open(tmp_path / f"grades-{LESSON}.csv", encoding="utf-8")))
    assert [(r["student"], r["lesson"], r["late"]) for r in first] == [(s, LESSON, late) for s, late in
                                                                       (("ann", "no"), ("ben", "yes"), ("cy", "no"))]
    last = (tmp_path / "grades.csv").read_text(encoding="utf-8")
    assert last == (tmp_path / "grades-02_nn_module.csv").read_text(encoding="utf-8")
    assert [r["lesson"] for r in csv.DictReader(open(tmp_path / "grades.csv", encoding="utf-8"))] == ["02_nn_module"]


def test_feedback_shows_results_and_messages_never_hidden_tests(tmp_path):
    rows, cells, _, hidden = _rows()
    report.write_feedback(tmp_path, rows, LESSON, cells)
    ann = (tmp_path / "ann" / f"{LESSON}.html").read_text()
    assert "1 / 13" in ann and "3 of 8 elements differ" in ann and "not attempted" not in ann
    ben = (tmp_path / "ben" / f"{LESSON}.html").read_text()
    assert report.WITHHELD in ben and hidden not in ben
    for page in tmp_path.rglob("*.html"):
        text = page.read_text()
        for c in cells:
            for line in c.hidden.splitlines():
                assert len(line.strip()) < 12 or line.strip() not in text
    summary = report.summary(rows, [], LESSON, cells)
    assert "class mean 0.33 / 13" in summary and "ex1_to_float_pixels" in summary and "pass rate  33% (1/3)" in summary


# ------------------------------------------------------------------ the command line


def test_cli_help_and_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0 and "grade" in capsys.readouterr().out
    assert main(["--root", str(ROOT), "grade", "99", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "no lesson called '99'" in capsys.readouterr().err
    assert main(["--root", str(ROOT), "grade", "01", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err


# ------------------------------------------------------------------ the student bundle


def _secrets_by_regex():
    """Independently of the bundle code: every solution and hidden-test body, line by line, and the
    instructor notebooks' open text (their sources with those bodies cut out)."""
    import re

    found, public = [], []
    for path in (ROOT / "solutions").glob("*/*.ipynb"):
        for c in json.loads(path.read_text())["cells"]:
            src = "".join(c["source"])
            for start, end in (("### BEGIN SOLUTION", "### END SOLUTION"),
                               ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")):
                pattern = re.escape(start) + "(.*?)" + re.escape(end)
                found += [m.strip() for m in re.findall(pattern, src, re.S)]
                src = re.sub(pattern, "\n", src, flags=re.S)
            public += [line.strip() for line in src.splitlines() if line.strip()]
    return found, "\n".join(public)


def test_student_bundle_has_no_solutions_or_hidden_tests(tmp_path, capsys):
    out = tmp_path / "student-bundle.zip"
    assert main(["--root", str(ROOT), "bundle", "--out", str(out)]) == 0, capsys.readouterr().err
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        files = {n: zf.read(n) for n in names}
    assert f"notebooks/{LESSON}/{LESSON}.ipynb" in names and "README.md" in names
    assert "helpers/checks/lesson01.py" in names
    assert not [n for n in names if n.startswith(("helpers/course", "helpers/grading", "solutions", "tests"))]
    secrets, public = _secrets_by_regex()
    assert len(secrets) >= 10
    for name, data in files.items():
        text = "\n".join(line.strip() for line in bundle.readable_text(name, data).splitlines() if line.strip())
        for body in secrets:
            normal = "\n".join(line.strip() for line in body.splitlines() if line.strip())
            if len(normal) < bundle.MIN_SECRET_CHARS or normal in public:
                continue  # `model.train()`, or an earlier lesson's answer that a later lesson shows openly
            assert normal not in text, f"{name} contains a solution or hidden test: {body[:60]}"
            assert "BEGIN HIDDEN TESTS" not in text and "BEGIN SOLUTION" not in text, name


def test_bundle_check_catches_a_planted_solution():
    secrets = bundle.secrets(ROOT)
    longest = max(secrets, key=lambda body: len("\n".join(body)))
    planted = {"helpers/cheat.py": ("# answers\n" + "\n".join("    " + ln for ln in longest)).encode()}
    assert bundle.leaks(planted, secrets)
    assert bundle.leaks(planted, secrets, bundle.public_text(ROOT))
    assert bundle.leaks({"helpers/ok.py": b"print('hello')\n"}, secrets) == []
    # Four lines in a row of an answer give it away, unless the lessons show those lines openly.
    window = {"helpers/cheat.py": "\n".join(longest[:4]).encode()}
    assert bundle.leaks(window, [longest]) and not bundle.leaks(window, [longest], "\n".join(longest[:4]))


def test_bundle_check_ignores_what_the_lessons_show_openly():
    """Lesson 04 prints its parameter count with the code that answers a lesson 02 exercise, and lesson
    05's "find the bug" loops share lines with train_one_epoch: course material, not a leak."""
    secrets, public = bundle.secrets(ROOT), bundle.public_text(ROOT)
    assert "return sum(p.numel() for p in model.parameters() if p.requires_grad)" in public
    lesson04 = {"notebooks/04_cnn/04_cnn.ipynb": (ROOT / "notebooks/04_cnn/04_cnn.ipynb").read_bytes()}
    assert bundle.leaks(lesson04, secrets) and not bundle.leaks(lesson04, secrets, public)


def test_grading_package_is_never_imported_by_learner_code():
    for path in (ROOT / "helpers").rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(("helpers/grading", "helpers/course")):
            continue
        text = path.read_text()
        assert "helpers.grading" not in text and "from helpers import grading" not in text, rel
    assert os.path.isfile(ROOT / "helpers" / "grading" / "__main__.py")


def test_grading_uids_are_never_shared_between_runs():
    from helpers.grading import sandbox

    first = sandbox.claim_uids(2)
    second = sandbox.claim_uids(2)
    try:
        assert not set(first) & set(second)
        assert all(sandbox.UID_BASE <= uid < sandbox.UID_BASE + sandbox.UID_RANGE for uid in first + second)
    finally:
        sandbox.release_uids(first + second)


def test_what_a_kernel_leaves_running_is_killed_and_the_kernel_kept():
    """A stand-in kernel (a session leader) whose children keep forking, as a fork bomb's copies do:
    kill_strays stops them all, whatever they do meanwhile, and leaves the leader alone."""
    import subprocess
    import sys
    import time

    from helpers.grading import sandbox

    code = ("import os, time\n"
            "for _ in range(3):\n"
            "    if os.fork() == 0:\n"
            "        while True:\n"
            "            try:\n"
            "                os.fork()\n"
            "            except OSError:\n"
            "                pass\n"
            "            time.sleep(0.05)\n"
            "time.sleep(60)\n")
    leader = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        members = lambda: [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != leader.pid  # noqa: E731
                           and sandbox._session_of(int(p)) == leader.pid]
        deadline = time.monotonic() + 20
        while len(members()) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(members()) >= 6, "the stand-in kernel did not start forking"
        for _ in range(5):  # what the grader does while a cell runs (a copy may fork while the others stop)
            sandbox.freeze(sandbox.strays(leader.pid, None))
            time.sleep(0.05)
        state = lambda p: open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[0]  # noqa: E731
        assert {state(p) for p in members()} <= {"T", "Z"}, "frozen copies must not run (stopped or gone)"
        assert leader.pid not in sandbox.strays(leader.pid, None) and state(leader.pid) != "T"
        assert sandbox.kill_strays(leader.pid, None) >= 6
        time.sleep(0.2)
        assert [p for p in members() if sandbox._running(p)] == []
        assert sandbox.kill_strays(leader.pid, None) == 0  # zombies (killed, not yet reaped) are left alone
        assert leader.poll() is None, "the kernel itself must survive"
    finally:
        os.killpg(leader.pid, 9)
        leader.wait()


def test_a_course_inside_a_hidden_folder_stays_reachable_with_its_secrets_hidden(tmp_path):
    """A course checked out under /tmp (which every kernel has hidden): the folder is covered, the
    course is bound back in, read-only, and what is hidden inside the course stays hidden."""
    import subprocess
    import sys

    from helpers.grading import sandbox

    why = sandbox.available()
    if why:
        pytest.skip(f"kernels cannot be isolated on this machine: {why}")
    outer = tmp_path / "outer"  # plays /tmp
    course = outer / "course"
    (course / "solutions").mkdir(parents=True)
    (course / "solutions" / "answers.txt").write_text("secret")
    (course / "lesson.txt").write_text("public")
    (outer / "another-student.ipynb").write_text("secret")
    home = tmp_path / "home"
    home.mkdir()
    plan = {"home": str(home), "home_mount": str(home), "uid": None,
            "hide": sorted([str(outer), str(course / "solutions")]), "readonly": [str(course)],
            "needed": sorted({sys.base_prefix, sys.prefix, str(course)})}
    look = [str(course / "lesson.txt"), str(course / "solutions" / "answers.txt"), str(outer / "another-student.ipynb")]
    code = ("import json, os, sys\nfrom helpers.grading import sandbox\n"
            "plan, look = json.loads(sys.argv[1]), json.loads(sys.argv[2])\nsandbox.isolate(plan)\n"
            "try:\n    open(os.path.join(plan['readonly'][0], 'new.txt'), 'w').close()\n    writable = True\n"
            "except OSError:\n    writable = False\n"
            "print(json.dumps({'seen': [os.path.exists(p) for p in look], 'writable': writable}))\n")
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(plan), json.dumps(look)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"seen": [True, False, False], "writable": False}
    assert (course / "solutions" / "answers.txt").read_text() == "secret"  # outside, nothing changed

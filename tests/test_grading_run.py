"""The grading command end to end on real lesson 01 notebooks: every layout, --jobs 2 against
--jobs 1, an interrupted run resumed, and every hostile notebook of issue 4 in one run."""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile

import nbformat
import pytest

from helpers.course.nbgrader_run import nbgrader_env
from helpers.grading import sandbox
from tests.conftest import ROOT
from tests.grading_tools import FULL, IDS, LESSON, POINTS, SOURCE, STUDENT, answer, cell, read, scores, solved
from tests.grading_tools import grade as _grade
from tests.grading_tools import sheet as _sheet

pytestmark = pytest.mark.slow
WRONG = {  # a plausible wrong answer per exercise (1-based)
    1: "def to_float_pixels(images):\n    return images.float()\n",
    2: "def standardize_features(x):\n    return x - x.mean(dim=0)\n",
    4: "def flatten_images(images):\n    return images.flatten()\n",
}


def _scores(row):
    return {gid: float(row[gid]) for gid in IDS}


def _hashes(folder):
    return {p: hashlib.sha256(open(p, "rb").read()).hexdigest()
            for p in glob.glob(str(folder / "**" / "*"), recursive=True) if os.path.isfile(p)}


# ------------------------------------------------------------------ layouts, parallelism, resuming

CLASS = {
    "ada": (lambda: read(SOURCE), scores()),
    "bea": (lambda: read(STUDENT), {gid: 0.0 for gid in IDS}),
    "cyd": (lambda: solved([0, 2]), {gid: float(POINTS[gid]) if gid in (IDS[0], IDS[2]) else 0.0 for gid in IDS}),
    "dan": (lambda: answer(solved(), 2, WRONG[2]), scores({IDS[1]: 0})),
}


ON_TIME = 1796040000  # 2026-11-30 12:00 UTC, before the due date below; dan's timestamp.txt is after it


def test_layouts_jobs_and_resume(tmp_path):
    """nbgrader layout with --jobs 2; the same notebooks interrupted and resumed with --jobs 1
    give the same sheet; re-running changes nothing; the flat folder and the Canvas zip give the
    same grades (from the cache: a result depends on the notebook, not on how it was collected)."""
    course = tmp_path / "course"
    for student, (make, _) in CLASS.items():
        folder = course / "submitted" / student / LESSON
        folder.mkdir(parents=True)
        nbformat.write(make(), folder / f"{LESSON}.ipynb")
        os.utime(folder / f"{LESSON}.ipynb", (ON_TIME, ON_TIME))  # fixed, so that the test does not age
    (course / "submitted" / "dan" / LESSON / "timestamp.txt").write_text("2026-12-03 09:00:00.000000 UTC")
    before = _hashes(course)

    parallel = tmp_path / "parallel"
    _grade(course, parallel, "--jobs", "2")
    sheet = _sheet(parallel)
    assert {s: _scores(r) for s, r in sheet.items()} == {s: want for s, (_, want) in CLASS.items()}
    assert sheet["ada"]["total"] == str(FULL) and sheet["ada"]["max"] == str(FULL)
    assert (parallel / "feedback" / "cyd" / f"{LESSON}.html").is_file()

    serial = tmp_path / "serial"
    args = [sys.executable, "-m", "helpers.grading", "grade", "01", str(course), "--out", str(serial), "--jobs", "1",
            "--quiet"]
    proc = subprocess.Popen(args, cwd=ROOT, env=nbgrader_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not glob.glob(str(serial / ".cache" / "*" / "*.json")) and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err.decode()[-2000:]
    assert "run the same command again" in err.decode()
    assert not (serial / "grades.csv").exists()
    done = len(glob.glob(str(serial / ".cache" / "*" / "*.json")))
    assert 1 <= done < len(CLASS)
    resumed = _grade(course, serial, "--jobs", "1")
    assert f"{len(CLASS) - done} to grade, {done} already graded" in resumed.stdout
    assert (serial / "grades.csv").read_bytes() == (parallel / "grades.csv").read_bytes()
    assert len(glob.glob(str(serial / ".cache" / "*" / "*.json"))) == len(CLASS)

    first = (serial / "grades.csv").read_bytes()
    again = _grade(course, serial)
    assert (serial / "grades.csv").read_bytes() == first
    assert f"0 to grade, {len(CLASS)} already graded" in again.stdout  # idempotent: nothing run twice

    flat = tmp_path / "flat"
    flat.mkdir()
    archive = tmp_path / "canvas.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i, student in enumerate(CLASS):
            data = (course / "submitted" / student / LESSON / f"{LESSON}.ipynb").read_bytes()
            (flat / f"{student}_{LESSON}.ipynb").write_bytes(data)
            late = "late_" if student == "dan" else ""
            name = f"{student}_smith_{late}{1000 + i}_{5000 + i}_{LESSON}.ipynb"
            zf.writestr(zipfile.ZipInfo(name, date_time=(2026, 11, 30, 12, 0, 0)), data)
    _grade(flat, serial)
    assert {s: _scores(r) for s, r in _sheet(serial).items()} == {s: want for s, (_, want) in CLASS.items()}
    _grade(archive, serial, "--due", "2026-12-02T23:59+00:00")
    zipped = _sheet(serial)
    assert {s: _scores(r) for s, r in zipped.items()} == {f"{s}_smith": want for s, (_, want) in CLASS.items()}
    assert [s for s, r in zipped.items() if r["late"] == "yes"] == ["dan_smith"]
    _grade(course, serial, "--due", "2026-12-02T23:59+00:00")
    assert [s for s, r in _sheet(serial).items() if r["late"] == "yes"] == ["dan"]  # from timestamp.txt
    assert _hashes(course) == before  # submissions never modified


# ------------------------------------------------------------------ hostile notebooks

WRONG2 = WRONG[2]
READ_SECRETS = '''import glob, json, os, helpers
def standardize_features(x):
    return x - x.mean(dim=0)
repo = os.path.dirname(os.path.dirname(helpers.__file__))
found = glob.glob(os.path.join(repo, "solutions", "*", "*.ipynb"))
found += glob.glob("/tmp/**/solutions/*/*.ipynb", recursive=True) + glob.glob("/tmp/**/gradebook.db", recursive=True)
print("found", len(found))
for path in found:
    if path.endswith(".ipynb"):
        for c in json.load(open(path))["cells"]:
            src = "".join(c["source"])
            if "def standardize_features" in src and "BEGIN SOLUTION" in src:
                exec(src.replace("### BEGIN SOLUTION", "").replace("### END SOLUTION", ""))
'''


def _hostile() -> dict:
    """name -> (notebook or raw bytes, expected scores or None for 'not graded'); all built from lesson 01."""
    cases = {"honest": (read(SOURCE), scores())}

    def with_answer(k, source, *, prepend=False, base=None):
        return answer(base or solved(), k, source, prepend=prepend)

    nb = with_answer(1, WRONG[1])
    cell(nb, "ex1_to_float_pixels").source = "pass"
    cases["test_cell_edited_to_pass"] = (nb, scores({IDS[0]: 0}))
    nb = with_answer(2, WRONG2)
    nb.cells.remove(cell(nb, "ex2_standardize_features"))
    cases["test_cell_deleted"] = (nb, scores({IDS[1]: 0}))
    nb = with_answer(2, WRONG2)
    meta = cell(nb, "ex2_standardize_features").metadata.nbgrader
    meta["points"], meta["grade_id"] = 100, "ex2_mine"
    cell(nb, "ex2_mine").source = "pass"
    cell(nb, "ex3_linear_forward").metadata.nbgrader["points"] = 50  # honest answer, inflated points
    cases["metadata_points_and_grade_id_edited"] = (nb, scores({IDS[1]: 0}))
    cases["copies_the_checks_reference"] = (  # right numbers, from the course's own reference code
        with_answer(6, "from helpers.checks.lesson01 import _descent\n\n"
                       "def fit_line(x, y, lr, steps):\n    return _descent(x, y, lr, steps)\n"),
        scores({IDS[5]: 0}))
    cases["check_function_redefined"] = (with_answer(2, WRONG2 + "checks.ex2.grade = lambda *a, **k: None\n"),
                                         scores({IDS[1]: 0}))
    cases["checks_module_replaced"] = (with_answer(2, WRONG2 + (
        "class _Anything:\n    def __getattr__(self, name):\n        return self\n"
        "    def __call__(self, *a, **k):\n        return None\nchecks = _Anything()\n")), scores({IDS[1]: 0}))
    cases["core_monkeypatched"] = (with_answer(2, WRONG2 + (
        "import helpers.checks.core as core\ncore.Exercise.grade = lambda *a, **k: None\n"
        "core.values_close = lambda *a, **k: True\n")), scores({IDS[1]: 0}))
    cases["assert_close_and_allclose_redefined"] = (with_answer(2, WRONG2 + (
        "import torch.testing\ntorch.testing.assert_close = lambda *a, **k: None\n"
        "torch.allclose = lambda *a, **k: True\n"
        "torch.isclose = lambda a, b, **k: torch.ones_like(a, dtype=torch.bool)\n")), scores({IDS[1]: 0}))
    cases["assertion_error_rebound"] = (with_answer(2, WRONG2 + (
        "import builtins\nclass _Quiet(BaseException):\n    pass\nbuiltins.AssertionError = _Quiet\n"
        "AssertionError = _Quiet\n")), scores({IDS[1]: 0}))
    cases["input_transformer_skips_tests"] = (with_answer(2, WRONG2 + (
        "get_ipython().input_transformers_post.append(\n"
        "    lambda lines: ['pass\\n'] if any('.grade(' in line for line in lines) else lines)\n")),
        scores({IDS[1]: 0}))
    cases["fake_all_tests_passed"] = (with_answer(2, WRONG2 + "print('All tests passed!')\n"), scores({IDS[1]: 0}))
    cases["reads_solutions_from_disk"] = (with_answer(2, READ_SECRETS), scores({IDS[1]: 0}))
    nb = solved()
    cell(nb, "ex3_answer").source += "\nfor _ in range(300):  # 300 MB\n    print('x' * 1_000_000)\n"
    cases["output_flood"] = (nb, scores())  # capped; even if the time limit stops it, the answer stands
    cases["infinite_loop"] = (with_answer(3, "while True:\n    pass\n", prepend=True), scores({IDS[2]: 0}))
    cases["loop_ignoring_interrupts"] = (with_answer(3, (
        "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass\n"), prepend=True),
        scores({gid: 0 for gid in IDS[2:]}))
    cases["fork_bomb"] = (with_answer(3, "import os\nwhile True:\n    os.fork()\n", prepend=True), scores({IDS[2]: 0}))
    cases["thread_bomb"] = (with_answer(3, (
        "import threading, time\nwhile True:\n"
        "    threading.Thread(target=time.sleep, args=(100,), daemon=True).start()\n"), prepend=True),
        scores({IDS[2]: 0}))
    cases["memory_hog"] = (with_answer(3, "import torch\nx = torch.empty(2**33, dtype=torch.uint8).fill_(1)\n",
                                       prepend=True), scores({IDS[2]: 0}))
    cases["kernel_os_exit"] = (with_answer(4, "import os\nos._exit(1)\n", prepend=True),
                               scores({gid: 0 for gid in IDS[3:]}))
    cases["kernel_segfault"] = (with_answer(4, "import ctypes\nctypes.string_at(0)\n", prepend=True),
                                scores({gid: 0 for gid in IDS[3:]}))
    cases["sys_exit"] = (with_answer(4, "import sys\nsys.exit(1)\n", prepend=True), scores({IDS[3]: 0}))
    cases["old_nbformat"] = (nbformat.writes(read(SOURCE), version=3).encode(), None)
    cases["malformed_json"] = (nbformat.writes(read(SOURCE)).encode()[:-200], None)
    cases["empty_file"] = (b"", None)
    return cases


def test_hostile_notebooks_get_what_their_honest_part_deserves(tmp_path):
    cases = _hostile()
    folder = tmp_path / "submitted"
    folder.mkdir()
    for name, (nb, _) in cases.items():
        path = folder / f"{name}.ipynb"
        path.write_bytes(nb if isinstance(nb, bytes) else nbformat.writes(nb).encode())
    before = _hashes(folder)
    repo_solution = glob.glob(str(ROOT / "solutions" / "*" / "*.ipynb"))
    assert repo_solution  # the disk attack finds the solutions when nothing hides them
    started = time.monotonic()
    proc = _grade(folder, tmp_path / "out", "--jobs", "2", "--timeout", "15", "--memory", "3G", "--max-processes", "64")
    seconds = time.monotonic() - started
    sheet = _sheet(tmp_path / "out")
    assert set(sheet) == set(cases)
    isolated = sandbox.available() == ""
    if isolated:  # the machine allows it, so the run must have isolated its kernels, wherever the course is
        assert "cannot be isolated" not in proc.stderr, proc.stderr[-2000:]
    for name, (_, want) in cases.items():
        row = sheet[name]
        if want is None:
            assert _scores(row) == {gid: 0.0 for gid in IDS} and row["status"] != "graded", (name, row)
            continue
        if name == "reads_solutions_from_disk" and not isolated:
            continue  # nothing can hide the files on this machine (the run printed a warning)
        assert row["status"] == "graded", (name, row["status"], proc.stderr[-2000:])
        assert _scores(row) == want, (name, _scores(row), row["review"], proc.stderr[-2000:])
    assert "old format nbformat 3" in sheet["old_nbformat"]["status"]
    assert "not valid notebook JSON" in sheet["malformed_json"]["status"]
    assert sheet["empty_file"]["status"] == "the file is empty"
    review = {name: row["review"] for name, row in sheet.items()}
    assert "torch.allclose" in review["assert_close_and_allclose_redefined"]
    assert "checks.ex2.grade" in review["check_function_redefined"]
    assert "copied: ex6 uses helpers.checks.lesson01._descent (0 points)" in review["copies_the_checks_reference"]
    assert review["honest"] == ""
    assert _hashes(folder) == before
    for page in (tmp_path / "out" / "feedback").rglob("*.html"):
        assert "BEGIN HIDDEN TESTS" not in page.read_text() and "manual_seed(102)" not in page.read_text()
    alone = "PYTEST_XDIST_WORKER" not in os.environ  # no other grading run that could be using those uids
    if sys.platform == "linux" and os.getuid() == 0 and alone:  # the fork bomb left nothing running
        assert not [u for u in range(sandbox.UID_BASE, sandbox.UID_BASE + 8) if sandbox._pids_of(u)]
    print(f"{len(cases)} hostile notebooks graded in {seconds:.0f} s\n{proc.stdout}")
    shutil.rmtree(tmp_path / "out", ignore_errors=True)


def test_no_isolate_grades_too(tmp_path):
    """--no-isolate (kernels see the course's files): the reference still gets full marks, also as root,
    where the kernels then keep the instructor's uid (a slot uid reaches the work folders only when isolated)."""
    folder = tmp_path / "submitted"
    folder.mkdir()
    nbformat.write(solved(), folder / "ada.ipynb")
    _grade(folder, tmp_path / "out", "--jobs", "1", "--no-isolate")
    assert _scores(_sheet(tmp_path / "out")["ada"]) == scores()

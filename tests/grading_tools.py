"""Building submissions of a real lesson for the grading tests: honest, partly solved and hostile."""

from __future__ import annotations

import csv
import subprocess
import sys

import nbformat

from helpers.course.nbgrader_run import nbgrader_env
from tests.conftest import ROOT
from tests.notebook_tools import solve

LESSON = "01_tensors_autograd"
SOURCE = ROOT / "solutions" / LESSON / f"{LESSON}.ipynb"
STUDENT = ROOT / "notebooks" / LESSON / f"{LESSON}.ipynb"
POINTS = {"ex1_to_float_pixels": 1, "ex2_standardize_features": 2, "ex3_linear_forward": 2,
          "ex4_flatten_images": 2, "ex5_mse_grads": 3, "ex6_fit_line": 3}
IDS = list(POINTS)
FULL = sum(POINTS.values())


def read(path):
    return nbformat.read(path, as_version=4)


def solved(which=range(6)):
    """The real student notebook with the reference answers of exercises ``which`` (0-based) filled in."""
    return solve(read(STUDENT), read(SOURCE), list(which))


def cell(nb, grade_id):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def answer(nb, k: int, source: str, *, prepend: bool = False):
    """Replace (or prefix) the answer cell of exercise k (1-based)."""
    target = cell(nb, f"ex{k}_answer")
    target.source = source + "\n" + target.source if prepend else source
    return nb


def scores(only: dict[str, float] | None = None) -> dict[str, float]:
    """Full marks except for the exercises named (grade ids), which get the points given."""
    out = {gid: float(p) for gid, p in POINTS.items()}
    out.update({k: float(v) for k, v in (only or {}).items()})
    return out


def grade(submissions, out, *extra, check=True):
    """``python -m helpers.grading grade 01 SUBMISSIONS --out OUT --quiet EXTRA...``, as an instructor runs it."""
    proc = subprocess.run([sys.executable, "-m", "helpers.grading", "grade", "01", str(submissions), "--out", str(out),
                           "--quiet", *extra], cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env=nbgrader_env())
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def sheet(out):
    """The grade sheet as {student: row}."""
    with open(out / "grades.csv", encoding="utf-8") as f:
        return {row["student"]: row for row in csv.DictReader(f)}

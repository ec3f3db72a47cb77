"""Running a lesson's graded test cells (hidden tests included) on chosen answers, as nbgrader would."""

from __future__ import annotations

import contextlib
import io

import nbformat
import torch
import torch.nn.functional as F
from torch import nn

from tests.conftest import ROOT


def graded_cell(lesson: str, grade_id: str) -> str:
    """The source of the instructor notebook's graded cell ``grade_id`` (hidden tests included)."""
    nb = nbformat.read(ROOT / "solutions" / lesson / f"{lesson}.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            return cell.source
    raise KeyError(f"{lesson} has no graded cell {grade_id}")


def run_graded(lesson: str, grade_id: str, checks, **answers) -> str | None:
    """Run the graded cell with ``answers`` defined: None when it passes, the failure's text otherwise.

    The cell must stay quiet either way, since nbgrader scores a cell that wrote to stderr as failed.
    """
    scope = {"checks": checks, "torch": torch, "nn": nn, "F": F, "__name__": "__main__", **answers}
    out, err = io.StringIO(), io.StringIO()
    failure = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            exec(compile(graded_cell(lesson, grade_id), f"<{grade_id}>", "exec"), scope)
        except AssertionError as error:
            failure = str(error)
    assert not err.getvalue(), f"{grade_id} wrote to stderr: {err.getvalue()[:500]}"
    return failure

"""A grading worker: a long-lived process that autogrades one submission at a time with
nbgrader, each in a private copy of the template course.

``python -m helpers.grading.worker`` reads a JSON settings line, then one JSON job per line
on stdin (``{"id", "path"}``), and answers one JSON result per line on stdout. Keeping the
process alive saves importing nbgrader for every notebook; every submission still gets
its own course folder, gradebook and kernel, so results do not depend on what the worker
graded before or on how many workers there are.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import time
from pathlib import Path

import nbformat

from helpers.grading import copying, flags, sandbox
from helpers.grading.kernel import PLAN_ENV

STUDENT = "student"  # the id inside the private course; the real id never reaches nbgrader


def read_notebook(path: Path):
    """The submission as an nbformat 4 notebook, or ValueError with a message for the instructor."""
    data = path.read_bytes()
    if not data.strip():
        raise ValueError("the file is empty")
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"the file is not valid notebook JSON ({err})") from None
    if not isinstance(raw, dict) or "cells" not in raw and "worksheets" not in raw:
        raise ValueError("the file is JSON but not a Jupyter notebook")
    if raw.get("nbformat") != 4:
        raise ValueError(f"the notebook is in the old format nbformat {raw.get('nbformat')}; "
                         "open it in a current Jupyter and save it again")
    try:
        nb = nbformat.reads(json.dumps(raw), as_version=4)
        nbformat.validate(nb)
    except Exception as err:  # nbformat's validation errors
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(f"the notebook is malformed: {first}") from None
    return nb


def normalise(nb, trusted: dict[str, dict]):
    """Put back the source's nbgrader metadata on every known cell; strip it from unknown ones.

    nbgrader then restores the locked cells' source from its gradebook and re-adds missing
    graded cells, so points, grade ids and graded cells edited in the submission count for nothing.
    """
    seen = set()
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader")
        if meta is None:
            continue
        gid = meta.get("grade_id")
        if gid in trusted and gid not in seen:
            seen.add(gid)
            cell.metadata["nbgrader"] = {k: v for k, v in trusted[gid].items() if k != "cell_type"}
            cell.cell_type = trusted[gid]["cell_type"]
            if cell.cell_type == "code":
                cell.setdefault("outputs", [])
                cell.setdefault("execution_count", None)
                cell.pop("attachments", None)
            else:
                cell.pop("outputs", None)
                cell.pop("execution_count", None)
        else:
            del cell.metadata["nbgrader"]
    return nb


class Worker:
    """Grades jobs for one slot; see the module docstring."""

    def __init__(self, settings: dict):
        self.s = settings
        self.slot_dir = Path(settings["work"]) / f"slot-{settings['slot']}"
        self.uid = settings.get("uid")
        self.template = Path(settings["template"])
        self.lesson = settings["lesson"]
        src = nbformat.read(self.template / "solutions" / self.lesson / f"{self.lesson}.ipynb", as_version=4)
        self.trusted = {}
        for cell in src.cells:
            meta = cell.metadata.get("nbgrader")
            if meta and meta.get("grade_id"):
                self.trusted[meta["grade_id"]] = {**{k: v for k, v in meta.items() if k != "checksum"},
                                                  "cell_type": cell.cell_type}
        self.answer_names = copying.answer_names(src)
        released = nbformat.read(self.template / "notebooks" / self.lesson / f"{self.lesson}.ipynb", as_version=4)
        self.released = {cell.source for cell in released.cells}
        self.config = self._config()
        from helpers.grading import execute, zygote

        self.slot_dir.mkdir(parents=True, exist_ok=True)
        self.kernel_log = self.slot_dir / "kernels.log"
        self.factory = zygote.Factory(settings["aliases"], settings["root"], dict(os.environ), str(self.kernel_log))
        execute.ForkProvisioner.factory = self.factory if settings.get("fork", True) else None
        if settings.get("fork", True):
            self.factory.start()

    def _config(self):
        from traitlets.config import Config, PyFileConfigLoader

        config = PyFileConfigLoader("nbgrader_config.py", path=str(self.template)).load_config()
        extra = Config()
        extra.Execute.timeout = self.s["timeout"]
        extra.Execute.interrupt_on_timeout = True
        extra.Execute.iopub_timeout = 5
        extra.OverwriteCells.add_missing_cells = True
        extra.GuardedExecute.max_output_bytes = self.s["max_output"]
        config.merge(extra)
        return config

    def grade(self, job: dict) -> dict:
        started = time.monotonic()
        result = {"id": job["id"], "scores": {}, "messages": {}, "flags": [], "problem": ""}
        try:
            nb = read_notebook(Path(job["path"]))
        except (OSError, ValueError) as err:
            result["problem"] = str(err)
            return result
        protected = set(self.s["aliases"])
        result["flags"] = flags.scan(nb, protected, self.released)
        nb = normalise(nb, self.trusted)
        copied = copying.find(nb, self.released, self.s["aliases"], Path(self.s["root"]), self.lesson,
                              self.answer_names)
        for attempt in (1, 2):
            course = self._stage(nb)
            try:
                outcome = self._autograde(course)
            finally:
                self._clean(course)
            # A kernel that died or never started may have been killed from outside (the system's
            # out-of-memory killer on a busy machine): try once more. A notebook that kills its own
            # kernel does it again, and gets the same grade.
            if not (outcome.pop("died", False) or outcome.get("problem")) or attempt == 2:
                break
        result.update(outcome)
        _zero_copied(result, copied)
        result["seconds"] = round(time.monotonic() - started, 2)
        return result

    def _stage(self, nb) -> Path:
        course = self.slot_dir / "course"
        self._clean(course)
        self.kernel_log.write_text("")
        shutil.copytree(self.template, course)
        folder = course / "submitted" / STUDENT / self.lesson
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{self.lesson}.ipynb")
        home = self.slot_dir / "home"
        home.mkdir(parents=True)
        mpl = Path(self.s["mpl_cache"]) if self.s.get("mpl_cache") else None
        if mpl and mpl.is_dir():
            shutil.copytree(mpl, home / ".mpl")
        if self.uid is not None:
            for path in [home, *home.rglob("*")]:
                os.chown(path, self.uid, self.uid)
        return course

    def _plan(self, course: Path) -> dict:
        home = str(self.slot_dir / "home")
        return {"home": home, "home_mount": home, "isolate": self.s["isolate"], "uid": self.uid,
                "hide": self.s["hide"], "readonly": self.s["readonly"], "needed": self.s["needed"],
                "mask": self.s["mask"],
                "limits": self.s["limits"], "aliases": self.s["aliases"],
                "guard_name": self.guard_name, "guard_token": self.guard_token}

    def _autograde(self, course: Path) -> dict:
        from nbgrader.api import Gradebook
        from nbgrader.converters import Autograde
        from nbgrader.coursedir import CourseDirectory
        from nbgrader.utils import capture_log

        from helpers.grading import execute

        self.guard_name = "_grader_" + secrets.token_hex(8)
        self.guard_token = secrets.token_hex(16)
        plan_path = self.slot_dir / "plan.json"
        plan_path.write_text(json.dumps(self._plan(course)))
        os.environ[PLAN_ENV] = str(plan_path)
        config = self.config.copy()
        config.GuardedExecute.guard_name = self.guard_name
        config.GuardedExecute.guard_token = self.guard_token
        config.GuardedExecute.kernel_uid = self.uid
        config.Autograde.autograde_preprocessors = _preprocessors(execute.GuardedExecute)
        coursedir = CourseDirectory(config=config, root=str(course))
        coursedir.assignment_id, coursedir.student_id = self.lesson, STUDENT
        app = Autograde(coursedir=coursedir, config=config)
        app.force, app.create_student = True, True
        execute.LAST_RUN.clear()
        log = capture_log(app)
        out = {"restored": execute.LAST_RUN.get("restored", []), "died": bool(execute.LAST_RUN.get("died")),
               "slow_cells": execute.LAST_RUN.get("slow", [])}  # [cell index, seconds] over 5 s, for the curious
        graded = course / "autograded" / STUDENT / self.lesson / f"{self.lesson}.ipynb"
        if not log.get("success") or not graded.is_file():
            out["problem"] = "nbgrader could not grade this notebook: " + _last_error(log) + self._kernel_said()
            return out
        with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
            sub = gb.find_submission_notebook(self.lesson, self.lesson, STUDENT)
            out["scores"] = {g.name: float(g.auto_score or 0) for g in sub.grades}
        graded_nb = nbformat.read(graded, as_version=4)
        out["messages"] = _messages(graded_nb)
        out["errors"] = _other_errors(graded_nb)  # kept in the cache, for the curious instructor
        # Errors in the lesson's own cells (as released, no points): an environment fault (a data
        # folder the sandbox cannot reach, say) shows here while every score may stay unchanged.
        out["cell_errors"] = _other_errors(graded_nb, self.released)
        return out

    def _kernel_said(self) -> str:
        try:
            lines = [ln for ln in self.kernel_log.read_text().splitlines() if ln.strip()]
        except OSError:
            return ""
        return f" (the kernel said: {lines[-1][:300]})" if lines else ""

    def _clean(self, course: Path) -> None:
        if self.uid is not None:
            sandbox.kill_uid(self.uid)
        for path in (course, self.slot_dir / "home"):
            shutil.rmtree(path, ignore_errors=True)


def _zero_copied(result: dict, copied: dict[str, list[str]]) -> None:
    """An exercise answered with the course's own code gets 0, and the review column says what it used."""
    for prefix, used in sorted(copied.items()):
        names = ", ".join(used)
        if not prefix:  # in a cell of the student's own that answers no exercise
            result["flags"].append(f"uses {names} from the course's helpers (no points lost)")
            continue
        for gid in result["scores"]:
            if gid.startswith(prefix + "_"):
                result["scores"][gid] = 0.0
                result.setdefault("messages", {})[gid] = (
                    f"0 points: the answer uses {names} from the course's helpers package instead of code of "
                    "its own")
        result["flags"].append(f"copied: {prefix} uses {names} (0 points)")


def _preprocessors(guarded) -> list:
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.preprocessors import (
        AssignLatePenalties,
        CheckCellMetadata,
        IgnorePattern,
        LimitOutput,
        SaveAutoGrades,
    )

    return [guarded, IgnorePattern, ClearMetadataPreprocessor, LimitOutput, SaveAutoGrades,
            AssignLatePenalties, CheckCellMetadata]


def _last_error(log: dict) -> str:
    """The most telling line of nbgrader's log: its last error other than the generic one."""
    text = ((log.get("log") or "") + "\n" + (log.get("error") or "")).splitlines()
    lines = [ln.strip() for ln in text if ("Error" in ln or "Exception" in ln or "error" in ln)
             and "NbGraderException" not in ln and "Please see" not in ln and ln.strip()]
    return lines[-1][:500] if lines else "no message"


def _messages(nb) -> dict[str, str]:
    """What each graded cell said: the check's message, or the error's name and text."""
    found = {}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if not meta.get("grade") or cell.cell_type != "code":
            continue
        text = ""
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                text = out.evalue if out.ename == "AssertionError" else f"{out.ename}: {out.evalue}"
            elif out.output_type == "stream" and out.name == "stderr" and not text:
                text = "the test wrote to stderr: " + out.text.strip().splitlines()[0][:300] if out.text.strip() \
                    else "the test wrote to stderr"
        found[meta["grade_id"]] = text[:1000]
    return found


def _other_errors(nb, only: set[str] | None = None) -> list[str]:
    """Errors in the cells that are not graded (a student's broken scratch cell, a timeout).

    With ``only`` (the sources of the released lesson's cells), just the errors in the lesson's own
    cells: not in answer cells, and not the ``NotImplementedError`` of an exercise left unsolved.
    """
    found = []
    for i, cell in enumerate(nb.cells):
        meta = cell.metadata.get("nbgrader", {})
        if only is not None and (cell.source not in only or meta.get("solution")):
            continue
        if cell.cell_type == "code" and not meta.get("grade"):
            found += [f"cell {i}: {o.ename}: {str(o.evalue)[:200]}" for o in cell.get("outputs", [])
                      if o.output_type == "error" and not (only is not None and o.ename == "NotImplementedError")]
    return found[:10]


def main() -> None:
    sandbox.die_with_parent()
    import nbgrader.api  # noqa: F401  (imported while the grader prepares the lesson)
    import nbgrader.converters  # noqa: F401

    from helpers.grading import execute  # noqa: F401

    settings = json.loads(sys.stdin.readline())
    os.environ["JUPYTER_RUNTIME_DIR"] = str(Path(settings["work"]) / f"slot-{settings['slot']}" / "runtime")
    worker = Worker(settings)
    out = sys.stdout
    sys.stdout = sys.stderr  # anything else printed must not corrupt the protocol
    for line in sys.stdin:
        job = json.loads(line)
        try:
            result = worker.grade(job)
        except Exception as err:  # a bug or an odd notebook: report it, keep the worker alive
            result = {"id": job["id"], "scores": {}, "messages": {}, "flags": [],
                      "problem": f"grading failed: {type(err).__name__}: {err}"}
        out.write(json.dumps(result) + "\n")
        out.flush()


if __name__ == "__main__":
    main()

"""The expected values of the instant checks, computed from the instructor notebook's solutions.

For every exercise whose check has an ``observe`` (see :mod:`helpers.checks.shipped`), ``make release``
runs the instructor notebook's setup cell and answer cells (in fast mode, nothing else of the lesson),
takes the answer that the exercise's check cell passes (``checks.exN.check(EXPR)``), observes it on each
visible case and writes ``helpers/checks/expected/lessonNN.json``. The learner's package then holds these
values and no code that computes them. :func:`drift` says when the committed file no longer matches.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import io
import json
import os
import re
from pathlib import Path

from helpers.checks.core import ATOL, RTOL
from helpers.course.lessons import Lesson, ReleaseError, compile_cell, read_source


def _exercises(lesson: Lesson) -> dict:
    """Exercise number -> the Exercise of ``helpers.checks.lessonNN`` that has an ``observe``."""
    from helpers.checks.core import Exercise

    try:
        module = importlib.import_module(f"helpers.checks.lesson{lesson.number}")
    except ModuleNotFoundError:
        return {}
    return {ex.number: ex for ex in vars(module).values() if isinstance(ex, Exercise) and ex.observe is not None}


def path_of(lesson: Lesson) -> Path:
    from helpers.checks import shipped

    return lesson.root / "helpers" / "checks" / shipped.FOLDER / shipped.file_name(lesson.number)


def _answers(lesson: Lesson, numbers: set[int]) -> dict[int, object]:
    """Run the setup cell and the answer cells of the instructor notebook; the answer each check cell passes."""
    nb = read_source(lesson.source)
    namespace: dict = {"__name__": f"course_solution_{lesson.number}"}
    expressions: dict[int, str] = {}
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        grader, tags = cell.metadata.get("nbgrader", {}), cell.metadata.get("tags", [])
        if "check" in tags:
            found = re.search(r"checks\.ex(\d+)\.check\(", cell.source)
            if found and int(found.group(1)) in numbers:
                call = ast.parse(cell.source[found.start():].split("\n")[0]).body[0].value
                expressions[int(found.group(1))] = ast.unparse(call.args[0])
            continue
        if not ("setup" in tags or grader.get("solution")):
            continue
        source = "\n".join(ln for ln in cell.source.splitlines() if not ln.lstrip().startswith(("!", "%")))
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile_cell(source, f"<{lesson.source.name} cell {index}>"), namespace)  # noqa: S102
        except Exception as err:  # noqa: BLE001 - the instructor sees which cell failed and why
            raise ReleaseError(f"{lesson.source}: cell {index} failed while computing the checks' expected "
                               f"values ({type(err).__name__}: {err}). The setup cell and the answer cells must "
                               "run on their own, in this order.") from err
    missing = numbers - set(expressions)
    if missing:
        raise ReleaseError(f"{lesson.source}: no check cell `checks.exN.check(...)` for exercise(s) "
                           f"{sorted(missing)}, so their expected values cannot be computed.")
    return {n: eval(expr, namespace) for n, expr in expressions.items()}  # noqa: S307


def compute(lesson: Lesson) -> dict | None:
    """The expected values of ``lesson``'s visible cases (None: no exercise of the lesson needs any)."""
    from helpers.checks import shipped

    exercises = _exercises(lesson)
    if not exercises:
        return None
    before = os.environ.get("COURSE_FAST")
    os.environ["COURSE_FAST"] = "1"
    try:
        answers = _answers(lesson, set(exercises))
        values = {}
        for number, ex in sorted(exercises.items()):
            try:
                values[str(number)] = [shipped.encode(ex.observe(answers[number], case))
                                       for case in ex.visible_cases()]
            except Exception as err:  # noqa: BLE001
                raise ReleaseError(f"{lesson.source}: the solution of {ex.title} fails its own check's observe() "
                                   f"({type(err).__name__}: {err}).") from err
    finally:
        if before is None:
            os.environ.pop("COURSE_FAST", None)
        else:
            os.environ["COURSE_FAST"] = before
    return {"lesson": lesson.name, "made_by": "make release (helpers/course/expected.py)", "exercises": values}


def write(lesson: Lesson) -> Path | None:
    """Write the lesson's expected values (and remove a file that is no longer needed)."""
    values, path = compute(lesson), path_of(lesson)
    if values is None:
        path.unlink(missing_ok=True)
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values, indent=None, separators=(",", ":")) + "\n", encoding="utf-8")
    return path


def _same(a, b) -> bool:
    """Equal structure, and numbers equal within the judges' tolerance (``RTOL``, ``ATOL`` of
    :mod:`helpers.checks.core`): another machine's CPU rounds float32 differently (seen: 1.7e-6 apart
    on a value of 0.044, and relative differences up to 4e-5), which no judge tells apart."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        if not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or isinstance(a, bool):
            return False
        return abs(a - b) <= ATOL + RTOL * abs(b)
    return a == b


def drift(lesson: Lesson) -> list[str]:
    """Problems with the committed expected values of ``lesson`` (empty: up to date)."""
    path, fresh = path_of(lesson), compute(lesson)
    rel = path.relative_to(lesson.root)
    if fresh is None:
        return [f"{rel} is not needed by any check: run `make release`"] if path.exists() else []
    try:
        committed = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return [f"{rel} is missing or unreadable: run `make release LESSONS={lesson.number}`"]
    return [] if _same(committed, fresh) else [f"{rel} is stale: run `make release LESSONS={lesson.number}`"]

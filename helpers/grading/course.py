"""The grading template: one nbgrader course folder with the lesson generated into a
gradebook, copied for every submission, plus what the grader trusts about the lesson.

Everything here comes from ``solutions/`` (the instructor's source), never from a
submission: the graded cells and their points, each exercise's description, and the
names the lesson imports (the guard binds them back before each graded cell).
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from helpers.course.lessons import RELEASE_DIR, SOURCE_DIR, Lesson, read_source
from helpers.course.nbgrader_run import run_nbgrader

GRADER_VERSION = "3"  # bump when a change to the grader changes results (invalidates the cache)


class GradingError(RuntimeError):
    """The lesson cannot be graded; the message says what to do."""


@dataclass(frozen=True)
class GradedCell:
    """A graded test cell of the lesson: its grade_id, points and one-line description."""

    grade_id: str
    points: float
    title: str
    hidden: str = field(default="", repr=False)  # the hidden tests' text, to keep it out of feedback


@dataclass
class Template:
    """A prepared nbgrader course folder for one lesson."""

    lesson: Lesson
    folder: Path
    cells: list[GradedCell]
    aliases: dict[str, list]
    digest: str

    @property
    def max_points(self) -> float:
        return sum(c.points for c in self.cells)


def lesson_digest(lesson: Lesson, settings: dict) -> str:
    """Hash of everything a grade depends on besides the submission: the lesson's sources,
    the nbgrader config, the checks, the grader's version and its settings."""
    h = hashlib.sha256(GRADER_VERSION.encode())
    files = sorted(p for p in lesson.source_dir.rglob("*") if p.is_file() and ".ipynb_checkpoints" not in p.parts)
    files += [lesson.root / "nbgrader_config.py"]
    files += sorted((lesson.root / "helpers" / "checks").glob("*.py"))
    for path in files:
        h.update(str(path.relative_to(lesson.root)).encode())
        h.update(path.read_bytes())
    h.update(json.dumps(settings, sort_keys=True).encode())
    return h.hexdigest()


def _docstring(source: str) -> str:
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return ""
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
            and isinstance(body[0].value.value, str):
        return body[0].value.value.strip().splitlines()[0]
    return ""


def _hidden_part(source: str) -> str:
    start, end = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
    if start not in source:
        return ""
    return source.split(start, 1)[1].split(end, 1)[0]


def graded_cells(nb) -> list[GradedCell]:
    """The lesson's graded test cells, in notebook order."""
    cells = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and cell.cell_type == "code":
            title = _docstring(cell.source) or meta["grade_id"]
            cells.append(GradedCell(meta["grade_id"], float(meta["points"]), title, _hidden_part(cell.source)))
    return cells


def trusted_aliases(nb) -> dict[str, list]:
    """``name -> [module, attribute or None]`` for the imports in the lesson's own (non-answer) cells."""
    from IPython.core.inputtransformer2 import TransformerManager

    python = TransformerManager()
    aliases: dict[str, list] = {}
    for cell in nb.cells:
        if cell.cell_type != "code" or cell.metadata.get("nbgrader", {}).get("solution"):
            continue
        try:
            tree = ast.parse(python.transform_cell(cell.source))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname:
                        aliases[a.asname] = [a.name, None]
                    else:
                        aliases[a.name.split(".")[0]] = [a.name.split(".")[0], None]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for a in node.names:
                    if a.name != "*":
                        aliases[a.asname or a.name] = [node.module, a.name]
    return {k: v for k, v in aliases.items() if v[0] != "google"}


def prepare(lesson: Lesson, folder: Path, settings: dict) -> Template:
    """The lesson generated into a course folder with its own gradebook (kept for the next run:
    ``folder`` is specific to the lesson's digest)."""
    nb = read_source(lesson.source)
    if not (folder / ".ready").is_file():
        building = folder.with_name(folder.name + f".{os.getpid()}")
        _generate(lesson, building)
        (building / ".ready").touch()
        shutil.rmtree(folder, ignore_errors=True)
        building.rename(folder)
    cells = graded_cells(nb)
    return Template(lesson, folder, cells, trusted_aliases(nb), lesson_digest(lesson, settings))


def _generate(lesson: Lesson, folder: Path) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    shutil.copy(lesson.root / "nbgrader_config.py", folder / "nbgrader_config.py")
    shutil.copytree(lesson.source_dir, folder / SOURCE_DIR / lesson.name,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    proc = run_nbgrader(["generate_assignment", lesson.name, "--force", "--log-level=WARN",
                         f"--db=sqlite:///{folder / 'gradebook.db'}"], folder, timeout=600)
    if proc.returncode != 0 or not (folder / "gradebook.db").is_file():
        raise GradingError(f"nbgrader generate_assignment failed for {lesson.source}:\n"
                           + (proc.stdout + proc.stderr).strip()[-3000:])
    if not (folder / RELEASE_DIR / lesson.name / lesson.student.name).is_file():
        raise GradingError(f"nbgrader generate_assignment produced no student notebook for {lesson.source}")


def notebook_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


"""The lessons of the course and how to read them: the one place that release, slides, Colab, the
benchmarks and grading find ``solutions/<name>/<name>.ipynb`` and its student copy in ``notebooks/``.

It imports no other module of ``helpers.course``, so that none of them import each other in a circle.
"""

from __future__ import annotations

import json
import linecache
from dataclasses import dataclass
from pathlib import Path

import nbformat

SOURCE_DIR = "solutions"
RELEASE_DIR = "notebooks"


class ReleaseError(RuntimeError):
    """A source notebook cannot be released; the message says which file and what to do."""


@dataclass(frozen=True)
class Lesson:
    """One lesson: ``solutions/<name>/<name>.ipynb`` releases to ``notebooks/<name>/``."""

    name: str
    root: Path

    @property
    def number(self) -> str:
        """``"02"`` for ``02_nn_module``."""
        return self.name.split("_")[0]

    @property
    def source_dir(self) -> Path:
        return self.root / SOURCE_DIR / self.name

    @property
    def source(self) -> Path:
        return self.source_dir / f"{self.name}.ipynb"

    @property
    def release_dir(self) -> Path:
        return self.root / RELEASE_DIR / self.name

    @property
    def student(self) -> Path:
        return self.release_dir / f"{self.name}.ipynb"


def find_lessons(root: Path, names: list[str] | None = None) -> list[Lesson]:
    """Every lesson folder in ``solutions/`` (or the ones named, by name or number prefix)."""
    found = sorted(p.name for p in (root / SOURCE_DIR).iterdir() if (p / f"{p.name}.ipynb").is_file())
    if not names:
        return [Lesson(n, root) for n in found]
    chosen = []
    for want in names:
        match = [n for n in found if n == want or n.split("_")[0] == want.zfill(2)]
        if not match:
            raise ReleaseError(f"no lesson called {want!r} in {root / SOURCE_DIR}; lessons are: {', '.join(found)}")
        chosen += match
    return [Lesson(n, root) for n in chosen]


def compile_cell(source: str, name: str):
    """``source`` compiled under the file name ``name``, registered where ``inspect.getsource`` reads it back,
    as IPython registers each cell: lesson 07 sends the answers' functions to its workers by their source."""
    linecache.cache[name] = (len(source), None, source.splitlines(keepends=True), name)
    return compile(source, name, "exec")


def read_source(path: Path) -> nbformat.NotebookNode:
    """Read and validate an instructor notebook; a clear ReleaseError if it is malformed."""
    try:
        text = path.read_text(encoding="utf-8")
        raw = json.loads(text)
    except FileNotFoundError:
        raise ReleaseError(f"{path} does not exist.") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ReleaseError(
            f"{path} is not a valid notebook (its JSON is broken: {err}). Undo the last edit "
            f"(`git diff {path.name}` shows it) or repair it in JupyterLab, then run `make release` again."
        ) from None
    try:
        nb = nbformat.reads(json.dumps(raw), as_version=4)
        nbformat.validate(nb)
    except Exception as err:  # nbformat's ValidationError and reader errors
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ReleaseError(f"{path} is not a valid notebook: {first}.") from None
    _check_grading_metadata(path, nb)
    return nb


def _check_grading_metadata(path: Path, nb) -> None:
    ids, graded = set(), 0
    for i, cell in enumerate(nb.cells, start=1):
        meta = cell.metadata.get("nbgrader")
        if not meta:
            continue
        gid = meta.get("grade_id")
        if not gid:
            raise ReleaseError(f"{path}, cell {i}: an nbgrader cell has no grade_id; give it one in JupyterLab.")
        if gid in ids:
            raise ReleaseError(f"{path}, cell {i}: grade_id {gid!r} is used twice; grade ids must be unique.")
        ids.add(gid)
        if meta.get("grade"):
            graded += 1
            if not meta.get("points"):
                raise ReleaseError(f"{path}, cell {i} ({gid}): a graded cell needs points > 0.")
        if meta.get("solution") and cell.cell_type == "code" and "### BEGIN SOLUTION" not in cell.source:
            raise ReleaseError(f"{path}, cell {i} ({gid}): an answer cell needs ### BEGIN SOLUTION / "
                               "### END SOLUTION around the solution.")
    if graded == 0:
        raise ReleaseError(f"{path} has no graded test cells (nbgrader metadata grade=true).")

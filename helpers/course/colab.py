"""The "Open in Colab" badge and the Colab part of each lesson's setup cell, from one setting.

The repository is ``[tool.course] repository`` in pyproject.toml and the version is
``helpers.__version__`` (tag ``v<version>``). ``make release`` writes both generated
parts into the instructor notebooks before nbgrader releases them, so the student
notebooks carry them too:

* the first cell, a markdown badge linking Colab to the student notebook at the tag;
* in the cell tagged ``setup``, the lines between ``COLAB_BEGIN`` and ``COLAB_END``,
  which only inside Colab pip-install the helpers package at the tag (never torch:
  its requirements leave torch out) and prepare the data with torchvision's download.

``COURSE_HELPERS_SPEC`` overrides what the setup cell installs (a test installs
the local checkout instead of the tag).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import nbformat
import tomllib

import helpers
from helpers.course.lessons import RELEASE_DIR, Lesson, ReleaseError, find_lessons

BADGE_ID = "colab-badge"
BADGE_TAG = "colab-badge"
SETUP_TAG = "setup"
COLAB_BEGIN = "# --- Colab only: written by `make release` from pyproject.toml [tool.course]; edit it there ---"
COLAB_END = "# --- end of the Colab part ---"
SPEC_ENV = "COURSE_HELPERS_SPEC"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
# Setup cells written before this generator: `import sys`, then the same `if` with a %pip line.
_LEGACY = re.compile(r'^(?:import sys\n\n?)?if "google\.colab" in sys\.modules:\n(?:[ \t]+\S.*\n)+', re.MULTILINE)


@dataclass(frozen=True)
class CourseSettings:
    """Where the course lives on GitHub, and which version the notebooks belong to."""

    repository: str  # https://github.com/<org>/<repo>
    version: str

    @property
    def tag(self) -> str:
        return f"v{self.version}"

    @property
    def slug(self) -> str:
        """``org/repo``."""
        return self.repository.removeprefix("https://github.com/")

    def helpers_spec(self) -> str:
        """The pip requirement for the helpers package at this version."""
        return f"pytorch-course-helpers[mnist-subset] @ git+{self.repository}@{self.tag}"

    def colab_url(self, lesson: str) -> str:
        """Colab's address for the student notebook of ``lesson`` at this version."""
        return f"https://colab.research.google.com/github/{self.slug}/blob/{self.tag}/{RELEASE_DIR}/{lesson}/{lesson}.ipynb"


def settings(root: Path) -> CourseSettings:
    """Read ``[tool.course] repository`` from ``root/pyproject.toml``; the version is ``helpers.__version__``."""
    path = root / "pyproject.toml"
    try:
        repo = tomllib.loads(path.read_text(encoding="utf-8"))["tool"]["course"]["repository"]
    except (FileNotFoundError, KeyError, tomllib.TOMLDecodeError) as err:
        raise ReleaseError(f"{path} needs a [tool.course] table with repository = "
                           f'"https://github.com/<org>/<repo>" (the Colab links are made from it): {err!r}') from None
    repo = str(repo).rstrip("/")
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", repo):
        raise ReleaseError(f"[tool.course] repository in {path} must look like https://github.com/<org>/<repo>, "
                           f"not {repo!r}: Colab opens notebooks from GitHub.")
    return CourseSettings(repo, helpers.__version__)


def badge_source(course: CourseSettings, lesson: str) -> str:
    return f"[![Open In Colab]({BADGE_IMAGE})]({course.colab_url(lesson)})"


# The generated part of the setup cell: plain Python (no IPython magic, so a test can run it),
# ruff-clean, and pip's own error message in the notebook when the install fails.
_BLOCK = """\
{begin}
import sys

if "google.colab" in sys.modules:  # install the helpers at the course version (never torch), get the data
    import importlib
    import os
    import subprocess

    _spec = os.environ.get(
        "{env}",
        "{spec}",
    )
    _pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", _spec],
                          capture_output=True, text=True)
    if _pip.returncode != 0:
        raise RuntimeError("Installing the course's helpers failed (is the runtime online?)\\n" + _pip.stderr[-3000:])
    importlib.invalidate_caches()
    from helpers import data

    for _name, _status in data.prepare().items():
        print(f"{{_name}}: {{_status}}")
{end}"""


def colab_block(course: CourseSettings) -> str:
    """The lines between COLAB_BEGIN and COLAB_END in every setup cell."""
    return _BLOCK.format(begin=COLAB_BEGIN, end=COLAB_END, env=SPEC_ENV, spec=course.helpers_spec())


def _badge_cell(course: CourseSettings, lesson: str):
    cell = nbformat.v4.new_markdown_cell(badge_source(course, lesson), id=BADGE_ID)
    cell.metadata = {"slideshow": {"slide_type": "skip"}, "tags": [BADGE_TAG]}
    return cell


def _with_block(source: str, block: str, where: str) -> str:
    start, end = source.find(COLAB_BEGIN), source.find(COLAB_END)
    if start >= 0 and end > start:
        return source[:start] + block + source[end + len(COLAB_END):]
    legacy = _LEGACY.search(source)
    if legacy:  # the hand-written block becomes the generated one
        return source[:legacy.start()] + block + "\n" + source[legacy.end():]
    raise ReleaseError(f"{where}: the setup cell has no Colab part. Put these two lines where it belongs "
                       f"(after the comments at the top), then run `make release`:\n{COLAB_BEGIN}\n{COLAB_END}")


def refresh(nb, course: CourseSettings, lesson: str, where: str = "notebook") -> bool:
    """Bring ``nb``'s badge cell and setup cell's Colab part up to date; True when anything changed."""
    changed = False
    first = nb.cells[0] if nb.cells else None
    if first is None or BADGE_TAG not in first.metadata.get("tags", []):
        nb.cells.insert(0, _badge_cell(course, lesson))
        changed = True
    else:
        wanted = _badge_cell(course, lesson)
        if first.source != wanted.source or first.metadata != wanted.metadata:
            first.source, first.metadata = wanted.source, wanted.metadata
            changed = True
    setup = [c for c in nb.cells if SETUP_TAG in c.metadata.get("tags", [])]
    if len(setup) != 1 or setup[0].cell_type != "code":
        raise ReleaseError(f"{where}: expected exactly one code cell tagged {SETUP_TAG!r} (the setup cell), "
                           f"found {len(setup)}. Tag it in JupyterLab (property inspector, cell tags).")
    new = _with_block(setup[0].source, colab_block(course), where)
    if new != setup[0].source:
        setup[0].source = new
        changed = True
    return changed


def refresh_source(lesson: Lesson) -> bool:
    """Rewrite the instructor notebook's badge and Colab setup when they are out of date; True if written."""
    nb = nbformat.read(lesson.source, as_version=4)
    if not refresh(nb, settings(lesson.root), lesson.name, where=str(lesson.source)):
        return False
    nbformat.write(nb, lesson.source)
    return True


def stale_sources(root: Path, names: list[str] | None = None) -> list[str]:
    """Instructor notebooks whose badge or Colab setup differ from what ``make release`` would write."""
    course = settings(root)
    problems = []
    for lesson in find_lessons(root, names):
        nb = nbformat.read(lesson.source, as_version=4)
        if refresh(nb, course, lesson.name, where=str(lesson.source)):
            problems.append(f"{lesson.source.relative_to(root)}: the Colab badge or setup is out of date "
                            "with pyproject.toml [tool.course]")
    return problems

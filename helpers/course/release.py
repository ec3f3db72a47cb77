"""Generate the student notebooks in notebooks/ from the instructor notebooks in solutions/, and the instant
checks' expected values in helpers/checks/expected/ from the solutions (see ``helpers.course.expected``).

nbgrader's ``generate_assignment`` does the work (answer stubs, hidden tests and
outputs removed, checksums for autograding); this module runs it in a throwaway
course folder, so no gradebook is left behind, and checks that the committed
student notebooks are what it would produce now.
"""

from __future__ import annotations

import filecmp
import json
import re
import shutil
import tempfile
from pathlib import Path

import nbformat

from helpers.course import expected
from helpers.course.colab import refresh_source
from helpers.course.lessons import RELEASE_DIR, SOURCE_DIR, Lesson, ReleaseError, find_lessons, read_source
from helpers.course.nbgrader_run import run_nbgrader


def generate(lesson: Lesson, out_dir: Path) -> Path:
    """Run nbgrader generate_assignment for ``lesson`` and put the student files in ``out_dir``."""
    read_source(lesson.source)
    with tempfile.TemporaryDirectory(prefix="course-release-") as tmp:
        course = Path(tmp)
        shutil.copy(lesson.root / "nbgrader_config.py", course / "nbgrader_config.py")
        shutil.copytree(lesson.source_dir, course / SOURCE_DIR / lesson.name,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        proc = run_nbgrader(["generate_assignment", lesson.name, "--force",
                             f"--db=sqlite:///{course / 'gradebook.db'}", "--log-level=WARN"], course)
        produced = course / RELEASE_DIR / lesson.name
        if proc.returncode != 0 or not (produced / lesson.student.name).is_file():
            log = (proc.stdout + proc.stderr).strip()[-3000:]
            raise ReleaseError(f"nbgrader generate_assignment failed for {lesson.source}:\n{log}")
        _strip_run_metadata(produced / lesson.student.name)
        if practice(lesson.root):
            write_solutions(lesson, produced)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        shutil.copytree(produced, out_dir)
    return out_dir / lesson.student.name


def practice(root: Path) -> bool:
    """``[tool.course] practice`` in pyproject.toml: True makes practice releases, whose exercises have a
    ``solution()``. False (the default) makes graded releases, which hold no solution."""
    import tomllib

    path = root / "pyproject.toml"
    try:
        value = tomllib.loads(path.read_text(encoding="utf-8")).get("tool", {}).get("course", {}).get("practice",
                                                                                                       False)
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ReleaseError(f"cannot read {path}: {err}") from None
    if not isinstance(value, bool):
        raise ReleaseError(f"[tool.course] practice in {path} must be true or false (got {value!r}); "
                           "false makes graded releases, true adds solution() for self-study.")
    return value


def solutions_of(lesson: Lesson) -> dict[str, str]:
    """Exercise number -> its answer cells as the instructor notebook has them, the marker lines removed."""
    out: dict[str, list[str]] = {}
    for cell in read_source(lesson.source).cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        found = re.fullmatch(r"ex(\d+)_answer\w*", gid)
        if found and cell.metadata["nbgrader"].get("solution"):
            lines = [ln for ln in cell.source.splitlines() if ln.strip() not in ("### BEGIN SOLUTION",
                                                                                 "### END SOLUTION")]
            out.setdefault(found.group(1), []).append("\n".join(lines).strip())
    return {k: "\n\n".join(v) for k, v in out.items()}


def write_solutions(lesson: Lesson, folder: Path) -> Path:
    """A practice release's solutions file (read by ``Exercise.solution()``), next to the student notebook."""
    from helpers.checks.core import SOLUTIONS_FILE

    path = folder / SOLUTIONS_FILE
    path.write_text(json.dumps({"lesson": lesson.name, "practice": True, "exercises": solutions_of(lesson)},
                               indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def strip_run_metadata(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Drop execution timestamps and saved widget state (random ids), which change with every run."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    return nb


def _strip_run_metadata(path: Path) -> None:
    nbformat.write(strip_run_metadata(nbformat.read(path, as_version=4)), path)


def release(root: Path, names: list[str] | None = None) -> list[Path]:
    """Regenerate ``notebooks/<lesson>/`` for every lesson (or those named).

    First brings each instructor notebook's Colab badge and setup up to date with
    pyproject.toml (see ``helpers.course.colab``), so the release carries them.
    """
    lessons = find_lessons(root, names)
    for lesson in lessons:
        read_source(lesson.source)  # a malformed notebook is reported before anything is written
        refresh_source(lesson)
    for lesson in lessons:
        expected.write(lesson)  # the instant checks' expected values, from the solutions
    return [generate(lesson, lesson.release_dir) for lesson in lessons]


def stale(root: Path, names: list[str] | None = None) -> list[str]:
    """Student files that differ from what ``make release`` would produce now (empty: up to date)."""
    problems = []
    for lesson in find_lessons(root, names):
        with tempfile.TemporaryDirectory(prefix="course-check-") as tmp:
            fresh = generate(lesson, Path(tmp) / lesson.name).parent
            problems += _compare(fresh, lesson.release_dir, lesson.root)
        problems += expected.drift(lesson)
    return problems


def _compare(fresh: Path, committed: Path, root: Path) -> list[str]:
    if not committed.is_dir():
        return [f"{committed.relative_to(root)} is missing"]
    # Files git ignores (JupyterLab's checkpoints, caches) are not part of the release.
    cmp = filecmp.dircmp(fresh, committed, ignore=[".ipynb_checkpoints", "__pycache__"])
    out = [f"{(committed / n).relative_to(root)} is missing" for n in cmp.left_only]
    out += [f"{(committed / n).relative_to(root)} is not generated from solutions/" for n in cmp.right_only]
    for name in cmp.common_files:
        a, b = fresh / name, committed / name
        same = (json.loads(a.read_text()) == json.loads(b.read_text())) if name.endswith(".ipynb") \
            else filecmp.cmp(a, b, shallow=False)
        if not same:
            out.append(f"{(committed / name).relative_to(root)} is stale")
    for sub in cmp.common_dirs:
        out += _compare(fresh / sub, committed / sub, root)
    return out

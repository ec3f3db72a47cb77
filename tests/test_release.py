"""`make release`: the student notebooks are generated from solutions/, and a stale one fails."""

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from helpers.course.lessons import Lesson, ReleaseError, find_lessons, read_source
from helpers.course.release import generate, release, stale
from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def test_committed_student_notebooks_are_up_to_date(root):
    """Fails when a source notebook was edited and `make release` was forgotten."""
    assert find_lessons(root), "no lessons found in solutions/"
    problems = stale(root)
    assert not problems, "\n".join(problems) + "\nrun `make release` and commit the result"


def _copy_course(root, tmp_path, lesson="01_tensors_autograd"):
    course = tmp_path / "course"
    (course / "solutions").mkdir(parents=True)
    shutil.copy(root / "nbgrader_config.py", course)
    shutil.copy(root / "pyproject.toml", course)
    shutil.copytree(root / "solutions" / lesson, course / "solutions" / lesson)
    return course, Lesson(lesson, course)


def test_editing_the_source_without_releasing_is_detected(root, tmp_path):
    course, lesson = _copy_course(root, tmp_path)
    release(course)
    assert stale(course) == []
    nb = nbformat.read(lesson.source, as_version=4)
    nb.cells[0].source += "\n\nA sentence the instructor just added."
    nbformat.write(nb, lesson.source)
    assert stale(course) == ["notebooks/01_tensors_autograd/01_tensors_autograd.ipynb is stale"]
    (course / "notebooks" / "01_tensors_autograd" / "extra.txt").write_text("x")
    assert "notebooks/01_tensors_autograd/extra.txt is not generated from solutions/" in stale(course)


def test_student_notebook_has_stubs_and_no_solutions_or_hidden_tests(root, tmp_path):
    _, lesson = _copy_course(root, tmp_path)
    student = nbformat.read(generate(lesson, tmp_path / "out"), as_version=4)
    text = json.dumps(student)
    for secret in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "manual_seed(101)", "images.float() / 255",
                   "x @ weight.T + bias"):
        assert secret not in text, secret
    assert text.count("raise NotImplementedError()") == 6
    assert all(c.get("outputs", []) == [] for c in student.cells if c.cell_type == "code")
    source = nbformat.read(lesson.source, as_version=4)
    assert [c.metadata.get("slideshow") for c in student.cells] == [c.metadata.get("slideshow") for c in source.cells]


def test_malformed_notebook_gets_a_clear_error(root, tmp_path):
    course, lesson = _copy_course(root, tmp_path)
    text = lesson.source.read_text()
    lesson.source.write_text(text[: len(text) // 2])  # a truncated save
    with pytest.raises(ReleaseError, match=r"is not a valid notebook \(its JSON is broken.*make release"):
        read_source(lesson.source)
    proc = subprocess.run([sys.executable, "-m", "helpers.course", "release", "--root", str(course)],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "01_tensors_autograd.ipynb is not a valid notebook" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (course / "notebooks").exists()  # nothing half-written


def test_notebook_schema_and_grading_metadata_are_checked(root, tmp_path):
    course, lesson = _copy_course(root, tmp_path)
    nb = json.loads(lesson.source.read_text())
    nb["cells"][0]["cell_type"] = "nonsense"
    lesson.source.write_text(json.dumps(nb))
    with pytest.raises(ReleaseError, match="is not a valid notebook"):
        read_source(lesson.source)
    nb = nbformat.read(root / "solutions" / lesson.name / f"{lesson.name}.ipynb", as_version=4)
    graded = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
    graded[1].metadata.nbgrader.grade_id = graded[0].metadata.nbgrader.grade_id
    nbformat.write(nb, lesson.source)
    with pytest.raises(ReleaseError, match="is used twice"):
        read_source(lesson.source)


def test_unknown_lesson_names_the_known_ones(root):
    with pytest.raises(ReleaseError, match="01_tensors_autograd"):
        find_lessons(root, ["99"])
    assert [lesson.name for lesson in find_lessons(root, ["1"])] == ["01_tensors_autograd"]


def _practice(course, value="true"):
    lines = [ln for ln in (course / "pyproject.toml").read_text().splitlines() if not ln.startswith("practice =")]
    at = lines.index("[tool.course]") + 1
    (course / "pyproject.toml").write_text("\n".join(lines[:at] + [f"practice = {value}"] + lines[at:]) + "\n")


def test_graded_release_has_no_solution_and_says_so(root, tmp_path, monkeypatch):
    """The committed release is graded: no solutions file anywhere, and solution() says why."""
    from helpers.checks import core, lesson05

    assert not list((root / "notebooks").rglob("solutions.json"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(LookupError, match="graded release, so it has no solutions. Use hint"):
        lesson05.ex3.solution()
    assert core.NO_SOLUTIONS.format(title="x") not in lesson05.ex3.hint(3).text


def test_practice_release_adds_a_solution_to_each_exercise(root, tmp_path, monkeypatch):
    """[tool.course] practice = true: `make release` writes the answer cells next to the student notebook,
    solution() shows them, `make bundle` refuses the practice release, and a bad value is named."""
    from helpers.checks import lesson01
    from helpers.grading import bundle

    course, lesson = _copy_course(root, tmp_path)
    _practice(course)
    release(course)
    folder = course / "notebooks" / lesson.name
    data = json.loads((folder / "solutions.json").read_text())
    assert data["lesson"] == lesson.name and sorted(data["exercises"], key=int) == [str(k) for k in range(1, 7)]
    assert all("BEGIN SOLUTION" not in code and "raise NotImplementedError" not in code
               for code in data["exercises"].values())
    assert stale(course) == []  # the solutions file is part of what a practice release generates
    monkeypatch.chdir(folder)  # the kernel's working folder is the notebook's
    shown = lesson01.ex3.solution()
    assert shown.code == data["exercises"]["3"] and "@" in shown.code and "practice release" in str(shown)
    with pytest.raises(LookupError):  # a lesson's file never answers another lesson's exercises
        __import__("helpers.checks.lesson02", fromlist=["ex1"]).ex1.solution()
    (course / "helpers").mkdir()
    with pytest.raises(bundle.LeakError, match="practice release"):
        bundle.build(course, tmp_path / "bundle.zip")
    _practice(course, '"yes"')
    with pytest.raises(ReleaseError, match="practice .* must be true or false"):
        release(course)


def _imports_between_modules(package: Path) -> dict[str, set[str]]:
    """For every module of ``package``, the package's modules it imports (at any depth of its code)."""
    root = package.parent
    names = {".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
             for p in package.rglob("*.py")}
    graph = {}
    for path in package.rglob("*.py"):
        name = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            found = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] + [f"{node.module}.{a.name}" for a in node.names] \
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else []
            deps |= {m for m in found if m in names and m != name and not name.startswith(m + ".")}
        graph[name] = deps
    return graph


def test_the_package_has_no_import_circle():
    """Issue 13 part 7: lesson discovery lives in helpers.course.lessons, which release, slides, Colab and
    grading share; no module of helpers reaches itself through its imports (colab and release used to)."""
    graph = _imports_between_modules(ROOT / "helpers")
    assert graph["helpers.course.lessons"] <= {"helpers"}, graph["helpers.course.lessons"]
    for user in ("helpers.course.release", "helpers.course.slides", "helpers.course.colab", "helpers.grading.course"):
        assert "helpers.course.lessons" in graph[user], user
    done, stack = set(), []

    def visit(node):
        if node in stack:
            raise AssertionError("import circle: " + " -> ".join(stack[stack.index(node):] + [node]))
        if node in done:
            return
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            visit(dep)
        stack.pop()
        done.add(node)

    for module in sorted(graph):
        visit(module)

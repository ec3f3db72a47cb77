"""Hints teach without handing over the code (issue 13, part 4).

Every exercise of every lesson has at least three hint stages (the idea, the PyTorch pieces, a skeleton
with blanks), no stage contains a line of that exercise's reference solution, and each lesson's hints
cell lists every stage.
"""

import ast
import importlib
import inspect
import re

import nbformat
import pytest

from helpers.course.lessons import find_lessons
from tests.conftest import ROOT

LESSONS = [lesson.name for lesson in find_lessons(ROOT)]
MIN_STAGES = 3

# Lines of a reference solution that a hint may contain, because they say nothing about the answer.
# Kept short on purpose; each entry says why it is allowed.
_TRIVIAL = [
    # a call without arguments, alone or as a `with` header or a list item: model.train(), loss.backward(),
    # optimizer.step(), super().__init__(), nn.ReLU(), with torch.no_grad(): the names the lesson teaches,
    # which a stage-2 hint must be able to say
    re.compile(r"(with)?[A-Za-z_][\w.]*\(\)(\.\w+\(\))*:?"),
    # structure only: `else:`, `pass`, a bare `return`, a closing bracket, or the opening line of a bracket
    # whose contents (the answer) are on the lines that follow
    re.compile(r"else:|pass|return|[)\]}]+|.*[(\[{]"),
]
# The value of an assignment or a `return` that names, counts or empties and nothing else
# (`self.images = images`, `total, count = 0.0, 0`, `return model`, `preds, labels = [], []`).
_PLAIN_VALUE = re.compile(r"(?:[\w.]+|\[\]|\{\}|\(\))(?:,(?:[\w.]+|\[\]|\{\}|\(\)))*")
_TARGET = re.compile(r"^[\w.,\[\]]+(?:[-+*/]?=)(?!=)")


def _normalise(line: str) -> str:
    """The line without whitespace, trailing comment or trailing comma, with one kind of quote."""
    line = line.split("#", 1)[0]
    return re.sub(r"\s+", "", line).replace("'", '"').rstrip(",")


def _reference_lines(nb) -> list[list[str]]:
    """For each exercise (answer cell, in order), the normalised lines between BEGIN and END SOLUTION that a
    hint must not contain: for an assignment or a return, its value."""
    found = []
    for cell in nb.cells:
        if cell.cell_type != "code" or not cell.metadata.get("nbgrader", {}).get("grade_id", "").endswith("_answer"):
            continue
        lines, inside, in_doc = [], False, False
        for raw in cell.source.splitlines():
            text = raw.strip()
            if text.startswith("### BEGIN SOLUTION"):
                inside = True
            elif text.startswith("### END SOLUTION"):
                inside = False
            elif inside:
                if text.startswith(('"""', "'''")):
                    in_doc = not (len(text) > 3 and text.endswith(text[:3])) and not in_doc
                    continue
                if in_doc or not text or text.startswith(("#", "def ", "class ", "@")):
                    continue
                line = _normalise(text)
                if line.startswith("return"):
                    line = line[len("return"):] or "return"
                else:
                    line = _TARGET.sub("", line, count=1) if _TARGET.match(line) else line
                if any(rule.fullmatch(line) for rule in _TRIVIAL) or _PLAIN_VALUE.fullmatch(line):
                    continue
                lines.append(line)
        found.append(lines)
    return found


def _stages(ex) -> list[str]:
    """The text of every hint stage of ex, through its public hint(level)."""
    return [ex.hint(level).text for level in range(1, ex.hint(1).total + 1)]


def _lesson(lesson):
    checks = importlib.import_module(f"helpers.checks.lesson{lesson[:2]}")
    nb = nbformat.read(ROOT / "solutions" / lesson / f"{lesson}.ipynb", as_version=4)
    return checks, nb


def test_the_reference_reader_finds_what_a_hint_must_not_say():
    """The reader keeps answer lines (values of assignments and returns) and skips only the allowlist."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        'def f(x, model):\n    """Doc."""\n    ### BEGIN SOLUTION\n    model.train()\n    total, n = 0.0, 0\n'
        "    out = torch.relu(x)  # shape\n    w -= lr * w.grad\n    return nn.Sequential(\n"
        "        nn.Linear(784, 128),\n    )\n    return x.flatten(start_dim=1)\n    ### END SOLUTION\n",
        metadata={"nbgrader": {"grade_id": "ex1_answer", "solution": True}})])
    assert _reference_lines(nb) == [["torch.relu(x)", "lr*w.grad", "nn.Linear(784,128)", "x.flatten(start_dim=1)"]]


@pytest.mark.parametrize("lesson", LESSONS)
def test_every_hint_stage_holds_no_line_of_the_reference_solution(lesson):
    """No stage of an exercise's hints contains (whitespace removed) a line of its reference solution."""
    checks, nb = _lesson(lesson)
    references = _reference_lines(nb)
    assert len(references) == len(checks.EXERCISES)
    leaks = []
    for ex, lines in zip(checks.EXERCISES, references, strict=True):
        assert lines, f"{ex.title}: no reference lines found between BEGIN and END SOLUTION"
        for level, stage in enumerate(_stages(ex), start=1):
            text = re.sub(r"\s+", "", stage).replace("'", '"')  # hints are judged whole, comments included
            leaks += [f"{ex.title}, hint {level}: {line}" for line in lines if line in text]
    assert not leaks, "hints that hold a line of the solution:\n" + "\n".join(leaks)


def _texts(module) -> list[str]:
    """Every string written in the module's source (messages, hints, docstrings); an f-string's fields as {}."""
    texts = []
    for node in ast.walk(ast.parse(inspect.getsource(module))):
        if isinstance(node, ast.JoinedStr):
            texts.append("".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            texts.append(node.value)
    return texts


@pytest.mark.parametrize("lesson", LESSONS)
def test_no_failure_message_of_the_lesson_holds_a_line_of_a_reference_solution(lesson):
    """A failure message names the mistake, not the answer: no string of helpers/checks/lessonNN.py (messages,
    hints, docstrings) contains a line of any of the lesson's reference solutions."""
    checks, nb = _lesson(lesson)
    lines = {line for exercise in _reference_lines(nb) for line in exercise}
    leaks = {f"{line!r} in {text[:100]!r}" for text in _texts(checks)
             for line in lines if line in re.sub(r"\s+", "", text).replace("'", '"')}
    assert not leaks, "strings that hold a line of a solution:\n" + "\n".join(sorted(leaks))


@pytest.mark.parametrize("lesson", LESSONS)
def test_every_exercise_has_three_stages_ending_in_a_skeleton_with_blanks(lesson):
    """The idea, the pieces, then a skeleton: at least three stages, the last one with ____ blanks."""
    checks, _ = _lesson(lesson)
    for ex in checks.EXERCISES:
        stages = _stages(ex)
        assert len(stages) >= MIN_STAGES, ex.title
        assert "____" in stages[-1], f"{ex.title}: the last hint should be a skeleton with ____ blanks"
        assert "____" not in "".join(stages[:-1]), f"{ex.title}: only the last stage is a skeleton"


@pytest.mark.parametrize("lesson", LESSONS)
def test_each_hints_cell_lists_every_stage(lesson):
    """The hints cell after each exercise has one commented `checks.exN.hint(k)` line per stage, in order."""
    checks, nb = _lesson(lesson)
    cells = [cell for cell in nb.cells if "hints" in cell.metadata.get("tags", [])]
    assert len(cells) == len(checks.EXERCISES)
    for cell, ex in zip(cells, checks.EXERCISES, strict=True):
        listed = re.findall(r"^# checks\.ex(\d+)\.hint\((\d+)\)$", cell.source, re.M)
        assert listed == [(str(ex.number), str(k)) for k in range(1, len(_stages(ex)) + 1)], (ex.title, cell.source)

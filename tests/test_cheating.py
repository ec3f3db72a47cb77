"""Cheating the way students do (issue 13, part 3): no graded exercise gives points for an answer built
only from what a learner receives.

For every graded test cell of every lesson (hidden tests included), this submits:

- every public callable of the learner's package (``helpers`` without ``helpers.course`` and
  ``helpers.grading``, as the student bundle ships it), bound to the exercise's answer names;
- the text of every hint stage, as the answer cell;
- for exercises whose answer is a value, every literal printed by the lesson's own cells before
  the exercise (the stored outputs of the instructor notebook, which hold what a student's run
  shows there, or more).

A submission earns the exercise's points when the graded cell passes without writing to stderr, as
nbgrader scores it, and the grader's copying detector (``helpers.grading.copying``) does not zero it,
imported directly or wrapped in a function of the student's own. The test fails, naming the exercise
and the submission, when anything earns points. Lesson 07's graded cells start worker processes
(its warm pool, and torchrun for Exercise 5); only the submissions that define the answer's names
and fit its signature get that far, so the lesson takes about 35 s here.

The graded cells run in-process, in a scope with the lesson's own imports (``run`` below), the way
``tests/hidden_tools.py`` runs them, with the reference answers of the other exercises that the cell
uses (as a learner who solved those has them); the reference solution must earn its points there
first, so a harness that cannot run an exercise fails instead of passing it. Answers are compiled
under file names that ``inspect.getsource`` can read, as IPython registers cells, because lesson 07
sends functions to its workers by their source.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import inspect
import io
import linecache
import re
import signal
from dataclasses import dataclass, field

import matplotlib
import nbformat
import pytest

from helpers.course.lessons import compile_cell, find_lessons, read_source
from helpers.grading import copying, course
from tests.conftest import ROOT

matplotlib.use("Agg")
pytestmark = pytest.mark.slow
LESSONS = [lesson.name for lesson in find_lessons(ROOT)]
PRIVATE = ("helpers.course", "helpers.grading", "helpers.__main__")
SECONDS = 20  # per submission: longer is a hang, and earns nothing
# The package's functions that earn nothing only because the grader's copying detector zeroes them.
# Issue 13 part 2 emptied it (lessons 04 to 06 no longer use a helpers.training.pick_device,
# train_one_epoch, evaluate or predict); it must stay empty.
RELIED_ON: set[str] = set()


def learner_modules() -> list[str]:
    return sorted(m for m in copying.modules(ROOT) if not m.startswith(PRIVATE))


def public_callables() -> list[tuple[str, str, object]]:
    """(module, name, object) for every public function or class the learner's package defines."""
    found = []
    for name in learner_modules():
        module = importlib.import_module(name)
        for attr, obj in sorted(vars(module).items()):
            if attr.startswith("_") or not callable(obj) or inspect.ismodule(obj):
                continue
            if getattr(obj, "__module__", "") == name:  # defined there, not imported from torch or numpy
                found.append((name, attr, obj))
    return found


@dataclass
class Exercise:
    lesson: str
    number: str
    grade_id: str
    test: str  # the graded cell's source, hidden tests included
    names: set[str]  # what the reference answer defines
    reference: list[str]  # the reference answer cells
    checks: object
    value: bool  # the answer is a value (a dict, a number), not a function or class
    printed: list[object] = field(default_factory=list)  # literals printed before the exercise
    hints: list[str] = field(default_factory=list)
    context: str = ""  # other exercises' reference answers that the graded cell uses (lesson 07's Exercise 5)


def _imports(nb) -> str:
    """The lesson's own import lines, run before every submission (its setup cell's names)."""
    lines = []
    for cell in nb.cells:
        if cell.cell_type == "code" and not cell.metadata.get("nbgrader", {}).get("solution"):
            for line in cell.source.splitlines():
                if re.match(r"(import|from) \w", line) and not line.rstrip().endswith(("(", "\\")):
                    lines.append(line)
    return "\n".join(dict.fromkeys(lines))


def _literals(text: str) -> list[object]:
    """Python literals in a printed output: whole lines, and bracketed or numeric pieces of them."""
    found = []
    for line in text.splitlines():
        pieces = [line, line.split(":", 1)[-1], line.split("=", 1)[-1]]
        pieces += re.findall(r"[\[\(\{].*[\]\)\}]", line) + re.findall(r"-?\d[\d_,]*\.?\d*", line)
        for piece in pieces:
            try:
                value = ast.literal_eval(piece.strip().replace(",", "") if re.fullmatch(r"-?[\d,]+", piece.strip())
                                         else piece.strip())
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                continue
            if value not in found:
                found.append(value)
    return found


def exercises(lesson_name: str) -> list[Exercise]:
    lesson = find_lessons(ROOT, [lesson_name])[0]
    nb = read_source(lesson.source)
    checks = importlib.import_module(f"helpers.checks.lesson{lesson_name[:2]}")
    names = copying.answer_names(nb)
    answers: dict[str, list[str]] = {}
    printed: dict[str, list] = {}
    seen: list[object] = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        gid = meta.get("grade_id", "")
        found = re.fullmatch(r"ex(\d+)_answer\w*", gid)
        if found and meta.get("solution"):
            answers.setdefault(found.group(1), []).append(cell.source)
            printed.setdefault(found.group(1), list(seen))
        if cell.cell_type == "code" and "check" not in cell.metadata.get("tags", []) and not meta.get("solution"):
            for out in cell.get("outputs", []):
                seen += [v for v in _literals("".join(out.get("text", "")) or
                                              "".join(out.get("data", {}).get("text/plain", ""))) if v not in seen]
    out = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if not meta.get("grade") or meta.get("solution") or not meta.get("points"):
            continue
        k = re.match(r"ex(\d+)_", meta["grade_id"]).group(1)
        ex = getattr(checks, f"ex{k}")
        used = set(re.findall(r"\b\w+\b", cell.source))
        context = "\n".join(src for other, srcs in answers.items() if other != k
                            and names[f"ex{other}"] & used for src in srcs)
        out.append(Exercise(lesson_name, k, meta["grade_id"], cell.source, names[f"ex{k}"], answers[k], checks,
                            value=not ex._needs_callable, printed=printed[k],
                            hints=[ex.hint(level).text for level in range(1, len(ex._hints) + 1)],
                            context=context))
    return out


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout


def _compiled(source: str):
    """``source`` compiled under a file name of its own that ``inspect.getsource`` can read back."""
    return compile_cell(source, f"<answer-{len(linecache.cache)}-{hash(source) & 0xFFFFFFFF:x}>")


def run(ex: Exercise, define: str | None = None, bind: dict | None = None, imports: str = "") -> bool:
    """True when the graded cell passes quietly with the answer defined by ``define`` (source) or ``bind``."""
    scope = {"__name__": "__main__", "checks": ex.checks}
    out, err = io.StringIO(), io.StringIO()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(SECONDS)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            exec(compile(imports, "<imports>", "exec"), scope)
            if ex.context:  # a learner who solved the exercises this one builds on
                exec(_compiled(ex.context), scope)
            if define is not None:
                exec(_compiled(define), scope)
            scope.update(bind or {})
            exec(compile(ex.test, f"<{ex.grade_id}>", "exec"), scope)
    except BaseException as error:  # noqa: B036  (whatever a submission raises, even SystemExit, earns nothing)
        if isinstance(error, KeyboardInterrupt):
            raise
        return False
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        matplotlib.pyplot.close("all")
    return not err.getvalue()


def copied(ex: Exercise, source: str) -> bool:
    """Whether the grader zeroes ``source`` in the exercise's answer cell for using the course's code."""
    lesson = find_lessons(ROOT, [ex.lesson])[0]
    nb = read_source(lesson.source)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == f"ex{ex.number}_answer")
    cell.source = source
    released = {c.source for c in nbformat.read(lesson.student, as_version=4).cells}
    found = copying.find(nb, released, course.trusted_aliases(read_source(lesson.source)), ROOT, ex.lesson,
                         copying.answer_names(read_source(lesson.source)))
    return bool(found.get(f"ex{ex.number}"))


def _fits(obj, ex: Exercise, imports: str) -> bool:
    """A candidate whose signature can take the reference answer's arguments (or a class for a class)."""
    scope: dict = {}
    try:
        exec(compile(imports + "\n" + "\n".join(ex.reference), "<reference>", "exec"), scope)
    except Exception:
        return True
    ref = scope.get(sorted(ex.names)[0])
    if ref is None:
        return True
    if inspect.isclass(ref) != inspect.isclass(obj):
        return False
    try:
        wanted = [p for p in inspect.signature(ref).parameters.values() if p.default is p.empty
                  and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        inspect.signature(obj).bind(*range(len(wanted)))
    except (TypeError, ValueError):
        return False
    return True


def earned_by_package(ex: Exercise, candidates, imports: str) -> tuple[list[str], list[str]]:
    """The package's callables that earn the exercise's points, and those that passed the graded cell but
    were stopped only by the copying detector."""
    earned, stopped = [], []
    for module, attr, obj in candidates:
        if ex.value or not _fits(obj, ex, imports):
            continue
        if not run(ex, bind=dict.fromkeys(ex.names, obj), imports=imports):
            continue
        direct = "\n".join(f"from {module} import {attr} as {name}" for name in sorted(ex.names))
        shape = ("class {name}({path}):\n    pass" if inspect.isclass(obj)
                 else "def {name}(*args, **kwargs):\n    return {path}(*args, **kwargs)")
        wrapped = "\n".join(f"import {module}\n" + shape.format(name=name, path=f"{module}.{attr}")
                             for name in sorted(ex.names))
        if copied(ex, direct) and copied(ex, wrapped):
            stopped.append(f"{ex.grade_id}: {module}.{attr}")
        else:
            earned.append(f"{module}.{attr}")
    return earned, stopped


def earned_by_hints(ex: Exercise, imports: str) -> list[str]:
    return [f"hint {level}" for level, text in enumerate(ex.hints, 1) if run(ex, define=text, imports=imports)]


def earned_by_outputs(ex: Exercise, imports: str) -> list[str]:
    if not ex.value:
        return []
    return [repr(v)[:80] for v in ex.printed if run(ex, bind=dict.fromkeys(ex.names, v), imports=imports)]


@pytest.fixture(scope="module")
def candidates():
    return public_callables()


@pytest.mark.parametrize("lesson", LESSONS)
def test_nothing_a_learner_receives_earns_an_exercises_points(lesson, candidates, capsys):
    nb = read_source(find_lessons(ROOT, [lesson])[0].source)
    imports = _imports(nb)
    problems, stopped, tried = [], [], 0
    for ex in exercises(lesson):
        assert run(ex, define="\n".join(ex.reference), imports=imports), \
            f"{ex.grade_id}: the reference answer does not pass in this harness, so it cannot judge submissions"
        by_package, by_copying = earned_by_package(ex, candidates, imports)
        stopped += by_copying
        tried += len(candidates) + len(ex.hints) + (len(ex.printed) if ex.value else 0)
        for what in by_package + earned_by_hints(ex, imports) + earned_by_outputs(ex, imports):
            problems.append(f"{ex.grade_id} earns its points with {what}")
    with capsys.disabled():
        print(f"\n{lesson}: {tried} submissions considered; passed the graded cell and zeroed only by the "
              f"copying detector: {', '.join(stopped) or 'none'}")
    assert not problems, "\n".join(problems)
    assert set(stopped) <= RELIED_ON, ("the package answers these exercises (the copying detector zeroes them, but "
                                       "the learner's package must not hold answers): " + ", ".join(
                                           sorted(set(stopped) - RELIED_ON)))


def test_an_answer_put_back_into_the_package_is_found(candidates, monkeypatch):
    """The test bites: the reference conv_output_size of lesson 04, planted in a tool module (which the
    copying detector lets learners use), earns Exercise 1's points and is named."""
    import helpers.plots

    ex = next(e for e in exercises("04_cnn") if e.number == "1")
    imports = _imports(read_source(find_lessons(ROOT, ["04_cnn"])[0].source))
    scope = {"__name__": "helpers.plots"}
    exec(compile(imports + "\n" + "\n".join(ex.reference), "<planted>", "exec"), scope)
    monkeypatch.setattr(helpers.plots, "conv_output_size", scope["conv_output_size"], raising=False)
    planted = [*candidates, ("helpers.plots", "conv_output_size", scope["conv_output_size"])]
    earned, _ = earned_by_package(ex, planted, imports)
    assert earned == ["helpers.plots.conv_output_size"]


def test_an_answer_planted_for_the_worker_processes_is_found(monkeypatch):
    """The same for lesson 07, whose graded cells send the answer to worker processes: the reference
    average_gradients, planted in a tool module, earns Exercise 1's points there and is named."""
    import helpers.plots

    ex = next(e for e in exercises("07_distributed") if e.number == "1")
    imports = _imports(read_source(find_lessons(ROOT, ["07_distributed"])[0].source))
    scope = {"__name__": "helpers.plots"}
    exec(compile(imports, "<imports>", "exec"), scope)
    exec(_compiled("\n".join(ex.reference)), scope)
    monkeypatch.setattr(helpers.plots, "average_gradients", scope["average_gradients"], raising=False)
    planted = [("helpers.plots", "average_gradients", scope["average_gradients"])]  # the others: the test above
    earned, _ = earned_by_package(ex, planted, imports)
    assert earned == ["helpers.plots.average_gradients"]

"""Expected values shipped instead of reference code (helpers.checks.shipped, helpers.course.expected)."""

import json
import shutil

import pytest
import torch
from torch import nn

from helpers.checks import lesson02 as L02
from helpers.checks import shipped
from helpers.checks.core import Exercise, Mismatch
from helpers.course import expected
from helpers.course.lessons import Lesson, ReleaseError, find_lessons
from tests.conftest import ROOT


def test_values_round_trip_with_dtype_and_shape():
    value = {"a": [torch.arange(6, dtype=torch.int64).reshape(2, 3), 1.5, None, "x"],
             "b": (torch.rand(2, 2, 2), True)}
    back = shipped.decode(json.loads(json.dumps(shipped.encode(value))))
    assert torch.equal(back["a"][0], value["a"][0]) and back["a"][0].dtype == torch.int64
    assert torch.equal(back["b"][0], value["b"][0]) and back["b"][0].dtype == torch.float32
    assert back["a"][1:] == [1.5, None, "x"] and back["b"][1] is True
    with pytest.raises(TypeError, match="cannot ship"):
        shipped.encode(object())


def _doubling(monkeypatch, values):
    """An exercise 'return 2 * x' whose visible cases' expected values are ``values`` (as shipped)."""
    def judge(fn, case, want):
        if fn(case) != want:
            raise Mismatch(f"wrong for {case}")

    ex = Exercise(9, "double", points=1, judge=judge, cases=lambda: [1, 2], hints=["x"], observe=lambda f, c: f(c))
    ex.lesson = "99"
    monkeypatch.setattr(shipped, "_load", lambda lesson: {"exercises": {"9": values}})
    return ex


def test_a_check_compares_with_the_shipped_values_and_hidden_cases_with_the_reference(monkeypatch):
    ex = _doubling(monkeypatch, [2, 4])
    assert ex.check(lambda x: 2 * x)
    assert not ex.check(lambda x: x + 1)
    ex.grade(lambda x: 2 * x, cases=[5, 7], reference=lambda x: x + x)
    with pytest.raises(AssertionError, match="wrong for 7"):
        ex.grade(lambda x: 2 * x if x < 7 else 0, cases=[5, 7], reference=lambda x: x + x)
    with pytest.raises(TypeError, match="needs reference="):
        ex.grade(lambda x: 2 * x, cases=[5])


def test_stale_or_missing_values_say_to_release_again(monkeypatch):
    ex = _doubling(monkeypatch, [2])  # one value for two visible cases
    with pytest.raises(shipped.NotShipped, match="make release LESSONS=99"):
        ex.check(lambda x: 2 * x)
    monkeypatch.undo()
    shipped._load.cache_clear()
    with pytest.raises(shipped.NotShipped, match="missing"):
        shipped.expected("98", 1, 1)


def test_the_learners_package_ships_values_not_the_code_that_computes_them():
    """Lesson 02's MLP judges hold no forward pass of their own: the expected output is shipped data."""
    import ast
    import inspect

    judges = (L02._judge_mlp, L02._run_sequential, L02._judge_fixed, L02._run_fixed, L02._expect_mlp_output,
              L02._mlp_mistakes, L02._judge_count, L02._count)
    calls = {node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
             for fn in judges for node in ast.walk(ast.parse(inspect.getsource(fn))) if isinstance(node, ast.Call)}
    assert not calls & {"relu", "ReLU", "relu_"}, "a forward pass of the MLP is back in the checks"
    values = shipped.expected("02", 1, len(L02.ex1.visible_cases()))
    assert [tuple(v.shape) for v in values] == [(6, 10), (3, 10)]  # the second: a transposed batch


def test_drift_is_found_and_float_noise_is_not(tmp_path):
    course = tmp_path / "course"
    shutil.copytree(ROOT / "solutions" / "02_nn_module", course / "solutions" / "02_nn_module")
    lesson = Lesson("02_nn_module", course)
    assert expected.drift(lesson) == ["helpers/checks/expected/lesson02.json is missing or unreadable: run "
                                      "`make release LESSONS=02`"]
    path = expected.write(lesson)
    assert path == course / "helpers" / "checks" / "expected" / "lesson02.json" and expected.drift(lesson) == []
    data = json.loads(path.read_text())
    values = data["exercises"]["1"][0]["values"]
    values[0] *= 1 + 4e-5  # another CPU's rounding, as seen on two machines: relative 4e-5 ...
    values[1] += 2e-6  # ... and 1.7e-6 apart on a value near zero
    path.write_text(json.dumps(data))
    assert expected.drift(lesson) == []
    values[0] += 1e-3  # a changed solution's output
    path.write_text(json.dumps(data))
    assert expected.drift(lesson) == ["helpers/checks/expected/lesson02.json is stale: run `make release LESSONS=02`"]
    values[0] -= 1e-3
    data["exercises"]["2"][0] += 1  # a changed solution
    path.write_text(json.dumps(data))
    assert expected.drift(lesson) == ["helpers/checks/expected/lesson02.json is stale: run `make release LESSONS=02`"]


def test_a_solution_that_fails_to_run_is_named(tmp_path):
    import nbformat

    course = tmp_path / "course"
    shutil.copytree(ROOT / "solutions" / "02_nn_module", course / "solutions" / "02_nn_module")
    lesson = Lesson("02_nn_module", course)
    nb = nbformat.read(lesson.source, as_version=4)
    answer = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "ex1_answer")
    answer.source += "\nundefined_name  # fails as the cell runs"
    nbformat.write(nb, lesson.source)
    with pytest.raises(ReleaseError, match=r"cell \d+ failed .*NameError"):
        expected.compute(lesson)


def test_every_committed_file_is_needed():
    needed = {expected.path_of(lesson).name for lesson in find_lessons(ROOT) if expected.compute(lesson)}
    have = {p.name for p in (ROOT / "helpers" / "checks" / "expected").glob("*.json")}
    assert have == needed


def test_a_changed_answer_is_judged_against_the_shipped_output():
    seq = lambda: nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.Sigmoid(), nn.Linear(128, 10))  # noqa: E731
    assert not L02.ex1.check((seq, None))

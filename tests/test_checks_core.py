"""The check machinery: outcomes, message order, hints, and the guarantees graded cells rely on."""

import importlib

import nbformat
import numpy as np
import pytest
import torch

from helpers.checks.core import (
    Exercise,
    Mismatch,
    Outcome,
    call_answer,
    describe,
    expect_tensor_like,
    shape_text,
)
from helpers.course.lessons import find_lessons
from tests.conftest import ROOT
from tests.notebook_tools import exercises


def _judge(fn, x):
    expect_tensor_like(call_answer(fn, x, name="double"), x * 2)


def _ex(cases=lambda: [torch.ones(2, 3)]):
    return Exercise(9, "double", points=2, judge=_judge, cases=cases, hints=["first", "second"])


def _stub(x):
    raise NotImplementedError()


def _msg(answer):
    result = _ex().check(answer)
    assert result.outcome is Outcome.INCORRECT
    return result.message


def test_outcomes():
    assert _ex().check(lambda x: x * 2).outcome is Outcome.CORRECT
    assert _ex().check(_stub).outcome is Outcome.NOT_ATTEMPTED
    assert not _ex().check(lambda x: x)


def test_messages_go_type_shape_dtype_values_and_hide_the_answer():
    assert "should be a torch.Tensor, got None" in _msg(lambda x: None)
    assert "forget `return`" in _msg(lambda x: None)
    assert "numpy" in _msg(lambda x: (x * 2).numpy())
    assert "expected your result to have shape (2, 3), got (6,)" in _msg(lambda x: (x * 2).flatten())
    assert "dtype torch.float32, got torch.float64" in _msg(lambda x: (x * 2).double())
    values = _msg(lambda x: x * 3)
    assert "6 of 6 elements differ" in values and "2." not in values


def test_exceptions_in_the_answer_become_messages():
    message = _msg(lambda x: x @ torch.ones(5, 5))
    assert message.startswith("calling double(...) raised RuntimeError")


def test_answer_cannot_modify_the_cases():
    shared = torch.ones(2, 3)

    def sneaky(x):
        x.zero_()  # an answer that writes into its input must not change the check's data
        return x * 2

    _ex(cases=lambda: [shared]).check(sneaky)
    assert torch.equal(shared, torch.ones(2, 3))


def test_non_callable_is_a_clear_type_error():
    with pytest.raises(TypeError, match="without the parentheses"):
        _ex().check(torch.ones(2))
    value_ex = Exercise(1, "answer", points=1, judge=lambda a, c: None, cases=lambda: [0],
                        hints=["h"], needs_callable=False)
    assert value_ex.check(42)


def test_grade_is_silent_when_right_and_fails_otherwise():
    _ex().grade(lambda x: x * 2)
    _ex().grade(lambda x: x * 2, cases=[torch.zeros(4)])
    with pytest.raises(AssertionError, match="not attempted"):
        _ex().grade(_stub)
    with pytest.raises(AssertionError, match="wrong values"):
        _ex().grade(lambda x: x + 1, cases=[torch.ones(4) * 5])


def test_a_grade_that_checked_nothing_never_passes():
    with pytest.raises(RuntimeError, match="no test case ran"):
        _ex().grade(lambda x: x * 2, cases=[])


def test_staged_hints():
    ex = _ex()
    assert ex.hint().level == 1
    assert ex.hint().level == 2
    assert ex.hint().level == 2  # stays on the last one
    assert "second" in str(ex.hint(2))
    assert "hint 1 of 2" in ex.hint(1)._repr_html_()
    with pytest.raises(ValueError, match="hints 1 to 2"):
        ex.hint(3)


def test_result_displays_as_html_and_text():
    result = _ex().check(lambda x: x)
    assert "incorrect" in result._repr_html_() and "incorrect" in str(result)
    assert "<script>" not in _ex().check(lambda x: (_ for _ in ()).throw(ValueError("<script>")))._repr_html_()


def test_shape_text():
    assert shape_text(torch.Size([64, 784])) == "(64, 784)"
    assert shape_text((3,)) == "(3,)"
    assert shape_text(()) == "()"


def test_mismatch_is_an_exception():
    assert issubclass(Mismatch, Exception)


@pytest.mark.parametrize("lesson", [lesson.name for lesson in find_lessons(ROOT)])
def test_every_lessons_checks_have_staged_hints_and_the_notebooks_points(lesson):
    """helpers/checks/lessonNN.py has one exercise per answer cell of the notebook, in order, each
    worth the points of its graded cells and with at least three staged hints (the idea, the pieces, a
    skeleton: issue 13, part 4); tests/test_hints.py checks what the stages say."""
    checks = importlib.import_module(f"helpers.checks.lesson{lesson[:2]}")
    nb = nbformat.read(ROOT / "solutions" / lesson / f"{lesson}.ipynb", as_version=4)
    assert [points for _, points in exercises(nb)] == [ex.points for ex in checks.EXERCISES]
    for ex in checks.EXERCISES:
        total = ex.hint(1).total
        assert total >= 3, f"{ex.title} has {total} hint stages; give it at least 3"
        assert all(f"hint {k} of {total}" in str(ex.hint(k)) for k in range(1, total + 1)), ex.title
        assert ex.title.startswith(f"Exercise {ex.number} (") and "((" not in ex.title, ex.title


@pytest.mark.parametrize("value, text", [
    (np.int64(3), "the numpy int64 3"), (np.float32(0.5), "the numpy float32 0.5"),
    (np.zeros((2, 3)), "a numpy array of shape (2, 3)"), (3, "the int 3"), (2.5, "the float 2.5"),
    ("cuda", "the string 'cuda'"), ([1], "a list"), (object(), "an object"), (None, "None"),
    (torch.Size([2, 3]), "the torch.Size (2, 3)"), (torch.zeros(2), "a tensor of shape (2,) and dtype torch.float32"),
])
def test_describe_names_numpy_scalars_and_numbers_as_they_are(value, text):
    assert describe(value) == text


def test_a_skeleton_hint_keeps_its_lines():
    """A multi-line hint stage (a skeleton with ____ blanks) starts on its own line and keeps its indentation."""
    ex = Exercise(9, "double", points=1, judge=_judge, cases=lambda: [torch.ones(2)],
                  hints=["idea", "pieces", "for ____ in x:\n    ____"])
    assert str(ex.hint(3)).endswith("hint 3 of 3: \nfor ____ in x:\n    ____")
    assert "<pre" in ex.hint(3)._repr_html_() and "<pre" not in ex.hint(1)._repr_html_()

"""Answers copied from the course's own package: every import a student could use to answer an
exercise costs that exercise, and the tools the lessons hand out (data, plots, checks) do not."""

from __future__ import annotations

import nbformat
import pytest

from helpers.course.lessons import find_lessons, read_source
from helpers.grading import copying, course, worker
from tests.conftest import ROOT


def _lesson(num):
    lesson = find_lessons(ROOT, [num])[0]
    released = {c.source for c in nbformat.read(lesson.student, as_version=4).cells}
    return lesson, released, course.trusted_aliases(read_source(lesson.source))


def _copied(num, answers: dict[int, str], added: str | None = None):
    lesson, released, aliases = _lesson(num)
    nb = nbformat.read(lesson.source, as_version=4)
    for k, source in answers.items():
        next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == f"ex{k}_answer").source = source
    if added is not None:  # a cell of the student's own, before exercise 1's answer
        first = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("solution"))
        nb.cells.insert(first, nbformat.v4.new_code_cell(added))
    return copying.find(nb, released, aliases, ROOT, lesson.name, _answers(lesson))


def _answers(lesson):
    return copying.answer_names(nbformat.read(lesson.source, as_version=4))


@pytest.mark.parametrize("num", ["01", "02", "03", "04", "05", "06"])
def test_the_reference_and_the_released_notebook_copy_nothing(num):
    lesson, released, aliases = _lesson(num)
    for path in (lesson.source, lesson.student):
        assert copying.find(nbformat.read(path, as_version=4), released, aliases, ROOT, lesson.name,
                            _answers(lesson)) == {}


@pytest.mark.parametrize("num, k, source, used", [
    ("05", 1, "from helpers.training import pick_device", "helpers.training.pick_device"),  # gone, still flagged
    ("05", 3, "def train_one_epoch(m, loader, f, o, d):\n    return training.fit(m, loader, f, o, 1).train_loss[0]",
     "helpers.training.fit"),
    ("05", 4, "from helpers import training as t\nevaluate = t.fit", "helpers.training.fit"),
    ("06", 4, "import helpers.training\npredict = helpers.training.fit", "helpers.training.fit"),
    ("06", 2, "def best_epoch(history):\n    return widgets.training.early_stop_epochs(history['val_loss'], 10**9)[1]",
     "helpers.widgets.training.early_stop_epochs"),
    ("06", 5, "from helpers.checks.lesson06 import _judge_best as confusion_matrix",
     "helpers.checks.lesson06._judge_best"),
    ("04", 4, "def conv_params(cin, cout, k):\n    return checks.block_params(cin, cout) - 2 * cout",
     "helpers.checks.lesson04.block_params"),
    ("04", 5, "from helpers.checks.lesson04 import _build\nbuild_cnn = lambda *a: _build(stand_in_cnn, *a)[0]",
     "helpers.checks.lesson04._build"),
    ("01", 6, "from helpers.checks.lesson01 import _descent as fit_line",
     "helpers.checks.lesson01._descent"),
    ("05", 4, "evaluate = getattr(training, 'eval' + 'uate')", "helpers.training"),  # a module used as a whole
    ("02", 1, "from helpers.checks.core import call_answer\nmlp = call_answer", "helpers.checks.core.call_answer"),
])
def test_answers_from_the_package_are_caught(num, k, source, used):
    assert _copied(num, {k: source}) == {f"ex{k}": [used]}


def test_a_cell_of_the_students_own_counts_for_the_exercise_whose_answer_it_binds():
    assert _copied("05", {}, added="from helpers.training import pick_device") == \
        {"ex1": ["helpers.training.pick_device"]}
    assert _copied("06", {}, added="def predict(model, loader, device=None):\n"
                                   "    return training.predict(model, loader, device)") == \
        {"ex4": ["helpers.training.predict"]}
    # an experiment with what the lesson itself runs answers nothing: noted, no points lost
    assert _copied("06", {}, added="history = training.fit(model, loader, loss_fn, optimizer, epochs=1)") == \
        {"": ["helpers.training.fit"]}


def test_answer_names_come_from_the_reference_answers():
    lesson = find_lessons(ROOT, ["02"])[0]
    names = _answers(lesson)
    assert names["ex1"] >= {"make_sequential_mlp", "MLP"} and names["ex3"] == {"n_params"}


@pytest.mark.parametrize("num, k, source", [
    ("04", 3, "def conv_block(cin, cout):\n    data.load_fashion; plots.evaluation.show_filters; config.fast_or_full\n"
              "    return torch.nn.Sequential(torch.nn.Conv2d(cin, cout, 3, padding=1))"),
    ("01", 1, "from helpers import data, plots\nimport helpers.widgets.descent\ndef to_float_pixels(images):\n"
              "    checks.ex1.check(lambda x: x)\n    return images.float() / 255"),
    ("05", 2, "from helpers.training import set_seed, TensorLoader\nset_seed(0)"),  # tools the lesson hands out
    ("04", 5, "from helpers import training\ndef build_cnn(c1=32, c2=64, hidden=128):\n    return None"),
])
def test_tools_the_lessons_hand_out_are_not_copying(num, k, source):
    assert _copied(num, {k: source}) == {}


def test_a_copied_exercise_gets_zero_and_a_review_line():
    result = {"scores": {"ex3_train_one_epoch": 2.0, "ex4_evaluate": 2.0}, "messages": {}, "flags": []}
    worker._zero_copied(result, {"ex3": ["helpers.training.train_one_epoch"], "": ["helpers.training.fit"]})
    assert result["scores"] == {"ex3_train_one_epoch": 0.0, "ex4_evaluate": 2.0}
    assert "helpers.training.train_one_epoch" in result["messages"]["ex3_train_one_epoch"]
    assert result["flags"] == ["uses helpers.training.fit from the course's helpers (no points lost)",
                               "copied: ex3 uses helpers.training.train_one_epoch (0 points)"]

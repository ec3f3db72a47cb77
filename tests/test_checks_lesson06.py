"""Lesson 06's checks: each accepts a right answer, spots the stub, and names typical mistakes."""

import copy

import numpy as np
import pytest
import torch
from torch.utils.data import Subset, random_split

from helpers.checks import lesson06 as L
from tests.conftest import assert_correct, assert_incorrect, assert_not_attempted


def stub(*args):
    raise NotImplementedError()


# ------------------------------------------------------------------ exercise 1


def _split(dataset, fraction, seed):
    n_val = int(len(dataset) * fraction)
    return random_split(dataset, [len(dataset) - n_val, n_val], generator=torch.Generator().manual_seed(seed))


def test_ex1_split_dataset():
    assert_correct(L.ex1.check(_split))
    assert_correct(L.ex1.check(lambda d, f, s: random_split(d, [1 - f, f], generator=torch.Generator().manual_seed(s))))
    assert_not_attempted(L.ex1.check(stub))
    assert_incorrect(L.ex1.check(lambda d, f, s: random_split(d, [1 - f, f])), "same seed")
    assert_incorrect(L.ex1.check(lambda d, f, s: _split(d, f, 0)), "seed is ignored")
    assert_incorrect(L.ex1.check(lambda d, f, s: _split(d, f, s)[::-1]), "wrong way round")
    assert_incorrect(L.ex1.check(lambda d, f, s: _split(d, 0.5, s)), "should hold")
    assert_correct(L.ex1.check(lambda d, f, s: list(_split(d, f, s))))  # a list where the prompt shows a pair
    assert_correct(L.ex1.check(lambda d, f, s: tuple(_split(d, f, s))))


def test_ex1_rounding_where_the_prompt_fixes_truncation_is_caught():
    def rounded(dataset, fraction, seed):
        n_val = round(len(dataset) * fraction)
        return random_split(dataset, [len(dataset) - n_val, n_val], generator=torch.Generator().manual_seed(seed))
    assert_incorrect(L.ex1.check(rounded), "val_fraction ×", "rounds down")
    with pytest.raises(AssertionError, match="rounds down"):
        L.ex1.grade(rounded, cases=[(11, 0.5, 0)])
    n_val = lambda d, f: int(len(d) * f)  # noqa: E731
    assert_incorrect(L.ex1.check(lambda d, f, s: (Subset(d, range(len(d) - n_val(d, f))),
                                                  Subset(d, range(len(d) - n_val(d, f), len(d))))), "contiguous")
    assert_incorrect(L.ex1.check(lambda d, f, s: (Subset(d, range(len(d))), _split(d, f, s)[1])), "share")
    assert_incorrect(L.ex1.check(lambda d, f, s: (_split(d, f, s)[0], Subset(d, []))), "not ")
    assert_incorrect(L.ex1.check(lambda d, f, s: _split(d, f, s)[0]), "two datasets")


# ------------------------------------------------------------------ exercise 2


def _best(history):
    losses = history["val_loss"]
    return losses.index(min(losses)) + 1


def test_ex2_best_epoch():
    assert_correct(L.ex2.check(_best))
    assert_not_attempted(L.ex2.check(stub))
    assert_incorrect(L.ex2.check(lambda h: _best(h) - 1), "from 1")
    assert_incorrect(L.ex2.check(lambda h: h["train_loss"].index(min(h["train_loss"])) + 1), "training loss",
                     "last epoch")
    assert_incorrect(L.ex2.check(lambda h: h["val_accuracy"].index(max(h["val_accuracy"])) + 1), "accuracy")
    assert_incorrect(L.ex2.check(lambda h: h["val_loss"].index(max(h["val_loss"])) + 1), "highest")
    assert_incorrect(L.ex2.check(lambda h: len(h["val_loss"])), "last epoch")
    assert_incorrect(L.ex2.check(lambda h: "2"), "whole number")


@pytest.mark.parametrize("answer", [lambda h: torch.tensor(h["val_loss"]).argmin() + 1,
                                    lambda h: np.argmin(h["val_loss"]) + 1,
                                    lambda h: float(h["val_loss"].index(min(h["val_loss"])) + 1)],
                         ids=["tensor", "numpy", "float"])
def test_ex2_an_epoch_number_in_any_usual_form_is_accepted(answer):
    assert_correct(L.ex2.check(answer))


def test_ex2_hidden_tie_keeps_the_earlier_epoch():
    tie = {"train_loss": [0.9, 0.5, 0.4, 0.35, 0.3], "val_loss": [0.6, 0.4, 0.45, 0.4, 0.7],
           "val_accuracy": [0.7, 0.84, 0.81, 0.83, 0.79]}
    L.ex2.grade(_best, cases=[tie], reference=_best)
    last_of_ties = lambda h: max(i for i, v in enumerate(h["val_loss"]) if v == min(h["val_loss"])) + 1  # noqa: E731
    with pytest.raises(AssertionError, match="earlier"):
        L.ex2.grade(last_of_ties, cases=[tie], reference=_best)


# ------------------------------------------------------------------ exercise 3


class Stopper:
    def __init__(self, patience, *, copy_state=True, strict=True, offset=0, against_previous=False):
        self.patience, self.best, self.state, self.bad = patience, float("inf"), None, 0
        self.copy_state, self.strict, self.offset, self.against_previous = copy_state, strict, offset, against_previous
        self.previous = float("inf")

    def step(self, loss, model):
        reference = self.previous if self.against_previous else self.best
        better = loss < reference if self.strict else loss <= reference
        self.previous = loss
        if better:
            self.best, self.bad = min(loss, self.best), 0
            if loss <= self.best:
                state = model.state_dict()
                self.state = copy.deepcopy(state) if self.copy_state else state
        else:
            self.bad += 1
        return self.bad >= self.patience + self.offset

    def restore(self, model):
        model.load_state_dict(self.state)


def _stopper(**kw):
    return lambda patience: Stopper(patience, **kw)


class Right(Stopper):
    pass


def test_ex3_early_stopping():
    assert_correct(L.ex3.check(Right))
    assert_not_attempted(L.ex3.check(type("Stub", (Right,), {"__init__": stub})))
    assert_incorrect(L.ex3.check(type("NoCopy", (Right,), {"__init__": lambda s, p: Stopper.__init__(
        s, p, copy_state=False)})), "deepcopy")
    assert_incorrect(L.ex3.check(type("Early", (Right,), {"__init__": lambda s, p: Stopper.__init__(s, p, offset=-1)})),
                     "too early")
    assert_incorrect(L.ex3.check(type("Late", (Right,), {"__init__": lambda s, p: Stopper.__init__(s, p, offset=1)})),
                     "too late")
    assert_incorrect(L.ex3.check(type("Prev", (Right,), {"__init__": lambda s, p: Stopper.__init__(
        s, p, against_previous=True)})), "best loss so far")
    assert_incorrect(L.ex3.check(type("First", (Right,), {"step": lambda s, loss, m: Stopper.step(s, loss, m) or
                                                          s.bad > 0})), "first epoch that did not improve")
    assert_incorrect(L.ex3.check(type("NoReturn", (Right,), {"step": lambda s, loss, m: None})), "return")
    with pytest.raises(TypeError, match="itself"):
        L.ex3.check(Stopper(3))


def test_ex3_hidden_an_equal_loss_is_not_an_improvement():
    ties = [([1.0, 0.8, 0.8, 0.8, 0.8], 2)]
    L.ex3.grade(Right, cases=ties, reference=Right)
    with pytest.raises(AssertionError, match="use <"):
        L.ex3.grade(type("Loose", (Right,), {"__init__": lambda s, p: Stopper.__init__(s, p, strict=False)}),
                    cases=ties, reference=Right)


# ------------------------------------------------------------------ exercise 4


def _predict(model, loader, *, eval_mode=True, no_grad=True, logits=False, last_only=False, two_passes=False):
    if eval_mode:
        model.eval()
    preds, labels = [], []
    with torch.set_grad_enabled(not no_grad):
        for x, y in loader:
            out = model(x)
            preds.append(out if logits else out.argmax(1))
            labels.append(y)
        if two_passes:
            labels = [y for _, y in loader]
    if last_only:
        return preds[-1], labels[-1]
    return torch.cat(preds), torch.cat(labels)


def test_ex4_predict():
    assert_correct(L.ex4.check(_predict))
    assert_not_attempted(L.ex4.check(stub))
    assert_incorrect(L.ex4.check(lambda m, ld: _predict(m, ld, eval_mode=False)), "model.eval()")
    assert_incorrect(L.ex4.check(lambda m, ld: _predict(m, ld, no_grad=False)), "torch.no_grad()")
    assert_incorrect(L.ex4.check(lambda m, ld: _predict(m, ld, logits=True)), "argmax")
    assert_incorrect(L.ex4.check(lambda m, ld: _predict(m, ld, last_only=True)), "torch.cat")
    assert_incorrect(L.ex4.check(lambda m, ld: _predict(m, ld, two_passes=True)), "same pass")
    assert_incorrect(L.ex4.check(lambda m, ld: _predict(m, ld)[0]), "two tensors")
    assert_incorrect(L.ex4.check(lambda m, ld: (_predict(m, ld)[0].float(), _predict(m, ld)[1])), "int64")
    assert_incorrect(L.ex4.check(lambda m, ld: (list(_predict(m, ld)[0]), _predict(m, ld)[1])), "torch.cat")


# ------------------------------------------------------------------ exercise 5


def _confusion(preds, labels, k):
    return torch.bincount(labels * k + preds, minlength=k * k).reshape(k, k)


def test_ex5_confusion_matrix():
    assert_correct(L.ex5.check(_confusion))
    assert_not_attempted(L.ex5.check(stub))
    assert_incorrect(L.ex5.check(lambda p, t, k: _confusion(p, t, k).T), "transposed")
    assert_incorrect(L.ex5.check(lambda p, t, k: _confusion(p, t, k).float()), "int64")
    assert_incorrect(L.ex5.check(lambda p, t, k: _confusion(p, t, k)[:-1]), "num_classes")
    assert_incorrect(L.ex5.check(lambda p, t, k: _confusion(p, t, k) * 2), "add up")
    assert_incorrect(L.ex5.check(lambda p, t, k: _confusion(t, t, k)), "counts are wrong")
    assert_incorrect(L.ex5.check(lambda p, t, k: _confusion(p, t, k).tolist()), "tensor")


def test_ex5_hidden_missing_class_needs_num_classes():
    preds, labels = torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2])
    L.ex5.grade(_confusion, cases=[(preds, labels, 5)], reference=_confusion)
    with pytest.raises(AssertionError, match="num_classes"):
        L.ex5.grade(lambda p, t, k: _confusion(p, t, int(max(p.max(), t.max())) + 1), cases=[(preds, labels, 5)],
                    reference=_confusion)


class _KeepsACopy:
    """Right about the best weights; only restore() varies."""

    def __init__(self, patience):
        self.patience, self.best, self.state, self.bad = patience, float("inf"), None, 0

    def step(self, val_loss, model):
        if val_loss < self.best:
            self.best, self.state, self.bad = val_loss, copy.deepcopy(model.state_dict()), 0
        else:
            self.bad += 1
        return self.bad >= self.patience


def test_ex3_a_restore_that_rebinds_its_argument_is_named():
    class Rebinds(_KeepsACopy):
        def restore(self, model):
            model = self.state  # noqa: F841 (the mistake: the caller's model is untouched)

    class Loads(_KeepsACopy):
        def restore(self, model):
            model.load_state_dict(self.state)
    assert_incorrect(L.ex3.check(Rebinds), "load_state_dict", "changes nothing outside")
    assert_correct(L.ex3.check(Loads))


def test_the_instant_checks_catch_ties_and_a_missing_class_too():
    """What the prompts state (the earliest of tied epochs, only a lower loss is a new best, the size from
    num_classes) is judged by the learner's instant check as well, not only by the hidden tests."""
    last_of_ties = lambda h: max(i for i, v in enumerate(h["val_loss"]) if v == min(h["val_loss"])) + 1  # noqa: E731
    assert_incorrect(L.ex2.check(last_of_ties), "tie", "earlier")
    loose = type("Loose", (Right,), {"__init__": lambda s, p: Stopper.__init__(s, p, strict=False)})
    assert_incorrect(L.ex3.check(loose), "equal to the best is not an improvement", "use <")
    sized_by_data = lambda p, t, k: _confusion(p, t, int(max(p.max(), t.max())) + 1)  # noqa: E731
    assert_incorrect(L.ex5.check(sized_by_data), "num_classes")

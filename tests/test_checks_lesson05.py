"""Lesson 05's checks: each accepts a right answer, spots the stub, and names the classic loop bugs."""

import pytest
import torch
from torch.utils.data import Dataset

from helpers import training
from helpers.checks import lesson05 as L
from tests.conftest import assert_correct, assert_incorrect, assert_not_attempted


def stub(*args):
    raise NotImplementedError()


# ------------------------------------------------------------------ exercise 1


def _device(order=("cuda", "mps")):
    def pick():
        for name in order:
            if name == "cuda" and torch.cuda.is_available():
                return torch.device("cuda")
            if name == "mps" and torch.backends.mps.is_available():
                return torch.device("mps")
        return torch.device("cpu")
    return pick


def test_ex1_pick_device():
    assert_correct(L.ex1.check(_device()))
    assert_correct(L.ex1.check(training.pick_device))
    assert_correct(L.ex1.check(lambda: "cuda" if torch.cuda.is_available() else
                               "mps" if torch.backends.mps.is_available() else "cpu"))
    assert_not_attempted(L.ex1.check(stub))
    assert_incorrect(L.ex1.check(_device(("mps", "cuda"))), "CUDA comes first")
    assert_incorrect(L.ex1.check(_device(("cuda",))), "Apple", "mps")
    assert_incorrect(L.ex1.check(lambda: torch.device("cpu")), "NVIDIA")
    assert_incorrect(L.ex1.check(lambda: "gpu" if torch.cuda.is_available() else "cpu"), "'cuda'")
    assert_incorrect(L.ex1.check(lambda: None), "torch.device")


# ------------------------------------------------------------------ exercise 2


class Right(Dataset):
    def __init__(self, images, labels, transform=None):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        image = self.images[i]
        if self.transform is not None:
            image = self.transform(image)
        return image, self.labels[i]


def _variant(**changes):
    return type("Variant", (Right,), changes)


def test_ex2_dataset():
    assert_correct(L.ex2.check(Right))
    assert_correct(L.ex2.check(_variant(__getitem__=lambda s, i: (s.transform(s.images[i]) if s.transform
                                                                 else s.images[i], int(s.labels[i])))))
    assert_not_attempted(L.ex2.check(_variant(__init__=stub)))
    assert_incorrect(L.ex2.check(_variant(__getitem__=lambda s, i: (s.images[i], s.labels[i]))), "transform")
    assert_incorrect(L.ex2.check(_variant(__getitem__=lambda s, i: (s.transform(s.images[i]), s.labels[i]))),
                     "may be None")
    assert_incorrect(L.ex2.check(_variant(__len__=lambda s: s.images.shape)), "one int")
    assert_incorrect(L.ex2.check(_variant(__len__=lambda s: 28)), "number of examples")
    assert_incorrect(L.ex2.check(_variant(__getitem__=lambda s, i: Right.__getitem__(s, i)[::-1])), "wrong way")
    assert_incorrect(L.ex2.check(_variant(__getitem__=lambda s, i: Right.__getitem__(s, 0))), "index")
    assert_incorrect(L.ex2.check(_variant(__getitem__=lambda s, i: (Right.__getitem__(s, i)[0],
                                                                    s.labels[i:i + 1]))), "dimension too many")
    assert_incorrect(L.ex2.check(_variant(__getitem__=lambda s, i: tuple(
        s.transform(t) if s.transform else t for t in (s.images[i], s.labels[i])))), "to the label")
    assert_incorrect(L.ex2.check(type("Plain", (), dict(vars(Right)))), "subclass")


# ------------------------------------------------------------------ exercise 3


def _train(model, loader, loss_fn, optimizer, device, *, zero=True, train_mode=True, step_first=False,
           average="examples"):
    if train_mode:
        model.train()
    total, count, batch_losses = 0.0, 0, []
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        if zero:
            optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        if step_first:
            optimizer.step()
        loss.backward()
        if not step_first:
            optimizer.step()
        total += loss.item() * len(y)
        count += len(y)
        batch_losses.append(loss.item())
    return {"examples": total / max(count, 1), "batches": sum(batch_losses) / len(batch_losses),
            "last": batch_losses[-1], "sum": sum(batch_losses)}[average]


def test_ex3_train_one_epoch():
    assert_correct(L.ex3.check(_train))
    assert_correct(L.ex3.check(training.train_one_epoch))
    assert_not_attempted(L.ex3.check(stub))
    assert_incorrect(L.ex3.check(lambda *a: _train(*a, zero=False)), "zero_grad() is missing")
    assert_incorrect(L.ex3.check(lambda *a: _train(*a, train_mode=False)), "model.train()")
    assert_incorrect(L.ex3.check(lambda *a: _train(*a, step_first=True)), "in that order")
    assert_incorrect(L.ex3.check(lambda *a: _train(*a, average="batches")), "last batch is smaller")
    assert_incorrect(L.ex3.check(lambda *a: _train(*a, average="last")), "whole epoch")
    assert_incorrect(L.ex3.check(lambda *a: _train(*a, average="sum")), "divide")
    assert_incorrect(L.ex3.check(lambda m, *a: 0.0), "never called")
    assert_incorrect(L.ex3.check(lambda m, ld, *a: [m.train()(x) for x, _ in ld] and 1.0), "did not change")
    assert_incorrect(L.ex3.check(lambda *a: None), "number")


def test_ex3_hidden_cases_with_another_model_and_uneven_batches():
    case = (L.tiny_model(seed=5), L.tiny_loader(n=13, batch_size=5, seed=6), 0.1)
    L.ex3.grade(_train, cases=[case])
    with pytest.raises(AssertionError, match="zero_grad"):
        L.ex3.grade(lambda *a: _train(*a, zero=False), cases=[case])


# ------------------------------------------------------------------ exercise 4


def _evaluate(model, loader, loss_fn, device, *, eval_mode=True, no_grad=True, percent=False, batch_mean=False,
              swap=False):
    if eval_mode:
        model.eval()
    total, correct, count, accs = 0.0, 0, 0, []
    with torch.set_grad_enabled(not no_grad):
        for x, y in loader:
            out = model(x.to(device))
            total += loss_fn(out, y).item() * len(y)
            hits = (out.argmax(1) == y).sum().item()
            correct += hits
            count += len(y)
            accs.append(hits / len(y))
    acc = sum(accs) / len(accs) if batch_mean else correct / count
    acc = 100 * acc if percent else acc
    return (acc, total / count) if swap else (total / count, acc)


def test_ex4_evaluate():
    assert_correct(L.ex4.check(_evaluate))
    assert_correct(L.ex4.check(training.evaluate))
    assert_not_attempted(L.ex4.check(stub))
    assert_incorrect(L.ex4.check(lambda *a: _evaluate(*a, eval_mode=False)), "model.eval()", "train mode")
    assert_incorrect(L.ex4.check(lambda *a: _evaluate(*a, no_grad=False)), "torch.no_grad()")
    assert_incorrect(L.ex4.check(lambda *a: _evaluate(*a, percent=True)), "percentage")
    assert_incorrect(L.ex4.check(lambda *a: _evaluate(*a, batch_mean=True)), "last batch is smaller")
    assert_incorrect(L.ex4.check(lambda *a: _evaluate(*a, swap=True)), "swapped")
    assert_incorrect(L.ex4.check(lambda *a: _evaluate(*a)[1]), "two numbers")


# ------------------------------------------------------------------ exercise 5


RIGHT = {"loop_a": "evaluating in train mode", "loop_b": "missing zero_grad",
         "loop_c": "accuracy on the training loader"}


def test_ex5_diagnosis():
    assert_correct(L.ex5.check(RIGHT))
    assert_not_attempted(L.ex5.check({"loop_a": None, "loop_b": None, "loop_c": None}))
    assert_incorrect(L.ex5.check({**RIGHT, "loop_a": "missing zero_grad", "loop_b": "evaluating in train mode"}),
                     "2 of 3", "loop_a, loop_b")
    assert_incorrect(L.ex5.check({**RIGHT, "loop_c": "test set shuffled"}), "1 of 3", "loop_c")
    assert_incorrect(L.ex5.check({**RIGHT, "loop_c": "training accuracy"}), "checks.BUGS")
    assert_incorrect(L.ex5.check({"loop_a": RIGHT["loop_a"]}), "exactly the keys")
    assert_incorrect(L.ex5.check([RIGHT]), "dict")
    # the hidden cases judge each loop on its own
    L.ex5.grade(RIGHT, cases=[("loop_a",), ("loop_b",), ("loop_c",)])
    assert set(L.BUGS) >= set(RIGHT.values())

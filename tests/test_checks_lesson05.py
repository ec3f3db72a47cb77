"""Lesson 05's checks: each accepts a right answer, spots the stub, and names the classic loop bugs."""

import numpy as np
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
    assert_not_attempted(L.ex1.check(stub))
    assert_incorrect(L.ex1.check(lambda: "cuda" if torch.cuda.is_available() else
                                 "mps" if torch.backends.mps.is_available() else "cpu"), "string", "torch.device")
    assert_incorrect(L.ex1.check(_device(("mps", "cuda"))), "CUDA comes first")
    assert_incorrect(L.ex1.check(_device(("cuda",))), "Apple", "mps")
    assert_incorrect(L.ex1.check(lambda: torch.device("cpu")), "NVIDIA")
    assert_incorrect(L.ex1.check(lambda: "gpu" if torch.cuda.is_available() else "cpu"), "string")
    assert_incorrect(L.ex1.check(lambda: None), "torch.device")


OTHER_APIS = {  # CUDA and MPS found through other documented calls: all right
    "device_count": lambda: torch.device("cuda" if torch.cuda.device_count() > 0 else
                                         "mps" if torch.mps.device_count() > 0 else "cpu"),
    "accelerator": lambda: torch.accelerator.current_accelerator() if torch.accelerator.is_available()
    else torch.device("cpu"),
    "cuda:0": lambda: torch.device("cuda:0") if torch.cuda.is_available() else
    torch.device("mps") if torch.backends.mps.is_available() else torch.device("cpu"),
}


@pytest.mark.parametrize("api", list(OTHER_APIS))
def test_ex1_other_documented_ways_of_finding_the_gpu_are_accepted(api):
    assert_correct(L.ex1.check(OTHER_APIS[api]))
    L.ex1.grade(OTHER_APIS[api], cases=[(True, True), (False, True), (True, False), (False, False)])


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
    # lesson 04's trainer for one epoch is no answer: it moves no batch to the device
    assert_incorrect(L.ex3.check(lambda m, loader, f, o, d: training.fit(m, loader, f, o, 1).train_loss[0]), "device")
    assert_not_attempted(L.ex3.check(stub))
    assert_incorrect(L.ex3.check(lambda *a: _train(*a, zero=False)), "zero_grad() is missing")
    assert_incorrect(L.ex3.check(lambda *a: _train(*a, train_mode=False)), "model.train()")
    assert_incorrect(L.ex3.check(lambda *a: _train(*a, step_first=True)), "in that order")
    assert_incorrect(L.ex3.check(lambda *a: _train(*a, average="batches")), "last batch is smaller")
    assert_incorrect(L.ex3.check(lambda *a: _train(*a, average="last")), "whole epoch")
    assert_incorrect(L.ex3.check(lambda *a: _train(*a, average="sum")), "divide")
    assert_incorrect(L.ex3.check(lambda m, *a: 0.0), "never called")
    assert_incorrect(L.ex3.check(lambda m, ld, *a: [m.train()(x.to(a[-1])) for x, _ in ld] and 1.0),
                     "did not change")
    assert_incorrect(L.ex3.check(lambda *a: None), "number")


def _train_variant(model, loader, loss_fn, optimizer, device, *, own_optimizer=False, steps=1, skip_last=False):
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.5) if own_optimizer else optimizer
    batches = list(loader)
    total, count = 0.0, 0
    for x, y in batches[:-1] if skip_last else batches:
        x, y = x.to(device), y.to(device)
        for _ in range(steps):
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
        total, count = total + loss.item() * len(y), count + len(y)
    return total / count


def test_ex3_the_judge_watches_every_step():
    """Issue 13 part 1: no reference loop; the optimizer the check passes sees every step."""
    assert_incorrect(L.ex3.check(lambda *a: _train_variant(*a, own_optimizer=True)), "not through `optimizer`")
    assert_incorrect(L.ex3.check(lambda *a: _train_variant(*a, steps=2)), "exactly one optimizer step per batch")
    assert_incorrect(L.ex3.check(lambda *a: _train_variant(*a, skip_last=True)), "the smaller last one")
    assert not hasattr(L, "_reference_epoch") and not hasattr(L, "_reference_step")


def _train_moving(model, loader, loss_fn, optimizer, device, *, images=True, labels=True, assign=True):
    model.train()
    total, count = 0.0, 0
    for x, y in loader:
        if assign:
            x, y = (x.to(device) if images else x), (y.to(device) if labels else y)
        else:
            x.to(device), y.to(device)  # the moved copies are thrown away
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        total, count = total + loss.item() * len(y), count + len(y)
    return torch.tensor(total / count)  # a one-element tensor is a number too


def test_ex3_tensors_left_on_the_cpu_are_caught_without_a_gpu():
    assert_correct(L.ex3.check(_train_moving))
    assert_incorrect(L.ex3.check(lambda *a: _train_moving(*a, labels=False)), "labels", "labels.to(device)")
    assert_incorrect(L.ex3.check(lambda *a: _train_moving(*a, images=False)), "images", "images.to(device)")
    assert_incorrect(L.ex3.check(lambda *a: _train_moving(*a, assign=False)), "images.to(device)")
    with pytest.raises(AssertionError, match="labels"):
        L.ex3.grade(lambda *a: _train_moving(*a, labels=False),
                    cases=[(L.tiny_model(seed=5), L.tiny_loader(n=13, batch_size=5, seed=6), 0.1)])


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
            out, y = model(x.to(device)), y.to(device)
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
    assert_not_attempted(L.ex4.check(stub))
    assert_incorrect(L.ex4.check(lambda *a: _evaluate(*a, eval_mode=False)), "model.eval()", "train mode")
    assert_incorrect(L.ex4.check(lambda *a: _evaluate(*a, no_grad=False)), "torch.no_grad()")
    assert_incorrect(L.ex4.check(lambda *a: _evaluate(*a, percent=True)), "percentage")
    assert_incorrect(L.ex4.check(lambda *a: _evaluate(*a, batch_mean=True)), "last batch is smaller")
    assert_incorrect(L.ex4.check(lambda *a: _evaluate(*a, swap=True)), "swapped")
    assert_incorrect(L.ex4.check(lambda *a: _evaluate(*a)[1]), "two numbers")
    assert_correct(L.ex4.check(lambda *a: [np.float32(v) for v in _evaluate(*a)]))  # a list of numpy numbers


def test_ex4_labels_left_on_the_cpu_are_caught():
    def evaluate(model, loader, loss_fn, device):
        model.eval()
        total, correct, count = 0.0, 0, 0
        with torch.no_grad():
            for x, y in loader:
                out = model(x.to(device))
                total += loss_fn(out, y).item() * len(y)
                correct, count = correct + (out.argmax(1) == y).sum().item(), count + len(y)
        return total / count, correct / count
    assert_incorrect(L.ex4.check(evaluate), "labels", "labels.to(device)")


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


def test_ex2_scaling_without_a_transform_is_named():
    class Scaled(Right):
        def __getitem__(self, i):
            image, label = super().__getitem__(i)
            return (image if self.transform else image.float() / 255), label
    assert_incorrect(L.ex2.check(Scaled), "transform=None", "as it is stored", "scaling to the transform")


def test_ex4_integer_division_in_the_accuracy_is_named():
    def evaluate(model, loader, loss_fn, device):
        loss, _ = _evaluate(model, loader, loss_fn, device)
        model.eval()
        with torch.no_grad():
            correct = sum((model(x.to(device)).argmax(1) == y.to(device)).sum().item() for x, y in loader)
        return loss, correct // sum(len(y) for _, y in loader)
    assert_incorrect(L.ex4.check(evaluate), "integer division", "/")


def test_ex3_backwards_is_named():
    def train(model, loader, loss_fn, optimizer, device):
        model.train()
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backwards()
            optimizer.step()
        return 0.0
    assert_incorrect(L.ex3.check(train), "AttributeError", "backward, without an s")


# ------------------------------------------------------------------ exercise 6


def _step(model, images, labels, loss_fn, optimizer, *, zero="start", backward="call", step=True, order="ok",
          returns="item"):
    """Loop D's step, right by default; each keyword writes one of the mistakes (or another right form)."""
    if zero == "start":
        optimizer.zero_grad()
    elif zero == "model":
        model.zero_grad()
    elif zero == "zeros":
        optimizer.zero_grad(set_to_none=False)
    loss = loss_fn(model(images), labels)
    if order == "step first" and step:
        optimizer.step()
    if backward == "call":
        loss.backward()
    elif backward == "autograd":
        torch.autograd.backward(loss)
    elif backward == "twice":
        loss.backward(retain_graph=True)
        loss.backward()
    elif backward == "backwards":
        loss.backwards()
    elif backward == "on item":
        loss.item().backward()
    if order == "ok" and step:
        optimizer.step()
    if zero == "end":
        optimizer.zero_grad()
    if returns == "after":
        with torch.no_grad():
            return loss_fn(model(images), labels).item()
    return {"item": lambda: loss.item(), "tensor": lambda: loss, "float": lambda: float(loss),
            "detached": lambda: loss.detach(), "none": lambda: None}[returns]()


def _with(**changes):
    return lambda *a: _step(*a, **changes)


@pytest.mark.parametrize("changes", [{}, {"zero": "model"}, {"zero": "zeros"}, {"backward": "autograd"},
                                     {"returns": "tensor"}, {"returns": "float"}, {"returns": "detached"}],
                         ids=str)
def test_ex6_fixed_step_written_several_ways(changes):
    assert_correct(L.ex6.check(_with(**changes)))
    L.ex6.grade(_with(**changes), cases=[(L.tiny_model(seed=7), L.tiny_batch(n=9, seed=8), 0.1)])


def test_ex6_fixed_step_in_the_lessons_words():
    def step_fixed(model, images, labels, loss_fn, optimizer):
        optimizer.zero_grad()
        outputs = model(images)
        loss = loss_fn(outputs, labels)
        loss.backward()
        optimizer.step()
        return loss.item()
    assert_correct(L.ex6.check(step_fixed))
    assert_not_attempted(L.ex6.check(stub))


@pytest.mark.parametrize(("changes", "words"), [
    ({"backward": "backwards"}, ("AttributeError", "loop D's bug", "backward")),
    ({"backward": "none", "zero": "none"}, ("earlier batch's gradient", "call backward")),
    ({"backward": "on item"}, ("loss.item()", "loss tensor")),
    ({"backward": "twice"}, ("does not hold the gradient", "call backward once")),
    ({"zero": "none"}, ("reset is missing", "zero_grad")),
    ({"zero": "end"}, (".grad is empty afterwards", "start")),
    ({"step": False}, ("did not change", "optimizer.step()")),
    ({"order": "step first"}, ("did not change", "after backward")),
    ({"returns": "after"}, ("after the step",)),
    ({"returns": "none"}, ("number", "return")),
], ids=str)
def test_ex6_mistakes_are_named(changes, words):
    assert_incorrect(L.ex6.check(_with(**changes)), *words)


def test_ex6_a_backward_never_called_is_named():
    def no_backward(model, images, labels, loss_fn, optimizer):
        optimizer.zero_grad()
        loss = loss_fn(model(images), labels)
        optimizer.step()
        return loss.item()

    def no_brackets(model, images, labels, loss_fn, optimizer):
        optimizer.zero_grad()
        loss = loss_fn(model(images), labels)
        loss.backward  # noqa: B018 (the mistake: names the method, calls nothing)
        optimizer.step()
        return loss.item()
    assert_incorrect(L.ex6.check(no_backward), "no parameter's .grad", "call backward on it")
    assert_incorrect(L.ex6.check(no_brackets), "without brackets", "call it")


def test_ex6_backward_inside_no_grad_is_named():
    def step(model, images, labels, loss_fn, optimizer):
        optimizer.zero_grad()
        with torch.no_grad():
            loss = loss_fn(model(images), labels)
        loss.backward()
        optimizer.step()
        return loss.item()
    assert_incorrect(L.ex6.check(step), "not in the graph", "torch.no_grad()")


def test_ex6_hidden_cases_catch_what_the_visible_one_does():
    case = (L.tiny_model(seed=7), L.tiny_batch(n=9, seed=8), 0.1)
    with pytest.raises(AssertionError, match="reset is missing"):
        L.ex6.grade(_with(zero="none"), cases=[case])
    with pytest.raises(AssertionError, match="did not change"):
        L.ex6.grade(_with(step=False), cases=[case])

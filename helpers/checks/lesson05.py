"""Instant checks for lesson 05, the training loop.

Exercise 3's judge holds no training loop: it watches the learner's. The optimizer it passes keeps,
at every step, the weights and gradients the step uses, and each must be the gradient of that batch's
loss alone at those weights (one batch's loss and gradient, computed by autograd); a probe layer
records whether the model ran in train or eval mode and with gradients on, so the checks can name the
classic bugs (no ``zero_grad``, evaluating in train mode, averaging batch means over an uneven last
batch). Exercise 6's judge gives the learner's fixed step a model whose ``.grad`` still holds an
earlier batch's gradient, then compares every ``.grad`` with this batch's gradient and the weights
with one SGD step (``loss.backwards()``, a missing or misplaced
``zero_grad``, ``step`` or ``backward`` each get their own message).

Introduced in lesson 05.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import numbers
from unittest import mock

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset, default_collate

from helpers.checks.core import Exercise, Mismatch, NotAttempted, call_answer, describe, values_close
from helpers.checks.probes import is_on_host, on_host
from helpers.checks.rules import referenced_names


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class Probe(nn.Module):
    """An identity layer that records, for every forward pass, the mode and whether autograd was on."""

    def __init__(self):
        super().__init__()
        self.modes: list[bool] = []
        self.grad_enabled: list[bool] = []
        self.unmoved: list[bool] = []  # inputs that never went through .to(device) (see probes.OnHost)

    def forward(self, x):
        self.modes.append(self.training)
        self.grad_enabled.append(torch.is_grad_enabled())
        self.unmoved.append(is_on_host(x))
        return x

    def clear(self) -> None:
        for record in (self.modes, self.grad_enabled, self.unmoved):
            record.clear()


class LossProbe(nn.CrossEntropyLoss):
    """Cross-entropy that records whether the labels it was given were moved to the device."""

    def __init__(self):
        super().__init__()
        self.unmoved: list[bool] = []

    def forward(self, outputs, labels):
        self.unmoved.append(is_on_host(labels))
        return super().forward(outputs, labels)


def _moved_to_device(probe: Probe, loss_fn: LossProbe, what: str) -> None:
    """A CPU-only grader cannot see a tensor left on the CPU, but it sees one that kept the loader's mark."""
    if any(probe.unmoved):
        raise Mismatch(f"the images reached the model without being moved to `device`: images = images.to(device) "
                       f"in {what}. On a GPU the model would fail with \"Expected all tensors to be on the same "
                       "device\".")
    if any(loss_fn.unmoved):
        raise Mismatch(f"the labels stayed where the loader made them (the CPU) while the model is on `device`: "
                       f"move them too in {what}, labels = labels.to(device). On a GPU the loss would fail with "
                       "\"Expected all tensors to be on the same device\".")


def _number(got, name: str) -> float:
    """One number in any usual form: a Python or numpy number, or a one-element tensor."""
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        return float(got.detach())
    if isinstance(got, numbers.Real) and not isinstance(got, bool):
        return float(got)
    if type(got).__module__ == "numpy" and getattr(got, "size", 0) == 1:
        return float(got)
    advice = "did you forget `return`?" if got is None else "return one number (a float)"
    raise Mismatch(f"{name} should be a number, got {describe(got)}: {advice}.")


# --------------------------------------------------------------- 1: the device


def _machine(cuda: bool, mps: bool):
    """Every documented way of asking for CUDA or MPS answers as on a machine with those GPUs."""
    accelerator = torch.device("cuda") if cuda else torch.device("mps") if mps else None
    patches = [(torch.cuda, "is_available", lambda: cuda), (torch.cuda, "device_count", lambda: int(cuda)),
               (torch.backends.mps, "is_available", lambda: mps), (torch.mps, "device_count", lambda: int(mps))]
    if hasattr(torch, "accelerator"):  # torch >= 2.6
        patches += [(torch.accelerator, "is_available", lambda: accelerator is not None),
                    (torch.accelerator, "current_accelerator", lambda *a, **k: accelerator),
                    (torch.accelerator, "device_count", lambda: int(accelerator is not None))]
    stack = contextlib.ExitStack()
    for owner, name, value in patches:
        if hasattr(owner, name):
            stack.enter_context(mock.patch.object(owner, name, value))
    return stack


def _judge_device(fn, case):
    cuda, mps = case
    with _machine(cuda, mps):
        got = call_answer(fn, name="pick_device")
    if isinstance(got, str):
        raise Mismatch(f"pick_device returned the string {got!r}: return a torch.device object, "
                       f"torch.device({got!r}), as the exercise asks (model.to() takes both, but a device object "
                       "tells you its .type and index).")
    if not isinstance(got, torch.device):
        raise Mismatch(f"pick_device should return a torch.device, got {describe(got)}.")
    kind = got.type
    want = "cuda" if cuda else "mps" if mps else "cpu"
    if kind == want:
        return
    machine = {(False, False): "no GPU", (True, False): "an NVIDIA GPU", (False, True): "an Apple GPU",
               (True, True): "both CUDA and MPS"}[case]
    advice = {
        "cuda": "CUDA comes first: check torch.cuda.is_available() before MPS."
        if kind == "mps" else "use the GPU when torch.cuda.is_available() is True.",
        "mps": "on a Mac, use the GPU when torch.backends.mps.is_available() is True.",
        "cpu": "fall back to the CPU when neither torch.cuda.is_available() nor "
               "torch.backends.mps.is_available() is True.",
    }[want]
    raise Mismatch(f"on a machine with {machine}, pick_device returned '{kind}': {advice}")


def _cases_device():
    return [(False, False), (True, False), (False, True), (True, True)]


ex1 = Exercise(
    1, "pick_device", points=1, judge=_judge_device, cases=_cases_device,
    hints=[
        "Ask PyTorch in order: is there CUDA? is there MPS? Otherwise the CPU.",
        "torch.cuda.is_available() and torch.backends.mps.is_available() answer True or False; "
        "torch.device(name) makes a device from its name, 'cuda', 'mps' or 'cpu'.",
        "if ____:\n    return torch.device(____)\nif ____:\n    return ____\nreturn ____",
    ],
)


# --------------------------------------------------------------- 2: a custom Dataset


class ScaleTransform:
    """uint8 (28, 28) -> float (1, 28, 28) in [0, 1]; counts its calls and what it was given."""

    def __init__(self):
        self.inputs: list[int] = []

    def __call__(self, image):
        self.inputs.append(getattr(image, "ndim", 0))
        return torch.as_tensor(image).float().div(255).unsqueeze(0)


def _cases_dataset():
    g = _gen(20)
    images = torch.randint(0, 256, (10, 28, 28), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 10, (10,), generator=g)
    return [(images, labels, True), (images[:7], labels[:7], False)]


def _label_ok(label, want: torch.Tensor) -> bool:
    if isinstance(label, torch.Tensor):
        return label.numel() == 1 and label.ndim == 0 and int(label) == int(want)
    return isinstance(label, int) and label == int(want)


def _judge_dataset(cls, case):
    images, labels, with_transform = case
    if not isinstance(cls, type):
        raise Mismatch(f"FashionDataset should be a class (class FashionDataset(Dataset): ...), got {describe(cls)}.")
    transform = ScaleTransform() if with_transform else None
    ds = call_answer(cls, images, labels, transform, name="FashionDataset", explain=_dataset_error)
    if not isinstance(ds, Dataset):
        raise Mismatch("subclass torch.utils.data.Dataset: class FashionDataset(Dataset).")
    n = call_answer(len, ds, name="len", explain=_dataset_error)
    if n != len(labels):
        raise Mismatch(f"len() of a dataset of {len(labels)} examples returned {n}: return the number of examples.")
    for i in (0, 3, len(labels) - 1):
        item = call_answer(ds.__getitem__, i, name="dataset.__getitem__", explain=_dataset_error)
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise Mismatch(f"dataset[{i}] should be a pair (image, label), got {describe(item)}.")
        image, label = item
        want = transform(images[i]) if transform else images[i]
        if _label_ok(image, labels[i]) and isinstance(label, torch.Tensor) and label.ndim >= 2:
            raise Mismatch("the pair is the wrong way round: return (image, label).")
        if transform and 0 in transform.inputs:
            raise Mismatch("the transform was applied to the label: apply it to the image only.")
        if not isinstance(image, torch.Tensor) or image.shape != want.shape:
            if transform and isinstance(image, torch.Tensor) and image.shape == images[i].shape:
                raise Mismatch("the image is returned unchanged: apply self.transform to it when it is not None.")
            raise Mismatch(f"dataset[{i}][0] should be the image, got {describe(image)}.")
        if not torch.equal(image, want):
            if not transform and image.dtype != want.dtype or not transform and _same_example(image, want):
                raise Mismatch(f"with transform=None, dataset[{i}] should give the image as it is stored "
                               f"({want.dtype}, 0 to 255); yours changed it to {image.dtype}. Leave any scaling "
                               "to the transform.")
            if transform and torch.equal(image, transform(transform(images[i]))):
                raise Mismatch("the transform was applied twice: apply it once, in __getitem__.")
            raise Mismatch(f"dataset[{i}] is not example {i}: index self.images and self.labels with the index "
                           "you are given.")
        if not _label_ok(label, labels[i]):
            if isinstance(label, torch.Tensor) and label.numel() == 1:
                raise Mismatch("the label has a dimension too many: index with one integer, labels[index].")
            raise Mismatch(f"dataset[{i}][1] should be label {i} (an int or a 0-d tensor), got {describe(label)}.")
    images_b, labels_b = next(iter(DataLoader(ds, batch_size=4)))
    if tuple(labels_b.shape) != (4,):
        raise Mismatch(f"a DataLoader batch of 4 labels has shape {tuple(labels_b.shape)}, not (4,).")


def _same_example(image, want) -> bool:
    """True when ``image`` is ``want`` rescaled (by 1/255, say): the right example, changed."""
    a, b = image.double().flatten(), want.double().flatten()
    if a.shape != b.shape or not b.abs().sum():
        return False
    ratio = a.abs().sum() / b.abs().sum()
    return bool(torch.allclose(a, b * ratio, atol=1e-6 * max(1.0, float(a.abs().max()))))


def _dataset_error(message: str) -> str | None:
    if "'NoneType' object is not callable" in message:
        return "transform may be None: apply it only when one was given (if self.transform is not None)."
    if "cannot be interpreted as an integer" in message or "should return >= 0" in message:
        return "__len__ must return one int: the number of examples (one per label)."
    if "takes" in message and "positional argument" in message:
        return "the class takes (images, labels, transform=None), and __getitem__ takes (self, index)."
    return None


ex2 = Exercise(
    2, "FashionDataset", points=2, judge=_judge_dataset, cases=_cases_dataset,
    hints=[
        "A map-style Dataset needs three methods: __init__ keeps the tensors and the transform, __len__ "
        "says how many examples there are, __getitem__(index) returns one (image, label) pair.",
        "Store the arguments as attributes of self; len() of the labels counts the examples; indexing a "
        "tensor with [index] gives one example; apply the transform only when it `is not None`.",
        "# __init__:\nself.images = ____\n...                         # the labels and the transform too\n"
        "# __len__:\nreturn ____\n# __getitem__:\nimage = ____\nif ____:\n    image = ____\n"
        "return ____, ____",
    ],
)


# --------------------------------------------------------------- 3: train_one_epoch


def tiny_model(seed: int = 30, dropout: float = 0.0) -> nn.Sequential:
    """A probe followed by a 6 → 8 → 3 MLP: small enough to compare weights exactly."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        layers = [Probe(), nn.Linear(6, 8), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else [])
        return nn.Sequential(*layers, nn.Linear(8, 3))


def _marked(batch):
    """The DataLoader's usual batch, each tensor marked as not yet moved to the device."""
    return tuple(on_host(t) for t in default_collate(batch))


def tiny_loader(n: int = 10, batch_size: int = 4, seed: int = 31) -> DataLoader:
    """``n`` random examples in batches of ``batch_size`` (the last one smaller), not shuffled; the batches are
    marked until they are moved with ``.to(device)``."""
    g = _gen(seed)
    return DataLoader(TensorDataset(torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g)),
                      batch_size=batch_size, collate_fn=_marked)


def _flat_grads(grads) -> torch.Tensor:
    return torch.cat([g.flatten() for g in grads])


def _flat(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


class _WatchedSGD(torch.optim.SGD):
    """Plain SGD that keeps, at every step, the weights and the gradients that the step is about to use."""

    def __init__(self, params, lr: float):
        super().__init__(params, lr=lr)
        self.seen: list[tuple[torch.Tensor, list[torch.Tensor | None]]] = []

    def step(self, closure=None):
        params = [p for group in self.param_groups for p in group["params"]]
        self.seen.append((torch.cat([p.detach().flatten() for p in params]),
                          [None if p.grad is None else p.grad.detach().clone() for p in params]))
        return super().step(closure)


def _batch_loss_grad(model: nn.Module, weights: torch.Tensor | None, x: torch.Tensor, y: torch.Tensor):
    """One batch's cross-entropy and its gradient, at ``weights`` (default: the model's own), in train mode:
    what a step on that batch must use. A single batch, no loop and no optimizer."""
    model = copy.deepcopy(model).train()
    if weights is not None:
        with torch.no_grad():
            nn.utils.vector_to_parameters(weights, model.parameters())
    loss = nn.functional.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    return loss.item(), _flat_grads(grads)


def _plain_batches(loader) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x.as_subclass(torch.Tensor), y.as_subclass(torch.Tensor)) for x, y in loader]


def _weighted(losses) -> float:
    return sum(v * n for v, n in losses) / sum(n for _, n in losses)


def _loss_advice(got: float, losses, what: str) -> str | None:
    """Name the usual ways of averaging wrongly; None when ``got`` matches none of them."""
    batch_mean = sum(v for v, _ in losses) / len(losses)
    wrong = {
        batch_mean: f"you averaged the batch means, but the last batch is smaller: weight each batch's {what} "
                    "by its size and divide by the number of examples.",
        sum(v for v, _ in losses): f"that is the sum of the batch {what}es: divide by the number of examples.",
        sum(v * n for v, n in losses): "that is the total over all examples: divide it by the number of examples.",
        losses[-1][0]: f"that is the last batch's {what}: return the average over the whole epoch.",
    }
    for value, advice in wrong.items():
        if abs(got - value) <= 1e-4 * max(1.0, abs(value)):
            return advice
    return None


def _judge_train(fn, case):
    """Watch the learner's epoch instead of re-running one: every optimizer step must use the gradient of its
    own batch's loss at the weights of that moment, one step per batch in order, and the returned number must
    be the mean of those batch losses per example."""
    model, loader, lr = case
    batches = _plain_batches(loader)
    mine = copy.deepcopy(model).eval()  # as evaluate() leaves it: the loop must switch to train mode
    probe, loss_fn = mine[0], LossProbe()
    probe.clear()
    opt = _WatchedSGD(mine.parameters(), lr)
    start = _flat(mine)
    got = _number(call_answer(fn, mine, loader, loss_fn, opt, torch.device("cpu"),
                              name="train_one_epoch", explain=_train_error), "train_one_epoch(...)")
    if not probe.modes:
        raise Mismatch("the model was never called: compute its outputs on every batch of images.")
    _moved_to_device(probe, loss_fn, "the loop")
    if not all(probe.modes):
        raise Mismatch("the model ran in eval mode: call model.train() at the start (evaluate() leaves it in "
                       "eval mode, and dropout and batch norm behave differently there).")
    if not all(probe.grad_enabled):
        raise Mismatch("the forward pass ran without gradients: don't wrap training in torch.no_grad().")
    if not opt.seen:
        if values_close(_flat(mine), start):
            raise Mismatch("the weights did not change: call loss.backward() and then optimizer.step(), in that "
                           "order, for every batch.")
        raise Mismatch("the weights changed, but not through `optimizer`: take every step with the optimizer "
                       "the function is given (don't make a new one).")
    losses, previous = [], None
    for k, (weights, grads) in enumerate(opt.seen):
        if k >= len(batches):
            raise Mismatch(f"{len(opt.seen)} optimizer steps for {len(batches)} batches: take exactly one "
                           "optimizer step per batch.")
        if any(g is None for g in grads):
            raise Mismatch("optimizer.step() found no gradient: call loss.backward() and then optimizer.step(), "
                           "in that order, for every batch.")
        value, want = _batch_loss_grad(model, weights, *batches[k])
        have = _flat_grads(grads)
        if not _close(have, want):
            if previous is not None and _close(have, previous + want):
                raise Mismatch("optimizer.zero_grad() is missing: the gradients of earlier batches pile up in "
                               ".grad and every step uses their sum.")
            if k > 0 and _close(have, _batch_loss_grad(model, weights, *batches[k - 1])[1]):
                raise Mismatch(f"batch {k} got more than one optimizer step: take exactly one optimizer step per "
                               "batch.")
            raise Mismatch(f"the step for batch {k + 1} did not use the gradient of that batch's loss: for every "
                           "batch, zero_grad, forward, loss, backward, step, in that order, one step per batch.")
        previous = have
        losses.append((value, len(batches[k][1])))
    if len(opt.seen) < len(batches):
        raise Mismatch(f"{len(opt.seen)} optimizer steps for {len(batches)} batches: take one step for every "
                       "batch of the loader, the smaller last one included.")
    weights, grads = opt.seen[-1]
    if not _close(_flat(mine), weights - lr * _flat_grads(grads)):
        raise Mismatch("the weights changed outside optimizer.step(): let the optimizer alone update them.")
    if abs(got - _weighted(losses)) > 1e-4 * max(1.0, abs(got)):
        raise Mismatch(f"the weights are right but the returned loss is not the mean loss per example: "
                       f"{_loss_advice(got, losses, 'loss') or 'use each batch loss before its step.'}")


def _train_error(message: str) -> str | None:
    if "does not require grad" in message:
        return "loss.backward() needs the graph: don't compute the loss inside torch.no_grad() or from .item()."
    if "backward through the graph a second time" in message:
        return "call loss.backward() once per batch, on the loss of that batch."
    if "has no attribute 'backwards'" in message:
        return "a tensor has no method backwards: the method is backward, without an s."
    return None


def _cases_train():
    return [(tiny_model(), tiny_loader(), 0.5)]


ex3 = Exercise(
    3, "train_one_epoch", points=3, judge=_judge_train, cases=_cases_train,
    hints=[
        "One pass over the loader in training mode: for each batch, move it to the device, reset the "
        "gradients, forward, loss, backward, step. The mean per example needs a running total of loss × "
        "batch size and a count of examples.",
        "model.train(); Tensor.to(device); optimizer.zero_grad(), loss_fn(outputs, targets), "
        "loss.backward(), optimizer.step(); loss.item() turns the batch's mean loss into a Python float; "
        "len() of a batch is its size.",
        "model.train()\ntotal, count = 0.0, 0\nfor ____ in loader:\n    images, labels = ____\n"
        "    optimizer.zero_grad()\n    loss = ____\n    loss.backward()\n    optimizer.step()\n"
        "    total += ____            # this batch's summed loss\n    count += ____\nreturn ____",
    ],
)


# --------------------------------------------------------------- 4: evaluate


class _Recorder(LossProbe):
    """The loss function given to evaluate: it also keeps what it was given, batch by batch."""

    def __init__(self):
        super().__init__()
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, outputs, labels):
        self.calls.append((outputs.detach(), labels))
        return super().forward(outputs, labels)


def _run_eval(fn, case):
    """The learner's evaluate on a copy of the case's model (left in train mode, as training leaves it)."""
    model, loader = case
    mine = copy.deepcopy(model).train()  # evaluate must switch to eval mode
    probe, loss_fn = mine[0], _Recorder()
    probe.clear()
    got = call_answer(fn, mine, loader, loss_fn, torch.device("cpu"), name="evaluate")
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        raise Mismatch(f"evaluate should return two numbers (mean loss, accuracy), got {describe(got)}.")
    return mine, probe, loss_fn, _number(got[0], "the loss"), _number(got[1], "the accuracy")


def _observe_eval(fn, case):
    """What the instructor's evaluate returns, and each batch's loss, accuracy and size as it saw them (for
    naming the usual ways of averaging wrongly)."""
    _, _, loss_fn, loss, acc = _run_eval(fn, case)
    batches = [[nn.functional.cross_entropy(out, y).item(), (out.argmax(1) == y).float().mean().item(), len(y)]
               for out, y in loss_fn.calls]
    return {"result": [loss, acc], "batches": batches}


def _judge_eval(fn, case, expected):
    mine, probe, loss_fn, loss, acc = _run_eval(fn, case)
    _moved_to_device(probe, loss_fn, "evaluate")
    if any(probe.modes):
        raise Mismatch("the model ran in train mode: call model.eval() first; in train mode dropout switches "
                       "random units off, so the result changes from run to run.")
    if any(probe.grad_enabled):
        raise Mismatch("evaluation recorded gradients: wrap the loop in `with torch.no_grad():` (it saves memory "
                       "and time, and nothing here needs a gradient).")
    if any(p.grad is not None for p in mine.parameters()):
        raise Mismatch("evaluation must not call backward(): it only measures.")
    # shipped: the instructor's evaluate on this case (see helpers.checks.shipped)
    want_loss, want_acc = expected["result"]
    losses = [(v, n) for v, _, n in expected["batches"]]
    accs = [(a, n) for _, a, n in expected["batches"]]
    if abs(loss - want_acc) < 1e-5 and abs(acc - want_loss) < 1e-4:
        raise Mismatch("loss and accuracy are swapped: return (mean loss, accuracy).")
    if abs(loss - want_loss) > 1e-4 * max(1.0, want_loss):
        advice = _loss_advice(loss, losses, "loss") or "average the loss per example."
        raise Mismatch(f"the mean loss is wrong: {advice}")
    if abs(acc - 100 * want_acc) < 1e-3 and want_acc > 0:
        raise Mismatch("return the accuracy as a fraction between 0 and 1, not a percentage.")
    if abs(acc - want_acc) > 1e-6 and float(acc).is_integer() and not float(want_acc).is_integer():
        raise Mismatch(f"the accuracy came out as the whole number {acc:g}: integer division (//) rounds the "
                       "fraction down to 0; divide with / (correct / count).")
    if abs(acc - want_acc) > 1e-6:
        advice = _loss_advice(acc, accs, "accuracy") or "count correct predictions (argmax of the logits equals " \
                                                        "the label) over all examples."
        raise Mismatch(f"the accuracy is wrong: {advice}")


def _cases_eval():
    return [(tiny_model(dropout=0.5), tiny_loader(n=10, batch_size=4, seed=32))]


ex4 = Exercise(
    4, "evaluate", points=2, judge=_judge_eval, observe=_observe_eval, cases=_cases_eval,
    hints=[
        "Two switches first: model.eval() (dropout and batch norm in evaluation mode) and torch.no_grad()"
        " (no graph). Then add up the loss × batch size and the number of correct predictions.",
        "Tensor.to(device); Tensor.argmax(dim=1) gives each row's predicted class; == against the labels "
        "gives booleans, and .sum().item() counts the True ones; loss.item() × batch size for the loss.",
        "model.eval()\ntotal, correct, count = 0.0, 0, 0\nwith torch.no_grad():\n    for ____ in loader:\n"
        "        images, labels = ____\n        outputs = ____\n        total += ____\n"
        "        correct += ____      # how many predictions equal their labels\n        count += ____\n"
        "return ____, ____",
    ],
)


# --------------------------------------------------------------- 5: find the bugs


BUGS = ("missing zero_grad", "missing backward", "evaluating in train mode", "accuracy on the training loader",
        "test set shuffled", "learning rate too small")
LOOPS = ("loop_a", "loop_b", "loop_c")
# The answer key, as digests so that reading this file does not give the answer away.
_KEY = {"loop_a": "59a695bc3635eda0", "loop_b": "3c07adfce28ded8f", "loop_c": "ab7669facdff5a95"}


def _digest(loop: str, bug: str) -> str:
    return hashlib.sha256(f"lesson05:{loop}={bug}".encode()).hexdigest()[:16]


def _judge_bugs(diagnosis, loops):
    if not isinstance(diagnosis, dict):
        raise Mismatch(f"diagnosis should be a dict like {{'loop_a': '...', ...}}, got {describe(diagnosis)}.")
    if set(diagnosis) != set(LOOPS):
        raise Mismatch(f"diagnosis should have exactly the keys {', '.join(LOOPS)}.")
    if all(v is None for v in diagnosis.values()):
        raise NotAttempted()
    for loop in LOOPS:
        if diagnosis[loop] not in BUGS:
            raise Mismatch(f"diagnosis[{loop!r}] is {diagnosis[loop]!r}: choose one of checks.BUGS.")
    wrong = [loop for loop in loops if _digest(loop, diagnosis[loop]) != _KEY[loop]]
    if wrong:
        raise Mismatch(f"{len(wrong)} of {len(loops)} loops diagnosed wrongly ({', '.join(wrong)}): run each loop "
                       "again and ask what its numbers say, then compare its code line by line with your "
                       "train_one_epoch and evaluate.")


ex5 = Exercise(
    5, "diagnosis", points=2, judge=_judge_bugs, cases=lambda: [LOOPS], needs_callable=False,
    hints=[
        "One loop has a loss that behaves oddly, one gives a different test accuracy every time you "
        "evaluate the same model, and one reports an accuracy that is too good to be true.",
        "Gradients add up unless reset; dropout is active in train mode; a model scored on the examples "
        "it trained on looks better than it is.",
        "diagnosis = {\n    \"loop_a\": ____,    # one of checks.BUGS\n    \"loop_b\": ____,\n"
        "    \"loop_c\": ____,\n}",
    ],
)

# --------------------------------------------------------------- 6: fix loop D


def tiny_batch(n: int = 5, seed: int = 61) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch for ``tiny_model``: ``n`` random inputs of 6 features and their labels (3 classes)."""
    g = _gen(seed)
    return torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g)


def _grads(model) -> list[torch.Tensor | None]:
    return [None if p.grad is None else p.grad.detach().clone() for p in model.parameters()]


def _with_stale_grads(model, seed: int) -> nn.Module:
    """A copy of ``model`` whose .grad still holds the gradient of an earlier batch, as in the middle of a loop."""
    model = copy.deepcopy(model)
    g = _gen(seed)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=g)
    return model


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return values_close(a, b, rtol=1e-4, atol=1e-6)


def _judge_step(fn, case):
    model, batch, lr = case
    start = _with_stale_grads(model, seed=62)
    stale = _flat_grads(_grads(start))
    want_loss, want_g = _batch_loss_grad(start, None, *batch)
    want_w = _flat(start) - lr * want_g  # one plain SGD step
    loss_after, _ = _batch_loss_grad(start, want_w, *batch)
    mine = _with_stale_grads(model, seed=62)
    opt = torch.optim.SGD(mine.parameters(), lr=lr)
    got = call_answer(fn, mine, batch[0], batch[1], nn.CrossEntropyLoss(), opt, name="step_fixed",
                      explain=_step_error)
    weights, grads = _flat(mine), _grads(mine)
    moved = not _close(weights, _flat(start))
    if all(g is None or not g.any() for g in grads):
        if moved:
            also = "" if _close(weights, want_w) else " (at the end, the step also used the earlier batch's gradient)"
            raise Mismatch(f".grad is empty afterwards: keep the gradients' reset at the start of the step, before "
                           f"the forward pass, where step_d has it{also}.")
        if "backward" in referenced_names(fn):
            raise Mismatch("no parameter's .grad was filled: `loss.backward` without brackets only names the "
                           "method; call it.")
        raise Mismatch("no parameter's .grad was filled: after computing the batch's loss, call backward on it.")
    if any(g is None for g in grads):
        raise Mismatch("some parameters have no gradient: call backward on the loss of the whole model's output "
                       "for this batch.")
    have_g = _flat_grads(grads)
    if _close(have_g, stale):
        raise Mismatch("the parameters' .grad still holds the earlier batch's gradient: this batch's loss never "
                       "reached .grad; call backward on it.")
    if _close(have_g, stale + want_g):
        raise Mismatch("the gradients' reset is missing: .grad holds the earlier batch's gradient plus this one's "
                       "(backward adds to .grad). Keep optimizer.zero_grad() at the start, as in step_d.")
    if not _close(have_g, want_g):
        raise Mismatch(".grad does not hold the gradient of this batch's loss: call backward once, on "
                       "loss_fn(outputs, labels) for this batch.")
    if not moved:
        raise Mismatch(".grad is filled but the weights did not change: call optimizer.step() after backward "
                       "(before backward it finds no gradient and does nothing).")
    if not _close(weights, want_w):
        raise Mismatch("the weights differ from one optimizer step on this batch's gradient: call "
                       "optimizer.step() exactly once, after backward.")
    value = _number(got, "step_fixed(...)")
    if abs(value - want_loss) > 1e-4 * max(1.0, abs(want_loss)):
        if abs(value - loss_after) <= 1e-4 * max(1.0, abs(loss_after)):
            raise Mismatch("the returned loss is the one after the step: return the loss of the batch that the "
                           "step was computed from, as a float.")
        raise Mismatch("the weights are right but the returned number is not this batch's loss: return the loss "
                       "as a Python float.")


def _step_error(message: str) -> str | None:
    if "has no attribute 'backwards'" in message:
        return "That is loop D's bug, still there: a tensor has no method backwards; PyTorch's is backward."
    if "'float' object has no attribute 'backward'" in message:
        return "backward belongs to the loss tensor: call it on the loss itself, not on loss.item()."
    if "does not require grad" in message:
        return "the loss is not in the graph: compute it from the model's outputs, outside torch.no_grad()."
    if "backward through the graph a second time" in message:
        return "call backward once per step."
    return None


def _cases_step():
    return [(tiny_model(seed=60), tiny_batch(), 0.5)]


ex6 = Exercise(
    6, "step_fixed", points=1, judge=_judge_step, cases=_cases_step,
    hints=[
        "Read the error from its last line up: Python names the attribute it could not find on the tensor, and "
        "the line it stopped at. Compare that line with the five lines of section 3; the rest of step_d is right.",
        "A method name that PyTorch does not have raises AttributeError. Tensor.backward() fills every "
        "parameter's .grad; optimizer.zero_grad() and optimizer.step() stay where step_d has them; loss.item() "
        "is the loss as a float.",
        "optimizer.zero_grad()\nloss = ____          # this batch's loss\n____                 # fills every "
        "parameter's .grad\noptimizer.step()\nreturn ____",
    ],
)

EXERCISES = (ex1, ex2, ex3, ex4, ex5, ex6)

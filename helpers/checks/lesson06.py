"""Instant checks for lesson 06, a validation split.

The judges test behaviour rather than one exact answer: a split must be disjoint,
complete, random and reproducible; early stopping must stop after exactly
``patience`` epochs without improvement and give back the best weights (not a live
reference to the last ones); the final evaluation must run once, in eval mode,
without gradients and with predictions and labels from the same pass.

Introduced in lesson 06.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.utils.data import Subset, TensorDataset

from helpers.checks.core import Exercise, Mismatch, call_answer, describe
from helpers.checks.lesson05 import Probe
from helpers.checks.probes import whole_number


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------- 1: the split


def _ids(part, name: str) -> list[int]:
    try:
        return [int(part[i][0]) for i in range(len(part))]
    except Exception as err:  # not a dataset-like part
        raise Mismatch(f"the {name} part should be a dataset (a Subset from random_split), got {describe(part)} "
                       f"({type(err).__name__}).") from None


def _split(fn, dataset, fraction, seed):
    got = call_answer(fn, dataset, fraction, seed, name="split_dataset")
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        raise Mismatch(f"split_dataset should return two datasets (train, validation), got {describe(got)}.")
    return _ids(got[0], "training"), _ids(got[1], "validation")


def _judge_split(fn, case):
    n, fraction, seed = case
    dataset = TensorDataset(torch.arange(n))
    with torch.random.fork_rng():
        torch.manual_seed(1)
        train, val = _split(fn, dataset, fraction, seed)
        torch.manual_seed(2)  # a different global state: a seeded split must not notice
        again = _split(fn, dataset, fraction, seed)
        other = _split(fn, dataset, fraction, seed + 1)
    expected_val = n * fraction
    if set(train) & set(val):
        raise Mismatch("the two parts share examples: a validation example must never be trained on.")
    if len(train) + len(val) != n:
        raise Mismatch(f"the parts hold {len(train)} + {len(val)} examples, not {n}: every example must land in "
                       "exactly one part (n_train = len(dataset) - n_val).")
    if abs(len(train) - expected_val) <= 1 < abs(len(val) - expected_val):
        raise Mismatch("the parts are the wrong way round: return (train, validation), and the validation part "
                       "is the small one.")
    want_val = int(n * fraction)
    if len(val) != want_val:
        if abs(len(val) - expected_val) < 1:
            raise Mismatch(f"with val_fraction={fraction} the validation part of {n} examples holds {len(val)}: the "
                           f"exercise fixes the validation size as val_fraction × the number of examples, "
                           f"{want_val} here, which rounds down "
                           "(truncates), not to the nearest whole number and not up.")
        raise Mismatch(f"with val_fraction={fraction} the validation part of {n} examples should hold "
                       f"int({n} * {fraction}) = {want_val}, not {len(val)}.")
    if (train, val) != again:
        raise Mismatch("two calls with the same seed gave different splits: pass "
                       "random_split a torch.Generator seeded with manual_seed and `seed`.")
    if sorted(val) == val and val[-1] - val[0] == len(val) - 1:
        raise Mismatch("the validation part is one contiguous block: shuffle before splitting (random_split does).")
    if (train, val) == other:
        raise Mismatch("the seed is ignored: different seeds should give different splits.")


def _cases_split():
    return [(50, 0.2, 0), (103, 0.1, 7), (29, 0.2, 5)]  # 29 · 0.2 = 5.8: rounding gives 6, the prompt's int() 5


ex1 = Exercise(
    1, "split_dataset", points=2, judge=_judge_split, cases=_cases_split,
    hints=[
        "Work out the sizes first: the validation part is val_fraction of the data, rounded down, and the"
        " training part is the rest. Then draw the examples at random, from a generator seeded by `seed`,"
        " so that the split is the same every time.",
        "torch.utils.data.random_split(dataset, lengths, generator=...) cuts a dataset into parts of the "
        "given lengths; torch.Generator() makes a generator and .manual_seed(seed) seeds it; int() rounds"
        " down.",
        "n_val = ____\ngenerator = ____\nreturn random_split(dataset, [____, ____], generator=____)",
    ],
)


# --------------------------------------------------------------- 2: the best epoch


def _run_best(fn, history) -> int:
    return whole_number(call_answer(fn, copy.deepcopy(history), name="best_epoch"), "best_epoch(history)")


def _judge_best(fn, history, want):
    val = history["val_loss"]
    got = _run_best(fn, history)  # want: shipped, the instructor's answer on this history
    if got == want:
        return

    def index_of(values, pick):
        return values.index(pick(values)) + 1
    if got == want - 1:
        raise Mismatch("epochs are numbered from 1: add 1 to the list index.")
    if got == len(val):
        raise Mismatch("that is the last epoch, where the training loss is lowest: choose by the validation loss, "
                       "which rises again once the model overfits.")
    if got == index_of(history["train_loss"], min):
        raise Mismatch("you chose by the training loss, which keeps falling while the model overfits: choose by "
                       "the validation loss.")
    if got == index_of(history["val_accuracy"], max):
        raise Mismatch("you chose by the validation accuracy; this lesson (and early stopping) uses the lowest "
                       "validation loss.")
    if got == index_of(val, max):
        raise Mismatch("that is the epoch with the highest validation loss: you want the lowest.")
    if 1 <= got <= len(val) and val[got - 1] == val[want - 1]:
        raise Mismatch("two epochs tie for the lowest validation loss: keep the earlier one.")
    raise Mismatch(f"epoch {got} does not have the lowest validation loss.")


def _cases_best():
    return [{"train_loss": [0.9, 0.6, 0.45, 0.35, 0.28, 0.22],
             "val_loss": [0.8, 0.55, 0.5, 0.52, 0.49, 0.58],
             "val_accuracy": [0.70, 0.80, 0.84, 0.83, 0.82, 0.81]},
            # two epochs tie for the lowest validation loss: the earlier one is the answer
            {"train_loss": [0.8, 0.5, 0.4, 0.33, 0.3],
             "val_loss": [0.7, 0.45, 0.5, 0.45, 0.6],
             "val_accuracy": [0.72, 0.83, 0.84, 0.82, 0.8]}]


ex2 = Exercise(
    2, "best_epoch", points=1, judge=_judge_best, observe=_run_best, cases=_cases_best,
    hints=[
        "Look only at the validation losses: the best epoch is where they are lowest. Epochs count from "
        "1, list positions from 0.",
        "history is a dict of lists, one value per epoch; min() finds the lowest value, and list.index() "
        "the first (earliest) position of a value.",
        "losses = ____\nreturn ____ + 1",
    ],
)


# --------------------------------------------------------------- 3: early stopping


def _run_stopper(cls, losses, patience):
    """Drive the learner's EarlyStopping like a training loop; weights are set to the epoch number."""
    if not isinstance(cls, type):
        raise Mismatch(f"EarlyStopping should be a class, got {describe(cls)}.")
    stopper = call_answer(cls, patience, name="EarlyStopping")
    model = nn.Linear(2, 1)
    stopped = None
    for epoch, loss in enumerate(losses, 1):
        with torch.no_grad():
            model.weight.fill_(float(epoch))  # "training" changes the weights in place
        stop = call_answer(stopper.step, loss, model, name="EarlyStopping.step")
        if stop is None or not isinstance(stop, (bool, int, torch.Tensor)):
            advice = "did you forget `return`?" if stop is None else "return a bool"
            raise Mismatch(f"step() should return True (stop) or False, got {describe(stop)}: {advice}.")
        if stop:
            stopped = epoch
            break
    last = float(model.weight.detach()[0, 0])
    call_answer(stopper.restore, model, name="EarlyStopping.restore")
    return stopped, float(model.weight.detach()[0, 0]), last, _kept_weights(stopper)


def _kept_weights(stopper) -> list[float]:
    """The first weight of every copy of the model the stopper holds (a state dict or a module)."""
    kept = []
    for value in vars(stopper).values():
        weight = value.get("weight") if isinstance(value, dict) else getattr(value, "weight", None)
        if isinstance(weight, torch.Tensor) and weight.numel() == 2:
            kept.append(float(weight.detach().flatten()[0]))
    return kept


def _observe_stopping(cls, case):
    """When the stopper stops (None: never) and which epoch's weights restore() puts back."""
    stopped, restored, _, _ = _run_stopper(cls, *case)
    return [stopped, restored]


def _judge_stopping(cls, case, expected):
    losses, patience = case
    want_stop, want_best = expected  # shipped: what the instructor's solution does on this case
    stopped, restored, last, kept = _run_stopper(cls, losses, patience)
    at = f"with patience {patience} and validation losses {losses}"
    if stopped != want_stop:
        if want_stop is None:
            raise Mismatch(f"{at}, step() asked to stop after epoch {stopped}, but training should go on: stop only "
                           f"after {patience} epochs in a row without a lower loss than the best so far.")
        if stopped is None:
            advice = "compare each loss with the best loss so far, not with the previous epoch's"
            if all(a <= b for a, b in zip(losses, losses[1:], strict=False)) or len(set(losses)) < len(losses):
                advice = "a loss equal to the best is not an improvement: count it as a bad epoch (use <)"
            raise Mismatch(f"{at}, step() never asked to stop: {advice}.")
        if stopped == want_stop - 1:
            raise Mismatch(f"{at}, training stopped one epoch too early: stop when the number of epochs without "
                           "improvement reaches patience, not patience - 1.")
        if stopped == want_stop + 1:
            raise Mismatch(f"{at}, training stopped one epoch too late: stop as soon as patience epochs in a row "
                           "brought no improvement (>=, not >).")
        first_bad = next((e for e in range(2, len(losses) + 1) if losses[e - 1] >= min(losses[:e - 1])), None)
        if stopped == first_bad:
            raise Mismatch(f"{at}, training stopped at the first epoch that did not improve: patience allows that "
                           "many bad epochs before stopping.")
        raise Mismatch(f"{at}, training stopped after epoch {stopped}: that is not after {patience} epochs without "
                       "a new best.")
    if restored != float(want_best):
        if restored == last and float(want_best) in kept:
            raise Mismatch("the best weights are kept, but restore() does not put them into the model it is given: "
                           "call model.load_state_dict(...) on it. Assigning to the name `model` inside restore() "
                           "changes nothing outside.")
        if restored == last:
            raise Mismatch("restore() gave back the last weights, not the best: model.state_dict() holds references "
                           "to the live tensors, which training keeps changing. Keep a deep copy "
                           "(copy.deepcopy) of the best ones.")
        raise Mismatch("restore() did not load the weights of the epoch with the lowest validation loss.")


def _cases_stopping():
    # the third has losses equal to the best, which are not improvements ("lower" in the exercise)
    return [([1.0, 0.8, 0.9, 0.85, 0.88, 0.87, 0.7], 3), ([0.9, 0.7, 0.6, 0.65, 0.5, 0.55], 2),
            ([0.9, 0.6, 0.7, 0.6, 0.6, 0.5], 3)]


ex3 = Exercise(
    3, "EarlyStopping", points=3, judge=_judge_stopping, observe=_observe_stopping, cases=_cases_stopping,
    hints=[
        "Keep three things: the best loss so far, a copy of the weights at that moment, and how many "
        "epochs in a row have not beaten it. step() updates them and says whether that count reached "
        "patience.",
        "Start the best loss at infinity (math.inf) so that the first epoch is a new best; "
        "model.state_dict() keeps changing as training goes on, so store a copy.deepcopy of it; "
        "model.load_state_dict() puts stored weights back. Only a strictly lower loss is a new best.",
        "# __init__:\nself.best_loss = ____        # any first loss must beat it\nself.best_state = None\n"
        "self.bad_epochs = 0\n# step(val_loss, model):\nif ____:\n"
        "    ...                      # a new best: the loss, a copy of the weights, the counter back to 0\n"
        "else:\n    ...                      # one more epoch without a new best\nreturn ____\n"
        "# restore(model):\n____",
    ],
)


# --------------------------------------------------------------- 4: the final evaluation


class ShufflingLoader:
    """A test loader that draws a new order every time it is iterated (as shuffle=True does)."""

    def __init__(self, images, labels, batch_size, seed):
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.generator = _gen(seed)

    def __len__(self):
        return -(-len(self.labels) // self.batch_size)

    def __iter__(self):
        order = torch.randperm(len(self.labels), generator=self.generator)
        for i in range(0, len(order), self.batch_size):
            yield self.images[order[i:i + self.batch_size]], self.labels[order[i:i + self.batch_size]]


def probe_classifier(seed: int = 60) -> nn.Sequential:
    """A probe, then 6 → 16 → 4 with dropout: train and eval mode give different predictions."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return nn.Sequential(Probe(), nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 4))


def _run_predict(fn, case):
    """The learner's predict on a shuffling loader over the case's examples, after checking the result's form:
    (predictions, labels, the model's probe, the examples)."""
    model, n, batch_size = case
    g = _gen(61)
    images, labels = torch.randn(n, 6, generator=g), torch.randint(0, 4, (n,), generator=g)
    mine = copy.deepcopy(model).train()
    probe = mine[0]
    probe.clear()
    got = call_answer(fn, mine, ShufflingLoader(images, labels, batch_size, seed=62), name="predict")
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        raise Mismatch(f"predict should return two tensors (predictions, labels), got {describe(got)}.")
    preds, labs = got
    for t, name in ((preds, "predictions"), (labs, "labels")):
        if not isinstance(t, torch.Tensor):
            raise Mismatch(f"the {name} should be one tensor, got {describe(t)}: join the batches with torch.cat.")
    if preds.ndim == 2:
        raise Mismatch(f"the predictions have shape {tuple(preds.shape)}: they are logits; take argmax(dim=1) to "
                       "get one class per image.")
    if preds.shape != (n,) or labs.shape != (n,):
        raise Mismatch(f"for {n} test examples expected two tensors of shape ({n},), got {tuple(preds.shape)} and "
                       f"{tuple(labs.shape)}: collect every batch and join them with torch.cat.")
    if preds.dtype != torch.int64:
        raise Mismatch(f"the predictions should be class indices (torch.int64, from argmax), got {preds.dtype}.")
    return preds, labs, probe, images


def _pairs(preds, labs, images) -> list:
    """(example, label, prediction) for every example, in a fixed order: what a shuffled loader cannot change."""
    return sorted([img.tolist(), int(lab), int(p)] for img, lab, p in zip(images, labs, preds, strict=True))


def _observe_predict(fn, case):
    preds, labs, _, images = _run_predict(fn, case)
    return _pairs(preds, labs, images)


def _judge_predict(fn, case, expected):
    _, n, batch_size = case
    preds, labs, probe, images = _run_predict(fn, case)
    if any(probe.modes):
        raise Mismatch("the model ran in train mode: call model.eval() first, or dropout changes the predictions.")
    if any(probe.grad_enabled):
        raise Mismatch("the predictions were made with gradients on: use `with torch.no_grad():`.")
    if len(probe.modes) > len(range(0, n, batch_size)):
        raise Mismatch("the model ran over the test set more than once: one pass gives both the predictions and "
                       "the labels.")
    if _pairs(preds, labs, images) != expected:  # shipped: the instructor's solution on this case
        raise Mismatch("the predictions and the labels do not line up: take both from the same batches in the same "
                       "pass (a shuffled loader gives a new order every time it is iterated).")


def _cases_predict():
    return [(probe_classifier(), 22, 8)]


ex4 = Exercise(
    4, "predict", points=2, judge=_judge_predict, observe=_observe_predict, cases=_cases_predict,
    hints=[
        "Eval mode and no gradients, one pass over the loader: keep each batch's predicted classes and "
        "its labels, then join the lists.",
        "model.eval() and torch.no_grad(); Tensor.argmax(dim=1) turns each row of logits into a class; "
        "list.append collects one tensor per batch; torch.cat joins a list of tensors into one.",
        "model.eval()\npredictions, labels = [], []\nwith torch.no_grad():\n    for ____ in loader:\n"
        "        predictions.append(____)     # this batch's predicted classes\n"
        "        labels.append(____)\nreturn ____, ____",
    ],
)


# --------------------------------------------------------------- 5: the confusion matrix


def _run_confusion(fn, case):
    preds, labels, k = case
    got = call_answer(fn, preds, labels, k, name="confusion_matrix")
    if not isinstance(got, torch.Tensor):
        raise Mismatch(f"confusion_matrix should return a tensor, got {describe(got)}.")
    if tuple(got.shape) != (k, k):
        raise Mismatch(f"with num_classes={k} the matrix should be ({k}, {k}), got {tuple(got.shape)}: "
                       "use num_classes, not the largest label you happen to see.")
    if got.dtype != torch.int64:
        raise Mismatch(f"the matrix holds counts: dtype torch.int64, got {got.dtype}.")
    return got


def _judge_confusion(fn, case, want):
    preds, labels, k = case
    got = _run_confusion(fn, case)  # want: shipped, the instructor's solution on this case
    if torch.equal(got, want):
        return
    if torch.equal(got, want.T):
        raise Mismatch("the matrix is transposed: rows are the true classes, columns the predicted ones.")
    if got.sum() != len(labels):
        raise Mismatch(f"the counts add up to {int(got.sum())}, not to the {len(labels)} examples: count each "
                       "(true, predicted) pair once.")
    raise Mismatch("some counts are wrong: entry [i, j] counts the examples of true class i predicted as j.")


def _cases_confusion():
    g = _gen(70)
    labels = torch.randint(0, 4, (30,), generator=g)
    preds = torch.where(torch.rand(30, generator=g) < 0.6, labels, torch.randint(0, 4, (30,), generator=g))
    # and a case where the last class never occurs, in the predictions or in the labels: the size comes from
    # num_classes, not from the largest class seen
    few = torch.tensor([0, 2, 1, 2, 0, 3, 2, 1])
    return [(preds, labels, 4), (torch.tensor([0, 2, 2, 2, 0, 3, 1, 1]), few, 6)]


ex5 = Exercise(
    5, "confusion_matrix", points=2, judge=_judge_confusion, observe=_run_confusion, cases=_cases_confusion,
    hints=[
        "Start from torch.zeros(num_classes, num_classes, dtype=torch.int64) and add 1 at [true, "
        "predicted] for every example; or turn each pair into one number and count them.",
        "Either Tensor.index_put_ with accumulate=True on the zeros (or a loop with += 1), or encode each"
        " (true, predicted) pair as one number from 0 to num_classes² - 1, count the numbers with "
        "torch.bincount(..., minlength=...) and Tensor.reshape the counts into a square.",
        "pairs = ____                 # one number per example, from its (true, predicted) pair\n"
        "counts = torch.bincount(pairs, minlength=____)\nreturn counts.reshape(____, ____)",
    ],
)

EXERCISES = (ex1, ex2, ex3, ex4, ex5)


# --------------------------------------------------------------- stand-ins for unsolved exercises
# The lesson's cells after an exercise use these while it is unsolved (checks.exN.yours_or), so that a learner
# who skips it can go on. None of them is an answer: each fails its exercise's check.


def split_in_order(dataset, val_fraction: float, seed: int = 0):
    """Exercise 1's stand-in: the first part of the data to train on, the rest to validate, not shuffled (the
    exercise asks for a random split; ``seed`` is ignored)."""
    n_val = int(len(dataset) * val_fraction)
    return Subset(dataset, range(len(dataset) - n_val)), Subset(dataset, range(len(dataset) - n_val, len(dataset)))


def last_epoch(history) -> int:
    """Exercise 2's stand-in: the last epoch, which is not the best once the model overfits."""
    return len(history["val_loss"])


class NeverStops:
    """Exercise 3's stand-in: never asks to stop and restores nothing."""

    def __init__(self, patience: int):
        self.patience = patience

    def step(self, val_loss, model) -> bool:
        return False

    def restore(self, model) -> None:
        pass

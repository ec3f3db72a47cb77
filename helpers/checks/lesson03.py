"""Instant checks for lesson 03, losses and activations with torch.nn.functional.

Each judge computes the reference with ``torch.nn.functional`` on the same inputs and
recognises the usual mistakes (softmax before cross-entropy, a sum for a mean,
overflowing exponentials, ``loss.backwards()``...) so it can name them. Graded cells
add hidden cases built in the notebook, ``exN.grade(answer, cases=[case, ...])``,
where one case is:

- ex1 ``softmax``, ex2 ``log_softmax``: ``(logits, dim)``, logits a float tensor;
- ex3 ``cross_entropy``: ``(logits, targets)``, logits (N, C) float, targets (N,) int64
  class indices;
- ex4 ``loss_choices`` (a dict): a list of task names (keys of ``TASKS``) to judge;
- ex5 ``fit_regression``: ``(x, y, steps, lr)``, x (N, d) and y (N, 1) float tensors on
  which SGD with ``lr`` converges within ``steps`` full-batch steps;
- ex6 ``bce_with_logits``: ``(logits, targets)``, float tensors of one shape, targets in [0, 1].

The value answer (ex4) counts as not attempted while it is still ``...``. The rules the prompts
state (no torch softmax in ex1, no F.cross_entropy in ex3, plain SGD in ex5...) are checked while
the answer runs (:mod:`helpers.checks.rules`), and answers that call an earlier exercise's
``softmax`` or ``log_softmax`` run with known-good ones in their place.

Introduced in lesson 03.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from helpers.checks.core import (
    Exercise,
    Mismatch,
    NotAttempted,
    call_answer,
    expect_shape,
    expect_tensor,
    expect_tensor_like,
    values_close,
)
from helpers.checks.rules import call_watched, describe, forbid_calls, known_good, with_globals


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _first_close(got, candidates) -> str | None:
    """The message of the first known mistake, of ``(message, its result)`` pairs, that ``got`` reproduces."""
    if not isinstance(got, torch.Tensor):
        return None
    for message, wrong in candidates:
        if wrong is not None and wrong.shape == got.shape and values_close(got, wrong):
            return message
    return None


def _attempt(compute):
    """A known mistake's result, or None where that mistake cannot broadcast on this input."""
    try:
        return compute()
    except RuntimeError:
        return None


SOFTMAX_BEFORE_CE = ("softmax applied before the cross-entropy: F.cross_entropy and nn.CrossEntropyLoss take "
                     "raw logits and apply log_softmax themselves, so a softmax first squashes the scores twice")


# Each exercise is judged on its own: an answer that calls an earlier exercise's function by its
# name (cross_entropy calling log_softmax, say) runs with a known-good one in its place.
_EARLIER = {
    "softmax": known_good(lambda logits, dim=-1: F.softmax(logits, dim)),
    "log_softmax": known_good(lambda logits, dim=-1: F.log_softmax(logits, dim)),
}


def _on_its_own(fn, *earlier):
    return with_globals(fn, {name: _EARLIER[name] for name in earlier})


_SOFTMAXES = ("softmax", "_softmax", "special_softmax")
_LOG_SOFTMAXES = ("log_softmax", "_log_softmax", "special_log_softmax")
NO_SOFTMAX_CALL = ("the exercise asks for softmax from scratch, with exp, sum and amax: don't call torch.softmax, "
                   "F.softmax, x.softmax() or nn.Softmax (nor log_softmax).")
NO_LOG_SOFTMAX_CALL = ("the exercise asks for log_softmax from scratch: don't call torch.log_softmax, F.log_softmax, "
                       "x.log_softmax() or nn.LogSoftmax (nor a softmax); exp, sum, amax, log and logsumexp are fine.")


# --------------------------------------------------------------- 1 and 2: softmax, log_softmax


def _reduce_error(message: str) -> str | None:
    if "return_types" in message:
        return ("x.max(dim) returns (values, indices): use x.amax(dim, keepdim=True) or "
                "x.max(dim, keepdim=True).values.")
    if "must match the size" in message:
        return "Reduce with keepdim=True, so that the max and the sum broadcast back along dim."
    return None


def _softmax_advice(got, logits, dim, *, log):
    if not isinstance(got, torch.Tensor) or got.shape != logits.shape:
        return None
    ref = F.log_softmax if log else F.softmax
    if not torch.isfinite(got).all():
        top = got.gather(dim, logits.argmax(dim, keepdim=True))
        if log and not torch.isnan(got).any() and torch.isfinite(top).all():
            return ("log(softmax(x)) underflows: the softmax of a very negative logit rounds to 0 and "
                    "log(0) = -inf. Compute (x - m) - log(sum(exp(x - m))) directly, with m the max along dim.")
        return ("there are nan or inf values: exp(1000) overflows to inf (and inf / inf is nan). Subtract the "
                "maximum of each slice along dim, x.amax(dim, keepdim=True), before exp.")
    dim = dim % logits.dim()
    shifted = logits - logits.amax(dim, keepdim=True)
    e = shifted.exp()
    candidates = [(f"you normalised along dim={d}, not along the dim argument ({dim})"
                   + (": don't hard-code the dimension." if d == logits.dim() - 1 else "."), ref(logits, d))
                  for d in range(logits.dim()) if d != dim]
    candidates += [
        ("the sum needs keepdim=True: without it, it broadcasts against the wrong dimension.",
         _attempt(lambda: e / e.sum(dim) if not log else shifted - e.sum(dim).log())),
        ("the max needs keepdim=True: without it, it broadcasts against the wrong dimension.",
         _attempt(lambda: ref(logits - logits.amax(dim), dim))),
        ("that is softmax; log_softmax is its logarithm, computed stably.", F.softmax(logits, dim)) if log
        else ("that is log_softmax; softmax is exp(x - m) / sum(exp(x - m)).", F.log_softmax(logits, dim)),
    ]
    return _first_close(got, candidates) or (
        "each slice along dim should be x - log(sum(exp(x))) over that slice." if log
        else "each slice along dim should be exp(x) / sum(exp(x)) over that slice.")


def _judge_softmax(fn, case, *, log=False):
    logits, dim = case
    name = "log_softmax" if log else "softmax"
    expected = (F.log_softmax if log else F.softmax)(logits, dim)
    answer = _on_its_own(fn, "softmax") if log else fn
    got, calls = call_watched(answer, logits, dim, name=name, arg_names=("logits",), explain=_reduce_error)
    forbid_calls(calls, dict.fromkeys(_SOFTMAXES + _LOG_SOFTMAXES, NO_LOG_SOFTMAX_CALL if log else NO_SOFTMAX_CALL))
    expect_tensor_like(got, expected, shape_advice=lambda *_: "keep the input's shape: normalise, don't reduce.",
                       value_advice=_softmax_advice(got, logits, dim, log=log))


def _cases_softmax():
    g = _gen(31)
    return [(torch.randn(4, 5, generator=g) * 3, -1), (torch.randn(2, 3, 4, generator=g), 1),
            (torch.randn(3, 3, generator=g) * 2, -1), (torch.tensor([[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0]]), -1),
            (torch.randn(4, 3, generator=g), 0), (torch.randn(2, 3, 4, generator=g), -1)]  # any dim, not only 1


ex1 = Exercise(
    1, "softmax", points=2, judge=_judge_softmax, cases=_cases_softmax,
    hints=[
        "softmax(x) = exp(x) / sum(exp(x)) along dim. Subtracting the same number from every entry of a "
        "slice does not change the result, but it keeps exp from overflowing.",
        "Tensor.amax(dim, keepdim=True) for the largest entry of each slice, Tensor.exp(), and "
        "Tensor.sum(dim, keepdim=True); keepdim=True leaves a dimension of size 1 that broadcasts back "
        "along dim. Not torch.softmax, F.softmax or nn.Softmax.",
        "shifted = logits - ____      # the max along dim, keepdim=True\ne = ____.exp()\nreturn e / ____",
    ],
)

ex2 = Exercise(
    2, "log_softmax", points=2, judge=lambda fn, case: _judge_softmax(fn, case, log=True), cases=_cases_softmax,
    hints=[
        "log(exp(a) / s) = a - log(s): never take the log of a probability that may have rounded to 0.",
        "Tensor.amax(dim, keepdim=True) to shift the logits, then Tensor.exp(), .sum(dim, keepdim=True) "
        "and .log(), or torch.logsumexp. Not torch.log_softmax, F.log_softmax or nn.LogSoftmax.",
        "z = logits - ____            # shift by the max along dim\n"
        "log_sum = ____               # log of the sum of exp(z) along dim, keepdim=True\n"
        "return ____ - ____",
    ],
)


# --------------------------------------------------------------- 3: cross-entropy

ONE_HOT = ("targets are class indices of shape (N,), not one-hot vectors: pick each row's log-probability with "
           "logp[torch.arange(N), targets] (or gather)")


NO_CE_CALL = ("the exercise asks you to build the loss from log-probabilities: don't call F.cross_entropy or "
              "nn.CrossEntropyLoss (torch.logsumexp, F.log_softmax or your log_softmax are fine).")


def _ce_shape_advice(n):
    def advice(have, want):
        if have == (n,):
            return "that is one loss per sample: average them into a single number with .mean()."
        if have == (n, n):
            return "logp[:, targets] picks every target for every row; use logp[torch.arange(N), targets]."
        return "the loss is a single number (a 0-dimensional tensor)."
    return advice


def _ce_advice(got, logits, targets):
    if not isinstance(got, torch.Tensor) or got.shape != ():
        return None
    if not torch.isfinite(got):
        return ("your loss is inf or nan: log(softmax(x)) rounds to log(0) for a very unlikely target, and exp "
                "overflows for large logits. Use log_softmax computed stably (the log-sum-exp trick).")
    rows = torch.arange(len(targets))
    logp, p = F.log_softmax(logits, 1), F.softmax(logits, 1)
    return _first_close(got, [
        (SOFTMAX_BEFORE_CE + ".", F.cross_entropy(p, targets)),
        ("you summed the per-sample losses: F.cross_entropy averages them (reduction='mean').",
         F.cross_entropy(logits, targets, reduction="sum")),
        ("you used probabilities, not log-probabilities: the loss is -log p(target).", -p[rows, targets].mean()),
        ("you took -logits[target] without log_softmax: each row also needs its log(sum(exp(logits))).",
         -logits[rows, targets].mean()),
        (ONE_HOT + ".", _attempt(lambda: -(targets * logp).sum(1).mean())),
        ("logp[:, targets] picks every target for every row: use logp[torch.arange(N), targets].",
         -logp[:, targets].mean()),
        ("you averaged over the classes too: sum over classes, average over samples only.",
         F.cross_entropy(logits, targets) / logits.shape[1]),
    ]) or "the loss is the mean over samples of -log_softmax(logits)[i, targets[i]]."


def _one_number(got, expected):
    """A loss in a one-element tensor of any shape is the same number as a 0-dimensional one."""
    if isinstance(got, torch.Tensor) and expected.dim() == 0 and got.numel() == 1:
        return got.reshape(())
    return got


def _judge_ce(fn, case):
    logits, targets = case
    expected = F.cross_entropy(logits, targets)
    got, calls = call_watched(
        _on_its_own(fn, "softmax", "log_softmax"), logits, targets, name="cross_entropy",
        arg_names=("logits", "targets"), differentiable=(0,),
        explain=lambda m: ONE_HOT[0].upper() + ONE_HOT[1:] + "." if "must match the size" in m else None)
    forbid_calls(calls, dict.fromkeys(("cross_entropy", "cross_entropy_loss"), NO_CE_CALL))
    got = _one_number(got, expected)
    expect_tensor_like(got, expected, shape_advice=_ce_shape_advice(len(targets)),
                       value_advice=_ce_advice(got, logits, targets))


def _cases_ce():
    g = _gen(33)
    return [(torch.randn(5, 3, generator=g) * 2, torch.tensor([0, 2, 1, 1, 0])),
            (torch.tensor([[1000.0, 0.0, -1000.0], [0.0, 0.0, 0.0], [-5.0, 5.0, 0.0]]), torch.tensor([2, 0, 1]))]


ex3 = Exercise(
    3, "cross_entropy", points=3, judge=_judge_ce, cases=_cases_ce,
    hints=[
        "Cross-entropy is -log p(correct class), averaged over the batch, with p the softmax of the "
        "logits. Work in log space from the start.",
        "Log-probabilities along dim=1: torch.logsumexp (or F.log_softmax, or your log_softmax). Pick row"
        " i's entry targets[i] by indexing with torch.arange(N) and targets (or Tensor.gather), then "
        ".mean(). Not F.cross_entropy or nn.CrossEntropyLoss.",
        "logp = ____                  # (N, C) log-probabilities\n"
        "picked = logp[____, ____]    # (N,): each row's log-probability of its target\nreturn ____",
    ],
)


# --------------------------------------------------------------- 4: choosing a loss

TASKS = {
    "house_price": "predict the sale price of a house from 12 numeric features",
    "digit": "classify a 28×28 image as exactly one of the digits 0 to 9",
    "tags": "tag a photo with any of 20 tags (beach, dog, night, ...): several can apply at once",
    "events_per_hour": "predict how many times (0, 1, 2, ...) an event happens in an hour, as a Poisson count",
}
LOSSES = ("mse_loss", "l1_loss", "cross_entropy", "nll_loss", "binary_cross_entropy",
          "binary_cross_entropy_with_logits", "poisson_nll_loss")
OUTPUTS = ("none", "softmax", "log_softmax", "sigmoid", "exp", "relu")
# Every pair that computes the right loss for the task: log_softmax before cross_entropy changes nothing
# (log_softmax of log-probabilities is themselves), and sigmoid with binary_cross_entropy is the same loss
# as binary_cross_entropy_with_logits on paper (section 6 shows why the latter is safer).
_RIGHT = {"house_price": {("mse_loss", "none"), ("l1_loss", "none")},
          "digit": {("cross_entropy", "none"), ("cross_entropy", "log_softmax"), ("nll_loss", "log_softmax")},
          "tags": {("binary_cross_entropy_with_logits", "none"), ("binary_cross_entropy", "sigmoid")},
          "events_per_hour": {("poisson_nll_loss", "none")}}
_WHY = {
    "house_price": "a price is one unbounded real number: a regression loss, with no activation squashing the output.",
    "digit": "exactly one of 10 classes is right, so the classes compete: a multi-class loss.",
    "tags": "tags are not exclusive, so a softmax that makes them compete is wrong: each tag is its own yes/no "
            "question, and the stable loss for that takes raw scores.",
    "events_per_hour": "a Poisson count's loss compares the count with a rate, and by default it takes the log "
                       "of the rate, which a raw output can be.",
}


def _choice_advice(task, loss, out):
    if (loss, out) == ("cross_entropy", "softmax"):
        return SOFTMAX_BEFORE_CE + "."
    if loss == "nll_loss" and out != "log_softmax":
        return "nll_loss expects log-probabilities, so the output must be log_softmax."
    if loss.endswith("_with_logits") and out == "sigmoid":
        return "binary_cross_entropy_with_logits applies the sigmoid itself: a sigmoid before it is applied twice."
    if loss == "binary_cross_entropy" and out != "sigmoid":
        return "binary_cross_entropy expects probabilities in [0, 1], so the output must be a sigmoid."
    if (loss, out) == ("poisson_nll_loss", "exp"):
        return "poisson_nll_loss(log_input=True), the default, takes the log of the rate and applies exp itself."
    return _WHY[task]


def _bare_name(text: str) -> str:
    """ "F.mse_loss", "torch.nn.functional.mse_loss" and " MSE_loss " all name mse_loss."""
    text = text.strip().lower()
    for prefix in ("torch.nn.functional.", "nn.functional.", "torch.", "f."):
        text = text.removeprefix(prefix)
    return text.removesuffix("()")


def _judge_choices(answer, tasks):
    if answer is Ellipsis:
        raise NotAttempted()
    if not isinstance(answer, dict):
        raise Mismatch(f"loss_choices should be a dict from task name to (loss, output), got {describe(answer)}.")
    if missing := sorted(set(TASKS) - set(answer)):
        raise Mismatch(f"loss_choices has no entry for {', '.join(missing)}.")
    if extra := sorted(set(answer) - set(TASKS)):
        raise Mismatch(f"{', '.join(map(str, extra))} is not a task: use the keys {', '.join(TASKS)}.")
    for task in tasks:
        pair = answer[task]
        if isinstance(pair, (tuple, list)) and len(pair) == 2 and pair[1] is None:
            pair = (pair[0], "none")  # None for "no activation" is clear enough
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(isinstance(s, str) for s in pair)):
            raise Mismatch(f"loss_choices[{task!r}] should be a pair of strings (loss, output), got {describe(pair)}.")
        loss, out = (_bare_name(s) for s in pair)
        if loss not in LOSSES:
            raise Mismatch(f"{pair[0]!r} is not one of the loss names: {', '.join(LOSSES)}.")
        if out not in OUTPUTS:
            raise Mismatch(f"{pair[1]!r} is not one of the output activations: {', '.join(OUTPUTS)}.")
        if (loss, out) not in _RIGHT[task]:
            raise Mismatch(f"{task}: {_choice_advice(task, loss, out)}")


ex4 = Exercise(
    4, "loss_choices", points=2, judge=_judge_choices, cases=lambda: [list(TASKS)], needs_callable=False,
    hints=[
        "Ask of each target: a real number, one class out of many, several yes/no answers, or a count?",
        "Classification losses in torch.nn.functional take raw scores (logits) and apply the softmax or "
        "sigmoid themselves; a count's Poisson loss takes the log of the rate.",
        "loss_choices = {\n    \"house_price\": (____, ____),\n    \"digit\": (____, ____),\n"
        "    \"tags\": (____, ____),\n    \"events_per_hour\": (____, ____),\n}",
    ],
)


# --------------------------------------------------------------- 5: a training loop

NO_ZERO_GRAD = ("the gradients pile up from step to step: call optimizer.zero_grad() in every step, before "
                "loss.backward()")
SOFTMAX_REGRESSION = ("the gradients are all zero: a softmax over a single output is always 1, so nothing can "
                      "be learned; a regression output needs no activation")


@contextlib.contextmanager
def _watch_steps():
    """Note, at every optimizer.step(), the optimizer used and whether .grad holds more than the last backward gave."""
    seen, incoming, handles = {"steps": 0, "piled_up": False, "all_zero": True, "optimizers": []}, {}, []

    def record(key):
        return lambda grad: incoming.__setitem__(key, grad.detach().clone())

    def before_step(optimizer, args, kwargs):
        seen["steps"] += 1
        seen["optimizers"].append(optimizer)
        for p in (p for group in optimizer.param_groups for p in group["params"] if p.grad is not None):
            if id(p) not in incoming:  # from now on, record each gradient that backward() delivers
                incoming[id(p)] = None
                handles.append(p.register_hook(record(id(p))))
            elif incoming[id(p)] is not None and not torch.allclose(p.grad, incoming[id(p)], equal_nan=True):
                seen["piled_up"] = True
            seen["all_zero"] &= not bool(p.grad.any())

    handles.append(register_optimizer_step_pre_hook(before_step))
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


def _sgd_rules(seen, steps, lr):
    """The prompt fixes plain SGD on the model's parameters with the given lr, and `steps` full-batch steps."""
    if not seen["optimizers"]:
        raise Mismatch("fit_regression never called optimizer.step(): the exercise asks for torch.optim.SGD "
                       "on the model's parameters with the given lr, stepped once per pass over the data.")
    for optimizer in seen["optimizers"]:
        if not isinstance(optimizer, torch.optim.SGD):
            raise Mismatch(f"the exercise asks for plain SGD (torch.optim.SGD), "
                           f"not {type(optimizer).__name__}.")
        for group in optimizer.param_groups:
            if not math.isclose(float(group["lr"]), lr, rel_tol=1e-9):
                raise Mismatch(f"the optimizer's learning rate is {group['lr']}: use the lr argument given to "
                               "fit_regression.")
            if group.get("momentum", 0) or group.get("nesterov", False) or group.get("weight_decay", 0):
                raise Mismatch("the exercise asks for plain SGD: no momentum or weight_decay, only lr=lr.")
    if seen["steps"] != steps:
        raise Mismatch(f"fit_regression took {seen['steps']} optimizer steps, but the exercise asks for {steps}: "
                       "one step per pass over the whole data set (batch_size=len(x) if you use a DataLoader).")


def _fit_error(message: str) -> str | None:
    if "backwards" in message:
        return "The method is loss.backward(), without an s."
    if "does not require grad" in message:
        return ("The loss does not depend on the parameters: compute it from model(x), outside torch.no_grad(), "
                "without .detach() or .item().")
    return None


def _judge_fit(fn, case):
    x, y, steps, lr = case
    with _watch_steps() as seen, torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the learner's nn.Linear starts from the same weights every time
        model = call_answer(fn, x, y, steps, lr, name="fit_regression", explain=_fit_error)
    if not isinstance(model, nn.Module):
        raise Mismatch(f"fit_regression should return the trained model (an nn.Module), got {describe(model)}.")
    with torch.no_grad():
        pred = expect_tensor(call_answer(model, x, name="model"), name="model(x)")
    expect_shape(pred, y.shape, name="model(x)", advice=lambda *_: "one output per sample: nn.Linear(d, 1).")
    if seen["piled_up"]:
        raise Mismatch(NO_ZERO_GRAD + ".")
    if (seen["steps"] and seen["all_zero"]) or torch.allclose(pred, torch.ones_like(pred)):
        raise Mismatch(SOFTMAX_REGRESSION + ".")
    _sgd_rules(seen, steps, lr)
    ones = torch.ones(len(x), 1, dtype=torch.float64)
    best = torch.linalg.lstsq(torch.cat([x.double(), ones], 1), y.double()).solution
    best_pred = torch.cat([x.double(), ones], 1) @ best
    loss, best_loss = F.mse_loss(pred.double(), y.double()).item(), F.mse_loss(best_pred, y.double()).item()
    if not math.isfinite(loss):
        raise Mismatch("the loss diverged to inf or nan: use the given lr and the mean squared error (F.mse_loss).")
    if loss > best_loss * 1.02 + 1e-4 or not values_close(pred, best_pred, rtol=1e-2, atol=1e-2):
        raise Mismatch(f"the trained model's mean squared error is {loss:.4g}, too far above the least-squares "
                       "fit: train for all the steps with the given lr, zero the gradients every step, and "
                       "use F.mse_loss on the raw outputs (no softmax or sigmoid).")


def _cases_fit():
    g = _gen(35)
    x = torch.randn(64, 3, generator=g)
    y = x @ torch.tensor([[1.5], [-2.0], [0.5]]) + 0.3 + 0.1 * torch.randn(64, 1, generator=g)
    return [(x, y, 200, 0.1)]


ex5 = Exercise(
    5, "fit_regression", points=3, judge=_judge_fit, cases=_cases_fit,
    hints=[
        "Every step: zero the gradients, compute the loss from the model's output, backward, step.",
        "nn.Linear(in_features, 1) is the model (x.shape[1] is in_features); torch.optim.SGD over "
        "model.parameters() with the learning rate lr, created once before the loop; F.mse_loss; then "
        "optimizer.zero_grad(), loss.backward(), optimizer.step() in every step.",
        "model = nn.Linear(____, 1)\noptimizer = torch.optim.SGD(____, lr=____)\nfor _ in range(____):\n"
        "    optimizer.zero_grad()\n    loss = ____\n    loss.backward()\n    optimizer.step()\n"
        "return model",
    ],
)


# --------------------------------------------------------------- 6: binary cross-entropy from logits


def _bce_advice(got, logits, targets):
    if not isinstance(got, torch.Tensor) or got.shape != ():
        return None
    if not torch.isfinite(got):
        return ("your loss is inf or nan: sigmoid(-1000) rounds to 0 and log(0) = -inf, and exp(1000) overflows. "
                "Use the stable form max(x, 0) - x·t + log(1 + exp(-|x|)).")
    ref = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    positives = F.softplus(-logits) * targets
    return _first_close(got, [
        ("you summed the losses: average them over all elements (reduction='mean').", ref.sum()),
        ("the sign is flipped: the loss is -[t·log σ(x) + (1 - t)·log(1 - σ(x))].", -ref.mean()),
        ("you left out the (1 - t)·log(1 - σ(x)) term, for the targets that are 0.", positives.mean()),
    ]) or "the loss is the mean over all elements of -[t·log σ(x) + (1 - t)·log(1 - σ(x))]."


NO_BCE_CALL = ("the exercise asks you to write the loss yourself: don't call F.binary_cross_entropy_with_logits, "
               "nn.BCEWithLogitsLoss or F.binary_cross_entropy (F.softplus, F.logsigmoid, torch.log1p and "
               "torch.exp are fine).")


def _judge_bce(fn, case):
    logits, targets = case
    expected = F.binary_cross_entropy_with_logits(logits, targets)
    got, calls = call_watched(_on_its_own(fn, "softmax", "log_softmax"), logits, targets, name="bce_with_logits",
                              arg_names=("logits", "targets"), differentiable=(0,))
    forbid_calls(calls, dict.fromkeys(("binary_cross_entropy_with_logits", "binary_cross_entropy"), NO_BCE_CALL))
    got = _one_number(got, expected)
    expect_tensor_like(got, expected, value_advice=_bce_advice(got, logits, targets),
                       shape_advice=lambda *_: "the loss is a single number: average over every element.")


def _cases_bce():
    g = _gen(36)
    return [(torch.randn(4, 3, generator=g) * 3, torch.randint(0, 2, (4, 3), generator=g).float()),
            (torch.tensor([[1000.0, -1000.0, 0.5], [-3.0, 20.0, 0.0]]),
             torch.tensor([[0.0, 1.0, 1.0], [0.0, 1.0, 0.0]]))]


ex6 = Exercise(
    6, "bce_with_logits", points=2, judge=_judge_bce, cases=_cases_bce,
    hints=[
        "Write the loss with log σ(x) and log(1 - σ(x)) in terms of x: both are -softplus of ±x, and "
        "softplus(z) = log(1 + exp(z)) can be computed without overflow.",
        "Per element the loss is softplus(x) - t·x. F.softplus computes softplus stably; by hand, max(z, "
        "0) + log1p(exp(-|z|)) with Tensor.clamp(min=0), torch.log1p, torch.exp and Tensor.abs(). Then "
        ".mean(). Not F.binary_cross_entropy_with_logits, nn.BCEWithLogitsLoss or F.binary_cross_entropy.",
        "per_element = ____ - logits * targets    # softplus(logits), computed without overflow\n"
        "return ____",
    ],
)

EXERCISES = (ex1, ex2, ex3, ex4, ex5, ex6)

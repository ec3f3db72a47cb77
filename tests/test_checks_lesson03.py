"""Lesson 03's checks: right losses pass, stubs are not attempted, and each typical mistake is named."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers.checks import lesson03 as L
from tests.conftest import assert_correct, assert_incorrect, assert_not_attempted
from tests.hidden_tools import run_graded

LESSON = "03_losses"


def stub(*args):
    raise NotImplementedError()


def _gen():
    return torch.Generator().manual_seed(0)


# ------------------------------------------------------------------ exercises 1 and 2


def softmax(logits, dim=-1):
    e = (logits - logits.amax(dim, keepdim=True)).exp()
    return e / e.sum(dim, keepdim=True)


def log_softmax(logits, dim=-1):
    z = logits - logits.amax(dim, keepdim=True)
    return z - z.exp().sum(dim, keepdim=True).log()


def test_ex1_softmax():
    assert_correct(L.ex1.check(softmax))
    assert_incorrect(L.ex1.check(lambda x, dim: F.softmax(x, dim)), "from scratch", "F.softmax")
    assert_not_attempted(L.ex1.check(stub))
    assert_incorrect(L.ex1.check(lambda x, dim: x.exp() / x.exp().sum(dim, keepdim=True)), "nan or inf", "maximum")
    assert_incorrect(L.ex1.check(lambda x, dim: (x - x.max()).exp() / (x - x.max()).exp().sum(dim, keepdim=True)),
                     "nan or inf", "each slice")
    assert_incorrect(L.ex1.check(lambda x, dim: softmax(x, -1)), "dim argument", "hard-code")
    assert_incorrect(L.ex1.check(lambda x, dim: softmax(x, 0)), "along dim=0")
    assert_incorrect(L.ex1.check(lambda x, dim: softmax(x, 1)), "along dim=1", "hard-code")  # right on 2-D, dim=-1
    assert_incorrect(L.ex1.check(lambda x, dim: x.exp() / x.exp().sum(dim)), "keepdim=True")
    assert_incorrect(L.ex1.check(lambda x, dim: softmax(x - x.amax(dim), dim)), "keepdim=True")
    assert_incorrect(L.ex1.check(lambda x, dim: (x - x.max(dim, keepdim=True)).exp()), "values, indices")
    assert_incorrect(L.ex1.check(log_softmax), "that is log_softmax")
    assert_incorrect(L.ex1.check(lambda x, dim: softmax(x, dim).sum(dim)), "keep the input's shape")
    with pytest.raises(TypeError, match="without the parentheses"):
        L.ex1.check(softmax(torch.ones(3)))


def test_ex2_log_softmax():
    assert_correct(L.ex2.check(log_softmax))
    assert_correct(L.ex2.check(lambda x, dim: x - x.logsumexp(dim, keepdim=True)))
    assert_not_attempted(L.ex2.check(stub))
    assert_incorrect(L.ex2.check(lambda x, dim: softmax(x, dim).log()), "log(0) = -inf", "underflows")
    assert_incorrect(L.ex2.check(lambda x, dim: x - x.exp().sum(dim, keepdim=True).log()), "overflows", "maximum")
    assert_incorrect(L.ex2.check(lambda x, dim: (x.exp() / x.exp().sum(dim, keepdim=True)).log()), "nan or inf")
    assert_incorrect(L.ex2.check(softmax), "that is softmax")
    assert_incorrect(L.ex2.check(lambda x, dim: log_softmax(x, -1)), "dim argument")
    with pytest.raises(TypeError, match="without the parentheses"):
        L.ex2.check(torch.ones(3))


def test_ex1_ex2_hidden_cases():
    g = _gen()
    hidden = [(torch.tensor([[-2000.0, -2001.0], [5.0, 5.0]]), 1), (torch.randn(3, 4, 2, generator=g) * 50, 0)]
    L.ex1.grade(softmax, cases=hidden)
    L.ex2.grade(log_softmax, cases=hidden)
    with pytest.raises(AssertionError, match="nan or inf"):  # a global max underflows the far-away row
        L.ex1.grade(lambda x, dim: (x - x.max()).exp() / (x - x.max()).exp().sum(dim, keepdim=True), cases=hidden)
    with pytest.raises(AssertionError, match="dim argument"):
        L.ex2.grade(lambda x, dim: log_softmax(x, -1), cases=hidden[1:])


# ------------------------------------------------------------------ exercise 3


def cross_entropy(logits, targets):
    return -log_softmax(logits, dim=1)[torch.arange(len(targets)), targets].mean()


def test_ex3_cross_entropy():
    rows = lambda t: torch.arange(len(t))
    assert_correct(L.ex3.check(cross_entropy))
    assert_correct(L.ex3.check(lambda x, t: F.nll_loss(log_softmax(x, 1), t)))
    assert_not_attempted(L.ex3.check(stub))
    assert_incorrect(L.ex3.check(lambda x, t: -(x.softmax(1) - x.logsumexp(1, keepdim=True))[rows(t), t].mean()),
                     "right shape")
    assert_incorrect(L.ex3.check(lambda x, t: -log_softmax(x, 1)[rows(t), t].sum()), "summed", "mean")
    assert_incorrect(L.ex3.check(lambda x, t: -softmax(x, 1)[rows(t), t].mean()), "probabilities")
    assert_incorrect(L.ex3.check(lambda x, t: -(t * log_softmax(x, 1)).sum(1).mean()), "one-hot", "class indices")
    assert_incorrect(L.ex3.check(lambda x, t: -log_softmax(x, 1)[rows(t), t]), "one loss per sample", ".mean()")
    assert_incorrect(L.ex3.check(lambda x, t: -log_softmax(x, 1)[:, t].mean()), "torch.arange(N), targets")
    assert_incorrect(L.ex3.check(lambda x, t: -log_softmax(x, 1)[:, t]), "shape ()", "torch.arange(N), targets")
    assert_incorrect(L.ex3.check(lambda x, t: -softmax(x, 1)[rows(t), t].log().mean()), "inf or nan", "log(0)")
    assert_incorrect(L.ex3.check(lambda x, t: -x[rows(t), t].mean()), "without log_softmax")
    assert_incorrect(L.ex3.check(lambda x, t: (-log_softmax(x, 1)[rows(t), t]).mean().item()), "torch.Tensor")
    with pytest.raises(TypeError, match="without the parentheses"):
        L.ex3.check(3.0)


def test_ex3_hidden_square_case_catches_one_hot_broadcasting():
    g = _gen()
    hidden = [(torch.randn(4, 4, generator=g), torch.tensor([3, 0, 0, 2])),
              (torch.randn(1, 7, generator=g) * 30, torch.tensor([6]))]
    L.ex3.grade(cross_entropy, cases=hidden)
    with pytest.raises(AssertionError, match="one-hot"):
        L.ex3.grade(lambda x, t: -(t * log_softmax(x, 1)).sum(1).mean(), cases=hidden)


# ------------------------------------------------------------------ exercise 4


RIGHT = {"house_price": ("mse_loss", "none"), "digit": ("cross_entropy", "none"),
         "tags": ("binary_cross_entropy_with_logits", "none"), "events_per_hour": ("poisson_nll_loss", "none")}


def test_ex4_loss_choices():
    assert_correct(L.ex4.check(RIGHT))
    assert_correct(L.ex4.check({**RIGHT, "digit": ["F.nll_loss", "log_softmax"], "house_price": ("L1_loss", "none")}))
    assert_not_attempted(L.ex4.check(...))
    assert_incorrect(L.ex4.check({**RIGHT, "digit": ("cross_entropy", "softmax")}), "digit", "softmax applied before")
    assert_incorrect(L.ex4.check({**RIGHT, "digit": ("nll_loss", "softmax")}), "log-probabilities")
    assert_incorrect(L.ex4.check({**RIGHT, "digit": ("binary_cross_entropy_with_logits", "none")}), "compete")
    assert_incorrect(L.ex4.check({**RIGHT, "tags": ("cross_entropy", "none")}), "tags", "not exclusive")
    assert_correct(L.ex4.check({**RIGHT, "tags": ("binary_cross_entropy", "sigmoid")}))
    assert_correct(L.ex4.check({**RIGHT, "digit": ("cross_entropy", "log_softmax")}))
    assert_correct(L.ex4.check({**RIGHT, "digit": ("torch.nn.functional.cross_entropy", None)}))
    assert_incorrect(L.ex4.check({**RIGHT, "tags": ("binary_cross_entropy", "none")}), "probabilities", "sigmoid")
    assert_incorrect(L.ex4.check({**RIGHT, "tags": ("binary_cross_entropy_with_logits", "sigmoid")}), "twice")
    assert_incorrect(L.ex4.check({**RIGHT, "house_price": ("mse_loss", "softmax")}), "no activation")
    assert_incorrect(L.ex4.check({**RIGHT, "events_per_hour": ("mse_loss", "none")}), "poisson count")
    assert_incorrect(L.ex4.check({**RIGHT, "events_per_hour": ("poisson_nll_loss", "exp")}), "log_input=True")
    assert_incorrect(L.ex4.check({**RIGHT, "house_price": ("MSELoss", "none")}), "not one of the loss names")
    assert_incorrect(L.ex4.check({**RIGHT, "house_price": ("mse_loss", "linear")}), "not one of the output")
    assert_incorrect(L.ex4.check({**RIGHT, "house_price": "mse_loss"}), "pair of strings")
    assert_incorrect(L.ex4.check({k: v for k, v in RIGHT.items() if k != "tags"}), "no entry for tags")
    assert_incorrect(L.ex4.check({**RIGHT, "price": ("mse_loss", "none")}), "price is not a task")
    assert_incorrect(L.ex4.check(list(RIGHT.values())), "a dict", "a list")
    L.ex4.grade(RIGHT, cases=[["digit", "tags"]])
    with pytest.raises(AssertionError, match="softmax applied before"):
        L.ex4.grade({**RIGHT, "digit": ("cross_entropy", "softmax")}, cases=[["digit"]])


# ------------------------------------------------------------------ exercise 5


def fit_regression(x, y, steps, lr, *, zero=True, act=None, backward="backward", keep=None):
    model = nn.Linear(x.shape[1], 1)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(keep or steps):
        if zero:
            opt.zero_grad()
        out = model(x)
        loss = F.mse_loss(act(out) if act else out, y)
        getattr(loss, backward)()
        opt.step()
    return model


def fit_with_dataloader(x, y, steps, lr):
    model = nn.Linear(x.shape[1], 1)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=len(x))
    for _ in range(steps):
        for xb, yb in loader:
            loss = F.mse_loss(model(xb), yb)
            loss.backward()
            opt.step()
            opt.zero_grad()
    return model


def test_ex5_fit_regression():
    assert_correct(L.ex5.check(fit_regression))
    assert_correct(L.ex5.check(fit_with_dataloader))
    assert_not_attempted(L.ex5.check(stub))
    assert_incorrect(L.ex5.check(lambda *a: fit_regression(*a, backward="backwards")), "backward(), without an s")
    assert_incorrect(L.ex5.check(lambda *a: fit_regression(*a, zero=False)), "pile up", "zero_grad")
    assert_incorrect(L.ex5.check(lambda *a: fit_regression(*a, act=lambda o: o.softmax(dim=1))), "softmax")
    assert_incorrect(L.ex5.check(lambda *a: fit_regression(*a, keep=5)), "took 5 optimizer steps", "200")
    assert_incorrect(L.ex5.check(lambda x, *a: fit_regression(x, *a)(x)), "trained model", "tensor")
    assert_incorrect(L.ex5.check(lambda x, y, s, lr: fit_regression(x, y, s, 10.0)), "learning rate is 10.0")
    assert_incorrect(L.ex5.check(lambda x, y, s, lr: fit_regression(x, y, s, lr * 100)), "use the lr argument")
    with pytest.raises(TypeError, match="without the parentheses"):
        L.ex5.check(nn.Linear(3, 1).weight)


def test_ex5_hidden_case():
    g = _gen()
    x = torch.randn(100, 2, generator=g)
    y = x @ torch.tensor([[-1.0], [3.0]]) - 2 + 0.2 * torch.randn(100, 1, generator=g)
    L.ex5.grade(fit_regression, cases=[(x, y, 300, 0.05)])
    with pytest.raises(AssertionError, match="zero_grad"):
        L.ex5.grade(lambda *a: fit_regression(*a, zero=False), cases=[(x, y, 300, 0.05)])


# ------------------------------------------------------------------ exercise 6


def bce_with_logits(x, t):
    return (x.clamp(min=0) - x * t + torch.log1p(torch.exp(-x.abs()))).mean()


def _naive(x, t):
    p = torch.sigmoid(x)
    return -(t * p.log() + (1 - t) * (1 - p).log())


def test_ex6_bce_with_logits():
    assert_correct(L.ex6.check(bce_with_logits))
    assert_correct(L.ex6.check(lambda x, t: (F.softplus(x) - x * t).mean()))
    assert_not_attempted(L.ex6.check(stub))
    assert_incorrect(L.ex6.check(lambda x, t: _naive(x, t).mean()), "inf or nan", "sigmoid(-1000)")
    assert_incorrect(L.ex6.check(lambda x, t: (torch.log1p(x.exp()) - x * t).mean()), "inf or nan")
    assert_incorrect(L.ex6.check(lambda x, t: bce_with_logits(x, t) * t.numel()), "summed")
    assert_incorrect(L.ex6.check(lambda x, t: -bce_with_logits(x, t)), "sign")
    assert_incorrect(L.ex6.check(lambda x, t: (F.softplus(-x) * t).mean()), "(1 - t)")
    assert_incorrect(L.ex6.check(lambda x, t: x.clamp(min=0) - x * t + torch.log1p(torch.exp(-x.abs()))),
                     "single number")
    with pytest.raises(TypeError, match="without the parentheses"):
        L.ex6.check(None)
    g = _gen()
    hidden = [(torch.randn(5, generator=g) * 100, torch.rand(5, generator=g))]  # soft targets
    L.ex6.grade(bce_with_logits, cases=hidden)
    with pytest.raises(AssertionError, match="inf or nan"):
        L.ex6.grade(lambda x, t: _naive(x, t).mean(), cases=hidden)


def test_checking_does_not_move_the_learners_random_numbers():
    state = torch.get_rng_state()
    L.ex5.check(fit_regression)
    assert torch.equal(state, torch.get_rng_state()), "checking must not move the learner's random numbers"


# ------------------------------------------------------------------ rules the prompts state, any alias


def test_ex1_ex2_rule_from_scratch():
    from torch.nn.functional import log_softmax as lsm
    from torch.nn.functional import softmax as sm

    for wrong in (lambda x, dim: sm(x, dim), lambda x, dim: torch.softmax(x, dim), lambda x, dim: x.softmax(dim),
                  lambda x, dim: nn.Softmax(dim)(x), lambda x, dim: getattr(torch, "soft" + "max")(x, dim),
                  lambda x, dim: torch.special.softmax(x, dim), lambda x, dim: F.log_softmax(x, dim).exp()):
        assert_incorrect(L.ex1.check(wrong), "from scratch")
        assert "from scratch" in run_graded(LESSON, "ex1_stable_softmax", L, softmax=wrong)
    for wrong in (lambda x, dim: lsm(x, dim), lambda x, dim: torch.log_softmax(x, dim),
                  lambda x, dim: x.log_softmax(dim), lambda x, dim: nn.LogSoftmax(dim)(x)):
        assert_incorrect(L.ex2.check(wrong), "from scratch", "log_softmax")
        assert "from scratch" in run_graded(LESSON, "ex2_stable_log_softmax", L, log_softmax=wrong)
    right = (softmax, lambda x, dim=-1: (x - x.logsumexp(dim, keepdim=True)).exp(),
             lambda x, dim=-1: torch.exp(x - torch.max(x, dim, keepdim=True).values)
             / torch.exp(x - torch.max(x, dim, keepdim=True).values).sum(dim, keepdim=True))
    for answer in right:
        assert_correct(L.ex1.check(answer))
        assert run_graded(LESSON, "ex1_stable_softmax", L, softmax=answer) is None
    assert run_graded(LESSON, "ex2_stable_log_softmax", L, log_softmax=log_softmax) is None


def notebook_function(source: str, **scope):
    namespace = {"torch": torch, "F": F, "__name__": "__main__", **scope}
    exec(source, namespace)
    return namespace[source.split("def ", 1)[1].split("(", 1)[0]]


CE_WITH_MY_LOG_SOFTMAX = """
def cross_entropy(logits, targets):
    return -log_softmax(logits, dim=1)[torch.arange(len(targets)), targets].mean()
"""


def test_ex3_rule_and_judged_on_its_own():
    from torch.nn.functional import cross_entropy as ce

    for wrong in (lambda x, t: ce(x, t), lambda x, t: nn.CrossEntropyLoss()(x, t),
                  lambda x, t: torch._C._nn.cross_entropy_loss(x, t)):
        assert_incorrect(L.ex3.check(wrong), "don't call F.cross_entropy")
        assert "F.cross_entropy" in run_graded(LESSON, "ex3_cross_entropy", L, cross_entropy=wrong)
    assert_correct(L.ex3.check(lambda x, t: F.nll_loss(F.log_softmax(x, 1), t)))
    # A wrong log_softmax from Exercise 2 (here F.log_softmax, which breaks Exercise 2's rule, and one
    # that overflows) does not cost Exercise 3: its check runs with a known-good log_softmax.
    for broken in (lambda x, dim=-1: F.log_softmax(x, dim), lambda x, dim=-1: (x.exp() / x.exp().sum(dim, True)).log()):
        answer = notebook_function(CE_WITH_MY_LOG_SOFTMAX, log_softmax=broken)
        assert_correct(L.ex3.check(answer))
        assert run_graded(LESSON, "ex3_cross_entropy", L, cross_entropy=answer, log_softmax=broken) is None
    bad_ce = notebook_function(CE_WITH_MY_LOG_SOFTMAX.replace(".mean()", ".sum()"), log_softmax=log_softmax)
    assert_incorrect(L.ex3.check(bad_ce), "summed")


def test_ex4_hidden_test_accepts_every_fitting_pair():
    for digit in (("cross_entropy", "none"), ("cross_entropy", "log_softmax"), ("nll_loss", "log_softmax")):
        for tags in (("binary_cross_entropy_with_logits", "none"), ("binary_cross_entropy", "sigmoid")):
            answer = {**RIGHT, "digit": digit, "tags": tags}
            assert run_graded(LESSON, "ex4_loss_choices", L, loss_choices=answer) is None
    assert "log-probabilities" in run_graded(LESSON, "ex4_loss_choices", L,
                                             loss_choices={**RIGHT, "digit": ("nll_loss", "softmax")})


def _fit_with(make_optimizer, steps_of=lambda s: s):
    def fit(x, y, steps, lr):
        model = nn.Linear(x.shape[1], 1)
        opt = make_optimizer(model.parameters(), lr)
        for _ in range(steps_of(steps)):
            opt.zero_grad()
            F.mse_loss(model(x), y).backward()
            opt.step()
        return model
    return fit


def _fit_by_hand(x, y, steps, lr):
    model = nn.Linear(x.shape[1], 1)
    for _ in range(steps):
        model.zero_grad()
        F.mse_loss(model(x), y).backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= lr * p.grad
    return model


def test_ex5_rule_sgd_with_the_given_lr_and_steps():
    cases = {
        "not Adam": _fit_with(lambda p, lr: torch.optim.Adam(p, lr=lr)),
        "not RMSprop": _fit_with(lambda p, lr: torch.optim.RMSprop(p, lr=lr)),
        "use the lr argument": _fit_with(lambda p, lr: torch.optim.SGD(p, lr=0.2)),
        "no momentum": _fit_with(lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9)),
        "took 201 optimizer steps": _fit_with(lambda p, lr: torch.optim.SGD(p, lr=lr), steps_of=lambda s: s + 1),
        "never called optimizer.step()": _fit_by_hand,
    }
    for words, wrong in cases.items():
        assert_incorrect(L.ex5.check(wrong), words)
        assert run_graded(LESSON, "ex5_fit_regression", L, fit_regression=wrong) is not None
    sequential = _fit_with(lambda p, lr: torch.optim.SGD(p, lr))
    assert_correct(L.ex5.check(sequential))
    assert run_graded(LESSON, "ex5_fit_regression", L, fit_regression=fit_with_dataloader) is None


def test_ex6_rule_write_the_loss_yourself():
    from torch.nn.functional import binary_cross_entropy_with_logits as bce

    for wrong in (lambda x, t: bce(x, t), lambda x, t: nn.BCEWithLogitsLoss()(x, t),
                  lambda x, t: torch.binary_cross_entropy_with_logits(x, t, None, None, 1)):
        assert_incorrect(L.ex6.check(wrong), "write the loss yourself")
        assert "yourself" in run_graded(LESSON, "ex6_bce_with_logits", L, bce_with_logits=wrong)
    logsigmoid = lambda x, t: -(t * F.logsigmoid(x) + (1 - t) * F.logsigmoid(-x)).mean()  # noqa: E731
    assert_correct(L.ex6.check(logsigmoid))
    assert run_graded(LESSON, "ex6_bce_with_logits", L, bce_with_logits=logsigmoid) is None


def test_ex3_ex6_accept_a_loss_in_a_one_element_tensor():
    assert_correct(L.ex3.check(lambda x, t: cross_entropy(x, t).reshape(1)))
    assert_correct(L.ex6.check(lambda x, t: bce_with_logits(x, t).reshape(1, 1)))
    assert_incorrect(L.ex3.check(lambda x, t: cross_entropy(x, t).item()), "torch.Tensor", ".item()")
    assert_incorrect(L.ex6.check(lambda x, t: bce_with_logits(x, t).item()), "torch.Tensor")


def _softmax_in_place(logits, dim=-1):
    logits -= logits.amax(dim, keepdim=True)  # changes the caller's logits
    e = logits.exp()
    return e / e.sum(dim, keepdim=True)


def _log_softmax_in_place(logits, dim=-1):
    logits.sub_(logits.amax(dim, keepdim=True))
    return logits - logits.exp().sum(dim, keepdim=True).log()


def _ce_detached(logits, targets):
    return cross_entropy(logits.detach(), targets)


def _ce_no_grad(logits, targets):
    with torch.no_grad():
        return cross_entropy(logits, targets)


def _bce_breaks_backward(x, t):
    e = torch.exp(-x.abs())  # exp keeps its output for backward...
    e.add_(1.0)  # ...which this overwrites
    return (x.clamp(min=0) - x * t + e.log()).mean()


def test_inputs_changed_in_place_and_losses_without_gradients_are_named():
    assert_incorrect(L.ex1.check(_softmax_in_place), "changed its input logits in place")
    assert "in place" in run_graded(LESSON, "ex1_stable_softmax", L, softmax=_softmax_in_place)
    assert_incorrect(L.ex2.check(_log_softmax_in_place), "changed its input logits in place")
    for wrong in (_ce_detached, _ce_no_grad):
        assert_incorrect(L.ex3.check(wrong), "no gradient flows back")
        assert "no gradient" in run_graded(LESSON, "ex3_cross_entropy", L, cross_entropy=wrong)
    assert_incorrect(L.ex6.check(_bce_breaks_backward), "backward() through bce_with_logits fails")
    assert "backward()" in run_graded(LESSON, "ex6_bce_with_logits", L, bce_with_logits=_bce_breaks_backward)

    def softmax_new_tensors(logits, dim=-1):  # in place, but only on tensors it made itself
        e = (logits - logits.amax(dim, keepdim=True)).exp()
        e = e / e.sum(dim, keepdim=True)
        e.clamp_(min=0)
        return e
    assert_correct(L.ex1.check(softmax_new_tensors))


def test_ex2_messages_are_about_log_softmax():
    result = L.ex2.check(lambda x, dim: log_softmax(x, dim) * 2)
    assert_incorrect(result, "x - log(sum(exp(x)))")
    assert "exp(x) / sum" not in result.message

"""Lesson 03's checks: right losses pass, stubs are not attempted, and each typical mistake is named."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers.checks import lesson03 as L
from tests.conftest import assert_correct, assert_incorrect, assert_not_attempted


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
    assert_correct(L.ex1.check(lambda x, dim: F.softmax(x, dim)))
    assert_not_attempted(L.ex1.check(stub))
    assert_incorrect(L.ex1.check(lambda x, dim: x.exp() / x.exp().sum(dim, keepdim=True)), "nan or inf", "maximum")
    assert_incorrect(L.ex1.check(lambda x, dim: (x - x.max()).exp() / (x - x.max()).exp().sum(dim, keepdim=True)),
                     "nan or inf", "each slice")
    assert_incorrect(L.ex1.check(lambda x, dim: softmax(x, -1)), "dim argument", "hard-code")
    assert_incorrect(L.ex1.check(lambda x, dim: softmax(x, 0)), "along dim=0")
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
    assert_incorrect(L.ex3.check(lambda x, t: F.cross_entropy(softmax(x, 1), t)), "softmax applied before")
    assert_incorrect(L.ex3.check(lambda x, t: nn.CrossEntropyLoss()(x.softmax(1), t)), "softmax applied before")
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
    assert_incorrect(L.ex4.check({**RIGHT, "tags": ("binary_cross_entropy", "sigmoid")}), "stable loss")
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
    assert_incorrect(L.ex5.check(lambda *a: fit_regression(*a, keep=5)), "too far above", "all the steps")
    assert_incorrect(L.ex5.check(lambda x, *a: fit_regression(x, *a)(x)), "trained model", "tensor")
    assert_incorrect(L.ex5.check(lambda x, y, s, lr: fit_regression(x, y, s, 10.0)), "diverged")
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

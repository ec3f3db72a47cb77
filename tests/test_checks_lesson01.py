"""Lesson 01's checks: each accepts a right answer, spots the stub, and names typical mistakes."""

import pytest
import torch

from helpers.checks import lesson01 as L
from tests.conftest import assert_correct, assert_incorrect, assert_not_attempted


def stub(*args):
    raise NotImplementedError()


# ------------------------------------------------------------------ exercise 1


def test_ex1_to_float_pixels():
    assert_correct(L.ex1.check(lambda im: im.float() / 255))
    assert_correct(L.ex1.check(lambda im: im.to(torch.float32).div(255.0)))
    assert_not_attempted(L.ex1.check(stub))
    assert_incorrect(L.ex1.check(lambda im: im // 255), "dtype", "uint8")
    assert_incorrect(L.ex1.check(lambda im: im.double() / 255), "float32")
    assert_incorrect(L.ex1.check(lambda im: im.float()), "divide by 255")
    assert_incorrect(L.ex1.check(lambda im: im.float() / 256), "255, not 256")
    assert_incorrect(L.ex1.check(lambda im: (im.float() / 255).flatten()), "shape")
    assert_incorrect(L.ex1.check(lambda im: (im.float() / 255).numpy()), "torch.Tensor", "numpy")
    assert_incorrect(L.ex1.check(lambda im: None), "return")


# ------------------------------------------------------------------ exercise 2


def test_ex2_standardize_features():
    assert_correct(L.ex2.check(lambda x: (x - x.mean(0)) / x.std(0)))
    assert_correct(L.ex2.check(lambda x: (x - x.mean(dim=0, keepdim=True)) / x.std(dim=0, keepdim=True)))
    assert_not_attempted(L.ex2.check(stub))
    assert_incorrect(L.ex2.check(lambda x: (x - x.mean(1, keepdim=True)) / x.std(1, keepdim=True)),
                     "each row", "dim=0")
    assert_incorrect(L.ex2.check(lambda x: (x - x.mean()) / x.std()), "whole tensor")
    assert_incorrect(L.ex2.check(lambda x: (x - x.mean(0)) / x.std(0, correction=0)), "biased")
    assert_incorrect(L.ex2.check(lambda x: x - x.mean(0)), "did not divide")
    assert_incorrect(L.ex2.check(lambda x: (x - x.mean(1)) / x.std(1)), "dim=0")


# ------------------------------------------------------------------ exercise 3


def test_ex3_linear_forward():
    assert_correct(L.ex3.check(lambda x, w, b: x @ w.T + b))
    assert_correct(L.ex3.check(lambda x, w, b: torch.addmm(b, x, w.t())))
    assert_not_attempted(L.ex3.check(stub))
    assert_incorrect(L.ex3.check(lambda x, w, b: x @ w.T), "bias")
    assert_incorrect(L.ex3.check(lambda x, w, b: x @ w + b), "transpose")
    assert_incorrect(L.ex3.check(lambda x, w, b: x * w + b), "@")
    assert_incorrect(L.ex3.check(lambda x, w, b: (x @ w.T + b).T), "shape (4, 2), got (2, 4)")


def test_ex3_hidden_square_weight_catches_the_missing_transpose():
    g = torch.Generator().manual_seed(0)
    case = (torch.randn(5, 4, generator=g), torch.randn(4, 4, generator=g), torch.randn(4, generator=g))
    L.ex3.grade(lambda x, w, b: x @ w.T + b, cases=[case])
    with pytest.raises(AssertionError, match="transpose"):
        L.ex3.grade(lambda x, w, b: x @ w + b, cases=[case])


# ------------------------------------------------------------------ exercise 4


def test_ex4_flatten_images():
    assert_correct(L.ex4.check(lambda im: im.flatten(start_dim=1)))
    assert_correct(L.ex4.check(lambda im: im.reshape(len(im), -1)))
    assert_not_attempted(L.ex4.check(stub))
    assert_incorrect(L.ex4.check(lambda im: im.flatten()), "whole batch", "start_dim=1")
    assert_incorrect(L.ex4.check(lambda im: im.reshape(-1, im.shape[0])), "shape (8, 784), got (784, 8)")
    assert_incorrect(L.ex4.check(lambda im: im.squeeze(1)), "flatten each image")
    assert_incorrect(L.ex4.check(lambda im: im.transpose(2, 3).reshape(len(im), -1)), "original order")


@pytest.mark.parametrize("wrong, words", [
    (lambda im: im.view(-1, 784), ["hard-coded", "flatten(start_dim=1)"]),
    (lambda im: im.view(len(im), -1), ["contiguous", "reshape"]),
    (lambda im: im.squeeze().flatten(start_dim=1), ["batch dimension disappeared"]),
])
def test_ex4_hidden_cases_catch_shortcuts(wrong, words):
    g = torch.Generator().manual_seed(0)
    hidden = [torch.rand(5, 3, 8, 8, generator=g), torch.rand(4, 1, 28, 28, generator=g).transpose(2, 3),
              torch.rand(1, 1, 28, 28, generator=g)]
    L.ex4.grade(lambda im: im.flatten(1), cases=hidden)
    with pytest.raises(AssertionError) as err:
        L.ex4.grade(wrong, cases=hidden)
    for word in words:
        assert word in str(err.value)


# ------------------------------------------------------------------ exercise 5


def _grads(x, y, w, b):
    r = w * x + b - y
    return (2 * r * x).sum(), (2 * r).sum()


def test_ex5_mse_grads():
    assert_correct(L.ex5.check(_grads))
    assert_not_attempted(L.ex5.check(stub))
    assert_incorrect(L.ex5.check(lambda *a: tuple(g / 2 for g in _grads(*a))), "2u")
    assert_incorrect(L.ex5.check(lambda *a: tuple(-g for g in _grads(*a))), "sign")
    assert_incorrect(L.ex5.check(lambda x, *a: tuple(g / len(x) for g in _grads(x, *a))), "averaged")
    assert_incorrect(L.ex5.check(lambda *a: _grads(*a)[::-1]), "gradient for w first")
    assert_incorrect(L.ex5.check(lambda x, y, w, b: (2 * (w * x + b - y) * x, (2 * (w * x + b - y)).sum())),
                     "one value per point")
    assert_incorrect(L.ex5.check(lambda *a: _grads(*a)[0]), "two tensors")
    assert_incorrect(L.ex5.check(lambda x, y, w, b: ((2 * (w * x + b - y)).sum(), (2 * (w * x + b - y)).sum())),
                     "dL/dw is wrong")


# ------------------------------------------------------------------ exercise 6


def _fit(x, y, lr, steps, *, zero=True, start=0.0):
    w = torch.full((), start, requires_grad=True)
    b = torch.zeros((), requires_grad=True)
    for _ in range(steps):
        (w * x + b - y).pow(2).sum().backward()
        with torch.no_grad():
            w -= lr * w.grad
            b -= lr * b.grad
            if zero:
                w.grad.zero_()
                b.grad.zero_()
    return w, b


def _fit_new_tensors(x, y, lr, steps):
    w = torch.zeros((), requires_grad=True)
    b = torch.zeros((), requires_grad=True)
    for _ in range(steps):
        (w * x + b - y).pow(2).sum().backward()
        w = w - lr * w.grad  # no longer a leaf: .grad is None next time
        b = b - lr * b.grad
    return w, b


def _fit_outside_no_grad(x, y, lr, steps):
    w = torch.zeros((), requires_grad=True)
    b = torch.zeros((), requires_grad=True)
    for _ in range(steps):
        (w * x + b - y).pow(2).sum().backward()
        w -= lr * w.grad
    return w, b


def test_ex6_fit_line():
    assert_correct(L.ex6.check(_fit))
    assert_not_attempted(L.ex6.check(stub))
    assert_incorrect(L.ex6.check(lambda *a: _fit(*a, zero=False)), "pile up")
    assert_incorrect(L.ex6.check(lambda x, y, lr, s: _fit(x, y, lr, s - 1)), "7 steps")
    assert_incorrect(L.ex6.check(lambda *a: _fit(*a, start=1.0)), "start values")
    assert_incorrect(L.ex6.check(_fit_outside_no_grad), "torch.no_grad()")
    assert_incorrect(L.ex6.check(_fit_new_tensors), "in place")
    assert_incorrect(L.ex6.check(lambda *a: torch.stack(_fit(*a))), "two tensors")


"""Lesson 01's checks: each accepts a right answer, spots the stub, and names typical mistakes."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers.checks import lesson01 as L
from tests.conftest import assert_correct, assert_incorrect, assert_not_attempted
from tests.hidden_tools import run_graded

LESSON = "01_tensors_autograd"


def notebook_function(source: str, **scope):
    """A function defined as in a notebook cell (module __main__), with ``scope`` as its globals."""
    namespace = {"torch": torch, "np": np, "__name__": "__main__", **scope}
    exec(source, namespace)
    return namespace[source.split("def ", 1)[1].split("(", 1)[0]]


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
    # scaling by the brightest pixel seen fits a batch that has a 255; the visible dark batch has none
    assert_incorrect(L.ex1.check(lambda im: im.float() / im.max()), "brightest pixel", "255")


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
    # what the prompt promises is in the instant check too, not only in the hidden tests
    assert_incorrect(L.ex4.check(lambda im: im.view(-1, 784)), "hard-coded")
    assert_incorrect(L.ex4.check(lambda im: im.view(im.size(0), -1)), "contiguous", "reshape")


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
    assert_incorrect(L.ex6.check(lambda *a: torch.stack(_fit(*a))), "the pair (w, b)")



# ------------------------------------------------------------------ rules the prompts state


def test_ex3_rule_use_matmul_not_functional():
    from torch.nn.functional import linear as lin

    assert_correct(L.ex3.check(lambda x, w, b: torch.matmul(x, w.t()) + b))
    assert_correct(L.ex3.check(lambda x, w, b: torch.einsum("bi,oi->bo", x, w) + b))
    for wrong in (lambda x, w, b: F.linear(x, w, b), lambda x, w, b: lin(x, w, b),
                  lambda x, w, b: torch._C._nn.linear(x, w, b), lambda x, w, b: getattr(F, "lin" + "ear")(x, w, b),
                  _linear_module):
        assert_incorrect(L.ex3.check(wrong), "`@`", "torch.nn.functional")
        assert "@" in run_graded(LESSON, "ex3_linear_forward", L, linear_forward=wrong)
    assert run_graded(LESSON, "ex3_linear_forward", L, linear_forward=lambda x, w, b: x @ w.T + b) is None


def _linear_module(x, w, b):
    layer = nn.Linear(w.shape[1], w.shape[0])
    with torch.no_grad():
        layer.weight.copy_(w)
        layer.bias.copy_(b)
    return layer(x).detach()


def _grads_autograd(x, y, w, b):
    w, b = w.clone().requires_grad_(True), b.clone().requires_grad_(True)
    (w * x + b - y).pow(2).sum().backward()
    return w.grad, b.grad


def _grads_autograd_grad(x, y, w, b):
    w, b = w.clone().requires_grad_(), b.clone().requires_grad_()
    return torch.autograd.grad((w * x + b - y).pow(2).sum(), (w, b))


def _grads_func(x, y, w, b):
    return torch.func.grad(lambda w, b: (w * x + b - y).pow(2).sum(), argnums=(0, 1))(w, b)


def test_ex5_rule_chain_rule_without_autograd():
    for wrong in (_grads_autograd, _grads_autograd_grad, _grads_func):
        assert_incorrect(L.ex5.check(wrong), "chain rule", "without autograd")
        assert "without autograd" in run_graded(LESSON, "ex5_mse_grads", L, mse_grads=wrong)
    hidden = notebook_function("def helper(x, y, w, b):\n    return _grads_autograd(x, y, w, b)\n",
                               _grads_autograd=_grads_autograd)
    assert_incorrect(L.ex5.check(hidden), "without autograd")  # autograd inside a helper: seen at run time
    assert_correct(L.ex5.check(_grads))
    assert_correct(L.ex5.check(lambda x, y, w, b: [torch.dot(2 * (w * x + b - y), x), 2 * (w * x + b - y).sum()]))
    assert run_graded(LESSON, "ex5_mse_grads", L, mse_grads=_grads) is None


def _fit_optim(x, y, lr, steps):
    w = torch.zeros((), requires_grad=True)
    b = torch.zeros((), requires_grad=True)
    opt = torch.optim.SGD([w, b], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        (w * x + b - y).pow(2).sum().backward()
        opt.step()
    return w, b


FIT_WITH_MSE_GRADS = """
def fit_line(x, y, lr, steps):
    w, b = torch.tensor(0.0), torch.tensor(0.0)
    for _ in range(steps):
        dw, db = {name}(x, y, w, b)
        w, b = w - lr * dw, b - lr * db
    return w, b
"""


def test_ex6_rules_no_optim_no_mse_grads_and_backward():
    assert_incorrect(L.ex6.check(_fit_optim), "not torch.optim")
    assert "torch.optim" in run_graded(LESSON, "ex6_fit_line", L, fit_line=_fit_optim)
    by_name = notebook_function(FIT_WITH_MSE_GRADS.format(name="mse_grads"), mse_grads=_grads)
    assert_incorrect(L.ex6.check(by_name), "not the hand-derived mse_grads")
    alias = notebook_function(FIT_WITH_MSE_GRADS.format(name="g"), mse_grads=_grads, g=_grads)
    assert_incorrect(L.ex6.check(alias), "mse_grads")
    by_hand = notebook_function(FIT_WITH_MSE_GRADS.format(name="h"), h=_grads)  # the same formulas, pasted in
    assert_incorrect(L.ex6.check(by_hand), "never called backward()")
    assert "backward" in run_graded(LESSON, "ex6_fit_line", L, fit_line=by_hand)


def _fit_floats(x, y, lr, steps):
    w, b = _fit(x, y, lr, steps)
    return w.item(), b.item()


def _fit_one_element(x, y, lr, steps):
    w = torch.zeros(1, requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    for _ in range(steps):
        loss = ((w * x + b - y) ** 2).sum()
        loss.backward()
        with torch.no_grad():
            w.sub_(lr * w.grad)
            b.sub_(lr * b.grad)
        w.grad = None
        b.grad = None
    return [w, b]


def test_ex6_accepts_every_form_of_w_and_b():
    assert_correct(L.ex6.check(_fit_floats))
    assert_correct(L.ex6.check(_fit_one_element))
    assert_correct(L.ex6.check(lambda *a: tuple(np.float32(v) for v in _fit_floats(*a))))
    assert_incorrect(L.ex6.check(lambda *a: (torch.zeros(2), torch.zeros(())) if _fit(*a) else None),
                     "w should be a single number")
    assert_incorrect(L.ex6.check(lambda *a: ("0.5", "0.1") if _fit(*a) else None), "a number")
    for right in (_fit, _fit_floats, _fit_one_element):
        assert run_graded(LESSON, "ex6_fit_line", L, fit_line=right) is None


def test_ex4_view_message_names_strides():
    result = L.ex4.check(lambda im: im.transpose(2, 3).view(len(im), -1))
    assert_incorrect(result, "strides", "reshape")
    assert "contiguous in memory" not in result.message
    assert "reshape" in run_graded(LESSON, "ex4_flatten_images", L, flatten_images=lambda im: im.view(len(im), -1))


def _standardize_loop(x):
    out = torch.empty_like(x)
    for j in range(x.shape[1]):
        out[:, j] = (x[:, j] - x[:, j].mean()) / x[:, j].std()
    return out


def _standardize_while(x):
    cols, j = [], 0
    while j < x.shape[1]:
        cols.append((x[:, j] - x[:, j].mean()) / x[:, j].std())
        j += 1
    return torch.stack(cols, dim=1)


def test_ex2_rule_no_loops():
    comprehension = lambda x: torch.stack([(c - c.mean()) / c.std() for c in x.T], dim=1)  # noqa: E731
    for wrong in (_standardize_loop, _standardize_while, comprehension):
        assert_incorrect(L.ex2.check(wrong), "without loops")
        assert "without loops" in run_graded(LESSON, "ex2_standardize_features", L, standardize_features=wrong)
    helper = notebook_function("def standardize_features(x):\n    return loop(x)\n\n\n"
                               "def loop(x):\n    return torch.stack([(c - c.mean()) / c.std() for c in x.T], 1)\n")
    assert_incorrect(L.ex2.check(helper), "without loops")
    std_mean = notebook_function("def standardize_features(x):\n    s, m = torch.std_mean(x, dim=0)\n"
                                 "    return (x - m) / s\n")
    assert_correct(L.ex2.check(std_mean))
    assert run_graded(LESSON, "ex2_standardize_features", L, standardize_features=std_mean) is None


def _standardize_in_place(x):
    x -= x.mean(dim=0)
    x /= x.std(dim=0)
    return x


def test_inputs_changed_in_place_are_named():
    assert_incorrect(L.ex2.check(_standardize_in_place), "changed its input x in place")
    assert "in place" in run_graded(LESSON, "ex2_standardize_features", L, standardize_features=_standardize_in_place)

    def linear_adding_in_place(x, w, b):
        out = x @ w.T
        out += b  # in place on its own result: fine
        return out
    assert_correct(L.ex3.check(linear_adding_in_place))
    assert_incorrect(L.ex3.check(lambda x, w, b: x.mul_(1) @ w.T + b), "changed its input x in place")
    assert_incorrect(L.ex4.check(lambda im: im.resize_(len(im), im[0].numel())), "changed its input images in place")


def test_ex3_an_answer_for_one_unbatched_sample_is_caught():
    one_sample = lambda x, w, b: torch.mv(w, x[0]) + b  # noqa: E731
    assert_incorrect(L.ex3.check(one_sample), "shape (4, 2), got (2,)")

"""Lesson 04's checks: each accepts a right answer, spots the stub, and names typical mistakes."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn import MaxPool2d as MaxPool

from helpers.checks import lesson04 as L
from tests.conftest import assert_correct, assert_incorrect, assert_not_attempted


def reference_block(in_channels, out_channels):
    """The answer to Exercise 3 (instructor side: the learner's package holds no reference)."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size=5), nn.ReLU(), nn.MaxPool2d(2),
                         nn.BatchNorm2d(out_channels))


def reference_cnn(c1=32, c2=64, hidden=128):
    """The answer to Exercise 5."""
    return nn.Sequential(reference_block(1, c1), reference_block(c1, c2), nn.Flatten(),
                         nn.Linear(c2 * 4 * 4, hidden), nn.ReLU(), nn.Linear(hidden, 10))


def test_the_block_parameter_formula_counts_what_the_prompt_describes():
    for cin, cout in [(1, 32), (32, 64), (3, 5)]:
        assert L.block_params(cin, cout) == L._n_params(reference_block(cin, cout))


def stub(*args):
    raise NotImplementedError()


# ------------------------------------------------------------------ exercise 1


def test_ex1_conv_output_size():
    assert_correct(L.ex1.check(lambda n, k, s=1, p=0: (n + 2 * p - k) // s + 1))
    assert_correct(L.ex1.check(lambda n, k, s=1, p=0: int((n + 2 * p - k) / s) + 1))
    assert_not_attempted(L.ex1.check(stub))
    assert_incorrect(L.ex1.check(lambda n, k, s=1, p=0: (n - k) // s + 1), "padding is missing")
    assert_incorrect(L.ex1.check(lambda n, k, s=1, p=0: (n + p - k) // s + 1), "2 * padding")
    assert_incorrect(L.ex1.check(lambda n, k, s=1, p=0: (n + 2 * p - k) // s), "+1 is missing")
    assert_incorrect(L.ex1.check(lambda n, k, s=1, p=0: math.ceil((n + 2 * p - k) / s) + 1), "rounds down")
    assert_incorrect(L.ex1.check(lambda n, k, s=1, p=0: n + 2 * p - k + 1), "stride")
    assert_incorrect(L.ex1.check(lambda n, k, s=1, p=0: (n + 2 * p - k) / s + 1), "//")
    assert_incorrect(L.ex1.check(lambda n, k, s=1, p=0: round((n + 2 * p - k) / s) + 1), "rounds down")
    assert_incorrect(L.ex1.check(lambda n, k, s=1, p=0: None), "return")


@pytest.mark.parametrize("form", [np.int64, float, torch.tensor, lambda v: torch.tensor([v]), np.array])
def test_ex1_every_spelling_of_a_whole_number_is_accepted(form):
    assert_correct(L.ex1.check(lambda n, k, s=1, p=0: form((n + 2 * p - k) // s + 1)))
    assert_correct(L.ex1.check(lambda n, k, s=1, p=0: math.floor((n + 2 * p - k) / s) + 1))


LAYERS = {  # answers that break the prompt's rule "don't build a layer: use the arithmetic", however imported
    "Conv2d": lambda n, k, s=1, p=0: nn.Conv2d(1, 1, k, s, p)(torch.zeros(1, 1, n, n)).shape[-1],
    "conv2d": lambda n, k, s=1, p=0: F.conv2d(torch.zeros(1, 1, n, n), torch.zeros(1, 1, k, k), stride=s,
                                               padding=p).shape[-1],
    "MaxPool2d": lambda n, k, s=1, p=0: MaxPool(k, s, p)(torch.zeros(1, n, n)).shape[-1],
    "max_pool2d": lambda n, k, s=1, p=0: torch.nn.functional.max_pool2d(torch.zeros(1, n, n), k, s, p).shape[-1],
    "unfold": lambda n, k, s=1, p=0: torch.zeros(1, n + 2 * p).unfold(1, k, s).shape[1],
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_ex1_the_no_layer_rule_is_enforced(name):
    assert_incorrect(L.ex1.check(LAYERS[name]), name, "arithmetic")
    with pytest.raises(AssertionError, match="arithmetic"):
        L.ex1.grade(LAYERS[name], cases=[(13, 4, 3, 2)])
    assert_correct(L.ex1.check(lambda n, k, s=1, p=0: int(torch.div(n + 2 * p - k, s, rounding_mode="floor")) + 1))


# ------------------------------------------------------------------ exercise 2


def _flatten_right(features, shape):
    with torch.no_grad():
        return features(torch.zeros(1, *shape))[0].numel()


def test_ex2_flatten_size():
    assert_correct(L.ex2.check(_flatten_right))
    assert_correct(L.ex2.check(lambda f, s: math.prod(f(torch.zeros(2, *s)).shape[1:])))
    assert_not_attempted(L.ex2.check(stub))
    assert_incorrect(L.ex2.check(lambda f, s: 64 * 4 * 4), "64·4·4", "different")
    assert_incorrect(L.ex2.check(lambda f, s: math.prod(f(torch.zeros(1, *s)).shape[2:])), "channels")
    assert_incorrect(L.ex2.check(lambda f, s: f(torch.zeros(2, *s)).numel()), "whole dummy batch")
    assert_incorrect(L.ex2.check(lambda f, s: f(torch.zeros(1, *s)).shape[1]), "only the number of channels")
    assert_incorrect(L.ex2.check(lambda f, s: f(torch.zeros(1, *s)).shape[1:]), "whole number")
    assert_correct(L.ex2.check(lambda f, s: f(torch.zeros(1, *s))[0].numel() * 1.0))  # 1024.0 is a count too
    assert_correct(L.ex2.check(lambda f, s: torch.tensor(f(torch.zeros(1, *s)).shape[1:]).prod()))


def test_ex2_instant_check_uses_a_colour_image_that_is_not_square():
    """"Any feature layers and any input shape": a dummy image of a fixed or square shape is named at the check."""
    assert_incorrect(L.ex2.check(lambda f, s: f(torch.zeros(1, 1, 28, 28))[0].numel()),
                     "3 channels", "input_shape's number of channels")
    assert_incorrect(L.ex2.check(lambda f, s: f(torch.zeros(1, s[0], 28, 28))[0].numel()), "28×28 image")
    assert_incorrect(L.ex2.check(lambda f, s: f(torch.zeros(1, s[0], s[1], s[1]))[0].numel()), "square image")


def test_ex2_hidden_cases_catch_hard_coded_sizes():
    hidden = [(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.MaxPool2d(2)), (3, 32, 32)),
              (L.classic_features(), (1, 36, 28))]
    L.ex2.grade(_flatten_right, cases=hidden)
    with pytest.raises(AssertionError, match="different"):
        L.ex2.grade(lambda f, s: 1024, cases=hidden)


# ------------------------------------------------------------------ exercise 3


def test_ex3_conv_block():
    assert_correct(L.ex3.check(reference_block))
    assert_correct(L.ex3.check(lambda i, o: nn.Sequential(nn.Conv2d(i, o, kernel_size=(5, 5), stride=1, padding=0),
                                                         nn.ReLU(inplace=True), nn.MaxPool2d(2, 2),
                                                         nn.BatchNorm2d(num_features=o))))
    assert_not_attempted(L.ex3.check(stub))
    assert_incorrect(L.ex3.check(lambda i, o: [nn.Conv2d(i, o, 5), nn.ReLU(), nn.MaxPool2d(2), nn.BatchNorm2d(o)]),
                     "nn.Sequential")
    assert_incorrect(L.ex3.check(lambda i, o: nn.Sequential(nn.Conv2d(o, i, 5), nn.ReLU(), nn.MaxPool2d(2),
                                                           nn.BatchNorm2d(o))), "swapped")
    assert_incorrect(L.ex3.check(lambda i, o: nn.Sequential(nn.Conv2d(i, o, 3), nn.ReLU(), nn.MaxPool2d(2),
                                                           nn.BatchNorm2d(o))), "5×5")
    assert_incorrect(L.ex3.check(lambda i, o: nn.Sequential(nn.Conv2d(i, o, 5, padding=2), nn.ReLU(),
                                                           nn.MaxPool2d(2), nn.BatchNorm2d(o))), "no padding")
    assert_incorrect(L.ex3.check(lambda i, o: nn.Sequential(nn.Conv2d(i, o, 5), nn.MaxPool2d(2),
                                                           nn.BatchNorm2d(o))), "ReLU")
    assert_incorrect(L.ex3.check(lambda i, o: nn.Sequential(nn.Conv2d(i, o, 5), nn.ReLU(), nn.BatchNorm2d(o))),
                     "MaxPool2d", "halve")
    assert_incorrect(L.ex3.check(lambda i, o: nn.Sequential(nn.Conv2d(i, o, 5), nn.ReLU(), nn.MaxPool2d(2))),
                     "BatchNorm2d")
    assert_incorrect(L.ex3.check(lambda i, o: nn.Sequential(nn.Conv2d(i, o, 5), nn.ReLU(), nn.MaxPool2d(2),
                                                           nn.BatchNorm2d(i))), "BatchNorm2d")
    assert_incorrect(L.ex3.check(lambda i, o: nn.Sequential(nn.ReLU(), nn.Conv2d(i, o, 5), nn.MaxPool2d(2),
                                                           nn.BatchNorm2d(o))), "first")


@pytest.mark.parametrize("order", [(nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d), (nn.MaxPool2d, nn.ReLU, nn.BatchNorm2d),
                                   (nn.ReLU, nn.BatchNorm2d, nn.MaxPool2d)])
def test_ex3_another_layer_order_than_the_prompt_fixes_is_caught(order):
    make = {nn.BatchNorm2d: lambda o: nn.BatchNorm2d(o), nn.ReLU: lambda o: nn.ReLU(),
            nn.MaxPool2d: lambda o: nn.MaxPool2d(2)}
    assert_incorrect(L.ex3.check(lambda i, o: nn.Sequential(nn.Conv2d(i, o, 5), *(make[t](o) for t in order))),
                     "order", "conv → ReLU → max-pool → batch norm")


# ------------------------------------------------------------------ exercise 4


def test_ex4_conv_params():
    assert_correct(L.ex4.check(lambda i, o, k: o * (i * k * k) + o))
    assert_incorrect(L.ex4.check(lambda i, o, k: sum(p.numel() for p in nn.Conv2d(i, o, k).parameters())),
                     "by arithmetic", "Conv2d")
    assert_not_attempted(L.ex4.check(stub))
    assert_incorrect(L.ex4.check(lambda i, o, k: i * o * k * k), "biases")
    assert_incorrect(L.ex4.check(lambda i, o, k: o * k * k + o), "every input channel")
    assert_incorrect(L.ex4.check(lambda i, o, k: i * o * k + o), "k²")
    assert_incorrect(L.ex4.check(lambda i, o, k: i * o * k * k + i), "per output channel")
    assert_incorrect(L.ex4.check(lambda i, o, k: (i * o * k * k + o) * 24 * 24), "weight sharing")
    assert_correct(L.ex4.check(lambda i, o, k: float(i * o * k * k + o)))
    assert_correct(L.ex4.check(lambda i, o, k: np.int64(o) * (i * k * k + 1)))
    assert_incorrect(L.ex4.check(lambda i, o, k: (i * o * k * k + o) / 3), "not a whole number")


# ------------------------------------------------------------------ exercise 5


def _cnn(c1=32, c2=64, hidden=128, *, flat=None, head=(), relu=True):
    return nn.Sequential(reference_block(1, c1), reference_block(c1, c2), nn.Flatten(),
                         nn.Linear(flat or c2 * 4 * 4, hidden), *([nn.ReLU()] if relu else []),
                         nn.Linear(hidden, 10), *head)


def test_ex5_build_cnn():
    assert_correct(L.ex5.check(reference_cnn))
    assert_correct(L.ex5.check(lambda c1=32, c2=64, hidden=128: _cnn(c1, c2, hidden)))
    assert_not_attempted(L.ex5.check(stub))
    assert_incorrect(L.ex5.check(lambda c1, c2, h: _cnn(c1, c2, h, flat=64 * 4 * 4)), "64·4·4", "c2 = 64")
    assert_incorrect(L.ex5.check(lambda c1, c2, h: _cnn(c1, c2, h, head=(nn.Softmax(dim=1),))), "logits")
    assert_incorrect(L.ex5.check(lambda c1, c2, h: _cnn(c1, c2, 64)), "fewer")
    assert_incorrect(L.ex5.check(lambda c1, c2, h: _cnn(c1, c2, h, relu=False)), "ReLU")
    assert_incorrect(L.ex5.check(lambda c1, c2, h: nn.Sequential(reference_block(1, c1), reference_block(c1, c2),
                                                                 nn.Linear(c2 * 16, 10))), "Flatten() is missing")
    assert_incorrect(L.ex5.check(lambda c1, c2, h: None), "nn.Module")


def test_ex5_a_network_that_cannot_learn_is_caught():
    # Dropout(1.0) zeroes every feature: same shapes and parameters, but nothing to learn from.
    assert_incorrect(L.ex5.check(lambda c1, c2, h: _cnn(c1, c2, h, head=())[:-1].append(nn.Dropout(1.0))
                                 .append(nn.Linear(h, 10))), "does not learn")


def _wrong_block(i, o):  # conv → BN → ReLU → pool: another order than Exercise 3 fixes
    return nn.Sequential(nn.Conv2d(i, o, 5), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2))


def _cnn_from_blocks(c1=32, c2=64, hidden=128):
    return nn.Sequential(conv_block(1, c1), conv_block(c1, c2), nn.Flatten(),  # noqa: F821 (the notebook's name)
                         nn.Linear(c2 * 4 * 4, hidden), nn.ReLU(), nn.Linear(hidden, 10))


def _with_block(block):
    """build_cnn as a learner writes it in the notebook, where conv_block is the learner's own."""
    namespace = {"nn": nn, "conv_block": block}
    return type(_cnn_from_blocks)(_cnn_from_blocks.__code__, namespace, "build_cnn", _cnn_from_blocks.__defaults__)


@pytest.mark.parametrize("block", [_wrong_block, stub], ids=["wrong", "unfinished"])
def test_ex5_is_judged_on_its_own_whatever_conv_block_is(block):
    """The instant check blames Exercise 3, not the classifier; the graded test (stand-in blocks) gives build_cnn
    its points, and the learner's own conv_block is back in place afterwards."""
    build_cnn = _with_block(block)
    assert_incorrect(L.ex5.check(build_cnn), "conv_block", "Exercise 3 first")
    L.ex5.grade(build_cnn)
    L.ex5.grade(build_cnn, cases=[(8, 24, 64, False), (4, 8, 32, True)])
    assert build_cnn.__globals__["conv_block"] is block
    assert_correct(L.ex5.check(_with_block(reference_block)))


def test_ex5_blocks_called_wrongly_are_named():
    def twice_the_same(c1=32, c2=64, hidden=128):
        return nn.Sequential(conv_block(1, c1), conv_block(1, c2), nn.Flatten(),  # noqa: F821
                             nn.Linear(c2 * 16, hidden), nn.ReLU(), nn.Linear(hidden, 10))
    namespace = {"nn": nn, "conv_block": reference_block}
    wrong = type(twice_the_same)(twice_the_same.__code__, namespace, "build_cnn", twice_the_same.__defaults__)
    assert_incorrect(L.ex5.check(wrong), "[(1, 32), (1, 64)]", "from c1 to c2")


def test_ex5_the_not_attempted_conv_block_counts_as_not_attempted():
    assert_not_attempted(L.ex5.check(lambda c1, c2, h: nn.Sequential(stub(1, c1))))

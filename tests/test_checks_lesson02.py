"""Lesson 02's checks: right models pass, stubs are not attempted, and each typical mistake is named."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers.checks import lesson02 as L
from tests.conftest import assert_correct, assert_incorrect, assert_not_attempted
from tests.hidden_tools import run_graded

LESSON = "02_nn_module"


def stub(*args):
    raise NotImplementedError()


class StubModule(nn.Module):
    """What a class answer looks like after nbgrader cleared both solution regions."""

    def __init__(self, *args):
        raise NotImplementedError()

    def forward(self, x):
        raise NotImplementedError()


def _hidden_images():
    g = torch.Generator().manual_seed(0)
    return [torch.rand(1, 1, 28, 28, generator=g), torch.rand(3, 1, 28, 28, generator=g).transpose(2, 3)]


# ------------------------------------------------------------------ exercise 1


def make_sequential_mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))


class MLP(nn.Module):
    def __init__(self, act=torch.relu, flatten=lambda x: x.flatten(1), first=784, softmax=False):
        super().__init__()
        self.fc1 = nn.Linear(first, 128)
        self.fc2 = nn.Linear(128, 10)
        self.act, self.flatten, self.softmax = act, flatten, softmax

    def forward(self, x):
        out = self.fc2(self.act(self.fc1(self.flatten(x))))
        return out.softmax(dim=1) if self.softmax else out


class MLPReversed(nn.Module):
    """Right too: layers registered in another order, under other names, ReLU as a module."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(128, 10)
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU())

    def forward(self, x):
        return self.head(self.body(x))


class MLPNoSuper(nn.Module):
    def __init__(self):
        self.fc1 = nn.Linear(784, 128)
        self.fc2 = nn.Linear(128, 10)


class MLPInAList(MLP):
    def __init__(self):
        super().__init__()
        del self.fc1, self.fc2
        self.layers = [nn.Linear(784, 128), nn.Linear(128, 10)]

    def forward(self, x):
        return self.layers[1](torch.relu(self.layers[0](x.flatten(1))))


def _mlp(**kw):
    return type("MLPVariant", (MLP,), {"__init__": lambda self: MLP.__init__(self, **kw)})


def test_ex1_mlp_two_ways():
    assert_correct(L.ex1.check((make_sequential_mlp, MLP)))
    assert_correct(L.ex1.check((make_sequential_mlp, MLPReversed)))
    assert_not_attempted(L.ex1.check((stub, MLP)))
    assert_not_attempted(L.ex1.check((make_sequential_mlp, StubModule)))
    assert_incorrect(L.ex1.check((make_sequential_mlp, MLPNoSuper)), "super().__init__()")
    assert_incorrect(L.ex1.check((make_sequential_mlp, _mlp(act=nn.ReLU))), "nn.ReLU(x)", "builds a new ReLU")
    assert_incorrect(L.ex1.check((make_sequential_mlp, _mlp(first=28))), "nn.Linear(28", "784")
    assert_incorrect(L.ex1.check((make_sequential_mlp, _mlp(flatten=lambda x: x))), "unflattened")
    assert_incorrect(L.ex1.check((make_sequential_mlp, _mlp(softmax=True))), "softmax", "CrossEntropyLoss")
    assert_incorrect(L.ex1.check((make_sequential_mlp, _mlp(act=lambda h: h))), "no ReLU")
    assert_incorrect(L.ex1.check((make_sequential_mlp, MLPInAList)), "plain Python list", "nn.ModuleList")


def test_ex1_judges_the_sequential_too():
    def seq(*layers):
        return lambda: nn.Sequential(*layers)

    assert_incorrect(L.ex1.check((seq(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10)), MLP)), "unflattened")
    assert_incorrect(L.ex1.check((seq(nn.Flatten(), nn.Linear(28, 128), nn.ReLU(), nn.Linear(128, 10)), MLP)),
                     "784")
    assert_incorrect(L.ex1.check((seq(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10),
                                      nn.Softmax(dim=1)), MLP)), "CrossEntropyLoss")
    assert_incorrect(L.ex1.check((seq(nn.Flatten(), nn.Linear(784, 128), nn.Sigmoid(), nn.Linear(128, 10)), MLP)),
                     "flatten, Linear(784, 128), ReLU")
    assert_incorrect(L.ex1.check((seq(nn.Flatten(), nn.Linear(784, 10)), MLP)), "two linear layers")
    assert_incorrect(L.ex1.check((lambda: [nn.Flatten(), nn.Linear(784, 128)], MLP)), "nn.Sequential", "a list")
    assert_incorrect(L.ex1.check((make_sequential_mlp, make_sequential_mlp)), "subclasses nn.Module")
    assert_incorrect(L.ex1.check((seq(nn.Identity(), nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10)),
                                  MLP)), "start with nn.Flatten()")


def test_ex1_usage_errors_are_type_errors():
    with pytest.raises(TypeError, match="pair"):
        L.ex1.check(MLP)
    with pytest.raises(TypeError, match="without the parentheses"):
        L.ex1.check((make_sequential_mlp(), MLP))
    with pytest.raises(TypeError, match="not a model built from it"):
        L.ex1.check((make_sequential_mlp, MLP()))


def test_ex1_ex6_instant_checks_include_the_transposed_batch_of_the_graded_tests():
    assert_incorrect(L.ex1.check((make_sequential_mlp, _mlp(flatten=lambda x: x.view(-1, 784)))), "contiguous")
    viewed = type("ViewNet", (FixedNet,), {"forward": lambda s, x: s.fc2(torch.relu(s.fc1(x.view(len(x), -1))))})
    assert_incorrect(L.ex6.check(viewed), "contiguous", "flatten(1)")


def test_ex1_hidden_cases():
    L.ex1.grade((make_sequential_mlp, MLP), cases=_hidden_images(),
                    reference=(make_sequential_mlp, None))
    with pytest.raises(AssertionError, match="contiguous"):
        L.ex1.grade((make_sequential_mlp, _mlp(flatten=lambda x: x.view(-1, 784))), cases=_hidden_images(),
                    reference=(make_sequential_mlp, None))


# ------------------------------------------------------------------ exercise 2 and 3


def count_parameters(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_ex2_count_parameters():
    assert_correct(L.ex2.check(count_parameters))
    assert_not_attempted(L.ex2.check(stub))
    assert_incorrect(L.ex2.check(lambda m: len(list(m.parameters()))), "tensors", "numel")
    assert_incorrect(L.ex2.check(lambda m: len([p for p in m.parameters() if p.requires_grad])), "numel")
    assert_incorrect(L.ex2.check(lambda m: sum(p.numel() for p in m.parameters())), "frozen")
    assert_incorrect(L.ex2.check(lambda m: sum(p.numel() for n, p in m.named_parameters()
                                               if p.requires_grad and "bias" not in n)), "biases")
    assert_incorrect(L.ex2.check(lambda m: str(count_parameters(m))), "whole number", "str")
    assert_incorrect(L.ex2.check(lambda m: count_parameters(m) + 0.5), "whole number")
    assert_incorrect(L.ex2.check(lambda m: np.float64(count_parameters(m) + 0.5)), "the numpy float64 15.5")
    assert_incorrect(L.ex2.check(lambda m: None), "whole number", "None")
    direct = lambda m: sum(p.numel() for c in m.children() for p in c.parameters(recurse=False)  # noqa: E731
                           if p.requires_grad)
    assert_incorrect(L.ex2.check(direct), "directly inside the model", "every level")
    with pytest.raises(TypeError, match="without the parentheses"):
        L.ex2.check(count_parameters(nn.Linear(2, 2)))


def test_ex2_hidden_case():
    conv = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 26 * 26, 10))
    conv[0].requires_grad_(False)
    L.ex2.grade(count_parameters, cases=[conv, nn.Linear(3, 2)], reference=count_parameters)
    with pytest.raises(AssertionError, match="frozen"):
        L.ex2.grade(lambda m: sum(p.numel() for p in m.parameters()), cases=[conv], reference=count_parameters)


def test_ex3_count_by_hand():
    right = 784 * 512 + 512 + 512 * 256 + 256 + 256 * 10 + 10
    assert_correct(L.ex3.check(right))
    assert_not_attempted(L.ex3.check(...))
    assert_incorrect(L.ex3.check(784 * 512 + 512 * 256 + 256 * 10), "biases")
    assert_incorrect(L.ex3.check(784 + 512 + 256 + 10), "neurons")
    assert_incorrect(L.ex3.check(right + 784), "input is not a layer")
    assert_correct(L.ex3.check(float(right)))
    assert_correct(L.ex3.check(np.int64(right)))
    assert_incorrect(L.ex3.check(str(right)), "whole number", "str")
    assert_incorrect(L.ex3.check(right - 10), "in × out + out")
    L.ex3.grade(right, cases=[(784, 512, 256, 10)])
    with pytest.raises(AssertionError, match="biases"):
        L.ex3.grade(784 * 512 + 512 * 256 + 256 * 10, cases=[(784, 512, 256, 10)])


# ------------------------------------------------------------------ exercise 4


class SkipBlock(nn.Module):
    def __init__(self, features, variant="right"):
        super().__init__()
        self.linear1 = nn.Linear(features, features)
        self.linear2 = nn.Linear(features, features)
        self.variant = variant

    def forward(self, x):
        branch = self.linear2(torch.relu(self.linear1(x)))
        return {"right": torch.relu(branch) + x, "no_skip": torch.relu(branch),
                "late_relu": torch.relu(branch + x), "skip_h": torch.relu(branch) + self.linear1(x),
                "module": nn.ReLU(branch) if self.variant == "module" else None}[self.variant]


def _skip(variant):
    return type("SkipVariant", (SkipBlock,), {"__init__": lambda self, f: SkipBlock.__init__(self, f, variant)})


class SkipNoSuper(SkipBlock):
    def __init__(self, features):
        self.linear1 = nn.Linear(features, features)


class SkipOtherNames(nn.Module):
    def __init__(self, features):
        super().__init__()
        self.fc1 = nn.Linear(features, features)
        self.fc2 = nn.Linear(features, features)

    def forward(self, x):
        return torch.relu(self.fc2(torch.relu(self.fc1(x)))) + x


class SkipHardCoded(SkipBlock):
    def __init__(self, features):
        super().__init__(8)


class SkipReLUAdd(SkipBlock):
    def forward(self, x):
        return nn.ReLU(self.linear2(torch.relu(self.linear1(x)))) + x


def test_ex4_skip_block():
    assert_correct(L.ex4.check(SkipBlock))
    assert_not_attempted(L.ex4.check(StubModule))
    assert_incorrect(L.ex4.check(_skip("no_skip")), "skip connection")
    assert_correct(L.ex4.check(_skip("late_relu")))  # the original ResNet block: relu(F(x) + x)
    assert_incorrect(L.ex4.check(_skip("skip_h")), "input x itself")
    assert_incorrect(L.ex4.check(_skip("module")), "returned a ReLU module", "nn.ReLU(x)")
    assert_incorrect(L.ex4.check(SkipReLUAdd), "nn.ReLU(x)", "builds a new ReLU")
    assert_incorrect(L.ex4.check(SkipNoSuper), "super().__init__()")
    assert_incorrect(L.ex4.check(SkipOtherNames), "self.linear1")
    with pytest.raises(TypeError, match="not a model built from it"):
        L.ex4.check(SkipBlock(8))


def test_ex4_hidden_cases():
    g = torch.Generator().manual_seed(0)
    hidden = [(1, torch.randn(3, 1, generator=g)), (16, torch.randn(2, 16, generator=g) * 3)]
    L.ex4.grade(SkipBlock, cases=hidden, reference=SkipBlock)
    with pytest.raises(AssertionError, match=r"nn.Linear\(16, 16\)"):
        L.ex4.grade(SkipHardCoded, cases=hidden[1:], reference=SkipBlock)


# ------------------------------------------------------------------ exercise 5


RIGHT_SHAPES = [(8, 16, 28, 28), (8, 16, 14, 14), (8, 32, 12, 12), (8, 32, 6, 6), (8, 32, 36), (8, 32, 64),
                (8, 2048), (8, 10)]


def _with(index, shape):
    shapes = list(RIGHT_SHAPES)
    shapes[index - 1] = shape
    return shapes


def test_ex5_shapes():
    assert_correct(L.ex5.check(RIGHT_SHAPES))
    assert_correct(L.ex5.check([torch.Size(s) for s in RIGHT_SHAPES]))
    assert_not_attempted(L.ex5.check(...))
    assert_incorrect(L.ex5.check(_with(1, (8, 16, 26, 26))), "layer 1", "padding=1 keeps")
    assert_incorrect(L.ex5.check(_with(3, (8, 32, 14, 14))), "layer 3", "no padding shrinks")
    assert_incorrect(L.ex5.check(_with(3, (8, 16, 12, 12))), "layer 3", "out_channels")
    assert_incorrect(L.ex5.check(_with(2, (8, 8, 14, 14))), "layer 2", "MaxPool2d(2)")
    assert_incorrect(L.ex5.check(_with(5, (8, 1152))), "layer 5", "start_dim=2")
    assert_incorrect(L.ex5.check(_with(6, (32, 8, 64))), "layer 6", "batch_first=True")
    assert_incorrect(L.ex5.check(_with(6, (8, 32, 36))), "layer 6", "hidden_size")
    assert_incorrect(L.ex5.check(_with(8, (10, 8))), "layer 8", "batch dimension")
    assert_incorrect(L.ex5.check([(8, 1, 28, 28), *RIGHT_SHAPES]), "leave out the input")
    assert_incorrect(L.ex5.check(RIGHT_SHAPES[:-1]), "8 layers", "got 7")
    assert_incorrect(L.ex5.check(_with(4, "8x32x6x6")), "entry 4", "tuple of ints")
    assert_incorrect(L.ex5.check({"conv": (8, 16, 28, 28)}), "list of shape tuples")


def test_ex5_hidden_case_is_built_in_the_notebook():
    layers = [nn.Conv2d(1, 16, 3, padding=1), nn.MaxPool2d(2), nn.Conv2d(16, 32, 3), nn.MaxPool2d(2),
              nn.Flatten(start_dim=2), nn.LSTM(36, 64, batch_first=True), nn.Flatten(), nn.Linear(2048, 10)]
    L.ex5.grade(RIGHT_SHAPES, cases=[((8, 1, 28, 28), layers)])
    with pytest.raises(AssertionError, match="layer 6"):
        L.ex5.grade(_with(6, (32, 8, 64)), cases=[((8, 1, 28, 28), layers)])


# ------------------------------------------------------------------ exercise 6


class BrokenNet(nn.Module):
    """The notebook's broken class, with its three bugs."""

    def __init__(self):
        self.fc1 = nn.Linear(28, 28)
        self.fc2 = nn.Linear(28, 10)

    def forward(self, x):
        x = x.flatten(start_dim=1)
        x = nn.ReLU(self.fc1(x))
        return self.fc2(x)


class FixedNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 28)
        self.fc2 = nn.Linear(28, 10)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x.flatten(start_dim=1))))


class SuperOnly(BrokenNet):
    def __init__(self):
        nn.Module.__init__(self)
        self.fc1 = nn.Linear(28, 28)
        self.fc2 = nn.Linear(28, 10)


class SuperAndSizes(BrokenNet):
    def __init__(self):
        nn.Module.__init__(self)
        self.fc1 = nn.Linear(784, 28)
        self.fc2 = nn.Linear(28, 10)


class NoFlatten(FixedNet):
    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def test_ex6_fixed_net_names_each_bug():
    assert_correct(L.ex6.check(FixedNet))
    assert_not_attempted(L.ex6.check(StubModule))
    assert_incorrect(L.ex6.check(BrokenNet), "super().__init__()")
    assert_incorrect(L.ex6.check(SuperOnly), "nn.Linear(28", "784")
    assert_incorrect(L.ex6.check(SuperAndSizes), "nn.ReLU(x)", "builds a new ReLU")
    assert_incorrect(L.ex6.check(NoFlatten), "unflattened")
    softmax_net = type("SoftmaxNet", (FixedNet,), {"forward": lambda s, x: F.softmax(FixedNet.forward(s, x), 1)})
    assert_incorrect(L.ex6.check(softmax_net), "CrossEntropyLoss")
    with pytest.raises(TypeError, match="not a model built from it"):
        L.ex6.check(FixedNet())


def test_ex6_hidden_cases():
    L.ex6.grade(FixedNet, cases=_hidden_images(), reference=FixedNet)
    with pytest.raises(AssertionError, match="nn.ReLU"):
        L.ex6.grade(SuperAndSizes, cases=_hidden_images(), reference=FixedNet)


def test_checking_does_not_move_the_learners_random_numbers():
    state = torch.get_rng_state()
    L.ex1.check((make_sequential_mlp, MLP))
    assert torch.equal(state, torch.get_rng_state()), "checking must not move the learner's random numbers"


# ------------------------------------------------------------------ forms, shared layers, in-place forwards


def test_ex2_accepts_every_form_of_a_whole_number():
    assert_correct(L.ex2.check(lambda m: sum(int(np.prod(p.shape)) for p in m.parameters() if p.requires_grad)))
    assert_correct(L.ex2.check(lambda m: np.sum([p.numel() for p in m.parameters() if p.requires_grad])))
    assert_correct(L.ex2.check(lambda m: float(count_parameters(m))))
    assert_correct(L.ex2.check(lambda m: torch.tensor(count_parameters(m))))
    numpy_count = lambda m: sum(np.prod(p.shape) for p in m.parameters() if p.requires_grad)  # noqa: E731
    assert_correct(L.ex2.check(numpy_count))
    assert run_graded(LESSON, "ex2_count_parameters", L, count_parameters=numpy_count) is None
    assert "frozen" in run_graded(LESSON, "ex2_count_parameters", L,
                                  count_parameters=lambda m: sum(p.numel() for p in m.parameters()))


def test_ex5_accepts_lists_numpy_ints_and_a_tuple_of_shapes():
    assert_correct(L.ex5.check([list(s) for s in RIGHT_SHAPES]))
    assert_correct(L.ex5.check(tuple(tuple(np.int64(d) for d in s) for s in RIGHT_SHAPES)))


class SkipShared(nn.Module):
    def __init__(self, features):
        super().__init__()
        self.linear1 = self.linear2 = nn.Linear(features, features)

    def forward(self, x):
        return torch.relu(self.linear2(torch.relu(self.linear1(x)))) + x


class SkipSharedWeight(SkipBlock):
    def __init__(self, features):
        super().__init__(features)
        self.linear2.weight = self.linear1.weight


class SkipInPlace(SkipBlock):
    def forward(self, x):
        x += torch.relu(self.linear2(torch.relu(self.linear1(x))))
        return x


class SkipReLUInPlaceOnInput(SkipBlock):
    def forward(self, x):
        out = torch.relu(self.linear2(torch.relu(self.linear1(x))))
        return out.add_(torch.relu_(x))


class SkipDetached(SkipBlock):
    def forward(self, x):
        return (torch.relu(self.linear2(torch.relu(self.linear1(x)))) + x).detach()


class SkipStandard(SkipBlock):
    """The ResNet form, with nn.ReLU modules and an F.relu(inplace=True) on a fresh tensor (harmless)."""

    def __init__(self, features):
        super().__init__(features)
        self.act = nn.ReLU()

    def forward(self, x):
        out = self.linear2(self.act(self.linear1(x)))
        return F.relu(out + x, inplace=True)


def test_ex4_shared_layers_in_place_and_detached_forwards_are_named():
    assert_correct(L.ex4.check(SkipStandard))
    assert run_graded(LESSON, "ex4_skip_block", L, SkipBlock=SkipStandard) is None
    assert run_graded(LESSON, "ex4_skip_block", L, SkipBlock=_skip("late_relu")) is None
    for wrong in (SkipShared, SkipSharedWeight):
        assert_incorrect(L.ex4.check(wrong), "one and the same layer")
        assert "one and the same" in run_graded(LESSON, "ex4_skip_block", L, SkipBlock=wrong)
    for wrong in (SkipInPlace, SkipReLUInPlaceOnInput):
        assert_incorrect(L.ex4.check(wrong), "in place", "backward")
        assert "in place" in run_graded(LESSON, "ex4_skip_block", L, SkipBlock=wrong)
    assert_incorrect(L.ex4.check(SkipDetached), "no gradient flows back", ".detach()")


class MLPInPlaceInput(MLP):
    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x.flatten(1).mul_(1.0))))


class FixedInPlaceBackward(FixedNet):
    def forward(self, x):
        h = torch.sigmoid(self.fc1(x.flatten(start_dim=1)))
        h.mul_(1.0)  # sigmoid's backward needs its output: modified in place, backward fails
        return self.fc2(torch.relu(h))


def test_ex1_ex6_in_place_forwards_are_named():
    inplace_relu = lambda: nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(inplace=True),  # noqa: E731
                                         nn.Linear(128, 10))
    assert_correct(L.ex1.check((inplace_relu, _mlp(act=lambda h: F.relu(h, inplace=True)))))  # harmless in place
    assert_incorrect(L.ex1.check((make_sequential_mlp, MLPInPlaceInput)), "in place")
    assert "in place" in run_graded(LESSON, "ex1_mlp_two_ways", L, make_sequential_mlp=make_sequential_mlp,
                                    MLP=MLPInPlaceInput)
    assert_incorrect(L.ex6.check(FixedInPlaceBackward), "backward() through", "in-place")
    assert run_graded(LESSON, "ex1_mlp_two_ways", L, make_sequential_mlp=make_sequential_mlp, MLP=MLP) is None
    assert run_graded(LESSON, "ex6_fixed_net", L, FixedNet=FixedNet) is None


def test_ex2_a_shared_layer_counts_once():
    def per_layer(model):  # counts a layer used twice twice
        layers = list(model) if isinstance(model, nn.Sequential) else [model]  # iterating keeps repeats
        return sum(p.numel() for layer in layers for p in layer.parameters() if p.requires_grad)
    failure = run_graded(LESSON, "ex2_count_parameters", L, count_parameters=per_layer)
    assert failure and "used twice" in failure
    tied = nn.Linear(4, 4)
    with pytest.raises(AssertionError, match="count each parameter once"):
        L.ex2.grade(per_layer, cases=[nn.Sequential(tied, nn.ReLU(), tied)], reference=count_parameters)
    L.ex2.grade(count_parameters, cases=[nn.Sequential(tied, nn.ReLU(), tied)], reference=count_parameters)


def test_layers_the_prompt_does_not_list_are_named_even_though_eval_mode_hides_them():
    with_dropout = lambda: nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Dropout(0.5),  # noqa: E731
                                         nn.Linear(128, 10))
    assert_incorrect(L.ex1.check((with_dropout, MLP)), "Dropout layer", "does not have")
    class FixedWithBatchNorm(FixedNet):
        def __init__(self):
            super().__init__()
            self.bn = nn.BatchNorm1d(28)

        def forward(self, x):
            return self.fc2(torch.relu(self.bn(self.fc1(x.flatten(1)))))
    assert_incorrect(L.ex6.check(FixedWithBatchNorm), "BatchNorm1d")


def test_answers_that_only_work_on_one_unbatched_image_are_caught():
    whole = _mlp(flatten=lambda x: x.flatten())  # (N*784,): fine for one image, wrong for a batch
    assert_incorrect(L.ex1.check((make_sequential_mlp, whole)), "4704")
    squeezed = _mlp(flatten=lambda x: x.squeeze().flatten(1))  # fine for a batch, wrong for one image
    assert L.ex1.check((make_sequential_mlp, squeezed))
    assert run_graded(LESSON, "ex1_mlp_two_ways", L, make_sequential_mlp=make_sequential_mlp, MLP=squeezed)

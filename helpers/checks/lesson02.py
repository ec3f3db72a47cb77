"""Instant checks for lesson 02, building models with nn.Module.

Model judges build the learner's class, copy seeded weights into it (through the
attribute names the prompt fixes, or found by shape), and compare its output with the
output of the instructor's solution with the same weights, which ``make release`` ships
for the visible cases (ex1, ex2, ex4 and ex6 have an ``observe``: see ``helpers.checks.shipped``).
Graded cells add hidden cases built in the notebook, ``exN.grade(answer, cases=[case, ...],
reference=...)``, with the reference answer in the hidden test; one case is:

- ex1 ``(make_sequential_mlp, MLP)``, ex6 ``FixedNet``: images, a float tensor (N, 1, 28, 28);
- ex2 ``count_parameters``: an ``nn.Module``, possibly with frozen parameters;
- ex3 ``n_params`` (a whole number): the MLP's layer sizes, ``(784, 512, 256, 10)``;
- ex4 ``SkipBlock``: ``(features, x)`` with x a float tensor (N, features);
- ex5 ``shapes`` (a list of tuples): ``(input_shape, layers)``, the modules run in order
  (an LSTM passes on its output sequence).

Value answers (ex3, ex5) count as not attempted while they are still ``...``. Every model's
forward runs with autograd on a non-leaf input, so a forward that changes its input in place,
breaks ``backward()`` or detaches its output is named.

Introduced in lesson 02.
"""

from __future__ import annotations

import copy
import numbers
import re
import warnings

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from helpers.checks.core import (
    Exercise,
    Mismatch,
    NotAttempted,
    call_answer,
    expect_tensor_like,
    values_close,
)
from helpers.checks.rules import describe


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _value(answer):
    """A value answer still set to the stub's ``...`` has not been attempted."""
    if answer is Ellipsis:
        raise NotAttempted()
    return answer


def _first_close(got, candidates) -> str | None:
    """The message of the first known mistake, of ``(message, its result)`` pairs, that ``got`` reproduces."""
    if not isinstance(got, torch.Tensor):
        return None
    for message, wrong in candidates:
        if wrong.shape == got.shape and values_close(got, wrong):
            return message
    return None


# --------------------------------------------------------------- the usual mistakes, named

CALL_NOT_BUILD = ("`nn.ReLU(x)` builds a new ReLU layer (with x as its argument) instead of applying "
                  "one: write `torch.relu(x)` or `F.relu(x)`, or create `self.relu = nn.ReLU()` in "
                  "__init__ and call `self.relu(x)`.")
LINEAR_28 = ("nn.Linear(28, ...) expects 28 input features (one row of pixels), but a flattened "
             "28×28 image has 784: the first layer must be nn.Linear(784, ...).")
NO_SOFTMAX = ("remove the softmax: the model should return raw scores (logits), because "
              "nn.CrossEntropyLoss applies log-softmax itself.")
_ACTIVATION = re.compile(r"\b(ReLU|Sigmoid|Tanh|Softmax|LogSoftmax|GELU|LeakyReLU)\b")
_MATMUL = re.compile(r"\((\d+)x(\d+) and (\d+)x(\d+)\)")


def _module_error(message: str) -> str | None:
    """Advice for an exception raised while building or calling the learner's model."""
    if "before Module.__init__() call" in message:
        return ("You forgot `super().__init__()`: call it as the first line of __init__, before assigning "
                "any layer to self.")
    if _ACTIVATION.search(message) and ("Tensor" in message or "operand" in message):
        return CALL_NOT_BUILD
    if match := _MATMUL.search(message):
        have, want = int(match[2]), int(match[3])
        if (have, want) == (784, 28):
            return LINEAR_28
        if (have, want) == (28, 784):
            return ("The images reach the first layer unflattened: turn (N, 1, 28, 28) into (N, 784) "
                    "in forward (x.flatten(1) or nn.Flatten()).")
        return f"A layer expects {want} input features but gets {have}: in_features must match the input."
    if "view size is not compatible" in message:
        return ("view() never copies, so it needs strides compatible with the new shape, which a transposed "
                "batch lacks: use x.flatten(1) or x.reshape(len(x), -1).")
    return None


# --------------------------------------------------------------- building and calling models


def _build(cls, *args, name: str) -> nn.Module:
    """Instantiate the learner's class (it must subclass nn.Module) and check it has a forward."""
    if isinstance(cls, nn.Module):
        raise TypeError(f"check() takes the class {name} itself, not a model built from it: "
                        f"write {name}, not {name}().")
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise Mismatch(f"{name} should be a class that subclasses nn.Module, got {describe(cls)}.")
    with torch.random.fork_rng(devices=[]):  # building layers must not move the learner's RNG
        model = call_answer(cls, *args, name=name, explain=_module_error)
    if type(model).forward is nn.Module.forward:
        raise Mismatch(f"{name} has no forward method: define `def forward(self, x):` (check the spelling).")
    return model


IN_PLACE = ("forward changed its input x in place (x += ..., x.relu_(), an inplace=True activation): in a "
            "network, x is the output of the layer before, which autograd still needs, so loss.backward() fails. "
            "Compute into a new tensor (out = ...) and leave x as it is.")
DETACHED = ("no gradient flows back through forward: its output does not depend on the parameters through "
            "autograd. Don't use .detach(), .item(), .numpy(), .data or torch.no_grad() inside forward.")


def _forward(model: nn.Module, x: torch.Tensor, *, name: str):
    """The model's output on x, in eval mode, after checking that training through it would work.

    x arrives as the output of an earlier operation (not a leaf), as it would inside a network; a
    forward that modifies it in place, or whose output autograd cannot differentiate, is named.
    """
    extra = next((m for m in model.modules() if isinstance(m, (nn.modules.dropout._DropoutNd, _BatchNorm))), None)
    if extra is not None:  # eval mode would hide them, but they change what training computes
        raise Mismatch(f"{name} has a {type(extra).__name__} layer that the exercise's network does not have: "
                       "build exactly the layers the prompt lists.")
    model.eval()
    source = x.detach().clone().requires_grad_(True)
    h = source.clone()  # a non-leaf with x's values and strides
    version = h._version
    out = call_answer(lambda: model(h), name=name, explain=_module_error)
    if isinstance(out, nn.Module):
        extra = CALL_NOT_BUILD if _ACTIVATION.search(type(out).__name__) else "return the output tensor."
        raise Mismatch(f"{name} returned {describe(out)} module, not a tensor: {extra}")
    if h._version != version:
        raise Mismatch(IN_PLACE)
    if isinstance(out, torch.Tensor) and out.is_floating_point():
        if not out.requires_grad:
            raise Mismatch(DETACHED)
        try:
            with warnings.catch_warnings():  # nbgrader fails a test cell that wrote to stderr
                warnings.simplefilter("ignore")
                out.sum().backward()
        except Exception as err:  # noqa: BLE001 - whatever breaks backward, say so
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise Mismatch(f"loss.backward() through {name} fails ({first[:160]}): an in-place operation in "
                           "forward (+=, relu_(), inplace=True) overwrote a tensor that autograd needs; compute "
                           "into new tensors instead.") from None
        out = out.detach()
    return out


def _load(layer: nn.Linear, gen: torch.Generator, *, name: str, source: nn.Linear | None = None) -> None:
    """Overwrite a linear layer's weight and bias with seeded values, or with ``source``'s."""
    if layer.bias is None:
        raise Mismatch(f"{name} has no bias: keep nn.Linear's default bias=True.")
    with torch.no_grad():
        for attr in ("weight", "bias"):
            mine = getattr(layer, attr)
            mine.copy_(getattr(source, attr) if source is not None else torch.randn(mine.shape, generator=gen) * 0.2)


def _linear_attr(model: nn.Module, attr: str, shape: tuple[int, int], *, name: str) -> nn.Linear:
    layer = getattr(model, attr, None)
    if not isinstance(layer, nn.Linear):
        raise Mismatch(f"{name} needs a layer `self.{attr} = nn.Linear{shape}`; self.{attr} is {describe(layer)}.")
    have = (layer.in_features, layer.out_features)
    if have != shape:
        extra = LINEAR_28 if have[0] == 28 else "in_features is the input's size, out_features the output's."
        raise Mismatch(f"self.{attr} is nn.Linear{have} but should be nn.Linear{shape}: {extra}")
    return layer


def _without_activation(x, l1, l2):
    """A known mistake: the two layers with nothing between them."""
    return F.linear(F.linear(x.flatten(1), l1.weight, l1.bias), l2.weight, l2.bias)


def _mlp_mistakes(expected, x, l1, l2) -> list:
    return [("the hidden layer has no ReLU: apply torch.relu (or an nn.ReLU module) between the layers.",
             _without_activation(x, l1, l2)),
            (NO_SOFTMAX, F.softmax(expected, dim=1)), (NO_SOFTMAX, F.log_softmax(expected, dim=1))]


# --------------------------------------------------------------- 1: the MLP two ways


def _mlp_linears(model: nn.Module, name: str) -> tuple[nn.Linear, nn.Linear]:
    """The registered 784 -> 128 and 128 -> 10 layers, found by shape (any attribute names)."""
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not layers:
        raise Mismatch(f"{name} has no registered nn.Linear layers: assign each layer to self "
                       "(self.fc1 = nn.Linear(...)); layers in a plain Python list are invisible to "
                       "PyTorch (use nn.ModuleList).")
    if layers[0].in_features == 28:
        raise Mismatch(f"{name} has the wrong first layer: {LINEAR_28}")
    by_shape = {(m.in_features, m.out_features): m for m in layers}
    if len(layers) != 2 or set(by_shape) != {(784, 128), (128, 10)}:
        found = ", ".join(f"nn.Linear{s}" for s in by_shape)
        raise Mismatch(f"{name} should hold two linear layers, 784 -> 128 and 128 -> 10; found {found}.")
    return by_shape[(784, 128)], by_shape[(128, 10)]


def _expect_mlp_output(got, images, expected, l1, l2, *, name):
    advice = _first_close(got, _mlp_mistakes(expected, images, l1, l2))
    expect_tensor_like(got, expected, name=f"{name}'s output", value_advice=advice or (
        f"{name} should compute flatten, Linear(784, {l1.out_features}), ReLU, Linear, in that order."))


def _run_sequential(make_seq, images):
    """make_sequential_mlp()'s network with seeded weights, its two layers and its output on ``images``."""
    with torch.random.fork_rng(devices=[]):
        seq = call_answer(make_seq, name="make_sequential_mlp", explain=_module_error)
    if not isinstance(seq, nn.Sequential):
        raise Mismatch(f"make_sequential_mlp() should return an nn.Sequential, got {describe(seq)}.")
    gen = _gen(21)
    first, second = _mlp_linears(seq, "make_sequential_mlp()")
    _load(first, gen, name="make_sequential_mlp()")
    _load(second, gen, name="make_sequential_mlp()")
    return seq, (first, second), _forward(seq, images, name="make_sequential_mlp()")


def _observe_mlp(answer, images):
    """What Exercise 1 compares: the Sequential's output, with seeded weights (MLP() gets the same weights)."""
    return _run_sequential(answer[0], images)[2]


def _judge_mlp(answer, images, expected):
    if not (isinstance(answer, tuple) and len(answer) == 2):
        raise TypeError("Exercise 1: pass both answers as a pair, check((make_sequential_mlp, MLP)), "
                        f"got {describe(answer)}.")
    make_seq, mlp_cls = answer
    if not callable(make_seq) or isinstance(make_seq, nn.Module):
        raise TypeError("check() takes the function make_sequential_mlp itself: write make_sequential_mlp "
                        f"without the parentheses, got {describe(make_seq)}.")
    if isinstance(mlp_cls, nn.Module):
        raise TypeError("check() takes the class MLP itself, not a model built from it: write MLP, not MLP().")
    seq, (first, second), got = _run_sequential(make_seq, images)
    _expect_mlp_output(got, images, expected, first, second, name="make_sequential_mlp()")
    if not isinstance(seq[0], nn.Flatten):
        raise Mismatch(f"make_sequential_mlp() should start with nn.Flatten(), as the exercise asks; it starts with "
                       f"{type(seq[0]).__name__}.")
    model = _build(mlp_cls, name="MLP")
    mine = _mlp_linears(model, "MLP()")
    _load(mine[0], None, name="MLP()", source=first)  # the Sequential's weights, copied into the class
    _load(mine[1], None, name="MLP()", source=second)
    _expect_mlp_output(_forward(model, images, name="MLP()"), images, expected, *mine, name="MLP()")


ex1 = Exercise(
    1, "(make_sequential_mlp, MLP)", points=3, judge=_judge_mlp, observe=_observe_mlp,
    # a transposed batch too, as the graded test says: view() cannot flatten it, flatten() and reshape() can
    cases=lambda: [torch.rand(6, 1, 28, 28, generator=_gen(11)), torch.rand(3, 1, 28, 28, generator=_gen(14)).mT],
    needs_callable=False,
    hints=[
        "Both models compute flatten -> Linear(784, 128) -> ReLU -> Linear(128, 10) and return logits.",
        "nn.Sequential runs the layers you list in order: nn.Flatten, nn.Linear, nn.ReLU, nn.Linear. In "
        "the class: super().__init__() first, each nn.Linear assigned to self in __init__; forward uses "
        "Tensor.flatten(start_dim=1) and torch.relu. No softmax at the end.",
        "# make_sequential_mlp:\nreturn nn.Sequential(nn.Flatten(), ____, ____, ____)\n# MLP.__init__:\n"
        "super().__init__()\nself.fc1 = nn.Linear(____, ____)\nself.fc2 = ____\n# MLP.forward:\n"
        "x = ____                    # (N, 1, 28, 28) -> (N, 784)\n"
        "return ____                 # layer, relu, layer",
    ],
)


# --------------------------------------------------------------- 2: count parameters by code


def _whole_number(value) -> int | None:
    """An integer count in any reasonable form (int, numpy integer, 12.0, a one-element tensor), else None."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.dtype == torch.bool:
            return None
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    return int(value) if float(value).is_integer() else None


def _count(fn, model) -> int:
    answer = call_answer(fn, copy.deepcopy(model), name="count_parameters")
    got = _whole_number(answer)
    if got is None:
        raise Mismatch(f"count_parameters should return a whole number (an int), got {describe(answer)}: "
                       "p.numel() is an int, so sum(...) of them is one too.")
    return got


def _judge_count(fn, model, expected):
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    got = _count(fn, model)
    if got == expected:
        return
    mistakes = {
        "you counted frozen parameters too: count only those with p.requires_grad.":
            sum(p.numel() for p in model.parameters()),
        "you counted parameter tensors (each weight and bias is one tensor), not the numbers in them: "
        "use p.numel().": len(trainable),
        "you counted parameter tensors, not the numbers in them (use p.numel()), and frozen ones too.":
            len(list(model.parameters())),
        "you left out the biases.": sum(p.numel() for n, p in trainable if not n.endswith("bias")),
        "p.shape[0] is only the first dimension: p.numel() counts every element.":
            sum(p.shape[0] for _, p in trainable if p.dim()),
        "a layer used twice in the model holds one set of parameters: count each parameter once "
        "(model.parameters() lists a shared one once).":
            sum(p.numel() for _, p in model.named_parameters(remove_duplicate=False) if p.requires_grad),
        "you counted only the layers directly inside the model: a layer inside a block (an nn.Sequential in "
        "the model) has parameters too, and model.parameters() reaches every level.":
            sum(p.numel() for m in model.children() for p in m.parameters(recurse=False) if p.requires_grad),
    }
    advice = next((m for m, v in mistakes.items() if v == got and v != expected),
                  "add up p.numel() over model.parameters(), keeping those with p.requires_grad.")
    raise Mismatch(f"count_parameters returned {got}, which is wrong: {advice}")


def _cases_count():
    with torch.random.fork_rng(devices=[]):
        model = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3))
        nested = nn.Sequential(nn.Sequential(nn.Linear(5, 3), nn.Tanh()), nn.Linear(3, 2))  # a block in a block
    model[0].requires_grad_(False)  # a frozen first layer
    return [model, nested]


ex2 = Exercise(
    2, "count_parameters", points=2, judge=_judge_count, observe=_count, cases=_cases_count,
    hints=[
        "Every weight and bias is a tensor: count the values in each trainable one and add the counts up.",
        "model.parameters() yields every weight and bias tensor; p.numel() is the number of values in "
        "one, and p.requires_grad says whether training changes it; sum() adds up a generator expression.",
        "return sum(____ for p in ____ if ____)",
    ],
)


# --------------------------------------------------------------- 3: count parameters by hand


def _judge_hand_count(answer, sizes):
    given = _value(answer)
    answer = _whole_number(given)
    if answer is None:
        raise Mismatch(f"n_params should be a whole number (an int), got {describe(given)}.")
    pairs = list(zip(sizes[:-1], sizes[1:], strict=True))
    expected = sum(p.numel() for i, o in pairs for p in nn.Linear(i, o, device="meta").parameters())
    if answer == expected:
        return
    advice = {
        sum(i * o for i, o in pairs): "you counted the weights but not the biases: each Linear(in, out) "
                                      "also has out biases.",
        sum(sizes): "you added up the layer sizes (neurons); count connections: in × out weights plus out biases.",
        expected + sizes[0]: "the input is not a layer: only the Linear layers have biases.",
    }.get(answer, "count in × out + out for each Linear layer and add them up.")
    raise Mismatch(f"{answer} is not the number of parameters: {advice}")


ex3 = Exercise(
    3, "n_params", points=0, judge=_judge_hand_count, cases=lambda: [(784, 512, 256, 10)],
    needs_callable=False,
    hints=[
        "The MLP has three nn.Linear layers: 784 -> 512, 512 -> 256 and 256 -> 10.",
        "nn.Linear(in, out) holds an (out, in) weight and an (out,) bias: in * out + out numbers.",
        "n_params = (784 * ____ + ____) + (____ * 256 + ____) + (____ + ____)",
    ],
)


# --------------------------------------------------------------- 4: a skip connection


SHARED_LAYERS = ("linear1 and linear2 are one and the same layer (`self.linear1 = self.linear2 = nn.Linear(...)`, "
                 "or shared weights): the block needs two layers with weights of their own, so create "
                 "two separate nn.Linear layers.")


def _run_skip(cls, case):
    """SkipBlock(features) with seeded weights: its two layers, its output on x, and linear2's output (the branch)."""
    features, x = case
    model = _build(cls, features, name="SkipBlock")
    l1 = _linear_attr(model, "linear1", (features, features), name="SkipBlock")
    l2 = _linear_attr(model, "linear2", (features, features), name="SkipBlock")
    if l1 is l2 or l1.weight is l2.weight or l1.bias is l2.bias:
        raise Mismatch(SHARED_LAYERS)
    gen = _gen(41)
    _load(l1, gen, name="linear1")
    _load(l2, gen, name="linear2")
    seen = []
    hook = l2.register_forward_hook(lambda module, args, out: seen.append(out.detach()))
    try:
        got = _forward(model, x, name="SkipBlock()")
    finally:
        hook.remove()
    return (l1, l2), got, seen[0] if seen else None


def _observe_skip(cls, case):
    """The branch, linear2's output inside the instructor's block: both right forms of the block follow from it."""
    return _run_skip(cls, case)[2]


def _judge_skip(cls, case, branch):
    _, x = case
    (l1, l2), got, _ = _run_skip(cls, case)
    lin1, lin2 = (lambda t: F.linear(t, l1.weight, l1.bias)), (lambda t: F.linear(t, l2.weight, l2.bias))
    # Both forms are right: relu on the branch, then the addition (as the prompt writes it), and the
    # original ResNet block's relu(F(x) + x). The branch is shipped (see helpers.checks.shipped).
    forms = (F.relu(branch) + x, F.relu(branch + x))
    expected = next((f for f in forms if isinstance(got, torch.Tensor) and got.shape == f.shape
                     and values_close(got, f)), forms[0])
    expect_tensor_like(got, expected, name="SkipBlock()'s output", value_advice=_first_close(got, [
        ("you forgot the skip connection: add the block's input x to the branch's output.", F.relu(branch)),
        ("the ReLU after linear2 is missing: relu(linear2(...)) + x, or relu(linear2(...) + x).", branch + x),
        ("the ReLU between linear1 and linear2 is missing.", F.relu(lin2(lin1(x))) + x),
        ("the ReLU between linear1 and linear2 is missing.", F.relu(lin2(lin1(x)) + x)),
        ("add the input x itself, not linear1(x).", F.relu(branch) + lin1(x)),
        ("add the input x itself, not linear1(x).", F.relu(branch + lin1(x))),
        ("linear2 is never used: the branch is linear1, ReLU, linear2.", F.relu(lin1(F.relu(lin1(x)))) + x),
    ]) or "the block should compute relu(linear2(relu(linear1(x)))) + x (or relu of the sum).")


ex4 = Exercise(
    4, "SkipBlock", points=2, judge=_judge_skip, observe=_observe_skip,
    cases=lambda: [(8, torch.randn(5, 8, generator=_gen(12)))],
    hints=[
        "Keep the input: compute the branch relu(linear2(relu(linear1(x)))) from x, then add x to it.",
        "Two nn.Linear layers, each from features to features, assigned to self after super().__init__(); torch.relu "
        "applies the activation; + adds the input back (the shapes match). Don't overwrite x: put the "
        "branch in a new variable.",
        "# __init__:\nsuper().__init__()\nself.linear1 = ____\nself.linear2 = ____\n# forward:\n"
        "out = torch.relu(____)\nout = ____\nreturn ____ + ____",
    ],
)


# --------------------------------------------------------------- 5: predict the shapes


def _as_shape(value) -> tuple | None:
    ok = isinstance(value, (tuple, list)) and all(isinstance(d, numbers.Integral) and not isinstance(d, bool)
                                                  for d in value)
    return tuple(int(d) for d in value) if ok else None


def _shape_advice(layer: nn.Module, got: tuple, want: tuple) -> str:
    if isinstance(layer, nn.LSTM):
        if got == (want[1], want[0], want[2]):
            return "batch_first=True keeps the batch first: (batch, sequence, hidden_size)."
        return "the LSTM's output holds hidden_size features for every time step: (batch, sequence, hidden_size)."
    if len(got) == len(want) and got[0] != want[0]:
        return "the batch dimension (the first) never changes."
    if isinstance(layer, nn.Conv2d):
        if len(got) == 4 and got[1] != want[1]:
            return "the channel dimension becomes the layer's out_channels."
        return ("height and width become (H + 2·padding - kernel_size) // stride + 1: padding=1 keeps a 3×3 "
                "convolution's size, no padding shrinks it by kernel_size - 1.")
    if isinstance(layer, nn.MaxPool2d):
        return "MaxPool2d(2) halves height and width (rounding down) and keeps the channels."
    if isinstance(layer, nn.Flatten):
        return (f"nn.Flatten(start_dim={layer.start_dim}) keeps the dimensions before start_dim and "
                "multiplies the rest together into one.")
    if isinstance(layer, nn.Linear):
        return "nn.Linear changes only the last dimension, to out_features."
    return "run the stack on torch.zeros(input_shape) and print each shape."


def _judge_shapes(answer, case):
    input_shape, layers = case
    answer = _value(answer)
    expected, x = [], torch.zeros(input_shape)
    with torch.no_grad():
        for layer in layers:
            x = layer(x)
            x = x[0] if isinstance(x, tuple) else x  # an LSTM returns (output, (h_n, c_n))
            expected.append(tuple(x.shape))
    if not isinstance(answer, (list, tuple)):
        raise Mismatch(f"shapes should be a list of shape tuples, one per layer, got {describe(answer)}.")
    if len(answer) == len(expected) + 1 and _as_shape(answer[0]) == tuple(input_shape):
        raise Mismatch("leave out the input's shape: list the output shape of each layer.")
    if len(answer) != len(expected):
        raise Mismatch(f"the stack has {len(expected)} layers, so shapes needs {len(expected)} entries "
                       f"(the output shape of each layer), got {len(answer)}.")
    for i, (layer, entry, want) in enumerate(zip(layers, answer, expected, strict=True), start=1):
        got = _as_shape(entry)
        if got is None:
            raise Mismatch(f"entry {i} should be a tuple of ints like (8, 16, 28, 28), got {describe(entry)}.")
        if got != want:
            raise Mismatch(f"the shape after layer {i} ({layer}) is wrong: {_shape_advice(layer, got, want)}")


def _cases_shapes():
    with torch.random.fork_rng(devices=[]):
        layers = [nn.Conv2d(1, 16, kernel_size=3, padding=1), nn.MaxPool2d(2), nn.Conv2d(16, 32, kernel_size=3),
                  nn.MaxPool2d(2), nn.Flatten(start_dim=2), nn.LSTM(36, 64, batch_first=True), nn.Flatten(),
                  nn.Linear(32 * 64, 10)]
    return [((8, 1, 28, 28), layers)]


ex5 = Exercise(
    5, "shapes", points=0, judge=_judge_shapes, cases=_cases_shapes, needs_callable=False,
    hints=[
        "Go one layer at a time and write down (batch, channels, height, width) after each.",
        "Conv2d: (H + 2·padding - kernel_size) + 1; MaxPool2d(2): half; Flatten(start_dim=2) keeps 2 "
        "dimensions; LSTM(batch_first=True) outputs (batch, sequence, hidden_size).",
        "shapes = [\n    (8, ____, ____, ____),   # Conv2d\n    (8, ____, ____, ____),   # MaxPool2d\n"
        "    (8, ____, ____, ____),   # Conv2d\n    (8, ____, ____, ____),   # MaxPool2d\n"
        "    (8, ____, ____),         # Flatten(start_dim=2)\n    (8, ____, ____),         # LSTM\n"
        "    (8, ____),               # Flatten\n    (8, ____),               # Linear\n]",
    ],
)


# --------------------------------------------------------------- 6: find the bugs


def _run_fixed(cls, images):
    """FixedNet with seeded weights, its two layers and its output on ``images``."""
    model = _build(cls, name="FixedNet")
    fc1 = _linear_attr(model, "fc1", (784, 28), name="FixedNet")
    fc2 = _linear_attr(model, "fc2", (28, 10), name="FixedNet")
    gen = _gen(61)
    _load(fc1, gen, name="fc1")
    _load(fc2, gen, name="fc2")
    return (fc1, fc2), _forward(model, images, name="FixedNet()")


def _judge_fixed(cls, images, expected):
    (fc1, fc2), got = _run_fixed(cls, images)
    _expect_mlp_output(got, images, expected, fc1, fc2, name="FixedNet()")


ex6 = Exercise(
    6, "FixedNet", points=3, judge=_judge_fixed, observe=lambda cls, images: _run_fixed(cls, images)[1],
    cases=lambda: [torch.rand(4, 1, 28, 28, generator=_gen(13)), torch.rand(2, 1, 28, 28, generator=_gen(15)).mT],
    hints=[
        "There are three bugs: one in the first line of __init__, one in a layer's size, one in forward. "
        "Run BrokenNet()(images) and read each error.",
        "Call super().__init__() first; a flattened image has 28*28 = 784 features; nn.ReLU(x) builds a "
        "layer, torch.relu(x) applies one.",
        "# __init__:\nsuper().__init__()\nself.fc1 = nn.Linear(____, 28)\nself.fc2 = ____\n# forward:\n"
        "x = x.flatten(____)\nx = ____(self.fc1(x))\nreturn ____",
    ],
)


EXERCISES = (ex1, ex2, ex3, ex4, ex5, ex6)


# --------------------------------------------------------------- stand-ins for unsolved exercises
# The lesson's cells after an exercise use these while it is unsolved (checks.exN.yours_or), so that a learner
# who skips it can go on. They are not answers: each fails its exercise's check.


def stand_in_mlp() -> nn.Sequential:
    """Exercise 1's stand-in: a single Linear layer from 784 pixels to 10 logits (no hidden layers)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))

"""Instant checks for lesson 04, a Sequential CNN.

The judges compare the learner's answer with PyTorch's own layers on the same
shapes, and recognise the usual mistakes (the padding counted once, a hard-coded
flatten size of 64·4·4, a softmax before the loss) so they can name them.

Introduced in lesson 04.
"""

from __future__ import annotations

import copy
import math
import re

import torch
from torch import nn

from helpers.checks.core import Exercise, Mismatch, NotAttempted, Outcome, Result, call_answer, describe
from helpers.checks.probes import layers_used, torch_calls, whole_number
from helpers.checks.rules import with_globals


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _expect_int(got, name: str) -> int:
    """A size or count in any usual form (int, numpy integer, 4.0, a one-element tensor) as an int."""
    if isinstance(got, float) and not got.is_integer():
        raise Mismatch(f"{name} is {got}, not a whole number: sizes are whole numbers, and PyTorch rounds "
                       "down (use //).")
    if isinstance(got, (tuple, list, torch.Size)):
        raise Mismatch(f"{name} should be one whole number, got {describe(got)}.")
    return whole_number(got, name)


def block_params(in_channels: int, out_channels: int) -> int:
    """How many parameters the convolution block the prompt describes has: those of its two layers that
    have any (a 5×5 convolution with bias, and batch norm), each built alone. No block is built here."""
    layers = (nn.Conv2d(in_channels, out_channels, kernel_size=5), nn.BatchNorm2d(out_channels))
    return sum(_n_params(layer) for layer in layers)


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# --------------------------------------------------------------- 1: output size


def _judge_size(fn, case):
    size, k, s, p = case
    got, calls = call_answer(torch_calls, fn, size, k, s, p, name="conv_output_size")
    built = layers_used(calls)
    if built:
        raise Mismatch(f"conv_output_size used {built[0]}: the exercise asks for the arithmetic, not a "
                       "layer. Compute the size from size, kernel_size, stride and padding.")
    got = _expect_int(got, f"conv_output_size({size}, {k}, {s}, {p})")
    if got == (size + 2 * p - k) // s + 1:
        return
    where = f"conv_output_size({size}, {k}, {s}, {p}) returned {got}"
    guesses = [
        ((size - k) // s + 1, "the padding is missing: it adds `padding` pixels on each side."),
        ((size + p - k) // s + 1, "padding adds pixels on both sides: count it twice (2 * padding)."),
        ((size + 2 * p - k) // s, "the +1 is missing: a kernel of size k fits (size - k) + 1 times with stride 1."),
        (-(-(size + 2 * p - k) // s) + 1, "PyTorch rounds down (floor division //), not up and not to the "
                                          "nearest whole number."),
        (round((size + 2 * p - k) / s) + 1, "PyTorch rounds down (floor division //), not to the nearest whole "
                                           "number: round() is not the same."),
        (size + 2 * p - k + 1, "divide by the stride: a stride of s takes every s-th position."),
    ]
    for value, advice in guesses:
        if got == value:
            raise Mismatch(f"{where}: {advice}")
    raise Mismatch(f"{where}, which is wrong: the formula is built from size, 2·padding, kernel and stride.")


def _cases_size():
    return [(28, 5, 1, 0), (24, 2, 2, 0), (28, 3, 1, 1), (7, 3, 2, 1), (28, 5, 2, 0)]


ex1 = Exercise(
    1, "conv_output_size", points=2, judge=_judge_size, cases=_cases_size,
    hints=[
        "Pad first: the padded image is size + 2·padding wide. Then count how many positions a kernel of "
        "width kernel_size can take when it moves `stride` pixels at a time.",
        "Integer arithmetic only: + and - for the padded width and the kernel, // (floor division: "
        "PyTorch rounds down) for the stride, and the first position counts too. A max-pool uses the same"
        " arithmetic with stride = kernel_size. Don't build a layer here.",
        "padded = ____                # the width after padding both sides\n"
        "return (____ - ____) // ____ + ____",
    ],
)


# --------------------------------------------------------------- 2: flatten size


def classic_features() -> nn.Sequential:
    """The feature extractor of the classic two-block 5×5 CNN (flatten size 64·4·4 on 28×28)."""
    return nn.Sequential(nn.Conv2d(1, 32, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 5), nn.ReLU(),
                         nn.MaxPool2d(2))


def padded_features() -> nn.Sequential:
    """Two blocks of padded 3×3 convolutions (TinyVGG's shape): 28 → 14 → 7."""
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))


def colour_features() -> nn.Sequential:
    """Feature layers for colour (3-channel) images, for a check on a non-square RGB input."""
    return nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 10, 3))


def _out_shape(features, shape):
    model = copy.deepcopy(features).eval()
    with torch.no_grad():
        return tuple(model(torch.zeros(1, *shape)).shape[1:])


def _judge_flatten(fn, case):
    features, shape = case
    out = _out_shape(features, shape)
    want = math.prod(out)
    got = _expect_int(call_answer(fn, copy.deepcopy(features), shape, name="flatten_size", explain=_flatten_error),
                      "flatten_size(...)")
    if got == want:
        return
    where = f"for input shape {shape}, flatten_size returned {got}"
    if got == 64 * 4 * 4:
        raise Mismatch(f"{where}: 64·4·4 = 1024 is the flatten size of the classic 5×5 network without padding "
                       "on 28×28 images. This network or input is different: compute the size from the shapes.")
    if got == math.prod(out[1:]):
        raise Mismatch(f"{where}: you forgot the channels; multiply height × width by the number of channels.")
    if got > want and got % want == 0:
        raise Mismatch(f"{where}: that counts the whole dummy batch; count the features of one image "
                       "(the output's C·H·W, without the batch dimension).")
    if got == out[0]:
        raise Mismatch(f"{where}: that is only the number of channels; multiply by height and width too.")
    _mistaken_shapes(features, shape, got, where)
    raise Mismatch(f"{where}, which is wrong: pass a dummy batch torch.zeros(1, *input_shape) through "
                   "`features` and count the numbers per image.")


def _mistaken_shapes(features, shape, got, where) -> None:
    """Name a dummy image of another shape than input_shape: 28×28 always, or square."""
    def numbers(other):
        try:
            return math.prod(_out_shape(features, other))
        except RuntimeError:  # the layers cannot take that shape
            return None
    channels, height, width = shape
    if (height, width) != (28, 28) and got == numbers((channels, 28, 28)):
        raise Mismatch(f"{where}: that is the size for a 28×28 image; build the dummy image from input_shape "
                       "(torch.zeros(1, *input_shape)), whatever its height and width.")
    if height != width and got in (numbers((channels, height, height)), numbers((channels, width, width))):
        raise Mismatch(f"{where}: that is the size for a square image; height and width can differ, so use "
                       "both from input_shape.")


def _flatten_error(message: str) -> str | None:
    if "channels, but got" in message:
        return ("The dummy image needs input_shape's number of channels: build it from input_shape, "
                "torch.zeros(1, *input_shape), not from a fixed shape.")
    if "Expected 3D (unbatched) or 4D (batched) input" in message or "expected input" in message:
        return "The dummy input needs a batch dimension: torch.zeros(1, *input_shape)."
    if "not callable" in message or "unsupported operand" in message:
        return "input_shape is a tuple (channels, height, width); features is a module you can call."
    return None


def _cases_flatten():
    # "any feature layers and any input shape": a colour image that is not square too
    return [(classic_features(), (1, 28, 28)), (padded_features(), (1, 28, 28)), (colour_features(), (3, 20, 16))]


ex2 = Exercise(
    2, "flatten_size", points=2, judge=_judge_flatten, cases=_cases_flatten,
    hints=[
        "You don't need the formula: run a dummy batch of one image through `features` and look at the "
        "shape that comes out.",
        "torch.zeros(1, *input_shape) is a batch of one blank image; call `features` on it inside "
        "torch.no_grad(); Tensor.numel() of the first image's output counts C·H·W.",
        "with torch.no_grad():\n    out = ____(torch.zeros(____))     # (1, C, H, W)\nreturn ____",
    ],
)


# --------------------------------------------------------------- 3: a conv block


def _layers(block, kind):
    return [m for m in block.modules() if isinstance(m, kind)]


_KINDS = {nn.Conv2d: "conv", nn.ReLU: "ReLU", nn.MaxPool2d: "max-pool", nn.BatchNorm2d: "batch norm"}
_ORDER = ("conv", "ReLU", "max-pool", "batch norm")


def _judge_block(fn, case):
    cin, cout, shape = case
    block = call_answer(fn, cin, cout, name="conv_block")
    if isinstance(block, (list, tuple)):
        raise Mismatch("conv_block returned a Python list: wrap the layers in nn.Sequential(...).")
    if not isinstance(block, nn.Module):
        raise Mismatch(f"conv_block should return an nn.Sequential, got {describe(block)}.")
    convs = _layers(block, nn.Conv2d)
    if len(convs) != 1:
        raise Mismatch(f"the block should hold exactly one nn.Conv2d, found {len(convs)}.")
    conv = convs[0]
    if (conv.in_channels, conv.out_channels) == (cout, cin) and cin != cout:
        raise Mismatch("in and out channels are swapped: nn.Conv2d(in_channels, out_channels, ...).")
    if (conv.in_channels, conv.out_channels) != (cin, cout):
        raise Mismatch(f"for conv_block({cin}, {cout}) the convolution maps {conv.in_channels} channels to "
                       f"{conv.out_channels}: use the arguments in_channels and out_channels.")
    if conv.kernel_size != (5, 5):
        raise Mismatch(f"the convolution has kernel_size {conv.kernel_size}; this block uses 5×5 filters.")
    if conv.padding != (0, 0) or conv.stride != (1, 1):
        raise Mismatch("this block's convolution has no padding and stride 1 (28 → 24): leave both at their defaults.")
    if not _layers(block, nn.ReLU):
        raise Mismatch("there is no nn.ReLU(): without it two blocks collapse into one linear map.")
    pools = _layers(block, nn.MaxPool2d)
    if len(pools) != 1 or pools[0].kernel_size not in (2, (2, 2)):
        raise Mismatch("add one nn.MaxPool2d with a 2×2 window to halve the height and width.")
    norms = _layers(block, nn.BatchNorm2d)
    if _layers(block, nn.BatchNorm1d):
        raise Mismatch("use nn.BatchNorm2d for images (one mean and variance per channel), not BatchNorm1d.")
    if len(norms) != 1 or norms[0].num_features != cout:
        raise Mismatch(f"add one nn.BatchNorm2d after the pooling: it normalises each of the block's {cout} channels.")
    if next(iter(block.children()), None) is not conv:
        raise Mismatch("the convolution should come first: it is the layer that sees the input channels.")
    order = [_KINDS[type(m)] for m in block.modules() if type(m) in _KINDS]
    if order != list(_ORDER):
        raise Mismatch(f"the layers run in the order {' → '.join(order)}; this exercise fixes "
                       f"{' → '.join(_ORDER)} (see the prompt: conv → BN → ReLU is common too, but here every "
                       "network must be the same).")
    extra = _n_params(block) - block_params(cin, cout)
    if extra:
        raise Mismatch(f"the block has {abs(extra)} parameters {'too many' if extra > 0 else 'too few'}: "
                       "only one Conv2d and one BatchNorm2d should have any.")
    x = torch.randn(*shape, generator=_gen(40))
    out = call_answer(block, x, name="conv_block(...)")
    want = (shape[0], cout, (shape[2] - 4) // 2, (shape[3] - 4) // 2)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != want:
        raise Mismatch(f"on input of shape {shape} the block should give shape {want}, got "
                       f"{describe(out)}.")


def _cases_block():
    return [(1, 32, (2, 1, 28, 28)), (32, 64, (2, 32, 12, 12))]


ex3 = Exercise(
    3, "conv_block", points=2, judge=_judge_block, cases=_cases_block,
    hints=[
        "Four layers in nn.Sequential: a 5×5 convolution, the ReLU, a 2×2 max-pool, then batch norm over "
        "the out_channels channels.",
        "nn.Sequential holds them in order; the classes are nn.Conv2d (in channels, out channels, "
        "kernel_size), nn.ReLU, nn.MaxPool2d (its kernel size) and nn.BatchNorm2d (the number of "
        "channels).",
        "return nn.Sequential(\n    nn.Conv2d(____, ____, kernel_size=____),\n    ____,\n"
        "    nn.MaxPool2d(____),\n    nn.BatchNorm2d(____),\n)",
    ],
)


# --------------------------------------------------------------- 4: parameters of a convolution


def _judge_conv_params(fn, case):
    cin, cout, k = case
    want = _n_params(nn.Conv2d(cin, cout, k, device="meta"))
    got, calls = call_answer(torch_calls, fn, cin, cout, k, name="conv_params")
    built = layers_used(calls)
    if built:
        raise Mismatch(f"conv_params used {built[0]}: the exercise asks for the count by arithmetic, not by "
                       "building the layer. Count the weights of the filters, then the biases.")
    got = _expect_int(got, f"conv_params({cin}, {cout}, {k})")
    if got == want:
        return
    where = f"conv_params({cin}, {cout}, {k}) returned {got}"
    guesses = {
        cin * cout * k * k: "you left out the biases: one per output channel.",
        cout * k * k + cout: "each filter spans every input channel: it has in_channels × k × k weights.",
        cin * cout * k + cout: "a k × k filter has k² weights per input channel, not k.",
        cin * cout * k * k + cin: "there is one bias per output channel, not per input channel.",
    }
    for value, advice in guesses.items():
        if got == value:
            raise Mismatch(f"{where}: {advice}")
    if got > want:
        raise Mismatch(f"{where}, too many: the same filters slide over every position (weight sharing), so the "
                       "image size does not enter the count.")
    raise Mismatch(f"{where}, which is wrong: count out_channels filters of in_channels × k × k weights, plus biases.")


def _cases_conv_params():
    return [(1, 32, 5), (32, 64, 5), (3, 16, 3)]


ex4 = Exercise(
    4, "conv_params", points=1, judge=_judge_conv_params, cases=_cases_conv_params,
    hints=[
        "A convolution has out_channels filters. Each filter looks at a k × k window of every input "
        "channel, and each output channel has one bias.",
        "Only * and +: one filter holds in_channels × kernel_size × kernel_size weights; count the "
        "filters, then add the biases. The image size does not appear, because every position shares the "
        "same filters. Don't build an nn.Conv2d here.",
        "weights_per_filter = ____\nreturn ____ * weights_per_filter + ____",
    ],
)


# --------------------------------------------------------------- 5: the CNN


def toy_images(n: int = 64, seed: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise images with a bright square in one of four quadrants; the label is the quadrant."""
    g = _gen(seed)
    x = 0.3 * torch.rand(n, 1, 28, 28, generator=g)
    y = torch.randint(0, 4, (n,), generator=g)
    for i, q in enumerate(y.tolist()):
        r, c = 4 + 14 * (q // 2), 4 + 14 * (q % 2)
        x[i, 0, r:r + 6, c:c + 6] += 0.7
    return x, y


def _trains(model) -> bool:
    """True when 30 Adam steps on the toy images more than halve the loss."""
    x, y = toy_images()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = copy.deepcopy(model).train()
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        losses = []
        for _ in range(30):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return losses[-1] < 0.5 * losses[0]


class StandInBlock(nn.Module):
    """What the check puts in place of your conv_block while it judges build_cnn: the same shapes as
    Exercise 3's block, made differently (a 1×1 convolution, a 2-pixel crop, an average pool, batch norm so
    that it trains quickly), so that an unfinished or wrong conv_block costs Exercise 3 alone, never build_cnn."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.mix = nn.Conv2d(in_channels, out_channels, kernel_size=1)
        self.pool = nn.AvgPool2d(2)
        self.norm = nn.BatchNorm2d(out_channels)

    def forward(self, x):  # (N, in, H, W) -> (N, out, (H - 4) // 2, (W - 4) // 2)
        return self.norm(self.pool(self.mix(x)[..., 2:-2, 2:-2]))


def _calls_conv_block(fn) -> bool:
    return "conv_block" in getattr(getattr(fn, "__code__", None), "co_names", ())


def _own_blocks_first(fn) -> None:
    """The instant check of build_cnn judges the learner's own conv_block first when build_cnn calls it: a
    wrong block is Exercise 3's mistake, and the message says so instead of blaming the classifier."""
    block = getattr(fn, "__globals__", {}).get("conv_block")
    if not _calls_conv_block(fn) or not callable(block):
        return
    try:
        for case in _cases_block():
            _judge_block(block, case)
    except NotAttempted:
        raise Mismatch("build_cnn calls conv_block, which is not written yet: do Exercise 3 first (the graded "
                       "test judges build_cnn without it).") from None
    except Mismatch as err:
        why = str(err).rstrip(".")
        raise Mismatch(f"build_cnn calls your conv_block, which is not right yet ({why}). Fix Exercise 3 first; "
                       "the graded test judges build_cnn with a stand-in block, so this costs Exercise 3 "
                       "only.") from None


def _classifier_params(c2: int, hidden: int) -> int:
    return (c2 * 4 * 4 + 1) * hidden + (hidden + 1) * 10


def _build(fn, c1, c2, hidden):
    """build_cnn(c1, c2, hidden) with stand-in blocks when it calls conv_block; returns (model, expected
    number of parameters)."""
    if not _calls_conv_block(fn):
        model = call_answer(fn, c1, c2, hidden, name="build_cnn")
        return model, block_params(1, c1) + block_params(c1, c2) + _classifier_params(c2, hidden)
    model = call_answer(with_globals(fn, {"conv_block": StandInBlock}), c1, c2, hidden, name="build_cnn")
    if not isinstance(model, nn.Module):
        return model, 0
    blocks = [(b.in_channels, b.out_channels) for b in model.modules() if isinstance(b, StandInBlock)]
    if blocks != [(1, c1), (c1, c2)]:
        raise Mismatch(f"build_cnn({c1}, {c2}, {hidden}) makes the blocks {blocks}: it should call your conv_block "
                       "twice, from 1 channel to c1 and then from c1 to c2, in that order.")
    stand_ins = sum(_n_params(b) for b in model.modules() if isinstance(b, StandInBlock))
    return model, stand_ins + _classifier_params(c2, hidden)


def _judge_cnn(fn, case):
    c1, c2, hidden, train = case
    model, want = _build(fn, c1, c2, hidden)
    if not isinstance(model, nn.Module):
        raise Mismatch(f"build_cnn should return an nn.Module (an nn.Sequential), got {describe(model)}.")
    x = torch.rand(4, 1, 28, 28, generator=_gen(51))
    out = call_answer(model, x, name=f"build_cnn({c1}, {c2}, {hidden})",
                      explain=lambda msg: _cnn_error(msg, c2))
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (4, 10):
        raise Mismatch(f"a batch of shape (4, 1, 28, 28) should give logits of shape (4, 10), got {describe(out)}.")
    if torch.allclose(out.detach().sum(dim=1), torch.ones(4), atol=1e-4) and (out >= 0).all():
        raise Mismatch("the outputs are probabilities: return logits (no Softmax at the end); "
                       "nn.CrossEntropyLoss applies log-softmax itself.")
    got = _n_params(model)
    if got != want:
        raise Mismatch(f"build_cnn({c1}, {c2}, {hidden}) has {got:,} parameters, {'more' if got > want else 'fewer'} "
                       "than the network described: two conv blocks, Flatten, Linear(c2·4·4, hidden), ReLU, "
                       "Linear(hidden, 10).")
    if len(_layers(model, nn.Linear)) != 2 or not any(isinstance(m, nn.ReLU) for m in _classifier(model)):
        raise Mismatch("the classifier is Linear(c2·4·4, hidden), ReLU, Linear(hidden, 10).")
    if train and not call_answer(_trains, model, name="training build_cnn(...)"):
        raise Mismatch("the network does not learn: 30 Adam steps on a small batch should more than halve the "
                       "loss. Is the ReLU between the two Linear layers?")


def _classifier(model: nn.Module) -> list[nn.Module]:
    """The layers after the first nn.Linear (where the ReLU between the two Linear layers must be)."""
    layers = [m for m in model.modules() if not list(m.children())]
    first = next((i for i, m in enumerate(layers) if isinstance(m, nn.Linear)), len(layers))
    return layers[first:]


def _cnn_error(message: str, c2: int) -> str | None:
    shapes = re.search(r"\((\d+)x(\d+) and (\d+)x(\d+)\)", message)
    if shapes and shapes.group(2) == "4":
        return "nn.Flatten() is missing: the Linear layer got the (batch, c2, 4, 4) feature maps, not vectors."
    if "cannot be multiplied" in message:
        return (f"The first Linear layer's in_features must equal the flatten size, c2·4·4 = {c2}·4·4 here: "
                "64·4·4 is right only when c2 = 64.")
    if "expected input" in message and "channels" in message:
        return "The second block's in_channels must equal the first block's out_channels (c1)."
    return None


def _cases_cnn():
    return [(32, 64, 128, False), (8, 16, 64, True)]


class _CnnExercise(Exercise):
    """build_cnn's instant check looks at the learner's conv_block first; its graded test does not."""

    def check(self, answer):
        try:
            _own_blocks_first(answer)
        except Mismatch as err:
            return Result(self.title, Outcome.INCORRECT, str(err))
        return super().check(answer)


ex5 = _CnnExercise(
    5, "build_cnn", points=3, judge=_judge_cnn, cases=_cases_cnn,
    hints=[
        "Two of your conv blocks (1 → c1, then c1 → c2), nn.Flatten(), then a small classifier. After two"
        " blocks a 28×28 image is 4×4, with c2 channels.",
        "nn.Sequential with your conv_block twice, nn.Flatten, then nn.Linear, nn.ReLU and nn.Linear: the"
        " first nn.Linear takes c2 × 4 × 4 features, the last gives 10 logits.",
        "return nn.Sequential(\n    conv_block(____, ____),     # (N, 1, 28, 28) -> (N, c1, 12, 12)\n"
        "    conv_block(____, ____),     # -> (N, c2, 4, 4)\n    nn.Flatten(),\n"
        "    nn.Linear(____, ____),\n    nn.ReLU(),\n    nn.Linear(____, ____),      # -> (N, 10) logits\n)",
    ],
)

EXERCISES = (ex1, ex2, ex3, ex4, ex5)


# --------------------------------------------------------------- stand-ins for unsolved exercises
# The lesson's cells after an exercise use these while it is unsolved (checks.exN.yours_or), so that a learner
# who skips it can go on. None of them is an answer: each breaks its exercise's rule or differs from it.


def size_from_a_layer(size: int, kernel_size: int, stride: int = 1, padding: int = 0) -> int:
    """Exercise 1's stand-in: runs a real convolution and measures its output (the exercise asks for the
    arithmetic instead)."""
    with torch.no_grad():
        return nn.Conv2d(1, 1, kernel_size, stride, padding)(torch.zeros(1, 1, size, size)).shape[-1]


def params_from_a_layer(in_channels: int, out_channels: int, kernel_size: int) -> int:
    """Exercise 4's stand-in: builds the layer and counts (the exercise asks for the arithmetic instead)."""
    return _n_params(nn.Conv2d(in_channels, out_channels, kernel_size, device="meta"))


def stand_in_cnn(c1: int = 32, c2: int = 64, hidden: int = 128) -> nn.Sequential:
    """Exercise 5's stand-in: two blocks of padded 3×3 convolutions (28 → 14 → 7, no batch norm), not the
    network the exercise describes."""
    return nn.Sequential(nn.Sequential(nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)),
                         nn.Sequential(nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)),
                         nn.Flatten(), nn.Linear(c2 * 7 * 7, hidden), nn.ReLU(), nn.Linear(hidden, 10))

"""Instant checks for lesson 01, tensors and autograd.

Each exercise's judge compares the learner's function with PyTorch's own answer on
the same inputs, and recognises the usual mistakes so it can name them.

Introduced in lesson 01.
"""

from __future__ import annotations

import contextlib
import numbers

import torch
import torch.nn.functional as F
from torch.optim.optimizer import register_optimizer_step_pre_hook

from helpers.checks.core import (
    Exercise,
    Mismatch,
    call_answer,
    expect_dtype,
    expect_shape,
    expect_tensor,
    expect_tensor_like,
    values_close,
)
from helpers.checks.rules import (
    call_recorded,
    call_watched,
    describe,
    forbid_calls,
    forbid_names,
    has_loop,
    referenced_names,
)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------- 1: dtype and scale


def _judge_pixels(fn, images):
    got = expect_tensor(call_answer(fn, images, name="to_float_pixels"))
    expect_shape(got, images.shape, advice=lambda *_: "keep every pixel where it is.")
    expect_dtype(got, torch.float32, advice={
        torch.uint8: "integer tensors stay integers; convert with .float() before dividing "
                     "(uint8 // 255 rounds every pixel down to 0 or 1).",
        torch.float64: "PyTorch layers expect float32; .double() or numpy division gives float64.",
    }.get(got.dtype, "convert with .float() or .to(torch.float32)."))
    back = got.double() * 255
    if values_close(back, images.double(), atol=1e-3):
        return
    if values_close(got.double(), images.double()):
        raise Mismatch("the values still go up to 255: divide by 255 so pixels lie in [0, 1].")
    if values_close(got.double() * 256, images.double(), atol=1e-3):
        raise Mismatch("the values are slightly too small: the largest uint8 value is 255, not 256.")
    brightest = int(images.max())
    if 0 < brightest < 255 and values_close(got.double() * brightest, images.double(), atol=1e-3):
        raise Mismatch(f"you divided by the brightest pixel of these images ({brightest}), so it became 1.0: divide "
                       "by 255, the largest value a uint8 pixel can hold, so that every image gets the same scale.")
    raise Mismatch("the values are wrong: pixel 0 should become 0.0 and pixel 255 should become 1.0.")


def _cases_pixels():
    images = torch.randint(0, 256, (4, 28, 28), generator=_gen(1), dtype=torch.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255
    dark = torch.randint(0, 90, (2, 6, 6), generator=_gen(11), dtype=torch.uint8)  # 255 maps to 1.0 even here
    return [images, dark]


ex1 = Exercise(
    1, "to_float_pixels", points=1, judge=_judge_pixels, cases=_cases_pixels,
    hints=[
        "Two things must change: the dtype (uint8 to float32) and the range (0..255 to 0..1).",
        "Tensor.float() (or .to(torch.float32)) changes the dtype; dividing a tensor by a number divides "
        "every element. The largest uint8 value is 255.",
        "return images.____() / ____",
    ],
)


# --------------------------------------------------------------- 2: broadcasting


NO_LOOPS = ("the exercise asks for broadcasting, without loops or comprehensions: compute one mean and one std "
            "per column with dim=0 and let broadcasting apply them to every row.")


def _judge_standardize(fn, x):
    expected = (x - x.mean(dim=0)) / x.std(dim=0)
    if has_loop(fn):
        raise Mismatch(NO_LOOPS)
    got, _ = call_watched(fn, x, name="standardize_features", arg_names=("x",), explain=_standardize_error)
    expect_tensor_like(got, expected, value_advice=_standardize_advice(got, x),
                       shape_advice=lambda have, want: "the result must have the same shape as x: "
                       "a statistic of the wrong dimension was broadcast against it; reduce over dim=0.")


def _standardize_error(message: str) -> str | None:
    if "must match the size" in message:
        return ("A statistic over dim=1 has one value per row and cannot broadcast against the "
                "columns: reduce over dim=0, one mean and std per feature.")
    return None


def _standardize_advice(got, x):
    if not isinstance(got, torch.Tensor) or got.shape != x.shape:
        return None
    rows = (x - x.mean(dim=1, keepdim=True)) / x.std(dim=1, keepdim=True)
    if values_close(got, rows):
        return "you standardised each row (one sample); standardise each column (one feature): reduce over dim=0."
    if values_close(got, (x - x.mean()) / x.std()):
        return "you used one mean and one std for the whole tensor; compute them per column with dim=0."
    if values_close(got, (x - x.mean(dim=0)) / x.std(dim=0, correction=0)):
        return "you used the biased std (correction=0); use torch's default x.std(dim=0)."
    if values_close(got, x - x.mean(dim=0)):
        return "you subtracted the mean but did not divide by the standard deviation."
    return "each column of the result should have mean 0 and standard deviation 1."


def _cases_standardize():
    return [torch.randn(6, 3, generator=_gen(2)) * 5 + 2]


ex2 = Exercise(
    2, "standardize_features", points=2, judge=_judge_standardize, cases=_cases_standardize,
    hints=[
        "Rows are samples, columns are features: each column needs its own mean and std, and no loop is "
        "needed.",
        "Tensor.mean(dim=0) and Tensor.std(dim=0) give one value per column, of shape (n_features,); "
        "broadcasting applies them to every row of x.",
        "mean = x.____(dim=____)\nstd = ____\nreturn (____ - ____) / ____",
    ],
)


# --------------------------------------------------------------- 3: matrix multiplication


def _judge_linear(fn, case):
    x, weight, bias = case
    expected = F.linear(x, weight, bias)
    got, calls = call_watched(fn, x, weight, bias, name="linear_forward", arg_names=("x", "weight", "bias"),
                              explain=_linear_error)
    forbid_calls(calls, dict.fromkeys(("linear", "bilinear", "addmm_linear"), NO_FUNCTIONAL))
    advice = None
    if isinstance(got, torch.Tensor) and got.shape == expected.shape:
        if values_close(got, x @ weight.T):
            advice = "you forgot to add the bias."
        elif weight.shape[0] == weight.shape[1] and values_close(got, x @ weight + bias):
            advice = ("you multiplied by weight, not its transpose: nn.Linear stores weight "
                      "as (out_features, in_features).")
    expect_tensor_like(got, expected, value_advice=advice,
                       shape_advice=lambda have, want: "the output has one row per sample and "
                       "one column per output feature (x is (batch, in), weight is (out, in)).")


NO_FUNCTIONAL = ("the exercise asks you to write the layer with `@` (matrix multiplication), not with "
                 "torch.nn.functional or an nn.Linear layer: multiply x by the weight's transpose and add the bias.")


def _linear_error(message: str) -> str | None:
    if "cannot be multiplied" in message:
        return ("x @ weight fails because nn.Linear stores weight as (out_features, in_features): "
                "multiply by its transpose.")
    if "must match the size" in message:
        return "`*` multiplies element by element; use `@` for matrix multiplication."
    return None


def _cases_linear():
    g = _gen(3)
    return [(torch.randn(4, 3, generator=g), torch.randn(2, 3, generator=g), torch.randn(2, generator=g))]


ex3 = Exercise(
    3, "linear_forward", points=2, judge=_judge_linear, cases=_cases_linear,
    hints=[
        "Shapes first: x is (batch, in_features), weight is (out_features, in_features), the answer is "
        "(batch, out_features).",
        "The @ operator multiplies matrices; .T transposes weight to (in_features, out_features); a bias "
        "of shape (out_features,) broadcasts over the batch. F.linear is not allowed here.",
        "return x @ ____ + ____",
    ],
)


# --------------------------------------------------------------- 4: flatten


def _flatten_advice(images):
    n = images.shape[0]
    per_image = images[0].numel()

    def advice(have, want):
        if have == (images.numel(),):
            return ("you flattened the whole batch into one vector: keep dimension 0 (the batch) "
                    "and flatten the rest, e.g. with start_dim=1.")
        if n == 1 and (have == (per_image,) or (have and have[0] != 1)):
            return "the batch dimension disappeared for a batch of one image: avoid squeeze()."
        if len(have) == 2 and have[1] == 784 and per_image != 784:
            return (f"you hard-coded 784 (28*28) but each image here has {per_image} values: "
                    "let PyTorch work out the feature size.")
        if have == (per_image, n):
            return "rows must be images: the batch dimension comes first."
        if len(have) > 2 and have[0] == n:
            return "flatten each image: every dimension after the batch must become one."
        return "one row per image, one column per pixel value."
    return advice


def _judge_flatten(fn, images):
    expected = torch.stack([img.flatten() for img in images])
    got, _ = call_watched(fn, images, name="flatten_images", arg_names=("images",), explain=_flatten_error)
    expect_tensor_like(got, expected, shape_advice=_flatten_advice(images),
                       value_advice="each row must hold one image's pixels in their original order.")


def _flatten_error(message: str) -> str | None:
    if "is invalid for input of size" in message:
        return ("A hard-coded size (784 = 28*28?) only fits one image shape: let PyTorch work it out "
                "with -1, or use flatten(start_dim=1).")
    if "view" in message and "stride" in message:
        return ("view() never copies, so it needs strides compatible with the new shape, and a batch made by "
                "transpose or permute does not have them: use reshape() or flatten(), which copy when they must.")
    return None


def _cases_flatten():
    # what the prompt promises: any batch size (one image too), channels and size, and a batch that is not
    # contiguous (transposed images)
    g = _gen(4)
    return [torch.rand(8, 1, 28, 28, generator=g), torch.rand(1, 3, 5, 7, generator=g),
            torch.rand(3, 1, 28, 28, generator=g).transpose(2, 3)]


ex4 = Exercise(
    4, "flatten_images", points=2, judge=_judge_flatten, cases=_cases_flatten,
    hints=[
        "The batch dimension (dimension 0) must stay; all the others become one.",
        "Tensor.flatten(start_dim=...) merges every dimension from start_dim on; Tensor.reshape(n, -1) "
        "works too, -1 asking PyTorch to compute that size, so it works for any image shape.",
        "return images.flatten(start_dim=____)    # or: images.reshape(____, -1)",
    ],
)


# --------------------------------------------------------------- 5: gradient by hand


def _autograd_grads(x, y, w, b):
    w = w.detach().clone().requires_grad_(True)
    b = b.detach().clone().requires_grad_(True)
    ((w * x + b) - y).pow(2).sum().backward()
    return w.grad, b.grad


NO_AUTOGRAD = ("the exercise asks for the gradient by the chain rule, without autograd: no backward(), .grad, "
               "requires_grad or torch.autograd / torch.func; write dL/dw and dL/db as formulas in x, y, w and b.")
_AUTOGRAD_NAMES = ("backward", "grad", "requires_grad", "requires_grad_", "autograd", "vjp", "jvp", "jacrev",
                   "jacfwd", "hessian", "functorch")


def _judge_grads(fn, case):
    x, y, w, b = case
    dw, db = _autograd_grads(x, y, w, b)
    forbid_names(fn, dict.fromkeys(_AUTOGRAD_NAMES, NO_AUTOGRAD))
    got, calls = call_recorded(fn, x, y, w, b, name="mse_grads")
    forbid_calls(calls, dict.fromkeys(("backward", "grad", "requires_grad_", "vjp", "jvp"), NO_AUTOGRAD))
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        what = f"a {type(got).__name__} of length {len(got)}" if isinstance(got, (tuple, list)) else describe(got)
        raise Mismatch(f"mse_grads should return two tensors (dL/dw, dL/db), got {what}.")
    gw, gb = (expect_tensor(g, name=n) for g, n in zip(got, ("dL/dw", "dL/db"), strict=True))
    for g, name in ((gw, "dL/dw"), (gb, "dL/db")):
        if g.numel() == x.numel() and x.numel() > 1:
            raise Mismatch(f"{name} has one value per point: sum them into a single number.")
        expect_shape(g, (), name=name, advice=lambda *_: "a gradient of a scalar parameter is a scalar.")
    if values_close(gw, dw) and values_close(gb, db):
        return
    raise Mismatch(_grads_advice(gw, gb, dw, db, len(x)))


def _grads_advice(gw, gb, dw, db, n):
    pairs = {
        "exactly half the right gradient: the derivative of u² is 2u.": (dw / 2, db / 2),
        "the sign is flipped: d/dw of (pred - y)² is +2·(pred - y)·x.": (-dw, -db),
        "you averaged over the points, but this loss is a sum (.sum(), not .mean()).": (dw / n, db / n),
        "you returned (dL/db, dL/dw): return the gradient for w first.": (db, dw),
    }
    for text, (ew, eb) in pairs.items():
        if values_close(gw, ew) and values_close(gb, eb):
            return text
    which = "dL/dw" if not values_close(gw, dw) else "dL/db"
    return f"{which} is wrong: differentiate (w·x + b - y)² with respect to that parameter and sum over the points."


def _cases_grads():
    g = _gen(5)
    x = torch.linspace(-1, 1, 7)
    y = 3 * x - 1 + 0.1 * torch.randn(7, generator=g)
    return [(x, y, torch.tensor(0.5), torch.tensor(0.2))]


ex5 = Exercise(
    5, "mse_grads", points=3, judge=_judge_grads, cases=_cases_grads,
    hints=[
        "Write pred = w * x + b and r = pred - y. The loss is the sum of r². Use the chain rule on each "
        "term.",
        "Only tensor arithmetic (*, +, -) and Tensor.sum(): each gradient is a sum over the data points, "
        "a 0-dimensional tensor. No backward() or .grad here.",
        "residual = ____ - y            # pred - y, one value per data point\n"
        "grad_w = (2 * ____ * ____).sum()\ngrad_b = ____\nreturn grad_w, grad_b",
    ],
)


# --------------------------------------------------------------- 6: autograd descent


def _descent(x, y, lr, steps, *, piled=False):
    """(w, b) after ``steps`` steps of gradient descent on the summed squared error from w = b = 0, in closed
    form rather than by running a loop. With H = XᵀX and r = Xᵀy (X has the columns x and 1), the gradient is
    2(Hθ - r), so one step is affine in θ and in the gradient kept in .grad (``piled``: never reset), and
    ``steps`` steps are one power of a 5×5 matrix, in float64."""
    x64, y64 = x.detach().double().flatten(), y.detach().double().flatten()
    X = torch.stack([x64, torch.ones_like(x64)], dim=1)
    H, r, eye = X.T @ X, X.T @ y64, torch.eye(2, dtype=torch.float64)
    keep = 1.0 if piled else 0.0
    A = torch.zeros(5, 5, dtype=torch.float64)  # the state is (θ, .grad, 1)
    A[:2, :2], A[:2, 2:4], A[:2, 4] = eye - 2 * lr * H, -lr * keep * eye, 2 * lr * r
    A[2:4, :2], A[2:4, 2:4], A[2:4, 4] = 2 * H, keep * eye, -2 * r
    A[4, 4] = 1.0
    state = torch.linalg.matrix_power(A, int(steps)) @ torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    return state[0], state[1]


NO_OPTIM = ("the exercise asks for the update written by hand (in place, inside torch.no_grad()), "
            "not torch.optim: drop the optimizer.")
NO_MSE_GRADS = ("the exercise asks for autograd's gradients (loss.backward() and w.grad), not the hand-derived "
                "mse_grads from Exercise 5.")
NO_BACKWARD = ("fit_line never called backward(): compute the summed squared error from w and b and call "
               "loss.backward(), so that autograd fills w.grad and b.grad.")


@contextlib.contextmanager
def _count_optimizer_steps():
    """Count every torch.optim optimizer's step() while the answer runs."""
    seen = {"steps": 0}
    handle = register_optimizer_step_pre_hook(lambda *_: seen.__setitem__("steps", seen["steps"] + 1))
    try:
        yield seen
    finally:
        handle.remove()


def _calls_mse_grads(fn) -> bool:
    """True when fit_line's code refers to mse_grads, by that name or another bound to the same function."""
    scope = getattr(fn, "__globals__", {})
    names = referenced_names(fn)
    target = scope.get("mse_grads")
    return "mse_grads" in names or (target is not None and any(scope.get(n) is target for n in names))


def _as_number(value, name):
    """w or b as a 0-dimensional float64 tensor: a one-element tensor, a float or a numpy scalar all do."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise Mismatch(f"{name} should be a single number, got a tensor of shape {tuple(value.shape)}.")
        return value.detach().reshape(()).to("cpu", torch.float64)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return torch.tensor(float(value), dtype=torch.float64)
    raise Mismatch(f"{name} should be a number (a tensor or a float), got {describe(value)}.")


def _judge_fit(fn, case):
    x, y, lr, steps = case
    if _calls_mse_grads(fn):
        raise Mismatch(NO_MSE_GRADS)
    forbid_names(fn, {"optim": NO_OPTIM})
    with _count_optimizer_steps() as optimizer:
        got, calls = call_recorded(fn, x, y, lr, steps, name="fit_line", explain=_fit_error)
    if optimizer["steps"]:
        raise Mismatch(NO_OPTIM)
    if steps and not calls.called(["backward", "grad"]):
        raise Mismatch(NO_BACKWARD)
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        raise Mismatch(f"fit_line should return the pair (w, b), got {describe(got)}.")
    gw, gb = (_as_number(t, n) for t, n in zip(got, ("w", "b"), strict=True))
    ew, eb = _descent(x, y, lr, steps)
    if values_close(gw, ew, rtol=1e-3, atol=1e-4) and values_close(gb, eb, rtol=1e-3, atol=1e-4):
        return
    raise Mismatch(_fit_advice(gw, gb, x, y, lr, steps))


def _fit_error(message: str) -> str | None:
    if "leaf Variable that requires grad" in message:
        return "Update the parameters inside `with torch.no_grad():`."
    if "NoneType" in message:
        return ("A .grad was None: `w = w - ...` makes a new tensor that is not a leaf; "
                "update w in place (with -=) inside `with torch.no_grad():`.")
    if "backward through the graph a second time" in message:
        return "Compute the loss again inside the loop, from the current w and b."
    return None


def _fit_advice(gw, gb, x, y, lr, steps):
    def same(ref):
        return values_close(gw, ref[0], rtol=1e-3, atol=1e-4) and values_close(gb, ref[1], rtol=1e-3, atol=1e-4)
    if same(_descent(x, y, lr, steps, piled=True)):
        return ("your parameters match gradient descent where gradients pile up from step to step: "
                "reset w.grad and b.grad to zero after each update.")
    for k in (steps - 1, steps + 1):
        if k >= 0 and same(_descent(x, y, lr, k)):
            return f"you took {k} steps instead of {steps}."
    return ("w and b differ from gradient descent on the summed squared error, starting from "
            "w = b = 0: check the start values, the loss and the update (a step of lr against the gradient).")


def _cases_fit():
    g = _gen(6)
    x = torch.linspace(-1, 1, 10)
    y = 2 * x + 0.5 + 0.05 * torch.randn(10, generator=g)
    return [(x, y, 0.01, 8)]


ex6 = Exercise(
    6, "fit_line", points=3, judge=_judge_fit, cases=_cases_fit,
    hints=[
        "Gradient descent with autograd: w and b start at 0 as tensors that require gradients. Each step:"
        " the loss, autograd's gradients, a small move of w and b against them, then reset the gradients.",
        "torch.zeros with shape () and requires_grad=True; loss.backward() fills w.grad and b.grad; the "
        "update goes inside `with torch.no_grad():`, in place with -=; Tensor.zero_() on a .grad resets "
        "it, otherwise the gradients of every step add up. Not torch.optim.",
        "w = torch.zeros(____)\nb = ____\nfor _ in range(____):\n"
        "    loss = ____              # summed squared error of w * x + b against y\n    loss.____()\n"
        "    with torch.no_grad():\n        w -= ____\n        b -= ____\n"
        "        ____                 # reset both gradients\nreturn ____",
    ],
)

EXERCISES = (ex1, ex2, ex3, ex4, ex5, ex6)


# --------------------------------------------------------------- stand-ins for unsolved exercises
# The lesson's cells after an exercise use these while it is unsolved (checks.exN.yours_or), so that a learner
# who skips it can go on. They are not answers: each fails its exercise's check.


def unscaled_pixels(images: torch.Tensor) -> torch.Tensor:
    """Exercise 1's stand-in: the pixels as float32, but still 0 to 255 (the exercise scales them to [0, 1])."""
    return images.to(torch.float32)

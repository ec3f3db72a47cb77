"""Probes the checks use to see how an answer works, not only what it returns.

- :func:`torch_calls` lists the PyTorch layers and functions an answer ran, so a check can
  enforce a prompt's rule ("use the arithmetic, don't build a layer") whatever the answer
  imported or how it named it. Unlike :class:`helpers.checks.rules.CallRecorder`, which sees
  torch functions (a layer only once it runs), it also sees a layer that is built and never run.
- :class:`OnHost` marks batch tensors that were never moved with ``.to(device)``: a grader
  without a GPU cannot see a label left on the CPU, but it can see a tensor that kept its mark.
- :func:`whole_number` accepts every reasonable spelling of a count (int, numpy integer,
  integral float, one-element tensor).

Introduced in lesson 04.
"""

from __future__ import annotations

import numbers
import sys
from collections.abc import Callable
from typing import Any

import torch

from helpers.checks.core import Mismatch, describe

# ------------------------------------------------------------------ what an answer ran


def _torch_name(frame_or_fn: Any, *, c_call: bool) -> str | None:
    """The dotted name of a torch function or method being called, or None for anything else."""
    if c_call:
        fn = frame_or_fn
        module = getattr(fn, "__module__", None) or type(getattr(fn, "__self__", None)).__module__ or ""
        name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", "?")
        return f"{module}.{name}" if module.startswith("torch") else None
    module = frame_or_fn.f_globals.get("__name__", "")
    if not module.startswith("torch"):
        return None
    code = frame_or_fn.f_code
    if code.co_name == "__init__" and "self" in frame_or_fn.f_locals:  # the class built, not where __init__ is
        return f"{module}.{type(frame_or_fn.f_locals['self']).__qualname__}.__init__"
    return f"{module}.{getattr(code, 'co_qualname', code.co_name)}"


def torch_calls(fn: Callable, *args: Any, **kwargs: Any) -> tuple[Any, list[str]]:
    """Call ``fn`` and return (its result, the torch functions and methods that ran, in order).

    Calls that torch makes inside itself count too: ``F.max_pool2d`` reaches the pooling through a
    dispatcher, and a check must see the pooling.
    """
    seen: list[str] = []

    def profile(frame, event, arg):
        if event == "call":
            name = _torch_name(frame, c_call=False)
        elif event == "c_call":
            name = _torch_name(arg, c_call=True)
        else:
            return
        if name is not None and len(seen) < 10_000:
            seen.append(name)

    old = sys.getprofile()
    sys.setprofile(profile)
    try:
        result = fn(*args, **kwargs)
    finally:
        sys.setprofile(old)
    return result, seen


LAYER_WORDS = ("conv", "pool", "torch.nn.modules", "unfold")


def layers_used(calls: list[str]) -> list[str]:
    """The calls among ``calls`` (in order) that build or run a layer (a module, a convolution or a pooling), by the
    names a learner knows them by (``Conv2d``, ``max_pool2d``)."""
    names = [friendly(c) for c in calls if any(w in c.lower() for w in LAYER_WORDS)]
    return [n for i, n in enumerate(names) if n and n not in names[:i]]  # in the order they ran


_PLUMBING = {"torch", "nn", "modules", "functional", "module", "Module", "Tensor", "pooling", "conv"}


def friendly(name: str) -> str:
    """``torch.nn.modules.conv.Conv2d.__init__`` -> ``Conv2d``; ``torch._VariableFunctionsClass.conv2d`` ->
    ``conv2d``: the part of a dotted name that a learner wrote."""
    parts = name.split(".")
    public = [p for p in parts if not p.startswith("_") and p not in _PLUMBING]
    if public:
        return public[-1]
    named = [p for p in parts if not (p.startswith("__") and p.endswith("__")) and p not in _PLUMBING]
    return named[-1].lstrip("_") if named else ""


# ------------------------------------------------------------------ tensors never moved


_MOVERS = {torch.Tensor.to, torch.Tensor.cuda, torch.Tensor.cpu}


class OnHost(torch.Tensor):
    """A batch tensor as the loader made it: its mark goes when it is moved with ``.to(device)``
    (or made anew with ``device=``); every other operation keeps it."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = super().__torch_function__(func, types, args, kwargs)
        if func in _MOVERS or kwargs.get("device") is not None:
            return _unmark(out)
        return out


def _unmark(value):
    if isinstance(value, OnHost):
        return value.as_subclass(torch.Tensor)
    if isinstance(value, (tuple, list)):
        return type(value)(_unmark(v) for v in value)
    return value


def on_host(t: torch.Tensor) -> torch.Tensor:
    """``t`` marked as not yet moved to the model's device."""
    return t.as_subclass(OnHost)


def is_on_host(t: Any) -> bool:
    return isinstance(t, OnHost)


# ------------------------------------------------------------------ counts in any reasonable form


def whole_number(got: Any, name: str) -> int:
    """``got`` as an int when it is a whole number in any usual form: an int, a numpy integer, a float
    such as 4.0, or a tensor holding one whole number. Anything else raises a Mismatch naming the form."""
    if got is None:
        raise Mismatch(f"{name} returned None: did you forget `return`?")
    if isinstance(got, bool):
        raise Mismatch(f"{name} should be a whole number, got the bool {got}.")
    if isinstance(got, torch.Tensor):
        if got.numel() != 1:
            raise Mismatch(f"{name} should be one whole number, got {describe(got)}.")
        got = got.item()
    elif isinstance(got, (tuple, list, torch.Size, dict, set, str)):
        raise Mismatch(f"{name} should be one whole number, got {describe(got)}.")
    elif hasattr(got, "item") and not isinstance(got, numbers.Number):  # numpy scalars and 0-d arrays
        try:
            got = got.item()
        except (ValueError, TypeError):
            raise Mismatch(f"{name} should be one whole number, got {describe(got)}.") from None
    if isinstance(got, numbers.Integral):
        return int(got)
    if isinstance(got, numbers.Real) and float(got).is_integer():
        return int(got)
    if isinstance(got, numbers.Real):
        raise Mismatch(f"{name} is {got}, not a whole number.")
    raise Mismatch(f"{name} should be a whole number, got {describe(got)}.")

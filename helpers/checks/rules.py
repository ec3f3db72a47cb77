"""Enforcing the rules a prompt states ("not F.softmax", "without autograd", "not torch.optim").

Two looks at an answer, used together by the lesson checks:

- a behavioural one, :class:`CallRecorder`: while the answer runs, it notes every torch function
  the answer calls itself (``F.softmax``, ``torch.softmax``, ``x.softmax``, ``nn.Softmax()(x)``,
  ``getattr(torch, "softmax")``... all arrive as ``softmax``), through PyTorch's own
  ``TorchFunctionMode``; so aliases and imports under other names change nothing;
- a static one, :func:`referenced_names` and :func:`has_loop`: the global and attribute names the
  answer's bytecode refers to (``mse_grads``, ``optim``, ``backward``) and whether it loops, for rules
  about code that is not a torch call.

:func:`call_watched` also notices an answer that changes its inputs in place, and one whose result
autograd cannot differentiate. :func:`with_globals` runs an answer with some of its global names bound
to known-good pieces (:func:`known_good`) in place of an earlier exercise's answer, so that each
exercise is judged on its own.

Introduced in lesson 01.
"""

from __future__ import annotations

import contextlib
import dis
import types
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from helpers.checks.core import Mismatch, call_answer
from helpers.checks.core import describe as describe  # lessons 01-03 import it from here too


class CallRecorder(TorchFunctionMode):
    """Records the name of every torch function called while it is active (``with CallRecorder() as rec``).

    Only the outermost calls are seen: what ``F.cross_entropy`` calls inside is not the answer's doing.
    """

    _unrecorded = 0  # > 0 while a known-good piece the check put in place runs: its calls are not the answer's

    def __init__(self):
        super().__init__()
        self.names: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if not CallRecorder._unrecorded:
            self.names.append(str(getattr(func, "__name__", func)).rsplit(".", 1)[-1])
        return func(*args, **(kwargs or {}))

    @staticmethod
    @contextlib.contextmanager
    def unrecorded():
        """Calls made inside this block are not recorded (for the check's own known-good pieces)."""
        CallRecorder._unrecorded += 1
        try:
            yield
        finally:
            CallRecorder._unrecorded -= 1

    def called(self, banned: Iterable[str]) -> list[str]:
        """The names of ``banned`` that were called, in the order of first use."""
        banned = set(banned)
        return list(dict.fromkeys(n for n in self.names if n in banned))


def call_recorded(fn: Callable, *args: Any, name: str,
                  explain: Callable[[str], str | None] | None = None) -> tuple[Any, CallRecorder]:
    """:func:`~helpers.checks.core.call_answer`, noting the torch functions the answer calls."""
    with CallRecorder() as recorder:
        got = call_answer(fn, *args, name=name, explain=explain)
    return got, recorder


def call_watched(fn: Callable, *args: Any, name: str, arg_names: tuple[str, ...],
                 explain: Callable[[str], str | None] | None = None,
                 differentiable: tuple[int, ...] = ()) -> tuple[Any, CallRecorder]:
    """:func:`call_recorded`, also failing when the answer changes one of its inputs in place.

    Args:
        arg_names: the parameters' names, for the message ("logits", "x").
        differentiable: positions of float inputs that arrive requiring grad (as a model's output
            would); the result must then be differentiable, and ``backward()`` through it must work.
    """
    copies = []
    for i, arg in enumerate(args):
        if isinstance(arg, torch.Tensor):
            arg = arg.detach().clone()
            if i in differentiable and arg.is_floating_point():
                arg = arg.requires_grad_(True).clone()  # a non-leaf, like a layer's output
        copies.append(arg)
    versions = [c._version if isinstance(c, torch.Tensor) else None for c in copies]
    with CallRecorder() as recorder:
        got = call_answer(lambda: fn(*copies), name=name, explain=explain)
    for arg_name, copy, version in zip(arg_names, copies, versions, strict=False):
        if version is not None and copy._version != version:
            raise Mismatch(f"{name} changed its input {arg_name} in place (-=, /=, an operation ending in _): the "
                           f"caller's tensor changes too, and in a network backward() then fails. Compute into a "
                           f"new tensor and leave {arg_name} as it is.")
    if differentiable and isinstance(got, torch.Tensor) and got.is_floating_point():
        if not got.requires_grad:
            raise Mismatch(f"no gradient flows back through {name}: its result does not depend on its input "
                           "through autograd. Don't use .detach(), .item(), .numpy(), .data or torch.no_grad().")
        try:
            with warnings.catch_warnings():  # nbgrader fails a test cell that wrote to stderr
                warnings.simplefilter("ignore")
                got.sum().backward()
        except Exception as err:  # noqa: BLE001 - whatever breaks backward, say so
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
            raise Mismatch(f"backward() through {name} fails ({first}): an in-place operation (+=, /=, ..._()) "
                           "overwrote a tensor that autograd needs; compute into new tensors.") from None
        got = got.detach()
    return got, recorder


def referenced_names(obj: Any, *, follow: bool = True, _seen: set | None = None) -> set[str]:
    """Global and attribute names used by a function's (or a class's methods') bytecode.

    Args:
        follow: also look inside the notebook's own functions that ``obj`` refers to by a global name.
    """
    seen = set() if _seen is None else _seen
    if id(obj) in seen:
        return set()
    seen.add(id(obj))
    names: set[str] = set()
    if isinstance(obj, type):
        for value in vars(obj).values():
            value = getattr(value, "__func__", value)
            if isinstance(value, types.FunctionType):
                names |= referenced_names(value, follow=follow, _seen=seen)
        return names
    func = getattr(obj, "__func__", obj)
    code = getattr(func, "__code__", None)
    if code is None:
        return names
    stack = [code]
    while stack:
        current = stack.pop()
        names.update(current.co_names)
        stack.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
    if follow:
        scope = getattr(func, "__globals__", {})
        for name in list(names):
            target = scope.get(name)
            if isinstance(target, types.FunctionType) and target.__module__ == func.__module__:
                names |= referenced_names(target, follow=follow, _seen=seen)
    return names


_JUMPS = set(dis.hasjrel) | set(dis.hasjabs)


def _loops(code: types.CodeType) -> bool:
    """A for loop or comprehension (FOR_ITER), or any jump back to an earlier instruction (a while loop)."""
    return any(ins.opname == "FOR_ITER" or (ins.opcode in _JUMPS and isinstance(ins.argval, int)
                                            and ins.argval < ins.offset)
               for ins in dis.get_instructions(code))


def has_loop(obj: Any, *, _seen: set | None = None) -> bool:
    """True when a function (or a notebook function it calls by name) has a for/while loop or a comprehension."""
    seen = set() if _seen is None else _seen
    func = getattr(obj, "__func__", obj)
    code = getattr(func, "__code__", None)
    if code is None or id(func) in seen:
        return False
    seen.add(id(func))
    stack = [code]
    while stack:
        current = stack.pop()
        if _loops(current):
            return True
        stack.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
    scope = getattr(func, "__globals__", {})
    return any(has_loop(scope[name], _seen=seen) for name in code.co_names
               if isinstance(scope.get(name), types.FunctionType) and scope[name].__module__ == func.__module__)


def with_globals(fn: Callable, replacements: Mapping[str, Any]) -> Callable:
    """``fn`` with the global names in ``replacements`` bound to other objects (``fn`` itself is untouched).

    Anything but a plain Python function (a class, a builtin, a callable object) comes back unchanged.
    """
    if not isinstance(fn, types.FunctionType):
        return fn
    scope = dict(fn.__globals__)
    scope.update(replacements)
    copy = types.FunctionType(fn.__code__, scope, fn.__name__, fn.__defaults__, fn.__closure__)
    copy.__kwdefaults__ = fn.__kwdefaults__
    copy.__dict__.update(fn.__dict__)
    copy.__qualname__, copy.__module__, copy.__doc__ = fn.__qualname__, fn.__module__, fn.__doc__
    return copy


def known_good(fn: Callable) -> Callable:
    """``fn`` as a stand-in for an earlier exercise's answer: what it calls is not held against the answer."""
    def stand_in(*args, **kwargs):
        with CallRecorder.unrecorded():
            return fn(*args, **kwargs)
    return stand_in


def forbid_calls(recorder: CallRecorder, banned: Mapping[str, str]) -> None:
    """Fail, naming the rule, when the answer called one of ``banned`` (torch function name -> rule)."""
    for name in recorder.called(banned):
        raise Mismatch(banned[name])


def forbid_names(obj: Any, banned: Mapping[str, str]) -> None:
    """Fail, naming the rule, when the answer's code refers to one of ``banned`` (name -> rule)."""
    used = referenced_names(obj)
    for name, rule in banned.items():
        if name in used:
            raise Mismatch(rule)

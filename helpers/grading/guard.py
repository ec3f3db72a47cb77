"""Inside the grading kernel: note the trusted state before any student code runs, and put
it back before every graded test cell.

What a student's answer cell can rebind or monkeypatch with ordinary Python, the guard
undoes: builtins (``AssertionError = ...``), functions and classes of torch, numpy and
the course's helpers (``torch.testing.assert_close = ...``, ``torch.allclose = ...``,
``torch.Tensor.__eq__ = ...``, a function's ``__code__``), ``sys.modules`` entries and
import hooks, the names the lesson imported (``checks = ...``), IPython's input and AST
transformers, event callbacks and custom exception handlers. The check modules
(``helpers.checks.*``) are imported afresh from disk, so a patched ``Exercise`` or
exercise object is simply gone. Each restoration is reported back, so the instructor sees
who tried. Code that rewrites the kernel's own machinery or walks the interpreter's
memory is beyond an in-process guard; the static scan (:mod:`helpers.grading.flags`)
points such notebooks out for review.
"""

from __future__ import annotations

import builtins
import importlib
import sys
import threading
import types
import warnings

from helpers.worker_loop import foreign  # the one rule for what a learner wrote, shared with lesson 07's workers

# The namespaces a check relies on. Their entries are put back as they were; torch's own
# internals stay out of it, since torch legitimately rebinds some of them as it runs.
GUARDED_MODULES = ("builtins", "torch", "torch.testing", "torch.nn", "torch.nn.functional", "torch.linalg",
                   "torch.autograd", "torch.random", "numpy", "math", "operator", "functools", "copy", "random",
                   "importlib")
GUARDED_CLASSES = ("torch.Tensor", "torch._C.TensorBase", "torch.nn.Module", "torch.nn.Parameter",
                   "torch.Generator")
FRESH = "helpers.checks"  # imported afresh before each graded cell
_MISSING = object()
_SHELL_LISTS = ("input_transformers_post", "ast_transformers")
_SHELL_ATTRS = ("custom_exceptions", "CustomTB", "input_transformer_manager", "displayhook",
                "display_pub", "InteractiveTB", "SyntaxTB", "compile", "user_ns", "user_global_ns")


def _is_fresh(name: str) -> bool:
    return name == FRESH or name.startswith(FRESH + ".")


def _guarded(name: str) -> bool:
    return name in GUARDED_MODULES or name.split(".")[0] == "helpers" and not _is_fresh(name)


def _own_classes(module) -> list[type]:
    return [v for v in vars(module).values() if isinstance(v, type) and v.__dict__.get("__module__") == module.__name__]


def _resolve(dotted: str):
    module, _, name = dotted.rpartition(".")
    return getattr(sys.modules.get(module), name, None)


class Snapshot:
    """The trusted state of the kernel, taken once before any student code."""

    def __init__(self, shell, aliases: dict[str, list]):
        self.shell = shell
        self.aliases = aliases
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.modules = {n: m for n, m in list(sys.modules.items()) if m is not None and _guarded(n)}
            owners: list = list(self.modules.values())
            for name, module in self.modules.items():
                if name.startswith("helpers."):
                    owners += _own_classes(module)
            owners += [c for c in map(_resolve, GUARDED_CLASSES) if isinstance(c, type)]
            owners += [c for c in type(shell).__mro__ + type(shell.kernel).__mro__ if c is not object]
            self.dicts = [(o, dict(vars(o))) for o in owners]
            self.watched = [(o, dict(vars(o))) for o in self._check_objects()]
        self.functions = [(f, f.__code__, f.__defaults__, f.__kwdefaults__)
                          for _, saved in self.dicts for f in saved.values() if isinstance(f, types.FunctionType)]
        self.sys_lists = {name: list(getattr(sys, name)) for name in ("meta_path", "path_hooks", "path")}
        self.sys_attrs = {name: getattr(sys, name) for name in ("stdout", "stderr", "displayhook", "excepthook")}
        self.shell_lists = {name: list(getattr(shell, name)) for name in _SHELL_LISTS}
        itm = shell.input_transformer_manager
        self.itm_lists = {name: list(getattr(itm, name)) for name in ("cleanup_transforms", "line_transforms",
                                                                       "token_transformers")}
        self.shell_attrs = {name: getattr(shell, name) for name in _SHELL_ATTRS}
        self.shell_keys = set(vars(shell))

    @staticmethod
    def _check_objects() -> list:
        """The check modules, their classes and exercise objects: replaced by fresh copies before
        each graded cell, and only compared, to report what the notebook changed in them."""
        found = []
        for name, module in list(sys.modules.items()):
            if module is None or not _is_fresh(name):
                continue
            found.append(module)
            for value in vars(module).values():
                owner = value if isinstance(value, type) else type(value)
                if _is_fresh(owner.__module__) and hasattr(value, "__dict__"):
                    found.append(value)
        return found

    def _report_check_changes(self, changed: list[str]) -> None:
        for owner, saved in self.watched:
            current = vars(owner)
            label = getattr(owner, "__name__", None) or getattr(owner, "title", None) or type(owner).__name__
            for key in set(saved) | set(current):
                if current.get(key, _MISSING) is not saved.get(key, _MISSING) and foreign(current.get(key)):
                    changed.append(f"{label}.{key}")

    def restore(self) -> list[str]:
        """Put the trusted state back; return what had been changed."""
        changed: list[str] = []
        sys.settrace(None)
        sys.setprofile(None)
        threading.settrace(None)
        threading.setprofile(None)
        for owner, saved in self.dicts:
            self._restore_dict(owner, saved, changed)
        for f, code, defaults, kwdefaults in self.functions:
            if f.__code__ is not code or f.__defaults__ is not defaults or f.__kwdefaults__ is not kwdefaults:
                f.__code__, f.__defaults__, f.__kwdefaults__ = code, defaults, kwdefaults
                changed.append(f"{f.__module__}.{f.__qualname__}.__code__")
        for name, module in self.modules.items():
            if sys.modules.get(name) is not module:
                sys.modules[name] = module
                changed.append(f"sys.modules[{name!r}]")
        self._restore_sys(changed)
        self._restore_shell(changed)
        self._report_check_changes(changed)
        self._fresh_checks()
        self.watched = [(o, dict(vars(o))) for o in self._check_objects()]
        self._bind_aliases(changed)
        return changed

    @staticmethod
    def _restore_dict(owner, saved: dict, changed: list[str]) -> None:
        """Put back every entry that differs; report those the notebook itself put there."""
        current = vars(owner)
        label = getattr(owner, "__name__", "?")
        is_module = isinstance(owner, types.ModuleType)
        for key, value in saved.items():
            now = current.get(key, _MISSING)
            if now is value or isinstance(value, types.ModuleType) and _is_fresh(value.__name__):
                continue
            try:
                if is_module:
                    current[key] = value
                else:
                    setattr(owner, key, value)
            except (TypeError, AttributeError):
                continue
            if now is _MISSING or foreign(now):
                changed.append(f"{label}.{key}")
        if is_module:
            return
        for key in [k for k in current if k not in saved and foreign(current[k])]:  # an override added to a class
            try:
                delattr(owner, key)
                changed.append(f"{label}.{key}")
            except (TypeError, AttributeError):
                pass

    def _restore_sys(self, changed: list[str]) -> None:
        for name, saved in self.sys_lists.items():
            if getattr(sys, name) != saved:
                getattr(sys, name)[:] = saved
                if name != "path":  # the kernel itself may add to sys.path
                    changed.append(f"sys.{name}")
        sys.path_importer_cache.clear()
        for name, value in self.sys_attrs.items():
            if getattr(sys, name) is not value:
                setattr(sys, name, value)
                changed.append(f"sys.{name}")

    def _restore_shell(self, changed: list[str]) -> None:
        shell = self.shell
        for name, value in self.shell_attrs.items():
            if getattr(shell, name) is not value:
                setattr(shell, name, value)
                changed.append(f"shell.{name}")
        for name, saved in self.shell_lists.items():
            if getattr(shell, name) != saved:
                getattr(shell, name)[:] = saved
                changed.append(f"shell.{name}")
        itm = shell.input_transformer_manager
        for name, saved in self.itm_lists.items():
            if getattr(itm, name) != saved:
                getattr(itm, name)[:] = saved
                changed.append(f"shell.input_transformer_manager.{name}")
        for key in [k for k in vars(shell) if k not in self.shell_keys and foreign(vars(shell)[k])]:
            delattr(shell, key)  # e.g. a notebook function put over one of the shell's methods
            changed.append(f"shell.{key}")
        for event, callbacks in shell.events.callbacks.items():
            for callback in [cb for cb in callbacks if foreign(cb)]:
                callbacks.remove(callback)
                changed.append(f"shell.events[{event!r}]")

    def _fresh_checks(self) -> None:
        for name in [n for n in sys.modules if _is_fresh(n)]:
            del sys.modules[name]
        trusted_imports({k: v for k, v in self.aliases.items() if _is_fresh(v[0])})

    def _bind_aliases(self, changed: list[str]) -> None:
        user_ns = self.shell.user_ns
        for name, (module, attr) in self.aliases.items():
            value = importlib.import_module(module)
            if attr:
                value = getattr(value, attr)
            if user_ns.get(name, _MISSING) is not value:
                if name in user_ns and not _is_fresh(module):
                    changed.append(name)
                user_ns[name] = value
        for name in [n for n in user_ns if n in vars(builtins) and isinstance(vars(builtins)[n], type)
                     and issubclass(vars(builtins)[n], BaseException)]:
            del user_ns[name]  # a global shadowing a built-in exception (AssertionError = ...)
            changed.append(name)


def trusted_imports(aliases: dict[str, list]) -> None:
    """Import what the lesson's own import statements name, before any student code."""
    for module, attr in aliases.values():
        importlib.import_module(module)
        if attr:
            try:
                importlib.import_module(f"{module}.{attr}")
            except ImportError:
                pass  # ``from module import name``: a name, not a submodule


def install(shell, aliases: dict[str, list], name: str, token: str) -> None:
    """Import the lesson's modules, take the snapshot, and expose the guard as builtin ``name``.

    The grader evaluates ``name()`` before each graded cell; it answers ``token`` followed by
    what it restored, so the grader can tell that the guard really ran.
    """
    trusted_imports(aliases)
    snapshot = Snapshot(shell, aliases)

    def guard() -> str:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            changed = snapshot.restore()
        return token + "|" + ";".join(dict.fromkeys(changed))

    setattr(builtins, name, guard)
    # the guard itself belongs to the trusted builtins from now on
    for i, (owner, _) in enumerate(snapshot.dicts):
        if owner is builtins:
            snapshot.dicts[i] = (owner, dict(vars(builtins)))

"""The workers of a :class:`helpers.distributed.Pool`: each rank reads jobs on a pipe and answers on another.

Each line is a job (JSON): import the job's file of functions, set the variables torchrun would
(``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``), join a fresh ``gloo``
process group on the job's store (with a timeout, so a hung collective ends), call the entry point,
save what it returns, leave the group, and answer ``{"status": "ok"}`` or the error. The
entry point sees the answers through a guard: an answer that rebinds the course's own code in the
worker (``sys.modules["helpers.checks.lesson07"]._grads = ...``), or puts code of its own in place of
PyTorch's (``torch.allclose = lambda *a, **k: True``), has it put back, fails the job with
``TamperError``, and the worker starts afresh.
The checks judge on the CPU with ``gloo`` on every machine, so that their numbers do not
depend on the hardware. A worker ends when its job pipe closes (the notebook went away).

Introduced in lesson 07.
"""

from __future__ import annotations

import datetime
import importlib
import importlib.util
import json
import os
import sys
import traceback
import types
import warnings
from pathlib import Path


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # so that pickling what it defines works within the job
    spec.loader.exec_module(module)
    return module


class TamperError(RuntimeError):
    """An answer rebound code that the check relies on (in the worker, where the kernel's guard is not)."""


# The course's modules whose entries an answer must leave as they were: the check's own entry point
# (its helpers), the shared judging tools and the pool itself. Any change there fails the job.
_MODULES = ("helpers.checks.core", "helpers.distributed", "helpers.worker_loop")
# What the checks compute and save their verdicts with, in the worker: an entry that the answer replaced
# by code of its own (a function or lambda of the answer's file, or a builtin put where a library function
# was: ``torch.allclose = lambda *a, **k: True``) is put back and fails the job. torch rebinds entries of
# its own as it runs (optimizer step hooks, lazy flags, ``__slotnames__``), always with its own code, and
# that is left alone.
_LIBRARIES = ("builtins", "os", "os.path", "math", "copy", "pickle", "torch", "torch.nn", "torch.nn.functional",
              "torch.nn.parallel", "torch.distributed", "torch.distributed.distributed_c10d", "torch.optim",
              "torch.utils.data", "torch.testing", "torch.linalg", "torch.autograd", "torch.random",
              "torch.serialization")
_CLASSES = ("torch.Tensor", "torch._C.TensorBase", "torch.nn.Module", "torch.nn.Parameter",
            "torch.nn.parallel.DistributedDataParallel", "torch.optim.Optimizer", "torch.optim.SGD",
            "torch.utils.data.DistributedSampler", "torch.utils.data.DataLoader", "torch.utils.data.TensorDataset")
_GONE = object()  # an entry the answer deleted
# Code from these folders is the course's or the installation's, never an answer's (answers come from the
# job's file in a temporary folder).
_TRUSTED = tuple({os.path.dirname(os.path.abspath(__file__)), sys.prefix, sys.base_prefix})


def foreign(value) -> bool:
    """Code that the learner wrote, not the course's or the installation's: a function from outside both, an
    object of a class defined in the notebook (``__main__``) or in a job's file of answers (``answer_*``), or
    a builtin function put where a library function was. The rule of both guards: the grading kernel's
    (the grader's guard module imports it from here) and the workers' below."""
    code = getattr(value, "__code__", None)
    if isinstance(code, types.CodeType):
        return not os.path.abspath(code.co_filename).startswith(_TRUSTED)
    if isinstance(value, types.BuiltinFunctionType) and getattr(value, "__module__", None) == "builtins":
        return True
    module = getattr(value, "__module__", None) if isinstance(value, type) else type(value).__module__
    return isinstance(module, str) and (module.startswith("answer_") or module == "__main__")


def _resolve(dotted: str):
    module, _, name = dotted.rpartition(".")
    return getattr(sys.modules.get(module), name, None)


def _spaces(entry_module: str) -> list[tuple[str, object, dict, bool]]:
    """(name, module or class, snapshot of its entries, strict) for everything an answer must not rebind:
    the course's modules (strict) may not change at all, the libraries not to the answer's own code."""
    found = []
    for name in (*_MODULES, entry_module):
        if sys.modules.get(name) is not None:
            found.append((name, sys.modules[name], dict(vars(sys.modules[name])), True))
    for name in _LIBRARIES:
        if sys.modules.get(name) is not None:
            found.append((name, sys.modules[name], dict(vars(sys.modules[name])), False))
    for name in _CLASSES:
        cls = _resolve(name)
        if isinstance(cls, type):
            found.append((name, cls, dict(vars(cls)), False))
    return found


def _restore(spaces) -> list[str]:
    """Put back every entry that was rebound (in the libraries: to the answer's own code); their names."""
    changed = []
    for name, owner, before, strict in spaces:
        now = vars(owner)
        for key, value in before.items():
            current = now.get(key, _GONE)
            if current is value or not (strict or current is _GONE or foreign(current)):
                continue
            changed.append(f"{name}.{key}")
            setattr(owner, key, value)
    return changed


class _Guarded:
    """The job's module of answers, as the check's entry point sees it: calling one of its functions
    notes the namespaces above first, and afterwards puts back whatever the call rebound and fails the
    job (``TamperError``), so an answer cannot change how the check judges it. Setting an attribute
    (the check replacing an answer by a wrapper) goes to the module itself."""

    def __init__(self, module, entry_module: str):
        object.__setattr__(self, "_module", module)
        object.__setattr__(self, "_entry", entry_module)

    def __getattr__(self, name):
        value = getattr(self._module, name)
        if not callable(value) or isinstance(value, type):
            return value
        entry = self._entry

        def call(*args, **kwargs):
            spaces = _spaces(entry)
            try:
                return value(*args, **kwargs)
            finally:
                changed = _restore(spaces)
                if changed:
                    raise TamperError(f"{name} rebinds code that the check relies on ({', '.join(changed[:3])}): "
                                      "an answer computes with PyTorch; it never replaces PyTorch's or the "
                                      "course's functions")
        return call

    def __setattr__(self, name, value):
        setattr(self._module, name, value)


_STORES: dict = {}  # port -> this rank's client of the pool's store, connected once


def _store(port: int, timeout: datetime.timedelta):
    """The pool's store, from the connection made for an earlier job when there is one: connecting a new
    TCPStore client now and then takes 5 s (1 job in 15 on this machine), a stall no job should pay."""
    import torch.distributed as dist

    if port not in _STORES:
        _STORES.clear()
        _STORES[port] = dist.TCPStore("127.0.0.1", port, is_master=False, timeout=timeout)
    _STORES[port].set_timeout(timeout)
    return _STORES[port]


def run_job(request: dict) -> dict:
    import torch
    import torch.distributed as dist

    job, rank = Path(request["job"]), request["rank"]
    (job / f"started{rank}").touch()  # this rank took the job: a death from now on is the job's
    timeout = datetime.timedelta(seconds=request["timeout"])
    store = _store(request["port"], timeout)
    store = dist.PrefixStore(f"job/{job.name}", store)  # this job's keys: the store outlives it
    answer = _load(job / "answer.py", f"answer_{job.name}")
    module_name, _, func = request["entry"].partition(":")
    entry = getattr(importlib.import_module(module_name), func)
    args = torch.load(job / "args.pt", weights_only=False)
    # What torchrun tells each process, so that an answer may read its rank from the environment as
    # the lesson shows (RANK for "only rank 0 writes", LOCAL_RANK for the device).
    world = str(request["world_size"])
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "GROUP_RANK": "0", "WORLD_SIZE": world,
                       "LOCAL_WORLD_SIZE": world, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(request["port"])})
    dist.init_process_group("gloo", store=store, rank=rank, world_size=request["world_size"], timeout=timeout)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = entry(_Guarded(answer, module_name), rank, request["world_size"], *args,
                          **request.get("kwargs", {}))
        torch.save(value, job / f"result{rank}.pt")
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return {"status": "ok"}


def serve(jobs, replies) -> None:
    """Answer each job read from ``jobs`` on ``replies`` until ``jobs`` closes."""
    for line in jobs:
        try:
            reply = run_job(json.loads(line))
        except BaseException as err:  # noqa: B036  (the job failed: say why, stay alive for the next)
            if isinstance(err, SystemExit) and err.code not in (None, 0):
                raise
            text = str(err).strip().splitlines()[0] if str(err).strip() else ""
            reply = {"status": "error", "error": f"{type(err).__name__}: {text}"[:500],
                     "trace": traceback.format_exc()[-2000:], "tampered": isinstance(err, TamperError)}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()
        if reply.get("tampered"):  # what was rebound is put back, but start afresh: the pool sees it gone
            os._exit(0)


def main() -> None:
    """``python -m helpers.worker_loop IN,OUT IN,OUT ...``: one pair of pipe descriptors per rank.

    torch is imported once, then the process forks one copy per further rank (before any thread
    exists, so the fork is safe): starting a pool costs one import of torch, not one per rank.
    """
    import torch
    import torch.distributed  # noqa: F401  (imported once, before the fork, for every rank)
    import torch.nn.parallel  # noqa: F401
    import torch.utils.data  # noqa: F401

    import helpers.checks.lesson07  # noqa: F401  (the checks' worker functions)

    torch.set_num_threads(1)
    pairs = [tuple(int(fd) for fd in arg.split(",")) for arg in sys.argv[1:]]
    mine = 0
    for rank in range(1, len(pairs)):
        if os.fork() == 0:
            mine = rank
            break
    for rank, (fd_in, fd_out) in enumerate(pairs):
        if rank != mine:  # only this rank's pipes stay open here, so a dead rank shows as end of file
            os.close(fd_in)
            os.close(fd_out)
    with os.fdopen(pairs[mine][0], "r") as jobs, os.fdopen(pairs[mine][1], "w") as replies:
        # started (the job's deadline begins now); the pid lets the pool see a rank killed from outside
        replies.write(json.dumps({"status": "ready", "pid": os.getpid()}) + "\n")
        replies.flush()
        serve(jobs, replies)
    os._exit(0)


if __name__ == "__main__":
    main()

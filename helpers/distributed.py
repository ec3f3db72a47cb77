"""Run functions written in a notebook on several processes: a worker pool and ``torchrun``.

Processes started from a notebook cannot unpickle a function defined in it (its module is
``__main__``, which the new process does not have). So the functions are sent as source
code: :func:`module_source` writes them, below a fixed header of imports, to a file that
every process imports. Two ways to run that file:

* :func:`torchrun` launches it with the real ``torchrun --nproc-per-node=N`` (rendezvous at
  ``localhost:0``, so the operating system picks a free port and parallel runs never collide),
  ``gloo`` on the CPU and ``nccl`` with one GPU per rank when CUDA is there. It costs a few
  seconds per launch, as torchrun does anywhere.
* :class:`Pool` keeps ``N`` worker processes alive and runs one job after another on them, each
  job in a fresh process group, under its own prefix of the pool's store: the instant checks use
  it, so that a check takes a fraction of a second instead of a launch.

Every process group is made with a timeout, and every run has a deadline: a collective that
hangs (a ``barrier()`` inside ``if rank == 0``) ends with an error after seconds, and the
processes are killed. The processes stay in the notebook's session, in a process group of
their own, so that whoever runs the notebook (nbgrader, the course's grader) can see and end them.

Introduced in lesson 07.
"""

from __future__ import annotations

import ast
import atexit
import dis
import importlib
import inspect
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import types
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

# Every file of functions starts with these imports, so a function may use these names.
HEADER = '''"""Functions sent from a notebook to its worker processes (written by helpers.distributed)."""
import math
import os
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler
'''


class LaunchError(RuntimeError):
    """A distributed run failed as a whole (a process died, hung, or could not start)."""


def backend() -> str:
    """``"nccl"`` when CUDA GPUs are there, else ``"gloo"`` (the CPU backend)."""
    return "nccl" if torch.cuda.is_available() else "gloo"


def device_for(local_rank: int) -> torch.device:
    """One GPU per rank (``cuda:local_rank``) when CUDA is there, else the CPU."""
    return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")


def default_nproc() -> int:
    """Every GPU of the machine, else 2 CPU processes."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 2


def module_source(*objects: Any) -> str:
    """The header of imports followed by the source code of each function or class.

    A function may use what its notebook (or module) defines at the top level: the modules it imported
    (``import numpy as np``), its other functions and classes (a helper the answer calls), what it
    imported from a library (``from torch.optim import SGD``) and plain constants (``BATCH = 4``). Those
    that the code names go into the file too, before it; other objects (tensors, models, data sets)
    cannot travel as source, and the function must create them itself.

    Raises:
        TypeError: for something that has no source (a lambda typed at a prompt, a builtin).
    """
    parts = [HEADER]
    sent = set(_HEADER_NAMES) | {getattr(o, "__name__", "") for o in objects if not isinstance(o, str)}
    for obj in objects:
        if isinstance(obj, str):  # source text given directly
            parts.append(textwrap.dedent(obj))
            continue
        try:
            text = textwrap.dedent(inspect.getsource(obj))
        except (OSError, TypeError):
            raise TypeError(f"cannot send {obj!r} to the worker processes: only functions and classes defined "
                            "with def or class in a cell (or a file) can be sent, by their source code.") from None
        parts += _dependencies(obj, sent)
        parts.append(text)
    return "\n\n".join(parts)


def _bound_names(source: str) -> tuple[str, ...]:
    """The names that the import statements of ``source`` bind (``import a.b`` binds ``a``)."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names += [a.asname or a.name.split(".")[0] for a in node.names]
    return tuple(names)


_HEADER_NAMES = _bound_names(HEADER)  # what every sent file has already: its functions may use these


def _global_names(code: types.CodeType) -> list[str]:
    """The global names that ``code`` (and the functions, lambdas and comprehensions inside it) reads."""
    names = [i.argval for i in dis.get_instructions(code) if i.opname in ("LOAD_GLOBAL", "LOAD_NAME")]
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names += _global_names(const)
    return list(dict.fromkeys(names))


def _literal(value: Any) -> str | None:
    """Source that recreates ``value`` (a plain constant, a device, a dtype), or None."""
    if isinstance(value, torch.device):
        return f"torch.device({str(value)!r})"
    if isinstance(value, torch.dtype):
        return repr(value)
    if not isinstance(value, (int, float, complex, str, bytes, bool, type(None), tuple, list, dict, set, frozenset)):
        return None
    text = repr(value)
    try:
        ok = len(text) <= 10_000 and ast.literal_eval(text) == value
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        ok = False
    return text if ok else None


def _dependencies(obj: Any, sent: set[str]) -> list[str]:
    """Statements that define, in the file, the top-level names of its namespace that ``obj``'s code uses;
    the names already there (``sent``) are skipped and the new ones added to it."""
    code = getattr(obj, "__code__", None)
    space = getattr(obj, "__globals__", None)
    if isinstance(obj, type):  # a class: the globals of its methods
        funcs = [v for v in vars(obj).values() if isinstance(v, types.FunctionType)]
        space = funcs[0].__globals__ if funcs else None
        names = [n for f in funcs for n in _global_names(f.__code__)] + [b.__name__ for b in obj.__bases__]
    else:
        names = _global_names(code) if code is not None else []
    if not space:
        return []
    out: list[str] = []
    for name in dict.fromkeys(names):
        if name in sent or name not in space or name.startswith("__"):
            continue
        value = space[name]
        if isinstance(value, types.ModuleType):
            sent.add(name)
            out.append(f"import {value.__name__}" if value.__name__ == name else f"import {value.__name__} as {name}")
            continue
        if isinstance(value, (types.FunctionType, type)):
            module = getattr(value, "__module__", None)
            if module == getattr(obj, "__module__", None) and value.__name__ != "<lambda>":
                try:
                    text = textwrap.dedent(inspect.getsource(value))
                except (OSError, TypeError):
                    continue
                sent.add(name)
                out += _dependencies(value, sent)
                out.append(text if value.__name__ == name else f"{text}\n{name} = {value.__name__}")
                continue
        module, qualname = getattr(value, "__module__", None), getattr(value, "__qualname__", "")
        if module and qualname and "." not in qualname and module != "__main__":
            try:
                found = getattr(importlib.import_module(module), qualname, None) is value
            except Exception:  # noqa: BLE001 - a module that cannot be imported here: leave the name out
                found = False
            if found:
                sent.add(name)
                out.append(f"from {module} import {qualname}" + ("" if qualname == name else f" as {name}"))
                continue
        text = _literal(value)
        if text is not None:
            sent.add(name)
            out.append(f"{name} = {text}")
    return out


def _env(threads: int = 1) -> dict:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(threads))  # two processes on two cores: one thread each
    if sys.platform.startswith("linux"):
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # loopback only: nothing leaves the machine
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(Path(__file__).resolve().parents[1]),
                                                    env.get("PYTHONPATH", "")] if p)
    env["PYTHONWARNINGS"] = "ignore"
    return env


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


# ----------------------------------------------------------------------------- the pool


@dataclass
class RankResult:
    """What one rank of a job gave: ``status`` is "ok", "error", "died" or "hung"."""

    rank: int
    status: str
    value: Any = None
    error: str = ""
    answered: bool = True  # False: the rank was gone before it ran any of the job


class Pool:
    """``nproc`` worker processes that run jobs one after another (see :mod:`helpers.worker_loop`).

    One process imports torch and forks the other ranks, so a pool starts in about the time of one
    ``import torch``.

    A job is a file of functions (:func:`module_source`) and an entry point ``"module:function"``
    that every rank calls as ``function(answer_module, rank, world_size, *args)``, inside a
    ``gloo`` process group made for that job. A rank that dies or a job that hangs ends the whole
    pool, as torchrun ends all workers when one fails; the next job starts a fresh one.
    """

    def __init__(self, nproc: int = 2):
        self.nproc = nproc
        self.proc: subprocess.Popen | None = None
        self.jobs: list = []  # per rank: the pipe we write jobs to
        self.replies: list = []  # per rank: the pipe we read answers from
        self.ready: dict[int, int] = {}  # rank -> pid, for the ranks that said they have started
        self.folder = Path(tempfile.mkdtemp(prefix="course-ddp-"))
        self.store = None  # the jobs' TCPStore, made by the first job of each start
        self.starts = 0

    def alive(self) -> bool:
        """Every rank is still there. A grading sandbox kills a cell's processes before the next cell
        runs, so a pool kept from an earlier cell may have lost some of its ranks (or all)."""
        if self.proc is None or self.proc.poll() is not None or len(self.replies) != self.nproc:
            return False
        return all(_running(pid) for pid in self.ready.values())

    def start(self) -> None:
        """Start the workers (in the background: the first job waits for them)."""
        self.close()
        self.starts += 1
        theirs, args = [], []
        for _ in range(self.nproc):
            job_r, job_w = os.pipe()
            reply_r, reply_w = os.pipe()
            theirs += [job_r, reply_w]
            args.append(f"{job_r},{reply_w}")
            self.jobs.append(os.fdopen(job_w, "w"))
            self.replies.append(os.fdopen(reply_r, "r"))
        self.proc = subprocess.Popen([sys.executable, "-m", "helpers.worker_loop", *args], pass_fds=theirs,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(self.folder / "stderr.txt", "w"), env=_env(), cwd=self.folder,
                                     process_group=0)
        for fd in theirs:
            os.close(fd)

    def close(self) -> None:
        if self.proc is not None:
            _kill_group(self.proc)
        for f in self.jobs + self.replies:
            try:
                f.close()
            except OSError:
                pass
        self.proc, self.jobs, self.replies, self.ready, self.store = None, [], [], {}, None

    def run(self, source: str, entry: str, args: Sequence = (), *, timeout: float = 20.0,
            kwargs: dict | None = None, straggler_s: float | None = None) -> list[RankResult]:
        """Run one job on every rank; returns one :class:`RankResult` per rank, in rank order.

        ``kwargs`` (plain JSON values) go to the entry point as keyword arguments. With ``straggler_s``,
        the ranks still running that many seconds after one rank returned are ended as "hung": a rank
        that returned early (its collective skipped) leaves the others waiting until the timeout.
        """
        reused = self.alive()
        results = self._run(source, entry, args, timeout, kwargs, straggler_s)
        if reused and any(r.status == "died" and not r.answered for r in results):
            # A rank of a pool kept from an earlier job was gone before it took this one (killed from
            # outside between two cells, as a grading sandbox does): run it once more on a fresh pool.
            results = self._run(source, entry, args, timeout, kwargs, straggler_s)
        return results

    def _run(self, source: str, entry: str, args: Sequence, timeout: float, kwargs: dict | None,
             straggler_s: float | None = None) -> list[RankResult]:
        from torch.distributed import TCPStore

        if not self.alive():
            self.start()
        problem = self._wait_ready()
        if problem:
            self.close()
            return [RankResult(r, "died", error=problem) for r in range(self.nproc)]
        job = self.folder / uuid.uuid4().hex[:12]
        job.mkdir()
        (job / "answer.py").write_text(source)
        torch.save(list(args), job / "args.pt")
        if self.store is None:
            # The store lives here, on a port the OS picks: parallel notebooks never collide. It lasts as
            # long as the workers, and each job uses its own keys in it (a prefix), so the workers connect
            # once: a new TCPStore client waits 5 s for its connection now and then (1 in 15 here).
            self.store = TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False, timeout=_td(timeout))
        request = {"job": str(job), "entry": entry, "port": self.store.port, "world_size": self.nproc,
                   "timeout": timeout, "kwargs": kwargs or {}}
        for rank, pipe in enumerate(self.jobs):
            try:
                pipe.write(json.dumps({**request, "rank": rank}) + "\n")
                pipe.flush()
            except BrokenPipeError:
                pass  # that rank is gone: its reply pipe says so
        results = self._collect(job, timeout + 10, straggler_s)
        if any(r.status in ("died", "hung") for r in results):
            self.close()  # a worker is gone or stuck in a collective: start afresh next time
        shutil.rmtree(job, ignore_errors=True)  # the results are read: nothing of the job is left in /tmp
        return results

    def _wait_ready(self, startup_s: float = 180.0) -> str:
        """Wait until every rank has started (imported torch, forked); '' when they have, else why not.

        The start is not counted in a job's deadline: on a loaded machine, or in a grading sandbox that
        ends every process between cells, importing torch alone can take many seconds.
        """
        deadline = time.monotonic() + startup_s
        for rank, pipe in enumerate(self.replies):
            if rank in self.ready:
                continue
            sel = selectors.DefaultSelector()
            sel.register(pipe, selectors.EVENT_READ)
            got = sel.select(timeout=max(0.0, deadline - time.monotonic()))
            sel.close()
            line = pipe.readline() if got else ""
            if not line:
                return f"the worker of rank {rank} did not start: {self._stderr()}"
            self.ready[rank] = json.loads(line).get("pid", -1)
        return ""

    def _stderr(self) -> str:
        try:
            text = (self.folder / "stderr.txt").read_text().strip()
        except OSError:
            text = ""
        return text.splitlines()[-1][:300] if text else "no error message (killed from outside?)"

    def _collect(self, job: Path, deadline_s: float, straggler_s: float | None = None) -> list[RankResult]:
        results: dict[int, RankResult] = {}
        sel = selectors.DefaultSelector()
        for rank, pipe in enumerate(self.replies):
            sel.register(pipe, selectors.EVENT_READ, rank)
        deadline = time.monotonic() + deadline_s
        died_at = returned = None
        while len(results) < self.nproc:
            left = deadline - time.monotonic()
            if died_at is not None:  # the others are likely blocked on the failed rank: a short grace
                left = min(left, died_at + 3 - time.monotonic())
            if returned is not None and straggler_s is not None:
                left = min(left, returned[1] + straggler_s - time.monotonic())
            if left <= 0:
                break
            for key, _ in sel.select(timeout=min(left, 0.5)):
                rank = key.data
                line = key.fileobj.readline()
                sel.unregister(key.fileobj)
                if not line:
                    code = self.proc.poll() if rank == 0 and self.proc else None
                    how = f"exit code {code}, " if code is not None else ""
                    results[rank] = RankResult(rank, "died", error=f"the process ended ({how}{self._stderr()})",
                                               answered=(job / f"started{rank}").exists())
                    died_at = died_at or time.monotonic()
                    continue
                reply = json.loads(line)
                if reply["status"] == "ok":
                    results[rank] = RankResult(rank, "ok", torch.load(job / f"result{rank}.pt", weights_only=False))
                    returned = returned or (rank, time.monotonic())
                else:
                    results[rank] = RankResult(rank, "error", error=reply["error"])
                    died_at = died_at or time.monotonic()
        sel.close()
        late = "no answer before the deadline"
        if returned is not None and straggler_s is not None and time.monotonic() < deadline:
            late = f"still running {straggler_s:g} s after rank {returned[0]} had returned"
        return [results.get(r, RankResult(r, "hung", error=late)) for r in range(self.nproc)]


def _running(pid: int) -> bool:
    """The process is there and not a zombie (a killed process not yet reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        if sys.platform.startswith("linux"):
            return False
        try:  # no /proc: at least the pid exists
            os.kill(pid, 0)
            return True
        except OSError:
            return False


def _td(seconds: float):
    import datetime

    return datetime.timedelta(seconds=seconds)


_POOLS: dict[int, Pool] = {}


@atexit.register
def _close_pools() -> None:
    """When the notebook's kernel ends: stop the workers and remove the pools' folders."""
    for p in _POOLS.values():
        p.close()
        shutil.rmtree(p.folder, ignore_errors=True)


def pool(nproc: int = 2) -> Pool:
    """The notebook's pool of ``nproc`` workers, started on first use."""
    if nproc not in _POOLS:
        _POOLS[nproc] = Pool(nproc)
    return _POOLS[nproc]


def run_on_ranks(functions: Sequence[Any], entry: str, args: Sequence = (), *, nproc: int = 2,
                 timeout: float = 20.0, kwargs: dict | None = None, straggler_s: float | None = None
                 ) -> list[RankResult]:
    """Send ``functions`` (by source) to the pool's ``nproc`` ranks and call ``entry`` on each
    (``straggler_s``: see :meth:`Pool.run`)."""
    return pool(nproc).run(module_source(*functions), entry, args, timeout=timeout, kwargs=kwargs,
                           straggler_s=straggler_s)


# ----------------------------------------------------------------------------- torchrun


@dataclass
class TorchrunResult:
    """A finished torchrun: the exit code, each rank's returned value (None if it returned none) and the log."""

    returncode: int
    values: list
    log: str
    seconds: float


_MAIN = '''

if __name__ == "__main__":
    from helpers.distributed import torchrun_main

    torchrun_main(globals(), {main!r}, {folder!r}, {timeout!r}, {cpu!r})
'''


def torchrun(functions: Sequence[Any], main: str, args: Sequence = (), *, nproc: int | None = None,
             max_restarts: int = 0, timeout: float = 60.0, collective_timeout: float = 20.0,
             cpu: bool = False) -> TorchrunResult:
    """Write ``functions`` to a script and run ``main(rank, world_size, device, *args)`` under torchrun.

    The command is ``torchrun --nproc-per-node=N --rdzv-backend=c10d --rdzv-endpoint=localhost:0
    --max-restarts=K script.py``; the process group uses :func:`backend` and a timeout of
    ``collective_timeout`` seconds. Each rank's return value comes back in ``.values``. ``cpu=True`` uses
    gloo on the CPU even where there are GPUs (and 2 processes unless ``nproc`` says otherwise).

    Raises:
        LaunchError: when the run passes ``timeout`` seconds (every process is then killed).
    """
    nproc = nproc or (2 if cpu else default_nproc())
    folder = Path(tempfile.mkdtemp(prefix="course-torchrun-"))
    script = folder / "job.py"
    script.write_text(module_source(*functions) + _MAIN.format(main=main, folder=str(folder),
                                                                   timeout=collective_timeout, cpu=cpu))
    torch.save(list(args), folder / "args.pt")
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", "--rdzv-backend=c10d",
           "--rdzv-endpoint=localhost:0", f"--max-restarts={max_restarts}", "--monitor-interval=0.2", str(script)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(),
                            cwd=folder, process_group=0)
    try:
        log, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        log = proc.stdout.read() if proc.stdout else ""
        shutil.rmtree(folder, ignore_errors=True)
        raise LaunchError(f"torchrun ran past {timeout} s and was stopped: a collective that not every rank "
                          f"calls (one inside `if rank == 0`) waits for ever. The end of its log:\n{log[-3000:]}"
                          ) from None
    values = []
    for rank in range(nproc):
        path = folder / f"result{rank}.pt"
        values.append(torch.load(path, weights_only=False) if path.exists() else None)
    shutil.rmtree(folder, ignore_errors=True)  # the script and results: read, so removed
    return TorchrunResult(proc.returncode, values, log, time.perf_counter() - start)


def torchrun_main(namespace: dict, main: str, folder: str, timeout: float, cpu: bool = False) -> None:
    """What each torchrun worker runs: a process group from torchrun's environment, then ``main``."""
    import torch.distributed as dist

    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    device = torch.device("cpu") if cpu else device_for(int(os.environ["LOCAL_RANK"]))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.set_num_threads(1)
    # torchrun's own store, under a prefix of this attempt: after a restart, the addresses the killed
    # attempt's ranks left in the store must not be read as the new ones (gloo would connect to a dead port).
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False,
                          timeout=_td(timeout))
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    dist.init_process_group("gloo" if cpu else backend(), store=dist.PrefixStore(f"course/attempt{attempt}", store),
                            rank=rank, world_size=world_size, timeout=_td(timeout))
    try:
        args = torch.load(Path(folder) / "args.pt", weights_only=False)
        value = namespace[main](rank, world_size, device, *args)
        torch.save(value, Path(folder) / f"result{rank}.pt")
    finally:
        dist.destroy_process_group()
    # Done: leave at once. Tearing the interpreter down after that sometimes aborts in c10d's threads
    # ("terminate called without an active exception", 2 runs in 16 here), which torchrun reports as a
    # failed rank although the work is done and saved. The pool's workers end the same way.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def call(answer, rank: int, world_size: int, name: str, *args):
    """The pool's entry point for :func:`run`: ``answer.name(rank, world_size, *args)``."""
    return getattr(answer, name)(rank, world_size, *args)


def run(fn, *args: Any, nproc: int = 2, also: Sequence[Any] = (), timeout: float = 20.0) -> list:
    """Run ``fn(rank, world_size, *args)`` on ``nproc`` processes of the pool; returns each rank's value.

    ``also`` lists other functions or classes ``fn`` uses (sent with it, by source).

    Raises:
        LaunchError: when a rank fails, dies or hangs; the message names the rank and the error.
    """
    results = pool(nproc).run(module_source(*also, fn), "helpers.distributed:call", (fn.__name__, *args),
                              timeout=timeout)
    bad = [r for r in results if r.status != "ok"]
    if bad:
        raise LaunchError("; ".join(f"rank {r.rank} {r.status}: {r.error}" for r in bad))
    return [r.value for r in results]

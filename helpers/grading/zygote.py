"""A kernel factory: one process per worker that imports torch and the lesson's modules once,
then forks a fresh grading kernel for each notebook.

Importing torch and friends takes about two seconds of CPU, as long as running a fast-mode
lesson; forking a process that has already done it takes milliseconds. Each kernel is still
a process of its own, entered into the sandbox and given its guard exactly as a kernel
started from scratch (:func:`helpers.grading.kernel.main`); the factory itself runs no
student code and starts no threads, so forking it is safe.

Protocol on stdin/stdout, one JSON line each: first ``{"aliases": ...}``; then for each
kernel ``{"argv", "cwd", "env"}``, answered with ``{"pid": N}``.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import traceback

from helpers.grading import sandbox


def _child(request: dict) -> None:
    """In the forked process: become the kernel; never return to the factory's loop."""
    code = 1
    try:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1):  # the factory's protocol pipes are not the kernel's business
            os.dup2(null, fd)
        os.setsid()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = request["argv"]
        from helpers.grading import kernel

        kernel.main()
        code = 0
    except BaseException:  # noqa: B036  (said on stderr, the factory's log, then the process ends)
        traceback.print_exc()
        sys.stderr.flush()
    finally:
        os._exit(code)


# Imported once here as well, though no lesson names them in an import: loading a data set imports
# torchvision, and the first optimizer imports torch._dynamo (3.4 s of CPU together, per kernel).
PRELOAD = ("torchvision", "torchvision.datasets", "torch._dynamo", "torch.optim", "matplotlib.backends.backend_agg",
           "matplotlib_inline.backend_inline", "ipykernel.kernelapp")


def preload() -> None:
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:  # not installed here: the kernel imports what it needs itself
            pass


def serve() -> None:
    from helpers.grading import guard

    sandbox.die_with_parent()
    settings = json.loads(sys.stdin.readline())
    guard.trusted_imports(settings["aliases"])
    preload()

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # kernels are reaped by the system
    out = sys.stdout
    sys.stdout = sys.stderr
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request)
        out.write(json.dumps({"pid": pid}) + "\n")
        out.flush()


class Factory:
    """The worker's handle on its kernel factory (started on first use, restarted if it died)."""

    def __init__(self, aliases: dict, root: str, env: dict, log: str):
        self.aliases, self.root, self.env, self.log = aliases, root, env, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        """Start the factory now (it imports while the worker does other things)."""
        if self.proc is None or self.proc.poll() is not None:
            with open(self.log, "a") as log:  # what a kernel says before it is started (its errors)
                self.proc = subprocess.Popen([sys.executable, "-m", "helpers.grading.zygote"], stdin=subprocess.PIPE,
                                             stdout=subprocess.PIPE, stderr=log, text=True,
                                             cwd=self.root, env=self.env, preexec_fn=sandbox.die_with_parent)
            self.proc.stdin.write(json.dumps({"aliases": self.aliases}) + "\n")
            self.proc.stdin.flush()

    def spawn(self, argv: list[str], cwd: str, env: dict) -> int:
        self.start()
        self.proc.stdin.write(json.dumps({"argv": argv, "cwd": str(cwd), "env": dict(env)}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the kernel factory stopped")
        return json.loads(line)["pid"]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class ForkedKernel:
    """A Popen-like handle on a forked kernel, which is the factory's child, not ours."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None
        try:
            self._fd: int | None = os.pidfd_open(pid)
        except OSError:  # already gone
            self._fd, self.returncode = None, 1

    def poll(self) -> int | None:
        if self.returncode is None and select.select([self._fd], [], [], 0)[0]:
            self._exited()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        if self.returncode is None and select.select([self._fd], [], [], timeout)[0]:
            self._exited()
        return self.returncode

    def _exited(self) -> None:
        self.returncode = 1  # the factory reaped it; its exit status is not ours to know
        os.close(self._fd)

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


if __name__ == "__main__":
    serve()

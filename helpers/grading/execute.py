"""nbgrader's Execute step, hardened: the guard before each graded cell, capped output,
and a notebook that loses its kernel keeps the points it earned before.

nbgrader scores a test cell from its outputs (an error or anything on stderr: 0; otherwise
full marks), so everything here works by shaping those outputs; the scoring itself stays
nbgrader's. Plain nbgrader discards a whole notebook whose kernel dies; here the cells
already run keep their outputs, and every cell after the death gets an error output, so
its test scores 0 instead of passing for want of an error.
"""

from __future__ import annotations

import ast
import os
import sys
import threading
import time
import uuid
from contextlib import contextmanager

from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning import LocalProvisioner
from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.util import ensure_async
from nbformat import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Integer, Unicode

from helpers.course.polling import slice_polls

LAST_RUN: dict[str, list] = {}  # the last notebook's restorations and kernel death (one per worker at a time)


class ForkProvisioner(LocalProvisioner):
    """Gets the kernel from the worker's kernel factory when there is one (see
    :mod:`helpers.grading.zygote`), else starts it as a new process."""

    factory = None  # set by the worker

    async def launch_kernel(self, cmd: list[str], **kwargs) -> dict:
        if self.factory is None:
            return await super().launch_kernel(cmd, **kwargs)
        from helpers.grading.zygote import ForkedKernel

        cwd = kwargs.get("cwd") or os.getcwd()
        self.process = ForkedKernel(self.factory.spawn(cmd, cwd, kwargs.get("env") or os.environ))
        self.pid = self.pgid = self.process.pid
        self.cwd = cwd
        return self.connection_info


class GraderKernelManager(AsyncKernelManager):
    """Starts :mod:`helpers.grading.kernel` instead of a plain ipykernel."""

    def format_kernel_cmd(self, extra_arguments=None) -> list[str]:
        safe_path = ["-P"] if sys.version_info >= (3, 11) else []
        return [sys.executable, *safe_path, "-m", "helpers.grading.kernel", "-f", self.connection_file]

    async def _async_pre_start_kernel(self, **kw):
        self.kernel_id = self.kernel_id or kw.pop("kernel_id", str(uuid.uuid4()))
        if self.provisioner is None:
            self.provisioner = ForkProvisioner(kernel_id=self.kernel_id, kernel_spec=self.kernel_spec, parent=self)
        return await super()._async_pre_start_kernel(**kw)


def _error(ename: str, evalue: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def is_graded(cell) -> bool:
    meta = cell.metadata.get("nbgrader", {})
    return cell.cell_type == "code" and bool(meta.get("grade")) and not meta.get("solution")


class GuardedExecute(Execute):
    """nbgrader's Execute with the grading guard, output caps and kernel-death handling."""

    guard_name = Unicode("", help="builtin the kernel exposes as the guard; empty: no guard").tag(config=True)
    guard_token = Unicode("", help="what a genuine guard answers first").tag(config=True)
    kernel_uid = Integer(None, allow_none=True, help="the uid the kernel runs as (a slot uid), if any").tag(
        config=True)
    max_output_bytes = Integer(200_000, help="output kept per cell").tag(config=True)
    max_strays = Integer(32, help="processes a running cell may have besides the kernel before they are "
                         "frozen as a fork bomb (a DataLoader's workers are a handful)").tag(config=True)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("kernel_manager_class", GraderKernelManager)
        kwargs.setdefault("shutdown_kernel", "immediate")  # nothing to save: kill it, don't wait for it
        super().__init__(*args, **kwargs)

    def preprocess(self, nb, resources=None, km=None):
        from nbclient import NotebookClient

        NotebookClient.__init__(self, nb, km)
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        self.restored: list[str] = []
        self._sizes: dict[int, int] = {}
        stopped = ""
        with self.setup_kernel():
            slice_polls(self.kc)
            info = self.wait_for_reply(self.kc.kernel_info())
            self.nb.metadata["language_info"] = info["content"]["language_info"]
            for index, cell in enumerate(self.nb.cells):
                if cell.cell_type != "code":
                    continue
                if stopped:
                    cell.outputs = [_error("NotRun", stopped)]
                    continue
                started = time.monotonic()
                stopped = self._run_cell(cell, resources, index)
                if time.monotonic() - started > 5:
                    LAST_RUN.setdefault("slow", []).append([index, round(time.monotonic() - started, 1)])
        self.set_widgets_metadata()
        LAST_RUN["restored"] = list(dict.fromkeys(self.restored))
        return self.nb, self.resources

    def _kernel_pid(self) -> int | None:
        return getattr(getattr(self.km, "provisioner", None), "pid", None)

    def _reap_strays(self) -> None:
        """Kill what earlier cells left running (a fork bomb's copies of the kernel, which would
        otherwise spin and answer on the kernel's sockets); an answer never needs a process to
        outlive its cell."""
        from helpers.grading import sandbox

        kernel = self._kernel_pid()
        if kernel:
            sandbox.kill_strays(kernel, self.kernel_uid)

    @contextmanager
    def _freezing_fork_bombs(self):
        """While a cell runs, stop its processes once there are more than ``max_strays``: dozens of
        spinning copies of the kernel would starve the kernel itself past the time limit (seen on a
        loaded machine), and its later, honest cells would not run. They are killed before the next cell."""
        from helpers.grading import sandbox

        kernel, done = self._kernel_pid(), threading.Event()

        def watch():
            while not done.wait(0.2):
                found = sandbox.strays(kernel, self.kernel_uid)
                if len(found) > self.max_strays:
                    sandbox.freeze(found)

        watcher = threading.Thread(target=watch, name="fork-bomb-watch", daemon=True) if kernel else None
        if watcher:
            watcher.start()
        try:
            yield
        finally:
            done.set()
            if watcher:
                watcher.join()

    def _run_cell(self, cell, resources, index) -> str:
        """Execute one cell; return why execution must stop ('' to go on)."""
        self._reap_strays()
        try:
            if is_graded(cell):
                problem = self._guard()
                if problem:
                    cell.outputs = [_error("GradingEnvironmentError", problem)]
                    return ""
                with self._freezing_fork_bombs():
                    self.execute_cell(cell, index, store_history=False)
            else:
                with self._freezing_fork_bombs():
                    self.preprocess_cell(cell, resources, index)
        except DeadKernelError:
            LAST_RUN["died"] = [index]
            cell.outputs = list(cell.get("outputs", [])) + [_error(
                "KernelDied", "the kernel stopped while running this cell (os._exit, a crash, or the memory cap)")]
            return "not run: the kernel stopped in an earlier cell"
        except CellTimeoutError:
            run_sync(self._kill)()
            cell.outputs = list(cell.get("outputs", [])) + [_error(
                "CellTimeoutError", f"the cell ran longer than {self.timeout} s and could not be interrupted")]
            return "not run: an earlier cell ran past the time limit"
        return ""

    async def _kill(self) -> None:
        try:
            await ensure_async(self.km.shutdown_kernel(now=True))
        except Exception:  # already gone
            pass

    def _guard(self) -> str:
        """Run the guard in the kernel; '' when it ran and answered genuinely."""
        if not self.guard_name:
            return ""
        msg_id = self.kc.execute("", silent=True, store_history=False,
                                 user_expressions={"guard": f"{self.guard_name}()"})
        reply = self.wait_for_reply(msg_id)
        result = ((reply or {}).get("content", {}).get("user_expressions", {}) or {}).get("guard", {})
        text = result.get("data", {}).get("text/plain", "") if result.get("status") == "ok" else ""
        try:
            text = str(ast.literal_eval(text))
        except (ValueError, SyntaxError):
            text = ""
        if not text.startswith(self.guard_token + "|"):
            return ("the notebook changed the kernel so that the grader's checks could not run; "
                    "this test is not scored")
        self.restored += [item for item in text.split("|", 1)[1].split(";") if item]
        return ""

    def output(self, outs, msg, display_id, cell_index):
        """Keep at most ``max_output_bytes`` of output per cell; errors are always kept."""
        content = msg.get("content", {})
        if msg["msg_type"] == "error":
            content["traceback"] = content.get("traceback", [])[-50:]
            content["evalue"] = str(content.get("evalue", ""))[:2000]
            return super().output(outs, msg, display_id, cell_index)
        size = len(content.get("text", "")) + sum(len(str(v)) for v in content.get("data", {}).values())
        used = self._sizes.get(cell_index, 0)
        self._sizes[cell_index] = used + size
        if used + size <= self.max_output_bytes:
            return super().output(outs, msg, display_id, cell_index)
        if used <= self.max_output_bytes:
            outs.append(NotebookNode(output_type="stream", name="stdout",
                                     text=f"\n[output cut by the grader after {self.max_output_bytes:,} bytes]\n"))
        if content.get("name") == "stderr" and not any(o.get("name") == "stderr" for o in outs):
            outs.append(NotebookNode(output_type="stream", name="stderr", text="[stderr output cut]\n"))
        return None

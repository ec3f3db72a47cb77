"""Grading many submissions at once: a pool of worker processes, a cache that makes
an interrupted run resumable, and limits on every notebook.

Each result is stored in ``OUT/.cache/<lesson digest>/<submission sha256>.json`` as soon as
it arrives, so running the same command again grades only what is missing, and grading
twice gives the same grade sheet. A submission's result depends only on its bytes, the
lesson's sources and the settings, never on the worker that graded it or on the order.
"""

from __future__ import annotations

import json
import os
import queue
import select
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

import helpers
from helpers.course.lessons import Lesson
from helpers.course.nbgrader_run import nbgrader_env
from helpers.grading import course, sandbox
from helpers.grading.layouts import Submission

# OMP_NUM_THREADS=1: several kernels run at once, and torch's default of one OpenMP thread per core
# oversubscribes the CPU (two fast-mode lessons at once on 2 cores: 45-76 s each with 2 threads, 15-18 s
# with 1). The same for --jobs 1, so that a grade never depends on the number of jobs.
GRADING_ENV = {"COURSE_FAST": "1", "COURSE_OFFLINE": "1", "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore",
               "OMP_NUM_THREADS": "1"}


@dataclass
class Settings:
    """How notebooks are run. Those marked (*) change grades and so key the cache."""

    jobs: int = 2
    timeout: int = 60  # (*) seconds per cell
    memory: int = 4 * 2**30  # (*) bytes of data segment per kernel
    nproc: int = 256  # (*) processes and threads per kernel
    fsize: int = 64 * 2**20  # (*) largest file a kernel may write
    max_output: int = 200_000  # (*) output bytes kept per cell
    notebook_timeout: int = 900  # seconds for a whole notebook before its worker is stopped
    isolate: bool = True  # hide the course's secrets from the kernel (where the system allows)

    def keyed(self) -> dict:
        d = asdict(self)
        return {k: d[k] for k in ("timeout", "memory", "nproc", "fsize", "max_output")}


def sha256_file(path: Path) -> str:
    return course.notebook_hash(Path(path).read_bytes())


class Cache:
    """Finished results by submission hash, under one lesson digest."""

    def __init__(self, out: Path, digest: str):
        self.folder = out / ".cache" / digest[:20]

    def get(self, sha: str) -> dict | None:
        path = self.folder / f"{sha}.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def put(self, sha: str, result: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{sha}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(result, sort_keys=True))
        os.replace(tmp, self.folder / f"{sha}.json")


class WorkerProcess:
    """One worker slot: a ``helpers.grading.worker`` process, restarted when it fails."""

    def __init__(self, root: Path):
        self.root = root
        self.settings: dict | None = None
        self.proc: subprocess.Popen | None = None
        self.fresh: subprocess.Popen | None = None  # launched, not yet configured

    def launch(self) -> None:
        """Start the process now: it imports nbgrader while the lesson is prepared."""
        self.fresh = subprocess.Popen(
            [sys.executable, "-m", "helpers.grading.worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True, cwd=self.root,
            env=nbgrader_env({**GRADING_ENV, "COURSE_DATA_DIR": data_folder(self.root)}),
            preexec_fn=sandbox.die_with_parent, start_new_session=True)  # Ctrl-C reaches only the main process

    def configure(self, settings: dict) -> None:
        self.settings = settings

    def _start(self) -> None:
        if self.fresh is None:
            self.launch()
        self.proc, self.fresh = self.fresh, None
        self.proc.stdin.write(json.dumps(self.settings) + "\n")
        self.proc.stdin.flush()

    def grade(self, job: dict, limit: float) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        proc = self.proc  # stop() may clear self.proc from another thread (Ctrl-C)
        try:
            proc.stdin.write(json.dumps(job) + "\n")
            proc.stdin.flush()
            ready, _, _ = select.select([proc.stdout], [], [], limit)
            line = proc.stdout.readline() if ready else ""
        except (BrokenPipeError, OSError, ValueError):
            line = ""
        if line:
            return json.loads(line)
        why = (f"grading stopped after {limit:.0f} s for the whole notebook" if proc.poll() is None
               else "the grading worker stopped")
        self.stop()
        return {"id": job["id"], "scores": {}, "messages": {}, "flags": [], "problem": why, "transient": True}

    def stop(self) -> None:
        for proc in (self.proc, self.fresh):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        self.proc = self.fresh = None
        uid = (self.settings or {}).get("uid")
        if uid is not None:
            sandbox.kill_uid(uid)


def _sandbox_settings(root: Path, work: Path, lesson: Lesson, template: course.Template, settings: Settings,
                      hide_extra: list[Path]) -> dict:
    import matplotlib

    hide = [root / name for name in ("solutions", ".git", "tests", "benchmarks", "dist", "source", "release",
                                     "submitted", "autograded", "feedback", "gradebook.db")]
    hide += [work, Path(tempfile.gettempdir()), *hide_extra]
    if work.parent == Path(WORK_PARENT):
        hide.append(work.parent)  # other grading runs' folders too
    # Every path, nested ones too: a folder that holds the course (say /tmp) is masked, not covered,
    # and what lies inside the course must still be hidden after the course is bound back.
    hide = sorted({str(p.resolve()) for p in hide if p.exists()})
    as_root = os.getuid() == 0
    # The data folder may be a link to a shared disk (/srv/data, /tmp/...): where it really lies is
    # needed too, else the link dangles inside the sandbox and the lesson's data cell fails.
    data = data_folder(root)
    shared = [data] if os.path.isdir(data) else []
    # The helpers package the kernels import is the grader's own (an editable install may point
    # elsewhere than this course folder, say into a checkout under /tmp): it must be visible, read-only.
    shared.append(os.path.dirname(os.path.realpath(helpers.__file__)))
    # (a slot uid reaches the work folders only through the isolated kernel's mounts: --no-isolate keeps the uid)
    return {"root": str(root), "work": str(work), "template": str(template.folder), "lesson": lesson.name,
            "timeout": settings.timeout, "max_output": settings.max_output, "isolate": settings.isolate,
            "hide": hide, "readonly": sorted({str(root), sys.prefix, *shared}),
            "needed": sorted({sys.base_prefix, sys.prefix, str(root), *shared}), "mask": _home_mask(),
            "limits": {"memory": settings.memory, "nproc": settings.nproc, "fsize": settings.fsize, "nofile": 1024},
            "aliases": template.aliases, "mpl_cache": matplotlib.get_cachedir(),
            "slot_uids": as_root and settings.isolate,
            "fork": hasattr(os, "pidfd_open")}  # the kernel factory needs Linux's pidfd


def data_folder(root: Path) -> str:
    """Where the course's data really lie ($COURSE_DATA_DIR or data/, links resolved): the kernels
    are given this path, so that no link has to be followed inside the sandbox."""
    from helpers.config import DATA_ENV

    return os.path.realpath(os.path.expanduser(os.environ.get(DATA_ENV) or root / "data"))


def _home_mask() -> list[str]:
    """The grader's home (its Jupyter connection files, keys, other courses): only what the kernel
    needs inside it stays visible."""
    home = os.path.realpath(os.path.expanduser("~"))
    return [home] if home not in ("/", os.path.realpath(tempfile.gettempdir())) else []


WORK_PARENT = "/dev/shm/course-grading"  # every run's work folder; all of it is hidden from every kernel


def _memory_folder() -> str | None:
    """Under /dev/shm where there is one: the per-notebook gradebooks commit (fsync) a dozen times
    each, which a busy disk can stall for seconds."""
    if not (os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK)):
        return None
    os.makedirs(WORK_PARENT, mode=0o755, exist_ok=True)
    return WORK_PARENT


def grade(subs: list[Submission], lesson: Lesson, out: Path, settings: Settings, *,
          hide_extra: list[Path] = (), progress: bool = True, log=print, elsewhere=None) -> dict[str, dict]:
    """Grade every submission (cached ones are not run again); results by student id.

    With ``elsewhere`` (``helpers.grading.cluster.on(client)`` for a ``distributed.Client``), the
    notebooks are graded on that Dask cluster's workers; the cache and every output stay here. It is
    called as ``elsewhere(todo, lesson, settings, cache, progress, log, hide_extra)``; this module
    imports nothing of the cluster's, which imports this one on its workers.
    """
    digest = course.lesson_digest(lesson, settings.keyed())
    cache = Cache(out, digest)
    results, todo = {}, []
    for sub in subs:
        sha = sha256_file(sub.path)
        hit = cache.get(sha)
        if hit is not None:
            results[sub.student] = hit
        else:
            todo.append((sub, sha))
    log(f"{len(todo)} to grade, {len(results)} already graded (kept in {out / '.cache'})")
    if not todo:
        return results
    if elsewhere is not None:
        results.update(elsewhere(todo, lesson, settings, cache, progress, log, list(hide_extra)))
        return results
    pool = Pool(lesson.root, max(1, min(settings.jobs, len(todo))))
    try:
        template = course.prepare(lesson, cache.folder / "template", settings.keyed())
        pool.configure(lesson, template, settings, list(hide_extra), log)
        canary(pool.workers[0], lesson, template, settings, log)
        results.update(_run_pool(todo, pool.workers, settings, cache, progress))
    finally:
        pool.close()
    return results


class Pool:
    """The grading slots of one machine: worker processes, a work folder hidden from every kernel,
    and (as root) a uid per slot. Shared by the local pool and each Dask worker."""

    def __init__(self, root: Path, count: int):
        self.work = Path(tempfile.mkdtemp(prefix="course-grading-", dir=_memory_folder()))
        os.chmod(self.work, 0o755)
        self.workers = [WorkerProcess(root) for _ in range(count)]
        self.uids: list[int] = []
        for worker in self.workers:  # started now: they import nbgrader while the lesson is prepared
            worker.launch()

    def configure(self, lesson: Lesson, template: course.Template, settings: Settings, hide_extra: list[Path],
                  log=print) -> None:
        base = _sandbox_settings(lesson.root, self.work, lesson, template, settings, hide_extra)
        if base["slot_uids"]:
            self.uids = sandbox.claim_uids(len(self.workers))
        if settings.isolate:
            why = _probe(base, self.work, lesson, self.uids[0] if self.uids else None)
            if why:
                log(f"warning: notebooks cannot be isolated here ({why}); they could read the course's "
                    "solutions. Grade on Linux as root or where user namespaces are allowed.", file=sys.stderr)
                base["isolate"], base["slot_uids"] = False, False
        for k, worker in enumerate(self.workers):  # as root, each slot's kernels run as a uid of their own
            worker.configure({**base, "slot": k, "uid": self.uids[k] if base["slot_uids"] else None})

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        sandbox.release_uids(self.uids)
        self.uids = []
        shutil.rmtree(self.work, ignore_errors=True)


def canary(worker: WorkerProcess, lesson: Lesson, template: course.Template, settings: Settings, log=print) -> None:
    """Grade the reference solution first, in the same sandbox: anything short of full marks with
    no error in any cell is a fault of the grading environment, and grading stops.

    Raises:
        course.GradingError: naming the cell and its error.
    """
    res = worker.grade({"id": -1, "path": str(lesson.source)}, settings.notebook_timeout)
    faults = [f"the notebook could not be graded: {res['problem']}"] if res.get("problem") else []
    for cell in template.cells:
        got = float(res.get("scores", {}).get(cell.grade_id, 0.0))
        if not res.get("problem") and got < cell.points:
            said = res.get("messages", {}).get(cell.grade_id) or "no message"
            faults.append(f"graded cell {cell.grade_id}: {got:g} / {cell.points:g} points ({said})")
    faults += [f"{e} (a cell with no points)" for e in res.get("errors", [])]
    if faults:
        raise course.GradingError(
            f"the canary failed: the reference solution {lesson.source.relative_to(lesson.root)} does not "
            "score full marks with no error when graded here, so the grading environment is broken and no "
            "submission was graded:\n  " + "\n  ".join(faults))
    log(f"canary: the reference solution scores {template.max_points:g} / {template.max_points:g} "
        f"with no error ({res.get('seconds', 0):.1f} s)")


def _probe(base: dict, work: Path, lesson: Lesson, uid: int | None) -> str:
    home = work / "probe-home"
    home.mkdir()
    secrets = [str(lesson.source), str(Path(base["template"]) / "gradebook.db")]
    plan = {"secrets": secrets, "home": str(home), "home_mount": str(home),
            "hide": [h for h in base["hide"] if os.path.isdir(h)], "mask": base["mask"],
            "readonly": base["readonly"], "needed": base["needed"],
            "uid": uid}
    return sandbox.probe(plan)


def _run_pool(todo: list, workers: list[WorkerProcess], settings: Settings, cache: Cache,
              progress: bool) -> dict[str, dict]:
    from tqdm import tqdm

    jobs = len(workers)
    slots: queue.Queue = queue.Queue()
    for worker in workers:
        slots.put(worker)
    results: dict[str, dict] = {}
    bar = tqdm(total=len(todo), desc="grading", unit="notebook", file=sys.stderr, disable=not progress)

    def run(index: int, sub: Submission, sha: str) -> tuple[Submission, str, dict]:
        worker = slots.get()
        try:
            return sub, sha, worker.grade({"id": index, "path": str(sub.path)}, settings.notebook_timeout)
        finally:
            slots.put(worker)

    pool = ThreadPoolExecutor(max_workers=jobs)
    futures = []
    try:
        futures = [pool.submit(run, i, sub, sha) for i, (sub, sha) in enumerate(todo)]
        for future in as_completed(futures):
            sub, sha, result = future.result()
            result.pop("id", None)
            if not result.pop("transient", False):  # a stopped or crashed worker is retried next run
                cache.put(sha, result)
            results[sub.student] = result
            bar.update(1)
    finally:
        bar.close()
        for future in futures:
            future.cancel()
        for worker in workers:  # also those busy: on Ctrl-C their notebooks are stopped, not awaited
            worker.stop()
        pool.shutdown(wait=True, cancel_futures=True)
    return results


def elapsed(start: float) -> str:
    return f"{time.monotonic() - start:.1f} s"

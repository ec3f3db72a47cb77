"""Grading past one machine on a Dask cluster: a running scheduler, or Slurm jobs started
through dask-jobqueue's ``SLURMCluster``.

The coordinator (``runner.grade`` with ``elsewhere=cluster.on(client)``) keeps the resume cache and writes every
output; each Dask task grades one submission, whose bytes it carries, and returns the result.
A Dask worker never runs student code itself: it keeps a ``runner.Pool`` of its own, one
``helpers.grading.worker`` process per thread, which grades in the same sandbox, with the same
limits and guard as the local pool. Before its first notebook, each Dask worker checks that its
course, lesson and helpers are the coordinator's, and grades the reference solution (the canary).

A worker that dies (SIGKILL, its machine gone) loses nothing: the scheduler gives its tasks to
another worker, and results are keyed by student, so no row is written twice.
"""

from __future__ import annotations

import functools
import hashlib
import os
import queue
import shlex
import shutil
import socket
import sys
import threading
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import helpers
from helpers.course.lessons import Lesson, ReleaseError, find_lessons
from helpers.grading import course

ROOT_ENV = "COURSE_GRADING_ROOT"  # on a worker: where the course lies, if not at the coordinator's path
_NODES: dict[str, _Node | BaseException] = {}  # in a Dask worker process: prepared lessons by digest
_LOCK = threading.Lock()


class VersionError(course.GradingError):
    """A worker's course, lesson or helpers differ from the coordinator's."""


def versions(root: Path, lesson: Lesson, keyed: dict) -> dict[str, str]:
    """What a grade depends on, in short: the course's lessons, this lesson's sources and checks,
    and the helpers package (its version and the digest of its code)."""
    h = hashlib.sha256()
    for path in sorted((root / "helpers").rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + path.read_bytes())
    lessons = ",".join(lesson.name for lesson in find_lessons(root))
    return {"course": hashlib.sha256(lessons.encode()).hexdigest()[:12],
            "lesson": f"{lesson.name} {course.lesson_digest(lesson, keyed)[:12]}",
            "helpers": f"{helpers.__version__} (grader {course.GRADER_VERSION}, code {h.hexdigest()[:12]})"}


def check_versions(coordinator: dict[str, str], worker: dict[str, str], where: str) -> None:
    """Raises VersionError naming both versions of everything that differs."""
    differ = [f"{k}: coordinator {coordinator.get(k)!r}, worker {worker.get(k)!r}"
              for k in sorted(set(coordinator) | set(worker)) if coordinator.get(k) != worker.get(k)]
    if differ:
        raise VersionError(f"worker {where} refused: its course differs from the coordinator's ("
                           + "; ".join(differ) + "). Give every machine the same checkout of the course.")


def spec_for(lesson: Lesson, settings, hide_extra=()) -> dict:
    """What a Dask task needs to grade this lesson as the coordinator would (small, picklable)."""
    return {"root": str(lesson.root), "lesson": lesson.name, "settings": asdict(settings),
            "hide": [str(p) for p in hide_extra],  # the submissions and outputs, where a worker shares the disk
            "versions": versions(lesson.root, lesson, settings.keyed()),
            "digest": course.lesson_digest(lesson, settings.keyed())}


class _Node:
    """One Dask worker's grading slots for one lesson, checked and canaried once."""

    def __init__(self, spec: dict, slots: int):
        from helpers.grading import runner

        root = Path(os.environ.get(ROOT_ENV) or spec["root"])
        self.where = f"{socket.gethostname()} (pid {os.getpid()})"
        try:
            lesson = find_lessons(root, [spec["lesson"]])[0]
        except ReleaseError as err:
            raise course.GradingError(f"worker {self.where}: {err}") from None
        settings = runner.Settings(**spec["settings"])
        check_versions(spec["versions"], versions(root, lesson, settings.keyed()), self.where)
        self.pool = runner.Pool(root, slots)
        try:
            template = course.prepare(lesson, self.pool.work / "template", settings.keyed())
            notes: list[str] = []
            hide = [Path(p) for p in spec.get("hide", []) if os.path.exists(p)]
            self.pool.configure(lesson, template, settings, hide, log=lambda *a, **k: notes.append(" ".join(a)))
            runner.canary(self.pool.workers[0], lesson, template, settings, log=notes.append)
        except BaseException:
            self.pool.close()
            raise
        self.note = f"{self.where}: " + "; ".join(notes)
        self.timeout = settings.notebook_timeout
        self.free: queue.Queue = queue.Queue()
        for worker in self.pool.workers:
            self.free.put(worker)


def _node(spec: dict) -> _Node:
    with _LOCK:  # the first task on each worker prepares; the others wait for it
        node = _NODES.get(spec["digest"])
        if node is None:
            try:
                node = _Node(spec, _threads())
            except BaseException as err:  # remembered: every later task fails the same way, at once
                node = err
            _NODES[spec["digest"]] = node
    if isinstance(node, BaseException):
        raise node
    return node


def _threads() -> int:
    try:
        from distributed import get_worker

        return max(1, int(get_worker().state.nthreads))
    except (ImportError, ValueError, AttributeError):
        return 1


def canary_task(spec: dict) -> str:
    """Run on one worker before any submission: the version check and the canary; what it said."""
    return _node(spec).note


def grade_task(spec: dict, job: dict) -> dict:
    """Grade one submission (``job``: id, sha, data) on this worker; the result as the local pool gives it."""
    node = _node(spec)
    worker = node.free.get()
    path = node.pool.work / f"incoming-{job['sha']}-{job['id']}.ipynb"
    try:
        path.write_bytes(job["data"])
        return worker.grade({"id": job["id"], "path": str(path)}, node.timeout)
    finally:
        path.unlink(missing_ok=True)
        node.free.put(worker)


def release_task(digest: str) -> bool:
    """After a run: stop this worker's grading processes for the lesson and delete its work folder."""
    with _LOCK:
        node = _NODES.pop(digest, None)
    if isinstance(node, _Node):
        node.pool.close()
    return node is not None


def on(client):
    """What ``runner.grade(..., elsewhere=...)`` calls to grade on ``client``'s cluster; None without one."""
    if client is None:
        return None
    return functools.partial(run, client)


def run(client, todo: list, lesson: Lesson, settings, cache, progress: bool, log=print,
        hide_extra=()) -> dict[str, dict]:
    """Grade ``todo`` ((submission, sha) pairs) on the cluster; each result is cached as it arrives."""
    from distributed import as_completed
    from tqdm import tqdm

    spec = spec_for(lesson, settings, hide_extra)
    addresses = _wait_for_workers(client, log)
    results: dict[str, dict] = {}
    live: dict[str, tuple] = {}  # key -> (future, submission, sha): only notebooks not yet back
    todo_left = iter(enumerate(todo))
    try:
        canaries = [client.submit(canary_task, spec, workers=[a], allow_other_workers=False, pure=False)
                    for a in addresses]
        for future in canaries:
            log(f"canary on {future.result()}")
        arrived = as_completed()
        _top_up(client, arrived, todo_left, live, spec)
        with tqdm(total=len(todo), desc="grading", unit="notebook", file=sys.stderr, disable=not progress) as bar:
            for future in arrived:
                _, sub, sha = live.pop(future.key)  # the result's only reference goes with it
                result = _result(future)
                result.pop("id", None)
                if not result.pop("transient", False):
                    cache.put(sha, result)
                results[sub.student] = result
                bar.update(1)
                _top_up(client, arrived, todo_left, live, spec)
    finally:
        client.cancel([future for future, _, _ in live.values()])
        _release(client, spec["digest"])
    return results


def _top_up(client, arrived, todo_left, live: dict, spec: dict) -> None:
    """Keep about two notebooks per worker thread in flight: a class of 60,000 never sits in the
    scheduler's memory (or this machine's) at once, and workers that join later get work too."""
    window = max(8, 2 * sum(client.nthreads().values()))
    while len(live) < window:
        try:
            i, (sub, sha) = next(todo_left)
        except StopIteration:
            return
        job = {"id": i, "sha": sha, "data": Path(sub.path).read_bytes()}
        future = client.submit(grade_task, spec, job, pure=False, key=f"grade-{sha[:16]}-{i}")
        live[future.key] = (future, sub, sha)
        arrived.add(future)


def _result(future) -> dict:
    from distributed.scheduler import KilledWorker

    try:
        return future.result()
    except KilledWorker:  # every worker that took it died: not cached, so the next run tries again
        return {"scores": {}, "messages": {}, "flags": [], "transient": True,
                "problem": "the grading machines died while grading this notebook, again and again"}


def _wait_for_workers(client, log, timeout: float | None = 120) -> list[str]:
    workers = client.scheduler_info().get("workers", {})
    if not workers:
        log("waiting for Dask workers to join the scheduler ...")
        try:
            client.wait_for_workers(1, timeout=timeout)
        except TimeoutError:
            raise course.GradingError(
                f"no Dask worker joined the scheduler {client.scheduler.address} within {timeout:.0f} s: "
                "start workers (dask worker ADDRESS) or check the Slurm queue (squeue)") from None
        workers = client.scheduler_info().get("workers", {})
    return sorted(workers)


def _release(client, digest: str) -> None:
    try:
        client.run(release_task, digest)
    except Exception:  # a worker that is gone has nothing left to release
        pass


@contextmanager
def connect(root: Path, scheduler: str | None = None, scheduler_file: Path | None = None,
            slurm: dict | None = None, log=print):
    """A ``distributed.Client`` for the cluster asked for, or None to grade on this machine.

    Args:
        scheduler: a running scheduler's address (tcp://HOST:8786).
        scheduler_file: the file a running scheduler wrote (dask scheduler --scheduler-file).
        slurm: options for ``slurm_cluster`` (plus ``jobs``, how many Slurm jobs to start).
    """
    if not (scheduler or scheduler_file or slurm):
        yield None
        return
    from distributed import Client

    cluster = None
    try:
        if slurm is not None:
            if shutil.which("sbatch") is None:
                raise course.GradingError("--slurm needs Slurm's sbatch on PATH: run the command on a login node "
                                          "of the cluster, or grade on this machine without --slurm")
            opts = dict(slurm)
            jobs = opts.pop("jobs")
            cluster = slurm_cluster(root, **opts)
            cluster.scale(jobs=jobs)
            log(f"submitted {jobs} Slurm jobs of {opts.get('cores')} cores (dask-jobqueue); the canary runs on "
                "each worker as it joins")
            client = Client(cluster)
        elif scheduler_file is not None:
            if not Path(scheduler_file).is_file():
                raise course.GradingError(f"no scheduler file at {scheduler_file}: start the scheduler with "
                                          f"`dask scheduler --scheduler-file {scheduler_file}` first")
            client = Client(scheduler_file=str(scheduler_file), timeout="30s")
        else:
            client = Client(scheduler, timeout="30s")
    except OSError as err:
        if cluster is not None:
            cluster.close()
        raise course.GradingError(f"cannot reach the Dask scheduler {scheduler or scheduler_file}: {err}. "
                                  "Check the address and that the scheduler is running.") from None
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def slurm_cluster(root: Path, queue: str | None = None, account: str | None = None, cores: int = 4,
                  memory: str = "16GB", walltime: str = "01:00:00"):
    """A dask-jobqueue ``SLURMCluster`` whose jobs run one Dask worker with ``cores`` threads, each
    thread a grading slot, in this course's Python and checkout."""
    from dask_jobqueue import SLURMCluster

    prologue = [f"cd {shlex.quote(str(root))}"]
    if os.environ.get("COURSE_DATA_DIR"):
        prologue.append(f"export COURSE_DATA_DIR={shlex.quote(os.environ['COURSE_DATA_DIR'])}")
    return SLURMCluster(queue=queue, account=account, cores=cores, processes=1, memory=memory, walltime=walltime,
                        python=sys.executable, job_name="course-grading", job_script_prologue=prologue)

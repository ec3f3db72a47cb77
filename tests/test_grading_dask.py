"""Grading on a Dask cluster: the same bytes as the local pool, nothing lost when a worker is
SIGKILLed mid-notebook or the coordinator is interrupted, workers of another version refused,
and the Slurm job script rendered from the command's options."""

from __future__ import annotations

import filecmp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from helpers.course.lessons import find_lessons
from helpers.course.nbgrader_run import nbgrader_env
from helpers.grading import cluster, runner
from tests.conftest import ROOT
from tests.grading_tools import SOURCE, STUDENT, answer, grade, read, sheet, solved

pytestmark = pytest.mark.slow
CLASS = {"ada": lambda: read(SOURCE), "bea": lambda: read(STUDENT), "cyd": lambda: solved([0, 2]),
         "dan": lambda: answer(solved(), 2, "def standardize_features(x):\n    return x - x.mean(dim=0)\n"),
         "eve": lambda: solved([1, 3, 5])}


@pytest.fixture(scope="module")
def klass(tmp_path_factory):
    """Five submissions in a flat folder, and their grades from this machine's pool."""
    base = tmp_path_factory.mktemp("dask")
    subs = base / "submissions"
    subs.mkdir()
    for student, make in CLASS.items():
        nbformat.write(make(), subs / f"{student}.ipynb")
    grade(subs, base / "local", "--jobs", "2")
    return subs, base / "local"


def _same_outputs(a: Path, b: Path) -> None:
    assert (a / "grades.csv").read_bytes() == (b / "grades.csv").read_bytes()
    cmp = filecmp.dircmp(a / "feedback", b / "feedback")
    assert not (cmp.left_only or cmp.right_only or cmp.diff_files), cmp.report()
    for sub in cmp.common_dirs:
        for name in os.listdir(a / "feedback" / sub):
            assert (a / "feedback" / sub / name).read_bytes() == (b / "feedback" / sub / name).read_bytes()


def test_local_cluster_gives_the_same_bytes_and_refuses_another_version(klass, tmp_path):
    from distributed import Client, LocalCluster

    subs, local = klass
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None) as lc, \
            Client(lc) as client:
        proc = grade(subs, tmp_path / "dask", "--scheduler", lc.scheduler_address)
        assert proc.stdout.count("canary on ") == 2, proc.stdout  # each worker proved its environment
        _same_outputs(local, tmp_path / "dask")
        kept = client.run(lambda: sorted(cluster._NODES))
        assert not any(kept.values()), f"a worker kept its grading processes: {kept}"

        lesson = find_lessons(ROOT, ["01"])[0]
        spec = cluster.spec_for(lesson, runner.Settings())
        spec["versions"]["helpers"], spec["digest"] = "0.0.1 (grader 1, code 000000000000)", "another run"
        with pytest.raises(cluster.VersionError, match=r"coordinator '0\.0\.1 .*', worker '0\.1\.0"):
            client.submit(cluster.canary_task, spec, pure=False).result()


def _start(args, **kw):
    kw.setdefault("stdout", subprocess.DEVNULL)
    kw.setdefault("stderr", subprocess.DEVNULL)
    return subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env=nbgrader_env(), start_new_session=True, **kw)


def _wait(what, timeout=300):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = what()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_worker_killed_and_coordinator_interrupted_lose_nothing(klass, tmp_path):
    """A scheduler and two workers as separate processes on 127.0.0.1, through a scheduler file:
    the coordinator is interrupted after its first result and started again, and in that second
    run one worker is SIGKILLed in the middle of a notebook. The sheet equals the local one."""
    from distributed import Client

    subs, local = klass
    file = tmp_path / "scheduler.json"
    procs = [_start(["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                     "--scheduler-file", str(file), "--no-dashboard"])]
    try:
        _wait(file.is_file, 60)
        for name in ("w1", "w2"):
            procs.append(_start(["distributed.cli.dask_worker", "--scheduler-file", str(file), "--name", name,
                                 "--nthreads", "1", "--no-nanny", "--host", "127.0.0.1", "--no-dashboard"]))
        with Client(scheduler_file=str(file)) as client:
            client.wait_for_workers(2, timeout=60)
            out = tmp_path / "grades"
            args = ["helpers.grading", "grade", "01", str(subs), "--out", str(out), "--quiet",
                    "--scheduler-file", str(file)]
            first = _start(args)
            _wait(lambda: list(out.glob(".cache/*/*.json")))
            first.send_signal(signal.SIGINT)
            assert first.wait(120) == 130
            done = len(list(out.glob(".cache/*/*.json")))
            assert 1 <= done < len(CLASS)

            second = _start(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            _wait(lambda: _busy(client, "w2"))
            time.sleep(1.0)  # well inside the notebook (a lesson-01 notebook takes seconds here)
            assert _busy(client, "w2"), "w2 finished its notebook before it could be killed"
            os.killpg(procs[2].pid, signal.SIGKILL)
            said = second.communicate(timeout=600)[0]
            assert second.returncode == 0, said[-3000:]
        _same_outputs(local, out)
        assert list(sheet(out)) == sorted(CLASS)  # one row per student
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _busy(client, name: str) -> str:
    """The key of a grading task that worker ``name`` is running now, or ''."""
    info = client.scheduler_info()["workers"]
    for address, keys in client.processing().items():
        if info.get(address, {}).get("name") == name:
            return next((k for k in keys if str(k).startswith("grade-")), "")
    return ""


def test_slurm_job_script_renders_the_options(tmp_path):
    script = cluster.slurm_cluster(ROOT, queue="short", account="cs101", cores=8, memory="32GB",
                                   walltime="02:30:00")
    try:
        text = script.job_script()
    finally:
        script.close()
    for line in ("#SBATCH -p short", "#SBATCH -A cs101", "#SBATCH --cpus-per-task=8", "#SBATCH --mem=30G",
                 "#SBATCH -t 02:30:00", f"cd {ROOT}", f"{sys.executable} -m distributed.cli.dask_worker",
                 "--nthreads 8"):
        assert line in text, text


def test_slurm_without_sbatch_and_a_missing_scheduler_file_say_what_to_do(klass, tmp_path):
    subs, _ = klass
    env = {**nbgrader_env(), "PATH": os.path.dirname(sys.executable)}  # no sbatch here
    proc = subprocess.run([sys.executable, "-m", "helpers.grading", "grade", "01", str(subs), "--out",
                           str(tmp_path / "g"), "--slurm", "--quiet"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 3 and "needs Slurm's sbatch on PATH" in proc.stderr, proc.stderr
    proc = grade(subs, tmp_path / "g", "--scheduler-file", str(tmp_path / "nothing.json"), check=False)
    assert proc.returncode == 3 and "dask scheduler --scheduler-file" in proc.stderr, proc.stderr
    assert not (tmp_path / "g" / "grades.csv").exists()


def test_only_a_window_of_notebooks_is_in_flight(tmp_path):
    """About two notebooks per worker thread (at least 8) travel at once, topped up as results return."""
    from types import SimpleNamespace

    class Client:
        def nthreads(self):
            return {"tcp://a": 3}

        def submit(self, fn, spec, job, pure, key):
            return SimpleNamespace(key=key, job=job)

    subs = []
    for i in range(20):
        (tmp_path / f"s{i}.ipynb").write_bytes(b"{}")
        subs.append((SimpleNamespace(path=tmp_path / f"s{i}.ipynb", student=f"s{i}"), f"{i:064d}"))
    live, arrived, left = {}, [], iter(enumerate(subs))
    arrived_add = SimpleNamespace(add=arrived.append)
    cluster._top_up(Client(), arrived_add, left, live, {})
    assert len(live) == len(arrived) == 8  # max(8, 2 x 3 threads)
    live.pop(arrived[0].key)
    cluster._top_up(Client(), arrived_add, left, live, {})
    assert len(live) == 8 and arrived[-1].job["id"] == 8

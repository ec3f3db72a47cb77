"""Class grading of lesson 07, whose notebook starts processes: in the sandbox, two at once, with
the hostile cases of distributed code (processes never joined, a collective that hangs in a worker or
in the kernel itself, a rank that exits early)."""

from __future__ import annotations

import csv
import subprocess
import sys
import time

import nbformat
import pytest

from helpers.course.nbgrader_run import nbgrader_env
from tests.conftest import ROOT
from tests.notebook_tools import solve

pytestmark = pytest.mark.slow
LESSON = "07_distributed"
SOURCE = ROOT / "solutions" / LESSON / f"{LESSON}.ipynb"
STUDENT = ROOT / "notebooks" / LESSON / f"{LESSON}.ipynb"
POINTS = {"ex1_average_gradients": 2, "ex2_epoch_shards": 2, "ex3_ddp_step": 3, "ex4_checkpoint": 3,
          "ex5_resume": 3}
IDS = list(POINTS)


def _solved():
    return solve(nbformat.read(STUDENT, as_version=4), nbformat.read(SOURCE, as_version=4), list(range(5)))


def _answer(nb, k: int, source: str, *, prepend: bool = False):
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == f"ex{k}_answer")
    cell.source = source + "\n" + cell.source if prepend else source
    return nb


def _scores(only=None):
    out = {gid: float(p) for gid, p in POINTS.items()}
    out.update({k: float(v) for k, v in (only or {}).items()})
    return out


NEVER_JOINED = '''import subprocess, sys
sleepers = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(900)"]) for _ in range(3)]
spare = distributed.Pool(2)
spare.start()  # two more workers, never closed
'''
RANK_EXITS_EARLY = '''def average_gradients(model):
    if dist.get_rank() == 1:
        os._exit(0)  # this rank leaves before the all-reduce
    for p in model.parameters():
        dist.all_reduce(p.grad)
        p.grad /= dist.get_world_size()
'''
WORKER_HANGS = '''def ddp_step(model, images, labels, lr):
    ddp = DDP(model)
    opt = torch.optim.SGD(ddp.parameters(), lr=lr)
    rank, world = dist.get_rank(), dist.get_world_size()
    if rank == 0:  # only rank 0 runs backward, so its all-reduce waits for a rank that never comes
        F.cross_entropy(ddp(images.chunk(world)[rank]), labels.chunk(world)[rank]).backward()
    else:
        time.sleep(600)
    opt.step()
'''
KERNEL_HANGS = '''import torch.distributed as dist
# a process group of two in the kernel itself: rank 1 never comes, and the default timeout is 30 minutes
dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=2)
'''


def _cases() -> dict:
    """Two notebooks, graded at the same time: the hostile cases that concern worker processes in one
    (each in its own exercise), the kernel's own hung collective in the other. The honest reference is
    graded too, as the canary, before them."""
    workers = _answer(_answer(_answer(_solved(), 1, RANK_EXITS_EARLY), 2, NEVER_JOINED, prepend=True),
                      3, WORKER_HANGS)
    return {
        "hostile_workers": (workers, _scores({IDS[0]: 0, IDS[2]: 0})),
        "collective_hangs_in_the_kernel": (_answer(_solved(), 4, KERNEL_HANGS, prepend=True),
                                           _scores({IDS[3]: 0, IDS[4]: 0})),
    }


def test_lesson07_is_graded_in_the_sandbox_with_hostile_distributed_code(tmp_path):
    """Two notebooks at once (--jobs 2), each starting worker processes and torchrun: the reference gets
    full marks (the canary), every hostile notebook keeps the points its honest answers earned (a rank
    that exits early, processes never joined, a collective that hangs in a worker), and the hung ones
    end by the time limits, not by the notebook's timeout. The collectives' time limit is the grader's
    setting COURSE_COLLECTIVE_TIMEOUT, 10 s here (30 s by default), and it reaches the sandboxed kernels."""
    cases = _cases()
    folder = tmp_path / "submitted"
    folder.mkdir()
    for name, (nb, _) in cases.items():
        nbformat.write(nb, folder / f"{name}.ipynb")
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "helpers.grading", "grade", "07", str(folder), "--out",
                           str(tmp_path / "out"), "--jobs", "2", "--quiet"], cwd=ROOT, capture_output=True,
                          text=True, timeout=1500, env=nbgrader_env({"COURSE_COLLECTIVE_TIMEOUT": "10"}))
    seconds = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "the reference solution scores 13 / 13 with no error" in proc.stdout, proc.stdout[-3000:]
    with open(tmp_path / "out" / "grades.csv", encoding="utf-8") as f:
        sheet = {row["student"]: row for row in csv.DictReader(f)}
    assert set(sheet) == set(cases)
    for name, (_, want) in cases.items():
        row = sheet[name]
        assert row["status"] == "graded", (name, row["status"])
        got = {gid: float(row[gid]) for gid in IDS}
        assert got == want, (name, got, row["review"], proc.stderr[-2000:])
    assert "ends the kernel (os._exit)" in sheet["hostile_workers"]["review"]
    assert "starts processes" in sheet["hostile_workers"]["review"]
    feedback = (tmp_path / "out" / "feedback" / "hostile_workers" / f"{LESSON}.html").read_text(encoding="utf-8")
    assert "no rank finished within 10 s" in feedback  # Exercise 3's hung collective, named to the learner
    print(f"{len(cases)} lesson-07 notebooks graded in {seconds:.0f} s\n{proc.stdout}")

"""helpers.distributed and lesson 07's widget: real processes, hangs that end, a killed worker resumed by torchrun."""

from __future__ import annotations

import os
import tempfile
import time

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import TensorDataset

from helpers import distributed
from helpers.widgets import distributed as widgets_distributed
from tests.test_checks_lesson07 import load_checkpoint, save_checkpoint, train_resumable


def ranks_and_sum(rank, world_size, offset):
    t = torch.tensor([float(rank + offset)])
    dist.all_reduce(t)
    return rank, world_size, t.item()


def barrier_on_rank_zero_only(rank, world_size):
    if rank == 0:
        dist.barrier()
    else:
        time.sleep(120)  # never reaches the barrier
    return rank


def test_run_gives_each_ranks_value_and_the_collective_result():
    assert distributed.run(ranks_and_sum, 10) == [(0, 2, 21.0), (1, 2, 21.0)]
    assert [p.name for p in distributed.pool(2).folder.iterdir()] == ["stderr.txt"]  # no job left in /tmp


def test_a_hung_collective_ends_by_the_deadline_and_the_pool_recovers():
    start = time.monotonic()
    with pytest.raises(distributed.LaunchError, match="rank 1 hung"):
        distributed.run(barrier_on_rank_zero_only, timeout=2)
    assert time.monotonic() - start < 30
    assert distributed.run(ranks_and_sum, 0) == [(0, 2, 1.0), (1, 2, 1.0)]  # a fresh pool


def rank_one_exits(rank, world_size):
    if rank == 1:
        os._exit(3)
    dist.barrier()
    return rank


@pytest.mark.parametrize("victims", ["every rank", "rank 1"])
def test_a_pool_killed_from_outside_between_jobs_is_started_afresh(victims):
    """What a grading sandbox does between two cells: SIGKILL the cell's processes. The next job
    must not lose a rank to the dead pool."""
    pool = distributed.pool(2)
    assert distributed.run(ranks_and_sum, 0) == [(0, 2, 1.0), (1, 2, 1.0)]
    starts = pool.starts
    pids = list(pool.ready.values()) if victims == "every rank" else [pool.ready[1]]
    for pid in pids:
        os.kill(pid, 9)
    assert distributed.run(ranks_and_sum, 1) == [(0, 2, 3.0), (1, 2, 3.0)]
    assert pool.starts == starts + 1


def test_a_rank_that_dies_during_its_job_is_reported_not_retried():
    pool = distributed.pool(2)
    distributed.run(ranks_and_sum, 0)  # a pool kept from an earlier job
    starts = pool.starts
    with pytest.raises(distributed.LaunchError, match=r"rank 1 died: the process ended"):
        distributed.run(rank_one_exits, timeout=5)
    assert pool.starts == starts  # the job ran once: a death inside the job is the answer's


def marks_the_store(rank, world_size):
    store = dist.distributed_c10d._get_default_store()
    found = store.check(["mark"])  # an earlier job's key, seen by this job?
    dist.barrier()
    if rank == 0:
        store.set("mark", "1")
    dist.barrier()
    return found


def test_jobs_share_the_pools_store_connection_but_not_their_keys():
    """The workers connect to the pool's store once (a new client sometimes waits 5 s to connect); each job
    has its own keys in it, so nothing one job wrote is read by the next."""
    pool = distributed.pool(2)
    distributed.run(ranks_and_sum, 0)
    store, starts = pool.store, pool.starts
    for k in range(3):
        assert distributed.run(marks_the_store) == [False, False]
        assert distributed.run(ranks_and_sum, k) == [(0, 2, 2.0 * k + 1), (1, 2, 2.0 * k + 1)]
    assert pool.store is store and pool.starts == starts


SHARE = 0.5
DEVICE = torch.device("cpu")
DATA = TensorDataset(torch.zeros(2, 1))  # an object that cannot travel as source


def _halve(t):
    return t * SHARE


def _uses_the_namespace(rank, world_size):
    from_np = os.path.join("a", "b")
    return _halve(torch.ones(2, device=DEVICE)).sum().item(), nn.Linear(1, 1).in_features, from_np


def _uses_an_object(rank, world_size):
    return len(DATA)


def test_what_a_function_uses_from_its_namespace_travels_with_it():
    """The imports, helper functions and constants a sent function names go into the file with it."""
    text = distributed.module_source(_uses_the_namespace)[len(distributed.HEADER):]
    assert "def _halve(t):" in text and "SHARE = 0.5" in text and "DEVICE = torch.device('cpu')" in text
    assert "import pytest" not in text and "DATA" not in text  # only what the code names; objects stay
    assert distributed.run(_uses_the_namespace) == [(1.0, 1, "a/b")] * 2
    with pytest.raises(distributed.LaunchError, match="NameError: name 'DATA' is not defined"):
        distributed.run(_uses_an_object)


def test_only_functions_with_source_can_be_sent():
    with pytest.raises(TypeError, match="only functions and classes defined"):
        distributed.module_source(len)


def killed_once(rank, world_size, device, epochs, path, kill):
    """train_resumable under torchrun; rank 1 is SIGKILLed after the snapshot of epoch 2 on the first attempt."""
    global save_checkpoint
    real_save, attempt = save_checkpoint, int(os.environ["TORCHELASTIC_RESTART_COUNT"])

    def save_and_maybe_die(model, optimizer, epoch, p):
        real_save(model, optimizer, epoch, p)
        if kill and attempt == 0 and epoch == 2 and rank == 1:
            os.kill(os.getpid(), 9)

    save_checkpoint = save_and_maybe_die
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    g = torch.Generator().manual_seed(1)
    data = TensorDataset(torch.randn(32, 6, generator=g), torch.randint(0, 3, (32,), generator=g))
    train_resumable(model, optimizer, data, epochs, path)
    return attempt, torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.slow
def test_torchrun_restarts_a_killed_worker_and_the_run_resumes(tmp_path):
    """The real torchrun (localhost:0, --max-restarts=1): rank 1 dies by SIGKILL, both ranks come back on
    attempt 1, resume from the snapshot, and end with the weights of a run that was never killed."""
    functions = [train_resumable, save_checkpoint, load_checkpoint, killed_once]
    run = distributed.torchrun(functions, "killed_once", (4, str(tmp_path / "snap.pt"), True), max_restarts=1,
                               cpu=True)
    assert run.returncode == 0, run.log[-3000:]
    assert [attempt for attempt, _ in run.values] == [1, 1], run.log[-3000:]  # both ranks restarted once
    clean = distributed.torchrun(functions, "killed_once", (4, str(tmp_path / "clean.pt"), False), cpu=True)
    assert clean.returncode == 0 and [a for a, _ in clean.values] == [0, 0], clean.log[-3000:]
    for (_, resumed), (_, uninterrupted) in zip(run.values, clean.values, strict=True):
        torch.testing.assert_close(resumed, uninterrupted)


def test_torchrun_leaves_nothing_in_the_temporary_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    run = distributed.torchrun([ranks_and_sum, ranks_and_sum_main], "ranks_and_sum_main", (5,), cpu=True)
    assert run.returncode == 0 and run.values == [(0, 2, 11.0), (1, 2, 11.0)], run.log[-2000:]
    assert list(tmp_path.iterdir()) == []


def ranks_and_sum_main(rank, world_size, device, offset):
    return ranks_and_sum(rank, world_size, offset)


def test_predicted_speedups_follow_the_model():
    free = widgets_distributed.predicted_speedups(10.0, 0.0, 10.0, 0.0, max_procs=8)
    assert free == pytest.approx([float(n) for n in range(1, 9)])  # no communication: perfect scaling
    slow = widgets_distributed.predicted_speedups(1.0, 100.0, 0.1, 20.0, max_procs=8, overlap=False)
    assert slow[0] == 1.0 and all(s < 1.0 for s in slow[1:])  # a big all-reduce on a slow link loses
    hidden = widgets_distributed.predicted_speedups(10.0, 1.0, 1.0, 0.0, max_procs=4, overlap=True)
    assert hidden == pytest.approx([1.0, 2.0, 3.0, 4.0])  # 1.5 ms of all-reduce hides behind 10 ms


def test_scaling_explorer_redraws_when_a_slider_moves():
    explorer = widgets_distributed.ScalingExplorer(compute_ms=1.0, grad_mb=1.0, bandwidth_gbs=1.0, measured={2: 1.4})
    before = list(explorer.speedups)
    explorer.bandwidth.value = 100.0
    assert explorer.speedups[7] > before[7]
    assert "8 processes" in explorer.label.value


def test_plot_shards_colours_each_example_by_its_rank():
    fig = widgets_distributed.plot_shards([[[0, 2], [1, 3]], [[3, 0], [2, 1]]], n=4)
    image = fig.axes[0].images[0].get_array()
    assert image.shape == (2, 4) and image[0].tolist() == [0, 1, 0, 1] and image[1].tolist() == [0, 1, 1, 0]


def test_with_gpus_every_gpu_gets_a_rank_and_nccl(monkeypatch):
    """No GPU here: CUDA is simulated, to check what the code chooses without edits on a GPU machine
    (one rank per GPU, nccl, cuda:LOCAL_RANK, torchrun with --nproc-per-node=GPUs). That NCCL really
    runs needs a GPU machine."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert distributed.backend() == "nccl"
    assert distributed.default_nproc() == 4
    assert distributed.device_for(3) == torch.device("cuda", 3)
    launched = {}

    class Stop(Exception):
        pass

    def fake_popen(cmd, **kwargs):
        launched["cmd"] = cmd
        raise Stop

    monkeypatch.setattr(distributed.subprocess, "Popen", fake_popen)
    with pytest.raises(Stop):
        distributed.torchrun([ranks_and_sum], "ranks_and_sum")
    assert "--nproc-per-node=4" in launched["cmd"] and "--rdzv-endpoint=localhost:0" in launched["cmd"]
    with pytest.raises(Stop):
        distributed.torchrun([ranks_and_sum], "ranks_and_sum", cpu=True)  # the checks: gloo, 2 processes
    assert "--nproc-per-node=2" in launched["cmd"]

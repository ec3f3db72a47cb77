"""`make bench`: the benchmark runs end to end (quick mode) and trains what the lessons train."""

import os
import subprocess
import sys

import nbformat
import pytest

from benchmarks import lessons
from tests.conftest import ROOT


@pytest.mark.slow
def test_quick_benchmark_runs_every_recipe_and_reports_the_targets():
    proc = subprocess.run([sys.executable, "-m", "benchmarks.lessons", "--quick", "--device", "cpu"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "COURSE_OFFLINE": "1", "COURSE_FAST": "0"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    for name in ("lesson 04", "lesson 05", "lesson 06", "PyTorch quickstart", "ZTM TinyVGG", "QUICK smoke test"):
        assert name in out, out
    assert out.count("[met]") + out.count("[MISSED]") == 4, out
    assert "lesson 05 reaches >= 88% test accuracy in <= 15 s" in out


def _source(lesson):
    nb = nbformat.read(ROOT / "solutions" / lesson / f"{lesson}.ipynb", as_version=4)
    return "\n".join(c.source for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize("lesson, snippets", [
    ("04_cnn", ["cnn(c1=16, c2=32).to(device, memory_format=torch.channels_last)", "lr=5e-3", "max_lr=5e-3",
                "fast_or_full(fast=1, full=3)", "batch_size=128, shuffle=True, seed=0"]),
    ("05_training_loop", ["lr=3e-3", "CosineAnnealingLR(optimizer, T_max=epochs)", "fast_or_full(fast=2, full=8)",
                          "nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128)",
                          "batch_size=256, shuffle=True, seed=0"]),
    ("06_validation", ["split(full_train, 0.1, seed=0)", "lr=1e-3", "(patience=3)",
                       "fast_or_full(fast=3, full=25)", "def make_mlp(hidden=(256, 128))"]),
])
def test_the_benchmark_trains_what_the_notebooks_train(lesson, snippets):
    """If a lesson's recipe changes, benchmarks/lessons.py must change with it."""
    source = _source(lesson)
    for snippet in snippets:
        assert snippet in source, f"{lesson} no longer contains {snippet!r}: update benchmarks/lessons.py too"


def test_targets_compare_with_both_peers():
    r = lessons.Result
    results = {"04": r("04", 50, 0.915), "05": r("05", 10, 0.89), "06": r("06", 10, 0.88),
               "quickstart": r("q", 40, 0.70), "tinyvgg": r("t", 60, 0.876)}
    rows = lessons.targets(results, lessons.torch.device("cpu"))
    assert [holds for _, holds, _ in rows] == [True, True, False, True]  # 04 is slower than the quickstart
    results["05"] = r("05", 10, 0.87)
    assert [holds for _, holds, _ in lessons.targets(results, lessons.torch.device("cpu"))][3] is False
    gpu_rows = lessons.targets(results, lessons.torch.device("cuda"))
    assert len(gpu_rows) == 6 and "10x" in gpu_rows[-1][0]


def test_grading_projection_scales_the_measured_cost_per_core():
    from benchmarks import grading

    # 50 notebooks in 100 s on 2 cores: 4 core-s each; 60,000 on 320 cores: 750 s
    line = grading.projection(100.0, 50, 2)
    assert "4.0 core-s per notebook" in line and "= 0.21 h" in line, line
    assert "= 0.42 h" in grading.projection(100.0, 50, 2, machines=10)


@pytest.mark.slow
def test_distributed_benchmark_launches_one_and_two_processes():
    """`make bench-distributed --quick`: torchrun with 1 and 2 gloo processes, samples/s and the speed-up."""
    proc = subprocess.run([sys.executable, "-m", "benchmarks.distributed", "--quick"], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if "samples/s" in line]
    assert "cpu, gloo" in lines[0] and " 1 process" in lines[0] and "speed-up 1.00x" in lines[0], proc.stdout
    assert "cpu, gloo" in lines[1] and " 2 processes" in lines[1], proc.stdout
    assert all(float(line.split(":")[1].split()[0].replace(",", "")) > 0 for line in lines), proc.stdout

"""`make bench`: what DDP buys here, lesson 07's run with 1 and 2 CPU processes (and every GPU).

Launches the lesson-05 MLP under the real ``torchrun`` (``helpers.distributed.torchrun``):
gloo with 1 and with 2 CPU processes, then, where CUDA is there, NCCL on 1 GPU and on every GPU.
Each process trains on its own batch of ``--batch`` examples; the figure is training samples per
second over all processes after a warm-up, and the speed-up over one process of the same kind.
Printed, not asserted: on 2 shared cores two processes compete with everything else.

Usage: ``python -m benchmarks.distributed [--steps 200] [--batch 64] [--quick]``.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from helpers import distributed

# The functions below travel to the torchrun workers as source code, under helpers.distributed.HEADER,
# which imports the same names as this module.


def make_mlp():
    """The lesson-05 network: (batch, 1, 28, 28) -> (batch, 10) logits."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                         nn.Linear(128, 10))


def samples_per_second(rank, world_size, device, steps, batch):
    """Each rank's view of the job's throughput: world_size * batch * steps / seconds (after a warm-up)."""
    torch.manual_seed(rank)
    model = make_mlp().to(device)
    ddp = DDP(model, device_ids=[device] if device.type == "cuda" else None)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.01)
    x = torch.rand(batch, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    for step in range(steps + 5):
        if step == 5:  # warmed up: start the clock together
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            dist.barrier()
            start = time.perf_counter()
        optimizer.zero_grad()
        F.cross_entropy(ddp(x), y).backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    dist.barrier()
    return world_size * batch * steps / (time.perf_counter() - start)


def measure(nproc: int, steps: int, batch: int, *, cpu: bool) -> float:
    """Samples per second of one torchrun of ``nproc`` processes (rank 0's figure)."""
    run = distributed.torchrun([make_mlp, samples_per_second], "samples_per_second", (steps, batch), nproc=nproc,
                               cpu=cpu, timeout=600)
    if run.returncode != 0:
        raise RuntimeError(f"torchrun with {nproc} processes failed:\n{run.log[-3000:]}")
    return run.values[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.distributed", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="timed steps per run (default: 200)")
    parser.add_argument("--batch", type=int, default=64, help="examples per process and step (default: 64)")
    parser.add_argument("--quick", action="store_true", help="20 steps: a smoke test")
    args = parser.parse_args(argv)
    steps = 20 if args.quick else args.steps
    rows = []
    one = measure(1, steps, args.batch, cpu=True)
    two = measure(2, steps, args.batch, cpu=True)
    rows += [("cpu, gloo", 1, one, 1.0), ("cpu, gloo", 2, two, two / one)]
    if torch.cuda.is_available():
        gpus = torch.cuda.device_count()
        single = measure(1, steps, args.batch, cpu=False)
        rows.append(("cuda, nccl", 1, single, 1.0))
        if gpus > 1:
            every = measure(gpus, steps, args.batch, cpu=False)
            rows.append(("cuda, nccl", gpus, every, every / single))
    print(f"\nlesson 07: DDP of the lesson-05 MLP, batch {args.batch} per process, {steps} steps"
          + (" (QUICK smoke test)" if args.quick else ""))
    for kind, n, rate, speedup in rows:
        plural = "es" if n > 1 else "  "
        print(f"  {kind:<11} {n:>2} process{plural}: {rate:10,.0f} samples/s   speed-up {speedup:.2f}x")
    if not torch.cuda.is_available():
        print("  (no GPU here: on a CUDA machine the same run adds NCCL on 1 GPU and on every GPU)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Lesson 07's pictures and control: which rank gets which example, and what two processes buy.

Introduced in lesson 07.
"""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np

from helpers.plots import PALETTE
from helpers.widgets.base import Control


def plot_shards(shards_by_epoch: Sequence[Sequence[Sequence[int]]], n: int, *, ax=None):
    """One row per epoch, one cell per example, coloured by the rank that gets it (hatched when padded twice).

    Args:
        shards_by_epoch: for each epoch, each rank's list of indices (what ``epoch_shards`` returns).
        n: the size of the data set.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * len(shards_by_epoch)))
    world = len(shards_by_epoch[0])
    grid = np.full((len(shards_by_epoch), n), np.nan)
    for e, shards in enumerate(shards_by_epoch):
        for rank, shard in enumerate(shards):
            for i in shard:
                grid[e, int(i)] = rank
    cmap = plt.matplotlib.colors.ListedColormap(PALETTE[:world])
    ax.imshow(grid, cmap=cmap, vmin=-0.5, vmax=world - 0.5, aspect="auto")
    ax.set(xlabel="example index", ylabel="epoch", yticks=range(len(shards_by_epoch)),
           title=f"Which of {world} ranks gets each example, epoch by epoch")
    handles = [plt.matplotlib.patches.Patch(color=PALETTE[r], label=f"rank {r}") for r in range(world)]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    ax.figure.tight_layout()
    return ax.figure


def predicted_speedups(compute_ms: float, grad_mb: float, bandwidth_gbs: float, latency_us: float,
                       max_procs: int = 16, overlap: bool = True) -> list[float]:
    """Speed-up of N processes over one, for N = 1..max_procs, under a simple model of data parallelism.

    Each process computes its batch in ``compute_ms`` (the batch per process stays the same, so N
    processes do N times the work per step). A ring all-reduce of ``grad_mb`` of gradients sends
    2(N-1)/N of them over links of ``bandwidth_gbs`` in 2(N-1) rounds of ``latency_us``. DDP overlaps
    the all-reduce with the backward pass (``overlap``), so a step takes the longer of the two;
    without overlap, their sum.
    """
    out = []
    for n in range(1, max_procs + 1):
        comm = 0.0 if n == 1 else (2 * (n - 1) / n * grad_mb / 1024 / bandwidth_gbs * 1e3
                                   + 2 * (n - 1) * latency_us / 1e3)
        step = max(compute_ms, comm) if overlap else compute_ms + comm
        out.append(n * compute_ms / step)
    return out


class ScalingExplorer(Control):
    """Sliders for compute time, gradient size and the network: the speed-up that N processes give.

    The teaching point: data parallelism pays while the all-reduce of the gradients hides behind the
    computation; a small model on a slow link (two CPU processes sharing memory bandwidth, or nodes on
    ordinary Ethernet) spends its time communicating. ``measured`` adds a point measured in the lesson.
    """

    def __init__(self, compute_ms: float = 20.0, grad_mb: float = 1.0, bandwidth_gbs: float = 10.0,
                 latency_us: float = 20.0, measured: dict[int, float] | None = None):
        style = {"description_width": "initial"}
        self.compute = widgets.FloatLogSlider(value=compute_ms, base=10, min=-1, max=3, step=0.05,
                                              description="compute per step (ms)", style=style,
                                              continuous_update=False)
        self.grad = widgets.FloatLogSlider(value=grad_mb, base=10, min=-2, max=3, step=0.05,
                                           description="gradients (MB)", style=style, continuous_update=False)
        self.bandwidth = widgets.FloatLogSlider(value=bandwidth_gbs, base=10, min=-1, max=2.7, step=0.05,
                                                description="link (GB/s)", style=style, continuous_update=False)
        self.overlap = widgets.Checkbox(value=True, description="overlap all-reduce with backward (DDP)")
        self.latency_us = latency_us
        self.measured = dict(measured or {})
        self.speedups: list[float] = []
        self._build([self.compute, self.grad, self.bandwidth, self.overlap])

    def update(self) -> None:
        self.speedups = predicted_speedups(self.compute.value, self.grad.value, self.bandwidth.value,
                                           self.latency_us, overlap=self.overlap.value)
        best = max(range(len(self.speedups)), key=self.speedups.__getitem__) + 1
        self.label.value = (f"8 processes: <b>{self.speedups[7]:.1f}×</b> faster than one "
                            f"({self.speedups[7] / 8:.0%} efficiency); the best here is {best} processes.")
        self._draw(self._figure)

    def _figure(self):
        fig, ax = plt.subplots(figsize=(5.5, 3.2))
        n = np.arange(1, len(self.speedups) + 1)
        ax.plot(n, n, color=PALETTE[7], linestyle=":", label="perfect")
        ax.plot(n, self.speedups, color=PALETTE[0], marker="o", label="predicted")
        if self.measured:
            ax.scatter(list(self.measured), list(self.measured.values()), color=PALETTE[3], zorder=3, s=60,
                       label="measured here")
        ax.set(xlabel="processes", ylabel="speed-up over one process", title="What data parallelism buys")
        ax.legend(frameon=False)
        fig.tight_layout()
        return fig

"""Interactive controls and a picture for lesson 02 (nn.Module), for ipywidgets 7.7 (Colab) and 8.

Like ``helpers.widgets``: only FloatSlider, IntSlider, Output, HTML and VBox, observed
with ``names="value"``, and every control keeps what it computed in plain attributes,
so a test can move it and read the result without a browser.

Introduced in lesson 02.
"""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
from matplotlib.ticker import MaxNLocator, StrMethodFormatter
from torch import nn

from helpers.plots import PALETTE
from helpers.widgets.base import Control

_STYLE = {"description_width": "initial"}


def _own_count(module: nn.Module) -> int:
    """Values in the parameters a module holds itself (not those of its children)."""
    return sum(p.numel() for p in module.parameters(recurse=False))


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """How many parameter values each layer of ``model`` holds, by layer name, in order.

    Layers without parameters (ReLU, Flatten, Dropout) are left out.

    Example: ``parameter_counts(nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10)))``
    is ``{"0": 100480, "2": 1290}``.
    """
    return {name or type(model).__name__: _own_count(m) for name, m in model.named_modules() if _own_count(m)}


def _short(module: nn.Module) -> str:
    if isinstance(module, nn.Linear):
        return f"Linear({module.in_features}→{module.out_features})"
    if isinstance(module, nn.Conv2d):
        return f"Conv2d({module.in_channels}→{module.out_channels})"
    return type(module).__name__


def plot_parameter_counts(model: nn.Module, *, ax=None, title: str = "Parameters per layer"):
    """A bar chart of the parameter values in each layer of ``model``, with the total in the title."""
    layers = [(name, m) for name, m in model.named_modules() if _own_count(m)]
    counts = [_own_count(m) for _, m in layers]
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(max(6.0, 1.8 * len(counts)), 3.5))
    bars = ax.bar(range(len(counts)), counts, color=PALETTE[0])
    ax.bar_label(bars, labels=[f"{c:,}" for c in counts], fontsize=8)
    ax.set_xticks(range(len(counts)))
    ax.set_xticklabels([f"{name}\n{_short(m)}" for name, m in layers], fontsize=8)
    ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    ax.set(xlabel="layer", ylabel="parameters (weights + biases)", title=f"{title}: {sum(counts):,} in all")
    ax.margins(y=0.15)
    fig.tight_layout()
    return fig


def make_mlp(sizes, *, device=None) -> nn.Sequential:
    """Flatten, then ``nn.Linear`` between consecutive ``sizes`` with a ReLU between them (none at the end).

    Example: ``make_mlp((784, 128, 10))`` is the lesson's 784-128-10 MLP. ``device="meta"`` builds
    it without allocating its weights, to count them.
    """
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        if i:
            layers.append(nn.ReLU())
        layers.append(nn.Linear(n_in, n_out, device=device))
    return nn.Sequential(*layers)


class WidthExplorer(Control):
    """Hidden-width and depth sliders for an MLP on 28×28 images: its parameter count and size.

    The teaching point: every ``nn.Linear(in, out)`` holds in·out + out values, so the first
    layer (784 inputs) holds most of a narrow MLP, and each extra hidden layer adds about
    width² values: doubling the width of a deep MLP quadruples it.

    Introduced in lesson 02.
    """

    def __init__(self, width: int = 128, depth: int = 1):
        self.width = widgets.IntSlider(value=width, min=16, max=1024, step=16, description="hidden width",
                                       continuous_update=False, style=_STYLE)
        self.depth = widgets.IntSlider(value=depth, min=1, max=4, description="hidden layers",
                                       continuous_update=False, style=_STYLE)
        self.sizes: tuple[int, ...] = ()
        self.counts: dict[str, int] = {}
        self.total, self.megabytes, self.first_share = 0, 0.0, 0.0
        self._build([self.width, self.depth])

    def update(self) -> None:
        """Recount the MLP for the current width and depth, and redraw."""
        self.sizes = (784, *[self.width.value] * self.depth.value, 10)
        model = make_mlp(self.sizes, device="meta")  # shapes only: no memory for the weights
        self.counts = parameter_counts(model)
        self.total = sum(self.counts.values())
        self.megabytes = self.total * 4 / 2**20  # float32: 4 bytes a value
        self.first_share = next(iter(self.counts.values())) / self.total
        name = "-".join(map(str, self.sizes))
        self.label.value = (f"<b>{name}</b>: {self.total:,} parameters, {self.megabytes:.2f} MB as float32; "
                            f"the first layer holds {self.first_share:.0%} of them")
        self._draw(lambda: plot_parameter_counts(model, title=f"MLP {name}"))


class DropoutExplorer(Control):
    """A dropout-probability slider: one layer's output in train mode and in eval mode, and the means.

    The teaching point: in train mode ``nn.Dropout(p)`` zeroes a random fraction p of the values
    and multiplies the survivors by 1/(1-p), so on average the output keeps the input's mean;
    every forward pass zeroes different values. In eval mode it passes its input through unchanged.

    Introduced in lesson 02.
    """

    def __init__(self, p: float = 0.5, units: int = 20, passes: int = 2000):
        self.x = torch.rand(units, generator=torch.Generator().manual_seed(2)) + 0.5  # activations after a ReLU
        self.passes = passes
        self.p = widgets.FloatSlider(value=p, min=0.0, max=0.9, step=0.05, description="dropout p",
                                     readout_format=".2f", continuous_update=False, style=_STYLE)
        self.draw = widgets.IntSlider(value=0, min=0, max=9, description="forward pass",
                                      continuous_update=False, style=_STYLE)
        self.train_out, self.eval_out = torch.empty(0), torch.empty(0)
        self.zeroed = self.train_mean = self.long_run_mean = self.eval_mean = 0.0
        self._build([self.p, self.draw])

    def update(self) -> None:
        """Rerun the dropout layer in both modes for the current p and forward pass, and redraw."""
        layer = nn.Dropout(self.p.value)
        with torch.random.fork_rng(devices=[]):  # seeded here, without moving the learner's RNG
            torch.manual_seed(self.draw.value)
            self.train_out = layer.train()(self.x)
            many = layer(self.x.expand(self.passes, -1))  # (passes, units): many forward passes
        self.eval_out = layer.eval()(self.x)
        self.zeroed = float(self.train_out.eq(0).float().mean())
        self.train_mean, self.eval_mean = float(self.train_out.mean()), float(self.eval_out.mean())
        self.long_run_mean = float(many.mean())
        p = self.p.value
        self.label.value = (f"<b>p = {p:.2f}</b>. Train mode: {self.zeroed:.0%} of the values zeroed, the rest "
                            f"×{1 / (1 - p):.2f}; mean {self.train_mean:.3f} in this pass, "
                            f"{self.long_run_mean:.3f} over {self.passes:,} passes. "
                            f"Eval mode: input unchanged, mean {self.eval_mean:.3f}.")
        self._draw(self._figure)

    def _figure(self):
        fig, axes = plt.subplots(1, 2, figsize=(9, 3), sharey=True)
        units = range(len(self.x))
        for ax, out, mode, colour in ((axes[0], self.train_out, "train", PALETTE[1]),
                                      (axes[1], self.eval_out, "eval", PALETTE[0])):
            ax.bar(units, out.numpy(), color=colour)
            ax.axhline(float(out.mean()), color=PALETTE[7], linestyle="--")
            ax.set(title=f"model.{mode}(): mean {float(out.mean()):.3f} (dashed)", xlabel="unit")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[0].set_ylabel("output of nn.Dropout")
        fig.suptitle(f"nn.Dropout(p={self.p.value:.2f}) on the same activations")
        fig.tight_layout()
        return fig

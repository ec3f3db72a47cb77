"""Interactive controls for lessons 04 to 06, for ipywidgets 7.7 (Colab) and 8.

Like ``helpers.widgets``: only FloatLogSlider, IntSlider, Dropdown, Output, HTML and
VBox, observed with ``names="value"``, and every control keeps what it computed in
plain attributes so a test can move it and read the result without a browser.
"""

from __future__ import annotations

import math

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from helpers.plots.evaluation import plot_paths, plot_train_val
from helpers.widgets.base import Control

_STYLE = {"description_width": "initial"}


# ----------------------------------------------------------------------------- lesson 04


def make_filter(name: str, size: int) -> torch.Tensor:
    """A hand-made ``size`` × ``size`` filter: edges, blur or sharpen (for :class:`ConvExplorer`)."""
    if name == "blur":
        return torch.full((size, size), 1.0 / size ** 2)
    if name == "sharpen":
        k = torch.full((size, size), -1.0 / max(size ** 2 - 1, 1))
        k[size // 2, size // 2] = 2.0
        return k
    ramp = torch.linspace(-1, 1, size) if size > 1 else torch.ones(1)
    edge = ramp.repeat(size, 1)  # left negative, right positive: finds vertical edges
    return edge if name == "vertical edges" else edge.T


class ConvExplorer(Control):
    """Kernel size, stride and padding sliders on one image: the output size and the feature map.

    The teaching point: out = (in + 2·padding - kernel) // stride + 1, and a filter is a
    small pattern detector slid over the image.

    Introduced in lesson 04.
    """

    FILTERS = ("vertical edges", "horizontal edges", "blur", "sharpen")

    def __init__(self, image: torch.Tensor, kernel_size: int = 5, stride: int = 1, padding: int = 0):
        self.image = image.detach().float().reshape(1, 1, *image.shape[-2:]).cpu()
        self.kernel = widgets.IntSlider(value=kernel_size, min=1, max=9, step=2, description="kernel size",
                                        continuous_update=False, style=_STYLE)
        self.stride = widgets.IntSlider(value=stride, min=1, max=3, description="stride",
                                        continuous_update=False, style=_STYLE)
        self.padding = widgets.IntSlider(value=padding, min=0, max=4, description="padding",
                                         continuous_update=False, style=_STYLE)
        self.filter = widgets.Dropdown(options=self.FILTERS, value="vertical edges", description="filter",
                                       style=_STYLE)
        self.feature_map = torch.empty(0)
        self.output_size = (0, 0)
        self._build([self.filter, self.kernel, self.stride, self.padding])

    def update(self) -> None:
        """Recompute the feature map for the current settings and redraw it."""
        k, s, p = self.kernel.value, self.stride.value, self.padding.value
        weight = make_filter(self.filter.value, k).reshape(1, 1, k, k)
        self.feature_map = F.conv2d(self.image, weight, stride=s, padding=p)[0, 0]
        self.output_size = tuple(self.feature_map.shape)
        size = self.image.shape[-1]
        self.label.value = (f"<b>{size} → {self.output_size[-1]}</b>: ({size} + 2·{p} − {k}) // {s} + 1 = "
                            f"{self.output_size[-1]}")
        self._draw(self._figure)

    def _figure(self):
        fig, (a, b) = plt.subplots(1, 2, figsize=(6.5, 3.2))
        a.imshow(self.image[0, 0].numpy(), cmap="gray_r")
        a.set(title=f"input {tuple(self.image.shape[-2:])}", xlabel="width", ylabel="height")
        b.imshow(self.feature_map.numpy(), cmap="viridis")
        b.set(title=f"{self.filter.value}: {self.output_size}", xlabel="width", ylabel="height")
        fig.suptitle("One filter slid over the image")
        fig.tight_layout()
        return fig


# ----------------------------------------------------------------------------- lesson 05


def valley(x, y):
    """A long, narrow valley: steep across (y), shallow along (x); minimum 0 at (0, 0)."""
    return 0.5 * (0.4 * x ** 2 + 8.0 * y ** 2)


OPTIMIZERS = {
    "SGD": lambda p, lr: torch.optim.SGD(p, lr=lr),
    "SGD + momentum": lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9),
    "RMSprop": lambda p, lr: torch.optim.RMSprop(p, lr=lr),
    "Adam": lambda p, lr: torch.optim.Adam(p, lr=lr),
}


def optimizer_path(name: str, lr: float, steps: int = 40, start=(-4.5, 1.5)) -> np.ndarray:
    """The points a ``torch.optim`` optimizer visits on :func:`valley`, start included, (steps+1, 2)."""
    point = torch.tensor(start, requires_grad=True)
    opt = OPTIMIZERS[name]([point], lr)
    path = [point.detach().clone()]
    for _ in range(steps):
        opt.zero_grad()
        valley(point[0], point[1]).backward()
        opt.step()
        path.append(point.detach().clone())
        if not torch.isfinite(point).all() or point.abs().max() > 1e3:
            break
    return torch.stack(path).numpy()


class OptimizerExplorer(Control):
    """Pick an optimizer and a learning rate; watch 40 steps on a long, narrow valley.

    The teaching point: plain SGD must keep lr small for the steep direction and then
    crawls along the shallow one; momentum builds up speed along it; RMSprop and Adam
    scale each parameter's step by its own gradient size.

    Introduced in lesson 05.
    """

    def __init__(self, optimizer: str = "SGD", lr: float = 0.1, steps: int = 40):
        self.steps = steps
        self.choice = widgets.Dropdown(options=list(OPTIMIZERS), value=optimizer, description="optimizer",
                                       style=_STYLE)
        self.lr = widgets.FloatLogSlider(value=lr, base=10, min=-3, max=0, step=0.1, description="learning rate",
                                         readout_format=".3f", continuous_update=False, style=_STYLE)
        self.path = np.zeros((0, 2))
        self.final_loss = math.nan
        self.verdict = ""
        self._build([self.choice, self.lr])

    def update(self) -> None:
        """Rerun the optimizer for the current choice and learning rate, and redraw."""
        self.path = optimizer_path(self.choice.value, self.lr.value, self.steps)
        x, y = self.path[-1]
        self.final_loss = float(valley(x, y)) if np.isfinite(self.path[-1]).all() else math.inf
        start = float(valley(*self.path[0]))
        if not math.isfinite(self.final_loss) or self.final_loss > start:
            self.verdict = "diverges: the steps overshoot across the steep direction"
        elif self.final_loss < 0.01 * start:
            self.verdict = "reaches the minimum"
        else:
            self.verdict = f"still far from the minimum after {self.steps} steps"
        self.label.value = (f"<b>{self.choice.value}, lr = {self.lr.value:.3f}</b>: {self.verdict} "
                            f"(loss {start:.2f} → {self.final_loss:.3g})")
        self._draw(lambda: plot_paths(valley, {self.choice.value: self.path},
                                      title=f"{self.steps} steps of {self.choice.value}, lr = {self.lr.value:.3f}"))


# ----------------------------------------------------------------------------- lesson 06


def early_stop_epochs(val_losses, patience: int) -> tuple[int, int]:
    """(epoch to stop after, best epoch), counting from 1, for early stopping with ``patience``.

    Training stops once ``patience`` epochs in a row bring no lower validation loss;
    without that, it runs to the last epoch.
    """
    best, best_epoch = math.inf, 0
    for epoch, loss in enumerate(val_losses, start=1):
        if loss < best:
            best, best_epoch = loss, epoch
        elif epoch - best_epoch >= patience:
            return epoch, best_epoch
    return len(val_losses), best_epoch


class PatienceExplorer(Control):
    """A patience slider over recorded training and validation losses: when would we stop?

    The teaching point: too little patience stops on a noisy bump; too much wastes
    epochs while the model overfits; the restored weights come from the best epoch
    either way.

    Introduced in lesson 06.
    """

    def __init__(self, train_losses, val_losses, patience: int = 3):
        self.train_losses, self.val_losses = list(train_losses), list(val_losses)
        self.patience = widgets.IntSlider(value=patience, min=1, max=max(2, len(self.val_losses)),
                                          description="patience (epochs)", continuous_update=False, style=_STYLE)
        self.stop_epoch, self.best_epoch = 0, 0
        self._build([self.patience])

    def update(self) -> None:
        """Recompute where training stops for the current patience, and redraw."""
        self.stop_epoch, self.best_epoch = early_stop_epochs(self.val_losses, self.patience.value)
        saved = len(self.val_losses) - self.stop_epoch
        self.label.value = (f"<b>patience {self.patience.value}</b>: stop after epoch {self.stop_epoch} "
                            f"({saved} epochs saved), restore epoch {self.best_epoch} "
                            f"(validation loss {self.val_losses[self.best_epoch - 1]:.3f})")
        self._draw(lambda: plot_train_val(self.train_losses, self.val_losses, best_epoch=self.best_epoch,
                                          stop_epoch=self.stop_epoch,
                                          title=f"Early stopping with patience {self.patience.value}"))

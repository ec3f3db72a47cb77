"""Pictures for training and evaluation (lessons 04 to 06): filters, feature maps,
optimizer paths, train/validation curves, live loss curves and a confusion matrix (the
learner counts it: lesson 06, Exercise 5).

Like ``helpers.plots``: each function draws on the Axes it is given (or a new
figure), labels its axes, titles the figure, uses colour-blind-safe colours
(Okabe-Ito lines, viridis and PuOr maps) and changes no global setting.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from helpers.plots import PALETTE, _axes


def _numpy(x) -> np.ndarray:
    return np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=float)


def _grid(n: int, ncols: int, size: float = 1.1):
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.5), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    return fig, axes.flat


def show_filters(weight, *, ncols: int = 8, title: str = "Learned filters"):
    """Each filter of a first convolution layer, ``weight`` of shape (out, 1, k, k).

    Orange is a positive weight, purple a negative one, white zero; each filter has its
    own symmetric colour scale.

    Introduced in lesson 04.
    """
    w = _numpy(weight)
    w = w.reshape(w.shape[0], -1, *w.shape[-2:])[:, 0]  # first input channel
    fig, axes = _grid(len(w), ncols)
    for ax, f in zip(axes, w, strict=False):
        lim = max(abs(f).max(), 1e-8)
        ax.imshow(f, cmap="PuOr_r", vmin=-lim, vmax=lim)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def show_feature_maps(maps, *, ncols: int = 8, title: str = "Feature maps"):
    """The channels of one image's activations, ``maps`` of shape (channels, H, W).

    Introduced in lesson 04.
    """
    m = _numpy(maps)
    m = m.reshape(-1, *m.shape[-2:])
    fig, axes = _grid(len(m), ncols)
    for i, (ax, fmap) in enumerate(zip(axes, m, strict=False)):
        ax.imshow(fmap, cmap="viridis")
        ax.set_title(str(i), fontsize=7)
    fig.suptitle(f"{title} ({m.shape[-2]}×{m.shape[-1]} each)")
    fig.tight_layout()
    return fig


def plot_paths(loss: Callable[[np.ndarray, np.ndarray], np.ndarray], paths: Mapping[str, Sequence],
               *, ax=None, window=((-5.0, 5.0), (-2.5, 2.5)), title: str = "Optimizer paths"):
    """Contours of a 2-D loss and the points each optimizer visited, ``name -> [(x, y), ...]``.

    Introduced in lesson 05.
    """
    fig, ax = _axes(ax, figsize=(6, 3.6))
    (x0, x1), (y0, y1) = window
    gx, gy = np.meshgrid(np.linspace(x0, x1, 200), np.linspace(y0, y1, 120))
    ax.contour(gx, gy, loss(gx, gy), levels=np.geomspace(0.05, 100, 14), cmap="viridis", linewidths=0.8)
    for i, (name, path) in enumerate(paths.items()):
        p = np.clip(_numpy(path).reshape(-1, 2), [x0, y0], [x1, y1])
        ax.plot(p[:, 0], p[:, 1], "o-", ms=2.5, lw=1.2, color=PALETTE[(i + 3) % 8], label=name)
    ax.plot([0], [0], "*", ms=12, color=PALETTE[7], label="minimum")
    ax.set(xlabel="parameter 1", ylabel="parameter 2", title=title, xlim=(x0, x1), ylim=(y0, y1))
    ax.legend(loc="upper right", fontsize=8)
    return fig


def plot_train_val(train: Sequence[float], val: Sequence[float], *, ax=None, best_epoch: int | None = None,
                   stop_epoch: int | None = None, ylabel: str = "loss",
                   title: str = "Training and validation loss"):
    """Training and validation curves by epoch, with the best and the stopping epoch marked.

    Introduced in lesson 06.
    """
    fig, ax = _axes(ax, figsize=(6, 3.6))
    epochs = np.arange(1, len(train) + 1)
    ax.plot(epochs, _numpy(train), color=PALETTE[0], lw=2, label="training")
    ax.plot(np.arange(1, len(val) + 1), _numpy(val), color=PALETTE[1], lw=2, label="validation")
    if best_epoch is not None:
        ax.axvline(best_epoch, color=PALETTE[2], ls="--", label=f"best epoch ({best_epoch})")
    if stop_epoch is not None:
        ax.axvline(stop_epoch, color=PALETTE[3], ls=":", label=f"stopped after epoch {stop_epoch}")
    ax.set(xlabel="epoch", ylabel=ylabel, title=title)
    ax.legend()
    return fig


class LiveCurves:
    """Loss curves that redraw in place after every epoch (``on_epoch`` for ``training.fit``).

    Introduced in lesson 05.
    """

    def __init__(self, title: str = "Live training curves"):
        self.title = title
        self.handle = None

    def __call__(self, epoch: int, history) -> None:
        from IPython.display import display

        fig, ax = plt.subplots(figsize=(5.5, 3.2))
        curves = {"training loss": history.train_loss}
        if history.val_loss:
            curves["validation loss"] = history.val_loss
        for i, (label, values) in enumerate(curves.items()):
            ax.plot(np.arange(1, len(values) + 1), values, "o-", color=PALETTE[i], label=label)
        ax.set(xlabel="epoch", ylabel="loss", title=f"{self.title}: epoch {epoch}")
        ax.legend()
        if self.handle is None:
            self.handle = display(fig, display_id=True)
        else:
            self.handle.update(fig)
        plt.close(fig)


def plot_confusion_matrix(counts, classes: Sequence[str], *, ax=None, title: str = "Confusion matrix"):
    """Row-normalised confusion matrix: row = true class, column = predicted; counts written in.

    Introduced in lesson 06.
    """
    fig, ax = _axes(ax, figsize=(6.5, 5.5))
    c = _numpy(counts)
    rates = c / np.maximum(c.sum(axis=1, keepdims=True), 1)
    image = ax.imshow(rates, cmap="viridis", vmin=0, vmax=1)
    for i in range(len(c)):
        for j in range(len(c)):
            ax.text(j, i, f"{int(c[i, j])}", ha="center", va="center", fontsize=7,
                    color="black" if rates[i, j] > 0.6 else "white")
    ticks = np.arange(len(classes))
    ax.set_xticks(ticks, classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(ticks, classes, fontsize=8)
    ax.set(xlabel="predicted class", ylabel="true class", title=title)
    fig.colorbar(image, ax=ax, label="fraction of the true class")
    fig.tight_layout()
    return fig

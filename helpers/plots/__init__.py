"""Pictures for the lessons: image grids, fitted lines, loss curves, descent paths here, and the
pictures of training and evaluation (lessons 04 to 06) in ``plots.evaluation``.

Every function draws on a matplotlib Axes it is given (or a new figure), labels
its axes, gives the figure a title and uses the Okabe-Ito colour-blind-safe
palette. Nothing here changes matplotlib's global settings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

# Okabe & Ito (2008), safe for the common forms of colour blindness.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")


def _axes(ax, figsize=(5, 3.5)):
    if ax is not None:
        return ax.figure, ax
    return plt.subplots(figsize=figsize)


def show_images(images, labels=None, *, classes: Sequence[str] | None = None, ncols: int = 8,
                title: str = "Sample images", predictions=None):
    """A grid of greyscale images with their labels (and predictions, wrong ones in orange).

    Args:
        images: a tensor or array of shape (N, 28, 28) or (N, 1, 28, 28).
        labels: N integer labels, shown under each image.
        classes: names for the labels.
        predictions: N predicted labels; shown as "pred / true" when given.

    Introduced in lesson 01.
    """
    imgs = np.asarray(images.detach().cpu() if hasattr(images, "detach") else images)
    imgs = imgs.reshape(len(imgs), *imgs.shape[-2:])
    nrows = max(1, -(-len(imgs) // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.3 * ncols, 1.5 * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= len(imgs):
            continue
        ax.imshow(imgs[i], cmap="gray_r")
        if labels is None:
            continue
        name = classes[int(labels[i])] if classes else str(int(labels[i]))
        if predictions is None:
            ax.set_title(name, fontsize=8)
        else:
            pred = classes[int(predictions[i])] if classes else str(int(predictions[i]))
            wrong = int(predictions[i]) != int(labels[i])
            ax.set_title(f"{pred} / {name}", fontsize=8, color=PALETTE[3] if wrong else "black")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_line_fit(x, y, lines: Mapping[str, tuple[float, float]], *, ax=None,
                  title: str = "Fitting a line"):
    """Data points and one or more lines ``label -> (w, b)``.

    Introduced in lesson 01.
    """
    fig, ax = _axes(ax)
    x = np.asarray(x, dtype=float)
    ax.scatter(x, np.asarray(y, dtype=float), s=12, color=PALETTE[7], label="data")
    grid = np.linspace(x.min(), x.max(), 50)
    for i, (label, (w, b)) in enumerate(lines.items()):
        ax.plot(grid, float(w) * grid + float(b), color=PALETTE[i % 6], lw=2, label=label)
    ax.set(xlabel="x", ylabel="y", title=title)
    ax.legend()
    return fig


def plot_curves(curves: Mapping[str, Sequence[float]], *, ax=None, xlabel: str = "step",
                ylabel: str = "loss", title: str = "Training curves", logy: bool = False):
    """One line per named series (losses, accuracies), against the step or epoch.

    Introduced in lesson 01.
    """
    fig, ax = _axes(ax)
    for i, (label, values) in enumerate(curves.items()):
        ax.plot(np.arange(1, len(values) + 1), np.asarray(values, dtype=float), color=PALETTE[i % 8],
                lw=2, label=label)
    if logy:
        ax.set_yscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend()
    return fig


def plot_descent(loss, path: Sequence[float], *, ax=None, title: str | None = None,
                 window: tuple[float, float] | None = None):
    """A 1-D loss curve with the points gradient descent visited, joined in order.

    Args:
        loss: a function of one float.
        path: the parameter values visited, starting point first.

    Introduced in lesson 01.
    """
    fig, ax = _axes(ax)
    pts = np.asarray(path, dtype=float)
    finite = pts[np.isfinite(pts)]
    lo, hi = window or (min(finite.min(), -1.0), max(finite.max(), 5.0))
    lo, hi = max(lo, -50.0), min(hi, 50.0)
    grid = np.linspace(lo, hi, 200)
    ax.plot(grid, [loss(w) for w in grid], color=PALETTE[0], lw=2, label="loss L(w)")
    shown = np.clip(finite, lo, hi)
    ax.plot(shown, [loss(w) for w in shown], "o-", color=PALETTE[3], ms=4, lw=1, label="descent steps")
    ax.plot(shown[:1], [loss(shown[0])], "s", color=PALETTE[7], ms=7, label="start")
    ax.set(xlabel="parameter w", ylabel="loss", title=title or "Gradient descent on a 1-D loss")
    ax.legend(loc="upper center")
    return fig


from helpers.plots import evaluation  # noqa: E402, F401  (after PALETTE and _axes, which it uses)

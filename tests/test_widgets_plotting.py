"""Widgets respond to their controls, and plots are labelled, without a browser."""

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from helpers import plots as plotting  # noqa: E402
from helpers.widgets import descent as widgets  # noqa: E402


def test_descent_path_and_its_description():
    grad = lambda w: 2 * (w - 3)
    assert widgets.descent_path(grad, 0.0, 0.5, 3) == [0.0, 3.0, 3.0, 3.0]
    assert "smoothly" in widgets.describe_descent(widgets.descent_path(grad, -1, 0.3, 12), 3.0)
    assert "zig-zag" in widgets.describe_descent(widgets.descent_path(grad, -1, 0.9, 40), 3.0)
    assert "diverges" in widgets.describe_descent(widgets.descent_path(grad, -1, 1.1, 12), 3.0)
    assert "too slowly" in widgets.describe_descent(widgets.descent_path(grad, -1, 0.01, 12), 3.0)
    assert widgets.descent_path(grad, -1, 50.0, 100)[-1] == math.inf


def test_moving_the_learning_rate_slider_redraws_the_descent():
    explorer = widgets.LearningRateExplorer(lr=0.3)
    first_path = explorer.path
    assert "smoothly" in explorer.verdict and "0.300" in explorer.label.value
    explorer.slider.value = 1.2
    assert explorer.path != first_path
    assert "diverges" in explorer.verdict and "1.200" in explorer.label.value
    assert len(explorer.output.outputs) <= 1  # redrawn in place, not appended
    plt.close("all")


def test_plots_have_titles_and_axis_labels():
    x = torch.linspace(0, 1, 10)
    fig = plotting.plot_line_fit(x, 2 * x, {"fit": (2.0, 0.0)})
    ax = fig.axes[0]
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    fig = plotting.plot_curves({"loss": [3, 2, 1]}, logy=True)
    assert fig.axes[0].get_yscale() == "log" and fig.axes[0].get_title()
    fig = plotting.show_images(torch.zeros(3, 1, 28, 28), [0, 1, 2], classes=["a", "b", "c"], predictions=[0, 2, 2])
    assert fig._suptitle.get_text()
    assert [a.get_title() for a in fig.axes[:3]] == ["a / a", "c / b", "c / c"]
    plt.close("all")

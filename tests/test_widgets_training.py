"""Lessons 04-06's widgets respond to their controls, and their plots are labelled, without a browser."""

import matplotlib

matplotlib.use("Agg")

import math  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from helpers import training  # noqa: E402
from helpers.plots import evaluation as plots_eval  # noqa: E402
from helpers.widgets import training as widgets_training  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_conv_explorer_shows_the_output_size_arithmetic():
    image = torch.rand(28, 28)
    explorer = widgets_training.ConvExplorer(image)
    assert explorer.output_size == (24, 24) and "28 → 24" in explorer.label.value
    explorer.padding.value = 2
    assert explorer.output_size == (28, 28)
    explorer.stride.value = 2
    assert explorer.output_size == (14, 14) and "(28 + 2·2 − 5) // 2 + 1 = 14" in explorer.label.value
    explorer.kernel.value = 3
    assert explorer.output_size == (15, 15)
    before = explorer.feature_map.clone()
    explorer.filter.value = "blur"
    assert not torch.equal(before, explorer.feature_map)
    assert len(explorer.output.outputs) <= 1  # redrawn in place, not appended


def test_hand_made_filters_detect_what_they_say():
    step = torch.zeros(1, 1, 9, 9)
    step[..., 5:] = 1.0  # a vertical edge
    vertical = widgets_training.make_filter("vertical edges", 3).reshape(1, 1, 3, 3)
    horizontal = widgets_training.make_filter("horizontal edges", 3).reshape(1, 1, 3, 3)
    conv = torch.nn.functional.conv2d
    assert conv(step, vertical).abs().max() > 0 and conv(step, horizontal).abs().max() == 0
    torch.testing.assert_close(widgets_training.make_filter("blur", 5).sum(), torch.tensor(1.0))


def test_optimizer_explorer_momentum_beats_plain_sgd_and_a_large_rate_diverges():
    explorer = widgets_training.OptimizerExplorer(optimizer="SGD", lr=0.1)
    sgd_loss = explorer.final_loss
    assert "still far" in explorer.verdict and len(explorer.path) == 41
    explorer.choice.value = "SGD + momentum"
    assert explorer.final_loss < sgd_loss and "reaches the minimum" in explorer.verdict
    explorer.choice.value = "SGD"
    explorer.lr.value = 0.5
    assert "diverges" in explorer.verdict
    explorer.choice.value = "Adam"
    explorer.lr.value = 0.3
    assert math.isfinite(explorer.final_loss) and "Adam, lr = 0.300" in explorer.label.value


def test_early_stop_epochs_and_patience_explorer():
    val = [1.0, 0.8, 0.7, 0.75, 0.72, 0.69, 0.8, 0.9, 1.0]
    assert widgets_training.early_stop_epochs(val, 1) == (4, 3)
    assert widgets_training.early_stop_epochs(val, 2) == (5, 3)
    assert widgets_training.early_stop_epochs(val, 3) == (9, 6)
    assert widgets_training.early_stop_epochs(val, 5) == (9, 6)
    explorer = widgets_training.PatienceExplorer(np.linspace(1, 0.1, len(val)), val, patience=1)
    assert (explorer.stop_epoch, explorer.best_epoch) == (4, 3)
    explorer.patience.value = 3
    assert (explorer.stop_epoch, explorer.best_epoch) == (9, 6) and "restore epoch 6" in explorer.label.value


def _labelled(fig):
    ax = fig.axes[0]
    return bool((ax.get_title() or fig._suptitle) and ax.get_xlabel() and ax.get_ylabel())


def test_evaluation_plots_have_titles_and_labels():
    assert _labelled(plots_eval.plot_train_val([3, 2, 1], [3, 2.5, 2.7], best_epoch=2, stop_epoch=3))
    assert _labelled(plots_eval.plot_paths(widgets_training.valley, {"SGD": [(-4, 1), (-3, 0.5)]}))
    counts = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 1, 1]])  # counted by the learner (lesson 06, Exercise 5)
    fig = plots_eval.plot_confusion_matrix(counts, ["a", "b", "c"])
    assert _labelled(fig) and fig.axes[0].get_xlabel() == "predicted class"
    assert plots_eval.show_filters(torch.randn(6, 1, 5, 5))._suptitle.get_text()
    assert "(12×12 each)" in plots_eval.show_feature_maps(torch.rand(4, 12, 12))._suptitle.get_text()


def test_live_curves_redraw_in_one_display():
    from unittest import mock

    live = plots_eval.LiveCurves("test")
    history = training.History(train_loss=[1.0], val_loss=[1.2])
    with mock.patch("IPython.display.display") as display:
        handle = display.return_value
        live(1, history)
        history.train_loss.append(0.8)
        live(2, history)
    assert display.call_count == 1 and handle.update.call_count == 1

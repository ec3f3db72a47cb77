"""Lesson 02's widgets respond to their controls, and its parameter chart is labelled, without a browser."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from helpers.widgets import modules as widgets_modules  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_parameter_counts_per_layer_skip_layers_without_parameters():
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    assert widgets_modules.parameter_counts(model) == {"1": 784 * 128 + 128, "3": 128 * 10 + 10}
    assert widgets_modules.parameter_counts(nn.Linear(3, 2)) == {"Linear": 8}
    lstm = nn.LSTM(5, 7)
    assert widgets_modules.parameter_counts(lstm) == {"LSTM": sum(p.numel() for p in lstm.parameters())}


def test_make_mlp_is_the_lessons_mlp_and_runs():
    model = widgets_modules.make_mlp((784, 512, 256, 10))
    assert [type(m).__name__ for m in model] == ["Flatten", "Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    assert sum(p.numel() for p in model.parameters()) == 535_818
    meta = widgets_modules.make_mlp((784, 4096, 4096, 10), device="meta")  # counted without allocating
    assert all(p.is_meta for p in meta.parameters())


def test_width_explorer_counts_the_mlp_and_shows_where_the_parameters_sit():
    explorer = widgets_modules.WidthExplorer(width=128, depth=1)
    assert explorer.sizes == (784, 128, 10) and explorer.total == 101_770
    assert "784-128-10" in explorer.label.value and "101,770 parameters" in explorer.label.value
    assert explorer.first_share > 0.98
    torch.testing.assert_close(explorer.megabytes, 101_770 * 4 / 2**20)
    explorer.depth.value = 2
    assert explorer.sizes == (784, 128, 128, 10) and explorer.total == 101_770 + 128 * 128 + 128
    explorer.width.value = 512
    assert explorer.total == 784 * 512 + 512 + 512 * 512 + 512 + 512 * 10 + 10
    assert explorer.first_share < 0.7  # the hidden-to-hidden layer has caught up
    assert len(explorer.output.outputs) <= 1  # redrawn in place, not appended


def test_dropout_explorer_train_mode_zeroes_and_rescales_eval_mode_passes_through():
    explorer = widgets_modules.DropoutExplorer(p=0.5)
    x = explorer.x
    kept = explorer.train_out != 0
    assert 0 < explorer.zeroed < 1 and kept.any()
    torch.testing.assert_close(explorer.train_out[kept], x[kept] * 2)  # survivors scaled by 1 / (1 - p)
    torch.testing.assert_close(explorer.eval_out, x)
    assert abs(explorer.long_run_mean - explorer.eval_mean) < 0.02 * explorer.eval_mean
    assert "p = 0.50" in explorer.label.value and "×2.00" in explorer.label.value

    first = explorer.train_out.clone()
    explorer.draw.value = 1
    assert not torch.equal(first, explorer.train_out)  # another forward pass zeroes other units
    explorer.draw.value = 0
    torch.testing.assert_close(explorer.train_out, first)  # seeded: the same pass again

    explorer.p.value = 0.0
    torch.testing.assert_close(explorer.train_out, x)
    assert explorer.zeroed == 0.0
    explorer.p.value = 0.9
    assert explorer.zeroed > 0.5 and abs(explorer.long_run_mean - explorer.eval_mean) < 0.05 * explorer.eval_mean
    assert len(explorer.output.outputs) <= 1


def test_dropout_explorer_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    explorer = widgets_modules.DropoutExplorer()
    explorer.p.value = 0.3
    torch.testing.assert_close(torch.rand(3), expected)


def test_parameter_chart_has_title_labels_and_the_total():
    fig = widgets_modules.plot_parameter_counts(widgets_modules.make_mlp((784, 128, 10)))
    ax = fig.axes[0]
    assert "101,770 in all" in ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1\nLinear(784→128)", "3\nLinear(128→10)"]

"""Lesson 03's activation explorer: right derivatives, and it responds to its controls without a browser."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from helpers.widgets import activations as wa  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


X = torch.tensor([-3.0, -0.5, 0.5, 2.0])


@pytest.mark.parametrize(("name", "derivative"), [
    ("relu", lambda x: (x > 0).float()),
    ("leaky_relu", lambda x: torch.where(x > 0, 1.0, 0.1)),
    ("sigmoid", lambda x: torch.sigmoid(x) * (1 - torch.sigmoid(x))),
    ("tanh", lambda x: 1 - torch.tanh(x) ** 2),
])
def test_autograd_derivatives_match_the_formulas(name, derivative):
    y, dy = wa.with_derivative(name, X)
    torch.testing.assert_close(y, wa.activation(name, X))
    torch.testing.assert_close(dy, derivative(X))


def test_softmax_curves_are_class_zero_among_fixed_logits():
    y, dy = wa.with_derivative("softmax", X, 2.0)
    logits = torch.stack([X, torch.ones(4), -torch.ones(4)], dim=1) / 2.0
    p0 = F.softmax(logits, dim=1)[:, 0]
    torch.testing.assert_close(y, p0)
    torch.testing.assert_close(dy, p0 * (1 - p0) / 2.0)  # dp0/dx = p0 (1 - p0) / T
    log_y, log_dy = wa.with_derivative("log_softmax", X, 2.0)
    torch.testing.assert_close(log_y, p0.log())
    torch.testing.assert_close(log_dy, (1 - p0) / 2.0)


def test_unknown_activation_says_what_exists():
    with pytest.raises(ValueError, match="unknown activation 'swish'.*relu"):
        wa.activation("swish", X)


def test_explorer_redraws_and_reports_vanishing_gradients():
    explorer = wa.ActivationExplorer("sigmoid", limit=4.0)
    assert "sigmoid" in explorer.summary and "largest derivative 0.25" in explorer.summary
    assert "almost) 0" not in explorer.summary and explorer.param.disabled
    explorer.limit.value = 20.0
    assert explorer.x.max().item() == 20.0 and "almost) 0" in explorer.summary
    explorer.choice.value = "relu"
    assert "relu" in explorer.label.value and "on 50%" in explorer.summary
    assert len(explorer.output.outputs) <= 1  # redrawn in place, not appended


def test_parameter_slider_follows_the_activation():
    explorer = wa.ActivationExplorer("relu")
    explorer.choice.value = "leaky_relu"
    assert explorer.param.description == "negative slope" and not explorer.param.disabled
    assert explorer.param.value == pytest.approx(0.1)
    torch.testing.assert_close(explorer.dy[explorer.x < 0], torch.full_like(explorer.dy[explorer.x < 0], 0.1))
    explorer.param.value = 0.3
    torch.testing.assert_close(explorer.dy[0], torch.tensor(0.3))
    explorer.choice.value = "softmax"
    assert explorer.param.description == "temperature" and explorer.param.value == pytest.approx(1.0)
    flat = explorer.dy.abs().max().item()
    explorer.param.value = 0.2  # a low temperature sharpens the softmax: a steeper, narrower step
    assert explorer.dy.abs().max().item() > 3 * flat
    assert explorer.y.min().item() >= 0 and explorer.y.max().item() <= 1
    explorer.choice.value = "tanh"
    assert explorer.param.disabled and explorer.param.description == "(no parameter)"


def test_the_overview_grid_has_titles_and_labels():
    fig = wa.plot_activations()
    used = [ax for ax in fig.axes if ax.lines]
    assert len(used) == len(wa.ACTIVATIONS)
    assert all(ax.get_title() and ax.get_xlabel() and ax.get_ylabel() for ax in used)
    assert fig._suptitle.get_text()

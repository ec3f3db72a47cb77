"""Activation functions next to their derivatives, and a control to explore them (lesson 03).

Works with ipywidgets 7.7 (Colab) and 8: only FloatSlider, Dropdown, Output, HTML and
VBox, observed with ``names="value"``. :class:`ActivationExplorer` keeps what it last
computed in plain attributes (``.x``, ``.y``, ``.dy``, ``.summary``), so a test can move
its controls and read the result without a browser.

Introduced in lesson 03.
"""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from IPython.display import display

from helpers.plots import PALETTE

ELEMENTWISE = ("relu", "leaky_relu", "sigmoid", "tanh", "gelu")
ACTIVATIONS = (*ELEMENTWISE, "softmax", "log_softmax")
# The one knob each activation has, with its slider range: (label, default, min, max).
PARAMETERS = {"leaky_relu": ("negative slope", 0.1, 0.0, 1.0),
              "softmax": ("temperature", 1.0, 0.1, 5.0),
              "log_softmax": ("temperature", 1.0, 0.1, 5.0)}
OTHER_LOGITS = (1.0, -1.0)  # softmax over (x, 1, -1): the curve shows class 0 as its logit x moves


def activation(name: str, x: torch.Tensor, param: float | None = None) -> torch.Tensor:
    """``F.<name>`` applied so that output i depends only on input i.

    The five elementwise activations are applied to ``x`` directly. ``softmax`` and
    ``log_softmax`` act on a vector: here each ``x[i]`` is the logit of class 0 among the
    logits ``(x[i], 1, -1)``, divided by a temperature ``param``, and the result is
    class 0's (log-)probability.

    Args:
        name: one of :data:`ACTIVATIONS`.
        x: a 1-D float tensor of inputs.
        param: the negative slope of ``leaky_relu`` or the softmax temperature
            (defaults as in :data:`PARAMETERS`); ignored by the others.
    """
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}: choose one of {', '.join(ACTIVATIONS)}.")
    if param is None and name in PARAMETERS:
        param = PARAMETERS[name][1]
    if name == "leaky_relu":
        return F.leaky_relu(x, negative_slope=param)
    if name in ELEMENTWISE:
        return getattr(F, name)(x)
    others = torch.tensor(OTHER_LOGITS, dtype=x.dtype).expand(len(x), -1)
    logits = torch.cat([x.unsqueeze(1), others], dim=1) / param  # (n, 3): one softmax per row
    return getattr(F, name)(logits, dim=1)[:, 0]


def with_derivative(name: str, x: torch.Tensor, param: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The activation's values at ``x`` and its derivative there, computed by autograd.

    Output i depends only on input i, so the gradient of ``y.sum()`` is the derivative
    ``dy_i/dx_i`` at every point at once.
    """
    x = x.detach().clone().requires_grad_(True)
    y = activation(name, x, param)
    (dy,) = torch.autograd.grad(y.sum(), x)
    return y.detach(), dy


def describe(name: str, y: torch.Tensor, dy: torch.Tensor) -> str:
    """One line about the curve: its output range, its largest slope, and where it stops learning."""
    flat = (dy.abs() < 1e-3).float().mean().item()
    text = (f"<b>{name}</b>: output from {y.min().item():.3g} to {y.max().item():.3g}; "
            f"largest derivative {dy.abs().max().item():.3g}")
    if flat > 0:
        text += f"; the derivative is (almost) 0 on {flat:.0%} of this range: no gradient flows there"
    return text


def plot_activation(name: str, x: torch.Tensor, y: torch.Tensor, dy: torch.Tensor, *, ax=None,
                    title: str | None = None):
    """An activation (solid) and its derivative (dashed) on one Axes."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5.5, 3.2))
    ax.axhline(0, color="0.8", lw=0.8)
    ax.axvline(0, color="0.8", lw=0.8)
    ax.plot(x, y, color=PALETTE[0], lw=2, label=name)
    ax.plot(x, dy, color=PALETTE[3], lw=2, ls="--", label="derivative (autograd)")
    xlabel = "logit of class 0 (others: 1, -1)" if name not in ELEMENTWISE else "input x"
    ax.set(xlabel=xlabel, ylabel="value", title=title or name)
    ax.legend(fontsize=8)
    return fig


def plot_activations(names=ACTIVATIONS, *, limit: float = 4.0, ncols: int = 4):
    """A grid with every activation and its derivative on ``[-limit, limit]``."""
    nrows = -(-len(names) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.6 * nrows), squeeze=False)
    x = torch.linspace(-limit, limit, 201)
    for ax, name in zip(axes.flat, names, strict=False):
        y, dy = with_derivative(name, x)
        plot_activation(name, x, y, dy, ax=ax)
        ax.set_xlabel("logit of class 0" if name not in ELEMENTWISE else "x")
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    fig.suptitle("Activations (solid) and their derivatives (dashed), both from autograd")
    fig.tight_layout()
    return fig


class ActivationExplorer:
    """Pick an activation, an input range and its parameter; see the curve and its derivative.

    The teaching points: sigmoid and tanh flatten out (their derivative vanishes) as
    the inputs grow; relu passes no gradient for negative inputs, leaky_relu's slope
    fixes that; a softmax temperature below 1 sharpens the probabilities, above 1
    flattens them.

    Introduced in lesson 03.
    """

    def __init__(self, name: str = "sigmoid", limit: float = 6.0, points: int = 241):
        style = {"description_width": "initial"}
        self.points = points
        self.choice = widgets.Dropdown(options=list(ACTIVATIONS), value=name, description="activation")
        self.limit = widgets.FloatSlider(value=limit, min=1.0, max=20.0, step=0.5, description="input range ±",
                                         continuous_update=False, style=style)
        self.param = widgets.FloatSlider(value=1.0, min=0.0, max=1.0, step=0.05, description="parameter",
                                         continuous_update=False, style=style)
        self.label = widgets.HTML()
        self.output = widgets.Output()
        self.x = self.y = self.dy = torch.empty(0)
        self.summary = ""
        self._set_param_slider(name)
        self.choice.observe(self._on_choice, names="value")
        for control in (self.limit, self.param):
            control.observe(lambda _change: self.update(), names="value")
        self.widget = widgets.VBox([self.choice, self.limit, self.param, self.label, self.output])
        self.update()

    def _set_param_slider(self, name: str) -> None:
        """Give the parameter slider the meaning and range of ``name``'s knob, or disable it."""
        label, default, lo, hi = PARAMETERS.get(name, ("(no parameter)", 0.0, 0.0, 1.0))
        self._updating = True  # moving the slider here must not redraw half-configured
        try:
            self.param.min, self.param.max = min(lo, self.param.min), max(hi, self.param.max)
            self.param.value = default
            self.param.min, self.param.max = lo, hi
        finally:
            self._updating = False
        self.param.description = label
        self.param.disabled = name not in PARAMETERS

    def _on_choice(self, change) -> None:
        self._set_param_slider(change["new"])
        self.update()

    def update(self) -> None:
        """Recompute the curve and its derivative for the current controls, and redraw them."""
        if getattr(self, "_updating", False):
            return
        name = self.choice.value
        param = self.param.value if name in PARAMETERS else None
        self.x = torch.linspace(-self.limit.value, self.limit.value, self.points)
        self.y, self.dy = with_derivative(name, self.x, param)
        self.summary = describe(name, self.y, self.dy)
        knob = f" ({PARAMETERS[name][0]} {param:g})" if param is not None else ""
        self.label.value = self.summary
        with self.output:
            self.output.clear_output(wait=True)
            fig = plot_activation(name, self.x, self.y, self.dy, title=f"{name}{knob} and its derivative")
            display(fig)
            plt.close(fig)

    def _ipython_display_(self) -> None:
        display(self.widget)

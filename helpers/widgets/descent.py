"""Lesson 01's control: gradient descent on a curve, with a learning-rate slider.

Each control keeps what it last computed in plain attributes (``.path``,
``.verdict``), so a test can move the slider and read the result without a
browser.
"""

from __future__ import annotations

import math

import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import display

from helpers.plots import plot_descent


def descent_path(grad, w0: float, lr: float, steps: int) -> list[float]:
    """The values of w visited by ``w <- w - lr * grad(w)``, starting point included.

    Stops early (with ``inf``) once w blows up, as it does when the learning rate is too large.

    Introduced in lesson 01.
    """
    path = [float(w0)]
    for _ in range(steps):
        w = path[-1] - lr * grad(path[-1])
        if not math.isfinite(w) or abs(w) > 1e6:
            path.append(math.inf)
            break
        path.append(w)
    return path


def describe_descent(path: list[float], minimum: float, tol: float = 1e-2) -> str:
    """Say in words what gradient descent did: diverged, oscillated, crawled or converged."""
    if not math.isfinite(path[-1]) or abs(path[-1] - minimum) > abs(path[0] - minimum) * 1.01:
        return "diverges: every step overshoots further than the last"
    steps = [b - a for a, b in zip(path, path[1:], strict=False)]
    flips = sum(1 for s, t in zip(steps, steps[1:], strict=False) if s * t < 0)
    close = abs(path[-1] - minimum) < tol
    if flips > len(steps) // 2:
        return "converges, zig-zagging across the minimum" if close else "oscillates across the minimum"
    return "converges smoothly" if close else "moves too slowly: not at the minimum yet"


class LearningRateExplorer:
    """A learning-rate slider that redraws gradient descent on ``L(w) = (w - 3)²``.

    The teaching point: below lr = 0.5 the steps shrink smoothly, between 0.5 and
    1.0 they zig-zag but still converge, above 1.0 they diverge (for this loss,
    whose curvature is 2).

    Introduced in lesson 01.
    """

    minimum = 3.0

    def __init__(self, lr: float = 0.3, w0: float = -1.0, steps: int = 12):
        self.w0, self.steps = w0, steps
        self.slider = widgets.FloatLogSlider(value=lr, base=10, min=-2, max=0.2, step=0.02,
                                             description="learning rate", readout_format=".3f",
                                             continuous_update=False,
                                             style={"description_width": "initial"})
        self.label = widgets.HTML()
        self.output = widgets.Output()
        self.path: list[float] = []
        self.verdict = ""
        self.slider.observe(self._on_change, names="value")
        self.widget = widgets.VBox([self.slider, self.label, self.output])
        self.update(lr)

    @staticmethod
    def loss(w: float) -> float:
        return (w - 3.0) ** 2

    @staticmethod
    def grad(w: float) -> float:
        return 2.0 * (w - 3.0)

    def _on_change(self, change) -> None:
        self.update(change["new"])

    def update(self, lr: float) -> None:
        """Recompute the descent for ``lr`` and redraw it."""
        self.path = descent_path(self.grad, self.w0, lr, self.steps)
        self.verdict = describe_descent(self.path, self.minimum)
        self.label.value = f"<b>lr = {lr:.3f}</b>: {self.verdict}"
        with self.output:
            self.output.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(5.5, 3.2))
            plot_descent(self.loss, self.path, ax=ax, window=(-3.0, 9.0),
                         title=f"{self.steps} steps of gradient descent, lr = {lr:.3f}")
            display(fig)
            plt.close(fig)

    def _ipython_display_(self) -> None:
        display(self.widget)

"""The shared plumbing of the lessons' controls (ipywidgets 7.7 in Colab, and 8)."""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import display


class Control:
    """Shared plumbing of the lessons' controls: a label, an output redrawn in place, and display as a VBox.

    A subclass builds its ipywidgets controls, calls ``self._build(controls)``, and implements ``update()``
    (read the controls, set ``self.label.value``, redraw with ``self._draw(make_figure)``).
    """

    def _build(self, controls: list) -> None:
        self.label = widgets.HTML()
        self.output = widgets.Output()
        for control in controls:
            control.observe(lambda _change: self.update(), names="value")
        self.widget = widgets.VBox([*controls, self.label, self.output])
        self.update()

    def update(self) -> None:
        raise NotImplementedError

    def _draw(self, draw) -> None:
        with self.output:
            self.output.clear_output(wait=True)
            fig = draw()
            display(fig)
            plt.close(fig)

    def _ipython_display_(self) -> None:
        display(self.widget)

"""Interactive controls for the lessons, working with ipywidgets 7.7 (Colab) and 8: one module per
lesson topic, each control built on ``base.Control``.

Each control keeps what it last computed in plain attributes (``.path``, ``.verdict``), so a test can
move the slider and read the result without a browser.

- ``descent``: lesson 01's learning-rate explorer;
- ``modules``: lesson 02's width and dropout explorers;
- ``activations``: lesson 03's activation explorer;
- ``training``: lessons 04 to 06 (convolution, optimizers, patience);
- ``distributed``: lesson 07's scaling explorer and shard plot.
"""

from helpers.widgets import activations, base, descent, distributed, modules, training  # noqa: F401

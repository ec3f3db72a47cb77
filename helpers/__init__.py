"""Shared code for the hands-on PyTorch course: data, plots, widgets and instant checks.

Importing this package has no side effects: it seeds nothing, picks no device,
changes no matplotlib settings and downloads nothing.
"""

__version__ = "0.1.0"

"""The dashboard (the only package that imports ipywidgets, ipycanvas or IPython)."""

from .app import App

__all__ = ["App"]

"""Zoom and pan of one view, done by the browser: a CSS transform of the view's canvas.

The canvas keeps one canvas pixel per image pixel; zooming scales it inside a clipping
box and panning moves it there. ipycanvas maps a mouse position through the canvas's
transformed bounding box, so clicks, strokes and cuts keep naming the exact image pixel
at every zoom, and a zoom or pan step sends one short style rule, never an image.
"""

from __future__ import annotations

import math

import ipywidgets as widgets

LEVELS = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)


class ZoomPan:
    """The visible part of a ``rows`` x ``cols`` canvas: ``zoom`` (1-8) and the image
    position ``(top, left)`` shown at the box's top-left corner.

    ``style`` is the widget that carries the CSS rule for the canvas of class ``css_class``;
    ``on_change`` callables run after every change (the view redraws its annotations).

    Examples
    --------
    >>> view = ZoomPan(512, 512, "radipop-image")
    >>> view.zoom_at(+1, 256, 256)
    True
    >>> view.zoom, round(view.top, 2), round(view.left, 2)
    (1.5, 85.33, 85.33)
    >>> view.pan_by(1000, -1000)
    >>> round(view.top, 2), view.left
    (170.67, 0.0)
    """

    def __init__(self, rows: int, cols: int, css_class: str):
        self.css_class = css_class
        self.style = widgets.HTML(layout=widgets.Layout(height="0px", margin="0"))
        self.on_change: list = []
        self.resize(rows, cols)

    def resize(self, rows: int, cols: int) -> None:
        """A new canvas size: back to the whole image."""
        self.rows, self.cols = int(rows), int(cols)
        self.reset()

    @property
    def visible(self) -> tuple[float, float, float, float]:
        """(top, left, height, width) of the part shown, in image pixels."""
        return self.top, self.left, self.rows / self.zoom, self.cols / self.zoom

    def reset(self) -> None:
        """The whole image (zoom 1)."""
        self.zoom, self.top, self.left = 1.0, 0.0, 0.0
        self._apply()

    def zoom_at(self, step: int, row: float | None = None, col: float | None = None) -> bool:
        """One level in (``step`` > 0) or out, keeping image position (row, col) (default:
        the centre of the part shown) where it is on the screen; False at the limit."""
        level = min(range(len(LEVELS)), key=lambda i: abs(LEVELS[i] - self.zoom))
        level = min(max(level + (1 if step > 0 else -1), 0), len(LEVELS) - 1)
        new = LEVELS[level]
        if new == self.zoom:
            return False
        top, left, height, width = self.visible
        row = top + height / 2 if row is None else float(row)
        col = left + width / 2 if col is None else float(col)
        ratio = self.zoom / new
        self.zoom = new
        self.top, self.left = row - (row - top) * ratio, col - (col - left) * ratio
        self._apply()
        return True

    def pan_by(self, d_row: float, d_col: float) -> None:
        """Move the part shown by (d_row, d_col) image pixels (kept inside the image)."""
        self.top += float(d_row)
        self.left += float(d_col)
        self._apply()

    def to_screen(self, row: float, col: float) -> tuple[float, float]:
        """Image position -> position in the box, as a fraction (0..1) of its height and width."""
        return (row - self.top) * self.zoom / self.rows, (col - self.left) * self.zoom / self.cols

    def _apply(self) -> None:
        top, left, height, width = self.visible
        self.top = min(max(self.top, 0.0), self.rows - height)
        self.left = min(max(self.left, 0.0), self.cols - width)
        if not (math.isfinite(self.top) and math.isfinite(self.left)):
            self.top = self.left = 0.0
        self.style.value = self.css()
        for callback in self.on_change:
            callback()

    def css(self) -> str:
        """The canvas's transform (translate first, in percent of its own size: exact at
        every display scale the page chose)."""
        if self.zoom == 1.0:
            return ""
        dx, dy = 100.0 * self.left / self.cols, 100.0 * self.top / self.rows
        return (f"<style>.radipop-app canvas.{self.css_class} {{ transform-origin: 0 0; "
                f"transform: scale({self.zoom:g}) translate(-{dx:.4f}%, -{dy:.4f}%); }}</style>")

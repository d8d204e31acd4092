"""Editing tools, one class each (like the effects of 3D Slicer's segment editor).

A tool receives image positions ``(row, col)`` already validated by the viewer and acts
on the app's Session; it holds no segmentation logic.
"""

from __future__ import annotations

from ..labels import BACKGROUND
from .messages import sentence

MAX_STROKE_POINTS = 4000


class Tool:
    """Base tool: press / move / release at image positions of slice ``app.z``."""

    name = ""
    key = ""
    help = ""

    def __init__(self, app):
        self.app = app

    def press(self, row: int, col: int) -> None:
        """Mouse button pressed."""

    def move(self, row: int, col: int) -> None:
        """Mouse moved (button up or down)."""

    def release(self, row: int | None, col: int | None) -> None:
        """Mouse button released (position None when released outside the image)."""

    def cancel(self) -> None:
        """Abandon what is in progress."""


class SelectTool(Tool):
    name, key = "select", "s"
    help = "Click a candidate region to select it, then press a label button."

    def press(self, row, col):
        app = self.app
        region = app.session.select(app.z, row, col)
        if region:
            pixels = int((app.session.regions(app.z) == region).sum())
            app.status(f"Region {region} selected ({pixels} pixels): press Liver, Spleen or Other.")
        else:
            app.status("No candidate region here: change the thresholds or draw the organ.")


class StrokeTool(Tool):
    """A tool that collects a polyline while the button is down and commits it on release."""

    colour = "#ffffff"

    def __init__(self, app):
        super().__init__(app)
        self.points: list[tuple[int, int]] = []

    def width_px(self) -> float:
        return 1.0

    def press(self, row, col):
        self.points = [(row, col)]
        self.app.viewer.preview_stroke(self.points, self.colour, self.width_px())

    def move(self, row, col):
        if not self.points:
            self.app.viewer.show_cursor(row, col, self.width_px() / 2)
            return
        if (row, col) != self.points[-1] and len(self.points) < MAX_STROKE_POINTS:
            self.points.append((row, col))
            self.app.viewer.preview_stroke(self.points, self.colour, self.width_px())

    def release(self, row, col):
        if not self.points:
            return
        if row is not None and (row, col) != self.points[-1] and len(self.points) < MAX_STROKE_POINTS:
            self.points.append((row, col))
        points, self.points = self.points, []
        self.app.viewer.clear_interaction()
        self.app.status(self.report(self.commit(points)))

    def cancel(self):
        self.points = []
        self.app.viewer.clear_interaction()

    def commit(self, points: list[tuple[int, int]]):
        """Apply the stroke; return what the Session returned (falsy: nothing changed)."""
        raise NotImplementedError

    def report(self, result) -> str:
        """What the user is told after the stroke: the Session's own words."""
        return sentence(self.app.session.last_message)


class DrawTool(StrokeTool):
    name, key = "draw", "d"
    help = "Paint the brush label (Liver, Spleen or Other) with the brush width."

    @property
    def colour(self):
        return {1: "#ff5050", 2: "#5080ff"}.get(self.app.brush_label, "#ffe000")

    def width_px(self):
        return self.app.brush_mm / self.app.pixel_mm

    def commit(self, points):
        return self.app.session.draw(self.app.z, points, self.app.brush_label,
                                     width_mm=self.app.brush_mm)


class EraseTool(DrawTool):
    name, key = "erase", "e"
    help = "Remove labels under the brush."
    colour = "#ffffff"

    def commit(self, points):
        return self.app.session.draw(self.app.z, points, BACKGROUND, width_mm=self.app.brush_mm)


class CutTool(StrokeTool):
    name, key = "cut", "c"
    help = "Draw a line across a region to split it in two."
    colour = "#00e5ff"

    def width_px(self):
        return 2.0

    def commit(self, points):
        return self.app.session.cut(self.app.z, points)

    def report(self, result):
        if not result:
            return super().report(result)
        return (f"Cut on slice {self.app.z}: select each side (tool Select, key S) and "
                "label it.")


TOOLS = (SelectTool, DrawTool, EraseTool, CutTool)

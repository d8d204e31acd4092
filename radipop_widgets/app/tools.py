"""Editing tools, one class each (like the effects of 3D Slicer's segment editor).

A tool receives image positions ``(row, col)`` already validated by the viewer and acts
on the context's Session at the slice shown; it holds no segmentation logic. A tool
owns its options: the brush (label, width, edge-aware) belongs to Draw, which Erase
shares and whose label Grow adds to.
"""

from __future__ import annotations

import ipywidgets as widgets

from ..labels import BACKGROUND, LIVER, ORGANS, organ
from .context import Context
from .messages import guarded, sentence
from .throttle import Throttle
from .ui import range_text, tagged, to_number

MAX_STROKE_POINTS = 4000
BRUSH_MM = (1.0, 30.0)       # brush width range, mm
DEFAULT_BRUSH_MM = 5.0


class Tool:
    """Base tool: press / move / release at image positions of slice ``ctx.z``."""

    name = ""
    key = ""
    help = ""
    edits = True      # changes labels or cuts (refused while the study is read-only here)

    def __init__(self, ctx: Context):
        self.ctx = ctx

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
    edits = False
    help = "Click a candidate region to select it, then press a label button."

    def press(self, row, col):
        s, z = self.ctx.session, self.ctx.z
        region = s.select(z, row, col)
        if region:
            pixels = int(s.selected_mask(z).sum())
            names = ", ".join(o.title for o in ORGANS[:-1]) + f" or {ORGANS[-1].title}"
            band = s.click_range
            tissue = f", tissue {band.low:.0f}-{band.high:.0f} HU" if band else ""
            self.ctx.status(f"Region {region} selected ({pixels} pixels{tissue}): press {names}.")
        else:
            self.ctx.status("No candidate region here: change the thresholds, or add the piece "
                            "with Grow (key G) or Draw.")


class GrowTool(Tool):
    name, key = "grow", "g"
    help = ("Click a piece the brush label misses: it is added within the organ's intensity "
            "range, never over other labels or across cuts.")

    def __init__(self, ctx: Context, brush: Brush):
        super().__init__(ctx)
        self.brush = brush

    def press(self, row, col):
        s, label = self.ctx.session, self.brush.label
        changed = s.grow(self.ctx.z, row, col, label)
        band = f"; {organ(label).name} range {range_text(s.organ_range(label))}" if changed else ""
        self.ctx.status(sentence(s.last_message).rstrip(".") + band + ".")


class StrokeTool(Tool):
    """A tool that collects a polyline while the button is down and commits it on release.

    Every point the mouse passes is kept (up to ``MAX_STROKE_POINTS``), but the preview
    and the brush cursor are drawn by a :class:`Throttle`: at most every ``INTERVAL``
    seconds, and the preview draws only the points added since it last drew (a flood of
    mouse moves costs a bounded amount of work per message).
    """

    colour = "#ffffff"

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        self.points: list[tuple[int, int]] = []
        self._shown = 0                          # points the preview shows
        self._cursor: tuple[int, int] | None = None
        self._render = Throttle(guarded(ctx.messages, "Drawing the stroke")(self._render_now),
                                ctx.jobs.lock)

    def width_px(self) -> float:
        return 1.0

    def press(self, row, col):
        self._render.cancel()
        self._cursor = None
        self.points = [(row, col)]
        self._shown = 1
        self.ctx.viewer.preview_stroke(self.points, self.colour, self.width_px())

    def move(self, row, col):
        if not self.points:
            self._cursor = (row, col)
            self._render.request()
        elif self._add(row, col):
            self._render.request()

    def _render_now(self) -> None:
        """Draw what the moves since the last render changed: the new part of the stroke,
        or the cursor where the mouse is now."""
        if self.ctx.session is None:
            return
        if self.points:
            new = self.points[self._shown - 1:] if self._shown else self.points
            if len(new) > 1:
                self.ctx.viewer.extend_stroke(new, self.colour, self.width_px())
            self._shown = len(self.points)
        elif self._cursor is not None:
            self.ctx.viewer.show_cursor(*self._cursor, self.width_px() / 2)

    def release(self, row, col):
        self._render.cancel()
        self._cursor = None
        if not self.points:
            return
        if row is not None:
            self._add(row, col)
        points, self.points, self._shown = self.points, [], 0
        self.ctx.viewer.clear_interaction()
        self.ctx.status(self.report(self.commit(points)))

    def _add(self, row, col) -> bool:
        """Add a point unless it repeats the last one or the stroke is full."""
        if (row, col) == self.points[-1] or len(self.points) >= MAX_STROKE_POINTS:
            return False
        self.points.append((row, col))
        return True

    def cancel(self):
        self._render.cancel()
        self.points, self._shown, self._cursor = [], 0, None
        self.ctx.viewer.clear_interaction()

    def commit(self, points: list[tuple[int, int]]):
        """Apply the stroke; return what the Session returned (falsy: nothing changed)."""
        raise NotImplementedError

    def report(self, result) -> str:
        """What the user is told after the stroke: the Session's own words."""
        return sentence(self.ctx.session.last_message)


class Brush:
    """The brush of Draw and Erase (and the label of Grow and Fill): the label, the width
    in mm and whether Draw stops at the organ's edge, with their controls
    (``label_buttons``, ``width_slider``, ``edge_box``, laid out in ``row``)."""

    def __init__(self):
        self.label = LIVER
        self.width_mm = DEFAULT_BRUSH_MM
        self.edge_aware = False
        self.label_buttons = widgets.ToggleButtons(
            options=[(o.title, o.value) for o in ORGANS],
            tooltips=[f"{o.title}: what Draw paints, Grow adds and Fill fills" for o in ORGANS],
            style={"button_width": "64px"})
        self.width_slider = widgets.FloatSlider(
            self.width_mm, min=BRUSH_MM[0], max=BRUSH_MM[1], step=0.5, description="size mm",
            readout_format=".1f", style={"description_width": "56px"},
            layout=widgets.Layout(width="250px"))
        self.edge_box = widgets.Checkbox(
            False, description="stop at the organ's edge", indent=False,
            tooltip="Draw paints only the tissue of the organ's intensity range (learned "
                    "from where the stroke starts when the organ has none)",
            layout=widgets.Layout(width="auto"))
        self.row = widgets.HBox([widgets.Label("Brush label"), self.label_buttons,
                                 self.width_slider, self.edge_box],
                                layout=widgets.Layout(align_items="center", flex_flow="row wrap"))
        tagged({"brush-label": self.label_buttons, "brush-width": self.width_slider,
                "edge-aware": self.edge_box})

    def bind(self, ctx: Context) -> None:
        self.label_buttons.observe(ctx.callback("Choosing the brush label")(self._changed),
                                   "value")
        self.width_slider.observe(ctx.callback("Choosing the brush width")(self._changed),
                                  "value")
        self.edge_box.observe(ctx.callback("Choosing the brush")(self._changed), "value")

    def _changed(self, change) -> None:
        label = self.label_buttons.value
        self.label = label if label in {o.value for o in ORGANS} else LIVER
        width = to_number(self.width_slider.value)
        self.width_mm = (float(min(max(width, BRUSH_MM[0]), BRUSH_MM[1])) if width is not None
                         else DEFAULT_BRUSH_MM)
        self.edge_aware = bool(self.edge_box.value)


class DrawTool(StrokeTool):
    name, key = "draw", "d"
    help = ("Paint the brush label (Liver, Spleen or Other) with the brush width; \"stop at "
            "the organ's edge\" paints only the organ's tissue.")

    def __init__(self, ctx: Context, brush: Brush):
        super().__init__(ctx)
        self.brush = brush

    @property
    def colour(self):
        return organ(self.brush.label).hex

    def width_px(self):
        # The Session's pixel size: what it paints with (0.5 x 2 mm pixels -> 1 mm).
        return self.brush.width_mm / self.ctx.session.pixel_mm

    def commit(self, points):
        return self.ctx.session.draw(self.ctx.z, points, self.brush.label,
                                     width_mm=self.brush.width_mm,
                                     edge_aware=self.brush.edge_aware)


class EraseTool(DrawTool):
    name, key = "erase", "e"
    help = "Remove labels under the brush."
    colour = "#ffffff"

    def commit(self, points):
        return self.ctx.session.draw(self.ctx.z, points, BACKGROUND,
                                     width_mm=self.brush.width_mm)


class CutTool(StrokeTool):
    name, key = "cut", "c"
    help = "Draw a line across a region to split it in two."
    colour = "#00e5ff"

    def width_px(self):
        return 2.0

    def commit(self, points):
        return self.ctx.session.cut(self.ctx.z, points)

    def report(self, result):
        if not result:
            return super().report(result)
        return (f"Cut on slice {self.ctx.z}: select each side (tool Select, key S) and "
                "label it.")


class PanTool(Tool):
    name, key = "pan", "h"
    edits = False
    help = "Drag the zoomed image to move it (zoom with + and - at the mouse, R: whole image)."

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        self._anchor: tuple[int, int] | None = None

    def press(self, row, col):
        self._anchor = (row, col)

    def move(self, row, col):
        """Keep the image point pressed under the mouse."""
        if self._anchor is not None:
            self.ctx.viewer.zoom.pan_by(self._anchor[0] - row, self._anchor[1] - col)

    def release(self, row, col):
        self._anchor = None

    def cancel(self):
        self._anchor = None


def make_tools(ctx: Context) -> dict[str, Tool]:
    """The tools in button order, by name; Grow, Draw and Erase share one brush."""
    brush = Brush()
    brush.bind(ctx)
    tools = (SelectTool(ctx), GrowTool(ctx, brush), DrawTool(ctx, brush), EraseTool(ctx, brush),
             CutTool(ctx), PanTool(ctx))
    return {tool.name: tool for tool in tools}

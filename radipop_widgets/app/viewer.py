"""The axial viewer: a MultiCanvas with CT, overlay, preview, annotation and interaction
layers (zoomed and panned by :class:`~radipop_widgets.app.zoom.ZoomPan`), and the overview
strip."""

from __future__ import annotations

import io
import math

import ipycanvas
import ipycanvas.canvas
import ipywidgets as widgets
import numpy as np
from PIL import Image

from ..labels import MEASURED
from .annotate import Annotation
from .ui import to_number
from .zoom import ZoomPan

CT, OVERLAY, PREVIEW, ANNOTATION, INTERACTION = range(5)   # the last layer receives the mouse
STRIP_HEIGHT = 18
MIN_DISPLAY, MAX_DISPLAY = 512, 640  # display size range of the image, in screen pixels
LARGER = (1.25, 1.5, 1.75, 2.0)      # display scale factors tried on larger screens
SIDE_PANEL, CHROME = 700, 170         # px needed beside / above and below the image


def palette_png(index: np.ndarray, palette: np.ndarray) -> bytes:
    """Encode palette indices with an RGBA palette as a small PNG (fast, lossless)."""
    image = Image.fromarray(np.ascontiguousarray(index, dtype=np.uint8), "P")
    image.putpalette(palette[:, :3].ravel().tolist())
    buffer = io.BytesIO()
    image.save(buffer, "PNG", transparency=bytes(palette[:, 3]), compress_level=1)
    return buffer.getvalue()


def grey_png(grey: np.ndarray) -> bytes:
    """Encode a windowed image (2-D uint8) as a lossless grey PNG."""
    if grey.dtype != np.uint8 or grey.ndim != 2:
        raise ValueError("the CT layer takes a 2-D uint8 image")
    buffer = io.BytesIO()
    Image.fromarray(grey, "L").save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def _put_png(layer: ipycanvas.Canvas, png: bytes) -> None:
    """Replace a layer's content with a PNG (``put_image_data`` can only encode RGB(A)/grey)."""
    layer.global_composite_operation = "copy"
    layer._canvas_manager.send_draw_command(
        layer, ipycanvas.canvas.COMMANDS["putImageData"], [0, 0], [png])


class Viewer:
    """Five stacked canvases: CT (sent once per slice or window change), overlay, the
    preview of an edit not applied yet, annotations (orientation, scale bar, crosshair),
    interaction (stroke preview and brush cursor).

    The canvas has one canvas pixel per image pixel, so mouse positions map exactly
    to ``(row, col)`` at every zoom (the zoom is a CSS transform the mouse mapping of
    ipycanvas follows).
    """

    def __init__(self, rows: int = 512, cols: int = 512):
        self.canvas = ipycanvas.MultiCanvas(5, width=cols, height=rows)
        self.canvas.add_class("radipop-image")
        self.zoom = ZoomPan(rows, cols, "radipop-image")
        self.annotation = Annotation(self.canvas[ANNOTATION], self.zoom)
        self.strip = ipycanvas.Canvas(width=cols, height=STRIP_HEIGHT)
        self.strip.add_class("radipop-strip")
        self._ct_png: bytes | None = None
        self._overlay_png: bytes | None = None
        self._preview_png: bytes | None = None
        self._strip_png: bytes | None = None
        self.ct_sends = 0
        self.overlay_sends = 0
        self.resize(rows, cols)

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.canvas.height), int(self.canvas.width)

    def resize(self, rows: int, cols: int) -> None:
        self.canvas.width, self.canvas.height = int(cols), int(rows)
        scale = display_scale(rows, cols)
        self.canvas.layout = widgets.Layout(
            width=f"{round(cols * scale)}px", height=f"{round(rows * scale)}px",
            min_width=f"{round(cols * scale)}px")
        self.strip.width = int(cols)
        self.strip.layout = widgets.Layout(width=f"{round(cols * scale)}px",
                                           height=f"{STRIP_HEIGHT}px", margin="2px 0 0 0")
        self.zoom.resize(rows, cols)

    def css(self, others=()) -> str:
        """Style sheet of the display: sharp pixels at integer scales, and on screens with
        room to spare a larger scale (CSS media queries, largest fitting wins).

        ``others`` are the views shown beside the image, as (CSS class, height, width)
        canvas pixels of each: they are scaled with the image, and their widest one
        takes room beside it. Every scale gives whole screen pixels for the image, and
        ipycanvas maps mouse positions through the displayed size, so :meth:`to_pixel`
        stays exact.
        """
        rows, cols = self.shape
        beside = max((w for _, _, w in others), default=0)
        base = display_scale(rows, cols)
        rules = [_scale_rule(base, rows, cols, others, base)]
        for scale in larger_scales(rows, cols):
            width, height = cols * scale, rows * scale
            rules.append(f"@media (min-width: {width + beside * scale / base + SIDE_PANEL:g}px)"
                         f" and (min-height: {height + CHROME:g}px) "
                         f"{{ {_scale_rule(scale, rows, cols, others, base)} }}")
        rules.append("@media (min-height: 1000px) { .radipop-app .radipop-messages "
                     "{ height: 180px !important; } }")
        return "<style>" + "\n".join(rules) + "</style>"

    def to_pixel(self, x, y) -> tuple[int, int] | None:
        """Canvas position from the browser -> ``(row, col)``, or None when outside or invalid."""
        x, y = to_number(x), to_number(y)
        if x is None or y is None:
            return None
        rows, cols = self.shape
        col, row = math.floor(x), math.floor(y)
        if not (0 <= row < rows and 0 <= col < cols):
            return None
        return row, col

    def show_ct(self, grey: np.ndarray) -> None:
        """Show a windowed slice (2-D uint8, sent as lossless grey PNG)."""
        self._ct_png = grey_png(grey)
        self.ct_sends += 1
        with ipycanvas.hold_canvas():
            _put_png(self.canvas[CT], self._ct_png)

    def show_overlay(self, index: np.ndarray, palette: np.ndarray) -> None:
        """Show the label overlay (palette indices + RGBA palette)."""
        self._overlay_png = palette_png(index, palette)
        self.overlay_sends += 1
        with ipycanvas.hold_canvas():
            _put_png(self.canvas[OVERLAY], self._overlay_png)

    def show_preview(self, index: np.ndarray, palette: np.ndarray) -> None:
        """Show the preview of an edit (palette indices + RGBA palette) above the overlay."""
        self._preview_png = palette_png(index, palette)
        with ipycanvas.hold_canvas():
            _put_png(self.canvas[PREVIEW], self._preview_png)

    def clear_preview(self) -> None:
        if self._preview_png is not None:
            self._preview_png = None
            self.canvas[PREVIEW].clear()

    @property
    def previewing(self) -> bool:
        """Whether the preview layer shows something."""
        return self._preview_png is not None

    def show_strip(self, rgba: np.ndarray) -> None:
        """Show the overview strip (RGBA, one column band per slice)."""
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(rgba), "RGBA").save(buffer, "PNG", compress_level=1)
        self._strip_png = buffer.getvalue()
        with ipycanvas.hold_canvas():
            _put_png(self.strip, self._strip_png)

    def redraw(self) -> None:
        """Re-send every layer (a new browser view starts blank)."""
        # ipycanvas caches the last target canvas kernel-side; a new client does not
        # know it, so force a "switch canvas" command (pinned ipycanvas 0.14).
        ipycanvas.canvas._CANVAS_MANAGER._current_canvas = None
        with ipycanvas.hold_canvas():
            for layer, png in ((self.canvas[CT], self._ct_png),
                               (self.canvas[OVERLAY], self._overlay_png),
                               (self.canvas[PREVIEW], self._preview_png),
                               (self.strip, self._strip_png)):
                if png is not None:
                    _put_png(layer, png)
        self.annotation.draw()

    # Interaction layer: stroke preview and brush cursor.
    def preview_stroke(self, points: list[tuple[int, int]], colour: str, width_px: float) -> None:
        layer = self.canvas[INTERACTION]
        with ipycanvas.hold_canvas():
            layer.clear()
            layer.stroke_style = colour
            layer.line_width = max(1.0, width_px)
            layer.line_cap = "round"
            layer.line_join = "round"
            if len(points) == 1:
                layer.fill_style = colour
                layer.fill_circle(points[0][1] + 0.5, points[0][0] + 0.5, max(1.0, width_px) / 2)
            else:
                layer.stroke_lines([(c + 0.5, r + 0.5) for r, c in points])

    def extend_stroke(self, points: list[tuple[int, int]], colour: str,
                      width_px: float) -> None:
        """Draw the polyline ``points`` over the stroke preview (the first point is the last
        one drawn before): the work is the new points only, however long the stroke."""
        if len(points) < 2:
            return
        layer = self.canvas[INTERACTION]
        with ipycanvas.hold_canvas():
            layer.stroke_style = colour
            layer.line_width = max(1.0, width_px)
            layer.line_cap = "round"
            layer.line_join = "round"
            layer.stroke_lines([(c + 0.5, r + 0.5) for r, c in points])

    def show_cursor(self, row: int, col: int, radius_px: float) -> None:
        layer = self.canvas[INTERACTION]
        with ipycanvas.hold_canvas():
            layer.clear()
            layer.stroke_style = "#ffffff"
            layer.line_width = 1 / self.zoom.zoom
            layer.stroke_circle(col + 0.5, row + 0.5, max(1.0, radius_px))

    def clear_interaction(self) -> None:
        self.canvas[INTERACTION].clear()


def display_scale(rows: int, cols: int) -> float:
    """Screen pixels per image pixel on a small screen: 1 when the image fits, small images
    enlarged by an integer factor, large ones shrunk to ``MAX_DISPLAY``."""
    side = max(rows, cols)
    return max(1, MIN_DISPLAY // side) if side <= MAX_DISPLAY else MAX_DISPLAY / side


def larger_scales(rows: int, cols: int) -> list[float]:
    """Scales for larger screens: ``LARGER`` times the base scale, kept when the image
    then covers a whole number of screen pixels both ways."""
    base = display_scale(rows, cols)
    return [base * f for f in LARGER
            if float(rows * base * f).is_integer() and float(cols * base * f).is_integer()]


def _scale_rule(scale: float, rows: int, cols: int, others=(), base: float = 1.0) -> str:
    width, height = cols * scale, rows * scale
    rendering = "pixelated" if float(scale).is_integer() else "auto"
    rules = [f".radipop-app canvas.radipop-image {{ width: {width:g}px !important; "
             f"height: {height:g}px !important; min-width: {width:g}px !important; "
             f"image-rendering: {rendering}; }} "
             f".radipop-app .radipop-strip, .radipop-app .radipop-slice-row, "
             f".radipop-app .radipop-readout {{ width: {width:g}px !important; }}"]
    factor = scale / base   # the views beside are drawn for the base scale
    for css_class, h, w in others:
        rules.append(f".radipop-app canvas.{css_class} {{ width: {w * factor:g}px !important; "
                     f"height: {h * factor:g}px !important; min-width: {w * factor:g}px "
                     f"!important; }}")
    return " ".join(rules)


def overview_strip(present: np.ndarray, current: int, width: int) -> np.ndarray:
    """RGBA image of the overview strip: one band per measured organ, top to bottom.

    Parameters
    ----------
    present : ndarray of bool, shape (slices, organs)
        Whether each slice carries each organ of ``labels.MEASURED`` (liver, spleen).
    current : int
        The slice shown, framed in black (a column on each side and a triangle above and
        below); its own organ colours stay visible inside the frame.
    width : int
        Strip width in pixels; slice ``z`` covers columns ``z * width // n`` onwards.

    Examples
    --------
    Slice 1 of 3 carries the liver and is shown: its column keeps the liver's colour.

    >>> strip = overview_strip(np.array([[0, 0], [1, 0], [0, 0]], bool), 1, 30)
    >>> strip[5, 15].tolist(), strip[5, 9].tolist()
    ([230, 30, 30, 255], [0, 0, 0, 255])
    """
    n = len(present)
    column_slice = np.minimum(np.arange(width) * n // width, n - 1)
    strip = np.zeros((STRIP_HEIGHT, width, 4), np.uint8)
    strip[...] = (235, 235, 235, 255)
    edges = np.linspace(0, STRIP_HEIGHT, len(MEASURED) + 1).round().astype(int)
    for i, organ in enumerate(MEASURED):
        strip[edges[i]:edges[i + 1]][:, present[column_slice, i]] = (*organ.colour, 255)
    marked = np.flatnonzero(column_slice == current)
    if marked.size:
        lo, hi = int(marked[0]), int(marked[-1])
        black = (0, 0, 0, 255)
        strip[:, max(0, lo - 1)] = strip[:, min(width - 1, hi + 1)] = black
        centre = (lo + hi) // 2
        for row in range(3):           # a small triangle at the top and at the bottom
            span = slice(max(0, centre - 2 + row), min(width, centre + 3 - row))
            strip[row, span] = strip[STRIP_HEIGHT - 1 - row, span] = black
    return strip

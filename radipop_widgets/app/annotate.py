"""What is drawn over a view without being part of the image: the orientation letters at
its edges, a scale bar in mm and the crosshair of the other views' planes.

They are drawn on the view's annotation layer in canvas pixels, inside the part the zoom
shows, at a size that stays readable at every zoom (one short batch of canvas commands,
no image).
"""

from __future__ import annotations

import ipycanvas

from ..reformat import scale_bar_mm
from .zoom import ZoomPan

CROSS_COLOUR = "rgba(255, 210, 0, 0.75)"
LETTER_COLOUR = "#ffd54f"


class Annotation:
    """The annotations of one view drawn on ``layer`` (a canvas of the view's size).

    ``letters`` maps ``left``/``right``/``top``/``bottom`` to orientation letters,
    ``mm_per_pixel`` sizes the scale bar and ``cross`` is (y, x) in canvas pixels of the
    crosshair (None: no crosshair); :meth:`draw` after a change.
    """

    def __init__(self, layer: ipycanvas.Canvas, zoom: ZoomPan):
        self.layer = layer
        self.zoom = zoom
        self.letters: dict[str, str] = {}
        self.mm_per_pixel = 1.0
        self.cross: tuple[float, float] | None = None
        self.draws = 0
        zoom.on_change.append(self.draw)

    def draw(self) -> None:
        top, left, height, width = self.zoom.visible
        unit = 1.0 / self.zoom.zoom          # one screen pixel at zoom 1, in canvas pixels
        layer = self.layer
        self.draws += 1
        with ipycanvas.hold_canvas():
            layer.clear()
            if self.cross is not None:
                y, x = self.cross
                layer.stroke_style = CROSS_COLOUR
                layer.line_width = unit
                layer.set_line_dash([4 * unit, 4 * unit])
                layer.stroke_line(left, y, left + width, y)
                layer.stroke_line(x, top, x, top + height)
                layer.set_line_dash([])
            size = 13 * unit
            layer.font = f"bold {size:.3f}px sans-serif"
            layer.fill_style = LETTER_COLOUR
            pad = 3 * unit
            placed = {"top": (left + width / 2, top + pad, "center", "top"),
                      "bottom": (left + width / 2, top + height - pad, "center", "bottom"),
                      "left": (left + pad, top + height / 2, "left", "middle"),
                      "right": (left + width - pad, top + height / 2, "right", "middle")}
            for edge, letter in self.letters.items():
                x, y, align, baseline = placed[edge]
                layer.text_align, layer.text_baseline = align, baseline
                layer.fill_text(letter, x, y)
            self._scale_bar(top, left, height, width, unit)

    def _scale_bar(self, top, left, height, width, unit) -> None:
        mm = scale_bar_mm(width * self.mm_per_pixel)
        length = mm / self.mm_per_pixel
        x0, y = left + width - 8 * unit - length, top + height - 16 * unit
        layer = self.layer
        layer.stroke_style = "#ffffff"
        layer.line_width = 2 * unit
        layer.stroke_lines([(x0, y - 4 * unit), (x0, y), (x0 + length, y),
                            (x0 + length, y - 4 * unit)])
        layer.font = f"{11 * unit:.3f}px sans-serif"
        layer.fill_style = "#ffffff"
        layer.text_align, layer.text_baseline = "center", "top"
        layer.fill_text(f"{mm} mm", x0 + length / 2, y + 2 * unit)

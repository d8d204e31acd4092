"""What is drawn over a view without being part of the image: the orientation letters at
its edges, a scale bar in mm and the crosshair of the other views' planes.

The crosshair is drawn on the view's annotation layer (canvas pixels, so it moves with
the zoom); the letters and the scale bar are HTML laid over the view's box, so they keep
their screen size and stay sharp at every zoom. One short update per change, no image.
"""

from __future__ import annotations

import html

import ipycanvas
import ipywidgets as widgets

from ..reformat import scale_bar_mm
from .zoom import ZoomPan

CROSS_COLOUR = "rgba(255, 210, 0, 0.55)"

#: Page rules of the overlay (installed once with the page's style sheet).
CSS = """
.radipop-app .radipop-viewport { position: relative; }
.radipop-app .radipop-annot { position: absolute; left: 0; top: 0; width: 100%; height: 100%;
  pointer-events: none; margin: 0; font: bold 13px sans-serif; color: #ffd54f;
  text-shadow: 0 0 2px #000; }
.radipop-annot .l, .radipop-annot .r, .radipop-annot .t, .radipop-annot .b
  { position: absolute; }
.radipop-annot .l { left: 4px; top: 50%; transform: translateY(-50%); }
.radipop-annot .r { right: 4px; top: 50%; transform: translateY(-50%); }
.radipop-annot .t { top: 3px; left: 50%; transform: translateX(-50%); }
.radipop-annot .b { bottom: 3px; left: 50%; transform: translateX(-50%); }
.radipop-annot .bar { position: absolute; right: 8px; bottom: 18px; height: 4px;
  border: 2px solid #fff; border-top: none; }
.radipop-annot .mm { position: absolute; right: 8px; bottom: 3px; font: 11px sans-serif;
  color: #fff; }
"""


class Annotation:
    """The annotations of one view: the crosshair on ``layer`` (a canvas of the view's
    size), the letters and scale bar in :attr:`html` (laid over the view's box).

    ``letters`` maps ``left``/``right``/``top``/``bottom`` to orientation letters,
    ``mm_per_pixel`` sizes the scale bar and ``cross`` is (y, x) in canvas pixels of the
    crosshair (None: no crosshair); :meth:`draw` after a change (the zoom calls it).
    """

    def __init__(self, layer: ipycanvas.Canvas, zoom: ZoomPan):
        self.layer = layer
        self.zoom = zoom
        self.html = widgets.HTML()
        self.html.add_class("radipop-annot")
        self.letters: dict[str, str] = {}
        self.mm_per_pixel = 1.0
        self.cross: tuple[float, float] | None = None
        self.aspect = (1.0, 1.0)     # screen pixels per canvas pixel (vertical, horizontal)
        self.draws = 0
        zoom.on_change.append(self.draw)

    def draw(self) -> None:
        top, left, height, width = self.zoom.visible
        self.draws += 1
        layer = self.layer
        with ipycanvas.hold_canvas():
            layer.clear()
            if self.cross is not None:
                # one screen pixel thick, whatever the canvas's scale on the screen
                y, x = self.cross
                thick_y = 1.0 / (self.aspect[0] * self.zoom.zoom)
                thick_x = 1.0 / (self.aspect[1] * self.zoom.zoom)
                layer.fill_style = CROSS_COLOUR
                layer.fill_rect(left, y - thick_y / 2, width, thick_y)
                layer.fill_rect(x - thick_x / 2, top, thick_x, height)
        self.html.value = self.overlay_html(width)

    def overlay_html(self, visible_width: float) -> str:
        """The letters and a scale bar for a view showing ``visible_width`` canvas pixels
        across (the bar's width in percent of the box: right at every display scale)."""
        mm = scale_bar_mm(visible_width * self.mm_per_pixel)
        percent = 100.0 * mm / self.mm_per_pixel / visible_width
        letters = "".join(f"<span class='{edge[0]}'>{html.escape(text)}</span>"
                          for edge, text in self.letters.items())
        return (f"{letters}<span class='bar' style='width:{percent:.2f}%'></span>"
                f"<span class='mm' data-mm='{mm}'>{mm} mm</span>")
